#include "attention/mechanisms/bucket_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "attention/mechanisms/common.h"
#include "attention/plan.h"

namespace attn::mech {

BucketAttention attendBuckets(const Inputs& in, std::shared_ptr<const Matrix> q, std::shared_ptr<const Matrix> k,
                              const std::vector<BucketRound>& rounds, const BucketOptions& options, Backend& backend,
                              const RunOptions& run, Result& r) {
  const Index n = q->rows(), m = k->rows(), dv = in.v.cols();
  if (rounds.empty()) throw std::invalid_argument("attendBuckets: no rounds");
  if (options.chunk > 0 && n != m) throw UserError("chunking sorts queries and keys together: it needs N = M");
  for (const BucketRound& round : rounds)
    if (Index(round.q_label.size()) != n || Index(round.k_label.size()) != m)
      throw std::invalid_argument("attendBuckets: label counts do not match Q and K");
  const Index nr = Index(rounds.size());
  BucketAttention out;
  // Each round's candidate keys per query (ascending).
  std::vector<std::vector<std::vector<std::int32_t>>> per_round(static_cast<size_t>(nr), std::vector<std::vector<std::int32_t>>(static_cast<size_t>(n)));
  timedStage(r.cost, run, "chunk", [&] {
    for (Index h = 0; h < nr; ++h) {
      const BucketRound& round = rounds[size_t(h)];
      auto& rows = per_round[size_t(h)];
      if (options.chunk > 0) {
        const Index chunk = std::min(options.chunk, n);
        const Grouping sorted = Grouping::fromLabels("", round.q_label, round.groups);
        std::vector<std::int32_t> chunk_of(static_cast<size_t>(n));
        for (Index pos = 0; pos < n; ++pos) chunk_of[size_t(sorted.order[size_t(pos)])] = std::int32_t(pos / chunk);
        for (Index pos = 0; pos < n; ++pos) {
          const std::int32_t i = sorted.order[size_t(pos)];
          const Index c = pos / chunk;
          const Index first = (options.previous_chunk && c > 0 ? c - 1 : c) * chunk;
          const Index last = std::min(n, (c + 1) * chunk);
          auto& row = rows[size_t(i)];
          for (Index s = first; s < last; ++s) {
            const std::int32_t j = sorted.order[size_t(s)];
            if (options.same_label_in_chunk && round.k_label[size_t(j)] != round.q_label[size_t(i)]) continue;
            if (options.causal && j > i) continue;
            row.push_back(j);
          }
          std::sort(row.begin(), row.end());
        }
        out.order.push_back(sorted.order);
        out.chunk.push_back(std::move(chunk_of));
      } else {
        std::vector<std::vector<std::int32_t>> keys_of(static_cast<size_t>(std::max<std::int32_t>(round.groups, 1)));
        for (Index j = 0; j < m; ++j) keys_of[size_t(round.k_label[size_t(j)])].push_back(std::int32_t(j));
        for (Index i = 0; i < n; ++i) {
          const auto& keys = keys_of[size_t(round.q_label[size_t(i)])];
          auto& row = rows[size_t(i)];
          const auto end = options.causal ? std::upper_bound(keys.begin(), keys.end(), std::int32_t(i)) : keys.end();
          row.assign(keys.begin(), end);
        }
      }
      run.checkCancel();
    }
    // The self rule, over all rounds: i keeps i only when no round gives it another key.
    if (options.self_rule)
      for (Index i = 0; i < n; ++i) {
        bool others = false;
        for (Index h = 0; h < nr && !others; ++h)
          for (auto j : per_round[size_t(h)][size_t(i)]) others = others || j != i;
        if (!others) continue;
        for (Index h = 0; h < nr; ++h) {
          auto& row = per_round[size_t(h)][size_t(i)];
          row.erase(std::remove(row.begin(), row.end(), std::int32_t(i)), row.end());
        }
      }
  });

  // The union (tagged by the first round that has the pair) and each round with its multiplicity bias.
  std::vector<std::string> names;
  for (const BucketRound& round : rounds) names.push_back(round.name);
  std::vector<std::vector<std::int32_t>> ucols(static_cast<size_t>(n));
  std::vector<std::vector<std::uint8_t>> ucomps(static_cast<size_t>(n));
  std::vector<std::vector<float>> bias(static_cast<size_t>(nr));
  for (Index i = 0; i < n; ++i) {
    std::vector<std::pair<std::int32_t, std::uint8_t>> all;
    for (Index h = 0; h < nr; ++h)
      for (auto j : per_round[size_t(h)][size_t(i)]) all.emplace_back(j, std::uint8_t(std::min<Index>(h, 255)));
    std::sort(all.begin(), all.end());
    for (size_t e = 0; e < all.size();) {
      size_t f = e;
      while (f < all.size() && all[f].first == all[e].first) ++f;
      ucols[size_t(i)].push_back(all[e].first);
      ucomps[size_t(i)].push_back(all[e].second);
      e = f;
    }
    for (Index h = 0; h < nr; ++h)
      for (auto j : per_round[size_t(h)][size_t(i)]) {
        const auto range = std::equal_range(all.begin(), all.end(), std::make_pair(j, std::uint8_t(0)),
                                            [](auto a, auto b) { return a.first < b.first; });
        bias[size_t(h)].push_back(-std::log(float(range.second - range.first)));
      }
  }
  out.pattern = std::make_shared<const Pattern>(patternFromRows(n, m, ucols, ucomps, names));
  for (Index h = 0; h < nr; ++h) {
    std::vector<std::vector<std::uint8_t>> comps(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) comps[size_t(i)].assign(per_round[size_t(h)][size_t(i)].size(), std::uint8_t(0));
    out.rounds.push_back(std::make_shared<const Pattern>(
        patternFromRows(n, m, per_round[size_t(h)], comps, {rounds[size_t(h)].name})));
  }
  per_round.clear();

  Matrix o = Matrix::Zero(n, dv);
  Vector total_lse = Vector::Constant(n, -std::numeric_limits<float>::infinity());
  timedStage(r.cost, run, "attend + combine", [&] {
    std::vector<AttentionOutput> results;
    for (Index h = 0; h < nr; ++h) {
      results.push_back(backend.sparseAttention(*q, *k, in.v, *out.rounds[size_t(h)], options.scale,
                                                nr > 1 && options.count_pairs_once ? &bias[size_t(h)] : nullptr));
      run.checkCancel();
    }
    for (Index i = 0; i < n; ++i) {
      float mx = -std::numeric_limits<float>::infinity();
      for (const auto& res : results) mx = std::max(mx, res.lse(i));
      if (!std::isfinite(mx)) continue;
      double sum = 0;
      for (const auto& res : results)
        if (std::isfinite(res.lse(i))) sum += std::exp(double(res.lse(i) - mx));
      const float lse = mx + float(std::log(sum));
      total_lse(i) = lse;
      for (const auto& res : results)
        if (std::isfinite(res.lse(i))) o.row(i) += std::exp(res.lse(i) - lse) * res.out.row(i);
    }
  });
  r.output = std::move(o);
  if (options.count_pairs_once || nr == 1) {
    r.explanation.weights = patternSoftmaxWeights(q, k, options.scale, out.pattern, total_lse);
  } else {
    // A pair found by c rounds weighs c·exp(logit − lse): the sum of the rounds' entries, each over the
    // normaliser of all rounds.
    std::vector<ImpliedWeights> parts;
    for (const auto& p : out.rounds) parts.push_back(patternSoftmaxWeights(q, k, options.scale, p, total_lse));
    r.explanation.weights = ImpliedWeights(n, m, [parts = std::move(parts)](Range rows, Range cols) {
      Matrix block = parts.front().block(rows, cols);
      for (size_t h = 1; h < parts.size(); ++h) block += parts[h].block(rows, cols);
      return block;
    });
  }
  r.explanation.pattern = *out.pattern;
  Index round_pairs = 0;
  for (const auto& p : out.rounds) round_pairs += p->nnz();
  r.cost.scored_pairs = double(out.pattern->nnz());
  r.cost.flops = 2 * double(round_pairs) * double(q->cols() + dv);
  r.cost.peak_bytes = backend.peakBytes() + (out.pattern->nnz() + round_pairs) * Index(sizeof(std::int32_t) + 1) +
                      round_pairs * Index(sizeof(float)) + n * dv * Index(sizeof(float)) * (nr + 1);
  return out;
}

void planBuckets(RunPlan& plan, const RunShape& s, Index rounds, double keys, const std::string& parameter,
                 const std::string& advice) {
  const double n = double(s.n), pairs = double(rounds) * n * std::min(keys, double(s.m));
  const double joined = std::min(pairs, n * double(s.m));
  // Per pair of a round: its key (int32), its bias (float) and its pattern entry; per pair of the union: its
  // key and tag while united, the union pattern and its copy in the explanation.
  plan.add(pairs * (4 + 4 + 5) + joined * 15 + n * double(rounds) * 64,
           "the bucket pairs (rounds × N × keys per query)", parameter, advice);
  plan.add(double(rounds) * n * double(s.dv) * sizeof(float), "each round's output (rounds × N × dv floats)",
           parameter);
  plan.add(sparseWorkspaceBytes(std::min(keys, double(s.m)), s), "the attention's working rows", parameter);
  plan.flops += 2 * pairs * double(s.d + s.dv);
}

std::vector<std::string> groupColourNames(std::int32_t groups, const std::string& noun) {
  constexpr std::int32_t colours = 8;
  std::vector<std::string> names;
  for (std::int32_t c = 0; c < std::min(groups, colours); ++c) {
    std::string name = noun + " " + std::to_string(c + 1);
    if (c + 1 + colours <= groups) name += ", " + std::to_string(c + 1 + colours) + (c + 1 + 2 * colours <= groups ? ", …" : "");
    names.push_back(std::move(name));
  }
  return names;
}

std::optional<Pattern> sameGroupPattern(const std::vector<std::int32_t>& q_label,
                                        const std::vector<std::int32_t>& k_label, std::int32_t groups,
                                        const std::string& noun, bool causal, Index max_entries) {
  const Index n = Index(q_label.size()), m = Index(k_label.size());
  std::vector<std::vector<std::int32_t>> keys_of(static_cast<size_t>(std::max<std::int32_t>(groups, 1)));
  for (Index j = 0; j < m; ++j) keys_of[size_t(k_label[size_t(j)])].push_back(std::int32_t(j));
  Index total = 0;
  for (Index i = 0; i < n; ++i) total += Index(keys_of[size_t(q_label[size_t(i)])].size());
  if (total > max_entries) return std::nullopt;
  constexpr std::int32_t colours = 8;  // the views' categorical palette
  Pattern p;
  p.rows = n;
  p.cols = m;
  p.components = groupColourNames(groups, noun);
  p.row_ptr.push_back(0);
  for (Index i = 0; i < n; ++i) {
    const std::int32_t g = q_label[size_t(i)];
    for (std::int32_t j : keys_of[size_t(g)]) {
      if (causal && j > i) break;
      p.col.push_back(j);
      p.component.push_back(std::uint8_t(g % colours));
    }
    p.row_ptr.push_back(Index(p.col.size()));
  }
  return p;
}

}  // namespace attn::mech
