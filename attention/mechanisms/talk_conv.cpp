// talk-conv — Lioutas & Guo 2020 (arXiv 2002.03184), CATALOG.md #20, Time-aware Large Kernel
// convolutions. Token i predicts relative offsets (α_l, α_r) = σ(w·x_i + b) ∈ (0,1)², sums the values in
// the window [i − α_l·l_max, i + α_r·r_max] and divides by the LARGEST window size, not by its own:
//   y_i = (1/(l_max + r_max + 1))·Σ_{j in window} v_j            (the paper's normaliser: the MAXIMUM size)
// so a row's weights sum to (its window size)/(l_max + r_max + 1) ≤ 1: a box sum scaled by one constant, an
// average only of a window at full size (the `actual-window` option divides by the window's own size: a
// moving average, not the paper's).
// computed from a summed-area table S (prefix sums): y_i ∝ S(i + α_r·r_max) − S(i − α_l·l_max − 1), with
// S linearly interpolated at fractional borders. In coverage form: token j weighs
//   c_ij = |(i − α_l·l_max − 1, i + α_r·r_max] ∩ (j − 1, j]|  ∈ [0, 1],
// so the window's interior tokens weigh 1 and its two edge tokens a fraction (the fractional edges).
// Causal (decoder) form: left offsets only, r_max = 0.
//
// Stand-in (CATALOG f): the learned offset predictor is replaced by content-gated offsets
// α = σ(gain·√d·cos(q_i, u)) with fixed random directions u_l, u_r (seeded): the token's query is its
// representation x_i, so the offsets of token i depend on token i alone (causal); or by one fixed
// offset slider α for every token. One head (the paper's several heads would each have their own
// offsets). Not an approximation of softmax attention: a different operator (an adaptive box filter).
//
// On the backend: the box rows are softmax with logits log c_ij over the window (sparseAttention with
// entry biases and zero queries/keys). The paper's max-window normaliser is matched by one extra "null"
// key with value 0 and logit log(K − Σ_j c_ij), K = l_max + r_max + 1: it takes the slack, so the
// tokens keep exactly c_ij / K.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

/// Sparse box rows: CSR over the tokens (the null key is not stored), weights c_ij / K.
struct BoxRows {
  Index n = 0;
  std::vector<Index> row_ptr;
  std::vector<std::int32_t> col;
  std::vector<float> weight;
};

class TalkConv final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "talk-conv", "TaLK convolutions",
        "Lioutas, Guo. Time-aware Large Kernel Convolutions", "2002.03184", 2020, Family::NonPairwise, "O(N·d)",
        CausalSupport::Yes,
        "Each token predicts how far its window reaches left and right; the values inside it are summed with a "
        "summed-area table and divided by the largest window size (rows sum to at most 1, less where the window "
        "is shorter): no pairwise scores at all.",
        "Offsets from fixed random directions, σ(gain·√d·cos(q_i, u)), or one offset slider, instead of the "
        "learned predictor; one head.",
        false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("left", "Max left l_max", "Largest left half-width (fairseq encoder layers use 1, 3, 7, "
                           "15).", 7, 0, 1 << 20, true),
        ParamSpec::integer("right", "Max right r_max", "Largest right half-width; a causal run uses 0 (left offsets "
                           "only).", 7, 0, 1 << 20, true),
        ParamSpec::choice("offsets", "Offsets",
                          "content: α = σ(gain·√d·cos(q_i, u)) with fixed random directions (adaptive windows); "
                          "fixed: α from the slider for every token.",
                          {"content", "fixed"}, 0),
        ParamSpec::real("alpha", "Offset α", "Relative offset of every token with fixed offsets (0: the token "
                        "alone, 1: the full l_max / r_max).", 0.5, 0, 1),
        ParamSpec::real("gain", "Gate gain", "Sharpness of the content gate: 0 gives α = ½ everywhere.", 1.5, 0, 20),
        ParamSpec::choice("normalise", "Normaliser",
                          "max-window: divide by l_max + r_max + 1 as the paper does (rows sum to at most 1, less where the "
                          "window is shorter); "
                          "actual-window: divide by the window's own size (a moving average, not the paper's).",
                          {"max-window", "actual-window"}, 0),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    const Index right = options.causal ? 0 : p.integer("right");
    // A window is cut at the sequence's ends: at most min(l_max + r_max + 1, N) keys and the null key.
    const double keys = double(std::min<Index>(p.integer("left") + right + 1, s.n) + 2), n = double(s.n);
    // Per entry: the pattern, the box sums' column and weight, the bias (each grown by doubling) and the copy shown.
    r.add(n * keys * ((5 + 8 + 4) * 2 + 5 * 2) + sparseWorkspaceBytes(keys, s) + n * double(s.dv + 4) * sizeof(float),
          "the windows (left + right + 1 keys per token)", "left", "lower left or right");
    r.flops = 4.0 * n * double(s.d) + 2.0 * n * keys * double(s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (in.m() != in.n()) throw UserError("TaLK convolutions slide a window over one sequence: they need as many "
                                          "keys (values) as queries");
    Result r;
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols(), left = p.integer("left");
    Index right = p.integer("right");
    if (options.causal && right > 0) {
      r.explanation.notes.push_back("causal: r_max " + std::to_string(right) + " → 0 (left offsets only)");
      right = 0;
    }
    const bool content = p.choice("offsets") == "content", by_max = p.choice("normalise") == "max-window";
    const double gain = p.number("gain"), alpha = p.number("alpha");
    const double window_max = double(left + right + 1);

    // 1. Offsets per token (a function of token i only).
    Matrix extents(n, 2);  // α_l·l_max, α_r·r_max
    timedStage(r.cost, options, "predict offsets", [&] {
      Rng rng(options.seed, 20);
      const Matrix u = rng.gaussian(d, 2);
      const Eigen::RowVector2f unorm = u.colwise().norm();
      for (Index i = 0; i < n; ++i) {
        double al = alpha, ar = alpha;
        if (content) {
          const double qn = in.q.row(i).norm();
          const auto gate = [&](int c) {
            const double cosine = qn > 0 && unorm(c) > 0 ? double(in.q.row(i).dot(u.col(c))) / (qn * unorm(c)) : 0.0;
            return 1.0 / (1.0 + std::exp(-gain * std::sqrt(double(d)) * cosine));
          };
          al = gate(0);
          ar = gate(1);
        }
        extents(i, 0) = float(al * double(left));
        extents(i, 1) = float(ar * double(right));
      }
    });

    // 2. Box rows: coverage c_ij of the window (L, R] over token j's cell (j − 1, j].
    auto box = std::make_shared<BoxRows>();
    box->n = n;
    Pattern pattern;  // over [tokens; null key]
    pattern.rows = n;
    pattern.cols = n + 1;
    pattern.components = {"window", "fractional edge", "null (normaliser slack)"};
    pattern.row_ptr.push_back(0);
    box->row_ptr.push_back(0);
    std::vector<float> bias;
    timedStage(r.cost, options, "summed-area windows", [&] {
      for (Index i = 0; i < n; ++i) {
        if ((i & 4095) == 4095) options.checkCancel();
        const double lo = double(i) - double(extents(i, 0)) - 1, hi = double(i) + double(extents(i, 1));
        const Index j0 = std::max<Index>(0, Index(std::floor(lo)) + 1);
        const Index j1 = std::min<Index>(n - 1, Index(std::ceil(hi)));
        double total = 0;
        const Index first = Index(box->col.size());
        for (Index j = j0; j <= j1; ++j) {
          const double c = std::min(hi, double(j)) - std::max(lo, double(j - 1));
          if (!(c > 0)) continue;
          total += c;
          box->col.push_back(std::int32_t(j));
          box->weight.push_back(float(c));
          pattern.col.push_back(std::int32_t(j));
          pattern.component.push_back(c >= 1 ? 0 : 1);
          bias.push_back(float(std::log(c)));
        }
        const double den = by_max ? window_max : total;
        for (Index e = first; e < Index(box->col.size()); ++e) box->weight[size_t(e)] = float(box->weight[size_t(e)] / den);
        const double slack = den - total;
        if (slack > 1e-6 * den) {
          pattern.col.push_back(std::int32_t(n));
          pattern.component.push_back(2);
          bias.push_back(float(std::log(slack)));
        }
        pattern.row_ptr.push_back(Index(pattern.col.size()));
        box->row_ptr.push_back(Index(box->col.size()));
      }
    });

    // 3. The box sum on the backend: softmax of log-coverage logits with zero queries and keys.
    Matrix values(n + 1, dv);
    values.topRows(n) = in.v;
    values.row(n).setZero();
    const Matrix zq = Matrix::Zero(n, 1), zk = Matrix::Zero(n + 1, 1);
    r.output = timedStage(r.cost, options, by_max ? "box sum" : "box average",
                          [&] { return backend.sparseAttention(zq, zk, values, pattern, 1.0f, &bias).out; });

    r.explanation.weights = ImpliedWeights(n, n, [box](Range rows, Range cols) {
      Matrix w = Matrix::Zero(rows.size(), cols.size());
      for (Index i = rows.begin; i < rows.end; ++i)
        for (Index e = box->row_ptr[size_t(i)]; e < box->row_ptr[size_t(i + 1)]; ++e) {
          const Index j = box->col[size_t(e)];
          if (j >= cols.begin && j < cols.end) w(i - rows.begin, j - cols.begin) = box->weight[size_t(e)];
        }
      return w;
    });
    Pattern shown;  // the tokens' part of the pattern (without the null key)
    shown.rows = shown.cols = n;
    shown.components = {"window", "fractional edge"};
    shown.row_ptr.push_back(0);
    for (Index i = 0; i < n; ++i) {
      for (Index e = pattern.row_ptr[size_t(i)]; e < pattern.row_ptr[size_t(i + 1)]; ++e)
        if (pattern.col[size_t(e)] < n) {
          shown.col.push_back(pattern.col[size_t(e)]);
          shown.component.push_back(pattern.component[size_t(e)]);
        }
      shown.row_ptr.push_back(Index(shown.col.size()));
    }
    NamedMatrix bars{"window extents", "per token: how far the window reaches left (α_l·l_max, shown negative) and "
                     "right (α_r·r_max)", Matrix(n, 2)};
    bars.value.col(0) = -extents.col(0);
    bars.value.col(1) = extents.col(1);
    r.explanation.factors.push_back(bars);
    {
      auto offsets_view = std::make_shared<Explanation>();
      offsets_view->factors.push_back(bars);
      r.explanation.steps.push_back({"predict offsets",
                                     content ? "each token gates its own left and right reach: σ(gain·√d·cos(q_i, u))"
                                             : "every token uses the slider's offset α",
                                     offsets_view, ""});
      auto box_view = std::make_shared<Explanation>();
      box_view->pattern = shown;
      box_view->weights = r.explanation.weights;
      r.explanation.steps.push_back(
          {by_max ? "box sum" : "box average",
           by_max ? "summed-area table: (S(i + a_r) − S(i − a_l − 1)) / (l_max + r_max + 1), fractional "
                                   "edges interpolated"
                                 : "summed-area table divided by the window's own size",
           box_view, ""});
    }
    r.explanation.pattern = std::move(shown);
    double mean_width = 0;
    for (Index i = 0; i < n; ++i) mean_width += double(extents(i, 0) + extents(i, 1)) + 1;
    mean_width /= double(n);
    char buf[160];
    std::snprintf(buf, sizeof buf, "mean window width %.2f tokens of at most %.0f (receptive field, not an "
                  "approximation target)", mean_width, window_max);
    r.explanation.notes.push_back(buf);
    r.explanation.notes.push_back("a different operator: an adaptive box filter over V, not an approximation of "
                                  "softmax");
    // The paper's cost: the gates (2 dot products of length d per token) and two prefix-sum lookups per
    // output value; the backend's window sum here costs 2·nnz·dv.
    r.cost.scored_pairs = 0;  // no pair is scored
    r.cost.flops = 4.0 * double(n) * double(d) + 2.0 * double(pattern.nnz()) * double(dv);
    r.cost.peak_bytes = backend.peakBytes() + pattern.nnz() * Index(sizeof(std::int32_t) + 1 + sizeof(float)) +
                        (2 * n + 1) * dv * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeTalkConv() { return std::make_shared<TalkConv>(); }
}  // namespace attn::mech
