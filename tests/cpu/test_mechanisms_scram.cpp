// SCRAM (CATALOG.md #9) and the `image` input it is meant for: limit cases against exact attention,
// the paper's claim (PatchMatch finds the argmax key with few candidates, and the window around it holds
// the attention mass), causality, determinism and parameter handling. The generic checks of every
// mechanism are in test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in the gpu suite.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/random.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs image(Index n, std::uint64_t seed = 1) { return test::mechanismInputs(Generator::Image, n, seed); }
Result run(const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false,
           std::uint64_t seed = 1) {
  return test::runMechanism("scram", in, std::move(params), causal, seed);
}

/// The exact argmax key of every query (j ≤ i when causal), in double.
std::vector<Index> exactArgmax(const Inputs& in, bool causal = false) {
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>();
  std::vector<Index> top(size_t(in.n()));
  for (Index i = 0; i < in.n(); ++i) {
    const Index visible = causal ? i + 1 : in.m();
    Eigen::VectorXd s = k.topRows(visible) * q.row(i).transpose();
    s.maxCoeff(&top[size_t(i)]);
  }
  return top;
}

/// The key each query holds in a PatchMatch step's view (one entry per row).
std::vector<Index> fieldOf(const Step& step) {
  const Pattern& p = *step.view->pattern;
  std::vector<Index> f(size_t(p.rows));
  for (Index i = 0; i < p.rows; ++i) {
    EXPECT_EQ(p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)], 1);
    f[size_t(i)] = p.col[size_t(p.row_ptr[size_t(i)])];
  }
  return f;
}

double recallOf(const std::vector<Index>& field, const std::vector<Index>& top) {
  Index hits = 0;
  for (size_t i = 0; i < top.size(); ++i) hits += field[i] == top[i];
  return double(hits) / double(top.size());
}

// --- the image input ---------------------------------------------------------------------------------------

TEST(ImageInput, GridIsTheMostSquareDivisorSplit) {
  EXPECT_EQ(gridWidth(1), 1);
  EXPECT_EQ(gridWidth(97), 1);  // prime: a 97×1 strip
  EXPECT_EQ(gridWidth(256), 16);
  EXPECT_EQ(gridWidth(512), 16);  // 32 rows of 16
  EXPECT_EQ(gridWidth(1024), 32);
  EXPECT_EQ(gridWidth(150), 10);
  EXPECT_EQ(parseGenerator("image"), Generator::Image);
}

TEST(ImageInput, PixelsAttendToTheirRegionNearby) {
  const Inputs in = image(1024);
  ASSERT_EQ(in.cluster.size(), 1024u);
  const std::int32_t regions = *std::max_element(in.cluster.begin(), in.cluster.end()) + 1;
  EXPECT_GE(regions, 3);  // background and shapes
  EXPECT_LE(regions, 6);
  // Exact attention keeps most of its mass inside the query's region, and the argmax is within a few
  // pixels: the spatial coherence SCRAM relies on.
  const Result exact = test::runMechanism("exact", in);
  const Matrix w = exact.explanation.weights.dense();
  double same = 0;
  for (Index i = 0; i < 1024; ++i)
    for (Index j = 0; j < 1024; ++j)
      if (in.cluster[size_t(i)] == in.cluster[size_t(j)]) same += w(i, j);
  same /= 1024;
  const std::vector<Index> top = exactArgmax(in);
  double near = 0;
  for (Index i = 0; i < 1024; ++i)
    near += std::abs(top[size_t(i)] / 32 - i / 32) <= 2 && std::abs(top[size_t(i)] % 32 - i % 32) <= 2;
  near /= 1024;
  std::printf("[ image N=1024 ] mass in the own region %.3f, argmax within 2 pixels %.3f\n", same, near);
  EXPECT_GT(same, 0.9);
  EXPECT_GT(near, 0.9);
}

// --- scram: limit cases ---------------------------------------------------------------------------------

TEST(Scram, WindowCoveringTheGridIsExact) {
  for (bool causal : {false, true}) {
    const Inputs in = image(150);  // 15×10
    const Result r = run(in, {{"radius", "15"}}, causal);
    EXPECT_LT(test::errorVsExact(r, in, causal), 1e-5) << "causal=" << causal;
    EXPECT_EQ(r.explanation.pattern->nnz(), causal ? 150 * 151 / 2 : 150 * 150);
  }
  // Any input, any grid: keys are just positions there.
  const Inputs g = test::mechanismInputs(Generator::Gaussian, 96);
  EXPECT_LT(test::errorVsExact(run(g, {{"width", "12"}, {"radius", "12"}}), g, false), 1e-5);
}

TEST(Scram, RadiusZeroAttendsToTheFoundKeyAlone) {
  const Inputs in = image(64);
  const Result r = run(in, {{"radius", "0"}});
  const Pattern& p = *r.explanation.pattern;
  const std::vector<Index> found = fieldOf(r.explanation.steps.at(4));  // iteration 4, the default
  for (Index i = 0; i < 64; ++i) {
    ASSERT_EQ(p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)], 1);
    EXPECT_EQ(p.col[size_t(p.row_ptr[size_t(i)])], found[size_t(i)]);
    EXPECT_LT((r.output.row(i) - in.v.row(found[size_t(i)])).norm(), 1e-5);
  }
}

TEST(Scram, WindowIsTheClippedSquareAroundTheKey) {
  const Inputs in = image(256);  // 16×16
  const Result r = run(in, {{"radius", "2"}, {"random_keys", "3"}});
  const Pattern& p = *r.explanation.pattern;
  const std::vector<Index> found = fieldOf(r.explanation.steps.at(4));
  ASSERT_EQ(p.components, (std::vector<std::string>{"argmax", "argmax window", "random"}));
  for (Index i = 0; i < 256; i += 5) {
    const Index c = found[size_t(i)];
    EXPECT_EQ(p.components[size_t(p.componentOf(i, c))], "argmax");
    Index window = 0;
    for (Index j = 0; j < 256; ++j) {
      const bool inside = std::abs(j / 16 - c / 16) <= 2 && std::abs(j % 16 - c % 16) <= 2;
      window += inside;
      if (inside) {
        EXPECT_TRUE(p.contains(i, j)) << i << "," << j;
      } else if (p.contains(i, j)) {
        EXPECT_EQ(p.components[size_t(p.componentOf(i, j))], "random");
      }
    }
    const Index rows = p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)];
    EXPECT_GE(rows, window);
    EXPECT_LE(rows, window + 3);
  }
}

// --- scram: the paper's claim ---------------------------------------------------------------------------

TEST(Scram, PatchMatchFindsTheArgmaxWithFarFewerCandidatesThanRandomSearch) {
  // 32×32 image, d = 32, 4 iterations: 33 candidates scored per query instead of 1024. Measured (seed
  // 1): argmax recall 0.001 at the random start → 0.837 → 0.880 → 0.901 → 0.918 after 4 iterations,
  // while the best of the same number (33) of uniformly random keys is the argmax for 0.035 of queries.
  const Inputs in = image(1024);
  const Result r = run(in);
  ASSERT_EQ(r.explanation.steps.size(), 6u);  // init, 4 iterations, attend
  const std::vector<Index> top = exactArgmax(in);
  std::vector<double> recall;
  for (size_t s = 0; s < 5; ++s) recall.push_back(recallOf(fieldOf(r.explanation.steps[s]), top));
  const double evaluations = r.cost.scored_pairs - double(r.explanation.pattern->nnz());
  const Index per_query = Index(std::lround(evaluations / 1024));
  // Baseline: the best of per_query uniformly random keys per query.
  Rng rng(17);
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>();
  Index hits = 0;
  for (Index i = 0; i < 1024; ++i) {
    Index best = -1;
    double best_score = -1e300;
    for (Index c = 0; c < per_query; ++c) {
      const Index j = Index(rng.below(1024));
      const double s = q.row(i).dot(k.row(j));
      if (s > best_score) best_score = s, best = j;
    }
    hits += best == top[size_t(i)];
  }
  const double random_recall = double(hits) / 1024;
  std::printf("[ scram image N=1024 ] %lld candidates/query; argmax recall init %.3f it1 %.3f it2 %.3f it3 %.3f "
              "it4 %.3f; random candidates %.3f\n",
              static_cast<long long>(per_query), recall[0], recall[1], recall[2], recall[3], recall[4],
              random_recall);
  EXPECT_LE(per_query, 40);
  EXPECT_LT(recall[0], 0.02);
  EXPECT_GT(recall[1], 0.7);  // one propagation pass carries a found key across a whole region
  // Later passes (backward scans, finer random search) keep finding argmaxes the first pass missed.
  EXPECT_GT(recall[4], recall[1] + 0.04);
  EXPECT_GT(recall[4], 0.85);
  EXPECT_GT(recall[4], random_recall + 0.7);
  // The views colour the same queries "found" (up to float rounding of near ties).
  const Pattern& last = *r.explanation.steps[4].view->pattern;
  const double coloured = double(std::count(last.component.begin(), last.component.end(), 0)) / 1024;
  EXPECT_NEAR(coloured, recall[4], 0.02);
  bool noted = false;
  for (const std::string& note : r.explanation.notes) noted |= note.rfind("argmax recall: init", 0) == 0;
  EXPECT_TRUE(noted);
}

TEST(Scram, WindowAroundTheFoundKeyHoldsMoreMassThanAroundARandomKey) {
  // Spatial coherence: the 3×3 window around the found argmax sees most of the exact attention mass;
  // the same window around a random key does not. Measured (seed 1): 0.719 vs 0.008.
  const Inputs in = image(1024);
  const Result exact = test::runMechanism("exact", in);
  const Result r = run(in);
  const double found = massRecall(*r.explanation.pattern, exact.explanation.weights);
  Pattern random;
  random.rows = random.cols = 1024;
  random.components = {"random window"};
  random.row_ptr.push_back(0);
  Rng rng(23);
  for (Index i = 0; i < 1024; ++i) {
    const Index c = Index(rng.below(1024)), cy = c / 32, cx = c % 32;
    for (Index y = std::max<Index>(0, cy - 1); y <= std::min<Index>(31, cy + 1); ++y)
      for (Index x = std::max<Index>(0, cx - 1); x <= std::min<Index>(31, cx + 1); ++x)
        random.col.push_back(std::int32_t(y * 32 + x));
    random.row_ptr.push_back(Index(random.col.size()));
  }
  random.component.assign(random.col.size(), 0);
  const double shuffled = massRecall(random, exact.explanation.weights);
  std::printf("[ scram image N=1024 r=1 ] mass recall %.3f, the same window around a random key %.3f\n", found,
              shuffled);
  EXPECT_GT(found, 0.5);
  EXPECT_GT(found, shuffled + 0.4);
  // A wider window sees more.
  EXPECT_GT(massRecall(*run(in, {{"radius", "2"}}).explanation.pattern, exact.explanation.weights), found + 0.05);
}

// --- scram: causality, determinism, parameters -----------------------------------------------------------

TEST(Scram, CausalKeysAndOutputsDependOnEarlierTokensOnly) {
  const Inputs in = image(144);  // 12×12
  const std::map<std::string, std::string> params = {{"radius", "1"}, {"random_keys", "2"}, {"iterations", "3"}};
  const Result a = run(in, params, true);
  for (size_t s = 0; s + 1 < a.explanation.steps.size(); ++s) {
    const std::vector<Index> f = fieldOf(a.explanation.steps[s]);
    for (Index i = 0; i < 144; ++i) EXPECT_LE(f[size_t(i)], i) << "step " << s;
  }
  const Pattern& p = *a.explanation.pattern;
  for (Index i = 0; i < 144; ++i) {
    EXPECT_GT(p.row_ptr[size_t(i + 1)], p.row_ptr[size_t(i)]);  // never an empty row
    EXPECT_LE(p.col[size_t(p.row_ptr[size_t(i + 1)] - 1)], i);
  }
  Inputs changed = in;
  Rng rng(99);
  const Index cut = 80;
  changed.q.bottomRows(144 - cut - 1) = rng.gaussian(144 - cut - 1, in.q.cols(), 5);
  changed.k.bottomRows(144 - cut - 1) = rng.gaussian(144 - cut - 1, in.k.cols(), 5);
  changed.v.bottomRows(144 - cut - 1) = rng.gaussian(144 - cut - 1, in.v.cols());
  const Result b = run(changed, params, true);
  EXPECT_TRUE(a.output.topRows(cut + 1) == b.output.topRows(cut + 1));
  EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10));
  // The causal argmax is found too (forward scans only). Measured (seed 1): 1.000.
  const double recall = recallOf(fieldOf(a.explanation.steps[3]), exactArgmax(in, true));
  std::printf("[ scram image N=144 causal ] argmax recall after 3 iterations %.3f\n", recall);
  EXPECT_GT(recall, 0.9);
  // The setting of the generic test (AllMechanisms.CausalOutputsIgnoreLaterTokensBitForBit): clustered
  // N = 120 (a 12×10 grid), tokens after 70 replaced.
  const Inputs c = test::mechanismInputs(Generator::Clustered, 120);
  const std::map<std::string, std::string> generic = {{"radius", "1"}, {"random_keys", "2"}};
  const Result ca = run(c, generic, true);
  Inputs cc = c;
  cc.q.bottomRows(49) = rng.gaussian(49, c.q.cols());
  cc.k.bottomRows(49) = rng.gaussian(49, c.k.cols());
  cc.v.bottomRows(49) = rng.gaussian(49, c.v.cols());
  const Result cb = run(cc, generic, true);
  EXPECT_TRUE(ca.output.topRows(71) == cb.output.topRows(71));
  EXPECT_FALSE(ca.output.bottomRows(10) == cb.output.bottomRows(10));
}

TEST(Scram, DeterministicForAFixedSeed) {
  const Inputs in = image(256);
  const Result a = run(in, {{"random_keys", "2"}}, false, 5), b = run(in, {{"random_keys", "2"}}, false, 5);
  EXPECT_TRUE(a.output == b.output);
  ASSERT_EQ(a.explanation.steps.size(), b.explanation.steps.size());
  for (size_t s = 0; s + 1 < a.explanation.steps.size(); ++s)
    EXPECT_EQ(fieldOf(a.explanation.steps[s]), fieldOf(b.explanation.steps[s]));
  EXPECT_EQ(a.explanation.pattern->col, b.explanation.pattern->col);
  const Result c = run(in, {{"random_keys", "2"}}, false, 6);
  EXPECT_NE(fieldOf(a.explanation.steps[0]), fieldOf(c.explanation.steps[0]));
  EXPECT_NE(a.explanation.pattern->col, c.explanation.pattern->col);
}

// random_keys past N only repeats keys: it counts as N draws (the same draws, so the same output), and says
// so. Drawing 2^20 keys a row used to take most of a minute at N = 1024.
TEST(Scram, RandomKeysBeyondNCountAsN) {
  const Inputs in = image(256);
  const Result many = run(in, {{"random_keys", "1048576"}}), n = run(in, {{"random_keys", "256"}});
  EXPECT_TRUE(many.output == n.output);
  bool noted = false;
  for (const std::string& note : many.explanation.notes)
    noted |= note.find("random_keys = 1048576 counts as N = 256") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(Scram, ExplanationHasTheFieldStepsAndTheOffsetMaps) {
  const Inputs in = image(512);  // 32 rows of 16
  const Result r = run(in, {{"iterations", "2"}});
  ASSERT_EQ(r.explanation.steps.size(), 4u);
  EXPECT_EQ(r.explanation.steps[0].title, "init");
  EXPECT_EQ(r.explanation.steps[2].title, "iteration 2");
  EXPECT_EQ(r.explanation.steps[3].title, "attend");
  EXPECT_TRUE(r.explanation.steps[3].view->weights);
  EXPECT_EQ(r.explanation.steps[1].view->pattern->components,
            (std::vector<std::string>{"exact argmax found", "current candidate"}));
  ASSERT_GE(r.explanation.factors.size(), 1u);
  const NamedMatrix& field = r.explanation.factors[0];
  EXPECT_EQ(field.name, "argmax offset field");
  ASSERT_EQ(field.value.rows(), 32);
  ASSERT_EQ(field.value.cols(), 16);
  const std::vector<Index> f = fieldOf(r.explanation.steps[2]);
  for (Index i = 0; i < 512; i += 11) {
    const double dy = double(f[size_t(i)] / 16 - i / 16), dx = double(f[size_t(i)] % 16 - i % 16);
    EXPECT_NEAR(field.value(i / 16, i % 16), std::sqrt(dx * dx + dy * dy), 1e-5);
  }
  EXPECT_GT(r.cost.flops, 0);
  EXPECT_GT(r.cost.peak_bytes, 0);
  EXPECT_GE(r.cost.stages.size(), 4u);  // init, 2 iterations, pattern, attend
}

TEST(Scram, BadParametersAreClearErrorsOrClamps) {
  const Inputs in = image(64);
  try {
    run(in, {{"width", "7"}});
    FAIL() << "width 7 does not divide 64";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run(in, {{"width", "65"}}), UserError);
  EXPECT_EQ(run(in, {{"width", "4"}}).explanation.factors[0].value.cols(), 4);  // 16×4
  // Out-of-range numbers are clamped (and noted by Params), never a crash.
  const std::vector<std::pair<std::string, std::string>> odd = {
      {"alpha", "1.5"}, {"alpha", "0"}, {"radius", "-3"}, {"iterations", "-1"}, {"random_keys", "100000"}};
  for (const auto& [name, value] : odd) {
    const Result r = run(in, {{name, value}});
    EXPECT_FALSE(r.output.hasNaN()) << name << "=" << value;
  }
  // One token, and a strip (prime N), causal or not.
  for (Index n : {1, 2, 13})
    for (bool causal : {false, true}) {
      const Inputs small = image(n);
      const Result r = run(small, {{"random_keys", "2"}}, causal);
      EXPECT_EQ(r.output.rows(), n);
      EXPECT_FALSE(r.output.hasNaN());
      EXPECT_LT(test::errorVsExact(run(small, {{"radius", "13"}}, causal), small, causal), 1e-5);
    }
  // Keys that are not the query grid.
  Inputs other = image(64);
  other.k = other.k.topRows(32).eval();
  other.v = other.v.topRows(32).eval();
  EXPECT_THROW(run(other), UserError);
}

}  // namespace
}  // namespace attn
