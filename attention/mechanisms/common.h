// Small helpers shared by the mechanism files.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "attention/mechanism.h"

namespace attn::mech {

/// Times a stage into cost.stages and polls cancellation after it.
template <class Fn>
auto timedStage(Cost& cost, const RunOptions& options, const std::string& name, Fn&& fn, bool display_only = false) {
  const auto start = std::chrono::steady_clock::now();
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
    cost.stages.push_back({name, millisecondsSince(start), display_only});
    options.checkCancel();
  } else {
    auto value = fn();
    cost.stages.push_back({name, millisecondsSince(start), display_only});
    options.checkCancel();
    return value;
  }
}

/// A stage run only to be seen (under RunOptions::explain): views report the mechanism's time without it.
template <class Fn>
auto displayStage(Cost& cost, const RunOptions& options, const std::string& name, Fn&& fn) {
  return timedStage(cost, options, name, std::forward<Fn>(fn), true);
}

/// x with `digits` digits after the point ("0.125"), for captions and notes.
std::string fixedDigits(double x, int digits);

/// 1/√d, the logit scale every mechanism here uses.
inline float defaultScale(Index d) { return 1.0f / std::sqrt(static_cast<float>(d)); }

/// UserError for a mechanism that has no causal form.
inline void requireNonCausal(const MechanismInfo& info, const RunOptions& options) {
  if (options.causal)
    throw UserError(info.title + " has no causal form (" + info.id +
                    " mixes future tokens by construction); turn causal off or pick a causal mechanism");
}

/// Above this many pairs an all-keys pattern (5 bytes a pair) is not formed (views say why).
constexpr Index kMaxAllKeysPatternEntries = Index(1) << 25;
/// Bytes of the all-keys pattern a run forms to be seen (options.explain, at most kMaxAllKeysPatternEntries
/// pairs; 0 otherwise), for Mechanism::plan.
double allKeysPatternBytes(const RunShape& shape, const RunOptions& options);
/// The N×M pattern of every pair (each row sees every key: i-clustered, Informer's lazy rows, Sinkhorn's
/// mixed blocks), the component of row i's entries from part(i, out[0..M)).
Pattern allKeysPattern(Index n, Index m, std::vector<std::string> components,
                       const std::function<void(Index, std::uint8_t*)>& part);

/// Builds a CSR pattern from per-row sorted column lists with per-entry components.
Pattern patternFromRows(Index rows, Index cols, const std::vector<std::vector<std::int32_t>>& col_lists,
                        const std::vector<std::vector<std::uint8_t>>& comp_lists, std::vector<std::string> components);

}  // namespace attn::mech
