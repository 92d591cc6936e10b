// No Vulkan driver at all (VK_DRIVER_FILES=/nonexistent.json, set in main() before any instance):
// nothing crashes, listDevices says why, auto computes on the CPU and says so, vulkan is a UserError.
#include "gpu_test_util.h"
#include "render/gpu/backend_factory.h"
#include "render/vk/context.h"

namespace attn::test {
namespace {

TEST(NoIcd, ListDevicesIsEmptyWithAReason) {
  const vk::DeviceList list = vk::listDevices();
  EXPECT_TRUE(list.devices.empty());
  EXPECT_FALSE(list.reason.empty());
  std::printf("[ reason ] %s\n", list.reason.c_str());
}

TEST(NoIcd, ContextIsUnavailable) {
  vk::ContextOptions o;
  o.instance.validation = true;
  EXPECT_THROW(vk::Context c(o), vk::Unavailable);
}

TEST(NoIcd, AutoFallsBackToTheCpuWithANotice) {
  const gpu::BackendSelection s = gpu::makeBackend(gpu::BackendChoice::Auto, testBackendOptions());
  ASSERT_TRUE(s.backend);
  EXPECT_EQ(s.backend->info().name, "cpu");
  EXPECT_FALSE(s.notice.empty());
  EXPECT_NE(s.notice.find("CPU"), std::string::npos) << s.notice;
  std::printf("[ notice ] %s\n", s.notice.c_str());
  // And it computes.
  Rng rng(41);
  const Matrix q = rng.gaussian(20, 8), k = rng.gaussian(25, 8), v = rng.gaussian(25, 3);
  const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), {});
  EXPECT_TRUE(matchesReference(s.backend->denseAttention(q, k, v, {}).out, ref, {1e-5, 1e-5}));
}

TEST(NoIcd, ExplicitVulkanIsAUserError) {
  try {
    gpu::makeBackend(gpu::BackendChoice::Vulkan, testBackendOptions());
    ADD_FAILURE() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("Vulkan"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attn::test
