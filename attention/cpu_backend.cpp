// CPU backend: fused, blocked exact attention with an online softmax (N×M never materialised),
// index-sparse attention, linear attention with chunked prefix sums, hashing, k-means assignment.
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include "attention/backend.h"
#include "attention/parallel.h"

namespace attn {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr Index kFeatureRows = 256;  // feature maps: rows per parallel block
constexpr Index kQueryBlock = 64;
constexpr Index kKeyBlock = 256;

void checkShapes(const Matrix& q, const Matrix& k, const Matrix& v, const char* what) {
  if (q.cols() != k.cols() || k.rows() != v.rows())
    throw UserError(std::string(what) + ": shapes do not fit (Q " + std::to_string(q.rows()) + "×" +
                    std::to_string(q.cols()) + ", K " + std::to_string(k.rows()) + "×" + std::to_string(k.cols()) +
                    ", V " + std::to_string(v.rows()) + "×" + std::to_string(v.cols()) + ")");
}

float resolveScale(float scale, Index d) { return scale > 0 ? scale : 1.0f / std::sqrt(float(d)); }

// One row of softmax attention in double with the defined behaviour of backend.h. `logit(j)` is the
// logit of visible key number j (of count), `key(j)` its row index in V.
template <class LogitFn, class KeyFn, class VMat>
double rowAttentionDouble(Index count, LogitFn logit, KeyFn key, const VMat& v, double* out, Index dv) {
  std::vector<double> x(static_cast<size_t>(count));
  bool any_nan = false, any_pos_inf = false;
  double mx = -std::numeric_limits<double>::infinity();
  for (Index j = 0; j < count; ++j) {
    x[size_t(j)] = logit(j);
    if (std::isnan(x[size_t(j)])) any_nan = true;
    else if (x[size_t(j)] == std::numeric_limits<double>::infinity()) any_pos_inf = true;
    else mx = std::max(mx, x[size_t(j)]);
  }
  for (Index c = 0; c < dv; ++c) out[c] = 0;
  if (any_nan) {
    for (Index c = 0; c < dv; ++c) out[c] = std::numeric_limits<double>::quiet_NaN();
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (any_pos_inf) {
    Index hits = 0;
    for (Index j = 0; j < count; ++j)
      if (x[size_t(j)] == std::numeric_limits<double>::infinity()) {
        ++hits;
        for (Index c = 0; c < dv; ++c) out[c] += double(v(key(j), c));
      }
    for (Index c = 0; c < dv; ++c) out[c] /= double(hits);
    return std::numeric_limits<double>::infinity();
  }
  if (mx == -std::numeric_limits<double>::infinity()) return mx;  // fully masked: zeros
  double sum = 0;
  for (Index j = 0; j < count; ++j) {
    const double w = std::exp(x[size_t(j)] - mx);
    if (w == 0) continue;
    sum += w;
    for (Index c = 0; c < dv; ++c) out[c] += w * double(v(key(j), c));
  }
  for (Index c = 0; c < dv; ++c) out[c] /= sum;
  return mx + std::log(sum);
}

// The key position of query i itself (the self rule's "self").
Index selfKey(const DenseAttentionOptions& o, Index i) { return i + o.causal_offset; }

// The shared-QK rule: self is hidden when it is visible and some other key is visible too (not masked
// by causality or a −inf bias).
template <class BiasFn>
bool selfHidden(const DenseAttentionOptions& o, Index i, Index visible, BiasFn bias) {
  const Index self = selfKey(o, i);
  if (!o.mask_self || self < 0 || self >= visible) return false;
  for (Index j = 0; j < visible; ++j)
    if (j != self && bias(j) != -std::numeric_limits<double>::infinity()) return true;
  return false;
}

// Recomputes row i of dense attention in double (rows with NaN or +inf float logits).
void denseRowFallback(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& o, float scale,
                      Index i, Matrix& out, Vector& lse) {
  const Index m = k.rows(), dv = v.cols();
  const Index visible = o.causal ? std::clamp<Index>(i + o.causal_offset + 1, 0, m) : m;
  const bool hide_self = selfHidden(o, i, visible, [&](Index j) { return o.bias ? double((*o.bias)(i, j)) : 0.0; });
  std::vector<double> row(static_cast<size_t>(dv));
  const double l = rowAttentionDouble(
      visible,
      [&](Index j) {
        if (hide_self && j == selfKey(o, i)) return -std::numeric_limits<double>::infinity();
        double s = 0;
        for (Index c = 0; c < q.cols(); ++c) s += double(q(i, c)) * double(k(j, c));
        s *= double(scale);
        if (o.bias) s += double((*o.bias)(i, j));
        return s;
      },
      [](Index j) { return j; }, v, row.data(), dv);
  for (Index c = 0; c < dv; ++c) out(i, c) = float(row[size_t(c)]);
  lse(i) = float(l);
}

}  // namespace

CpuBackend::CpuBackend(int threads) : threads_(threads) {}

BackendInfo CpuBackend::info() const {
  return BackendInfo{"cpu", cpuModelName(),
                     "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                         std::to_string(EIGEN_MINOR_VERSION)};
}

AttentionOutput CpuBackend::denseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                           const DenseAttentionOptions& o) {
  checkShapes(q, k, v, "dense attention");
  const Index n = q.rows(), m = k.rows(), dv = v.cols();
  if (o.bias && (o.bias->rows() != n || o.bias->cols() != m))
    throw UserError("dense attention: the bias must be N×M");
  const float scale = resolveScale(o.scale, q.cols());
  AttentionOutput result{Matrix::Zero(n, dv), Vector::Constant(n, -kInf)};
  const Index blocks = (n + kQueryBlock - 1) / kQueryBlock;
  notePeak(checkedMul(threads_ > 0 ? threads_ : 2, kQueryBlock * (kKeyBlock + dv) * Index(sizeof(float)), "workspace"));

  parallelFor(blocks, threads_, [&](Index b) {
    const Index i0 = b * kQueryBlock, i1 = std::min(n, i0 + kQueryBlock), rows = i1 - i0;
    Vector run_max = Vector::Constant(rows, -kInf);
    Vector run_sum = Vector::Zero(rows);
    Matrix acc = Matrix::Zero(rows, dv);
    std::vector<char> special(size_t(rows), 0);
    const Index key_end = o.causal ? std::clamp<Index>(i1 - 1 + o.causal_offset + 1, 0, m) : m;
    const Matrix qb = q.middleRows(i0, rows) * scale;
    Matrix s;
    Vector block_max(rows), alpha(rows);
    for (Index j0 = 0; j0 < key_end; j0 += kKeyBlock) {
      const Index j1 = std::min(key_end, j0 + kKeyBlock), cols = j1 - j0;
      s.noalias() = qb * k.middleRows(j0, cols).transpose();
      if (o.bias) s += o.bias->block(i0, j0, rows, cols);
      if (o.mask_self)
        for (Index r = 0; r < rows; ++r) {
          const Index self = selfKey(o, i0 + r);
          if (self >= j0 && self < j1) s(r, self - j0) = -kInf;
        }
      if (o.causal && j1 > i0 + o.causal_offset + 1) {  // the block straddles the diagonal
        for (Index r = 0; r < rows; ++r) {
          const Index visible = std::clamp<Index>(i0 + r + o.causal_offset + 1 - j0, 0, cols);
          s.row(r).tail(cols - visible).setConstant(-kInf);
        }
      }
      // Rows holding NaN or +inf are finished in double at the end (their sum is NaN or +inf).
      const Vector sums = s.rowwise().sum();
      for (Index r = 0; r < rows; ++r) {
        if ((std::isnan(sums(r)) || sums(r) == kInf) && !special[size_t(r)]) {
          for (Index c = 0; c < cols; ++c)
            if (std::isnan(s(r, c)) || s(r, c) == kInf) special[size_t(r)] = 1;
        }
      }
      block_max = s.rowwise().maxCoeff();
      for (Index r = 0; r < rows; ++r) {
        if (special[size_t(r)]) {
          s.row(r).setConstant(-kInf);
          block_max(r) = -kInf;
        }
        const float new_max = std::max(run_max(r), block_max(r));
        // Rows with nothing visible yet keep max −inf; shift them by 0 so exp(−inf) = 0, not NaN.
        alpha(r) = new_max == -kInf ? 1.0f : std::exp(run_max(r) - new_max);
        run_max(r) = new_max;
        block_max(r) = new_max == -kInf ? 0.0f : new_max;
      }
      s = (s.array().colwise() - block_max.array()).exp().matrix();  // vectorised exp
      run_sum = run_sum.cwiseProduct(alpha) + s.rowwise().sum();
      acc = alpha.asDiagonal() * acc;
      acc.noalias() += s * v.middleRows(j0, cols);
    }
    for (Index r = 0; r < rows; ++r) {
      const Index i = i0 + r;
      // Rows that saw NaN/+inf, and masked-self rows left with no key (self is then allowed back).
      if (special[size_t(r)] || (o.mask_self && !(run_sum(r) > 0) && selfKey(o, i) >= 0 && selfKey(o, i) < m)) {
        denseRowFallback(q, k, v, o, scale, i, result.out, result.lse);
      } else if (run_sum(r) > 0) {
        result.out.row(i) = acc.row(r) / run_sum(r);
        result.lse(i) = run_max(r) + std::log(run_sum(r));
      }
    }
  });
  return result;
}

AttentionOutput CpuBackend::sparseAttention(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern,
                                            float scale_in, const std::vector<float>* entry_bias) {
  checkShapes(q, k, v, "sparse attention");
  const Index n = q.rows(), dv = v.cols();
  if (pattern.rows != n || pattern.cols != k.rows() || Index(pattern.row_ptr.size()) != n + 1)
    throw UserError("sparse attention: the pattern is " + std::to_string(pattern.rows) + "×" +
                    std::to_string(pattern.cols) + " but the inputs need " + std::to_string(n) + "×" +
                    std::to_string(k.rows()));
  if (entry_bias && Index(entry_bias->size()) != pattern.nnz())
    throw UserError("sparse attention: one bias per pattern entry is needed");
  const float scale = resolveScale(scale_in, q.cols());
  AttentionOutput result{Matrix::Zero(n, dv), Vector::Constant(n, -kInf)};
  const Index blocks = (n + kQueryBlock - 1) / kQueryBlock;
  const Index d = q.cols();
  const std::int32_t* col = pattern.col.data();
  parallelFor(blocks, threads_, [&](Index b) {
    const Index i_end = std::min(n, (b + 1) * kQueryBlock);
    Matrix gathered_k, gathered_v, logits;
    Eigen::Array<bool, Eigen::Dynamic, 1> finite_dots;
    Eigen::RowVectorXf p;
    for (Index i = b * kQueryBlock; i < i_end;) {
      const Index e0 = pattern.row_ptr[size_t(i)], e1 = pattern.row_ptr[size_t(i + 1)], count = e1 - e0;
      // Rows i … g−1 score the same keys (every row of a BigBird block, say): one GEMM for their logits
      // and one for their outputs, over the keys gathered once (or read in place when they are a run).
      Index g = i + 1;
      while (g < i_end && pattern.row_ptr[size_t(g + 1)] - pattern.row_ptr[size_t(g)] == count &&
             std::equal(col + pattern.row_ptr[size_t(g)], col + pattern.row_ptr[size_t(g + 1)], col + e0))
        ++g;
      if (count == 0) {  // no key: zeros, lse −inf
        i = g;
        continue;
      }
      bool run = col[e1 - 1] - col[e0] == count - 1;  // a contiguous run of keys, read in place
      for (Index t = 1; run && t < count; ++t) run = col[e0 + t] == col[e0] + t;  // (not e.g. {0, 0, 2})
      const bool alone = !run && g - i == 1;  // scattered keys of one row: read in place, entry by entry
      if (!run && !alone) {
        gathered_k.resize(count, d);
        gathered_v.resize(count, dv);
        for (Index t = 0; t < count; ++t) {
          gathered_k.row(t) = k.row(col[e0 + t]);
          gathered_v.row(t) = v.row(col[e0 + t]);
        }
      }
      const Eigen::Ref<const Matrix> keys = run ? Eigen::Ref<const Matrix>(k.middleRows(col[e0], count))
                                                : Eigen::Ref<const Matrix>(gathered_k);
      const Eigen::Ref<const Matrix> values = run ? Eigen::Ref<const Matrix>(v.middleRows(col[e0], count))
                                                  : Eigen::Ref<const Matrix>(gathered_v);
      if (alone) {
        logits.resize(1, count);
        for (Index t = 0; t < count; ++t) logits(0, t) = q.row(i).dot(k.row(col[e0 + t]));
      } else {
        logits.noalias() = q.middleRows(i, g - i) * keys.transpose();
      }
      // A dot product that overflowed (|q·k| > FLT_MAX) may still give a finite scale·q·k: such rows, like
      // rows with NaN or +inf logits, are computed in double.
      finite_dots = (logits.array().abs() < kInf).rowwise().all();
      logits *= scale;
      for (Index row = i; row < g; ++row) {
        auto l = logits.row(row - i);
        const Index r0 = pattern.row_ptr[size_t(row)];
        if (entry_bias) l += Eigen::Map<const Eigen::RowVectorXf>(entry_bias->data() + r0, count);
        if (!finite_dots(row - i) || !(l.array() < kInf).all()) {  // the row in double, as exact attention treats it
          std::vector<double> out_row(static_cast<size_t>(dv));
          const double lse = rowAttentionDouble(
              count,
              [&](Index t) {
                const Index j = col[r0 + t];
                double s = 0;
                for (Index c = 0; c < d; ++c) s += double(q(row, c)) * double(k(j, c));
                return s * double(scale) + (entry_bias ? double((*entry_bias)[size_t(r0 + t)]) : 0.0);
              },
              [&](Index t) { return Index(col[r0 + t]); }, v, out_row.data(), dv);
          for (Index c = 0; c < dv; ++c) result.out(row, c) = float(out_row[size_t(c)]);
          result.lse(row) = float(lse);
          continue;
        }
        const float mx = l.maxCoeff();
        if (mx == -kInf) continue;  // no visible key: zeros, lse −inf
        p = (l.array() - mx).exp().matrix();  // vectorised exp
        p = (l.array() == -kInf).select(0.0f, p.array()).matrix();  // masked keys weigh exactly 0
        const float sum = p.sum();
        if (alone) {
          auto out_row = result.out.row(row);
          for (Index t = 0; t < count; ++t) out_row += p(t) * v.row(col[e0 + t]);
          out_row /= sum;
        } else {
          result.out.row(row).noalias() = (p * values) / sum;
        }
        result.lse(row) = mx + std::log(sum);
      }
      i = g;
    }
  });
  return result;
}

Index featureCount(const FeatureMapOptions& o, Index d) {
  switch (o.map) {
    case FeatureMap::EluPlusOne:
      return d;
    case FeatureMap::PositiveRandom:
      return o.projection ? o.projection->rows() : 0;
    case FeatureMap::Trigonometric:
      return o.projection ? 2 * o.projection->rows() : 0;
  }
  return 0;
}

void checkFeatureMap(const Matrix& x, const FeatureMapOptions& o) {
  if (o.map == FeatureMap::EluPlusOne) return;
  if (!o.projection || o.projection->rows() == 0)
    throw UserError("feature map: random features need a projection with at least one row");
  if (o.projection->cols() != x.cols())
    throw UserError("feature map: the projection has " + std::to_string(o.projection->cols()) +
                    " columns but the inputs have dimension " + std::to_string(x.cols()));
}

Matrix CpuBackend::featureMap(const Matrix& x_in, const FeatureMapOptions& o) {
  checkFeatureMap(x_in, o);
  const Matrix x = x_in * o.input_scale;
  switch (o.map) {
    case FeatureMap::EluPlusOne:
      return x.unaryExpr([](float t) { return t > 0 ? t + 1.0f : std::exp(t); });
    case FeatureMap::PositiveRandom: {
      // Blocks of rows in parallel; exp over whole rows with Eigen's vectorised exp (≈ 8 per instruction).
      const Index m = o.projection->rows(), n = x.rows();
      const Index blocks = (n + kFeatureRows - 1) / kFeatureRows;
      Matrix u(n, m);  // N×m exponents ω·x − ‖x‖²/2
      Vector row_max(n);
      auto rowsOf = [&](Index b) { return Range{b * kFeatureRows, std::min(n, (b + 1) * kFeatureRows)}; };
      parallelFor(blocks, threads_, [&](Index b) {
        const Range r = rowsOf(b);
        auto ub = u.middleRows(r.begin, r.size());
        ub.noalias() = x.middleRows(r.begin, r.size()) * o.projection->transpose();
        ub.colwise() -= Vector(0.5f * x.middleRows(r.begin, r.size()).rowwise().squaredNorm());
        for (Index i = r.begin; i < r.end; ++i) {
          float mx = -kInf;
          for (Index c = 0; c < m; ++c)
            if (!std::isnan(u(i, c))) mx = std::max(mx, u(i, c));
          row_max(i) = mx;
        }
      });
      const float global = n > 0 ? row_max.maxCoeff() : -kInf;
      const float norm = 1.0f / std::sqrt(float(m));
      parallelFor(blocks, threads_, [&](Index b) {
        const Range r = rowsOf(b);
        for (Index i = r.begin; i < r.end; ++i) {
          float shift = o.shift == FeatureShift::PerRow ? row_max(i) : o.shift == FeatureShift::Global ? global : 0.0f;
          if (!std::isfinite(shift)) shift = 0;  // nothing finite to subtract
          u.row(i) = (u.row(i).array() - shift).exp() * norm;
        }
      });
      notePeak(u.size() * Index(sizeof(float)));
      return u;
    }
    case FeatureMap::Trigonometric: {
      const Index m = o.projection->rows(), n = x.rows();
      Matrix phi(n, 2 * m);
      const float norm = 1.0f / std::sqrt(float(m));
      parallelFor((n + kFeatureRows - 1) / kFeatureRows, threads_, [&](Index b) {
        const Index r0 = b * kFeatureRows, rows = std::min(kFeatureRows, n - r0);
        const Matrix u = x.middleRows(r0, rows) * o.projection->transpose();
        for (Index k = 0; k < rows; ++k) {
          const float g = std::exp(0.5f * x.row(r0 + k).squaredNorm()) * norm;
          phi.row(r0 + k).head(m) = u.row(k).array().sin() * g;
          phi.row(r0 + k).tail(m) = u.row(k).array().cos() * g;
        }
      });
      notePeak(phi.size() * Index(sizeof(float)));
      return phi;
    }
  }
  throw std::logic_error("unknown feature map");
}

Matrix CpuBackend::linearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) {
  checkShapes(phi_q, phi_k, v, "linear attention");
  const Index n = phi_q.rows(), feat = phi_q.cols(), dv = v.cols();
  Matrix out(n, dv);
  auto finish = [&](Index i, const auto& num, float den) {
    if (den > 0 && std::isfinite(den)) out.row(i) = num / den;
    else out.row(i).setZero();
  };
  if (!causal) {
    // S = φKᵀV and z = Σφk in two halves over the keys (one per core), then the rows of φQ·S in blocks.
    const Index m = phi_k.rows(), half = (m + 1) / 2;
    std::array<Matrix, 2> part;
    std::array<Eigen::RowVectorXf, 2> zpart;
    parallelFor(2, threads_, [&](Index h) {
      const Index b = h * half, len = std::max<Index>(0, std::min(m, b + half) - b);
      part[size_t(h)].noalias() = phi_k.middleRows(b, len).transpose() * v.middleRows(b, len);  // m×dv
      zpart[size_t(h)] = phi_k.middleRows(b, len).colwise().sum();
    });
    const Matrix state = part[0] + part[1];
    const Eigen::RowVectorXf z = zpart[0] + zpart[1];
    parallelFor((n + kQueryBlock * 4 - 1) / (kQueryBlock * 4), threads_, [&](Index b) {
      const Index i0 = b * kQueryBlock * 4, rows = std::min(kQueryBlock * 4, n - i0);
      const Matrix num = phi_q.middleRows(i0, rows) * state;
      const Vector den = phi_q.middleRows(i0, rows) * z.transpose();
      for (Index r = 0; r < rows; ++r) finish(i0 + r, num.row(r), den(r));
    });
    notePeak((feat * dv + feat + n * dv) * Index(sizeof(float)));
    return out;
  }
  // Chunked prefix sums: inside a chunk the causal part is a small lower-triangular product; the state
  // S = Σ φk_j v_jᵀ of all earlier chunks carries the rest (linear in N, exact).
  if (phi_k.rows() != n) throw UserError("causal linear attention needs as many keys as queries");
  constexpr Index kChunk = 64;
  Matrix state = Matrix::Zero(feat, dv);
  Eigen::RowVectorXf z = Eigen::RowVectorXf::Zero(feat);
  for (Index c0 = 0; c0 < n; c0 += kChunk) {
    const Index len = std::min(kChunk, n - c0);
    const auto fq = phi_q.middleRows(c0, len);
    const auto fk = phi_k.middleRows(c0, len);
    Matrix local = fq * fk.transpose();
    for (Index r = 0; r < len; ++r)
      for (Index c = r + 1; c < len; ++c) local(r, c) = 0;
    const Matrix num = fq * state + local * v.middleRows(c0, len);
    const Vector den = fq * z.transpose() + local.rowwise().sum();
    for (Index r = 0; r < len; ++r) finish(c0 + r, num.row(r), den(r));
    state.noalias() += fk.transpose() * v.middleRows(c0, len);
    z += fk.colwise().sum();
  }
  notePeak((feat * dv + feat + kChunk * kChunk) * Index(sizeof(float)));
  return out;
}

std::vector<std::int32_t> CpuBackend::hashRotations(const Matrix& x, const Matrix& rotations) {
  if (x.cols() != rotations.rows()) throw UserError("hashing: rotations must be d×(buckets/2)");
  const Matrix projected = x * rotations;
  const Index half = rotations.cols();
  std::vector<std::int32_t> bucket(size_t(x.rows()));
  for (Index i = 0; i < x.rows(); ++i) {
    float best = -kInf;
    std::int32_t arg = 0;
    for (Index j = 0; j < half; ++j) {
      if (projected(i, j) > best) best = projected(i, j), arg = std::int32_t(j);
      if (-projected(i, j) > best) best = -projected(i, j), arg = std::int32_t(half + j);
    }
    bucket[size_t(i)] = arg;
  }
  return bucket;
}

std::vector<std::int32_t> CpuBackend::nearestCentroid(const Matrix& x, const Matrix& centroids) {
  if (x.cols() != centroids.cols()) throw UserError("assignment: centroids must have the points' dimension");
  const Matrix dots = x * centroids.transpose();
  const Vector norms = centroids.rowwise().squaredNorm();
  std::vector<std::int32_t> label(size_t(x.rows()));
  for (Index i = 0; i < x.rows(); ++i) {
    float best = kInf;
    std::int32_t arg = 0;
    for (Index c = 0; c < centroids.rows(); ++c) {
      const float dist = norms(c) - 2 * dots(i, c);
      if (dist < best) best = dist, arg = std::int32_t(c);
    }
    label[size_t(i)] = arg;
  }
  return label;
}

Matrix CpuBackend::matmul(const Matrix& a, const Matrix& b, bool transpose_b) {
  if (transpose_b) {
    if (a.cols() != b.cols()) throw UserError("matmul: inner sizes differ");
    return a * b.transpose();
  }
  if (a.cols() != b.rows()) throw UserError("matmul: inner sizes differ");
  return a * b;
}

void checkSparseMatrix(const SparseMatrix& a, Index cols, const std::string& what) {
  if (a.rows < 0 || a.cols != cols)
    throw UserError(what + ": the sparse matrix is " + std::to_string(a.rows) + "×" + std::to_string(a.cols) +
                    " but the dense one has " + std::to_string(cols) + " rows");
  if (Index(a.row_ptr.size()) != a.rows + 1 || a.row_ptr.front() != 0)
    throw UserError(what + ": the sparse matrix needs " + std::to_string(a.rows + 1) + " row offsets starting at 0");
  for (Index i = 0; i < a.rows; ++i)
    if (a.row_ptr[size_t(i + 1)] < a.row_ptr[size_t(i)])
      throw UserError(what + ": the sparse matrix's row offsets decrease at row " + std::to_string(i));
  if (Index(a.col.size()) < a.nnz() || Index(a.value.size()) < a.nnz())
    throw UserError(what + ": the sparse matrix's offsets need " + std::to_string(a.nnz()) + " entries but it lists " +
                    std::to_string(std::min(a.col.size(), a.value.size())));
  for (Index e = 0; e < a.nnz(); ++e)
    if (a.col[size_t(e)] < 0 || a.col[size_t(e)] >= cols)
      throw UserError(what + ": sparse entry " + std::to_string(e) + " names column " + std::to_string(a.col[size_t(e)]) +
                      ", outside 0…" + std::to_string(cols - 1));
}

Matrix CpuBackend::sparseMatmul(const SparseMatrix& a, const Matrix& x) {
  checkSparseMatrix(a, x.rows(), "sparse matmul");
  const Index k = x.cols();
  Matrix out = Matrix::Zero(a.rows, k);
  notePeak(Index(out.size() * sizeof(float)));
  parallelFor((a.rows + 255) / 256, threads_, [&](Index b) {
    for (Index i = b * 256; i < std::min(a.rows, (b + 1) * 256); ++i)
      for (Index e = a.row_ptr[size_t(i)]; e < a.row_ptr[size_t(i + 1)]; ++e)
        out.row(i).noalias() += a.value[size_t(e)] * x.row(a.col[size_t(e)]);
  });
  return out;
}

Matrix CpuBackend::weightTile(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) {
  return ImpliedWeights(std::make_shared<const WeightKernel>(kernel)).tile(rows, cols, out, pooling);
}

MatrixD referenceAttention(const MatrixD& q, const MatrixD& k, const MatrixD& v, const DenseAttentionOptions& o,
                           VectorD* lse) {
  const Index n = q.rows(), m = k.rows(), dv = v.cols();
  const double scale = o.scale > 0 ? double(o.scale) : 1.0 / std::sqrt(double(q.cols()));
  MatrixD out = MatrixD::Zero(n, dv);
  if (lse) lse->resize(n);
  // Row by row in double, the logits of 32 rows at a time through one double GEMM; blocks in parallel.
  constexpr Index kRows = 32;
  parallelFor((n + kRows - 1) / kRows, 0, [&](Index b) {
    const Index i0 = b * kRows, rows = std::min(kRows, n - i0);
    const MatrixD logits = (q.middleRows(i0, rows) * k.transpose()) * scale;
    for (Index r = 0; r < rows; ++r) {
      const Index i = i0 + r;
      const Index visible = o.causal ? std::clamp<Index>(i + o.causal_offset + 1, 0, m) : m;
      const bool hide_self =
          selfHidden(o, i, visible, [&](Index j) { return o.bias ? double((*o.bias)(i, j)) : 0.0; });
      const double l = rowAttentionDouble(
          visible,
          [&](Index j) {
            if (hide_self && j == selfKey(o, i)) return -std::numeric_limits<double>::infinity();
            return logits(r, j) + (o.bias ? double((*o.bias)(i, j)) : 0.0);
          },
          [](Index j) { return j; }, v, out.row(i).data(), dv);
      if (lse) (*lse)(i) = l;
    }
  });
  return out;
}

std::string cpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}

}  // namespace attn
