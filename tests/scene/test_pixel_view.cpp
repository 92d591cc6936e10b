// The pixel view (ViewRequest::layout = Pixel): a query pixel's row of the implied weights reshaped to the
// picture's H×W grid, checked against softmax computed here in double precision and against entries of the
// implied weights indexed one by one; the default pixel, several pixels, steps, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "attention/backend.h"
#include "attention/mechanism.h"
#include "attention/runner.h"
#include "render/scene/build.h"
#include "tests/scene/picture_comparison.h"

namespace attnlab::scene {
namespace {

ViewRequest pixelRequest(std::vector<attn::Index> picked = {}) {
  ViewRequest r;
  r.layout = Layout::Pixel;
  r.pixels_picked = std::move(picked);
  return r;
}

TEST(PixelView, APixelsMapsAreItsRowOfExactAndOfTheMechanismReshapedOverThePicture) {
  const auto c = imageComparison("longformer");
  ASSERT_TRUE(c->inputs.picture);
  ASSERT_EQ(c->inputs.grid_width, k_w);
  const attn::Index x = 5, y = 7, p = y * k_w + x;
  const Scene s = build(subjectOf(c), pixelRequest({p}));
  ASSERT_EQ(s.panels.size(), 3u);  // exact, Longformer, difference
  const std::vector<double> exact = softmaxRow(c->inputs, p);
  const attn::ImpliedWeights& mech = c->approx.explanation.weights;
  double top = 0;
  for (const Panel& panel : s.panels) {
    EXPECT_EQ(panel.role, "pixel map");
    ASSERT_EQ(panel.values.rows(), k_h);
    ASSERT_EQ(panel.values.cols(), k_w);
    ASSERT_TRUE(panel.picture);
    EXPECT_EQ(panel.picture->height, k_h);
    EXPECT_EQ(panel.picture->width, k_w);
    EXPECT_GT(panel.overlay_alpha, 0.0f);
    ASSERT_EQ(panel.pixel_marks.size(), 1u);
    EXPECT_EQ(panel.pixel_marks[0], (PixelMark{x, y, "picked"}));
    EXPECT_FALSE(panel.zoomable);
  }
  double mass = 0;
  for (attn::Index r = 0; r < k_h; ++r)
    for (attn::Index col = 0; col < k_w; ++col) {
      const attn::Index j = r * k_w + col;  // raster order
      EXPECT_NEAR(s.panels[0].values(r, col), exact[std::size_t(j)], 1e-6 + 1e-4 * exact[std::size_t(j)]) << r << "," << col;
      // Entry (p, j) on its own: a tile recomputes it in float, so to float rounding of the row.
      const float a = mech.tile({p, p + 1}, {j, j + 1}, {1, 1}, attn::Pooling::Max)(0, 0);
      EXPECT_NEAR(s.panels[1].values(r, col), a, 1e-8 + 1e-4 * a) << r << "," << col;
      EXPECT_FLOAT_EQ(s.panels[2].values(r, col), s.panels[1].values(r, col) - s.panels[0].values(r, col));
      mass += s.panels[1].values(r, col);
      top = std::max({top, double(s.panels[0].values(r, col)), double(s.panels[1].values(r, col))});
    }
  EXPECT_NEAR(mass, 1.0, 1e-4);  // a row of attention weights
  // Longformer's sliding window is over raster order: the pixel's own token is seen.
  EXPECT_GT(s.panels[1].values(y, x), 0.0f);
  // One colour scale for exact and the mechanism; the difference on its own signed range.
  EXPECT_FLOAT_EQ(s.scale.hi, float(top));
  EXPECT_TRUE(s.panels[2].signed_values);
  EXPECT_FALSE(s.panels[0].signed_values || s.panels[1].signed_values);
  EXPECT_EQ(s.panels[0].tag, "a");
  EXPECT_EQ(s.panels[2].tag, "c");
  EXPECT_NE(s.panels[0].subtitle.find("pixel (5, 7)"), std::string::npos) << s.panels[0].subtitle;
}

TEST(PixelView, WithoutAPickThePixelIsTheCentreAndANoteSaysSo) {
  const Scene s = build(subjectOf(imageComparison("exact")), pixelRequest());
  ASSERT_FALSE(s.panels.empty());
  ASSERT_EQ(s.panels[0].pixel_marks.size(), 1u);
  EXPECT_EQ(s.panels[0].pixel_marks[0].x, k_w / 2);
  EXPECT_EQ(s.panels[0].pixel_marks[0].y, k_h / 2);
  bool said = false;
  for (const std::string& note : s.notes) said |= note.find("centre pixel (12, 8)") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(PixelView, SeveralPixelsFitFourPanels) {
  const auto c = imageComparison("longformer");
  const Scene two = build(subjectOf(c), pixelRequest({0, 100}));
  ASSERT_EQ(two.panels.size(), 4u);  // exact and Longformer for each
  EXPECT_EQ(two.panels[2].pixel_marks[0], (PixelMark{100 % k_w, 100 / k_w, "picked"}));
  const Scene four = build(subjectOf(c), pixelRequest({0, 100, 200, 383, 5}));
  ASSERT_EQ(four.panels.size(), 4u);  // the mechanism's map of each of the first four
  EXPECT_EQ(four.panels[3].pixel_marks[0], (PixelMark{383 % k_w, 383 / k_w, "picked"}));
  for (const Panel& p : four.panels) EXPECT_EQ(p.title, "Longformer");
}

TEST(PixelView, AStepThatImpliesWeightsIsShownInsteadOfTheMechanismsOwn) {
  const auto c = imageComparison("scram");
  const std::vector<std::string> titles = pixelStepTitles(*c);
  ASSERT_FALSE(titles.empty());
  ViewRequest r = pixelRequest({50});
  r.third = Third::Step;
  r.step = int(titles.size()) - 1;
  const Scene s = build(subjectOf(c), r);
  ASSERT_GE(s.panels.size(), 2u);
  EXPECT_NE(s.panels[1].title.find(titles.back()), std::string::npos) << s.panels[1].title;
  EXPECT_EQ(s.steps.current, int(titles.size()) - 1);
  const attn::ImpliedWeights* w = nullptr;
  for (const attn::Step& step : c->approx.explanation.steps)
    if (step.title == titles.back() && step.view) w = &step.view->weights;
  ASSERT_NE(w, nullptr);
  for (attn::Index j = 0; j < k_w * k_h; j += 7) {
    const float a = w->tile({50, 51}, {j, j + 1}, {1, 1}, attn::Pooling::Max)(0, 0);
    EXPECT_NEAR(s.panels[1].values(j / k_w, j % k_w), a, 1e-8 + 1e-4 * a) << j;
  }
}

TEST(PixelView, AnInputThatIsNoPictureSaysSoInsteadOfABlankPanel) {
  const auto c = imageComparison("exact", attn::Generator::Clustered);
  EXPECT_NE(pixelRefusal(*c).find("--input image"), std::string::npos) << pixelRefusal(*c);
  const Scene s = build(subjectOf(c), pixelRequest());
  EXPECT_TRUE(s.panels.empty());
  EXPECT_NE(s.placeholder.find("--input image"), std::string::npos) << s.placeholder;
}

TEST(PixelView, AMechanismWithoutWeightsGetsItsMessageInItsPanel) {
  auto copy = std::make_shared<attn::Comparison>(*imageComparison("longformer"));
  copy->approx.explanation.weights = attn::ImpliedWeights();
  copy->approx.explanation.weights_withheld = "withheld for this test";
  const Scene s = build(subjectOf(copy), pixelRequest());
  ASSERT_EQ(s.panels.size(), 2u);  // exact, and the mechanism's message (no difference)
  EXPECT_EQ(s.panels[1].values.size(), 0);
  EXPECT_NE(s.panels[1].empty_text.find("withheld for this test"), std::string::npos) << s.panels[1].empty_text;
}

TEST(PixelView, PickedPixelsAreCheckedAgainstTheGrid) {
  EXPECT_EQ(parsePixels("3,2", 48, 64), std::vector<attn::Index>{2 * 64 + 3});
  EXPECT_EQ(parsePixels("0,0;63,47", 48, 64), (std::vector<attn::Index>{0, 47 * 64 + 63}));
  try {
    parsePixels("70,3", 48, 64);
    ADD_FAILURE() << "no error";
  } catch (const attn::UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--pixel 70,3 lies outside the 64\xC3\x97" "48 image", 0), 0u) << e.what();
  }
  EXPECT_THROW(parsePixels("3", 48, 64), attn::UserError);
  EXPECT_THROW(parsePixels("3,4,5", 48, 64), attn::UserError);
  EXPECT_THROW(parsePixels("-1,4", 48, 64), attn::UserError);
  EXPECT_THROW(parsePixels("1,1;2,2;3,3;4,4;5,5", 48, 64), attn::UserError);
}

}  // namespace
}  // namespace attnlab::scene
