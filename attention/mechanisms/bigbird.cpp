// bigbird — Zaheer et al. 2020 (arXiv 2007.14062), CATALOG.md #37, ITC and ETC forms. Block-sparse with
// block size b: each query block attends to a window of 3 blocks (itself and its neighbours), g global
// blocks (the first and the last: their tokens attend to everything and are attended by everything),
// and r random key blocks drawn per query block from the others (a seed). Causal adaptation (CATALOG
// b): the left window, random blocks from the past and the leading global block only.
// ETC form: instead of global blocks of the sequence, g·b extra global tokens (segment means) that
// every token attends to (no causal form: they read everything).
// Stand-in: nothing learned beyond Q, K, V; the random blocks come from the run's seed.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/mechanisms/summary_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

class BigBird final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "bigbird", "BigBird", "Zaheer et al. Big Bird: Transformers for Longer Sequences", "2007.14062", 2020,
        Family::FixedSparse, "O((g² + N·(w + g + r))·d)", CausalSupport::Yes,
        "Blocks attend to a 3-block window, a few global blocks and a few random blocks: a sparse graph "
        "with a small diameter.",
        "Random blocks are drawn from the run's seed (no learned weights beyond Q, K, V).", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("block", "Block size b", "Tokens per block (the official flags default to 16, the "
                           "paper's main runs use 64).", 16, 1, 4096, true),
        ParamSpec::integer("random", "Random blocks r", "Random key blocks per query block.", 3, 0, 64),
        ParamSpec::integer("globals", "Global blocks g", "ITC: global blocks of the sequence, the first (and, for "
                           "g ≥ 2, the last); causal mode keeps only the first. ETC: g·b extra global tokens.", 2, 0, 2),
        ParamSpec::choice("form", "Form", "itc: global tokens are blocks of the sequence; etc: extra dedicated "
                          "global tokens (segment means) that every token attends to", {"itc", "etc"}, 0),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"block", std::to_string(std::min<Index>(4096, std::max(in.n(), in.m())))}, {"form", "itc"}},
                      1e-4, "one block covering the sequence (b ≥ N)"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m), b = std::min(double(p.integer("block")), m);
    const double rand = double(p.integer("random"));
    if (p.choice("form") == "etc") {
      const double extra = std::min(m, double(p.integer("globals")) * b);
      planSummaries(r, s, (3 + rand) * b, extra, extra, options, "block");
      return r;
    }
    const double g = options.causal ? std::min(1.0, double(p.integer("globals"))) : double(p.integer("globals"));
    // The window (3 blocks), random and global blocks of each row; the global rows see every key.
    const double entries = std::min(n * m, n * (3 + rand + g) * b + g * b * m);
    planPattern(r, s, entries, std::min(m, (3 + rand + g) * b),
                "the block pattern ((3 + random + globals) × block × N)", "block", "lower block or random");
    planTwoHops(r, s, entries, options);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (p.choice("form") == "etc") return runEtc(in, p, backend, options);
    Result r;
    const Index n = in.n(), m = in.m();
    const Index b = p.integer("block"), rand = p.integer("random");
    const bool causal = options.causal;
    const Index key_blocks = (m + b - 1) / b, query_blocks = (n + b - 1) / b;
    Index g = p.integer("globals");
    if (causal && g > 1) {
      g = 1;
      r.explanation.notes.push_back("causal mode keeps only the leading global block");
    }
    auto isGlobal = [g, key_blocks](Index blk) { return (g >= 1 && blk == 0) || (g >= 2 && blk == key_blocks - 1); };

    // Random key blocks per query block: from the blocks outside its window and the global ones
    // (causal: from the past), drawn without replacement.
    std::vector<std::vector<Index>> random_blocks(static_cast<size_t>(query_blocks));
    Rng rng(options.seed, 37);
    std::vector<Index> candidates;
    for (Index qb = 0; qb < query_blocks; ++qb) {
      candidates.clear();
      for (Index kb = 0; kb < key_blocks; ++kb)
        if (std::abs(kb - qb) > 1 && !isGlobal(kb) && (!causal || kb < qb)) candidates.push_back(kb);
      for (Index t = 0; t < rand && !candidates.empty(); ++t) {
        const size_t pick = size_t(rng.below(candidates.size()));
        random_blocks[size_t(qb)].push_back(candidates[pick]);
        candidates.erase(candidates.begin() + std::ptrdiff_t(pick));
      }
    }

    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      PatternBuilder builder(n, m, causal);
      auto addBlock = [b, m](Index blk, std::vector<Index>& out) {
        for (Index j = blk * b; j < std::min(m, (blk + 1) * b); ++j) out.push_back(j);
      };
      // Global rows (tokens of a global block) see every key; every row sees the global blocks.
      builder.add("global", [&, addBlock](Index i, std::vector<Index>& out) {
        if (isGlobal(i / b)) {
          for (Index j = 0; j < m; ++j) out.push_back(j);
          return;
        }
        for (Index kb = 0; kb < key_blocks; ++kb)
          if (isGlobal(kb)) addBlock(kb, out);
      });
      builder.add("window", [addBlock, b](Index i, std::vector<Index>& out) {
        for (Index kb = i / b - 1; kb <= i / b + 1; ++kb)
          if (kb >= 0) addBlock(kb, out);
      });
      builder.add("random", [&, addBlock](Index i, std::vector<Index>& out) {
        for (Index kb : random_blocks[size_t(i / b)]) addBlock(kb, out);
      });
      return std::make_shared<const Pattern>(builder.build(options));
    });
    attendPattern(in, pattern, backend, options, r);

    TokenSet globals{"global blocks", "global", {}, {}, {}};
    for (Index j = 0; j < m; ++j)
      if (isGlobal(j / b)) globals.indices.push_back(j);
    if (!globals.indices.empty()) r.explanation.special.push_back(std::move(globals));
    std::vector<std::int32_t> block_label(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) block_label[size_t(i)] = std::int32_t(i / b);
    r.explanation.groupings.push_back(Grouping::fromLabels("blocks of " + std::to_string(b), std::move(block_label),
                                                           std::int32_t(query_blocks)));
    if (!options.explain) return r;
    if (auto two = displayStage(r.cost, options, "two hops",
                                [&] { return composePatterns(*pattern, *pattern, Index(1) << 24); }))
      r.explanation.steps.push_back(patternStep("Two hops", "Pairs linked through one intermediate token: the "
                                                "global and random blocks give the graph a small diameter.",
                                                std::move(*two)));
    r.explanation.steps.insert(r.explanation.steps.begin(),
                               patternStep("Blocks", "window (3 blocks), global and random blocks", *pattern));
    return r;
  }

  /// ETC form: window and random blocks over the sequence, plus g·b extra global tokens (each the mean of
  /// one of g·b equal segments: the stand-in for learned global tokens) that every token attends to.
  Result runEtc(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const {
    if (options.causal)
      throw UserError("BigBird's ETC form has no causal form (its extra global tokens read every token); use "
                      "form=itc for causal runs");
    Result r;
    const Index n = in.n(), m = in.m(), b = p.integer("block"), rand = p.integer("random");
    const Index key_blocks = (m + b - 1) / b, query_blocks = (n + b - 1) / b;
    const Index extra = std::min(m, p.integer("globals") * b);
    auto sp = timedStage(r.cost, options, "pattern", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = n;
      s->tokens = m;
      s->level_names = {"window / random", "global token"};
      for (Index t = 0; t < extra; ++t) s->nodes.push_back({Range{t * m / extra, (t + 1) * m / extra}, 1});
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      Rng rng(options.seed, 37);
      std::vector<Index> candidates;
      for (Index qb = 0; qb < query_blocks; ++qb) {
        std::vector<Index> blocks;
        for (Index kb = std::max<Index>(0, qb - 1); kb <= std::min(key_blocks - 1, qb + 1); ++kb) blocks.push_back(kb);
        candidates.clear();
        for (Index kb = 0; kb < key_blocks; ++kb)
          if (std::abs(kb - qb) > 1) candidates.push_back(kb);
        for (Index t = 0; t < rand && !candidates.empty(); ++t) {
          const size_t pick = size_t(rng.below(candidates.size()));
          blocks.push_back(candidates[pick]);
          candidates.erase(candidates.begin() + std::ptrdiff_t(pick));
        }
        std::sort(blocks.begin(), blocks.end());
        for (Index i = qb * b; i < std::min(n, (qb + 1) * b); ++i) {
          for (Index kb : blocks)
            for (Index j = kb * b; j < std::min(m, (kb + 1) * b); ++j) s->token_keys[size_t(i)].push_back(std::int32_t(j));
          for (Index t = 0; t < extra; ++t) s->node_keys[size_t(i)].push_back(std::int32_t(t));
        }
      }
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    r.explanation.notes.push_back("ETC form: " + std::to_string(extra) + " extra global tokens (segment means)");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeBigBird() { return std::make_shared<BigBird>(); }
}  // namespace attn::mech
