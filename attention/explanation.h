// The teaching payload of a run: what a mechanism does to the N×N attention matrix. Every member is
// optional and a plain value type; the views (GUI, figures) read it, never the reverse.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/types.h"

namespace attn {

enum class Pooling { Max, Mean };

/// Output resolution of a weights tile (pixels).
struct TileSize {
  Index rows = 0, cols = 0;
};

class Backend;

/// A factored form of implied weights, W_ij = g(a_i·b_j) for the visible pairs and 0 elsewhere:
///   Softmax:  g(t) = exp(scale·t + row_term_i)      (row_term = −lse: rows of softmax attention)
///   Linear:   g(t) = t · row_term_i                  (row_term = 1/normaliser: kernelised attention,
///                                                     or 1 with a = F, b = Gᵀ for a product F·G)
/// A row whose row_term is not finite is all 0 (fully masked, degenerate or special rows).
/// Visible: every pair, or j ≤ i + causal_offset when causal. With mask_self, the pair
/// (i, i + causal_offset) is hidden unless it is the row's only visible key (the shared-QK rule).
/// Backends compute tiles of this form without the full matrix (Backend::weightTile; on the GPU).
struct WeightKernel {
  enum class Kind { Softmax, Linear };
  Kind kind = Kind::Softmax;
  std::shared_ptr<const Matrix> a;  ///< N×r
  std::shared_ptr<const Matrix> b;  ///< M×r
  float scale = 1;                  ///< Softmax only
  Vector row_term;                  ///< N entries
  bool causal = false;
  Index causal_offset = 0;
  bool mask_self = false;
  /// The exact entries of a rectangle (rows·cols floats), computed in float on the CPU.
  Matrix block(Range rows, Range cols) const;
};

/// Dense block of the implied weights: rows × cols exactly (no pooling). Row-stochastic mechanisms
/// return rows that sum to ≤ 1 over all N columns.
using DenseBlockFn = std::function<Matrix(Range rows, Range cols)>;

/// The implied N×M weight matrix as a tile function: the rectangle rows × cols resampled to `out`
/// pixels, each pixel the max or mean of the entries it covers (so single sparse entries stay visible
/// at any zoom). When out is larger than the range, entries are repeated (nearest neighbour).
/// The function owns what it reads (shared copies of Q, K, factors); it never refers to the backend or
/// to the run, so views may call it later and from any thread.
class ImpliedWeights {
 public:
  ImpliedWeights() = default;
  ImpliedWeights(Index rows, Index cols, DenseBlockFn block) : rows_(rows), cols_(cols), block_(std::move(block)) {}
  /// Weights of a factored form: blocks from WeightKernel::block, tiles on a backend when one is given.
  explicit ImpliedWeights(std::shared_ptr<const WeightKernel> kernel);
  explicit operator bool() const { return static_cast<bool>(block_); }
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  /// Pooled tile. Memory: O(out + a band of rows), never the full rectangle.
  Matrix tile(Range rows, Range cols, TileSize out, Pooling pooling) const;
  /// The same tile, computed by `backend` (Backend::weightTile, e.g. on the GPU) when the weights have
  /// a factored form, else by tile() above. The caller owns the backend's thread.
  Matrix tile(Range rows, Range cols, TileSize out, Pooling pooling, Backend* backend) const;
  /// The factored form, when the weights have one (nullptr otherwise).
  const std::shared_ptr<const WeightKernel>& kernel() const { return kernel_; }
  /// The exact entries of a rectangle (keep it small: rows·cols floats).
  Matrix block(Range rows, Range cols) const { return block_(rows, cols); }
  /// The whole matrix; UserError if it exceeds `max_entries`.
  Matrix dense(Index max_entries = Index(1) << 26) const;

 private:
  Index rows_ = 0, cols_ = 0;
  DenseBlockFn block_;
  std::shared_ptr<const WeightKernel> kernel_;
};

/// Pixel p of `out` pixels over `len` entries covers [start[p], end[p]) (relative): the spans that
/// ImpliedWeights::tile and every Backend::weightTile use.
void tilePixelSpans(Index len, Index out, std::vector<Index>& start, std::vector<Index>& end);

/// Which (i, j) pairs a mechanism scores, in CSR form, each entry tagged with the pattern component
/// that put it there (window, dilated window, global, random, bucket, ...).
struct Pattern {
  Index rows = 0, cols = 0;
  std::vector<Index> row_ptr;          ///< rows+1 offsets into col / component
  std::vector<std::int32_t> col;       ///< column indices, ascending within a row
  std::vector<std::uint8_t> component; ///< index into components, per entry
  std::vector<std::string> components; ///< names, e.g. {"window", "global"}

  Index nnz() const { return row_ptr.empty() ? 0 : row_ptr.back(); }
  /// true if (i, j) is scored (binary search in row i).
  bool contains(Index i, Index j) const;
  /// Component index of (i, j), or -1.
  int componentOf(Index i, Index j) const;
};

/// A sparse matrix with values in CSR form (Backend::sparseMatmul): the permutohedral lattice's splat, blur
/// and slice operators.
struct SparseMatrix {
  Index rows = 0, cols = 0;
  std::vector<Index> row_ptr;     ///< rows+1 offsets into col / value
  std::vector<std::int32_t> col;  ///< column of each entry
  std::vector<float> value;       ///< value of each entry
  Index nnz() const { return row_ptr.empty() ? 0 : row_ptr.back(); }
};

/// A per-token label (bucket, cluster, chunk) and the permutation that sorts tokens by it.
struct Grouping {
  std::string name;                  ///< e.g. "round 1 buckets"
  std::vector<std::int32_t> label;   ///< per token
  std::int32_t groups = 0;           ///< number of distinct labels (labels are 0..groups-1)
  std::vector<std::int32_t> order;   ///< order[k] = token at sorted position k (stable by position)
  /// Builds order from labels, sorting by (label, position).
  static Grouping fromLabels(std::string name, std::vector<std::int32_t> labels, std::int32_t groups);
};

/// Tokens with a role: global, landmark, inducing, memory, relay. Either positions in the sequence
/// (indices) or synthetic tokens that are not in it (vectors, one row each), or both.
struct TokenSet {
  std::string name;
  std::string role;                   ///< "global", "landmark", "memory", ...
  std::vector<Index> indices;         ///< positions in the sequence, when the tokens are in it
  std::vector<Range> spans;           ///< for synthetic tokens: the tokens each one summarises
  Matrix vectors;                     ///< synthetic tokens' query/key vectors (rows), may be empty
  /// The tokens in their role as queries only (rows): views mark them on the query axis, not the key axis
  /// (Routing's queries whose cluster has no key).
  bool queries_only = false;
};

/// How views lay out a NamedMatrix. Image-like layouts belong to mechanisms on a grid (the vision family):
/// their values are in raster order of the input's H×W grid (Inputs::grid_width gives W).
enum class MatrixLayout {
  Plain,         ///< a small matrix as it is (r×C profiles, a similarity surface, a summary attention)
  Image,         ///< one value per pixel, H×W (raster order): a map drawn over the picture, on its own scale
  Labels,        ///< one label per pixel, H×W, values 0..K−1: a segmentation-like map in group colours
  Bars,          ///< 1×C: one value per channel, drawn as bars (channel gates)
  PerPixelTop,   ///< N×W: row i is what pixel i gives each column of the grid, a strip along a map's top edge
  PerPixelLeft,  ///< N×H: row i is what pixel i gives each row of the grid, a strip along a map's left edge
};

struct NamedMatrix {
  std::string name;
  std::string caption;
  Matrix value;
  MatrixLayout layout = MatrixLayout::Plain;
};

struct Explanation;

/// One stage of an algorithm (rotate → hash → sort → chunk → attend) for step-through.
struct Step {
  std::string title;
  std::string caption;
  std::shared_ptr<const Explanation> view;  ///< what to show at this stage
  /// Views show this step with tokens sorted by the grouping of this name (from the step's view or the
  /// explanation), whatever order the user chose: the "sort" stage of bucketing shows blocks. "" = the
  /// user's order.
  std::string sorted_by;
};

struct Explanation {
  ImpliedWeights weights;               ///< implied N×M attention matrix, when the mechanism has one
  std::optional<Pattern> pattern;       ///< scored pairs, when the mechanism is sparse
  std::vector<Grouping> groupings;      ///< buckets / clusters / chunks
  std::vector<TokenSet> special;        ///< global tokens, landmarks, ...
  std::vector<NamedMatrix> factors;     ///< small matrices worth showing
  std::vector<Step> steps;              ///< ordered stages
  std::vector<std::string> notes;       ///< facts the user should see (parameter clamps, stand-ins used)
  /// Why `weights` is empty though the mechanism forms them at smaller N (a size limit, with the limit), or
  /// why a mechanism that implies none at any N (MechanismInfo::implies_weights = false: the gating modules)
  /// has none; "" when they are there. Views show it in place of the picture.
  std::string weights_withheld;
};

/// The weights with rows and columns permuted by `order` (order[k] = token at sorted position k, as
/// Grouping::order): entry (k, l) is w(order[k], order[l]). Formed densely (N·M ≤ max_entries, else
/// UserError): views sort tokens by buckets or clusters so the structure shows as blocks.
ImpliedWeights permuteWeights(const ImpliedWeights& w, const std::vector<std::int32_t>& order,
                              Index max_entries = Index(1) << 24);
/// The pattern with rows and columns permuted the same way (components kept).
Pattern permutePattern(const Pattern& p, const std::vector<std::int32_t>& order);

/// Implied weights of softmax restricted to a pattern: w_ij = exp(s·q_i·k_j + bias_ij − lse_i) for
/// (i, j) in the pattern, 0 elsewhere. `lse` is per row (from the attention primitive).
ImpliedWeights patternSoftmaxWeights(std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k,
                                     float scale, std::shared_ptr<const Pattern> pattern, Vector lse);

/// Implied weights of dense softmax attention: w_ij = exp(s·q_i·k_j − lse_i), zero above the
/// diagonal when causal. Shares q and k (no copy of N×N is ever made).
/// With mask_self, w_ii = 0 unless key i was the row's only visible key.
ImpliedWeights denseSoftmaxWeights(std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k, float scale,
                                   bool causal, Vector lse, bool mask_self = false);

}  // namespace attn
