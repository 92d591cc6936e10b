#include "attention/inputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "attention/random.h"

namespace attn {

const std::vector<GeneratorInfo>& generators() {
  static const std::vector<GeneratorInfo> all = {
      {Generator::Gaussian, "gaussian", "i.i.d. N(0,1) Q, K, V: nearly uniform rows, the hardest case to see anything in"},
      {Generator::Clustered, "clustered", "tokens near a few centres, Q ≈ K: block structure (LSH, k-means, clustering)"},
      {Generator::Local, "local", "a smooth AR(1) walk, Q = K: a banded matrix (windows, dilation)"},
      {Generator::Periodic, "periodic", "sinusoidal features with a period: stripes every `period` tokens"},
      {Generator::Peaked, "peaked", "a few heavy-hitter keys every query attends to: vertical stripes"},
      {Generator::Copy, "copy", "a random sequence repeated twice (Reformer's copy task): a stripe at offset N/2"},
      {Generator::Image, "image", "a synthetic picture, or a photo (--image), on an H×W grid (raster order; W = the "
                                  "largest divisor of N ≤ √N unless --size): pixels attend to similar colours nearby "
                                  "(2D mechanisms, SCRAM)"},
  };
  return all;
}

Generator parseGenerator(const std::string& name) {
  std::string known;
  for (const auto& g : generators()) {
    if (g.name == name) return g.id;
    known += (known.empty() ? "" : ", ") + g.name;
  }
  throw UserError("unknown input generator '" + name + "'; choose one of: " + known);
}

InputSpec defaultInput() {
  InputSpec spec;
  spec.n = 256;
  spec.d = 64;
  spec.dv = 64;
  spec.seed = 1;
  spec.generator = Generator::Local;
  spec.temperature = 1.0;
  return spec;
}

const std::string& generatorName(Generator g) {
  for (const auto& info : generators())
    if (info.id == g) return info.name;
  return generators().front().name;
}

std::string generatorNames(const std::string& separator) {
  std::string out;
  for (const auto& g : generators()) out += (out.empty() ? "" : separator) + g.name;
  return out;
}

std::vector<std::string> generatorKnobs(Generator g) {
  switch (g) {
    case Generator::Gaussian:
      return {};
    case Generator::Clustered:
      return {"clusters", "noise"};
    case Generator::Local:
      return {"length_scale"};
    case Generator::Periodic:
      return {"noise", "period"};
    case Generator::Peaked:
      return {"heavy_hitters"};
    case Generator::Copy:
      return {"noise"};
    case Generator::Image:
      return {"noise", "position_weight"};
  }
  return {};
}

namespace {
/// A knob's value in `s` and its printed name.
std::pair<double, const char*> knob(const InputSpec& s, const std::string& name) {
  if (name == "clusters") return {double(s.clusters), "clusters"};
  if (name == "noise") return {s.noise, "noise"};
  if (name == "length_scale") return {s.length_scale, "length scale"};
  if (name == "period") return {double(s.period), "period"};
  if (name == "heavy_hitters") return {double(s.heavy_hitters), "heavy hitters"};
  return {s.position_weight, "\xCE\xBB"};  // position_weight
}
}  // namespace

std::string describeKnobs(const InputSpec& spec) {
  const InputSpec defaults;
  std::string out;
  if (spec.temperature != defaults.temperature) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "\xCF\x84 = %g", spec.temperature);
    out = buf;
  }
  for (const std::string& name : generatorKnobs(spec.generator)) {
    const auto [value, label] = knob(spec, name);
    if (value == knob(defaults, name).first) continue;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s %g", label, value);
    out += (out.empty() ? "" : ", ") + std::string(buf);
  }
  if (spec.generator == Generator::Image) {  // the photo and the features, when they are not the defaults
    std::string image = spec.image.empty() ? "" : "photo " + spec.image;
    if (!spec.image_b.empty()) image += (image.empty() ? "keys from " : " (keys from ") + spec.image_b + (image.empty() ? "" : ")");
    if (spec.width > 0) image += (image.empty() ? "W = " : " on W = ") + std::to_string(spec.width);
    if (spec.features == ImageFeatures::FilterBank) image += (image.empty() ? "" : ", ") + std::to_string(spec.filters) + " filters";
    if (!image.empty()) out += (out.empty() ? "" : ", ") + image;
  }
  return out;
}

void copyKnobs(const InputSpec& from, InputSpec& to) {
  to.clusters = from.clusters;
  to.noise = from.noise;
  to.length_scale = from.length_scale;
  to.period = from.period;
  to.heavy_hitters = from.heavy_hitters;
  to.position_weight = from.position_weight;
  to.image = from.image;
  to.features = from.features;
  to.filters = from.filters;
  to.picture = from.picture;
  to.image_b = from.image_b;
  to.picture_b = from.picture_b;
}

Index gridWidth(Index n) {
  Index w = 1;
  for (Index c = 1; c * c <= n; ++c)
    if (n % c == 0) w = c;
  return w;
}

namespace {

constexpr Index kMaxTokens = kMaxInputTokens;
constexpr Index kMaxDim = kMaxHeadSize;
constexpr Index kMaxClusters = Index(1) << 16;
constexpr std::size_t kMaxImageName = 4096;  // a path at most

/// The picture a decoded `picture` or a shipped `name` gives (null: none named). `option` names the flag that
/// reads a file ("--image").
std::shared_ptr<const Picture> pictureOf(const std::shared_ptr<const Picture>& picture, const std::string& name,
                                         const char* option) {
  if (picture) return picture;
  if (name.empty()) return nullptr;
  if (auto shipped = shippedPicture(name)) return shipped;
  throw UserError("there is no shipped image '" + name + "' (the shipped ones are " + shippedImageNames() +
                  "); a file's pixels are read by the front end (attnlab " + option +
                  " FILE) before the input is generated");
}

/// The picture the named or decoded image of `spec` gives (null: the synthetic shapes).
std::shared_ptr<const Picture> photoOf(const InputSpec& spec) { return pictureOf(spec.picture, spec.image, "--image"); }

/// The change pair's second picture (null: no pair). UserError when there is no first photo to pair it with, or
/// when the two differ in size (a pair is co-registered: pixel (y, x) of one is pixel (y, x) of the other).
std::shared_ptr<const Picture> photoBOf(const InputSpec& spec) {
  auto b = pictureOf(spec.picture_b, spec.image_b, "--image-b");
  if (!b) return nullptr;
  const auto a = photoOf(spec);
  if (!a)
    throw UserError("the change pair's second picture '" + spec.image_b + "' needs a first one: give --image NAME|FILE "
                    "too (the queries and values come from it, the keys from " + spec.image_b + ")");
  if (a->height != b->height || a->width != b->width)
    throw UserError("the change pair's pictures differ in size: " + spec.image + " is " + std::to_string(a->width) + "×" +
                    std::to_string(a->height) + ", " + spec.image_b + " is " + std::to_string(b->width) + "×" +
                    std::to_string(b->height) + "; a pair is two co-registered pictures of the same size");
  return b;
}

/// The synthetic picture of the `image` generator on an h × w grid: a background gradient between two
/// seeded colours, then a few discs and rectangles on top. Colours N × 3 in [0, 1] (double, as the features
/// are computed from them); `cluster` gets the region of each pixel.
MatrixD shapesPicture(Index h, Index w, Rng& rng, std::vector<std::int32_t>& cluster) {
  const Index n = h * w, side = std::max(h, w);
  auto colour = [&] { return Eigen::Vector3d(rng.uniform(), rng.uniform(), rng.uniform()); };
  const Eigen::Vector3d c0 = colour(), c1 = colour();
  const double angle = 2 * M_PI * rng.uniform();
  struct Shape {
    bool disc;
    double cx, cy, rx, ry;  // centre and half-sizes, in units of the longer side
    Eigen::Vector3d rgb;
  };
  constexpr int kShapes = 5;
  std::vector<Shape> shapes;
  for (int s = 0; s < kShapes; ++s) {
    Shape sh;
    sh.disc = rng.uniform() < 0.5;
    sh.cx = rng.uniform() * double(w) / double(side);
    sh.cy = rng.uniform() * double(h) / double(side);
    sh.rx = 0.1 + 0.2 * rng.uniform();
    sh.ry = sh.disc ? sh.rx : 0.1 + 0.2 * rng.uniform();
    sh.rgb = colour();
    shapes.push_back(sh);
  }
  MatrixD rgb(n, 3);
  cluster.assign(size_t(n), 0);
  for (Index i = 0; i < n; ++i) {
    const Index y = i / w, x = i % w;
    const double px = (double(x) + 0.5) / double(side), py = (double(y) + 0.5) / double(side);
    const double t = std::clamp(0.5 + (px - 0.5 * double(w) / double(side)) * std::cos(angle) +
                                    (py - 0.5 * double(h) / double(side)) * std::sin(angle),
                                0.0, 1.0);
    Eigen::Vector3d c = (1 - t) * c0 + t * c1;
    for (int s = 0; s < kShapes; ++s) {
      const Shape& sh = shapes[size_t(s)];
      const double dx = (px - sh.cx) / sh.rx, dy = (py - sh.cy) / sh.ry;
      const bool inside = sh.disc ? dx * dx + dy * dy <= 1 : std::abs(dx) <= 1 && std::abs(dy) <= 1;
      if (inside) c = sh.rgb, cluster[size_t(i)] = s + 1;
    }
    for (int k = 0; k < 3; ++k) rgb(i, k) = c(k);
  }
  return rgb;
}

/// The `image` generator (see the comment at its case in generate()).
void generateImage(const InputSpec& spec, Inputs& in) {
  const Index n = spec.n, d = spec.d, dv = spec.dv;
  const Index w = imageGridWidth(spec), h = n / w;
  Rng rng(spec.seed, 7);
  MatrixD rgb;
  auto picture = std::make_shared<Picture>();
  if (const auto photo = photoOf(spec)) {
    *picture = fitToGrid(*photo, h, w);
    rgb.resize(n, 3);
    for (Index i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) rgb(i, c) = double(picture->rgb[size_t(3 * i + c)]);
  } else {
    rgb = shapesPicture(h, w, rng, in.cluster);
    picture->height = h;
    picture->width = w;
    picture->rgb.resize(size_t(3 * n));
    for (Index i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) picture->rgb[size_t(3 * i + c)] = float(rgb(i, c));
  }
  in.picture = std::move(picture);
  in.grid_width = w;
  const double texture = 0.1 * spec.noise;
  MatrixD noise(n, 3);  // a little per-pixel texture on the colours
  for (Index i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) noise(i, c) = texture * rng.normal();
  const MatrixD e = imageFeatures(rgb, h, w, spec.features, spec.position_weight, spec.filters, spec.seed, &noise);
  // A change pair: picture B's features, with the same texture (the pair is one scene, co-registered).
  MatrixD e_b;
  if (const auto photo_b = photoBOf(spec)) {
    auto fitted = std::make_shared<Picture>(fitToGrid(*photo_b, h, w));
    MatrixD rgb_b(n, 3);
    for (Index i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) rgb_b(i, c) = double(fitted->rgb[size_t(3 * i + c)]);
    e_b = imageFeatures(rgb_b, h, w, spec.features, spec.position_weight, spec.filters, spec.seed, &noise);
    in.picture_b = std::move(fitted);
  }
  const Index f = e.cols(), lift = f + 1;
  // Lift to constant norm: ẽ = [e, √(C − ‖e‖²)], so ẽ_i·ẽ_j = C − ‖ẽ_i − ẽ_j‖²/2 (C over both pictures of a pair).
  double c_norm = e.rowwise().squaredNorm().maxCoeff() + 1e-3;
  if (e_b.size()) c_norm = std::max(c_norm, e_b.rowwise().squaredNorm().maxCoeff() + 1e-3);
  auto liftOf = [&](const MatrixD& features) {
    MatrixD out(n, lift);
    out.leftCols(f) = features;
    for (Index i = 0; i < n; ++i) out(i, f) = std::sqrt(c_norm - features.row(i).squaredNorm());
    return out;
  };
  const MatrixD lifted = liftOf(e);
  const MatrixD lifted_k = e_b.size() ? liftOf(e_b) : MatrixD();
  // A fixed seeded projection to d dims: orthonormal columns (Gram–Schmidt) when d ≥ f + 1, so dot
  // products are kept exactly; a scaled Gaussian one otherwise.
  MatrixD proj(lift, d);
  for (Index r = 0; r < lift; ++r)
    for (Index c = 0; c < d; ++c) proj(r, c) = rng.normal() / std::sqrt(double(d));
  if (d >= lift)
    for (Index r = 0; r < lift; ++r) {
      for (Index p = 0; p < r; ++p) proj.row(r) -= proj.row(r).dot(proj.row(p)) * proj.row(p);
      proj.row(r) /= proj.row(r).norm();
    }
  // Logits s·q_i·k_j ≈ κ·(C − ‖ẽ_i − ẽ_j‖²/2) with s = 1/√d and κ = 40: one unit of squared feature
  // distance costs 20 logits; a pixel step on a 32-wide grid with λ = 4 costs ≈ 0.3.
  constexpr double kSharpness = 40;
  const double a = std::sqrt(kSharpness * std::sqrt(double(d)));
  const double jitter = 0.002 * a;  // Q ≈ K: small independent noise on each
  in.q.resize(n, d);
  in.k.resize(n, d);
  Rng qrng(spec.seed, 9), krng(spec.seed, 10);
  for (Index i = 0; i < n; ++i) {  // row by row: never an N×d matrix of doubles
    const Eigen::RowVectorXd xi = a * lifted.row(i) * proj;
    const Eigen::RowVectorXd ki = lifted_k.size() ? Eigen::RowVectorXd(a * lifted_k.row(i) * proj) : xi;
    in.q.row(i) = (xi + qrng.gaussian(1, d, jitter).cast<double>()).cast<float>();
    in.k.row(i) = (ki + krng.gaussian(1, d, jitter).cast<double>()).cast<float>();
  }
  // Values: the features through another seeded projection, plus a little noise (outputs are then
  // smoothed pictures).
  Rng vrng(spec.seed, 8);
  const MatrixD vproj = vrng.gaussian(f, dv).cast<double>();
  in.v.resize(n, dv);
  for (Index i = 0; i < n; ++i)
    in.v.row(i) = (e.row(i) * vproj + vrng.gaussian(1, dv, 0.1).cast<double>()).cast<float>();
}

}  // namespace

void checkSpec(const InputSpec& s) {
  if (s.n < 1 || s.n > kMaxTokens)
    throw UserError("N must be between 1 and " + std::to_string(kMaxTokens) + ", not " + std::to_string(s.n));
  if (s.d < 1 || s.d > kMaxDim || s.dv < 1 || s.dv > kMaxDim)
    throw UserError("head sizes d and dv must be between 1 and " + std::to_string(kMaxDim));
  checkedMul(s.n, std::max(s.d, s.dv), "N × d", kMaxInputElements);
  if (!(s.temperature > 0) || !std::isfinite(s.temperature)) throw UserError("temperature must be a positive number");
  if (s.generator == Generator::Clustered && (s.clusters < 1 || s.clusters > kMaxClusters))
    throw UserError("clusters must be between 1 and " + std::to_string(kMaxClusters) + ", not " +
                    std::to_string(s.clusters));
  if (s.generator == Generator::Periodic && s.period < 1) throw UserError("period must be at least 1 token");
  if (s.heavy_hitters < 0) throw UserError("heavy hitters must be ≥ 0, not " + std::to_string(s.heavy_hitters));
  if (s.generator == Generator::Local && !(s.length_scale > 0)) throw UserError("length scale must be positive");
  if (!(s.noise >= 0) || !std::isfinite(s.noise)) throw UserError("noise must be ≥ 0");
  if (!(s.position_weight >= 0) || !std::isfinite(s.position_weight))
    throw UserError("the position weight λ of the image input must be ≥ 0");
  if (s.generator == Generator::Image) {
    for (const std::string* name : {&s.image, &s.image_b})
      if (name->size() > kMaxImageName)
        throw UserError("the image name is " + std::to_string(name->size()) + " bytes long; at most " +
                        std::to_string(kMaxImageName) + " are taken");
    if (s.features == ImageFeatures::FilterBank && (s.filters < 1 || s.filters > kMaxImageFilters))
      throw UserError("the filter bank has 1 to " + std::to_string(kMaxImageFilters) + " filters, not " +
                      std::to_string(s.filters));
    imageGridWidth(s);
    photoBOf(s);
  }
}

Index imageGridWidth(const InputSpec& s) {
  if (s.width < 0 || (s.width > 0 && s.n % s.width != 0))
    throw UserError("the image grid's width W = " + std::to_string(s.width) + " does not divide N = " +
                    std::to_string(s.n) + ": give the grid as --size WxH (N = W·H)");
  if (s.width > 0) return s.width;
  const auto photo = photoOf(s);
  return photo ? gridWidthFor(s.n, photo->height, photo->width) : gridWidth(s.n);
}

Inputs generate(const InputSpec& spec) {
  checkSpec(spec);
  const Index n = spec.n, d = spec.d;
  Rng rng(spec.seed, 1);
  Inputs in;
  in.spec = spec;
  switch (spec.generator) {
    case Generator::Gaussian: {
      in.q = rng.gaussian(n, d);
      in.k = rng.gaussian(n, d);
      break;
    }
    case Generator::Clustered: {
      // Centres of norm ≈ 1.25·√d make same-cluster logits ≈ 1.5·√d: most mass stays in the cluster.
      const Matrix centres = rng.gaussian(spec.clusters, d, 1.25);
      in.q.resize(n, d);
      for (Index i = 0; i < n; ++i) {
        const Index c = static_cast<Index>(rng.below(static_cast<std::uint64_t>(spec.clusters)));
        in.q.row(i) = centres.row(c) + rng.gaussian(1, d, 1.25 * spec.noise);
        in.cluster.push_back(static_cast<std::int32_t>(c));
      }
      in.k = in.q + rng.gaussian(n, d, 0.1);
      break;
    }
    case Generator::Local: {
      const double rho = std::exp(-1.0 / spec.length_scale);
      const double innovation = std::sqrt(1 - rho * rho);
      Matrix x(n, d);
      x.row(0) = rng.gaussian(1, d);
      for (Index i = 1; i < n; ++i) x.row(i) = float(rho) * x.row(i - 1) + rng.gaussian(1, d, innovation);
      in.q = x * 1.5f;
      in.k = x * 1.5f;
      break;
    }
    case Generator::Periodic: {
      // q_i·k_j = a²·Σ_h cos(2π·f_h·(i − j)/P): peaks wherever i − j is a multiple of P.
      Matrix x(n, d);
      const Index pairs = d / 2;
      std::vector<double> freq(static_cast<size_t>(pairs)), phase(static_cast<size_t>(pairs));
      for (Index h = 0; h < pairs; ++h) {
        freq[size_t(h)] = double(1 + rng.below(4));
        phase[size_t(h)] = 2 * M_PI * rng.uniform();
      }
      const double amp = 1.6;
      for (Index i = 0; i < n; ++i) {
        for (Index h = 0; h < pairs; ++h) {
          const double a = 2 * M_PI * freq[size_t(h)] * double(i) / double(spec.period) + phase[size_t(h)];
          x(i, 2 * h) = float(amp * std::cos(a));
          x(i, 2 * h + 1) = float(amp * std::sin(a));
        }
        if (d % 2) x(i, d - 1) = 0;
      }
      in.q = x + rng.gaussian(n, d, 0.2 * spec.noise);
      in.k = x + rng.gaussian(n, d, 0.2 * spec.noise);
      break;
    }
    case Generator::Peaked: {
      // Every query leans towards u; a few keys are long copies of u, so every row attends to them.
      Matrix u = rng.gaussian(1, d);
      u /= u.norm();
      in.q = rng.gaussian(n, d) + Matrix(Matrix::Ones(n, 1) * u * 1.5f * std::sqrt(float(d)) * 0.5f);
      in.k = rng.gaussian(n, d);
      const Index hh = std::min<Index>(spec.heavy_hitters, n);
      for (Index h = 0; h < hh; ++h) {
        const Index j = static_cast<Index>(rng.below(static_cast<std::uint64_t>(n)));
        in.k.row(j) = u * 3.0f + rng.gaussian(1, d, 0.1);
      }
      break;
    }
    case Generator::Copy: {
      // Tokens t and t + ⌈N/2⌉ carry the same random embedding (plus noise).
      const Index half = (n + 1) / 2;
      const Matrix base = rng.gaussian(half, d, 1.5);
      Matrix x(n, d);
      for (Index i = 0; i < n; ++i) x.row(i) = base.row(i % half) + rng.gaussian(1, d, 1.5 * 0.2 * spec.noise);
      in.q = x;
      in.k = x;
      break;
    }
    case Generator::Image: {
      // A picture on an H×W grid in raster order (CATALOG.md §0.6): by default a synthetic one (a seeded
      // background gradient with five seeded discs and rectangles on top, each a flat colour) on the grid
      // of gridWidth(); or a photo (a shipped one by name, or a file a front end read), centre-cropped to
      // the grid's aspect and area-averaged down to it (fitToGrid). The colours get a little per-pixel
      // texture (0.1·noise). Pixel features are [RGB, λ·(x, y)] (λ = position_weight, positions over the
      // longer side) or a fixed seeded filter bank on RGB beside λ·(x, y) (imageFeatures), lifted to
      // constant norm so that the logit of a pair falls with their squared feature distance: a pixel
      // attends to pixels like it nearby. A fixed seeded projection maps them to d dims; Q ≈ K (small
      // independent noise); V is the features through another projection. cluster holds the region of
      // each pixel of the shapes (0 = background, s = shape s on top); a photo has none. With a change pair
      // (image_b) K is picture B's features through the same projection (Q and V stay picture A's), so an
      // unchanged pixel's key still matches its query and a changed one's does not.
      generateImage(spec, in);
      break;
    }
  }
  if (spec.temperature != 1.0) in.q /= static_cast<float>(spec.temperature);
  if (spec.generator != Generator::Image) {
    Rng vrng(spec.seed, 2);
    in.v = vrng.gaussian(n, spec.dv);
  }
  // A tiny τ or a huge noise can push the values past float's range: say which knob, not "Q has inf".
  if (!in.q.allFinite() || !in.k.allFinite() || !in.v.allFinite()) {
    const std::string knobs = describeKnobs(spec);
    throw UserError("the generated Q, K, V overflow 32-bit floats at " + (knobs.empty() ? "these settings" : knobs) +
                    ": raise the temperature τ or lower the noise");
  }
  return in;
}

void validateInputs(const Matrix& q, const Matrix& k, const Matrix& v) {
  if (q.rows() < 1 || q.cols() < 1) throw UserError("Q is empty: it needs at least one row (token) and one column");
  if (k.rows() < 1 || k.cols() < 1) throw UserError("K is empty: it needs at least one row and one column");
  if (v.rows() < 1 || v.cols() < 1) throw UserError("V is empty: it needs at least one row and one column");
  if (q.cols() != k.cols())
    throw UserError("Q and K must have the same number of columns (head size d): Q is " + std::to_string(q.rows()) +
                    "×" + std::to_string(q.cols()) + ", K is " + std::to_string(k.rows()) + "×" +
                    std::to_string(k.cols()));
  if (k.rows() != v.rows())
    throw UserError("K and V must have the same number of rows (one value per key): K has " +
                    std::to_string(k.rows()) + ", V has " + std::to_string(v.rows()));
  auto check = [](const Matrix& m, const char* name) {
    for (Index i = 0; i < m.rows(); ++i)
      for (Index j = 0; j < m.cols(); ++j)
        if (!std::isfinite(m(i, j)))
          throw UserError(std::string(name) + " has a non-finite value (" + std::to_string(m(i, j)) + ") at row " +
                          std::to_string(i) + ", column " + std::to_string(j) + "; fix or drop that row");
  };
  check(q, "Q");
  check(k, "K");
  check(v, "V");
}

}  // namespace attn
