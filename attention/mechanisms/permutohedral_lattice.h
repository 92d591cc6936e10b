// The permutohedral lattice of Adams, Baek and Davis (2010, "Fast High-Dimensional Filtering Using the
// Permutohedral Lattice"), as the Permutohedral Attention Module uses it (Joutard et al. 2019; PAM_cuda/pl.py):
// points with d-dimensional features are embedded in the hyperplane of R^(d+1) whose lattice points have
// coordinates summing to zero, each point lies in one simplex of d + 1 lattice vertices, and a value is
//   splat   onto those vertices with the point's barycentric weights,
//   blurred along each of the d + 1 lattice directions with the kernel [½ 1 ½] (PAM's; Adams's is ¼[1 2 1]),
//   sliced  back at each query point with its barycentric weights, times α = 1/(1 + 2^−d) (PAM's constant).
// Σ_j exp(−½‖f_i − f_j‖²)·v_j is what this approximates, up to a constant the normalised form cancels.
// Built on the host in double; the three stages are sparse matrices (SparseMatrix), so any Backend applies
// them (Backend::sparseMatmul): out = slice · blur_last ⋯ blur_first · splat · values.
#pragma once
#include <string>
#include <vector>

#include "attention/explanation.h"
#include "attention/types.h"

namespace attn::mech {

/// Largest lattice attnlab builds (vertices): a finer one is refused with a message naming `refine` or the
/// feature count.
inline constexpr Index kMaxLatticeVertices = Index(1) << 21;

struct Lattice {
  Index dims = 0;      ///< d, the features' dimension
  Index vertices = 0;  ///< L
  Index refine = 1;
  SparseMatrix splat;              ///< L × M: vertex ← key, barycentric weights
  std::vector<SparseMatrix> blur;  ///< L × L each, in the order applied (refine² rounds of the d + 1 directions)
  SparseMatrix slice;              ///< N × L: query ← vertex, α × barycentric weights
  std::vector<double> key_mass;    ///< per vertex: Σ of the keys' barycentric weights (the splatted mass)
  /// Per vertex: its position in feature space (L × d), for drawing the lattice.
  MatrixD positions;
};

/// The lattice of the query features (N × d) and key features (M × d), already scaled so that the kernel is
/// exp(−½‖f_i − f_j‖²). refine r ≥ 1: features ×r on a lattice r times finer, blurred r² rounds with side weights
/// (1 − 1/(4r²))/3 (¼ at r = 1), so the total variance stays the kernel's while its shape nears a Gaussian and the
/// splat's and slice's share shrinks; at r = 1 the lattice holds the
/// vertices of the points' simplices only (as Adams et al. and PAM), at r > 1 also the vertices the blur
/// reaches. UserError past kMaxLatticeVertices.
Lattice buildLattice(const MatrixD& query_features, const MatrixD& key_features, Index refine);

/// Lattice vertices (an upper bound) a run will build: for plan().
double latticeVertexBound(Index n, Index m, Index dims, Index refine);

}  // namespace attn::mech
