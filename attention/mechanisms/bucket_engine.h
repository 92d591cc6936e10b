// The sort-and-chunk bucketing engine of the content-based sparse mechanisms (CATALOG.md E3): Reformer,
// SMYRF and Routing. Each round gives every query and every key a label (an LSH bucket, a balanced
// cluster, a k-means cluster). A query attends to the keys that share its label, optionally only within
// its chunk (and the previous one) of the order sorted by (label, position), or (same_label_in_chunk off)
// to every key of those chunks. Rounds are united exactly by default: each round attends with
// −log(#rounds sharing the pair) added to every logit and the rounds are combined by their log-normalisers,
// which is softmax over the union of the rounds' pairs (count_pairs_once off: a pair weighs once per round).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

/// One round: a label per query and per key (labels 0..groups−1).
struct BucketRound {
  std::string name;                   ///< "round 1", "hash 2", …
  std::vector<std::int32_t> q_label;  ///< N
  std::vector<std::int32_t> k_label;  ///< M
  std::int32_t groups = 1;
};

struct BucketOptions {
  /// Chunk length m of the sorted order; 0 = no chunking (a query sees every key of its label). Chunking
  /// sorts the tokens (queries and keys are the same tokens: needs N = M) by (query label, position).
  Index chunk = 0;
  bool previous_chunk = false;  ///< a chunk also sees the chunk before it (in sorted order)
  /// With chunking: true, a query sees only the keys of its own label in those chunks (the Reformer paper's
  /// equations, trax's 2019 LSHCausalAttention); false, every key there whatever its label (trax's
  /// LSHSelfAttention).
  bool same_label_in_chunk = true;
  /// true: a pair that several rounds find counts once (−log of its count on each round's logit: softmax
  /// over the union, the Reformer paper's N_ij). false: once per round that finds it, rounds combined by
  /// their log-normalisers alone (trax's LSHSelfAttention, the SMYRF code): w_ij ∝ c_ij·exp(logit).
  bool count_pairs_once = true;
  /// Shared-QK rule: a token attends to itself only when it has no other key (over all rounds).
  bool self_rule = false;
  bool causal = false;  ///< keys j ≤ i only
  float scale = 1;
};

struct BucketAttention {
  std::shared_ptr<const Pattern> pattern;             ///< union of the rounds (component = first round)
  std::vector<std::shared_ptr<const Pattern>> rounds; ///< each round's pairs (after the self rule)
  std::vector<std::vector<std::int32_t>> order;       ///< per round: sorted position → token (chunking)
  std::vector<std::vector<std::int32_t>> chunk;       ///< per round: chunk of each token (chunking)
};

/// Runs the rounds on the backend: fills r.output, the exact implied weights (of the union, or with each
/// pair's round count as its multiplicity), the pattern and the cost (scored pairs, FLOPs of the attention, peak bytes). Stages "chunk" and "attend + combine".
BucketAttention attendBuckets(const Inputs& in, std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k,
                              const std::vector<BucketRound>& rounds, const BucketOptions& options, Backend& backend,
                              const RunOptions& run, Result& r);

/// What attendBuckets holds at its peak, added to `plan`: `rounds` rounds of at most `keys` keys per query
/// (each round's pairs, their union, the biases, the patterns and the rounds' outputs), blamed on
/// `parameter` with `advice`; the FLOPs of the attention are added to plan.flops.
void planBuckets(RunPlan& plan, const RunShape& shape, Index rounds, double keys, const std::string& parameter,
                 const std::string& advice);

/// The "same label" pattern of a grouping (i → j when label_i = label_j; j ≤ i when causal), its
/// components named by group ("bucket 1", …; above 8 groups, group g takes colour g mod 8): what a hash or a clustering means
/// for the N×N matrix. Empty optional above max_entries pairs.
std::optional<Pattern> sameGroupPattern(const std::vector<std::int32_t>& q_label,
                                        const std::vector<std::int32_t>& k_label, std::int32_t groups,
                                        const std::string& noun, bool causal, Index max_entries = Index(1) << 25);

/// Legend names of groups drawn in the views' 8 categorical colours (group g in colour g mod 8):
/// "cluster 1", … or, above 8 groups, "cluster 1, 9, …".
std::vector<std::string> groupColourNames(std::int32_t groups, const std::string& noun);

}  // namespace attn::mech
