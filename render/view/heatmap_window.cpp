// HeatmapWindow: the Qt side of the viewport (Vulkan instance, validation, input, grab).
#include "render/view/heatmap_window.h"

#include <QCoreApplication>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QVersionNumber>
#include <QVulkanInstance>
#include <QWheelEvent>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "render/view/heatmap_renderer.h"

namespace attnlab::view {

namespace {

std::atomic<int> g_validation_errors{0};
std::atomic<int> g_validation_warnings{0};

constexpr const char* k_validation_layer = "VK_LAYER_KHRONOS_validation";

bool validationRequested() {
  const char* env = std::getenv("ATTNLAB_VALIDATION");
  return env && std::strcmp(env, "1") == 0;
}

/// Counts what the validation layer reports; returns false so Qt still logs it (as a warning
/// naming the message), which is what a person debugging wants to read.
bool countValidationMessage(VkDebugReportFlagsEXT flags, VkDebugReportObjectTypeEXT, uint64_t, size_t, int32_t,
                            const char*, const char*) {
  if (flags & VK_DEBUG_REPORT_ERROR_BIT_EXT) ++g_validation_errors;
  if (flags & (VK_DEBUG_REPORT_WARNING_BIT_EXT | VK_DEBUG_REPORT_PERFORMANCE_WARNING_BIT_EXT)) ++g_validation_warnings;
  return false;
}

}  // namespace

bool HeatmapWindow::validationEnabled() {
  static const bool enabled = [] {
    if (!validationRequested()) return false;
    QVulkanInstance probe;  // layers can be listed before create()
    for (const QVulkanLayer& layer : probe.supportedLayers())
      if (layer.name == k_validation_layer) return true;
    qWarning("ATTNLAB_VALIDATION=1 but %s is not installed: running without validation", k_validation_layer);
    return false;
  }();
  return enabled;
}

int HeatmapWindow::validationErrorCount() { return g_validation_errors.load(); }
int HeatmapWindow::validationWarningCount() { return g_validation_warnings.load(); }

HeatmapWindow::HeatmapWindow(QWindow* parent) : QVulkanWindow(parent), instance_(new QVulkanInstance) {
  if (validationEnabled()) {
    instance_->setLayers({k_validation_layer});
    instance_->installDebugOutputFilter(countValidationMessage);
  }
  // The drawing shaders are SPIR-V 1.3 (glslc --target-env=vulkan1.1): ask for Vulkan 1.1 semantics.
  instance_->setApiVersion(QVersionNumber(1, 1));
  if (instance_->create()) {
    setVulkanInstance(instance_.get());
  } else {
    vulkan_error_ = QStringLiteral("Vulkan is not available (vkCreateInstance returned %1).")
                        .arg(static_cast<int>(instance_->errorCode()));
  }
  // Colormap values must land in the image as written: prefer a UNORM swapchain over lavapipe's
  // default _SRGB one (which would re-encode them).
  setPreferredColorFormats({VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM});
}

HeatmapWindow::~HeatmapWindow() {
  // Release the swapchain, surface and device while the instance this window owns still exists.
  destroy();
}

bool HeatmapWindow::vulkanReady() const { return instance_ && instance_->isValid(); }

QVulkanWindowRenderer* HeatmapWindow::createRenderer() { return new HeatmapRenderer(this); }

void HeatmapWindow::setScene(scene::Scene scene) {
  const ViewWindow view = scene_.view;  // the window owns zoom and pan (setView)
  const std::pair<double, double> before = minimumSpan();
  scene_ = std::move(scene);
  scene_.view = view;
  ++scene_version_;
  // A matrix of another size, smaller than the view was zoomed for: widen the view to the closest zoom
  // allowed (8 entries a side), as a wheel notch would. A scene of the same size (a restyle, a step, a
  // view set for a run still to come) or without matrices (a message) keeps the view as it is.
  const bool matrices = std::any_of(scene_.panels.begin(), scene_.panels.end(), [](const scene::Panel& p) {
    return p.zoomable && p.source_rows > 0 && p.source_cols > 0;
  });
  if (const auto [min_rows, min_cols] = minimumSpan();
      matrices && std::make_pair(min_rows, min_cols) != before &&
      (view.row1 - view.row0 < min_rows * (1 - 1e-9) || view.col1 - view.col0 < min_cols * (1 - 1e-9)))
    setView(zoomView(view, 1.0, 0.5, 0.5, min_rows, min_cols));
  // A new result is drawn on the next turn of the event loop: requestUpdate() alone waits for the
  // platform's update timer first (5 ms on xcb), which a parameter change would feel. A frame already
  // pending makes the extra request a no-op.
  if (isExposed()) QCoreApplication::postEvent(this, new QEvent(QEvent::UpdateRequest));
  else requestUpdate();
}

void HeatmapWindow::setFrameTimeShown(bool shown) {
  frame_stats_.shown = shown;
  requestUpdate();
}

void HeatmapWindow::setColorScale(const ColorScale& scale) {
  scene_.scale = scale;
  requestUpdate();
}

float HeatmapWindow::takeWheel() {
  const float wheel = pointer_.wheel;
  pointer_.wheel = 0;
  return wheel;
}

QImage HeatmapWindow::grabImage() {
  if (!vulkanReady() || !isExposed() || !supportsGrab()) return {};
  QImage image = grab();
  if (image.isNull()) return image;
  image = image.convertToFormat(QImage::Format_RGB32);
  // The top-left pixel is always background (the layout keeps a margin there). If it reads back
  // with red and blue exchanged, the whole image did.
  const QRgb corner = image.pixel(0, 0);
  const std::uint8_t* bg = background();
  if (qRed(corner) == bg[2] && qBlue(corner) == bg[0] && qRed(corner) != qBlue(corner))
    image = std::move(image).rgbSwapped();
  return image;
}

void HeatmapWindow::setView(const ViewWindow& v) {
  if (v == scene_.view) return;
  scene_.view = v;
  requestUpdate();
  emit viewChanged(v);
}

std::pair<double, double> HeatmapWindow::minimumSpan() const {
  for (const scene::Panel& p : scene_.panels)
    if (p.zoomable && p.source_rows > 0 && p.source_cols > 0)
      return {std::min(1.0, 8.0 / double(p.source_rows)), std::min(1.0, 8.0 / double(p.source_cols))};
  return {1.0, 1.0};
}

int HeatmapWindow::zoomablePanelAt(QPointF at) const {
  const SceneLayout layout = layoutScene(float(width()), float(height()), scene_);
  for (std::size_t k = 0; k < layout.panels.size() && k < scene_.panels.size(); ++k)
    if (scene_.panels[k].zoomable && layout.panels[k].contains(float(at.x()), float(at.y()))) return int(k);
  return -1;
}

void HeatmapWindow::zoomAt(double factor, QPointF at) {
  const SceneLayout layout = layoutScene(float(width()), float(height()), scene_);
  double fx = 0.5, fy = 0.5;
  const int k = zoomablePanelAt(at);
  if (k >= 0) {
    const Rect& r = layout.panels[std::size_t(k)];
    fx = (at.x() - r.x) / std::max(1.0f, r.w);
    fy = (at.y() - r.y) / std::max(1.0f, r.h);
  }
  const auto [min_rows, min_cols] = minimumSpan();
  setView(zoomView(scene_.view, factor, fx, fy, min_rows, min_cols));
  if (dragging_) {  // zoomed while the button is held: the drag goes on from the new view
    drag_view_ = scene_.view;
    drag_from_ = pointer_.pos;
  }
}

void HeatmapWindow::mouseMoveEvent(QMouseEvent* event) {
  pointer_.pos = event->position();
  pointer_.inside = true;
  if (dragging_) {  // pan: the point under the pointer stays under it
    const SceneLayout layout = layoutScene(float(width()), float(height()), scene_);
    for (std::size_t k = 0; k < layout.panels.size() && k < scene_.panels.size(); ++k) {
      if (!scene_.panels[k].zoomable || layout.panels[k].w <= 0) continue;
      const QPointF d = event->position() - drag_from_;
      setView(panView(drag_view_, -d.x() / layout.panels[k].w, -d.y() / layout.panels[k].h));
      break;
    }
  }
  requestUpdate();
}

void HeatmapWindow::mouseDoubleClickEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton && zoomablePanelAt(event->position()) >= 0) {
    dragging_ = false;  // the second press started a drag: a jitter before release must not undo the fit
    fitView();
  }
}

void HeatmapWindow::keyPressEvent(QKeyEvent* event) {
  const double step = 0.1;
  switch (event->key()) {
    case Qt::Key_Plus:
    case Qt::Key_Equal:
      zoomAt(1.5, QPointF(-1, -1));
      break;
    case Qt::Key_Minus:
      zoomAt(1 / 1.5, QPointF(-1, -1));
      break;
    case Qt::Key_0:
    case Qt::Key_Home:
      fitView();
      break;
    case Qt::Key_Left:
      setView(panView(scene_.view, -step, 0));
      break;
    case Qt::Key_Right:
      setView(panView(scene_.view, step, 0));
      break;
    case Qt::Key_Up:
      setView(panView(scene_.view, 0, -step));
      break;
    case Qt::Key_Down:
      setView(panView(scene_.view, 0, step));
      break;
    default:
      QVulkanWindow::keyPressEvent(event);
      return;
  }
  event->accept();
}

void HeatmapWindow::mousePressEvent(QMouseEvent* event) {
  pointer_.pos = event->position();
  if (event->button() == Qt::LeftButton && zoomablePanelAt(event->position()) >= 0) {
    dragging_ = true;
    drag_from_ = event->position();
    drag_view_ = scene_.view;
  }
  if (event->button() == Qt::LeftButton) {
    pointer_.buttons[0] = true;
    press_at_ = event->position();
  }
  if (event->button() == Qt::RightButton) pointer_.buttons[1] = true;
  if (event->button() == Qt::MiddleButton) pointer_.buttons[2] = true;
  requestUpdate();
}

void HeatmapWindow::mouseReleaseEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton) {
    pointer_.buttons[0] = false;
    dragging_ = false;
    // A click on a step-bar button: pressed and released on the same one.
    const SceneLayout layout = layoutScene(float(width()), float(height()), scene_);
    const StepAction action = stepActionAt(layout, float(event->position().x()), float(event->position().y()));
    if (action != StepAction::None && action == stepActionAt(layout, float(press_at_.x()), float(press_at_.y())))
      emit stepAction(action);
    // A click on a panel (pressed and released within a few pixels): that query's row.
    const QPointF moved = event->position() - press_at_;
    if (action == StepAction::None && std::abs(moved.x()) + std::abs(moved.y()) < 4) {
      const auto on = hitTest(scene_, layout, float(event->position().x()), float(event->position().y()));
      if (on && scene_.panels[std::size_t(on->panel)].role == "pixel map") {
        const Panel& map = scene_.panels[std::size_t(on->panel)];
        emit pixelClicked(qint64(on->rows.begin * map.source_cols + on->cols.begin));
      }
      const int panel = zoomablePanelAt(event->position());
      // A panel in its own token order (a step's sort) has no row of the scene's order under the pointer.
      if (const auto hit = panel >= 0 && !scene_.panels[std::size_t(panel)].own_order
                               ? hitTest(scene_, layout, float(event->position().x()), float(event->position().y()))
                               : std::nullopt)
        emit rowClicked(qint64(hit->rows.begin));
    }
  }
  if (event->button() == Qt::RightButton) pointer_.buttons[1] = false;
  if (event->button() == Qt::MiddleButton) pointer_.buttons[2] = false;
  requestUpdate();
}

void HeatmapWindow::wheelEvent(QWheelEvent* event) {
  // The wheel zooms about the pointer: 1.25× a notch (touchpads send fractions of a notch).
  const double notches = static_cast<double>(event->angleDelta().y()) / 120.0;
  if (notches != 0) zoomAt(std::pow(1.25, notches), event->position());
  event->accept();
}

bool HeatmapWindow::event(QEvent* event) {
  switch (event->type()) {
    case QEvent::Enter:
      pointer_.inside = true;
      requestUpdate();
      break;
    case QEvent::Leave:
      pointer_.inside = false;
      requestUpdate();
      break;
    default:
      break;
  }
  return QVulkanWindow::event(event);
}

}  // namespace attnlab::view
