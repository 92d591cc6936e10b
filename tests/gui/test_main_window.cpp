// The main window end to end on Xvfb: first run, what the viewport shows, reruns on parameter
// changes (newest wins), hover readout, errors in the status bar, the Vulkan backend.
// To look at the GUI: ATTNLAB_GUI_SCREENSHOT=/tmp/attnlab-gui.png (and ATTNLAB_GUI_HOVER_SCREENSHOT)
// save the whole window as the tests see it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <QAbstractSpinBox>
#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QElapsedTimer>
#include <QFile>
#include <QFontDatabase>
#include <QFontMetrics>
#include <QGuiApplication>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStatusBar>
#include <QStyle>
#include <QStyleOptionButton>
#include <QTest>
#include <QTextCursor>
#include <QToolBar>
#include <QToolButton>
#include <QTreeWidget>
#include <QVulkanWindow>
#include <QWheelEvent>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLegend>
#include <QtCharts/QLineSeries>
#include <QtCharts/QScatterSeries>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "app/gui/curves_panel.h"
#include "app/gui/log_panel.h"
#include "app/figures/views.h"
#include "app/gui/main_window.h"
#include "app/gui/row_panel.h"
#include "attention/random.h"
#include "render/scene/colormap.h"
#include "render/view/heatmap_overlay.h"
#include "render/view/heatmap_window.h"
#include "tests/gui/gui_test_util.h"
#include "tests/image_diff.h"

namespace attnlab::gui::test {
namespace {

constexpr int k_timeout_ms = 120000;

/// Where the viewport's current scene puts everything, in its window coordinates.
scene::SceneLayout layoutOf(const view::HeatmapWindow* viewport) {
  return scene::layoutScene(float(viewport->width()), float(viewport->height()), viewport->scene());
}

class MainWindowTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& message : takeQtMessages()) ADD_FAILURE() << "Qt warning: " << message;
    EXPECT_EQ(view::HeatmapWindow::validationErrorCount(), 0) << "Vulkan validation errors (see the log)";
  }

  static GuiOptions options(const std::string& mechanism, const std::string& backend = "cpu") {
    GuiOptions o;
    o.mechanism = mechanism;
    o.backend = backend;
    o.input.n = 256;
    o.input.d = 32;
    o.input.dv = 32;
    o.input.seed = 3;
    o.input.generator = attn::Generator::Local;
    return o;
  }

  /// Shows `window` at the size the app opens with and waits for its first result on screen.
  static void showAndWait(MainWindow& window) {
    window.resize(1400, 900);
    window.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  }

  /// showAndWait(window), then its viewport (nullptr when it has none: the caller asserts).
  static view::HeatmapWindow* showViewport(MainWindow& window) {
    showAndWait(window);
    return window.viewport();
  }
};

/// How many pixel rows of `region` hold ink: a pixel farther than 80 (largest channel) from the colour
/// at the region's top-left corner, the background.
int inkRows(const QImage& image, const QRect& region) {
  const QRect r = region.intersected(image.rect());
  if (r.isEmpty()) return 0;
  const QRgb bg = image.pixel(r.topLeft());
  int rows = 0;
  for (int y = r.top(); y <= r.bottom(); ++y) {
    bool ink = false;
    for (int x = r.left(); x <= r.right() && !ink; ++x) {
      const QRgb c = image.pixel(x, y);
      ink = std::max({std::abs(qRed(c) - qRed(bg)), std::abs(qGreen(c) - qGreen(bg)), std::abs(qBlue(c) - qBlue(bg))}) > 80;
    }
    rows += ink;
  }
  return rows;
}

/// Every string of `scene` the overlay draws (titles, captions, legends, footer, step bar, help).
std::vector<std::string> sceneTexts(const scene::Scene& scene) {
  std::vector<std::string> texts{scene.footer, scene.legend_title, scene.placeholder, scene.steps.title};
  for (const scene::Panel& p : scene.panels) {
    texts.insert(texts.end(), {p.title, p.subtitle, p.empty_text, p.pooling});
    texts.insert(texts.end(), p.captions.begin(), p.captions.end());
    texts.insert(texts.end(), p.categories.begin(), p.categories.end());
  }
  for (const auto& [keys, what] : scene.help) texts.insert(texts.end(), {keys, what});
  return texts;
}

/// The characters of `text` that no installed font has (Qt draws them as a box).
QString withoutAFont(const QString& text) {
  static const QStringList families = QFontDatabase::families();
  QString missing;
  for (char32_t c : text.toUcs4()) {
    if (c < 0x80) continue;
    const bool found = std::any_of(families.begin(), families.end(),
                                   [c](const QString& f) { return QFontMetrics(QFont(f)).inFontUcs4(c); });
    if (!found && !missing.contains(QString::fromUcs4(&c, 1))) missing += QString::fromUcs4(&c, 1);
  }
  return missing;
}

/// ATTNLAB_GUI_SHOTS=DIR saves the window as a projector shows it (1400×900 and 1600×1000) to DIR/NAME-WxH.png.
void saveShot(MainWindow& window, const std::string& name) {
  if (const char* dir = std::getenv("ATTNLAB_GUI_SHOTS")) {
    const std::string path = std::string(dir) + "/" + name + "-" + std::to_string(window.width()) + "x" +
                             std::to_string(window.height()) + ".png";
    EXPECT_TRUE(window.windowImage().save(QString::fromStdString(path))) << path;
  }
}

/// Largest per-channel distance from `colour` to the nearest viridis entry.
int distanceToViridis(QRgb colour) {
  int best = 255;
  for (const scene::Rgb& c : scene::viridis()) {
    const int d = std::max({std::abs(qRed(colour) - static_cast<int>(std::lround(c.r * 255))),
                            std::abs(qGreen(colour) - static_cast<int>(std::lround(c.g * 255))),
                            std::abs(qBlue(colour) - static_cast<int>(std::lround(c.b * 255)))});
    best = std::min(best, d);
  }
  return best;
}

TEST_F(MainWindowTest, ShowsBothHeatmapsAndRerunsWhenAParameterChanges) {
  ASSERT_TRUE(view::HeatmapWindow::validationEnabled()) << "the GUI tests run with ATTNLAB_VALIDATION=1";
  MainWindow window(options("longformer"));
  showAndWait(window);
  ASSERT_TRUE(window.lastError().isEmpty()) << window.lastError().toStdString();
  const auto first = window.lastOutcome();
  ASSERT_TRUE(first && first->ok);
  EXPECT_EQ(first->comparison->mechanism->info().id, "longformer");
  // N = 256 is pooled to the panel's pixels at most (three panels side by side).
  EXPECT_GT(first->pooled->exact.values.rows(), 100);
  EXPECT_LE(first->pooled->exact.values.rows(), 256);

  const QImage before = window.viewportImage();
  ASSERT_FALSE(before.isNull());
  EXPECT_GT(distinctColours(before), 200) << "the viewport looks blank";

  // Exact, Longformer, and Longformer's pattern. Inside each weight panel every pixel is a viridis
  // colour (right channel order, LUT applied), and the panel is not one flat colour; the pattern panel
  // holds the component colours (window, global) and the empty colour only.
  ASSERT_EQ(first->pooled->pattern_components, (std::vector<std::string>{"global", "window"}));
  const scene::SceneLayout layout = layoutOf(window.viewport());  // the scene's own (its captions take room)
  ASSERT_EQ(layout.panels.size(), 3u);
  {
    const scene::Rect& r = layout.panels[2];
    const QImage inside = before.copy(QRect(static_cast<int>(r.x) + 2, static_cast<int>(r.y) + 2,
                                            static_cast<int>(r.w) - 4, static_cast<int>(r.h) - 4));
    std::set<QRgb> seen;
    for (int y = 0; y < inside.height(); ++y)
      for (int x = 0; x < inside.width(); ++x) seen.insert(inside.pixel(x, y) & 0xffffff);
    auto rgb = [](const scene::Rgb& c) {
      return QRgb((int(std::lround(c.r * 255)) << 16) | (int(std::lround(c.g * 255)) << 8) | int(std::lround(c.b * 255)));
    };
    const std::set<QRgb> allowed = {rgb(scene::categoricalPalette()[0]), rgb(scene::categoricalPalette()[1]),
                                    rgb(scene::k_categorical_empty)};
    for (QRgb c : seen) EXPECT_TRUE(allowed.count(c)) << "unexpected pattern colour " << std::hex << c;
    EXPECT_TRUE(seen.count(rgb(scene::categoricalPalette()[1])) && seen.count(rgb(scene::k_categorical_empty)))
        << "the pattern panel should show the window and the empty pairs";
    // The globals are rows and columns 0–1: a pixel wide at this size, at the edge; check the data.
    std::set<int> values;
    for (attn::Index i = 0; i < first->pooled->pattern.values.rows(); ++i)
      for (attn::Index j = 0; j < first->pooled->pattern.values.cols(); ++j) values.insert(int(first->pooled->pattern.values(i, j)));
    EXPECT_EQ(values, (std::set<int>{0, 1, 2}));
    EXPECT_EQ(first->pooled->marks, (std::vector<attn::Index>{0, 1}));
  }
  for (size_t k = 0; k < 2; ++k) {
    const scene::Rect& r = layout.panels[k];
    ASSERT_GT(r.w, 100);
    const QImage inside = before.copy(QRect(static_cast<int>(r.x) + 2, static_cast<int>(r.y) + 2,
                                            static_cast<int>(r.w) - 4, static_cast<int>(r.h) - 4));
    EXPECT_GT(distinctColours(inside), 20);
    int worst = 0;
    for (int y = 0; y < inside.height(); y += 7)
      for (int x = 0; x < inside.width(); x += 7) worst = std::max(worst, distanceToViridis(inside.pixel(x, y)));
    EXPECT_LE(worst, 4) << "a heatmap pixel is not a viridis colour";
  }

  ASSERT_TRUE(window.setParameter("window", 8));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const auto second = window.lastOutcome();
  ASSERT_TRUE(second && second->ok);
  ASSERT_NE(second, first);
  EXPECT_EQ(second->comparison->params.integer("window"), 8);
  EXPECT_GT(second->comparison->relative_error, first->comparison->relative_error)
      << "a narrower window should approximate exact attention worse";
  const QImage after = window.viewportImage();
  EXPECT_GT(differingShare(before, after), 0.01) << "the viewport did not change";

  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  EXPECT_FALSE(window.setParameter("no_such_parameter", 1));
}

TEST_F(MainWindowTest, PatternPanelShowsTheStepsOfAMechanism) {
  MainWindow window(options("sparse-transformer"));
  showAndWait(window);
  const auto outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  ASSERT_GE(outcome->pooled->steps.size(), 2u);
  EXPECT_EQ(outcome->pooled->steps.back().title, "Two hops");
  const QImage own = window.viewportImage();
  ASSERT_TRUE(window.setPatternView("Two hops"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const QImage hops = window.viewportImage();
  EXPECT_GT(differingShare(own, hops), 0.01) << "the pattern panel did not change";
  EXPECT_FALSE(window.setPatternView("no such step"));
  EXPECT_TRUE(window.setPatternView(""));
}

TEST_F(MainWindowTest, StepsOfEveryKindPlayInThePatternPanel) {
  // Reformer: the "sort" step is drawn sorted by round 1's buckets whatever the chosen order; routing's
  // k-means steps are groupings ("same cluster" images); Sinkhorn's iterations are values (S).
  MainWindow window(options("reformer"));
  showAndWait(window);
  auto outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  const scene::StepImage* hash = nullptr;
  const scene::StepImage* sort = nullptr;
  for (const auto& s : outcome->pooled->steps) {
    if (s.title == "hash") hash = &s;
    if (s.title == "sort") sort = &s;
  }
  ASSERT_TRUE(hash && sort);
  EXPECT_NE(sort->what.find("sorted by round 1 buckets"), std::string::npos) << sort->what;
  // Sorted, each pixel row's bucket pairs sit in one diagonal run: its non-zero pixels are contiguous.
  int runs_sorted = 0, runs_hash = 0;
  for (attn::Index r = 0; r < sort->image.values.rows(); ++r)
    for (attn::Index c = 1; c < sort->image.values.cols(); ++c) {
      runs_sorted += (sort->image.values(r, c) != 0) != (sort->image.values(r, c - 1) != 0);
      runs_hash += (hash->image.values(r, c) != 0) != (hash->image.values(r, c - 1) != 0);
    }
  EXPECT_LT(runs_sorted * 4, runs_hash) << "sorting by bucket should make blocks";
  ASSERT_TRUE(window.setPatternView("hash"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const QImage hashed = window.viewportImage();
  ASSERT_TRUE(window.playSteps(true));
  EXPECT_TRUE(window.playingSteps());
  QTest::qWait(1500);  // one step interval: "hash" → "sort"
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_GT(differingShare(hashed, window.viewportImage()), 0.01) << "playing did not advance the panel";
  EXPECT_TRUE(window.playSteps(false));
  EXPECT_FALSE(window.playingSteps());

  ASSERT_TRUE(window.selectMechanism("routing"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  ASSERT_GE(outcome->pooled->steps.size(), 2u);
  EXPECT_EQ(outcome->pooled->steps.front().what.rfind("same group", 0), 0u) << outcome->pooled->steps.front().what;
  EXPECT_FALSE(outcome->pooled->steps.front().components.empty());
  EXPECT_GT(outcome->pooled->steps.front().image.values.maxCoeff(), 0);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_GROUPS")) {
    ASSERT_TRUE(window.setPatternView(outcome->pooled->steps.back().title));
    ASSERT_TRUE(window.setOrder("query clusters"));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    EXPECT_TRUE(window.windowImage().save(path));
    ASSERT_TRUE(window.setOrder("position"));
  }

  ASSERT_TRUE(window.selectMechanism("sinkhorn"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  const scene::StepImage* last = nullptr;
  for (const auto& s : outcome->pooled->steps)
    if (s.title == "Sinkhorn 7") last = &s;
  ASSERT_NE(last, nullptr);
  EXPECT_TRUE(last->components.empty()) << "S is drawn as values";
  EXPECT_EQ(last->image.source_rows, 8);  // 256 tokens in blocks of 32
  for (attn::Index j = 0; j < last->image.values.cols(); ++j) EXPECT_NEAR(last->image.values.col(j).sum(), 1.0, 1e-3);
  ASSERT_TRUE(window.setPatternView("Sinkhorn 7"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_STEP")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
}

TEST_F(MainWindowTest, SignedFactorsAreDivergingOnTheirOwnRangeAndLeaveTheWeightScale) {
  // Fast weights' W (values × features) has negative entries: it is drawn with the diverging colormap on
  // its own ± range, and the weights' colour bar keeps the weights' maximum (≤ 1), not W's.
  MainWindow window(options("fast-weight"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  const auto outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  const scene::StepImage* w = nullptr;
  for (const auto& step : outcome->pooled->steps)
    if (step.title.rfind("W after token", 0) == 0) w = &step;
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->signed_values);
  ASSERT_LT(w->image.values.minCoeff(), 0);
  ASSERT_GT(w->image.values.maxCoeff(), 1) << "W's entries exceed every weight: the test would not tell the scales apart";
  ASSERT_TRUE(window.setPatternView(w->title));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::Scene& scene = viewport->scene();
  ASSERT_EQ(scene.panels.size(), 3u);
  const scene::Panel& panel = scene.panels[2];
  EXPECT_TRUE(panel.signed_values);
  EXPECT_FLOAT_EQ(panel.signed_range, std::max(w->image.values.maxCoeff(), -w->image.values.minCoeff()));
  EXPECT_LE(scene.scale.hi, 1.0f + 1e-6f);
  EXPECT_NE(panel.subtitle.find("values"), std::string::npos) << panel.subtitle;
  // A non-negative factor (Sinkhorn's doubly-stochastic S) stays on the weights' scale.
  MainWindow sinkhorn(options("sinkhorn"));
  view::HeatmapWindow* other = showViewport(sinkhorn);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(sinkhorn.setPatternView("Sinkhorn 7"));
  ASSERT_TRUE(sinkhorn.waitForIdle(k_timeout_ms));
  ASSERT_EQ(other->scene().panels.size(), 3u);
  EXPECT_FALSE(other->scene().panels[2].signed_values);
}

TEST_F(MainWindowTest, TokensCanBeSortedByTheMechanismsGroups) {
  MainWindow window(options("reformer"));
  showAndWait(window);
  const auto before = window.lastOutcome();
  ASSERT_TRUE(before && before->ok) << window.lastError().toStdString();
  ASSERT_FALSE(before->pooled->orders.empty());
  EXPECT_TRUE(before->pooled->order.empty());
  const QImage by_position = window.viewportImage();
  ASSERT_TRUE(window.setOrder(before->pooled->orders.front()));
  // The permutation is animated: frames between the two orders differ from both.
  QElapsedTimer clock;
  clock.start();
  while (!window.sortAnimating() && clock.elapsed() < k_timeout_ms) QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
  ASSERT_TRUE(window.sortAnimating());
  QTest::qWait(300);
  const QImage midway = window.viewportImage();
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_SORTING")) {
    EXPECT_TRUE(midway.save(path));
  }
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_FALSE(window.sortAnimating());
  EXPECT_EQ(window.lastOutcome()->pooled->moved_from.size(), size_t(window.lastOutcome()->pooled->exact.values.rows()));
  EXPECT_GT(differingShare(midway, by_position), 0.01);
  EXPECT_GT(differingShare(midway, window.viewportImage()), 0.01);
  const auto sorted = window.lastOutcome();
  ASSERT_TRUE(sorted && sorted->ok);
  EXPECT_EQ(sorted->pooled->order, before->pooled->orders.front());
  ASSERT_EQ(sorted->pooled->row_groups.size(), static_cast<size_t>(sorted->pooled->exact.values.rows()));
  EXPECT_TRUE(std::is_sorted(sorted->pooled->row_groups.begin(), sorted->pooled->row_groups.end())) << "groups run in order";
  // The hover readout names the groups of i and j: one label per token, in the displayed order.
  const scene::Scene& scene = window.viewport()->scene();
  EXPECT_EQ(scene.group_name, sorted->pooled->order);
  ASSERT_EQ(scene.token_groups.size(), 256u);
  EXPECT_TRUE(std::is_sorted(scene.token_groups.begin(), scene.token_groups.end()));
  EXPECT_EQ(sorted->comparison, before->comparison) << "sorting repools, it does not rerun";
  EXPECT_GT(differingShare(by_position, window.viewportImage()), 0.01) << "the viewport did not change";
  // The same weights, permuted: the largest weight is the same, and the sums of the pooled exact images
  // agree up to what max-pooling 256 tokens into fewer pixels does to a permuted matrix (exact attention's
  // peaked diagonal, q_i·k_i of clustered Q ≈ K, shares pixels differently in the two orders).
  EXPECT_FLOAT_EQ(sorted->pooled->exact.values.maxCoeff(), before->pooled->exact.values.maxCoeff());
  EXPECT_NEAR(sorted->pooled->exact.values.sum(), before->pooled->exact.values.sum(), 3e-2 * before->pooled->exact.values.sum());
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_SORTED")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // A parameter change regroups the tokens under the same order's name: the exact panel is sorted by
  // the new groups too (as a window that starts with them sorts it), not by the previous run's.
  ASSERT_TRUE(window.setParameter("buckets", 16));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const auto regrouped = window.lastOutcome();
  ASSERT_TRUE(regrouped && regrouped->ok);
  ASSERT_EQ(regrouped->pooled->order, sorted->pooled->order);
  {
    MainWindow fresh(options("reformer"));
    showAndWait(fresh);
    ASSERT_TRUE(fresh.setParameter("buckets", 16));
    ASSERT_TRUE(fresh.waitForIdle(k_timeout_ms));
    ASSERT_TRUE(fresh.setOrder(sorted->pooled->order));
    ASSERT_TRUE(fresh.waitForIdle(k_timeout_ms));
    const auto expected = fresh.lastOutcome();
    ASSERT_TRUE(expected && expected->ok && expected->pooled->order == sorted->pooled->order);
    ASSERT_EQ(regrouped->pooled->exact.values.rows(), expected->pooled->exact.values.rows());
    EXPECT_EQ(regrouped->pooled->exact.values, expected->pooled->exact.values);
    EXPECT_NE(regrouped->pooled->exact.values, sorted->pooled->exact.values) << "16 buckets sort the tokens as 8 did";
  }
  EXPECT_FALSE(window.setOrder("no such grouping"));
  EXPECT_TRUE(window.setOrder("position"));
}

TEST_F(MainWindowTest, CurvesAreComputedInTheBackgroundDrawnAndExported) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  CurvesPanel* curves = window.curvesPanel();
  ASSERT_NE(curves, nullptr);
  EXPECT_EQ(curves->mechanisms(), std::vector<std::string>{"longformer"}) << "the shown mechanism is ticked";
  curves->setMechanisms({"longformer", "performer"});
  curves->setRange(64, 256);
  curves->setSeeds(1);
  curves->setRepeats(1);
  int points = 0;
  QObject::connect(curves, &CurvesPanel::pointAdded, [&] { ++points; });
  ASSERT_TRUE(curves->start());
  EXPECT_FALSE(curves->start()) << "one computation at a time";
  ASSERT_TRUE(curves->waitUntilDone(k_timeout_ms));
  const attn::SweepResult& r = curves->result();
  EXPECT_TRUE(r.complete) << curves->status().toStdString();
  ASSERT_EQ(r.points.size(), 9u);  // exact, longformer, performer × N = 64, 128, 256
  EXPECT_EQ(points, 9) << "the chart grew point by point";
  for (const auto& p : r.points) EXPECT_EQ(p.status, "ok") << p.mechanism << " " << p.message;
  EXPECT_EQ(r.find("longformer", "cpu", 128)->n, 128) << "the window's input and backend (cpu)";
  EXPECT_EQ(r.spec.d, 32);
  // The chart: a line (with its dots) per mechanism, three points each.
  int lines = 0;
  for (QAbstractSeries* s : curves->chartView()->chart()->series())
    if (auto* line = qobject_cast<QLineSeries*>(s);
        line && !qobject_cast<QScatterSeries*>(s) && s->objectName() != QStringLiteral("bar")) {
      ++lines;
      EXPECT_EQ(line->count(), 3) << line->name().toStdString();
    }
  EXPECT_EQ(lines, 3);
  curves->setCurve(fig::Curve::Speedup);
  bool has_parity = false;
  for (QAbstractSeries* s : curves->chartView()->chart()->series()) has_parity |= s->name() == "as fast as exact";
  EXPECT_TRUE(has_parity);
  // Export through the figure layer.
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-curves-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  for (const auto& [ext, magic] : std::vector<std::pair<std::string, QByteArray>>{
           {".svg", "<?xml"}, {".pdf", "%PDF-"}, {".png", "\x89PNG"}}) {
    const std::string file = dir + "/curve" + ext;
    curves->exportTo(file);
    QFile f(QString::fromStdString(file));
    ASSERT_TRUE(f.open(QIODevice::ReadOnly)) << file;
    EXPECT_TRUE(f.read(8).startsWith(magic)) << file;
  }
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_CURVES")) {
    for (QDockWidget* dock : window.findChildren<QDockWidget*>())
      if (dock->objectName() == "curves") dock->raise();
    QTest::qWait(300);
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // The sweep as a report, as `attnlab sweep` writes it: data that parses, a self-contained page.
  const std::string report_dir = dir + "/report";
  curves->writeReport(report_dir);
  {
    std::ifstream json(report_dir + "/results.json");
    const nlohmann::json results = nlohmann::json::parse(json);
    EXPECT_EQ(results.at("points").size(), curves->result().points.size());
    EXPECT_TRUE(results.at("machine").contains("cpu"));
    std::ifstream html_file(report_dir + "/report.html");
    const std::string html((std::istreambuf_iterator<char>(html_file)), std::istreambuf_iterator<char>());
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(report_dir + "/report.md"));
  }
  std::filesystem::remove_all(dir);

  // Cancel: the computation stops after the run in progress, keeps what finished, and the window
  // stays responsive meanwhile.
  curves->setRange(1024, 16384);
  curves->setSeeds(3);
  ASSERT_TRUE(curves->start());
  QTest::qWait(50);
  EXPECT_TRUE(window.setParameter("window", 32)) << "the GUI answers while curves compute";
  curves->cancel();
  ASSERT_TRUE(curves->waitUntilDone(k_timeout_ms));
  EXPECT_FALSE(curves->result().complete);
  EXPECT_LT(curves->result().points.size(), 15u);
  EXPECT_NE(curves->status().indexOf("cancelled"), -1) << curves->status().toStdString();
  EXPECT_NE(curves->status().indexOf("the window ran"), -1)
      << "its run may be in the times: " << curves->status().toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  // The range stays a range: a largest N below the smallest takes the smallest along.
  curves->setRange(4096, 256);
  EXPECT_LE(curves->config()["from"].get<attn::Index>(), curves->config()["to"].get<attn::Index>());
  EXPECT_EQ(curves->config()["to"], 256);
}

TEST_F(MainWindowTest, FiguresOfTheCurrentComparisonExportThroughTheFigureLayer) {
  MainWindow window(options("bigbird"));
  showAndWait(window);
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-export-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  for (const auto& [view, file, magic] : std::vector<std::tuple<std::string, std::string, QByteArray>>{
           {"weights", "w.svg", "<?xml"}, {"pattern", "p.pdf", "%PDF-"}, {"diff", "d.png", "\x89PNG"},
           {"groups", "g.svg", "<?xml"}, {"tokens", "t.png", "\x89PNG"}}) {
    QString error;
    ASSERT_TRUE(window.exportFigure(view, dir + "/" + file, &error)) << view << ": " << error.toStdString();
    QFile f(QString::fromStdString(dir + "/" + file));
    ASSERT_TRUE(f.open(QIODevice::ReadOnly));
    EXPECT_TRUE(f.read(8).startsWith(magic)) << view;
  }
  QImage png;
  ASSERT_TRUE(png.load(QString::fromStdString(dir + "/d.png")));
  EXPECT_GT(png.width(), 1000) << "144 DPI";
  // A view the mechanism does not have: a message, no file.
  ASSERT_TRUE(window.selectMechanism("performer"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  QString error;
  EXPECT_FALSE(window.exportFigure("pattern", dir + "/none.svg", &error));
  EXPECT_NE(error.indexOf("no sparsity pattern"), -1) << error.toStdString();
  EXPECT_FALSE(std::filesystem::exists(dir + "/none.svg"));
  EXPECT_FALSE(window.exportFigure("weights", dir + "/x.gif", &error));
  std::filesystem::remove_all(dir);
}

// A .safetensors file of F32 tensors (what safetensors.numpy.save_file writes).
void writeSafetensors(const std::string& path, const std::vector<std::pair<std::string, attn::Matrix>>& tensors) {
  std::string header = "{";
  std::string data;
  for (const auto& [name, m] : tensors) {
    const std::size_t begin = data.size();
    for (attn::Index r = 0; r < m.rows(); ++r)
      for (attn::Index c = 0; c < m.cols(); ++c) data.append(reinterpret_cast<const char*>(&m(r, c)), 4);
    header += (header.size() > 1 ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":[" +
              std::to_string(m.rows()) + "," + std::to_string(m.cols()) + "],\"data_offsets\":[" + std::to_string(begin) +
              "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t size = header.size();
  out.write(reinterpret_cast<const char*>(&size), 8);
  out << header << data;
}

TEST_F(MainWindowTest, RealQKVFromAFileAndABadFileGivesAMessage) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-import-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  attn::Rng rng(4);
  const attn::Matrix q = rng.gaussian(300, 24), k = rng.gaussian(300, 24), v = rng.gaussian(300, 12);
  writeSafetensors(dir + "/head.safetensors", {{"query", q}, {"key", k}, {"value", v}});
  QString error;
  ASSERT_TRUE(window.importInputs(dir + "/head.safetensors", &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  auto outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok) << window.lastError().toStdString();
  EXPECT_EQ(outcome->comparison->inputs.n(), 300);
  EXPECT_TRUE(outcome->comparison->inputs.q == q) << "the file's values, not generated ones";
  EXPECT_EQ(outcome->comparison->inputs.v.cols(), 12);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_IMPORT")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }

  // A file without v: a message naming what is there; the window keeps the imported inputs and works on.
  writeSafetensors(dir + "/two.safetensors", {{"q", q}, {"k", k}});
  EXPECT_FALSE(window.importInputs(dir + "/two.safetensors", &error));
  EXPECT_NE(error.indexOf("needs arrays named q, k and v"), -1) << error.toStdString();
  EXPECT_EQ(window.lastError(), error) << "shown in the status line and the message box";
  for (QMessageBox* box : window.findChildren<QMessageBox*>())
    if (box->isVisible()) box->hide();
  {
    std::ofstream junk(dir + "/junk.npz", std::ios::binary);
    junk << "not a zip at all";
  }
  EXPECT_FALSE(window.importInputs(dir + "/junk.npz", &error));
  EXPECT_NE(error.indexOf("not a readable .npz"), -1) << error.toStdString();
  EXPECT_TRUE(window.setParameter("window", 32));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok);
  EXPECT_EQ(outcome->comparison->inputs.n(), 300) << "still the imported file";
  std::filesystem::remove_all(dir);
}

TEST_F(MainWindowTest, ASessionRoundTripsAutosavesAndABadOneChangesNothing) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-session-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/reformer.json";
  nlohmann::json saved;
  {
    MainWindow window(options("reformer"));
    showAndWait(window);
    ASSERT_TRUE(window.setParameter("rounds", 4));
    window.setCausal(true);
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    ASSERT_TRUE(window.lastOutcome() && !window.lastOutcome()->pooled->orders.empty());
    ASSERT_TRUE(window.setOrder(window.lastOutcome()->pooled->orders.front()));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    window.curvesPanel()->setMechanisms({"reformer", "performer"});
    window.curvesPanel()->setRange(512, 2048);
    QString error;
    ASSERT_TRUE(window.saveSession(file, &error)) << error.toStdString();
    saved = window.session();
    window.close();  // autosaves
  }
  EXPECT_EQ(saved["mechanism"], "reformer");
  EXPECT_EQ(saved["params"]["rounds"], 4);
  EXPECT_TRUE(std::filesystem::exists(MainWindow::autosavePath()));

  MainWindow other(options("longformer"));
  showAndWait(other);
  QString error;
  ASSERT_TRUE(other.loadSession(file, &error)) << error.toStdString();
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));  // the restored order repools once the result is in
  EXPECT_EQ(other.mechanismId(), "reformer");
  EXPECT_EQ(other.session(), saved) << other.session().dump(1) << "\nvs\n" << saved.dump(1);
  ASSERT_TRUE(other.lastOutcome());
  EXPECT_TRUE(other.lastOutcome()->causal);
  EXPECT_FALSE(other.lastOutcome()->pooled->order.empty());

  // Damaged or foreign sessions: a message, and the window stays as it was.
  {
    std::ofstream(dir + "/broken.json") << "{ not json";
    nlohmann::json unknown = saved;
    unknown["mechanism"] = "no-such-mechanism";
    std::ofstream(dir + "/unknown.json") << unknown.dump();
    nlohmann::json foreign = {{"format", "something else"}};
    std::ofstream(dir + "/foreign.json") << foreign.dump();
    // Keys of the wrong type: a message, not an exception out of the event loop.
    nlohmann::json typed = saved;
    typed["version"] = "1";
    std::ofstream(dir + "/version.json") << typed.dump();
    typed = saved;
    typed["format"] = 2;
    std::ofstream(dir + "/format.json") << typed.dump();
    typed = saved;
    typed["mechanism"] = nlohmann::json::array({"reformer"});
    std::ofstream(dir + "/mechanism.json") << typed.dump();
    typed = saved;
    typed["view"] = "sorted";
    std::ofstream(dir + "/view.json") << typed.dump();
  }
  for (const auto& [name, words] :
       std::vector<std::pair<std::string, std::string>>{{"broken.json", "not valid JSON"},
                                                        {"unknown.json", "no-such-mechanism"},
                                                        {"foreign.json", "not an attnlab session"},
                                                        {"missing.json", "cannot open"},
                                                        {"version.json", "version \"1\""},
                                                        {"format.json", "not an attnlab session"},
                                                        {"mechanism.json", "mechanism"},
                                                        {"view.json", "\"view\" is not an object"}}) {
    EXPECT_FALSE(other.loadSession(dir + "/" + name, &error)) << name;
    EXPECT_NE(error.indexOf(QString::fromStdString(words)), -1) << error.toStdString();
    EXPECT_EQ(other.mechanismId(), "reformer") << name;
  }
  for (QMessageBox* box : other.findChildren<QMessageBox*>())
    if (box->isVisible()) box->hide();
  {  // view entries of the wrong type are skipped; a session saved unsorted is shown unsorted
    nlohmann::json odd = saved;
    odd["view"]["scale"] = nullptr;
    odd["view"]["colormap"] = 7;
    odd["view"]["order"] = "";
    std::ofstream(dir + "/odd.json") << odd.dump();
    ASSERT_TRUE(other.loadSession(dir + "/odd.json", &error)) << error.toStdString();
    ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
    ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
    ASSERT_TRUE(other.lastOutcome());
    EXPECT_TRUE(other.lastOutcome()->pooled->order.empty()) << other.lastOutcome()->pooled->order;
    EXPECT_EQ(other.session()["view"]["scale"], saved["view"]["scale"]);
  }
  {  // values out of range are clamped and said (they were clamped silently): in the log and the status line
    nlohmann::json wild = saved;
    wild["input"]["n"] = 1e18;
    wild["input"]["temperature"] = 0;
    wild["input"]["seed"] = -1;
    std::ofstream(dir + "/wild.json") << wild.dump();
    ASSERT_TRUE(other.loadSession(dir + "/wild.json", &error)) << error.toStdString();
    ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
    EXPECT_EQ(other.session()["input"]["n"], 16384);
    EXPECT_EQ(other.session()["input"]["seed"], 0);
    const QString log = other.logPanel()->lines().join("\n");
    for (const char* words : {"input n 1e+18 was set to 16384", "input temperature 0 was set to 0.01", "input seed -1 was set to 0"})
      EXPECT_TRUE(log.contains(QString::fromUtf8(words))) << words << "\n" << log.toStdString();
    bool shown = false;
    for (const QLabel* label : other.statusBar()->findChildren<QLabel*>())
      shown = shown || label->text().contains(QStringLiteral("session values changed: input n 1e+18 was set to 16384"));
    EXPECT_TRUE(shown);
  }

  // A window opened without options comes back as the last one closed.
  GuiOptions restore = options("longformer");
  restore.restore_session = true;
  MainWindow restored(restore);
  showAndWait(restored);
  EXPECT_EQ(restored.mechanismId(), "reformer");
  std::filesystem::remove_all(dir);
}

TEST_F(MainWindowTest, ShortcutsAreListedAndPresenterModeHidesThePanels) {
  MainWindow window(options("reformer"));
  showAndWait(window);
  const QStringList shortcuts = window.shortcutList();
  EXPECT_GE(shortcuts.size(), 12) << shortcuts.join("\n").toStdString();
  for (const char* what : {"Play / pause steps", "Next colour scale (log10, linear, rank)", "Presenter mode", "Keyboard shortcuts", "Open session",
                           "Compute curves"})
    EXPECT_TRUE(std::any_of(shortcuts.begin(), shortcuts.end(), [&](const QString& l) { return l.contains(what); })) << what;
  // Keys reach the window's shortcuts once it is active (Xvfb has no window manager to activate it; if
  // it stays inactive, the menu action the key is bound to is triggered instead).
  window.activateWindow();
  const bool active = QTest::qWaitForWindowActive(&window, 2000);
  auto press = [&](Qt::Key key, const QString& action_text) {
    if (active) {
      QTest::keyClick(&window, key);
      return;
    }
    for (QAction* a : window.findChildren<QAction*>())
      if (a->text() == action_text) a->trigger();
  };
  // F1: the shortcut list as an overlay over the viewport; F1 again closes it.
  {
    const QImage plain = window.viewportImage();
    press(Qt::Key_F1, "Keyboard shortcuts");
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    EXPECT_TRUE(window.helpVisible());
    EXPECT_GE(window.viewport()->scene().help.size(), shortcuts.size());
    EXPECT_GT(differingShare(plain, window.viewportImage()), 0.05);
    if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_HELP")) {
      EXPECT_TRUE(window.windowImage().save(path));
    }
    press(Qt::Key_F1, "Keyboard shortcuts");
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    EXPECT_FALSE(window.helpVisible());
    EXPECT_TRUE(window.viewport()->scene().help.empty());
  }
  // A key changes the picture: L switches the colour scale.
  const QImage log_image = window.viewportImage();
  press(Qt::Key_L, "Next colour scale (log10, linear, rank)");
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_GT(differingShare(log_image, window.viewportImage()), 0.01);
  // Presenter mode: panels and menu hidden, larger text (Qt's and the overlay's); leaving it restores them.
  const double font = QApplication::font().pointSizeF();
  // The overlay's text: the first panel's title line (46 to 30 units above the panel) holds ink that many
  // rows high; in presenter mode every unit is 1.5 pixels.
  auto titleInk = [&] {
    const QImage image = window.viewportImage();
    const scene::Rect r = layoutOf(window.viewport()).panels.at(0);
    const float s = scene::uiScale(window.viewport()->scene());
    const double ratio = double(image.width()) / window.viewport()->width();
    return inkRows(image, QRect(int(r.x * ratio), int((r.y - 50 * s) * ratio), int(r.w * ratio), int(26 * s * ratio)));
  };
  const int plain_title = titleInk();
  EXPECT_GE(plain_title, 8);
  window.setPresenterMode(true);
  QTest::qWait(100);
  int visible = 0;
  for (QDockWidget* dock : window.findChildren<QDockWidget*>()) visible += dock->isVisible();
  EXPECT_EQ(visible, 0);
  // The whole height for the picture: no toolbar, no status bar (nor its notices), no frame time.
  for (QToolBar* bar : window.findChildren<QToolBar*>()) EXPECT_FALSE(bar->isVisible());
  EXPECT_FALSE(window.statusBar()->isVisible());
  EXPECT_FALSE(window.viewport()->frameStats().shown);
  EXPECT_GE(window.viewport()->height(), window.height() - 4);
  EXPECT_NEAR(QApplication::font().pointSizeF(), 1.5 * font, 0.01);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_NE(window.viewport(), nullptr);
  EXPECT_EQ(window.viewport()->scene().colormap, scene::Colormap::Magma);  // the high-contrast map
  EXPECT_FLOAT_EQ(window.viewport()->scene().ui_scale, 1.5f);
  const int presenter_title = titleInk();
  EXPECT_GE(presenter_title, plain_title * 1.3) << plain_title << " rows of title text before";
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_PRESENTER")) {
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    EXPECT_TRUE(window.windowImage().save(path));
  }
  saveShot(window, "presenter");
  // The light theme: light widgets, a light viewport with dark text, light charts; remembered.
  window.setLightTheme(true);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const QImage light = window.viewportImage();
  EXPECT_EQ(light.pixel(2, 2) & 0xffffff, 0xf6f7faU) << std::hex << light.pixel(2, 2);
  EXPECT_GT(QApplication::palette().color(QPalette::Window).lightness(), 180);
  EXPECT_TRUE(QSettings().value("lightTheme").toBool());
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_LIGHT")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  window.setLightTheme(false);  // (the settings are shared by the tests that follow)
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.viewportImage().pixel(2, 2) & 0xffffff, 0x181b21U);
  EXPECT_LT(QApplication::palette().color(QPalette::Window).lightness(), 80);
  press(Qt::Key_F5, "Presenter mode");
  QTest::qWait(100);
  EXPECT_FALSE(window.presenterMode());
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_FLOAT_EQ(window.viewport()->scene().ui_scale, 1.0f);
  EXPECT_EQ(titleInk(), plain_title);
  visible = 0;
  for (QDockWidget* dock : window.findChildren<QDockWidget*>()) visible += dock->isVisible();
  EXPECT_GE(visible, 4);
  EXPECT_TRUE(window.statusBar()->isVisible());
  EXPECT_TRUE(window.viewport()->frameStats().shown);
  for (QToolBar* bar : window.findChildren<QToolBar*>()) EXPECT_TRUE(bar->isVisible());
  EXPECT_NEAR(QApplication::font().pointSizeF(), font, 0.01);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.viewport()->scene().colormap, scene::Colormap::Viridis);
}

TEST_F(MainWindowTest, TheNewestRequestWins) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  for (int w : {4, 16, 2, 32}) ASSERT_TRUE(window.setParameter("window", w));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  EXPECT_EQ(window.lastOutcome()->comparison->params.integer("window"), 32);

  ASSERT_TRUE(window.selectMechanism("reformer"));
  EXPECT_FALSE(window.selectMechanism("no-such-mechanism"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  EXPECT_EQ(window.lastOutcome()->comparison->mechanism->info().id, "reformer");
}

TEST_F(MainWindowTest, TheBrowserFiltersAndResetRestoresDefaults) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  auto* filter = window.findChild<QLineEdit*>(QStringLiteral("mechanism_filter"));
  auto* tree = window.findChild<QTreeWidget*>(QStringLiteral("mechanism_tree"));
  ASSERT_TRUE(filter && tree);
  auto visibleLeaves = [&] {
    QStringList names;
    for (int f = 0; f < tree->topLevelItemCount(); ++f)
      for (int c = 0; c < tree->topLevelItem(f)->childCount(); ++c)
        if (!tree->topLevelItem(f)->child(c)->isHidden()) names << tree->topLevelItem(f)->child(c)->text(0);
    return names;
  };
  const int all = static_cast<int>(visibleLeaves().size());
  EXPECT_EQ(all, static_cast<int>(attn::mechanisms().size()));
  // A match in a family the user collapsed is shown; the family folds again when the filter is cleared.
  QTreeWidgetItem* family = nullptr;
  for (int f = 0; f < tree->topLevelItemCount(); ++f)
    for (int c = 0; c < tree->topLevelItem(f)->childCount(); ++c)
      if (tree->topLevelItem(f)->child(c)->text(0) == QStringLiteral("Nystr\u00f6mformer"))
        family = tree->topLevelItem(f);
  ASSERT_NE(family, nullptr);
  family->setExpanded(false);
  QTest::keyClicks(filter, QStringLiteral("nystr"));
  EXPECT_EQ(visibleLeaves(), QStringList{QStringLiteral("Nystr\u00f6mformer")});
  EXPECT_TRUE(family->isExpanded());
  auto* no_match = window.findChild<QLabel*>(QStringLiteral("mechanism_no_match"));
  ASSERT_NE(no_match, nullptr);
  EXPECT_TRUE(no_match->isHidden());
  QTest::keyClicks(filter, QStringLiteral("zzz"));  // "nystrzzz": nothing matches, and the panel says so
  EXPECT_TRUE(visibleLeaves().isEmpty());
  EXPECT_FALSE(no_match->isHidden());
  EXPECT_TRUE(no_match->text().contains(QStringLiteral("nystrzzz")));
  filter->clear();
  EXPECT_EQ(visibleLeaves().size(), all);
  EXPECT_TRUE(no_match->isHidden());
  EXPECT_FALSE(family->isExpanded());
  family->setExpanded(true);

  // From the keyboard: Ctrl+F puts the keys in the filter (a letter there is text, not the L shortcut),
  // Enter opens the best match (here the first: none is an id or a title's beginning), Down moves into the list.
  // (Xvfb has no window manager: when the window stays inactive, the action the key is bound to is
  // triggered instead, and focus is checked as the window's focus widget.)
  window.activateWindow();
  if (QTest::qWaitForWindowActive(&window, 2000)) {
    QTest::keyClick(&window, Qt::Key_F, Qt::ControlModifier);
  } else {
    for (QAction* a : window.findChildren<QAction*>())
      if (a->shortcut() == QKeySequence::Find) a->trigger();
  }
  EXPECT_EQ(window.focusWidget(), filter);
  QTest::keyClicks(filter, QStringLiteral("lsh"));
  EXPECT_EQ(filter->text(), QStringLiteral("lsh"));
  const QStringList matches = visibleLeaves();
  ASSERT_FALSE(matches.isEmpty());
  QTest::keyClick(filter, Qt::Key_Return);
  ASSERT_TRUE(tree->currentItem());
  EXPECT_EQ(tree->currentItem()->text(0), matches.front());
  EXPECT_EQ(window.mechanismId(), tree->currentItem()->data(0, Qt::UserRole).toString().toStdString());
  QTest::keyClick(filter, Qt::Key_Down);
  EXPECT_EQ(window.focusWidget(), tree);
  filter->clear();
  ASSERT_TRUE(window.selectMechanism("longformer"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));

  ASSERT_TRUE(window.setParameter("window", 8));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  auto* reset = window.findChild<QPushButton*>(QStringLiteral("reset_parameters"));
  ASSERT_NE(reset, nullptr);
  QTest::mouseClick(reset, Qt::LeftButton);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  EXPECT_EQ(window.lastOutcome()->comparison->params.integer("window"), 64);
}

TEST_F(MainWindowTest, TheCompareMenuListsTheBrowsersFamilyOrderAndAnExactIdIsTheFirstMatch) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  auto* tree = window.findChild<QTreeWidget*>(QStringLiteral("mechanism_tree"));
  ASSERT_NE(tree, nullptr);
  // The browser: families as they are numbered (Reference, F1, F2, …), every mechanism once.
  QStringList browser_families, browser_titles;
  for (int f = 0; f < tree->topLevelItemCount(); ++f) {
    browser_families << tree->topLevelItem(f)->text(0);
    for (int c = 0; c < tree->topLevelItem(f)->childCount(); ++c)
      if (tree->topLevelItem(f)->child(c)->data(0, Qt::UserRole).toString() != QStringLiteral("longformer"))
        browser_titles << tree->topLevelItem(f)->child(c)->text(0);
  }
  std::set<attn::Family> present;
  for (const auto& m : attn::mechanisms()) present.insert(m->info().family);
  QStringList expected_families;  // std::set: in enum order
  for (const attn::Family family : present) expected_families << QString::fromStdString(attn::familyName(family));
  EXPECT_EQ(browser_families.join(" | ").toStdString(), expected_families.join(" | ").toStdString());
  // The Compare menu: the same families in the same order, the same mechanisms in the same order (less the
  // selected one).
  QToolButton* compare = nullptr;
  for (auto* button : window.findChildren<QToolButton*>())
    if (button->text().startsWith(QStringLiteral("Compare"))) compare = button;
  ASSERT_TRUE(compare && compare->menu());
  emit compare->menu()->aboutToShow();
  QStringList menu_families, menu_titles;
  for (QAction* a : compare->menu()->actions()) {
    if (!a->menu()) continue;
    menu_families << a->text();
    for (QAction* m : a->menu()->actions()) menu_titles << m->text();
  }
  EXPECT_EQ(menu_families.join(" | ").toStdString(), browser_families.join(" | ").toStdString());
  EXPECT_EQ(menu_titles.join(" | ").toStdString(), browser_titles.join(" | ").toStdString());

  // Typing an id and Enter opens that mechanism, not the first of those whose text contains it.
  auto* filter = window.findChild<QLineEdit*>(QStringLiteral("mechanism_filter"));
  ASSERT_NE(filter, nullptr);
  QTest::keyClicks(filter, QStringLiteral("performer"));
  QTest::keyClick(filter, Qt::Key_Return);
  EXPECT_EQ(window.mechanismId(), "performer");
  ASSERT_TRUE(tree->currentItem());
  EXPECT_EQ(tree->currentItem()->text(0).toStdString(), attn::requireMechanism("performer")->info().title);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  // A title that begins with the text before one that only mentions it: "linear" is the Linear Transformer.
  filter->clear();
  QTest::keyClicks(filter, QStringLiteral("linear"));
  QTest::keyClick(filter, Qt::Key_Return);
  ASSERT_TRUE(tree->currentItem());
  EXPECT_TRUE(tree->currentItem()->text(0).toLower().startsWith(QStringLiteral("linear")))
      << tree->currentItem()->text(0).toStdString();
  filter->clear();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
}

TEST_F(MainWindowTest, AWindowOpenedWithoutOptionsRunsTheDefaultInput) {
  GuiOptions o;  // what `attnlab gui` starts from before its options
  o.backend = "cpu";
  MainWindow window(o);
  showAndWait(window);
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  const attn::InputSpec& got = window.lastOutcome()->comparison->inputs.spec;
  const attn::InputSpec want = attn::defaultInput();
  EXPECT_EQ(attn::generatorName(got.generator), attn::generatorName(want.generator));
  EXPECT_EQ(got.n, want.n);
  EXPECT_EQ(got.d, want.d);
  EXPECT_EQ(got.dv, want.dv);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.temperature, want.temperature);
  EXPECT_EQ(attn::describeKnobs(got), attn::describeKnobs(want));
}

TEST_F(MainWindowTest, CtrlCOverSelectedTextCopiesTheTextNotTheView) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  window.activateWindow();
  ASSERT_TRUE(QTest::qWaitForWindowActive(&window, 2000)) << "the window's shortcuts need an active window";
  auto* log = window.logPanel()->findChild<QPlainTextEdit*>();
  ASSERT_NE(log, nullptr);
  for (QDockWidget* dock : window.findChildren<QDockWidget*>())
    if (dock->objectName() == QLatin1String("log")) {
      dock->show();
      dock->raise();
    }
  ASSERT_FALSE(log->toPlainText().isEmpty());
  log->setFocus();
  QTextCursor cursor = log->textCursor();
  cursor.movePosition(QTextCursor::Start);
  cursor.movePosition(QTextCursor::EndOfLine, QTextCursor::KeepAnchor);
  log->setTextCursor(cursor);
  const QString selected = cursor.selectedText();
  ASSERT_FALSE(selected.isEmpty());
  QGuiApplication::clipboard()->clear();
  QTest::keyClick(log, Qt::Key_C, Qt::ControlModifier);
  EXPECT_EQ(QGuiApplication::clipboard()->text(), selected);
  EXPECT_TRUE(QGuiApplication::clipboard()->image().isNull()) << "the view was copied instead";
  // Without a selection the key is the window's again: the view as an image.
  cursor.clearSelection();
  log->setTextCursor(cursor);
  QTest::keyClick(log, Qt::Key_C, Qt::ControlModifier);
  EXPECT_FALSE(QGuiApplication::clipboard()->image().isNull());
}

TEST_F(MainWindowTest, AStepInItsOwnTokenOrderIsNotPairedWithThePanelsInTheScenesOrder) {
  MainWindow window(options("reformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  const auto out = window.lastOutcome();
  ASSERT_TRUE(out && out->ok && out->pooled->order.empty()) << "tokens by position";
  // Reformer's "sort" steps show the tokens in bucket order.
  const auto sorted = std::find_if(out->pooled->steps.begin(), out->pooled->steps.end(),
                                   [](const scene::StepImage& p) { return p.own_order; });
  ASSERT_NE(sorted, out->pooled->steps.end());
  ASSERT_TRUE(window.setPatternView(sorted->title));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::Scene& scene = viewport->scene();
  ASSERT_EQ(scene.panels.size(), 3u);
  EXPECT_TRUE(scene.panels[2].own_order);
  EXPECT_FALSE(scene.panels[0].own_order || scene.panels[1].own_order);
  // A click on it picks no row (its rows are other tokens than the scene's); on exact it does.
  const scene::SceneLayout layout = layoutOf(viewport);
  const scene::Rect step = layout.panels.at(2), exact = layout.panels.at(0);
  QTest::mouseClick(viewport, Qt::LeftButton, {}, QPoint(int(step.x + step.w * 0.5), int(step.y + step.h * 0.5)));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.rowPanel()->query(), -1);
  QTest::mouseClick(viewport, Qt::LeftButton, {}, QPoint(int(exact.x + exact.w * 0.5), int(exact.y + exact.h * 0.5)));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_NEAR(double(window.rowPanel()->query()), 128, 2);
  // With every panel sorted by the step's own grouping, the step is in the scene's order again: its
  // pixels pair with the others', and the group strip runs beside it.
  const std::string by = sorted->what.substr(sorted->what.find("sorted by ") + std::string("sorted by ").size());
  ASSERT_TRUE(window.setOrder(by)) << by;
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.setPatternView(sorted->title));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_EQ(viewport->scene().panels.size(), 3u);
  EXPECT_FALSE(viewport->scene().panels[2].own_order);
  EXPECT_FALSE(viewport->scene().panels[2].row_groups.empty());
  EXPECT_EQ(viewport->scene().token_at.size(), 256u) << "the readout names tokens, not sorted positions";
}

TEST_F(MainWindowTest, EachGeneratorShowsItsKnobsAndTheyChangeTheInput) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  auto* generator = window.findChild<QComboBox*>(QStringLiteral("input_generator"));
  auto* temperature = window.findChild<QDoubleSpinBox*>(QStringLiteral("input_temperature"));
  auto* clusters = window.findChild<QSpinBox*>(QStringLiteral("input_clusters"));
  auto* period = window.findChild<QSpinBox*>(QStringLiteral("input_period"));
  auto* lambda = window.findChild<QDoubleSpinBox*>(QStringLiteral("input_position_weight"));
  ASSERT_TRUE(generator && temperature && clusters && period && lambda);
  auto choose = [&](const char* name) {
    const int index = generator->findText(QString::fromLatin1(name));
    ASSERT_GE(index, 0) << name;
    generator->setCurrentIndex(index);
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  };
  choose("clustered");
  EXPECT_FALSE(clusters->isHidden());
  EXPECT_TRUE(period->isHidden());
  EXPECT_TRUE(lambda->isHidden());
  EXPECT_FALSE(temperature->isHidden()) << "every generator has a temperature";
  clusters->setValue(2);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  auto outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok);
  const attn::Inputs& in = outcome->comparison->inputs;
  EXPECT_EQ(in.spec.clusters, 2);
  ASSERT_FALSE(in.cluster.empty());
  EXPECT_EQ(*std::max_element(in.cluster.begin(), in.cluster.end()), 1) << "tokens drawn around two centres";
  EXPECT_EQ(window.session()["input"]["clusters"], 2);

  choose("periodic");
  EXPECT_TRUE(clusters->isHidden());
  EXPECT_FALSE(period->isHidden());
  period->setValue(16);
  temperature->setValue(0.5);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  outcome = window.lastOutcome();
  ASSERT_TRUE(outcome && outcome->ok);
  EXPECT_EQ(outcome->comparison->inputs.spec.period, 16);
  EXPECT_DOUBLE_EQ(outcome->comparison->inputs.spec.temperature, 0.5);
  // The same spec generated here: the panel's knobs are what the run used.
  attn::InputSpec expected;  // spelled out here, not read back from the run
  expected.n = 256;
  expected.d = expected.dv = 32;
  expected.seed = 3;
  expected.generator = attn::Generator::Periodic;
  expected.period = 16;
  expected.temperature = 0.5;
  EXPECT_TRUE(attn::generate(expected).q == outcome->comparison->inputs.q);

  choose("image");
  EXPECT_FALSE(lambda->isHidden());
  EXPECT_TRUE(period->isHidden());
}

/// Row i of exact softmax attention, softmax(q_i · K / √d), in double precision (computed here, not by attnlab).
std::vector<double> softmaxRow(const attn::Inputs& in, attn::Index i) {
  std::vector<double> w(size_t(in.k.rows()));
  double top = -1e300, sum = 0;
  for (attn::Index j = 0; j < in.k.rows(); ++j) {
    w[size_t(j)] = in.q.row(i).cast<double>().dot(in.k.row(j).cast<double>()) / std::sqrt(double(in.q.cols()));
    top = std::max(top, w[size_t(j)]);
  }
  for (double& l : w) sum += (l = std::exp(l - top));
  for (double& l : w) l /= sum;
  return w;
}

/// Sends `notches` wheel notches (positive: zoom in) at `at` to the viewport.
void wheel(view::HeatmapWindow* viewport, QPointF at, int notches) {
  for (int k = 0; k < std::abs(notches); ++k) {
    QWheelEvent event(at, viewport->mapToGlobal(at), QPoint(), QPoint(0, notches > 0 ? 120 : -120), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QCoreApplication::sendEvent(viewport, &event);
  }
}

TEST_F(MainWindowTest, ExportsAreWhatTheViewportShows) {
  // A sorted, zoomed, stepped view: the export of "what is on screen" is the view model's scene for the screen's
  // own request (the same panels, value for value), and its PNG shows each matrix cell in the colour the
  // viewport's grab shows it.
  GuiOptions o = options("reformer");
  o.input.generator = attn::Generator::Clustered;
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  auto out = window.lastOutcome();
  ASSERT_TRUE(out && out->ok) << window.lastError().toStdString();
  ASSERT_FALSE(out->pooled->orders.empty());
  ASSERT_TRUE(window.setOrder(out->pooled->orders.front()));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::Rect r0 = layoutOf(viewport).panels.at(1);
  wheel(viewport, QPointF(r0.x + r0.w * 0.4, r0.y + r0.h * 0.3), 3);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.setPatternView(out->pooled->steps.at(1).title));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  out = window.lastOutcome();
  ASSERT_TRUE(out && out->ok && !out->metrics_pending);
  const scene::Scene& shown = viewport->scene();
  ASSERT_FALSE(shown.view.full()) << "zoomed";
  ASSERT_FALSE(out->pooled->order.empty()) << "sorted";
  ASSERT_EQ(shown.steps.current, 1) << "stepped";

  // The export's scene: the screen's request at the screen's resolution gives the screen's panels exactly.
  ExportOptions eo;
  eo.pixels = out->pooled->request.pixels;
  const scene::ViewRequest request = window.exportRequest("screen", eo);
  EXPECT_EQ(request.order, out->pooled->order);
  EXPECT_EQ(request.window, shown.view);
  EXPECT_EQ(request.third, scene::Third::Step);
  EXPECT_EQ(request.step, 1);
  const fig::SceneFigure figure = fig::sceneFigure(out->pooled->subject, request, fig::makeStyle("double"));
  const scene::Scene& exported = figure.scene();
  ASSERT_EQ(exported.panels.size(), shown.panels.size());
  for (std::size_t k = 0; k < shown.panels.size(); ++k) {
    EXPECT_EQ(exported.panels[k].title, shown.panels[k].title);
    EXPECT_EQ(exported.panels[k].shown_rows, shown.panels[k].shown_rows) << shown.panels[k].title;
    EXPECT_EQ(exported.panels[k].shown_cols, shown.panels[k].shown_cols) << shown.panels[k].title;
    EXPECT_EQ(exported.panels[k].row_groups, shown.panels[k].row_groups) << shown.panels[k].title;
    ASSERT_EQ(exported.panels[k].values.rows(), shown.panels[k].values.rows()) << shown.panels[k].title;
    ASSERT_EQ(exported.panels[k].values.cols(), shown.panels[k].values.cols()) << shown.panels[k].title;
    EXPECT_TRUE(exported.panels[k].values == shown.panels[k].values) << shown.panels[k].title;
  }
  // The file: written through the same path, at 288 dpi (4 device pixels per point).
  const std::string path = testing::TempDir() + "attnlab-export-screen.png";
  QString error;
  ASSERT_TRUE(window.exportFigure("screen", path, &error, {"double", "", eo.pixels, 288})) << error.toStdString();
  QImage file(QString::fromStdString(path));
  ASSERT_FALSE(file.isNull());
  const QImage grab = window.viewportImage();
  const scene::SceneLayout layout = layoutOf(viewport);
  // Cell by cell, exact's and the mechanism's panels: the same colour on screen and in the file.
  for (std::size_t k = 0; k < 2; ++k) {
    const scene::Panel& p = shown.panels[k];
    const scene::Rect& on_screen = layout.panels[k];
    const QRectF in_file = figure.layout().panels[k];
    // The screen shows the window's exact span, the texture the whole entries it covers: panelUv maps one to the other.
    const std::array<float, 4> uv = scene::panelUv(shown, k);
    int cells = 0, differ = 0;
    for (attn::Index i = 0; i < p.values.rows(); i += 3)
      for (attn::Index j = 0; j < p.values.cols(); j += 3) {
        const double fy = (double(i) + 0.5) / double(p.values.rows()), fx = (double(j) + 0.5) / double(p.values.cols());
        const double sx = on_screen.x + (fx - uv[0]) / (uv[2] - uv[0]) * on_screen.w;
        const double sy = on_screen.y + (fy - uv[1]) / (uv[3] - uv[1]) * on_screen.h;
        if (sx < on_screen.x + 1 || sy < on_screen.y + 1 || sx > on_screen.x + on_screen.w - 2 || sy > on_screen.y + on_screen.h - 2)
          continue;  // a cell the window cuts at the edge
        const QRgb a = grab.pixel(int(sx), int(sy));
        const QRgb b = file.pixel(int((in_file.left() + fx * in_file.width()) * 4), int((in_file.top() + fy * in_file.height()) * 4));
        ++cells;
        differ += std::max({std::abs(qRed(a) - qRed(b)), std::abs(qGreen(a) - qGreen(b)), std::abs(qBlue(a) - qBlue(b))}) > 12;
      }
    EXPECT_GT(cells, 100);
    EXPECT_LT(differ, cells / 50) << p.title << ": cells coloured differently on screen and in the file";
  }
  std::filesystem::remove(path);
}

TEST_F(MainWindowTest, ZoomAndPanPoolTheWindowSharpAndShowAMinimap) {
  GuiOptions o = options("longformer");
  o.input.n = 2048;
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  const QImage whole = window.viewportImage();
  ASSERT_TRUE(window.lastOutcome()->pooled->request.window.full());
  EXPECT_EQ(viewport->scene().minimap.values.size(), 0);
  const scene::Rect r = layoutOf(viewport).panels.at(1);
  // Twelve wheel notches about the point a quarter across and down: 1.25^12 ≈ 14.6×.
  wheel(viewport, QPointF(r.x + r.w * 0.25, r.y + r.h * 0.25), 12);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::ViewWindow v = viewport->view();
  EXPECT_NEAR(v.row1 - v.row0, std::pow(1.25, -12), 1e-9);
  EXPECT_NEAR(v.row0 + 0.25 * (v.row1 - v.row0), 0.25, 2e-3);  // the point under the pointer stayed (to a pixel)
  EXPECT_NEAR(v.col0 + 0.25 * (v.col1 - v.col0), 0.25, 2e-3);
  auto out = window.lastOutcome();
  ASSERT_TRUE(out && out->ok);
  EXPECT_EQ(out->pooled->request.window, v);  // pooled again for the new window
  // ~140 rows on a ~240-pixel panel: one pixel per entry, so the panel holds the weights themselves.
  // Check them against softmax(q_i · k_j / √d) computed here in double precision.
  const attn::Range rows = out->pooled->exact.rows, cols = out->pooled->exact.cols;
  EXPECT_NEAR(double(rows.begin), 0.25 * 2048 - 0.25 * rows.size(), 2);
  ASSERT_EQ(out->pooled->exact.values.rows(), rows.size());
  ASSERT_EQ(out->pooled->exact.values.cols(), cols.size());
  const attn::Inputs& in = out->comparison->inputs;
  for (attn::Index i : {rows.begin, (rows.begin + rows.end) / 2, rows.end - 1}) {
    const std::vector<double> softmax = softmaxRow(in, i);
    for (attn::Index j : {cols.begin, i, cols.end - 1}) {
      if (j < cols.begin || j >= cols.end) continue;
      const double w = softmax[size_t(j)];
      EXPECT_NEAR(out->pooled->exact.values(i - rows.begin, j - cols.begin), w, 1e-6 + 1e-4 * w) << i << ", " << j;
    }
  }
  // The picture changed, and the minimap (the whole matrix with the window outlined) is there.
  const QImage zoomed = window.viewportImage();
  EXPECT_GT(differingShare(whole, zoomed), 0.1);
  EXPECT_GT(viewport->scene().minimap.values.size(), 0);
  EXPECT_GT(layoutOf(viewport).minimap.w, 0);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_ZOOM")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // Drag half a panel to the left: the window moves half its width towards larger j.
  const QPoint from(int(r.x + r.w * 0.6), int(r.y + r.h * 0.5));
  QTest::mousePress(viewport, Qt::LeftButton, {}, from);
  QTest::mouseMove(viewport, from - QPoint(int(r.w / 4), 0));
  QTest::mouseMove(viewport, from - QPoint(int(r.w / 2), 0));
  QTest::mouseRelease(viewport, Qt::LeftButton, {}, from - QPoint(int(r.w / 2), 0));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::ViewWindow panned = viewport->view();
  EXPECT_NEAR(panned.col0 - v.col0, 0.5 * (v.col1 - v.col0), 0.01 * (v.col1 - v.col0));
  EXPECT_DOUBLE_EQ(panned.row0, v.row0);
  EXPECT_EQ(window.lastOutcome()->pooled->request.window, panned);
  EXPECT_GT(window.lastOutcome()->pooled->exact.cols.begin, cols.begin);
  // A parameter change keeps the zoom; Fit (key 0, or a double click) shows the whole matrix again.
  ASSERT_TRUE(window.setParameter("window", 64));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.lastOutcome()->pooled->request.window, panned);
  QTest::mouseDClick(viewport, Qt::LeftButton, {}, from);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(viewport->view().full());
  EXPECT_TRUE(window.lastOutcome()->pooled->request.window.full());
  EXPECT_EQ(viewport->scene().minimap.values.size(), 0);
  // A double click with a hand's jitter before the release still fits (the second press is no drag).
  wheel(viewport, QPointF(r.x + r.w * 0.5, r.y + r.h * 0.5), 4);
  ASSERT_FALSE(viewport->view().full());
  QTest::mousePress(viewport, Qt::LeftButton, {}, from);
  QTest::mouseRelease(viewport, Qt::LeftButton, {}, from);
  QTest::mousePress(viewport, Qt::LeftButton, {}, from);
  {
    QMouseEvent twice(QEvent::MouseButtonDblClick, QPointF(from), viewport->mapToGlobal(QPointF(from)), Qt::LeftButton,
                      Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(viewport, &twice);
  }
  QTest::mouseMove(viewport, from + QPoint(3, 2));
  QTest::mouseRelease(viewport, Qt::LeftButton, {}, from + QPoint(3, 2));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(viewport->view().full());
  // Zoomed in as far as N = 2048 allows (8 entries a side), then N = 256: the view widens to the closest
  // zoom N = 256 allows instead of magnifying a fraction of one entry.
  wheel(viewport, QPointF(r.x + r.w * 0.5, r.y + r.h * 0.5), 40);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_NEAR(viewport->view().row1 - viewport->view().row0, 8.0 / 2048, 1e-9);
  auto* n = window.findChild<QSpinBox*>(QStringLiteral("input_n"));
  ASSERT_NE(n, nullptr);
  n->setValue(256);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_NEAR(viewport->view().row1 - viewport->view().row0, 8.0 / 256, 1e-9);
  EXPECT_NEAR(viewport->view().col1 - viewport->view().col0, 8.0 / 256, 1e-9);
  EXPECT_EQ(window.lastOutcome()->pooled->request.window, viewport->view());
}

TEST_F(MainWindowTest, TheStepBarStepsAndPlaysAndTheLogAndClipboardRecordTheWork) {
  MainWindow window(options("reformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  // The overlay's step bar: Next shows step 1, Next again step 2, Previous step 1, First step 1.
  ASSERT_GT(viewport->scene().steps.count, 2);
  EXPECT_EQ(viewport->scene().steps.current, -1);
  const scene::SceneLayout layout = layoutOf(viewport);
  auto click = [&](int button) {
    const scene::Rect& b = layout.step_buttons[size_t(button)];
    QTest::mouseClick(viewport, Qt::LeftButton, {}, QPoint(int(b.x + b.w / 2), int(b.y + b.h / 2)));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  };
  const QImage before = window.viewportImage();
  click(3);
  EXPECT_EQ(viewport->scene().steps.current, 0);
  EXPECT_EQ(viewport->scene().panels.back().title, viewport->scene().steps.title);
  click(3);
  EXPECT_EQ(viewport->scene().steps.current, 1);
  click(1);
  EXPECT_EQ(viewport->scene().steps.current, 0);
  click(3);
  click(0);
  EXPECT_EQ(viewport->scene().steps.current, 0);
  EXPECT_GT(differingShare(before, window.viewportImage()), 0.01);
  click(2);
  EXPECT_TRUE(window.playingSteps());
  EXPECT_TRUE(viewport->scene().steps.playing);
  // The toolbar's Play/Pause button, playing and not, draws no box for a glyph no font has (⏸ U+23F8).
  for (const QToolButton* button : window.findChildren<QToolButton*>())
    EXPECT_EQ(withoutAFont(button->text()).toStdString(), "") << button->text().toStdString();
  click(2);
  EXPECT_FALSE(window.playingSteps());
  for (const QToolButton* button : window.findChildren<QToolButton*>())
    EXPECT_EQ(withoutAFont(button->text()).toStdString(), "") << button->text().toStdString();
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_STEPBAR")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // The frame time is measured (and drawn top right).
  EXPECT_GT(viewport->frameStats().draw_ms, 0);
  EXPECT_GT(viewport->framesDrawn(), 3u);

  // Copy: the view as an image, the numbers as tab-separated text.
  ASSERT_TRUE(window.copyView());
  const QImage copied = QGuiApplication::clipboard()->image();
  EXPECT_EQ(copied.size(), window.viewportImage().size());
  ASSERT_TRUE(window.copyNumbers());
  const QString numbers = QGuiApplication::clipboard()->text();
  EXPECT_TRUE(numbers.startsWith("mechanism\treformer")) << numbers.toStdString();
  EXPECT_TRUE(numbers.contains("\nN\t256\n")) << numbers.toStdString();
  EXPECT_TRUE(numbers.contains("relative error\t")) << numbers.toStdString();

  // The log: the runs, and an error that the status line showed.
  LogPanel* log = window.logPanel();
  ASSERT_NE(log, nullptr);
  const QStringList lines = log->lines();
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const QString& l) { return l.contains("reformer on"); }))
      << lines.join("\n").toStdString();
  const int errors = log->errorCount();
  QString error;
  EXPECT_FALSE(window.loadSession("/nonexistent/session.json", &error));
  EXPECT_FALSE(window.exportFigure("weights", "/nonexistent/dir/x.png", &error));
  window.setParameter("rounds", 3);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const std::string log_path = testing::TempDir() + "attnlab-log.txt";
  ASSERT_TRUE(log->saveTo(QString::fromStdString(log_path)));
  std::ifstream saved(log_path);
  const std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("copied the view"), std::string::npos);
  EXPECT_GT(log->errorCount(), errors) << text;  // the session that could not be opened
  std::filesystem::remove(log_path);
}

TEST_F(MainWindowTest, AComparedMechanismKeepsTheValuesItWasTunedToAndTheSessionToo) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("attnlab-tuned-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  MainWindow window(options("longformer"));
  showAndWait(window);
  ASSERT_TRUE(window.setCompare({"performer"}));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  // Select Performer to tune it, then go back: the comparison runs it with the tuned value.
  ASSERT_TRUE(window.selectMechanism("performer"));
  ASSERT_TRUE(window.setParameter("features", 32));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.selectMechanism("longformer"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  auto performerFeatures = [](const MainWindow& w) -> attn::Index {
    const auto out = w.lastOutcome();
    if (!out) return -1;
    for (const auto& other : out->others())
      if (other.id == "performer" && other.comparison) return other.comparison->params.integer("features");
    return -1;
  };
  EXPECT_EQ(performerFeatures(window), 32);
  // Selected again, it shows that value rather than its default.
  ASSERT_TRUE(window.selectMechanism("performer"));
  EXPECT_EQ(window.session()["params"]["features"], 32);
  // A value committed just before another mechanism is picked (a spin box losing focus to a click in the
  // list: the run it schedules comes after the switch) is kept too.
  ASSERT_TRUE(window.setParameter("features", 48));
  ASSERT_TRUE(window.selectMechanism("longformer"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(performerFeatures(window), 48);
  ASSERT_TRUE(window.selectMechanism("performer"));
  EXPECT_EQ(window.session()["params"]["features"], 48);
  ASSERT_TRUE(window.setParameter("features", 32));
  ASSERT_TRUE(window.selectMechanism("longformer"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const nlohmann::json saved = window.session();
  EXPECT_EQ(saved["compare_params"]["performer"]["features"], 32);
  QString error;
  ASSERT_TRUE(window.saveSession(dir + "/tuned.json", &error)) << error.toStdString();
  MainWindow other(options("bigbird"));
  showAndWait(other);
  ASSERT_TRUE(other.loadSession(dir + "/tuned.json", &error)) << error.toStdString();
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  EXPECT_EQ(performerFeatures(other), 32) << "the comparison comes back with Performer as tuned";
  // A session that does not tune it (an older file) runs it at its defaults, whatever this window had;
  // values for parameters it does not have are named in the status line.
  nlohmann::json plain = saved;
  plain.erase("compare_params");
  std::ofstream(dir + "/plain.json") << plain.dump();
  ASSERT_TRUE(other.loadSession(dir + "/plain.json", &error)) << error.toStdString();
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  EXPECT_EQ(performerFeatures(other), 256);
  nlohmann::json odd = saved;
  odd["compare_params"]["performer"]["no_such_knob"] = 3;
  std::ofstream(dir + "/odd.json") << odd.dump();
  ASSERT_TRUE(other.loadSession(dir + "/odd.json", &error)) << error.toStdString();
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(other.waitForIdle(k_timeout_ms));
  EXPECT_EQ(performerFeatures(other), 32) << "the known value still applies";
  bool named = false;
  for (QLabel* label : other.findChildren<QLabel*>()) named = named || label->text().contains("performer.no_such_knob");
  EXPECT_TRUE(named) << "the skipped value is named";
  std::filesystem::remove_all(dir);
}

TEST_F(MainWindowTest, CompareModeShowsMechanismsSideBySideZoomsThemTogetherAndExportsTheGrid) {
  MainWindow window(options("longformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  QString error;
  EXPECT_FALSE(window.setCompare({"performer", "bigbird", "nystromformer", "reformer"}, &error));  // 5 mechanisms
  EXPECT_NE(error.indexOf("at most"), -1) << error.toStdString();
  EXPECT_FALSE(window.setCompare({"no-such-thing"}, &error));
  ASSERT_TRUE(window.setCompare({"performer", "bigbird", "nystromformer"}, &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  // exact | Longformer | Performer | BigBird | Nyströmformer, each with its own error and time.
  const scene::Scene& scene = viewport->scene();
  ASSERT_EQ(scene.panels.size(), 5u);
  auto out = window.lastOutcome();
  ASSERT_EQ(out->others().size(), 3u);
  for (size_t k = 1; k < 5; ++k) {
    EXPECT_GT(scene.panels[k].values.size(), 0) << scene.panels[k].title;
    ASSERT_FALSE(scene.panels[k].captions.empty());
    EXPECT_EQ(scene.panels[k].captions.front().rfind("misplaced", 0), 0u) << scene.panels[k].captions.front();
  }
  // The others' errors are their own comparisons' (on the same inputs as the main one).
  for (const auto& other : out->others()) {
    ASSERT_TRUE(other.comparison) << other.id << ": " << other.error;
    EXPECT_TRUE(other.comparison->inputs.q == out->comparison->inputs.q);
    EXPECT_GT(other.comparison->relative_error, 0);
    EXPECT_TRUE(other.comparison->reused_reference) << other.id << ": exact is computed once";
  }
  EXPECT_NE(out->others()[0].comparison->relative_error, out->others()[1].comparison->relative_error);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_COMPARE")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // Synchronised zoom: every panel is pooled for the same window.
  const scene::Rect r = scene::layoutScene(float(viewport->width()), float(viewport->height()), scene).panels.at(2);
  wheel(viewport, QPointF(r.x + r.w * 0.5, r.y + r.h * 0.5), 6);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  out = window.lastOutcome();
  ASSERT_FALSE(out->pooled->request.window.full());
  ASSERT_EQ(out->others().size(), 3u);
  for (const auto& other : out->pooled->others) {
    EXPECT_EQ(other.rows, out->pooled->exact.rows);
    EXPECT_EQ(other.cols, out->pooled->exact.cols);
  }
  for (const scene::Panel& p : viewport->scene().panels) EXPECT_EQ(p.shown_rows, out->pooled->exact.rows) << p.title;
  // A parameter change of the main mechanism reruns it alone: exact is reused, the others stay.
  ASSERT_TRUE(window.setParameter("window", 48));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(window.lastOutcome()->comparison->reused_reference);
  EXPECT_EQ(window.lastOutcome()->others().size(), 3u);
  // The grid through the figure layer, in the three formats; without compare mode it is refused.
  const std::string dir = testing::TempDir() + "attnlab-compare";
  std::filesystem::create_directories(dir);
  for (const char* ext : {"png", "svg", "pdf"}) {
    const std::string path = dir + "/grid." + ext;
    ASSERT_TRUE(window.exportFigure("compare", path, &error)) << error.toStdString();
    EXPECT_GT(std::filesystem::file_size(path), 1000u) << path;
  }
  QImage grid(QString::fromStdString(dir + "/grid.png"));
  ASSERT_FALSE(grid.isNull());
  {  // the five panels of the screen: exact, the selected mechanism and the three compared ones
    const fig::SceneFigure f = fig::sceneFigure(window.lastOutcome()->pooled->subject, window.exportRequest("compare"),
                                                fig::makeStyle("double"));
    EXPECT_EQ(f.layout().panels.size(), 5u);
    EXPECT_EQ(f.scene().panels.size(), viewport->scene().panels.size());
  }
  // The session keeps the comparison.
  EXPECT_EQ(window.session().at("compare").size(), 3u);
  const attn::Index compare_pixels = window.lastOutcome()->pooled->request.pixels;
  ASSERT_TRUE(window.setCompare({}));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_LE(viewport->scene().panels.size(), 3u);
  // Back to two or three panels, each larger: pooled again at the new size (not the compare grid's, blocky).
  const scene::SceneLayout single = layoutOf(viewport);
  EXPECT_GT(window.lastOutcome()->pooled->request.pixels, compare_pixels);
  EXPECT_GE(double(window.lastOutcome()->pooled->request.pixels), 0.9 * single.panels.at(0).w);
  EXPECT_FALSE(window.exportFigure("compare", dir + "/none.png", &error));
  std::filesystem::remove_all(dir);
}

TEST_F(MainWindowTest, InThePixelViewAClickedPixelIsThePickedTokenOfTheRowDockToo) {
  GuiOptions o = options("longformer");
  o.input.generator = attn::Generator::Image;  // the synthetic picture, 16×12 pixels
  o.input.n = 16 * 12;
  o.input.width = 16;
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  EXPECT_EQ(window.viewLayout(), scene::Layout::Matrix);  // the default, as every other test assumes
  window.setViewLayout(scene::Layout::Pixel);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_GE(viewport->scene().panels.size(), 2u);
  EXPECT_EQ(viewport->scene().panels[0].role, "pixel map");
  EXPECT_EQ(viewport->scene().panels[0].pixel_marks.at(0), (scene::PixelMark{8, 6, "picked"}));  // the centre
  // Click the centre of pixel (x 3, y 9) of the mechanism's map: token 9·16 + 3.
  const scene::Rect r = layoutOf(viewport).panels.at(1);
  QTest::mouseClick(viewport, Qt::LeftButton, {},
                    QPoint(int(r.x + r.w * (3.5 / 16)), int(r.y + r.h * (9.5 / 12))));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.rowPanel()->query(), 9 * 16 + 3);
  const scene::Scene& s = viewport->scene();
  ASSERT_GE(s.panels.size(), 2u);
  EXPECT_EQ(s.panels[1].pixel_marks.at(0), (scene::PixelMark{3, 9, "picked"}));
  // The map is that token's row: its Row dock series (one bin a key at N = 192) and the panel agree.
  const std::vector<double>& exact = window.rowPanel()->series().at(0).values;
  ASSERT_EQ(exact.size(), 192u);
  for (attn::Index j = 0; j < 192; j += 11) EXPECT_NEAR(s.panels[0].values(j / 16, j % 16), exact[size_t(j)], 1e-7) << j;
  // Back to the matrices: the picked row stays the same token.
  window.setViewLayout(scene::Layout::Matrix);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(viewport->scene().selected_row, 9 * 16 + 3);
  EXPECT_EQ(viewport->scene().panels[0].role, "exact");
}

// File → Open image: a picture of one's own becomes the tokens (left half red, right half blue: the grid's
// pixels say so), the Input panel shows it and the pixel view draws over it; a session names the file and
// reads it again; a file that is no image changes nothing and says why.
TEST_F(MainWindowTest, OpenImageRunsOnThePictureAndABadFileChangesNothing) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-open-image-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  QImage picture(64, 48, QImage::Format_RGB32);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) picture.setPixel(x, y, x < 32 ? qRgb(255, 0, 0) : qRgb(0, 0, 255));
  const std::string png = dir + "/halves.png";
  ASSERT_TRUE(picture.save(QString::fromStdString(png)));
  GuiOptions o = options("exact");
  o.input.n = 192;  // 16×12 is the grid nearest the picture's 4:3
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  QString error;
  ASSERT_TRUE(window.openImage(png, &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->comparison);
  const attn::Inputs& in = window.lastOutcome()->comparison->inputs;
  EXPECT_EQ(in.spec.generator, attn::Generator::Image);
  ASSERT_TRUE(in.picture);
  EXPECT_EQ(in.picture->width, 16);
  EXPECT_EQ(in.picture->height, 12);
  EXPECT_NEAR(in.picture->at(5, 2, 0), 1.0, 1e-6);   // red on the left
  EXPECT_NEAR(in.picture->at(5, 13, 2), 1.0, 1e-6);  // blue on the right
  EXPECT_NEAR(in.picture->at(5, 13, 0), 0.0, 1e-6);
  auto* chooser = window.findChild<QComboBox*>(QStringLiteral("input_picture"));
  ASSERT_NE(chooser, nullptr);
  EXPECT_TRUE(chooser->isVisibleTo(&window));
  EXPECT_EQ(chooser->currentText(), QStringLiteral("halves.png"));
  EXPECT_EQ(window.session().at("input").at("image"), png);
  window.setViewLayout(scene::Layout::Pixel);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_FALSE(viewport->scene().panels.empty());
  ASSERT_TRUE(viewport->scene().panels[0].picture);
  EXPECT_EQ(viewport->scene().panels[0].picture->width, 16);
  // A session names the file; loading it reads the picture again.
  const nlohmann::json saved = window.session();
  // Not an image: nothing changes, and the message names the file.
  const std::string text = dir + "/notes.png";
  std::ofstream(text) << "not a picture";
  error.clear();
  EXPECT_FALSE(window.openImage(text, &error));
  EXPECT_NE(error.indexOf(QStringLiteral("notes.png")), -1) << error.toStdString();
  EXPECT_EQ(window.lastError(), error);
  EXPECT_EQ(window.session().at("input").at("image"), png);
  // Back to a shipped photo from the chooser, then the saved session: the file is read again.
  chooser->setCurrentIndex(chooser->findData(QStringLiteral("coffee")));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.lastOutcome()->comparison->inputs.spec.image, "coffee");
  ASSERT_TRUE(window.applySession(saved, &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome()->comparison->inputs.picture);
  EXPECT_NEAR(window.lastOutcome()->comparison->inputs.picture->at(0, 15, 2), 1.0, 1e-6);
  EXPECT_EQ(chooser->currentText(), QStringLiteral("halves.png"));
  // The file gone: the session still opens, on the synthetic picture, and says so.
  std::filesystem::remove(png);
  ASSERT_TRUE(window.applySession(saved, &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(window.lastOutcome()->comparison->inputs.spec.image, "");
  std::filesystem::remove_all(dir);
}

// The vision family in the window (issue 22): on a picture opened from a file, each module runs and draws its
// view over the picture, a picked pixel's maps (pairwise modules) or its gates (gating modules), on the screen.
TEST_F(MainWindowTest, EveryVisionModuleDrawsItsViewOverAnOpenedPicture) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("attnlab-vision-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  const std::string png = dir + "/scene.png";  // a gradient with a red square and a blue disc, 4:3
  QImage picture(64, 48, QImage::Format_RGB32);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) {
      const bool square = x >= 8 && x < 24 && y >= 8 && y < 24, disc = (x - 44) * (x - 44) + (y - 30) * (y - 30) < 100;
      picture.setPixel(x, y, square ? qRgb(220, 30, 30) : disc ? qRgb(30, 60, 220) : qRgb(4 * x, 4 * y, 120));
    }
  ASSERT_TRUE(picture.save(QString::fromStdString(png)));
  GuiOptions o = options("ccnet");
  o.input.n = 192;
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  QString error;
  ASSERT_TRUE(window.openImage(png, &error)) << error.toStdString();
  const std::vector<std::pair<std::string, scene::Layout>> modules = {
      {"ccnet", scene::Layout::Pixel},         {"axial", scene::Layout::Pixel},      {"interlaced", scene::Layout::Pixel},
      {"emanet", scene::Layout::Pixel},        {"autonl", scene::Layout::Pixel},     {"kronecker", scene::Layout::Pixel},
      {"fast-attention", scene::Layout::Pixel}, {"permutohedral", scene::Layout::Pixel}, {"gcnet", scene::Layout::Gates},
      {"cbam", scene::Layout::Gates},          {"tensor-low-rank", scene::Layout::Gates}, {"fractal", scene::Layout::Gates}};
  for (const auto& [id, layout] : modules) {
    ASSERT_TRUE(window.selectMechanism(id)) << id;
    window.setViewLayout(layout);
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms)) << id;
    ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok) << id << ": " << window.lastError().toStdString();
    EXPECT_EQ(window.lastOutcome()->comparison->mechanism->info().id, id);
    const scene::Scene& s = viewport->scene();
    EXPECT_EQ(s.placeholder, "") << id;
    ASSERT_GE(s.panels.size(), 1u) << id;  // the step bar's step carries over: that step's maps or bars only
    int over_picture = 0;
    for (const scene::Panel& p : s.panels) over_picture += (p.picture && p.picture->width == 16) || !p.bars.empty() ? 1 : 0;
    EXPECT_GE(over_picture, 1) << id << ": no map over the picture nor bars; first panel: " << s.panels[0].title;
  }
  std::filesystem::remove_all(dir);
}

TEST_F(MainWindowTest, ThePixelViewOfAnInputThatIsNoPictureSaysWhy) {
  MainWindow window(options("exact"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  window.setViewLayout(scene::Layout::Pixel);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(viewport->scene().panels.empty());
  EXPECT_NE(viewport->scene().placeholder.find("needs a picture"), std::string::npos) << viewport->scene().placeholder;
}

TEST_F(MainWindowTest, AClickedRowShowsThatQuerysWeightsAgainstExact) {
  MainWindow window(options("longformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  // Click the middle of the mechanism's panel: row ≈ N/2.
  const scene::Rect r = layoutOf(viewport).panels.at(1);
  QTest::mouseClick(viewport, Qt::LeftButton, {}, QPoint(int(r.x + r.w * 0.3), int(r.y + r.h * 0.5)));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  RowPanel* row = window.rowPanel();
  ASSERT_NE(row, nullptr);
  EXPECT_NEAR(double(row->query()), 128, 2);
  EXPECT_EQ(viewport->scene().selected_row, row->query());
  ASSERT_EQ(row->series().size(), 2u);  // exact and Longformer
  // The exact row is softmax(q_i · K / √d): check it here in double precision; N = 256 keys: one bin each.
  auto out = window.lastOutcome();
  const attn::Inputs& in = out->comparison->inputs;
  const attn::Index i = row->query();
  const std::vector<double> softmax = softmaxRow(in, i);
  const std::vector<double>& exact = row->series()[0].values;
  ASSERT_EQ(exact.size(), 256u);
  for (size_t j = 0; j < exact.size(); j += 17) EXPECT_NEAR(exact[j], softmax[j], 1e-6 + 1e-4 * exact[j]) << j;
  // Longformer's row: zero outside the window and the global tokens, and its TV from exact in (0, 1).
  const RowSeries& mech = row->series()[1];
  EXPECT_EQ(mech.values[size_t(i) + 100], 0.0);
  EXPECT_GT(mech.values[size_t(i)], 0.0);
  EXPECT_GT(mech.tv, 0.0);
  EXPECT_LT(mech.tv, 1.0);
  double mass = 0;
  for (double v : mech.values) mass += v;
  EXPECT_NEAR(mass, 1.0, 1e-4);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_ROW")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // A row outside the matrix is refused with a message; a drag is not a click.
  QString error;
  EXPECT_FALSE(window.selectRow(9999, &error));
  EXPECT_FALSE(error.isEmpty());
  const attn::Index before = row->query();
  QTest::mousePress(viewport, Qt::LeftButton, {}, QPoint(int(r.x + r.w * 0.3), int(r.y + r.h * 0.8)));
  QTest::mouseMove(viewport, QPoint(int(r.x + r.w * 0.3) + 30, int(r.y + r.h * 0.8)));
  QTest::mouseRelease(viewport, Qt::LeftButton, {}, QPoint(int(r.x + r.w * 0.3) + 30, int(r.y + r.h * 0.8)));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(row->query(), before);
  // A new result (a narrower window) shows the same query's new weights, not the old ones.
  const double old_tv = row->series().at(1).tv;
  ASSERT_TRUE(window.setParameter("window", 8));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_EQ(row->query(), before);
  EXPECT_EQ(viewport->scene().selected_row, before);
  ASSERT_EQ(row->series().size(), 2u);
  EXPECT_EQ(row->series()[1].values[size_t(before) + 8], 0.0) << "outside the new window";
  EXPECT_GT(row->series()[1].tv, old_tv) << "a narrower window drops more of exact's mass";
}

TEST_F(MainWindowTest, SingleLetterShortcutsDoNotFireWhileTheUserTypes) {
  MainWindow window(options("reformer"));
  showAndWait(window);
  window.activateWindow();
  ASSERT_TRUE(QTest::qWaitForWindowActive(&window, 5000)) << "keys reach shortcuts only in the active window";
  auto* scale = window.findChildren<QComboBox*>().value(0);
  QComboBox* pooling = nullptr;
  for (QComboBox* box : window.findChildren<QComboBox*>()) {
    if (box->findText("log10") >= 0) scale = box;
    if (box->findText("mean") >= 0 && box->findText("max") >= 0) pooling = box;
  }
  ASSERT_TRUE(scale && pooling);
  const int scale_before = scale->currentIndex(), pooling_before = pooling->currentIndex();
  // The mechanism browser's search, the parameters' and the input's spin boxes, the Curves dock's (floating,
  // a window of its own): each takes the letters.
  for (QDockWidget* dock : window.findChildren<QDockWidget*>()) {
    dock->show();
    dock->raise();
    if (dock->objectName() == QLatin1String("curves")) dock->setFloating(true);
  }
  QTest::qWait(200);
  std::vector<QWidget*> fields{window.findChild<QLineEdit*>(QStringLiteral("mechanism_filter"))};
  for (QAbstractSpinBox* box : window.findChildren<QAbstractSpinBox*>())
    if (box->isVisible()) fields.push_back(box);
  ASSERT_GE(fields.size(), 3u);
  for (QWidget* field : fields) {
    ASSERT_NE(field, nullptr);
    field->activateWindow();
    field->setFocus(Qt::MouseFocusReason);
    ASSERT_TRUE(QTest::qWaitFor([&] { return field->hasFocus(); }, 2000)) << field->metaObject()->className();
    QTest::keyClicks(QApplication::focusWidget(), QStringLiteral("lmop"));
    EXPECT_EQ(scale->currentIndex(), scale_before)
        << "L changed the colour scale while typing in " << field->metaObject()->className();
    EXPECT_EQ(pooling->currentIndex(), pooling_before)
        << "M changed the pooling while typing in " << field->metaObject()->className();
    EXPECT_FALSE(window.playingSteps()) << "P played the steps while typing in " << field->metaObject()->className();
  }
  // Outside a text field the letters are shortcuts.
  window.viewport()->requestActivate();
  window.setFocus(Qt::OtherFocusReason);
  QTest::keyClick(&window, Qt::Key_L);
  EXPECT_NE(scale->currentIndex(), scale_before);
}

/// Largest per-channel distance of the indicator's pixels from the background around an unticked check box,
/// in the theme given (the box is drawn alone, the way a panel draws it).
int uncheckedBoxContrast(bool light) {
  applyTheme(light);
  QWidget panel;
  panel.setAutoFillBackground(true);
  auto* box = new QCheckBox(QStringLiteral("causal"), &panel);
  box->move(10, 10);
  box->adjustSize();
  panel.resize(box->width() + 20, box->height() + 20);
  const QImage image = panel.grab().toImage();
  QStyleOptionButton option;
  option.initFrom(box);
  const QRect indicator =
      box->style()->subElementRect(QStyle::SE_CheckBoxIndicator, &option, box).translated(box->pos());
  const QRgb bg = image.pixel(2, 2);
  const double ratio = image.devicePixelRatio();
  int most = 0;
  for (int y = int(indicator.top() * ratio); y <= int(indicator.bottom() * ratio); ++y)
    for (int x = int(indicator.left() * ratio); x <= int(indicator.right() * ratio); ++x) {
      const QRgb c = image.pixel(x, y);
      most = std::max(
          {most, std::abs(qRed(c) - qRed(bg)), std::abs(qGreen(c) - qGreen(bg)), std::abs(qBlue(c) - qBlue(bg))});
    }
  return most;
}

TEST(Theme, UntickedCheckBoxesAreVisibleInBothThemes) {
  // Fusion outlines the box in the window colour darkened: on the dark theme it vanished (contrast 15).
  const int dark = uncheckedBoxContrast(false), light = uncheckedBoxContrast(true);
  applyTheme(false);
  EXPECT_GE(dark, 70) << "dark theme";
  EXPECT_GE(light, 45) << "light theme";  // Fusion's own: a grey outline round a white box
}

TEST_F(MainWindowTest, TheRowDocksTitleReadsItsMiddleDotsAsUtf8) {
  // Sorted tokens give the title a note after its TV figure: " · sorted position …" read " Â· sorted position".
  MainWindow window(options("reformer"));
  showAndWait(window);
  ASSERT_TRUE(window.setOrder("round 1 buckets"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  QString error;
  ASSERT_TRUE(window.selectRow(10, &error)) << error.toStdString();
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  QString text;
  for (const QLabel* label : window.rowPanel()->findChildren<QLabel*>())
    if (label->text().startsWith("Query i")) text = label->text();
  EXPECT_TRUE(text.contains(QString::fromUtf8("\xC2\xB7 sorted position"))) << text.toStdString();
  EXPECT_FALSE(text.contains(QChar(0x00C2))) << text.toStdString();
  saveShot(window, "row-dock");
}

/// The viewport's drawing between the panel titles and the tick labels under the panels (captions and
/// the frame time carry run times, which vary) against tests/gui/golden/NAME.png, within tolerances.
/// ATTNLAB_UPDATE_GOLDEN=1 rewrites the golden image (look at it first).
void expectViewportMatchesGolden(MainWindow& window, const std::string& name) {
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  view::HeatmapWindow* viewport = window.viewport();
  const QImage image = window.viewportImage();
  ASSERT_FALSE(image.isNull());
  const scene::SceneLayout layout = layoutOf(viewport);
  ASSERT_FALSE(layout.panels.empty());
  const int top = std::max(24, int(layout.panels[0].y) - 52);
  const int bottom = std::min(image.height(), int(layout.panels[0].y + layout.panels[0].h) + 22);
  const QImage got = image.copy(0, top, image.width(), bottom - top);
  const std::string golden = std::string(ATTNLAB_GUI_GOLDEN_DIR) + "/" + name + ".png";
  if (const char* update = std::getenv("ATTNLAB_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    ASSERT_TRUE(got.save(QString::fromStdString(golden)));
    std::printf("rewrote %s: look at it before committing\n", golden.c_str());
    return;
  }
  QImage want;
  ASSERT_TRUE(want.load(QString::fromStdString(golden))) << "missing golden image " << golden;
  const std::string actual = testing::TempDir() + "attnlab-gui-" + name + ".png";
  got.save(QString::fromStdString(actual));
  ASSERT_EQ(got.size(), want.size()) << name << ": see " << actual;
  const attnlab::test::Difference d = attnlab::test::compareImages(got, want);
  EXPECT_LT(d.mean, 2.0) << name << ": see " << actual;
  EXPECT_LT(d.far_share, 0.01) << name << ": see " << actual;
}

TEST_F(MainWindowTest, ViewsOverlayZoomAndCompareMatchGoldenImages) {
  {  // weights, exact vs mechanism, and the pattern by component, with global tokens marked
    MainWindow window(options("longformer"));
    showAndWait(window);
    expectViewportMatchesGolden(window, "viewport-longformer");
    // The hover readout over the mechanism's panel.
    view::HeatmapWindow* viewport = window.viewport();
    const scene::Rect r = layoutOf(viewport).panels.at(1);
    QTest::mouseMove(viewport, QPoint(int(r.x + r.w * 0.2), int(r.y + r.h * 0.2)));
    expectViewportMatchesGolden(window, "viewport-hover");
    // Zoomed 4x about the centre, with the minimap.
    QTest::mouseMove(viewport, QPoint(2, 2));
    viewport->zoomAt(4, QPointF(r.x + r.w / 2, r.y + r.h / 2));
    expectViewportMatchesGolden(window, "viewport-zoom");
  }
  {  // groupings: tokens sorted by Reformer's buckets (after the animation)
    MainWindow window(options("reformer"));
    showAndWait(window);
    ASSERT_TRUE(window.setOrder(window.lastOutcome()->pooled->orders.front()));
    expectViewportMatchesGolden(window, "viewport-reformer-sorted");
    // The readout names the buckets of i and j.
    view::HeatmapWindow* viewport = window.viewport();
    const scene::Rect r = layoutOf(viewport).panels.at(1);
    QTest::mouseMove(viewport, QPoint(int(r.x + r.w * 0.3), int(r.y + r.h * 0.25)));
    expectViewportMatchesGolden(window, "viewport-reformer-hover");
  }
  {  // compare mode
    MainWindow window(options("longformer"));
    showAndWait(window);
    ASSERT_TRUE(window.setCompare({"performer", "bigbird"}));
    expectViewportMatchesGolden(window, "viewport-compare");
  }
}

TEST_F(MainWindowTest, TheDifferenceViewShowsWhatTheMechanismAddsAndDrops) {
  GuiOptions o = options("performer");
  o.input.n = 128;  // fewer entries than panel pixels: one pixel per weight
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  // Performer's first step (ω, signed) is diverging too: the difference panel is told by its title.
  for (const scene::Panel& p : viewport->scene().panels) EXPECT_NE(p.title, "difference") << "only on request";
  EXPECT_EQ(window.lastOutcome()->pooled->difference.values.size(), 0) << "pooled only when chosen";
  ASSERT_TRUE(window.setPatternView("difference"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::Scene& scene = viewport->scene();
  ASSERT_EQ(scene.panels.size(), 3u);
  const scene::Panel& diff = scene.panels[2];
  EXPECT_TRUE(diff.signed_values);
  ASSERT_EQ(diff.values.rows(), 128);
  // Entry (i, j) is Performer's implied weight minus softmax(q_i · k_j / √d), computed here.
  auto out = window.lastOutcome();
  const attn::Inputs& in = out->comparison->inputs;
  const attn::ImpliedWeights& approx = out->comparison->approx.explanation.weights;
  for (attn::Index i : {0, 37, 127}) {
    const std::vector<double> softmax = softmaxRow(in, i);
    for (attn::Index j : {0, 64, 127}) {
      const double a = approx.tile({i, i + 1}, {j, j + 1}, {1, 1}, attn::Pooling::Mean)(0, 0);
      EXPECT_NEAR(diff.values(i, j), a - softmax[size_t(j)], 1e-5) << i << ", " << j;
    }
  }
  EXPECT_NEAR(diff.signed_range, std::max(diff.values.maxCoeff(), -diff.values.minCoeff()), 1e-7);
  EXPECT_LT(diff.values.minCoeff(), 0);
  EXPECT_GT(diff.values.maxCoeff(), 0);
  if (const char* path = std::getenv("ATTNLAB_GUI_SCREENSHOT_DIFF")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
  // Back to the first entry (a step, or none for a mechanism without a pattern or steps).
  ASSERT_TRUE(window.setPatternView(""));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  for (const scene::Panel& p : viewport->scene().panels) EXPECT_NE(p.title, "difference");
}

TEST_F(MainWindowTest, AMechanismWithoutPatternOrStepsOffersAnEmDashThenTheDifference) {
  // RFA has no pattern and no steps: the selector's first entry is "—" (it read "â" when the UTF-8 dash was
  // decoded as Latin-1).
  MainWindow window(options("rfa"));
  showAndWait(window);
  EXPECT_TRUE(window.setPatternView("\xE2\x80\x94"));
  EXPECT_TRUE(window.setPatternView("difference"));
}

TEST_F(MainWindowTest, TheRankScaleSpreadsTheColoursAndTheReadoutKeepsTheWeights) {
  MainWindow window(options("longformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  const QImage log_image = window.viewportImage();
  ASSERT_TRUE(window.setScale("rank"));
  EXPECT_FALSE(window.setScale("sqrt"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const scene::Scene& scene = viewport->scene();
  EXPECT_EQ(scene.scale.mode, scene::ScaleMode::Rank);
  const auto out = window.lastOutcome();
  // Values are ranks in [0, 1] over both weight panels; raw_values keep the weights for the readout.
  const scene::Panel& exact = scene.panels[0];
  ASSERT_EQ(exact.raw_values.size(), out->pooled->exact.values.size());
  EXPECT_TRUE(exact.raw_values == out->pooled->exact.values);
  EXPECT_GE(exact.values.minCoeff(), 0.0f);
  EXPECT_LE(exact.values.maxCoeff(), 1.0f);
  // Ranks follow the weights: the order of any two pixels is kept.
  for (attn::Index k = 1; k < exact.values.size(); k += 97) {
    const float a = exact.raw_values.data()[k - 1], b = exact.raw_values.data()[k];
    if (a < b) {
      EXPECT_LT(exact.values.data()[k - 1], exact.values.data()[k]);
    } else if (a > b) {
      EXPECT_GT(exact.values.data()[k - 1], exact.values.data()[k]);
    }
  }
  // About half of the shown weights (both panels) sit below rank 0.5.
  double below = 0, count = 0;
  for (size_t p = 0; p < 2; ++p)
    for (attn::Index k = 0; k < scene.panels[p].values.size(); ++k) {
      below += scene.panels[p].values.data()[k] < 0.5f;
      ++count;
    }
  EXPECT_NEAR(below / count, 0.5, 0.1);
  const auto ticks = scene::legendTicks(scene.scale);
  ASSERT_EQ(ticks.size(), 5u);
  EXPECT_EQ(ticks[2].label, "50%");
  EXPECT_GT(differingShare(log_image, window.viewportImage()), 0.05);
  // Exported figures use the same scale.
  const std::string path = testing::TempDir() + "attnlab-rank.png";
  QString error;
  ASSERT_TRUE(window.exportFigure("weights", path, &error)) << error.toStdString();
  std::filesystem::remove(path);
  ASSERT_TRUE(window.setScale("log10"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
}

TEST_F(MainWindowTest, EveryRegisteredMechanismOpensDrawsAndZooms) {
  GuiOptions o = options("longformer");
  o.input.generator = attn::Generator::Clustered;  // clusters give every content-based mechanism structure
  MainWindow window(o);
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  int drawn = 0;
  for (const auto& m : attn::mechanisms()) {
    const std::string id = m->info().id;
    viewport->fitView();
    ASSERT_TRUE(window.selectMechanism(id)) << id;
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms)) << id;
    const auto out = window.lastOutcome();
    ASSERT_TRUE(out) << id;
    if (!out->ok) {  // a mechanism may refuse an input, with a message for a person, never a crash
      EXPECT_FALSE(out->error.empty()) << id;
      ADD_FAILURE() << id << " does not run on N = 256 clustered input: " << out->error;
      continue;
    }
    EXPECT_EQ(out->comparison->mechanism->info().id, id);
    const scene::Scene& scene = viewport->scene();
    ASSERT_GE(scene.panels.size(), 2u) << id;
    EXPECT_GT(scene.panels[0].values.size(), 0) << id << ": exact draws";
    // The mechanism's panel draws its implied weights, or says why there are none.
    EXPECT_TRUE(scene.panels[1].values.size() > 0 || !scene.panels[1].empty_text.empty()) << id;
    // Every character the overlay draws is in its font (Nyström's "Kᵀ" read "K?"), the steps' too.
    std::vector<std::string> texts = sceneTexts(scene);
    for (const auto& step : out->pooled->steps) {
      texts.insert(texts.end(), {step.title, step.caption, step.what});
      texts.insert(texts.end(), step.components.begin(), step.components.end());
    }
    for (const std::string& text : texts)
      EXPECT_TRUE(view::overlayMissingGlyphs(text).empty())
          << id << ": the overlay cannot draw all of \"" << text << '"';
    // Zoom 4x about the centre: the visible block is pooled again for every panel that zooms.
    viewport->zoomAt(4, QPointF(-1, -1));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms)) << id;
    const auto zoomed = window.lastOutcome();
    ASSERT_TRUE(zoomed && zoomed->ok) << id << ": " << (zoomed ? zoomed->error : std::string());
    EXPECT_FALSE(zoomed->pooled->request.window.full()) << id;
    EXPECT_EQ(zoomed->pooled->exact.rows.size(), 64) << id;
    ++drawn;
  }
  EXPECT_EQ(drawn, int(attn::mechanisms().size()));
}

TEST_F(MainWindowTest, TheCurvesDockShowsItsWholeLegendAndKeepsItAfterPresenterMode) {
  MainWindow window(options("longformer"));
  showAndWait(window);
  CurvesPanel* curves = window.curvesPanel();
  ASSERT_NE(curves, nullptr);
  curves->setMechanisms({"longformer", "performer", "reformer", "linformer"});
  curves->setRange(64, 128);
  curves->setSeeds(1);
  curves->setRepeats(1);
  ASSERT_TRUE(curves->start());
  ASSERT_TRUE(curves->waitUntilDone(k_timeout_ms));
  for (QDockWidget* dock : window.findChildren<QDockWidget*>())
    if (dock->objectName() == "curves") dock->raise();
  QTest::qWait(300);
  QLegend* legend = curves->chartView()->chart()->legend();
  // The legend lists exact and the four mechanisms, a line of about the type's height + 8 px each: all of it
  // fits (the dock grows), not the first three.
  const QRectF shown = legend->geometry();
  EXPECT_GE(shown.height(), 5 * (QFontMetrics(legend->font()).height() + 8)) << "the legend is cut";
  saveShot(window, "curves-dock");
  const double font = legend->font().pointSizeF();
  const QSize size = window.size();
  window.setPresenterMode(true);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  window.setPresenterMode(false);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  for (QDockWidget* dock : window.findChildren<QDockWidget*>())
    if (dock->objectName() == "curves") dock->raise();
  QTest::qWait(300);
  EXPECT_EQ(window.size(), size) << "the window's size after presenter mode";
  EXPECT_DOUBLE_EQ(legend->font().pointSizeF(), font) << "the legend's type after presenter mode";
  EXPECT_NEAR(legend->geometry().height(), shown.height(), 2);
  EXPECT_NEAR(legend->geometry().width(), shown.width(), 2);
  saveShot(window, "curves-dock-after-presenter");
}

TEST_F(MainWindowTest, AtProjectorSizesTheOverlayDrawsItsStepCaptions) {
  MainWindow window(options("nystromformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  for (const QSize size : {QSize(1400, 900), QSize(1600, 1000)}) {
    window.resize(size);
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    ASSERT_TRUE(window.setPatternView("kernel B"));
    ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
    const scene::Scene& scene = viewport->scene();
    ASSERT_FALSE(scene.panels.empty());
    const auto& captions = scene.panels.back().captions;
    EXPECT_TRUE(std::any_of(captions.begin(), captions.end(),
                            [](const std::string& c) { return c.find("K\xE1\xB5\x80") != std::string::npos; }));
    for (const std::string& text : sceneTexts(scene)) EXPECT_TRUE(view::overlayMissingGlyphs(text).empty()) << text;
    saveShot(window, "nystrom-kernel-B");
  }
  ASSERT_TRUE(window.playSteps(true));  // the toolbar's Pause button, drawn
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  saveShot(window, "nystrom-playing");
  EXPECT_TRUE(window.playSteps(false));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  saveShot(window, "theme-dark");  // the unticked "causal" box in the Input dock
  window.setLightTheme(true);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  saveShot(window, "theme-light");
  window.setLightTheme(false);
}

TEST_F(MainWindowTest, HoverShowsAReadout) {
  MainWindow window(options("longformer"));
  view::HeatmapWindow* viewport = showViewport(window);
  ASSERT_NE(viewport, nullptr);
  const QImage plain = window.viewportImage();
  const scene::Rect r = layoutOf(viewport).panels.at(1);
  const QPoint centre(static_cast<int>(r.x + r.w / 2), static_cast<int>(r.y + r.h / 2));
  QTest::mouseMove(viewport, centre);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  const QImage hovered = window.viewportImage();
  EXPECT_TRUE(viewport->pointer().inside);
  // The readout box is drawn beside the cursor; the rest of the view is unchanged.
  const QRect near(centre + QPoint(10, 10), QSize(160, 80));
  EXPECT_GT(differingShare(plain.copy(near), hovered.copy(near)), 0.2);
  EXPECT_LT(differingShare(plain, hovered), 0.1);
  if (const char* path = std::getenv("ATTNLAB_GUI_HOVER_SCREENSHOT")) {
    EXPECT_TRUE(window.windowImage().save(path));
  }
}

TEST_F(MainWindowTest, AMechanismErrorIsShownAndTheWindowRecovers) {
  MainWindow window(options("nystromformer"));
  showAndWait(window);
  ASSERT_TRUE(window.lastError().isEmpty()) << window.lastError().toStdString();
  window.setCausal(true);  // Nyströmformer has no causal form: a UserError
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(window.lastError().contains(QStringLiteral("causal"))) << window.lastError().toStdString();
  const QImage image = window.viewportImage();
  EXPECT_FALSE(image.isNull());
  window.setCausal(false);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_TRUE(window.lastError().isEmpty());
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
}

// A long run (N = 65536: exact attention alone is many seconds of work) says in the status bar how long it will be and
// how far it is, offers Cancel, and stops within a block of its work when cancelled; the picture then says so.
TEST_F(MainWindowTest, ALongRunShowsProgressAndCanBeCancelled) {
  GuiOptions o = options("performer");
  o.input.n = 65536;
  MainWindow window(o);
  window.resize(1400, 900);
  window.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
  auto* cancel = window.findChild<QPushButton*>(QStringLiteral("cancelRun"));
  ASSERT_NE(cancel, nullptr);
  QElapsedTimer clock;
  clock.start();
  while (!cancel->isVisible() && clock.elapsed() < 20000) QTest::qWait(20);
  ASSERT_TRUE(cancel->isVisible()) << "no Cancel button while a long run is in flight";
  bool said_time = false;
  while (!said_time && clock.elapsed() < 30000) {
    for (const QLabel* label : window.statusBar()->findChildren<QLabel*>())
      said_time = said_time || label->text().contains(QStringLiteral("in all"));
    QTest::qWait(20);
  }
  EXPECT_TRUE(said_time) << "the status bar never said how long the run would take";
  clock.restart();
  QTest::mouseClick(cancel, Qt::LeftButton);
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  EXPECT_LT(clock.elapsed(), 8000) << "cancel took " << clock.elapsed() << " ms";
  EXPECT_FALSE(cancel->isVisible());
  EXPECT_TRUE(window.lastError().isEmpty()) << "a cancel is no error: " << window.lastError().toStdString();
  EXPECT_EQ(window.lastOutcome(), nullptr) << "no picture of settings the controls no longer have";
  bool said_cancelled = false;
  for (const QLabel* label : window.statusBar()->findChildren<QLabel*>())
    said_cancelled = said_cancelled || label->text() == QStringLiteral("cancelled");
  EXPECT_TRUE(said_cancelled);
}

TEST_F(MainWindowTest, RunsOnTheVulkanBackend) {
  MainWindow window(options("longformer", "vulkan"));
  showAndWait(window);
  ASSERT_TRUE(window.lastError().isEmpty()) << window.lastError().toStdString();
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  EXPECT_EQ(window.lastOutcome()->comparison->backend_name, "vulkan");
  ASSERT_TRUE(window.setBackend("cpu"));
  ASSERT_TRUE(window.waitForIdle(k_timeout_ms));
  ASSERT_TRUE(window.lastOutcome() && window.lastOutcome()->ok);
  EXPECT_EQ(window.lastOutcome()->comparison->backend_name, "cpu");
}

}  // namespace
}  // namespace attnlab::gui::test
