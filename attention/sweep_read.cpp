// Reading a sweep's results.json back (attnlab report): every value is checked for its type, and a wrong
// one is named by its path in the file (points[3].time_ms.median) with what it should be. Apart from the
// sweep itself, so the parser builds alone (the fuzz targets link it without the mechanisms).
#include <climits>
#include <cmath>
#include <limits>
#include <map>
#include <type_traits>

#include "attention/sweep.h"

namespace attn {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- reading results.json: every value checked for its type, a wrong one named by its path -------------

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsMap : std::false_type {};
template <class T>
struct IsMap<std::map<std::string, T>> : std::true_type {};

/// What a JSON value is, for messages ("a string \"12\"", "a number 1.5", "a list", …).
std::string describe(const nlohmann::json& v) {
  const auto shown = [&] {
    std::string text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return text.size() > 40 ? text.substr(0, 37) + "..." : text;
  };
  if (v.is_null()) return "null";
  if (v.is_boolean()) return shown();
  if (v.is_number()) return "the number " + shown();
  if (v.is_string()) return "the string " + shown();
  if (v.is_array()) return "a list";
  return "an object";
}

template <class T>
std::string expected() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_same_v<T, double>) return "a number";
  else if constexpr (std::is_same_v<T, int>) return "a whole number from " + std::to_string(INT_MIN) + " to " + std::to_string(INT_MAX);
  else if constexpr (std::is_same_v<T, std::int64_t>) return "a whole number";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "a whole number ≥ 0";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (IsVector<T>::value) return "a list of " + expected<typename T::value_type>().substr(2) + "s";
  else return "an object whose values are " + expected<typename T::mapped_type>().substr(2) + "s";
}

/// `v` as a T, or a UserError naming `path` ("points[3].time_ms.median"), what it should be and what it is.
template <class T>
T as(const nlohmann::json& v, const std::string& path) {
  const auto wrong = [&]() -> UserError {
    return UserError("results.json: " + path + " should be " + expected<T>() + ", not " + describe(v));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw wrong();
    return v.get<bool>();
  } else if constexpr (std::is_same_v<T, double>) {
    if (!v.is_number()) throw wrong();
    return v.get<double>();
  } else if constexpr (std::is_same_v<T, int> || std::is_same_v<T, std::int64_t>) {
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)))
      throw wrong();
    const std::int64_t x = v.get<std::int64_t>();
    if (x < std::int64_t(std::numeric_limits<T>::min()) || x > std::int64_t(std::numeric_limits<T>::max())) throw wrong();
    return T(x);
  } else if constexpr (std::is_same_v<T, std::uint64_t>) {
    if (!v.is_number_unsigned()) throw wrong();
    return v.get<std::uint64_t>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw wrong();
    return v.get<std::string>();
  } else if constexpr (IsVector<T>::value) {
    if (!v.is_array()) throw wrong();
    T out;
    for (std::size_t i = 0; i < v.size(); ++i)
      out.push_back(as<typename T::value_type>(v[i], path + "[" + std::to_string(i) + "]"));
    return out;
  } else {
    static_assert(IsMap<T>::value);
    if (!v.is_object()) throw wrong();
    T out;
    for (const auto& [key, value] : v.items()) out[key] = as<typename T::mapped_type>(value, path + "." + key);
    return out;
  }
}

std::string pathOf(const std::string& where, const char* key) { return where.empty() ? key : where + "." + key; }

/// A value every results.json has: missing is a message naming it.
template <class T>
T required(const nlohmann::json& j, const std::string& where, const char* key) {
  if (!j.contains(key))
    throw UserError("results.json: " + pathOf(where, key) + " is missing (is this an attnlab sweep result?)");
  return as<T>(j[key], pathOf(where, key));
}

/// A value older results lack: `fallback` when missing (or null).
template <class T>
T optional(const nlohmann::json& j, const std::string& where, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return as<T>(j[key], pathOf(where, key));
}

double numberFrom(const nlohmann::json& j, const std::string& where, const char* key) {
  return optional<double>(j, where, key, kNaN);
}

Stat statFrom(const nlohmann::json& j, const std::string& where, const char* key) {
  Stat s;
  if (!j.contains(key) || j[key].is_null()) return s;
  const std::string path = pathOf(where, key);
  if (!j[key].is_object()) throw UserError("results.json: " + path + " should be an object {mean, std, count}, not " + describe(j[key]));
  s.mean = numberFrom(j[key], path, "mean");
  s.std = numberFrom(j[key], path, "std");
  s.count = optional<int>(j[key], path, "count", 0);
  return s;
}

/// An object, or a message naming it.
const nlohmann::json& objectAt(const nlohmann::json& j, const std::string& where, const char* key) {
  if (!j.contains(key)) throw UserError("results.json: " + pathOf(where, key) + " is missing (is this an attnlab sweep result?)");
  if (!j[key].is_object())
    throw UserError("results.json: " + pathOf(where, key) + " should be an object, not " + describe(j[key]));
  return j[key];
}

}  // namespace

SweepResult sweepFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("format") || j["format"] != "attnlab-sweep")
    throw UserError("results.json: not an attnlab sweep result (its \"format\" is not \"attnlab-sweep\")");
  const int version = required<int>(j, "", "version");
  if (version != 1) throw UserError("results.json: version " + std::to_string(version) + " is not one this attnlab reads (1)");
  SweepResult r;
  r.complete = required<bool>(j, "", "complete");
  r.seconds = required<double>(j, "", "seconds");
  r.started = required<std::string>(j, "", "started");
  if (j.contains("machine") && !j["machine"].is_null()) r.machine = objectAt(j, "", "machine");
  else r.machine = nlohmann::json::object();
  r.command = optional<std::string>(j, "", "command", {});
  const auto& s = objectAt(j, "", "spec");
  r.spec.mechanisms = required<std::vector<std::string>>(s, "spec", "mechanisms");
  r.spec.ns = required<std::vector<Index>>(s, "spec", "n");
  r.spec.backends = required<std::vector<std::string>>(s, "spec", "backends");
  r.spec.seeds = required<int>(s, "spec", "seeds");
  r.spec.first_seed = required<std::uint64_t>(s, "spec", "first_seed");
  r.spec.repeats = required<int>(s, "spec", "repeats");
  r.spec.d = required<Index>(s, "spec", "d");
  const std::string input = required<std::string>(s, "spec", "input");
  try {
    r.spec.generator = parseGenerator(input);
  } catch (const UserError& e) {
    throw UserError(std::string("results.json: spec.input: ") + e.what());
  }
  r.spec.temperature = required<double>(s, "spec", "temperature");
  if (s.contains("knobs") && !s["knobs"].is_null()) {  // results written before the knobs were kept have none
    const auto& k = objectAt(s, "spec", "knobs");
    r.spec.knobs.clusters = optional<Index>(k, "spec.knobs", "clusters", r.spec.knobs.clusters);
    r.spec.knobs.noise = optional<double>(k, "spec.knobs", "noise", r.spec.knobs.noise);
    r.spec.knobs.length_scale = optional<double>(k, "spec.knobs", "length_scale", r.spec.knobs.length_scale);
    r.spec.knobs.period = optional<Index>(k, "spec.knobs", "period", r.spec.knobs.period);
    r.spec.knobs.heavy_hitters = optional<Index>(k, "spec.knobs", "heavy_hitters", r.spec.knobs.heavy_hitters);
    r.spec.knobs.position_weight = optional<double>(k, "spec.knobs", "position_weight", r.spec.knobs.position_weight);
    r.spec.knobs.image = optional<std::string>(k, "spec.knobs", "image", r.spec.knobs.image);
    if (r.spec.knobs.image.size() > 4096)
      throw UserError("results.json: spec.knobs.image is " + std::to_string(r.spec.knobs.image.size()) +
                      " bytes long; an image's name or path is at most 4096");
    r.spec.knobs.image_b = optional<std::string>(k, "spec.knobs", "image_b", r.spec.knobs.image_b);
    if (r.spec.knobs.image_b.size() > 4096)
      throw UserError("results.json: spec.knobs.image_b is " + std::to_string(r.spec.knobs.image_b.size()) +
                      " bytes long; an image's name or path is at most 4096");
    r.spec.knobs.width = optional<Index>(k, "spec.knobs", "width", r.spec.knobs.width);
    if (r.spec.knobs.width < 0 || r.spec.knobs.width > kMaxInputTokens)
      throw UserError("results.json: spec.knobs.width should be a grid width from 0 to " + std::to_string(kMaxInputTokens) +
                      ", not " + std::to_string(r.spec.knobs.width));
    try {
      r.spec.knobs.features = parseImageFeatures(optional<std::string>(k, "spec.knobs", "image_features", "rgbxy"));
    } catch (const UserError& e) {
      throw UserError(std::string("results.json: spec.knobs.image_features: ") + e.what());
    }
    r.spec.knobs.filters = optional<Index>(k, "spec.knobs", "filters", r.spec.knobs.filters);
    if (r.spec.knobs.filters < 1 || r.spec.knobs.filters > kMaxImageFilters)
      throw UserError("results.json: spec.knobs.filters should be from 1 to " + std::to_string(kMaxImageFilters) +
                      ", not " + std::to_string(r.spec.knobs.filters));
  }
  r.spec.causal = required<bool>(s, "spec", "causal");
  r.spec.scale_with_n = required<bool>(s, "spec", "scale_with_n");
  r.spec.params = required<std::map<std::string, std::map<std::string, std::string>>>(s, "spec", "params");
  r.spec.memory_budget = required<std::int64_t>(s, "spec", "memory_budget_bytes");
  r.spec.max_metric_n = required<Index>(s, "spec", "max_metric_n");
  r.spec.preset = optional<std::string>(s, "spec", "preset", {});
  if (!j.contains("points")) throw UserError("results.json: points is missing (is this an attnlab sweep result?)");
  const auto& points = j["points"];
  if (!points.is_array()) throw UserError("results.json: points should be a list, not " + describe(points));
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& pj = points[i];
    const std::string at = "points[" + std::to_string(i) + "]";
    if (!pj.is_object()) throw UserError("results.json: " + at + " should be an object, not " + describe(pj));
    SweepPoint p;
    p.mechanism = required<std::string>(pj, at, "mechanism");
    p.backend = required<std::string>(pj, at, "backend");
    p.n = required<Index>(pj, at, "n");
    p.status = required<std::string>(pj, at, "status");
    p.message = optional<std::string>(pj, at, "message", {});
    p.params = optional<std::map<std::string, std::string>>(pj, at, "params", {});
    p.scaled = optional<std::vector<std::string>>(pj, at, "scaled", {});
    if (pj.contains("time_ms") && !pj["time_ms"].is_null()) {
      const std::string tat = at + ".time_ms";
      const auto& t = objectAt(pj, at, "time_ms");
      p.time_median = numberFrom(t, tat, "median");
      p.time_p25 = numberFrom(t, tat, "p25");
      p.time_p75 = numberFrom(t, tat, "p75");
      p.time_min = numberFrom(t, tat, "min");
      p.time_max = numberFrom(t, tat, "max");
      p.timed_runs = optional<int>(t, tat, "runs", 0);
    }
    p.device_ms = numberFrom(pj, at, "device_ms");
    p.peak_bytes = numberFrom(pj, at, "peak_bytes");
    p.peak_source = optional<std::string>(pj, at, "peak_source", {});
    p.cost_peak_bytes = numberFrom(pj, at, "cost_peak_bytes");
    p.flops = numberFrom(pj, at, "flops");
    p.scored_pairs = numberFrom(pj, at, "scored_pairs");
    p.approximates = optional<bool>(pj, at, "approximates_softmax", true);
    p.rel_error = statFrom(pj, at, "rel_error");
    p.row_tv = statFrom(pj, at, "row_tv");
    p.mass_recall = statFrom(pj, at, "mass_recall");
    p.uniform_error = statFrom(pj, at, "uniform_error");  // results written before these were kept have none
    p.metric_rows = optional<Index>(pj, at, "metric_rows", 0);
    p.own_reference = optional<std::string>(pj, at, "own_reference", {});
    p.own_rel_error = statFrom(pj, at, "own_rel_error");
    p.notes = optional<std::vector<std::string>>(pj, at, "notes", {});
    p.stages_ms = optional<std::map<std::string, double>>(pj, at, "stages_ms", {});
    r.points.push_back(std::move(p));
  }
  return r;
}

}  // namespace attn
