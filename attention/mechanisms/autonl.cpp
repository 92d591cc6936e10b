// autonl — Li et al. 2020 (arXiv 2004.01961), CATALOG.md #23, Neural Architecture Search for Lightweight
// Non-Local Networks: the LightNL block. The tokens are an H×W grid in raster order.
//  - No embedding convs and no softmax: θ = the first c = ⌊r·d⌋ channels of the queries, φ = the first c
//    channels of the keys at the pixels of a stride-s grid (y ≡ 0, x ≡ 0 mod s: the code's l[:, ::s, ::s]),
//    g = the values at the same pixels; f = θ·φᵀ·g / (H·W).
//  - The multiplication order is chosen by cost, as LiYingwei/AutoNL model_def.py non_local_op does: with M
//    grid pixels, (θφᵀ)g costs N·M·(c + dv) multiply-adds and θ(φᵀg) costs (N + M)·c·dv; the quadratic order is
//    taken only when it is strictly cheaper (a tie goes to the linear order, as in the code). The two orders
//    are the same operator: only rounding differs.
//  - A_eff = θ·φ̂ᵀ with φ̂ = φ/(H·W) at the grid pixels and 0 elsewhere: a Linear WeightKernel, tiled on the
//    backend. Entries can be negative; rows do not sum to 1.
// Backend: two matmuls in either order (φ is scaled by 1/(H·W) first, so no intermediate exceeds the output's
// scale); no new shader.
// Stand-ins: the depthwise 3×3 conv and the BN after f are identities and the residual is left out (with
// BN's γ at its zero initialisation, nl_zero_init, the block is the identity at the start of training).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/low_rank.h"

namespace attn::mech {
namespace {

constexpr Index kMaxAffinityShown = Index(1) << 22;  // θφ̂ᵀ shown as a factor up to this many entries

/// Multiply-adds of the two orders for N queries, M grid keys, c channels, dv value columns.
struct OrderCost {
  double quadratic = 0;  ///< (θφᵀ)g: N·M·(c + dv)
  double linear = 0;     ///< θ(φᵀg): (N + M)·c·dv
};
OrderCost orderCost(double n, double m, double c, double dv) { return {n * m * (c + dv), (n + m) * c * dv}; }

/// The stride-s grid of pixels: rows 0, s, 2s, … of columns 0, s, 2s, …, in raster order.
std::vector<Index> keyGrid(const Grid& g, Index stride) {
  std::vector<Index> keys;
  for (Index y = 0; y < g.h; y += stride)
    for (Index x = 0; x < g.w; x += stride) keys.push_back(y * g.w + x);
  return keys;
}
Index keyGridSize(const Grid& g, Index stride) { return ((g.h + stride - 1) / stride) * ((g.w + stride - 1) / stride); }

Index channelsOf(double ratio, Index d) { return std::clamp<Index>(Index(std::floor(ratio * double(d))), 1, d); }

std::string formatted(const char* format, double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}
std::string count(double x) { return formatted("%.0f", x); }

class Autonl final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "autonl",
        "AutoNL lightweight non-local",
        "Li, Jin, Mei, Lian, Yang, Xie, Yu, Zhou, Bai, Yuille. Neural Architecture Search for Lightweight Non-Local "
        "Networks",
        "2004.01961",
        2020,
        Family::LowRankKernel,
        "O(min(N·M·(r·d + dv), (N + M)·r·d·dv)), M = N/s²",
        CausalSupport::No,
        "No softmax and no embeddings: f = θ·φᵀ·g/N on the first r·d channels and a stride-s grid of keys, "
        "multiplied in whichever order costs fewer FLOPs (associativity).",
        "the depthwise 3×3 conv and BN after f are identities and the residual is left out (BN's γ starts at 0, so "
        "the trained block starts as the identity)",
        false,
        {"convention: M counts the grid's pixels, ⌈H/s⌉·⌈W/s⌉, in the FLOP rule; the official code counts "
         "⌊H/s⌋·⌊W/s⌋ though it takes l[::s, ::s]",
         "convention: θ, φ take the first ⌊r·d⌋ channels of Q and K and g is V (the code's shared X); at least 1 "
         "channel",
         "convention: defaults r = 0.25, s = 2 (attnlab's); the code's bare `nonlocal` is r = 1, s = 1 and the "
         "searched values ship in the models' arch.txt"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::real("ratio", "Channel ratio r",
                        "θ and φ take the first ⌊r·d⌋ channels of Q and K (at least "
                        "one); the NAS searches r.",
                        0.25, 0.01, 1),
        ParamSpec::integer("stride", "Key stride s",
                           "Keys and values at every s-th pixel in both directions "
                           "(⌈H/s⌉·⌈W/s⌉ of them); the NAS searches s.",
                           2, 1, 1 << 12),
        ParamSpec::choice("order", "Multiplication order",
                          "auto: the cheaper of (θφᵀ)g and θ(φᵀg) by their FLOP "
                          "counts (the official rule); linear or quadratic forces one.",
                          {"auto", "linear", "quadratic"}, 0),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    const Grid g = gridFor(n, p.integer("width"), "AutoNL");
    const Index stride = std::max<Index>(p.integer("stride"), 1);
    const double dn = double(n), m = double(keyGridSize(g, stride)), dv = double(s.dv);
    const double c = double(channelsOf(p.number("ratio"), std::max<Index>(s.d, 1)));
    const bool quadratic = quadraticOrder(p.choice("order"), orderCost(dn, m, c, dv));
    r.add(dn * dv * sizeof(float), "the output (N × dv floats)");
    r.add((2 * dn * c + 2 * m * (c + dv)) * sizeof(float), "θ, the weights' φ̂ and the grid's φ and g (N × r·d)",
          "ratio");
    const bool shown = options.explain && dn * m <= double(kMaxAffinityShown);
    if (quadratic)
      r.add(dn * m * sizeof(float) * (shown ? 3 : 1),
            "the affinity θφᵀ (N × M floats, the quadratic order)", "stride", "raise stride, or set order to linear");
    else
      r.add(2 * c * dv * sizeof(float), "the context φᵀg (r·d × dv floats, the linear order)", "ratio");
    if (options.explain && dn * dn <= double(Index(1) << 20))
      r.add(dn * dn * sizeof(float), "the implied N × N matrix shown (up to 2²⁰ entries)");
    const OrderCost cost = orderCost(dn, m, c, dv);
    r.flops = 2 * (quadratic ? cost.quadratic : cost.linear);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "AutoNL");
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
    const Index stride = std::max<Index>(p.integer("stride"), 1);
    const Index c = channelsOf(p.number("ratio"), d);
    if (std::floor(p.number("ratio") * double(d)) < 1)
      r.explanation.notes.push_back("ratio: r·d = " + formatted("%.3g", p.number("ratio") * double(d)) +
                                    " channels rounds to 0; using 1");
    const std::vector<Index> grid = keyGrid(g, stride);
    const Index m = Index(grid.size());
    const OrderCost cost = orderCost(double(n), double(m), double(c), double(dv));
    const std::string& asked = p.choice("order");
    const bool quadratic = quadraticOrder(asked, cost);

    // θ, φ̂ = φ/(H·W) and g: slices and a gather (O(N·d) host work).
    auto theta = std::make_shared<Matrix>(in.q.leftCols(c));
    Matrix phi(m, c), values(m, dv);
    timedStage(r.cost, options, "key grid", [&] {
      const float inv_n = 1.0f / float(n);
      for (Index t = 0; t < m; ++t) {
        phi.row(t) = in.k.row(grid[size_t(t)]).leftCols(c) * inv_n;
        values.row(t) = in.v.row(grid[size_t(t)]);
      }
    });
    Matrix affinity, context;
    if (quadratic) {
      affinity = timedStage(r.cost, options, "affinity θφᵀ/N", [&] { return backend.matmul(*theta, phi, true); });
      r.output = timedStage(r.cost, options, "(θφᵀ/N)·g", [&] { return backend.matmul(affinity, values, false); });
    } else {
      const Matrix phi_t = phi.transpose();
      context = timedStage(r.cost, options, "context φᵀg/N", [&] { return backend.matmul(phi_t, values, false); });
      r.output = timedStage(r.cost, options, "θ·(φᵀg/N)", [&] { return backend.matmul(*theta, context, false); });
    }
    auto keys = std::make_shared<Matrix>(Matrix::Zero(n, c));
    for (Index t = 0; t < m; ++t) keys->row(grid[size_t(t)]) = phi.row(t);
    r.explanation.weights = productWeights(theta, keys);

    r.cost.scored_pairs = quadratic ? double(n) * double(m) : double(n + m) * double(c);
    r.cost.flops = 2 * (quadratic ? cost.quadratic : cost.linear);
    r.cost.peak_bytes =
        backend.peakBytes() + (2 * n * c + m * (c + dv) + (quadratic ? n * m : c * dv) + n * dv) * Index(sizeof(float));

    const std::string order_name = quadratic ? "quadratic (θφᵀ)g" : "linear θ(φᵀg)";
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back("order: " + order_name + (asked == "auto" ? " (auto)" : " (forced)") + "; " +
                                  count(cost.quadratic) + " multiply-adds for (θφᵀ)g, " + count(cost.linear) +
                                  " for θ(φᵀg)");
    r.explanation.notes.push_back("key grid: " + std::to_string(m) + " of " + std::to_string(n) + " pixels at stride " +
                                  std::to_string(stride) + "; θ, φ: " + std::to_string(c) + " of " + std::to_string(d) +
                                  " channels");
    r.explanation.notes.push_back(
        "a different operator (no softmax): entries of A_eff = θφᵀ/N may be negative and rows "
        "do not sum to 1");
    r.explanation.special.push_back(TokenSet{"key grid", "key grid", grid, {}, {}});
    if (!options.explain) return r;

    auto grid_view = std::make_shared<Explanation>();
    grid_view->special.push_back(r.explanation.special.front());
    r.explanation.steps.push_back(Step{"key grid",
                                       "φ and g: the keys and values of " + std::to_string(m) + " pixels, every " +
                                           std::to_string(stride) + "-th in both directions",
                                       std::move(grid_view), ""});
    if (quadratic) {
      if (n * m <= kMaxAffinityShown)
        r.explanation.factors.push_back(
            {"affinity θφᵀ/N", "N × M, no softmax (the quadratic order forms it)", affinity});
      r.explanation.steps.push_back(factorStep("affinity first",
                                               "(θφᵀ/N) is N × M: " + count(cost.quadratic) +
                                                   " multiply-adds in all, against θ(φᵀg)'s " + count(cost.linear),
                                               {"θφᵀ/N", "N × M", n * m <= kMaxAffinityShown ? affinity : Matrix()}));
    } else {
      r.explanation.factors.push_back(
          {"context φᵀg/N", "r·d × dv: what every query reads (the linear order)", context});
      r.explanation.steps.push_back(factorStep("context first",
                                               "φᵀg/N is r·d × dv: " + count(cost.linear) +
                                                   " multiply-adds in all, against (θφᵀ)g's " + count(cost.quadratic),
                                               {"φᵀg/N", "r·d × dv", context}));
    }
    r.explanation.steps.push_back(weightsStep("implied weights", "A_eff = θφᵀ/N on the key grid, 0 at the other pixels",
                                              r.explanation.weights, "A_eff"));
    return r;
  }

 private:
  static bool quadraticOrder(const std::string& asked, const OrderCost& cost) {
    if (asked == "quadratic") return true;
    if (asked == "linear") return false;
    return cost.quadratic < cost.linear;  // a tie takes the linear order, as the official rule does
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeAutonl() { return std::make_shared<Autonl>(); }
}  // namespace attn::mech
