#include "app/figures/views.h"

#include <algorithm>
#include <cmath>

#include "attention/metrics.h"
#include "attention/pooling.h"

namespace attnlab::fig {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr attn::Index kMaxSortedN = 4096;  // permuted views form the dense N×N matrix

QString q(const std::string& s) { return QString::fromStdString(s); }

const attn::Grouping* firstSquareGrouping(const attn::Comparison& c, attn::Grouping& input_clusters) {
  const attn::Index n = c.inputs.n();
  if (n != c.inputs.m() || n > kMaxSortedN) return nullptr;
  for (const auto& g : c.approx.explanation.groupings)
    if (attn::Index(g.label.size()) == n) return &g;
  if (!c.inputs.cluster.empty() && attn::Index(c.inputs.cluster.size()) == n) {
    input_clusters = attn::Grouping::fromLabels("input clusters", c.inputs.cluster, std::int32_t(c.inputs.spec.clusters));
    return &input_clusters;
  }
  return nullptr;
}

std::vector<QString> componentNames(const attn::Pattern& p) {
  std::vector<QString> out;
  for (const auto& c : p.components) out.push_back(q(c));
  if (out.empty()) out.push_back("scored");
  return out;
}

}  // namespace

std::optional<View> parseView(const std::string& name) {
  const auto& names = viewNames();
  for (std::size_t k = 0; k < names.size(); ++k)
    if (names[k] == name) return View(k);
  return std::nullopt;
}

const std::vector<std::string>& viewNames() {
  static const std::vector<std::string> names = {"weights", "pattern", "groups", "diff", "tokens"};
  return names;
}

const char* viewName(View v) { return viewNames()[std::size_t(v)].c_str(); }

QString describeInputs(const attn::InputSpec& spec, bool causal) {
  QString s = QString("N=%1, d=%2, ").arg(spec.n).arg(spec.d);
  s += spec.source.empty() ? q(attn::generatorName(spec.generator)) + " input" : q(spec.source);
  if (spec.source.empty() && !attn::describeKnobs(spec).empty()) s += ", " + q(attn::describeKnobs(spec));
  return s + QString(", seed %1").arg(spec.seed) + (causal ? ", causal" : "");
}

MatrixFigure compareFigure(const std::vector<const attn::Comparison*>& comparisons, const ViewOptions& options) {
  if (comparisons.empty() || !comparisons.front()) throw attn::UserError("nothing to compare");
  const attn::Comparison& first = *comparisons.front();
  MatrixFigure f;
  f.theme = options.theme;
  f.values = options.values;
  QStringList names;
  for (const attn::Comparison* c : comparisons)
    if (c) names << q(c->mechanism->info().title);
  f.title = names.join(QStringLiteral("  vs  ")) + QStringLiteral("  vs  ") + q(first.reference_label);
  f.subtitle =
      describeInputs(first.inputs.spec, first.causal) + QString("   ·   %1 backend   ·   %2-pooled to ≤ %3 px")
                                                            .arg(q(first.backend_name))
                                                            .arg(options.pooling == attn::Pooling::Max ? "max" : "mean")
                                                            .arg(options.max_pixels);
  auto panel = [&](const attn::ImpliedWeights& w, const QString& title, const std::string& withheld = {}) {
    Panel p;
    p.title = title;
    p.pixels = w ? attn::pool(w, options.max_pixels, options.pooling, nullptr) : attn::Matrix();
    if (!w && !withheld.empty()) p.empty_text = "no implied weights: " + q(withheld);
    return p;
  };
  f.panels.push_back(panel(first.exact.explanation.weights,
                           q(first.reference_label) + (options.show_times ? QString("  (%1 ms)").arg(first.exact_ms, 0, 'f', 1) : QString())));
  for (const attn::Comparison* c : comparisons) {
    if (!c) continue;
    // The headline as describeMetrics gives it: a different operator has no error against softmax.
    QString title = q(c->mechanism->info().id) + "  " + q(attn::describeHeadlineShort(*c));
    if (options.show_times) title += QString("  (%1 ms)").arg(c->attentionMs(), 0, 'f', 1);
    f.panels.push_back(panel(c->approx.explanation.weights, title, c->approx.explanation.weights_withheld));
  }
  return f;
}

MatrixFigure comparisonFigure(const attn::Comparison& c, const ViewOptions& options) {
  const auto& info = c.mechanism->info();
  const auto& ex = c.approx.explanation;
  MatrixFigure f;
  f.theme = options.theme;
  f.values = options.values;
  f.title = q(info.title) + "  vs  " + q(c.reference_label);
  f.subtitle =
      describeInputs(c.inputs.spec, c.causal) + QString("   ·   %1 backend   ·   %2-pooled to ≤ %3 px")
                                                    .arg(q(c.backend_name))
                                                    .arg(options.pooling == attn::Pooling::Max ? "max" : "mean")
                                                    .arg(options.max_pixels);
  const attn::Index px = options.max_pixels;
  auto pooled = [&](const attn::ImpliedWeights& w, attn::Pooling pooling) {
    return attn::pool(w, px, pooling, nullptr);
  };
  const QString approx_title = q(info.id) + (options.show_times ? QString("  (%1 ms)").arg(c.attentionMs(), 0, 'f', 1) : QString());
  const QString exact_title = q(c.reference_label) + (options.show_times ? QString("  (%1 ms)").arg(c.exact_ms, 0, 'f', 1) : QString());
  // `mine`: the mechanism's weights (or a sorted copy), which it may have withheld above a size limit.
  auto weightsPanel = [&](const attn::ImpliedWeights& w, const QString& title, bool mine = false) {
    Panel p;
    p.title = title;
    p.pixels = w ? pooled(w, options.pooling) : attn::Matrix();
    if (mine && !w && !ex.weights_withheld.empty()) p.empty_text = "no implied weights: " + q(ex.weights_withheld);
    return p;
  };

  switch (options.view) {
    case View::Weights:
      f.panels.push_back(weightsPanel(c.exact.explanation.weights, exact_title));
      f.panels.push_back(weightsPanel(ex.weights, approx_title, true));
      break;
    case View::Pattern: {
      if (!ex.pattern)
        throw attn::UserError(info.id + " scores every pair (no sparsity pattern); try --view weights or diff");
      Panel p;
      p.title = "scored pairs  (" + QString::number(double(ex.pattern->nnz()) / (double(ex.pattern->rows) * double(ex.pattern->cols)) * 100, 'g', 3) + "% of N×M)";
      p.kind = Panel::Kind::Categorical;
      p.pixels = attn::poolPattern(*ex.pattern, px);
      p.categories = componentNames(*ex.pattern);
      f.panels.push_back(std::move(p));
      f.panels.push_back(weightsPanel(ex.weights, approx_title, true));
      break;
    }
    case View::Groups: {
      attn::Grouping input_clusters;
      const attn::Grouping* g = firstSquareGrouping(c, input_clusters);
      if (!g) {
        if (c.inputs.n() > kMaxSortedN) throw attn::UserError("the groups view sorts the N×N matrix: use N ≤ 4096");
        throw attn::UserError(info.id + " forms no buckets or clusters (and the input has no clusters); try --view weights");
      }
      const auto permuted = [&](const attn::ImpliedWeights& w) {
        return w && w.rows() == c.inputs.n() && w.cols() == c.inputs.m() ? attn::permuteWeights(w, g->order) : attn::ImpliedWeights();
      };
      Panel same;
      same.title = "same " + q(g->name);
      same.kind = Panel::Kind::Categorical;
      same.empty_label = "different groups";
      same.pixels = attn::poolGrouping(*g, &g->order, px);
      for (std::int32_t k = 0; k < std::min<std::int32_t>(g->groups, 8); ++k)
        same.categories.push_back(QString("group %1%2").arg(k).arg(g->groups > 8 ? QString(", %1, …").arg(k + 8) : QString()));
      Panel e = weightsPanel(permuted(c.exact.explanation.weights), exact_title);
      Panel a = weightsPanel(permuted(ex.weights), approx_title, true);
      // The strip: each pixel row's group (the first token it covers, in sorted order).
      std::vector<attn::Index> s, end;
      const attn::Index rows = same.pixels.rows();
      attn::tilePixelSpans(c.inputs.n(), rows, s, end);
      std::vector<int> strip;
      for (attn::Index r = 0; r < rows; ++r) strip.push_back(g->label[std::size_t(g->order[std::size_t(s[std::size_t(r)])])]);
      e.row_groups = a.row_groups = same.row_groups = strip;
      e.xlabel = a.xlabel = same.xlabel = "keys, sorted by " + q(g->name) + " →";
      e.ylabel = a.ylabel = same.ylabel = "← queries, sorted";
      f.panels.push_back(std::move(same));
      f.panels.push_back(std::move(e));
      f.panels.push_back(std::move(a));
      break;
    }
    case View::Diff: {
      if (!ex.weights) throw attn::UserError(info.id + " implies no attention weights to compare; its error is in the footer");
      if (ex.weights.rows() != c.exact.explanation.weights.rows() || ex.weights.cols() != c.exact.explanation.weights.cols())
        throw attn::UserError(info.id + "'s weights have another shape than its reference's; try --view weights");
      f.panels.push_back(weightsPanel(c.exact.explanation.weights, exact_title));
      f.panels.push_back(weightsPanel(ex.weights, approx_title, true));
      Panel d;
      d.title = "difference (mean per pixel)";
      d.kind = Panel::Kind::Signed;
      d.pixels = pooled(ex.weights, attn::Pooling::Mean) - pooled(c.exact.explanation.weights, attn::Pooling::Mean);
      f.panels.push_back(std::move(d));
      break;
    }
    case View::Tokens: {
      Panel p = weightsPanel(ex.weights, approx_title, true);
      std::vector<QString> roles;
      for (const auto& set : ex.special) {
        for (attn::Index t : set.indices)
          (set.queries_only ? p.row_marks : p.marks).push_back((double(t) + 0.5) / double(std::max<attn::Index>(1, c.inputs.n())));
        roles.push_back(QString("%1 %2").arg(set.indices.empty() ? set.vectors.rows() : attn::Index(set.indices.size())).arg(q(set.role)) +
                        (set.indices.empty() ? " (synthetic, not in the sequence)" : ""));
      }
      if (roles.empty()) throw attn::UserError(info.id + " has no special tokens (global tokens, landmarks, memories); try --view weights");
      if (p.marks.size() > 512) p.marks.resize(512);
      if (p.row_marks.size() > 512) p.row_marks.resize(512);
      p.title += "   ▸ marks: special tokens";
      f.panels.push_back(std::move(p));
      QString line = "special tokens: ";
      for (std::size_t k = 0; k < roles.size(); ++k) line += (k ? "; " : "") + roles[k];
      f.footer.push_back(line);
      break;
    }
  }
  QString err = q(attn::describeError(c));
  // Of the pairs exact attention scores: queries × its keys (product-key memory's are the memory slots).
  const attn::Inputs& scored = c.reference_inputs ? *c.reference_inputs : c.inputs;
  f.footer.push_back(err + QString("   ·   scored pairs %1 of %2")
                               .arg(c.approx.cost.scored_pairs, 0, 'g', 4)
                               .arg(double(scored.n()) * double(scored.m()), 0, 'g', 4));
  f.footer.push_back(q(info.idea));
  for (const std::string& line : info.conventions) f.footer.push_back(q(line));
  return f;
}

// ---- sweep curves -----------------------------------------------------------------------------------

CurveFigure sweepFigure(const attn::SweepResult& r, Curve curve, const std::vector<std::string>& ids,
                        const std::string& backend, const QString& group_title) {
  CurveFigure f;
  std::vector<std::string> all{"exact"};
  for (const auto& id : ids)
    if (id != "exact") all.push_back(id);
  const auto& s = r.spec;
  attn::InputSpec input = s.knobs;
  input.generator = s.generator;
  input.temperature = s.temperature;
  QString generator = q(attn::generatorName(s.generator)) + " input";
  if (!attn::describeKnobs(input).empty()) generator += ", " + q(attn::describeKnobs(input));
  f.subtitle = QString("%1, d = %2, %3%4 backend, median of %5 run(s) × %6 seed(s)")
                   .arg(generator)
                   .arg(s.d)
                   .arg(s.causal ? "causal, " : "")
                   .arg(q(backend))
                   .arg(s.repeats)
                   .arg(s.seeds);
  switch (curve) {
    case Curve::Time:
      f.title = group_title + ": time vs N";
      f.ylabel = "time per run (ms)";
      break;
    case Curve::Memory:
      f.title = group_title + ": peak memory vs N";
      f.ylabel = "peak bytes above the inputs";
      break;
    case Curve::Error:
      // The bounded headline: the share of each query's attention a mechanism puts elsewhere than exact
      // attention does. e_out (unbounded: relative to ‖O*‖, which is small when rows average many values) stays
      // in the table and the data files, with its scale.
      f.title = group_title + ": attention misplaced vs N";
      f.ylabel = "misplaced share (mean row TV)";
      f.subtitle += ", mean ± std over seeds";
      break;
    case Curve::Speedup:
      f.title = group_title + ": speed-up vs exact";
      f.ylabel = "time(exact) / time";
      f.hline = 1;
      break;
  }
  int style = 0;
  QStringList without_weights, operators;  // left out of the error figure, and said so
  for (const auto& id : all) {
    const auto mech = attn::findMechanism(id);
    if (!mech) continue;
    if (curve == Curve::Error && id != "exact" && !mech->info().approximates_softmax) operators << q(id);
    if (curve == Curve::Speedup && id == "exact") {
      ++style;
      continue;
    }
    if (curve == Curve::Error && (id == "exact" || !mech->info().approximates_softmax)) {
      ++style;
      continue;
    }
    Series ser;
    ser.style = style++;
    std::vector<double> xs, ys;
    for (attn::Index n : s.ns) {
      const auto* p = r.find(id, backend, n);
      const auto* e = r.find("exact", backend, n);
      if (!p || p->status != "ok") continue;
      double y = kNaN, lo = kNaN, hi = kNaN;
      switch (curve) {
        case Curve::Time:
          y = p->time_median;
          lo = p->time_p25;
          hi = p->time_p75;
          break;
        case Curve::Memory: y = p->peak_bytes; break;
        case Curve::Error:
          y = p->row_tv.mean;
          if (p->row_tv.count > 1) {
            lo = std::max(y - p->row_tv.std, y * 0.05);
            hi = y + p->row_tv.std;
          }
          break;
        case Curve::Speedup:
          if (e && e->status == "ok" && p->time_median > 0) y = e->time_median / p->time_median;
          break;
      }
      ser.x.push_back(double(n));
      ser.y.push_back(y);
      ser.lo.push_back(lo);
      ser.hi.push_back(hi);
      xs.push_back(double(n));
      ys.push_back(y);
    }
    if (curve == Curve::Error && std::none_of(ser.y.begin(), ser.y.end(), [](double v) { return std::isfinite(v); })) {
      without_weights << q(id);
      continue;
    }
    if (ser.x.empty()) continue;
    QString name = q(id);
    if (curve == Curve::Time || curve == Curve::Memory) {
      const double slope = attn::largeNSlope(xs, ys);
      if (std::isfinite(slope)) name += QString("  slope %1").arg(slope, 0, 'f', 2);
      if (curve == Curve::Time) name += QString(" (%1)").arg(attn::complexitySlope(mech->info().complexity), 0, 'g', 2);
    }
    if (curve == Curve::Speedup) {
      const double cross = attn::crossoverN(r, id, backend);
      if (std::isfinite(cross)) {
        name += QString("  ×1 at N≈%1").arg(std::lround(cross));
        f.marks.push_back({cross, QString("%1: %2").arg(q(id)).arg(std::lround(cross)), ser.style});
      } else if (cross < 0) {
        name += "  faster at every N";
      }
    }
    if (id == "exact") ser.dashed = true;
    ser.name = name;
    f.series.push_back(std::move(ser));
  }
  if (curve == Curve::Time) {
    // Complexity guides through exact's first point: slopes 1 and 2 (and 1.5 when a member has it).
    const auto* e0 = s.ns.empty() ? nullptr : r.find("exact", backend, s.ns.front());
    bool any_three_halves = false;
    for (const auto& id : all)
      if (const auto m = attn::findMechanism(id)) any_three_halves |= attn::complexitySlope(m->info().complexity) == 1.5;
    if (e0 && e0->status == "ok" && e0->time_median > 0) {
      f.guides.push_back({"slope 2 (N²)", 2, double(e0->n), e0->time_median});
      if (any_three_halves) f.guides.push_back({"slope 1.5 (N·√N)", 1.5, double(e0->n), e0->time_median});
      f.guides.push_back({"slope 1 (N)", 1, double(e0->n), e0->time_median});
    }
    f.footer.push_back(
        QString("Legend: log-log slope of the median time fitted over the %1 largest N, the complexity's "
                "slope in parentheses.")
            .arg(attn::k_slope_points));
    f.footer.push_back(
        QString("Bars: quartiles of the timed runs. Dotted: the complexities' slopes (%1) through exact's first point.")
            .arg(any_three_halves ? "1, 1.5, 2" : "1, 2"));
  }
  if (curve == Curve::Memory) {
    // What this figure's backend measured (a sweep over cpu and vulkan has both kinds).
    const auto measured = std::find_if(r.points.begin(), r.points.end(), [&](const attn::SweepPoint& p) {
      return p.backend == backend && p.status == "ok" && !p.peak_source.empty();
    });
    f.footer.push_back(measured == r.points.end() || measured->peak_source != "heap"
                           ? "Peak bytes: the backend's buffers (GPU) or the mechanism's own estimate."
                           : "Peak bytes: high-water mark of the process heap during the run (counting allocator).");
  }
  if (curve == Curve::Speedup)
    f.footer.push_back("Dashed line: as fast as exact. Marks: the crossover N, where a mechanism becomes and stays faster.");
  if (curve == Curve::Error) {
    QString rows = QString("every row up to N = %1").arg(s.max_metric_n);
    if (std::any_of(s.ns.begin(), s.ns.end(), [&](attn::Index n) { return n > s.max_metric_n; }))
      rows += QString(", %1 rows in 8 bands spread over the sequence above").arg(attn::metricRows(s.ns.back(), s.max_metric_n).count);
    f.footer.push_back("Misplaced: ½·Σ_j |A_ij − A*_ij|, the share of each query's attention not where exact attention "
                       "puts it, averaged over " + rows + "; 0 is exact, 1 is disjoint. e_out is in the table.");
    if (!without_weights.isEmpty())
      f.footer.push_back("Not drawn (no implied weights at these N; e_out in the table): " + without_weights.join(", ") + ".");
    if (!operators.isEmpty())
      f.footer.push_back("Not drawn (different operators, not approximations of softmax): " + operators.join(", ") + ".");
  }
  return f;
}

}  // namespace attnlab::fig
