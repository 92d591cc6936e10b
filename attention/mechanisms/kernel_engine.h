// The kernel-feature engine of the linear-attention mechanisms (CATALOG.md E4): softmax's exp(q·k) is
// replaced by φ(q)·φ(k) for a feature map φ, so O = D⁻¹φ(Q)(φ(K)ᵀV) costs O(N·m·dv), and the causal
// form is a prefix sum (an RNN). A mechanism chooses φ (elu+1, FAVOR+ positive random features,
// trigonometric features, …) and this engine runs the attention on the backend, states the implied
// weights in factored form (A_ij = φq_i·φk_j / φq_i·z_i) and the cost. The chunked form carries the
// prefix state across slices of the sequence (SLiM's memory-saving forward) with matrix products only.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

/// m random feature directions ω (rows, m×d) from (seed, stream): i.i.d. N(0, I_d) rows, or
/// block-orthogonal (Performer's ORF: each d×d block is the Q of a Gaussian matrix's QR, its rows
/// rescaled to the norms of fresh N(0, I_d) vectors, so every row is still marginally Gaussian).
Matrix randomFeatures(Index m, Index d, bool orthogonal, std::uint64_t seed, std::uint64_t stream);

/// Performer's features of Q and K for the softmax kernel exp(q·k/√d): inputs scaled by d^(−1/4),
/// ω = randomFeatures(m, d, orthogonal, seed, stream). Positive (FAVOR+): φ = exp(ω·x − ‖x‖²/2 − shift)/√m
/// (queries shifted per row, keys by one global max: both cancel in the normalisation; causal runs leave
/// the keys unshifted, since a max over all keys would let later keys change earlier outputs); with
/// `hyperbolic`, ω is stacked with −ω (2m features). Trigonometric (FAVOR): exp(‖x‖²/2)/√m·[sin ωx, cos ωx].
struct RandomFeatures {
  std::shared_ptr<const Matrix> phi_q, phi_k;
  Matrix omega;  ///< the directions used (m×d, or 2m×d when hyperbolic)
};
RandomFeatures performerFeatures(const Inputs& in, FeatureMap map, Index m, bool orthogonal, bool hyperbolic,
                                 bool causal, std::uint64_t seed, std::uint64_t stream, Backend& backend);

struct KernelAttention {
  Vector normaliser;    ///< φq_i·z_i (z: Σφk, or its prefix when causal)
  Index nonpositive = 0;  ///< rows whose normaliser is ≤ 0 or not finite: their output is 0
};

/// Linear attention with feature-mapped queries and keys (backend.linearAttention): fills r.output, the
/// implied weights (WeightKernel::Linear, causal when asked), the cost (stage "attend") and a note when
/// rows have non-positive normalisers (trigonometric features can).
/// With min_relative_normaliser = ε > 0, rows whose normaliser φq_i·z_i has cancelled below ε·Σ_r|φq_ir·z_ir|
/// are dropped as well (output 0): estimators of either sign (trigonometric features) put some normalisers
/// next to 0, where the output is noise amplified without bound and no two machines agree on it. The test
/// reads row i and its (prefix) z only, so causal runs stay causal.
KernelAttention attendKernel(const Inputs& in, std::shared_ptr<const Matrix> phi_q, std::shared_ptr<const Matrix> phi_k,
                             bool causal, Backend& backend, const RunOptions& options, Result& r,
                             float min_relative_normaliser = 0);

/// Linear attention computed slice by slice (`slices` slices of ⌈N/slices⌉ tokens), keeping only the
/// state (m×dv numerator and m normaliser) between slices: per slice, O = (φq·S + tril(φq·φkᵀ)·V) /
/// (φq·z + tril(φq·φkᵀ)·1), with every product on the backend. Non-causal: the slices first sum the
/// state, then read it. Same output as backend.linearAttention up to rounding.
struct ChunkedLinear {
  Matrix out;
  Vector normaliser;
  Index slice = 0;                    ///< tokens per slice
  std::vector<Index> boundaries;      ///< the token index where each stored state ends
  std::vector<Matrix> states;         ///< S at those boundaries (m×dv), for the views
};
ChunkedLinear chunkedLinearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal,
                                     Index slices, Backend& backend, const RunOptions& options);

}  // namespace attn::mech
