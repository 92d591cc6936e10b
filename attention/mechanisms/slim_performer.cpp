// slim-performer — Likhosherstov et al. 2020 (arXiv 2012.11346), CATALOG.md #44, SLiM Performer: the
// forward pass of causal FAVOR+ (performer) computed in C slices, forming each slice's features from ω when
// it is reached and keeping only the prefix state (m×dv numerator and m normaliser) between slices; the
// backward pass (not run here: attnlab does not train) recomputes each slice in reverse. Same output as
// performer with the same seed and draw. What changes is memory: beyond Q, K, V and the N×dv output, this
// forward pass holds one slice's features and products and the state, (N/C)·(m + d + N/C) + m·(d + dv)
// floats, where performer holds all N×m features (measured with the counting allocator in
// tests/cpu/test_truth_kernel.cpp). Non-causal runs (not in the paper) take two passes: the keys sum the
// state, then the queries read it.
#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kernel_engine.h"

namespace attn::mech {
namespace {

class SlimPerformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "slim-performer", "SLiM Performer",
        "Likhosherstov, Choromanski, Davis, Song, Weller. Sub-Linear Memory: How to Make Performers SLiM",
        "2012.11346", 2020, Family::LowRankKernel,
        "O(N·m·d) time; O((N/C)·(m + d + N/C) + m·(d + dv)) memory beyond Q, K, V and the output",
        CausalSupport::Yes,
        "Causal FAVOR+ computed slice by slice, keeping only the prefix state between slices: performer's output, "
        "with the features' memory set by the slice, not by N (the paper's saving is in training).",
        "", true,
        {"convention: non-causal runs take two passes (the keys sum the state, then the queries read it); the paper's "
         "algorithm is the causal prefix-sum form"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("slices", "Slices C", "The sequence is processed in C slices; only the state crosses "
                           "them.", 8, 1, 1 << 16, true),
        ParamSpec::integer("features", "Random features m", "As performer.", 256, 1, 8192, true),
        ParamSpec::flag("orthogonal", "Orthogonal features", "As performer.", true),
        ParamSpec::integer("draw", "Feature draw", "As performer: the same draw gives performer's output.", 0, 0, 1000),
    };
  }

  /// m → ∞: performer's: φ(q)·φ(k) is an unbiased estimate of exp(q·k/√d), so the normalised output converges to softmax
  /// attention, its error falling as 1/√m. Checked at m = 8192 on logits ≲ 1 (q, k scaled by ¼), where it is
  /// ≈ 0.01 (0.03 at m = 1024); at the generators' logits (up to ≈ 14) it is still ≈ 0.6 at m = 8192.
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"features", "8192"}}, 0.05,
                      "m → ∞ random features; the error falls as 1/√m but grows as exp(‖q + k‖²/√d): checked at "
                      "m = 8192 with q, k scaled by ¼ (logits ≲ 1)",
                      0.25};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index m = p.integer("features");
    const Index slices = std::clamp<Index>(p.integer("slices"), 1, std::max<Index>(1, s.m));  // as run() clamps
    const Index slice = (std::max(s.n, s.m) + slices - 1) / slices;
    r.add(slicedFavorBytes(s.n, m, s.d, s.dv, slice, options.causal) + double(m * s.d) * sizeof(float),
          "the output, the state and one slice's features (features × (dv + slice))", "features");
    r.add(double(s.n + s.m) * double(m) * sizeof(float) * 1.5, "the feature maps' working rows ((N + M) × features)",
          "features");
    if (options.explain)  // the state after every slice, for the steps
      r.add(double(slices) * double(m) * double(s.dv + 1) * sizeof(float) * 2,
            "the state after each slice (slices × "
            "features × dv, kept to be seen)",
            "slices");
    const double features = double(m), sl = double(slice), n = double(s.n);
    r.flops = 4.0 * n * features * double(s.dv) + (options.causal ? 2.0 * n * sl * (features + double(s.dv)) : 0.0) +
              2.0 * (n + double(s.m) * (options.causal ? 1.0 : 2.0)) * features * double(s.d);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), dv = in.v.cols(), d = in.q.cols(), m = p.integer("features");
    // The same directions as performer (same seed stream), so the outputs agree.
    const std::uint64_t stream = 4000 + std::uint64_t(p.integer("draw"));
    const Matrix omega = timedStage(r.cost, options, "random features",
                                    [&] { return randomFeatures(m, d, p.flag("orthogonal"), options.seed, stream); });
    const Index slices = std::clamp<Index>(p.integer("slices"), 1, std::max<Index>(1, in.m()));
    if (slices != p.integer("slices"))
      r.explanation.notes.push_back("slices clamped to " + std::to_string(slices) + " (one token per slice)");
    SlicedFavor c = timedStage(r.cost, options, "attend (sliced)", [&] {
      return slicedFavorAttention(in, omega, options.causal, slices, backend, options, options.explain);
    });
    r.output = std::move(c.out);
    const double forward = slicedFavorBytes(n, m, d, dv, c.slice, options.causal);
    const double unsliced = slicedFavorBytes(n, m, d, dv, std::max<Index>(n, in.m()), options.causal);
    r.explanation.notes.push_back(std::to_string(slices) + " slices of " + std::to_string(c.slice) + " tokens: " +
                                  std::to_string(std::lround(forward / 1024.0)) + " KiB held beyond Q, K, V (" +
                                  std::to_string(std::lround(unsliced / 1024.0)) +
                                  " KiB with C = 1); the paper's concern is training, whose backward pass (not run "
                                  "here) recomputes each slice");

    if (options.explain) {
      // The implied weights need all of φ(Q) and φ(K): formed only to be seen (performer's features, whose
      // scale the normalisers share).
      const RandomFeatures f = displayStage(r.cost, options, "features for the implied weights", [&] {
        return performerFeatures(in, FeatureMap::PositiveRandom, m, p.flag("orthogonal"), false, options.causal,
                                 options.seed, stream, backend);
      });
      auto kernel = std::make_shared<WeightKernel>();
      kernel->kind = WeightKernel::Kind::Linear;
      kernel->a = f.phi_q;
      kernel->b = f.phi_k;
      kernel->row_term =
          c.normaliser.unaryExpr([](float den) { return den > 0 && std::isfinite(den) ? 1.0f / den : 0.0f; });
      kernel->causal = options.causal;
      r.explanation.weights = ImpliedWeights(std::move(kernel));

      // Bytes held by this forward pass against C (the paper's "peak memory vs C" curve, for the forward).
      Matrix curve(2, 0);
      for (Index cs = 1; cs <= std::max<Index>(1, in.m()); cs *= 2) {
        const Index slice = (std::max<Index>(1, in.m()) + cs - 1) / cs;
        curve.conservativeResize(2, curve.cols() + 1);
        curve(0, curve.cols() - 1) = float(cs);
        curve(1, curve.cols() - 1) = float(slicedFavorBytes(n, m, d, dv, slice, options.causal));
        if (slice == 1) break;
      }
      r.explanation.factors.push_back({"forward bytes vs slices C",
                                       "row 1: C; row 2: bytes this forward pass holds beyond Q, K, V (the output, "
                                       "ω, the state, one slice's features and products)",
                                       curve});
      // Steps: the state at each slice boundary (what the forward pass keeps).
      const size_t shown = std::min<size_t>(c.states.size(), 8);
      for (size_t s = 0; s < shown; ++s) {
        const size_t at = (c.states.size() - 1) * s / std::max<size_t>(1, shown - 1);
        auto view = std::make_shared<Explanation>();
        const Matrix& st = c.states[at];
        const float hi = st.cwiseAbs().maxCoeff();
        view->factors.push_back({"state S after token " + std::to_string(c.boundaries[at]),
                                 "m × dv " + std::string(options.causal ? "prefix " : "") + "state Σφ(k)vᵀ, |S| scaled to 0..1",
                                 hi > 0 ? Matrix(st.cwiseAbs() / hi) : st});
        r.explanation.steps.push_back({"slice " + std::to_string(at + 1),
                                       options.causal ? "Checkpoint: the state after token " +
                                                            std::to_string(c.boundaries[at]) +
                                                            " is all that is kept to compute the next slice."
                                                      : "The keys' state after token " + std::to_string(c.boundaries[at]) +
                                                            "; the queries read the final one, slice by slice.",
                                       view});
      }
    }
    const double features = double(m), slice = double(c.slice);
    r.cost.scored_pairs = 0;
    r.cost.flops = 4.0 * double(n) * features * double(dv) +
                   (options.causal ? 2.0 * double(n) * slice * (features + double(dv)) : 0.0) +
                   2.0 * (double(n) + double(in.m()) * (options.causal ? 1.0 : 2.0)) * features * double(d);
    r.cost.peak_bytes = backend.peakBytes() + Index(forward);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSlimPerformer() { return std::make_shared<SlimPerformer>(); }
}  // namespace attn::mech
