// MainWindow: the window shell, its docks and the run → pool → show cycle.
#include "app/gui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
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

namespace {

/// A play triangle or two pause bars in `colour`, drawn: no font here has a pause glyph (U+23F8 drew as a
/// box), and the style's media icons are black on the dark theme.
QIcon playIcon(bool pause, const QColor& colour) {
  QPixmap pixmap(32, 32);
  pixmap.fill(Qt::transparent);
  QPainter painter(&pixmap);
  painter.setRenderHint(QPainter::Antialiasing);
  painter.setPen(Qt::NoPen);
  painter.setBrush(colour);
  if (pause) {
    painter.drawRect(QRectF(7, 5, 6, 22));
    painter.drawRect(QRectF(19, 5, 6, 22));
  } else {
    painter.drawPolygon(QPolygonF({QPointF(8, 4), QPointF(8, 28), QPointF(27, 16)}));
  }
  return QIcon(pixmap);
}

constexpr float k_presenter_scale = 1.5f;  // presenter mode: Qt fonts and the viewport's overlay
constexpr int k_run_delay_ms = 0;  // controls quiet for one event-loop turn → rerun (coalesces Reset and several signals of one edit; a stale run is cancelled anyway)
constexpr int k_repool_delay_ms = 200;  // after the last resize step
constexpr attn::Index k_max_pool_pixels = 1024;
constexpr int k_zoom_delay_ms = 30;  // after the last wheel notch or drag step

QString ms(double v) { return QString::number(v, 'f', v < 10 ? 2 : 1) + QStringLiteral(" ms"); }

// The mechanism's time without what it built only to be seen (a spectrum, a V = I probe), and that
// part after it when it is noticeable: "12.3 ms (+612 ms view)".
QString mechanismMs(const attn::Comparison& c) {
  QString text = ms(c.attentionMs());
  const double view = c.approx.cost.display_ms();
  if (view >= 1) text += QStringLiteral(" (+%1 view)").arg(ms(view));
  return text;
}

/// Largest finite value of a matrix (0 when there is none): the top of the colour range.
QDockWidget* makeDock(const QString& title, const QString& object_name, QWidget* content, QMainWindow* parent) {
  auto* dock = new QDockWidget(title, parent);
  dock->setObjectName(object_name);
  dock->setWidget(content);
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable |
                    QDockWidget::DockWidgetClosable);
  return dock;
}

}  // namespace

MainWindow::MainWindow(const GuiOptions& options, QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("attnlab \xE2\x80\x94 efficient attention beside exact softmax"));
  resize(1400, 900);

  viewport_ = new view::HeatmapWindow;
  if (viewport_->vulkanReady()) {
    viewport_container_ = QWidget::createWindowContainer(viewport_, this);
    viewport_container_->setFocusPolicy(Qt::NoFocus);
  } else {
    auto* label = new QLabel(viewport_->vulkanError() + tr("\nThe heatmap viewport needs Vulkan (the CLI does not)."));
    label->setAlignment(Qt::AlignCenter);
    viewport_container_ = label;
    delete viewport_;
    viewport_ = nullptr;
  }
  viewport_container_->setMinimumSize(480, 360);
  setCentralWidget(viewport_container_);

  buildDocks();
  buildToolBar();
  buildShortcuts();
  if (QSettings().value(QStringLiteral("lightTheme")).toBool()) setLightTheme(true);  // the theme last chosen
  qApp->installEventFilter(this);  // see eventFilter: Ctrl+C over selected text

  status_notice_ = new ElidedLabel;
  status_notice_->setTextFormat(Qt::PlainText);
  // Long notices end in "…" here and are shown whole in the tooltip; they never push the rest away.
  status_notice_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
  status_error_ = new QLabel;
  status_time_ = new QLabel;
  for (QLabel* label : {status_notice_, status_error_, status_time_}) label->setContentsMargins(8, 0, 8, 0);
  statusBar()->addWidget(status_notice_, 1);
  statusBar()->addPermanentWidget(status_error_);
  statusBar()->addPermanentWidget(status_time_);

  error_box_ = new QMessageBox(QMessageBox::Warning, tr("attnlab"), QString(), QMessageBox::Ok, this);
  error_box_->setWindowModality(Qt::NonModal);
  error_box_->setAttribute(Qt::WA_ShowWithoutActivating);  // keep focus in the control being edited

  run_timer_.setSingleShot(true);
  run_timer_.setInterval(k_run_delay_ms);
  connect(&run_timer_, &QTimer::timeout, this, &MainWindow::startRun);
  repool_timer_.setSingleShot(true);
  repool_timer_.setInterval(k_repool_delay_ms);
  connect(&repool_timer_, &QTimer::timeout, this, [this] {
    if (!outcome_ || !outcome_->ok) return;
    if (run_timer_.isActive() || runner_.busy()) return;  // a run is coming: it pools at the new size
    // Pool again only when the pooled image would change size.
    const attn::Index n = outcome_->comparison->inputs.n(), m = outcome_->comparison->inputs.m();
    auto pooled = [&](attn::Index pixels) { return std::make_pair(std::min(n, pixels), std::min(m, pixels)); };
    if (pooled(panelPixels()) == pooled(outcome_->pooled->request.pixels)) return;
    scheduleRepool();
  });
  connect(&runner_, &ComparisonRunner::finished, this, &MainWindow::onRunFinished);
  sort_timer_.setInterval(k_sort_frame_ms);
  connect(&sort_timer_, &QTimer::timeout, this, [this] {
    if (++sort_frame_ >= k_sort_frames) sort_timer_.stop();
    showOutcome();
  });
  // Zoom and pan: the viewport stretches what it has at once; the new window is pooled sharp shortly after.
  zoom_timer_.setSingleShot(true);
  zoom_timer_.setInterval(k_zoom_delay_ms);
  connect(&zoom_timer_, &QTimer::timeout, this, [this] {
    if (!outcome_ || !outcome_->ok || run_timer_.isActive() || runner_.busy()) return;  // pooled when it lands
    if (viewport_ && outcome_->pooled->request.window == viewport_->view()) return;
    scheduleRepool();
  });
  connect(curves_, &CurvesPanel::finished, this, [this] { log_->info(tr("curves: %1").arg(curves_->status())); });
  if (viewport_) {
    connect(viewport_, &view::HeatmapWindow::frameRendered, this, &MainWindow::reportDrawn);
    connect(viewport_, &view::HeatmapWindow::viewChanged, this, [this] { zoom_timer_.start(); });
    connect(viewport_, &view::HeatmapWindow::rowClicked, this, [this](qint64 row) {
      QString error;
      if (!selectRow(row, &error)) showError(error);
    });
    connect(viewport_, &view::HeatmapWindow::stepAction, this, [this](scene::StepAction action) {
      switch (action) {
        case scene::StepAction::First:
          stepBy(0);
          break;
        case scene::StepAction::Previous:
          stepBy(-1);
          break;
        case scene::StepAction::Play:
          if (play_->isEnabled()) play_->toggle();
          break;
        case scene::StepAction::Next:
          stepBy(1);
          break;
        default:
          break;
      }
    });
  }

  input_->setSpec(options.input);
  if (!input_->setBackend(options.backend))
    startup_notices_ << tr("unknown backend \"%1\" (use cpu, vulkan or auto): using auto")
                            .arg(QString::fromStdString(options.backend));
  if (!selectMechanism(options.mechanism)) {
    startup_notices_
        << tr("unknown mechanism \"%1\" (see attnlab list)").arg(QString::fromStdString(options.mechanism));
    // Unknown id: start on the first mechanism that is not the exact reference itself.
    for (const auto& m : attn::mechanisms())
      if (m->info().family != attn::Family::Reference) {
        selectMechanism(m->info().id);
        break;
      }
    if (!mechanism_ && !attn::mechanisms().empty()) selectMechanism(attn::mechanisms().front()->info().id);
  }
  if (!options.session.empty()) {
    QString error;
    if (!loadSession(options.session, &error)) startup_notices_ << error;
  } else if (options.restore_session && QFile::exists(QString::fromStdString(autosavePath()))) {
    QSettings settings;
    restoreGeometry(settings.value(QStringLiteral("geometry")).toByteArray());
    restoreState(settings.value(QStringLiteral("windowState")).toByteArray());
    QString error;
    if (!loadSession(autosavePath(), &error)) startup_notices_ << tr("the last session was not restored: %1").arg(error);
  }
  scheduleRun();
}

MainWindow::~MainWindow() = default;

void MainWindow::buildDocks() {
  browser_ = new MechanismBrowser;
  parameters_ = new ParameterPanel;
  input_ = new InputPanel;
  info_ = new InfoCard;

  QDockWidget* browser_dock = makeDock(tr("Mechanisms"), QStringLiteral("mechanisms"), browser_, this);
  QDockWidget* params_dock = makeDock(tr("Parameters"), QStringLiteral("parameters"), parameters_, this);
  QDockWidget* input_dock = makeDock(tr("Input"), QStringLiteral("input"), input_, this);
  QDockWidget* info_dock = makeDock(tr("About this mechanism"), QStringLiteral("about"), info_, this);
  curves_ = new CurvesPanel;
  QDockWidget* curves_dock = makeDock(tr("Curves"), QStringLiteral("curves"), curves_, this);
  log_ = new LogPanel;
  QDockWidget* log_dock = makeDock(tr("Log"), QStringLiteral("log"), log_, this);
  row_ = new RowPanel;
  QDockWidget* row_dock = makeDock(tr("Row"), QStringLiteral("row"), row_, this);

  setCorner(Qt::BottomLeftCorner, Qt::LeftDockWidgetArea);
  addDockWidget(Qt::LeftDockWidgetArea, browser_dock);
  splitDockWidget(browser_dock, params_dock, Qt::Vertical);
  splitDockWidget(params_dock, input_dock, Qt::Vertical);
  addDockWidget(Qt::BottomDockWidgetArea, info_dock);
  tabifyDockWidget(info_dock, curves_dock);
  tabifyDockWidget(curves_dock, row_dock);
  tabifyDockWidget(row_dock, log_dock);
  info_dock->raise();
  resizeDocks({browser_dock}, {330}, Qt::Horizontal);
  resizeDocks({browser_dock, params_dock, input_dock}, {330, 190, 250}, Qt::Vertical);
  resizeDocks({info_dock}, {190}, Qt::Vertical);

  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* save = file->addAction(tr("Save viewport image\xE2\x80\xA6"), this, [this] {
    const QImage image = viewportImage();
    if (image.isNull()) {
      showError(tr("The viewport cannot be read back right now."));
      return;
    }
    QString path = QFileDialog::getSaveFileName(this, tr("Save viewport image"), QStringLiteral("attnlab.png"),
                                                tr("PNG images (*.png)"));
    if (!path.isEmpty() && QFileInfo(path).suffix().isEmpty()) path += QStringLiteral(".png");  // a name typed bare
    if (!path.isEmpty() && !image.save(path))
      showError(tr("Could not write %1: check that its folder exists and is writable.").arg(path));
  });
  save->setShortcut(QKeySequence::Save);
  file->addSeparator();
  QAction* open_session = file->addAction(tr("Open session\xE2\x80\xA6"), this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open session"), QString(), tr("attnlab sessions (*.json)"));
    if (!path.isEmpty()) loadSession(path.toStdString());
  });
  open_session->setShortcut(QKeySequence::Open);
  QAction* save_session = file->addAction(tr("Save session as\xE2\x80\xA6"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save session"),
                                                      QString::fromStdString("attnlab-" + mechanism_id_ + ".json"),
                                                      tr("attnlab sessions (*.json)"));
    QString error;
    if (!path.isEmpty() && !saveSession(path.toStdString(), &error)) showError(error);
  });
  save_session->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_S));
  QMenu* recent = file->addMenu(tr("Recent sessions"));
  connect(recent, &QMenu::aboutToShow, this, [this, recent] {
    recent->clear();
    const QStringList paths = QSettings().value(QStringLiteral("recentSessions")).toStringList();
    for (const QString& path : paths)
      recent->addAction(path, this, [this, path] { loadSession(path.toStdString()); });
    if (paths.isEmpty()) recent->addAction(tr("(none yet)"))->setEnabled(false);
  });
  file->addSeparator();
  // Figures of the current comparison through the figure layer (the report's drawing code): vectors in
  // SVG and PDF, any resolution in PNG.
  file->addAction(tr("Export figure\u2026"), this, &MainWindow::showExportDialog)
      ->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);
  view_menu_ = menuBar()->addMenu(tr("&View"));
  for (QDockWidget* dock : {browser_dock, params_dock, input_dock, info_dock, curves_dock, row_dock, log_dock})
    view_menu_->addAction(dock->toggleViewAction());
  // Edit: copy what is on screen, as a picture or as numbers.
  QMenu* edit = new QMenu(tr("&Edit"), this);
  menuBar()->insertMenu(view_menu_->menuAction(), edit);
  edit->addAction(tr("Find mechanism…"), this,
                  [this, browser_dock] {
                    browser_dock->show();
                    browser_dock->raise();
                    browser_->focusFilter();
                  })
      ->setShortcut(QKeySequence::Find);
  edit->addSeparator();
  edit->addAction(tr("Copy view as image"), this, [this] {
    QString error;
    if (!copyView(&error)) showError(error);
  })->setShortcut(QKeySequence::Copy);
  edit->addAction(tr("Copy numbers as text"), this, [this] {
    QString error;
    if (!copyNumbers(&error)) showError(error);
  })->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_C));

  connect(browser_, &MechanismBrowser::mechanismSelected, this,
          [this](const QString& id) { selectMechanism(id.toStdString()); });
  connect(parameters_, &ParameterPanel::changed, this, &MainWindow::scheduleRun);
  connect(input_, &InputPanel::inputChanged, this, &MainWindow::scheduleRun);
  connect(input_, &InputPanel::backendChanged, this, &MainWindow::scheduleRun);
  connect(input_, &InputPanel::importFailed, this, [this](const QString& message) { showError(message); });
}

void MainWindow::buildToolBar() {
  QToolBar* bar = addToolBar(tr("Display"));
  bar->setObjectName(QStringLiteral("display"));
  bar->setMovable(false);
  scale_ = new QComboBox;
  scale_->addItem(tr("log10"), static_cast<int>(scene::ScaleMode::Log10));
  scale_->addItem(tr("linear"), static_cast<int>(scene::ScaleMode::Linear));
  scale_->addItem(tr("rank"), static_cast<int>(scene::ScaleMode::Rank));
  scale_->setToolTip(tr("Colour scale of the weights. log10 shows small weights (and where they are zero)."));
  floor_ = new QComboBox;
  for (int e = -2; e >= -8; --e) floor_->addItem(QStringLiteral("1e%1").arg(e), std::pow(10.0, e));
  floor_->setCurrentIndex(2);  // 1e-4
  floor_->setToolTip(tr("log10 scale: weights below this get the bottom colour"));
  pooling_ = new QComboBox;
  pooling_->addItem(tr("max"), static_cast<int>(attn::Pooling::Max));
  pooling_->addItem(tr("mean"), static_cast<int>(attn::Pooling::Mean));
  pooling_->setToolTip(
      tr("When N is larger than the screen, each pixel shows the max (sparse entries stay "
         "visible) or the mean of the weights it covers"));
  bar->addWidget(new QLabel(tr("  Scale ")));
  bar->addWidget(scale_);
  bar->addWidget(new QLabel(tr("  Floor ")));
  bar->addWidget(floor_);
  bar->addWidget(new QLabel(tr("  Pooling ")));
  bar->addWidget(pooling_);
  colormap_ = new QComboBox;
  for (const std::string& name : scene::colormapNames()) colormap_->addItem(QString::fromStdString(name));
  colormap_->setToolTip(tr("Colours of the weights: viridis (default), magma (the widest lightness range: best on "
                           "a projector), cividis (colour-vision friendly), diverging"));
  bar->addWidget(new QLabel(tr("  Colours ")));
  bar->addWidget(colormap_);
  pattern_view_ = new QComboBox;
  pattern_view_->setToolTip(tr("The third panel: the pairs the mechanism scores, or the pattern of one of its "
                               "steps (each layer's mask, what two hops reach, the coverage of summary nodes)"));
  pattern_view_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  bar->addWidget(new QLabel(tr("  Pattern ")));
  bar->addWidget(pattern_view_);
  connect(pattern_view_, &QComboBox::currentIndexChanged, this, [this] { showOutcome(); });
  play_ = new QToolButton;
  play_->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
  play_->setCheckable(true);
  play_->setToolTip(tr("Step through the mechanism's stages in the third panel (rotate \xE2\x86\x92 hash \xE2\x86\x92 "
                       "sort \xE2\x86\x92 chunk \xE2\x86\x92 attend; k-means or Sinkhorn iterations), one every %1 s")
                        .arg(k_step_interval_ms / 1000.0));
  bar->addWidget(play_);
  refreshPlayButton();
  step_timer_.setInterval(k_step_interval_ms);
  connect(&step_timer_, &QTimer::timeout, this, [this] { advanceStep(); });
  connect(play_, &QToolButton::toggled, this, [this](bool on) {
    refreshPlayButton();
    if (on) {
      step_timer_.start();
      advanceStep();
    } else {
      step_timer_.stop();
      showOutcome();  // the step bar's button turns back into "play"
    }
  });
  // Compare mode: up to three more mechanisms beside the selected one, on the same input.
  compare_ = new QToolButton;
  compare_->setText(tr("Compare"));
  compare_->setPopupMode(QToolButton::InstantPopup);
  compare_->setToolTip(tr("Show up to three more mechanisms beside this one on the same input, each with its error and "
                          "time; zoom and pan move all panels together. They run with the parameters you last gave "
                          "them (select one to tune it), else their defaults."));
  auto* compare_menu = new QMenu(compare_);
  compare_->setMenu(compare_menu);
  connect(compare_menu, &QMenu::aboutToShow, this, [this, compare_menu] {
    compare_menu->clear();
    std::map<attn::Family, QMenu*> families;
    for (const auto& m : attn::mechanismsByFamily()) {  // the browser's order
      const attn::MechanismInfo& info = m->info();
      if (info.id == mechanism_id_) continue;
      QMenu*& sub = families[info.family];
      if (!sub) sub = compare_menu->addMenu(QString::fromStdString(attn::familyName(info.family)));
      QAction* a = sub->addAction(QString::fromStdString(info.title));
      a->setCheckable(true);
      a->setChecked(std::find(compare_ids_.begin(), compare_ids_.end(), info.id) != compare_ids_.end());
      const std::string id = info.id;
      connect(a, &QAction::triggered, this, [this, id](bool on) {
        std::vector<std::string> ids = compare_ids_;
        if (on) ids.push_back(id);
        else ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
        QString error;
        if (!setCompare(ids, &error)) showError(error);
      });
    }
    compare_menu->addSeparator();
    compare_menu->addAction(tr("Clear the comparison"), this, [this] { setCompare({}); })->setEnabled(!compare_ids_.empty());
  });
  bar->addWidget(new QLabel(QStringLiteral("  ")));
  bar->addWidget(compare_);
  order_ = new QComboBox;
  order_->addItem(tr("position"));
  order_->setToolTip(tr("Token order of every panel: by position, or sorted by the mechanism's buckets / "
                        "clusters / blocks (or the input's clusters), so groups show as blocks"));
  order_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  bar->addWidget(new QLabel(tr("  Order ")));
  bar->addWidget(order_);
  connect(order_, &QComboBox::currentIndexChanged, this, [this] {
    if (outcome_ && outcome_->ok) previous_order_ = outcome_->pooled->order;  // animate from what is on screen
    if (run_timer_.isActive() || runner_.busy())
      scheduleRun();
    else
      scheduleRepool();
  });
  auto restyle = [this] {
    floor_->setEnabled(colorScale().mode == scene::ScaleMode::Log10);
    showOutcome();
  };
  connect(scale_, &QComboBox::currentIndexChanged, this, restyle);
  connect(floor_, &QComboBox::currentIndexChanged, this, restyle);
  connect(colormap_, &QComboBox::currentIndexChanged, this, restyle);
  connect(pooling_, &QComboBox::currentIndexChanged, this, [this] {
    if (run_timer_.isActive() || runner_.busy())
      scheduleRun();
    else
      scheduleRepool();
  });
}

bool MainWindow::setScale(const std::string& name) {
  const int index = scale_->findText(QString::fromStdString(name));
  if (index < 0) return false;
  scale_->setCurrentIndex(index);
  return true;
}

bool MainWindow::setOrder(const std::string& name) {
  const int index = name.empty() || name == "position" ? 0 : order_->findText(QString::fromStdString(name));
  if (index < 0) return false;
  if (order_->currentIndex() == index) return true;
  order_->setCurrentIndex(index);  // repools
  return true;
}

void MainWindow::buildShortcuts() {
  view_menu_->addSeparator();
  auto add = [this](const QString& text, const QKeySequence& keys, auto&& fn) {
    QAction* a = view_menu_->addAction(text, this, fn);
    a->setShortcut(keys);
    a->setShortcutContext(Qt::WindowShortcut);
    return a;
  };
  add(tr("Play / pause steps"), QKeySequence(Qt::Key_P), [this] {
    if (play_->isEnabled()) play_->toggle();
  });
  add(tr("Next step"), QKeySequence(Qt::Key_BracketRight), [this] { advanceStep(); });
  add(tr("Previous step"), QKeySequence(Qt::Key_BracketLeft), [this] { stepBy(-1); });
  add(tr("First step"), QKeySequence(Qt::CTRL | Qt::Key_BracketLeft), [this] { stepBy(0); });
  add(tr("Next colour scale (log10, linear, rank)"), QKeySequence(Qt::Key_L),
      [this] { scale_->setCurrentIndex((scale_->currentIndex() + 1) % scale_->count()); });
  add(tr("Max / mean pooling"), QKeySequence(Qt::Key_M), [this] { pooling_->setCurrentIndex(1 - pooling_->currentIndex()); });
  add(tr("Next token order"), QKeySequence(Qt::Key_O), [this] {
    if (order_->isEnabled() && order_->count() > 1) order_->setCurrentIndex((order_->currentIndex() + 1) % order_->count());
  });
  add(tr("Compute curves"), QKeySequence(Qt::CTRL | Qt::Key_R), [this] {
    for (QDockWidget* dock : findChildren<QDockWidget*>())
      if (dock->objectName() == QLatin1String("curves")) {
        dock->show();
        dock->raise();
      }
    curves_->start();
  });
  if (viewport_) {
    view_menu_->addSeparator();
    add(tr("Zoom in"), QKeySequence(Qt::Key_Plus), [this] { viewport_->zoomAt(1.5, QPointF(-1, -1)); });
    add(tr("Zoom out"), QKeySequence(Qt::Key_Minus), [this] { viewport_->zoomAt(1 / 1.5, QPointF(-1, -1)); });
    add(tr("Fit to window"), QKeySequence(Qt::Key_0), [this] { viewport_->fitView(); });
    auto pan = [this](double dx, double dy) { viewport_->setView(scene::panView(viewport_->view(), dx, dy)); };
    add(tr("Pan left"), QKeySequence(Qt::SHIFT | Qt::Key_Left), [pan] { pan(-0.2, 0); });
    add(tr("Pan right"), QKeySequence(Qt::SHIFT | Qt::Key_Right), [pan] { pan(0.2, 0); });
    add(tr("Pan up"), QKeySequence(Qt::SHIFT | Qt::Key_Up), [pan] { pan(0, -0.2); });
    add(tr("Pan down"), QKeySequence(Qt::SHIFT | Qt::Key_Down), [pan] { pan(0, 0.2); });
    view_menu_->addSeparator();
  }
  QAction* light = add(tr("Light theme"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_L), [this] { setLightTheme(!light_); });
  light->setCheckable(true);
  light->setObjectName(QStringLiteral("lightTheme"));
  add(tr("Presenter mode"), QKeySequence(Qt::Key_F5), [this] { setPresenterMode(!presenter_); })->setCheckable(true);
  add(tr("Keyboard shortcuts"), QKeySequence(Qt::Key_F1), [this] { showShortcuts(); });
  add(tr("Close the shortcut list"), QKeySequence(Qt::Key_Escape), [this] {
    if (help_visible_) setHelpVisible(false);
  });
  // The window holds every menu action too, so their keys keep working while presenter mode hides the
  // menu bar (actions only in a hidden menu bar get no shortcut events).
  std::function<void(const QMenu*)> adopt = [&](const QMenu* menu) {
    for (QAction* a : menu->actions()) {
      if (a->menu()) adopt(a->menu());
      else if (!a->shortcut().isEmpty()) addAction(a);
    }
  };
  for (QAction* top : menuBar()->actions())
    if (top->menu()) adopt(top->menu());
}

QStringList MainWindow::shortcutList() const {
  QStringList lines;
  // Actions of a submenu are named with it ("Export figure: weights…").
  std::function<void(const QMenu*, const QString&)> walk = [&](const QMenu* menu, const QString& prefix) {
    for (QAction* a : menu->actions()) {
      if (a->menu()) walk(a->menu(), a->text().remove(QLatin1Char('&')) + QStringLiteral(": "));
      else if (!a->shortcut().isEmpty())
        lines << a->shortcut().toString(QKeySequence::NativeText) + QStringLiteral("\t") + prefix + a->text().remove(QLatin1Char('&'));
    }
  };
  for (QAction* top : menuBar()->actions())
    if (top->menu()) walk(top->menu(), QString());
  return lines;
}

void MainWindow::showShortcuts() {
  if (viewport_) {  // an overlay over the viewport, toggled by F1 (Esc closes it)
    setHelpVisible(!help_visible_);
    return;
  }
  if (!shortcuts_) {
    shortcuts_ = new QMessageBox(QMessageBox::Information, tr("Keyboard shortcuts"), QString(), QMessageBox::Close, this);
    shortcuts_->setWindowModality(Qt::NonModal);
  }
  QString html = QStringLiteral("<table cellpadding=3>");
  for (const QString& line : shortcutList()) {
    const QStringList parts = line.split(QLatin1Char('\t'));
    html += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>").arg(parts.value(0).toHtmlEscaped(), parts.value(1).toHtmlEscaped());
  }
  html += QStringLiteral("</table><p>In the viewport: wheel to zoom, drag to pan, hover for a weight.</p>");
  shortcuts_->setText(html);
  shortcuts_->show();
}

void MainWindow::setHelpVisible(bool on) {
  help_visible_ = on && viewport_;
  showOutcome();
  if (viewport_ && (!outcome_ || !outcome_->ok)) {  // no result to redraw: put the help on what is shown
    scene::Scene scene = viewport_->scene();
    scene.help = helpLines();
    viewport_->setScene(std::move(scene));
  }
}

std::vector<std::pair<std::string, std::string>> MainWindow::helpLines() const {
  std::vector<std::pair<std::string, std::string>> lines;
  if (!help_visible_) return lines;
  for (const QString& line : shortcutList()) {
    const QStringList parts = line.split(QLatin1Char('\t'));
    lines.emplace_back(parts.value(0).toStdString(), parts.value(1).toStdString());
  }
  lines.emplace_back("wheel", "zoom about the pointer");
  lines.emplace_back("drag", "pan");
  lines.emplace_back("double click", "fit the whole matrix");
  lines.emplace_back("click", "that query's row in the Row dock");
  lines.emplace_back("hover", "read a weight, exact's, and the groups of i and j");
  return lines;
}

void MainWindow::setLightTheme(bool light) {
  light_ = light;
  applyTheme(light);
  info_->restyle();
  curves_->setLight(light);
  row_->setLight(light);
  refreshPlayButton();
  for (QAction* a : findChildren<QAction*>())
    if (a->objectName() == QLatin1String("lightTheme")) a->setChecked(light);
  QSettings().setValue(QStringLiteral("lightTheme"), light);
  showOutcome();  // the viewport's background and overlay
}

void MainWindow::refreshPlayButton() {
  const bool on = play_->isChecked();
  play_->setIcon(playIcon(on, palette().color(QPalette::ButtonText)));
  play_->setText(on ? tr("Pause") : tr("Play steps"));
}

void MainWindow::setPresenterMode(bool on) {
  if (on == presenter_) return;
  presenter_ = on;
  if (on) {
    saved_layout_ = saveState();
    saved_geometry_ = saveGeometry();
    saved_font_ = QApplication::font();
    QFont big = saved_font_;
    big.setPointSizeF(saved_font_.pointSizeF() * k_presenter_scale);
    QApplication::setFont(big);
    // The whole height for the picture: no docks, menu, toolbar, status bar (its notices) or frame time.
    // A lecturer drives it from the keyboard (P, [ ], L, M, O, + − 0, F1 lists them) and the viewport's
    // step bar; F5 leaves.
    for (QDockWidget* dock : findChildren<QDockWidget*>()) dock->hide();
    for (QToolBar* bar : findChildren<QToolBar*>()) bar->hide();
    menuBar()->hide();
    statusBar()->hide();
    if (viewport_) viewport_->setFrameTimeShown(false);
    saved_colormap_ = colormap_->currentIndex();
    colormap_->setCurrentIndex(static_cast<int>(scene::Colormap::Magma));  // black to near white: the most contrast
  } else {
    QApplication::setFont(saved_font_);
    menuBar()->show();
    statusBar()->show();
    if (viewport_) viewport_->setFrameTimeShown(true);
    colormap_->setCurrentIndex(saved_colormap_);
    // The window's size and the docks' as they were, and again once the layouts have seen the normal type:
    // restored only while they still held the 1.5× sizes, the window stayed 96 px wider and the bottom docks
    // 25 px taller (the Curves legend grew).
    restoreGeometry(saved_geometry_);
    restoreState(saved_layout_);
    QTimer::singleShot(0, this, [this, geometry = saved_geometry_, layout = saved_layout_] {
      restoreGeometry(geometry);
      restoreState(layout);
    });
  }
  for (QAction* a : view_menu_->actions())
    if (a->isCheckable() && a->text() == tr("Presenter mode")) a->setChecked(on);
  showOutcome();  // the overlay at its new scale
  repool_timer_.start();  // the panels' new size in pixels
}

void MainWindow::advanceStep() { stepBy(1); }

bool MainWindow::differenceAvailable() const {
  return outcome_ && outcome_->comparison && scene::differenceAvailable(*outcome_->comparison);
}

int MainWindow::stepCount() const { return outcome_ && outcome_->pooled ? int(outcome_->pooled->steps.size()) : 0; }

void MainWindow::stepBy(int delta) {
  // The selector lists the pattern, the steps, then the difference: steps are the entries in between.
  const int first = outcome_ && outcome_->pooled && outcome_->pooled->pattern.values.size() > 0 ? 1 : 0;
  const int count = first + stepCount();
  if (count - first <= 0) return;
  const int at = pattern_view_->currentIndex();
  int to = first;  // delta 0: the first step
  if (delta > 0) to = at + 1 >= count || at + 1 < first ? first : at + 1;  // loops
  if (delta < 0) to = at - 1 < first ? count - 1 : at - 1;
  pattern_view_->setCurrentIndex(to);
}

bool MainWindow::playSteps(bool on) {
  if (on && stepCount() == 0) return false;
  play_->setChecked(on);
  return true;
}

bool MainWindow::setPatternView(const std::string& title) {
  const int index = title.empty() ? 0 : pattern_view_->findText(QString::fromStdString(title));
  if (index < 0 || index >= pattern_view_->count()) return false;
  pattern_view_->setCurrentIndex(index);
  showOutcome();
  return true;
}

bool MainWindow::selectMechanism(const std::string& id) {
  auto mechanism = attn::findMechanism(id);
  if (!mechanism) return false;
  if (mechanism == mechanism_) return true;
  if (mechanism_) {
    startup_notices_.clear();  // the user has moved on
    // What the panel holds now, also a value committed since the last run (a spin box that lost focus to
    // the click in the list schedules a run that comes after this switch).
    params_by_id_[mechanism_id_] = parameters_->values();
  }
  mechanism_ = mechanism;
  mechanism_id_ = id;
  // The values it had when last selected (what compare mode runs it with), else its defaults.
  const auto remembered = params_by_id_.find(id);
  parameters_->setSpecs(mechanism->params(),
                        remembered != params_by_id_.end() ? remembered->second : std::map<std::string, double>{});
  info_->showMechanism(*mechanism);
  if (curves_->mechanisms().size() <= 1 && id != "exact") curves_->setMechanisms({id});  // unless the user made a set
  browser_->select(QString::fromStdString(id));  // re-emits mechanismSelected: a no-op now
  scheduleRun();
  return true;
}

bool MainWindow::setParameter(const std::string& name, double value) { return parameters_->setValue(name, value); }

bool MainWindow::setBackend(const std::string& name) { return input_->setBackend(name); }

void MainWindow::setCausal(bool causal) { input_->setCausal(causal); }

void MainWindow::scheduleRun() { run_timer_.start(); }

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

// ---- sessions ----------------------------------------------------------------------------------------

nlohmann::json MainWindow::session() const {
  const attn::InputSpec s = input_->spec();
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [name, value] : parameters_->values()) params[name] = value;
  nlohmann::json j{{"format", "attnlab-session"},
                   {"version", 1},
                   {"mechanism", mechanism_id_},
                   {"params", params},
                   {"input",
                    {{"generator", attn::generatorName(s.generator)},
                     {"n", s.n},
                     {"d", s.d},
                     {"seed", s.seed},
                     {"temperature", s.temperature}}},
                   {"causal", input_->causal()},
                   {"backend", attn::gpu::backendChoiceName(input_->backend())},
                   {"view",
                    {{"scale", scale_->currentText().toStdString()},
                     {"floor", floor_->currentData().toDouble()},
                     {"pooling", pooling_->currentText().toStdString()},
                     {"colormap", colormap_->currentText().toStdString()},
                     {"zoom", viewport_ ? nlohmann::json::array({viewport_->view().row0, viewport_->view().row1,
                                                                 viewport_->view().col0, viewport_->view().col1})
                                        : nlohmann::json::array({0, 1, 0, 1})},
                     {"order", order_ && order_->currentIndex() > 0 ? order_->currentText().toStdString() : std::string()}}},
                   {"curves", curves_->config()},
                   {"compare", compare_ids_}};
  // The compared mechanisms run with the values they were last given: those come back with the session.
  nlohmann::json compare_params = nlohmann::json::object();
  for (const std::string& id : compare_ids_)
    if (const auto it = params_by_id_.find(id); it != params_by_id_.end()) compare_params[id] = it->second;
  if (!compare_params.empty()) j["compare_params"] = compare_params;
  j["input"].update(attn::knobsToJson(s));
  if (input_->importedPath().size()) j["imported"] = input_->importedPath();
  return j;
}

bool MainWindow::applySession(const nlohmann::json& j, QString* error) {
  auto fail = [&](const QString& message) {
    if (error) *error = message;
    return false;
  };
  // A key of the wrong type reads as missing (nlohmann's value() would throw for it).
  auto text = [](const nlohmann::json& object, const char* key) {
    return object.is_object() && object.contains(key) && object[key].is_string() ? object[key].get<std::string>()
                                                                                 : std::string();
  };
  // Check everything before changing anything.
  if (!j.is_object() || text(j, "format") != "attnlab-session")
    return fail(tr("not an attnlab session (its \"format\" is not \"attnlab-session\")"));
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<std::int64_t>() != 1)
    return fail(tr("session version %1 is not one this attnlab reads (1)")
                    .arg(QString::fromStdString(j.contains("version") ? j["version"].dump() : std::string("(none)"))));
  const std::string id = text(j, "mechanism");
  if (!attn::findMechanism(id)) return fail(tr("the session's mechanism \"%1\" is not in this attnlab (see attnlab list)").arg(QString::fromStdString(id)));
  attn::InputSpec spec = input_->spec();
  bool causal = false;
  std::string backend = "auto";
  try {
    const auto& in = j.at("input");
    spec.generator = attn::parseGenerator(in.at("generator").get<std::string>());
    spec.n = in.at("n").get<attn::Index>();
    spec.d = spec.dv = in.at("d").get<attn::Index>();
    spec.seed = in.at("seed").get<std::uint64_t>();
    spec.temperature = in.value("temperature", spec.temperature);
    attn::knobsFromJson(in, spec);
    causal = j.value("causal", false);
    backend = j.value("backend", std::string("auto"));
    if (j.contains("view") && !j["view"].is_object()) throw attn::UserError("\"view\" is not an object");
    if (!j.at("params").is_object()) throw attn::UserError("\"params\" is not an object");
  } catch (const nlohmann::json::exception& e) {
    return fail(tr("the session's input is incomplete or malformed: %1").arg(QString::fromUtf8(e.what())));
  } catch (const attn::UserError& e) {
    return fail(QString::fromUtf8(e.what()));
  }
  // Before the mechanism is selected: it may be one of them, its own "params" then win below.
  // Values this window had for them are not the session's: a mechanism without an entry runs at defaults.
  QStringList skipped;
  if (j.contains("compare") && j["compare"].is_array())
    for (const auto& entry : j["compare"])
      if (entry.is_string()) params_by_id_.erase(entry.get<std::string>());
  if (j.contains("compare_params") && j["compare_params"].is_object())
    for (const auto& [other, values] : j["compare_params"].items()) {
      const auto mechanism = attn::findMechanism(other);
      if (!values.is_object() || !mechanism) continue;
      std::map<std::string, double> numbers;
      const auto specs = mechanism->params();
      for (const auto& [name, value] : values.items()) {
        const bool known =
            std::any_of(specs.begin(), specs.end(), [&](const attn::ParamSpec& p) { return p.name == name; });
        if (known && value.is_number())
          numbers[name] = value.get<double>();
        else
          skipped << QString::fromStdString(other + "." + name);
      }
      params_by_id_[other] = numbers;
    }
  selectMechanism(id);
  for (const auto& [name, value] : j.at("params").items())
    if (!value.is_number() || !parameters_->setValue(name, value.get<double>())) skipped << QString::fromStdString(name);
  input_->clearImport();
  input_->setSpec(spec);
  input_->setCausal(causal);
  input_->setBackend(backend);
  if (j.contains("imported") && j["imported"].is_string()) {
    QString import_error;
    if (!input_->importFile(QString::fromStdString(j["imported"].get<std::string>()), &import_error))
      skipped << tr("the imported file (%1)").arg(import_error);
  }
  {  // a session without "compare" (older files) is not in compare mode
    std::vector<std::string> ids;
    if (j.contains("compare") && j["compare"].is_array())
      for (const auto& entry : j["compare"])
        if (entry.is_string()) ids.push_back(entry.get<std::string>());
    QString compare_error;
    if (!setCompare(ids, &compare_error)) skipped << tr("the comparison (%1)").arg(compare_error);
  }
  if (j.contains("view") && j["view"].is_object()) {
    const auto& v = j["view"];
    auto pick = [](QComboBox* box, const std::string& wanted) {
      const int i = box->findText(QString::fromStdString(wanted));
      if (i >= 0) box->setCurrentIndex(i);
    };
    pick(scale_, text(v, "scale"));
    pick(pooling_, text(v, "pooling"));
    pick(colormap_, text(v, "colormap"));
    const nlohmann::json zoom = v.value("zoom", nlohmann::json());
    if (viewport_ && zoom.is_array() && zoom.size() == 4 && std::all_of(zoom.begin(), zoom.end(), [](const auto& x) { return x.is_number(); })) {
      scene::ViewWindow w{zoom[0].get<double>(), zoom[1].get<double>(), zoom[2].get<double>(), zoom[3].get<double>()};
      // Kept inside the matrix, so a hand-edited file still gives a usable window.
      const double fr = w.row1 - w.row0, fc = w.col1 - w.col0;
      if (fr > 0 && fc > 0 && fr <= 1 && fc <= 1)
        viewport_->setView({std::clamp(w.row0, 0.0, 1 - fr), std::clamp(w.row0, 0.0, 1 - fr) + fr,
                            std::clamp(w.col0, 0.0, 1 - fc), std::clamp(w.col0, 0.0, 1 - fc) + fc});
    }
    if (v.contains("floor") && v["floor"].is_number()) {
      const int i = floor_->findData(v["floor"].get<double>());
      if (i >= 0) floor_->setCurrentIndex(i);
    }
    pending_order_ = text(v, "order");
    if (pending_order_.empty() && order_) {  // saved unsorted: not kept sorted by an earlier order (the run reads it)
      const QSignalBlocker quiet(order_);
      order_->setCurrentIndex(0);
    }
  }
  if (j.contains("curves")) curves_->setConfig(j["curves"]);
  const QString restored_without = tr("session restored without: %1");
  startup_notices_.removeIf(
      [&](const QString& n) { return n.startsWith(restored_without.left(restored_without.indexOf('%'))); });
  if (!skipped.isEmpty()) {  // kept in the status line (the run's notices join it) until another mechanism is picked
    startup_notices_ << restored_without.arg(skipped.join(QStringLiteral(", ")));
    status_notice_->setText(startup_notices_.join(QStringLiteral("; ")));
  }
  scheduleRun();
  return true;
}

bool MainWindow::saveSession(const std::string& path, QString* error) {
  try {
    attn::writeFileAtomically(path, session().dump(2) + "\n");
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  if (path != autosavePath()) rememberRecent(QString::fromStdString(path));
  log_->info(tr("saved the session to %1").arg(QString::fromStdString(path)));
  return true;
}

bool MainWindow::loadSession(const std::string& path, QString* error) {
  QString message;
  nlohmann::json j;
  std::ifstream in(path);
  if (!in) {
    message = tr("cannot open the session file %1").arg(QString::fromStdString(path));
  } else {
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      message = tr("%1 is not valid JSON: %2").arg(QString::fromStdString(path), QString::fromUtf8(e.what()));
    }
  }
  if (message.isEmpty() && !applySession(j, &message)) message = QString::fromStdString(path) + ": " + message;
  if (!message.isEmpty()) {
    if (error) *error = message;
    showError(message);
    return false;
  }
  if (path != autosavePath()) rememberRecent(QString::fromStdString(path));
  log_->info(tr("opened the session %1").arg(QString::fromStdString(path)));
  return true;
}

void MainWindow::rememberRecent(const QString& path) {
  QSettings settings;
  QStringList paths = settings.value(QStringLiteral("recentSessions")).toStringList();
  paths.removeAll(path);
  paths.prepend(path);
  while (paths.size() > 8) paths.removeLast();
  settings.setValue(QStringLiteral("recentSessions"), paths);
}

std::string MainWindow::autosavePath() {
  const QString dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
  QDir().mkpath(dir);
  return (dir + QStringLiteral("/autosave.json")).toStdString();
}

bool MainWindow::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() == QEvent::ShortcutOverride) {
    auto* key = static_cast<QKeyEvent*>(event);
    auto* widget = qobject_cast<QWidget*>(watched);
    bool mine = false;  // inside this window, floating docks included
    for (const QWidget* w = widget; w && !mine; w = w->parentWidget()) mine = w == this;
    if (key->matches(QKeySequence::Copy) && mine) {
      // Read-only text does not claim the key itself, so the window's "Copy view as image" would take it.
      bool selection = false;
      if (auto* text = qobject_cast<QTextEdit*>(widget)) selection = text->textCursor().hasSelection();
      if (auto* plain = qobject_cast<QPlainTextEdit*>(widget)) selection = plain->textCursor().hasSelection();
      if (auto* label = qobject_cast<QLabel*>(widget)) selection = label->hasSelectedText();
      if (selection) event->accept();  // delivered to the widget as a key press: it copies its selection
    }
  }
  return QMainWindow::eventFilter(watched, event);
}

void MainWindow::closeEvent(QCloseEvent* event) {
  // Presenter mode is for the talk: the layout, fonts and colours saved are the ones it borrowed.
  if (presenter_) setPresenterMode(false);
  QString error;
  saveSession(autosavePath(), &error);  // best effort: a read-only home must not stop the window closing
  QSettings settings;
  settings.setValue(QStringLiteral("geometry"), saveGeometry());
  settings.setValue(QStringLiteral("windowState"), saveState());
  QMainWindow::closeEvent(event);
}

bool MainWindow::setCompare(const std::vector<std::string>& ids, QString* error) {
  std::vector<std::string> clean;
  for (const std::string& id : ids) {
    if (!attn::findMechanism(id)) {
      if (error) *error = tr("Unknown mechanism \"%1\" (attnlab list shows the ids).").arg(QString::fromStdString(id));
      return false;
    }
    if (id != mechanism_id_ && std::find(clean.begin(), clean.end(), id) == clean.end()) clean.push_back(id);
  }
  if (clean.size() > k_max_compared) {
    if (error)
      *error = tr("Compare mode shows at most %1 mechanisms beside the selected one: untick one first.").arg(k_max_compared);
    return false;
  }
  compare_ids_ = clean;
  compare_->setText(clean.empty() ? tr("Compare") : tr("Compare (%1)").arg(clean.size() + 1));
  scheduleRun();
  return true;
}

std::optional<attn::Grouping> MainWindow::displayedOrder() const {
  if (!outcome_ || !outcome_->pooled || outcome_->pooled->order.empty()) return std::nullopt;
  for (const attn::Grouping& g : scene::ordersOf(*outcome_->comparison))
    if (g.name == outcome_->pooled->order) return g;
  return std::nullopt;
}

void MainWindow::refreshSelectedRow() {
  if (selected_token_ < 0 || !outcome_ || !outcome_->comparison) return;
  const attn::Index n = outcome_->comparison->inputs.n();
  attn::Index row = selected_token_ < n ? selected_token_ : -1;
  if (const std::optional<attn::Grouping> g = displayedOrder(); g && row >= 0)
    row = attn::Index(std::find(g->order.begin(), g->order.end(), std::int32_t(row)) - g->order.begin());
  if (row < 0 || row >= n || !selectRow(row, nullptr, false)) {
    selected_row_ = selected_token_ = -1;
    row_->clear();
  }
}

bool MainWindow::selectRow(attn::Index row, QString* error, bool show) {
  auto fail = [&](const QString& message) {
    if (error) *error = message;
    return false;
  };
  if (!outcome_ || !outcome_->ok || !outcome_->comparison) return fail(tr("There is no result to pick a row from yet."));
  const attn::Comparison& c = *outcome_->comparison;
  const attn::Index n = c.inputs.n(), m = c.inputs.m();
  if (row < 0 || row >= n) return fail(tr("Row %1 is outside the %2 queries.").arg(row).arg(n));
  // The row as displayed: when tokens are sorted by a grouping, row k is the k-th token in that order.
  attn::Index query = row;
  QString note;
  if (const std::optional<attn::Grouping> g = displayedOrder()) {
    query = g->order[size_t(row)];
    note = tr("sorted position %1 is token %2; keys by position").arg(row).arg(query);
  }
  const attn::Index bins = std::min(m, RowPanel::k_max_bins);
  auto rowOf = [&](const attn::ImpliedWeights& w) -> std::vector<double> {
    if (!w || w.rows() != n || w.cols() != m) return {};
    const attn::Matrix full = w.tile({query, query + 1}, {0, m}, {1, m}, attn::Pooling::Max);
    return std::vector<double>(full.data(), full.data() + full.size());
  };
  auto binned = [&](const std::vector<double>& full) {
    std::vector<double> out(size_t(bins), 0.0);
    std::vector<attn::Index> s, e;
    attn::tilePixelSpans(m, bins, s, e);
    for (attn::Index b = 0; b < bins; ++b)
      for (attn::Index j = s[size_t(b)]; j < e[size_t(b)]; ++j) out[size_t(b)] = std::max(out[size_t(b)], full[size_t(j)]);
    return out;
  };
  const std::vector<double> exact = rowOf(c.exact.explanation.weights);
  if (exact.empty()) return fail(tr("Exact attention implies no weights to compare a row with."));
  std::vector<RowSeries> series;
  series.push_back({c.reference_label.empty() ? std::string("exact") : c.reference_label, binned(exact), -1});
  auto add = [&](const attn::Comparison& other) {
    const std::vector<double> values = rowOf(other.approx.explanation.weights);
    if (values.empty()) return;
    double tv = 0;
    for (size_t j = 0; j < values.size(); ++j) tv += std::fabs(values[j] - exact[j]);
    series.push_back({other.mechanism->info().id, binned(values), tv / 2});
  };
  add(c);
  for (const attn::Companion& other : outcome_->others())
    if (other.comparison) add(*other.comparison);
  if (series.size() < 2)
    note += (note.isEmpty() ? QString() : QStringLiteral("; ")) + QString::fromStdString(attn::noWeightsText(c));
  row_->setRow(query, m, std::move(series), note);
  selected_row_ = row;
  selected_token_ = query;
  if (!show) return true;  // a refresh for a new result, which is drawn next
  for (QDockWidget* dock : findChildren<QDockWidget*>())
    if (dock->objectName() == QLatin1String("row")) {
      dock->show();
      dock->raise();
    }
  showOutcome();  // the marker on the heatmaps
  return true;
}

bool MainWindow::importInputs(const std::string& path, QString* error) {
  return input_->importFile(QString::fromStdString(path), error);
}

bool MainWindow::copyView(QString* error) {
  const QImage image = viewportImage();
  if (image.isNull()) {
    if (error) *error = tr("The viewport cannot be read back right now (is the window visible?).");
    return false;
  }
  QGuiApplication::clipboard()->setImage(image);
  log_->info(tr("copied the view (%1\xC3\x97%2 pixels) to the clipboard").arg(image.width()).arg(image.height()));
  return true;
}

QString MainWindow::numbersText() const {
  if (!outcome_ || !outcome_->ok || !outcome_->comparison) return {};
  const attn::Comparison& c = *outcome_->comparison;
  const attn::InputSpec& spec = c.inputs.spec;
  QStringList lines;
  auto row = [&](const QString& name, const QString& value) { lines << name + QLatin1Char('\t') + value; };
  row(tr("mechanism"), QString::fromStdString(c.mechanism->info().id + " (" + c.mechanism->info().title + ")"));
  for (const auto& [name, value] : c.params.values()) row(QString::fromStdString(name), QString::number(value, 'g', 6));
  row(tr("input"), QString::fromStdString(spec.source.empty() ? attn::generatorName(spec.generator) : spec.source));
  if (spec.source.empty()) {  // what the generator was given, so the numbers can be made again
    row(tr("temperature"), QString::number(spec.temperature, 'g', 6));
    const nlohmann::json knobs = attn::knobsToJson(spec);
    for (const std::string& knob : attn::generatorKnobs(spec.generator))
      row(QString::fromStdString(knob), QString::number(knobs.at(knob).get<double>(), 'g', 6));
  }
  row(QStringLiteral("N"), QString::number(c.inputs.n()));
  row(QStringLiteral("d"), QString::number(c.inputs.q.cols()));
  row(tr("seed"), QString::number(spec.seed));
  row(tr("causal"), outcome_->causal ? tr("yes") : tr("no"));
  row(tr("backend"), QString::fromStdString(outcome_->pooled->subject.backend_label.empty() ? c.backend_name : outcome_->pooled->subject.backend_label));
  row(tr("relative error"), QString::number(c.relative_error, 'g', 6));
  if (std::isfinite(c.uniform_error)) row(tr("uniform attention error"), QString::number(c.uniform_error, 'g', 6));
  if (c.row_tv >= 0) row(tr("row TV"), QString::number(c.row_tv, 'g', 6));
  if (c.mass_recall >= 0) row(tr("mass recall"), QString::number(c.mass_recall, 'g', 6));
  if (c.own) {
    row(tr("own reference"), QString::fromStdString(c.own->label));
    row(tr("relative error vs own reference"), QString::number(c.own->relative_error, 'g', 6));
    if (c.own->row_tv >= 0) row(tr("row TV vs own reference"), QString::number(c.own->row_tv, 'g', 6));
  }
  row(tr("exact ms"), QString::number(c.exact_ms, 'g', 6));
  row(tr("mechanism ms"), QString::number(c.attentionMs(), 'g', 6));
  row(tr("view-only stages ms"), QString::number(c.approx.cost.display_ms(), 'g', 6));
  row(tr("summary"), QString::fromStdString(attn::describeError(c)));
  return lines.join(QLatin1Char('\n')) + QLatin1Char('\n');
}

bool MainWindow::copyNumbers(QString* error) {
  const QString text = numbersText();
  if (text.isEmpty()) {
    if (error) *error = tr("There is no result to copy yet.");
    return false;
  }
  QGuiApplication::clipboard()->setText(text);
  log_->info(tr("copied the numbers of %1 to the clipboard").arg(QString::fromStdString(mechanism_id_)));
  return true;
}

scene::ViewRequest MainWindow::exportRequest(const std::string& view_name, const ExportOptions& options) const {
  if (!outcome_ || !outcome_->ok || !outcome_->comparison) throw attn::UserError("There is no result to export yet.");
  const attn::Comparison& c = *outcome_->comparison;
  scene::ViewRequest request = viewRequest();  // what the screen shows
  request.previous_order.reset();
  request.minimap = false;
  request.pixels = options.pixels > 0 ? options.pixels
                                      : std::min(std::max(c.inputs.n(), c.inputs.m()), scene::k_max_figure_pixels);
  if (view_name == "screen" || view_name == "compare") {
    if (view_name == "compare" && outcome_->others().empty())
      throw attn::UserError("The compare grid needs compare mode: tick mechanisms under Compare first.");
    // The third panel as composed on screen (Auto resolves the same way in the figure).
    return request;
  }
  const auto v = fig::parseView(view_name);
  if (!v) throw attn::UserError("Unknown view \"" + view_name + "\"");
  return fig::requestFor(c, *v, request);
}

bool MainWindow::exportFigure(const std::string& view_name, const std::string& path, QString* error,
                              const ExportOptions& options) {
  auto fail = [&](const QString& message) {
    if (error) *error = message;
    return false;
  };
  if (!outcome_ || !outcome_->ok || !outcome_->comparison) return fail(tr("There is no result to export yet."));
  if (outcome_->metrics_pending)  // a figure carries the error: wait for it rather than print "computing"
    return fail(tr("The error against exact is still being computed: export once the status line shows it."));
  try {
    const scene::ViewRequest request = exportRequest(view_name, options);
    const fig::FigureStyle style = fig::makeStyle(options.width, options.font_size, false);
    scene::Subject subject = outcome_->pooled->subject;
    // A named view is of the selected mechanism alone; the screen (and the compare grid) keeps compare mode.
    if (view_name != "screen" && view_name != "compare") subject.others.clear();
    fig::saveFigure(fig::sceneFigure(subject, request, style), path, options.dpi);
  } catch (const std::exception& e) {
    return fail(QString::fromUtf8(e.what()));
  }
  log_->info(tr("exported the %1 view to %2").arg(QString::fromStdString(view_name), QString::fromStdString(path)));
  return true;
}

void MainWindow::showExportDialog() {
  if (!outcome_ || !outcome_->ok) {
    showError(tr("There is no result to export yet."));
    return;
  }
  QDialog dialog(this);
  dialog.setWindowTitle(tr("Export figure"));
  auto* form = new QFormLayout(&dialog);
  auto* view = new QComboBox(&dialog);
  view->addItem(tr("as on screen"), QStringLiteral("screen"));
  for (const std::string& name : fig::viewNames())
    if (name != "step") view->addItem(QString::fromStdString(name), QString::fromStdString(name));
  view->setToolTip(tr("As on screen: the order, zoom, step, scale and panels shown now; a named view replaces "
                      "the third panel"));
  auto* width = new QComboBox(&dialog);
  width->setEditable(true);
  width->addItems({QStringLiteral("double"), QStringLiteral("single"), QStringLiteral("slide")});
  width->setToolTip(tr("single: one column (3.5 in); double: the text width (7 in); slide: 10 in; or inches"));
  auto* font = new QLineEdit(&dialog);
  font->setPlaceholderText(tr("default (8 pt; 14 pt on slides)"));
  auto* pixels = new QSpinBox(&dialog);
  pixels->setRange(0, 4096);
  pixels->setSpecialValueText(tr("whole matrix (up to %1)").arg(scene::k_max_figure_pixels));
  pixels->setToolTip(tr("Each panel's matrix resolution: pooled to at most this many pixels a side"));
  form->addRow(tr("View"), view);
  form->addRow(tr("Width"), width);
  form->addRow(tr("Font size (pt)"), font);
  form->addRow(tr("Matrix pixels"), pixels);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Save | QDialogButtonBox::Cancel, &dialog);
  form->addRow(buttons);
  connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  if (dialog.exec() != QDialog::Accepted) return;
  const std::string name = view->currentData().toString().toStdString();
  const QString path = QFileDialog::getSaveFileName(this, tr("Export figure"),
                                                    QString::fromStdString("attnlab-" + mechanism_id_ + "-" + name + ".pdf"),
                                                    tr("Figures (*.svg *.pdf *.png)"));
  if (path.isEmpty()) return;
  ExportOptions options;
  options.width = width->currentText().toStdString();
  options.font_size = font->text().trimmed().toStdString();
  options.pixels = pixels->value();
  QString error;
  if (!exportFigure(name, path.toStdString(), &error, options)) showError(error);
}

scene::ColorScale MainWindow::colorScale() const {
  scene::ColorScale scale;
  scale.mode = static_cast<scene::ScaleMode>(scale_->currentData().toInt());
  scale.floor = static_cast<float>(floor_->currentData().toDouble());
  return scale;
}

void MainWindow::onRunFinished(quint64 id, std::shared_ptr<const RunOutcome> outcome) {
  if (id != latest_id_) return;  // an older request that finished after a newer one was submitted
  if (!outcome->ok) {
    outcome_.reset();
    showError(QString::fromStdString(outcome->error));
    status_time_->clear();
    if (viewport_) {
      scene::Scene scene;
      scene.placeholder = (mechanism_ ? mechanism_->info().title + " could not run: " : std::string()) + outcome->error;
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
  if (outcome_->metrics_pending)
    for (scene::Panel& p : scene.panels)
      if (p.role == "mechanism" && !p.captions.empty() && !request.times) p.captions.back() += " \xC2\xB7 row TV\xE2\x80\xA6";
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

void MainWindow::showError(const QString& message) {
  if (log_->lines().isEmpty() || !log_->lines().last().endsWith(message)) log_->error(message);
  last_error_ = message;
  status_error_->setText(message);
  status_error_->setStyleSheet(QStringLiteral("color: #ff6b6b; font-weight: 600;"));
  error_box_->setText(message);
  if (isVisible()) error_box_->show();
}

void MainWindow::resizeEvent(QResizeEvent* event) {
  QMainWindow::resizeEvent(event);
  repool_timer_.start();
}

bool MainWindow::waitForIdle(int timeout_ms) {
  QElapsedTimer clock;
  clock.start();
  while (clock.elapsed() < timeout_ms) {
    QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    const bool computing = run_timer_.isActive() || repool_timer_.isActive() || zoom_timer_.isActive() ||
                           sort_timer_.isActive() || runner_.busy();
    const bool drawn =
        !viewport_ || !viewport_->isExposed() || viewport_->renderedVersion() >= viewport_->sceneVersion();
    if (!computing && drawn) return true;
    QThread::msleep(5);
  }
  return false;
}

QImage MainWindow::viewportImage() {
  if (!viewport_) return {};
  return viewport_->grabImage();
}

QImage MainWindow::windowImage() {
  QImage image = grab().toImage().convertToFormat(QImage::Format_RGB32);
  const QImage viewport = viewportImage();
  if (!viewport.isNull()) {
    QPainter painter(&image);
    const QRect target(viewport_container_->mapTo(this, QPoint(0, 0)), viewport_container_->size());
    painter.drawImage(target, viewport);
  }
  return image;
}

}  // namespace attnlab::gui
