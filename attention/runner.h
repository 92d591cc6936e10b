// One run of a mechanism beside exact attention, as the CLI, the GUI and the default report use it.
#pragma once
#include <memory>
#include <optional>

#include "attention/mechanism.h"

namespace attn {

struct Comparison {
  Inputs inputs;
  std::shared_ptr<const Mechanism> mechanism;
  Params params;
  Result exact;          ///< exact attention (same causal setting), on the same backend
  Result approx;         ///< the mechanism's result
  MatrixD reference;     ///< float64 exact output (CPU), for the error
  double relative_error = 0;  ///< e_out vs the float64 reference
  double row_tv = -1;         ///< mean row TV between implied and exact weights (−1: not computed)
  double mass_recall = -1;    ///< −1 when the mechanism has no pattern
  double exact_ms = 0, approx_ms = 0;  ///< wall time of each run, with what it builds to be seen
  /// The mechanism's time without its display-only stages (Cost::Stage::display_only): what views show.
  double attentionMs() const { return std::max(0.0, approx_ms - approx.cost.display_ms()); }
  std::string backend_name;
  std::string reference_label;  ///< "exact", or "exact (shared-QK)" for Reformer
  /// The inputs exact attention ran on (the mechanism's referenceInputs: e.g. shared-QK for Reformer).
  std::shared_ptr<const Inputs> reference_inputs;
  bool reference_causal = false;
  bool causal = false;            ///< the run was causal (key j ≤ query i)
  bool reused_reference = false;  ///< exact and reference were taken from CompareOptions::reuse
  bool weight_metrics = false;    ///< row_tv and mass_recall were computed (or skipped for a large N)
};

struct CompareOptions {
  RunOptions run;
  bool with_weight_metrics = true;  ///< row TV and mass recall (O(N²) work; skipped above max_metric_n)
  Index max_metric_n = 4096;
  /// An earlier comparison whose exact result and float64 reference are reused when they are the same
  /// computation: identical reference inputs (Q, K, V), causal setting, reference label and backend. Only
  /// the mechanism runs then — what a parameter change in the GUI needs. Anything else: ignored.
  std::shared_ptr<const Comparison> reuse;
  /// false: skip the float64 reference (O(N²·d) on the CPU) and leave relative_error NaN; addReference()
  /// adds it later (the GUI draws first). A reference taken over from `reuse` is used either way.
  bool with_reference = true;
};

/// Runs `mechanism` and exact attention on `inputs` with `backend` and measures the error.
Comparison compare(Inputs inputs, std::shared_ptr<const Mechanism> mechanism, Params params, Backend& backend,
                   const CompareOptions& options);

/// The float64 reference and the relative error of a comparison made with with_reference = false.
void addReference(Comparison& c, const std::atomic<bool>* cancel = nullptr);

/// Row TV and mass recall of a comparison made with with_weight_metrics = false (O(N²): the GUI shows the
/// picture first and adds these after); nothing above max_metric_n.
void addWeightMetrics(Comparison& c, Index max_metric_n = 4096);

/// Float64 reference output of exact attention on the CPU (for errors); Cancelled when `cancel` is set.
MatrixD referenceOutput(const Inputs& inputs, bool causal, const std::atomic<bool>* cancel = nullptr);

/// The approximation-quality metrics of a comparison as words, e.g. "rel. error 3.2e-02".
std::string describeError(const Comparison& c);

}  // namespace attn
