// nystromformer — Xiong et al. 2021 (arXiv 2102.03902). Landmarks are segment means of Q and K
// (m segments). With F = rowsoftmax(Q·K̃ᵀ) (N×m), Ã = rowsoftmax(Q̃·K̃ᵀ) (m×m) and B = rowsoftmax(Q̃·Kᵀ)
// (m×N), softmax attention is approximated by Ŝ = F·Ã⁺·B and O = F·(Ã⁺·(B·V)). Ã⁺ comes from the
// iterative Moore–Penrose scheme of the official code (Z₀ = Ãᵀ/(‖Ã‖₁‖Ã‖∞); Z ← ¼Z(13I − ÃZ(15I −
// ÃZ(7I − ÃZ)))), 6 iterations by default, or the exact pseudo-inverse by SVD (pinv = exact, or
// iterations = 0): the iteration's limit, not a more accurate reference. On unstructured inputs Ã is
// ill-conditioned: 6 iterations stop far from Ã⁺ (‖ÃZ − I‖_F a large part of ‖I‖_F = √m) and the
// unconverged Z acts as a regulariser, while the exact Ã⁺, of norm 1/σ_min(Ã), magnifies every mismatch
// between F, Ã and B — the exact pseudo-inverse can then be several times worse than 6 iterations. The steps show ÃZ_t after each
// iteration, captioned with ‖ÃZ_t − I‖_F against √m, then the product F·Z·B with the last residual;
// the factors are F (N×m), Ã (m×m), B (m×N). The optional depthwise-conv skip
// is learned and left out (CATALOG.md #45). Both softmax products run as attention primitives:
// B·V = attention(Q̃, K, V) and F·W = attention(Q, K̃, W).
#include <cmath>
#include <cstdio>

#include <Eigen/SVD>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/low_rank.h"

namespace attn::mech {
namespace {

constexpr Index kMaxFactorEntries = Index(1) << 22;
constexpr Index kMaxStepEntries = Index(1) << 23;  // all ÃZ_t together

std::string residualText(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

/// "‖ÃZ − I‖_F = 3.8 of ‖I‖_F = √m = 8": the residual against where the iteration starts from (Z = 0
/// would leave exactly √m), so that 3.8 reads as "half-way", not as "small".
std::string residualOfRootM(double x, Index m) {
  return "‖ÃZ − I‖_F = " + residualText(x) + " of ‖I‖_F = √m = " + residualText(std::sqrt(double(m)));
}

/// Whether Z is Ã⁺ to rounding (relative residual below 1e-6).
bool converged(double residual, Index m) { return residual <= 1e-6 * std::sqrt(double(m)); }

class Nystromformer final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "nystromformer", "Nyströmformer",
        "Xiong et al. Nyströmformer: A Nyström-Based Algorithm for Approximating Self-Attention", "2102.03902", 2021,
        Family::LowRankKernel, "O(N·m·d + m³)", CausalSupport::No,
        "Approximate the softmax matrix through m landmark (segment-mean) tokens: F·Ã⁺·B, the Nyström method.",
        "The learned depthwise-conv skip connection is left out (it is not part of the approximation).", true,
        {"convention: the authors' optional depthwise-conv skip over V (learned) is left out: O = F·Z·(B·V) alone"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::integer("landmarks", "Landmarks m", "Segment means used as landmark queries and keys.", 64, 1, 8192, true),
        ParamSpec::choice("pinv", "Pseudo-inverse",
                          "iterative: the paper's Moore–Penrose iteration (its residual ‖ÃZ − I‖_F is in the steps; "
                          "on an ill-conditioned Ã it stops short of Ã⁺ and acts as a regulariser); exact: Ã⁺ by "
                          "SVD, the iteration's limit — not a more accurate reference: on an ill-conditioned Ã its norm "
                          "1/σ_min magnifies the mismatch between F, Ã and B, and it can be several times worse than "
                          "6 iterations.",
                          {"iterative", "exact"}, 0),
        ParamSpec::integer("iterations", "Iterations", "Moore–Penrose iterations of the iterative pseudo-inverse (paper: "
                           "6); 0 = the exact pseudo-inverse by SVD (the iteration's limit).", 6, 0, 100),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"landmarks", std::to_string(std::min<Index>(8192, in.n()))}, {"pinv", "exact"}}, 1e-4,
                      "every token a landmark (m = N) with the exact pseudo-inverse: Ã is the exact matrix and "
                      "F·Ã⁺·B = A*"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output
    const double n = double(s.n), mk = double(s.m);
    const double m = double(std::min(p.integer("landmarks"), std::min(s.n, s.m)));  // clamped at N, as run() does
    const bool exact_pinv = p.choice("pinv") == "exact";
    const double iterations = double(p.integer("iterations"));
    // F (N × m) and B (m × M), each in double while formed and in float after; the views' copies of both.
    const double factors = (n * m + m * mk) * (2 * sizeof(double) + sizeof(float)) +
                           (n * m <= double(kMaxFactorEntries) ? n * m * sizeof(float) * 2 : 0.0) +
                           (m * mk <= double(kMaxFactorEntries) ? m * mk * sizeof(float) * 2 : 0.0);
    // Ã, its pseudo-inverse and the iteration's matrices (m × m doubles), the ÃZ steps kept to be seen.
    const double core =
        m * m * sizeof(double) * (exact_pinv ? 8 : 10) +
        (options.explain ? std::min(m * m * (iterations + 2), double(kMaxStepEntries)) * sizeof(float) : 0.0);
    r.add(factors + core, "the landmark factors (landmarks × (N + M))", "landmarks");
    if (double(s.n) * double(s.m) <= double(Index(1) << 20))  // the implied weights' step shows them dense
      r.add(2 * double(s.n) * double(s.m) * sizeof(float) * 2, "the implied N × M matrix shown (up to 2²⁰ entries)");
    r.flops = 2.0 * m * mk * double(s.d + s.dv) + 2.0 * n * m * double(s.d + s.dv) +
              26.0 * m * m * m * (exact_pinv ? 1 : iterations);
    return r;
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
    std::vector<Step> pinv_steps;
    const bool exact_pinv = p.choice("pinv") == "exact" || p.integer("iterations") == 0;
    const Index iterations = exact_pinv ? 0 : p.integer("iterations");
    timedStage(r.cost, options, "pseudo-inverse", [&] {
      a_tilde = rowSoftmaxD((q_land.cast<double>() * k_land.cast<double>().transpose()) * double(scale));
      const MatrixD eye = MatrixD::Identity(m, m);
      Index shown = 0;
      auto record = [&](const std::string& title, const std::string& what, const MatrixD& az) {
        residuals.push_back((az - eye).norm());
        const bool keep = (shown + 1) * m * m <= kMaxStepEntries;
        shown += keep;
        pinv_steps.push_back(factorStep(title, what + ": " + residualOfRootM(residuals.back(), m),
                                        {"ÃZ", "ÃZ (→ I as Z → Ã⁻¹), m×m", keep ? Matrix(az.cast<float>()) : Matrix()}));
      };
      if (exact_pinv) {
        a_pinv = pseudoInverseSvd(a_tilde);
        record("exact pseudo-inverse", "Z = Ã⁺ by SVD (the iteration's limit)", a_tilde * a_pinv);
      } else {
        const double col_max = a_tilde.cwiseAbs().colwise().sum().maxCoeff();
        const double row_max = a_tilde.cwiseAbs().rowwise().sum().maxCoeff();
        MatrixD z = a_tilde.transpose() / (col_max * row_max);
        MatrixD az = a_tilde * z;
        for (Index it = 0; it < iterations; ++it) {
          z = 0.25 * z * (13 * eye - az * (15 * eye - az * (7 * eye - az)));
          az = a_tilde * z;
          const bool last = it + 1 == iterations;
          record("pinv iteration " + std::to_string(it + 1),
                 "after " + std::to_string(it + 1) + " Moore–Penrose iteration" + (it ? "s" : "") +
                     (!last                         ? ""
                      : converged((az - eye).norm(), m) ? " (converged: Z = Ã⁺ to rounding)"
                                                        : " (not converged: Z is not Ã⁺)"),
                 az);
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
    auto f = std::make_shared<Matrix>(rowSoftmaxD((in.q.cast<double>() * k_land.cast<double>().transpose()) * double(scale)).cast<float>());
    const MatrixD b = rowSoftmaxD((q_land.cast<double>() * in.k.cast<double>().transpose()) * double(scale));
    // Ŝ_ij = F_i·G_j with G = Ã⁺·B: a = F, b = Gᵀ.
    r.explanation.weights = productWeights(f, std::make_shared<const Matrix>((a_pinv * b).transpose().cast<float>()));
    TokenSet landmarks{"landmarks", "landmark", {}, k_spans, k_land};
    r.explanation.special.push_back(std::move(landmarks));
    if (n * m <= kMaxFactorEntries) r.explanation.factors.push_back({"F", "rowsoftmax(Q·K̃ᵀ), N×m", *f});
    r.explanation.factors.push_back({"Ã", "landmark kernel rowsoftmax(Q̃K̃ᵀ), m×m", a_tilde.cast<float>()});
    if (m * mk <= kMaxFactorEntries) r.explanation.factors.push_back({"B", "rowsoftmax(Q̃·Kᵀ), m×N", b.cast<float>()});
    r.explanation.factors.push_back({"Ã⁺", exact_pinv ? "its pseudo-inverse (SVD)"
                                                       : "its pseudo-inverse after " + std::to_string(iterations) +
                                                             " iterations", a_pinv.cast<float>()});
    Matrix conv(1, Index(residuals.size()));
    for (size_t t = 0; t < residuals.size(); ++t) conv(0, Index(t)) = float(residuals[t]);
    r.explanation.factors.push_back({"‖ÃZ − I‖", "pseudo-inverse residual per iteration", conv});
    r.explanation.steps.push_back(factorStep("kernel F", "F = rowsoftmax(Q·K̃ᵀ): every query against the m landmark "
                                             "keys, N×m", {"F", "N×m", n * m <= kMaxFactorEntries ? *f : Matrix()}));
    r.explanation.steps.push_back(factorStep("kernel B", "B = rowsoftmax(Q̃·Kᵀ): the m landmark queries against every "
                                             "key, m×N", {"B", "m×N", m * mk <= kMaxFactorEntries ? Matrix(b.cast<float>())
                                                                                                 : Matrix()}));
    for (Step& step : pinv_steps) r.explanation.steps.push_back(std::move(step));
    const std::string residual = residuals.empty() ? "" : residualOfRootM(residuals.back(), m);
    const bool at_limit = exact_pinv || (!residuals.empty() && converged(residuals.back(), m));
    r.explanation.steps.push_back(weightsStep(
        "F·Ã⁺·B",
        (exact_pinv ? "Ŝ = F·Ã⁺·B with Ã⁺ by SVD (" + residual + ")"
                    : "Ŝ = F·Z·B with Z after " + std::to_string(iterations) + " iterations (" + residual +
                          (at_limit ? ": Z = Ã⁺)" : ": not converged, Z is not Ã⁺)")) +
            ": the Nyström approximation of softmax, rank ≤ m = " + std::to_string(m),
        r.explanation.weights, "Ŝ"));
    if (!residuals.empty())
      r.explanation.notes.push_back("pseudo-inverse residual " + residual +
                                    (exact_pinv ? " (exact, SVD)"
                                                : " after " + std::to_string(iterations) + " iterations" +
                                                      (at_limit ? " (converged)" : " (not converged: Z is not Ã⁺)")));
    // How ill-conditioned Ã is: what the exact Ã⁺ magnifies and how many iterations it takes (a view, m ≤ 512).
    if (options.explain && m <= 512)
      displayStage(r.cost, options, "condition of Ã", [&] {
        const VectorD sv = Eigen::BDCSVD<MatrixD>(a_tilde).singularValues();
        const double smallest = sv(sv.size() - 1);
        r.explanation.notes.push_back(
            "Ã has condition number σ₁/σ_m = " + (smallest > 0 ? residualText(sv(0) / smallest) : std::string("∞")) +
            " and ‖Ã⁺‖₂ = 1/σ_m = " + (smallest > 0 ? residualText(1 / smallest) : std::string("∞")) +
            ": a large Ã⁺ magnifies every mismatch between F, Ã and B, and the larger the condition number, the "
            "more iterations the Moore–Penrose scheme needs to reach Ã⁺");
      });
    const double dd = double(d), dv = double(in.v.cols());
    r.cost.scored_pairs = 2.0 * double(n) * double(m) + double(m) * double(m);
    r.cost.flops = 2.0 * double(m) * double(mk) * (dd + dv) + 2.0 * double(n) * double(m) * (dd + dv) +
                   26.0 * double(m) * double(m) * double(m) * double(exact_pinv ? 1 : iterations);
    r.cost.peak_bytes = backend.peakBytes() + (n + mk) * m * Index(sizeof(float)) + m * m * Index(sizeof(double)) * 4;
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeNystromformer() { return std::make_shared<Nystromformer>(); }
}  // namespace attn::mech
