// ccnet — Huang et al. 2018 (arXiv 1811.11721), CATALOG.md #4, CCNet: Criss-Cross Attention for Semantic
// Segmentation. The tokens are an H×W grid in raster order (W from the `width` param, or gridWidth(): the
// grid of the `image` input).
//  - One loop: pixel u = (y, x) attends with one softmax to its criss-cross set Ω_u, its whole column and its
//    whole row, H + W − 1 keys with the centre once (the official code masks the centre's duplicate in the
//    column branch with −∞). On the backend: Backend::sparseAttention over the cross pattern.
//  - R loops with shared weights (RCCA, R = 2 in the paper and the README's best model): the output of a loop
//    is the next loop's values. Every loop reuses the inputs' Q and K, so the implied weights are A^R
//    (CATALOG (d): "the composite A_R2 = A·A is exact"); formed row by row from A's sparse entries
//    (grid_engine's composedWeights), never N×N.
//  - Causal (CATALOG (b)): the column above and the row to the left (PatternBuilder's j ≤ i). Composed, these
//    reach only the pixels above and to the left (y' ≤ y, x' ≤ x) at any R: a note says so.
// Stand-ins: Q, K and V are the inputs' (the image input's Q = K = [colour, position] features), γ = 1, and
// the residual and the 1×1 / 3×3 convolutions around the module are left out.
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr Index kMaxRecurrence = 4;
constexpr Index kMaxReachEntries = Index(1) << 24;  // reach patterns (views) up to this many pairs

class Ccnet final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "ccnet", "CCNet criss-cross attention",
        "Huang, Wang, Wei, Huang, Shi, Liu, Huang. CCNet: Criss-Cross Attention for Semantic Segmentation",
        "1811.11721", 2018, Family::FixedSparse, "O(N·√N·d), R·N·(H+W−1)·d on an H×W grid", CausalSupport::Yes,
        "Each pixel attends to its own row and column (H + W − 1 keys); the same criss-cross attention applied "
        "R = 2 times gives every pixel a two-hop path to every other.",
        "Q, K, V: the inputs' (on the image input Q = K = [colour, position]) instead of the 1×1 convs; γ = 1; the "
        "residual and the convs around the module left out",
        true,
        {"convention: logits q·k/√d as everywhere in attnlab; the official code (cc_attention) uses q·k unscaled",
         "convention: every loop reuses the inputs' Q and K, so R loops give A^R; the official RCCA recomputes Q "
         "and K from the previous loop's output",
         "convention: the causal form (the column above, the row to the left) is attnlab's, from CATALOG (b); the "
         "paper has none"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("recurrence", "Loops R", "Criss-cross attention applied R times with shared weights, "
                           "each loop's output the next loop's values; R = 2 (the paper's) links every pixel to "
                           "every other.", 2, 1, double(kMaxRecurrence)),
        widthParam(),
    };
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"width", std::to_string(std::max<Index>(in.n(), 1))}, {"recurrence", "1"}}, 1e-4,
                      "one row (width = N) and one loop: the cross is the whole row, every key"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const Index n = std::max<Index>(s.n, 1);
    const Grid g = gridFor(n, p.integer("width"), "CCNet");
    const Index loops = std::clamp<Index>(p.integer("recurrence"), 1, kMaxRecurrence);
    const double keys = double(g.h + g.w - 1), entries = double(n) * keys;
    planPattern(r, s, entries, keys, "the criss-cross pattern (N × (H + W − 1) pairs)", "width",
                "set width nearer √N (0: the most square grid)");
    r.flops *= double(loops);
    r.add(double(n * s.dv) * sizeof(float), "the previous loop's output (N × dv floats)", "recurrence");
    if (loops > 1) r.add(entries * sizeof(float), "the cross's weights, for the composite A^R (N × (H + W − 1))");
    if (options.explain && loops > 1) {
      planTwoHops(r, s, entries, options, double(kMaxReachEntries));
      const double reach = std::min(double(n) * double(n), double(kMaxReachEntries));
      r.add(double(loops - 2) * patternBytes(reach, double(n)), "the reach of loops 3 … R (formed to be seen)",
            "recurrence");
    }
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "CCNet");
    const Index n = in.n(), loops = std::clamp<Index>(p.integer("recurrence"), 1, kMaxRecurrence);
    const bool causal = options.causal;
    const float scale = defaultScale(in.q.cols());

    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      PatternBuilder b(n, n, causal);
      addCross(b, g);
      return std::make_shared<const Pattern>(b.build(options));
    });
    // Loop 1 on the inputs' values, loops 2 … R on the previous loop's output (the same Q, K and pattern).
    AttentionOutput first = timedStage(r.cost, options, "loop 1", [&] {
      return backend.sparseAttention(in.q, in.k, in.v, *pattern, scale);
    });
    r.output = std::move(first.out);
    for (Index t = 2; t <= loops; ++t)
      r.output = timedStage(r.cost, options, "loop " + std::to_string(t), [&] {
        return backend.sparseAttention(in.q, in.k, r.output, *pattern, scale).out;
      });
    const double nnz = double(pattern->nnz());
    r.cost.scored_pairs = double(loops) * nnz;
    r.cost.flops = 2 * r.cost.scored_pairs * double(in.q.cols() + in.v.cols());
    r.cost.peak_bytes = backend.peakBytes() + pattern->nnz() * Index(sizeof(std::int32_t) + 1) +
                        2 * n * in.v.cols() * Index(sizeof(float));

    // The implied weights: A (one loop), A^t for t loops from A's entries.
    const ImpliedWeights one = patternSoftmaxWeights(std::make_shared<const Matrix>(in.q),
                                                     std::make_shared<const Matrix>(in.k), scale, pattern, first.lse);
    // (A^R is formed to be seen: a run without explanation leaves it out, as it leaves out the steps.)
    std::shared_ptr<const SparseWeights> a;
    if (loops > 1 && options.explain) a = displayStage(r.cost, options, "cross weights", [&] {
      return softmaxStage(in.q, in.k, scale, pattern, first.lse);
    });
    const double keys = double(g.h + g.w - 1);
    auto power = [&](Index t) -> ImpliedWeights {
      if (t == 1) return one;
      if (!a) return {};
      const double work = double(n) * composedRowWork(std::vector<double>(size_t(t), keys), double(n));
      if (work > kMaxComposedWork) return {};
      return composedWeights(std::vector<std::shared_ptr<const SparseWeights>>(size_t(t), a));
    };
    r.explanation.weights = power(loops);
    if (!r.explanation.weights && options.explain) {
      r.explanation.weights_withheld = composedWithheldText(
          "A^" + std::to_string(loops), double(n) * composedRowWork(std::vector<double>(size_t(loops), keys), double(n)));
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    r.explanation.pattern = *pattern;
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back(std::to_string(loops) + (loops == 1 ? " loop" : " loops") + " of " +
                                  std::to_string(g.h + g.w - 1) + " keys per pixel (H + W − 1" +
                                  (causal ? ", fewer when causal)" : ")"));
    if (causal)
      r.explanation.notes.push_back("causal: each loop sees the column above and the row to the left, so any number "
                                    "of loops reaches only the pixels above and to the left (y' ≤ y, x' ≤ x)");
    if (!options.explain) return r;

    // Steps: what t loops reach (the cross composed t times, from the step before) and their weights A^t.
    for (Index t = 1; t <= loops; ++t) {
      std::optional<Pattern> reach;
      if (t == 1) {
        reach = *pattern;
      } else if (const auto& before = r.explanation.steps.back().view->pattern) {
        reach = displayStage(r.cost, options, "reach of " + std::to_string(t) + " loops",
                             [&] { return composePatterns(*before, *pattern, kMaxReachEntries); });
      }
      std::string caption =
          t == 1 ? "One loop: softmax over the pixel's column and row (the centre once)" +
                       std::string(causal ? ", above and to the left only." : ".")
                 : std::to_string(t) + " loops: A^" + std::to_string(t) + ", each loop mixing the previous loop's "
                   "output along the cross again" +
                       (reach ? " (" + std::to_string(reach->nnz()) + " of " + std::to_string(n * n) + " pairs reached)."
                              : "; the reach (more than 2²⁴ pairs) is not formed.");
      r.explanation.steps.push_back(gridStep("R = " + std::to_string(t), std::move(caption), std::move(reach), power(t)));
    }
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeCcnet() { return std::make_shared<Ccnet>(); }
}  // namespace attn::mech
