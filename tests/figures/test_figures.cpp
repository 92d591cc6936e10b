// The figure layer without a display: exports parse and follow the DPI, SVG draws like the PNG (one
// painting path), the colormaps are perceptually ordered, and three canonical figures match golden
// images within tolerances. ATTNLAB_UPDATE_GOLDEN=1 rewrites the golden images (look at them first).
#include <gtest/gtest.h>

#include <QBuffer>
#include <QGuiApplication>
#include <QSvgRenderer>
#include <QXmlStreamReader>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "app/figures/views.h"
#include "attention/mechanism.h"
#include "attention/runner.h"
#include "tests/image_diff.h"

namespace attnlab::fig {
namespace {

namespace fs = std::filesystem;
using attnlab::test::compareImages;
using attnlab::test::Difference;

attn::Comparison comparisonOf(const std::string& id, attn::Generator g, attn::Index n) {
  attn::InputSpec spec;
  spec.n = n;
  spec.d = spec.dv = 32;
  spec.generator = g;
  attn::CpuBackend cpu(1);
  const auto m = attn::requireMechanism(id);
  return attn::compare(attn::generate(spec), m, attn::Params::resolve(m->params(), {}), cpu, {});
}

scene::Subject subjectOf(const attn::Comparison& c) {
  scene::Subject s;
  s.main = std::make_shared<const attn::Comparison>(c);
  return s;
}

/// A view of a comparison as `attnlab render` makes it (reproducible: no times).
SceneFigure viewFigure(const attn::Comparison& c, View v, attn::Index pixels, const std::string& width = "double") {
  scene::ViewRequest r;
  r.times = false;
  r.pixels = pixels;
  return sceneFigure(subjectOf(c), requestFor(c, v, r), makeStyle(width));
}

SceneFigure weightsFigure() { return viewFigure(comparisonOf("longformer", attn::Generator::Local, 128), View::Weights, 128); }

SceneFigure patternFigure() { return viewFigure(comparisonOf("bigbird", attn::Generator::Local, 256), View::Pattern, 256); }

// A sweep with made-up, fixed numbers: exact grows as N², "window" as N, "kernel" as N with a larger constant.
attn::SweepResult syntheticSweep() {
  attn::SweepResult r;
  r.spec.mechanisms = {"exact", "longformer", "performer"};
  r.spec.ns = {256, 512, 1024, 2048, 4096};
  r.spec.seeds = 3;
  r.spec.repeats = 3;
  r.spec.generator = attn::Generator::Local;
  r.complete = true;
  for (attn::Index n : r.spec.ns) {
    const double x = double(n) / 256;
    for (auto [id, t, err] : {std::tuple{"exact", 0.5 * x * x, 0.0}, {"longformer", 1.5 * x, 0.05}, {"performer", 4.0 * x, 0.4}}) {
      attn::SweepPoint p;
      p.mechanism = id;
      p.backend = "cpu";
      p.n = n;
      p.time_median = t;
      p.time_p25 = 0.9 * t;
      p.time_p75 = 1.1 * t;
      p.peak_bytes = 1e5 * x * (std::string(id) == "exact" ? 1 : 2);
      p.rel_error = {err * 20, err * 2, 3};  // e_out is large where ‖O*‖ is small; row TV stays in [0, 1]
      if (std::string(id) != "performer" || n <= 1024) p.row_tv = {err, err / 10, 3};
      r.points.push_back(p);
    }
  }
  return r;
}

void expectMatchesGolden(const Figure& figure, const std::string& name) {
  const QImage got = renderImage(figure, 96);
  const fs::path golden = fs::path(ATTNLAB_GOLDEN_DIR) / (name + ".png");
  if (const char* update = std::getenv("ATTNLAB_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    ASSERT_TRUE(got.save(QString::fromStdString(golden.string())));
    GTEST_SKIP() << "rewrote " << golden << ": look at it before committing";
  }
  QImage want;
  ASSERT_TRUE(want.load(QString::fromStdString(golden.string()))) << "missing golden image " << golden;
  const fs::path actual = fs::temp_directory_path() / ("attnlab-figure-" + name + ".png");
  ASSERT_EQ(got.size(), want.size()) << name << ": wrote " << actual << (got.save(QString::fromStdString(actual.string())) ? "" : " (failed)");
  const Difference d = compareImages(got, want);
  const bool ok = d.mean < 1.5 && d.far_share < 0.004;
  if (!ok) got.save(QString::fromStdString(actual.string()));
  EXPECT_LT(d.mean, 1.5) << name << ": see " << actual;
  EXPECT_LT(d.far_share, 0.004) << name << ": see " << actual;
}

TEST(Figures, WeightsHeatmapMatchesGolden) { expectMatchesGolden(weightsFigure(), "weights-longformer"); }
TEST(Figures, PatternMatchesGolden) { expectMatchesGolden(patternFigure(), "pattern-bigbird"); }
TEST(Figures, TimeCurvesMatchGolden) {
  expectMatchesGolden(sweepFigure(syntheticSweep(), Curve::Time, {"longformer", "performer"}, "cpu", "Synthetic"), "curves-time");
}

TEST(Figures, PngFollowsTheDpiAndCarriesIt) {
  const SceneFigure f = weightsFigure();
  for (double dpi : {72.0, 144.0, 300.0}) {
    QImage img;
    ASSERT_TRUE(img.loadFromData(pngBytes(f, dpi), "PNG"));
    EXPECT_EQ(img.width(), int(std::ceil(f.size().width() * dpi / 72))) << dpi;
    EXPECT_EQ(img.height(), int(std::ceil(f.size().height() * dpi / 72))) << dpi;
    EXPECT_NEAR(img.dotsPerMeterX() * 0.0254, dpi, 0.5);
  }
  EXPECT_THROW(renderImage(f, 5), attn::UserError);
  EXPECT_THROW(saveFigure(f, (fs::temp_directory_path() / "x.gif").string()), attn::UserError);
}

TEST(Figures, LongFooterLinesWrapInsideTheFigure) {
  const SceneFigure plain = weightsFigure();
  scene::Scene scene = plain.scene();
  std::string line;
  for (int k = 0; k < 80; ++k) line += "word" + std::to_string(k) + " ";
  scene.footnotes.push_back(line);
  const SceneFigure wordy(scene, plain.style());
  const double extra = wordy.size().height() - plain.size().height();
  EXPECT_GE(extra, 2 * 6.0) << "80 words fit on one line of " << wordy.size().width() << " pt?";
  EXPECT_EQ(wordy.size().width(), plain.size().width());
  const QImage img = renderImage(wordy, 72);
  const QRgb background = img.pixel(img.width() - 1, img.height() - 1);
  const int footer_top = int(plain.size().height()) - 20;
  int ink_right = 0, ink_bottom = 0;
  for (int y = footer_top; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      if (img.pixel(x, y) == background) continue;
      if (x >= img.width() - 4) ++ink_right;  // the margin stays empty: nothing runs off the edge
      if (y >= img.height() - 24) ++ink_bottom;
    }
  EXPECT_EQ(ink_right, 0);
  EXPECT_GT(ink_bottom, 20) << "the wrapped lines' last one is drawn";
}

TEST(Figures, SvgIsXmlWithVectorTextAndDrawsLikeThePng) {
  const SceneFigure matrix = patternFigure();
  const CurveFigure curves = sweepFigure(syntheticSweep(), Curve::Speedup, {"longformer", "performer"}, "cpu", "Synthetic");
  for (const Figure* f : {static_cast<const Figure*>(&matrix), static_cast<const Figure*>(&curves)}) {
    const QByteArray svg = svgBytes(*f);
    QXmlStreamReader xml(svg);
    int texts = 0, images = 0, paths = 0;
    QString root;
    while (!xml.atEnd()) {
      if (xml.readNext() == QXmlStreamReader::StartElement) {
        if (root.isEmpty()) root = xml.name().toString();
        texts += xml.name() == QStringLiteral("text");
        images += xml.name() == QStringLiteral("image");
        paths += xml.name() == QStringLiteral("path") || xml.name() == QStringLiteral("polyline");
      }
    }
    ASSERT_FALSE(xml.hasError()) << xml.errorString().toStdString();
    EXPECT_EQ(root, "svg");
    EXPECT_GT(texts, 5) << "labels stay text";
    EXPECT_GT(paths, 0) << "lines stay vectors";
    if (f == &matrix) EXPECT_GE(images, 2) << "a matrix is an embedded image";
    else EXPECT_EQ(images, 0) << "curves are vectors only";
    // Drawn back, the SVG looks like the PNG of the same figure.
    QSvgRenderer renderer(svg);
    ASSERT_TRUE(renderer.isValid());
    const QImage png = renderImage(*f, 72);
    QImage drawn(png.size(), QImage::Format_RGB32);
    drawn.fill(Qt::white);
    QPainter p(&drawn);
    renderer.render(&p, QRectF(0, 0, f->size().width(), f->size().height()));
    p.end();
    const Difference d = compareImages(drawn, png, 96);
    EXPECT_LT(d.mean, 6.0);
    EXPECT_LT(d.far_share, 0.04);
  }
}

TEST(Figures, SlopeGuidesStayInsideThePlotInSvgToo) {
  // A slope-3 guide through exact's first point leaves the plot by decades; Qt 6.4's SVG output has no
  // clipping, so the figure must cut it itself.
  CurveFigure f = sweepFigure(syntheticSweep(), Curve::Time, {"longformer", "performer"}, "cpu", "Synthetic");
  f.guides.push_back({"slope 3", 3, 256, 0.5});
  const QByteArray svg = svgBytes(f);
  QXmlStreamReader xml(svg);
  std::vector<std::array<double, 4>> lines;  // x1, y1, x2, y2 of each two-point polyline
  while (!xml.atEnd()) {
    if (xml.readNext() != QXmlStreamReader::StartElement || xml.name() != QStringLiteral("polyline")) continue;
    const QStringList points = xml.attributes().value("points").toString().split(QLatin1Char(' '), Qt::SkipEmptyParts);
    if (points.size() != 2) continue;
    const QStringList a = points[0].split(QLatin1Char(',')), b = points[1].split(QLatin1Char(','));
    ASSERT_TRUE(a.size() == 2 && b.size() == 2);
    lines.push_back({a[0].toDouble(), a[1].toDouble(), b[0].toDouble(), b[1].toDouble()});
  }
  ASSERT_FALSE(xml.hasError()) << xml.errorString().toStdString();
  // The plot is the box of the horizontal grid lines; the guides are the lines that are neither
  // horizontal nor vertical.
  double left = 1e9, right = -1e9, top = 1e9, bottom = -1e9;
  for (const auto& l : lines)
    if (l[1] == l[3] && l[2] - l[0] > 100) {
      left = std::min(left, l[0]), right = std::max(right, l[2]);
      top = std::min(top, l[1]), bottom = std::max(bottom, l[1]);
    }
  ASSERT_LT(top, bottom);
  int guides = 0;
  for (const auto& l : lines) {
    if (l[0] == l[2] || l[1] == l[3]) continue;
    ++guides;
    for (double y : {l[1], l[3]}) {
      EXPECT_GE(y, top - 0.5) << "a guide above the plot";
      EXPECT_LE(y, bottom + 0.5) << "a guide below the plot";
    }
    for (double x : {l[0], l[2]}) {
      EXPECT_GE(x, left - 0.5);
      EXPECT_LE(x, right + 0.5);
    }
  }
  EXPECT_GE(guides, 3) << "slopes 1, 2 and 3";
}

TEST(Figures, TheErrorCurveIsTheBoundedShareMisplaced) {
  // The error figure plots the mean row TV (bounded) and says so; e_out (3.0 .. 8.0 here) is not on it.
  const CurveFigure f = sweepFigure(syntheticSweep(), Curve::Error, {"longformer", "performer"}, "cpu", "Synthetic");
  EXPECT_NE(f.ylabel.indexOf("row TV"), -1) << f.ylabel.toStdString();
  ASSERT_EQ(f.series.size(), 2u);
  for (const auto& ser : f.series)
    for (double y : ser.y) {
      if (std::isfinite(y)) {
        EXPECT_LE(y, 1.0) << ser.name.toStdString();
      }
    }
  // Performer's row TV stops at N = 1024 in this sweep: its later points are gaps, not e_out.
  EXPECT_FALSE(std::isfinite(f.series[1].y.back()));
  bool explained = false;
  for (const QString& line : f.footer) explained |= line.contains("Misplaced");
  EXPECT_TRUE(explained);
}

TEST(Figures, PdfIsOnePageOfTheFiguresSize) {
  const CurveFigure f = sweepFigure(syntheticSweep(), Curve::Memory, {"longformer", "performer"}, "cpu", "Synthetic");
  const QByteArray bytes = pdfBytes(f);
  const std::string pdf(bytes.constData(), std::size_t(bytes.size()));
  EXPECT_EQ(pdf.rfind("%PDF-", 0), 0u);
  const std::regex page("/Type\\s*/Page[^s]");
  EXPECT_EQ(std::distance(std::sregex_iterator(pdf.begin(), pdf.end(), page), std::sregex_iterator()), 1);
  std::smatch box;
  ASSERT_TRUE(std::regex_search(pdf, box, std::regex("/MediaBox \\[\\s*0 0 ([0-9.]+) ([0-9.]+)\\s*\\]")));
  EXPECT_NEAR(std::stod(box[1].str()), f.size().width(), 1.0);
  EXPECT_NEAR(std::stod(box[2].str()), f.size().height(), 1.0);
  EXPECT_NE(pdf.find("/Font"), std::string::npos) << "text is text";
}

// CIELAB lightness of an sRGB colour.
double lightness(scene::Rgb c) {
  auto lin = [](double v) { return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); };
  const double y = 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  return y > 216.0 / 24389 ? 116 * std::cbrt(y) - 16 : y * 24389.0 / 27;
}

TEST(Figures, SequentialColormapsRiseInLightnessEvenlyAndTheDivergingOnePeaksInTheMiddle) {
  for (auto map : {scene::Colormap::Viridis, scene::Colormap::Magma, scene::Colormap::Cividis}) {
    const auto& lut = scene::table(map);
    for (std::size_t i = 1; i < lut.size(); ++i)
      EXPECT_GT(lightness(lut[i]), lightness(lut[i - 1])) << scene::colormapName(map) << " entry " << i;
    // Even: the lightness gained over each sixteenth of the map. These maps are uniform in CAM02-UCS,
    // whose lightness J' departs from CIELAB L* near black, so the first sixteenth is left out.
    double lo = 1e9, hi = -1e9;
    for (std::size_t i = 32; i < lut.size(); i += 16) {
      const double step = lightness(lut[i]) - lightness(lut[i - 16]);
      lo = std::min(lo, step);
      hi = std::max(hi, step);
    }
    EXPECT_LT(hi / lo, 1.5) << scene::colormapName(map) << ": lightness steps should be even";
    EXPECT_GT(lightness(lut.back()) - lightness(lut.front()), 60) << scene::colormapName(map);
  }
  const auto& div = scene::table(scene::Colormap::Diverging);
  const std::size_t peak = std::size_t(std::max_element(div.begin(), div.end(), [](auto a, auto b) {
                                         return lightness(a) < lightness(b);
                                       }) - div.begin());
  EXPECT_NEAR(double(peak), 127.5, 8);
  EXPECT_NEAR(lightness(div.front()), lightness(div.back()), 8) << "both ends equally dark";
  for (const auto& name : scene::colormapNames()) EXPECT_TRUE(scene::parseColormap(name).has_value()) << name;
}

TEST(Figures, EveryViewNamesWhatIsMissingInsteadOfDrawingNothing) {
  const attn::Comparison exact = comparisonOf("exact", attn::Generator::Local, 64);
  for (View v : {View::Pattern, View::Tokens, View::Groups, View::Step})
    EXPECT_THROW(requestFor(exact, v, {}), attn::UserError) << viewName(v);
  for (View v : {View::Weights, View::Diff}) EXPECT_NO_THROW(viewFigure(exact, v, 64)) << viewName(v);
}

TEST(Figures, TokensThatAreQueriesOnlyAreMarkedOnTheQueryAxisOnly) {
  // Informer's active queries (and Routing's queries with no key) are rows, not keys: a tick on the key axis
  // would say the column is special.
  auto mechanismPanel = [](const SceneFigure& f) {
    for (const scene::Panel& p : f.scene().panels)
      if (p.role == "mechanism") return p;
    return scene::Panel();
  };
  const scene::Panel informer = mechanismPanel(viewFigure(comparisonOf("informer", attn::Generator::Clustered, 128), View::Tokens, 128));
  EXPECT_FALSE(informer.row_marks.empty());
  EXPECT_TRUE(informer.marks.empty());
  const scene::Panel longformer = mechanismPanel(viewFigure(comparisonOf("longformer", attn::Generator::Local, 128), View::Tokens, 128));
  EXPECT_FALSE(longformer.marks.empty()) << "global tokens are both";
}

}  // namespace
}  // namespace attnlab::fig

int main(int argc, char** argv) {
  if (!std::getenv("QT_QPA_PLATFORM")) setenv("QT_QPA_PLATFORM", "offscreen", 1);
  if (!std::getenv("XDG_RUNTIME_DIR")) {
    char tmpl[] = "/tmp/attnlab-figtest-XXXXXX";
    if (const char* dir = mkdtemp(tmpl)) setenv("XDG_RUNTIME_DIR", dir, 1);
  }
  QGuiApplication app(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
