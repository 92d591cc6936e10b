// The view model's decisions: from comparisons (a mechanism beside exact attention, and in compare mode others
// on the same inputs) and a view request (panels, zoom window, token order, step, pooling, pixels, scale,
// colour map) to a Scene of typed panels. The only place that decides what is shown: the viewport, the
// figures, `attnlab render` and reports draw what it returns, so an export is the screen at another size.
//
// Two stages, so a window can switch what it shows without pooling again:
//   pool()    the expensive part: every image the request can show, pooled at its pixel size (O(N²) at most);
//   compose() cheap and pure: chooses panels, titles, captions, scales, legends, notes from what was pooled.
// build() does both.
#pragma once
#include <atomic>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/runner.h"
#include "render/scene/scene.h"

namespace attn {
class Backend;
}

namespace attnlab::scene {

/// Sorting tokens by a grouping forms the N×N matrix: above this N the Order choice says why it is off.
inline constexpr attn::Index k_max_sorted_n = 4096;
/// At most this many special tokens are marked (the rest are listed by count in a note).
inline constexpr std::size_t k_max_marks = 512;
/// The minimap (the whole matrix while zoomed in) is pooled to at most this many pixels a side.
inline constexpr attn::Index k_minimap_pixels = 128;
/// Figures and `attnlab render` pool each panel to at most this many pixels a side by default.
inline constexpr attn::Index k_max_figure_pixels = 2048;

/// What is compared: a mechanism beside exact attention and, in compare mode, others on the same inputs.
struct Subject {
  std::shared_ptr<const attn::Comparison> main;
  std::vector<attn::Companion> others;
  std::string backend_label;  ///< "vulkan · llvmpipe (…)": the backend and its device (else main's backend name)
  std::vector<std::string> notes;  ///< from the run: parameter clamps, the backend's fallback notice
};

/// What the third panel shows (compare mode shows the others there instead).
enum class Third {
  Auto,        ///< the mechanism's pattern, else its first step, else nothing
  None,        ///< exact and the mechanism only
  Pattern,     ///< the pairs it scores, by component
  Step,        ///< ViewRequest::step
  Difference,  ///< mechanism − exact, mean-pooled, signed
  Groups,      ///< "tokens i and j share a group" under the order's grouping
};
const char* thirdName(Third t);
std::optional<Third> parseThird(const std::string& name);

/// How the panels lay the weights out: as N×M matrices, or (the image input) one query pixel's row of them
/// reshaped to the H×W picture and drawn over it, or (Gates, the image input) a mechanism's own maps and gates
/// (its Image, Labels and Bars factors) over the picture: the view of the gating modules, which imply no N×N matrix.
enum class Layout { Matrix, Pixel, Gates };
const char* layoutName(Layout l);

/// At most this many pixels are picked at once (one panel each past two; two pixels take exact and the
/// mechanism each).
inline constexpr std::size_t k_max_picked_pixels = 4;
/// What the photo weighs in a pixel map's colour (the map weighs the rest).
inline constexpr float k_pixel_overlay_alpha = 0.3f;

struct ViewRequest {
  Third third = Third::Auto;
  int step = 0;        ///< with Third::Step: which step (0-based)
  ViewWindow window;   ///< the zoomed part of the matrices (fractions of rows and columns)
  /// Token order: "" by position, or the name of a grouping of the mechanism ("round 1 buckets") or "input
  /// clusters"; an unknown name is shown by position and says so in a note.
  std::string order;
  /// The order shown before (when this request changes it): pool() records where each pixel row was, so a
  /// window can animate the permutation.
  std::optional<std::string> previous_order;
  attn::Index pixels = 512;  ///< each panel pooled to at most this many pixels a side
  attn::Pooling pooling = attn::Pooling::Max;
  ScaleMode scale = ScaleMode::Log10;
  float floor = 1e-4f;  ///< Log10: the bottom of the colour scale
  Colormap colormap = Colormap::Viridis;
  bool times = true;  ///< run times in captions (off for reproducible figures)
  bool minimap = true;
  Layout layout = Layout::Matrix;
  /// Layout::Pixel: the query pixels shown, as tokens y·W + x (at most k_max_picked_pixels); empty: the centre,
  /// said in a note. With Third::Step, `step` picks a step that implies weights (pixelStepTitles).
  std::vector<attn::Index> pixels_picked;
};

/// One pooled image and the entries it covers.
struct Image {
  attn::Matrix values;                         ///< empty: nothing to show
  attn::Range rows, cols;                      ///< the entries pooled (the window on the source)
  attn::Index source_rows = 0, source_cols = 0;  ///< the whole matrix
};

struct StepImage {
  std::string title, caption;
  std::string what;  ///< "pattern", "same group: query clusters", "S after 3 iteration(s)"
  Image image;
  std::vector<std::string> components;  ///< categorical (a pattern, a grouping); empty: values (a factor)
  std::string factor_name;              ///< a factor's name: its axes are labelled from it
  bool zoomable = true;
  bool signed_values = false;  ///< a factor with negative entries: diverging map on its own ± range
  bool own_order = false;      ///< in the step's own token order (Reformer's sort), not the scene's
};

/// Layout::Pixel: one picked pixel's rows of the implied weights, each reshaped to the H×W grid.
struct PixelRow {
  attn::Index token = 0;     ///< y·W + x
  attn::Index x = 0, y = 0;
  attn::Matrix exact, approx, difference;  ///< H×W each; empty where there is none
  attn::Matrix own;  ///< the mechanism's own target's row (Comparison::own: permutohedral's exact Gaussian), or empty
  double row_tv = std::numeric_limits<double>::quiet_NaN();  ///< ½·Σ_j |a_j − e_j| of this row
  /// The pixel's row of a MatrixLayout::PerPixelTop (W values) / PerPixelLeft (H values) factor: what it gives
  /// each column / row of the grid (Kronecker's summaries), drawn along the map's edges; empty: none.
  std::vector<float> top_strip, left_strip;
  std::string top_strip_name, left_strip_name;
};

/// Layout::Pixel: a map the mechanism (or the chosen step) gives every pixel, whatever pixel is picked: a factor
/// with MatrixLayout::Image (values on their own scale) or Labels (a segmentation-like map), reshaped to H×W.
struct PixelMap {
  std::string name, caption;
  attn::Matrix values;   ///< H×W
  bool labels = false;   ///< values are labels 0..label_count−1
  int label_count = 0;
  std::string noun = "label";  ///< what a label is called in the legend ("group" for a grouping's)
};

/// Layout::Gates: one panel's content, a mechanism's factor (an H×W map, a label map, bars) or, for a mechanism
/// with N×N weights of its own (GCNet's one map), exact attention's row at a picked pixel as an H×W map.
struct GateItem {
  std::string title, caption;
  attn::MatrixLayout layout = attn::MatrixLayout::Image;  ///< Image, Labels or Bars
  attn::Matrix values;  ///< H×W (Image, Labels), or 1×C (Bars)
  attn::Index token = -1;  ///< an exact row's query pixel y·W + x; −1 for a factor
  /// A distribution over the pixels (entries ≥ 0 summing to 1: a row of weights): drawn on the scene's shared
  /// weight scale with the exact maps beside it, not on a scale of its own.
  bool distribution = false;
  std::vector<std::string> distances;  ///< "cosine distance to …" lines (GCNet's map against exact maps)
};

/// What pool() made: everything compose() may show for this request.
struct Pooled {
  Subject subject;
  ViewRequest request;  ///< what was pooled (window, order, pixels, pooling)
  std::vector<std::string> orders;  ///< the orders offered (grouping names, "input clusters")
  std::string orders_unavailable;   ///< why none is offered ("sorting needs N ≤ 4096 …"), or ""
  std::string order;                ///< the order used ("" by position)
  std::vector<std::int32_t> token_at;  ///< sorted: the token at each displayed position
  std::string group_name;              ///< the grouping the readout names
  std::vector<int> token_groups;       ///< its label of each displayed token
  std::vector<int> row_groups;         ///< sorted: each pixel row's group (the strip)
  Image exact, approx, difference, groups, pattern, minimap;
  std::int32_t group_count = 0;  ///< groups of the order's grouping (Third::Groups)
  std::vector<std::string> pattern_components;
  /// The pattern drawn sorted by this grouping of its own (too many tokens a pixel in position order), or "".
  std::string pattern_sorted_by;
  std::vector<StepImage> steps;
  std::vector<Image> others;  ///< compare mode, one per subject.others entry
  std::vector<attn::Index> marks, row_marks;  ///< in displayed positions
  std::size_t marks_total = 0;                ///< before the cap
  std::vector<float> moved_from;              ///< after an order change: each pixel row's previous centre (fraction of N)
  double pool_ms = 0;
  /// Layout::Pixel: the picked pixels' rows (steps then holds the steps that imply weights, without images).
  std::vector<PixelRow> pixel_rows;
  attn::Index grid_height = 0, grid_width = 0;
  std::string pixel_refusal;    ///< why there is no pixel view ("" when there is one)
  bool pixel_default = false;   ///< no pixel was picked: the centre is shown
  int pixel_step = -1;          ///< the step whose weights the mechanism's maps show (index into steps), −1: its own
  bool pixel_step_weights = false;  ///< the chosen step implies weights (else its maps are shown beside the final ones)
  std::vector<PixelMap> pixel_maps;  ///< the chosen step's (or the mechanism's) per-pixel maps, at most 2
  /// Layout::Gates: the maps and bars to show, in order (at most four; steps then holds the steps that have maps).
  std::vector<GateItem> gate_items;
  std::size_t gate_factors_left_out = 0;  ///< maps and bars of the mechanism beyond the four panels
  std::string gates_refusal;              ///< why there is no gates view ("" when there is one)
  int gates_step = -1;                    ///< the step whose factors are shown (index into steps), −1: the run's own
};

/// Reuses exact attention's pooled image while nothing it depends on changed (a parameter change).
struct PoolCache {
  std::shared_ptr<const attn::Inputs> reference;
  ViewWindow window;
  attn::Pooling pooling = attn::Pooling::Max;
  attn::Index pixels = 0;
  std::vector<std::int32_t> permutation;
  Image exact;
};

/// The orders a comparison offers and why none is (N ≠ M, N above k_max_sorted_n).
std::vector<attn::Grouping> ordersOf(const attn::Comparison& c, std::string* unavailable = nullptr);
/// The order named by a word: "position" (""), "buckets" / "clusters" (the first grouping whose name says so,
/// else the first grouping), or a grouping's exact name; UserError naming the choices when there is none.
std::string resolveOrder(const attn::Comparison& c, const std::string& word);
/// The titles of the steps that have an image (what Third::Step's index counts), in order.
std::vector<std::string> stepTitles(const attn::Comparison& c);
/// Whether the difference panel can be made (both sides imply N×M weights).
bool differenceAvailable(const attn::Comparison& c);
/// The names the third-panel selector offers, in order: "pattern" (when it has one), each step's title, and
/// "difference" (when available).
std::vector<std::string> thirdChoices(const Pooled& p);

/// Layout::Pixel. Why `c` has no pixel view, or "": the input must be a picture (inputs.picture, grid_width)
/// and the mechanism must imply N×N weights.
std::string pixelRefusal(const attn::Comparison& c);
/// The titles of the steps whose views imply N×N weights or hold per-pixel maps (MatrixLayout::Image or Labels):
/// what Third::Step's index counts in the pixel view.
std::vector<std::string> pixelStepTitles(const attn::Comparison& c);
/// "X,Y[;X,Y…]" (up to k_max_picked_pixels pixels) as tokens y·W + x of an H×W grid; UserError naming the
/// first pixel outside it ("--pixel 70,3 lies outside the 64×48 image") or the form expected.
std::vector<attn::Index> parsePixels(const std::string& text, attn::Index height, attn::Index width);

/// Layout::Gates. Why `c` has no gates view, or "": the input must be a picture and the run (or, with Third::Step,
/// some step) must have a factor laid out as an Image, Labels or Bars (attn::MatrixLayout).
std::string gatesRefusal(const attn::Comparison& c);
/// The titles of the steps whose views have such factors (what Third::Step's index counts in the gates view).
std::vector<std::string> gatesStepTitles(const attn::Comparison& c);
/// Cosine distance 1 − a·b/(‖a‖‖b‖) of two maps of the same size, in float64 (1 when either is all zero).
double cosineDistance(const attn::Matrix& a, const attn::Matrix& b);

/// Pools every image the request can show. `backend` pools factored weights on the GPU (nullptr: the CPU);
/// Cancelled when `cancel` is set; `cache` (optional) reuses exact's image.
Pooled pool(const Subject& subject, const ViewRequest& request, attn::Backend* backend = nullptr,
            const std::atomic<bool>* cancel = nullptr, PoolCache* cache = nullptr);
/// The scene for `request` from what pool() made (pooled for the same window, order and pixels).
Scene compose(const Pooled& pooled, const ViewRequest& request);
/// pool() then compose().
Scene build(const Subject& subject, const ViewRequest& request, attn::Backend* backend = nullptr);

/// The size line under a panel's title: "256×256 weights", "4096×4096, max-pooled to 512×512",
/// "i 0–99, j 0–99 of 256×256" (zoomed).
std::string sizeText(const Panel& panel, const std::string& what = "weights");
/// The run time as shown: "1.23 ms".
std::string formatMs(double ms);

}  // namespace attnlab::scene
