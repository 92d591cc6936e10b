// A mechanism of the catalog: its facts, its parameters, and run(). One file per mechanism in
// attention/mechanisms/, registered by its CATALOG.md id in registry.cpp.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
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
  bool approximates_softmax = true;  ///< false: a different operator (error shown as N/A)
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

struct RunOptions {
  bool causal = false;
  std::uint64_t seed = 1;                       ///< for random rotations, features, blocks
  const std::atomic<bool>* cancel = nullptr;    ///< polled between stages; throws Cancelled
  /// false: the output and Cost are all that is needed (sweeps time runs this way), so a mechanism may
  /// leave out what it builds only to be seen: steps, reach patterns, effective matrices formed for
  /// display. The output must be bit-identical either way.
  bool explain = true;
  void checkCancel() const {
    if (cancel && cancel->load()) throw Cancelled();
  }
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
  /// The inputs of the exact attention this mechanism approximates. Usually the inputs themselves;
  /// Reformer's shared-QK attention approximates softmax with keys = unit-normalised queries.
  virtual Inputs referenceInputs(const Inputs& inputs, const Params& /*params*/) const { return inputs; }
  /// Whether the reference is causal-masked in a causal run: yes, except where its keys are memory slots
  /// rather than tokens (product-key memory: a slot has no position, so j ≤ i means nothing there). The
  /// mechanism's own output must ignore later tokens in a causal run either way.
  virtual bool referenceIsCausal(bool causal) const { return causal; }
  /// How the reference is named in views ("exact", "exact (shared-QK)").
  virtual std::string referenceLabel(const Params& /*params*/) const { return "exact"; }
};

/// Milliseconds since `start` (steady clock), for Cost stages.
double millisecondsSince(std::chrono::steady_clock::time_point start);

/// Every registered mechanism, in catalog order (exact first).
const std::vector<std::shared_ptr<const Mechanism>>& mechanisms();
/// The mechanism with this id, or nullptr.
std::shared_ptr<const Mechanism> findMechanism(const std::string& id);
/// Same, but UserError listing the known ids when unknown.
std::shared_ptr<const Mechanism> requireMechanism(const std::string& id);

}  // namespace attn
