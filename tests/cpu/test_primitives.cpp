// The other CpuBackend primitives: sparse, linear (causal = recurrence), hashing, assignment.
#include <cmath>
#include <limits>

#include "attention/mechanisms/common.h"
#include "test_util.h"

namespace attn {
namespace {

Pattern randomPattern(Rng& rng, Index n, Index m, double density) {
  std::vector<std::vector<std::int32_t>> cols(static_cast<size_t>(n));
  std::vector<std::vector<std::uint8_t>> comps(static_cast<size_t>(n));
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < m; ++j)
      if (rng.uniform() < density) {
        cols[size_t(i)].push_back(std::int32_t(j));
        comps[size_t(i)].push_back(0);
      }
  return mech::patternFromRows(n, m, cols, comps, {"random"});
}

/// Sparse attention over `p` with the entry biases bias_of(i, e) against dense attention in double with
/// those biases on the pattern and −inf elsewhere: outputs, log-normalisers, and zero rows where
/// every entry is masked.
template <class BiasFn>
void expectSparseMatchesDense(CpuBackend& cpu, const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& p,
                              BiasFn bias_of, const std::string& what) {
  const Index n = q.rows();
  Matrix bias = Matrix::Constant(n, k.rows(), -std::numeric_limits<float>::infinity());
  std::vector<float> entry_bias;
  for (Index i = 0; i < n; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
      const float b = bias_of(i, e);
      entry_bias.push_back(b);
      bias(i, p.col[size_t(e)]) = b;
    }
  DenseAttentionOptions o;
  o.bias = &bias;
  VectorD lse;
  const MatrixD ref = test::refAttention(q, k, v, o, &lse);
  const AttentionOutput got = cpu.sparseAttention(q, k, v, p, 0, &entry_bias);
  EXPECT_LT(test::relDiff(got.out, ref), 2e-6) << what;
  for (Index i = 0; i < n; ++i) {
    if (std::isinf(lse(i))) {
      EXPECT_EQ(got.lse(i), float(lse(i))) << what << ", row " << i;
      if (lse(i) < 0) {
        EXPECT_EQ(got.out.row(i).cwiseAbs().maxCoeff(), 0.0f) << what << ", row " << i;
      }
    } else {
      EXPECT_NEAR(got.lse(i), lse(i), 1e-4) << what << ", row " << i;
    }
  }
}

TEST(SparseAttention, EqualsDenseAttentionWithMinusInfinityOutsideThePattern) {
  CpuBackend cpu(2);
  Rng rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    const Index n = 1 + Index(rng.below(150)), m = 1 + Index(rng.below(150)), d = 16, dv = 5;
    const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
    const Pattern p = randomPattern(rng, n, m, 0.2);
    expectSparseMatchesDense(cpu, q, k, v, p, [&](Index, Index) { return float(rng.normal()); },
                             "trial " + std::to_string(trial));
  }
}

TEST(SparseAttention, RowsSharingKeysRunsAndMaskedKeysEqualDenseAttention) {
  // Runs of rows with the same keys (one GEMM per run), as a contiguous run of keys or scattered; runs
  // that cross the 64-row query blocks; biases of −inf on some entries (weight exactly 0) and rows whose
  // every entry is −inf (zero output, lse −inf); a +inf bias (the row in double).
  CpuBackend cpu(2);
  Rng rng(23);
  const float inf = std::numeric_limits<float>::infinity();
  for (int trial = 0; trial < 12; ++trial) {
    const Index n = 100 + Index(rng.below(200)), m = 50 + Index(rng.below(150)), d = 16, dv = 7;
    const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
    std::vector<std::vector<std::int32_t>> cols(static_cast<size_t>(n));
    std::vector<std::vector<std::uint8_t>> comps(static_cast<size_t>(n));
    std::vector<std::int32_t> keys;
    for (Index i = 0; i < n; ++i) {
      if (i == 0 || rng.uniform() < 0.04) {  // a new run of rows
        keys.clear();
        if (rng.uniform() < 0.5) {
          const Index a = Index(rng.below(std::uint64_t(m))), len = 1 + Index(rng.below(std::uint64_t(m - a)));
          for (Index j = a; j < a + len; ++j) keys.push_back(std::int32_t(j));
        } else {
          for (Index j = 0; j < m; ++j)
            if (rng.uniform() < 0.3) keys.push_back(std::int32_t(j));
        }
      }
      cols[size_t(i)] = keys;
      comps[size_t(i)].assign(keys.size(), 0);
    }
    const Pattern p = mech::patternFromRows(n, m, cols, comps, {"runs"});
    std::vector<char> all_masked(static_cast<size_t>(n));
    for (char& a : all_masked) a = rng.uniform() < 0.03;
    Index special_row = -1;
    expectSparseMatchesDense(
        cpu, q, k, v, p,
        [&](Index i, Index) {
          if (special_row < 0 && trial % 2 == 0 && i > 70 && !all_masked[size_t(i)]) {
            special_row = i;
            return inf;
          }
          return all_masked[size_t(i)] || rng.uniform() < 0.1 ? -inf : float(rng.normal());
        },
        "trial " + std::to_string(trial));
  }
}

TEST(LinearAttention, CausalEqualsTheRecurrence) {
  CpuBackend cpu(1);
  Rng rng(2);
  for (Index n : {1, 7, 64, 65, 200}) {
    const Matrix fq = cpu.featureMap(rng.gaussian(n, 12), FeatureMap::EluPlusOne);
    const Matrix fk = cpu.featureMap(rng.gaussian(n, 12), FeatureMap::EluPlusOne);
    const Matrix v = rng.gaussian(n, 9);
    const Matrix got = cpu.linearAttention(fq, fk, v, true);
    // S_i = S_{i−1} + φk_i v_iᵀ, z_i = z_{i−1} + φk_i, O_i = φq_iᵀS_i / φq_iᵀz_i — in double.
    MatrixD s = MatrixD::Zero(12, 9);
    VectorD z = VectorD::Zero(12);
    for (Index i = 0; i < n; ++i) {
      s += fk.row(i).transpose().cast<double>() * v.row(i).cast<double>();
      z += fk.row(i).transpose().cast<double>();
      const Eigen::RowVectorXd o = (fq.row(i).cast<double>() * s) / fq.row(i).cast<double>().dot(z);
      EXPECT_LT((got.row(i).cast<double>() - o).norm() / o.norm(), 1e-5) << "n=" << n << " i=" << i;
    }
  }
}

TEST(LinearAttention, NonCausalMatchesTheNormalisedKernelMatrix) {
  CpuBackend cpu(1);
  Rng rng(9);
  const Matrix fq = cpu.featureMap(rng.gaussian(40, 8), FeatureMap::EluPlusOne);
  const Matrix fk = cpu.featureMap(rng.gaussian(50, 8), FeatureMap::EluPlusOne);
  const Matrix v = rng.gaussian(50, 3);
  MatrixD a = fq.cast<double>() * fk.cast<double>().transpose();
  for (Index i = 0; i < a.rows(); ++i) a.row(i) /= a.row(i).sum();
  EXPECT_LT(test::relDiff(cpu.linearAttention(fq, fk, v, false), a * v.cast<double>()), 1e-6);
}

TEST(FeatureMap, EluPlusOneIsPositive) {
  CpuBackend cpu(1);
  const Matrix x = (Matrix(1, 4) << -50, -1, 0, 2).finished();
  const Matrix f = cpu.featureMap(x, FeatureMap::EluPlusOne);
  EXPECT_GT(f.minCoeff(), 0);
  EXPECT_FLOAT_EQ(f(0, 1), std::exp(-1.f));
  EXPECT_FLOAT_EQ(f(0, 2), 1.f);
  EXPECT_FLOAT_EQ(f(0, 3), 3.f);
}

// Performer's claim: random features estimate the softmax kernel, E[φ(q)·φ(k)] = exp(q·k), for both
// positive (FAVOR+) and trigonometric (FAVOR) features; with many features the estimate is close.
TEST(FeatureMap, RandomFeaturesEstimateTheSoftmaxKernel) {
  CpuBackend cpu(1);
  Rng rng(21);
  const Index d = 8, m = 40000;
  const Matrix x = rng.gaussian(6, d, 0.25);  // ‖q+k‖² ≲ 2: FAVOR+ relative std ≈ √((e²−1)/m) ≈ 1.3%
  const Matrix omega = rng.gaussian(m, d);
  const MatrixD exact = (x.cast<double>() * x.cast<double>().transpose()).array().exp();
  for (FeatureMap map : {FeatureMap::PositiveRandom, FeatureMap::Trigonometric}) {
    const Matrix phi = cpu.featureMap(x, FeatureMapOptions{map, &omega});
    EXPECT_EQ(phi.cols(), featureCount(FeatureMapOptions{map, &omega}, d));
    const MatrixD estimate = phi.cast<double>() * phi.cast<double>().transpose();
    EXPECT_LT(test::relDiff(estimate.cast<float>(), exact), 0.05) << "map " << int(map);
  }
  // Positive features are positive; trigonometric ones are not.
  EXPECT_GT(cpu.featureMap(x, FeatureMapOptions{FeatureMap::PositiveRandom, &omega}).minCoeff(), 0.0f);
  EXPECT_LT(cpu.featureMap(x, FeatureMapOptions{FeatureMap::Trigonometric, &omega}).minCoeff(), 0.0f);
}

// The max shift of positive features changes φ by a constant factor per row (PerRow) or overall
// (Global); normalised linear attention is unchanged, and no feature overflows.
TEST(FeatureMap, StabilisingShiftsLeaveLinearAttentionUnchanged) {
  CpuBackend cpu(1);
  Rng rng(22);
  const Matrix q = rng.gaussian(30, 16, 3.0), k = rng.gaussian(30, 16, 3.0), v = rng.gaussian(30, 4);
  const Matrix omega = rng.gaussian(64, 16);
  const FeatureMapOptions plain{FeatureMap::PositiveRandom, &omega, 0.5f, FeatureShift::None};
  const Matrix base = cpu.linearAttention(cpu.featureMap(q, plain), cpu.featureMap(k, plain), v, false);
  FeatureMapOptions fq = plain, fk = plain;
  fq.shift = FeatureShift::PerRow;
  fk.shift = FeatureShift::Global;
  const Matrix pq = cpu.featureMap(q, fq), pk = cpu.featureMap(k, fk);
  EXPECT_LE(pq.maxCoeff(), 1.0f / 8.0f + 1e-6f);  // exp(0)/√64 at the row maximum
  EXPECT_LT(test::relDiff(cpu.linearAttention(pq, pk, v, false), base.cast<double>()), 1e-5);
  EXPECT_THROW(cpu.featureMap(q, FeatureMapOptions{FeatureMap::PositiveRandom}), UserError);
}

TEST(Hashing, ArgmaxOverRotationAndItsNegation) {
  CpuBackend cpu(1);
  Matrix x(3, 2), r(2, 2);
  x << 1, 0, -1, 0, 0, -2;
  r << 1, 0, 0, 1;  // identity: buckets 0,1 = +x, +y; 2,3 = −x, −y
  const auto b = cpu.hashRotations(x, r);
  EXPECT_EQ(b, (std::vector<std::int32_t>{0, 2, 3}));
}

TEST(Assignment, NearestCentroid) {
  CpuBackend cpu(1);
  Matrix x(3, 2), c(2, 2);
  x << 0, 0, 10, 10, 9, 8;
  c << 1, 1, 10, 9;
  EXPECT_EQ(cpu.nearestCentroid(x, c), (std::vector<std::int32_t>{0, 1, 1}));
}

}  // namespace
}  // namespace attn
