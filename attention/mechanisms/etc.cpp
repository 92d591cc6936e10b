// etc — Ainslie et al. 2020 (arXiv 2004.08483), CATALOG.md #25: global-local attention. The long
// tokens attend within a local radius r (l2l) and to every global token (l2g); global tokens attend to
// each other (g2g) and to the long tokens (g2l). Stand-in (CATALOG f): one global token per segment
// of the input, its key and value the mean of the segment's tokens. The output is the long tokens'
// (what the view compares with exact attention); the 2×2 block structure is shown as a factor.
// Encoder only: no causal form.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class Etc final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "etc", "ETC", "Ainslie et al. ETC: Encoding Long and Structured Inputs in Transformers", "2004.08483", 2020,
        Family::FixedSparse, "O((n_g² + n_g·N + N·r)·d)", CausalSupport::No,
        "Long tokens attend within a radius r and to a few global tokens; in the paper the global tokens "
        "attend to everything (here each is its segment's mean).",
        "One global token per segment: the mean of the segment's keys and values (the paper learns global "
        "token embeddings, and their own g2g and g2l attention is not computed here).",
        true,
        {"convention: one global token per fixed-length segment; the paper places one per sentence or "
         "paragraph, with optional hard g2l/l2g masks to its own segment"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"radius", std::to_string(std::max(in.n(), in.m()))}, {"segment", "0"}}, 1e-4,
                      "a radius r ≥ N and no global tokens: l2l holds every key"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("radius", "Local radius r", "Long-to-long attention within r positions on each side "
                           "(the official EtcConfig default: 84).", 16, 0, 1 << 20, true),
        ParamSpec::integer("segment", "Segment length", "One global token per segment of this many tokens "
                           "(0: no global tokens).", 32, 0, 1 << 20, true),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double m = double(s.m), seg = double(p.integer("segment"));
    const double globals = seg > 0 ? std::ceil(m / seg) : 0.0;  // one per segment: every query sees them all
    const double local = std::min(2 * double(p.integer("radius")) + 1, m);  // a radius past N adds nothing
    planSummaries(r, s, local, globals, globals, options, globals > local ? "segment" : "radius",
                  globals > local ? "raise segment (fewer global tokens), or 0 for none" : "lower radius");
    r.add((globals + 96) * (globals + 96) * sizeof(float), "the global-local block view ((globals + 96)²)", "segment",
          "raise segment (fewer global tokens)");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), radius = p.integer("radius"), seg = p.integer("segment");
    auto sp = timedStage(r.cost, options, "segments", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = n;
      s->tokens = m;
      s->level_names = {"local (l2l)", "global (l2g)"};
      if (seg > 0)
        for (Index b = 0; b < m; b += seg) s->nodes.push_back({Range{b, std::min(m, b + seg)}, 1});
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      for (Index i = 0; i < n; ++i) {
        for (Index j = std::max<Index>(0, i - radius); j <= std::min(m - 1, i + radius); ++j)
          s->token_keys[size_t(i)].push_back(std::int32_t(j));
        for (Index t = 0; t < Index(s->nodes.size()); ++t) s->node_keys[size_t(i)].push_back(std::int32_t(t));
      }
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    const Index g = Index(sp->nodes.size());
    // The ETC block structure over [global; long] for the first tokens: g2g, g2l | l2g, l2l.
    const Index shown = std::min<Index>(n, 96);
    Matrix blocks = Matrix::Zero(g + shown, g + shown);
    blocks.topRows(g).setConstant(1.0f);     // g2g and g2l: globals see everything
    blocks.block(g, 0, shown, g).setConstant(1.0f);  // l2g
    for (Index i = 0; i < shown; ++i)
      for (Index j = std::max<Index>(0, i - radius); j <= std::min(shown - 1, i + radius); ++j) blocks(g + i, g + j) = 1;
    r.explanation.factors.push_back({"ETC structure", "the paper's [g2g g2l; l2g l2l] over " + std::to_string(g) +
                                     " global and the first " + std::to_string(shown) +
                                     " long tokens (g2g and g2l are not computed here)", blocks});
    std::vector<std::int32_t> segment(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) segment[size_t(i)] = std::int32_t(seg > 0 ? i / seg : 0);
    if (seg > 0)
      r.explanation.groupings.push_back(Grouping::fromLabels("segments", std::move(segment), std::int32_t(g)));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeEtc() { return std::make_shared<Etc>(); }
}  // namespace attn::mech
