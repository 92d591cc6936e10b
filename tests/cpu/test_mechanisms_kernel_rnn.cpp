// Recurrent kernel mechanisms (CATALOG.md #46 fast weights, #48 RFA): the chunked forms against the
// token-by-token recurrences, implied weights, the limit cases and the papers' qualitative claims (capacity
// of the delta rule and DPFP; RFA's error falling with D; the gate's forgetting envelope). Causality and
// determinism of every mechanism are checked in test_mechanisms.cpp (AllMechanisms.*), Vulkan agreement in
// the gpu suite.
#include <cmath>
#include <cstdio>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/runner.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
           bool causal = false, std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}

bool hasNote(const Result& r, const std::string& part) {
  for (const auto& n : r.explanation.notes)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

// --- fast-weight ---------------------------------------------------------------------------------------

/// DPFP_ν in double, written from the definition: r = [ReLU(x), ReLU(−x)], φ = concat_j r ⊙ roll(r, j).
MatrixD dpfpRef(const Matrix& x, Index nu) {
  const Index d = x.cols(), two = 2 * d;
  MatrixD phi(x.rows(), two * nu);
  for (Index i = 0; i < x.rows(); ++i) {
    VectorD r(two);
    for (Index c = 0; c < d; ++c) {
      r(c) = std::max(0.0, double(x(i, c)));
      r(d + c) = std::max(0.0, -double(x(i, c)));
    }
    for (Index j = 1; j <= nu; ++j)
      for (Index c = 0; c < two; ++c) phi(i, (j - 1) * two + c) = r(c) * r(((c - j) % two + two) % two);
  }
  return phi;
}

MatrixD sumNormalised(MatrixD phi) {
  for (Index i = 0; i < phi.rows(); ++i) {
    const double s = phi.row(i).sum();
    if (s > 0) phi.row(i) /= s;
  }
  return phi;
}

/// The fast-weight RNN token by token in double: delta rule (β) or sum rule, y_i = W_i·φq_i.
MatrixD fastWeightRef(const MatrixD& fq, const MatrixD& fk, const Matrix& v, bool delta, double beta) {
  const Index n = fq.rows(), dv = v.cols();
  MatrixD w = MatrixD::Zero(dv, fq.cols()), y(n, dv);
  for (Index i = 0; i < n; ++i) {
    const VectorD vi = v.row(i).transpose().cast<double>(), ki = fk.row(i).transpose();
    if (delta) {
      const VectorD vbar = w * ki;
      w += beta * (vi - vbar) * ki.transpose();
    } else {
      w += vi * ki.transpose();
    }
    y.row(i) = (w * fq.row(i).transpose()).transpose();
  }
  return y;
}

TEST(FastWeight, DpfpFeaturesAreTheDefinitionSumNormalised) {
  const Inputs in = inputs(Generator::Gaussian, 80);
  for (int nu : {1, 2, 3}) {
    const Result r = run("fast-weight", in, {{"nu", std::to_string(nu)}, {"rule", "sum"}});
    const Matrix& phi_k = r.explanation.factors.at(0).value;
    ASSERT_EQ(phi_k.cols(), 2 * 32 * nu);  // F = 2dν
    const MatrixD ref = sumNormalised(dpfpRef(in.k, nu)).topRows(phi_k.rows());
    EXPECT_LT(test::maxAbsDiff(phi_k, ref), 1e-6) << "nu=" << nu;
    // Sum rule: c_ij = φ̂q_i·φ̂k_j for j ≤ i, 0 above the diagonal (implied weights in factored form).
    const MatrixD fq = sumNormalised(dpfpRef(in.q, nu)), fk = sumNormalised(dpfpRef(in.k, nu));
    MatrixD c = fq * fk.transpose();
    for (Index i = 0; i < 80; ++i) c.row(i).tail(80 - i - 1).setZero();
    EXPECT_LT(test::relDiff(r.explanation.weights.dense(), c), 1e-5) << "nu=" << nu;
  }
}

TEST(FastWeight, ChunkedRulesEqualTheTokenByTokenRecurrence) {
  const Inputs in = inputs(Generator::Local, 150);  // three chunks of 64, the last partial
  for (int nu : {1, 3}) {
    const MatrixD fq = sumNormalised(dpfpRef(in.q, nu)), fk = sumNormalised(dpfpRef(in.k, nu));
    for (double beta : {1.0, 0.3}) {
      const Result r = run("fast-weight", in, {{"nu", std::to_string(nu)}, {"beta", std::to_string(beta)}}, true);
      EXPECT_LT(test::relDiff(r.output, fastWeightRef(fq, fk, in.v, true, beta)), 1e-5) << nu << " " << beta;
    }
    const Result s = run("fast-weight", in, {{"nu", std::to_string(nu)}, {"rule", "sum"}}, true);
    EXPECT_LT(test::relDiff(s.output, fastWeightRef(fq, fk, in.v, false, 1)), 1e-5) << nu;
  }
}

TEST(FastWeight, ImpliedWeightsReproduceTheOutputForEveryMapAndRule) {
  const Inputs in = inputs(Generator::Clustered, 130);
  for (const char* map : {"dpfp", "favor", "elu+1"})
    for (const char* rule : {"delta", "sum", "linear"}) {
      const Result r = run("fast-weight", in, {{"feature_map", map}, {"rule", rule}, {"beta", "0.7"}}, true);
      ASSERT_TRUE(r.explanation.weights) << map << " " << rule;
      const Matrix w = r.explanation.weights.dense();
      EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-5) << map << " " << rule;
      Matrix upper = w.triangularView<Eigen::StrictlyUpper>();
      EXPECT_TRUE(upper.isZero(0)) << map << " " << rule;
      EXPECT_FALSE(r.output.hasNaN()) << map << " " << rule;
    }
  // The delta rule's V = I probe runs in blocks of 256 columns, each from its first token: N = 600 has three.
  const Inputs big = inputs(Generator::Clustered, 600);
  const Result r = run("fast-weight", big, {{"rule", "delta"}, {"beta", "0.7"}}, true);
  ASSERT_TRUE(r.explanation.weights);
  const Matrix w = r.explanation.weights.dense();
  EXPECT_LT(relativeError(Matrix(w * big.v), MatrixD(r.output.cast<double>())), 1e-5);
  EXPECT_TRUE(Matrix(w.triangularView<Eigen::StrictlyUpper>()).isZero(0));
}

TEST(FastWeight, LinearRuleWithEluIsTheLinearTransformer) {
  const Inputs in = inputs(Generator::Clustered, 150);
  const Result fw = run("fast-weight", in, {{"feature_map", "elu+1"}, {"rule", "linear"}}, true);
  const Result lt = run("linear-transformer", in, {}, true);
  EXPECT_LT(test::relDiff(fw.output, lt.output.cast<double>()), 1e-6);
}

TEST(FastWeight, AlwaysCausalWithANoteAndACausalReference) {
  const Inputs in = inputs(Generator::Clustered, 100);
  const Result a = run("fast-weight", in, {}, false), b = run("fast-weight", in, {}, true);
  EXPECT_TRUE(a.output == b.output);
  EXPECT_TRUE(hasNote(a, "causal by construction"));
  EXPECT_FALSE(hasNote(b, "causal by construction"));
  const auto m = requireMechanism("fast-weight");
  EXPECT_TRUE(m->referenceIsCausal(false));
  EXPECT_EQ(m->info().causal, CausalSupport::Native);
}

TEST(FastWeight, StepsShowTheFastWeightMatrixEvolving) {
  const Inputs in = inputs(Generator::Clustered, 100);
  const Result r = run("fast-weight", in, {{"nu", "2"}});
  ASSERT_EQ(r.explanation.steps.size(), 5u);  // W at four tokens, then the capacity view
  EXPECT_EQ(r.explanation.steps[4].title, "capacity");
  EXPECT_EQ(r.explanation.steps[0].title, "W after token 24");
  EXPECT_EQ(r.explanation.steps[3].title, "W after token 99");
  const Matrix& w = r.explanation.steps[3].view->factors.at(0).value;
  EXPECT_EQ(w.rows(), 16);
  EXPECT_EQ(w.cols(), 2 * 32 * 2);
  // y_99 = W_99·φ̂(q_99): the last snapshot is the state the last output read.
  const MatrixD fq = sumNormalised(dpfpRef(in.q, 2));
  const VectorD y = w.cast<double>() * fq.row(99).transpose();
  EXPECT_LT((y.transpose() - r.output.row(99).cast<double>()).norm() / y.norm(), 1e-5);
}

TEST(FastWeight, EdgeCasesAndBadInputs) {
  const Inputs one = inputs(Generator::Gaussian, 1);
  for (const char* rule : {"delta", "sum", "linear"}) {
    const Result r = run("fast-weight", one, {{"rule", rule}});
    EXPECT_FALSE(r.output.hasNaN()) << rule;
    EXPECT_EQ(r.explanation.weights.dense().size(), 1) << rule;
  }
  // β = 0 writes nothing: the output is 0.
  const Inputs in = inputs(Generator::Gaussian, 40);
  EXPECT_TRUE(run("fast-weight", in, {{"beta", "0"}}).output.isZero(0));
  // ν out of range is clamped with a note (Params), keys ≠ queries is refused.
  const auto m = requireMechanism("fast-weight");
  const Params p = Params::resolve(m->params(), {{"nu", "7"}});
  EXPECT_EQ(p.integer("nu"), 3);
  EXPECT_FALSE(p.notes().empty());
  Inputs cross = in;
  cross.k = cross.k.topRows(20).eval();
  cross.v = cross.v.topRows(20).eval();
  EXPECT_THROW(run("fast-weight", cross), UserError);
  EXPECT_THROW(Params::resolve(m->params(), {{"rule", "hebb"}}), UserError);
}

/// Capacity demo (CATALOG #46 d; the paper's synthetic settings): write `pairs` random key → value pairs,
/// then read each key back with a query token whose key is 0 (φ(0) = 0 for DPFP: it writes nothing).
/// `overwrite` later tokens re-assign the first keys to new values (setting 2); the read must return the
/// latest. Error: sin of the angle between read and stored value (scale-free: the sum rule's reads are
/// not normalised), mean over pairs and 5 draws.
double retrievalError(Index pairs, Index overwrite, const std::string& rule, int nu, Index d = 16) {
  double total = 0;
  int count = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    Rng rng(seed, 7);
    const Matrix keys = rng.gaussian(pairs, d), values = rng.gaussian(pairs + overwrite, 16);
    const Index writes = pairs + overwrite, n = writes + pairs;
    Inputs in;
    in.q = Matrix::Zero(n, d);
    in.k = Matrix::Zero(n, d);
    in.v = Matrix::Zero(n, 16);
    for (Index j = 0; j < writes; ++j) {
      in.k.row(j) = keys.row(j < pairs ? j : j - pairs);
      in.v.row(j) = values.row(j);
    }
    for (Index j = 0; j < pairs; ++j) in.q.row(writes + j) = keys.row(j);
    const Result r = run("fast-weight", in, {{"rule", rule}, {"nu", std::to_string(nu)}}, true);
    for (Index j = 0; j < pairs; ++j) {
      const Eigen::RowVectorXd got = r.output.row(writes + j).cast<double>();
      const Eigen::RowVectorXd want = values.row(j < overwrite ? pairs + j : j).cast<double>();
      const double cosine = got.norm() > 0 ? got.dot(want) / (got.norm() * want.norm()) : 0;
      total += std::sqrt(std::max(0.0, 1 - cosine * cosine));
      ++count;
    }
  }
  return total / count;
}

TEST(FastWeight, CapacityViewShowsTheDeltaRuleRetainingMoreAsTheMemoryFills) {
  const Result r = run("fast-weight", inputs(Generator::Clustered, 64), {{"nu", "1"}}, true);
  const NamedMatrix* curve = nullptr;
  for (const auto& f : r.explanation.factors)
    if (f.name.rfind("capacity", 0) == 0) curve = &f;
  ASSERT_NE(curve, nullptr);
  ASSERT_EQ(curve->value.rows(), 3);
  const Index last = curve->value.cols() - 1;
  std::printf("[ fast-weight capacity view, dpfp ν=1, F=64 ] M=%g: sum %.3f delta %.3f; M=%g: sum %.3f delta %.3f\n",
              double(curve->value(0, 0)), double(curve->value(1, 0)), double(curve->value(2, 0)),
              double(curve->value(0, last)), double(curve->value(1, last)), double(curve->value(2, last)));
  EXPECT_GT(curve->value(1, last), curve->value(1, 0));  // the sum rule degrades as the memory fills
  EXPECT_LT(curve->value(2, last), curve->value(1, last));  // the delta rule interferes less once it is full
  EXPECT_EQ(r.explanation.steps.back().title, "capacity");
}

TEST(FastWeight, DeltaRuleAndLargerNuRetainMore) {
  std::printf("[ fast-weight capacity, d = 16 ] retrieval error (sin of the angle) vs stored pairs M\n");
  std::printf("  M    sum ν=1  delta ν=1  delta ν=2  delta ν=3\n");
  for (Index pairs : {8, 16, 32, 64, 128}) {
    const double s1 = retrievalError(pairs, 0, "sum", 1), d1 = retrievalError(pairs, 0, "delta", 1),
                 d2 = retrievalError(pairs, 0, "delta", 2), d3 = retrievalError(pairs, 0, "delta", 3);
    std::printf("  %-4lld %-8.3f %-10.3f %-10.3f %.3f\n", static_cast<long long>(pairs), s1, d1, d2, d3);
    // The paper's claims: the delta rule interferes less than the sum rule, and larger ν (a bigger
    // memory, F = 2dν) retains more, once the memory is loaded (M ≥ d; at M = 8 all are close).
    if (pairs >= 16) {
      EXPECT_LT(d1, s1) << "M=" << pairs;
      EXPECT_LT(d2, d1) << "M=" << pairs;
      EXPECT_LT(d3, d1) << "M=" << pairs;
    }
  }
  // Setting 2: re-assigned keys. The sum rule returns a mix of the old and the new value; the delta rule
  // replaces what the key reads.
  std::printf("[ fast-weight overwrite, d = 16 ] M = 24 pairs, the first 12 re-assigned\n");
  for (int nu : {1, 2, 3}) {
    const double s = retrievalError(24, 12, "sum", nu), d = retrievalError(24, 12, "delta", nu);
    std::printf("  ν=%d sum %.3f delta %.3f\n", nu, s, d);
    EXPECT_LT(d, s - 0.03) << "nu=" << nu;
  }
}

// --- rfa -------------------------------------------------------------------------------------------------

/// RFA's features computed here from the definition without the exp(‖x‖²/2) factor:
/// φ(x) = √(1/D)·[sin(ω·x̂/σ), cos(ω·x̂/σ)], ω = the mechanism's seeded draw (Rng(seed, 48), D×d).
Matrix rfaFeatures(const Matrix& x, Index features, double sigma, std::uint64_t seed = 1) {
  Rng rng(seed, 48);
  const Matrix omega = rng.gaussian(features, x.cols());
  Matrix phi(x.rows(), 2 * features);
  for (Index i = 0; i < x.rows(); ++i) {
    const Eigen::RowVectorXf unit = x.row(i) / x.row(i).norm();
    for (Index r = 0; r < features; ++r) {
      const double u = double(omega.row(r).dot(unit)) / sigma;
      phi(i, r) = float(std::sin(u) / std::sqrt(double(features)));
      phi(i, features + r) = float(std::cos(u) / std::sqrt(double(features)));
    }
  }
  return phi;
}

/// Row softmax of t·q̂·k̂ in double (causal: j ≤ i).
MatrixD unitSoftmax(const Matrix& q, const Matrix& k, double t, bool causal = false) {
  MatrixD qn = q.cast<double>(), kn = k.cast<double>();
  qn.rowwise().normalize();
  kn.rowwise().normalize();
  MatrixD a = (qn * kn.transpose()) * t;
  for (Index i = 0; i < a.rows(); ++i) {
    const Index visible = causal ? i + 1 : a.cols();
    const double mx = a.row(i).head(visible).maxCoeff();
    double sum = 0;
    for (Index j = 0; j < a.cols(); ++j) sum += a(i, j) = j < visible ? std::exp(a(i, j) - mx) : 0.0;
    a.row(i) /= sum;
  }
  return a;
}

TEST(Rfa, TheExpNormFactorCancels) {
  // The backend's trigonometric map multiplies by exp(‖x‖²/2) = exp(1/2σ²) for unit x/σ: a constant that
  // cancels between numerator and denominator, so RFA is plain sin/cos features of unit vectors.
  const Inputs in = inputs(Generator::Clustered, 150);
  CpuBackend cpu(2);
  for (bool causal : {false, true}) {
    const Result r = run("rfa", in, {{"sigma", "1"}, {"features", "64"}}, causal);
    const Matrix fq = rfaFeatures(in.q, 64, 1.0), fk = rfaFeatures(in.k, 64, 1.0);
    const Matrix ref = cpu.linearAttention(fq, fk, in.v, causal);
    EXPECT_LT(test::relDiff(r.output, ref.cast<double>()), 1e-5) << causal;
  }
}

TEST(Rfa, ReferenceIsSoftmaxOnUnitVectorsAtTemperatureSigmaSquared) {
  const Inputs in = inputs(Generator::Clustered, 100);
  const auto m = requireMechanism("rfa");
  for (const char* sigma : {"0", "0.8", ""}) {
    const Params p = Params::resolve(m->params(), *sigma ? std::map<std::string, std::string>{{"sigma", sigma}}
                                                          : std::map<std::string, std::string>{});
    // auto: d^(−1/4) with d = 32; the default is 1.
    const double s = std::string(sigma) == "0" ? std::pow(32.0, -0.25) : *sigma ? 0.8 : 1.0;
    const Inputs ref = m->ownReference(in, p).value().inputs;
    const Result exact = run("exact", ref);
    EXPECT_LT(test::relDiff(exact.explanation.weights.dense(), unitSoftmax(in.q, in.k, 1 / (s * s))), 1e-5) << sigma;
  }
  EXPECT_NE(m->ownReference(in, Params::resolve(m->params(), {}))->label.find("σ²"), std::string::npos);
}

TEST(Rfa, AttentionErrorFallsAsFeaturesGrow) {
  // e_attn = ‖A_eff − A*‖/‖A*‖ against softmax(q̂·k̂/σ²), mean over 5 seeds of ω (CATALOG #48 e).
  const Inputs in = inputs(Generator::Clustered, 128);
  for (const char* sigma : {"0", "1"}) {
    const MatrixD target = unitSoftmax(in.q, in.k, std::string(sigma) == "0" ? std::sqrt(32.0) : 1.0);
    std::printf("[ rfa clustered N=128 d=32 σ=%s ] e_attn vs D (mean over 5 seeds):", sigma);
    double last = 1e300, first = 0;
    for (int features : {8, 32, 128, 512, 2048}) {
      double e = 0;
      for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        const Result r = run("rfa", in, {{"features", std::to_string(features)}, {"sigma", sigma}}, false, seed);
        e += test::relDiff(r.explanation.weights.dense(), target) / 5;
      }
      std::printf(" D=%d %.3f", features, e);
      EXPECT_LT(e, last) << "sigma " << sigma << " D=" << features;
      if (features == 8) first = e;
      last = e;
    }
    std::printf("\n");
    EXPECT_LT(last, first / 4) << sigma;
  }
}

TEST(Rfa, GateGivesAnExponentialForgettingEnvelope) {
  // Identical tokens: φq_i·φk_j is the same for every pair, so A_ij ∝ g^(i−j) along each row exactly.
  Inputs in = inputs(Generator::Gaussian, 150);
  for (Index i = 1; i < 150; ++i) in.q.row(i) = in.q.row(0);
  in.k = in.q;
  for (double g : {0.9, 0.5}) {
    const Result r = run("rfa", in, {{"gate", std::to_string(g)}, {"features", "32"}}, true);
    const Matrix w = r.explanation.weights.dense();
    for (Index i : {10, 100, 149}) {
      for (Index j = std::max<Index>(0, i - 20); j < i; ++j) EXPECT_NEAR(w(i, j) / w(i, j + 1), g, 1e-4) << i << " " << j;
      EXPECT_NEAR(w.row(i).sum(), 1.0, 1e-5);
      EXPECT_EQ(w.row(i).tail(149 - i).cwiseAbs().sum(), 0.0f);
    }
    EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-5);
  }
}

TEST(Rfa, GatedChunkedFormEqualsTheRecurrence) {
  const Inputs in = inputs(Generator::Local, 150);  // three chunks of 64
  const Matrix fq = rfaFeatures(in.q, 64, 1.0), fk = rfaFeatures(in.k, 64, 1.0);
  for (double g : {0.95, 0.6}) {
    const Result r = run("rfa", in, {{"gate", std::to_string(g)}, {"features", "64"}, {"sigma", "1"}}, true);
    MatrixD s = MatrixD::Zero(128, 16), ref(150, 16);
    VectorD z = VectorD::Zero(128);
    for (Index t = 0; t < 150; ++t) {  // S_t = g·S_{t−1} + (1−g)·φ(k_t)⊗v_t, z likewise
      const VectorD k = fk.row(t).transpose().cast<double>(), q = fq.row(t).transpose().cast<double>();
      s = g * s + (1 - g) * k * in.v.row(t).cast<double>();
      z = g * z + (1 - g) * k;
      const double den = q.dot(z);
      if (den > 0) ref.row(t) = ((s.transpose() * q) / den).transpose();
      else ref.row(t).setZero();
    }
    EXPECT_LT(test::relDiff(r.output, ref), 1e-4) << g;
    EXPECT_LT(relativeError(Matrix(r.explanation.weights.dense() * in.v), MatrixD(r.output.cast<double>())), 1e-5);
  }
}

TEST(Rfa, GateLimits) {
  const Inputs in = inputs(Generator::Clustered, 150);
  // g → 1: no forgetting, the ungated RFA ((1−g) cancels in the normalisation).
  const Result ungated = run("rfa", in, {{"sigma", "1"}}, true);
  const Result almost = run("rfa", in, {{"sigma", "1"}, {"gate", "0.999999"}}, true);
  EXPECT_LT(test::relDiff(almost.output, ungated.output.cast<double>()), 1e-3);
  // g = 0: only the current token is remembered, A_ii = 1.
  const Result self = run("rfa", in, {{"sigma", "1"}, {"gate", "0"}}, true);
  const Matrix w = self.explanation.weights.dense();
  for (Index i = 0; i < 150; ++i) {
    EXPECT_NEAR(w(i, i), 1.0f, 1e-5) << i;
    EXPECT_NEAR(w.row(i).cwiseAbs().sum(), 1.0f, 1e-5) << i;
  }
  EXPECT_LT(test::relDiff(self.output, in.v.cast<double>()), 1e-5);
}

TEST(Rfa, GatedOutputsIgnoreLaterTokensBitForBit) {
  const Inputs in = inputs(Generator::Clustered, 150);
  Inputs changed = in;
  Rng rng(99);
  changed.q.bottomRows(79) = rng.gaussian(79, 32);
  changed.k.bottomRows(79) = rng.gaussian(79, 32);
  changed.v.bottomRows(79) = rng.gaussian(79, 16);
  const Result a = run("rfa", in, {{"gate", "0.9"}}, true), b = run("rfa", changed, {{"gate", "0.9"}}, true);
  EXPECT_TRUE(a.output.topRows(71) == b.output.topRows(71));
  EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10));
}

TEST(Rfa, BadParamsAndEdgeCases) {
  const Inputs in = inputs(Generator::Clustered, 60);
  try {
    run("rfa", in, {{"gate", "0.9"}}, false);
    ADD_FAILURE() << "a gate without causal must be refused";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("turn causal on"), std::string::npos) << e.what();
  }
  const Inputs one = inputs(Generator::Gaussian, 1);
  for (bool causal : {false, true}) {
    const Result r = run("rfa", one, {{"gate", causal ? "0.5" : "1"}}, causal);
    EXPECT_FALSE(r.output.hasNaN());
    EXPECT_EQ(r.explanation.weights.dense().size(), 1);
  }
  // Cross attention (fewer keys than queries) works bidirectionally, not causally.
  Inputs cross = in;
  cross.k = in.k.topRows(20).eval();
  cross.v = in.v.topRows(20).eval();
  EXPECT_EQ(run("rfa", cross).output.rows(), 60);
  EXPECT_THROW(run("rfa", cross, {}, true), UserError);
  // The gate trace and the forgetting envelope are shown.
  const Result r = run("rfa", in, {{"gate", "0.8"}}, true);
  ASSERT_GE(r.explanation.factors.size(), 2u);
  EXPECT_EQ(r.explanation.factors[0].name, "memory envelope");
  EXPECT_NEAR(r.explanation.factors[0].value(0, 59), 0.2f, 1e-6);
  EXPECT_NEAR(r.explanation.factors[0].value(0, 58), 0.16f, 1e-6);
}

}  // namespace
}  // namespace attn
