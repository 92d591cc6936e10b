// The generator knobs of attn::InputSpec as JSON, one spelling for every file that stores them
// (sessions, sweep results, run summaries).
#pragma once
#include <nlohmann/json.hpp>

#include "attention/inputs.h"

namespace attn {

/// {"clusters": …, "noise": …, "length_scale": …, "period": …, "heavy_hitters": …, "position_weight": …}.
nlohmann::json knobsToJson(const InputSpec& spec);
/// Sets the knobs `j` has (an object; keys it lacks keep their value in `spec`). A key of the wrong
/// type is a UserError naming it.
void knobsFromJson(const nlohmann::json& j, InputSpec& spec);

}  // namespace attn
