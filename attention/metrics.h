// Error metrics of CATALOG.md §0, computed against a float64 reference.
#pragma once
#include "attention/explanation.h"
#include "attention/types.h"

namespace attn {

/// e_out = ‖O − O*‖_F / ‖O*‖_F (0 when both are 0; +inf when only O* is 0).
double relativeError(const Matrix& output, const MatrixD& reference);
double relativeError(const Matrix& output, const Matrix& reference);

/// Mean over rows of ½·Σ_j |A_ij − A*_ij|, evaluated in row bands (never N×N at once). Each row of A*
/// is divided by its sum first (exact rows sum to 1; in float, at huge logits, they may not).
double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact);

/// Share of the exact attention mass the pattern can see: (1/N)·Σ_i Σ_{j∈S_i} A*_ij (A*'s rows divided
/// by their sums, as above: the result lies in [0, 1]).
double massRecall(const Pattern& pattern, const ImpliedWeights& exact);

}  // namespace attn
