// SceneFigure: a scene as a paper figure. Widths and font sizes, the grid at each width, numeric ticks,
// decades on log colour bars, one legend per kind of panel present, crisp heatmaps in PNG and PDF, text as
// text in SVG, and no text off the page or over other text. ATTNLAB_FIGURE_SAMPLES=<dir> also writes the
// sample figures there (PNG at 150 DPI, PDF, SVG) to look at; ATTNLAB_FIGURE_DUMP=1 prints every text box the
// overlap test checks.
#include <gtest/gtest.h>

#include <QBuffer>
#include <QXmlStreamReader>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <regex>
#include <set>

#include "app/figures/figure_internal.h"
#include "app/figures/scene_figure.h"

namespace attnlab::fig {
namespace {

namespace fs = std::filesystem;
using Role = FigureText::Role;

// Attention-like weights: each row decays away from the diagonal (a band), normalised.
attn::Matrix bandWeights(attn::Index n, double width) {
  attn::Matrix m(n, n);
  for (attn::Index i = 0; i < n; ++i) {
    double sum = 0;
    for (attn::Index j = 0; j < n; ++j) sum += (m(i, j) = float(std::exp(-std::fabs(double(i - j)) / width)));
    for (attn::Index j = 0; j < n; ++j) m(i, j) = float(m(i, j) / sum);
  }
  return m;
}

scene::Panel weightsPanel(const std::string& title, attn::Index n, double width) {
  scene::Panel p;
  p.title = title;
  p.subtitle = std::to_string(n) + "×" + std::to_string(n) + " weights";
  p.values = bandWeights(n, width);
  p.source_rows = p.source_cols = n;
  p.captions = {"row TV 0.12 (mean over rows)"};
  p.role = "exact";
  return p;
}

scene::Scene paperScene(std::size_t panels = 4, attn::Index n = 256) {
  scene::Scene s;
  s.title = "Longformer  vs  exact";
  s.subtitle = "N = 256, d = 32, local inputs, seed 1 · cpu · max-pooled";
  s.scale = {scene::ScaleMode::Log10, 0, 1, 1e-4f};
  s.legend_title = "weight (log scale)";
  s.notes = {"causal Longformer drops its global tokens"};
  s.footnotes = {"Row TV: half the L1 distance between a row of the mechanism's weights and exact's, averaged over rows."};
  s.panels.push_back(weightsPanel("exact", n, 12));
  scene::Panel mech = weightsPanel("Longformer", n, 4);
  mech.marks = {0, 1, 128};
  mech.row_marks = {200};
  mech.role = "mechanism";
  s.panels.push_back(mech);
  if (panels >= 3) {
    scene::Panel pat;
    pat.title = "pattern";
    pat.values = attn::Matrix::Zero(n, n);
    for (attn::Index i = 0; i < n; ++i)
      for (attn::Index j = 0; j < n; ++j) {
        if (std::abs(i - j) <= 8) pat.values(i, j) = 1;
        if (i < 2 || j < 2) pat.values(i, j) = 2;
        if ((i * 7 + j * 13) % 53 == 0) pat.values(i, j) = 3;
      }
    pat.source_rows = pat.source_cols = n;
    pat.categories = {"window", "global", "random"};
    pat.empty_label = "not scored";
    pat.legend_title = "component";
    pat.role = "pattern";
    s.panels.push_back(pat);
  }
  if (panels >= 4) {
    scene::Panel diff;
    diff.title = "difference";
    diff.values = s.panels[1].values - s.panels[0].values;
    diff.source_rows = diff.source_cols = n;
    diff.signed_values = true;
    diff.signed_range = diff.values.cwiseAbs().maxCoeff();
    diff.legend_title = "approx − exact";
    diff.role = "difference";
    s.panels.push_back(diff);
  }
  return s;
}

// Long titles and captions, a factor on its own scale, an empty panel and a grouped panel.
scene::Scene wordyScene() {
  scene::Scene s = paperScene(3);
  s.title = "Reformer with four hash rounds and buckets of sixty-four tokens  vs  exact softmax attention";
  s.notes.push_back("C > N leaves the pattern empty for the first round; marks capped at 512 of 1024 special tokens");
  s.footnotes.push_back(
      "Departures from the paper: queries and keys are tied as in the paper but the hash is drawn afresh for each "
      "seed; a_very_long_identifier_without_any_spaces_that_must_be_broken_between_characters_rather_than_cut");
  s.panels[0].captions = {"e_out 0.4 (relative output error, ‖O − O*‖ / ‖O*‖, large where ‖O*‖ is small)",
                          "mass recall 0.93: the exact mass on the keys each row can see, averaged over the rows"};
  s.panels[1].title = "Reformer (4 rounds × 64-token buckets, shared QK, sorted by round 1 buckets)";
  s.panels[1].row_groups.resize(std::size_t(s.panels[1].values.rows()));
  for (std::size_t r = 0; r < s.panels[1].row_groups.size(); ++r) s.panels[1].row_groups[r] = int(r / 32);
  s.panels[1].ylabel = "query i (sorted by the buckets of hash round 1)";
  scene::Panel factor;
  factor.title = "S after 3 iterations";
  factor.values = bandWeights(64, 3).topRows(32) * 50;
  factor.source_rows = 32;
  factor.source_cols = 64;
  factor.own_scale = scene::ColorScale{scene::ScaleMode::Linear, 0, 25, 0};
  factor.legend_title = "S entry";
  factor.xlabel = "landmark";
  factor.ylabel = "feature";
  s.panels.push_back(factor);
  scene::Panel empty;
  empty.title = "step 2";
  empty.source_rows = empty.source_cols = 256;
  empty.empty_text = "this step implies no weights: it rescales the outputs of step 1 by the row sums of the numerator";
  s.panels.push_back(empty);
  return s;
}

FigureStyle style(const std::string& width, const std::string& font = "") { return makeStyle(width, font); }

std::vector<const FigureText*> textsOf(const SceneFigureLayout& l, Role role) {
  std::vector<const FigureText*> out;
  for (const auto& t : l.texts)
    if (t.role == role) out.push_back(&t);
  return out;
}

std::string str(const FigureText& t) { return t.text.toStdString(); }

void writeSample(const Figure& f, const std::string& name) {
  const char* dir = std::getenv("ATTNLAB_FIGURE_SAMPLES");
  if (!dir) return;
  fs::create_directories(dir);
  for (const char* ext : {".png", ".pdf", ".svg"}) saveFigure(f, (fs::path(dir) / (name + ext)).string(), 150);
}

TEST(SceneFigure, WidthsAndFontSizesParseAsDocumented) {
  EXPECT_EQ(parseWidth("single"), 252.0);
  EXPECT_EQ(parseWidth("double"), 504.0);
  EXPECT_EQ(parseWidth("slide"), 720.0);
  EXPECT_EQ(parseWidth("5"), 360.0);
  EXPECT_EQ(parseWidth("4.5in"), 324.0);
  EXPECT_EQ(parseWidth(" 1 in "), 72.0);
  for (const char* bad : {"", "0.5", "21", "wide", "5cm", "-3", "nan"}) EXPECT_FALSE(parseWidth(bad).has_value()) << bad;
  EXPECT_EQ(parseFontSize("9"), 9.0);
  EXPECT_EQ(parseFontSize("10.5pt"), 10.5);
  for (const char* bad : {"4", "37", "big", "9px"}) EXPECT_FALSE(parseFontSize(bad).has_value()) << bad;
  EXPECT_EQ(style("single").font_pt, 8);
  EXPECT_EQ(style("double").font_pt, 8);
  EXPECT_EQ(style("slide").font_pt, 14);
  EXPECT_EQ(style("slide", "18").font_pt, 18);
  EXPECT_EQ(style("").width_pt, 504);
  EXPECT_THROW(makeStyle("huge"), attn::UserError);
  EXPECT_THROW(makeStyle("single", "2"), attn::UserError);
  EXPECT_EQ(panelLetter(0), "a");
  EXPECT_EQ(panelLetter(25), "z");
  EXPECT_EQ(panelLetter(26), "aa");
}

// Rows of panels: the distinct tops of the panel images.
std::size_t panelRows(const SceneFigureLayout& l) {
  std::set<long> tops;
  for (const QRectF& r : l.panels) tops.insert(std::lround(r.top() * 100));
  return tops.size();
}

TEST(SceneFigure, PanelsFillTheWidthInAGridThatSuitsIt) {
  const scene::Scene four = paperScene(4);
  const SceneFigure single(four, style("single")), dbl(four, style("double")), slide(four, style("slide"));
  EXPECT_EQ(panelRows(single.layout()), 2u) << "one column of a paper: two panels a row";
  EXPECT_EQ(panelRows(dbl.layout()), 1u);
  EXPECT_EQ(panelRows(slide.layout()), 1u);
  EXPECT_EQ(panelRows(SceneFigure(paperScene(3), style("single")).layout()), 2u);
  for (const SceneFigure* f : {&single, &dbl, &slide}) {
    EXPECT_EQ(f->size().width(), f->style().width_pt);
    ASSERT_EQ(f->layout().panels.size(), 4u);
    for (const QRectF& r : f->layout().panels) EXPECT_NEAR(r.width(), r.height(), 0.01) << "N×N is square";
    // The grid fills the width: the last panel of the first row ends near the right margin.
    double right = 0;
    for (const QRectF& r : f->layout().panels) right = std::max(right, r.right());
    EXPECT_GT(right, f->size().width() - 4 * f->style().font_pt) << f->style().width_pt;
    EXPECT_LT(right, f->size().width());
  }
  EXPECT_GT(slide.layout().panels[0].width(), dbl.layout().panels[0].width());
  // A 32 × 64 factor keeps its aspect (twice as wide as tall).
  const SceneFigure wordy(wordyScene(), style("double"));
  const QRectF factor = wordy.layout().panels[3];
  EXPECT_NEAR(factor.width(), 2 * factor.height(), 0.01);
}

TEST(SceneFigure, PanelsAreLetteredInTheScenesOrder) {
  const SceneFigure f(paperScene(4), style("double"));
  const auto letters = textsOf(f.layout(), Role::PanelLetter);
  ASSERT_EQ(letters.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(letters[k]->text, panelLetter(k));
    EXPECT_TRUE(letters[k]->bold);
    EXPECT_LE(letters[k]->box.bottom(), f.layout().panels[k].top()) << "the letter is above its panel";
    EXPECT_NEAR(letters[k]->box.left(), f.layout().panels[k].left(), 6 * f.style().font_pt);
  }
  const auto titles = textsOf(f.layout(), Role::PanelTitle);
  ASSERT_GE(titles.size(), 4u);
  EXPECT_EQ(titles[0]->text, "exact");
  EXPECT_GT(titles[0]->box.left(), letters[0]->box.right()) << "the title follows the letter";
}

TEST(SceneFigure, AxesCarryTokenTicksWhereEntriesStart) {
  scene::Scene s = paperScene(2);
  // The second panel is zoomed in on entries 64–192 (pooled to 128 pixels).
  s.panels[1].values = bandWeights(256, 4).block(64, 64, 128, 128);
  s.panels[1].shown_rows = s.panels[1].shown_cols = {64, 192};
  const SceneFigure f(s, style("double"));
  const auto& l = f.layout();
  auto ticksUnder = [&](const QRectF& panel) {
    std::map<std::string, QRectF> out;
    for (const auto* t : textsOf(l, Role::Tick))
      if (t->box.top() > panel.bottom() && t->box.top() < panel.bottom() + 2 * f.style().font_pt &&
          t->box.center().x() > panel.left() - 20 && t->box.center().x() < panel.right() + 20)
        out[str(*t)] = t->box;
    return out;
  };
  const auto whole = ticksUnder(l.panels[0]);
  ASSERT_TRUE(whole.count("0") && whole.count("100") && whole.count("256")) << whole.size();
  const QRectF p0 = l.panels[0];
  EXPECT_NEAR(whole.at("0").center().x(), p0.left(), 0.01);
  EXPECT_NEAR(whole.at("100").center().x(), p0.left() + 100.0 / 256 * p0.width(), 0.01);
  EXPECT_NEAR(whole.at("256").center().x(), p0.right(), 0.01);
  const auto zoomed = ticksUnder(l.panels[1]);
  const QRectF p1 = l.panels[1];
  ASSERT_TRUE(zoomed.count("100")) << "ticks in source entries, not pixels";
  EXPECT_NEAR(zoomed.at("100").center().x(), p1.left() + (100.0 - 64) / 128 * p1.width(), 0.01);
  EXPECT_FALSE(zoomed.count("0")) << "entry 0 is not shown";
  // The axis labels: the y label reads upwards left of the panel, the x label under the ticks.
  bool ylabel = false, xlabel = false;
  for (const auto* t : textsOf(l, Role::AxisLabel)) {
    if (t->text == "query i" && t->vertical && t->box.right() < p0.left()) ylabel = true;
    if (t->text == "key j" && !t->vertical && t->box.top() > whole.at("0").bottom()) xlabel = true;
  }
  EXPECT_TRUE(ylabel);
  EXPECT_TRUE(xlabel);
}

TEST(SceneFigure, LogColourBarsReadInDecades) {
  const SceneFigure f(paperScene(2), style("double"));
  std::vector<std::string> labels;
  for (const auto* t : textsOf(f.layout(), Role::LegendTick)) labels.push_back(str(*t));
  EXPECT_EQ(labels, (std::vector<std::string>{"10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"}));
  ASSERT_EQ(f.layout().bars.size(), 1u);
  // A log scale that does not end on decades labels its ends as powers of ten too, never as 0.00582.
  scene::Scene s = paperScene(2);
  s.scale = {scene::ScaleMode::Log10, 0, 0.0443f, 5.82e-3f};
  labels.clear();
  const SceneFigure g(s, style("double"));
  for (const auto* t : textsOf(g.layout(), Role::LegendTick)) labels.push_back(str(*t));
  ASSERT_FALSE(labels.empty());
  EXPECT_EQ(labels.front(), "5.8×10⁻³");
  EXPECT_EQ(labels.back(), "4.4×10⁻²");
  for (const auto& l : labels) EXPECT_EQ(l.find("0.0"), std::string::npos) << l;
}

TEST(SceneFigure, OneLegendPerKindOfPanelPresent) {
  auto titles = [](const scene::Scene& s) {
    const SceneFigure f(s, style("double"));
    std::vector<std::string> out;
    for (const auto* t : textsOf(f.layout(), Role::LegendTitle)) out.push_back(str(*t));
    return out;
  };
  EXPECT_EQ(titles(paperScene(2)), (std::vector<std::string>{"weight (log scale)"}));
  EXPECT_EQ(titles(paperScene(3)), (std::vector<std::string>{"a, b: weight (log scale)", "c: component"}));
  EXPECT_EQ(titles(paperScene(4)),
            (std::vector<std::string>{"a, b: weight (log scale)", "c: component", "d: approx − exact"}));
  scene::Scene only_pattern = paperScene(3);
  only_pattern.panels.erase(only_pattern.panels.begin(), only_pattern.panels.begin() + 2);
  EXPECT_EQ(titles(only_pattern), (std::vector<std::string>{"component"})) << "no colour bar without a continuous panel";
  EXPECT_EQ(titles(wordyScene()), (std::vector<std::string>{"a, b: weight (log scale)", "c: component", "d: S entry"}));

  // The categorical legend names its categories as given, and the empty colour.
  scene::Scene groups = paperScene(3);
  groups.panels[2].categories = {"group 1", "group 2"};
  const SceneFigure f(groups, style("double"));
  std::vector<std::string> names;
  for (const auto* t : textsOf(f.layout(), Role::LegendName)) names.push_back(str(*t));
  EXPECT_EQ(names, (std::vector<std::string>{"group 1", "group 2", "not scored"}));
  EXPECT_EQ(f.layout().swatches.size(), 3u);
  // The signed bar runs from −range to +range through 0.
  const SceneFigure d(paperScene(4), style("double"));
  std::vector<std::string> ticks;
  for (const auto* t : textsOf(d.layout(), Role::LegendTick)) ticks.push_back(str(*t));
  EXPECT_NE(std::find(ticks.begin(), ticks.end(), "0"), ticks.end());
  EXPECT_EQ(ticks.back()[0] != '\xe2', true) << "+range is not negative";
  EXPECT_EQ(ticks[5].substr(0, 3), "−") << "the signed bar starts at −range";
}

// Every text inside the page, none over another, none over a panel's image.
void expectNoTextCollides(const SceneFigure& f, const std::string& what) {
  const auto& l = f.layout();
  if (std::getenv("ATTNLAB_FIGURE_DUMP"))
    for (const auto& t : l.texts)
      std::printf("%-12s %7.2f %7.2f %7.2f %7.2f %s\n", what.c_str(), t.box.left(), t.box.top(), t.box.width(), t.box.height(), str(t).c_str());
  const QRectF page(QPointF(0, 0), l.page);
  const double eps = 0.01;
  for (std::size_t i = 0; i < l.texts.size(); ++i) {
    const FigureText& a = l.texts[i];
    EXPECT_TRUE(page.contains(a.box)) << what << ": '" << str(a) << "' leaves the page";
    const QRectF inner = a.box.adjusted(eps, eps, -eps, -eps);
    for (std::size_t j = i + 1; j < l.texts.size(); ++j)
      EXPECT_FALSE(inner.intersects(l.texts[j].box)) << what << ": '" << str(a) << "' overlaps '" << str(l.texts[j]) << "'";
    for (std::size_t k = 0; k < l.panels.size(); ++k) {
      if (a.role != Role::EmptyText) {
        EXPECT_FALSE(inner.intersects(l.panels[k])) << what << ": '" << str(a) << "' lies on panel " << k;
      }
    }
  }
  for (const QRectF& b : l.legends) EXPECT_TRUE(page.contains(b)) << what << ": a legend leaves the page";
}

TEST(SceneFigure, NoTextIsCutOffOrOverlapsAtAnyWidth) {
  for (const char* width : {"single", "double", "slide", "1.5", "20"})
    for (const scene::Scene& s : {paperScene(4), wordyScene()}) {
      const SceneFigure f(s, style(width));
      expectNoTextCollides(f, std::string(width) + " " + s.title);
    }
  expectNoTextCollides(SceneFigure(wordyScene(), style("single", "12")), "single at 12 pt");
  expectNoTextCollides(SceneFigure(wordyScene(), style("double", "5")), "double at 5 pt");
  // Nothing is cut: the wrapped lines of a caption and of a footnote hold all of their words.
  const SceneFigure f(wordyScene(), style("single"));
  QStringList caption, footnote;
  for (const auto* t : textsOf(f.layout(), Role::Caption)) caption << t->text;
  for (const auto* t : textsOf(f.layout(), Role::Footnote)) footnote << t->text;
  EXPECT_NE(caption.join(' ').indexOf(QString::fromStdString(wordyScene().panels[0].captions[1])), -1);
  EXPECT_NE(footnote.join("").indexOf("a_very_long_identifier_without_any_spaces_that_must_be_broken_between_characters_rather_than_cut"), -1)
      << "a long word is broken across lines, not elided";
  EXPECT_GT(footnote.size(), 4);
}

TEST(SceneFigure, TitleSubtitleNotesAndFootnotesUseTheStylesSizes) {
  const SceneFigure f(paperScene(2), style("double", "10"));
  auto first = [&](Role r) {
    const auto t = textsOf(f.layout(), r);
    return t.empty() ? nullptr : t.front();
  };
  ASSERT_TRUE(first(Role::Title) && first(Role::Subtitle) && first(Role::Note) && first(Role::Footnote));
  EXPECT_EQ(first(Role::Title)->pt, 12);
  EXPECT_TRUE(first(Role::Title)->bold);
  EXPECT_EQ(first(Role::Subtitle)->pt, 10);
  EXPECT_EQ(first(Role::Note)->colour, f.style().theme.accent);
  EXPECT_EQ(first(Role::Footnote)->pt, 8.5);
  EXPECT_EQ(first(Role::Footnote)->colour, f.style().theme.muted);
  for (const auto& t : f.layout().texts) EXPECT_GE(t.pt, 8.5) << "no text below 0.85 of the body size: " << str(t);
  EXPECT_LT(first(Role::Title)->box.bottom(), first(Role::Note)->box.top());
  EXPECT_GT(first(Role::Footnote)->box.top(), f.layout().panels[0].bottom());
}

TEST(SceneFigure, EmptyPanelsShowTheirTextInsideTheirFrame) {
  const SceneFigure f(wordyScene(), style("single"));
  const QRectF frame = f.layout().panels[4];
  const auto lines = textsOf(f.layout(), Role::EmptyText);
  ASSERT_GT(lines.size(), 2u) << "the text wraps";
  QStringList all;
  for (const auto* t : lines) {
    EXPECT_TRUE(frame.contains(t->box)) << str(*t);
    all << t->text;
  }
  EXPECT_EQ(all.join(' ').toStdString(), wordyScene().panels[4].empty_text);
}

TEST(SceneFigure, MarksAndTheGroupStripSitOnTheLeftAndTopEdges) {
  const SceneFigure f(wordyScene(), style("double"));
  const QRectF p = f.layout().panels[1];
  // marks {0, 1, 128} on both edges, row mark 200 on the left only: 3 on top, 4 on the left.
  int top = 0, left = 0;
  for (const auto& m : f.layout().marks) {
    const QRectF b = m.shape.boundingRect();
    if (b.bottom() <= p.top() && b.center().x() > p.left() && b.center().x() < p.right()) ++top;
    if (b.right() <= p.left() && b.center().y() > p.top() && b.center().y() < p.bottom()) ++left;
  }
  EXPECT_EQ(top, 3);
  EXPECT_EQ(left, 4);
  // The strip: one pixel per pooled row, left of the image.
  bool strip = false;
  for (const auto& img : f.layout().images)
    strip |= img.image.width() == 1 && img.image.height() == 256 && img.box.right() <= p.left() && !img.framed;
  EXPECT_TRUE(strip);
}

scene::Scene checkerboard() {
  scene::Scene s;
  s.scale = {scene::ScaleMode::Log10, 0, 1, 1e-4f};
  scene::Panel p;
  p.title = "checkerboard";
  p.values = attn::Matrix(2, 2);
  p.values << 1e-4f, 1, 1, 1e-4f;
  p.source_rows = p.source_cols = 2;
  s.panels.push_back(p);
  return s;
}

TEST(SceneFigure, HeatmapsAreCrispInPng) {
  const SceneFigure f(checkerboard(), style("single"));
  const double dpi = 300, k = dpi / 72;
  const QImage img = renderImage(f, dpi);
  const QRectF panel = f.layout().panels[0];
  // Inside the panel (less its 0.5 pt frame and a pixel), only the two colours of the checkerboard.
  const QRect inside(QPoint(int(std::ceil((panel.left() + 0.5) * k)) + 1, int(std::ceil((panel.top() + 0.5) * k)) + 1),
                     QPoint(int(std::floor((panel.right() - 0.5) * k)) - 2, int(std::floor((panel.bottom() - 0.5) * k)) - 2));
  std::set<QRgb> colours;
  for (int y = inside.top(); y <= inside.bottom(); ++y)
    for (int x = inside.left(); x <= inside.right(); ++x) colours.insert(img.pixel(x, y));
  EXPECT_EQ(colours.size(), 2u) << "smoothing blends the cells";
  EXPECT_TRUE(colours.count(colourOf(scene::colormapAt(scene::Colormap::Viridis, 0)).rgb()));
  EXPECT_TRUE(colours.count(colourOf(scene::colormapAt(scene::Colormap::Viridis, 1)).rgb()));
}

// Each image XObject's dictionary in a PDF.
std::vector<std::string> pdfImages(const QByteArray& bytes) {
  const std::string pdf(bytes.constData(), std::size_t(bytes.size()));
  std::vector<std::string> out;
  for (std::size_t at = pdf.find("/Subtype /Image"); at != std::string::npos; at = pdf.find("/Subtype /Image", at + 1))
    out.push_back(pdf.substr(at, pdf.find(">>", at) - at));
  return out;
}

int field(const std::string& dict, const std::string& key) {
  std::smatch m;
  return std::regex_search(dict, m, std::regex(key + " (\\d+)")) ? std::stoi(m[1].str()) : -1;
}

TEST(SceneFigure, PdfEmbedsHeatmapsLosslessEnlargedAndWithoutInterpolation) {
  const SceneFigure f(paperScene(4), style("double"));
  const QByteArray pdf = pdfBytes(f);
  EXPECT_EQ(pdf.indexOf("/Interpolate true"), -1);
  const auto images = pdfImages(pdf);
  ASSERT_GE(images.size(), 4u);
  for (const auto& dict : images) {
    EXPECT_EQ(dict.find("/DCTDecode"), std::string::npos) << "JPEG blurs the cells' edges: " << dict;
    const int w = field(dict, "/Width"), h = field(dict, "/Height");
    EXPECT_GE(std::min(w, h), 1024) << dict;
    EXPECT_EQ(w % 256, 0) << "an integer multiple of the pooled size: " << dict;
  }
  // The 2×2 checkerboard: 512× its size.
  const auto tiny = pdfImages(pdfBytes(SceneFigure(checkerboard(), style("single"))));
  ASSERT_EQ(tiny.size(), 1u);
  EXPECT_EQ(field(tiny[0], "/Width"), 1024);
  EXPECT_EQ(internal::vectorUpscale(2, 2), 512);
  EXPECT_EQ(internal::vectorUpscale(2048, 2048), 1);
  EXPECT_EQ(internal::vectorUpscale(300, 256), 4);
  EXPECT_EQ(internal::vectorUpscale(2, 4096), 1) << "the long side stays within 4096";
}

TEST(SceneFigure, SvgKeepsTicksAndTitlesAsText) {
  const SceneFigure f(paperScene(2), style("double"));
  const QByteArray svg = svgBytes(f);
  QXmlStreamReader xml(svg);
  std::set<std::string> texts;
  int images = 0;
  bool in_text = false;
  QString current;
  while (!xml.atEnd()) {
    const auto token = xml.readNext();
    if (token == QXmlStreamReader::StartElement && xml.name() == QStringLiteral("text")) in_text = true, current.clear();
    if (token == QXmlStreamReader::StartElement && xml.name() == QStringLiteral("image")) ++images;
    if (token == QXmlStreamReader::Characters && in_text) current += xml.text();
    if (token == QXmlStreamReader::EndElement && xml.name() == QStringLiteral("text")) {
      texts.insert(current.trimmed().toStdString());
      in_text = false;
    }
  }
  ASSERT_FALSE(xml.hasError()) << xml.errorString().toStdString();
  for (const char* want : {"0", "100", "200", "256", "exact", "Longformer", "a", "b", "10⁻⁴", "Longformer  vs  exact"})
    EXPECT_TRUE(texts.count(want)) << "'" << want << "' is not text in the SVG";
  EXPECT_GE(images, 2);
  // Qt marks each image drawn without smoothing image-rendering="optimizeSpeed" (viewers: do not smooth it).
  EXPECT_EQ(svg.count("image-rendering=\"optimizeSpeed\""), images);
}

TEST(SceneFigure, SamplesRenderInEveryFormatAtTheirSize) {
  const std::vector<std::pair<std::string, scene::Scene>> scenes = {{"paper", paperScene(4)}, {"wordy", wordyScene()},
                                                                      {"checker", checkerboard()}};
  for (const auto& [name, s] : scenes)
    for (const char* width : {"single", "double", "slide"}) {
      const SceneFigure f(s, style(width));
      QImage png;
      ASSERT_TRUE(png.loadFromData(pngBytes(f, 150), "PNG"));
      EXPECT_EQ(png.width(), int(std::ceil(f.size().width() * 150 / 72)));
      EXPECT_EQ(pdfBytes(f).left(5), "%PDF-");
      writeSample(f, name + "-" + width);
    }
  scene::Scene dark = paperScene(3);
  writeSample(SceneFigure(dark, makeStyle("double", "", true)), "paper-double-dark");
}

}  // namespace
}  // namespace attnlab::fig
