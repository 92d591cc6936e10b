#include "app/figures/views.h"

#include <algorithm>
#include <cmath>

#include "attention/metrics.h"

namespace attnlab::fig {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

QString q(const std::string& s) { return QString::fromStdString(s); }

}  // namespace

std::optional<View> parseView(const std::string& name) {
  const auto& names = viewNames();
  for (std::size_t k = 0; k < names.size(); ++k)
    if (names[k] == name) return View(k);
  return std::nullopt;
}

const std::vector<std::string>& viewNames() {
  static const std::vector<std::string> names = {"weights", "pattern", "groups", "diff", "tokens", "step", "pixel", "gates"};
  return names;
}

const char* viewName(View v) { return viewNames()[std::size_t(v)].c_str(); }

scene::ViewRequest requestFor(const attn::Comparison& c, View v, scene::ViewRequest r) {
  const auto& info = c.mechanism->info();
  const auto& ex = c.approx.explanation;
  r.layout = v == View::Pixel ? scene::Layout::Pixel : v == View::Gates ? scene::Layout::Gates : scene::Layout::Matrix;
  switch (v) {
    case View::Gates: {
      if (const std::string why = scene::gatesRefusal(c); !why.empty()) throw attn::UserError("--view gates: " + why);
      if (r.third == scene::Third::Step) {
        const std::vector<std::string> all = scene::gatesStepTitles(c);
        std::string titles;
        for (std::size_t k = 0; k < all.size(); ++k) titles += (k ? ", " : "") + std::to_string(k + 1) + " " + all[k];
        if (all.empty()) throw attn::UserError("--view gates: no step of " + info.id + " has maps of its own; leave out --step");
        if (r.step < 0 || r.step >= int(all.size()))
          throw attn::UserError("--step takes 1 to " + std::to_string(all.size()) + " for the gates view of " + info.id +
                                " (" + titles + ")");
      }
      break;
    }
    case View::Pixel: {
      if (const std::string why = scene::pixelRefusal(c); !why.empty()) throw attn::UserError("--view pixel: " + why);
      if (!ex.weights || !scene::differenceAvailable(c))
        throw attn::UserError("--view pixel: " + attn::noWeightsText(c) + ", so no pixel's row to show; try --view weights");
      if (r.third == scene::Third::Step) {
        const std::vector<std::string> all = scene::pixelStepTitles(c);
        std::string titles;
        for (std::size_t k = 0; k < all.size(); ++k) titles += (k ? ", " : "") + std::to_string(k + 1) + " " + all[k];
        if (all.empty()) throw attn::UserError("--view pixel: no step of " + info.id + " implies weights of its own; leave out --step");
        if (r.step < 0 || r.step >= int(all.size()))
          throw attn::UserError("--step takes 1 to " + std::to_string(all.size()) + " for the pixel view of " + info.id + " (" +
                                titles + ")");
      }
      break;
    }
    case View::Weights:
    case View::Tokens:
      r.third = scene::Third::None;
      if (v == View::Tokens && ex.special.empty())
        throw attn::UserError(info.id + " has no special tokens (global tokens, landmarks, memories); try --view weights");
      break;
    case View::Pattern:
      if (!ex.pattern || ex.pattern->nnz() == 0)
        throw attn::UserError(info.id + " scores every pair (no sparsity pattern); try --view weights or diff");
      r.third = scene::Third::Pattern;
      break;
    case View::Groups: {
      std::string why;
      if (scene::ordersOf(c, &why).empty()) throw attn::UserError("--view groups: " + why + "; try --view weights");
      if (r.order.empty()) r.order = scene::resolveOrder(c, "buckets");
      r.third = scene::Third::Groups;
      break;
    }
    case View::Diff:
      if (!ex.weights) throw attn::UserError(info.id + " implies no attention weights to compare; its error is in the footer");
      if (!scene::differenceAvailable(c))
        throw attn::UserError(info.id + "'s weights have another shape than its reference's; try --view weights");
      r.third = scene::Third::Difference;
      break;
    case View::Step: {
      const std::vector<std::string> all = scene::stepTitles(c);
      const int steps = int(all.size());
      std::string titles;
      for (int k = 0; k < steps; ++k) titles += (k ? ", " : "") + std::to_string(k + 1) + " " + all[std::size_t(k)];
      if (steps == 0) throw attn::UserError(info.id + " has no steps to show; try --view weights or pattern");
      if (r.step < 0 || r.step >= steps)
        throw attn::UserError("--step takes 1 to " + std::to_string(steps) + " for " + info.id + " (" + titles + ")");
      r.third = scene::Third::Step;
      break;
    }
  }
  return r;
}

SceneFigure sceneFigure(const scene::Subject& subject, const scene::ViewRequest& request, const FigureStyle& style,
                        attn::Backend* backend) {
  return SceneFigure(scene::build(subject, request, backend), style);
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
      double y = k_nan, lo = k_nan, hi = k_nan;
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
