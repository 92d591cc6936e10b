#include "attention/mechanisms/grid_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "attention/inputs.h"

namespace attn::mech {

Grid gridFor(Index n, Index width, const std::string& who) {
  if (width <= 0) {
    const Index w = gridWidth(n);
    return {n / w, w};
  }
  if (n % width != 0) {
    std::string divisors;
    int listed = 0;
    for (Index c = 1; c <= n && listed < 12; ++c)
      if (n % c == 0) divisors += (listed++ ? ", " : "") + std::to_string(c);
    throw UserError(who + ": grid width " + std::to_string(width) + " does not divide N = " + std::to_string(n) +
                    " (the tokens are an H×W grid in raster order); set width to a divisor of N (" + divisors +
                    (listed == 12 ? ", ..." : "") + ") or to 0 for the most square grid");
  }
  return {n / width, width};
}

Grid gridOfRun(const Inputs& in, Index width, const std::string& who) {
  if (in.m() != in.n())
    throw UserError(who + " needs as many keys as queries (both are the same H×W grid); these inputs have " +
                    std::to_string(in.n()) + " queries and " + std::to_string(in.m()) + " keys");
  // Width 0: the input's own grid when it has one (a photo's H×W), else the most square grid.
  if (width <= 0 && in.grid_width > 0 && in.n() % in.grid_width == 0) return gridFor(in.n(), in.grid_width, who);
  return gridFor(in.n(), width, who);
}

std::string gridNote(const Grid& g, Index width_param, const Inputs& in) {
  const bool from_input = width_param <= 0 && in.grid_width > 0 && in.grid_width == g.w;
  return "grid " + std::to_string(g.h) + "×" + std::to_string(g.w) +
         (from_input ? " (the input image's grid)" : width_param <= 0 ? " (width: the largest divisor of N ≤ √N)" : "");
}

ParamSpec widthParam() {
  return ParamSpec::integer("width", "Grid width W", "Tokens form an H×W grid in raster order, W must divide N; "
                            "0: the image input's grid (a photo's H×W), else the largest divisor of N ≤ √N.", 0, 0, 1 << 22);
}

KeysFn rowKeys(const Grid& g) {
  return [g](Index i, std::vector<Index>& out) {
    const Index first = (i / g.w) * g.w;
    for (Index j = first; j < first + g.w; ++j) out.push_back(j);
  };
}

KeysFn columnKeys(const Grid& g) {
  return [g](Index i, std::vector<Index>& out) {
    for (Index j = i % g.w; j < g.n(); j += g.w) out.push_back(j);
  };
}

KeysFn columnAboveKeys(const Grid& g) {
  return [g](Index i, std::vector<Index>& out) {
    for (Index j = i % g.w; j < (i / g.w) * g.w; j += g.w) out.push_back(j);
  };
}

void addCross(PatternBuilder& builder, const Grid& g) {
  builder.add("column", columnKeys(g));
  builder.add("row", rowKeys(g));
}

std::shared_ptr<const SparseWeights> softmaxStage(const Matrix& q, const Matrix& k, float scale,
                                                  std::shared_ptr<const Pattern> pattern, const Vector& lse) {
  auto s = std::make_shared<SparseWeights>();
  s->value.resize(size_t(pattern->nnz()));
  for (Index i = 0; i < pattern->rows; ++i) {
    const float l = lse(i);
    for (Index e = pattern->row_ptr[size_t(i)]; e < pattern->row_ptr[size_t(i + 1)]; ++e)
      s->value[size_t(e)] =
          std::isfinite(l) ? std::exp(std::min(0.0f, scale * q.row(i).dot(k.row(pattern->col[size_t(e)])) - l)) : 0.0f;
  }
  s->pattern = std::move(pattern);
  return s;
}

std::shared_ptr<const SparseWeights> identityStage(Index n) {
  auto p = std::make_shared<Pattern>();
  p->rows = p->cols = n;
  p->components = {"identity"};
  p->row_ptr.resize(size_t(n + 1));
  p->col.resize(size_t(n));
  p->component.assign(size_t(n), 0);
  for (Index i = 0; i <= n; ++i) p->row_ptr[size_t(i)] = i;
  for (Index i = 0; i < n; ++i) p->col[size_t(i)] = std::int32_t(i);
  auto s = std::make_shared<SparseWeights>();
  s->pattern = std::move(p);
  s->value.assign(size_t(n), 1.0f);
  return s;
}

std::shared_ptr<const SparseWeights> stackOverIdentity(const SparseWeights& top) {
  const Pattern& a = *top.pattern;
  auto p = std::make_shared<Pattern>();
  p->rows = a.rows + a.cols;
  p->cols = a.cols;
  p->components = a.components;
  p->components.push_back("identity");
  p->row_ptr = a.row_ptr;
  p->col = a.col;
  p->component = a.component;
  auto s = std::make_shared<SparseWeights>();
  s->value = top.value;
  for (Index j = 0; j < a.cols; ++j) {
    p->col.push_back(std::int32_t(j));
    p->component.push_back(std::uint8_t(a.components.size()));
    p->row_ptr.push_back(Index(p->col.size()));
    s->value.push_back(1.0f);
  }
  s->pattern = std::move(p);
  return s;
}

ImpliedWeights composedWeights(std::vector<std::shared_ptr<const SparseWeights>> chain) {
  if (chain.empty()) throw std::logic_error("composedWeights: an empty chain");
  for (size_t s = 1; s < chain.size(); ++s)
    if (chain[s - 1]->cols() != chain[s]->rows()) throw std::logic_error("composedWeights: stages do not chain");
  const Index rows = chain.front()->rows(), cols = chain.back()->cols();
  auto fn = [chain = std::move(chain)](Range r, Range c) {
    Matrix block = Matrix::Zero(r.size(), c.size());
    // The partial row as a dense float64 vector over the stage's columns plus the list of those it touched.
    size_t widest = 0;
    for (const auto& s : chain) widest = std::max(widest, size_t(s->cols()));
    std::vector<double> acc(widest, 0.0), next(widest, 0.0);
    std::vector<char> in_acc(widest, 0), in_next(widest, 0);  // listed in touched / next_touched
    std::vector<std::int32_t> touched, next_touched;
    for (Index i = r.begin; i < r.end; ++i) {
      const SparseWeights& first = *chain.front();
      touched.clear();
      if (chain.size() == 1) {
        for (Index e = first.pattern->row_ptr[size_t(i)]; e < first.pattern->row_ptr[size_t(i + 1)]; ++e) {
          const Index j = first.pattern->col[size_t(e)];
          if (j >= c.begin && j < c.end) block(i - r.begin, j - c.begin) = first.value[size_t(e)];
        }
        continue;
      }
      for (Index e = first.pattern->row_ptr[size_t(i)]; e < first.pattern->row_ptr[size_t(i + 1)]; ++e) {
        const std::int32_t k = first.pattern->col[size_t(e)];
        if (!in_acc[size_t(k)]) in_acc[size_t(k)] = 1, touched.push_back(k);
        acc[size_t(k)] += double(first.value[size_t(e)]);
      }
      for (size_t s = 1; s < chain.size(); ++s) {
        const SparseWeights& stage = *chain[s];
        const Pattern& p = *stage.pattern;
        const bool last = s + 1 == chain.size();
        next_touched.clear();
        for (std::int32_t k : touched) {
          const double a = acc[size_t(k)];
          acc[size_t(k)] = 0.0;
          in_acc[size_t(k)] = 0;
          if (a == 0.0) continue;
          auto b = p.col.begin() + p.row_ptr[size_t(k)], e = p.col.begin() + p.row_ptr[size_t(k + 1)];
          if (last) {  // only the block's columns are needed
            b = std::lower_bound(b, e, std::int32_t(c.begin));
            e = std::lower_bound(b, e, std::int32_t(c.end));
          }
          for (auto it = b; it != e; ++it) {
            const std::int32_t j = *it;
            const double w = a * double(stage.value[size_t(it - p.col.begin())]);
            if (!in_next[size_t(j)]) in_next[size_t(j)] = 1, next_touched.push_back(j);
            next[size_t(j)] += w;
          }
        }
        std::swap(acc, next);
        std::swap(in_acc, in_next);
        std::swap(touched, next_touched);
      }
      for (std::int32_t j : touched) {
        block(i - r.begin, j - c.begin) = float(acc[size_t(j)]);
        acc[size_t(j)] = 0.0;
        in_acc[size_t(j)] = 0;
      }
    }
    return block;
  };
  return ImpliedWeights(rows, cols, fn);
}

Step gridStep(std::string title, std::string caption, std::optional<Pattern> pattern, ImpliedWeights weights) {
  auto view = std::make_shared<Explanation>();
  view->pattern = std::move(pattern);
  view->weights = std::move(weights);
  return Step{std::move(title), std::move(caption), std::move(view), ""};
}

double composedRowWork(const std::vector<double>& keys, double width) {
  double entries = keys.empty() ? 0 : keys.front(), work = 0;
  for (size_t s = 1; s < keys.size(); ++s) {
    work += entries * keys[s];
    entries = std::min(width, entries * keys[s]);
  }
  return work;
}

std::string composedWithheldText(const std::string& what, double work) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2g", work);
  return what + " would take " + buf + " multiply-adds to form row by row (more than 2³¹): not formed at this N";
}

}  // namespace attn::mech
