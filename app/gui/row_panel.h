// The Row dock: one query's attention row — the weights it gives every key j — for exact attention and
// for each mechanism on screen, drawn against each other (bars for a short row, a max-pooled step line for
// a long one), with each row's total variation from exact. A click on a heatmap row picks the query.
#pragma once
#include <QWidget>
#include <string>
#include <vector>

#include "attention/types.h"

class QChartView;
class QLabel;
class QComboBox;

namespace attnlab::gui {

/// One curve of the chart: a mechanism's (or exact's) weights of the row, pooled to at most k_max_bins.
struct RowSeries {
  std::string name;
  std::vector<double> values;  ///< per bin (one key per bin when the row is short)
  double tv = -1;              ///< total variation from exact's row (½ Σ|a − e|), −1 for exact itself
};

class RowPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RowPanel(QWidget* parent = nullptr);

  /// Shows query `query` of an N × `keys` matrix; series[0] is exact. Bars when keys ≤ k_max_bars.
  void setRow(attn::Index query, attn::Index keys, std::vector<RowSeries> series, const QString& note = {});
  void clear(const QString& message = prompt());
  /// What the dock says before a row is picked.
  static QString prompt();
  /// Light or dark chart theme (the window's).
  void setLight(bool light);
  attn::Index query() const { return query_; }
  const std::vector<RowSeries>& series() const { return series_; }
  QChartView* chartView() const { return view_; }

  static constexpr attn::Index k_max_bins = 1024;
  static constexpr attn::Index k_max_bars = 96;

 private:
  void redraw();
  void removeAxes();

  QLabel* title_ = nullptr;
  QComboBox* scale_ = nullptr;
  QChartView* view_ = nullptr;
  attn::Index query_ = -1, keys_ = 0;
  std::vector<RowSeries> series_;
};

}  // namespace attnlab::gui
