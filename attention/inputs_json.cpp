#include "attention/inputs_json.h"

#include <string>

namespace attn {

nlohmann::json knobsToJson(const InputSpec& s) {
  return {{"clusters", s.clusters},           {"noise", s.noise},
          {"length_scale", s.length_scale},   {"period", s.period},
          {"heavy_hitters", s.heavy_hitters}, {"position_weight", s.position_weight}};
}

void knobsFromJson(const nlohmann::json& j, InputSpec& spec) {
  if (!j.is_object()) return;
  auto read = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    if (!j[key].is_number()) throw UserError(std::string("the input's \"") + key + "\" is not a number");
    field = j[key].get<std::remove_reference_t<decltype(field)>>();
  };
  read("clusters", spec.clusters);
  read("noise", spec.noise);
  read("length_scale", spec.length_scale);
  read("period", spec.period);
  read("heavy_hitters", spec.heavy_hitters);
  read("position_weight", spec.position_weight);
}

}  // namespace attn
