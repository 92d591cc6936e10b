// Choosing the compute backend: `--backend cpu|vulkan|auto` on the CLI, the same choice in the GUI.
#pragma once
#include <memory>
#include <string>

#include "attention/backend.h"
#include "render/gpu/vulkan_backend.h"

namespace attn::gpu {

enum class BackendChoice { Cpu, Vulkan, Auto };

/// "cpu", "vulkan" or "auto" (case-insensitive); UserError listing cpu|vulkan|auto otherwise.
BackendChoice parseBackendChoice(const std::string& text);
/// "cpu", "vulkan", "auto".
std::string backendChoiceName(BackendChoice choice);

struct BackendSelection {
  std::unique_ptr<attn::Backend> backend;  ///< never null
  /// One sentence for the user when auto fell back to the CPU (no Vulkan device, only a software
  /// rasterizer, or device creation failed); empty otherwise.
  std::string notice;
};

/// Makes the chosen backend.
///  - Cpu: attn::CpuBackend.
///  - Vulkan: VulkanBackend on the selected device (ATTNLAB_DEVICE, else the best one, a software
///    device such as lavapipe included); UserError with the reason when Vulkan is unavailable.
///  - Auto: VulkanBackend on a hardware GPU, with fall_back_on_device_lost on; the CPU backend and a
///    notice when there is none or creation fails. A software Vulkan device (lavapipe, SwiftShader:
///    device type CPU) is slower than the CPU backend, so auto uses it only when ATTNLAB_DEVICE (or
///    vulkan.context.device) names it explicitly.
/// `vulkan` configures the Vulkan backend (validation, device, poisoning); Auto forces the fallback on.
BackendSelection makeBackend(BackendChoice choice, const VulkanBackendOptions& vulkan = {});

}  // namespace attn::gpu
