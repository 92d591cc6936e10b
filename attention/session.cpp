#include "attention/session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace attn::session {

namespace {

using nlohmann::json;

std::string shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// A string of the session, capped; "" when absent or of another type (those keys are optional).
Expected<std::string> text(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) return std::string();
  const auto& s = object[key].get_ref<const std::string&>();
  if (s.size() > kMaxString)
    return Expected<std::string>::failure("the session's " + where + key + " is " + std::to_string(s.size()) +
                                          " bytes long; at most " + std::to_string(kMaxString) + " are read (is the file damaged?)");
  return s;
}

/// Reads the input's numbers: a number of the wrong type is a failure naming it, one out of range is clamped
/// to [lo, hi] and said in `notes`.
struct Clamper {
  const json& in;
  std::vector<std::string>& notes;
  std::string error;

  bool present(const char* key) const { return in.contains(key) && !in[key].is_null(); }
  template <class T>
  void integer(const char* key, T& field, T lo, T hi, const char* why) {
    if (!error.empty() || !present(key)) return;
    const json& v = in[key];
    if (!v.is_number() || (v.is_number_float() && (!std::isfinite(v.get<double>()) || v.get<double>() != std::floor(v.get<double>())))) {
      error = std::string("the session's input.") + key + " should be a whole number, not " + shown(v);
      return;
    }
    // Compared as long double, so 1e18, -1 and 2^64 − 1 all clamp instead of wrapping.
    const long double x = v.is_number_unsigned() ? (long double)v.get<std::uint64_t>()
                          : v.is_number_integer() ? (long double)v.get<std::int64_t>()
                                                  : (long double)v.get<double>();
    if (x < (long double)lo || x > (long double)hi) {
      field = x < (long double)lo ? lo : hi;
      notes.push_back(std::string("input ") + key + " " + shown(v) + " was set to " + std::to_string(field) + " (" + why + ")");
    } else {
      field = T(x);
    }
  }
  void real(const char* key, double& field, double lo, double hi, const char* why) {
    if (!error.empty() || !present(key)) return;
    const json& v = in[key];
    if (!v.is_number()) {
      error = std::string("the session's input.") + key + " should be a number, not " + shown(v);
      return;
    }
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) {
      field = x > hi ? hi : lo;
      notes.push_back(std::string("input ") + key + " " + shown(v) + " was set to " + number(field) + " (" + why + ")");
    } else {
      field = x;
    }
  }
};

/// A number for a mechanism's parameter, clamped to its range when the mechanism is known.
void clampParam(const std::string& where, const ParamSpec* spec, double& value, std::vector<std::string>& notes) {
  if (!spec) return;
  const double lo = spec->kind == ParamKind::Choice ? 0 : spec->kind == ParamKind::Flag ? 0 : spec->min;
  const double hi = spec->kind == ParamKind::Choice ? double(std::max<std::size_t>(spec->choices.size(), 1) - 1)
                    : spec->kind == ParamKind::Flag ? 1
                                                    : spec->max;
  if (!(value >= lo && value <= hi)) {
    const double was = value;
    value = value > hi ? hi : lo;
    notes.push_back("parameter " + where + " " + number(was) + " was set to " + number(value) + " (its range is " +
                    number(lo) + " to " + number(hi) + ")");
  }
}

const ParamSpec* findParam(const std::vector<ParamSpec>* specs, const std::string& name) {
  if (!specs) return nullptr;
  for (const ParamSpec& p : *specs)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace

Expected<Session> parse(const json& j, const InputSpec& base, const ParamLookup& lookup) {
  using E = Expected<Session>;
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || j["format"] != "attnlab-session")
    return E::failure("not an attnlab session (its \"format\" is not \"attnlab-session\")");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<std::int64_t>() != 1)
    return E::failure("session version " + (j.contains("version") ? shown(j["version"]) : std::string("(none)")) +
                      " is not one this attnlab reads (1)");
  Session s;
  auto mechanism = text(j, "mechanism", "");
  if (!mechanism) return E::failure(mechanism.error());
  s.mechanism = mechanism.value();
  if (!j.contains("input") || !j["input"].is_object())
    return E::failure("the session's input is missing or not an object");
  const json& in = j["input"];
  s.input = base;
  auto generator = text(in, "generator", "input.");
  if (!generator) return E::failure(generator.error());
  if (!in.contains("generator") || !in["generator"].is_string()) return E::failure("the session's input.generator is missing or not a string");
  try {
    s.input.generator = parseGenerator(generator.value());
  } catch (const UserError& e) {
    return E::failure(std::string("the session's input.generator: ") + e.what());
  }
  for (const char* key : {"n", "d", "seed"})
    if (!in.contains(key) || in[key].is_null()) return E::failure(std::string("the session's input.") + key + " is missing");
  Clamper c{in, s.notes, {}};
  c.integer<Index>("n", s.input.n, 1, kMaxN, "the window generates N from 1 to 16384");
  c.integer<Index>("d", s.input.d, 1, kMaxD, "the window generates d from 1 to 1024");
  s.input.dv = s.input.d;
  c.integer<std::uint64_t>("seed", s.input.seed, 0, kMaxSeed, "seeds run from 0 to 2147483647");
  c.real("temperature", s.input.temperature, kMinTemperature, kMaxTemperature, "τ runs from 0.01 to 100");
  c.integer<Index>("clusters", s.input.clusters, 1, kMaxClusters, "clusters run from 1 to 4096");
  c.real("noise", s.input.noise, 0, kMaxNoise, "noise runs from 0 to 10");
  c.real("length_scale", s.input.length_scale, kMinLengthScale, kMaxLengthScale, "the length scale runs from 0.1 to 65536");
  c.integer<Index>("period", s.input.period, 1, kMaxPeriod, "the period runs from 1 to 16384");
  c.integer<Index>("heavy_hitters", s.input.heavy_hitters, 0, kMaxHeavyHitters, "heavy hitters run from 0 to 4096");
  c.real("position_weight", s.input.position_weight, 0, kMaxPositionWeight, "λ runs from 0 to 100");
  c.integer<Index>("width", s.input.width, 0, kMaxN, "the grid's width runs from 0 (chosen) to 16384");
  c.integer<Index>("filters", s.input.filters, 1, kMaxImageFilters, "the filter bank has 1 to 256 filters");
  if (!c.error.empty()) return E::failure(c.error);
  if (s.input.width > 0 && s.input.n % s.input.width != 0) {
    s.notes.push_back("input width " + std::to_string(s.input.width) + " does not divide N = " + std::to_string(s.input.n) +
                      " and was set to 0 (the grid nearest the picture's shape)");
    s.input.width = 0;
  }
  auto image = text(in, "image", "input.");
  if (!image) return E::failure(image.error());
  s.input.image = image.value();
  s.input.picture = nullptr;  // a file named there is read again by the front end
  auto image_b = text(in, "image_b", "input.");  // the change pair's second picture (absent in older sessions)
  if (!image_b) return E::failure(image_b.error());
  s.input.image_b = image_b.value();
  s.input.picture_b = nullptr;
  if (in.contains("image_features")) {
    auto features = text(in, "image_features", "input.");
    if (!features) return E::failure(features.error());
    if (!in["image_features"].is_string())
      return E::failure("the session's input.image_features should be \"rgbxy\" or \"filters\", not " + shown(in["image_features"]));
    try {
      s.input.features = parseImageFeatures(features.value());
    } catch (const UserError& e) {
      return E::failure(std::string("the session's input.image_features: ") + e.what());
    }
  }
  if (j.contains("causal")) {
    if (!j["causal"].is_boolean()) return E::failure("the session's causal should be true or false, not " + shown(j["causal"]));
    s.causal = j["causal"].get<bool>();
  }
  if (j.contains("backend")) {
    if (!j["backend"].is_string()) return E::failure("the session's backend should be a string, not " + shown(j["backend"]));
    auto backend = text(j, "backend", "");
    if (!backend) return E::failure(backend.error());
    s.backend = backend.value();
  }
  if (!j.contains("params") || !j["params"].is_object()) return E::failure("\"params\" is not an object");
  const std::vector<ParamSpec>* own = lookup ? lookup(s.mechanism) : nullptr;
  for (const auto& [name, value] : j["params"].items()) {
    const ParamSpec* spec = findParam(own, name);
    if (!value.is_number() || (own && !spec) || name.size() > kMaxString) {
      s.skipped.push_back(name.size() > 64 ? name.substr(0, 61) + "..." : name);
      continue;
    }
    double v = value.get<double>();
    clampParam(name, spec, v, s.notes);
    s.params[name] = v;
  }
  if (j.contains("compare") && j["compare"].is_array()) {
    s.compare.emplace();
    for (const auto& entry : j["compare"])
      if (entry.is_string() && entry.get_ref<const std::string&>().size() <= kMaxString && s.compare->size() < 16)
        s.compare->push_back(entry.get<std::string>());
  }
  if (j.contains("compare_params") && j["compare_params"].is_object())
    for (const auto& [other, values] : j["compare_params"].items()) {
      const std::vector<ParamSpec>* specs = lookup ? lookup(other) : nullptr;
      if (!values.is_object() || (lookup && !specs) || other.size() > kMaxString) continue;
      auto& numbers = s.compare_params[other];
      for (const auto& [name, value] : values.items()) {
        const ParamSpec* spec = findParam(specs, name);
        if (value.is_number() && (!lookup || spec) && name.size() <= kMaxString) {
          double v = value.get<double>();
          clampParam(other + "." + name, spec, v, s.notes);
          numbers[name] = v;
        } else {
          s.skipped.push_back((other + "." + name).substr(0, 64));
        }
      }
    }
  if (j.contains("view")) {
    if (!j["view"].is_object()) return E::failure("\"view\" is not an object");
    const json& v = j["view"];
    View view;
    for (auto [key, field] : {std::pair{"scale", &view.scale}, std::pair{"pooling", &view.pooling},
                              std::pair{"colormap", &view.colormap}, std::pair{"order", &view.order}}) {
      auto t = text(v, key, "view.");
      if (!t) return E::failure(t.error());
      *field = t.value();
    }
    if (v.contains("floor") && v["floor"].is_number()) view.floor = v["floor"].get<double>();
    const json& zoom = v.contains("zoom") ? v["zoom"] : json();
    if (zoom.is_array() && zoom.size() == 4 && std::all_of(zoom.begin(), zoom.end(), [](const json& x) { return x.is_number(); })) {
      const double r0 = zoom[0].get<double>(), r1 = zoom[1].get<double>(), c0 = zoom[2].get<double>(), c1 = zoom[3].get<double>();
      // Kept inside the matrix, so a hand-edited file still gives a usable window.
      const double fr = r1 - r0, fc = c1 - c0;
      if (fr > 0 && fc > 0 && fr <= 1 && fc <= 1 && std::isfinite(r0) && std::isfinite(c0)) {
        const double a = std::clamp(r0, 0.0, 1 - fr), b = std::clamp(c0, 0.0, 1 - fc);
        view.zoom = std::array<double, 4>{a, a + fr, b, b + fc};
        if (a != r0 || b != c0) s.notes.push_back("the zoom window was moved inside the matrix");
      } else {
        s.notes.push_back("the zoom window " + shown(zoom) + " is not inside the matrix and was not applied");
      }
    }
    s.view = view;
  }
  if (j.contains("curves")) s.curves = j["curves"];
  auto imported = text(j, "imported", "");
  if (!imported) return E::failure(imported.error());
  s.imported = imported.value();
  return s;
}

Expected<Session> parseText(std::string_view text, const InputSpec& base, const ParamLookup& lookup) {
  if (text.size() > kMaxFileBytes)
    return Expected<Session>::failure("the session is " + std::to_string(text.size()) + " bytes; a session is at most " +
                                      std::to_string(kMaxFileBytes >> 20) + " MiB (is it the right file?)");
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return Expected<Session>::failure(std::string("not valid JSON: ") + e.what());
  }
  return parse(j, base, lookup);
}

Expected<std::string> readFile(const std::string& path) {
  using E = Expected<std::string>;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return E::failure("cannot open the session file " + path);
  if (!std::filesystem::is_regular_file(status)) return E::failure(path + " is not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return E::failure("cannot open the session file " + path);
  if (size > kMaxFileBytes)
    return E::failure(path + " is " + std::to_string(size) + " bytes; a session is at most " +
                      std::to_string(kMaxFileBytes >> 20) + " MiB (is it the right file?)");
  std::ifstream in(path, std::ios::binary);
  if (!in) return E::failure("cannot open the session file " + path);
  std::string out(static_cast<std::size_t>(size), '\0');
  if (!in.read(out.data(), std::streamsize(size))) return E::failure("cannot read the session file " + path);
  return out;
}

}  // namespace attn::session
