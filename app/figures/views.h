// The canonical figures of attnlab: the matrix views of a comparison (what the view model, render/scene,
// decides to show, drawn for a page) and the curves of a sweep (time, memory, error and speed-up against N).
// `attnlab render`, `attnlab sweep` / `report` and the GUI's export share them.
#pragma once
#include <string>
#include <vector>

#include "app/figures/figure.h"
#include "app/figures/scene_figure.h"
#include "render/scene/build.h"
#include "attention/runner.h"
#include "attention/sweep.h"

namespace attnlab::fig {

/// The named views of `attnlab render --view` (and the GUI's export): which third panel the view model shows,
/// or (Pixel, the image input) one query pixel's attention over the picture, or (Gates, the image input) a gating
/// module's maps and gates over the picture.
enum class View { Weights, Pattern, Groups, Diff, Tokens, Step, Pixel, Gates };
std::optional<View> parseView(const std::string& name);
const char* viewName(View v);
const std::vector<std::string>& viewNames();

/// The view model's request for view `v` of a comparison, on top of `base` (pixels, pooling, scale, colour
/// map, window, order, step): UserError when the mechanism has nothing of that kind (a pattern view of a dense
/// mechanism, a groups view without buckets, a step it lacks), naming what exists. Groups sorts by the first
/// grouping unless `base` names an order. Pixel: UserError unless the input is a picture and the mechanism implies
/// N×N weights; with base.third == Step, base.step must name a step that implies weights. Gates: UserError unless
/// the input is a picture and the mechanism has maps or gates (scene::gatesRefusal); with base.third == Step,
/// base.step must name a step that has them.
scene::ViewRequest requestFor(const attn::Comparison& c, View v, scene::ViewRequest base);

/// The figure of what the view model shows for `subject` under `request`: the screen's scene, pooled at the
/// request's pixels and drawn for a page (the GUI's export and `attnlab render` both make it here).
SceneFigure sceneFigure(const scene::Subject& subject, const scene::ViewRequest& request, const FigureStyle& style,
                        attn::Backend* backend = nullptr);

// ---- sweep curves -----------------------------------------------------------------------------------

enum class Curve { Time, Memory, Error, Speedup };
/// Time, memory, error or speed-up vs N of `ids` (exact is added where it belongs) on one backend.
CurveFigure sweepFigure(const attn::SweepResult& r, Curve curve, const std::vector<std::string>& ids,
                        const std::string& backend, const QString& group_title);

}  // namespace attnlab::fig
