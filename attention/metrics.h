// Error metrics of CATALOG.md §0, computed against a float64 reference.
#pragma once
#include "attention/explanation.h"
#include "attention/inputs.h"
#include "attention/types.h"

namespace attn {

/// e_out = ‖O − O*‖_F / ‖O*‖_F (0 when both are 0; +inf when only O* is 0).
double relativeError(const Matrix& output, const MatrixD& reference);
double relativeError(const Matrix& output, const Matrix& reference);

/// The rows the weight metrics average over: every row while N ≤ all_rows_up_to, else `bands` bands of 64
/// consecutive rows spread evenly over the sequence (the first and the last band included: causal rows differ
/// most there). Deterministic, so a sweep's seeds and a rerun see the same rows. Each metric is then the
/// exact mean over these rows, an unbiased estimate of the mean over all rows: what row TV and mass recall cost
/// at N = 16K is 512·N entries instead of N².
struct MetricRows {
  std::vector<Range> bands;  ///< ascending, disjoint
  Index count = 0;           ///< rows in all bands
  Index of = 0;              ///< N
  bool sampled() const { return count < of; }
};
MetricRows metricRows(Index n, Index all_rows_up_to = 4096, Index bands = 8);

/// Mean over rows of ½·Σ_j |A_ij − A*_ij|: the share of each query's attention that sits on other keys than
/// exact attention puts it ("misplaced"), in [0, 1] for row-stochastic A. Evaluated in row bands (never N×N
/// at once). Each row of A* is divided by its sum first (exact rows sum to 1; in float, at huge logits, they
/// may not).
double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact);
double rowTotalVariation(const ImpliedWeights& approx, const ImpliedWeights& exact, const MetricRows& rows);

/// Share of the exact attention mass the pattern can see: (1/N)·Σ_i Σ_{j∈S_i} A*_ij (A*'s rows divided
/// by their sums, as above: the result lies in [0, 1]).
double massRecall(const Pattern& pattern, const ImpliedWeights& exact);
double massRecall(const Pattern& pattern, const ImpliedWeights& exact, const MetricRows& rows);

/// e_out of uniform attention, each query averaging V over the keys it may see (j ≤ i when causal; not i
/// itself under mask_self unless it is the only one): the scale on which an e_out reads. e_out is relative to
/// ‖O*‖, which is small when exact attention averages many values, so e_out of 3 can be a fair output; zero
/// output scores exactly 1, uniform attention this.
double uniformAttentionError(const Inputs& inputs, bool causal, const MatrixD& reference);

}  // namespace attn
