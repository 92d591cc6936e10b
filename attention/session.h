// A session file of the window (File → Save session) parsed and checked without Qt, so the window, the CLI
// and a fuzz target share one reader: values out of range are clamped and each clamp is said in the notes;
// the file and every string in it are capped in size; a value of the wrong type is a message naming its key.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attention/inputs.h"
#include "attention/params.h"
#include "attention/types.h"

namespace attn::session {

inline constexpr std::size_t kMaxFileBytes = std::size_t(1) << 20;  ///< a session is a few KiB
inline constexpr std::size_t kMaxString = 4096;                     ///< any string in it (a path at most)
/// The ranges the window offers for a generated input (its spin boxes): a session's values are clamped to them.
inline constexpr Index kMaxN = 16384;
inline constexpr Index kMaxD = 1024;
inline constexpr std::uint64_t kMaxSeed = 2147483647;
inline constexpr double kMinTemperature = 0.01, kMaxTemperature = 100;
inline constexpr Index kMaxClusters = 4096, kMaxPeriod = 16384, kMaxHeavyHitters = 4096;
inline constexpr double kMaxNoise = 10, kMinLengthScale = 0.1, kMaxLengthScale = 65536, kMaxPositionWeight = 100;

struct View {
  std::string scale, pooling, colormap, order;  ///< empty: not given (or not a string)
  std::optional<double> floor;
  std::optional<std::array<double, 4>> zoom;  ///< row0, row1, col0, col1 as fractions, kept inside the matrix
};

struct Session {
  std::string mechanism;
  std::map<std::string, double> params;  ///< the mechanism's values, clamped to its ranges when they are known
  InputSpec input;                       ///< generator, N, d (= dv), seed, temperature and knobs (an image
                                         ///< by its name or path: a file's pixels are read by the front end)
  bool causal = false;
  std::string backend = "auto";
  std::optional<View> view;
  nlohmann::json curves;                 ///< the Curves dock's own settings (it checks them), null when absent
  std::optional<std::vector<std::string>> compare;
  std::map<std::string, std::map<std::string, double>> compare_params;
  std::string imported;                  ///< the file its inputs were imported from, if any
  std::vector<std::string> notes;        ///< each value clamped, each entry skipped (for the window to show)
  std::vector<std::string> skipped;      ///< entries not applied ("window", "performer.kernel")
};

/// A mechanism's parameters by id (nullptr: unknown id), for clamping; the parser itself knows no mechanism.
using ParamLookup = std::function<const std::vector<ParamSpec>*(const std::string& id)>;

/// A session from its JSON; `base` gives the input values a session does not name. Failure: a message.
Expected<Session> parse(const nlohmann::json& j, const InputSpec& base = defaultInput(), const ParamLookup& lookup = {});
/// The same from the file's text (at most kMaxFileBytes).
Expected<Session> parseText(std::string_view text, const InputSpec& base = defaultInput(), const ParamLookup& lookup = {});
/// A session file's text, refused when it is not a regular file or is larger than kMaxFileBytes.
Expected<std::string> readFile(const std::string& path);

}  // namespace attn::session
