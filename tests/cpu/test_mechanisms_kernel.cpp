// The kernel-feature engine (CATALOG.md E4) and the Performer family: FAVOR+ (performer), FAVOR with
// trigonometric features (performer-v1), SLiM (slim-performer). Paper claims: the error falls as
// features grow; orthogonal features beat i.i.d. at m ≤ d; positive features stay accurate where the
// kernel is tiny while trigonometric ones blow up (Performer, Lemma 2); SLiM equals FAVOR+; the causal
// form equals its recurrence. Causality and determinism of every mechanism are in test_mechanisms.cpp; the
// sampler's Haar property, SLiM's measured memory and the RNN state view in test_truth_kernel.cpp.
#include <cmath>
#include <cstdio>
#include <map>

#include "attention/mechanisms/kernel_engine.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false,
           std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}
using test::errorVsExact;

/// Q, K with N(0, σ²) entries (d = 32) and Gaussian V: moderate norms, where random features are meant to
/// work (their variance grows like exp(‖q‖² + ‖k‖²)); the generators' larger norms make every estimator
/// noisy and the rows of exact attention nearly average V, so e_out is dominated by ‖O*‖ being small.
Inputs moderate(Index n, double sigma, std::uint64_t seed = 1) {
  Inputs in = inputs(Generator::Gaussian, n, seed);
  Rng rng(seed, 77);
  in.q = rng.gaussian(n, 32, sigma);
  in.k = rng.gaussian(n, 32, sigma);
  return in;
}

/// e_attn = ‖A − A*‖_F / ‖A*‖_F of the implied weights (float64 reference).
double attnError(const Result& r, const Inputs& in) {
  MatrixD s = in.q.cast<double>() * in.k.cast<double>().transpose() / std::sqrt(double(in.q.cols()));
  for (Index i = 0; i < s.rows(); ++i) {
    s.row(i) = (s.row(i).array() - s.row(i).maxCoeff()).exp().matrix();
    s.row(i) /= s.row(i).sum();
  }
  return relativeError(r.explanation.weights.dense(), s);
}

double meanAttnError(const std::string& id, const Inputs& in, std::map<std::string, std::string> params, int draws) {
  double total = 0;
  for (int k = 0; k < draws; ++k) {
    params["draw"] = std::to_string(k);
    total += attnError(run(id, in, params), in);
  }
  return total / draws;
}

double meanError(const std::string& id, const Inputs& in, std::map<std::string, std::string> params, int draws,
                 bool causal = false) {
  double total = 0;
  for (int k = 0; k < draws; ++k) {
    params["draw"] = std::to_string(k);
    total += errorVsExact(run(id, in, params, causal), in, causal);
  }
  return total / draws;
}

TEST(KernelEngine, SlicedFavorEqualsTheOnePassPrimitiveOnPerformersFeatures) {
  // SLiM's forward forms each slice's features itself; the output must be linear attention on performer's
  // features (queries shifted per row; keys unshifted when causal, else by one global max, which the key
  // pass carries across slices). Key 190 gets a large norm, so the global max lies in a late slice.
  Inputs in = inputs(Generator::Clustered, 203);
  in.k.row(190) *= 3.0f;
  CpuBackend cpu(2);
  const Matrix omega = mech::randomFeatures(48, 32, true, 1, 4000);
  for (bool causal : {false, true}) {
    const mech::RandomFeatures f =
        mech::performerFeatures(in, FeatureMap::PositiveRandom, 48, true, false, causal, 1, 4000, cpu);
    const Matrix one = cpu.linearAttention(*f.phi_q, *f.phi_k, in.v, causal);
    for (Index slices : {1, 4, 7, 203}) {
      const mech::SlicedFavor c = mech::slicedFavorAttention(in, omega, causal, slices, cpu, RunOptions{}, true);
      EXPECT_LT(relativeError(c.out, MatrixD(one.cast<double>())), 1e-5) << causal << " " << slices;
      EXPECT_EQ(Index(c.states.size()), (203 + c.slice - 1) / c.slice) << causal << " " << slices;
    }
  }
  // Cross attention (fewer keys than queries), non-causal: the key pass and the query pass differ in length.
  Inputs cross = in;
  cross.k = in.k.topRows(70).eval();
  cross.v = in.v.topRows(70).eval();
  const mech::RandomFeatures f =
      mech::performerFeatures(cross, FeatureMap::PositiveRandom, 48, true, false, false, 1, 4000, cpu);
  const Matrix one = cpu.linearAttention(*f.phi_q, *f.phi_k, cross.v, false);
  const mech::SlicedFavor c = mech::slicedFavorAttention(cross, omega, false, 5, cpu, RunOptions{}, false);
  EXPECT_LT(relativeError(c.out, MatrixD(one.cast<double>())), 1e-5);
  EXPECT_TRUE(c.states.empty());
}

TEST(Performer, ErrorFallsAsFeaturesGrow) {
  const Inputs in = moderate(256, 0.6);
  const double m16 = meanAttnError("performer", in, {{"features", "16"}}, 5);
  const double m256 = meanAttnError("performer", in, {{"features", "256"}}, 5);
  const double m2048 = meanAttnError("performer", in, {{"features", "2048"}}, 5);
  std::printf("[ performer σ=0.6 N=256 d=32 ] mean e_attn over 5 draws: m=16 %.4f, m=256 %.4f, m=2048 %.4f\n", m16,
              m256, m2048);
  // A Monte Carlo estimate: at large m the error falls like 1/√m (×2.8 per 8× features); at m = 16 the
  // normalisation saturates it.
  EXPECT_LT(m256, 0.65 * m16) << m16 << " " << m256;
  EXPECT_LT(m2048, 0.5 * m256) << m256 << " " << m2048;
}

TEST(Performer, OrthogonalFeaturesBeatIidAtMNotAboveD) {
  // FAVOR+'s Theorem (orthogonal random features): at m ≤ d, block-orthogonal ω lowers the MSE of the
  // kernel estimate φ(x)·φ(y) ≈ exp(x·y) for every pair. Measured on 32 pairs over 1000 draws, d = m = 32.
  const Index d = 32, m = 32, pairs = 32;
  CpuBackend cpu(1);
  Rng rng(21);
  Matrix x = rng.gaussian(pairs, d, 0.3), y = rng.gaussian(pairs, d, 0.3);
  double mse_orf = 0, mse_iid = 0;
  for (int draw = 0; draw < 1000; ++draw)
    for (bool orthogonal : {true, false}) {
      const Matrix w = mech::randomFeatures(m, d, orthogonal, 9, std::uint64_t(draw));
      FeatureMapOptions o;
      o.projection = &w;
      o.map = FeatureMap::PositiveRandom;
      const Matrix px = cpu.featureMap(x, o), py = cpu.featureMap(y, o);
      for (Index i = 0; i < pairs; ++i) {
        const double truth = std::exp(double(x.row(i).dot(y.row(i))));
        const double err = (double(px.row(i).dot(py.row(i))) - truth) / truth;
        (orthogonal ? mse_orf : mse_iid) += err * err / (1000.0 * pairs);
      }
    }
  std::printf("[ performer d=m=32 ] relative MSE of exp(x·y): orthogonal %.4f, iid %.4f\n", mse_orf, mse_iid);
  EXPECT_LT(mse_orf, 0.95 * mse_iid) << mse_orf << " vs " << mse_iid;
}

TEST(Performer, ImpliedWeightsAreNonnegativeRowStochastic) {
  const Inputs in = inputs(Generator::Clustered, 96);
  for (bool causal : {false, true}) {
    const Result r = run("performer", in, {{"features", "64"}}, causal);
    const Matrix w = r.explanation.weights.dense();
    EXPECT_GE(w.minCoeff(), 0.0f);
    for (Index i = 0; i < 96; ++i) EXPECT_NEAR(w.row(i).sum(), 1.0, 1e-4);
    EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-4);
  }
}

TEST(Performer, CausalOutputEqualsTheRecurrence) {
  const Inputs in = inputs(Generator::Gaussian, 70);
  const Result r = run("performer", in, {{"features", "32"}}, true);
  // φ through the same engine, then the RNN step by step in double.
  CpuBackend cpu(1);
  const mech::RandomFeatures f =
      mech::performerFeatures(in, FeatureMap::PositiveRandom, 32, true, false, true, 1, 4000, cpu);
  Eigen::MatrixXd s = Eigen::MatrixXd::Zero(32, in.v.cols());
  Eigen::VectorXd z = Eigen::VectorXd::Zero(32);
  MatrixD ref(70, in.v.cols());
  for (Index i = 0; i < 70; ++i) {
    s += f.phi_k->row(i).cast<double>().transpose() * in.v.row(i).cast<double>();
    z += f.phi_k->row(i).cast<double>().transpose();
    const Eigen::RowVectorXd q = f.phi_q->row(i).cast<double>();
    ref.row(i) = (q * s) / q.dot(z);
  }
  EXPECT_LT(relativeError(r.output, ref), 1e-5);
}

TEST(Performer, PositiveFeaturesStayAccurateWhereTheKernelIsTinyAndTrigonometricOnesDoNot) {
  // Lemma 2 of the FAVOR+ paper: for pairs with a small kernel value exp(q·k) (q and k pointing apart),
  // the relative error of positive features stays bounded; that of trigonometric features explodes.
  const Index d = 16, m = 128, pairs = 64;
  CpuBackend cpu(1);
  Rng rng(11);
  Matrix x = rng.gaussian(pairs, d, 1.0);
  for (Index i = 0; i < pairs; ++i) x.row(i) *= 1.5f / x.row(i).norm();
  // k points away from q (q·k = −0.8·‖x‖² = −1.8, exp(q·k) ≈ 0.17) but not exactly opposite, so the ω·x
  // terms do not cancel in φ(q)·φ(k).
  Matrix y(pairs, d);
  for (Index i = 0; i < pairs; ++i) {
    Eigen::RowVectorXf z = rng.gaussian(1, d).row(0);
    z -= z.dot(x.row(i)) / x.row(i).squaredNorm() * x.row(i);
    y.row(i) = -0.8f * x.row(i) + 0.6f * 1.5f * z.normalized();
  }
  double pos = 0, trig = 0;
  for (int draw = 0; draw < 10; ++draw) {
    const Matrix w = mech::randomFeatures(m, d, false, 5, std::uint64_t(draw));
    FeatureMapOptions o;
    o.projection = &w;
    o.map = FeatureMap::PositiveRandom;
    const Matrix pq = cpu.featureMap(x, o), pk = cpu.featureMap(y, o);
    o.map = FeatureMap::Trigonometric;
    const Matrix tq = cpu.featureMap(x, o), tk = cpu.featureMap(y, o);
    for (Index i = 0; i < pairs; ++i) {
      const double truth = std::exp(double(x.row(i).dot(y.row(i))));
      pos += std::abs(double(pq.row(i).dot(pk.row(i))) - truth) / truth;
      trig += std::abs(double(tq.row(i).dot(tk.row(i))) - truth) / truth;
    }
  }
  pos /= 10.0 * pairs;
  trig /= 10.0 * pairs;
  std::printf("[ lemma 2: q·k = −1.8, d=16, m=128 ] mean relative error of exp(q·k): positive %.3f, trigonometric %.3f\n",
              pos, trig);
  EXPECT_LT(pos, 0.6) << pos;
  EXPECT_GT(trig, 5 * pos) << trig << " vs " << pos;
}

TEST(PerformerV1, ManyFeaturesApproachExactAndRowsCanBeUnstable) {
  const Inputs in = moderate(256, 0.6);
  const double few = meanAttnError("performer-v1", in, {{"features", "16"}}, 5);
  const double many = meanAttnError("performer-v1", in, {{"features", "2048"}}, 5);
  const double plus = meanAttnError("performer", in, {{"features", "16"}}, 5);
  // On peaked inputs (heavy-hitter keys of large norm: tiny kernel values between most pairs) FAVOR's
  // estimates lose rows or err far more than FAVOR+ with the same number of features.
  const Inputs peaked = inputs(Generator::Peaked, 256);
  const double v1 = meanError("performer-v1", peaked, {{"features", "64"}}, 5);
  const double favor = meanError("performer", peaked, {{"features", "64"}}, 5);
  std::printf("[ performer-v1 σ=0.6 ] mean e_attn: m=16 %.4f (FAVOR+ %.4f), m=2048 %.4f; peaked m=64 e_out: v1 %.3f, "
              "FAVOR+ %.3f\n", few, plus, many, v1, favor);
  EXPECT_LT(many, 0.5 * few) << few << " " << many;
  EXPECT_GT(few, plus) << "trigonometric features should be noisier than positive ones at equal m";
  EXPECT_GT(v1, 2 * favor) << v1 << " vs " << favor;
}

TEST(SlimPerformer, OutputEqualsPerformerWithTheSameFeatures) {
  const Inputs in = inputs(Generator::Clustered, 150);
  for (bool causal : {false, true})
    for (const char* slices : {"1", "6", "150"}) {
      const Result slim = run("slim-performer", in, {{"slices", slices}, {"features", "64"}, {"draw", "3"}}, causal);
      const Result favor = run("performer", in, {{"features", "64"}, {"draw", "3"}}, causal);
      EXPECT_LT(relativeError(slim.output, MatrixD(favor.output.cast<double>())), 1e-5) << causal << " " << slices;
    }
}

}  // namespace
}  // namespace attn
