// The Vulkan compute context of attnlab (Qt-free): one instance, one physical device, one compute
// queue; buffers with a memory budget and size guards; compute pipelines by shader name from the
// generated registry (shaders/compute/*.comp), cached; a one-shot submit with device timestamps.
//
//   attn::vk::Context ctx;                                   // ATTNLAB_DEVICE / ATTNLAB_VALIDATION
//   Index bytes = ctx.bufferBytes(n * d, sizeof(float), "Q"); // UserError if too large
//   attn::vk::Buffer q = ctx.createBuffer(bytes, "Q");
//   q.upload(matrix.data(), bytes);
//   const attn::vk::Pipeline& p = ctx.pipeline({"matmul", 3, sizeof(Push)});
//   double ms = ctx.submit([&](attn::vk::Recorder& r) { r.dispatch(p, {&a, &b, &c}, push, gx, gy); });
//
// A Context is used by one thread at a time (the backend's calls are synchronous). Buffers and
// pipelines belong to the Context that made them and must not outlive it.
#pragma once
#include <vulkan/vulkan.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "attention/types.h"
#include "render/vk/check.h"
#include "render/vk/instance.h"

namespace attn::vk {

struct ContextOptions {
  InstanceOptions instance;
  /// Device selector: an index into the enumeration order ("0", "1") or a case-insensitive substring
  /// of the device name ("nvidia", "llvmpipe"). Empty: the environment variable ATTNLAB_DEVICE; when
  /// that is unset too, the best usable device (discrete > integrated > virtual > CPU > other).
  std::string device;
};

/// Device facts recorded at creation. Sizes in bytes.
struct DeviceLimits {
  Index max_compute_shared_memory = 0;   ///< maxComputeSharedMemorySize (per workgroup)
  Index max_storage_buffer_range = 0;    ///< maxStorageBufferRange (per storage-buffer binding)
  Index max_memory_allocation_size = 0;  ///< VkPhysicalDeviceMaintenance3Properties::maxMemoryAllocationSize
  std::uint32_t max_workgroup_invocations = 0;
  std::array<std::uint32_t, 3> max_workgroup_count{};
  std::array<std::uint32_t, 3> max_workgroup_size{};
  std::uint32_t subgroup_size = 0;  ///< default subgroup size (8 on lavapipe, 4 with LP_NATIVE_VECTOR_WIDTH=128)
  bool timestamps = false;          ///< the compute queue supports timestamp queries
  double timestamp_period_ns = 0;   ///< nanoseconds per timestamp tick
  Index memory_heap_size = 0;       ///< size of the heap input buffers (BufferUse::DeviceRead) come from
  /// Loop iterations one shader invocation may execute, all its loops together, before the driver
  /// silently ends every loop (0: no such limit known). lavapipe/llvmpipe (gallivm) has one, 65535
  /// (LP_MAX_TGSI_LOOP_ITERATIONS, a counter shared by every loop of the invocation and decremented
  /// at each back edge): past it the kernel runs on with truncated loops and writes wrong results,
  /// without any error. Vulkan has no query for it; the Context sets it from the driver ID. Kernels
  /// whose loops grow with the input split their work across dispatches to stay well below it.
  std::uint32_t max_loop_iterations = 0;
  /// The device has VK_NV_cooperative_matrix for compute shaders with a 16×16×16 fp16 × fp16 → fp32
  /// subgroup configuration, fp16 arithmetic, the Vulkan memory model, subgroup size control with
  /// full 32-wide compute subgroups (Vulkan 1.3) and subgroup vote and shuffle; the Context enabled
  /// them (tensor-core kernels may run). Off when ATTNLAB_NO_COOPMAT=1.
  bool cooperative_matrix_fp16 = false;
};

class Context;

/// What a buffer is for; picks the host-visible memory type that suits it.
enum class BufferUse {
  DeviceRead,  ///< written by the host, read (often) by kernels: device-local when host-visible VRAM is large
  HostRead,    ///< written by kernels, read back by the host: host-cached memory when the device has it
};

/// A storage buffer in host-visible, host-coherent memory, persistently mapped. Move-only RAII; its
/// bytes count against the Context's memory budget while it lives.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  VkBuffer handle() const { return buffer_; }
  /// Usable size in bytes (as requested; the allocation may be larger).
  Index bytes() const { return bytes_; }
  /// Bytes of device memory held (counted against the budget).
  Index allocatedBytes() const { return allocated_; }
  void* mapped() const { return mapped_; }
  template <class T>
  T* data() const {
    static_assert(std::is_trivially_copyable_v<T>);
    return static_cast<T*>(mapped_);
  }
  /// Copies `bytes` from host memory to offset `offset` (bounds-checked: std::out_of_range).
  void upload(const void* src, Index bytes, Index offset = 0);
  /// Copies `bytes` from offset `offset` to host memory (bounds-checked: std::out_of_range).
  void download(void* dst, Index bytes, Index offset = 0) const;

 private:
  friend class Context;
  void release() noexcept;
  Context* context_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  void* mapped_ = nullptr;
  Index bytes_ = 0;
  Index allocated_ = 0;
};

/// What a compute pipeline needs: the registry name of its SPIR-V (file stem or variant name from
/// shaders/CMakeLists.txt), its storage-buffer bindings 0..storage_buffers-1 in set 0, the size of
/// its push-constant block, and specialization constants (constant_id i = specialization[i]).
struct PipelineDesc {
  std::string shader;
  std::uint32_t storage_buffers = 0;
  std::uint32_t push_constant_bytes = 0;
  std::vector<std::uint32_t> specialization;
  /// > 0: the kernel needs whole subgroups of exactly this size (REQUIRE_FULL_SUBGROUPS plus a
  /// required subgroup size; only on devices with cooperative_matrix_fp16, which enables the features).
  std::uint32_t full_subgroups = 0;
};

/// A compute pipeline owned by (and cached in) its Context.
struct Pipeline {
  PipelineDesc desc;
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
};

/// Records commands into the command buffer of one Context::submit.
class Recorder {
 public:
  VkCommandBuffer commandBuffer() const { return cmd_; }
  /// Binds `buffers` to bindings 0..n-1 (whole ranges), pushes `push_bytes` bytes of `push`, and
  /// dispatches groups_x × groups_y × groups_z workgroups. Then a compute→compute barrier, so the
  /// next dispatch sees this one's writes. UserError if a group count exceeds the device's limit.
  void dispatch(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* push,
                std::uint32_t push_bytes, std::uint32_t groups_x, std::uint32_t groups_y = 1,
                std::uint32_t groups_z = 1);
  template <class Push>
  void dispatch(const Pipeline& pipeline, std::initializer_list<const Buffer*> buffers, const Push& push,
                std::uint32_t groups_x, std::uint32_t groups_y = 1, std::uint32_t groups_z = 1) {
    static_assert(std::is_trivially_copyable_v<Push>);
    dispatch(pipeline, std::span<const Buffer* const>(buffers.begin(), buffers.size()), &push,
             static_cast<std::uint32_t>(sizeof(Push)), groups_x, groups_y, groups_z);
  }
  /// dispatch() `count` times with one descriptor set (a submit may allocate only a few sets):
  /// dispatch i pushes the push_bytes bytes at pushes + i·push_bytes. A compute→compute barrier
  /// follows each dispatch, so each one sees the writes of those before it (work split across
  /// dispatches, e.g. to respect DeviceLimits::max_loop_iterations).
  void dispatchEach(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* pushes,
                    std::uint32_t push_bytes, std::size_t count, std::uint32_t groups_x, std::uint32_t groups_y = 1,
                    std::uint32_t groups_z = 1);
  template <class Push>
  void dispatchEach(const Pipeline& pipeline, std::initializer_list<const Buffer*> buffers,
                    std::span<const Push> pushes, std::uint32_t groups_x, std::uint32_t groups_y = 1,
                    std::uint32_t groups_z = 1) {
    static_assert(std::is_trivially_copyable_v<Push>);
    dispatchEach(pipeline, std::span<const Buffer* const>(buffers.begin(), buffers.size()), pushes.data(),
                 static_cast<std::uint32_t>(sizeof(Push)), pushes.size(), groups_x, groups_y, groups_z);
  }
  /// Fills the whole buffer (rounded down to 4 bytes) with a 32-bit word (e.g. 0x7fc00000 = NaN,
  /// to poison outputs in tests), followed by a transfer→compute barrier.
  void fill(const Buffer& buffer, std::uint32_t word);

 private:
  friend class Context;
  Recorder(Context& context, VkCommandBuffer cmd) : context_(context), cmd_(cmd) {}
  Context& context_;
  VkCommandBuffer cmd_;
};

class Context {
 public:
  /// Creates the instance and device. Throws Unavailable (no driver, no usable device, or the
  /// selector matches none; the message lists the devices) or VulkanError.
  explicit Context(const ContextOptions& options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  VkInstance instance() const { return instance_->handle(); }
  VkPhysicalDevice physicalDevice() const { return physical_; }
  VkDevice device() const { return device_; }
  VkQueue queue() const { return queue_; }
  std::uint32_t queueFamily() const { return queue_family_; }
  const DeviceDescription& description() const { return description_; }
  const DeviceLimits& limits() const { return limits_; }
  /// true when the device was chosen by ContextOptions::device or ATTNLAB_DEVICE, not by ranking.
  bool explicitlySelected() const { return explicitly_selected_; }

  bool validationEnabled() const { return instance_->validationEnabled(); }
  /// Error-severity debug messages so far (each also printed to stderr). Tests require 0.
  std::uint64_t validationErrorCount() const { return instance_->validationErrorCount(); }

  // ---- memory budget and size guards -------------------------------------------------------------
  /// Bytes the Context may hold in buffers at once. Default: 3/4 of the heap input buffers come from.
  Index memoryBudget() const { return budget_; }
  /// Sets the budget (bytes > 0); 0 restores the default. Tests force a small limit with it.
  void setMemoryBudget(Index bytes);
  /// Bytes held by live buffers now.
  Index memoryInUse() const { return in_use_; }
  /// count × element_bytes with an overflow check, refused (UserError naming `what`) when it exceeds
  /// the storage-buffer range, the largest allocation or the memory budget. Returns the byte count.
  Index bufferBytes(Index count, Index element_bytes, const std::string& what) const;
  /// UserError unless `bytes` more bytes fit in the budget now (check a whole call's buffers first,
  /// so nothing is allocated for a call that cannot run).
  void requireBudget(Index bytes, const std::string& what) const;
  /// Allocates a storage buffer of `bytes` (0 is allowed: a minimal buffer) in the memory type that
  /// suits `use`. UserError when it does not fit (see bufferBytes) or the driver is out of memory.
  Buffer createBuffer(Index bytes, const std::string& what, BufferUse use = BufferUse::DeviceRead);

  // ---- pipelines ----------------------------------------------------------------------------------
  /// The pipeline for `desc`, created on first use and cached by (shader, layout, specialization).
  /// std::invalid_argument when the registry has no such shader.
  const Pipeline& pipeline(const PipelineDesc& desc);

  // ---- submission ---------------------------------------------------------------------------------
  /// Records commands with `record`, submits them to the compute queue and waits. Returns the device
  /// time between the first and the last command in milliseconds (NaN when the queue has no
  /// timestamps). Buffers written by the commands are visible to the host afterwards.
  /// Throws DeviceLost (and the Context is unusable from then on) when the device is lost.
  double submit(const std::function<void(Recorder&)>& record);
  /// Sum of the device times of every submit so far (ms; 0 without timestamp support).
  double deviceMsTotal() const { return device_ms_total_; }
  bool hasTimestamps() const { return query_pool_ != VK_NULL_HANDLE; }

  /// Test hook: the next submit() throws DeviceLost as if the device had been lost.
  void injectDeviceLost() { inject_lost_ = true; }
  /// true after a device loss (real or injected).
  bool lost() const { return lost_; }

 private:
  friend class Buffer;
  friend class Recorder;
  void selectDevice(const ContextOptions& options);
  void createDevice();
  bool probeCooperativeMatrix(const VkPhysicalDeviceSubgroupProperties& subgroup) const;
  void destroy() noexcept;
  void returnBytes(Index bytes) noexcept { in_use_ -= bytes; }
  Index defaultBudget() const;

  std::unique_ptr<Instance> instance_;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  DeviceDescription description_;
  DeviceLimits limits_;
  bool explicitly_selected_ = false;
  std::uint32_t queue_family_ = 0;
  std::uint32_t memory_type_ = 0;
  std::uint32_t timestamp_valid_bits_ = 0;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer command_buffer_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkQueryPool query_pool_ = VK_NULL_HANDLE;
  double device_ms_total_ = 0;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  std::map<std::string, std::unique_ptr<Pipeline>> pipelines_;
  Index budget_ = 0;
  Index in_use_ = 0;
  bool inject_lost_ = false;
  bool lost_ = false;
};

/// "12.0 MiB", "512 B" (for messages).
std::string formatBytes(Index bytes);

}  // namespace attn::vk
