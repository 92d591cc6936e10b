// CpuBackend::denseAttention against the float64 reference, and its defined behaviour on edge cases.
#include <cmath>
#include <limits>

#include "test_util.h"

namespace attn {
namespace {

using test::refAttention;
using test::relDiff;
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(DenseAttention, MatchesDoubleReferenceOnRandomShapes) {
  CpuBackend cpu(2);
  Rng rng(7);
  for (int trial = 0; trial < 120; ++trial) {
    const Index n = 1 + Index(rng.below(300)), m = 1 + Index(rng.below(300));
    const Index d = std::vector<Index>{1, 3, 16, 32, 64, 128}[rng.below(6)];
    const Index dv = 1 + Index(rng.below(70));
    const bool causal = rng.below(2) == 1;
    const Matrix q = rng.gaussian(n, d, 1.5), k = rng.gaussian(m, d, 1.5), v = rng.gaussian(m, dv);
    DenseAttentionOptions o;
    o.causal = causal;
    VectorD lse_ref;
    const MatrixD ref = refAttention(q, k, v, o, &lse_ref);
    const AttentionOutput got = cpu.denseAttention(q, k, v, o);
    ASSERT_FALSE(got.out.hasNaN());
    ASSERT_LT(relDiff(got.out, ref), 2e-6) << "n=" << n << " m=" << m << " d=" << d << " causal=" << causal;
    for (Index i = 0; i < n; ++i) {
      if (std::isinf(lse_ref(i))) {
        EXPECT_EQ(got.lse(i), float(lse_ref(i)));
      } else {
        EXPECT_NEAR(got.lse(i), lse_ref(i), 1e-4 * std::max(1.0, std::abs(lse_ref(i))));
      }
    }
  }
}

TEST(DenseAttention, AdditiveBiasAndMaskedEntries) {
  CpuBackend cpu(2);
  Rng rng(3);
  const Index n = 77, m = 301, d = 32, dv = 20;
  const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
  Matrix bias = rng.gaussian(n, m);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < m; ++j)
      if ((i + j) % 3 == 0) bias(i, j) = -kInf;
  DenseAttentionOptions o;
  o.bias = &bias;
  EXPECT_LT(relDiff(cpu.denseAttention(q, k, v, o).out, refAttention(q, k, v, o)), 2e-6);
}

TEST(DenseAttention, FullyMaskedRowIsZeroWithMinusInfinityLse) {
  CpuBackend cpu(1);
  Rng rng(4);
  const Matrix q = rng.gaussian(5, 8), k = rng.gaussian(6, 8), v = rng.gaussian(6, 3);
  Matrix bias = Matrix::Zero(5, 6);
  bias.row(2).setConstant(-kInf);
  DenseAttentionOptions o;
  o.bias = &bias;
  const AttentionOutput a = cpu.denseAttention(q, k, v, o);
  EXPECT_TRUE(a.out.row(2).isZero(0));
  EXPECT_EQ(a.lse(2), -kInf);
  EXPECT_FALSE(a.out.hasNaN());
  // Causal attention with a negative offset leaves the first rows with no visible key.
  DenseAttentionOptions c;
  c.causal = true;
  c.causal_offset = -2;
  const AttentionOutput b = cpu.denseAttention(q, k, v, c);
  EXPECT_TRUE(b.out.topRows(2).isZero(0));
  EXPECT_LT(relDiff(b.out, refAttention(q, k, v, c)), 2e-6);
}

TEST(DenseAttention, NaNPropagatesToItsRowOnly) {
  CpuBackend cpu(1);
  Rng rng(5);
  Matrix q = rng.gaussian(4, 8);
  const Matrix k = rng.gaussian(9, 8), v = rng.gaussian(9, 2);
  q(1, 3) = std::numeric_limits<float>::quiet_NaN();
  const AttentionOutput a = cpu.denseAttention(q, k, v, {});
  EXPECT_TRUE(a.out.row(1).array().isNaN().all());
  EXPECT_TRUE(std::isnan(a.lse(1)));
  EXPECT_FALSE(a.out.row(0).hasNaN());
  EXPECT_FALSE(a.out.row(2).hasNaN());
}

TEST(DenseAttention, PositiveInfinityLogitsAverageTheirValues) {
  CpuBackend cpu(1);
  const Matrix q = Matrix::Ones(1, 2), k = Matrix::Zero(3, 2), v = (Matrix(3, 1) << 1, 4, 10).finished();
  Matrix bias = Matrix::Zero(1, 3);
  bias(0, 0) = kInf;
  bias(0, 2) = kInf;
  DenseAttentionOptions o;
  o.bias = &bias;
  const AttentionOutput a = cpu.denseAttention(q, k, v, o);
  EXPECT_FLOAT_EQ(a.out(0, 0), 5.5f);
  EXPECT_EQ(a.lse(0), kInf);
}

TEST(DenseAttention, HugeLogitsStayFinite) {
  CpuBackend cpu(1);
  // q·k/√d ≈ 1e38 overflows float in the product: the row is recomputed in double.
  Matrix q(2, 1), k(3, 1);
  q << 1e19f, -1e19f;
  k << 1e19f, 0.5e19f, -1e19f;
  const Matrix v = (Matrix(3, 2) << 1, 2, 3, 4, 5, 6).finished();
  const AttentionOutput a = cpu.denseAttention(q, k, v, {});
  EXPECT_FALSE(a.out.hasNaN());
  EXPECT_NEAR(a.out(0, 0), 1.0f, 1e-6);  // all weight on the largest logit
  EXPECT_NEAR(a.out(1, 0), 5.0f, 1e-6);
  const MatrixD ref = refAttention(q, k, v, {});
  EXPECT_LT(relDiff(a.out, ref), 1e-6);
  // Logits near ±FLT_MAX through the bias.
  Matrix bias(1, 3);
  bias << std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 0;
  DenseAttentionOptions o;
  o.bias = &bias;
  const AttentionOutput b = cpu.denseAttention(Matrix::Zero(1, 1), Matrix::Zero(3, 1), v, o);
  EXPECT_NEAR(b.out(0, 1), 2.0f, 1e-6);
}

TEST(DenseAttention, SingleToken) {
  CpuBackend cpu(1);
  const Matrix q = Matrix::Constant(1, 4, 0.3f), k = Matrix::Constant(1, 4, -2.f), v = Matrix::Constant(1, 3, 7.f);
  const AttentionOutput a = cpu.denseAttention(q, k, v, {});
  EXPECT_TRUE(a.out.isApproxToConstant(7.f));
}

TEST(DenseAttention, RejectsMismatchedShapes) {
  CpuBackend cpu(1);
  EXPECT_THROW(cpu.denseAttention(Matrix::Zero(3, 4), Matrix::Zero(3, 5), Matrix::Zero(3, 2), {}), UserError);
  EXPECT_THROW(cpu.denseAttention(Matrix::Zero(3, 4), Matrix::Zero(3, 4), Matrix::Zero(2, 2), {}), UserError);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

TEST(DenseAttention, MaskSelfHidesTheDiagonalUnlessItIsTheOnlyKey) {
  CpuBackend cpu(2);
  Rng rng(21);
  for (bool causal : {false, true}) {
    const Index n = 150;
    const Matrix q = rng.gaussian(n, 16, 2), v = rng.gaussian(n, 4);
    DenseAttentionOptions o;
    o.causal = causal;
    o.mask_self = true;
    const AttentionOutput got = cpu.denseAttention(q, q, v, o);
    // Reference: −inf on the diagonal, except row 0 when causal (its only key is itself).
    Matrix bias = Matrix::Zero(n, n);
    for (Index i = 0; i < n; ++i)
      if (!(causal && i == 0)) bias(i, i) = -std::numeric_limits<float>::infinity();
    DenseAttentionOptions b;
    b.causal = causal;
    b.bias = &bias;
    const MatrixD ref = test::refAttention(q, q, v, b);
    EXPECT_LT(test::relDiff(got.out, ref), 2e-6) << causal;
    EXPECT_LT(test::relDiff(got.out, test::refAttention(q, q, v, o)), 2e-6) << causal;
    if (causal) {
      EXPECT_TRUE(got.out.row(0).isApprox(v.row(0)));
    }
  }
  // A single token keeps itself.
  DenseAttentionOptions o;
  o.mask_self = true;
  EXPECT_TRUE(cpu.denseAttention(Matrix::Ones(1, 3), Matrix::Ones(1, 3), Matrix::Constant(1, 2, 4.f), o).out.isApproxToConstant(4.f));
}

}  // namespace
}  // namespace attn
