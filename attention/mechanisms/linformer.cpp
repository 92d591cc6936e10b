// linformer — Wang et al. 2020 (arXiv 2006.04768), CATALOG.md #32. E, F ∈ R^{k×N} project along the
// sequence: K̄ = E·K, V̄ = F·V (k×d); P̄ = rowsoftmax(s·Q·K̄ᵀ) (N×k) and O = P̄·V̄, one dense attention of
// the N queries over k summaries on the backend. The effective matrix A_eff = P̄·F (N×N) is explicit
// (a factored product: rank ≤ k).
// Stand-ins for the learned E and F (CATALOG f):
//   oracle-f (default): what a trained Linformer can reach on this input. E is segment-mean pooling
//               (fixed, the same for every input, as a trained E is; the paper's own pooling option) and
//               F = P̄⁺·A*, the least-squares fit of P̄·F to the exact matrix — the best F for this E,
//               in e_attn and (since F·V = P̄⁺·O*) in e_out for every V. An oracle: it needs every exact
//               row (O(N²·(d + k))), and a trained F is one matrix for every input. A_eff = P̄·P̄⁺·A* is
//               the projection of A*'s columns onto the k columns of P̄; its rows sum to 1 (P̄·1 = 1).
//               Computed from an orthonormal basis U of P̄'s columns (Householder QR): Uᵀ·A* in one pass
//               over blocks of exact rows, O = U·((Uᵀ·A*)·V), A_eff = U·(Uᵀ·A*); k = N makes P̄ = A*
//               invertible and the run exact.
//   random:     untrained: Gaussian JL, entries N(0, 1/k), seeded by the run's seed. Under the softmax
//               the JL identity no longer holds: e_out is far above 1 (worse than outputting zeros) and
//               stays above 1 even at k = N. A_eff is neither row-stochastic nor non-negative.
//   pooling:    E = F = segment means (row r averages the r-th block of ≈ N/k tokens): A_eff
//               row-stochastic; exact at k = N.
//   svd-oracle: the best rank-k truncation A*_k of the exact matrix (Eckart–Young) and O = A*_k·V — a
//               lower bound for every rank-k A_eff, not Linformer's form: it needs the exact matrix.
// Sharing (the paper's three options: headwise, key-value, layerwise; no default in the paper): one head
// here; share_kv draws E = F for the random projection. fairseq's Linformer keeps E and F separate
// (shared_kv_compressed = 0), so does the default here.
// The spectrum of A* (normalised cumulative singular values, float64 BDCSVD, N ≤ 1024) is a factor:
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
// oracle-f's fit is O(N·M·k) work: 2³⁶ ≈ 6.9·10¹⁰ is k = 256 at N = 16384, or k = N at N = 4096.
constexpr double kMaxFitWork = 68719476736.0;

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
        "Default (oracle-f): E = segment-mean pooling and F fitted by least squares to this input's exact "
        "attention — an oracle for a trained Linformer (it needs exact attention). Options: pooling E = F, an "
        "untrained Gaussian JL projection, the SVD oracle (best rank-k matrix).",
        true,
        {"convention: the default F is fitted to each input's exact attention (an oracle, O(N²·(d + k))); the "
         "paper learns E, F once for all inputs (fairseq: E ≠ F, one pair per layer)"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("k", "Projected length k", "Rows of E and F: the summaries every query attends to "
                           "(paper: 128 or 256). Clamped to N.", 128, 1, 1 << 16, true),
        ParamSpec::choice("projection", "Projection",
                          "oracle-f: E = segment means, F = P'⁺·A* fitted to this input's exact attention (the best "
                          "F for that E; an oracle for a trained F, O(N²·(d + k))); random: an untrained Gaussian JL "
                          "projection, entries N(0, 1/k) (e_out above 1 on the generated inputs, even at k = N: "
                          "worse than outputting zeros); pooling: E = F = segment means of "
                          "≈ N/k tokens (A_eff row-stochastic); svd-oracle: the best rank-k truncation of the exact "
                          "matrix (a lower bound, not Linformer's form, N ≤ 2048).",
                          {"oracle-f", "random", "pooling", "svd-oracle"}, 0),
        ParamSpec::flag("share_kv", "Share E = F", "Random projection only: E = F (the paper's key-value sharing, "
                        "one of its three sharing options; fairseq's default keeps E and F separate). pooling "
                        "shares E = F and oracle-f fits F either way.", false),
        ParamSpec::flag("spectrum", "Spectrum of A*", "Compute the singular spectrum of the exact matrix (float64 "
                        "SVD, N ≤ 1024) and the error no rank-k matrix can beat.", true),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"k", std::to_string(in.m())}, {"projection", "oracle-f"}}, 1e-4,
                      "k = N: every pooled summary is one token, P' is N×N and the fitted F = P'⁻¹·A*"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies
    const double n = double(s.n), m = double(s.m), k = double(std::min(p.integer("k"), s.m));  // k > M is clamped
    const std::string projection = p.choice("projection");
    const bool oracle = projection == "svd-oracle", fitted = projection == "oracle-f";
    // E and F (k × M), the projected keys and values, P' (N × k); the fit's factors and its block of exact rows.
    r.add(
        (3 * k * m + n * k + k * double(s.d + s.dv) + (fitted ? 6 * n * k + 6 * k * m + 256 * m : 0.0)) * sizeof(float),
        "the projections (k × (N + M))", "k");
    const bool spectrum =
        oracle || (options.explain && p.flag("spectrum") && s.n <= kMaxSpectrumTokens && s.m <= kMaxSpectrumTokens);
    if (spectrum)                                                // A* in double and its full SVD (U: N × N, V: M × M)
      r.add((2 * n * m + n * n + m * m) * sizeof(double) * 3.5,  // BDCSVD's work: about as much again
            oracle ? "the exact matrix A* and its SVD (N × N doubles)"
                   : "the spectrum of A* (N × N doubles, formed to be seen)",
            oracle ? "projection" : "spectrum",
            oracle ? "try a smaller N, or another projection" : "turn spectrum off");
    const double d = double(s.d), dv = double(s.dv);
    if (double(s.n) * double(s.m) <= double(Index(1) << 20))  // the implied weights' step shows them dense
      r.add(2 * double(s.n) * double(s.m) * sizeof(float) * 2, "the implied N × M matrix shown (up to 2²⁰ entries)");
    r.flops = oracle   ? 2.0 * n * m * d + 4.0 * n * m * std::min(n, m) + 2.0 * k * m * dv + 2.0 * n * k * dv
              : fitted ? 2.0 * k * m * d + 2.0 * n * k * d + 4.0 * n * k * k + 2.0 * n * m * (d + k) + 2.0 * k * m * dv
                       : 2.0 * k * m * (d + dv) + 2.0 * n * k * (d + dv);
    return r;
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
    const bool oracle = projection == "svd-oracle", fitted = projection == "oracle-f";
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
    } else if (fitted) {
      runFitted(in, k, scale, backend, options, r, wa, wb);
    } else {
      Matrix e, f;
      timedStage(r.cost, options, "projections", [&] {
        if (projection == "pooling") {
          e = segmentMeanMatrix(mk, k);
          f = e;
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
      const bool shared = pooled || p.flag("share_kv");
      if (k * mk <= kMaxFactorEntries)
        r.explanation.factors.push_back({"E", pooled ? "segment-mean projection E = F, k×N (row r averages block r)"
                                                     : "untrained random projection E, k×N (entries N(0, 1/k))", e});
      if (!shared && k * mk <= kMaxFactorEntries)
        r.explanation.factors.push_back({"F", "untrained random projection F (drawn apart from E), k×N", f});
      if (n * k <= kMaxFactorEntries)
        r.explanation.factors.push_back({"P'", "rowsoftmax(s·Q·(E·K)ᵀ), N×k: each query's weights over the k "
                                               "summaries", *pbar});
      r.explanation.steps.push_back(factorStep(
          "project keys and values",
          std::string("K' = E·K and V' = F·V: ") + std::to_string(k) + " summary rows, each " +
              (pooled ? "the mean of a block of ≈ N/k tokens"
                      : std::string("a random ±combination of all N tokens (untrained") + (shared ? ", E = F)" : ")")),
          {"E", "projection along the sequence, k×N", k * mk <= kMaxFactorEntries ? e : Matrix()}));
      r.explanation.steps.push_back(factorStep("attend to k summaries",
                                               "P' = rowsoftmax(s·Q·K'ᵀ): N queries × k summaries, O = P'·V'",
                                               {"P'", "N×k", n * k <= kMaxFactorEntries ? *pbar : Matrix()}));
      // Row sums of A_eff = P̄·F: P̄·(F·1).
      const Vector row_sums = (*pbar) * f.rowwise().sum();
      if (!pooled && n > 0)
        r.explanation.notes.push_back("untrained random projection: A_eff = P'·F is not row-stochastic (row sums " +
                                      fmt("%.3g", row_sums.minCoeff()) + " … " + fmt("%.3g", row_sums.maxCoeff()) +
                                      ") and has negative entries; under the softmax the JL identity does not hold");
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
    } else if (fitted) {
      // set by runFitted
    } else {
      r.cost.scored_pairs = dn * dk;
      r.cost.flops = 2.0 * dk * dm * (dd + ddv) + 2.0 * dn * dk * (dd + ddv);  // the spectrum is a view: not counted
    }
    r.cost.peak_bytes = backend.peakBytes() + (2 * k * mk + n * k + k * (d + dv)) * Index(sizeof(float)) +
                        (oracle ? 2 * n * mk * Index(sizeof(double)) : 0) +
                        (fitted ? (n * k + 256 * mk) * Index(sizeof(float)) : 0);  // U, a block of exact rows
    return r;
  }

 private:
  /// oracle-f: E = segment means, P' = rowsoftmax(s·Q·(E·K)ᵀ) and F = P'⁺·A*, the least-squares fit to the
  /// exact matrix. With U an orthonormal basis of P''s columns, A_eff = P'·F = U·Uᵀ·A*: the fit is
  /// Uᵀ·A* (r×M, one pass over the exact rows, O(N·M·(d + r))), the output U·((Uᵀ·A*)·V), the weights
  /// U·(Uᵀ·A*). U comes from a Householder QR of P' (float; an SVD of R only when R's diagonal shows
  /// dependent columns, so that U spans the columns of P' and no more). Sets wa = U, wb = (Uᵀ·A*)ᵀ.
  void runFitted(const Inputs& in, Index k, float scale, Backend& backend, const RunOptions& options, Result& r,
                 std::shared_ptr<const Matrix>& wa, std::shared_ptr<const Matrix>& wb) const {
    const Index n = in.n(), mk = in.m(), dv = in.v.cols();
    if (double(n) * double(mk) * double(k) > kMaxFitWork)
      throw UserError("Linformer's oracle-f fits F to the exact matrix with O(N·M·k) work: N = " + std::to_string(n) +
                      " with k = " + std::to_string(k) + " is above its limit; lower k, or use the pooling or "
                      "random projection (O(N·k·d))");
    const Matrix e = timedStage(r.cost, options, "projections", [&] { return segmentMeanMatrix(mk, k); });
    const Matrix kbar = timedStage(r.cost, options, "K' = E·K", [&] { return backend.matmul(e, in.k, false); });
    const Matrix pbar = timedStage(r.cost, options, "P'", [&] {
      Matrix logits = backend.matmul(in.q, kbar, true);
      for (Index i = 0; i < n; ++i) {
        logits.row(i) = ((logits.row(i).array() - logits.row(i).maxCoeff()) * scale).exp();
        logits.row(i) /= logits.row(i).sum();
      }
      return logits;
    });

    // U: P' = Q·R; U = Q when R's diagonal shows k independent columns, else Q·U_R from the SVD of R
    // (rank r: singular values above 1e-5·σ₁, float's reach), F = W·Σ⁻¹·(Uᵀ·A*).
    const Index qc = std::min(n, k);
    Matrix u, f_left;  // f_left: F = f_left·(Uᵀ·A*), k×r (when formed)
    Index rank = qc;
    timedStage(r.cost, options, "orthonormal basis of P' (QR)", [&] {
      const Eigen::HouseholderQR<Matrix> qr(pbar);
      const Matrix q_thin = qr.householderQ() * Matrix::Identity(n, qc);
      const Matrix rr = qr.matrixQR().topRows(qc).triangularView<Eigen::Upper>();
      const Eigen::VectorXf diag = rr.diagonal().cwiseAbs();
      const bool independent = qc == k && diag.minCoeff() > 1e-5f * diag.maxCoeff();
      if (independent) {
        u = q_thin;
        if (k * mk <= kMaxFactorEntries)
          f_left = rr.triangularView<Eigen::Upper>().solve(Matrix::Identity(k, k));
        return;
      }
      const Eigen::BDCSVD<MatrixD> svd(rr.cast<double>(), Eigen::ComputeFullU | Eigen::ComputeFullV);
      const VectorD sigma = svd.singularValues();
      rank = 0;
      while (rank < sigma.size() && sigma(rank) > 1e-5 * sigma(0)) ++rank;
      u = q_thin * svd.matrixU().leftCols(rank).cast<float>();
      if (k * mk <= kMaxFactorEntries)
        f_left = (svd.matrixV().leftCols(rank) * sigma.head(rank).cwiseInverse().asDiagonal()).cast<float>();
    });

    // The fit Uᵀ·A* (r×M) over blocks of exact rows A*_i = rowsoftmax(s·q_i·Kᵀ): the oracle's O(N²) pass.
    const Matrix ut = u.transpose();
    const Matrix bt = timedStage(r.cost, options, "fit F = P'⁺·A* (exact rows)", [&] {
      constexpr Index kRows = 256;
      Matrix acc = Matrix::Zero(u.cols(), mk);
      for (Index i0 = 0; i0 < n; i0 += kRows) {
        const Index rows = std::min(kRows, n - i0);
        Matrix a = backend.matmul(in.q.middleRows(i0, rows), in.k, true);
        for (Index i = 0; i < rows; ++i) {
          a.row(i) = ((a.row(i).array() - a.row(i).maxCoeff()) * scale).exp();
          a.row(i) /= a.row(i).sum();
        }
        acc += backend.matmul(Matrix(ut.middleCols(i0, rows)), a, false);
        options.checkCancel();
      }
      return acc;
    });
    r.output = timedStage(r.cost, options, "O = P'·(F·V)",
                          [&] { return backend.matmul(u, backend.matmul(bt, in.v, false), false); });
    wa = std::make_shared<const Matrix>(u);
    wb = std::make_shared<const Matrix>(bt.transpose());

    if (k * mk <= kMaxFactorEntries)
      r.explanation.factors.push_back({"E", "segment-mean projection E, k×N (row r averages block r): fixed for every "
                                            "input, as a trained E is", e});
    if (n * k <= kMaxFactorEntries)
      r.explanation.factors.push_back({"P'", "rowsoftmax(s·Q·(E·K)ᵀ), N×k: each query's weights over the k "
                                             "summaries", pbar});
    r.explanation.steps.push_back(factorStep(
        "project keys", "K' = E·K: " + std::to_string(k) + " summary keys, each the mean of a block of ≈ N/k tokens "
                        "(E fixed for every input, as a trained E is)",
        {"E", "projection along the sequence, k×N", k * mk <= kMaxFactorEntries ? e : Matrix()}));
    r.explanation.steps.push_back(factorStep("attend to k summaries",
                                             "P' = rowsoftmax(s·Q·K'ᵀ): N queries × k summaries",
                                             {"P'", "N×k", n * k <= kMaxFactorEntries ? pbar : Matrix()}));
    if (f_left.size() > 0) {
      const Matrix f = f_left * bt;  // k×M: what a trained F would have to be for this input (signed)
      r.explanation.factors.push_back({"F", "F = P'⁺·A*, k×N, fitted to this input's exact attention (signed)", f});
      r.explanation.steps.push_back(factorStep(
          "fit F (oracle)", "F = P'⁺·A*: the least-squares best F for this E, fitted to this input's exact "
                            "attention (a trained F is one matrix for every input); A_eff = P'·F, rows sum to 1",
          {"F", "k×N, signed", f}));
    }
    r.explanation.notes.push_back(
        "oracle-f: F = P'⁺·A* is fitted by least squares to this input's exact attention — the best F for pooled "
        "keys, and it needs exact attention (O(N²·(d + k))); a trained Linformer's F is one matrix for every input");
    if (rank < std::min(n, k))
      r.explanation.notes.push_back("P' has rank " + std::to_string(rank) + " < k = " + std::to_string(k) +
                                    ": some summaries coincide, so A_eff has rank " + std::to_string(rank));
    // E·K, P''s logits, the QR, the fit (exact logits and Uᵀ·A*), then U·((Uᵀ·A*)·V).
    const double dn = double(n), dm = double(mk), dk = double(k), dd = double(in.q.cols()), dr = double(u.cols());
    r.cost.scored_pairs = dn * dm + dn * dk;
    r.cost.flops = 2.0 * dk * dm * dd + 2.0 * dn * dk * dd + 4.0 * dn * dk * dk + 2.0 * dn * dm * (dd + dr) +
                   2.0 * dr * (dm + dn) * double(dv);
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLinformer() { return std::make_shared<Linformer>(); }
}  // namespace attn::mech
