// scram — Calian et al. 2019 (arXiv 1905.10308), CATALOG.md #9, SCRAM: Spatially Coherent Randomized
// Attention Maps. The tokens are an H×W grid in raster order (an image; W from the `width` param, or
// gridWidth(): the largest divisor of N ≤ √N, the grid of the `image` input).
//  1. PatchMatch finds, for every query i, a key j*(i) ≈ argmax_j q_i·k_j without scoring all pairs:
//     a random initial key; then `iterations` passes, each (a) propagation: try the key of the
//     previous neighbour in scan order shifted by one pixel (forward scans: left and up neighbours,
//     shifted right and down; backward scans: right and down, shifted left and up; the direction
//     alternates), in place, so a good key travels across a whole region in one pass; (b) random
//     search around the current best at radii R·α^t (R = max(H, W), t = 0, 1, ... while ≥ 1 pixel).
//     Random draws come from one stream per (query, iteration), so they do not depend on the scan order.
//  2. Softmax over the (2r+1)² keys around j*(i) in the key grid (clipped at the borders), plus
//     `random_keys` uniformly drawn keys, on the backend (Backend::sparseAttention).
// Causal: every candidate is a key j ≤ i, and every pass is a forward scan (left and up neighbours come
// earlier in raster order, and their key shifted by one pixel is still ≤ i), so query i's key and its
// output depend on tokens ≤ i only. The window around j*(i) ≤ i then always holds j*(i) itself: no row
// is ever empty, and no fallback is needed.
// Stage 2's exact neighbourhood construction is recalled, not checked against the paper (CATALOG [R]).
// The views (not the method) compute the exact argmax, O(N²·d), for N ≤ 8192, to colour the keys
// PatchMatch has found; that work is not part of the cost.
// Nothing is learned: no stand-in.
#include <algorithm>
#include <cmath>
#include <thread>

#include "attention/mechanisms/all.h"
#include "attention/mechanisms/common.h"
#include "attention/mechanisms/grid_engine.h"
#include "attention/mechanisms/pattern_engine.h"
#include "attention/random.h"

namespace attn::mech {
namespace {

constexpr Index kMaxExactArgmax = 8192;       // views compute the true argmax up to this N (O(N²·d))
constexpr Index kMaxPatternEntries = Index(1) << 28;
constexpr std::uint64_t kInitStream = 0x5C0000000000ull;  // + t·N + i: PatchMatch draws
constexpr std::uint64_t kRandomKeyStream = 0x5D0000000000ull;  // + i: the random extra keys

class Scram final : public Mechanism {
 public:
  const MechanismInfo& info() const override {
    static const MechanismInfo i{
        "scram", "SCRAM (PatchMatch attention)", "Calian et al. SCRAM: Spatially Coherent Randomized Attention Maps",
        "1905.10308", 2019, Family::ContentSparse, "O(N·log N·d)", CausalSupport::Yes,
        "PatchMatch searches for each pixel's argmax key by propagating good keys between neighbours and by "
        "random search; attention then runs over a small window around the key it found.",
        "", true,
        {"convention: stage 2 (softmax over the (2r+1)² keys around the found argmax, plus optional random keys) is "
         "our reading of the paper, not checked against its text"}};
    return i;
  }
  std::vector<ParamSpec> params() const override {
    return {
        widthParam(),
        ParamSpec::integer("iterations", "PatchMatch iterations", "Passes of propagation and random search after "
                           "the random start (the scan direction alternates; causal runs scan forward only).",
                           4, 0, 64),
        ParamSpec::real("alpha", "Search ratio α", "Random search tries one key at each radius R·α^t around the "
                        "current best, R = max(H, W), down to one pixel.", 0.5, 0.05, 0.95),
        ParamSpec::integer("radius", "Window radius r", "Attention runs over the (2r+1)² keys around the found "
                           "argmax (clipped at the borders); r ≥ max(H, W) is exact attention.", 1, 0, 1 << 16,
                           true),
        ParamSpec::integer("random_keys", "Random keys", "Extra keys drawn uniformly per query (j ≤ i when "
                           "causal).", 0, 0, 1 << 20, true),
    };
  }

  std::optional<ExactLimit> exactLimit(const Inputs& in) const override {
    const Grid g = gridFor(std::max<Index>(in.n(), 1), 0, "SCRAM");
    return ExactLimit{{{"radius", std::to_string(std::max(g.h, g.w))}}, 1e-4,
                      "a window covering the grid (r ≥ max(H, W))"};
  }

  RunPlan plan(const RunShape& s, const Params& p, const RunOptions& options) const override {
    RunPlan r = Mechanism::plan(s, p, options);  // the output, the weights' copies of Q and K
    r.flops = 0;
    const Index n = std::max<Index>(s.n, 1);
    const Grid g = gridFor(n, p.integer("width"), "SCRAM");
    const Index radius = std::max<Index>(p.integer("radius"), 0),
                random_keys = std::clamp<Index>(p.integer("random_keys"), 0, n);  // see run()
    // The window is clipped at the grid's borders (a radius past the grid adds nothing).
    const double per_row =
        double(std::min<Index>(n, std::min(g.h, 2 * radius + 1) * std::min(g.w, 2 * radius + 1) + random_keys));
    planPattern(r, s, double(n) * per_row, per_row, "the window around each found key ((2 × radius + 1)² × N)",
                per_row > double(random_keys) * 2 ? "radius" : "random_keys", "lower radius or random_keys");
    // Random keys are drawn per row before duplicates are dropped: a row's list (Index each, grown) per thread.
    if (random_keys > 0)
      r.add(double(std::max(1u, std::thread::hardware_concurrency())) * double(random_keys) * sizeof(Index) * 2,
            "the random keys drawn for a row (random_keys per thread)", "random_keys");
    const double iterations = double(std::max<Index>(p.integer("iterations"), 0));
    r.add(double(n) * (iterations + 3) * 8 * (options.explain ? 2 : 1), "the argmax fields (iterations × N)",
          "iterations");
    r.flops += 2 * double(n) * (iterations + 1) * 8 * double(s.d);  // the PatchMatch evaluations, about 8 per pass
    return r;
  }

  Result run(const Inputs& in, const Params& p, Backend& backend, const RunOptions& options) const override {
    Result r;
    const Index n = in.n(), d = in.q.cols();
    const Grid g = gridOfRun(in, p.integer("width"), "SCRAM");
    const Index iterations = std::max<Index>(p.integer("iterations"), 0);
    const Index radius = std::max<Index>(p.integer("radius"), 0);
    // More draws than keys would only repeat keys (and drawing 2^20 a row took a minute at N = 1024): at most N.
    const Index asked_random = std::max<Index>(p.integer("random_keys"), 0), random_keys = std::min(asked_random, n);
    const double alpha = std::clamp(p.number("alpha"), 0.05, 0.95);
    const bool causal = options.causal;
    const Index side = std::max(g.h, g.w);

    // The pattern's size is known before any work: refuse what cannot fit.
    const Index per_row =
        std::min<Index>(n, std::min(g.h, 2 * radius + 1) * std::min(g.w, 2 * radius + 1) + random_keys);
    if (double(n) * double(per_row) > double(kMaxPatternEntries))
      throw UserError("SCRAM: radius " + std::to_string(radius) + " and " + std::to_string(random_keys) +
                      " random keys give up to " + std::to_string(per_row) + " keys per query, too many for N = " +
                      std::to_string(n) + "; lower the radius or the random keys");

    // ---- Stage 1: PatchMatch ----
    std::vector<std::int32_t> best(static_cast<size_t>(n));
    std::vector<float> best_score(static_cast<size_t>(n));
    std::vector<std::vector<std::int32_t>> fields;  // j*_t for t = 0 (init), 1, ..., iterations
    double evaluations = 0;
    auto score = [&](Index i, Index j) { return in.q.row(i).dot(in.k.row(j)); };
    auto consider = [&](Index i, Index j) {
      if (j < 0 || j >= n || (causal && j > i)) return;
      evaluations += 1;
      const float s = score(i, j);
      const auto ii = size_t(i);
      if (s > best_score[ii] || (s == best_score[ii] && j < best[ii])) best[ii] = std::int32_t(j), best_score[ii] = s;
    };
    auto stream = [n](Index t, Index i) { return kInitStream + std::uint64_t(t) * std::uint64_t(n) + std::uint64_t(i); };
    std::vector<Index> radii;  // R·α^t down to one pixel
    for (double rad = double(side); Index(rad) >= 1; rad *= alpha) radii.push_back(Index(rad));
    timedStage(r.cost, options, "patchmatch init", [&] {
      for (Index i = 0; i < n; ++i) {
        Rng rng(options.seed, stream(0, i));
        const Index visible = causal ? i + 1 : n;
        best[size_t(i)] = std::int32_t(rng.below(std::uint64_t(visible)));
        best_score[size_t(i)] = score(i, best[size_t(i)]);
        evaluations += 1;
      }
      fields.push_back(best);
    });
    for (Index t = 1; t <= iterations; ++t) {
      const bool forward = causal || t % 2 == 1;
      timedStage(r.cost, options, "patchmatch iteration " + std::to_string(t), [&] {
        for (Index step = 0; step < n; ++step) {
          const Index i = forward ? step : n - 1 - step, y = i / g.w, x = i % g.w;
          // Propagation: the neighbour's key, shifted by the step from that neighbour to i (in place).
          if (forward) {
            if (x > 0 && best[size_t(i - 1)] % g.w + 1 < g.w) consider(i, best[size_t(i - 1)] + 1);
            if (y > 0 && best[size_t(i - g.w)] / g.w + 1 < g.h) consider(i, best[size_t(i - g.w)] + g.w);
          } else {
            if (x + 1 < g.w && best[size_t(i + 1)] % g.w > 0) consider(i, best[size_t(i + 1)] - 1);
            if (y + 1 < g.h && best[size_t(i + g.w)] / g.w > 0) consider(i, best[size_t(i + g.w)] - g.w);
          }
          // Random search around the current best, radii shrinking by α.
          Rng rng(options.seed, stream(t, i));
          for (Index rad : radii) {
            const Index cy = best[size_t(i)] / g.w, cx = best[size_t(i)] % g.w;
            const Index ny = std::clamp<Index>(cy + Index(rng.below(std::uint64_t(2 * rad + 1))) - rad, 0, g.h - 1);
            const Index nx = std::clamp<Index>(cx + Index(rng.below(std::uint64_t(2 * rad + 1))) - rad, 0, g.w - 1);
            consider(i, ny * g.w + nx);
          }
        }
        fields.push_back(best);
      });
    }

    // ---- Stage 2: the window around j*(i) (+ random keys), softmax on the backend ----
    auto pattern = timedStage(r.cost, options, "pattern", [&] {
      PatternBuilder b(n, n, causal);
      b.add("argmax", [&](Index i, std::vector<Index>& out) { out.push_back(best[size_t(i)]); });
      b.add("argmax window", [&](Index i, std::vector<Index>& out) {
        const Index cy = best[size_t(i)] / g.w, cx = best[size_t(i)] % g.w;
        const Index y0 = std::max<Index>(0, cy - radius), y1 = std::min(g.h - 1, cy + radius);
        const Index x0 = std::max<Index>(0, cx - radius), x1 = std::min(g.w - 1, cx + radius);
        for (Index y = y0; y <= y1; ++y)
          for (Index x = x0; x <= x1; ++x) out.push_back(y * g.w + x);
      });
      if (random_keys > 0)
        b.add("random", [&](Index i, std::vector<Index>& out) {
          Rng rng(options.seed, kRandomKeyStream + std::uint64_t(i));
          const Index visible = causal ? i + 1 : n;
          for (Index k = 0; k < random_keys; ++k) out.push_back(Index(rng.below(std::uint64_t(visible))));
        });
      return std::make_shared<const Pattern>(b.build(options));
    });
    attendPattern(in, pattern, backend, options, r);
    r.cost.scored_pairs += evaluations;
    r.cost.flops += 2 * evaluations * double(d);
    r.cost.peak_bytes += n * Index(sizeof(std::int32_t) + sizeof(float)) +
                         Index(fields.size()) * n * Index(sizeof(std::int32_t));

    // ---- Views: the argmax field per iteration, coloured by whether it is the true argmax ----
    std::vector<std::vector<char>> found;  // per field, per query; empty when N is too large
    if (n <= kMaxExactArgmax) {
      found.assign(fields.size(), std::vector<char>(size_t(n), 0));
      constexpr Index kRows = 256;  // a block of queries at a time, never N×N at once
      for (Index i0 = 0; i0 < n; i0 += kRows) {
        const Index rows = std::min(kRows, n - i0);
        const Matrix s = backend.matmul(in.q.middleRows(i0, rows), in.k, true);
        for (Index rr = 0; rr < rows; ++rr) {
          const Index i = i0 + rr, visible = causal ? i + 1 : n;
          const float top = s.row(rr).head(visible).maxCoeff();
          const float tol = 2e-6f * (1 + std::abs(top));  // float rounding between the two dot products
          for (size_t f = 0; f < fields.size(); ++f) found[f][size_t(i)] = s(rr, fields[f][size_t(i)]) >= top - tol;
        }
        options.checkCancel();
      }
    }
    std::vector<double> recall;
    for (size_t f = 0; f < fields.size(); ++f) {
      Pattern fp;
      fp.rows = fp.cols = n;
      fp.components = found.empty() ? std::vector<std::string>{"current candidate"}
                                    : std::vector<std::string>{"exact argmax found", "current candidate"};
      fp.row_ptr.resize(size_t(n + 1));
      fp.col.resize(size_t(n));
      fp.component.resize(size_t(n));
      Index hits = 0;
      for (Index i = 0; i < n; ++i) {
        fp.row_ptr[size_t(i)] = i;
        fp.col[size_t(i)] = fields[f][size_t(i)];
        const bool hit = !found.empty() && found[f][size_t(i)];
        hits += hit;
        fp.component[size_t(i)] = found.empty() ? 0 : (hit ? 0 : 1);
      }
      fp.row_ptr[size_t(n)] = n;
      if (!found.empty()) recall.push_back(double(hits) / double(n));
      std::string caption =
          f == 0 ? "Every query starts from a random key" + std::string(causal ? " j ≤ i." : ".")
                 : std::string(causal || f % 2 == 1 ? "Forward scan: the keys of the left and up neighbours, "
                                                      "shifted right and down by one pixel"
                                                    : "Backward scan: the keys of the right and down neighbours, "
                                                      "shifted left and up by one pixel") +
                       ", then random search at " + std::to_string(radii.size()) + " radii from " +
                       std::to_string(side) + " pixels down by α = " + fixedDigits(alpha, 2) + ".";
      if (!found.empty()) caption += " " + fixedDigits(100 * recall.back(), 1) + "% of queries hold their exact argmax.";
      r.explanation.steps.push_back(patternStep(f == 0 ? "init" : "iteration " + std::to_string(f), caption, fp));
    }
    {
      auto view = std::make_shared<Explanation>();
      view->pattern = *pattern;
      view->weights = r.explanation.weights;
      r.explanation.steps.push_back(
          Step{"attend", "Softmax over the " + std::to_string(2 * radius + 1) + "×" + std::to_string(2 * radius + 1) +
                             " window around each query's key" +
                             (random_keys > 0 ? " and " + std::to_string(random_keys) + " random keys" : "") +
                             (causal ? ", keys j ≤ i only" : "") + ".",
               view});
    }

    // The final argmax field as H×W maps of the offset from each query pixel to its key.
    Matrix magnitude(g.h, g.w), dx(g.h, g.w), dy(g.h, g.w);
    for (Index i = 0; i < n; ++i) {
      const Index j = best[size_t(i)];
      const float ox = float(j % g.w - i % g.w), oy = float(j / g.w - i / g.w);
      dx(i / g.w, i % g.w) = ox;
      dy(i / g.w, i % g.w) = oy;
      magnitude(i / g.w, i % g.w) = std::sqrt(ox * ox + oy * oy);
    }
    r.explanation.factors.push_back({"argmax offset field", "pixels from each query to the key PatchMatch found "
                                     "(its length; H×W)", std::move(magnitude)});
    r.explanation.factors.push_back({"argmax offset x", "columns from each query to its key (H×W)", std::move(dx)});
    r.explanation.factors.push_back({"argmax offset y", "rows from each query to its key (H×W)", std::move(dy)});

    r.explanation.notes.push_back(gridNote(g, p.integer("width"), in));
    if (asked_random > random_keys)
      r.explanation.notes.push_back("random_keys = " + std::to_string(asked_random) + " counts as N = " +
                                    std::to_string(n) + " draws per query (more would only repeat keys)");
    if (!recall.empty()) {
      std::string line = "argmax recall:";
      for (size_t f = 0; f < recall.size(); ++f)
        line += (f ? " → it" + std::to_string(f) + " " : " init ") + fixedDigits(recall[f], 3);
      r.explanation.notes.push_back(line);
    } else {
      r.explanation.notes.push_back("N > " + std::to_string(kMaxExactArgmax) +
                                    ": the exact argmax (O(N²·d)) is not computed, so no argmax recall");
    }
    r.explanation.notes.push_back(fixedDigits(evaluations / double(std::max<Index>(n, 1)), 1) +
                                  " PatchMatch candidates scored per query");
    return r;
  }
};

}  // namespace
std::shared_ptr<const Mechanism> makeScram() { return std::make_shared<Scram>(); }
}  // namespace attn::mech
