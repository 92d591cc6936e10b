// An export is the view model's scene: a sorted, zoomed, stepped view drawn to a file holds exactly the
// panels scene::build makes for the same request, and every matrix cell in the PNG has the colour the scene
// gives its value. (The GUI test ExportsAreWhatTheViewportShows compares an export with the viewport's grab.)
#include <gtest/gtest.h>

#include <QImage>
#include <cmath>

#include "app/figures/views.h"
#include "attention/backend.h"
#include "attention/mechanism.h"
#include "attention/runner.h"

namespace attnlab::fig {
namespace {

scene::Subject reformerSubject() {
  attn::InputSpec spec;
  spec.n = 256;
  spec.d = spec.dv = 32;
  spec.generator = attn::Generator::Clustered;
  attn::CpuBackend cpu(1);
  const auto m = attn::requireMechanism("reformer");
  scene::Subject s;
  s.main = std::make_shared<const attn::Comparison>(
      attn::compare(attn::generate(spec), m, attn::Params::resolve(m->params(), {}), cpu, {}));
  return s;
}

int channelDistance(QRgb a, QRgb b) {
  return std::max({std::abs(qRed(a) - qRed(b)), std::abs(qGreen(a) - qGreen(b)), std::abs(qBlue(a) - qBlue(b))});
}

TEST(ExportIsTheScene, ASortedZoomedSteppedViewIsDrawnCellForCell) {
  const scene::Subject subject = reformerSubject();
  const attn::Comparison& c = *subject.main;
  scene::ViewRequest request;
  request.order = scene::resolveOrder(c, "buckets");
  ASSERT_FALSE(request.order.empty());
  request.window = {0.25, 0.75, 0.125, 0.625};  // rows 64–191, keys 32–159
  request.pixels = 48;                          // 128 entries pooled to 48 pixels: pooling is exercised
  request.times = false;
  request.step = 0;
  request = requestFor(c, View::Step, request);
  const scene::Scene expected = scene::build(subject, request);
  const SceneFigure figure = sceneFigure(subject, request, makeStyle("double"));
  const scene::Scene& drawn = figure.scene();
  ASSERT_EQ(drawn.panels.size(), expected.panels.size());
  ASSERT_EQ(drawn.panels.size(), 3u);
  EXPECT_EQ(drawn.title, expected.title);
  EXPECT_NE(drawn.subtitle.find("tokens sorted by " + request.order), std::string::npos) << drawn.subtitle;
  for (std::size_t k = 0; k < drawn.panels.size(); ++k) {
    const scene::Panel &d = drawn.panels[k], &e = expected.panels[k];
    EXPECT_EQ(d.title, e.title);
    EXPECT_EQ(d.captions, e.captions) << d.title;
    EXPECT_EQ(d.shown_rows, e.shown_rows) << d.title;
    EXPECT_EQ(d.shown_cols, e.shown_cols) << d.title;
    EXPECT_EQ(d.row_groups, e.row_groups) << d.title;
    ASSERT_EQ(d.values.rows(), e.values.rows()) << d.title;
    ASSERT_EQ(d.values.cols(), e.values.cols()) << d.title;
    EXPECT_TRUE(d.values.isApprox(e.values, 0) || d.values == e.values) << d.title;
  }
  // The zoom and the order reached the weights: the exact panel holds rows 64–191 and keys 32–159 of exact
  // attention with the tokens in bucket order, max-pooled.
  const scene::Panel& exact = drawn.panels[0];
  EXPECT_EQ(exact.shown_rows, (attn::Range{64, 192}));
  EXPECT_EQ(exact.shown_cols, (attn::Range{32, 160}));
  const attn::Matrix dense = c.exact.explanation.weights.dense(attn::Index(1) << 20);
  attn::Grouping order;
  for (const auto& g : scene::ordersOf(c))
    if (g.name == request.order) order = g;
  ASSERT_EQ(order.order.size(), 256u);
  std::vector<attn::Index> rs, re, cs, ce;
  attn::tilePixelSpans(128, 48, rs, re);
  attn::tilePixelSpans(128, 48, cs, ce);
  for (attn::Index pr : {0, 17, 47})
    for (attn::Index pc : {0, 23, 47}) {
      float best = 0;
      for (attn::Index i = rs[size_t(pr)]; i < re[size_t(pr)]; ++i)
        for (attn::Index j = cs[size_t(pc)]; j < ce[size_t(pc)]; ++j)
          best = std::max(best, dense(order.order[size_t(64 + i)], order.order[size_t(32 + j)]));
      EXPECT_NEAR(exact.values(pr, pc), best, 1e-6) << "pixel " << pr << "," << pc;
    }
  // The step panel is the first step's image in the same window and order.
  EXPECT_EQ(drawn.panels[2].title, scene::stepTitles(c).front());

  // Every cell of the exact and mechanism panels has, in the PNG, the colour of its value on the scene's scale.
  const double dpi = 300;
  const QImage png = renderImage(figure, dpi);
  const double px_per_pt = dpi / 72;
  for (std::size_t k = 0; k < 2; ++k) {
    const scene::Panel& p = drawn.panels[k];
    const QRectF box = figure.layout().panels[k];
    int checked = 0, wrong = 0;
    for (attn::Index r = 0; r < p.values.rows(); ++r)
      for (attn::Index col = 0; col < p.values.cols(); ++col) {
        const double x = (box.left() + (double(col) + 0.5) * box.width() / double(p.values.cols())) * px_per_pt;
        const double y = (box.top() + (double(r) + 0.5) * box.height() / double(p.values.rows())) * px_per_pt;
        const QRgb want = colourOf(scene::colormapAt(drawn.colormap, drawn.scale.normalise(p.values(r, col)))).rgb();
        ++checked;
        wrong += channelDistance(png.pixel(int(x), int(y)), want) > 3;
      }
    EXPECT_EQ(checked, 48 * 48);
    EXPECT_EQ(wrong, 0) << p.title << ": cells whose colour is not their value's";
  }
}

TEST(ExportIsTheScene, OrderAboveTheSortingLimitSaysWhyInPlace) {
  const scene::Subject subject = reformerSubject();
  scene::ViewRequest request;
  request.order = "no such grouping";
  request.pixels = 32;
  const scene::Scene s = scene::build(subject, request);
  ASSERT_FALSE(s.notes.empty());
  EXPECT_NE(s.notes.front().find("not sorted by no such grouping"), std::string::npos) << s.notes.front();
  EXPECT_THROW(scene::resolveOrder(*subject.main, "no such grouping"), attn::UserError);
}

}  // namespace
}  // namespace attnlab::fig
