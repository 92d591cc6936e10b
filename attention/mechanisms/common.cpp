#include "attention/mechanisms/common.h"

#include <cstdio>
#include <numeric>

#include "attention/plan.h"

namespace attn::mech {

std::string fixedDigits(double x, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

Pattern patternFromRows(Index rows, Index cols, const std::vector<std::vector<std::int32_t>>& col_lists,
                        const std::vector<std::vector<std::uint8_t>>& comp_lists, std::vector<std::string> components) {
  Pattern p;
  p.rows = rows;
  p.cols = cols;
  p.components = std::move(components);
  p.row_ptr.resize(size_t(rows + 1), 0);
  for (Index i = 0; i < rows; ++i) p.row_ptr[size_t(i + 1)] = p.row_ptr[size_t(i)] + Index(col_lists[size_t(i)].size());
  p.col.reserve(size_t(p.nnz()));
  p.component.reserve(size_t(p.nnz()));
  for (Index i = 0; i < rows; ++i) {
    p.col.insert(p.col.end(), col_lists[size_t(i)].begin(), col_lists[size_t(i)].end());
    p.component.insert(p.component.end(), comp_lists[size_t(i)].begin(), comp_lists[size_t(i)].end());
  }
  return p;
}

double allKeysPatternBytes(const RunShape& s, const RunOptions& options) {
  const double pairs = double(s.n) * double(s.m);
  return options.explain && pairs <= double(kMaxAllKeysPatternEntries) ? patternBytes(pairs, double(s.n)) : 0.0;
}

Pattern allKeysPattern(Index n, Index m, std::vector<std::string> components,
                       const std::function<void(Index, std::uint8_t*)>& part) {
  Pattern p;
  p.rows = n;
  p.cols = m;
  p.components = std::move(components);
  p.row_ptr.resize(size_t(n + 1));
  p.col.resize(size_t(n * m));
  p.component.resize(size_t(n * m));
  for (Index i = 0; i < n; ++i) {
    p.row_ptr[size_t(i + 1)] = (i + 1) * m;
    std::iota(p.col.begin() + i * m, p.col.begin() + (i + 1) * m, std::int32_t(0));
    part(i, p.component.data() + i * m);
  }
  return p;
}

}  // namespace attn::mech
