// The viewport's plain arithmetic: colour scale, legend ticks, layout, hit testing, the colormap.
#include <gtest/gtest.h>

#include <cmath>

#include "render/view/colormap.h"
#include "render/view/heatmap_scene.h"

namespace attnlab::view {
namespace {

TEST(HeatmapScene, NormaliseMatchesTheShaderFormula) {
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

TEST(HeatmapScene, LegendTicksCoverTheRange) {
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

TEST(HeatmapScene, PanelsKeepTheirAspectAndFit) {
  HeatmapScene scene;
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

TEST(HeatmapScene, HitTestFindsTheEntriesAPixelCovers) {
  HeatmapScene scene;
  scene.panels.resize(1);
  HeatmapImage& p = scene.panels[0];
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
}  // namespace attnlab::view
