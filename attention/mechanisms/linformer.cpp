// linformer — Wang et al. 2020 (arXiv 2006.04768), CATALOG.md #32. E, F ∈ R^{k×N} project along the
// sequence: K̄ = E·K, V̄ = F·V (k×d); P̄ = rowsoftmax(s·Q·K̄ᵀ) (N×k) and O = P̄·V̄, one dense attention of
// the N queries over k summaries on the backend. The effective matrix A_eff = P̄·F (N×N) is explicit
// (a factored product: rank ≤ k); it is neither row-stochastic nor non-negative for Gaussian F.
// Stand-ins for the learned E and F (CATALOG f, the three of d):
//   random:     Gaussian JL, entries N(0, 1/k), seeded by the run's seed (E = F when shared);
//   pooling:    segment means (row r averages the r-th block of ≈ N/k tokens): A_eff row-stochastic;
//   svd-oracle: the best rank-k truncation A*_k of the exact matrix (Eckart–Young) and O = A*_k·V — a
//               lower bound for every rank-k A_eff, not a method: it needs the exact matrix.
// The spectrum of A* (normalised cumulative singular values, float64 BDCSVD, N ≤ 2048) is a factor:
// the paper's opening figure; its rank-k tail is the error no rank-k A_eff can beat.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include <Eigen/SVD>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/low_rank.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxExactTokens = 2048;      // dense A* and its SVD (the svd-oracle)
constexpr Index kMaxSpectrumTokens = 1024;   // the teaching spectrum: O(N³), ~0.5 s at 1024, ~4 s at 2048
constexpr Index kMaxFactorEntries = Index(1) << 22;

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

class Linformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "linformer", "Linformer", "Wang et al. Linformer: Self-Attention with Linear Complexity", "2006.04768", 2020,
        Family::LowRankKernel, "O(N·k·d)", CausalSupport::No,
        "Project keys and values along the sequence to k summaries (K' = E·K, V' = F·V): A_eff = P'·F has rank ≤ k.",
        "The learned projections E, F are a Gaussian JL matrix (N(0, 1/k)), segment-mean pooling, or the SVD "
        "oracle (best rank-k truncation of the exact matrix).",
        true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("k", "Projected length k", "Rows of E and F: the summaries every query attends to "
                           "(paper: 128 or 256). Clamped to N.", 128, 1, 1 << 16, true),
        ParamSpec::choice("projection", "Projection", "random: Gaussian JL E = F, entries N(0, 1/k); pooling: "
                          "segment means of ≈ N/k tokens (A_eff row-stochastic); svd-oracle: the best rank-k "
                          "truncation of the exact matrix (needs the exact matrix: a lower bound, N ≤ 2048).",
                          {"random", "pooling", "svd-oracle"}, 0),
        ParamSpec::flag("share_kv", "Share E = F", "Key-value sharing (the paper's default); off draws a second "
                        "random F (pooling is shared either way).", true),
        ParamSpec::flag("spectrum", "Spectrum of A*", "Compute the singular spectrum of the exact matrix (float64 "
                        "SVD, N ≤ 1024) and the error no rank-k matrix can beat.", true),
    };
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), mk = in.m(), d = in.q.cols(), dv = in.v.cols();
    Index k = p.integer("k");
    if (k > mk) {
      k = mk;
      r.explanation.notes.push_back("k clamped to " + std::to_string(k) + ": there are only " + std::to_string(mk) +
                                    " keys");
    }
    const std::string projection = p.choice("projection");
    const bool oracle = projection == "svd-oracle";
    const float scale = defaultScale(d);
    // The spectrum is a view: only when explaining (the output is the same either way).
    const bool want_spectrum =
        oracle || (options.explain && p.flag("spectrum") && n <= kMaxSpectrumTokens && mk <= kMaxSpectrumTokens);

    // The exact matrix, when the oracle or the spectrum needs it (float64).
    MatrixD astar;
    if (want_spectrum)
      astar = timedStage(
          r.cost, options, "exact A*",
          [&] { return exactAttentionMatrixD(in.q, in.k, scale, kMaxExactTokens, "Linformer's svd-oracle"); },
          !oracle);  // the oracle's projection needs it; otherwise only the spectrum does

    std::shared_ptr<const Matrix> wa, wb;  // A_eff = wa·wbᵀ
    std::optional<Spectrum> spectrum;
    if (oracle) {
      Eigen::BDCSVD<MatrixD> svd = timedStage(r.cost, options, "SVD of A*", [&] {
        return Eigen::BDCSVD<MatrixD>(astar, Eigen::ComputeThinU | Eigen::ComputeThinV);
      });
      const VectorD sigma = svd.singularValues();
      const Index kk = std::min<Index>(k, sigma.size());
      wa = std::make_shared<const Matrix>((svd.matrixU().leftCols(kk) * sigma.head(kk).asDiagonal()).cast<float>());
      wb = std::make_shared<const Matrix>(svd.matrixV().leftCols(kk).cast<float>());
      r.output = timedStage(r.cost, options, "A*_k·V", [&] {
        const Matrix bt = wb->transpose();
        return backend.matmul(*wa, backend.matmul(bt, in.v, false), false);
      });
      spectrum = Spectrum::fromSingularValues(sigma);
      r.explanation.notes.push_back("oracle: needs the exact matrix — A_eff = A*_k, the best rank-" +
                                    std::to_string(kk) + " approximation (Eckart–Young): a lower bound on the "
                                    "error of any rank-k projection, not a method that scales");
      r.explanation.factors.push_back({"U_kΣ_k", "left singular vectors of A* times the top k singular values, N×k",
                                       *wa});
      r.explanation.factors.push_back({"V_kᵀ", "right singular vectors of A*, k×N", Matrix(wb->transpose())});
      auto exact = std::make_shared<const Matrix>(astar.cast<float>());
      ImpliedWeights exact_weights(n, mk, [exact](Range rows, Range cols) {
        return Matrix(exact->block(rows.begin, cols.begin, rows.size(), cols.size()));
      });
      r.explanation.steps.push_back(weightsStep("exact A*", "The exact softmax matrix (the oracle needs all of it).",
                                                std::move(exact_weights), "A*"));
    } else {
      Matrix e, f;
      timedStage(r.cost, options, "projections", [&] {
        if (projection == "pooling") {
          e = segmentMeanMatrix(mk, k);
          f = e;
          if (!p.flag("share_kv")) r.explanation.notes.push_back("pooling: E = F (the same segment means) either way");
        } else {
          Rng rng(options.seed, 0x11F0);
          e = rng.gaussian(k, mk, 1.0 / std::sqrt(double(k)));
          if (p.flag("share_kv")) {
            f = e;
          } else {
            Rng rng_f(options.seed, 0x11F1);
            f = rng_f.gaussian(k, mk, 1.0 / std::sqrt(double(k)));
          }
        }
      });
      const Matrix kbar = timedStage(r.cost, options, "K' = E·K", [&] { return backend.matmul(e, in.k, false); });
      const Matrix vbar = timedStage(r.cost, options, "V' = F·V", [&] { return backend.matmul(f, in.v, false); });
      DenseAttentionOptions o;
      o.scale = scale;
      const AttentionOutput att =
          timedStage(r.cost, options, "attend to k summaries", [&] { return backend.denseAttention(in.q, kbar, vbar, o); });
      r.output = att.out;
      // P̄ = exp(s·Q·K̄ᵀ − lse) (N×k), from the attention's own log-normalisers.
      auto pbar = std::make_shared<Matrix>(timedStage(r.cost, options, "P'", [&] {
        Matrix logits = backend.matmul(in.q, kbar, true);
        for (Index i = 0; i < n; ++i) {
          const float l = att.lse(i);
          if (!std::isfinite(l)) {
            logits.row(i).setZero();
            continue;
          }
          logits.row(i) = (logits.row(i).array() * scale - l).exp();
        }
        return logits;
      }));
      wa = pbar;
      wb = std::make_shared<const Matrix>(f.transpose());
      const bool pooled = projection == "pooling";
      if (k * mk <= kMaxFactorEntries)
        r.explanation.factors.push_back({"E", pooled ? "segment-mean projection E = F, k×N (row r averages block r)"
                                                     : "random projection E, k×N (entries N(0, 1/k))", e});
      if (n * k <= kMaxFactorEntries)
        r.explanation.factors.push_back({"P'", "rowsoftmax(s·Q·(E·K)ᵀ), N×k: each query's weights over the k "
                                               "summaries", *pbar});
      r.explanation.steps.push_back(factorStep(
          "project keys and values",
          std::string("K' = E·K and V' = F·V: ") + std::to_string(k) + " summary rows, each " +
              (pooled ? "the mean of a block of ≈ N/k tokens" : "a random ±combination of all N tokens"),
          {"E", "projection along the sequence, k×N", k * mk <= kMaxFactorEntries ? e : Matrix()}));
      r.explanation.steps.push_back(factorStep("attend to k summaries",
                                               "P' = rowsoftmax(s·Q·K'ᵀ): N queries × k summaries, O = P'·V'",
                                               {"P'", "N×k", n * k <= kMaxFactorEntries ? *pbar : Matrix()}));
      // Row sums of A_eff = P̄·F: P̄·(F·1).
      const Vector row_sums = (*pbar) * f.rowwise().sum();
      if (!pooled && n > 0)
        r.explanation.notes.push_back("A_eff = P'·F is not row-stochastic (row sums " + fmt("%.3g", row_sums.minCoeff()) +
                                      " … " + fmt("%.3g", row_sums.maxCoeff()) +
                                      ") and has negative entries: Gaussian F");
      else if (pooled)
        r.explanation.notes.push_back("pooling: A_eff = P'·F is row-stochastic (each query's weight on a summary "
                                      "is spread evenly over its block)");
    }
    r.explanation.weights = productWeights(wa, wb);
    r.explanation.steps.push_back(weightsStep("implied weights", oracle ? "A*_k: the best rank-k matrix"
                                                                        : "A_eff = P'·F, N×N of rank ≤ k",
                                              r.explanation.weights, "A_eff"));

    // Spectrum of A* and how far this A_eff is from the best rank-k matrix.
    if (want_spectrum && options.explain) {
      displayStage(r.cost, options, "spectrum", [&] {
        if (!spectrum) spectrum = singularSpectrum(astar);
        const Spectrum& s = *spectrum;
        r.explanation.factors.push_back({"spectrum of exact A*", "normalised cumulative singular values Σ_{i≤r}σ_i/Σσ_i "
                                         "of the exact matrix, r = 1…" + std::to_string(s.sigma.size()),
                                         s.cumulative});
        const Index at = std::min<Index>(k, s.cumulative.cols()) - 1;
        const double tail = s.tail(k);
        std::string note = "spectrum: the top " + std::to_string(k) + " singular values hold " +
                           fmt("%.1f%%", at >= 0 ? 100.0 * s.cumulative(0, at) : 0.0) +
                           " of Σσ; the best rank-k matrix has e_attn = " + fmt("%.3g", tail) +
                           " (the rank-k tail √(Σ_{i>k}σ_i²/Σσ_i²)), a floor for every projection";
        if (!oracle) {
          const MatrixD aeff = wa->cast<double>() * wb->cast<double>().transpose();
          const double norm = astar.norm();
          note += "; this A_eff has e_attn = " + fmt("%.3g", norm > 0 ? (aeff - astar).norm() / norm : 0.0);
        }
        r.explanation.notes.push_back(std::move(note));
      });
    } else if (options.explain && p.flag("spectrum")) {
      r.explanation.notes.push_back("spectrum of A* not computed: N = " + std::to_string(std::max(n, mk)) +
                                    " is above " + std::to_string(kMaxSpectrumTokens) +
                                    " (a dense float64 SVD, O(N³); the svd-oracle projection computes it up to " +
                                    std::to_string(kMaxExactTokens) + ")");
    }

    const double dd = double(d), ddv = double(dv), dn = double(n), dm = double(mk), dk = double(k);
    if (oracle) {
      r.cost.scored_pairs = dn * dm;
      r.cost.flops = 2.0 * dn * dm * dd + 4.0 * dn * dm * std::min(dn, dm) + 2.0 * dk * dm * ddv + 2.0 * dn * dk * ddv;
    } else {
      r.cost.scored_pairs = dn * dk;
      r.cost.flops = 2.0 * dk * dm * (dd + ddv) + 2.0 * dn * dk * (dd + ddv);  // the spectrum is a view: not counted
    }
    r.cost.peak_bytes = backend.peakBytes() + (2 * k * mk + n * k + k * (d + dv)) * Index(sizeof(float)) +
                        (oracle ? 2 * n * mk * Index(sizeof(double)) : 0);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLinformer() { return std::make_shared<Linformer>(); }
}  // namespace attn::mech
