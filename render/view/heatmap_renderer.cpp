// Vulkan rendering of the heatmap viewport: one textured quad per panel (heatmap.vert/.frag), then
// the ImGui overlay, in the QVulkanWindow's default render pass.
//
// Frames in flight: QVulkanWindow waits, before it calls startNextFrame() for frame F, for the fence
// of frame F − concurrentFrameCount(). A texture (or staging buffer) last used by frame F is therefore
// destroyed once frame F + concurrentFrameCount() starts, never earlier (see collectRetired()).
#include "render/view/heatmap_renderer.h"

#include <backends/imgui_impl_vulkan.h>
#include <imgui.h>

#include <QLoggingCategory>
#include <QVulkanFunctions>
#include <QVulkanInstance>
#include <algorithm>
#include <array>
#include <cstring>

#include "render/scene/colormap.h"
#include "render/view/heatmap_window.h"

#include "attnlab_draw_shaders.h"
namespace draw_shaders = attnlab::shaders::draw;

Q_LOGGING_CATEGORY(lcHeatmap, "attnlab.view")

namespace attnlab::view {

namespace {

/// The one check of this file's Vulkan calls: a failure is logged (a bug or a lost device, which
/// QVulkanWindow recovers from) and the caller gives up on the resource instead of aborting the app.
bool vkOk(VkResult result, const char* what) {
  if (result == VK_SUCCESS) return true;
  qCWarning(lcHeatmap, "%s failed: VkResult %d", what, static_cast<int>(result));
  return false;
}

void imguiCheck(VkResult result) { vkOk(result, "ImGui Vulkan backend"); }

/// Push constants shared by heatmap.vert and heatmap.frag (two vec4, 32 bytes).
struct PanelPush {
  float rect[4];   // x0, y0, x1, y1 in NDC
  float range[4];  // lo, hi, floor, mode (0 linear, 1 log10)
  float uv[4];     // texture coordinates of the top-left and bottom-right corners (panelUv)
};

VkShaderModule makeShader(QVulkanDeviceFunctions* df, VkDevice device, std::string_view name) {
  const auto words = draw_shaders::find(name);
  if (words.empty()) {
    qCWarning(lcHeatmap, "shader %.*s is not in the registry", static_cast<int>(name.size()), name.data());
    return VK_NULL_HANDLE;
  }
  VkShaderModuleCreateInfo info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  info.codeSize = words.size_bytes();
  info.pCode = words.data();
  VkShaderModule module = VK_NULL_HANDLE;
  if (!vkOk(df->vkCreateShaderModule(device, &info, nullptr, &module), "vkCreateShaderModule")) return VK_NULL_HANDLE;
  return module;
}

}  // namespace

HeatmapRenderer::HeatmapRenderer(HeatmapWindow* window) : window_(window) {}

std::uint32_t HeatmapRenderer::memoryType(std::uint32_t allowed, VkMemoryPropertyFlags wanted) const {
  for (std::uint32_t i = 0; i < memory_properties_.memoryTypeCount; ++i)
    if ((allowed & (1u << i)) && (memory_properties_.memoryTypes[i].propertyFlags & wanted) == wanted) return i;
  return UINT32_MAX;
}

bool HeatmapRenderer::createImage(VkFormat format, std::uint32_t width, std::uint32_t height, Image& out) {
  VkImageCreateInfo info{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
  info.imageType = VK_IMAGE_TYPE_2D;
  info.format = format;
  info.extent = {width, height, 1};
  info.mipLevels = 1;
  info.arrayLayers = 1;
  info.samples = VK_SAMPLE_COUNT_1_BIT;
  info.tiling = VK_IMAGE_TILING_OPTIMAL;
  info.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  info.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  out.width = width;
  out.height = height;
  if (!vkOk(df_->vkCreateImage(device_, &info, nullptr, &out.image), "vkCreateImage")) return false;
  VkMemoryRequirements req;
  df_->vkGetImageMemoryRequirements(device_, out.image, &req);
  std::uint32_t type = memoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  if (type == UINT32_MAX) type = memoryType(req.memoryTypeBits, 0);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  if (type == UINT32_MAX || !vkOk(df_->vkAllocateMemory(device_, &alloc, nullptr, &out.memory), "vkAllocateMemory") ||
      !vkOk(df_->vkBindImageMemory(device_, out.image, out.memory, 0), "vkBindImageMemory")) {
    destroyImage(out);
    return false;
  }
  VkImageViewCreateInfo view{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
  view.image = out.image;
  view.viewType = VK_IMAGE_VIEW_TYPE_2D;
  view.format = format;
  view.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  if (!vkOk(df_->vkCreateImageView(device_, &view, nullptr, &out.view), "vkCreateImageView")) {
    destroyImage(out);
    return false;
  }
  return true;
}

bool HeatmapRenderer::createStaging(const void* data, VkDeviceSize bytes, Staging& out) {
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  if (!vkOk(df_->vkCreateBuffer(device_, &info, nullptr, &out.buffer), "vkCreateBuffer")) return false;
  VkMemoryRequirements req;
  df_->vkGetBufferMemoryRequirements(device_, out.buffer, &req);
  const std::uint32_t type =
      memoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  void* mapped = nullptr;
  if (type == UINT32_MAX || !vkOk(df_->vkAllocateMemory(device_, &alloc, nullptr, &out.memory), "vkAllocateMemory") ||
      !vkOk(df_->vkBindBufferMemory(device_, out.buffer, out.memory, 0), "vkBindBufferMemory") ||
      !vkOk(df_->vkMapMemory(device_, out.memory, 0, bytes, 0, &mapped), "vkMapMemory")) {
    destroyStaging(out);
    return false;
  }
  std::memcpy(mapped, data, static_cast<std::size_t>(bytes));
  df_->vkUnmapMemory(device_, out.memory);
  return true;
}

void HeatmapRenderer::recordUpload(VkCommandBuffer cb, const Staging& staging, const Image& image) {
  VkImageMemoryBarrier barrier{VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER};
  barrier.srcAccessMask = 0;
  barrier.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.oldLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  barrier.newLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
  barrier.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  barrier.image = image.image;
  barrier.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  df_->vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, nullptr, 0,
                            nullptr, 1, &barrier);
  VkBufferImageCopy copy{};
  copy.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
  copy.imageExtent = {image.width, image.height, 1};
  df_->vkCmdCopyBufferToImage(cb, staging.buffer, image.image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &copy);
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT;
  barrier.oldLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
  barrier.newLayout = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL;
  df_->vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT, 0, 0, nullptr, 0,
                            nullptr, 1, &barrier);
}

void HeatmapRenderer::destroyImage(Image& image) {
  if (image.view) df_->vkDestroyImageView(device_, image.view, nullptr);
  if (image.image) df_->vkDestroyImage(device_, image.image, nullptr);
  if (image.memory) df_->vkFreeMemory(device_, image.memory, nullptr);
  image = Image{};
}

void HeatmapRenderer::destroyStaging(Staging& staging) {
  if (staging.buffer) df_->vkDestroyBuffer(device_, staging.buffer, nullptr);
  if (staging.memory) df_->vkFreeMemory(device_, staging.memory, nullptr);
  staging = Staging{};
}

bool HeatmapRenderer::runOnce(const std::function<void(VkCommandBuffer)>& record) {
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = window_->graphicsCommandPool();
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VkCommandBuffer cb = VK_NULL_HANDLE;
  if (!vkOk(df_->vkAllocateCommandBuffers(device_, &alloc, &cb), "vkAllocateCommandBuffers")) return false;
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  bool ok = vkOk(df_->vkBeginCommandBuffer(cb, &begin), "vkBeginCommandBuffer");
  if (ok) {
    record(cb);
    ok = vkOk(df_->vkEndCommandBuffer(cb), "vkEndCommandBuffer");
  }
  if (ok) {
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &cb;
    ok = vkOk(df_->vkQueueSubmit(window_->graphicsQueue(), 1, &submit, VK_NULL_HANDLE), "vkQueueSubmit") &&
         vkOk(df_->vkQueueWaitIdle(window_->graphicsQueue()), "vkQueueWaitIdle");
  }
  df_->vkFreeCommandBuffers(device_, window_->graphicsCommandPool(), 1, &cb);
  return ok;
}

bool HeatmapRenderer::createPipeline() {
  // Set 0: binding 0 the weights (R32_SFLOAT), binding 1 the colormap LUT.
  std::array<VkDescriptorSetLayoutBinding, 2> bindings{};
  for (std::uint32_t b = 0; b < 2; ++b) {
    bindings[b].binding = b;
    bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
    bindings[b].descriptorCount = 1;
    bindings[b].stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT;
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = static_cast<std::uint32_t>(bindings.size());
  set_info.pBindings = bindings.data();
  if (!vkOk(df_->vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &set_layout_), "vkCreateDescriptorSetLayout"))
    return false;

  VkPushConstantRange push{VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof(PanelPush)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &set_layout_;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &push;
  if (!vkOk(df_->vkCreatePipelineLayout(device_, &layout_info, nullptr, &pipeline_layout_), "vkCreatePipelineLayout"))
    return false;

  VkShaderModule vert = makeShader(df_, device_, "heatmap_vert");
  VkShaderModule frag = makeShader(df_, device_, "heatmap_frag");
  bool ok = vert && frag;
  if (ok) {
    std::array<VkPipelineShaderStageCreateInfo, 2> stages{};
    stages[0] = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                 nullptr,
                 0,
                 VK_SHADER_STAGE_VERTEX_BIT,
                 vert,
                 "main",
                 nullptr};
    stages[1] = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                 nullptr,
                 0,
                 VK_SHADER_STAGE_FRAGMENT_BIT,
                 frag,
                 "main",
                 nullptr};
    VkPipelineVertexInputStateCreateInfo vertex_input{VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
    VkPipelineInputAssemblyStateCreateInfo assembly{VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO};
    assembly.topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_STRIP;
    VkPipelineViewportStateCreateInfo viewport{VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO};
    viewport.viewportCount = 1;
    viewport.scissorCount = 1;
    VkPipelineRasterizationStateCreateInfo raster{VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO};
    raster.polygonMode = VK_POLYGON_MODE_FILL;
    raster.cullMode = VK_CULL_MODE_NONE;
    raster.frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE;
    raster.lineWidth = 1.0f;
    VkPipelineMultisampleStateCreateInfo multisample{VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO};
    multisample.rasterizationSamples = window_->sampleCountFlagBits();
    // The default render pass has a depth-stencil attachment; the quads ignore it.
    VkPipelineDepthStencilStateCreateInfo depth{VK_STRUCTURE_TYPE_PIPELINE_DEPTH_STENCIL_STATE_CREATE_INFO};
    VkPipelineColorBlendAttachmentState blend_attachment{};
    blend_attachment.colorWriteMask =
        VK_COLOR_COMPONENT_R_BIT | VK_COLOR_COMPONENT_G_BIT | VK_COLOR_COMPONENT_B_BIT | VK_COLOR_COMPONENT_A_BIT;
    VkPipelineColorBlendStateCreateInfo blend{VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO};
    blend.attachmentCount = 1;
    blend.pAttachments = &blend_attachment;
    const std::array<VkDynamicState, 2> dynamic_states{VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
    VkPipelineDynamicStateCreateInfo dynamic{VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO};
    dynamic.dynamicStateCount = static_cast<std::uint32_t>(dynamic_states.size());
    dynamic.pDynamicStates = dynamic_states.data();

    VkGraphicsPipelineCreateInfo info{VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO};
    info.stageCount = static_cast<std::uint32_t>(stages.size());
    info.pStages = stages.data();
    info.pVertexInputState = &vertex_input;
    info.pInputAssemblyState = &assembly;
    info.pViewportState = &viewport;
    info.pRasterizationState = &raster;
    info.pMultisampleState = &multisample;
    info.pDepthStencilState = &depth;
    info.pColorBlendState = &blend;
    info.pDynamicState = &dynamic;
    info.layout = pipeline_layout_;
    info.renderPass = window_->defaultRenderPass();
    ok = vkOk(df_->vkCreateGraphicsPipelines(device_, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline_),
              "vkCreateGraphicsPipelines");
  }
  if (vert) df_->vkDestroyShaderModule(device_, vert, nullptr);
  if (frag) df_->vkDestroyShaderModule(device_, frag, nullptr);
  return ok;
}

void HeatmapRenderer::initResources() {
  device_ = window_->device();
  df_ = window_->vulkanInstance()->deviceFunctions(device_);
  window_->vulkanInstance()->functions()->vkGetPhysicalDeviceMemoryProperties(window_->physicalDevice(),
                                                                              &memory_properties_);

  VkSamplerCreateInfo sampler{VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO};
  sampler.magFilter = VK_FILTER_NEAREST;
  sampler.minFilter = VK_FILTER_NEAREST;
  sampler.mipmapMode = VK_SAMPLER_MIPMAP_MODE_NEAREST;
  sampler.addressModeU = sampler.addressModeV = sampler.addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE;
  sampler.maxLod = 0;
  bool ok = vkOk(df_->vkCreateSampler(device_, &sampler, nullptr, &nearest_sampler_), "vkCreateSampler");
  sampler.magFilter = sampler.minFilter = VK_FILTER_LINEAR;
  ok = ok && vkOk(df_->vkCreateSampler(device_, &sampler, nullptr, &linear_sampler_), "vkCreateSampler");

  // Room for 4 live panels plus the retired ones of up to 3 frames in flight, with slack.
  const VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 2 * 32};
  VkDescriptorPoolCreateInfo pool{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  pool.maxSets = 32;
  pool.poolSizeCount = 1;
  pool.pPoolSizes = &pool_size;
  ok = ok && vkOk(df_->vkCreateDescriptorPool(device_, &pool, nullptr, &panel_pool_), "vkCreateDescriptorPool");
  ok = ok && createPipeline();

  // The colormap LUTs, uploaded once; a scene picks one when its textures are bound.
  for (std::size_t m = 0; ok && m < luts_.size(); ++m) {
    const auto lut = rgba8(static_cast<Colormap>(m));
    Staging staging;
    ok = createImage(VK_FORMAT_R8G8B8A8_UNORM, 256, 1, luts_[m]) && createStaging(lut.data(), lut.size(), staging) &&
         runOnce([&](VkCommandBuffer cb) { recordUpload(cb, staging, luts_[m]); });
    destroyStaging(staging);
  }
  ready_ = ok;
  initImGui();
  uploaded_version_ = 0;  // textures are made anew in the first frame
  frame_ = 0;
  clock_.start();
}

void HeatmapRenderer::initImGui() {
  IMGUI_CHECKVERSION();
  imgui_ = ImGui::CreateContext();
  ImGui::SetCurrentContext(imgui_);
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // nothing to persist; never write imgui.ini into the working directory
  io.LogFilename = nullptr;
  io.BackendPlatformName = "attnlab-qt";
  ImGui::StyleColorsDark();
  fonts_ = loadOverlayFonts(static_cast<float>(window_->devicePixelRatio()));
  presenter_fonts_ = loadOverlayFonts(static_cast<float>(window_->devicePixelRatio()), k_presenter_scale);

  const VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 4};
  VkDescriptorPoolCreateInfo pool{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  pool.maxSets = 4;
  pool.poolSizeCount = 1;
  pool.pPoolSizes = &pool_size;
  if (!vkOk(df_->vkCreateDescriptorPool(device_, &pool, nullptr, &imgui_pool_), "vkCreateDescriptorPool (ImGui)")) {
    ready_ = false;
    return;
  }
  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = window_->vulkanInstance()->vkInstance();
  info.PhysicalDevice = window_->physicalDevice();
  info.Device = device_;
  info.QueueFamily = window_->graphicsQueueFamilyIndex();
  info.Queue = window_->graphicsQueue();
  info.DescriptorPool = imgui_pool_;
  info.Subpass = 0;
  // ImGui keeps one vertex/index buffer set per frame slot; it needs at least as many slots as frames
  // that can be in flight.
  info.MinImageCount = 2;
  info.ImageCount = QVulkanWindow::MAX_CONCURRENT_FRAME_COUNT;
  info.MSAASamples = window_->sampleCountFlagBits();
  info.CheckVkResultFn = imguiCheck;
  if (!ImGui_ImplVulkan_Init(&info, window_->defaultRenderPass())) {
    qCWarning(lcHeatmap, "ImGui_ImplVulkan_Init failed");
    ready_ = false;
    return;
  }
  if (!runOnce([](VkCommandBuffer cb) { ImGui_ImplVulkan_CreateFontsTexture(cb); }))
    qCWarning(lcHeatmap, "could not upload the ImGui font atlas");
  ImGui_ImplVulkan_DestroyFontUploadObjects();
}

void HeatmapRenderer::initSwapChainResources() {
  // Nothing depends on the swapchain size: the layout is recomputed every frame.
  extra_frames_ = 1;
}

void HeatmapRenderer::releaseSwapChainResources() {}

void HeatmapRenderer::collectRetired(bool everything) {
  const auto lag = static_cast<std::uint64_t>(window_->concurrentFrameCount());
  auto done = [&](const Retired& r) { return everything || frame_ >= r.frame + lag; };
  for (Retired& r : retired_) {
    if (!done(r)) continue;
    if (r.panel.set) df_->vkFreeDescriptorSets(device_, panel_pool_, 1, &r.panel.set);
    destroyImage(r.panel.image);
    destroyStaging(r.staging);
  }
  retired_.erase(std::remove_if(retired_.begin(), retired_.end(), done), retired_.end());
}

void HeatmapRenderer::releaseResources() {
  // QVulkanWindow has waited for the device to be idle: everything can go now.
  if (imgui_) {
    ImGui::SetCurrentContext(imgui_);
    if (ImGui::GetIO().BackendRendererUserData) ImGui_ImplVulkan_Shutdown();
    ImGui::DestroyContext(imgui_);
    imgui_ = nullptr;
  }
  for (PanelTexture& p : panels_) retired_.push_back({p, Staging{}, 0});
  panels_.clear();
  collectRetired(true);
  for (Image& lut : luts_) destroyImage(lut);
  if (imgui_pool_) df_->vkDestroyDescriptorPool(device_, imgui_pool_, nullptr);
  if (panel_pool_) df_->vkDestroyDescriptorPool(device_, panel_pool_, nullptr);
  if (pipeline_) df_->vkDestroyPipeline(device_, pipeline_, nullptr);
  if (pipeline_layout_) df_->vkDestroyPipelineLayout(device_, pipeline_layout_, nullptr);
  if (set_layout_) df_->vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  if (nearest_sampler_) df_->vkDestroySampler(device_, nearest_sampler_, nullptr);
  if (linear_sampler_) df_->vkDestroySampler(device_, linear_sampler_, nullptr);
  imgui_pool_ = panel_pool_ = VK_NULL_HANDLE;
  pipeline_ = VK_NULL_HANDLE;
  pipeline_layout_ = VK_NULL_HANDLE;
  set_layout_ = VK_NULL_HANDLE;
  nearest_sampler_ = linear_sampler_ = VK_NULL_HANDLE;
  ready_ = false;
}

void HeatmapRenderer::uploadScene(VkCommandBuffer cb) {
  // The old textures may still be read by frames in flight: retire them, do not destroy them.
  for (PanelTexture& p : panels_) retired_.push_back({p, Staging{}, frame_});
  panels_.clear();
  // The panels, then the minimap (always last, when it has values).
  std::vector<const scene::Panel*> sources;
  for (const scene::Panel& panel : window_->scene().panels) sources.push_back(&panel);
  if (window_->scene().minimap.values.size() > 0) sources.push_back(&window_->scene().minimap);
  for (const scene::Panel* image : sources) {
    const scene::Panel& panel = *image;
    PanelTexture texture;
    const auto rows = static_cast<std::uint32_t>(panel.values.rows());
    const auto cols = static_cast<std::uint32_t>(panel.values.cols());
    Staging staging;
    if (rows > 0 && cols > 0 && createImage(VK_FORMAT_R32_SFLOAT, cols, rows, texture.image) &&
        createStaging(panel.values.data(), VkDeviceSize(rows) * cols * sizeof(float), staging)) {
      recordUpload(cb, staging, texture.image);
      VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
      alloc.descriptorPool = panel_pool_;
      alloc.descriptorSetCount = 1;
      alloc.pSetLayouts = &set_layout_;
      if (vkOk(df_->vkAllocateDescriptorSets(device_, &alloc, &texture.set), "vkAllocateDescriptorSets")) {
        const std::array<VkDescriptorImageInfo, 2> images{{
            {nearest_sampler_, texture.image.view, VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL},
            {linear_sampler_,
             luts_[std::size_t(panel.signed_values ? Colormap::Diverging : window_->scene().colormap) % luts_.size()].view,
             VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL},
        }};
        std::array<VkWriteDescriptorSet, 2> writes{};
        for (std::uint32_t b = 0; b < 2; ++b) {
          writes[b] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
          writes[b].dstSet = texture.set;
          writes[b].dstBinding = b;
          writes[b].descriptorCount = 1;
          writes[b].descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
          writes[b].pImageInfo = &images[b];
        }
        df_->vkUpdateDescriptorSets(device_, static_cast<std::uint32_t>(writes.size()), writes.data(), 0, nullptr);
      } else {
        texture.set = VK_NULL_HANDLE;
      }
    } else if (texture.image.image) {
      destroyImage(texture.image);
    }
    // The staging buffer is read by this frame's copy: it retires with this frame.
    if (staging.buffer) retired_.push_back({PanelTexture{}, staging, frame_});
    panels_.push_back(texture);
  }
  uploaded_version_ = window_->sceneVersion();
}

void HeatmapRenderer::feedImGuiInput(float width, float height, float pixel_ratio) {
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(width, height);
  io.DisplayFramebufferScale = ImVec2(pixel_ratio, pixel_ratio);
  const qint64 ns = clock_.nsecsElapsed();
  clock_.restart();
  io.DeltaTime = std::max(1e-4f, static_cast<float>(ns) * 1e-9f);
  const PointerState& pointer = window_->pointer();
  io.MousePos = pointer.inside ? ImVec2(static_cast<float>(pointer.pos.x()), static_cast<float>(pointer.pos.y()))
                               : ImVec2(-FLT_MAX, -FLT_MAX);
  for (int b = 0; b < 3; ++b) io.MouseDown[b] = pointer.buttons[b];
  io.MouseWheel = window_->takeWheel();
}

void HeatmapRenderer::drawQuad(VkCommandBuffer cb, VkDescriptorSet set, const Rect& r, float width, float height,
                               const ColorScale& scale, bool categorical, const std::array<float, 4>& uv) {
  PanelPush push{
      {2 * r.x / width - 1, 2 * r.y / height - 1, 2 * (r.x + r.w) / width - 1, 2 * (r.y + r.h) / height - 1},
      {scale.lo, scale.hi, scale.floor, categorical ? 2.0f : scale.mode == ScaleMode::Log10 ? 1.0f : 0.0f},
      {uv[0], uv[1], uv[2], uv[3]}};
  df_->vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, pipeline_layout_, 0, 1, &set, 0, nullptr);
  df_->vkCmdPushConstants(cb, pipeline_layout_, VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0,
                          sizeof(PanelPush), &push);
  df_->vkCmdDraw(cb, 4, 1, 0, 0);
}

void HeatmapRenderer::startNextFrame() {
  ++frame_;
  // Frame statistics: the rate while frames follow each other (< 250 ms apart), smoothed.
  const qint64 now_ns = frame_clock_.isValid() ? frame_clock_.nsecsElapsed() : 0;
  if (!frame_clock_.isValid()) frame_clock_.start();
  const double gap_ms = double(now_ns - last_frame_ns_) * 1e-6;
  last_frame_ns_ = now_ns;
  if (gap_ms > 0 && gap_ms < 250)
    stats_.fps = stats_.fps > 0 ? 0.8 * stats_.fps + 0.2 * (1000.0 / gap_ms) : 1000.0 / gap_ms;
  else
    stats_.fps = 0;
  collectRetired(false);
  VkCommandBuffer cb = window_->currentCommandBuffer();
  const QSize pixels = window_->swapChainImageSize();
  const float width = static_cast<float>(window_->width());
  const float height = static_cast<float>(window_->height());
  const float pixel_ratio = width > 0 ? static_cast<float>(pixels.width()) / width : 1.0f;

  if (ready_ && uploaded_version_ != window_->sceneVersion()) uploadScene(cb);

  const scene::Scene& scene = window_->scene();
  const SceneLayout layout = layoutScene(width, height, scene);
  if (imgui_) {
    ImGui::SetCurrentContext(imgui_);
    ImGui_ImplVulkan_NewFrame();
    feedImGuiInput(width, height, pixel_ratio);
    ImGui::NewFrame();
    // The overlay is drawn in units of 1/s window pixels, then its vertices are scaled by s.
    const float s = uiScale(scene);
    PointerState pointer = window_->pointer();
    pointer.pos /= double(s);
    SceneLayout units = layout;  // the screen layout in overlay units, so both meet on whole pixels
    if (s != 1) {
      auto unscale = [s](Rect& r) { r = {r.x / s, r.y / s, r.w / s, r.h / s}; };
      for (Rect& r : units.panels) unscale(r);
      unscale(units.legend_bar);
      unscale(units.minimap);
      for (Rect& r : units.step_buttons) unscale(r);
    }
    stats_.shown = window_->frame_stats_.shown;
    drawOverlay(scene, units, pointer, s > 1 ? presenter_fonts_ : fonts_, stats_, width / s, height / s);
    ImGui::Render();
    if (s != 1) {
      ImDrawData* data = ImGui::GetDrawData();
      for (int l = 0; l < data->CmdListsCount; ++l) {
        ImDrawList* list = data->CmdLists[l];
        for (ImDrawVert& v : list->VtxBuffer) v.pos = ImVec2(v.pos.x * s, v.pos.y * s);
        for (ImDrawCmd& cmd : list->CmdBuffer)
          cmd.ClipRect = ImVec4(cmd.ClipRect.x * s, cmd.ClipRect.y * s, cmd.ClipRect.z * s, cmd.ClipRect.w * s);
      }
    }
  }

  const std::uint8_t* bg = window_->background();
  std::array<VkClearValue, 3> clear{};
  clear[0].color = {{bg[0] / 255.0f, bg[1] / 255.0f, bg[2] / 255.0f, 1.0f}};
  clear[1].depthStencil = {1.0f, 0};
  clear[2].color = clear[0].color;
  VkRenderPassBeginInfo begin{VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO};
  begin.renderPass = window_->defaultRenderPass();
  begin.framebuffer = window_->currentFramebuffer();
  begin.renderArea.extent = {static_cast<std::uint32_t>(pixels.width()), static_cast<std::uint32_t>(pixels.height())};
  begin.clearValueCount = window_->sampleCountFlagBits() > VK_SAMPLE_COUNT_1_BIT ? 3 : 2;
  begin.pClearValues = clear.data();
  df_->vkCmdBeginRenderPass(cb, &begin, VK_SUBPASS_CONTENTS_INLINE);

  if (ready_ && width > 0 && height > 0) {
    df_->vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, pipeline_);
    const VkViewport viewport{0, 0, static_cast<float>(pixels.width()), static_cast<float>(pixels.height()), 0, 1};
    df_->vkCmdSetViewport(cb, 0, 1, &viewport);
    const VkRect2D scissor{{0, 0}, begin.renderArea.extent};
    df_->vkCmdSetScissor(cb, 0, 1, &scissor);
    const ColorScale& scale = scene.scale;
    for (std::size_t k = 0; k < scene.panels.size() && k < panels_.size() && k < layout.panels.size(); ++k) {
      if (!panels_[k].set) continue;
      const Rect& r = layout.panels[k];
      const bool categorical = k < scene.panels.size() && !scene.panels[k].categories.empty();
      const std::array<float, 4> uv = k < scene.panels.size() ? panelUv(scene, k) : std::array<float, 4>{0, 0, 1, 1};
      ColorScale own = scale;
      if (scene.panels[k].signed_values) {  // linear over ±range on the diverging LUT
        const float range = std::max(scene.panels[k].signed_range, 1e-30f);
        own = {ScaleMode::Linear, -range, range, scale.floor};
      }
      drawQuad(cb, panels_[k].set, r, width, height, own, categorical, uv);
    }
    // The minimap (the last texture) while zoomed in.
    if (layout.minimap.w > 0 && panels_.size() == scene.panels.size() + 1 && panels_.back().set)
      drawQuad(cb, panels_.back().set, layout.minimap, width, height, scale, false, {0, 0, 1, 1});
  }
  if (imgui_ && ready_) ImGui_ImplVulkan_RenderDrawData(ImGui::GetDrawData(), cb);
  df_->vkCmdEndRenderPass(cb);

  stats_.draw_ms = double(frame_clock_.nsecsElapsed() - now_ns) * 1e-6;
  window_->frame_stats_ = stats_;
  ++window_->frames_;
  window_->frameReady();
  // A renderer that failed to initialise shows nothing, but it must not keep waiters waiting.
  window_->notifyFrameRendered(ready_ ? uploaded_version_ : window_->sceneVersion());
  if (extra_frames_ > 0) {
    --extra_frames_;
    window_->requestUpdate();
  }
}

}  // namespace attnlab::view
