// jukebox — Dhariwal et al. 2020 (arXiv 2005.00341), CATALOG.md #28: factorised attention over the
// sequence laid out as rows of length L (N = R·L). Three causal masks, cycled across layers:
//   row:           the same row, j ≤ i;
//   column:        the same column in earlier rows (stride L), j ≤ i;
//   previous-row:  all of the preceding row.
// One run computes one layer's mask (the chosen variant); the steps show the three masks and their
// three-layer composite coverage (with residual connections), which reaches every earlier token.
// Bidirectional variant (non-causal runs): the whole row, the whole column, the preceding row.
#include <cmath>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/plan.h"

namespace attn::mech {
namespace {

Pattern jukeboxMask(const std::string& variant, Index n, Index m, Index len, bool causal, const RunOptions& options) {
  PatternBuilder b(n, m, causal);
  if (variant == "row")
    b.add("row", [len, m](Index i, std::vector<Index>& out) {
      for (Index j = (i / len) * len; j < std::min(m, (i / len + 1) * len); ++j) out.push_back(j);
    });
  else if (variant == "column")
    b.add("column", [len, m](Index i, std::vector<Index>& out) {
      for (Index j = i % len; j < m; j += len) out.push_back(j);
    });
  else
    b.add("previous row", [len, m](Index i, std::vector<Index>& out) {
      const Index row = i / len;
      if (row == 0) return;
      for (Index j = (row - 1) * len; j < std::min(m, row * len); ++j) out.push_back(j);
    });
  return b.build(options);
}

class Jukebox final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "jukebox", "Jukebox factorised attention", "Dhariwal et al. Jukebox: A Generative Model for Music",
        "2005.00341", 2020, Family::FixedSparse, "O(N·√N·d)", CausalSupport::Native,
        "Lay the sequence out as rows of length L; layers attend along the row, down the column, or to the "
        "previous row, so three layers reach everything.",
        "",
        true,
        {"convention: the last row may be shorter (N need not be a multiple of L; the official code needs "
         "N = R·L); the first row's previous-row mask is empty (output 0, as the code's zero padding gives)",
         "convention: the bidirectional form (whole row, whole column) is attnlab's; the paper's masks are "
         "causal"}};
    return i;
  }
  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    return ExactLimit{{{"variant", "row"}, {"row_length", std::to_string(std::max(in.n(), in.m()))}}, 1e-4,
                      "one row (L ≥ N) and the row mask: every key is in the row"};
  }
  std::vector<ParamSpec> params() const override {
    return {
        ParamSpec::choice("variant", "Mask", "This layer's mask (the model cycles them across layers).",
                          {"row", "column", "previous-row"}, 0),
        ParamSpec::integer("row_length", "Row length L", "Tokens per row; 0 picks ⌈√N⌉ (the 5B prior uses 64 at "
                           "N = 8192, the 1B lyrics prior 96 at N = 6144).", 0, 0, 1 << 20),
    };
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const double n = double(s.n), m = double(s.m);
    Index l = p.integer("row_length");
    if (l == 0) l = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(s.n, s.m))))));
    const double len = std::min(double(l), m), row = len, column = std::ceil(m / double(l)),
                 previous = std::min(2 * len, m);
    const std::string variant = p.choice("variant");
    const double keys = variant == "row" ? row : variant == "column" ? column : previous;
    planPattern(r, s, n * keys, keys, "the mask (N × row length keys)", "row_length",
                "pick another row_length (0: ⌈√N⌉)");
    if (options.explain && s.n == s.m && s.n <= 8192) {  // the three layers' masks and their composition
      r.add(2 * patternBytes(n * (row + column + previous), 3 * n), "the three layers' masks (formed to be seen)");
      planTwoHops(r, s, 0, options, double(Index(1) << 25));
      planTwoHops(r, s, 0, options, double(Index(1) << 25));
    }
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), m = in.m();
    Index len = p.integer("row_length");
    if (len == 0) len = std::max<Index>(1, Index(std::ceil(std::sqrt(double(std::max(n, m))))));
    const std::string variant = p.choice("variant");
    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      return std::make_shared<const Pattern>(jukeboxMask(variant, n, m, len, options.causal, options));
    });
    attendPattern(in, pattern, backend, options, r);
    r.explanation.notes.push_back("row length L = " + std::to_string(len) + ", " + std::to_string((n + len - 1) / len) +
                                  " rows");
    std::vector<std::int32_t> rows(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) rows[size_t(i)] = std::int32_t(i / len);
    r.explanation.groupings.push_back(
        Grouping::fromLabels("rows of " + std::to_string(len), std::move(rows), std::int32_t((n + len - 1) / len)));
    // The three masks and their composite coverage (row → column → previous row, with residuals).
    if (options.explain && n == m && n <= 8192)
      displayStage(r.cost, options, "masks and three layers", [&] {
        const Pattern row = jukeboxMask("row", n, m, len, options.causal, options);
        const Pattern column = jukeboxMask("column", n, m, len, options.causal, options);
        const Pattern previous = jukeboxMask("previous-row", n, m, len, options.causal, options);
        r.explanation.steps.push_back(patternStep("Row", "layer 1: along the row", row));
        r.explanation.steps.push_back(patternStep("Column", "layer 2: down the column (stride L)", column));
        r.explanation.steps.push_back(patternStep("Previous row", "layer 3: the whole preceding row", previous));
        // (I∨row)·(I∨column)·(I∨previous), composed from the right: the product's cost grows with the
        // entries of its left factor, and row has ≈ L a row where row·column has ≈ L² (4× faster).
        if (auto later = composePatterns(column, previous, Index(1) << 25, true))
          if (auto three = composePatterns(row, *later, Index(1) << 25, true)) {
            three->components = {"3 layers"};
            r.explanation.steps.push_back(
                patternStep("Three layers",
                            "row, then column, then previous row (with residual connections): every earlier "
                            "token is reached",
                            std::move(*three)));
          }
      });
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeJukebox() { return std::make_shared<Jukebox>(); }
}  // namespace attn::mech
