#include "attention/params.h"

#include <cstdio>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace attn {

ParamSpec ParamSpec::integer(std::string name, std::string label, std::string help, double def, double min,
                             double max, bool log) {
  return ParamSpec{std::move(name), std::move(label), std::move(help), ParamKind::Int, min, max, def, log, {}};
}
ParamSpec ParamSpec::real(std::string name, std::string label, std::string help, double def, double min,
                          double max, bool log) {
  return ParamSpec{std::move(name), std::move(label), std::move(help), ParamKind::Real, min, max, def, log, {}};
}
ParamSpec ParamSpec::choice(std::string name, std::string label, std::string help,
                            std::vector<std::string> choices, int def) {
  const double hi = static_cast<double>(choices.size()) - 1;
  return ParamSpec{std::move(name), std::move(label), std::move(help), ParamKind::Choice, 0, hi, double(def),
                   false, std::move(choices)};
}
ParamSpec ParamSpec::flag(std::string name, std::string label, std::string help, bool def) {
  return ParamSpec{std::move(name), std::move(label), std::move(help), ParamKind::Flag, 0, 1, def ? 1.0 : 0.0,
                   false, {}};
}

std::string toString(ParamKind k) {
  switch (k) {
    case ParamKind::Int: return "int";
    case ParamKind::Real: return "real";
    case ParamKind::Choice: return "choice";
    case ParamKind::Flag: return "flag";
  }
  return "?";
}

std::string formatBound(const ParamSpec& spec, double value) {
  char buf[48];
  if (spec.kind == ParamKind::Real)
    std::snprintf(buf, sizeof buf, "%.6g", value);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
  return buf;
}

double Params::number(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("parameter '" + name + "' is not declared by params()");
  return it->second;
}

const std::string& Params::choice(const std::string& name) const {
  auto it = choice_text_.find(name);
  if (it == choice_text_.end()) throw std::logic_error("parameter '" + name + "' is not a declared choice");
  return it->second;
}

namespace {

std::string joinNames(const std::vector<ParamSpec>& specs) {
  std::string out;
  for (const auto& s : specs) out += (out.empty() ? "" : ", ") + s.name;
  return out.empty() ? "(none)" : out;
}

std::string formatNumber(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Clamps into the spec's range, rounding integers; notes what changed.
double place(const ParamSpec& spec, double v, std::vector<std::string>& notes) {
  double out = v;
  if (spec.kind == ParamKind::Int) out = std::round(out);
  out = std::clamp(out, spec.min, spec.max);
  if (out != v)
    notes.push_back(spec.name + "=" + formatNumber(v) + " is outside [" + formatNumber(spec.min) + ", " +
                    formatNumber(spec.max) + "]" + (spec.kind == ParamKind::Int ? " or not whole" : "") +
                    "; using " + formatNumber(out));
  return out;
}

}  // namespace

Params Params::resolveNumbers(const std::vector<ParamSpec>& specs, const std::map<std::string, double>& raw) {
  Params p;
  for (const auto& [name, value] : raw) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == name; });
    if (it == specs.end())
      throw UserError("unknown parameter '" + name + "'; this mechanism takes: " + joinNames(specs));
    if (!std::isfinite(value)) throw UserError("parameter '" + name + "' must be a finite number");
  }
  for (const auto& spec : specs) {
    auto it = raw.find(spec.name);
    double v = it == raw.end() ? spec.def : place(spec, it->second, p.notes_);
    if (spec.kind == ParamKind::Flag) v = v != 0 ? 1 : 0;
    p.values_[spec.name] = v;
    if (spec.kind == ParamKind::Choice) p.choice_text_[spec.name] = spec.choices.at(static_cast<size_t>(v));
  }
  return p;
}

Params Params::resolve(const std::vector<ParamSpec>& specs, const std::map<std::string, std::string>& raw) {
  std::map<std::string, double> numbers;
  for (const auto& [name, text] : raw) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == name; });
    if (it == specs.end())
      throw UserError("unknown parameter '" + name + "'; this mechanism takes: " + joinNames(specs));
    const ParamSpec& spec = *it;
    if (spec.kind == ParamKind::Choice) {
      auto c = std::find(spec.choices.begin(), spec.choices.end(), text);
      if (c == spec.choices.end()) {
        std::string all;
        for (const auto& s : spec.choices) all += (all.empty() ? "" : "|") + s;
        throw UserError("parameter '" + name + "' must be one of " + all + ", not '" + text + "'");
      }
      numbers[name] = static_cast<double>(c - spec.choices.begin());
      continue;
    }
    if (spec.kind == ParamKind::Flag) {
      if (text == "1" || text == "true" || text == "on" || text == "yes") numbers[name] = 1;
      else if (text == "0" || text == "false" || text == "off" || text == "no") numbers[name] = 0;
      else throw UserError("parameter '" + name + "' is a flag: use true or false, not '" + text + "'");
      continue;
    }
    double v = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec != std::errc() || ptr != last || !std::isfinite(v))
      throw UserError("parameter '" + name + "' needs a number, not '" + text + "'");
    numbers[name] = v;
  }
  return resolveNumbers(specs, numbers);
}

}  // namespace attn
