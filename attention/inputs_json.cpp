#include "attention/inputs_json.h"

#include <string>

namespace attn {

nlohmann::json knobsToJson(const InputSpec& s) {
  return {{"clusters", s.clusters},           {"noise", s.noise},
          {"length_scale", s.length_scale},   {"period", s.period},
          {"heavy_hitters", s.heavy_hitters}, {"position_weight", s.position_weight}};
}

}  // namespace attn
