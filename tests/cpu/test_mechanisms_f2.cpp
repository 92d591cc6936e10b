// Content-based sparsity (CATALOG.md F2) beyond Reformer: limit cases against exact attention and the
// papers' qualitative claims. Causality and determinism of every mechanism are checked in
// test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in the gpu suite.
#include <algorithm>
#include <cmath>
#include <set>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/random.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false) {
  return test::runMechanism(id, in, std::move(params), causal);
}
using test::errorVsExact;

// --- routing ---------------------------------------------------------------------------------------------

TEST(Routing, OneClusterIsExact) {
  const Inputs in = inputs(Generator::Clustered, 120);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("routing", in, {{"clusters", "1"}}, causal), in, causal), 1e-5) << causal;
}

TEST(Routing, QueriesAttendToTheKeysOfTheirCluster) {
  const Inputs in = inputs(Generator::Clustered, 200);
  const Result r = run("routing", in, {{"clusters", "8"}});
  const Grouping& qc = r.explanation.groupings.at(0);
  const Grouping& kc = r.explanation.groupings.at(1);
  const Pattern& p = *r.explanation.pattern;
  for (Index i = 0; i < 200; i += 7)
    for (Index j = 0; j < 200; ++j)
      EXPECT_EQ(p.contains(i, j), qc.label[size_t(i)] == kc.label[size_t(j)]) << i << "," << j;
}

TEST(Routing, ContentClustersCatchMoreMassThanRandomGroupsOfTheSameSizes) {
  // The paper's point: routing by content finds the keys a query attends to; random groups of the
  // same sizes (as in random sparsity) do not.
  const Inputs in = inputs(Generator::Clustered, 512);
  const Result exact = run("exact", in);
  const Result r = run("routing", in, {{"clusters", "8"}});
  const double routed = massRecall(*r.explanation.pattern, exact.explanation.weights);
  std::vector<std::int32_t> qlab = r.explanation.groupings.at(0).label, klab = r.explanation.groupings.at(1).label;
  Rng rng(5);
  for (size_t i = qlab.size(); i > 1; --i) std::swap(qlab[i - 1], qlab[size_t(rng.below(i))]);
  for (size_t i = klab.size(); i > 1; --i) std::swap(klab[i - 1], klab[size_t(rng.below(i))]);
  Pattern random;
  random.rows = random.cols = 512;
  random.components = {"random group"};
  random.row_ptr.push_back(0);
  for (Index i = 0; i < 512; ++i) {
    for (Index j = 0; j < 512; ++j)
      if (qlab[size_t(i)] == klab[size_t(j)]) random.col.push_back(std::int32_t(j));
    random.row_ptr.push_back(Index(random.col.size()));
  }
  random.component.assign(random.col.size(), 0);
  const double shuffled = massRecall(random, exact.explanation.weights);
  std::printf("[ routing C=8 clustered ] mass recall %.3f, random groups of the same sizes %.3f\n", routed, shuffled);
  EXPECT_GT(routed, shuffled + 0.2);
}

// --- clustered -------------------------------------------------------------------------------------------

TEST(Clustered, ImprovedWithEveryKeyInTheTopKIsExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  EXPECT_LT(errorVsExact(run("clustered", in, {{"variant", "i-clustered"}, {"clusters", "5"}, {"topk", "100"}}), in,
                         false),
            1e-5);
}

TEST(Clustered, MembersOfAClusterShareTheirRow) {
  const Inputs in = inputs(Generator::Clustered, 120);
  const Result r = run("clustered", in, {{"clusters", "6"}});
  const std::vector<std::int32_t>& label = r.explanation.groupings.at(0).label;
  const Matrix w = r.explanation.weights.dense();
  for (Index i = 0; i < 120; ++i)
    for (Index j = i + 1; j < 120; ++j)
      if (label[size_t(i)] == label[size_t(j)]) {
        ASSERT_LT((w.row(i) - w.row(j)).cwiseAbs().maxCoeff(), 1e-6);
        ASSERT_EQ(r.output.row(i), r.output.row(j));
      }
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-4);
}

TEST(Clustered, ErrorFallsWithMoreClustersAndTheImprovedFormIsBetter) {
  const Inputs in = inputs(Generator::Clustered, 512);
  const double few = errorVsExact(run("clustered", in, {{"clusters", "2"}}), in, false);
  const double many = errorVsExact(run("clustered", in, {{"clusters", "64"}}), in, false);
  const double improved = errorVsExact(run("clustered", in, {{"clusters", "64"}, {"variant", "i-clustered"}}), in, false);
  std::printf("[ clustered, clustered input N=512 ] rel. error C=2 %.3f, C=64 %.3f, i-clustered C=64 %.3f\n", few,
              many, improved);
  EXPECT_LT(many, 0.8 * few);
  EXPECT_LT(improved, many);
}

TEST(Clustered, RefusesCausalAndClampsClusters) {
  const Inputs in = inputs(Generator::Gaussian, 10);
  EXPECT_THROW(run("clustered", in, {}, true), UserError);
  const Result r = run("clustered", in, {{"clusters", "50"}});
  EXPECT_NE(r.explanation.notes.front().find("clamped"), std::string::npos);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

// --- informer --------------------------------------------------------------------------------------------

TEST(Informer, EveryQueryActiveIsExact) {
  const Inputs in = inputs(Generator::Clustered, 60);
  EXPECT_LT(errorVsExact(run("informer", in, {{"factor", "1000"}}), in, false), 1e-5);
}

/// The u queries of highest exact sparsity score M(q) = max_j s·q·k_j − mean_j s·q·k_j.
std::set<Index> topByExactM(const Inputs& in, Index u) {
  const Matrix logits = (in.q * in.k.transpose()) / std::sqrt(float(in.q.cols()));
  std::vector<std::pair<float, Index>> score;
  for (Index i = 0; i < in.n(); ++i) score.push_back({logits.row(i).maxCoeff() - logits.row(i).mean(), i});
  std::stable_sort(score.begin(), score.end(), [](auto a, auto b) { return a.first > b.first; });
  std::set<Index> top;
  for (Index t = 0; t < u; ++t) top.insert(score[size_t(t)].second);
  return top;
}

TEST(Informer, ActiveQueriesAreThoseOfHighestSparsityScore) {
  // 200 queries, 20 keys: with c = 7, U = 7·⌈ln 20⌉ = 21 ≥ 20 samples every key, so the estimate is the
  // exact M, while u = 7·⌈ln 200⌉ = 42 queries are active: exactly the 42 of highest M.
  Inputs in = inputs(Generator::Peaked, 200);
  in.k.conservativeResize(20, Eigen::NoChange);
  in.v.conservativeResize(20, Eigen::NoChange);
  const Result all_keys = run("informer", in, {{"factor", "7"}});
  const auto& chosen = all_keys.explanation.special.at(0).indices;
  ASSERT_EQ(chosen.size(), 42u);
  EXPECT_EQ(std::set<Index>(chosen.begin(), chosen.end()), topByExactM(in, 42));
  // Sampled (c = 5 on 200 keys: U = 30 of 200): the chosen queries lie among the highest M far more
  // often than chance (30 · 60/200 = 9 expected from a random choice).
  const Inputs full = inputs(Generator::Peaked, 200);
  const Result sampled_run = run("informer", full);
  const auto& sampled = sampled_run.explanation.special.at(0).indices;
  ASSERT_EQ(sampled.size(), 30u);
  const std::set<Index> top60 = topByExactM(full, 60);
  Index hits = 0;
  for (Index i : sampled) hits += Index(top60.count(i));
  std::printf("[ informer peaked N=200, c=5 ] %lld of the 30 active queries are among the 60 of highest exact M\n",
              static_cast<long long>(hits));
  EXPECT_GE(hits, 14);
}

TEST(Informer, LazyQueriesOutputTheMeanOfV) {
  const Inputs in = inputs(Generator::Gaussian, 100);
  const Result r = run("informer", in);
  const auto& active = r.explanation.special.at(0).indices;
  const Eigen::RowVectorXf mean = in.v.colwise().mean();
  for (Index i = 0; i < 100; ++i)
    if (std::find(active.begin(), active.end(), i) == active.end()) {
      EXPECT_EQ(r.output.row(i), mean) << i;
    }
  EXPECT_THROW(run("informer", in, {}, true), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

// --- sac -------------------------------------------------------------------------------------------------

TEST(Sac, AFullEdgeBudgetIsExact) {
  const Inputs in = inputs(Generator::Clustered, 80);
  for (const char* edges : {"oracle", "random"})
    for (bool causal : {false, true})
      EXPECT_LT(errorVsExact(run("sac", in, {{"edges", edges}, {"alpha", "80"}}, causal), in, causal), 1e-5)
          << edges << " causal " << causal;
}

// Sac.OracleEdgesBoundARandomPredictorFromAbove (oracle ≥ random, true by construction) is replaced by
// TruthSac.OracleEdgesSeeTheMostMassAnyPredictorOfTheBudgetCan in test_truth_lowrank.cpp.

}  // namespace
}  // namespace attn
