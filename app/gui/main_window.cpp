// MainWindow: the window shell, its docks, toolbar, shortcuts, theme and presenter mode. Split by feature:
// main_window_scene.cpp (run → pool → show), main_window_session.cpp (sessions), main_window_rows.cpp (the
// picked row), main_window_export.cpp (figures, copy).
#include "app/gui/main_window.h"
#include "app/gui/main_window_internal.h"

#include <QAction>
#include <QActionGroup>
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
#include <QPushButton>
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

using namespace internal;

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
  // A run in flight for more than a moment can be stopped (Esc too); the picture then says it was cancelled.
  cancel_run_ = new QPushButton(tr("Cancel"));
  cancel_run_->setObjectName(QStringLiteral("cancelRun"));
  cancel_run_->setToolTip(tr("Stop this run (Esc). Change a setting, or Ctrl+Shift+R, to run again."));
  cancel_run_->hide();
  // No taller than the status line's text, so the window's layout (and the viewport) does not jump when it shows.
  cancel_run_->setMaximumHeight(status_time_->sizeHint().height());
  statusBar()->addPermanentWidget(cancel_run_);
  connect(cancel_run_, &QPushButton::clicked, this, [this] { cancelRun(); });
  cancel_timer_.setSingleShot(true);
  cancel_timer_.setInterval(k_cancel_button_delay_ms);
  connect(&cancel_timer_, &QTimer::timeout, this, [this] {
    if (runner_.busy()) cancel_run_->show();
  });
  connect(&runner_, &ComparisonRunner::progress, this, [this](quint64 id, const QString& text) {
    if (id == latest_id_) status_time_->setText(text);
  });

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
    connect(viewport_, &view::HeatmapWindow::pixelClicked, this, [this](qint64 token) {
      QString error;
      if (!pickPixel(token, &error)) showError(error);
    });
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
  if (options.pixel_view) setViewLayout(scene::Layout::Pixel);
  if (options.gates_view) setViewLayout(scene::Layout::Gates);
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
  file->addAction(tr("Open image…"), this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open image"), QString(),
                                                      tr("Images (*.png *.jpg *.jpeg *.bmp *.gif);;All files (*)"));
    if (!path.isEmpty()) openImage(path.toStdString());
  })->setStatusTip(tr("Run on a picture of your own (PNG, JPEG): its pixels become the tokens"));
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
  // The layout: the weight matrices, or (the image input) one pixel's attention over the picture.
  {
    auto* group = new QActionGroup(this);
    struct Choice {
      scene::Layout which;
      QString title, tip;
      Qt::Key key;
    };
    const Choice layouts[] = {
        {scene::Layout::Matrix, tr("Matrix view"), tr("The N\u00D7N weight matrices"), Qt::Key_1},
        {scene::Layout::Pixel, tr("Pixel view (image input)"),
         tr("A pixel's row of the weights over the picture: click a pixel to pick it"), Qt::Key_2},
        {scene::Layout::Gates, tr("Gates view (image input)"),
         tr("A gating module's maps over the picture and its channel gates as bars (CBAM, GCNet, \u2026)"), Qt::Key_3}};
    for (const auto& [which, title, tip, key] : layouts) {
      QAction* a = view_menu_->addAction(title, this, [this, which] { setViewLayout(which); });
      a->setCheckable(true);
      a->setChecked(which == layout_);
      a->setShortcut(QKeySequence(Qt::CTRL | key));
      a->setToolTip(tip);
      group->addAction(a);
      layout_actions_.push_back(a);
    }
    view_menu_->addSeparator();
  }
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
  add(tr("Close the shortcut list, or cancel the run in flight"), QKeySequence(Qt::Key_Escape), [this] {
    if (help_visible_) setHelpVisible(false);
    else if (runner_.busy()) cancelRun();
  });
  add(tr("Run again"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R), [this] { scheduleRun(); });
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
  lines.emplace_back("click", layout_ == scene::Layout::Pixel   ? "that pixel's attention, and its row in the Row dock"
                             : layout_ == scene::Layout::Gates ? "that pixel's exact map beside the mechanism's own"
                                                               : "that query's row in the Row dock");
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

bool MainWindow::importInputs(const std::string& path, QString* error) {
  return input_->importFile(QString::fromStdString(path), error);
}

bool MainWindow::openImage(const std::string& path, QString* error) {
  return input_->openImage(QString::fromStdString(path), error);
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
