// The Permutohedral Attention Module (CATALOG.md #11): the lattice against a numpy port of the authors' code
// (tests/data/permutohedral/make_reference.py, from PAM_cuda/pl.py), the simplices' geometry, the claim that
// the lattice nears the exact Gaussian kernel as it refines (on a photo), the own reference, and bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "attention/mechanisms/permutohedral_lattice.h"
#include "attention/npy.h"
#include "tests/cpu/test_util.h"

namespace attn::test {
namespace {

using mech::Lattice;

Matrix loadData(const std::string& name) {
  return npy::load(std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/permutohedral/" + name).value();
}

/// out = slice · (B_d ⋯ B_0)^(r²) · splat · v, on the CPU backend.
Matrix filter(const Lattice& lat, const Matrix& v) {
  CpuBackend cpu(1);
  Matrix u = cpu.sparseMatmul(lat.splat, v);
  for (Index t = 0; t < lat.refine * lat.refine; ++t)
    for (const SparseMatrix& b : lat.blur) u = cpu.sparseMatmul(b, u);
  return cpu.sparseMatmul(lat.slice, u);
}

/// The photo's pixels on a 32×32 grid, d = 16: Q = K = [colour, position] features.
Inputs photo(Index side = 32) {
  InputSpec s;
  s.generator = Generator::Image;
  s.image = "astronaut";
  s.n = side * side;
  s.width = side;
  s.d = 16;
  s.dv = 8;
  s.seed = 3;
  return generate(s);
}

/// Σ_j exp(−½‖fq_i − fk_j‖²) v_j / Σ_j exp(−½‖fq_i − fk_j‖²), in double, written out here.
MatrixD exactGaussian(const MatrixD& fq, const MatrixD& fk, const MatrixD& v) {
  MatrixD out = MatrixD::Zero(fq.rows(), v.cols());
  for (Index i = 0; i < fq.rows(); ++i) {
    double z = 0;
    for (Index j = 0; j < fk.rows(); ++j) {
      const double w = std::exp(-0.5 * (fq.row(i) - fk.row(j)).squaredNorm());
      out.row(i) += w * v.row(j);
      z += w;
    }
    out.row(i) /= z;
  }
  return out;
}

// The plain filter (PAM's: blur [½ 1 ½], α = 1/(1 + 2^−d)) equals the numpy port of the authors' lattice on the
// same features and values, d = 2 and 3.
TEST(Permutohedral, LatticeMatchesANumpyPortOfTheAuthorsCode) {
  const Matrix v = loadData("v.npy");
  for (int d : {2, 3}) {
    const MatrixD f = loadData("f" + std::to_string(d) + ".npy").cast<double>();
    const Matrix want = loadData("out" + std::to_string(d) + ".npy");
    const Lattice lat = mech::buildLattice(f, f, 1);
    const Matrix got = filter(lat, v);
    ASSERT_EQ(got.rows(), want.rows());
    EXPECT_LT(relDiff(got, want.cast<double>()), 1e-5) << "d = " << d;
    std::printf("[ permutohedral ] d = %d: %lld vertices for 50 points, relative difference to the numpy port %.2g\n", d,
                static_cast<long long>(lat.vertices), relDiff(got, want.cast<double>()));
  }
}

// Each point lies in its simplex: barycentric weights ≥ 0 summing to 1, and the weighted corners (their
// positions in feature space) give the point back.
TEST(Permutohedral, EachPointIsTheBarycentricMeanOfItsSimplexCorners) {
  Rng rng(5);
  for (Index d : {1, 2, 3, 5}) {
    const MatrixD f = rng.gaussian(40, d, 2.0).cast<double>();
    for (Index refine : {Index(1), Index(2)}) {
      if (refine > 1 && d > 3) continue;  // 40 isolated points in 5 dimensions reach millions of vertices
      const Lattice lat = mech::buildLattice(f, f, refine);
      const double alpha = 1.0 / (1.0 + std::pow(2.0, -double(d)));
      for (Index i = 0; i < f.rows(); ++i) {
        double sum = 0;
        Eigen::RowVectorXd at = Eigen::RowVectorXd::Zero(d);
        ASSERT_EQ(lat.slice.row_ptr[size_t(i + 1)] - lat.slice.row_ptr[size_t(i)], d + 1);
        for (Index e = lat.slice.row_ptr[size_t(i)]; e < lat.slice.row_ptr[size_t(i + 1)]; ++e) {
          const double w = double(lat.slice.value[size_t(e)]) / alpha;
          EXPECT_GE(w, -1e-6);
          sum += w;
          at += w * lat.positions.row(lat.slice.col[size_t(e)]);
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << "d = " << d << " point " << i;
        EXPECT_LT((at - f.row(i)).norm(), 1e-5 * (1 + f.row(i).norm())) << "d = " << d << " r = " << refine << " point " << i;
      }
    }
  }
}

// The claim: the normalised lattice filter nears the exact normalised Gaussian kernel as the lattice refines
// (features ×r, r² blur rounds), on the astronaut's 32×32 pixels with two features.
TEST(Permutohedral, ErrorAgainstTheExactGaussianFallsAsTheLatticeRefines) {
  const Inputs in = photo();
  std::vector<double> errors;
  for (const char* r : {"1", "2", "4"}) {
    const Result res = runMechanism("permutohedral", in, {{"refine", r}, {"features", "2"}, {"sigma", "0.5"}});
    const auto own = requireMechanism("permutohedral")
                         ->ownReference(in, Params::resolve(requireMechanism("permutohedral")->params(),
                                                            {{"refine", r}, {"features", "2"}, {"sigma", "0.5"}}));
    ASSERT_TRUE(own);
    // The own reference (softmax of lifted inputs) is the exact normalised Gaussian: check it against the kernel
    // written out here, on features recovered from the lifted keys.
    const Index f = own->inputs.k.cols() - 1;
    const double a = std::pow(double(f + 1), 0.25);
    const MatrixD fq = own->inputs.q.leftCols(f).cast<double>() / a, fk = own->inputs.k.leftCols(f).cast<double>() / a;
    const MatrixD exact = exactGaussian(fq, fk, in.v.cast<double>());
    DenseAttentionOptions o;
    EXPECT_LT(relDiff(refAttention(own->inputs.q, own->inputs.k, own->inputs.v, o).cast<float>(), exact), 1e-4);
    errors.push_back(relDiff(res.output, exact));
    std::printf("[ permutohedral ] astronaut 32×32, f = 2, σ = 0.5, refine %s: e_out vs exact Gaussian %.4f\n", r,
                errors.back());
  }
  EXPECT_LT(errors[1], 0.5 * errors[0]);  // measured 0.0142, 0.0046, 0.0012: about 1/r²
  EXPECT_LT(errors[2], 0.5 * errors[1]);
  EXPECT_LT(errors[0], 0.05);  // and the paper's lattice is already a close bilateral filter
}

// The implied weights are the filter: row i of the matrix times V is output i, rows sum to 1 (normalised),
// and the plain variant's rows are the normalised ones times their sums.
TEST(Permutohedral, ImpliedWeightsReproduceTheOutput) {
  const Inputs in = photo(16);
  for (const char* variant : {"normalized", "plain"}) {
    const Result r = runMechanism("permutohedral", in, {{"variant", variant}, {"features", "3"}});
    ASSERT_TRUE(r.explanation.weights);
    const Matrix w = r.explanation.weights.dense();
    EXPECT_LT(relDiff(r.output, (w.cast<double>() * in.v.cast<double>())), 1e-4) << variant;
    if (std::string(variant) == "normalized") {
      for (Index i = 0; i < w.rows(); i += 17) EXPECT_NEAR(w.row(i).sum(), 1.0, 1e-4) << i;
    }
  }
}

TEST(Permutohedral, MapsOverThePictureAndTheLatticePlane) {
  const Inputs in = photo(16);
  const Result r = runMechanism("permutohedral", in);
  bool map = false, plane = false;
  for (const NamedMatrix& f : r.explanation.factors) {
    map |= f.layout == MatrixLayout::Image && f.value.size() == in.n();
    plane |= f.name.find("lattice") != std::string::npos && f.value.rows() == 64 && f.value.sum() > 0;
  }
  EXPECT_TRUE(map);
  EXPECT_TRUE(plane);
}

TEST(Permutohedral, BadParametersGetAMessage) {
  const Inputs in = mechanismInputs(Generator::Clustered, 64);
  auto message = [&](std::map<std::string, std::string> p, bool causal = false) {
    try {
      runMechanism("permutohedral", in, std::move(p), causal);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  InputSpec s;
  s.n = 32, s.d = 4, s.dv = 4;
  const Inputs small = generate(s);
  try {
    runMechanism("permutohedral", small, {{"features", "6"}});
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("features ≤ 4"), std::string::npos) << e.what();
  }
  EXPECT_NE(message({{"variant", "plain"}, {"refine", "2"}}).find("variant = normalized"), std::string::npos);
  EXPECT_NE(message({}, true).find("no causal form"), std::string::npos);
  // A lattice too fine for the budget is refused by name, not built.
  EXPECT_NE(message({{"features", "8"}, {"refine", "4"}, {"sigma", "0.05"}}).find("lower refine"), std::string::npos);
  // Deterministic.
  EXPECT_TRUE(runMechanism("permutohedral", in).output == runMechanism("permutohedral", in).output);
}

}  // namespace
}  // namespace attn::test
