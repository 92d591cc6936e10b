// The viewport's hover readout (render/view) over a scene.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/mechanism.h"
#include "attention/runner.h"
#include "render/scene/scene.h"
#include "render/view/heatmap_overlay.h"

namespace attnlab::view {
namespace {

/// The code points of `s` as U+XXXX, for failure messages.
std::string codePoints(const std::u32string& s) {
  std::string out;
  char buf[16];
  for (char32_t c : s) {
    std::snprintf(buf, sizeof buf, " U+%04X", static_cast<unsigned>(c));
    out += buf;
  }
  return out;
}

TEST(OverlayGlyphs, FindsWhatTheFontCannotDraw) {
  EXPECT_EQ(
      overlayMissingGlyphs("query i \xE2\x86\x93, 4\xC3\x97"
                           "4, \xCF\x84 \xE2\x89\xA4 1 \xC2\xB7 K\xE1\xB5\x80V, x\xC2\xB2, k\xE2\x82\x81 \xE2\x96\xB6"),
      std::u32string());
  // A pause sign (U+23F8) is in no font here, a CJK ideograph outside the loaded ranges.
  EXPECT_EQ(overlayMissingGlyphs("\xE2\x8F\xB8 \xE4\xB8\xAD"), std::u32string(U"\u23F8\u4E2D"));
}

/// Every string a mechanism hands to the views (titles, step titles and captions, components, groups,
/// token roles, factors, notes, the headline figures) draws in the overlay: Nyström's "Kᵀ" read "K?".
TEST(OverlayGlyphs, EveryMechanismsTextIsInTheOverlaysFont) {
  attn::CpuBackend cpu(1);
  attn::InputSpec spec;
  spec.n = 64, spec.d = 16, spec.dv = 16, spec.generator = attn::Generator::Clustered;
  const attn::Inputs inputs = attn::generate(spec);
  int checked = 0;
  for (const auto& m : attn::mechanisms()) {
    std::vector<std::string> shown{m->info().title, attn::describeRelation(*m)};
    for (bool causal : {false, true}) {
      if (causal && m->info().causal == attn::CausalSupport::No) continue;
      attn::CompareOptions options;
      options.run.causal = causal;
      try {
        const attn::Comparison c = attn::compare(inputs, m, attn::Params::resolve(m->params(), {}), cpu, options);
        const attn::Explanation& e = c.approx.explanation;
        for (const attn::Step& step : e.steps) shown.insert(shown.end(), {step.title, step.caption, step.sorted_by});
        if (e.pattern) shown.insert(shown.end(), e.pattern->components.begin(), e.pattern->components.end());
        for (const attn::Step& step : e.steps)
          if (step.view && step.view->pattern)
            shown.insert(shown.end(), step.view->pattern->components.begin(), step.view->pattern->components.end());
        for (const attn::Grouping& g : e.groupings) shown.push_back(g.name);
        for (const attn::TokenSet& t : e.special) shown.insert(shown.end(), {t.name, t.role});
        for (const attn::NamedMatrix& f : e.factors) shown.insert(shown.end(), {f.name, f.caption});
        shown.insert(shown.end(), e.notes.begin(), e.notes.end());
        shown.push_back(e.weights_withheld);
        shown.push_back(c.reference_label);
        for (const std::string& line : attn::describeMetrics(c)) shown.push_back(line);
        shown.push_back(attn::describeHeadlineShort(c));
      } catch (const attn::UserError& error) {  // shown in the viewport in place of the picture
        shown.push_back(error.what());
      }
    }
    for (const std::string& s : shown) {
      EXPECT_EQ(codePoints(overlayMissingGlyphs(s)), "") << m->info().id << ": \"" << s << '"';
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
}

TEST(HeatmapReadout, SortedViewsNameTokensOnlyOnThePanelsTheyApplyTo) {
  scene::Scene scene;
  scene::Panel square;
  square.source_rows = square.source_cols = 4;
  scene::Panel factor = square;  // a step's N × buckets factor: not sorted, not zoomable
  factor.source_cols = 2;
  factor.zoomable = false;
  scene::Panel own = square;  // a step sorted by its own grouping
  own.own_order = true;
  const attn::Range one{1, 2}, three{0, 3};
  // By position: plain entries everywhere.
  EXPECT_EQ(readoutAxisText(scene, square, true, one), "query i = 1");
  EXPECT_EQ(readoutAxisText(scene, square, false, three),
            "key j = 0\xE2\x80\x93"
            "2");
  EXPECT_EQ(readoutAxisText(scene, own, true, one), "sorted row = 1");
  // Sorted: the token at the place, on the N×N panels only.
  scene.token_at = {3, 0, 2, 1};
  EXPECT_EQ(readoutAxisText(scene, square, true, one), "query i = 0 (sorted row 1)");
  EXPECT_EQ(readoutAxisText(scene, square, false, attn::Range{0, 1}), "key j = 3 (sorted column 0)");
  EXPECT_EQ(readoutAxisText(scene, square, true, three),
            "sorted row = 0\xE2\x80\x93"
            "2");
  EXPECT_EQ(readoutAxisText(scene, factor, true, one), "query i = 1") << "a factor is in position order";
  EXPECT_EQ(readoutAxisText(scene, own, false, one), "sorted column = 1");
  scene::Panel memory = square;  // product-key memory's N × N² matrix: its columns are not tokens
  memory.source_cols = 16;
  EXPECT_EQ(readoutAxisText(scene, memory, false, attn::Range{2, 3}), "key j = 2");
}

}  // namespace
}  // namespace attnlab::view
