#include "attention/metrics.h"

#include <cmath>
#include <limits>

namespace attn {

namespace {
constexpr Index kBand = 64;  // rows per band: the N×N matrices are only ever seen 64 rows at a time

/// Rows of exact attention's weights, each divided by its sum (in double). Exact rows sum to 1; in float
/// they miss it by a factor e^Δ when the logits are huge (Δ: how differently the weights' logits and the
/// attention's lse round), which would put recall and TV beyond [0, 1]. Rows with no mass stay 0.
MatrixD exactRows(const ImpliedWeights& exact, Range rows, Index m) {
  MatrixD w = exact.block(rows, Range{0, m}).cast<double>();
  for (Index i = 0; i < w.rows(); ++i) {
    const double sum = w.row(i).sum();
    if (sum > 0 && std::isfinite(sum)) w.row(i) /= sum;
  }
  return w;
}
}

double relativeError(const Matrix& output, const MatrixD& reference) {
  if (output.rows() != reference.rows() || output.cols() != reference.cols())
    throw std::logic_error("relativeError: shapes differ");
  const double num = (output.cast<double>() - reference).norm();
  const double den = reference.norm();
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

double relativeError(const Matrix& output, const Matrix& reference) {
  return relativeError(output, MatrixD(reference.cast<double>()));
}

MetricRows metricRows(Index n, Index all_rows_up_to, Index bands) {
  MetricRows r;
  r.of = n;
  if (n <= 0) return r;
  if (n <= all_rows_up_to || bands * kBand >= n) {
    for (Index b = 0; b < n; b += kBand) r.bands.push_back(Range{b, std::min(n, b + kBand)});
    r.count = n;
    return r;
  }
  bands = std::max<Index>(bands, 2);
  for (Index b = 0; b < bands; ++b) {
    // Starts from 0 to n − kBand, evenly spaced (the last band ends at n).
    const Index start = (n - kBand) * b / (bands - 1);
    r.bands.push_back(Range{start, start + kBand});
  }
  r.count = bands * kBand;
  return r;
}

double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact) {
  return rowTotalVariation(approx, exact, metricRows(exact.rows(), exact.rows()));
}

double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact, const MetricRows& sample) {
  if (approx.rows() != exact.rows() || approx.cols() != exact.cols())
    throw std::logic_error("rowTotalVariation: shapes differ");
  const Index m = exact.cols();
  if (sample.count == 0) return 0;
  double total = 0;
  for (const Range& rows : sample.bands) {
    const Matrix a = approx.block(rows, Range{0, m});
    const MatrixD b = exactRows(exact, rows, m);
    total += 0.5 * (a.cast<double>() - b).cwiseAbs().sum();
  }
  return total / double(sample.count);
}

double massRecall(const Pattern& pattern, const ImpliedWeights& exact) {
  return massRecall(pattern, exact, metricRows(exact.rows(), exact.rows()));
}

double massRecall(const Pattern& pattern, const ImpliedWeights& exact, const MetricRows& sample) {
  const Index n = exact.rows(), m = exact.cols();
  if (pattern.rows != n || pattern.cols != m) throw std::logic_error("massRecall: shapes differ");
  if (sample.count == 0) return 1;
  double total = 0;
  for (const Range& rows : sample.bands) {
    const MatrixD w = exactRows(exact, rows, m);
    for (Index i = rows.begin; i < rows.end; ++i)
      for (Index e = pattern.row_ptr[size_t(i)]; e < pattern.row_ptr[size_t(i + 1)]; ++e)
        total += w(i - rows.begin, pattern.col[size_t(e)]);
  }
  return total / double(sample.count);
}

double uniformAttentionError(const Inputs& inputs, bool causal, const MatrixD& reference) {
  const Index n = inputs.n(), m = inputs.m(), dv = inputs.v.cols();
  if (reference.rows() != n || reference.cols() != dv) throw std::logic_error("uniformAttentionError: shapes differ");
  // Prefix sums of V's rows (double): row i's visible keys are 0..min(i, m − 1) when causal, all m otherwise.
  MatrixD prefix = MatrixD::Zero(m + 1, dv);
  for (Index j = 0; j < m; ++j) prefix.row(j + 1) = prefix.row(j) + inputs.v.row(j).cast<double>();
  double num = 0, den = 0;
  Eigen::RowVectorXd o(dv);
  for (Index i = 0; i < n; ++i) {
    const Index visible = causal ? std::min(i + 1, m) : m;
    if (visible <= 0) {
      o.setZero();
    } else {
      o = prefix.row(visible);
      Index count = visible;
      if (inputs.mask_self && i < visible && visible > 1) {
        o -= inputs.v.row(i).cast<double>();
        --count;
      }
      o /= double(count);
    }
    num += (o - reference.row(i)).squaredNorm();
    den += reference.row(i).squaredNorm();
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

}  // namespace attn
