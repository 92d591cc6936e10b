// VulkanBackend::denseAttention against attn::referenceAttention (float64) on random shapes and on
// the defined special rows (backend.h). Outputs are poisoned with NaN before every kernel, so a row
// the kernel forgot to write fails; NaN never passes a comparison.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "gpu_test_util.h"

namespace attn::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// fp32 kernel vs float64 reference, |got − ref| ≤ atol + rtol·|ref| per element. Logits here reach
// |x| ≈ 60 (d = 256, σ = 2, scale 0.3); the worst errors measured on lavapipe are ≈ 1e-5 (output)
// and ≈ 2e-5 (lse, |lse| up to ≈ 100) in the d ≤ 256 shapes, ≈ 1e-5 for d ≤ 128, so these leave a
// margin of 2.5× or more while any indexing or softmax bug shows as errors of order 0.1–1.
constexpr Tolerance kOutTol{5e-5, 5e-5};
constexpr Tolerance kLseTol{5e-5, 5e-5};

struct Case {
  Index n = 1, m = 1, d = 16, dv = 16;
  bool causal = false;
  Index offset = 0;
  bool bias = false;
  double sigma = 1.0;  // of Q and K entries
  float scale = 0;     // 0: 1/√d
  std::uint64_t seed = 1;
  std::string str() const {
    std::ostringstream s;
    s << "N=" << n << " M=" << m << " d=" << d << " dv=" << dv << " causal=" << causal << " offset=" << offset
      << " bias=" << bias << " sigma=" << sigma << " scale=" << scale << " seed=" << seed;
    return s.str();
  }
};

class DenseAttention : public GpuTest {
 protected:
  struct Stats {
    int cases = 0;
    double out_err = 0, lse_err = 0;
  };

  /// Checks `backend` (default: the shared one) against the float64 reference; returns its output.
  AttentionOutput check(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& o,
                        const std::string& what, Stats* stats = nullptr, gpu::VulkanBackend* backend = nullptr) {
    AttentionOutput got = (backend ? *backend : gpu()).denseAttention(q, k, v, o);
    VectorD lse;
    const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), o, &lse);
    double out_err = 0, lse_err = 0;
    EXPECT_TRUE(matchesReference(got.out, ref, kOutTol, &out_err)) << what;
    EXPECT_TRUE(matchesReference(toColumn(got.lse), toColumn(lse), kLseTol, &lse_err)) << what << " (lse)";
    if (stats) {
      ++stats->cases;
      stats->out_err = std::max(stats->out_err, out_err);
      stats->lse_err = std::max(stats->lse_err, lse_err);
    }
    return got;
  }

  void run(const Case& c, Stats& stats) {
    Rng rng(c.seed);
    const Matrix q = rng.gaussian(c.n, c.d, c.sigma);
    const Matrix k = rng.gaussian(c.m, c.d, c.sigma);
    const Matrix v = rng.gaussian(c.m, c.dv);
    Matrix bias;
    DenseAttentionOptions o;
    o.causal = c.causal;
    o.causal_offset = c.offset;
    o.scale = c.scale;
    if (c.bias) {
      bias = rng.gaussian(c.n, c.m, 2.0);
      for (Index i = 0; i < c.n; ++i) {
        const bool masked_row = rng.uniform() < 0.05;  // fully masked rows
        for (Index j = 0; j < c.m; ++j)
          if (masked_row || rng.uniform() < 0.2) bias(i, j) = -kInf;
      }
      o.bias = &bias;
    }
    check(q, k, v, o, c.str(), &stats);
  }

  static Index between(Rng& rng, Index lo, Index hi) {
    return lo + static_cast<Index>(rng.below(std::uint64_t(hi - lo + 1)));
  }

  static Case randomCase(Rng& rng, std::uint64_t seed, Index max_n, std::initializer_list<Index> ds) {
    Case c;
    c.seed = seed;
    c.n = between(rng, 1, max_n);
    c.m = rng.uniform() < 0.5 ? c.n : between(rng, 1, max_n);
    c.d = *(ds.begin() + rng.below(ds.size()));
    c.dv = rng.uniform() < 0.5 ? c.d : between(rng, 1, 128);
    const double sigmas[] = {0.5, 1.0, 2.0};
    c.sigma = sigmas[rng.below(3)];
    if (rng.uniform() < 0.2) c.scale = 0.3f;
    return c;
  }

  void report(const char* name, const Stats& s) {
    std::printf("[ %s ] %d shapes, max |err| out %.3g, lse %.3g\n", name, s.cases, s.out_err, s.lse_err);
  }

  /// d = dv = 64 at a long sequence length against the float64 reference (see the section "keys
  /// split across dispatches" below). Where the device limits loop iterations, the keys must have
  /// been split across dispatches.
  void checkLong(Index n, Index m, bool causal, Index offset) {
    Case c;
    c.n = n, c.m = m, c.d = 64, c.dv = 64, c.causal = causal, c.offset = offset;
    c.seed = std::uint64_t(n * 100003 + m);
    Stats stats;
    run(c, stats);
    EXPECT_EQ(gpu().lastFixedRows(), 0) << c.str();
    const Index keys = gpu::VulkanBackend::denseTiling(64, 64, ctx().limits()).keys_per_dispatch;
    const Index visible = causal ? std::clamp<Index>(n + offset, 0, m) : m;
    if (ctx().limits().max_loop_iterations > 0) {
      EXPECT_GT(keys, 0);
      EXPECT_LT(keys, visible) << "the shape no longer needs several dispatches here: enlarge it";
      EXPECT_EQ(gpu().lastDenseDispatches(), (visible + keys - 1) / keys) << c.str();
    } else {
      EXPECT_EQ(gpu().lastDenseDispatches(), 1) << c.str();
    }
    report(c.str().c_str(), stats);
  }
};

TEST_F(DenseAttention, RandomShapesFull) {
  Rng rng(101);
  Stats stats;
  for (int i = 0; i < 60; ++i) run(randomCase(rng, 1000 + i, 300, {16, 32, 64}), stats);
  report("full", stats);
}

TEST_F(DenseAttention, RandomShapesCausal) {
  Rng rng(202);
  Stats stats;
  for (int i = 0; i < 60; ++i) {
    Case c = randomCase(rng, 2000 + i, 300, {16, 32, 64});
    c.causal = true;
    const double u = rng.uniform();
    c.offset = u < 0.4 ? 0 : u < 0.7 ? c.m - c.n : between(rng, -c.n, c.m);  // last rows of a longer sequence, ...
    run(c, stats);
  }
  report("causal", stats);
}

TEST_F(DenseAttention, RandomShapesBiasWithMaskedEntriesAndRows) {
  Rng rng(303);
  Stats stats;
  for (int i = 0; i < 60; ++i) {
    Case c = randomCase(rng, 3000 + i, 300, {16, 32, 64});
    c.bias = true;
    if (rng.uniform() < 0.3) {
      c.causal = true;
      c.offset = c.m - c.n;
    }
    run(c, stats);
  }
  report("bias", stats);
}

TEST_F(DenseAttention, RandomShapesHeadDim128) {
  Rng rng(404);
  Stats stats;
  for (int i = 0; i < 12; ++i) {
    Case c = randomCase(rng, 4000 + i, 160, {128});
    c.dv = rng.uniform() < 0.5 ? 128 : between(rng, 1, 256);
    c.causal = i % 3 == 1;
    c.bias = i % 3 == 2;
    run(c, stats);
  }
  report("d=128", stats);
}

TEST_F(DenseAttention, RandomShapesOddHeadDimsUpTo256) {
  Rng rng(505);
  Stats stats;
  for (int i = 0; i < 12; ++i) {
    Case c = randomCase(rng, 5000 + i, 100, {1});
    c.d = i == 0 ? 256 : between(rng, 1, 256);
    c.dv = i == 0 ? 256 : i == 1 ? 1 : between(rng, 1, 256);
    c.causal = i % 2 == 1;
    run(c, stats);
  }
  report("odd d", stats);
}

TEST_F(DenseAttention, SingleTokenAndTinyShapes) {
  for (auto [n, m] : std::initializer_list<std::pair<Index, Index>>{{1, 1}, {1, 300}, {300, 1}, {2, 3}, {33, 1}}) {
    Case c;
    c.n = n, c.m = m, c.d = 32, c.dv = 24, c.seed = std::uint64_t(n * 1000 + m);
    Stats stats;
    run(c, stats);
    c.causal = true;
    c.offset = m - n;
    run(c, stats);
  }
}

TEST_F(DenseAttention, FullyMaskedRowsGiveZerosAndMinusInfLse) {
  Rng rng(7);
  const Index n = 40, m = 50, d = 16, dv = 8;
  const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
  Matrix bias = Matrix::Zero(n, m);
  for (Index j = 0; j < m; ++j) bias(3, j) = bias(39, j) = -kInf;  // rows 3 and 39 fully masked
  DenseAttentionOptions o;
  o.bias = &bias;
  check(q, k, v, o, "bias rows of −inf");
  AttentionOutput got = gpu().denseAttention(q, k, v, o);
  EXPECT_TRUE((got.out.row(3).array() == 0).all());
  EXPECT_EQ(got.lse(3), -kInf);

  // Causal with a negative offset: the first rows see no key at all.
  DenseAttentionOptions c;
  c.causal = true;
  c.causal_offset = -5;
  check(q, k, v, c, "causal offset −5");
  got = gpu().denseAttention(q, k, v, c);
  for (Index i = 0; i < 5; ++i) {
    EXPECT_TRUE((got.out.row(i).array() == 0).all()) << i;
    EXPECT_EQ(got.lse(i), -kInf) << i;
  }
  // Offset below −N: every row masked. No keys at all (M = 0): every row masked.
  c.causal_offset = -1000;
  check(q, k, v, c, "causal offset −1000");
  check(q, Matrix(0, d), Matrix(0, dv), DenseAttentionOptions{}, "M = 0");
  // N = 0: empty result.
  got = gpu().denseAttention(Matrix(0, d), k, v, DenseAttentionOptions{});
  EXPECT_EQ(got.out.rows(), 0);
  EXPECT_EQ(got.lse.size(), 0);
}

TEST_F(DenseAttention, NaNLogitGivesNaNRowOnly) {
  Rng rng(8);
  const Index n = 70, m = 90, d = 32, dv = 16;
  Matrix q = rng.gaussian(n, d);
  const Matrix k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
  Matrix bias = rng.gaussian(n, m);
  bias(5, 17) = kNaN;   // one NaN logit in row 5
  q(40, 3) = kNaN;      // NaN query: every logit of row 40
  bias(60, 80) = kNaN;  // invisible under causal (80 > 60): must not poison row 60 then
  DenseAttentionOptions o;
  o.bias = &bias;
  check(q, k, v, o, "NaN logits");
  const AttentionOutput got = gpu().denseAttention(q, k, v, o);
  EXPECT_TRUE(got.out.row(5).array().isNaN().all());
  EXPECT_TRUE(std::isnan(got.lse(5)));
  EXPECT_TRUE(got.out.row(40).array().isNaN().all());
  EXPECT_TRUE(std::isnan(got.lse(60)));  // visible without causal
  EXPECT_TRUE(got.out.row(6).array().isFinite().all());
  o.causal = true;
  check(q, k, v, o, "NaN logits, causal");
  const AttentionOutput causal = gpu().denseAttention(q, k, v, o);
  EXPECT_TRUE(causal.out.row(60).array().isFinite().all());
  EXPECT_TRUE(std::isfinite(causal.lse(60)));
}

TEST_F(DenseAttention, PlusInfLogitsAverageTheirValues) {
  Rng rng(9);
  const Index n = 50, m = 77, d = 16, dv = 12;
  const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, dv);
  Matrix bias = rng.gaussian(n, m);
  bias(2, 10) = bias(2, 60) = kInf;  // row 2: mean of v10 and v60, lse +inf
  bias(7, 0) = kInf;                 // row 7: v0
  bias(9, 4) = kInf;                 // row 9: +inf and NaN → NaN
  bias(9, 5) = kNaN;
  bias(11, 30) = kInf;  // row 11: +inf and −inf → still v30
  bias(11, 31) = -kInf;
  DenseAttentionOptions o;
  o.bias = &bias;
  check(q, k, v, o, "+inf logits");
  const AttentionOutput got = gpu().denseAttention(q, k, v, o);
  const Vector mean = (v.row(10) + v.row(60)).transpose() / 2;
  EXPECT_LE((got.out.row(2).transpose() - mean).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_EQ(got.lse(2), kInf);
  EXPECT_EQ(got.out.row(7), v.row(0));
  EXPECT_TRUE(std::isnan(got.lse(9)));
  EXPECT_EQ(got.out.row(11), v.row(30));
  EXPECT_EQ(gpu().lastFixedRows(), 4);
}

TEST_F(DenseAttention, LogitsNearFltMaxAreStable) {
  // q = (1e19, 0, …), k_j = (c_j·1e19, …): logits c_j·1e38 with |c_j| ≤ 3.4, i.e. up to ±FLT_MAX.
  const Index n = 20, m = 40, d = 16, dv = 8;
  Rng rng(10);
  Matrix q = Matrix::Zero(n, d), k = Matrix::Zero(m, d);
  const Matrix v = rng.gaussian(m, dv);
  for (Index i = 0; i < n; ++i) q(i, 0) = 1e19f;
  for (Index j = 0; j < m; ++j) k(j, 0) = static_cast<float>((rng.uniform() * 6.8 - 3.4) * 1e19);
  k(13, 0) = k(29, 0) = 3.4e19f;  // a tie at the top
  DenseAttentionOptions o;
  o.scale = 1.0f;
  check(q, k, v, o, "logits up to ±FLT_MAX");
  // Every logit hugely negative (≈ −3e38): a uniform average with lse ≈ −3e38, not a masked row.
  Matrix kneg = Matrix::Zero(m, d);
  for (Index j = 0; j < m; ++j) kneg(j, 0) = -3.0e19f;
  check(q, kneg, v, o, "all logits ≈ −3e38");
  const AttentionOutput got = gpu().denseAttention(q, kneg, v, o);
  EXPECT_LT(got.lse(0), -1e38f);
  EXPECT_NEAR(got.out(0, 0), v.col(0).mean(), 1e-5);
  // q·k overflows float (4·1e38 > FLT_MAX) but scale·q·k = −2e38·(1 + 0.01j) does not: the row is not
  // a masked one (zeros); it is key 0's value, the largest logit by 2e36.
  const Index d4 = 4, m4 = 5;
  const Matrix q4 = Matrix::Constant(3, d4, 1e19f);
  Matrix k4(m4, d4);
  for (Index j = 0; j < m4; ++j) k4.row(j).setConstant(-1e19f * (1.0f + 0.01f * float(j)));
  const Matrix v4 = rng.gaussian(m4, 3);
  DenseAttentionOptions standard;  // scale 1/√4
  check(q4, k4, v4, standard, "q·k overflows, scale·q·k does not");
  const AttentionOutput over = gpu().denseAttention(q4, k4, v4, standard);
  EXPECT_NEAR(over.out(1, 2), v4(0, 2), 1e-6);
  EXPECT_NEAR(CpuBackend(1).denseAttention(q4, k4, v4, standard).out(1, 2), v4(0, 2), 1e-6);
}

TEST_F(DenseAttention, ScaleAndOffsetSemanticsMatchCpuBackend) {
  Rng rng(11);
  const Matrix q = rng.gaussian(45, 20), k = rng.gaussian(61, 20), v = rng.gaussian(61, 7);
  CpuBackend cpu(1);
  for (float scale : {0.0f, -1.0f, 0.7f})
    for (Index offset : {Index(-3), Index(0), Index(16), Index(100)}) {
      DenseAttentionOptions o;
      o.scale = scale;
      o.causal = offset != 100;
      o.causal_offset = offset;
      const AttentionOutput a = gpu().denseAttention(q, k, v, o);
      const AttentionOutput b = cpu.denseAttention(q, k, v, o);
      EXPECT_LE((a.out - b.out).cwiseAbs().maxCoeff(), 1e-5) << scale << " " << offset;
      check(q, k, v, o, "scale/offset");
    }
}

TEST_F(DenseAttention, HeadDimsAbove256RunOnTheCpu) {
  Rng rng(12);
  const Matrix q = rng.gaussian(9, 300), k = rng.gaussian(11, 300), v = rng.gaussian(11, 5);
  check(q, k, v, DenseAttentionOptions{}, "d = 300 (CPU)");
  EXPECT_FALSE(gpu::VulkanBackend::denseTiling(300, 5, ctx().limits()).ok);
}

TEST_F(DenseAttention, TilingFitsTheDevice) {
  const vk::DeviceLimits& lim = ctx().limits();
  for (Index d : {1, 16, 17, 32, 64, 100, 128, 200, 256})
    for (Index dv : {0, 1, 16, 64, 128, 256}) {
      const auto t = gpu::VulkanBackend::denseTiling(d, dv, lim);
      ASSERT_TRUE(t.ok) << d << " " << dv;
      EXPECT_LE(t.shared_bytes, lim.max_compute_shared_memory);
      EXPECT_GE(t.d_capacity, d);
      EXPECT_GE(t.dv_capacity, dv);
      EXPECT_LE(t.dv_capacity, 16 * t.threads_per_row);
      EXPECT_LE(t.rows * t.threads_per_row, lim.max_workgroup_invocations);
    }
  vk::DeviceLimits minimal = lim;  // the Vulkan minimum: 16 KiB of shared memory
  minimal.max_compute_shared_memory = 16384;
  const auto t = gpu::VulkanBackend::denseTiling(256, 256, minimal);
  if (t.ok) {
    EXPECT_LE(t.shared_bytes, 16384);
  }
}

TEST_F(DenseAttention, ForcedSmallBudgetIsAUserError) {
  Rng rng(13);
  const Matrix q = rng.gaussian(300, 64), k = rng.gaussian(300, 64), v = rng.gaussian(300, 64);
  ctx().setMemoryBudget(64 * 1024);
  try {
    gpu().denseAttention(q, k, v, DenseAttentionOptions{});
    ADD_FAILURE() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("budget"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ctx().memoryInUse(), 0);  // nothing leaked
  // The N×M bias alone over the budget.
  ctx().setMemoryBudget(200 * 1024);
  const Matrix bias = Matrix::Zero(300, 300);
  DenseAttentionOptions o;
  o.bias = &bias;
  EXPECT_THROW(gpu().denseAttention(q, k, v, o), UserError);
  ctx().setMemoryBudget(0);
  check(q, k, v, DenseAttentionOptions{}, "after the budget is restored");
}

TEST_F(DenseAttention, ShapeMismatchIsAUserError) {
  Rng rng(14);
  const Matrix q = rng.gaussian(4, 8), k = rng.gaussian(5, 8), v = rng.gaussian(6, 3), k7 = rng.gaussian(5, 7);
  EXPECT_THROW(gpu().denseAttention(q, k, v, {}), UserError);
  EXPECT_THROW(gpu().denseAttention(q, k7, rng.gaussian(5, 3), {}), UserError);
  const Matrix bias = Matrix::Zero(4, 4);
  DenseAttentionOptions o;
  o.bias = &bias;
  EXPECT_THROW(gpu().denseAttention(q, k, rng.gaussian(5, 3), o), UserError);
}

TEST_F(DenseAttention, ReportsPeakBytesAndDeviceTime) {
  Rng rng(15);
  const Index n = 100, m = 120, d = 32, dv = 16;
  gpu().resetPeakBytes();
  gpu().denseAttention(rng.gaussian(n, d), rng.gaussian(m, d), rng.gaussian(m, dv), {});
  const Index floats = n * d + m * d + m * dv + n * dv + 2 * n + 3 * n;  // … lse, flags, row states
  EXPECT_GE(gpu().peakBytes(), floats * 4);
  EXPECT_LE(gpu().peakBytes(), floats * 4 + 7 * 65536);  // allocation granularity at most
  if (ctx().limits().timestamps) {
    EXPECT_GE(gpu().lastDeviceMs(), 0.0);
  } else {
    EXPECT_TRUE(std::isnan(gpu().lastDeviceMs()));
  }
}

// ---- keys split across dispatches --------------------------------------------------------------------
//
// lavapipe (Mesa's gallivm) ends every loop of a shader invocation silently once the invocation has
// executed 65535 loop iterations, all its loops together (vk::DeviceLimits::max_loop_iterations).
// When one dispatch streamed all M keys, d = 64 crossed it at M ≈ 3140: the kernel dropped the
// later keys (rel. error 0.2 at N = 3300, 0.6 at N = 4096) and left row flags unwritten. Now the
// keys are split across dispatches (DenseTiling::keys_per_dispatch) with the row state carried in
// memory. These shapes are well past the old threshold; outputs are poisoned (shared backend).

TEST_F(DenseAttention, LongSequenceFullN4096) { checkLong(4096, 4096, false, 0); }

TEST_F(DenseAttention, LongSequenceCausalN4096) { checkLong(4096, 4096, true, 0); }

TEST_F(DenseAttention, LongKeysFewerQueries) {
  checkLong(600, 5000, false, 0);          // M ≠ N, a partial last key tile
  checkLong(600, 5000, true, 5000 - 600);  // the last queries of a 5000-token sequence
}

TEST_F(DenseAttention, KeysSplitIntoOneTilePerDispatchMatchOneDispatch) {
  // Every key tile in its own dispatch, on any device: the state hand-over is exercised even where
  // the device has no loop limit, with causal offsets, bias, fully masked rows and NaN / +inf logits.
  gpu::VulkanBackendOptions options = testBackendOptions();
  options.dense_keys_per_dispatch = 1;  // rounded up to one tile
  gpu::VulkanBackend split(gpu().sharedContext(), options);
  Rng rng(606);
  Stats stats;
  for (int i = 0; i < 24; ++i) {
    Case c = randomCase(rng, 6000 + i, 300, {16, 64, 128});
    c.causal = i % 3 != 0;
    c.offset = i % 3 == 1 ? c.m - c.n : between(rng, -c.n / 2, c.m);
    c.bias = i % 4 == 3;
    Rng data(c.seed);
    const Matrix q = data.gaussian(c.n, c.d, c.sigma), k = data.gaussian(c.m, c.d, c.sigma);
    const Matrix v = data.gaussian(c.m, c.dv);
    Matrix bias;
    DenseAttentionOptions o;
    o.causal = c.causal;
    o.causal_offset = c.offset;
    o.scale = c.scale;
    if (c.bias) {
      bias = data.gaussian(c.n, c.m, 2.0);
      for (Index r = 0; r < c.n; ++r)
        for (Index j = 0; j < c.m; ++j)
          if (r % 7 == 2 || data.uniform() < 0.2) bias(r, j) = -kInf;  // masked entries and rows
      bias(c.n / 2, c.m - 1) = kNaN;  // flags set in a late tile must survive the hand-over
      bias(c.n - 1, c.m / 2) = kInf;
      o.bias = &bias;
    }
    const AttentionOutput got = check(q, k, v, o, c.str() + " (split)", &stats, &split);
    const auto tiling = gpu::VulkanBackend::denseTiling(c.d, c.dv, ctx().limits());
    const Index visible = c.causal ? std::clamp<Index>(c.n + c.offset, 0, c.m) : c.m;
    EXPECT_EQ(split.lastDenseDispatches(), std::max<Index>(1, (visible + tiling.keys - 1) / tiling.keys)) << c.str();
    // The same arithmetic in the same order as one dispatch (or the device's own split).
    const AttentionOutput whole = gpu().denseAttention(q, k, v, o);
    for (Index r = 0; r < c.n; ++r) {
      EXPECT_EQ(std::isnan(got.lse(r)), std::isnan(whole.lse(r))) << c.str() << " row " << r;
      if (std::isfinite(whole.lse(r))) {
        EXPECT_NEAR(got.lse(r), whole.lse(r), 1e-6 * (1 + std::abs(whole.lse(r)))) << c.str() << " row " << r;
      }
      for (Index j = 0; j < c.dv; ++j) {
        if (std::isfinite(whole.out(r, j))) {
          EXPECT_NEAR(got.out(r, j), whole.out(r, j), 1e-6) << c.str() << " row " << r;
        }
      }
    }
  }
  report("split", stats);
}

}  // namespace
}  // namespace attn::test

// ---- the tensor-core (fp16) path ----------------------------------------------------------------------

namespace attn::test {
namespace {

using DenseFp16 = GpuTest;

// Without cooperative matrices (lavapipe), allow_fp16 changes nothing: the fp32 kernel runs.
TEST_F(DenseFp16, WithoutCooperativeMatricesTheFp32KernelRuns) {
  if (ctx().limits().cooperative_matrix_fp16) GTEST_SKIP() << "this device has cooperative matrices";
  Rng rng(40);
  const Matrix q = rng.gaussian(100, 64), k = rng.gaussian(90, 64), v = rng.gaussian(90, 64);
  DenseAttentionOptions o;
  const AttentionOutput fp32 = gpu().denseAttention(q, k, v, o);
  o.allow_fp16 = true;
  const AttentionOutput any = gpu().denseAttention(q, k, v, o);
  EXPECT_EQ(gpu().lastDensePath(), "fp32");
  EXPECT_EQ(any.out, fp32.out);
  EXPECT_EQ(gpu().coopState(), gpu::VulkanBackend::CoopState::Unknown);
}

// With cooperative matrices: random shapes against float64 within fp16-input accuracy (rounding Q, K,
// V and P to fp16 costs ≈ 5e-4 relative), and the defined special rows as in fp32.
TEST_F(DenseFp16, TensorCorePathMatchesReferenceWithinFp16Accuracy) {
  if (!ctx().limits().cooperative_matrix_fp16) GTEST_SKIP() << "no VK_NV_cooperative_matrix on " << ctx().description().name;
  for (int s = 0; s < 60; ++s) {
    Rng rng(4100 + std::uint64_t(s));
    const Index d = rng.uniform() < 0.5 ? 64 : 128;
    const bool causal = rng.uniform() < 0.5;
    const Index n = 1 + Index(rng.below(700)), m = causal ? n : 1 + Index(rng.below(700));
    const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, d);
    DenseAttentionOptions o;
    o.causal = causal;
    o.allow_fp16 = true;
    const AttentionOutput got = gpu().denseAttention(q, k, v, o);
    ASSERT_EQ(gpu().coopState(), gpu::VulkanBackend::CoopState::Passed) << gpu().coopNotice();
    EXPECT_EQ(gpu().lastDensePath(), "fp16-coopmat");
    VectorD lse;
    const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), o, &lse);
    EXPECT_TRUE(matchesReference(got.out, ref, {1e-2, 1e-2})) << "seed " << s << " N=" << n << " M=" << m << " d=" << d;
    EXPECT_TRUE(matchesReference(toColumn(got.lse), toColumn(lse), {1e-2, 1e-3})) << "seed " << s;
    EXPECT_LT((got.out.cast<double>() - ref).norm() / ref.norm(), 2e-3) << "seed " << s;
  }
}

}  // namespace
}  // namespace attn::test
