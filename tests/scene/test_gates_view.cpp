// The gates view (ViewRequest::layout = Gates): a mechanism's Image, Labels and Bars factors drawn over the
// picture and as bars, generic over the factors (a hand-made factor list shows that a module's new maps need no
// new code); GCNet's one map beside exact maps at picked pixels, checked against softmax computed here in double
// and cosine distances computed here; steps; the refusals.
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

ViewRequest gatesRequest(std::vector<attn::Index> picked = {}) {
  ViewRequest r;
  r.layout = Layout::Gates;
  r.pixels_picked = std::move(picked);
  return r;
}

const attn::NamedMatrix& factorNamed(const attn::Comparison& c, const std::string& prefix) {
  for (const attn::NamedMatrix& f : c.approx.explanation.factors)
    if (f.name.rfind(prefix, 0) == 0) return f;
  throw std::runtime_error("no factor " + prefix);
}

bool captionHas(const Panel& p, const std::string& words) {
  for (const std::string& c : p.captions)
    if (c.find(words) != std::string::npos) return true;
  return false;
}

/// The number after `key` in a caption of p (NaN when none).
double captionNumber(const Panel& p, const std::string& key) {
  for (const std::string& c : p.captions)
    if (const auto at = c.find(key); at != std::string::npos) return std::stod(c.substr(at + key.size()));
  return NAN;
}

TEST(GatesView, CbamsSpatialGateAndItsInputsAreMapsOverThePictureAndItsChannelGateIsBars) {
  const auto c = imageComparison("cbam");
  const Scene s = build(subjectOf(c), gatesRequest());
  ASSERT_EQ(s.panels.size(), 4u);
  EXPECT_EQ(s.placeholder, "");
  // a: the spatial gate, H×W over the picture on its own scale, exactly the factor.
  const Panel& gate = s.panels[0];
  EXPECT_EQ(gate.role, "pixel map");
  EXPECT_NE(gate.title.find("spatial gate"), std::string::npos) << gate.title;
  ASSERT_EQ(gate.values.rows(), k_h);
  ASSERT_EQ(gate.values.cols(), k_w);
  EXPECT_TRUE(gate.values == factorNamed(*c, "spatial gate").value);
  ASSERT_TRUE(gate.picture);
  EXPECT_GT(gate.overlay_alpha, 0.0f);
  ASSERT_TRUE(gate.own_scale);
  EXPECT_EQ(gate.own_scale->lo, gate.values.minCoeff());
  EXPECT_EQ(gate.own_scale->hi, gate.values.maxCoeff());
  EXPECT_FALSE(gate.zoomable);
  // b: the channel gate as bars, one per channel of V, on a scale from 0 (gates are σ(·) > 0).
  const Panel& bars = s.panels[1];
  EXPECT_EQ(bars.role, "bars");
  ASSERT_EQ(bars.bars.size(), std::size_t(c->inputs.v.cols()));
  const attn::Matrix& channel = factorNamed(*c, "channel gate").value;
  for (std::size_t k = 0; k < bars.bars.size(); ++k) EXPECT_EQ(bars.bars[k], channel(0, attn::Index(k))) << k;
  EXPECT_EQ(bars.values.size(), 0);
  ASSERT_TRUE(bars.own_scale);
  EXPECT_EQ(bars.own_scale->lo, 0.0f);
  EXPECT_EQ(bars.own_scale->hi, channel.maxCoeff());
  // The bars' frame has the maps' shape (the layout gives it the same size).
  const SceneLayout layout = layoutScene(1600, 700, s);
  EXPECT_FLOAT_EQ(layout.panels[1].w, layout.panels[0].w);
  EXPECT_FLOAT_EQ(layout.panels[1].h, layout.panels[0].h);
  // c, d: the channel mean and max of F′, the spatial gate's inputs (signed when they go below 0).
  for (std::size_t k = 2; k < 4; ++k) {
    EXPECT_EQ(s.panels[k].role, "pixel map");
    EXPECT_TRUE(s.panels[k].own_scale || s.panels[k].signed_values) << k;
  }
  EXPECT_TRUE(s.panels[2].values == factorNamed(*c, "channel mean").value);
  // The scene says why there is no matrix, and that the module is a different operator.
  bool why = false;
  for (const std::string& n : s.notes) why |= n.find("no N\xC3\x97N weights") != std::string::npos;
  EXPECT_TRUE(why);
  EXPECT_NE(s.footnotes.front().find("different operator"), std::string::npos) << s.footnotes.front();
  EXPECT_EQ(s.steps.count, 2);
}

TEST(GatesView, AStepShowsItsOwnFactors) {
  const auto c = imageComparison("cbam");
  ViewRequest r = gatesRequest();
  r.third = Third::Step;
  r.step = 0;  // "channel gate"
  const Scene s = build(subjectOf(c), r);
  ASSERT_EQ(s.panels.size(), 1u);
  EXPECT_EQ(s.panels[0].role, "bars");
  EXPECT_EQ(s.panels[0].title.rfind("channel gate", 0), 0u) << s.panels[0].title;
  EXPECT_EQ(s.steps.current, 0);
  EXPECT_EQ(gatesStepTitles(*c), (std::vector<std::string>{"channel gate", "spatial gate"}));
}

TEST(GatesView, AnyModulesImageLabelsAndBarsFactorsAreDrawnWithoutCodeOfItsOwn) {
  // A module's factor list, made here: a label map, a signed map, bars with negative entries, a plain matrix (not
  // drawn) and two maps more than the four panels hold.
  auto made = std::make_shared<attn::Comparison>(*imageComparison("cbam"));
  const attn::Index n = k_w * k_h;
  attn::Matrix labels(k_h, k_w), signed_map(1, n), bars(1, 5), plain(3, 3);
  for (attn::Index t = 0; t < n; ++t) labels(t / k_w, t % k_w) = float(t % 3), signed_map(0, t) = float(t) - 100;
  bars << -1, 0.5f, 2, 0, 1;
  plain.setOnes();
  made->approx.explanation.factors = {{"segments", "labels", labels, attn::MatrixLayout::Labels},
                                      {"a plain matrix", "", plain, attn::MatrixLayout::Plain},
                                      {"signed", "below and above 0", signed_map, attn::MatrixLayout::Image},
                                      {"profile", "five entries", bars, attn::MatrixLayout::Bars},
                                      {"extra 1", "", signed_map, attn::MatrixLayout::Image},
                                      {"extra 2", "", signed_map, attn::MatrixLayout::Image},
                                      {"extra 3", "", signed_map, attn::MatrixLayout::Image}};
  const Scene s = build(subjectOf(made), gatesRequest());
  ASSERT_EQ(s.panels.size(), 4u);
  EXPECT_EQ(s.panels[0].title, "segments");
  EXPECT_EQ(s.panels[0].categories, (std::vector<std::string>{"label 0", "label 1", "label 2"}));
  EXPECT_EQ(s.panels[0].values(1, 0), float(24 % 3) + 1);  // category + 1 (0: none)
  EXPECT_EQ(s.panels[1].title, "signed");
  EXPECT_TRUE(s.panels[1].signed_values);
  EXPECT_EQ(s.panels[1].values(2, 3), float(2 * k_w + 3) - 100);  // raster order onto the grid
  EXPECT_EQ(s.panels[2].title, "profile");
  EXPECT_EQ(s.panels[2].bars, (std::vector<float>{-1, 0.5f, 2, 0, 1}));
  EXPECT_EQ(s.panels[2].own_scale->lo, -1.0f);  // the zero line inside the chart
  EXPECT_EQ(s.panels[3].title, "extra 1");
  bool left_out = false;
  for (const std::string& note : s.notes) left_out |= note.find("2 more map(s) or bars") != std::string::npos;
  EXPECT_TRUE(left_out);
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t k = 0; k < a.size(); ++k) ab += a[k] * b[k], aa += a[k] * a[k], bb += b[k] * b[k];
  return 1 - ab / std::sqrt(aa * bb);
}

TEST(GatesView, GcnetsOneMapStandsBesideExactMapsAtPickedPixelsWithTheirDistances) {
  const auto c = imageComparison("gcnet");
  const attn::Index p = 4 * k_w + 3, q = 12 * k_w + 20;
  const Scene s = build(subjectOf(c), gatesRequest({p, q}));
  ASSERT_EQ(s.panels.size(), 3u);  // the context map, exact at p, exact at q
  const Panel& map = s.panels[0];
  EXPECT_NE(map.title.find("context map"), std::string::npos) << map.title;
  EXPECT_FALSE(map.own_scale);  // a distribution over the pixels: the shared weight scale, as exact's maps
  std::vector<double> context(std::size_t(k_w * k_h));
  for (attn::Index t = 0; t < k_w * k_h; ++t) context[std::size_t(t)] = map.values(t / k_w, t % k_w);
  for (const auto& [panel, token] : {std::pair{std::size_t(1), p}, std::pair{std::size_t(2), q}}) {
    const Panel& e = s.panels[panel];
    EXPECT_EQ(e.title, "exact at pixel (" + std::to_string(token % k_w) + ", " + std::to_string(token / k_w) + ")");
    ASSERT_EQ(e.pixel_marks.size(), 1u);
    EXPECT_EQ(e.pixel_marks[0].y * k_w + e.pixel_marks[0].x, token);
    const std::vector<double> row = softmaxRow(c->inputs, token);
    double worst = 0;
    for (attn::Index t = 0; t < k_w * k_h; ++t) worst = std::max(worst, std::fabs(double(e.values(t / k_w, t % k_w)) - row[std::size_t(t)]));
    EXPECT_LT(worst, 1e-5) << panel;
    EXPECT_NEAR(captionNumber(e, "cosine distance to context map w (H\xC3\x97W): "), cosine(row, context), 2e-3) << panel;
    EXPECT_FALSE(e.own_scale);
  }
  EXPECT_NEAR(captionNumber(s.panels[1], "to (20, 12): "), cosine(softmaxRow(c->inputs, p), softmaxRow(c->inputs, q)), 2e-3);
  EXPECT_TRUE(captionHas(s.panels[0], "mean cosine distance to the exact maps"));
  EXPECT_GE(s.scale.hi, map.values.maxCoeff());
  // No pixel picked: three on the diagonal, said in a note.
  const Scene d = build(subjectOf(c), gatesRequest());
  ASSERT_EQ(d.panels.size(), 4u);
  EXPECT_EQ(d.panels[2].title, "exact at pixel (12, 8)");
  bool said = false;
  for (const std::string& note : d.notes) said |= note.find("three pixels on the diagonal") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(GatesView, NoPictureOrNothingToDrawIsAPlaceholderThatSaysWhy) {
  const Scene clustered = build(subjectOf(imageComparison("cbam", attn::Generator::Clustered)), gatesRequest());
  EXPECT_TRUE(clustered.panels.empty());
  EXPECT_NE(clustered.placeholder.find("the gates view needs a picture"), std::string::npos) << clustered.placeholder;
  const auto longformer = imageComparison("longformer");
  const Scene none = build(subjectOf(longformer), gatesRequest());
  EXPECT_TRUE(none.panels.empty());
  EXPECT_NE(none.placeholder.find("has no maps or gates"), std::string::npos) << none.placeholder;
  EXPECT_EQ(gatesRefusal(*longformer), none.placeholder);
}

TEST(GatesView, CosineDistanceIsZeroForTheSameMapAndOneForDisjointOnes) {
  attn::Matrix a = attn::Matrix::Zero(2, 2), b = attn::Matrix::Zero(2, 2);
  a(0, 0) = 1, b(1, 1) = 2;
  EXPECT_NEAR(cosineDistance(a, 3 * a), 0, 1e-12);
  EXPECT_NEAR(cosineDistance(a, b), 1, 1e-12);
  EXPECT_EQ(cosineDistance(a, attn::Matrix::Zero(2, 2)), 1);
}

}  // namespace
}  // namespace attnlab::scene
