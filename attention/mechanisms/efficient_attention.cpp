// efficient-attention — Shen et al. 2018 (arXiv 1812.01243), CATALOG.md #5. E = ρ_q(Q)·(ρ_k(K)ᵀ·V):
// the d×dv global context ρ_k(K)ᵀV is formed first, so nothing N×N is ever computed.
//   softmax: ρ_q = softmax over the d features of each query row; ρ_k = softmax over the N positions of
//            each key column (cmsflash/efficient-attention: no 1/√d inside either softmax). Each of the
//            d key columns becomes a "global context template", a distribution over positions;
//   scaling: ρ_q(Q) = Q/√N, ρ_k(K) = K/√N (dot-product attention without the softmax).
// A_eff = ρ_q(Q)·ρ_k(K)ᵀ is explicit (rank ≤ d; row-stochastic in the softmax variant) and factored.
// A different kernel, not an approximation of softmax(s·QKᵀ): approximates_softmax = false, so views
// label its error against softmax "N/A — a different operator". The 1×1 re-projection and the
// residual are left out (identity). The softmax over all positions is global: no causal form.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/low_rank.h"

namespace attn::mech {
namespace {

constexpr Index kMaxFactorEntries = Index(1) << 22;

class EfficientAttention final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "efficient-attention", "Efficient Attention",
        "Shen et al. Efficient Attention: Attention with Linear Complexities", "1812.01243", 2018,
        Family::LowRankKernel, "O(N·d·dv)", CausalSupport::No,
        "Normalise queries over features and keys over positions, then E = ρ_q(Q)·(ρ_k(K)ᵀV): d global context "
        "templates instead of N×N weights.",
        "Identity projections; the 1×1 re-projection and the residual are left out.", false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Normalisation", "softmax: ρ_q = softmax over each query's features, ρ_k = "
                          "softmax over positions per key feature (row-stochastic A_eff); scaling: Q/√N and K/√N.",
                          {"softmax", "scaling"}, 0),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies
    const double n = double(s.n), m = double(s.m), d = double(s.d), dv = double(s.dv);
    const bool softmax = p.choice("variant") == "softmax";
    r.add(((n + 3 * m) * d * 2 + d * dv * 3) * sizeof(float), "ρ_q(Q), ρ_k(K) and the templates (N × d)");
    if (n * m <= double(Index(1) << 20))
      r.add(2 * n * m * sizeof(float), "the implied N × M matrix shown (up to 2²⁰ entries)");
    r.flops = 2.0 * m * d * dv + 2.0 * n * d * dv + (softmax ? 3.0 : 1.0) * (n + m) * d;
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), mk = in.m(), d = in.q.cols(), dv = in.v.cols();
    const bool softmax = p.choice("variant") == "softmax";
    auto rho_q = std::make_shared<Matrix>(n, d);
    auto rho_k = std::make_shared<Matrix>(mk, d);
    timedStage(r.cost, options, "normalise", [&] {
      if (softmax) {
        for (Index i = 0; i < n; ++i) {  // over the d features of query i
          const float mx = in.q.row(i).maxCoeff();
          rho_q->row(i) = (in.q.row(i).array() - mx).exp();
          rho_q->row(i) /= rho_q->row(i).sum();
        }
        for (Index c = 0; c < d; ++c) {  // over the N positions of key feature c
          const float mx = in.k.col(c).maxCoeff();
          rho_k->col(c) = (in.k.col(c).array() - mx).exp();
          rho_k->col(c) /= rho_k->col(c).sum();
        }
      } else {
        *rho_q = in.q / std::sqrt(float(n));
        *rho_k = in.k / std::sqrt(float(mk));
      }
    });
    const Matrix templates = rho_k->transpose();  // d×N
    const Matrix context = timedStage(r.cost, options, "context ρ_k(K)ᵀV",
                                      [&] { return backend.matmul(templates, in.v, false); });  // d×dv
    r.output = timedStage(r.cost, options, "ρ_q(Q)·context", [&] { return backend.matmul(*rho_q, context, false); });

    r.explanation.weights = productWeights(rho_q, rho_k);
    const std::string templ_caption = softmax ? "global context templates: distributions over positions, d×N "
                                                "(row c = softmax over positions of key feature c)"
                                              : "key features scaled by 1/√N, d×N";
    if (d * mk <= kMaxFactorEntries) r.explanation.factors.push_back({"ρ_k(K)ᵀ", templ_caption, templates});
    r.explanation.factors.push_back({"context ρ_k(K)ᵀV", "d×dv: template c's weighted mean of the values", context});
    if (n * d <= kMaxFactorEntries)
      r.explanation.factors.push_back({"ρ_q(Q)", softmax ? "each query's mixture over the d templates, N×d (rows sum to 1)"
                                                         : "queries scaled by 1/√N, N×d", *rho_q});
    r.explanation.steps.push_back(factorStep("context templates", templ_caption,
                                             {"ρ_k(K)ᵀ", "d×N", d * mk <= kMaxFactorEntries ? templates : Matrix()}));
    r.explanation.steps.push_back(factorStep("aggregate context", "G = ρ_k(K)ᵀV: each template's summary of the "
                                             "values (d×dv, independent of N)", {"context", "d×dv", context}));
    r.explanation.steps.push_back(factorStep("queries mix templates", "E = ρ_q(Q)·G: each query a mixture of the "
                                             "d template summaries",
                                             {"ρ_q(Q)", "N×d", n * d <= kMaxFactorEntries ? *rho_q : Matrix()}));
    r.explanation.steps.push_back(weightsStep("implied weights", "A_eff = ρ_q(Q)·ρ_k(K)ᵀ, N×N of rank ≤ d = " +
                                              std::to_string(d), r.explanation.weights, "A_eff"));
    r.explanation.notes.push_back("a different operator, not an approximation of softmax(s·QKᵀ): its distance to "
                                  "softmax attention is not an approximation error");
    r.explanation.notes.push_back(std::string("A_eff has rank ≤ d = ") + std::to_string(d) +
                                  (softmax ? " and is row-stochastic" : " and may be negative (no softmax)"));
    const double dn = double(n), dm = double(mk), dd = double(d), ddv = double(dv);
    r.cost.scored_pairs = (dn + dm) * dd;
    r.cost.flops = 2.0 * dm * dd * ddv + 2.0 * dn * dd * ddv + (softmax ? 3.0 : 1.0) * (dn + dm) * dd;
    r.cost.peak_bytes = backend.peakBytes() + ((n + 2 * mk) * d + d * dv) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeEfficientAttention() { return std::make_shared<EfficientAttention>(); }
}  // namespace attn::mech
