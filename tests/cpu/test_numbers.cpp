// Numerical extremes (issue 21, "Numbers"): an output that is finite in truth is finite on screen, and
// when it cannot be, the message blames the input that causes it, not the mechanism's parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "attention/runner.h"
#include "test_util.h"

namespace attn {
namespace {

using test::mechanismInputs;

Params defaults(const Mechanism& m) { return Params::resolve(m.params(), {}); }

// Every mechanism's output is linear in V for fixed Q and K (the weights come from Q and K only), so the
// runner may compute with V scaled by a power of two and scale the output back. A mechanism for which this
// fails says so (MechanismInfo::linear_in_values = false) and is never rescaled.
TEST(Numbers, OutputIsLinearInValuesWhereTheMechanismSaysSo) {
  const Inputs in = mechanismInputs(Generator::Clustered, 96);
  Inputs tripled = in;
  tripled.v *= 3.0f;
  for (const auto& m : mechanisms()) {
    SCOPED_TRACE(m->info().id);
    CpuBackend cpu(1);
    RunOptions o;
    o.explain = false;
    const Params p = defaults(*m);
    const Matrix a = m->run(in, p, cpu, o).output;
    const Matrix b = m->run(tripled, p, cpu, o).output;
    const double rel = (b - 3.0f * a).norm() / std::max(1e-30, double((3.0f * a).norm()));
    if (m->info().linear_in_values) {
      EXPECT_LT(rel, 1e-5) << "declared linear in V but is not";
    } else {
      EXPECT_GT(rel, 1e-3) << "declared non-linear in V but scales exactly: declare it linear";
    }
  }
}

Inputs hugeValues(Index n, float v_scale) {
  Inputs in = mechanismInputs(Generator::Clustered, n);
  in.v *= v_scale;
  return in;
}

// Exact attention with V = 3e37 is a convex combination of V's rows: every output is finite and the
// relative error against the float64 reference stays at float precision, on every mechanism that
// approximates softmax attention (and every other linear one is finite).
TEST(Numbers, HugeValuesGiveFiniteOutputsOnEveryLinearMechanism) {
  const Inputs in = hugeValues(64, 3e37f / 4);  // clustered V has |v| up to ~4
  ASSERT_TRUE(in.v.allFinite());
  CpuBackend cpu(2);
  for (const auto& m : mechanisms()) {
    if (!m->info().linear_in_values) continue;
    SCOPED_TRACE(m->info().id);
    CompareOptions o;
    o.run.explain = false;
    Comparison c;
    try {
      c = compare(in, m, defaults(*m), cpu, o);
    } catch (const UserError& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    EXPECT_TRUE(c.approx.output.allFinite());
    EXPECT_TRUE(c.exact.output.allFinite());
    if (m->info().id == "exact") {
      EXPECT_LT(c.relative_error, 1e-5);
    }
  }
}

TEST(Numbers, ZeroLogitsWithHugeValuesGiveTheValues) {
  for (const Index n : {Index(64), Index(4096)}) {
    Inputs in;
    in.q = Matrix::Zero(n, 16);
    in.k = Matrix::Zero(n, 16);
    in.v = Matrix::Constant(n, 16, 1e35f);
    in.spec.n = n;
    in.spec.d = 16;
    in.spec.dv = 16;
    CpuBackend cpu(2);
    const Comparison c = compare(in, requireMechanism("exact"), defaults(*requireMechanism("exact")), cpu, {});
    ASSERT_TRUE(c.approx.output.allFinite());
    EXPECT_NEAR(c.approx.output(0, 0) / 1e35, 1.0, 1e-5);
    EXPECT_NEAR(c.approx.output(n - 1, 15) / 1e35, 1.0, 1e-5);
    EXPECT_LT(c.relative_error, 1e-5);
  }
}

// V at float's largest value, ± by column: a convex combination of such values is at most FLT_MAX in truth,
// but weights that sum to 1 + an ulp in float made it infinite (exact, SCRAM, the Diet stack). An output that
// exceeds the float range only by rounding is float's largest value.
TEST(Numbers, ValuesAtFloatsLargestStayFiniteUnderConvexCombinations) {
  Inputs in = mechanismInputs(Generator::Clustered, 64);
  const float big = std::numeric_limits<float>::max();
  for (Index c = 0; c < in.v.cols(); ++c) in.v.col(c).setConstant(c % 2 ? -big : big);
  CpuBackend cpu(2);
  for (const char* id : {"exact", "scram", "transformer-on-a-diet", "longformer"}) {
    SCOPED_TRACE(id);
    const auto m = requireMechanism(id);
    Comparison c;
    try {
      c = compare(in, m, defaults(*m), cpu, {});
    } catch (const UserError& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    ASSERT_TRUE(c.approx.output.allFinite());
    for (Index j = 0; j < in.v.cols(); ++j) {
      EXPECT_EQ(c.approx.output.col(j).cwiseAbs().maxCoeff(), big);
      EXPECT_GE(double(c.approx.output.col(j).cwiseAbs().minCoeff()), double(big) * (1 - 1e-5));
    }
  }
}

// A made-up operator for the messages below: the sum of every value row (linear in V, and N times larger
// than V's values), or NaN everywhere (arithmetic that failed whatever the input).
class Summing final : public Mechanism {
 public:
  explicit Summing(bool nan) : nan_(nan) {}
  const MechanismInfo& info() const override {
    static const MechanismInfo i{"summing", "Summing", "", "", 2026, Family::Reference, "O(N·d)", CausalSupport::No,
                                 "", "", false};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }
  Result run(const Inputs& in, const Params&, Backend&, const RunOptions&) const override {
    Result r;
    const Eigen::RowVectorXf sum = in.v.colwise().sum();
    r.output = nan_ ? Matrix::Constant(in.n(), in.v.cols(), std::numeric_limits<float>::quiet_NaN())
                    : Matrix(sum.replicate(in.n(), 1));
    return r;
  }

 private:
  bool nan_;
};

std::string failureOf(const Inputs& in, bool nan) {
  CpuBackend cpu(1);
  try {
    compare(in, std::make_shared<Summing>(nan), Params{}, cpu, {});
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// An output whose true value exceeds the float range: the message blames V's values, not the parameters.
TEST(Numbers, AnOutputBeyondFloatRangeBlamesTheValues) {
  Inputs in = mechanismInputs(Generator::Clustered, 64);
  in.v.setConstant(3e37f);
  const std::string what = failureOf(in, false);
  EXPECT_NE(what.find("V's values at 3e+37"), std::string::npos) << what;
  EXPECT_NE(what.find("scale V down"), std::string::npos) << what;
  EXPECT_EQ(what.find("at these parameter values"), std::string::npos) << what;
  in.v.setConstant(1.0f);  // the same operator on modest values is finite: no failure
  EXPECT_EQ(failureOf(in, false), "");
}

// Logits beyond float range: the message names Q and K's norms and says to scale them.
TEST(Numbers, LogitsBeyondFloatRangeBlameQueriesAndKeys) {
  Inputs in = mechanismInputs(Generator::Clustered, 64);
  in.q *= 1e19f;
  in.k *= 1e19f;
  std::string what = failureOf(in, true);
  EXPECT_NE(what.find("logits"), std::string::npos) << what;
  EXPECT_NE(what.find("scale Q and K down"), std::string::npos) << what;
  EXPECT_EQ(what.find("at these parameter values"), std::string::npos) << what;
  // Modest inputs: nothing to blame on them, so the parameters are named.
  what = failureOf(mechanismInputs(Generator::Clustered, 64), true);
  EXPECT_NE(what.find("parameter values"), std::string::npos) << what;
}

// The time said before a long run starts is the time it takes, within a factor of three (measured on this
// machine at a size where measuring is worth it: exact attention, the mechanism and the float64 reference).
TEST(LongRuns, PredictedTimeIsTheTimeTaken) {
  const Inputs in = mechanismInputs(Generator::Clustered, 3072);
  CpuBackend cpu(2);
  const auto m = requireMechanism("performer");
  const double predicted = predictCompareSeconds(in, *m, defaults(*m), RunOptions{}, cpu);
  const auto t0 = std::chrono::steady_clock::now();
  CompareOptions o;
  o.with_weight_metrics = false;
  compare(in, m, defaults(*m), cpu, o);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(predicted, took / 3) << "predicted " << predicted << " s, took " << took << " s";
  EXPECT_LT(predicted, took * 3) << "predicted " << predicted << " s, took " << took << " s";
}

// Exact attention at large N goes in blocks of rows: the same output, a progress report per block, and a
// cancel stops it within one block.
TEST(LongRuns, ExactAttentionReportsProgressAndStopsWithinABlock) {
  const Inputs in = mechanismInputs(Generator::Clustered, 8192);  // 8192² · 48 = 3 · 2^30 multiply-adds: 3 blocks
  CpuBackend cpu(2);
  const auto exact = requireMechanism("exact");
  std::vector<double> fractions;
  const ProgressFn progress = [&](const std::string& stage, double f) {
    EXPECT_EQ(stage, "exact attention");
    fractions.push_back(f);
  };
  RunOptions o;
  o.explain = false;
  o.progress = &progress;
  const Matrix blocked = exact->run(in, defaults(*exact), cpu, o).output;
  const Matrix whole = cpu.denseAttention(in.q, in.k, in.v, DenseAttentionOptions{}).out;
  EXPECT_LT((blocked - whole).cwiseAbs().maxCoeff(), 1e-6);
  ASSERT_GE(fractions.size(), 3u);
  EXPECT_EQ(fractions.front(), 0.0);
  EXPECT_EQ(fractions.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));

  std::atomic<bool> cancel{false};
  int reports = 0;
  const ProgressFn stop = [&](const std::string&, double) {
    if (++reports == 2) cancel = true;  // Ctrl-C after the first block
  };
  o.progress = &stop;
  o.cancel = &cancel;
  EXPECT_THROW(exact->run(in, defaults(*exact), cpu, o), Cancelled);
  EXPECT_EQ(reports, 2);
}

}  // namespace
}  // namespace attn
