// nystromformer — Xiong et al. 2021 (arXiv 2102.03902). Landmarks are segment means of Q and K
// (m segments). With F = rowsoftmax(Q·K̃ᵀ) (N×m), Ã = rowsoftmax(Q̃·K̃ᵀ) (m×m) and B = rowsoftmax(Q̃·Kᵀ)
// (m×N), softmax attention is approximated by Ŝ = F·Ã⁺·B and O = F·(Ã⁺·(B·V)). Ã⁺ comes from the
// iterative Moore–Penrose scheme of the official code (Z₀ = Ãᵀ/(‖Ã‖₁‖Ã‖∞); Z ← ¼Z(13I − ÃZ(15I −
// ÃZ(7I − ÃZ)))), 6 iterations by default, or an exact pseudo-inverse. The optional depthwise-conv skip
// is learned and left out (CATALOG.md #45). Both softmax products run as attention primitives:
// B·V = attention(Q̃, K, V) and F·W = attention(Q, K̃, W).
#include <Eigen/SVD>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"

namespace attn::mech {
namespace {

MatrixD rowSoftmax(const MatrixD& logits) {
  MatrixD out(logits.rows(), logits.cols());
  for (Index i = 0; i < logits.rows(); ++i) {
    const double mx = logits.row(i).maxCoeff();
    out.row(i) = (logits.row(i).array() - mx).exp();
    out.row(i) /= out.row(i).sum();
  }
  return out;
}

class Nystromformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "nystromformer", "Nyströmformer",
        "Xiong et al. Nyströmformer: A Nyström-Based Algorithm for Approximating Self-Attention", "2102.03902", 2021,
        Family::LowRankKernel, "O(N·m·d + m³)", CausalSupport::No,
        "Approximate the softmax matrix through m landmark (segment-mean) tokens: F·Ã⁺·B, the Nyström method.",
        "The learned depthwise-conv skip connection is left out (it is not part of the approximation).", true};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("landmarks", "Landmarks m", "Segment means used as landmark queries and keys.", 64, 1, 8192, true),
        ParamSpec::choice("pinv", "Pseudo-inverse", "iterative: the paper's Moore–Penrose iteration; exact: SVD.",
                          {"iterative", "exact"}, 0),
        ParamSpec::integer("iterations", "Iterations", "Moore–Penrose iterations (iterative pseudo-inverse).", 6, 1, 100),
    };
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    requireNonCausal(info(), options);
    Result r;
    const Index n = in.n(), mk = in.m(), d = in.q.cols();
    Index m = p.integer("landmarks");
    if (m > std::min(n, mk)) {
      m = std::min(n, mk);
      r.explanation.notes.push_back("landmarks clamped to " + std::to_string(m) + ": there are only " +
                                    std::to_string(m) + " tokens");
    }
    const float scale = defaultScale(d);

    // Landmarks: means of m contiguous segments (boundaries ⌊r·N/m⌋).
    Matrix q_land(m, d), k_land(m, d);
    std::vector<Range> q_spans, k_spans;
    timedStage(r.cost, options, "landmarks", [&] {
      for (Index s = 0; s < m; ++s) {
        const Range qs{s * n / m, (s + 1) * n / m}, ks{s * mk / m, (s + 1) * mk / m};
        q_land.row(s) = in.q.middleRows(qs.begin, qs.size()).colwise().mean();
        k_land.row(s) = in.k.middleRows(ks.begin, ks.size()).colwise().mean();
        q_spans.push_back(qs);
        k_spans.push_back(ks);
      }
    });

    // Ã⁺ (m×m), in double: m is small and the iteration is sensitive to rounding.
    MatrixD a_tilde, a_pinv;
    std::vector<double> residuals;
    timedStage(r.cost, options, "pseudo-inverse", [&] {
      a_tilde = rowSoftmax((q_land.cast<double>() * k_land.cast<double>().transpose()) * double(scale));
      const MatrixD eye = MatrixD::Identity(m, m);
      if (p.choice("pinv") == "exact") {
        Eigen::JacobiSVD<MatrixD> svd(a_tilde, Eigen::ComputeThinU | Eigen::ComputeThinV);
        VectorD inv = svd.singularValues();
        const double tol = 1e-12 * std::max<double>(1.0, inv(0)) * double(m);
        for (Index t = 0; t < inv.size(); ++t) inv(t) = inv(t) > tol ? 1.0 / inv(t) : 0.0;
        a_pinv = svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose();
        residuals.push_back((a_tilde * a_pinv - eye).norm());
      } else {
        const double col_max = a_tilde.cwiseAbs().colwise().sum().maxCoeff();
        const double row_max = a_tilde.cwiseAbs().rowwise().sum().maxCoeff();
        MatrixD z = a_tilde.transpose() / (col_max * row_max);
        for (Index it = 0; it < p.integer("iterations"); ++it) {
          const MatrixD az = a_tilde * z;
          z = 0.25 * z * (13 * eye - az * (15 * eye - az * (7 * eye - az)));
          residuals.push_back((a_tilde * z - eye).norm());
        }
        a_pinv = z;
      }
    });

    // O = F·(Ã⁺·(B·V)), both softmax products on the backend.
    DenseAttentionOptions o;
    o.scale = scale;
    r.output = timedStage(r.cost, options, "attend", [&] {
      const AttentionOutput bv = backend.denseAttention(q_land, in.k, in.v, o);  // m×dv
      const Matrix w = (a_pinv * bv.out.cast<double>()).cast<float>();
      return backend.denseAttention(in.q, k_land, w, o).out;
    });

    // Explanation: Ŝ = F·(Ã⁺·B), F (N×m) and G = Ã⁺·B (m×N) kept.
    auto f = std::make_shared<Matrix>(rowSoftmax((in.q.cast<double>() * k_land.cast<double>().transpose()) * double(scale)).cast<float>());
    const MatrixD b = rowSoftmax((q_land.cast<double>() * in.k.cast<double>().transpose()) * double(scale));
    auto g = std::make_shared<Matrix>((a_pinv * b).cast<float>());
    auto kernel = std::make_shared<WeightKernel>();  // Ŝ_ij = F_i·G_j: a = F, b = Gᵀ
    kernel->kind = WeightKernel::Kind::Linear;
    kernel->a = f;
    kernel->b = std::make_shared<const Matrix>(g->transpose());
    kernel->row_term = Vector::Ones(n);
    r.explanation.weights = ImpliedWeights(std::move(kernel));
    TokenSet landmarks{"landmarks", "landmark", {}, k_spans, k_land};
    r.explanation.special.push_back(std::move(landmarks));
    r.explanation.factors.push_back({"Ã", "landmark kernel rowsoftmax(Q̃K̃ᵀ), m×m", a_tilde.cast<float>()});
    r.explanation.factors.push_back({"Ã⁺", "its pseudo-inverse", a_pinv.cast<float>()});
    Matrix conv(1, Index(residuals.size()));
    for (size_t t = 0; t < residuals.size(); ++t) conv(0, Index(t)) = float(residuals[t]);
    r.explanation.factors.push_back({"‖ÃZ − I‖", "pseudo-inverse residual per iteration", conv});
    if (m <= 512) r.explanation.factors.push_back({"F", "rowsoftmax(Q·K̃ᵀ), N×m", *f});
    const double dd = double(d), dv = double(in.v.cols());
    r.cost.scored_pairs = 2.0 * double(n) * double(m) + double(m) * double(m);
    r.cost.flops = 2.0 * double(m) * double(mk) * (dd + dv) + 2.0 * double(n) * double(m) * (dd + dv) +
                   26.0 * double(m) * double(m) * double(m) * double(p.integer("iterations"));
    r.cost.peak_bytes = backend.peakBytes() + (n + mk) * m * Index(sizeof(float)) + m * m * Index(sizeof(double)) * 4;
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeNystromformer() { return std::make_shared<Nystromformer>(); }
}  // namespace attn::mech
