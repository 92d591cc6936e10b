// attnlab-gui-bench: the GUI's two interaction targets, measured in the real main window (run it under
// Xvfb on a machine without a display):
//   1. a parameter change → the redrawn view, at N = 2048 on the CPU backend, for mechanisms of the
//      linear and the sparse families (target: within 100 ms);
//   2. pan and zoom at N = 16384 on the Vulkan backend (target: ≥ 30 frames per second on a GPU; on
//      Mesa's lavapipe, a CPU driver, it must only be correct).
// The latency of (1) is what a person waits: from the control's change to the frame that shows the new
// result on screen. Prints one table per target.
#include <QApplication>
#include <QElapsedTimer>
#include <QStandardPaths>
#include <QTimer>
#include <QWheelEvent>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "app/gui/gui.h"
#include "app/gui/main_window.h"
#include "attention/mechanism.h"
#include "render/view/heatmap_window.h"

namespace {

using attnlab::gui::GuiOptions;
using attnlab::gui::MainWindow;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

GuiOptions options(const std::string& id, const std::string& backend, attn::Index n) {
  GuiOptions o;
  o.mechanism = id;
  o.backend = backend;
  o.input.n = n;
  o.input.d = o.input.dv = 64;
  o.input.seed = 1;
  o.input.generator = attn::Generator::Clustered;
  return o;
}

/// Handles the events that arrive, sleeping while there are none (a 2 ms tick bounds the wait): a busy
/// loop here would take one of the machine's cores from the runner and the renderer being measured.
void pumpEvents() {
  static QTimer* tick = [] {
    auto* t = new QTimer(QCoreApplication::instance());
    t->start(2);
    return t;
  }();
  (void)tick;
  QCoreApplication::processEvents(QEventLoop::AllEvents | QEventLoop::WaitForMoreEvents);
}

/// Waits until the viewport has drawn `frames` more frames; false after 10 s.
bool waitFrames(attnlab::view::HeatmapWindow* viewport, std::uint64_t frames) {
  const std::uint64_t target = viewport->framesDrawn() + frames;
  QElapsedTimer clock;
  clock.start();
  while (viewport->framesDrawn() < target && clock.elapsed() < 10000) pumpEvents();
  return viewport->framesDrawn() >= target;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);  // never touch the user's settings or autosave
  attnlab::gui::applyTheme();
  int repeats = 7;
  attn::Index big_n = 16384;
  std::string big_backend = "vulkan";
  std::string only;
  bool all = false;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    if (a == "--repeats") repeats = std::max(1, std::atoi(argv[k + 1]));
    if (a == "--big-n") big_n = std::max<attn::Index>(256, std::atoll(argv[k + 1]));
    if (a == "--big-backend") big_backend = argv[k + 1];
    if (a == "--only") only = argv[k + 1];  // "change" or "pan"
    if (a == "--all") all = std::string(argv[k + 1]) == "1";  // every F1 and F3 mechanism, not only seven
  }

  // ---- 1. parameter change → redrawn view, N = 2048, CPU ----
  if (only != "pan") {
  std::printf("## Parameter change -> redrawn view (N = 2048, d = 64, CPU backend, %d changes each)\n\n", repeats);
  std::printf("| mechanism | family | parameter | redrawn: median ms | min ms | max ms | with row TV / mass recall: median ms | mechanism run ms | compare ms | pool ms | report → frame ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<std::pair<std::string, std::string>> cases = {
      {"rfa", "features"}, {"performer", "features"}, {"nystromformer", "landmarks"},
      {"linformer", "k"},                    {"longformer", "window"},  {"bigbird", "block"},
      {"sparse-transformer", "stride"}};
  if (all) {  // every mechanism of the two families the target names (F1 fixed patterns, F3 low rank / kernels)
    for (const auto& m : attn::mechanisms()) {
      const std::string family = attn::familyShort(m->info().family), id = m->info().id;
      const bool listed = std::any_of(cases.begin(), cases.end(), [&](const auto& c) { return c.first == id; });
      if ((family == "F1" || family == "F3") && !listed) cases.emplace_back(id, "");
    }
  }
  for (const auto& [id, parameter] : cases) {
    const std::shared_ptr<const attn::Mechanism> mechanism = attn::findMechanism(id);
    if (!mechanism) continue;
    // The parameter to change: the named one when it exists, else the first numeric one.
    const attn::ParamSpec* spec = nullptr;
    std::vector<attn::ParamSpec> specs = mechanism->params();
    for (const attn::ParamSpec& s : specs)
      if (s.name == parameter) spec = &s;
    for (const attn::ParamSpec& s : specs)
      if (!spec && (s.kind == attn::ParamKind::Int || s.kind == attn::ParamKind::Real)) spec = &s;
    if (!spec && !specs.empty()) spec = &specs.front();  // a choice or a flag: toggled between its first two values
    if (!spec) continue;
    const bool numeric = spec->kind == attn::ParamKind::Int || spec->kind == attn::ParamKind::Real;
    const double other = !numeric ? (spec->def == 0 ? 1 : 0) : spec->def > 0 ? std::min(spec->max, spec->def * 2) : std::min(spec->max, 64.0);
    MainWindow window(options(id, "cpu", 2048));
    window.resize(1400, 900);
    window.show();
    if (!window.waitForIdle(120000)) return 1;
    std::vector<double> ms, full_ms, run_ms, compare_ms, pool_ms, shown_ms;
    int results = 0;
    QElapsedTimer clock;
    double result_at = 0;  // when the runner's first report reached the window
    QObject::connect(&window, &MainWindow::runFinished, [&] {
      ++results;
      if (result_at == 0) result_at = double(clock.nsecsElapsed()) * 1e-6;
    });
    attnlab::view::HeatmapWindow* viewport = window.viewport();
    for (int r = 0; r < repeats; ++r) {
      const double value = r % 2 == 0 ? other : spec->def;
      clock.start();
      result_at = 0;
      const int before = results;
      window.setParameter(spec->name, value);
      // The first frame that shows the new result (its weight metrics may still be computing).
      while (results == before || (viewport && viewport->renderedVersion() < viewport->sceneVersion())) {
        if (clock.elapsed() > 120000) return 1;
        pumpEvents();
      }
      ms.push_back(double(clock.nsecsElapsed()) * 1e-6);
      shown_ms.push_back(ms.back() - result_at);
      if (auto out = window.lastOutcome(); out && out->comparison) {
        compare_ms.push_back(out->compare_ms);
        pool_ms.push_back(out->pooled->pool_ms);
      }
      if (!window.waitForIdle(120000)) return 1;
      full_ms.push_back(double(clock.nsecsElapsed()) * 1e-6);
      if (auto out = window.lastOutcome(); out && out->comparison) {
        run_ms.push_back(out->comparison->approx_ms);
      }
    }
    std::printf("| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f |\n", id.c_str(),
                attn::familyShort(mechanism->info().family).c_str(), spec->name.c_str(), median(ms),
                *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()), median(full_ms),
                median(run_ms), median(compare_ms), median(pool_ms), median(shown_ms));
    std::fflush(stdout);
  }

  }
  if (only == "change") return 0;

  // ---- 2. pan and zoom at N = big_n ----
  std::printf("\n## Pan and zoom (longformer, N = %lld, backend %s)\n\n", static_cast<long long>(big_n), big_backend.c_str());
  MainWindow window(options("longformer", big_backend, big_n));
  window.resize(1400, 900);
  window.show();
  QElapsedTimer first;
  first.start();
  if (!window.waitForIdle(600000)) return 1;
  attnlab::view::HeatmapWindow* viewport = window.viewport();
  if (!viewport) {
    std::printf("no Vulkan viewport: %s\n", "cannot measure frames");
    return 1;
  }
  const std::string device = window.lastOutcome() ? window.lastOutcome()->pooled->subject.backend_label : std::string();
  std::printf("first result on screen after %.0f ms (%s)\n\n", double(first.elapsed()), device.c_str());
  const auto layout = attnlab::scene::layoutScene(float(viewport->width()), float(viewport->height()), viewport->scene());
  const attnlab::scene::Rect r = layout.panels.at(1);
  const QPointF centre(r.x + r.w / 2, r.y + r.h / 2);
  // Interactive frames: each input event, then the frame that shows it (textures stretched at once; the
  // sharp pooling of the new window follows when the input pauses).
  std::vector<double> frame_ms;
  QElapsedTimer clock;
  auto measure = [&](auto&& input) {
    clock.restart();
    input();
    if (!waitFrames(viewport, 1)) return false;
    frame_ms.push_back(double(clock.nsecsElapsed()) * 1e-6);
    return true;
  };
  clock.start();
  for (int k = 0; k < 24; ++k)  // zoom in 12 notches and out again
    if (!measure([&] {
          QWheelEvent event(centre, viewport->mapToGlobal(centre), QPoint(), QPoint(0, k < 12 ? 120 : -120), Qt::NoButton,
                            Qt::NoModifier, Qt::NoScrollPhase, false);
          QCoreApplication::sendEvent(viewport, &event);
        }))
      return 1;
  const double zoom_median = median(frame_ms);
  frame_ms.clear();
  viewport->zoomAt(8, centre);  // then pan at 8×
  if (!window.waitForIdle(600000)) return 1;
  QElapsedTimer settle;
  for (int k = 0; k < 24; ++k)
    if (!measure([&] { window.viewport()->setView(attnlab::scene::panView(viewport->view(), k < 12 ? 0.05 : -0.05, 0.02)); }))
      return 1;
  const double pan_median = median(frame_ms);
  settle.start();
  if (!window.waitForIdle(600000)) return 1;
  const double sharp_ms = double(settle.elapsed());
  std::printf("| interaction | median ms per frame | frames per second | last frame's CPU ms |\n|---|---|---|---|\n");
  std::printf("| wheel zoom (24 notches) | %.1f | %.0f | %.2f |\n", zoom_median, 1000.0 / std::max(1e-3, zoom_median),
              viewport->frameStats().draw_ms);
  std::printf("| pan at 8x (24 steps) | %.1f | %.0f | %.2f |\n", pan_median, 1000.0 / std::max(1e-3, pan_median),
              viewport->frameStats().draw_ms);
  std::printf("\nsharp view (the window pooled again) %.0f ms after the last pan step\n", sharp_ms);
  return 0;
}
