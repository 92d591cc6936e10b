// interlaced — Huang, Yuan, Guo, Zhang, Chen, Wang 2019 (arXiv 1907.12273), CATALOG.md #10, Interlaced Sparse
// Self-Attention for Semantic Segmentation. The tokens are an H×W grid in raster order (W from the `width` param,
// or the image input's grid), tiled into blocks of P_h×P_w (block_h, block_w: the official isa_block.py's
// down_factor = [8, 8], which is the block's size, not the number of blocks: its long-range view(n, c, H/P_h,
// P_h, W/P_w, P_w) batches the P_h·P_w offsets and attends over the H/P_h × W/P_w pixels of one offset).
//  - Long-range stage: softmax within the group of pixels with the same offset in their block,
//    {(y', x'): y' ≡ y mod P_h, x' ≡ x mod P_w}: pixels P apart covering the whole image. Y = A_long·V.
//  - Short-range stage: softmax within the pixel's own P_h×P_w block, over Y: O = A_short·A_long·V.
//  Two Backend::sparseAttention calls; the implied weights A_short·A_long are formed row by row from the stages'
//  sparse entries (grid_engine's composedWeights), never N×N. When P_h | H and P_w | W every block holds every
//  offset, so the two hops reach every pixel; a partial edge block holds only some offsets.
//  - Causal (attnlab's; the paper is for segmentation): both stages keep only j ≤ i in raster order, so the
//    composite is causal.
// Stand-ins: identity projections (the inputs' Q, K, V in both stages); the 1×1 conv + BN + ReLU projections, the
// output conv and the concatenation with the input are left out.
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr Index kMaxReachEntries = Index(1) << 24;  // the composite's reach (views) up to this many pairs
constexpr Index kMaxBlock = Index(1) << 12;
const char* const kLongGroups = "long-range groups";
const char* const kShortBlocks = "short-range blocks";

/// The tiling of a grid into blocks of ph×pw (block sizes capped at the grid's: a block as tall as the grid is
/// one block row), the edge blocks partial when P does not divide the side.
struct Tiling {
  Grid g;
  Index ph = 1, pw = 1;
  Index blocksDown() const { return (g.h + ph - 1) / ph; }
  Index blocksAcross() const { return (g.w + pw - 1) / pw; }
  Index groups() const { return ph * pw; }  // long-range groups: one per offset in a block
  Index blocks() const { return blocksDown() * blocksAcross(); }
  Index groupOf(Index i) const { return (i / g.w % ph) * pw + i % g.w % pw; }
  Index blockOf(Index i) const { return (i / g.w / ph) * blocksAcross() + i % g.w / pw; }
  bool divides() const { return g.h % ph == 0 && g.w % pw == 0; }
};

Tiling tilingFor(const Grid& g, const Params& p) {
  return {g, std::clamp<Index>(p.integer("block_h"), 1, g.h), std::clamp<Index>(p.integer("block_w"), 1, g.w)};
}

KeysFn groupKeys(const Tiling& t) {
  return [t](Index i, std::vector<Index>& out) {
    const Index y0 = i / t.g.w % t.ph, x0 = i % t.g.w % t.pw;
    for (Index y = y0; y < t.g.h; y += t.ph)
      for (Index x = x0; x < t.g.w; x += t.pw) out.push_back(y * t.g.w + x);
  };
}

KeysFn blockKeys(const Tiling& t) {
  return [t](Index i, std::vector<Index>& out) {
    const Index y0 = i / t.g.w / t.ph * t.ph, x0 = i % t.g.w / t.pw * t.pw;
    for (Index y = y0; y < std::min(y0 + t.ph, t.g.h); ++y)
      for (Index x = x0; x < std::min(x0 + t.pw, t.g.w); ++x) out.push_back(y * t.g.w + x);
  };
}

Grouping labelled(const char* name, const Tiling& t, bool by_group) {
  std::vector<std::int32_t> label(size_t(t.g.n()));
  for (Index i = 0; i < t.g.n(); ++i) label[size_t(i)] = std::int32_t(by_group ? t.groupOf(i) : t.blockOf(i));
  return Grouping::fromLabels(name, std::move(label), std::int32_t(by_group ? t.groups() : t.blocks()));
}

/// A stage's step: its pattern, its own weights, and the grouping its softmax runs within (views colour the
/// picture by it, and sort the matrix by it so the stage shows as a block diagonal).
Step stageStep(std::string title, std::string caption, const Pattern& pattern, ImpliedWeights weights,
               Grouping grouping) {
  auto view = std::make_shared<Explanation>();
  view->pattern = pattern;
  view->weights = std::move(weights);
  std::string sorted_by = grouping.name;
  view->groupings.push_back(std::move(grouping));
  return Step{std::move(title), std::move(caption), std::move(view), std::move(sorted_by)};
}

class Interlaced final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "interlaced",
        "Interlaced sparse self-attention",
        "Huang, Yuan, Guo, Zhang, Chen, Wang. Interlaced Sparse Self-Attention for Semantic Segmentation",
        "1907.12273",
        2019,
        Family::FixedSparse,
        "O(N²·d/(P_h·P_w)), N·(N/(P_h·P_w) + P_h·P_w)·d for fixed blocks; O(N^1.5·d) when P_h·P_w ≈ √N",
        CausalSupport::Yes,
        "Attend first among pixels P apart (one offset in every block: long range), then within the pixel's own "
        "P_h×P_w block (short range): two sparse softmaxes whose product links every pixel to every other.",
        "Identity projections: both stages use the inputs' Q, K, V; the 1×1 conv + BN + ReLU projections, the output "
        "conv and the concatenation with the input are left out",
        true,
        {"convention: the short-range stage reuses the inputs' Q and K; the paper projects the long-range stage's "
         "output",
         "convention: edge blocks are partial when P does not divide H or W; the official code pads the map with "
         "zeros to whole blocks",
         "convention: the causal form (both stages masked to j ≤ i in raster order) is attnlab's; the paper has none"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("block_h", "Block height P_h",
                           "Rows of a short-range block, and the vertical spacing of "
                           "a long-range group (isa_block's down_factor[0] = 8); capped at H.",
                           8, 1, double(kMaxBlock)),
        ParamSpec::integer("block_w", "Block width P_w",
                           "Columns of a short-range block, and the horizontal spacing "
                           "of a long-range group (down_factor[1] = 8); capped at W.",
                           8, 1, double(kMaxBlock)),
        widthParam(),
    };
  }
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"block_h", "1"}, {"block_w", "1"}},
                      1e-4,
                      "blocks of one pixel (block_h = block_w = 1): the long-range stage is one group, every pixel"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    const Tiling t = tilingFor(gridFor(n, p.integer("width"), "interlaced attention"), p);
    const double rows = double(n), group = double(t.blocks()), block = double(t.ph * t.pw);
    r.add(2 * rows * double(s.dv) * sizeof(float), "the output and the long-range stage's output (2 × N × dv floats)");
    planPattern(r, s, rows * group, group, "the long-range pattern (N × H·W/(P_h·P_w) pairs)", "block_h",
                "raise block_h and block_w (the groups shrink as the blocks grow)");
    planPattern(r, s, rows * block, block, "the short-range pattern (N × P_h·P_w pairs)", "block_h",
                "lower block_h and block_w");
    r.add(rows * (group + block) * sizeof(float), "the two stages' weights, for the composite");
    r.add(2 * patternBytes(rows * (group + block), rows), "the scored pairs of both stages");
    r.add(6 * rows * 2 * sizeof(std::int32_t), "the groups and blocks (labels and orders, in the steps too)");
    planTwoHops(r, s, rows * block, options, double(kMaxReachEntries));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "interlaced attention");
    const Tiling t = tilingFor(g, p);
    const Index n = in.n();
    const float scale = defaultScale(in.q.cols());
    const bool causal = options.causal;

    auto stagePattern = [&](const char* name, KeysFn keys) {
      return timedStage(r.cost, options, std::string(name) + " pattern", [&] {
        PatternBuilder b(n, n, causal);
        b.add(name, std::move(keys));
        return std::make_shared<const Pattern>(b.build(options));
      });
    };
    auto shown = [&](const std::string& name, auto&& fn) -> std::shared_ptr<const SparseWeights> {
      return options.explain ? displayStage(r.cost, options, name, fn) : nullptr;
    };
    // Stage 1: long range, within each offset's group; stage 2: short range, within each block, over its output.
    const auto long_pattern = stagePattern("long-range", groupKeys(t));
    AttentionOutput y = timedStage(r.cost, options, "long-range attention",
                                   [&] { return backend.sparseAttention(in.q, in.k, in.v, *long_pattern, scale); });
    const auto a_long =
        shown("long-range weights", [&] { return softmaxStage(in.q, in.k, scale, long_pattern, y.lse); });
    const auto short_pattern = stagePattern("short-range", blockKeys(t));
    AttentionOutput o = timedStage(r.cost, options, "short-range attention",
                                   [&] { return backend.sparseAttention(in.q, in.k, y.out, *short_pattern, scale); });
    r.output = std::move(o.out);
    const auto a_short =
        shown("short-range weights", [&] { return softmaxStage(in.q, in.k, scale, short_pattern, o.lse); });

    const Index nnz = long_pattern->nnz() + short_pattern->nnz();
    r.cost.scored_pairs = double(nnz);
    r.cost.flops = 2 * double(nnz) * double(in.q.cols() + in.v.cols());
    r.cost.peak_bytes =
        backend.peakBytes() + nnz * Index(sizeof(std::int32_t) + 1) + 2 * n * in.v.cols() * Index(sizeof(float));
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    const std::string blocks = std::to_string(t.blocksDown()) + "×" + std::to_string(t.blocksAcross());
    r.explanation.notes.push_back("blocks of " + std::to_string(t.ph) + "×" + std::to_string(t.pw) + " (" + blocks +
                                  " of them): " + std::to_string(t.groups()) + " long-range groups of up to " +
                                  std::to_string(t.blocks()) + " pixels");
    if (t.ph < p.integer("block_h") || t.pw < p.integer("block_w"))
      r.explanation.notes.push_back("block " + std::to_string(p.integer("block_h")) + "×" +
                                    std::to_string(p.integer("block_w")) + " is larger than the " +
                                    std::to_string(g.h) + "×" + std::to_string(g.w) + " grid: capped at " +
                                    std::to_string(t.ph) + "×" + std::to_string(t.pw));
    if (!t.divides())
      r.explanation.notes.push_back("the edge blocks are partial (P_h = " + std::to_string(t.ph) +
                                    " or P_w = " + std::to_string(t.pw) +
                                    " does not divide the grid): a pixel of a partial block "
                                    "reaches only the offsets that block holds");
    if (!options.explain) return r;

    const double work = double(n) * composedRowWork({double(t.ph * t.pw), double(t.blocks())}, double(n));
    if (work <= kMaxComposedWork) {
      r.explanation.weights = composedWeights({a_short, a_long});
    } else {
      r.explanation.weights_withheld = composedWithheldText("A_short·A_long", work);
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    r.explanation.pattern = [&] {  // every pair either stage scores
      PatternBuilder b(n, n, causal);
      b.add("long-range", groupKeys(t));
      b.add("short-range", blockKeys(t));
      return b.build(options);
    }();
    r.explanation.groupings.push_back(labelled(kLongGroups, t, true));
    r.explanation.groupings.push_back(labelled(kShortBlocks, t, false));

    const std::string masked = causal ? ", earlier pixels only (j ≤ i)" : "";
    r.explanation.steps.push_back(stageStep(
        "long-range",
        "Softmax within the pixel's group: the pixels at the same offset in every " + std::to_string(t.ph) + "×" +
            std::to_string(t.pw) + " block, " + std::to_string(t.ph) + " rows and " + std::to_string(t.pw) +
            " columns apart (" + std::to_string(t.groups()) + " groups)" + masked + ".",
        *long_pattern, composedWeights({a_long}), r.explanation.groupings[0]));
    r.explanation.steps.push_back(stageStep("short-range",
                                            "Softmax within the pixel's own " + std::to_string(t.ph) + "×" +
                                                std::to_string(t.pw) + " block (" + blocks + " blocks)" + masked +
                                                ", over the long-range stage's output.",
                                            *short_pattern, composedWeights({a_short}), r.explanation.groupings[1]));
    std::optional<Pattern> reach = displayStage(
        r.cost, options, "two hops", [&] { return composePatterns(*short_pattern, *long_pattern, kMaxReachEntries); });
    std::string caption = "The composite A_short·A_long: ";
    caption += causal ? "earlier pixels only, through an earlier pixel of the block."
               : t.divides()
                   ? "every block holds every offset, so every pixel reaches every other in two hops."
                   : "a pixel reaches the groups of the offsets its block holds (a partial edge block lacks some).";
    if (!reach) caption += " (The reach, more than 2²⁴ pairs, is not formed.)";
    r.explanation.steps.push_back(
        gridStep("short ∘ long", std::move(caption), std::move(reach), r.explanation.weights));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeInterlaced() { return std::make_shared<Interlaced>(); }
}  // namespace attn::mech
