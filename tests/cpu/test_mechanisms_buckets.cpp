// The sort-and-chunk bucketing engine (CATALOG.md E3) and the mechanisms on it or beside it: Reformer's
// chunking, SMYRF's balanced asymmetric clusters, Sinkhorn's block sorting. Limit cases against exact
// attention and the papers' qualitative claims; causality and determinism of every mechanism are in
// test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in the gpu suite.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "attention/mechanisms/bucket_engine.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false,
           std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}
using test::errorVsExact;

/// Exact softmax restricted to a pattern, in float64.
MatrixD maskedReference(const Inputs& in, const Matrix& k, const Pattern& p) {
  Matrix bias = Matrix::Constant(p.rows, p.cols, -kInf);
  for (Index i = 0; i < p.rows; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) bias(i, p.col[size_t(e)]) = 0;
  DenseAttentionOptions o;
  o.bias = &bias;
  return test::refAttention(in.q, k, in.v, o);
}

/// Exact attention weights A* (float64), N×M.
MatrixD exactWeights(const Inputs& in) {
  MatrixD s = in.q.cast<double>() * in.k.cast<double>().transpose() / std::sqrt(double(in.q.cols()));
  for (Index i = 0; i < s.rows(); ++i) {
    const double mx = s.row(i).maxCoeff();
    s.row(i) = (s.row(i).array() - mx).exp().matrix();
    s.row(i) /= s.row(i).sum();
  }
  return s;
}

/// Mean over rows of the exact mass inside "query label = key label".
double sameLabelMass(const MatrixD& a, const std::vector<std::int32_t>& ql, const std::vector<std::int32_t>& kl) {
  double total = 0;
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < a.cols(); ++j)
      if (ql[size_t(i)] == kl[size_t(j)]) total += a(i, j);
  return total / double(a.rows());
}

// --- the engine ------------------------------------------------------------------------------------------

TEST(BucketEngine, ChunksOfTheSortedOrderWithThePreviousChunkAndTheSelfRule) {
  // 8 tokens, labels 1 0 1 0 1 0 1 0: sorted order 1 3 5 7 | 0 2 4 6, chunks of 2.
  Inputs in = inputs(Generator::Gaussian, 8);
  const std::vector<std::int32_t> label = {1, 0, 1, 0, 1, 0, 1, 0};
  mech::BucketOptions o;
  o.chunk = 2;
  o.previous_chunk = true;
  o.self_rule = true;
  o.scale = 1 / std::sqrt(32.0f);  // the reference's scale (d = 32)
  CpuBackend cpu(1);
  Result r;
  const auto q = std::make_shared<const Matrix>(in.q), k = std::make_shared<const Matrix>(in.k);
  const mech::BucketAttention a = mech::attendBuckets(in, q, k, {{"round 1", label, label, 2}}, o, cpu, RunOptions{}, r);
  const std::vector<std::int32_t> order = {1, 3, 5, 7, 0, 2, 4, 6};
  EXPECT_EQ(a.order.front(), order);
  // Token 5 (sorted position 2, chunk 1) sees chunks 0 and 1 of its bucket: 1, 3, 7 (not itself).
  const Pattern& p = *a.pattern;
  auto row = [&](Index i) {
    return std::vector<std::int32_t>(p.col.begin() + p.row_ptr[size_t(i)], p.col.begin() + p.row_ptr[size_t(i + 1)]);
  };
  EXPECT_EQ(row(5), (std::vector<std::int32_t>{1, 3, 7}));
  // Token 0 (sorted position 4, chunk 2): chunk 1 holds 5 and 7 (bucket 1, not its bucket): only 2.
  EXPECT_EQ(row(0), (std::vector<std::int32_t>{2}));
  // Token 1 (chunk 0, no previous chunk): 3 only; itself is dropped because it has 3.
  EXPECT_EQ(row(1), (std::vector<std::int32_t>{3}));
  EXPECT_LT(relativeError(r.output, maskedReference(in, in.k, p)), 1e-5);
  // Without the previous chunk token 5 keeps only its own chunk's other token, 7.
  o.previous_chunk = false;
  Result r2;
  const mech::BucketAttention b = mech::attendBuckets(in, q, k, {{"round 1", label, label, 2}}, o, cpu, RunOptions{}, r2);
  EXPECT_TRUE(b.pattern->contains(5, 7));
  EXPECT_FALSE(b.pattern->contains(5, 1));
}

TEST(BucketEngine, RoundsUniteToSoftmaxOverTheUnionEvenWhenTheyOverlap) {
  const Inputs in = inputs(Generator::Clustered, 150);
  Rng rng(3);
  std::vector<mech::BucketRound> rounds;
  for (int h = 0; h < 3; ++h) {
    mech::BucketRound round{"round " + std::to_string(h + 1), {}, {}, 4};
    for (Index i = 0; i < 150; ++i) round.q_label.push_back(std::int32_t(rng.below(4)));
    for (Index j = 0; j < 150; ++j) round.k_label.push_back(std::int32_t(rng.below(4)));
    rounds.push_back(round);
  }
  for (bool causal : {false, true}) {
    mech::BucketOptions o;
    o.causal = causal;
    o.scale = 1 / std::sqrt(32.0f);
    CpuBackend cpu(2);
    Result r;
    const mech::BucketAttention a = mech::attendBuckets(in, std::make_shared<const Matrix>(in.q),
                                                        std::make_shared<const Matrix>(in.k), rounds, o, cpu, RunOptions{}, r);
    // Rounds share pairs (random labels of 4 groups overlap a lot), and the result is still exact.
    Index round_pairs = 0;
    for (const auto& p : a.rounds) round_pairs += p->nnz();
    EXPECT_GT(round_pairs, a.pattern->nnz() + 1000);
    EXPECT_LT(relativeError(r.output, maskedReference(in, in.k, *a.pattern)), 1e-5) << causal;
    for (Index i = 0; i < 150; ++i)
      for (Index e = a.pattern->row_ptr[size_t(i)]; e < a.pattern->row_ptr[size_t(i + 1)]; ++e)
        if (causal) {
          ASSERT_LE(a.pattern->col[size_t(e)], i);
        }
  }
}

TEST(BucketEngine, SameGroupPatternNamesEightColoursAndIsCausal) {
  const std::vector<std::int32_t> label = {0, 9, 1, 0, 9, 2};
  const auto p = mech::sameGroupPattern(label, label, 10, "bucket", true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->components.size(), 8u);
  EXPECT_EQ(p->components[1], "bucket 2, 10");
  EXPECT_TRUE(p->contains(3, 0));
  EXPECT_FALSE(p->contains(0, 3));
  EXPECT_TRUE(p->contains(4, 1));
  EXPECT_EQ(p->componentOf(4, 1), 1);  // group 9 → colour 9 mod 8
}

// --- reformer on the engine ---------------------------------------------------------------------------

TEST(Reformer, ChunkStepShowsRoundOnePairsSortedByBuckets) {
  const Inputs in = inputs(Generator::Clustered, 128);
  const Result r = run("reformer", in, {{"buckets", "8"}, {"chunk", "8"}, {"rounds", "2"}});
  const Step* chunk = nullptr;
  for (const Step& s : r.explanation.steps)
    if (s.title == "chunk") chunk = &s;
  ASSERT_NE(chunk, nullptr);
  ASSERT_TRUE(chunk->view->pattern);
  const Grouping& buckets = r.explanation.groupings[0];
  const Grouping& chunks = r.explanation.groupings.back();
  EXPECT_EQ(chunks.name, "round 1 chunks");
  const Pattern& p = *chunk->view->pattern;
  for (Index i = 0; i < 128; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
      const Index j = p.col[size_t(e)];
      EXPECT_EQ(buckets.label[size_t(i)], buckets.label[size_t(j)]);
      const int dc = chunks.label[size_t(i)] - chunks.label[size_t(j)];
      EXPECT_TRUE(dc == 0 || dc == 1) << i << " " << j;
    }
  // The union pattern holds both rounds; round 1's pairs are a subset of it.
  for (Index i = 0; i < 128; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e)
      EXPECT_TRUE(r.explanation.pattern->contains(i, p.col[size_t(e)]));
}

// --- smyrf ---------------------------------------------------------------------------------------------

TEST(Smyrf, OneClusterIsExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  EXPECT_LT(errorVsExact(run("smyrf", in, {{"cluster_size", "100"}, {"hashes", "2"}}), in, false), 1e-5);
}

TEST(Smyrf, BalancedClustersHaveEqualSizes) {
  for (Index n : {256, 250}) {
    const Inputs in = inputs(Generator::Clustered, n);
    const Result r = run("smyrf", in, {{"cluster_size", "32"}, {"hashes", "2"}});
    ASSERT_EQ(r.explanation.groupings.size(), 4u);  // per hash: query and key clusters
    for (const Grouping& g : r.explanation.groupings) {
      std::vector<Index> size(size_t(g.groups), 0);
      for (auto l : g.label) ++size[size_t(l)];
      const auto [lo, hi] = std::minmax_element(size.begin(), size.end());
      EXPECT_LE(*hi - *lo, n % g.groups ? 1 : 0) << g.name << " n=" << n;
      EXPECT_EQ(g.groups, 8);
    }
    // Query cluster c meets exactly key cluster c: every row scores ~N/L keys per hash.
    const Pattern& p = *r.explanation.pattern;
    for (Index i = 0; i < n; ++i) EXPECT_LE(p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)], 2 * (n / 8 + 1));
  }
}

TEST(Smyrf, AsymmetricClustersCatchFarMoreMassThanRandomBalancedClusters) {
  // Clustered input with Q ≈ K: the projection of F(q) and G(k) keeps similar pairs together.
  const Inputs in = inputs(Generator::Clustered, 512);
  const MatrixD a = exactWeights(in);
  const Result r = run("smyrf", in, {{"cluster_size", "64"}, {"hashes", "1"}});
  const double smyrf = sameLabelMass(a, r.explanation.groupings[0].label, r.explanation.groupings[1].label);
  // Random balanced clusters of the same sizes.
  Rng rng(7);
  std::vector<std::int32_t> perm(512);
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<std::int32_t> ql(512), kl(512);
  for (int pass = 0; pass < 2; ++pass) {
    for (Index t = 511; t > 0; --t) std::swap(perm[size_t(t)], perm[rng.below(std::uint64_t(t + 1))]);
    for (Index rank = 0; rank < 512; ++rank) (pass ? kl : ql)[size_t(perm[size_t(rank)])] = std::int32_t(rank * 8 / 512);
  }
  const double random = sameLabelMass(a, ql, kl);
  std::printf("[ smyrf clustered N=512 c=64 ] mass inside the clusters: smyrf %.3f, random balanced %.3f\n", smyrf, random);
  EXPECT_GT(smyrf, 2 * random) << smyrf << " vs " << random;
}

TEST(Smyrf, ErrorFallsWithMoreHashesAndLargerClusters) {
  const Inputs in = inputs(Generator::Clustered, 512);
  auto err = [&](const char* size, const char* hashes) {
    double total = 0;
    for (std::uint64_t seed = 1; seed <= 3; ++seed)
      total += errorVsExact(run("smyrf", in, {{"cluster_size", size}, {"hashes", hashes}}, false, seed), in, false);
    return total / 3;
  };
  const double h1 = err("32", "1"), h4 = err("32", "4"), c128 = err("128", "1");
  std::printf("[ smyrf clustered N=512 ] e_out: c=32 1 hash %.3f, 4 hashes %.3f; c=128 1 hash %.3f\n", h1, h4, c128);
  EXPECT_LT(h4, 0.8 * h1) << h1 << " " << h4;
  EXPECT_LT(c128, 0.8 * h1) << h1 << " " << c128;
}

TEST(Smyrf, RefusesCausal) {
  const Inputs in = inputs(Generator::Gaussian, 20);
  EXPECT_THROW(run("smyrf", in, {}, true), UserError);
}

// --- sinkhorn ------------------------------------------------------------------------------------------

TEST(Sinkhorn, OneBlockIsExact) {
  const Inputs in = inputs(Generator::Clustered, 96);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("sinkhorn", in, {{"block", "96"}}, causal), in, causal), 1e-5) << causal;
}

TEST(Sinkhorn, ImpliedWeightsAreTheOutputWithIdentityValues) {
  // The V = I probe (CATALOG §0): the mixed keys and values give A(r, j·b+t) = a_own + S·a_sorted.
  for (bool causal : {false, true}) {
    Inputs in = inputs(Generator::Clustered, 64);
    in.v = Matrix::Identity(64, 64);
    const Result r = run("sinkhorn", in, {{"block", "8"}}, causal);
    EXPECT_LT(relativeError(r.explanation.weights.dense(), MatrixD(r.output.cast<double>())), 1e-5) << causal;
    // Rows are distributions.
    const Matrix w = r.explanation.weights.dense();
    for (Index i = 0; i < 64; ++i) EXPECT_NEAR(w.row(i).sum(), 1.0, 1e-4);
  }
}

TEST(Sinkhorn, BalancingMakesTheScoresDoublyStochastic) {
  const Inputs in = inputs(Generator::Clustered, 256);
  const Result r = run("sinkhorn", in, {{"block", "16"}, {"iterations", "20"}, {"temperature", "0.75"}});
  std::vector<double> deviation;
  for (const Step& s : r.explanation.steps) {
    if (s.view->factors.empty()) continue;
    const Matrix& m = s.view->factors.front().value;
    double dev = 0;
    for (Index i = 0; i < m.rows(); ++i) dev = std::max(dev, std::abs(double(m.row(i).sum()) - 1));
    for (Index j = 0; j < m.cols(); ++j) dev = std::max(dev, std::abs(double(m.col(j).sum()) - 1));
    deviation.push_back(dev);
  }
  ASSERT_EQ(deviation.size(), 21u);  // before balancing and after each of 20 iterations
  std::printf("[ sinkhorn ] max |row or column sum − 1|: before %.3g, after 1 iteration %.3g, after 20 %.3g\n",
              deviation.front(), deviation[1], deviation.back());
  EXPECT_GT(deviation.front(), 0.5);
  EXPECT_LT(deviation.back(), 1e-2);
  EXPECT_LT(deviation.back(), deviation[1]);
}

TEST(Sinkhorn, SortingBySimilarityBeatsOwnBlockAndARandomBlock) {
  // The copy task (a sequence repeated twice): block i's twin lies N/2 away; sorting by block similarity
  // brings it into place, which neither the own block nor a random block does.
  const Inputs in = inputs(Generator::Copy, 256);
  const Index b = 16, nb = 16;
  const double sinkhorn = errorVsExact(run("sinkhorn", in, {{"block", "16"}, {"temperature", "0.1"}}), in, false);
  auto blocks = [&](const std::vector<Index>& extra) {
    Matrix bias = Matrix::Constant(256, 256, -kInf);
    for (Index i = 0; i < 256; ++i)
      for (Index t = 0; t < b; ++t) {
        bias(i, (i / b) * b + t) = 0;
        if (!extra.empty()) bias(i, extra[size_t(i / b)] * b + t) = 0;
      }
    DenseAttentionOptions o;
    o.bias = &bias;
    return relativeError(test::refAttention(in.q, in.k, in.v, o).cast<float>(),
                         test::refAttention(in.q, in.k, in.v, DenseAttentionOptions{}));
  };
  const double own = blocks({});
  Rng rng(5);
  std::vector<Index> random(static_cast<size_t>(nb));
  for (auto& x : random) x = Index(rng.below(std::uint64_t(nb)));
  const double with_random = blocks(random);
  std::printf("[ sinkhorn copy N=256 b=16 ] e_out: sinkhorn %.3f, own block %.3f, own + random block %.3f\n", sinkhorn,
              own, with_random);
  EXPECT_LT(sinkhorn, 0.9 * own) << sinkhorn << " vs own " << own;
  EXPECT_LT(sinkhorn, 0.9 * with_random) << sinkhorn << " vs random " << with_random;
}

TEST(Sinkhorn, BlockSizeThatDoesNotDivideNIsReducedWithANote) {
  const Inputs in = inputs(Generator::Gaussian, 97);  // prime: only b = 1 divides
  const Result r = run("sinkhorn", in, {{"block", "10"}});
  ASSERT_FALSE(r.explanation.notes.empty());
  EXPECT_NE(r.explanation.notes[0].find("using 1"), std::string::npos);
  EXPECT_FALSE(r.output.hasNaN());
}

}  // namespace
}  // namespace attn
