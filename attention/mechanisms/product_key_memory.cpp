// product-key-memory — Lample et al. 2019 (arXiv 1907.05242), CATALOG.md #12, a memory layer: each
// token's query reads a memory of |K| = n² slots, not the other tokens.
//   1. The query q (here Inputs::q, the query network is the identity) is split into halves q¹, q².
//   2. Two sub-key tables C¹, C² ∈ R^{n×d/2}: s¹ = C¹q¹, s² = C²q²; keep the top-k' of each (k' = min(k, n)).
//   3. The k'² candidate pairs (a, b) score s¹_a + s²_b = q·[C¹_a, C²_b], the dot product with product
//      key a·n + b; keep their top k. That is exactly the top k of all n² product keys (a pair outside
//      the candidates is beaten by k' candidates in its row or column).
//   4. w = softmax over those k logits; output Σ w·V[a·n + b], V ∈ R^{n²×dv} the value table.
// Logits are (1/√d)·q·k like every attnlab mechanism (XLM's memory.py uses raw dot products; the scale
// does not change which keys win, only how peaked w is), and the exact reference is softmax with the
// same scale over all n² product keys (referenceInputs). Its normaliser factorises,
// Σ_ab exp(s(s¹_a + s²_b)) = Σ_a exp(s·s¹_a) · Σ_b exp(s·s²_b), so the share of the all-slot softmax mass
// the top k capture costs O(n) per query; the all-slot output does not factorise.
// Stand-ins for the learned parameters: Gaussian sub-keys and values from the input seed (the value of a
// slot is drawn from a counter-based generator, so a run draws only the rows it reads). The sub-key scale
// σ sets how peaked the softmax over slots is: logits have a spread of ≈ σ·(query entry scale), so at
// σ = 1 (keys as long as unit-variance queries) the top 32 of 4096 slots hold only ≈ 12% of the all-slot
// softmax on the default clustered inputs, at the default σ = 3 ≈ 75% (k = 128: 91%). The inputs'
// K and V are not used. Causal: each token reads the memory with its own query only, so the causal
// output is the non-causal one; the reference is never causal-masked (slots have no position).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

/// Floats per memory table the exact reference may materialise (n²·d keys, n²·dv values): 128 MB each.
constexpr Index kMaxReferenceEntries = Index(1) << 25;
/// Entries of the candidate pattern shown in the "sub-key scores" step (N·k'²) before it is left out.
constexpr Index kMaxCandidateEntries = Index(1) << 22;

// ---- the stand-in memory: sub-keys and values, identical in run() and referenceInputs() ----

struct Memory {
  Index n = 0;      ///< sub-keys per half
  Index half = 0;   ///< d/2
  Matrix c1, c2;    ///< n × d/2 sub-key tables
  std::uint64_t seed = 1;
  Index slots() const { return n * n; }
};

std::uint64_t mix64(std::uint64_t x) {  // SplitMix64's finaliser (a bijection)
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Row `slot` of the value table: dv N(0, 1) entries from a SplitMix64 stream keyed by (seed, slot), so
/// any row can be drawn on its own, bit-identically on every platform (Box–Muller as attn::Rng).
void valueRow(std::uint64_t seed, Index slot, float* out, Index dv) {
  std::uint64_t state = mix64(mix64(seed ^ 0x504B4D56414C5545ull) + std::uint64_t(slot));
  auto uniform = [&state] {
    state += 0x9E3779B97F4A7C15ull;
    return double(mix64(state) >> 11) * 0x1.0p-53;
  };
  for (Index c = 0; c < dv; c += 2) {
    double u1 = 0;
    do u1 = uniform();
    while (u1 <= 0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[c] = float(r * std::cos(2 * M_PI * u2));
    if (c + 1 < dv) out[c + 1] = float(r * std::sin(2 * M_PI * u2));
  }
}

class ProductKeyMemory final : public Mechanism {
 public:
  bool referenceIsCausal(bool) const override { return false; }  // memory slots have no position
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "product-key-memory", "Product-key memory", "Lample et al. Large Memory Layers with Product Keys",
        "1907.05242", 2019, Family::ContentSparse, "O(N·(n + k²)·d) instead of O(N·n²·d)", CausalSupport::Native,
        "A memory layer: each query finds its top-k of n² product keys [C¹_a, C²_b] exactly by scoring only "
        "2n half-keys and k² candidate pairs, then mixes the values of those k slots.",
        "Random memory: Gaussian sub-keys C¹, C² (entries N(0, σ²), σ = key scale, default 3 for peaked reads) "
        "and N(0, 1) values V (n²×dv), drawn from the input seed; the query network is the identity (q = the "
        "input's query). The input's K and V are not used.",
        true,
        {},
        false};  // linear_in_values: its values are the memory's slots, not the input's V
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("n", "Sub-keys per half n", "Each half-key table has n rows, so the memory has n² "
                           "slots (XLM: 512, i.e. 262,144 slots; 64 here to stay interactive).", 64, 2, 1024, true),
        ParamSpec::integer("topk", "Top-k", "Memory slots each query reads (XLM: 32); more than n² is clamped.",
                           32, 1, 1 << 20, true),
        ParamSpec::real("key_scale", "Key scale σ", "Standard deviation of the random sub-key entries. At 1 the "
                        "keys are as long as unit-variance queries and the softmax over n² slots is nearly flat (an "
                        "untrained memory); the default 3 stands in for a trained memory's peaked reads.", 3.0, 0.05,
                        20, true),
    };
  }

  Inputs referenceInputs(const Inputs& in, const Params& p) const override {
    const Memory mem = memory(in, p);
    const Index d = in.q.cols(), dv = in.v.cols(), slots = mem.slots();
    if (slots * std::max(d, dv) > kMaxReferenceEntries) {
      Index largest = 2;
      while ((largest + 1) * (largest + 1) * std::max(d, dv) <= kMaxReferenceEntries) ++largest;
      throw UserError("the exact reference is softmax over all n² = " + std::to_string(slots) +
                      " product keys and needs the n²×" + std::to_string(std::max(d, dv)) +
                      " key and value tables, more than " + std::to_string(kMaxReferenceEntries >> 20) +
                      "M floats each; use n ≤ " + std::to_string(largest) + " (or smaller head sizes)");
    }
    Inputs ref = in;
    ref.k.resize(slots, d);
    ref.v.resize(slots, dv);
    for (Index a = 0; a < mem.n; ++a)
      for (Index b = 0; b < mem.n; ++b) {
        const Index s = a * mem.n + b;
        ref.k.row(s).head(mem.half) = mem.c1.row(a);
        ref.k.row(s).tail(mem.half) = mem.c2.row(b);
        valueRow(mem.seed, s, ref.v.row(s).data(), dv);
      }
    ref.mask_self = false;
    return ref;
  }
  std::string referenceLabel(const Params&) const override { return "exact (softmax over all n² keys)"; }

  std::optional<ExactLimit> exactLimit(const Inputs&) const override {
    return ExactLimit{{{"n", "8"}, {"topk", "64"}}, 1e-4, "every slot read (k = n²): softmax over the whole memory"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const double nq = double(s.n), n = double(p.integer("n")), slots = n * n;
    // A top-k above the n² slots reads them all (run() clamps it and says so).
    const double k = std::min(double(p.integer("topk")), slots), kp = std::min(k, n);
    r.reference_keys = Index(slots);
    r.reference_parameter = "n";
    r.add(nq * double(s.dv) * sizeof(float), "the output (N × dv floats)");
    // Per selected slot: its entry in the pattern, the compacted pattern, the explanation's copies (two), its
    // score, its weight and its id among the used slots; then the used slots' keys and values.
    r.add(nq * k * (4 * 5 + 4 + 4 + 4) + std::min(nq * k, slots) * double(s.d + s.dv) * sizeof(float),
          "the slots each query reads (topk × N entries)", "topk",
          "lower topk (at most n² = " + std::to_string(Index(slots)) + " slots are read)");
    r.add(nq * (2 * n + 2 * kp) * sizeof(float) + 2 * slots * sizeof(float) * (options.explain ? 2 : 0) +
              (options.explain && nq * kp * kp <= double(kMaxCandidateEntries) ? nq * kp * kp * 5 : 0.0) +
              2 * n * double(s.d) * sizeof(float),
          "the sub-key scores and the product-key grid", "n");
    r.add(kp * kp * 16 * 64, "the candidate pairs of each query (topk'² per thread)", "topk");
    r.flops = nq * (2.0 * n * double(s.d) + kp * kp + 2.0 * k * double(s.d + s.dv));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Memory mem = memory(in, p);
    const Index nq = in.n(), d = in.q.cols(), dv = in.v.cols(), n = mem.n, h = mem.half, slots = mem.slots();
    Index k = p.integer("topk");
    if (k > slots) {
      r.explanation.notes.push_back("top-k clamped to n² = " + std::to_string(slots) + " (the whole memory)");
      k = slots;
    }
    const Index kp = std::min(k, n);  // top-k' of each half
    const float scale = defaultScale(d);

    // 1–2. Sub-key scores s¹ = C¹q¹, s² = C²q² (N×n each).
    Matrix s1, s2;
    timedStage(r.cost, options, "sub-key scores", [&] {
      const Matrix q1 = in.q.leftCols(h), q2 = in.q.rightCols(h);
      s1 = backend.matmul(q1, mem.c1, true);
      s2 = backend.matmul(q2, mem.c2, true);
    });

    // Top-k' of each half per query, ordered by (score desc, index asc).
    std::vector<std::int32_t> top1(size_t(nq * kp)), top2(size_t(nq * kp));
    timedStage(r.cost, options, "top-k' of each half", [&] {
      std::vector<std::int32_t> idx(static_cast<size_t>(n));
      for (Index i = 0; i < nq; ++i)
        for (int half = 0; half < 2; ++half) {
          const Matrix& s = half == 0 ? s1 : s2;
          std::iota(idx.begin(), idx.end(), 0);
          std::partial_sort(idx.begin(), idx.begin() + kp, idx.end(), [&](std::int32_t x, std::int32_t y) {
            return s(i, x) > s(i, y) || (s(i, x) == s(i, y) && x < y);
          });
          std::copy(idx.begin(), idx.begin() + kp, (half == 0 ? top1 : top2).begin() + i * kp);
        }
    });

    // 3. The top k of the k'² candidate sums: per row the slots (ascending) and their scores q·k.
    auto pattern = std::make_shared<Pattern>();
    pattern->rows = nq;
    pattern->cols = slots;
    pattern->components = {"top-k"};
    pattern->row_ptr.assign(size_t(nq + 1), 0);
    pattern->col.resize(size_t(nq * k));
    pattern->component.assign(size_t(nq * k), 0);
    std::vector<float> score(size_t(nq * k));
    timedStage(r.cost, options, "top-k of k'² pairs", [&] {
      struct Candidate {
        float sum, a_score, b_score;
        std::int32_t slot;
      };
      // A strict total order under which the candidates' top k is exactly the top k of all n² keys,
      // even where float rounding ties two sums (see the test against brute force).
      const auto better = [](const Candidate& x, const Candidate& y) {
        if (x.sum != y.sum) return x.sum > y.sum;
        if (x.a_score != y.a_score) return x.a_score > y.a_score;
        if (x.b_score != y.b_score) return x.b_score > y.b_score;
        return x.slot < y.slot;
      };
      std::vector<Candidate> cand(static_cast<size_t>(kp * kp));
      for (Index i = 0; i < nq; ++i) {
        size_t c = 0;
        for (Index ta = 0; ta < kp; ++ta) {
          const std::int32_t a = top1[size_t(i * kp + ta)];
          for (Index tb = 0; tb < kp; ++tb) {
            const std::int32_t b = top2[size_t(i * kp + tb)];
            cand[c++] = {s1(i, a) + s2(i, b), s1(i, a), s2(i, b), std::int32_t(a * n + b)};
          }
        }
        std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), better);
        std::sort(cand.begin(), cand.begin() + k, [](const Candidate& x, const Candidate& y) { return x.slot < y.slot; });
        for (Index t = 0; t < k; ++t) {
          pattern->col[size_t(i * k + t)] = cand[size_t(t)].slot;
          score[size_t(i * k + t)] = cand[size_t(t)].sum;
        }
        pattern->row_ptr[size_t(i + 1)] = (i + 1) * k;
      }
    });

    // The memory rows the queries read: product keys [C¹_a, C²_b] and values, compacted.
    std::vector<std::int32_t> used(pattern->col.begin(), pattern->col.end());
    Matrix keys, values;
    Pattern compact;
    timedStage(r.cost, options, "gather memory rows", [&] {
      std::sort(used.begin(), used.end());
      used.erase(std::unique(used.begin(), used.end()), used.end());
      const Index u = Index(used.size());
      keys.resize(u, d);
      values.resize(u, dv);
      for (Index t = 0; t < u; ++t) {
        const Index slot = used[size_t(t)];
        keys.row(t).head(h) = mem.c1.row(slot / n);
        keys.row(t).tail(h) = mem.c2.row(slot % n);
        valueRow(mem.seed, slot, values.row(t).data(), dv);
      }
      compact = *pattern;
      compact.cols = u;
      for (auto& col : compact.col)
        col = std::int32_t(std::lower_bound(used.begin(), used.end(), col) - used.begin());
    });

    // 4. Softmax over the k slots of each query and the weighted sum of their values.
    AttentionOutput attended = timedStage(r.cost, options, "attend",
                                          [&] { return backend.sparseAttention(in.q, keys, values, compact, scale); });
    r.output = std::move(attended.out);

    // Implied weights (N × n²) from the selected scores, and the share of the all-slot softmax mass they
    // hold: lse over all n² keys = lse(s·s¹) + lse(s·s²).
    auto weight = std::make_shared<std::vector<float>>(score.size());
    double captured_total = 0;
    std::vector<double> captured(static_cast<size_t>(nq));
    auto logSumExp = [scale](const auto& row, Index count) {
      double mx = -INFINITY;
      for (Index t = 0; t < count; ++t) mx = std::max(mx, double(scale) * double(row(t)));
      if (!std::isfinite(mx)) return mx;
      double sum = 0;
      for (Index t = 0; t < count; ++t) sum += std::exp(double(scale) * double(row(t)) - mx);
      return mx + std::log(sum);
    };
    for (Index i = 0; i < nq; ++i) {
      const auto row_scores = [&](Index t) { return score[size_t(i * k + t)]; };
      const double top = logSumExp(row_scores, k);
      const double all = logSumExp(s1.row(i), n) + logSumExp(s2.row(i), n);
      for (Index t = 0; t < k; ++t)
        (*weight)[size_t(i * k + t)] = float(std::exp(double(scale) * double(score[size_t(i * k + t)]) - top));
      captured[size_t(i)] = std::isfinite(top) && std::isfinite(all) ? std::exp(top - all) : 0.0;
      captured_total += captured[size_t(i)];
    }
    const double mean_captured = nq > 0 ? captured_total / double(nq) : 0;
    std::shared_ptr<const Pattern> shared_pattern = pattern;
    r.explanation.weights = ImpliedWeights(nq, slots, [shared_pattern, weight](Range rows, Range cols) {
      Matrix block = Matrix::Zero(rows.size(), cols.size());
      for (Index i = rows.begin; i < rows.end; ++i) {
        const auto first = shared_pattern->col.begin() + shared_pattern->row_ptr[size_t(i)];
        const auto last = shared_pattern->col.begin() + shared_pattern->row_ptr[size_t(i + 1)];
        for (auto it = std::lower_bound(first, last, std::int32_t(cols.begin)); it != last && *it < cols.end; ++it)
          block(i - rows.begin, *it - cols.begin) = (*weight)[size_t(it - shared_pattern->col.begin())];
      }
      return block;
    });
    r.explanation.pattern = *pattern;

    // Query 0's product-key grid and which cells the search visits (figure export).
    if (options.explain && nq > 0) {
      Matrix grid(n, n), marks = Matrix::Zero(n, n);
      for (Index a = 0; a < n; ++a)
        for (Index b = 0; b < n; ++b) grid(a, b) = s1(0, a) + s2(0, b);
      for (Index t = 0; t < kp; ++t) {
        marks.row(top1[size_t(t)]).array() += 1;
        marks.col(top2[size_t(t)]).array() += 1;
      }
      for (Index t = 0; t < k; ++t) marks(pattern->col[size_t(t)] / n, pattern->col[size_t(t)] % n) = 3;
      r.explanation.factors.push_back(
          {"product-key grid (query 0)",
           "s¹_a + s²_b = q·[C¹_a, C²_b] for row a (first-half sub-key) and column b (second-half sub-key): "
           "the unscaled score of product key a·n + b; a sum of a row and a column profile",
           grid});
      r.explanation.factors.push_back(
          {"search marks (query 0)",
           "0: not visited; 1: in a top-k' row or a top-k' column of the sub-key scores (only one); 2: a "
           "candidate (top-k' row × top-k' column); 3: one of the final top k",
           marks});
      r.explanation.factors.push_back({"s¹ (query 0)", "scores of the n first-half sub-keys, C¹q¹", Matrix(s1.topRows(1))});
      r.explanation.factors.push_back({"s² (query 0)", "scores of the n second-half sub-keys, C²q²", Matrix(s2.topRows(1))});
    }
    r.explanation.factors.push_back({"captured mass", "per query: the share of the softmax over all n² keys that "
                                     "its top k hold", Matrix(Eigen::Map<const MatrixD>(captured.data(), 1, nq).cast<float>())});

    // Steps: sub-key scores → candidates → top k.
    if (options.explain) {
      auto score_view = std::make_shared<Explanation>();
      if (nq * kp * kp <= kMaxCandidateEntries) {
        Pattern cand;
        cand.rows = nq;
        cand.cols = slots;
        cand.components = {"candidates (top-k rows × top-k cols)"};
        cand.row_ptr.assign(size_t(nq + 1), 0);
        cand.col.reserve(size_t(nq * kp * kp));
        std::vector<std::int32_t> row;
        for (Index i = 0; i < nq; ++i) {
          row.clear();
          for (Index ta = 0; ta < kp; ++ta)
            for (Index tb = 0; tb < kp; ++tb)
              row.push_back(std::int32_t(top1[size_t(i * kp + ta)] * n + top2[size_t(i * kp + tb)]));
          std::sort(row.begin(), row.end());
          cand.col.insert(cand.col.end(), row.begin(), row.end());
          cand.row_ptr[size_t(i + 1)] = Index(cand.col.size());
        }
        cand.component.assign(cand.col.size(), 0);
        score_view->pattern = std::move(cand);
      } else {
        score_view->notes.push_back("the candidate pattern (N·k'² = " + std::to_string(nq * kp * kp) +
                                    " cells) is too large to show; see query 0's search marks");
      }
      score_view->factors = r.explanation.factors;
      auto top_view = std::make_shared<Explanation>();
      top_view->pattern = r.explanation.pattern;
      top_view->weights = r.explanation.weights;
      r.explanation.steps = {
          {"sub-key scores", "Split q into halves; score each half against its n sub-keys (s¹ = C¹q¹, s² = C²q²) "
           "and keep the top k' = " + std::to_string(kp) + " of each: the k'² cells (a, b) in those rows and "
           "columns are the only candidates.", score_view},
          {"top-k", "The top k = " + std::to_string(k) + " of the candidate sums s¹_a + s²_b are exactly the top k "
           "of all n² product keys; a softmax over them weights the value rows V[a·n + b].", top_view},
      };
    }

    char buf[200];
    std::snprintf(buf, sizeof buf, "the top %lld slots hold %.1f%% of the softmax over all %lld keys (mean over queries)",
                  static_cast<long long>(k), 100 * mean_captured, static_cast<long long>(slots));
    r.explanation.notes.push_back(buf);
    std::snprintf(buf, sizeof buf, "each query scores %lld half-keys and %lld candidate pairs instead of %lld keys",
                  static_cast<long long>(2 * n), static_cast<long long>(kp * kp), static_cast<long long>(slots));
    r.explanation.notes.push_back(buf);
    r.explanation.notes.push_back("the input's K and V are not used: keys are the n² product keys, values a random "
                                  "n²×dv table (stand-ins for learned parameters)");
    if (options.causal)
      r.explanation.notes.push_back("causal: each token reads the memory with its own query, so nothing mixes "
                                    "positions and the output is the non-causal one; memory slots have no "
                                    "position, so the reference is not causal-masked either");

    const double nqd = double(nq);
    r.cost.scored_pairs = nqd * double(n + kp * kp);  // 2n half-key dot products = n keys, plus k'² sums
    r.cost.flops = nqd * (2.0 * double(n) * double(d) + double(kp * kp) + 2.0 * double(k) * double(d + dv));
    r.cost.peak_bytes = backend.peakBytes() + Index(sizeof(float)) * (2 * nq * n + Index(used.size()) * (d + dv) + nq * dv) +
                        nq * k * Index(2 * sizeof(std::int32_t) + 1 + 2 * sizeof(float)) +
                        kp * kp * Index(sizeof(float) * 3 + sizeof(std::int32_t));
    return r;
  }

 private:
  /// The sub-key tables for these inputs (UserError when d is odd).
  static Memory memory(const Inputs& in, const Params& p) {
    const Index d = in.q.cols();
    if (d % 2 != 0)
      throw UserError("product keys split each query into two halves, so the head size d must be even (it is " +
                      std::to_string(d) + "); choose an even d");
    Memory mem;
    mem.n = p.integer("n");
    mem.half = d / 2;
    mem.seed = in.spec.seed;
    const double sigma = p.number("key_scale");
    Rng r1(mem.seed, 1201), r2(mem.seed, 1202);  // one stream per table: growing n keeps the first rows
    mem.c1 = r1.gaussian(mem.n, mem.half, sigma);
    mem.c2 = r2.gaussian(mem.n, mem.half, sigma);
    return mem;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeProductKeyMemory() { return std::make_shared<ProductKeyMemory>(); }
}  // namespace attn::mech
