// The heavy primitives every mechanism is written in. CpuBackend (attention/) and VulkanBackend
// (render/gpu) implement them; a mechanism is written once and the backend decides where it runs.
// Every call is synchronous from the caller's view.
#pragma once
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "attention/explanation.h"
#include "attention/types.h"

namespace attn {

/// Options of dense (full / causal / masked) softmax attention.
struct DenseAttentionOptions {
  float scale = 0;              ///< logits are scale·q·k; ≤ 0 means 1/√d
  bool causal = false;          ///< key j is visible to query i only if j ≤ i + causal_offset
  /// Query i sits at key position i + causal_offset (for the causal mask and the self rule): for
  /// queries that are the last rows, or a block of rows, of a longer sequence.
  Index causal_offset = 0;
  const Matrix* bias = nullptr; ///< optional additive N×M logit bias; −inf masks a pair
  /// Reformer's shared-QK rule: query i may not attend to its own key (position i + causal_offset)
  /// unless that key is its only visible one.
  bool mask_self = false;
  /// The backend may compute Q·Kᵀ and P·V from fp16 copies of the inputs with fp32 accumulation
  /// (tensor cores) where it has such a path (VulkanBackend with cooperative matrices); relative
  /// errors grow to ≈ 1e-3. The CPU backend ignores it.
  bool allow_fp16 = false;
};

/// Output of a softmax attention primitive.
/// Defined behaviour per row i, with logits x_ij = scale·q_i·k_j + bias_ij over the visible keys:
///  - some x_ij is NaN                → out_i = NaN,   lse_i = NaN   (never hidden);
///  - some x_ij is +inf               → out_i = mean of v_j over the +inf keys, lse_i = +inf;
///  - every x_ij is −inf (fully masked, or no visible key) → out_i = 0, lse_i = −inf;
///  - otherwise the usual softmax, stable for logits up to ±FLT_MAX (max subtracted first).
struct AttentionOutput {
  Matrix out;  ///< N×dv
  Vector lse;  ///< N: log Σ_j exp(x_ij), the row's log-normaliser (natural log)
};

/// Feature maps of kernelised (linear) attention. x is first scaled: x ← input_scale·x.
///  - EluPlusOne (Linear Transformer):  φ(x) = elu(x) + 1                                (d features)
///  - PositiveRandom (Performer FAVOR+): φ(x) = exp(ω_r·x − ‖x‖²/2 − shift) / √m, r = 1..m (m features)
///  - Trigonometric (Performer FAVOR):   φ(x) = exp(‖x‖²/2) / √m · [sin(ω_r·x)]_r ++ [cos(ω_r·x)]_r  (2m)
/// ω_r are the rows of `projection` (m×d). The shift stabilises positive features (Performer
/// subtracts a max): 0 (None), max_r of the row's exponents (PerRow, for queries: it cancels in the
/// normalisation), or the max over all rows (Global, for keys). NaN exponents are left out of the
/// max; a row with a NaN input gives NaN features (only that row, except with Global and ±inf inputs).
enum class FeatureMap { EluPlusOne, PositiveRandom, Trigonometric };
enum class FeatureShift { None, PerRow, Global };
struct FeatureMapOptions {
  FeatureMap map = FeatureMap::EluPlusOne;
  const Matrix* projection = nullptr;  ///< m×d random features ω (PositiveRandom, Trigonometric)
  float input_scale = 1;
  FeatureShift shift = FeatureShift::None;  ///< PositiveRandom only
};
/// Columns of φ(x) for inputs of dimension d.
Index featureCount(const FeatureMapOptions& options, Index d);
/// UserError when the options do not fit inputs x (missing projection, dimension mismatch).
void checkFeatureMap(const Matrix& x, const FeatureMapOptions& options);

/// Static facts about a backend (for reports and `attnlab info`).
struct BackendInfo {
  std::string name;    ///< "cpu" or "vulkan"
  std::string device;  ///< CPU model or GPU name
  std::string driver;  ///< driver version (GPU)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo info() const = 0;

  /// Fused softmax attention; never materialises N×M on the CPU fast path.
  virtual AttentionOutput denseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                         const DenseAttentionOptions& options) = 0;
  /// Softmax attention over the pairs of `pattern` only (index-sparse). `entry_bias` (optional,
  /// one per pattern entry) is added to the logits. Same row semantics as denseAttention.
  virtual AttentionOutput sparseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                          const Pattern& pattern, float scale,
                                          const std::vector<float>* entry_bias = nullptr) = 0;
  /// Applies a feature map row-wise (N×d → N×featureCount).
  virtual Matrix featureMap(const Matrix& x, const FeatureMapOptions& options) = 0;
  Matrix featureMap(const Matrix& x, FeatureMap map) { return featureMap(x, FeatureMapOptions{map}); }
  /// Linear attention from feature-mapped inputs: O_i = φq_i·S / φq_i·z with S = Σ_j φk_j v_jᵀ,
  /// z = Σ_j φk_j over all j (or j ≤ i when causal). Rows whose normaliser is 0 give 0.
  virtual Matrix linearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) = 0;
  /// Angular LSH: bucket_i = argmax over [x_i·R, −x_i·R] (R is d×(buckets/2)).
  virtual std::vector<std::int32_t> hashRotations(const Matrix& x, const Matrix& rotations) = 0;
  /// Index of the nearest centroid (squared Euclidean) per row of x.
  virtual std::vector<std::int32_t> nearestCentroid(const Matrix& x, const Matrix& centroids) = 0;
  /// a·b (or a·bᵀ).
  virtual Matrix matmul(const Matrix& a, const Matrix& b, bool transpose_b = false) = 0;
  /// a·x for a sparse a (CSR, SparseMatrix) and a dense x: row i of the result is Σ_e value[e]·x[col[e]] over
  /// row i's entries (an empty row gives zeros). The permutohedral lattice's splat, blur and slice. UserError
  /// when a's offsets, columns or values do not describe a rows × x.rows() matrix.
  virtual Matrix sparseMatmul(const SparseMatrix& a, const Matrix& x) = 0;
  /// A tile of implied weights in factored form (see WeightKernel): the rectangle rows × cols
  /// resampled to `out` pixels, each the max or mean of the entries it covers (the same pixel spans
  /// and values as ImpliedWeights::tile), without the full matrix.
  virtual Matrix weightTile(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) = 0;

  /// Bytes of working memory the backend allocated since the last reset, at most (peak).
  virtual Index peakBytes() const { return peak_bytes_; }
  virtual void resetPeakBytes() { peak_bytes_ = 0; }
  /// Device time (GPU timestamps) of all work submitted so far, ms; NaN where there is no device clock
  /// (the CPU backend, a GPU without timestamps). Differences of two readings time a run.
  virtual double deviceMsTotal() const { return std::numeric_limits<double>::quiet_NaN(); }
  /// One sentence for the user when the backend no longer computes where it was asked to (a GPU whose device
  /// was lost goes on on the CPU); empty otherwise.
  virtual std::string notice() const { return {}; }

 protected:
  void notePeak(Index bytes) {
    if (bytes > peak_bytes_) peak_bytes_ = bytes;
  }
  Index peak_bytes_ = 0;
};

/// Checks that `a` is a well-formed CSR matrix with `cols` columns (offsets rows + 1 long, from 0, not
/// decreasing; columns in range; a value per entry); UserError naming what is wrong, prefixed by `what`.
void checkSparseMatrix(const SparseMatrix& a, Index cols, const std::string& what);

/// The CPU (Eigen) backend. Threads split query blocks.
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads = 0);  ///< 0: one per hardware thread
  BackendInfo info() const override;
  AttentionOutput denseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                 const DenseAttentionOptions& options) override;
  AttentionOutput sparseAttention(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern,
                                  float scale, const std::vector<float>* entry_bias) override;
  using Backend::featureMap;
  Matrix featureMap(const Matrix& x, const FeatureMapOptions& options) override;
  Matrix linearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) override;
  std::vector<std::int32_t> hashRotations(const Matrix& x, const Matrix& rotations) override;
  std::vector<std::int32_t> nearestCentroid(const Matrix& x, const Matrix& centroids) override;
  Matrix matmul(const Matrix& a, const Matrix& b, bool transpose_b) override;
  Matrix sparseMatmul(const SparseMatrix& a, const Matrix& x) override;
  Matrix weightTile(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) override;

 private:
  int threads_;
};

/// Reference softmax attention in double, row by row, with the same defined behaviour (tests, metrics).
MatrixD referenceAttention(const MatrixD& q, const MatrixD& k, const MatrixD& v,
                           const DenseAttentionOptions& options, VectorD* lse = nullptr);

/// Name of the CPU model (from /proc/cpuinfo), or "unknown CPU".
std::string cpuModelName();

}  // namespace attn
