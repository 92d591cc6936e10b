#include "render/gpu/vulkan_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace attn::gpu {
namespace {

constexpr Index kMaxHeadDim = 256;               // d and dv the dense kernel takes
constexpr std::uint32_t kOutputsPerThread = 16;  // OPT in attention_dense.comp
constexpr Index kMatmulTile = 16;                // TS in matmul.comp
constexpr std::uint32_t kNaNWord = 0x7fc00000u;  // quiet NaN (poisoning)
constexpr Index kMaxTokens = Index(1) << 30;     // keeps the kernels' 32-bit index arithmetic exact

/// Push constants of attention_dense.comp (same order and types).
struct DensePush {
  std::uint32_t n, m, d, dv, causal;
  std::int32_t causal_offset;
  float scale;
  std::uint32_t groups_x;
  std::uint32_t key_begin, key_end;  // keys of this dispatch
  std::uint32_t phase;               // kPhaseFirst | kPhaseLast
};
static_assert(sizeof(DensePush) == 44);
constexpr std::uint32_t kPhaseFirst = 1, kPhaseLast = 2;  // PHASE_FIRST, PHASE_LAST in the shader
constexpr Index kRowStateBytes = 12;                      // RowState {m, l, flags} in attention_dense.comp

/// Push constants of matmul.comp.
struct MatmulPush {
  std::uint32_t n, k, m, transpose_b;
  std::uint32_t k_begin, k_end;  // inner indices of this dispatch
  std::uint32_t accumulate;      // 1: add to C (a later dispatch), 0: overwrite it
};

// Loop-iteration budgets (vk::DeviceLimits::max_loop_iterations). The counts below are upper bounds
// of the back edges one invocation takes through the shaders' loops, each loop charged two more
// iterations than its trip count; loops the shaders mark [[unroll]] (constant trip counts) are
// unrolled by the compiler and cost none. Only half of the device limit is used, as a margin for
// compilers that keep more loops than these bounds assume.
Index loopBudget(const vk::DeviceLimits& limits) { return Index(limits.max_loop_iterations) / 2; }
Index ceilDiv(Index a, Index b) { return (a + b - 1) / b; }

std::uint32_t capacity(Index x) {
  std::uint32_t c = 16;
  while (c < x) c *= 2;
  return c;
}

/// Bytes of a rows×cols fp32 buffer: overflow-checked, and checked against the device's limits and
/// the memory budget (UserError naming `what`).
Index floatBytes(const vk::Context& ctx, Index rows, Index cols, const std::string& what) {
  Index count = 0;
  if (__builtin_mul_overflow(rows, cols, &count))
    throw UserError(what + " is too large: " + std::to_string(rows) + "×" + std::to_string(cols) +
                    " elements overflow a 64-bit size");
  return ctx.bufferBytes(count, sizeof(float), what);
}

Index sumBytes(std::initializer_list<Index> parts, const std::string& what) {
  Index total = 0;
  for (Index p : parts)
    if (__builtin_add_overflow(total, p, &total)) throw UserError(what + ": total size overflows");
  return total;
}

/// Splits `groups` workgroups into a grid (x, y) within the device's per-dimension limits.
std::pair<std::uint32_t, std::uint32_t> grid(Index groups, const vk::DeviceLimits& limits, const char* what) {
  const Index max_x = limits.max_workgroup_count[0];
  const Index gx = std::min(groups, max_x);
  const Index gy = gx == 0 ? 0 : (groups + gx - 1) / gx;
  if (gy > static_cast<Index>(limits.max_workgroup_count[1]))
    throw UserError(std::string(what) + " needs more workgroups than this GPU can launch; use a smaller input");
  return {static_cast<std::uint32_t>(gx), static_cast<std::uint32_t>(gy)};
}

}  // namespace

VulkanBackend::DenseTiling VulkanBackend::denseTiling(Index d, Index dv, const vk::DeviceLimits& limits) {
  DenseTiling t;
  if (d < 1 || d > kMaxHeadDim || dv < 0 || dv > kMaxHeadDim) return t;
  const std::uint32_t dk = capacity(d);
  const std::uint32_t dvc = capacity(std::max<Index>(dv, 1));
  const std::uint32_t tpr = std::max<std::uint32_t>(4, dvc / kOutputsPerThread);
  const std::uint32_t max_wg =
      std::min<std::uint32_t>({128u, limits.max_workgroup_invocations, limits.max_workgroup_size[0]});
  if (tpr > max_wg) return t;
  for (std::uint32_t min_keys : {16u, 4u}) {
    for (std::uint32_t br = max_wg / tpr; br >= 1; br /= 2) {
      for (std::uint32_t bc = 64; bc >= min_keys; bc /= 2) {
        const Index floats = Index(br) * (dk + 1) + Index(bc) * (dk + 1) + Index(bc) * dvc + Index(br) * bc + 2 * br;
        const Index bytes = floats * Index(sizeof(float));
        if (bytes <= limits.max_compute_shared_memory) {
          if (limits.max_loop_iterations == 0) return {true, br, bc, dk, dvc, tpr, bytes, 0};
          // attention_dense.comp's loops, per dispatch and per key tile (see loopBudget).
          const Index wg = Index(br) * tpr, logits = ceilDiv(Index(br) * bc, wg);
          const Index per_dispatch = ceilDiv(Index(br) * d, wg) + 2  // Q tile
                                     + 2                             // the key-tile loop's exit
                                     + 4 * (kOutputsPerThread + 2);  // margin: the OPT loops
          const Index per_tile = 1                                   // the key-tile loop
                                 + ceilDiv(Index(bc) * d, wg) + 2    // K tile
                                 + ceilDiv(Index(bc) * dv, wg) + 2   // V tile
                                 + logits * (d + 3) + 2              // logits, d-long dot products
                                 + 2 * (bc + 2)                      // max, then exp (lane 0)
                                 + bc + 2;                           // P·V
          const Index tiles = (loopBudget(limits) - per_dispatch) / per_tile;
          if (tiles >= 1) return {true, br, bc, dk, dvc, tpr, bytes, tiles * bc};
          // else: not even one tile per dispatch; smaller tiles, or (none left) the CPU computes it
        }
      }
    }
  }
  return t;
}

Index VulkanBackend::matmulDepthPerDispatch(const vk::DeviceLimits& limits) {
  if (limits.max_loop_iterations == 0) return 0;
  // matmul.comp's loops (see loopBudget): per 16-deep tile the tile loop, the two loads, the 16-step
  // product loop; per dispatch the tile loop's exit and a margin. (One tile, 41 iterations, is far
  // below any limit a driver could sensibly have, so at least one always goes.)
  constexpr Index per_dispatch = 2 + 16, per_tile = 1 + (2 + 2) + (kMatmulTile + 2);
  return std::max<Index>(1, (loopBudget(limits) - per_dispatch) / per_tile) * kMatmulTile;
}

VulkanBackend::VulkanBackend(VulkanBackendOptions options)
    : VulkanBackend(std::make_shared<vk::Context>(options.context), options) {}

VulkanBackend::VulkanBackend(std::shared_ptr<vk::Context> context, VulkanBackendOptions options)
    : options_(std::move(options)),
      context_(std::move(context)),
      cpu_(std::make_unique<CpuBackend>(options_.cpu_threads)),
      last_device_ms_(std::numeric_limits<double>::quiet_NaN()) {
  if (!context_) throw std::invalid_argument("VulkanBackend: null context");
}

VulkanBackend::~VulkanBackend() = default;

BackendInfo VulkanBackend::info() const {
  if (fell_back_) return cpu_->info();
  return {"vulkan", context_->description().name, context_->description().driver};
}

template <class Gpu, class Cpu>
auto VulkanBackend::guarded(Gpu&& gpu, Cpu&& cpu) -> decltype(gpu()) {
  if (fell_back_) return cpu();
  try {
    return gpu();
  } catch (const vk::DeviceLost& e) {
    if (!options_.fall_back_on_device_lost) throw;
    fell_back_ = true;
    fallback_notice_ = "The Vulkan device " + context_->description().name +
                       " was lost; attnlab computes on the CPU from now on (" + e.what() + ").";
    return cpu();
  }
}

template <class F>
auto VulkanBackend::onCpu(F&& f) -> decltype(f(std::declval<CpuBackend&>())) {
  cpu_->resetPeakBytes();
  auto result = f(*cpu_);
  notePeak(cpu_->peakBytes());
  return result;
}

// ---- dense attention --------------------------------------------------------------------------------

AttentionOutput VulkanBackend::denseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                              const DenseAttentionOptions& options) {
  if (q.cols() != k.cols())
    throw UserError("dense attention: Q has " + std::to_string(q.cols()) + " columns but K has " +
                    std::to_string(k.cols()));
  if (k.rows() != v.rows())
    throw UserError("dense attention: K has " + std::to_string(k.rows()) + " rows but V has " +
                    std::to_string(v.rows()));
  if (options.bias && (options.bias->rows() != q.rows() || options.bias->cols() != k.rows()))
    throw UserError("dense attention: the bias is " + std::to_string(options.bias->rows()) + "×" +
                    std::to_string(options.bias->cols()) + " but must be N×M = " + std::to_string(q.rows()) + "×" +
                    std::to_string(k.rows()));
  last_dense_dispatches_ = 0;
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.denseAttention(q, k, v, options); }); };
  if (!denseTiling(q.cols(), v.cols(), context_->limits()).ok) return cpu();  // shapes the kernel does not take
  // Reformer's shared-QK reference (self masked unless alone) has no kernel variant yet: the Vulkan
  // backend issue adds it; until then it runs on the CPU.
  if (options.mask_self) return cpu();
  return guarded([&] { return denseGpu(q, k, v, options); }, cpu);
}

AttentionOutput VulkanBackend::denseGpu(const Matrix& q, const Matrix& k, const Matrix& v,
                                        const DenseAttentionOptions& options) {
  vk::Context& ctx = *context_;
  const Index n = q.rows(), m = k.rows(), d = q.cols(), dv = v.cols();
  last_fixed_rows_ = 0;
  AttentionOutput result;
  if (n == 0) {
    result.out = Matrix(0, dv);
    result.lse = Vector(0);
    return result;
  }
  if (m == 0) {  // no key at all: every row is fully masked
    result.out = Matrix::Zero(n, dv);
    result.lse = Vector::Constant(n, -std::numeric_limits<float>::infinity());
    return result;
  }
  if (n > kMaxTokens || m > kMaxTokens)
    throw UserError("dense attention: " + std::to_string(std::max(n, m)) + " tokens exceed the GPU kernel's limit of " +
                    std::to_string(kMaxTokens));
  const DenseTiling tiling = denseTiling(d, dv, ctx.limits());
  const bool has_bias = options.bias != nullptr;

  // Sizes first (overflow-checked, against the device limits and the budget), then allocate.
  const Index q_bytes = floatBytes(ctx, n, d, "the queries Q");
  const Index k_bytes = floatBytes(ctx, m, d, "the keys K");
  const Index v_bytes = floatBytes(ctx, m, dv, "the values V");
  const Index o_bytes = floatBytes(ctx, n, dv, "the attention output");
  const Index lse_bytes = floatBytes(ctx, n, 1, "the row normalisers");
  const Index flag_bytes = floatBytes(ctx, n, 1, "the row flags");
  const Index state_bytes = floatBytes(ctx, n, kRowStateBytes / Index(sizeof(float)), "the row states");
  const Index bias_bytes = has_bias ? floatBytes(ctx, n, m, "the N×M attention bias") : 0;
  const Index total =
      sumBytes({q_bytes, k_bytes, v_bytes, o_bytes, lse_bytes, flag_bytes, state_bytes, bias_bytes}, "dense attention");
  ctx.requireBudget(total, "dense attention (N = " + std::to_string(n) + ", M = " + std::to_string(m) +
                               ", d = " + std::to_string(d) + ", dv = " + std::to_string(dv) + ")");

  vk::Buffer qb = ctx.createBuffer(q_bytes, "the queries Q");
  vk::Buffer kb = ctx.createBuffer(k_bytes, "the keys K");
  vk::Buffer vb = ctx.createBuffer(v_bytes, "the values V");
  vk::Buffer ob = ctx.createBuffer(o_bytes, "the attention output", vk::BufferUse::HostRead);
  vk::Buffer lb = ctx.createBuffer(lse_bytes, "the row normalisers", vk::BufferUse::HostRead);
  vk::Buffer fb = ctx.createBuffer(flag_bytes, "the row flags", vk::BufferUse::HostRead);
  vk::Buffer sb = ctx.createBuffer(state_bytes, "the row states");
  vk::Buffer bb;
  if (has_bias) bb = ctx.createBuffer(bias_bytes, "the N×M attention bias");
  notePeak(qb.allocatedBytes() + kb.allocatedBytes() + vb.allocatedBytes() + ob.allocatedBytes() + lb.allocatedBytes() +
           fb.allocatedBytes() + sb.allocatedBytes() + bb.allocatedBytes());
  qb.upload(q.data(), q_bytes);
  kb.upload(k.data(), k_bytes);
  vb.upload(v.data(), v_bytes);
  if (has_bias) bb.upload(options.bias->data(), bias_bytes);

  const vk::Pipeline& pipeline = ctx.pipeline({has_bias ? "attention_dense_bias" : "attention_dense",
                                               has_bias ? 8u : 7u,
                                               sizeof(DensePush),
                                               {tiling.rows * tiling.threads_per_row, tiling.rows, tiling.keys,
                                                tiling.d_capacity, tiling.dv_capacity, tiling.threads_per_row}});
  const Index groups = (n + tiling.rows - 1) / tiling.rows;
  const auto [gx, gy] = grid(groups, ctx.limits(), "dense attention");
  DensePush push{};
  push.n = static_cast<std::uint32_t>(n);
  push.m = static_cast<std::uint32_t>(m);
  push.d = static_cast<std::uint32_t>(d);
  push.dv = static_cast<std::uint32_t>(dv);
  push.causal = options.causal ? 1u : 0u;
  push.causal_offset = static_cast<std::int32_t>(std::clamp<Index>(options.causal_offset, -n, m));
  push.scale = options.scale > 0 ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));  // as CpuBackend
  push.groups_x = gx;

  // The keys some row can see, streamed by one dispatch or (where the device limits loop
  // iterations, or the options ask for it) by several, each starting where the previous one ended.
  const Index visible_keys = options.causal ? std::clamp<Index>(n + push.causal_offset, 0, m) : m;
  // Every dispatch but the last starts and ends on a tile boundary (tiling.keys_per_dispatch is whole tiles).
  Index keys_per_dispatch = tiling.keys_per_dispatch > 0 ? tiling.keys_per_dispatch : m;
  if (options_.dense_keys_per_dispatch > 0 && options_.dense_keys_per_dispatch < keys_per_dispatch)
    keys_per_dispatch = std::max<Index>(tiling.keys, options_.dense_keys_per_dispatch / tiling.keys * tiling.keys);
  const Index dispatches = std::max<Index>(1, (visible_keys + keys_per_dispatch - 1) / keys_per_dispatch);
  std::vector<DensePush> pushes(static_cast<std::size_t>(dispatches), push);
  for (Index i = 0; i < dispatches; ++i) {
    DensePush& p = pushes[static_cast<std::size_t>(i)];
    p.key_begin = static_cast<std::uint32_t>(i * keys_per_dispatch);
    p.key_end = static_cast<std::uint32_t>(i + 1 == dispatches ? m : (i + 1) * keys_per_dispatch);
    p.phase = (i == 0 ? kPhaseFirst : 0u) | (i + 1 == dispatches ? kPhaseLast : 0u);
  }
  last_dense_dispatches_ = dispatches;

  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs) {
      rec.fill(ob, kNaNWord);
      rec.fill(lb, kNaNWord);
      rec.fill(fb, kNaNWord);  // not a valid flag word: unwritten flags are detected below
      rec.fill(sb, kNaNWord);
    }
    if (has_bias)
      rec.dispatchEach(pipeline, {&qb, &kb, &vb, &ob, &lb, &fb, &sb, &bb}, std::span<const DensePush>(pushes), gx, gy);
    else
      rec.dispatchEach(pipeline, {&qb, &kb, &vb, &ob, &lb, &fb, &sb}, std::span<const DensePush>(pushes), gx, gy);
  });

  result.out.resize(n, dv);
  result.lse.resize(n);
  ob.download(result.out.data(), o_bytes);
  lb.download(result.lse.data(), lse_bytes);
  std::vector<std::uint32_t> flags(static_cast<std::size_t>(n));
  fb.download(flags.data(), flag_bytes);

  // Rows with a NaN or +inf logit: recompute exactly as the reference defines them, one row at a time.
  MatrixD kd, vd;
  bool converted = false;
  for (Index i = 0; i < n; ++i) {
    const std::uint32_t f = flags[static_cast<std::size_t>(i)];
    if (f == 0) continue;
    if (f > 3u) throw std::logic_error("attention_dense left the flags of row " + std::to_string(i) + " unwritten");
    if (!converted) {
      kd = k.cast<double>();
      vd = v.cast<double>();
      converted = true;
    }
    const MatrixD qi = q.row(i).cast<double>();
    DenseAttentionOptions row_options = options;
    row_options.causal_offset = options.causal_offset + i;  // row 0 of qi is query i
    Matrix bias_row;
    if (has_bias) {
      bias_row = options.bias->row(i);
      row_options.bias = &bias_row;
    }
    VectorD row_lse;
    const MatrixD row_out = referenceAttention(qi, kd, vd, row_options, &row_lse);
    result.out.row(i) = row_out.row(0).cast<float>();
    result.lse(i) = static_cast<float>(row_lse(0));
    ++last_fixed_rows_;
  }
  return result;
}

// ---- matmul -----------------------------------------------------------------------------------------

Matrix VulkanBackend::matmul(const Matrix& a, const Matrix& b, bool transpose_b) {
  const Index inner_b = transpose_b ? b.cols() : b.rows();
  if (a.cols() != inner_b)
    throw UserError("matmul: A is " + std::to_string(a.rows()) + "×" + std::to_string(a.cols()) + " but B" +
                    (transpose_b ? "ᵀ" : "") + " has " + std::to_string(inner_b) + " rows");
  return guarded([&] { return matmulGpu(a, b, transpose_b); },
                 [&] { return onCpu([&](CpuBackend& c) { return c.matmul(a, b, transpose_b); }); });
}

Matrix VulkanBackend::matmulGpu(const Matrix& a, const Matrix& b, bool transpose_b) {
  vk::Context& ctx = *context_;
  const Index n = a.rows(), kk = a.cols(), m = transpose_b ? b.rows() : b.cols();
  if (n == 0 || m == 0) return Matrix(n, m);
  if (kk == 0) return Matrix::Zero(n, m);
  if (n > kMaxTokens || m > kMaxTokens || kk > kMaxTokens)
    throw UserError("matmul: a dimension exceeds the GPU kernel's limit of " + std::to_string(kMaxTokens));
  const Index a_bytes = floatBytes(ctx, n, kk, "matmul operand A");
  const Index b_bytes = floatBytes(ctx, b.rows(), b.cols(), "matmul operand B");
  const Index c_bytes = floatBytes(ctx, n, m, "matmul result");
  ctx.requireBudget(sumBytes({a_bytes, b_bytes, c_bytes}, "matmul"),
                    "matmul (" + std::to_string(n) + "×" + std::to_string(kk) + " by " + std::to_string(kk) + "×" +
                        std::to_string(m) + ")");
  vk::Buffer ab = ctx.createBuffer(a_bytes, "matmul operand A");
  vk::Buffer bb = ctx.createBuffer(b_bytes, "matmul operand B");
  vk::Buffer cb = ctx.createBuffer(c_bytes, "matmul result", vk::BufferUse::HostRead);
  notePeak(ab.allocatedBytes() + bb.allocatedBytes() + cb.allocatedBytes());
  ab.upload(a.data(), a_bytes);
  bb.upload(b.data(), b_bytes);
  const vk::Pipeline& pipeline = ctx.pipeline({"matmul", 3, sizeof(MatmulPush), {}});
  const Index gx = (m + 15) / 16, gy = (n + 15) / 16;
  if (gx > ctx.limits().max_workgroup_count[0] || gy > ctx.limits().max_workgroup_count[1])
    throw UserError("matmul: the result is too large for one dispatch on this GPU; use a smaller input");
  // The inner dimension in one dispatch, or (where the device limits loop iterations) in several that
  // accumulate into C.
  // Every dispatch but the last starts and ends on a tile boundary (matmulDepthPerDispatch is whole tiles).
  Index depth = matmulDepthPerDispatch(ctx.limits()) > 0 ? matmulDepthPerDispatch(ctx.limits()) : kk;
  if (options_.matmul_depth_per_dispatch > 0 && options_.matmul_depth_per_dispatch < depth)
    depth = std::max(kMatmulTile, options_.matmul_depth_per_dispatch / kMatmulTile * kMatmulTile);
  const Index dispatches = (kk + depth - 1) / depth;
  std::vector<MatmulPush> pushes(static_cast<std::size_t>(dispatches));
  for (Index i = 0; i < dispatches; ++i)
    pushes[static_cast<std::size_t>(i)] = {static_cast<std::uint32_t>(n),
                                           static_cast<std::uint32_t>(kk),
                                           static_cast<std::uint32_t>(m),
                                           transpose_b ? 1u : 0u,
                                           static_cast<std::uint32_t>(i * depth),
                                           static_cast<std::uint32_t>(std::min(kk, (i + 1) * depth)),
                                           i > 0 ? 1u : 0u};
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs) rec.fill(cb, kNaNWord);
    rec.dispatchEach(pipeline, {&ab, &bb, &cb}, std::span<const MatmulPush>(pushes), static_cast<std::uint32_t>(gx),
                     static_cast<std::uint32_t>(gy));
  });
  Matrix c(n, m);
  cb.download(c.data(), c_bytes);
  return c;
}

// ---- primitives computed by the CPU backend for now --------------------------------------------------

AttentionOutput VulkanBackend::sparseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                               const Pattern& pattern, float scale,
                                               const std::vector<float>* entry_bias) {
  // GPU kernel: the Vulkan-backend issue's work (block/index-sparse attention).
  return onCpu([&](CpuBackend& c) { return c.sparseAttention(q, k, v, pattern, scale, entry_bias); });
}

Matrix VulkanBackend::featureMap(const Matrix& x, FeatureMap map) {
  // GPU kernel: the Vulkan-backend issue's work (feature maps).
  return onCpu([&](CpuBackend& c) { return c.featureMap(x, map); });
}

Matrix VulkanBackend::linearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) {
  // GPU kernel: the Vulkan-backend issue's work (linear attention with chunked prefix sums).
  return onCpu([&](CpuBackend& c) { return c.linearAttention(phi_q, phi_k, v, causal); });
}

std::vector<std::int32_t> VulkanBackend::hashRotations(const Matrix& x, const Matrix& rotations) {
  // GPU kernel: the Vulkan-backend issue's work (LSH by random rotations).
  return onCpu([&](CpuBackend& c) { return c.hashRotations(x, rotations); });
}

std::vector<std::int32_t> VulkanBackend::nearestCentroid(const Matrix& x, const Matrix& centroids) {
  // GPU kernel: the Vulkan-backend issue's work (nearest-centroid assignment).
  return onCpu([&](CpuBackend& c) { return c.nearestCentroid(x, centroids); });
}

}  // namespace attn::gpu
