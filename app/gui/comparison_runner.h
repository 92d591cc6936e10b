// Runs attn::compare() off the GUI thread, one run at a time on one backend, and pools the implied
// weights of exact attention and of the mechanism to the viewport's resolution.
//
// A newer request supersedes an older one: the running one is cancelled (RunOptions::cancel) and
// only the newest pending request runs next; outcomes of superseded requests are dropped, so the
// window only ever sees the latest. The backend is made by attn::gpu::makeBackend on the worker, on
// the first run and again when the requested choice changes; only the worker touches it.
#pragma once
#include <QFutureWatcher>
#include <QObject>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/runner.h"
#include "render/gpu/backend_factory.h"
#include "render/scene/scene.h"

namespace attnlab::gui {


/// A mechanism run beside the main one in compare mode: its comparison, or why it could not run.
struct OtherRun {
  std::shared_ptr<const attn::Comparison> comparison;
  std::string id, error;
};

/// One thing to compute.
struct RunRequest {
  std::shared_ptr<const attn::Mechanism> mechanism;
  std::map<std::string, double> params;  ///< control values by name (choices as indices)
  attn::InputSpec input;
  /// Inputs imported from a file: used instead of generating from `input` (whose seed still seeds the
  /// mechanism's random choices).
  std::shared_ptr<const attn::Inputs> imported;
  bool causal = false;
  attn::gpu::BackendChoice backend = attn::gpu::BackendChoice::Auto;
  attn::Index max_pixels = 512;  ///< pooled images are at most this many pixels a side
  attn::Pooling pooling = attn::Pooling::Max;
  /// Token order of the images: "" (by position) or the name of a grouping of the mechanism
  /// ("round 1 buckets", …) or "input clusters"; unknown names fall back to position.
  std::string order;
  /// Compare mode: more mechanisms run on the same inputs beside `mechanism` (at most 3), each shown as
  /// one more panel with its own error and time.
  struct Other {
    std::shared_ptr<const attn::Mechanism> mechanism;
    std::map<std::string, double> params;
  };
  std::vector<Other> others;
  /// With `repool`: the others' comparisons to pool again (nothing runs).
  std::vector<OtherRun> repool_others;
  /// Pool the difference mechanism − exact too (the Pattern selector's "difference" entry is chosen).
  bool difference = false;
  /// The order shown before this request (when it changes the order): the outcome then says where each
  /// pixel row was, so the window can animate the permutation.
  std::optional<std::string> previous_order;
  /// The zoomed part of the matrices (fractions of rows and columns): only it is pooled, at max_pixels.
  scene::ViewWindow window;
  /// When set, nothing is run: the weights of this comparison are pooled again (new size, pooling or window).
  std::shared_ptr<const attn::Comparison> repool;
};

/// What came of a request.
struct RunOutcome {
  bool ok = false;
  std::string error;  ///< a message for a person when !ok
  std::shared_ptr<const attn::Comparison> comparison;
  attn::Matrix exact_pooled, approx_pooled;  ///< empty when that side implies no weights
  /// The entries each image pools (the request's window on that matrix).
  struct Shown {
    attn::Range rows, cols;
  };
  Shown exact_shown, approx_shown, pattern_shown;
  /// mean-pooled mechanism − mean-pooled exact over the window (request.difference, same shapes); else empty.
  attn::Matrix difference_pooled;
  bool difference_requested = false;  ///< the request asked for the difference
  /// Compare mode: each other mechanism's comparison (on the same inputs) and its weights pooled like
  /// approx_pooled, or why it could not run (then comparison is null and the other panels still show).
  struct OtherOutcome : OtherRun {
    attn::Matrix pooled;
    Shown shown;
  };
  std::vector<OtherOutcome> others;
  scene::ViewWindow window;  ///< the request's window
  bool repooled = false;    ///< the request pooled an earlier comparison again (nothing ran)
  /// The picture is ready but row TV and mass recall are still being computed: a second outcome with
  /// them follows for the same request (the window shows this one at once).
  bool metrics_pending = false;
  /// After an order change (request.previous_order): for each pixel row (and column) of the square images,
  /// the centre of the tokens it covers in the previous order, as a fraction of N; empty otherwise.
  std::vector<float> moved_from;
  /// The mechanism's whole matrix (exact's when it implies none) at most k_minimap_pixels a side, while
  /// the window is not the whole matrix; empty otherwise.
  attn::Matrix minimap;
  attn::Index minimap_rows = 0, minimap_cols = 0;
  static constexpr attn::Index k_minimap_pixels = 128;
  /// The mechanism's pattern pooled like the weights: component + 1 per pixel (the first component
  /// present wins), 0 where no pair is scored; empty when the mechanism has no pattern.
  attn::Matrix pattern_pooled;
  std::vector<std::string> pattern_components;
  /// The mechanism's steps, each as one image pooled the same way: its pattern (per layer, two hops,
  /// coverage, a hash round's chunks, …), else its first grouping as "i and j share a group" (a k-means
  /// iteration's clusters), else its first factor as values (a Sinkhorn iteration's S). Categorical
  /// images hold component + 1; factors (continuous: `components` empty) hold the values themselves.
  struct StepPattern {
    std::string title, caption;
    attn::Matrix pooled;
    std::vector<std::string> components;
    attn::Index rows = 0, cols = 0;
    std::string what;  ///< "pattern", "groups: query clusters", "S after 3 iteration(s)"
    Shown shown;       ///< the entries pooled (the window, for N×N images; all of a factor)
    bool zoomable = true;
    /// A factor with negative entries (a rotation, a fast-weight matrix, logits): mean-pooled and drawn
    /// with the diverging colormap on its own ± range, not on the weights' scale.
    bool signed_values = false;
    /// Its N×N image is in the step's own token order (Reformer's "sort"), not the one the other panels
    /// are shown in: nothing on screen may pair its pixels with theirs.
    bool own_order = false;
  };
  std::vector<StepPattern> step_patterns;
  /// The orders this outcome can be shown in (grouping names, "input clusters") and the one used ("" by
  /// position). Sorting needs N = M ≤ 4096.
  std::vector<std::string> orders;
  std::string order;
  /// When sorted by a grouping: the group label of each pixel row of the pooled images (the label of
  /// the first token the row covers), for the group strip; empty otherwise.
  std::vector<int> row_groups;
  /// For the hover readout: each token's group (in the displayed order) under the grouping the tokens are
  /// sorted by, else the mechanism's first (or the input's clusters); empty when there is none.
  std::string token_group_name;
  std::vector<int> token_groups;
  std::vector<attn::Index> marks;  ///< special tokens that are sequence positions (global tokens, …)
  std::vector<attn::Index> row_marks;  ///< special tokens marked as queries only (TokenSet::queries_only)
  attn::Pooling pooling = attn::Pooling::Max;
  attn::Index max_pixels = 0;      ///< the request's max_pixels (what it was pooled for)
  bool causal = false;             ///< the request's causal setting
  std::vector<std::string> notes;  ///< parameter clamps, mechanism notes
  std::string backend_notice;      ///< e.g. "no Vulkan device: running on the CPU"
  std::string backend_label;       ///< "vulkan · llvmpipe (LLVM 15.0.6, 256 bits)"
  double pool_ms = 0;
  double compare_ms = 0;  ///< attn::compare() (inputs made, exact reused or run, the mechanism run): 0 on a repool
};

class ComparisonRunner : public QObject {
  Q_OBJECT

 public:
  explicit ComparisonRunner(QObject* parent = nullptr);
  /// Cancels the run in flight and waits for it (the backend must not outlive its last use).
  ~ComparisonRunner() override;

  /// Starts `request` now, or after the run in flight (which is cancelled). Returns its id.
  quint64 submit(RunRequest request);
  /// true while a run is in flight or waiting.
  bool busy() const;

 signals:
  /// The newest request finished (successfully or not). Superseded requests never report. A request may
  /// report twice: first with metrics_pending (the picture), then complete.
  void finished(quint64 id, std::shared_ptr<const RunOutcome> outcome);

 private:
  struct Backend;
  void launch();
  void onJobFinished();
  /// `early` receives the outcome as soon as it can be drawn, before the O(N²) weight metrics.
  static RunOutcome execute(const RunRequest& request, Backend& backend, const std::atomic<bool>& cancel,
                            const std::function<void(std::shared_ptr<const RunOutcome>)>& early);

  std::shared_ptr<Backend> backend_;  // touched by the worker only while a job runs
  QFutureWatcher<std::shared_ptr<const RunOutcome>> watcher_;
  std::optional<RunRequest> pending_;
  quint64 next_id_ = 0, running_id_ = 0, pending_id_ = 0;
  bool running_ = false;
  std::shared_ptr<std::atomic<bool>> cancel_;
};

}  // namespace attnlab::gui
