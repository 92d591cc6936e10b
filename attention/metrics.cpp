#include "attention/metrics.h"

#include <cmath>
#include <limits>

namespace attn {

namespace {
constexpr Index kBand = 64;  // rows per band: the N×N matrices are only ever seen 64 rows at a time
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
    const Matrix b = exact.block(rows, Range{0, m});
    total += 0.5 * (a.cast<double>() - b.cast<double>()).cwiseAbs().sum();
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
    const Matrix w = exact.block(rows, Range{0, m});
    for (Index i = rows.begin; i < rows.end; ++i)
      for (Index e = pattern.row_ptr[size_t(i)]; e < pattern.row_ptr[size_t(i + 1)]; ++e)
        total += double(w(i - r, pattern.col[size_t(e)]));
  }
  return total / double(n);
}

}  // namespace attn
