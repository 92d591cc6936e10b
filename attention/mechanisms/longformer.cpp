// longformer — Beltagy, Peters, Cohan 2020 (arXiv 2004.05150). Each query attends to a sliding window
// of keys j = i + δ·t, |t| ≤ w/2 (dilation δ), plus a set of global tokens that attend to everything
// and are attended by everything. Causal (char-LM) form: a left-only window j = i − δ·t, 0 ≤ t ≤ w,
// and no global tokens. Stand-in: the paper's separate global projections Q_g, K_g, V_g are learned;
// here the global tokens reuse the ordinary projections (CATALOG.md #24 f). Global tokens are the first
// `globals` positions (the [CLS]-style choice), spread evenly, or at both ends (`placement`).
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

class Longformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "longformer", "Longformer", "Beltagy, Peters, Cohan. Longformer: The Long-Document Transformer",
        "2004.05150", 2020, Family::FixedSparse, "O(N·(w+g)·d)", CausalSupport::Yes,
        "A sliding (optionally dilated) window around each token, plus a few global tokens that see and are "
        "seen by all.",
        "Global tokens reuse the ordinary Q, K, V projections instead of learned global projections.", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("window", "Window w", "Keys within w/2 positions on each side (causal: w to the left).",
                           64, 1, 1 << 20, true),
        ParamSpec::integer("dilation", "Dilation δ", "Gap between window keys: j = i ± δ·t (on the dilated "
                           "heads). 1 is a plain window.", 1, 1, 256),
        ParamSpec::integer("heads", "Heads", "Attention heads of the layer (per-head dilation); the view shows "
                           "one of them.", 1, 1, 16),
        ParamSpec::integer("dilated_heads", "Dilated heads", "How many heads (the first ones) use the dilation δ; "
                           "the others use a plain window (the paper dilates a few heads of the upper layers).",
                           16, 0, 16),
        ParamSpec::integer("head", "Head shown", "Which head this run computes and shows (0-based).", 0, 0, 15),
        ParamSpec::integer("globals", "Global tokens", "g tokens attend to all and are attended by all "
                           "(ignored in causal mode).", 2, 0, 4096)
            .withCausalNote("causal mode has no global tokens (as in the paper's char-LM)"),
        ParamSpec::choice("placement", "Global placement", "Which tokens are global: the first g (a [CLS] token, a "
                          "question), g spread evenly over the sequence, or the first and last g/2.",
                          {"first", "spread", "ends"}, 0),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"window", std::to_string(2 * std::max(in.n(), in.m()))}, {"dilation", "1"}}, 1e-4,
                      "a window covering the sequence (w ≥ 2N)"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    // A window wider than the sequence adds no key: each row holds at most min(w + 1, M) window keys.
    const double keys = double(std::min<Index>(p.integer("window") + 1, s.m));
    const double g = options.causal ? 0.0 : double(std::min<Index>(p.integer("globals"), std::min(s.n, s.m)));
    const double heads = double(p.integer("heads"));
    const double entries = std::min(double(s.n) * (keys + g) + g * double(s.m), double(s.n) * double(s.m));
    // The pattern while it is built and its copy in the explanation; one more window per head beside it.
    const double window_entries = double(s.n) * keys * (3 + (heads > 1 ? heads : 0));
    r.add(patternBytes(window_entries, double(s.n) * (3 + heads)), "the window pairs (window × heads × N entries)",
          "window",
          "lower window (the sequence is covered at window = " + std::to_string(2 * std::max(s.n, s.m)) + ") or heads");
    r.add(patternBytes(3 * (entries - double(s.n) * keys), 0), "the global tokens' rows and columns (2 × globals × N)",
          "globals");
    r.add(sparseWorkspaceBytes(std::min(keys + g, double(s.m)), s), "the attention's working rows", "window");
    r.flops = 2 * entries * double(s.d + s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    const Index w = p.integer("window"), heads = p.integer("heads");
    const Index dilated_heads = std::min(p.integer("dilated_heads"), heads);
    Index head = p.integer("head");
    if (head >= heads) {
      r.explanation.notes.push_back("head clamped to " + std::to_string(heads - 1));
      head = heads - 1;
    }
    if (w > 2 * std::max(n, m))  // the pattern holds only keys inside the sequence: it costs what w = 2N costs
      r.explanation.notes.push_back("window " + std::to_string(w) + " covers the sequence (as any w ≥ 2N = " +
                                    std::to_string(2 * std::max(n, m)) + ")");
    auto dilationOf = [&](Index h) { return h < dilated_heads ? p.integer("dilation") : Index(1); };
    const Index dilation = dilationOf(head);
    Index g = std::min<Index>(p.integer("globals"), std::min(n, m));
    if (options.causal && g > 0) {
      r.explanation.notes.push_back("causal mode has no global tokens (as in the paper's char-LM)");
      g = 0;
    }
    if (p.integer("globals") > g && !options.causal)
      r.explanation.notes.push_back("globals clamped to " + std::to_string(g) + " (the number of tokens)");

    // The global positions (among the first min(N, M) tokens, which are both queries and keys).
    std::vector<Index> global;
    const std::string placement = p.choice("placement");
    const Index both = std::min(n, m);
    for (Index t = 0; t < g; ++t) {
      if (placement == "spread") global.push_back(t * both / g);
      else if (placement == "ends") global.push_back(t < (g + 1) / 2 ? t : both - (g - t));
      else global.push_back(t);
    }
    std::sort(global.begin(), global.end());
    global.erase(std::unique(global.begin(), global.end()), global.end());
    std::vector<char> is_global(static_cast<size_t>(n), 0);
    for (Index j : global) is_global[size_t(j)] = 1;

    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      PatternBuilder b(n, m, false);  // the causal window is left-only by construction
      // Global rows see every key; every row sees the global columns (global wins over window).
      b.add("global", [&global, &is_global, m](Index i, std::vector<Index>& out) {
        if (is_global[size_t(i)])
          for (Index j = 0; j < m; ++j) out.push_back(j);
        else
          out.insert(out.end(), global.begin(), global.end());
      });
      const Index lo = options.causal ? -w : -(w / 2), hi = options.causal ? 0 : w / 2;
      b.add("window", [lo, hi, dilation, m](Index i, std::vector<Index>& out) {
        // Only the t whose key i + δ·t lies in 0…M−1 (a window wider than the sequence costs nothing).
        const Index t0 = std::max(lo, -(i / dilation)), t1 = std::min(hi, (m - 1 - i) >= 0 ? (m - 1 - i) / dilation : -1);
        for (Index t = t0; t <= t1; ++t) out.push_back(i + dilation * t);
      });
      return std::make_shared<const Pattern>(b.build(options));
    });
    attendPattern(in, pattern, backend, options, r);
    if (heads > 1) {
      r.explanation.notes.push_back("head " + std::to_string(head) + " of " + std::to_string(heads) + ", dilation " +
                                    std::to_string(dilation));
      for (Index h = 0; h < heads; ++h) {  // every head's window, for the per-head view
        PatternBuilder b(n, m, false);
        const Index dh = dilationOf(h);
        const Index lo = options.causal ? -w : -(w / 2), hi = options.causal ? 0 : w / 2;
        b.add("window (δ = " + std::to_string(dh) + ")", [lo, hi, dh, m](Index i, std::vector<Index>& out) {
          const Index t0 = std::max(lo, -(i / dh)), t1 = std::min(hi, (m - 1 - i) >= 0 ? (m - 1 - i) / dh : -1);
          for (Index t = t0; t <= t1; ++t) out.push_back(i + dh * t);
        });
        r.explanation.steps.push_back(mech::patternStep("Head " + std::to_string(h), "dilation " + std::to_string(dh),
                                                        b.build(options)));
      }
    }
    if (!global.empty()) r.explanation.special.push_back(TokenSet{"global tokens", "global", global, {}, {}});
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeLongformer() { return std::make_shared<Longformer>(); }
}  // namespace attn::mech
