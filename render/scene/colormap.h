// Colormaps shared by the viewport (as a 256×1 GPU lookup texture), the legend and the figures.
// One definition so that what the screen shows, what is exported and what the tests expect agree.
// Qt-free and Vulkan-free: plain tables.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::scene {

/// One colour, sRGB-encoded components in [0, 1] (write them to a UNORM target as they are).
struct Rgb {
  float r = 0, g = 0, b = 0;
};

/// matplotlib's viridis, 256 entries; entry 0 is the lowest value (dark purple), 255 the highest (yellow).
const std::array<Rgb, 256>& viridis();

/// Viridis at t ∈ [0, 1] (clamped; NaN gives the bottom), linearly interpolated between entries,
/// like the GPU's linear sampling of the LUT at texel centres (u = (t·255 + 0.5) / 256).
Rgb viridisAt(double t);

/// Colours of categorical panels (pattern components, groups): the Okabe–Ito palette, distinguishable
/// with colour-vision deficiencies. Category k (0-based) takes entry k mod 8. shaders/draw/heatmap.frag
/// holds the same eight values (keep them equal).
const std::array<Rgb, 8>& categoricalPalette();
/// What a categorical panel shows where no category is (pairs outside the pattern).
inline constexpr Rgb k_categorical_empty{0.10f, 0.10f, 0.12f};

/// The colormaps of heatmaps, all perceptually uniform: viridis (default), magma, cividis, and a
/// diverging one (Moreland's cool-warm) for signed differences, centred at t = 0.5.
enum class Colormap { Viridis, Magma, Cividis, Diverging };
const std::array<Rgb, 256>& table(Colormap map);
/// The map at t ∈ [0, 1] (clamped, NaN at the bottom), interpolated like viridisAt.
Rgb colormapAt(Colormap map, double t);
/// "viridis", "magma", "cividis", "diverging", in enum order.
const std::vector<std::string>& colormapNames();
std::optional<Colormap> parseColormap(const std::string& name);  ///< also accepts "coolwarm"
const std::string& colormapName(Colormap map);

/// The LUT as 256 RGBA8 texels (R, G, B, 255), the layout of the viewport's R8G8B8A8_UNORM texture.
std::array<std::uint8_t, 256 * 4> viridisRgba8();
/// Any colormap's LUT in the same layout.
std::array<std::uint8_t, 256 * 4> rgba8(Colormap map);

}  // namespace attnlab::scene
