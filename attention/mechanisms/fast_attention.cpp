// fast-attention — Hu, Mostafa, Liu, Li, Wu 2020 (arXiv 2007.03815), CATALOG.md #35, Real-time Semantic
// Segmentation with Fast Attention (FANet). Cosine similarity in place of softmax: Q̂ and K̂ are Q and K with
// every row L2-normalised, and O = (1/M)·Q̂·(K̂ᵀV), M the number of keys (the H·W pixels). The d×dv context
// K̂ᵀV is formed first, so nothing N×M is computed: two Backend::matmul calls; the row normalisation is O(N·d)
// host work.
// A_eff = (1/M)·Q̂K̂ᵀ is explicit, with entries cos(q_i, k_j)/M in [−1/M, 1/M]; it is not row-stochastic and has
// no exponential, so it never sharpens: scaling the logits by 1/τ (the temperature) scales q_i, and q̂_i does
// not change. A different operator, not an approximation of softmax(s·QKᵀ). The normaliser is global (all M
// keys): no causal form.
// Stand-ins: identity projections (the paper's 1×1 convs for Q, K, V are learned), no residual or fusion.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/low_rank.h"

namespace attn::mech {
namespace {

constexpr Index kMaxFactorEntries = Index(1) << 22;

/// x with every row divided by its L2 norm, the norm taken in float64 (a row of zeros stays zeros: it has no
/// direction, and its cosine with anything is taken as 0), times `factor`.
Matrix unitRows(const Matrix& x, double factor) {
  Matrix out(x.rows(), x.cols());
  for (Index i = 0; i < x.rows(); ++i) {
    const double norm = x.row(i).cast<double>().norm();
    const double f = norm > 0 ? factor / norm : 0.0;
    out.row(i) = (x.row(i).cast<double>() * f).cast<float>();
  }
  return out;
}

class FastAttention final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "fast-attention",
        "Fast attention (FANet)",
        "Hu, Mostafa, Liu, Li, Wu. Real-time Semantic Segmentation with Fast Attention",
        "2007.03815",
        2020,
        Family::LowRankKernel,
        "O(N·d·dv)",
        CausalSupport::No,
        "Cosine similarity instead of softmax: O = (1/N)·Q̂(K̂ᵀV) with unit-length rows, so the d×dv context is formed "
        "first and the weights never sharpen.",
        "Identity projections (the paper's learned 1×1 convs for Q, K, V); the fusion with the encoder features is "
        "left out",
        false,
        {"convention: a query or key row of zeros has no direction: its cosine with every row is taken as 0"}};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q̂ and K̂
    const double n = double(s.n), m = double(s.m), d = double(s.d), dv = double(s.dv);
    r.add((m * d * 2 + d * dv * 2) * sizeof(float), "K̂ᵀ and the context K̂ᵀV");
    if (n * d <= double(kMaxFactorEntries)) r.add(n * d * sizeof(float), "Q̂/N shown as a factor");
    if (n * m <= double(Index(1) << 20)) r.add(n * m * sizeof(float), "the implied N × M matrix shown (up to 2²⁰)");
    r.flops = 2.0 * m * d * dv + 2.0 * n * d * dv + 3.0 * (n + m) * d;
    return r;
  }

  Result run(const Inputs& in, const Params&, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols();
    // Q̂/M and K̂: the 1/M goes into the queries, so A_eff = (Q̂/M)·K̂ᵀ is one product.
    auto q_hat = std::make_shared<Matrix>();
    auto k_hat = std::make_shared<Matrix>();
    timedStage(r.cost, options, "normalise rows", [&] {
      *q_hat = unitRows(in.q, 1.0 / double(m));
      *k_hat = unitRows(in.k, 1.0);
    });
    const Matrix k_hat_t = k_hat->transpose();
    const Matrix context = timedStage(r.cost, options, "context K̂ᵀV", [&] { return backend.matmul(k_hat_t, in.v); });
    r.output = timedStage(r.cost, options, "(Q̂/N)·context", [&] { return backend.matmul(*q_hat, context); });

    r.explanation.weights = productWeights(q_hat, k_hat);
    const std::string m_text = std::to_string(m);
    r.explanation.factors.push_back({"context K̂ᵀV", "d×dv: the values summed with the keys' unit directions", context});
    if (n * d <= kMaxFactorEntries)
      r.explanation.factors.push_back(
          {"Q̂/N", "the queries' unit directions divided by N = " + m_text + ", N×d", *q_hat});
    r.explanation.steps.push_back(factorStep("normalise",
                                             "Every query and key row divided by its length: Q̂, K̂ "
                                             "(no temperature survives this)",
                                             {"K̂ᵀ", "d×N", d * m <= kMaxFactorEntries ? k_hat_t : Matrix()}));
    r.explanation.steps.push_back(
        factorStep("context", "G = K̂ᵀV: d×dv, formed once for all queries", {"context", "d×dv", context}));
    r.explanation.steps.push_back(weightsStep(
        "cosine weights", "A_eff = Q̂K̂ᵀ/N: cosines divided by N = " + m_text + ", entries in [−1/N, 1/N], no softmax",
        r.explanation.weights, "A_eff"));
    r.explanation.notes.push_back(
        "a different operator, not an approximation of softmax(s·QKᵀ): its distance to "
        "softmax attention is not an approximation error");
    r.explanation.notes.push_back(
        "A_eff = cos(q_i, k_j)/N: rows are not normalised to 1, entries may be negative, "
        "and a temperature (a scale of Q) does not change them");
    const double dn = double(n), dm = double(m), dd = double(d), ddv = double(dv);
    r.cost.scored_pairs = (dn + dm) * dd;
    r.cost.flops = 2.0 * dm * dd * ddv + 2.0 * dn * dd * ddv + 3.0 * (dn + dm) * dd;
    r.cost.peak_bytes = backend.peakBytes() + ((n + 2 * m) * d + d * dv) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeFastAttention() { return std::make_shared<FastAttention>(); }
}  // namespace attn::mech
