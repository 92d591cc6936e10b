// fast-weight — Schlag, Irie, Schmidhuber 2021 (arXiv 2102.11174), "Linear Transformers Are Secretly Fast
// Weight Programmers" (CATALOG.md #46). Linear attention is a fast-weight memory W (dv×F) that the sequence
// programs token by token:
//   sum rule:   W_i = W_{i−1} + v_i ⊗ φ(k_i)                              (unnormalised linear attention)
//   delta rule: v̄_i = W_{i−1}·φ(k_i);  W_i = W_{i−1} + β·(v_i − v̄_i) ⊗ φ(k_i)  (the paper's proposal)
//   output:     y_i = W_i·φ(q_i)
// with keys and queries sum-normalised (φ/Σφ, as in the paper's synthetic code). The delta rule's write moves
// what the key reads, W·φ(k), from v̄ to v̄ + β‖φ(k)‖²(v − v̄): a full overwrite only where β‖φ(k)‖² = 1, and
// sum-normalised keys have ‖φ(k)‖² ≤ 1 (≈ 0.08 for DPFP ν = 1 on the generated inputs), so β = 1 moves the
// read a small step (a note gives the mean step of the run). A third rule, "linear", is
// the sum rule read with the linear-attention denominator on raw φ: the synthetic code's "sum" baseline,
// i.e. the Linear Transformer with this φ. φ is DPFP_ν (deterministic, parameter-free: r = [ReLU(x),
// ReLU(−x)], φ = concat_{j=1..ν} r ⊙ roll(r, j), F = 2dν features), FAVOR+ positive random features, or
// elu+1. With the FAVOR+ map and the linear rule, φ(q)·φ(k) estimates exp(q·k/√d) without bias, so as m → ∞
// the output converges to causal softmax attention (exactLimit): the one setting that approximates softmax.
//
// It is an RNN by construction: every run is causal (CausalSupport::Native); with the causal switch off the
// output is the same and a note says so, and the reference is causal softmax either way.
//
// Chunked form (exact, chunk L = 64): inside a chunk with W_0 the state before it, the written values
// u_t = β(v_t − W_0 k_t − Σ_{s<t} (k_s·k_t) u_s) solve the unit lower-triangular system
// (I + β·tril(KKᵀ, −1))·U = β(V − K·W_0ᵀ); then Y = Q·W_0ᵀ + tril(QKᵀ)·U and W_end = W_0 + Uᵀ·K. (The sum
// rule has U = V.) The products run on the backend (Backend::matmul); the triangular solve is a
// sequential recurrence with no primitive and runs on the host on every backend, as does the DPFP map
// (elementwise) and the sum normalisation.
//
// Implied weights: y_i = Σ_{j≤i} c_ij v_j with c independent of V. Sum rule: c_ij = φ̂q_i·φ̂k_j (factored,
// any N). Delta rule: c is the output of the same recurrence with V = I_N (CATALOG §0 probe), formed up
// to N = 2048.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/parallel.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kChunk = 64;
constexpr Index kMaxProbeN = 4096;  // the delta rule's V = I probe is O(N²·F) time and N² memory

enum class Rule { Sum, Delta, Linear };

/// DPFP_ν: r = [ReLU(x), ReLU(−x)] ∈ R^{2d}; φ = concat over j = 1..ν of r ⊙ roll(r, j), where
/// roll(r, j)[i] = r[(i − j) mod 2d] (torch.roll with shifts = j). 2dν features.
Matrix dpfp(const Matrix& x, Index nu) {
  const Index d = x.cols(), two_d = 2 * d;
  Matrix phi(x.rows(), two_d * nu);
  std::vector<float> r(static_cast<size_t>(two_d));
  for (Index i = 0; i < x.rows(); ++i) {
    for (Index c = 0; c < d; ++c) {
      const float t = x(i, c);
      r[size_t(c)] = t > 0 ? t : 0.0f;
      r[size_t(d + c)] = -t > 0 ? -t : 0.0f;
    }
    for (Index j = 1; j <= nu; ++j)
      for (Index c = 0; c < two_d; ++c)
        phi(i, (j - 1) * two_d + c) = r[size_t(c)] * r[size_t((c - j + two_d) % two_d)];
  }
  return phi;
}

/// Rows divided by their sum (non-negative features); rows that sum to 0 stay 0.
void sumNormalise(Matrix& phi) {
  for (Index i = 0; i < phi.rows(); ++i) {
    const float s = phi.row(i).sum();
    if (s > 0 && std::isfinite(s)) phi.row(i) /= s;
    else phi.row(i).setZero();
  }
}

/// Output of the chunked fast-weight recurrence, and the state W after chosen tokens.
struct Programmed {
  Matrix y;                                  ///< N×dv
  std::vector<std::pair<Index, Matrix>> w;   ///< (token t, W_t as dv×F)
};

/// Runs the sum or delta rule over all tokens in chunks of kChunk (see the file comment). `snapshots`
/// (ascending token indices) select the states to keep. Products on `backend`; the solve on the host.
Programmed program(const Matrix& fq, const Matrix& fk, const Matrix& v, Rule rule, float beta, Backend& backend,
                   const std::vector<Index>& snapshots, const RunOptions& options) {
  const Index n = fq.rows(), feat = fq.cols(), dv = v.cols();
  Programmed out;
  out.y.resize(n, dv);
  Matrix wt = Matrix::Zero(feat, dv);  // Wᵀ: F×dv, so that y = φq·Wᵀ
  size_t next_snapshot = 0;
  for (Index c0 = 0; c0 < n; c0 += kChunk) {
    const Index len = std::min(kChunk, n - c0);
    const Matrix qc = fq.middleRows(c0, len), kc = fk.middleRows(c0, len);
    Matrix u;
    if (rule == Rule::Delta) {
      // (I + β·tril(KKᵀ, −1))·U = β(V − K·W_0ᵀ), by forward substitution (host: sequential).
      const Matrix kk = backend.matmul(kc, kc, true);
      u = v.middleRows(c0, len) - backend.matmul(kc, wt);
      for (Index t = 0; t < len; ++t) {  // u_t = β·(r_t − Σ_{s<t} (k_s·k_t)·u_s)
        for (Index s = 0; s < t; ++s) u.row(t) -= kk(t, s) * u.row(s);
        u.row(t) *= beta;
      }
    } else {
      u = v.middleRows(c0, len);
    }
    Matrix qk = backend.matmul(qc, kc, true);
    for (Index t = 0; t < len; ++t)
      for (Index s = t + 1; s < len; ++s) qk(t, s) = 0;
    out.y.middleRows(c0, len) = backend.matmul(qc, wt) + backend.matmul(qk, u);
    const Matrix kt = kc.transpose();
    for (; next_snapshot < snapshots.size() && snapshots[next_snapshot] < c0 + len; ++next_snapshot) {
      const Index upto = snapshots[next_snapshot] - c0 + 1;
      const Matrix w_t = wt + kt.leftCols(upto) * u.topRows(upto);
      out.w.emplace_back(snapshots[next_snapshot], Matrix(w_t.transpose()));
    }
    wt += backend.matmul(kt, u);
    options.checkCancel();
  }
  return out;
}

/// The delta rule's implied matrix C (y = C·V): the recurrence run on V = I. The rule is linear in V
/// and acts on each column of V alone, so blocks of columns run independently; and column j is 0 until
/// token j writes it, so a block starting at column c0 starts at token c0 (half the work). On the CPU
/// the blocks run in parallel, each with its own single-threaded backend.
Matrix probeDelta(const Matrix& fq, const Matrix& fk, float beta, Backend& backend, const RunOptions& options) {
  const Index n = fq.rows();
  constexpr Index kProbeColumns = 256;
  Matrix c = Matrix::Zero(n, n);
  auto block = [&](Index b, Backend& on) {
    const Index c0 = b * kProbeColumns, cols = std::min(kProbeColumns, n - c0), rows = n - c0;
    Matrix v = Matrix::Zero(rows, cols);
    v.topRows(cols).setIdentity();
    c.block(c0, c0, rows, cols) =
        program(fq.bottomRows(rows), fk.bottomRows(rows), v, Rule::Delta, beta, on, {}, options).y;
  };
  const Index blocks = (n + kProbeColumns - 1) / kProbeColumns;
  if (dynamic_cast<CpuBackend*>(&backend)) {
    parallelFor(blocks, 0, [&](Index b) {
      CpuBackend local(1);
      block(b, local);
    });
  } else {
    for (Index b = 0; b < blocks; ++b) block(b, backend);  // one device, one thread
  }
  return c;
}

Step factorStep(std::string title, std::string caption, NamedMatrix factor) {
  auto view = std::make_shared<Explanation>();
  view->factors.push_back(std::move(factor));
  return Step{std::move(title), std::move(caption), std::move(view), ""};
}

class FastWeight final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "fast-weight", "Fast weight programmers (delta rule)",
        "Schlag, Irie, Schmidhuber. Linear Transformers Are Secretly Fast Weight Programmers", "2102.11174", 2021,
        Family::LowRankKernel, "O(N·F·dv), F = 2dν (DPFP)", CausalSupport::Native,
        "Linear attention is a fast-weight memory W written by v⊗φ(k); the delta rule first reads what the key "
        "holds, v̄ = Wφ(k), and writes β(v − v̄)⊗φ(k) in its place, and DPFP gives φ more dimensions (capacity) "
        "without randomness.",
        "β (learned σ(w_β·x_i) in the paper) is a constant slider", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("feature_map", "Feature map φ",
                          "dpfp: deterministic parameter-free projection, 2dν features; favor: FAVOR+ positive "
                          "random features (m of them, seeded); elu+1: the Linear Transformer's map (d features).",
                          {"dpfp", "favor", "elu+1"}, 0),
        ParamSpec::integer("nu", "DPFP ν", "DPFP order: φ has 2dν features (more capacity, more cost). 1, 2 or 3.",
                           1, 1, 3),
        ParamSpec::integer("features", "FAVOR features m", "Random features of the favor map.", 64, 1, 4096, true),
        ParamSpec::choice("rule", "Update rule",
                          "delta: read v' = Wφ(k), write β(v − v')⊗φ(k) (the paper); sum: W += v⊗φ(k), "
                          "unnormalised linear attention; linear: the sum rule with the linear-attention "
                          "denominator on raw φ (the Linear Transformer with this φ).",
                          {"delta", "sum", "linear"}, 0),
        ParamSpec::real("beta", "Write strength β",
                        "Delta rule only: stand-in for the learned β_i = σ(w_β·x_i). The key's read moves β·‖φ(k)‖² "
                        "of the way from the old value to v: keys are sum-normalised, so ‖φ(k)‖² < 1 and β = 1 "
                        "replaces only part of the old value (a note gives how much); 0 writes nothing.",
                        1, 0, 1),
    };
  }
  /// An RNN: the reference is causal softmax even when the causal switch is off.
  bool referenceIsCausal(bool) const override { return true; }

  /// FAVOR+ features with the linear-attention denominator (the linear rule): causal Performer with i.i.d. ω,
  /// an unbiased kernel estimate whose normalised output converges to causal softmax as m → ∞, the error
  /// falling as 1/√m. Checked at m = 4096 on logits ≲ 1 (q, k scaled by ¼). DPFP, elu+1 and the sum and delta
  /// rules have no such setting.
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"feature_map", "favor"}, {"rule", "linear"}, {"features", "4096"}}, 0.05,
                      "the FAVOR+ map with the linear rule (causal Performer) as m → ∞; the error falls as 1/√m: "
                      "checked at m = 4096 with q, k scaled by ¼ (logits ≲ 1)",
                      0.25};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    const std::string& map_name = p.choice("feature_map");
    const std::string parameter = map_name == "dpfp" ? "nu" : map_name == "favor" ? "features" : "";
    const double n = double(s.n), dv = double(s.dv);
    const double feat = map_name == "dpfp"    ? double(2 * s.d * p.integer("nu"))
                        : map_name == "favor" ? double(p.integer("features"))
                                              : double(s.d);
    const bool delta = p.choice("rule") == "delta";
    // φ(Q), φ(K) and the feature map's exponents; the chunks' states and the snapshots of W.
    r.add((4 * n * feat + 8 * feat * dv + 3 * double(kChunk) * (feat + dv + double(kChunk))) * sizeof(float),
          "the feature maps φ(Q), φ(K) (N × features)", parameter);
    if (delta && options.explain && s.n <= kMaxProbeN)
      r.add((n * n + double(std::max(1u, std::thread::hardware_concurrency())) * n * (feat + 256) * 3) * sizeof(float),
            "the delta rule's N × N probe (formed to be seen up to N = " + std::to_string(kMaxProbeN) + ")");
    const double per_token = delta ? 6.0 * feat * dv : 4.0 * feat * dv;
    r.flops = n * per_token + 2.0 * n * double(std::min<Index>(s.n, kChunk)) * (feat + dv) +
              (map_name == "favor" ? 4.0 * n * feat * double(s.d) : 2.0 * n * feat);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
    if (in.m() != n)
      throw UserError("fast weights are written token by token: the sequence needs as many keys as queries (got " +
                      std::to_string(n) + " queries, " + std::to_string(in.m()) + " keys)");
    const std::string& map_name = p.choice("feature_map");
    const std::string& rule_name = p.choice("rule");
    const Rule rule = rule_name == "delta" ? Rule::Delta : rule_name == "sum" ? Rule::Sum : Rule::Linear;
    const Index nu = p.integer("nu"), m = p.integer("features");
    const float beta = static_cast<float>(p.number("beta"));
    Result r;

    // φ(Q), φ(K): DPFP on the host (elementwise), the others on the backend.
    auto phi_q = std::make_shared<Matrix>();
    auto phi_k = std::make_shared<Matrix>();
    timedStage(r.cost, options, "feature map", [&] {
      if (map_name == "dpfp") {
        *phi_q = dpfp(in.q, nu);
        *phi_k = dpfp(in.k, nu);
      } else if (map_name == "favor") {
        Rng rng(options.seed, 46);
        const Matrix omega = rng.gaussian(m, d);
        FeatureMapOptions fo;
        fo.map = FeatureMap::PositiveRandom;
        fo.projection = &omega;
        fo.input_scale = 1.0f / std::sqrt(std::sqrt(static_cast<float>(d)));  // φ(q)·φ(k) ≈ exp(q·k/√d)
        fo.shift = FeatureShift::PerRow;  // cancels in the sum normalisation and the denominator (queries)
        *phi_q = backend.featureMap(in.q, fo);
        // Keys: a per-row shift cancels in the sum normalisation, but not under the linear denominator;
        // a global shift would look at later tokens (not causal).
        fo.shift = rule == Rule::Linear ? FeatureShift::None : FeatureShift::PerRow;
        *phi_k = backend.featureMap(in.k, fo);
      } else {
        *phi_q = backend.featureMap(in.q, FeatureMap::EluPlusOne);
        *phi_k = backend.featureMap(in.k, FeatureMap::EluPlusOne);
      }
      if (rule != Rule::Linear) {
        sumNormalise(*phi_q);
        sumNormalise(*phi_k);
      }
    });
    const Index feat = phi_q->cols();

    // W after a few tokens (the fast-weight matrix evolving), for the steps.
    std::vector<Index> snapshots;
    for (Index s = 1; s <= 4; ++s) {
      const Index t = std::max<Index>(0, (s * n + 3) / 4 - 1);
      if (snapshots.empty() || snapshots.back() != t) snapshots.push_back(t);
    }
    Programmed programmed;
    if (rule == Rule::Linear) {
      r.output = timedStage(r.cost, options, "attend (causal linear attention)",
                            [&] { return backend.linearAttention(*phi_q, *phi_k, in.v, true); });
      // States for the steps (host, small): W_t = Σ_{j≤t} v_j ⊗ φk_j.
      Matrix w = Matrix::Zero(dv, feat);
      size_t next = 0;
      for (Index j = 0; j < n && next < snapshots.size(); ++j) {
        w += in.v.row(j).transpose() * phi_k->row(j);
        if (j == snapshots[next]) programmed.w.emplace_back(j, w), ++next;
      }
    } else {
      programmed = timedStage(r.cost, options, rule == Rule::Delta ? "delta rule (chunked)" : "sum rule (chunked)",
                              [&] { return program(*phi_q, *phi_k, in.v, rule, beta, backend, snapshots, options); });
      r.output = std::move(programmed.y);
    }

    // Implied weights c_ij (y_i = Σ_{j≤i} c_ij v_j). The delta rule's probe is a view (O(N²·F)): only when
    // explaining, and not in the cost.
    if (rule == Rule::Delta) {
      if (options.explain && n <= kMaxProbeN) {
        auto c = std::make_shared<Matrix>(displayStage(r.cost, options, "implied weights (V = I probe)", [&] {
          return probeDelta(*phi_q, *phi_k, beta, backend, options);
        }));
        for (Index i = 0; i < n; ++i) c->row(i).tail(n - i - 1).setZero();  // exact zeros above the diagonal
        r.explanation.weights = ImpliedWeights(n, n, [c](Range rows, Range cols) {
          return Matrix(c->block(rows.begin, cols.begin, rows.size(), cols.size()));
        });
      } else if (options.explain) {
        r.explanation.weights_withheld = "the delta rule's effective matrix (V = I probe, O(N²·F) time, N² memory) is formed up to N = " +
                                         std::to_string(kMaxProbeN);
        r.explanation.notes.push_back(r.explanation.weights_withheld);
      }
    } else {
      auto kernel = std::make_shared<WeightKernel>();
      kernel->kind = WeightKernel::Kind::Linear;
      kernel->a = phi_q;
      kernel->b = phi_k;
      kernel->row_term = Vector::Ones(n);
      if (rule == Rule::Linear) {  // 1 / φq_i·z_i, z_i = Σ_{j≤i} φk_j; rows with no mass give 0 (as the primitive)
        Eigen::RowVectorXf z = Eigen::RowVectorXf::Zero(feat);
        for (Index i = 0; i < n; ++i) {
          z += phi_k->row(i);
          const float den = phi_q->row(i).dot(z);
          kernel->row_term(i) = den > 0 && std::isfinite(den) ? 1.0f / den : 0.0f;
        }
      }
      kernel->causal = true;
      r.explanation.weights = ImpliedWeights(std::move(kernel));
    }

    // Steps: the fast-weight matrix W_t (dv×F) as the sequence programs it.
    for (const auto& [t, w] : programmed.w)
      r.explanation.steps.push_back(factorStep(
          "W after token " + std::to_string(t),
          "the fast weights (values × features) after writing tokens 0.." + std::to_string(t) +
              (rule == Rule::Delta ? " with the delta rule" : " with the sum rule"),
          {"W after token " + std::to_string(t), std::to_string(dv) + "×" + std::to_string(feat), w}));
    const Index shown = std::min<Index>(n, 64);
    r.explanation.factors.push_back({"φ(K)", map_name + (rule == Rule::Linear ? "" : ", sum-normalised") +
                                                 ", first " + std::to_string(shown) + " tokens",
                                     phi_k->topRows(shown)});
    if (!programmed.w.empty())
      r.explanation.factors.push_back({"W (final)", "the fast-weight memory after the last token (values × features)",
                                       programmed.w.back().second});

    // The capacity view (CATALOG #46 d): write M random key → value pairs into a memory with this run's
    // feature map, read every key back, and measure the retrieval error (sin of the angle between read and
    // stored value, mean over pairs) for the sum and the delta rule, M from F/8 to 2F. Host, small.
    if (map_name != "favor") {
      Rng rng(options.seed, 4646);
      const Index most = std::min<Index>(2 * feat, 512), dim = 16;
      const Matrix keys = rng.gaussian(most, d), values = rng.gaussian(most, dim);
      Matrix phi = map_name == "dpfp" ? dpfp(keys, nu)
                                      : Matrix(keys.unaryExpr([](float x) { return x > 0 ? x + 1 : std::exp(x); }));
      sumNormalise(phi);
      std::vector<Index> loads;
      for (Index load = std::max<Index>(1, feat / 8); load <= most; load *= 2) loads.push_back(load);
      Matrix curve(3, Index(loads.size()));
      for (size_t c = 0; c < loads.size(); ++c) {
        const Index count = loads[c];
        curve(0, Index(c)) = float(count);
        for (int delta = 0; delta < 2; ++delta) {
          Eigen::MatrixXd w = Eigen::MatrixXd::Zero(dim, feat);
          for (Index j = 0; j < count; ++j) {
            const Eigen::VectorXd k = phi.row(j).cast<double>().transpose();
            const Eigen::VectorXd v = values.row(j).cast<double>().transpose();
            w += (delta ? double(beta) * (v - w * k) : v) * k.transpose();
          }
          double error = 0;
          for (Index j = 0; j < count; ++j) {
            const Eigen::VectorXd got = w * phi.row(j).cast<double>().transpose();
            const Eigen::VectorXd want = values.row(j).cast<double>().transpose();
            const double cosine = got.norm() > 0 ? got.dot(want) / (got.norm() * want.norm()) : 0;
            error += std::sqrt(std::max(0.0, 1 - cosine * cosine)) / double(count);
          }
          curve(1 + delta, Index(c)) = float(error);
        }
      }
      r.explanation.factors.push_back({"capacity: retrieval error vs stored pairs",
                                       "row 1: pairs M written (random keys, " + map_name + ", F = " +
                                           std::to_string(feat) + "); row 2: sum rule; row 3: delta rule (β = " +
                                           std::to_string(beta).substr(0, 4) + "): sin of the angle between the "
                                           "value read back and the value stored",
                                       curve});
      r.explanation.steps.push_back(factorStep("capacity", "How well the memory returns what was written, as it fills: "
                                               "row 2 the sum rule, row 3 the delta rule.", r.explanation.factors.back()));
    }

    if (!options.causal)
      r.explanation.notes.push_back("causal by construction (an RNN): the causal switch changes nothing, and the "
                                    "reference is causal softmax");
    r.explanation.notes.push_back("a memory of " + std::to_string(feat) + " features (" + map_name +
                                  "): stored keys interfere more as they grow towards and beyond " +
                                  std::to_string(feat) + " (the delta rule and a larger ν interfere less)");
    if (rule == Rule::Delta) {
      r.explanation.notes.push_back("β = " + std::to_string(beta).substr(0, 4) +
                                    " is a constant stand-in for the learned σ(w_β·x_i)");
      // How far a write moves the key's own read: v̄ → v̄ + β‖φ(k)‖²(v − v̄), mean over the keys that write.
      double step = 0;
      Index writers = 0;
      for (Index j = 0; j < n; ++j) {
        const double sq = phi_k->row(j).cast<double>().squaredNorm();
        if (sq > 0) step += double(beta) * sq, ++writers;
      }
      if (writers > 0) {
        step /= double(writers);
        char note[240];
        std::snprintf(note, sizeof note,
                      "each write moves its key's read %.1f %% of the way to the new value (β·‖φ(k)‖², mean over "
                      "keys; sum-normalised keys have ‖φ(k)‖² < 1): %.1f %% of the old value remains",
                      100 * step, 100 * (1 - step));
        r.explanation.notes.push_back(note);
      }
      r.explanation.notes.push_back("the delta rule's within-chunk triangular solve runs on the host on every backend "
                                    "(a sequential recurrence, no primitive); its products run on the backend");
    } else if (beta != 1.0f) {
      r.explanation.notes.push_back("β is used by the delta rule only");
    }
    if (rule != Rule::Linear)
      r.explanation.notes.push_back("unnormalised (no softmax denominator): a different kernel, its error vs "
                                    "softmax does not vanish");

    const double f = double(feat), nd = double(n), vd = double(dv);
    r.cost.scored_pairs = 0;  // no pair is scored: the memory is a dv×F matrix
    const double per_token = rule == Rule::Delta ? 6.0 * f * vd : 4.0 * f * vd;
    r.cost.flops = nd * per_token + 2.0 * nd * double(std::min(n, kChunk)) * (f + vd) +
                   (map_name == "favor" ? 4.0 * nd * double(m) * double(d) : 2.0 * nd * f);
    r.cost.peak_bytes =
        backend.peakBytes() + (2 * n * feat + feat * dv + kChunk * kChunk + n * dv) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeFastWeight() { return std::make_shared<FastWeight>(); }
}  // namespace attn::mech
