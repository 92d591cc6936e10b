#include "attention/mechanisms/summary_engine.h"

#include <algorithm>
#include <cmath>

#include "attention/mechanisms/common.h"
#include "attention/parallel.h"
#include "attention/plan.h"

namespace attn::mech {

SummaryPattern foveaPattern(Index n, Index window, Index per_level, Index base, bool causal, bool children_count,
                            const RunOptions& options) {
  SummaryPattern sp;
  sp.rows = sp.tokens = n;
  sp.token_keys.resize(size_t(n));
  sp.node_keys.resize(size_t(n));
  sp.level_names = {"token"};
  std::vector<Index> sizes{1};
  while (sizes.back() < n) sizes.push_back(sizes.back() * base);  // the top level spans everything
  for (size_t l = 1; l < sizes.size(); ++l) sp.level_names.push_back("span of " + std::to_string(sizes[l]));
  std::vector<std::vector<std::int32_t>> ids(sizes.size());
  for (size_t l = 1; l < sizes.size(); ++l) ids[l].assign(size_t((n + sizes[l] - 1) / sizes[l]), -1);
  auto node = [&](size_t level, Index start) -> std::int32_t {  // the aligned span at `start`
    const Index s = start / sizes[level];
    std::int32_t& id = ids[level][size_t(s)];
    if (id < 0) {
      id = std::int32_t(sp.nodes.size());
      sp.nodes.push_back({Range{s * sizes[level], std::min(n, (s + 1) * sizes[level])}, int(level)});
    }
    return id;
  };
  for (Index i = 0; i < n; ++i) {
    if ((i & 1023) == 1023) options.checkCancel();
    auto& tokens = sp.token_keys[size_t(i)];
    auto& spans = sp.node_keys[size_t(i)];
    Index lo = std::max<Index>(0, i - window), hi = causal ? i + 1 : std::min(n, i + window + 1);
    for (Index j = lo; j < hi; ++j) tokens.push_back(std::int32_t(j));
    auto take = [&](size_t level, Index start) {
      if (level == 0) tokens.push_back(std::int32_t(start));
      else spans.push_back(node(level, start));
    };
    for (size_t l = 1; l < sizes.size() && (lo > 0 || (!causal && hi < n)); ++l) {
      const Index size = sizes[l], child = sizes[l - 1];
      // Left: children up to the alignment of this level, then spans: per_level of them, or (when the
      // children count among the level's nodes) what per_level leaves after the children.
      Index taken = 0;
      while (lo > 0 && lo % size != 0) take(l - 1, lo -= child), ++taken;
      for (Index t = children_count ? taken : 0; t < per_level && lo > 0; ++t) take(l, lo -= size);
      if (causal) continue;
      taken = 0;
      while (hi < n && hi % size != 0) take(l - 1, hi), hi += child, ++taken;
      for (Index t = children_count ? taken : 0; t < per_level && hi < n; ++t) take(l, hi), hi += size;
    }
    std::sort(tokens.begin(), tokens.end());
  }
  return sp;
}

void attendWithSummaries(const Inputs& in, std::shared_ptr<const SummaryPattern> sp, Backend& backend,
                         const RunOptions& options, Result& r, Index max_coverage) {
  const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols();
  const Index nodes = Index(sp->nodes.size());
  // Extended keys and values: the tokens, then one mean row per node (prefix sums: O((M + nodes)·d)).
  auto keys = std::make_shared<Matrix>(m + nodes, d);
  Matrix values(m + nodes, dv);
  timedStage(r.cost, options, "summarise", [&] {
    keys->topRows(m) = in.k;
    values.topRows(m) = in.v;
    MatrixD ck = MatrixD::Zero(m + 1, d), cv = MatrixD::Zero(m + 1, dv);
    for (Index j = 0; j < m; ++j) {
      ck.row(j + 1) = ck.row(j) + in.k.row(j).cast<double>();
      cv.row(j + 1) = cv.row(j) + in.v.row(j).cast<double>();
    }
    for (Index t = 0; t < nodes; ++t) {
      const Range s = sp->nodes[size_t(t)].span;
      const double len = double(std::max<Index>(1, s.size()));
      keys->row(m + t) = ((ck.row(s.end) - ck.row(s.begin)) / len).cast<float>();
      values.row(m + t) = ((cv.row(s.end) - cv.row(s.begin)) / len).cast<float>();
    }
  });
  auto extended = std::make_shared<Pattern>();
  extended->rows = n;
  extended->cols = m + nodes;
  extended->components = sp->level_names;
  extended->row_ptr.push_back(0);
  for (Index i = 0; i < n; ++i) {
    for (std::int32_t j : sp->token_keys[size_t(i)]) {
      extended->col.push_back(j);
      extended->component.push_back(0);
    }
    std::vector<std::int32_t> ns = sp->node_keys[size_t(i)];
    std::sort(ns.begin(), ns.end());
    for (std::int32_t t : ns) {
      extended->col.push_back(std::int32_t(m + t));
      extended->component.push_back(std::uint8_t(sp->nodes[size_t(t)].level));
    }
    extended->row_ptr.push_back(Index(extended->col.size()));
  }
  const float scale = defaultScale(d);
  AttentionOutput a = timedStage(r.cost, options, "attend",
                                 [&] { return backend.sparseAttention(in.q, *keys, values, *extended, scale); });
  r.output = std::move(a.out);

  // Implied weights over the M tokens: token entries directly, node entries spread over their spans.
  auto q = std::make_shared<const Matrix>(in.q);
  auto lse = std::make_shared<const Vector>(std::move(a.lse));
  r.explanation.weights = ImpliedWeights(n, m, [q, keys, extended, sp, lse, scale, m](Range rows, Range cols) {
    Matrix block = Matrix::Zero(rows.size(), cols.size());
    for (Index i = rows.begin; i < rows.end; ++i) {
      const float l = (*lse)(i);
      if (!std::isfinite(l)) continue;
      for (Index e = extended->row_ptr[size_t(i)]; e < extended->row_ptr[size_t(i + 1)]; ++e) {
        const Index key = extended->col[size_t(e)];
        const float p = std::exp(scale * q->row(i).dot(keys->row(key)) - l);
        if (key < m) {
          if (key >= cols.begin && key < cols.end) block(i - rows.begin, key - cols.begin) += p;
          continue;
        }
        const Range s = sp->nodes[size_t(key - m)].span;
        const Index lo = std::max(s.begin, cols.begin), hi = std::min(s.end, cols.end);
        const float share = p / float(std::max<Index>(1, s.size()));
        for (Index j = lo; j < hi; ++j) block(i - rows.begin, j - cols.begin) += share;
      }
    }
    return block;
  });

  // The pattern: the pairs scored one by one (token entries; mass recall counts these). The coverage
  // (each pair tagged with the level of the token or node that covers it) is a step of its own.
  {
    Pattern direct;
    direct.rows = n;
    direct.cols = m;
    direct.components = {sp->level_names.empty() ? std::string("token") : sp->level_names[0]};
    direct.row_ptr.push_back(0);
    for (Index i = 0; i < n; ++i) {
      direct.col.insert(direct.col.end(), sp->token_keys[size_t(i)].begin(), sp->token_keys[size_t(i)].end());
      direct.row_ptr.push_back(Index(direct.col.size()));
    }
    direct.component.assign(direct.col.size(), 0);
    r.explanation.pattern = std::move(direct);
  }
  if (options.explain && n * m <= max_coverage) {
    displayStage(r.cost, options, "coverage", [&] {
      Pattern cover;
      cover.rows = n;
      cover.cols = m;
      cover.components = sp->level_names;
      // Each pair of the N×M view is visited (4M at N = 2048): rows in parallel, twice — count, then fill
      // the pattern's arrays in place (no growing, no joining).
      auto levelsOf = [&](Index i, std::vector<int>& level) {
        std::fill(level.begin(), level.end(), -1);
        for (std::int32_t j : sp->token_keys[size_t(i)]) level[size_t(j)] = 0;
        for (std::int32_t t : sp->node_keys[size_t(i)]) {
          const SummaryNode& node = sp->nodes[size_t(t)];
          for (Index j = node.span.begin; j < node.span.end; ++j)
            if (level[size_t(j)] < 0) level[size_t(j)] = node.level;
        }
      };
      constexpr Index kRows = 64;
      const Index blocks = (n + kRows - 1) / kRows;
      cover.row_ptr.assign(size_t(n + 1), 0);
      parallelFor(blocks, 0, [&](Index b) {
        std::vector<int> level(static_cast<size_t>(m));
        for (Index i = b * kRows; i < std::min(n, (b + 1) * kRows); ++i) {
          levelsOf(i, level);
          cover.row_ptr[size_t(i + 1)] = Index(std::count_if(level.begin(), level.end(), [](int l) { return l >= 0; }));
        }
      });
      for (Index i = 0; i < n; ++i) cover.row_ptr[size_t(i + 1)] += cover.row_ptr[size_t(i)];
      cover.col.resize(size_t(cover.row_ptr.back()));
      cover.component.resize(size_t(cover.row_ptr.back()));
      parallelFor(blocks, 0, [&](Index b) {
        std::vector<int> level(static_cast<size_t>(m));
        for (Index i = b * kRows; i < std::min(n, (b + 1) * kRows); ++i) {
          levelsOf(i, level);
          Index e = cover.row_ptr[size_t(i)];
          for (Index j = 0; j < m; ++j)
            if (level[size_t(j)] >= 0) {
              cover.col[size_t(e)] = std::int32_t(j);
              cover.component[size_t(e++)] = std::uint8_t(level[size_t(j)]);
            }
        }
      });
      auto view = std::make_shared<Explanation>();
      view->pattern = std::move(cover);
      r.explanation.steps.push_back(Step{"Coverage",
                                         "each token or summary node shades the tokens it covers, "
                                         "coloured by its level",
                                         std::move(view)});
    });
  } else if (options.explain) {
    r.explanation.notes.push_back("coverage view skipped: N·M is above " + std::to_string(max_coverage));
  }
  TokenSet summaries{"summary nodes", "summary", {}, {}, keys->bottomRows(nodes)};
  for (const SummaryNode& node : sp->nodes) summaries.spans.push_back(node.span);
  r.explanation.special.push_back(std::move(summaries));
  r.cost.scored_pairs = double(extended->nnz());
  r.cost.flops = 2 * r.cost.scored_pairs * double(d + dv) + double(nodes + m) * double(d + dv);
  r.cost.peak_bytes = backend.peakBytes() + (m + nodes) * (d + dv) * Index(sizeof(float)) +
                      extended->nnz() * Index(sizeof(std::int32_t) + 1) + n * dv * Index(sizeof(float));
}

void planSummaries(RunPlan& plan, const RunShape& s, double token_keys, double node_keys, double nodes,
                   const RunOptions& options, const std::string& parameter, const std::string& advice,
                   Index max_coverage) {
  const double n = double(s.n), m = double(s.m);
  token_keys = std::min(token_keys, m);
  const double entries = n * (token_keys + node_keys);
  // Per row its lists (grown by doubling), the extended pattern (twice: grown) and the pattern shown.
  plan.add(entries * 4 * 2 + n * 48 + 2 * patternBytes(entries, n) + 2 * patternBytes(n * token_keys, n) +
               sparseWorkspaceBytes(token_keys + node_keys, s),
           "the keys and summary nodes each query attends (N × keys per row)", parameter, advice);
  plan.add((m + nodes) * double(s.d + s.dv) * sizeof(float) + nodes * 24, "the summary nodes' keys and values",
           parameter);
  if (options.explain && n * m <= double(max_coverage))
    plan.add(patternBytes(n * m, n) + 64 * m * sizeof(int) * 8, "the coverage view (N × M, formed to be seen)");
  plan.flops += 2 * entries * double(s.d + s.dv) + (nodes + m) * double(s.d + s.dv);
}

}  // namespace attn::mech
