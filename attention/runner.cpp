#include "attention/runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>

#include "attention/metrics.h"
#include "attention/parallel.h"

namespace attn {

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

MatrixD referenceOutput(const Inputs& inputs, bool causal, const std::atomic<bool>* cancel) {
  // In blocks of rows (each block's queries sit at key positions i0 + i), so a cancel takes effect
  // within one block even at large N.
  const Index n = inputs.n();
  const Index block = std::max<Index>(64, (Index(1) << 24) / std::max<Index>(inputs.m(), 1));
  const MatrixD k = inputs.k.cast<double>(), v = inputs.v.cast<double>();
  MatrixD out(n, inputs.v.cols());
  for (Index i0 = 0; i0 < n; i0 += block) {
    if (cancel && cancel->load()) throw Cancelled();
    const Index rows = std::min(block, n - i0);
    DenseAttentionOptions o;
    o.causal = causal;
    o.causal_offset = i0;
    o.mask_self = inputs.mask_self;
    out.middleRows(i0, rows) = referenceAttention(inputs.q.middleRows(i0, rows).cast<double>(), k, v, o);
  }
  return out;
}

namespace {
bool same(const Matrix& a, const Matrix& b) { return a.rows() == b.rows() && a.cols() == b.cols() && a == b; }
}  // namespace

Comparison compare(Inputs inputs, std::shared_ptr<const Mechanism> mechanism, Params params, Backend& backend,
                   const CompareOptions& options) {
  const ScopedFlushDenormals flush;  // subnormal floats: ~100× slower, invisible in every number shown
  validateInputs(inputs.q, inputs.k, inputs.v);
  Comparison c;
  c.mechanism = std::move(mechanism);
  c.params = std::move(params);
  c.backend_name = backend.info().name;
  c.inputs = std::move(inputs);
  c.reference_label = c.mechanism->referenceLabel(c.params);
  c.causal = options.run.causal;

  const auto exact = requireMechanism("exact");
  const Inputs reference_inputs = c.mechanism->referenceInputs(c.inputs, c.params);
  const Params exact_params = Params::resolve(exact->params(), {});
  RunOptions reference_run = options.run;
  reference_run.causal = c.mechanism->referenceIsCausal(options.run.causal);

  c.reference_causal = reference_run.causal;
  const Comparison* reuse = options.reuse.get();
  const bool reusable = reuse && reuse->reference_inputs && reuse->reference_causal == reference_run.causal &&
                        reuse->reference_label == c.reference_label && reuse->backend_name == c.backend_name &&
                        same(reuse->reference_inputs->q, reference_inputs.q) &&
                        same(reuse->reference_inputs->k, reference_inputs.k) && same(reuse->reference_inputs->v, reference_inputs.v);
  auto t0 = std::chrono::steady_clock::now();
  if (reusable) {
    c.exact = reuse->exact;
    c.exact_ms = reuse->exact_ms;
    c.reference_inputs = reuse->reference_inputs;
    c.reused_reference = true;
  } else {
    backend.resetPeakBytes();
    c.exact = exact->run(reference_inputs, exact_params, backend, reference_run);
    c.exact_ms = millisecondsSince(t0);
    c.reference_inputs = std::make_shared<const Inputs>(reference_inputs);
  }
  options.run.checkCancel();

  backend.resetPeakBytes();
  t0 = std::chrono::steady_clock::now();
  c.approx = c.mechanism->run(c.inputs, c.params, backend, options.run);
  c.approx_ms = millisecondsSince(t0);
  options.run.checkCancel();
  // The inputs are finite, so exact attention's output is (a convex combination of V's rows): a mechanism
  // whose output is not has overflowed at these settings, and no error can be measured against it.
  if (!c.approx.output.allFinite()) {
    Index rows = 0;
    for (Index i = 0; i < c.approx.output.rows(); ++i) rows += c.approx.output.row(i).allFinite() ? 0 : 1;
    throw UserError(c.mechanism->info().id + " gave NaN or infinite outputs in " + std::to_string(rows) + " of " +
                    std::to_string(c.approx.output.rows()) +
                    " rows at these parameter values: its arithmetic overflowed; try other values or a milder input");
  }

  if (reusable && reuse->reference.size() > 0) {
    c.reference = reuse->reference;
    c.relative_error = relativeError(c.approx.output, c.reference);
  } else if (options.with_reference) {
    addReference(c, options.run.cancel);
  } else {
    c.relative_error = std::numeric_limits<double>::quiet_NaN();  // addReference() later
  }
  if (options.with_weight_metrics) addWeightMetrics(c, options.max_metric_n);
  return c;
}

void addReference(Comparison& c, const std::atomic<bool>* cancel) {
  const ScopedFlushDenormals flush;
  if (c.reference.size() == 0)
    c.reference = referenceOutput(c.reference_inputs ? *c.reference_inputs : c.inputs, c.reference_causal, cancel);
  c.relative_error = relativeError(c.approx.output, c.reference);
}

void addWeightMetrics(Comparison& c, Index max_metric_n) {
  const ScopedFlushDenormals flush;
  c.weight_metrics = true;
  if (c.inputs.n() > max_metric_n || !c.exact.explanation.weights) return;
  if (c.approx.explanation.weights) c.row_tv = rowTotalVariation(c.approx.explanation.weights, c.exact.explanation.weights);
  // Mass recall is the exact weight on the pairs scored one by one; a mechanism that scores none (it reads
  // summaries only: memory-compressed attention) has nothing to recall, not a recall of 0.
  if (c.approx.explanation.pattern && c.approx.explanation.pattern->nnz() > 0)
    c.mass_recall = massRecall(*c.approx.explanation.pattern, c.exact.explanation.weights);
}

std::string describeError(const Comparison& c) {
  if (!c.mechanism->info().approximates_softmax) return "N/A — a different operator";
  char buf[160];
  if (std::isnan(c.relative_error))
    std::snprintf(buf, sizeof buf, "rel. error vs %s: computing…", c.reference_label.c_str());
  else
    std::snprintf(buf, sizeof buf, "rel. error %.3g vs %s", c.relative_error, c.reference_label.c_str());
  std::string s = buf;
  if (c.mass_recall >= 0) {
    std::snprintf(buf, sizeof buf, ", mass recall %.3f", c.mass_recall);
    s += buf;
  }
  return s;
}

}  // namespace attn
