// Parameters, generators, implied-weight tiles, metrics, and the purity of attention/.
#include <array>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "attention/backend.h"
#include "attention/explanation.h"
#include "attention/inputs.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/metrics.h"
#include "attention/multiply.h"
#include "attention/parallel.h"
#include "attention/params.h"
#include "attention/pooling.h"
#include "test_util.h"

namespace attn {
namespace {

std::vector<ParamSpec> specs() {
  return {ParamSpec::integer("window", "w", "h", 64, 1, 1024), ParamSpec::real("tau", "t", "h", 0.5, 0.1, 2),
          ParamSpec::choice("pinv", "p", "h", {"iterative", "exact"}), ParamSpec::flag("prev", "p", "h", true)};
}

TEST(Params, DefaultsParsingAndChoices) {
  const Params d = Params::resolve(specs(), {});
  EXPECT_EQ(d.integer("window"), 64);
  EXPECT_EQ(d.choice("pinv"), "iterative");
  EXPECT_TRUE(d.flag("prev"));
  const Params p = Params::resolve(specs(), {{"window", "17"}, {"pinv", "exact"}, {"prev", "false"}, {"tau", "1.5"}});
  EXPECT_EQ(p.integer("window"), 17);
  EXPECT_EQ(p.choice("pinv"), "exact");
  EXPECT_FALSE(p.flag("prev"));
  EXPECT_DOUBLE_EQ(p.number("tau"), 1.5);
  EXPECT_TRUE(p.notes().empty());
}

TEST(Params, OutOfRangeIsClampedAndNoted) {
  const Params p = Params::resolve(specs(), {{"window", "0"}, {"tau", "9"}});
  EXPECT_EQ(p.integer("window"), 1);
  EXPECT_DOUBLE_EQ(p.number("tau"), 2);
  ASSERT_EQ(p.notes().size(), 2u);
  EXPECT_NE(p.notes()[0].find("window=0"), std::string::npos);
}

TEST(Params, BadValuesAreActionableErrors) {
  try {
    Params::resolve(specs(), {{"windw", "3"}});
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("window, tau, pinv, prev"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Params::resolve(specs(), {{"window", "abc"}}), UserError);
  EXPECT_THROW(Params::resolve(specs(), {{"window", "nan"}}), UserError);
  EXPECT_THROW(Params::resolve(specs(), {{"pinv", "svd"}}), UserError);
  EXPECT_THROW(Params::resolve(specs(), {{"prev", "maybe"}}), UserError);
}

TEST(Inputs, GeneratorsAreDeterministicAndShaped) {
  for (const auto& g : generators()) {
    InputSpec s;
    s.generator = g.id;
    s.n = 70;
    s.d = 9;
    s.dv = 5;
    s.seed = 3;
    const Inputs a = generate(s), b = generate(s);
    EXPECT_TRUE(a.q == b.q && a.k == b.k && a.v == b.v) << g.name;
    EXPECT_EQ(a.q.rows(), 70);
    EXPECT_EQ(a.q.cols(), 9);
    EXPECT_EQ(a.v.cols(), 5);
    EXPECT_TRUE(a.q.allFinite() && a.k.allFinite() && a.v.allFinite()) << g.name;
    s.seed = 4;
    EXPECT_FALSE(generate(s).v == a.v) << g.name;
    EXPECT_EQ(parseGenerator(g.name), g.id);
  }
  EXPECT_THROW(parseGenerator("cluster"), UserError);
}

TEST(Inputs, CopyTaskRepeatsTheSequence) {
  InputSpec s;
  s.generator = Generator::Copy;
  s.n = 64;
  s.noise = 0;
  const Inputs in = generate(s);
  EXPECT_TRUE(in.q.topRows(32) == in.q.bottomRows(32));
}

TEST(Inputs, BadSizesAndValuesAreRejected) {
  InputSpec s;
  s.n = 0;
  EXPECT_THROW(generate(s), UserError);
  s.n = 10;
  s.d = 0;
  EXPECT_THROW(generate(s), UserError);
  Matrix q = Matrix::Zero(3, 4);
  q(1, 2) = std::numeric_limits<float>::infinity();
  try {
    validateInputs(q, Matrix::Zero(3, 4), Matrix::Zero(3, 2));
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("row 1, column 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(validateInputs(Matrix::Zero(3, 4), Matrix::Zero(3, 5), Matrix::Zero(3, 2)), UserError);
  EXPECT_THROW(validateInputs(Matrix::Zero(3, 4), Matrix::Zero(3, 4), Matrix::Zero(4, 2)), UserError);
  // A τ so small that Q overflows float names the knob, not "Q has a non-finite value".
  InputSpec tiny;
  tiny.n = 7;
  tiny.d = 5;
  tiny.temperature = 1e-40;
  try {
    generate(tiny);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("overflow 32-bit floats at \u03C4 = 1e-40"), std::string::npos) << e.what();
  }
  InputSpec peaked;
  peaked.generator = Generator::Peaked;
  peaked.heavy_hitters = -1;
  EXPECT_THROW(generate(peaked), UserError);
}

ImpliedWeights denseWeights(const Matrix& m) {
  auto shared = std::make_shared<Matrix>(m);
  return ImpliedWeights(m.rows(), m.cols(), [shared](Range r, Range c) {
    return Matrix(shared->block(r.begin, c.begin, r.size(), c.size()));
  });
}

TEST(ImpliedWeights, TilesPoolWithMaxAndMean) {
  Rng rng(1);
  const Matrix m = rng.gaussian(100, 60);
  const ImpliedWeights w = denseWeights(m);
  const Matrix full = w.tile({0, 100}, {0, 60}, {100, 60}, Pooling::Max);
  EXPECT_TRUE(full == m);
  const Matrix pooled = w.tile({0, 100}, {0, 60}, {10, 6}, Pooling::Max);
  const Matrix mean = w.tile({0, 100}, {0, 60}, {10, 6}, Pooling::Mean);
  for (Index r = 0; r < 10; ++r)
    for (Index c = 0; c < 6; ++c) {
      EXPECT_FLOAT_EQ(pooled(r, c), m.block(r * 10, c * 10, 10, 10).maxCoeff());
      EXPECT_NEAR(mean(r, c), m.block(r * 10, c * 10, 10, 10).mean(), 1e-6);
    }
  // Zoomed in: 4 source entries shown on 8×8 pixels repeat each entry.
  const Matrix zoom = w.tile({10, 12}, {20, 22}, {8, 8}, Pooling::Max);
  EXPECT_FLOAT_EQ(zoom(0, 0), m(10, 20));
  EXPECT_FLOAT_EQ(zoom(7, 7), m(11, 21));
  EXPECT_FLOAT_EQ(zoom(3, 4), m(10, 21));
  // A single spike survives max pooling at any resolution.
  Matrix sparse = Matrix::Zero(1000, 1000);
  sparse(517, 333) = 1;
  const Matrix spike = denseWeights(sparse).tile({0, 1000}, {0, 1000}, {16, 16}, Pooling::Max);
  EXPECT_FLOAT_EQ(spike.maxCoeff(), 1.f);
}

TEST(Pooling, AZoomedWindowPoolsOnlyItsBlock) {
  // Weights: a block of the whole matrix, pooled like the whole matrix's pixels over that block.
  Rng rng(2);
  const Matrix m = rng.gaussian(300, 200);
  const Matrix window = pool(denseWeights(m), {100, 160}, {50, 80}, 1024, Pooling::Max, nullptr);
  ASSERT_EQ(window.rows(), 60);
  ASSERT_EQ(window.cols(), 30);
  EXPECT_TRUE(window == m.block(100, 50, 60, 30));
  const Matrix pooled = pool(denseWeights(m), {100, 160}, {50, 80}, 15, Pooling::Max, nullptr);
  EXPECT_FLOAT_EQ(pooled(2, 7), m.block(108, 64, 4, 2).maxCoeff());  // 4 rows, 2 columns a pixel
  // A pattern: the band |i − j| ≤ 2 of 100×100 ("window") plus column 0 ("global").
  Pattern p;
  p.rows = p.cols = 100;
  p.components = {"window", "global"};
  p.row_ptr.push_back(0);
  for (Index i = 0; i < 100; ++i) {
    for (Index j = 0; j < 100; ++j)
      if (j == 0 || std::abs(i - j) <= 2) {
        p.col.push_back(std::int32_t(j));
        p.component.push_back(j == 0 && std::abs(i - j) > 2 ? 1 : 0);
      }
    p.row_ptr.push_back(Index(p.col.size()));
  }
  const Matrix block = poolPattern(p, {40, 60}, {0, 50}, 1024);  // one pixel per pair
  ASSERT_EQ(block.rows(), 20);
  ASSERT_EQ(block.cols(), 50);
  for (Index i = 40; i < 60; ++i)
    for (Index j = 0; j < 50; ++j)
      EXPECT_EQ(block(i - 40, j), j == 0 ? 2.f : std::abs(i - j) <= 2 ? 1.f : 0.f) << i << ", " << j;
  // Pixels of a pooled window cover only the window's pairs: rows 90–99 × columns 0–9 in 5×5 pixels
  // holds the global column in pixel column 0 and nothing of the band (which is at columns 88–99).
  const Matrix corner = poolPattern(p, {90, 100}, {0, 10}, 5);
  EXPECT_EQ(corner.col(0).minCoeff(), 2.f);
  EXPECT_EQ(corner.rightCols(4).maxCoeff(), 0.f);
  // A grouping: tokens share a group when their labels match; a window of rows × columns of it.
  const Grouping g = Grouping::fromLabels("halves", [] {
    std::vector<std::int32_t> l(40);
    for (size_t t = 0; t < l.size(); ++t) l[t] = t < 20 ? 0 : 1;
    return l;
  }(), 2);
  const Matrix groups = poolGrouping(g, nullptr, {15, 25}, {18, 22}, 1024);
  ASSERT_EQ(groups.rows(), 10);
  ASSERT_EQ(groups.cols(), 4);
  for (Index a = 0; a < 10; ++a)
    for (Index b = 0; b < 4; ++b) EXPECT_EQ(groups(a, b), ((15 + a < 20) == (18 + b < 20)) ? float((15 + a < 20 ? 0 : 1) + 1) : 0.f);
}

TEST(Patterns, TwoHopsIsTheBooleanProductOfThePatterns) {
  // Random sparse p (70×50) and q (50×60): (p∘q)(i, j) iff some k has p(i, k) and q(k, j); residual adds
  // the identity to both (a path may stay put). Checked against the dense boolean product.
  Rng rng(9);
  auto randomPattern = [&](Index rows, Index cols, double density) {
    Pattern p;
    p.rows = rows;
    p.cols = cols;
    p.row_ptr.push_back(0);
    for (Index i = 0; i < rows; ++i) {
      for (Index j = 0; j < cols; ++j)
        if (rng.uniform() < density) p.col.push_back(std::int32_t(j));
      p.row_ptr.push_back(Index(p.col.size()));
    }
    p.component.assign(p.col.size(), 0);
    return p;
  };
  const Pattern p = randomPattern(70, 50, 0.08), q = randomPattern(50, 60, 0.05);
  for (bool residual : {false, true}) {
    const auto r = mech::composePatterns(p, q, 1 << 20, residual);
    ASSERT_TRUE(r);
    for (Index i = 0; i < 70; ++i)
      for (Index j = 0; j < 60; ++j) {
        bool want = residual && i < 50 && (q.contains(i, j) || i == j);
        for (Index k = 0; k < 50 && !want; ++k)
          want = p.contains(i, k) && (q.contains(k, j) || (residual && k == j));
        EXPECT_EQ(r->contains(i, j), want) << i << ", " << j << (residual ? " residual" : "");
      }
    for (Index i = 0; i < 70; ++i)
      EXPECT_TRUE(std::is_sorted(r->col.begin() + r->row_ptr[size_t(i)], r->col.begin() + r->row_ptr[size_t(i + 1)]));
  }
  EXPECT_FALSE(mech::composePatterns(p, q, 10));  // over the entry budget: no answer, not a huge one
}

TEST(Patterns, TwoHopsOfBlockRowsAcrossManyRows) {
  // 400 rows in runs that share their keys (as BigBird's blocks do; runs cross the 128-row blocks that
  // are composed in parallel), against the boolean product; and the entry budget with it.
  Rng rng(4);
  Pattern p;
  p.rows = 400;
  p.cols = 90;
  p.row_ptr.push_back(0);
  std::vector<std::int32_t> keys;
  for (Index i = 0; i < p.rows; ++i) {
    if (i == 0 || rng.uniform() < 0.05) {  // a new run
      keys.clear();
      for (Index j = 0; j < p.cols; ++j)
        if (rng.uniform() < 0.03) keys.push_back(std::int32_t(j));
    }
    p.col.insert(p.col.end(), keys.begin(), keys.end());
    p.row_ptr.push_back(Index(p.col.size()));
  }
  p.component.assign(p.col.size(), 0);
  Pattern q;
  q.rows = 90;
  q.cols = 130;
  q.row_ptr.push_back(0);
  for (Index k = 0; k < q.rows; ++k) {
    for (Index j = 0; j < q.cols; ++j)
      if (rng.uniform() < 0.04) q.col.push_back(std::int32_t(j));
    q.row_ptr.push_back(Index(q.col.size()));
  }
  q.component.assign(q.col.size(), 0);
  Index entries = 0;
  for (bool residual : {false, true}) {
    const auto r = mech::composePatterns(p, q, 1 << 22, residual);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->rows, p.rows);
    for (Index i = 0; i < p.rows; ++i)
      for (Index j = 0; j < q.cols; ++j) {
        bool want = residual && i < q.rows && (q.contains(i, j) || i == j);
        for (Index k = 0; k < q.rows && !want; ++k) want = p.contains(i, k) && (q.contains(k, j) || (residual && k == j));
        ASSERT_EQ(r->contains(i, j), want) << i << ", " << j << (residual ? " residual" : "");
      }
    if (!residual) entries = r->nnz();
  }
  ASSERT_GT(entries, 0);
  EXPECT_TRUE(mech::composePatterns(p, q, entries));
  EXPECT_FALSE(mech::composePatterns(p, q, entries - 1));
}

TEST(Denormals, FlushedInsideTheScopeAndRestoredAfter) {
  volatile float tiny = 1e-30f, factor = 1e-10f;  // the product, 1e-40, is subnormal
  EXPECT_GT(tiny * factor, 0.0f);
  {
    const ScopedFlushDenormals flush;
    EXPECT_EQ(tiny * factor, 0.0f);
    float seen = -1;  // a thread started inside the scope inherits the mode
    std::thread([&] { seen = tiny * factor; }).join();
    EXPECT_EQ(seen, 0.0f);
  }
  EXPECT_GT(tiny * factor, 0.0f);
}

TEST(Multiply, BothInstructionSetsMatchTheProductInDouble) {
  // Row blocks in place (a row stride larger than the width) and sizes that are no multiple of any
  // vector width; the larger case goes through the products' cache blocking.
  for (const auto [m, n, k] : {std::array<Index, 3>{37, 53, 129}, std::array<Index, 3>{130, 260, 600}}) {
    std::mt19937 rng(static_cast<unsigned>(m + n + k));
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    Matrix a_all(m + 7, k), b_all(n + 4, k);
    for (Index i = 0; i < a_all.size(); ++i) a_all.data()[i] = uniform(rng);
    for (Index i = 0; i < b_all.size(); ++i) b_all.data()[i] = uniform(rng);
    const auto a = a_all.middleRows(3, m);
    const auto b = b_all.middleRows(2, n);
    const MatrixD expected = a.cast<double>() * b.cast<double>().transpose();
    ASSERT_GT(expected.cwiseAbs().maxCoeff(), 1.0);
    std::vector<Isa> isas{Isa::Avx2};
    if (avx512Available()) isas.push_back(Isa::Avx512);
    for (const Isa isa : isas) {
      const Matrix c = multiplyTransposed(a, b, isa);
      ASSERT_EQ(c.rows(), m);
      ASSERT_EQ(c.cols(), n);
      EXPECT_LT((c.cast<double>() - expected).cwiseAbs().maxCoeff(), 1e-4) << "isa " << int(isa) << ", k " << k;
    }
    const Matrix automatic = multiplyTransposed(a, b);  // Auto resolves to the widest available
    EXPECT_EQ(automatic, multiplyTransposed(a, b, avx512Available() ? Isa::Avx512 : Isa::Avx2));
  }
  if (!avx512Available()) GTEST_SKIP() << "this CPU has no AVX-512: only the AVX2 product was checked";
}

TEST(Multiply, MismatchedOrEmptyFactors) {
  EXPECT_THROW(multiplyTransposed(Matrix::Ones(2, 3), Matrix::Ones(2, 4)), std::logic_error);
  EXPECT_EQ(multiplyTransposed(Matrix::Ones(2, 0), Matrix::Ones(3, 0)), Matrix(Matrix::Zero(2, 3)));
  EXPECT_EQ(multiplyTransposed(Matrix::Ones(0, 5), Matrix::Ones(3, 5)).size(), 0);
}

TEST(Metrics, RelativeErrorTotalVariationAndMassRecall) {
  const Matrix a = (Matrix(2, 2) << 1, 0, 0, 1).finished();
  const MatrixD b = (MatrixD(2, 2) << 1, 0, 0, 2).finished();
  EXPECT_NEAR(relativeError(a, b), 1.0 / std::sqrt(5.0), 1e-12);
  EXPECT_EQ(relativeError(Matrix(Matrix::Zero(2, 2)), MatrixD(MatrixD::Zero(2, 2))), 0);
  const Matrix p = (Matrix(2, 3) << 0.5, 0.5, 0, 0.2, 0.3, 0.5).finished();
  const Matrix q = (Matrix(2, 3) << 1, 0, 0, 0.2, 0.3, 0.5).finished();
  EXPECT_NEAR(rowTotalVariation(denseWeights(q), denseWeights(p)), (0.5 + 0) / 2, 1e-6);
  Pattern pat;
  pat.rows = 2;
  pat.cols = 3;
  pat.row_ptr = {0, 1, 3};
  pat.col = {0, 1, 2};
  pat.component = {0, 0, 0};
  EXPECT_NEAR(massRecall(pat, denseWeights(p)), (0.5 + 0.8) / 2, 1e-6);
}

TEST(Metrics, HugeLogitsKeepWeightsAtMostOneAndMetricsInRange) {
  // Logits of ~1e7: the weights' float GEMM and the attention's float lse round differently by far more
  // than 1, so raw rows summed to anything from 3e-4 to 1.6e5 and mass recall came out as 639.
  Rng rng(3);
  const Index n = 256, d = 64;
  auto q = std::make_shared<Matrix>(rng.gaussian(n, d) * 3000.0f);
  auto k = std::make_shared<Matrix>(rng.gaussian(n, d) * 3000.0f);
  const Matrix v = rng.gaussian(n, 8);
  CpuBackend cpu(1);
  const AttentionOutput out = cpu.denseAttention(*q, *k, v, DenseAttentionOptions{});
  const float scale = 1.0f / std::sqrt(float(d));
  const ImpliedWeights w = denseSoftmaxWeights(q, k, scale, false, out.lse);
  EXPECT_LE(w.block({0, n}, {0, n}).maxCoeff(), 1.0f) << "a softmax weight above 1";
  Pattern full;
  full.rows = full.cols = n;
  full.row_ptr.push_back(0);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < n; ++j) {
      full.col.push_back(std::int32_t(j));
      full.component.push_back(0);
    }
    full.row_ptr.push_back(Index(full.col.size()));
  }
  EXPECT_NEAR(massRecall(full, w), 1.0, 1e-9) << "every pair is seen: all of the mass";
  const double tv = rowTotalVariation(w, w);
  EXPECT_GE(tv, 0.0);
  EXPECT_LE(tv, 1.0);
}

TEST(Purity, AttentionAndTheViewModelIncludeNoQtVulkanOrImGui) {
  // DESIGN.md: attention/ is pure C++20 + Eigen; the view model (render/scene) adds nothing but attention/.
  const std::regex bad(R"(#\s*include\s*[<"](Q[A-Za-z]+|qt|vulkan/|vulkan\.h|imgui|GLFW|SDL|render/(vk|gpu|view)/|app/))");
  int files = 0;
  for (const char* dir : {ATTNLAB_SOURCE_DIR "/attention", ATTNLAB_SOURCE_DIR "/render/scene"})
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path());
    std::string line;
    int number = 0;
    ++files;
    while (std::getline(in, line)) {
      ++number;
      EXPECT_FALSE(std::regex_search(line, bad)) << e.path() << ":" << number << ": " << line;
    }
  }
  EXPECT_GT(files, 12);
}

}  // namespace
}  // namespace attn
