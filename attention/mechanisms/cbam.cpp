// cbam — Woo, Park, Lee, Kweon 2018 (arXiv 1807.06521), CATALOG.md #2, CBAM: Convolutional Block Attention
// Module. X = V (N × C, raster order of the H×W grid: W from the `width` param or the image input's grid).
//  - Channel gate: M_c = σ(MLP(AvgPool(X)) + MLP(MaxPool(X))) over positions; F′ = M_c ⊙ X.
//  - Spatial gate: M_s = σ(conv_k([mean over channels of F′; max over channels of F′])), zero-padded like the
//    official code (padding (k − 1)/2); out = M_s ⊙ F′.
//  - No pairwise weights: every value is multiplied by two gates, so the module implies no N×N matrix
//    (implies_weights = false) and is not an approximation of softmax attention. Its gates are its picture: the
//    channel gate as bars, the spatial gate over the image (`--view gates`).
// Stand-ins (CATALOG #2 (f)): the shared MLP (C → C/16 → C) is the identity, so M_c = σ(avg + max); the learned
// 7×7 conv (2 → 1 channels, then BatchNorm) is a fixed normalised Gaussian (σ = (k − 1)/4 pixels) applied to both
// pooled maps and summed: a saliency-like gate.
// Backend: the average pooling is Backend::matmul(1ᵀ/N, X); max pooling, the sigmoids, the products and the k×k
// conv are host work, O(N·C) and O(N·k²) (no sparse-matmul primitive exists yet; the conv is at most 15×15).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/low_rank.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr Index kMaxKernel = 15;

double sigmoid(double t) { return 1 / (1 + std::exp(-t)); }

/// The k×k Gaussian stand-in for the spatial conv, normalised to sum 1 (k = 1: the single weight 1).
MatrixD gaussianKernel(Index k) {
  MatrixD g(k, k);
  const double sigma = double(k - 1) / 4, c = double(k - 1) / 2;
  for (Index y = 0; y < k; ++y)
    for (Index x = 0; x < k; ++x) {
      const double r2 = (double(y) - c) * (double(y) - c) + (double(x) - c) * (double(x) - c);
      g(y, x) = sigma > 0 ? std::exp(-r2 / (2 * sigma * sigma)) : 1;
    }
  return g / g.sum();
}

class Cbam final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "cbam", "CBAM channel and spatial gates",
        "Woo, Park, Lee, Kweon. CBAM: Convolutional Block Attention Module", "1807.06521", 2018, Family::Vision,
        "O(N·C), N·(C + k²) on H×W", CausalSupport::No,
        "Two gates instead of pairwise weights: one number per channel from pooled statistics, then one per pixel from "
        "a k×k convolution of the channel mean and max; every value is multiplied by both.",
        "the shared MLP (C → C/16 → C): the identity, so M_c = σ(avg + max); the learned k×k conv (and its "
        "BatchNorm): a fixed normalised Gaussian (σ = (k − 1)/4) on both pooled maps, summed",
        false,
        {"convention: X is the inputs' V (N × C = dv) on the H×W grid; the spatial conv is zero-padded as in the "
         "official code, so the gate dims towards the border"},
        false,
        false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("kernel", "Spatial kernel k", "Side of the spatial gate's convolution (odd); 7 in the "
                           "paper and the official code, 3 its ablation.", 7, 1, double(kMaxKernel)),
        ParamSpec::choice("pooling", "Channel pooling", "What the channel gate pools over positions: the average and "
                          "the maximum (the paper's), or one of them.", {"avg+max", "avg", "max"}, 0),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    gridFor(n, p.integer("width"), "CBAM");
    r.add(double(n * s.dv) * sizeof(float), "the output (N × dv floats)");
    r.add(double(n * s.dv) * sizeof(float), "the channel-gated values F′ (N × dv floats)");
    r.add(double(n) * 4 * sizeof(double) + double(s.dv) * 4 * sizeof(double), "the pooled maps and the gates");
    if (options.explain) r.add(double(n) * 6 * sizeof(float) + double(s.dv) * 2 * sizeof(float), "the gates' maps (formed to be seen)");
    r.flops = flops(s, std::clamp<Index>(p.integer("kernel"), 1, kMaxKernel));
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    const Index k = p.integer("kernel");
    if (k % 2 == 0)
      throw UserError("CBAM: kernel " + std::to_string(k) + " is even; the spatial conv needs an odd side (it is "
                      "centred on the pixel): use " + std::to_string(k - 1) + " or " + std::to_string(k + 1));
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "CBAM");
    const Index n = in.n(), c = in.v.cols();
    const std::string pooling = p.choice("pooling");
    const bool use_avg = pooling != "max", use_max = pooling != "avg";

    // Channel gate. Average pooling on the backend; max pooling and σ on the host (O(N·C)).
    const Matrix average = timedStage(r.cost, options, "average pool", [&] {
      return backend.matmul(Matrix::Constant(1, n, 1.0f / float(n)), in.v);
    });
    VectorD channel_gate(c);
    Matrix gated(n, c);
    timedStage(r.cost, options, "channel gate", [&] {
      for (Index ch = 0; ch < c; ++ch) {
        const double pooled = (use_avg ? double(average(0, ch)) : 0.0) + (use_max ? double(in.v.col(ch).maxCoeff()) : 0.0);
        channel_gate(ch) = sigmoid(pooled);
      }
      for (Index i = 0; i < n; ++i)
        for (Index ch = 0; ch < c; ++ch) gated(i, ch) = float(channel_gate(ch) * double(in.v(i, ch)));
    });
    // Spatial gate: the channel mean and max of F′ per pixel, the k×k conv (zero padding), σ (host, O(N·(C + k²))).
    VectorD mean_map(n), max_map(n), spatial_gate(n);
    timedStage(r.cost, options, "spatial gate", [&] {
      for (Index i = 0; i < n; ++i) {
        mean_map(i) = gated.row(i).cast<double>().mean();
        max_map(i) = double(gated.row(i).maxCoeff());
      }
      const MatrixD kernel = gaussianKernel(k);
      const Index half = k / 2;
      for (Index y = 0; y < g.h; ++y)
        for (Index x = 0; x < g.w; ++x) {
          double sum = 0;
          for (Index dy = -half; dy <= half; ++dy)
            for (Index dx = -half; dx <= half; ++dx) {
              const Index yy = y + dy, xx = x + dx;
              if (yy < 0 || yy >= g.h || xx < 0 || xx >= g.w) continue;
              const Index t = tokenOf({yy, xx}, g);
              sum += kernel(dy + half, dx + half) * (mean_map(t) + max_map(t));
            }
          spatial_gate(tokenOf({y, x}, g)) = sigmoid(sum);
        }
    });
    r.output.resize(n, c);
    for (Index i = 0; i < n; ++i) r.output.row(i) = gated.row(i) * float(spatial_gate(i));
    r.cost.scored_pairs = double(n) * double(std::min(k * k, n));
    r.cost.flops = flops(RunShape::of(in), k);
    r.cost.peak_bytes = backend.peakBytes() + 2 * n * c * Index(sizeof(float)) + (4 * n + 4 * c) * Index(sizeof(double));
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    if (!options.explain) return r;

    r.explanation.weights_withheld = "CBAM multiplies each value by a channel gate and a pixel gate (out = M_s ⊙ M_c ⊙ "
                                     "V): no N×N weights; its gates are in --view gates";
    auto image = [&](const VectorD& v) { return Matrix(v.cast<float>().reshaped<Eigen::RowMajor>(g.h, g.w)); };
    char range[200];
    std::snprintf(range, sizeof range, "channel gate %.3f–%.3f over %lld channels, pixel gate %.3f–%.3f",
                  channel_gate.minCoeff(), channel_gate.maxCoeff(), static_cast<long long>(c), spatial_gate.minCoeff(),
                  spatial_gate.maxCoeff());
    r.explanation.notes.push_back(range);
    const std::string pooled = use_avg && use_max ? "σ(avg + max)" : use_avg ? "σ(avg)" : "σ(max)";
    r.explanation.factors.push_back({"spatial gate M_s (H×W)",
                                     "σ of a " + std::to_string(k) + "×" + std::to_string(k) +
                                         " Gaussian over the channel mean and max of F′: what each pixel is multiplied by",
                                     image(spatial_gate), MatrixLayout::Image});
    r.explanation.factors.push_back({"channel gate M_c (1×C)", pooled + " over the pixels: what each channel is multiplied by",
                                     Matrix(channel_gate.cast<float>().transpose()), MatrixLayout::Bars});
    r.explanation.factors.push_back({"channel mean of F′ (H×W)", "the spatial gate's first input", image(mean_map),
                                     MatrixLayout::Image});
    r.explanation.factors.push_back({"channel max of F′ (H×W)", "the spatial gate's second input", image(max_map),
                                     MatrixLayout::Image});
    r.explanation.steps.push_back(factorStep("channel gate", "M_c = " + pooled + " per channel; F′ = M_c ⊙ V.",
                                             r.explanation.factors[1]));
    r.explanation.steps.push_back(factorStep("spatial gate", "M_s = σ(conv([mean; max] of F′)) per pixel; out = M_s ⊙ F′.",
                                             r.explanation.factors[0]));
    return r;
  }

 private:
  static double flops(const RunShape& s, Index k) {
    return double(s.n) * double(s.dv) * 6 + double(s.n) * double(k * k) * 4;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeCbam() { return std::make_shared<Cbam>(); }
}  // namespace attn::mech
