// VulkanBackend::matmul against a float64 product on random shapes (poisoned outputs, NaN never
// passes). Tolerance per element: the classic bound of a k-term fp32 dot product,
// |c − c_ref| ≤ k·ε·(|A|·|B|)_ij with ε = FLT_EPSILON (twice the unit roundoff).
#include <array>
#include <cfloat>
#include <cmath>
#include <limits>

#include "gpu_test_util.h"

namespace attn::test {
namespace {

class Matmul : public GpuTest {
 protected:
  /// Checks gpu().matmul(a, b, transpose_b) element by element. Returns the worst error / bound ratio.
  double check(const Matrix& a, const Matrix& b, bool transpose_b, const std::string& what,
               gpu::VulkanBackend* backend = nullptr) {
    const Matrix c = (backend ? *backend : gpu()).matmul(a, b, transpose_b);
    const MatrixD ad = a.cast<double>();
    const MatrixD bd = transpose_b ? MatrixD(b.cast<double>().transpose()) : MatrixD(b.cast<double>());
    const MatrixD ref = ad * bd;
    const MatrixD bound = ad.cwiseAbs() * bd.cwiseAbs();
    EXPECT_EQ(c.rows(), ref.rows()) << what;
    EXPECT_EQ(c.cols(), ref.cols()) << what;
    if (c.rows() != ref.rows() || c.cols() != ref.cols()) return 0;
    const double k = static_cast<double>(a.cols());
    double worst = 0;
    Index bad = 0;
    for (Index i = 0; i < ref.rows(); ++i)
      for (Index j = 0; j < ref.cols(); ++j) {
        const double tol = k * FLT_EPSILON * bound(i, j) + 1e-30;
        const double err = std::abs(double(c(i, j)) - ref(i, j));
        if (!(err <= tol)) {  // NaN fails
          if (bad < 3) ADD_FAILURE() << what << " (" << i << "," << j << "): got " << c(i, j) << ", want " << ref(i, j);
          ++bad;
        }
        worst = std::max(worst, err / tol);
      }
    EXPECT_EQ(bad, 0) << what;
    return worst;
  }
};

TEST_F(Matmul, RandomShapesMatchReference) {
  Rng rng(21);
  double worst = 0;
  int cases = 0;
  for (int i = 0; i < 200; ++i) {
    const Index n = 1 + Index(rng.below(300)), k = 1 + Index(rng.below(300)), m = 1 + Index(rng.below(300));
    const bool transpose = i % 2 == 1;
    const Matrix a = rng.gaussian(n, k);
    const Matrix b = transpose ? rng.gaussian(m, k) : rng.gaussian(k, m);
    worst = std::max(worst, check(a, b, transpose,
                                  std::to_string(n) + "×" + std::to_string(k) + "×" + std::to_string(m) +
                                      (transpose ? " (Bᵀ)" : "")));
    ++cases;
  }
  std::printf("[ matmul ] %d shapes, worst error / bound %.3g\n", cases, worst);
}

TEST_F(Matmul, EdgeShapes) {
  Rng rng(22);
  for (auto [n, k, m] : std::initializer_list<std::array<Index, 3>>{
           {1, 1, 1}, {1, 300, 1}, {17, 33, 5}, {16, 16, 16}, {15, 17, 31}, {300, 1, 300}, {2, 256, 129}}) {
    check(rng.gaussian(n, k), rng.gaussian(k, m), false, "edge");
    check(rng.gaussian(n, k), rng.gaussian(m, k), true, "edge Bᵀ");
  }
  // k = 0: zeros; n = 0 or m = 0: empty.
  const Matrix z = gpu().matmul(Matrix(3, 0), Matrix(0, 4), false);
  EXPECT_TRUE(z.rows() == 3 && z.cols() == 4 && (z.array() == 0).all());
  EXPECT_EQ(gpu().matmul(Matrix(0, 5), rng.gaussian(5, 4), false).rows(), 0);
  EXPECT_EQ(gpu().matmul(rng.gaussian(3, 5), Matrix(5, 0), false).cols(), 0);
}

TEST_F(Matmul, NonFiniteValuesPropagateLocally) {
  Rng rng(23);
  Matrix a = rng.gaussian(20, 24);
  const Matrix b = rng.gaussian(24, 18);
  a(3, 7) = std::numeric_limits<float>::quiet_NaN();
  a(9, 2) = std::numeric_limits<float>::infinity();
  const Matrix c = gpu().matmul(a, b, false);
  EXPECT_TRUE(c.row(3).array().isNaN().all());
  for (Index j = 0; j < c.cols(); ++j) EXPECT_EQ(c(9, j), b(2, j) > 0 ? INFINITY : -INFINITY);
  for (Index i : {0, 4, 19}) EXPECT_TRUE(c.row(i).array().isFinite().all()) << i;
}

TEST_F(Matmul, InnerDimensionSplitAcrossDispatches) {
  // 16 or 48 inner entries per dispatch, accumulating into C: the hand-over on any device.
  Rng rng(25);
  for (Index depth : {16, 48}) {
    gpu::VulkanBackendOptions options = testBackendOptions();
    options.matmul_depth_per_dispatch = depth;
    gpu::VulkanBackend split(gpu().sharedContext(), options);
    for (auto [n, k, m] : std::initializer_list<std::array<Index, 3>>{{17, 300, 33}, {40, 47, 16}, {5, 16, 9}}) {
      const Matrix a = rng.gaussian(n, k), b = rng.gaussian(k, m), bt = rng.gaussian(m, k);
      const std::string what = std::to_string(n) + "×" + std::to_string(k) + "×" + std::to_string(m) + ", " +
                               std::to_string(depth) + " per dispatch";
      check(a, b, false, what, &split);
      check(a, bt, true, what + " (Bᵀ)", &split);
      // The same sums in the same order as one dispatch.
      EXPECT_EQ(split.matmul(a, b, false), gpu().matmul(a, b, false)) << what;
    }
  }
}

TEST_F(Matmul, InnerDimensionBeyondTheLoopLimit) {
  // lavapipe ends the kernel's loops after 65535 iterations (vk::DeviceLimits::max_loop_iterations):
  // one dispatch computed only the first 65535 16-deep tiles of an inner dimension above 1048560.
  const Index per_dispatch = gpu::VulkanBackend::matmulDepthPerDispatch(ctx().limits());
  if (ctx().limits().max_loop_iterations == 0) {
    EXPECT_EQ(per_dispatch, 0);
    GTEST_SKIP() << "no loop-iteration limit on " << ctx().description().name;
  }
  EXPECT_GE(per_dispatch, 16);
  EXPECT_LT(per_dispatch * 2, Index(ctx().limits().max_loop_iterations) * 16);
  Rng rng(26);
  const Index k = Index(ctx().limits().max_loop_iterations) * 16 + 37;
  check(rng.gaussian(2, k), rng.gaussian(3, k), true, "k = " + std::to_string(k) + " (Bᵀ)");
}

TEST_F(Matmul, MismatchAndBudgetAreUserErrors) {
  Rng rng(24);
  EXPECT_THROW(gpu().matmul(rng.gaussian(3, 4), rng.gaussian(5, 6), false), UserError);
  EXPECT_THROW(gpu().matmul(rng.gaussian(3, 4), rng.gaussian(6, 5), true), UserError);
  ctx().setMemoryBudget(16 * 1024);
  EXPECT_THROW(gpu().matmul(rng.gaussian(100, 100), rng.gaussian(100, 100), false), UserError);
  EXPECT_EQ(ctx().memoryInUse(), 0);
}

// The dispatch plans of the weight-tile and sparse kernels, as arithmetic (no device): on a GPU without a
// loop limit (every real one) one dispatch covers the largest pixel or row; with lavapipe's limit the
// dispatches tile the entries in order and each stays within half of it.
TEST(DispatchPlan, WithoutALoopLimitOneDispatchTakesEverything) {
  vk::DeviceLimits none;
  none.max_loop_iterations = 0;
  const Index largest = (Index(1) << 31) - 1;  // the largest pixel or row the kernels accept
  for (Index r : {0, 1, 4, 11, 12, 64, 1024}) {
    const Index per = gpu::VulkanBackend::tileEntriesPerDispatch(r, none);
    EXPECT_GE(per, largest) << "rank " << r;
    const auto parts = gpu::VulkanBackend::splitEntries(largest, per, 64);
    ASSERT_EQ(parts.size(), 1u) << "rank " << r;
    EXPECT_EQ(parts[0].begin, 0u);
    EXPECT_GE(Index(parts[0].end), largest) << "rank " << r;
    EXPECT_EQ(parts[0].phase, 3u);  // first and last
  }
  for (Index d : {1, 64, 256}) {
    const Index per = gpu::VulkanBackend::sparseEntriesPerDispatch(d, none);
    EXPECT_GE(per, largest) << "d " << d;
    const auto parts = gpu::VulkanBackend::splitEntries(100000, per, 64);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_GE(parts[0].end, 100000u);
  }
}

TEST(DispatchPlan, WithALoopLimitDispatchesTileTheEntriesInOrder) {
  vk::DeviceLimits lavapipe;
  lavapipe.max_loop_iterations = 65535;
  for (Index r : {1, 16, 64}) {
    const Index per = gpu::VulkanBackend::tileEntriesPerDispatch(r, lavapipe);
    EXPECT_EQ(per % 64, 0);
    EXPECT_LE(per / 64 * (r + 4), 65535 / 2) << "an invocation's dot products stay within half the limit";
    const Index total = 100000;
    const auto parts = gpu::VulkanBackend::splitEntries(total, per, 64);
    ASSERT_EQ(Index(parts.size()), (total + per - 1) / per);
    std::uint32_t next = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      EXPECT_EQ(parts[i].begin, next);
      EXPECT_GT(parts[i].end, parts[i].begin);
      EXPECT_EQ(parts[i].phase, (i == 0 ? 1u : 0u) | (i + 1 == parts.size() ? 2u : 0u));
      next = parts[i].end;
    }
    EXPECT_GE(Index(next), total);
    EXPECT_LT(Index(next), total + 64);
  }
  const auto none = gpu::VulkanBackend::splitEntries(0, 640, 64);  // nothing to walk: one dispatch still ends it
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].phase, 3u);
}

}  // namespace
}  // namespace attn::test
