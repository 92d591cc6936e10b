// The one error policy for Vulkan calls in attnlab (render/vk, render/gpu; no Qt).
//
//   VK_CHECK(vkCreateBuffer(device, &info, nullptr, &buffer));
//
// throws attn::vk::VulkanError naming the call, the VkResult and the source line when the result is
// not VK_SUCCESS (other non-error codes such as VK_INCOMPLETE are accepted where a caller expects
// them by comparing by hand). VK_ERROR_DEVICE_LOST throws the distinct attn::vk::DeviceLost so that
// callers can fall back to the CPU backend.
#pragma once
#include <vulkan/vulkan.h>

#include <stdexcept>
#include <string>

namespace attn::vk {

/// A Vulkan call failed. what(): "vkCall(...) failed: VK_ERROR_... (file:line)".
class VulkanError : public std::runtime_error {
 public:
  VulkanError(VkResult result, const std::string& message) : std::runtime_error(message), result_(result) {}
  VkResult result() const { return result_; }

 private:
  VkResult result_;
};

/// The device was lost (VK_ERROR_DEVICE_LOST, real or injected for tests). The Context that threw it
/// is unusable afterwards; results computed before the loss are unaffected.
class DeviceLost : public VulkanError {
 public:
  explicit DeviceLost(const std::string& message) : VulkanError(VK_ERROR_DEVICE_LOST, message) {}
};

/// No usable Vulkan: no loader/ICD, no physical device, none with a compute queue and Vulkan 1.1, or
/// ATTNLAB_DEVICE matched nothing. what() is one sentence for a person.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "VK_ERROR_OUT_OF_DEVICE_MEMORY", ... ("VkResult(<n>)" for codes this build does not know).
std::string resultName(VkResult result);

/// Throws VulkanError (DeviceLost for VK_ERROR_DEVICE_LOST) unless result == VK_SUCCESS.
void check(VkResult result, const char* call, const char* file, int line);

}  // namespace attn::vk

/// Checks a VkResult-returning call; see the top of this file.
// __FILE_NAME__ (GCC 12, Clang 9): the file's name alone, so no path of the source tree is compiled into the binary.
#define VK_CHECK(call) ::attn::vk::check((call), #call, __FILE_NAME__, __LINE__)
