// compressive — Rae, Potapenko, Jayakumar, Lillicrap 2019 (arXiv 1911.05507), CATALOG.md #15. The
// sequence is processed in segments of n_s tokens; a segment attends to [compressed memory; memory;
// itself] (causal within itself). The memory holds the n_m most recent past positions; positions
// that leave it are compressed c-fold into slots of the compressed memory, which keeps the n_cm most
// recent slots (older ones drop out). Stand-in (CATALOG f): f_c is mean pooling over c positions (the
// paper trains a convolution with an attention-reconstruction loss).
// Causal by construction; a non-causal run lets a segment see all of itself.
#include <algorithm>

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
        "Rae, Potapenko, Jayakumar, Lillicrap. Compressive Transformers for Long-Range Sequence Modelling",
        "1911.05507", 2019, Family::Memory, "O(n_s·(n_cm + n_m + n_s)·d) per segment", CausalSupport::Native,
        "Segments attend to a memory of recent positions and to a compressed memory of older ones, pooled "
        "c-fold as they age.",
        "Mean pooling replaces the learned compression function.", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("segment", "Segment n_s", "Tokens processed together.", 32, 1, 1 << 20, true),
        ParamSpec::integer("memory", "Memory n_m", "Most recent past positions kept uncompressed.", 32, 0, 1 << 20,
                           true),
        ParamSpec::integer("compressed", "Compressed slots n_cm", "Slots of the compressed memory.", 16, 0, 1 << 20,
                           true),
        ParamSpec::integer("rate", "Compression rate c", "Positions pooled into one slot (the paper: 2–4).", 4, 1,
                           1 << 10),
    };
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    if (in.m() != in.n()) throw UserError("the Compressive Transformer reads one sequence: it needs as many keys as queries");
    const Index n = in.n(), seg = p.integer("segment"), mem = p.integer("memory"), slots = p.integer("compressed");
    const Index c = p.integer("rate");
    const bool causal = options.causal;
    auto sp = timedStage(r.cost, options, "memories", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = s->tokens = n;
      s->level_names = {"current / memory", "compressed (" + std::to_string(c) + "→1)"};
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      std::vector<std::int32_t> slot_id(size_t((n + c - 1) / c), -1);
      for (Index i = 0; i < n; ++i) {
        const Index start = (i / seg) * seg, end = std::min(n, start + seg);
        const Index mem_begin = std::max<Index>(0, start - mem);
        for (Index j = mem_begin; j < (causal ? i + 1 : end); ++j) s->token_keys[size_t(i)].push_back(std::int32_t(j));
        // Compressed slots: the n_cm most recent whole c-groups that end at or before mem_begin.
        for (Index t = 0, g = mem_begin / c; t < slots && g > 0; ++t) {
          --g;
          std::int32_t& id = slot_id[size_t(g)];
          if (id < 0) {
            id = std::int32_t(s->nodes.size());
            s->nodes.push_back({Range{g * c, g * c + c}, 1});
          }
          s->node_keys[size_t(i)].push_back(id);
        }
        // Positions between the last whole group and the memory (when mem_begin is not a multiple of
        // c) have left the memory but are not compressed yet: they stay raw (the compression waits
        // for a whole group).
        for (Index j = (mem_begin / c) * c; j < mem_begin; ++j)
          if (slots > 0) s->token_keys[size_t(i)].insert(s->token_keys[size_t(i)].begin(), std::int32_t(j));
      }
      for (auto& row : s->token_keys) std::sort(row.begin(), row.end());
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    std::vector<std::int32_t> segment(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) segment[size_t(i)] = std::int32_t(i / seg);
    r.explanation.groupings.push_back(Grouping::fromLabels("segments", std::move(segment), std::int32_t((n + seg - 1) / seg)));
    r.explanation.notes.push_back("a segment sees up to " + std::to_string(std::min(mem, n)) +
                                  " memory positions and up to " + std::to_string(slots) + " compressed slots of " +
                                  std::to_string(c) + " (covering " + std::to_string(slots * c) + " older positions)");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeCompressive() { return std::make_shared<Compressive>(); }
}  // namespace attn::mech
