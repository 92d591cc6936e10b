// permutohedral — Joutard, Dorent, Isaac, Ourselin, Vercauteren, Modat 2019 (arXiv 1907.00641), Permutohedral
// Attention Module for Efficient Non-Local Neural Networks (CATALOG.md #11). Attention with a Gaussian kernel
// over low-dimensional features instead of softmax of dot products,
//   y_i = Σ_j exp(−½‖f_i − f_j‖²)·v_j   (PAM, "plain"),   or that divided by Σ_j exp(−½‖f_i − f_j‖²) ("normalized",
// the bilateral filter's weighted mean, a row-stochastic attention),
// computed in O(N) on the permutohedral lattice (permutohedral_lattice.h): splat, blur, slice, each a sparse
// matrix applied by the backend (Backend::sparseMatmul, so Vulkan runs them too; the lattice is built on the
// host in double, as attnlab builds patterns).
// Stand-in for the learned feature convs: f = the top `features` principal directions of [Q; K] (centred), in
// units of σ times their spread; on the image input (Q = K = [colour, position]) this is a bilateral filter.
// Own reference: the exact normalised Gaussian kernel on the same f, which is softmax of lifted inputs
// q' = [f, 1], k' = [f, −½‖f‖²]; the headline error is against softmax attention, as for every mechanism.
#include <algorithm>
#include <cmath>

#include <Eigen/Eigenvalues>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/permutohedral_lattice.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

constexpr Index kMaxFeatures = 8;
constexpr Index kMaxRefine = 4;
constexpr Index kLatticePicture = 64;  // the d = 2 lattice drawn as kLatticePicture² cells

/// f for queries and keys: the top `dims` principal directions of [Q; K], centred, in units of σ·spread (spread:
/// the RMS standard deviation along those directions). Signs fixed (largest entry positive): deterministic.
std::pair<MatrixD, MatrixD> features(const Inputs& in, Index dims, double sigma, std::string* note) {
  const Index n = in.n(), m = in.m(), d = in.q.cols();
  MatrixD all(n + m, d);
  all.topRows(n) = in.q.cast<double>();
  all.bottomRows(m) = in.k.cast<double>();
  const Eigen::RowVectorXd mean = all.colwise().mean();
  all.rowwise() -= mean;
  const Eigen::MatrixXd cov = (all.transpose() * all) / double(std::max<Index>(n + m - 1, 1));
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  Eigen::MatrixXd dirs(d, dims);
  double variance = 0;
  for (Index k = 0; k < dims; ++k) {
    Eigen::VectorXd u = eig.eigenvectors().col(d - 1 - k);  // ascending eigenvalues: the largest last
    Index at = 0;
    u.cwiseAbs().maxCoeff(&at);
    if (u(at) < 0) u = -u;
    dirs.col(k) = u;
    variance += std::max(0.0, eig.eigenvalues()(d - 1 - k));
  }
  const double spread = std::sqrt(variance / double(dims));
  if (!(spread > 0)) throw UserError("permutohedral: the queries and keys do not vary, so there are no features to filter on");
  const MatrixD projected = all * dirs / (sigma * spread);
  const double total = std::max(eig.eigenvalues().sum(), 1e-300);
  char text[160];
  std::snprintf(text, sizeof text, "features: the top %lld principal directions of [Q; K] (%.0f %% of their variance), "
                "in units of %.3g (σ × spread)", static_cast<long long>(dims), 100 * variance / total, sigma * spread);
  *note = text;
  return {projected.topRows(n), projected.bottomRows(m)};
}

/// u ← B u for one blur matrix (sparse, L × L), in double.
void blurVector(const SparseMatrix& b, const std::vector<double>& u, std::vector<double>& out) {
  for (Index v = 0; v < b.rows; ++v) {
    double s = 0;
    for (Index e = b.row_ptr[size_t(v)]; e < b.row_ptr[size_t(v + 1)]; ++e) s += double(b.value[size_t(e)]) * u[size_t(b.col[size_t(e)])];
    out[size_t(v)] = s;
  }
}

/// The lattice's effective N×M matrix, a row at a time: row i = slice_i · B_last ⋯ B_first · splat, that is
/// (B_firstᵀ ⋯ B_lastᵀ slice_iᵀ)ᵀ·splat with each B symmetric: the blur applied to the query's own simplex in
/// reverse order, then read at every key's simplex. Normalised rows are divided by their sum.
ImpliedWeights latticeWeights(std::shared_ptr<const Lattice> lat, bool normalized, Index n, Index m) {
  // The splat by key: each key's d + 1 (vertex, weight) entries.
  auto by_key = std::make_shared<std::vector<std::vector<std::pair<std::int32_t, float>>>>(size_t(m));
  for (Index v = 0; v < lat->splat.rows; ++v)
    for (Index e = lat->splat.row_ptr[size_t(v)]; e < lat->splat.row_ptr[size_t(v + 1)]; ++e)
      (*by_key)[size_t(lat->splat.col[size_t(e)])].push_back({std::int32_t(v), lat->splat.value[size_t(e)]});
  return ImpliedWeights(n, m, [lat, by_key, normalized, m](Range rows, Range cols) {
    Matrix out(rows.size(), cols.size());
    const Index l = lat->vertices, rounds = lat->refine * lat->refine;
    std::vector<double> u(static_cast<size_t>(l)), next(static_cast<size_t>(l)), row(static_cast<size_t>(m));
    for (Index i = rows.begin; i < rows.end; ++i) {
      std::fill(u.begin(), u.end(), 0.0);
      for (Index e = lat->slice.row_ptr[size_t(i)]; e < lat->slice.row_ptr[size_t(i + 1)]; ++e)
        u[size_t(lat->slice.col[size_t(e)])] += double(lat->slice.value[size_t(e)]);
      for (Index t = 0; t < rounds; ++t)
        for (auto b = lat->blur.rbegin(); b != lat->blur.rend(); ++b) {
          blurVector(*b, u, next);
          u.swap(next);
        }
      double sum = 0;
      for (Index j = 0; j < m; ++j) {
        double w = 0;
        for (const auto& [v, weight] : (*by_key)[size_t(j)]) w += double(weight) * u[size_t(v)];
        row[size_t(j)] = w;
        sum += w;
      }
      const double scale = normalized ? (sum > 1e-300 ? 1.0 / sum : 0.0) : 1.0;
      for (Index j = cols.begin; j < cols.end; ++j) out(i - rows.begin, j - cols.begin) = float(row[size_t(j)] * scale);
    }
    return out;
  });
}

class Permutohedral final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "permutohedral", "Permutohedral attention (PAM)",
        "Joutard, Dorent, Isaac, Ourselin, Vercauteren, Modat. Permutohedral Attention Module for Efficient "
        "Non-Local Neural Networks",
        "1907.00641", 2019, Family::LowRankKernel, "O(N·(f+1)²·dv), a lattice of at most (N+M)·(f+1) vertices",
        CausalSupport::No,
        "A Gaussian kernel exp(−½‖f_i − f_j‖²) over low-dimensional features instead of softmax, filtered in linear "
        "time on the permutohedral lattice: splat each value onto its simplex's corners, blur along the lattice's "
        "directions, slice back.",
        "f: the top principal directions of [Q; K] in units of σ × their spread instead of the learned 1×1 conv "
        "(with LeakyReLU) of [x, scaled coordinates]; one group (n_split = 1)",
        false,
        {"convention: normalized (the default) divides by the same filter applied to ones, a row-stochastic weighted "
         "mean (Adams et al.'s bilateral filter); PAM's module is the plain sum (variant = plain)",
         "convention: refine r > 1 is attnlab's: an r times finer lattice, r² blur rounds of variance (1 − ¼/r²)/r² "
         "over the vertices they reach; PAM uses r = 1"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("features", "Features f",
                           "Dimensions of the kernel's feature space: the top principal directions of [Q; K] (2: a "
                           "hexagonal lattice one can draw).", 2, 1, double(kMaxFeatures)),
        ParamSpec::real("sigma", "Width σ", "The Gaussian's width in units of the features' spread: small σ, few "
                        "neighbours and a large lattice; large σ, a blur over everything.", 0.5, 0.05, 10, true),
        ParamSpec::integer("refine", "Refine r", "attnlab's: an r times finer lattice blurred r² rounds nears the exact "
                           "Gaussian (1: the paper's lattice).", 1, 1, double(kMaxRefine)),
        ParamSpec::choice("variant", "Variant", "normalized: Σ k·v / Σ k, a weighted mean (rows sum to 1); plain: PAM's "
                          "Σ k·v (with CRF-as-RNN's constant α).", {"normalized", "plain"}, 0),
    };
  }
  std::optional<OwnReference> ownReference(const Inputs& in, const Params& p) const override {
    if (p.choice("variant") != "normalized") return std::nullopt;
    std::string note;
    const auto [fq, fk] = features(in, featureCount(in, p), p.number("sigma"), &note);
    const Index f = fq.cols();
    // softmax over j of q'·k'/√(f+1) with q' = a·[f_i, 1], k' = a·[f_j, −½‖f_j‖²], a = (f+1)^(1/4):
    // f_i·f_j − ½‖f_j‖², which normalised over j is exp(−½‖f_i − f_j‖²) / Σ_j.
    const double a = std::pow(double(f + 1), 0.25);
    Inputs ref = in;
    ref.q.resize(in.n(), f + 1);
    ref.k.resize(in.m(), f + 1);
    for (Index i = 0; i < in.n(); ++i) {
      for (Index c = 0; c < f; ++c) ref.q(i, c) = float(a * fq(i, c));
      ref.q(i, f) = float(a);
    }
    for (Index j = 0; j < in.m(); ++j) {
      for (Index c = 0; c < f; ++c) ref.k(j, c) = float(a * fk(j, c));
      ref.k(j, f) = float(-0.5 * a * fk.row(j).squaredNorm());
    }
    return OwnReference{std::move(ref), "exact Gaussian kernel on the same features (normalised)"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);
    r.own_reference = p.choice("variant") == "normalized";
    const Index f = std::clamp<Index>(p.integer("features"), 1, std::min<Index>(kMaxFeatures, std::max<Index>(s.d, 1)));
    const Index refine = std::clamp<Index>(p.integer("refine"), 1, kMaxRefine);
    const double n = double(s.n), m = double(s.m), d1 = double(f + 1), dv1 = double(s.dv + 1);
    // Vertices: (N + M)·(f + 1) at most at refine 1; at refine r > 1 a bound for isolated points (each reaching
    // (2r² + 1)^f vertices); features that cluster, as a picture's do, take far fewer.
    const double l = latticeVertexBound(s.n, s.m, f, refine);
    r.add((n + m) * double(s.d + f) * 2 * sizeof(double) + (n + m) * d1 * 16, "the features and the points' simplices "
          "((N + M) × (d + f) doubles, twice; (f + 1) corners each)");
    r.add(l * (12 * double(f) + 112), "the lattice's vertices (keys, positions, hash slots, mass; L of them)", "refine",
          "lower refine or features, or raise sigma");
    r.add((n + m) * d1 * 8 + n * 8 + d1 * l * (8 + 3 * 8), "the splat, blur and slice matrices", "refine");
    r.add((2 * l + n + m) * dv1 * sizeof(float), "the values on the lattice (two copies of L × (dv + 1)) and around it", "refine");
    if (options.explain) r.add(m * (40 + d1 * 8), "each key's simplex, for the implied weights (M × (f + 1))");
    r.flops = 2 * dv1 * ((n + m) * d1 + double(refine * refine) * d1 * 3 * l) + (n + m) * double(s.d) * double(f) * 2;
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m(), dv = in.v.cols();
    const Index f = featureCount(in, p), refine = p.integer("refine");
    const bool normalized = p.choice("variant") == "normalized";
    if (!normalized && refine > 1)
      throw UserError("permutohedral: refine > 1 needs variant = normalized (the plain sum's scale is PAM's at refine "
                      "= 1 only; a finer lattice changes it)");
    if (options.causal) throw UserError("permutohedral has no causal form: a lattice blur mixes every direction");
    std::string feature_note;
    const auto lattice = timedStage(r.cost, options, "lattice", [&] {
      const auto [fq, fk] = features(in, f, p.number("sigma"), &feature_note);
      return std::make_shared<const Lattice>(buildLattice(fq, fk, refine));
    });
    // Values with a column of ones: its filtered value is each row's normaliser.
    Matrix values(m, dv + 1);
    values.leftCols(dv) = in.v;
    values.col(dv).setOnes();
    Matrix u = timedStage(r.cost, options, "splat", [&] { return backend.sparseMatmul(lattice->splat, values); });
    timedStage(r.cost, options, "blur", [&] {
      for (Index t = 0; t < refine * refine; ++t)
        for (const SparseMatrix& b : lattice->blur) {
          options.checkCancel();
          u = backend.sparseMatmul(b, u);
        }
      return 0;
    });
    const Matrix sliced = timedStage(r.cost, options, "slice", [&] { return backend.sparseMatmul(lattice->slice, u); });
    r.output = sliced.leftCols(dv);
    Index empty_rows = 0;
    if (normalized)
      for (Index i = 0; i < n; ++i) {
        const float z = sliced(i, dv);
        if (z > 1e-30f) r.output.row(i) /= z;
        else r.output.row(i).setZero(), ++empty_rows;
      }
    double entries = double(lattice->splat.nnz() + lattice->slice.nnz());
    for (const SparseMatrix& b : lattice->blur) entries += double(refine * refine) * double(b.nnz());
    r.cost.scored_pairs = entries;
    r.cost.flops = 2 * entries * double(dv + 1) + double(n + m) * double(in.q.cols()) * double(f) * 2;
    r.cost.peak_bytes = backend.peakBytes() + Index(entries * 8) + lattice->vertices * Index(f * 4 + 16) +
                        2 * lattice->vertices * (dv + 1) * Index(sizeof(float));

    r.explanation.notes.push_back(feature_note);
    r.explanation.notes.push_back("lattice: " + std::to_string(lattice->vertices) + " vertices for " + std::to_string(n) +
                                  " queries and " + std::to_string(m) + " keys in " + std::to_string(f) + " feature dimension" +
                                  (f == 1 ? "" : "s") + "; " + std::to_string(refine * refine * (f + 1)) + " blur passes");
    if (empty_rows > 0)
      r.explanation.notes.push_back(std::to_string(empty_rows) + " queries got no mass from the lattice (no key near "
                                    "them in feature space): their output is 0; raise sigma");
    if (!options.explain) return r;
    const double work = double(n) * (double(refine * refine) * 3 * double(f + 1) * double(lattice->vertices) + double(m * (f + 1)));
    if (work <= kMaxComposedWork) r.explanation.weights = latticeWeights(lattice, normalized, n, m);
    else {
      r.explanation.weights_withheld = composedWithheldText("the lattice's N×M matrix", work);
      r.explanation.notes.push_back(r.explanation.weights_withheld);
    }
    // The splatted mass each query pixel's simplex holds (how crowded its feature neighbourhood is), as a map
    // over the picture; and for two features the lattice itself, its vertices' mass in the feature plane.
    Matrix density(n, 1);
    for (Index i = 0; i < n; ++i) {
      double s = 0, wsum = 0;
      for (Index e = lattice->slice.row_ptr[size_t(i)]; e < lattice->slice.row_ptr[size_t(i + 1)]; ++e)
        s += double(lattice->slice.value[size_t(e)]) * lattice->key_mass[size_t(lattice->slice.col[size_t(e)])],
            wsum += double(lattice->slice.value[size_t(e)]);
      density(i, 0) = float(wsum > 0 ? s / wsum : 0.0);
    }
    const bool on_grid = in.picture && in.grid_width > 0 && n % in.grid_width == 0 && n == m;
    r.explanation.factors.push_back({"splatted mass", "the keys' barycentric mass at each query's simplex corners (its "
                                     "feature neighbourhood's crowding)", density,
                                     on_grid ? MatrixLayout::Image : MatrixLayout::Plain});
    if (f == 2) r.explanation.factors.push_back(latticePicture(*lattice));
    return r;
  }

 private:
  static Index featureCount(const Inputs& in, const Params& p) {
    const Index f = p.integer("features"), d = in.q.cols();
    if (f > d)
      throw UserError("permutohedral: features = " + std::to_string(f) + " but Q and K have only " + std::to_string(d) +
                      " dimensions; set features ≤ " + std::to_string(d));
    return f;
  }
  /// The two-feature lattice as an image: each vertex's splatted mass at its place in the feature plane.
  static NamedMatrix latticePicture(const Lattice& lat) {
    Matrix img = Matrix::Zero(kLatticePicture, kLatticePicture);
    const Eigen::RowVectorXd lo = lat.positions.colwise().minCoeff(), hi = lat.positions.colwise().maxCoeff();
    const double span = std::max({hi(0) - lo(0), hi(1) - lo(1), 1e-9});
    for (Index v = 0; v < lat.vertices; ++v) {
      const Index x = std::clamp<Index>(Index((lat.positions(v, 0) - lo(0)) / span * double(kLatticePicture - 1) + 0.5), 0, kLatticePicture - 1);
      const Index y = std::clamp<Index>(Index((hi(1) - lat.positions(v, 1)) / span * double(kLatticePicture - 1) + 0.5), 0, kLatticePicture - 1);
      img(y, x) += float(lat.key_mass[size_t(v)]);
    }
    return {"lattice (feature plane)", "the lattice's vertices in the plane of the two features, each cell the keys' "
            "mass splatted there (the hexagonal lattice of d = 2)", img, MatrixLayout::Plain};
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makePermutohedral() { return std::make_shared<Permutohedral>(); }
}  // namespace attn::mech
