// The heatmap viewport: a QVulkanWindow that draws 1–4 weight heatmaps side by side (R32_SFLOAT
// textures coloured by heatmap.frag through the viridis LUT) and a Dear ImGui overlay with titles,
// axis ticks, the colour legend, captions and a hover readout. Embed it in a widget tree with
// QWidget::createWindowContainer (the container then owns it).
//
// Threading: every member is called on the GUI thread; rendering happens there too (QVulkanWindow's
// model). Data handed to setScene() is copied; textures are re-uploaded on the next frame and the old
// ones are released only after every frame in flight that used them has completed.
#pragma once
#include <QImage>
#include <QPointF>
#include <QVulkanWindow>
#include <cstdint>
#include <memory>

#include "render/view/heatmap_overlay.h"
#include "render/scene/scene.h"

class QVulkanInstance;

namespace attnlab::view {

// The viewport draws the view model's types (render/scene) and nothing else.
using namespace attnlab::scene;  // NOLINT(google-build-using-namespace)

/// Mouse state the overlay reads (logical pixels, window coordinates).
struct PointerState {
  QPointF pos;
  bool inside = false;
  bool buttons[3] = {false, false, false};  ///< left, right, middle
  float wheel = 0;                          ///< accumulated vertical wheel steps since the last frame (unused: the wheel zooms)
};

class HeatmapWindow : public QVulkanWindow {
  Q_OBJECT

 public:
  /// Creates the window and its own QVulkanInstance (with the Khronos validation layer when the
  /// environment has ATTNLAB_VALIDATION=1). Check vulkanReady() before showing it.
  explicit HeatmapWindow(QWindow* parent = nullptr);
  ~HeatmapWindow() override;

  /// false when no Vulkan instance could be created (no loader or driver): the caller should show
  /// something else instead. `vulkanError()` says why.
  bool vulkanReady() const;
  QString vulkanError() const { return vulkan_error_; }

  /// Replaces what is shown (but not the view window, which stays as setView and the mouse left it).
  /// Textures are re-uploaded on the next frame.
  void setScene(scene::Scene scene);
  /// Changes only the colour scale (no upload).
  void setColorScale(const ColorScale& scale);
  /// Zoom and pan: the part of the matrices the zoomable panels show (no upload: the textures are
  /// stretched until the caller pools the new window). Emits viewChanged when it changes.
  void setView(const ViewWindow& view);
  const ViewWindow& view() const { return scene_.view; }
  /// Zooms by `factor` about the point (x, y) in window coordinates (the panels' centre when outside them).
  void zoomAt(double factor, QPointF at);
  /// Fits the whole matrix (zoom 1×).
  void fitView() { setView(ViewWindow{}); }
  const scene::Scene& scene() const { return scene_; }
  /// Increases with every setScene(); the renderer compares it with what it uploaded.
  std::uint64_t sceneVersion() const { return scene_version_; }
  /// The scene version of the last frame submitted (sceneVersion() once the newest scene is on screen).
  std::uint64_t renderedVersion() const { return rendered_version_; }

  /// Renders a frame and returns it in true colours (RGB32/ARGB32), or a null image when the window
  /// is not exposed or cannot be read back. (Qt 6.4's QVulkanWindow::grab() of a B8G8R8A8 swapchain
  /// returns red and blue swapped; this detects that from the known background colour and undoes it.)
  QImage grabImage();

  const PointerState& pointer() const { return pointer_; }
  /// The last frame's CPU time and the frame rate while drawing continuously (shown top right).
  FrameStats frameStats() const { return frame_stats_; }
  /// Whether the frame time is drawn top right (on by default; a presenter hides it). Redraws.
  void setFrameTimeShown(bool shown);
  /// Frames drawn since the window was made.
  std::uint64_t framesDrawn() const { return frames_; }
  /// Consumes the accumulated wheel steps (the renderer feeds them to ImGui once).
  float takeWheel();

  /// Background colour the renderer clears to (also used to detect channel order in grabImage()).
  static constexpr std::uint8_t k_background_rgb[3] = {24, 27, 33};
  static constexpr std::uint8_t k_light_background_rgb[3] = {246, 247, 250};  ///< scene::Scene::light
  /// The background of the scene shown now.
  const std::uint8_t* background() const { return scene_.light ? k_light_background_rgb : k_background_rgb; }

  /// Whether instances are created with the validation layer (ATTNLAB_VALIDATION=1 and the layer exists).
  static bool validationEnabled();
  /// Validation-layer errors (and warnings) reported so far by any HeatmapWindow's instance.
  static int validationErrorCount();
  static int validationWarningCount();

  QVulkanWindowRenderer* createRenderer() override;

 signals:
  /// Emitted after a frame showing scene `version` was submitted.
  void frameRendered(quint64 version);
  /// The view window changed (wheel, drag, keys, setView).
  void viewChanged(attnlab::scene::ViewWindow view);
  /// A step-bar button was clicked.
  void stepAction(attnlab::scene::StepAction action);
  /// A click (not a drag) on a zoomable panel picked query row `row` (of the matrix as displayed).
  void rowClicked(qint64 row);
  /// A click on a pixel map (the pixel view): the token y·W + x of the pixel under the pointer.
  void pixelClicked(qint64 token);

 protected:
  void mouseMoveEvent(QMouseEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  bool event(QEvent* event) override;

 private:
  friend class HeatmapRenderer;
  void notifyFrameRendered(std::uint64_t version) {
    rendered_version_ = version;
    emit frameRendered(version);
  }

  std::unique_ptr<QVulkanInstance> instance_;
  QString vulkan_error_;
  scene::Scene scene_;
  std::uint64_t scene_version_ = 0;
  std::uint64_t rendered_version_ = 0;
  PointerState pointer_;
  FrameStats frame_stats_;
  std::uint64_t frames_ = 0;
  QPointF press_at_;  // where the left button went down (a click on a step button is a press and release on it)
  /// A drag in progress: where it started and the window then.
  bool dragging_ = false;
  QPointF drag_from_;
  ViewWindow drag_view_;
  /// The smallest window: a few entries of the first zoomable panel a side.
  std::pair<double, double> minimumSpan() const;
  /// The zoomable panel under (x, y), or −1.
  int zoomablePanelAt(QPointF at) const;
};

}  // namespace attnlab::view
