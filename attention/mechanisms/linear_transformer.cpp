// linear-transformer — Katharopoulos, Vyas, Pappas, Fleuret 2020 (arXiv 2006.16236), "Transformers are
// RNNs". Softmax's exp(q·k) is replaced by the kernel φ(q)·φ(k) with φ(x) = elu(x) + 1 > 0, so
// O = D⁻¹·φ(Q)·(φ(K)ᵀV) costs O(N·d·dv). Causal form: the running state S_i = S_{i−1} + φ(k_i)v_iᵀ,
// z_i = z_{i−1} + φ(k_i) and O_i = φ(q_i)ᵀS_i / φ(q_i)ᵀz_i (an RNN). It is a different kernel, not a
// consistent approximation of softmax: its error does not vanish with compute (CATALOG.md #31).
#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"

namespace attn::mech {
namespace {

class LinearTransformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "linear-transformer", "Linear Transformer",
        "Katharopoulos, Vyas, Pappas, Fleuret. Transformers are RNNs: Fast Autoregressive Transformers with Linear "
        "Attention",
        "2006.16236", 2020, Family::LowRankKernel, "O(N·d·dv)", CausalSupport::Yes,
        "Replace exp(q·k) by φ(q)·φ(k) with φ = elu+1; associativity makes attention linear in N and causal "
        "attention an RNN.",
        "", true};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }

  Result run(const Inputs& in, const Params&, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    if (options.causal && m != n) throw UserError("causal linear attention needs as many keys as queries");
    auto phi_q = std::make_shared<Matrix>();
    auto phi_k = std::make_shared<Matrix>();
    timedStage(r.cost, options, "feature map", [&] {
      *phi_q = backend.featureMap(in.q, FeatureMap::EluPlusOne);
      *phi_k = backend.featureMap(in.k, FeatureMap::EluPlusOne);
    });
    r.output = timedStage(r.cost, options, "attend",
                          [&] { return backend.linearAttention(*phi_q, *phi_k, in.v, options.causal); });

    // Implied weights A_ij = φq_i·φk_j / φq_i·z_i, with z_i the (prefix) sum of φk.
    auto normaliser = std::make_shared<Vector>(n);
    if (options.causal) {
      Eigen::RowVectorXf z = Eigen::RowVectorXf::Zero(phi_k->cols());
      for (Index i = 0; i < n; ++i) {
        z += phi_k->row(i);
        (*normaliser)(i) = phi_q->row(i).dot(z);
      }
    } else {
      const Eigen::RowVectorXf z = phi_k->colwise().sum();
      *normaliser = *phi_q * z.transpose();
    }
    auto kernel = std::make_shared<WeightKernel>();
    kernel->kind = WeightKernel::Kind::Linear;
    kernel->a = phi_q;
    kernel->b = phi_k;
    kernel->row_term = normaliser->unaryExpr([](float den) { return den > 0 ? 1.0f / den : 0.0f; });
    kernel->causal = options.causal;
    r.explanation.weights = ImpliedWeights(std::move(kernel));
    const Index shown = std::min<Index>(n, 64);
    r.explanation.factors.push_back({"φ(Q)", "elu(Q)+1, first " + std::to_string(shown) + " tokens", phi_q->topRows(shown)});
    r.explanation.factors.push_back({"φ(K)", "elu(K)+1, first " + std::to_string(shown) + " tokens", phi_k->topRows(shown)});
    r.explanation.notes.push_back("a different kernel, not a consistent approximation: its error does not vanish");
    const double d = double(in.q.cols()), dv = double(in.v.cols());
    r.cost.scored_pairs = 0;  // no pair is scored: the kernel is factorised
    r.cost.flops = 4.0 * double(n) * d * dv + 2.0 * double(m) * d * dv;
    r.cost.peak_bytes = backend.peakBytes() + (n + m) * in.q.cols() * Index(sizeof(float)) + n * in.v.cols() * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLinearTransformer() { return std::make_shared<LinearTransformer>(); }
}  // namespace attn::mech
