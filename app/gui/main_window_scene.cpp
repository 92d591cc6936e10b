// MainWindow, run → pool → show: the view request from the controls, runs and repools, and the scene the
// view model composes for the viewport.
#include "app/gui/main_window.h"
#include "app/gui/main_window_internal.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QPushButton>
#include <QFile>
#include <QFileDialog>
#include <QSpinBox>
#include <QLineEdit>
#include <QFormLayout>
#include <QDialogButtonBox>
#include <QDialog>
#include <QFileInfo>
#include <QFont>
#include <QGuiApplication>
#include <QIcon>
#include <QKeyEvent>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QPainter>
#include <QPixmap>
#include <QPlainTextEdit>
#include <QPolygonF>
#include <QSettings>
#include <QSignalBlocker>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTextEdit>
#include <QThread>
#include <QToolBar>
#include <QToolButton>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>

#include "app/figures/views.h"
#include "app/gui/curves_panel.h"
#include "app/gui/elided_label.h"
#include "app/gui/info_card.h"
#include "app/gui/input_panel.h"
#include "app/gui/log_panel.h"
#include "app/gui/mechanism_browser.h"
#include "app/gui/parameter_panel.h"
#include "app/gui/row_panel.h"
#include "attention/inputs_json.h"
#include "attention/npy.h"
#include "render/view/heatmap_window.h"

namespace attnlab::gui {

using namespace internal;

scene::ViewRequest MainWindow::viewRequest() const {
  scene::ViewRequest v;
  v.pixels = panelPixels();
  v.pooling = static_cast<attn::Pooling>(pooling_->currentData().toInt());
  v.order = order_ && order_->currentIndex() > 0 ? order_->currentText().toStdString() : std::string();
  if (viewport_) v.window = viewport_->view();
  v.previous_order = previous_order_;
  const scene::ColorScale scale = colorScale();
  v.scale = scale.mode;
  v.floor = scale.floor;
  v.colormap = static_cast<scene::Colormap>(std::max(0, colormap_->currentIndex()));
  v.layout = layout_;
  if (selected_token_ >= 0) v.pixels_picked = {selected_token_};
  // The third panel: what the selector shows (the pattern, a step, the difference, nothing).
  const QString third = pattern_view_->currentText();
  v.third = scene::Third::Auto;
  if (third == QLatin1String(k_difference_view)) v.third = scene::Third::Difference;
  else if (third == QString::fromUtf8(k_no_third_panel)) v.third = scene::Third::None;
  else if (third == QLatin1String("pattern")) v.third = scene::Third::Pattern;
  else if (outcome_ && outcome_->pooled)
    for (std::size_t k = 0; k < outcome_->pooled->steps.size(); ++k)
      if (third == QString::fromStdString(outcome_->pooled->steps[k].title)) {
        v.third = scene::Third::Step;
        v.step = int(k);
      }
  return v;
}

RunRequest MainWindow::baseRequest() const {
  RunRequest request;
  request.mechanism = mechanism_;
  for (const std::string& id : compare_ids_) {
    if (id == mechanism_id_) continue;
    const auto other = attn::findMechanism(id);
    if (!other) continue;
    const auto remembered = params_by_id_.find(id);  // the values last set while it was selected
    request.others.push_back({other, remembered != params_by_id_.end() ? remembered->second : std::map<std::string, double>{}});
  }
  request.params = parameters_->values();
  request.input = input_->spec();
  request.imported = input_->imported();
  request.causal = input_->causal();
  request.backend = input_->backend();
  request.view = viewRequest();
  return request;
}

void MainWindow::startRun() {
  if (!mechanism_) return;
  params_by_id_[mechanism_id_] = parameters_->values();
  curves_->noteWindowRun();  // a sweep in flight shares the processor (and the heap count) with this run
  curves_->setInput(input_->spec(), input_->causal(), input_->backend(), input_->imported() != nullptr);
  parameters_->setCausal(input_->causal());  // a control without effect in this mode says so
  latest_id_ = runner_.submit(baseRequest());
  previous_order_.reset();
  status_time_->setText(tr("running\xE2\x80\xA6"));
  cancel_timer_.start();
}

void MainWindow::cancelRun() {
  if (!runner_.busy()) return;
  run_timer_.stop();
  runner_.cancel();
  log_->info(tr("run cancelled"));
}

void MainWindow::scheduleRepool() {
  if (!outcome_ || !outcome_->ok || !outcome_->pooled) return;
  RunRequest request = baseRequest();
  // Pooling again needs the comparisons of the same mechanisms; after a change of the list, run.
  std::vector<std::string> ids, had;
  for (const RunRequest::Other& o : request.others) ids.push_back(o.mechanism->info().id);
  for (const attn::Companion& o : outcome_->others()) had.push_back(o.id);
  if (ids != had) {
    scheduleRun();
    return;
  }
  request.others.clear();
  request.repool = outcome_->pooled->subject;
  latest_id_ = runner_.submit(std::move(request));
  previous_order_.reset();
}

attn::Index MainWindow::panelPixels() const {
  if (!viewport_ || viewport_container_->width() < 64) return 512;
  // The panel size the viewport's layout gives square panels of the scene to come, in device pixels: as many
  // panels as the last scene had, or as compare mode will show.
  scene::Scene probe;
  const int compared = 2 + static_cast<int>(std::count_if(compare_ids_.begin(), compare_ids_.end(),
                                                          [&](const std::string& id) { return id != mechanism_id_; }));
  probe.panels.resize(static_cast<size_t>(compared > 2 ? compared : panel_count_));
  for (auto& p : probe.panels) p.source_rows = p.source_cols = 1;
  probe.ui_scale = presenter_ ? k_presenter_scale : 1.0f;
  const scene::SceneLayout layout = scene::layoutScene(static_cast<float>(viewport_container_->width()),
                                                     static_cast<float>(viewport_container_->height()), probe);
  const double side = layout.panels.empty() ? 512 : layout.panels.front().w * viewport_->devicePixelRatio();
  return std::clamp<attn::Index>(static_cast<attn::Index>(side), 64, k_max_pool_pixels);
}

scene::ColorScale MainWindow::colorScale() const {
  scene::ColorScale scale;
  scale.mode = static_cast<scene::ScaleMode>(scale_->currentData().toInt());
  scale.floor = static_cast<float>(floor_->currentData().toDouble());
  return scale;
}

void MainWindow::onRunFinished(quint64 id, std::shared_ptr<const RunOutcome> outcome) {
  if (id != latest_id_) return;  // an older request that finished after a newer one was submitted
  cancel_timer_.stop();
  cancel_run_->hide();
  if (!outcome->ok) {
    outcome_.reset();
    // A cancelled run is no error: the picture says so, and how to run it again (an older picture would show
    // settings the controls no longer have).
    if (!outcome->cancelled) showError(QString::fromStdString(outcome->error));
    status_time_->setText(outcome->cancelled ? tr("cancelled") : QString());
    if (viewport_) {
      scene::Scene scene;
      scene.placeholder =
          outcome->cancelled
              ? (mechanism_ ? mechanism_->info().title + ": " : std::string()) +
                    "run cancelled. Change a setting, or press Ctrl+Shift+R, to run again."
              : (mechanism_ ? mechanism_->info().title + " could not run: " : std::string()) + outcome->error;
      scene.light = light_;
      scene.ui_scale = presenter_ ? k_presenter_scale : 1.0f;
      viewport_->setScene(std::move(scene));
    }
    emit runFinished();
    return;
  }
  // An order change: animate the permutation (once per request: not again when its metrics arrive).
  const bool animate = !outcome->pooled->moved_from.empty() &&
                       !(outcome_ && outcome_->pooled->moved_from == outcome->pooled->moved_from &&
                         outcome_->pooled->order == outcome->pooled->order);
  outcome_ = std::move(outcome);
  if (animate) {
    sort_frame_ = 0;
    sort_timer_.start();
  }
  last_error_.clear();
  status_error_->setStyleSheet(QString());
  error_box_->hide();
  refreshSelectedRow();  // the picked query's weights in this result, at its place in this order
  showOutcome();
  if (!pending_order_.empty()) {  // a restored session's order, now that the groupings exist
    const std::string order = std::move(pending_order_);
    pending_order_.clear();
    setOrder(order);
  }
  // Zoomed or panned while this was computed: pool the window now on screen.
  if (viewport_ && outcome_->pooled->request.window != viewport_->view()) zoom_timer_.start();
  if (outcome_->metrics_pending) {
    awaiting_drawn_ = id;
    reportDrawn();
  }
  emit runFinished();
}

void MainWindow::reportDrawn() {
  if (!awaiting_drawn_ || sort_timer_.isActive()) return;
  if (viewport_ && viewport_->isExposed() && viewport_->renderedVersion() < viewport_->sceneVersion()) return;
  runner_.outcomeDrawn(awaiting_drawn_);
  awaiting_drawn_ = 0;
}

void MainWindow::showOutcome() {
  if (!outcome_ || !outcome_->ok || !outcome_->pooled) return;
  const scene::Pooled& pooled = *outcome_->pooled;
  const attn::Comparison& c = *outcome_->comparison;
  const attn::MechanismInfo& info = c.mechanism->info();

  // The controls list what this outcome offers (keeping the current choices when they are still there).
  {
    QStringList orders{tr("position")};
    for (const std::string& o : pooled.orders) orders << QString::fromStdString(o);
    QStringList existing;
    for (int i = 0; i < order_->count(); ++i) existing << order_->itemText(i);
    if (existing != orders) {
      const QSignalBlocker block(order_);
      order_->clear();
      order_->addItems(orders);
      order_->setCurrentIndex(
          pooled.order.empty() ? 0 : std::max(0, static_cast<int>(orders.indexOf(QString::fromStdString(pooled.order)))));
    }
    order_->setEnabled(orders.size() > 1);
    // A disabled Order says why in place (N above the sorting limit, no grouping).
    order_->setToolTip(orders.size() > 1 ? tr("Token order of the matrices: position, or sorted by a grouping")
                                         : tr("No order to choose: %1").arg(QString::fromStdString(pooled.orders_unavailable)));
  }
  {
    QStringList views;
    for (const std::string& choice : scene::thirdChoices(pooled)) views << QString::fromStdString(choice);
    if (views.size() == 1 && views.front() == QLatin1String(k_difference_view))
      views.prepend(QString::fromUtf8(k_no_third_panel));  // the difference only on request
    const QString current = pattern_view_->currentText();
    QStringList existing;
    for (int i = 0; i < pattern_view_->count(); ++i) existing << pattern_view_->itemText(i);
    if (existing != views) {
      const QSignalBlocker block(pattern_view_);
      pattern_view_->clear();
      pattern_view_->addItems(views);
      pattern_view_->setCurrentIndex(std::max(0, static_cast<int>(views.indexOf(current))));
    }
    pattern_view_->setEnabled(views.size() > 1);
    const bool compare_mode = !outcome_->others().empty();
    pattern_view_->setToolTip(compare_mode ? tr("Compare mode shows the other mechanisms in the third place")
                                           : tr("What the third panel shows: the pattern, a step, or the difference"));
    if (compare_mode) pattern_view_->setEnabled(false);
    const bool steps = !pooled.steps.empty();
    play_->setEnabled(steps && !compare_mode);
    if ((!steps || compare_mode) && play_->isChecked()) play_->setChecked(false);
  }
  // What is shown is the view model's decision; the window adds only its own state (the picked row, the help,
  // the theme, presenter scale, the step bar's play state) and the order animation's motion.
  const scene::ViewRequest request = viewRequest();
  scene::Scene scene = scene::compose(pooled, request);
  // The difference is pooled on request: a repool that already asked for it and came back without does not ask again.
  if (request.third == scene::Third::Difference && pooled.difference.values.size() == 0 &&
      pooled.request.third != scene::Third::Difference && !runner_.busy() && !run_timer_.isActive())
    scheduleRepool();
  scene.light = light_;
  scene.ui_scale = presenter_ ? k_presenter_scale : 1.0f;
  scene.help = helpLines();
  panel_count_ = static_cast<int>(scene.panels.size());
  if (sort_timer_.isActive() && !pooled.moved_from.empty()) {
    // The order animation: every pixel row and column slides from where its tokens were to where they
    // are now (smoothstep in time); where several land on one pixel the largest value shows.
    const double t0 = std::clamp(double(sort_frame_) / k_sort_frames, 0.0, 1.0), t = t0 * t0 * (3 - 2 * t0);
    const std::vector<float>& from = pooled.moved_from;
    const attn::Index p = attn::Index(from.size());
    std::vector<attn::Index> to(from.size());
    for (attn::Index k = 0; k < p; ++k)
      to[size_t(k)] = std::clamp<attn::Index>(
          attn::Index(std::lround((1 - t) * (double(from[size_t(k)]) * double(p) - 0.5) + t * double(k))), 0, p - 1);
    for (scene::Panel& panel : scene.panels) {
      if (panel.values.rows() != p || panel.values.cols() != p) continue;
      attn::Matrix moved = attn::Matrix::Zero(p, p);
      for (attn::Index a = 0; a < p; ++a)
        for (attn::Index b = 0; b < p; ++b) {
          float& v = moved(to[size_t(a)], to[size_t(b)]);
          v = std::max(v, panel.values(a, b));
        }
      panel.values = std::move(moved);
      panel.row_groups.clear();  // the strip and the marks return when the tokens have arrived
      panel.marks.clear();
      panel.row_marks.clear();
    }
  }
  if (selected_row_ >= c.inputs.n()) selected_row_ = -1;
  scene.selected_row = selected_row_;
  scene.steps.playing = step_timer_.isActive();
  const std::string footer = scene.footer;
  if (viewport_) viewport_->setScene(std::move(scene));
  // Pooled for another panel size (compare mode was left, the window resized): pool again at the new size.
  if (!outcome_->metrics_pending && pooled.request.pixels != panelPixels()) repool_timer_.start();

  status_time_->setText(tr("exact %1  \xC2\xB7  %2 %3  (%4)")
                            .arg(ms(c.exact_ms), QString::fromStdString(info.title), mechanismMs(c),
                                 QString::fromStdString(attn::describeTiming(c))));
  status_error_->setText(QString::fromStdString(attn::describeHeadline(c)));
  status_error_->setToolTip(QString::fromStdString(attn::describeError(c)));
  QStringList notices = startup_notices_;
  if (!outcome_->backend_notice.empty()) notices << QString::fromStdString(outcome_->backend_notice);
  for (const std::string& note : pooled.subject.notes) notices << QString::fromStdString(note);
  for (const std::string& note : c.approx.explanation.notes) notices << QString::fromStdString(note);
  if (outcome_ != logged_outcome_ && !outcome_->repooled && !outcome_->metrics_pending) {  // a new run (not a repool): into the log
    logged_outcome_ = outcome_;
    log_->info(tr("%1 on %2: exact %3, %4 %5; %6")
                   .arg(QString::fromStdString(info.id), QString::fromStdString(footer), ms(c.exact_ms),
                        QString::fromStdString(info.title), mechanismMs(c), QString::fromStdString(attn::describeError(c))));
    for (const QString& notice : notices)
      if (!logged_notices_.contains(notice)) {
        logged_notices_ << notice;
        log_->notice(notice);
      }
  }
  status_notice_->setText(notices.join(QStringLiteral("; ")));
  status_notice_->setToolTip(notices.join(QLatin1Char('\n')));
}

}  // namespace attnlab::gui
