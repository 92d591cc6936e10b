// The hashing mechanisms against independent computations of their papers' and authors' code's equations
// (issue 19): Reformer's angular LSH h(x) = argmax[xR, −xR] and its rounds, trax's LSHSelfAttention
// convention, SMYRF's balanced cuts of the asymmetric projection and its code's per-hash combination,
// SCRAM's PatchMatch propagation. Everything expected here is computed in the test, in double, from the
// inputs and the random draws the mechanism exposes (its rotations, its directions); nothing calls the
// code under test to compute what it should give.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params, bool causal = false,
           std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}

const Step& stepOf(const Result& r, const std::string& title) {
  for (const Step& s : r.explanation.steps)
    if (s.title == title) return s;
  throw std::runtime_error("no step " + title);
}

const Matrix& factorOf(const Step& s, const std::string& name) {
  for (const NamedMatrix& f : s.view->factors)
    if (f.name == name) return f.value;
  throw std::runtime_error("no factor " + name + " in step " + s.title);
}

const Grouping& groupingOf(const Result& r, const std::string& name) {
  for (const Grouping& g : r.explanation.groupings)
    if (g.name == name) return g;
  throw std::runtime_error("no grouping " + name);
}

/// Unit rows (the Reformer's shared keys), in double.
MatrixD unitRows(const Matrix& x) {
  MatrixD u = x.cast<double>();
  for (Index i = 0; i < u.rows(); ++i) u.row(i) /= u.row(i).norm();
  return u;
}

/// Angular LSH in double: argmax over the 2·(B/2) candidates [x·R, −x·R] (candidate B/2 + j is −x·R_j), and
/// the gap between the best and the second best candidate (a near tie may round either way in float).
std::pair<std::int32_t, double> angularBucket(const Eigen::RowVectorXd& x, const MatrixD& r) {
  const Eigen::RowVectorXd p = x * r;
  const Index half = p.size();
  Eigen::RowVectorXd both(2 * half);
  both << p, -p;
  Index best = 0;
  both.maxCoeff(&best);
  double second = -1e300;
  for (Index c = 0; c < 2 * half; ++c)
    if (c != best) second = std::max(second, both(c));
  return {std::int32_t(best), both(best) - second};
}

/// Rows of a pattern as sets.
std::vector<std::set<std::int32_t>> rowsOf(const Pattern& p) {
  std::vector<std::set<std::int32_t>> rows(size_t(p.rows));
  for (Index i = 0; i < p.rows; ++i)
    rows[size_t(i)].insert(p.col.begin() + p.row_ptr[size_t(i)], p.col.begin() + p.row_ptr[size_t(i + 1)]);
  return rows;
}

/// o_i = Σ_h Σ_{j∈K_h(i)} e^{s_ij} v_j / Σ_h Σ_{j∈K_h(i)} e^{s_ij}, s = q·k/√d (or q·k·scale): rounds combined by their
/// log-normalisers alone, a pair weighing once per round that has it (trax's LSHSelfAttention, the SMYRF
/// code). Also the implied weights c_ij·e^{s_ij}/Z_i.
std::pair<MatrixD, MatrixD> perRoundAttention(const MatrixD& q, const MatrixD& k, const MatrixD& v,
                                              const std::vector<std::vector<std::set<std::int32_t>>>& keys,
                                              double scale = 0) {
  const Index n = q.rows(), m = k.rows();
  if (scale == 0) scale = 1 / std::sqrt(double(q.cols()));
  MatrixD w = MatrixD::Zero(n, m);
  for (Index i = 0; i < n; ++i) {
    double top = -1e300;
    for (const auto& round : keys)
      for (auto j : round[size_t(i)]) top = std::max(top, scale * q.row(i).dot(k.row(j)));
    for (const auto& round : keys)
      for (auto j : round[size_t(i)]) w(i, j) += std::exp(scale * q.row(i).dot(k.row(j)) - top);
    w.row(i) /= w.row(i).sum();
  }
  return {w * v, w};
}

// --- Reformer: the hash ------------------------------------------------------------------------------------

TEST(TruthHashing, ReformerBucketsAreTheArgmaxOfRotatedAndNegatedUnitKeysInEveryRound) {
  // h(x) = argmax[xR, −xR] of the unit keys (the normalised queries), with a rotation R of its own per
  // round, recomputed in double from the R each round exposes.
  const Inputs in = test::mechanismInputs(Generator::Clustered, 120);
  const Result r = run("reformer", in, {{"buckets", "8"}, {"rounds", "3"}, {"chunk", "16"}});
  const MatrixD x = unitRows(in.q);
  std::vector<MatrixD> rotations;
  Index checked = 0, near_ties = 0;
  for (int h = 1; h <= 3; ++h) {
    const Matrix& rot = factorOf(stepOf(r, "rotate"), "rotation R (round " + std::to_string(h) + ")");
    ASSERT_EQ(rot.rows(), 32);
    ASSERT_EQ(rot.cols(), 4);  // B/2
    rotations.push_back(rot.cast<double>());
    const Grouping& g = groupingOf(r, "round " + std::to_string(h) + " buckets");
    ASSERT_EQ(g.groups, 8);
    for (Index i = 0; i < 120; ++i) {
      const auto [bucket, gap] = angularBucket(x.row(i), rotations.back());
      if (gap < 1e-5) {
        ++near_ties;
        continue;
      }
      ++checked;
      EXPECT_EQ(g.label[size_t(i)], bucket) << "round " << h << " token " << i;
    }
  }
  EXPECT_LE(near_ties, 2);
  EXPECT_GE(checked, 358);
  // A rotation of its own per round (the paper: independent hashes), not one reused.
  EXPECT_GT((rotations[0] - rotations[1]).norm(), 1.0);
  EXPECT_GT((rotations[1] - rotations[2]).norm(), 1.0);
}

TEST(TruthHashing, ReformerSendsOppositeVectorsToOppositeBucketsAndIgnoresScale) {
  // Queries x, −x and 5x: with [xR, −xR], −x lands in bucket b + B/2 (mod B) and 5x in b.
  Inputs in = test::mechanismInputs(Generator::Gaussian, 120);
  const Matrix x = in.q.topRows(40);
  in.q << x, -x, 5 * x;
  in.k = in.q;
  for (int buckets : {2, 8, 64}) {
    const Result r = run("reformer", in, {{"buckets", std::to_string(buckets)}, {"rounds", "2"}, {"chunk", "8"}});
    for (const char* name : {"round 1 buckets", "round 2 buckets"}) {
      const Grouping& g = groupingOf(r, name);
      std::set<std::int32_t> used;
      for (Index i = 0; i < 40; ++i) {
        used.insert(g.label[size_t(i)]);
        EXPECT_EQ(g.label[size_t(40 + i)], (g.label[size_t(i)] + buckets / 2) % buckets) << name << " " << i;
        EXPECT_EQ(g.label[size_t(80 + i)], g.label[size_t(i)]) << name << " " << i;
      }
      if (buckets <= 8) {
        EXPECT_GE(Index(used.size()), buckets - 1) << name;  // 40 random tokens fill them
      }
    }
  }
  // The backend's primitive itself, at scales far from 1 (the mechanism feeds it unit keys).
  CpuBackend cpu(1);
  Rng rng(11);
  const Matrix rot = rng.gaussian(16, 5), y = rng.gaussian(300, 16);
  const std::vector<std::int32_t> b = cpu.hashRotations(y, rot);
  const std::vector<std::int32_t> neg = cpu.hashRotations(-y, rot);
  for (float c : {1e-3f, 0.5f, 7.0f, 1e3f}) EXPECT_EQ(cpu.hashRotations(c * y, rot), b) << c;
  for (Index i = 0; i < 300; ++i) {
    EXPECT_EQ(neg[size_t(i)], (b[size_t(i)] + 5) % 10) << i;
    EXPECT_EQ(b[size_t(i)], angularBucket(y.row(i).cast<double>(), rot.cast<double>()).first) << i;
  }
}

TEST(TruthHashing, ReformerBucketsAreUniformOverItsRandomRotations) {
  // For a fixed x and Gaussian R, x·R_j are i.i.d. N(0, ‖x‖²): the argmax over [xR, −xR] is uniform over
  // the B buckets. One token, 16 rounds (a rotation each) × 300 seeds = 4800 draws, χ² test with 7 degrees
  // of freedom (P(χ² > 24.3) = 0.001). Rotations without the −xR half, or not centred, fail it.
  Inputs in = test::mechanismInputs(Generator::Gaussian, 1);
  std::vector<double> count(8, 0);
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    const Result r = run("reformer", in, {{"buckets", "8"}, {"rounds", "16"}, {"chunk", "1"}}, false, seed);
    for (int h = 1; h <= 16; ++h) count[size_t(groupingOf(r, "round " + std::to_string(h) + " buckets").label[0])] += 1;
  }
  double chi2 = 0;
  for (double c : count) chi2 += (c - 600) * (c - 600) / 600;
  std::printf("[ reformer hash ] bucket counts of one token over 4800 rotations:");
  for (double c : count) std::printf(" %.0f", c);
  std::printf("; chi2 %.1f (7 dof)\n", chi2);
  EXPECT_LT(chi2, 24.3);
}

// --- Reformer: rounds ----------------------------------------------------------------------------------------

TEST(TruthHashing, ReformerRoundsCatchAPairWithProbabilityOneMinusThetaOverPiToTheRounds) {
  // With B = 2 a round is one random hyperplane: unit keys at angle θ share its bucket with probability
  // 1 − θ/π, and at least one of n_h independent rounds with 1 − (θ/π)^n_h. With one chunk (m = N) a row
  // sees exactly the keys of its buckets, so the expected mass recall against the own reference A*
  // (shared-QK, no self) is mean_i Σ_j A*_ij·(1 − (θ_ij/π)^n_h). The measured mean over 40 seeds (disjoint
  // seed ranges per n_h: no round is shared between the settings) must match it within 4 standard errors.
  const Inputs in = test::mechanismInputs(Generator::Clustered, 96);
  const auto m = requireMechanism("reformer");
  const auto own = m->ownReference(in, Params::resolve(m->params(), {}));
  ASSERT_TRUE(own);
  DenseAttentionOptions ro;
  ro.mask_self = true;
  const MatrixD k = own->inputs.k.cast<double>();
  MatrixD a = own->inputs.q.cast<double>() * k.transpose() / std::sqrt(32.0);
  for (Index i = 0; i < 96; ++i) {
    a(i, i) = -1e300;
    a.row(i) = (a.row(i).array() - a.row(i).maxCoeff()).exp().matrix();
    a.row(i) /= a.row(i).sum();
  }
  const MatrixD cosine = (k * k.transpose()).cwiseMax(-1.0).cwiseMin(1.0);
  std::vector<double> expected, measured;
  for (int rounds : {1, 2, 4}) {
    double e = 0;
    for (Index i = 0; i < 96; ++i)
      for (Index j = 0; j < 96; ++j)
        if (j != i) e += a(i, j) * (1 - std::pow(std::acos(cosine(i, j)) / M_PI, rounds));
    e /= 96;
    double sum = 0, sum2 = 0;
    const int seeds = 40;
    for (int s = 0; s < seeds; ++s) {
      const Result r = run("reformer", in, {{"buckets", "2"}, {"rounds", std::to_string(rounds)}, {"chunk", "96"}},
                           false, std::uint64_t(1000 * rounds + s));
      const auto rows = rowsOf(*r.explanation.pattern);
      double recall = 0;
      for (Index i = 0; i < 96; ++i)
        for (auto j : rows[size_t(i)]) recall += a(i, j);  // A*_ii = 0: a row left with itself sees nothing
      recall /= 96;
      sum += recall;
      sum2 += recall * recall;
    }
    const double mean = sum / seeds, se = std::sqrt(std::max(0.0, sum2 / seeds - mean * mean) / (seeds - 1));
    std::printf("[ reformer B=2 clustered N=96 ] n_h=%d: own-reference mass recall %.3f ± %.3f (40 seeds), "
                "1 − (θ/π)^n_h predicts %.3f\n",
                rounds, mean, se, e);
    EXPECT_NEAR(mean, e, 4 * se + 0.005) << "n_h = " << rounds;
    expected.push_back(e);
    measured.push_back(mean);
  }
  // The paper's claim, on numbers that could have come out otherwise: more rounds, more of the mass.
  EXPECT_GT(measured[2], measured[0] + 0.1);
  EXPECT_GT(measured[1], measured[0] + 0.03);
}

TEST(TruthHashing, ReformerTraxConventionSeesWholeChunksAndCountsPairsPerRound) {
  // trax's LSHSelfAttention: tokens sorted by (bucket, position), cut into chunks of m; a query attends to
  // every key of its chunk and the previous one whatever the bucket, never to itself when it has another
  // key; each round's softmax is combined by its log-normaliser, so a pair in c rounds weighs c times.
  const Inputs in = test::mechanismInputs(Generator::Clustered, 64);
  const Result r = run("reformer", in, {{"buckets", "4"}, {"rounds", "2"}, {"chunk", "8"}, {"convention", "trax"}});
  std::vector<std::vector<std::set<std::int32_t>>> keys;
  for (int h = 1; h <= 2; ++h) {
    const std::vector<std::int32_t>& label = groupingOf(r, "round " + std::to_string(h) + " buckets").label;
    std::vector<std::int32_t> order(64);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return label[size_t(a)] < label[size_t(b)]; });
    std::vector<std::set<std::int32_t>> round(64);
    for (Index pos = 0; pos < 64; ++pos)
      for (Index s = std::max<Index>(0, (pos / 8 - 1) * 8); s < (pos / 8 + 1) * 8; ++s)
        if (s != pos) round[size_t(order[size_t(pos)])].insert(order[size_t(s)]);
    keys.push_back(std::move(round));
  }
  const MatrixD q = in.q.cast<double>(), k = unitRows(in.q), v = in.v.cast<double>();
  const auto [out, w] = perRoundAttention(q, k, v, keys);
  EXPECT_LT(relativeError(r.output, out), 1e-5);
  EXPECT_LT(relativeError(r.explanation.weights.dense(), w), 1e-5);
  // The pattern is the union of the rounds' keys: ~8–16 per round, most of them of other buckets.
  const auto rows = rowsOf(*r.explanation.pattern);
  const std::vector<std::int32_t>& bucket = groupingOf(r, "round 1 buckets").label;
  Index other_bucket = 0;
  for (Index i = 0; i < 64; ++i) {
    std::set<std::int32_t> both = keys[0][size_t(i)];
    both.insert(keys[1][size_t(i)].begin(), keys[1][size_t(i)].end());
    EXPECT_EQ(rows[size_t(i)], both) << i;
    for (auto j : keys[0][size_t(i)]) other_bucket += bucket[size_t(j)] != bucket[size_t(i)];
  }
  EXPECT_GT(other_bucket, 0);
  // The paper's convention on the same hashes keeps only same-bucket keys and counts a pair once.
  const Result paper = run("reformer", in, {{"buckets", "4"}, {"rounds", "2"}, {"chunk", "8"}});
  const auto paper_rows = rowsOf(*paper.explanation.pattern);
  const std::vector<std::int32_t>& bucket2 = groupingOf(paper, "round 2 buckets").label;
  EXPECT_EQ(groupingOf(paper, "round 1 buckets").label, bucket);
  for (Index i = 0; i < 64; ++i)
    for (auto j : paper_rows[size_t(i)]) {
      EXPECT_TRUE(rows[size_t(i)].count(j) || j == i) << i << " " << j;
      EXPECT_TRUE(bucket[size_t(i)] == bucket[size_t(j)] || bucket2[size_t(i)] == bucket2[size_t(j)]) << i << " " << j;
    }
}

TEST(TruthHashing, ReformerUnscaledLogitsAreTraxsQDotUnitKeyOnTheSamePattern) {
  // trax's logits q·k̂ (its unit keys carry no 1/√d) against the paper's q·k̂/√d: the same hashes, hence the
  // same pattern, but √d times sharper rows, so the pattern holds a different share of its own reference's
  // mass. At one bucket and one chunk, the output is softmax(q·k̂) without self, and so is the own reference.
  const Inputs small = test::mechanismInputs(Generator::Clustered, 64);
  const auto m = requireMechanism("reformer");
  const std::map<std::string, std::string> one = {{"buckets", "1"}, {"rounds", "1"}, {"chunk", "64"},
                                                  {"unscaled_logits", "1"}};
  const Result r = run("reformer", small, one);
  std::vector<std::set<std::int32_t>> all(64);
  for (Index i = 0; i < 64; ++i)
    for (Index j = 0; j < 64; ++j)
      if (j != i) all[size_t(i)].insert(std::int32_t(j));
  const auto [expected, w] = perRoundAttention(small.q.cast<double>(), unitRows(small.q), small.v.cast<double>(), {all}, 1.0);
  EXPECT_LT(relativeError(r.output, expected), 1e-5);
  const auto own = m->ownReference(small, Params::resolve(m->params(), one));
  ASSERT_TRUE(own);
  DenseAttentionOptions ro;
  ro.mask_self = own->inputs.mask_self;
  EXPECT_LT(relativeError(Matrix(test::refAttention(own->inputs.q, own->inputs.k, own->inputs.v, ro).cast<float>()),
                          expected),
            1e-5);
  // The default input (clustered, N = 256, d = 64) and parameters: one pattern, two shares of the mass.
  InputSpec spec;
  spec.generator = Generator::Clustered;
  spec.n = 256;
  spec.d = 64;
  spec.dv = 16;
  const Inputs in = generate(spec);
  std::vector<double> recall;
  std::vector<std::set<std::int32_t>> first;
  for (const char* unscaled : {"0", "1"}) {
    const Params p = Params::resolve(m->params(), {{"unscaled_logits", unscaled}});
    const Result res = run("reformer", in, {{"unscaled_logits", unscaled}});
    const auto rows = rowsOf(*res.explanation.pattern);
    if (first.empty()) first = rows;
    EXPECT_EQ(rows, first);
    const auto ref = m->ownReference(in, p);
    const MatrixD q = ref->inputs.q.cast<double>(), k = ref->inputs.k.cast<double>();
    double total = 0;
    for (Index i = 0; i < 256; ++i) {
      Eigen::RowVectorXd s = q.row(i) * k.transpose() / 8.0;  // the reference's 1/√d on its (scaled) queries
      s(i) = -1e300;
      s = (s.array() - s.maxCoeff()).exp().matrix();
      s /= s.sum();
      for (auto j : rows[size_t(i)]) total += s(j);
    }
    recall.push_back(total / 256);
  }
  std::printf("[ reformer clustered N=256 d=64 defaults ] own-reference mass recall of one pattern: q·k̂/√d %.3f, "
              "q·k̂ %.3f\n",
              recall[0], recall[1]);
  EXPECT_GT(recall[1], recall[0] + 0.1);
}

// --- SMYRF ---------------------------------------------------------------------------------------------------

TEST(TruthHashing, SmyrfClustersAreBalancedCutsOfTheAsymmetricProjection) {
  // F(q) = [q, 0, √(M_Q² + M_K² − ‖q‖²)], G(k) = [k, √(M_Q² + M_K² − ‖k‖²), 0]; per hash, queries and keys are
  // sorted separately by their projection on the direction a and cut into L equal clusters. Recomputed in
  // double from the a each hash exposes; N = 100 is not a multiple of c = 16 (L = 6, sizes 16 or 17).
  const Inputs in = test::mechanismInputs(Generator::Clustered, 100);
  const Result r = run("smyrf", in, {{"cluster_size", "16"}, {"hashes", "2"}});
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>();
  const double m2 = q.rowwise().squaredNorm().maxCoeff() + k.rowwise().squaredNorm().maxCoeff();
  MatrixD f = MatrixD::Zero(100, 34), g = MatrixD::Zero(100, 34);
  for (Index i = 0; i < 100; ++i) {
    f.row(i).head(32) = q.row(i);
    f(i, 33) = std::sqrt(m2 - q.row(i).squaredNorm());
    g.row(i).head(32) = k.row(i);
    g(i, 32) = std::sqrt(m2 - k.row(i).squaredNorm());
  }
  auto cut = [](const Eigen::VectorXd& projection, Index clusters) {
    std::vector<std::int32_t> order(size_t(projection.size())), label(order.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return projection(a) < projection(b); });
    for (size_t rank = 0; rank < order.size(); ++rank)
      label[size_t(order[rank])] = std::int32_t(Index(rank) * clusters / projection.size());
    return label;
  };
  for (int h = 1; h <= 2; ++h) {
    const MatrixD a = factorOf(stepOf(r, "project"), "direction a (hash " + std::to_string(h) + ")").cast<double>();
    ASSERT_EQ(a.rows(), 34);
    const std::string name = "hash " + std::to_string(h);
    const std::vector<std::int32_t> ql = cut(f * a, 6), kl = cut(g * a, 6);
    const Grouping& gq = groupingOf(r, name + " query clusters");
    const Grouping& gk = groupingOf(r, name + " key clusters");
    Index differ = 0;
    for (Index i = 0; i < 100; ++i) differ += (gq.label[size_t(i)] != ql[size_t(i)]) + (gk.label[size_t(i)] != kl[size_t(i)]);
    EXPECT_LE(differ, 2) << name;  // a float near tie at a cluster border may swap two tokens
  }
}

TEST(TruthHashing, SmyrfPerHashCountingIsTheCodesCombinationAndOnceIsTheUnion) {
  // The SMYRF code: each hash's softmax over its cluster, hashes combined by their log-normalisers, so a
  // pair that c hashes find weighs c times. The default counts it once: softmax over the union.
  const Inputs in = test::mechanismInputs(Generator::Clustered, 64);
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  for (const char* pairs : {"per-hash", "once"}) {
    const Result r = run("smyrf", in, {{"cluster_size", "16"}, {"hashes", "3"}, {"pairs", pairs}});
    std::vector<std::vector<std::set<std::int32_t>>> keys;
    for (int h = 1; h <= 3; ++h) {
      const std::string name = "hash " + std::to_string(h);
      const auto& ql = groupingOf(r, name + " query clusters").label;
      const auto& kl = groupingOf(r, name + " key clusters").label;
      std::vector<std::set<std::int32_t>> round(64);
      for (Index i = 0; i < 64; ++i)
        for (Index j = 0; j < 64; ++j)
          if (ql[size_t(i)] == kl[size_t(j)]) round[size_t(i)].insert(std::int32_t(j));
      keys.push_back(std::move(round));
    }
    if (std::string(pairs) == "once") {  // the union, each pair once
      std::vector<std::set<std::int32_t>> all(64);
      for (const auto& round : keys)
        for (Index i = 0; i < 64; ++i) all[size_t(i)].insert(round[size_t(i)].begin(), round[size_t(i)].end());
      keys = {all};
    }
    const auto [out, w] = perRoundAttention(q, k, v, keys);
    EXPECT_LT(relativeError(r.output, out), 1e-5) << pairs;
    EXPECT_LT(relativeError(r.explanation.weights.dense(), w), 1e-5) << pairs;
  }
}

// --- SCRAM ---------------------------------------------------------------------------------------------------

TEST(TruthHashing, ScramLastPassLeavesNoBetterKeyToPropagate) {
  // PatchMatch propagation: in a forward pass query i tries the key of its left neighbour shifted right by
  // one pixel and that of its up neighbour shifted down, after those neighbours are final for the pass
  // (backward: right and down, shifted left and up). So after the last pass no query's key scores below
  // its neighbours' shifted keys. Checked in double on the final field, after a forward (1 iteration) and
  // a backward (2) last pass, on Gaussian tokens: there the key found after ~10 candidates is rarely the
  // argmax, so a pass that tried the wrong (say, unshifted) keys would leave better shifted keys behind.
  const Inputs in = test::mechanismInputs(Generator::Gaussian, 256);  // a 16×16 grid
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>();
  const Index w = 16, h = 16;
  for (int iterations : {1, 2}) {
    const Result r = run("scram", in, {{"iterations", std::to_string(iterations)}});
    const Pattern& field = *stepOf(r, "iteration " + std::to_string(iterations)).view->pattern;
    auto key = [&](Index i) { return Index(field.col[size_t(field.row_ptr[size_t(i)])]); };
    const bool forward = iterations % 2 == 1;
    Index tried = 0;
    for (Index i = 0; i < 256; ++i) {
      const Index y = i / w, x = i % w;
      const double own = q.row(i).dot(k.row(key(i)));
      std::vector<Index> shifted;
      if (forward) {
        if (x > 0 && key(i - 1) % w + 1 < w) shifted.push_back(key(i - 1) + 1);
        if (y > 0 && key(i - w) / w + 1 < h) shifted.push_back(key(i - w) + w);
      } else {
        if (x + 1 < w && key(i + 1) % w > 0) shifted.push_back(key(i + 1) - 1);
        if (y + 1 < h && key(i + w) / w > 0) shifted.push_back(key(i + w) - w);
      }
      for (Index j : shifted) {
        ++tried;
        EXPECT_GE(own, q.row(i).dot(k.row(j)) - 1e-4 * (1 + std::abs(own))) << "iterations " << iterations << " query "
                                                                            << i << " key " << key(i) << " vs " << j;
      }
    }
    EXPECT_GT(tried, 400) << iterations;
  }
}

}  // namespace
}  // namespace attn
