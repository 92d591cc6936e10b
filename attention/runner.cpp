#include "attention/runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "attention/metrics.h"
#include "attention/parallel.h"
#include "attention/plan.h"

namespace attn {

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

MatrixD referenceOutput(const Inputs& inputs, bool causal, const std::atomic<bool>* cancel, const ProgressFn* progress) {
  // In blocks of rows (each block's queries sit at key positions i0 + i), so a cancel takes effect
  // within one block even at large N.
  const Index n = inputs.n();
  const Index block = std::max<Index>(64, (Index(1) << 24) / std::max<Index>(inputs.m(), 1));
  const MatrixD k = inputs.k.cast<double>(), v = inputs.v.cast<double>();
  MatrixD out(n, inputs.v.cols());
  for (Index i0 = 0; i0 < n; i0 += block) {
    if (cancel && cancel->load()) throw Cancelled();
    if (progress && *progress && n > block) (*progress)("float64 reference", double(i0) / double(n));
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

// V's values from which the runs compute with V·2^-e: far above any real data (2^64 ≈ 1.8e19), far below
// where float sums of N weighted values overflow (3.4e38).
constexpr float k_huge_values = 0x1p64f;

/// e > 0 when `v` holds values ≥ k_huge_values (then max|v|·2^-e lies in [0.5, 1)), else 0.
int valueExponent(const Matrix& v) {
  const float most = v.size() ? v.cwiseAbs().maxCoeff() : 0.0f;
  if (!(most >= k_huge_values)) return 0;
  int e = 0;
  std::frexp(most, &e);
  return e;
}

/// `mechanism` on `inputs`; when V's values are huge and the output is linear in V, on V·2^-e with the output
/// scaled back by 2^e. Both scalings are exact in floating point, so the output is what the arithmetic on V
/// would give wherever that is finite, and finite wherever the true output is.
Result runScaled(const Mechanism& mechanism, const Inputs& inputs, const Params& params, Backend& backend,
                 const RunOptions& options) {
  const int e = mechanism.info().linear_in_values ? valueExponent(inputs.v) : 0;
  if (e == 0) return mechanism.run(inputs, params, backend, options);
  Inputs scaled = inputs;
  scaled.v = (scaled.v.cast<double>() * std::ldexp(1.0, -e)).cast<float>();
  Result r = mechanism.run(scaled, params, backend, options);
  // Scaled back; a value past float's largest by no more than float rounding (a convex combination of values at
  // FLT_MAX whose weights summed to 1 + an ulp) is float's largest, as it is in truth. Beyond that it stays
  // infinite, and nonFiniteMessage says why.
  const double top = double(std::numeric_limits<float>::max()), slack = top * (1 + std::ldexp(1.0, -20));
  r.output = (r.output.cast<double>() * std::ldexp(1.0, e))
                 .unaryExpr([&](double x) { return std::abs(x) > top && std::abs(x) <= slack ? std::copysign(top, x) : x; })
                 .cast<float>();
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "V's values reach %.3g: computed with V·2^-%d and the output scaled back (exact in floating point); "
                "pictures of intermediate sums of V show them scaled",
                double(inputs.v.cwiseAbs().maxCoeff()), e);
  r.explanation.notes.push_back(buf);
  return r;
}

/// Why a mechanism's output is not finite, blaming the input where the input is the cause.
std::string nonFiniteMessage(const Comparison& c) {
  const Matrix& out = c.approx.output;
  Index rows = 0;
  for (Index i = 0; i < out.rows(); ++i) rows += out.row(i).allFinite() ? 0 : 1;
  const std::string where = c.mechanism->info().id + " gave NaN or infinite outputs in " + std::to_string(rows) +
                            " of " + std::to_string(out.rows()) + " rows";
  const Inputs& in = c.inputs;
  const double qn = in.q.cast<double>().rowwise().norm().maxCoeff();
  const double kn = in.k.cast<double>().rowwise().norm().maxCoeff();
  const double vmax = in.v.cast<double>().cwiseAbs().maxCoeff();
  const double logit = qn * kn / std::sqrt(double(std::max<Index>(1, in.q.cols())));
  char buf[480];
  if (logit >= 1e36) {
    std::snprintf(buf, sizeof buf,
                  "%s: the input's logits q·k/√d reach ≈ %.3g (largest ‖q‖ = %.3g, ‖k‖ = %.3g), beyond what float "
                  "arithmetic holds (3.4e38). The input is the cause, not the parameters: scale Q and K down",
                  where.c_str(), logit, qn, kn);
  } else if (vmax >= double(k_huge_values) && !c.mechanism->info().linear_in_values) {
    std::snprintf(buf, sizeof buf,
                  "%s: V's values reach %.3g and this mechanism's output is not linear in V, so it cannot be computed "
                  "on V scaled down. The input is the cause: scale V down",
                  where.c_str(), vmax);
  } else if (vmax >= double(k_huge_values)) {
    std::snprintf(buf, sizeof buf,
                  "%s: with V's values at %.3g its true output exceeds the float range (3.4e38). The input is the "
                  "cause, not the parameters: scale V down",
                  where.c_str(), vmax);
  } else if (logit > 80) {
    std::snprintf(buf, sizeof buf,
                  "%s: the input's logits q·k/√d reach ≈ %.3g (largest ‖q‖ = %.3g, ‖k‖ = %.3g), where exp() of them "
                  "leaves the float range (e^88) in this mechanism's arithmetic; scale Q and K down, or try other "
                  "parameter values",
                  where.c_str(), logit, qn, kn);
  } else {
    return where + " at these parameter values: its arithmetic overflowed; try other values or a milder input";
  }
  return buf;
}
}  // namespace

Comparison compare(Inputs inputs, std::shared_ptr<const Mechanism> mechanism, Params params, Backend& backend,
                   const CompareOptions& options) {
  const ScopedFlushDenormals flush;  // subnormal floats: ~100× slower, invisible in every number shown
  validateInputs(inputs.q, inputs.k, inputs.v);
  checkComparisonMemory(*mechanism, RunShape::of(inputs), params, options.run, options.memory_budget,
                        options.with_reference);  // before anything large is allocated
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
    c.exact_runs = reuse->exact_runs;
    c.reference_inputs = reuse->reference_inputs;
    c.reused_reference = true;
  } else {
    backend.resetPeakBytes();
    c.exact = runScaled(*exact, reference_inputs, exact_params, backend, reference_run);
    c.exact_ms = millisecondsSince(t0);
    c.reference_inputs = std::make_shared<const Inputs>(reference_inputs);
  }
  options.run.checkCancel();

  // The mechanism's own target, a second figure: exact attention on its variant of the inputs.
  if (auto own = c.mechanism->ownReference(c.inputs, c.params)) {
    Comparison::Own o;
    o.label = std::move(own->label);
    const Comparison::Own* old = reuse && reuse->own ? &*reuse->own : nullptr;
    if (old && old->label == o.label && reuse->reference_causal == reference_run.causal &&
        reuse->backend_name == c.backend_name && same(old->inputs->q, own->inputs.q) &&
        same(old->inputs->k, own->inputs.k) && same(old->inputs->v, own->inputs.v) &&
        old->inputs->mask_self == own->inputs.mask_self) {
      o.inputs = old->inputs;
      o.weights = old->weights;
      o.reference = old->reference;
    } else {
      o.weights = exact->run(own->inputs, exact_params, backend, reference_run).explanation.weights;
      o.inputs = std::make_shared<const Inputs>(std::move(own->inputs));
    }
    c.own = std::move(o);
    options.run.checkCancel();
  }

  backend.resetPeakBytes();
  t0 = std::chrono::steady_clock::now();
  c.approx = runScaled(*c.mechanism, c.inputs, c.params, backend, options.run);
  c.approx_ms = millisecondsSince(t0);
  options.run.checkCancel();
  // The inputs are finite, so exact attention's output is (a convex combination of V's rows): a mechanism
  // whose output is not has overflowed at these settings, and no error can be measured against it.
  if (!c.approx.output.allFinite()) throw UserError(nonFiniteMessage(c));

  if (reusable && reuse->reference.size() > 0) {
    c.reference = reuse->reference;
    c.uniform_error = reuse->uniform_error;
    c.relative_error = relativeError(c.approx.output, c.reference);
  }
  const bool own_missing = c.own && c.own->reference.size() == 0;
  if (c.own && !own_missing) c.own->relative_error = relativeError(c.approx.output, c.own->reference);
  if (options.with_reference && (c.reference.size() == 0 || own_missing))
    addReference(c, options.run.cancel, options.run.progress);
  else if (c.reference.size() == 0)
    c.relative_error = std::numeric_limits<double>::quiet_NaN();  // addReference() later
  if (options.with_weight_metrics) addWeightMetrics(c, options.max_metric_n);
  return c;
}

void addReference(Comparison& c, const std::atomic<bool>* cancel, const ProgressFn* progress) {
  const ScopedFlushDenormals flush;
  const Inputs& reference_inputs = c.reference_inputs ? *c.reference_inputs : c.inputs;
  if (c.reference.size() == 0) c.reference = referenceOutput(reference_inputs, c.reference_causal, cancel, progress);
  c.relative_error = relativeError(c.approx.output, c.reference);
  c.uniform_error = uniformAttentionError(reference_inputs, c.reference_causal, c.reference);
  if (c.own) {
    if (c.own->reference.size() == 0) c.own->reference = referenceOutput(*c.own->inputs, c.reference_causal, cancel);
    c.own->relative_error = relativeError(c.approx.output, c.own->reference);
  }
}

namespace {
bool sameShape(const ImpliedWeights& a, const ImpliedWeights& b) {
  return a && b && a.rows() == b.rows() && a.cols() == b.cols();
}
}  // namespace

void addWeightMetrics(Comparison& c, Index max_metric_n) {
  const ScopedFlushDenormals flush;
  c.weight_metrics = true;
  if (!c.exact.explanation.weights) return;
  // Every row up to max_metric_n; above it an even sample of row bands (the same rows for both figures).
  const MetricRows rows = metricRows(c.exact.explanation.weights.rows(), max_metric_n);
  c.metric_rows = rows.count;
  const ImpliedWeights& w = c.approx.explanation.weights;
  const auto& pattern = c.approx.explanation.pattern;
  // Mass recall is the exact weight on the pairs scored one by one; a mechanism that scores none (it reads
  // summaries only: memory-compressed attention) has nothing to recall, not a recall of 0.
  const bool recall = pattern && pattern->nnz() > 0;
  if (sameShape(w, c.exact.explanation.weights)) c.row_tv = rowTotalVariation(w, c.exact.explanation.weights, rows);
  if (recall) c.mass_recall = massRecall(*pattern, c.exact.explanation.weights, rows);
  if (c.own && c.own->weights) {
    if (sameShape(w, c.own->weights)) c.own->row_tv = rowTotalVariation(w, c.own->weights, rows);
    if (recall && pattern->rows == c.own->weights.rows() && pattern->cols == c.own->weights.cols())
      c.own->mass_recall = massRecall(*pattern, c.own->weights, rows);
  }
}

namespace {
std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}
/// "23.1 %", "0.0041 %", "1e-05 %": three significant digits of a share in [0, 1].
std::string percent(double share) { return format("%.3g %%", 100 * share); }
std::string sampledRows(const Comparison& c) {
  return c.metric_rows > 0 && c.metric_rows < c.inputs.n()
             ? " over " + std::to_string(c.metric_rows) + " of " + std::to_string(c.inputs.n()) + " rows"
             : std::string();
}

/// The mechanism's own target, as two lines (the label is long, RFA's names σ, and a panel caption is one panel
/// wide): for a different operator with an exact form of its own (permutohedral's exact Gaussian kernel) too.
void ownLines(const Comparison& c, std::vector<std::string>& lines) {
  if (!c.own) return;
  lines.push_back("vs its own target, " + c.own->label + ":");
  std::string own = "e_out " + (std::isnan(c.own->relative_error) ? std::string("computing…")
                                                                    : format("%.3g", c.own->relative_error));
  if (c.own->row_tv > 1 + 1e-6)  // RFA's sin/cos features can sign its weights, as in the headline
    own += " · row TV " + format("%.3g", c.own->row_tv) + " (signed weights)";
  else if (c.own->row_tv >= 0)
    own += " · misplaced " + percent(c.own->row_tv);
  if (c.own->mass_recall >= 0) own += " · recall " + format("%.3f", c.own->mass_recall);
  lines.push_back(own);
}
}  // namespace

std::vector<std::string> describeMetrics(const Comparison& c) {
  std::vector<std::string> lines;
  const bool pending = std::isnan(c.relative_error);
  const std::string e_out = pending ? std::string("computing…") : format("%.3g", c.relative_error);
  const std::string scale =
      std::isfinite(c.uniform_error) ? " (uniform attention " + format("%.3g", c.uniform_error) + ")" : std::string();
  if (!c.mechanism->info().approximates_softmax) {
    lines.push_back("N/A — a different operator");
    // How far from softmax it lands, said as a distance, never as an error.
    if (c.row_tv > 1 + 1e-6)
      lines.push_back("differs from softmax: row TV " + format("%.3g", c.row_tv) + " (signed weights; not an error)");
    else if (c.row_tv >= 0)
      lines.push_back("differs from softmax by " + percent(c.row_tv) + " (row TV; not an error)");
    else if (!pending) lines.push_back("distance from softmax e_out " + e_out + scale + " (not an error)");
    ownLines(c, lines);
    return lines;
  }
  if (c.row_tv > 1 + 1e-6)  // signed implied weights (trigonometric features): not a share any more, and said so
    lines.push_back("misplaced ≥ 100 % (row TV " + format("%.3g", c.row_tv) + sampledRows(c) +
                    ": signed weights, not a distribution)");
  else if (c.row_tv >= 0)
    lines.push_back("misplaced " + percent(std::min(c.row_tv, 1.0)) + " (row TV" + sampledRows(c) + ")");
  lines.push_back("e_out " + e_out + " vs " + c.reference_label + scale);
  if (c.mass_recall >= 0) lines.push_back("mass recall " + format("%.3f", c.mass_recall));
  ownLines(c, lines);
  return lines;
}

std::string describeError(const Comparison& c) {
  std::string s;
  // A line ending in ':' introduces the next ("vs its own target, …:" then its figures).
  for (const std::string& line : describeMetrics(c))
    s += (s.empty() ? "" : s.back() == ':' ? " " : ", ") + line;
  return s;
}

std::string describeHeadline(const Comparison& c) { return describeMetrics(c).front(); }

std::string describeHeadlineShort(const Comparison& c) {
  if (!c.mechanism->info().approximates_softmax) return "N/A (a different operator)";
  if (c.row_tv > 1 + 1e-6) return "misplaced ≥ 100 %";
  if (c.row_tv >= 0) return "misplaced " + percent(std::min(c.row_tv, 1.0));
  if (std::isnan(c.relative_error)) return "\xE2\x80\x94";
  return "e_out " + format("%.3g", c.relative_error);
}

std::vector<Companion> compareCompanions(const std::shared_ptr<const Comparison>& main,
                                         const std::vector<CompanionSpec>& others, Backend& backend,
                                         CompareOptions options) {
  std::vector<Companion> out;
  options.reuse = main;  // same inputs: exact and its reference are shared when they agree
  for (const CompanionSpec& o : others) {
    Companion c;
    c.id = o.mechanism->info().id;
    try {
      c.comparison = std::make_shared<const Comparison>(compare(main->inputs, o.mechanism, o.params, backend, options));
    } catch (const Cancelled&) {
      throw;
    } catch (...) {  // the boundaries' one policy: a UserError's words, out of memory, or an internal error
      c.error = failureMessage();
    }
    out.push_back(std::move(c));
  }
  return out;
}

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}
}  // namespace

Timing measureTimes(const Comparison& c, Backend& backend, const RunOptions& run, const TimingOptions& options) {
  const ScopedFlushDenormals flush;  // as compare() runs them
  Timing t;
  const double each = (options.exact ? c.exact_ms : 0) + c.approx_ms;
  const int repeats = each > 0 ? int(std::min<double>(options.repeats, std::floor(options.budget_ms / each))) : options.repeats;
  if (repeats < std::max(1, options.min_repeats)) return t;
  const auto exact = requireMechanism("exact");
  const Params exact_params = Params::resolve(exact->params(), {});
  const Inputs& reference_inputs = c.reference_inputs ? *c.reference_inputs : c.inputs;
  RunOptions reference_run = run;
  reference_run.causal = c.reference_causal;
  std::vector<double> exact_ms, approx_ms;
  for (int r = 0; r < repeats; ++r) {
    if (options.exact) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)exact->run(reference_inputs, exact_params, backend, reference_run);
      exact_ms.push_back(millisecondsSince(t0));
      run.checkCancel();
    }
    const auto t0 = std::chrono::steady_clock::now();
    const Result result = c.mechanism->run(c.inputs, c.params, backend, run);
    approx_ms.push_back(millisecondsSince(t0) - result.cost.display_ms());  // what attentionMs() shows
    run.checkCancel();
  }
  if (!exact_ms.empty()) t = {median(exact_ms), 0, int(exact_ms.size()), 0};
  // approx_ms keeps compare()'s display-only stages on top, so attentionMs() is the median of the runs.
  t.approx_ms = median(approx_ms) + c.approx.cost.display_ms();
  t.approx_runs = int(approx_ms.size());
  return t;
}

void applyTiming(Comparison& c, const Timing& t) {
  if (t.exact_runs > 0) {
    c.exact_ms = t.exact_ms;
    c.exact_runs = t.exact_runs;
  }
  if (t.approx_runs > 0) {
    c.approx_ms = t.approx_ms;
    c.approx_runs = t.approx_runs;
  }
}

std::string describeTiming(const Comparison& c) {
  const int runs = std::min(c.exact_runs, c.approx_runs);
  return runs > 1 ? "median of " + std::to_string(runs) + " runs" : "a single run";
}

bool metricsPending(const Comparison& c) { return !c.weight_metrics || c.reference.size() == 0; }

std::shared_ptr<const Comparison> completeMetrics(const std::shared_ptr<const Comparison>& c, const Comparison* share,
                                                  const std::atomic<bool>* cancel) {
  if (!c || !metricsPending(*c)) return c;
  auto full = std::make_shared<Comparison>(*c);
  if (full->reference.size() == 0 && share && share->reference.size() > 0 &&
      share->reference_inputs == full->reference_inputs && share->reference_causal == full->reference_causal)
    full->reference = share->reference;
  addReference(*full, cancel);
  if (cancel && cancel->load()) throw Cancelled();
  if (!full->weight_metrics) addWeightMetrics(*full);
  if (cancel && cancel->load()) throw Cancelled();
  return full;
}

void completeMetrics(std::shared_ptr<const Comparison>& main, std::vector<Companion>& others,
                     const std::atomic<bool>* cancel) {
  main = completeMetrics(main, nullptr, cancel);
  for (Companion& other : others) {  // a failure here stays in that entry
    if (!other.error.empty() || !other.comparison) continue;
    try {
      other.comparison = completeMetrics(other.comparison, main.get(), cancel);
    } catch (const Cancelled&) {
      throw;
    } catch (const std::bad_alloc&) {
      other.error = "out of memory for its float64 reference";
    } catch (...) {
      other.error = failureMessage();
    }
  }
}

std::string describeInputs(const InputSpec& spec, Index n, Index d, bool causal) {
  std::string s = spec.source.empty() ? generatorName(spec.generator) + " input" : spec.source;
  s += ", N = " + std::to_string(n) + ", d = " + std::to_string(d) + ", seed " + std::to_string(spec.seed);
  if (spec.source.empty() && !describeKnobs(spec).empty()) s += ", " + describeKnobs(spec);
  return s + (causal ? ", causal" : "");
}

std::string noWeightsText(const Comparison& c) {
  const std::string& why = c.approx.explanation.weights_withheld;
  return c.mechanism->info().title + (why.empty() ? std::string(" implies no N\xC3\x97N weight matrix") : ": " + why);
}

}  // namespace attn

namespace attn {

namespace {
struct Speed {
  double float_flops_per_s = 0;   // the backend's dense attention
  double double_flops_per_s = 0;  // the float64 reference, on the CPU
};

// Measured once per backend and head size on a small run (a few milliseconds): 512 queries × 1024 keys.
Speed measureSpeed(Backend& backend, Index d, Index dv) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, Index, Index>, Speed> known;
  const auto key = std::make_tuple(backend.info().name + " " + backend.info().device, d, dv);
  {
    const std::lock_guard lock(mutex);
    if (auto it = known.find(key); it != known.end()) return it->second;
  }
  constexpr Index n = 512, m = 1024;
  const Matrix q = Matrix::Constant(n, d, 0.01f), k = Matrix::Constant(m, d, 0.02f), v = Matrix::Constant(m, dv, 1.0f);
  const double work = 2.0 * double(n) * double(m) * double(d + dv);
  DenseAttentionOptions o;
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run < 4; ++run) {  // the first run warms caches and pipelines; the best of the rest
    const auto t0 = std::chrono::steady_clock::now();
    backend.denseAttention(q, k, v, o);
    best = std::min(best, millisecondsSince(t0) * 1e-3);
  }
  Speed s;
  s.float_flops_per_s = work / std::max(best, 1e-6);
  const MatrixD qd = q.topRows(128).cast<double>(), kd = k.cast<double>(), vd = v.cast<double>();
  double best_double = std::numeric_limits<double>::infinity();
  for (int run = 0; run < 3; ++run) {  // a machine busy for a moment must not make every later prediction long
    const auto t0 = std::chrono::steady_clock::now();
    referenceAttention(qd, kd, vd, o);
    best_double = std::min(best_double, millisecondsSince(t0) * 1e-3);
  }
  s.double_flops_per_s = work / 4 / std::max(best_double, 1e-6);
  const std::lock_guard lock(mutex);
  known[key] = s;
  return s;
}
}  // namespace

double predictCompareSeconds(Index n, Index m, Index d, Index dv, bool causal, double mechanism_flops,
                             Backend& backend, bool with_reference) {
  const double pairs = causal && n == m ? double(n) * double(n + 1) / 2 : double(n) * double(m);
  const double dense = 2.0 * pairs * double(d + dv);
  if (dense + mechanism_flops < 1e9) return dense * 1e-9;  // well under a second anywhere: no need to measure
  const Speed s = measureSpeed(backend, d, dv);
  // The float64 reference runs the full N×M (it masks rather than skips) on the CPU.
  const double reference = with_reference ? 2.0 * double(n) * double(m) * double(d + dv) / s.double_flops_per_s : 0;
  return (dense + std::max(0.0, mechanism_flops)) / s.float_flops_per_s + reference;
}

double predictCompareSeconds(const Inputs& inputs, const Mechanism& mechanism, const Params& params,
                             const RunOptions& options, Backend& backend, bool with_reference) {
  double flops = 0;
  try {
    flops = mechanism.plan(RunShape::of(inputs), params, options).flops;
  } catch (const std::exception&) {
    flops = 0;  // compare() refuses these parameters with its own message
  }
  if (!std::isfinite(flops)) flops = 0;
  return predictCompareSeconds(inputs.n(), inputs.m(), inputs.q.cols(), inputs.v.cols(), options.causal, flops,
                               backend, with_reference);
}

}  // namespace attn
