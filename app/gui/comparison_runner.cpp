// ComparisonRunner: attn::compare() and weight pooling on a worker thread, newest request wins.
#include "app/gui/comparison_runner.h"

#include <QtConcurrent/QtConcurrentRun>
#include <algorithm>
#include <chrono>
#include <exception>

#include "attention/mechanisms/bucket_engine.h"
#include "attention/pooling.h"
#include "render/gpu/vulkan_backend.h"

namespace attnlab::gui {


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
  /// The exact weights pooled for the last outcome, reused while exact, window, pooling, size and order
  /// are the same.
  struct ExactPool {
    std::shared_ptr<const attn::Inputs> reference;  // held, so its address cannot be reused by another
    scene::ViewWindow window;
    attn::Pooling pooling = attn::Pooling::Max;
    attn::Index max_pixels = 0;
    std::string order;
    std::vector<std::int32_t>
        permutation;  // the order's tokens: a grouping of the same name changes with the parameters
    attn::Matrix pooled;
    RunOutcome::Shown shown;
  } exact_pool;
};

ComparisonRunner::ComparisonRunner(QObject* parent) : QObject(parent), backend_(std::make_shared<Backend>()) {
  connect(&watcher_, &QFutureWatcherBase::finished, this, &ComparisonRunner::onJobFinished);
}

ComparisonRunner::~ComparisonRunner() {
  if (cancel_) cancel_->store(true);
  watcher_.waitForFinished();
}

bool ComparisonRunner::busy() const { return running_ || pending_.has_value(); }

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
  watcher_.setFuture(QtConcurrent::run([request = std::move(request), backend, cancel, early]() {
    return std::make_shared<const RunOutcome>(execute(request, *backend, *cancel, early));
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

using attn::pool;
using attn::poolGrouping;
using attn::poolPattern;

namespace {

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

RunOutcome ComparisonRunner::execute(const RunRequest& request, Backend& backend, const std::atomic<bool>& cancel,
                                     const std::function<void(std::shared_ptr<const RunOutcome>)>& early) {
  RunOutcome outcome;
  outcome.pooling = request.pooling;
  outcome.max_pixels = request.max_pixels;
  outcome.causal = request.causal;
  outcome.window = request.window;
  outcome.difference_requested = request.difference;
  outcome.repooled = static_cast<bool>(request.repool);
  try {
    std::shared_ptr<const attn::Comparison> comparison = request.repool;
    if (!comparison) {
      if (!backend.backend || backend.choice != request.backend) {
        backend.backend.reset();  // one backend at a time (a GPU one holds a device)
        backend.last.reset();
        backend.exact_pool = {};
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
      comparison = std::make_shared<const attn::Comparison>(
          attn::compare(std::move(inputs), request.mechanism, std::move(params), *backend.backend, options));
      backend.last = comparison;
      outcome.compare_ms = msSince(compare_start);
    }
    const auto start = std::chrono::steady_clock::now();
    // Token orders: the mechanism's groupings, and the input's clusters when the generator has them.
    const attn::Index n = comparison->inputs.n(), m = comparison->inputs.m();
    std::vector<attn::Grouping> orders;
    if (n == m && n <= 4096) {
      for (const attn::Grouping& g : comparison->approx.explanation.groupings)
        if (attn::Index(g.order.size()) == n) orders.push_back(g);
      if (!comparison->inputs.cluster.empty())
        orders.push_back(attn::Grouping::fromLabels("input clusters", comparison->inputs.cluster,
                                                    std::int32_t(comparison->inputs.spec.clusters)));
    }
    for (const attn::Grouping& g : orders) outcome.orders.push_back(g.name);
    const attn::Grouping* order = nullptr;
    for (const attn::Grouping& g : orders)
      if (g.name == request.order) order = &g;
    outcome.order = order ? order->name : std::string();
    // An order change: where each pixel row of the new images was in the old order (for the animation).
    if (request.previous_order && *request.previous_order != outcome.order && n == m && request.window.full()) {
      const attn::Grouping* previous = nullptr;
      for (const attn::Grouping& g : orders)
        if (g.name == *request.previous_order) previous = &g;
      std::vector<std::int32_t> rank(static_cast<size_t>(n));  // token → position in the previous order
      for (attn::Index k = 0; k < n; ++k) rank[size_t(previous ? previous->order[size_t(k)] : k)] = std::int32_t(k);
      std::vector<attn::Index> s, e;
      attn::tilePixelSpans(n, std::min(n, request.max_pixels), s, e);
      for (size_t q = 0; q < s.size(); ++q) {
        double sum = 0;
        for (attn::Index pos = s[q]; pos < e[q]; ++pos) sum += rank[size_t(order ? order->order[size_t(pos)] : pos)];
        outcome.moved_from.push_back(float((sum / double(e[q] - s[q]) + 0.5) / double(n)));
      }
    }
    if (const attn::Grouping* g = order ? order : (orders.empty() ? nullptr : &orders.front())) {
      outcome.token_group_name = g->name;
      outcome.token_groups.resize(size_t(n));
      for (attn::Index pos = 0; pos < n; ++pos)
        outcome.token_groups[size_t(pos)] = g->label[size_t(order ? order->order[size_t(pos)] : pos)];
    }
    // The window on a matrix of rows × cols.
    const scene::ViewWindow& window = request.window;
    auto shownOf = [&](attn::Index rows, attn::Index cols) {
      return RunOutcome::Shown{scene::viewRange(window.row0, window.row1, rows), scene::viewRange(window.col0, window.col1, cols)};
    };
    const RunOutcome::Shown whole_square = shownOf(n, m);
    if (order) {  // the group strip: one label per pixel row of the images pooled below
      std::vector<attn::Index> rs, re;
      attn::tilePixelSpans(whole_square.rows.size(), std::min(whole_square.rows.size(), request.max_pixels), rs, re);
      for (size_t q = 0; q < rs.size(); ++q)
        outcome.row_groups.push_back(order->label[size_t(order->order[size_t(whole_square.rows.begin + rs[q])])]);
    }
    auto weightsOf = [&](const attn::ImpliedWeights& w) {
      // Only N×N matrices are sorted (a memory's reference, product-key memory, has n² columns).
      return order && w && w.rows() == n && w.cols() == n ? attn::permuteWeights(w, order->order) : w;
    };
    auto patternOf = [&](const attn::Pattern& p) {
      return order && p.rows == n && p.cols == n ? attn::permutePattern(p, order->order) : p;
    };
    auto poolWindow = [&](const attn::ImpliedWeights& weights, RunOutcome::Shown& shown) {
      if (!weights) return attn::Matrix();
      shown = shownOf(weights.rows(), weights.cols());
      return pool(weightsOf(weights), shown.rows, shown.cols, request.max_pixels, request.pooling, backend.backend.get());
    };
    {
      Backend::ExactPool& cache = backend.exact_pool;
      const std::shared_ptr<const attn::Inputs>& reference = comparison->reference_inputs;
      std::vector<std::int32_t> permutation = order ? order->order : std::vector<std::int32_t>();
      if (reference && cache.reference == reference && cache.window == request.window &&
          cache.pooling == request.pooling && cache.max_pixels == request.max_pixels && cache.order == outcome.order &&
          cache.permutation == permutation) {
        outcome.exact_pooled = cache.pooled;  // exact did not change: no need to pool it again
        outcome.exact_shown = cache.shown;
      } else {
        outcome.exact_pooled = poolWindow(comparison->exact.explanation.weights, outcome.exact_shown);
        cache = {reference,     request.window,         request.pooling,      request.max_pixels,
                 outcome.order, std::move(permutation), outcome.exact_pooled, outcome.exact_shown};
      }
    }
    if (cancel.load()) throw attn::Cancelled();
    outcome.approx_pooled = poolWindow(comparison->approx.explanation.weights, outcome.approx_shown);
    if (request.difference && comparison->approx.explanation.weights && comparison->exact.explanation.weights &&
        comparison->approx.explanation.weights.rows() == n && comparison->approx.explanation.weights.cols() == m &&
        comparison->exact.explanation.weights.rows() == n && comparison->exact.explanation.weights.cols() == m) {
      // Mean pooling keeps the sign: a pixel shows the average of what the mechanism adds or drops there.
      const RunOutcome::Shown& s = whole_square;
      outcome.difference_pooled =
          pool(weightsOf(comparison->approx.explanation.weights), s.rows, s.cols, request.max_pixels, attn::Pooling::Mean,
               backend.backend.get()) -
          pool(weightsOf(comparison->exact.explanation.weights), s.rows, s.cols, request.max_pixels, attn::Pooling::Mean,
               backend.backend.get());
      if (cancel.load()) throw attn::Cancelled();
    }
    if (!window.full()) {  // the whole matrix, small, for the minimap
      const attn::ImpliedWeights& whole = comparison->approx.explanation.weights ? comparison->approx.explanation.weights
                                                                                 : comparison->exact.explanation.weights;
      if (whole) {
        outcome.minimap = pool(weightsOf(whole), RunOutcome::k_minimap_pixels, request.pooling, backend.backend.get());
        outcome.minimap_rows = whole.rows();
        outcome.minimap_cols = whole.cols();
      }
    }
    // A pattern with no entry (every key reached through a summary, as in memory-compressed attention)
    // draws an empty square: the selector starts at the steps instead (their coverage shows the summaries).
    if (const auto& pattern = comparison->approx.explanation.pattern; pattern && pattern->nnz() > 0) {
      outcome.pattern_shown = shownOf(pattern->rows, pattern->cols);
      outcome.pattern_pooled =
          poolPattern(patternOf(*pattern), outcome.pattern_shown.rows, outcome.pattern_shown.cols, request.max_pixels);
      outcome.pattern_components = pattern->components;
      if (outcome.pattern_components.empty()) outcome.pattern_components.push_back("scored");
    }
    auto findGrouping = [&](const attn::Step& step, const std::string& name) -> const attn::Grouping* {
      for (const attn::Grouping& g : step.view->groupings)
        if (g.name == name) return &g;
      for (const attn::Grouping& g : comparison->approx.explanation.groupings)
        if (g.name == name) return &g;
      return nullptr;
    };
    for (const attn::Step& step : comparison->approx.explanation.steps) {
      if (!step.view) continue;
      // The step's own order (the "sort" stage) wins over the user's; only square N×N images are sorted.
      const attn::Grouping* step_order = step.sorted_by.empty() ? order : findGrouping(step, step.sorted_by);
      if (step_order && attn::Index(step_order->order.size()) != n) step_order = nullptr;
      RunOutcome::StepPattern sp{step.title, step.caption, {}, {}, 0, 0, {}, {}, true};
      bool permuted = false;  // drawn in step_order (a factor, or a pattern that is not N×N, is not)
      if (const auto& p = step.view->pattern) {
        const bool square = p->rows == n && p->cols == n;
        permuted = square && step_order;
        sp.shown = shownOf(p->rows, p->cols);
        sp.pooled = poolPattern(square && step_order ? attn::permutePattern(*p, step_order->order) : *p, sp.shown.rows,
                                sp.shown.cols, request.max_pixels);
        sp.components = p->components;
        if (sp.components.empty()) sp.components.push_back("scored");
        sp.rows = p->rows;
        sp.cols = p->cols;
        sp.what = "pattern";
      } else if (!step.view->groupings.empty() && attn::Index(step.view->groupings.front().label.size()) == n) {
        const attn::Grouping& g = step.view->groupings.front();
        permuted = step_order != nullptr;
        sp.shown = shownOf(n, n);
        sp.pooled = poolGrouping(g, step_order ? &step_order->order : nullptr, sp.shown.rows, sp.shown.cols,
                                 request.max_pixels);
        sp.components = attn::mech::groupColourNames(g.groups, "group");
        sp.rows = sp.cols = n;
        sp.what = "same group: " + g.name;
      } else if (!step.view->factors.empty() && step.view->factors.front().value.size() > 0) {
        const auto f = std::make_shared<const attn::Matrix>(step.view->factors.front().value);
        const attn::ImpliedWeights values(f->rows(), f->cols(), [f](attn::Range rows, attn::Range cols) {
          return attn::Matrix(f->block(rows.begin, cols.begin, rows.size(), cols.size()));
        });
        sp.signed_values = f->size() > 0 && f->minCoeff() < 0;
        sp.pooled = pool(values, request.max_pixels, sp.signed_values ? attn::Pooling::Mean : request.pooling, nullptr);
        sp.rows = f->rows();
        sp.cols = f->cols();
        sp.shown = {{0, sp.rows}, {0, sp.cols}};
        sp.zoomable = false;  // a small factor: shown whole
        sp.what = step.view->factors.front().name;
      } else {
        continue;
      }
      if (permuted && (!order || step_order->name != order->name)) {  // copies of a grouping: compared by name
        sp.what += " \xC2\xB7 sorted by " + step_order->name;
        sp.own_order = true;
      }
      outcome.step_patterns.push_back(std::move(sp));
      if (cancel.load()) throw attn::Cancelled();
    }
    // Compare mode: the other mechanisms on the same inputs (a failure stays in its own panel).
    const size_t other_count = request.repool ? request.repool_others.size() : request.others.size();
    for (size_t k = 0; k < other_count; ++k) {
      RunOutcome::OtherOutcome other;
      std::shared_ptr<const attn::Comparison> c;
      if (request.repool) {
        c = request.repool_others[k].comparison;
        other.id = request.repool_others[k].id;
        other.error = request.repool_others[k].error;
      } else {
        other.id = request.others[k].mechanism->info().id;
      }
      try {
        if (!c && !request.repool) {
          const RunRequest::Other& o = request.others[k];
          attn::CompareOptions options;
          options.run.causal = request.causal;
          options.run.seed = request.input.seed;
          options.run.cancel = &cancel;
          options.with_weight_metrics = false;
          options.with_reference = false;
          options.reuse = comparison;  // same inputs: exact and its reference are shared when they agree
          c = std::make_shared<const attn::Comparison>(
              attn::compare(comparison->inputs, o.mechanism, attn::Params::resolveNumbers(o.mechanism->params(), o.params),
                            *backend.backend, options));
        }
        if (c) {
          other.pooled = poolWindow(c->approx.explanation.weights, other.shown);
          if (other.pooled.size() == 0) other.error = attn::noWeightsText(*c);
        }
      } catch (const attn::Cancelled&) {
        throw;
      } catch (const std::exception& e) {
        other.error = e.what();
        c.reset();
      }
      other.comparison = std::move(c);
      outcome.others.push_back(std::move(other));
      if (cancel.load()) throw attn::Cancelled();
    }
    std::vector<std::int32_t> position(order ? order->order.size() : 0);  // token → sorted position
    for (size_t k = 0; k < position.size(); ++k) position[size_t(order->order[k])] = std::int32_t(k);
    for (const attn::TokenSet& set : comparison->approx.explanation.special) {
      auto& marks = set.queries_only ? outcome.row_marks : outcome.marks;
      if (marks.size() + set.indices.size() <= 512)
        for (attn::Index t : set.indices) marks.push_back(order ? position[size_t(t)] : t);
    }
    outcome.pool_ms = msSince(start);
    outcome.notes = comparison->params.notes();
    for (const std::string& note : comparison->approx.explanation.notes) outcome.notes.push_back(note);
    if (backend.backend) {
      const attn::BackendInfo info = backend.backend->info();
      outcome.backend_label = info.name + (info.device.empty() ? "" : " \xC2\xB7 " + info.device);
    }
    outcome.backend_notice = backend.notice;
    // Auto on a GPU whose device was lost goes on on the CPU: say so (once lost, every run says it).
    if (const auto* gpu = dynamic_cast<const attn::gpu::VulkanBackend*>(backend.backend.get()); gpu && gpu->fellBack())
      outcome.backend_notice += (outcome.backend_notice.empty() ? "" : " ") + gpu->fallbackNotice();
    outcome.comparison = std::move(comparison);
    outcome.ok = true;
    // The float64 reference (the relative error), row TV and mass recall once the picture is on its way.
    auto incomplete = [](const std::shared_ptr<const attn::Comparison>& c) {
      return c && (!c->weight_metrics || c->reference.size() == 0);
    };
    bool pending = incomplete(outcome.comparison);
    for (const RunOutcome::OtherOutcome& other : outcome.others)  // one that failed before is not tried again
      pending = pending || (other.error.empty() && incomplete(other.comparison));
    if (pending) {
      auto first = std::make_shared<RunOutcome>(outcome);
      first->metrics_pending = true;
      early(std::move(first));
      const attn::Comparison* main = nullptr;  // the others share its reference when they ran on the same
      auto complete = [&](std::shared_ptr<const attn::Comparison>& c) {
        if (!incomplete(c)) return;
        auto full = std::make_shared<attn::Comparison>(*c);
        if (full->reference.size() == 0 && main && main->reference_inputs == full->reference_inputs &&
            main->reference_causal == full->reference_causal)
          full->reference = main->reference;
        attn::addReference(*full, &cancel);
        if (cancel.load()) throw attn::Cancelled();
        if (!full->weight_metrics) attn::addWeightMetrics(*full);
        c = std::move(full);
        if (cancel.load()) throw attn::Cancelled();
      };
      complete(outcome.comparison);
      main = outcome.comparison.get();
      if (!request.repool) backend.last = outcome.comparison;  // the next parameter change reuses its reference
      for (RunOutcome::OtherOutcome& other : outcome.others) {  // a failure here stays in that panel
        if (!other.error.empty()) continue;
        try {
          complete(other.comparison);
        } catch (const attn::Cancelled&) {
          throw;
        } catch (const std::bad_alloc&) {
          other.error = "out of memory for its float64 reference";
        } catch (const std::exception& e) {
          other.error = e.what();
        }
      }
    }
  } catch (const attn::Cancelled&) {
    outcome.error = "cancelled";
  } catch (const attn::UserError& e) {
    outcome.error = e.what();
  } catch (const std::bad_alloc&) {
    outcome.error = "out of memory: try a smaller N";
  } catch (const std::exception& e) {
    // A bug or a lost device: say so, keep the window alive, and start from a fresh backend next time.
    outcome.error = std::string("internal error: ") + e.what();
    backend.backend.reset();
  } catch (...) {
    outcome.error = "internal error (unknown exception)";
    backend.backend.reset();
  }
  // A failure after the picture went out early (in the float64 reference or the metrics) is a failure too.
  if (!outcome.error.empty()) outcome.ok = false;
  return outcome;
}

}  // namespace attnlab::gui
