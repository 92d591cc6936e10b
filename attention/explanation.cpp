#include "attention/explanation.h"

#include "attention/backend.h"
#include "attention/multiply.h"
#include "attention/parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace attn {

void tilePixelSpans(Index len, Index out, std::vector<Index>& start, std::vector<Index>& end) {
  start.resize(size_t(out));
  end.resize(size_t(out));
  for (Index p = 0; p < out; ++p) {
    const Index s = (p * len) / out;
    const Index e = std::max(((p + 1) * len) / out, s + 1);
    start[size_t(p)] = s;
    end[size_t(p)] = std::min(e, len);
  }
}

namespace {

constexpr Index kColumnChunk = 4096;
constexpr Index kRowChunk = 256;  // source rows evaluated in one block (256 × 4096 floats: 4 MB; fewer, taller GEMMs pack the column factor fewer times)

}  // namespace

Matrix ImpliedWeights::tile(Range rows, Range cols, TileSize out, Pooling pooling) const {
  if (!block_) throw std::logic_error("ImpliedWeights::tile on an empty weights function");
  const ScopedFlushDenormals flush;  // the pool threads below inherit it
  rows.begin = std::clamp<Index>(rows.begin, 0, rows_);
  rows.end = std::clamp<Index>(rows.end, rows.begin, rows_);
  cols.begin = std::clamp<Index>(cols.begin, 0, cols_);
  cols.end = std::clamp<Index>(cols.end, cols.begin, cols_);
  Matrix result = Matrix::Zero(out.rows, out.cols);
  if (out.rows <= 0 || out.cols <= 0 || rows.size() == 0 || cols.size() == 0) return result;

  std::vector<Index> rs, re, cs, ce;
  tilePixelSpans(rows.size(), out.rows, rs, re);
  tilePixelSpans(cols.size(), out.cols, cs, ce);

  // Consecutive pixel rows are evaluated together (up to kRowChunk source rows: one block, one GEMM for a
  // factored form, instead of a thin one per pixel row), and the groups run in parallel. Block functions
  // are pure (they own what they read), so they may be called from several threads.
  std::vector<std::pair<Index, Index>> groups;  // [first, last) pixel rows
  for (Index r = 0; r < out.rows;) {
    Index r1 = r + 1;
    while (r1 < out.rows && re[size_t(r1)] - rs[size_t(r)] <= kRowChunk) ++r1;
    groups.emplace_back(r, r1);
    r = r1;
  }
  const bool max = pooling == Pooling::Max;
  parallelFor(Index(groups.size()), 0, [&](Index g) {
    const auto [r0, r1] = groups[size_t(g)];
    const Index band_begin = rs[size_t(r0)], band_end = re[size_t(r1 - 1)];
    // Per pixel: the largest entry, or the sum (divided by the pixel's area at the end).
    MatrixD acc = MatrixD::Constant(r1 - r0, out.cols, max ? -std::numeric_limits<double>::infinity() : 0.0);
    Index c = 0;
    while (c < out.cols) {
      const Index chunk_begin = cs[size_t(c)];
      Index c_end = c + 1;
      while (c_end < out.cols && ce[size_t(c_end)] - chunk_begin <= kColumnChunk) ++c_end;
      const Index chunk_end = ce[size_t(c_end - 1)];
      // A pixel larger than a block (zoomed far out on a long input) is evaluated in pieces of at most
      // kRowChunk × kColumnChunk: memory stays one block per thread at any N.
      for (Index sb = band_begin; sb < band_end; sb += kRowChunk) {
        const Index sb_end = std::min(band_end, sb + kRowChunk);
        for (Index sc = chunk_begin; sc < chunk_end; sc += kColumnChunk) {
          const Index sc_end = std::min(chunk_end, sc + kColumnChunk);
          const Matrix block =
              block_(Range{rows.begin + sb, rows.begin + sb_end}, Range{cols.begin + sc, cols.begin + sc_end});
          for (Index r = r0; r < r1; ++r) {
            const Index a0 = std::max(rs[size_t(r)], sb), a1 = std::min(re[size_t(r)], sb_end);
            if (a0 >= a1) continue;
            for (Index p = c; p < c_end; ++p) {
              const Index b0 = std::max(cs[size_t(p)], sc), b1 = std::min(ce[size_t(p)], sc_end);
              if (b0 >= b1) continue;
              const auto part = block.block(a0 - sb, b0 - sc, a1 - a0, b1 - b0);
              double& x = acc(r - r0, p);
              x = max ? std::max(x, double(part.maxCoeff())) : x + double(part.sum());
            }
          }
        }
      }
      c = c_end;
    }
    for (Index r = r0; r < r1; ++r)
      for (Index p = 0; p < out.cols; ++p) {
        const double area = double(re[size_t(r)] - rs[size_t(r)]) * double(ce[size_t(p)] - cs[size_t(p)]);
        result(r, p) = float(max ? acc(r - r0, p) : acc(r - r0, p) / area);
      }
  });
  return result;
}

Matrix ImpliedWeights::tile(Range rows, Range cols, TileSize out, Pooling pooling, Backend* backend) const {
  if (kernel_ && backend) return backend->weightTile(*kernel_, rows, cols, out, pooling);
  return tile(rows, cols, out, pooling);
}

ImpliedWeights::ImpliedWeights(std::shared_ptr<const WeightKernel> kernel) : kernel_(std::move(kernel)) {
  if (!kernel_ || !kernel_->a || !kernel_->b) throw std::logic_error("ImpliedWeights: incomplete weight kernel");
  if (kernel_->a->cols() != kernel_->b->cols() || kernel_->row_term.size() != kernel_->a->rows())
    throw std::logic_error("ImpliedWeights: inconsistent weight kernel shapes");
  rows_ = kernel_->a->rows();
  cols_ = kernel_->b->rows();
  block_ = [k = kernel_](Range r, Range c) { return k->block(r, c); };
}

Matrix WeightKernel::block(Range rows, Range cols) const {
  Matrix w = multiplyTransposed(a->middleRows(rows.begin, rows.size()), b->middleRows(cols.begin, cols.size()));
  const Index m = b->rows();
  for (Index i = 0; i < w.rows(); ++i) {
    const Index row = rows.begin + i;
    const float t = row_term(row);
    auto line = w.row(i);
    if (!std::isfinite(t)) {
      line.setZero();
      continue;
    }
    const Index visible = causal ? std::clamp<Index>(row + causal_offset + 1, 0, m) : m;
    const Index self = row + causal_offset;
    const bool hide_self = mask_self && self >= 0 && self < visible && visible > 1;
    // The visible columns of this block, [0, shown): one vectorised pass; the rest are 0.
    const Index shown = std::clamp<Index>(visible - cols.begin, 0, w.cols());
    auto seen = line.head(shown).array();
    // A softmax weight is at most 1: a logit a rounding above its row's float lse (huge logits, where the
    // GEMM here and the attention's own sums round differently) must not paint a weight of 1e5.
    if (kind == Kind::Softmax)
      seen = (seen * scale + t).min(0.0f).exp();
    else
      seen *= t;
    line.tail(w.cols() - shown).setZero();
    if (hide_self && self >= cols.begin && self < cols.begin + shown) line(self - cols.begin) = 0;
  }
  return w;
}

ImpliedWeights permuteWeights(const ImpliedWeights& w, const std::vector<std::int32_t>& order, Index max_entries) {
  const Index n = w.rows(), m = w.cols();
  if (Index(order.size()) != n || n != m)
    throw UserError("sorting tokens needs a square matrix and one position per token");
  const Matrix dense = w.dense(max_entries);
  auto sorted = std::make_shared<Matrix>(n, m);
  for (Index k = 0; k < n; ++k)
    for (Index l = 0; l < m; ++l) (*sorted)(k, l) = dense(order[size_t(k)], order[size_t(l)]);
  return ImpliedWeights(n, m, [sorted](Range r, Range c) {
    return Matrix(sorted->block(r.begin, c.begin, r.size(), c.size()));
  });
}

Pattern permutePattern(const Pattern& p, const std::vector<std::int32_t>& order) {
  if (Index(order.size()) != p.rows || p.rows != p.cols)
    throw UserError("sorting tokens needs a square pattern and one position per token");
  std::vector<std::int32_t> position(order.size());  // token → sorted position
  for (size_t k = 0; k < order.size(); ++k) position[size_t(order[k])] = std::int32_t(k);
  Pattern out;
  out.rows = p.rows;
  out.cols = p.cols;
  out.components = p.components;
  out.row_ptr.push_back(0);
  std::vector<std::pair<std::int32_t, std::uint8_t>> row;
  for (Index k = 0; k < p.rows; ++k) {
    const Index i = order[size_t(k)];
    row.clear();
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e)
      row.emplace_back(position[size_t(p.col[size_t(e)])], p.component.empty() ? 0 : p.component[size_t(e)]);
    std::sort(row.begin(), row.end());
    for (auto [j, c] : row) {
      out.col.push_back(j);
      out.component.push_back(c);
    }
    out.row_ptr.push_back(Index(out.col.size()));
  }
  return out;
}

Matrix ImpliedWeights::dense(Index max_entries) const {
  if (rows_ * cols_ > max_entries)
    throw UserError("the implied matrix is " + std::to_string(rows_) + "×" + std::to_string(cols_) +
                    ", too large to hold densely; view it as pooled tiles instead");
  return block_(Range{0, rows_}, Range{0, cols_});
}

bool Pattern::contains(Index i, Index j) const { return componentOf(i, j) >= 0; }

int Pattern::componentOf(Index i, Index j) const {
  if (i < 0 || i >= rows) return -1;
  const auto first = col.begin() + row_ptr[size_t(i)], last = col.begin() + row_ptr[size_t(i + 1)];
  const auto it = std::lower_bound(first, last, static_cast<std::int32_t>(j));
  if (it == last || *it != j) return -1;
  return component.empty() ? 0 : component[size_t(it - col.begin())];
}

Grouping Grouping::fromLabels(std::string name, std::vector<std::int32_t> labels, std::int32_t groups) {
  Grouping g;
  g.name = std::move(name);
  g.groups = groups;
  g.order.resize(labels.size());
  std::iota(g.order.begin(), g.order.end(), 0);
  std::stable_sort(g.order.begin(), g.order.end(),
                   [&](std::int32_t a, std::int32_t b) { return labels[size_t(a)] < labels[size_t(b)]; });
  g.label = std::move(labels);
  return g;
}

ImpliedWeights patternSoftmaxWeights(std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k, float scale,
                                     std::shared_ptr<const Pattern> pattern, Vector lse) {
  const Index rows = q->rows(), cols = k->rows();
  auto fn = [q, k, scale, pattern, lse = std::move(lse)](Range r, Range c) {
    Matrix block = Matrix::Zero(r.size(), c.size());
    // The pattern's entries in the block, row by row; when they fill more than 1/16 of it, one GEMM for
    // every logit of the block is cheaper than a dot product per entry (BigBird, wide windows).
    std::vector<std::pair<Index, Index>> spans(static_cast<size_t>(r.size()));
    Index entries = 0;
    for (Index i = r.begin; i < r.end; ++i) {
      const auto first = pattern->col.begin() + pattern->row_ptr[size_t(i)];
      const auto last = pattern->col.begin() + pattern->row_ptr[size_t(i + 1)];
      const auto b = std::lower_bound(first, last, static_cast<std::int32_t>(c.begin));
      const auto e = std::lower_bound(b, last, static_cast<std::int32_t>(c.end));
      spans[size_t(i - r.begin)] = {Index(b - pattern->col.begin()), Index(e - pattern->col.begin())};
      entries += Index(e - b);
    }
    Matrix logits;
    Eigen::ArrayXf values;
    const bool dense = entries * 16 > r.size() * c.size();
    if (dense) logits.noalias() = q->middleRows(r.begin, r.size()) * k->middleRows(c.begin, c.size()).transpose();
    for (Index i = r.begin; i < r.end; ++i) {
      const float l = lse(i);
      if (!std::isfinite(l)) continue;  // fully masked (0) or degenerate rows: nothing to show
      const auto [b, e] = spans[size_t(i - r.begin)];
      values.resize(e - b);
      for (Index t = b; t < e; ++t) {
        const Index j = pattern->col[size_t(t)];
        values(t - b) = dense ? logits(i - r.begin, j - c.begin) : q->row(i).dot(k->row(j));
      }
      values = (values * scale - l).min(0.0f).exp();  // vectorised; ≤ 1 (see WeightKernel::block)
      for (Index t = b; t < e; ++t) block(i - r.begin, pattern->col[size_t(t)] - c.begin) = values(t - b);
    }
    return block;
  };
  return ImpliedWeights(rows, cols, fn);
}

ImpliedWeights denseSoftmaxWeights(std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k, float scale,
                                   bool causal, Vector lse, bool mask_self) {
  auto kernel = std::make_shared<WeightKernel>();
  kernel->kind = WeightKernel::Kind::Softmax;
  kernel->a = std::move(q);
  kernel->b = std::move(k);
  kernel->scale = scale;
  kernel->row_term = -lse;
  kernel->causal = causal;
  kernel->mask_self = mask_self;
  return ImpliedWeights(std::move(kernel));
}

}  // namespace attn
