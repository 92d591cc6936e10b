// rfa — Peng, Pappas, Yogatama, Schwartz, Smith, Kong 2021 (arXiv 2103.02143), "Random Feature Attention"
// (CATALOG.md #48). Queries and keys are L2-normalised, so exp(q̂·k̂/σ²) is (up to a constant) the Gaussian
// kernel exp(−‖q̂ − k̂‖²/2σ²), which random Fourier features estimate:
//   φ(x) = √(1/D)·[sin(ω_r·x/σ)]_r ++ [cos(ω_r·x/σ)]_r,  ω_r ~ N(0, I_d), r = 1..D     (2D features)
//   RFA(q_t) = φ(q_t)ᵀ·Σ_j φ(k_j) v_jᵀ / φ(q_t)·Σ_j φ(k_j)
// The backend's Trigonometric map computes exp(‖x‖²/2)/√D·[sin ωx, cos ωx]; for unit inputs scaled by 1/σ
// the factor is the constant exp(1/2σ²) and cancels between numerator and denominator (rows with q = 0 or
// k = 0 have x = 0, factor 1: nothing to cancel either).
//
// Gated (causal only): S_t = g·S_{t−1} + (1−g)·φ(k_t)⊗v_t and z_t likewise, so
//   A_ij = (1−g)·g^{i−j}·φq_i·φk_j / den_i  (j ≤ i)
// an exponential forgetting envelope. The gate g is a constant stand-in for g_t = σ(w_g·x_t + b_g);
// g = 1 is no forgetting, the ungated RFA ((1−g) cancels in the normalisation, so g → 1 is its limit).
// The gated recurrence has no primitive: it runs chunked (L = 64, state carried across chunks, decay
// masks within a chunk) with the products on the backend (Backend::matmul) and the masks, the state
// decay and the division on the host, on every backend.
//
// σ stand-in (learned per head in the paper). Matching softmax's 1/√d: the runner's softmax uses
// s·q·k = ‖q‖‖k‖·q̂·k̂/√d, and generated inputs have ‖q‖ ≈ ‖k‖ ≈ √d, so s·q·k ≈ √d·q̂·k̂: σ² = 1/√d,
// σ = d^{−1/4} (sigma = 0, "auto"). But the sin/cos estimator of exp(q̂·k̂/σ²) has a variance that grows as
// exp(2/σ²)/D = exp(2√d)/D: at d = 64 and D = 128 the estimate is noise (e_attn ≈ 1 on clustered inputs,
// normalisers near 0 or negative, outputs up to 10⁴ and CPU/GPU results that differ beyond 2e-4 at
// N = 1000). The default is therefore σ = 1 (exp(q̂·k̂): e_attn ≈ 0.1 at D = 128, and backends agree to
// ≈ 1e-7 relative); "auto" is one click away. The headline error is against standard exact attention of
// the same inputs, like every mechanism's; RFA's own target (ownReference, a second labelled figure, and
// where exactLimit converges) is exact softmax on unit q̂, k̂ with temperature σ²: q_ref = q̂·d^{1/4}/σ and
// k_ref = k̂·d^{1/4}/σ, so that the runner's 1/√d gives q̂·k̂/σ².
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kChunk = 64;

Matrix unitRows(const Matrix& x) {
  Matrix y = x;
  for (Index i = 0; i < y.rows(); ++i) {
    const float norm = y.row(i).norm();
    if (norm > 0 && std::isfinite(norm)) y.row(i) /= norm;
  }
  return y;
}

/// σ: the parameter, or d^{−1/4} (matches softmax's 1/√d on inputs of norm ≈ √d) when it is 0.
double sigmaFor(const Params& p, Index d) {
  const double s = p.number("sigma");
  return s > 0 ? s : std::pow(double(d), -0.25);
}

std::string formatSigma(double sigma) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", sigma);
  return buf;
}

/// Gated causal RFA in chunks. Returns the output; `den` gets each row's normaliser.
Matrix gatedAttention(const Matrix& fq, const Matrix& fk, const Matrix& v, double g, Backend& backend, Vector& den,
                      const RunOptions& options) {
  const Index n = fq.rows(), feat = fq.cols(), dv = v.cols();
  Matrix out(n, dv);
  den.resize(n);
  Matrix state = Matrix::Zero(feat, dv);         // S = Σ_j (1−g)·g^{t−j}·φk_j v_jᵀ
  Eigen::RowVectorXf z = Eigen::RowVectorXf::Zero(feat);
  for (Index c0 = 0; c0 < n; c0 += kChunk) {
    const Index len = std::min(kChunk, n - c0);
    const Matrix qc = fq.middleRows(c0, len), kc = fk.middleRows(c0, len);
    Matrix local = backend.matmul(qc, kc, true);  // decay mask: (1−g)·g^{t−s} for s ≤ t, else 0
    for (Index t = 0; t < len; ++t)
      for (Index s = 0; s < len; ++s)
        local(t, s) = s <= t ? static_cast<float>((1 - g) * std::pow(g, double(t - s))) * local(t, s) : 0.0f;
    Matrix num = backend.matmul(qc, state);
    const Vector carried = qc * z.transpose();
    for (Index t = 0; t < len; ++t) {  // the state before the chunk decays by g^{t+1} at row t
      const float decay = static_cast<float>(std::pow(g, double(t + 1)));
      num.row(t) *= decay;
      den(c0 + t) = decay * carried(t) + local.row(t).sum();
    }
    num += backend.matmul(local, v.middleRows(c0, len));
    for (Index t = 0; t < len; ++t) {
      const float d_t = den(c0 + t);
      if (d_t > 0 && std::isfinite(d_t)) out.row(c0 + t) = num.row(t) / d_t;
      else out.row(c0 + t).setZero();
    }
    // Carry: S ← g^L·S + Σ_s (1−g)·g^{L−1−s}·φk_s v_sᵀ, z likewise.
    Matrix weighted_kt = kc.transpose();  // F×L
    for (Index s = 0; s < len; ++s) weighted_kt.col(s) *= static_cast<float>((1 - g) * std::pow(g, double(len - 1 - s)));
    const float chunk_decay = static_cast<float>(std::pow(g, double(len)));
    state = chunk_decay * state + backend.matmul(weighted_kt, v.middleRows(c0, len));
    z = chunk_decay * z + weighted_kt.rowwise().sum().transpose();
    options.checkCancel();
  }
  return out;
}

class Rfa final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "rfa", "Random Feature Attention (RFA)",
        "Peng, Pappas, Yogatama, Schwartz, Smith, Kong. Random Feature Attention", "2103.02143", 2021,
        Family::LowRankKernel, "O(N·D·dv)", CausalSupport::Yes,
        "Normalise q and k; random Fourier features φ estimate exp(q̂·k̂/σ²) up to a constant factor, so attention "
        "is linear in N; an optional gate makes the causal RNN forget the past exponentially.",
        "σ (learned per head in the paper): a slider, default 1 (0 = d^(−1/4), which matches softmax's 1/√d on "
        "inputs of norm √d but makes the random features very noisy); the gate (learned σ(w_g·x_t + b_g)): a "
        "constant slider",
        true,
        {"convention: rows whose normaliser φ(q)·Σφ(k) is ≤ 0 (sin/cos features can make it so) output 0, counted in "
         "a note"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("features", "Random features D",
                           "ω_1..ω_D ~ N(0, I), seeded; φ has 2D features (sin and cos). The paper uses 64–128.",
                           128, 1, 8192, true),
        ParamSpec::real("sigma", "σ", "Kernel width: RFA estimates exp(q̂·k̂/σ²); its error against softmax(q̂·k̂/σ²) "
                        "on unit q, k is the second figure, beside the headline against standard attention. 0: σ = "
                        "d^(−1/4), which matches softmax's 1/√d for inputs of norm √d, but the features' variance "
                        "grows as exp(2/σ²)/D (noise at D ≈ 100). Smaller σ: peakier attention, noisier features.",
                        1, 0, 4),
        ParamSpec::real("gate", "Gate g",
                        "Causal only. S_t = g·S_{t−1} + (1−g)·φ(k_t)⊗v_t: token j's weight decays as g^(i−j). "
                        "1: no forgetting (plain RFA).",
                        1, 0, 1),
    };
  }
  /// Exact softmax on unit q̂, k̂ with temperature σ²: both scaled by d^{1/4}/σ, so that the reference's
  /// 1/√d gives q̂·k̂/σ².
  std::optional<OwnReference> ownReference(const Inputs& in, const Params& p) const override {
    Inputs ref = in;
    const Index d = in.q.cols();
    const float a = static_cast<float>(std::pow(double(d), 0.25) / sigmaFor(p, d));
    ref.q = unitRows(in.q) * a;
    ref.k = unitRows(in.k) * a;
    const double s = p.number("sigma");
    return OwnReference{std::move(ref), "exact on unit q, k, temperature σ² (σ = " +
                                            (s > 0 ? formatSigma(s) : std::string("d^(−1/4)")) + ")"};
  }

  /// D → ∞: the sin/cos features estimate exp(q̂·k̂/σ²) up to a constant factor that cancels, so RFA
  /// converges to its own reference (softmax on unit q, k at temperature σ²), the error falling as 1/√D.
  /// Checked at D = 8192 and the default σ = 1: ≈ 0.01 on the clustered inputs (0.035 at D = 1024).
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"features", "8192"}}, 0.05,
                      "D → ∞ random features reproduce softmax(q̂·k̂/σ²) on unit q, k (its own reference); the error "
                      "falls as 1/√D: checked at D = 8192, σ = 1"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies
    r.own_reference = true;
    const double n = double(s.n), m = double(s.m), features = double(p.integer("features")), f = 2 * features;
    const double dv = double(s.dv), rows = double(std::max(s.n, s.m));
    const bool gated = p.number("gate") < 1;
    // The unit rows and φ of Q and K, the feature map's angles, ω, the state; a gated run's chunk.
    r.add(((n + m) * (double(s.d) + f) + rows * features * 2 + features * double(s.d) + f * (dv + 1) * 2 +
           (gated ? double(kChunk) * (double(kChunk) + f + dv) * 3 : 0.0)) *
              sizeof(float),
          "the random features φ(Q), φ(K) ((N + M) × 2 × features)", "features");
    r.flops = 2.0 * (n + m) * features * double(s.d) + 4.0 * n * f * dv + 2.0 * m * f * dv +
              (gated ? 2.0 * n * double(std::min<Index>(s.n, kChunk)) * (f + dv) : 0.0);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols();
    const Index features = p.integer("features");
    const double sigma = sigmaFor(p, d), g = p.number("gate");
    const bool gated = g < 1;
    if (gated && !options.causal)
      throw UserError("the RFA gate is a recurrence over past tokens: turn causal on, or set gate = 1 (no "
                      "forgetting) for bidirectional RFA");
    if (options.causal && m != n) throw UserError("causal RFA needs as many keys as queries");
    Result r;

    Rng rng(options.seed, 48);
    const Matrix omega = rng.gaussian(features, d);
    auto phi_q = std::make_shared<Matrix>();
    auto phi_k = std::make_shared<Matrix>();
    timedStage(r.cost, options, "normalise + random features", [&] {
      FeatureMapOptions fo;
      fo.map = FeatureMap::Trigonometric;
      fo.projection = &omega;
      fo.input_scale = static_cast<float>(1 / sigma);
      *phi_q = backend.featureMap(unitRows(in.q), fo);
      *phi_k = backend.featureMap(unitRows(in.k), fo);
    });
    const Index feat = phi_q->cols();

    auto normaliser = std::make_shared<Vector>(n);
    if (!gated) {
      r.output = timedStage(r.cost, options, "attend",
                            [&] { return backend.linearAttention(*phi_q, *phi_k, in.v, options.causal); });
      if (options.causal) {
        Eigen::RowVectorXf z = Eigen::RowVectorXf::Zero(feat);
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
      kernel->row_term = normaliser->unaryExpr([](float den) { return den > 0 && std::isfinite(den) ? 1.0f / den : 0.0f; });
      kernel->causal = options.causal;
      r.explanation.weights = ImpliedWeights(std::move(kernel));
    } else {
      r.output = timedStage(r.cost, options, "gated recurrence (chunked)",
                            [&] { return gatedAttention(*phi_q, *phi_k, in.v, g, backend, *normaliser, options); });
      // A_ij = (1−g)·g^{i−j}·φq_i·φk_j / den_i for j ≤ i (0 when den_i ≤ 0, as the output).
      const auto fq = phi_q, fk = phi_k;
      const auto den = normaliser;
      r.explanation.weights = ImpliedWeights(n, n, [fq, fk, den, g](Range rows, Range cols) {
        Matrix block = fq->middleRows(rows.begin, rows.size()) * fk->middleRows(cols.begin, cols.size()).transpose();
        for (Index a = 0; a < rows.size(); ++a) {
          const Index i = rows.begin + a;
          const float d_i = (*den)(i);
          const float inv = d_i > 0 && std::isfinite(d_i) ? 1.0f / d_i : 0.0f;
          for (Index b = 0; b < cols.size(); ++b) {
            const Index j = cols.begin + b;
            block(a, b) = j <= i ? static_cast<float>((1 - g) * std::pow(g, double(i - j))) * block(a, b) * inv : 0.0f;
          }
        }
        return block;
      });
      r.explanation.notes.push_back("the gated recurrence's decay masks and state run on the host on every backend "
                                    "(no primitive); its products run on the backend");
    }

    // Gate trace and the forgetting envelope (weight of token j in the last token's memory).
    const Index shown = std::min<Index>(n, 512);
    r.explanation.factors.push_back(
        {"memory envelope", "weight (1−g)·g^(N−1−j) of token j in the final state, last " + std::to_string(shown) +
                                " tokens (g = 1: every token weighs the same)",
         Matrix(1, shown)});
    Matrix& env = r.explanation.factors.back().value;
    for (Index b = 0; b < shown; ++b)
      env(0, b) = gated ? static_cast<float>((1 - g) * std::pow(g, double(shown - 1 - b))) : 1.0f / float(n);
    r.explanation.factors.push_back({"gate trace g_t", "the gate per token (a constant stand-in for σ(w_g·x_t + b_g))",
                                     Matrix::Constant(1, shown, static_cast<float>(g))});
    const Index shown_k = std::min<Index>(m, 64);
    r.explanation.factors.push_back({"φ(K)", "sin/cos random features of the unit keys, first " +
                                                 std::to_string(shown_k) + " tokens",
                                     phi_k->topRows(shown_k)});
    r.explanation.notes.push_back("σ = " + formatSigma(sigma) + (p.number("sigma") > 0 ? "" : " (auto: d^(−1/4))") +
                                  ": RFA estimates softmax(q̂·k̂/σ²) on unit q, k (its own reference, the second "
                                  "figure); the headline error is against standard attention");
    if (sigma < 0.75)
      r.explanation.notes.push_back("small σ: the sin/cos estimate's variance grows as exp(2/σ²)/D = " +
                                    formatSigma(std::exp(2 / (sigma * sigma)) / double(features)) +
                                    " here; expect noisy weights and normalisers near 0 (raise D or σ)");
    Index bad_rows = 0;
    for (Index i = 0; i < n; ++i) bad_rows += !((*normaliser)(i) > 0);
    if (bad_rows > 0)
      r.explanation.notes.push_back(std::to_string(bad_rows) + " rows have a normaliser ≤ 0 (sin/cos features are "
                                    "not positive) and output 0: raise D or σ");

    const double nd = double(n), md = double(m), f = double(feat), vd = double(dv);
    r.cost.scored_pairs = 0;  // factorised: no pair is scored
    r.cost.flops = 2.0 * (nd + md) * double(features) * double(d) + 4.0 * nd * f * vd + 2.0 * md * f * vd +
                   (gated ? 2.0 * nd * double(std::min(n, kChunk)) * (f + vd) : 0.0);
    r.cost.peak_bytes = backend.peakBytes() + ((n + m) * (d + feat) + features * d + feat * dv + n * dv +
                                               (gated ? kChunk * kChunk : 0)) *
                                                  Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeRfa() { return std::make_shared<Rfa>(); }
}  // namespace attn::mech
