// The view model: pool() what a request can show, compose() the scene from it.
#include "render/scene/build.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "attention/mechanisms/bucket_engine.h"
#include "attention/pooling.h"
#include "render/scene/gates_view.h"
#include "render/scene/pixel_view.h"

namespace attnlab::scene {

namespace {

constexpr const char* k_dot = " \xC2\xB7 ";  // " · "
// A grouping step with more tokens than this per pixel is drawn sorted by its own groups.
constexpr attn::Index k_tokens_per_pixel_for_own_sort = 4;

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void checkCancel(const std::atomic<bool>* cancel) {
  if (cancel && cancel->load()) throw attn::Cancelled();
}

/// A pattern's component names; a pattern without names has one component, "scored".
std::vector<std::string> componentNames(const attn::Pattern& p) {
  return p.components.empty() ? std::vector<std::string>{"scored"} : p.components;
}

const attn::Grouping* findGrouping(const std::vector<attn::Grouping>& gs, const std::string& name) {
  for (const attn::Grouping& g : gs)
    if (g.name == name) return &g;
  return nullptr;
}

/// What a factor's axes index, from its name ("ω (features × d)" → rows "feature", cols "d").
std::pair<std::string, std::string> factorAxes(const std::string& name) {
  const auto open = name.rfind('('), cross = name.find("\xC3\x97", open == std::string::npos ? 0 : open);
  if (open == std::string::npos || cross == std::string::npos) return {"row", "column"};
  const auto close = name.find(')', cross);
  auto trim = [](std::string s) {
    while (!s.empty() && s.front() == ' ') s.erase(s.begin());
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  };
  return {trim(name.substr(open + 1, cross - open - 1)),
          trim(name.substr(cross + 2, close == std::string::npos ? std::string::npos : close - cross - 2))};
}

void copyImage(Panel& p, const Image& im) {
  p.values = im.values;
  p.shown_rows = im.rows;
  p.shown_cols = im.cols;
  p.source_rows = im.source_rows;
  p.source_cols = im.source_cols;
}

/// Rank scale: every continuous panel on the shared scale holds its weights' ranks among all weights shown,
/// so colours still compare across panels (ties take their middle).
void applyRank(Scene& scene) {
  std::vector<float> all;
  auto shared = [](const Panel& p) { return p.categories.empty() && !p.signed_values && !p.own_scale; };
  for (const Panel& p : scene.panels)
    if (shared(p))
      for (attn::Index k = 0; k < p.values.size(); ++k)
        if (!std::isnan(p.values.data()[k])) all.push_back(p.values.data()[k]);
  if (all.empty()) return;
  std::sort(all.begin(), all.end());
  const double last = std::max<double>(1, double(all.size() - 1));
  auto ranked = [&](const attn::Matrix& values) {
    attn::Matrix r(values.rows(), values.cols());
    for (attn::Index k = 0; k < values.size(); ++k) {
      const float v = values.data()[k];
      if (std::isnan(v)) {
        r.data()[k] = v;
        continue;
      }
      const auto lo = std::lower_bound(all.begin(), all.end(), v), hi = std::upper_bound(all.begin(), all.end(), v);
      r.data()[k] = float((double(lo - all.begin()) + double(std::max<std::ptrdiff_t>(0, hi - lo - 1)) / 2) / last);
    }
    return r;
  };
  for (Panel& p : scene.panels)
    if (shared(p) && p.values.size() > 0) {
      p.raw_values = p.values;
      p.values = ranked(p.raw_values);
    }
  if (scene.minimap.values.size() > 0) scene.minimap.values = ranked(scene.minimap.values);
  scene.scale.lo = 0;
  scene.scale.hi = 1;
  scene.legend_title = "weight rank";
}

/// Whether a step has an image: a pattern, a grouping of the N tokens, or a non-empty factor.
bool showable(const attn::Step& step, attn::Index n) {
  if (!step.view) return false;
  return step.view->pattern || (!step.view->groupings.empty() && attn::Index(step.view->groupings.front().label.size()) == n) ||
         (!step.view->factors.empty() && step.view->factors.front().value.size() > 0);
}

}  // namespace

std::vector<std::string> stepTitles(const attn::Comparison& c) {
  std::vector<std::string> out;
  for (const attn::Step& step : c.approx.explanation.steps)
    if (showable(step, c.inputs.n())) out.push_back(step.title);
  return out;
}

const char* thirdName(Third t) {
  switch (t) {
    case Third::Auto: return "auto";
    case Third::None: return "none";
    case Third::Pattern: return "pattern";
    case Third::Step: return "step";
    case Third::Difference: return "difference";
    case Third::Groups: return "groups";
  }
  return "auto";
}

std::optional<Third> parseThird(const std::string& name) {
  for (Third t : {Third::Auto, Third::None, Third::Pattern, Third::Step, Third::Difference, Third::Groups})
    if (name == thirdName(t)) return t;
  return std::nullopt;
}

std::string formatMs(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.2f ms" : "%.1f ms", ms);
  return buf;
}

std::string sizeText(const Panel& p, const std::string& what) {
  const attn::Index rows = p.source_rows, cols = p.source_cols;
  const attn::Range sr = p.shown_rows, sc = p.shown_cols;
  const char* pooling = p.pooling.c_str();
  char buf[200];
  if (sr.size() > 0 && sc.size() > 0 && (sr.size() < rows || sc.size() < cols)) {
    // Zoomed: which block of the matrix, and how it is pooled.
    const bool whole = p.values.rows() == sr.size() && p.values.cols() == sc.size();
    std::snprintf(buf, sizeof buf, "i %lld\xE2\x80\x93%lld, j %lld\xE2\x80\x93%lld of %lld\xC3\x97%lld%s%s%s",
                  static_cast<long long>(sr.begin), static_cast<long long>(sr.end - 1), static_cast<long long>(sc.begin),
                  static_cast<long long>(sc.end - 1), static_cast<long long>(rows), static_cast<long long>(cols),
                  whole ? "" : ", ", whole ? "" : pooling, whole ? "" : "-pooled");
    return buf;
  }
  if (p.values.rows() == rows && p.values.cols() == cols)
    std::snprintf(buf, sizeof buf, "%lld\xC3\x97%lld %s", static_cast<long long>(rows), static_cast<long long>(cols),
                  what.c_str());
  else
    std::snprintf(buf, sizeof buf, "%lld\xC3\x97%lld, %s-pooled to %lld\xC3\x97%lld", static_cast<long long>(rows),
                  static_cast<long long>(cols), pooling, static_cast<long long>(p.values.rows()),
                  static_cast<long long>(p.values.cols()));
  return buf;
}

std::vector<attn::Grouping> ordersOf(const attn::Comparison& c, std::string* unavailable) {
  std::vector<attn::Grouping> orders;
  const attn::Index n = c.inputs.n(), m = c.inputs.m();
  std::vector<attn::Grouping> candidates;
  for (const attn::Grouping& g : c.approx.explanation.groupings)
    if (attn::Index(g.order.size()) == n) candidates.push_back(g);
  if (!c.inputs.cluster.empty() && attn::Index(c.inputs.cluster.size()) == n)
    candidates.push_back(
        attn::Grouping::fromLabels("input clusters", c.inputs.cluster, std::int32_t(c.inputs.spec.clusters)));
  std::string why;
  if (candidates.empty())
    why = c.mechanism->info().title + " forms no buckets or clusters (and the input has none)";
  else if (n != m)
    why = "its keys (" + std::to_string(m) + ") are not the queries (" + std::to_string(n) + "): nothing to sort";
  else if (n > k_max_sorted_n)
    why = "sorting forms the N\xC3\x97N matrix: N = " + std::to_string(n) + " is above " +
          std::to_string(k_max_sorted_n);
  else
    orders = std::move(candidates);
  if (unavailable) *unavailable = orders.empty() ? why : std::string();
  return orders;
}

std::string resolveOrder(const attn::Comparison& c, const std::string& word) {
  if (word.empty() || word == "position") return {};
  std::string why;
  const std::vector<attn::Grouping> orders = ordersOf(c, &why);
  if (orders.empty()) throw attn::UserError("--order " + word + ": " + why + "; use --order position");
  if (const attn::Grouping* g = findGrouping(orders, word)) return g->name;
  if (word == "buckets" || word == "clusters") {
    const std::string stem = word.substr(0, word.size() - 1);
    for (const attn::Grouping& g : orders)
      if (g.name.find(stem) != std::string::npos && g.name != "input clusters") return g.name;
    if (word == "clusters" && findGrouping(orders, "input clusters")) return "input clusters";
    return orders.front().name;
  }
  std::string names;
  for (const attn::Grouping& g : orders) names += (names.empty() ? "'" : ", '") + g.name + "'";
  throw attn::UserError("--order takes position, buckets, clusters or one of " + names + ", not '" + word + "'");
}

bool differenceAvailable(const attn::Comparison& c) {
  const auto& a = c.approx.explanation.weights;
  const auto& e = c.exact.explanation.weights;
  return a && e && a.rows() == c.inputs.n() && a.cols() == c.inputs.m() && e.rows() == a.rows() && e.cols() == a.cols();
}

std::vector<std::string> thirdChoices(const Pooled& p) {
  std::vector<std::string> out;
  if (p.pattern.values.size() > 0) out.push_back("pattern");
  for (const StepImage& s : p.steps) out.push_back(s.title);
  if (p.subject.main && differenceAvailable(*p.subject.main)) out.push_back("difference");
  return out;
}

Pooled pool(const Subject& subject, const ViewRequest& request, attn::Backend* backend,
            const std::atomic<bool>* cancel, PoolCache* cache) {
  if (!subject.main) throw attn::UserError("nothing to show: no comparison");
  if (request.layout == Layout::Pixel) return poolPixel(subject, request, cancel);
  if (request.layout == Layout::Gates) return poolGates(subject, request, cancel);
  const auto start = std::chrono::steady_clock::now();
  const attn::Comparison& c = *subject.main;
  const attn::Explanation& ex = c.approx.explanation;
  Pooled out;
  out.subject = subject;
  out.request = request;
  const attn::Index n = c.inputs.n(), m = c.inputs.m();
  const attn::Index px = std::max<attn::Index>(1, request.pixels);

  // Token orders: the mechanism's groupings of N tokens, and the input's clusters.
  const std::vector<attn::Grouping> orders = ordersOf(c, &out.orders_unavailable);
  for (const attn::Grouping& g : orders) out.orders.push_back(g.name);
  const attn::Grouping* order = request.order.empty() ? nullptr : findGrouping(orders, request.order);
  out.order = order ? order->name : std::string();
  if (order) out.token_at = order->order;
  // An order change: where each pixel row of the new images was in the old order (for an animation).
  if (request.previous_order && *request.previous_order != out.order && n == m && request.window.full()) {
    const attn::Grouping* previous = findGrouping(orders, *request.previous_order);
    std::vector<std::int32_t> rank(static_cast<std::size_t>(n));  // token → position in the previous order
    for (attn::Index k = 0; k < n; ++k) rank[std::size_t(previous ? previous->order[std::size_t(k)] : k)] = std::int32_t(k);
    std::vector<attn::Index> s, e;
    attn::tilePixelSpans(n, std::min(n, px), s, e);
    for (std::size_t q = 0; q < s.size(); ++q) {
      double sum = 0;
      for (attn::Index pos = s[q]; pos < e[q]; ++pos) sum += rank[std::size_t(order ? order->order[std::size_t(pos)] : pos)];
      out.moved_from.push_back(float((sum / double(e[q] - s[q]) + 0.5) / double(n)));
    }
  }
  if (const attn::Grouping* g = order ? order : (orders.empty() ? nullptr : &orders.front())) {
    out.group_name = g->name;
    out.token_groups.resize(std::size_t(n));
    for (attn::Index pos = 0; pos < n; ++pos)
      out.token_groups[std::size_t(pos)] = g->label[std::size_t(order ? order->order[std::size_t(pos)] : pos)];
  }
  const ViewWindow& window = request.window;
  auto shownOf = [&](attn::Index rows, attn::Index cols, Image& im) {
    im.rows = viewRange(window.row0, window.row1, rows);
    im.cols = viewRange(window.col0, window.col1, cols);
    im.source_rows = rows;
    im.source_cols = cols;
  };
  Image square;
  shownOf(n, m, square);
  if (order) {  // the group strip: one label per pixel row of the images pooled below
    std::vector<attn::Index> rs, re;
    attn::tilePixelSpans(square.rows.size(), std::min(square.rows.size(), px), rs, re);
    for (std::size_t q = 0; q < rs.size(); ++q)
      out.row_groups.push_back(order->label[std::size_t(order->order[std::size_t(square.rows.begin + rs[q])])]);
  }
  auto sorted = [&](const attn::ImpliedWeights& w) {
    // Only N×N matrices are sorted (a memory's reference, product-key memory, has n² columns).
    return order && w && w.rows() == n && w.cols() == n ? attn::permuteWeights(w, order->order) : w;
  };
  auto poolWeights = [&](const attn::ImpliedWeights& w, attn::Pooling pooling) {
    Image im;
    if (!w) return im;
    shownOf(w.rows(), w.cols(), im);
    im.values = attn::pool(sorted(w), im.rows, im.cols, px, pooling, backend);
    return im;
  };

  // Exact attention: reused from the cache while nothing it depends on changed.
  {
    const std::vector<std::int32_t> permutation = order ? order->order : std::vector<std::int32_t>();
    if (cache && c.reference_inputs && cache->reference == c.reference_inputs && cache->window == window &&
        cache->pooling == request.pooling && cache->pixels == px && cache->permutation == permutation) {
      out.exact = cache->exact;
    } else {
      out.exact = poolWeights(c.exact.explanation.weights, request.pooling);
      if (cache) *cache = {c.reference_inputs, window, request.pooling, px, permutation, out.exact};
    }
  }
  checkCancel(cancel);
  out.approx = poolWeights(ex.weights, request.pooling);
  checkCancel(cancel);
  if (request.third == Third::Difference && differenceAvailable(c)) {
    // Mean pooling keeps the sign: a pixel shows the average of what the mechanism adds or drops there.
    out.difference = poolWeights(ex.weights, attn::Pooling::Mean);
    out.difference.values -= poolWeights(c.exact.explanation.weights, attn::Pooling::Mean).values;
    checkCancel(cancel);
  }
  if (request.minimap && !window.full()) {  // the whole matrix, small, beside the zoomed panels
    const attn::ImpliedWeights& whole = ex.weights ? ex.weights : c.exact.explanation.weights;
    if (whole) {
      out.minimap.values = attn::pool(sorted(whole), k_minimap_pixels, request.pooling, backend);
      out.minimap.source_rows = whole.rows();
      out.minimap.source_cols = whole.cols();
      out.minimap.rows = {0, whole.rows()};
      out.minimap.cols = {0, whole.cols()};
    }
  }
  // A pattern with no entry (every key reached through a summary) would draw an empty square: left out.
  if (ex.pattern && ex.pattern->nnz() > 0) {
    const attn::Pattern& p = *ex.pattern;
    shownOf(p.rows, p.cols, out.pattern);
    const bool n_by_n = p.rows == n && p.cols == n;
    const attn::Grouping* by = n_by_n ? order : nullptr;
    // Many tokens a pixel in position order: nearly every pixel holds a scored pair of a content-based pattern
    // (a solid square). Sorted by the mechanism's own grouping its clusters or buckets show as blocks.
    if (!by && n_by_n && n > k_tokens_per_pixel_for_own_sort * px && !ex.groupings.empty() &&
        attn::Index(ex.groupings.front().order.size()) == n) {
      by = &ex.groupings.front();
      out.pattern_sorted_by = by->name;
    }
    out.pattern.values = attn::poolPattern(by ? attn::permutePattern(p, by->order) : p, out.pattern.rows,
                                           out.pattern.cols, px);
    out.pattern_components = componentNames(p);
  }
  if (order) {  // "tokens i and j share a group" under the order's grouping
    shownOf(n, n, out.groups);
    out.groups.values = attn::poolGrouping(*order, &order->order, out.groups.rows, out.groups.cols, px);
    out.group_count = order->groups;
  }
  checkCancel(cancel);
  for (const attn::Step& step : ex.steps) {
    if (!showable(step, n)) continue;
    // The step's own order (the "sort" stage) wins over the request's; only N×N images are sorted.
    const attn::Grouping* step_order = order;
    if (!step.sorted_by.empty()) {
      step_order = findGrouping(step.view->groupings, step.sorted_by);
      if (!step_order) step_order = findGrouping(ex.groupings, step.sorted_by);
    }
    if (step_order && attn::Index(step_order->order.size()) != n) step_order = nullptr;
    StepImage si;
    si.title = step.title;
    si.caption = step.caption;
    bool permuted = false, self_sorted = false;
    if (const auto& p = step.view->pattern) {
      const bool sq = p->rows == n && p->cols == n;
      permuted = sq && step_order;
      shownOf(p->rows, p->cols, si.image);
      si.image.values = attn::poolPattern(permuted ? attn::permutePattern(*p, step_order->order) : *p, si.image.rows,
                                          si.image.cols, px);
      si.components = componentNames(*p);
      si.what = "pattern";
    } else if (!step.view->groupings.empty() && attn::Index(step.view->groupings.front().label.size()) == n) {
      const attn::Grouping& g = step.view->groupings.front();
      // Many tokens a pixel in position order: nearly every pixel holds some pair of one group, and the image is a
      // solid square. Sorted by its own groups it shows them as blocks (the labels alone are permuted: any N).
      if (!step_order && n > k_tokens_per_pixel_for_own_sort * px && attn::Index(g.order.size()) == n) {
        step_order = &g;
        self_sorted = true;
      }
      permuted = step_order != nullptr;
      shownOf(n, n, si.image);
      si.image.values = attn::poolGrouping(g, step_order ? &step_order->order : nullptr, si.image.rows, si.image.cols, px);
      si.components = attn::mech::groupColourNames(g.groups, "group");
      si.what = "same group: " + g.name;
    } else if (!step.view->factors.empty() && step.view->factors.front().value.size() > 0) {
      const auto f = std::make_shared<const attn::Matrix>(step.view->factors.front().value);
      const attn::ImpliedWeights values(f->rows(), f->cols(), [f](attn::Range rows, attn::Range cols) {
        return attn::Matrix(f->block(rows.begin, cols.begin, rows.size(), cols.size()));
      });
      si.signed_values = f->minCoeff() < 0;
      si.image.values = attn::pool(values, px, si.signed_values ? attn::Pooling::Mean : request.pooling, nullptr);
      si.image.source_rows = f->rows();
      si.image.source_cols = f->cols();
      si.image.rows = {0, f->rows()};
      si.image.cols = {0, f->cols()};
      si.zoomable = false;  // a small factor: shown whole
      si.what = step.view->factors.front().name;
      si.factor_name = si.what;
    } else {
      continue;
    }
    if (permuted && (!order || step_order->name != order->name || self_sorted)) {
      si.what += k_dot + std::string("sorted by ") + step_order->name;
      si.own_order = true;
    }
    out.steps.push_back(std::move(si));
    checkCancel(cancel);
  }
  for (const attn::Companion& other : subject.others) {
    Image im;
    if (other.comparison) im = poolWeights(other.comparison->approx.explanation.weights, request.pooling);
    out.others.push_back(std::move(im));
    checkCancel(cancel);
  }
  // Special tokens that are sequence positions, in displayed positions, at most k_max_marks of them.
  std::vector<std::int32_t> position(order ? order->order.size() : 0);  // token → sorted position
  for (std::size_t k = 0; k < position.size(); ++k) position[std::size_t(order->order[k])] = std::int32_t(k);
  for (const attn::TokenSet& set : ex.special) {
    auto& marks = set.queries_only ? out.row_marks : out.marks;
    out.marks_total += set.indices.size();
    for (attn::Index t : set.indices)
      if (marks.size() < k_max_marks) marks.push_back(order ? position[std::size_t(t)] : t);
  }
  out.pool_ms = msSince(start);
  return out;
}

Scene compose(const Pooled& pooled, const ViewRequest& request) {
  if (request.layout == Layout::Pixel || request.layout == Layout::Gates) {
    Scene scene = request.layout == Layout::Pixel ? composePixel(pooled, request) : composeGates(pooled, request);
    if (request.scale == ScaleMode::Rank) applyRank(scene);
    return scene;
  }
  Scene scene;
  const Subject& subject = pooled.subject;
  const attn::Comparison& c = *subject.main;
  const attn::MechanismInfo& info = c.mechanism->info();
  const attn::Explanation& ex = c.approx.explanation;
  const std::string pooling = request.pooling == attn::Pooling::Max ? "max" : "mean";
  const bool pending = attn::metricsPending(c);
  const bool compare_mode = !subject.others.empty();

  scene.colormap = request.colormap;
  scene.scale.mode = request.scale;
  scene.scale.floor = request.floor;
  scene.scale.lo = 0;
  scene.view = request.window;
  scene.group_name = pooled.group_name;
  scene.token_groups = pooled.token_groups;
  scene.token_at = pooled.token_at;

  auto weightsPanel = [&](const Image& im, const std::string& title, const std::string& role) {
    Panel p;
    p.title = title;
    p.role = role;
    p.pooling = pooling;
    copyImage(p, im);
    if (p.values.rows() > 0 && pooled.row_groups.size() == std::size_t(p.values.rows())) p.row_groups = pooled.row_groups;
    return p;
  };

  Panel exact = weightsPanel(pooled.exact, c.reference_label.empty() ? std::string("exact") : c.reference_label, "exact");
  exact.subtitle = sizeText(exact);
  exact.empty_text = "exact attention implies no weights here";
  exact.captions.push_back(std::string("softmax attention") + (request.times ? k_dot + formatMs(c.exact_ms) : ""));

  Panel approx = weightsPanel(pooled.approx, info.title, "mechanism");
  if (!ex.weights) {
    approx.source_rows = c.inputs.n();
    approx.source_cols = c.inputs.m();
  }
  approx.subtitle = ex.weights ? sizeText(approx) : std::string("no implied weight matrix");
  approx.empty_text = attn::noWeightsText(c);
  for (const std::string& metric : attn::describeMetrics(c)) approx.captions.push_back(metric);
  if (request.times) {
    std::string timing = formatMs(c.attentionMs());
    if (pending) timing += k_dot + std::string("row TV\xE2\x80\xA6");
    approx.captions.push_back(timing);
    if (c.approx.cost.display_ms() >= 1)
      approx.captions.push_back("+" + formatMs(c.approx.cost.display_ms()) + " building this view");
  }
  approx.marks = pooled.marks;
  approx.row_marks = pooled.row_marks;
  scene.scale.hi = std::max({finiteMax(exact.values), finiteMax(approx.values), 1e-30f});
  scene.panels.push_back(std::move(exact));
  scene.panels.push_back(std::move(approx));

  // The third panel (compare mode: the other mechanisms instead).
  const std::vector<std::string> choices = thirdChoices(pooled);
  Third third = request.third;
  int step = request.step;
  if (third == Third::Auto) {
    if (pooled.pattern.values.size() > 0) third = Third::Pattern;
    else if (!pooled.steps.empty()) third = Third::Step, step = 0;
    else third = Third::None;
  }
  if (compare_mode) {
    for (std::size_t k = 0; k < subject.others.size(); ++k) {
      const attn::Companion& other = subject.others[k];
      const auto mechanism = attn::findMechanism(other.id);
      Panel panel = weightsPanel(k < pooled.others.size() ? pooled.others[k] : Image(),
                                 mechanism ? mechanism->info().title : other.id, "other");
      if (panel.source_rows == 0) {
        panel.source_rows = c.inputs.n();
        panel.source_cols = c.inputs.m();
      }
      if (other.comparison) {
        const attn::Comparison& oc = *other.comparison;  // its size line is exact's (one window, one pooling)
        if (other.error.empty()) {
          for (const std::string& metric : attn::describeMetrics(oc)) panel.captions.push_back(metric);
        } else {  // it ran, but its error against exact could not be measured
          panel.captions.push_back("no error measured: " + other.error);
        }
        if (request.times) panel.captions.push_back(formatMs(oc.attentionMs()));
        scene.scale.hi = std::max(scene.scale.hi, finiteMax(panel.values));
        panel.empty_text = attn::noWeightsText(oc);
      } else {
        panel.empty_text = other.id + " could not run: " + other.error;
      }
      scene.panels.push_back(std::move(panel));
    }
  } else if (third == Third::Difference) {
    Panel p = weightsPanel(pooled.difference, "difference", "difference");
    p.pooling = "mean";
    p.signed_values = true;
    p.marks = pooled.marks;
    p.row_marks = pooled.row_marks;
    if (p.values.size() > 0) {
      p.signed_range = absMax(p.values);
      p.subtitle = sizeText(p);
      p.captions.push_back(info.title + " \xE2\x88\x92 exact, mean per pixel");
      p.captions.push_back("blue: less weight than exact" + std::string(k_dot) + "red: more" + k_dot + "\xC2\xB1" +
                           formatValue(p.signed_range, 3));
      p.legend_title = "approx \xE2\x88\x92 exact";
    } else {
      p.empty_text = differenceAvailable(c) ? "pooling the difference\xE2\x80\xA6"
                                            : info.title + "'s weights have another shape than exact's: no difference";
    }
    scene.panels.push_back(std::move(p));
  } else if (third == Third::Groups && pooled.groups.values.size() > 0) {
    Panel p = weightsPanel(pooled.groups, "same " + pooled.order, "groups");
    p.pooling = "smallest shared group";
    p.categories = attn::mech::groupColourNames(pooled.group_count, "group");
    p.empty_label = "different groups";
    p.subtitle = sizeText(p, "pairs");
    scene.panels.push_back(std::move(p));
  } else if (third == Third::Pattern && pooled.pattern.values.size() > 0) {
    Panel p = weightsPanel(pooled.pattern, "pattern", "pattern");
    p.pooling = "first component";
    p.categories = pooled.pattern_components;
    if (!pooled.pattern_sorted_by.empty()) {
      p.own_order = true;
      p.captions.push_back("sorted by " + pooled.pattern_sorted_by + ": in position order every pixel (" +
                           std::to_string(c.inputs.n() / std::max<attn::Index>(1, p.values.rows())) +
                           " tokens a side) would hold a scored pair");
    }
    if (ex.pattern && ex.pattern->components.size() > 1) {  // a component with no pair (causal Longformer's globals)
      std::vector<std::size_t> count(ex.pattern->components.size(), 0);
      for (std::uint8_t k : ex.pattern->component)
        if (k < count.size()) ++count[k];
      for (std::size_t k = 0; k < count.size() && k < p.categories.size(); ++k)
        if (count[k] == 0) p.categories[k] += " (none)";
    }
    p.subtitle = sizeText(p, "pairs");
    p.marks = pooled.marks;
    p.row_marks = pooled.row_marks;
    if (ex.pattern) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "scored pairs %.3g %% of N\xC3\x97M",
                    double(ex.pattern->nnz()) / (double(ex.pattern->rows) * double(ex.pattern->cols)) * 100);
      p.captions.push_back(buf);
    }
    scene.panels.push_back(std::move(p));
  } else if (third == Third::Step && !pooled.steps.empty()) {
    const StepImage& s = pooled.steps[std::size_t(std::clamp<int>(step, 0, int(pooled.steps.size()) - 1))];
    Panel p;
    p.title = s.title;
    p.role = "step";
    copyImage(p, s.image);
    p.zoomable = s.zoomable;
    p.own_order = s.own_order;
    p.categories = s.components;
    if (s.what != "pattern") p.captions.push_back(s.what);
    p.captions.push_back(s.caption);
    // The step's words describe it in its own order; drawn in the scene's sorted order, say so.
    if (!pooled.order.empty() && !s.own_order && s.factor_name.empty())
      p.captions.push_back("shown with the tokens sorted by " + pooled.order);
    if (!s.factor_name.empty()) {  // a factor: its own axes and its own colour bar
      const auto [rows, cols] = factorAxes(s.factor_name);
      p.ylabel = rows;
      p.xlabel = cols;
      if (s.signed_values) {
        p.pooling = "mean";
        p.signed_values = true;
        p.signed_range = absMax(p.values);
        p.legend_title = s.factor_name;
        p.captions.push_back("blue: negative" + std::string(k_dot) + "red: positive" + k_dot + "\xC2\xB1" +
                             formatValue(p.signed_range, 3));
      } else {
        p.pooling = pooling;
        ColorScale own;
        own.mode = request.scale == ScaleMode::Rank ? ScaleMode::Linear : request.scale;
        own.floor = request.floor;
        own.lo = 0;
        own.hi = std::max(finiteMax(p.values), 1e-30f);
        if (own.mode == ScaleMode::Log10) own.floor = std::max(request.floor * own.hi, 1e-30f);
        p.own_scale = own;
        p.legend_title = s.factor_name;
      }
      p.subtitle = sizeText(p, "values");
    } else {
      p.pooling = "first component";
      p.subtitle = sizeText(p, "pairs");
      if (!p.own_order) {
        p.marks = pooled.marks;
        p.row_marks = pooled.row_marks;
        if (p.values.rows() > 0 && pooled.row_groups.size() == std::size_t(p.values.rows())) p.row_groups = pooled.row_groups;
      }
    }
    scene.panels.push_back(std::move(p));
  }
  // Compare mode: one size line for all (one window, one pooling), in the footer; the titles get the room.
  std::string compare_size;
  if (compare_mode) {
    compare_size = scene.panels.front().subtitle;
    for (Panel& p : scene.panels) p.subtitle.clear();
  }
  // Panel letters, the same on screen and in files.
  for (std::size_t k = 0; k < scene.panels.size(); ++k) scene.panels[k].tag = std::string(1, char('a' + k));

  if (!pooled.steps.empty()) {
    scene.steps.count = int(pooled.steps.size());
    scene.steps.current = !compare_mode && third == Third::Step ? std::clamp(step, 0, scene.steps.count - 1) : -1;
    if (scene.steps.current >= 0) scene.steps.title = pooled.steps[std::size_t(scene.steps.current)].title;
  }
  if (pooled.minimap.values.size() > 0) {
    scene.minimap.title = "minimap";
    copyImage(scene.minimap, pooled.minimap);
  }
  if (request.scale == ScaleMode::Rank) applyRank(scene);

  // The words around the panels: a heading, the inputs once, notes that change the picture, the footer.
  const std::string inputs = attn::describeInputs(c.inputs.spec, c.inputs.n(), c.inputs.q.cols(), c.causal);
  const std::string backend = subject.backend_label.empty() ? c.backend_name : subject.backend_label;
  scene.title = info.title;
  for (const attn::Companion& other : subject.others) {
    const auto mechanism = attn::findMechanism(other.id);
    scene.title += "  vs  " + (mechanism ? mechanism->info().title : other.id);
  }
  scene.title += "  vs  " + (c.reference_label.empty() ? std::string("exact") : c.reference_label);
  scene.subtitle = inputs + k_dot + "backend " + backend + k_dot + pooling + "-pooled to \xE2\x89\xA4 " +
                   std::to_string(pooled.request.pixels) + " px";
  if (!pooled.order.empty()) scene.subtitle += k_dot + std::string("tokens sorted by ") + pooled.order;
  scene.footer = "backend " + backend + "   \xC2\xB7   " + inputs;
  if (!compare_size.empty()) scene.footer += "   \xC2\xB7   " + compare_size;
  if (!pooled.order.empty()) scene.footer += "   \xC2\xB7   tokens sorted by " + pooled.order;
  if (!request.order.empty() && pooled.order.empty())
    scene.notes.push_back("not sorted by " + request.order + ": " +
                          (pooled.orders_unavailable.empty() ? std::string("this run has no such grouping")
                                                             : pooled.orders_unavailable));
  if (pooled.orders.empty() && pooled.orders_unavailable.rfind("sorting forms", 0) == 0)
    scene.notes.push_back("Order is off: " + pooled.orders_unavailable);
  if (pooled.marks_total > pooled.marks.size() + pooled.row_marks.size())
    scene.notes.push_back("marks: the first " + std::to_string(k_max_marks) + " of " +
                          std::to_string(pooled.marks_total) + " special tokens");
  for (const std::string& note : ex.notes) scene.notes.push_back(note);
  for (const std::string& note : subject.notes) scene.notes.push_back(note);

  // A figure's footer: the error in full, the scored pairs, the special tokens, the idea, the departures.
  const attn::Inputs& scored = c.reference_inputs ? *c.reference_inputs : c.inputs;
  char pairs[128];
  std::snprintf(pairs, sizeof pairs, "   \xC2\xB7   scored pairs %.4g of %.4g", c.approx.cost.scored_pairs,
                double(scored.n()) * double(scored.m()));
  // In compare mode the lines below are the selected mechanism's (the others' figures are under their panels).
  const std::string whose = compare_mode ? info.title + ": " : std::string();
  scene.footnotes.push_back(whose + attn::describeError(c) + pairs);
  std::string roles;
  for (const attn::TokenSet& set : ex.special) {
    const attn::Index count = set.indices.empty() ? set.vectors.rows() : attn::Index(set.indices.size());
    roles += (roles.empty() ? "" : "; ") + std::to_string(count) + " " + set.role +
             (set.indices.empty() ? " (synthetic, not in the sequence)" : "");
  }
  if (!roles.empty()) scene.footnotes.push_back(whose + "special tokens: " + roles);
  scene.footnotes.push_back(whose + info.idea);
  for (const std::string& line : info.conventions) scene.footnotes.push_back(line);
  return scene;
}

Scene build(const Subject& subject, const ViewRequest& request, attn::Backend* backend) {
  return compose(pool(subject, request, backend), request);
}

}  // namespace attnlab::scene
