// gmat — Gupta & Berant 2020 (arXiv 2006.03274), CATALOG.md #30: M global memory tokens prepended to
// the sequence. Main tokens attend to every memory token and to their sparse neighbourhood (here a band
// of ⌊w/2⌋ tokens on each side, and themselves); in the paper the memory tokens also attend to
// everything. In the "bottleneck" mode (w = 0) a main token reads the sequence only through the M
// memory tokens: its row of the effective matrix has rank ≤ M.
// Stand-in (CATALOG f): memory token t is the mean of the keys and values of the t-th of M equal
// segments (the paper learns memory embeddings and updates them by attention over every token); only
// the main tokens' outputs are computed.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class Gmat final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "gmat", "GMAT", "Gupta, Berant. GMAT: Global Memory Augmentation for Transformers", "2006.03274", 2020,
        Family::Memory, "O(M·(N+M)·d + N·w·d)", CausalSupport::No,
        "A few global memory tokens are read by every token; main tokens otherwise attend only within a band "
        "(or not at all: the bottleneck).",
        "Memory tokens are segment means of the keys and values (the paper learns their embeddings and lets them "
        "attend to every token); only the main tokens' outputs are computed.",
        true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("memory", "Memory tokens M", "Global memory tokens every main token reads.", 16, 0, 4096,
                           true),
        ParamSpec::integer("window", "Band w", "Main tokens attend to ⌊w/2⌋ neighbours on each side and "
                           "themselves; 0 is the bottleneck mode (memory only).", 32, 0, 1 << 20, true),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"memory", "0"}, {"window", std::to_string(2 * std::max(in.n(), in.m()))}}, 1e-4,
                      "no memory tokens and a band covering the sequence (M = 0, w ≥ 2N)"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double m = double(s.m), mem = std::min(double(p.integer("memory")), m);  // clamped at N, as run() does
    const double w = double(p.integer("window"));
    const double band = w > 0 ? std::min(2 * std::floor(w / 2) + 1, m) : 0.0;  // a band past N adds nothing
    planSummaries(r, s, band, mem, mem, options, mem > band ? "memory" : "window");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), w = p.integer("window");
    const Index mem = std::min(p.integer("memory"), m);
    if (p.integer("memory") > mem) r.explanation.notes.push_back("memory clamped to " + std::to_string(mem) + " (N)");
    if (mem == 0 && w == 0) throw UserError("GMAT with no memory tokens and no band attends to nothing: raise M or w");
    auto sp = timedStage(r.cost, options, "memory", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = n;
      s->tokens = m;
      s->level_names = {"band", "memory"};
      for (Index t = 0; t < mem; ++t) s->nodes.push_back({Range{t * m / mem, (t + 1) * m / mem}, 1});
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      for (Index i = 0; i < n; ++i) {
        if (w > 0)
          for (Index j = std::max<Index>(0, i - w / 2); j <= std::min(m - 1, i + w / 2); ++j)
            s->token_keys[size_t(i)].push_back(std::int32_t(j));
        for (Index t = 0; t < mem; ++t) s->node_keys[size_t(i)].push_back(std::int32_t(t));
      }
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    if (w == 0) r.explanation.notes.push_back("bottleneck mode: every token is read through the " +
                                              std::to_string(mem) + " memory tokens (rank ≤ M)");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeGmat() { return std::make_shared<Gmat>(); }
}  // namespace attn::mech
