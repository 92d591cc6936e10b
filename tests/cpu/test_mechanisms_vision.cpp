// The 2D mechanisms on the grid engine (CATALOG.md E6): CCNet criss-cross attention (#4) and axial attention
// (#16). Their outputs against independent float64 loops over the paper's equations on a 6×5 grid, their
// exact limits, the claims about what their hops reach (on the image input), causality, and bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "attention/metrics.h"
#include "tests/cpu/test_util.h"

namespace attn::test {
namespace {

Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
           bool causal = false) {
  return runMechanism(id, in, std::move(params), causal);
}

Inputs image(Index n) { return mechanismInputs(Generator::Image, n); }

// ---- independent float64 loops over the equations ----

/// One softmax of query u over (key row, value row) pairs: Σ_j softmax_j(q_u·k_j/√d) v_j.
VectorD mix(const MatrixD& q, Index u, const std::vector<std::pair<VectorD, VectorD>>& keys_values) {
  const double s = 1 / std::sqrt(double(q.cols()));
  std::vector<double> logit;
  double top = -INFINITY;
  for (const auto& [k, v] : keys_values) {
    logit.push_back(s * q.row(u).dot(k.transpose()));
    top = std::max(top, logit.back());
  }
  double z = 0;
  for (double& l : logit) z += (l = std::exp(l - top));
  VectorD out = VectorD::Zero(keys_values.front().second.size());
  for (size_t t = 0; t < logit.size(); ++t) out += logit[t] / z * keys_values[t].second;
  return out;
}

/// CCNet, R loops: pixel (y, x) attends to its column (y' ≤ y when causal) and its row without the centre
/// (x' < x when causal), the centre once; each loop's output is the next loop's values.
MatrixD crissCrossLoops(const MatrixD& q, const MatrixD& k, MatrixD v, Index h, Index w, int loops, bool causal) {
  for (int t = 0; t < loops; ++t) {
    MatrixD out(q.rows(), v.cols());
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x) {
        std::vector<std::pair<VectorD, VectorD>> kv;
        for (Index y2 = 0; y2 < h; ++y2)
          if (!causal || y2 <= y) kv.push_back({k.row(y2 * w + x), v.row(y2 * w + x)});
        for (Index x2 = 0; x2 < w; ++x2)
          if (x2 != x && (!causal || x2 < x)) kv.push_back({k.row(y * w + x2), v.row(y * w + x2)});
        out.row(y * w + x) = mix(q, y * w + x, kv);
      }
    v = out;
  }
  return v;
}

/// Axial: Y = row attention of V; O = column attention of Y. Causal: one softmax over the column above
/// (values Y) and the row to the left, the pixel included (values V).
MatrixD axialLoops(const MatrixD& q, const MatrixD& k, const MatrixD& v, Index h, Index w, bool causal) {
  MatrixD y_row(q.rows(), v.cols()), out(q.rows(), v.cols());
  for (Index y = 0; y < h; ++y)
    for (Index x = 0; x < w; ++x) {
      std::vector<std::pair<VectorD, VectorD>> kv;
      for (Index x2 = 0; x2 < w; ++x2) kv.push_back({k.row(y * w + x2), v.row(y * w + x2)});
      y_row.row(y * w + x) = mix(q, y * w + x, kv);
    }
  for (Index y = 0; y < h; ++y)
    for (Index x = 0; x < w; ++x) {
      std::vector<std::pair<VectorD, VectorD>> kv;
      for (Index y2 = 0; y2 < (causal ? y : h); ++y2) kv.push_back({k.row(y2 * w + x), y_row.row(y2 * w + x)});
      if (causal)
        for (Index x2 = 0; x2 <= x; ++x2) kv.push_back({k.row(y * w + x2), v.row(y * w + x2)});
      out.row(y * w + x) = mix(q, y * w + x, kv);
    }
  return out;
}

struct Case {
  const char* id;
  int loops;  // CCNet's recurrence (0: axial)
  bool causal;
  Index width;  // the mechanism's width param (0: the image input's 6×5 grid)
};

TEST(Vision, OutputsAndWeightsMatchFloat64LoopsOverThePapersEquations) {
  const Inputs in = image(30);  // gridWidth(30) = 5: 6 rows of 5
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  const MatrixD identity = MatrixD::Identity(30, 30);
  const Case cases[] = {{"ccnet", 1, false, 0}, {"ccnet", 2, false, 0}, {"ccnet", 3, true, 0}, {"ccnet", 2, false, 6},
                        {"axial", 0, false, 0}, {"axial", 0, true, 0},  {"axial", 0, false, 3}, {"axial", 0, true, 10}};
  for (const Case& c : cases) {
    const Index w = c.width ? c.width : 5, h = 30 / w;
    std::map<std::string, std::string> params{{"width", std::to_string(c.width)}};
    if (c.loops) params["recurrence"] = std::to_string(c.loops);
    const Result r = run(c.id, in, params, c.causal);
    const std::string what = std::string(c.id) + " R=" + std::to_string(c.loops) + " causal=" +
                             std::to_string(c.causal) + " grid " + std::to_string(h) + "×" + std::to_string(w);
    const MatrixD expected = c.loops ? crissCrossLoops(q, k, v, h, w, c.loops, c.causal) : axialLoops(q, k, v, h, w, c.causal);
    EXPECT_LT(relativeError(r.output, expected), 1e-5) << what;
    // The implied weights are the same loops run on V = I (CATALOG §0's probe).
    const MatrixD a = c.loops ? crissCrossLoops(q, k, identity, h, w, c.loops, c.causal)
                              : axialLoops(q, k, identity, h, w, c.causal);
    ASSERT_TRUE(r.explanation.weights) << what;
    // (float logits of the image input's peaked rows: up to ≈ 5e-5 off in float, as any float softmax)
    EXPECT_LT(maxAbsDiff(r.explanation.weights.dense(), a), 2e-4) << what;
    EXPECT_LT(relDiff(r.explanation.weights.dense(), a), 1e-4) << what;
    EXPECT_LT((a.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-12) << what;  // row-stochastic
  }
}

// On a photo the grid is the photo's (Inputs::grid_width), not the most square one: a 16×8 photo (W = 16)
// whose N = 128 would otherwise be read as 16 rows of 8. Same loops, on the photo's grid.
TEST(Vision, APhotosGridIsTheGridTheMechanismsUse) {
  InputSpec spec;
  spec.generator = Generator::Image;
  spec.image = "coffee";
  spec.n = 128;
  spec.width = 16;
  spec.d = 16;
  spec.dv = 8;
  const Inputs in = generate(spec);
  ASSERT_EQ(in.grid_width, 16);
  ASSERT_NE(gridWidth(128), 16);
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  for (const char* id : {"ccnet", "axial"}) {
    const Result r = run(id, in);
    const MatrixD expected = std::string(id) == "ccnet" ? crissCrossLoops(q, k, v, 8, 16, 2, false)
                                                        : axialLoops(q, k, v, 8, 16, false);
    EXPECT_LT(relativeError(r.output, expected), 1e-5) << id;
    bool noted = false;
    for (const std::string& note : r.explanation.notes) noted |= note == "grid 8×16 (the input image's grid)";
    EXPECT_TRUE(noted) << id;
  }
}

TEST(Vision, OneRowIsExactAttention) {
  const Inputs in = image(96);
  for (bool causal : {false, true}) {
    const Result c = run("ccnet", in, {{"width", "96"}, {"recurrence", "1"}}, causal);
    EXPECT_LT(errorVsExact(c, in, causal), 1e-5) << "causal=" << causal;
    const Result a = run("axial", in, {{"width", "96"}}, causal);
    EXPECT_LT(errorVsExact(a, in, causal), 1e-5) << "causal=" << causal;
  }
  // With more than one row neither is exact attention.
  EXPECT_GT(errorVsExact(run("ccnet", in), in, false), 1e-3);
  EXPECT_GT(errorVsExact(run("axial", in), in, false), 1e-3);
}

/// The step of a run by title.
const Step& stepTitled(const Result& r, const std::string& title) {
  for (const Step& s : r.explanation.steps)
    if (s.title == title) return s;
  throw std::runtime_error("no step " + title);
}

TEST(Vision, CcnetTwoLoopsReachEveryPixelOneLoopDoesNot) {
  const Inputs in = image(1536);  // 48 rows of 32
  const Index n = 1536, h = 48, w = 32;
  const Result r = run("ccnet", in);  // R = 2, the paper's
  ASSERT_EQ(r.explanation.steps.size(), 2u);
  const auto& one = stepTitled(r, "R = 1").view->pattern;
  const auto& two = stepTitled(r, "R = 2").view->pattern;
  ASSERT_TRUE(one && two);
  EXPECT_EQ(one->nnz(), n * (h + w - 1));
  EXPECT_FALSE(one->contains(0, 1 * w + 1));  // the diagonal neighbour of the corner is off its cross
  EXPECT_EQ(two->nnz(), n * n);               // two loops: every pixel
  // How much of exact attention's mass one cross holds (CATALOG (e)), against its share of the keys.
  const Result exact = run("exact", in);
  const double recall = massRecall(*r.explanation.pattern, exact.explanation.weights);
  const double share = double(h + w - 1) / double(n);
  std::printf("ccnet on the image, N = 1536 (48×32): mass recall of one cross %.3f (share of keys %.3f); "
              "e_out R=1 %.3f, R=2 %.3f\n",
              recall, share, errorVsExact(run("ccnet", in, {{"recurrence", "1"}}), in, false),
              errorVsExact(r, in, false));
  EXPECT_GT(recall, share);
  EXPECT_LT(recall, 1.0);
}

TEST(Vision, CausalCrissCrossReachesOnlyTheQuadrantAboveLeft) {
  const Inputs in = image(30);
  const Result r = run("ccnet", in, {{"recurrence", "3"}}, true);
  for (const char* title : {"R = 2", "R = 3"}) {
    const auto& reach = stepTitled(r, title).view->pattern;
    ASSERT_TRUE(reach);
    for (Index i = 0; i < 30; ++i)
      for (Index j = 0; j < 30; ++j)
        EXPECT_EQ(reach->contains(i, j), j / 5 <= i / 5 && j % 5 <= i % 5) << title << " " << i << " → " << j;
  }
}

TEST(Vision, AxialRowThenColumnReachesEveryPixelAndTheCausalFormExactlyTheEarlierOnes) {
  const Index n = 384;  // 24 rows of 16
  const Inputs in = image(n);
  const Result full = run("axial", in);
  const auto& reach = stepTitled(full, "column ∘ row").view->pattern;
  ASSERT_TRUE(reach);
  EXPECT_EQ(reach->nnz(), n * n);
  const Result causal = run("axial", in, {}, true);
  const auto& earlier = stepTitled(causal, "composite").view->pattern;
  ASSERT_TRUE(earlier);
  EXPECT_EQ(earlier->nnz(), n * (n + 1) / 2);
  for (Index i = 0; i < n; ++i)  // n·(n+1)/2 distinct pairs, each j ≤ i: exactly {j ≤ i}
    EXPECT_LE(earlier->col[size_t(earlier->row_ptr[size_t(i + 1)] - 1)], i) << i;
  // Mass recall of one axial layer's scored pairs, reported.
  const Result exact = run("exact", in);
  std::printf("axial on the image, N = 384 (24×16): mass recall of the scored cross %.3f, e_out %.3f\n",
              massRecall(*full.explanation.pattern, exact.explanation.weights), errorVsExact(full, in, false));
}

TEST(Vision, CausalOutputsIgnoreLaterPixelsBitForBit) {
  const Index n = 384, cut = 200;
  const Inputs in = image(n);
  Inputs changed = in;
  Rng rng(5);
  changed.q.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.q.cols());
  changed.k.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.k.cols());
  changed.v.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.v.cols());
  for (const char* id : {"ccnet", "axial"}) {
    const Result a = run(id, in, {}, true), b = run(id, changed, {}, true);
    EXPECT_TRUE(a.output.topRows(cut + 1) == b.output.topRows(cut + 1)) << id;
    EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10)) << id;
  }
}

TEST(Vision, DeterministicAndCostsCountTheLoops) {
  const Inputs in = image(384);
  for (const char* id : {"ccnet", "axial"}) {
    const Result a = run(id, in), b = run(id, in);
    EXPECT_TRUE(a.output == b.output) << id;
    EXPECT_TRUE(a.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max) ==
                b.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max))
        << id;
  }
  // CCNet scores R crosses of H + W − 1 keys; axial a row and a column.
  const Result c1 = run("ccnet", in, {{"recurrence", "1"}}), c3 = run("ccnet", in, {{"recurrence", "3"}});
  EXPECT_EQ(c1.cost.scored_pairs, 384.0 * (24 + 16 - 1));
  EXPECT_EQ(c3.cost.scored_pairs, 3 * c1.cost.scored_pairs);
  EXPECT_EQ(run("axial", in).cost.scored_pairs, 384.0 * (24 + 16));
}

std::string messageOf(const std::string& id, const Inputs& in, std::map<std::string, std::string> params) {
  try {
    run(id, in, std::move(params));
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Vision, BadParametersAreClearErrorsOrNotedClamps) {
  const Inputs in = image(120);
  EXPECT_EQ(messageOf("ccnet", in, {{"width", "7"}}),
            "CCNet: grid width 7 does not divide N = 120 (the tokens are an H×W grid in raster order); set width to "
            "a divisor of N (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, ...) or to 0 for the most square grid");
  EXPECT_NE(messageOf("axial", in, {{"width", "7"}}).find("axial attention: grid width 7 does not divide N = 120"),
            std::string::npos);
  // SCRAM's message, moved onto the grid engine, is unchanged.
  EXPECT_EQ(messageOf("scram", image(64), {{"width", "7"}}),
            "SCRAM: grid width 7 does not divide N = 64 (the tokens are an H×W grid in raster order); set width to a "
            "divisor of N (1, 2, 4, 8, 16, 32, 64) or to 0 for the most square grid");
  EXPECT_NE(messageOf("ccnet", in, {{"recurrence", "two"}}).find("needs a number"), std::string::npos);
  // Out of range: clamped into 1 … 4, and said.
  const auto m = requireMechanism("ccnet");
  const Params p = Params::resolve(m->params(), {{"recurrence", "9"}});
  ASSERT_EQ(p.notes().size(), 1u);
  EXPECT_NE(p.notes()[0].find("using 4"), std::string::npos) << p.notes()[0];
  EXPECT_EQ(run("ccnet", in, {{"recurrence", "9"}}).explanation.steps.size(), 4u);
  // Keys that are not the query pixels.
  Inputs fewer = in;
  fewer.k = in.k.topRows(60);
  fewer.v = in.v.topRows(60);
  for (const char* id : {"ccnet", "axial"})
    EXPECT_NE(messageOf(id, fewer, {}).find("needs as many keys as queries"), std::string::npos) << id;
}

}  // namespace
}  // namespace attn::test
