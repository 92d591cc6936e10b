// The mask-pattern engine of the fixed-pattern mechanisms (CATALOG.md F1): a pattern is built from
// named components, each adding keys row by row; attention is masked softmax over the pattern on the
// backend (Backend::sparseAttention), with exact implied weights. A mechanism file then only says
// which keys each component adds.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

class PatternBuilder {
 public:
  /// A rows × cols pattern; with `causal`, keys j > i are dropped from every component.
  PatternBuilder(Index rows, Index cols, bool causal) : rows_(rows), cols_(cols), causal_(causal) {}
  /// Component `name`: keys(i, out) appends the keys of row i (any order; duplicates and keys outside
  /// 0..cols−1 are ignored). A pair added by several components is tagged with the first one added.
  /// build() calls keys from several threads at once: it must be a pure function of i (random keys are
  /// drawn beforehand, as BigBird's blocks are, or from a generator seeded by the row, as SCRAM's).
  void add(std::string name, std::function<void(Index, std::vector<Index>&)> keys);
  /// The CSR pattern (columns ascending), blocks of rows in parallel. Polls cancellation per block.
  Pattern build(const RunOptions& options) const;

 private:
  Index rows_, cols_;
  bool causal_;
  std::vector<std::string> names_;
  std::vector<std::function<void(Index, std::vector<Index>&)>> components_;
};

/// Masked softmax attention over `pattern` (scale 1/√d) on the backend: fills r.output, the implied
/// weights (exact: softmax restricted to the pattern), r.explanation.pattern and the cost.
void attendPattern(const Inputs& in, std::shared_ptr<const Pattern> pattern, Backend& backend,
                   const RunOptions& options, Result& r);

/// What a PatternBuilder pattern of `entries` pairs and attendPattern over it hold at their peak (the pattern
/// while built, its copy in the explanation, the attention's working rows for up to `keys` keys a row), added
/// to `plan` as one term blamed on `parameter`; the attention's FLOPs go to plan.flops.
void planPattern(RunPlan& plan, const RunShape& shape, double entries, double keys, const std::string& what,
                 const std::string& parameter, const std::string& advice = {});

/// What a two-hop view (composePatterns of a pattern of `entries` pairs with itself, up to `max_entries`) and
/// the step copy of the pattern hold, added to `plan` when options.explain.
void planTwoHops(RunPlan& plan, const RunShape& shape, double entries, const RunOptions& options,
                 double max_entries = double(Index(1) << 24));

/// Boolean composition p∘q: i → j when i → k in p and k → j in q (pairs reachable in two hops,
/// e.g. two layers), tagged "2 hops". With `residual`, each layer also passes a token to itself (a
/// residual connection): i → j also when i → j in p or in q, or i = j. nullopt past max_entries.
std::optional<Pattern> composePatterns(const Pattern& p, const Pattern& q, Index max_entries, bool residual = false);

/// A step showing a pattern (with no weights): for composed reachability and per-layer masks.
Step patternStep(std::string title, std::string caption, Pattern pattern);

}  // namespace attn::mech
