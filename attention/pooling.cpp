#include "attention/pooling.h"

#include <algorithm>

#include "attention/backend.h"

namespace attn {

// Pools the full implied matrix to at most max_pixels a side (never more pixels than entries), on
/// the run's backend (the GPU, for a Vulkan backend) when the weights have a factored form.
Matrix pool(const ImpliedWeights& weights, Index max_pixels, Pooling pooling,
                  Backend* backend) {
  if (!weights) return {};
  const TileSize size{std::min(weights.rows(), max_pixels), std::min(weights.cols(), max_pixels)};
  return weights.tile({0, weights.rows()}, {0, weights.cols()}, size, pooling, backend);
}

// Pools a pattern to at most max_pixels a side with the spans of ImpliedWeights::tile: each pixel holds
/// the smallest component index + 1 of the pairs it covers (0: none). O(nnz + N + M).
Matrix poolPattern(const Pattern& p, Index max_pixels) {
  const Index out_rows = std::min(p.rows, max_pixels), out_cols = std::min(p.cols, max_pixels);
  Matrix pooled = Matrix::Zero(out_rows, out_cols);
  if (out_rows == 0 || out_cols == 0) return pooled;
  std::vector<Index> rs, re, cs, ce;
  tilePixelSpans(p.rows, out_rows, rs, re);
  tilePixelSpans(p.cols, out_cols, cs, ce);
  std::vector<Index> row_pixel(static_cast<size_t>(p.rows)), col_pixel(static_cast<size_t>(p.cols));
  for (Index q = 0; q < out_rows; ++q)
    for (Index i = rs[size_t(q)]; i < re[size_t(q)]; ++i) row_pixel[size_t(i)] = q;
  for (Index q = 0; q < out_cols; ++q)
    for (Index j = cs[size_t(q)]; j < ce[size_t(q)]; ++j) col_pixel[size_t(j)] = q;
  for (Index i = 0; i < p.rows; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
      const float c = float((p.component.empty() ? 0 : p.component[size_t(e)]) + 1);
      float& v = pooled(row_pixel[size_t(i)], col_pixel[size_t(p.col[size_t(e)])]);
      if (v == 0 || c < v) v = c;
    }
  return pooled;
}

// Pools "tokens i and j share a group" like poolPattern: each pixel holds (the smallest group its rows and
/// columns share) mod 8 + 1, 0 where they share none. `order` (sorted position → token) or nullptr.
Matrix poolGrouping(const Grouping& g, const std::vector<std::int32_t>* order, Index max_pixels) {
  const Index n = Index(g.label.size()), out = std::min(n, max_pixels);
  Matrix pooled = Matrix::Zero(out, out);
  std::vector<Index> s, e;
  tilePixelSpans(n, out, s, e);
  std::vector<std::vector<std::int32_t>> labels(static_cast<size_t>(out));  // per pixel: its groups, ascending
  for (Index q = 0; q < out; ++q) {
    auto& l = labels[size_t(q)];
    for (Index pos = s[size_t(q)]; pos < e[size_t(q)]; ++pos)
      l.push_back(g.label[size_t(order ? (*order)[size_t(pos)] : pos)]);
    std::sort(l.begin(), l.end());
    l.erase(std::unique(l.begin(), l.end()), l.end());
  }
  for (Index a = 0; a < out; ++a)
    for (Index b = 0; b < out; ++b) {
      const auto& x = labels[size_t(a)];
      const auto& y = labels[size_t(b)];
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
