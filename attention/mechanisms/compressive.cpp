// compressive — Rae et al. 2019 (arXiv 1911.05507), CATALOG.md #15. The
// sequence is processed in segments of n_s tokens; a segment attends to [compressed memory; memory;
// itself] (causal within itself). The paper's schedule (its Algorithm 1): the memory is a FIFO of the
// n_m most recent past positions; pushing a segment into it evicts the n_s oldest entries, and f_c
// compresses those into ⌊n_s/c⌋ slots (groups of c consecutive evicted positions, from the oldest; when c
// does not divide n_s the newest n_s mod c of them are dropped), pushed into the compressed FIFO of n_cm
// slots. So the evicted chunk after segment t is [t·n_s − n_m, (t+1)·n_s − n_m), and the slots' groups
// are aligned to that chunk, not to multiples of c. The paper fills both memories with zeros at the
// start; here they start empty (positions < 0 are not attended, and a slot pools its real positions).
// Stand-in (CATALOG f): f_c is mean pooling over its c positions (the paper trains a convolution with
// an attention-reconstruction loss).
// Causal by construction; a non-causal run lets a segment see all of itself.
#include <algorithm>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class Compressive final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "compressive", "Compressive Transformer",
        "Rae et al. Compressive Transformers for Long-Range Sequence Modelling",
        "1911.05507", 2019, Family::Memory, "O(n_s·(n_cm + n_m + n_s)·d) per segment", CausalSupport::Native,
        "Segments attend to a memory of recent positions and to a compressed memory of older ones, pooled "
        "c-fold as they age.",
        "Mean pooling replaces the learned compression function.", true,
        {"convention: the memories start empty (the paper's Algorithm 1 fills them with zeros, which take "
         "attention weight); a slot pools only the real positions of its group"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("segment", "Segment n_s", "Tokens processed together.", 32, 1, 1 << 20, true),
        ParamSpec::integer("memory", "Memory n_m", "Most recent past positions kept uncompressed.", 32, 0, 1 << 20,
                           true),
        ParamSpec::integer("compressed", "Compressed slots n_cm", "Slots of the compressed memory.", 16, 0, 1 << 20,
                           true),
        ParamSpec::integer("rate", "Compression rate c", "Evicted positions pooled into one slot; when c does not "
                           "divide n_s, the newest n_s mod c of each evicted chunk are dropped.",
                           4, 1, 1 << 10),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"segment", std::to_string(std::max<Index>(1, in.n()))}}, 1e-4,
                      "one segment holds every token (n_s = N): nothing reaches a memory"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(std::max<Index>(s.n, 1)), c = double(p.integer("rate"));
    // A segment or memory longer than the sequence holds the sequence.
    const double tokens = std::min(double(p.integer("segment")), n) + std::min(double(p.integer("memory")), n);
    planSummaries(r, s, tokens, std::min(double(p.integer("compressed")), n / c), n / c, options, "segment",
                  "lower segment or memory");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    if (in.m() != in.n()) throw UserError("the Compressive Transformer reads one sequence: it needs as many keys as queries");
    const Index n = in.n(), seg = p.integer("segment"), mem = p.integer("memory"), n_cm = p.integer("compressed");
    const Index c = p.integer("rate");
    const bool causal = options.causal;
    auto sp = timedStage(r.cost, options, "memories", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = s->tokens = n;
      s->level_names = {"current / memory", "compressed (" + std::to_string(c) + "→1)"};
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      const Index per_chunk = seg / c;  // slots f_c makes of one evicted chunk
      std::vector<std::int32_t> slot_id;  // by global slot number (chunk t', group k) → node
      for (Index start = 0; start < n; start += seg) {
        const Index end = std::min(n, start + seg), t = start / seg;
        // Compressed memory at segment t: the n_cm newest slots made after segments 0 … t−1, newest
        // first (chunk t' = t−1 … 0, group k = last … 0); a slot of positions < 0 only is padding,
        // and so is everything older.
        std::vector<std::int32_t> slots;
        for (Index g = t * per_chunk - 1; g >= 0 && Index(slots.size()) < n_cm; --g) {
          const Index lo = (g / per_chunk) * seg - mem + (g % per_chunk) * c, hi = lo + c;
          if (hi <= 0) break;
          if (size_t(g) >= slot_id.size()) slot_id.resize(size_t(g) + 1, -1);
          std::int32_t& id = slot_id[size_t(g)];
          if (id < 0) {
            id = std::int32_t(s->nodes.size());
            s->nodes.push_back({Range{std::max<Index>(0, lo), hi}, 1});
          }
          slots.push_back(id);
        }
        std::reverse(slots.begin(), slots.end());
        // Memory: the n_m positions before the segment (real ones only).
        for (Index i = start; i < end; ++i) {
          auto& keys = s->token_keys[size_t(i)];
          for (Index j = std::max<Index>(0, start - mem); j < (causal ? i + 1 : end); ++j)
            keys.push_back(std::int32_t(j));
          s->node_keys[size_t(i)] = slots;
        }
      }
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    std::vector<std::int32_t> segment(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) segment[size_t(i)] = std::int32_t(i / seg);
    r.explanation.groupings.push_back(Grouping::fromLabels("segments", std::move(segment), std::int32_t((n + seg - 1) / seg)));
    r.explanation.notes.push_back("a segment sees up to " + std::to_string(std::min(mem, n)) +
                                  " memory positions and up to " + std::to_string(n_cm) + " compressed slots of " +
                                  std::to_string(c) + " (covering up to " + std::to_string(n_cm * c) +
                                  " older positions)");
    if (seg % c != 0 && n > seg)
      r.explanation.notes.push_back("c = " + std::to_string(c) + " does not divide n_s = " + std::to_string(seg) +
                                    ": the newest " + std::to_string(seg % c) +
                                    " positions of each evicted chunk are dropped (f_c makes ⌊n_s/c⌋ slots)");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeCompressive() { return std::make_shared<Compressive>(); }
}  // namespace attn::mech
