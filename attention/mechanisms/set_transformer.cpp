// set-transformer — Lee et al. 2019 (arXiv 1810.00825), CATALOG.md #3: the induced set attention
// block. m inducing points I first attend to the set (H = softmax(s·I·Kᵀ)·V, m×dv), then the set
// attends to them: O = softmax(s·Q·Iᵀ)·H. With the feed-forward and normalisations left out (identity
// projections, CATALOG d), the effective matrix is A_eff = A_{X←I}·A_{I←X}: N×N, rank ≤ m,
// row-stochastic. Stand-in (CATALOG f): the learned inducing points are k-means centroids of the keys
// (Lloyd iterations on the backend's nearest-centroid assignment, seeded by the run's seed).
// A set function: no causal form.
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kmeans.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

class SetTransformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "set-transformer", "Set Transformer (ISAB)",
        "Lee et al. Set Transformer: A Framework for Attention-based Permutation-Invariant Neural Networks",
        "1810.00825", 2019, Family::Memory, "O(N·m·d)", CausalSupport::No,
        "m inducing points attend to the set, then the set attends to them: two N×m maps instead of N×N.",
        "Inducing points are k-means centroids of the keys (the paper learns them); no feed-forward between "
        "the two attentions.", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("inducing", "Inducing points m", "Points the set is summarised by (official default "
                           "32; the paper also uses 16).", 32, 1, 4096, true),
        ParamSpec::integer("iterations", "k-means iterations", "Lloyd iterations placing the inducing points.", 10,
                           0, 100),
    };
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), d = in.q.cols();
    const Index k = std::min(p.integer("inducing"), m);
    if (p.integer("inducing") > k) r.explanation.notes.push_back("inducing points clamped to " + std::to_string(k) + " (N)");
    // k-means of the keys: k distinct keys chosen by the seed, then Lloyd iterations.
    KMeans km = timedStage(r.cost, options, "k-means", [&] {
      return kmeans(in.k, k, p.integer("iterations"), options.seed, backend, options);
    });
    auto centroids = std::make_shared<Matrix>(std::move(km.centroids));
    std::vector<std::int32_t> label = std::move(km.label);
    const float scale = defaultScale(d);
    DenseAttentionOptions o;
    o.scale = scale;
    // I ← X, then X ← I.
    const AttentionOutput h = timedStage(r.cost, options, "inducing ← set",
                                         [&] { return backend.denseAttention(*centroids, in.k, in.v, o); });
    const AttentionOutput out = timedStage(r.cost, options, "set ← inducing",
                                           [&] { return backend.denseAttention(in.q, *centroids, h.out, o); });
    r.output = out.out;

    // A_eff = A_{X←I}·A_{I←X}: factored (a = A_{X←I}, b = A_{I←X}ᵀ), tiled on the backend.
    auto a1 = std::make_shared<Matrix>(n, k), a2t = std::make_shared<Matrix>(m, k);
    for (Index i = 0; i < n; ++i)
      for (Index c = 0; c < k; ++c) (*a1)(i, c) = std::exp(scale * in.q.row(i).dot(centroids->row(c)) - out.lse(i));
    for (Index c = 0; c < k; ++c)
      for (Index j = 0; j < m; ++j) (*a2t)(j, c) = std::exp(scale * centroids->row(c).dot(in.k.row(j)) - h.lse(c));
    auto kernel = std::make_shared<WeightKernel>();
    kernel->kind = WeightKernel::Kind::Linear;
    kernel->a = a1;
    kernel->b = a2t;
    kernel->row_term = Vector::Ones(n);
    r.explanation.weights = ImpliedWeights(std::move(kernel));
    r.explanation.groupings.push_back(Grouping::fromLabels("k-means clusters of the keys", label, std::int32_t(k)));
    r.explanation.special.push_back(TokenSet{"inducing points", "inducing", {}, {}, *centroids});
    const Index shown = std::min<Index>(m, 256);
    r.explanation.factors.push_back({"A(I←X)", "inducing points attending to the set, first " + std::to_string(shown) +
                                     " tokens", a2t->topRows(shown).transpose()});
    r.explanation.factors.push_back({"A(X←I)", "the set attending to the inducing points, first " +
                                     std::to_string(std::min<Index>(n, 256)) + " tokens", a1->topRows(std::min<Index>(n, 256))});
    r.explanation.notes.push_back("A_eff has rank ≤ m = " + std::to_string(k));
    r.cost.scored_pairs = double(k) * double(m) + double(n) * double(k);
    r.cost.flops = 2.0 * double(k) * double(m) * double(d + in.v.cols()) + 2.0 * double(n) * double(k) * double(d + in.v.cols()) +
                   double(p.integer("iterations") + 1) * 3.0 * double(m) * double(k) * double(d);
    r.cost.peak_bytes = backend.peakBytes() + (n + m) * k * Index(sizeof(float)) + n * in.v.cols() * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSetTransformer() { return std::make_shared<SetTransformer>(); }
}  // namespace attn::mech
