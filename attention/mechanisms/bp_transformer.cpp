// bp-transformer — Ye, Guo, Gan, Qiu, Zhang 2019 (arXiv 1911.04070), CATALOG.md #14. A binary
// partition tree over the tokens: token i attends to itself and k tokens on each side and, at every
// level ℓ, to k nodes on each side further out: spans of 2^ℓ tokens, the first of them a child span of
// 2^(ℓ−1) where a span would overlap finer coverage — that child is one of the k, as in the official
// graph builder (yzh119/BPT graph_builder/builder.pyx): 38.8 entries per row at N = 256, k = 4. Fine
// near i, exponentially coarser far away, ≈ 2k·log₂(N/k) nodes per token.
// Stand-in (CATALOG f): a span node's key and value are the means of its tokens' (the paper learns
// them by attention inside the tree). Causal form: left connections only.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class BpTransformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "bp-transformer", "BP-Transformer", "Ye et al. BP-Transformer: Modelling Long-Range Context via Binary "
        "Partitioning", "1911.04070", 2019, Family::FixedSparse, "O(N·k·log(N/k)·d)", CausalSupport::Yes,
        "A binary tree of spans: each token sees its k neighbours on each side and k nodes per level on "
        "each side, spans that grow coarser with distance.",
        "Span nodes are the mean of their tokens' keys and values (the paper builds them with learned "
        "attention).",
        true,
        {"convention: at N not a power of two the official graph builder can link a node past a level's end "
         "(at N = 100 token 0 sees tokens 0–31 twice); here every row's spans tile the sequence once"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"k", std::to_string(std::max(in.n(), in.m()))}}, 1e-4,
                      "k ≥ N neighbour tokens on each side: every key is a token of its own"};
  }
  std::vector<ParamSpec> params() const override {
    return {ParamSpec::integer("k", "Nodes per level k", "Neighbour tokens, and nodes per level, on each side; "
                               "a child span filling a gap counts among a level's k (text: 4; enwik8: 64).", 4, 1,
                               1 << 16, true)};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(std::max<Index>(s.n, 1)), k = double(p.integer("k"));
    const double levels = std::ceil(std::log2(n)) + 1;
    // k tokens and k nodes per level on each side, cut at the sequence; the tree has about N nodes.
    planSummaries(r, s, std::min(2 * k + 1, n), std::min(2 * (k + 1) * levels, n), n, options, "k");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    if (in.m() != in.n()) throw UserError("BP-Transformer builds its tree over one sequence: it needs as many keys as queries");
    const Index k = p.integer("k");
    auto sp = timedStage(r.cost, options, "tree", [&] {
      return std::make_shared<const SummaryPattern>(foveaPattern(in.n(), k, k, 2, options.causal, true, options));
    });
    attendWithSummaries(in, sp, backend, options, r);
    double per_row = 0;
    for (Index i = 0; i < in.n(); ++i)
      per_row += double(sp->token_keys[size_t(i)].size() + sp->node_keys[size_t(i)].size());
    r.explanation.notes.push_back(std::to_string(sp->nodes.size()) + " span nodes; " +
                                  std::to_string(int(per_row / double(std::max<Index>(1, in.n())) + 0.5)) +
                                  " tokens and spans per query on average");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeBpTransformer() { return std::make_shared<BpTransformer>(); }
}  // namespace attn::mech
