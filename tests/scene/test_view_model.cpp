// The view model's decisions, without a display: what a request shows, the limits written once (the sorting
// limit, the mark cap), compare mode, and pictures that stay readable at large N.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "attention/backend.h"
#include "attention/mechanism.h"
#include "attention/pooling.h"
#include "attention/runner.h"
#include "render/scene/build.h"

namespace attnlab::scene {
namespace {

std::shared_ptr<const attn::Comparison> comparisonOf(const std::string& id, attn::Index n,
                                                     const std::map<std::string, std::string>& params = {},
                                                     attn::Generator generator = attn::Generator::Clustered) {
  attn::InputSpec spec;
  spec.n = n;
  spec.d = spec.dv = 16;
  spec.generator = generator;
  attn::CpuBackend cpu(2);
  const auto m = attn::requireMechanism(id);
  attn::CompareOptions o;
  o.with_reference = false;  // the pictures, not the error, are under test here
  o.with_weight_metrics = false;
  return std::make_shared<const attn::Comparison>(
      attn::compare(attn::generate(spec), m, attn::Params::resolve(m->params(), params), cpu, o));
}

Subject subjectOf(std::shared_ptr<const attn::Comparison> c) {
  Subject s;
  s.main = std::move(c);
  return s;
}

double nonEmptyShare(const attn::Matrix& m) {
  return m.size() == 0 ? 0 : double((m.array() != 0).count()) / double(m.size());
}

TEST(ViewModel, AGroupingStepWithManyTokensAPixelIsSortedByItsGroupsNotASolidSquare) {
  // Routing's k-means steps are "tokens i and j share a cluster". At 16 tokens a pixel in position order almost
  // every pixel holds some pair of one cluster: the image says nothing. Sorted by the step's own clusters it
  // shows them as blocks on the diagonal.
  const Subject s = subjectOf(comparisonOf("routing", 1024));
  ViewRequest r;
  r.pixels = 64;
  r.third = Third::Step;
  r.step = 0;
  const Pooled p = pool(s, r);
  ASSERT_FALSE(p.steps.empty());
  const StepImage& step = p.steps.front();
  EXPECT_TRUE(step.own_order);
  EXPECT_NE(step.what.find("sorted by"), std::string::npos) << step.what;
  EXPECT_LT(nonEmptyShare(step.image.values), 0.5) << "blocks, not a solid square";
  // The same grouping pooled in position order is (nearly) solid: what the rule avoids.
  const attn::Grouping& g = s.main->approx.explanation.steps.front().view->groupings.front();
  EXPECT_GT(nonEmptyShare(attn::poolGrouping(g, nullptr, 64)), 0.9);
  // At a pixel per token, position order stays (it is readable there).
  ViewRequest sharp = r;
  sharp.pixels = 1024;
  EXPECT_FALSE(pool(s, sharp).steps.front().own_order);
}

TEST(ViewModel, AContentBasedPatternWithManyTokensAPixelIsSortedByTheMechanismsGroups) {
  // Routing's pattern (a query sees the keys of its cluster) at 16 tokens a pixel: in position order almost every
  // pixel holds a scored pair. Sorted by its query clusters the clusters show as blocks, and the panel says so.
  const Subject s = subjectOf(comparisonOf("routing", 1024));
  ViewRequest r;
  r.pixels = 64;
  r.third = Third::Pattern;
  const Pooled p = pool(s, r);
  EXPECT_EQ(p.pattern_sorted_by, "query clusters");
  const double sorted = nonEmptyShare(p.pattern.values);
  const double by_position = nonEmptyShare(attn::poolPattern(*s.main->approx.explanation.pattern, 64));
  EXPECT_GT(by_position, 0.9);
  EXPECT_LT(sorted, 0.6 * by_position) << sorted << " vs " << by_position;
  const Scene scene = compose(p, r);
  ASSERT_EQ(scene.panels.size(), 3u);
  EXPECT_TRUE(scene.panels[2].own_order);
  bool said = false;
  for (const std::string& caption : scene.panels[2].captions) said = said || caption.rfind("sorted by query clusters", 0) == 0;
  EXPECT_TRUE(said);
  // One pixel per token: position order.
  r.pixels = 1024;
  EXPECT_TRUE(pool(s, r).pattern_sorted_by.empty());
}

TEST(ViewModel, SortingAboveTheLimitIsOffAndSaysWhyInTheScene) {
  const auto c = comparisonOf("routing", k_max_sorted_n + 64);
  std::string why;
  EXPECT_TRUE(ordersOf(*c, &why).empty());
  EXPECT_NE(why.find(std::to_string(k_max_sorted_n)), std::string::npos) << why;
  ViewRequest r;
  r.pixels = 32;
  r.third = Third::None;
  const Scene scene = build(subjectOf(c), r);
  bool said = false;
  for (const std::string& note : scene.notes) said = said || note.rfind("Order is off", 0) == 0;
  EXPECT_TRUE(said) << "the viewport says why Order is off";
  EXPECT_THROW(resolveOrder(*c, "clusters"), attn::UserError);
  // Below the limit the same mechanism offers its clusters.
  EXPECT_FALSE(ordersOf(*comparisonOf("routing", 256)).empty());
}

TEST(ViewModel, MarksAreCappedOnceAndTheCapIsSaid) {
  const auto c = comparisonOf("longformer", 1024, {{"globals", "600"}}, attn::Generator::Local);
  ViewRequest r;
  r.pixels = 128;
  r.third = Third::Pattern;
  const Pooled p = pool(subjectOf(c), r);
  EXPECT_EQ(p.marks.size(), k_max_marks);
  EXPECT_EQ(p.marks_total, 600u);
  const Scene scene = compose(p, r);
  bool said = false;
  for (const std::string& note : scene.notes) said = said || note.find("first 512 of 600") != std::string::npos;
  EXPECT_TRUE(said);
  for (const Panel& panel : scene.panels) {
    if (panel.role == "mechanism" || panel.role == "pattern") {
      EXPECT_EQ(panel.marks.size(), k_max_marks) << panel.title;
    }
  }
}

TEST(ViewModel, GroupsAreNumberedFromOneAndTheOrderIsTheGroupingsOwn) {
  const auto c = comparisonOf("reformer", 256);
  ViewRequest r;
  r.pixels = 256;
  r.order = resolveOrder(*c, "buckets");
  r.third = Third::Groups;
  const Scene scene = build(subjectOf(c), r);
  ASSERT_EQ(scene.panels.size(), 3u);
  const Panel& groups = scene.panels[2];
  ASSERT_FALSE(groups.categories.empty());
  EXPECT_EQ(groups.categories.front().rfind("group 1", 0), 0u) << groups.categories.front();
  // Sorted by buckets, "same bucket" is block diagonal: every pixel on the diagonal shares its group.
  for (attn::Index k = 0; k < groups.values.rows(); ++k) EXPECT_GT(groups.values(k, k), 0) << k;
  // The strip beside every panel: the group of each pixel row, non-decreasing in bucket order.
  ASSERT_EQ(scene.panels[0].row_groups.size(), std::size_t(scene.panels[0].values.rows()));
  for (std::size_t k = 1; k < scene.panels[0].row_groups.size(); ++k)
    EXPECT_LE(scene.panels[0].row_groups[k - 1], scene.panels[0].row_groups[k]);
  EXPECT_EQ(scene.panels[0].tag, "a");
  EXPECT_EQ(scene.panels[2].tag, "c");
}

TEST(ViewModel, CompareModeSharesExactAndEveryPanelCarriesItsOwnFigures) {
  attn::CpuBackend cpu(2);
  auto main = comparisonOf("longformer", 256);
  std::vector<attn::CompanionSpec> others;
  for (const char* id : {"performer", "nystromformer"}) {
    const auto m = attn::requireMechanism(id);
    others.push_back({m, attn::Params::resolve(m->params(), {})});
  }
  attn::CompareOptions o;
  o.with_reference = false;
  o.with_weight_metrics = false;
  Subject s;
  s.main = main;
  s.others = attn::compareCompanions(main, others, cpu, o);
  ASSERT_EQ(s.others.size(), 2u);
  for (const attn::Companion& other : s.others) {
    ASSERT_TRUE(other.comparison) << other.id << ": " << other.error;
    EXPECT_TRUE(other.comparison->reused_reference) << other.id << " ran exact again";
  }
  attn::completeMetrics(s.main, s.others);
  for (const attn::Companion& other : s.others) {
    EXPECT_FALSE(attn::metricsPending(*other.comparison)) << other.id;
    EXPECT_TRUE(other.comparison->reference == s.main->reference) << other.id << ": the same float64 reference";
  }
  ViewRequest r;
  r.pixels = 64;
  const Scene scene = build(s, r);
  ASSERT_EQ(scene.panels.size(), 4u);
  EXPECT_EQ(scene.panels[2].role, "other");
  EXPECT_EQ(scene.panels[2].captions.front(), attn::describeMetrics(*s.others[0].comparison).front());
  EXPECT_NE(scene.title.find("Performer"), std::string::npos);
  // One colour scale for all: its top is the largest weight of any panel.
  float top = 0;
  for (const Panel& p : scene.panels) top = std::max(top, p.values.maxCoeff());
  EXPECT_FLOAT_EQ(scene.scale.hi, top);
}

TEST(ViewModel, AnUnknownOrderIsShownByPositionAndSaidSo) {
  const Subject s = subjectOf(comparisonOf("reformer", 128));
  ViewRequest r;
  r.pixels = 32;
  r.order = "no such grouping";
  const Scene scene = build(s, r);
  ASSERT_FALSE(scene.notes.empty());
  EXPECT_NE(scene.notes.front().find("not sorted by no such grouping"), std::string::npos);
  EXPECT_TRUE(scene.token_at.empty());
}

}  // namespace
}  // namespace attnlab::scene
