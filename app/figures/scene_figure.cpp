#include "app/figures/scene_figure.h"

#include <QLinearGradient>
#include <QPainterPath>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <regex>
#include <tuple>

#include "app/figures/figure_internal.h"

namespace attnlab::fig {

using namespace internal;

// ---- style ---------------------------------------------------------------------------------------------

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// A number, optionally followed by `unit` (spaces allowed); nothing for anything else.
std::optional<double> numberWithUnit(const std::string& text, const std::string& unit) {
  static const std::regex number(R"(^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, number)) return std::nullopt;
  if (!m[3].str().empty() && m[3].str() != unit) return std::nullopt;
  return std::stod(m[1].str());
}

}  // namespace

std::optional<double> parseWidth(const std::string& text) {
  const std::string t = trimmed(text);
  if (t == "single") return k_single_width_pt;
  if (t == "double") return k_double_width_pt;
  if (t == "slide") return k_slide_width_pt;
  const auto inches = numberWithUnit(t, "in");
  if (!inches || *inches < 1 || *inches > 20) return std::nullopt;
  return *inches * 72;
}

std::optional<double> parseFontSize(const std::string& text) {
  const auto pt = numberWithUnit(trimmed(text), "pt");
  if (!pt || *pt < 5 || *pt > 36) return std::nullopt;
  return *pt;
}

double defaultFontPt(double width_pt) { return width_pt >= k_slide_font_from_pt ? 14 : 8; }

FigureStyle makeStyle(const std::string& width, const std::string& font_pt, bool dark) {
  FigureStyle s;
  const auto w = parseWidth(width.empty() ? "double" : width);
  if (!w)
    throw attn::UserError("figure width '" + width +
                          "' is not one of single (3.5 in), double (7 in), slide (10 in) or inches from 1 to 20");
  s.width_pt = *w;
  s.font_pt = defaultFontPt(*w);
  if (!font_pt.empty()) {
    const auto f = parseFontSize(font_pt);
    if (!f) throw attn::UserError("font size '" + font_pt + "' is not a size in points from 5 to 36");
    s.font_pt = *f;
  }
  s.theme = dark ? Theme::dark() : Theme::light();
  return s;
}

QString panelLetter(std::size_t k) {
  QString s;
  for (std::size_t n = k + 1; n > 0; n = (n - 1) / 26) s.prepend(QChar(char('a' + (n - 1) % 26)));
  return s;
}

// ---- layout --------------------------------------------------------------------------------------------

namespace {

using Role = FigureText::Role;

// Text in figures: DejaVu Sans without hinting, so an advance measured at 72 DPI is the advance drawn at any
// resolution, and a rectangle computed here is where the text lands.
QFont figureFont(double pt, bool bold) {
  QFont f = font(pt, bold);
  f.setHintingPreference(QFont::PreferNoHinting);
  return f;
}

QString superscript(int e) {
  static const char16_t digits[] = u"⁰¹²³⁴⁵⁶⁷⁸⁹";
  QString s = e < 0 ? QString(QChar(u'⁻')) : QString();
  const QString n = QString::number(std::abs(e));
  for (QChar c : n) s += QChar(digits[c.unicode() - '0']);
  return s;
}

// A number for a legend: "0", "0.25", "−0.03", "10⁻⁴", "3.2×10⁻⁵"; `powers` writes 1 as 10⁰ (log scales).
QString prettyNumber(double v, bool powers) {
  if (!std::isfinite(v)) return "—";
  if (v == 0) return "0";
  const QString sign = v < 0 ? QString(QChar(u'−')) : QString();
  const double a = std::fabs(v);
  int e = int(std::floor(std::log10(a) + 1e-9));
  double mantissa = a / std::pow(10.0, e);
  if (mantissa >= 9.95) mantissa /= 10, ++e;
  if (!powers && a >= 1e-3 && a < 1e4) return sign + QString::number(a, 'g', 3);
  const QString m = QString::number(mantissa, 'g', 2);
  if (m == "1") return sign + "10" + superscript(e);
  return sign + m + QChar(u'×') + "10" + superscript(e);
}

QString qs(const std::string& s) { return QString::fromStdString(s); }

attn::Range shownOr(attn::Range shown, attn::Index source, attn::Index pixels) {
  if (shown.size() > 0) return shown;
  return {0, source > 0 ? source : pixels};
}

enum class Kind { Empty, Shared, Categorical, Signed, Own };
Kind kindOf(const scene::Panel& p) {
  if (p.values.size() == 0) return Kind::Empty;
  if (!p.categories.empty()) return Kind::Categorical;
  if (p.signed_values) return Kind::Signed;
  if (p.own_scale) return Kind::Own;
  return Kind::Shared;
}

QImage panelImage(const scene::Scene& s, const scene::Panel& p, const Theme& theme) {
  const attn::Matrix& m = p.values;
  QImage img(int(m.cols()), int(m.rows()), QImage::Format_RGB32);
  const Kind kind = kindOf(p);
  for (int r = 0; r < img.height(); ++r) {
    auto* line = reinterpret_cast<QRgb*>(img.scanLine(r));
    for (int c = 0; c < img.width(); ++c) {
      const double v = m(r, c);
      switch (kind) {
        case Kind::Categorical: {
          const long k = std::isfinite(v) ? std::lround(v) : 0;
          line[c] = k <= 0 ? theme.empty.rgb() : categoryColour(int(k - 1)).rgb();
          break;
        }
        case Kind::Signed: {
          const double t = p.signed_range > 0 && std::isfinite(v) ? 0.5 + 0.5 * std::clamp(v / p.signed_range, -1.0, 1.0) : 0.5;
          line[c] = colourOf(scene::colormapAt(scene::Colormap::Diverging, t)).rgb();
          break;
        }
        case Kind::Own: line[c] = colourOf(scene::colormapAt(s.colormap, p.own_scale->normalise(v))).rgb(); break;
        default: line[c] = colourOf(scene::colormapAt(s.colormap, s.scale.normalise(v))).rgb(); break;
      }
    }
  }
  // A pixel map over its picture: (1 − α)·map + α·grey(photo), as on screen.
  if (p.picture && p.picture->height == m.rows() && p.picture->width == m.cols() && p.overlay_alpha > 0) {
    const double a = p.overlay_alpha;
    for (int r = 0; r < img.height(); ++r) {
      auto* line = reinterpret_cast<QRgb*>(img.scanLine(r));
      for (int c = 0; c < img.width(); ++c) {
        const double g = 255.0 * scene::pictureGrey(*p.picture, r, c) * a;
        auto mix = [&](int channel) { return std::clamp(int(std::lround((1 - a) * channel + g)), 0, 255); };
        line[c] = qRgb(mix(qRed(line[c])), mix(qGreen(line[c])), mix(qBlue(line[c])));
      }
    }
  }
  return img;
}

// Which of `boxes` (left to right or top to bottom, along one axis) get their label: every s-th for the
// smallest s that leaves `gap` between neighbours, always the first and the last (the axis end), dropping
// the regular labels that would crowd the last.
std::vector<bool> thinned(const std::vector<QRectF>& boxes, bool horizontal, double gap) {
  const std::size_t n = boxes.size();
  auto lo = [&](std::size_t i) { return horizontal ? boxes[i].left() : boxes[i].top(); };
  auto hi = [&](std::size_t i) { return horizontal ? boxes[i].right() : boxes[i].bottom(); };
  for (std::size_t stride = 1; stride <= std::max<std::size_t>(n, 1); ++stride) {
    std::vector<bool> keep(n, false);
    for (std::size_t i = 0; i < n; i += stride) keep[i] = true;
    if (n > 1) {
      keep[n - 1] = true;
      for (std::size_t i = n - 2; i > 0 && hi(i) + gap > lo(n - 1); --i) keep[i] = false;
    }
    bool ok = true;
    std::optional<std::size_t> last;
    for (std::size_t i = 0; i < n; ++i) {
      if (!keep[i]) continue;
      if (last && hi(*last) + gap > lo(i)) ok = false;
      last = i;
    }
    if (ok) return keep;
  }
  std::vector<bool> keep(n, false);
  if (n > 0) keep[0] = true;
  return keep;
}

class Builder {
 public:
  Builder(const scene::Scene& s, const FigureStyle& style, SceneFigureLayout& out)
      : s_(s), st_(style), out_(&out), f_(style.font_pt), small_(0.875 * style.font_pt) {}

  void build();

 private:
  const scene::Scene& s_;
  const FigureStyle& st_;
  SceneFigureLayout* out_;  // where items go (a legend block is first built apart, then moved into place)
  double f_, small_;

  QColor ink() const { return st_.theme.ink; }
  QColor muted() const { return st_.theme.muted; }

  double width(const QString& text, double pt, bool bold = false) const {
    return metrics(figureFont(pt, bold)).horizontalAdvance(text);
  }
  double lineHeight(double pt) const { return metrics(figureFont(pt, false)).height(); }
  double lineStep(double pt) const { return std::max(metrics(figureFont(pt, false)).lineSpacing(), lineHeight(pt)); }

  FigureText& text(Role role, const QString& t, QPointF top_left, double pt, bool bold, QColor colour) {
    out_->texts.push_back({role, t, QRectF(top_left, QSizeF(width(t, pt, bold), lineHeight(pt))), pt, bold, false, colour});
    return out_->texts.back();
  }
  // A line of text placed by a point and an alignment of its box to that point.
  FigureText& anchored(Role role, const QString& t, QPointF at, Qt::Alignment align, double pt, bool bold, QColor colour) {
    const double w = width(t, pt, bold), h = lineHeight(pt);
    double x = at.x(), y = at.y();
    if (align & Qt::AlignHCenter) x -= w / 2;
    if (align & Qt::AlignRight) x -= w;
    if (align & Qt::AlignVCenter) y -= h / 2;
    if (align & Qt::AlignBottom) y -= h;
    return text(role, t, {x, y}, pt, bold, colour);
  }
  // Wrapped lines from (x, y) in `w` points; returns the y under the last line. `centred`: each line centred.
  double paragraph(Role role, const QString& t, double x, double y, double w, double pt, bool bold, QColor colour,
                   bool centred = false) {
    if (t.isEmpty()) return y;
    for (const QString& line : wrapped(t, figureFont(pt, bold), w)) {
      const double lw = width(line, pt, bold);
      text(role, line, {centred ? x + (w - lw) / 2 : x, y}, pt, bold, colour);
      y += lineStep(pt);
    }
    return y - lineStep(pt) + lineHeight(pt);
  }
  double paragraphHeight(const QString& t, double w, double pt, bool bold = false) const {
    if (t.isEmpty()) return 0;
    const auto n = double(wrapped(t, figureFont(pt, bold), w).size());
    return (n - 1) * lineStep(pt) + lineHeight(pt);
  }

  void line(QPointF a, QPointF b, QColor c, double w = 0.5) { out_->lines.push_back({QLineF(a, b), c, w, false}); }

  struct PanelPlan;
  // min_gutter, min_pad: the room every panel leaves left and right of its image, so that all images of a
  // figure are the same size (their own room is at least that).
  PanelPlan plan(std::size_t k, double cell_w, double min_gutter = 0, double min_pad = 0) const;
  void placeBars(const scene::Panel& p, const PanelPlan& pl, const QRectF& frame);
  void placePanel(std::size_t k, const PanelPlan& pl, double x, double header_top, double image_top);
  double grid(double y, double left, double content_w);
  double legends(double y, double left, double content_w);
  // Legend blocks, drawn from (0, 0) into *out_.
  void colourBarBlock(const QString& title, const std::vector<scene::LegendTick>& ticks, scene::Colormap map,
                      bool rank, bool powers, double content_w);
  void categoricalBlock(const QString& title, const scene::Panel& p, double content_w);
};

struct Builder::PanelPlan {
  std::size_t index = 0;
  Kind kind = Kind::Empty;
  bool bars = false;       // a bar chart (Panel::bars) in the frame, with value labels on the left
  std::vector<double> bar_ticks;  // its labelled values: the bottom, 0 when inside, the top
  attn::Range rows, cols;
  std::vector<attn::Index> xticks, yticks;
  std::vector<QString> ylabel_lines;
  QString ylabel_above;    // in a narrow cell, the y label as a line above the image instead
  double header_h = 0;     // letter + title + subtitle
  double top_marks = 0;    // room above the image for column marks
  double gutter = 0;       // left of the image: axis label, tick labels, ticks, marks, strip
  double own_gutter = 0;   // what this panel's gutter needs (gutter may be wider, to match the others)
  double own_pad = 0;      // right of the image: half the last x tick label
  double ylabel_w = 0, yticks_w = 0, marks_w = 0, strip_w = 0;
  double top_strip = 0;  // a pixel map's strip along the top edge (Panel::edge_top)
  QSizeF image;            // the image (or the empty frame)
  double cell_w = 0;
  double axes_h = 0;       // tick labels and the x label under the image
  double captions_h = 0;   // the captions under those
  std::vector<QString> empty_lines;
};

Builder::PanelPlan Builder::plan(std::size_t k, double cell_w, double min_gutter, double min_pad) const {
  const scene::Panel& p = s_.panels[k];
  PanelPlan pl;
  pl.index = k;
  pl.cell_w = cell_w;
  pl.kind = kindOf(p);
  pl.bars = !p.bars.empty() && p.own_scale;
  pl.rows = shownOr(p.shown_rows, p.source_rows, p.values.rows());
  pl.cols = shownOr(p.shown_cols, p.source_cols, p.values.cols());
  const double tick_len = 0.35 * f_;
  const QString letter = panelLetter(k);
  const double indent = width(letter, f_, true) + 0.4 * f_;
  pl.header_h = std::max(lineHeight(f_), paragraphHeight(qs(p.title), cell_w - indent, f_));
  if (!p.subtitle.empty()) pl.header_h += paragraphHeight(qs(p.subtitle), cell_w, small_) + 0.1 * f_;
  // Room under the header for the top tick label, centred on the image's top edge.
  pl.header_h += pl.kind == Kind::Empty ? 0.35 * f_ : lineHeight(small_) / 2 + 0.2 * f_;

  const bool has_image = pl.kind != Kind::Empty || pl.bars;
  if (pl.bars) {  // entries along the bottom, values up the left
    pl.rows = {0, 1};
    pl.cols = {0, attn::Index(p.bars.size())};
    pl.xticks = scene::axisTicks(0, double(p.bars.size()), attn::Index(p.bars.size()));
    pl.bar_ticks = {p.own_scale->lo, p.own_scale->hi};
    if (p.own_scale->lo < 0 && p.own_scale->hi > 0) pl.bar_ticks.insert(pl.bar_ticks.begin() + 1, 0.0);
    for (double v : pl.bar_ticks) pl.yticks_w = std::max(pl.yticks_w, width(prettyNumber(v, false), small_));
  } else if (has_image) {
    pl.xticks = scene::axisTicks(double(pl.cols.begin), double(pl.cols.end), p.source_cols > 0 ? p.source_cols : p.values.cols());
    pl.yticks = scene::axisTicks(double(pl.rows.begin), double(pl.rows.end), p.source_rows > 0 ? p.source_rows : p.values.rows());
    for (attn::Index t : pl.yticks) pl.yticks_w = std::max(pl.yticks_w, width(QString::number(t), small_));
    auto within = [](attn::Index t, attn::Range r) { return t >= r.begin && t < r.end; };
    bool top = false, left = false;
    for (attn::Index t : p.marks) top |= within(t, pl.cols), left |= within(t, pl.rows);
    for (attn::Index t : p.row_marks) left |= within(t, pl.rows);
    top |= !p.pixel_marks.empty();  // a picked pixel is pointed at from the top and left edges
    left |= !p.pixel_marks.empty();
    pl.top_marks = top ? 0.6 * f_ : 0;
    pl.marks_w = left ? 0.6 * f_ : 0;
    pl.strip_w = p.row_groups.empty() && p.edge_left.empty() ? 0 : 0.7 * f_;
    pl.top_strip = p.edge_top.empty() ? 0 : 0.7 * f_;
    pl.top_marks += pl.top_strip;
  }
  // The right edge's tick label is centred on the edge: keep room for its half.
  if (!pl.xticks.empty()) pl.own_pad = width(QString::number(pl.xticks.back()), small_) / 2;
  const double right_pad = std::max(pl.own_pad, min_pad);
  // Aspect of the entries shown (N×N: square), kept within 1:2 … 2:1 as on screen.
  const double aspect =
      pl.bars && p.source_rows > 0 && p.source_cols > 0  // a bar chart takes the shape of the maps beside it
          ? std::clamp(double(p.source_cols) / double(p.source_rows), 0.5, 2.0)
          : std::clamp(double(std::max<attn::Index>(pl.cols.size(), 1)) / double(std::max<attn::Index>(pl.rows.size(), 1)), 0.5, 2.0);
  // The y axis label reads upwards along the image, wrapped into more lines when longer than the image is
  // tall: the fewest lines whose gutter leaves an image they fit along.
  auto size = [&](std::size_t ylabel_lines) {
    const double lines = double(ylabel_lines);
    pl.ylabel_w = lines > 0 ? (lines - 1) * lineStep(small_) + lineHeight(small_) + 0.25 * f_ : 0;
    pl.own_gutter = has_image ? pl.ylabel_w + pl.yticks_w + 0.15 * f_ + tick_len + pl.marks_w + pl.strip_w : 0;
    pl.gutter = std::max(pl.own_gutter, min_gutter);
    const double room = std::max(cell_w - pl.gutter - right_pad, 2 * f_);
    pl.image = aspect >= 1 ? QSizeF(room, room / aspect) : QSizeF(room * aspect, room);
  };
  size(0);
  if (has_image && !p.ylabel.empty()) {
    for (std::size_t lines = 1; lines <= 3; ++lines) {
      size(lines);
      pl.ylabel_lines = wrapped(qs(p.ylabel), figureFont(small_, false), pl.image.height());
      if (pl.ylabel_lines.size() <= lines && pl.image.width() >= 4 * f_) break;
    }
    if (pl.ylabel_lines.size() > 3 || pl.image.width() < 4 * f_) {
      // A narrow cell: the label goes above the image instead ("rows: query i"), wrapped to the cell.
      pl.ylabel_lines.clear();
      size(0);
      pl.ylabel_above = qs("rows: " + p.ylabel);
      pl.header_h += paragraphHeight(pl.ylabel_above, cell_w, small_) + 0.15 * f_;
    }
  }
  if (!has_image) {  // the frame, with its text wrapped inside; taller when the text needs it
    const double pad = 0.6 * f_;
    const QString t = qs(p.empty_text.empty() ? "nothing to show" : p.empty_text);
    pl.empty_lines = wrapped(t, figureFont(small_, false), pl.image.width() - 2 * pad);
    const double text_h = double(pl.empty_lines.size() - 1) * lineStep(small_) + lineHeight(small_);
    pl.image.setHeight(std::max(pl.image.height(), text_h + 2 * pad));
  }
  if (has_image) {
    pl.axes_h = tick_len + 0.2 * f_ + lineHeight(small_);
    if (!p.xlabel.empty()) pl.axes_h += 0.1 * f_ + paragraphHeight(qs(p.xlabel), pl.image.width(), small_);
  }
  for (std::size_t c = 0; c < p.captions.size(); ++c)
    pl.captions_h += (c == 0 ? 0.35 * f_ : 0.05 * f_) + paragraphHeight(qs(p.captions[c]), cell_w, small_);
  return pl;
}

void Builder::placePanel(std::size_t k, const PanelPlan& pl, double x, double header_top, double image_top) {
  const scene::Panel& p = s_.panels[k];
  const double tick_len = 0.35 * f_;
  // Header: the bold letter, the title beside it (wrapped with a hanging indent), the subtitle.
  const QString letter = panelLetter(k);
  text(Role::PanelLetter, letter, {x, header_top}, f_, true, ink());
  const double indent = width(letter, f_, true) + 0.4 * f_;
  double y = std::max(header_top + lineHeight(f_),
                      paragraph(Role::PanelTitle, qs(p.title), x + indent, header_top, pl.cell_w - indent, f_, false, ink()));
  if (!p.subtitle.empty()) y = paragraph(Role::PanelSubtitle, qs(p.subtitle), x, y + 0.1 * f_, pl.cell_w, small_, false, muted());
  if (!pl.ylabel_above.isEmpty()) paragraph(Role::AxisLabel, pl.ylabel_above, x, y + 0.15 * f_, pl.cell_w, small_, false, ink());

  const QRectF img(x + pl.gutter, image_top, pl.image.width(), pl.image.height());
  out_->panels.push_back(img);
  if (pl.bars) {
    placeBars(p, pl, img);
  } else if (pl.kind == Kind::Empty) {
    out_->lines.push_back({QLineF(img.topLeft(), img.topRight()), muted(), 0.6, true});
    out_->lines.push_back({QLineF(img.topRight(), img.bottomRight()), muted(), 0.6, true});
    out_->lines.push_back({QLineF(img.bottomRight(), img.bottomLeft()), muted(), 0.6, true});
    out_->lines.push_back({QLineF(img.bottomLeft(), img.topLeft()), muted(), 0.6, true});
    const double text_h = double(pl.empty_lines.size() - 1) * lineStep(small_) + lineHeight(small_);
    double ty = img.center().y() - text_h / 2;
    for (const QString& l : pl.empty_lines) {
      anchored(Role::EmptyText, l, {img.center().x(), ty}, Qt::AlignHCenter | Qt::AlignTop, small_, false, muted());
      ty += lineStep(small_);
    }
  } else {
    out_->images.push_back({img, panelImage(s_, p, st_.theme), true});
    // Ticks: tick t marks the start of entry t.
    auto xAt = [&](double t) { return img.left() + (t - double(pl.cols.begin)) / double(pl.cols.size()) * img.width(); };
    auto yAt = [&](double t) { return img.top() + (t - double(pl.rows.begin)) / double(pl.rows.size()) * img.height(); };
    const double left_edge = img.left() - pl.strip_w - pl.marks_w;  // ticks stop at the strip
    std::vector<QRectF> boxes;
    for (attn::Index t : pl.xticks) {
      const QString l = QString::number(t);
      const double w = width(l, small_);
      boxes.push_back(QRectF(xAt(double(t)) - w / 2, img.bottom() + tick_len + 0.2 * f_, w, lineHeight(small_)));
    }
    std::vector<bool> keep = thinned(boxes, true, 0.4 * f_);
    for (std::size_t i = 0; i < pl.xticks.size(); ++i) {
      const double tx = xAt(double(pl.xticks[i]));
      line({tx, img.bottom()}, {tx, img.bottom() + tick_len * (keep[i] ? 1.0 : 0.6)}, ink());
      if (keep[i]) text(Role::Tick, QString::number(pl.xticks[i]), boxes[i].topLeft(), small_, false, ink());
    }
    boxes.clear();
    for (attn::Index t : pl.yticks) {
      const QString l = QString::number(t);
      const double w = width(l, small_);
      boxes.push_back(QRectF(left_edge - tick_len - 0.15 * f_ - w, yAt(double(t)) - lineHeight(small_) / 2, w, lineHeight(small_)));
    }
    keep = thinned(boxes, false, 0.1 * f_);
    for (std::size_t i = 0; i < pl.yticks.size(); ++i) {
      const double ty = yAt(double(pl.yticks[i]));
      line({left_edge - tick_len * (keep[i] ? 1.0 : 0.6), ty}, {img.left() - pl.strip_w, ty}, ink());
      if (keep[i]) text(Role::Tick, QString::number(pl.yticks[i]), boxes[i].topLeft(), small_, false, ink());
    }
    // Axis labels: the x label centred under the tick labels, the y label reading upwards left of them.
    double by = img.bottom() + tick_len + 0.2 * f_ + lineHeight(small_) + 0.1 * f_;
    if (!p.xlabel.empty()) {
      for (const QString& l : wrapped(qs(p.xlabel), figureFont(small_, false), img.width())) {
        anchored(Role::AxisLabel, l, {img.center().x(), by}, Qt::AlignHCenter | Qt::AlignTop, small_, false, ink());
        by += lineStep(small_);
      }
    }
    double lx = x + pl.gutter - pl.own_gutter;  // next to the tick labels
    for (const QString& l : pl.ylabel_lines) {
      const double w = width(l, small_), h = lineHeight(small_);
      FigureText t{Role::AxisLabel, l, QRectF(lx, img.center().y() - w / 2, h, w), small_, false, true, ink()};
      out_->texts.push_back(t);
      lx += lineStep(small_);
    }
    // The group strip: a colour per pixel row, at the left edge.
    if (!p.row_groups.empty()) {
      QImage strip(1, int(p.row_groups.size()), QImage::Format_RGB32);
      for (int r = 0; r < strip.height(); ++r)
        strip.setPixel(0, r, p.row_groups[std::size_t(r)] < 0 ? st_.theme.background.rgb() : categoryColour(p.row_groups[std::size_t(r)]).rgb());
      out_->images.push_back({QRectF(img.left() - pl.strip_w, img.top(), 0.5 * f_, img.height()), strip, false});
    }
    // A pixel map's edge strips (Panel::edge_top / edge_left): the colormap on each strip's own range [0, max].
    auto edgeStrip = [&](const std::vector<float>& values, bool along_top) {
      float hi = 0;
      for (float v : values)
        if (std::isfinite(v)) hi = std::max(hi, v);
      const int count = int(values.size());
      QImage strip(along_top ? count : 1, along_top ? 1 : count, QImage::Format_RGB32);
      for (int e = 0; e < count; ++e) {
        const float v = values[std::size_t(e)];
        const double t = hi > 0 && std::isfinite(v) ? std::clamp(double(v) / hi, 0.0, 1.0) : 0.0;
        strip.setPixel(along_top ? e : 0, along_top ? 0 : e, colourOf(scene::colormapAt(s_.colormap, t)).rgb());
      }
      const QRectF where = along_top ? QRectF(img.left(), img.top() - pl.top_strip, img.width(), 0.5 * f_)
                                     : QRectF(img.left() - pl.strip_w, img.top(), 0.5 * f_, img.height());
      out_->images.push_back({where, strip, false});
    };
    if (!p.edge_top.empty()) edgeStrip(p.edge_top, true);
    if (!p.edge_left.empty() && p.row_groups.empty()) edgeStrip(p.edge_left, false);
    // Special tokens: triangles pointing at the token's centre, on the top edge (columns) and the left (rows).
    const double ms = 0.3 * f_;
    for (attn::Index t : p.marks) {
      if (t < pl.cols.begin || t >= pl.cols.end) continue;
      const double mx = xAt(double(t) + 0.5), tip = img.top() - pl.top_strip - 0.05 * f_;
      out_->marks.push_back({QPolygonF({QPointF(mx, tip), QPointF(mx - ms, tip - 1.6 * ms), QPointF(mx + ms, tip - 1.6 * ms)}), st_.theme.accent});
    }
    auto rowMark = [&](attn::Index t) {
      if (t < pl.rows.begin || t >= pl.rows.end) return;
      const double my = yAt(double(t) + 0.5), tip = img.left() - pl.strip_w - 0.05 * f_;
      out_->marks.push_back({QPolygonF({QPointF(tip, my), QPointF(tip - 1.6 * ms, my - ms), QPointF(tip - 1.6 * ms, my + ms)}), st_.theme.accent});
    };
    for (attn::Index t : p.marks) rowMark(t);
    for (attn::Index t : p.row_marks) rowMark(t);
    // Picked pixels of a pixel map: a white then a black line just outside the cell (its colour stays
    // readable), and triangles on the top and left edges pointing at its column and row.
    for (const scene::PixelMark& mk : p.pixel_marks) {
      const QRectF cell(QPointF(xAt(double(mk.x)), yAt(double(mk.y))), QPointF(xAt(double(mk.x) + 1), yAt(double(mk.y) + 1)));
      const double w = 0.08 * f_;
      for (const auto& [pad, colour] : {std::pair{1.5 * w, QColor(Qt::black)}, std::pair{0.5 * w, QColor(Qt::white)}}) {
        const QRectF b = cell.adjusted(-pad, -pad, pad, pad);
        const double e = w / 2;  // flat caps: the lines run past the corners by half their width
        out_->lines.push_back({QLineF(b.left() - e, b.top(), b.right() + e, b.top()), colour, w, false});
        out_->lines.push_back({QLineF(b.right(), b.top(), b.right(), b.bottom()), colour, w, false});
        out_->lines.push_back({QLineF(b.right() + e, b.bottom(), b.left() - e, b.bottom()), colour, w, false});
        out_->lines.push_back({QLineF(b.left(), b.bottom(), b.left(), b.top()), colour, w, false});
      }
      const double mx = cell.center().x(), my = cell.center().y(), top = img.top() - pl.top_strip - 0.05 * f_,
                   left = img.left() - pl.strip_w - 0.05 * f_;
      out_->marks.push_back({QPolygonF({QPointF(mx, top), QPointF(mx - ms, top - 1.6 * ms), QPointF(mx + ms, top - 1.6 * ms)}), st_.theme.accent});
      out_->marks.push_back({QPolygonF({QPointF(left, my), QPointF(left - 1.6 * ms, my - ms), QPointF(left - 1.6 * ms, my + ms)}), st_.theme.accent});
    }
  }
  // Captions under everything else of the panel.
  double cy = img.bottom() + pl.axes_h;
  for (std::size_t c = 0; c < p.captions.size(); ++c)
    cy = paragraph(Role::Caption, qs(p.captions[c]), x, cy + (c == 0 ? 0.35 * f_ : 0.05 * f_), pl.cell_w, small_, false, ink());
}

// A bar chart in the panel's frame: one bar per entry from the base (0, or the scale's bottom) to its value,
// coloured by that value on the panel's scale; value labels on the left, entries along the bottom.
void Builder::placeBars(const scene::Panel& p, const PanelPlan& pl, const QRectF& frame) {
  const scene::ColorScale& sc = *p.own_scale;
  const double tick_len = 0.35 * f_;
  auto yAt = [&](double v) { return frame.bottom() - sc.normalise(v) * frame.height(); };
  const double base = yAt(std::clamp(0.0, double(sc.lo), double(sc.hi)));
  const double step = frame.width() / double(p.bars.size()), gap = p.bars.size() > 1 ? std::min(0.15 * step, 0.1 * f_) : 0;
  for (std::size_t i = 0; i < p.bars.size(); ++i) {
    const double v = p.bars[i];
    if (!std::isfinite(v)) continue;
    const double top = yAt(v), x0 = frame.left() + double(i) * step + gap / 2;
    out_->swatches.push_back({QRectF(QPointF(x0, std::min(top, base)), QPointF(x0 + step - gap, std::max(top, base))),
                              colourOf(scene::colormapAt(s_.colormap, sc.normalise(v)))});
  }
  for (const auto& [a, b] : {std::pair{frame.topLeft(), frame.bottomLeft()}, std::pair{frame.bottomLeft(), frame.bottomRight()}})
    line(a, b, ink());
  line({frame.left(), base}, {frame.right(), base}, muted());
  for (double v : pl.bar_ticks) {
    const double ty = yAt(v);
    line({frame.left() - tick_len, ty}, {frame.left(), ty}, ink());
    const QString l = prettyNumber(v, false);
    text(Role::Tick, l, {frame.left() - tick_len - 0.15 * f_ - width(l, small_), ty - lineHeight(small_) / 2}, small_, false, ink());
  }
  std::vector<QRectF> boxes;
  for (attn::Index t : pl.xticks) {
    const QString l = QString::number(t);
    const double w = width(l, small_);
    boxes.push_back(QRectF(frame.left() + (double(t) + 0.5) * step - w / 2, frame.bottom() + tick_len + 0.2 * f_, w, lineHeight(small_)));
  }
  const std::vector<bool> keep = thinned(boxes, true, 0.4 * f_);
  for (std::size_t i = 0; i < pl.xticks.size(); ++i) {
    if (pl.xticks[i] >= attn::Index(p.bars.size())) continue;  // the end of the axis is no bar
    const double tx = frame.left() + (double(pl.xticks[i]) + 0.5) * step;
    line({tx, frame.bottom()}, {tx, frame.bottom() + tick_len * (keep[i] ? 1.0 : 0.6)}, ink());
    if (keep[i]) text(Role::Tick, QString::number(pl.xticks[i]), boxes[i].topLeft(), small_, false, ink());
  }
  double by = frame.bottom() + tick_len + 0.2 * f_ + lineHeight(small_) + 0.1 * f_;
  for (const QString& l : wrapped(qs(p.xlabel), figureFont(small_, false), frame.width())) {
    anchored(Role::AxisLabel, l, {frame.center().x(), by}, Qt::AlignHCenter | Qt::AlignTop, small_, false, ink());
    by += lineStep(small_);
  }
}

double Builder::grid(double y, double left, double content_w) {
  const std::size_t n = s_.panels.size();
  // At most 4 panels a row, each cell at least 12 em wide; one column of a paper takes 2.
  std::size_t per_row = std::size_t(std::clamp(std::floor(content_w / (12 * f_)), 1.0, 4.0));
  if (st_.width_pt < 360) per_row = std::min<std::size_t>(per_row, 2);
  const std::size_t rows = (n + per_row - 1) / per_row;
  per_row = (n + rows - 1) / rows;  // balanced: 3 panels in two rows are 2 + 1, 5 in two rows 3 + 2
  const double gap = f_;
  const double cell_w = (content_w - double(per_row - 1) * gap) / double(per_row);
  double gutter = 0, pad = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const PanelPlan pl = plan(k, cell_w);
    if (pl.kind != Kind::Empty || pl.bars) gutter = std::max(gutter, pl.own_gutter), pad = std::max(pad, pl.own_pad);
  }
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<PanelPlan> plans;
    for (std::size_t k = r * per_row; k < std::min(n, (r + 1) * per_row); ++k) plans.push_back(plan(k, cell_w, gutter, pad));
    double header = 0, top_marks = 0, bottom = 0;
    for (const auto& pl : plans) header = std::max(header, pl.header_h), top_marks = std::max(top_marks, pl.top_marks);
    const double image_top = y + header + top_marks;
    for (std::size_t c = 0; c < plans.size(); ++c) {
      placePanel(plans[c].index, plans[c], left + double(c) * (cell_w + gap), y, image_top);
      bottom = std::max(bottom, image_top + plans[c].image.height() + plans[c].axes_h + plans[c].captions_h);
    }
    y = bottom + (r + 1 < rows ? 1.2 * f_ : 0);
  }
  return y;
}

void Builder::colourBarBlock(const QString& title, const std::vector<scene::LegendTick>& ticks, scene::Colormap map,
                             bool rank, bool powers, double content_w) {
  std::vector<QString> labels;
  for (const auto& t : ticks) labels.push_back(rank ? qs(t.label) : prettyNumber(t.value, powers));
  const double first = labels.empty() ? 0 : width(labels.front(), small_) / 2;
  const double last = labels.empty() ? 0 : width(labels.back(), small_) / 2;
  const double bar_w = std::clamp(16 * f_, 4 * f_, std::max(4 * f_, content_w - first - last));
  double y = paragraph(Role::LegendTitle, title, 0, 0, std::max(bar_w + first + last, 8 * f_), small_, false, ink()) + 0.2 * f_;
  const QRectF bar(first, y, bar_w, 0.8 * f_);
  out_->bars.push_back({bar, map});
  std::vector<QRectF> boxes;
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    const double w = width(labels[i], small_);
    boxes.push_back(QRectF(bar.left() + ticks[i].t * bar.width() - w / 2, bar.bottom() + 0.45 * f_, w, lineHeight(small_)));
  }
  const std::vector<bool> keep = thinned(boxes, true, 0.5 * f_);
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    const double x = bar.left() + ticks[i].t * bar.width();
    line({x, bar.bottom()}, {x, bar.bottom() + 0.3 * f_ * (keep[i] ? 1.0 : 0.6)}, ink());
    if (keep[i]) text(Role::LegendTick, labels[i], boxes[i].topLeft(), small_, false, ink());
  }
}

void Builder::categoricalBlock(const QString& title, const scene::Panel& p, double content_w) {
  double y = paragraph(Role::LegendTitle, title, 0, 0, content_w, small_, false, ink()) + 0.25 * f_;
  const double sw = 0.8 * f_, sgap = 0.35 * f_, col_gap = 1.2 * f_;
  // Every name with its swatch (colours repeat every 8); past 24 names, a line says how many more there are.
  constexpr std::size_t k_shown = 24;
  struct Entry {
    QColor colour;
    std::vector<QString> lines;
    double w = 0;
  };
  std::vector<Entry> entries;
  const double name_w = std::max(2 * f_, content_w - sw - sgap);
  auto add = [&](QColor c, const std::string& name) {
    Entry e{c, wrapped(qs(name), figureFont(small_, false), name_w), 0};
    for (const QString& l : e.lines) e.w = std::max(e.w, sw + sgap + width(l, small_));
    entries.push_back(std::move(e));
  };
  for (std::size_t k = 0; k < std::min(p.categories.size(), k_shown); ++k) add(categoryColour(int(k)), p.categories[k]);
  add(st_.theme.empty, p.empty_label);
  double col_w = 0;
  for (const auto& e : entries) col_w = std::max(col_w, e.w);
  const std::size_t cols = std::max<std::size_t>(1, std::size_t(std::floor((content_w + col_gap) / (col_w + col_gap))));
  for (std::size_t i = 0; i < entries.size(); i += cols) {
    double row_h = 0;
    for (std::size_t c = 0; c < cols && i + c < entries.size(); ++c) {
      const Entry& e = entries[i + c];
      const double x = double(c) * (col_w + col_gap), h = lineHeight(small_);
      out_->swatches.push_back({QRectF(x, y + (h - sw) / 2, sw, sw), e.colour});
      double ly = y;
      for (const QString& l : e.lines) {
        text(Role::LegendName, l, {x + sw + sgap, ly}, small_, false, ink());
        ly += lineStep(small_);
      }
      row_h = std::max(row_h, ly - y);
    }
    y += row_h + 0.1 * f_;
  }
  if (p.categories.size() > k_shown)
    paragraph(Role::LegendName, QString("and %1 more (colours repeat every 8)").arg(p.categories.size() - k_shown), 0, y,
              content_w, small_, false, muted());
}

QRectF boundsOf(const SceneFigureLayout& l) {
  QRectF r;
  for (const auto& t : l.texts) r |= t.box;
  for (const auto& b : l.bars) r |= b.box;
  for (const auto& s : l.swatches) r |= s.box;
  for (const auto& ln : l.lines) r |= QRectF(ln.line.p1(), ln.line.p2()).normalized();
  return r;
}

void moveInto(SceneFigureLayout& to, SceneFigureLayout&& from, QPointF by) {
  for (auto& t : from.texts) t.box.translate(by), to.texts.push_back(std::move(t));
  for (auto& b : from.bars) b.box.translate(by), to.bars.push_back(b);
  for (auto& s : from.swatches) s.box.translate(by), to.swatches.push_back(s);
  for (auto& ln : from.lines) ln.line.translate(by), to.lines.push_back(ln);
}

double Builder::legends(double y, double left, double content_w) {
  // One legend per kind of panel present: the shared scale, each signed range, each panel on its own scale,
  // each distinct set of categories. Titles name their panels when there is more than one legend.
  struct Legend {
    std::vector<std::size_t> panels;
    std::function<void(const QString&)> draw;
    QString title;
  };
  std::vector<Legend> list;
  std::map<float, std::size_t> by_range;
  std::map<std::vector<std::string>, std::size_t> by_categories;
  for (std::size_t k = 0; k < s_.panels.size(); ++k) {
    const scene::Panel& p = s_.panels[k];
    switch (kindOf(p)) {
      case Kind::Empty: break;
      case Kind::Shared: {
        auto it = std::find_if(list.begin(), list.end(), [](const Legend& l) { return l.title == "\x01shared"; });
        if (it == list.end()) {
          list.push_back({{}, [this, content_w](const QString& t) {
                            colourBarBlock(t, scene::legendTicks(s_.scale), s_.colormap, s_.scale.mode == scene::ScaleMode::Rank,
                                           s_.scale.mode == scene::ScaleMode::Log10, content_w);
                          }, "\x01shared"});
          it = list.end() - 1;
        }
        it->panels.push_back(k);
        break;
      }
      case Kind::Signed: {
        auto [it, fresh] = by_range.emplace(p.signed_range, list.size());
        if (fresh) {
          const float r = p.signed_range > 0 ? p.signed_range : 1;
          list.push_back({{}, [this, r, content_w](const QString& t) {
                            scene::ColorScale sc{scene::ScaleMode::Linear, -r, r, 0};
                            colourBarBlock(t, scene::legendTicks(sc), scene::Colormap::Diverging, false, false, content_w);
                          }, qs(p.legend_title.empty() ? "signed value" : p.legend_title)});
        }
        list[it->second].panels.push_back(k);
        break;
      }
      case Kind::Own: {
        const scene::ColorScale sc = *p.own_scale;
        list.push_back({{k}, [this, sc, content_w](const QString& t) {
                          colourBarBlock(t, scene::legendTicks(sc), s_.colormap, sc.mode == scene::ScaleMode::Rank,
                                         sc.mode == scene::ScaleMode::Log10, content_w);
                        }, qs(p.legend_title.empty() ? p.title : p.legend_title)});
        break;
      }
      case Kind::Categorical: {
        std::vector<std::string> key = p.categories;
        key.push_back(p.empty_label);
        auto [it, fresh] = by_categories.emplace(key, list.size());
        if (fresh)
          list.push_back({{}, [this, k, content_w](const QString& t) { categoricalBlock(t, s_.panels[k], content_w); },
                          qs(p.legend_title.empty() ? p.title : p.legend_title)});
        list[it->second].panels.push_back(k);
        break;
      }
    }
  }
  if (list.empty()) return y;
  y += 1.0 * f_;
  double x = left, line_h = 0;
  for (Legend& l : list) {
    QString title = l.title == "\x01shared" ? qs(s_.legend_title) : l.title;
    if (list.size() > 1) {
      QStringList letters;
      for (std::size_t k : l.panels) letters << panelLetter(k);
      title = letters.join(", ") + ": " + title;
    }
    SceneFigureLayout block;
    SceneFigureLayout* keep = out_;
    out_ = &block;
    l.draw(title);
    out_ = keep;
    const QRectF b = boundsOf(block);
    if (x > left && x + b.width() > left + content_w) {  // next line of legends
      x = left;
      y += line_h + 0.8 * f_;
      line_h = 0;
    }
    const QPointF by(x - b.left(), y - b.top());
    out_->legends.push_back(b.translated(by));
    moveInto(*out_, std::move(block), by);
    x += b.width() + 2 * f_;
    line_h = std::max(line_h, b.height());
  }
  return y + line_h;
}

void Builder::build() {
  const double m = std::max(4.0, 0.75 * f_);
  const double content_w = st_.width_pt - 2 * m;
  double y = m;
  const double before = y;
  if (!s_.title.empty()) y = paragraph(Role::Title, qs(s_.title), m, y, content_w, 1.2 * f_, true, ink()) + 0.2 * f_;
  if (!s_.subtitle.empty()) y = paragraph(Role::Subtitle, qs(s_.subtitle), m, y, content_w, f_, false, muted()) + 0.2 * f_;
  for (const auto& note : s_.notes) y = paragraph(Role::Note, qs(note), m, y, content_w, f_, false, st_.theme.accent) + 0.15 * f_;
  if (y > before) y += 0.6 * f_;
  if (s_.panels.empty()) {
    y = paragraph(Role::Placeholder, qs(s_.placeholder.empty() ? "nothing to show" : s_.placeholder), m, y + 2 * f_, content_w,
                  f_, false, muted(), true) + 2 * f_;
  } else {
    y = grid(y, m, content_w);
    y = legends(y, m, content_w);
  }
  std::vector<std::string> foot = s_.footnotes;
  // scene.footer is the viewport's one-line summary: the subtitle already says it (inputs, backend, order).
  if (!foot.empty()) y += 0.8 * f_;
  for (const auto& line : foot) y = paragraph(Role::Footnote, qs(line), m, y, content_w, 0.85 * f_, false, muted()) + 0.1 * f_;
  out_->page = QSizeF(st_.width_pt, std::ceil(y + m));
}

}  // namespace

// ---- the figure ----------------------------------------------------------------------------------------

SceneFigure::SceneFigure(scene::Scene scene, FigureStyle style) : scene_(std::move(scene)), style_(std::move(style)) {
  if (!(style_.width_pt >= 72 && style_.width_pt <= 20 * 72))
    throw attn::UserError("a figure's width must lie between 1 and 20 inches");
  if (!(style_.font_pt >= 5 && style_.font_pt <= 36)) throw attn::UserError("a figure's font size must lie between 5 and 36 pt");
  Builder(scene_, style_, layout_).build();
}

void SceneFigure::paint(QPainter& p) const {
  const SceneFigureLayout& l = layout_;
  p.fillRect(QRectF(QPointF(0, 0), l.page), style_.theme.background);
  for (const auto& img : l.images) {
    drawImageSharp(p, img.box, img.image);
    if (img.framed) {
      p.setPen(QPen(style_.theme.ink, 0.5));
      p.setBrush(Qt::NoBrush);
      p.drawRect(img.box);
    }
  }
  for (const auto& bar : l.bars) {
    QLinearGradient g(bar.box.topLeft(), bar.box.topRight());
    constexpr int k_stops = 32;
    for (int i = 0; i <= k_stops; ++i) g.setColorAt(double(i) / k_stops, colourOf(scene::colormapAt(bar.map, double(i) / k_stops)));
    p.fillRect(bar.box, g);
    p.setPen(QPen(style_.theme.ink, 0.5));
    p.setBrush(Qt::NoBrush);
    p.drawRect(bar.box);
  }
  for (const auto& s : l.swatches) {
    p.setPen(QPen(style_.theme.muted, 0.4));
    p.setBrush(s.colour);
    p.drawRect(s.box);
  }
  for (const auto& ln : l.lines) {
    p.setPen(QPen(ln.colour, ln.width, ln.dashed ? Qt::DashLine : Qt::SolidLine, Qt::FlatCap));
    p.drawLine(ln.line);
  }
  p.setPen(Qt::NoPen);
  for (const auto& mk : l.marks) {
    p.setBrush(mk.colour);
    p.drawPolygon(mk.shape);
  }
  p.setBrush(Qt::NoBrush);
  for (const auto& t : l.texts) {
    p.setFont(figureFont(t.pt, t.bold));
    p.setPen(t.colour);
    constexpr int flags = Qt::AlignLeft | Qt::AlignTop | Qt::TextSingleLine | Qt::TextDontClip;
    if (!t.vertical) {
      p.drawText(t.box, flags, t.text);
      continue;
    }
    p.save();
    p.translate(t.box.left(), t.box.bottom());
    p.rotate(-90);
    p.drawText(QRectF(0, 0, t.box.height(), t.box.width()), flags, t.text);
    p.restore();
  }
}

}  // namespace attnlab::fig
