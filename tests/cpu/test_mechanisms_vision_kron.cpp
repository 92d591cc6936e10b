// Three vision modules on the image input: interlaced sparse self-attention (#10), Kronecker attention (#34) and
// FANet's fast attention (#35). Their outputs and implied weights against independent float64 loops over the
// papers' equations, interlaced's exact limits and what its two stages reach on a photo, fast attention's rows
// that no temperature sharpens, the Kronecker factors the pixel view draws, causality, determinism, bad input.
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

/// A shipped photo as an h×w grid (d = 32, dv = 16), at temperature τ.
Inputs photo(const char* name, Index h, Index w, double temperature = 1.0) {
  InputSpec spec;
  spec.generator = Generator::Image;
  spec.image = name;
  spec.n = h * w;
  spec.width = w;
  spec.d = 32;
  spec.dv = 16;
  spec.seed = 3;
  spec.temperature = temperature;
  return generate(spec);
}

const Step& stepTitled(const Result& r, const std::string& title) {
  for (const Step& s : r.explanation.steps)
    if (s.title == title) return s;
  throw std::runtime_error("no step " + title);
}

bool hasNote(const Result& r, const std::string& part) {
  for (const std::string& note : r.explanation.notes)
    if (note.find(part) != std::string::npos) return true;
  return false;
}

// ---- interlaced: float64 loops over the two stages ----

/// Softmax of query u (1/√d logits) over `keys`, mixing rows of `values`.
VectorD softmaxMix(const MatrixD& q, const MatrixD& k, const MatrixD& values, Index u, const std::vector<Index>& keys) {
  const double s = 1 / std::sqrt(double(q.cols()));
  std::vector<double> w;
  double top = -INFINITY, z = 0;
  for (Index j : keys) top = std::max(top, s * q.row(u).dot(k.row(j)));
  for (Index j : keys) z += w.emplace_back(std::exp(s * q.row(u).dot(k.row(j)) - top));
  VectorD out = VectorD::Zero(values.cols());
  for (size_t t = 0; t < keys.size(); ++t) out += w[t] / z * values.row(keys[t]).transpose();
  return out;
}

/// Long range: pixel (y, x) attends to {(y', x'): y' ≡ y mod ph, x' ≡ x mod pw}; then short range: to its own
/// ph×pw block (partial at the edges), over the first stage's output. Causal: j ≤ i in both.
MatrixD interlacedLoops(const MatrixD& q, const MatrixD& k, const MatrixD& v, Index h, Index w, Index ph, Index pw,
                        bool causal) {
  MatrixD first(q.rows(), v.cols()), out(q.rows(), v.cols());
  for (Index i = 0; i < h * w; ++i) {
    std::vector<Index> keys;
    for (Index j = 0; j < h * w; ++j)
      if ((j / w) % ph == (i / w) % ph && (j % w) % pw == (i % w) % pw && (!causal || j <= i)) keys.push_back(j);
    first.row(i) = softmaxMix(q, k, v, i, keys);
  }
  for (Index i = 0; i < h * w; ++i) {
    std::vector<Index> keys;
    for (Index j = 0; j < h * w; ++j)
      if ((j / w) / ph == (i / w) / ph && (j % w) / pw == (i % w) / pw && (!causal || j <= i)) keys.push_back(j);
    out.row(i) = softmaxMix(q, k, first, i, keys);
  }
  return out;
}

TEST(VisionKron, InterlacedMatchesFloat64LoopsOverItsTwoStages) {
  const Inputs in = image(30);  // 6 rows of 5
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
  const MatrixD identity = MatrixD::Identity(30, 30);
  struct Case {
    Index width, ph, pw;
    bool causal;
  };
  // Whole blocks (3×5 on 6×5), partial edge blocks (2×3 on 5×6, 2×2 and 4×2 on 6×5), causal.
  const Case cases[] = {{0, 3, 5, false}, {6, 2, 3, false}, {0, 2, 2, false},
                        {0, 4, 2, false}, {0, 2, 2, true},  {6, 2, 3, true}};
  for (const Case& c : cases) {
    const Index w = c.width ? c.width : 5, h = 30 / w;
    const Result r =
        run("interlaced", in,
            {{"width", std::to_string(c.width)}, {"block_h", std::to_string(c.ph)}, {"block_w", std::to_string(c.pw)}},
            c.causal);
    const std::string what = "grid " + std::to_string(h) + "×" + std::to_string(w) + " blocks " + std::to_string(c.ph) +
                             "×" + std::to_string(c.pw) + " causal=" + std::to_string(c.causal);
    EXPECT_LT(relativeError(r.output, interlacedLoops(q, k, v, h, w, c.ph, c.pw, c.causal)), 1e-5) << what;
    const MatrixD a = interlacedLoops(q, k, identity, h, w, c.ph, c.pw, c.causal);  // the probe V = I
    ASSERT_TRUE(r.explanation.weights) << what;
    EXPECT_LT(maxAbsDiff(r.explanation.weights.dense(), a), 2e-4) << what;
    EXPECT_LT(relDiff(r.explanation.weights.dense(), a), 1e-4) << what;
    EXPECT_LT((a.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-12) << what;
    EXPECT_EQ(hasNote(r, "partial"), h % c.ph != 0 || w % c.pw != 0) << what;
  }
}

TEST(VisionKron, InterlacedIsExactWithOneGroupOrOneBlock) {
  const Inputs in = image(96);  // 12 rows of 8
  for (bool causal : {false, true}) {
    // Blocks of one pixel: one long-range group holds every pixel, the short range passes it on.
    EXPECT_LT(errorVsExact(run("interlaced", in, {{"block_h", "1"}, {"block_w", "1"}}, causal), in, causal), 1e-5);
    // One block the size of the grid: every long-range group is one pixel, the block holds them all.
    EXPECT_LT(errorVsExact(run("interlaced", in, {{"block_h", "12"}, {"block_w", "8"}}, causal), in, causal), 1e-5);
  }
  EXPECT_GT(errorVsExact(run("interlaced", in, {{"block_h", "4"}, {"block_w", "4"}}), in, false), 1e-3);
}

TEST(VisionKron, InterlacedLongThenShortReachesEveryPixelOfAPhotoWhenTheBlocksTileIt) {
  const Index h = 48, w = 32, n = h * w;
  const Inputs in = photo("astronaut", h, w);
  const Result r = run("interlaced", in);  // blocks 8×8: 6×4 blocks, 64 groups of 24
  const Step& long_range = stepTitled(r, "long-range");
  const Step& short_range = stepTitled(r, "short-range");
  const auto& reach = stepTitled(r, "short ∘ long").view->pattern;
  ASSERT_TRUE(long_range.view->pattern && short_range.view->pattern && reach);
  EXPECT_EQ(long_range.view->pattern->nnz(), n * 24);
  EXPECT_EQ(short_range.view->pattern->nnz(), n * 64);
  EXPECT_EQ(reach->nnz(), n * n);
  // Each stage's step implies its own weights (rows sum to 1) and colours the picture by its groups.
  for (const Step* s : {&long_range, &short_range}) {
    ASSERT_TRUE(s->view->weights);
    ASSERT_EQ(s->view->groupings.size(), 1u);
    EXPECT_EQ(s->sorted_by, s->view->groupings[0].name);
    const Matrix rows = s->view->weights.block({0, 64}, {0, n});
    // (float weights from the backend's float log-normaliser: peaked photo rows sum to 1 within ≈ 5e-5)
    EXPECT_LT((rows.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-4) << s->title;
  }
  const Grouping& groups = long_range.view->groupings[0];
  const Grouping& blocks = short_range.view->groupings[0];
  EXPECT_EQ(groups.groups, 64);
  EXPECT_EQ(blocks.groups, 24);
  for (Index i : {Index(0), Index(77), Index(1000), n - 1}) {
    EXPECT_EQ(groups.label[size_t(i)], (i / w % 8) * 8 + i % w % 8) << i;
    EXPECT_EQ(blocks.label[size_t(i)], (i / w / 8) * 4 + i % w / 8) << i;
  }
  // The long-range weights of pixel (0, 0) lie on its group only: pixels 8 apart.
  const Matrix row0 = long_range.view->weights.block({0, 1}, {0, n});
  for (Index j = 0; j < n; ++j)
    if (j / w % 8 != 0 || j % w % 8 != 0) {
      EXPECT_EQ(row0(0, j), 0.0f) << j;
    }
  EXPECT_NEAR(row0.sum(), 1.0, 1e-5);
  // Blocks 5×5 leave a partial edge (48 = 9·5 + 3, 32 = 6·5 + 2): pixels of the last block row see rows ≡ 0…2
  // (mod 5) only.
  const Result partial = run("interlaced", in, {{"block_h", "5"}, {"block_w", "5"}});
  const auto& partial_reach = stepTitled(partial, "short ∘ long").view->pattern;
  ASSERT_TRUE(partial_reach);
  EXPECT_LT(partial_reach->nnz(), n * n);
  EXPECT_FALSE(partial_reach->contains((h - 1) * w, 3 * w));  // (47, 0) → (3, 0): offset 3 is not in its block
  EXPECT_TRUE(partial_reach->contains((h - 1) * w, 2 * w));
  EXPECT_TRUE(partial_reach->contains(0, n - 1));  // a whole block reaches everything
  // Mass recall of the scored pairs and e_out against exact attention, on the photo.
  const Result exact = run("exact", in);
  const double recall = massRecall(*r.explanation.pattern, exact.explanation.weights);
  std::printf(
      "interlaced on astronaut 48×32, blocks 8×8: mass recall of the scored pairs %.3f (share of keys %.3f); "
      "e_out %.3f; 5×5 blocks reach %.3f of the pairs\n",
      recall, double(24 + 64 - 1) / double(n), errorVsExact(r, in, false),
      double(partial_reach->nnz()) / double(n * n));
  EXPECT_GT(recall, double(24 + 64 - 1) / double(n));
}

// ---- fast attention ----

TEST(VisionKron, FastAttentionIsCosineOverNOfThePapersEquation) {
  const Inputs in = photo("coffee", 12, 16);
  const Index n = 192;
  const Result r = run("fast-attention", in);
  MatrixD a(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      const VectorD qi = in.q.row(i).cast<double>().transpose(), kj = in.k.row(j).cast<double>().transpose();
      a(i, j) = qi.dot(kj) / (qi.norm() * kj.norm()) / double(n);
    }
  EXPECT_LT(relativeError(r.output, MatrixD(a * in.v.cast<double>())), 1e-5);
  const Matrix w = r.explanation.weights.dense();
  EXPECT_LT(maxAbsDiff(w, a), 1e-7);
  EXPECT_LE(w.cwiseAbs().maxCoeff(), 1.0 / double(n) * (1 + 1e-6));
  EXPECT_GT(w.cwiseAbs().maxCoeff(), 0.5 / double(n));
  // A row of zeros has no direction: its cosines are 0 (and no NaN).
  Inputs zero = in;
  zero.q.row(5).setZero();
  zero.k.row(7).setZero();
  const Result z = run("fast-attention", zero);
  EXPECT_TRUE(z.output.allFinite());
  EXPECT_EQ(z.output.row(5).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ(z.explanation.weights.block({0, n}, {7, 8}).cwiseAbs().maxCoeff(), 0.0f);
}

/// The mean over rows of the largest |entry| of a row.
double meanRowMax(const ImpliedWeights& w) { return w.dense().cwiseAbs().rowwise().maxCoeff().cast<double>().mean(); }

TEST(VisionKron, FastAttentionRowsNeverSharpenWithTemperatureWhileSoftmaxRowsDo) {
  const Inputs warm = photo("chelsea", 16, 24, 1.0), cold = photo("chelsea", 16, 24, 0.05);
  ASSERT_GT((cold.q - warm.q).norm(), warm.q.norm());  // the temperature did scale the logits
  const Result fast_warm = run("fast-attention", warm), fast_cold = run("fast-attention", cold);
  const Result exact_warm = run("exact", warm), exact_cold = run("exact", cold);
  const double change = relativeError(fast_cold.output, fast_warm.output);
  const double fast_max_warm = meanRowMax(fast_warm.explanation.weights);
  const double fast_max_cold = meanRowMax(fast_cold.explanation.weights);
  const double exact_max_warm = meanRowMax(exact_warm.explanation.weights);
  const double exact_max_cold = meanRowMax(exact_cold.explanation.weights);
  std::printf(
      "chelsea 16×24, τ = 1 → 0.05: fast attention output changes by %.2e (mean row max %.3e → %.3e, 1/N = "
      "%.3e); softmax mean row max %.4f → %.4f\n",
      change, fast_max_warm, fast_max_cold, 1.0 / 384, exact_max_warm, exact_max_cold);
  EXPECT_LT(change, 1e-6);
  EXPECT_NEAR(fast_max_cold / fast_max_warm, 1.0, 1e-6);
  EXPECT_GT(exact_max_cold, 2 * exact_max_warm);
  EXPECT_LE(fast_max_cold, 1.0 / 384 * (1 + 1e-6));
}

// ---- Kronecker attention ----

/// KAO by explicit float64 loops: the row means r_y = (1/W)Σ_x, column means c_x = (1/H)Σ_y; KV: pixel i's softmax
/// over [r; c] spread back, A(i, j) = a_i[y_j]/W + a_i[H + x_j]/H; QKV: the summaries' softmax over [r; c], lifted
/// by the outer sum, then spread back the same way. Returns A_eff (N×N).
MatrixD kroneckerLoops(const Matrix& qf, const Matrix& kf, Index h, Index w, bool qkv) {
  const MatrixD q = qf.cast<double>(), k = kf.cast<double>();
  const Index n = h * w, m = h + w, d = q.cols();
  MatrixD ks = MatrixD::Zero(m, d), qs = MatrixD::Zero(m, d);
  for (Index y = 0; y < h; ++y)
    for (Index x = 0; x < w; ++x)
      for (Index c = 0; c < d; ++c) {
        ks(y, c) += k(y * w + x, c) / double(w);
        ks(h + x, c) += k(y * w + x, c) / double(h);
        qs(y, c) += q(y * w + x, c) / double(w);
        qs(h + x, c) += q(y * w + x, c) / double(h);
      }
  auto softmaxRow = [&](const VectorD& query) {
    VectorD l(m);
    for (Index t = 0; t < m; ++t) {
      double dot = 0;
      for (Index c = 0; c < d; ++c) dot += query(c) * ks(t, c);
      l(t) = dot / std::sqrt(double(d));
    }
    l = (l.array() - l.maxCoeff()).exp();
    return VectorD(l / l.sum());
  };
  MatrixD a(n, n);
  for (Index i = 0; i < n; ++i) {
    const Index yi = i / w, xi = i % w;
    VectorD on_summaries = qkv ? VectorD(softmaxRow(qs.row(yi).transpose()) + softmaxRow(qs.row(h + xi).transpose()))
                               : softmaxRow(q.row(i).transpose());
    for (Index j = 0; j < n; ++j) a(i, j) = on_summaries(j / w) / double(w) + on_summaries(h + j % w) / double(h);
  }
  return a;
}

TEST(VisionKron, KroneckerKvIsItsExplicitRowStochasticMatrixFormedByLoops) {
  const Index h = 16, w = 24;
  const Inputs in = photo("coffee", h, w);
  for (const char* variant : {"kv", "qkv"}) {
    const bool qkv = std::string(variant) == "qkv";
    const Result r = run("kronecker", in, {{"variant", variant}});
    const MatrixD a = kroneckerLoops(in.q, in.k, h, w, qkv);
    const MatrixD expected = a * in.v.cast<double>();
    const double err = relativeError(r.output, expected);
    ASSERT_TRUE(r.explanation.weights) << variant;
    const Matrix weights = r.explanation.weights.dense();
    std::printf(
        "kronecker %s on coffee 16×24: output vs A_eff·V by loops %.2e, weights max diff %.2e; e_out vs "
        "softmax %.3f\n",
        variant, err, maxAbsDiff(weights, a), errorVsExact(r, in, false));
    EXPECT_LT(err, 1e-5) << variant;
    EXPECT_LT(maxAbsDiff(weights, a), 1e-6) << variant;
    EXPECT_GE(a.minCoeff(), 0.0) << variant;
    EXPECT_LT((a.rowwise().sum().array() - (qkv ? 2 : 1)).abs().maxCoeff(), 1e-12) << variant;
    EXPECT_LT((weights.cast<double>().rowwise().sum().array() - (qkv ? 2 : 1)).abs().maxCoeff(), 1e-5) << variant;
    // A plaid map: pixel i gives pixels of one row the same share of the row mean, plus their column mean's.
    EXPECT_NEAR(weights(5, 0) + weights(5, w + 1), weights(5, 1) + weights(5, w), 1e-7) << variant;
  }
}

TEST(VisionKron, KroneckerFactorsAreThePerPixelStripsAndTheSummaryAttention) {
  const Index h = 12, w = 20, n = h * w, m = h + w;
  const Inputs in = photo("rocket", h, w);
  for (const char* variant : {"kv", "qkv"}) {
    const bool qkv = std::string(variant) == "qkv";
    const Result r = run("kronecker", in, {{"variant", variant}});
    const NamedMatrix *top = nullptr, *left = nullptr, *summary = nullptr;
    for (const NamedMatrix& f : r.explanation.factors) {
      if (f.layout == MatrixLayout::PerPixelTop) top = &f;
      if (f.layout == MatrixLayout::PerPixelLeft) left = &f;
      if (f.name == "summary attention") summary = &f;
    }
    ASSERT_TRUE(top && left && summary) << variant;
    ASSERT_EQ(top->value.rows(), n);
    ASSERT_EQ(top->value.cols(), w);
    ASSERT_EQ(left->value.rows(), n);
    ASSERT_EQ(left->value.cols(), h);
    EXPECT_EQ(summary->layout, MatrixLayout::Plain);
    EXPECT_EQ(summary->value.rows(), m);
    EXPECT_EQ(summary->value.cols(), m);
    // The strips are the weights on the means: spread back (a row mean over W pixels, a column mean over H), they
    // give the implied row.
    const Matrix weights = r.explanation.weights.dense();
    for (Index i : {Index(0), Index(37), n - 1}) {
      EXPECT_NEAR(top->value.row(i).sum() + left->value.row(i).sum(), qkv ? 2.0 : 1.0, 1e-5) << variant << " " << i;
      for (Index j : {Index(3), Index(100), n - 2})
        EXPECT_NEAR(weights(i, j), left->value(i, j / w) / w + top->value(i, j % w) / h, 1e-7) << variant;
    }
    EXPECT_LT((summary->value.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5) << variant;
    // The steps: means, attention (with the strips), the implied weights.
    ASSERT_EQ(r.explanation.steps.size(), 3u);
    EXPECT_TRUE(r.explanation.steps.back().view->weights) << variant;
  }
  // Strips of more than 2²² entries are left out, and said: 160×128 pixels × 288 means.
  const Inputs big = image(20480);
  const Result r = run("kronecker", big, {{"width", "128"}});
  for (const NamedMatrix& f : r.explanation.factors) EXPECT_EQ(f.layout, MatrixLayout::Plain) << f.name;
  EXPECT_TRUE(hasNote(r, "per-pixel strips")) << "no note";
  EXPECT_TRUE(r.explanation.weights);
}

// ---- all three ----

TEST(VisionKron, CausalInterlacedIgnoresLaterPixelsBitForBit) {
  const Index n = 384, cut = 200;
  const Inputs in = image(n);
  Inputs changed = in;
  Rng rng(5);
  changed.q.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.q.cols());
  changed.k.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.k.cols());
  changed.v.bottomRows(n - cut - 1) = rng.gaussian(n - cut - 1, in.v.cols());
  const Result a = run("interlaced", in, {}, true), b = run("interlaced", changed, {}, true);
  EXPECT_TRUE(a.output.topRows(cut + 1) == b.output.topRows(cut + 1));
  EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10));
}

TEST(VisionKron, DeterministicRuns) {
  const Inputs in = photo("astronaut", 24, 16);
  const std::pair<const char*, std::map<std::string, std::string>> runs[] = {
      {"interlaced", {}}, {"fast-attention", {}}, {"kronecker", {}}, {"kronecker", {{"variant", "qkv"}}}};
  for (const auto& [id, params] : runs) {
    const Result a = run(id, in, params), b = run(id, in, params);
    EXPECT_TRUE(a.output == b.output) << id;
    EXPECT_TRUE(a.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max) ==
                b.explanation.weights.tile({0, 384}, {0, 384}, {48, 48}, Pooling::Max))
        << id;
  }
  // Interlaced scores each pixel's group and block: 384·(6 + 64) pairs for 8×8 blocks on 24×16.
  EXPECT_EQ(run("interlaced", in).cost.scored_pairs, 384.0 * (6 + 64));
  EXPECT_EQ(run("kronecker", in).cost.scored_pairs, 384.0 * 40);
  EXPECT_EQ(run("kronecker", in, {{"variant", "qkv"}}).cost.scored_pairs, 40.0 * 40);
}

std::string messageOf(const std::string& id, const Inputs& in, std::map<std::string, std::string> params,
                      bool causal = false) {
  try {
    run(id, in, std::move(params), causal);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(VisionKron, BadParametersAreClearErrorsOrNotedClamps) {
  const Inputs in = image(120);
  EXPECT_EQ(messageOf("interlaced", in, {{"width", "7"}}),
            "interlaced attention: grid width 7 does not divide N = 120 (the tokens are an H×W grid in raster order); "
            "set width to a divisor of N (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, ...) or to 0 for the most square "
            "grid");
  EXPECT_NE(messageOf("kronecker", in, {{"width", "7"}}).find("Kronecker attention: grid width 7 does not divide"),
            std::string::npos);
  EXPECT_NE(messageOf("kronecker", in, {{"variant", "kvq"}}).find("kvq"), std::string::npos);
  EXPECT_NE(messageOf("interlaced", in, {{"block_h", "two"}}).find("needs a number"), std::string::npos);
  for (const char* id : {"kronecker", "fast-attention"})
    EXPECT_NE(messageOf(id, in, {}, true).find("has no causal form"), std::string::npos) << id;
  // A block larger than the grid (12×10) is capped, and said; out of the parameter's range, clamped and said.
  const Result big = run("interlaced", in, {{"block_h", "40"}, {"block_w", "3"}});
  EXPECT_TRUE(hasNote(big, "is larger than the 12×10 grid: capped at 12×3"));
  EXPECT_LT(relativeError(big.output, run("interlaced", in, {{"block_h", "12"}, {"block_w", "3"}}).output), 1e-12);
  const auto m = requireMechanism("interlaced");
  const Params p = Params::resolve(m->params(), {{"block_w", "100000"}});
  ASSERT_EQ(p.notes().size(), 1u);
  EXPECT_NE(p.notes()[0].find("using 4096"), std::string::npos) << p.notes()[0];
  // Keys that are not the query pixels.
  Inputs fewer = in;
  fewer.k = in.k.topRows(60);
  fewer.v = in.v.topRows(60);
  for (const char* id : {"interlaced", "kronecker"})
    EXPECT_NE(messageOf(id, fewer, {}).find("needs as many keys as queries"), std::string::npos) << id;
}

}  // namespace
}  // namespace attn::test
