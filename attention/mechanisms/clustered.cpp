// clustered — Vyas, Katharopoulos, Fleuret 2020 (arXiv 2007.04825), CATALOG.md #36. Queries are hashed
// with B random hyperplanes (bits = sign(q·r_b + bias_b)) and grouped by k-means in Hamming space
// into C clusters; the centroid query of a cluster is the mean of its members.
//   clustered:    A^c = softmax(s·Q_cent·Kᵀ) (C×N); every member query reuses its centroid's row.
//   i-clustered:  per cluster, the top-k keys T_c of A^c and their mass m̂_c; a member query takes
//                 its own exact softmax over T_c scaled by m̂_c, and the centroid row elsewhere
//                 (rows still sum to 1).
// Nothing is learned (random planes, unsupervised k-means): no stand-in. Encoder only: no causal form.
// What a query sees (Vyas et al. §3.2–3.3): its row is the centroid's softmax over ALL keys (clustered),
// or that row with the top-k keys replaced by its own softmax over them (i-clustered); either way the
// output depends on every key, so the pattern holds all N×M pairs, tagged by which part gives the
// weight. Mass recall is then 1 by definition; the approximation shows in the weights (row TV).
#include <algorithm>
#include <functional>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/kmeans.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

class Clustered final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "clustered", "Clustered attention", "Vyas, Katharopoulos, Fleuret. Fast Transformers with Clustered "
        "Attention", "2007.04825", 2020, Family::ContentSparse, "O(N·C·d) (+ O(N·k·d) improved)", CausalSupport::No,
        "Group similar queries and compute one attention row per group; the improved form recomputes each "
        "query's attention on its group's top-k keys exactly.",
        "", true};
    return i;
  }
  /// i-clustered with every key in the top-k: m̂ = 1 and each query's row is its own softmax over all keys.
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"variant", "i-clustered"}, {"topk", std::to_string(std::max<Index>(in.m(), 1))}}, 1e-4,
                      "i-clustered with every key in the top-k (k = N)"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Variant", "clustered: members reuse the centroid's row; i-clustered: plus "
                          "exact attention on the centroid's top-k keys", {"clustered", "i-clustered"}, 0),
        ParamSpec::integer("clusters", "Clusters C",
                           "Query clusters (the paper approximates a pretrained BERT with 25).",
                           25, 1, 4096, true),
        ParamSpec::integer("bits", "Hash bits B",
                           "Random hyperplanes hashing the queries (fast-transformers: 32 in its classes, 63 "
                           "through its builder).",
                           32, 1, 256),
        ParamSpec::integer("iterations", "k-means iterations", "Lloyd iterations in Hamming space (default 10).",
                           10, 0, 100),
        ParamSpec::integer("topk", "Top-k keys", "i-clustered: keys per cluster recomputed exactly (default 32).",
                           32, 1, 1 << 20, true),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const double n = double(s.n), m = double(s.m), bits = double(p.integer("bits"));
    const double c = double(std::max<Index>(1, std::min(p.integer("clusters"), s.n)));  // clamped at N, as run() does
    const bool improved = p.choice("variant") == "i-clustered";
    const double topk = improved ? double(std::min(p.integer("topk"), s.m)) : 0.0;
    r.add(n * bits * 3 * sizeof(float), "the queries' hash codes (N × bits)", "bits");
    r.add(c * m * 3 * sizeof(float) + c * double(s.d + s.dv) * 2 * sizeof(float),
          "the centroids' attention rows (clusters × M)", "clusters");
    // Per cluster its top-k keys, per query the top-k pattern (grown by doubling) and the working rows.
    r.add(c * topk * sizeof(std::int32_t) + 2 * patternBytes(n * topk, n) + sparseWorkspaceBytes(topk, s) +
              n * double(s.d) * sizeof(float),
          "each query's top-k keys (topk × N)", "topk");
    r.add(allKeysPatternBytes(s, options), "the pattern shown (every pair, N × M)");
    r.flops = 2 * n * double(s.d) * bits + 2 * c * m * double(s.d + s.dv) + 2 * n * topk * double(s.d + s.dv) +
              double(p.integer("iterations") + 1) * 2 * n * c * bits;
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols();
    const Index bits = p.integer("bits");
    Index c = p.integer("clusters");
    if (c > n) {
      r.explanation.notes.push_back("clusters clamped to " + std::to_string(n) + " (the queries)");
      c = std::max<Index>(1, n);
    }
    const bool improved = p.choice("variant") == "i-clustered";
    const float scale = defaultScale(d);

    // Hash the queries to ±1 bit vectors, then k-means in Hamming space (majority-vote centroids).
    Rng rng(options.seed, 36);
    const Matrix planes = rng.gaussian(d, bits);
    const Matrix offsets = rng.gaussian(1, bits);
    Matrix code = timedStage(r.cost, options, "hash", [&] { return backend.matmul(in.q, planes, false); });
    for (Index i = 0; i < n; ++i)
      for (Index b = 0; b < bits; ++b) code(i, b) = code(i, b) + offsets(0, b) >= 0 ? 1.0f : -1.0f;
    KMeans km = timedStage(r.cost, options, "k-means", [&] {
      return kmeans(code, c, p.integer("iterations"), options.seed, backend, options, true,
                    [](Eigen::Ref<Eigen::RowVectorXf> mu) { mu = mu.unaryExpr([](float t) { return t >= 0 ? 1.0f : -1.0f; }); });
    });
    const std::vector<std::int32_t>& label = km.label;
    // Centroid queries: the mean of the member queries.
    Matrix centroid = Matrix::Zero(c, d);
    std::vector<Index> members(static_cast<size_t>(c), 0);
    for (Index i = 0; i < n; ++i) {
      centroid.row(label[size_t(i)]) += in.q.row(i);
      ++members[size_t(label[size_t(i)])];
    }
    for (Index k = 0; k < c; ++k)
      if (members[size_t(k)] > 0) centroid.row(k) /= float(members[size_t(k)]);
    DenseAttentionOptions o;
    o.scale = scale;
    const AttentionOutput central =
        timedStage(r.cost, options, "centroid attention", [&] { return backend.denseAttention(centroid, in.k, in.v, o); });

    auto gathered = std::make_shared<Matrix>(n, d);  // each query's centroid
    Vector row_term(n);
    for (Index i = 0; i < n; ++i) {
      gathered->row(i) = centroid.row(label[size_t(i)]);
      row_term(i) = -central.lse(label[size_t(i)]);
    }
    r.output.resize(n, dv);
    for (Index i = 0; i < n; ++i) r.output.row(i) = central.out.row(label[size_t(i)]);
    auto keys = std::make_shared<const Matrix>(in.k);

    if (!improved) {
      auto kernel = std::make_shared<WeightKernel>();
      kernel->kind = WeightKernel::Kind::Softmax;
      kernel->a = gathered;
      kernel->b = keys;
      kernel->scale = scale;
      kernel->row_term = row_term;
      r.explanation.weights = ImpliedWeights(std::move(kernel));
    } else {
      const Index topk = std::min(p.integer("topk"), m);
      // A^c and each cluster's top-k keys with their mass.
      const Matrix logits = timedStage(r.cost, options, "top-k", [&] { return backend.matmul(centroid, in.k, true); });
      auto top = std::make_shared<std::vector<std::vector<std::int32_t>>>(static_cast<size_t>(c));
      auto mass = std::make_shared<Vector>(Vector::Zero(c));
      Matrix rest = central.out;  // O_c minus the top-k part: what the centroid row contributes elsewhere
      std::vector<std::int32_t> idx(static_cast<size_t>(m));
      for (Index k = 0; k < c; ++k) {
        if (members[size_t(k)] == 0) continue;
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + topk, idx.end(),
                          [&](std::int32_t a, std::int32_t b) { return logits(k, a) > logits(k, b) || (logits(k, a) == logits(k, b) && a < b); });
        auto& t = (*top)[size_t(k)];
        t.assign(idx.begin(), idx.begin() + topk);
        std::sort(t.begin(), t.end());
        for (std::int32_t j : t) {
          const float a = std::exp(scale * logits(k, j) - central.lse(k));
          (*mass)(k) += a;
          rest.row(k) -= a * in.v.row(j);
        }
      }
      Pattern exact_part;
      exact_part.rows = n;
      exact_part.cols = m;
      exact_part.components = {"top-k exact"};
      exact_part.row_ptr.push_back(0);
      for (Index i = 0; i < n; ++i) {
        const auto& t = (*top)[size_t(label[size_t(i)])];
        exact_part.col.insert(exact_part.col.end(), t.begin(), t.end());
        exact_part.row_ptr.push_back(Index(exact_part.col.size()));
      }
      exact_part.component.assign(exact_part.col.size(), 0);
      const AttentionOutput own = timedStage(r.cost, options, "top-k attention", [&] {
        return backend.sparseAttention(in.q, in.k, in.v, exact_part, scale);
      });
      for (Index i = 0; i < n; ++i) {
        const Index k = label[size_t(i)];
        r.output.row(i) = (*mass)(k) * own.out.row(i) + rest.row(k);
      }
      auto q = std::make_shared<const Matrix>(in.q);
      auto lse_own = std::make_shared<const Vector>(own.lse);
      auto lbl = std::make_shared<const std::vector<std::int32_t>>(label);
      r.explanation.weights = ImpliedWeights(n, m, [q, keys, gathered, row_term, top, mass, lse_own, lbl, scale](Range rows, Range cols) {
        Matrix block = (gathered->middleRows(rows.begin, rows.size()) * keys->middleRows(cols.begin, cols.size()).transpose()) * scale;
        for (Index i = rows.begin; i < rows.end; ++i) {
          const Index k = (*lbl)[size_t(i)];
          auto row = block.row(i - rows.begin);
          row = (row.array() + row_term(i)).exp().matrix();
          for (std::int32_t j : (*top)[size_t(k)])
            if (j >= cols.begin && j < cols.end)
              row(j - cols.begin) = (*mass)(k) * std::exp(scale * q->row(i).dot(keys->row(j)) - (*lse_own)(i));
        }
        return block;
      });
      r.explanation.notes.push_back("top-" + std::to_string(topk) + " keys per cluster recomputed exactly");
      if (options.explain && n * m <= kMaxAllKeysPatternEntries) {
        r.explanation.pattern = allKeysPattern(n, m, {"top-k: own softmax × m̂", "elsewhere: centroid row"},
                                               [&](Index i, std::uint8_t* out) {
                                                 std::fill(out, out + m, std::uint8_t(1));
                                                 for (std::int32_t j : (*top)[size_t(label[size_t(i)])]) out[j] = 0;
                                               });
      }
    }
    if (!improved && options.explain && n * m <= kMaxAllKeysPatternEntries)
      r.explanation.pattern = allKeysPattern(n, m, {"centroid row (softmax over all keys)"},
                                             [m](Index, std::uint8_t* out) { std::fill(out, out + m, 0); });
    if (options.explain && n * m > kMaxAllKeysPatternEntries)
      r.explanation.notes.push_back("pattern not formed above " + std::to_string(kMaxAllKeysPatternEntries) +
                                    " pairs: every query's row depends on every key");
    r.explanation.groupings.push_back(Grouping::fromLabels("query clusters", label, std::int32_t(c)));
    for (size_t it = 0; it < km.history.size(); ++it) {
      auto view = std::make_shared<Explanation>();
      view->groupings.push_back(Grouping::fromLabels("query clusters", km.history[it], std::int32_t(c)));
      r.explanation.steps.push_back(Step{"k-means " + std::to_string(it), "Hamming-space clusters of the query codes",
                                         std::move(view)});
    }
    const Index shown = std::min<Index>(m, 512);
    Matrix central_rows(c, shown);
    for (Index k = 0; k < c; ++k)
      for (Index j = 0; j < shown; ++j) central_rows(k, j) = std::exp(scale * centroid.row(k).dot(in.k.row(j)) - central.lse(k));
    r.explanation.factors.push_back({"A^c", "the centroid attention rows, C×N (first " + std::to_string(shown) + " keys)",
                                     central_rows});
    r.explanation.special.push_back(TokenSet{"centroid queries", "centroid", {}, {}, centroid});
    r.cost.scored_pairs = double(c) * double(m) + (improved ? double(n) * double(std::min(p.integer("topk"), m)) : 0.0);
    r.cost.flops = 2 * double(n) * double(d) * double(bits) + 2 * double(c) * double(m) * double(d + dv) +
                   (improved ? 2 * double(n) * double(std::min(p.integer("topk"), m)) * double(d + dv) : 0.0) +
                   double(p.integer("iterations") + 1) * 2 * double(n) * double(c) * double(bits);
    r.cost.peak_bytes = backend.peakBytes() + (n * bits + c * m + 2 * n * d) * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeClustered() { return std::make_shared<Clustered>(); }
}  // namespace attn::mech
