// A scene (render/scene: what the viewport shows) as a figure for a paper or a slide: panels in a grid that
// fills a chosen width, lettered a, b, c… in the scene's order, numeric token ticks on both axes, colour bars
// with decades on a log scale, legends for the kinds of panel present, and the scene's title, notes and
// footnotes, all at one font size. The height follows from the layout. The layout is computed once, as
// rectangles in points (exposed for tests: no text leaves the page or overlaps other text), and painting
// only draws it.
#pragma once
#include <QImage>
#include <QLineF>
#include <QPolygonF>
#include <optional>
#include <string>
#include <vector>

#include "app/figures/figure.h"
#include "render/scene/scene.h"

namespace attnlab::fig {

/// One column of a two-column paper (3.5 in), the full text width (7 in), and a slide: 10 in, the width a
/// 16:9 slide (13.33 × 7.5 in, PowerPoint's and Keynote's wide format) leaves inside its margins.
inline constexpr double k_single_width_pt = 252, k_double_width_pt = 504, k_slide_width_pt = 720;
/// Widths from this up get the slide's font size by default.
inline constexpr double k_slide_font_from_pt = k_slide_width_pt;

struct FigureStyle {
  double width_pt = k_double_width_pt;  ///< the page's width in points; its height follows from the layout
  double font_pt = 8;                   ///< body text; the title is 1.2×, ticks and captions 0.875×, footnotes 0.85×
  Theme theme = Theme::light();
};

/// "single" (252 pt), "double" (504 pt), "slide" (720 pt), or inches from 1 to 20 ("5", "5in", "4.5 in"),
/// in points; nothing for anything else.
std::optional<double> parseWidth(const std::string& text);
/// A font size in points from 5 to 36 ("9", "9pt"); nothing for anything else.
std::optional<double> parseFontSize(const std::string& text);
/// 8 pt (paper text is 9–10 pt, figure text should stay ≥ 7 pt) below the slide's width, 14 pt from it.
double defaultFontPt(double width_pt);
/// The style for a width ("double" when empty) and a font size (the width's default when empty); UserError
/// naming the accepted values for either out of range.
FigureStyle makeStyle(const std::string& width, const std::string& font_pt = "", bool dark = false);

/// What a figure draws, in points from the page's top-left.
struct FigureText {
  enum class Role { Title, Subtitle, Note, PanelLetter, PanelTitle, PanelSubtitle, Tick, AxisLabel, Caption,
                    EmptyText, LegendTitle, LegendTick, LegendName, Footnote, Placeholder };
  Role role = Role::Caption;
  QString text;
  QRectF box;  ///< the text's extent on the page (for vertical text, the rotated extent)
  double pt = 8;
  bool bold = false;
  bool vertical = false;  ///< read bottom to top (the y axis label)
  QColor colour;
};
struct FigureImage {
  QRectF box;
  QImage image;  ///< one pixel per pooled value (or per group row), drawn without smoothing
  bool framed = true;
};
struct FigureBar {  ///< a horizontal colour bar: the colormap from t = 0 (left) to 1 (right)
  QRectF box;
  scene::Colormap map = scene::Colormap::Viridis;
};
struct FigureSwatch {
  QRectF box;
  QColor colour;
};
struct FigureLine {
  QLineF line;
  QColor colour;
  double width = 0.5;
  bool dashed = false;
};
struct FigureMark {  ///< a filled triangle pointing at a special token
  QPolygonF shape;
  QColor colour;
};

struct SceneFigureLayout {
  QSizeF page;
  std::vector<FigureText> texts;
  std::vector<FigureImage> images;
  std::vector<FigureBar> bars;
  std::vector<FigureSwatch> swatches;
  std::vector<FigureLine> lines;
  std::vector<FigureMark> marks;
  std::vector<QRectF> panels;   ///< per scene panel: its image (or its empty frame)
  std::vector<QRectF> legends;  ///< each legend's block (title, bar or swatches, labels)
};

/// The letter of panel k (0-based): "a", "b", … "z", "aa", "ab", …
QString panelLetter(std::size_t k);

class SceneFigure : public Figure {
 public:
  SceneFigure(scene::Scene scene, FigureStyle style);

  QSizeF size() const override { return layout_.page; }
  void paint(QPainter& painter) const override;

  const scene::Scene& scene() const { return scene_; }
  const FigureStyle& style() const { return style_; }
  const SceneFigureLayout& layout() const { return layout_; }

 private:
  scene::Scene scene_;
  FigureStyle style_;
  SceneFigureLayout layout_;
};

}  // namespace attnlab::fig
