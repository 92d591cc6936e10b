// emanet — Li et al. 2019 (arXiv 1907.13426), CATALOG.md #13, Expectation-Maximization Attention Networks for
// Semantic Segmentation. Instead of N×N weights, K bases μ (K×d) found by a few EM iterations on the pixels:
//  - E-step: Z = rowsoftmax(s·X·μᵀ), N×K (the responsibility of basis k for pixel i);
//  - M-step: μ_k = Σ_i Z_ik x_i / Σ_i Z_ik (Z̃ = Z column-normalised, μ = Z̃ᵀX), then rescaled to a fixed norm.
// The official EMAU (XiaLiPKU/EMANet network.py) runs T = STAGE_NUM = 3 E/M rounds with K = 64 bases on the
// 1×1-conv output X and reconstructs X̃ = Z·μ with the last E-step's Z. Mapped onto attention (CATALOG (d)):
// EM runs on the keys (X = K); the queries read the last E-step's bases, Z_q = rowsoftmax(s·Q·μᵀ) with the
// same μ that gave Z̃; the values are summarised by the same Z̃, ν = Z̃ᵀV (K×dv); O = Z_q·ν. So
// A_eff = Z_q·Z̃ᵀ: explicit, rank ≤ K, row-stochastic, factored (tiled on the backend, never N×N).
// Why the EM objective L(μ) = Σ_i log Σ_k exp(s·x_i·μ_k) never falls: log Σ_k exp(a'_k) ≥ Σ_k Z_k·a'_k + H(Z)
// with equality at a' = a, so L(μ') − L(μ) ≥ s·Σ_k (Σ_i Z_ik x_i)·(μ'_k − μ_k) ≥ 0 when μ'_k is the direction of
// Σ_i Z_ik x_i at the fixed norm: the M-step above. The tests measure it on a photo.
// Backend: each E-step is denseAttention(X, μ, I_K) (Z is its output, L its row log-normalisers), each M-step a
// matmul(Z̃ᵀ, X); the queries' Z_q another denseAttention, then matmul(Z̃ᵀ, V) and matmul(Z_q, ν). Column sums,
// norms and argmax labels are O(N·K) host work.
// Stand-ins: the starting bases are K distinct pixels' keys drawn by the seed (the official code draws them
// Kaiming-normal and keeps them across batches by a moving average, momentum 0.9: learned; not k-means++);
// Q, K, V are the inputs' (the 1×1 convs, ReLU, BN and the residual around the unit are left out).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/low_rank.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxBases = 256;  // the GPU's attention primitive takes heads up to 256 values wide
constexpr Index kMaxIterations = 20;
constexpr std::uint64_t kBasesStream = 0xE3A0000000ull;

std::string shortNumber(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

/// K distinct rows of x drawn by `seed` (a partial Fisher–Yates shuffle), each rescaled to `norm`.
Matrix seedBases(const Matrix& x, Index k, std::uint64_t seed, float norm) {
  const Index n = x.rows();
  Rng rng(seed, kBasesStream);
  std::vector<Index> order(static_cast<size_t>(n));
  for (Index j = 0; j < n; ++j) order[size_t(j)] = j;
  Matrix mu(k, x.cols());
  for (Index c = 0; c < k; ++c) {
    std::swap(order[size_t(c)], order[size_t(c + Index(rng.below(std::uint64_t(n - c))))]);
    mu.row(c) = x.row(order[size_t(c)]);
    const float len = mu.row(c).norm();
    if (len > 0) mu.row(c) *= norm / len;
  }
  return mu;
}

/// One EM iteration's record: the E-step's Z (at the bases before the M-step), L and the labels.
struct Iteration {
  double objective = 0;             // Σ_i log Σ_k exp(s·x_i·μ_k)
  std::vector<std::int32_t> label;  // argmax_k Z_ik
  double error = 0;                 // ‖X − Z·Z̃ᵀX‖ / ‖X‖, the reconstruction from the M-step's weighted means
};

class Emanet final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "emanet",
        "EMANet (EM attention)",
        "Li, Zhong, Wu, Yang, Lin, Liu. Expectation-Maximization Attention Networks for Semantic Segmentation",
        "1907.13426",
        2019,
        Family::LowRankKernel,
        "O(N·K·d·T)",
        CausalSupport::No,
        "T rounds of EM fit K bases to the keys (E: soft-assign each pixel to the bases; M: each basis becomes "
        "the mean of its pixels); every pixel then reads the bases instead of N keys: A_eff = Z_q·Z̃ᵀ, rank K.",
        "the starting bases are K distinct pixels' keys drawn by the seed, instead of learned bases (Kaiming-normal, "
        "then a moving average over training batches); the 1×1 convs, ReLU, BN and the residual are left out",
        false,
        {"convention: logits s·x·μ with s = 1/√d and bases at the keys' mean norm; the official code uses x·μ with "
         "unit-norm bases",
         "convention: EM runs on the keys; queries read the last E-step's bases (Z_q) and values are summarised by its "
         "Z̃ (ν = Z̃ᵀV)",
         "convention: the reconstruction error is ‖K − Z·Z̃ᵀK‖/‖K‖ (the weighted means, before the M-step's "
         "rescaling); the official X̃ uses the rescaled bases"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("bases", "Bases K",
                           "How many bases EM fits (the official EMAU: 64); at most N, and the "
                           "rank of the implied weights.",
                           64, 1, double(kMaxBases), true),
        ParamSpec::integer("iterations", "EM iterations T", "Rounds of E-step + M-step (the official STAGE_NUM: 3).", 3,
                           1, double(kMaxIterations)),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const double n = double(s.n), d = double(s.d), dv = double(s.dv);
    const double k = double(std::clamp<Index>(p.integer("bases"), 1, std::max<Index>(s.n, 1)));
    const double t = double(std::clamp<Index>(p.integer("iterations"), 1, kMaxIterations));
    r.add(n * dv * sizeof(float), "the output (N × dv floats)");
    r.add(4 * n * k * sizeof(float), "the responsibilities Z, Z̃ᵀ and Z_q (N × K floats each)", "bases");
    r.add((3 * k * (d + dv) + 2 * k * k) * sizeof(float), "the bases, their means and ν (K × d)", "bases");
    if (options.explain) {
      r.add(t * n * (sizeof(float) + sizeof(std::int32_t)) * 2, "the label map of each iteration (N per iteration)",
            "iterations");
      r.add(2 * n * d * sizeof(float), "the reconstruction Z·Z̃ᵀK shown (N × d)");
      if (n * n <= double(Index(1) << 20)) r.add(2 * n * n * sizeof(float), "the implied N × N matrix shown");
    }
    r.flops = t * 4 * n * k * d + 2 * n * k * d + 4 * n * k * dv;
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "EMANet");
    const Index n = in.n(), d = in.k.cols(), dv = in.v.cols();
    const Index asked = p.integer("bases"), bases = std::clamp<Index>(asked, 1, std::max<Index>(n, 1));
    const Index iterations = std::clamp<Index>(p.integer("iterations"), 1, kMaxIterations);
    if (bases < asked)
      r.explanation.notes.push_back("bases: " + std::to_string(asked) + " bases for " + std::to_string(n) +
                                    " pixels; using " + std::to_string(bases) + " (one per pixel at most)");
    const float scale = defaultScale(d);
    const Matrix& x = in.k;
    // The bases keep the keys' mean norm, so the logits s·x·μ have the scale of s·x·x' (O(N·d) host work).
    double norm_sum = 0;
    for (Index i = 0; i < n; ++i) norm_sum += double(x.row(i).norm());
    const float norm = n > 0 ? float(norm_sum / double(n)) : 0.0f;
    Matrix mu = timedStage(r.cost, options, "seed bases", [&] { return seedBases(x, bases, options.seed, norm); });
    const Matrix initial = mu;
    const Matrix identity = Matrix::Identity(bases, bases);
    DenseAttentionOptions soft;
    soft.scale = scale;
    const double key_norm = double(x.norm());

    std::vector<Iteration> history;
    Matrix z_tilde_t;  // K×N: the last E-step's Z̃ᵀ
    Matrix last_mu;    // the bases of the last E-step
    for (Index t = 1; t <= iterations; ++t) {
      Iteration it;
      last_mu = mu;
      AttentionOutput e = timedStage(r.cost, options, "E-step " + std::to_string(t),
                                     [&] { return backend.denseAttention(x, mu, identity, soft); });
      const Matrix& z = e.out;  // N×K responsibilities
      for (Index i = 0; i < n; ++i) it.objective += double(e.lse(i));
      // Z̃ = Z column-normalised (O(N·K) host work). A basis no pixel reaches (its column underflowed to 0)
      // keeps its place: its Z̃ column is 0 and its μ is left as it was.
      std::vector<double> mass(size_t(bases), 0.0);
      for (Index i = 0; i < n; ++i)
        for (Index k = 0; k < bases; ++k) mass[size_t(k)] += double(z(i, k));
      z_tilde_t.resize(bases, n);
      for (Index k = 0; k < bases; ++k) {
        const double m = mass[size_t(k)];
        for (Index i = 0; i < n; ++i) z_tilde_t(k, i) = m > 0 ? float(double(z(i, k)) / m) : 0.0f;
      }
      const Matrix means = timedStage(r.cost, options, "M-step " + std::to_string(t),
                                      [&] { return backend.matmul(z_tilde_t, x, false); });  // Z̃ᵀX, K×d
      for (Index k = 0; k < bases; ++k) {
        const float len = means.row(k).norm();
        if (mass[size_t(k)] > 0 && len > 0) mu.row(k) = means.row(k) * (norm / len);
      }
      if (options.explain) {
        it.label.resize(size_t(n));
        for (Index i = 0; i < n; ++i) {
          Index best = 0;
          z.row(i).maxCoeff(&best);
          it.label[size_t(i)] = std::int32_t(best);
        }
        const Matrix rebuilt = displayStage(r.cost, options, "reconstruction " + std::to_string(t),
                                            [&] { return backend.matmul(z, means, false); });
        it.error = key_norm > 0 ? double((x - rebuilt).norm()) / key_norm : 0.0;
      }
      history.push_back(std::move(it));
    }

    // The queries read the last E-step's bases; the values are summarised by its Z̃.
    auto z_q = std::make_shared<Matrix>(timedStage(r.cost, options, "queries' responsibilities Z_q", [&] {
      return backend.denseAttention(in.q, last_mu, identity, soft).out;
    }));
    const Matrix nu =
        timedStage(r.cost, options, "value bases ν = Z̃ᵀV", [&] { return backend.matmul(z_tilde_t, in.v, false); });
    r.output = timedStage(r.cost, options, "O = Z_q·ν", [&] { return backend.matmul(*z_q, nu, false); });
    auto z_tilde = std::make_shared<Matrix>(z_tilde_t.transpose());
    r.explanation.weights = productWeights(z_q, z_tilde);

    const double dn = double(n), dk = double(bases), dd = double(d), ddv = double(dv);
    r.cost.scored_pairs = double(iterations + 1) * dn * dk;
    r.cost.flops = double(iterations) * 4 * dn * dk * dd + 2 * dn * dk * dd + 4 * dn * dk * ddv;
    r.cost.peak_bytes = backend.peakBytes() + (4 * n * bases + 3 * bases * (d + dv)) * Index(sizeof(float));

    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back(
        "a different operator, not an approximation of softmax(s·QKᵀ): A_eff = Z_q·Z̃ᵀ has rank "
        "≤ K = " +
        std::to_string(bases) + " and rows that sum to 1");
    if (!options.explain) return r;

    // What EM did, iteration by iteration: the objective, the reconstruction error and the label map.
    Matrix objective(1, iterations), error(1, iterations);
    for (Index t = 0; t < iterations; ++t) {
      objective(0, t) = float(history[size_t(t)].objective);
      error(0, t) = float(history[size_t(t)].error);
    }
    for (Index t = 0; t < iterations; ++t) {
      const Iteration& it = history[size_t(t)];
      Matrix labels(g.h, g.w);
      for (Index i = 0; i < n; ++i) labels(i / g.w, i % g.w) = float(it.label[size_t(i)]);
      auto view = std::make_shared<Explanation>();
      const std::string caption = "E-step " + std::to_string(t + 1) +
                                  ": each pixel's most responsible basis (argmax Z, " + std::to_string(bases) +
                                  " bases); EM objective " + shortNumber(it.objective) + ", reconstruction error " +
                                  shortNumber(error(0, t));
      view->factors.push_back(
          {"argmax Z (iteration " + std::to_string(t + 1) + ")", caption, labels, MatrixLayout::Labels});
      view->groupings.push_back(
          Grouping::fromLabels("EM clusters (iteration " + std::to_string(t + 1) + ")", it.label, std::int32_t(bases)));
      if (t + 1 == iterations) {
        r.explanation.factors.push_back(view->factors.front());
        r.explanation.groupings.push_back(view->groupings.front());
      }
      r.explanation.steps.push_back(Step{"iteration " + std::to_string(t + 1), caption, std::move(view), ""});
    }
    r.explanation.steps.push_back(weightsStep(
        "implied weights", "A_eff = Z_q·Z̃ᵀ: every pixel reads the " + std::to_string(bases) + " bases, rank ≤ K",
        r.explanation.weights, "A_eff"));
    r.explanation.factors.push_back({"EM objective per iteration",
                                     "Σ_i log Σ_k exp(s·x_i·μ_k) at each E-step's bases "
                                     "(never falls: EM)",
                                     objective});
    r.explanation.factors.push_back({"reconstruction error per iteration", "‖K − Z·Z̃ᵀK‖ / ‖K‖ at each E-step", error});
    r.explanation.factors.push_back(
        {"initial bases μ⁰", "K distinct pixels' keys at the keys' mean norm (K × d)", initial});
    r.explanation.factors.push_back({"final bases μ", "after the last M-step (K × d)", mu});
    r.explanation.notes.push_back("EM objective " + shortNumber(objective(0, 0)) + " → " +
                                  shortNumber(objective(0, iterations - 1)) + ", reconstruction error " +
                                  shortNumber(error(0, 0)) + " → " + shortNumber(error(0, iterations - 1)) + " over " +
                                  std::to_string(iterations) + " iterations");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeEmanet() { return std::make_shared<Emanet>(); }
}  // namespace attn::mech
