// lambda — Bello 2021 (arXiv 2102.08602), CATALOG.md #47, LambdaNetworks. Instead of attention maps,
// the context is summarised into small linear functions ("lambdas") applied to each query:
//   keys normalised by a softmax over context positions: K̄ (column-wise, per key dimension);
//   content lambda   λᶜ = K̄ᵀV (|k|×|v|), shared by every query;
//   position lambdas λᵖ_n = E_nᵀV, E_n ∈ R^{N×|k|} the relative position embeddings e_{m−n} of query n;
//   output           y_n = (λᶜ + λᵖ_n)ᵀ·q_n.
// Equivalently y = L·V with the explicit linear-mixing matrix L_nm = q_n·k̄_m + q_n·e_{m−n}: a content part
// of rank ≤ |k| plus a relative-position (Toeplitz-like) part; L is neither normalised nor non-negative.
// Causal form (CATALOG b): λᶜ_n from prefix sums with prefix-normalised keys (k̄ over m ≤ n) and the
// positions m > n masked; the paper's experiments are not causal, so this form is attnlab's (a convention).
//
// The position lambdas are applied as one N×N matrix, P_nm = q_n·e_{m−n}, times V: the same output as
// forming λᵖ_n = E_nᵀV per query, in O(N·r·|k|) for P (r = min(N, 2·scope + 1)) and one N×N by N×|v| product
// instead of the paper's O(N·r·|k|·|v|), but with an N×N matrix in memory (N ≤ 4096). The content part forms
// no attention map.
//
// Here one head with |k| = d (the query/key width of the inputs), |v| = dv, |u| = 1, no BatchNorm.
// Stand-in (CATALOG f) for the learned embeddings E: gaussian, e_r = γ·exp(−r²/(2ℓ²))·c with a fixed
// random direction c ~ N(0, I/d) (seeded); sinusoidal, e_r[2t] = γ·sin(r·ω_t)/√d, e_r[2t+1] =
// γ·cos(r·ω_t)/√d with ω_t = 10000^(−2t/d); or none (content only). `scope` > 0 keeps only relative
// positions |m − n| ≤ scope (a 1D lambda convolution). Not an approximation of softmax attention.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxPositionTokens = 4096;  // the position part forms the N×N matrix of q_n·e_{m−n}

class Lambda final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "lambda", "LambdaNetworks", "Bello. LambdaNetworks: Modeling Long-Range Interactions Without Attention",
        "2102.08602", 2021, Family::NonPairwise,
        "O(N²·(|k| + |v|)) with global positions, O(N·|k|·|v|) content only",
        CausalSupport::Yes,
        "Summarise the context into a small linear function λ = K'ᵀV (+ a per-query position lambda) and apply it "
        "to each query: the content part forms no attention map.",
        "Relative position embeddings: a Gaussian decay along a fixed random direction, or sinusoids; one head, "
        "|k| = d, no BatchNorm.",
        false,
        {"convention: causal runs normalise the keys over the prefix m ≤ n (running sums) and mask positions m > n; "
         "the paper's experiments are not causal",
         "convention: the position lambdas are applied as one N×N matrix q_n·e_{m−n} times V (same output, N ≤ 4096), "
         "not as λᵖ_n = E_nᵀV per query"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("position", "Position embeddings",
                          "gaussian: e_r = γ·exp(−r²/2ℓ²)·c along a fixed random direction; sinusoidal: "
                          "sin/cos of r at d/2 frequencies; none: the content lambda only.",
                          {"gaussian", "sinusoidal", "none"}, 0),
        ParamSpec::real("length", "Decay ℓ", "Length scale of the Gaussian relative embeddings, tokens.", 8, 0.1, 4096,
                        true),
        ParamSpec::real("gamma", "Position scale γ", "Magnitude of the relative embeddings.", 1, 0, 100),
        ParamSpec::integer("scope", "Scope r", "0: every relative position (global); r > 0: only |m − n| ≤ r (a "
                           "1-D lambda convolution of 2r + 1 positions).", 0, 0, 1 << 20),
        ParamSpec::flag("content", "Content lambda", "Include the content lambda λᶜ = K'ᵀV.", true),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const double n = double(s.n), d = double(s.d), dv = double(s.dv);
    const bool use_position = p.choice("position") != "none", use_content = p.flag("content");
    // A scope past the sequence is the whole sequence (run() clamps it at N − 1).
    const Index scope = p.integer("scope") > 0 ? std::min(p.integer("scope"), s.n - 1) : s.n - 1;
    const double band = double(2 * std::max<Index>(scope, 0) + 1);
    if (use_position)
      r.add((n * n + n * band + band * d + n * dv) * sizeof(float),
            "the position lambdas (N × N, and q·e over the 2 × scope + 1 relative positions)", "scope",
            "try a smaller N, or position = none");
    r.add((n * d * (options.causal ? 3 : 1) + d * dv + n * dv) * sizeof(float) + n * d * sizeof(float),
          "the content lambda and the normalised keys");
    r.flops = (use_content ? 4.0 * n * d * dv : 0.0) +
              (use_position ? 2.0 * n * band * d + 2.0 * n * std::min(band, n) * dv : 0.0);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (in.m() != in.n()) throw UserError("this lambda layer reads its own sequence (self-lambda): it needs as many "
                                          "keys as queries");
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
    const std::string position = p.choice("position");
    const bool use_position = position != "none", use_content = p.flag("content"), causal = options.causal;
    if (!use_position && !use_content)
      throw UserError("with neither the content lambda nor position embeddings the layer outputs 0: turn one on");
    if (use_position && n > kMaxPositionTokens)
      throw UserError("the position lambdas form an N×N matrix here: use N ≤ " + std::to_string(kMaxPositionTokens) +
                      " or position = none (N is " + std::to_string(n) + ")");
    const Index scope = p.integer("scope") > 0 ? std::min(p.integer("scope"), n - 1) : n - 1;
    Result r;
    if (p.integer("scope") > n - 1)
      r.explanation.notes.push_back("scope clamped to N − 1 = " + std::to_string(n - 1) + " (every relative position)");
    r.output = Matrix::Zero(n, dv);

    // 1. Content: normalised keys and the content lambda(s).
    auto q = std::make_shared<const Matrix>(in.q);
    auto k = std::make_shared<const Matrix>(in.k);
    auto lse = std::make_shared<Matrix>();  // log-normaliser per key dimension: 1×d, or N×d (prefix) when causal
    Matrix content_lambda = Matrix::Zero(d, dv);
    if (use_content) {
      if (!causal) {
        timedStage(r.cost, options, "normalise keys", [&] {
          *lse = Matrix(1, d);
          for (Index c = 0; c < d; ++c) {
            const double mx = double(in.k.col(c).maxCoeff());
            (*lse)(0, c) = float(mx + std::log((in.k.col(c).cast<double>().array() - mx).exp().sum()));
          }
        });
        const Matrix kbar_t = (in.k.rowwise() - lse->row(0)).array().exp().matrix().transpose();  // d×N
        content_lambda = timedStage(r.cost, options, "content lambda K'ᵀV", [&] { return backend.matmul(kbar_t, in.v, false); });
        r.output = timedStage(r.cost, options, "apply λᶜ", [&] { return backend.matmul(in.q, content_lambda, false); });
      } else {
        // Prefix sums with prefix-normalised keys, a running max per key dimension (row n uses tokens ≤ n only).
        timedStage(r.cost, options, "prefix content lambdas", [&] {
          *lse = Matrix(n, d);
          VectorD mx = VectorD::Constant(d, -std::numeric_limits<double>::infinity()), z = VectorD::Zero(d);
          MatrixD s = MatrixD::Zero(d, dv);
          for (Index t = 0; t < n; ++t) {
            for (Index c = 0; c < d; ++c) {
              const double x = double(in.k(t, c));
              if (x > mx(c)) {
                const double f = std::isfinite(mx(c)) ? std::exp(mx(c) - x) : 0.0;
                z(c) *= f;
                s.row(c) *= f;
                mx(c) = x;
              }
              const double e = std::exp(x - mx(c));
              z(c) += e;
              s.row(c) += e * in.v.row(t).cast<double>();
              (*lse)(t, c) = float(mx(c) + std::log(z(c)));
            }
            Eigen::RowVectorXd y = Eigen::RowVectorXd::Zero(dv);
            for (Index c = 0; c < d; ++c) y += (double(in.q(t, c)) / z(c)) * s.row(c);
            r.output.row(t) = y.cast<float>();
            if (t == n - 1) content_lambda = (s.array().colwise() / z.array()).matrix().cast<float>();
          }
        });
      }
    }

    // 2. Position lambdas: P_nm = q_n·e_{m−n} for |m − n| ≤ scope (and m ≤ n when causal), y += P·V.
    auto pos = std::make_shared<Matrix>();
    Matrix embeddings;  // (2·scope + 1)×d, row r + scope = e_r
    if (use_position) {
      embeddings = relativeEmbeddings(p, position, scope, d, options.seed);
      const Matrix qe = timedStage(r.cost, options, "q·e (relative)", [&] { return backend.matmul(in.q, embeddings, true); });
      timedStage(r.cost, options, "position matrix", [&] {
        *pos = Matrix::Zero(n, n);
        for (Index i = 0; i < n; ++i) {
          const Index j1 = causal ? i : std::min(n - 1, i + scope);
          for (Index j = std::max<Index>(0, i - scope); j <= j1; ++j) (*pos)(i, j) = qe(i, j - i + scope);
        }
      });
      const Matrix yp = timedStage(r.cost, options, "position lambdas", [&] { return backend.matmul(*pos, in.v, false); });
      r.output += yp;
    }

    // 3. The explicit linear-mixing matrix L = content + position.
    r.explanation.weights = ImpliedWeights(n, n, [q, k, lse, pos, use_content, causal](Range rows, Range cols) {
      Matrix w = Matrix::Zero(rows.size(), cols.size());
      if (pos->size() != 0) w = pos->block(rows.begin, cols.begin, rows.size(), cols.size());
      if (use_content)
        for (Index i = rows.begin; i < rows.end; ++i) {
          const auto l = lse->row(causal ? i : 0);
          for (Index j = cols.begin; j < std::min(cols.end, causal ? i + 1 : cols.end); ++j)
            w(i - rows.begin, j - cols.begin) += q->row(i).dot((k->row(j) - l).array().exp().matrix());
        }
      return w;
    });

    // 4. What to show: the lambdas themselves.
    const Index mid = n / 2, shown = std::min<Index>(n, 256);
    if (use_content) {
      r.explanation.factors.push_back({"content lambda λᶜ", std::string("|k|×|v| = K'ᵀV: one linear function shared by ") +
                                                               (causal ? "the last query (prefix form: one per query)" : "every query"),
                                       content_lambda});
      const Matrix kbar = causal ? Matrix((in.k.topRows(shown).array() - lse->topRows(shown).array()).exp().matrix())
                                 : Matrix((in.k.topRows(shown).rowwise() - lse->row(0)).array().exp().matrix());
      r.explanation.factors.push_back({"normalised keys K'", "softmax over positions per key dimension (first " +
                                                               std::to_string(shown) + " tokens)", kbar});
    }
    if (use_position) {
      Matrix en = Matrix::Zero(n, d);  // E_n of the middle query (masked)
      for (Index j = std::max<Index>(0, mid - scope); j <= (causal ? mid : std::min(n - 1, mid + scope)); ++j)
        en.row(j) = embeddings.row(j - mid + scope);
      r.explanation.factors.push_back({"position lambda λᵖ_n (n = " + std::to_string(mid) + ")",
                                       "|k|×|v| = E_nᵀV for the middle query", Matrix(en.transpose() * in.v)});
      const Index off = std::min<Index>(scope, 64);
      r.explanation.factors.push_back({"relative embeddings E", "e_r for r = −" + std::to_string(off) + "…" +
                                                                    std::to_string(off) + " (rows), |k| columns",
                                       embeddings.middleRows(scope - off, 2 * off + 1)});
    }
    {
      auto lambdas = std::make_shared<Explanation>();
      lambdas->factors = r.explanation.factors;
      r.explanation.steps.push_back({"build lambdas", "λᶜ = K'ᵀV and λᵖ_n = E_nᵀV: small |k|×|v| linear functions, no "
                                                      "N×N map", lambdas, ""});
      auto apply = std::make_shared<Explanation>();
      apply->weights = r.explanation.weights;
      r.explanation.steps.push_back({"apply to queries", "y_n = (λᶜ + λᵖ_n)ᵀq_n; as a matrix L_nm = q_n·k'_m + q_n·e_{m−n} "
                                                         "(unnormalised, may be negative)", apply, ""});
    }
    r.explanation.notes.push_back("a different operator: a linear mixing matrix, neither normalised nor non-negative — "
                                  "not an approximation of softmax");
    const double nn = double(n), dd = double(d), ddv = double(dv), band = double(2 * scope + 1);
    r.cost.scored_pairs = 0;
    r.cost.flops = (use_content ? 4.0 * nn * dd * ddv : 0.0) +
                   (use_position ? 2.0 * nn * band * dd + 2.0 * nn * std::min(band, nn) * ddv : 0.0);
    r.cost.peak_bytes = backend.peakBytes() + (use_position ? n * (n + 2 * scope + 1) * Index(sizeof(float)) : 0) +
                        (lse->size() + d * dv + n * dv) * Index(sizeof(float));
    return r;
  }

 private:
  static Matrix relativeEmbeddings(const Params& p, const std::string& kind, Index scope, Index d, std::uint64_t seed) {
    const double gamma = p.number("gamma"), len = p.number("length");
    Matrix e(2 * scope + 1, d);
    if (kind == "gaussian") {
      Rng rng(seed, 47);
      const Matrix c = rng.gaussian(1, d, 1.0 / std::sqrt(double(d)));
      for (Index r = -scope; r <= scope; ++r)
        e.row(r + scope) = c * float(gamma * std::exp(-double(r * r) / (2 * len * len)));
    } else {  // sinusoidal
      const double s = gamma / std::sqrt(double(d));
      for (Index r = -scope; r <= scope; ++r)
        for (Index c = 0; c < d; ++c) {
          const double w = std::pow(10000.0, -double(2 * (c / 2)) / double(d));
          e(r + scope, c) = float(s * (c % 2 == 0 ? std::sin(double(r) * w) : std::cos(double(r) * w)));
        }
    }
    return e;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLambda() { return std::make_shared<Lambda>(); }
}  // namespace attn::mech
