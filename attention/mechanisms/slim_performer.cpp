// slim-performer — Likhosherstov et al. 2020 (arXiv 2012.11346), CATALOG.md #44, SLiM Performer: the
// forward pass of causal FAVOR+ (performer) computed in C slices, keeping only the prefix state
// (m×dv numerator and m normaliser) at slice boundaries; the backward pass (not run here: attnlab does
// not train) recomputes each slice in reverse. Same output as performer with the same seed and draw;
// what changes is memory: the attention layer's activations scale with the slice, N/C, not with N.
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
        "2012.11346", 2020, Family::LowRankKernel, "O(N·m·d) time, O((N/C)·(m + d) + m·d) memory",
        CausalSupport::Yes,
        "Causal FAVOR+ computed slice by slice, keeping only the prefix state between slices: the same output "
        "with memory set by the slice, not by N.",
        "", true};
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

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), dv = in.v.cols(), d = in.q.cols(), m = p.integer("features");
    // The same features as performer (same seed stream), so the outputs agree.
    const RandomFeatures f = timedStage(r.cost, options, "random features", [&] {
      return performerFeatures(in, FeatureMap::PositiveRandom, m, p.flag("orthogonal"), false, options.causal,
                               options.seed, 4000 + std::uint64_t(p.integer("draw")), backend);
    });
    const Index slices = std::clamp<Index>(p.integer("slices"), 1, std::max<Index>(1, in.m()));
    if (slices != p.integer("slices"))
      r.explanation.notes.push_back("slices clamped to " + std::to_string(slices) + " (one token per slice)");
    const ChunkedLinear c = timedStage(r.cost, options, "attend (sliced)", [&] {
      return chunkedLinearAttention(*f.phi_q, *f.phi_k, in.v, options.causal, slices, backend, options);
    });
    r.output = c.out;
    auto kernel = std::make_shared<WeightKernel>();
    kernel->kind = WeightKernel::Kind::Linear;
    kernel->a = f.phi_q;
    kernel->b = f.phi_k;
    kernel->row_term = c.normaliser.unaryExpr([](float den) { return den > 0 && std::isfinite(den) ? 1.0f / den : 0.0f; });
    kernel->causal = options.causal;
    r.explanation.weights = ImpliedWeights(std::move(kernel));

    // Memory of the attention layer's activations: features of one slice and its local products, plus the
    // state, against C (the paper's "peak memory vs C" curve, in floats × 4 bytes).
    const double slice = double(c.slice), features = double(f.phi_q->cols());
    auto bytes = [&](double per) {
      return 4.0 * (per * (2 * features + double(dv)) + per * per + features * double(dv + 1));
    };
    Matrix curve(2, 0);
    for (Index cs = 1; cs <= std::max<Index>(1, n); cs *= 2) {
      curve.conservativeResize(2, curve.cols() + 1);
      curve(0, curve.cols() - 1) = float(cs);
      curve(1, curve.cols() - 1) = float(bytes(std::ceil(double(n) / double(cs))));
      if (cs > n / 2) break;
    }
    r.explanation.factors.push_back({"activation bytes vs slices C", "row 1: C; row 2: bytes of one slice's "
                                     "features and products plus the state (the backward pass's peak)", curve});
    r.explanation.notes.push_back(std::to_string(c.boundaries.size()) + " slices of " + std::to_string(c.slice) +
                                  " tokens: " + std::to_string(std::lround(bytes(slice) / 1024.0)) +
                                  " KiB of activations instead of " + std::to_string(std::lround(bytes(double(n)) / 1024.0)) +
                                  " KiB unsliced");
    // Steps: the prefix state at each slice boundary (what the forward pass keeps).
    const size_t shown = std::min<size_t>(c.states.size(), 8);
    for (size_t s = 0; s < shown; ++s) {
      const size_t at = (c.states.size() - 1) * s / std::max<size_t>(1, shown - 1);
      auto view = std::make_shared<Explanation>();
      const Matrix& st = c.states[at];
      const float hi = st.cwiseAbs().maxCoeff();
      view->factors.push_back({"state S after token " + std::to_string(c.boundaries[at]),
                               "m × dv prefix state Σφ(k)vᵀ, |S| scaled to 0..1",
                               hi > 0 ? Matrix(st.cwiseAbs() / hi) : st});
      r.explanation.steps.push_back({"slice " + std::to_string(at + 1),
                                     "Checkpoint: the state after token " + std::to_string(c.boundaries[at]) +
                                         " is all that is kept to recompute the next slice.",
                                     view});
    }
    r.cost.scored_pairs = 0;
    r.cost.flops = 4.0 * double(n) * features * double(dv) + 2.0 * double(n) * slice * (features + double(dv)) +
                   2.0 * double(n + in.m()) * features * double(d);
    r.cost.peak_bytes = backend.peakBytes() + Index(bytes(slice)) + n * dv * Index(sizeof(float)) +
                        (n + in.m()) * Index(features) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSlimPerformer() { return std::make_shared<SlimPerformer>(); }
}  // namespace attn::mech
