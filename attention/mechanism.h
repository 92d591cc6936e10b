// A mechanism of the catalog: its facts, its parameters, and run(). One file per mechanism in
// attention/mechanisms/, registered by its CATALOG.md id in registry.cpp.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/explanation.h"
#include "attention/inputs.h"
#include "attention/params.h"

namespace attn {

enum class Family { Reference, FixedSparse, ContentSparse, LowRankKernel, Memory, Vision, NonPairwise };
std::string familyName(Family f);  ///< "F1 Fixed / structured sparse patterns", ...
std::string familyShort(Family f); ///< "F1", ...

enum class CausalSupport { No, Yes, Native };  ///< Native: the mechanism is causal by construction

struct MechanismInfo {
  std::string id;          ///< CATALOG.md id: "longformer"
  std::string title;       ///< "Longformer"
  std::string paper;       ///< "Beltagy, Peters, Cohan. Longformer: The Long-Document Transformer"
  std::string arxiv;       ///< "2004.05150"
  int year = 0;
  Family family = Family::Reference;
  std::string complexity;  ///< "O(N·(w+g)·d)"
  CausalSupport causal = CausalSupport::No;
  std::string idea;        ///< one line
  std::string stand_ins;   ///< what replaces learned weights, or "" when nothing is learned
  /// The rule (one for every mechanism, checked by Truth.ApproximationRule for each): true exactly when
  /// Mechanism::exactLimit names a setting of the parameters at which the mechanism reproduces softmax
  /// attention of its reference inputs (a window ≥ N, every token a landmark, one bucket, m → ∞ random
  /// features). false: a different operator; its headline error is "N/A — a different operator" and its
  /// distance from softmax attention is shown only as that, labelled.
  bool approximates_softmax = true;
  /// Where attnlab departs from the paper or from the authors' code, one line each ("logits q·k̂/√d as in
  /// the paper's equations; the trax code uses q·k̂"). Shown on the info card, by `attnlab list` and in
  /// figure footers.
  std::vector<std::string> conventions;
  /// The output is linear in V for fixed Q and K (out(cV) = c·out(V)): true of every mechanism whose weights
  /// come from Q and K alone. The runner then computes with V scaled by a power of two when V's values are
  /// huge (exact in floating point) and scales the output back, so a finite true output stays finite.
  /// Checked for every mechanism by Numbers.OutputIsLinearInValuesWhereTheMechanismSaysSo.
  bool linear_in_values = true;
  /// The output is a weighted sum of values, out = A_eff·V with A_eff from Q and K, so Explanation::weights
  /// holds A_eff (every pairwise mechanism). false for the gating modules (CBAM, tensor low-rank, FracTAL):
  /// they multiply V elementwise by gates and imply no N×N matrix; their weights stay empty and
  /// Explanation::weights_withheld says why, and they are shown as maps over the picture instead.
  bool implies_weights = true;
};

/// A setting of a mechanism's parameters at which it reproduces softmax attention of its reference
/// inputs (Mechanism::exactLimit): the relative output error there is at most `tolerance` (1e-4 for an
/// exact identity; larger for an unbiased estimator, whose limit is m → ∞ and is checked at a large m).
struct ExactLimit {
  std::map<std::string, std::string> settings;  ///< NAME=VALUE, as `--set`; the rest keep their defaults
  double tolerance = 1e-4;
  std::string description;                      ///< "every token is a landmark (m = N)", shown to users; the same
                                                ///< words for any input (settings may depend on N)
  /// The check scales q and k by this (1: the inputs as they are). A random-feature estimator's error at a
  /// finite m grows like √(exp(‖q + k‖²/√d)/m) (Performer, Lemma 2): on peaked inputs no m a run can afford
  /// comes near, so its limit is checked on the same tokens with smaller logits, and `description` says so.
  double input_scale = 1;
};

/// Cost of one run: scored pairs, FLOPs (theoretical), peak bytes, time per stage.
struct Cost {
  double scored_pairs = 0;
  double flops = 0;
  Index peak_bytes = 0;
  struct Stage {
    std::string name;
    double ms = 0;
    /// Built only to be seen (RunOptions::explain): a spectrum, a V = I probe. Not the attention's time.
    bool display_only = false;
  };
  std::vector<Stage> stages;
  double total_ms() const;
  double display_ms() const;  ///< the display-only stages' time
};

/// Where a long run says how far it is (the CLI's progress line, the window's status bar): the stage's name
/// and the fraction of it done, 0…1. Called on the running thread, between blocks of work.
using ProgressFn = std::function<void(const std::string& stage, double fraction)>;

struct RunOptions {
  bool causal = false;
  std::uint64_t seed = 1;                       ///< for random rotations, features, blocks
  const std::atomic<bool>* cancel = nullptr;    ///< polled between stages; throws Cancelled
  /// false: the output and Cost are all that is needed (sweeps time runs this way), so a mechanism may
  /// leave out what it builds only to be seen: steps, reach patterns, effective matrices formed for
  /// display. The output must be bit-identical either way.
  bool explain = true;
  const ProgressFn* progress = nullptr;  ///< optional: told how far long stages are
  void checkCancel() const {
    if (cancel && cancel->load()) throw Cancelled();
  }
  void report(const std::string& stage, double fraction) const {
    if (progress && *progress) (*progress)(stage, fraction);
  }
};

/// The shape of a run: N queries, M keys, head size d of queries and keys, dv of values.
struct RunShape {
  Index n = 0, m = 0, d = 0, dv = 0;
  static RunShape of(const Inputs& inputs);
};

/// One part of what a run holds at its peak: bytes, what it is in words ("the window scores (window × heads × N
/// entries)"), and the --set name of the parameter that drives it ("" when only the shape does: N itself).
struct MemoryTerm {
  double bytes = 0;
  std::string what;
  std::string parameter;
  /// What to change, when more than lowering `parameter` ("lower window (the sequence is covered at window =
  /// 32768) or heads"); "" = "lower PARAMETER", or a smaller N when no parameter drives it.
  std::string advice;
};

/// What a run will allocate and compute, predicted from its shape and parameters before anything is
/// allocated (Mechanism::plan; checked against the memory budget by attention/plan.h).
struct RunPlan {
  std::vector<MemoryTerm> terms;  ///< together: the heap peak of Mechanism::run on the CPU, at most
  double flops = 0;               ///< the theoretical count the run reports in Cost::flops
  /// Keys of the exact attention the mechanism is measured against (Mechanism::referenceInputs): −1, the
  /// inputs' M; a memory layer's slots otherwise.
  Index reference_keys = -1;
  std::string reference_parameter;  ///< the parameter that sets reference_keys ("n": n² slots)
  bool own_reference = false;       ///< Mechanism::ownReference gives a second target (same shape as the inputs)
  double bytes() const;
  RunPlan& add(double bytes, std::string what, std::string parameter = {}, std::string advice = {});
  /// The largest term (nullptr when there is none).
  const MemoryTerm* largest() const;
};

struct Result {
  Matrix output;  ///< N×dv
  Explanation explanation;
  Cost cost;
};

class Mechanism {
 public:
  virtual ~Mechanism() = default;
  virtual const MechanismInfo& info() const = 0;
  virtual std::vector<ParamSpec> params() const = 0;
  /// Runs on `backend`. UserError for parameter values that cannot work with these inputs (say, more
  /// landmarks than tokens) with a message that says what to change; Cancelled when cancelled.
  virtual Result run(const Inputs& inputs, const Params& params, Backend& backend,
                     const RunOptions& options) const = 0;
  /// The inputs of the standard exact attention this mechanism is measured against: the inputs
  /// themselves, for every mechanism whose keys are the tokens. A memory layer's keys are its slots
  /// (product-key memory: softmax over all n² product keys), so its reference is over those.
  virtual Inputs referenceInputs(const Inputs& inputs, const Params& /*params*/) const { return inputs; }
  /// The mechanism's own target when it approximates a variant of standard attention on the same tokens
  /// (Reformer: shared-QK keys with no self-attention; RFA: unit-norm q, k at temperature σ²). Its error
  /// against this is a second, labelled figure; the headline is against standard exact attention, the
  /// same for every mechanism. nullopt: no own target. exactLimit reproduces this one when it exists.
  struct OwnReference {
    Inputs inputs;
    std::string label;  ///< "exact (shared-QK, no self)"
  };
  virtual std::optional<OwnReference> ownReference(const Inputs& /*inputs*/, const Params& /*params*/) const {
    return std::nullopt;
  }
  /// Whether the reference is causal-masked in a causal run: yes, except where its keys are memory slots
  /// rather than tokens (product-key memory: a slot has no position, so j ≤ i means nothing there). The
  /// mechanism's own output must ignore later tokens in a causal run either way.
  virtual bool referenceIsCausal(bool causal) const { return causal; }
  /// How the reference is named in views ("exact", "exact (shared-QK)").
  virtual std::string referenceLabel(const Params& /*params*/) const { return "exact"; }
  /// Where this mechanism becomes exact softmax attention on `inputs` (MechanismInfo::approximates_softmax):
  /// of its own reference when it has one, else of referenceInputs. nullopt for a different operator.
  virtual std::optional<ExactLimit> exactLimit(const Inputs& /*inputs*/) const { return std::nullopt; }
  /// What run() will allocate and compute at this shape, before anything is allocated (attention/plan.cpp
  /// checks it against the memory budget). The default: the output, and the copies of Q and K that factored
  /// implied weights hold. Every mechanism whose memory grows with its parameters, or faster than N·d,
  /// overrides it, naming the parameter of each term; parameters whose effect saturates (a window wider than
  /// the sequence) are counted as run() clamps them.
  virtual RunPlan plan(const RunShape& shape, const Params& params, const RunOptions& options) const;
};

/// Milliseconds since `start` (steady clock), for Cost stages.
double millisecondsSince(std::chrono::steady_clock::time_point start);

/// Every registered mechanism, in catalog order (exact first).
const std::vector<std::shared_ptr<const Mechanism>>& mechanisms();
/// Every registered mechanism by family, as people browse them (the GUI's browser and Compare menu): families in
/// enum order (Reference first), catalog order within each.
std::vector<std::shared_ptr<const Mechanism>> mechanismsByFamily();
/// The mechanism with this id, or nullptr.
std::shared_ptr<const Mechanism> findMechanism(const std::string& id);
/// Same, but UserError listing the known ids when unknown.
std::shared_ptr<const Mechanism> requireMechanism(const std::string& id);

/// The approximation rule in words, for info cards and `attnlab list`: "approximates softmax attention; exact
/// when a window covering the sequence (w ≥ 2N)", or "a different operator: …".
std::string describeRelation(const Mechanism& m);
/// ExactLimit::description of `m` ("" for a different operator).
std::string describeExactLimit(const Mechanism& m);

}  // namespace attn
