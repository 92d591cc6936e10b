// The Vulkan instance (with the validation layer and a counting debug messenger) and the list of
// physical devices, for `attnlab info` and for device selection. Qt-free.
#pragma once
#include <vulkan/vulkan.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attn::vk {

/// true when the environment asks for validation: ATTNLAB_VALIDATION=1 (or any value other than
/// "", "0", "off", "false").
bool validationRequestedByEnvironment();

struct InstanceOptions {
  /// Enable VK_LAYER_KHRONOS_validation when it is installed (a warning on stderr when it is not).
  /// Default: validationRequestedByEnvironment(). Tests force it on.
  bool validation = validationRequestedByEnvironment();
  /// With validation: also enable synchronization validation (missing barriers are errors).
  bool synchronization_validation = true;
};

/// Messages counted by the debug messenger (shared with its callback).
struct MessageCounters {
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> warnings{0};
};

/// VkInstance RAII. Creation never aborts the process: without a loader-visible driver (no ICD, or a
/// bogus VK_DRIVER_FILES) it throws Unavailable with a reason a person can read.
/// Not copyable or movable (the debug messenger keeps a pointer to the counters).
class Instance {
 public:
  explicit Instance(const InstanceOptions& options = {});
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  VkInstance handle() const { return instance_; }
  /// The API version the instance was created with (VK_MAKE_API_VERSION form, ≥ 1.1).
  std::uint32_t apiVersion() const { return api_version_; }
  /// true when VK_LAYER_KHRONOS_validation is active.
  bool validationEnabled() const { return validation_; }
  /// Error-severity messages received by the debug messenger since creation (validation errors,
  /// loader errors). Each one was also printed to stderr. Thread-safe.
  std::uint64_t validationErrorCount() const { return counters_->errors.load(); }
  /// Warning-severity messages (printed, not counted as failures).
  std::uint64_t validationWarningCount() const { return counters_->warnings.load(); }
  /// All physical devices (possibly none).
  std::vector<VkPhysicalDevice> physicalDevices() const;

 private:
  std::unique_ptr<MessageCounters> counters_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  std::uint32_t api_version_ = 0;
  bool validation_ = false;
};

/// A physical device as `attnlab info` and reports show it.
struct DeviceDescription {
  std::uint32_t index = 0;  ///< position in enumeration order (what ATTNLAB_DEVICE=<index> selects)
  std::string name;         ///< "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string type;         ///< "discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"
  VkPhysicalDeviceType vk_type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  std::string driver;       ///< "NVIDIA 535.104.05", "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)"
  std::string api_version;  ///< "1.3.230"
  std::uint32_t vendor_id = 0, device_id = 0;
  bool usable = false;          ///< Vulkan ≥ 1.1 and a compute queue: attnlab can compute on it
  std::string unusable_reason;  ///< why not, when !usable
};

/// Describes one physical device (name, type, driver string, API version, usability).
DeviceDescription describeDevice(VkPhysicalDevice device, std::uint32_t index);

/// Result of listDevices(): the devices, or none and the reason (no driver, no device, ...).
struct DeviceList {
  std::vector<DeviceDescription> devices;
  std::string reason;  ///< empty when devices is not empty
};

/// Enumerates the Vulkan devices with a short-lived instance (no validation). Never throws for a
/// missing or broken Vulkan installation: returns an empty list and the reason instead.
DeviceList listDevices();

}  // namespace attn::vk
