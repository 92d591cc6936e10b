// multiscale — Subramanian, Collobert, Ranzato, Boureau 2020 (arXiv 2005.00581), CATALOG.md #26, the
// "retina" teaching form: scales s = 1, k, k², …; a block at scale s is the mean of its tokens; token i
// attends to w finest-scale neighbours on each side plus w blocks at each coarser scale immediately
// beyond its finer coverage, after up to k − 1 blocks of the scale below that fill the gap to the
// coarser scale's block boundary. Causal (the language-model setting): only completed past blocks.
// Each row scores ≤ 2w + 1 tokens and ≤ 2(w + k − 1) blocks per scale: O(N·(w + k)·log_k N). The paper's exact
// layer recipes are not reproduced (CATALOG a: [R]); the mask with mean-pooled summaries is.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class Multiscale final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "multiscale", "Multi-scale Transformer", "Subramanian, Collobert, Ranzato, Boureau. Multi-scale "
        "Transformer Language Models", "2005.00581", 2020, Family::FixedSparse, "O(N·(w+k)·log_k(N)·d)",
        CausalSupport::Yes,
        "A retina: fine resolution nearby, pooled blocks k, k², … tokens wide further away.",
        "Blocks are mean-pooled keys and values (no learned pooling).",
        true,
        {"convention: a one-layer retina mask over mean-pooled blocks, a teaching form; the paper's "
         "multi-scale layer stacks (bottom-up, top-down) are not reproduced",
         "convention: the bidirectional form (blocks on both sides) is attnlab's; the paper's models are "
         "causal language models"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"window", std::to_string(std::max(in.n(), in.m()))}}, 1e-4,
                      "a window w ≥ N: every key is a token of its own"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("window", "Window w", "Finest-scale neighbours, and blocks per coarser scale, on each "
                           "side (up to k − 1 finer blocks first fill the gap to a block boundary).", 8, 1,
                           1 << 16, true),
        ParamSpec::integer("factor", "Pooling factor k", "Each scale pools k blocks of the scale below.", 4, 2, 64),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(std::max<Index>(s.n, 1)), w = double(p.integer("window")), k = double(p.integer("factor"));
    const double levels = std::ceil(std::log(n) / std::log(k)) + 1;
    // w tokens on each side, then w blocks per scale (and up to k − 1 finer ones filling a gap), cut at N.
    planSummaries(r, s, std::min(2 * w + 1, n), std::min(2 * (w + k) * levels, n), n / (k - 1) + levels, options,
                  "window");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    if (in.m() != in.n()) throw UserError("the multi-scale retina needs as many keys as queries");
    const Index w = p.integer("window"), k = p.integer("factor");
    auto sp = timedStage(r.cost, options, "scales", [&] {
      return std::make_shared<const SummaryPattern>(foveaPattern(in.n(), w, w, k, options.causal, false, options));
    });
    attendWithSummaries(in, sp, backend, options, r);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeMultiscale() { return std::make_shared<Multiscale>(); }
}  // namespace attn::mech
