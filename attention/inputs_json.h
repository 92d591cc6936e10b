// The generator knobs of attn::InputSpec as JSON, one spelling for every file that stores them
// (sessions, sweep results, run summaries).
#pragma once
#include <nlohmann/json.hpp>

#include "attention/inputs.h"

namespace attn {

/// {"clusters": …, "noise": …, "length_scale": …, "period": …, "heavy_hitters": …, "position_weight": …}.
nlohmann::json knobsToJson(const InputSpec& spec);
/// (Read back with their types and ranges checked by attn::session::parse and attn::sweepFromJson.)

}  // namespace attn
