// The generator knobs of attn::InputSpec as JSON, one spelling for every file that stores them
// (sessions, sweep results, run summaries).
#pragma once
#include <nlohmann/json.hpp>

#include "attention/inputs.h"

namespace attn {

/// {"clusters": …, "noise": …, "length_scale": …, "period": …, "heavy_hitters": …, "position_weight": …,
///  "image": name or path ("" = the shapes), "width": the grid's W (0 = chosen), "image_features": "rgbxy" |
///  "filters", "filters": F, "image_b": the change pair's second picture ("" = none)}. (A file's pixels are not
///  stored: its path is, and it is read again.)
nlohmann::json knobsToJson(const InputSpec& spec);
/// (Read back with their types and ranges checked by attn::session::parse and attn::sweepFromJson.)

}  // namespace attn
