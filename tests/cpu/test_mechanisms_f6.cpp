// Non-pairwise, synthesized and conv-like mechanisms (CATALOG.md F6): talk-conv, synthesizer,
// input-independent, lambda. None approximates softmax (a different operator); the tests check limit
// cases, independent reference computations and the papers' qualitative claims. Causality,
// determinism and O = W·V of every mechanism are checked in test_mechanisms.cpp (AllMechanisms.*),
// Vulkan agreement in the gpu suite.
#include <Eigen/SVD>
#include <cmath>
#include <cstdio>

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

Index numericalRank(const Matrix& m) {
  Eigen::JacobiSVD<MatrixD> svd(m.cast<double>());
  const VectorD s = svd.singularValues();
  Index rank = 0;
  for (Index i = 0; i < s.size(); ++i) rank += s(i) > 1e-4 * s(0);
  return rank;
}

const NamedMatrix& factor(const Result& r, const std::string& prefix) {
  for (const auto& f : r.explanation.factors)
    if (f.name.rfind(prefix, 0) == 0) return f;
  throw std::runtime_error("no factor " + prefix);
}

bool noteContains(const Result& r, const std::string& text) {
  for (const auto& n : r.explanation.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

TEST(F6Mechanisms, AreDifferentOperatorsOfTheNonPairwiseFamily) {
  for (const char* id : {"talk-conv", "synthesizer", "input-independent", "lambda"}) {
    const auto m = requireMechanism(id);
    EXPECT_FALSE(m->info().approximates_softmax) << id;
    EXPECT_EQ(m->info().family, Family::NonPairwise) << id;
    EXPECT_NE(m->info().causal, CausalSupport::No) << id;
    // One token works, causal or not.
    const Inputs one = inputs(Generator::Peaked, 1);
    for (bool causal : {false, true}) {
      const Result r = run(id, one, {}, causal);
      ASSERT_EQ(r.output.rows(), 1) << id;
      EXPECT_FALSE(r.output.hasNaN()) << id;
      EXPECT_TRUE(noteContains(r, "different operator")) << id;
    }
  }
}

TEST(F6Mechanisms, CausalOutputsIgnoreLaterTokensBitForBit) {
  // The generic test of test_mechanisms.cpp with the parameters proposed for its table (and a few more).
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>> cases = {
      {"talk-conv", {}},
      {"talk-conv", {{"left", "15"}, {"right", "15"}, {"gain", "4"}}},
      {"synthesizer", {{"variant", "dense"}, {"mix", "0.5"}}},
      {"synthesizer", {}},
      {"synthesizer", {{"variant", "factorized"}, {"init", "prior"}}},
      {"input-independent", {}},
      {"input-independent", {{"pattern", "uniform"}}},
      {"input-independent", {{"pattern", "stripes"}}},
      {"lambda", {}},
      {"lambda", {{"position", "sinusoidal"}, {"scope", "5"}}},
  };
  for (const auto& [id, params] : cases) {
    const Inputs in = inputs(Generator::Clustered, 120);
    const Result a = run(id, in, params, true);
    Inputs changed = in;
    Rng rng(99);
    const Index cut = 70;
    changed.q.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.q.cols());
    changed.k.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.k.cols());
    changed.v.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.v.cols());
    const Result b = run(id, changed, params, true);
    EXPECT_TRUE(a.output.topRows(cut + 1) == b.output.topRows(cut + 1)) << id;
    EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10)) << id;
    const Matrix w = a.explanation.weights.dense();
    EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(a.output.cast<double>())), 2e-4) << id;
  }
}

// --- talk-conv -------------------------------------------------------------------------------------------

TEST(TalkConv, WindowCoveringEverythingIsTheMeanOfV) {
  const Inputs in = inputs(Generator::Gaussian, 60);
  const Result r = run("talk-conv", in, {{"offsets", "fixed"}, {"alpha", "1"}, {"left", "80"}, {"right", "80"},
                                          {"normalise", "actual-window"}});
  const Eigen::RowVectorXf mean = in.v.colwise().mean();
  for (Index i = 0; i < 60; ++i) EXPECT_LT((r.output.row(i) - mean).cwiseAbs().maxCoeff(), 1e-5) << i;
  // The paper's normaliser divides by the maximum window (161 here): rows sum to 60/161.
  const Result paper = run("talk-conv", in, {{"offsets", "fixed"}, {"alpha", "1"}, {"left", "80"}, {"right", "80"}});
  const Matrix w = paper.explanation.weights.dense();
  EXPECT_LT((w.rowwise().sum().array() - 60.0f / 161).abs().maxCoeff(), 1e-5);
  EXPECT_LT(relativeError(paper.output, Matrix(r.output * (60.0f / 161))), 1e-5);
}

TEST(TalkConv, OutputsAreInterpolatedPrefixSumDifferences) {
  // Independent reference: the summed-area table S(t) = Σ_{j≤t} v_j, linearly interpolated at fractional t,
  // y_i = (S(i + a_r) − S(i − a_l − 1)) / (l_max + r_max + 1), with the extents the run reports.
  const Index n = 90;
  const Inputs in = inputs(Generator::Local, n);
  for (bool causal : {false, true}) {
    const Result r = run("talk-conv", in, {{"left", "6"}, {"right", "4"}, {"gain", "3"}}, causal);
    const Matrix& ext = factor(r, "window extents").value;  // −a_l, a_r
    MatrixD prefix = MatrixD::Zero(n + 1, in.v.cols());  // prefix.row(t + 1) = S(t)
    for (Index t = 0; t < n; ++t) prefix.row(t + 1) = prefix.row(t) + in.v.row(t).cast<double>();
    const auto s = [&](double t) -> Eigen::RowVectorXd {
      t = std::clamp(t, -1.0, double(n - 1));
      const double fl = std::floor(t), f = t - fl;
      Eigen::RowVectorXd out = prefix.row(Index(fl) + 1);
      if (f > 0) out += f * in.v.row(Index(fl) + 1).cast<double>();
      return out;
    };
    const double den = causal ? 7 : 11;
    MatrixD ref(n, in.v.cols());
    int fractional = 0;
    for (Index i = 0; i < n; ++i) {
      const double al = -double(ext(i, 0)), ar = double(ext(i, 1));
      if (causal) {
        EXPECT_EQ(ar, 0.0) << i;
      }
      EXPECT_LE(al, 6.0);
      fractional += al != std::floor(al);
      ref.row(i) = (s(double(i) + ar) - s(double(i) - al - 1)) / den;
    }
    EXPECT_LT(test::relDiff(r.output, ref), 1e-5) << causal;
    EXPECT_GT(fractional, n / 2) << "offsets are fractional";
    const Matrix w = r.explanation.weights.dense();
    if (causal) {
      EXPECT_TRUE(w.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0));
      EXPECT_TRUE(noteContains(r, "r_max 4 → 0"));
    }
    EXPECT_GT(w.minCoeff(), -1e-7);
    EXPECT_LT(w.rowwise().sum().maxCoeff(), 1.0f + 1e-5f);  // max-window normaliser: sums ≤ 1
  }
}

TEST(TalkConv, ContentGatedWindowsAdaptPerTokenAndTheSliderFixesThem) {
  const Inputs in = inputs(Generator::Clustered, 200);
  const Result adaptive = run("talk-conv", in, {{"left", "15"}, {"right", "15"}});
  const Matrix& ext = factor(adaptive, "window extents").value;
  const Eigen::VectorXf width = ext.col(1) - ext.col(0);
  const float lo = width.minCoeff(), hi = width.maxCoeff();
  std::printf("[ talk-conv clustered ] window width (left+right reach) min %.2f max %.2f mean %.2f of at most 30\n", lo,
              hi, width.mean());
  EXPECT_GT(hi - lo, 10.0f);  // the receptive field adapts to the token
  // gain 0 or the fixed slider: every token reaches α·l_max to both sides.
  for (const auto& params : std::vector<std::map<std::string, std::string>>{
           {{"left", "15"}, {"right", "15"}, {"gain", "0"}},
           {{"left", "15"}, {"right", "15"}, {"offsets", "fixed"}, {"alpha", "0.5"}}}) {
    const Result fixed = run("talk-conv", in, params);  // keep the result alive: the factor is a reference into it
    const Matrix& e = factor(fixed, "window extents").value;
    EXPECT_LT((e.col(1).array() - 7.5f).abs().maxCoeff(), 1e-5);
    EXPECT_LT((e.col(0).array() + 7.5f).abs().maxCoeff(), 1e-5);
  }
  // α = 0: the window is the token alone (weight 1/(l_max + r_max + 1)).
  const Result self = run("talk-conv", in, {{"left", "3"}, {"right", "4"}, {"offsets", "fixed"}, {"alpha", "0"}});
  EXPECT_LT(relativeError(self.output, Matrix(in.v / 8.0f)), 1e-6);
  // One token with the paper's normaliser: v / (l_max + r_max + 1).
  const Inputs one = inputs(Generator::Gaussian, 1);
  EXPECT_LT(relativeError(run("talk-conv", one).output, Matrix(one.v / 15.0f)), 1e-6);
}

// --- synthesizer -----------------------------------------------------------------------------------------

TEST(Synthesizer, ZeroRandomLogitsAreUniform) {
  const Inputs in = inputs(Generator::Clustered, 80);
  for (bool causal : {false, true}) {
    const Result r = run("synthesizer", in, {{"init", "fixed-random"}, {"sigma", "0"}}, causal);
    MatrixD ref(80, in.v.cols());
    Eigen::RowVectorXd sum = Eigen::RowVectorXd::Zero(in.v.cols());
    for (Index i = 0; i < 80; ++i) {
      sum += in.v.row(i).cast<double>();
      ref.row(i) = causal ? Eigen::RowVectorXd(sum / double(i + 1)) : Eigen::RowVectorXd(in.v.colwise().mean().cast<double>());
    }
    EXPECT_LT(test::relDiff(r.output, ref), 1e-5) << causal;
  }
  // The Random + Vanilla mixture with zero random logits and α = 1 is exact attention.
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("synthesizer", in, {{"init", "fixed-random"}, {"sigma", "0"}, {"mix", "1"}}, causal), in,
                           causal),
              1e-5);
}

TEST(Synthesizer, RandomAndFactorizedMapsDoNotDependOnTheInput) {
  // The input-independence index (variance of A across inputs) is exactly 0.
  const Inputs a = inputs(Generator::Local, 96, 1), b = inputs(Generator::Local, 96, 2);
  for (const char* variant : {"random", "factorized"})
    for (const char* init : {"fitted", "fixed-random", "prior"}) {
      const std::map<std::string, std::string> p = {{"variant", variant}, {"init", init}, {"rank", "6"}};
      EXPECT_TRUE(run("synthesizer", a, p).explanation.weights.dense() ==
                  run("synthesizer", b, p).explanation.weights.dense())
          << variant << " " << init;
    }
}

TEST(Synthesizer, DenseRowsComeFromTheirOwnTokenOnly) {
  // CATALOG d: changing token j changes row j of the map only, not column j.
  const Inputs in = inputs(Generator::Clustered, 64);
  Inputs changed = in;
  Rng rng(5);
  changed.q.row(20) = rng.gaussian(1, in.q.cols());
  changed.k.row(20) = rng.gaussian(1, in.k.cols());
  for (bool causal : {false, true}) {
    const Matrix wa = run("synthesizer", in, {{"variant", "dense"}}, causal).explanation.weights.dense();
    const Matrix wb = run("synthesizer", changed, {{"variant", "dense"}}, causal).explanation.weights.dense();
    for (Index i = 0; i < 64; ++i) {
      if (i == 20) {
        EXPECT_GT((wa.row(i) - wb.row(i)).cwiseAbs().maxCoeff(), 1e-4);
      } else {
        EXPECT_TRUE(wa.row(i) == wb.row(i)) << i;
      }
    }
  }
}

TEST(Synthesizer, FittedRandomMatrixTransfersToNewLocalInputs) {
  // "Random alignment matrices are surprisingly competitive": R fitted to the mean attention of other
  // local sequences is much closer to this sequence's exact attention than a uniform map or fixed noise.
  const Inputs in = inputs(Generator::Local, 192, 11);
  const double fitted = errorVsExact(run("synthesizer", in, {{"samples", "8"}}), in, false);
  const double noise = errorVsExact(run("synthesizer", in, {{"init", "fixed-random"}}), in, false);
  const double uniform = errorVsExact(run("synthesizer", in, {{"init", "fixed-random"}, {"sigma", "0"}}), in, false);
  const double prior = errorVsExact(run("synthesizer", in, {{"init", "prior"}}), in, false);
  std::printf("[ synthesizer local, not an approximation target ] distance to exact: fitted R %.3f, band prior %.3f, "
              "uniform %.3f, fixed random %.3f\n", fitted, prior, uniform, noise);
  EXPECT_LT(fitted, 0.8 * uniform);
  EXPECT_LT(fitted, 0.8 * noise);
  // The fitted rows are probability rows with their mass near the diagonal (a local input's shape).
  const Matrix w = run("synthesizer", in).explanation.weights.dense();
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);
  double near = 0;
  for (Index i = 0; i < 192; ++i)
    for (Index j = std::max<Index>(0, i - 16); j <= std::min<Index>(191, i + 16); ++j) near += w(i, j);
  EXPECT_GT(near / 192, 0.5);
}

TEST(Synthesizer, FactorizedLogitsHaveRankKAndImproveWithK) {
  const Inputs in = inputs(Generator::Local, 128, 3);
  const Result full = run("synthesizer", in);
  const Matrix full_logits = factor(full, "logits").value;
  double last = 1e30;
  for (Index k : {2, 8, 32}) {
    const Result r = run("synthesizer", in, {{"variant", "factorized"}, {"rank", std::to_string(k)}});
    EXPECT_EQ(factor(r, "R₁").value.cols(), k);
    EXPECT_LE(numericalRank(factor(r, "logits").value), k);
    const double e = (factor(r, "logits").value - full_logits).norm() / full_logits.norm();
    std::printf("[ synthesizer factorized ] k=%lld logit error vs full fitted R %.3f\n", static_cast<long long>(k), e);
    EXPECT_LT(e, last);
    last = e;
  }
  const Result clamped = run("synthesizer", inputs(Generator::Gaussian, 5), {{"variant", "factorized"}, {"rank", "9"}});
  EXPECT_TRUE(noteContains(clamped, "rank clamped to 5"));
}

TEST(Synthesizer, RefusesSequencesLongerThanItsLogitMatrix) {
  EXPECT_THROW(run("synthesizer", inputs(Generator::Gaussian, 4097)), UserError);
}

// --- input-independent -----------------------------------------------------------------------------------

TEST(InputIndependent, PatternsAreTheAnalyticShapes) {
  const Index n = 40;
  const Inputs in = inputs(Generator::Gaussian, n);
  const auto out = [&](std::map<std::string, std::string> p, bool causal = false) {
    return run("input-independent", in, std::move(p), causal).output;
  };
  Matrix prev = in.v, next = in.v, blocks(n, in.v.cols()), stripes(n, in.v.cols());
  for (Index i = 1; i < n; ++i) prev.row(i) = in.v.row(i - 1);
  for (Index i = 0; i + 1 < n; ++i) next.row(i) = in.v.row(i + 1);
  for (Index i = 0; i < n; ++i) {
    blocks.row(i) = in.v.middleRows((i / 8) * 8, 8).colwise().mean();
    stripes.row(i) = (in.v.row(0) + in.v.row(10) + in.v.row(20) + in.v.row(30)) / 4;
  }
  EXPECT_LT(relativeError(out({{"pattern", "previous"}}), prev), 1e-6);
  EXPECT_LT(relativeError(out({{"pattern", "next"}}), next), 1e-6);
  EXPECT_LT(relativeError(out({{"pattern", "band"}, {"offset", "-1"}, {"sigma", "0.1"}}), prev), 1e-6);
  EXPECT_LT(relativeError(out({{"pattern", "blocks"}, {"block", "8"}}), blocks), 1e-6);
  EXPECT_LT(relativeError(out({{"pattern", "stripes"}, {"stripes", "4"}}), stripes), 1e-6);
  EXPECT_LT(relativeError(out({{"pattern", "uniform"}}), Matrix(in.v.colwise().mean().replicate(n, 1))), 1e-6);
  // The band is a Gaussian in j − i − o.
  const Matrix w = run("input-independent", in, {{"offset", "3"}, {"sigma", "2"}}).explanation.weights.dense();
  EXPECT_NEAR(w(10, 12) / w(10, 13), std::exp(-1.0 / 8), 1e-5);
  EXPECT_NEAR(w(10, 11) / w(10, 13), std::exp(-4.0 / 8), 1e-5);
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);
  // Causal: masked, and a band ahead of the query keeps the query itself; 'next' has no causal form.
  const Matrix wc = run("input-independent", in, {{"offset", "20"}, {"sigma", "1"}}, true).explanation.weights.dense();
  EXPECT_TRUE(wc.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0));
  EXPECT_NEAR(wc(5, 5), 1.0f, 1e-6);
  EXPECT_THROW(run("input-independent", in, {{"pattern", "next"}}, true), UserError);
  const Result clamped = run("input-independent", inputs(Generator::Gaussian, 3), {{"pattern", "stripes"}, {"stripes", "9"}});
  EXPECT_TRUE(noteContains(clamped, "stripes clamped to 3"));
}

TEST(InputIndependent, BandReachesMostOfTheExactMassOnLocalInputs) {
  // CATALOG e: compare the fixed pattern with softmax on local-dominant inputs. A diagonal band, fixed
  // before any input is seen, sees most of the exact attention mass of a local sequence, and its output is
  // much closer to the exact output than the uniform pattern's (labelled: not an approximation target).
  const Inputs in = inputs(Generator::Local, 256, 4);
  const Result band = run("input-independent", in, {{"sigma", "4"}});
  const Result uniform = run("input-independent", in, {{"pattern", "uniform"}});
  const Result exact = run("exact", in);
  const double recall = massRecall(*band.explanation.pattern, exact.explanation.weights);
  const double e_band = errorVsExact(band, in, false), e_uniform = errorVsExact(uniform, in, false);
  std::printf("[ input-independent local ] band σ=4 (±16) sees %.1f%% of the exact mass; distance to exact: band %.3f, "
              "uniform %.3f\n", 100 * recall, e_band, e_uniform);
  EXPECT_GT(recall, 0.6);
  EXPECT_LT(e_band, 0.8 * e_uniform);
  // Input-independent: another input gets the same weights.
  EXPECT_TRUE(band.explanation.weights.dense() ==
              run("input-independent", inputs(Generator::Clustered, 256), {{"sigma", "4"}}).explanation.weights.dense());
  EXPECT_GE(band.explanation.factors.size(), 5u);  // the gallery
}

// --- lambda ----------------------------------------------------------------------------------------------

/// y_n = Σ_m Σ_c q_nc·softmax_{m'∈ctx(n)}(k_{m'c})_m·v_m in double, ctx(n) = all tokens, or m ≤ n when causal.
MatrixD contentReference(const Inputs& in, bool causal) {
  const Index n = in.n(), d = in.q.cols();
  MatrixD y = MatrixD::Zero(n, in.v.cols());
  for (Index i = 0; i < n; ++i) {
    const Index ctx = causal ? i + 1 : n;
    for (Index c = 0; c < d; ++c) {
      const VectorD kc = in.k.col(c).head(ctx).cast<double>();
      const VectorD e = (kc.array() - kc.maxCoeff()).exp();
      const VectorD kbar = e / e.sum();
      y.row(i) += double(in.q(i, c)) * (kbar.transpose() * in.v.topRows(ctx).cast<double>());
    }
  }
  return y;
}

TEST(Lambda, WithoutPositionsItIsTheContentLambdaOfNormalisedKeys) {
  // Zero position embeddings: y = Q·(softmax_N(K)ᵀV), the efficient-attention-like content term; causal:
  // prefix-normalised keys over m ≤ n.
  const Inputs in = inputs(Generator::Peaked, 100);
  for (bool causal : {false, true}) {
    for (const auto& p : std::vector<std::map<std::string, std::string>>{{{"position", "none"}}, {{"gamma", "0"}}}) {
      const Result r = run("lambda", in, p, causal);
      EXPECT_LT(test::relDiff(r.output, contentReference(in, causal)), 1e-5) << causal;
    }
  }
  // The content lambda is |k|×|v| and the content part of L has rank ≤ |k| = d.
  const Result r = run("lambda", inputs(Generator::Gaussian, 100), {{"position", "none"}});
  EXPECT_EQ(factor(r, "content lambda").value.rows(), 32);
  EXPECT_EQ(factor(r, "content lambda").value.cols(), 16);
  EXPECT_LE(numericalRank(r.explanation.weights.dense()), 32);
}

TEST(Lambda, PositionPartIsARelativeToeplitzMatrixWithinTheScope) {
  Inputs in = inputs(Generator::Gaussian, 60);
  in.q.rowwise() = Eigen::RowVectorXf(in.q.row(0));  // one query everywhere: L_nm depends on m − n only
  for (const char* kind : {"gaussian", "sinusoidal"}) {
    const Result r = run("lambda", in, {{"content", "0"}, {"position", kind}, {"scope", "9"}});
    const Matrix w = r.explanation.weights.dense();
    for (Index i = 1; i < 60; ++i)
      for (Index j = 1; j < 60; ++j) {
        EXPECT_NEAR(w(i, j), w(i - 1, j - 1), 1e-6) << kind << " " << i << "," << j;
      }
    EXPECT_EQ(w(30, 40), 0.0f);  // outside the scope
    EXPECT_NE(w(30, 39), 0.0f);
  }
  // Not a probability map: entries of both signs, rows that do not sum to 1.
  const Matrix w = run("lambda", inputs(Generator::Clustered, 80)).explanation.weights.dense();
  EXPECT_LT(w.minCoeff(), 0.0f);
  EXPECT_GT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 0.1f);
  // Causal: nothing above the diagonal.
  const Matrix wc = run("lambda", inputs(Generator::Clustered, 80), {}, true).explanation.weights.dense();
  EXPECT_TRUE(wc.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0));
}

TEST(Lambda, RefusesAnEmptyLayerAndTooLongGlobalPositions) {
  EXPECT_THROW(run("lambda", inputs(Generator::Gaussian, 10), {{"position", "none"}, {"content", "0"}}), UserError);
  const Inputs long_in = inputs(Generator::Gaussian, 4097);
  EXPECT_THROW(run("lambda", long_in), UserError);
  EXPECT_EQ(run("lambda", long_in, {{"position", "none"}}).output.rows(), 4097);
}

}  // namespace
}  // namespace attn
