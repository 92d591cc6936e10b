// The Curves dock: time, speed-up, memory and error against N for the chosen mechanisms on the
// window's input and backend, computed by the sweep engine (attention/sweep.h) off the GUI thread with
// a progress bar and cancel, drawn with Qt Charts on log-log axes as the points arrive: fitted slopes in
// the legend, the crossover with exact attention marked, a point's numbers on hover. Export goes through
// the figure layer, so the file looks like the report's figures.
#pragma once
#include <QFutureWatcher>
#include <QWidget>
#include <atomic>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "app/figures/views.h"
#include "attention/sweep.h"
#include "render/gpu/backend_factory.h"

class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace attnlab::gui {

/// What the worker hands back: the result, or why there is none (no backend, a bad spec).
struct SweepOutcome {
  attn::SweepResult result;
  std::string error;
};

class CurvesPanel : public QWidget {
  Q_OBJECT

 public:
  explicit CurvesPanel(QWidget* parent = nullptr);
  ~CurvesPanel() override;  ///< cancels a computation in flight and waits for it

  /// The input and backend the curves are computed on (the window's current ones).
  /// `imported`: the window shows an imported file; a sweep varies N, so it runs on the generator's input
  /// and says so.
  void setInput(const attn::InputSpec& spec, bool causal, attn::gpu::BackendChoice backend, bool imported = false);
  /// The window started a run of its own while the curves are computing: the sweep's times and peaks
  /// may include it, and the status line says so when the sweep ends.
  void noteWindowRun();
  /// Ticks this mechanism in the list (the one the window shows); others stay as the user left them.
  void checkMechanism(const std::string& id);
  /// Ticks exactly these (exact is always computed: it is the baseline).
  void setMechanisms(const std::vector<std::string>& ids);
  std::vector<std::string> mechanisms() const;
  /// Powers of two from..to (both clamped to 64 … 65536).
  void setRange(attn::Index from, attn::Index to);
  void setSeeds(int seeds);
  void setRepeats(int repeats);
  void setCurve(fig::Curve curve);

  /// Starts computing (false when a computation is already running or nothing is ticked).
  bool start();
  void cancel();
  /// From start() until the result is shown.
  bool running() const { return static_cast<bool>(cancel_flag_); }
  /// Processes events until the computation ends; false on timeout.
  bool waitUntilDone(int timeout_ms);
  /// The last result (partial while running or after a cancel).
  const attn::SweepResult& result() const { return result_; }
  QChartView* chartView() const { return chart_view_; }
  QString status() const;
  /// Writes the current curve through the figure layer: .png, .svg or .pdf; UserError on failure.
  void exportTo(const std::string& path) const;
  /// Writes the last result as a report into `dir` (the data, figures, report.html, report.md: what
  /// `attnlab sweep --out dir` writes), with this machine's description; UserError on failure.
  void writeReport(const std::string& dir) const;
  /// The controls as JSON (for sessions), and back (unknown or bad fields are left as they are).
  nlohmann::json config() const;
  void setConfig(const nlohmann::json& j);
  /// Light or dark chart theme (the window's).
  void setLight(bool light);

 protected:
  /// A chart resized across the "tall" threshold is drawn again (axis titles, minor grid).
  bool eventFilter(QObject* watched, QEvent* event) override;

 signals:
  void finished();
  /// A point finished (the chart was redrawn).
  void pointAdded();

 private:
  void onProgress(const attn::SweepProgress& progress, const attn::SweepPoint* point);
  void onFinished();
  void redraw();
  void updateButtons();
  fig::Curve curve() const;
  /// "N = 8192: skipped (…)" for each point of `id` that was not measured, one a line; empty if none.
  QString notMeasuredText(const std::string& id) const;

  QListWidget* list_ = nullptr;
  QComboBox* from_ = nullptr;
  QComboBox* to_ = nullptr;
  QSpinBox* seeds_ = nullptr;
  QSpinBox* repeats_ = nullptr;
  QComboBox* curve_ = nullptr;
  QPushButton* start_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QPushButton* export_ = nullptr;
  QPushButton* report_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QChartView* chart_view_ = nullptr;

  attn::InputSpec input_;
  bool causal_ = false;
  bool imported_ = false;  ///< the window's input is a file: the curves use the generator
  int window_runs_ = 0;    ///< runs the window started during this sweep
  bool tall_ = false;      ///< the chart had room for axis titles and a minor grid when last drawn
  attn::gpu::BackendChoice backend_ = attn::gpu::BackendChoice::Auto;
  std::string backend_name_ = "cpu";  ///< the backend the last result ran on

  QFutureWatcher<SweepOutcome> watcher_;
  std::shared_ptr<std::atomic<bool>> cancel_flag_;
  attn::SweepResult result_;
  QString error_;
};

}  // namespace attnlab::gui
