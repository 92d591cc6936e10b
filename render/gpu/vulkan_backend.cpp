#include "render/gpu/vulkan_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "attention/random.h"

namespace attn::gpu {
namespace {

constexpr Index k_max_head_dim = 256;               // d and dv the dense kernel takes
constexpr std::uint32_t k_outputs_per_thread = 16;  // OPT in attention_dense.comp
constexpr Index k_matmul_tile = 16;                // TS in matmul.comp
constexpr std::uint32_t k_nan_word = 0x7fc00000u;  // quiet NaN (poisoning)
constexpr Index k_max_tokens = Index(1) << 30;     // keeps the kernels' 32-bit index arithmetic exact

/// Push constants of attention_dense.comp (same order and types).
struct DensePush {
  std::uint32_t n, m, d, dv, causal;
  std::int32_t causal_offset;
  float scale;
  std::uint32_t groups_x;
  std::uint32_t key_begin, key_end;  // keys of this dispatch
  std::uint32_t phase;               // k_phase_first | k_phase_last
};
static_assert(sizeof(DensePush) == 44);
constexpr std::uint32_t k_phase_first = 1, k_phase_last = 2;  // PHASE_FIRST, PHASE_LAST in the shader
constexpr Index k_row_state_bytes = 12;                      // RowState {m, l, flags} in attention_dense.comp

/// Push constants of matmul.comp.
/// Push constants of spmm.comp.
struct SpmmPush {
  std::uint32_t rows, k, groups_x;
  std::uint32_t entry_begin, entry_end, phase;  // entries of each row in this dispatch
};

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
std::uint32_t u32(Index x) { return static_cast<std::uint32_t>(x); }

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

/// Bytes of `count` 32-bit words (at least one, so that empty lists still bind), checked as floatBytes.
Index intBytes(const vk::Context& ctx, Index count, const std::string& what) {
  return ctx.bufferBytes(std::max<Index>(count, 1), sizeof(std::uint32_t), what);
}

/// The GPU buffers of one primitive call: each size is checked (overflow, device limits) as it is
/// declared, their total against the memory budget before anything is allocated (UserError naming
/// the call), and then all are created together.
class CallBuffers {
 public:
  explicit CallBuffers(vk::Context& ctx) : ctx_(ctx) {}
  /// A rows×cols fp32 buffer; returns its handle for operator[].
  std::size_t floats(Index rows, Index cols, std::string what, vk::BufferUse use = vk::BufferUse::DeviceRead) {
    const Index bytes = floatBytes(ctx_, rows, cols, what);  // before `what` is moved (argument order is unspecified)
    return declare(bytes, std::move(what), use);
  }
  /// `count` 32-bit words.
  std::size_t words(Index count, std::string what, vk::BufferUse use = vk::BufferUse::DeviceRead) {
    const Index bytes = intBytes(ctx_, count, what);
    return declare(bytes, std::move(what), use);
  }
  /// `count` elements of `element` bytes.
  std::size_t elements(Index count, Index element, std::string what) {
    const Index bytes = ctx_.bufferBytes(std::max<Index>(count, 1), element, what);
    return declare(bytes, std::move(what), vk::BufferUse::DeviceRead);
  }
  /// Checks the total against the budget and creates every buffer; returns the bytes they hold.
  Index allocate(const std::string& call) {
    Index total = 0;
    for (const Spec& s : specs_)
      if (__builtin_add_overflow(total, s.bytes, &total)) throw UserError(call + ": total size overflows");
    ctx_.requireBudget(total, call);
    Index held = 0;
    for (const Spec& s : specs_) {
      buffers_.push_back(ctx_.createBuffer(s.bytes, s.what, s.use));
      held += buffers_.back().allocatedBytes();
    }
    return held;
  }
  vk::Buffer& operator[](std::size_t i) { return buffers_[i]; }
  /// The usable bytes of buffer i (what it was declared with).
  Index bytes(std::size_t i) const { return specs_[i].bytes; }
  /// Uploads host data filling buffer i.
  void upload(std::size_t i, const void* data) { buffers_[i].upload(data, specs_[i].bytes); }

 private:
  struct Spec {
    Index bytes;
    std::string what;
    vk::BufferUse use;
  };
  std::size_t declare(Index bytes, std::string what, vk::BufferUse use) {
    specs_.push_back({bytes, std::move(what), use});
    return specs_.size() - 1;
  }
  vk::Context& ctx_;
  std::vector<Spec> specs_;
  std::vector<vk::Buffer> buffers_;
};

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
  if (d < 1 || d > k_max_head_dim || dv < 0 || dv > k_max_head_dim) return t;
  const std::uint32_t dk = capacity(d);
  const std::uint32_t dvc = capacity(std::max<Index>(dv, 1));
  const std::uint32_t tpr = std::max<std::uint32_t>(4, dvc / k_outputs_per_thread);
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
                                     + 4 * (k_outputs_per_thread + 2);  // margin: the OPT loops
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
  constexpr Index per_dispatch = 2 + 16, per_tile = 1 + (2 + 2) + (k_matmul_tile + 2);
  return std::max<Index>(1, (loopBudget(limits) - per_dispatch) / per_tile) * k_matmul_tile;
}

Index VulkanBackend::spmmEntriesPerDispatch(Index k, const vk::DeviceLimits& limits) {
  if (limits.max_loop_iterations == 0) return Index(1) << 31;
  // spmm.comp's loops (see loopBudget): ⌈k/64⌉ column passes, each the entry loop (its entries + 2) and its own
  // exit; per dispatch a margin.
  const Index passes = std::max<Index>(1, (k + 63) / 64);
  return std::max<Index>(1, (loopBudget(limits) - 16) / passes - 4);
}

std::vector<VulkanBackend::DispatchSlice> VulkanBackend::splitEntries(Index total, Index per_dispatch, Index step) {
  step = std::max<Index>(step, 1);
  total = std::clamp<Index>(total, 0, Index(1) << 31);
  const Index whole = std::max(step, (total + step - 1) / step * step);  // ≤ 2^31 + step: fits 32 bits
  per_dispatch = std::clamp(per_dispatch / step * step, step, whole);
  const Index count = std::max<Index>(1, (total + per_dispatch - 1) / per_dispatch);
  std::vector<DispatchSlice> out;
  for (Index i = 0; i < count; ++i)
    out.push_back({static_cast<std::uint32_t>(i * per_dispatch),
                   static_cast<std::uint32_t>(i + 1 == count ? whole : (i + 1) * per_dispatch),
                   (i == 0 ? k_phase_first : 0u) | (i + 1 == count ? k_phase_last : 0u)});
  return out;
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

double VulkanBackend::deviceMsTotal() const {
  if (fell_back_ || !context_->hasTimestamps()) return std::numeric_limits<double>::quiet_NaN();
  return context_->deviceMsTotal();
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
  last_dense_path_ = "cpu";
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.denseAttention(q, k, v, options); }); };
  if (coopEligible(q, k, v, options)) {
    return guarded(
        [&] {
          checkCoopOnce();
          return coop_state_ == CoopState::Passed ? denseCoop(q, k, v, options) : denseGpu(q, k, v, options);
        },
        cpu);
  }
  if (!denseTiling(q.cols(), v.cols(), context_->limits()).ok) return cpu();  // shapes the kernel does not take
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
  if (n > k_max_tokens || m > k_max_tokens)
    throw UserError("dense attention: " + std::to_string(std::max(n, m)) + " tokens exceed the GPU kernel's limit of " +
                    std::to_string(k_max_tokens));
  const DenseTiling tiling = denseTiling(d, dv, ctx.limits());
  const bool has_bias = options.bias != nullptr;

  // Sizes first (overflow-checked, against the device limits and the budget), then allocate.
  CallBuffers b(ctx);
  const auto Q = b.floats(n, d, "the queries Q"), K = b.floats(m, d, "the keys K"), V = b.floats(m, dv, "the values V");
  const auto O = b.floats(n, dv, "the attention output", vk::BufferUse::HostRead);
  const auto L = b.floats(n, 1, "the row normalisers", vk::BufferUse::HostRead);
  const auto F = b.floats(n, 1, "the row flags", vk::BufferUse::HostRead);
  const auto S = b.floats(n, k_row_state_bytes / Index(sizeof(float)), "the row states");
  const auto B = has_bias ? b.floats(n, m, "the N×M attention bias") : 0;
  notePeak(b.allocate("dense attention (N = " + std::to_string(n) + ", M = " + std::to_string(m) + ", d = " +
                      std::to_string(d) + ", dv = " + std::to_string(dv) + ")"));
  b.upload(Q, q.data());
  b.upload(K, k.data());
  b.upload(V, v.data());
  if (has_bias) b.upload(B, options.bias->data());

  const char* shader = has_bias ? (options.mask_self ? "attention_dense_bias_self" : "attention_dense_bias")
                                : (options.mask_self ? "attention_dense_self" : "attention_dense");
  const vk::Pipeline& pipeline = ctx.pipeline({shader,
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
    p.phase = (i == 0 ? k_phase_first : 0u) | (i + 1 == dispatches ? k_phase_last : 0u);
  }
  last_dense_dispatches_ = dispatches;
  last_dense_path_ = "fp32";

  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)  // NaN is not a valid flag word either: unwritten flags are detected
      for (auto out : {O, L, F, S}) rec.fill(b[out], k_nan_word);
    if (has_bias)
      rec.dispatchEach(pipeline, {&b[Q], &b[K], &b[V], &b[O], &b[L], &b[F], &b[S], &b[B]},
                       std::span<const DensePush>(pushes), gx, gy);
    else
      rec.dispatchEach(pipeline, {&b[Q], &b[K], &b[V], &b[O], &b[L], &b[F], &b[S]}, std::span<const DensePush>(pushes),
                       gx, gy);
  });

  result.out.resize(n, dv);
  result.lse.resize(n);
  b[O].download(result.out.data(), b.bytes(O));
  b[L].download(result.lse.data(), b.bytes(L));
  std::vector<std::uint32_t> flags(static_cast<std::size_t>(n));
  b[F].download(flags.data(), b.bytes(F));

  fixFlaggedRows(q, k, v, options, flags, 7u, result);
  return result;
}

void VulkanBackend::fixFlaggedRows(const Matrix& q, const Matrix& k, const Matrix& v,
                                   const DenseAttentionOptions& options, const std::vector<std::uint32_t>& flags,
                                   std::uint32_t valid_bits, AttentionOutput& result) {
  // Rows with a NaN or +inf logit, and (mask_self) rows whose only visible key was their own: recompute
  // exactly as the reference defines them, one row at a time.
  MatrixD kd, vd;
  bool converted = false;
  for (Index i = 0; i < q.rows(); ++i) {
    const std::uint32_t f = flags[static_cast<std::size_t>(i)];
    if (f == 0) continue;
    if ((f & ~valid_bits) != 0u)
      throw std::logic_error("the dense attention kernel left the flags of row " + std::to_string(i) + " unwritten");
    if (!converted) {
      kd = k.cast<double>();
      vd = v.cast<double>();
      converted = true;
    }
    const MatrixD qi = q.row(i).cast<double>();
    DenseAttentionOptions row_options = options;
    row_options.causal_offset = options.causal_offset + i;  // row 0 of qi is query i
    Matrix bias_row;
    if (options.bias) {
      bias_row = options.bias->row(i);
      row_options.bias = &bias_row;
    }
    VectorD row_lse;
    const MatrixD row_out = referenceAttention(qi, kd, vd, row_options, &row_lse);
    result.out.row(i) = row_out.row(0).cast<float>();
    result.lse(i) = static_cast<float>(row_lse(0));
    ++last_fixed_rows_;
  }
}

// ---- dense attention on tensor cores (cooperative matrices, fp16 inputs, fp32 accumulation) ---------

namespace {
struct CoopPush {
  std::uint32_t n, m, d, dv, causal;
  std::int32_t causal_offset;
  float scale;
  std::uint32_t groups_x;
};
constexpr Index k_coop_rows = 64;        // BR in attention_dense_coopmat.comp
constexpr float k_fp16_safe = 60000.0f;  // inputs beyond this magnitude would overflow fp16 (65504)
/// Shared memory of attention_dense_coopmat.comp for head dim d (its sQ, sK, sV, sS, sP, sAlpha).
Index coopSharedBytes(Index d) {
  const Index br = 64, bc = 32, ds = d + 8, ps = bc + 8;
  return 2 * (br * ds + 2 * bc * ds + br * ps) + 4 * (br * bc + br);
}
// The self-check's bound on the relative (Frobenius) error against float64: fp16 inputs give ≈ 5e-4.
constexpr double k_coop_check_tolerance = 5e-3;
}  // namespace

bool VulkanBackend::coopEligible(const Matrix& q, const Matrix& k, const Matrix& v,
                                 const DenseAttentionOptions& options) const {
  if (!options.allow_fp16 || !context_->limits().cooperative_matrix_fp16 || coop_state_ == CoopState::Failed)
    return false;
  if (options.bias || options.mask_self || q.cols() != v.cols() || (q.cols() != 64 && q.cols() != 128)) return false;
  if (q.rows() == 0 || k.rows() == 0 || q.rows() > k_max_tokens || k.rows() > k_max_tokens) return false;
  if (context_->limits().max_compute_shared_memory < coopSharedBytes(q.cols())) return false;
  // Finite and within fp16 range; anything else (NaN, ±inf, huge values) takes the fp32 kernel.
  auto small = [](const Matrix& x) {
    return x.size() == 0 || (x.allFinite() && x.cwiseAbs().maxCoeff() < k_fp16_safe);
  };
  return small(q) && small(k) && small(v);
}

void VulkanBackend::checkCoopOnce() {
  if (coop_state_ != CoopState::Unknown) return;
  coop_state_ = CoopState::Failed;  // until proven otherwise (also if the check throws)
  double worst = 0;
  for (Index d : {64, 128})
    for (bool causal : {false, true}) {
      Rng rng(std::uint64_t(d) * 7 + (causal ? 1 : 0));
      const Index n = 300, m = causal ? 300 : 333;
      const Matrix q = rng.gaussian(n, d), k = rng.gaussian(m, d), v = rng.gaussian(m, d);
      DenseAttentionOptions o;
      o.causal = causal;
      AttentionOutput got;
      try {
        got = denseCoop(q, k, v, o);
      } catch (const vk::DeviceLost&) {
        throw;                             // the device is gone: the caller's fallback handles it
      } catch (const std::exception& e) {  // the kernel did not build or run here: the fp32 kernel does the work
        coop_notice_ = "The tensor-core (fp16) attention kernel could not run on " + context_->description().name +
                       " (" + e.what() + "); attnlab uses the fp32 kernel instead.";
        return;
      }
      const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), o);
      const double err = (got.out.cast<double>() - ref).norm() / ref.norm();
      worst = std::max(worst, std::isfinite(err) ? err : 1e300);
    }
  if (worst <= k_coop_check_tolerance) {
    coop_state_ = CoopState::Passed;
  } else {
    coop_notice_ = "The tensor-core (fp16) attention kernel failed its self-check on " + context_->description().name +
                   " (relative error " + std::to_string(worst) + "); attnlab uses the fp32 kernel instead.";
  }
}

AttentionOutput VulkanBackend::denseCoop(const Matrix& q, const Matrix& k, const Matrix& v,
                                         const DenseAttentionOptions& options) {
  vk::Context& ctx = *context_;
  const Index n = q.rows(), m = k.rows(), d = q.cols();
  last_fixed_rows_ = 0;
  CallBuffers b(ctx);
  const auto Q = b.floats(n, d, "the queries Q"), K = b.floats(m, d, "the keys K"), V = b.floats(m, d, "the values V");
  const auto O = b.floats(n, d, "the attention output", vk::BufferUse::HostRead);
  const auto L = b.floats(n, 1, "the row normalisers", vk::BufferUse::HostRead);
  const auto F = b.floats(n, 1, "the row flags", vk::BufferUse::HostRead);
  notePeak(b.allocate("dense attention (N = " + std::to_string(n) + ", M = " + std::to_string(m) + ", d = " +
                      std::to_string(d) + ")"));
  b.upload(Q, q.data());
  b.upload(K, k.data());
  b.upload(V, v.data());
  const auto [gx, gy] = grid(ceilDiv(n, k_coop_rows), ctx.limits(), "dense attention");
  const CoopPush push{u32(n), u32(m), u32(d), u32(d), options.causal ? 1u : 0u,
                      static_cast<std::int32_t>(std::clamp<Index>(options.causal_offset, -n, m)),
                      options.scale > 0 ? options.scale : 1.0f / std::sqrt(float(d)), gx};
  const vk::Pipeline& pipeline =
      ctx.pipeline({d == 64 ? "attention_dense_coopmat_d64" : "attention_dense_coopmat_d128", 6, sizeof(CoopPush), {},
                    32});
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)
      for (auto out : {O, L, F}) rec.fill(b[out], k_nan_word);
    rec.dispatch(pipeline, {&b[Q], &b[K], &b[V], &b[O], &b[L], &b[F]}, push, gx, gy);
  });
  AttentionOutput result{Matrix(n, d), Vector(n)};
  b[O].download(result.out.data(), b.bytes(O));
  b[L].download(result.lse.data(), b.bytes(L));
  std::vector<std::uint32_t> flags(static_cast<size_t>(n));
  b[F].download(flags.data(), b.bytes(F));
  fixFlaggedRows(q, k, v, options, flags, 3u, result);
  last_dense_dispatches_ = 1;
  last_dense_path_ = "fp16-coopmat";
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
  if (n > k_max_tokens || m > k_max_tokens || kk > k_max_tokens)
    throw UserError("matmul: a dimension exceeds the GPU kernel's limit of " + std::to_string(k_max_tokens));
  CallBuffers buf(ctx);
  const auto A = buf.floats(n, kk, "matmul operand A"), B = buf.floats(b.rows(), b.cols(), "matmul operand B");
  const auto C = buf.floats(n, m, "matmul result", vk::BufferUse::HostRead);
  notePeak(buf.allocate("matmul (" + std::to_string(n) + "×" + std::to_string(kk) + " by " + std::to_string(kk) + "×" +
                        std::to_string(m) + ")"));
  buf.upload(A, a.data());
  buf.upload(B, b.data());
  const vk::Pipeline& pipeline = ctx.pipeline({"matmul", 3, sizeof(MatmulPush), {}});
  const Index gx = (m + 15) / 16, gy = (n + 15) / 16;
  if (gx > ctx.limits().max_workgroup_count[0] || gy > ctx.limits().max_workgroup_count[1])
    throw UserError("matmul: the result is too large for one dispatch on this GPU; use a smaller input");
  // The inner dimension in one dispatch, or (where the device limits loop iterations) in several that
  // accumulate into C.
  // Every dispatch but the last starts and ends on a tile boundary (matmulDepthPerDispatch is whole tiles).
  Index depth = matmulDepthPerDispatch(ctx.limits()) > 0 ? matmulDepthPerDispatch(ctx.limits()) : kk;
  if (options_.matmul_depth_per_dispatch > 0 && options_.matmul_depth_per_dispatch < depth)
    depth = std::max(k_matmul_tile, options_.matmul_depth_per_dispatch / k_matmul_tile * k_matmul_tile);
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
    if (options_.poison_outputs) rec.fill(buf[C], k_nan_word);
    rec.dispatchEach(pipeline, {&buf[A], &buf[B], &buf[C]}, std::span<const MatmulPush>(pushes),
                     static_cast<std::uint32_t>(gx), static_cast<std::uint32_t>(gy));
  });
  Matrix c(n, m);
  buf[C].download(c.data(), buf.bytes(C));
  return c;
}

Matrix VulkanBackend::sparseMatmul(const attn::SparseMatrix& a, const Matrix& x) {
  attn::checkSparseMatrix(a, x.rows(), "sparse matmul");  // the CPU backend's errors, before anything is read
  return guarded([&] { return sparseMatmulGpu(a, x); }, [&] { return onCpu([&](CpuBackend& c) { return c.sparseMatmul(a, x); }); });
}

Matrix VulkanBackend::sparseMatmulGpu(const attn::SparseMatrix& a, const Matrix& x) {
  vk::Context& ctx = *context_;
  const Index rows = a.rows, k = x.cols(), nnz = a.nnz();
  if (rows == 0 || k == 0) return Matrix(rows, k);
  if (nnz == 0) return Matrix::Zero(rows, k);
  if (rows > k_max_tokens || x.rows() > k_max_tokens || k > k_max_tokens || nnz > (Index(1) << 31) ||
      x.rows() * k >= (Index(1) << 32))
    throw UserError("sparse matmul: " + std::to_string(nnz) + " entries over " + std::to_string(rows) + " rows by a " +
                    std::to_string(x.rows()) + "×" + std::to_string(k) + " matrix exceed the GPU kernel's limits");
  CallBuffers b(ctx);
  const auto R = b.words(rows + 1, "the sparse matrix's row offsets"), C = b.words(nnz, "the sparse matrix's columns");
  const auto V = b.floats(nnz, 1, "the sparse matrix's values"), X = b.floats(x.rows(), k, "the dense operand");
  const auto O = b.floats(rows, k, "the sparse product", vk::BufferUse::HostRead);
  notePeak(b.allocate("sparse matmul (" + std::to_string(rows) + " rows, " + std::to_string(nnz) + " entries, " +
                      std::to_string(k) + " columns)"));
  std::vector<std::uint32_t> row_ptr(static_cast<size_t>(rows + 1));
  Index longest = 0;
  for (Index i = 0; i <= rows; ++i) row_ptr[size_t(i)] = u32(a.row_ptr[size_t(i)]);
  for (Index i = 0; i < rows; ++i) longest = std::max(longest, a.row_ptr[size_t(i + 1)] - a.row_ptr[size_t(i)]);
  b.upload(R, row_ptr.data());
  b.upload(C, a.col.data());
  b.upload(V, a.value.data());
  b.upload(X, x.data());
  const vk::Pipeline& pipeline = ctx.pipeline({"spmm", 5, sizeof(SpmmPush), {}});
  const auto [gx, gy] = grid(rows, ctx.limits(), "sparse matmul");
  Index per_dispatch = spmmEntriesPerDispatch(k, ctx.limits());
  if (options_.sparse_entries_per_dispatch > 0) per_dispatch = std::min(per_dispatch, options_.sparse_entries_per_dispatch);
  const auto parts = splitEntries(std::max<Index>(longest, 1), std::max<Index>(1, per_dispatch), 1);
  std::vector<SpmmPush> pushes;
  for (const DispatchSlice& sl : parts) pushes.push_back({u32(rows), u32(k), gx, sl.begin, sl.end, sl.phase});
  last_split_dispatches_ = Index(parts.size());
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs) rec.fill(b[O], k_nan_word);
    rec.dispatchEach(pipeline, {&b[R], &b[C], &b[V], &b[X], &b[O]}, std::span<const SpmmPush>(pushes), gx, gy);
  });
  Matrix out(rows, k);
  b[O].download(out.data(), b.bytes(O));
  return out;
}

// ---- shared helpers of the primitives below ---------------------------------------------------------

namespace {

constexpr std::uint32_t k_wg = 64;  // workgroup size of the kernels below (local_size_x = 64)
constexpr Index k_max_sparse_dim = 256;  // d and dv attention_sparse.comp takes (DMAX, WG·OPT)
constexpr Index k_max_linear_dv = 256;   // dv attention_linear.comp takes (WMAX − 1)
constexpr Index k_linear_chunk = 64;    // C in attention_linear.comp

/// Budget of loop iterations per invocation, or "unlimited": 2^40, more than any call can ask for
/// (pixels and rows hold < 2^31 entries) and small enough that the arithmetic on it cannot overflow.
Index iterationBudget(const vk::DeviceLimits& limits) {
  return limits.max_loop_iterations == 0 ? Index(1) << 40 : loopBudget(limits);
}

using Slice = VulkanBackend::DispatchSlice;

}  // namespace

Index VulkanBackend::tileEntriesPerDispatch(Index r, const vk::DeviceLimits& limits) {
  // weights_tile.comp's loops per thread: one r-long dot product per entry (and the entry loop).
  return std::max<Index>(1, (iterationBudget(limits) - (k_wg + 8)) / (std::max<Index>(r, 0) + 4)) * k_wg;
}

Index VulkanBackend::sparseEntriesPerDispatch(Index d, const vk::DeviceLimits& limits) {
  // attention_sparse.comp's loops per 64-entry block (see loopBudget): the block loop, the dot
  // product, thread 0's two passes, the P·V loop; per dispatch the query load and margins.
  const Index per_block = 1 + (d + 2) + 2 * (k_wg + 2) + (k_wg + 2);
  return std::max<Index>(1, (iterationBudget(limits) - (ceilDiv(d, k_wg) + 2 + 16)) / per_block) * k_wg;
}

// ---- sparse attention -------------------------------------------------------------------------------

namespace {
struct SparsePush {
  std::uint32_t n, d, dv;
  float scale;
  std::uint32_t groups_x, entry_begin, entry_end, phase;
};
}  // namespace

AttentionOutput VulkanBackend::sparseAttention(const Matrix& q, const Matrix& k, const Matrix& v,
                                               const Pattern& pattern, float scale,
                                               const std::vector<float>* entry_bias) {
  last_sparse_path_ = "cpu";
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.sparseAttention(q, k, v, pattern, scale, entry_bias); }); };
  // Shapes and patterns are validated as the CPU backend does (same errors) by the CPU path itself
  // when it runs; here before the GPU path reads anything.
  if (q.cols() != k.cols() || k.rows() != v.rows() || pattern.rows != q.rows() || pattern.cols != k.rows() ||
      Index(pattern.row_ptr.size()) != q.rows() + 1 || (entry_bias && Index(entry_bias->size()) != pattern.nnz()))
    return cpu();  // throws the CPU backend's UserError
  if (Index(pattern.col.size()) < pattern.nnz())
    throw UserError("sparse attention: the pattern lists " + std::to_string(pattern.col.size()) +
                    " columns but its row offsets need " + std::to_string(pattern.nnz()));
  for (Index i = 0; i < pattern.rows; ++i)
    if (pattern.row_ptr[size_t(i + 1)] < pattern.row_ptr[size_t(i)])
      throw UserError("sparse attention: the pattern's row offsets decrease at row " + std::to_string(i));
  for (Index e = 0; e < pattern.nnz(); ++e)
    if (pattern.col[size_t(e)] < 0 || pattern.col[size_t(e)] >= k.rows())
      throw UserError("sparse attention: pattern entry " + std::to_string(e) + " names key " +
                      std::to_string(pattern.col[size_t(e)]) + ", outside 0…" + std::to_string(k.rows() - 1));
  if (q.cols() < 1 || q.cols() > k_max_sparse_dim || v.cols() > k_max_sparse_dim) return cpu();
  last_sparse_path_ = "index";
  if (!entry_bias && options_.sparse_tiles != SparseTiles::Never) {
    const DenseTiling tiling = denseTiling(q.cols(), v.cols(), context_->limits());
    if (tiling.ok && q.rows() > 0 && pattern.nnz() > 0) {
      TileList tiles = tileList(pattern, tiling.rows, tiling.keys);
      if (options_.sparse_tiles == SparseTiles::Always || tiles.fill >= 0.5) {
        last_sparse_path_ = "tiles";
        return guarded([&] { return sparseTilesGpu(q, k, v, pattern, scale, tiling, tiles); }, cpu);
      }
    }
  }
  return guarded([&] { return sparseGpu(q, k, v, pattern, scale, entry_bias); }, cpu);
}

VulkanBackend::TileList VulkanBackend::tileList(const Pattern& pattern, std::uint32_t rows, std::uint32_t keys) {
  TileList t;
  const Index n = pattern.rows, groups = ceilDiv(n, rows);
  t.ptr.reserve(size_t(groups + 1));
  t.ptr.push_back(0);
  std::vector<Index> slot(size_t(ceilDiv(std::max<Index>(pattern.cols, 1), keys)), -1);  // tile → list position
  std::vector<Index> used;
  Index pairs = 0;  // (row, key) pairs inside the listed tiles and the matrix
  for (Index g = 0; g < groups; ++g) {
    const Index first = Index(t.col.size());
    const Index r0 = g * rows, r1 = std::min(n, r0 + rows);
    for (Index i = r0; i < r1; ++i)
      for (Index e = pattern.row_ptr[size_t(i)]; e < pattern.row_ptr[size_t(i + 1)]; ++e) {
        const Index j = pattern.col[size_t(e)], tile = j / keys;
        Index& pos = slot[size_t(tile)];
        if (pos < 0) {
          pos = Index(t.col.size());
          t.col.push_back(std::uint32_t(tile));
          t.mask.resize(t.mask.size() + rows, 0);
          used.push_back(tile);
          pairs += (r1 - r0) * std::min<Index>(keys, pattern.cols - tile * keys);
        }
        t.mask[size_t(pos * rows + (i - r0))] |= std::uint64_t(1) << (j - tile * keys);
      }
    for (Index tile : used) slot[size_t(tile)] = -1;
    used.clear();
    t.longest = std::max(t.longest, Index(t.col.size()) - first);
    t.ptr.push_back(std::uint32_t(t.col.size()));
  }
  t.fill = double(pattern.nnz()) / double(std::max<Index>(1, pairs));
  return t;
}

AttentionOutput VulkanBackend::sparseTilesGpu(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern,
                                              float scale, const DenseTiling& tiling, const TileList& tiles) {
  vk::Context& ctx = *context_;
  const Index n = q.rows(), m = k.rows(), d = q.cols(), dv = v.cols();
  last_fixed_rows_ = 0;
  if (n > k_max_tokens || m > k_max_tokens || Index(tiles.col.size()) > (Index(1) << 31))
    throw UserError("sparse attention: the pattern exceeds the GPU kernel's limits");
  const Index entries = Index(tiles.col.size());  // ≥ 1: the pattern has entries
  CallBuffers b(ctx);
  const auto Q = b.floats(n, d, "the queries Q"), K = b.floats(m, d, "the keys K"), V = b.floats(m, dv, "the values V");
  const auto O = b.floats(n, dv, "the attention output", vk::BufferUse::HostRead);
  const auto L = b.floats(n, 1, "the row normalisers", vk::BufferUse::HostRead);
  const auto F = b.floats(n, 1, "the row flags", vk::BufferUse::HostRead);
  const auto S = b.floats(n, k_row_state_bytes / Index(sizeof(float)), "the row states");
  const auto P = b.words(Index(tiles.ptr.size()), "the tile list offsets");
  const auto C = b.words(entries, "the tile list");
  const auto M = b.elements(Index(tiles.mask.size()), 8, "the tile masks");
  notePeak(b.allocate("sparse attention (N = " + std::to_string(n) + ", " + std::to_string(entries) + " key tiles)"));
  b.upload(Q, q.data());
  b.upload(K, k.data());
  b.upload(V, v.data());
  b.upload(P, tiles.ptr.data());
  b.upload(C, tiles.col.data());
  b.upload(M, tiles.mask.data());

  const vk::Pipeline& pipeline =
      ctx.pipeline({"attention_dense_tiles", 10u, sizeof(DensePush),
                    {tiling.rows * tiling.threads_per_row, tiling.rows, tiling.keys, tiling.d_capacity,
                     tiling.dv_capacity, tiling.threads_per_row}});
  const auto [gx, gy] = grid(ceilDiv(n, tiling.rows), ctx.limits(), "sparse attention");
  DensePush push{};
  push.n = u32(n), push.m = u32(m), push.d = u32(d), push.dv = u32(dv), push.causal = 0, push.causal_offset = 0;
  push.scale = scale > 0 ? scale : 1.0f / std::sqrt(float(d));
  push.groups_x = gx;
  // The tile lists in one dispatch or, where the device limits loop iterations, in several.
  Index per_dispatch = tiling.keys_per_dispatch > 0 ? tiling.keys_per_dispatch / tiling.keys : tiles.longest;
  if (options_.sparse_entries_per_dispatch > 0)
    per_dispatch = std::min(per_dispatch, std::max<Index>(1, options_.sparse_entries_per_dispatch / tiling.keys));
  const auto parts = splitEntries(tiles.longest, std::max<Index>(1, per_dispatch), 1);
  std::vector<DensePush> pushes;
  for (const Slice& sl : parts) {
    DensePush p = push;
    p.key_begin = sl.begin, p.key_end = sl.end, p.phase = sl.phase;
    pushes.push_back(p);
  }
  last_split_dispatches_ = Index(parts.size());
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)
      for (auto out : {O, L, F, S}) rec.fill(b[out], k_nan_word);
    rec.dispatchEach(pipeline, {&b[Q], &b[K], &b[V], &b[O], &b[L], &b[F], &b[S], &b[P], &b[C], &b[M]},
                     std::span<const DensePush>(pushes), gx, gy);
  });
  AttentionOutput result{Matrix(n, dv), Vector(n)};
  b[O].download(result.out.data(), b.bytes(O));
  b[L].download(result.lse.data(), b.bytes(L));
  std::vector<std::uint32_t> flags(static_cast<size_t>(n));
  b[F].download(flags.data(), b.bytes(F));
  fixSparseRows(q, k, v, pattern, scale, nullptr, flags, result);
  return result;
}

AttentionOutput VulkanBackend::sparseGpu(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern,
                                         float scale, const std::vector<float>* entry_bias) {
  vk::Context& ctx = *context_;
  const Index n = q.rows(), m = k.rows(), d = q.cols(), dv = v.cols(), nnz = pattern.nnz();
  AttentionOutput result{Matrix::Zero(n, dv), Vector::Constant(n, -std::numeric_limits<float>::infinity())};
  last_fixed_rows_ = 0;
  if (n == 0 || nnz == 0 || dv == 0) {
    if (dv == 0 && nnz > 0) return onCpu([&](CpuBackend& c) { return c.sparseAttention(q, k, v, pattern, scale, entry_bias); });
    return result;
  }
  if (n > k_max_tokens || m > k_max_tokens || nnz > (Index(1) << 31))
    throw UserError("sparse attention: " + std::to_string(nnz) + " pattern entries over " + std::to_string(n) +
                    " rows exceed the GPU kernel's limits");
  const bool has_bias = entry_bias != nullptr;
  CallBuffers b(ctx);
  const auto Q = b.floats(n, d, "the queries Q"), K = b.floats(m, d, "the keys K"), V = b.floats(m, dv, "the values V");
  const auto R = b.words(n + 1, "the pattern's row offsets"), C = b.words(nnz, "the pattern's columns");
  const auto O = b.floats(n, dv, "the attention output", vk::BufferUse::HostRead);
  const auto L = b.floats(n, 1, "the row normalisers", vk::BufferUse::HostRead);
  const auto F = b.floats(n, 1, "the row flags", vk::BufferUse::HostRead);
  const auto S = b.floats(n, k_row_state_bytes / Index(sizeof(float)), "the row states");
  const auto B = has_bias ? b.floats(nnz, 1, "the pattern's logit bias") : 0;
  notePeak(b.allocate("sparse attention (N = " + std::to_string(n) + ", " + std::to_string(nnz) + " pairs)"));
  b.upload(Q, q.data());
  b.upload(K, k.data());
  b.upload(V, v.data());
  std::vector<std::uint32_t> row_ptr(static_cast<size_t>(n + 1));
  Index longest = 0;
  for (Index i = 0; i <= n; ++i) row_ptr[size_t(i)] = u32(pattern.row_ptr[size_t(i)]);
  for (Index i = 0; i < n; ++i) longest = std::max(longest, pattern.row_ptr[size_t(i + 1)] - pattern.row_ptr[size_t(i)]);
  b.upload(R, row_ptr.data());
  b.upload(C, pattern.col.data());  // nnz ≥ 1 here
  if (has_bias) b.upload(B, entry_bias->data());

  Index entries = sparseEntriesPerDispatch(d, ctx.limits());
  if (options_.sparse_entries_per_dispatch > 0) entries = std::min(entries, options_.sparse_entries_per_dispatch);
  const auto parts = splitEntries(longest, entries, k_wg);
  last_split_dispatches_ = Index(parts.size());
  const auto [gx, gy] = grid(n, ctx.limits(), "sparse attention");
  std::vector<SparsePush> pushes;
  for (const Slice& sl : parts)
    pushes.push_back({u32(n), u32(d), u32(dv), scale > 0 ? scale : 1.0f / std::sqrt(float(d)), gx, sl.begin, sl.end,
                      sl.phase});
  const vk::Pipeline& pipeline =
      ctx.pipeline({has_bias ? "attention_sparse_bias" : "attention_sparse", has_bias ? 10u : 9u, sizeof(SparsePush), {}});
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)
      for (auto out : {O, L, F, S}) rec.fill(b[out], k_nan_word);
    if (has_bias)
      rec.dispatchEach(pipeline, {&b[Q], &b[K], &b[V], &b[R], &b[C], &b[O], &b[L], &b[F], &b[S], &b[B]},
                       std::span<const SparsePush>(pushes), gx, gy);
    else
      rec.dispatchEach(pipeline, {&b[Q], &b[K], &b[V], &b[R], &b[C], &b[O], &b[L], &b[F], &b[S]},
                       std::span<const SparsePush>(pushes), gx, gy);
  });
  b[O].download(result.out.data(), b.bytes(O));
  b[L].download(result.lse.data(), b.bytes(L));
  std::vector<std::uint32_t> flags(static_cast<size_t>(n));
  b[F].download(flags.data(), b.bytes(F));
  fixSparseRows(q, k, v, pattern, scale, entry_bias, flags, result);
  return result;
}

void VulkanBackend::fixSparseRows(const Matrix& q, const Matrix& k, const Matrix& v, const Pattern& pattern, float scale,
                                  const std::vector<float>* entry_bias, const std::vector<std::uint32_t>& flags,
                                  AttentionOutput& result) {
  const Index n = q.rows(), m = k.rows();
  const bool has_bias = entry_bias != nullptr;
  // Rows with NaN or +inf logits: the CPU backend computes them (in double, as it defines them).
  for (Index i = 0; i < n; ++i) {
    const std::uint32_t f = flags[size_t(i)];
    if (f == 0) continue;
    if (f > 3u) throw std::logic_error("the sparse attention kernel left the flags of row " + std::to_string(i) + " unwritten");
    const Index e0 = pattern.row_ptr[size_t(i)], e1 = pattern.row_ptr[size_t(i + 1)];
    Pattern one;
    one.rows = 1;
    one.cols = m;
    one.row_ptr = {0, e1 - e0};
    one.col.assign(pattern.col.begin() + e0, pattern.col.begin() + e1);
    std::vector<float> one_bias;
    if (has_bias) one_bias.assign(entry_bias->begin() + e0, entry_bias->begin() + e1);
    const AttentionOutput row = cpu_->sparseAttention(q.row(i), k, v, one, scale, has_bias ? &one_bias : nullptr);
    result.out.row(i) = row.out.row(0);
    result.lse(i) = row.lse(0);
    ++last_fixed_rows_;
  }
}

// ---- feature maps -----------------------------------------------------------------------------------

namespace {
struct FeaturePush {
  std::uint32_t n, d, m, cols, map, mode, shift;
  float input_scale;
  std::uint32_t groups_x;
};
constexpr std::uint32_t k_mode_map = 0, k_mode_row_max = 1, k_mode_all_max = 2, k_mode_apply = 3;
}  // namespace

Matrix VulkanBackend::featureMap(const Matrix& x, const FeatureMapOptions& options) {
  checkFeatureMap(x, options);
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.featureMap(x, options); }); };
  const Index n = x.rows(), d = x.cols(), cols = featureCount(options, d);
  if (n == 0 || cols == 0 || d == 0) return cpu();  // nothing to compute (or constant features)
  const Index m = options.map == FeatureMap::EluPlusOne ? d : options.projection->rows();
  const Index budget = iterationBudget(context_->limits());
  // feature_map.comp's loops: 2d per entry (projection, norm), m per row maximum, n/64 for the global one.
  if (2 * (d + 2) + 8 > budget || m + 4 > budget || ceilDiv(n, k_wg) + k_wg + 8 > budget) return cpu();
  return guarded([&] { return featureMapGpu(x, options); }, cpu);
}

Matrix VulkanBackend::featureMapGpu(const Matrix& x, const FeatureMapOptions& options) {
  vk::Context& ctx = *context_;
  const Index n = x.rows(), d = x.cols(), cols = featureCount(options, d);
  const bool random = options.map != FeatureMap::EluPlusOne;
  const Index m = random ? options.projection->rows() : d;
  const bool shifted = options.map == FeatureMap::PositiveRandom && options.shift != FeatureShift::None;
  CallBuffers b(ctx);
  const auto X = b.floats(n, d, "the feature map's inputs");
  const auto W = random ? b.floats(m, d, "the random features") : b.floats(1, 1, "the random features (none)");
  const auto P = b.floats(n, cols, "the features", vk::BufferUse::HostRead);
  const auto M = b.floats(n + 1, 1, "the row maxima");
  notePeak(b.allocate("feature map (" + std::to_string(n) + "×" + std::to_string(cols) + ")"));
  b.upload(X, x.data());
  if (random) b.upload(W, options.projection->data());
  const vk::Pipeline& pipeline = ctx.pipeline({"feature_map", 4, sizeof(FeaturePush), {}});
  FeaturePush push{u32(n), u32(d), u32(m), u32(cols), static_cast<std::uint32_t>(options.map), k_mode_map,
                   static_cast<std::uint32_t>(shifted ? options.shift : FeatureShift::None), options.input_scale, 0};
  const auto [ex, ey] = grid(ceilDiv(n * cols, k_wg), ctx.limits(), "the feature map");
  const auto [rx, ry] = grid(ceilDiv(n, k_wg), ctx.limits(), "the feature map");
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)
      for (auto out : {P, M}) rec.fill(b[out], k_nan_word);
    const std::initializer_list<const vk::Buffer*> bound = {&b[X], &b[W], &b[P], &b[M]};
    FeaturePush p = push;
    p.groups_x = ex;
    rec.dispatch(pipeline, bound, p, ex, ey);
    if (!shifted) return;
    p.mode = k_mode_row_max;
    p.groups_x = rx;
    rec.dispatch(pipeline, bound, p, rx, ry);
    if (options.shift == FeatureShift::Global) {
      p.mode = k_mode_all_max;
      p.groups_x = 1;
      rec.dispatch(pipeline, bound, p, 1, 1);
    }
    p.mode = k_mode_apply;
    p.groups_x = ex;
    rec.dispatch(pipeline, bound, p, ex, ey);
  });
  Matrix phi(n, cols);
  b[P].download(phi.data(), b.bytes(P));
  return phi;
}

// ---- linear attention -------------------------------------------------------------------------------

namespace {
struct LinearPush {
  std::uint32_t n, m, f, dv, causal, mode, chunks, chunk_begin, chunk_end, groups_x;
};
constexpr std::uint32_t k_mode_chunk_state = 0, k_mode_scan = 1, k_mode_output = 2;
}  // namespace

Matrix VulkanBackend::linearAttention(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) {
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.linearAttention(phi_q, phi_k, v, causal); }); };
  const Index n = phi_q.rows(), m = phi_k.rows(), f = phi_q.cols(), dv = v.cols();
  if (phi_q.cols() != phi_k.cols() || phi_k.rows() != v.rows() || (causal && m != n)) return cpu();  // its errors
  if (n == 0 || m == 0 || f == 0 || dv == 0 || dv > k_max_linear_dv) return cpu();
  // attention_linear.comp's loops: the output's f-long dot products per column (W/64 columns a thread),
  // its own chunk's keys, the local weights; the scan's chunk loop is split across dispatches.
  const Index w = dv + 1;
  if (f + 2 + ceilDiv(w, k_wg) * (f + k_linear_chunk + 6) + 16 > iterationBudget(context_->limits())) return cpu();
  return guarded([&] { return linearGpu(phi_q, phi_k, v, causal); }, cpu);
}

Matrix VulkanBackend::linearGpu(const Matrix& phi_q, const Matrix& phi_k, const Matrix& v, bool causal) {
  vk::Context& ctx = *context_;
  const Index n = phi_q.rows(), m = phi_k.rows(), f = phi_q.cols(), dv = v.cols(), w = dv + 1;
  if (n > k_max_tokens || m > k_max_tokens) throw UserError("linear attention: too many tokens for the GPU kernel");
  const Index chunks = ceilDiv(m, k_linear_chunk);
  const Index fw = checkedMul(f, w, "linear attention state");
  CallBuffers b(ctx);
  const auto Q = b.floats(n, f, "the query features φ(Q)"), K = b.floats(m, f, "the key features φ(K)");
  const auto V = b.floats(m, dv, "the values V"), S = b.floats(chunks + 1, fw, "the chunk states of linear attention");
  const auto O = b.floats(n, dv, "the attention output", vk::BufferUse::HostRead);
  notePeak(b.allocate("linear attention (N = " + std::to_string(n) + ", " + std::to_string(f) + " features, dv = " +
                      std::to_string(dv) + ")"));
  b.upload(Q, phi_q.data());
  b.upload(K, phi_k.data());
  b.upload(V, v.data());
  const vk::Pipeline& pipeline = ctx.pipeline({"attention_linear", 5, sizeof(LinearPush), {}});
  const LinearPush base{u32(n), u32(m), u32(f), u32(dv), causal ? 1u : 0u, k_mode_chunk_state, u32(chunks), 0, 0, 0};
  const auto [cx, cy] = grid(ceilDiv(chunks * fw, k_wg), ctx.limits(), "linear attention");
  const auto [sx, sy] = grid(ceilDiv(fw, k_wg), ctx.limits(), "linear attention");
  const auto [ox, oy] = grid(n, ctx.limits(), "linear attention");
  Index scan_chunks = std::max<Index>(1, iterationBudget(ctx.limits()) - 16);
  if (options_.linear_chunks_per_dispatch > 0) scan_chunks = std::min(scan_chunks, options_.linear_chunks_per_dispatch);
  const auto scan = splitEntries(chunks, scan_chunks, 1);
  last_split_dispatches_ = Index(scan.size());
  std::vector<LinearPush> scan_pushes;
  for (const Slice& sl : scan) {
    LinearPush p = base;
    p.mode = k_mode_scan;
    p.chunk_begin = sl.begin;
    p.chunk_end = std::min<std::uint32_t>(sl.end, u32(chunks));
    p.groups_x = sx;
    scan_pushes.push_back(p);
  }
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs)
      for (auto out : {O, S}) rec.fill(b[out], k_nan_word);
    const std::initializer_list<const vk::Buffer*> bound = {&b[Q], &b[K], &b[V], &b[S], &b[O]};
    LinearPush p = base;
    p.groups_x = cx;
    rec.dispatch(pipeline, bound, p, cx, cy);
    rec.dispatchEach(pipeline, bound, std::span<const LinearPush>(scan_pushes), sx, sy);
    p.mode = k_mode_output;
    p.groups_x = ox;
    rec.dispatch(pipeline, bound, p, ox, oy);
  });
  Matrix out(n, dv);
  b[O].download(out.data(), b.bytes(O));
  return out;
}

// ---- hashing and nearest-centroid assignment --------------------------------------------------------

namespace {
struct AssignPush {
  std::uint32_t n, d, count, groups_x;
};
}  // namespace

std::vector<std::int32_t> VulkanBackend::hashRotations(const Matrix& x, const Matrix& rotations) {
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.hashRotations(x, rotations); }); };
  if (x.cols() != rotations.rows() || x.rows() == 0 || x.cols() == 0 || rotations.cols() == 0) return cpu();
  if (ceilDiv(rotations.cols(), k_wg) * (x.cols() + 4) + k_wg + 8 > iterationBudget(context_->limits())) return cpu();
  return guarded([&] { return assignGpu(x, rotations, false); }, cpu);
}

std::vector<std::int32_t> VulkanBackend::nearestCentroid(const Matrix& x, const Matrix& centroids) {
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.nearestCentroid(x, centroids); }); };
  if (x.cols() != centroids.cols() || x.rows() == 0 || x.cols() == 0 || centroids.rows() == 0) return cpu();
  if (ceilDiv(centroids.rows(), k_wg) * (x.cols() + 4) + k_wg + 8 > iterationBudget(context_->limits())) return cpu();
  return guarded([&] { return assignGpu(x, centroids, true); }, cpu);
}

std::vector<std::int32_t> VulkanBackend::assignGpu(const Matrix& x, const Matrix& p, bool centroid) {
  vk::Context& ctx = *context_;
  const Index n = x.rows(), d = x.cols(), count = centroid ? p.rows() : p.cols();
  if (n > k_max_tokens || count > k_max_tokens) throw UserError("assignment: too many rows for the GPU kernel");
  const std::string what = centroid ? "nearest-centroid assignment" : "hashing";
  CallBuffers b(ctx);
  const auto X = b.floats(n, d, "the points to assign");
  const auto P = b.floats(p.rows(), p.cols(), centroid ? "the centroids" : "the rotations");
  const auto O = b.words(n, "the assignments", vk::BufferUse::HostRead);
  notePeak(b.allocate(what + " (" + std::to_string(n) + " rows)"));
  b.upload(X, x.data());
  b.upload(P, p.data());
  const auto [gx, gy] = grid(n, ctx.limits(), what.c_str());
  const vk::Pipeline& pipeline =
      ctx.pipeline({centroid ? "nearest_centroid" : "hash_rotations", 3, sizeof(AssignPush), {}});
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs) rec.fill(b[O], 0x7fffffffu);  // not a valid assignment
    rec.dispatch(pipeline, {&b[X], &b[P], &b[O]}, AssignPush{u32(n), u32(d), u32(count), gx}, gx, gy);
  });
  std::vector<std::int32_t> out(static_cast<size_t>(n));
  b[O].download(out.data(), n * Index(sizeof(std::int32_t)));
  const Index labels = centroid ? count : 2 * count;
  for (Index i = 0; i < n; ++i)
    if (out[size_t(i)] < 0 || out[size_t(i)] >= labels)
      throw std::logic_error(what + ": the kernel left row " + std::to_string(i) + " unassigned");
  return out;
}

// ---- weight tiles -----------------------------------------------------------------------------------

namespace {
struct TilePush {
  std::uint32_t r, m, kind;
  float scale;
  std::uint32_t causal;
  std::int32_t causal_offset;
  std::uint32_t mask_self, pooling, out_rows, out_cols, groups_x, entry_begin, entry_end, phase;
};
}  // namespace

Matrix VulkanBackend::weightTile(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) {
  auto cpu = [&] { return onCpu([&](CpuBackend& c) { return c.weightTile(kernel, rows, cols, out, pooling); }); };
  if (!kernel.a || !kernel.b || kernel.a->cols() != kernel.b->cols() || kernel.row_term.size() != kernel.a->rows())
    throw UserError("weight tile: the weight kernel's factors do not fit together");
  const Index r = kernel.a->cols();
  if (r == 0 || out.rows <= 0 || out.cols <= 0) return cpu();
  return guarded([&] { return weightTileGpu(kernel, rows, cols, out, pooling); }, cpu);
}

Matrix VulkanBackend::weightTileGpu(const WeightKernel& kernel, Range rows, Range cols, TileSize out, Pooling pooling) {
  vk::Context& ctx = *context_;
  const Index n = kernel.a->rows(), m = kernel.b->rows(), r = kernel.a->cols();
  rows.begin = std::clamp<Index>(rows.begin, 0, n);
  rows.end = std::clamp<Index>(rows.end, rows.begin, n);
  cols.begin = std::clamp<Index>(cols.begin, 0, m);
  cols.end = std::clamp<Index>(cols.end, cols.begin, m);
  Matrix tile = Matrix::Zero(out.rows, out.cols);
  if (rows.size() == 0 || cols.size() == 0) return tile;
  if (n > k_max_tokens || m > k_max_tokens) throw UserError("weight tile: too many tokens for the GPU kernel");
  std::vector<Index> rs, re, cs, ce;
  tilePixelSpans(rows.size(), out.rows, rs, re);
  tilePixelSpans(cols.size(), out.cols, cs, ce);
  std::vector<std::uint32_t> rspan(size_t(2 * out.rows)), cspan(size_t(2 * out.cols));
  Index tallest = 0, widest = 0;
  for (Index p = 0; p < out.rows; ++p) {
    rspan[size_t(2 * p)] = u32(rows.begin + rs[size_t(p)]);
    rspan[size_t(2 * p + 1)] = u32(rows.begin + re[size_t(p)]);
    tallest = std::max(tallest, re[size_t(p)] - rs[size_t(p)]);
  }
  for (Index p = 0; p < out.cols; ++p) {
    cspan[size_t(2 * p)] = u32(cols.begin + cs[size_t(p)]);
    cspan[size_t(2 * p + 1)] = u32(cols.begin + ce[size_t(p)]);
    widest = std::max(widest, ce[size_t(p)] - cs[size_t(p)]);
  }
  const Index most = tallest * widest;  // entries of the largest pixel
  const Index limit = options_.tile_pixel_entries_limit > 0 ? options_.tile_pixel_entries_limit : (Index(1) << 31) - 1;
  if (most > limit && tallest > 1 && widest > 1) {
    // Pixels the kernel cannot index in 32 bits (far zoomed out on millions of tokens): a tile twice as
    // fine in each direction, whose pixels nest exactly in these (tilePixelSpans: ⌊2p·len / 2out⌋ =
    // ⌊p·len / out⌋), pooled down here — the largest of four, or their mean weighted by area.
    const Index rows2 = std::min(2 * out.rows, rows.size()), cols2 = std::min(2 * out.cols, cols.size());
    const Matrix fine = weightTileGpu(kernel, rows, cols, TileSize{rows2, cols2}, pooling);
    std::vector<Index> frs, fre, fcs, fce;
    tilePixelSpans(rows.size(), rows2, frs, fre);
    tilePixelSpans(cols.size(), cols2, fcs, fce);
    std::vector<Index> row_of(static_cast<size_t>(rows2)),
        col_of(static_cast<size_t>(cols2));  // each fine pixel's coarse one
    for (Index p = 0, f = 0; f < rows2; ++f) {
      while (fre[size_t(f)] > re[size_t(p)]) ++p;
      row_of[size_t(f)] = p;
    }
    for (Index p = 0, f = 0; f < cols2; ++f) {
      while (fce[size_t(f)] > ce[size_t(p)]) ++p;
      col_of[size_t(f)] = p;
    }
    MatrixD acc =
        MatrixD::Constant(out.rows, out.cols, pooling == Pooling::Max ? -std::numeric_limits<double>::infinity() : 0.0);
    for (Index f = 0; f < rows2; ++f)
      for (Index g = 0; g < cols2; ++g) {
        double& x = acc(row_of[size_t(f)], col_of[size_t(g)]);
        if (pooling == Pooling::Max)
          x = std::max(x, double(fine(f, g)));
        else
          x += double(fine(f, g)) * double(fre[size_t(f)] - frs[size_t(f)]) * double(fce[size_t(g)] - fcs[size_t(g)]);
      }
    for (Index p = 0; p < out.rows; ++p)
      for (Index q = 0; q < out.cols; ++q)
        tile(p, q) =
            float(pooling == Pooling::Max
                      ? acc(p, q)
                      : acc(p, q) / (double(re[size_t(p)] - rs[size_t(p)]) * double(ce[size_t(q)] - cs[size_t(q)])));
    return tile;
  }
  if (most >= (Index(1) << 31))
    throw UserError("weight tile: one pixel would cover " + std::to_string(most) +
                    " entries; ask for more pixels or a smaller rectangle");
  CallBuffers b(ctx);
  const auto A = b.floats(n, r, "the weight factors A"), B = b.floats(m, r, "the weight factors B");
  const auto T = b.floats(n, 1, "the row terms");
  const auto RS = b.words(2 * out.rows, "the tile's row spans"), CS = b.words(2 * out.cols, "the tile's column spans");
  const auto O = b.floats(out.rows, out.cols, "the weight tile", vk::BufferUse::HostRead);
  notePeak(b.allocate("weight tile (" + std::to_string(out.rows) + "×" + std::to_string(out.cols) + " pixels)"));
  b.upload(A, kernel.a->data());
  b.upload(B, kernel.b->data());
  b.upload(T, kernel.row_term.data());
  b.upload(RS, rspan.data());
  b.upload(CS, cspan.data());
  Index entries = tileEntriesPerDispatch(r, ctx.limits());
  if (options_.tile_entries_per_dispatch > 0) entries = std::min(entries, options_.tile_entries_per_dispatch);
  const auto parts = splitEntries(most, entries, k_wg);
  last_split_dispatches_ = Index(parts.size());
  const auto [gx, gy] = grid(out.rows * out.cols, ctx.limits(), "the weight tile");
  std::vector<TilePush> pushes;
  for (const Slice& sl : parts)
    pushes.push_back({u32(r), u32(m), kernel.kind == WeightKernel::Kind::Softmax ? 0u : 1u, kernel.scale,
                      kernel.causal ? 1u : 0u,
                      static_cast<std::int32_t>(std::clamp<Index>(kernel.causal_offset, -n - 1, m + 1)),
                      kernel.mask_self ? 1u : 0u, pooling == Pooling::Max ? 0u : 1u, u32(out.rows), u32(out.cols), gx,
                      sl.begin, sl.end, sl.phase});
  const vk::Pipeline& pipeline = ctx.pipeline({"weights_tile", 6, sizeof(TilePush), {}});
  last_device_ms_ = ctx.submit([&](vk::Recorder& rec) {
    if (options_.poison_outputs) rec.fill(b[O], k_nan_word);
    rec.dispatchEach(pipeline, {&b[A], &b[B], &b[T], &b[RS], &b[CS], &b[O]}, std::span<const TilePush>(pushes), gx, gy);
  });
  b[O].download(tile.data(), b.bytes(O));
  return tile;
}

}  // namespace attn::gpu
