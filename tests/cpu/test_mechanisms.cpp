// The four foundation mechanisms: limit cases against exact attention, the papers' qualitative claims,
// causality, determinism, and parameter handling.
#include <cmath>
#include <limits>
#include <set>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/runner.h"
#include "test_util.h"

namespace attn {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

Inputs makeInputs(Generator g, Index n, Index d = 32, std::uint64_t seed = 1) {
  InputSpec s;
  s.generator = g;
  s.n = n;
  s.d = d;
  s.dv = 16;
  s.seed = seed;
  return generate(s);
}

Result runMech(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
               bool causal = false, std::uint64_t seed = 1) {
  return test::runMechanism(id, in, std::move(params), causal, seed);
}

MatrixD exactRef(const Inputs& in, bool causal = false, const Matrix* bias = nullptr) {
  DenseAttentionOptions o;
  o.causal = causal;
  o.bias = bias;
  return test::refAttention(in.q, in.k, in.v, o);
}

TEST(Registry, IdsAreUniqueCatalogIdsWithCompleteInfo) {
  const std::set<std::string> catalog = {"exact",         "longformer",         "reformer", "linear-transformer",
                                         "nystromformer", "sparse-transformer", "jukebox",  "transformer-on-a-diet",
                                         "bigbird",       "bp-transformer",     "etc",      "multiscale",
                                         "memory-compressed", "set-transformer", "compressive", "gmat", "star-transformer", "memformer", "routing", "clustered", "informer", "sac", "scram", "product-key-memory", "sinkhorn", "smyrf", "efficient-attention", "linformer", "performer-v1", "performer", "slim-performer", "fast-weight", "rfa", "talk-conv", "synthesizer", "input-independent", "lambda", "ccnet", "axial", "permutohedral", "interlaced", "kronecker", "fast-attention", "emanet", "autonl", "tensor-low-rank", "fractal", "cbam", "gcnet"};
  std::set<std::string> seen;
  for (const auto& m : mechanisms()) {
    const auto& i = m->info();
    EXPECT_TRUE(seen.insert(i.id).second) << i.id;
    EXPECT_TRUE(catalog.count(i.id)) << i.id;
    EXPECT_FALSE(i.title.empty());
    EXPECT_FALSE(i.paper.empty());
    EXPECT_FALSE(i.complexity.empty());
    EXPECT_FALSE(i.idea.empty());
    EXPECT_GT(i.year, 2000);
    for (const auto& p : m->params()) {
      EXPECT_LE(p.min, p.def) << i.id << "." << p.name;
      EXPECT_LE(p.def, p.max) << i.id << "." << p.name;
      EXPECT_FALSE(p.help.empty());
    }
  }
  EXPECT_EQ(mechanisms().front()->info().id, "exact");
  EXPECT_THROW(requireMechanism("no-such"), UserError);
}

TEST(Exact, MatchesTheDoubleReferenceWithin1e5) {
  for (bool causal : {false, true}) {
    const Inputs in = makeInputs(Generator::Clustered, 257);
    const Result r = runMech("exact", in, {}, causal);
    EXPECT_LT(relativeError(r.output, exactRef(in, causal)), 1e-5);
    // Implied weights are row-stochastic.
    const Matrix w = r.explanation.weights.dense();
    EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-4);
  }
}

// --- longformer -----------------------------------------------------------------------------------------

TEST(Longformer, WindowCoveringTheSequenceEqualsExact) {
  for (bool causal : {false, true}) {
    const Inputs in = makeInputs(Generator::Local, 150);
    const Result r = runMech("longformer", in, {{"window", "300"}, {"globals", "0"}}, causal);
    EXPECT_LT(relativeError(r.output, exactRef(in, causal)), 1e-5) << "causal=" << causal;
    EXPECT_EQ(r.explanation.pattern->nnz(), causal ? 150 * 151 / 2 : 150 * 150);
  }
}

TEST(Longformer, PatternIsWindowDilationAndGlobals) {
  const Inputs in = makeInputs(Generator::Gaussian, 100);
  const Result r = runMech("longformer", in, {{"window", "8"}, {"dilation", "3"}, {"globals", "2"}});
  const Pattern& p = *r.explanation.pattern;
  for (Index i = 0; i < 100; ++i)
    for (Index j = 0; j < 100; ++j) {
      const bool global = i < 2 || j < 2;
      const bool window = std::abs(i - j) <= 12 && (i - j) % 3 == 0;
      EXPECT_EQ(p.contains(i, j), global || window) << i << "," << j;
    }
  EXPECT_EQ(p.components[size_t(p.componentOf(50, 0))], "global");
  EXPECT_EQ(p.components[size_t(p.componentOf(50, 53))], "window");
  ASSERT_EQ(r.explanation.special.size(), 1u);
  EXPECT_EQ(r.explanation.special[0].indices, (std::vector<Index>{0, 1}));
  // The output is softmax restricted to the pattern.
  Matrix bias = Matrix::Constant(100, 100, -kInf);
  for (Index i = 0; i < 100; ++i)
    for (Index j = 0; j < 100; ++j)
      if (p.contains(i, j)) bias(i, j) = 0;
  EXPECT_LT(relativeError(r.output, exactRef(in, false, &bias)), 1e-5);
}

TEST(Longformer, SeesMoreMassOnLocalInputsThanOnTheCopyTask) {
  // A window captures the banded attention of smooth sequences, but not the copy task's stripe at N/2.
  auto recall = [](Generator g) {
    const Inputs in = makeInputs(g, 256, 64);
    const Result exact = runMech("exact", in);
    const Result r = runMech("longformer", in, {{"window", "32"}, {"globals", "0"}});
    return massRecall(*r.explanation.pattern, exact.explanation.weights);
  };
  const double local = recall(Generator::Local), copy = recall(Generator::Copy);
  EXPECT_GT(local, 0.8);
  EXPECT_LT(copy, 0.6);
  EXPECT_GT(local, copy + 0.2);
}

// --- reformer --------------------------------------------------------------------------------------------

Matrix sharedKeys(const Matrix& q) {
  Matrix k = q;
  for (Index i = 0; i < k.rows(); ++i) k.row(i) /= k.row(i).norm();
  return k;
}

TEST(Reformer, OneBucketAndOneChunkIsSharedQKAttentionWithoutSelf) {
  for (bool causal : {false, true}) {
    for (Index n : {1, 2, 97}) {
      Inputs in = makeInputs(Generator::Clustered, n);
      const Result r = runMech("reformer", in, {{"buckets", "1"}, {"chunk", "4096"}, {"rounds", "3"}}, causal);
      Inputs shared = in;
      shared.k = sharedKeys(in.q);
      // Self is masked unless it is the only key (n = 1, or row 0 when causal).
      Matrix bias = Matrix::Zero(n, n);
      for (Index i = 0; i < n; ++i) {
        const bool alone = causal ? i == 0 : n == 1;
        if (!alone) bias(i, i) = -kInf;
      }
      DenseAttentionOptions o;
      o.causal = causal;
      o.bias = &bias;
      const MatrixD ref = test::refAttention(shared.q, shared.k, shared.v, o);
      EXPECT_LT(relativeError(r.output, ref), 1e-5) << "n=" << n << " causal=" << causal;
      // Its own reference (a second figure; the headline is standard exact attention) is this one.
      const auto m = requireMechanism("reformer");
      const auto own = m->ownReference(in, Params::resolve(m->params(), {}));
      ASSERT_TRUE(own);
      DenseAttentionOptions ro;
      ro.causal = causal;
      ro.mask_self = own->inputs.mask_self;
      EXPECT_LT(relativeError(Matrix(test::refAttention(own->inputs.q, own->inputs.k, own->inputs.v, ro).cast<float>()),
                              ref),
                1e-5)
          << "n=" << n << " causal=" << causal;
      // One bucket and one chunk: every row sees every (visible) key but itself.
      if (n > 1) {
        const Pattern& p = *r.explanation.pattern;
        for (Index i = 0; i < n; ++i) {
          const bool alone = causal && i == 0;
          EXPECT_EQ(p.row_ptr[size_t(i + 1)] - p.row_ptr[size_t(i)], alone ? 1 : (causal ? i : n - 1)) << i;
        }
      }
    }
  }
}

TEST(Reformer, RoundsCombineToSoftmaxOverTheUnionOfTheirPairs) {
  const Inputs in = makeInputs(Generator::Clustered, 200);
  const Result r = runMech("reformer", in, {{"buckets", "8"}, {"chunk", "16"}, {"rounds", "4"}});
  const Pattern& p = *r.explanation.pattern;
  Matrix bias = Matrix::Constant(200, 200, -kInf);
  for (Index i = 0; i < 200; ++i)
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) bias(i, p.col[size_t(e)]) = 0;
  DenseAttentionOptions o;
  o.bias = &bias;
  const Matrix k = sharedKeys(in.q);
  EXPECT_LT(relativeError(r.output, test::refAttention(in.q, k, in.v, o)), 1e-5);
  EXPECT_EQ(r.explanation.groupings.size(), 5u);  // 4 rounds' buckets, round 1's chunks
  ASSERT_EQ(r.explanation.steps.size(), 6u);        // rotate, hash, sort, chunk, rounds, attend
  EXPECT_EQ(r.explanation.steps[2].sorted_by, "round 1 buckets");
  // Each round's grouping order sorts by bucket.
  const Grouping& g = r.explanation.groupings[0];
  for (size_t t = 1; t < g.order.size(); ++t) EXPECT_LE(g.label[size_t(g.order[t - 1])], g.label[size_t(g.order[t])]);
}

// More hash rounds capturing more of the mass (the paper's claim) is tested against the collision
// probability 1 − (θ/π)^n_h in test_truth_hashing.cpp (TruthHashing.ReformerRoundsCatch...).

TEST(Reformer, OddBucketCountIsRoundedUpWithANote) {
  const Inputs in = makeInputs(Generator::Clustered, 64);
  const Result r = runMech("reformer", in, {{"buckets", "5"}});
  ASSERT_FALSE(r.explanation.notes.empty());
  EXPECT_NE(r.explanation.notes[0].find("using 6"), std::string::npos);
}

// --- linear-transformer ------------------------------------------------------------------------------

TEST(LinearTransformer, CausalOutputEqualsTheStepByStepRecurrence) {
  const Inputs in = makeInputs(Generator::Gaussian, 130);
  const Result r = runMech("linear-transformer", in, {}, true);
  auto phi = [](const Matrix& x) { return MatrixD(x.cast<double>().unaryExpr([](double t) { return t > 0 ? t + 1 : std::exp(t); })); };
  const MatrixD fq = phi(in.q), fk = phi(in.k);
  MatrixD s = MatrixD::Zero(fk.cols(), in.v.cols());
  VectorD z = VectorD::Zero(fk.cols());
  MatrixD expected(in.n(), in.v.cols());
  for (Index i = 0; i < in.n(); ++i) {
    s += fk.row(i).transpose() * in.v.row(i).cast<double>();
    z += fk.row(i).transpose();
    expected.row(i) = fq.row(i) * s / fq.row(i).dot(z);
  }
  EXPECT_LT(relativeError(r.output, expected), 1e-5);
  // Implied weights are explicit, causal and row-stochastic.
  const Matrix w = r.explanation.weights.dense();
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-4);
  EXPECT_EQ(w(3, 4), 0.f);
  EXPECT_LT(relativeError(Matrix(w * in.v), expected), 1e-5);
}

TEST(LinearTransformer, IsADifferentKernelNotAConsistentApproximation) {
  const Inputs in = makeInputs(Generator::Clustered, 128);
  const Result r = runMech("linear-transformer", in);
  EXPECT_GT(relativeError(r.output, exactRef(in)), 0.05);
}

// --- nystromformer ------------------------------------------------------------------------------------

TEST(Nystromformer, EveryTokenALandmarkEqualsExact) {
  const Inputs in = makeInputs(Generator::Gaussian, 96);
  const Result r = runMech("nystromformer", in, {{"landmarks", "96"}, {"pinv", "exact"}});
  EXPECT_LT(relativeError(r.output, exactRef(in)), 1e-4);
  const Result it = runMech("nystromformer", in, {{"landmarks", "96"}, {"iterations", "40"}});
  EXPECT_LT(relativeError(it.output, exactRef(in)), 1e-4);
  ASSERT_EQ(r.explanation.special.size(), 1u);
  EXPECT_EQ(r.explanation.special[0].vectors.rows(), 96);
}

TEST(Nystromformer, ErrorFallsAsLandmarksGrow) {
  // Segment-mean landmarks summarise smooth sequences well (the paper's setting).
  const Inputs in = makeInputs(Generator::Local, 256, 64);
  auto err = [&](int m) {
    return relativeError(runMech("nystromformer", in, {{"landmarks", std::to_string(m)}, {"pinv", "exact"}}).output,
                         exactRef(in));
  };
  const double e4 = err(4), e32 = err(32), e128 = err(128);
  std::printf("nystromformer e_out on local N=256: m=4 %.3f, m=32 %.3f, m=128 %.3f\n", e4, e32, e128);
  EXPECT_GT(e4, e32);
  EXPECT_GT(e32, e128);
}

TEST(Nystromformer, PseudoInverseIterationConverges) {
  const Inputs in = makeInputs(Generator::Clustered, 256, 64);
  const Result r = runMech("nystromformer", in, {{"landmarks", "16"}, {"iterations", "12"}});
  const NamedMatrix* residual = nullptr;
  for (const auto& f : r.explanation.factors)
    if (f.name == "‖ÃZ − I‖") residual = &f;
  ASSERT_NE(residual, nullptr);
  EXPECT_LT(residual->value(0, 11), residual->value(0, 0));
  EXPECT_LT(residual->value(0, 11), 1e-3);
}

TEST(Nystromformer, MoreLandmarksThanTokensIsClampedWithANote) {
  const Inputs in = makeInputs(Generator::Gaussian, 20);
  const Result r = runMech("nystromformer", in, {{"landmarks", "64"}});
  ASSERT_FALSE(r.explanation.notes.empty());
  EXPECT_NE(r.explanation.notes[0].find("clamped to 20"), std::string::npos);
}

TEST(Nystromformer, RefusesCausalWithAClearMessage) {
  const Inputs in = makeInputs(Generator::Gaussian, 20);
  EXPECT_THROW(runMech("nystromformer", in, {}, true), UserError);
}

// --- all mechanisms -----------------------------------------------------------------------------------

TEST(AllMechanisms, CausalOutputsIgnoreLaterTokensBitForBit) {
  const std::map<std::string, std::map<std::string, std::string>> params = {
      {"exact", {}},
      {"longformer", {{"window", "16"}, {"dilation", "2"}}},
      {"linear-transformer", {}},
      // Sorting mixes positions across chunks; with one chunk, causality is exact.
      {"reformer", {{"buckets", "4"}, {"chunk", "4096"}, {"rounds", "2"}}},
      {"sparse-transformer", {{"variant", "strided"}}},
      {"transformer-on-a-diet", {{"variant", "dilated-memory"}}},
      {"jukebox", {{"variant", "previous-row"}}},
      {"bigbird", {{"block", "8"}, {"random", "3"}}},
      {"bp-transformer", {{"k", "3"}}},
      {"multiscale", {{"window", "4"}, {"factor", "3"}}},
      {"memory-compressed", {{"compression", "3"}}},
      {"compressive", {{"segment", "16"}, {"memory", "16"}, {"compressed", "8"}, {"rate", "2"}}},
      {"memformer", {{"slots", "8"}, {"segment", "16"}}},
      {"routing", {{"clusters", "6"}}},
      {"sac", {{"alpha", "6"}}},
      {"sinkhorn", {{"block", "8"}}},
      {"product-key-memory", {{"n", "16"}, {"topk", "8"}}},
      {"scram", {{"radius", "1"}, {"random_keys", "2"}}},
      {"performer", {{"features", "32"}}},
      {"performer-v1", {{"features", "32"}}},
      {"slim-performer", {{"features", "32"}, {"slices", "5"}}},
      {"talk-conv", {}},
      {"synthesizer", {{"variant", "dense"}, {"mix", "0.5"}}},
      {"input-independent", {}},
      {"lambda", {}},
      {"fast-weight", {}},
      {"rfa", {{"gate", "0.9"}}},
      {"ccnet", {}},
      {"axial", {}},
      {"interlaced", {}},
  };
  for (const auto& m : mechanisms()) {
    if (m->info().causal == CausalSupport::No) continue;
    ASSERT_TRUE(params.count(m->info().id)) << "add " << m->info().id << " to this test";
    const Inputs in = makeInputs(Generator::Clustered, 120);
    const Result a = runMech(m->info().id, in, params.at(m->info().id), true);
    Inputs changed = in;
    Rng rng(99);
    const Index cut = 70;
    changed.q.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.q.cols());
    changed.k.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.k.cols());
    changed.v.bottomRows(120 - cut - 1) = rng.gaussian(120 - cut - 1, in.v.cols());
    const Result b = runMech(m->info().id, changed, params.at(m->info().id), true);
    EXPECT_TRUE(a.output.topRows(cut + 1) == b.output.topRows(cut + 1)) << m->info().id;
    EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10)) << m->info().id;
  }
}

TEST(AllMechanisms, DeterministicForAFixedSeedAndCostsReported) {
  for (const auto& m : mechanisms()) {
    const Inputs in = makeInputs(Generator::Clustered, 100);
    const Result a = runMech(m->info().id, in, {}, false, 5);
    const Result b = runMech(m->info().id, in, {}, false, 5);
    EXPECT_TRUE(a.output == b.output) << m->info().id;
    EXPECT_EQ(a.output.rows(), 100);
    EXPECT_FALSE(a.output.hasNaN());
    EXPECT_GT(a.cost.flops, 0) << m->info().id;
    EXPECT_GT(a.cost.peak_bytes, 0) << m->info().id;
    EXPECT_FALSE(a.cost.stages.empty()) << m->info().id;
    if (!m->info().implies_weights) {
      // A gating module implies no N×N matrix: none is shown, and the place says why.
      EXPECT_FALSE(a.explanation.weights) << m->info().id;
      EXPECT_NE(a.explanation.weights_withheld, "") << m->info().id;
      continue;
    }
    ASSERT_TRUE(a.explanation.weights) << m->info().id;
    // Implied weights reproduce the output: O = A_eff·V.
    const Matrix w = a.explanation.weights.dense();
    // Against the values the weights mix: the input's V, or a memory's value table (product-key-memory).
    const Matrix values = m->referenceInputs(in, Params::resolve(m->params(), {})).v;
    ASSERT_EQ(w.cols(), values.rows()) << m->info().id;
    EXPECT_LT(relativeError(Matrix(w * values), MatrixD(a.output.cast<double>())), 2e-4) << m->info().id;
  }
}

// Sweeps time runs with explain = false (no steps, no display-only matrices): the output and the cost
// must not change, causal or not.
TEST(AllMechanisms, RunsWithoutExplanationGiveTheSameOutputAndCost) {
  for (const auto& m : mechanisms())
    for (bool causal : {false, true}) {
      if (causal && m->info().causal == CausalSupport::No) continue;
      const Inputs in = makeInputs(Generator::Local, 96);
      const Params params = Params::resolve(m->params(), {});
      CpuBackend cpu(1);
      RunOptions o;
      o.causal = causal;
      o.seed = 3;
      const Result full = m->run(in, params, cpu, o);
      o.explain = false;
      const Result bare = m->run(in, params, cpu, o);
      EXPECT_TRUE(full.output == bare.output) << m->info().id << (causal ? " causal" : "");
      EXPECT_EQ(full.cost.flops, bare.cost.flops) << m->info().id;
      EXPECT_EQ(full.cost.scored_pairs, bare.cost.scored_pairs) << m->info().id;
      // What runs only to be seen is marked so (views leave it out of the mechanism's time): the stages
      // of the two runs differ by the display-only ones alone.
      std::vector<std::string> full_stages, bare_stages;
      for (const Cost::Stage& s : full.cost.stages)
        if (!s.display_only) full_stages.push_back(s.name);
      for (const Cost::Stage& s : bare.cost.stages) {
        EXPECT_FALSE(s.display_only) << m->info().id << ": " << s.name;
        bare_stages.push_back(s.name);
      }
      EXPECT_EQ(full_stages, bare_stages) << m->info().id << (causal ? " causal" : "");
      EXPECT_EQ(bare.explanation.weights_withheld, "") << m->info().id << ": nothing was withheld, nothing was asked";
    }
}

TEST(AllMechanisms, ViewOnlyStagesAreLeftOutOfTheMechanismsTime) {
  // Linformer's teaching spectrum (a float64 SVD of exact A*, O(N³)) and the fast weights' V = I probe are
  // views: Comparison::attentionMs() leaves them out, and a run without explanation does not build them.
  CpuBackend cpu(1);
  for (const std::string id : {"linformer", "fast-weight", "bigbird", "jukebox"}) {
    const auto m = requireMechanism(id);
    attn::CompareOptions o;
    o.run.causal = id == "fast-weight";
    const Comparison c = compare(makeInputs(Generator::Clustered, 512), m, Params::resolve(m->params(), {}), cpu, o);
    const double view = c.approx.cost.display_ms();
    EXPECT_GT(view, 0) << id;
    EXPECT_LE(view, c.approx_ms) << id;
    EXPECT_NEAR(c.attentionMs(), c.approx_ms - view, 1e-9) << id;
  }
}

TEST(AllMechanisms, WeightsLeftOutAboveASizeLimitSayWhy) {
  // Three mechanisms form their effective N×N matrix densely, up to N = 4096; above it the picture's
  // place shows why it is empty (Explanation::weights_withheld), and below it that reason is absent.
  for (const std::string id : {"fast-weight", "memformer", "star-transformer"}) {
    const Result small = test::runMechanism(id, test::mechanismInputs(Generator::Clustered, 64), {}, false);
    EXPECT_TRUE(small.explanation.weights) << id;
    EXPECT_EQ(small.explanation.weights_withheld, "") << id;
    const Result large = test::runMechanism(id, test::mechanismInputs(Generator::Clustered, 4097), {}, false);
    EXPECT_FALSE(large.explanation.weights) << id;
    EXPECT_NE(large.explanation.weights_withheld.find("formed up to N = 4096"), std::string::npos)
        << id << ": '" << large.explanation.weights_withheld << "'";
  }
  int others = 0;  // every other pairwise mechanism forms its weights at N = 64, with no reason given
  for (const auto& m : mechanisms()) {
    if (!m->info().implies_weights) {  // gating modules: no matrix at any N, and the reason is given
      ++others;
      continue;
    }
    const Result r = test::runMechanism(m->info().id, test::mechanismInputs(Generator::Clustered, 64), {}, false);
    if (r.explanation.weights_withheld.empty()) ++others;
  }
  EXPECT_EQ(others, int(mechanisms().size()));
}

TEST(AllMechanisms, ReformerSeedChangesTheBuckets) {
  const Inputs in = makeInputs(Generator::Gaussian, 100);
  const Result a = runMech("reformer", in, {}, false, 1);
  const Result b = runMech("reformer", in, {}, false, 2);
  EXPECT_NE(a.explanation.groupings[0].label, b.explanation.groupings[0].label);
}

}  // namespace
}  // namespace attn

namespace attn {
namespace {

TEST(Runner, ReferenceInRowBlocksEqualsOnePassAndCancels) {
  for (bool causal : {false, true})
    for (bool mask_self : {false, true}) {
      Inputs in = makeInputs(Generator::Clustered, 300);
      in.mask_self = mask_self;
      DenseAttentionOptions o;
      o.causal = causal;
      o.mask_self = mask_self;
      const MatrixD whole = test::refAttention(in.q, in.k, in.v, o);
      EXPECT_LT((referenceOutput(in, causal) - whole).norm() / whole.norm(), 1e-14) << causal << mask_self;
      // A block of rows placed with causal_offset matches the same rows of the whole pass (CPU kernel too).
      DenseAttentionOptions part = o;
      part.causal_offset = 100;
      const Matrix rows = in.q.middleRows(100, 50);
      CpuBackend cpu(2);
      EXPECT_LT(test::relDiff(cpu.denseAttention(rows, in.k, in.v, part).out, whole.middleRows(100, 50)), 2e-6);
    }
  std::atomic<bool> cancel{true};
  EXPECT_THROW(referenceOutput(makeInputs(Generator::Gaussian, 100), false, &cancel), Cancelled);
}

// A mechanism whose arithmetic overflows (its output holds NaN in one row) is an error that names it and
// the rows, not a result whose error reads "computing…" for ever.
class OverflowingMechanism final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{"overflowing", "Overflowing", "test", "", 2026, Family::Reference, "O(N)"};
    return i;
  }
  std::vector<ParamSpec> params() const override { return {}; }
  Result run(const Inputs& in, const Params&, Backend&, const RunOptions&) const override {
    Result r;
    r.output = in.v;
    r.output(1, 0) = std::numeric_limits<float>::quiet_NaN();
    return r;
  }
};

TEST(Runner, ANonFiniteOutputIsAnErrorNamingTheMechanism) {
  CpuBackend cpu(1);
  const auto m = std::make_shared<OverflowingMechanism>();
  try {
    compare(makeInputs(Generator::Gaussian, 16), m, Params::resolve(m->params(), {}), cpu, CompareOptions{});
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("overflowing gave NaN or infinite outputs in 1 of 16 rows"), std::string::npos) << what;
  }
  // Sinkhorn without balancing was one (exp(R/τ) overflows at small τ): it balances at least once now.
  const auto sinkhorn = requireMechanism("sinkhorn");
  const Params p = Params::resolve(sinkhorn->params(), {{"iterations", "0"}, {"temperature", "0.01"}});
  EXPECT_EQ(p.integer("iterations"), 1);
  EXPECT_FALSE(p.notes().empty());
  const Comparison c = compare(makeInputs(Generator::Clustered, 128), sinkhorn, p, cpu, CompareOptions{});
  EXPECT_TRUE(std::isfinite(c.relative_error));
}

TEST(Runner, ReformerOnFewerQueriesThanKeysSaysWhy) {
  // Its reference runs on keys made from the queries: the message is Reformer's, not a shape mismatch.
  Inputs in = makeInputs(Generator::Gaussian, 64);
  in.q = Matrix(in.q.topRows(16));
  CpuBackend cpu(1);
  const auto m = requireMechanism("reformer");
  try {
    compare(in, m, Params::resolve(m->params(), {}), cpu, CompareOptions{});
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("N = 16 queries and M = 64 keys"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attn
