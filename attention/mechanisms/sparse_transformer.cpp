// sparse-transformer — Child, Gray, Radford, Sutskever 2019 (arXiv 1904.10509), CATALOG.md #8. Each
// query attends with one softmax over the union of two sub-patterns ("merged" head), stride l:
//   strided: S₁(i) = {i−l < j ≤ i} (band),        S₂(i) = {j ≤ i : (i−j) mod l = 0} (every l-th);
//   fixed:   S₁(i) = {j ≤ i : ⌊j/l⌋ = ⌊i/l⌋} (block), S₂(i) = {j ≤ i : j mod l ≥ l − c} (summaries).
// Causal by construction; the bidirectional variant drops j ≤ i (band |i−j| < l, every l-th either
// way, the whole block, summary columns visible to all). Stand-in: no learned weights beyond Q, K, V.
// Sizes as in the paper: l ≈ √N and c a small constant (it uses c ∈ {8, 16, 32} with l ∈ {128, 256}),
// so a row scores ≈ l + c·N/l = O(√N) keys and the layer O(N√N). A c that grew with l (c ∝ l) would
// make c·N/l ∝ N: quadratic. The default c = 8 is capped at ⌈l/4⌉ below l = 32 (N < 1000).
// The teaching view: S₁ and S₂ coloured apart, and the two-hop reachability (two layers of the
// pattern), which reaches every earlier position.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"

namespace attn::mech {
namespace {

class SparseTransformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "sparse-transformer", "Sparse Transformer",
        "Child, Gray, Radford, Sutskever. Generating Long Sequences with Sparse Transformers", "1904.10509", 2019,
        Family::FixedSparse, "O(N·√N·d)", CausalSupport::Native,
        "Factorised attention: a local band or block plus every l-th position (strided) or the last c of "
        "each block (fixed), so any earlier token is two hops away.",
        "",
        true,
        {"convention: one softmax over S₁ ∪ S₂ (the paper's merged head); the paper also alternates S₁, S₂ "
         "across layers or gives each head one",
         "convention: the fixed pattern is position-wise as in the paper's equations; the official blocksparse "
         "layout works in blocks (32 by default), so its c is whole blocks",
         "convention: the bidirectional form (band and stride both ways, summaries seen by all) is attnlab's; "
         "the paper's patterns are causal"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"stride", std::to_string(std::max(in.n(), in.m()))}}, 1e-4,
                      "a stride l ≥ N: the band (strided) or the block (fixed) holds every key"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Pattern", "strided: band + every l-th position (periodic data); fixed: "
                          "block + summary positions (text)", {"strided", "fixed"}, 0),
        ParamSpec::integer("stride", "Stride l", "Band width / block size; 0 picks ⌈√N⌉ (the paper's choice).",
                           0, 0, 1 << 20),
        ParamSpec::integer("summary", "Summary c", "fixed: the last c positions of every block are visible "
                           "to later blocks (the paper uses 8–32 with l = 128 or 256); 0 picks 8, at most "
                           "⌈l/4⌉ (the paper's largest c/l, 32/128).", 0, 0, 1 << 20),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    Index l = p.integer("stride");
    if (l == 0) l = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(s.n, s.m))))));
    const double stride = std::min(double(l), m);  // a stride past the sequence is the whole sequence
    const double c = p.integer("summary") == 0 ? std::min(8.0, double((l + 3) / 4))
                                               : std::min(double(p.integer("summary")), double(l));
    // strided: a band of 2l − 1 and every l-th key; fixed: a block of l and c summary keys of every block.
    const double keys = p.choice("variant") == "strided" ? std::min(2 * stride - 1, m) + m / double(l)
                                                         : stride + std::ceil(m / double(l)) * c;
    planPattern(r, s, n * std::min(keys, m), keys, "the pattern (N × stride-dependent keys per row)", "stride");
    planTwoHops(r, s, n * std::min(keys, m), options);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend&, const RunOptions& options) const override;
};

Result SparseTransformer::run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const {
  Result r;
  const Index n = in.n(), m = in.m();
  Index l = p.integer("stride");
  if (l == 0) l = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(n, m))))));
  // c is a constant, as in the paper (not a fraction of l, which made the summary columns c·N/l ∝ N per
  // row); at small N (l < 32) at most a quarter of the block, the paper's largest ratio (32 of 128).
  const Index c = p.integer("summary") == 0 ? std::min<Index>(8, (l + 3) / 4) : std::min(p.integer("summary"), l);
  if (p.integer("summary") > l)
    r.explanation.notes.push_back("summary c clamped to the stride l = " + std::to_string(l));
  const bool strided = p.choice("variant") == "strided";
  const bool causal = options.causal;

  auto pattern = timedStage(r.cost, options, "pattern", [&] {
    PatternBuilder b(n, m, causal);
    if (strided) {
      b.add("band", [l, causal, m](Index i, std::vector<Index>& out) {
        for (Index j = std::max<Index>(0, i - l + 1); j <= (causal ? i : std::min(m - 1, i + l - 1)); ++j) out.push_back(j);
      });
      b.add("every l-th", [l, causal, m](Index i, std::vector<Index>& out) {
        for (Index j = i % l; j < m && (!causal || j <= i); j += l) out.push_back(j);
      });
    } else {
      b.add("block", [l, m](Index i, std::vector<Index>& out) {
        for (Index j = (i / l) * l; j < std::min(m, (i / l + 1) * l); ++j) out.push_back(j);
      });
      b.add("summary", [l, c, m](Index, std::vector<Index>& out) {
        for (Index b0 = 0; b0 < m; b0 += l)
          for (Index j = b0 + l - c; j < std::min(m, b0 + l); ++j) out.push_back(j);
      });
    }
    return std::make_shared<const Pattern>(b.build(options));
  });
  attendPattern(in, pattern, backend, options, r);

  const std::string s1 = strided ? "band" : "block", s2 = strided ? "every l-th" : "summary";
  r.explanation.notes.push_back("stride l = " + std::to_string(l) + (strided ? "" : ", summary c = " + std::to_string(c)));
  if (!options.explain) return r;
  if (auto two = displayStage(r.cost, options, "two hops",
                              [&] { return composePatterns(*pattern, *pattern, Index(1) << 24); }))
    r.explanation.steps.push_back(patternStep(
        "Two hops", "Pairs reachable through one intermediate token (two layers of this pattern): " +
                        std::string(causal ? "every earlier position." : "every position."),
        std::move(*two)));
  r.explanation.steps.insert(r.explanation.steps.begin(),
                             patternStep("One layer", s1 + " (S₁) and " + s2 + " (S₂), one softmax over both", *pattern));
  return r;
}

}  // namespace
std::shared_ptr<const Mechanism> makeSparseTransformer() { return std::make_shared<SparseTransformer>(); }
}  // namespace attn::mech
