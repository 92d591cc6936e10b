// Typed parameter specifications: the GUI builds its controls from them, the CLI its --set flags.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "attention/types.h"

namespace attn {

enum class ParamKind { Int, Real, Choice, Flag };

struct ParamSpec {
  std::string name;   ///< machine name, used by --set NAME=VALUE and session files
  std::string label;  ///< short human label
  std::string help;   ///< one or two sentences, shown as tooltip / in `attnlab list`
  ParamKind kind = ParamKind::Real;
  double min = 0, max = 1, def = 0;  ///< range and default (Choice: index into choices; Flag: 0/1)
  bool log_scale = false;            ///< slider is logarithmic
  std::vector<std::string> choices;  ///< Choice only
  /// Non-empty: the parameter has no effect in causal mode, and this says why (the GUI disables its control
  /// with this reason; the run's notes say it too).
  std::string causal_note;
  ParamSpec withCausalNote(std::string why) && {
    causal_note = std::move(why);
    return std::move(*this);
  }

  static ParamSpec integer(std::string name, std::string label, std::string help, double def, double min,
                           double max, bool log = false);
  static ParamSpec real(std::string name, std::string label, std::string help, double def, double min,
                        double max, bool log = false);
  static ParamSpec choice(std::string name, std::string label, std::string help,
                          std::vector<std::string> choices, int def = 0);
  static ParamSpec flag(std::string name, std::string label, std::string help, bool def);
};

std::string toString(ParamKind);
/// A bound or value of `spec` as text: integers as integers, reals with up to six significant digits
/// ("0.05", "1e-06", "100"), never rounded to an integer.
std::string formatBound(const ParamSpec& spec, double value);

/// Validated parameter values. Every spec has a value (its default unless set).
/// Choices are stored as the index of the choice.
class Params {
 public:
  double number(const std::string& name) const;
  Index integer(const std::string& name) const { return static_cast<Index>(number(name)); }
  bool flag(const std::string& name) const { return number(name) != 0; }
  const std::string& choice(const std::string& name) const;
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, double>& values() const { return values_; }
  /// Messages about values that were clamped into range (shown to the user, never silent).
  const std::vector<std::string>& notes() const { return notes_; }

  /// Builds Params from specs and raw NAME=VALUE strings. Unknown names and unparsable values are a
  /// UserError naming the valid options; out-of-range numbers are clamped and noted.
  static Params resolve(const std::vector<ParamSpec>& specs, const std::map<std::string, std::string>& raw);
  /// Same, from numbers (GUI controls). Choice values are indices.
  static Params resolveNumbers(const std::vector<ParamSpec>& specs, const std::map<std::string, double>& raw);

 private:
  std::map<std::string, double> values_;
  std::map<std::string, std::string> choice_text_;
  std::vector<std::string> notes_;
};

}  // namespace attn
