// Low-rank and kernel mechanisms (CATALOG.md #32 Linformer, #45 Nyströmformer, #5 Efficient Attention):
// limit cases against exact attention and the papers' claims. Causality refusal, determinism and
// O = A_eff·V of every mechanism are also checked in test_mechanisms.cpp (AllMechanisms.*), Vulkan
// agreement in the gpu suite. Measured numbers (CPU, this file's inputs) are in the comments.
#include <Eigen/SVD>
#include <cmath>
#include <cstdio>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
           bool causal = false, std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}
using test::errorVsExact;

/// Numerical rank of the implied weights (singular values above 1e-4 of the largest).
Index weightRank(const Result& r) {
  const Matrix w = r.explanation.weights.dense();
  Eigen::BDCSVD<MatrixD> svd(w.cast<double>());
  const VectorD s = svd.singularValues();
  Index rank = 0;
  for (Index i = 0; i < s.size(); ++i) rank += s(i) > 1e-4 * s(0);
  return rank;
}

const NamedMatrix* factor(const Explanation& e, const std::string& name) {
  for (const auto& f : e.factors)
    if (f.name == name) return &f;
  return nullptr;
}

/// The exact matrix A* in float64.
MatrixD exactMatrix(const Inputs& in) {
  MatrixD logits = (in.q.cast<double>() * in.k.cast<double>().transpose()) / std::sqrt(double(in.q.cols()));
  for (Index i = 0; i < logits.rows(); ++i) {
    logits.row(i) = (logits.row(i).array() - logits.row(i).maxCoeff()).exp();
    logits.row(i) /= logits.row(i).sum();
  }
  return logits;
}

/// e_attn = ‖A_eff − A*‖_F / ‖A*‖_F.
double weightError(const Result& r, const Inputs& in) {
  const MatrixD exact = exactMatrix(in);
  return (r.explanation.weights.dense().cast<double>() - exact).norm() / exact.norm();
}

/// The V = I probe (CATALOG §0): the output of a run on V := I_N is A_eff.
void expectIdentityProbeEqualsWeights(const std::string& id, Inputs in, std::map<std::string, std::string> params) {
  in.v = Matrix::Identity(in.m(), in.m());
  const Result r = run(id, in, params);
  const Matrix w = r.explanation.weights.dense();
  EXPECT_LT((r.output - w).cwiseAbs().maxCoeff(), 1e-5 * (1 + w.cwiseAbs().maxCoeff())) << id;
}

// --- linformer ---------------------------------------------------------------------------------------------

TEST(Linformer, PoolingWithKEqualNAndTheOracleWithFullRankAreExact) {
  const Inputs in = inputs(Generator::Clustered, 120);
  EXPECT_LT(errorVsExact(run("linformer", in, {{"projection", "pooling"}, {"k", "120"}}), in, false), 1e-5);
  EXPECT_LT(errorVsExact(run("linformer", in, {{"projection", "svd-oracle"}, {"k", "120"}}), in, false), 1e-5);
}

TEST(Linformer, PoolingIsRowStochasticAndRandomIsNot) {
  const Inputs in = inputs(Generator::Local, 128);
  const Matrix pooled = run("linformer", in, {{"projection", "pooling"}, {"k", "16"}}).explanation.weights.dense();
  EXPECT_LT((pooled.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);
  EXPECT_GE(pooled.minCoeff(), 0.0f);
  // Segment means: A_eff is constant on each block of 8 columns.
  EXPECT_LT((pooled.col(0) - pooled.col(7)).cwiseAbs().maxCoeff(), 1e-7);
  const Matrix random = run("linformer", in, {{"projection", "random"}, {"k", "16"}}).explanation.weights.dense();
  EXPECT_LT(random.minCoeff(), -1e-3f);  // Gaussian F: negative weights
  EXPECT_GT((random.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-2);
}

TEST(Linformer, IdentityValueProbeEqualsTheImpliedWeights) {
  const Inputs in = inputs(Generator::Clustered, 96);
  for (const char* projection : {"oracle-f", "random", "pooling", "svd-oracle"})
    expectIdentityProbeEqualsWeights("linformer", in, {{"projection", projection}, {"k", "12"}});
}

TEST(Linformer, SeedDrawsTheRandomProjection) {
  const Inputs in = inputs(Generator::Gaussian, 100);
  const std::map<std::string, std::string> random = {{"projection", "random"}, {"k", "16"}};
  EXPECT_TRUE(run("linformer", in, random, false, 1).output == run("linformer", in, random, false, 1).output);
  EXPECT_FALSE(run("linformer", in, random, false, 1).output == run("linformer", in, random, false, 2).output);
  // Separate E and F differ from the shared projection.
  EXPECT_FALSE(run("linformer", in, {{"projection", "random"}, {"k", "16"}, {"share_kv", "1"}}).output ==
               run("linformer", in, {{"projection", "random"}, {"k", "16"}, {"share_kv", "0"}}).output);
  // The fitted default draws nothing: the seed does not change it.
  EXPECT_TRUE(run("linformer", in, {{"k", "16"}}, false, 1).output == run("linformer", in, {{"k", "16"}}, false, 2).output);
}

TEST(Linformer, TheOracleIsTheLowerBoundAndErrorsFallAsKGrows) {
  const Inputs in = inputs(Generator::Local, 256);
  // Random projections: the mean over 5 seeds (CATALOG §0, randomized methods).
  auto err = [&](const std::string& projection, int k) {
    const int seeds = projection == "random" ? 5 : 1;
    double sum = 0;
    for (int s = 1; s <= seeds; ++s)
      sum += errorVsExact(run("linformer", in, {{"projection", projection}, {"k", std::to_string(k)}}, false,
                              std::uint64_t(s)), in, false);
    return sum / seeds;
  };
  std::map<std::string, std::vector<double>> e;
  for (const char* projection : {"svd-oracle", "pooling", "random"})
    for (int k : {8, 32, 128}) e[projection].push_back(err(projection, k));
  // Measured (random: mean of 5 seeds; its V̄ = F·V is not normalised, so its errors exceed 1):
  //   svd-oracle 0.836 0.541 0.165 | pooling 0.909 0.740 0.433 | random 13.8 6.17 2.50
  for (const auto& [projection, v] : e)
    std::printf("[ linformer local N=256 ] %-10s e_out k=8 %.4f  k=32 %.4f  k=128 %.4f\n", projection.c_str(), v[0],
                v[1], v[2]);
  for (size_t t = 0; t < 3; ++t) {
    EXPECT_LE(e["svd-oracle"][t], e["pooling"][t]) << t;
    EXPECT_LE(e["svd-oracle"][t], e["random"][t]) << t;
  }
  for (const auto& [projection, v] : e) {
    EXPECT_GT(v[0], v[1]) << projection;
    EXPECT_GT(v[1], v[2]) << projection;
  }
}

TEST(Linformer, SpectrumFactorGivesTheOracleError) {
  // Eckart–Young: the oracle's e_attn is the rank-k tail of the spectrum of A*.
  const Inputs in = inputs(Generator::Clustered, 160);
  const Result r = run("linformer", in, {{"projection", "svd-oracle"}, {"k", "10"}});
  const NamedMatrix* spectrum = factor(r.explanation, "spectrum of exact A*");
  ASSERT_NE(spectrum, nullptr);
  ASSERT_EQ(spectrum->value.rows(), 1);
  ASSERT_EQ(spectrum->value.cols(), 160);
  for (Index t = 1; t < 160; ++t) EXPECT_GE(spectrum->value(0, t), spectrum->value(0, t - 1));  // cumulative
  EXPECT_NEAR(spectrum->value(0, 159), 1.0, 1e-6);
  Eigen::BDCSVD<MatrixD> svd(exactMatrix(in));
  const VectorD sigma = svd.singularValues();
  const double tail = std::sqrt(sigma.tail(150).squaredNorm() / sigma.squaredNorm());
  EXPECT_NEAR(weightError(r, in), tail, 1e-4);
  EXPECT_LE(weightRank(r), 10);
  bool noted = false;
  for (const auto& n : r.explanation.notes) noted |= n.find("oracle: needs the exact matrix") != std::string::npos;
  EXPECT_TRUE(noted);
  // The GUI's stage-by-stage visuals: exact A*, then the rank-k truncation.
  ASSERT_EQ(r.explanation.steps.size(), 2u);
  EXPECT_EQ(r.explanation.steps[0].view->factors.at(0).value.rows(), 160);
}

TEST(Linformer, ErrorTracksTheSpectrum) {
  // Measured (N = 256, k = 32):
  //   gaussian  rank-k tail 0.410  oracle e_out 0.368  pooling e_out 0.707  e_attn 0.754  random e_attn ≫ 1
  //   local     rank-k tail 0.552  oracle e_out 0.541  pooling e_out 0.740  e_attn 0.744
  //   clustered rank-k tail 0.230  oracle e_out 0.225  pooling e_out 0.851  e_attn 0.954
  // The oracle's error follows the spectrum's tail across inputs; no projection's e_attn beats the tail
  // (Eckart–Young). Positional pooling does not follow it on clustered inputs: clusters are not contiguous.
  const int k = 32;
  std::vector<double> tails, oracle_errors;
  for (const auto& [name, g] : {std::pair{"gaussian", Generator::Gaussian}, std::pair{"local", Generator::Local},
                                std::pair{"clustered", Generator::Clustered}}) {
    const Inputs in = inputs(g, 256);
    Eigen::BDCSVD<MatrixD> svd(exactMatrix(in));
    const VectorD sigma = svd.singularValues();
    const double tail = std::sqrt(sigma.tail(256 - k).squaredNorm() / sigma.squaredNorm());
    const Result pooled = run("linformer", in, {{"projection", "pooling"}, {"k", std::to_string(k)}});
    const Result random = run("linformer", in, {{"projection", "random"}, {"k", std::to_string(k)}});
    const Result oracle = run("linformer", in, {{"projection", "svd-oracle"}, {"k", std::to_string(k)}});
    tails.push_back(tail);
    oracle_errors.push_back(errorVsExact(oracle, in, false));
    std::printf("[ linformer N=256 k=%d ] %-9s rank-k tail %.4f  oracle e_out %.4f  pooling e_out %.4f  e_attn %.4f  "
                "random e_attn %.4f\n", k, name, tail, oracle_errors.back(), errorVsExact(pooled, in, false),
                weightError(pooled, in), weightError(random, in));
    EXPECT_GE(weightError(pooled, in), tail - 1e-6) << name;
    EXPECT_GE(weightError(random, in), tail - 1e-6) << name;
    EXPECT_NEAR(weightError(oracle, in), tail, 1e-4) << name;
    EXPECT_NEAR(oracle_errors.back(), tail, 0.1) << name;
  }
  // Same order: clustered < gaussian < local, for the tail and for the oracle's e_out.
  EXPECT_LT(tails[2], tails[0]);
  EXPECT_LT(tails[0], tails[1]);
  EXPECT_LT(oracle_errors[2], oracle_errors[0]);
  EXPECT_LT(oracle_errors[0], oracle_errors[1]);
}

TEST(Linformer, ClampsKRefusesCausalAndBoundsTheOracle) {
  const Inputs in = inputs(Generator::Gaussian, 100);
  const Result r = run("linformer", in, {{"k", "500"}});
  bool clamped = false;
  for (const auto& n : r.explanation.notes) clamped |= n.find("k clamped to 100") != std::string::npos;
  EXPECT_TRUE(clamped);
  // k = 0 is below the parameter's range: clamped to 1 with a note by Params::resolve.
  const auto mech = requireMechanism("linformer");
  const Params p = Params::resolve(mech->params(), {{"k", "0"}});
  EXPECT_EQ(p.integer("k"), 1);
  EXPECT_FALSE(p.notes().empty());
  EXPECT_EQ(run("linformer", in, {{"k", "0"}}).output.rows(), 100);
  EXPECT_THROW(run("linformer", in, {}, true), UserError);
  const Inputs big = inputs(Generator::Gaussian, 2049);
  try {
    run("linformer", big, {{"projection", "svd-oracle"}});
    ADD_FAILURE() << "the oracle ran on 2049 tokens";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("2048"), std::string::npos) << e.what();
  }
}

// --- nystromformer -----------------------------------------------------------------------------------------

TEST(Nystromformer, EveryTokenALandmarkIsExactWithTheExactAndTheIterativePinv) {
  const Inputs in = inputs(Generator::Local, 64);
  const double e0 = errorVsExact(run("nystromformer", in, {{"landmarks", "64"}, {"iterations", "0"}}), in, false);
  const double e6 = errorVsExact(run("nystromformer", in, {{"landmarks", "64"}, {"iterations", "6"}}), in, false);
  std::printf("[ nystromformer local N=m=64 ] e_out exact pinv %.2e, 6 iterations %.2e\n", e0, e6);
  // Measured: exact 1.9e-6; 6 iterations 1.4e-2 — with every token a landmark Ã is A* itself, badly
  // conditioned, and 6 iterations have not converged (40 do: test_mechanisms.cpp).
  EXPECT_LT(e0, 1e-4);
  EXPECT_LT(e6, 0.05);
  EXPECT_GT(e6, e0);
}

TEST(Nystromformer, IterationsZeroIsTheExactPseudoInverse) {
  const Inputs in = inputs(Generator::Clustered, 128);
  EXPECT_TRUE(run("nystromformer", in, {{"landmarks", "16"}, {"iterations", "0"}}).output ==
              run("nystromformer", in, {{"landmarks", "16"}, {"pinv", "exact"}}).output);
}

TEST(Nystromformer, IterativePseudoInverseConvergesStepByStep) {
  const Inputs in = inputs(Generator::Local, 256);
  const Result r = run("nystromformer", in, {{"landmarks", "16"}, {"iterations", "6"}});
  // Steps: kernel F, kernel B, one per iteration (ÃZ_t), then F·Ã⁺·B.
  ASSERT_EQ(r.explanation.steps.size(), 9u);
  std::vector<double> residual;
  for (size_t t = 2; t < 8; ++t) {
    const Step& s = r.explanation.steps[t];
    ASSERT_FALSE(s.view->factors.empty());
    const Matrix az = s.view->factors[0].value;
    ASSERT_EQ(az.rows(), 16);
    residual.push_back((az.cast<double>() - MatrixD::Identity(16, 16)).norm());
    EXPECT_NE(s.caption.find("‖ÃZ − I‖_F"), std::string::npos);
  }
  std::printf("[ nystromformer local N=256 m=16 ] ‖ÃZ_t − I‖_F:");
  for (double x : residual) std::printf(" %.2e", x);
  std::printf("\n");
  // Measured: 1.98e-01 3.17e-03 1.19e-08 4.19e-17 1.71e-17 1.78e-17 (converged to rounding at t = 4).
  for (size_t t = 1; t < residual.size(); ++t) EXPECT_TRUE(residual[t] < residual[t - 1] || residual[t] < 1e-12) << t;
  EXPECT_LT(residual.back(), 1e-3);
  EXPECT_EQ(r.explanation.steps.back().title, "F·Ã⁺·B");
  // Six iterations are within a small tolerance of the exact pseudo-inverse here.
  const Result exact = run("nystromformer", in, {{"landmarks", "16"}, {"iterations", "0"}});
  const double gap = relativeError(r.output, MatrixD(exact.output.cast<double>()));
  std::printf("[ nystromformer local N=256 m=16 ] 6 iterations vs exact pinv: rel. difference %.2e\n", gap);
  // Measured: 0 (Z_6 equals Ã⁻¹ to double rounding, so the float output is identical).
  EXPECT_LT(gap, 1e-3);
  // The three factors.
  ASSERT_NE(factor(r.explanation, "F"), nullptr);
  ASSERT_NE(factor(r.explanation, "B"), nullptr);
  ASSERT_NE(factor(r.explanation, "Ã"), nullptr);
  EXPECT_EQ(factor(r.explanation, "F")->value.rows(), 256);
  EXPECT_EQ(factor(r.explanation, "F")->value.cols(), 16);
  EXPECT_EQ(factor(r.explanation, "B")->value.rows(), 16);
  EXPECT_EQ(factor(r.explanation, "B")->value.cols(), 256);
  EXPECT_EQ(r.explanation.special.at(0).spans.size(), 16u);
}

TEST(Nystromformer, IdentityValueProbeEqualsTheImpliedWeights) {
  expectIdentityProbeEqualsWeights("nystromformer", inputs(Generator::Local, 96), {{"landmarks", "8"}});
}

// --- efficient-attention -----------------------------------------------------------------------------------

TEST(EfficientAttention, SoftmaxWeightsAreRowStochasticWithRankAtMostD) {
  const Inputs in = inputs(Generator::Clustered, 128);  // d = 32
  const Result r = run("efficient-attention", in);
  const Matrix w = r.explanation.weights.dense();
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);
  EXPECT_GE(w.minCoeff(), 0.0f);
  EXPECT_LE(weightRank(r), 32);
  const Result scaled = run("efficient-attention", in, {{"variant", "scaling"}});
  EXPECT_LE(weightRank(scaled), 32);
}

TEST(EfficientAttention, MatchesTheDefinitionInDouble) {
  const Inputs in = inputs(Generator::Local, 90);
  MatrixD rq = in.q.cast<double>(), rk = in.k.cast<double>();
  for (Index i = 0; i < rq.rows(); ++i) {  // softmax over features
    rq.row(i) = (rq.row(i).array() - rq.row(i).maxCoeff()).exp();
    rq.row(i) /= rq.row(i).sum();
  }
  for (Index c = 0; c < rk.cols(); ++c) {  // softmax over positions
    rk.col(c) = (rk.col(c).array() - rk.col(c).maxCoeff()).exp();
    rk.col(c) /= rk.col(c).sum();
  }
  const MatrixD expected = rq * (rk.transpose() * in.v.cast<double>());
  EXPECT_LT(relativeError(run("efficient-attention", in).output, expected), 1e-5);
  const MatrixD scaled = (in.q.cast<double>() * in.k.cast<double>().transpose() / 90.0) * in.v.cast<double>();
  EXPECT_LT(relativeError(run("efficient-attention", in, {{"variant", "scaling"}}).output, scaled), 1e-5);
}

TEST(EfficientAttention, IdentityValueProbeEqualsTheImpliedWeights) {
  const Inputs in = inputs(Generator::Clustered, 80);
  expectIdentityProbeEqualsWeights("efficient-attention", in, {{"variant", "softmax"}});
  expectIdentityProbeEqualsWeights("efficient-attention", in, {{"variant", "scaling"}});
}

TEST(EfficientAttention, IsADifferentOperatorWithContextTemplates) {
  const auto mech = requireMechanism("efficient-attention");
  EXPECT_FALSE(mech->info().approximates_softmax);
  const Inputs in = inputs(Generator::Clustered, 128);
  const Result r = run("efficient-attention", in);
  const double e = errorVsExact(r, in, false);
  std::printf("[ efficient-attention clustered N=128 ] distance to softmax (not an approximation error) %.3f\n", e);
  EXPECT_GT(e, 0.05);  // measured 0.835: a different operator, far from softmax on structured inputs
  const NamedMatrix* templates = factor(r.explanation, "ρ_k(K)ᵀ");
  ASSERT_NE(templates, nullptr);
  ASSERT_EQ(templates->value.rows(), 32);
  ASSERT_EQ(templates->value.cols(), 128);
  EXPECT_LT((templates->value.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);  // distributions over positions
  EXPECT_THROW(run("efficient-attention", in, {}, true), UserError);
}

}  // namespace
}  // namespace attn
