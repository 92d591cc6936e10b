// reformer — Kitaev, Kaiser, Levskaya 2020 (arXiv 2001.04451), LSH attention with shared QK.
// Keys are the unit-normalised queries. For each of n_h hash rounds: draw a random rotation R (d×n_b/2),
// bucket = argmax[xR, −xR]; sort tokens by (bucket, position); cut the sorted order into chunks of m;
// each query attends to same-bucket keys in its own chunk and the previous one. A token attends to
// itself only when it has no other target. Rounds are combined by their log-normalisers, with
// −log(#rounds that share the pair) added to each logit, which makes the result exactly softmax over the
// union of the rounds' pairs (the paper's m(j, P_i) and N_ij). Nothing is learned: the rotations are
// random (CATALOG.md #17).
// `convention` = trax follows trax's LSHSelfAttention (trax/layers/research/efficient_attention.py)
// instead: a query attends to every key of its chunk and the previous one whatever their buckets
// (masking only itself and, causally, the future), and a pair found by c rounds weighs c times (no N_ij
// correction). `unscaled_logits` gives trax's logits q·k̂ (its unit keys carry no 1/√d) instead of the paper's
// q·k̂/√d; the own reference follows it (its queries scaled by √d), standard exact attention does not.
#include <algorithm>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/bucket_engine.h"
#include "attention/mechanisms/common.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {


class Reformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "reformer", "Reformer (LSH attention)", "Kitaev, Kaiser, Levskaya. Reformer: The Efficient Transformer",
        "2001.04451", 2020, Family::ContentSparse, "O(n_h·N·log N + n_h·N·m·d)", CausalSupport::Yes,
        "Hash the unit keys (the normalised queries) with random rotations so similar vectors share a bucket; "
        "sort by bucket, cut into chunks, and attend within a chunk and the previous one.",
        "", true,
        {"convention: logits q·k̂/√d, the paper's softmax(QKᵀ/√d_k) with k̂ = q/‖q‖; the trax code uses q·k̂: "
         "unscaled logits on",
         "convention: only same-bucket keys in a chunk, a pair found by several rounds counted once (the paper, "
         "trax's 2019 LSHCausalAttention); trax's LSHSelfAttention: convention = trax",
         "convention: the first chunk has no previous chunk; trax's code wraps around (a round's first chunk also "
         "sees the last chunk of the round before, or of the last round)"}};
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
        ParamSpec::choice("convention", "Convention",
                          "paper: a query sees only the keys of its own bucket in its chunk and the previous one, "
                          "and a pair that several rounds find counts once. trax (LSHSelfAttention): every key of "
                          "those chunks whatever its bucket, and a pair counts once per round that finds it (trax's "
                          "logits: unscaled logits on).",
                          {"paper", "trax"}, 0),
        ParamSpec::flag("unscaled_logits", "Unscaled logits (trax)",
                        "Off: logits q·k̂/√d, the paper's softmax(QKᵀ/√d_k). On: q·k̂, as the trax code (its unit "
                        "keys carry no 1/√d): √d times sharper rows. The shared-QK reference follows; standard "
                        "exact attention keeps 1/√d.",
                        false),
    };
  }
  /// The logit scale on q·k̂ (1/√d, or 1 with unscaled_logits).
  static float logitScale(const Params& p, Index d) { return p.flag("unscaled_logits") ? 1.0f : defaultScale(d); }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"buckets", "1"}, {"rounds", "1"}, {"chunk", std::to_string(std::max<Index>(in.n(), 1))}},
                      1e-4, "one bucket and one chunk (m ≥ N): shared-QK attention without self"};
  }
  std::optional<OwnReference> ownReference(const Inputs& in, const Params& p) const override {
    checkOneSequence(in);  // before the reference is run on keys made from the queries
    Inputs shared = in;
    shared.k = normalisedKeys(in.q);
    // The reference runs at 1/√d: queries scaled by √d give it logits q·k̂ when the mechanism uses scale 1.
    const float scale = logitScale(p, in.q.cols());
    if (scale != defaultScale(in.q.cols())) shared.q *= scale / defaultScale(in.q.cols());
    shared.mask_self = true;
    return OwnReference{std::move(shared), "exact (shared-QK, no self)"};
  }

  static void checkOneSequence(const Inputs& in) {
    if (in.m() != in.n())
      throw UserError(
          "Reformer shares queries and keys (its keys are the normalised queries): it needs as many keys "
          "as queries, not N = " +
          std::to_string(in.n()) + " queries and M = " + std::to_string(in.m()) + " keys");
  }

  static Matrix normalisedKeys(const Matrix& q) {
    Matrix k = q;
    for (Index i = 0; i < k.rows(); ++i) {
      const float norm = k.row(i).norm();
      if (norm > 0) k.row(i) /= norm;
    }
    return k;
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    r.own_reference = true;
    const Index n = s.n, rounds = p.integer("rounds"), buckets = std::max<Index>(1, p.integer("buckets"));
    // A chunk longer than the sequence is the whole sequence (run() clamps it the same way).
    const Index chunk = std::min<Index>(p.integer("chunk"), n);
    const double keys = double(chunk < n ? std::min(n, chunk * (p.flag("previous_chunk") ? 2 : 1)) : n);
    planBuckets(r, s, rounds, keys, "rounds",
                "lower rounds or chunk (a chunk above N = " + std::to_string(n) + " counts as N), or raise buckets");
    r.add(double(s.n * s.d) * sizeof(float), "the shared keys (N × d floats)");
    // The rotations and the rotated keys (N × buckets / 2 per round; [xR, −xR] of round 1 shown, N × buckets).
    r.add((double(rounds) * double(s.d + s.n) * double(buckets) / 2 +
           (options.explain ? 2.5 * double(s.n * buckets) : 0.0)) *
              sizeof(float),
          "the rotated keys (N × buckets)", "buckets");
    if (options.explain) {  // the steps: round 1's bucket pairs (three views), its chunked pairs, the union twice
      const double nn = double(n) * double(n), same = std::min(nn, 2 * nn / double(buckets));
      const double joined = std::min(nn, double(n) * keys * double(rounds));
      r.add(patternBytes(3 * same + double(n) * keys + 2 * joined, 6 * double(n)),
            "the steps' patterns (round 1's buckets, the union of the rounds)", "rounds",
            "lower rounds, or raise buckets");
    }
    r.flops += double(rounds) * double(n) * double(s.d) * double(buckets);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), d = in.q.cols();
    checkOneSequence(in);
    Index buckets = p.integer("buckets");
    if (buckets > 1 && buckets % 2) {
      ++buckets;
      r.explanation.notes.push_back("buckets must be even (argmax over [xR, −xR]); using " + std::to_string(buckets));
    }
    const Index rounds = p.integer("rounds"), chunk = std::min<Index>(p.integer("chunk"), n);
    if (p.integer("chunk") > n)
      r.explanation.notes.push_back("chunk clamped to N = " + std::to_string(n) + " (one chunk holds the sequence)");
    const bool previous = p.flag("previous_chunk");
    const bool trax = p.choice("convention") == "trax";
    if (options.causal && chunk < n)
      r.explanation.notes.push_back(
          "causal: later keys are masked, but the sort places tokens in chunks by all tokens' buckets, so "
          "with several chunks an output can still shift when later tokens change");
    const auto q = std::make_shared<const Matrix>(in.q);
    const auto k = std::make_shared<const Matrix>(normalisedKeys(in.q));

    // Hash, round by round: bucket = argmax [xR, −xR] of the unit keys (queries share them).
    std::vector<BucketRound> hashed(static_cast<size_t>(rounds));
    std::vector<Matrix> rotation(static_cast<size_t>(rounds));
    timedStage(r.cost, options, "hash", [&] {
      for (Index h = 0; h < rounds; ++h) {
        BucketRound& round = hashed[size_t(h)];
        round.name = "round " + std::to_string(h + 1);
        round.groups = std::int32_t(buckets);
        if (buckets > 1) {
          Rng rng(options.seed, 1000 + std::uint64_t(h));
          rotation[size_t(h)] = rng.gaussian(d, buckets / 2);
          round.q_label = backend.hashRotations(*k, rotation[size_t(h)]);
        } else {
          round.q_label.assign(size_t(n), 0);
        }
        round.k_label = round.q_label;
      }
    });
    BucketOptions bo;
    bo.chunk = chunk;
    bo.previous_chunk = previous;
    bo.same_label_in_chunk = !trax;
    bo.count_pairs_once = !trax;
    bo.self_rule = true;
    bo.causal = options.causal;
    bo.scale = logitScale(p, d);
    const BucketAttention att = attendBuckets(in, q, k, hashed, bo, backend, options, r);
    r.cost.flops += double(rounds) * double(n) * double(d) * double(buckets);  // the hashing

    for (const BucketRound& round : hashed)
      r.explanation.groupings.push_back(Grouping::fromLabels(round.name + " buckets", round.q_label, round.groups));
    const Index chunks = (n + chunk - 1) / chunk;
    r.explanation.groupings.push_back(Grouping::fromLabels("round 1 chunks", att.chunk.front(), std::int32_t(chunks)));

    // Steps of round 1: rotate → hash → sort → chunk → attend (then the union of the rounds).
    if (!options.explain) return r;
    const std::string sorted_name = "round 1 buckets";
    auto with = [&](std::optional<Pattern> pattern, bool groups) {
      auto view = std::make_shared<Explanation>();
      view->pattern = std::move(pattern);
      if (groups) view->groupings.push_back(r.explanation.groupings.front());
      return view;
    };
    const auto same = sameGroupPattern(hashed.front().q_label, hashed.front().k_label, hashed.front().groups,
                                       "bucket", options.causal);
    {
      auto view = with(std::nullopt, true);
      if (buckets > 1) {
        // [xR, −xR] per token, rescaled to 0..1: the brightest column of a row is its bucket.
        const Matrix xr = *k * rotation.front();
        Matrix both(n, buckets);
        both << xr, -xr;
        const float lo = both.minCoeff(), hi = both.maxCoeff();
        if (hi > lo) both = (both.array() - lo) / (hi - lo);
        view->factors.push_back({"rotated keys [xR, −xR] (round 1, rescaled to 0..1)",
                                 "N × n_b: the brightest column of each row is the token's bucket", std::move(both)});
        // Every round's own rotation (the views show the first factor; tests recompute the hash from these).
        for (Index h = 0; h < rounds; ++h)
          view->factors.push_back({"rotation R (round " + std::to_string(h + 1) + ")", "d × n_b/2 Gaussian",
                                   rotation[size_t(h)]});
      }
      r.explanation.steps.push_back({"rotate", "Project the unit keys on a random rotation R: xR and −xR.", view});
    }
    r.explanation.steps.push_back({"hash",
                                   "Bucket = argmax over [xR, −xR]; pairs of one bucket, in token order: scattered.",
                                   with(same, true)});
    r.explanation.steps.push_back({"sort",
                                   "Sort tokens by (bucket, position): each bucket becomes one diagonal block.",
                                   with(same, true), sorted_name});
    r.explanation.steps.push_back(
        {"chunk",
         "Cut the sorted order into chunks of m; a query sees " +
             std::string(trax ? "every key of its chunk" : "its bucket within its chunk") +
             (previous ? " and the previous one" : "") + (trax ? ", whatever the bucket (trax)." : "."),
         with(*att.rounds.front(), true), sorted_name});
    if (rounds > 1)
      r.explanation.steps.push_back({"rounds",
                                     "Every round hashes anew; the pattern is the union of the rounds' pairs "
                                     "(colour: the first round that has the pair).",
                                     with(*att.pattern, false)});
    {
      auto view = with(*att.pattern, false);
      view->weights = r.explanation.weights;
      r.explanation.steps.push_back({"attend",
                                     trax ? "Softmax per round, rounds combined by their log-normalisers: a pair "
                                            "that c rounds find weighs c times (trax); a token sees itself only "
                                            "when it has no other key."
                                          : "Softmax over the union, rounds combined by their log-normalisers (a "
                                            "pair that several rounds find counts once); a token sees itself only "
                                            "when it has no other key.",
                                     view});
    }
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeReformer() { return std::make_shared<Reformer>(); }
}  // namespace attn::mech
