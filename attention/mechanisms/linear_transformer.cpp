// linear-transformer — Katharopoulos, Vyas, Pappas, Fleuret 2020 (arXiv 2006.16236), "Transformers are
// RNNs". Softmax's exp(q·k) is replaced by the kernel φ(q)·φ(k) with φ(x) = elu(x) + 1 > 0, so
// O = D⁻¹·φ(Q)·(φ(K)ᵀV) costs O(N·d·dv). Causal form: the running state S_i = S_{i−1} + φ(k_i)v_iᵀ,
// z_i = z_{i−1} + φ(k_i) and O_i = φ(q_i)ᵀS_i / φ(q_i)ᵀz_i (an RNN). It is a different kernel, not a
// consistent approximation of softmax: the paper picks elu+1 as a feature map of its own (the exponential
// kernel's would be infinite-dimensional), it has no parameter, and no setting reproduces softmax, so under
// the rule (MechanismInfo::approximates_softmax) it is a different operator (CATALOG.md #31).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kernel_engine.h"

namespace attn::mech {
namespace {

/// The generation view of causal linear attention: the RNN state S_t = Σ_{j≤t} φ(k_j)v_jᵀ at a few tokens
/// (steps), and the time to generate token t measured here on the host: one RNN step (update S, z; read
/// φ(q_t)·S / φ(q_t)·z: constant in t) against one softmax step over a KV cache of t keys (linear in t).
void recurrentView(const Matrix& phi_q, const Matrix& phi_k, const Inputs& in, Result& r) {
  const Index n = phi_q.rows(), f = phi_q.cols(), dv = in.v.cols(), d = in.q.cols();
  const Index checkpoints = std::min<Index>(n, 6);
  std::vector<Index> at;
  for (Index c = 1; c <= checkpoints; ++c) at.push_back(std::max<Index>(1, n * c / checkpoints));
  Matrix state = Matrix::Zero(f, dv);
  size_t next = 0;
  for (Index t = 0; t < n && next < at.size(); ++t) {
    state.noalias() += phi_k.row(t).transpose() * in.v.row(t);
    if (t + 1 == at[next]) {
      auto view = std::make_shared<Explanation>();
      const float hi = state.cwiseAbs().maxCoeff();
      view->factors.push_back({"state S after token " + std::to_string(t + 1), "d × dv, |S| scaled to 0..1",
                               hi > 0 ? Matrix(state.cwiseAbs() / hi) : state});
      r.explanation.steps.push_back({"state at " + std::to_string(t + 1),
                                     "The RNN state: everything generation needs from tokens 1.." +
                                         std::to_string(t + 1) + " (its size does not grow).",
                                     view});
      ++next;
    }
  }
  // Per-token generation time (µs), median of repeats: RNN step vs softmax over a KV cache of t keys.
  auto medianMicros = [](auto&& step) {
    std::vector<double> times;
    for (int rep = 0; rep < 15; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      step();
      times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
    std::nth_element(times.begin(), times.begin() + 7, times.end());
    return times[7];
  };
  Matrix timing(3, Index(at.size()));
  Eigen::RowVectorXf z = phi_k.colwise().sum(), out(dv);
  Eigen::VectorXf scores;
  volatile float sink = 0;
  for (size_t c = 0; c < at.size(); ++c) {
    const Index t = at[c] - 1;
    timing(0, Index(c)) = float(t + 1);
    timing(1, Index(c)) = float(medianMicros([&] {
      state.noalias() += phi_k.row(t).transpose() * in.v.row(t);
      z += phi_k.row(t);
      out.noalias() = phi_q.row(t) * state / phi_q.row(t).dot(z);
      sink = sink + out(0);
    }));
    timing(2, Index(c)) = float(medianMicros([&] {
      scores.noalias() = in.k.topRows(t + 1) * in.q.row(t).transpose() / std::sqrt(float(d));
      scores = (scores.array() - scores.maxCoeff()).exp().matrix();
      out.noalias() = scores.transpose() * in.v.topRows(t + 1) / scores.sum();
      sink = sink + out(0);
    }));
  }
  r.explanation.factors.push_back({"generation time per token (µs)",
                                   "row 1: token t; row 2: linear attention's RNN step; row 3: softmax over a KV cache "
                                   "of t keys (measured on this host, median of 15)",
                                   timing});
  char note[200];
  std::snprintf(note, sizeof note, "generating token %lld: RNN step %.1f µs vs softmax with a KV cache %.1f µs",
                static_cast<long long>(at.back()), double(timing(1, timing.cols() - 1)),
                double(timing(2, timing.cols() - 1)));
  r.explanation.notes.push_back(note);
}

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
        "", false};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    r.flops = 0;
    planKernel(r, s, double(s.d), 0, "");  // elu + 1: d features
    return r;
  }

  Result run(const Inputs& in, const Params&, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n();
    auto phi_q = std::make_shared<Matrix>();
    auto phi_k = std::make_shared<Matrix>();
    timedStage(r.cost, options, "feature map", [&] {
      *phi_q = backend.featureMap(in.q, FeatureMap::EluPlusOne);
      *phi_k = backend.featureMap(in.k, FeatureMap::EluPlusOne);
    });
    attendKernel(in, phi_q, phi_k, options.causal, backend, options, r);
    const Index shown = std::min<Index>(n, 64);
    r.explanation.factors.push_back({"φ(Q)", "elu(Q)+1, first " + std::to_string(shown) + " tokens", phi_q->topRows(shown)});
    r.explanation.factors.push_back({"φ(K)", "elu(K)+1, first " + std::to_string(shown) + " tokens", phi_k->topRows(shown)});
    r.explanation.notes.push_back("a different kernel, not a consistent approximation: its error does not vanish");
    if (options.causal && n > 0) recurrentView(*phi_q, *phi_k, in, r);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLinearTransformer() { return std::make_shared<LinearTransformer>(); }
}  // namespace attn::mech
