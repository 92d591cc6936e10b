// sac — Li et al. 2020 (arXiv 2003.09833), CATALOG.md #21, Sparse Adaptive Connection: attention runs
// over a budget of α·N predicted edges (plus self-loops), GAT-style. The edge predictor is learned
// with policy gradient and has no meaningful untrained stand-in (CATALOG f), so attnlab shows the two
// bounds a learned predictor lies between, both labelled idealised:
//   oracle: each query's top-α keys by its exact score (what a perfect predictor would pick);
//   random: α random keys per query (what an uninformed one would).
// Causal: only edges with j ≤ i.
#include <algorithm>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

class Sac final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "sac", "SAC (sparse adaptive connection)", "Li et al. SAC: Accelerating and Structuring Self-Attention via "
        "Sparse Adaptive Connection", "2003.09833", 2020, Family::ContentSparse, "O(α·N·d)", CausalSupport::Yes,
        "A learned predictor picks α·N edges and attention runs over them only; shown here between its "
        "idealised bounds, oracle and random edges.",
        "No learned edge predictor: an oracle (top-α by exact score) or random edges, both idealised bounds.",
        true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("edges", "Edge set", "oracle: each query's top-α keys by exact score (an upper bound); "
                          "random: α random keys (a lower bound)", {"oracle", "random"}, 0),
        ParamSpec::integer("alpha", "Edges per token α", "Edge budget per query (plus its self-loop).", 8, 1,
                           1 << 20, true),
    };
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m(), alpha = p.integer("alpha");
    const bool oracle = p.choice("edges") == "oracle", causal = options.causal;
    std::vector<std::vector<Index>> edges(static_cast<size_t>(n));
    timedStage(r.cost, options, oracle ? "oracle edges" : "random edges", [&] {
      if (oracle) {
        constexpr Index kRows = 256;  // scores a block of queries at a time (never N×M at once)
        std::vector<Index> idx;
        for (Index i0 = 0; i0 < n; i0 += kRows) {
          const Index rows = std::min(kRows, n - i0);
          const Matrix scores = backend.matmul(in.q.middleRows(i0, rows), in.k, true);
          for (Index rr = 0; rr < rows; ++rr) {
            const Index i = i0 + rr, visible = causal ? std::min(m, i + 1) : m;
            idx.resize(size_t(visible));
            std::iota(idx.begin(), idx.end(), 0);
            const Index take = std::min(alpha, visible);
            std::partial_sort(idx.begin(), idx.begin() + take, idx.end(), [&](Index a, Index b) {
              return scores(rr, a) > scores(rr, b) || (scores(rr, a) == scores(rr, b) && a < b);
            });
            edges[size_t(i)].assign(idx.begin(), idx.begin() + take);
          }
          options.checkCancel();
        }
      } else {
        Rng rng(options.seed, 21);
        std::vector<Index> idx;
        for (Index i = 0; i < n; ++i) {
          const Index visible = causal ? std::min(m, i + 1) : m, take = std::min(alpha, visible);
          idx.resize(size_t(visible));
          std::iota(idx.begin(), idx.end(), 0);
          for (Index t = 0; t < take; ++t) std::swap(idx[size_t(t)], idx[size_t(t + Index(rng.below(std::uint64_t(visible - t))))]);
          edges[size_t(i)].assign(idx.begin(), idx.begin() + take);
        }
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
    r.explanation.notes.push_back(std::string(oracle ? "oracle" : "random") +
                                  " edges: an idealised bound, not a learned predictor");
    if (oracle) r.cost.flops += 2.0 * double(n) * double(m) * double(in.q.cols());  // the oracle's scoring
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSac() { return std::make_shared<Sac>(); }
}  // namespace attn::mech
