// The Vulkan primitives besides dense attention and matmul (sparse attention, sparse matmul, …), each against a float64 reference written
// here from its definition (attention/backend.h, attention/explanation.h), on ≥ 200 random shapes:
// N = 1 and sizes that are not multiples of the workgroup size included, d ∈ {16, 32, 64, 128} and
// odd ones. Outputs are poisoned (NaN) before every kernel; NaN never passes a comparison.
#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <sstream>

#include "gpu_test_util.h"

namespace attn::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kShapes = 200;

Index between(Rng& rng, Index lo, Index hi) { return lo + static_cast<Index>(rng.below(std::uint64_t(hi - lo + 1))); }
Index pickDim(Rng& rng) {
  const Index ds[] = {16, 32, 64, 128, 1, 3, 17, 40, 100};
  return ds[rng.below(rng.uniform() < 0.8 ? 4 : 9)];
}
/// Sizes biased towards the awkward ones: 1, around multiples of 64, and random.
Index pickN(Rng& rng, Index max_n) {
  const double u = rng.uniform();
  if (u < 0.1) return 1;
  if (u < 0.3) return std::clamp<Index>(64 * between(rng, 1, 3) + between(rng, -1, 1), 1, max_n);
  return between(rng, 1, max_n);
}

struct Stats {
  int cases = 0;
  double worst = 0;
  void report(const char* name) const { std::printf("[ %s ] %d shapes, max |err| %.3g\n", name, cases, worst); }
};

// ---- sparse attention -------------------------------------------------------------------------------

/// Reference of sparse attention, row by row: float64 dense attention over the row's pattern keys
/// only (gathered), with the entry bias, which has the same row semantics by definition.
struct SparseCase {
  Matrix q, k, v;
  Pattern pattern;
  std::vector<float> bias;
  bool has_bias = false;
  float scale = 0;
  std::string what;
};

SparseCase randomSparse(std::uint64_t seed, Index max_n) {
  Rng rng(seed);
  SparseCase c;
  const Index n = pickN(rng, max_n), m = rng.uniform() < 0.5 ? n : pickN(rng, max_n);
  const Index d = pickDim(rng), dv = rng.uniform() < 0.5 ? d : between(rng, 1, 256);
  c.q = rng.gaussian(n, d, 1.0);
  c.k = rng.gaussian(m, d, 1.0);
  c.v = rng.gaussian(m, dv);
  c.has_bias = rng.uniform() < 0.3;
  if (rng.uniform() < 0.2) c.scale = 0.3f;
  c.pattern.rows = n;
  c.pattern.cols = m;
  c.pattern.components = {"random"};
  c.pattern.row_ptr.push_back(0);
  const double density = std::vector<double>{0.02, 0.1, 0.5, 1.0}[rng.below(4)];
  for (Index i = 0; i < n; ++i) {
    const bool empty = rng.uniform() < 0.05;
    for (Index j = 0; j < m; ++j)
      if (!empty && rng.uniform() < density) {
        c.pattern.col.push_back(std::int32_t(j));
        c.pattern.component.push_back(0);
        if (c.has_bias) c.bias.push_back(rng.uniform() < 0.1 ? -kInf : float(rng.normal()));
      }
    c.pattern.row_ptr.push_back(Index(c.pattern.col.size()));
  }
  std::ostringstream s;
  s << "seed=" << seed << " N=" << n << " M=" << m << " d=" << d << " dv=" << dv << " nnz=" << c.pattern.nnz()
    << " bias=" << c.has_bias << " scale=" << c.scale;
  c.what = s.str();
  return c;
}

void checkSparse(gpu::VulkanBackend& gpu, const SparseCase& c, Stats& stats) {
  const AttentionOutput got = gpu.sparseAttention(c.q, c.k, c.v, c.pattern, c.scale, c.has_bias ? &c.bias : nullptr);
  const Index n = c.q.rows(), dv = c.v.cols();
  MatrixD ref(n, dv);
  VectorD lse(n);
  for (Index i = 0; i < n; ++i) {
    const Index e0 = c.pattern.row_ptr[size_t(i)], e1 = c.pattern.row_ptr[size_t(i + 1)];
    MatrixD ki(e1 - e0, c.k.cols()), vi(e1 - e0, dv);
    Matrix bias_row = Matrix::Zero(1, e1 - e0);
    for (Index e = e0; e < e1; ++e) {
      ki.row(e - e0) = c.k.row(c.pattern.col[size_t(e)]).cast<double>();
      vi.row(e - e0) = c.v.row(c.pattern.col[size_t(e)]).cast<double>();
      if (c.has_bias) bias_row(0, e - e0) = c.bias[size_t(e)];
    }
    DenseAttentionOptions o;
    o.scale = c.scale;
    o.bias = &bias_row;
    VectorD row_lse;
    ref.row(i) = referenceAttention(c.q.row(i).cast<double>(), ki, vi, o, &row_lse).row(0);
    lse(i) = row_lse(0);
  }
  // Logits reach |x| ≈ 40 (d = 128, σ = 1, scale 0.3); errors of fp32 online softmax stay ≈ 1e-5.
  double err = 0;
  EXPECT_TRUE(matchesReference(got.out, ref, {5e-5, 5e-5}, &err)) << c.what;
  EXPECT_TRUE(matchesReference(toColumn(got.lse), toColumn(lse), {5e-5, 5e-5}, &err)) << c.what << " (lse)";
  ++stats.cases;
  stats.worst = std::max(stats.worst, err);
}

using SparseAttention = GpuTest;

TEST_F(SparseAttention, RandomPatternsMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) checkSparse(gpu(), randomSparse(1000 + std::uint64_t(s), 150), stats);
  stats.report("sparse attention");
}

// The block-sparse kernel (dense tiles over the pattern's non-empty key tiles, masked per pair) on
// the same random patterns (forced, without entry bias), and chosen by itself on block patterns.
TEST_F(SparseAttention, TileKernelMatchesReference) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.sparse_tiles = gpu::SparseTiles::Always;
  gpu::VulkanBackend tiles(backend_->sharedContext(), o);
  Stats stats;
  for (int s = 0; s < kShapes; ++s) {
    SparseCase c = randomSparse(9000 + std::uint64_t(s), 150);
    c.has_bias = false;
    c.bias.clear();
    checkSparse(tiles, c, stats);
    if (c.q.cols() <= 256 && c.pattern.nnz() > 0) {
      EXPECT_EQ(tiles.lastSparsePath(), "tiles") << c.what;
    }
  }
  stats.report("sparse attention, tile kernel");
}

TEST_F(SparseAttention, BlockPatternsTakeTheTileKernel) {
  Stats stats;
  for (int s = 0; s < 20; ++s) {
    Rng rng(9500 + std::uint64_t(s));
    SparseCase c;
    const Index n = 64 * between(rng, 1, 6) + between(rng, 0, 30), d = pickDim(rng), block = 16 << rng.below(4);
    c.q = rng.gaussian(n, d), c.k = rng.gaussian(n, d), c.v = rng.gaussian(n, 32);
    c.pattern.rows = c.pattern.cols = n;
    c.pattern.components = {"block"};
    c.pattern.row_ptr = {0};
    for (Index i = 0; i < n; ++i) {  // BigBird-like: own block, its neighbours, the first block
      for (Index j = 0; j < n; ++j)
        if (j / block == 0 || std::abs(j / block - i / block) <= 1) {
          c.pattern.col.push_back(std::int32_t(j));
          c.pattern.component.push_back(0);
        }
      c.pattern.row_ptr.push_back(Index(c.pattern.col.size()));
    }
    c.what = "block pattern N=" + std::to_string(n) + " block=" + std::to_string(block) + " d=" + std::to_string(d);
    checkSparse(gpu(), c, stats);
    if (block >= 64) {  // whole tiles (at most 64 keys wide): the pattern fills them
      EXPECT_EQ(gpu().lastSparsePath(), "tiles") << c.what;
    }
  }
  stats.report("sparse attention, block patterns");
}

TEST_F(SparseAttention, SpecialRowsFollowTheDefinedSemantics) {
  Stats stats;
  SparseCase c = randomSparse(77, 40);
  while (c.pattern.nnz() < 20) c = randomSparse(c.q.rows() + 78, 40);
  // One NaN query, one key with +inf entries reaching some rows.
  c.q(0, 0) = kNaN;
  c.k(c.k.rows() - 1, 0) = kInf;
  checkSparse(gpu(), c, stats);
  EXPECT_GT(gpu().lastFixedRows(), 0) << c.what;
}

TEST_F(SparseAttention, DotProductsThatOverflowBeforeTheScaleAreComputedExactly) {
  // q·k = −4e38·(1 + 0.01j) overflows float; scale·q·k (scale ½) does not. Every row sees every key:
  // the largest logit, key 0, takes all the weight, on both backends (and the tile kernel's full blocks).
  const Index n = 3, m = 5, d = 4;
  const Matrix q = Matrix::Constant(n, d, 1e19f);
  Matrix k(m, d);
  for (Index j = 0; j < m; ++j) k.row(j).setConstant(-1e19f * (1.0f + 0.01f * float(j)));
  const Matrix v = Rng(5).gaussian(m, 3);
  Pattern full;
  full.rows = n;
  full.cols = m;
  full.components = {"full"};
  full.row_ptr.push_back(0);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < m; ++j) {
      full.col.push_back(std::int32_t(j));
      full.component.push_back(0);
    }
    full.row_ptr.push_back(Index(full.col.size()));
  }
  for (const AttentionOutput& got :
       {gpu().sparseAttention(q, k, v, full, 0, nullptr), CpuBackend(1).sparseAttention(q, k, v, full, 0, nullptr)})
    for (Index i = 0; i < n; ++i)
      for (Index c = 0; c < 3; ++c) EXPECT_NEAR(got.out(i, c), v(0, c), 1e-6) << "row " << i;
}

TEST_F(SparseAttention, LongRowsSplitAcrossDispatches) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.sparse_entries_per_dispatch = 64;
  gpu::VulkanBackend split(backend_->sharedContext(), o);
  o.sparse_tiles = gpu::SparseTiles::Always;
  gpu::VulkanBackend split_tiles(backend_->sharedContext(), o);
  Stats stats;
  for (int s = 0; s < 20; ++s) {
    SparseCase c = randomSparse(5000 + std::uint64_t(s), 300);
    checkSparse(split, c, stats);
    c.has_bias = false;
    c.bias.clear();
    checkSparse(split_tiles, c, stats);
  }
  // A dense row of 20000 keys goes past lavapipe's loop limit in one dispatch.
  Rng rng(9);
  SparseCase c;
  c.q = rng.gaussian(3, 64);
  c.k = rng.gaussian(20000, 64);
  c.v = rng.gaussian(20000, 16);
  c.pattern.rows = 3, c.pattern.cols = 20000, c.pattern.components = {"all"};
  c.pattern.row_ptr = {0};
  for (Index i = 0; i < 3; ++i) {
    for (Index j = i; j < 20000; ++j) c.pattern.col.push_back(std::int32_t(j)), c.pattern.component.push_back(0);
    c.pattern.row_ptr.push_back(Index(c.pattern.col.size()));
  }
  c.what = "3 rows of ~20000 keys";
  checkSparse(gpu(), c, stats);
  if (ctx().limits().max_loop_iterations > 0) {
    EXPECT_GT(gpu().lastSplitDispatches(), 1);
  }
  stats.report("sparse attention, split");
}

TEST_F(SparseAttention, BadPatternsAreUserErrors) {
  Rng rng(3);
  const Matrix q = rng.gaussian(4, 16), k = rng.gaussian(5, 16), v = rng.gaussian(5, 4);
  Pattern p;
  p.rows = 4, p.cols = 5, p.row_ptr = {0, 1, 1, 1, 1}, p.col = {7}, p.component = {0};
  EXPECT_THROW(gpu().sparseAttention(q, k, v, p, 0, nullptr), UserError);  // key out of range
  p.col = {0};
  p.row_ptr = {0, 1, 1, 1};
  EXPECT_THROW(gpu().sparseAttention(q, k, v, p, 0, nullptr), UserError);  // wrong row count
  p.row_ptr = {0, 1, 1, 1, 1};
  const std::vector<float> bias(3, 0.0f);
  EXPECT_THROW(gpu().sparseAttention(q, k, v, p, 0, &bias), UserError);  // one bias per entry
}

// ---- sparse matmul ----------------------------------------------------------------------------------

/// A random CSR matrix rows × cols (empty rows, repeated columns and ±values included) and a dense operand.
struct SpmmCase {
  SparseMatrix a;
  Matrix x;
  std::string what;
};

SpmmCase randomSpmm(std::uint64_t seed, Index max_rows, Index max_entries_per_row) {
  Rng rng(seed);
  SpmmCase c;
  c.a.rows = pickN(rng, max_rows);
  c.a.cols = pickN(rng, max_rows);
  const Index k = rng.uniform() < 0.5 ? pickDim(rng) : between(rng, 1, 300);
  c.x = rng.gaussian(c.a.cols, k);
  c.a.row_ptr.push_back(0);
  for (Index i = 0; i < c.a.rows; ++i) {
    const Index entries = rng.uniform() < 0.1 ? 0 : between(rng, 1, max_entries_per_row);
    for (Index e = 0; e < entries; ++e) {
      c.a.col.push_back(std::int32_t(rng.below(std::uint64_t(c.a.cols))));
      c.a.value.push_back(float(rng.normal()));
    }
    c.a.row_ptr.push_back(Index(c.a.col.size()));
  }
  std::ostringstream s;
  s << "seed=" << seed << " rows=" << c.a.rows << " cols=" << c.a.cols << " k=" << k << " nnz=" << c.a.nnz();
  c.what = s.str();
  return c;
}

void checkSpmm(Backend& gpu, const SpmmCase& c, Stats& stats) {
  const Matrix got = gpu.sparseMatmul(c.a, c.x);
  MatrixD ref = MatrixD::Zero(c.a.rows, c.x.cols());
  for (Index i = 0; i < c.a.rows; ++i)
    for (Index e = c.a.row_ptr[size_t(i)]; e < c.a.row_ptr[size_t(i + 1)]; ++e)
      for (Index col = 0; col < c.x.cols(); ++col)
        ref(i, col) += double(c.a.value[size_t(e)]) * double(c.x(c.a.col[size_t(e)], col));
  double err = 0;
  EXPECT_TRUE(matchesReference(got, ref, {2e-5, 2e-5}, &err)) << c.what;
  ++stats.cases;
  stats.worst = std::max(stats.worst, err);
}

using SparseMatmul = GpuTest;

TEST_F(SparseMatmul, RandomMatricesMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) checkSpmm(gpu(), randomSpmm(7000 + std::uint64_t(s), 150, 40), stats);
  stats.report("sparse matmul");
}

TEST_F(SparseMatmul, LongRowsSplitAcrossDispatchesAndAccumulate) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.sparse_entries_per_dispatch = 7;
  gpu::VulkanBackend split(backend_->sharedContext(), o);
  Stats stats;
  for (int s = 0; s < 20; ++s) checkSpmm(split, randomSpmm(8000 + std::uint64_t(s), 100, 60), stats);
  EXPECT_GT(split.lastSplitDispatches(), 1);
  // Rows of 30000 entries go past lavapipe's loop limit in one dispatch.
  Rng rng(4);
  SpmmCase c;
  c.a.rows = 2, c.a.cols = 30000, c.a.row_ptr = {0};
  for (Index i = 0; i < 2; ++i) {
    for (Index j = 0; j < 30000; ++j) c.a.col.push_back(std::int32_t(j)), c.a.value.push_back(float(rng.normal()) * 0.01f);
    c.a.row_ptr.push_back(Index(c.a.col.size()));
  }
  c.x = rng.gaussian(30000, 70);
  c.what = "2 rows of 30000 entries, 70 columns";
  checkSpmm(gpu(), c, stats);
  if (ctx().limits().max_loop_iterations > 0) {
    EXPECT_GT(gpu().lastSplitDispatches(), 1);
  }
  stats.report("sparse matmul, split");
}

TEST_F(SparseMatmul, BadMatricesAreUserErrorsWithTheCpusMessage) {
  Rng rng(5);
  const Matrix x = rng.gaussian(5, 3);
  SparseMatrix a;
  a.rows = 2, a.cols = 5, a.row_ptr = {0, 1, 2}, a.col = {0, 9}, a.value = {1, 2};
  CpuBackend cpu(1);
  auto message = [&](Backend& b) {
    try {
      b.sparseMatmul(a, x);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(gpu()), message(cpu));
  EXPECT_NE(message(cpu).find("column 9"), std::string::npos) << message(cpu);
  a.col = {0, 1};
  a.row_ptr = {0, 2, 1};
  EXPECT_NE(message(gpu()).find("decrease"), std::string::npos) << message(gpu());
  a.row_ptr = {0, 1, 2};
  a.value = {1};
  EXPECT_THROW(gpu().sparseMatmul(a, x), UserError);
  a.value = {1, 2};
  a.cols = 4;
  EXPECT_THROW(gpu().sparseMatmul(a, x), UserError);
}

// ---- feature maps -----------------------------------------------------------------------------------

MatrixD referenceFeatures(const Matrix& x_in, const FeatureMapOptions& o) {
  const MatrixD x = x_in.cast<double>() * double(o.input_scale);
  if (o.map == FeatureMap::EluPlusOne) return x.unaryExpr([](double t) { return t > 0 ? t + 1 : std::exp(t); });
  const MatrixD w = o.projection->cast<double>();
  const Index m = w.rows();
  const MatrixD u = x * w.transpose();
  const VectorD half = 0.5 * x.rowwise().squaredNorm();
  if (o.map == FeatureMap::Trigonometric) {
    MatrixD phi(x.rows(), 2 * m);
    for (Index i = 0; i < x.rows(); ++i)
      for (Index r = 0; r < m; ++r) {
        const double g = std::exp(half(i)) / std::sqrt(double(m));
        phi(i, r) = g * std::sin(u(i, r));
        phi(i, m + r) = g * std::cos(u(i, r));
      }
    return phi;
  }
  MatrixD e = u.colwise() - half;
  VectorD shift = VectorD::Zero(x.rows());
  if (o.shift == FeatureShift::PerRow) shift = e.rowwise().maxCoeff();
  if (o.shift == FeatureShift::Global) shift.setConstant(e.maxCoeff());
  for (Index i = 0; i < x.rows(); ++i)
    for (Index r = 0; r < m; ++r) e(i, r) = std::exp(e(i, r) - shift(i)) / std::sqrt(double(m));
  return e;
}

using FeatureMaps = GpuTest;

TEST_F(FeatureMaps, RandomShapesMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) {
    Rng rng(2000 + std::uint64_t(s));
    const Index n = pickN(rng, 200), d = pickDim(rng), m = pickN(rng, 130);
    FeatureMapOptions o;
    o.map = static_cast<FeatureMap>(rng.below(3));
    o.shift = static_cast<FeatureShift>(rng.below(3));
    o.input_scale = rng.uniform() < 0.5 ? 1.0f : float(std::pow(double(d), -0.25));
    const Matrix x = rng.gaussian(n, d, o.map == FeatureMap::Trigonometric ? 0.5 : 1.0);
    const Matrix w = rng.gaussian(m, d);
    o.projection = &w;
    const Matrix got = gpu().featureMap(x, o);
    const MatrixD ref = referenceFeatures(x, o);
    std::ostringstream what;
    what << "seed=" << s << " N=" << n << " d=" << d << " m=" << m << " map=" << int(o.map)
         << " shift=" << int(o.shift) << " scale=" << o.input_scale;
    // Relative errors: exponents ω·x − ‖x‖²/2 of magnitude ≲ 60 lose ≈ 1e-6 relative in fp32 (a few
    // ulps of the exponent); sin/cos after range reduction stay within ≈ 1e-6 of the row's scale g.
    // Results below FLT_MIN may flush to 0 on the GPU (denormals): atol 1e-36.
    Tolerance tol{1e-36, 2e-4};
    if (o.map == FeatureMap::Trigonometric) {
      const double g = ref.cwiseAbs().maxCoeff();
      tol = Tolerance{2e-4 * g, 2e-4};
    }
    double err = 0;
    EXPECT_TRUE(matchesReference(got, ref, tol, &err)) << what.str();
    ++stats.cases;
    stats.worst = std::max(stats.worst, err);
  }
  stats.report("feature maps");
}

TEST_F(FeatureMaps, NaNInputsStayInTheirRowAndShiftsIgnoreThem) {
  Rng rng(5);
  Matrix x = rng.gaussian(70, 16);
  x(3, 2) = kNaN;
  const Matrix w = rng.gaussian(40, 16);
  for (FeatureShift shift : {FeatureShift::None, FeatureShift::PerRow, FeatureShift::Global}) {
    FeatureMapOptions o{FeatureMap::PositiveRandom, &w, 0.5f, shift};
    const Matrix got = gpu().featureMap(x, o);
    EXPECT_TRUE(got.row(3).array().isNaN().all());
    Matrix clean = x;
    clean.row(3).setZero();
    MatrixD ref = referenceFeatures(clean, o);
    if (shift == FeatureShift::Global) {  // the NaN row is left out of the global max
      Matrix without(69, 16);
      without << x.topRows(3), x.bottomRows(66);
      const MatrixD part = referenceFeatures(without, o);
      ref.topRows(3) = part.topRows(3);
      ref.bottomRows(66) = part.bottomRows(66);
    }
    for (Index i = 0; i < 70; ++i) {
      if (i == 3) continue;
      EXPECT_TRUE(matchesReference(got.row(i), ref.row(i), {1e-36, 2e-4})) << "row " << i << " shift " << int(shift);
    }
    EXPECT_TRUE(matchesReference(got.row(0), CpuBackend(1).featureMap(x, o).row(0).cast<double>(), {1e-36, 2e-4}));
  }
}

TEST_F(FeatureMaps, MissingOrMismatchedProjectionIsAUserError) {
  Rng rng(6);
  const Matrix x = rng.gaussian(5, 8), w = rng.gaussian(4, 7);
  EXPECT_THROW(gpu().featureMap(x, FeatureMapOptions{FeatureMap::PositiveRandom}), UserError);
  EXPECT_THROW(gpu().featureMap(x, FeatureMapOptions{FeatureMap::Trigonometric, &w}), UserError);
}

// ---- linear attention -------------------------------------------------------------------------------

MatrixD referenceLinear(const Matrix& fq, const Matrix& fk, const Matrix& v, bool causal) {
  const MatrixD a = fq.cast<double>() * fk.cast<double>().transpose();
  MatrixD out = MatrixD::Zero(fq.rows(), v.cols());
  const MatrixD vd = v.cast<double>();
  for (Index i = 0; i < fq.rows(); ++i) {
    const Index visible = causal ? i + 1 : fk.rows();
    const double den = a.row(i).head(visible).sum();
    if (den > 0 && std::isfinite(den)) out.row(i) = a.row(i).head(visible) * vd.topRows(visible) / den;
  }
  return out;
}

using LinearAttention = GpuTest;

TEST_F(LinearAttention, RandomShapesMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) {
    Rng rng(3000 + std::uint64_t(s));
    const bool causal = rng.uniform() < 0.5;
    const Index n = pickN(rng, 300), m = causal ? n : pickN(rng, 300);
    const Index f = rng.uniform() < 0.7 ? pickDim(rng) : between(rng, 1, 300), dv = between(rng, 1, 256);
    const Matrix fq = rng.gaussian(n, f).unaryExpr([](float t) { return t > 0 ? t + 1 : std::exp(t); });
    const Matrix fk = rng.gaussian(m, f).unaryExpr([](float t) { return t > 0 ? t + 1 : std::exp(t); });
    const Matrix v = rng.gaussian(m, dv);
    std::ostringstream what;
    what << "seed=" << s << " N=" << n << " M=" << m << " features=" << f << " dv=" << dv << " causal=" << causal;
    // Positive weights: the output is a convex combination of value rows (|v| ≲ 5); fp32 sums of
    // ≤ 300 positive terms keep ≈ 1e-6 relative accuracy.
    double err = 0;
    EXPECT_TRUE(matchesReference(gpu().linearAttention(fq, fk, v, causal), referenceLinear(fq, fk, v, causal),
                                 {2e-5, 2e-5}, &err))
        << what.str();
    ++stats.cases;
    stats.worst = std::max(stats.worst, err);
  }
  stats.report("linear attention");
}

TEST_F(LinearAttention, ScanSplitAcrossDispatchesAndZeroNormalisers) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.linear_chunks_per_dispatch = 2;
  gpu::VulkanBackend split(backend_->sharedContext(), o);
  Rng rng(8);
  for (bool causal : {false, true}) {
    const Index n = 64 * 7 + 5;
    Matrix fq = rng.gaussian(n, 24).cwiseAbs(), fk = rng.gaussian(n, 24).cwiseAbs();
    fq.row(10).setZero();  // normaliser 0: the row is 0
    const Matrix v = rng.gaussian(n, 33);
    EXPECT_TRUE(matchesReference(split.linearAttention(fq, fk, v, causal), referenceLinear(fq, fk, v, causal),
                                 {2e-5, 2e-5}))
        << "causal " << causal;
    EXPECT_EQ(split.lastSplitDispatches(), 4);  // 8 chunks, 2 per dispatch
  }
}

TEST_F(LinearAttention, CausalNeedsSquareInputs) {
  Rng rng(4);
  const Matrix fq = rng.gaussian(5, 4).cwiseAbs(), fk = rng.gaussian(6, 4).cwiseAbs(), v = rng.gaussian(6, 3);
  EXPECT_THROW(gpu().linearAttention(fq, fk, v, true), UserError);
}

// ---- hashing and nearest centroid -------------------------------------------------------------------

// Floating-point sums in another order may swap near-ties: the kernel's choice must score within
// `slack` of the best score computed in double (and match the CPU backend nearly always).
constexpr double kScoreSlack = 1e-4;

using Assignment = GpuTest;

TEST_F(Assignment, HashRotationsPickTheBestBucket) {
  Stats stats;
  Index same_as_cpu = 0, rows = 0;
  CpuBackend cpu(1);
  for (int s = 0; s < kShapes; ++s) {
    Rng rng(4000 + std::uint64_t(s));
    const Index n = pickN(rng, 200), d = pickDim(rng), half = between(rng, 1, 150);
    const Matrix x = rng.gaussian(n, d), rot = rng.gaussian(d, half);
    const std::vector<std::int32_t> got = gpu().hashRotations(x, rot);
    const std::vector<std::int32_t> want = cpu.hashRotations(x, rot);
    const MatrixD proj = x.cast<double>() * rot.cast<double>();
    ASSERT_EQ(Index(got.size()), n);
    for (Index i = 0; i < n; ++i) {
      const std::int32_t b = got[size_t(i)];
      ASSERT_TRUE(b >= 0 && b < 2 * half) << "seed " << s << " row " << i << " bucket " << b;
      const double score = b < half ? proj(i, b) : -proj(i, b - half);
      const double best = proj.row(i).cwiseAbs().maxCoeff();
      EXPECT_GE(score, best - kScoreSlack * (1 + best)) << "seed " << s << " row " << i;
      stats.worst = std::max(stats.worst, best - score);
      same_as_cpu += b == want[size_t(i)];
      ++rows;
    }
    ++stats.cases;
  }
  EXPECT_GE(double(same_as_cpu), 0.999 * double(rows));
  stats.report("hash rotations");
}

TEST_F(Assignment, NearestCentroidPicksTheClosest) {
  Stats stats;
  Index same_as_cpu = 0, rows = 0;
  CpuBackend cpu(1);
  for (int s = 0; s < kShapes; ++s) {
    Rng rng(5000 + std::uint64_t(s));
    const Index n = pickN(rng, 200), d = pickDim(rng), kc = between(rng, 1, 150);
    const Matrix x = rng.gaussian(n, d), c = rng.gaussian(kc, d);
    const std::vector<std::int32_t> got = gpu().nearestCentroid(x, c);
    const std::vector<std::int32_t> want = cpu.nearestCentroid(x, c);
    ASSERT_EQ(Index(got.size()), n);
    for (Index i = 0; i < n; ++i) {
      const std::int32_t b = got[size_t(i)];
      ASSERT_TRUE(b >= 0 && b < kc) << "seed " << s << " row " << i;
      double best = std::numeric_limits<double>::infinity();
      for (Index j = 0; j < kc; ++j)
        best = std::min(best, (x.row(i).cast<double>() - c.row(j).cast<double>()).squaredNorm());
      const double dist = (x.row(i).cast<double>() - c.row(b).cast<double>()).squaredNorm();
      EXPECT_LE(dist, best + kScoreSlack * (1 + best)) << "seed " << s << " row " << i;
      stats.worst = std::max(stats.worst, dist - best);
      same_as_cpu += b == want[size_t(i)];
      ++rows;
    }
    ++stats.cases;
  }
  EXPECT_GE(double(same_as_cpu), 0.999 * double(rows));
  stats.report("nearest centroid");
}

TEST_F(Assignment, DegenerateRowsGetZeroLikeTheCpu) {
  Rng rng(6);
  Matrix x = rng.gaussian(5, 16);
  x.row(1).setZero();
  x(2, 3) = kNaN;
  const Matrix rot = rng.gaussian(16, 8), c = rng.gaussian(6, 16);
  CpuBackend cpu(1);
  const auto h = gpu().hashRotations(x, rot), hc = cpu.hashRotations(x, rot);
  EXPECT_EQ(h[1], hc[1]);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(hc[2], 0);
  EXPECT_EQ(gpu().nearestCentroid(x, c)[2], 0);
  EXPECT_THROW(gpu().hashRotations(x, rng.gaussian(15, 8)), UserError);
  EXPECT_THROW(gpu().nearestCentroid(x, rng.gaussian(6, 15)), UserError);
}

// ---- weight tiles -----------------------------------------------------------------------------------

/// The tile by definition: W in double, pooled over the pixel spans of ImpliedWeights::tile
/// (pixel p of `out` over `len` entries covers [⌊p·len/out⌋, max(⌊(p+1)·len/out⌋, start+1))).
MatrixD referenceTile(const WeightKernel& k, Range rows, Range cols, TileSize out, Pooling pooling) {
  const Index m = k.b->rows();
  auto entry = [&](Index i, Index j) {
    const double t = k.row_term(i);
    if (!std::isfinite(t)) return 0.0;
    const Index visible = k.causal ? std::clamp<Index>(i + k.causal_offset + 1, 0, m) : m;
    const Index self = i + k.causal_offset;
    if (j >= visible) return 0.0;
    if (k.mask_self && j == self && self >= 0 && visible > 1) return 0.0;
    const double dot = k.a->row(i).cast<double>().dot(k.b->row(j).cast<double>());
    return k.kind == WeightKernel::Kind::Softmax ? std::exp(double(k.scale) * dot + t) : dot * t;
  };
  auto span = [](Index len, Index px, Index p) {
    const Index s = p * len / px;
    return std::pair<Index, Index>{s, std::min(len, std::max((p + 1) * len / px, s + 1))};
  };
  MatrixD tile(out.rows, out.cols);
  for (Index p = 0; p < out.rows; ++p)
    for (Index q = 0; q < out.cols; ++q) {
      const auto [r0, r1] = span(rows.size(), out.rows, p);
      const auto [c0, c1] = span(cols.size(), out.cols, q);
      double acc = pooling == Pooling::Max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (Index i = r0; i < r1; ++i)
        for (Index j = c0; j < c1; ++j) {
          const double w = entry(rows.begin + i, cols.begin + j);
          acc = pooling == Pooling::Max ? std::max(acc, w) : acc + w;
        }
      tile(p, q) = pooling == Pooling::Max ? acc : acc / double((r1 - r0) * (c1 - c0));
    }
  return tile;
}

struct TileCase {
  WeightKernel kernel;
  Range rows, cols;
  TileSize out;
  Pooling pooling = Pooling::Max;
  std::string what;
};

TileCase randomTile(std::uint64_t seed, Index max_n) {
  Rng rng(seed);
  TileCase c;
  const Index n = pickN(rng, max_n), m = rng.uniform() < 0.6 ? n : pickN(rng, max_n), r = pickDim(rng);
  WeightKernel& k = c.kernel;
  k.kind = rng.uniform() < 0.5 ? WeightKernel::Kind::Softmax : WeightKernel::Kind::Linear;
  k.a = std::make_shared<Matrix>(rng.gaussian(n, r));
  k.b = std::make_shared<Matrix>(rng.gaussian(m, r));
  k.scale = float(1.0 / std::sqrt(double(r)));
  k.causal = rng.uniform() < 0.4;
  k.causal_offset = k.causal && rng.uniform() < 0.3 ? between(rng, -3, 3) : 0;
  k.mask_self = rng.uniform() < 0.2;
  k.row_term.resize(n);
  for (Index i = 0; i < n; ++i) {
    if (k.kind == WeightKernel::Kind::Softmax) {  // −lse of the visible row, so weights sum to 1
      const Index visible = k.causal ? std::clamp<Index>(i + k.causal_offset + 1, 0, m) : m;
      double mx = -1e300, sum = 0;
      const VectorD x = (k.b->topRows(visible).cast<double>() * k.a->row(i).cast<double>().transpose()) * k.scale;
      for (Index j = 0; j < visible; ++j) mx = std::max(mx, x(j));
      for (Index j = 0; j < visible; ++j) sum += std::exp(x(j) - mx);
      k.row_term(i) = visible > 0 ? float(-(mx + std::log(sum))) : kInf;
    } else {
      k.row_term(i) = float(rng.normal());
    }
    if (rng.uniform() < 0.03) k.row_term(i) = rng.uniform() < 0.5 ? kNaN : -kInf;  // rows shown as 0
  }
  const bool whole = rng.uniform() < 0.5;
  c.rows = whole ? Range{0, n} : Range{between(rng, 0, n - 1), 0};
  c.cols = whole ? Range{0, m} : Range{between(rng, 0, m - 1), 0};
  if (!whole) {
    c.rows.end = between(rng, c.rows.begin + 1, n);
    c.cols.end = between(rng, c.cols.begin + 1, m);
  }
  c.out = TileSize{between(rng, 1, 80), between(rng, 1, 80)};  // zoomed out and in
  c.pooling = rng.uniform() < 0.5 ? Pooling::Max : Pooling::Mean;
  std::ostringstream s;
  s << "seed=" << seed << " N=" << n << " M=" << m << " r=" << r << " kind=" << int(k.kind) << " causal=" << k.causal
    << " offset=" << k.causal_offset << " mask_self=" << k.mask_self << " rows=[" << c.rows.begin << ","
    << c.rows.end << ") cols=[" << c.cols.begin << "," << c.cols.end << ") out=" << c.out.rows << "×" << c.out.cols
    << " pooling=" << int(c.pooling);
  c.what = s.str();
  return c;
}

void checkTile(gpu::VulkanBackend& gpu, const TileCase& c, Stats& stats) {
  const Matrix got = gpu.weightTile(c.kernel, c.rows, c.cols, c.out, c.pooling);
  const MatrixD ref = referenceTile(c.kernel, c.rows, c.cols, c.out, c.pooling);
  // Entries are exp(≲ 10) or products of O(10) values: fp32 dot products and exp keep ≈ 1e-6 relative
  // of the tile's largest value.
  const double scale = ref.cwiseAbs().maxCoeff();
  double err = 0;
  EXPECT_TRUE(matchesReference(got, ref, {1e-5 * (1 + scale), 1e-5}, &err)) << c.what;
  // The CPU path (ImpliedWeights::tile) gives the same tile.
  EXPECT_TRUE(matchesReference(CpuBackend(1).weightTile(c.kernel, c.rows, c.cols, c.out, c.pooling), ref,
                               {1e-5 * (1 + scale), 1e-5}))
      << c.what << " (CPU)";
  ++stats.cases;
  stats.worst = std::max(stats.worst, err);
}

using WeightTiles = GpuTest;

TEST_F(WeightTiles, RandomTilesMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) checkTile(gpu(), randomTile(6000 + std::uint64_t(s), 180), stats);
  stats.report("weight tiles");
}

TEST_F(WeightTiles, LargePixelsSplitAcrossDispatches) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.tile_entries_per_dispatch = 64;
  gpu::VulkanBackend split(backend_->sharedContext(), o);
  Stats stats;
  for (int s = 0; s < 20; ++s) {
    TileCase c = randomTile(7000 + std::uint64_t(s), 300);
    c.out = TileSize{3, 5};
    checkTile(split, c, stats);
  }
  // One pixel over 1500 × 1500 entries: past lavapipe's loop limit in one dispatch.
  Rng rng(11);
  TileCase c;
  c.kernel.kind = WeightKernel::Kind::Linear;
  c.kernel.a = std::make_shared<Matrix>(rng.gaussian(1500, 32));
  c.kernel.b = std::make_shared<Matrix>(rng.gaussian(1500, 32));
  c.kernel.row_term = Vector::Ones(1500);
  c.rows = {0, 1500}, c.cols = {0, 1500}, c.out = {1, 2}, c.pooling = Pooling::Mean;
  c.what = "1500×1500 into 1×2 pixels";
  checkTile(gpu(), c, stats);
  if (ctx().limits().max_loop_iterations > 0) {
    EXPECT_GT(gpu().lastSplitDispatches(), 1);
  }
  stats.report("weight tiles, split");
}

TEST_F(WeightTiles, PixelsTooLargeToIndexAreComputedFinerAndPooledDown) {
  // The kernel indexes a pixel's entries in 32 bits; past that (a limit lowered here to 1000 entries) the
  // tile is computed twice as fine, as often as needed, and pooled down: same values as in one go.
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.tile_pixel_entries_limit = 1000;
  gpu::VulkanBackend nested(backend_->sharedContext(), o);
  Stats stats;
  for (int s = 0; s < 12; ++s) {
    TileCase c = randomTile(7500 + std::uint64_t(s), 300);
    c.out = TileSize{1 + s % 3, 2 + s % 4};
    checkTile(nested, c, stats);
  }
  stats.report("weight tiles, nested");
}

TEST_F(WeightTiles, ImpliedWeightsUseTheBackendWhenGiven) {
  Rng rng(12);
  auto q = std::make_shared<const Matrix>(rng.gaussian(90, 16));
  auto k = std::make_shared<const Matrix>(rng.gaussian(90, 16));
  const AttentionOutput a = CpuBackend(1).denseAttention(*q, *k, *k, {});
  const ImpliedWeights w = denseSoftmaxWeights(q, k, 0.25f, true, a.lse);
  ASSERT_TRUE(w.kernel());
  const Matrix on_gpu = w.tile({0, 90}, {0, 90}, {30, 30}, Pooling::Max, &gpu());
  const Matrix on_cpu = w.tile({0, 90}, {0, 90}, {30, 30}, Pooling::Max);
  EXPECT_LE((on_gpu - on_cpu).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_GT(on_cpu.maxCoeff(), 0.0f);
}

// ---- dense attention with the shared-QK self rule ---------------------------------------------------

using DenseMaskSelf = GpuTest;

TEST_F(DenseMaskSelf, RandomShapesMatchReference) {
  Stats stats;
  for (int s = 0; s < kShapes; ++s) {
    Rng rng(8000 + std::uint64_t(s));
    const Index n = pickN(rng, 150), d = pickDim(rng), dv = between(rng, 1, 128);
    const Index m = rng.uniform() < 0.7 ? n : pickN(rng, 150);
    const Matrix q = rng.gaussian(n, d), v = rng.gaussian(m, dv);
    const Matrix k = m == n && rng.uniform() < 0.5 ? q : rng.gaussian(m, d);  // shared QK
    DenseAttentionOptions o;
    o.mask_self = true;
    o.causal = rng.uniform() < 0.5;
    o.causal_offset = o.causal && rng.uniform() < 0.3 ? between(rng, -2, 2) : 0;
    Matrix bias;
    if (rng.uniform() < 0.2) {  // rows where only the self key is left: it is allowed back
      bias = Matrix::Zero(n, m);
      for (Index i = 0; i < n; ++i)
        if (rng.uniform() < 0.3)
          for (Index j = 0; j < m; ++j)
            if (j != i + o.causal_offset) bias(i, j) = -kInf;
      o.bias = &bias;
    }
    const AttentionOutput got = gpu().denseAttention(q, k, v, o);
    VectorD lse;
    const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), o, &lse);
    std::ostringstream what;
    what << "seed=" << s << " N=" << n << " M=" << m << " d=" << d << " causal=" << o.causal
         << " offset=" << o.causal_offset << " bias=" << (o.bias != nullptr);
    double err = 0;
    EXPECT_TRUE(matchesReference(got.out, ref, {5e-5, 5e-5}, &err)) << what.str();
    EXPECT_TRUE(matchesReference(toColumn(got.lse), toColumn(lse), {5e-5, 5e-5}, &err)) << what.str() << " (lse)";
    ++stats.cases;
    stats.worst = std::max(stats.worst, err);
  }
  stats.report("dense attention, mask_self");
}

}  // namespace
}  // namespace attn::test

namespace attn::test {
namespace {

// A forced small memory budget: every primitive refuses with a UserError that names the budget,
// leaks nothing, and works again once the budget is restored.
using MemoryLimit = GpuTest;

TEST_F(MemoryLimit, EveryPrimitiveRefusesClearlyAndRecovers) {
  Rng rng(14);
  const Index n = 300, d = 64;
  const Matrix q = rng.gaussian(n, d), k = rng.gaussian(n, d), v = rng.gaussian(n, d);
  const Matrix omega = rng.gaussian(128, d), rot = rng.gaussian(d, 16), centroids = rng.gaussian(32, d);
  Pattern band;
  band.rows = band.cols = n;
  band.components = {"window"};
  band.row_ptr.push_back(0);
  for (Index i = 0; i < n; ++i) {
    for (Index j = std::max<Index>(0, i - 8); j < std::min(n, i + 8); ++j) {
      band.col.push_back(std::int32_t(j));
      band.component.push_back(0);
    }
    band.row_ptr.push_back(Index(band.col.size()));
  }
  WeightKernel kernel;
  kernel.a = std::make_shared<Matrix>(q);
  kernel.b = std::make_shared<Matrix>(k);
  kernel.row_term = Vector::Zero(n);
  const Matrix phi = q.cwiseAbs();
  const FeatureMapOptions favor{FeatureMap::PositiveRandom, &omega, 0.35f, FeatureShift::PerRow};
  const std::vector<std::pair<const char*, std::function<void()>>> calls = {
      {"sparse", [&] { gpu().sparseAttention(q, k, v, band, 0, nullptr); }},
      {"feature map", [&] { gpu().featureMap(q, favor); }},
      {"linear", [&] { gpu().linearAttention(phi, phi, v, true); }},
      {"hash", [&] { gpu().hashRotations(q, rot); }},
      {"centroid", [&] { gpu().nearestCentroid(q, centroids); }},
      {"tile", [&] { gpu().weightTile(kernel, {0, n}, {0, n}, {100, 100}, Pooling::Max); }},
      {"dense, mask_self", [&] {
         DenseAttentionOptions o;
         o.mask_self = true;
         gpu().denseAttention(q, q, v, o);
       }}};
  for (const auto& [name, call] : calls) {
    ctx().setMemoryBudget(16 * 1024);
    try {
      call();
      ADD_FAILURE() << name << ": expected UserError";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("budget"), std::string::npos) << name << ": " << e.what();
    }
    EXPECT_EQ(ctx().memoryInUse(), 0) << name;
    ctx().setMemoryBudget(0);
    EXPECT_NO_THROW(call()) << name;
  }
}

}  // namespace
}  // namespace attn::test
