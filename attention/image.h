// Pictures for the `image` input (CATALOG.md §0.6): a Qt-free PNG decoder (on the zlib core already links
// for .npz), the photographs shipped with attnlab (assets/images/, compiled in), the deterministic fit of a
// picture to an H×W token grid, and the per-pixel features the input is built from.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attention/types.h"

namespace attn {

/// An RGB picture, row-major, 3 floats per pixel in [0, 1] (pixel (y, x) at rgb[3·(y·width + x) + c]).
struct Picture {
  Index height = 0, width = 0;
  std::vector<float> rgb;
  std::string name;  ///< a shipped name or the file it was read from ("" for the synthetic shapes)
  float at(Index y, Index x, int c) const { return rgb[std::size_t(3 * (y * width + x) + c)]; }
};

/// The most pixels (width × height) attnlab decodes from one file: 64 Mpixel.
inline constexpr Index kMaxImagePixels = Index(1) << 26;

/// "NAME is W×H pixels; attnlab reads images up to 64 Mpixel": a picture refused for its size.
std::string imageTooLarge(const std::string& name, Index width, Index height, Index max_pixels = kMaxImagePixels);

/// A PNG file's pixels: 1/2/4/8/16-bit grey, grey + alpha, RGB, RGBA and palette images, plain or Adam7
/// interlaced. Alpha is dropped (the colour channels are kept as stored). Each chunk's CRC is checked, and
/// width × height is checked against `max_pixels` before any pixel memory is allocated or inflated.
/// Failure: one line naming `name` and what is wrong with the file.
Expected<Picture> decodePng(std::span<const std::uint8_t> bytes, Index max_pixels = kMaxImagePixels,
                            const std::string& name = "the image");

/// `picture` centre-cropped to the aspect ratio of an h × w grid and resized to it by area averaging (each
/// grid cell is the mean of the source area it covers, partial pixels weighted by their covered fraction).
/// Deterministic: the same picture gives the same pixels everywhere.
Picture fitToGrid(const Picture& picture, Index h, Index w);

/// The width W of the h × W grid of N tokens whose aspect ratio is nearest to the picture's (W divides N).
Index gridWidthFor(Index n, Index picture_height, Index picture_width);

struct ShippedImage {
  std::string name;     ///< what --image takes: astronaut, coffee, ...
  std::string title;    ///< what it shows
  std::string licence;  ///< its licence and author, one line
};
/// The photographs compiled into attnlab (assets/images/README.md says where each comes from).
const std::vector<ShippedImage>& shippedImages();
/// Their names joined by ", ", for messages.
std::string shippedImageNames();
/// The shipped picture called `name` (decoded once, then shared), or nullptr when there is none.
std::shared_ptr<const Picture> shippedPicture(const std::string& name);

/// How pixels become feature vectors.
enum class ImageFeatures {
  RgbXy,      ///< [RGB − ½, λ·(x, y)]: colour and position
  FilterBank  ///< F fixed seeded zero-mean 3×3×3 filters on RGB − ½, then λ·(x, y)
};
/// "rgbxy" or "filters".
const char* imageFeaturesName(ImageFeatures f);
/// Parses "rgbxy" or "filters"; UserError naming both otherwise.
ImageFeatures parseImageFeatures(const std::string& name);
inline constexpr Index kMaxImageFilters = 256;

/// The features of the h × w picture `rgb` (N × 3 in raster order, values in [0, 1]), N × 5 for RgbXy and
/// N × (filters + 2) for FilterBank. Colours are centred (RGB − ½, plus `noise` when given, N × 3); positions
/// are λ·(x − (w−1)/2, y − (h−1)/2)/max(h, w). A filter's response at a pixel is the sum of its 27 weights
/// times the centred colours of the 3×3 neighbourhood (edges repeat the border pixel), scaled by √(3/F)
/// so the F responses carry about as much as three colour channels. Filters come from `seed`.
MatrixD imageFeatures(const MatrixD& rgb, Index h, Index w, ImageFeatures kind, double lambda, Index filters,
                      std::uint64_t seed, const MatrixD* noise = nullptr);

}  // namespace attn
