// The figure layer: one QPainter drawing path for the screen and for files, so an export looks like
// the screen. A Figure has a size in points (1/72 inch) and paints itself in those units; PNG output
// scales it to the chosen DPI, SVG and PDF keep axes and text as vectors (a heatmap's matrix is an
// embedded image).
#pragma once
#include <QByteArray>
#include <QColor>
#include <QImage>
#include <QPainter>
#include <QSizeF>
#include <QString>
#include <optional>
#include <string>
#include <vector>

#include "attention/types.h"
#include "render/scene/colormap.h"

namespace attnlab::fig {

struct Theme {
  QColor background, ink, muted, grid, empty;
  QColor accent = QColor(213, 94, 0);  ///< notes and token marks (Okabe–Ito vermillion)
  static Theme light();
  static Theme dark();
};

class Figure {
 public:
  virtual ~Figure() = default;
  virtual QSizeF size() const = 0;                  ///< points
  virtual void paint(QPainter& painter) const = 0;  ///< in points, origin top left
};

/// The figure as pixels: size × dpi / 72 (dpi 72 … 1200).
QImage renderImage(const Figure& figure, double dpi);
QByteArray pngBytes(const Figure& figure, double dpi);
QByteArray svgBytes(const Figure& figure);
QByteArray pdfBytes(const Figure& figure);
/// Writes PNG, SVG or PDF by the file's extension, to a temporary name renamed into place; UserError
/// for another extension, a DPI out of range, or a file that cannot be written.
void saveFigure(const Figure& figure, const std::string& path, double dpi = 144);
/// Same, atomically, for bytes already made.
void saveBytes(const std::string& path, const QByteArray& bytes);

// ---- curves ----------------------------------------------------------------------------------------

struct Series {
  QString name;
  std::vector<double> x, y;
  std::vector<double> lo, hi;  ///< optional error bars (same length as y)
  int style = 0;               ///< palette colour and marker (series k)
  bool dashed = false;
};

/// A reference line y = y0·(x / x0)^slope (a complexity's slope), drawn dashed and labelled.
struct Guide {
  QString label;
  double slope = 1, x0 = 1, y0 = 1;
};

/// A vertical marker (the crossover N).
struct Mark {
  double x = 0;
  QString label;
  int style = 0;
};

class CurveFigure : public Figure {
 public:
  QString title, subtitle, xlabel = "N (tokens)", ylabel;
  bool log_x = true, log_y = true;
  std::vector<Series> series;
  std::vector<Guide> guides;
  std::vector<Mark> marks;
  double hline = std::numeric_limits<double>::quiet_NaN();  ///< a horizontal reference (speed-up 1)
  std::vector<QString> footer;
  Theme theme = Theme::light();
  QSizeF plot_size{430, 300};

  QSizeF size() const override;
  void paint(QPainter& painter) const override;
};

/// The colour of series k (10 distinguishable colours, then they repeat with another marker).
QColor seriesColour(int k);

/// A colormap entry as a QColor.
QColor colourOf(scene::Rgb c);

}  // namespace attnlab::fig
