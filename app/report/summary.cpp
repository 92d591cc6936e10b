#include "app/report/summary.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <QtGlobal>
#include <cmath>
#include <thread>

#include "attention/inputs_json.h"
#include "render/vk/instance.h"

namespace attnlab::report {

using nlohmann::json;

namespace {
std::string causalName(attn::CausalSupport c) {
  switch (c) {
    case attn::CausalSupport::No: return "no";
    case attn::CausalSupport::Yes: return "yes";
    case attn::CausalSupport::Native: return "native";
  }
  return "?";
}
}  // namespace

json mechanismJson(const attn::Mechanism& m) {
  const auto& i = m.info();
  json params = json::array();
  for (const auto& p : m.params()) {
    json j{{"name", p.name}, {"label", p.label}, {"kind", attn::toString(p.kind)}, {"help", p.help},
           {"default", p.def}, {"min", p.min}, {"max", p.max}, {"log_scale", p.log_scale}};
    if (p.kind == attn::ParamKind::Choice) {
      j["choices"] = p.choices;
      j["default"] = p.choices.at(size_t(p.def));
    }
    if (p.kind == attn::ParamKind::Flag) j["default"] = p.def != 0;
    params.push_back(j);
  }
  return json{{"id", i.id}, {"title", i.title}, {"family", attn::familyName(i.family)},
              {"family_short", attn::familyShort(i.family)}, {"year", i.year}, {"paper", i.paper},
              {"arxiv", i.arxiv}, {"complexity", i.complexity}, {"causal", causalName(i.causal)},
              {"idea", i.idea}, {"stand_ins", i.stand_ins}, {"approximates_softmax", i.approximates_softmax},
              {"relation", attn::describeRelation(m)}, {"conventions", i.conventions}, {"params", params}};
}

json comparisonJson(const attn::Comparison& c) {
  json params = json::object();
  for (const auto& spec : c.mechanism->params()) {
    if (spec.kind == attn::ParamKind::Choice) params[spec.name] = c.params.choice(spec.name);
    else if (spec.kind == attn::ParamKind::Flag) params[spec.name] = c.params.flag(spec.name);
    else if (spec.kind == attn::ParamKind::Int) params[spec.name] = c.params.integer(spec.name);
    else params[spec.name] = c.params.number(spec.name);
  }
  json stages = json::array();
  for (const auto& s : c.approx.cost.stages)
    stages.push_back({{"name", s.name}, {"ms", s.ms}, {"view_only", s.display_only}});
  json notes = c.params.notes();
  for (const auto& n : c.approx.explanation.notes) notes.push_back(n);
  const auto& s = c.inputs.spec;
  json j{{"mechanism", c.mechanism->info().id},
         {"params", params},
         {"input", {{"n", c.inputs.n()}, {"m", c.inputs.m()}, {"d", c.inputs.q.cols()}, {"dv", c.inputs.v.cols()},
                    {"seed", s.seed}, {"generator", s.source.empty() ? attn::generatorName(s.generator) : "files"},
                    {"source", s.source}}},
         {"backend", c.backend_name},
         {"time_ms", c.attentionMs()},
         {"view_only_ms", c.approx.cost.display_ms()},
         {"exact_time_ms", c.exact_ms},
         {"timing", attn::describeTiming(c)},
         {"reference", c.reference_label},
         {"relative_error", c.relative_error},
         {"cost", {{"scored_pairs", c.approx.cost.scored_pairs}, {"flops", c.approx.cost.flops},
                   {"peak_bytes", c.approx.cost.peak_bytes}, {"stages", stages}}},
         {"notes", notes}};
  if (s.source.empty()) {  // generated: the generator's temperature and knobs, so the run can be repeated
    j["input"]["temperature"] = s.temperature;
    const json all = attn::knobsToJson(s);
    for (const std::string& knob : attn::generatorKnobs(s.generator)) j["input"][knob] = all.at(knob);
    // A photo, a chosen grid or the filter bank (left out at their defaults, the synthetic shapes).
    if (s.generator == attn::Generator::Image && (!s.image.empty() || s.width > 0 || s.features != attn::ImageFeatures::RgbXy))
      for (const char* key : {"image", "width", "image_features", "filters"}) j["input"][key] = all.at(key);
    if (s.generator == attn::Generator::Image && !s.image_b.empty()) j["input"]["image_b"] = s.image_b;
  }
  if (std::isfinite(c.uniform_error)) j["uniform_attention_error"] = c.uniform_error;
  if (c.row_tv >= 0) j["row_tv"] = c.row_tv;
  if (c.mass_recall >= 0) j["mass_recall"] = c.mass_recall;
  if (c.metric_rows > 0) j["metric_rows"] = c.metric_rows;
  if (c.own) {
    json own{{"reference", c.own->label}, {"relative_error", c.own->relative_error}};
    if (c.own->row_tv >= 0) own["row_tv"] = c.own->row_tv;
    if (c.own->mass_recall >= 0) own["mass_recall"] = c.own->mass_recall;
    j["own_reference"] = own;
  }
  j["headline"] = attn::describeHeadline(c);
  j["metrics"] = attn::describeMetrics(c);
  if (!c.mechanism->info().approximates_softmax) j["relative_error_meaning"] = "N/A - a different operator";
  return j;
}

namespace {
std::string osName() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}
}  // namespace

std::string htmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

json machineJson() {
  json devices = json::array();
  const auto list = attn::vk::listDevices();
  for (const auto& d : list.devices)
    devices.push_back({{"index", d.index}, {"name", d.name}, {"type", d.type}, {"driver", d.driver},
                       {"api_version", d.api_version}, {"usable", d.usable}, {"unusable_reason", d.unusable_reason}});
  json j{{"attnlab", ATTNLAB_VERSION},
         {"cpu", attn::cpuModelName()},
         {"hardware_threads", std::thread::hardware_concurrency()},
         {"eigen", std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                       std::to_string(EIGEN_MINOR_VERSION)},
         {"qt", qVersion()},
         {"compiler", __VERSION__},
         {"build_type", ATTNLAB_BUILD_TYPE},
         {"os", osName()},
         {"memory_bytes", std::int64_t(::sysconf(_SC_PHYS_PAGES)) * std::int64_t(::sysconf(_SC_PAGE_SIZE))},
         {"vulkan_devices", devices}};
  if (devices.empty()) j["vulkan_reason"] = list.reason;
  return j;
}

}  // namespace attnlab::report
