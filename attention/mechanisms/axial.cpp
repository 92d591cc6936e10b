// axial — Ho, Kalchbrenner, Weissenborn, Salimans 2019 (arXiv 1912.12180), CATALOG.md #16, Axial Attention in
// Multidimensional Transformers. The tokens are an H×W grid in raster order (W from the `width` param, or
// gridWidth(): the grid of the `image` input).
//  - An axial layer, row then column: Y = A_row·V (softmax over the pixel's row, W keys), then
//    O = A_col·Y (softmax over its column, H keys): O = A_col·A_row·V. Two Backend::sparseAttention calls; the
//    implied weights A_col·A_row are formed row by row from the stages' sparse entries (grid_engine's
//    composedWeights), never N×N. Every pixel reaches every other in the two hops.
//  - Causal (raster order, after the paper's outer and inner decoders): the outer context is the unmasked row
//    attention Y = A_row·V of the rows above; pixel (y, x) then takes one softmax over extended keys: the column
//    above (y' < y, values Y: whole earlier rows through their row attention) and the row to the left,
//    itself included (x' ≤ x, values V). On the backend: sparseAttention over [K; K] with values [Y; V]
//    (the summary-engine way). A_eff = A_outer·A_row + A_inner is row-stochastic and reaches exactly j ≤ i.
// Stand-ins: none beyond the inputs' Q, K, V (the paper learns only the projections).
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr Index kMaxReachEntries = Index(1) << 24;  // the composite's reach (views) up to this many pairs

Pattern axisPattern(Index rows, Index cols, std::string name, KeysFn keys, const RunOptions& options) {
  PatternBuilder b(rows, cols, false);
  b.add(std::move(name), std::move(keys));
  return b.build(options);
}

class Axial final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "axial", "Axial attention",
        "Ho, Kalchbrenner, Weissenborn, Salimans. Axial Attention in Multidimensional Transformers", "1912.12180",
        2019, Family::FixedSparse, "O(N·√N·d), N·(H+W)·d on an H×W grid", CausalSupport::Yes,
        "Attend along the pixel's row, then along its column: two sparse hops, H + W keys in all, through which "
        "every pixel reaches every other.",
        "",
        true,
        {"convention: the column stage reuses the inputs' Q and K; the paper projects the row stage's output",
         "convention: causal: one softmax over the column above (row-attended values) and the row to the left; Ho "
         "et al. add the outer context to a shifted inner decoder"}};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {widthParam()}; }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"width", std::to_string(std::max<Index>(in.n(), 1))}}, 1e-4,
                      "one row (width = N): the row holds every key and each column one pixel"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    const Grid g = gridFor(n, p.integer("width"), "axial attention");
    const double rows = double(n), w = double(g.w), h = double(g.h), cross = rows * (w + h - 1);
    const std::string advice = "set width nearer √N (0: the most square grid)";
    r.add(2 * rows * double(s.dv) * sizeof(float), "the output and the row stage's output (2 × N × dv floats)");
    // The row stage's pattern (built, kept for the weights and a step) and the second stage's.
    planPattern(r, s, rows * w, w, "the row pattern (N × W pairs)", "width", advice);
    planPattern(r, s, rows * h, h, "the second stage's pattern (N × H pairs)", "width", advice);
    r.add(rows * (w + h) * sizeof(float), "the two stages' weights, for the composite (N × (H + W))");
    r.add(2 * patternBytes(cross, rows), "the criss-cross of scored pairs (N × (H + W − 1))", "width", advice);
    if (options.causal) {
      r.add(2 * rows * double(s.d + s.dv) * sizeof(float), "the extended keys and values [K; K], [Y; V]");
      r.add(patternBytes(rows * (w + 1), 2 * rows) + rows * (w + 1) * sizeof(float),
            "the row stage stacked over the identity (the composite's second factor)");
    }
    planTwoHops(r, s, cross, options, double(kMaxReachEntries));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "axial attention");
    const Index n = in.n();
    const float scale = defaultScale(in.q.cols());
    const bool causal = options.causal;

    // Stage 1: row attention (unmasked also when causal: the rows above are whole earlier rows).
    auto row = timedStage(r.cost, options, "row pattern", [&] {
      return std::make_shared<const Pattern>(axisPattern(n, n, "row", rowKeys(g), options));
    });
    AttentionOutput y = timedStage(r.cost, options, "row attention", [&] {
      return backend.sparseAttention(in.q, in.k, in.v, *row, scale);
    });
    // The stages' sparse weights, for the implied weights (formed to be seen: left out without explanation).
    auto shown = [&](const std::string& name, auto&& fn) -> std::shared_ptr<const SparseWeights> {
      return options.explain ? displayStage(r.cost, options, name, fn) : nullptr;
    };
    const auto a_row = shown("row weights", [&] { return softmaxStage(in.q, in.k, scale, row, y.lse); });

    // Stage 2: the column (or, causal, the column above and the row to the left over extended keys).
    std::shared_ptr<const Pattern> second;
    std::shared_ptr<const SparseWeights> a_second, a_rest;  // the composite: a_second · a_rest
    if (!causal) {
      second = timedStage(r.cost, options, "column pattern", [&] {
        return std::make_shared<const Pattern>(axisPattern(n, n, "column", columnKeys(g), options));
      });
      AttentionOutput o = timedStage(r.cost, options, "column attention", [&] {
        return backend.sparseAttention(in.q, in.k, y.out, *second, scale);
      });
      r.output = std::move(o.out);
      a_second = shown("column weights", [&] { return softmaxStage(in.q, in.k, scale, second, o.lse); });
      a_rest = a_row;
    } else {
      second = timedStage(r.cost, options, "extended pattern", [&] {
        PatternBuilder b(n, 2 * n, false);
        b.add("column above (outer)", columnAboveKeys(g));
        b.add("row to the left (inner)", [g, n](Index i, std::vector<Index>& out) {
          for (Index j = (i / g.w) * g.w; j <= i; ++j) out.push_back(n + j);
        });
        return std::make_shared<const Pattern>(b.build(options));
      });
      Matrix k_ext(2 * n, in.k.cols()), v_ext(2 * n, in.v.cols());
      k_ext << in.k, in.k;
      v_ext << y.out, in.v;
      AttentionOutput o = timedStage(r.cost, options, "outer and inner attention", [&] {
        return backend.sparseAttention(in.q, k_ext, v_ext, *second, scale);
      });
      r.output = std::move(o.out);
      a_second = shown("outer and inner weights", [&] { return softmaxStage(in.q, k_ext, scale, second, o.lse); });
      if (a_row) a_rest = stackOverIdentity(*a_row);
    }
    const double scored = double(row->nnz() + second->nnz());
    r.cost.scored_pairs = scored;
    r.cost.flops = 2 * scored * double(in.q.cols() + in.v.cols());
    r.cost.peak_bytes = backend.peakBytes() + (row->nnz() + second->nnz()) * Index(sizeof(std::int32_t) + 1) +
                        2 * n * in.v.cols() * Index(sizeof(float)) * (causal ? 3 : 1);
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    if (!options.explain) return r;

    // The implied weights A_col·A_row (causal: [A_outer A_inner]·[A_row; I]), row by row.
    const double work = double(n) * composedRowWork({double(causal ? g.h + g.w : g.h), double(g.w)}, double(n));
    if (work <= kMaxComposedWork) {
      r.explanation.weights = composedWeights({a_second, a_rest});
    } else {
      r.explanation.weights_withheld = composedWithheldText("A_col·A_row", work);
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    // The scored pairs in pixel space: the criss-cross (causal: the column above and the row to the left).
    r.explanation.pattern = [&] {
      PatternBuilder b(n, n, causal);
      if (causal) {
        b.add("column above (outer)", columnAboveKeys(g));
        b.add("row to the left (inner)", rowKeys(g));
      } else {
        addCross(b, g);
      }
      return b.build(options);
    }();

    r.explanation.steps.push_back(gridStep(
        causal ? "row (outer context)" : "row", "Softmax over the pixel's row (W = " + std::to_string(g.w) + " keys)" +
                   (causal ? ", unmasked: rows above the pixel reach it only whole, through the column above." : "."),
        *row, composedWeights({a_row})));
    ImpliedWeights second_weights;
    std::optional<Pattern> second_view;
    if (!causal) {
      second_view = *second;
      second_weights = composedWeights({a_second});
    } else {  // the extended keys shown at their pixels: outer and inner weights of the same pixel added
      second_view = r.explanation.pattern;
      second_weights = composedWeights({a_second, stackOverIdentity(*identityStage(n))});
    }
    r.explanation.steps.push_back(gridStep(
        causal ? "column above and row to the left" : "column",
        causal ? "One softmax over the column above (values: those pixels' row outputs) and the row to the left, "
                 "the pixel included (values: V)."
               : "Softmax over the pixel's column (H = " + std::to_string(g.h) + " keys) of the row stage's output.",
        std::move(second_view), std::move(second_weights)));
    std::optional<Pattern> reach = displayStage(r.cost, options, "two hops", [&] {
      return composePatterns(*second, *a_rest->pattern, kMaxReachEntries);
    });
    std::string caption = causal ? "The composite A_outer·A_row + A_inner: every earlier pixel in raster order, the "
                                   "pixel included."
                                 : "The composite A_col·A_row: every pixel reaches every other in two hops.";
    if (!reach) caption += " (The reach, more than 2²⁴ pairs, is not formed.)";
    r.explanation.steps.push_back(gridStep(causal ? "composite" : "column ∘ row", std::move(caption), std::move(reach),
                                           r.explanation.weights));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeAxial() { return std::make_shared<Axial>(); }
}  // namespace attn::mech
