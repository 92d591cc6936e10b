// performer-v1 — Choromanski et al. 2020a (arXiv 2006.03555), CATALOG.md #33, FAVOR: the softmax kernel
// through trigonometric random features. With x = q/d^(1/4), exp(q·k/√d) = exp(‖q̃‖²/2)·exp(‖k̃‖²/2)·
// exp(−‖q̃ − k̃‖²/2), and the Gaussian factor is estimated by φ(x) = exp(‖x‖²/2)/√m·[sin(ω·x), cos(ω·x)].
// Unbiased, but the terms have either sign: where the true kernel is tiny the estimate is noisy, can be
// negative, and normalisers near 0 make rows unstable — the failure FAVOR+ (performer) fixes. Rows with
// a normaliser ≤ 0, or cancelled below 1e-3 of the size of its terms, output 0 (counted in a note). Causal: prefix sums.
// ω comes from the same sampler as performer's (Haar-correct orthogonal blocks); the sign fix changes nothing
// here, since sin(ω·x)sin(ω·y) + cos(ω·x)cos(ω·y) = cos(ω·(x − y)) is even in ω.
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kernel_engine.h"

namespace attn::mech {
namespace {

class PerformerV1 final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "performer-v1", "Performer v1 (FAVOR, trigonometric)",
        "Choromanski et al. Masked Language Modeling for Proteins via Linearly Scalable Long-Context Transformers",
        "2006.03555", 2020, Family::LowRankKernel, "O(N·m·d)", CausalSupport::Yes,
        "Estimate the softmax kernel with trigonometric random features sin/cos(ω·x): unbiased but of either "
        "sign, unstable where the kernel is small.",
        "", true,
        {"convention: rows whose normaliser is ≤ 0, or cancelled below 1e-3 of its terms' size, output 0 (counted "
         "in a note): there the estimate is noise"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("features", "Random features m", "Directions ω; φ has 2m columns (sin and cos).", 256, 1,
                           8192, true),
        ParamSpec::flag("orthogonal", "Orthogonal features", "Block-orthogonal ω (ORF) instead of i.i.d.", true),
        ParamSpec::integer("draw", "Feature draw", "Redraw ω: each draw is an independent estimate.", 0, 0, 1000),
    };
  }

  /// m → ∞: the sin/cos features give an unbiased estimate of exp(q·k/√d), so the normalised output converges
  /// to softmax attention, its error falling as 1/√m. Checked at m = 8192 on logits ≲ 1 (q, k scaled by ¼),
  /// where it is ≈ 0.003; at the generators' logits rows lose their normalisers and it is ≈ 0.3.
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"features", "8192"}}, 0.05,
                      "m → ∞ random features; the error falls as 1/√m but grows with the logits: checked at m = 8192 "
                      "with q, k scaled by ¼ (logits ≲ 1)",
                      0.25};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    r.flops = 0;
    const double m = double(p.integer("features"));
    planKernel(r, s, 2 * m, m, "features");  // sin and cos of each direction
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index m = p.integer("features"), n = in.n();
    const RandomFeatures f = timedStage(r.cost, options, "random features", [&] {
      return performerFeatures(in, FeatureMap::Trigonometric, m, p.flag("orthogonal"), false, options.causal,
                               options.seed, 3300 + std::uint64_t(p.integer("draw")), backend);
    });
    // Rows whose normaliser cancelled below 1e-3 of its terms are dropped like those ≤ 0 (see attendKernel).
    const KernelAttention k = attendKernel(in, f.phi_q, f.phi_k, options.causal, backend, options, r, 1e-3f);
    r.cost.flops += 2.0 * double(in.n() + in.m()) * double(m) * double(in.q.cols());
    r.cost.peak_bytes += f.omega.size() * Index(sizeof(float));
    // The denominators, sorted: where they reach 0 or below, rows are unstable or lost.
    Matrix den(n, 1);
    for (Index i = 0; i < n; ++i) den(i, 0) = k.normaliser(i);
    std::sort(den.data(), den.data() + n);
    const float typical = n ? std::abs(den(n / 2, 0)) : 1.0f;
    Index tiny = 0;
    for (Index i = 0; i < n; ++i) tiny += std::abs(den(i, 0)) < 1e-2f * typical ? 1 : 0;
    r.explanation.factors.push_back({"ω", "random directions, m×d", f.omega});
    r.explanation.factors.push_back({"normalisers, sorted", "φ(q_i)·Σφ(k): ≤ 0 or near 0 makes a row unstable", den});
    r.explanation.notes.push_back(std::to_string(tiny) + " of " + std::to_string(n) +
                                  " normalisers within 1% of 0 (relative to the median)");
    auto draw = std::make_shared<Explanation>();
    draw->factors.push_back(r.explanation.factors.front());
    auto map = std::make_shared<Explanation>();
    map->factors.push_back({"φ(Q), first 64 tokens", "exp(‖x‖²/2)/√m·[sin ωx, cos ωx]: features of either sign",
                            f.phi_q->topRows(std::min<Index>(n, 64))});
    auto attend = std::make_shared<Explanation>();
    attend->weights = r.explanation.weights;
    r.explanation.steps = {
        {"draw ω", "Draw m random directions.", draw},
        {"feature map", "φ(q), φ(k) = exp(‖x‖²/2)/√m·[sin, cos](ω·x): their dot product estimates exp(q·k/√d).", map},
        {"attend", "O = D⁻¹φ(Q)(φ(K)ᵀV); entries and normalisers may be negative.", attend},
    };
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makePerformerV1() { return std::make_shared<PerformerV1>(); }
}  // namespace attn::mech
