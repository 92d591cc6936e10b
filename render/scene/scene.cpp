// Colour-scale arithmetic, legend ticks, layout and hit testing of the heatmap viewport.
#include "render/scene/scene.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>

namespace attnlab::scene {

namespace {

// Room around the panels, logical pixels. Titles sit above, query ticks left, key ticks and
// captions below, the legend to the right.
constexpr float k_margin_left = 64;
constexpr float k_margin_top = 72;  // the legend's two title lines sit 46 px above its bar, under the frame time (8–20)
constexpr float k_margin_bottom = 84;  // key ticks (46), one caption line and the footer
constexpr float k_caption_line = 18;   // each further caption line (the overlay's 14 px body font + 4)
constexpr float k_gap = 76;           // between panels: room for the next panel's query ticks
constexpr float k_shared_gap = 30;    // between panels that share their query axis (only the first labels it)
constexpr float k_legend_room = 132;  // bar + tick labels + legend title
constexpr float k_legend_bar_width = 18;
constexpr float k_footer_room = 22;
constexpr float k_caption_char = 7.4f;       // the body font's mean advance per character (14 px DejaVu Sans)

std::size_t utf8Length(const std::string& s) {
  std::size_t count = 0;
  for (unsigned char c : s) count += (c & 0xC0) != 0x80;
  return count;
}  // the footer line at the very bottom, once however many rows

double log10Safe(double v) { return std::log10(std::max(v, std::numeric_limits<double>::min())); }

}  // namespace

std::optional<ScaleMode> parseScaleMode(const std::string& name) {
  if (name == "linear") return ScaleMode::Linear;
  if (name == "log" || name == "log10") return ScaleMode::Log10;
  if (name == "rank") return ScaleMode::Rank;
  return std::nullopt;
}

std::vector<attn::Index> axisTicks(double lo, double hi, attn::Index count) {
  std::vector<attn::Index> ticks;
  if (count <= 0 || !(hi > lo)) return ticks;
  const double span = hi - lo;
  attn::Index step = 1;
  for (attn::Index mag = 1; double(step * 5) < span; mag *= 10) {
    for (attn::Index m : {1, 2, 5}) {
      step = m * mag;
      if (double(step * 5) >= span) break;
    }
  }
  const attn::Index first = static_cast<attn::Index>(std::ceil(lo / double(step) - 1e-9)) * step;
  for (attn::Index v = first; double(v) <= hi + 1e-9; v += step) ticks.push_back(v);
  // The whole axis: keep the end label, dropping the last regular tick when it would crowd it.
  if (lo <= 0 && hi >= double(count) && !ticks.empty() && ticks.back() != count) {
    if (count - ticks.back() < step / 2) ticks.pop_back();
    ticks.push_back(count);
  }
  return ticks;
}

std::pair<double, double> ColorScale::span() const {
  if (mode == ScaleMode::Rank) return {0.0, 1.0};
  if (mode == ScaleMode::Linear) return {lo, hi};
  const double f = std::max<double>(floor, std::numeric_limits<float>::min());
  return {std::max<double>(lo, f), std::max<double>(hi, f)};
}

double ColorScale::normalise(double value) const {
  if (std::isnan(value)) return value;
  double t = 0;
  if (mode == ScaleMode::Log10) {
    const auto [a, b] = span();
    const double f = std::max<double>(floor, std::numeric_limits<float>::min());
    t = (log10Safe(std::max(value, f)) - log10Safe(a)) / std::max(log10Safe(b) - log10Safe(a), 1e-12);
  } else if (mode == ScaleMode::Rank) {
    t = value;
  } else {
    t = (value - lo) / std::max<double>(hi - lo, 1e-30);
  }
  return std::clamp(t, 0.0, 1.0);
}

std::string formatValue(double value, int digits) {
  if (std::isnan(value)) return "NaN";
  if (value == 0) return "0";
  char buf[32];
  const double a = std::fabs(value);
  if (a >= 1e-3 && a < 1e4)
    std::snprintf(buf, sizeof buf, "%.*g", digits, value);
  else
    std::snprintf(buf, sizeof buf, "%.*e", std::max(0, digits - 2), value);
  return buf;
}

std::vector<LegendTick> legendTicks(const ColorScale& scale) {
  std::vector<LegendTick> ticks;
  const auto [a, b] = scale.span();
  auto add = [&](double v) { ticks.push_back({scale.normalise(v), v, formatValue(v, 3)}); };
  if (!(b > a)) {
    add(a);
    return ticks;
  }
  if (scale.mode == ScaleMode::Rank) {  // quartiles of the weights shown
    for (int q = 0; q <= 4; ++q) ticks.push_back({q / 4.0, q / 4.0, std::to_string(q * 25) + "%"});
    return ticks;
  }
  if (scale.mode == ScaleMode::Log10) {
    // Decades inside the range; thin them out when there are too many.
    const int first = static_cast<int>(std::ceil(std::log10(a) - 1e-9));
    const int last = static_cast<int>(std::floor(std::log10(b) + 1e-9));
    const int count = last - first + 1;
    const int stride = std::max(1, (count + 6) / 7);
    for (int e = first; e <= last; e += stride) {
      const double v = std::pow(10.0, e);
      char buf[16];
      std::snprintf(buf, sizeof buf, e == 0 ? "1" : "1e%d", e);
      ticks.push_back({scale.normalise(v), v, buf});
    }
  } else {
    // 1-2-5 steps giving 4 to 8 ticks.
    const double raw = (b - a) / 5;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
      step = m * mag;
      if (step >= raw) break;
    }
    for (double v = std::ceil(a / step - 1e-9) * step; v <= b + step * 1e-9; v += step)
      add(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  // Always label both ends, so the range is readable; drop a regular tick that would crowd one.
  const double near = 0.07, exact = 1e-6;
  if (!ticks.empty() && ticks.front().t > exact && ticks.front().t < near) ticks.erase(ticks.begin());
  if (ticks.empty() || ticks.front().t > exact) ticks.insert(ticks.begin(), {0.0, a, formatValue(a, 3)});
  if (ticks.size() > 1 && ticks.back().t < 1 - exact && ticks.back().t > 1 - near) ticks.pop_back();
  if (ticks.back().t < 1 - exact) ticks.push_back({1.0, b, formatValue(b, 3)});
  return ticks;
}

SceneLayout layoutSceneUnscaled(float width, float height, const Scene& scene) {
  SceneLayout layout;
  const std::size_t n = scene.panels.size();
  const float room_w = width - k_margin_left - k_legend_room;
  std::vector<float> aspects;  // width/height of each panel
  for (const Panel& p : scene.panels) {
    float a = 1;
    if (p.source_rows > 0 && p.source_cols > 0)
      a = static_cast<float>(p.source_cols) / static_cast<float>(p.source_rows);
    // Keep extreme shapes usable: a wide factor (Linformer's k×N projection, 1 : 8) beside two N×N panels
    // would otherwise leave them a sixth of the width each.
    a = std::clamp(a, 0.5f, 2.0f);
    aspects.push_back(a);
  }
  // Panels that show the same rows share one query axis: labelled on the first of a row only.
  bool shared = n > 1;
  for (const Panel& p : scene.panels)
    shared = shared && p.zoomable && !p.own_order && p.source_rows == scene.panels.front().source_rows &&
             p.shown_rows == scene.panels.front().shown_rows;
  const float gap = shared ? k_shared_gap : k_gap;
  layout.gap = gap;
  // Notes that change the picture sit above the footer, a line each.
  const float notes = k_caption_line * static_cast<float>(std::min<std::size_t>(scene.notes.size(), k_max_note_lines));
  // Captions stack under each panel (the headline, e_out with its scale, recall, a mechanism's own target, the
  // time), wrapped to the panel's width; a categorical legend takes a line, an own colour bar two. The panels
  // leave room for the longest stack, so it never runs under the footer. `panel_h` guesses the panels' height.
  auto captionRoom = [&](float panel_h) {
    std::size_t lines = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const Panel& p = scene.panels[k];
      const float wrap = std::max(60.0f, aspects[k] * panel_h + gap - 8);
      std::size_t count = p.categories.empty() ? 0 : 1;
      if (p.own_scale || p.signed_values) count += 2;
      for (const std::string& c : p.captions)
        count += std::size_t(std::max(1.0f, std::ceil(float(utf8Length(c)) * k_caption_char / wrap)));
      lines = std::max(lines, count);
    }
    return k_caption_line * static_cast<float>(lines > 1 ? lines - 1 : 0);
  };
  float captions = 0, room_h = 0, row_overhead = 0, h = 0;
  std::size_t rows = 1;
  // Rows and columns that give the panels the most height: one row for two or three panels in a wide view,
  // two or more for compare mode's four or five (each further row repeats the titles, ticks and captions).
  auto arrange = [&] {
    // The step bar takes a line of its own under the captions.
    room_h = height - k_margin_top - k_margin_bottom - captions - notes - (scene.steps.count > 0 ? 40.0f : 0.0f);
    row_overhead = k_margin_top + k_margin_bottom - k_footer_room + captions;
    rows = 1;
    h = 0;
    for (std::size_t r = 1; r <= std::max<std::size_t>(1, n); ++r) {
      const std::size_t cols = (n + r - 1) / r;
      float widest = 0;  // Σ aspects of the widest row
      for (std::size_t first = 0; first < n; first += cols) {
        float sum = 0;
        for (std::size_t k = first; k < std::min(n, first + cols); ++k) sum += aspects[k];
        widest = std::max(widest, sum);
      }
      const float gaps = cols > 1 ? gap * static_cast<float>(cols - 1) : 0;
      const float by_height = (room_h - row_overhead * static_cast<float>(r - 1)) / static_cast<float>(r);
      const float candidate = n > 0 ? std::max(0.0f, std::min(by_height, (room_w - gaps) / std::max(widest, 1e-3f))) : 0;
      if (candidate > h * 1.02f) {  // a clear gain only: fewer rows read more easily
        h = candidate;
        rows = r;
      }
    }
  };
  captions = captionRoom(std::min(height * 0.5f, room_w / float(std::max<std::size_t>(1, n))));
  arrange();
  captions = captionRoom(h);  // again, wrapped at the width the panels got
  arrange();
  const std::size_t cols = n > 0 ? (n + rows - 1) / rows : 0;
  const float grid_h = h * static_cast<float>(rows) + row_overhead * static_cast<float>(rows > 0 ? rows - 1 : 0);
  const float y = k_margin_top + std::max(0.0f, (room_h - grid_h) / 2);
  float x = k_margin_left;
  float right = k_margin_left;
  for (std::size_t first = 0; first < n; first += cols) {
    const std::size_t last = std::min(n, first + cols);
    float row_w = gap * static_cast<float>(last - first - 1);
    for (std::size_t k = first; k < last; ++k) row_w += aspects[k] * h;
    x = k_margin_left + std::max(0.0f, (room_w - row_w) / 2);
    const float row_y = y + static_cast<float>(first / cols) * (h + row_overhead);
    for (std::size_t k = first; k < last; ++k) {
      layout.panels.push_back({std::floor(x), std::floor(row_y), std::floor(aspects[k] * h), std::floor(h)});
      layout.row_labels.push_back(!shared || k == first);
      x += aspects[k] * h + gap;
    }
    right = std::max(right, x);
  }
  x = right;
  // The legend is as tall as the panels (or most of the view when there are none), beside them.
  const float legend_h = n > 0 ? std::min(grid_h, std::max(h, room_h * 0.6f)) : std::max(0.0f, room_h * 0.6f);
  const float legend_x = n > 0 ? x - gap + 28 : width - k_legend_room + 28;
  layout.legend_bar = {std::floor(legend_x), std::floor(n > 0 ? y : (height - legend_h) / 2), k_legend_bar_width,
                       std::floor(legend_h)};
  if (scene.steps.count > 0) {  // bottom right, on the footer's line
    constexpr float k_button = 30, k_button_gap = 4;
    float bx = width - 12 - 4 * k_button - 3 * k_button_gap;
    for (Rect& b : layout.step_buttons) {
      b = {std::floor(bx), std::floor(height - 36), k_button, 26};
      bx += k_button + k_button_gap;
    }
  }
  // While zoomed in, the minimap takes the lower part of the legend's column.
  if (n > 0 && !scene.view.full() && scene.minimap.values.size() > 0 && legend_h > 160) {
    const float side = std::floor(std::min(k_legend_room - 36, legend_h * 0.4f));
    layout.legend_bar.h = std::floor(legend_h - side - 40);
    layout.minimap = {std::floor(legend_x - 4), std::floor(y + legend_h - side), side, side};
  }
  return layout;
}

float uiScale(const Scene& scene) {
  return std::isfinite(scene.ui_scale) ? std::clamp(scene.ui_scale, 0.5f, 4.0f) : 1.0f;
}

SceneLayout layoutScene(float width, float height, const Scene& scene) {
  const float s = uiScale(scene);
  SceneLayout layout = layoutSceneUnscaled(width / s, height / s, scene);
  if (s == 1) return layout;
  auto scale = [s](Rect& r) {  // edges on whole screen pixels (sharp image edges in presenter mode)
    const float x0 = std::round(r.x * s), y0 = std::round(r.y * s);
    r = {x0, y0, std::round((r.x + r.w) * s) - x0, std::round((r.y + r.h) * s) - y0};
  };
  for (Rect& r : layout.panels) scale(r);
  scale(layout.legend_bar);
  scale(layout.minimap);
  for (Rect& r : layout.step_buttons) scale(r);
  return layout;
}

ViewWindow zoomView(const ViewWindow& v, double factor, double fx, double fy, double min_rows, double min_cols) {
  if (!(factor > 0) || !std::isfinite(factor)) return v;
  auto axis = [&](double a, double b, double f, double min_span) -> std::pair<double, double> {
    f = std::clamp(f, 0.0, 1.0);
    const double anchor = a + f * (b - a);
    const double span = std::clamp((b - a) / factor, std::clamp(min_span, 1e-9, 1.0), 1.0);
    double lo = anchor - f * span;
    lo = std::clamp(lo, 0.0, 1.0 - span);
    return {lo, lo + span};
  };
  ViewWindow out;
  std::tie(out.row0, out.row1) = axis(v.row0, v.row1, fy, min_rows);
  std::tie(out.col0, out.col1) = axis(v.col0, v.col1, fx, min_cols);
  return out;
}

ViewWindow panView(const ViewWindow& v, double dx, double dy) {
  auto axis = [](double a, double b, double d) -> std::pair<double, double> {
    const double span = b - a;
    const double lo = std::clamp(a + d * span, 0.0, std::max(0.0, 1.0 - span));
    return {lo, lo + span};
  };
  ViewWindow out;
  std::tie(out.row0, out.row1) = axis(v.row0, v.row1, dy);
  std::tie(out.col0, out.col1) = axis(v.col0, v.col1, dx);
  return out;
}

attn::Range viewRange(double f0, double f1, attn::Index count) {
  if (count <= 0) return {0, 0};
  const double c = static_cast<double>(count);
  attn::Index b = std::clamp<attn::Index>(static_cast<attn::Index>(std::floor(f0 * c + 1e-9)), 0, count - 1);
  attn::Index e = std::clamp<attn::Index>(static_cast<attn::Index>(std::ceil(f1 * c - 1e-9)), b + 1, count);
  return {b, e};
}

PanelSpan panelSpan(const Scene& scene, std::size_t k) {
  const Panel& p = scene.panels[k];
  const double rows = static_cast<double>(p.source_rows > 0 ? p.source_rows : p.values.rows());
  const double cols = static_cast<double>(p.source_cols > 0 ? p.source_cols : p.values.cols());
  if (!p.zoomable) return {0, rows, 0, cols};
  const ViewWindow& v = scene.view;
  return {v.row0 * rows, v.row1 * rows, v.col0 * cols, v.col1 * cols};
}

namespace {
/// The entries a panel's texture pools along one axis.
attn::Range shownOr(attn::Range shown, attn::Index total) { return shown.size() > 0 ? shown : attn::Range{0, total}; }
}  // namespace

std::array<float, 4> panelUv(const Scene& scene, std::size_t k) {
  const Panel& p = scene.panels[k];
  const PanelSpan s = panelSpan(scene, k);
  const attn::Range r = shownOr(p.shown_rows, p.source_rows > 0 ? p.source_rows : p.values.rows());
  const attn::Range c = shownOr(p.shown_cols, p.source_cols > 0 ? p.source_cols : p.values.cols());
  auto uv = [](double entry, attn::Range range) {
    return static_cast<float>((entry - static_cast<double>(range.begin)) / std::max<double>(1, static_cast<double>(range.size())));
  };
  return {uv(s.col0, c), uv(s.row0, r), uv(s.col1, c), uv(s.row1, r)};
}

StepAction stepActionAt(const SceneLayout& layout, float x, float y) {
  static constexpr StepAction k_actions[] = {StepAction::First, StepAction::Previous, StepAction::Play, StepAction::Next};
  for (std::size_t k = 0; k < layout.step_buttons.size(); ++k)
    if (layout.step_buttons[k].w > 0 && layout.step_buttons[k].contains(x, y)) return k_actions[k];
  return StepAction::None;
}

std::optional<HoverHit> hitTest(const Scene& scene, const SceneLayout& layout, float x, float y) {
  for (std::size_t k = 0; k < layout.panels.size() && k < scene.panels.size(); ++k) {
    const Rect& r = layout.panels[k];
    const Panel& p = scene.panels[k];
    if (!r.contains(x, y) || p.values.size() == 0 || r.w <= 0 || r.h <= 0) continue;
    HoverHit hit;
    hit.panel = static_cast<int>(k);
    const attn::Index rows = p.values.rows(), cols = p.values.cols();
    // The entry under the pointer, then the texture pixel that pools it.
    const PanelSpan s = panelSpan(scene, k);
    const double i = s.row0 + (y - r.y) / r.h * (s.row1 - s.row0), j = s.col0 + (x - r.x) / r.w * (s.col1 - s.col0);
    const attn::Range sr = shownOr(p.shown_rows, p.source_rows > 0 ? p.source_rows : rows);
    const attn::Range sc = shownOr(p.shown_cols, p.source_cols > 0 ? p.source_cols : cols);
    if (i < static_cast<double>(sr.begin) || i >= static_cast<double>(sr.end) || j < static_cast<double>(sc.begin) ||
        j >= static_cast<double>(sc.end))
      continue;  // zoomed past what the texture holds (until the new pooling arrives)
    hit.pixel_row = static_cast<int>(std::clamp<attn::Index>(
        static_cast<attn::Index>((i - static_cast<double>(sr.begin)) / static_cast<double>(sr.size()) * static_cast<double>(rows)), 0, rows - 1));
    hit.pixel_col = static_cast<int>(std::clamp<attn::Index>(
        static_cast<attn::Index>((j - static_cast<double>(sc.begin)) / static_cast<double>(sc.size()) * static_cast<double>(cols)), 0, cols - 1));
    hit.value = p.values(hit.pixel_row, hit.pixel_col);
    // Pixel p of `out` covers entries [⌊p·N/out⌋, ⌊(p+1)·N/out⌋), at least one of them.
    auto cover = [](attn::Index pixel, attn::Index out, attn::Index total) {
      if (total <= 0) total = out;
      const attn::Index b = pixel * total / out;
      const attn::Index e = std::max(b + 1, (pixel + 1) * total / out);
      return attn::Range{b, std::min(e, total)};
    };
    const attn::Range pr = cover(hit.pixel_row, rows, sr.size()), pc = cover(hit.pixel_col, cols, sc.size());
    hit.rows = {sr.begin + pr.begin, sr.begin + pr.end};
    hit.cols = {sc.begin + pc.begin, sc.begin + pc.end};
    return hit;
  }
  return std::nullopt;
}

}  // namespace attnlab::scene
