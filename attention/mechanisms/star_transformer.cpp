// star-transformer — Guo et al. 2019 (arXiv 1902.09113), CATALOG.md #6: satellite nodes h_i (one per
// token) on a ring and one relay node s. Init h⁰ = e (the token values), s⁰ = mean(e). Each round:
//   every satellite attends to [h_{i−1}, h_i, h_{i+1}, e_i, s]  (ring window 3, its input, the relay);
//   then the relay attends to [s; all h].
// Stand-in (CATALOG f): identity projections — queries Q and keys K of the inputs (the relay's query
// and key are the means of Q and K), values are the node states; the nonlinearities and layer norms
// are left out, so each round is linear in the values and the N×N effective matrix of the stack is
// exact (the V = I probe). Not an approximation of softmax attention: a different operator; what it
// shows is coverage: a band of width 3 plus the relay, any pair two hops apart through the relay.
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
        "Identity projections (Q, K as given; relay query and key = means) and no nonlinearity between rounds.",
        false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {ParamSpec::integer("rounds", "Rounds T", "Satellite-then-relay updates.", 2, 1, 16)};
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    if (in.m() != in.n()) throw UserError("the Star-Transformer's ring needs as many keys as queries");
    Result r;
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols(), rounds = p.integer("rounds");
    const float scale = defaultScale(d);
    // Extended keys: [K (ring states); K (inputs e); mean K (relay)].
    Matrix keys(2 * n + 1, d);
    keys.topRows(n) = in.k;
    keys.middleRows(n, n) = in.k;
    keys.row(2 * n) = in.k.colwise().mean();
    const Matrix relay_query = in.q.colwise().mean();
    Matrix relay_keys(n + 1, d);
    relay_keys.row(0) = keys.row(2 * n);
    relay_keys.bottomRows(n) = in.k;
    Pattern ring;
    ring.rows = n;
    ring.cols = 2 * n + 1;
    ring.components = {"ring", "input", "relay"};
    ring.row_ptr.push_back(0);
    for (Index i = 0; i < n; ++i) {
      for (Index j = std::max<Index>(0, i - 1); j <= std::min(n - 1, i + 1); ++j) {
        ring.col.push_back(std::int32_t(j));
        ring.component.push_back(0);
      }
      ring.col.push_back(std::int32_t(n + i));
      ring.component.push_back(1);
      ring.col.push_back(std::int32_t(2 * n));
      ring.component.push_back(2);
      ring.row_ptr.push_back(Index(ring.col.size()));
    }

    Matrix h = in.v;                                 // h⁰ = e
    Eigen::RowVectorXf s = in.v.colwise().mean();    // s⁰ = mean(e)
    AttentionOutput sat, rel;
    for (Index t = 0; t < rounds; ++t) {
      Matrix values(2 * n + 1, dv);
      values.topRows(n) = h;
      values.middleRows(n, n) = in.v;
      values.row(2 * n) = s;
      sat = timedStage(r.cost, options, "satellites " + std::to_string(t + 1),
                       [&] { return backend.sparseAttention(in.q, keys, values, ring, scale); });
      h = sat.out;
      Matrix relay_values(n + 1, dv);
      relay_values.row(0) = s;
      relay_values.bottomRows(n) = h;
      DenseAttentionOptions o;
      o.scale = scale;
      rel = timedStage(r.cost, options, "relay " + std::to_string(t + 1),
                       [&] { return backend.denseAttention(relay_query, relay_keys, relay_values, o); });
      s = rel.out.row(0);
    }
    r.output = h;

    // The weights are the same every round (keys and queries do not change): propagate the linear maps
    // with V = I to get the effective matrix A (h = A·V) exactly.
    if (options.explain && n <= kMaxDenseWeights) {
      displayStage(r.cost, options, "effective matrix (V = I)", [&] {
        Matrix alpha(n, 5);  // per satellite: left, self, right, input, relay (0 where absent)
        for (Index i = 0; i < n; ++i) {
          float mx = -std::numeric_limits<float>::infinity();
          float x[5];
          bool has[5] = {i > 0, true, i + 1 < n, true, true};
          const Index key_of[5] = {i - 1, i, i + 1, n + i, 2 * n};
          for (int c = 0; c < 5; ++c) {
            x[c] = has[c] ? scale * in.q.row(i).dot(keys.row(key_of[c])) : -std::numeric_limits<float>::infinity();
            mx = std::max(mx, x[c]);
          }
          float sum = 0;
          for (int c = 0; c < 5; ++c) sum += has[c] ? std::exp(x[c] - mx) : 0.0f;
          for (int c = 0; c < 5; ++c) alpha(i, c) = has[c] ? std::exp(x[c] - mx) / sum : 0.0f;
        }
        Vector beta(n + 1);
        {
          const Vector x = (relay_keys * relay_query.transpose()) * scale;
          const float mx = x.maxCoeff();
          beta = (x.array() - mx).exp().matrix();
          beta /= beta.sum();
        }
        auto a = std::make_shared<Matrix>(Matrix::Identity(n, n));  // h⁰ = I·V
        Eigen::RowVectorXf as = Eigen::RowVectorXf::Constant(n, 1.0f / float(n));
        for (Index t = 0; t < rounds; ++t) {
          Matrix next(n, n);
          for (Index i = 0; i < n; ++i) {
            next.row(i) = alpha(i, 1) * a->row(i) + alpha(i, 4) * as;
            next(i, i) += alpha(i, 3);
            if (i > 0) next.row(i) += alpha(i, 0) * a->row(i - 1);
            if (i + 1 < n) next.row(i) += alpha(i, 2) * a->row(i + 1);
          }
          *a = std::move(next);
          as = beta(0) * as + beta.tail(n).transpose() * *a;
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
    r.explanation.pattern = [&] {  // coverage of one round over the tokens: the ring (the relay reaches all)
      Pattern band;
      band.rows = band.cols = n;
      band.components = {"ring"};
      band.row_ptr.push_back(0);
      for (Index i = 0; i < n; ++i) {
        for (Index j = std::max<Index>(0, i - 1); j <= std::min(n - 1, i + 1); ++j) band.col.push_back(std::int32_t(j));
        band.row_ptr.push_back(Index(band.col.size()));
      }
      band.component.assign(band.col.size(), 0);
      return band;
    }();
    r.explanation.special.push_back(TokenSet{"relay node", "relay", {}, {Range{0, n}}, s});
    r.explanation.notes.push_back("a different operator: the ring and the relay, not an approximation of softmax");
    r.cost.scored_pairs = double(rounds) * double(ring.nnz() + n + 1);
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + dv);
    r.cost.peak_bytes =
        backend.peakBytes() + (3 * n + 2) * (d + dv) * Index(sizeof(float));  // the view's N×N: not counted
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeStarTransformer() { return std::make_shared<StarTransformer>(); }
}  // namespace attn::mech
