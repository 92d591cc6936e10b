#include "render/vk/instance.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "render/vk/check.h"

namespace attn::vk {
namespace {

constexpr const char* k_validation_layer = "VK_LAYER_KHRONOS_validation";

VKAPI_ATTR VkBool32 VKAPI_CALL onDebugMessage(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT types,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
  auto* counters = static_cast<MessageCounters*>(user);
  const char* message = (data && data->pMessage) ? data->pMessage : "(no message)";
  const char* kind = (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT)    ? "validation"
                     : (types & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT) ? "performance"
                                                                                 : "loader/driver";
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    counters->errors.fetch_add(1);
    std::fprintf(stderr, "attnlab: Vulkan %s error: %s\n", kind, message);
  } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    counters->warnings.fetch_add(1);
    std::fprintf(stderr, "attnlab: Vulkan %s warning: %s\n", kind, message);
  }
  return VK_FALSE;
}

bool hasLayer(const char* name) {
  std::uint32_t count = 0;
  if (vkEnumerateInstanceLayerProperties(&count, nullptr) != VK_SUCCESS) return false;
  std::vector<VkLayerProperties> layers(count);
  if (vkEnumerateInstanceLayerProperties(&count, layers.data()) < 0) return false;
  layers.resize(count);
  return std::any_of(layers.begin(), layers.end(),
                     [&](const VkLayerProperties& l) { return std::strcmp(l.layerName, name) == 0; });
}

std::vector<std::string> instanceExtensions(const char* layer) {
  std::uint32_t count = 0;
  if (vkEnumerateInstanceExtensionProperties(layer, &count, nullptr) != VK_SUCCESS) return {};
  std::vector<VkExtensionProperties> props(count);
  if (vkEnumerateInstanceExtensionProperties(layer, &count, props.data()) < 0) return {};
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < count; ++i) names.emplace_back(props[i].extensionName);
  return names;
}

bool contains(const std::vector<std::string>& v, const char* s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string versionString(std::uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

/// Vendor-specific packing of driverVersion (when the driver does not report driverInfo).
std::string driverVersionString(std::uint32_t vendor, std::uint32_t v) {
  if (vendor == 0x10DE) {  // NVIDIA: 10.8.8.6 bits
    return std::to_string((v >> 22) & 0x3ff) + "." + std::to_string((v >> 14) & 0xff) + "." +
           std::to_string((v >> 6) & 0xff) + "." + std::to_string(v & 0x3f);
  }
  return versionString(v);
}

std::string typeName(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "CPU";
    default:
      return "other";
  }
}

}  // namespace

bool validationRequestedByEnvironment() {
  const char* v = std::getenv("ATTNLAB_VALIDATION");
  if (!v) return false;
  std::string s(v);
  return !(s.empty() || s == "0" || s == "off" || s == "OFF" || s == "false" || s == "FALSE");
}

Instance::Instance(const InstanceOptions& options) : counters_(std::make_unique<MessageCounters>()) {
  std::uint32_t loader_version = VK_API_VERSION_1_0;
  auto enumerate_version =
      reinterpret_cast<PFN_vkEnumerateInstanceVersion>(vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceVersion"));
  if (enumerate_version) enumerate_version(&loader_version);
  if (loader_version < VK_API_VERSION_1_1)
    throw Unavailable("the Vulkan loader supports only Vulkan " + versionString(loader_version) +
                      "; attnlab needs Vulkan 1.1");
  api_version_ = std::min<std::uint32_t>(loader_version, VK_API_VERSION_1_3);

  std::vector<const char*> layers;
  std::vector<const char*> extensions;
  const std::vector<std::string> available = instanceExtensions(nullptr);
  bool debug_utils = false;
  bool validation_features = false;
  if (options.validation) {
    if (hasLayer(k_validation_layer)) {
      layers.push_back(k_validation_layer);
      validation_ = true;
      const std::vector<std::string> layer_ext = instanceExtensions(k_validation_layer);
      debug_utils = contains(available, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                    contains(layer_ext, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
      validation_features =
          options.synchronization_validation && contains(layer_ext, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
      if (validation_features) extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
    } else {
      std::fprintf(stderr, "attnlab: Vulkan validation requested but %s is not installed; running without it\n",
                   k_validation_layer);
    }
  }
  if (debug_utils) extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  VkInstanceCreateFlags flags = 0;
#ifdef VK_KHR_portability_enumeration
  if (contains(available, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }
#endif

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "attnlab";
  app.applicationVersion = VK_MAKE_API_VERSION(0, 0, 1, 0);
  app.pEngineName = "attnlab";
  app.engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0);
  app.apiVersion = api_version_;

  VkDebugUtilsMessengerCreateInfoEXT messenger_info{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  messenger_info.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT;
  messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_info.pfnUserCallback = onDebugMessage;
  messenger_info.pUserData = counters_.get();

  const VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;

  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.flags = flags;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<std::uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<std::uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  const void* chain = nullptr;
  if (debug_utils) {
    messenger_info.pNext = chain;
    chain = &messenger_info;  // also reports problems inside vkCreateInstance / vkDestroyInstance
  }
  if (validation_features) {
    features.pNext = chain;
    chain = &features;
  }
  info.pNext = chain;

  const VkResult result = vkCreateInstance(&info, nullptr, &instance_);
  if (result != VK_SUCCESS) {
    instance_ = VK_NULL_HANDLE;
    if (result == VK_ERROR_INCOMPATIBLE_DRIVER)
      throw Unavailable("no Vulkan driver found (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER)");
    throw Unavailable("could not create a Vulkan instance (vkCreateInstance: " + resultName(result) + ")");
  }
  if (debug_utils) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
    if (create) {
      messenger_info.pNext = nullptr;
      if (create(instance_, &messenger_info, nullptr, &messenger_) != VK_SUCCESS) messenger_ = VK_NULL_HANDLE;
    }
  }
}

Instance::~Instance() {
  if (messenger_ != VK_NULL_HANDLE) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy) destroy(instance_, messenger_, nullptr);
  }
  if (instance_ != VK_NULL_HANDLE) vkDestroyInstance(instance_, nullptr);
}

std::vector<VkPhysicalDevice> Instance::physicalDevices() const {
  std::uint32_t count = 0;
  VkResult r = vkEnumeratePhysicalDevices(instance_, &count, nullptr);
  if (r != VK_SUCCESS || count == 0) return {};
  std::vector<VkPhysicalDevice> devices(count);
  r = vkEnumeratePhysicalDevices(instance_, &count, devices.data());
  if (r < 0) return {};
  devices.resize(count);
  return devices;
}

DeviceDescription describeDevice(VkPhysicalDevice device, std::uint32_t index) {
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(device, &props);
  DeviceDescription d;
  d.index = index;
  d.name = props.deviceName;
  d.vk_type = props.deviceType;
  d.type = typeName(props.deviceType);
  d.api_version = versionString(props.apiVersion);
  d.vendor_id = props.vendorID;
  d.device_id = props.deviceID;
  d.driver = driverVersionString(props.vendorID, props.driverVersion);
  if (props.apiVersion >= VK_API_VERSION_1_2) {
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    props2.pNext = &driver;
    vkGetPhysicalDeviceProperties2(device, &props2);
    std::string name = driver.driverName;
    std::string info = driver.driverInfo;
    if (!info.empty()) d.driver = name.empty() ? info : name + " " + info;
  }

  if (props.apiVersion < VK_API_VERSION_1_1) {
    d.unusable_reason = "supports only Vulkan " + d.api_version + " (attnlab needs 1.1)";
    return d;
  }
  std::uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(device, &families, nullptr);
  std::vector<VkQueueFamilyProperties> fam(families);
  vkGetPhysicalDeviceQueueFamilyProperties(device, &families, fam.data());
  const bool compute = std::any_of(fam.begin(), fam.end(), [](const VkQueueFamilyProperties& f) {
    return (f.queueFlags & VK_QUEUE_COMPUTE_BIT) && f.queueCount > 0;
  });
  if (!compute) {
    d.unusable_reason = "has no compute queue";
    return d;
  }
  d.usable = true;
  return d;
}

DeviceList listDevices() {
  DeviceList list;
  try {
    InstanceOptions options;
    options.validation = false;
    Instance instance(options);
    const std::vector<VkPhysicalDevice> devices = instance.physicalDevices();
    for (std::uint32_t i = 0; i < devices.size(); ++i) list.devices.push_back(describeDevice(devices[i], i));
    if (list.devices.empty()) list.reason = "the Vulkan driver reports no physical device";
  } catch (const std::exception& e) {
    list.devices.clear();
    list.reason = e.what();
  }
  return list;
}

}  // namespace attn::vk
