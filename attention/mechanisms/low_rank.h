// Shared pieces of the low-rank / landmark mechanisms (CATALOG.md engine E5: Linformer, Nyströmformer,
// Efficient Attention): segment means, float64 softmax and pseudo-inverse, the exact matrix A* and its
// singular spectrum, factored implied weights of a product F·G, and one-factor steps for step-through.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

/// Row softmax in float64 (each row max-subtracted).
MatrixD rowSoftmaxD(const MatrixD& logits);

/// m contiguous segments of n tokens, boundaries ⌊r·n/m⌋ (1 ≤ m ≤ n): every segment non-empty.
std::vector<Range> segmentRanges(Index n, Index m);
/// The m×n segment-mean matrix: row r is 1/|S_r| on segment S_r (row-stochastic).
Matrix segmentMeanMatrix(Index n, Index m);

/// Moore–Penrose pseudo-inverse by SVD (singular values below 1e-12·σ₁·size treated as 0).
MatrixD pseudoInverseSvd(const MatrixD& a);

/// The exact softmax matrix A* = rowsoftmax(scale·Q·Kᵀ) in float64, N×M (non-causal). UserError, naming
/// `who`, when N or M exceeds max_tokens: the dense matrix and its SVD are O(N²) memory and O(N³) time.
MatrixD exactAttentionMatrixD(const Matrix& q, const Matrix& k, float scale, Index max_tokens, const std::string& who);

/// Singular spectrum of a matrix (float64, BDCSVD, values only).
struct Spectrum {
  VectorD sigma;       ///< descending
  Matrix cumulative;   ///< 1×r: Σ_{i≤r} σ_i / Σ σ_i (the Linformer paper's "normalized cumulative singular value")
  /// ‖A − A_k‖_F / ‖A‖_F = √(Σ_{i>k} σ_i² / Σ σ_i²): the best rank-k relative error (Eckart–Young).
  double tail(Index k) const;
  static Spectrum fromSingularValues(VectorD sigma);
};
Spectrum singularSpectrum(const MatrixD& a);

/// Implied weights of a product W = a·bᵀ (a: N×r, b: M×r), as a Linear WeightKernel with row_term 1:
/// exact entries including negative ones, tiled on the backend without forming N×M.
ImpliedWeights productWeights(std::shared_ptr<const Matrix> a, std::shared_ptr<const Matrix> b);

/// A step whose view shows one matrix (the GUI draws a step's first factor when it has no pattern).
Step factorStep(std::string title, std::string caption, NamedMatrix factor);
/// A step whose view holds implied weights and, when rows·cols ≤ max_entries, the same matrix densely as
/// its first factor `name` (the GUI draws a step's pattern, grouping or first factor, not its weights).
Step weightsStep(std::string title, std::string caption, ImpliedWeights weights, std::string name,
                 Index max_entries = Index(1) << 20);

}  // namespace attn::mech
