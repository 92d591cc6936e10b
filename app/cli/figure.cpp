#include "app/cli/figure.h"

#include <QFont>
#include <QPainter>
#include <cmath>

#include "render/view/colormap.h"

namespace attnlab::cli {

namespace {

const QColor kBackground(250, 250, 250);
const QColor kInk(30, 30, 34);

QRgb colourAt(double t) {
  const auto c = view::viridisAt(t);
  return qRgb(int(std::lround(c.r * 255)), int(std::lround(c.g * 255)), int(std::lround(c.b * 255)));
}

// Log-scaled heatmap image of a pooled tile: value v ↦ (log10 v − log10 lo) / (log10 hi − log10 lo).
QImage heatmapImage(const attn::Matrix& tile, double lo, double hi) {
  QImage img(int(tile.cols()), int(tile.rows()), QImage::Format_RGB32);
  const double a = std::log10(lo), b = std::log10(hi);
  for (int r = 0; r < img.height(); ++r) {
    auto* line = reinterpret_cast<QRgb*>(img.scanLine(r));
    for (int c = 0; c < img.width(); ++c) {
      const double v = tile(r, c);
      const double t = v <= lo ? 0.0 : (std::log10(v) - a) / (b - a);
      line[c] = colourAt(t);
    }
  }
  return img;
}

}  // namespace

QString describeInputs(const attn::InputSpec& spec) {
  QString s = QString("N=%1, d=%2, ").arg(spec.n).arg(spec.d);
  s += spec.source.empty() ? QString::fromStdString(attn::generatorName(spec.generator)) + " input"
                           : QString::fromStdString(spec.source);
  if (spec.source.empty() && spec.temperature != 1.0) s += QString(", τ = %1").arg(spec.temperature);
  return s + QString(", seed %1").arg(spec.seed);
}

QImage comparisonFigure(const attn::Comparison& c, const FigureOptions& options) {
  const int side = options.heatmap_pixels, margin = 48, gap = 56, bar_width = 22;
  const int width = margin + side + gap + side + gap + bar_width + 90;
  const int height = 110 + side + 90;
  QImage figure(width, height, QImage::Format_RGB32);
  figure.fill(kBackground);

  const attn::Index n = c.inputs.n(), m = c.inputs.m();
  const attn::TileSize out{side, side};
  // Mechanisms that group tokens (buckets, clusters) are easier to read in their sorted order: both
  // matrices are then drawn with rows and columns permuted by the first grouping.
  const attn::Grouping* grouping = nullptr;
  attn::Grouping input_clusters;
  if (n == m && n <= 4096) {
    if (!c.approx.explanation.groupings.empty()) {
      grouping = &c.approx.explanation.groupings.front();
    } else if (!c.inputs.cluster.empty()) {
      input_clusters = attn::Grouping::fromLabels("input cluster", c.inputs.cluster, std::int32_t(c.inputs.spec.clusters));
      grouping = &input_clusters;
    }
  }
  auto tileOf = [&](const attn::ImpliedWeights& w) {
    // The weights' own size: a memory's reference (product-key memory) has n² columns, not M.
    if (!grouping || w.rows() != n || w.cols() != m) return w.tile({0, w.rows()}, {0, w.cols()}, out, attn::Pooling::Max);
    return attn::permuteWeights(w, grouping->order).tile({0, n}, {0, m}, out, attn::Pooling::Max);
  };
  const attn::Matrix exact = tileOf(c.exact.explanation.weights);
  attn::Matrix approx = attn::Matrix::Zero(side, side);
  if (c.approx.explanation.weights) approx = tileOf(c.approx.explanation.weights);
  const double hi = std::max<double>({exact.maxCoeff(), approx.maxCoeff(), 1e-30});
  const double lo = hi * options.log_floor;

  QPainter p(&figure);
  p.setRenderHint(QPainter::Antialiasing);
  p.setRenderHint(QPainter::TextAntialiasing);
  QFont title("DejaVu Sans", 17, QFont::Bold);
  QFont body("DejaVu Sans", 12);
  QFont small("DejaVu Sans", 10);
  p.setPen(kInk);
  p.setFont(title);
  const auto& info = c.mechanism->info();
  p.drawText(QRect(margin, 14, width - 2 * margin, 30), Qt::AlignLeft | Qt::AlignVCenter,
             QString::fromStdString(info.title) + QString("  vs  ") + QString::fromStdString(c.reference_label));
  p.setFont(body);
  p.drawText(QRect(margin, 46, width - 2 * margin, 22), Qt::AlignLeft | Qt::AlignVCenter,
             describeInputs(c.inputs.spec) +
                 (grouping ? QString("   ·   tokens sorted by %1").arg(QString::fromStdString(grouping->name)) : QString()));

  const int top = 100;
  auto panel = [&](int x, const attn::Matrix& tile, const QString& label) {
    p.setFont(body);
    p.drawText(QRect(x, top - 26, side, 22), Qt::AlignLeft | Qt::AlignVCenter, label);
    p.drawImage(QRect(x, top, side, side), heatmapImage(tile, lo, hi));
    p.setPen(QPen(kInk, 1));
    p.drawRect(QRect(x, top, side, side).adjusted(0, 0, -1, -1));
    p.setFont(small);
    p.drawText(QRect(x, top + side + 2, side, 18), Qt::AlignLeft, "key j →");
    p.save();
    p.translate(x - 6, top + side);
    p.rotate(-90);
    p.drawText(QRect(0, -16, side, 16), Qt::AlignRight, "← query i");
    p.restore();
  };
  panel(margin, exact, QString::fromStdString(c.reference_label) + "  (" + QString::number(c.exact_ms, 'f', 1) + " ms)");
  panel(margin + side + gap, approx,
        QString::fromStdString(info.id) + "  (" + QString::number(c.approx_ms, 'f', 1) + " ms)");

  // Colour bar (log10 of the weight).
  const int bx = margin + 2 * side + 2 * gap;
  for (int y = 0; y < side; ++y) {
    const double t = 1.0 - double(y) / double(side - 1);
    p.fillRect(QRect(bx, top + y, bar_width, 1), QColor::fromRgb(colourAt(t)));
  }
  p.setPen(kInk);
  p.drawRect(QRect(bx, top, bar_width, side).adjusted(0, 0, -1, -1));
  p.setFont(small);
  const int decades = int(std::round(std::log10(1.0 / options.log_floor)));
  for (int k = 0; k <= decades; ++k) {
    const int y = top + int(std::lround(double(k) / decades * (side - 1)));
    p.drawLine(bx + bar_width, y, bx + bar_width + 4, y);
    p.drawText(QRect(bx + bar_width + 7, y - 8, 80, 16), Qt::AlignLeft | Qt::AlignVCenter,
               QString::number(hi * std::pow(10.0, -k), 'g', 2));
  }
  p.drawText(QRect(bx - 10, top - 26, 120, 22), Qt::AlignLeft | Qt::AlignVCenter, "weight (log)");

  // Footer: the error and the cost.
  p.setFont(body);
  QString line = QString::fromStdString(attn::describeError(c));
  if (c.row_tv >= 0) line += QString(", row TV %1").arg(c.row_tv, 0, 'g', 3);
  line += QString("   ·   scored pairs %1 of %2   ·   %3 backend")
              .arg(c.approx.cost.scored_pairs, 0, 'g', 4)
              .arg(double(n) * double(m), 0, 'g', 4)
              .arg(QString::fromStdString(c.backend_name));
  p.drawText(QRect(margin, top + side + 28, width - 2 * margin, 22), Qt::AlignLeft | Qt::AlignVCenter, line);
  p.setFont(small);
  p.drawText(QRect(margin, top + side + 52, width - 2 * margin, 20), Qt::AlignLeft | Qt::AlignVCenter,
             QString::fromStdString(info.idea));
  p.end();
  return figure;
}

}  // namespace attnlab::cli
