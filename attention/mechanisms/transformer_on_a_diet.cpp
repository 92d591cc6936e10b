// transformer-on-a-diet — Wang, Ye, Zhang, Zhang, Smola 2020 (arXiv 2002.06170), CATALOG.md #19: causal LM masks on
// standard attention, per layer ℓ (0-based) of a stack of L:
//   dilated:         i attends to {i, i − b^ℓ, …, i − (k−1)·b^ℓ} (kernel k, base b: WaveNet-like);
//   dilated-memory:  the union of the dilated sets of layers 0..ℓ;
//   cascade:         a causal window of w_ℓ = w₀·m^ℓ tokens.
// One run computes layer ℓ's mask; the steps show every layer's mask and the receptive field of the
// whole stack (composed with residual connections), which grows exponentially with depth.
// Bidirectional variant (non-causal runs): the same offsets on both sides.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

struct DietShape {
  std::string variant;
  Index kernel, base, w0, growth;
};

Index ipow(Index b, Index e) {
  Index r = 1;
  while (e-- > 0) r = std::min<Index>(r * b, Index(1) << 40);
  return r;
}

Pattern dietMask(const DietShape& s, Index layer, Index n, Index m, bool causal, const RunOptions& options) {
  PatternBuilder b(n, m, causal);
  auto dilated = [s, causal](Index l, Index i, std::vector<Index>& out) {
    const Index step = ipow(s.base, l);
    for (Index t = 0; t < s.kernel; ++t) {
      out.push_back(i - t * step);
      if (!causal) out.push_back(i + t * step);
    }
  };
  if (s.variant == "dilated") {
    b.add("dilated", [=](Index i, std::vector<Index>& out) { dilated(layer, i, out); });
  } else if (s.variant == "dilated-memory") {
    b.add("dilated", [=](Index i, std::vector<Index>& out) {
      for (Index l = 0; l <= layer; ++l) dilated(l, i, out);
    });
  } else {
    const Index w = std::min<Index>(s.w0 * ipow(s.growth, layer), Index(1) << 40);
    b.add("window", [w, causal, m](Index i, std::vector<Index>& out) {
      const Index lo = std::max<Index>(0, i - w + 1), hi = std::min(m - 1, causal ? i : i + w - 1);
      for (Index j = lo; j <= hi; ++j) out.push_back(j);
    });
  }
  return b.build(options);
}

class TransformerOnADiet final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "transformer-on-a-diet", "Transformer on a Diet",
        "Wang, Ye, Zhang, Zhang, Smola. Transformer on a Diet", "2002.06170", 2020, Family::FixedSparse,
        "O(N·k·d) (dilated), O(N·k·(ℓ+1)·d) (dilated-memory), O(N·w_ℓ·d) (cascade)", CausalSupport::Native,
        "Per-layer causal masks: k positions with the dilation growing b-fold per layer (WaveNet-like), their "
        "union over the layers so far, or a window that widens per layer; depth buys an exponentially wide "
        "receptive field.",
        "",
        true,
        {"convention: the bidirectional form (the same offsets or window on both sides) is attnlab's; the "
         "paper's masks are causal"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"variant", "cascade"}, {"w0", std::to_string(std::max(in.n(), in.m()))}}, 1e-4,
                      "a cascade window w₀ ≥ N: every layer's window holds every key"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Mask", "dilated, dilated-memory (union of the layers so far) or cascade "
                          "(widening window)", {"dilated", "dilated-memory", "cascade"}, 0),
        ParamSpec::integer("layer", "Layer ℓ", "Which layer's mask this run computes (0-based).", 2, 0, 30),
        ParamSpec::integer("layers", "Layers L", "Depth of the stack shown in the receptive-field view (PTB: 3).",
                           3, 1, 30),
        ParamSpec::integer("kernel", "Kernel k", "dilated: positions per layer.", 3, 1, 64),
        ParamSpec::integer("base", "Dilation base b", "dilated: the dilation of layer ℓ is b^ℓ.", 2, 1, 16),
        ParamSpec::integer("w0", "First window w₀", "cascade: window of layer 0.", 4, 1, 1 << 20, true),
        ParamSpec::integer("growth", "Window growth m", "cascade: w_ℓ = w₀·m^ℓ.", 2, 1, 16),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    const std::string variant = p.choice("variant");
    const Index layers = p.integer("layers"), layer = std::min(p.integer("layer"), layers - 1);
    // Keys per row of layer l on both sides, cut at the sequence.
    const auto keys = [&](Index l) {
      const double k = double(p.integer("kernel"));
      if (variant == "dilated") return std::min(2 * k, m);
      if (variant == "dilated-memory") return std::min(2 * k * double(l + 1), m);
      return std::min(2 * double(p.integer("w0")) * std::pow(double(p.integer("growth")), double(l)) + 1, m);
    };
    const std::string parameter = variant == "cascade" ? "w0" : "kernel";
    planPattern(r, s, n * keys(layer), keys(layer), "the layer's mask (N × its keys per row)", parameter);
    if (options.explain && s.n == s.m && s.n <= 8192) {  // every layer's mask and the receptive field they reach
      double masks = 0;
      for (Index l = 0; l < layers; ++l) masks += n * keys(l);
      r.add(2 * patternBytes(masks, n * double(layers)), "the layers' masks (formed to be seen)", "layers");
      // The receptive field: a row reaches at most the product of the layers' key counts (with residuals).
      double reach = 1;
      for (Index l = 0; l < layers; ++l) reach = std::min(m, reach * (keys(l) + 1));
      planTwoHops(r, s, 0, options, std::min(n * reach, double(Index(1) << 25)));
    }
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    const DietShape s{p.choice("variant"), p.integer("kernel"), p.integer("base"), p.integer("w0"),
                      p.integer("growth")};
    const Index layers = p.integer("layers");
    Index layer = p.integer("layer");
    if (layer >= layers) {
      r.explanation.notes.push_back("layer clamped to " + std::to_string(layers - 1) + " (the stack has " +
                                    std::to_string(layers) + " layers)");
      layer = layers - 1;
    }
    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      return std::make_shared<const Pattern>(dietMask(s, layer, n, m, options.causal, options));
    });
    attendPattern(in, pattern, backend, options, r);
    r.explanation.notes.push_back("layer " + std::to_string(layer) + " of " + std::to_string(layers));
    if (options.explain && n == m && n <= 8192)
      displayStage(r.cost, options, "receptive field", [&] {
        std::optional<Pattern> reach;
        for (Index l = 0; l < layers; ++l) {
          Pattern mask = dietMask(s, l, n, m, options.causal, options);
          reach = reach ? composePatterns(*reach, mask, Index(1) << 25, true) : std::optional<Pattern>(mask);
          r.explanation.steps.push_back(
              patternStep("Layer " + std::to_string(l), s.variant + " mask", std::move(mask)));
          if (!reach) break;
        }
        if (reach) {
          reach->components = {"receptive field"};
          r.explanation.steps.push_back(patternStep(
              "Receptive field", "what the stack of " + std::to_string(layers) + " layers reaches (with residuals)",
              std::move(*reach)));
        }
      });
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeTransformerOnADiet() { return std::make_shared<TransformerOnADiet>(); }
}  // namespace attn::mech
