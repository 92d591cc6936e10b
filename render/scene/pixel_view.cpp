// The pixel view of the view model: for the image input, one query pixel's row of the implied weights (exact
// and the mechanism's, or a step's) reshaped to the H×W picture and drawn over it, with the picked pixel marked.
#include "render/scene/pixel_view.h"

#include "attention/mechanisms/bucket_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>


namespace attnlab::scene {

namespace {

constexpr const char* k_dot = " \xC2\xB7 ";  // " · "

std::string pixelText(const PixelRow& r) {
  return "pixel (" + std::to_string(r.x) + ", " + std::to_string(r.y) + ")";
}

bool squareWeights(const attn::ImpliedWeights& w, attn::Index n) { return w && w.rows() == n && w.cols() == n; }

bool isPixelMap(const attn::NamedMatrix& f, attn::Index n) {
  return (f.layout == attn::MatrixLayout::Image || f.layout == attn::MatrixLayout::Labels) && f.value.size() == n;
}

bool hasPixelMap(const attn::Explanation& e, attn::Index n) {
  return std::any_of(e.factors.begin(), e.factors.end(), [&](const attn::NamedMatrix& f) { return isPixelMap(f, n); }) ||
         std::any_of(e.special.begin(), e.special.end(), [](const attn::TokenSet& t) { return t.role == "key grid"; }) ||
         std::any_of(e.groupings.begin(), e.groupings.end(), [&](const attn::Grouping& g) { return attn::Index(g.label.size()) == n; });
}

/// The steps the pixel view can show (their views imply N×N weights or hold per-pixel maps), by index into the
/// explanation's steps.
std::vector<std::size_t> weightSteps(const attn::Comparison& c) {
  return stepsWhere(c, [n = c.inputs.n()](const attn::Explanation& v) { return squareWeights(v.weights, n) || hasPixelMap(v, n); });
}

/// The per-pixel maps of an explanation (at most `limit`), reshaped to H×W (raster order): its Image and Labels
/// factors, then its groupings of the pixels.
std::vector<PixelMap> pixelMaps(const attn::Explanation& e, attn::Index h, attn::Index width, std::size_t limit) {
  std::vector<PixelMap> out;
  for (const attn::NamedMatrix& f : e.factors) {
    if (!isPixelMap(f, h * width) || out.size() >= limit) continue;
    PixelMap m;
    m.name = f.name;
    m.caption = f.caption;
    m.labels = f.layout == attn::MatrixLayout::Labels;
    m.values.resize(h, width);
    for (attn::Index t = 0; t < h * width; ++t) {
      float v = f.value.data()[t];
      if (m.labels) {
        v = std::isfinite(v) && v >= 0 ? std::round(v) : -1;
        m.label_count = std::max(m.label_count, int(v) + 1);
      }
      m.values(t / width, t % width) = v;  // Eigen's storage order does not matter for an N-vector
    }
    out.push_back(std::move(m));
  }
  // A sampled set of key pixels (AutoNL's stride grid) is a map of where the keys are.
  for (const attn::TokenSet& t : e.special) {
    if (t.role != "key grid" || t.indices.empty() || out.size() >= limit) continue;
    PixelMap m;
    m.name = t.name;
    m.caption = std::to_string(t.indices.size()) + " of " + std::to_string(h * width) + " pixels are keys";
    m.labels = true;
    m.noun = t.name;
    m.label_count = 1;
    m.values = attn::Matrix::Constant(h, width, -1.0f);
    for (attn::Index i : t.indices)
      if (i >= 0 && i < h * width) m.values(i / width, i % width) = 0;
    out.push_back(std::move(m));
  }
  // Groupings of the pixels (buckets, clusters, blocks, a stage's groups) are label maps too, unless the mechanism
  // gave its labels as a map already (EMANet's argmax Z is also its grouping).
  const bool has_labels = std::any_of(out.begin(), out.end(), [](const PixelMap& m) { return m.labels; });
  for (const attn::Grouping& g : e.groupings) {
    if (has_labels || attn::Index(g.label.size()) != h * width || out.size() >= limit) continue;
    PixelMap m;
    m.name = g.name;
    m.caption = g.groups > 0 ? std::to_string(g.groups) + " groups, each in its colour" : std::string();
    m.labels = true;
    m.noun = "group";
    m.values.resize(h, width);
    for (attn::Index t = 0; t < h * width; ++t) {
      const std::int32_t l = g.label[size_t(t)];
      m.values(t / width, t % width) = l >= 0 ? float(l) : -1.0f;
      m.label_count = std::max(m.label_count, int(l) + 1);
    }
    out.push_back(std::move(m));
  }
  return out;
}

/// Row `token` of the first factor of `e` with `layout` whose rows are the N pixels and whose columns are
/// `count` (W for PerPixelTop, H for PerPixelLeft); empty when there is none.
std::vector<float> stripOf(const attn::Explanation& e, attn::MatrixLayout layout, attn::Index token, attn::Index n,
                           attn::Index count, std::string* name) {
  for (const attn::NamedMatrix& f : e.factors)
    if (f.layout == layout && f.value.rows() == n && f.value.cols() == count) {
      std::vector<float> out(static_cast<std::size_t>(count));
      for (attn::Index j = 0; j < count; ++j) out[std::size_t(j)] = f.value(token, j);
      *name = f.name;
      return out;
    }
  return {};
}

/// Row `token` of `w` as an H×W map (raster order: token y·W + x is map entry (y, x)).
attn::Matrix rowMap(const attn::ImpliedWeights& w, attn::Index token, attn::Index h, attn::Index width) {
  const attn::Index n = w.cols();
  const attn::Matrix row = w.tile({token, token + 1}, {0, n}, {1, n}, attn::Pooling::Max);
  attn::Matrix map(h, width);
  for (attn::Index y = 0; y < h; ++y)
    for (attn::Index x = 0; x < width; ++x) map(y, x) = row(0, y * width + x);
  return map;
}

}  // namespace

float finiteMax(const attn::Matrix& m) {
  float best = 0;
  for (attn::Index i = 0; i < m.size(); ++i)
    if (std::isfinite(m.data()[i])) best = std::max(best, m.data()[i]);
  return best;
}

float absMax(const attn::Matrix& m) {
  float best = 0;
  for (attn::Index i = 0; i < m.size(); ++i)
    if (std::isfinite(m.data()[i])) best = std::max(best, std::fabs(m.data()[i]));
  return best;
}

const char* layoutName(Layout l) { return l == Layout::Pixel ? "pixel" : l == Layout::Gates ? "gates" : "matrix"; }

float pictureGrey(const attn::Picture& p, attn::Index y, attn::Index x) {
  return std::clamp(0.2126f * p.at(y, x, 0) + 0.7152f * p.at(y, x, 1) + 0.0722f * p.at(y, x, 2), 0.0f, 1.0f);
}

std::vector<std::size_t> stepsWhere(const attn::Comparison& c, const std::function<bool(const attn::Explanation&)>& keep) {
  std::vector<std::size_t> out;
  const auto& steps = c.approx.explanation.steps;
  for (std::size_t k = 0; k < steps.size(); ++k)
    if (steps[k].view && keep(*steps[k].view)) out.push_back(k);
  return out;
}

std::string pictureRefusal(const attn::Comparison& c, const std::string& view) {
  const attn::Inputs& in = c.inputs;
  if (!in.picture || in.grid_width <= 0 || in.n() % in.grid_width != 0 || in.picture->width != in.grid_width ||
      in.picture->height != in.n() / in.grid_width)
    return view + " needs a picture: its tokens must be the pixels of an image (--input image, or Input \xE2\x86\x92 "
           "image); this run's input is " +
           (in.spec.source.empty() ? attn::generatorName(in.spec.generator) : in.spec.source);
  if (in.m() != in.n()) return "the keys (" + std::to_string(in.m()) + ") are not the pixels (" + std::to_string(in.n()) + ")";
  return {};
}

Pooled picturePooled(const Subject& subject, const ViewRequest& request, const std::string& view, bool refused,
                     const std::vector<std::size_t>& steps, const std::string& what) {
  const attn::Comparison& c = *subject.main;
  Pooled out;
  out.subject = subject;
  out.request = request;
  out.orders_unavailable = view + " shows the tokens as the picture's pixels";
  if (refused) return out;
  out.grid_width = c.inputs.grid_width;
  out.grid_height = c.inputs.n() / c.inputs.grid_width;
  for (std::size_t k : steps) {
    StepImage si;
    si.title = c.approx.explanation.steps[k].title;
    si.caption = c.approx.explanation.steps[k].caption;
    si.what = what;
    out.steps.push_back(std::move(si));
  }
  return out;
}

std::string pixelRefusal(const attn::Comparison& c) {
  if (std::string why = pictureRefusal(c, "the pixel view"); !why.empty()) return why;
  if (!squareWeights(c.exact.explanation.weights, c.inputs.n())) return "exact attention implies no N\xC3\x97N weights here";
  return {};
}

std::vector<std::string> pixelStepTitles(const attn::Comparison& c) {
  std::vector<std::string> out;
  for (std::size_t k : weightSteps(c)) out.push_back(c.approx.explanation.steps[k].title);
  return out;
}

std::vector<attn::Index> parsePixels(const std::string& text, attn::Index height, attn::Index width) {
  const std::string form = "--pixel takes X,Y (or up to " + std::to_string(k_max_picked_pixels) +
                           " of them: X,Y;X,Y), column X and row Y from 0";
  std::vector<attn::Index> out;
  std::stringstream all(text);
  std::string item;
  while (std::getline(all, item, ';')) {
    long long x = 0, y = 0;
    char extra = 0;
    if (std::sscanf(item.c_str(), " %lld , %lld %c", &x, &y, &extra) != 2) throw attn::UserError(form + ", not '" + text + "'");
    char size[64];
    std::snprintf(size, sizeof size, "%lld\xC3\x97%lld", static_cast<long long>(width), static_cast<long long>(height));
    if (x < 0 || y < 0 || x >= width || y >= height)
      throw attn::UserError("--pixel " + std::to_string(x) + "," + std::to_string(y) + " lies outside the " + size +
                            " image (x from 0 to " + std::to_string(width - 1) + ", y from 0 to " +
                            std::to_string(height - 1) + ")");
    out.push_back(attn::Index(y) * width + attn::Index(x));
  }
  if (out.empty()) throw attn::UserError(form + ", not '" + text + "'");
  if (out.size() > k_max_picked_pixels)
    throw attn::UserError("--pixel takes at most " + std::to_string(k_max_picked_pixels) + " pixels, not " +
                          std::to_string(out.size()));
  return out;
}

Pooled poolPixel(const Subject& subject, const ViewRequest& request, const std::atomic<bool>* cancel) {
  const auto start = std::chrono::steady_clock::now();
  const attn::Comparison& c = *subject.main;
  const std::vector<std::size_t> stepped = weightSteps(c);
  std::string why = pixelRefusal(c);
  Pooled out = picturePooled(subject, request, "the pixel view", !why.empty(), stepped, "weights");
  out.pixel_refusal = std::move(why);
  if (!out.pixel_refusal.empty()) return out;
  const attn::Index n = c.inputs.n(), w = out.grid_width, h = out.grid_height;
  if (request.third == Third::Step && !stepped.empty())
    out.pixel_step = std::clamp(request.step, 0, int(stepped.size()) - 1);
  const attn::ImpliedWeights& exact = c.exact.explanation.weights;
  // The chosen step's view (its weights when it implies some, else the mechanism's final ones beside the step's
  // maps), or the mechanism's own explanation.
  const attn::Explanation& shown =
      out.pixel_step >= 0 ? *c.approx.explanation.steps[stepped[std::size_t(out.pixel_step)]].view : c.approx.explanation;
  out.pixel_step_weights = out.pixel_step >= 0 && squareWeights(shown.weights, n);
  const attn::ImpliedWeights& approx = out.pixel_step >= 0 && !out.pixel_step_weights ? c.approx.explanation.weights : shown.weights;
  out.pixel_maps = pixelMaps(shown, h, w, 2);
  if (out.pixel_maps.empty() && &shown != &c.approx.explanation) out.pixel_maps = pixelMaps(c.approx.explanation, h, w, 2);
  std::vector<attn::Index> picked;
  for (attn::Index t : request.pixels_picked)
    if (t >= 0 && t < n && picked.size() < k_max_picked_pixels && std::find(picked.begin(), picked.end(), t) == picked.end())
      picked.push_back(t);
  out.pixel_default = picked.empty();
  if (picked.empty()) picked.push_back((h / 2) * w + w / 2);
  for (attn::Index t : picked) {
    PixelRow r;
    r.token = t;
    r.y = t / w;
    r.x = t % w;
    r.exact = rowMap(exact, t, h, w);
    if (squareWeights(approx, n)) {
      r.approx = rowMap(approx, t, h, w);
      r.difference = r.approx - r.exact;
      double tv = 0;
      for (attn::Index k = 0; k < r.difference.size(); ++k) tv += std::fabs(double(r.difference.data()[k]));
      r.row_tv = tv / 2;
    }
    if (c.own && squareWeights(c.own->weights, n)) r.own = rowMap(c.own->weights, t, h, w);
    r.top_strip = stripOf(shown, attn::MatrixLayout::PerPixelTop, t, n, w, &r.top_strip_name);
    r.left_strip = stripOf(shown, attn::MatrixLayout::PerPixelLeft, t, n, h, &r.left_strip_name);
    out.pixel_rows.push_back(std::move(r));
    if (cancel && cancel->load()) throw attn::Cancelled();
  }
  out.pool_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Scene composePixel(const Pooled& pooled, const ViewRequest& request) {
  Scene scene;
  const attn::Comparison& c = *pooled.subject.main;
  const attn::MechanismInfo& info = c.mechanism->info();
  const std::string backend = pooled.subject.backend_label.empty() ? c.backend_name : pooled.subject.backend_label;
  const std::string inputs = attn::describeInputs(c.inputs.spec, c.inputs.n(), c.inputs.q.cols(), c.causal);
  const std::string exact_title = c.reference_label.empty() ? std::string("exact") : c.reference_label;
  scene.colormap = request.colormap;
  scene.scale.mode = request.scale;
  scene.scale.floor = request.floor;
  scene.scale.lo = 0;
  scene.title = info.title + "  vs  " + exact_title + ": one pixel's attention";
  scene.subtitle = inputs + k_dot + "backend " + backend;
  scene.footer = "backend " + backend + "   \xC2\xB7   " + inputs + "   \xC2\xB7   pixel view";
  if (!pooled.pixel_refusal.empty()) {
    scene.placeholder = pooled.pixel_refusal;
    return scene;
  }
  const attn::Index h = pooled.grid_height, w = pooled.grid_width;
  const std::string grid = std::to_string(w) + "\xC3\x97" + std::to_string(h);
  const bool stepped = pooled.pixel_step >= 0;
  const std::string step_title = stepped ? pooled.steps[std::size_t(pooled.pixel_step)].title : std::string();
  // A step that implies weights shows them; a step with maps only shows its maps beside the final weights.
  const std::string approx_title = pooled.pixel_step_weights ? info.title + k_dot + step_title : info.title;
  const bool has_approx = !pooled.pixel_rows.empty() && pooled.pixel_rows.front().approx.size() > 0;

  auto mapPanel = [&](const PixelRow& r, const attn::Matrix& values, const std::string& title) {
    Panel p;
    p.title = title;
    p.role = "pixel map";
    p.values = values;
    p.source_rows = h;
    p.source_cols = w;
    p.shown_rows = {0, h};
    p.shown_cols = {0, w};
    p.pooling = "none";
    p.zoomable = false;
    p.xlabel = "x";
    p.ylabel = "y";
    p.picture = c.inputs.picture;
    p.overlay_alpha = k_pixel_overlay_alpha;
    p.pixel_marks.push_back({r.x, r.y, "picked"});
    p.subtitle = "row of " + pixelText(r) + " = token " + std::to_string(r.token) + ", as " + grid;
    return p;
  };
  auto approxPanel = [&](const PixelRow& r) {
    Panel p = mapPanel(r, r.approx, approx_title);
    if (r.approx.size() == 0) {
      p.picture.reset();
      p.pixel_marks.clear();
      p.empty_text = stepped ? approx_title + " implies no weights" : attn::noWeightsText(c);
      p.subtitle = pixelText(r);
      return p;
    }
    // "Misplaced" is a share of an approximation's attention; a different operator's distance is not an error,
    // and signed weights' TV exceeds 1.
    if (info.approximates_softmax && r.row_tv <= 1 + 1e-6)
      p.captions.push_back("misplaced (row TV vs exact) " + formatValue(r.row_tv, 3));
    else
      p.captions.push_back("row TV vs exact " + formatValue(r.row_tv, 3) + (r.row_tv > 1 + 1e-6 ? " (signed weights; " : " (") +
                           "not an error)");
    if (pooled.pixel_step_weights) p.captions.push_back(pooled.steps[std::size_t(pooled.pixel_step)].caption);
    auto strip = [&](const std::vector<float>& values, const std::string& name, const char* where, std::vector<float>& edge) {
      if (values.empty()) return;
      edge = values;
      float hi = 0;
      for (float v : values)
        if (std::isfinite(v)) hi = std::max(hi, v);
      p.captions.push_back(std::string(where) + ": " + name + " (own scale, 0 to " + formatValue(hi, 3) + ")");
    };
    strip(r.top_strip, r.top_strip_name, "top strip", p.edge_top);
    strip(r.left_strip, r.left_strip_name, "left strip", p.edge_left);
    return p;
  };
  // A per-pixel map of the mechanism or the chosen step (EM bases as labels, a gate): over the photo, on its own
  // scale (or in group colours), with the picked pixel marked for reference.
  auto mapOfAll = [&](const PixelMap& m, const PixelRow& r) {
    const bool named = m.name.find(step_title) != std::string::npos;  // "argmax Z (iteration 1)" names its step
    Panel p = mapPanel(r, m.values, stepped && !pooled.pixel_step_weights && !named ? step_title + k_dot + m.name : m.name);
    p.subtitle = "one value per pixel, as " + grid + " (whatever pixel is picked)";
    if (m.labels) {
      p.categories = attn::mech::groupColourNames(std::max(m.label_count, 1), m.noun);
      for (attn::Index k = 0; k < p.values.size(); ++k) p.values.data()[k] += 1;  // categorical: 0 = none
      p.empty_label = "none";
    } else {
      float lo = 0, hi = 0;
      for (attn::Index k = 0; k < m.values.size(); ++k)
        if (std::isfinite(m.values.data()[k])) lo = std::min(lo, m.values.data()[k]), hi = std::max(hi, m.values.data()[k]);
      ColorScale own;
      own.mode = ScaleMode::Linear;
      own.lo = lo;
      own.hi = hi > lo ? hi : lo + 1;
      p.own_scale = own;
      p.legend_title = m.name;
    }
    if (!m.caption.empty()) p.captions.push_back(m.caption);
    return p;
  };
  auto exactPanel = [&](const PixelRow& r) {
    Panel p = mapPanel(r, r.exact, exact_title);
    p.captions.push_back("softmax attention");
    return p;
  };

  const std::size_t picked = pooled.pixel_rows.size();
  if (picked == 1) {
    const PixelRow& r = pooled.pixel_rows.front();
    scene.panels.push_back(exactPanel(r));
    scene.panels.push_back(approxPanel(r));
    if (r.own.size() > 0) {  // the exact form of what the mechanism approximates, when it is not softmax
      Panel o = mapPanel(r, r.own, c.own->label);
      o.captions.push_back("its own target (exact), on the weights' scale");
      scene.panels.push_back(std::move(o));
    }
    for (const PixelMap& m : pooled.pixel_maps)
      if (scene.panels.size() < 4) scene.panels.push_back(mapOfAll(m, r));
    // The difference, unless the request asks for two panels only (a step shows its own map; the difference
    // is then against that step's weights) or the maps took the room.
    if (request.third != Third::None && has_approx && scene.panels.size() < 4) {
      Panel d = mapPanel(r, r.difference, "difference");
      d.role = "pixel map";
      d.signed_values = true;
      d.signed_range = std::max(absMax(r.difference), 1e-30f);
      d.legend_title = "approx \xE2\x88\x92 exact";
      d.captions.push_back(approx_title + " \xE2\x88\x92 exact");
      d.captions.push_back("blue: less weight than exact" + std::string(k_dot) + "red: more" + k_dot + "\xC2\xB1" +
                           formatValue(d.signed_range, 3));
      scene.panels.push_back(std::move(d));
    }
  } else if (picked == 2) {
    for (const PixelRow& r : pooled.pixel_rows) {
      scene.panels.push_back(exactPanel(r));
      scene.panels.push_back(approxPanel(r));
    }
    if (!pooled.pixel_maps.empty())
      scene.notes.push_back("2 pixels: the per-pixel maps (" + pooled.pixel_maps.front().name + ") show with one pixel picked");
  } else {  // three or four pixels: the mechanism's map of each (exact's are one click away, with one pixel)
    for (const PixelRow& r : pooled.pixel_rows) scene.panels.push_back(approxPanel(r));
    scene.notes.push_back(std::to_string(picked) + " pixels: " + approx_title +
                          "'s map of each (pick one or two pixels to see exact beside it)");
  }
  scene.scale.hi = 1e-30f;
  for (const Panel& p : scene.panels)
    if (!p.signed_values && !p.own_scale && p.categories.empty()) scene.scale.hi = std::max(scene.scale.hi, finiteMax(p.values));
  for (std::size_t k = 0; k < scene.panels.size(); ++k) scene.panels[k].tag = std::string(1, char('a' + k));
  if (!pooled.steps.empty()) {
    scene.steps.count = int(pooled.steps.size());
    scene.steps.current = pooled.pixel_step;
    if (stepped) scene.steps.title = pooled.steps[std::size_t(pooled.pixel_step)].title;
  }
  if (pooled.pixel_default) {
    const PixelRow& r = pooled.pixel_rows.front();
    scene.notes.push_back("showing the centre " + pixelText(r) +
                          ": pick another with --pixel X,Y or a click on the picture");
  }
  scene.subtitle += k_dot + std::string("each map over the photo in grey (") +
                    std::to_string(int(std::lround(k_pixel_overlay_alpha * 100))) + " %)";
  for (const std::string& note : c.approx.explanation.notes) scene.notes.push_back(note);
  for (const std::string& note : pooled.subject.notes) scene.notes.push_back(note);
  scene.footnotes.push_back(attn::describeError(c));
  scene.footnotes.push_back("Each map is one query pixel's row of the N\xC3\x97N weights, reshaped to the " + grid +
                            " picture: how much that pixel attends to every other. The query pixel is outlined, and pointed at from the top and left edges.");
  scene.footnotes.push_back(info.idea);
  for (const std::string& line : info.conventions) scene.footnotes.push_back(line);
  return scene;
}

}  // namespace attnlab::scene
