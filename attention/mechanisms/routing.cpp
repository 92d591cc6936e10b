// routing — Roy, Saffar, Vaswani, Grangier 2020 (arXiv 2003.05997), CATALOG.md #22: content-based
// sparse attention. Queries and keys, normalised onto the unit sphere, are clustered by k-means with
// C ≈ √N shared centroids; query i attends to the keys of its own cluster (a block pattern once the
// tokens are sorted by cluster). Causal: j ≤ i inside the cluster.
// Stand-in (CATALOG f): the paper's online k-means with moving averages is replaced by a few Lloyd
// iterations on Q ∪ K (spherical: centroids are renormalised), seeded by the run's seed; causal runs
// route by fixed random unit centroids instead (fitting them would look at future tokens).
// A query whose cluster holds no key (causal: none at or before it) has nothing to attend to: its output
// is 0. Such queries are counted in a note and marked as a token set, so the picture shows them.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/bucket_engine.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kmeans.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

Matrix rowNormalised(const Matrix& x) {
  Matrix y = x;
  for (Index i = 0; i < y.rows(); ++i) {
    const float norm = y.row(i).norm();
    if (norm > 0) y.row(i) /= norm;
  }
  return y;
}

class Routing final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "routing", "Routing Transformer", "Roy, Saffar, Vaswani, Grangier. Efficient Content-Based Sparse "
        "Attention with Routing Transformers", "2003.05997", 2020, Family::ContentSparse, "O(N^1.5·d)",
        CausalSupport::Yes,
        "Cluster queries and keys with shared k-means centroids; each query attends only to the keys of its "
        "cluster.",
        "A few Lloyd iterations on the normalised Q ∪ K replace the paper's online k-means (causal runs: fixed "
        "random centroids).", true};
    return i;
  }
  /// One cluster: every query attends to every key (j ≤ i when causal).
  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"clusters", "1"}}, 1e-4, "one cluster (C = 1)"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("clusters", "Clusters C", "Shared centroids; 0 picks ⌈√N⌉ (the paper's choice).", 0, 0,
                           4096, true),
        ParamSpec::integer("iterations", "k-means iterations",
                           "Lloyd iterations on the normalised Q ∪ K (causal runs use none: fixed random centroids).",
                           3, 0, 50),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    Index c = p.integer("clusters");
    if (c == 0) c = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(s.n, s.m))))));
    c = std::min(c, s.n + s.m);  // run() clamps it there
    // k-means clusters are not balanced: a query's cluster holds up to a few times M / c keys.
    const double keys = std::min(m, 4 * m / double(c));
    planBuckets(r, s, 1, keys, "clusters", "raise clusters");
    const double iterations = double(p.integer("iterations"));
    r.add((n + m) * double(s.d) * sizeof(float) * 2 + (iterations + 2) * (n + m) * sizeof(std::int32_t) +
              double(c) * double(s.d) * sizeof(float) * 2,
          "the normalised Q ∪ K and the k-means labels (iterations × (N + M))", "iterations");
    r.add((n + m) * double(c) * sizeof(float) * 2, "the k-means distances ((N + M) × clusters)", "clusters");
    if (options.explain)
      r.add(2 * patternBytes(n * keys, n), "the cluster pattern shown", "clusters", "raise clusters");
    r.flops += (iterations + 1) * 2 * (n + m) * double(c) * double(s.d);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    Index c = p.integer("clusters");
    if (c == 0) c = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(n, m))))));
    if (c > n + m) {
      r.explanation.notes.push_back("clusters clamped to " + std::to_string(n + m) + " (the queries and keys)");
      c = n + m;
    }
    // Spherical k-means on the normalised queries and keys together.
    Matrix both(n + m, in.q.cols());
    both.topRows(n) = rowNormalised(in.q);
    both.bottomRows(m) = rowNormalised(in.k);
    KMeans km;
    if (options.causal) {
      // Fitting centroids on this sequence would let future tokens move them: causal runs route by
      // fixed random unit centroids (from the seed), as a trained model routes by centroids learned
      // beforehand.
      Rng rng(options.seed, 22);
      km.centroids = rowNormalised(rng.gaussian(c, in.q.cols()));
      km.label = timedStage(r.cost, options, "route", [&] { return backend.nearestCentroid(both, km.centroids); });
      km.history.push_back(km.label);
      r.explanation.notes.push_back("causal: random fixed centroids (k-means on the sequence would see the future)");
    } else {
      km = timedStage(r.cost, options, "k-means", [&] {
        return kmeans(both, c, p.integer("iterations"), options.seed, backend, options, true,
                      [](Eigen::Ref<Eigen::RowVectorXf> mu) {
                        const float norm = mu.norm();
                        if (norm > 0) mu /= norm;
                      });
      });
    }
    std::vector<std::int32_t> qc(km.label.begin(), km.label.begin() + n), kc(km.label.begin() + n, km.label.end());
    // Query i attends to the keys of its cluster: one round of the bucket engine, without chunks.
    BucketOptions bo;
    bo.causal = options.causal;
    bo.scale = defaultScale(in.q.cols());
    const BucketAttention routed =
        attendBuckets(in, std::make_shared<const Matrix>(in.q), std::make_shared<const Matrix>(in.k),
                      {BucketRound{"cluster", qc, kc, std::int32_t(c)}}, bo, backend, options, r);
    // Queries with no key to attend to output 0: say how many, and mark them.
    std::vector<Index> keyless;
    for (Index i = 0; i < n; ++i)
      if (routed.pattern->row_ptr[size_t(i + 1)] == routed.pattern->row_ptr[size_t(i)]) keyless.push_back(i);
    if (!keyless.empty()) {
      r.explanation.notes.push_back("queries with no key in their cluster" +
                                    std::string(options.causal ? " at or before them" : "") + ": " +
                                    std::to_string(keyless.size()) + " of " + std::to_string(n) +
                                    "; they output 0 (marked: \"queries with no key\")");
      r.explanation.special.push_back(
          TokenSet{"queries with no key", "no key (output 0)", std::move(keyless), {}, {}, /*queries_only=*/true});
    }
    if (n == m) {
      // One label per token: the query's cluster (views sort by it: the pattern becomes blocks).
      r.explanation.groupings.push_back(Grouping::fromLabels("query clusters", qc, std::int32_t(c)));
      r.explanation.groupings.push_back(Grouping::fromLabels("key clusters", kc, std::int32_t(c)));
      for (size_t it = 0; it < km.history.size(); ++it) {
        auto view = std::make_shared<Explanation>();
        std::vector<std::int32_t> q_it(km.history[it].begin(), km.history[it].begin() + n);
        view->groupings.push_back(Grouping::fromLabels("query clusters", std::move(q_it), std::int32_t(c)));
        r.explanation.steps.push_back(Step{"k-means " + std::to_string(it),
                                           it == 0 ? options.causal ? "assignment to the fixed random centroids"
                                                                    : "assignment to the initial centroids"
                                                   : "after " + std::to_string(it) + " Lloyd update(s)",
                                           std::move(view)});
      }
    }
    r.explanation.special.push_back(TokenSet{"centroids", "centroid", {}, {}, km.centroids});
    r.explanation.notes.push_back(std::to_string(c) + " clusters");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeRouting() { return std::make_shared<Routing>(); }
}  // namespace attn::mech
