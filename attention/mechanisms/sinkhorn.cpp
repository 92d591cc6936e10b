// sinkhorn — Tay, Bahri, Yang, Metzler, Juan 2020 (arXiv 2002.11296), CATALOG.md #18, Sparse Sinkhorn
// attention. Tokens are cut into n_B blocks of b. A sorting network scores every (query block, key
// block) pair; Sinkhorn balancing (alternate row and column normalisation of exp(R/τ), in log space)
// turns the scores into a soft permutation S. The sorted keys and values of block i are the S-weighted
// mixtures Σ_j S_ij K_j, Σ_j S_ij V_j, and each query attends to its own block plus the sorted block
// placed at its index (2b keys). Implied weights: A(r, j·b + t) = a_own(t)·[j = blk r] + a_sorted(t)·S_{blk r, j}.
// Stand-in (CATALOG f): the learned sort MLP is replaced by block-summary similarity
// R_ij = z̄q_i·z̄k_j/√d (mean query of block i, mean key of block j), so blocks route to their most similar
// block. Causal: summaries of past tokens only (queries of blocks before i, keys up to block j) and S is
// masked to j < i, so a block only receives earlier blocks; the own block is causally masked.
// Causal balancing normalises rows only, once: a column's sum runs over the later blocks that may
// receive it, so balancing columns would let later tokens move an earlier block's row (the authors' code
// masks the column normalisation of the whole matrix, which does). Balancing columns within each block's
// past instead is causal but degenerate: a doubly-stochastic matrix on earlier blocks only is the shift
// (block i ← i−1), and block i is the only one in its past to receive block i−1. Row normalisation is
// idempotent, so further iterations would repeat it: causal runs show one.
#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Normalises each row (rows = false: each column) in log space; a line with no finite entry (all
/// masked) is left alone.
void normaliseLines(Matrix& logits, bool rows) {
  auto normalise = [](auto&& line) {
    const float mx = line.maxCoeff();
    if (!std::isfinite(mx)) return;
    double sum = 0;
    for (Index t = 0; t < line.size(); ++t) sum += std::exp(double(line(t) - mx));
    line.array() -= mx + float(std::log(sum));
  };
  if (rows)
    for (Index i = 0; i < logits.rows(); ++i) normalise(logits.row(i));
  else
    for (Index j = 0; j < logits.cols(); ++j) normalise(logits.col(j));
}

Matrix expOf(const Matrix& logits) {
  return logits.unaryExpr([](float x) { return std::isfinite(x) ? std::exp(x) : 0.0f; });
}


class Sinkhorn final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "sinkhorn", "Sparse Sinkhorn attention", "Tay, Bahri, Yang, Metzler, Juan. Sparse Sinkhorn Attention",
        "2002.11296", 2020, Family::ContentSparse, "O(N·(b + n_B)·d)", CausalSupport::Yes,
        "A sorting network and Sinkhorn balancing softly permute the key blocks; each query block attends to "
        "itself and to the block sorted into its place.",
        "The learned sorting MLP is replaced by block-summary similarity R_ij = z'q_i·z'k_j/√d (mean query "
        "of block i, mean key of block j; causal: of the queries before block i, the keys up to block j).",
        true,
        {"convention: causal S is normalised over rows only (a softmax over earlier blocks); the authors' code also "
         "normalises masked columns, whose sums reach later blocks",
         "convention: one softmax over the own and the sorted block together (2b keys); the authors' LRA code adds "
         "two separately normalised attentions"}};
    return i;
  }
  /// One block (b = N): the own block is every key (j ≤ i when causal) and the sorted block, when there is
  /// one, the same keys again, which leaves the softmax unchanged.
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"block", std::to_string(std::max<Index>(in.n(), 1))}}, 1e-4, "one block (b = N)"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("block", "Block size b",
                           "Tokens per block (a divisor of N; otherwise the largest "
                           "divisor below it is used).",
                           32, 1, 1 << 20, true),
        ParamSpec::real("temperature", "Temperature τ", "S = Sinkhorn(exp(R/τ)); small τ: a harder permutation.", 0.75,
                        0.01, 100, true),
        // At least one: S = exp(R/τ) unbalanced is unbounded (it overflows at small τ), not a soft permutation.
        ParamSpec::integer("iterations", "Sinkhorn iterations",
                           "Row + column normalisations (at least one; causal runs normalise rows once).", 7, 1, 100),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    Index block = std::clamp<Index>(p.integer("block"), 1, std::max<Index>(s.n, 1));  // as run() picks it
    while (s.n % block) --block;
    const double n = double(s.n), b = double(block), nb = n / b;
    const double iterations = options.causal ? 1.0 : double(p.integer("iterations"));
    r.add(3 * patternBytes(n * 2 * b, n) + sparseWorkspaceBytes(2 * b, s) + n * double(s.d + s.dv) * sizeof(float),
          "each query's own and sorted block (2 × block × N)", "block");
    r.add(2 * (iterations + 2) * nb * nb * sizeof(float), "the sorting matrices S (iterations × (N / block)²)",
          "iterations");
    // What each row sees (every block that S mixes in: up to N × N pairs), formed to be seen.
    const double seen = std::min(n * (n + b), n * n);
    if (options.explain && seen <= double(kMaxAllKeysPatternEntries))
      r.add(2 * patternBytes(seen, n), "the pattern shown (the blocks each row sees, up to N × N)");
    r.flops = 2 * n * 2 * b * double(s.d + s.dv) + 2.0 * nb * nb * b * double(s.d + s.dv) +
              nb * nb * (2 * iterations + double(s.d));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
    if (in.m() != n) throw UserError("Sinkhorn attention sorts blocks of the same tokens: it needs as many keys as queries");
    const bool causal = options.causal;
    Index b = std::clamp<Index>(p.integer("block"), 1, n);
    while (n % b) --b;
    if (b != p.integer("block"))
      r.explanation.notes.push_back("block size " + std::to_string(p.integer("block")) + " does not divide N = " +
                                    std::to_string(n) + "; using " + std::to_string(b));
    const Index nb = n / b, iterations = p.integer("iterations");
    const float tau = float(p.number("temperature")), scale = defaultScale(d);

    // Sorting scores from block summaries (past-only when causal), then Sinkhorn balancing.
    std::vector<Matrix> history;
    const Matrix s = timedStage(r.cost, options, "sort (Sinkhorn)", [&] {
      Matrix zq(nb, d), zk(nb, d);
      for (Index i = 0; i < nb; ++i) {
        if (causal) {
          zq.row(i) = i > 0 ? Eigen::RowVectorXf(in.q.topRows(i * b).colwise().mean()) : Eigen::RowVectorXf::Zero(d);
          zk.row(i) = in.k.topRows((i + 1) * b).colwise().mean();
        } else {
          zq.row(i) = in.q.middleRows(i * b, b).colwise().mean();
          zk.row(i) = in.k.middleRows(i * b, b).colwise().mean();
        }
      }
      Matrix logits = backend.matmul(zq, zk, true) * (scale / tau);
      if (causal)
        for (Index i = 0; i < nb; ++i)
          for (Index j = i; j < nb; ++j) logits(i, j) = kNegInf;
      history.push_back(expOf(logits));
      // One iteration: rows, then columns. Causal: rows only, once (see the header).
      for (Index it = 0; it < (causal ? 1 : iterations); ++it) {
        normaliseLines(logits, true);
        if (!causal) normaliseLines(logits, false);
        history.push_back(expOf(logits));
      }
      return history.back();
    });

    // Sorted keys and values: block i of K_s is Σ_j S_ij K_j (a product of S with the blocks as rows).
    Matrix k_aug(2 * n, d), v_aug(2 * n, dv);
    timedStage(r.cost, options, "mix blocks", [&] {
      const Eigen::Map<const Matrix> kb(in.k.data(), nb, b * d), vb(in.v.data(), nb, b * dv);
      const Matrix ks = backend.matmul(s, Matrix(kb)), vs = backend.matmul(s, Matrix(vb));
      k_aug.topRows(n) = in.k;
      v_aug.topRows(n) = in.v;
      k_aug.bottomRows(n) = Eigen::Map<const Matrix>(ks.data(), n, d);
      v_aug.bottomRows(n) = Eigen::Map<const Matrix>(vs.data(), n, dv);
    });
    std::vector<bool> has_sorted(static_cast<size_t>(nb));
    for (Index i = 0; i < nb; ++i) has_sorted[size_t(i)] = s.row(i).sum() > 0;

    // Each query: its own block (j ≤ i when causal) and the b sorted keys of its block.
    PatternBuilder builder(n, 2 * n, false);
    builder.add("own block", [&](Index i, std::vector<Index>& out) {
      const Index blk = i / b;
      for (Index j = blk * b; j < (blk + 1) * b && (!causal || j <= i); ++j) out.push_back(j);
    });
    builder.add("sorted block", [&](Index i, std::vector<Index>& out) {
      const Index blk = i / b;
      if (has_sorted[size_t(blk)])
        for (Index t = 0; t < b; ++t) out.push_back(n + blk * b + t);
    });
    const Pattern pattern = builder.build(options);
    AttentionOutput a =
        timedStage(r.cost, options, "attend", [&] { return backend.sparseAttention(in.q, k_aug, v_aug, pattern, scale); });
    r.output = std::move(a.out);

    // Implied weights over the original N keys: own-block weights plus S-spread sorted weights.
    {
      auto q = std::make_shared<const Matrix>(in.q);
      auto keys = std::make_shared<const Matrix>(std::move(k_aug));
      auto sp = std::make_shared<const Matrix>(s);
      auto lse = std::make_shared<const Vector>(a.lse);
      auto sorted = std::make_shared<const std::vector<bool>>(has_sorted);
      r.explanation.weights = ImpliedWeights(n, n, [=](Range rows, Range cols) {
        Matrix w = Matrix::Zero(rows.size(), cols.size());
        Eigen::RowVectorXf own(b), mixed(b);
        for (Index rr = 0; rr < rows.size(); ++rr) {
          const Index i = rows.begin + rr, blk = i / b;
          const float l = (*lse)(i);
          if (!std::isfinite(l)) continue;
          for (Index t = 0; t < b; ++t) {
            const Index j = blk * b + t;
            own(t) = causal && j > i ? 0.0f : std::exp(scale * q->row(i).dot(keys->row(j)) - l);
            mixed(t) = (*sorted)[size_t(blk)] ? std::exp(scale * q->row(i).dot(keys->row(n + j)) - l) : 0.0f;
          }
          for (Index cc = 0; cc < cols.size(); ++cc) {
            const Index c = cols.begin + cc, t = c % b, cb = c / b;
            w(rr, cc) = (cb == blk ? own(t) : 0.0f) + (*sp)(blk, cb) * mixed(t);
          }
        }
        return w;
      });
    }
    // The N×N view of the pattern: what each row sees. The sorted keys of block i mix every block j with
    // S_ij > 0, so a row sees its own block and all those blocks; the one S weights most is told apart.
    std::vector<Index> top(static_cast<size_t>(nb), -1);
    Index seen = 0;
    for (Index i = 0; i < nb; ++i) {
      if (has_sorted[size_t(i)]) s.row(i).maxCoeff(&top[size_t(i)]);
      seen += b * b * (1 + Index((s.row(i).array() > 0).count()));
    }
    if (options.explain && seen <= kMaxAllKeysPatternEntries) {
      PatternBuilder view(n, n, causal);
      view.add("own block", [&](Index i, std::vector<Index>& out) {
        for (Index j = (i / b) * b; j < (i / b + 1) * b; ++j) out.push_back(j);
      });
      view.add("sorted block (largest S)", [&](Index i, std::vector<Index>& out) {
        const Index t = top[size_t(i / b)];
        if (t >= 0)
          for (Index j = t * b; j < (t + 1) * b; ++j) out.push_back(j);
      });
      view.add("mixed in by S (S > 0)", [&](Index i, std::vector<Index>& out) {
        for (Index cb = 0; cb < nb; ++cb)
          if (s(i / b, cb) > 0)
            for (Index j = cb * b; j < (cb + 1) * b; ++j) out.push_back(j);
      });
      r.explanation.pattern = view.build(options);
    } else if (options.explain) {
      r.explanation.notes.push_back("pattern not formed above " + std::to_string(kMaxAllKeysPatternEntries) +
                                    " pairs: a row sees its own block and every block S mixes into its sorted block");
    }
    std::vector<std::int32_t> block_label(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) block_label[size_t(i)] = std::int32_t(i / b);
    r.explanation.groupings.push_back(Grouping::fromLabels("blocks", block_label, std::int32_t(nb)));
    r.explanation.factors.push_back({"soft permutation S", "n_B × n_B after Sinkhorn balancing", s});
    for (size_t it = 0; it < history.size(); ++it) {
      auto view = std::make_shared<Explanation>();
      const Matrix& st = history[it];
      // Sums over the entries that can be nonzero: causal, rows 1… (block 0 has no earlier block) and
      // columns …n_B−2 (the last block is no block's earlier block).
      double row_dev = 0, col_dev = 0;
      for (Index i = causal ? 1 : 0; i < nb; ++i) row_dev = std::max(row_dev, std::abs(double(st.row(i).sum()) - 1));
      for (Index j = 0; j < (causal ? nb - 1 : nb); ++j)
        col_dev = std::max(col_dev, std::abs(double(st.col(j).sum()) - 1));
      std::string caption = it == 0 ? causal ? "exp(R/τ) masked to earlier blocks, before balancing"
                                             : "exp(R/τ) before balancing"
                            : causal ? "rows normalised over earlier blocks (causal: columns are not, their sums "
                                       "run over later blocks)"
                                     : "after " + std::to_string(it) + " row and column normalisation(s)";
      char sums[200];
      std::snprintf(sums, sizeof sums, ": max |row sum − 1| = %.3g, max |column sum − 1| = %.3g%s", row_dev,
                    col_dev, causal ? " (rows 1…, columns …n_B−2: those S can fill)" : "");
      caption += sums;
      view->factors.push_back({"S after " + std::to_string(it) + " iteration(s)", caption, st});
      r.explanation.steps.push_back({it == 0 ? "scores exp(R/τ)" : "Sinkhorn " + std::to_string(it), caption, view});
      if (it + 1 == history.size()) r.explanation.notes.push_back("Sinkhorn: " + caption);
    }
    if (causal && iterations > 1)
      r.explanation.notes.push_back("causal: rows are normalised once; " + std::to_string(iterations) +
                                    " iterations would repeat it (columns are not balanced)");
    {
      auto view = std::make_shared<Explanation>();
      view->pattern = r.explanation.pattern;
      view->weights = r.explanation.weights;
      r.explanation.steps.push_back({"attend",
                                     "Each query attends to its own block and to the S-mixed block sorted into its "
                                     "place, which mixes every block with S > 0 (coloured apart: the block S weights "
                                     "most).",
                                     view});
    }
    r.cost.scored_pairs = double(pattern.nnz());
    r.cost.flops = 2 * r.cost.scored_pairs * double(d + dv) + 2.0 * double(nb) * double(nb) * double(b) * double(d + dv) +
                   double(nb) * double(nb) * double(2 * (causal ? 1 : iterations) + d);
    r.cost.peak_bytes = backend.peakBytes() + n * (d + dv) * Index(sizeof(float)) + pattern.nnz() * Index(sizeof(std::int32_t) + 1) +
                        nb * nb * Index(sizeof(float)) * Index(history.size()) + n * dv * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeSinkhorn() { return std::make_shared<Sinkhorn>(); }
}  // namespace attn::mech
