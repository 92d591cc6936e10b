// exact — softmax attention, the reference every mechanism is compared with:
// O = rowsoftmax(QKᵀ/√d [+ causal mask])·V, computed fused (N×N never materialised on the CPU).
#include <algorithm>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"

namespace attn::mech {
namespace {

// A long run goes in blocks of query rows (each ≈ 2^30 multiply-adds, a tenth of a second or so on a laptop's
// CPU; at most 64 blocks, as each block hands K and V to the backend again), so Ctrl+C or Cancel stops it
// within one block and a progress line can say how far it is.
constexpr double k_block_work = 0x1p30;
constexpr Index k_max_blocks = 64;

AttentionOutput attendInBlocks(const Inputs& in, const DenseAttentionOptions& o, Backend& backend, const RunOptions& options) {
  const Index n = in.n();
  const double work = double(n) * double(in.m()) * double(in.q.cols() + in.v.cols());
  if (work <= k_block_work) return backend.denseAttention(in.q, in.k, in.v, o);
  const Index blocks = std::min<Index>({n, k_max_blocks, Index(std::ceil(work / k_block_work))});
  const Index rows = (n + blocks - 1) / blocks;
  AttentionOutput a;
  a.out.resize(n, in.v.cols());
  a.lse.resize(n);
  for (Index i0 = 0; i0 < n; i0 += rows) {
    options.checkCancel();
    options.report("exact attention", double(i0) / double(n));
    const Index r = std::min(rows, n - i0);
    DenseAttentionOptions part = o;
    part.causal_offset = o.causal_offset + i0;  // row 0 of the block is query i0
    AttentionOutput block = backend.denseAttention(in.q.middleRows(i0, r), in.k, in.v, part);
    a.out.middleRows(i0, r) = block.out;
    a.lse.segment(i0, r) = block.lse;
  }
  options.report("exact attention", 1.0);
  return a;
}

class Exact final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "exact", "Exact softmax attention", "Vaswani et al. Attention Is All You Need", "1706.03762", 2017,
        Family::Reference, "O(N²·d)", CausalSupport::Yes,
        "Every query scores every key; softmax turns scores into weights over the values.", "", true};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }

  std::optional<ExactLimit> exactLimit(const Inputs&) const override { return ExactLimit{{}, 1e-5, "any setting (it is the reference)"}; }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const double pairs = options.causal ? double(s.n) * double(s.n + 1) / 2 : double(s.n) * double(s.m);
    r.flops = 2 * pairs * double(s.d + s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params&, Backend& backend, const RunOptions& options) const override {
    Result r;
    const float scale = defaultScale(in.q.cols());
    DenseAttentionOptions o;
    o.scale = scale;
    o.causal = options.causal;
    o.mask_self = in.mask_self;
    AttentionOutput a = timedStage(r.cost, options, "attend", [&] { return attendInBlocks(in, o, backend, options); });
    r.output = std::move(a.out);
    r.explanation.weights = denseSoftmaxWeights(std::make_shared<const Matrix>(in.q), std::make_shared<const Matrix>(in.k),
                                                scale, options.causal, std::move(a.lse), in.mask_self);
    const double n = double(in.n()), m = double(in.m());
    r.cost.scored_pairs = options.causal ? n * (n + 1) / 2 : n * m;
    if (in.mask_self) r.explanation.notes.push_back("self-attention is masked (shared-QK rule)");
    r.cost.flops = 2 * r.cost.scored_pairs * double(in.q.cols() + in.v.cols());
    r.cost.peak_bytes = backend.peakBytes() + in.n() * in.v.cols() * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeExact() { return std::make_shared<Exact>(); }
}  // namespace attn::mech
