#include "attention/mechanisms/pattern_engine.h"

#include <algorithm>

#include "attention/mechanisms/common.h"

namespace attn::mech {

void PatternBuilder::add(std::string name, std::function<void(Index, std::vector<Index>&)> keys) {
  names_.push_back(std::move(name));
  components_.push_back(std::move(keys));
}

Pattern PatternBuilder::build(const RunOptions& options) const {
  Pattern p;
  p.rows = rows_;
  p.cols = cols_;
  p.components = names_;
  p.row_ptr.reserve(size_t(rows_ + 1));
  p.row_ptr.push_back(0);
  std::vector<Index> keys;
  std::vector<std::pair<Index, std::uint8_t>> row;
  for (Index i = 0; i < rows_; ++i) {
    if ((i & 4095) == 4095) options.checkCancel();
    row.clear();
    for (size_t c = 0; c < components_.size(); ++c) {
      keys.clear();
      components_[c](i, keys);
      for (Index j : keys)
        if (j >= 0 && j < cols_ && (!causal_ || j <= i)) row.emplace_back(j, std::uint8_t(c));
    }
    // Ascending keys; for equal keys the first component wins.
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end(), [](auto a, auto b) { return a.first == b.first; }), row.end());
    for (auto [j, c] : row) {
      p.col.push_back(std::int32_t(j));
      p.component.push_back(c);
    }
    p.row_ptr.push_back(Index(p.col.size()));
  }
  return p;
}

void attendPattern(const Inputs& in, std::shared_ptr<const Pattern> pattern, Backend& backend,
                   const RunOptions& options, Result& r) {
  const float scale = defaultScale(in.q.cols());
  AttentionOutput a =
      timedStage(r.cost, options, "attend", [&] { return backend.sparseAttention(in.q, in.k, in.v, *pattern, scale); });
  r.output = std::move(a.out);
  r.explanation.weights = patternSoftmaxWeights(std::make_shared<const Matrix>(in.q),
                                                std::make_shared<const Matrix>(in.k), scale, pattern, std::move(a.lse));
  r.explanation.pattern = *pattern;
  r.cost.scored_pairs = double(pattern->nnz());
  r.cost.flops = 2 * r.cost.scored_pairs * double(in.q.cols() + in.v.cols());
  r.cost.peak_bytes = backend.peakBytes() + pattern->nnz() * Index(sizeof(std::int32_t) + 1) +
                      in.n() * in.v.cols() * Index(sizeof(float));
}

std::optional<Pattern> composePatterns(const Pattern& p, const Pattern& q, Index max_entries, bool residual) {
  Pattern out;
  out.rows = p.rows;
  out.cols = q.cols;
  out.components = {"2 hops"};
  out.row_ptr.push_back(0);
  std::vector<char> seen(size_t(q.cols), 0);
  std::vector<std::int32_t> row;
  auto mark = [&](Index j) {
    if (j >= 0 && j < q.cols && !seen[size_t(j)]) seen[size_t(j)] = 1, row.push_back(std::int32_t(j));
  };
  auto hop = [&](Index k) {  // everything k reaches in q
    if (k >= q.rows) return;
    if (residual) mark(k);
    for (Index f = q.row_ptr[size_t(k)]; f < q.row_ptr[size_t(k + 1)]; ++f) mark(q.col[size_t(f)]);
  };
  for (Index i = 0; i < p.rows; ++i) {
    row.clear();
    if (residual) hop(i);
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) hop(p.col[size_t(e)]);
    for (std::int32_t j : row) seen[size_t(j)] = 0;
    std::sort(row.begin(), row.end());
    if (Index(out.col.size() + row.size()) > max_entries) return std::nullopt;
    out.col.insert(out.col.end(), row.begin(), row.end());
    out.row_ptr.push_back(Index(out.col.size()));
  }
  out.component.assign(out.col.size(), 0);
  return out;
}

Step patternStep(std::string title, std::string caption, Pattern pattern) {
  auto view = std::make_shared<Explanation>();
  view->pattern = std::move(pattern);
  return Step{std::move(title), std::move(caption), std::move(view)};
}

}  // namespace attn::mech
