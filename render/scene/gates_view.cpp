// The gates view of the view model: for the image input, a mechanism's own maps and gates over the picture (its
// factors laid out as attn::MatrixLayout::Image, Labels or Bars). Generic over those factors: CBAM's spatial and
// channel gates, RecoNet's rank slices, FracTAL's similarity maps all come through the same path. The one special
// case is a mechanism that also implies N×N weights (GCNet's single context map): its map is shown beside exact
// attention's maps at picked pixels, with the cosine distances between them, so "query-independence" is measured
// on the picture rather than asserted.
#include "render/scene/gates_view.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "render/scene/pixel_view.h"

namespace attnlab::scene {

namespace {

constexpr const char* k_dot = " \xC2\xB7 ";  // " · "
constexpr std::size_t k_max_gate_panels = 4;

bool squareWeights(const attn::ImpliedWeights& w, attn::Index n) { return w && w.rows() == n && w.cols() == n; }

/// Whether a factor can be drawn over an n-pixel grid (a map or labels of n entries) or as bars (a vector).
bool drawable(const attn::NamedMatrix& f, attn::Index n) {
  switch (f.layout) {
    case attn::MatrixLayout::Image:
    case attn::MatrixLayout::Labels: return f.value.size() == n && n > 0;
    case attn::MatrixLayout::Bars: return f.value.size() > 0 && (f.value.rows() == 1 || f.value.cols() == 1);
    default: return false;
  }
}

bool anyDrawable(const attn::Explanation& ex, attn::Index n) {
  return std::any_of(ex.factors.begin(), ex.factors.end(), [&](const attn::NamedMatrix& f) { return drawable(f, n); });
}

/// The steps whose views have drawable factors, by index into the explanation's steps.
std::vector<std::size_t> gateSteps(const attn::Comparison& c) {
  return stepsWhere(c, [n = c.inputs.n()](const attn::Explanation& v) { return anyDrawable(v, n); });
}

/// `values` (n entries in raster order, any shape) as an h × w map.
attn::Matrix asMap(const attn::Matrix& values, attn::Index h, attn::Index w) {
  attn::Matrix map(h, w);
  for (attn::Index t = 0; t < h * w; ++t) map(t / w, t % w) = values.reshaped<Eigen::RowMajor>()(t);
  return map;
}

/// Entries ≥ 0 that sum to 1 (within float rounding): a row of attention weights.
bool isDistribution(const attn::Matrix& m) {
  if (m.size() == 0 || !m.allFinite() || m.minCoeff() < 0) return false;
  return std::fabs(m.cast<double>().sum() - 1) < 1e-3;
}

std::string pixelText(attn::Index token, attn::Index w) {
  return "(" + std::to_string(token % w) + ", " + std::to_string(token / w) + ")";
}

}  // namespace

double cosineDistance(const attn::Matrix& a, const attn::Matrix& b) {
  const auto x = a.cast<double>().reshaped(), y = b.cast<double>().reshaped();
  const double den = x.norm() * y.norm();
  return den > 0 ? 1 - x.dot(y) / den : 1;
}

std::string gatesRefusal(const attn::Comparison& c) {
  if (std::string why = pictureRefusal(c, "the gates view"); !why.empty()) return why;
  if (!anyDrawable(c.approx.explanation, c.inputs.n()) && gateSteps(c).empty())
    return c.mechanism->info().title + " has no maps or gates to draw over the picture (no factor laid out as an image, "
           "labels or bars); try the matrix or pixel view";
  return {};
}

std::vector<std::string> gatesStepTitles(const attn::Comparison& c) {
  std::vector<std::string> out;
  for (std::size_t k : gateSteps(c)) out.push_back(c.approx.explanation.steps[k].title);
  return out;
}

Pooled poolGates(const Subject& subject, const ViewRequest& request, const std::atomic<bool>* cancel) {
  const auto start = std::chrono::steady_clock::now();
  const attn::Comparison& c = *subject.main;
  const std::vector<std::size_t> stepped = gateSteps(c);
  std::string why = gatesRefusal(c);
  Pooled out = picturePooled(subject, request, "the gates view", !why.empty(), stepped, "maps");
  out.gates_refusal = std::move(why);
  if (!out.gates_refusal.empty()) return out;
  const attn::Index n = c.inputs.n(), w = out.grid_width, h = out.grid_height;
  const attn::Explanation* source = &c.approx.explanation;
  if ((request.third == Third::Step || !anyDrawable(*source, n)) && !stepped.empty()) {
    out.gates_step = request.third == Third::Step ? std::clamp(request.step, 0, int(stepped.size()) - 1) : 0;
    source = c.approx.explanation.steps[stepped[std::size_t(out.gates_step)]].view.get();
  }
  // GCNet's case: weights of its own (one map for every query) beside exact attention's maps at picked pixels.
  const bool with_rows = squareWeights(c.approx.explanation.weights, n) && squareWeights(c.exact.explanation.weights, n) &&
                         std::any_of(source->factors.begin(), source->factors.end(), [&](const attn::NamedMatrix& f) {
                           return f.layout == attn::MatrixLayout::Image && drawable(f, n);
                         });
  for (const attn::NamedMatrix& f : source->factors) {
    if (!drawable(f, n)) continue;
    if (out.gate_items.size() >= (with_rows ? 1 : k_max_gate_panels) ||
        (with_rows && f.layout != attn::MatrixLayout::Image)) {
      ++out.gate_factors_left_out;
      continue;
    }
    GateItem item;
    item.title = f.name;
    item.caption = f.caption;
    item.layout = f.layout;
    item.values = f.layout == attn::MatrixLayout::Bars ? attn::Matrix(f.value.reshaped<Eigen::RowMajor>().transpose())
                                                       : asMap(f.value, h, w);
    item.distribution = f.layout == attn::MatrixLayout::Image && isDistribution(item.values);
    out.gate_items.push_back(std::move(item));
  }
  if (with_rows && !out.gate_items.empty()) {
    std::vector<attn::Index> picked;
    for (attn::Index t : request.pixels_picked)
      if (t >= 0 && t < n && picked.size() < k_max_gate_panels - 1 && std::find(picked.begin(), picked.end(), t) == picked.end())
        picked.push_back(t);
    out.pixel_default = picked.empty();
    if (picked.empty())  // three pixels on the diagonal, so the maps differ where exact attention depends on the query
      for (attn::Index k = 1; k <= 3; ++k) {
        const attn::Index t = (k * h / 4) * w + k * w / 4;
        if (std::find(picked.begin(), picked.end(), t) == picked.end()) picked.push_back(t);
      }
    const GateItem map = out.gate_items.front();  // a copy: the rows below grow the vector
    for (attn::Index t : picked) {
      GateItem row;
      row.token = t;
      row.layout = attn::MatrixLayout::Image;
      row.title = "exact at pixel " + pixelText(t, w);
      row.caption = "exact attention's row of this pixel";
      row.values = asMap(c.exact.explanation.weights.block({t, t + 1}, {0, n}), h, w);
      row.distribution = map.distribution;
      row.distances.push_back("cosine distance to " + map.title + ": " + formatValue(cosineDistance(row.values, map.values), 3));
      out.gate_items.push_back(std::move(row));
      if (cancel && cancel->load()) throw attn::Cancelled();
    }
    for (std::size_t a = 1; a < out.gate_items.size(); ++a)
      for (std::size_t b = 1; b < out.gate_items.size(); ++b)
        if (a != b)
          out.gate_items[a].distances.push_back(
              "to " + pixelText(out.gate_items[b].token, w) + ": " +
              formatValue(cosineDistance(out.gate_items[a].values, out.gate_items[b].values), 3));
    if (out.gate_items.size() > 2) {
      double sum = 0;
      for (std::size_t a = 1; a < out.gate_items.size(); ++a) sum += cosineDistance(out.gate_items[a].values, map.values);
      out.gate_items.front().distances.push_back("mean cosine distance to the exact maps: " +
                                                 formatValue(sum / double(out.gate_items.size() - 1), 3));
    }
  }
  out.pool_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Scene composeGates(const Pooled& pooled, const ViewRequest& request) {
  Scene scene;
  const attn::Comparison& c = *pooled.subject.main;
  const attn::MechanismInfo& info = c.mechanism->info();
  const std::string backend = pooled.subject.backend_label.empty() ? c.backend_name : pooled.subject.backend_label;
  const std::string inputs = attn::describeInputs(c.inputs.spec, c.inputs.n(), c.inputs.q.cols(), c.causal);
  scene.colormap = request.colormap;
  scene.scale.mode = request.scale;
  scene.scale.floor = request.floor;
  scene.scale.lo = 0;
  scene.title = info.title + ": its maps and gates over the picture";
  scene.subtitle = inputs + k_dot + "backend " + backend;
  scene.footer = "backend " + backend + "   \xC2\xB7   " + inputs + "   \xC2\xB7   gates view";
  if (!pooled.gates_refusal.empty()) {
    scene.placeholder = pooled.gates_refusal;
    return scene;
  }
  const attn::Index h = pooled.grid_height, w = pooled.grid_width;
  const std::string grid = std::to_string(w) + "\xC3\x97" + std::to_string(h);
  const bool stepped = pooled.gates_step >= 0;
  const std::string step_title = stepped ? pooled.steps[std::size_t(pooled.gates_step)].title : std::string();

  scene.scale.hi = 1e-30f;
  for (const GateItem& item : pooled.gate_items) {
    Panel p;
    p.title = item.token >= 0 ? item.title : (stepped ? step_title + k_dot : std::string()) + item.title;
    p.source_rows = h;
    p.source_cols = w;
    p.shown_rows = {0, h};
    p.shown_cols = {0, w};
    p.pooling = "none";
    p.zoomable = false;
    p.captions.push_back(item.caption);
    for (const std::string& d : item.distances) p.captions.push_back(d);
    const float lo = item.values.size() > 0 ? item.values.minCoeff() : 0.0f;
    const float hi = item.values.size() > 0 ? item.values.maxCoeff() : 0.0f;
    if (item.layout == attn::MatrixLayout::Bars) {
      p.role = "bars";
      p.bars.assign(item.values.data(), item.values.data() + item.values.size());
      p.subtitle = std::to_string(item.values.size()) + " bars, one per entry";
      const float top = std::max(hi, 0.0f), bottom = std::min(lo, 0.0f);
      p.own_scale = ColorScale{ScaleMode::Linear, bottom, top > bottom ? top : bottom + 1, 0};
      p.legend_title = item.title;
      p.xlabel = "entry (channel)";
      p.ylabel = "";  // the value labels say it
      p.captions.push_back("from " + formatValue(lo, 3) + " to " + formatValue(hi, 3));
      scene.panels.push_back(std::move(p));
      continue;
    }
    p.role = "pixel map";
    p.xlabel = "x";
    p.ylabel = "y";
    p.picture = c.inputs.picture;
    p.overlay_alpha = k_pixel_overlay_alpha;
    p.subtitle = "one value per pixel, as " + grid;
    if (item.token >= 0) p.pixel_marks.push_back({item.token % w, item.token / w, "picked"});
    if (item.layout == attn::MatrixLayout::Labels) {
      const int groups = std::max(1, int(std::lround(hi)) + 1);
      p.values = (item.values.array() + 1.0f).matrix();
      for (int g = 0; g < groups; ++g) p.categories.push_back("label " + std::to_string(g));
      p.empty_label = "no label";
      p.legend_title = item.title;
      p.subtitle = std::to_string(groups) + " labels over " + grid;
    } else if (item.distribution) {  // weights over the pixels: the shared scale, as exact's maps beside it
      p.values = item.values;
      scene.scale.hi = std::max(scene.scale.hi, finiteMax(item.values));
    } else if (lo < 0) {
      p.values = item.values;
      p.signed_values = true;
      p.signed_range = std::max(absMax(item.values), 1e-30f);
      p.legend_title = item.title;
      p.captions.push_back("from " + formatValue(lo, 3) + " to " + formatValue(hi, 3) + " (diverging scale, 0 in the middle)");
    } else {
      p.values = item.values;
      p.own_scale = ColorScale{ScaleMode::Linear, lo, hi > lo ? hi : lo + std::max(1e-6f, std::fabs(lo) * 1e-6f), 0};
      p.legend_title = item.title;
      p.captions.push_back("from " + formatValue(lo, 3) + " to " + formatValue(hi, 3) + " (its own scale)");
    }
    scene.panels.push_back(std::move(p));
  }
  for (std::size_t k = 0; k < scene.panels.size(); ++k) scene.panels[k].tag = std::string(1, char('a' + k));
  if (!pooled.steps.empty()) {
    scene.steps.count = int(pooled.steps.size());
    scene.steps.current = pooled.gates_step;
    if (stepped) scene.steps.title = step_title;
  }
  if (pooled.gate_factors_left_out > 0)
    scene.notes.push_back(std::to_string(pooled.gate_factors_left_out) + " more map(s) or bars of " + info.title +
                          " not shown: the view has " + std::to_string(k_max_gate_panels) + " panels");
  const bool with_rows = std::any_of(pooled.gate_items.begin(), pooled.gate_items.end(), [](const GateItem& g) { return g.token >= 0; });
  if (with_rows && pooled.pixel_default)
    scene.notes.push_back("exact maps at three pixels on the diagonal: pick others with --pixel X,Y;X,Y;X,Y or a click on "
                          "the picture");
  if (!info.implies_weights && !c.approx.explanation.weights_withheld.empty())
    scene.notes.push_back(c.approx.explanation.weights_withheld);
  for (const std::string& note : c.approx.explanation.notes) scene.notes.push_back(note);
  for (const std::string& note : pooled.subject.notes) scene.notes.push_back(note);
  scene.subtitle += k_dot + std::string("each map over the photo in grey (") +
                    std::to_string(int(std::lround(k_pixel_overlay_alpha * 100))) + " %)";
  scene.footnotes.push_back(attn::describeError(c));
  scene.footnotes.push_back(
      with_rows ? "The mechanism's one map (the same for every query) beside exact attention's rows at the picked "
                  "pixels, each reshaped to the " + grid + " picture; cosine distance 0 means the same map."
                : "Each map holds one value per pixel of the " + grid +
                      " picture, on its own colour scale; bars hold one value per entry (a channel gate).");
  scene.footnotes.push_back(info.idea);
  for (const std::string& line : info.conventions) scene.footnotes.push_back(line);
  return scene;
}

}  // namespace attnlab::scene
