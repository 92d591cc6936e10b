// Lloyd's k-means on the backend (Backend::nearestCentroid for the assignments), shared by the
// clustering mechanisms (Set Transformer's inducing points, Routing, Clustered attention).
#pragma once
#include <functional>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

struct KMeans {
  Matrix centroids;                                 ///< k×d
  std::vector<std::int32_t> label;                  ///< per row of x, after the last assignment
  std::vector<std::vector<std::int32_t>> history;   ///< labels after each assignment (when recorded)
};

/// k clusters of the rows of x: starts from k distinct rows chosen by `seed`, then `iterations` rounds
/// of assign + update; `update` turns a cluster's member mean into its centroid (identity by default;
/// normalise for spherical k-means, sign for Hamming space). Empty clusters keep their centroid.
/// k is clamped to the rows of x (at least 1). Polls cancellation every iteration.
KMeans kmeans(const Matrix& x, Index k, Index iterations, std::uint64_t seed, Backend& backend,
              const RunOptions& options, bool record_history = false,
              const std::function<void(Eigen::Ref<Eigen::RowVectorXf>)>& update = {});

}  // namespace attn::mech
