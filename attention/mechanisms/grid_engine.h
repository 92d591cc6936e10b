// The 2D engine of the vision mechanisms (CATALOG.md engine E6: SCRAM, CCNet, axial attention): the tokens
// are an H×W grid in raster order (token i at row i / W, column i % W), as the `image` input lays them out.
// It gives the grid of a run, pixel ↔ token maps, the row / column / criss-cross components for
// PatternBuilder, and the implied weights of a chain of sparse attention stages (axial's A_col·A_row,
// CCNet's A^R), computed row by row from the stages' sparse entries without ever forming N×N.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/mechanism.h"
#include "attention/mechanisms/pattern_engine.h"

namespace attn::mech {

struct Grid {
  Index h = 1, w = 1;  ///< rows (height) and columns (width); N = h·w
  Index n() const { return h * w; }
};

/// The grid of N tokens: W = `width`, or gridWidth(N) (the largest divisor of N ≤ √N, the `image` input's
/// grid) when width ≤ 0. UserError, naming `who` ("SCRAM"), when width does not divide N, listing divisors.
Grid gridFor(Index n, Index width, const std::string& who);

/// The grid of a run whose queries and keys are the same pixels: gridFor(N, width, who), where width ≤ 0 takes
/// the input's own grid (Inputs::grid_width: a photo's H×W) when it has one; a UserError naming `who` when the
/// inputs have M ≠ N keys.
Grid gridOfRun(const Inputs& inputs, Index width, const std::string& who);
/// "grid 24×16 (width: the largest divisor of N ≤ √N)", the note a grid mechanism's run carries.
std::string gridNote(const Grid& g, Index width_param, const Inputs& inputs);
/// The `width` parameter every grid mechanism takes (0: the image input's grid).
ParamSpec widthParam();

struct Pixel {
  Index y = 0, x = 0;  ///< row, column
};
inline Pixel pixelOf(Index token, const Grid& g) { return {token / g.w, token % g.w}; }
inline Index tokenOf(Pixel p, const Grid& g) { return p.y * g.w + p.x; }

/// Keys of row i of a pattern (PatternBuilder::add).
using KeysFn = std::function<void(Index, std::vector<Index>&)>;
/// The pixel's whole row: W keys.
KeysFn rowKeys(const Grid& g);
/// The pixel's whole column: H keys.
KeysFn columnKeys(const Grid& g);
/// The pixels of the column strictly above (y' < y): the causal axial "outer" keys.
KeysFn columnAboveKeys(const Grid& g);
/// The criss-cross set, H + W − 1 keys with the centre once (CCNet): components "column" then "row" (the centre
/// is tagged "column", the first that names it). With a causal builder: the column above and the row to the left.
void addCross(PatternBuilder& builder, const Grid& g);

/// A sparse stage of attention: the pattern and each entry's weight (CSR, the pattern's order). Row r of a
/// softmax stage sums to 1; an identity stage (a value passed on as it is) has one entry 1 per row.
struct SparseWeights {
  std::shared_ptr<const Pattern> pattern;
  std::vector<float> value;
  Index rows() const { return pattern->rows; }
  Index cols() const { return pattern->cols; }
};

/// The weights of softmax over `pattern` with logits scale·q_i·k_j and row log-normalisers `lse` (from
/// Backend::sparseAttention): w_ij = exp(scale·q_i·k_j − lse_i); rows with a non-finite lse are 0.
std::shared_ptr<const SparseWeights> softmaxStage(const Matrix& q, const Matrix& k, float scale,
                                                  std::shared_ptr<const Pattern> pattern, const Vector& lse);
/// The identity of n rows (one entry 1 per row, component "identity").
std::shared_ptr<const SparseWeights> identityStage(Index n);
/// Rows [0, rows) of `top` stacked over the identity of `rows` rows: the stage [A; I] that maps extended keys
/// [tokens through A; tokens themselves] back to tokens (causal axial's outer and inner keys).
std::shared_ptr<const SparseWeights> stackOverIdentity(const SparseWeights& top);

/// Implied weights of the product S_1·S_2·…·S_R (chain[0] leftmost: the stage applied last to V). Row i is
/// accumulated in float64 stage by stage from row i of S_1, so one row costs the products of the entries it
/// passes through (at most rowWork); nothing N×N is formed.
ImpliedWeights composedWeights(std::vector<std::shared_ptr<const SparseWeights>> chain);
/// A step that shows a pattern (when there is one) and holds the implied weights of that stage.
Step gridStep(std::string title, std::string caption, std::optional<Pattern> pattern, ImpliedWeights weights);

/// An upper bound of the multiply-adds one row of composedWeights costs for a chain whose stage s has at
/// most keys[s] entries a row, over `width` columns in between (a row of the partial product has at most
/// min(width, Π keys) entries).
double composedRowWork(const std::vector<double>& keys, double width);
/// Beyond this many multiply-adds for all rows (N × composedRowWork), runs leave the composite weights out
/// (weights_withheld): a view of the whole matrix would take seconds.
constexpr double kMaxComposedWork = double(Index(1) << 31);
/// The reason views show in place of withheld composite weights.
std::string composedWithheldText(const std::string& what, double work);

}  // namespace attn::mech
