// Vulkan side of HeatmapWindow (internal to attnlab_view): the heatmap pipeline, the per-panel
// R32_SFLOAT textures and their uploads, the colormap LUT, and the Dear ImGui context and backend
// that draw the overlay into the window's default render pass.
#pragma once
#include <QElapsedTimer>
#include <QVulkanWindowRenderer>
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "render/view/heatmap_overlay.h"

struct ImGuiContext;

namespace attnlab::view {

// The viewport draws the view model's types (render/scene) and nothing else.
using namespace attnlab::scene;  // NOLINT(google-build-using-namespace)

class HeatmapWindow;

class HeatmapRenderer : public QVulkanWindowRenderer {
 public:
  explicit HeatmapRenderer(HeatmapWindow* window);

  void initResources() override;
  void initSwapChainResources() override;
  void releaseSwapChainResources() override;
  void releaseResources() override;
  void startNextFrame() override;

 private:
  /// Draws one texture as a quad on rectangle r (logical pixels) with the scale and texture corners uv.
  void drawQuad(VkCommandBuffer cb, VkDescriptorSet set, const Rect& r, float width, float height,
                const ColorScale& scale, bool categorical, const std::array<float, 4>& uv);
  struct Image {
    VkImage image = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkImageView view = VK_NULL_HANDLE;
    std::uint32_t width = 0, height = 0;
  };
  struct Staging {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
  };
  /// One panel's texture and the descriptor set that binds it with the LUT.
  struct PanelTexture {
    Image image;
    VkDescriptorSet set = VK_NULL_HANDLE;
  };
  /// Resources a submitted frame may still read: destroyed once `frame` has surely completed.
  struct Retired {
    PanelTexture panel;
    Staging staging;
    std::uint64_t frame = 0;
  };

  bool createPipeline();
  bool createImage(VkFormat format, std::uint32_t width, std::uint32_t height, Image& out);
  bool createStaging(const void* data, VkDeviceSize bytes, Staging& out);
  /// Records staging → image (whole image) with the layout transitions around it.
  void recordUpload(VkCommandBuffer cb, const Staging& staging, const Image& image);
  void destroyImage(Image& image);
  void destroyStaging(Staging& staging);
  std::uint32_t memoryType(std::uint32_t allowed, VkMemoryPropertyFlags wanted) const;
  /// Submits `record` on the graphics queue and waits (initialisation only).
  bool runOnce(const std::function<void(VkCommandBuffer)>& record);

  void uploadScene(VkCommandBuffer cb);
  void collectRetired(bool everything);
  void initImGui();
  void feedImGuiInput(float width, float height, float pixel_ratio);

  HeatmapWindow* window_;
  VkDevice device_ = VK_NULL_HANDLE;
  QVulkanDeviceFunctions* df_ = nullptr;  // Qt declares no Vulkan prototypes: calls go through it
  VkPhysicalDeviceMemoryProperties memory_properties_{};

  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  VkDescriptorPool panel_pool_ = VK_NULL_HANDLE;
  VkSampler nearest_sampler_ = VK_NULL_HANDLE;  // weights: one texel per pooled cell
  VkSampler linear_sampler_ = VK_NULL_HANDLE;   // LUT: interpolate between colormap entries
  std::array<Image, 4> luts_;  ///< one per Colormap, in enum order

  std::vector<PanelTexture> panels_;
  std::vector<Retired> retired_;
  std::uint64_t uploaded_version_ = 0;
  std::uint64_t frame_ = 0;
  bool ready_ = false;  // false after a failed init: frames only clear

  ImGuiContext* imgui_ = nullptr;
  VkDescriptorPool imgui_pool_ = VK_NULL_HANDLE;
  OverlayFonts fonts_;
  OverlayFonts presenter_fonts_;  ///< rasterised k_presenter_scale× larger, for a scaled-up overlay
  static constexpr float k_presenter_scale = 1.5f;
  QElapsedTimer clock_;
  QElapsedTimer frame_clock_;  // frame statistics
  qint64 last_frame_ns_ = 0;
  FrameStats stats_;
  int extra_frames_ = 0;  // ImGui settles over a frame or two after input
};

}  // namespace attnlab::view
