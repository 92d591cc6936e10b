// smyrf — Daras, Kitaev, Odena, Dimakis 2020 (arXiv 2010.05315), CATALOG.md #42: asymmetric LSH with
// balanced clusters, a drop-in for pretrained attention. With M_Q = max‖q‖ and M_K = max‖k‖ the
// asymmetric transforms
//   F(q) = [q, 0, √(M_Q² + M_K² − ‖q‖²)],   G(k) = [k, √(M_Q² + M_K² − ‖k‖²), 0]
// give ‖F(q) − G(k)‖² = 2(M_Q² + M_K²) − 2·q·k, so large inner products become near neighbours. Each
// hash round projects F(Q) and G(K) on one random Gaussian direction, sorts queries and keys separately
// and cuts both sorted lists into L clusters of equal size; query cluster c attends to key cluster c.
// Rounds are united exactly (bucket engine): a pair that several hashes find counts once. The SMYRF code
// (giannisdaras/smyrf, smyrf/torch/attn.py) combines the hashes by their log-normalisers alone, so such
// a pair weighs once per hash: `pairs` = per-hash. Logits q·k/√d, as the code's BERT layers
// (norm_factor = √d; its BigGAN layers use q·k). Nothing is learned. No causal form (the sort sees every
// token).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/bucket_engine.h"
#include "attention/mechanisms/common.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

/// Balanced labels: the token at sorted rank r gets cluster ⌊r·L/count⌋ (sizes differ by at most 1).
std::vector<std::int32_t> balancedLabels(const Vector& projection, Index clusters) {
  const Index count = projection.size();
  std::vector<std::int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return projection(a) < projection(b);
  });
  std::vector<std::int32_t> label(static_cast<size_t>(count));
  for (Index rank = 0; rank < count; ++rank)
    label[size_t(order[size_t(rank)])] = std::int32_t(rank * clusters / count);
  return label;
}

class Smyrf final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "smyrf", "SMYRF", "Daras, Kitaev, Odena, Dimakis. SMYRF: Efficient Attention using Asymmetric Clustering",
        "2010.05315", 2020, Family::ContentSparse, "O(n_h·N·log N + n_h·N·c·d)", CausalSupport::No,
        "Asymmetric transforms turn maximum inner product into nearest neighbour; queries and keys are sorted "
        "by a random projection and cut into equal-size clusters that attend pairwise.",
        "", true,
        {"convention: a pair that several hashes put in one cluster counts once (softmax over the union); the "
         "SMYRF code counts it once per hash: pairs = per-hash",
         "convention: N need not be a multiple of the cluster size (cluster sizes then differ by one); the SMYRF "
         "code requires it"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("cluster_size", "Cluster size c", "Tokens per balanced cluster: L = min(N, M) / c "
                           "clusters (rounded), each of ~N/L queries and ~M/L keys.", 32, 1, 1 << 20, true),
        ParamSpec::integer("hashes", "Hash rounds n_h", "Independent projections whose pairs are united.", 2, 1, 16),
        ParamSpec::choice("pairs", "Shared pairs",
                          "once: a query-key pair that several hashes put in one cluster counts once (softmax over "
                          "the union of the hashes' pairs). per-hash: once per hash that finds it (the SMYRF code).",
                          {"once", "per-hash"}, 0),
    };
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"cluster_size", std::to_string(std::max<Index>({in.n(), in.m(), 1}))}, {"hashes", "1"}},
                      1e-4, "one cluster (c ≥ N): every query meets every key"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const Index size = p.integer("cluster_size"), hashes = p.integer("hashes"),
                both = std::max<Index>(std::min(s.n, s.m), 1);
    // Balanced clusters: a cluster larger than the sequence is the sequence (run() clamps the count at 1).
    const Index clusters = std::clamp<Index>((both + size / 2) / std::max<Index>(size, 1), 1, both);
    const double keys = std::ceil(double(s.m) / double(clusters));
    planBuckets(r, s, hashes, keys, "cluster_size", "lower cluster_size or hashes");
    r.add(double(s.n + s.m) * double(s.d + 2 + hashes) * sizeof(float) * 2, "the asymmetric transforms F(Q), G(K)");
    if (options.explain)
      r.add(2 * patternBytes(double(hashes) * double(s.n) * keys, double(s.n)), "the hashes' patterns shown", "hashes");
    const double n = double(s.n), m = double(s.m);
    r.flops += double(hashes) * (n + m) * (2.0 * double(s.d + 2) + std::log2(std::max(n, m)));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), d = in.q.cols();
    const Index size = p.integer("cluster_size"), hashes = p.integer("hashes");
    const Index clusters = std::clamp<Index>((std::min(n, m) + size / 2) / size, 1, std::min(n, m));
    r.explanation.notes.push_back(std::to_string(clusters) + " balanced clusters of ~" + std::to_string(n / clusters) +
                                  " queries and ~" + std::to_string(m / clusters) + " keys");

    // The asymmetric transforms F(Q) and G(K), in d + 2 dimensions.
    Matrix fq = Matrix::Zero(n, d + 2), gk = Matrix::Zero(m, d + 2);
    const Vector qn = in.q.rowwise().squaredNorm(), kn = in.k.rowwise().squaredNorm();
    const double mq2 = n ? double(qn.maxCoeff()) : 0, mk2 = m ? double(kn.maxCoeff()) : 0;
    fq.leftCols(d) = in.q;
    gk.leftCols(d) = in.k;
    for (Index i = 0; i < n; ++i) fq(i, d + 1) = float(std::sqrt(std::max(0.0, mq2 + mk2 - double(qn(i)))));
    for (Index j = 0; j < m; ++j) gk(j, d) = float(std::sqrt(std::max(0.0, mq2 + mk2 - double(kn(j)))));

    std::vector<BucketRound> rounds(static_cast<size_t>(hashes));
    Matrix projections(n + m, hashes);  // for the "project" step: a·F(q) and a·G(k)
    std::vector<Matrix> directions(static_cast<size_t>(hashes));
    timedStage(r.cost, options, "transform + hash + sort", [&] {
      for (Index h = 0; h < hashes; ++h) {
        Rng rng(options.seed, 4200 + std::uint64_t(h));
        const Matrix& a = directions[size_t(h)] = rng.gaussian(d + 2, 1);
        // On the host in double, whatever the backend: the sort cuts runs of near-equal projections (a photo's
        // flat regions), so a backend's own rounding would move tokens between clusters. O((N + M)·d) per hash.
        const MatrixD ad = a.cast<double>();
        const Vector pq = (fq.cast<double>() * ad).col(0).cast<float>(), pk = (gk.cast<double>() * ad).col(0).cast<float>();
        projections.block(0, h, n, 1) = pq;
        projections.block(n, h, m, 1) = pk;
        BucketRound& round = rounds[size_t(h)];
        round.name = "hash " + std::to_string(h + 1);
        round.groups = std::int32_t(clusters);
        round.q_label = balancedLabels(pq, clusters);
        round.k_label = balancedLabels(pk, clusters);
      }
    });
    BucketOptions bo;
    bo.scale = defaultScale(d);
    bo.count_pairs_once = p.choice("pairs") == "once";
    const BucketAttention att = attendBuckets(in, std::make_shared<const Matrix>(in.q),
                                              std::make_shared<const Matrix>(in.k), rounds, bo, backend, options, r);
    r.cost.flops += double(hashes) * double(n + m) * (2.0 * double(d + 2) + std::log2(double(std::max(n, m))));

    for (const BucketRound& round : rounds) {
      r.explanation.groupings.push_back(Grouping::fromLabels(round.name + " query clusters", round.q_label, round.groups));
      if (n == m)
        r.explanation.groupings.push_back(Grouping::fromLabels(round.name + " key clusters", round.k_label, round.groups));
    }
    // Steps (hash 1): transform → project → balance → attend.
    if (!options.explain) return r;
    {
      auto view = std::make_shared<Explanation>();
      Matrix line(n + m, 2);  // column 0: queries, column 1: keys, rescaled to 0..1 on one axis
      line.setZero();
      const float lo = projections.col(0).minCoeff(), hi = projections.col(0).maxCoeff();
      for (Index i = 0; i < n + m; ++i)
        line(i, i < n ? 0 : 1) = hi > lo ? (projections(i, 0) - lo) / (hi - lo) : 0.5f;
      view->factors.push_back({"projection line (hash 1)",
                               "a·F(q) for the N queries (column 1) and a·G(k) for the M keys (column 2), rescaled "
                               "to 0..1: both are sorted on this one line",
                               std::move(line)});
      // Each hash's direction (the views show the first factor; tests recompute the clusters from these).
      for (Index h = 0; h < hashes; ++h)
        view->factors.push_back({"direction a (hash " + std::to_string(h + 1) + ")",
                                 "(d + 2) × 1 Gaussian: F(q) and G(k) are sorted by their projection on it",
                                 directions[size_t(h)]});
      r.explanation.steps.push_back({"project",
                                     "Transform Q and K asymmetrically (MIPS → nearest neighbour) and project both "
                                     "on one random direction.",
                                     view});
    }
    if (auto same = sameGroupPattern(rounds.front().q_label, rounds.front().k_label, rounds.front().groups,
                                     "cluster", false)) {
      auto view = std::make_shared<Explanation>();
      view->pattern = std::move(same);
      view->groupings.push_back(r.explanation.groupings.front());
      r.explanation.steps.push_back({"balance",
                                     "Sort queries and keys separately and cut both into " + std::to_string(clusters) +
                                         " equal clusters: query cluster c meets key cluster c.",
                                     view});
      r.explanation.steps.push_back({"balance (sorted)",
                                     "The same pairs with tokens sorted by their query cluster.", view,
                                     rounds.front().name + " query clusters"});
    }
    {
      auto view = std::make_shared<Explanation>();
      view->pattern = *att.pattern;
      view->weights = r.explanation.weights;
      r.explanation.steps.push_back({"attend",
                                     bo.count_pairs_once
                                         ? "Softmax over the union of the rounds' cluster pairs, rounds combined by "
                                           "their log-normalisers (a pair that several rounds find counts once)."
                                         : "Softmax per round, rounds combined by their log-normalisers: a pair that "
                                           "c rounds find weighs c times (the SMYRF code).",
                                     view});
    }
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSmyrf() { return std::make_shared<Smyrf>(); }
}  // namespace attn::mech
