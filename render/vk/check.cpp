#include "render/vk/check.h"

#include <cstring>

namespace attn::vk {

std::string resultName(VkResult result) {
  switch (result) {
#define ATTN_VK_RESULT(name) \
  case name:                 \
    return #name;
    ATTN_VK_RESULT(VK_SUCCESS)
    ATTN_VK_RESULT(VK_NOT_READY)
    ATTN_VK_RESULT(VK_TIMEOUT)
    ATTN_VK_RESULT(VK_EVENT_SET)
    ATTN_VK_RESULT(VK_EVENT_RESET)
    ATTN_VK_RESULT(VK_INCOMPLETE)
    ATTN_VK_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    ATTN_VK_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    ATTN_VK_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    ATTN_VK_RESULT(VK_ERROR_DEVICE_LOST)
    ATTN_VK_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    ATTN_VK_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    ATTN_VK_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    ATTN_VK_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    ATTN_VK_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    ATTN_VK_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    ATTN_VK_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    ATTN_VK_RESULT(VK_ERROR_FRAGMENTED_POOL)
    ATTN_VK_RESULT(VK_ERROR_UNKNOWN)
    ATTN_VK_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY)
    ATTN_VK_RESULT(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    ATTN_VK_RESULT(VK_ERROR_FRAGMENTATION)
    ATTN_VK_RESULT(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    ATTN_VK_RESULT(VK_PIPELINE_COMPILE_REQUIRED)
    ATTN_VK_RESULT(VK_ERROR_SURFACE_LOST_KHR)
    ATTN_VK_RESULT(VK_ERROR_NATIVE_WINDOW_IN_USE_KHR)
    ATTN_VK_RESULT(VK_SUBOPTIMAL_KHR)
    ATTN_VK_RESULT(VK_ERROR_OUT_OF_DATE_KHR)
    ATTN_VK_RESULT(VK_ERROR_VALIDATION_FAILED_EXT)
#undef ATTN_VK_RESULT
    default:
      return "VkResult(" + std::to_string(static_cast<int>(result)) + ")";
  }
}

void check(VkResult result, const char* call, const char* file, int line) {
  if (result == VK_SUCCESS) return;
  std::string what = std::string(call) + " failed: " + resultName(result);
  const char* base = std::strrchr(file, '/');
  what += " (" + std::string(base ? base + 1 : file) + ":" + std::to_string(line) + ")";
  if (result == VK_ERROR_DEVICE_LOST) throw DeviceLost(what);
  throw VulkanError(result, what);
}

}  // namespace attn::vk
