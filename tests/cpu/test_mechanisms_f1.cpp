// Fixed-pattern mechanisms (CATALOG.md F1) on the pattern engine: limit cases against exact
// attention and the papers' qualitative claims (two-hop / three-layer reachability, exponential
// receptive fields, mass recall on structured inputs, random blocks). Causality and determinism of
// every mechanism are checked in test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in the gpu suite.
#include <cmath>
#include <set>

#include "attention/mechanism.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

/// d = 32, dv = 16 inputs; `period` for the periodic generator.
Inputs inputs(Generator g, Index n, std::uint64_t seed = 1, Index period = 32) {
  return test::mechanismInputs(g, n, seed, period);
}
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false,
           std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}
using test::errorVsExact;

double recall(const Result& r, const Inputs& in, bool causal) {
  return massRecall(*r.explanation.pattern, run("exact", in, {}, causal).explanation.weights);
}

/// The pattern of the step titled `title`.
const Pattern& stepPattern(const Result& r, const std::string& title) {
  for (const Step& s : r.explanation.steps)
    if (s.title == title && s.view && s.view->pattern) return *s.view->pattern;
  throw std::runtime_error("no step " + title);
}

/// Mean entries (tokens and summary nodes) per query of a summary-engine run: its scored pairs
/// (the entries of the extended pattern) over the rows.
double meanEntries(const Result& r) { return r.cost.scored_pairs / double(std::max<Index>(1, r.output.rows())); }

/// true when row i of p holds every j ≤ i (causal) or every j.
bool coversAll(const Pattern& p, bool causal) {
  for (Index i = 0; i < p.rows; ++i) {
    const Index want = causal ? std::min(i + 1, p.cols) : p.cols;
    if (p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)] != want) return false;
  }
  return true;
}

// --- sparse-transformer ----------------------------------------------------------------------------------

TEST(SparseTransformer, StrideCoveringTheSequenceEqualsExact) {
  const Inputs in = inputs(Generator::Clustered, 150);
  for (const char* variant : {"strided", "fixed"})
    for (bool causal : {false, true}) {
      const Result r = run("sparse-transformer", in, {{"variant", variant}, {"stride", "150"}}, causal);
      EXPECT_LT(errorVsExact(r, in, causal), 1e-5) << variant << " causal " << causal;
    }
}

TEST(SparseTransformer, EveryEarlierPositionIsTwoHopsAway) {
  // The paper's argument for the factorisation: S₁∪S₂ composed with itself reaches every j ≤ i.
  for (const char* variant : {"strided", "fixed"})
    for (Index n : {100, 257}) {
      const Inputs in = inputs(Generator::Gaussian, n);
      const Result r = run("sparse-transformer", in, {{"variant", variant}}, true);
      EXPECT_FALSE(coversAll(*r.explanation.pattern, true)) << "one hop must not already cover everything";
      EXPECT_TRUE(coversAll(stepPattern(r, "Two hops"), true)) << variant << " N=" << n;
      // At these small N the fixed form's default c (⌈l/4⌉ below l = 32) sees up to 38 % of the causal
      // pairs; the density falls as (1 + c)/√N with N (TruthSparseTransformer.ScoredPairsGrowAsNRootN…).
      EXPECT_LT(double(r.explanation.pattern->nnz()), 0.4 * double(n * (n + 1) / 2)) << variant;
    }
}

TEST(SparseTransformer, StridedSeesMoreOfAPeriodicInputThanFixed) {
  // Strided attention lines up with a period equal to its stride (image rasters, music).
  const Inputs in = inputs(Generator::Periodic, 512, 1, 32);
  const Result strided = run("sparse-transformer", in, {{"variant", "strided"}, {"stride", "32"}}, true);
  const Result fixed = run("sparse-transformer", in, {{"variant", "fixed"}, {"stride", "32"}}, true);
  const double rs = recall(strided, in, true), rf = recall(fixed, in, true);
  std::printf("[ periodic, l = 32 ] mass recall strided %.3f, fixed %.3f\n", rs, rf);
  EXPECT_GT(rs, rf + 0.1);
}

TEST(SparseTransformer, AutomaticStrideIsRootNAndSummaryIsClamped) {
  const Inputs in = inputs(Generator::Gaussian, 100);
  const Result r = run("sparse-transformer", in, {{"variant", "fixed"}, {"summary", "50"}}, true);
  bool noted = false;
  for (const std::string& s : r.explanation.notes) noted |= s.find("stride l = 10") != std::string::npos;
  EXPECT_TRUE(noted);
  bool clamped = false;
  for (const std::string& s : r.explanation.notes) clamped |= s.find("clamped") != std::string::npos;
  EXPECT_TRUE(clamped);
}

// --- transformer-on-a-diet -------------------------------------------------------------------------------

TEST(TransformerOnADiet, WideCascadeWindowEqualsExact) {
  const Inputs in = inputs(Generator::Local, 120);
  const Result r = run("transformer-on-a-diet", in, {{"variant", "cascade"}, {"w0", "200"}, {"layer", "0"}}, true);
  EXPECT_LT(errorVsExact(r, in, true), 1e-5);
}

TEST(TransformerOnADiet, DilatedReceptiveFieldGrowsExponentially) {
  // k = 3, b = 2: layers reach offsets {0,1,2}·1, {0,2,4}, {0,4,8}, …: L layers cover exactly the
  // (k−1)(b^L − 1)/(b − 1) + 1 most recent positions — 15 after 3 layers, 31 after 4.
  const Inputs in = inputs(Generator::Gaussian, 80);
  for (Index layers : {3, 4}) {
    const Result r = run("transformer-on-a-diet", in, {{"layers", std::to_string(layers)}, {"layer", "0"}}, true);
    const Pattern& field = stepPattern(r, "Receptive field");
    const Index span = 2 * ((Index(1) << layers) - 1) + 1;
    for (Index i = 0; i < in.n(); ++i) {
      const Index count = field.row_ptr[size_t(i + 1)] - field.row_ptr[size_t(i)];
      EXPECT_EQ(count, std::min(i + 1, span)) << "row " << i << " layers " << layers;
      EXPECT_EQ(field.col[size_t(field.row_ptr[size_t(i)])], std::max<Index>(0, i - span + 1));
    }
    EXPECT_EQ(r.explanation.pattern->nnz(), [&] {  // one layer: 3 keys per row (fewer at the start)
      Index total = 0;
      for (Index i = 0; i < in.n(); ++i) total += 1 + (i >= 1) + (i >= 2);
      return total;
    }());
  }
}

TEST(TransformerOnADiet, LayerBeyondTheStackIsClampedWithANote) {
  const Inputs in = inputs(Generator::Gaussian, 40);
  const Result r = run("transformer-on-a-diet", in, {{"layer", "9"}, {"layers", "3"}}, true);
  ASSERT_FALSE(r.explanation.notes.empty());
  EXPECT_NE(r.explanation.notes.front().find("clamped"), std::string::npos);
}

// --- jukebox ---------------------------------------------------------------------------------------------

TEST(Jukebox, OneRowIsExactCausalAttention) {
  const Inputs in = inputs(Generator::Clustered, 90);
  const Result r = run("jukebox", in, {{"variant", "row"}, {"row_length", "90"}}, true);
  EXPECT_LT(errorVsExact(r, in, true), 1e-5);
}

TEST(Jukebox, ThreeLayersReachEveryEarlierToken) {
  for (Index n : {64, 100}) {
    const Inputs in = inputs(Generator::Gaussian, n);
    const Result r = run("jukebox", in, {}, true);
    for (const char* layer : {"Row", "Column", "Previous row"})
      EXPECT_FALSE(coversAll(stepPattern(r, layer), true)) << layer;
    EXPECT_TRUE(coversAll(stepPattern(r, "Three layers"), true)) << "N=" << n;
  }
}

TEST(Jukebox, ColumnMaskFollowsAPeriodEqualToTheRowLength) {
  const Inputs in = inputs(Generator::Periodic, 256, 1, 16);
  const double column = recall(run("jukebox", in, {{"variant", "column"}, {"row_length", "16"}}, true), in, true);
  const double row = recall(run("jukebox", in, {{"variant", "row"}, {"row_length", "16"}}, true), in, true);
  std::printf("[ periodic, L = 16 ] mass recall column %.3f, row %.3f\n", column, row);
  EXPECT_GT(column, row);
}

// --- bigbird ---------------------------------------------------------------------------------------------

TEST(BigBird, OneBlockIsExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("bigbird", in, {{"block", "128"}}, causal), in, causal), 1e-5) << causal;
}

TEST(BigBird, PatternHasWindowGlobalAndRandomBlocks) {
  const Inputs in = inputs(Generator::Gaussian, 256);
  const Result r = run("bigbird", in, {{"block", "16"}, {"random", "3"}});
  const Pattern& p = *r.explanation.pattern;
  ASSERT_EQ(p.components, (std::vector<std::string>{"global", "window", "random"}));
  // A middle block's row: 3 window blocks + 2 global blocks + 3 random blocks, 16 keys each.
  const Index i = 8 * 16 + 5;
  EXPECT_EQ(p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)], (3 + 2 + 3) * 16);
  // Global rows see everything; every row sees the global blocks.
  EXPECT_EQ(p.row_ptr[1] - p.row_ptr[0], 256);
  for (Index row : {0, 100, 255}) {
    EXPECT_EQ(p.componentOf(row, 3), 0);
    EXPECT_EQ(p.componentOf(row, 250), 0);
  }
  EXPECT_EQ(p.componentOf(i, i - 16), 1);
}

TEST(BigBird, SeesMoreMassOnLocalInputsThanOnTheCopyTask) {
  auto r = [](Generator g) {
    const Inputs in = inputs(g, 512);
    return recall(run("bigbird", in, {{"block", "16"}, {"random", "3"}}), in, false);
  };
  const double local = r(Generator::Local), copy = r(Generator::Copy);
  std::printf("[ bigbird b=16 r=3 ] mass recall local %.3f, copy %.3f\n", local, copy);
  EXPECT_GT(local, copy + 0.2);
}

TEST(BigBird, ExpectedRecallGrowsWithRandomBlocks) {
  // On the copy task the stripe at N/2 lies outside window and globals: random blocks find it.
  const Inputs in = inputs(Generator::Copy, 512);
  const Result exact = run("exact", in);
  std::vector<double> means;
  for (Index r : {0, 3, 8}) {
    double sum = 0;
    for (std::uint64_t seed = 1; seed <= 5; ++seed)
      sum += massRecall(*run("bigbird", in, {{"block", "16"}, {"random", std::to_string(r)}}, false, seed)
                             .explanation.pattern,
                        exact.explanation.weights);
    means.push_back(sum / 5);
  }
  std::printf("[ bigbird copy task ] mean recall r=0 %.3f, r=3 %.3f, r=8 %.3f\n", means[0], means[1], means[2]);
  EXPECT_LT(means[0], means[1]);
  EXPECT_LT(means[1], means[2]);
}

TEST(BigBird, SeedsDrawDifferentRandomBlocks) {
  const Inputs in = inputs(Generator::Gaussian, 256);
  const Pattern a = *run("bigbird", in, {}, false, 1).explanation.pattern;
  const Pattern b = *run("bigbird", in, {}, false, 2).explanation.pattern;
  EXPECT_NE(a.col, b.col);
}

// --- the engine ------------------------------------------------------------------------------------------

TEST(PatternEngine, FirstComponentWinsAndCausalDropsTheFuture) {
  mech::PatternBuilder b(4, 4, true);
  b.add("a", [](Index i, std::vector<Index>& out) { out.push_back(i); });
  b.add("b", [](Index, std::vector<Index>& out) {
    for (Index j = -2; j < 6; ++j) out.push_back(j);
  });
  const Pattern p = b.build({});
  EXPECT_EQ(p.nnz(), 1 + 2 + 3 + 4);
  EXPECT_EQ(p.componentOf(2, 2), 0);
  EXPECT_EQ(p.componentOf(2, 1), 1);
  EXPECT_EQ(p.componentOf(1, 3), -1);
}

TEST(PatternEngine, ManyRowsDenseAndSparseMatchTheRule) {
  // 700 rows (several blocks built in parallel): sparse rows (a few random keys, duplicates, keys out of
  // range) and dense ones (every key from a later component). Each row must hold exactly the valid keys,
  // ascending, each tagged with the first component that named it.
  const Index rows = 700, cols = 300;
  for (bool causal : {false, true}) {
    mech::PatternBuilder b(rows, cols, causal);
    auto randomKeys = [](Index i, std::uint64_t stream, Index count, std::vector<Index>& out) {
      Rng rng(i + 1, stream);
      for (Index t = 0; t < count; ++t) out.push_back(Index(rng.below(cols + 20)) - 10);
    };
    b.add("first", [&](Index i, std::vector<Index>& out) { randomKeys(i, 1, 12, out); });
    b.add("second", [&](Index i, std::vector<Index>& out) { randomKeys(i, 2, i % 3 == 0 ? 2 : 40, out); });
    b.add("dense", [](Index i, std::vector<Index>& out) {
      if (i % 5 == 0)
        for (Index j = cols - 1; j >= 0; --j) out.push_back(j);
    });
    const Pattern p = b.build({});
    ASSERT_EQ(p.rows, rows);
    ASSERT_EQ(Index(p.row_ptr.size()), rows + 1);
    for (Index i = 0; i < rows; ++i) {
      std::vector<int> want(static_cast<size_t>(cols), -1);
      for (int c = 0; c < 3; ++c) {
        std::vector<Index> keys;
        if (c < 2) randomKeys(i, std::uint64_t(c + 1), c == 0 ? 12 : (i % 3 == 0 ? 2 : 40), keys);
        else if (i % 5 == 0)
          for (Index j = 0; j < cols; ++j) keys.push_back(j);
        for (Index j : keys)
          if (j >= 0 && j < cols && (!causal || j <= i) && want[size_t(j)] < 0) want[size_t(j)] = c;
      }
      std::vector<std::int32_t> want_cols;
      std::vector<std::uint8_t> want_components;
      for (Index j = 0; j < cols; ++j)
        if (want[size_t(j)] >= 0) {
          want_cols.push_back(std::int32_t(j));
          want_components.push_back(std::uint8_t(want[size_t(j)]));
        }
      const auto b0 = p.row_ptr[size_t(i)], b1 = p.row_ptr[size_t(i + 1)];
      ASSERT_EQ(std::vector<std::int32_t>(p.col.begin() + b0, p.col.begin() + b1), want_cols) << "row " << i;
      ASSERT_EQ(std::vector<std::uint8_t>(p.component.begin() + b0, p.component.begin() + b1), want_components)
          << "row " << i;
    }
  }
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

/// Per row: how many tokens its entries cover (a token 1, a span node its length) — the coverage.
std::vector<Index> coverageCounts(const Result& r) {
  const Pattern& c = stepPattern(r, "Coverage");
  std::vector<Index> counts;
  for (Index i = 0; i < c.rows; ++i) counts.push_back(c.row_ptr[size_t(i + 1)] - c.row_ptr[size_t(i)]);
  return counts;
}

// --- bp-transformer --------------------------------------------------------------------------------------

TEST(BpTransformer, NeighboursCoveringTheSequenceEqualExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("bp-transformer", in, {{"k", "100"}}, causal), in, causal), 1e-5) << causal;
}

TEST(BpTransformer, SpansTileTheSequenceWithLogarithmicallyManyNodes) {
  // Every token is covered exactly once (its own past, when causal), by ≈ 2k·log₂(N/k) tokens and spans.
  for (bool causal : {false, true})
    for (Index n : {100, 1000}) {
      const Inputs in = inputs(Generator::Gaussian, n);
      const Index k = 4;
      const Result r = run("bp-transformer", in, {{"k", std::to_string(k)}}, causal);
      const std::vector<Index> counts = coverageCounts(r);
      for (Index i = 0; i < n; ++i) ASSERT_EQ(counts[size_t(i)], causal ? i + 1 : n) << "row " << i;
      const double bound = 2.0 * double(k) * (std::log2(double(n) / double(k)) + 2) + 2 * std::log2(double(n));
      EXPECT_LE(meanEntries(r), bound) << "N=" << n << " causal " << causal;
    }
}

TEST(BpTransformer, LocalInputsAreApproximatedFarBetterThanUnstructuredOnes) {
  // Fine near the query, coarse far away: right where smooth (local) sequences put their mass.
  const Inputs local = inputs(Generator::Local, 512), gaussian = inputs(Generator::Gaussian, 512);
  const double e_local = errorVsExact(run("bp-transformer", local), local, false);
  const double e_gaussian = errorVsExact(run("bp-transformer", gaussian), gaussian, false);
  std::printf("[ bp-transformer k=4 N=512 ] rel. error local %.3f, gaussian %.3f\n", e_local, e_gaussian);
  EXPECT_LT(e_local, 0.2);
  EXPECT_LT(5 * e_local, e_gaussian);
}

// --- multiscale ------------------------------------------------------------------------------------------

TEST(Multiscale, WindowCoveringTheSequenceEqualsExact) {
  const Inputs in = inputs(Generator::Clustered, 90);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("multiscale", in, {{"window", "90"}}, causal), in, causal), 1e-5) << causal;
}

TEST(Multiscale, EntriesPerQueryGrowLogarithmically) {
  auto entries = [](Index n) { return meanEntries(run("multiscale", inputs(Generator::Gaussian, n), {}, true)); };
  const double small = entries(256), large = entries(4096);
  std::printf("[ multiscale w=8 k=4 causal ] mean entries per query: N=256 %.1f, N=4096 %.1f\n", small, large);
  EXPECT_LT(large, 2.0 * small);  // 16× the tokens
}

// --- etc -------------------------------------------------------------------------------------------------

TEST(Etc, FullRadiusWithoutGlobalsEqualsExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  EXPECT_LT(errorVsExact(run("etc", in, {{"radius", "100"}, {"segment", "0"}}), in, false), 1e-5);
}

TEST(Etc, GlobalTokensCarryTheFarContextTheLocalRadiusMisses) {
  // Peaked inputs: a few heavy-hitter keys anywhere in the sequence draw most attention; outside the
  // radius only the global (segment) tokens can bring them in.
  const Inputs in = inputs(Generator::Peaked, 256);
  const double local = errorVsExact(run("etc", in, {{"radius", "8"}, {"segment", "0"}}), in, false);
  const double global = errorVsExact(run("etc", in, {{"radius", "8"}, {"segment", "16"}}), in, false);
  std::printf("[ etc peaked r=8 ] rel. error local only %.3f, with segment globals %.3f\n", local, global);
  EXPECT_LT(global, 0.8 * local);
}

TEST(Etc, RefusesCausal) {
  EXPECT_THROW(run("etc", inputs(Generator::Gaussian, 20), {}, true), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

TEST(Longformer, GlobalTokensCanBePlacedByTheUser) {
  const Inputs in = inputs(Generator::Gaussian, 100);
  const Result spread = run("longformer", in, {{"window", "4"}, {"globals", "4"}, {"placement", "spread"}});
  ASSERT_EQ(spread.explanation.special.size(), 1u);
  EXPECT_EQ(spread.explanation.special[0].indices, (std::vector<Index>{0, 25, 50, 75}));
  const Pattern& p = *spread.explanation.pattern;
  EXPECT_EQ(p.row_ptr[26] - p.row_ptr[25], 100);  // a global row sees everything
  EXPECT_EQ(p.components[size_t(p.componentOf(10, 75))], "global");
  const Result ends = run("longformer", in, {{"window", "4"}, {"globals", "3"}, {"placement", "ends"}});
  EXPECT_EQ(ends.explanation.special[0].indices, (std::vector<Index>{0, 1, 99}));
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

TEST(BigBird, EtcFormAddsGlobalTokensThatCarryFarContext) {
  const Inputs in = inputs(Generator::Peaked, 256);
  const Result itc0 = run("bigbird", in, {{"block", "16"}, {"random", "0"}, {"globals", "0"}});
  const Result etc = run("bigbird", in, {{"block", "16"}, {"random", "0"}, {"globals", "2"}, {"form", "etc"}});
  ASSERT_FALSE(etc.explanation.special.empty());
  EXPECT_EQ(etc.explanation.special.back().spans.size(), 32u);  // g·b extra tokens
  const double e_window = errorVsExact(itc0, in, false), e_etc = errorVsExact(etc, in, false);
  std::printf("[ bigbird peaked b=16 ] rel. error window only %.3f, ETC globals %.3f\n", e_window, e_etc);
  EXPECT_LT(e_etc, e_window);
  EXPECT_THROW(run("bigbird", in, {{"form", "etc"}}, true), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

TEST(Longformer, DilationIsPerHead) {
  const Inputs in = inputs(Generator::Gaussian, 80);
  const std::map<std::string, std::string> base = {
      {"window", "8"}, {"globals", "0"}, {"dilation", "3"}, {"heads", "4"}, {"dilated_heads", "1"}};
  auto with_head = [&](const char* h) {
    auto p = base;
    p["head"] = h;
    return run("longformer", in, p);
  };
  const Result dilated = with_head("0"), plain = with_head("2");
  EXPECT_TRUE(dilated.explanation.pattern->contains(40, 43));
  EXPECT_FALSE(dilated.explanation.pattern->contains(40, 41));
  EXPECT_TRUE(plain.explanation.pattern->contains(40, 41));
  EXPECT_FALSE(plain.explanation.pattern->contains(40, 45));
  ASSERT_EQ(dilated.explanation.steps.size(), 4u);  // one window per head
  EXPECT_TRUE(stepPattern(dilated, "Head 0").contains(40, 43));
  EXPECT_TRUE(stepPattern(dilated, "Head 3").contains(40, 41));
  EXPECT_NE(with_head("9").explanation.notes.front().find("clamped"), std::string::npos);
}

}  // namespace
}  // namespace attn
