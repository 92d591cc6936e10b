// Runs attn::compare() (and compare mode's companions) off the GUI thread, one run at a time on one backend,
// and has the view model (render/scene) pool what the request can show at the viewport's resolution.
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
#include "render/scene/build.h"

namespace attnlab::gui {


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
  /// Compare mode: more mechanisms run on the same inputs beside `mechanism` (at most 3), each shown as
  /// one more panel with its own error and time.
  struct Other {
    std::shared_ptr<const attn::Mechanism> mechanism;
    std::map<std::string, double> params;
  };
  std::vector<Other> others;
  /// What to pool and how (window, order, pixels, pooling, the third panel): the view model's request.
  scene::ViewRequest view;
  /// When set, nothing is run: this subject (an earlier outcome's comparisons) is pooled again for `view`.
  std::optional<scene::Subject> repool;
};

/// What came of a request.
struct RunOutcome {
  bool ok = false;
  std::string error;  ///< a message for a person when !ok
  bool cancelled = false;  ///< !ok because ComparisonRunner::cancel() stopped it
  /// Everything the view model pooled for the request; its subject holds the comparisons (main and, in compare
  /// mode, the others).
  std::shared_ptr<const scene::Pooled> pooled;
  std::shared_ptr<const attn::Comparison> comparison;  ///< pooled->subject.main
  bool repooled = false;  ///< the request pooled an earlier comparison again (nothing ran)
  /// The picture is ready but row TV and mass recall are still being computed: a second outcome with
  /// them follows for the same request (the window shows this one at once).
  bool metrics_pending = false;
  bool causal = false;             ///< the request's causal setting
  std::string backend_notice;      ///< e.g. "no Vulkan device: running on the CPU"
  double compare_ms = 0;  ///< attn::compare() (inputs made, exact reused or run, the mechanism run): 0 on a repool
  // The comparisons' exact_ms and approx_ms: the single run of attn::compare() in an outcome sent early (it
  // shared the cores with the viewport drawing the last picture), then, in the complete one, the median of a
  // few runs made once the window drew the picture (attn::measureTimes, as `attnlab run` reports them), unless
  // the runs are too long to repeat within a second (then exact_runs = approx_runs = 1 says so).
  const std::vector<attn::Companion>& others() const;
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
  /// Stops the run in flight (between blocks of its work) and drops what waits: it reports a Cancelled outcome
  /// (RunOutcome::cancelled). Nothing happens when idle.
  void cancel();
  /// The window has drawn the picture of request `id` (or cannot draw it: no viewport, not exposed) and is
  /// idle. The worker waits for this before it measures the times again (RunOutcome::compare_ms aside, the
  /// times shown are measured with nothing else running: on two cores the viewport's drawing, lavapipe's
  /// included, would otherwise double them).
  void outcomeDrawn(quint64 id);

 signals:
  /// The newest request finished (successfully or not). Superseded requests never report. A request may
  /// report twice: first with metrics_pending (the picture), then complete.
  void finished(quint64 id, std::shared_ptr<const RunOutcome> outcome);
  /// How far the newest run is, for the status bar: "exact attention 45 % · about 2:10 in all" (a long run
  /// says its predicted time when it starts, then how far each long stage is, at most every 200 ms).
  void progress(quint64 id, QString text);

 private:
  struct Backend;
  void launch();
  void onJobFinished();
  /// `early` receives the outcome as soon as it can be drawn, before the times are measured again (after
  /// `settle` returned: the window drew it) and the O(N²) weight metrics.
  static RunOutcome execute(const RunRequest& request, Backend& backend, const std::atomic<bool>& cancel,
                            const std::function<void(std::shared_ptr<const RunOutcome>)>& early,
                            const std::function<void()>& settle, const std::function<void(QString)>& report);

  std::shared_ptr<Backend> backend_;  // touched by the worker only while a job runs
  QFutureWatcher<std::shared_ptr<const RunOutcome>> watcher_;
  std::optional<RunRequest> pending_;
  quint64 next_id_ = 0, running_id_ = 0, pending_id_ = 0;
  bool running_ = false;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::shared_ptr<std::atomic<quint64>> drawn_ = std::make_shared<std::atomic<quint64>>(0);  // outcomeDrawn's id
};

}  // namespace attnlab::gui
