// The ImGui overlay of the heatmap viewport. Everything is drawn with the background draw list (no
// ImGui windows), so a frame shows exactly the current state: nothing appears a frame late, which
// keeps grab() and the tests deterministic.
#include "render/view/heatmap_overlay.h"

#include <imgui.h>
#include <imgui_internal.h>  // ImTextCharFromUtf8: the same UTF-8 decoding as the drawing

#include <QFile>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>

#include "render/scene/colormap.h"
#include "render/view/heatmap_window.h"

namespace attnlab::view {

namespace {

/// The overlay's colours for a dark or a light viewport (scene::Scene::light).
struct OverlayPalette {
  ImU32 text, dim, frame, tick, highlight, box;
};
const OverlayPalette k_dark_palette{IM_COL32(228, 231, 236, 255), IM_COL32(150, 156, 168, 255), IM_COL32(92, 98, 110, 255),
                                    IM_COL32(120, 126, 138, 255), IM_COL32(255, 255, 255, 235), IM_COL32(18, 20, 25, 238)};
const OverlayPalette k_light_palette{IM_COL32(28, 31, 38, 255),   IM_COL32(92, 98, 110, 255),  IM_COL32(150, 156, 166, 255),
                                     IM_COL32(130, 136, 146, 255), IM_COL32(20, 20, 24, 235),   IM_COL32(255, 255, 255, 245)};
// The colours of the frame being drawn (drawOverlay picks the palette; the GUI thread draws one at a time).
ImU32 k_text = k_dark_palette.text, k_dim = k_dark_palette.dim, k_frame = k_dark_palette.frame,
      k_tick = k_dark_palette.tick, k_highlight = k_dark_palette.highlight, k_box = k_dark_palette.box;
void usePalette(const OverlayPalette& p) {
  k_text = p.text, k_dim = p.dim, k_frame = p.frame, k_tick = p.tick, k_highlight = p.highlight, k_box = p.box;
}

/// Screen pixels per overlay unit (the scene's ui_scale), for snapping text to whole screen pixels.
float g_pixel = 1;

/// A font and the logical size to draw it at.
struct Face {
  ImFont* font;
  float size;
};
Face face(const OverlayFonts& fonts, ImFont* font) {
  ImFont* f = font ? font : ImGui::GetFont();
  return {f, f->FontSize * fonts.scale};
}

ImVec2 textSize(Face f, const std::string& text) { return f.font->CalcTextSizeA(f.size, FLT_MAX, 0.0f, text.c_str()); }

void text(ImDrawList* dl, Face f, ImVec2 pos, ImU32 colour, const std::string& s) {
  // On the screen's pixel grid: the overlay is drawn in units of 1/g_pixel screen pixels.
  dl->AddText(f.font, f.size, ImVec2(std::round(pos.x * g_pixel) / g_pixel, std::round(pos.y * g_pixel) / g_pixel),
              colour, s.c_str());
}

/// `s` shortened with an ellipsis to at most `max_width` pixels (UTF-8 aware).
std::string elided(Face f, const std::string& s, float max_width) {
  if (textSize(f, s).x <= max_width) return s;
  std::string cut = s;
  const std::string ellipsis = "\xE2\x80\xA6";
  while (!cut.empty() && textSize(f, cut + ellipsis).x > max_width) {
    // Drop the last whole character: back up over continuation bytes (10xxxxxx) to its first byte.
    std::size_t start = cut.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(cut[start]) & 0xC0) == 0x80) --start;
    cut.resize(start);
  }
  return cut + ellipsis;
}

/// Text centred horizontally on x, elided to `max_width`.
void textCentred(ImDrawList* dl, Face f, float x, float y, ImU32 colour, const std::string& s,
                 float max_width = FLT_MAX) {
  const std::string shown = elided(f, s, max_width);
  text(dl, f, ImVec2(x - textSize(f, shown).x / 2, y), colour, shown);
}

ImU32 colourAt(Colormap map, double t) {
  const Rgb c = colormapAt(map, t);
  return IM_COL32(static_cast<int>(std::lround(c.r * 255)), static_cast<int>(std::lround(c.g * 255)),
                  static_cast<int>(std::lround(c.b * 255)), 255);
}

/// Where entries of a panel land on screen (its span may be a zoomed part of the matrix).
struct PanelAxes {
  Rect r;
  PanelSpan s;
  float y(double entry) const { return r.y + r.h * static_cast<float>((entry - s.row0) / std::max(1e-12, s.row1 - s.row0)); }
  float x(double entry) const { return r.x + r.w * static_cast<float>((entry - s.col0) / std::max(1e-12, s.col1 - s.col0)); }
};

/// The entries (continuous) texture pixel `pixel` of `pixels` covers in `shown` (the GPU's nearest sampling).
std::pair<double, double> pixelEntries(int pixel, attn::Index pixels, attn::Range shown) {
  const double per = static_cast<double>(shown.size()) / static_cast<double>(std::max<attn::Index>(1, pixels));
  return {static_cast<double>(shown.begin) + per * pixel, static_cast<double>(shown.begin) + per * (pixel + 1)};
}

attn::Range shownRows(const scene::Panel& p) {
  return p.shown_rows.size() > 0 ? p.shown_rows : attn::Range{0, p.source_rows > 0 ? p.source_rows : p.values.rows()};
}
attn::Range shownCols(const scene::Panel& p) {
  return p.shown_cols.size() > 0 ? p.shown_cols : attn::Range{0, p.source_cols > 0 ? p.source_cols : p.values.cols()};
}

std::string rangeText(const char* name, attn::Range r) {
  char buf[64];
  if (r.size() <= 1)
    std::snprintf(buf, sizeof buf, "%s = %lld", name, static_cast<long long>(r.begin));
  else
    std::snprintf(buf, sizeof buf, "%s = %lld\xE2\x80\x93%lld", name, static_cast<long long>(r.begin),
                  static_cast<long long>(r.end - 1));
  return buf;
}

/// At most this many rectangles a panel's photo takes: ImGui's 16-bit indices hold 65 536 vertices a frame.
constexpr std::size_t k_max_picture_rects = 2500;

/// The picture's grey at `alpha` over a panel: runs of equal grey (32 levels: at α ≤ ½ a step is invisible)
/// merged along each row, in blocks of b×b pixels when that still takes more than k_max_picture_rects.
void drawPictureGrey(ImDrawList* dl, const attn::Picture& pic, const PanelAxes& axes, float alpha) {
  const int a = std::clamp(int(std::lround(alpha * 255)), 0, 255);
  auto level = [&](attn::Index y0, attn::Index x0, attn::Index b) {
    double sum = 0;
    int count = 0;
    for (attn::Index y = y0; y < std::min(pic.height, y0 + b); ++y)
      for (attn::Index x = x0; x < std::min(pic.width, x0 + b); ++x) sum += pictureGrey(pic, y, x), ++count;
    return std::clamp(int(std::lround(sum / std::max(1, count) * 31)), 0, 31);
  };
  struct Run {
    attn::Index y, x0, x1;
    int level;
  };
  std::vector<Run> runs;
  for (attn::Index b = 1; b <= std::max(pic.height, pic.width); b *= 2) {
    runs.clear();
    for (attn::Index y = 0; y < pic.height; y += b)
      for (attn::Index x = 0; x < pic.width; x += b) {
        const int l = level(y, x, b);
        if (!runs.empty() && runs.back().y == y && runs.back().level == l) runs.back().x1 = std::min(pic.width, x + b);
        else runs.push_back({y, x, std::min(pic.width, x + b), l});
      }
    if (runs.size() <= k_max_picture_rects) {
      for (const Run& r : runs) {
        const int g = int(std::lround(r.level * 255.0 / 31));
        dl->AddRectFilled(ImVec2(std::round(axes.x(double(r.x0))), std::round(axes.y(double(r.y)))),
                          ImVec2(std::round(axes.x(double(r.x1))), std::round(axes.y(double(std::min(pic.height, r.y + b))))),
                          IM_COL32(g, g, g, a));
      }
      return;
    }
  }
}

/// A bar chart (Panel::bars) in the panel's rectangle: one bar per entry from the base (0, or the scale's bottom)
/// to its value on the panel's own scale, coloured by it; the scale's ends (and 0) labelled on the left.
void drawBars(ImDrawList* dl, const scene::Scene& scene, const scene::Panel& panel, const Rect& r, const Face& small) {
  const scene::ColorScale& sc = *panel.own_scale;
  auto yAt = [&](double v) { return float(r.y + r.h - sc.normalise(v) * r.h); };
  const float base = yAt(std::clamp(0.0, double(sc.lo), double(sc.hi)));
  const float step = r.w / float(panel.bars.size()), gap = panel.bars.size() > 1 ? std::min(0.15f * step, 2.0f) : 0;
  for (std::size_t i = 0; i < panel.bars.size(); ++i) {
    if (!std::isfinite(panel.bars[i])) continue;
    const float top = yAt(panel.bars[i]), x0 = r.x + float(i) * step + gap / 2;
    dl->AddRectFilled(ImVec2(x0, std::min(top, base)), ImVec2(std::max(x0 + 1, x0 + step - gap), std::max(top, base)),
                      colourAt(scene.colormap, sc.normalise(panel.bars[i])));
  }
  dl->AddLine(ImVec2(r.x, base), ImVec2(r.x + r.w, base), k_tick);
  std::vector<double> labelled{sc.lo, sc.hi};
  if (sc.lo < 0 && sc.hi > 0) labelled.push_back(0);
  for (double v : labelled) {
    const float y = std::round(yAt(v));
    dl->AddLine(ImVec2(r.x - 5, y), ImVec2(r.x - 1, y), k_tick);
    const std::string label = formatValue(v, 3);
    const ImVec2 s = textSize(small, label);
    text(dl, small, ImVec2(r.x - 8 - s.x, y - s.y / 2), k_dim, label);
  }
  const attn::Index count = attn::Index(panel.bars.size());
  for (attn::Index t : axisTicks(0, double(count), count)) {
    if (t >= count) continue;
    const float x = std::round(r.x + (float(t) + 0.5f) * step);
    dl->AddLine(ImVec2(x, r.y + r.h + 1), ImVec2(x, r.y + r.h + 5), k_tick);
    textCentred(dl, small, x, r.y + r.h + 7, k_dim, std::to_string(t));
  }
  textCentred(dl, small, r.x + r.w / 2, r.y + r.h + 24, k_dim, panel.xlabel + " \xE2\x86\x92");
}

void drawPanel(ImDrawList* dl, const scene::Scene& scene, std::size_t index, const Rect& r, const OverlayFonts& fonts,
               bool row_labels, float gap) {
  const scene::Panel& panel = scene.panels[index];
  const PanelAxes axes{r, panelSpan(scene, index)};
  const Face title = face(fonts, fonts.title), body = face(fonts, fonts.body), small = face(fonts, fonts.small);
  const float cx = r.x + r.w / 2;
  // Titles may use the gap beside the panel; the subtitle stays clear of the query-axis label.
  // A title too wide for its room takes the subtitle's line too when the panel has none.
  const std::string heading = panel.tag.empty() ? panel.title : panel.tag + "  " + panel.title;
  const float room = r.w + std::max(gap, 16.0f) - 8;
  if (panel.subtitle.empty() && textSize(title, heading).x > room) {
    const ImVec2 size = title.font->CalcTextSizeA(title.size, FLT_MAX, room, heading.c_str());
    dl->AddText(title.font, title.size, ImVec2(std::round(cx - std::min(size.x, room) / 2), r.y - 50), k_text,
                heading.c_str(), nullptr, room);
  } else {
    textCentred(dl, title, cx, r.y - 46, k_text, heading, room);
  }
  if (!panel.subtitle.empty()) textCentred(dl, small, cx, r.y - 24, k_dim, panel.subtitle, room - 8);
  dl->AddRect(ImVec2(r.x - 1, r.y - 1), ImVec2(r.x + r.w + 1, r.y + r.h + 1), k_frame);
  // A pixel map over its picture: the photo's grey at overlay_alpha over the renderer's map, so the colour is
  // (1 − α)·map + α·grey(photo), as in the figures.
  if (panel.picture && panel.values.size() > 0 && panel.picture->height == panel.values.rows() &&
      panel.picture->width == panel.values.cols() && panel.overlay_alpha > 0) {
    drawPictureGrey(dl, *panel.picture, axes, panel.overlay_alpha);
  }
  // Picked pixels: a white then a black outline just outside the cell (its colour stays readable), and
  // triangles outside the top and left edges pointing at its column and row.
  for (const PixelMark& mark : panel.pixel_marks) {
    const float x0 = std::floor(axes.x(double(mark.x))), x1 = std::ceil(axes.x(double(mark.x + 1)));
    const float y0 = std::floor(axes.y(double(mark.y))), y1 = std::ceil(axes.y(double(mark.y + 1)));
    dl->AddRect(ImVec2(x0 - 3, y0 - 3), ImVec2(x1 + 3, y1 + 3), IM_COL32(0, 0, 0, 255), 0, 0, 2.0f);
    dl->AddRect(ImVec2(x0 - 1, y0 - 1), ImVec2(x1 + 1, y1 + 1), IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
    const float mx = (x0 + x1) / 2, my = (y0 + y1) / 2;
    // Past the edge strips when there are some (they take the 6 pixels next to the edge).
    const float top = panel.edge_top.empty() ? 0 : 7, left = panel.edge_left.empty() ? 0 : 7;
    dl->AddTriangleFilled(ImVec2(mx - 5, r.y - 11 - top), ImVec2(mx + 5, r.y - 11 - top), ImVec2(mx, r.y - 2 - top), k_highlight);
    dl->AddTriangleFilled(ImVec2(r.x - 11 - left, my - 5), ImVec2(r.x - 11 - left, my + 5), ImVec2(r.x - 2 - left, my), k_highlight);
  }
  // Edge strips of a pixel map (Kronecker's summaries): one cell per column along the top edge and per row down
  // the left edge, in the colormap on each strip's own range [0, max], as in the figures.
  auto edgeStrip = [&](const std::vector<float>& values, bool along_top) {
    float hi = 0;
    for (float v : values)
      if (std::isfinite(v)) hi = std::max(hi, v);
    for (std::size_t k = 0; k < values.size(); ++k) {
      const double t = hi > 0 && std::isfinite(values[k]) ? std::clamp(double(values[k]) / hi, 0.0, 1.0) : 0.0;
      const Rgb c = colormapAt(scene.colormap, t);
      const ImU32 col = IM_COL32(int(c.r * 255 + 0.5f), int(c.g * 255 + 0.5f), int(c.b * 255 + 0.5f), 255);
      if (along_top) {
        const float x0 = std::max(r.x, axes.x(double(k))), x1 = std::min(r.x + r.w, axes.x(double(k + 1)));
        if (x1 > x0) dl->AddRectFilled(ImVec2(x0, r.y - 7), ImVec2(x1, r.y - 2), col);
      } else {
        const float y0 = std::max(r.y, axes.y(double(k))), y1 = std::min(r.y + r.h, axes.y(double(k + 1)));
        if (y1 > y0) dl->AddRectFilled(ImVec2(r.x - 7, y0), ImVec2(r.x - 2, y1), col);
      }
    }
  };
  if (!panel.edge_top.empty()) edgeStrip(panel.edge_top, true);
  if (!panel.edge_left.empty() && panel.row_groups.empty()) edgeStrip(panel.edge_left, false);
  const bool bar_chart = !panel.bars.empty() && panel.own_scale;
  if (bar_chart) {
    drawBars(dl, scene, panel, r, small);
  } else if (panel.values.size() == 0) {
    const std::string& s = panel.empty_text.empty() ? std::string("no image") : panel.empty_text;
    const float wrap = std::max(40.0f, r.w - 24);
    const ImVec2 size = body.font->CalcTextSizeA(body.size, FLT_MAX, wrap, s.c_str());
    dl->AddText(body.font, body.size, ImVec2(std::round(cx - size.x / 2), std::round(r.y + r.h / 2 - size.y / 2)),
                k_dim, s.c_str(), nullptr, wrap);
  }
  // Axes: queries i down the left edge, keys j along the bottom; tick t marks the start of entry t.
  const attn::Index rows = panel.source_rows > 0 ? panel.source_rows : panel.values.rows();
  const attn::Index cols = panel.source_cols > 0 ? panel.source_cols : panel.values.cols();
  for (attn::Index t : axisTicks(axes.s.row0, axes.s.row1, rows)) {
    if (bar_chart) break;  // a bar chart labels its values and entries itself
    const float y = std::round(axes.y(static_cast<double>(t)));
    dl->AddLine(ImVec2(r.x - 5, y), ImVec2(r.x - 1, y), k_tick);
    if (!row_labels) continue;  // the row's first panel labels the shared axis
    const std::string label = std::to_string(t);
    const ImVec2 s = textSize(small, label);
    text(dl, small, ImVec2(r.x - 8 - s.x, y - s.y / 2), k_dim, label);
  }
  for (attn::Index t : axisTicks(axes.s.col0, axes.s.col1, cols)) {
    if (bar_chart) break;
    const float x = std::round(axes.x(static_cast<double>(t)));
    dl->AddLine(ImVec2(x, r.y + r.h + 1), ImVec2(x, r.y + r.h + 5), k_tick);
    textCentred(dl, small, x, r.y + r.h + 7, k_dim, std::to_string(t));
  }
  if (!bar_chart) textCentred(dl, small, cx, r.y + r.h + 24, k_dim, panel.xlabel + " \xE2\x86\x92");
  const std::string query = panel.ylabel + " \xE2\x86\x93";
  if (row_labels && !bar_chart) text(dl, small, ImVec2(r.x - 8 - textSize(small, query).x, r.y - 24), k_dim, query);
  // Group strip: the group of each pixel row in categorical colours, just left of the image.
  if (!panel.row_groups.empty() && panel.values.rows() > 0) {
    const attn::Index strip = static_cast<attn::Index>(panel.row_groups.size());
    for (size_t k = 0; k < panel.row_groups.size(); ++k) {
      if (panel.row_groups[k] < 0) continue;
      const auto [a, b] = pixelEntries(static_cast<int>(k), strip, shownRows(panel));
      const float y0 = std::max(r.y, axes.y(a)), y1 = std::min(r.y + r.h, axes.y(b));
      if (y1 <= y0) continue;
      const Rgb c = categoricalPalette()[size_t(panel.row_groups[k]) % categoricalPalette().size()];
      dl->AddRectFilled(ImVec2(r.x - 5, y0), ImVec2(r.x - 1, y1),
                        IM_COL32(int(c.r * 255 + 0.5f), int(c.g * 255 + 0.5f), int(c.b * 255 + 0.5f), 255));
    }
  }
  // The picked query row: a line across the panel and a marker outside its left edge.
  if (scene.selected_row >= 0 && panel.zoomable && !panel.own_order && scene.selected_row < rows) {
    const float y = std::round(axes.y(static_cast<double>(scene.selected_row) + 0.5));
    if (y >= r.y && y <= r.y + r.h) {
      dl->AddLine(ImVec2(r.x, y), ImVec2(r.x + r.w, y), IM_COL32(255, 255, 255, 150), 1.0f);
      dl->AddTriangleFilled(ImVec2(r.x - 14, y - 5), ImVec2(r.x - 14, y + 5), ImVec2(r.x - 6, y), IM_COL32(255, 80, 80, 255));
    }
  }
  // Marked tokens (global tokens, …): small triangles outside the top and left edges.
  const size_t most_marks = 512;
  for (size_t k = 0; k < panel.marks.size() && k < most_marks && !panel.own_order; ++k) {
    const attn::Index t = panel.marks[k];
    const float x = axes.x(static_cast<double>(t) + 0.5), y = axes.y(static_cast<double>(t) + 0.5);
    if (t < cols && x >= r.x && x <= r.x + r.w)
      dl->AddTriangleFilled(ImVec2(x - 4, r.y - 9), ImVec2(x + 4, r.y - 9), ImVec2(x, r.y - 2), k_highlight);
    if (t < rows && y >= r.y && y <= r.y + r.h)
      dl->AddTriangleFilled(ImVec2(r.x - 9, y - 4), ImVec2(r.x - 9, y + 4), ImVec2(r.x - 2, y), k_highlight);
  }
  for (size_t k = 0; k < panel.row_marks.size() && k < most_marks && !panel.own_order; ++k) {  // queries only
    const attn::Index t = panel.row_marks[k];
    const float y = axes.y(static_cast<double>(t) + 0.5);
    if (t < rows && y >= r.y && y <= r.y + r.h)
      dl->AddTriangleFilled(ImVec2(r.x - 9, y - 4), ImVec2(r.x - 9, y + 4), ImVec2(r.x - 2, y), k_highlight);
  }
  float y = r.y + r.h + 46;
  // Captions wrap to the panel's width (plus the gaps beside it): a long step caption shows in full.
  const float wrap = std::max(60.0f, r.w + std::max(gap, 16.0f) - 8);
  for (const std::string& line : panel.captions) {
    const ImVec2 size = body.font->CalcTextSizeA(body.size, FLT_MAX, wrap, line.c_str());
    const float width = std::min(size.x, wrap);
    dl->AddText(body.font, body.size, ImVec2(std::round(cx - width / 2), std::round(y)), k_text, line.c_str(), nullptr, wrap);
    y += size.y + 4;
  }
  // A panel on its own scale (a step's factor, a difference): its own colour bar under the captions.
  if ((panel.own_scale || panel.signed_values) && panel.values.size() > 0) {
    const float bw = std::min(r.w, 220.0f), bx = std::round(cx - bw / 2), bh = 10;
    const Colormap map = panel.signed_values ? Colormap::Diverging : scene.colormap;
    constexpr int k_slices = 48;
    for (int s = 0; s < k_slices; ++s) {
      const double t0 = double(s) / k_slices, t1 = double(s + 1) / k_slices;
      const ImU32 a = colourAt(map, t0), b = colourAt(map, t1);
      dl->AddRectFilledMultiColor(ImVec2(std::floor(bx + float(t0) * bw), y + 2), ImVec2(std::ceil(bx + float(t1) * bw), y + 2 + bh),
                                  a, b, b, a);
    }
    dl->AddRect(ImVec2(bx - 1, y + 1), ImVec2(bx + bw + 1, y + 3 + bh), k_frame);
    std::string lo, hi;
    if (panel.signed_values) {
      lo = "\xE2\x88\x92" + formatValue(panel.signed_range, 3);
      hi = "+" + formatValue(panel.signed_range, 3);
    } else {
      const auto [a, b] = panel.own_scale->span();
      lo = formatValue(a, 3);
      hi = formatValue(b, 3);
    }
    const float ty = y + bh + 5;
    text(dl, small, ImVec2(bx, ty), k_dim, lo);
    text(dl, small, ImVec2(bx + bw - textSize(small, hi).x, ty), k_dim, hi);
    if (!panel.legend_title.empty()) textCentred(dl, small, cx, ty, k_dim, panel.legend_title, std::max(20.0f, bw - 90));
    y += bh + 8 + small.size + 6;
  }
  // A categorical panel's legend: a swatch and a name per category, in rows under the panel.
  float x = r.x;
  for (size_t k = 0; k < panel.categories.size(); ++k) {
    const Rgb c = categoricalPalette()[k % categoricalPalette().size()];
    const ImU32 colour = IM_COL32(int(c.r * 255 + 0.5f), int(c.g * 255 + 0.5f), int(c.b * 255 + 0.5f), 255);
    const float w = 16 + textSize(body, panel.categories[k]).x + 14;
    if (x + w > r.x + r.w + 24 && x > r.x) {
      x = r.x;
      y += body.size + 6;
    }
    dl->AddRectFilled(ImVec2(x, y + 2), ImVec2(x + 11, y + 13), colour);
    text(dl, body, ImVec2(x + 16, y), k_text, panel.categories[k]);
    x += w;
  }
}

void drawLegend(ImDrawList* dl, const scene::Scene& scene, const Rect& bar, const OverlayFonts& fonts,
                const std::optional<float>& marker) {
  if (bar.h <= 8) return;
  const Face body = face(fonts, fonts.body), small = face(fonts, fonts.small);
  // The bar: bottom = 0, top = 1, in slices that interpolate between LUT entries like the shader.
  constexpr int k_slices = 64;
  const float bottom = bar.y + bar.h;
  for (int s = 0; s < k_slices; ++s) {
    const double t0 = static_cast<double>(s) / k_slices, t1 = static_cast<double>(s + 1) / k_slices;
    const float y0 = bottom - static_cast<float>(t1) * bar.h, y1 = bottom - static_cast<float>(t0) * bar.h;
    const ImU32 top = colourAt(scene.colormap, t1), low = colourAt(scene.colormap, t0);
    dl->AddRectFilledMultiColor(ImVec2(bar.x, std::floor(y0)), ImVec2(bar.x + bar.w, std::ceil(y1)), top, top, low,
                                low);
  }
  dl->AddRect(ImVec2(bar.x - 1, bar.y - 1), ImVec2(bar.x + bar.w + 1, bar.y + bar.h + 1), k_frame);
  for (const LegendTick& tick : legendTicks(scene.scale)) {
    const float y = std::round(bottom - static_cast<float>(tick.t) * bar.h);
    dl->AddLine(ImVec2(bar.x + bar.w + 1, y), ImVec2(bar.x + bar.w + 5, y), k_tick);
    text(dl, small, ImVec2(bar.x + bar.w + 8, y - small.size / 2), k_dim, tick.label);
  }
  text(dl, body, ImVec2(bar.x - 2, bar.y - 46), k_text, scene.legend_title);
  text(dl, small, ImVec2(bar.x - 2, bar.y - 24), k_dim,
       scene.scale.mode == ScaleMode::Log10 ? "log10 scale" : scene.scale.mode == ScaleMode::Rank ? "rank (percentile)" : "linear scale");
  if (marker) {
    // A small arrow on the bar's left edge at the hovered value.
    const float y = std::round(bottom - *marker * bar.h);
    dl->AddTriangleFilled(ImVec2(bar.x - 9, y - 5), ImVec2(bar.x - 9, y + 5), ImVec2(bar.x - 2, y), k_highlight);
  }
}

/// Outlines pixel (row, col) of a panel (at least 7 px wide so it stays visible at any zoom).
void highlightPixel(ImDrawList* dl, const scene::Scene& scene, std::size_t index, const Rect& r, int row, int col) {
  const scene::Panel& panel = scene.panels[index];
  const PanelAxes axes{r, panelSpan(scene, index)};
  const auto [i0, i1] = pixelEntries(row, panel.values.rows(), shownRows(panel));
  const auto [j0, j1] = pixelEntries(col, panel.values.cols(), shownCols(panel));
  float x0 = std::max(r.x, axes.x(j0)), y0 = std::max(r.y, axes.y(i0));
  float x1 = std::min(r.x + r.w, axes.x(j1)), y1 = std::min(r.y + r.h, axes.y(i1));
  const float px = x1 - x0, py = y1 - y0;
  const float grow_x = std::max(0.0f, (7 - px) / 2), grow_y = std::max(0.0f, (7 - py) / 2);
  x0 -= grow_x, x1 += grow_x, y0 -= grow_y, y1 += grow_y;
  dl->AddRect(ImVec2(std::floor(x0) - 1, std::floor(y0) - 1), ImVec2(std::ceil(x1) + 1, std::ceil(y1) + 1),
              IM_COL32(0, 0, 0, 200));
  dl->AddRect(ImVec2(std::floor(x0), std::floor(y0)), ImVec2(std::ceil(x1), std::ceil(y1)), k_highlight);
}

void drawReadout(ImDrawList* dl, const scene::Scene& scene, const SceneLayout& layout, const HoverHit& hit,
                 const PointerState& pointer, const OverlayFonts& fonts, float width, float height) {
  const Face title = face(fonts, fonts.title), body = face(fonts, fonts.body);
  const scene::Panel& here = scene.panels[static_cast<std::size_t>(hit.panel)];
  const bool pooled = hit.rows.size() > 1 || hit.cols.size() > 1;
  struct Line {
    std::string left, right;
    bool strong;
  };
  std::vector<Line> lines;
  lines.push_back({readoutAxisText(scene, here, true, hit.rows), "", false});
  lines.push_back({readoutAxisText(scene, here, false, hit.cols), "", false});
  // The groups (bucket, cluster) of i and j; for a pooled pixel, of its first query and key.
  const attn::Index groups = static_cast<attn::Index>(scene.token_groups.size());
  if (here.zoomable && !here.own_order && groups > 0 && hit.rows.begin < groups && hit.cols.begin < groups) {
    const int gi = scene.token_groups[size_t(hit.rows.begin)], gj = scene.token_groups[size_t(hit.cols.begin)];  // numbered from 1, as in every legend
    lines.push_back({scene.group_name + (pooled ? " (first)" : ""),
                     "i: " + std::to_string(gi + 1) + ", j: " + std::to_string(gj + 1) + (gi == gj ? "  same" : ""), false});
  }
  // The value in every panel at the same pixel (they share the grid when they share the shape).
  for (std::size_t k = 0; k < scene.panels.size(); ++k) {
    const scene::Panel& p = scene.panels[k];
    if (static_cast<int>(k) != hit.panel && (p.own_order || here.own_order)) continue;  // another token order
    if (p.values.rows() != here.values.rows() || p.values.cols() != here.values.cols() ||
        p.shown_rows.begin != here.shown_rows.begin || p.shown_cols.begin != here.shown_cols.begin)
      continue;
    highlightPixel(dl, scene, k, layout.panels[k], hit.pixel_row, hit.pixel_col);
    if (!p.categories.empty()) {
      const int c = static_cast<int>(std::lround(p.values(hit.pixel_row, hit.pixel_col)));
      lines.push_back({p.title, c >= 1 && c <= static_cast<int>(p.categories.size()) ? p.categories[size_t(c - 1)] : "—",
                       static_cast<int>(k) == hit.panel});
      continue;
    }
    const std::string name = p.title + (pooled ? " (" + p.pooling + ")" : "");
    const attn::Matrix& weights = p.raw_values.size() == p.values.size() && p.raw_values.size() > 0 ? p.raw_values : p.values;
    lines.push_back({name, formatValue(weights(hit.pixel_row, hit.pixel_col)), static_cast<int>(k) == hit.panel});
  }
  float left_w = 0, right_w = 0;
  for (const Line& l : lines) {
    left_w = std::max(left_w, textSize(body, l.left).x);
    right_w = std::max(right_w, textSize(body, l.right).x);
  }
  const float pad = 8, line_h = body.size + 3;
  const float box_w = pad * 2 + left_w + 16 + right_w;
  const float box_h = pad * 2 + line_h * static_cast<float>(lines.size()) + title.size + 4;
  float x = static_cast<float>(pointer.pos.x()) + 18, y = static_cast<float>(pointer.pos.y()) + 18;
  if (x + box_w > width - 4) x = static_cast<float>(pointer.pos.x()) - 18 - box_w;
  if (y + box_h > height - 4) y = static_cast<float>(pointer.pos.y()) - 18 - box_h;
  x = std::round(std::max(4.0f, x)), y = std::round(std::max(4.0f, y));
  dl->AddRectFilled(ImVec2(x, y), ImVec2(x + box_w, y + box_h), k_box, 4.0f);
  dl->AddRect(ImVec2(x, y), ImVec2(x + box_w, y + box_h), k_frame, 4.0f);
  text(dl, title, ImVec2(x + pad, y + pad), k_text, here.title);
  float ly = y + pad + title.size + 4;
  for (const Line& l : lines) {
    text(dl, body, ImVec2(x + pad, ly), l.strong ? k_text : k_dim, l.left);
    text(dl, body, ImVec2(x + box_w - pad - textSize(body, l.right).x, ly), l.strong ? k_text : k_dim, l.right);
    ly += line_h;
  }
}

}  // namespace

namespace {

// The characters the overlay's fonts are asked for (ImGui rasterises only these): Latin-1 and Latin
// Extended-A (Ŝ), combining accents (q̂, Q̃: drawn over the letter before them), Greek (τ, φ),
// phonetic modifier letters (Kᵀ, ᵢ), general punctuation (–, …, ·), superscripts and subscripts (x², k₁),
// letter-like symbols (ℓ, ℝ), arrows, maths operators (≤, ×, ∑), technical (⌈ ⌉) and geometric shapes
// (▶, ■). Anything else draws as '?': overlayMissingGlyphs() finds it.
const ImWchar k_glyph_ranges[] = {0x0020, 0x017F, 0x0300, 0x036F, 0x0370, 0x03FF, 0x1D00, 0x1DBF,
                                  0x2010, 0x205E, 0x2070, 0x209F, 0x2100, 0x214F, 0x2190, 0x21FF,
                                  0x2200, 0x22FF, 0x2300, 0x23FF, 0x25A0, 0x25FF, 0};

/// Adds the overlay's three faces to `atlas` (see loadOverlayFonts).
OverlayFonts addOverlayFonts(ImFontAtlas& atlas, float pixel_ratio, float oversize) {
  const char* regular_paths[] = {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                 "/usr/share/fonts/TTF/DejaVuSans.ttf",
                                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"};
  const char* bold_paths[] = {"/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                              "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
                              "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"};
  auto first = [](const auto& paths) -> const char* {
    for (const char* p : paths)
      if (QFile::exists(QString::fromUtf8(p))) return p;
    return nullptr;
  };
  const char* regular = first(regular_paths);
  const char* bold = first(bold_paths);
  OverlayFonts fonts;
  const float ratio = std::max(1.0f, pixel_ratio) * std::max(1.0f, oversize);
  ImFontConfig config;
  config.OversampleH = 2;
  config.OversampleV = 1;
  if (regular) {
    fonts.body = atlas.AddFontFromFileTTF(regular, 14.0f * ratio, &config, k_glyph_ranges);
    fonts.small = atlas.AddFontFromFileTTF(regular, 12.0f * ratio, &config, k_glyph_ranges);
    fonts.title = atlas.AddFontFromFileTTF(bold ? bold : regular, 16.0f * ratio, &config, k_glyph_ranges);
  }
  if (!fonts.body) {  // ImGui's own 13 px bitmap font, drawn 13 logical pixels high (blurrier on HiDPI)
    fonts = OverlayFonts{};
    if (atlas.Fonts.empty()) atlas.AddFontDefault();
    fonts.scale = 1.0f;
    return fonts;
  }
  fonts.scale = 1.0f / ratio;
  return fonts;
}

}  // namespace

OverlayFonts loadOverlayFonts(float pixel_ratio, float oversize) {
  return addOverlayFonts(*ImGui::GetIO().Fonts, pixel_ratio, oversize);
}

std::u32string overlayMissingGlyphs(const std::string& utf8) {
  // A private atlas with the overlay's faces, built once: no window or ImGui context needed.
  static ImFontAtlas* const atlas = [] {
    auto* a = new ImFontAtlas;  // lives as long as the program: the faces below point into it
    addOverlayFonts(*a, 1, 1);
    a->Build();
    return a;
  }();
  std::u32string missing;
  const char* const end = utf8.data() + utf8.size();
  for (const char* p = utf8.data(); p < end;) {
    unsigned int c = 0;
    const int bytes = ImTextCharFromUtf8(&c, p, end);
    p += std::max(1, bytes);
    if (c < 0x20) continue;  // line breaks: layout, not glyphs (ImWchar is 16 bits: nothing above 0xFFFF is drawn)
    const bool drawn = c <= 0xFFFF && std::all_of(atlas->Fonts.begin(), atlas->Fonts.end(), [c](ImFont* f) {
                         return f->FindGlyphNoFallback(static_cast<ImWchar>(c)) != nullptr;
                       });
    if (!drawn && missing.find(char32_t(c)) == std::u32string::npos) missing += char32_t(c);
  }
  return missing;
}

void drawStepBar(ImDrawList* dl, const scene::Scene& scene, const SceneLayout& layout, const PointerState& pointer,
                 const OverlayFonts& fonts) {
  const Face body = face(fonts, fonts.body);
  const StepAction hovered = pointer.inside ? stepActionAt(layout, float(pointer.pos.x()), float(pointer.pos.y()))
                                            : StepAction::None;
  static constexpr StepAction k_actions[] = {StepAction::First, StepAction::Previous, StepAction::Play, StepAction::Next};
  for (std::size_t k = 0; k < layout.step_buttons.size(); ++k) {
    const Rect& b = layout.step_buttons[k];
    const bool hot = hovered == k_actions[k];
    dl->AddRectFilled(ImVec2(b.x, b.y), ImVec2(b.x + b.w, b.y + b.h), hot ? IM_COL32(70, 78, 92, 255) : k_box, 4.0f);
    dl->AddRect(ImVec2(b.x, b.y), ImVec2(b.x + b.w, b.y + b.h), k_frame, 4.0f);
    const float cx = b.x + b.w / 2, cy = b.y + b.h / 2, s = 6;
    auto left = [&](float x) { dl->AddTriangleFilled(ImVec2(x + s, cy - s), ImVec2(x + s, cy + s), ImVec2(x, cy), k_text); };
    auto right = [&](float x) { dl->AddTriangleFilled(ImVec2(x, cy - s), ImVec2(x, cy + s), ImVec2(x + s, cy), k_text); };
    switch (k_actions[k]) {
      case StepAction::First:
        dl->AddRectFilled(ImVec2(cx - s - 2, cy - s), ImVec2(cx - s, cy + s), k_text);
        left(cx - s + 1);
        break;
      case StepAction::Previous:
        left(cx - s / 2 - 2);
        break;
      case StepAction::Play:
        if (scene.steps.playing) {  // pause: two bars
          dl->AddRectFilled(ImVec2(cx - 5, cy - s), ImVec2(cx - 2, cy + s), k_text);
          dl->AddRectFilled(ImVec2(cx + 2, cy - s), ImVec2(cx + 5, cy + s), k_text);
        } else {
          right(cx - s / 2);
        }
        break;
      case StepAction::Next:
        right(cx - s / 2);
        break;
      default:
        break;
    }
  }
  // Where the step-through is, left of the buttons.
  char where[64];
  if (scene.steps.current >= 0)
    std::snprintf(where, sizeof where, "step %d / %d", scene.steps.current + 1, scene.steps.count);
  else
    std::snprintf(where, sizeof where, "%d step%s", scene.steps.count, scene.steps.count == 1 ? "" : "s");
  std::string label = where;
  if (scene.steps.current >= 0 && !scene.steps.title.empty()) label += ": " + scene.steps.title;
  const Rect& first = layout.step_buttons[0];
  const std::string shown = elided(body, label, 320);
  text(dl, body, ImVec2(first.x - 10 - textSize(body, shown).x, first.y + (first.h - body.size) / 2), k_text, shown);
}

/// The help: a centred box of keys and what they do, in as many columns as fit.
void drawHelp(ImDrawList* dl, const scene::Scene& scene, const OverlayFonts& fonts, float width, float height) {
  const Face title = face(fonts, fonts.title), body = face(fonts, fonts.body);
  float keys_w = 0, what_w = 0;
  for (const auto& [keys, what] : scene.help) {
    keys_w = std::max(keys_w, textSize(body, keys).x);
    what_w = std::max(what_w, textSize(body, what).x);
  }
  const float pad = 16, line_h = body.size + 5, column_w = keys_w + 18 + what_w, gap = 32;
  const int rows_fit = std::max(1, int((height - 2 * pad - title.size - 40) / line_h));
  const int columns = std::min(3, std::max(1, int((scene.help.size() + size_t(rows_fit) - 1) / size_t(rows_fit))));
  const int rows = int((scene.help.size() + size_t(columns) - 1) / size_t(columns));
  const float box_w = std::min(width - 16, 2 * pad + float(columns) * column_w + float(columns - 1) * gap);
  const float box_h = std::min(height - 16, 2 * pad + title.size + 14 + float(rows) * line_h);
  const float x0 = std::round((width - box_w) / 2), y0 = std::round((height - box_h) / 2);
  dl->AddRectFilled(ImVec2(x0, y0), ImVec2(x0 + box_w, y0 + box_h), k_box, 6.0f);
  dl->AddRect(ImVec2(x0, y0), ImVec2(x0 + box_w, y0 + box_h), k_frame, 6.0f);
  text(dl, title, ImVec2(x0 + pad, y0 + pad), k_text, "Keyboard and mouse  (F1 or Esc closes)");
  for (size_t k = 0; k < scene.help.size(); ++k) {
    const int column = int(k) / rows, row = int(k) % rows;
    const float x = x0 + pad + float(column) * (column_w + gap), y = y0 + pad + title.size + 14 + float(row) * line_h;
    if (y + line_h > y0 + box_h) continue;
    text(dl, body, ImVec2(x, y), k_text, scene.help[k].first);
    text(dl, body, ImVec2(x + keys_w + 18, y), k_dim, scene.help[k].second);
  }
}

void drawOverlay(const scene::Scene& scene, const SceneLayout& layout, const PointerState& pointer,
                 const OverlayFonts& fonts, const FrameStats& stats, float width, float height) {
  usePalette(scene.light ? k_light_palette : k_dark_palette);
  g_pixel = uiScale(scene);
  ImDrawList* dl = ImGui::GetBackgroundDrawList();
  const Face body = face(fonts, fonts.body), small = face(fonts, fonts.small);
  if (scene.panels.empty()) {
    const std::string& s = scene.placeholder.empty() ? std::string("nothing to show yet") : scene.placeholder;
    const float wrap = std::clamp(width - 80, 120.0f, 640.0f);
    const ImVec2 size = body.font->CalcTextSizeA(body.size, FLT_MAX, wrap, s.c_str());
    dl->AddText(body.font, body.size, ImVec2(std::round(width / 2 - size.x / 2), std::round(height / 2 - size.y / 2)),
                k_text, s.c_str(), nullptr, wrap);
  }
  for (std::size_t k = 0; k < scene.panels.size() && k < layout.panels.size(); ++k)
    drawPanel(dl, scene, k, layout.panels[k], fonts, k >= layout.row_labels.size() || layout.row_labels[k], layout.gap);
  // The minimap (its image is drawn by the renderer): a frame, and the window's outline.
  if (layout.minimap.w > 0) {
    const Rect& m = layout.minimap;
    dl->AddRect(ImVec2(m.x - 1, m.y - 1), ImVec2(m.x + m.w + 1, m.y + m.h + 1), k_frame);
    const ViewWindow& v = scene.view;
    const ImVec2 a(std::floor(m.x + m.w * float(v.col0)), std::floor(m.y + m.h * float(v.row0)));
    const ImVec2 b(std::max(a.x + 3, std::ceil(m.x + m.w * float(v.col1))), std::max(a.y + 3, std::ceil(m.y + m.h * float(v.row1))));
    dl->AddRect(ImVec2(a.x - 1, a.y - 1), ImVec2(b.x + 1, b.y + 1), IM_COL32(0, 0, 0, 220), 0, 0, 3.0f);
    dl->AddRect(a, b, k_highlight, 0, 0, 1.5f);
    char zoom[48];
    std::snprintf(zoom, sizeof zoom, "zoom %.3g\xC3\x97", 1.0 / std::max(1e-9, std::max(v.row1 - v.row0, v.col1 - v.col0)));
    text(dl, small, ImVec2(m.x, m.y - small.size - 4), k_dim, zoom);
  }

  std::optional<HoverHit> hit;
  if (pointer.inside)
    hit = hitTest(scene, layout, static_cast<float>(pointer.pos.x()), static_cast<float>(pointer.pos.y()));
  std::optional<float> marker;
  if (hit && !std::isnan(hit->value) && scene.panels[static_cast<std::size_t>(hit->panel)].categories.empty() &&
      !scene.panels[static_cast<std::size_t>(hit->panel)].signed_values)
    marker = static_cast<float>(scene.scale.normalise(hit->value));
  if (!scene.panels.empty()) drawLegend(dl, scene, layout.legend_bar, fonts, marker);
  // Notes that change the picture (a setting without effect, marks capped, an order not applied): above the
  // footer, in the highlight colour, so they are read with the picture and not only in the status bar.
  {
    const std::size_t shown = std::min(scene.notes.size(), k_max_note_lines);
    for (std::size_t k = 0; k < shown; ++k) {
      const float ny = height - small.size - 10 - float(shown - k) * (small.size + 6);
      std::string line = "note: " + scene.notes[k];
      if (k + 1 == shown && scene.notes.size() > shown)
        line += "  (+" + std::to_string(scene.notes.size() - shown) + " more in the status bar)";
      // Clear of the step bar, whose label and buttons sit on the lowest lines at the right.
      const float room = layout.step_buttons[0].w > 0 ? layout.step_buttons[0].x - 220 : width - 24;
      text(dl, small, ImVec2(12, ny), k_highlight, elided(small, line, std::max(120.0f, room)));
    }
  }
  // The footer leaves room for the step bar on its line.
  const float footer_room = layout.step_buttons[0].w > 0 ? layout.step_buttons[0].x - 360 : width - 12;
  if (!scene.footer.empty())
    text(dl, small, ImVec2(12, height - small.size - 10), k_dim, elided(small, scene.footer, std::max(120.0f, footer_room - 12)));
  if (scene.steps.count > 0) drawStepBar(dl, scene, layout, pointer, fonts);
  // Frame time, top right: what the last frame cost the CPU, and the rate while frames follow each other.
  if (stats.shown) {
    char frame[64];
    if (stats.fps > 0)
      std::snprintf(frame, sizeof frame, "frame %.1f ms \xC2\xB7 %.0f fps", stats.draw_ms, stats.fps);
    else
      std::snprintf(frame, sizeof frame, "frame %.1f ms", stats.draw_ms);
    text(dl, small, ImVec2(width - 12 - textSize(small, frame).x, 8), k_dim, frame);
  }
  if (hit && scene.help.empty()) drawReadout(dl, scene, layout, *hit, pointer, fonts, width, height);
  if (!scene.help.empty()) drawHelp(dl, scene, fonts, width, height);
}

std::string readoutAxisText(const scene::Scene& scene, const scene::Panel& panel, bool query, attn::Range r) {
  if (panel.role == "pixel map") return rangeText(query ? "y" : "x", r);  // the picture's row and column
  const char* name = query ? "query i" : "key j";
  const std::string sorted_name = query ? "sorted row" : "sorted column";
  if (panel.own_order) return rangeText(sorted_name.c_str(), r);  // its own order: no token list for it
  // The scene's order applies to the N×N panels the runner sorted (not a factor, nor a memory's N×N²).
  const attn::Index n = static_cast<attn::Index>(scene.token_at.size());
  if (n == 0 || !panel.zoomable || panel.source_rows != n || panel.source_cols != n) return rangeText(name, r);
  if (r.size() == 1 && r.begin >= 0 && r.begin < n)
    return std::string(name) + " = " + std::to_string(scene.token_at[size_t(r.begin)]) + " (" + sorted_name + " " +
           std::to_string(r.begin) + ")";
  return rangeText(sorted_name.c_str(), r);
}

}  // namespace attnlab::view
