// set-transformer — Lee et al. 2018 (arXiv 1810.00825), CATALOG.md #3: the induced set attention
// block, ISAB_m(X) = MAB(X, H) with H = MAB(I, X). m inducing points I first attend to the set; their
// outputs H then serve as the second hop's keys AND values: the set attends to H, not to I.
// Linearised (one head; no residual, LayerNorm or rFF; the first hop's value/output maps the identity,
// so a row of H is a mix of the tokens and its key and value are that mix of K and V):
//   A = softmax(s·I·Kᵀ) (m×N),  H_K = A·K,  H_V = A·V,  O = softmax(s·Q·H_Kᵀ)·H_V,
// and the effective matrix is A_eff = softmax(s·Q·H_Kᵀ)·A: N×N, rank ≤ m, row-stochastic.
// Not softmax attention at any m: even at m = N (every key an inducing point) each row of H is a
// softmax average of the tokens, so the second hop reads blurred keys and values — a different
// operator (the paper's claim is that ISAB is a cheap replacement for SAB, not an approximation of it).
// Stand-in (CATALOG f): the learned inducing points are k-means centroids of the keys (Lloyd
// iterations on the backend's nearest-centroid assignment, seeded by the run's seed).
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
        "1810.00825", 2018, Family::Memory, "O(N·m·d)", CausalSupport::No,
        "m inducing points attend to the set; the set then attends to their outputs H: two N×m maps instead of "
        "N×N.",
        "Inducing points are k-means centroids of the keys (the paper learns them); one head, no residual, "
        "LayerNorm or feed-forward.",
        false,
        {"convention: both hops score the given keys K and the first hop's value and output maps are the "
         "identity, so H's keys and values are A(I←X)·K and A(I←X)·V"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("inducing", "Inducing points m", "Points the set is summarised by (the official "
                           "code's default is 32; its point-cloud script uses 16).", 32, 1, 4096, true),
        ParamSpec::integer("iterations", "k-means iterations", "Lloyd iterations placing the inducing points.", 10,
                           0, 100),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);                                                       // the output
    const double n = double(s.n), m = double(s.m), k = double(std::min(p.integer("inducing"), s.m));  // clamped at M
    const double iterations = double(p.integer("iterations"));
    // Both attention maps (N × k, M × k), K with V beside it, the k-means labels and centroids.
    r.add((n * k + m * k) * sizeof(float) * 2 + m * double(s.d + s.dv) * sizeof(float) +
              (iterations + 2) * m * sizeof(std::int32_t) + k * double(2 * s.d + s.dv) * sizeof(float) * 3,
          "the two attention maps (inducing × (N + M))", "inducing");
    r.flops = 2.0 * k * m * double(2 * s.d + s.dv) + 2.0 * n * k * double(s.d + s.dv) +
              (iterations + 1) * 3.0 * m * k * double(s.d);
    return r;
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
    const Index dv = in.v.cols();
    DenseAttentionOptions o;
    o.scale = scale;
    // I ← X: the inducing points read the set; each output row is a mix of the tokens, kept as its keys
    // and values (one pass over [K | V]).
    const AttentionOutput h = timedStage(r.cost, options, "inducing ← set", [&] {
      Matrix kv(m, d + dv);
      kv.leftCols(d) = in.k;
      kv.rightCols(dv) = in.v;
      return backend.denseAttention(*centroids, in.k, kv, o);
    });
    auto h_keys = std::make_shared<Matrix>(h.out.leftCols(d));
    const Matrix h_values = h.out.rightCols(dv);
    // X ← H: the set reads the inducing points' outputs (the paper's MAB(X, H): H as keys and values).
    const AttentionOutput out = timedStage(r.cost, options, "set ← H",
                                           [&] { return backend.denseAttention(in.q, *h_keys, h_values, o); });
    r.output = out.out;

    // A_eff = A(X←H)·A(I←X): factored (a = A(X←H), b = A(I←X)ᵀ), tiled on the backend.
    auto a1 = std::make_shared<Matrix>(n, k), a2t = std::make_shared<Matrix>(m, k);
    for (Index i = 0; i < n; ++i)
      for (Index c = 0; c < k; ++c) (*a1)(i, c) = std::exp(scale * in.q.row(i).dot(h_keys->row(c)) - out.lse(i));
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
    r.explanation.factors.push_back({"A(X←H)", "the set attending to the inducing points' outputs H, first " +
                                     std::to_string(std::min<Index>(n, 256)) + " tokens", a1->topRows(std::min<Index>(n, 256))});
    r.explanation.notes.push_back("A_eff has rank ≤ m = " + std::to_string(k));
    r.explanation.notes.push_back("not softmax attention at any m: each row of H is a softmax average of the tokens, "
                                  "so even at m = N the second hop reads blurred keys and values");
    r.cost.scored_pairs = double(k) * double(m) + double(n) * double(k);
    r.cost.flops = 2.0 * double(k) * double(m) * double(2 * d + dv) + 2.0 * double(n) * double(k) * double(d + dv) +
                   double(p.integer("iterations") + 1) * 3.0 * double(m) * double(k) * double(d);
    r.cost.peak_bytes = backend.peakBytes() + (n + m) * k * Index(sizeof(float)) + n * dv * Index(sizeof(float)) +
                        (m + k) * (d + dv) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSetTransformer() { return std::make_shared<SetTransformer>(); }
}  // namespace attn::mech
