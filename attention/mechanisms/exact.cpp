// exact — softmax attention, the reference every mechanism is compared with:
// O = rowsoftmax(QKᵀ/√d [+ causal mask])·V, computed fused (N×N never materialised on the CPU).
#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"

namespace attn::mech {
namespace {

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
    AttentionOutput a = timedStage(r.cost, options, "attend", [&] { return backend.denseAttention(in.q, in.k, in.v, o); });
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
