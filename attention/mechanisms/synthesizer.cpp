// synthesizer — Tay et al. 2020 (arXiv 2005.00743), CATALOG.md #27. The attention logits are not
// q·k dot products but synthesized: Y = rowsoftmax(B)·V. Variants (CATALOG a):
//   random:      B = R, an N×N matrix that does not depend on the input at all;
//   dense:       row i comes from token i alone: B_i = W₂·ReLU(W₁x_i + b₁) + b₂ ∈ R^N;
//   factorized:  factorized random, B = R₁R₂ᵀ with R₁, R₂ ∈ R^{N×k} (O(N·k) parameters);
//   mixture:     B + α·s·QKᵀ (the paper's Random + Vanilla mix) for α > 0.
// Causal: B is masked (j > i → −∞).
//
// Stand-ins for the learned R / b₂ (CATALOG f), chosen by `init`:
//   fitted:       R = log Ā, Ā the mean exact attention A* over `samples` generated inputs of the same
//                 spec (same generator and sizes, other seeds). softmax(log Ā) = Ā, so this R is the exact
//                 minimiser of the least-squares fit ‖softmax(R) − Ā‖ (logits floored at −30, i.e.
//                 weights below e⁻³⁰ of the row are dropped). The "training set" is generated, never the
//                 input itself.
//   fixed-random: R ~ N(0, σ²) (seeded) — the paper's "fixed random" synthesizer.
//   prior:        a structured prior, a Gaussian band −(i − j)²/(2w²), w = max(1, N/32), plus vertical
//                 stripes (logit −1) at 4 evenly spaced columns.
// Factorized + fitted / prior: R₁R₂ᵀ is the rank-k truncated SVD of that R (randomised range finder).
// Dense: W₁ (h×d) and W₂ (N×h) are fixed random (seeded), b₁ = 0, and b₂ ∈ R^N is one vector added to
// every row, as in the paper: for fitted and prior the log of the mean row of softmax(R) (the part of R
// that does not depend on the row), for fixed-random N(0, σ²) entries. x_i is the token's query scaled
// to unit RMS, so row i depends on token i alone: two equal tokens get equal rows.
// Not an approximation of softmax attention: a different operator. (The Random + Vanilla mixture with
// zero synthesized logits, σ = 0 and α = 1, is softmax attention itself; it switches the synthesizer off
// rather than approximating softmax with it, so there is no exact limit of the synthesizer.)
#include <Eigen/QR>
#include <Eigen/SVD>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxTokens = 4096;  // the synthesizer keeps N×N logits (W₂ fixes the maximum length)
constexpr float kLogitFloor = -30;

class Synthesizer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "synthesizer", "Synthesizer", "Tay et al. Synthesizer: Rethinking Self-Attention in Transformer Models",
        "2005.00743", 2020, Family::NonPairwise, "O(N²·d) to apply, no QKᵀ", CausalSupport::Yes,
        "The N×N attention logits are synthesized without token-token dot products: a fixed (random) matrix, "
        "or one row per token from that token alone.",
        "R fitted to the mean exact attention over generated inputs, fixed random, or a band-and-stripes prior; "
        "for the dense variant random MLP weights and b₂ the log mean row of softmax(R) (or random).",
        false,
        {"convention: the dense variant reads x_i = the token's query scaled to unit RMS (the paper: the layer's "
         "input X); W₁, W₂ fixed random, b₁ = 0"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Variant",
                          "random: B = R, the same for every input; dense: row i = W₂·ReLU(W₁x_i) + b₂ from token i "
                          "alone (b₂ one vector for every row); factorized: B = R₁R₂ᵀ of rank k.",
                          {"random", "dense", "factorized"}, 0),
        ParamSpec::choice("init", "Stand-in for R",
                          "fitted: log of the mean exact attention over generated inputs of the same spec; "
                          "fixed-random: N(0, σ²) logits; prior: Gaussian band + vertical stripes. Dense: b₂ is "
                          "the log of the mean row of softmax(R) (fixed-random: N(0, σ²) entries).",
                          {"fitted", "fixed-random", "prior"}, 0),
        ParamSpec::integer("samples", "Fitting inputs", "Generated inputs (other seeds) averaged by the fitted "
                           "stand-in.", 4, 1, 64),
        ParamSpec::real("sigma", "Random σ", "Standard deviation of the fixed random logits (the dense variant: of "
                        "b₂); 0 gives uniform rows in the random and factorized variants.", 1, 0, 20),
        ParamSpec::integer("rank", "Rank k", "Rank of the factorized logits R₁R₂ᵀ.", 8, 1, 4096, true),
        ParamSpec::integer("hidden", "MLP width h", "Hidden units of the dense synthesizer's MLP.", 16, 1, 1024, true),
        ParamSpec::real("mix", "Dot-product mix α", "Adds α·s·QKᵀ to the synthesized logits (Random + Vanilla "
                        "mixture); 0 is the pure synthesizer.", 0, 0, 1),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const std::string variant = p.choice("variant"), init = p.choice("init");
    const double n = double(s.n), nn = n * n, rank = double(std::min<Index>(p.integer("rank"), s.n));
    const double hidden = double(p.integer("hidden"));
    // The stand-in R and the logits B (one matrix for the random variant); the fitted R's mean in double.
    r.add(nn * sizeof(float) * (variant == "random" ? 1 : 2) + (init == "fitted" ? nn * sizeof(double) : 0.0),
          "the N × N synthesized logits");
    if (variant == "factorized")
      r.add(n * std::min(n, rank + 8) * (2 * sizeof(float) + 3 * sizeof(double)), "the rank-k factors R₁, R₂", "rank");
    if (variant == "dense") r.add(n * (hidden * 3 + double(s.d)) * sizeof(float), "the MLP's hidden units", "hidden");
    r.flops = 2.0 * nn * double(s.dv) + (p.number("mix") > 0 ? 2.0 * nn * double(s.d) : 0.0) +
              (variant == "dense" ? 2.0 * n * hidden * double(s.d + s.n) : 0.0) +
              (variant == "factorized" ? 2.0 * nn * rank : 0.0);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (in.m() != in.n()) throw UserError("the Synthesizer's N×N logits need as many keys as queries");
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
    if (n > kMaxTokens)
      throw UserError("the Synthesizer keeps an N×N logit matrix (its W₂ fixes the maximum length): use N ≤ " +
                      std::to_string(kMaxTokens) + " tokens (N is " + std::to_string(n) + ")");
    Result r;
    const std::string variant = p.choice("variant"), init = p.choice("init");
    const float alpha = float(p.number("mix"));
    Index rank = p.integer("rank");
    if (variant == "factorized" && rank > n) {
      r.explanation.notes.push_back("rank clamped to " + std::to_string(n) + " (the number of tokens)");
      rank = n;
    }

    // 1. The stand-in R (N×N logits), independent of the input.
    Matrix base = timedStage(r.cost, options, "stand-in R (" + init + ")", [&] { return standIn(in, p, n, backend, options); });
    auto logits = std::make_shared<Matrix>();
    Matrix r1, r2, hidden;
    if (variant == "random") {
      *logits = std::move(base);
    } else if (variant == "factorized") {
      timedStage(r.cost, options, "factorize R₁R₂ᵀ", [&] {
        if (init == "fixed-random") {
          Rng rng(options.seed, 271);
          // Entries of R₁R₂ᵀ are sums of k products of two N(0, s²) draws: variance k·s⁴ = σ² for
          // s = √σ/k^{1/4} (standard deviation σ, as for the full random R; not Gaussian for small k).
          const double s = std::sqrt(p.number("sigma")) / std::sqrt(std::sqrt(double(rank)));
          r1 = rng.gaussian(n, rank, s);
          r2 = rng.gaussian(n, rank, s);
        } else {
          lowRank(base, rank, options.seed, backend, r1, r2);
        }
        *logits = backend.matmul(r1, r2, true);
      });
    } else {  // dense: b₂ + W₂·ReLU(W₁x_i)
      const Index h = p.integer("hidden");
      timedStage(r.cost, options, "synthesize rows (MLP)", [&] {
        Rng rng(options.seed, 272);
        const Matrix w1 = rng.gaussian(h, d, 1.0 / std::sqrt(double(d)));
        const Matrix w2 = rng.gaussian(n, h, 1.0 / std::sqrt(double(h)));
        Matrix x = in.q;
        for (Index i = 0; i < n; ++i) {
          const float rms = x.row(i).norm() / std::sqrt(float(d));
          if (rms > 0) x.row(i) /= rms;
        }
        hidden = backend.matmul(x, w1, true).cwiseMax(0.0f);  // N×h
        const Eigen::RowVectorXf b2 = biasVector(base, init, p.number("sigma"), options);
        *logits = backend.matmul(hidden, w2, true);  // row i depends on token i only
        logits->rowwise() += b2;
      });
    }

    // 2. softmax(B [+ α·s·QKᵀ])·V on the backend.
    auto q = std::make_shared<Matrix>(alpha > 0 ? Matrix(in.q * alpha) : Matrix(Matrix::Zero(n, 1)));
    auto k = std::make_shared<Matrix>(alpha > 0 ? in.k : Matrix(Matrix::Zero(n, 1)));
    const float scale = defaultScale(d);
    DenseAttentionOptions o;
    o.scale = scale;
    o.causal = options.causal;
    o.bias = logits.get();
    AttentionOutput a = timedStage(r.cost, options, "softmax(B)·V", [&] { return backend.denseAttention(*q, *k, in.v, o); });
    r.output = std::move(a.out);
    auto lse = std::make_shared<Vector>(std::move(a.lse));
    const bool causal = options.causal;
    r.explanation.weights = ImpliedWeights(n, n, [q, k, logits, lse, scale, causal](Range rows, Range cols) {
      Matrix w(rows.size(), cols.size());
      for (Index i = rows.begin; i < rows.end; ++i)
        for (Index j = cols.begin; j < cols.end; ++j) {
          const float x = scale * q->row(i).dot(k->row(j)) + (*logits)(i, j);
          const float l = (*lse)(i);
          w(i - rows.begin, j - cols.begin) =
              (causal && j > i) || !std::isfinite(l) ? 0.0f : std::exp(x - l);
        }
      return w;
    });

    // 3. What to show.
    const Index shown = std::min<Index>(n, 256);
    NamedMatrix logit_view{"logits B", "the synthesized logits (first " + std::to_string(shown) + " rows and columns)" +
                                           (variant == "dense" ? ": row i from token i alone" : ": the same for every input"),
                           logits->topLeftCorner(shown, shown)};
    logit_view.value = logit_view.value.cwiseMax(kLogitFloor);
    r.explanation.factors.push_back(logit_view);
    if (variant == "factorized") {
      r.explanation.factors.push_back({"R₁", "N×k left factor (first " + std::to_string(shown) + " tokens)", r1.topRows(shown)});
      r.explanation.factors.push_back({"R₂", "N×k right factor (first " + std::to_string(shown) + " tokens)", r2.topRows(shown)});
    }
    if (variant == "dense")
      r.explanation.factors.push_back(
          {"MLP hidden", "ReLU(W₁x_i): the per-token features that W₂ turns into row i (first " + std::to_string(shown) +
                             " tokens)", hidden.topRows(shown)});
    {
      auto logit_step = std::make_shared<Explanation>();
      logit_step->factors = r.explanation.factors;
      r.explanation.steps.push_back({"synthesize logits", variant == "dense" ? "B_i = W₂·ReLU(W₁x_i) + b₂: no QKᵀ"
                                                                            : "B is a parameter: no QKᵀ, no input",
                                     logit_step, ""});
      auto attend_step = std::make_shared<Explanation>();
      attend_step->weights = r.explanation.weights;
      r.explanation.steps.push_back({"softmax · V", std::string("rowsoftmax(B") + (alpha > 0 ? " + α·s·QKᵀ" : "") +
                                                        (causal ? ", causal mask" : "") + ")·V",
                                     attend_step, ""});
    }
    if (init == "fitted")
      r.explanation.notes.push_back(std::string(variant == "dense" ? "b₂ = log of the mean row of softmax(R), " : "") +
                                    "R fitted to the mean exact attention over " + std::to_string(p.integer("samples")) +
                                    " generated '" + generatorName(in.spec.generator) + "' inputs (other seeds), not "
                                    "this input" + (in.spec.source.empty() ? "" : " (loaded inputs: the fit uses the "
                                    "spec's generator)"));
    r.explanation.notes.push_back(variant == "dense" ? "changing token j changes row j of the map only (not column j)"
                                                     : "input-independent: the same map for every input");
    r.explanation.notes.push_back("a different operator: synthesized weights, not an approximation of softmax");
    const double nn = double(n) * double(n);
    r.cost.scored_pairs = alpha > 0 ? nn : 0;
    r.cost.flops = 2.0 * nn * double(dv) + (alpha > 0 ? 2.0 * nn * double(d) : 0.0) +
                   (variant == "dense" ? 2.0 * double(n) * double(p.integer("hidden")) * double(d + n) : 0.0) +
                   (variant == "factorized" ? 2.0 * nn * double(rank) : 0.0);
    r.cost.peak_bytes = backend.peakBytes() + 2 * n * n * Index(sizeof(float)) + n * dv * Index(sizeof(float));
    return r;
  }

 private:
  /// The dense synthesizer's b₂ ∈ R^N, the same for every row (paper: B_i = W₂·σ(W₁x_i + b₁) + b₂): from
  /// the stand-in R, the log of the mean row of softmax(R) (causal rows over j ≤ i), floored at the logit
  /// floor; for fixed-random, N(0, σ²) entries.
  static Eigen::RowVectorXf biasVector(const Matrix& r, const std::string& init, double sigma, const RunOptions& options) {
    const Index n = r.cols();
    if (init == "fixed-random") return Rng(options.seed, 274).gaussian(1, n, sigma);
    VectorD mean = VectorD::Zero(n);
    for (Index i = 0; i < n; ++i) {
      const Index visible = options.causal ? i + 1 : n;
      const double mx = r.row(i).head(visible).maxCoeff();
      const Eigen::ArrayXd w = (r.row(i).head(visible).cast<double>().array() - mx).exp();
      mean.head(visible) += (w / w.sum()).matrix();
    }
    Eigen::RowVectorXf b2(n);
    for (Index j = 0; j < n; ++j) {
      const double a = mean(j) / double(n);
      b2(j) = a > 0 ? float(std::max(std::log(a), double(kLogitFloor))) : kLogitFloor;
    }
    return b2;
  }

  /// The N×N stand-in logits of `init` (finite, floored at kLogitFloor).
  static Matrix standIn(const Inputs& in, const Params& p, Index n, Backend& backend, const RunOptions& options) {
    const std::string init = p.choice("init");
    if (init == "fixed-random") {
      Rng rng(options.seed, 270);
      return rng.gaussian(n, n, p.number("sigma"));
    }
    Matrix logits(n, n);
    if (init == "prior") {
      const double w = std::max(1.0, double(n) / 32);
      const Index stripe = std::max<Index>(1, n / 4);
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < n; ++j) {
          const double band = -double((i - j) * (i - j)) / (2 * w * w);
          logits(i, j) = float(std::max({band, j % stripe == 0 ? -1.0 : double(kLogitFloor), double(kLogitFloor)}));
        }
      return logits;
    }
    // fitted: log of the mean exact attention over generated inputs of this spec (other seeds).
    const Index samples = p.integer("samples");
    MatrixD mean = MatrixD::Zero(n, n);
    InputSpec spec = in.spec;
    spec.n = n;
    spec.d = in.q.cols();
    spec.dv = 1;
    spec.source.clear();
    for (Index g = 0; g < samples; ++g) {
      spec.seed = options.seed * 1000003ull + 7919ull * std::uint64_t(g + 1);
      const Inputs train = generate(spec);
      DenseAttentionOptions o;
      o.scale = defaultScale(spec.d);
      o.causal = options.causal;
      const Vector lse = backend.denseAttention(train.q, train.k, Matrix::Zero(n, 1), o).lse;
      const Matrix x = backend.matmul(train.q, train.k, true);
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < n; ++j)
          if (!(options.causal && j > i)) mean(i, j) += std::exp(double(o.scale * x(i, j)) - double(lse(i)));
      options.checkCancel();
    }
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < n; ++j) {
        const double a = mean(i, j) / double(samples);
        logits(i, j) = a > 0 ? float(std::max(std::log(a), double(kLogitFloor))) : kLogitFloor;
      }
    return logits;
  }

  /// Rank-k truncated SVD of x: x ≈ r1·r2ᵀ (randomised range finder with two power iterations).
  static void lowRank(const Matrix& x, Index rank, std::uint64_t seed, Backend& backend, Matrix& r1, Matrix& r2) {
    const Index n = x.rows(), l = std::min<Index>(n, rank + 8);
    Rng rng(seed, 273);
    Matrix y = backend.matmul(x, rng.gaussian(n, l), false);  // N×l
    const auto orth = [&](const Matrix& m) {
      Eigen::HouseholderQR<MatrixD> qr(m.cast<double>());
      return Matrix(MatrixD(qr.householderQ() * MatrixD::Identity(m.rows(), m.cols())).cast<float>());
    };
    for (int it = 0; it < 2; ++it) {  // y ← x·orth(xᵀ·orth(y))
      const Matrix basis_t = orth(y).transpose();
      const Matrix z = orth(Matrix(backend.matmul(basis_t, x, false).transpose()));
      y = backend.matmul(x, z, false);
    }
    const Matrix basis = orth(y);                                           // N×l
    const Matrix basis_t = basis.transpose();
    const Matrix b = backend.matmul(basis_t, x, false);  // l×N
    Eigen::JacobiSVD<MatrixD> svd(b.cast<double>(), Eigen::ComputeThinU | Eigen::ComputeThinV);
    const MatrixD u = basis.cast<double>() * svd.matrixU().leftCols(rank);
    r1 = Matrix((u * svd.singularValues().head(rank).asDiagonal()).cast<float>());
    r2 = Matrix(svd.matrixV().leftCols(rank).cast<float>());
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSynthesizer() { return std::make_shared<Synthesizer>(); }
}  // namespace attn::mech
