// performer — Choromanski et al. 2020 (arXiv 2009.14794), CATALOG.md #40, FAVOR+: softmax attention
// through positive orthogonal random features. With x = q/d^(1/4) (and k likewise),
// exp(q·k/√d) = E_ω[φ(q)·φ(k)] for φ(x) = exp(ω·x − ‖x‖²/2)/√m, ω ~ N(0, I_d): an unbiased estimate whose
// terms are all positive, so the implied matrix D⁻¹φ(Q)φ(K)ᵀ is nonnegative and row-stochastic. ω is
// block-orthogonal by default (lower variance), each block Haar-distributed (Q·sign(diag R) of a Gaussian's
// QR: without the signs every direction leans along its own axis and the estimate is biased, as in the
// official code); the hyperbolic variant uses [ω, −ω]. "draw" redraws
// the features (the paper redraws them during training): the spread over draws is the estimator's
// variance. Causal: prefix sums (an RNN). Nothing is learned (CATALOG f).
#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kernel_engine.h"

namespace attn::mech {
namespace {

class Performer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "performer", "Performer (FAVOR+)",
        "Choromanski et al. Rethinking Attention with Performers", "2009.14794", 2020, Family::LowRankKernel,
        "O(N·m·d)", CausalSupport::Yes,
        "Estimate exp(q·k/√d) without bias by positive orthogonal random features φ(q)·φ(k); associativity makes "
        "attention linear in N.",
        "", true,
        {"convention: orthogonal ω blocks are Q·sign(diag R) of a Gaussian's QR (Haar); the official code drops R "
         "(google-research issue #436), which biases the estimate",
         "convention: no ε = 1e-6 is added to the features (the official code adds it), and causal runs leave the "
         "keys unshifted (the code shifts them by a max over all keys)"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("features", "Random features m", "Directions ω (the official default is 256).", 256, 1,
                           8192, true),
        ParamSpec::flag("orthogonal", "Orthogonal features", "Block-orthogonal ω (ORF): lower variance than i.i.d.",
                        true),
        ParamSpec::flag("hyperbolic", "Hyperbolic features", "Use [exp(ω·x), exp(−ω·x)] (2m features, lower "
                        "variance).", false),
        ParamSpec::integer("draw", "Feature draw", "Redraw ω: each draw is an independent estimate.", 0, 0, 1000),
    };
  }

  /// m → ∞: φ(q)·φ(k) is an unbiased estimate of exp(q·k/√d), so the normalised output converges to softmax
  /// attention, its error falling as 1/√m. Checked at m = 8192 on logits ≲ 1 (q, k scaled by ¼), where it is
  /// ≈ 0.01 (0.03 at m = 1024); at the generators' logits (up to ≈ 14) it is still ≈ 0.6 at m = 8192.
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"features", "8192"}}, 0.05,
                      "m → ∞ random features; the error falls as 1/√m but grows as exp(‖q + k‖²/√d): checked at "
                      "m = 8192 with q, k scaled by ¼ (logits ≲ 1)",
                      0.25};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    r.flops = 0;
    const double m = double(p.integer("features")) * (p.flag("hyperbolic") ? 2 : 1);
    planKernel(r, s, m, m, "features");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index m = p.integer("features");
    const RandomFeatures f = timedStage(r.cost, options, "random features", [&] {
      return performerFeatures(in, FeatureMap::PositiveRandom, m, p.flag("orthogonal"), p.flag("hyperbolic"),
                               options.causal, options.seed, 4000 + std::uint64_t(p.integer("draw")), backend);
    });
    attendKernel(in, f.phi_q, f.phi_k, options.causal, backend, options, r);
    const Index d = in.q.cols(), features = f.phi_q->cols();
    r.cost.flops += 2.0 * double(in.n() + in.m()) * double(features) * double(d);
    r.cost.peak_bytes += f.omega.size() * Index(sizeof(float));
    const Index shown = std::min<Index>(in.n(), 64);
    auto draw = std::make_shared<Explanation>();
    draw->factors.push_back({"ω", std::string(p.flag("orthogonal") ? "block-orthogonal" : "i.i.d. Gaussian") +
                                      " directions, " + std::to_string(f.omega.rows()) + "×d", f.omega});
    auto map = std::make_shared<Explanation>();
    map->factors.push_back({"φ(Q), first " + std::to_string(shown) + " tokens",
                            "exp(ω·x − ‖x‖²/2 − shift)/√m, x = q/d^¼: positive features", f.phi_q->topRows(shown)});
    auto attend = std::make_shared<Explanation>();
    attend->weights = r.explanation.weights;
    r.explanation.steps = {
        {"draw ω", "Draw m random directions (orthogonal blocks, Gaussian norms).", draw},
        {"feature map", "φ(q) and φ(k): positive random features whose dot product estimates exp(q·k/√d) (times "
                        "the shifts' factors, which cancel in the normalisation).", map},
        {"attend", "O = D⁻¹φ(Q)(φ(K)ᵀV): linear in N; the implied matrix is nonnegative and row-stochastic.", attend},
    };
    r.explanation.factors = {draw->factors.front(), map->factors.front()};
    r.explanation.notes.push_back(std::to_string(features) + " positive random features (draw " +
                                  std::to_string(p.integer("draw")) + ")");
    if (options.causal)
      r.explanation.notes.push_back("causal: keys are not max-shifted (a max over all keys would see the future)");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makePerformer() { return std::make_shared<Performer>(); }
}  // namespace attn::mech
