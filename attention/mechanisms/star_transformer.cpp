// star-transformer — Guo et al. 2019 (arXiv 1902.09113), CATALOG.md #6: satellite nodes h_i (one per
// token) on a ring and one relay node s. Init h⁰ = e (the tokens), s⁰ = mean(e). Each round t:
//   every satellite attends to [h_{i−1}, h_i, h_{i+1}, e_i, s] with its own state h_i as the query
//   (the ring wraps: tokens 1 and N are neighbours);
//   then the relay attends to [s; all new h] with s as the query.
// Queries and keys are projections of the CURRENT states (the paper's MultiAtt(h_i^{t−1}, C_i^t)), so they
// change every round. Stand-in (CATALOG f): one head, value and output maps the identity, no ReLU or
// LayerNorm: every state is then a mix of the tokens, and its query, key and value are that mix of the
// rows of Q, K and V. Each state carries [q | k | v] through the rounds (one attention per round over
// the 2d + dv columns), the stack is linear in V, and the N×N effective matrix is exact (the V = I
// probe, formed by replaying the rounds' weights). Not an approximation of softmax attention: a
// different operator; what it shows is coverage: the ring plus the relay, any two tokens two hops apart.
#include <algorithm>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"

namespace attn::mech {
namespace {

constexpr Index kMaxDenseWeights = 4096;  // the effective N×N matrix is formed up to this N

class StarTransformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "star-transformer", "Star-Transformer", "Guo et al. Star-Transformer", "1902.09113", 2019, Family::Memory,
        "O(N·d) per round", CausalSupport::No,
        "Tokens on a ring see their neighbours and one relay node; the relay sees everyone: any two tokens are "
        "two hops apart.",
        "One head with identity value and output maps: a node's query, key and value are its mix of the tokens' "
        "Q, K, V (the relay starts as their means); no ReLU or LayerNorm between rounds.",
        false,
        {"convention: the ring wraps (tokens 1 and N are neighbours) as in the paper; the authors' fastNLP code "
         "pads both ends with a zero key and value instead"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {ParamSpec::integer("rounds", "Rounds T", "Satellite-then-relay updates.", 2, 1, 16)};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    const double n = double(s.n), d = double(s.d), w = double(2 * s.d + s.dv), rounds = double(p.integer("rounds"));
    r.add(n * (w * 3 + 2 * (d + w)) * sizeof(float), "the nodes' states, keys and values (N × (3d + dv))");
    r.add(rounds * n * (4 * d + 2) * sizeof(float), "each round's queries and keys, kept to replay (rounds × N × d)",
          "rounds");
    if (options.explain && s.n <= kMaxDenseWeights)
      r.add(2 * n * n * sizeof(float),
            "the effective N × N matrix (formed to be seen up to N = " + std::to_string(kMaxDenseWeights) + ")");
    r.flops = 2 * rounds * (5 * n + n + 1) * (d + w);  // a ring of three, its input and the relay per satellite
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    if (in.m() != in.n()) throw UserError("the Star-Transformer's ring needs as many keys as queries");
    Result r;
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols(), rounds = p.integer("rounds");
    const Index w = 2 * d + dv;  // a node's state: [query | key | value]
    const float scale = defaultScale(d);
    // Satellite i's context over the extended items [states (N); inputs e (N); relay]: its ring
    // neighbours (wrapping; those that coincide when N < 3 are one item), its input, the relay.
    auto neighbours = [n](Index i) {
      std::vector<std::int32_t> ring{std::int32_t((i + n - 1) % n), std::int32_t(i), std::int32_t((i + 1) % n)};
      std::sort(ring.begin(), ring.end());
      ring.erase(std::unique(ring.begin(), ring.end()), ring.end());
      return ring;
    };
    Pattern context;
    context.rows = n;
    context.cols = 2 * n + 1;
    context.components = {"ring", "input", "relay"};
    context.row_ptr.push_back(0);
    for (Index i = 0; i < n; ++i) {
      for (std::int32_t j : neighbours(i)) {
        context.col.push_back(j);
        context.component.push_back(0);
      }
      context.col.push_back(std::int32_t(n + i));
      context.component.push_back(1);
      context.col.push_back(std::int32_t(2 * n));
      context.component.push_back(2);
      context.row_ptr.push_back(Index(context.col.size()));
    }

    Matrix tokens(n, w);  // e: the inputs' own [q | k | v], the item e_i of every round's context
    tokens << in.q, in.k, in.v;
    Matrix h = tokens;                                      // h⁰ = e
    Eigen::RowVectorXf s = tokens.colwise().mean();         // s⁰ = mean(e)
    // What the effective matrix replays: each round's queries, keys and log-normalisers.
    struct Round {
      Matrix sat_q, sat_k, relay_k;
      Vector sat_lse;
      Eigen::RowVectorXf relay_q;
      float relay_lse = 0;
    };
    const bool dense = options.explain && n <= kMaxDenseWeights;
    std::vector<Round> replay;
    for (Index t = 0; t < rounds; ++t) {
      Matrix keys(2 * n + 1, d), values(2 * n + 1, w);
      keys.topRows(n) = h.middleCols(d, d);
      keys.middleRows(n, n) = in.k;
      keys.row(2 * n) = s.segment(d, d);
      values.topRows(n) = h;
      values.middleRows(n, n) = tokens;
      values.row(2 * n) = s;
      const Matrix queries = h.leftCols(d);
      const AttentionOutput sat = timedStage(r.cost, options, "satellites " + std::to_string(t + 1), [&] {
        return backend.sparseAttention(queries, keys, values, context, scale);
      });
      h = sat.out;
      Matrix relay_keys(n + 1, d), relay_values(n + 1, w);
      relay_keys.row(0) = s.segment(d, d);
      relay_keys.bottomRows(n) = h.middleCols(d, d);
      relay_values.row(0) = s;
      relay_values.bottomRows(n) = h;
      const Matrix relay_query = s.head(d);
      DenseAttentionOptions o;
      o.scale = scale;
      const AttentionOutput rel = timedStage(r.cost, options, "relay " + std::to_string(t + 1), [&] {
        return backend.denseAttention(relay_query, relay_keys, relay_values, o);
      });
      if (dense) replay.push_back(Round{queries, keys, relay_keys, sat.lse, relay_query.row(0), rel.lse(0)});
      s = rel.out.row(0);
    }
    r.output = h.rightCols(dv);

    // Every round is linear in the states' values with the weights the backend used: replay them on
    // coefficient rows over the tokens (V = I) to get the effective matrix A (output = A·V) exactly.
    if (dense) {
      displayStage(r.cost, options, "effective matrix (V = I)", [&] {
        auto a = std::make_shared<Matrix>(Matrix::Identity(n, n));  // h⁰ = I·V
        Eigen::RowVectorXf as = Eigen::RowVectorXf::Constant(n, 1.0f / float(n));
        for (const Round& round : replay) {
          Matrix next = Matrix::Zero(n, n);
          for (Index i = 0; i < n; ++i)
            for (Index e = context.row_ptr[size_t(i)]; e < context.row_ptr[size_t(i + 1)]; ++e) {
              const Index c = context.col[size_t(e)];
              const float alpha = std::exp(scale * round.sat_q.row(i).dot(round.sat_k.row(c)) - round.sat_lse(i));
              if (c < n) next.row(i) += alpha * a->row(c);
              else if (c < 2 * n) next(i, c - n) += alpha;
              else next.row(i) += alpha * as;
            }
          *a = std::move(next);
          Eigen::RowVectorXf relay = std::exp(scale * round.relay_q.dot(round.relay_k.row(0)) - round.relay_lse) * as;
          for (Index j = 0; j < n; ++j)
            relay += std::exp(scale * round.relay_q.dot(round.relay_k.row(j + 1)) - round.relay_lse) * a->row(j);
          as = relay;
          options.checkCancel();
        }
        r.explanation.weights = ImpliedWeights(n, n, [a](Range rows, Range cols) {
          return Matrix(a->block(rows.begin, cols.begin, rows.size(), cols.size()));
        });
      });
    } else if (options.explain) {
      r.explanation.weights_withheld = "the effective N×N matrix is formed up to N = " + std::to_string(kMaxDenseWeights);
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    r.explanation.pattern = [&] {  // the tokens round 1 scores one by one: the ring (the relay reaches all)
      Pattern ring;
      ring.rows = ring.cols = n;
      ring.components = {"ring"};
      ring.row_ptr.push_back(0);
      for (Index i = 0; i < n; ++i) {
        for (std::int32_t j : neighbours(i)) ring.col.push_back(j);
        ring.row_ptr.push_back(Index(ring.col.size()));
      }
      ring.component.assign(ring.col.size(), 0);
      return ring;
    }();
    r.explanation.special.push_back(TokenSet{"relay node", "relay", {}, {Range{0, n}}, s.segment(d, d)});
    r.explanation.notes.push_back("a different operator: the ring and the relay, not an approximation of softmax");
    r.cost.scored_pairs = double(rounds) * double(context.nnz() + n + 1);
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + w);
    r.cost.peak_bytes =
        backend.peakBytes() + (3 * n + 2) * (d + w) * Index(sizeof(float));  // the view's N×N: not counted
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeStarTransformer() { return std::make_shared<StarTransformer>(); }
}  // namespace attn::mech
