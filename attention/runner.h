// One run of a mechanism beside exact attention, as the CLI, the GUI and the default report use it.
#pragma once
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/mechanism.h"

namespace attn {

struct Comparison {
  Inputs inputs;
  std::shared_ptr<const Mechanism> mechanism;
  Params params;
  Result exact;          ///< exact attention (same causal setting), on the same backend
  Result approx;         ///< the mechanism's result
  MatrixD reference;     ///< float64 exact output (CPU), for the error
  // The headline figures, against standard exact attention of the inputs (referenceInputs: the inputs
  // themselves, or a memory layer's slots), the same reference for every mechanism.
  double relative_error = 0;  ///< e_out vs the float64 reference
  double row_tv = -1;         ///< mean row TV between implied and exact weights (−1: not computed)
  double mass_recall = -1;    ///< −1 when the mechanism has no pattern
  /// e_out of uniform attention on the same inputs (NaN until the reference exists): the scale e_out reads on.
  double uniform_error = std::numeric_limits<double>::quiet_NaN();
  /// The rows row TV and mass recall are averaged over: N, or an even sample of bands above max_metric_n.
  Index metric_rows = 0;
  /// The mechanism's own target (Mechanism::ownReference: Reformer's shared-QK, RFA's unit q, k), a second,
  /// labelled figure beside the headline.
  struct Own {
    std::string label;
    std::shared_ptr<const Inputs> inputs;
    MatrixD reference;       ///< float64 exact output on those inputs (empty until computed)
    ImpliedWeights weights;  ///< exact weights on those inputs
    double relative_error = std::numeric_limits<double>::quiet_NaN();
    double row_tv = -1;
    double mass_recall = -1;
  };
  std::optional<Own> own;
  double exact_ms = 0, approx_ms = 0;  ///< wall time of each run, with what it builds to be seen
  /// How many runs each time is the median of: 1 for compare()'s own single run, more after measureTimes().
  int exact_runs = 1, approx_runs = 1;
  /// The mechanism's time without its display-only stages (Cost::Stage::display_only): what views show.
  double attentionMs() const { return std::max(0.0, approx_ms - approx.cost.display_ms()); }
  std::string backend_name;
  std::string reference_label;  ///< "exact", or a memory layer's "exact (softmax over all n² keys)"
  /// The inputs exact attention ran on (the mechanism's referenceInputs: the inputs, or a memory's slots).
  std::shared_ptr<const Inputs> reference_inputs;
  bool reference_causal = false;
  bool causal = false;            ///< the run was causal (key j ≤ query i)
  bool reused_reference = false;  ///< exact and reference were taken from CompareOptions::reuse
  bool weight_metrics = false;    ///< row_tv and mass_recall were computed (or skipped for a large N)
};

struct CompareOptions {
  RunOptions run;
  bool with_weight_metrics = true;  ///< row TV and mass recall (O(N²) work up to max_metric_n, sampled above)
  Index max_metric_n = 4096;
  /// An earlier comparison whose exact result and float64 reference are reused when they are the same
  /// computation: identical reference inputs (Q, K, V), causal setting, reference label and backend. Only
  /// the mechanism runs then — what a parameter change in the GUI needs. Anything else: ignored.
  std::shared_ptr<const Comparison> reuse;
  /// false: skip the float64 reference (O(N²·d) on the CPU) and leave relative_error NaN; addReference()
  /// adds it later (the GUI draws first). A reference taken over from `reuse` is used either way.
  bool with_reference = true;
  /// Bytes the comparison may allocate, predicted before anything is (attention/plan.h); more: UserError
  /// naming the parameter to blame. 0: half the physical memory.
  std::int64_t memory_budget = 0;
};

/// Runs `mechanism` and exact attention on `inputs` with `backend` and measures the error.
Comparison compare(Inputs inputs, std::shared_ptr<const Mechanism> mechanism, Params params, Backend& backend,
                   const CompareOptions& options);

/// The float64 reference and the relative error of a comparison made with with_reference = false.
void addReference(Comparison& c, const std::atomic<bool>* cancel = nullptr, const ProgressFn* progress = nullptr);

/// Row TV and mass recall of a comparison made with with_weight_metrics = false (O(N²): the GUI shows the
/// picture first and adds these after): over every row up to max_metric_n, over metricRows' sample above.
void addWeightMetrics(Comparison& c, Index max_metric_n = 4096);

/// A mechanism run beside another on the same inputs (compare mode): its comparison, or why it could not run
/// (then `comparison` may still hold the run when only its late metrics failed).
struct Companion {
  std::string id;
  std::shared_ptr<const Comparison> comparison;
  std::string error;
};
struct CompanionSpec {
  std::shared_ptr<const Mechanism> mechanism;
  Params params;
};
/// Compare mode: runs each mechanism on `main`'s inputs, reusing its exact result and float64 reference when
/// they are the same computation (CompareOptions::reuse = main). A failure (bad parameters, out of memory)
/// stays in its own entry; Cancelled propagates.
std::vector<Companion> compareCompanions(const std::shared_ptr<const Comparison>& main,
                                         const std::vector<CompanionSpec>& others, Backend& backend,
                                         CompareOptions options);

/// How measureTimes() times a comparison again: `repeats` runs of each (exact attention and the mechanism,
/// alternately), as long as all of them fit in `budget_ms` judged by the times already measured; fewer than
/// `min_repeats` would fit: no run (the single time stays, and says so through Comparison::exact_runs).
struct TimingOptions {
  int repeats = 5;
  int min_repeats = 3;
  double budget_ms = 1000;
  bool exact = true;  ///< false: only the mechanism (compare mode's others share the main comparison's exact)
};
/// Medians of the runs measureTimes() made (runs 0: that one was not run again).
struct Timing {
  double exact_ms = 0, approx_ms = 0;
  int exact_runs = 0, approx_runs = 0;
};
/// The times `attnlab run` reports and the window shows: exact attention and the mechanism of `c` run again on
/// the same inputs, parameters and backend (`run`: its causal setting, seed and cancel flag), the median of
/// each. One cold run is not what a user can trust: it pays the first touch of its memory, and in the window
/// it shared the cores with the viewport drawing; the median of a few warm runs with nothing else running does
/// not. Cancelled when run.cancel is set.
Timing measureTimes(const Comparison& c, Backend& backend, const RunOptions& run, const TimingOptions& options = {});
/// Puts what `t` measured into `c` (times and run counts); what it did not measure stays.
void applyTiming(Comparison& c, const Timing& t);
/// How a comparison's times were measured, for captions and reports: "median of 5 runs", or "a single run".
std::string describeTiming(const Comparison& c);

/// true while a comparison lacks its late metrics (the float64 reference, row TV, mass recall).
bool metricsPending(const Comparison& c);
/// The late metrics of a comparison made without them (the GUI draws first), as a completed copy; the float64
/// reference is taken from `share` when it is the same computation (compare mode's others share main's).
/// Cancelled when `cancel` is set.
std::shared_ptr<const Comparison> completeMetrics(const std::shared_ptr<const Comparison>& c, const Comparison* share,
                                                  const std::atomic<bool>* cancel = nullptr);
/// Completes main and every companion that ran; a companion's failure here goes to its `error`.
void completeMetrics(std::shared_ptr<const Comparison>& main, std::vector<Companion>& others,
                     const std::atomic<bool>* cancel = nullptr);

/// Seconds compare() is predicted to take: exact attention's O(N·M·(d+dv)) work and the mechanism's predicted
/// FLOPs at the backend's measured speed, plus the float64 reference at the CPU's (each speed measured once per
/// backend and head size on a 512×1024 run, a few milliseconds). For saying before a long run starts how long it
/// will be; within a factor of about two.
double predictCompareSeconds(Index n, Index m, Index d, Index dv, bool causal, double mechanism_flops, Backend& backend,
                             bool with_reference = true);
/// The same for `mechanism` with `params` on `inputs`: its FLOPs from Mechanism::plan (0 when the plan refuses
/// the parameters; compare() then says why).
double predictCompareSeconds(const Inputs& inputs, const Mechanism& mechanism, const Params& params,
                             const RunOptions& options, Backend& backend, bool with_reference = true);

/// The inputs in one line, the one description every view uses: "clustered input, N = 256, d = 64, seed 1"
/// (a file's name instead of the generator; the generator's knobs after it; ", causal" when causal).
std::string describeInputs(const InputSpec& spec, Index n, Index d, bool causal);
/// Why a comparison's mechanism shows no weight picture: its size limit when it withheld them
/// ("Fast weight programmers: … is formed up to N = 4096"), else that it implies no N×N matrix.
std::string noWeightsText(const Comparison& c);

/// Float64 reference output of exact attention on the CPU (for errors); Cancelled when `cancel` is set.
MatrixD referenceOutput(const Inputs& inputs, bool causal, const std::atomic<bool>* cancel = nullptr,
                        const ProgressFn* progress = nullptr);

/// The approximation-quality figures of a comparison as lines, headline first, each a figure with its meaning:
///   "misplaced 23.1 % (row TV)"                      where implied weights exist (bounded, [0, 100] %)
///   "e_out 3.2 vs exact (uniform attention 2.9)"     always, with its scale
///   "mass recall 0.812"                              where a pattern exists
///   "vs its own target, exact (shared-QK, no self):", then "e_out 0.1 · misplaced 5 %"   (two lines)
/// A different operator: "N/A — a different operator", then its distance from softmax, labelled as such.
std::vector<std::string> describeMetrics(const Comparison& c);
/// describeMetrics on one line: joined by ", ", or by " " after a line that ends in ':'.
std::string describeError(const Comparison& c);
/// The headline alone (the first line of describeMetrics).
std::string describeHeadline(const Comparison& c);
/// The headline in a few words, for titles: "misplaced 23.1 %", "e_out 0.12", "N/A (a different operator)",
/// "—" while it is being computed.
std::string describeHeadlineShort(const Comparison& c);

}  // namespace attn
