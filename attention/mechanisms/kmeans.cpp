#include "attention/mechanisms/kmeans.h"

#include <algorithm>

#include "attention/random.h"

namespace attn::mech {

KMeans kmeans(const Matrix& x, Index k, Index iterations, std::uint64_t seed, Backend& backend,
              const RunOptions& options, bool record_history,
              const std::function<void(Eigen::Ref<Eigen::RowVectorXf>)>& update) {
  const Index n = x.rows(), d = x.cols();
  k = std::clamp<Index>(k, 1, std::max<Index>(1, n));
  KMeans r;
  r.centroids.resize(k, d);
  Rng rng(seed, 3);
  std::vector<Index> order(static_cast<size_t>(n));
  for (Index j = 0; j < n; ++j) order[size_t(j)] = j;
  for (Index j = 0; j < std::min(k, n); ++j)
    std::swap(order[size_t(j)], order[size_t(j + Index(rng.below(std::uint64_t(n - j))))]);
  for (Index c = 0; c < k; ++c) {
    if (n > 0)
      r.centroids.row(c) = x.row(order[size_t(c % n)]);
    else
      r.centroids.row(c).setZero();
  }
  for (Index it = 0; it <= iterations; ++it) {
    r.label = n > 0 ? backend.nearestCentroid(x, r.centroids) : std::vector<std::int32_t>{};
    if (record_history) r.history.push_back(r.label);
    if (it == iterations) break;
    Matrix sum = Matrix::Zero(k, d);
    std::vector<Index> count(static_cast<size_t>(k), 0);
    for (Index j = 0; j < n; ++j) {
      sum.row(r.label[size_t(j)]) += x.row(j);
      ++count[size_t(r.label[size_t(j)])];
    }
    for (Index c = 0; c < k; ++c)
      if (count[size_t(c)] > 0) {
        r.centroids.row(c) = sum.row(c) / float(count[size_t(c)]);
        if (update) update(r.centroids.row(c));
      }
    options.checkCancel();
  }
  return r;
}

}  // namespace attn::mech
