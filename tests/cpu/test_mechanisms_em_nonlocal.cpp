// EMANet (#13: K bases fitted by EM) and AutoNL (#23: the lightweight non-local block without softmax). Their
// outputs and implied weights against independent float64 loops over the papers' equations, their limit cases,
// the claims on a shipped photo (EM's objective never falls; the reconstruction error falls with K; AutoNL's two
// multiplication orders agree and `auto` flips exactly where their FLOP counts cross), determinism and bad
// parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/metrics.h"
#include "tests/cpu/test_util.h"

namespace attn::test {
namespace {

Inputs image(Index n) { return mechanismInputs(Generator::Image, n); }

Inputs photo(const char* name, Index w, Index h, Index d = 32, Index dv = 16) {
  InputSpec spec;
  spec.generator = Generator::Image;
  spec.image = name;
  spec.n = w * h;
  spec.width = w;
  spec.d = d;
  spec.dv = dv;
  return generate(spec);
}

const NamedMatrix& factorNamed(const Explanation& e, const std::string& name) {
  for (const NamedMatrix& f : e.factors)
    if (f.name == name) return f;
  throw std::runtime_error("no factor " + name);
}

bool hasNote(const Result& r, const std::string& start) {
  for (const std::string& note : r.explanation.notes)
    if (note.rfind(start, 0) == 0) return true;
  return false;
}

std::string messageOf(const std::string& id, const Inputs& in, std::map<std::string, std::string> params,
                      bool causal = false) {
  try {
    runMechanism(id, in, std::move(params), causal);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// ---- EMANet: EM in float64, explicit loops over the equations ----

struct EmTrace {
  std::vector<double> objective;  // L(μ) at each E-step's bases, and once more at the final bases
  std::vector<double> error;      // ‖X − Z·Z̃ᵀX‖ / ‖X‖ at each E-step
  MatrixD output;                 // Z_q·(Z̃ᵀV) with the last E-step's bases and Z̃
  MatrixD weights;                // Z_q·Z̃ᵀ
};

/// T rounds of E-step (Z_ik = exp(s·x_i·μ_k) / Σ_k'), M-step (μ_k = Σ_i Z_ik x_i / Σ_i Z_ik, rescaled to the
/// keys' mean norm), from μ⁰; then the queries' softmax over the last E-step's bases and the values' Z̃-means.
EmTrace emLoops(const MatrixD& q, const MatrixD& x, const MatrixD& v, MatrixD mu, int iterations) {
  const Index n = x.rows(), d = x.cols(), k = mu.rows();
  const double s = 1 / std::sqrt(double(d));
  double norm = 0;
  for (Index i = 0; i < n; ++i) norm += x.row(i).norm();
  norm /= double(n);
  auto responsibilities = [&](const MatrixD& points, const MatrixD& bases, double* objective) {
    MatrixD z(points.rows(), k);
    for (Index i = 0; i < points.rows(); ++i) {
      double top = -INFINITY;
      for (Index b = 0; b < k; ++b) {
        double logit = 0;
        for (Index c = 0; c < d; ++c) logit += s * points(i, c) * bases(b, c);
        z(i, b) = logit;
        top = std::max(top, logit);
      }
      double sum = 0;
      for (Index b = 0; b < k; ++b) sum += std::exp(z(i, b) - top);
      for (Index b = 0; b < k; ++b) z(i, b) = std::exp(z(i, b) - top) / sum;
      if (objective) *objective += top + std::log(sum);
    }
    return z;
  };
  EmTrace t;
  MatrixD z_tilde, last_mu;
  for (int it = 0; it < iterations; ++it) {
    double objective = 0;
    const MatrixD z = responsibilities(x, mu, &objective);
    t.objective.push_back(objective);
    z_tilde = MatrixD::Zero(n, k);
    for (Index b = 0; b < k; ++b) {
      double mass = 0;
      for (Index i = 0; i < n; ++i) mass += z(i, b);
      for (Index i = 0; i < n; ++i) z_tilde(i, b) = z(i, b) / mass;
    }
    MatrixD means = MatrixD::Zero(k, d);
    for (Index b = 0; b < k; ++b)
      for (Index i = 0; i < n; ++i) means.row(b) += z_tilde(i, b) * x.row(i);
    double err = 0;
    for (Index i = 0; i < n; ++i) {
      VectorD rebuilt = VectorD::Zero(d);
      for (Index b = 0; b < k; ++b) rebuilt += z(i, b) * means.row(b).transpose();
      err += (x.row(i).transpose() - rebuilt).squaredNorm();
    }
    t.error.push_back(std::sqrt(err) / x.norm());
    last_mu = mu;
    for (Index b = 0; b < k; ++b) mu.row(b) = means.row(b) * (norm / means.row(b).norm());
  }
  double final_objective = 0;
  responsibilities(x, mu, &final_objective);
  t.objective.push_back(final_objective);
  const MatrixD z_q = responsibilities(q, last_mu, nullptr);
  t.weights = z_q * z_tilde.transpose();
  t.output = t.weights * v;
  return t;
}

TEST(Emanet, OutputWeightsAndEmNumbersMatchFloat64LoopsOverThePapersEquations) {
  const Inputs in = image(30);  // 6×5
  const MatrixD q = in.q.cast<double>(), x = in.k.cast<double>(), v = in.v.cast<double>();
  double norm = 0;
  for (Index i = 0; i < 30; ++i) norm += x.row(i).norm();
  norm /= 30;
  for (int bases : {1, 4, 30})
    for (int iterations : {1, 3}) {
      const std::string what = "K=" + std::to_string(bases) + " T=" + std::to_string(iterations);
      const Result r =
          runMechanism("emanet", in, {{"bases", std::to_string(bases)}, {"iterations", std::to_string(iterations)}});
      // The starting bases: K distinct pixels' keys, each at the keys' mean norm.
      const Matrix& mu0 = factorNamed(r.explanation, "initial bases μ⁰").value;
      ASSERT_EQ(mu0.rows(), bases) << what;
      std::vector<Index> picked;
      for (Index b = 0; b < bases; ++b) {
        Index match = -1;
        for (Index j = 0; j < 30; ++j)
          if ((mu0.row(b).cast<double>() - x.row(j) * (norm / x.row(j).norm())).norm() < 1e-4 * norm) match = j;
        ASSERT_GE(match, 0) << what << ": basis " << b << " is no pixel's key";
        EXPECT_EQ(std::count(picked.begin(), picked.end(), match), 0) << what << ": pixel " << match << " twice";
        picked.push_back(match);
      }
      const EmTrace t = emLoops(q, x, v, mu0.cast<double>(), iterations);
      EXPECT_LT(relativeError(r.output, t.output), 1e-5) << what;
      ASSERT_TRUE(r.explanation.weights) << what;
      EXPECT_LT(relDiff(r.explanation.weights.dense(), t.weights), 1e-5) << what;
      EXPECT_LT((t.weights.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-12) << what;  // row-stochastic
      const Matrix& objective = factorNamed(r.explanation, "EM objective per iteration").value;
      const Matrix& error = factorNamed(r.explanation, "reconstruction error per iteration").value;
      ASSERT_EQ(objective.cols(), iterations) << what;
      for (int it = 0; it < iterations; ++it) {
        EXPECT_NEAR(objective(0, it), t.objective[size_t(it)], 1e-5 * std::abs(t.objective[size_t(it)])) << what;
        EXPECT_NEAR(error(0, it), t.error[size_t(it)], 1e-5 + 1e-4 * t.error[size_t(it)]) << what;
      }
      // A label map per iteration, H×W, labels 0..K−1.
      ASSERT_EQ(r.explanation.steps.size(), size_t(iterations + 1)) << what;
      for (int it = 0; it < iterations; ++it) {
        const NamedMatrix& labels = r.explanation.steps[size_t(it)].view->factors.front();
        EXPECT_EQ(labels.layout, MatrixLayout::Labels) << what;
        ASSERT_EQ(labels.value.rows(), 6) << what;
        ASSERT_EQ(labels.value.cols(), 5) << what;
        EXPECT_GE(labels.value.minCoeff(), 0) << what;
        EXPECT_LE(labels.value.maxCoeff(), float(bases - 1)) << what;
      }
    }
}

TEST(Emanet, OneBasisGivesEveryPixelTheMeanOfTheValues) {
  const Inputs in = image(96);
  const Result r = runMechanism("emanet", in, {{"bases", "1"}});
  const MatrixD mean = in.v.cast<double>().colwise().mean().replicate(96, 1);
  EXPECT_LT(relativeError(r.output, mean), 1e-6);
}

// EM's objective Σ_i log Σ_k exp(s·x_i·μ_k) never falls (a wrong M-step breaks it); the plain reconstruction
// error is measured too, and whether it falls at every iteration is reported, not assumed.
TEST(Emanet, OnAPhotoTheEmObjectiveNeverFallsOverIterations) {
  for (const char* name : {"coffee", "astronaut"}) {
    const Inputs in = photo(name, 32, 24);
    const MatrixD q = in.q.cast<double>(), x = in.k.cast<double>(), v = in.v.cast<double>();
    for (int bases : {4, 16, 64}) {
      const int iterations = 10;
      const Result r = runMechanism(
          "emanet", in, {{"bases", std::to_string(bases)}, {"iterations", std::to_string(iterations)}}, false, 7);
      const EmTrace t =
          emLoops(q, x, v, factorNamed(r.explanation, "initial bases μ⁰").value.cast<double>(), iterations);
      EXPECT_LT(relativeError(r.output, t.output), 1e-4) << name << " K=" << bases;
      std::printf("emanet %s 32×24 K=%2d: EM objective", name, bases);
      for (double l : t.objective) std::printf(" %.4f", l);
      std::printf("\n%27s reconstruction error", "");
      bool error_falls = true;
      for (size_t it = 0; it < t.error.size(); ++it) {
        std::printf(" %.5f", t.error[it]);
        if (it > 0 && t.error[it] > t.error[it - 1]) error_falls = false;
      }
      std::printf("  (%s at every iteration)\n", error_falls ? "falls" : "does NOT fall");
      RecordProperty(std::string("emanet_") + name + "_K" + std::to_string(bases) + "_error_falls_every_iteration",
                     error_falls ? "yes" : "no");
      for (size_t it = 1; it < t.objective.size(); ++it)
        EXPECT_GE(t.objective[it], t.objective[it - 1] - 1e-9 * std::abs(t.objective[it - 1]))
            << name << " K=" << bases << " iteration " << it;
      EXPECT_GT(t.objective.back(), t.objective.front()) << name << " K=" << bases;  // EM moved the bases
    }
  }
}

TEST(Emanet, OnAPhotoTheReconstructionErrorFallsWithTheNumberOfBases) {
  for (const char* name : {"coffee", "astronaut"}) {
    const Inputs in = photo(name, 32, 24);
    double previous = INFINITY;
    std::printf("emanet %s 32×24, T = 3: reconstruction error", name);
    for (int bases : {4, 16, 64}) {
      const Result r = runMechanism("emanet", in, {{"bases", std::to_string(bases)}}, false, 7);
      const Matrix& error = factorNamed(r.explanation, "reconstruction error per iteration").value;
      const double e = error(0, error.cols() - 1);
      std::printf(" K=%d %.5f", bases, e);
      EXPECT_LT(e, 0.9 * previous) << name << " K=" << bases;
      previous = e;
    }
    std::printf("\n");
  }
}

TEST(Emanet, DeterministicForASeedAndTheSeedPicksTheBases) {
  const Inputs in = photo("chelsea", 16, 12);
  const Result a = runMechanism("emanet", in, {}, false, 3), b = runMechanism("emanet", in, {}, false, 3);
  EXPECT_TRUE(a.output == b.output);
  EXPECT_TRUE(a.explanation.weights.tile({0, 192}, {0, 192}, {48, 48}, Pooling::Max) ==
              b.explanation.weights.tile({0, 192}, {0, 192}, {48, 48}, Pooling::Max));
  const Result c = runMechanism("emanet", in, {}, false, 4);
  EXPECT_FALSE(factorNamed(a.explanation, "initial bases μ⁰").value ==
               factorNamed(c.explanation, "initial bases μ⁰").value);
  EXPECT_EQ(a.cost.scored_pairs, 4.0 * 192 * 64);  // T + 1 softmaxes over N × K pixel–basis pairs
}

TEST(Emanet, BadParametersAreClearErrorsOrNotedClamps) {
  const Inputs in = image(30);
  EXPECT_NE(messageOf("emanet", in, {{"width", "7"}}).find("EMANet: grid width 7 does not divide N = 30"),
            std::string::npos);
  EXPECT_NE(messageOf("emanet", in, {{"iterations", "three"}}).find("needs a number"), std::string::npos);
  EXPECT_NE(messageOf("emanet", in, {}, true).find("has no causal form"), std::string::npos);
  const Result many = runMechanism("emanet", in);  // K = 64 > N = 30
  EXPECT_TRUE(hasNote(many, "bases: 64 bases for 30 pixels; using 30")) << many.explanation.notes.front();
  const auto m = requireMechanism("emanet");
  const Params p = Params::resolve(m->params(), {{"bases", "1000"}, {"iterations", "0"}});
  ASSERT_EQ(p.notes().size(), 2u);
  EXPECT_EQ(p.integer("bases"), 256);
  EXPECT_EQ(p.integer("iterations"), 1);
  Inputs fewer = in;
  fewer.k = in.k.topRows(20);
  fewer.v = in.v.topRows(20);
  EXPECT_NE(messageOf("emanet", fewer, {}).find("needs as many keys as queries"), std::string::npos);
}

// ---- AutoNL ----

/// f_i = (1/N) Σ_{j on the stride grid} (Σ_{c < C} q_ic·k_jc) v_j, C = max(1, ⌊r·d⌋): the paper's θφᵀg/(HW).
MatrixD lightNonLocal(const MatrixD& q, const MatrixD& k, const MatrixD& v, Index h, Index w, double ratio,
                      Index stride, MatrixD* weights = nullptr) {
  const Index n = h * w, channels = std::max<Index>(1, Index(std::floor(ratio * double(q.cols()))));
  MatrixD out = MatrixD::Zero(n, v.cols());
  if (weights) *weights = MatrixD::Zero(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index y = 0; y < h; y += stride)
      for (Index x = 0; x < w; x += stride) {
        const Index j = y * w + x;
        double affinity = 0;
        for (Index c = 0; c < channels; ++c) affinity += q(i, c) * k(j, c);
        out.row(i) += affinity / double(n) * v.row(j);
        if (weights) (*weights)(i, j) = affinity / double(n);
      }
  return out;
}

struct NonLocalCase {
  const char* ratio;
  Index stride;
  const char* order;
  Index width;  // 0: the 6×5 grid of image(30)
};

TEST(Autonl, OutputsAndWeightsMatchFloat64LoopsOverThePapersEquations) {
  const Inputs in = image(30);
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  const NonLocalCase cases[] = {{"0.25", 2, "auto", 0},  {"1", 1, "quadratic", 0},    {"1", 1, "linear", 0},
                                {"0.5", 3, "linear", 0}, {"0.01", 2, "quadratic", 0}, {"0.25", 4, "auto", 10},
                                {"0.25", 7, "linear", 0}};
  for (const NonLocalCase& c : cases) {
    const Index w = c.width ? c.width : 5, h = 30 / w;
    const std::string what = std::string("r=") + c.ratio + " s=" + std::to_string(c.stride) + " " + c.order + " grid " +
                             std::to_string(h) + "×" + std::to_string(w);
    const Result r = runMechanism("autonl", in,
                                  {{"ratio", c.ratio},
                                   {"stride", std::to_string(c.stride)},
                                   {"order", c.order},
                                   {"width", std::to_string(c.width)}});
    MatrixD a;
    const MatrixD expected = lightNonLocal(q, k, v, h, w, std::stod(c.ratio), c.stride, &a);
    EXPECT_LT(relativeError(r.output, expected), 1e-5) << what;
    ASSERT_TRUE(r.explanation.weights) << what;
    EXPECT_LT(relDiff(r.explanation.weights.dense(), a), 1e-5) << what;
    // The key grid, as a token set.
    ASSERT_EQ(r.explanation.special.size(), 1u) << what;
    const TokenSet& grid = r.explanation.special.front();
    EXPECT_EQ(grid.role, "key grid") << what;
    std::vector<Index> expected_grid;
    for (Index y = 0; y < h; y += c.stride)
      for (Index x = 0; x < w; x += c.stride) expected_grid.push_back(y * w + x);
    EXPECT_EQ(grid.indices, expected_grid) << what;
  }
  // ⌊0.01·32⌋ = 0 channels: one is used, and said.
  EXPECT_TRUE(hasNote(runMechanism("autonl", in, {{"ratio", "0.01"}}), "ratio: r·d = 0.32 channels rounds to 0"));
}

// Stride 1 and ratio 1: the dot-product non-local block without softmax, Q·Kᵀ·V/N, every pair.
TEST(Autonl, StrideOneAndFullChannelsIsTheDotProductNonLocalBlock) {
  const Inputs in = image(96);
  const Result r = runMechanism("autonl", in, {{"ratio", "1"}, {"stride", "1"}});
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  EXPECT_LT(relativeError(r.output, MatrixD(q * k.transpose() * v / 96.0)), 1e-5);
}

TEST(Autonl, OnAPhotoTheTwoOrdersGiveTheSameOutput) {
  const Inputs in = photo("rocket", 48, 32);
  for (const char* ratio : {"0.25", "1"})
    for (const char* stride : {"1", "2", "3"}) {
      const Result lin = runMechanism("autonl", in, {{"ratio", ratio}, {"stride", stride}, {"order", "linear"}});
      const Result quad = runMechanism("autonl", in, {{"ratio", ratio}, {"stride", stride}, {"order", "quadratic"}});
      const double diff = relativeError(lin.output, quad.output);
      std::printf("autonl rocket 48×32 r=%s s=%s: linear vs quadratic order, relative difference %.2e\n", ratio, stride,
                  diff);
      EXPECT_LT(diff, 1e-5) << "r=" << ratio << " s=" << stride;
      EXPECT_TRUE(hasNote(lin, "order: linear θ(φᵀg) (forced)"));
      EXPECT_TRUE(hasNote(quad, "order: quadratic (θφᵀ)g (forced)"));
    }
}

/// The order `auto` took, from its note.
std::string autoOrder(const Result& r) {
  if (hasNote(r, "order: quadratic (θφᵀ)g (auto)")) return "quadratic";
  if (hasNote(r, "order: linear θ(φᵀg) (auto)")) return "linear";
  return "?";
}

// The order flips exactly where N·M·(c + dv) and (N + M)·c·dv cross (M = ⌈H/s⌉·⌈W/s⌉, c = ⌊r·d⌋): counted here
// on the photo as its height grows, and at a tie, which the official rule gives to the linear order.
TEST(Autonl, AutoSwitchesOrderExactlyWhereTheTwoFlopCountsCross) {
  int flips = 0;
  std::string before;
  for (Index h = 1; h <= 12; ++h) {
    const Inputs in = photo("coffee", 8, h);
    const Result r = runMechanism("autonl", in);  // r = 0.25 (c = 8), s = 2, dv = 16
    const double n = double(8 * h), m = double(4 * ((h + 1) / 2)), quadratic = n * m * (8 + 16),
                 linear = (n + m) * 8 * 16;
    const std::string expected = quadratic < linear ? "quadratic" : "linear";
    EXPECT_EQ(autoOrder(r), expected) << "H = " << h;
    EXPECT_EQ(r.cost.flops, 2 * std::min(quadratic, linear)) << "H = " << h;
    if (!before.empty() && expected != before) {
      ++flips;
      std::printf(
          "autonl coffee 8×H: auto flips from %s to %s at H = %lld (N = %.0f, M = %.0f; %.0f vs %.0f "
          "multiply-adds)\n",
          before.c_str(), expected.c_str(), (long long)h, n, m, quadratic, linear);
    }
    before = expected;
  }
  EXPECT_EQ(flips, 1);
  // One row of N pixels, d = dv = N, r = 1, s = 1: N·N·2N against 2N·N·N, a tie → linear; one pixel either side.
  for (Index n : {Index(15), Index(16), Index(17)}) {
    InputSpec spec;
    spec.generator = Generator::Gaussian;
    spec.n = n;
    spec.d = 16;
    spec.dv = 16;
    const Result r =
        runMechanism("autonl", generate(spec), {{"ratio", "1"}, {"stride", "1"}, {"width", std::to_string(n)}});
    const double quadratic = double(n * n * 32), linear = double(2 * n * 256);
    EXPECT_EQ(autoOrder(r), n < 16 ? "quadratic" : "linear") << "N = " << n;
    EXPECT_EQ(quadratic < linear, n < 16) << "N = " << n;
    EXPECT_EQ(r.cost.flops, 2 * std::min(quadratic, linear)) << "N = " << n;
  }
}

TEST(Autonl, DeterministicAndTheCostIsTheCheaperOrder) {
  const Inputs in = photo("astronaut", 24, 16);
  const Result a = runMechanism("autonl", in), b = runMechanism("autonl", in);
  EXPECT_TRUE(a.output == b.output);
  EXPECT_TRUE(a.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max) ==
              b.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max));
  // N = 384, M = 12·8 = 96, c = 8, dv = 16: linear, (384 + 96)·8·16 multiply-adds.
  EXPECT_EQ(a.cost.flops, 2.0 * 480 * 128);
  const Result forced = runMechanism("autonl", in, {{"order", "quadratic"}});
  EXPECT_EQ(forced.cost.flops, 2.0 * 384 * 96 * 24);
}

TEST(Autonl, BadParametersAreClearErrorsOrNotedClamps) {
  const Inputs in = image(30);
  EXPECT_NE(messageOf("autonl", in, {{"width", "7"}}).find("AutoNL: grid width 7 does not divide N = 30"),
            std::string::npos);
  EXPECT_NE(messageOf("autonl", in, {{"order", "sideways"}}).find("auto"), std::string::npos);
  EXPECT_NE(messageOf("autonl", in, {}, true).find("has no causal form"), std::string::npos);
  const auto m = requireMechanism("autonl");
  const Params p = Params::resolve(m->params(), {{"ratio", "2"}, {"stride", "0"}});
  ASSERT_EQ(p.notes().size(), 2u);
  EXPECT_EQ(p.number("ratio"), 1);
  EXPECT_EQ(p.integer("stride"), 1);
  // A stride beyond the grid keeps one key, pixel 0: every output is (θ_i·φ_0/N)·v_0.
  const Result one = runMechanism("autonl", in, {{"stride", "100"}});
  EXPECT_EQ(one.explanation.special.front().indices, std::vector<Index>{0});
  Inputs fewer = in;
  fewer.k = in.k.topRows(20);
  fewer.v = in.v.topRows(20);
  EXPECT_NE(messageOf("autonl", fewer, {}).find("needs as many keys as queries"), std::string::npos);
}

}  // namespace
}  // namespace attn::test
