#include "render/vk/context.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "attnlab_compute_shaders.h"

namespace attn::vk {
namespace {

/// Descriptor sets one submit may allocate (each dispatch takes one); reset after every submit.
constexpr std::uint32_t k_sets_per_submit = 64;
constexpr std::uint32_t k_descriptors_per_submit = k_sets_per_submit * 8;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool allDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

int typeRank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 1;
    default:
      return 0;
  }
}

std::string deviceListing(const std::vector<DeviceDescription>& devices) {
  std::string s;
  for (const auto& d : devices) {
    if (!s.empty()) s += ", ";
    s += std::to_string(d.index) + ": " + d.name;
    if (!d.usable) s += " (unusable: " + d.unusable_reason + ")";
  }
  return s.empty() ? "none" : s;
}

/// Rank of a memory type for a host-visible storage buffer of this use (higher is better, -1: unusable).
int memoryTypeRank(const VkPhysicalDeviceMemoryProperties& mem, std::uint32_t i, BufferUse use) {
  const VkMemoryPropertyFlags f = mem.memoryTypes[i].propertyFlags;
  const VkMemoryPropertyFlags need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  if ((f & need) != need) return -1;
  if (f & (VK_MEMORY_PROPERTY_PROTECTED_BIT | VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT)) return -1;
  const VkDeviceSize heap = mem.memoryHeaps[mem.memoryTypes[i].heapIndex].size;
  // Device-local and host-visible (unified memory, or a resizable BAR) only counts when the heap is
  // large: the classic 256 MiB BAR window is too small to hold attention inputs.
  const bool device_local = (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && heap >= (VkDeviceSize(1) << 30);
  const bool cached = (f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT) != 0;
  if (use == BufferUse::HostRead)
    return 1 + (cached ? 4 : 0) + (device_local ? 1 : 0);  // CPU reads of uncached memory crawl
  return 1 + (device_local ? 4 : 0) + (cached ? 2 : 0);    // the kernels read inputs many times
}

int bestMemoryType(const VkPhysicalDeviceMemoryProperties& mem, std::uint32_t allowed, BufferUse use) {
  int best = -1, best_rank = -1;
  for (std::uint32_t i = 0; i < mem.memoryTypeCount; ++i) {
    if (!(allowed & (1u << i))) continue;
    const int r = memoryTypeRank(mem, i, use);
    if (r > best_rank) best = static_cast<int>(i), best_rank = r;
  }
  return best;
}

/// gallivm's LP_MAX_TGSI_LOOP_ITERATIONS (src/gallium/auxiliary/gallivm/lp_bld_limits.h): the loop
/// iterations one llvmpipe/lavapipe shader invocation executes, all loops together, before every
/// loop of it exits after its current iteration (lp_exec_endloop: one shared counter per function,
/// set once on entry, decremented at each back edge). See DeviceLimits::max_loop_iterations.
constexpr std::uint32_t k_llvmpipe_loop_iterations = 65535;

/// true for Mesa's lavapipe (llvmpipe) driver: by driver ID (Vulkan 1.2), else by device name.
bool isLlvmpipe(VkPhysicalDevice physical, std::uint32_t instance_api, const DeviceDescription& description) {
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(physical, &props);
  if (props.apiVersion >= VK_API_VERSION_1_2 && instance_api >= VK_API_VERSION_1_2) {
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    props2.pNext = &driver;
    vkGetPhysicalDeviceProperties2(physical, &props2);
    return driver.driverID == VK_DRIVER_ID_MESA_LLVMPIPE;
  }
  return lower(description.name).find("llvmpipe") != std::string::npos;
}

Index clampToIndex(VkDeviceSize v) {
  return v > static_cast<VkDeviceSize>(std::numeric_limits<Index>::max()) ? std::numeric_limits<Index>::max()
                                                                          : static_cast<Index>(v);
}

}  // namespace

std::string formatBytes(Index bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (bytes < 1024)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else if (bytes < (Index(1) << 20))
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else if (bytes < (Index(1) << 30))
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  return buf;
}

// ---- Buffer -----------------------------------------------------------------------------------------

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& o) noexcept
    : context_(o.context_),
      buffer_(o.buffer_),
      memory_(o.memory_),
      mapped_(o.mapped_),
      bytes_(o.bytes_),
      allocated_(o.allocated_) {
  o.context_ = nullptr;
  o.buffer_ = VK_NULL_HANDLE;
  o.memory_ = VK_NULL_HANDLE;
  o.mapped_ = nullptr;
  o.bytes_ = o.allocated_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    context_ = o.context_;
    buffer_ = o.buffer_;
    memory_ = o.memory_;
    mapped_ = o.mapped_;
    bytes_ = o.bytes_;
    allocated_ = o.allocated_;
    o.context_ = nullptr;
    o.buffer_ = VK_NULL_HANDLE;
    o.memory_ = VK_NULL_HANDLE;
    o.mapped_ = nullptr;
    o.bytes_ = o.allocated_ = 0;
  }
  return *this;
}

void Buffer::release() noexcept {
  if (!context_) return;
  VkDevice dev = context_->device();
  if (buffer_ != VK_NULL_HANDLE) vkDestroyBuffer(dev, buffer_, nullptr);
  if (memory_ != VK_NULL_HANDLE) vkFreeMemory(dev, memory_, nullptr);  // unmaps implicitly
  context_->returnBytes(allocated_);
  context_ = nullptr;
  buffer_ = VK_NULL_HANDLE;
  memory_ = VK_NULL_HANDLE;
  mapped_ = nullptr;
  bytes_ = allocated_ = 0;
}

void Buffer::upload(const void* src, Index bytes, Index offset) {
  if (bytes < 0 || offset < 0 || offset > bytes_ || bytes > bytes_ - offset)
    throw std::out_of_range("Buffer::upload outside the buffer");
  if (bytes > 0) std::memcpy(static_cast<char*>(mapped_) + offset, src, static_cast<std::size_t>(bytes));
}

void Buffer::download(void* dst, Index bytes, Index offset) const {
  if (bytes < 0 || offset < 0 || offset > bytes_ || bytes > bytes_ - offset)
    throw std::out_of_range("Buffer::download outside the buffer");
  if (bytes > 0) std::memcpy(dst, static_cast<const char*>(mapped_) + offset, static_cast<std::size_t>(bytes));
}

// ---- Context: creation ------------------------------------------------------------------------------

Context::Context(const ContextOptions& options) : instance_(std::make_unique<Instance>(options.instance)) {
  selectDevice(options);
  try {
    createDevice();
  } catch (...) {
    destroy();  // a throwing constructor runs no destructor: release what was created
    throw;
  }
}

void Context::selectDevice(const ContextOptions& options) {
  const std::vector<VkPhysicalDevice> devices = instance_->physicalDevices();
  if (devices.empty()) throw Unavailable("the Vulkan driver reports no physical device");
  std::vector<DeviceDescription> described;
  for (std::uint32_t i = 0; i < devices.size(); ++i) described.push_back(describeDevice(devices[i], i));

  std::string selector = options.device;
  std::string source = "the device option";
  if (selector.empty()) {
    if (const char* env = std::getenv("ATTNLAB_DEVICE")) selector = env, source = "ATTNLAB_DEVICE";
  }
  int chosen = -1;
  if (!selector.empty()) {
    explicitly_selected_ = true;
    if (allDigits(selector)) {
      const unsigned long idx = std::strtoul(selector.c_str(), nullptr, 10);
      if (idx < described.size()) chosen = static_cast<int>(idx);
    } else {
      const std::string want = lower(selector);
      for (const auto& d : described)
        if (lower(d.name).find(want) != std::string::npos) {
          chosen = static_cast<int>(d.index);
          break;
        }
    }
    if (chosen < 0)
      throw Unavailable(source + "=" + selector + " matches no Vulkan device (devices: " + deviceListing(described) +
                        ")");
    if (!described[static_cast<std::size_t>(chosen)].usable)
      throw Unavailable("Vulkan device " + described[static_cast<std::size_t>(chosen)].name +
                        " is unusable: " + described[static_cast<std::size_t>(chosen)].unusable_reason);
  } else {
    int best_rank = -1;
    for (const auto& d : described) {
      if (!d.usable) continue;
      const int r = typeRank(d.vk_type);
      if (r > best_rank) best_rank = r, chosen = static_cast<int>(d.index);
    }
    if (chosen < 0) throw Unavailable("no usable Vulkan device (devices: " + deviceListing(described) + ")");
  }
  physical_ = devices[static_cast<std::size_t>(chosen)];
  description_ = described[static_cast<std::size_t>(chosen)];
}

void Context::createDevice() {
  // Limits: core properties, subgroup size (1.1), maxMemoryAllocationSize (maintenance3, core in 1.1).
  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties maint3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  subgroup.pNext = &maint3;
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(physical_, &props2);
  const VkPhysicalDeviceLimits& lim = props2.properties.limits;
  limits_.max_compute_shared_memory = lim.maxComputeSharedMemorySize;
  limits_.max_storage_buffer_range = lim.maxStorageBufferRange;
  limits_.max_memory_allocation_size = clampToIndex(maint3.maxMemoryAllocationSize);
  limits_.max_workgroup_invocations = lim.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) {
    limits_.max_workgroup_count[static_cast<std::size_t>(i)] = lim.maxComputeWorkGroupCount[i];
    limits_.max_workgroup_size[static_cast<std::size_t>(i)] = lim.maxComputeWorkGroupSize[i];
  }
  limits_.subgroup_size = subgroup.subgroupSize;
  limits_.timestamp_period_ns = lim.timestampPeriod;
  limits_.max_loop_iterations =
      isLlvmpipe(physical_, instance_->apiVersion(), description_) ? k_llvmpipe_loop_iterations : 0;

  // Queue family: prefer a compute family with timestamps, a dedicated (non-graphics) one first.
  std::uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &count, families.data());
  int best = -1, best_rank = -1;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto& f = families[i];
    if (!(f.queueFlags & VK_QUEUE_COMPUTE_BIT) || f.queueCount == 0) continue;
    const int rank = (f.timestampValidBits > 0 ? 2 : 0) + ((f.queueFlags & VK_QUEUE_GRAPHICS_BIT) ? 0 : 1);
    if (rank > best_rank) best_rank = rank, best = static_cast<int>(i);
  }
  if (best < 0) throw Unavailable("Vulkan device " + description_.name + " has no compute queue");
  queue_family_ = static_cast<std::uint32_t>(best);
  timestamp_valid_bits_ = families[queue_family_].timestampValidBits;
  limits_.timestamps = timestamp_valid_bits_ > 0 && lim.timestampPeriod > 0;

  // Memory: the heap of the preferred host-visible type sets the default budget.
  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(physical_, &mem);
  const int type = bestMemoryType(mem, ~0u, BufferUse::DeviceRead);
  if (type < 0) throw Unavailable("Vulkan device " + description_.name + " has no host-visible coherent memory");
  memory_type_ = static_cast<std::uint32_t>(type);
  limits_.memory_heap_size = clampToIndex(mem.memoryHeaps[mem.memoryTypes[memory_type_].heapIndex].size);
  budget_ = defaultBudget();

  // Tensor cores (VK_NV_cooperative_matrix): probed, and enabled when everything the kernel needs is there.
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coop_features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceVulkan12Features features12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan13Features features13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  const char* coop_extension = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
  limits_.cooperative_matrix_fp16 = probeCooperativeMatrix(subgroup);
  if (limits_.cooperative_matrix_fp16) {
    coop_features.cooperativeMatrix = VK_TRUE;
    features12.shaderFloat16 = VK_TRUE;
    features12.vulkanMemoryModel = VK_TRUE;
    features13.subgroupSizeControl = VK_TRUE;
    features13.computeFullSubgroups = VK_TRUE;
    coop_features.pNext = &features12;
    features12.pNext = &features13;
  }

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = queue_family_;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  VkDeviceCreateInfo device_info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  if (limits_.cooperative_matrix_fp16) {
    device_info.pNext = &coop_features;
    device_info.enabledExtensionCount = 1;
    device_info.ppEnabledExtensionNames = &coop_extension;
  }
  const VkResult r = vkCreateDevice(physical_, &device_info, nullptr, &device_);
  if (r != VK_SUCCESS) {
    device_ = VK_NULL_HANDLE;
    throw Unavailable("could not create a Vulkan device on " + description_.name + " (" + resultName(r) + ")");
  }
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = queue_family_;
  VK_CHECK(vkCreateCommandPool(device_, &pool_info, nullptr, &command_pool_));
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = command_pool_;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VK_CHECK(vkAllocateCommandBuffers(device_, &alloc, &command_buffer_));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VK_CHECK(vkCreateFence(device_, &fence_info, nullptr, &fence_));
  if (limits_.timestamps) {
    VkQueryPoolCreateInfo q{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    q.queryType = VK_QUERY_TYPE_TIMESTAMP;
    q.queryCount = 2;
    VK_CHECK(vkCreateQueryPool(device_, &q, nullptr, &query_pool_));
  }
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, k_descriptors_per_submit};
  VkDescriptorPoolCreateInfo dp{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  dp.maxSets = k_sets_per_submit;
  dp.poolSizeCount = 1;
  dp.pPoolSizes = &size;
  VK_CHECK(vkCreateDescriptorPool(device_, &dp, nullptr, &descriptor_pool_));
}

bool Context::probeCooperativeMatrix(const VkPhysicalDeviceSubgroupProperties& subgroup) const {
  if (const char* off = std::getenv("ATTNLAB_NO_COOPMAT"); off && std::string(off) == "1") return false;
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(physical_, &props);
  // Vulkan 1.3: subgroup size control (whole 32-wide subgroups, which cooperative matrices need).
  if (props.apiVersion < VK_API_VERSION_1_3 || instance_->apiVersion() < VK_API_VERSION_1_3) return false;
  if (subgroup.subgroupSize != 32 || !(subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
      !(subgroup.supportedOperations & VK_SUBGROUP_FEATURE_VOTE_BIT) ||
      !(subgroup.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT))
    return false;
  std::uint32_t count = 0;
  vkEnumerateDeviceExtensionProperties(physical_, nullptr, &count, nullptr);
  std::vector<VkExtensionProperties> extensions(count);
  vkEnumerateDeviceExtensionProperties(physical_, nullptr, &count, extensions.data());
  const bool has = std::any_of(extensions.begin(), extensions.end(), [](const VkExtensionProperties& e) {
    return std::string(e.extensionName) == VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
  });
  if (!has) return false;
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coop{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  coop.pNext = &f12;
  f12.pNext = &f13;
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features.pNext = &coop;
  vkGetPhysicalDeviceFeatures2(physical_, &features);
  if (!coop.cooperativeMatrix || !f12.shaderFloat16 || !f12.vulkanMemoryModel || !f13.subgroupSizeControl ||
      !f13.computeFullSubgroups)
    return false;
  VkPhysicalDeviceCooperativeMatrixPropertiesNV coop_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
  VkPhysicalDeviceSubgroupSizeControlProperties size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
  coop_props.pNext = &size_control;
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &coop_props;
  vkGetPhysicalDeviceProperties2(physical_, &props2);
  if (!(coop_props.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
      !(size_control.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) || size_control.minSubgroupSize > 32 ||
      size_control.maxSubgroupSize < 32)
    return false;
  auto properties = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
      vkGetInstanceProcAddr(instance_->handle(), "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
  if (!properties) return false;
  count = 0;
  if (properties(physical_, &count, nullptr) != VK_SUCCESS || count == 0) return false;
  std::vector<VkCooperativeMatrixPropertiesNV> configs(count, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
  if (properties(physical_, &count, configs.data()) != VK_SUCCESS) return false;
  return std::any_of(configs.begin(), configs.end(), [](const VkCooperativeMatrixPropertiesNV& c) {
    return c.MSize == 16 && c.NSize == 16 && c.KSize == 16 && c.AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
           c.BType == VK_COMPONENT_TYPE_FLOAT16_NV && c.CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
           c.DType == VK_COMPONENT_TYPE_FLOAT32_NV && c.scope == VK_SCOPE_SUBGROUP_NV;
  });
}

Context::~Context() { destroy(); }

void Context::destroy() noexcept {
  if (device_ != VK_NULL_HANDLE) {
    vkDeviceWaitIdle(device_);
    for (auto& [key, p] : pipelines_) {
      vkDestroyPipeline(device_, p->pipeline, nullptr);
      vkDestroyPipelineLayout(device_, p->layout, nullptr);
      vkDestroyDescriptorSetLayout(device_, p->set_layout, nullptr);
    }
    pipelines_.clear();
    if (descriptor_pool_) vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
    if (query_pool_) vkDestroyQueryPool(device_, query_pool_, nullptr);
    if (fence_) vkDestroyFence(device_, fence_, nullptr);
    if (command_pool_) vkDestroyCommandPool(device_, command_pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
  }
  descriptor_pool_ = VK_NULL_HANDLE;
  query_pool_ = VK_NULL_HANDLE;
  fence_ = VK_NULL_HANDLE;
  command_pool_ = VK_NULL_HANDLE;
  device_ = VK_NULL_HANDLE;
}

// ---- memory -----------------------------------------------------------------------------------------

Index Context::defaultBudget() const { return limits_.memory_heap_size / 4 * 3; }

void Context::setMemoryBudget(Index bytes) {
  if (bytes < 0) throw std::invalid_argument("memory budget must be ≥ 0");
  budget_ = bytes == 0 ? defaultBudget() : bytes;
}

Index Context::bufferBytes(Index count, Index element_bytes, const std::string& what) const {
  if (count < 0 || element_bytes < 0) throw std::invalid_argument("negative buffer size for " + what);
  Index bytes = 0;
  if (__builtin_mul_overflow(count, element_bytes, &bytes))
    throw UserError(what + " is too large: " + std::to_string(count) + " elements of " + std::to_string(element_bytes) +
                    " bytes overflow a 64-bit size");
  const std::string where = " on " + description_.name;
  if (bytes > limits_.max_storage_buffer_range)
    throw UserError(what + " needs " + formatBytes(bytes) + ", more than the largest GPU storage buffer" + where +
                    " (maxStorageBufferRange = " + formatBytes(limits_.max_storage_buffer_range) +
                    "); use a smaller input or the CPU backend");
  if (bytes > limits_.max_memory_allocation_size)
    throw UserError(what + " needs " + formatBytes(bytes) + ", more than the largest GPU allocation" + where +
                    " (maxMemoryAllocationSize = " + formatBytes(limits_.max_memory_allocation_size) +
                    "); use a smaller input or the CPU backend");
  if (bytes > budget_)
    throw UserError(what + " needs " + formatBytes(bytes) + ", more than the GPU memory budget (" +
                    formatBytes(budget_) + ")" + where + "; use a smaller input or the CPU backend");
  return bytes;
}

void Context::requireBudget(Index bytes, const std::string& what) const {
  if (bytes < 0) throw std::invalid_argument("negative byte count for " + what);
  if (bytes > budget_ - std::min(in_use_, budget_))
    throw UserError(what + " needs " + formatBytes(bytes) + " of GPU memory, but the budget is " +
                    formatBytes(budget_) + " with " + formatBytes(in_use_) + " in use on " + description_.name +
                    "; use a smaller input or the CPU backend");
}

Buffer Context::createBuffer(Index bytes, const std::string& what, BufferUse use) {
  bufferBytes(bytes, 1, what);
  const Index request = std::max<Index>(bytes, 4);  // Vulkan forbids empty buffers
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = static_cast<VkDeviceSize>(request);
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  Buffer buf;
  VK_CHECK(vkCreateBuffer(device_, &info, nullptr, &buf.buffer_));
  buf.context_ = this;  // from here on, ~Buffer cleans up
  buf.bytes_ = bytes;
  VkMemoryRequirements req{};
  vkGetBufferMemoryRequirements(device_, buf.buffer_, &req);
  const Index allocation = clampToIndex(req.size);
  requireBudget(allocation, what);
  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(physical_, &mem);
  const int type = bestMemoryType(mem, req.memoryTypeBits, use);
  if (type < 0) throw VulkanError(VK_ERROR_FEATURE_NOT_PRESENT, "no host-visible memory type for storage buffers");
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = static_cast<std::uint32_t>(type);
  const VkResult r = vkAllocateMemory(device_, &alloc, nullptr, &buf.memory_);
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
    buf.memory_ = VK_NULL_HANDLE;
    throw UserError("not enough GPU memory for " + what + " (" + formatBytes(allocation) + ", " + resultName(r) +
                    "); use a smaller input or the CPU backend");
  }
  VK_CHECK(r);
  in_use_ += allocation;
  buf.allocated_ = allocation;
  VK_CHECK(vkBindBufferMemory(device_, buf.buffer_, buf.memory_, 0));
  VK_CHECK(vkMapMemory(device_, buf.memory_, 0, VK_WHOLE_SIZE, 0, &buf.mapped_));
  return buf;
}

// ---- pipelines --------------------------------------------------------------------------------------

const Pipeline& Context::pipeline(const PipelineDesc& desc) {
  // Appended piece by piece: GCC 12's -Wrestrict misfires on `"|" + std::to_string(...)` at -O3.
  std::string key = desc.shader;
  auto append = [&key](std::uint64_t value) {
    key += '|';
    key += std::to_string(value);
  };
  append(desc.storage_buffers);
  append(desc.push_constant_bytes);
  for (std::uint32_t v : desc.specialization) append(v);
  if (auto it = pipelines_.find(key); it != pipelines_.end()) return *it->second;

  const std::span<const std::uint32_t> words = attnlab::shaders::compute::find(desc.shader);
  if (words.empty()) throw std::invalid_argument("no compute shader named '" + desc.shader + "' in the registry");

  auto p = std::make_unique<Pipeline>();
  p->desc = desc;
  VkShaderModule module = VK_NULL_HANDLE;
  try {
    std::vector<VkDescriptorSetLayoutBinding> bindings(desc.storage_buffers);
    for (std::uint32_t i = 0; i < desc.storage_buffers; ++i) {
      bindings[i].binding = i;
      bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[i].descriptorCount = 1;
      bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    set_info.bindingCount = desc.storage_buffers;
    set_info.pBindings = bindings.data();
    VK_CHECK(vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &p->set_layout));

    VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, desc.push_constant_bytes};
    VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &p->set_layout;
    layout_info.pushConstantRangeCount = desc.push_constant_bytes > 0 ? 1 : 0;
    layout_info.pPushConstantRanges = &range;
    VK_CHECK(vkCreatePipelineLayout(device_, &layout_info, nullptr, &p->layout));

    VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    module_info.codeSize = words.size() * sizeof(std::uint32_t);
    module_info.pCode = words.data();
    VK_CHECK(vkCreateShaderModule(device_, &module_info, nullptr, &module));

    std::vector<VkSpecializationMapEntry> entries(desc.specialization.size());
    for (std::uint32_t i = 0; i < entries.size(); ++i)
      entries[i] = {i, static_cast<std::uint32_t>(i * sizeof(std::uint32_t)), sizeof(std::uint32_t)};
    VkSpecializationInfo spec{};
    spec.mapEntryCount = static_cast<std::uint32_t>(entries.size());
    spec.pMapEntries = entries.data();
    spec.dataSize = desc.specialization.size() * sizeof(std::uint32_t);
    spec.pData = desc.specialization.data();

    VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    info.stage.module = module;
    info.stage.pName = "main";
    info.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec;
    // Kernels that need whole subgroups of a fixed size (cooperative matrices, lane-pair shuffles).
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo required{
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
    if (desc.full_subgroups > 0) {
      if (!limits_.cooperative_matrix_fp16)
        throw std::logic_error("pipeline " + desc.shader + " needs subgroup size control, which this device lacks");
      required.requiredSubgroupSize = desc.full_subgroups;
      info.stage.pNext = &required;
      info.stage.flags = VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    }
    info.layout = p->layout;
    VK_CHECK(vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &info, nullptr, &p->pipeline));
    vkDestroyShaderModule(device_, module, nullptr);
  } catch (...) {
    if (module) vkDestroyShaderModule(device_, module, nullptr);
    if (p->layout) vkDestroyPipelineLayout(device_, p->layout, nullptr);
    if (p->set_layout) vkDestroyDescriptorSetLayout(device_, p->set_layout, nullptr);
    throw;
  }
  const Pipeline& ref = *p;
  pipelines_.emplace(std::move(key), std::move(p));
  return ref;
}

// ---- recording and submission -----------------------------------------------------------------------

void Recorder::dispatch(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* push,
                        std::uint32_t push_bytes, std::uint32_t groups_x, std::uint32_t groups_y,
                        std::uint32_t groups_z) {
  dispatchEach(pipeline, buffers, push, push_bytes, 1, groups_x, groups_y, groups_z);
}

void Recorder::dispatchEach(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* pushes,
                            std::uint32_t push_bytes, std::size_t count, std::uint32_t groups_x, std::uint32_t groups_y,
                            std::uint32_t groups_z) {
  if (buffers.size() != pipeline.desc.storage_buffers)
    throw std::invalid_argument(pipeline.desc.shader + ": " + std::to_string(buffers.size()) +
                                " buffers bound, the pipeline has " + std::to_string(pipeline.desc.storage_buffers));
  if (push_bytes != pipeline.desc.push_constant_bytes)
    throw std::invalid_argument(pipeline.desc.shader + ": push-constant size mismatch");
  const auto& maxc = context_.limits_.max_workgroup_count;
  if (groups_x > maxc[0] || groups_y > maxc[1] || groups_z > maxc[2])
    throw UserError(pipeline.desc.shader + ": " + std::to_string(groups_x) + "×" + std::to_string(groups_y) + "×" +
                    std::to_string(groups_z) + " workgroups exceed this GPU's limit; use a smaller input");
  if (push_bytes > 0 && count > 0 && !pushes) throw std::invalid_argument(pipeline.desc.shader + ": no push constants");
  if (groups_x == 0 || groups_y == 0 || groups_z == 0 || count == 0) return;

  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = context_.descriptor_pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &pipeline.set_layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  VK_CHECK(vkAllocateDescriptorSets(context_.device_, &alloc, &set));
  std::vector<VkDescriptorBufferInfo> infos(buffers.size());
  std::vector<VkWriteDescriptorSet> writes(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i] || buffers[i]->handle() == VK_NULL_HANDLE)
      throw std::invalid_argument(pipeline.desc.shader + ": binding " + std::to_string(i) + " has no buffer");
    infos[i] = {buffers[i]->handle(), 0, VK_WHOLE_SIZE};
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = static_cast<std::uint32_t>(i);
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vkUpdateDescriptorSets(context_.device_, static_cast<std::uint32_t>(writes.size()), writes.data(), 0, nullptr);
  vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.pipeline);
  vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &set, 0, nullptr);
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  for (std::size_t i = 0; i < count; ++i) {
    if (push_bytes > 0)
      vkCmdPushConstants(cmd_, pipeline.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes,
                         static_cast<const char*>(pushes) + i * push_bytes);
    vkCmdDispatch(cmd_, groups_x, groups_y, groups_z);
    vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                         &barrier, 0, nullptr, 0, nullptr);
  }
}

void Recorder::fill(const Buffer& buffer, std::uint32_t word) {
  vkCmdFillBuffer(cmd_, buffer.handle(), 0, VK_WHOLE_SIZE, word);
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0,
                       nullptr, 0, nullptr);
}

double Context::submit(const std::function<void(Recorder&)>& record) {
  if (lost_) throw DeviceLost("the Vulkan device " + description_.name + " was lost earlier");
  if (inject_lost_) {
    inject_lost_ = false;
    lost_ = true;
    throw DeviceLost("VK_ERROR_DEVICE_LOST (injected for testing) on " + description_.name);
  }
  struct ResetPool {  // descriptor sets live for one submit, whatever happens
    Context& c;
    ~ResetPool() { vkResetDescriptorPool(c.device_, c.descriptor_pool_, 0); }
  } reset_pool{*this};
  try {
    VK_CHECK(vkResetCommandBuffer(command_buffer_, 0));
    VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VK_CHECK(vkBeginCommandBuffer(command_buffer_, &begin));
    if (query_pool_) {
      vkCmdResetQueryPool(command_buffer_, query_pool_, 0, 2);
      vkCmdWriteTimestamp(command_buffer_, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, query_pool_, 0);
    }
    Recorder recorder(*this, command_buffer_);
    record(recorder);
    // Everything the commands wrote becomes visible to the host once the fence signals.
    VkMemoryBarrier to_host{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    to_host.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(command_buffer_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, nullptr, 0, nullptr);
    if (query_pool_) vkCmdWriteTimestamp(command_buffer_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, query_pool_, 1);
    VK_CHECK(vkEndCommandBuffer(command_buffer_));

    VK_CHECK(vkResetFences(device_, 1, &fence_));
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &command_buffer_;
    VK_CHECK(vkQueueSubmit(queue_, 1, &submit, fence_));
    VK_CHECK(vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX));

    if (!query_pool_) return std::numeric_limits<double>::quiet_NaN();
    std::uint64_t ticks[2] = {0, 0};
    VK_CHECK(vkGetQueryPoolResults(device_, query_pool_, 0, 2, sizeof ticks, ticks, sizeof(std::uint64_t),
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    const std::uint64_t mask =
        timestamp_valid_bits_ >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << timestamp_valid_bits_) - 1;
    const std::uint64_t delta = ((ticks[1] & mask) - (ticks[0] & mask)) & mask;  // wraps once at most
    const double ms = static_cast<double>(delta) * limits_.timestamp_period_ns * 1e-6;
    device_ms_total_ += ms;
    return ms;
  } catch (const DeviceLost&) {
    lost_ = true;
    throw;
  }
}

}  // namespace attn::vk
