// What the heatmap viewport shows, as plain values: the panels (pooled weight images with titles),
// the colour scale, and the captions. The app builds a Scene and hands it to HeatmapWindow;
// the layout and hover arithmetic here are shared by the Vulkan quads and the ImGui overlay so the
// two always agree. No Qt, no Vulkan, no ImGui in this header.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "attention/image.h"
#include "attention/types.h"
#include "render/scene/colormap.h"

namespace attnlab::scene {

/// Rank: the panels hold each weight's rank among all weights shown (0 smallest, 1 largest), drawn linearly:
/// every colour is used equally often, whatever the distribution (the figures' rank scale).
enum class ScaleMode { Linear, Log10, Rank };
/// "linear", "log" (also "log10"), "rank": the names the CLI, sessions and the window use.
std::optional<ScaleMode> parseScaleMode(const std::string& name);

/// How a weight becomes a colour: t = (w − lo)/(hi − lo) (Linear), or
/// t = (log10 max(w, floor) − log10 max(lo, floor)) / (log10 max(hi, floor) − log10 max(lo, floor)) (Log10),
/// clamped to [0, 1] and looked up in the colormap. heatmap.frag computes exactly this.
struct ColorScale {
  ScaleMode mode = ScaleMode::Log10;
  float lo = 0.0f;      ///< bottom of the range (Linear), or raised to `floor` (Log10)
  float hi = 1.0f;      ///< top of the range
  float floor = 1e-4f;  ///< Log10: values below it get the bottom colour (exact zeros included)

  /// t ∈ [0, 1] for a value, as the fragment shader computes it (NaN stays NaN).
  double normalise(double value) const;
  /// The range actually spanned: {lo, hi} in Linear, {max(lo, floor), max(hi, floor)} in Log10.
  std::pair<double, double> span() const;
};

/// A labelled position on the legend: t ∈ [0, 1] from the bottom, and its text.
struct LegendTick {
  double t = 0;
  double value = 0;
  std::string label;
};
/// "Nice" tick values for the legend: 1-2-5 steps (Linear) or decades (Log10), 3 to ~8 of them,
/// always including labels for the ends of the range.
std::vector<LegendTick> legendTicks(const ColorScale& scale);

/// Short text for a weight or a bound with `digits` significant digits: "0.25", "3.1e-05", "0".
std::string formatValue(double value, int digits = 4);

/// The part of the N×M matrices on screen, as fractions of their rows and columns (each in [0, 1]). Every
/// zoomable panel of a scene shows the same window: zoom and pan are synchronised.
struct ViewWindow {
  double row0 = 0, row1 = 1, col0 = 0, col1 = 1;
  bool full() const { return row0 <= 0 && col0 <= 0 && row1 >= 1 && col1 >= 1; }
  bool operator==(const ViewWindow&) const = default;
};
/// Zooms by `factor` (> 1: in) about the point (fx, fy) of the window (fractions of its width and height
/// from the top-left), which stays where it is. The result lies in [0, 1]² and spans at least min_rows ×
/// min_cols (fractions); zooming out never goes past the whole matrix.
ViewWindow zoomView(const ViewWindow& v, double factor, double fx, double fy, double min_rows = 0,
                    double min_cols = 0);
/// Moves the window by (dx, dy) of its own width and height (+: towards larger j and i), kept inside.
ViewWindow panView(const ViewWindow& v, double dx, double dy);
/// The whole entries a window's [f0, f1) covers in `count`: [⌊f0·count⌋, ⌈f1·count⌉), at least one.
attn::Range viewRange(double f0, double f1, attn::Index count);
/// Token positions worth a tick on an axis showing entries lo to hi (of `count`): 1-2-5 steps, at most
/// ~5 intervals; the whole axis also labels its end. The viewport and the figures both use it.
std::vector<attn::Index> axisTicks(double lo, double hi, attn::Index count);

/// A pixel marked on a pixel map (the picked query pixel): column x, row y of the H×W grid.
struct PixelMark {
  attn::Index x = 0, y = 0;
  std::string kind = "picked";  ///< what it is ("picked": the query pixel whose attention the map shows)
  bool operator==(const PixelMark&) const = default;
};

/// One heatmap panel: an N×M weight matrix pooled to `values` (rows × cols pixels; row 0 at the top).
struct Panel {
  std::string title;                  ///< drawn above the panel: "exact", "Longformer"
  std::string subtitle;               ///< smaller line under the title (may be empty)
  attn::Matrix values;                ///< pooled weights, at most a few hundred pixels a side; empty: no image
  attn::Index source_rows = 0;        ///< N: rows (queries) of the matrix the pixels pool
  attn::Index source_cols = 0;        ///< M: columns (keys)
  std::string pooling = "max";        ///< what a pixel holds when it covers several entries ("max", "mean")
  std::string empty_text;             ///< shown in the panel's frame when `values` is empty
  std::vector<std::string> captions;  ///< lines under the panel: error, time, ...
  /// Non-empty: a categorical panel (a pattern's components): values hold category + 1 (0: none), drawn
  /// in categoricalPalette() colours with these names as its legend, outside the shared colour scale.
  std::vector<std::string> categories;
  /// Token positions to mark on both axes (global tokens, landmarks that are tokens).
  std::vector<attn::Index> marks;
  /// Token positions to mark on the row (query) axis only (TokenSet::queries_only).
  std::vector<attn::Index> row_marks;
  /// Group of each pixel row (bucket, cluster, block…; −1 none): drawn as a strip of categorical colours
  /// along the left edge, so sorted groups read as coloured runs. Empty: no strip.
  std::vector<int> row_groups;
  /// With ScaleMode::Rank, `values` hold ranks and these the weights themselves (the readout shows them).
  attn::Matrix raw_values;
  /// A signed panel (a difference): drawn on the diverging colormap over [−signed_range, signed_range],
  /// outside the shared scale.
  bool signed_values = false;
  float signed_range = 0;
  /// The entries of the N×M matrix that `values` pools (after a zoom, a part of it); empty: all of them.
  attn::Range shown_rows, shown_cols;
  /// false: the scene's zoom does not apply (an image of another shape, e.g. a step's factor).
  bool zoomable = true;
  /// The tokens are in an order of the panel's own (a step that sorts them), not the scene's: the readout
  /// pairs it with no other panel and names no groups, and the picked row, the marks and a click's row
  /// (all in the scene's order) do not apply to it.
  bool own_order = false;
  /// What the axes index: "query i" down the left edge, "key j" along the bottom (a factor's own: "feature",
  /// "landmark", "block"…). Ticks come from axisTicks over the shown entries.
  std::string xlabel = "key j", ylabel = "query i";
  /// Categorical panels: the legend's name for the empty colour ("not scored", "different groups").
  std::string empty_label = "not scored";
  /// Continuous panels outside the shared scale (a step's factor on its own range): their own scale, drawn
  /// with their own colour bar titled `legend_title`. Signed panels use signed_range on the diverging map.
  std::optional<ColorScale> own_scale;
  std::string legend_title;
  /// What the panel is, in one word ("exact", "mechanism", "pattern", "step", "difference", "groups",
  /// "other"), for renderers that lay panels out by role and for tests.
  std::string role;
  /// The panel's letter ("a", "b", …), in the scene's panel order: drawn before the title on screen and in
  /// files, so a caption in a paper can name a panel.
  std::string tag;
  /// A pixel map (role "pixel map"): the picture the tokens are the pixels of, at the map's H×W, drawn under
  /// it. Every renderer shows colour = (1 − overlay_alpha)·map + overlay_alpha·grey(photo), grey being the
  /// photo's luminance (pictureGrey), so the map's hue stays readable against the colour bar.
  std::shared_ptr<const attn::Picture> picture;
  float overlay_alpha = 0;
  /// Pixels to mark on a pixel map (the picked query pixel).
  std::vector<PixelMark> pixel_marks;
  /// A pixel map's edge strips: one value per column (along the top edge) and per row (down the left edge),
  /// each drawn in the colormap on its own range [0, max] (Kronecker's column and row summaries: what the
  /// picked pixel gives each). Empty: none. Their names go into the captions.
  std::vector<float> edge_top, edge_left;
  /// A bar chart (role "bars": a channel gate, a context vector): one bar per entry, from the zero line (or the
  /// bottom of `own_scale`, whichever is higher) to its value on `own_scale`, coloured by that value, drawn in
  /// the panel's frame; `values` stays empty and source_rows × source_cols give the frame's shape.
  std::vector<float> bars;
};

/// The luminance of pixel (y, x) of a picture in [0, 1] (Rec. 709 weights): the grey a pixel map is blended with.
float pictureGrey(const attn::Picture& picture, attn::Index y, attn::Index x);

/// The step bar under the panels for mechanisms with steps: where the step-through is.
struct StepBar {
  int count = 0;       ///< steps of the mechanism (0: no bar)
  int current = -1;    ///< the step shown (−1: none, the mechanism's own pattern)
  bool playing = false;
  std::string title;   ///< of the current step
};
/// What a step-bar button asks for.
enum class StepAction { None, First, Previous, Play, Next };

/// The viewport draws at most this many of a scene's notes (above the footer); the status bar has them all.
inline constexpr std::size_t k_max_note_lines = 4;

/// Everything the viewport draws.
struct Scene {
  std::vector<Panel> panels;  ///< 1–4 panels, side by side, left to right
  ColorScale scale;                  ///< one scale for all panels, so colours compare across them
  Colormap colormap = Colormap::Viridis;  ///< the colours of the continuous panels and the legend
  std::string legend_title = "weight";
  std::string footer;       ///< one line at the bottom left: backend, device, notices
  /// A figure's heading (the screen has it in the window title): "Reformer  vs  exact", and the inputs
  /// described once (attn::describeInputs) with the backend and pooling.
  std::string title, subtitle;
  /// Notes that change the picture (causal Longformer drops its global tokens; C > N leaves the pattern
  /// empty; marks capped at 512): drawn in the viewport and in figures, not only in a status bar.
  std::vector<std::string> notes;
  /// A figure's footer lines: the error in full, scored pairs, the idea, the departures from the paper.
  std::vector<std::string> footnotes;
  std::string placeholder;  ///< shown centred when there are no panels ("running…", an error)
  ViewWindow view;          ///< what the zoomable panels show (fit: the whole matrix)
  /// The whole matrix, small, shown with the window's outline beside the panels while zoomed in.
  Panel minimap;
  StepBar steps;
  /// The query row picked by a click (marked across the zoomable panels), −1 for none.
  attn::Index selected_row = -1;
  bool light = false;  ///< the light theme: a light background and dark text
  /// The hover readout names the group of i and of j (bucket, cluster) under this grouping: one label per
  /// token in the displayed order; empty: none.
  std::string group_name;
  std::vector<int> token_groups;
  /// When the panels show the tokens sorted (by buckets, clusters…): the token at each displayed position,
  /// so the readout names tokens, not positions; empty when they are in position order.
  std::vector<std::int32_t> token_at;
  /// Non-empty: the keyboard and mouse help drawn over everything, (keys, what) per line.
  std::vector<std::pair<std::string, std::string>> help;
  /// Every size of the overlay and the layout (text, margins, buttons) times this: 1.5 in presenter
  /// mode, for a projector at the back of a room.
  float ui_scale = 1;
};

/// What a panel's edges show, in source entries (continuous): rows row0 (top edge) to row1 (bottom),
/// columns col0 (left) to col1 (right); the whole matrix for a panel that is not zoomable.
struct PanelSpan {
  double row0 = 0, row1 = 0, col0 = 0, col1 = 0;
};
PanelSpan panelSpan(const Scene& scene, std::size_t panel);
/// Texture coordinates of the panel's top-left (u0, v0) and bottom-right (u1, v1) corners: where its span
/// lies in the entries the texture pools. Outside [0, 1] there is no data (drawn as empty).
std::array<float, 4> panelUv(const Scene& scene, std::size_t panel);

/// An axis-aligned rectangle in logical pixels (origin top-left).
struct Rect {
  float x = 0, y = 0, w = 0, h = 0;
  bool contains(float px, float py) const { return px >= x && py >= y && px < x + w && py < y + h; }
};

/// Where everything goes for a viewport of width × height logical pixels.
struct SceneLayout {
  std::vector<Rect> panels;  ///< one per scene panel: the image itself (titles above, ticks around)
  Rect legend_bar;           ///< the colour bar (ticks and labels to its right)
  Rect minimap;              ///< under the colour bar while zoomed in (and the scene has a minimap), else empty
  /// The step bar's buttons, bottom right: first, previous, play/pause, next (empty when no steps).
  std::array<Rect, 4> step_buttons{};
  /// Per panel: whether it labels its query axis (ticks' numbers, "query i"). Panels that show the same rows
  /// (compare mode, exact beside a mechanism) share the axis of the first in their row, which frees the gap.
  std::vector<bool> row_labels;
  float gap = 0;  ///< between neighbouring panels
};
/// The step-bar button at (x, y), or None.
StepAction stepActionAt(const SceneLayout& layout, float x, float y);

/// Panels share one height and keep their matrix's aspect ratio (N×N is square); the group is centred
/// in the room the titles, tick labels, captions and legend leave. In window coordinates: the layout
/// of a width/s × height/s viewport, scaled by s = scene.ui_scale.
SceneLayout layoutScene(float width, float height, const Scene& scene);
/// The same layout before the scaling (the overlay draws in these units, then scales what it drew).
SceneLayout layoutSceneUnscaled(float width, float height, const Scene& scene);
/// scene.ui_scale, kept within [0.5, 4].
float uiScale(const Scene& scene);

/// What the mouse is over: a panel pixel and the block of matrix entries it pools.
struct HoverHit {
  int panel = -1;
  int pixel_row = 0, pixel_col = 0;  ///< in the pooled image
  attn::Range rows, cols;            ///< matrix entries the pixel covers (queries i, keys j)
  float value = 0;                   ///< the pooled value shown there
};
/// The panel pixel under (x, y), or nothing (outside every panel, or the panel has no image).
std::optional<HoverHit> hitTest(const Scene& scene, const SceneLayout& layout, float x, float y);

}  // namespace attnlab::scene
