// sac — Li et al. 2020 (arXiv 2003.09833), CATALOG.md #21, Sparse Adaptive Connection: a learned edge
// predictor emits a budget of α·N edges (token pairs) and attention runs over them only, beside each
// token's self-loop, GAT-style. The predictor is trained with policy gradient and has no meaningful
// untrained stand-in (CATALOG f), so attnlab shows what edges of that budget can do:
//   oracle: the α·N pairs (i, j ≠ i) with the largest exact attention weights A*_ij. Mass recall is
//           (1/N)·Σ over the seen pairs of A*_ij, so these α·N pairs see the most exact mass any α·N
//           edges can: an upper bound on the mass recall of every predictor with this budget (a row may
//           get many edges, another none). It needs exact attention, O(N·M·d).
//   random: α·N pairs drawn uniformly: an uninformed baseline, not a bound (a learned predictor can do
//           worse than random as well as better).
// Causal: only pairs with j ≤ i, and the budget is α edges per query (the oracle: the α of largest causal
// exact weight): choosing the α·N pairs across all rows would let later tokens decide row i's edges.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <unordered_set>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

/// Keys row i may see besides itself: j < visible(i), j ≠ i.
struct Allowed {
  Index n = 0, m = 0;
  bool causal = false;
  Index visible(Index i) const { return causal ? std::min(m, i + 1) : m; }
  bool hasSelf(Index i) const { return i < visible(i); }
  Index count(Index i) const { return visible(i) - (hasSelf(i) ? 1 : 0); }
};

class Sac final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "sac", "SAC (sparse adaptive connection)", "Li et al. SAC: Accelerating and Structuring Self-Attention via "
        "Sparse Adaptive Connection", "2003.09833", 2020, Family::ContentSparse, "O(α·N·d)", CausalSupport::Yes,
        "A learned predictor picks α·N edges (token pairs) and attention runs over them and the self-loops "
        "only; shown with oracle edges (the most exact mass α·N edges can see) or random ones.",
        "No learned edge predictor: the oracle (the α·N pairs of largest exact weight, an upper bound on any "
        "predictor's mass recall) or α·N random pairs (an uninformed baseline, not a bound).",
        true,
        {"convention: a causal run gives each query α edges among earlier keys (α·N pairs chosen across rows "
         "would let later tokens decide row i's edges)"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("edges", "Edge set", "oracle: the α·N pairs with the largest exact attention weights (an "
                          "upper bound on the mass recall of any predictor with this budget; needs exact attention); "
                          "random: α·N uniformly random pairs (a baseline, not a bound)", {"oracle", "random"}, 0),
        ParamSpec::integer("alpha", "Edge budget α", "α·N edges in all, beside the N self-loops: α per token on "
                           "average, but one query may get many and another none (causal: α per query).", 8, 1,
                           1 << 20, true),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"alpha", std::to_string(std::min<Index>(1 << 20, in.m()))}}, 1e-4,
                      "α ≥ M − 1: the α·N edges cover every pair"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    // α·N edges, at most every pair (run() clamps the budget there and says so); each an Index while chosen
    // (grown by doubling; the oracle's heap holds them too), then the pattern.
    const double edges = std::min(double(p.integer("alpha")) * n, n * m);
    const bool oracle = p.choice("edges") == "oracle";
    r.add(edges * sizeof(Index) * (oracle ? 4 : 2) + (oracle ? 64 * m * sizeof(float) * 2 : 0.0),
          "the edges (alpha × N, at most N × M)", "alpha");
    planPattern(r, s, edges + n, std::min(m, double(p.integer("alpha")) + 1), "the edge pattern (alpha × N pairs)",
                "alpha");
    if (oracle) r.flops += 2.0 * n * m * double(s.d);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m(), alpha = p.integer("alpha");
    const bool oracle = p.choice("edges") == "oracle", causal = options.causal;
    const Allowed allowed{n, m, causal};
    std::vector<std::int64_t> offset(size_t(n) + 1, 0);  // pairs of the rows before i
    for (Index i = 0; i < n; ++i) offset[size_t(i + 1)] = offset[size_t(i)] + allowed.count(i);
    const std::int64_t total = offset[size_t(n)];
    // Causal: α per query; else α·N in all.
    std::int64_t budget = 0;
    for (Index i = 0; causal && i < n; ++i) budget += std::min(alpha, allowed.count(i));
    if (!causal) budget = std::min<std::int64_t>(std::int64_t(alpha) * std::int64_t(n), total);
    std::vector<std::vector<Index>> edges(static_cast<size_t>(n));
    timedStage(r.cost, options, oracle ? "oracle edges" : "random edges", [&] {
      if (budget == total) {  // every pair
        for (Index i = 0; i < n; ++i)
          for (Index j = 0; j < allowed.visible(i); ++j)
            if (j != i) edges[size_t(i)].push_back(j);
      } else if (causal) {
        perQueryEdges(in, allowed, alpha, oracle, backend, options, edges);
      } else if (oracle) {
        oracleEdges(in, allowed, budget, backend, options, edges);
      } else {
        randomEdges(allowed, offset, budget, options.seed, edges);
      }
    });
    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      PatternBuilder b(n, m, causal);
      b.add("self-loop", [](Index i, std::vector<Index>& out) { out.push_back(i); });
      b.add(oracle ? "oracle edge" : "random edge", [&edges](Index i, std::vector<Index>& out) {
        out.insert(out.end(), edges[size_t(i)].begin(), edges[size_t(i)].end());
      });
      return std::make_shared<const Pattern>(b.build(options));
    });
    attendPattern(in, pattern, backend, options, r);
    size_t fewest = n > 0 ? edges[0].size() : 0, most = fewest;
    for (const auto& e : edges) {
      fewest = std::min(fewest, e.size());
      most = std::max(most, e.size());
    }
    r.explanation.notes.push_back(
        std::to_string(budget) + " edges (" +
        (causal ? std::string("causal: α per query, fewer where fewer earlier keys exist")
                : std::string("α·N") + (budget < std::int64_t(alpha) * std::int64_t(n) ? ", clamped to every pair" : "")) +
        ") beside the self-loops: " + std::to_string(fewest) + " … " + std::to_string(most) + " per query");
    r.explanation.notes.push_back(oracle ? "oracle edges: the pairs of largest exact weight — the most exact mass this "
                                           "budget can see (an upper bound on a learned predictor's mass recall)"
                                         : "random edges: an uninformed baseline, not a bound (a learned predictor "
                                           "can do worse or better)");
    if (oracle) r.cost.flops += 2.0 * double(n) * double(m) * double(in.q.cols());  // the oracle's scoring
    return r;
  }

 private:
  /// Causal: α edges per query among its earlier keys (j < i), the α of largest exact score (oracle) or α
  /// drawn uniformly (random): row i's edges depend on tokens ≤ i only.
  static void perQueryEdges(const Inputs& in, const Allowed& allowed, Index alpha, bool oracle, Backend& backend,
                            const RunOptions& options, std::vector<std::vector<Index>>& edges) {
    std::vector<Index> idx;
    if (!oracle) {
      Rng rng(options.seed, 21);
      for (Index i = 0; i < allowed.n; ++i) {
        idx.resize(size_t(allowed.count(i)));
        std::iota(idx.begin(), idx.end(), 0);  // j < i (the self-loop is separate)
        const Index take = std::min(alpha, Index(idx.size()));
        for (Index t = 0; t < take; ++t)
          std::swap(idx[size_t(t)], idx[size_t(t + Index(rng.below(std::uint64_t(Index(idx.size()) - t))))]);
        edges[size_t(i)].assign(idx.begin(), idx.begin() + take);
      }
      return;
    }
    constexpr Index kRows = 256;  // scores a block of queries at a time (never N×M at once)
    for (Index i0 = 0; i0 < allowed.n; i0 += kRows) {
      const Index rows = std::min(kRows, allowed.n - i0);
      const Matrix scores = backend.matmul(in.q.middleRows(i0, rows), in.k, true);
      for (Index rr = 0; rr < rows; ++rr) {
        const Index i = i0 + rr;
        idx.resize(size_t(allowed.count(i)));
        std::iota(idx.begin(), idx.end(), 0);
        const Index take = std::min(alpha, Index(idx.size()));
        std::partial_sort(idx.begin(), idx.begin() + take, idx.end(), [&](Index a, Index b) {
          return scores(rr, a) > scores(rr, b) || (scores(rr, a) == scores(rr, b) && a < b);
        });
        edges[size_t(i)].assign(idx.begin(), idx.begin() + take);
      }
      options.checkCancel();
    }
  }

  /// The `budget` allowed pairs with the largest exact weights (ties: the smaller i, then j), scored a block
  /// of rows at a time (never N×M at once) and kept in a min-heap of `budget` entries.
  static void oracleEdges(const Inputs& in, const Allowed& allowed, std::int64_t budget, Backend& backend,
                          const RunOptions& options, std::vector<std::vector<Index>>& edges) {
    struct Entry {
      float w;
      std::int32_t i, j;
    };
    // "better": larger weight, then smaller (i, j); the heap's top is the worst kept entry.
    const auto better = [](const Entry& a, const Entry& b) {
      return a.w > b.w || (a.w == b.w && (a.i < b.i || (a.i == b.i && a.j < b.j)));
    };
    std::priority_queue<Entry, std::vector<Entry>, decltype(better)> heap(better);
    const float scale = defaultScale(in.q.cols());
    constexpr Index kRows = 256;
    for (Index i0 = 0; i0 < allowed.n; i0 += kRows) {
      const Index rows = std::min(kRows, allowed.n - i0);
      const Matrix scores = backend.matmul(in.q.middleRows(i0, rows), in.k, true);
      for (Index rr = 0; rr < rows; ++rr) {
        const Index i = i0 + rr, visible = allowed.visible(i);
        if (visible == 0) continue;
        Eigen::ArrayXf w = scores.row(rr).head(visible).transpose().array() * scale;
        w = (w - w.maxCoeff()).exp();
        w /= w.sum();
        for (Index j = 0; j < visible; ++j) {
          if (j == i) continue;
          const Entry e{w(j), std::int32_t(i), std::int32_t(j)};
          if (std::int64_t(heap.size()) < budget) {
            heap.push(e);
          } else if (better(e, heap.top())) {
            heap.pop();
            heap.push(e);
          }
        }
      }
      options.checkCancel();
    }
    for (; !heap.empty(); heap.pop()) edges[size_t(heap.top().i)].push_back(heap.top().j);
  }

  /// `budget` distinct allowed pairs, uniformly (Floyd's sampling over the pair index, or of the pairs
  /// left out when the budget is more than half of them).
  static void randomEdges(const Allowed& allowed, const std::vector<std::int64_t>& offset, std::int64_t budget,
                          std::uint64_t seed, std::vector<std::vector<Index>>& edges) {
    const std::int64_t total = offset.back();
    const bool complement = budget > total / 2;
    const std::int64_t draw = complement ? total - budget : budget;
    Rng rng(seed, 21);
    std::unordered_set<std::int64_t> chosen;
    chosen.reserve(size_t(draw));
    for (std::int64_t t = total - draw; t < total; ++t) {
      const std::int64_t pick = std::int64_t(rng.below(std::uint64_t(t + 1)));
      if (!chosen.insert(pick).second) chosen.insert(t);
    }
    const auto pairOf = [&](std::int64_t t, Index i) {
      const Index rank = Index(t - offset[size_t(i)]);
      return allowed.hasSelf(i) && rank >= i ? rank + 1 : rank;
    };
    if (!complement) {
      for (const std::int64_t t : chosen) {
        const Index i = Index(std::upper_bound(offset.begin(), offset.end(), t) - offset.begin()) - 1;
        edges[size_t(i)].push_back(pairOf(t, i));
      }
      for (auto& e : edges) std::sort(e.begin(), e.end());  // the set's order is not the seed's
      return;
    }
    for (Index i = 0; i < allowed.n; ++i)
      for (std::int64_t t = offset[size_t(i)]; t < offset[size_t(i + 1)]; ++t)
        if (!chosen.count(t)) edges[size_t(i)].push_back(pairOf(t, i));
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSac() { return std::make_shared<Sac>(); }
}  // namespace attn::mech
