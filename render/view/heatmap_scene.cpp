// Colour-scale arithmetic, legend ticks, layout and hit testing of the heatmap viewport.
#include "render/view/heatmap_scene.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace attnlab::view {

namespace {

// Room around the panels, logical pixels. Titles sit above, query ticks left, key ticks and
// captions below, the legend to the right.
constexpr float k_margin_left = 64;
constexpr float k_margin_top = 60;
constexpr float k_margin_bottom = 84;
constexpr float k_gap = 76;           // between panels: room for the next panel's query ticks
constexpr float k_legend_room = 132;  // bar + tick labels + legend title
constexpr float k_legend_bar_width = 18;

double log10Safe(double v) { return std::log10(std::max(v, std::numeric_limits<double>::min())); }

}  // namespace

std::pair<double, double> ColorScale::span() const {
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

SceneLayout layoutScene(float width, float height, const HeatmapScene& scene) {
  SceneLayout layout;
  const std::size_t n = scene.panels.size();
  const float room_w = width - k_margin_left - k_legend_room;
  const float room_h = height - k_margin_top - k_margin_bottom;
  float aspect_sum = 0;  // Σ width/height of the panels
  std::vector<float> aspects;
  for (const HeatmapImage& p : scene.panels) {
    float a = 1;
    if (p.source_rows > 0 && p.source_cols > 0)
      a = static_cast<float>(p.source_cols) / static_cast<float>(p.source_rows);
    a = std::clamp(a, 0.25f, 4.0f);  // keep extreme N×M shapes usable
    aspects.push_back(a);
    aspect_sum += a;
  }
  const float gaps = n > 1 ? k_gap * static_cast<float>(n - 1) : 0;
  float h = 0;
  if (n > 0) h = std::max(0.0f, std::min(room_h, (room_w - gaps) / aspect_sum));
  float total_w = gaps;
  for (float a : aspects) total_w += a * h;
  float x = k_margin_left + std::max(0.0f, (room_w - total_w) / 2);
  const float y = k_margin_top + std::max(0.0f, (room_h - h) / 2);
  for (float a : aspects) {
    layout.panels.push_back({std::floor(x), std::floor(y), std::floor(a * h), std::floor(h)});
    x += a * h + k_gap;
  }
  // The legend is as tall as the panels (or most of the view when there are none), beside them.
  const float legend_h = n > 0 ? h : std::max(0.0f, room_h * 0.6f);
  const float legend_x = n > 0 ? x - k_gap + 28 : width - k_legend_room + 28;
  layout.legend_bar = {std::floor(legend_x), std::floor(n > 0 ? y : (height - legend_h) / 2), k_legend_bar_width,
                       std::floor(legend_h)};
  return layout;
}

std::optional<HoverHit> hitTest(const HeatmapScene& scene, const SceneLayout& layout, float x, float y) {
  for (std::size_t k = 0; k < layout.panels.size() && k < scene.panels.size(); ++k) {
    const Rect& r = layout.panels[k];
    const HeatmapImage& p = scene.panels[k];
    if (!r.contains(x, y) || p.values.size() == 0 || r.w <= 0 || r.h <= 0) continue;
    HoverHit hit;
    hit.panel = static_cast<int>(k);
    const attn::Index rows = p.values.rows(), cols = p.values.cols();
    hit.pixel_row = static_cast<int>(
        std::clamp<attn::Index>(static_cast<attn::Index>((y - r.y) / r.h * static_cast<float>(rows)), 0, rows - 1));
    hit.pixel_col = static_cast<int>(
        std::clamp<attn::Index>(static_cast<attn::Index>((x - r.x) / r.w * static_cast<float>(cols)), 0, cols - 1));
    hit.value = p.values(hit.pixel_row, hit.pixel_col);
    // Pixel p of `out` covers entries [⌊p·N/out⌋, ⌊(p+1)·N/out⌋), at least one of them.
    auto cover = [](attn::Index pixel, attn::Index out, attn::Index total) {
      if (total <= 0) total = out;
      const attn::Index b = pixel * total / out;
      const attn::Index e = std::max(b + 1, (pixel + 1) * total / out);
      return attn::Range{b, std::min(e, total)};
    };
    hit.rows = cover(hit.pixel_row, rows, p.source_rows);
    hit.cols = cover(hit.pixel_col, cols, p.source_cols);
    return hit;
  }
  return std::nullopt;
}

}  // namespace attnlab::view
