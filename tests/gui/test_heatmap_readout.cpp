// The viewport's hover readout (render/view) over a scene.
#include <gtest/gtest.h>

#include "render/scene/scene.h"
#include "render/view/heatmap_overlay.h"

namespace attnlab::view {
namespace {

TEST(HeatmapReadout, SortedViewsNameTokensOnlyOnThePanelsTheyApplyTo) {
  scene::Scene scene;
  scene::Panel square;
  square.source_rows = square.source_cols = 4;
  scene::Panel factor = square;  // a step's N × buckets factor: not sorted, not zoomable
  factor.source_cols = 2;
  factor.zoomable = false;
  scene::Panel own = square;  // a step sorted by its own grouping
  own.own_order = true;
  const attn::Range one{1, 2}, three{0, 3};
  // By position: plain entries everywhere.
  EXPECT_EQ(readoutAxisText(scene, square, true, one), "query i = 1");
  EXPECT_EQ(readoutAxisText(scene, square, false, three),
            "key j = 0\xE2\x80\x93"
            "2");
  EXPECT_EQ(readoutAxisText(scene, own, true, one), "sorted row = 1");
  // Sorted: the token at the place, on the N×N panels only.
  scene.token_at = {3, 0, 2, 1};
  EXPECT_EQ(readoutAxisText(scene, square, true, one), "query i = 0 (sorted row 1)");
  EXPECT_EQ(readoutAxisText(scene, square, false, attn::Range{0, 1}), "key j = 3 (sorted column 0)");
  EXPECT_EQ(readoutAxisText(scene, square, true, three),
            "sorted row = 0\xE2\x80\x93"
            "2");
  EXPECT_EQ(readoutAxisText(scene, factor, true, one), "query i = 1") << "a factor is in position order";
  EXPECT_EQ(readoutAxisText(scene, own, false, one), "sorted column = 1");
  scene::Panel memory = square;  // product-key memory's N × N² matrix: its columns are not tokens
  memory.source_cols = 16;
  EXPECT_EQ(readoutAxisText(scene, memory, false, attn::Range{2, 3}), "key j = 2");
}

}  // namespace
}  // namespace attnlab::view
