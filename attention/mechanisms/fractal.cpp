// fractal — Diakogiannis, Waldner, Caccetta 2020 (arXiv 2009.02062), CATALOG.md #39, FracTAL: "Looking for
// change? Roll the Dice and demand Attention". A gating module: no N×N matrix (implies_weights = false).
// Queries and keys are compared element by element, pixel (y, x) of Q with pixel (y, x) of K, never all pairs:
//  - Fractal Tanimoto similarity of depth D, with the official code's smoothing ε = 1e-5 (feevos/ceecnet,
//    nn/layers/ftnmt.py):
//        T^D(p, l) = (p·l + ε)·(1/D)·Σ_{i=0}^{D−1} 1 / (2^i·(p·p + l·l) − (2^{i+1} − 1)·p·l + ε),
//    with its complement FT(p, l) = ½·[T^D(p, l) + T^D(1 − p, 1 − l)], D = 5 (the code's ftdepth).
//  - Spatial attention: FT over the channels at each pixel (an H×W map); channel attention: FT over the pixels
//    for each channel (a C-vector). O = ½·(A_chan ⊙ V + A_spat ⊙ V) (nn/layers/attention.py, RelFTAttention2D).
//  - Q = K gives p·l = p·p = l·l, every denominator term p·p + ε, so T = 1 and O = V exactly: the module only
//    damps where the two disagree. With a change pair (InputSpec::image_b) K is the second picture's, so the
//    spatial map is low where the pictures differ: FracTAL's use in change detection (CEECNet).
// All of it is elementwise: O(N·C·D) host work (products, sums over rows and columns, the D-term sums), with no
// N×N step to put on a device; the stand-in projection to C channels (when d ≠ dv) is a backend matmul.
// Stand-ins: the code's q, k = sigmoid(BatchNorm(conv3×3(x))) become σ(standardise(Q·W)) and σ(standardise(K·W)),
// each channel standardised over the pixels by its own matrix's statistics (BatchNorm, γ = 1, β = 0), W the
// identity when d = dv, else a seeded orthonormal d → dv map (so the channel map lines up with V's channels).
// The value's conv and sigmoid and the final Norm are left out, so O stays linear in V.
#include <algorithm>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxDepth = 10;
constexpr Index kSurfaceSide = 64;  // the similarity surface, 64×64 values of (p, l) in [0, 1]²
constexpr Index kShownDepths = 5;   // the steps show D = 1 … 5 (and the run's D when larger)
constexpr double kSmooth = 1e-5;    // ftnmt.py's `smooth`

/// Fractal Tanimoto T^D from the three inner products p·l, p·p, l·l (ftnmt.py's tnmt_base).
double tanimoto(double pl, double pp, double ll, Index depth) {
  double sum = 0;
  for (Index i = 0; i < depth; ++i) {
    const double a = std::ldexp(1.0, int(i));
    sum += 1 / (a * (pp + ll) - (2 * a - 1) * pl + kSmooth);
  }
  return (pl + kSmooth) * sum / double(depth);
}

/// The six sums FT needs over a set of elements: p·l, p·p, l·l and the same of the complements 1 − p, 1 − l.
struct Sums {
  double pl = 0, pp = 0, ll = 0, cpl = 0, cpp = 0, cll = 0;
  void add(double p, double l) {
    pl += p * l, pp += p * p, ll += l * l;
    cpl += (1 - p) * (1 - l), cpp += (1 - p) * (1 - p), cll += (1 - l) * (1 - l);
  }
  double similarity(Index depth) const { return 0.5 * (tanimoto(pl, pp, ll, depth) + tanimoto(cpl, cpp, cll, depth)); }
};

/// σ(standardise(x)) per column: each channel standardised over the pixels (a constant channel becomes ½).
MatrixD gates(const Matrix& x) {
  const Index n = x.rows(), c = x.cols();
  MatrixD out(n, c);
  for (Index k = 0; k < c; ++k) {
    double mean = 0, var = 0;
    for (Index i = 0; i < n; ++i) mean += x(i, k);
    mean /= double(n);
    for (Index i = 0; i < n; ++i) var += (x(i, k) - mean) * (x(i, k) - mean);
    const double sd = std::sqrt(var / double(n)), floor = 1e-12 * (std::abs(mean) + 1);
    for (Index i = 0; i < n; ++i) {
      const double z = sd > floor ? (x(i, k) - mean) / sd : 0;
      out(i, k) = 1 / (1 + std::exp(-z));
    }
  }
  return out;
}

/// A seeded d×dv map with orthonormal columns (d ≥ dv) or rows (d < dv).
Matrix projection(Index d, Index dv, std::uint64_t seed) {
  Rng rng(seed, 39);
  const Index tall = std::max(d, dv), wide = std::min(d, dv);
  MatrixD g(tall, wide);
  for (Index i = 0; i < tall; ++i)
    for (Index j = 0; j < wide; ++j) g(i, j) = rng.normal();
  const Eigen::HouseholderQR<MatrixD> qr(g);
  const MatrixD basis = qr.householderQ() * MatrixD::Identity(tall, wide);
  return d >= dv ? Matrix(basis.cast<float>()) : Matrix(basis.transpose().cast<float>());
}

class Fractal final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "fractal", "FracTAL fractal Tanimoto attention",
        "Diakogiannis, Waldner, Caccetta. Looking for change? Roll the Dice and demand Attention", "2009.02062",
        2020, Family::Vision, "O(N·C·D), C = dv channels and depth D; no N×N step", CausalSupport::No,
        "Each pixel's query is compared with its own key (the same pixel, not all pairs) by a fractal Tanimoto "
        "similarity, over the channels (a spatial map) and over the pixels (a channel map); V is scaled by both.",
        "q, k = σ(conv(x)) become σ(standardised Q·W), σ(standardised K·W), W the identity when d = dv, else a "
        "seeded orthonormal d→dv map; the value's conv and sigmoid left out",
        false,
        {"convention: BatchNorm before the sigmoids is a per-channel standardisation over the pixels (γ = 1, β = 0)",
         "convention: O = ½·(A_chan ⊙ V + A_spat ⊙ V) as in the code, with its final Norm left out"},
        true,
        false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("depth", "Depth D", "Terms of the fractal Tanimoto similarity: deeper D sharpens it "
                           "near p = l (D = 5, the official code's ftdepth).", 5, 1, double(kMaxDepth)),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1), c = s.dv, d = s.d;
    const Index depth = std::clamp<Index>(p.integer("depth"), 1, kMaxDepth);
    (void)gridFor(n, p.integer("width"), "FracTAL");
    r.add(double(n * c) * sizeof(float), "the output (N × dv floats)");
    r.add(double(2 * n * c) * sizeof(double), "the gates σ(Q'), σ(K') (2 × N × C doubles)");
    if (d != c) r.add(double(2 * n * c) * sizeof(float) + double(d * c) * 12, "Q·W and K·W (2 × N × C floats)");
    r.add(double(n + c) * 6 * sizeof(double) + double(n + c) * sizeof(float) * 2,
          "the inner products and the two maps (N + C each)");
    if (options.explain)
      r.add(double(std::max(kShownDepths, depth)) * double(kSurfaceSide * kSurfaceSide) * sizeof(float),
            "the similarity surfaces (64 × 64 floats per depth)", "depth");
    r.flops = flops(n, d, c, depth);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "FracTAL");
    const Index n = in.n(), d = in.q.cols(), c = in.v.cols();
    const Index depth = std::clamp<Index>(p.integer("depth"), 1, kMaxDepth);

    // Q' and K' in V's C channels, then the gates p = σ(standardised Q'), l = σ(standardised K').
    MatrixD pg, lg;
    timedStage(r.cost, options, "gates", [&] {
      if (d == c) {
        pg = gates(in.q), lg = gates(in.k);
      } else {
        const Matrix w = projection(d, c, options.seed);
        pg = gates(backend.matmul(in.q, w, false));
        lg = gates(backend.matmul(in.k, w, false));
      }
    });
    // One pass over the N×C elements gives both maps' sums: per pixel over the channels, per channel over the pixels.
    Vector spatial(n), channel(c);
    timedStage(r.cost, options, "similarity", [&] {
      std::vector<Sums> per_channel(static_cast<size_t>(c));
      for (Index i = 0; i < n; ++i) {
        Sums per_pixel;
        for (Index k = 0; k < c; ++k) {
          per_pixel.add(pg(i, k), lg(i, k));
          per_channel[size_t(k)].add(pg(i, k), lg(i, k));
        }
        spatial(i) = float(per_pixel.similarity(depth));
      }
      for (Index k = 0; k < c; ++k) channel(k) = float(per_channel[size_t(k)].similarity(depth));
    });
    r.output = timedStage(r.cost, options, "gate", [&] {
      Matrix out(n, c);
      for (Index i = 0; i < n; ++i)
        for (Index k = 0; k < c; ++k) out(i, k) = float(0.5 * (double(channel(k)) + double(spatial(i))) * in.v(i, k));
      return out;
    });
    r.cost.flops = flops(n, d, c, depth);
    r.cost.peak_bytes = backend.peakBytes() + Index(2 * n * c * sizeof(double) + n * c * sizeof(float));
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    if (in.picture_b)
      r.explanation.notes.push_back("a change pair: keys from the second picture" +
                                    (in.spec.image_b.empty() ? std::string() : " (" + in.spec.image_b + ")") +
                                    ", queries and values from the first; the spatial map is low where they differ");
    if (!options.explain) return r;

    r.explanation.weights_withheld =
        "FracTAL implies no N×N matrix: it compares each pixel's query with its own key and scales V by the "
        "similarities; see its spatial and channel maps";
    Matrix spatial_map(g.h, g.w);
    for (Index i = 0; i < n; ++i) spatial_map(i / g.w, i % g.w) = spatial(i);
    r.explanation.factors.push_back({"spatial similarity", "FT^" + std::to_string(depth) + "(q, k) over the channels "
                                     "at each pixel: 1 where query and key agree (H×W)",
                                     std::move(spatial_map), MatrixLayout::Image});
    r.explanation.factors.push_back({"channel similarity", "FT^" + std::to_string(depth) + "(q, k) over the pixels "
                                     "for each channel (1 × C)",
                                     Matrix(channel.transpose()), MatrixLayout::Bars});

    // The similarity surface FT^D(p, l) of one channel, for D = 1 … 5 (and the run's D when deeper).
    displayStage(r.cost, options, "similarity surfaces", [&] {
      for (Index depth_shown = 1; depth_shown <= std::max(kShownDepths, depth); ++depth_shown) {
        Matrix surface(kSurfaceSide, kSurfaceSide);
        double mean = 0;
        for (Index row = 0; row < kSurfaceSide; ++row)
          for (Index col = 0; col < kSurfaceSide; ++col) {
            const double pv = (double(col) + 0.5) / double(kSurfaceSide), lv = (double(row) + 0.5) / double(kSurfaceSide);
            Sums s;
            s.add(pv, lv);
            surface(row, col) = float(s.similarity(depth_shown));
            mean += surface(row, col);
          }
        mean /= double(kSurfaceSide * kSurfaceSide);
        auto view = std::make_shared<Explanation>();
        view->factors.push_back({"similarity surface FT^" + std::to_string(depth_shown),
                                 "FT^" + std::to_string(depth_shown) + "(p, l) of one channel, p along the columns and "
                                 "l down the rows, both from 0 to 1 (64 × 64)",
                                 std::move(surface), MatrixLayout::Plain});
        view->weights_withheld = r.explanation.weights_withheld;
        r.explanation.steps.push_back(
            Step{"D = " + std::to_string(depth_shown),
                 "FT^" + std::to_string(depth_shown) + ": 1 on the diagonal p = l, lower off it; mean over the square " +
                     fixedDigits(mean, 3) + (depth_shown == depth ? " (the depth this run uses)." : "."),
                 std::move(view), ""});
      }
    });
    return r;
  }

 private:
  /// The projection (2·N·d·C for Q and for K, when d ≠ dv), standardise and sigmoid (8·N·C), the six products and
  /// their row and column sums (18·N·C), the D-term similarities of N pixels and C channels (2 × 2 × 5·D each) and
  /// the output (3·N·C).
  static double flops(Index n, Index d, Index c, Index depth) {
    const double N = double(n), C = double(c), D = double(depth);
    return (d != c ? 4 * N * double(d) * C : 0) + 8 * N * C + 18 * N * C + 20 * D * (N + C) + 3 * N * C;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeFractal() { return std::make_shared<Fractal>(); }
}  // namespace attn::mech
