// The view model's plain arithmetic, without a display: colour scale, legend ticks, layout, hit testing,
// zoom, the colormap.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "render/scene/colormap.h"
#include "render/scene/scene.h"

namespace attnlab::scene {
namespace {

TEST(SceneLayout, NormaliseMatchesTheShaderFormula) {
  ColorScale linear{ScaleMode::Linear, 0.0f, 2.0f, 1e-4f};
  EXPECT_DOUBLE_EQ(linear.normalise(1.0), 0.5);
  EXPECT_DOUBLE_EQ(linear.normalise(-1.0), 0.0);
  EXPECT_DOUBLE_EQ(linear.normalise(3.0), 1.0);
  EXPECT_TRUE(std::isnan(linear.normalise(NAN)));
  ColorScale log{ScaleMode::Log10, 0.0f, 1.0f, 1e-4f};
  EXPECT_NEAR(log.normalise(1e-2), 0.5, 1e-6);
  EXPECT_DOUBLE_EQ(log.normalise(0.0), 0.0);  // exact zeros sit at the floor
  EXPECT_NEAR(log.normalise(1.0), 1.0, 1e-9);
}

TEST(SceneLayout, LegendTicksCoverTheRange) {
  const auto log_ticks = legendTicks({ScaleMode::Log10, 0.0f, 1.0f, 1e-4f});
  ASSERT_EQ(log_ticks.size(), 5u);
  EXPECT_EQ(log_ticks.front().label, "1e-4");
  EXPECT_EQ(log_ticks.back().label, "1");
  const auto linear_ticks = legendTicks({ScaleMode::Linear, 0.0f, 0.83f, 1e-4f});
  ASSERT_GE(linear_ticks.size(), 4u);
  EXPECT_EQ(linear_ticks.front().label, "0");
  EXPECT_EQ(linear_ticks.back().label, "0.83");  // the top of the range is always labelled
  for (std::size_t i = 1; i < linear_ticks.size(); ++i) EXPECT_GT(linear_ticks[i].t, linear_ticks[i - 1].t);
}

TEST(SceneLayout, PanelsKeepTheirAspectAndFit) {
  Scene scene;
  scene.panels.resize(2);
  scene.panels[0].source_rows = scene.panels[0].source_cols = 256;
  scene.panels[1].source_rows = 256;
  scene.panels[1].source_cols = 512;
  const SceneLayout layout = layoutScene(1100, 700, scene);
  ASSERT_EQ(layout.panels.size(), 2u);
  EXPECT_NEAR(layout.panels[0].w, layout.panels[0].h, 1);
  EXPECT_NEAR(layout.panels[1].w, 2 * layout.panels[1].h, 2);
  EXPECT_LT(layout.panels[0].x + layout.panels[0].w, layout.panels[1].x);
  EXPECT_LT(layout.panels[1].x + layout.panels[1].w, layout.legend_bar.x);
  EXPECT_LE(layout.legend_bar.x + layout.legend_bar.w, 1100);
  EXPECT_LE(layout.panels[0].y + layout.panels[0].h, 700);
}

TEST(SceneLayout, PanelsLeaveRoomForTheirLongestCaptionStack) {
  // RFA's panel carries five caption lines (misplaced, e_out with its scale, its own target's label and
  // figures, the time); in a short viewport they ran under the footer.
  Scene scene;
  scene.panels.resize(2);
  for (Panel& p : scene.panels) p.source_rows = p.source_cols = 512;
  scene.panels[0].captions = {"softmax attention"};
  scene.panels[1].captions = {"misplaced", "e_out"};
  const float height = 520;
  const SceneLayout two = layoutScene(1300, height, scene);
  scene.panels[1].captions = {"misplaced", "e_out", "vs its own target:", "e_out · misplaced", "12 ms"};
  const SceneLayout five = layoutScene(1300, height, scene);
  // Line k's 14 px text starts 46 + 18·k below the panel; the footer's 12 px text sits 10 px above the bottom.
  const float caption_top = 46, line = 18, text = 14, footer = 22;
  for (const SceneLayout* l : {&two, &five}) {
    const float lines = l == &two ? 2 : 5;
    EXPECT_LE(l->panels[1].y + l->panels[1].h + caption_top + (lines - 1) * line + text, height - footer) << lines;
  }
  EXPECT_LT(five.panels[1].h, two.panels[1].h);
  // Height-bound panels start high: the legend's title (46 px above its bar) stays under the frame time.
  EXPECT_GE(five.legend_bar.y - 46, 22);
}

TEST(SceneLayout, PresenterScaleEnlargesTheLayoutAroundSmallerPanels) {
  // ui_scale s lays the scene out in a viewport s times smaller and scales it back: margins and buttons
  // grow by s, so the panels get less room, and everything stays inside the viewport.
  Scene scene;
  scene.panels.resize(2);
  for (Panel& p : scene.panels) p.source_rows = p.source_cols = 512;
  scene.steps.count = 3;
  const SceneLayout plain = layoutScene(1200, 800, scene);
  scene.ui_scale = 1.5f;
  const SceneLayout big = layoutScene(1200, 800, scene);
  const SceneLayout small = layoutSceneUnscaled(800, 800 / 1.5f, scene);
  ASSERT_EQ(big.panels.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_NEAR(big.panels[k].x, 1.5f * small.panels[k].x, 0.5f);  // edges on whole pixels
    EXPECT_NEAR(big.panels[k].y, 1.5f * small.panels[k].y, 0.5f);
    EXPECT_NEAR(big.panels[k].w, 1.5f * small.panels[k].w, 1.0f);
    EXPECT_EQ(big.panels[k].x, std::round(big.panels[k].x));
    EXPECT_EQ(big.panels[k].w, std::round(big.panels[k].w));
    EXPECT_LT(big.panels[k].w, plain.panels[k].w);
  }
  EXPECT_GT(big.panels[0].y, plain.panels[0].y);  // more room for the larger titles
  EXPECT_NEAR(big.step_buttons[0].w, 1.5f * plain.step_buttons[0].w, 1.0f);
  EXPECT_LE(big.step_buttons[3].x + big.step_buttons[3].w, 1200);
  EXPECT_LE(big.legend_bar.x + big.legend_bar.w, 1200);
  EXPECT_EQ(stepActionAt(big, big.step_buttons[3].x + 2, big.step_buttons[3].y + 2), StepAction::Next);
}

TEST(SceneLayout, HitTestFindsTheEntriesAPixelCovers) {
  Scene scene;
  scene.panels.resize(1);
  Panel& p = scene.panels[0];
  p.values = attn::Matrix::Zero(4, 4);
  p.values(1, 2) = 0.5f;
  p.source_rows = p.source_cols = 1000;
  const SceneLayout layout = layoutScene(800, 600, scene);
  const Rect& r = layout.panels[0];
  const auto hit = hitTest(scene, layout, r.x + r.w * 0.6f, r.y + r.h * 0.3f);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->pixel_row, 1);
  EXPECT_EQ(hit->pixel_col, 2);
  EXPECT_FLOAT_EQ(hit->value, 0.5f);
  EXPECT_EQ(hit->rows, (attn::Range{250, 500}));
  EXPECT_EQ(hit->cols, (attn::Range{500, 750}));
  EXPECT_FALSE(hitTest(scene, layout, 1, 1));
}

TEST(SceneLayout, ZoomKeepsThePointUnderThePointerAndStaysInside) {
  // Zoom 2× about the point 3/4 across and 1/4 down: that point (entry fraction 0.75, 0.25) stays put.
  const ViewWindow z = zoomView({}, 2, 0.75, 0.25);
  EXPECT_DOUBLE_EQ(z.col1 - z.col0, 0.5);
  EXPECT_DOUBLE_EQ(z.row1 - z.row0, 0.5);
  EXPECT_DOUBLE_EQ(z.col0 + 0.75 * (z.col1 - z.col0), 0.75);
  EXPECT_DOUBLE_EQ(z.row0 + 0.25 * (z.row1 - z.row0), 0.25);
  // Zooming out past the whole matrix gives the whole matrix; a corner zoom is clamped inside.
  EXPECT_TRUE(zoomView(z, 0.1, 0.5, 0.5).full());
  const ViewWindow corner = zoomView({}, 4, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(corner.row1, 1.0);
  EXPECT_DOUBLE_EQ(corner.col0, 0.75);
  // The smallest window: min_rows × min_cols.
  const ViewWindow tight = zoomView({}, 1e6, 0.5, 0.5, 0.01, 0.02);
  EXPECT_NEAR(tight.row1 - tight.row0, 0.01, 1e-12);
  EXPECT_NEAR(tight.col1 - tight.col0, 0.02, 1e-12);
  // Pan by half a window, and against the edge.
  const ViewWindow moved = panView(z, 0.5, -0.5);
  EXPECT_DOUBLE_EQ(moved.col0, 0.5);  // 0.375 + 0.25 = 0.625, clamped to 1 − 0.5
  EXPECT_DOUBLE_EQ(moved.row0, 0.0);
  EXPECT_DOUBLE_EQ(moved.row1 - moved.row0, 0.5);
  // Whole entries of a window.
  EXPECT_EQ(viewRange(0.25, 0.5, 1000), (attn::Range{250, 500}));
  EXPECT_EQ(viewRange(0.2501, 0.2502, 1000), (attn::Range{250, 251}));
  EXPECT_EQ(viewRange(0, 1, 7), (attn::Range{0, 7}));
}

TEST(SceneLayout, AZoomedPanelMapsPointerToEntriesAndTexture) {
  // N = 1000, the view shows rows 500–1000 and columns 250–750; the texture pools exactly that block
  // into 50×50 pixels (10 entries a pixel).
  Scene scene;
  scene.panels.resize(1);
  Panel& p = scene.panels[0];
  p.values = attn::Matrix::Zero(50, 50);
  p.values(10, 20) = 0.5f;  // rows 600–609, columns 450–459
  p.source_rows = p.source_cols = 1000;
  p.shown_rows = {500, 1000};
  p.shown_cols = {250, 750};
  scene.view = {0.5, 1.0, 0.25, 0.75};
  const SceneLayout layout = layoutScene(800, 600, scene);
  const Rect& r = layout.panels[0];
  const auto uv = panelUv(scene, 0);
  EXPECT_FLOAT_EQ(uv[0], 0.0f);
  EXPECT_FLOAT_EQ(uv[3], 1.0f);
  const auto hit = hitTest(scene, layout, r.x + r.w * (20.5f / 50), r.y + r.h * (10.5f / 50));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->rows, (attn::Range{600, 610}));
  EXPECT_EQ(hit->cols, (attn::Range{450, 460}));
  EXPECT_FLOAT_EQ(hit->value, 0.5f);
  // Panned further than the texture reaches (before it is pooled again): no data, no hit, and the
  // texture coordinates leave [0, 1] on that side.
  scene.view = {0.5, 1.0, 0.5, 1.0};
  const auto beyond = panelUv(scene, 0);
  EXPECT_FLOAT_EQ(beyond[0], 0.5f);
  EXPECT_FLOAT_EQ(beyond[2], 1.5f);
  EXPECT_FALSE(hitTest(scene, layout, r.x + r.w * 0.9f, r.y + r.h * 0.5f));
  EXPECT_TRUE(hitTest(scene, layout, r.x + r.w * 0.1f, r.y + r.h * 0.5f));
  // A panel that is not zoomable ignores the view.
  p.zoomable = false;
  p.shown_rows = p.shown_cols = {};
  EXPECT_EQ(panelUv(scene, 0), (std::array<float, 4>{0, 0, 1, 1}));
  // The minimap takes room under the legend only while zoomed and when there is one.
  scene.minimap.values = attn::Matrix::Zero(8, 8);
  EXPECT_GT(layoutScene(800, 600, scene).minimap.w, 0);
  scene.view = {};
  EXPECT_EQ(layoutScene(800, 600, scene).minimap.w, 0);
}

TEST(Colormap, IsMatplotlibViridis) {
  const auto& v = viridis();
  EXPECT_NEAR(v.front().r, 0.267004f, 1e-6f);
  EXPECT_NEAR(v.front().b, 0.329415f, 1e-6f);
  EXPECT_NEAR(v.back().r, 0.993248f, 1e-6f);
  EXPECT_NEAR(v.back().g, 0.906157f, 1e-6f);
  EXPECT_NEAR(viridisAt(0.5).g, (v[127].g + v[128].g) / 2, 1e-6f);
  const auto bytes = viridisRgba8();
  EXPECT_EQ(bytes[0], 68);
  EXPECT_EQ(bytes[3], 255);
}

}  // namespace
}  // namespace attnlab::scene
