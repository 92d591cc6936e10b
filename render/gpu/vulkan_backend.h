// attn::gpu::VulkanBackend: the Backend primitives (attention/backend.h) on a Vulkan compute device.
//
// On the GPU today:
//   - denseAttention: fused flash-style exact attention (shaders/compute/attention_dense.comp), fp32,
//     full / causal (with causal_offset) / additive bias; d and dv up to 256; M may differ from N.
//     The N×M logits are never materialised. Rows with a NaN or +inf logit are flagged by the
//     kernel and recomputed on the host in double (attn::referenceAttention on that one row), so the
//     defined row behaviour of AttentionOutput holds exactly; fully masked rows (l = 0) are handled
//     in the kernel (out 0, lse −inf). Shapes the kernel does not take (d = 0, d or dv > 256, or a
//     device whose shared memory cannot hold a tile, see denseTiling()) are computed by the
//     internal CpuBackend.
//     On a device that limits the loop iterations of a shader invocation (lavapipe: 65535, all loops
//     together, vk::DeviceLimits::max_loop_iterations) the keys are streamed by several dispatches
//     of at most DenseTiling::keys_per_dispatch keys each; the row state carries over in memory.
//     With mask_self (Reformer's shared-QK rule) the variants attention_dense[_bias]_self hide each
//     query's own key; rows left with only that key are recomputed on the host, as are NaN rows.
//   - matmul: tiled fp32 GEMM (shaders/compute/matmul.comp), a·b and a·bᵀ; the inner dimension is
//     split across dispatches in the same way where the device limits loop iterations.
//   - sparseAttention: index-sparse (CSR) softmax attention (attention_sparse.comp), one workgroup
//     per row touching only the pattern's entries, online softmax; long rows split across dispatches.
//   - featureMap: elu+1, positive random features (FAVOR+, with per-row or global max shift) and
//     trigonometric random features (feature_map.comp).
//   - linearAttention: chunk states, an exclusive scan over chunks and the output with the causal
//     part of each query's own chunk (attention_linear.comp): non-causal and causal, linear in N.
//   - sparseMatmul: CSR × dense (spmm.comp), one workgroup per row over its entries only; long rows
//     split across dispatches that accumulate.
//   - hashRotations, nearestCentroid: per-row argmax assignment (assign.comp), with the CPU's ties.
//   - weightTile: pooled tiles of factored implied weights (weights_tile.comp), never forming N×M.
// Each primitive falls back to the internal CpuBackend for shapes its kernel does not take (head
// dims above 256, zero-sized operands, per-invocation work beyond the device's loop limit that
// cannot be split); the CPU then computes exactly what the kernel would have.
//
// Tensor cores: where the device exposes VK_NV_cooperative_matrix (vk::DeviceLimits::
// cooperative_matrix_fp16) and the caller sets DenseAttentionOptions::allow_fp16, exact attention with
// d = dv ∈ {64, 128}, no bias and no self rule runs on attention_dense_coopmat.comp: fp16 inputs,
// fp32 accumulation and softmax statistics. Its first use runs a self-check against the float64
// reference; a failure disables it (coopNotice()) and the fp32 kernel runs instead.
//
// Memory: inputs and outputs live in host-visible buffers allocated per call and freed before it
// returns (inputs in device-local memory where the host can map it, outputs in host-cached memory;
// no staging copies yet). Their sizes are checked (overflow, maxStorageBufferRange,
// maxMemoryAllocationSize, the context's memory budget) before anything is allocated, and refused
// with attn::UserError.
// peakBytes() reports the GPU buffer bytes of the largest call (plus the CPU backend's, when it ran).
// Errors: attn::UserError (shapes, sizes), vk::VulkanError, vk::DeviceLost (unless
// fall_back_on_device_lost: then the call and every later one run on the CPU).
// Not thread-safe: one call at a time (as every Backend).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "render/vk/context.h"

namespace attn::gpu {

/// Which sparse-attention kernel runs (tests force one).
enum class SparseTiles {
  Auto,    ///< the tile-list kernel when the pattern fills ≥ half of its non-empty tiles (and no entry bias)
  Always,  ///< the tile-list kernel whenever it can (no entry bias)
  Never,   ///< always the index (CSR) kernel
};

struct VulkanBackendOptions {
  vk::ContextOptions context;   ///< device selection and validation (when the backend makes its Context)
  bool poison_outputs = false;  ///< fill output buffers with NaN before each kernel (tests: unwritten shows)
  bool fall_back_on_device_lost =
      false;            ///< after VK_ERROR_DEVICE_LOST, compute on the CPU (and say so in fallbackNotice())
  int cpu_threads = 0;  ///< threads of the internal CpuBackend (0: one per hardware thread)
  /// At most this many keys per dispatch of the dense kernel (rounded down to whole tiles, at least
  /// one); 0: as many as the device allows (DenseTiling::keys_per_dispatch). Tests set it to run
  /// the multi-dispatch path on any device.
  Index dense_keys_per_dispatch = 0;
  /// At most this many inner-dimension entries per matmul dispatch (rounded down to whole 16-deep
  /// tiles, at least one); 0: as many as the device allows (matmulDepthPerDispatch()).
  Index matmul_depth_per_dispatch = 0;
  /// Tests: at most this many pattern entries of a row per sparse-attention dispatch (rounded to
  /// whole 64-entry blocks), and of a sparse matrix's row per sparse-matmul dispatch; 0: as many as the
  /// device allows.
  Index sparse_entries_per_dispatch = 0;
  SparseTiles sparse_tiles = SparseTiles::Auto;
  /// Tests: at most this many key chunks per scan dispatch of linear attention; 0: as the device allows.
  Index linear_chunks_per_dispatch = 0;
  /// Tests: at most this many entries of a pixel per weight-tile dispatch (whole 64-entry blocks);
  /// 0: as many as the device allows.
  Index tile_entries_per_dispatch = 0;
  /// Tests: the most entries one pixel of a weight tile may hold before the tile is computed twice as
  /// fine and pooled down (the kernel indexes a pixel's entries in 32 bits); 0: 2^31 − 1.
  Index tile_pixel_entries_limit = 0;
};

class VulkanBackend final : public attn::Backend {
 public:
  /// Creates its own vk::Context. Throws vk::Unavailable when there is no usable device.
  explicit VulkanBackend(VulkanBackendOptions options = {});
  /// Shares an existing context (options.context is ignored).
  VulkanBackend(std::shared_ptr<vk::Context> context, VulkanBackendOptions options = {});
  ~VulkanBackend() override;

  /// name "vulkan", the device name and the driver string ("cpu" information after a fallback).
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
  Matrix sparseMatmul(const attn::SparseMatrix& a, const Matrix& x) override;
  Matrix weightTile(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) override;

  double deviceMsTotal() const override;
  vk::Context& context() { return *context_; }
  const vk::Context& context() const { return *context_; }
  std::shared_ptr<vk::Context> sharedContext() const { return context_; }
  /// Device time of the last GPU submission in ms (NaN when none yet or no timestamp support).
  double lastDeviceMs() const { return last_device_ms_; }
  /// Rows of the last denseAttention recomputed on the host (NaN / +inf logits).
  Index lastFixedRows() const { return last_fixed_rows_; }
  /// Dispatches of the last sparse attention, linear-attention scan or weight tile on the GPU (several
  /// where the work was split to respect the device's loop limit); 0 when it ran on the CPU.
  Index lastSplitDispatches() const { return last_split_dispatches_; }
  /// Dispatches of the dense kernel in the last denseAttention on the GPU (several where the keys
  /// were split, see DenseTiling::keys_per_dispatch); 0 when it did not run the kernel.
  Index lastDenseDispatches() const { return last_dense_dispatches_; }
  /// Which kernel computed the last sparseAttention: "tiles" (block-sparse: dense tiles of the
  /// pattern's non-empty key tiles), "index" (CSR gather), or "cpu".
  const std::string& lastSparsePath() const { return last_sparse_path_; }
  /// Which path computed the last denseAttention: "fp32" (scalar kernel), "fp16-coopmat" (tensor
  /// cores, DenseAttentionOptions::allow_fp16), or "cpu".
  const std::string& lastDensePath() const { return last_dense_path_; }
  /// The tensor-core kernel's state: usable only on devices with cooperative matrices
  /// (vk::DeviceLimits::cooperative_matrix_fp16) and after a self-check against float64 on first use.
  enum class CoopState { Unknown, Passed, Failed };
  CoopState coopState() const { return coop_state_; }
  /// Why the tensor-core kernel is not used (after a failed self-check); empty otherwise.
  const std::string& coopNotice() const { return coop_notice_; }
  /// true once the backend computes on the CPU because the device was lost.
  bool fellBack() const { return fell_back_; }
  /// One sentence for the user after a fallback; empty otherwise.
  const std::string& fallbackNotice() const { return fallback_notice_; }
  std::string notice() const override { return fell_back_ ? fallback_notice_ : std::string(); }

  /// Tile configuration of the dense kernel for head dims (d, dv) on a device (exposed for tests
  /// and benchmarks). `ok` false: the kernel cannot take this shape here (the CPU computes it):
  /// d or dv out of range, no tile fits the shared memory, or not one key tile fits the device's
  /// loop-iteration limit (vk::DeviceLimits::max_loop_iterations).
  struct DenseTiling {
    bool ok = false;
    std::uint32_t rows = 0;             ///< BR: query rows per workgroup
    std::uint32_t keys = 0;             ///< BC: keys per shared-memory tile
    std::uint32_t d_capacity = 0;       ///< DK ≥ d
    std::uint32_t dv_capacity = 0;      ///< DV ≥ dv
    std::uint32_t threads_per_row = 0;  ///< TPR; workgroup size = rows · threads_per_row
    Index shared_bytes = 0;
    /// Keys one dispatch may stream (a multiple of `keys`) so that an invocation stays within half
    /// of limits.max_loop_iterations; 0 when the device has no such limit (one dispatch).
    Index keys_per_dispatch = 0;
  };
  static DenseTiling denseTiling(Index d, Index dv, const vk::DeviceLimits& limits);
  /// Inner-dimension entries one matmul dispatch may take on a device (a multiple of the kernel's
  /// 16-wide tile), so that an invocation stays within half of limits.max_loop_iterations; 0 when
  /// the device has no such limit (one dispatch).
  static Index matmulDepthPerDispatch(const vk::DeviceLimits& limits);
  /// Entries of each row one sparse-matmul dispatch may take on a device, for a dense operand k columns wide.
  static Index spmmEntriesPerDispatch(Index k, const vk::DeviceLimits& limits);
  /// One dispatch's share [begin, end) of the entries each invocation walks, and its phase bits (first,
  /// last: the shaders' PHASE_FIRST, PHASE_LAST).
  struct DispatchSlice {
    std::uint32_t begin, end, phase;
  };
  /// Splits `total` entries (< 2^31) into dispatches of at most `per_dispatch` (rounded down to a
  /// multiple of `step`, at least `step`); the last ends at `total` rounded up to a multiple of `step`.
  static std::vector<DispatchSlice> splitEntries(Index total, Index per_dispatch, Index step);
  /// Entries of one pixel a weight-tile dispatch may take at factor rank r, and entries of one row a
  /// sparse-attention dispatch may take at head size d, within half of limits.max_loop_iterations (a
  /// multiple of 64; without a loop limit, more than any pixel or row can hold).
  static Index tileEntriesPerDispatch(Index r, const vk::DeviceLimits& limits);
  static Index sparseEntriesPerDispatch(Index d, const vk::DeviceLimits& limits);

 private:
  AttentionOutput denseGpu(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& options);
  AttentionOutput denseCoop(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& options);
  bool coopEligible(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& options) const;
  void checkCoopOnce();
  void fixFlaggedRows(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& options,
                      const std::vector<std::uint32_t>& flags, std::uint32_t valid_bits, AttentionOutput& result);
  Matrix matmulGpu(const Matrix& a, const Matrix& b, bool transpose_b);
  Matrix sparseMatmulGpu(const attn::SparseMatrix& a, const Matrix& x);
  AttentionOutput sparseGpu(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern, float scale,
                            const std::vector<float>* entry_bias);
  /// Key tiles (BR rows × BC keys) of a pattern that hold at least one entry, per workgroup of BR rows.
  struct TileList {
    std::vector<std::uint32_t> ptr;   ///< workgroups + 1 offsets into col
    std::vector<std::uint32_t> col;   ///< key-tile index
    std::vector<std::uint64_t> mask;  ///< per tile entry, BR masks (bit jj: key tile·BC + jj in the row's pattern)
    Index longest = 0;                ///< most tiles of one workgroup
    double fill = 0;                  ///< pattern entries / (row, key) pairs of the matrix in the listed tiles
  };
  static TileList tileList(const Pattern& pattern, std::uint32_t rows, std::uint32_t keys);
  AttentionOutput sparseTilesGpu(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern, float scale,
                                 const DenseTiling& tiling, const TileList& tiles);
  void fixSparseRows(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern, float scale,
                     const std::vector<float>* entry_bias, const std::vector<std::uint32_t>& flags,
                     AttentionOutput& result);
  Matrix featureMapGpu(const Matrix& x, const FeatureMapOptions& options);
  Matrix linearGpu(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal);
  std::vector<std::int32_t> assignGpu(const Matrix& x, const Matrix& p, bool centroid);
  Matrix weightTileGpu(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling);
  /// Runs gpu(); on DeviceLost with fall_back_on_device_lost, switches to the CPU and runs cpu().
  template <class Gpu, class Cpu>
  auto guarded(Gpu&& gpu, Cpu&& cpu) -> decltype(gpu());
  /// Runs a CpuBackend primitive and records its peak bytes.
  template <class F>
  auto onCpu(F&& f) -> decltype(f(std::declval<CpuBackend&>()));

  VulkanBackendOptions options_;
  std::shared_ptr<vk::Context> context_;
  std::unique_ptr<CpuBackend> cpu_;
  double last_device_ms_;
  Index last_fixed_rows_ = 0;
  Index last_dense_dispatches_ = 0;
  Index last_split_dispatches_ = 0;
  std::string last_dense_path_ = "cpu";
  std::string last_sparse_path_ = "cpu";
  CoopState coop_state_ = CoopState::Unknown;
  std::string coop_notice_;
  bool fell_back_ = false;
  std::string fallback_notice_;
};

}  // namespace attn::gpu
