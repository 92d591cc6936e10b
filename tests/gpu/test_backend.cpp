// VulkanBackend as a Backend (info, delegated primitives, device loss) and the backend factory.
#include <cstdlib>

#include "gpu_test_util.h"
#include "render/gpu/backend_factory.h"

namespace attn::test {
namespace {

/// Sets (or unsets, with nullptr) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

using Backend = GpuTest;

TEST_F(Backend, InfoNamesTheDevice) {
  const BackendInfo info = gpu().info();
  EXPECT_EQ(info.name, "vulkan");
  EXPECT_EQ(info.device, ctx().description().name);
  EXPECT_FALSE(info.driver.empty());
}

// A quick smoke check of every primitive on one small case against the CPU backend (the thorough
// checks against float64 references are in test_primitives.cpp).
TEST_F(Backend, PrimitivesAgreeWithTheCpuBackendOnASmallCase) {
  Rng rng(31);
  CpuBackend cpu(1);
  const Matrix x = rng.gaussian(50, 16), y = rng.gaussian(40, 16), v = rng.gaussian(40, 8);
  EXPECT_LE((gpu().featureMap(x, FeatureMap::EluPlusOne) - cpu.featureMap(x, FeatureMap::EluPlusOne)).cwiseAbs().maxCoeff(),
            1e-6);
  const Matrix px = cpu.featureMap(x, FeatureMap::EluPlusOne), py = cpu.featureMap(y, FeatureMap::EluPlusOne);
  EXPECT_LE((gpu().linearAttention(px, py, v, false) - cpu.linearAttention(px, py, v, false)).cwiseAbs().maxCoeff(),
            1e-6);
  const Matrix rot = rng.gaussian(16, 4);
  EXPECT_EQ(gpu().hashRotations(x, rot), cpu.hashRotations(x, rot));
  const Matrix centroids = rng.gaussian(5, 16);
  EXPECT_EQ(gpu().nearestCentroid(x, centroids), cpu.nearestCentroid(x, centroids));

  Pattern p;  // a band: |i − j| ≤ 2
  p.rows = 50, p.cols = 40;
  p.components = {"window"};
  p.row_ptr.push_back(0);
  for (Index i = 0; i < 50; ++i) {
    for (Index j = std::max<Index>(0, i - 2); j <= std::min<Index>(39, i + 2); ++j) {
      p.col.push_back(static_cast<std::int32_t>(j));
      p.component.push_back(0);
    }
    p.row_ptr.push_back(static_cast<Index>(p.col.size()));
  }
  const AttentionOutput a = gpu().sparseAttention(x, y, v, p, 0.25f, nullptr);
  const AttentionOutput b = cpu.sparseAttention(x, y, v, p, 0.25f, nullptr);
  EXPECT_LE((a.out - b.out).cwiseAbs().maxCoeff(), 1e-5);
}

TEST_F(Backend, DeviceLossThrowsDistinctType) {
  gpu::VulkanBackend own(testBackendOptions());
  Rng rng(32);
  const Matrix q = rng.gaussian(10, 16), k = rng.gaussian(12, 16), v = rng.gaussian(12, 4);
  own.context().injectDeviceLost();
  EXPECT_THROW(own.denseAttention(q, k, v, {}), vk::DeviceLost);
  EXPECT_TRUE(own.context().lost());
  EXPECT_THROW(own.matmul(q, k, true), vk::DeviceLost);  // the context stays unusable
  EXPECT_FALSE(own.fellBack());
  EXPECT_EQ(own.context().validationErrorCount(), 0u);
}

TEST_F(Backend, DeviceLossFallsBackToTheCpuWhenAsked) {
  gpu::VulkanBackendOptions o = testBackendOptions();
  o.fall_back_on_device_lost = true;
  gpu::VulkanBackend own(o);
  Rng rng(33);
  const Matrix q = rng.gaussian(30, 16), k = rng.gaussian(35, 16), v = rng.gaussian(35, 6);
  const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), {});
  EXPECT_TRUE(matchesReference(own.denseAttention(q, k, v, {}).out, ref, {2e-5, 2e-5}));
  own.context().injectDeviceLost();
  const AttentionOutput after = own.denseAttention(q, k, v, {});  // no throw: recomputed on the CPU
  EXPECT_TRUE(matchesReference(after.out, ref, {2e-5, 2e-5}));
  EXPECT_TRUE(own.fellBack());
  EXPECT_NE(own.fallbackNotice().find("lost"), std::string::npos) << own.fallbackNotice();
  EXPECT_EQ(own.info().name, "cpu");
  EXPECT_EQ(own.matmul(q, k, true).rows(), 30);
  // Every other primitive also runs (on the CPU) after the loss, with the CPU's results.
  CpuBackend cpu(1);
  const Matrix phi = q.cwiseAbs(), rot = rng.gaussian(16, 4), centroids = rng.gaussian(5, 16);
  EXPECT_EQ(own.featureMap(q, FeatureMap::EluPlusOne), cpu.featureMap(q, FeatureMap::EluPlusOne));
  EXPECT_EQ(own.linearAttention(phi, phi, q, true), cpu.linearAttention(phi, phi, q, true));
  EXPECT_EQ(own.hashRotations(q, rot), cpu.hashRotations(q, rot));
  EXPECT_EQ(own.nearestCentroid(q, centroids), cpu.nearestCentroid(q, centroids));
  WeightKernel kernel;
  kernel.a = std::make_shared<Matrix>(q);
  kernel.b = std::make_shared<Matrix>(k);
  kernel.row_term = Vector::Zero(30);
  EXPECT_EQ(own.weightTile(kernel, {0, 30}, {0, 35}, {7, 9}, Pooling::Mean),
            cpu.weightTile(kernel, {0, 30}, {0, 35}, {7, 9}, Pooling::Mean));
  Pattern p;
  p.rows = 30, p.cols = 35, p.components = {"first"};
  for (Index i = 0; i <= 30; ++i) p.row_ptr.push_back(i);
  p.col.assign(30, 0);
  p.component.assign(30, 0);
  EXPECT_EQ(own.sparseAttention(q, k, v, p, 0, nullptr).out, cpu.sparseAttention(q, k, v, p, 0, nullptr).out);
  EXPECT_EQ(own.context().validationErrorCount(), 0u);
}

TEST(BackendChoice, ParsesCpuVulkanAuto) {
  using gpu::BackendChoice;
  EXPECT_EQ(gpu::parseBackendChoice("cpu"), BackendChoice::Cpu);
  EXPECT_EQ(gpu::parseBackendChoice("vulkan"), BackendChoice::Vulkan);
  EXPECT_EQ(gpu::parseBackendChoice("Auto"), BackendChoice::Auto);
  try {
    gpu::parseBackendChoice("cuda");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cpu|vulkan|auto"), std::string::npos) << e.what();
  }
  EXPECT_EQ(gpu::backendChoiceName(BackendChoice::Vulkan), "vulkan");
  const auto cpu = gpu::makeBackend(BackendChoice::Cpu);
  EXPECT_EQ(cpu.backend->info().name, "cpu");
  EXPECT_TRUE(cpu.notice.empty());
}

TEST_F(Backend, FactoryVulkanAndAuto) {
  ScopedEnv no_selector("ATTNLAB_DEVICE", nullptr);
  gpu::VulkanBackendOptions o = testBackendOptions();
  const auto vulkan = gpu::makeBackend(gpu::BackendChoice::Vulkan, o);
  EXPECT_EQ(vulkan.backend->info().name, "vulkan");
  EXPECT_TRUE(vulkan.notice.empty());

  const auto automatic = gpu::makeBackend(gpu::BackendChoice::Auto, o);
  ASSERT_TRUE(automatic.backend);
  if (ctx().description().vk_type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
    // A software rasterizer (lavapipe) is slower than the CPU backend: auto says so and uses the CPU...
    EXPECT_EQ(automatic.backend->info().name, "cpu");
    EXPECT_NE(automatic.notice.find("software"), std::string::npos) << automatic.notice;
    // ...unless the device is chosen explicitly.
    ScopedEnv select("ATTNLAB_DEVICE", ctx().description().name.c_str());
    const auto chosen = gpu::makeBackend(gpu::BackendChoice::Auto, o);
    EXPECT_EQ(chosen.backend->info().name, "vulkan");
    EXPECT_TRUE(chosen.notice.empty());
  } else {
    EXPECT_EQ(automatic.backend->info().name, "vulkan");
    EXPECT_TRUE(automatic.notice.empty());
  }
}

TEST_F(Backend, FactoryWithAnUnmatchedSelector) {
  ScopedEnv bogus("ATTNLAB_DEVICE", "no-such-device-anywhere");
  gpu::VulkanBackendOptions o = testBackendOptions();
  try {
    gpu::makeBackend(gpu::BackendChoice::Vulkan, o);
    ADD_FAILURE() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-device-anywhere"), std::string::npos) << e.what();
  }
  const auto automatic = gpu::makeBackend(gpu::BackendChoice::Auto, o);
  EXPECT_EQ(automatic.backend->info().name, "cpu");
  EXPECT_NE(automatic.notice.find("CPU"), std::string::npos) << automatic.notice;
}

}  // namespace
}  // namespace attn::test
