// The canonical figures of attnlab, built from attention results: the matrix views of one comparison
// (weights, pattern, groups, diff, tokens) and the curves of a sweep (time, memory, error and
// speed-up against N). `attnlab render`, `attnlab sweep` / `report` and the GUI's export share them.
#pragma once
#include <string>
#include <vector>

#include "app/figures/figure.h"
#include "attention/runner.h"
#include "attention/sweep.h"

namespace attnlab::fig {

enum class View { Weights, Pattern, Groups, Diff, Tokens };
std::optional<View> parseView(const std::string& name);
const char* viewName(View v);
const std::vector<std::string>& viewNames();

struct ViewOptions {
  View view = View::Weights;
  ColourScale values;     ///< colormap and scale of weights
  int max_pixels = 512;   ///< pooled resolution of each panel
  attn::Pooling pooling = attn::Pooling::Max;
  Theme theme = Theme::light();
  bool show_times = true;  ///< run times in the panel titles (off for reproducible images)
};

/// The view of a comparison; UserError when the mechanism has nothing of that kind (a pattern view of a
/// dense mechanism, a groups view without buckets) with a message naming the views that exist.
MatrixFigure comparisonFigure(const attn::Comparison& c, const ViewOptions& options);

/// Compare mode's grid: exact attention, then the implied weights of each comparison's mechanism (all on
/// the same inputs), titled with its error and time, on one shared colour scale. `comparisons` must not be
/// empty; entries without weights show as empty panels.
MatrixFigure compareFigure(const std::vector<const attn::Comparison*>& comparisons, const ViewOptions& options);
/// One line describing the inputs: "N=256, d=64, clustered input, seed 1".
QString describeInputs(const attn::InputSpec& spec, bool causal = false);

// ---- sweep curves -----------------------------------------------------------------------------------

enum class Curve { Time, Memory, Error, Speedup };
/// Time, memory, error or speed-up vs N of `ids` (exact is added where it belongs) on one backend.
CurveFigure sweepFigure(const attn::SweepResult& r, Curve curve, const std::vector<std::string>& ids,
                        const std::string& backend, const QString& group_title);

}  // namespace attnlab::fig
