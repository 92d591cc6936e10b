// ComparisonRunner: attn::compare() and the view model's pooling on a worker thread, newest request wins.
#include "app/gui/comparison_runner.h"

#include <QtConcurrent/QtConcurrentRun>
#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>


namespace attnlab::gui {

namespace {
constexpr std::chrono::seconds k_settle_limit{2};
}  // namespace

/// The backend and the choice it was made for. Lives on the heap, shared with the job that uses it,
/// so a runner destroyed mid-run cannot pull it from under the worker.
struct ComparisonRunner::Backend {
  std::unique_ptr<attn::Backend> backend;
  std::optional<attn::gpu::BackendChoice> choice;
  std::string notice;
  /// The last comparison: a parameter change on the same input reuses its exact result and float64
  /// reference (only the mechanism runs again).
  std::shared_ptr<const attn::Comparison> last;
  /// The inputs last generated and the spec they came from: a parameter change does not generate them
  /// again (≈ 10 ms at N = 2048).
  std::optional<attn::InputSpec> generated_spec;
  std::shared_ptr<const attn::Inputs> generated;
  /// Exact attention's pooled image, reused while exact, window, pooling, size and order are the same.
  scene::PoolCache cache;
};

ComparisonRunner::ComparisonRunner(QObject* parent) : QObject(parent), backend_(std::make_shared<Backend>()) {
  connect(&watcher_, &QFutureWatcherBase::finished, this, &ComparisonRunner::onJobFinished);
}

ComparisonRunner::~ComparisonRunner() {
  if (cancel_) cancel_->store(true);
  watcher_.waitForFinished();
}

bool ComparisonRunner::busy() const { return running_ || pending_.has_value(); }

void ComparisonRunner::cancel() {
  pending_.reset();
  if (running_ && cancel_) cancel_->store(true);
}

void ComparisonRunner::outcomeDrawn(quint64 id) {
  if (id > drawn_->load()) drawn_->store(id);
}

quint64 ComparisonRunner::submit(RunRequest request) {
  const quint64 id = ++next_id_;
  pending_ = std::move(request);
  pending_id_ = id;
  if (running_) {
    if (cancel_) cancel_->store(true);  // superseded: stop between stages, then run the newest
  } else {
    launch();
  }
  return id;
}

void ComparisonRunner::launch() {
  if (!pending_) return;
  RunRequest request = std::move(*pending_);
  pending_.reset();
  running_id_ = pending_id_;
  running_ = true;
  cancel_ = std::make_shared<std::atomic<bool>>(false);
  auto cancel = cancel_;
  auto backend = backend_;
  const quint64 id = running_id_;
  // The picture before the metrics: posted to the GUI thread, shown when this is still the newest request.
  auto early = [this, id](std::shared_ptr<const RunOutcome> outcome) {
    QMetaObject::invokeMethod(
        this,
        [this, id, outcome] {
          if (running_ && running_id_ == id && !pending_) emit finished(id, outcome);
        },
        Qt::QueuedConnection);
  };
  // Waits until the window drew the early outcome (bounded: a window that never says so costs 2 s at most).
  auto settle = [drawn = drawn_, cancel, id] {
    const auto start = std::chrono::steady_clock::now();
    while (drawn->load() < id && !cancel->load() && std::chrono::steady_clock::now() - start < k_settle_limit)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  auto report = [this, id](QString text) {
    QMetaObject::invokeMethod(
        this,
        [this, id, text] {
          if (running_ && running_id_ == id && !pending_) emit progress(id, text);
        },
        Qt::QueuedConnection);
  };
  watcher_.setFuture(QtConcurrent::run([request = std::move(request), backend, cancel, early, settle, report]() {
    return std::make_shared<const RunOutcome>(execute(request, *backend, *cancel, early, settle, report));
  }));
}

void ComparisonRunner::onJobFinished() {
  running_ = false;
  std::shared_ptr<const RunOutcome> outcome = watcher_.future().result();
  if (pending_) {
    launch();  // superseded while running: its outcome is stale, the newest request goes next
    return;
  }
  emit finished(running_id_, std::move(outcome));
}

const std::vector<attn::Companion>& RunOutcome::others() const {
  static const std::vector<attn::Companion> none;
  return pooled ? pooled->subject.others : none;
}

namespace {

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Runs predicted to take longer say so in the status bar.
constexpr double k_long_run_s = 2;

QString durationText(double seconds) {
  const long t = std::lround(seconds);
  return t >= 3600 ? QStringLiteral("%1:%2:%3").arg(t / 3600).arg((t / 60) % 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'))
         : t >= 60 ? QStringLiteral("%1 min %2 s").arg(t / 60).arg(t % 60)
                   : QStringLiteral("%1 s").arg(t);
}

}  // namespace

RunOutcome ComparisonRunner::execute(const RunRequest& request, Backend& backend, const std::atomic<bool>& cancel,
                                     const std::function<void(std::shared_ptr<const RunOutcome>)>& early,
                                     const std::function<void()>& settle, const std::function<void(QString)>& report) {
  RunOutcome outcome;
  outcome.causal = request.causal;
  outcome.repooled = request.repool.has_value();
  try {
    scene::Subject subject;
    if (request.repool) {
      subject = *request.repool;
    } else {
      if (!backend.backend || backend.choice != request.backend) {
        backend.backend.reset();  // one backend at a time (a GPU one holds a device)
        backend.last.reset();
        backend.cache = {};
        attn::gpu::BackendSelection selection = attn::gpu::makeBackend(request.backend);
        backend.backend = std::move(selection.backend);
        backend.notice = std::move(selection.notice);
        backend.choice = request.backend;
      }
      if (!backend.backend) throw attn::UserError("no backend could be created");
      const auto compare_start = std::chrono::steady_clock::now();
      attn::Params params = attn::Params::resolveNumbers(request.mechanism->params(), request.params);
      // Kept only while small (≤ 128 MB: N = 2048 takes 1.5 MB): the comparison holds its own copy.
      const attn::InputSpec& spec = request.input;
      const bool cacheable = !request.imported && spec.n * (2 * spec.d + spec.dv) <= (attn::Index(1) << 25);
      if (!cacheable) {
        backend.generated.reset();
      } else if (!backend.generated || backend.generated_spec != spec) {
        backend.generated.reset();  // one set at a time
        backend.generated = std::make_shared<const attn::Inputs>(attn::generate(spec));
        backend.generated_spec = spec;
      }
      attn::Inputs inputs = request.imported ? *request.imported
                            : cacheable      ? *backend.generated
                                             : attn::generate(spec);
      inputs.spec.seed = request.input.seed;
      attn::CompareOptions options;
      options.run.causal = request.causal;
      options.run.seed = request.input.seed;
      options.run.cancel = &cancel;
      options.with_weight_metrics = false;  // after the picture (below)
      options.with_reference = false;       // likewise: the float64 reference is O(N²·d) on the CPU
      options.reuse = backend.last;
      // A long run says how long it will be, then how far it is (Cancel stops it between blocks of work).
      const double predicted =
          attn::predictCompareSeconds(inputs, *request.mechanism, params, options.run, *backend.backend, false);
      const QString in_all = predicted >= k_long_run_s
                                 ? QStringLiteral(" \u00B7 about %1 in all").arg(durationText(predicted))
                                 : QString();
      if (!in_all.isEmpty()) report(QStringLiteral("running\u2026") + in_all);
      auto last = std::chrono::steady_clock::now();
      const attn::ProgressFn progress = [&](const std::string& stage, double fraction) {
        if (std::chrono::steady_clock::now() - last < std::chrono::milliseconds(200)) return;
        last = std::chrono::steady_clock::now();
        report(QStringLiteral("%1 %2 %").arg(QString::fromStdString(stage)).arg(int(fraction * 100)) + in_all);
      };
      options.run.progress = &progress;
      subject.main = std::make_shared<const attn::Comparison>(
          attn::compare(std::move(inputs), request.mechanism, std::move(params), *backend.backend, options));
      backend.last = subject.main;
      // Compare mode: the others on the same inputs (a failure stays in its own panel).
      std::vector<attn::CompanionSpec> others;
      for (const RunRequest::Other& o : request.others)
        others.push_back({o.mechanism, attn::Params::resolveNumbers(o.mechanism->params(), o.params)});
      subject.others = attn::compareCompanions(subject.main, others, *backend.backend, options);
      outcome.compare_ms = msSince(compare_start);
      subject.notes = subject.main->params.notes();
      const attn::BackendInfo info = backend.backend->info();
      subject.backend_label = info.name + (info.device.empty() ? "" : " \xC2\xB7 " + info.device);
    }
    if (cancel.load()) throw attn::Cancelled();
    // Only the newest run's exact image is cached: a repool of it reuses it too.
    auto pooled = std::make_shared<scene::Pooled>(
        scene::pool(subject, request.view, backend.backend.get(), &cancel, &backend.cache));
    outcome.backend_notice = backend.notice;
    if (backend.backend) {  // Auto on a GPU whose device was lost goes on on the CPU: say so, every run
      const std::string lost = backend.backend->notice();
      if (!lost.empty()) outcome.backend_notice += (outcome.backend_notice.empty() ? "" : " ") + lost;
    }
    outcome.comparison = pooled->subject.main;
    outcome.pooled = pooled;
    outcome.ok = true;
    // The float64 reference (the relative error), row TV and mass recall once the picture is on its way.
    bool pending = attn::metricsPending(*pooled->subject.main);
    for (const attn::Companion& other : pooled->subject.others)  // one that failed before is not tried again
      pending = pending || (other.error.empty() && other.comparison && attn::metricsPending(*other.comparison));
    if (pending) {
      auto first = std::make_shared<RunOutcome>(outcome);
      first->metrics_pending = true;
      early(std::move(first));
      // The times again once the window drew the picture and is idle (see RunOutcome::compare_ms).
      std::vector<attn::Timing> timings;
      if (!request.repool) {
        settle();
        attn::RunOptions run;
        run.causal = request.causal;
        run.seed = request.input.seed;
        run.cancel = &cancel;
        attn::TimingOptions each;
        each.budget_ms /= double(1 + pooled->subject.others.size());  // 1 s in all
        each.exact = pooled->subject.main->exact_runs <= 1;  // a reused exact keeps its median
        timings.push_back(attn::measureTimes(*pooled->subject.main, *backend.backend, run, each));
        each.exact = false;  // the others share main's exact run
        for (const attn::Companion& other : pooled->subject.others)
          timings.push_back(other.error.empty() && other.comparison
                                ? attn::measureTimes(*other.comparison, *backend.backend, run, each)
                                : attn::Timing{});
      }
      auto complete = std::make_shared<scene::Pooled>(*pooled);  // the same images, completed comparisons
      attn::completeMetrics(complete->subject.main, complete->subject.others, &cancel);
      if (!timings.empty()) {
        auto timed = [](std::shared_ptr<const attn::Comparison>& c, attn::Timing t, const attn::Timing& exact) {
          if (!c || (t.approx_runs == 0 && exact.exact_runs == 0)) return;
          t.exact_ms = exact.exact_ms;
          t.exact_runs = exact.exact_runs;
          auto copy = std::make_shared<attn::Comparison>(*c);
          attn::applyTiming(*copy, t);
          c = std::move(copy);
        };
        timed(complete->subject.main, timings[0], timings[0]);
        for (size_t k = 0; k < complete->subject.others.size() && k + 1 < timings.size(); ++k)
          timed(complete->subject.others[k].comparison, timings[k + 1], timings[0]);
      }
      if (!request.repool) backend.last = complete->subject.main;  // the next parameter change reuses its reference
      outcome.comparison = complete->subject.main;
      outcome.pooled = std::move(complete);
    }
  } catch (...) {  // the one error policy of every boundary (attn::failureMessage)
    outcome.error = attn::failureMessage();
    outcome.cancelled = cancel.load();
    // A bug or a lost device: keep the window alive, and start from a fresh backend next time.
    if (outcome.error.rfind("internal error", 0) == 0) backend.backend.reset();
  }
  // A failure after the picture went out early (in the float64 reference or the metrics) is a failure too.
  if (!outcome.error.empty()) outcome.ok = false;
  return outcome;
}

}  // namespace attnlab::gui
