// render/vk: the context, its limits, size guards and budget, VK_CHECK, device listing, validation.
#include <regex>

#include "gpu_test_util.h"
#include "render/vk/check.h"
#include "render/vk/context.h"

namespace attn::test {
namespace {

using Context = GpuTest;

TEST_F(Context, ValidationIsOnAndLimitsAreRecorded) {
  EXPECT_TRUE(ctx().validationEnabled()) << "VK_LAYER_KHRONOS_validation must be installed for the GPU tests "
                                            "(Debian: vulkan-validationlayers)";
  const vk::DeviceLimits& lim = ctx().limits();
  EXPECT_GE(lim.max_compute_shared_memory, 16384);                // Vulkan minimum
  EXPECT_GE(lim.max_storage_buffer_range, (Index(1) << 27) - 1);  // Vulkan minimum
  EXPECT_GT(lim.max_memory_allocation_size, 0);
  EXPECT_GE(lim.max_workgroup_invocations, 128u);
  EXPECT_GE(lim.max_workgroup_count[0], 65535u);
  EXPECT_GT(lim.subgroup_size, 0u);
  EXPECT_GT(lim.memory_heap_size, 0);
  EXPECT_GT(ctx().memoryBudget(), 0);
  EXPECT_FALSE(ctx().description().name.empty());
  std::printf("[ device ] %s (%s), driver %s, Vulkan %s, subgroup %u, shared %lld B\n",
              ctx().description().name.c_str(), ctx().description().type.c_str(), ctx().description().driver.c_str(),
              ctx().description().api_version.c_str(), lim.subgroup_size,
              static_cast<long long>(lim.max_compute_shared_memory));
}

TEST_F(Context, LoopIterationLimitIsKnownOnLavapipe) {
  // gallivm (llvmpipe / lavapipe) silently ends every loop of a shader invocation after 65535 loop
  // iterations in total; the kernels split their work across dispatches by this limit.
  const bool llvmpipe = ctx().description().name.find("llvmpipe") != std::string::npos;
  EXPECT_EQ(ctx().limits().max_loop_iterations, llvmpipe ? 65535u : 0u) << ctx().description().name;
}

TEST_F(Context, ListDevicesDescribesEachDevice) {
  const vk::DeviceList list = vk::listDevices();
  ASSERT_FALSE(list.devices.empty()) << list.reason;
  EXPECT_TRUE(list.reason.empty());
  const std::regex version(R"(\d+\.\d+\.\d+)");
  bool found = false;
  for (const auto& d : list.devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_FALSE(d.type.empty());
    EXPECT_FALSE(d.driver.empty());
    EXPECT_TRUE(std::regex_match(d.api_version, version)) << d.api_version;
    found = found || d.name == ctx().description().name;
  }
  EXPECT_TRUE(found);
}

TEST_F(Context, BufferSizesAreCheckedBeforeAllocating) {
  const Index huge = std::numeric_limits<Index>::max() / 2;
  EXPECT_THROW(ctx().bufferBytes(huge, 4, "overflowing"), UserError);
  try {
    ctx().bufferBytes(ctx().limits().max_storage_buffer_range / 4 + 1, 4, "the queries Q");
    ADD_FAILURE() << "expected UserError";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the queries Q"), std::string::npos) << what;
    EXPECT_NE(what.find("maxStorageBufferRange"), std::string::npos) << what;
  }
  EXPECT_EQ(ctx().bufferBytes(10, 4, "small"), 40);
  EXPECT_THROW(ctx().createBuffer(ctx().limits().max_storage_buffer_range + 1, "too big"), UserError);
}

TEST_F(Context, ForcedBudgetRefusesWithUserErrorAndAccountsBuffers) {
  ctx().setMemoryBudget(1 << 20);
  EXPECT_EQ(ctx().memoryBudget(), 1 << 20);
  {
    vk::Buffer a = ctx().createBuffer(512 * 1024, "a");
    EXPECT_GE(ctx().memoryInUse(), 512 * 1024);
    EXPECT_THROW(ctx().createBuffer(768 * 1024, "b"), UserError);  // fits alone, not beside a
    EXPECT_THROW(ctx().createBuffer(2 << 20, "c"), UserError);     // over the budget alone
    EXPECT_THROW(ctx().requireBudget(600 * 1024, "d"), UserError);
    vk::Buffer moved = std::move(a);
    EXPECT_EQ(a.handle(), VK_NULL_HANDLE);
    EXPECT_GE(ctx().memoryInUse(), 512 * 1024);
  }
  EXPECT_EQ(ctx().memoryInUse(), 0);
  ctx().setMemoryBudget(0);
  EXPECT_GT(ctx().memoryBudget(), 1 << 20);
  vk::Buffer empty = ctx().createBuffer(0, "empty");  // allowed: a minimal buffer
  EXPECT_EQ(empty.bytes(), 0);
}

TEST_F(Context, SubmitFillsAndTimes) {
  vk::Buffer b = ctx().createBuffer(4096, "fill target");
  const double ms = ctx().submit([&](vk::Recorder& r) { r.fill(b, 0x3f800000u); });  // 1.0f
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(b.data<float>()[i], 1.0f);
  if (ctx().limits().timestamps)
    EXPECT_GE(ms, 0.0);
  else
    EXPECT_TRUE(std::isnan(ms));
  std::vector<float> host(1024);
  b.download(host.data(), 4096);
  EXPECT_EQ(host[1023], 1.0f);
  EXPECT_THROW(b.download(host.data(), 4100), std::out_of_range);
}

TEST_F(Context, PipelinesAreCachedByNameAndUnknownNamesRefused) {
  const vk::Pipeline& a = ctx().pipeline({"matmul", 3, 28, {}});  // matmul.comp: 7 push-constant words
  const vk::Pipeline& b = ctx().pipeline({"matmul", 3, 28, {}});
  EXPECT_EQ(&a, &b);
  EXPECT_THROW(ctx().pipeline({"no_such_shader", 1, 0, {}}), std::invalid_argument);
}

TEST(VkCheck, NamesTheCallAndTheResult) {
  try {
    VK_CHECK(VK_ERROR_OUT_OF_DEVICE_MEMORY);
    ADD_FAILURE();
  } catch (const vk::DeviceLost&) {
    ADD_FAILURE() << "not a device loss";
  } catch (const vk::VulkanError& e) {
    EXPECT_EQ(e.result(), VK_ERROR_OUT_OF_DEVICE_MEMORY);
    EXPECT_NE(std::string(e.what()).find("VK_ERROR_OUT_OF_DEVICE_MEMORY"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test_context.cpp"), std::string::npos) << e.what();
  }
  EXPECT_THROW(VK_CHECK(VK_ERROR_DEVICE_LOST), vk::DeviceLost);
  EXPECT_NO_THROW(VK_CHECK(VK_SUCCESS));
  EXPECT_EQ(vk::resultName(static_cast<VkResult>(-123456)), "VkResult(-123456)");
}

TEST_F(Context, DeviceSelectorByIndexAndName) {
  vk::ContextOptions by_index;
  by_index.instance.validation = true;
  by_index.device = std::to_string(ctx().description().index);
  vk::Context a(by_index);
  EXPECT_EQ(a.description().name, ctx().description().name);
  EXPECT_TRUE(a.explicitlySelected());
  vk::ContextOptions by_name = by_index;
  by_name.device = ctx().description().name.substr(0, 4);
  vk::Context b(by_name);
  EXPECT_EQ(b.description().name, ctx().description().name);
  vk::ContextOptions none = by_index;
  none.device = "no-such-device-anywhere";
  try {
    vk::Context c(none);
    ADD_FAILURE() << "expected Unavailable";
  } catch (const vk::Unavailable& e) {
    EXPECT_NE(std::string(e.what()).find(ctx().description().name), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.validationErrorCount(), 0u);
  EXPECT_EQ(b.validationErrorCount(), 0u);
}

TEST_F(Context, ValidationMessengerCountsErrors) {
  // A separate context, so the shared one stays clean: an invalid call must be counted.
  vk::ContextOptions o;
  o.instance.validation = true;
  vk::Context c(o);
  ASSERT_TRUE(c.validationEnabled());
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = 64;
  info.usage = 0;  // VUID-VkBufferCreateInfo-usage-requiredbitmask
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer buffer = VK_NULL_HANDLE;
  std::fprintf(stderr, "(the next validation error is expected)\n");
  const VkResult r = vkCreateBuffer(c.device(), &info, nullptr, &buffer);
  if (r == VK_SUCCESS && buffer != VK_NULL_HANDLE) vkDestroyBuffer(c.device(), buffer, nullptr);
  EXPECT_GE(c.validationErrorCount(), 1u);
}

}  // namespace
}  // namespace attn::test
