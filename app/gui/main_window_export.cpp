// MainWindow, figures and copies: the export dialog and files (the view model's scene for the screen's
// request), the view as an image and the numbers as text.
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
  } catch (...) {
    return fail(QString::fromStdString(attn::failureMessage()));
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

}  // namespace attnlab::gui
