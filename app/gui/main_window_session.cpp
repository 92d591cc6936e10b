// MainWindow, sessions: the whole setup as JSON, saved, restored, autosaved and remembered.
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
#include "app/io/image_file.h"
#include "attention/inputs_json.h"
#include "attention/npy.h"
#include "attention/session.h"
#include "render/view/heatmap_window.h"

namespace attnlab::gui {

using namespace internal;

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
  // Parsed and checked (Qt-free, attention/session.h) before anything changes: values out of range come back
  // clamped with a note each, which the log and the status line show.
  const auto parsed = attn::session::parse(j, input_->spec(), [](const std::string& id) -> const std::vector<attn::ParamSpec>* {
    static std::map<std::string, std::vector<attn::ParamSpec>> specs;  // the registry's mechanisms live as long
    const auto mechanism = attn::findMechanism(id);
    if (!mechanism) return nullptr;
    return &(specs[id] = mechanism->params());
  });
  if (!parsed) return fail(QString::fromStdString(parsed.error()));
  const attn::session::Session& s = parsed.value();
  const std::string& id = s.mechanism;
  if (!attn::findMechanism(id)) return fail(tr("the session's mechanism \"%1\" is not in this attnlab (see attnlab list)").arg(QString::fromStdString(id)));
  // Before the mechanism is selected: it may be one of them, its own "params" then win below.
  // Values this window had for them are not the session's: a mechanism without an entry runs at defaults.
  QStringList skipped;
  for (const std::string& name : s.skipped) skipped << QString::fromStdString(name);
  if (s.compare)
    for (const std::string& other : *s.compare) params_by_id_.erase(other);
  for (const auto& [other, numbers] : s.compare_params) params_by_id_[other] = numbers;
  selectMechanism(id);
  for (const auto& [name, value] : s.params)
    if (!parameters_->setValue(name, value)) skipped << QString::fromStdString(name);
  input_->clearImport();
  attn::InputSpec input = s.input;
  if (input.generator == attn::Generator::Image && !input.image.empty() && !attn::shippedPicture(input.image)) {
    // A picture file is named, not stored: read it again; a file gone or changed into something else keeps the
    // session and falls back to the synthetic picture, said with the rest.
    auto read = attnlab::io::readImageFile(input.image);
    if (read) {
      input.picture = std::make_shared<const attn::Picture>(std::move(read).value());
    } else {
      skipped << tr("the picture (%1; the synthetic shapes are shown instead)").arg(QString::fromStdString(read.error()));
      input.image.clear();
      input.width = 0;
    }
  }
  input_->setSpec(input);
  input_->setCausal(s.causal);
  input_->setBackend(s.backend);
  if (!s.imported.empty()) {
    QString import_error;
    if (!input_->importFile(QString::fromStdString(s.imported), &import_error))
      skipped << tr("the imported file (%1)").arg(import_error);
  }
  {  // a session without "compare" (older files) is not in compare mode
    const std::vector<std::string> ids = s.compare ? *s.compare : std::vector<std::string>();
    QString compare_error;
    if (!setCompare(ids, &compare_error)) skipped << tr("the comparison (%1)").arg(compare_error);
  }
  if (s.view) {
    const attn::session::View& v = *s.view;
    auto pick = [](QComboBox* box, const std::string& wanted) {
      const int i = box->findText(QString::fromStdString(wanted));
      if (i >= 0) box->setCurrentIndex(i);
    };
    pick(scale_, v.scale);
    pick(pooling_, v.pooling);
    pick(colormap_, v.colormap);
    if (viewport_ && v.zoom) viewport_->setView({(*v.zoom)[0], (*v.zoom)[1], (*v.zoom)[2], (*v.zoom)[3]});
    if (v.floor) {
      const int i = floor_->findData(*v.floor);
      if (i >= 0) floor_->setCurrentIndex(i);
    }
    pending_order_ = v.order;
    if (pending_order_.empty() && order_) {  // saved unsorted: not kept sorted by an earlier order (the run reads it)
      const QSignalBlocker quiet(order_);
      order_->setCurrentIndex(0);
    }
  }
  if (!s.curves.is_null()) curves_->setConfig(s.curves);
  const QString changed = tr("session values changed: %1");
  startup_notices_.removeIf([&](const QString& n) { return n.startsWith(changed.left(changed.indexOf('%'))); });
  if (!s.notes.empty()) {  // each clamp said: in the log, and in the status line with the run's notices
    QStringList notes;
    for (const std::string& note : s.notes) {
      notes << QString::fromStdString(note);
      log_->notice(tr("session: %1").arg(QString::fromStdString(note)));
    }
    startup_notices_ << changed.arg(notes.join(QStringLiteral("; ")));
    status_notice_->setText(startup_notices_.join(QStringLiteral("; ")));
  }
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
  } catch (...) {
    if (error) *error = QString::fromStdString(attn::failureMessage());
    return false;
  }
  if (path != autosavePath()) rememberRecent(QString::fromStdString(path));
  log_->info(tr("saved the session to %1").arg(QString::fromStdString(path)));
  return true;
}

bool MainWindow::loadSession(const std::string& path, QString* error) {
  QString message;
  nlohmann::json j;
  const auto text = attn::session::readFile(path);  // refuses a file over the size a session can have
  if (!text) {
    message = QString::fromStdString(text.error());
  } else {
    try {
      j = nlohmann::json::parse(text.value());
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

}  // namespace attnlab::gui
