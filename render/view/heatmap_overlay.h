// The Dear ImGui overlay of the heatmap viewport (internal to attnlab_view): titles, axis ticks,
// panel frames, captions, the colour legend, the footer and the hover readout. Drawn with ImGui's
// draw lists between ImGui::NewFrame() and ImGui::Render(); it reads the scene, never writes it.
#pragma once
#include <string>

#include "render/scene/scene.h"

struct ImFont;

namespace attnlab::view {

// The viewport draws the view model's types (render/scene) and nothing else.
using namespace attnlab::scene;  // NOLINT(google-build-using-namespace)

struct PointerState;

/// Fonts of the overlay (owned by the ImGui font atlas). Null members fall back to the default font.
struct OverlayFonts {
  ImFont* body = nullptr;   ///< tick labels, captions, readout
  ImFont* title = nullptr;  ///< panel titles
  ImFont* small = nullptr;  ///< subtitles, footer
  float scale = 1;          ///< drawn size per atlas pixel (the atlas holds them at pixel ratio × oversize)
};

/// Adds the overlay fonts to the current context's atlas (a system sans-serif TTF when one is found,
/// ImGui's built-in font otherwise). Call before the font texture is built.
/// `oversize` rasterises them larger than they are drawn, for an overlay that is scaled up afterwards
/// (presenter mode draws at 14 px and scales by 1.5: glyphs rasterised at 21 px stay sharp).
/// The hover readout's line for the query (or key) entries `r` of `panel`: "query i = 5", or in a
/// sorted view the token and its place, "query i = 57 (sorted row 301)", or "sorted row = 300–302" for
/// a pooled pixel; a panel in its own order only gives sorted positions.
std::string readoutAxisText(const scene::Scene& scene, const scene::Panel& panel, bool query, attn::Range r);

OverlayFonts loadOverlayFonts(float pixel_ratio, float oversize = 1);

/// The characters of `utf8` (each once, in order of appearance) that the overlay cannot draw: outside
/// the glyph ranges it loads or absent from its font files, they would show as '?'. Needs no window.
std::u32string overlayMissingGlyphs(const std::string& utf8);

/// How fast the viewport draws: the CPU time of the last frame (recording, uploads, overlay), and the
/// frame rate while frames follow each other (a drag, a zoom), 0 when idle.
struct FrameStats {
  double draw_ms = 0;
  double fps = 0;
  bool shown = true;  ///< drawn top right (HeatmapWindow::setFrameTimeShown; presenter mode hides it)
};

/// Draws the overlay for a width × height (logical pixels) viewport.
void drawOverlay(const scene::Scene& scene, const SceneLayout& layout, const PointerState& pointer,
                 const OverlayFonts& fonts, const FrameStats& stats, float width, float height);

}  // namespace attnlab::view
