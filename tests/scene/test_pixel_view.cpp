// The pixel view (ViewRequest::layout = Pixel): a query pixel's row of the implied weights reshaped to the
// picture's H×W grid, checked against softmax computed here in double precision and against entries of the
// implied weights indexed one by one; the default pixel, several pixels, steps, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "attention/backend.h"
#include "attention/explanation.h"
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

// A mechanism's per-pixel maps (MatrixLayout::Image on its own scale, Labels in group colours) are drawn over the
// picture beside the picked pixel's maps, each entry where its raster index says; other factors are not.
TEST(PixelView, PerPixelMapsOfTheMechanismAreDrawnOverThePicture) {
  auto copy = std::make_shared<attn::Comparison>(*imageComparison("longformer"));
  const attn::Index n = k_w * k_h;
  attn::Matrix gate(n, 1), labels(1, n), other(3, 5);
  for (attn::Index t = 0; t < n; ++t) gate(t, 0) = float(t % 7) - 2, labels(0, t) = float((t / k_w) % 3);
  labels(0, 5) = std::nanf("");
  other.setConstant(9);
  copy->approx.explanation.factors.push_back({"profile", "not a map", other, attn::MatrixLayout::Plain});
  copy->approx.explanation.factors.push_back({"gate", "a gate", gate, attn::MatrixLayout::Image});
  copy->approx.explanation.factors.push_back({"bases", "argmax", labels, attn::MatrixLayout::Labels});
  const attn::Index p = 3 * k_w + 4;
  const Scene s = build(subjectOf(copy), pixelRequest({p}));
  ASSERT_EQ(s.panels.size(), 4u);  // exact, Longformer, gate, bases (the maps take the difference's place)
  const Panel& g = s.panels[2];
  const Panel& b = s.panels[3];
  EXPECT_EQ(g.title, "gate");
  EXPECT_EQ(b.title, "bases");
  ASSERT_TRUE(g.own_scale);
  EXPECT_FLOAT_EQ(g.own_scale->lo, -2);
  EXPECT_FLOAT_EQ(g.own_scale->hi, 4);
  EXPECT_TRUE(g.picture && b.picture);
  EXPECT_EQ(b.categories.size(), 3u);
  for (attn::Index y = 0; y < k_h; ++y)
    for (attn::Index x = 0; x < k_w; ++x) {
      const attn::Index t = y * k_w + x;
      EXPECT_EQ(g.values(y, x), float(t % 7) - 2) << x << "," << y;
      EXPECT_EQ(b.values(y, x), t == 5 ? 0.0f : float(y % 3) + 1) << x << "," << y;  // category + 1, 0 = none
    }
  // The shared scale is the weights', not the gate's.
  EXPECT_LE(s.scale.hi, 1.0f + 1e-6f);
}

// A step with maps but no weights of its own is offered in the pixel view; choosing it shows its maps beside the
// mechanism's final weights (a step with weights shows those instead).
TEST(PixelView, AStepWithMapsShowsThemBesideTheFinalWeights) {
  auto copy = std::make_shared<attn::Comparison>(*imageComparison("longformer"));
  const attn::Index n = k_w * k_h;
  auto view = std::make_shared<attn::Explanation>();
  attn::Matrix labels(n, 1);
  for (attn::Index t = 0; t < n; ++t) labels(t, 0) = float(t % 2);
  view->factors.push_back({"EM labels", "", labels, attn::MatrixLayout::Labels});
  copy->approx.explanation.steps.insert(copy->approx.explanation.steps.begin(), attn::Step{"iteration 1", "E then M", view, ""});
  const std::vector<std::string> titles = pixelStepTitles(*copy);
  ASSERT_FALSE(titles.empty());
  EXPECT_EQ(titles.front(), "iteration 1");
  ViewRequest r = pixelRequest({10});
  r.third = Third::Step;
  r.step = 0;
  const Scene s = build(subjectOf(copy), r);
  ASSERT_GE(s.panels.size(), 3u);
  EXPECT_EQ(s.panels[1].title, copy->mechanism->info().title);  // the final weights
  EXPECT_EQ(s.panels[1].values(0, 10), copy->approx.explanation.weights.tile({10, 11}, {10, 11}, {1, 1}, attn::Pooling::Max)(0, 0));
  EXPECT_NE(s.panels[2].title.find("iteration 1"), std::string::npos) << s.panels[2].title;
  EXPECT_EQ(s.panels[2].categories.size(), 2u);
  EXPECT_EQ(s.panels[2].values(0, 3), 2.0f);
}

// A grouping of the pixels (Reformer's buckets on a photo) is drawn as a label map over the picture: each pixel in
// its bucket's colour.
TEST(PixelView, GroupingsOfThePixelsAreLabelMaps) {
  const auto c = imageComparison("reformer");
  const attn::Grouping* g = nullptr;
  for (const attn::Grouping& x : c->approx.explanation.groupings)
    if (!g && attn::Index(x.label.size()) == k_w * k_h) g = &x;
  ASSERT_NE(g, nullptr);
  const Scene s = build(subjectOf(c), pixelRequest({5}));
  const Panel* map = nullptr;
  for (const Panel& p : s.panels)
    if (p.title == g->name) map = &p;
  ASSERT_NE(map, nullptr) << "no panel for " << g->name;
  ASSERT_FALSE(map->categories.empty());
  for (attn::Index t = 0; t < k_w * k_h; t += 7) EXPECT_EQ(map->values(t / k_w, t % k_w), float(g->label[size_t(t)] + 1)) << t;
}

// AutoNL's sampled keys (a TokenSet with role "key grid") are drawn as a map of where the keys are.
TEST(PixelView, TheKeyGridIsAMapOfTheSampledPixels) {
  const auto c = imageComparison("autonl");
  const attn::TokenSet* grid = nullptr;
  for (const attn::TokenSet& t : c->approx.explanation.special)
    if (t.role == "key grid") grid = &t;
  ASSERT_NE(grid, nullptr);
  const Scene s = build(subjectOf(c), pixelRequest({5}));
  const Panel* map = nullptr;
  for (const Panel& p : s.panels)
    if (p.title == grid->name) map = &p;
  ASSERT_NE(map, nullptr);
  int keys = 0;
  for (attn::Index t = 0; t < k_w * k_h; ++t) keys += map->values(t / k_w, t % k_w) == 1.0f ? 1 : 0;
  EXPECT_EQ(keys, int(grid->indices.size()));
  for (attn::Index i : grid->indices) EXPECT_EQ(map->values(i / k_w, i % k_w), 1.0f) << i;
}

// Per-pixel strips (Kronecker's summaries): the picked pixel's row of an N×W (top) and N×H (left) factor.
TEST(PixelView, EdgeStripsAreThePickedPixelsRowOfTheFactor) {
  auto copy = std::make_shared<attn::Comparison>(*imageComparison("longformer"));
  const attn::Index n = k_w * k_h;
  attn::Matrix top(n, k_w), left(n, k_h);
  for (attn::Index i = 0; i < n; ++i) {
    for (attn::Index x = 0; x < k_w; ++x) top(i, x) = float(i * 1000 + x);
    for (attn::Index y = 0; y < k_h; ++y) left(i, y) = float(i * 1000 + 500 + y);
  }
  copy->approx.explanation.factors.push_back({"column summaries", "", top, attn::MatrixLayout::PerPixelTop});
  copy->approx.explanation.factors.push_back({"row summaries", "", left, attn::MatrixLayout::PerPixelLeft});
  const attn::Index p = 7 * k_w + 2;
  const Scene s = build(subjectOf(copy), pixelRequest({p}));
  ASSERT_GE(s.panels.size(), 2u);
  const Panel& m = s.panels[1];
  ASSERT_EQ(m.edge_top.size(), std::size_t(k_w));
  ASSERT_EQ(m.edge_left.size(), std::size_t(k_h));
  EXPECT_EQ(m.edge_top[3], float(p * 1000 + 3));
  EXPECT_EQ(m.edge_left[9], float(p * 1000 + 509));
  EXPECT_TRUE(s.panels[0].edge_top.empty());  // exact has none
  bool named = false;
  for (const std::string& cap : m.captions) named |= cap.find("column summaries") != std::string::npos;
  EXPECT_TRUE(named);
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
