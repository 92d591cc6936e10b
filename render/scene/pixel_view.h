// The view model's pixel layout (ViewRequest::layout == Layout::Pixel): pool() and compose() hand over to
// these for the image input. Internal to render/scene; the public names are in build.h.
#pragma once
#include <atomic>
#include <functional>

#include "render/scene/build.h"

namespace attnlab::scene {

/// The picked pixels' rows of exact's and the mechanism's (or the chosen step's) implied weights, as H×W maps.
Pooled poolPixel(const Subject& subject, const ViewRequest& request, const std::atomic<bool>* cancel);
/// Panels over the picture: one pixel: exact, the mechanism, their difference; two: exact and the mechanism of
/// each; three or four: the mechanism's of each. A scene whose placeholder says why when there is no pixel view.
Scene composePixel(const Pooled& pooled, const ViewRequest& request);

/// Shared by the layouts over a picture (pixel, gates). Why the run's tokens are not the pixels of its picture
/// (no picture at the input's H×W grid, or keys that are not the pixels), naming `view` ("the pixel view"); "" when
/// they are.
std::string pictureRefusal(const attn::Comparison& c, const std::string& view);
/// The indices of the steps whose views pass `keep`.
std::vector<std::size_t> stepsWhere(const attn::Comparison& c, const std::function<bool(const attn::Explanation&)>& keep);
/// A pooled result of a picture layout: the subject and request and, unless `refused`, the grid and the steps'
/// titles and captions (StepImage::what = `what`, no images).
Pooled picturePooled(const Subject& subject, const ViewRequest& request, const std::string& view, bool refused,
                     const std::vector<std::size_t>& steps, const std::string& what);

/// The largest finite entry (0 for none), and the largest finite magnitude: the top of a panel's scale.
float finiteMax(const attn::Matrix& m);
float absMax(const attn::Matrix& m);

}  // namespace attnlab::scene
