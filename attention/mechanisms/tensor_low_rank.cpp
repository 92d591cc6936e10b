// tensor-low-rank — Chen, Zhu, Sun, He, Li, Shen, Yu 2020 (arXiv 2008.00490), CATALOG.md #38, RecoNet: Tensor
// Low-Rank Reconstruction for Semantic Segmentation. A gating module: no N×N matrix (implies_weights = false).
// The feature map is X = V (N×C in raster order of the H×W grid, C = dv), as every gating module reads it.
//  - Tensor generation (TGM): for each of r rank-1 components three vectors, each a pooled profile of X through a
//    1×1 conv and a sigmoid: v_c ∈ (0,1)^C from the global average pool, v_h ∈ (0,1)^H from the pool over the
//    channels and the width, v_w ∈ (0,1)^W from the pool over the channels and the height.
//  - Tensor reconstruction (TRM): the CP sum A = Σ_i λ_i v_c^(i) ⊗ v_h^(i) ⊗ v_w^(i), a C×H×W attention tensor of
//    rank ≤ r; the context is X ⊙ A. On the backend A is one matmul, U (N×r) · V_c (r×C), with
//    U[(y,x), i] = λ_i·v_h^(i)[y]·v_w^(i)[x]: the N·r·C multiply-adds that dominate the module's cost.
//  - The pools, the 1×1 convs on the pooled vectors (O(r·(C² + (H + W)·C))) and X ⊙ A (O(N·C)) are elementwise
//    host work: small beside the reconstruction, and there is no N×N step to put on a device.
// Stand-ins (CATALOG (f), "pedagogical only"; the paper has no official code): the channel conv C → C of
// component i is a seeded Gaussian mix M_i/√C of the global pool (as the paper's conv, no normalisation, so the
// channel gates follow V's scale and the module is not linear in V); the spatial profiles pool the channels
// through a seeded random channel mix u_i instead of their mean, and the H → H and W → W convs are the identity
// (each spatial profile standardised before the sigmoid, as a BatchNorm would); λ_i = 1/r (what an unofficial
// implementation's softmax over equal λ starts from). Component i's draws come before component i + 1's from
// one seeded stream, so a run with rank k has exactly the first k components of a run with rank r: the steps
// "rank 1, 2, 4, …" are those smaller modules.
// r = 64 is the catalog's "[R]": the paper's text was not reachable here; unofficial implementations use 16 to
// 128 (one with rank 128 and a fixed 1/64 scale).
#include <algorithm>
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxRank = 256;

double sigmoid(double t) { return 1 / (1 + std::exp(-t)); }

/// x standardised in place: zero mean, unit variance over its entries; a constant x (or one entry) becomes 0.
void standardise(std::vector<double>& x) {
  if (x.empty()) return;
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= double(x.size());
  for (double v : x) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / double(x.size()));
  const double floor = 1e-12 * (std::abs(mean) + 1);
  for (double& v : x) v = sd > floor ? (v - mean) / sd : 0;
}

/// The r rank-1 components' profiles (rows): channel r×C, height r×H, width r×W, each entry in (0, 1).
struct Profiles {
  MatrixD channel, height, width;
};

/// The tensor generation module on X (N×C on the grid g): pools, then each component's 1×1 convs (stand-ins,
/// drawn component by component from one seeded stream) and sigmoids.
Profiles generateTensors(const Matrix& x, const Grid& g, Index rank, std::uint64_t seed) {
  const Index n = x.rows(), c = x.cols();
  std::vector<double> pooled(size_t(c), 0.0);
  MatrixD by_row = MatrixD::Zero(g.h, c), by_column = MatrixD::Zero(g.w, c);  // means over x, over y
  for (Index i = 0; i < n; ++i) {
    const Index y = i / g.w, col = i % g.w;
    for (Index k = 0; k < c; ++k) {
      const double v = x(i, k);
      pooled[size_t(k)] += v;
      by_row(y, k) += v;
      by_column(col, k) += v;
    }
  }
  for (double& v : pooled) v /= double(n);
  by_row /= double(g.w);
  by_column /= double(g.h);

  Profiles p{MatrixD(rank, c), MatrixD(rank, g.h), MatrixD(rank, g.w)};
  Rng rng(seed, 38);
  std::vector<double> mix(static_cast<size_t>(c)), h(static_cast<size_t>(g.h)), w(static_cast<size_t>(g.w));
  for (Index i = 0; i < rank; ++i) {
    for (double& m : mix) m = rng.normal();  // u_i: the channel mix the spatial profiles pool through
    for (Index y = 0; y < g.h; ++y) {
      double s = 0;
      for (Index k = 0; k < c; ++k) s += by_row(y, k) * mix[size_t(k)];
      h[size_t(y)] = s;
    }
    for (Index col = 0; col < g.w; ++col) {
      double s = 0;
      for (Index k = 0; k < c; ++k) s += by_column(col, k) * mix[size_t(k)];
      w[size_t(col)] = s;
    }
    standardise(h);
    standardise(w);
    for (Index y = 0; y < g.h; ++y) p.height(i, y) = sigmoid(h[size_t(y)]);
    for (Index col = 0; col < g.w; ++col) p.width(i, col) = sigmoid(w[size_t(col)]);
    const double norm = 1 / std::sqrt(double(c));  // M_i/√C: logits of the pool's size, whatever C is
    for (Index out = 0; out < c; ++out) {
      double s = 0;
      for (Index k = 0; k < c; ++k) s += rng.normal() * pooled[size_t(k)];
      p.channel(i, out) = sigmoid(norm * s);
    }
  }
  return p;
}

/// ‖A_k − A_r‖_F / ‖A_r‖_F for the reconstruction A_k from the first k components (λ = 1/k), without forming
/// either: with a_i = v_h^(i) ⊗ v_w^(i) and c_i = v_c^(i), ‖Σ α_i a_i c_iᵀ‖² = Σ_ij α_i α_j (a_i·a_j)(c_i·c_j),
/// and a_i·a_j = (v_h^(i)·v_h^(j))(v_w^(i)·v_w^(j)).
class RankChange {
 public:
  explicit RankChange(const Profiles& p)
      : gram_(MatrixD(p.height * p.height.transpose()).cwiseProduct(p.width * p.width.transpose())
                  .cwiseProduct(p.channel * p.channel.transpose())) {}
  double relative(Index k) const {
    const Index r = gram_.rows();
    VectorD diff(r), full = VectorD::Constant(r, 1.0 / double(r));
    for (Index i = 0; i < r; ++i) diff(i) = (i < k ? 1.0 / double(k) : 0.0) - 1.0 / double(r);
    const double top = diff.dot(gram_ * diff), bottom = full.dot(gram_ * full);
    return bottom > 0 ? std::sqrt(std::max(top, 0.0) / bottom) : 0.0;
  }

 private:
  MatrixD gram_;
};

/// The channel mean of the rank-k reconstruction (λ = 1/k), as an H×W map.
Matrix channelMeanMap(const Profiles& p, const Grid& g, Index k) {
  Matrix map = Matrix::Zero(g.h, g.w);
  for (Index i = 0; i < k; ++i) {
    const double weight = p.channel.row(i).mean() / double(k);
    for (Index y = 0; y < g.h; ++y)
      for (Index x = 0; x < g.w; ++x) map(y, x) += float(weight * p.height(i, y) * p.width(i, x));
  }
  return map;
}

/// The ranks the step bar shows: 1, 2, 4, … below r, then r.
std::vector<Index> shownRanks(Index r) {
  std::vector<Index> out;
  for (Index k = 1; k < r; k *= 2) out.push_back(k);
  out.push_back(r);
  return out;
}

class TensorLowRank final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "tensor-low-rank", "Tensor low-rank reconstruction (RecoNet)",
        "Chen, Zhu, Sun, He, Li, Shen, Yu. Tensor Low-Rank Reconstruction for Semantic Segmentation", "2008.00490",
        2020, Family::Vision, "O(N·r·C), C = dv channels and r rank-1 components; no N×N step", CausalSupport::No,
        "A C×H×W attention tensor built as a sum of r rank-1 tensors v_c ⊗ v_h ⊗ v_w, each vector a pooled profile "
        "of the feature map through a sigmoid; the output is X ⊙ A, with no pairwise matrix at all.",
        "the 1×1 convs: a seeded random C→C channel mix per component; the spatial profiles pool through a seeded "
        "random channel mix, with the identity for the H→H and W→W convs; λ_i = 1/r; X = V",
        false,
        {"convention: the output is X ⊙ A; the paper's fusion with X (concatenation, then convs) is left out",
         "convention: the height and width profiles are standardised before their sigmoids (a BatchNorm stand-in), so "
         "they use the whole of (0, 1)",
         "convention: r = 64 is not checked against the paper's text (unofficial code uses 16 to 128)"},
        false,
        false};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("rank", "Rank r", "Rank-1 tensors v_c ⊗ v_h ⊗ v_w summed into the C×H×W attention "
                           "tensor (64 as the catalog gives for the paper).", 64, 1, double(kMaxRank), true),
        widthParam(),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r;
    const Index n = std::max<Index>(s.n, 1), c = s.dv;
    const Grid g = gridFor(n, p.integer("width"), "tensor low-rank");
    const Index rank = std::clamp<Index>(p.integer("rank"), 1, kMaxRank);
    r.add(double(n * c) * sizeof(float), "the output (N × dv floats)");
    r.add(double(n * c) * sizeof(float), "the attention tensor A (N × C floats)");
    r.add(double(n * rank) * sizeof(float), "the spatial factor U (N × r floats)", "rank");
    r.add(double(rank * (c + g.h + g.w) + (g.h + g.w) * c) * sizeof(double) * 2,
          "the profiles and the pooled maps (r × (C + H + W) and (H + W) × C doubles)", "rank");
    if (options.explain)
      r.add(double(shownRanks(rank).size() + 1) * double(n) * sizeof(float) +
                double(rank * (c + g.h + g.w)) * sizeof(float) + 5.0 * double(rank * rank) * sizeof(double),
            "the rank steps' maps (N floats each), the profiles shown and their r × r Gram matrices", "rank");
    r.flops = flops(n, c, g, rank);
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Grid g = gridOfRun(in, p.integer("width"), "tensor low-rank");
    const Index n = in.n(), c = in.v.cols(), rank = std::clamp<Index>(p.integer("rank"), 1, kMaxRank);

    const Profiles prof = timedStage(r.cost, options, "generate tensors", [&] {
      return generateTensors(in.v, g, rank, options.seed);
    });
    // U[(y,x), i] = λ_i·v_h^(i)[y]·v_w^(i)[x] and V_c (r×C): A = U·V_c on the backend.
    Matrix u(n, rank), vc = prof.channel.cast<float>();
    const double lambda = 1.0 / double(rank);
    for (Index i = 0; i < n; ++i)
      for (Index k = 0; k < rank; ++k) u(i, k) = float(lambda * prof.height(k, i / g.w) * prof.width(k, i % g.w));
    const Matrix a = timedStage(r.cost, options, "reconstruct", [&] { return backend.matmul(u, vc, false); });
    r.output = timedStage(r.cost, options, "gate", [&] { return Matrix(in.v.cwiseProduct(a)); });

    r.cost.flops = flops(n, c, g, rank);
    r.cost.peak_bytes = backend.peakBytes() + Index(sizeof(float)) * (2 * n * c + n * rank);
    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    r.explanation.notes.push_back(std::to_string(rank) + " rank-1 components of a " + std::to_string(c) + "×" +
                                  std::to_string(g.h) + "×" + std::to_string(g.w) + " attention tensor (C×H×W)");
    if (!options.explain) return r;

    r.explanation.weights_withheld =
        "tensor low-rank implies no N×N matrix: it multiplies V elementwise by a rank-" + std::to_string(rank) +
        " C×H×W tensor; see its profiles and maps";
    auto& f = r.explanation.factors;
    f.push_back({"channel profiles v_c", "one row per rank-1 component: its gate per channel (r × C)",
                 prof.channel.cast<float>(), MatrixLayout::Plain});
    f.push_back({"height profiles v_h", "one row per component: its gate per image row (r × H)",
                 prof.height.cast<float>(), MatrixLayout::Plain});
    f.push_back({"width profiles v_w", "one row per component: its gate per image column (r × W)",
                 prof.width.cast<float>(), MatrixLayout::Plain});
    f.push_back({"attention tensor, channel mean", "A averaged over the channels at each pixel (H×W)",
                 channelMeanMap(prof, g, rank), MatrixLayout::Image});

    // The rank slider: the module with the first k components (λ = 1/k), for k = 1, 2, 4, …, r.
    displayStage(r.cost, options, "rank steps", [&] {
      const RankChange change(prof);
      for (Index k : shownRanks(rank)) {
        auto view = std::make_shared<Explanation>();
        const std::string title = "rank " + std::to_string(k);
        const std::string rel = fixedDigits(change.relative(k), 3);
        view->factors.push_back({"attention tensor, channel mean (rank " + std::to_string(k) + ")",
                                 "A_" + std::to_string(k) + " averaged over the channels (H×W); ‖A_" +
                                     std::to_string(k) + " − A_" + std::to_string(rank) + "‖/‖A_" +
                                     std::to_string(rank) + "‖ = " + rel,
                                 channelMeanMap(prof, g, k), MatrixLayout::Image});
        view->weights_withheld = r.explanation.weights_withheld;
        std::string caption =
            k == rank ? "Full rank r = " + std::to_string(rank) + ": the tensor the module multiplies V by."
                      : "The first " + std::to_string(k) + (k == 1 ? " component" : " components") +
                            " (λ = 1/" + std::to_string(k) + "): relative change from full rank " + rel + ".";
        r.explanation.steps.push_back(Step{title, std::move(caption), std::move(view), ""});
      }
    });
    return r;
  }

 private:
  /// Pools (3·N·C), the channel convs (2·r·C²), the spatial profiles' channel mixes (2·(H + W)·C·r), U (2·N·r),
  /// the reconstruction matmul (2·N·r·C) and the gate X ⊙ A (N·C).
  static double flops(Index n, Index c, const Grid& g, Index rank) {
    const double N = double(n), C = double(c), r = double(rank);
    return 3 * N * C + 2 * r * C * C + 2 * double(g.h + g.w) * C * r + 2 * N * r + 2 * N * r * C + N * C;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeTensorLowRank() { return std::make_shared<TensorLowRank>(); }
}  // namespace attn::mech
