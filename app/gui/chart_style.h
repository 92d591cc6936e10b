// The look of the docks' Qt charts (Curves, Row), following the window's light or dark theme; the
// series keep the figure layer's colours.
#pragma once
#include <QColor>
#include <QtCharts/QChart>
#include <QtCharts/QLegend>

namespace attnlab::gui {

/// Theme and background of a chart (a theme change resets the series' colours: redraw them after).
inline void styleChart(QChart* chart, bool light) {
  chart->setTheme(light ? QChart::ChartThemeLight : QChart::ChartThemeDark);
  chart->setBackgroundBrush(light ? QColor(252, 252, 253) : QColor(32, 33, 38));
}

/// A new chart in the dark theme with the docks' margins and the legend on the right.
inline QChart* makeDockChart() {
  auto* chart = new QChart;
  styleChart(chart, false);
  chart->setMargins(QMargins(4, 4, 4, 4));
  chart->legend()->setAlignment(Qt::AlignRight);
  return chart;
}

}  // namespace attnlab::gui
