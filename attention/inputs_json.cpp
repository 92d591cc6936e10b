#include "attention/inputs_json.h"

#include <string>

namespace attn {

nlohmann::json knobsToJson(const InputSpec& s) {
  return {{"clusters", s.clusters},           {"noise", s.noise},
          {"length_scale", s.length_scale},   {"period", s.period},
          {"heavy_hitters", s.heavy_hitters}, {"position_weight", s.position_weight},
          {"image", s.image},                 {"width", s.width},
          {"image_features", imageFeaturesName(s.features)}, {"filters", s.filters},
          {"image_b", s.image_b}};
}

}  // namespace attn
