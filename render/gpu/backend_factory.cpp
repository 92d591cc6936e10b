#include "render/gpu/backend_factory.h"

#include <algorithm>
#include <cctype>

namespace attn::gpu {

BackendChoice parseBackendChoice(const std::string& text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "cpu") return BackendChoice::Cpu;
  if (s == "vulkan") return BackendChoice::Vulkan;
  if (s == "auto") return BackendChoice::Auto;
  throw UserError("unknown backend '" + text + "': choose cpu|vulkan|auto");
}

std::string backendChoiceName(BackendChoice choice) {
  switch (choice) {
    case BackendChoice::Cpu:
      return "cpu";
    case BackendChoice::Vulkan:
      return "vulkan";
    case BackendChoice::Auto:
      return "auto";
  }
  return "auto";
}

BackendSelection makeBackend(BackendChoice choice, const VulkanBackendOptions& vulkan) {
  BackendSelection selection;
  switch (choice) {
    case BackendChoice::Cpu:
      selection.backend = std::make_unique<CpuBackend>(vulkan.cpu_threads);
      return selection;
    case BackendChoice::Vulkan:
      try {
        selection.backend = std::make_unique<VulkanBackend>(vulkan);
      } catch (const UserError&) {
        throw;
      } catch (const std::exception& e) {
        throw UserError(std::string("the Vulkan backend is unavailable: ") + e.what() +
                        " (choose the cpu or auto backend)");
      }
      return selection;
    case BackendChoice::Auto:
      break;
  }
  VulkanBackendOptions options = vulkan;
  options.fall_back_on_device_lost = true;
  try {
    auto context = std::make_shared<vk::Context>(options.context);
    if (context->description().vk_type == VK_PHYSICAL_DEVICE_TYPE_CPU && !context->explicitlySelected()) {
      selection.notice = "No GPU found: the Vulkan device " + context->description().name +
                         " is a software renderer, so attnlab computes on the CPU (set ATTNLAB_DEVICE or choose "
                         "the vulkan backend to use it anyway).";
    } else {
      selection.backend = std::make_unique<VulkanBackend>(std::move(context), options);
      return selection;
    }
  } catch (const std::exception& e) {
    selection.notice = std::string("No usable Vulkan device (") + e.what() + "); computing on the CPU.";
  }
  selection.backend = std::make_unique<CpuBackend>(vulkan.cpu_threads);
  return selection;
}

}  // namespace attn::gpu
