// The main window: mechanism browser, parameter and input panels (left docks), the mechanism's info
// card (bottom dock), the Vulkan heatmap viewport (centre) and a status bar with time, error and
// notices. Every change of a control reruns the comparison off the GUI thread (ComparisonRunner);
// the newest result is pooled to the viewport's resolution and shown exact | mechanism side by side.
#pragma once
#include <QByteArray>
#include <QFont>
#include <QImage>
#include <QMainWindow>
#include <QStringList>
#include <QTimer>
#include <map>
#include <optional>
#include <memory>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "app/gui/comparison_runner.h"
#include "app/gui/gui.h"
#include "render/scene/scene.h"

class QComboBox;
class QPushButton;
class QMenu;
class QToolButton;
class QLabel;
class QMessageBox;

namespace attnlab::view {
class HeatmapWindow;
}

namespace attnlab::gui {

class CurvesPanel;
class LogPanel;
class RowPanel;
class InfoCard;
class InputPanel;
class MechanismBrowser;
class ParameterPanel;

/// How a figure is exported: the page's width ("single", "double", "slide" or inches), its font size in
/// points ("" the width's default) and each panel's matrix resolution (0: the whole matrix up to
/// scene::k_max_figure_pixels).
struct ExportOptions {
  std::string width = "double", font_size;
  attn::Index pixels = 0;
  double dpi = 144;
};

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(const GuiOptions& options = {}, QWidget* parent = nullptr);
  ~MainWindow() override;

  // ---- Test and scripting hooks (GUI thread) ----

  /// Selects a mechanism by registry id (rebuilds the parameter panel, reruns); false if unknown.
  bool selectMechanism(const std::string& id);
  /// Sets a parameter of the selected mechanism through its control (which clamps it); reruns.
  /// false when the mechanism has no such parameter.
  bool setParameter(const std::string& name, double value);
  /// Chooses the backend ("cpu", "vulkan", "auto"); recreates it on the next run.
  bool setBackend(const std::string& name);
  /// Shows the pattern of the step titled `title` in the pattern panel ("" or "pattern": the
  /// mechanism's own); false when the last outcome has no such step.
  bool setPatternView(const std::string& title);
  /// Orders the tokens of every panel by the grouping named `name` ("" or "position": by position);
  /// repools. false when the last outcome has no such grouping.
  bool setOrder(const std::string& name);
  /// The colour scale: "log10", "linear" or "rank"; false for another name.
  bool setScale(const std::string& name);
  /// Starts (or stops) playing the steps in the third panel: the next step every k_step_interval_ms,
  /// looping. false when the last outcome has no steps.
  bool playSteps(bool on);
  bool playingSteps() const { return step_timer_.isActive(); }
  /// true while a change of the token order is being animated.
  bool sortAnimating() const { return sort_timer_.isActive(); }
  /// Turns causal masking on or off (reruns).
  void setCausal(bool causal);
  /// Processes events until no run is scheduled or in flight and the viewport has drawn the newest
  /// result (when it is visible). false on timeout.
  bool waitForIdle(int timeout_ms);
  /// The viewport as it is on screen now (a freshly rendered frame), or a null image when it is not
  /// visible or has no Vulkan.
  QImage viewportImage();
  /// The whole window as on screen: the widgets with the viewport's frame composed in (QWidget::grab
  /// alone leaves the native Vulkan window blank).
  QImage windowImage();
  /// The last error shown (empty after a successful run).
  QString lastError() const { return last_error_; }
  /// The last outcome (null before the first run finishes).
  std::shared_ptr<const RunOutcome> lastOutcome() const { return outcome_; }
  const std::string& mechanismId() const { return mechanism_id_; }
  /// The viewport window (null when Vulkan is unavailable), e.g. to send it mouse events.
  view::HeatmapWindow* viewport() const { return viewport_; }
  /// Writes a figure of the current comparison to a .png, .svg or .pdf file. "screen" (and "compare" in compare
  /// mode) is exactly what the viewport shows: its order, zoom window, step, scale, floor, colour map and
  /// pooling, through the same view model, at the export's resolution. "weights", "pattern", "groups", "diff",
  /// "tokens" replace the third panel by that view (the rest as on screen). false with a message for a person
  /// when that view does not exist for this mechanism or the file cannot be written.
  bool exportFigure(const std::string& view, const std::string& path, QString* error = nullptr,
                    const ExportOptions& options = {});
  /// The view model's request an export makes (exportFigure's first steps), for tests: UserError as there.
  scene::ViewRequest exportRequest(const std::string& view, const ExportOptions& options = {}) const;
  /// Opens the export dialog (view, width, font size, resolution; defaults: what is on screen), then a file dialog.
  void showExportDialog();
  /// Compare mode: these mechanisms (at most k_max_compared, the selected one excluded) run beside the
  /// selected one on the same input, one panel each; {} leaves compare mode. false with a message for an
  /// unknown id or too many.
  bool setCompare(const std::vector<std::string>& ids, QString* error = nullptr);
  static constexpr size_t k_max_compared = 3;
  /// Picks query row `row` (as displayed: a sorted position when tokens are sorted), as a click on a heatmap
  /// row does: the Row dock shows its weights for exact and every mechanism on screen, and the row is marked.
  /// `show` raises the dock and redraws (a refresh for a new result does neither).
  bool selectRow(attn::Index row, QString* error = nullptr, bool show = true);
  RowPanel* rowPanel() const { return row_; }
  /// The panels' layout (View → Matrix | Pixel): the N×M matrices (the default), or for the image input the
  /// picked pixel's attention over the picture (the pixel picked as selectRow's token; the centre before any).
  /// Repools; the pixel view of another input shows why there is none.
  void setViewLayout(scene::Layout layout);
  scene::Layout viewLayout() const { return layout_; }
  /// Picks the pixel (token y·W + x) as a click on a pixel map does: selectRow(token), and the pixel view
  /// pooled again for it.
  bool pickPixel(attn::Index token, QString* error = nullptr);
  /// Imports Q, K, V from a file as the Import button does (reruns); false with the message shown in the
  /// status line and the error box when the file cannot be used.
  bool importInputs(const std::string& path, QString* error = nullptr);
  /// File → Open image: the image input on the picture at `path` (PNG, JPEG, …). On failure nothing changes,
  /// the reason goes to `error`, the log and the status line.
  bool openImage(const std::string& path, QString* error = nullptr);
  /// The whole state a person set up, as JSON: mechanism, parameters, input (or the imported file),
  /// causal, backend, the display controls and the Curves dock's controls.
  nlohmann::json session() const;
  /// Restores a session (as session() writes it); false with a message when it cannot be used, and then
  /// nothing changes. Parameters the mechanism no longer has are skipped with a notice.
  bool applySession(const nlohmann::json& session, QString* error = nullptr);
  /// Writes session() to a file (atomically) and lists it under File → Recent sessions.
  bool saveSession(const std::string& path, QString* error = nullptr);
  /// Reads and applies a session file; false with a message (shown too) when it cannot be used.
  bool loadSession(const std::string& path, QString* error = nullptr);
  /// Where the session is saved when the window closes (and restored from at the next start).
  static std::string autosavePath();
  /// Every menu action that has a keyboard shortcut, as "keys<TAB>what" (what the F1 help lists).
  QStringList shortcutList() const;
  /// The shortcut list as an overlay over the viewport (F1 toggles, Esc closes).
  void setHelpVisible(bool on);
  bool helpVisible() const { return help_visible_; }
  /// Presenter mode: panels and menu hidden, fonts 1.5× (F5 toggles); off restores the layout.
  void setPresenterMode(bool on);
  bool presenterMode() const { return presenter_; }
  /// The light theme (widgets, viewport, charts) or the dark one; remembered in the settings.
  void setLightTheme(bool light);
  bool lightTheme() const { return light_; }
  /// The Curves dock's panel (time, memory, error vs N).
  CurvesPanel* curvesPanel() const { return curves_; }
  /// The Log dock's panel (runs, notices, errors).
  LogPanel* logPanel() const { return log_; }
  /// Edit → Copy view as image: the viewport as on screen, to the clipboard. false with a message when
  /// there is nothing to copy.
  bool copyView(QString* error = nullptr);
  /// Edit → Copy numbers as text: mechanism, parameters, input, errors and times of the current result, as
  /// tab-separated lines a spreadsheet or a paper's table takes as they are.
  bool copyNumbers(QString* error = nullptr);
  /// The text copyNumbers() puts on the clipboard (empty before a result).
  QString numbersText() const;

 signals:
  /// A run finished and its result (or error) is shown.
  void runFinished();

 protected:
  void resizeEvent(QResizeEvent* event) override;
  /// Autosaves the session and the window layout.
  void closeEvent(QCloseEvent* event) override;
  /// Ctrl+C over selected text (the log, the info card) copies that text, not the view.
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void buildDocks();
  void buildToolBar();
  /// Keyboard actions in the View menu (steps, scale, pooling, order, curves, presenter mode, help).
  void buildShortcuts();
  void showShortcuts();
  /// Coalesces control changes: the comparison reruns once the controls are quiet for a moment.
  void scheduleRun();
  void startRun();
  /// Stops the run in flight (the Cancel button, Esc).
  void cancelRun();
  /// Pools the last comparison again (new viewport size or pooling), without rerunning it.
  void scheduleRepool();
  RunRequest baseRequest() const;
  void onRunFinished(quint64 id, std::shared_ptr<const RunOutcome> outcome);
  /// Tells the runner the outcome it waits on is drawn once the viewport is idle (its times are measured then).
  void reportDrawn();
  void showOutcome();
  /// The grouping the tokens are displayed in, or none (by position).
  std::optional<attn::Grouping> displayedOrder() const;
  /// After a new result: the picked token's row again, at its place in the displayed order.
  void refreshSelectedRow();
  void showError(const QString& message);
  /// The Play button's icon and text for its state, in the theme's text colour.
  void refreshPlayButton();
  /// Shows the next step in the third panel (after the last: the first).
  void advanceStep();
  /// Shows the next (delta 1) or previous (−1) step, looping, or the first (0).
  void stepBy(int delta);
  /// Whether the mechanism's implied weights have exact's shape (the "difference" view exists).
  bool differenceAvailable() const;
  /// Steps of the shown outcome (0: none).
  int stepCount() const;
  /// The view model's request from the controls and the viewport (what the screen shows).
  scene::ViewRequest viewRequest() const;
  static constexpr const char* k_difference_view = "difference";
  static constexpr const char* k_no_third_panel = "\xE2\x80\x94";  // "—": a mechanism without a pattern or steps
  /// Pixels a side of one heatmap panel in the viewport now (the pooling resolution).
  attn::Index panelPixels() const;
  scene::ColorScale colorScale() const;

  std::shared_ptr<const attn::Mechanism> mechanism_;
  std::string mechanism_id_;

  MechanismBrowser* browser_ = nullptr;
  ParameterPanel* parameters_ = nullptr;
  InputPanel* input_ = nullptr;
  InfoCard* info_ = nullptr;
  CurvesPanel* curves_ = nullptr;
  LogPanel* log_ = nullptr;
  RowPanel* row_ = nullptr;
  attn::Index selected_row_ = -1;            // the picked query row (as displayed), −1 none
  attn::Index selected_token_ = -1;          // the token at that row: kept through new results and orders
  scene::Layout layout_ = scene::Layout::Matrix;  // View → Matrix | Pixel | Gates
  std::vector<QAction*> layout_actions_;          // the View menu's Matrix, Pixel and Gates, checkable
  view::HeatmapWindow* viewport_ = nullptr;  // owned by its window container
  QWidget* viewport_container_ = nullptr;
  QComboBox* scale_ = nullptr;
  QComboBox* floor_ = nullptr;
  QComboBox* pooling_ = nullptr;
  QComboBox* colormap_ = nullptr;
  QComboBox* pattern_view_ = nullptr;
  QToolButton* play_ = nullptr;  ///< plays the steps (the Pattern selector's step entries) in turn
  QTimer step_timer_;
  static constexpr int k_step_interval_ms = 1200;
  QComboBox* order_ = nullptr;
  QToolButton* compare_ = nullptr;
  std::vector<std::string> compare_ids_;                                 // compare mode's other mechanisms
  std::map<std::string, std::map<std::string, double>> params_by_id_;  // each mechanism's last parameters  ///< token order of the images: position, or a grouping of the outcome  ///< which pattern the third panel shows: the mechanism's or a step's
  QLabel* status_time_ = nullptr;
  QPushButton* cancel_run_ = nullptr;  ///< shown while a run has been in flight for k_cancel_button_delay_ms
  QTimer cancel_timer_;
  QLabel* status_error_ = nullptr;
  QLabel* status_notice_ = nullptr;
  QMessageBox* error_box_ = nullptr;

  ComparisonRunner runner_;
  QTimer run_timer_;
  QTimer repool_timer_;
  QTimer zoom_timer_;  ///< pools the zoomed window once zooming pauses
  QTimer sort_timer_;  ///< frames of the order animation
  int sort_frame_ = 0;
  static constexpr int k_sort_frames = 16, k_sort_frame_ms = 40;  // 0.64 s
  std::optional<std::string> previous_order_;  // the order on screen when the order was changed
  int panel_count_ = 2;  ///< panels of the last scene (exact, mechanism[, pattern])
  quint64 latest_id_ = 0;
  quint64 awaiting_drawn_ = 0;  ///< the request whose outcome the runner waits to see drawn (0: none)
  std::shared_ptr<const RunOutcome> outcome_;
  attn::Index pooled_pixels_ = 0;
  QString last_error_;
  QStringList startup_notices_;  // about the options the window was opened with
  std::string pending_order_;    // a restored session's token order, applied when its result arrives
  QMenu* view_menu_ = nullptr;
  std::shared_ptr<const RunOutcome> logged_outcome_;  // the last run written to the log
  QStringList logged_notices_;                        // notices already in the log
  QMessageBox* shortcuts_ = nullptr;
  bool presenter_ = false;
  bool help_visible_ = false;
  std::vector<std::pair<std::string, std::string>> helpLines() const;
  bool light_ = false;
  QByteArray saved_layout_;    // the docks before presenter mode
  QByteArray saved_geometry_;  // the window's size and place before it (the 1.5× type widens it)
  QFont saved_font_;
  int saved_colormap_ = 0;
  void rememberRecent(const QString& path);
};

}  // namespace attnlab::gui
