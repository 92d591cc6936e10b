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

double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact) {
  if (approx.rows() != exact.rows() || approx.cols() != exact.cols())
    throw std::logic_error("rowTotalVariation: shapes differ");
  const Index n = exact.rows(), m = exact.cols();
  if (n == 0) return 0;
  double total = 0;
  for (Index r = 0; r < n; r += kBand) {
    const Range rows{r, std::min(n, r + kBand)};
    const Matrix a = approx.block(rows, Range{0, m});
    const MatrixD b = exactRows(exact, rows, m);
    total += 0.5 * (a.cast<double>() - b).cwiseAbs().sum();
  }
  return total / double(n);
}

double massRecall(const Pattern& pattern, const ImpliedWeights& exact) {
  const Index n = exact.rows(), m = exact.cols();
  if (pattern.rows != n || pattern.cols != m) throw std::logic_error("massRecall: shapes differ");
  if (n == 0) return 1;
  double total = 0;
  for (Index r = 0; r < n; r += kBand) {
    const Range rows{r, std::min(n, r + kBand)};
    const MatrixD w = exactRows(exact, rows, m);
    for (Index i = rows.begin; i < rows.end; ++i)
      for (Index e = pattern.row_ptr[size_t(i)]; e < pattern.row_ptr[size_t(i + 1)]; ++e)
        total += w(i - r, pattern.col[size_t(e)]);
  }
  return total / double(n);
}

}  // namespace attn
