#include "app/gui/curves_panel.h"

#include <QApplication>
#include <QComboBox>
#include <QCursor>
#include <QElapsedTimer>
#include <QFileDialog>
#include <QFontMetrics>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLegendMarker>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QScatterSeries>
#include <QtConcurrent/QtConcurrentRun>
#include <cmath>
#include <optional>

#include "app/gui/chart_style.h"
#include "app/report/summary.h"
#include "app/report/sweep_report.h"

namespace attnlab::gui {

namespace {
constexpr int k_least_chart = 120;       ///< chart height (px) the bottom dock always leaves
constexpr int k_most_legend_room = 360;  ///< the chart grows to fit its legend up to this height (px)
constexpr int k_tall_chart = 260;  ///< chart height (px) from which axis titles and the minor grid are drawn

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

QString tokensText(double n) {
  if (n >= 1024 && std::fmod(n, 1024) == 0) return QString::number(n / 1024) + "K";
  return QString::number(n, 'g', 6);
}

QString bytesText(double b) {
  if (!std::isfinite(b)) return QStringLiteral("—");
  const char* units[] = {"B", "KB", "MB", "GB"};
  int u = 0;
  while (b >= 1000 && u < 3) {
    b /= 1000;
    ++u;
  }
  return QString::number(b, 'g', 3) + " " + units[u];
}

}  // namespace

CurvesPanel::CurvesPanel(QWidget* parent) : QWidget(parent) {
  list_ = new QListWidget;
  list_->setToolTip(tr("Mechanisms to compute (exact attention is always computed: it is the baseline)"));
  for (const auto& m : attn::mechanisms()) {
    if (m->info().id == "exact") continue;
    auto* item = new QListWidgetItem(QString::fromStdString(m->info().id));
    item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
    item->setCheckState(Qt::Unchecked);
    item->setToolTip(QString::fromStdString(m->info().title + " · " + attn::familyShort(m->info().family) + " · " +
                                            m->info().complexity));
    list_->addItem(item);
  }
  list_->setMaximumWidth(210);
  connect(list_, &QListWidget::itemChanged, this, [this] { updateButtons(); });

  from_ = new QComboBox;
  to_ = new QComboBox;
  for (attn::Index n = 64; n <= 65536; n *= 2) {
    from_->addItem(tokensText(double(n)), QVariant::fromValue<qlonglong>(n));
    to_->addItem(tokensText(double(n)), QVariant::fromValue<qlonglong>(n));
  }
  from_->setCurrentIndex(from_->findData(QVariant::fromValue<qlonglong>(256)));
  to_->setCurrentIndex(to_->findData(QVariant::fromValue<qlonglong>(4096)));
  from_->setToolTip(tr("Smallest N (powers of two up to the largest)"));
  to_->setToolTip(tr("Largest N"));
  // The range stays a range: moving one end past the other takes the other along.
  connect(from_, &QComboBox::currentIndexChanged, this, [this](int i) {
    if (i > to_->currentIndex()) to_->setCurrentIndex(i);
  });
  connect(to_, &QComboBox::currentIndexChanged, this, [this](int i) {
    if (i < from_->currentIndex()) from_->setCurrentIndex(i);
  });
  seeds_ = new QSpinBox;
  seeds_->setRange(1, 20);
  seeds_->setValue(2);
  seeds_->setPrefix(tr("seeds "));
  seeds_->setToolTip(tr("Input, rotation and feature draws: errors are mean ± std over them"));
  repeats_ = new QSpinBox;
  repeats_->setRange(1, 20);
  repeats_->setValue(3);
  repeats_->setPrefix(tr("repeats "));
  repeats_->setToolTip(tr("Timed runs per seed after a warm-up; the curve shows their median"));
  curve_ = new QComboBox;
  curve_->addItem(tr("time"), int(fig::Curve::Time));
  curve_->addItem(tr("speed-up vs exact"), int(fig::Curve::Speedup));
  curve_->addItem(tr("peak memory"), int(fig::Curve::Memory));
  curve_->addItem(tr("error"), int(fig::Curve::Error));
  connect(curve_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  start_ = new QPushButton(tr("\xE2\x96\xB6 Compute"));
  start_->setToolTip(tr("Compute the curves in the background on the window's input and backend"));
  connect(start_, &QPushButton::clicked, this, [this] { start(); });
  cancel_ = new QPushButton(tr("Cancel"));
  cancel_->setToolTip(tr("Stop after the run in progress; finished points stay"));
  connect(cancel_, &QPushButton::clicked, this, &CurvesPanel::cancel);
  export_ = new QPushButton(tr("Export\xE2\x80\xA6"));
  export_->setToolTip(tr("Save this curve as PNG, SVG or PDF (the figure layer: like the report's figures)"));
  connect(export_, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export curve"), QStringLiteral("attnlab-curve.svg"),
                                                      tr("Figures (*.svg *.pdf *.png)"));
    if (path.isEmpty()) return;
    try {
      exportTo(path.toStdString());
    } catch (...) {
      QMessageBox::warning(this, tr("attnlab"), QString::fromStdString(attn::failureMessage()));
    }
  });
  report_ = new QPushButton(tr("Report\xE2\x80\xA6"));
  report_->setToolTip(tr("Write the sweep as a report into a folder: results.json and .csv, figures (SVG, PNG), "
                         "a self-contained report.html and report.md, as `attnlab sweep` does"));
  connect(report_, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Write the report into"));
    if (dir.isEmpty()) return;
    try {
      writeReport(dir.toStdString());
    } catch (...) {
      QMessageBox::warning(this, tr("attnlab"), QString::fromStdString(attn::failureMessage()));
    }
  });
  progress_ = new QProgressBar;
  progress_->setRange(0, 1000);
  progress_->setTextVisible(false);
  progress_->setMaximumHeight(10);
  status_ = new QLabel(tr("Tick mechanisms and press Compute."));
  status_->setTextFormat(Qt::PlainText);
  status_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);

  QChart* chart = makeDockChart();
  chart_view_ = new QChartView(chart);
  chart_view_->setRenderHint(QPainter::Antialiasing);
  chart_view_->setMinimumHeight(k_least_chart);
  chart_view_->installEventFilter(this);  // the bottom docks stay short; drag the splitter up for a bigger chart

  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("N")));
  controls->addWidget(from_);
  controls->addWidget(new QLabel(QString::fromUtf8("\xE2\x80\xA6")));
  controls->addWidget(to_);
  controls->addWidget(seeds_);
  controls->addWidget(repeats_);
  controls->addSpacing(12);
  controls->addWidget(curve_);
  controls->addStretch(1);
  controls->addWidget(start_);
  controls->addWidget(cancel_);
  controls->addWidget(export_);
  controls->addWidget(report_);
  auto* right = new QVBoxLayout;
  right->addLayout(controls);
  right->addWidget(progress_);
  right->addWidget(status_);
  right->addWidget(chart_view_, 1);
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(list_);
  layout->addLayout(right, 1);

  connect(&watcher_, &QFutureWatcher<SweepOutcome>::finished, this, &CurvesPanel::onFinished);
  updateButtons();
}

CurvesPanel::~CurvesPanel() {
  if (cancel_flag_) *cancel_flag_ = true;
  watcher_.waitForFinished();
}

void CurvesPanel::setInput(const attn::InputSpec& spec, bool causal, attn::gpu::BackendChoice backend, bool imported) {
  input_ = spec;
  causal_ = causal;
  backend_ = backend;
  imported_ = imported;
}

void CurvesPanel::noteWindowRun() {
  if (running()) ++window_runs_;
}

QString CurvesPanel::notMeasuredText(const std::string& id) const {
  QStringList lines;
  for (const auto& p : result_.points)
    if (p.mechanism == id && p.backend == backend_name_ && p.status != "ok")
      lines << tr("N = %1: %2%3")
                   .arg(p.n)
                   .arg(QString::fromStdString(p.status))
                   .arg(p.message.empty() ? QString() : QStringLiteral(" \u2014 ") + QString::fromStdString(p.message));
  return lines.join(QLatin1Char('\n'));
}

void CurvesPanel::checkMechanism(const std::string& id) {
  for (int i = 0; i < list_->count(); ++i)
    if (list_->item(i)->text().toStdString() == id) list_->item(i)->setCheckState(Qt::Checked);
}

void CurvesPanel::setMechanisms(const std::vector<std::string>& ids) {
  for (int i = 0; i < list_->count(); ++i) {
    const bool on = std::find(ids.begin(), ids.end(), list_->item(i)->text().toStdString()) != ids.end();
    list_->item(i)->setCheckState(on ? Qt::Checked : Qt::Unchecked);
  }
}

std::vector<std::string> CurvesPanel::mechanisms() const {
  std::vector<std::string> ids;
  for (int i = 0; i < list_->count(); ++i)
    if (list_->item(i)->checkState() == Qt::Checked) ids.push_back(list_->item(i)->text().toStdString());
  return ids;
}

void CurvesPanel::setRange(attn::Index from, attn::Index to) {
  auto pick = [](QComboBox* box, attn::Index n) {
    int best = 0;
    for (int i = 0; i < box->count(); ++i)
      if (box->itemData(i).toLongLong() <= n) best = i;
    box->setCurrentIndex(best);
  };
  pick(from_, from);
  pick(to_, to);
}

void CurvesPanel::setSeeds(int seeds) { seeds_->setValue(seeds); }
void CurvesPanel::setRepeats(int repeats) { repeats_->setValue(repeats); }
void CurvesPanel::setCurve(fig::Curve c) { curve_->setCurrentIndex(curve_->findData(int(c))); }
fig::Curve CurvesPanel::curve() const { return fig::Curve(curve_->currentData().toInt()); }

QString CurvesPanel::status() const { return status_->text(); }

bool CurvesPanel::start() {
  if (running()) return false;
  const auto ids = mechanisms();
  if (ids.empty()) {
    status_->setText(tr("Tick at least one mechanism."));
    return false;
  }
  attn::SweepSpec spec;
  spec.mechanisms = ids;
  const attn::Index a = from_->currentData().toLongLong(), b = to_->currentData().toLongLong();
  for (attn::Index n = std::min(a, b); n <= std::max(a, b); n *= 2) spec.ns.push_back(n);
  spec.seeds = seeds_->value();
  spec.repeats = repeats_->value();
  spec.d = input_.d;
  spec.generator = input_.generator;
  spec.temperature = input_.temperature;
  spec.knobs = input_;  // the input panel's clusters, noise, period, …
  spec.causal = causal_;
  spec.first_seed = input_.seed;
  result_ = {};
  result_.spec = spec;
  result_.spec.mechanisms.insert(result_.spec.mechanisms.begin(), "exact");
  result_.spec.backends = {};
  error_.clear();
  window_runs_ = 0;
  cancel_flag_ = std::make_shared<std::atomic<bool>>(false);
  auto flag = cancel_flag_;
  const auto choice = backend_;
  progress_->setValue(0);
  status_->setText(
      imported_ ? tr("starting on the generator's input (a sweep varies N; the imported file has one)\xE2\x80\xA6")
                : tr("starting\xE2\x80\xA6"));
  redraw();  // the previous curves go now, not when the first new point arrives
  watcher_.setFuture(QtConcurrent::run([this, spec, flag, choice]() {
    SweepOutcome out;
    try {
      auto selection = attn::gpu::makeBackend(choice);
      attn::SweepSpec s = spec;
      s.backends = {selection.backend->info().name};
      attn::Backend* backend = selection.backend.get();
      out.result = attn::runSweep(
          s, [backend](const std::string&) -> attn::Backend& { return *backend; },
          [this](const attn::SweepProgress& p, const attn::SweepPoint* point) {
            std::optional<attn::SweepPoint> copy;
            if (point) copy = *point;
            // Queued to the GUI thread; dropped if the panel is gone (it waits for this thread anyway).
            QMetaObject::invokeMethod(
                this, [this, p, copy] { onProgress(p, copy ? &*copy : nullptr); }, Qt::QueuedConnection);
          },
          flag.get());
    } catch (...) {
      out.error = attn::failureMessage();
    }
    return out;
  }));
  updateButtons();
  return true;
}

void CurvesPanel::cancel() {
  if (cancel_flag_) *cancel_flag_ = true;
  if (running()) status_->setText(tr("cancelling after the run in progress\xE2\x80\xA6"));
}

bool CurvesPanel::waitUntilDone(int timeout_ms) {
  QElapsedTimer clock;
  clock.start();
  while (running()) {
    if (clock.elapsed() > timeout_ms) return false;
    QApplication::processEvents(QEventLoop::AllEvents, 20);
  }
  QApplication::processEvents();  // the last queued progress reports
  return true;
}

void CurvesPanel::onProgress(const attn::SweepProgress& p, const attn::SweepPoint* point) {
  if (!cancel_flag_) return;  // a report that arrived after the computation ended
  progress_->setValue(p.work_total > 0 ? int(1000 * std::min(1.0, p.work_done / p.work_total)) : 0);
  const double eta = p.etaSeconds();
  if (!*cancel_flag_)  // after Cancel, the status keeps saying so until the run in progress ends
    status_->setText(tr("%1/%2 points · %3 · %4 s%5")
                         .arg(p.points_done)
                         .arg(p.points_total)
                         .arg(QString::fromStdString(p.current))
                         .arg(p.elapsed_s, 0, 'f', 0)
                         .arg(std::isfinite(eta) ? tr(" · about %1 s left").arg(eta, 0, 'f', 0) : QString()));
  if (point) {
    if (result_.spec.backends.empty()) result_.spec.backends = {point->backend};
    backend_name_ = point->backend;
    result_.points.push_back(*point);
    redraw();
    emit pointAdded();
  }
}

void CurvesPanel::onFinished() {
  const SweepOutcome out = watcher_.result();
  cancel_flag_.reset();
  if (!out.error.empty()) {
    error_ = QString::fromStdString(out.error);
    status_->setText(tr("Could not compute the curves: %1").arg(error_));
  } else {
    result_ = out.result;
    if (!result_.spec.backends.empty()) backend_name_ = result_.spec.backends.front();
    int failed = 0;
    for (const auto& p : result_.points) failed += p.status != "ok";
    const int total = int(result_.spec.ns.size() * result_.spec.mechanisms.size());
    QString text = result_.complete
                       ? tr("%1 points in %2 s on the %3 backend%4")
                             .arg(result_.points.size())
                             .arg(result_.seconds, 0, 'f', 1)
                             .arg(QString::fromStdString(backend_name_))
                             .arg(failed ? tr(" (%1 not measured: hover the legend)").arg(failed) : QString())
                       : tr("cancelled: %1 of %2 points kept").arg(result_.points.size()).arg(total);
    if (imported_) text += tr(" \u00B7 on the generator's input (the imported file has one N)");
    if (window_runs_ > 0)
      text += tr(" \u00B7 the window ran %n time(s) meanwhile: times and peaks may include its runs", nullptr,
                 window_runs_);
    status_->setText(text);
    progress_->setValue(result_.complete ? 1000 : progress_->value());
  }
  redraw();
  updateButtons();
  emit finished();
}

void CurvesPanel::updateButtons() {
  const bool busy = running();
  start_->setEnabled(!busy && !mechanisms().empty());
  cancel_->setEnabled(busy);
  export_->setEnabled(!result_.points.empty());
  report_->setEnabled(!busy && !result_.points.empty());
}

void CurvesPanel::writeReport(const std::string& dir) const {
  if (result_.points.empty()) throw attn::UserError("there are no curves to report yet: press Compute first");
  attn::SweepResult r = result_;
  r.machine = report::machineJson();
  r.command = "attnlab gui, Curves dock: " + std::to_string(r.points.size()) + " points";
  report::writeSweepReport(dir, r);
}

nlohmann::json CurvesPanel::config() const {
  return {{"mechanisms", mechanisms()},
          {"from", from_->currentData().toLongLong()},
          {"to", to_->currentData().toLongLong()},
          {"seeds", seeds_->value()},
          {"repeats", repeats_->value()},
          {"curve", curve_->currentIndex()}};
}

void CurvesPanel::setConfig(const nlohmann::json& j) {
  if (!j.is_object()) return;
  if (j.contains("mechanisms") && j["mechanisms"].is_array()) {
    std::vector<std::string> ids;
    for (const auto& id : j["mechanisms"])
      if (id.is_string()) ids.push_back(id.get<std::string>());
    setMechanisms(ids);
  }
  if (j.contains("from") && j["from"].is_number_integer() && j.contains("to") && j["to"].is_number_integer())
    setRange(j["from"].get<attn::Index>(), j["to"].get<attn::Index>());
  if (j.contains("seeds") && j["seeds"].is_number_integer()) seeds_->setValue(j["seeds"].get<int>());
  if (j.contains("repeats") && j["repeats"].is_number_integer()) repeats_->setValue(j["repeats"].get<int>());
  if (j.contains("curve") && j["curve"].is_number_integer() && j["curve"].get<int>() >= 0 && j["curve"].get<int>() < curve_->count())
    curve_->setCurrentIndex(j["curve"].get<int>());
}

void CurvesPanel::exportTo(const std::string& path) const {
  if (result_.points.empty()) throw attn::UserError("there are no curves to export yet: press Compute first");
  fig::saveFigure(fig::sweepFigure(result_, curve(), result_.spec.mechanisms, backend_name_, "Curves"), path, 144);
}

void CurvesPanel::redraw() {
  QToolTip::hideText();  // the series under the pointer goes now and will not say so
  QChart* chart = chart_view_->chart();
  chart->removeAllSeries();
  for (QAbstractAxis* axis : chart->axes()) {
    chart->removeAxis(axis);
    delete axis;
  }
  updateButtons();
  if (result_.points.empty()) {
    chart->setTitle(QString());
    return;
  }
  const fig::CurveFigure f = fig::sweepFigure(result_, curve(), result_.spec.mechanisms, backend_name_, "Curves");
  chart->setTitle(f.title.mid(f.title.indexOf(':') + 2) + "  \xC2\xB7  " + f.subtitle);
  double xmin = INFINITY, xmax = 0, ymin = INFINITY, ymax = 0;
  for (const auto& s : f.series)
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i]) && s.y[i] > 0) {
        xmin = std::min(xmin, s.x[i]);
        xmax = std::max(xmax, s.x[i]);
        ymin = std::min(ymin, s.y[i]);
        ymax = std::max(ymax, s.y[i]);
      }
  if (std::isfinite(f.hline)) {
    ymin = std::min(ymin, f.hline);
    ymax = std::max(ymax, f.hline);
  }
  if (!(xmax > 0) || !(ymax > 0)) return;
  if (xmax <= xmin) xmax = xmin * 2;
  // Decades with room: a point or the "as fast as exact" line never lies on the frame.
  ymin /= 1.5;
  ymax *= 1.5;
  // The bottom dock is short (about 110 px of chart in a 900-px window): small type, and the minor grid
  // only when a decade has room for it; otherwise Qt elides every label to "…".
  const bool tall = chart_view_->height() >= k_tall_chart;
  tall_ = tall;
  QFont small = chart_view_->font();
  small.setPointSizeF(std::max(6.5, small.pointSizeF() * 0.8));
  QFont title = small;
  title.setBold(true);
  chart->setTitleFont(title);
  auto* ax = new QLogValueAxis;
  ax->setBase(2);
  ax->setLabelFormat("%g");
  ax->setLabelsFont(small);
  ax->setTitleFont(small);
  ax->setTitleText(f.xlabel);
  ax->setTitleVisible(tall);
  ax->setRange(xmin / 1.2, xmax * 1.2);
  auto* ay = new QLogValueAxis;
  ay->setBase(10);
  ay->setLabelFormat("%g");
  ay->setLabelsFont(small);
  ay->setTitleFont(small);
  ay->setTitleText(f.ylabel);
  ay->setTitleVisible(tall);  // the chart's title names the quantity
  ay->setMinorTickCount(tall ? -1 : 0);
  ay->setRange(std::pow(10.0, std::floor(std::log10(ymin))), std::pow(10.0, std::ceil(std::log10(ymax))));
  chart->addAxis(ax, Qt::AlignBottom);
  chart->addAxis(ay, Qt::AlignLeft);
  auto attach = [&](QAbstractSeries* s) {
    chart->addSeries(s);
    s->attachAxis(ax);
    s->attachAxis(ay);
  };
  // Hovering a legend entry lists the points that were not measured, and why.
  auto showOnHover = [&](QAbstractSeries* series, const QString& id, const QString& missing) {
    for (QLegendMarker* marker : chart->legend()->markers(series)) {
      marker->setLabelBrush(QBrush(QColor(0xd0, 0x5a, 0x3c)));
      connect(marker, &QLegendMarker::hovered, this, [id, missing](bool on) {
        if (on)
          QToolTip::showText(QCursor::pos(),
                             QStringLiteral("<b>%1</b> not measured at<br>").arg(id) +
                                 missing.toHtmlEscaped().replace(QLatin1Char('\n'), QStringLiteral("<br>")));
        else
          QToolTip::hideText();
      });
    }
  };
  std::vector<std::string> shown;  // ids with a series
  for (const auto& s : f.series) {
    const QColor colour = fig::seriesColour(s.style);
    auto* line = new QLineSeries;
    line->setName(s.name);
    line->setPen(QPen(colour, 2, s.dashed ? Qt::DashLine : Qt::SolidLine));
    auto* dots = new QScatterSeries;
    dots->setColor(colour);
    dots->setBorderColor(colour);
    dots->setMarkerSize(7);
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i]) && s.y[i] > 0) {
        line->append(s.x[i], s.y[i]);
        dots->append(s.x[i], s.y[i]);
      }
    // The series' mechanism id is the first word of its name.
    const std::string id = s.name.section(' ', 0, 0).toStdString();
    shown.push_back(id);
    const QString missing = notMeasuredText(id);
    if (!missing.isEmpty())
      line->setName(s.name + tr("  \u00B7 %n N not measured", nullptr, int(missing.count('\n')) + 1));
    attach(line);
    attach(dots);
    for (QLegendMarker* marker : chart->legend()->markers(dots)) marker->setVisible(false);
    if (!missing.isEmpty()) showOnHover(line, QString::fromStdString(id), missing);
    // Bars: the quartiles of the timed runs, or the error's ± std over seeds (as in the exported figure).
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.lo[i]) && std::isfinite(s.hi[i]) && s.lo[i] > 0 && s.hi[i] > s.lo[i]) {
        auto* bar = new QLineSeries;
        bar->setObjectName(QStringLiteral("bar"));
        bar->setPen(QPen(colour, 1.2));
        bar->append(s.x[i], s.lo[i]);
        bar->append(s.x[i], s.hi[i]);
        attach(bar);
        for (QLegendMarker* marker : chart->legend()->markers(bar)) marker->setVisible(false);
      }
    connect(dots, &QScatterSeries::hovered, this, [this, id](const QPointF& at, bool on) {
      if (!on) {
        QToolTip::hideText();
        return;
      }
      const attn::SweepPoint* p = result_.find(id, backend_name_, attn::Index(std::llround(at.x())));
      if (!p) return;
      QString text = QString("<b>%1</b>, N = %2<br>time %3 ms (quartiles %4–%5)<br>peak %6 · %7 scored pairs")
                         .arg(QString::fromStdString(id))
                         .arg(p->n)
                         .arg(p->time_median, 0, 'g', 4)
                         .arg(p->time_p25, 0, 'g', 3)
                         .arg(p->time_p75, 0, 'g', 3)
                         .arg(bytesText(p->peak_bytes))
                         .arg(p->scored_pairs, 0, 'g', 3);
      if (p->approximates && std::isfinite(p->rel_error.mean))
        text += QString("<br>e_out %1 ± %2 over %3 seed(s)").arg(p->rel_error.mean, 0, 'g', 3).arg(p->rel_error.std, 0, 'g', 2).arg(p->rel_error.count);
      if (std::isfinite(p->device_ms)) text += QString("<br>device time %1 ms").arg(p->device_ms, 0, 'g', 4);
      QToolTip::showText(QCursor::pos(), text);
    });
  }
  // A mechanism none of whose points was measured keeps its place in the legend, with the reasons.
  for (const std::string& id : result_.spec.mechanisms) {
    if (std::find(shown.begin(), shown.end(), id) != shown.end()) continue;
    const bool any_ok = std::any_of(result_.points.begin(), result_.points.end(), [&](const attn::SweepPoint& p) {
      return p.mechanism == id && p.backend == backend_name_ && p.status == "ok";
    });
    const QString missing = notMeasuredText(id);
    if (any_ok || missing.isEmpty()) continue;  // left out by this curve (exact on speed-up, …), not failed
    auto* none = new QLineSeries;
    none->setName(tr("%1: not measured").arg(QString::fromStdString(id)));
    none->setPen(QPen(Qt::gray, 2, Qt::DotLine));
    attach(none);
    showOnHover(none, QString::fromStdString(id), missing);
  }
  if (std::isfinite(f.hline)) {
    auto* h = new QLineSeries;
    h->setName(tr("as fast as exact"));
    h->setPen(QPen(Qt::gray, 1, Qt::DashLine));
    h->append(xmin / 1.2, f.hline);
    h->append(xmax * 1.2, f.hline);
    attach(h);
  }
  for (const auto& m : f.marks) {
    auto* v = new QLineSeries;
    v->setName(tr("crossover ") + m.label);
    v->setPen(QPen(fig::seriesColour(m.style), 1.2, Qt::DashDotLine));
    v->append(m.x, ay->min());
    v->append(m.x, ay->max());
    attach(v);
  }
  // Room for the whole legend (one line per entry, beside the plot): the dock grows to show every entry,
  // up to a chart of k_most_legend_room px, instead of cutting the list after the first few.
  int entries = 0;  // a line per series, less the dots and error bars (their markers are hidden)
  for (const QAbstractSeries* series : chart->series())
    entries += !qobject_cast<const QScatterSeries*>(series) && series->objectName() != QLatin1String("bar");
  const int needed = QFontMetrics(title).height() + 48 + entries * (QFontMetrics(chart->legend()->font()).height() + 8);
  chart_view_->setMinimumHeight(std::clamp(needed, k_least_chart, k_most_legend_room));
}

bool CurvesPanel::eventFilter(QObject* watched, QEvent* event) {
  if (watched == chart_view_ && event->type() == QEvent::Resize && (chart_view_->height() >= k_tall_chart) != tall_ &&
      !result_.points.empty())
    redraw();
  return QWidget::eventFilter(watched, event);
}

void CurvesPanel::setLight(bool light) {
  styleChart(chart_view_->chart(), light);
  redraw();  // the theme resets the series' colours: draw them again
}

}  // namespace attnlab::gui
