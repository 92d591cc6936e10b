// The N-sweep engine of CATALOG.md §0: a grid of mechanisms × N × backends × seeds. Each point keeps
// the median and spread of the wall time over repeats after a warm-up (plus the device time on a GPU
// backend), the peak bytes measured while it ran (the counting allocator on the CPU, the backend's
// buffer bytes on a GPU), FLOPs and scored pairs from Cost, and the errors against exact attention
// as mean ± std over seeds. Timed and measured runs leave out what is built only to be seen
// (RunOptions::explain = false); one explained run per seed gives the errors. Qt-free and
// Vulkan-free: backends come from a factory the caller gives.
#pragma once
#include <atomic>
#include <cmath>
#include <limits>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/inputs.h"
#include "attention/mechanism.h"

namespace attn {

struct SweepSpec {
  std::vector<std::string> mechanisms;  ///< ids; `exact` is always swept too (the baseline of speed-ups)
  std::vector<Index> ns;                ///< token counts, ascending
  std::vector<std::string> backends{"cpu"};
  int seeds = 3;                        ///< inputs, rotations and features are redrawn per seed
  std::uint64_t first_seed = 1;
  int repeats = 3;                      ///< timed runs per seed, after one warm-up run
  Index d = 64;
  Generator generator = Generator::Clustered;
  double temperature = 1.0;
  /// The generator's other knobs (clusters, noise, length scale, period, heavy hitters, λ: copyKnobs());
  /// N, d, seed, generator and temperature come from the fields above.
  InputSpec knobs;
  bool causal = false;
  /// Scale hyper-parameters with N where the paper does (CATALOG.md §0); otherwise they keep the value
  /// the rule gives at the smallest N.
  bool scale_with_n = true;
  /// Fixed parameter values per mechanism id (they win over the scaling rules).
  std::map<std::string, std::map<std::string, std::string>> params;
  /// Points whose predicted peak exceeds this are skipped and marked; 0: half of the physical memory.
  std::int64_t memory_budget = 0;
  Index max_metric_n = 4096;  ///< row TV and mass recall: over every row up to this N, over a sample of rows above
  std::string preset;         ///< "" or the preset that filled the spec ("lra")
};

/// Mean and standard deviation over seeds (NaN when nothing was measured; std 0 for one seed).
struct Stat {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = std::numeric_limits<double>::quiet_NaN();
  int count = 0;
  static Stat of(const std::vector<double>& values);  ///< NaN and negative (not computed) values left out
};

struct SweepPoint {
  std::string mechanism, backend;
  Index n = 0;
  std::string status = "ok";  ///< "ok", "skipped" (memory budget), "error"
  std::string message;        ///< why skipped or failed
  std::map<std::string, std::string> params;  ///< every parameter value used, as text
  std::vector<std::string> scaled;             ///< parameters set by a scaling rule at this N
  // Time of Mechanism::run (ms): median, quartiles, min and max over seeds × repeats timed runs.
  double time_median = NAN, time_p25 = NAN, time_p75 = NAN, time_min = NAN, time_max = NAN;
  int timed_runs = 0;
  double device_ms = NAN;         ///< median device time (GPU timestamps), NaN on the CPU
  double peak_bytes = NAN;        ///< measured high-water mark above the bytes live before the run
  std::string peak_source;        ///< "heap" (counting allocator), "device buffers", "cost" (estimate)
  double cost_peak_bytes = NAN;   ///< what the mechanism's Cost reports
  double flops = NAN, scored_pairs = NAN;
  bool approximates = true;       ///< false: a different operator (errors are a distance, not an error)
  Stat rel_error, row_tv, mass_recall;  ///< against standard exact attention (the same for every mechanism)
  Stat uniform_error;     ///< e_out of uniform attention on the same inputs: the scale of rel_error
  Index metric_rows = 0;  ///< rows row TV and mass recall averaged over per seed (N, or a sample above max_metric_n)
  std::string own_reference;  ///< the mechanism's own target (Mechanism::ownReference), "" when none
  Stat own_rel_error;         ///< e_out against it
  std::map<std::string, double> stages_ms;  ///< median time of each Cost stage (a run's own breakdown)
  std::vector<std::string> notes;
};

struct SweepResult {
  SweepSpec spec;
  std::vector<SweepPoint> points;
  bool complete = false;   ///< false when cancelled (points holds every finished point)
  double seconds = 0;      ///< wall time of the sweep
  std::string started;     ///< UTC time stamp, ISO 8601
  nlohmann::json machine;  ///< filled by the caller (CPU, GPU, driver, versions, build type)
  std::string command;     ///< the command line that made it (filled by the caller), for reports
  const SweepPoint* find(const std::string& mechanism, const std::string& backend, Index n) const;
};

struct SweepProgress {
  int points_done = 0, points_total = 0;
  double work_done = 0, work_total = 0;  ///< in units of N^1.5 per seed × run, for the ETA
  double elapsed_s = 0;
  std::string current;   ///< "performer N=4096 cpu seed 2"
  double etaSeconds() const;  ///< NaN until something finished
};

using BackendFactory = std::function<Backend&(const std::string& name)>;
using ProgressCallback = std::function<void(const SweepProgress&, const SweepPoint* finished)>;

/// Runs the sweep. A cancel (the flag set) ends it after the run in progress, keeping every finished
/// point (result.complete = false). UserError for an invalid spec (unknown id, bad N list).
SweepResult runSweep(const SweepSpec& spec, const BackendFactory& backend_for, const ProgressCallback& progress = {},
                     const std::atomic<bool>* cancel = nullptr);

/// The parameters of `mechanism` at N under the §0 scaling rules and the spec's fixed values; the
/// names set by a rule are appended to `scaled`.
std::map<std::string, std::string> sweepParams(const SweepSpec& spec, const std::string& mechanism, Index n,
                                               std::vector<std::string>* scaled = nullptr);
/// One line per scaling rule, for reports ("sparse-transformer: stride = ⌈√N⌉"), then the teaching
/// extras a sweep turns off (Linformer's spectrum of A*, Synthesizer's fitted stand-in).
std::vector<std::string> scalingRules();

/// "256:16384" → every power of two from 256 to 16384; "256,384,512" → that list (sorted, unique).
std::vector<Index> parseTokenCounts(const std::string& text);

/// The Long Range Arena efficiency preset: Transformer, Local, Linformer, Reformer, Sinkhorn,
/// Synthesizer, BigBird, Linear Transformer and Performer at N = 1K, 2K, 3K, 4K.
SweepSpec lraPreset();
/// A row of LRA's published efficiency table (Tay et al. 2021, Table 2: byte-level text, batch 32,
/// 4×4 TPU v3, whole training steps): steps per second and peak memory per device at 1K, 2K, 3K, 4K.
struct LraRow {
  std::string label;      ///< "Local Attention"
  std::string mechanism;  ///< our id
  std::map<std::string, std::string> params;  ///< our stand-in's settings ("globals" = 0 for Local)
  double steps_per_s[4];
  double memory_gb[4];
};
const std::vector<LraRow>& lraPublished();

/// The exponent of N in a catalog complexity string (its time term): 2 for O(N²·d) and O(N·(N/c)·d),
/// 1.5 for O(N·√N·d) and O(N^1.5·d), 1 for O(N·w·d) and O(N·log N·d) (log factors are left out). Of
/// alternatives ("…) banded, O(…) dense") the first counts; of a sum, the largest term; a cost per
/// segment without N ("O(n_s·(n_s + k)·d) per segment") is linear.
double complexitySlope(const std::string& complexity);

/// Least-squares slope of log(y) on log(x) over the points with y > 0 (NaN with fewer than two).
double logLogSlope(const std::vector<double>& x, const std::vector<double>& y);
/// The growth at large N: logLogSlope over the `points` largest x with y > 0 (all of them when there are
/// fewer). At small N fixed costs (dispatch, allocation, threads) flatten a curve; the slope a paper
/// claims is about large N. x need not be sorted.
constexpr int k_slope_points = 4;
double largeNSlope(const std::vector<double>& x, const std::vector<double>& y, int points = k_slope_points);
/// The N where `mechanism`'s median time first drops below exact's and stays below (linear interpolation
/// in log-log between the two bracketing N); NaN when it never does, −inf when it is faster at every N.
double crossoverN(const SweepResult& r, const std::string& mechanism, const std::string& backend);

nlohmann::json toJson(const SweepResult& r);
/// Parses results.json; UserError naming what is missing or malformed.
SweepResult sweepFromJson(const nlohmann::json& j);
/// One row per point, header first; the columns are sweepCsvColumns().
std::string toCsv(const SweepResult& r);
const std::vector<std::string>& sweepCsvColumns();

}  // namespace attn
