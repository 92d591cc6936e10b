// Memory, global-token and inducing-point mechanisms (CATALOG.md F4): limit cases against exact
// attention and the papers' qualitative claims. Causality and determinism of every mechanism are
// checked in test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in the gpu suite; the papers'
// equations against independent computations in test_truth_memory.cpp.
#include <cmath>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false) {
  return test::runMechanism(id, in, std::move(params), causal);
}
using test::errorVsExact;

// --- memory-compressed -----------------------------------------------------------------------------------

TEST(MemoryCompressed, NoCompressionIsExact) {
  const Inputs in = inputs(Generator::Clustered, 120);
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("memory-compressed", in, {{"compression", "1"}}, causal), in, causal), 1e-5) << causal;
  EXPECT_LT(errorVsExact(run("memory-compressed", in, {{"layer", "local"}, {"block", "200"}}, true), in, true), 1e-5);
}

TEST(MemoryCompressed, ErrorGrowsWithTheCompressionRate) {
  const Inputs in = inputs(Generator::Local, 384);
  double last = 0;
  for (const char* c : {"2", "4", "8", "16"}) {
    const double e = errorVsExact(run("memory-compressed", in, {{"compression", c}}), in, false);
    std::printf("[ memory-compressed local ] c=%s rel. error %.3f\n", c, e);
    EXPECT_GT(e, last) << "c=" << c;
    last = e;
  }
}

TEST(MemoryCompressed, CausalQueriesSeeOnlyCompleteSlotsAndTheNullSlotBefore) {
  const Inputs in = inputs(Generator::Gaussian, 30);
  const Result r = run("memory-compressed", in, {{"compression", "4"}}, true);
  EXPECT_TRUE(r.output.topRows(3).isZero(0));  // no complete slot yet: the null slot (value 0)
  EXPECT_FALSE(r.output.row(3).isZero(0));
  const Matrix w = r.explanation.weights.dense();
  EXPECT_TRUE(w.row(5).tail(30 - 8).isZero(0));  // query 5 sees slot 0 (0..3) only
  EXPECT_NEAR(w.row(5).head(4).sum(), 1.0, 1e-5);
}

// --- set-transformer -------------------------------------------------------------------------------------

TEST(SetTransformer, MoreInducingPointsComeCloserToSoftmaxOnClusteredSets) {
  const Inputs in = inputs(Generator::Clustered, 256);
  const double few = errorVsExact(run("set-transformer", in, {{"inducing", "2"}}), in, false);
  const double many = errorVsExact(run("set-transformer", in, {{"inducing", "64"}}), in, false);
  std::printf("[ set-transformer clustered ] rel. error m=2 %.3f, m=64 %.3f\n", few, many);
  EXPECT_LT(many, 0.8 * few);
}

TEST(SetTransformer, RefusesCausalAndClampsInducingPoints) {
  const Inputs in = inputs(Generator::Gaussian, 10);
  EXPECT_THROW(run("set-transformer", in, {}, true), UserError);
  const Result r = run("set-transformer", in, {{"inducing", "50"}});
  EXPECT_NE(r.explanation.notes.front().find("clamped"), std::string::npos);
}

// --- compressive -----------------------------------------------------------------------------------------

TEST(Compressive, MemoryCoveringThePastIsExactCausalAttention) {
  const Inputs in = inputs(Generator::Clustered, 128);
  EXPECT_LT(errorVsExact(run("compressive", in, {{"segment", "16"}, {"memory", "128"}}, true), in, true), 1e-5);
}

TEST(Compressive, CoarserCompressionLosesMore) {
  // The paper's reconstruction view: attending over compressed memory instead of the raw positions
  // costs more as the rate grows.
  const Inputs in = inputs(Generator::Local, 512);
  const auto at = [&](const char* rate) {
    return errorVsExact(
        run("compressive", in, {{"segment", "16"}, {"memory", "16"}, {"compressed", "128"}, {"rate", rate}}, true), in,
        true);
  };
  const double e2 = at("2"), e8 = at("8");
  std::printf("[ compressive local ] rel. error rate 2: %.4f, rate 8: %.4f\n", e2, e8);
  EXPECT_LT(e2, e8);
}

// --- gmat ------------------------------------------------------------------------------------------------

TEST(Gmat, FullBandWithoutMemoryIsExact) {
  const Inputs in = inputs(Generator::Clustered, 100);
  EXPECT_LT(errorVsExact(run("gmat", in, {{"memory", "0"}, {"window", "400"}}), in, false), 1e-5);
  EXPECT_THROW(run("gmat", in, {{"memory", "0"}, {"window", "0"}}), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

// --- star-transformer ------------------------------------------------------------------------------------

TEST(StarTransformer, EffectiveMatrixReproducesTheOutputAndKeepsMostMassNearTheRing) {
  const Inputs in = inputs(Generator::Local, 90);
  for (Index rounds : {1, 3}) {
    const Result r = run("star-transformer", in, {{"rounds", std::to_string(rounds)}});
    const Matrix w = r.explanation.weights.dense();
    EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-5) << rounds;
    EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-4);  // convex combinations
    // The ring is a band of width 3 (on smooth inputs the relay adds little): most of the mass stays within
    // `rounds` tokens of the diagonal. (The relay and the wrap are checked in test_truth_memory.cpp.)
    double near = 0;
    for (Index i = 0; i < 90; ++i)
      for (Index j = std::max<Index>(0, i - rounds); j <= std::min<Index>(89, i + rounds); ++j) near += w(i, j);
    EXPECT_GT(near / 90, 0.5) << rounds;
  }
}

TEST(StarTransformer, IsADifferentOperatorWithoutACausalForm) {
  EXPECT_FALSE(requireMechanism("star-transformer")->info().approximates_softmax);
  EXPECT_THROW(run("star-transformer", inputs(Generator::Gaussian, 10), {}, true), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

// --- memformer -------------------------------------------------------------------------------------------

TEST(Memformer, EffectiveMatrixReproducesTheOutput) {
  const Inputs in = inputs(Generator::Local, 100);
  for (bool causal : {false, true}) {
    const Result r = run("memformer", in, {{"slots", "8"}, {"segment", "20"}}, causal);
    const Matrix w = r.explanation.weights.dense();
    EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-4) << causal;
    EXPECT_FALSE(r.explanation.factors.empty());
  }
}

}  // namespace
}  // namespace attn
