// memory-compressed — Liu et al. 2018 (arXiv 1801.10198, "Generating Wikipedia"), CATALOG.md #1.
// Two layer types, interleaved in the paper's decoder:
//   compressed: K′ and V′ are K and V compressed c-fold by a strided convolution (kernel = stride = c);
//               every query attends to the N/c slots: O = softmax(s·Q·K′ᵀ)·V′;
//   local:      attention inside blocks of b tokens.
// Causal: a query sees a slot only once the slot's last position is ≤ i; a query with no complete slot
// yet sees a null slot (key 0, value 0), as the reference implementation's learned null key/value.
// Stand-in (CATALOG f): mean pooling for the convolution, so A_eff,ij = P̄_{i,⌊j/c⌋}/c exactly.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/mechanisms/summary_engine.h"

namespace attn::mech {
namespace {

class MemoryCompressed final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "memory-compressed", "Memory-compressed attention",
        "Liu et al. Generating Wikipedia by Summarizing Long Sequences", "1801.10198", 2018, Family::Memory,
        "O(N·(N/c)·d) compressed, O(N·b·d) local", CausalSupport::Yes,
        "Compress keys and values c-fold with a strided convolution and attend to the slots; alternate with "
        "attention inside local blocks.",
        "Mean pooling replaces the learned strided convolution; the null slot is a zero key and value.", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("layer", "Layer", "compressed: all queries attend to c-fold compressed keys/values; "
                          "local: attention inside blocks of b tokens", {"compressed", "local"}, 0),
        ParamSpec::integer("compression", "Compression c", "Kernel and stride of the compression (paper: 3).", 3, 1,
                           1 << 16, true),
        ParamSpec::integer("block", "Local block b", "Tokens per block of the local layer (paper: 256).", 256, 1,
                           1 << 20, true),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"layer", "compressed"}, {"compression", "1"}}, 1e-4, "no compression (c = 1)"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    if (p.choice("layer") == "local") {
      const double b = std::min(double(p.integer("block")), m);  // a block past the sequence is the sequence
      planPattern(r, s, n * b, b, "the local blocks (block × N pairs)", "block");
      return r;
    }
    const double slots = std::ceil(m / double(p.integer("compression"))) + 1;
    planSummaries(r, s, 0, slots, slots, options, "compression", "raise compression (fewer slots), or try a smaller N");
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    const bool causal = options.causal;
    if (p.choice("layer") == "local") {
      const Index b = p.integer("block");
      auto pattern = timedStage(r.cost, options, "pattern", [&] {
        PatternBuilder builder(n, m, causal);
        builder.add("block", [b, m](Index i, std::vector<Index>& out) {
          for (Index j = (i / b) * b; j < std::min(m, (i / b + 1) * b); ++j) out.push_back(j);
        });
        return std::make_shared<const Pattern>(builder.build(options));
      });
      attendPattern(in, pattern, backend, options, r);
      return r;
    }
    const Index c = p.integer("compression");
    auto sp = timedStage(r.cost, options, "compress", [&] {
      auto s = std::make_shared<SummaryPattern>();
      s->rows = n;
      s->tokens = m;
      s->level_names = {"token", "slot of " + std::to_string(c)};
      for (Index j = 0; j < m; j += c) s->nodes.push_back({Range{j, std::min(m, j + c)}, 1});
      const std::int32_t null_slot = std::int32_t(s->nodes.size());
      if (causal) s->nodes.push_back({Range{0, 0}, 1});  // empty span: key 0, value 0
      s->token_keys.resize(size_t(n));
      s->node_keys.resize(size_t(n));
      for (Index i = 0; i < n; ++i) {
        auto& slots = s->node_keys[size_t(i)];
        for (std::int32_t t = 0; t < null_slot; ++t)
          if (!causal || s->nodes[size_t(t)].span.end - 1 <= i) slots.push_back(t);
        if (slots.empty()) slots.push_back(null_slot);
      }
      return std::shared_ptr<const SummaryPattern>(std::move(s));
    });
    attendWithSummaries(in, sp, backend, options, r);
    r.explanation.notes.push_back(std::to_string((m + c - 1) / c) + " compressed slots of " + std::to_string(c) +
                                  " tokens");
    std::vector<std::int32_t> slot(static_cast<size_t>(m));
    for (Index j = 0; j < m; ++j) slot[size_t(j)] = std::int32_t(j / c);
    r.explanation.groupings.push_back(Grouping::fromLabels("slots", std::move(slot), std::int32_t((m + c - 1) / c)));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeMemoryCompressed() { return std::make_shared<MemoryCompressed>(); }
}  // namespace attn::mech
