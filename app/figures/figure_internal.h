// Helpers the figure classes share (figure.cpp, scene_figure.cpp): fonts in points, text measured and
// wrapped on a 72-DPI device, categorical colours and crisp heatmap images. Not part of the figure API.
#pragma once
#include <QColor>
#include <QFont>
#include <QFontMetricsF>
#include <QImage>
#include <QPainter>
#include <QRectF>
#include <QString>
#include <vector>

namespace attnlab::fig::internal {

/// DejaVu Sans at `pt` points (a point is a painter unit on every figure device).
QFont font(double pt, bool bold = false);
/// Painter units are points; fonts are given in points too. On a QImage the device's resolution would
/// scale point sizes, so every device is set to 72 DPI and the painter is scaled instead.
void setFont(QPainter& p, double pt, bool bold = false);
/// Metrics of `f` on a 72-DPI device, where a point is a painter unit.
QFontMetricsF metrics(const QFont& f);
/// Lines broken at spaces to fit `width` points in `f`; a word wider than that alone is broken between
/// characters, so no text is lost.
std::vector<QString> wrapped(const QString& text, const QFont& f, double width);
/// The same for several lines in font(pt).
std::vector<QString> wrapped(const std::vector<QString>& lines, double pt, double width);
/// Category k's colour (categoricalPalette, repeating every 8).
QColor categoryColour(int k);
/// Draws a heatmap image so that no device blends its pixels: nearest-neighbour sampling; on raster devices
/// the target snapped to whole device pixels; on vector devices (PDF, SVG) the image first enlarged by nearest
/// neighbour to an integer multiple of its size, at least ~1024 pixels a side, and embedded losslessly (Qt's
/// PDF engine writes JPEG otherwise), so a viewer that smooths images when it scales them has nothing to blur.
void drawImageSharp(QPainter& p, const QRectF& target, const QImage& img);
/// The integer factor drawImageSharp enlarges an image of w × h pixels by on vector devices.
int vectorUpscale(int w, int h);

}  // namespace attnlab::fig::internal
