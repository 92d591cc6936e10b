// The view model's gates layout (ViewRequest::layout == Layout::Gates): pool() and compose() hand over to these
// for the image input. Internal to render/scene; the public names are in build.h.
#pragma once
#include <atomic>

#include "render/scene/build.h"

namespace attnlab::scene {

/// The mechanism's (or the chosen step's) Image, Labels and Bars factors as maps over the grid and bars, in their
/// order, up to four; a mechanism that implies N×N weights shows its first map beside exact maps at picked pixels.
Pooled poolGates(const Subject& subject, const ViewRequest& request, const std::atomic<bool>* cancel);
/// Panels over the picture: each map blended with the photo's grey, bars in a frame of their own, exact maps with
/// their cosine distances in captions. A scene whose placeholder says why when there is no gates view.
Scene composeGates(const Pooled& pooled, const ViewRequest& request);

}  // namespace attnlab::scene
