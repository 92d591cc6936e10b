#include "attention/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "attention/metrics.h"

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

Comparison compare(Inputs inputs, std::shared_ptr<const Mechanism> mechanism, Params params, Backend& backend,
                   const CompareOptions& options) {
  validateInputs(inputs.q, inputs.k, inputs.v);
  Comparison c;
  c.mechanism = std::move(mechanism);
  c.params = std::move(params);
  c.backend_name = backend.info().name;
  c.inputs = std::move(inputs);
  c.reference_label = c.mechanism->referenceLabel(c.params);

  const auto exact = requireMechanism("exact");
  const Inputs reference_inputs = c.mechanism->referenceInputs(c.inputs, c.params);
  const Params exact_params = Params::resolve(exact->params(), {});
  RunOptions reference_run = options.run;
  reference_run.causal = c.mechanism->referenceIsCausal(options.run.causal);

  backend.resetPeakBytes();
  auto t0 = std::chrono::steady_clock::now();
  c.exact = exact->run(reference_inputs, exact_params, backend, reference_run);
  c.exact_ms = millisecondsSince(t0);
  options.run.checkCancel();

  backend.resetPeakBytes();
  t0 = std::chrono::steady_clock::now();
  c.approx = c.mechanism->run(c.inputs, c.params, backend, options.run);
  c.approx_ms = millisecondsSince(t0);
  options.run.checkCancel();

  c.reference = referenceOutput(reference_inputs, reference_run.causal, options.run.cancel);
  c.relative_error = relativeError(c.approx.output, c.reference);
  const bool small = c.inputs.n() <= options.max_metric_n;
  if (options.with_weight_metrics && small && c.exact.explanation.weights) {
    if (c.approx.explanation.weights) c.row_tv = rowTotalVariation(c.approx.explanation.weights, c.exact.explanation.weights);
    if (c.approx.explanation.pattern) c.mass_recall = massRecall(*c.approx.explanation.pattern, c.exact.explanation.weights);
  }
  return c;
}

std::string describeError(const Comparison& c) {
  if (!c.mechanism->info().approximates_softmax) return "N/A — a different operator";
  char buf[160];
  std::snprintf(buf, sizeof buf, "rel. error %.3g vs %s", c.relative_error, c.reference_label.c_str());
  std::string s = buf;
  if (c.mass_recall >= 0) {
    std::snprintf(buf, sizeof buf, ", mass recall %.3f", c.mass_recall);
    s += buf;
  }
  return s;
}

}  // namespace attn
