// The summary (span-node) engine of the hierarchical and global-token mechanisms (BP-Transformer,
// multi-scale, ETC, memory-compressed, …): queries attend to tokens and to summary nodes, each node
// the mean of the keys and values of a span of tokens (the analytic stand-in for learned pooling,
// CATALOG.md). Attention is one softmax over a query's tokens and nodes on the backend
// (Backend::sparseAttention over the extended key set [K; node keys]); the implied weights spread a
// node's weight uniformly over its span, so A_eff is exact and O = A_eff·V.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

struct SummaryNode {
  Range span;     ///< the tokens it summarises
  int level = 1;  ///< for colours and captions (1: the finest summaries)
};

/// Per-query lists of what each query attends: token keys and summary nodes.
struct SummaryPattern {
  Index rows = 0, tokens = 0;
  std::vector<SummaryNode> nodes;
  std::vector<std::vector<std::int32_t>> token_keys;  ///< per row, ascending
  std::vector<std::vector<std::int32_t>> node_keys;   ///< per row, indices into nodes
  std::vector<std::string> level_names;               ///< level_names[0] "token", [ℓ] the name of level ℓ
};

/// The multi-resolution ("fovea") pattern of BP-Transformer and the multi-scale retina: each token
/// attends to `window` tokens on each side, then at every level ℓ ≥ 1 to `per_level` aligned spans of
/// base^ℓ tokens further out on each side (the left side only when causal), first filling the gap to
/// the level's alignment with spans of the level below (a child span instead of an overlapping one).
/// With `children_count`, those children are among the level's `per_level` nodes (BP-Transformer's
/// graph builder: at most one child, then per_level − 1 spans); without, per_level spans follow them.
/// The spans a token sees tile the whole sequence (its past, when causal) exactly once.
SummaryPattern foveaPattern(Index n, Index window, Index per_level, Index base, bool causal, bool children_count,
                            const RunOptions& options);

/// Runs the attention; fills r.output, the implied weights, r.explanation.pattern (the token pairs
/// scored one by one), a "Coverage" step (each pair (i, j) tagged with the level of the token or node
/// that covers it, when N·M ≤ max_coverage), the summary nodes as special tokens, and the cost.
void attendWithSummaries(const Inputs& in, std::shared_ptr<const SummaryPattern> sp, Backend& backend,
                         const RunOptions& options, Result& r, Index max_coverage = Index(1) << 22);

/// What attendWithSummaries holds at its peak, added to `plan`: `token_keys` tokens and `node_keys` nodes per
/// query over `nodes` summary nodes (the per-row lists, the extended keys and pattern, the pattern shown, the
/// coverage view when explaining and N·M ≤ max_coverage), blamed on `parameter` (with `advice`); its FLOPs go to
/// plan.flops.
void planSummaries(RunPlan& plan, const RunShape& shape, double token_keys, double node_keys, double nodes,
                   const RunOptions& options, const std::string& parameter, const std::string& advice = {},
                   Index max_coverage = Index(1) << 22);

}  // namespace attn::mech
