// Input specification and the seeded generators of CATALOG.md §0 that make untrained attention
// meaningful (clustered tokens, local sequences, the copy task, heavy hitters, ...).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/image.h"
#include "attention/types.h"

namespace attn {

enum class Generator { Gaussian, Clustered, Local, Periodic, Peaked, Copy, Image };

struct GeneratorInfo {
  Generator id;
  std::string name;  ///< CLI spelling: gaussian, clustered, local, periodic, peaked, copy, image
  std::string help;
};
const std::vector<GeneratorInfo>& generators();
/// Parses a CLI spelling; UserError listing the valid names otherwise.
Generator parseGenerator(const std::string& name);
const std::string& generatorName(Generator g);
/// The generator names joined by `separator` ("gaussian|clustered|..."), for help texts.
std::string generatorNames(const std::string& separator = "|");

/// Width W of the H×W grid that N tokens form in raster order (token i at row i / W, column i % W):
/// the largest divisor of N that is ≤ √N, so the grid is as square as N allows (256 → 16×16,
/// 1024 → 32×32, 512 → H = 32 rows of W = 16; a prime N gives a strip N rows high and 1 wide).
/// The `image` generator and the 2D mechanisms (scram) share it.
Index gridWidth(Index n);

/// The limits every input is held to, generated or imported from a file: tokens N (and M), head sizes d
/// and dv, and the elements of one matrix (N × d).
inline constexpr Index kMaxInputTokens = Index(1) << 22;  // 4M tokens
inline constexpr Index kMaxHeadSize = 4096;
inline constexpr Index kMaxInputElements = Index(1) << 31;

struct InputSpec {
  Index n = 256;    ///< tokens (queries and keys)
  Index d = 64;     ///< head size of Q and K
  Index dv = 64;    ///< head size of V
  std::uint64_t seed = 1;
  Generator generator = Generator::Clustered;
  double temperature = 1.0;  ///< logits are scaled by 1/τ through Q (small τ: peaky rows)
  Index clusters = 8;        ///< Clustered: number of centres
  double noise = 0.35;       ///< Clustered/Copy: relative noise around centres / copies; Image: texture
  double length_scale = 16;  ///< Local: correlation length of the random walk, tokens
  Index period = 32;         ///< Periodic: period in tokens
  Index heavy_hitters = 4;   ///< Peaked: keys with large norm
  double position_weight = 4; ///< Image: λ, the weight of the pixel position (x, y) beside its colour
  std::string source;        ///< non-empty when loaded from files (description for reports)
  /// Image: "" = the synthetic shapes; the name of a shipped photo (shippedImages()); or a file's path,
  /// whose pixels a front end has read into `picture`.
  std::string image;
  /// Image: the grid's width W (it must divide N). 0: for a photo the divisor of N whose grid is nearest
  /// the photo's aspect (gridWidthFor), for the shapes gridWidth(N).
  Index width = 0;
  ImageFeatures features = ImageFeatures::RgbXy;  ///< Image: how pixels become features
  Index filters = 16;                             ///< Image, FilterBank: the number F of filters
  /// Image: the pixels of `image` when a front end has decoded them (a file); null for shipped names.
  /// (operator== compares the pointer.)
  std::shared_ptr<const Picture> picture;
  /// Image: the second picture of a co-registered change pair (FracTAL's change detection), "" = none: a shipped
  /// name (coffee-changed) or a file's path, as `image`. The keys K are then picture B's features through the
  /// same projection, the queries Q and values V picture A's. Both pictures must have the same size.
  std::string image_b;
  /// Image: the pixels of `image_b` when a front end has decoded them (a file); null for shipped names.
  std::shared_ptr<const Picture> picture_b;
  /// Same spec → same inputs (generate() is deterministic).
  bool operator==(const InputSpec&) const = default;
};

/// The input a person gets without choosing one, in `attnlab run`, `render`, `sweep` (its generator, d and τ;
/// N is a range there) and the window: local input (a banded attention matrix, what the default mechanism,
/// Longformer, is built for), N = 256, d = dv = 64, seed 1, τ = 1, the generators' knobs at their defaults.
/// (A default-constructed InputSpec differs in its generator: code that builds one field by field says which.)
InputSpec defaultInput();

/// The knobs of InputSpec a generator reads besides N, d, seed and temperature ("clusters", "noise",
/// "length_scale", "period", "heavy_hitters", "position_weight"), in that order.
std::vector<std::string> generatorKnobs(Generator g);
/// The temperature and those knobs that differ from their defaults, as "τ = 0.5, clusters 2, noise 0.5"
/// ("" when none): for captions and reports, so a figure says what it was made from.
std::string describeKnobs(const InputSpec& spec);
/// Copies the knobs (not N, d, seed, generator, temperature or the grid width, which goes with N) from
/// `from` into `to`: the image's name, pixels and features too, and the change pair's second picture.
void copyKnobs(const InputSpec& from, InputSpec& to);

/// Q, K (N×d) and V (N×dv). Keys and values may have a different count M than queries.
struct Inputs {
  Matrix q, k, v;
  InputSpec spec;
  /// Exact attention on these inputs forbids i → i unless it is the only visible key (the reference
  /// of shared-QK mechanisms such as Reformer, where q_i·k_i would otherwise dominate).
  bool mask_self = false;
  /// The generator's own token labels when it has them (the cluster of each token for `clustered`,
  /// the region of each pixel for `image`), empty otherwise: views sort by them to make the
  /// structure visible.
  std::vector<std::int32_t> cluster;
  /// Image: the picture the tokens are the pixels of, at the grid's H×W (for views); null otherwise.
  std::shared_ptr<const Picture> picture;
  /// Image: the grid's width W (H = N / W); 0 for other inputs.
  Index grid_width = 0;
  /// Image with a change pair (InputSpec::image_b): picture B at the grid's H×W, the keys' picture; null otherwise.
  std::shared_ptr<const Picture> picture_b;
  Index n() const { return q.rows(); }
  Index m() const { return k.rows(); }
};

/// The grid width W of the `image` input of `spec` (see InputSpec::width); UserError when spec.width does
/// not divide N or a named image is unknown.
Index imageGridWidth(const InputSpec& spec);

/// UserError naming the first value of `spec` out of range (N, d, the temperature, the generator's
/// knobs); generate() checks this first. For front ends that take a spec before generating it.
void checkSpec(const InputSpec& spec);

/// Deterministic for a given spec (same seed → bit-identical inputs on every machine).
/// UserError for sizes out of range (N < 1, d < 1, N·d overflowing the memory budget).
Inputs generate(const InputSpec& spec);

/// Checks shapes (Q and K share d; K and V share their row count; nothing empty) and that every
/// value is finite; UserError naming the first offending matrix, row and column otherwise.
void validateInputs(const Matrix& q, const Matrix& k, const Matrix& v);

}  // namespace attn
