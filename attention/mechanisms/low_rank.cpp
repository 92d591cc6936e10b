#include "attention/mechanisms/low_rank.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>

namespace attn::mech {

MatrixD rowSoftmaxD(const MatrixD& logits) {
  MatrixD out(logits.rows(), logits.cols());
  for (Index i = 0; i < logits.rows(); ++i) {
    const double mx = logits.row(i).maxCoeff();
    out.row(i) = (logits.row(i).array() - mx).exp();
    out.row(i) /= out.row(i).sum();
  }
  return out;
}

std::vector<Range> segmentRanges(Index n, Index m) {
  std::vector<Range> s;
  s.reserve(static_cast<size_t>(std::max<Index>(m, 0)));
  for (Index r = 0; r < m; ++r) s.push_back(Range{r * n / m, (r + 1) * n / m});
  return s;
}

Matrix segmentMeanMatrix(Index n, Index m) {
  Matrix e = Matrix::Zero(m, n);
  const std::vector<Range> s = segmentRanges(n, m);
  for (Index r = 0; r < m; ++r) {
    const Range& seg = s[static_cast<size_t>(r)];
    e.row(r).segment(seg.begin, seg.size()).setConstant(1.0f / static_cast<float>(seg.size()));
  }
  return e;
}

MatrixD pseudoInverseSvd(const MatrixD& a) {
  Eigen::BDCSVD<MatrixD> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  VectorD inv = svd.singularValues();
  if (inv.size() == 0) return MatrixD::Zero(a.cols(), a.rows());
  const double tol = 1e-12 * std::max(1.0, inv(0)) * double(std::max(a.rows(), a.cols()));
  for (Index t = 0; t < inv.size(); ++t) inv(t) = inv(t) > tol ? 1.0 / inv(t) : 0.0;
  return svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose();
}

MatrixD exactAttentionMatrixD(const Matrix& q, const Matrix& k, float scale, Index max_tokens, const std::string& who) {
  if (q.rows() > max_tokens || k.rows() > max_tokens)
    throw UserError(who + " needs the exact N×N attention matrix and its SVD (O(N²) memory, O(N³) time); N = " +
                    std::to_string(std::max(q.rows(), k.rows())) + " is above the limit of " +
                    std::to_string(max_tokens) + " tokens: use fewer tokens or another option");
  return rowSoftmaxD((q.cast<double>() * k.cast<double>().transpose()) * double(scale));
}

double Spectrum::tail(Index k) const {
  const double total = sigma.squaredNorm();
  if (total <= 0 || k >= sigma.size()) return 0;
  return std::sqrt(sigma.tail(sigma.size() - std::max<Index>(k, 0)).squaredNorm() / total);
}

Spectrum singularSpectrum(const MatrixD& a) {
  Eigen::BDCSVD<MatrixD> svd(a);  // values only
  return Spectrum::fromSingularValues(svd.singularValues());
}

Spectrum Spectrum::fromSingularValues(VectorD sigma) {
  Spectrum s;
  s.sigma = std::move(sigma);
  s.cumulative = Matrix::Zero(1, s.sigma.size());
  const double total = s.sigma.sum();
  double acc = 0;
  for (Index i = 0; i < s.sigma.size(); ++i) {
    acc += s.sigma(i);
    s.cumulative(0, i) = total > 0 ? static_cast<float>(acc / total) : 0.0f;
  }
  return s;
}

ImpliedWeights productWeights(std::shared_ptr<const Matrix> a, std::shared_ptr<const Matrix> b) {
  auto kernel = std::make_shared<WeightKernel>();
  kernel->kind = WeightKernel::Kind::Linear;
  kernel->row_term = Vector::Ones(a->rows());
  kernel->a = std::move(a);
  kernel->b = std::move(b);
  return ImpliedWeights(std::move(kernel));
}

Step factorStep(std::string title, std::string caption, NamedMatrix factor) {
  auto view = std::make_shared<Explanation>();
  view->factors.push_back(std::move(factor));
  return Step{std::move(title), std::move(caption), std::move(view), ""};
}

Step weightsStep(std::string title, std::string caption, ImpliedWeights weights, std::string name,
                 Index max_entries) {
  auto view = std::make_shared<Explanation>();
  if (weights && weights.rows() * weights.cols() <= max_entries)
    view->factors.push_back({std::move(name), caption, weights.dense(max_entries)});
  view->weights = std::move(weights);
  return Step{std::move(title), std::move(caption), std::move(view), ""};
}

}  // namespace attn::mech
