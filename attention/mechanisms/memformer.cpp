// memformer — Wu et al. 2020 (arXiv 2010.06891), CATALOG.md #41: a fixed-size external memory of k
// slots carries the past from segment to segment. Per segment of n_s tokens:
//   read:  each token attends to [the memory slots; the segment's tokens (causal within it)];
//   write: each slot attends to [itself; the segment's tokens] (slots do not see each other), which
//          gives the memory for the next segment.
// Stand-in (CATALOG f: "random weights give uninformative maps; show the data flow"): identity
// projections; a slot has a key (in K's space) and a value (in V's space), and a write moves both by
// the same attention weights. The memory starts empty: the first segment reads only itself, and each
// slot's first write reads only that segment, with a random unit-variance direction (from the seed) as
// its query; after that a slot's key is its query. Every slot is then a convex mix of past tokens, every
// step is linear in V, and the effective N×N matrix is exact and row-stochastic (the V = I probe). A
// different operator, not an approximation of softmax. The paper's forgetting is not modelled.
#include <cmath>
#include <limits>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxDenseWeights = 4096;

class Memformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "memformer", "Memformer", "Wu et al. Memformer: A Memory-Augmented Transformer for Sequence Modeling",
        "2010.06891", 2020, Family::Memory, "O(n_s·(n_s + k)·d) per segment", CausalSupport::Native,
        "A few memory slots are read by each segment and rewritten from it: the past reaches later segments "
        "only through k slots.",
        "Identity projections; the memory starts empty, each slot's first write using a random direction as its "
        "query; no forgetting.",
        false,
        {"convention: a token reads the slots and its segment in one softmax; the paper's encoder reads the memory "
         "in a cross-attention layer of its own",
         "convention: the memory starts empty (no learned initial slots): the first segment reads only itself and "
         "each slot's first write reads only that segment"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("slots", "Memory slots k",
                           "Slots of the external memory (the unofficial lucidrains example uses 128).", 16, 1, 4096,
                           true),
        ParamSpec::integer("segment", "Segment n_s", "Tokens per segment.", 64, 1, 1 << 20, true),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const double n = double(s.n), k = double(p.integer("slots"));
    const double seg = double(std::min(p.integer("segment"), std::max<Index>(s.n, 1)));  // a segment is at most N
    r.add((k + seg) * double(s.d + s.dv) * 3 * sizeof(float) + seg * (k + seg) * 2 * sizeof(float) +
              k * seg * sizeof(float) * 2,
          "a segment's keys, values and scores ((slots + segment)²)", "segment");
    if (options.explain && s.n <= kMaxDenseWeights)
      r.add(n * n * sizeof(float) + 2 * k * n * sizeof(double) + 256 * k * sizeof(float),
            "the effective N × N matrix (formed to be seen up to N = " + std::to_string(kMaxDenseWeights) + ")");
    const double segments = std::ceil(n / seg);
    r.flops = 2 * (n * (k + seg) + k * (n + segments)) * double(s.d + s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    if (in.m() != in.n()) throw UserError("Memformer reads one sequence: it needs as many keys as queries");
    Result r;
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols(), k = p.integer("slots"), seg = p.integer("segment");
    const bool causal = options.causal, dense = options.explain && n <= kMaxDenseWeights;
    const float scale = defaultScale(d);
    Rng rng(options.seed, 41);
    // Before the first write a slot is empty: it has only a query, a random unit-variance direction
    // (independent of the data: causal); from then on its key serves as its query.
    Matrix slot_keys = rng.gaussian(k, d);
    Matrix slot_values = Matrix::Zero(k, dv);
    bool empty = true;
    MatrixD slot_coef = MatrixD::Zero(k, dense ? n : 0);  // slot values = slot_coef·V
    auto a = std::make_shared<Matrix>(dense ? n : 0, dense ? n : 0);
    if (dense) a->setZero();
    r.output.resize(n, dv);
    Matrix read_map = Matrix::Zero(std::min<Index>(n, 256), k);  // token → slot weights, first tokens
    Index segments = 0;
    double scored = 0;
    for (Index s0 = 0; s0 < n; s0 += seg, ++segments) {
      const Index len = std::min(seg, n - s0);
      // Read: tokens over [slots (once written); segment tokens], causal within the segment.
      const Index held = empty ? 0 : k;
      Matrix keys(held + len, d), values(held + len, dv);
      keys.topRows(held) = slot_keys.topRows(held);
      keys.bottomRows(len) = in.k.middleRows(s0, len);
      values.topRows(held) = slot_values.topRows(held);
      values.bottomRows(len) = in.v.middleRows(s0, len);
      DenseAttentionOptions o;
      o.scale = scale;
      o.causal = causal;
      o.causal_offset = held;  // query r sits at key held + r
      const Matrix q = in.q.middleRows(s0, len);
      const AttentionOutput read = timedStage(r.cost, options, "read " + std::to_string(segments + 1),
                                              [&] { return backend.denseAttention(q, keys, values, o); });
      r.output.middleRows(s0, len) = read.out;
      // Write: slot t over [itself (once written); segment tokens].
      Matrix new_keys(k, d), new_values(k, dv);
      MatrixD new_coef = slot_coef;
      const Matrix seg_logits = (slot_keys * in.k.middleRows(s0, len).transpose()) * scale;
      for (Index t = 0; t < k; ++t) {
        const float self = empty ? -std::numeric_limits<float>::infinity() : scale * slot_keys.row(t).squaredNorm();
        const float mx = std::max(self, seg_logits.row(t).maxCoeff());
        const Eigen::RowVectorXf w = (seg_logits.row(t).array() - mx).exp().matrix();
        const float ws = empty ? 0.0f : std::exp(self - mx), sum = ws + w.sum();
        new_keys.row(t) = w * in.k.middleRows(s0, len) / sum;
        new_values.row(t) = w * in.v.middleRows(s0, len) / sum;
        if (!empty) {
          new_keys.row(t) += ws / sum * slot_keys.row(t);
          new_values.row(t) += ws / sum * slot_values.row(t);
        }
        if (dense) {
          new_coef.row(t) = slot_coef.row(t) * double(ws / sum);
          for (Index j = 0; j < len; ++j) new_coef(t, s0 + j) += double(w(j) / sum);
        }
      }
      if (dense) {  // effective rows of this segment: read weights applied to [slot coefficients; tokens]
        for (Index r0 = 0; r0 < len; ++r0) {
          const Index i = s0 + r0;
          const Eigen::RowVectorXf x = (keys * q.row(r0).transpose()).transpose() * scale;
          const Index visible = causal ? held + r0 + 1 : held + len;
          const float mx = x.head(visible).maxCoeff();
          const Eigen::RowVectorXf e = (x.head(visible).array() - mx).exp().matrix();
          const float sum = e.sum();
          Eigen::RowVectorXd row = Eigen::RowVectorXd::Zero(n);
          if (held > 0) row = (e.head(held).cast<double>() * slot_coef) / double(sum);
          for (Index j = 0; j < visible - held; ++j) row(s0 + j) += double(e(held + j) / sum);
          a->row(i) = row.cast<float>();
          if (i < read_map.rows() && held > 0) read_map.row(i) = e.head(held) / sum;
        }
      }
      slot_keys = std::move(new_keys);
      slot_values = std::move(new_values);
      slot_coef = std::move(new_coef);
      scored += double(len) * double(held + len) + double(k) * double(len + (held > 0 ? 1 : 0));
      empty = false;
      options.checkCancel();
    }
    if (dense)
      r.explanation.weights = ImpliedWeights(n, n, [a](Range rows, Range cols) {
        return Matrix(a->block(rows.begin, cols.begin, rows.size(), cols.size()));
      });
    else if (options.explain) {
      r.explanation.weights_withheld = "the effective N×N matrix is formed up to N = " + std::to_string(kMaxDenseWeights);
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    std::vector<std::int32_t> segment(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) segment[size_t(i)] = std::int32_t(i / seg);
    r.explanation.groupings.push_back(Grouping::fromLabels("segments", std::move(segment), std::int32_t(segments)));
    r.explanation.factors.push_back({"read map", "tokens × slots: how much each of the first tokens reads from "
                                     "each memory slot (nothing in the first segment: the memory starts empty)",
                                     read_map});
    r.explanation.special.push_back(TokenSet{"memory slots (final)", "memory", {}, {}, slot_keys});
    r.explanation.notes.push_back("a different operator: the past reaches a segment only through " +
                                  std::to_string(k) + " memory slots");
    r.cost.scored_pairs = scored;
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + dv);
    r.cost.peak_bytes = backend.peakBytes() + (k + seg) * (d + dv) * Index(sizeof(float)) +
                        (dense ? n * n * Index(sizeof(float)) + k * n * Index(sizeof(double)) : 0);
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeMemformer() { return std::make_shared<Memformer>(); }
}  // namespace attn::mech
