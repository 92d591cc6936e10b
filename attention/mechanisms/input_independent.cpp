// input-independent — Wu et al. 2020 (arXiv 2006.05174), CATALOG.md #29, "Hand-Crafted Attention":
// input-independent attention weights for self-supervised audio transformers. The learned attention
// maps of Mockingjay-style audio transformers fall into a few categories; the paper replaces (or
// initialises) attention with fixed, input-independent weights of those shapes. Teaching formulation
// (CATALOG a): one fixed row-normalised pattern A_fix, O = A_fix·V, no QKᵀ at all:
//   band:     Gaussian band centred at offset o with width σ: logits −(j − i − o)²/(2σ²), truncated at
//             |j − i − o| ≤ ⌈4σ⌉ (weights below e⁻⁸ of the peak dropped); a row whose window falls
//             outside the sequence (or past i when causal) takes the nearest visible key;
//   previous: one-hot on token i − 1 (token 0 keeps itself);   next: one-hot on i + 1 (the last keeps itself);
//   uniform:  every (visible) token alike;
//   stripes:  uniform over s fixed frames, the columns 0, ⌊N/s⌋, 2⌊N/s⌋, … (vertical stripes);
//   blocks:   uniform within segments of b tokens (block/segment pattern).
// Causal: the pattern is masked (j ≤ i). Nothing is learned, so there is no stand-in. The sparse shapes
// run as softmax over a Pattern with the logits as entry biases and zero queries and keys
// (Backend::sparseAttention), the uniform one as dense attention with zero logits. Labelled a different
// operator (its weights ignore the input), though CATALOG e suggests e_out against softmax on
// local-dominant inputs as a teaching comparison.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

struct Shape {
  std::string kind;
  Index offset = 0;
  double sigma = 1;
  Index stripes = 4, block = 16;
};

/// The sparse fixed pattern of `shape` over n tokens and its logits (one per entry).
Pattern buildPattern(const Shape& s, Index n, bool causal, std::vector<float>& logits) {
  Pattern p;
  p.rows = p.cols = n;
  p.components = {s.kind};
  p.row_ptr.push_back(0);
  logits.clear();
  const auto add = [&](Index j, double logit) {
    p.col.push_back(std::int32_t(j));
    logits.push_back(float(logit));
  };
  const Index stride = std::max<Index>(1, n / std::max<Index>(1, s.stripes));
  for (Index i = 0; i < n; ++i) {
    const Index last = causal ? i : n - 1;  // last visible key
    if (s.kind == "band") {
      const Index c = i + s.offset, w = Index(std::ceil(4 * s.sigma));
      const Index j0 = std::max<Index>(0, c - w), j1 = std::min(last, c + w);
      if (j0 > j1) {
        add(std::clamp<Index>(c, 0, last), 0);
      } else {
        for (Index j = j0; j <= j1; ++j) add(j, -double((j - c) * (j - c)) / (2 * s.sigma * s.sigma));
      }
    } else if (s.kind == "previous") {
      add(std::max<Index>(0, i - 1), 0);
    } else if (s.kind == "next") {
      add(std::min(n - 1, i + 1), 0);
    } else if (s.kind == "stripes") {
      for (Index k = 0; k < s.stripes && k * stride <= last; ++k) add(k * stride, 0);
    } else if (s.kind == "blocks") {
      const Index b0 = (i / s.block) * s.block;
      for (Index j = b0; j <= std::min(last, b0 + s.block - 1); ++j) add(j, 0);
    } else {  // uniform (only for the gallery: the run uses dense attention)
      for (Index j = 0; j <= last; ++j) add(j, 0);
    }
    p.row_ptr.push_back(Index(p.col.size()));
  }
  p.component.assign(p.col.size(), 0);
  return p;
}

/// Row-normalised dense matrix of a pattern with logits (for the gallery).
Matrix densePattern(const Pattern& p, const std::vector<float>& logits) {
  Matrix w = Matrix::Zero(p.rows, p.cols);
  for (Index i = 0; i < p.rows; ++i) {
    const Index e0 = p.row_ptr[size_t(i)], e1 = p.row_ptr[size_t(i + 1)];
    float mx = -std::numeric_limits<float>::infinity(), sum = 0;
    for (Index e = e0; e < e1; ++e) mx = std::max(mx, logits[size_t(e)]);
    for (Index e = e0; e < e1; ++e) sum += std::exp(logits[size_t(e)] - mx);
    for (Index e = e0; e < e1; ++e) w(i, p.col[size_t(e)]) = std::exp(logits[size_t(e)] - mx) / sum;
  }
  return w;
}

class InputIndependent final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "input-independent", "Input-independent attention",
        "Wu et al. Input-independent Attention Weights Are Expressive Enough: A Study of Attention in "
        "Self-supervised Audio Transformers",
        "2006.05174", 2020, Family::NonPairwise, "O(N·w·d) banded, O(N²·d) dense", CausalSupport::Yes,
        "Replace attention by a fixed, hand-crafted pattern (diagonal band, neighbour, stripes, blocks, uniform): "
        "the same weights for every input, no QKᵀ.",
        "", false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("pattern", "Pattern",
                          "band: Gaussian band at offset o, width σ; previous / next: the neighbouring token; "
                          "uniform: all tokens; stripes: s fixed frames; blocks: segments of b tokens.",
                          {"band", "previous", "next", "uniform", "stripes", "blocks"}, 0),
        ParamSpec::integer("offset", "Band offset o", "Centre of the band relative to the query (−1: previous "
                           "frames).", 0, -65536, 65536),
        ParamSpec::real("sigma", "Band width σ", "Standard deviation of the Gaussian band, tokens.", 2, 0.1, 4096, true),
        ParamSpec::integer("stripes", "Stripes s", "Fixed frames every row attends to (stripes pattern).", 4, 1, 65536,
                           true),
        ParamSpec::integer("block", "Block b", "Segment length of the blocks pattern.", 16, 1, 1 << 20, true),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    const std::string kind = p.choice("pattern");
    const Index n = s.n;
    // Keys per row, cut at the sequence (run() clamps stripes at N; a band or block past it adds nothing).
    Index keys = 1;
    std::string parameter;
    if (kind == "band")
      keys = 2 * Index(std::ceil(4 * p.number("sigma"))) + 1, parameter = "sigma";
    else if (kind == "stripes")
      keys = p.integer("stripes"), parameter = "stripes";
    else if (kind == "blocks")
      keys = p.integer("block"), parameter = "block";
    const double entries = double(n) * double(std::min(keys, n));
    if (kind == "uniform") {
      r.flops = 2.0 * double(n) * double(n) * double(s.dv) / (options.causal ? 2 : 1);
      return r;
    }
    // Per entry: its column and logit (each grown by doubling), its tag, and the two copies shown.
    r.add(entries * (4 * 2 + 4 * 2 + 1 + 5 + 5) + sparseWorkspaceBytes(double(std::min(keys, n)), s),
          "the fixed pattern (N × its keys per row)", parameter);
    r.flops = 2.0 * entries * double(s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (in.m() != in.n()) throw UserError("fixed positional patterns need as many keys as queries");
    Shape s{p.choice("pattern"), p.integer("offset"), p.number("sigma"), p.integer("stripes"), p.integer("block")};
    if (options.causal && s.kind == "next")
      throw UserError("the 'next' pattern looks one token ahead and has no causal form: pick 'previous' or turn "
                      "causal off");
    Result r;
    const Index n = in.n(), dv = in.v.cols();
    if (s.stripes > n) {
      r.explanation.notes.push_back("stripes clamped to " + std::to_string(n) + " (the number of tokens)");
      s.stripes = n;
    }
    if (s.kind == "band" && options.causal && s.offset > 0)
      r.explanation.notes.push_back("causal: the band's part past the query is masked; rows whose band lies entirely "
                                    "ahead keep only themselves");
    const Matrix zq = Matrix::Zero(n, 1);
    auto zeros = std::make_shared<const Matrix>(Matrix::Zero(n, 1));
    if (s.kind == "uniform") {
      DenseAttentionOptions o;
      o.scale = 1;
      o.causal = options.causal;
      AttentionOutput a = timedStage(r.cost, options, "fixed pattern · V",
                                     [&] { return backend.denseAttention(zq, zq, in.v, o); });
      r.output = std::move(a.out);
      r.explanation.weights = denseSoftmaxWeights(zeros, zeros, 1, options.causal, std::move(a.lse));
      r.cost.flops = 2.0 * double(n) * double(n) * double(dv) / (options.causal ? 2 : 1);
    } else {
      auto logits = std::make_shared<std::vector<float>>();
      auto pattern = std::make_shared<Pattern>(timedStage(r.cost, options, "fixed pattern",
                                                          [&] { return buildPattern(s, n, options.causal, *logits); }));
      AttentionOutput a = timedStage(r.cost, options, "fixed pattern · V", [&] {
        return backend.sparseAttention(zq, zq, in.v, *pattern, 1.0f, logits.get());
      });
      r.output = std::move(a.out);
      auto lse = std::make_shared<Vector>(std::move(a.lse));
      r.explanation.weights = ImpliedWeights(n, n, [pattern, logits, lse](Range rows, Range cols) {
        Matrix w = Matrix::Zero(rows.size(), cols.size());
        for (Index i = rows.begin; i < rows.end; ++i)
          for (Index e = pattern->row_ptr[size_t(i)]; e < pattern->row_ptr[size_t(i + 1)]; ++e) {
            const Index j = pattern->col[size_t(e)];
            if (j >= cols.begin && j < cols.end) w(i - rows.begin, j - cols.begin) = std::exp((*logits)[size_t(e)] - (*lse)(i));
          }
        return w;
      });
      r.explanation.pattern = *pattern;
      r.cost.flops = 2.0 * double(pattern->nnz()) * double(dv);
      r.cost.peak_bytes = pattern->nnz() * Index(sizeof(std::int32_t) + 1 + sizeof(float));
    }
    // A gallery of the shapes on 48 tokens (the CATALOG's per-head gallery), this run's settings.
    const Index g = std::min<Index>(n, 48);
    for (const char* kind : {"band", "previous", "next", "uniform", "stripes", "blocks"}) {
      if (options.causal && std::string(kind) == "next") continue;
      Shape gs = s;
      gs.kind = kind;
      gs.stripes = std::min(gs.stripes, g);
      std::vector<float> gl;
      const Pattern gp = buildPattern(gs, g, options.causal, gl);
      r.explanation.factors.push_back({std::string("gallery: ") + kind,
                                       "the fixed '" + std::string(kind) + "' weights on " + std::to_string(g) +
                                           " tokens (the same for every input)",
                                       densePattern(gp, gl)});
    }
    {
      auto view = std::make_shared<Explanation>();
      view->weights = r.explanation.weights;
      view->pattern = r.explanation.pattern;
      r.explanation.steps.push_back({"fixed weights", "A_fix: chosen before any input is seen", view, ""});
      auto gallery = std::make_shared<Explanation>();
      gallery->factors = r.explanation.factors;
      r.explanation.steps.push_back({"gallery", "the pattern categories of the paper's learned maps", gallery, ""});
    }
    r.explanation.notes.push_back("input-independent: the same weights for every input (a different operator; "
                                  "compare with exact attention on local inputs)");
    r.cost.scored_pairs = 0;  // nothing is scored
    r.cost.peak_bytes += backend.peakBytes() + n * dv * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeInputIndependent() { return std::make_shared<InputIndependent>(); }
}  // namespace attn::mech
