#include "app/figures/figure.h"

#include <QBuffer>
#include <QFont>
#include <QFontMetricsF>
#include <QPaintEngine>
#include <QPainterPath>
#include <QPdfWriter>
#include <QSvgGenerator>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "app/figures/figure_internal.h"
#include "attention/npy.h"

namespace attnlab::fig {

namespace internal {

QFont font(double pt, bool bold) {
  QFont f("DejaVu Sans");
  f.setPointSizeF(pt);
  f.setBold(bold);
  return f;
}

void setFont(QPainter& p, double pt, bool bold) { p.setFont(font(pt, bold)); }

QFontMetricsF metrics(const QFont& f) {
  static const QImage device = [] {
    QImage image(1, 1, QImage::Format_ARGB32);
    image.setDotsPerMeterX(int(std::lround(72.0 / 0.0254)));
    image.setDotsPerMeterY(int(std::lround(72.0 / 0.0254)));
    return image;
  }();
  return QFontMetricsF(f, &device);
}

std::vector<QString> wrapped(const QString& text, const QFont& f, double width) {
  const QFontMetricsF m = metrics(f);
  std::vector<QString> out;
  if (m.horizontalAdvance(text) <= width) return {text};
  // A word too wide for a line on its own is cut between characters (at least one a line).
  auto breakWord = [&](QString word) {
    while (word.size() > 1 && m.horizontalAdvance(word) > width) {
      qsizetype fit = 1;
      while (fit < word.size() && m.horizontalAdvance(word.left(fit + 1)) <= width) ++fit;
      out.push_back(word.left(fit));
      word = word.mid(fit);
    }
    return word;
  };
  QString current;
  for (const QString& word : text.split(' ')) {
    const QString candidate = current.isEmpty() ? word : current + ' ' + word;
    if (m.horizontalAdvance(candidate) <= width) {
      current = candidate;
      continue;
    }
    if (!current.isEmpty()) out.push_back(current);
    current = breakWord(word);
  }
  out.push_back(current);
  return out;
}

std::vector<QString> wrapped(const std::vector<QString>& lines, double pt, double width) {
  std::vector<QString> out;
  for (const QString& line : lines)
    for (QString& piece : wrapped(line, font(pt), width)) out.push_back(std::move(piece));
  return out;
}

QColor categoryColour(int k) { return colourOf(scene::categoricalPalette()[std::size_t(k) % 8]); }

int vectorUpscale(int w, int h) {
  if (w <= 0 || h <= 0) return 1;
  const int want = (1024 + std::min(w, h) - 1) / std::min(w, h);  // the short side reaches 1024
  const int cap = std::max(1, 4096 / std::max(w, h));               // the long side stays within 4096
  return std::clamp(want, 1, cap);
}

void drawImageSharp(QPainter& p, const QRectF& target, const QImage& img) {
  if (img.isNull() || target.isEmpty()) return;
  p.save();
  p.setRenderHint(QPainter::SmoothPixmapTransform, false);
  p.setRenderHint(QPainter::LosslessImageRendering, true);
  const QPaintEngine* engine = p.paintEngine();
  const bool raster = engine && (engine->type() == QPaintEngine::Raster || engine->type() == QPaintEngine::OpenGL2);
  if (raster) {
    // Whole device pixels: no edge pixel half-covered and blended with what lies under it.
    const QTransform to_device = p.deviceTransform();
    if (to_device.type() <= QTransform::TxScale) {
      const QRectF d = to_device.mapRect(target);
      const QRectF snapped(QPointF(std::round(d.left()), std::round(d.top())),
                           QPointF(std::round(d.right()), std::round(d.bottom())));
      p.setRenderHint(QPainter::Antialiasing, false);
      p.drawImage(to_device.inverted().mapRect(snapped), img);
    } else {
      p.drawImage(target, img);
    }
  } else {
    const int k = vectorUpscale(img.width(), img.height());
    p.drawImage(target, k == 1 ? img : img.scaled(img.width() * k, img.height() * k, Qt::IgnoreAspectRatio, Qt::FastTransformation));
  }
  p.restore();
}

}  // namespace internal

using namespace internal;

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

QString compact(double v) {
  if (!std::isfinite(v)) return "—";
  const double a = std::fabs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-3)) return QString::number(v, 'g', 2);
  return QString::number(v, 'g', a >= 1000 ? 5 : 3);
}

QString tokens(double n) {
  if (n >= 1024 && std::fmod(n, 1024) == 0) return QString::number(n / 1024) + "K";
  return QString::number(n, 'g', 6);
}

template <class Device>
void paintOn(Device& device, const Figure& figure, double scale) {
  QPainter p;
  if (!p.begin(&device)) throw attn::UserError("could not start drawing the figure (out of memory?)");
  p.setRenderHint(QPainter::Antialiasing);
  p.setRenderHint(QPainter::TextAntialiasing);
  p.scale(scale, scale);
  figure.paint(p);
  p.end();
}

}  // namespace

QColor colourOf(scene::Rgb c) {
  return QColor::fromRgbF(std::clamp(c.r, 0.f, 1.f), std::clamp(c.g, 0.f, 1.f), std::clamp(c.b, 0.f, 1.f));
}

QColor seriesColour(int k) {
  // Tableau 10: distinguishable, and still readable in grey.
  static const QColor colours[10] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                     QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75),
                                     QColor(227, 119, 194), QColor(127, 127, 127), QColor(188, 189, 34),
                                     QColor(23, 190, 207)};
  return colours[std::size_t(k) % 10];
}

Theme Theme::light() { return {QColor(255, 255, 255), QColor(30, 30, 34), QColor(105, 105, 112), QColor(225, 225, 230), QColor(26, 26, 31)}; }
Theme Theme::dark() {
  return {QColor(24, 24, 28), QColor(232, 232, 236), QColor(160, 160, 168), QColor(60, 60, 68), QColor(8, 8, 10), QColor(240, 150, 60)};
}

// ---- output ----------------------------------------------------------------------------------------

QImage renderImage(const Figure& figure, double dpi) {
  if (!(dpi >= 36 && dpi <= 1200)) {
    char value[32];
    std::snprintf(value, sizeof value, "%g", dpi);
    throw attn::UserError(std::string("--dpi must lie between 36 and 1200, not ") + value);
  }
  const double scale = dpi / 72.0;
  const QSize px(int(std::ceil(figure.size().width() * scale)), int(std::ceil(figure.size().height() * scale)));
  if (double(px.width()) * px.height() > 400e6) throw attn::UserError("the figure would be over 400 megapixels: lower --dpi");
  QImage img(px, QImage::Format_ARGB32_Premultiplied);
  if (img.isNull())
    throw attn::UserError("not enough memory for a " + std::to_string(px.width()) + "×" + std::to_string(px.height()) +
                          " image: lower --dpi");
  img.setDotsPerMeterX(int(std::lround(72.0 / 0.0254)));  // fonts in points = painter units
  img.setDotsPerMeterY(int(std::lround(72.0 / 0.0254)));
  img.fill(Qt::white);
  paintOn(img, figure, scale);
  QImage out = img.convertToFormat(QImage::Format_RGB32);
  if (out.isNull()) throw attn::UserError("not enough memory to convert the figure: lower --dpi");
  out.setDotsPerMeterX(int(std::lround(dpi / 0.0254)));  // the PNG carries its real resolution
  out.setDotsPerMeterY(int(std::lround(dpi / 0.0254)));
  return out;
}

QByteArray pngBytes(const Figure& figure, double dpi) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  if (!renderImage(figure, dpi).save(&buffer, "PNG")) throw attn::UserError("could not encode the figure as PNG");
  return bytes;
}

QByteArray svgBytes(const Figure& figure) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  QSvgGenerator svg;
  svg.setOutputDevice(&buffer);
  svg.setResolution(72);
  const QSizeF s = figure.size();
  svg.setSize(QSize(int(std::ceil(s.width())), int(std::ceil(s.height()))));
  svg.setViewBox(QRectF(QPointF(0, 0), s));
  svg.setTitle("attnlab figure");
  svg.setDescription("made with attnlab " ATTNLAB_VERSION);
  paintOn(svg, figure, 1.0);
  return bytes;
}

QByteArray pdfBytes(const Figure& figure) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  QPdfWriter pdf(&buffer);
  pdf.setResolution(72);
  pdf.setCreator("attnlab " ATTNLAB_VERSION);
  pdf.setTitle("attnlab figure");
  pdf.setPageSize(QPageSize(figure.size(), QPageSize::Point, QString(), QPageSize::ExactMatch));
  pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
  paintOn(pdf, figure, 1.0);
  return bytes;
}

void saveBytes(const std::string& path, const QByteArray& bytes) {
  // An empty figure is a failure upstream: never put it in place of a good file.
  if (bytes.isEmpty()) throw attn::UserError("the figure for '" + path + "' came out empty; nothing was written");
  attn::writeFileAtomically(path, std::string(bytes.constData(), std::size_t(bytes.size())));
}

void saveFigure(const Figure& figure, const std::string& path, double dpi) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".png") saveBytes(path, pngBytes(figure, dpi));
  else if (ext == ".svg") saveBytes(path, svgBytes(figure));
  else if (ext == ".pdf") saveBytes(path, pdfBytes(figure));
  else throw attn::UserError("cannot tell the format of '" + path + "': name it .png, .svg or .pdf");
}

// ---- curves ---------------------------------------------------------------------------------------

namespace {
constexpr double k_plot_left = 62, k_plot_top = 52, k_legend = 200;

struct Axis {
  double lo = 1, hi = 10;
  bool log = true;
  double to(double v, double a, double b) const {  // value → coordinate in [a, b]
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return a + t * (b - a);
  }
};

Axis fitAxis(std::vector<double> values, bool log, bool zero_based) {
  std::vector<double> ok;
  for (double v : values)
    if (std::isfinite(v) && (!log || v > 0)) ok.push_back(v);
  Axis a;
  a.log = log;
  if (ok.empty()) {
    a.lo = log ? 1 : 0;
    a.hi = 10;
    return a;
  }
  const auto [mn, mx] = std::minmax_element(ok.begin(), ok.end());
  if (log) {
    a.lo = std::pow(10.0, std::floor(std::log10(*mn) + 1e-9));
    a.hi = std::pow(10.0, std::ceil(std::log10(*mx) - 1e-9));
    if (a.hi <= a.lo) a.hi = a.lo * 10;
  } else {
    a.lo = zero_based ? std::min(0.0, *mn) : *mn;
    a.hi = *mx > a.lo ? *mx * 1.05 : a.lo + 1;
  }
  return a;
}

std::vector<double> logTicks(const Axis& a) {
  std::vector<double> t;
  const int d0 = int(std::floor(std::log10(a.lo) + 1e-9)), d1 = int(std::ceil(std::log10(a.hi) - 1e-9));
  const int step = std::max(1, (d1 - d0 + 5) / 6);
  for (int d = d0; d <= d1; d += step) t.push_back(std::pow(10.0, d));
  if (d1 - d0 <= 1)
    for (int d = d0; d < d1; ++d)
      for (double m : {2.0, 5.0}) t.push_back(m * std::pow(10.0, d));
  std::sort(t.begin(), t.end());
  return t;
}

void drawMarker(QPainter& p, QPointF c, int style, const QColor& colour) {
  p.setPen(QPen(colour, 1));
  p.setBrush(colour);
  const double r = 2.6;
  switch ((style / 10) % 3) {
    case 0: p.drawEllipse(c, r, r); break;
    case 1: p.drawRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r)); break;
    default: {
      QPainterPath tri;
      tri.moveTo(c.x(), c.y() - r * 1.2);
      tri.lineTo(c.x() + r * 1.1, c.y() + r);
      tri.lineTo(c.x() - r * 1.1, c.y() + r);
      tri.closeSubpath();
      p.drawPath(tri);
    }
  }
}
}  // namespace

QSizeF CurveFigure::size() const {
  const double width = k_plot_left + plot_size.width() + 16 + k_legend;
  return {width, k_plot_top + plot_size.height() + 40 + 14 * double(wrapped(footer, 8, width - 28).size()) + 10};
}

void CurveFigure::paint(QPainter& p) const {
  const QSizeF sz = size();
  p.fillRect(QRectF(QPointF(0, 0), sz), theme.background);
  p.setPen(theme.ink);
  setFont(p, 12, true);
  p.drawText(QRectF(14, 6, sz.width() - 28, 20), Qt::AlignLeft | Qt::AlignVCenter, title);
  setFont(p, 8.5);
  p.setPen(theme.muted);
  p.drawText(QRectF(14, 26, sz.width() - 28, 16), Qt::AlignLeft | Qt::AlignVCenter, subtitle);

  std::vector<double> xs, ys;
  for (const auto& s : series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
    for (std::size_t i = 0; i < s.lo.size() && i < s.y.size(); ++i) {
      ys.push_back(s.lo[i]);
      ys.push_back(s.hi[i]);
    }
  }
  if (std::isfinite(hline)) ys.push_back(hline);
  Axis ax = fitAxis(xs, log_x, false), ay = fitAxis(ys, log_y, true);
  if (log_x && !xs.empty()) {  // x: exactly the data's range (N values), with a little air
    const auto [mn, mx] = std::minmax_element(xs.begin(), xs.end());
    ax.lo = *mn / 1.15;
    ax.hi = *mx * 1.15;
    if (ax.hi <= ax.lo) ax.hi = ax.lo * 2;
  }
  const QRectF plot(k_plot_left, k_plot_top, plot_size.width(), plot_size.height());
  auto X = [&](double v) { return ax.to(v, plot.left(), plot.right()); };
  auto Y = [&](double v) { return ay.to(v, plot.bottom(), plot.top()); };

  // Grid and ticks.
  setFont(p, 7.5);
  std::vector<double> xticks;
  if (log_x) {
    std::vector<double> u = xs;
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    const std::size_t step = std::max<std::size_t>(1, (u.size() + 7) / 8);
    for (std::size_t i = 0; i < u.size(); i += step) xticks.push_back(u[i]);
  } else {
    for (int k = 0; k <= 5; ++k) xticks.push_back(ax.lo + (ax.hi - ax.lo) * k / 5);
  }
  const std::vector<double> yticks = log_y ? logTicks(ay) : [&] {
    std::vector<double> t;
    for (int k = 0; k <= 5; ++k) t.push_back(ay.lo + (ay.hi - ay.lo) * k / 5);
    return t;
  }();
  for (double t : xticks) {
    p.setPen(QPen(theme.grid, 0.5));
    p.drawLine(QPointF(X(t), plot.top()), QPointF(X(t), plot.bottom()));
    p.setPen(theme.ink);
    p.drawText(QRectF(X(t) - 30, plot.bottom() + 3, 60, 12), Qt::AlignHCenter | Qt::AlignTop, log_x ? tokens(t) : compact(t));
  }
  for (double t : yticks) {
    if (t < ay.lo * 0.999 || t > ay.hi * 1.001) continue;
    p.setPen(QPen(theme.grid, 0.5));
    p.drawLine(QPointF(plot.left(), Y(t)), QPointF(plot.right(), Y(t)));
    p.setPen(theme.ink);
    p.drawText(QRectF(plot.left() - 58, Y(t) - 6, 54, 12), Qt::AlignRight | Qt::AlignVCenter, compact(t));
  }
  p.setPen(QPen(theme.ink, 0.8));
  p.setBrush(Qt::NoBrush);
  p.drawRect(plot);
  setFont(p, 8.5);
  p.drawText(QRectF(plot.left(), plot.bottom() + 16, plot.width(), 14), Qt::AlignHCenter | Qt::AlignTop,
             xlabel + (log_x ? "  (log)" : ""));
  p.save();
  p.translate(12, plot.bottom());
  p.rotate(-90);
  p.drawText(QRectF(0, -2, plot.height(), 14), Qt::AlignHCenter | Qt::AlignTop, ylabel + (log_y ? "  (log)" : ""));
  p.restore();

  p.save();
  p.setClipRect(plot);
  if (std::isfinite(hline)) {
    p.setPen(QPen(theme.ink, 0.9, Qt::DashLine));
    p.drawLine(QPointF(plot.left(), Y(hline)), QPointF(plot.right(), Y(hline)));
  }
  for (const auto& g : guides) {  // complexity slopes
    p.setPen(QPen(theme.muted, 0.8, Qt::DotLine));
    // Cut to the plot here: Qt 6.4's SVG generator ignores the clip, and a steep guide would cross the
    // title, labels and legend. y = y0·(x/x0)^slope: the x where it meets the bottom and top of the plot.
    double xa = ax.lo, xb = ax.hi;
    if (g.slope != 0 && g.y0 > 0 && g.x0 > 0 && ay.hi > 0) {
      auto xAt = [&](double y) { return g.x0 * std::pow(y / g.y0, 1 / g.slope); };
      // A linear axis from 0: every x > 0 is above its bottom.
      const double at_lo = ay.lo > 0 ? xAt(ay.lo) : (g.slope > 0 ? 0.0 : INFINITY), at_hi = xAt(ay.hi);
      xa = std::max(xa, std::min(at_lo, at_hi));
      xb = std::min(xb, std::max(at_lo, at_hi));
    }
    if (!(xa < xb)) continue;
    p.drawLine(QPointF(X(xa), Y(g.y0 * std::pow(xa / g.x0, g.slope))), QPointF(X(xb), Y(g.y0 * std::pow(xb / g.x0, g.slope))));
  }
  for (const auto& m : marks) {
    p.setPen(QPen(seriesColour(m.style), 1.0, Qt::DashDotLine));
    p.drawLine(QPointF(X(m.x), plot.top()), QPointF(X(m.x), plot.bottom()));
  }
  for (const auto& s : series) {
    const QColor colour = seriesColour(s.style);
    QPainterPath path;
    bool started = false;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const bool ok = std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && (!log_y || s.y[i] > 0);
      if (!ok) {
        started = false;
        continue;
      }
      const QPointF pt(X(s.x[i]), Y(s.y[i]));
      started ? path.lineTo(pt) : path.moveTo(pt);
      started = true;
    }
    p.setPen(QPen(colour, 1.4, s.dashed ? Qt::DashLine : Qt::SolidLine));
    p.setBrush(Qt::NoBrush);
    p.drawPath(path);
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      if (i < s.lo.size() && i < s.hi.size() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i]) &&
          (!log_y || s.lo[i] > 0)) {
        p.setPen(QPen(colour, 0.9));
        p.drawLine(QPointF(X(s.x[i]), Y(s.lo[i])), QPointF(X(s.x[i]), Y(s.hi[i])));
      }
      drawMarker(p, QPointF(X(s.x[i]), Y(s.y[i])), s.style, colour);
    }
  }
  p.restore();
  for (const auto& g : guides) {  // guide labels at the right edge
    const double yr = Y(g.y0 * std::pow(ax.hi / g.x0, g.slope));
    if (yr < plot.top() || yr > plot.bottom()) continue;
    setFont(p, 7);
    p.setPen(theme.muted);
    p.drawText(QRectF(plot.right() - 120, yr - 12, 116, 11), Qt::AlignRight | Qt::AlignVCenter, g.label);
  }
  for (std::size_t k = 0; k < marks.size(); ++k) {  // labels stacked, so close crossovers stay readable
    const auto& m = marks[k];
    setFont(p, 7.5);
    p.setPen(seriesColour(m.style));
    const double lx = X(m.x) + 120 > plot.right() ? X(m.x) - 123 : X(m.x) + 3;
    p.drawText(QRectF(lx, plot.top() + 2 + 11 * double(k % 8), 120, 11),
               (lx < X(m.x) ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignVCenter, m.label);
  }

  // Legend.
  double ly = plot.top();
  const double lx = plot.right() + 14;
  setFont(p, 8);
  for (const auto& s : series) {
    if (ly > plot.bottom() + 30) break;
    const QColor colour = seriesColour(s.style);
    p.setPen(QPen(colour, 1.4, s.dashed ? Qt::DashLine : Qt::SolidLine));
    p.drawLine(QPointF(lx, ly + 6), QPointF(lx + 18, ly + 6));
    drawMarker(p, QPointF(lx + 9, ly + 6), s.style, colour);
    p.setPen(theme.ink);
    p.drawText(QRectF(lx + 23, ly, k_legend - 26, 12), Qt::AlignLeft | Qt::AlignVCenter, s.name);
    ly += 14;
  }

  setFont(p, 8);
  p.setPen(theme.muted);
  double fy = plot.bottom() + 34;
  for (const auto& line : wrapped(footer, 8, sz.width() - 28)) {
    p.drawText(QRectF(14, fy, sz.width() - 28, 13), Qt::AlignLeft | Qt::AlignVCenter, line);
    fy += 14;
  }
}

}  // namespace attnlab::fig
