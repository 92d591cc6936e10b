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
#include "attention/inputs_json.h"
#include "attention/npy.h"
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

}  // namespace attnlab::gui
