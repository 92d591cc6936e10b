// Pooling of a whole explanation to a picture of at most max_pixels a side, with the pixel spans of
// ImpliedWeights::tile: weights (max or mean), patterns and groupings (categorical). Shared by the GUI,
// the figures and `attnlab render`.
#pragma once
#include "attention/explanation.h"

namespace attn {

class Backend;

/// Pools the full implied matrix to at most max_pixels a side (never more pixels than entries), on
/// `backend` (the GPU, for a Vulkan backend) when the weights have a factored form; empty when there
/// are no weights.
Matrix pool(const ImpliedWeights& weights, Index max_pixels, Pooling pooling, Backend* backend);
/// Pools the block rows × cols of the implied matrix (a zoomed view) the same way: at most max_pixels a side,
/// pixel spans as ImpliedWeights::tile over the block. Only the block is evaluated.
Matrix pool(const ImpliedWeights& weights, Range rows, Range cols, Index max_pixels, Pooling pooling, Backend* backend);
/// Pools a pattern: each pixel holds the smallest component index + 1 of the pairs it covers (0: none).
/// O(nnz + N + M).
Matrix poolPattern(const Pattern& p, Index max_pixels);
/// The same for the block rows × cols of the pattern (pairs outside it are ignored). O(nnz of those rows + N).
Matrix poolPattern(const Pattern& p, Range rows, Range cols, Index max_pixels);
/// Pools "tokens i and j share a group": each pixel holds (the smallest group its rows and columns share)
/// mod 8 + 1, 0 where they share none. `order` (sorted position → token) or nullptr.
Matrix poolGrouping(const Grouping& g, const std::vector<std::int32_t>* order, Index max_pixels);
/// The same for the block rows × cols (positions in `order`).
Matrix poolGrouping(const Grouping& g, const std::vector<std::int32_t>* order, Range rows, Range cols, Index max_pixels);

}  // namespace attn
