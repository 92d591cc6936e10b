// Headless figures of a comparison (exact vs a mechanism), drawn with QPainter into a QImage so the
// same picture can be written to PNG without a display. The full figure layer (SVG/PDF, curves) grows
// from here.
#pragma once
#include <QImage>
#include <QString>

#include "attention/runner.h"

namespace attnlab::cli {

struct FigureOptions {
  int heatmap_pixels = 560;     ///< side of each heatmap, pixels
  double log_floor = 1e-4;      ///< log scale from max·floor to max
};

/// Exact and approximate implied weights side by side, with a colour bar and the error.
QImage comparisonFigure(const attn::Comparison& c, const FigureOptions& options = {});

/// One line describing the inputs: "N=256, d=64, clustered, seed 1".
QString describeInputs(const attn::InputSpec& spec);

}  // namespace attnlab::cli
