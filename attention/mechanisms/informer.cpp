// informer — Zhou et al. 2020 (arXiv 2012.07436), CATALOG.md #43, ProbSparse self-attention (the
// encoder form). Each query's sparsity score M(q_i) = max_j s·q_i·k_j − mean_j s·q_i·k_j is
// estimated from U = c·⌈ln M⌉ randomly sampled keys; the u = c·⌈ln N⌉ queries of highest estimated M
// ("active") get full softmax attention, every other ("lazy") query outputs mean(V).
// The estimate here is max − mean over the sampled keys, drawn without replacement (the reference code
// divides the sampled sum by the number of all keys and draws with replacement). The masked-decoder form
// ranks queries over the whole sequence, so a query's role depends on later tokens: it is not offered
// (no causal form here). Nothing is learned: no stand-in.
// Every row depends on every key (an active row by softmax, a lazy row by the mean of V, weight 1/M
// each), so the pattern holds all N×M pairs, tagged by the row's role: mass recall is 1 by definition,
// and the approximation shows in the weights (row TV), not in what a row can see.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/plan.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

class Informer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "informer", "Informer (ProbSparse)", "Zhou et al. Informer: Beyond Efficient Transformer for Long Sequence "
        "Time-Series Forecasting", "2012.07436", 2020, Family::ContentSparse, "O(N·ln N·d)", CausalSupport::No,
        "Only the few queries whose attention is far from uniform (high max − mean score, estimated from "
        "sampled keys) attend; the rest output the mean of V.",
        "", true,
        {"convention: a query's sampled score is max − mean over its U sampled keys; the authors' code divides "
         "the sampled sum by all L_K keys",
         "convention: each query's U keys are drawn without replacement; the authors' code draws them with "
         "replacement (torch.randint)"}};
    return i;
  }
  /// u = c·⌈ln N⌉ ≥ N: every query is active, and an active row is softmax attention over all keys.
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    const Index n = std::max<Index>(in.n(), 1), ln = std::max<Index>(ceilLn(n), 1);
    return ExactLimit{{{"factor", std::to_string((n + ln - 1) / ln)}}, 1e-4,
                      "every query active (c·⌈ln N⌉ ≥ N)"};
  }
  static Index ceilLn(Index x) { return Index(std::ceil(std::log(double(std::max<Index>(x, 1))))); }
  std::vector<ParamSpec> params() const override {
    return {ParamSpec::integer("factor", "Factor c", "u = c·⌈ln N⌉ active queries and U = c·⌈ln M⌉ sampled keys "
                               "(the reference code: 5).", 5, 1, 1 << 20, true)};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    const Index c = p.integer("factor");
    // A factor above N / ⌈ln N⌉ makes every query active (run() clamps the count at N).
    const double samples = double(std::clamp<Index>(c * ceilLn(s.m), 1, std::max<Index>(s.m, 1)));
    const double active = double(std::clamp<Index>(c * ceilLn(s.n), 1, std::max<Index>(s.n, 1)));
    // The active rows' pattern (grown by doubling: up to twice its entries) and the attention's working rows.
    r.add(2 * patternBytes(active * double(s.m), double(s.n)) + sparseWorkspaceBytes(double(s.m), s),
          "the active queries' rows (factor × ⌈ln N⌉ × M entries)", "factor");
    r.add(allKeysPatternBytes(s, options), "the pattern shown (every pair, N × M)");
    r.flops = 2 * double(s.n) * samples * double(s.d) + 2 * active * double(s.m) * double(s.d + s.dv);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols(), c = p.integer("factor");
    const float scale = defaultScale(d);
    const Index samples = std::clamp<Index>(c * ceilLn(m), 1, std::max<Index>(m, 1));
    const Index active_count = std::clamp<Index>(c * ceilLn(n), 1, std::max<Index>(n, 1));
    if (c * ceilLn(n) > n)
      r.explanation.notes.push_back("factor " + std::to_string(c) +
                                    " makes every query active: u clamped to N = " + std::to_string(n));
    // Sampled sparsity scores (U keys per query, drawn without replacement from the seed).
    auto score = std::make_shared<Matrix>(1, n);
    timedStage(r.cost, options, "sample scores", [&] {
      Rng rng(options.seed, 43);
      std::vector<Index> keys(static_cast<size_t>(m));
      for (Index i = 0; i < n; ++i) {
        std::iota(keys.begin(), keys.end(), 0);
        float mx = -std::numeric_limits<float>::infinity(), sum = 0;
        for (Index t = 0; t < samples; ++t) {
          std::swap(keys[size_t(t)], keys[size_t(t + Index(rng.below(std::uint64_t(m - t))))]);
          const float x = scale * in.q.row(i).dot(in.k.row(keys[size_t(t)]));
          mx = std::max(mx, x);
          sum += x;
        }
        (*score)(0, i) = mx - sum / float(samples);
      }
    });
    std::vector<Index> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return (*score)(0, a) > (*score)(0, b); });
    std::vector<Index> active(order.begin(), order.begin() + active_count);
    std::sort(active.begin(), active.end());
    auto is_active = std::make_shared<std::vector<char>>(static_cast<size_t>(n), 0);
    for (Index i : active) (*is_active)[size_t(i)] = 1;

    // Active rows: full softmax over all keys (a pattern of whole rows, what the attention runs on);
    // lazy rows: mean(V).
    auto pattern = std::make_shared<Pattern>();
    pattern->rows = n;
    pattern->cols = m;
    pattern->components = {"active query"};
    pattern->row_ptr.push_back(0);
    for (Index i = 0; i < n; ++i) {
      if ((*is_active)[size_t(i)])
        for (Index j = 0; j < m; ++j) pattern->col.push_back(std::int32_t(j));
      pattern->row_ptr.push_back(Index(pattern->col.size()));
    }
    pattern->component.assign(pattern->col.size(), 0);
    AttentionOutput a = timedStage(r.cost, options, "attend",
                                   [&] { return backend.sparseAttention(in.q, in.k, in.v, *pattern, scale); });
    const Eigen::RowVectorXf mean_v = m > 0 ? Eigen::RowVectorXf(in.v.colwise().mean()) : Eigen::RowVectorXf::Zero(dv);
    r.output = std::move(a.out);
    for (Index i = 0; i < n; ++i)
      if (!(*is_active)[size_t(i)]) r.output.row(i) = mean_v;

    auto q = std::make_shared<const Matrix>(in.q);
    auto k = std::make_shared<const Matrix>(in.k);
    auto lse = std::make_shared<const Vector>(std::move(a.lse));
    r.explanation.weights = ImpliedWeights(n, m, [q, k, lse, is_active, scale, m](Range rows, Range cols) {
      Matrix block(rows.size(), cols.size());
      for (Index i = rows.begin; i < rows.end; ++i) {
        if (!(*is_active)[size_t(i)]) {
          block.row(i - rows.begin).setConstant(1.0f / float(m));
          continue;
        }
        for (Index j = cols.begin; j < cols.end; ++j)
          block(i - rows.begin, j - cols.begin) = std::exp(scale * q->row(i).dot(k->row(j)) - (*lse)(i));
      }
      return block;
    });
    // What each row sees: every key (active: softmax; lazy: the mean of V, 1/M each), tagged by role.
    if (options.explain && n * m <= kMaxAllKeysPatternEntries) {
      Pattern seen = allKeysPattern(n, m, {"active query (softmax)", "lazy query (mean of V)"},
                                    [&](Index i, std::uint8_t* out) {
                                      std::fill(out, out + m, std::uint8_t((*is_active)[size_t(i)] ? 0 : 1));
                                    });
      r.explanation.pattern = std::move(seen);
    } else if (options.explain) {
      r.explanation.notes.push_back("pattern not formed above " + std::to_string(kMaxAllKeysPatternEntries) +
                                    " pairs: every row sees every key (lazy rows: the mean of V)");
    }
    r.explanation.special.push_back(TokenSet{"active queries", "active", active, {}, {}, /*queries_only=*/true});
    r.explanation.factors.push_back({"M'", "the sampled sparsity score of each query (the top " +
                                     std::to_string(active_count) + " are active)", *score});
    r.explanation.notes.push_back(std::to_string(active_count) + " active queries of " + std::to_string(n) + ", " +
                                  std::to_string(samples) + " sampled keys per query");
    r.cost.scored_pairs = double(n) * double(samples) + double(active_count) * double(m);
    r.cost.flops = 2 * double(n) * double(samples) * double(d) + 2 * double(active_count) * double(m) * double(d + dv);
    r.cost.peak_bytes = backend.peakBytes() + pattern->nnz() * Index(sizeof(std::int32_t) + 1) + n * dv * Index(sizeof(float));
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeInformer() { return std::make_shared<Informer>(); }
}  // namespace attn::mech
