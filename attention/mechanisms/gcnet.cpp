// gcnet — Cao, Xu, Lin, Wei, Hu 2019 (arXiv 1904.11492), CATALOG.md #7, GCNet: Non-local Networks Meet
// Squeeze-Excitation Networks and Beyond. The tokens are an H×W grid in raster order (W from the `width` param,
// or the image input's grid).
//  - Context modelling: ONE attention map for every query, w = softmax_j(W_k·x_j), and the context
//    c = Σ_j w_j·v_j. On the backend: Backend::denseAttention with a single query row, which gives c and the
//    map's log-normaliser.
//  - The output of every pixel is c (the transform and the residual are the identity / left out), so the implied
//    weights are 1·wᵀ: rank 1, row-stochastic and linear in V (a factored Linear WeightKernel, never N×N).
//  - The paper's motivation, that non-local maps are nearly the same for every query, is shown, not assumed: a
//    display-only measure (N ≤ 4096) of how alike exact attention's rows are at 16 spread pixels, and the error of
//    replacing every exact row by the mean row (gcnet.h).
// Stand-ins: W_k is the mean query q̄, so the map is softmax_j(s·q̄·k_j) and compares with the non-local (exact)
// maps of the same logits; the bottleneck transform (1×1 conv, LayerNorm, ReLU, 1×1 conv) is the identity and the
// residual is left out. Host work is O(N·d) (the mean query, the map's entries) and O(16·N·d) for the measure.
#include "attention/mechanisms/gcnet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/low_rank.h"
#include "attention/plan.h"

namespace attn::mech {

std::vector<Index> latticePixels(const Grid& g, Index side) {
  std::vector<Index> out;
  for (Index a = 0; a < side; ++a)
    for (Index b = 0; b < side; ++b) {
      const Index y = (2 * a + 1) * g.h / (2 * side), x = (2 * b + 1) * g.w / (2 * side);
      const Index t = tokenOf({y, x}, g);
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    }
  return out;
}

QueryIndependence queryIndependence(const Matrix& q, const Matrix& k, float scale, const std::vector<Index>& pixels,
                                    const Matrix& exact_output) {
  QueryIndependence r;
  r.pixels = pixels;
  const Index count = Index(pixels.size()), m = k.rows();
  const MatrixD kd = k.cast<double>();
  MatrixD rows(count, m);
  for (Index a = 0; a < count; ++a) {
    const VectorD logits = double(scale) * (kd * q.row(pixels[size_t(a)]).cast<double>().transpose());
    const double top = logits.maxCoeff();
    rows.row(a) = (logits.array() - top).exp().transpose();
    rows.row(a) /= rows.row(a).sum();
  }
  r.distance = MatrixD::Zero(count, count);
  double sum = 0;
  for (Index a = 0; a < count; ++a)
    for (Index b = a + 1; b < count; ++b) {
      const double d = 1 - rows.row(a).dot(rows.row(b)) / (rows.row(a).norm() * rows.row(b).norm());
      r.distance(a, b) = r.distance(b, a) = d;
      sum += d;
    }
  r.mean_distance = count > 1 ? sum / double(count * (count - 1) / 2) : 0;
  const MatrixD o = exact_output.cast<double>();
  const double norm = o.norm();
  const MatrixD centred = o.rowwise() - o.colwise().mean();
  r.mean_row_error = norm > 0 ? centred.norm() / norm : 0;
  return r;
}

namespace {

constexpr Index kMaxMeasureTokens = 4096;  // the display-only measure runs exact attention: up to this N
constexpr Index kLatticeSide = 4;          // 16 sampled pixels

class Gcnet final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "gcnet", "GCNet global context block",
        "Cao, Xu, Lin, Wei, Hu. GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", "1904.11492",
        2019, Family::Vision, "O(N·d), N·(d + dv) on H×W", CausalSupport::No,
        "One attention map shared by every query: the context c = Σ_j w_j v_j is pooled once and given to every pixel, "
        "so the weights are 1·wᵀ (rank 1) instead of N different non-local maps.",
        "W_k (the 1×1 conv that scores each pixel): the mean query q̄, logits s·q̄·k_j; the bottleneck transform "
        "(1×1 conv, LayerNorm, ReLU, 1×1 conv) the identity; the residual left out (out_i = c)",
        false,
        {"convention: W_k is the mean query q̄ (CATALOG #7 (f): the channel mean of X), so the one map compares with "
         "non-local maps of the same logits",
         "convention: logits ×1/√d as everywhere in attnlab; the official conv_mask is unscaled",
         "convention: transform and residual are the identity / left out: every pixel's output is the context c (the "
         "paper's block adds t(c) to x_i)"},
        true,
        true};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {widthParam()}; }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1);
    gridFor(n, p.integer("width"), "GCNet");
    r.add(double(n * s.dv) * sizeof(float), "the output (N × dv floats)");
    r.add(double(n + s.m) * 2 * sizeof(float), "the map w and the implied weights' factors (N + M floats)");
    r.add(double(s.d + s.dv) * 2 * sizeof(double), "the mean query and the context");
    if (options.explain) {
      r.add(double(s.m) * sizeof(float), "the context map (H × W floats, formed to be seen)");
      if (s.n <= kMaxMeasureTokens && s.m == s.n) {
        r.add(double(n * s.dv) * sizeof(float) * 3, "exact attention's output and its float64 copy (formed to be seen)");
        r.add(double(kLatticeSide * kLatticeSide + 1) * double(s.m) * sizeof(double) * 2 + double(s.m * s.d) * sizeof(double),
              "exact rows at 16 pixels in float64 (formed to be seen)");
      }
    }
    r.flops = flops(s);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "GCNet");
    const Index n = in.n(), m = in.m();
    const float scale = defaultScale(in.q.cols());

    // W_k: the mean query (host, O(N·d), in float64 then rounded once).
    const Matrix mean_query = timedStage(r.cost, options, "mean query", [&] {
      return Matrix(in.q.cast<double>().colwise().mean().cast<float>());
    });
    DenseAttentionOptions o;
    o.scale = scale;
    AttentionOutput context = timedStage(r.cost, options, "context", [&] {
      return backend.denseAttention(mean_query, in.k, in.v, o);
    });
    r.output = context.out.replicate(n, 1);
    // The map's entries w_j = exp(s·q̄·k_j − lse) (host, O(M·d)); the implied weights 1·wᵀ.
    auto map = std::make_shared<Matrix>(m, 1);
    {
      const VectorD logits = double(scale) * (in.k.cast<double>() * mean_query.cast<double>().transpose());
      for (Index j = 0; j < m; ++j) (*map)(j, 0) = float(std::exp(logits(j) - double(context.lse(0))));
    }
    r.explanation.weights = productWeights(std::make_shared<const Matrix>(Matrix::Ones(n, 1)), map);
    r.cost.scored_pairs = double(m);
    r.cost.flops = flops(RunShape::of(in));
    r.cost.peak_bytes = backend.peakBytes() + (2 * n * in.v.cols() + n + 2 * m) * Index(sizeof(float));
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back("one map for every query: the implied weights are 1·wᵀ (rank 1), every row the "
                                  "context map w");
    if (!options.explain) return r;

    r.explanation.factors.push_back(
        {"context map w (H×W)", "softmax over the pixels of s·q̄·k_j: the one map every pixel pools its context with",
         map->reshaped<Eigen::RowMajor>(g.h, g.w), MatrixLayout::Image});
    r.explanation.factors.push_back({"context c (1×dv)", "c = Σ_j w_j v_j: what every pixel receives",
                                     context.out, MatrixLayout::Bars});

    // How query-independent exact (non-local) attention is on these inputs: shown, not assumed.
    if (n <= kMaxMeasureTokens && m == n) {
      const QueryIndependence qi = displayStage(r.cost, options, "query independence", [&] {
        DenseAttentionOptions e;
        e.scale = scale;
        const Matrix exact = backend.denseAttention(in.q, in.k, in.v, e).out;
        return queryIndependence(in.q, in.k, scale, latticePixels(g, kLatticeSide), exact);
      });
      char line[320];
      std::snprintf(line, sizeof line,
                    "query independence of exact attention (display only): mean cosine distance of its maps at %zu "
                    "spread pixels %.3f (0: the same map); every row replaced by the mean row: e_out %.3f",
                    qi.pixels.size(), qi.mean_distance, qi.mean_row_error);
      r.explanation.notes.push_back(line);
      r.explanation.factors.push_back({"cosine distance of exact maps at " + std::to_string(qi.pixels.size()) + " pixels",
                                       "1 − cos between exact attention's rows at pixels spread over the grid (a 4×4 "
                                       "lattice): 0 where two pixels attend alike",
                                       qi.distance.cast<float>(), MatrixLayout::Plain});
    } else {
      r.explanation.notes.push_back("query independence of exact attention is measured up to N = " +
                                    std::to_string(kMaxMeasureTokens) + " (it runs exact attention)");
    }
    r.explanation.steps.push_back(factorStep("context map", "The one map, softmax_j(s·q̄·k_j), shared by every pixel.",
                                             r.explanation.factors.front()));
    r.explanation.steps.push_back(factorStep("context", "c = Σ_j w_j v_j, given to every pixel.", r.explanation.factors[1]));
    return r;
  }

 private:
  static double flops(const RunShape& s) {
    return double(s.n * s.d) + 2.0 * double(s.m) * double(s.d + s.dv) + double(s.n * s.dv);
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeGcnet() { return std::make_shared<Gcnet>(); }
}  // namespace attn::mech
