// Product-key memory (CATALOG.md #12): the limit case against softmax over all n² product keys, the
// paper's claim that the product search finds exactly the top k of all n² keys, the captured softmax
// mass, the cost, causality and parameter handling. Vulkan agreement is in the gpu suite.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/random.h"
#include "attention/runner.h"
#include "test_util.h"

namespace attn {
namespace {

constexpr const char* kId = "product-key-memory";

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const Inputs& in, std::map<std::string, std::string> params = {}, bool causal = false, std::uint64_t seed = 1) {
  return test::runMechanism(kId, in, std::move(params), causal, seed);
}
Params resolved(std::map<std::string, std::string> params) {
  const auto m = requireMechanism(kId);
  return Params::resolve(m->params(), params);
}
Inputs referenceOf(const Inputs& in, std::map<std::string, std::string> params) {
  return requireMechanism(kId)->referenceInputs(in, resolved(std::move(params)));
}
Comparison compareOn(const Inputs& in, std::map<std::string, std::string> params, bool causal = false) {
  CpuBackend cpu(2);
  CompareOptions o;
  o.run.causal = causal;
  return compare(in, requireMechanism(kId), resolved(std::move(params)), cpu, o);
}
const NamedMatrix& factor(const Result& r, const std::string& name) {
  for (const auto& f : r.explanation.factors)
    if (f.name == name) return f;
  throw std::runtime_error("no factor " + name);
}
double meanCapturedMass(const Result& r) { return double(factor(r, "captured mass").value.mean()); }

TEST(ProductKeyMemory, ReferenceIsSoftmaxOverTheNSquaredProductKeys) {
  const Inputs in = inputs(Generator::Clustered, 50);
  const Inputs ref = referenceOf(in, {{"n", "8"}});
  ASSERT_EQ(ref.k.rows(), 64);
  ASSERT_EQ(ref.v.rows(), 64);
  EXPECT_EQ(ref.q, in.q);
  EXPECT_EQ(ref.v.cols(), in.v.cols());
  // Product key a·n + b is [C¹_a, C²_b]: rows of one a share their first half, rows of one b the second.
  for (Index a = 0; a < 8; ++a)
    for (Index b = 0; b < 8; ++b) {
      EXPECT_EQ(ref.k.row(a * 8 + b).head(16), ref.k.row(a * 8).head(16));
      EXPECT_EQ(ref.k.row(a * 8 + b).tail(16), ref.k.row(b).tail(16));
    }
  // The same memory every time for one input seed, another for another seed.
  EXPECT_EQ(referenceOf(in, {{"n", "8"}}).v, ref.v);
  EXPECT_FALSE(referenceOf(inputs(Generator::Clustered, 50, 2), {{"n", "8"}}).k == ref.k);
  EXPECT_EQ(requireMechanism(kId)->referenceLabel(resolved({})), "exact (softmax over all n² keys)");
}

TEST(ProductKeyMemory, TopKOfAllSlotsReproducesTheExactReference) {
  // k = n²: every slot is read, so the mechanism is the exact softmax over the whole memory, causal or not
  // (the reference of a memory layer is never causal-masked: slots are no positions).
  const Inputs in = inputs(Generator::Clustered, 90);
  for (const char* n : {"4", "16"})
    for (bool causal : {false, true}) {
      const std::string all = std::to_string(std::stoi(n) * std::stoi(n));
      const Comparison c = compareOn(in, {{"n", n}, {"topk", all}}, causal);
      EXPECT_LT(c.relative_error, 1e-5) << "n=" << n << " causal=" << causal;
      EXPECT_NEAR(c.mass_recall, 1.0, 1e-5);
      EXPECT_LT(c.row_tv, 1e-5);
      EXPECT_EQ(c.reference_label, "exact (softmax over all n² keys)");
      EXPECT_NEAR(meanCapturedMass(c.approx), 1.0, 1e-5);
      // The reference is the same dense softmax whatever the causal setting.
      const Inputs ref = referenceOf(in, {{"n", n}});
      EXPECT_LT(relativeError(c.exact.output, test::refAttention(ref.q, ref.k, ref.v, {})), 1e-5);
    }
  EXPECT_TRUE(requireMechanism("exact")->referenceIsCausal(true));
  EXPECT_FALSE(requireMechanism(kId)->referenceIsCausal(true));
  EXPECT_FALSE(requireMechanism(kId)->referenceIsCausal(false));
}

TEST(ProductKeyMemory, ProductSearchFindsExactlyTheTopKOfAllProductKeys) {
  // The paper's point: the top k of the k'² candidate pairs are the top k over all n² product keys.
  // Brute force here scores every product key in double; rows whose k-th and (k+1)-th scores lie within
  // float rounding of each other are counted apart (a tie can go either way).
  struct Case {
    Generator g;
    const char* n;
    Index k;
  };
  const std::vector<Case> cases = {{Generator::Clustered, "64", 1},  {Generator::Clustered, "64", 8},
                                   {Generator::Clustered, "64", 32}, {Generator::Gaussian, "64", 32},
                                   {Generator::Local, "32", 20},     {Generator::Gaussian, "16", 40},
                                   {Generator::Copy, "64", 64}};
  Index checked = 0, near_ties = 0, tie_differs = 0;
  for (const Case& cs : cases) {
    const Inputs in = inputs(cs.g, 200, 3);
    const std::map<std::string, std::string> params = {{"n", cs.n}, {"topk", std::to_string(cs.k)}};
    const Result r = run(in, params);
    const Inputs ref = referenceOf(in, params);
    const MatrixD scores = in.q.cast<double>() * ref.k.cast<double>().transpose();
    const Pattern& p = *r.explanation.pattern;
    const Index slots = ref.k.rows();
    std::vector<Index> order(static_cast<size_t>(slots));
    for (Index i = 0; i < in.n(); ++i) {
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + cs.k + 1, order.end(),
                        [&](Index x, Index y) { return scores(i, x) > scores(i, y); });
      const double gap = scores(i, order[size_t(cs.k - 1)]) - scores(i, order[size_t(cs.k)]);
      const std::set<Index> brute(order.begin(), order.begin() + cs.k);
      const std::set<Index> found(p.col.begin() + p.row_ptr[size_t(i)], p.col.begin() + p.row_ptr[size_t(i + 1)]);
      if (gap < 2e-5 * (1 + std::abs(scores(i, order[0])))) {
        ++near_ties;
        tie_differs += found != brute;
        continue;
      }
      ASSERT_EQ(found, brute) << "n=" << cs.n << " k=" << cs.k << " query " << i;
      ++checked;
    }
  }
  std::printf("[ pkm ] product search = brute-force top-k for %lld queries (%lld near-ties skipped, %lld of them "
              "resolved the other way)\n",
              static_cast<long long>(checked), static_cast<long long>(near_ties), static_cast<long long>(tie_differs));
  EXPECT_LE(near_ties, checked / 50);
}

TEST(ProductKeyMemory, CapturedMassAndAccuracyRiseWithK) {
  const Inputs in = inputs(Generator::Clustered, 256);
  double last_mass = 0, last_error = INFINITY;
  for (const char* k : {"8", "32", "128", "512"}) {
    const Comparison c = compareOn(in, {{"n", "64"}, {"topk", k}});
    const double mass = meanCapturedMass(c.approx);
    // The captured mass is the runner's mass recall: the exact all-slot softmax summed over the top k.
    EXPECT_NEAR(mass, c.mass_recall, 1e-4) << k;
    std::printf("[ pkm clustered N=256 n=64 ] k=%s captured mass %.3f, rel. error %.3f, row TV %.3f\n", k, mass,
                c.relative_error, c.row_tv);
    EXPECT_GT(mass, last_mass);
    EXPECT_LT(c.relative_error, last_error);
    last_mass = mass, last_error = c.relative_error;
  }
  // Longer keys (a larger key scale) concentrate the softmax on fewer slots; at σ = 1 it is nearly flat.
  const double flat = meanCapturedMass(run(in, {{"topk", "32"}, {"key_scale", "1"}}));
  const double peaky = meanCapturedMass(run(in, {{"topk", "32"}, {"key_scale", "5"}}));
  const double def = meanCapturedMass(run(in, {{"topk", "32"}}));
  std::printf("[ pkm clustered N=256 n=64 k=32 ] captured mass at key scale 1: %.3f, 3 (default): %.3f, 5: %.3f\n",
              flat, def, peaky);
  EXPECT_LT(flat, def);
  EXPECT_LT(def, peaky);
  EXPECT_LT(flat, 0.3);
  EXPECT_GT(def, 0.5);
}

TEST(ProductKeyMemory, ScoresNPlusKSquaredPairsInsteadOfNSquared) {
  const Inputs in = inputs(Generator::Gaussian, 64);
  struct Case {
    Index n, k;
  };
  for (const Case cs : {Case{64, 32}, Case{64, 8}, Case{512, 32}, Case{16, 40}}) {
    const Result r = run(in, {{"n", std::to_string(cs.n)}, {"topk", std::to_string(cs.k)}});
    const Index kp = std::min(cs.k, cs.n);
    EXPECT_EQ(r.cost.scored_pairs, double(64 * (cs.n + kp * kp))) << cs.n << " " << cs.k;
    std::printf("[ pkm cost ] n=%lld k=%lld: %lld scored pairs per query vs %lld keys (%.3f)\n",
                static_cast<long long>(cs.n), static_cast<long long>(cs.k), static_cast<long long>(cs.n + kp * kp),
                static_cast<long long>(cs.n * cs.n), double(cs.n + kp * kp) / double(cs.n * cs.n));
    EXPECT_EQ(r.explanation.pattern->nnz(), 64 * std::min(cs.k, cs.n * cs.n));
    EXPECT_EQ(r.explanation.weights.cols(), cs.n * cs.n);
  }
  // The paper's size: n = 512 (262,144 slots) runs without the n² tables.
  const Result big = run(in, {{"n", "512"}, {"topk", "32"}});
  EXPECT_LT(big.cost.peak_bytes, Index(16) << 20);
  EXPECT_LT(big.cost.scored_pairs, 0.01 * 64 * 512.0 * 512.0);
}

TEST(ProductKeyMemory, OutputIsTheImpliedWeightsTimesTheValueTable) {
  const Inputs in = inputs(Generator::Clustered, 100);
  const Result a = run(in, {}, false, 5), b = run(in, {}, false, 5);
  EXPECT_TRUE(a.output == b.output);
  EXPECT_FALSE(a.output.hasNaN());
  const Matrix w = a.explanation.weights.dense();
  ASSERT_EQ(w.cols(), 64 * 64);
  EXPECT_LT((w.rowwise().sum().array() - 1).abs().maxCoeff(), 1e-5);
  const Inputs ref = referenceOf(in, {});
  EXPECT_LT(relativeError(Matrix(w * ref.v), MatrixD(a.output.cast<double>())), 2e-5);
  // Weights are softmax over the selected logits q·k/√d.
  const Pattern& p = *a.explanation.pattern;
  for (Index i = 0; i < 100; i += 13) {
    double z = 0;
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e)
      z += std::exp(double(in.q.row(i).dot(ref.k.row(p.col[size_t(e)]))) / std::sqrt(32.0));
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
      const Index j = p.col[size_t(e)];
      EXPECT_NEAR(w(i, j), std::exp(double(in.q.row(i).dot(ref.k.row(j))) / std::sqrt(32.0)) / z, 1e-5);
    }
  }
  // The memory is drawn from the input seed (not the run seed): the same for any run seed.
  EXPECT_TRUE(run(in, {}, false, 9).output == a.output);
  EXPECT_FALSE(run(inputs(Generator::Clustered, 100, 2), {}).output == a.output);
  ASSERT_FALSE(a.cost.stages.empty());
  EXPECT_GT(a.cost.flops, 0);
  EXPECT_GT(a.cost.peak_bytes, 0);
}

TEST(ProductKeyMemory, CausalReadsOnlyTheTokensOwnQuery) {
  // Nothing mixes positions: the causal output is the non-causal one, and changing later tokens (their
  // queries, keys and values) leaves earlier outputs bit-identical (the generic causality test).
  const Inputs in = inputs(Generator::Clustered, 120);
  const Result a = run(in, {{"topk", "16"}}, true);
  EXPECT_TRUE(a.output == run(in, {{"topk", "16"}}, false).output);
  Inputs changed = in;
  Rng rng(99);
  changed.q.bottomRows(49) = rng.gaussian(49, 32);
  changed.k.bottomRows(49) = rng.gaussian(49, 32);
  changed.v.bottomRows(49) = rng.gaussian(49, 16);
  const Result b = run(changed, {{"topk", "16"}}, true);
  EXPECT_TRUE(a.output.topRows(71) == b.output.topRows(71));
  EXPECT_FALSE(a.output.bottomRows(10) == b.output.bottomRows(10));
  // The input's keys and values are not read at all.
  Inputs other_kv = in;
  other_kv.k = rng.gaussian(120, 32);
  other_kv.v = rng.gaussian(120, 16);
  EXPECT_TRUE(run(other_kv, {{"topk", "16"}}).output == run(in, {{"topk", "16"}}).output);
}

TEST(ProductKeyMemory, ExplanationShowsTheGridTheCandidatesAndTheTopK) {
  const Inputs in = inputs(Generator::Clustered, 40);
  const Result r = run(in, {{"n", "16"}, {"topk", "6"}});
  const Inputs ref = referenceOf(in, {{"n", "16"}});
  const Matrix& grid = factor(r, "product-key grid (query 0)").value;
  ASSERT_EQ(grid.rows(), 16);
  ASSERT_EQ(grid.cols(), 16);
  for (Index a = 0; a < 16; ++a)
    for (Index b = 0; b < 16; ++b) EXPECT_NEAR(grid(a, b), in.q.row(0).dot(ref.k.row(a * 16 + b)), 1e-4);
  const Matrix& marks = factor(r, "search marks (query 0)").value;
  EXPECT_EQ((marks.array() == 3).count(), 6);
  EXPECT_EQ((marks.array() >= 2).count(), 36);           // the k'² candidates
  EXPECT_EQ((marks.array() >= 1).count(), 16 * 16 - 10 * 10);  // top-k' rows ∪ top-k' columns
  // The final cells are the largest of the grid.
  const float smallest_kept = (marks.array() == 3).select(grid.array(), INFINITY).minCoeff();
  const float largest_dropped = (marks.array() < 3).select(grid.array(), -INFINITY).maxCoeff();
  EXPECT_GT(smallest_kept, largest_dropped);

  ASSERT_EQ(r.explanation.steps.size(), 2u);
  EXPECT_EQ(r.explanation.steps[0].title, "sub-key scores");
  EXPECT_EQ(r.explanation.steps[1].title, "top-k");
  const Pattern& cand = *r.explanation.steps[0].view->pattern;
  const Pattern& top = *r.explanation.pattern;
  EXPECT_EQ(cand.components.at(0), "candidates (top-k rows × top-k cols)");
  EXPECT_EQ(top.components.at(0), "top-k");
  EXPECT_EQ(cand.cols, 256);
  for (Index i = 0; i < 40; ++i) {
    EXPECT_EQ(cand.row_ptr[size_t(i + 1)] - cand.row_ptr[size_t(i)], 36);
    for (Index e = top.row_ptr[size_t(i)]; e < top.row_ptr[size_t(i + 1)]; ++e)
      EXPECT_TRUE(cand.contains(i, top.col[size_t(e)]));
  }
  for (Index a = 0; a < 16; ++a)
    for (Index b = 0; b < 16; ++b) EXPECT_EQ(cand.contains(0, a * 16 + b), marks(a, b) >= 2);
  bool mass_note = false;
  for (const auto& note : r.explanation.notes) mass_note |= note.find("of the softmax over all 256 keys") != std::string::npos;
  EXPECT_TRUE(mass_note);
}

TEST(ProductKeyMemory, BadParametersAreExplained) {
  // Odd head size: the query cannot be split in halves.
  InputSpec s;
  s.n = 20;
  s.d = 33;
  s.dv = 8;
  const Inputs odd = generate(s);
  try {
    run(odd);
    FAIL() << "odd d accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("must be even"), std::string::npos) << e.what();
  }
  EXPECT_THROW(referenceOf(odd, {}), UserError);
  // More slots than the memory has: clamped, with a note, and then exact.
  const Inputs in = inputs(Generator::Gaussian, 30);
  const Result r = run(in, {{"n", "4"}, {"topk", "100"}});
  ASSERT_FALSE(r.explanation.notes.empty());
  EXPECT_NE(r.explanation.notes.front().find("clamped to n² = 16"), std::string::npos);
  EXPECT_EQ(r.explanation.pattern->nnz(), 30 * 16);
  // A reference too large to materialise says which n works.
  s.d = 64;
  s.dv = 64;
  const Inputs wide = generate(s);
  try {
    referenceOf(wide, {{"n", "1024"}});
    FAIL() << "a 1M-slot reference accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("use n ≤ 724"), std::string::npos) << e.what();
  }
  // The mechanism itself runs at that size (it never forms the n² tables).
  const Result big = run(wide, {{"n", "1024"}, {"topk", "32"}});
  EXPECT_EQ(big.output.rows(), 20);
  EXPECT_FALSE(big.output.hasNaN());
  // Out-of-range numbers are clamped by the parameter layer.
  EXPECT_EQ(resolved({{"n", "1"}}).integer("n"), 2);
}

}  // namespace
}  // namespace attn
