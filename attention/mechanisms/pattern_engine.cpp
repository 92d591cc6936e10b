#include "attention/mechanisms/pattern_engine.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "attention/mechanisms/common.h"
#include "attention/parallel.h"
#include "attention/plan.h"

namespace attn::mech {

void PatternBuilder::add(std::string name, std::function<void(Index, std::vector<Index>&)> keys) {
  names_.push_back(std::move(name));
  components_.push_back(std::move(keys));
}

namespace {

/// Rows [begin, end) of a CSR pattern, built on its own (by one thread), appended in order later.
struct RowSegment {
  std::vector<std::int32_t> col;
  std::vector<std::uint8_t> component;
  std::vector<Index> count;  ///< entries per row
};

constexpr Index kSegmentRows = 128;

/// Concatenates segments of consecutive rows into `p` (row_ptr starting at 0 already there).
void appendSegments(Pattern& p, std::vector<RowSegment>& segments) {
  size_t total = p.col.size();
  for (const RowSegment& s : segments) total += s.col.size();
  p.col.reserve(total);
  p.component.reserve(total);
  for (RowSegment& s : segments) {
    p.col.insert(p.col.end(), s.col.begin(), s.col.end());
    p.component.insert(p.component.end(), s.component.begin(), s.component.end());
    for (Index c : s.count) p.row_ptr.push_back(p.row_ptr.back() + c);
    s = RowSegment{};  // release as we go
  }
}

}  // namespace

Pattern PatternBuilder::build(const RunOptions& options) const {
  Pattern p;
  p.rows = rows_;
  p.cols = cols_;
  p.components = names_;
  p.row_ptr.reserve(size_t(rows_ + 1));
  p.row_ptr.push_back(0);
  // Per row: each key is marked with the first component that names it (a byte per column, reset after
  // the row), then read back in ascending order: by sorting the few keys a sparse row touches, or by one
  // scan of the marks for a dense row (sorting (key, component) pairs was 3× slower for BigBird). Blocks
  // of rows are built in parallel: components are pure functions of the row.
  constexpr std::uint8_t kUnset = 0xFF;
  if (components_.size() >= kUnset) throw std::logic_error("PatternBuilder: too many components");
  // At most 32 segments (each allocates a byte per column: 32·M bytes in all, however large N is).
  const Index segment_rows = std::max(kSegmentRows, (rows_ + 31) / 32);
  std::vector<RowSegment> segments(static_cast<size_t>((rows_ + segment_rows - 1) / segment_rows));
  parallelFor(Index(segments.size()), 0, [&](Index s) {
    options.checkCancel();
    RowSegment& out = segments[size_t(s)];
    std::vector<std::uint8_t> mark(static_cast<size_t>(cols_), kUnset);
    std::vector<Index> keys;
    std::vector<std::int32_t> touched;
    for (Index i = s * segment_rows; i < std::min(rows_, (s + 1) * segment_rows); ++i) {
      if (((i - s * segment_rows) & 4095) == 4095) options.checkCancel();
      touched.clear();
      const Index visible = causal_ ? std::min(cols_, i + 1) : cols_;
      for (size_t c = 0; c < components_.size(); ++c) {
        keys.clear();
        components_[c](i, keys);
        for (Index j : keys)
          if (j >= 0 && j < visible && mark[size_t(j)] == kUnset) {
            mark[size_t(j)] = std::uint8_t(c);
            touched.push_back(std::int32_t(j));
          }
      }
      if (Index(touched.size()) * 16 >= visible) {  // dense row: one scan
        for (Index j = 0; j < visible; ++j)
          if (mark[size_t(j)] != kUnset) {
            out.col.push_back(std::int32_t(j));
            out.component.push_back(mark[size_t(j)]);
            mark[size_t(j)] = kUnset;
          }
      } else {
        std::sort(touched.begin(), touched.end());
        for (std::int32_t j : touched) {
          out.col.push_back(j);
          out.component.push_back(mark[size_t(j)]);
          mark[size_t(j)] = kUnset;
        }
      }
      out.count.push_back(Index(touched.size()));
    }
  });
  appendSegments(p, segments);
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

void planPattern(RunPlan& plan, const RunShape& s, double entries, double keys, const std::string& what,
                 const std::string& parameter, const std::string& advice) {
  entries = std::min(entries, double(s.n) * double(s.m));
  keys = std::min(keys, double(s.m));
  // Built in segments then joined (twice its size at the join), then copied into the explanation.
  plan.add(3 * patternBytes(entries, double(s.n)) + sparseWorkspaceBytes(keys, s), what, parameter, advice);
  plan.flops += 2 * entries * double(s.d + s.dv);
}

void planTwoHops(RunPlan& plan, const RunShape& s, double entries, const RunOptions& options, double max_entries) {
  if (!options.explain) return;
  const double n = double(s.n), words = std::ceil(double(s.m) / 64);
  // Bit rows of both patterns when they fit (2²³ words each), the pairs reached (at most max_entries).
  const double bits = n * words <= double(Index(1) << 23) ? 2 * n * words * 8 + n * sizeof(Index) : 0.0;
  plan.add(bits + patternBytes(std::min(n * double(s.m), max_entries), n) + patternBytes(entries, n),
           "the two-hop view (formed to be seen, up to N × M pairs)");
}

std::optional<Pattern> composePatterns(const Pattern& p, const Pattern& q, Index max_entries, bool residual) {
  Pattern out;
  out.rows = p.rows;
  out.cols = q.cols;
  out.components = {"2 hops"};
  out.row_ptr.push_back(0);
  // Rows of q as bitsets when they fit in 64 MB: a row of the product is the OR of the rows it passes
  // through (N·k·N/64 word operations instead of N·k² marks: 20× faster for BigBird at N = 2048), and
  // reading the bits back gives the columns already sorted.
  const Index words = (q.cols + 63) / 64;
  if (q.rows > 0 && words > 0 && q.rows * words <= (Index(1) << 23) && p.rows * words <= (Index(1) << 23)) {
    std::vector<std::uint64_t> bits(size_t(q.rows * words), 0);
    for (Index k = 0; k < q.rows; ++k) {
      std::uint64_t* row_bits = bits.data() + k * words;
      if (residual && k < q.cols) row_bits[k / 64] |= std::uint64_t(1) << (k % 64);
      for (Index f = q.row_ptr[size_t(k)]; f < q.row_ptr[size_t(k + 1)]; ++f) {
        const Index j = q.col[size_t(f)];
        if (j >= 0 && j < q.cols) row_bits[j / 64] |= std::uint64_t(1) << (j % 64);
      }
    }
    // A row with the same keys as the row before (and no residual hop of its own) reaches the same
    // keys: block-structured patterns (BigBird: every row of a block) copy the row before instead.
    auto sameKeysAsPrevious = [&](Index i) {
      if (residual || i == 0) return false;
      const Index b0 = p.row_ptr[size_t(i - 1)], b1 = p.row_ptr[size_t(i)], e1 = p.row_ptr[size_t(i + 1)];
      return e1 - b1 == b1 - b0 && std::equal(p.col.begin() + b1, p.col.begin() + e1, p.col.begin() + b0);
    };
    // Pass 1: each row's reachable set as a bitset (p.rows × words; the same bound as q's bitsets), in
    // parallel blocks of rows. Pass 2: the exact size, checked against the budget before allocating.
    // Pass 3: the bits read back into their final place, in parallel (no growing, no concatenating).
    std::vector<std::uint64_t> reach(size_t(p.rows * words), 0);
    std::vector<Index> count(static_cast<size_t>(p.rows), 0);
    const Index blocks = (p.rows + kSegmentRows - 1) / kSegmentRows;
    parallelFor(blocks, 0, [&](Index b) {
      const Index first = b * kSegmentRows, last = std::min(p.rows, (b + 1) * kSegmentRows);
      for (Index i = first; i < last; ++i) {
        std::uint64_t* acc = reach.data() + i * words;
        if (i > first && sameKeysAsPrevious(i)) {
          std::copy_n(acc - words, words, acc);
        } else {
          auto hop = [&](Index k) {
            if (k < 0 || k >= q.rows) return;
            const std::uint64_t* row_bits = bits.data() + k * words;
            for (Index w = 0; w < words; ++w) acc[w] |= row_bits[w];
          };
          if (residual) hop(i);
          for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) hop(p.col[size_t(e)]);
        }
        Index c = 0;
        for (Index w = 0; w < words; ++w) c += std::popcount(acc[w]);
        count[size_t(i)] = c;
      }
    });
    out.row_ptr.resize(size_t(p.rows + 1));
    for (Index i = 0; i < p.rows; ++i) {
      out.row_ptr[size_t(i + 1)] = out.row_ptr[size_t(i)] + count[size_t(i)];
      if (out.row_ptr[size_t(i + 1)] > max_entries) return std::nullopt;
    }
    out.col.resize(size_t(out.row_ptr.back()));
    parallelFor(blocks, 0, [&](Index b) {
      for (Index i = b * kSegmentRows; i < std::min(p.rows, (b + 1) * kSegmentRows); ++i) {
        const std::uint64_t* acc = reach.data() + i * words;
        std::int32_t* at = out.col.data() + out.row_ptr[size_t(i)];
        for (Index w = 0; w < words; ++w)
          for (std::uint64_t x = acc[w]; x; x &= x - 1) *at++ = std::int32_t(w * 64 + std::countr_zero(x));
      }
    });
    out.component.assign(out.col.size(), 0);
    return out;
  }
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
