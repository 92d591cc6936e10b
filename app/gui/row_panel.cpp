// RowPanel: Qt Charts bars or step lines of one attention row per mechanism.
#include "app/gui/row_panel.h"

#include "app/gui/chart_style.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QVBoxLayout>
#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSeries>
#include <QtCharts/QBarSet>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QValueAxis>
#include <algorithm>
#include <cmath>

#include "app/figures/figure.h"

namespace attnlab::gui {

namespace {
constexpr double k_log_floor = 1e-6;  // log axis: smaller weights (and zeros) sit on the floor
}

RowPanel::RowPanel(QWidget* parent) : QWidget(parent) {
  title_ = new QLabel(prompt());
  title_->setTextFormat(Qt::PlainText);
  title_->setWordWrap(true);
  scale_ = new QComboBox;
  scale_->addItems({tr("linear"), tr("log10")});
  scale_->setToolTip(tr("Weight axis: linear shows where the mass is; log10 shows the small weights a mechanism drops"));
  connect(scale_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  QChart* chart = makeDockChart();
  view_ = new QChartView(chart);
  view_->setRenderHint(QPainter::Antialiasing);
  view_->setMinimumHeight(120);
  auto* top = new QHBoxLayout;
  top->addWidget(title_, 1);
  top->addWidget(new QLabel(tr("Axis")));
  top->addWidget(scale_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(top);
  layout->addWidget(view_, 1);
}

QString RowPanel::prompt() { return tr("Click a row of a heatmap to see that query's weights here."); }

void RowPanel::clear(const QString& message) {
  query_ = -1;
  series_.clear();
  title_->setText(message);
  view_->chart()->removeAllSeries();
  removeAxes();
}

void RowPanel::removeAxes() {
  // removeAxis hands an axis back to its caller: deleted here, or every redraw would leak two.
  for (QAbstractAxis* axis : view_->chart()->axes()) {
    view_->chart()->removeAxis(axis);
    delete axis;
  }
}

void RowPanel::setRow(attn::Index query, attn::Index keys, std::vector<RowSeries> series, const QString& note) {
  query_ = query;
  keys_ = keys;
  series_ = std::move(series);
  QString text = tr("Query i = %1: its weights over the %2 keys j").arg(query).arg(keys);
  const attn::Index bins = series_.empty() ? 0 : attn::Index(series_.front().values.size());
  if (bins < keys) text += tr(" (max over %1 keys a bin)").arg(double(keys) / double(bins), 0, 'g', 3);
  for (const RowSeries& s : series_)
    if (s.tv >= 0) text += tr(" \xC2\xB7 %1: TV %2").arg(QString::fromStdString(s.name)).arg(s.tv, 0, 'g', 3);
  // u00B7 escaped: QStringLiteral is UTF-16, so the UTF-8 bytes C2 B7 would read as two characters ("Â·").
  if (!note.isEmpty()) text += QStringLiteral(" \u00B7 ") + note;
  title_->setText(text);
  redraw();
}

void RowPanel::redraw() {
  QChart* chart = view_->chart();
  chart->removeAllSeries();
  removeAxes();
  if (series_.empty()) return;
  const bool log = scale_->currentIndex() == 1;
  const attn::Index bins = attn::Index(series_.front().values.size());
  double top = 0;
  for (const RowSeries& s : series_)
    for (double v : s.values) top = std::max(top, v);
  QAbstractAxis* y = nullptr;
  if (log) {
    auto* axis = new QLogValueAxis;
    axis->setBase(10);
    axis->setRange(k_log_floor, std::max(top * 1.5, k_log_floor * 10));
    axis->setLabelFormat(QStringLiteral("%.0e"));
    y = axis;
  } else {
    auto* axis = new QValueAxis;
    axis->setRange(0, std::max(top * 1.05, 1e-12));
    axis->setLabelFormat(QStringLiteral("%.3g"));
    y = axis;
  }
  y->setTitleText(tr("weight"));
  chart->addAxis(y, Qt::AlignLeft);
  auto colour = [](size_t k) { return k == 0 ? QColor(220, 220, 220) : fig::seriesColour(int(k - 1)); };
  if (keys_ <= k_max_bars && bins == keys_) {  // a short row: bars, one group per key
    auto* bars = new QBarSeries;
    QStringList keys;
    for (attn::Index j = 0; j < keys_; ++j) keys << QString::number(j);
    for (size_t k = 0; k < series_.size(); ++k) {
      auto* set = new QBarSet(QString::fromStdString(series_[k].name));
      set->setColor(colour(k));
      set->setBorderColor(colour(k));
      for (double v : series_[k].values) *set << (log ? std::max(v, k_log_floor) : v);
      bars->append(set);
    }
    chart->addSeries(bars);
    auto* x = new QBarCategoryAxis;
    x->append(keys);
    x->setTitleText(tr("key j"));
    chart->addAxis(x, Qt::AlignBottom);
    bars->attachAxis(x);
    bars->attachAxis(y);
    return;
  }
  auto* x = new QValueAxis;  // a long row: step lines over the bins
  x->setRange(0, double(keys_));
  x->setLabelFormat(QStringLiteral("%d"));
  x->setTitleText(tr("key j"));
  chart->addAxis(x, Qt::AlignBottom);
  for (size_t k = 0; k < series_.size(); ++k) {
    auto* line = new QLineSeries;
    line->setName(QString::fromStdString(series_[k].name));
    QPen pen(colour(k));
    pen.setWidthF(k == 0 ? 2.0 : 1.4);
    line->setPen(pen);
    const double per = double(keys_) / double(std::max<attn::Index>(bins, 1));
    QList<QPointF> points;
    points.reserve(qsizetype(2 * bins));
    for (attn::Index b = 0; b < bins; ++b) {
      const double v = log ? std::max(series_[k].values[size_t(b)], k_log_floor) : series_[k].values[size_t(b)];
      points << QPointF(double(b) * per, v) << QPointF(double(b + 1) * per, v);
    }
    line->replace(points);
    chart->addSeries(line);
    line->attachAxis(x);
    line->attachAxis(y);
  }
}

void RowPanel::setLight(bool light) {
  styleChart(view_->chart(), light);
  redraw();  // the theme resets the series' colours: draw them again
}

}  // namespace attnlab::gui
