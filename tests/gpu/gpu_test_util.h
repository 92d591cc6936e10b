// Helpers shared by the GPU tests: one validated VulkanBackend per test process (pipelines stay
// cached across tests), a fixture that fails a test on any new validation error, and comparisons
// against the float64 reference where NaN never passes.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "attention/backend.h"
#include "attention/random.h"
#include "render/gpu/vulkan_backend.h"

namespace attn::test {

inline bool requireGpu() {
  const char* v = std::getenv("ATTNLAB_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

/// Options of the shared test backend: validation on, outputs poisoned with NaN before each kernel.
inline gpu::VulkanBackendOptions testBackendOptions() {
  gpu::VulkanBackendOptions o;
  o.context.instance.validation = true;
  o.poison_outputs = true;
  return o;
}

struct SharedBackend {
  bool tried = false;
  std::string reason;
  std::unique_ptr<gpu::VulkanBackend> backend;
};
inline SharedBackend& sharedBackendSlot() {
  static SharedBackend slot;
  return slot;
}

/// The process-wide test backend, or nullptr (and the reason) when this machine has no Vulkan.
inline gpu::VulkanBackend* sharedBackend(std::string* why = nullptr) {
  SharedBackend& s = sharedBackendSlot();
  if (!s.tried) {
    s.tried = true;
    try {
      s.backend = std::make_unique<gpu::VulkanBackend>(testBackendOptions());
    } catch (const vk::Unavailable& e) {
      s.reason = e.what();
    }
  }
  if (why) *why = s.reason;
  return s.backend.get();
}

/// Destroys the shared backend (from main(), before static destruction).
inline void releaseSharedBackend() { sharedBackendSlot().backend.reset(); }

/// Base fixture: skips without a device (fails with ATTNLAB_REQUIRE_GPU=1), and fails the test when
/// the validation layer reported an error during it.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    backend_ = sharedBackend(&why);
    if (!backend_) {
      if (requireGpu()) FAIL() << "no Vulkan device: " << why;
      GTEST_SKIP() << "no Vulkan device: " << why;
    }
    errors_before_ = backend_->context().validationErrorCount();
    backend_->context().setMemoryBudget(0);
  }
  void TearDown() override {
    if (!backend_) return;
    backend_->context().setMemoryBudget(0);
    EXPECT_EQ(backend_->context().validationErrorCount(), errors_before_)
        << "Vulkan validation errors during this test (printed above)";
  }
  gpu::VulkanBackend& gpu() { return *backend_; }
  vk::Context& ctx() { return backend_->context(); }

  gpu::VulkanBackend* backend_ = nullptr;
  std::uint64_t errors_before_ = 0;
};

/// Element-wise comparison of a float result with a double reference. A reference NaN demands a NaN;
/// a reference ±inf demands the same infinity; otherwise |got − ref| ≤ atol + rtol·|ref| and got is
/// finite (so a NaN never passes). Returns the number of mismatches and reports the first few.
struct Tolerance {
  double atol = 0;
  double rtol = 0;
};

inline bool closeOrSameSpecial(double got, double ref, Tolerance tol) {
  if (std::isnan(ref)) return std::isnan(got);
  if (std::isinf(ref)) return got == ref;
  if (!std::isfinite(got)) return false;
  return std::abs(got - ref) <= tol.atol + tol.rtol * std::abs(ref);
}

template <class GotMatrix>
::testing::AssertionResult matchesReference(const GotMatrix& got, const MatrixD& ref, Tolerance tol,
                                            double* max_err = nullptr) {
  if (got.rows() != ref.rows() || got.cols() != ref.cols())
    return ::testing::AssertionFailure() << "shape " << got.rows() << "×" << got.cols() << " vs reference "
                                         << ref.rows() << "×" << ref.cols();
  Index bad = 0;
  double worst = 0;
  auto failure = ::testing::AssertionFailure();
  for (Index i = 0; i < ref.rows(); ++i)
    for (Index j = 0; j < ref.cols(); ++j) {
      const double g = got(i, j), r = ref(i, j);
      if (std::isfinite(r) && std::isfinite(g)) worst = std::max(worst, std::abs(g - r));
      if (!closeOrSameSpecial(g, r, tol)) {
        if (bad < 5) failure << "(" << i << "," << j << "): got " << g << ", want " << r << "; ";
        ++bad;
      }
    }
  if (max_err) *max_err = std::max(*max_err, worst);
  if (bad == 0) return ::testing::AssertionSuccess();
  return failure << bad << " mismatches (atol " << tol.atol << ", rtol " << tol.rtol << ")";
}

inline MatrixD toColumn(const VectorD& v) { return v; }
inline Matrix toColumn(const Vector& v) { return v; }

}  // namespace attn::test
