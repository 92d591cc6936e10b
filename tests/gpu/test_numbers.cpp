// Numerical extremes on the Vulkan backend (issue 21, "Numbers"): huge values give the finite outputs their
// true values are, as on the CPU (the runner computes with V scaled by a power of two and scales back).
#include "attention/runner.h"
#include "gpu_test_util.h"

namespace attn::test {
namespace {

using Numbers = GpuTest;

// Q = K = 0: every weight is 1/N, so every output is V's value, 1e35 (float sums over 4096 keys: 2e-4).
TEST_F(Numbers, ZeroLogitsWithHugeValuesGiveTheValues) {
  const auto exact = requireMechanism("exact");
  for (const Index n : {Index(64), Index(4096)}) {
    Inputs in{Matrix::Zero(n, 16), Matrix::Zero(n, 16), Matrix::Constant(n, 16, 1e35f)};
    in.spec.n = n, in.spec.d = in.spec.dv = 16;
    const Comparison c = compare(in, exact, Params::resolve(exact->params(), {}), gpu(), {});
    ASSERT_TRUE(c.approx.output.allFinite()) << "N = " << n;
    EXPECT_NEAR(c.approx.output(n - 1, 15) / 1e35, 1.0, 2e-4);
    EXPECT_LT(c.relative_error, 2e-4);
  }
}

TEST_F(Numbers, HugeValuesGiveFiniteOutputsOnEveryLinearMechanism) {
  InputSpec spec;
  spec.generator = Generator::Clustered;
  spec.n = 64, spec.d = 32, spec.dv = 16, spec.seed = 3;
  Inputs in = generate(spec);
  in.v *= 3e37f / std::max(1.0f, in.v.cwiseAbs().maxCoeff());
  for (const auto& m : mechanisms()) {
    if (!m->info().linear_in_values) continue;
    SCOPED_TRACE(m->info().id);
    CompareOptions o;
    o.run.explain = false;
    try {
      const Comparison c = compare(in, m, Params::resolve(m->params(), {}), gpu(), o);
      EXPECT_TRUE(c.approx.output.allFinite());
    } catch (const UserError& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

}  // namespace
}  // namespace attn::test
