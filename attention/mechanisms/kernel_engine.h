// The kernel-feature engine of the linear-attention mechanisms (CATALOG.md E4): softmax's exp(q·k) is
// replaced by φ(q)·φ(k) for a feature map φ, so O = D⁻¹φ(Q)(φ(K)ᵀV) costs O(N·m·dv), and the causal
// form is a prefix sum (an RNN). A mechanism chooses φ (elu+1, FAVOR+ positive random features,
// trigonometric features, …) and this engine runs the attention on the backend, states the implied
// weights in factored form (A_ij = φq_i·φk_j / φq_i·z_i) and the cost. The sliced FAVOR+ form (SLiM's
// forward) forms the features of one slice at a time and carries only the state across slices.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn::mech {

/// m random feature directions ω (rows, m×d) from (seed, stream): i.i.d. N(0, I_d) rows, or
/// block-orthogonal (Performer's ORF: each d×d block is the Q of a Gaussian matrix's QR with its columns
/// multiplied by sign(diag R), which makes Q Haar-distributed, its rows rescaled to the norms of fresh
/// N(0, I_d) vectors, so every row is marginally N(0, I_d) and the kernel estimate stays unbiased).
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

/// SLiM's forward pass of FAVOR+ (slim-performer): φ(Q) and φ(K) are formed from ω one slice of ⌈N/C⌉
/// tokens at a time, so that besides the inputs and the N×dv output only one slice's features and products
/// and the state (m×dv numerator S, m normaliser z) are held. Causal: per slice, O = (φq·S + tril(φq·φkᵀ)·V)
/// / (φq·z + tril(φq·φkᵀ)·1), then S and z take in the slice. Non-causal: one pass over the keys sums S and
/// z, one over the queries reads them. The features are performerFeatures' (queries shifted per row; keys
/// unshifted when causal, else by their global max, which the key pass carries by rescaling S and z when a
/// slice raises it), so the output is performer's up to rounding. Every product runs on the backend.
struct SlicedFavor {
  Matrix out;
  Vector normaliser;              ///< φq_i·z_i, with z in the scale of performerFeatures' φ(K)
  Index slice = 0;                ///< tokens per slice
  std::vector<Index> boundaries;  ///< the token index where each kept state ends
  std::vector<Matrix> states;     ///< S at those boundaries (m×dv), when asked for (the views)
};
SlicedFavor slicedFavorAttention(const Inputs& in, const Matrix& omega, bool causal, Index slices, Backend& backend,
                                 const RunOptions& options, bool keep_states);
/// What slicedFavorAttention holds at its peak beyond Q, K, V, in bytes: the output, ω, the state, and one
/// slice's copies of q, k, v, its features and its products (the slice × slice one when causal). Within
/// 15 % of the counting allocator's peak at N = 4096 (tests/cpu/test_truth_kernel.cpp).
double slicedFavorBytes(Index n, Index m, Index d, Index dv, Index slice, bool causal);

/// What a kernelised run with `features` columns of φ (from `directions` random directions, 0 for a
/// deterministic map) holds: φ(Q), φ(K), the feature map's exponents, the directions and the views' copies,
/// added to `plan` blamed on `parameter`; the FLOPs of the map and of attendKernel go to plan.flops.
void planKernel(RunPlan& plan, const RunShape& shape, double features, double directions, const std::string& parameter);

}  // namespace attn::mech
