// reformer — Kitaev, Kaiser, Levskaya 2020 (arXiv 2001.04451), LSH attention with shared QK.
// Keys are the unit-normalised queries. For each of n_h hash rounds: draw a random rotation R (d×n_b/2),
// bucket = argmax[xR, −xR]; sort tokens by (bucket, position); cut the sorted order into chunks of m;
// each query attends to same-bucket keys in its own chunk and the previous one. A token attends to
// itself only when it has no other target. Rounds are combined by their log-normalisers, with
// −log(#rounds that share the pair) added to each logit, which makes the result exactly softmax over the
// union of the rounds' pairs. Nothing is learned: the rotations are random (CATALOG.md #17).
#include <algorithm>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

struct Round {
  std::vector<std::int32_t> bucket;  // per token
  std::vector<std::int32_t> order;   // sorted position → token
  std::vector<std::int32_t> chunk;   // per token: chunk of its sorted position
  Matrix rotation;                   // d × n_b/2
};

class Reformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "reformer", "Reformer (LSH attention)", "Kitaev, Kaiser, Levskaya. Reformer: The Efficient Transformer",
        "2001.04451", 2020, Family::ContentSparse, "O(n_h·N·log N + n_h·N·m·d)", CausalSupport::Yes,
        "Hash queries with random rotations so similar vectors share a bucket; attend only within buckets "
        "after sorting and chunking.",
        "", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("buckets", "Buckets n_b", "Hash buckets per round (1, or even: argmax over [xR, −xR]).", 8,
                           1, 4096, true),
        ParamSpec::integer("rounds", "Hash rounds n_h", "Independent hashings whose pairs are united.", 2, 1, 16),
        ParamSpec::integer("chunk", "Chunk length m", "Sorted tokens are cut into chunks of m.", 32, 1, 1 << 20, true),
        ParamSpec::flag("previous_chunk", "Attend to previous chunk",
                        "Each chunk also sees the chunk before it (catches buckets cut by a chunk border).", true),
    };
  }
  Inputs referenceInputs(const Inputs& in, const Params&) const override {
    Inputs shared = in;
    shared.k = normalisedKeys(in.q);
    shared.mask_self = true;
    return shared;
  }
  std::string referenceLabel(const Params&) const override { return "exact (shared-QK, no self)"; }

  static Matrix normalisedKeys(const Matrix& q) {
    Matrix k = q;
    for (Index i = 0; i < k.rows(); ++i) {
      const float norm = k.row(i).norm();
      if (norm > 0) k.row(i) /= norm;
    }
    return k;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), d = in.q.cols();
    if (in.m() != n) throw UserError("Reformer shares queries and keys: it needs as many keys as queries");
    Index buckets = p.integer("buckets");
    if (buckets > 1 && buckets % 2) {
      ++buckets;
      r.explanation.notes.push_back("buckets must be even (argmax over [xR, −xR]); using " + std::to_string(buckets));
    }
    const Index rounds = p.integer("rounds"), chunk = std::min<Index>(p.integer("chunk"), n);
    const bool previous = p.flag("previous_chunk");
    if (options.causal && chunk < n)
      r.explanation.notes.push_back(
          "causal: later keys are masked, but the sort places tokens in chunks by all tokens' buckets, so "
          "with several chunks an output can still shift when later tokens change");
    const auto q = std::make_shared<const Matrix>(in.q);
    const auto k = std::make_shared<const Matrix>(normalisedKeys(in.q));

    // Hash and sort, round by round.
    std::vector<Round> hashed(static_cast<size_t>(rounds));
    timedStage(r.cost, options, "hash + sort", [&] {
      for (Index h = 0; h < rounds; ++h) {
        Round& round = hashed[size_t(h)];
        if (buckets > 1) {
          Rng rng(options.seed, 1000 + std::uint64_t(h));
          round.rotation = rng.gaussian(d, buckets / 2);
          round.bucket = backend.hashRotations(*k, round.rotation);
        } else {
          round.bucket.assign(size_t(n), 0);
        }
        Grouping g = Grouping::fromLabels("", round.bucket, std::int32_t(buckets));
        round.order = g.order;
        round.chunk.resize(size_t(n));
        for (Index pos = 0; pos < n; ++pos) round.chunk[size_t(round.order[size_t(pos)])] = std::int32_t(pos / chunk);
      }
    });

    // Candidate pairs per round: same bucket, own or previous chunk, j ≤ i when causal.
    std::vector<std::vector<std::vector<std::int32_t>>> per_round(static_cast<size_t>(rounds), std::vector<std::vector<std::int32_t>>(static_cast<size_t>(n)));
    auto union_pattern = timedStage(r.cost, options, "chunk", [&] {
      for (Index h = 0; h < rounds; ++h) {
        const Round& round = hashed[size_t(h)];
        for (Index pos = 0; pos < n; ++pos) {
          const std::int32_t i = round.order[size_t(pos)];
          const Index c = pos / chunk;
          const Index first = (previous && c > 0 ? c - 1 : c) * chunk;
          const Index last = std::min(n, (c + 1) * chunk);
          auto& row = per_round[size_t(h)][size_t(i)];
          for (Index s = first; s < last; ++s) {
            const std::int32_t j = round.order[size_t(s)];
            if (round.bucket[size_t(j)] != round.bucket[size_t(i)]) continue;
            if (options.causal && j > i) continue;
            row.push_back(j);
          }
          std::sort(row.begin(), row.end());
        }
      }
      // Union over rounds, with the self rule: i sees itself only if it sees nothing else.
      std::vector<std::vector<std::int32_t>> cols(static_cast<size_t>(n));
      std::vector<std::vector<std::uint8_t>> comps(static_cast<size_t>(n));
      for (Index i = 0; i < n; ++i) {
        std::vector<std::pair<std::int32_t, std::uint8_t>> all;
        for (Index h = 0; h < rounds; ++h)
          for (auto j : per_round[size_t(h)][size_t(i)]) all.emplace_back(j, std::uint8_t(h));
        std::sort(all.begin(), all.end());
        all.erase(std::unique(all.begin(), all.end(), [](auto a, auto b) { return a.first == b.first; }), all.end());
        const bool others = std::any_of(all.begin(), all.end(), [&](auto e) { return e.first != i; });
        for (auto [j, h] : all) {
          if (others && j == i) continue;
          cols[size_t(i)].push_back(j);
          comps[size_t(i)].push_back(h);
        }
      }
      std::vector<std::string> names;
      for (Index h = 0; h < rounds; ++h) names.push_back("round " + std::to_string(h + 1));
      return std::make_shared<const Pattern>(patternFromRows(n, n, cols, comps, names));
    });

    // Attend per round with the multiplicity correction, then combine by log-normalisers.
    const float scale = defaultScale(d);
    Matrix out = Matrix::Zero(n, in.v.cols());
    Vector total_lse;
    timedStage(r.cost, options, "attend + combine", [&] {
      std::vector<AttentionOutput> results;
      for (Index h = 0; h < rounds; ++h) {
        std::vector<std::vector<std::int32_t>> cols(static_cast<size_t>(n));
        std::vector<std::vector<std::uint8_t>> comps(static_cast<size_t>(n));
        std::vector<float> bias;
        for (Index i = 0; i < n; ++i) {
          for (auto j : per_round[size_t(h)][size_t(i)]) {
            if (!union_pattern->contains(i, j)) continue;  // the self rule removed it
            int shared = 0;
            for (Index other = 0; other < rounds; ++other) {
              const auto& o = per_round[size_t(other)][size_t(i)];
              shared += std::binary_search(o.begin(), o.end(), j) ? 1 : 0;
            }
            cols[size_t(i)].push_back(j);
            comps[size_t(i)].push_back(0);
            bias.push_back(-std::log(float(shared)));
          }
        }
        const Pattern round_pattern = patternFromRows(n, n, cols, comps, {"round"});
        results.push_back(backend.sparseAttention(*q, *k, in.v, round_pattern, scale, &bias));
        options.checkCancel();
      }
      total_lse = Vector::Constant(n, -std::numeric_limits<float>::infinity());
      for (Index i = 0; i < n; ++i) {
        float mx = -std::numeric_limits<float>::infinity();
        for (const auto& res : results) mx = std::max(mx, res.lse(i));
        if (!std::isfinite(mx)) continue;
        double sum = 0;
        for (const auto& res : results) sum += std::exp(double(res.lse(i) - mx));
        const float lse = mx + float(std::log(sum));
        total_lse(i) = lse;
        for (const auto& res : results)
          if (std::isfinite(res.lse(i))) out.row(i) += std::exp(res.lse(i) - lse) * res.out.row(i);
      }
    });

    r.output = std::move(out);
    r.explanation.weights = patternSoftmaxWeights(q, k, scale, union_pattern, total_lse);
    r.explanation.pattern = *union_pattern;
    for (Index h = 0; h < rounds; ++h) {
      const Round& round = hashed[size_t(h)];
      r.explanation.groupings.push_back(
          Grouping::fromLabels("round " + std::to_string(h + 1) + " buckets", round.bucket, std::int32_t(buckets)));
    }
    // Steps of round 1: rotate → hash → sort → chunk → attend.
    {
      const Round& first = hashed.front();
      auto hash_view = std::make_shared<Explanation>();
      hash_view->groupings.push_back(r.explanation.groupings.front());
      if (first.rotation.size()) hash_view->factors.push_back({"rotation R (round 1)", "d × n_b/2 Gaussian", first.rotation});
      auto chunk_view = std::make_shared<Explanation>();
      const Index chunks = (n + chunk - 1) / chunk;
      chunk_view->groupings.push_back(Grouping::fromLabels("round 1 chunks", first.chunk, std::int32_t(chunks)));
      auto attend_view = std::make_shared<Explanation>();
      attend_view->pattern = *union_pattern;
      attend_view->weights = r.explanation.weights;
      r.explanation.steps = {
          {"rotate", "Project the unit keys on a random rotation R: x·R and −x·R.", hash_view},
          {"hash", "Each token's bucket is the argmax over [xR, −xR].", hash_view},
          {"sort", "Sort tokens by (bucket, position): buckets become contiguous.", hash_view},
          {"chunk", "Cut the sorted order into chunks of m; a chunk also sees the previous one.", chunk_view},
          {"attend", "Attend within bucket ∩ chunk; unite the rounds by their log-normalisers.", attend_view},
      };
    }
    r.cost.scored_pairs = double(union_pattern->nnz());
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + in.v.cols()) + double(rounds) * double(n) * double(d) * double(buckets);
    r.cost.peak_bytes = backend.peakBytes() + union_pattern->nnz() * Index(sizeof(std::int32_t) + 1) * 2 +
                        n * in.v.cols() * Index(sizeof(float)) * (rounds + 1);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeReformer() { return std::make_shared<Reformer>(); }
}  // namespace attn::mech
