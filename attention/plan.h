// Memory guards: what a comparison will allocate, predicted from its shape and parameters before anything is
// allocated (Mechanism::plan of the mechanism and of the exact attention it is measured against), checked
// against the memory budget. What exceeds it is refused with a UserError that names the mechanism, N, the
// predicted size, the budget, and the term of the plan to blame with the parameter to change.
#pragma once
#include <cstdint>
#include <string>

#include "attention/mechanism.h"

namespace attn {

/// Physical memory of this machine, bytes (8 GiB when the system does not say).
std::int64_t physicalMemory();
/// The budget when none is given: half the physical memory.
std::int64_t defaultMemoryBudget();
/// A budget given in GB (--memory-budget) as bytes: UserError naming `option` for anything but a positive,
/// finite number of GB at most the machine's physical memory (which the message gives).
std::int64_t memoryBudgetFromGb(double gb, const std::string& option = "--memory-budget");

// ---- building blocks of the plans (bytes) ----
/// A CSR pattern of `entries` pairs over `rows` rows (column, component tag, row offsets).
double patternBytes(double entries, double rows);
/// The per-thread working rows of Backend::sparseAttention on the CPU for rows of up to `keys` keys.
double sparseWorkspaceBytes(double keys, const RunShape& shape);

/// What attn::compare allocates for `mechanism` at `shape`: the inputs and the reference inputs, exact
/// attention on them, the mechanism's own target if it has one, the mechanism's run, the float64 reference
/// output (with_reference) and the weight metrics' bands.
RunPlan comparisonPlan(const Mechanism& mechanism, const RunShape& shape, const Params& params,
                       const RunOptions& options, bool with_reference = true);

/// Why `plan` does not fit in `budget` bytes (0: defaultMemoryBudget()), or "" when it fits: the message
/// checkMemory throws.
std::string memoryRefusal(const Mechanism& mechanism, const RunShape& shape, const RunPlan& plan, std::int64_t budget);

/// UserError when `plan` needs more than `budget` bytes (0: defaultMemoryBudget()): "Longformer at N = 16384
/// would need ≈ 17 GB, over the memory budget of 12 GB: the window scores (…) — lower window …".
void checkMemory(const Mechanism& mechanism, const RunShape& shape, const RunPlan& plan, std::int64_t budget);

/// comparisonPlan, then checkMemory: what attn::compare and runSweep call before allocating.
void checkComparisonMemory(const Mechanism& mechanism, const RunShape& shape, const Params& params,
                           const RunOptions& options, std::int64_t budget, bool with_reference = true);

}  // namespace attn
