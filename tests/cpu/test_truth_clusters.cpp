// Issue 19 (truth pass) for the clustering and sorting mechanisms: Sinkhorn, Routing, Clustered (and
// i-clustered), Informer. Every shown number is computed from what is shown, every query that silently
// outputs 0 is counted and marked, and a mechanism's pattern holds every key a row's output depends on
// (CATALOG §0: mass recall is the exact mass on the keys a row can see).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
           bool causal = false) {
  return test::runMechanism(id, in, std::move(params), causal);
}

/// The number after `key` in a caption ("max |column sum − 1| = 0.25" → 0.25); NaN when absent.
double captionNumber(const std::string& caption, const std::string& key) {
  const size_t at = caption.find(key);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(caption.c_str() + at + key.size(), nullptr);
}

// --- sinkhorn: causal balancing ------------------------------------------------------------------------

TEST(TruthClusters, SinkhornCausalFramesShowTheOneNormalisationAndItsRealSums) {
  // Causal runs normalise rows only (a column's sum runs over later blocks). The frames once said
  // "max |column sum − 1| = 0" without summing a column, and repeated the same matrix for every iteration.
  const Inputs in = inputs(Generator::Clustered, 128);
  const Result r = run("sinkhorn", in, {{"block", "16"}, {"iterations", "5"}}, true);
  std::vector<Matrix> frames;
  for (const Step& step : r.explanation.steps) {
    if (step.view->factors.empty()) continue;
    const Matrix& s = step.view->factors.front().value;
    frames.push_back(s);
    const Index nb = s.rows();
    double row_dev = 0, col_dev = 0;
    for (Index i = 1; i < nb; ++i) row_dev = std::max(row_dev, std::abs(double(s.row(i).sum()) - 1));
    for (Index j = 0; j + 1 < nb; ++j) col_dev = std::max(col_dev, std::abs(double(s.col(j).sum()) - 1));
    const double shown_row = captionNumber(step.caption, "max |row sum − 1| = ");
    const double shown_col = captionNumber(step.caption, "max |column sum − 1| = ");
    EXPECT_NEAR(shown_row, row_dev, 2e-3 * std::max(1.0, row_dev)) << step.title << ": " << step.caption;
    EXPECT_NEAR(shown_col, col_dev, 2e-3 * std::max(1.0, col_dev)) << step.title << ": " << step.caption;
  }
  // The scores and one row normalisation: more frames would be copies of it.
  ASSERT_EQ(frames.size(), 2u);
  const Matrix& s = frames.back();
  for (Index i = 0; i < s.rows(); ++i) {
    for (Index j = i; j < s.cols(); ++j) EXPECT_EQ(s(i, j), 0.0f) << "block " << i << " receives only earlier blocks";
    if (i > 0) {
      EXPECT_NEAR(s.row(i).sum(), 1.0, 1e-5) << i;
    }
  }
  bool said = false;
  for (const std::string& note : r.explanation.notes)
    said = said || note.find("5 iterations would repeat it") != std::string::npos;
  EXPECT_TRUE(said) << "the unused iterations are not mentioned";
}

// --- routing: queries whose cluster has no key -----------------------------------------------------------

TEST(TruthClusters, RoutingCountsAndMarksQueriesWhoseClusterHasNoKey) {
  // Keys opposite the queries (k = −q): spherical k-means puts most queries in clusters without keys.
  // Such a query outputs 0; the run must say how many and mark which.
  Inputs in = inputs(Generator::Clustered, 96);
  in.k = -in.q;
  for (bool causal : {false, true}) {
    const Result r = run("routing", in, {{"clusters", "6"}}, causal);
    // Which queries have a key to attend to, from the labels alone (causal: a key at or before them).
    const std::vector<std::int32_t>& ql = r.explanation.groupings.at(0).label;
    const std::vector<std::int32_t>& kl = r.explanation.groupings.at(1).label;
    std::vector<Index> keyless;
    for (Index i = 0; i < 96; ++i) {
      bool any = false;
      for (Index j = 0; j < 96 && !any; ++j) any = kl[size_t(j)] == ql[size_t(i)] && (!causal || j <= i);
      if (!any) {
        keyless.push_back(i);
        EXPECT_EQ(r.output.row(i).squaredNorm(), 0.0f) << i;
      }
    }
    ASSERT_GT(keyless.size(), 0u) << "the input was meant to leave queries without keys (causal " << causal << ")";
    const TokenSet* marked = nullptr;
    for (const TokenSet& t : r.explanation.special)
      if (!t.indices.empty()) marked = &t;
    ASSERT_NE(marked, nullptr) << "queries with no key are not marked (causal " << causal << ")";
    EXPECT_EQ(marked->indices, keyless) << causal;
    bool counted = false;
    for (const std::string& note : r.explanation.notes)
      counted = counted || (note.rfind("queries with no key in their cluster", 0) == 0 &&
                            note.find(": " + std::to_string(keyless.size()) + " of 96;") != std::string::npos);
    EXPECT_TRUE(counted) << keyless.size() << " queries with no key, and no note says so (causal " << causal << ")";
  }
  // Q = K: every query's cluster holds at least its own key: nothing to report.
  const Inputs same = inputs(Generator::Clustered, 96);
  Inputs shared = same;
  shared.k = same.q;
  const Result r = run("routing", shared, {{"clusters", "6"}});
  for (const TokenSet& t : r.explanation.special) EXPECT_TRUE(t.indices.empty()) << t.name;
}

// --- every mechanism here: the pattern holds every key a row depends on -----------------------------------

struct DependenceCase {
  std::string id;
  std::map<std::string, std::string> params;
  bool causal = false;
};

void PrintTo(const DependenceCase& c, std::ostream* os) {
  *os << c.id;
  for (const auto& [k, v] : c.params) *os << " " << k << "=" << v;
  if (c.causal) *os << " (causal)";
}

std::string caseName(const testing::TestParamInfo<DependenceCase>& p) {
  std::string s = p.param.id;
  for (const auto& [k, v] : p.param.params) s += "_" + k + "_" + v;
  if (p.param.causal) s += "_causal";
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class TruthPattern : public testing::TestWithParam<DependenceCase> {};

TEST_P(TruthPattern, HoldsEveryKeyARowsOutputDependsOn) {
  // The V = I probe (CATALOG §0): with V the identity, output(i, j) is the weight row i gives key j,
  // computed by the mechanism itself. Every key with a weight must be in the row of the pattern, or
  // mass recall counts less than the row sees (Informer's lazy rows, i-clustered's centroid part,
  // Sinkhorn's S-mixed blocks once did).
  const DependenceCase& c = GetParam();
  Inputs in = inputs(Generator::Clustered, 64);
  in.v = Matrix::Identity(64, 64);
  const Result r = run(c.id, in, c.params, c.causal);
  ASSERT_TRUE(r.explanation.pattern.has_value()) << c.id << " exposes no pattern";
  const Pattern& p = *r.explanation.pattern;
  Index missing = 0, first_i = -1, first_j = -1;
  for (Index i = 0; i < 64; ++i)
    for (Index j = 0; j < 64; ++j)
      if (r.output(i, j) != 0.0f && !p.contains(i, j) && missing++ == 0) {
        first_i = i;
        first_j = j;
      }
  EXPECT_EQ(missing, 0) << c.id << ": row " << first_i << " weighs key " << first_j << " ("
                        << (first_i >= 0 ? r.output(first_i, first_j) : 0.0f) << ") outside its pattern";
  // And no key the row cannot see is in its pattern: causal patterns stay causal.
  if (c.causal) {
    for (Index i = 0; i < 64; ++i)
      for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e) {
        EXPECT_LE(p.col[size_t(e)], i);
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Clusters, TruthPattern,
    testing::Values(DependenceCase{"sinkhorn", {{"block", "8"}}, false},
                    DependenceCase{"sinkhorn", {{"block", "8"}}, true},
                    DependenceCase{"routing", {{"clusters", "4"}}, false},
                    DependenceCase{"routing", {{"clusters", "4"}}, true}, DependenceCase{"clustered", {}, false},
                    DependenceCase{"clustered", {{"variant", "i-clustered"}, {"clusters", "6"}, {"topk", "8"}}, false},
                    DependenceCase{"informer", {}, false}),
    caseName);

TEST(TruthClusters, MassRecallOfRowsThatSeeEveryKeyIsOne) {
  // Informer's lazy rows output the mean of V and i-clustered's rows the centroid's softmax beyond the
  // top-k: both see every key, so the exact mass they can see is all of it (reported 0.117 and less
  // than 1 once, counting only active rows and the top-k).
  const Inputs in = inputs(Generator::Clustered, 128);
  const Result exact = run("exact", in);
  for (const auto& [id, params] : std::vector<std::pair<std::string, std::map<std::string, std::string>>>{
           {"informer", {}}, {"clustered", {{"variant", "i-clustered"}, {"topk", "8"}}}, {"clustered", {}}}) {
    const Result r = run(id, in, params);
    ASSERT_TRUE(r.explanation.pattern.has_value()) << id;
    EXPECT_NEAR(massRecall(*r.explanation.pattern, exact.explanation.weights), 1.0, 1e-6) << id;
  }
}

}  // namespace
}  // namespace attn
