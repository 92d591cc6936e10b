// MainWindow, the picked row: a query's weights against exact in the Row dock, kept through new results.
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

void MainWindow::setViewLayout(scene::Layout layout) {
  layout_ = layout;
  for (std::size_t k = 0; k < layout_actions_.size(); ++k) layout_actions_[k]->setChecked(int(k) == int(layout));
  if (viewport_ && layout != scene::Layout::Matrix) viewport_->fitView();  // the pixel maps are never zoomed
  if (outcome_ && outcome_->ok) scheduleRepool();
}

bool MainWindow::pickPixel(attn::Index token, QString* error) {
  if (!selectRow(token, error)) return false;  // in the pixel view the tokens are in position order
  if (layout_ != scene::Layout::Matrix) scheduleRepool();
  return true;
}

}  // namespace attnlab::gui
