#include "attention/plan.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

namespace attn {

RunShape RunShape::of(const Inputs& inputs) { return {inputs.n(), inputs.m(), inputs.q.cols(), inputs.v.cols()}; }

double RunPlan::bytes() const {
  double total = 0;
  for (const MemoryTerm& t : terms) total += t.bytes;
  return total;
}

RunPlan& RunPlan::add(double bytes, std::string what, std::string parameter, std::string advice) {
  terms.push_back({bytes, std::move(what), std::move(parameter), std::move(advice)});
  return *this;
}

const MemoryTerm* RunPlan::largest() const {
  const MemoryTerm* best = nullptr;
  for (const MemoryTerm& t : terms)
    if (!best || t.bytes > best->bytes) best = &t;
  return best;
}

namespace {
constexpr double kFloat = sizeof(float), kDouble = sizeof(double);

std::string gigabytes(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g GB", bytes * 1e-9);
  return buf;
}

double threads() { return std::max(1u, std::thread::hardware_concurrency()); }
}  // namespace

std::int64_t physicalMemory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? std::int64_t(pages) * size : (std::int64_t(8) << 30);
}

std::int64_t defaultMemoryBudget() { return physicalMemory() / 2; }

std::int64_t memoryBudgetFromGb(double gb, const std::string& option) {
  char given[64];
  std::snprintf(given, sizeof given, "%g", gb);
  if (!std::isfinite(gb) || gb <= 0)
    throw UserError(option + " takes a positive number of GB (for example " + option + " 4), not " + given);
  const double physical = double(physicalMemory());
  if (gb * 1e9 > physical)
    throw UserError(option + " " + given + " is more than this machine's " + gigabytes(physical) +
                    " of memory; give at most " + gigabytes(physical).substr(0, gigabytes(physical).size() - 3));
  return std::max<std::int64_t>(1, std::int64_t(gb * 1e9));
}

double patternBytes(double entries, double rows) {
  // Columns (int32) and component tags (byte), plus the row offsets.
  return entries * (sizeof(std::int32_t) + 1) + (rows + 1) * sizeof(Index);
}

double sparseWorkspaceBytes(double keys, const RunShape& s) {
  // Per thread: the gathered keys and values of a row group and its logits (up to 64 rows).
  return threads() * keys * (double(s.d + s.dv) + 64) * kFloat;
}

// The default: the output, and the copies of Q and K that factored implied weights hold.
RunPlan Mechanism::plan(const RunShape& s, const Params& /*params*/, const RunOptions& /*options*/) const {
  RunPlan p;
  p.add(double(s.n * s.dv) * kFloat, "the output (N × dv floats)");
  p.add(double((s.n + s.m) * s.d) * kFloat, "the implied weights' copies of Q and K");
  p.flops = 2.0 * double(s.n) * double(s.m) * double(s.d + s.dv);
  return p;
}

RunPlan comparisonPlan(const Mechanism& mechanism, const RunShape& s, const Params& params, const RunOptions& options,
                       bool with_reference) {
  const RunPlan own = mechanism.plan(s, params, options);
  RunShape ref = s;
  if (own.reference_keys >= 0) ref.m = own.reference_keys;
  const auto exact = requireMechanism("exact");
  const Params exact_params = Params::resolve(exact->params(), {});
  const std::string& title = mechanism.info().title;
  RunPlan p;
  p.flops = own.flops;
  const double inputs = double(s.n * s.d + s.m * (s.d + s.dv)) * kFloat;
  const double ref_inputs = double(ref.n * ref.d + ref.m * (ref.d + ref.dv)) * kFloat;
  // Terms of the reference that grow with a memory layer's slots blame the parameter that sets them.
  const std::string ref_param = own.reference_keys >= 0 ? own.reference_parameter : std::string();
  p.add(inputs, "the inputs Q, K, V");
  p.add(2 * ref_inputs, "the exact reference's inputs (twice)", ref_param);
  for (const MemoryTerm& t : exact->plan(ref, exact_params, options).terms)
    p.add(t.bytes, "exact attention's " + t.what, ref_param);
  if (own.own_reference) {
    p.add(inputs, "the inputs of " + title + "'s own target");
    for (const MemoryTerm& t : exact->plan(s, exact_params, options).terms)
      p.add(t.bytes, "exact attention on its own target: " + t.what);
  }
  for (const MemoryTerm& t : own.terms) p.add(t.bytes, t.what, t.parameter, t.advice);
  if (with_reference) {
    // referenceOutput: K and V in double, the output in double, 32 rows of logits per thread.
    const double reference =
        double(ref.m * (ref.d + ref.dv) + ref.n * ref.dv) * kDouble + threads() * 32 * double(ref.m) * kDouble;
    p.add(reference, "the float64 reference (K, V and the output in double)", ref_param);
    if (own.own_reference)
      p.add(double(s.m * (s.d + s.dv) + s.n * s.dv) * kDouble, "the float64 output of its own target");
  }
  // Row TV and mass recall: bands of 64 rows of both weight matrices (float and double).
  p.add(64 * double(ref.m) * (kFloat + 2 * kDouble), "the weight metrics' row bands", ref_param);
  return p;
}

std::string memoryRefusal(const Mechanism& mechanism, const RunShape& s, const RunPlan& plan, std::int64_t budget) {
  const bool given = budget > 0;
  if (!given) budget = defaultMemoryBudget();
  const double need = plan.bytes();
  if (!(need > double(budget))) return {};
  const MemoryTerm* worst = plan.largest();
  std::string message = mechanism.info().title + " at N = " + std::to_string(s.n) + " would need ≈ " + gigabytes(need) +
                        ", over the memory budget of " + gigabytes(double(budget));
  if (!given) message += " (half of this machine's " + gigabytes(double(physicalMemory())) + ")";
  if (worst) {
    message += ": " + worst->what + " ≈ " + gigabytes(worst->bytes) + " — ";
    if (!worst->advice.empty())
      message += worst->advice;
    else if (!worst->parameter.empty())
      message += "lower " + worst->parameter;
    else
      message += "try a smaller N";
  }
  return message;
}

void checkMemory(const Mechanism& mechanism, const RunShape& s, const RunPlan& plan, std::int64_t budget) {
  if (std::string refusal = memoryRefusal(mechanism, s, plan, budget); !refusal.empty()) throw UserError(refusal);
}

void checkComparisonMemory(const Mechanism& mechanism, const RunShape& shape, const Params& params,
                           const RunOptions& options, std::int64_t budget, bool with_reference) {
  checkMemory(mechanism, shape, comparisonPlan(mechanism, shape, params, options, with_reference), budget);
}

}  // namespace attn
