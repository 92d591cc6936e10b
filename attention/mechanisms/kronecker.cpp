// kronecker — Gao, Wang, Ji 2020 (arXiv 2007.08442, KDD 2020), CATALOG.md #34, Kronecker Attention Networks. The
// tokens are an H×W grid in raster order (W from the `width` param, or the image input's grid). Instead of the N
// pixels, attention runs over H + W summary tokens: the H row means (the mean over x of image row y) followed by
// the W column means (the mean over y of column x), S = P·X with P the (H+W)×N averaging operator.
//  - KAO_KV: every pixel queries the summaries, O = softmax(s·Q·(PK)ᵀ)·(PV): one Backend::denseAttention over
//    M = H + W keys. A_eff = A_sum·P is explicit and row-stochastic: pixel i gives pixel j the weight of j's row
//    mean over W plus that of j's column mean over H (a plaid map).
//  - KAO_QKV: the summaries are the queries too, O_sum = softmax(s·(PQ)(PK)ᵀ)·(PV), an (H+W)×dv output lifted
//    back to the grid by the outer sum o_(y,x) = o_row[y] + o_col[x] (lucidrains/kronecker-attention-pytorch's
//    lift; the paper's own lift is not checked here). A_eff = L·A_sum·P with L the N×(H+W) lift: rows sum to 2.
// The means are O(N·d) host work in float64; the attention runs on the backend.
// A different operator, not an approximation of softmax(s·QKᵀ): no setting makes it exact. The summaries mix the
// whole image: no causal form.
// Stand-ins: identity projections (the paper's learned Q, K, V projections), no output projection.
#include <algorithm>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/low_rank.h"

namespace attn::mech {
namespace {

constexpr Index kMaxStripEntries = Index(1) << 22;      // the per-pixel strips (N × (H + W)) up to this many
constexpr Index kMaxSummaryAttention = Index(1) << 24;  // the (H + W)² summary attention up to this many

/// The H row means then the W column means of x's rows (token i at row i / W, column i % W), in float64.
MatrixD summaries(const Matrix& x, const Grid& g) {
  MatrixD s = MatrixD::Zero(g.h + g.w, x.cols());
  for (Index i = 0; i < g.n(); ++i) {
    const auto row = x.row(i).cast<double>();
    s.row(i / g.w) += row / double(g.w);
    s.row(g.h + i % g.w) += row / double(g.h);
  }
  return s;
}

/// The weights one pixel gives the H + W summaries: KV, softmax(s·q_i·Sₖᵀ) (sums to 1); QKV, the lift of the
/// summary attention, A_sum[row(i)] + A_sum[H + col(i)] (sums to 2).
struct SummaryWeights {
  Grid g;
  float scale = 1;
  std::shared_ptr<const Matrix> q;           ///< KV: the pixels' queries, N×d
  std::shared_ptr<const MatrixD> keys;       ///< KV: the summary keys, M×d
  std::shared_ptr<const MatrixD> attention;  ///< QKV: the summaries' attention, M×M (rows sum to 1)

  void row(Index i, VectorD& out) const {
    if (attention) {
      out = attention->row(i / g.w).transpose() + attention->row(g.h + i % g.w).transpose();
      return;
    }
    out = double(scale) * (*keys * q->row(i).cast<double>().transpose());
    out = (out.array() - out.maxCoeff()).exp();
    out /= out.sum();
  }
  /// The implied N×N weights: the row's summary weights spread over the pixels they average (·P).
  ImpliedWeights implied() const {
    const SummaryWeights self = *this;
    return ImpliedWeights(g.n(), g.n(), [self](Range r, Range c) {
      Matrix block(r.size(), c.size());
      VectorD w;
      for (Index i = r.begin; i < r.end; ++i) {
        self.row(i, w);
        for (Index j = c.begin; j < c.end; ++j)
          block(i - r.begin, j - c.begin) =
              float(w(j / self.g.w) / double(self.g.w) + w(self.g.h + j % self.g.w) / double(self.g.h));
      }
      return block;
    });
  }
};

/// Row-softmax of scale·a·bᵀ in float64.
MatrixD softmaxRows(const MatrixD& a, const MatrixD& b, double scale) { return rowSoftmaxD(scale * a * b.transpose()); }

Step viewStep(std::string title, std::string caption, std::vector<NamedMatrix> factors, ImpliedWeights weights = {}) {
  auto view = std::make_shared<Explanation>();
  view->factors = std::move(factors);
  view->weights = std::move(weights);
  return Step{std::move(title), std::move(caption), std::move(view), ""};
}

class Kronecker final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "kronecker",
        "Kronecker attention (KAO)",
        "Gao, Wang, Ji. Kronecker Attention Networks",
        "2007.08442",
        2020,
        Family::Vision,
        "O(N·√N·d), N·(H+W)·d on an H×W grid (KAO_QKV: (H+W)²·d)",
        CausalSupport::No,
        "Attend to the H row means and W column means of the map instead of its N pixels (KAO_KV), or let those "
        "means attend to each other and add a pixel's row and column results back (KAO_QKV).",
        "Identity projections (the paper's learned Q, K, V projections); no output projection",
        false,
        {"convention: KAO_QKV lifts the (H+W)×dv output by the outer sum o(y,x) = o_row[y] + o_col[x], as "
         "lucidrains/kronecker-attention-pytorch does (not checked against the paper's own lift)",
         "convention: logits q·k/√d as everywhere in attnlab; lucidrains' code uses q·k unscaled"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Operator",
                          "kv: every pixel attends to the H + W row and column means "
                          "(KAO_KV, row-stochastic); qkv: the means attend to each other and a pixel gets its row's "
                          "plus its column's result (KAO_QKV).",
                          {"kv", "qkv"}, 0),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    const Grid g = gridFor(n, p.integer("width"), "Kronecker attention");
    const bool qkv = p.choice("variant") == "qkv";
    const double rows = double(n), m = double(g.h + g.w), d = double(s.d), dv = double(s.dv);
    const std::string advice = "set width nearer √N (0: the most square grid)";
    r.add(rows * dv * sizeof(float), "the output (N × dv floats)");
    r.add(
        m * (2 * d + dv) * (sizeof(double) + sizeof(float)) + (qkv ? m * dv * sizeof(float) : rows * d * sizeof(float)),
        "the H + W summaries (and the pixels' queries the weights keep)");
    if (qkv && m * m <= double(kMaxSummaryAttention))
      r.add(3 * m * m * sizeof(double), "the (H + W)² summary attention (float64, for the weights)", "width", advice);
    if (options.explain && rows * m <= double(kMaxStripEntries))
      r.add(2 * rows * m * sizeof(float) + m * m * (2 * sizeof(float) + sizeof(double)),
            "the per-pixel strips (N × (H + W), in the factors and a step)", "width", advice);
    r.flops = qkv ? 2 * m * m * (d + dv) + rows * (2 * d + 2 * dv) : 2 * rows * m * (d + dv) + rows * (2 * d + dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "Kronecker attention");
    const bool qkv = p.choice("variant") == "qkv";
    const Index n = in.n(), m = g.h + g.w, d = in.q.cols(), dv = in.v.cols();
    const float scale = defaultScale(d);
    DenseAttentionOptions o;
    o.scale = scale;

    auto keys = std::make_shared<MatrixD>();
    Matrix k_sum, v_sum;
    timedStage(r.cost, options, "row and column means", [&] {
      *keys = summaries(in.k, g);
      k_sum = keys->cast<float>();
      v_sum = summaries(in.v, g).cast<float>();
    });
    SummaryWeights weights{g, scale, nullptr, nullptr, nullptr};
    if (!qkv) {
      AttentionOutput a = timedStage(r.cost, options, "pixels attend to the means",
                                     [&] { return backend.denseAttention(in.q, k_sum, v_sum, o); });
      r.output = std::move(a.out);
      weights.q = std::make_shared<const Matrix>(in.q);
      weights.keys = keys;
    } else {
      const MatrixD queries = summaries(in.q, g);
      AttentionOutput a = timedStage(r.cost, options, "means attend to the means",
                                     [&] { return backend.denseAttention(queries.cast<float>(), k_sum, v_sum, o); });
      r.output.resize(n, dv);
      timedStage(r.cost, options, "lift: row result + column result", [&] {
        for (Index i = 0; i < n; ++i) r.output.row(i) = a.out.row(i / g.w) + a.out.row(g.h + i % g.w);
      });
      if (options.explain && double(m) * double(m) <= double(kMaxSummaryAttention))
        weights.attention = displayStage(r.cost, options, "summary attention", [&] {
          return std::make_shared<const MatrixD>(softmaxRows(queries, *keys, scale));
        });
    }
    const double dn = double(n), dm = double(m);
    r.cost.scored_pairs = qkv ? dm * dm : dn * dm;
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + dv) + dn * double((qkv ? 2 : 1) * d + dv);
    r.cost.peak_bytes = backend.peakBytes() + (n * dv + m * (2 * d + dv)) * Index(sizeof(float));
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back(std::to_string(g.h) + " row means and " + std::to_string(g.w) + " column means" +
                                  (qkv ? " attend to each other; a pixel gets its row's plus its column's result "
                                         "(weights sum to 2)"
                                       : " are every pixel's keys and values (weights sum to 1)"));
    r.explanation.notes.push_back(
        "a different operator, not an approximation of softmax(s·QKᵀ): its distance to "
        "softmax attention is not an approximation error");
    if (!options.explain) return r;

    if (qkv && !weights.attention) {
      r.explanation.weights_withheld = "the (H + W)² = " + std::to_string(m * m) +
                                       " summary attention is not formed (more than 2²⁴): set width nearer √N";
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    } else {
      r.explanation.weights = weights.implied();
    }
    r.explanation.steps.push_back(
        viewStep("row and column means",
                 "The keys' " + std::to_string(g.h) + " row means, then their " + std::to_string(g.w) +
                     " column means: the H + W summary tokens (values likewise" + (qkv ? ", queries likewise)." : ")."),
                 {{"summary keys", "(H+W)×d: rows 0…H−1 the image rows' means, then the columns' means", k_sum}}));

    // What each pixel gives the summaries, as strips along the map's edges, and the (H + W)² summary attention.
    std::vector<NamedMatrix> shown;
    if (weights.keys || weights.attention) {
      if (dn * dm <= double(kMaxStripEntries)) {
        Matrix top(n, g.w), left(n, g.h);
        MatrixD mean_by_line = MatrixD::Zero(m, m);  // KV: the strips averaged over each image row and column
        VectorD w;
        for (Index i = 0; i < n; ++i) {
          weights.row(i, w);
          left.row(i) = w.head(g.h).cast<float>().transpose();
          top.row(i) = w.tail(g.w).cast<float>().transpose();
          mean_by_line.row(i / g.w) += w.transpose() / double(g.w);
          mean_by_line.row(g.h + i % g.w) += w.transpose() / double(g.h);
        }
        const std::string sums = qkv ? " (with the column strip, sums to 2)" : " (with the column strip, sums to 1)";
        shown.push_back({"weights on the column means", "N×W: row i is what pixel i gives each column's mean" + sums,
                         std::move(top), MatrixLayout::PerPixelTop});
        shown.push_back({"weights on the row means", "N×H: row i is what pixel i gives each row's mean" + sums,
                         std::move(left), MatrixLayout::PerPixelLeft});
        if (!qkv)
          shown.push_back({"summary attention",
                           "(H+W)×(H+W): the strips averaged over each image row (first H) and "
                           "column (last W): P·A_sum",
                           mean_by_line.cast<float>(), MatrixLayout::Plain});
      } else {
        r.explanation.notes.push_back("the per-pixel strips (N·(H + W) = " + std::to_string(n * m) +
                                      " entries, more than 2²²) are not formed");
      }
      if (qkv)
        shown.push_back({"summary attention", "(H+W)×(H+W): softmax of the means' logits, A_sum (rows sum to 1)",
                         weights.attention->cast<float>(), MatrixLayout::Plain});
    }
    r.explanation.factors = shown;
    r.explanation.steps.push_back(
        viewStep(qkv ? "means attend to the means" : "pixels attend to the means",
                 qkv ? "Softmax of the H + W means' queries over their keys: the (H+W)×(H+W) summary attention."
                     : "Softmax of each pixel's query over the H + W means: what it gives each row and each column.",
                 std::move(shown)));
    r.explanation.steps.push_back(gridStep(
        qkv ? "lift" : "implied weights",
        qkv ? "o(y, x) = o_row[y] + o_col[x]: A_eff = L·A_sum·P, each row summing to 2."
            : "A_eff = A_sum·P: the weight of a row mean spread over its W pixels, a column mean's over its H: a plaid "
              "map, each row summing to 1.",
        std::nullopt, r.explanation.weights));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeKronecker() { return std::make_shared<Kronecker>(); }
}  // namespace attn::mech
