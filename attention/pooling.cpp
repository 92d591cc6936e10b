#include "attention/pooling.h"

#include <algorithm>

#include "attention/backend.h"
#include "attention/parallel.h"

namespace attn {

// Pools the full implied matrix to at most max_pixels a side (never more pixels than entries), on
/// the run's backend (the GPU, for a Vulkan backend) when the weights have a factored form.
Matrix pool(const ImpliedWeights& weights, Index max_pixels, Pooling pooling,
                  Backend* backend) {
  if (!weights) return {};
  return pool(weights, {0, weights.rows()}, {0, weights.cols()}, max_pixels, pooling, backend);
}

Matrix pool(const ImpliedWeights& weights, Range rows, Range cols, Index max_pixels, Pooling pooling, Backend* backend) {
  if (!weights) return {};
  rows = {std::clamp<Index>(rows.begin, 0, weights.rows()), std::clamp<Index>(rows.end, 0, weights.rows())};
  cols = {std::clamp<Index>(cols.begin, 0, weights.cols()), std::clamp<Index>(cols.end, 0, weights.cols())};
  if (rows.size() <= 0 || cols.size() <= 0) return {};
  const TileSize size{std::min(rows.size(), max_pixels), std::min(cols.size(), max_pixels)};
  return weights.tile(rows, cols, size, pooling, backend);
}

// Pools a pattern to at most max_pixels a side with the spans of ImpliedWeights::tile: each pixel holds
/// the smallest component index + 1 of the pairs it covers (0: none). O(nnz + N + M).
Matrix poolPattern(const Pattern& p, Index max_pixels) { return poolPattern(p, {0, p.rows}, {0, p.cols}, max_pixels); }

Matrix poolPattern(const Pattern& p, Range rows, Range cols, Index max_pixels) {
  rows = {std::clamp<Index>(rows.begin, 0, p.rows), std::clamp<Index>(rows.end, 0, p.rows)};
  cols = {std::clamp<Index>(cols.begin, 0, p.cols), std::clamp<Index>(cols.end, 0, p.cols)};
  const Index out_rows = std::min(std::max<Index>(rows.size(), 0), max_pixels);
  const Index out_cols = std::min(std::max<Index>(cols.size(), 0), max_pixels);
  Matrix pooled = Matrix::Zero(out_rows, out_cols);
  if (out_rows == 0 || out_cols == 0) return pooled;
  std::vector<Index> rs, re, cs, ce;
  tilePixelSpans(rows.size(), out_rows, rs, re);
  tilePixelSpans(cols.size(), out_cols, cs, ce);
  // Pixel of each row and column of the block; −1 for columns outside it.
  std::vector<Index> row_pixel(static_cast<size_t>(rows.size())), col_pixel(static_cast<size_t>(p.cols), -1);
  for (Index q = 0; q < out_rows; ++q)
    for (Index i = rs[size_t(q)]; i < re[size_t(q)]; ++i) row_pixel[size_t(i)] = q;
  for (Index q = 0; q < out_cols; ++q)
    for (Index j = cs[size_t(q)]; j < ce[size_t(q)]; ++j) col_pixel[size_t(cols.begin + j)] = q;
  // Pixel rows in parallel, 16 at a time: each owns its source rows, so no two threads write one pixel.
  constexpr Index kPixelRows = 16;
  parallelFor((out_rows + kPixelRows - 1) / kPixelRows, 0, [&](Index b) {
    const Index first = rs[size_t(b * kPixelRows)], last = re[size_t(std::min(out_rows, (b + 1) * kPixelRows) - 1)];
    for (Index i = rows.begin + first; i < rows.begin + last; ++i)
      for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
        const Index q = col_pixel[size_t(p.col[size_t(e)])];
        if (q < 0) continue;
        const float c = float((p.component.empty() ? 0 : p.component[size_t(e)]) + 1);
        float& v = pooled(row_pixel[size_t(i - rows.begin)], q);
        if (v == 0 || c < v) v = c;
      }
  });
  return pooled;
}

// Pools "tokens i and j share a group" like poolPattern: each pixel holds (the smallest group its rows and
/// columns share) mod 8 + 1, 0 where they share none. `order` (sorted position → token) or nullptr.
Matrix poolGrouping(const Grouping& g, const std::vector<std::int32_t>* order, Index max_pixels) {
  const Index n = Index(g.label.size());
  return poolGrouping(g, order, {0, n}, {0, n}, max_pixels);
}

Matrix poolGrouping(const Grouping& g, const std::vector<std::int32_t>* order, Range rows, Range cols, Index max_pixels) {
  const Index n = Index(g.label.size());
  rows = {std::clamp<Index>(rows.begin, 0, n), std::clamp<Index>(rows.end, 0, n)};
  cols = {std::clamp<Index>(cols.begin, 0, n), std::clamp<Index>(cols.end, 0, n)};
  const Index out_rows = std::min(std::max<Index>(rows.size(), 0), max_pixels);
  const Index out_cols = std::min(std::max<Index>(cols.size(), 0), max_pixels);
  Matrix pooled = Matrix::Zero(out_rows, out_cols);
  // Per pixel: the groups of the positions it covers, ascending.
  auto pixelLabels = [&](Range range, Index out) {
    std::vector<Index> s, e;
    tilePixelSpans(range.size(), out, s, e);
    std::vector<std::vector<std::int32_t>> labels(static_cast<size_t>(out));
    for (Index q = 0; q < out; ++q) {
      auto& l = labels[size_t(q)];
      for (Index pos = range.begin + s[size_t(q)]; pos < range.begin + e[size_t(q)]; ++pos)
        l.push_back(g.label[size_t(order ? (*order)[size_t(pos)] : pos)]);
      std::sort(l.begin(), l.end());
      l.erase(std::unique(l.begin(), l.end()), l.end());
    }
    return labels;
  };
  if (out_rows == 0 || out_cols == 0) return pooled;
  const auto row_labels = pixelLabels(rows, out_rows), col_labels = pixelLabels(cols, out_cols);
  for (Index a = 0; a < out_rows; ++a)
    for (Index b = 0; b < out_cols; ++b) {
      const auto& x = row_labels[size_t(a)];
      const auto& y = col_labels[size_t(b)];
      for (size_t i = 0, j = 0; i < x.size() && j < y.size();) {
        if (x[i] == y[j]) {
          pooled(a, b) = float(x[i] % 8 + 1);
          break;
        }
        x[i] < y[j] ? ++i : ++j;
      }
    }
  return pooled;
}

}  // namespace attn
