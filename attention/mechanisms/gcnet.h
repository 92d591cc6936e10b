// GCNet's display-only measure of query independence (CATALOG.md #7 (e)): how alike exact softmax attention's
// rows are at pixels spread over the grid. Shared by gcnet.cpp (which shows it) and its tests (which check it
// against loops over the formed matrix).
#pragma once
#include <vector>

#include "attention/mechanisms/grid_engine.h"

namespace attn::mech {

/// Exact attention's rows at a few pixels, compared.
struct QueryIndependence {
  std::vector<Index> pixels;  ///< the sampled tokens, y·W + x
  MatrixD distance;           ///< k×k: cosine distance 1 − a·b/(‖a‖‖b‖) of exact rows a, b (0 on the diagonal)
  double mean_distance = 0;   ///< over the k·(k−1)/2 pairs (0 for one pixel)
  /// e_out of "every row of A* replaced by the mean row": ‖O* − 1·m̄ V‖_F / ‖O*‖_F with m̄ = (1/N) Σ_i A*_i;
  /// m̄ V is the mean row of O* = A*V, so it needs no N×N matrix (0 when ‖O*‖ = 0).
  double mean_row_error = 0;
};

/// The pixels at the centres of a side × side lattice of cells over the grid (y = ⌊(2a+1)·H/(2·side)⌋, x
/// likewise), duplicates dropped on grids smaller than the lattice: 16 spread pixels by default.
std::vector<Index> latticePixels(const Grid& g, Index side = 4);

/// Exact rows softmax(scale·q_i·Kᵀ) at `pixels`, in float64, their pairwise cosine distances, and the mean-row
/// error from `exact_output` (O* = A*V, N×dv). O(|pixels|·M·d + N·dv).
QueryIndependence queryIndependence(const Matrix& q, const Matrix& k, float scale, const std::vector<Index>& pixels,
                                    const Matrix& exact_output);

}  // namespace attn::mech
