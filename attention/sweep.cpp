#include "attention/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <new>
#include <regex>
#include <sstream>

#include "attention/heap_counter.h"
#include "attention/inputs_json.h"
#include "attention/metrics.h"
#include "attention/plan.h"
#include "attention/runner.h"

namespace attn {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const auto lo = std::size_t(std::floor(pos)), hi = std::size_t(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

Index isqrtCeil(Index n) { return std::max<Index>(1, Index(std::ceil(std::sqrt(double(n)) - 1e-9))); }

// The §0 rules: a parameter whose paper value grows with N.
struct ScalingRule {
  std::string mechanism, param, text;
  std::function<Index(Index n, const Params& defaults)> value;
};

const std::vector<ScalingRule>& rules() {
  static const std::vector<ScalingRule> all = {
      {"sparse-transformer", "stride", "stride l = ⌈√N⌉ (the fixed variant's summary c stays 8, the paper's constant)", [](Index n, const Params&) { return isqrtCeil(n); }},
      {"jukebox", "row_length", "row length = ⌈√N⌉", [](Index n, const Params&) { return isqrtCeil(n); }},
      {"routing", "clusters", "clusters C = ⌈√N⌉",
       [](Index n, const Params&) { return std::min<Index>(4096, isqrtCeil(n)); }},
      {"reformer", "buckets", "buckets n_b = N / chunk (even, 2 … 4096)",
       [](Index n, const Params& p) {
         const Index b = std::max<Index>(2, n / std::max<Index>(1, p.integer("chunk")));
         return std::min<Index>(4096, b + (b % 2));
       }},
  };
  return all;
}

// Teaching extras that are not the mechanism's algorithm and would dominate its time: off in sweeps
// unless the spec sets them.
struct SweepDefault {
  std::string mechanism, param, value, why;
};
const std::vector<SweepDefault>& sweepDefaults() {
  static const std::vector<SweepDefault> all = {
      {"linformer", "spectrum", "false", "the float64 SVD of A* (O(N³)) is a view, not Linformer's cost"},
      {"linformer", "projection", "pooling",
       "the default F fitted to exact attention (O(N²)) stands in for training; a trained Linformer's cost is a fixed "
       "projection's"},
      {"synthesizer", "init", "fixed-random", "fitting R to exact attention stands in for training"},
  };
  return all;
}

std::string number(double v) {
  std::ostringstream o;
  o.precision(12);
  o << v;
  return o.str();
}

// Every value of resolved params as text (choices by name).
std::map<std::string, std::string> paramText(const std::vector<ParamSpec>& specs, const Params& p) {
  std::map<std::string, std::string> out;
  for (const auto& s : specs) {
    if (s.kind == ParamKind::Choice) out[s.name] = p.choice(s.name);
    else if (s.kind == ParamKind::Flag) out[s.name] = p.flag(s.name) ? "true" : "false";
    else out[s.name] = number(p.number(s.name));
  }
  return out;
}

std::string utcNow() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return stamp;
}

bool sameInputs(const Inputs& a, const Inputs& b) {
  return a.mask_self == b.mask_self && a.q.rows() == b.q.rows() && a.k.rows() == b.k.rows() &&
         a.q.cols() == b.q.cols() && a.v.cols() == b.v.cols() && a.q == b.q && a.k == b.k && a.v == b.v;
}

// Per N and seed: the inputs, and the float64 reference and exact weights for each distinct
// reference (most mechanisms share the plain one).
struct SeedCache {
  Inputs inputs;
  struct Reference {
    Inputs inputs;
    bool causal = false;
    MatrixD output;
    ImpliedWeights weights;
    double uniform_error = 0;  ///< e_out of uniform attention against output
  };
  std::deque<Reference> references;  // a deque: references to its items stay valid as it grows
};

const SeedCache::Reference& referenceOn(SeedCache& cache, Inputs ref_inputs, bool ref_causal, std::uint64_t seed,
                                        const std::atomic<bool>* cancel) {
  for (const auto& r : cache.references)
    if (r.causal == ref_causal && sameInputs(r.inputs, ref_inputs)) return r;
  SeedCache::Reference r;
  r.causal = ref_causal;
  r.output = referenceOutput(ref_inputs, ref_causal, cancel);
  r.uniform_error = uniformAttentionError(ref_inputs, ref_causal, r.output);
  // Exact attention's implied weights are a factored form (no N×N): metrics evaluate them in bands.
  CpuBackend cpu;
  RunOptions o;
  o.causal = ref_causal;
  o.seed = seed;
  o.cancel = cancel;
  const auto exact = requireMechanism("exact");
  r.weights = exact->run(ref_inputs, Params::resolve(exact->params(), {}), cpu, o).explanation.weights;
  r.inputs = std::move(ref_inputs);
  cache.references.push_back(std::move(r));
  return cache.references.back();
}

const SeedCache::Reference& referenceFor(SeedCache& cache, const Mechanism& m, const Params& params, bool causal,
                                         std::uint64_t seed, const std::atomic<bool>* cancel) {
  return referenceOn(cache, m.referenceInputs(cache.inputs, params), m.referenceIsCausal(causal), seed, cancel);
}

// Peak bytes predicted at n from the same mechanism's measured points at smaller N (the local slope in
// log-log, at least linear, at most quadratic); NaN when there is nothing to go on.
double predictPeak(const std::vector<SweepPoint>& done, const std::string& mechanism, const std::string& backend,
                   Index n) {
  std::vector<const SweepPoint*> prior;
  for (const auto& p : done)
    if (p.mechanism == mechanism && p.backend == backend && p.status == "ok" && p.n < n && p.peak_bytes > 0)
      prior.push_back(&p);
  if (prior.empty()) return kNaN;
  std::sort(prior.begin(), prior.end(), [](auto* a, auto* b) { return a->n < b->n; });
  const SweepPoint* last = prior.back();
  double slope = 2;
  if (prior.size() >= 2) {
    const SweepPoint* before = prior[prior.size() - 2];
    slope = std::log(last->peak_bytes / before->peak_bytes) / std::log(double(last->n) / double(before->n));
    slope = std::clamp(std::isfinite(slope) ? slope : 2.0, 1.0, 2.0);
  }
  return last->peak_bytes * std::pow(double(n) / double(last->n), slope);
}

}  // namespace

Stat Stat::of(const std::vector<double>& values) {
  Stat s;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v) && v >= 0) {
      sum += v;
      ++s.count;
    }
  if (s.count == 0) return s;
  s.mean = sum / s.count;
  double sq = 0;
  for (double v : values)
    if (std::isfinite(v) && v >= 0) sq += (v - s.mean) * (v - s.mean);
  s.std = s.count > 1 ? std::sqrt(sq / (s.count - 1)) : 0.0;
  return s;
}

const SweepPoint* SweepResult::find(const std::string& mechanism, const std::string& backend, Index n) const {
  for (const auto& p : points)
    if (p.mechanism == mechanism && p.backend == backend && p.n == n) return &p;
  return nullptr;
}

double SweepProgress::etaSeconds() const {
  if (work_done <= 0 || elapsed_s <= 0) return kNaN;
  return elapsed_s * (work_total - work_done) / work_done;
}

std::vector<std::string> scalingRules() {
  std::vector<std::string> out;
  for (const auto& r : rules()) out.push_back(r.mechanism + ": " + r.text);
  out.push_back("informer: u = c·⌈ln N⌉ active queries (built into the mechanism)");
  for (const auto& d : sweepDefaults()) out.push_back(d.mechanism + ": " + d.param + " = " + d.value + " (" + d.why + ")");
  return out;
}

std::map<std::string, std::string> sweepParams(const SweepSpec& spec, const std::string& mechanism, Index n,
                                               std::vector<std::string>* scaled) {
  const auto m = requireMechanism(mechanism);
  std::map<std::string, std::string> fixed;
  if (auto it = spec.params.find(mechanism); it != spec.params.end()) fixed = it->second;
  const Params defaults = Params::resolve(m->params(), fixed);
  std::map<std::string, std::string> raw = fixed;
  for (const auto& d : sweepDefaults())
    if (d.mechanism == mechanism && !fixed.count(d.param)) raw[d.param] = d.value;
  const Index rule_n = spec.scale_with_n || spec.ns.empty() ? n : spec.ns.front();
  for (const auto& r : rules()) {
    if (r.mechanism != mechanism || fixed.count(r.param)) continue;
    raw[r.param] = std::to_string(r.value(rule_n, defaults));
    if (scaled && spec.scale_with_n) scaled->push_back(r.param);
  }
  return paramText(m->params(), Params::resolve(m->params(), raw));
}

std::vector<Index> parseTokenCounts(const std::string& text) {
  auto parseOne = [&](const std::string& s) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty() || v < 2 || v > (1LL << 24))
      throw UserError("--n takes A:B (every power of two from A to B) or a list like 256,384,512 of counts from 2 to "
                      "16777216; '" + s + "' is not one");
    return Index(v);
  };
  std::vector<Index> out;
  if (const auto colon = text.find(':'); colon != std::string::npos) {
    const Index a = parseOne(text.substr(0, colon)), b = parseOne(text.substr(colon + 1));
    if (a > b) throw UserError("--n " + text + ": the first count must not exceed the second");
    Index p = 1;
    while (p < a) p *= 2;
    for (; p <= b; p *= 2) out.push_back(p);
    if (out.empty()) throw UserError("--n " + text + ": no power of two lies between " + std::to_string(a) + " and " + std::to_string(b));
    return out;
  }
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(parseOne(item));
  if (out.empty()) throw UserError("--n needs at least one token count");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

SweepResult runSweep(const SweepSpec& spec, const BackendFactory& backend_for, const ProgressCallback& progress,
                     const std::atomic<bool>* cancel) {
  if (spec.ns.empty()) throw UserError("the sweep needs at least one N");
  if (spec.backends.empty()) throw UserError("the sweep needs at least one backend");
  if (spec.seeds < 1 || spec.seeds > 1000) throw UserError("seeds must be 1 … 1000");
  if (spec.repeats < 1 || spec.repeats > 1000) throw UserError("repeats must be 1 … 1000");
  std::vector<std::string> ids{"exact"};
  for (const auto& id : spec.mechanisms) {
    requireMechanism(id);
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  for (const auto& [id, values] : spec.params) {
    const auto m = requireMechanism(id);
    Params::resolve(m->params(), values);  // unknown names and bad values fail before anything runs
  }

  SweepResult result;
  result.spec = spec;
  result.spec.mechanisms = ids;
  result.started = utcNow();
  const std::int64_t budget = spec.memory_budget > 0 ? spec.memory_budget : defaultMemoryBudget();
  result.spec.memory_budget = budget;
  const auto start = std::chrono::steady_clock::now();

  SweepProgress prog;
  prog.points_total = int(spec.ns.size() * ids.size() * spec.backends.size());
  auto workOf = [&](Index n) { return std::pow(double(n), 1.5) * spec.seeds * (1 + spec.repeats); };
  for (Index n : spec.ns) prog.work_total += workOf(n) * double(ids.size() * spec.backends.size());
  auto report = [&](const SweepPoint* finished) {
    prog.elapsed_s = millisecondsSince(start) * 1e-3;
    if (progress) progress(prog, finished);
  };
  auto cancelled = [&] { return cancel && cancel->load(); };

  try {
    for (Index n : spec.ns) {
      if (cancelled()) break;
      std::vector<SeedCache> caches(std::size_t(spec.seeds));
      for (int s = 0; s < spec.seeds; ++s) {
        InputSpec in;
        in.n = n;
        in.d = spec.d;
        in.dv = spec.d;
        in.seed = spec.first_seed + std::uint64_t(s);
        in.generator = spec.generator;
        in.temperature = spec.temperature;
        copyKnobs(spec.knobs, in);
        caches[std::size_t(s)].inputs = generate(in);
      }
      for (const auto& id : ids) {
        const auto mechanism = requireMechanism(id);
        for (const auto& backend_name : spec.backends) {
          if (cancelled()) throw Cancelled();
          SweepPoint point;
          point.mechanism = id;
          point.backend = backend_name;
          point.n = n;
          point.approximates = mechanism->info().approximates_softmax;
          Backend& backend = backend_for(backend_name);
          const double work_before = prog.work_done;
          try {
            point.params = sweepParams(spec, id, n, &point.scaled);
            const Params params = Params::resolve(mechanism->params(), point.params);
            // The plan, from N and the parameters (every N, the first too); then what the points measured at
            // smaller N predict.
            RunOptions planned;
            planned.causal = spec.causal;
            const RunShape shape{n, n, spec.d, spec.d};
            const std::string refusal =
                memoryRefusal(*mechanism, shape, comparisonPlan(*mechanism, shape, params, planned), budget);
            const double predicted = predictPeak(result.points, id, backend_name, n);
            if (!refusal.empty()) {
              point.status = "skipped";
              point.message = refusal;
            } else if (std::isfinite(predicted) && predicted > double(budget)) {
              point.status = "skipped";
              char buf[200];
              std::snprintf(buf, sizeof buf, "predicted peak %.3g GB exceeds the memory budget of %.3g GB",
                            predicted * 1e-9, double(budget) * 1e-9);
              point.message = buf;
            } else {
              std::vector<double> times, device, errors, tvs, recalls, uniforms, own_errors;
              std::map<std::string, std::vector<double>> stage_times;
              double peak = 0;
              for (int s = 0; s < spec.seeds; ++s) {
                SeedCache& cache = caches[std::size_t(s)];
                prog.current = id + " N=" + std::to_string(n) + " " + backend_name + " seed " + std::to_string(s + 1);
                report(nullptr);
                RunOptions o;
                o.causal = spec.causal;
                o.seed = spec.first_seed + std::uint64_t(s);
                o.cancel = cancel;
                // 1. The explained run: errors, weight metrics, notes and the cost figures.
                Result r = mechanism->run(cache.inputs, params, backend, o);
                // 2. The warm-up, as the timed runs go (explain = false: no steps or display-only
                //    matrices): the run whose memory is measured.
                o.explain = false;
                const std::int64_t live = heap::liveBytes();
                heap::resetPeak();
                backend.resetPeakBytes();
                const Result warm = mechanism->run(cache.inputs, params, backend, o);
                const double gpu_bytes = double(backend.peakBytes());
                if (backend_name == "cpu" && heap::available()) {
                  peak = std::max(peak, double(heap::peakBytes() - live));
                  point.peak_source = "heap";
                } else if (backend_name != "cpu" && gpu_bytes > 0) {
                  peak = std::max(peak, gpu_bytes);
                  point.peak_source = "device buffers";
                } else {
                  peak = std::max(peak, double(warm.cost.peak_bytes));
                  point.peak_source = "cost";
                }
                point.cost_peak_bytes = double(warm.cost.peak_bytes);
                point.flops = r.cost.flops;
                point.scored_pairs = r.cost.scored_pairs;
                for (const auto& note : r.explanation.notes)
                  if (std::find(point.notes.begin(), point.notes.end(), note) == point.notes.end() && point.notes.size() < 8)
                    point.notes.push_back(note);
                const auto& ref = referenceFor(cache, *mechanism, params, spec.causal, o.seed, cancel);
                errors.push_back(relativeError(r.output, ref.output));
                uniforms.push_back(ref.uniform_error);
                if (auto own = mechanism->ownReference(cache.inputs, params)) {
                  point.own_reference = own->label;
                  const auto& own_ref = referenceOn(cache, std::move(own->inputs), spec.causal, o.seed, cancel);
                  own_errors.push_back(relativeError(r.output, own_ref.output));
                }
                // Every row up to max_metric_n, an even sample of row bands above (metricRows).
                const MetricRows rows = metricRows(n, spec.max_metric_n);
                if (r.explanation.weights && ref.weights && r.explanation.weights.rows() == ref.weights.rows() &&
                    r.explanation.weights.cols() == ref.weights.cols()) {
                  point.metric_rows = rows.count;
                  tvs.push_back(rowTotalVariation(r.explanation.weights, ref.weights, rows));
                }
                if (r.explanation.pattern && r.explanation.pattern->nnz() > 0 && ref.weights &&
                    r.explanation.pattern->rows == ref.weights.rows() && r.explanation.pattern->cols == ref.weights.cols()) {
                  point.metric_rows = rows.count;
                  recalls.push_back(massRecall(*r.explanation.pattern, ref.weights, rows));
                }
                prog.work_done += workOf(n) / double(spec.seeds * (1 + spec.repeats));
                for (int k = 0; k < spec.repeats; ++k) {
                  const double device0 = backend.deviceMsTotal();
                  const auto t0 = std::chrono::steady_clock::now();
                  Result timed = mechanism->run(cache.inputs, params, backend, o);
                  times.push_back(millisecondsSince(t0));
                  std::map<std::string, double> per_stage;  // a stage may repeat (iterations): summed
                  for (const auto& st : timed.cost.stages) per_stage[st.name] += st.ms;
                  for (const auto& [name, ms] : per_stage) stage_times[name].push_back(ms);
                  device.push_back(backend.deviceMsTotal() - device0);
                  prog.work_done += workOf(n) / double(spec.seeds * (1 + spec.repeats));
                  report(nullptr);
                }
              }
              point.time_median = quantile(times, 0.5);
              point.time_p25 = quantile(times, 0.25);
              point.time_p75 = quantile(times, 0.75);
              point.time_min = quantile(times, 0);
              point.time_max = quantile(times, 1);
              point.timed_runs = int(times.size());
              std::vector<double> finite_device;
              for (double t : device)
                if (std::isfinite(t)) finite_device.push_back(t);
              point.device_ms = quantile(finite_device, 0.5);
              point.peak_bytes = peak;
              for (const auto& [name, ms] : stage_times) point.stages_ms[name] = quantile(ms, 0.5);
              point.rel_error = Stat::of(errors);
              point.uniform_error = Stat::of(uniforms);
              point.own_rel_error = Stat::of(own_errors);
              point.row_tv = Stat::of(tvs);
              point.mass_recall = Stat::of(recalls);
            }
          } catch (const Cancelled&) {
            throw;
          } catch (const UserError& e) {
            point.status = "error";
            point.message = e.what();
          } catch (const std::bad_alloc&) {
            point.status = "error";
            point.message = "out of memory";
          } catch (const std::exception& e) {  // a lost device, an internal error: this point only
            point.status = "error";
            point.message = e.what();
          }
          prog.work_done = work_before + workOf(n);  // whatever the point did, its share is done
          result.points.push_back(std::move(point));
          ++prog.points_done;
          report(&result.points.back());
        }
      }
    }
  } catch (const Cancelled&) {
  }
  // Every point measured is complete, even when a cancel arrived after the last one.
  result.complete = prog.points_done == prog.points_total;
  result.seconds = millisecondsSince(start) * 1e-3;
  return result;
}

SweepSpec lraPreset() {
  SweepSpec s;
  for (const auto& row : lraPublished())
    if (row.mechanism != "exact") {
      s.mechanisms.push_back(row.mechanism);
      if (!row.params.empty()) s.params[row.mechanism] = row.params;
    }
  s.ns = {1024, 2048, 3072, 4096};
  s.seeds = 1;
  s.repeats = 3;
  s.preset = "lra";
  return s;
}

const std::vector<LraRow>& lraPublished() {
  // Tay et al., "Long Range Arena", ICLR 2021, Table 2 (byte-level text classification, batch 32,
  // 4×4 TPU v3): steps per second and peak memory per device (GB) at 1K, 2K, 3K, 4K. "Local Attention"
  // is a sliding window without global tokens: our longformer with globals = 0.
  static const std::vector<LraRow> rows = {
      {"Transformer", "exact", {}, {8.1, 4.9, 2.3, 1.4}, {0.85, 2.65, 5.51, 9.48}},
      {"Local Attention", "longformer", {{"globals", "0"}}, {9.2, 8.4, 7.4, 7.4}, {0.42, 0.76, 1.06, 1.37}},
      {"Linformer", "linformer", {}, {9.3, 9.1, 8.5, 7.7}, {0.37, 0.55, 0.99, 0.99}},
      {"Reformer", "reformer", {}, {4.4, 2.2, 1.5, 1.1}, {0.48, 0.99, 1.53, 2.28}},
      {"Sinkhorn Trans.", "sinkhorn", {}, {9.1, 7.9, 6.6, 5.3}, {0.47, 0.83, 1.13, 1.48}},
      {"Synthesizer", "synthesizer", {}, {8.7, 5.7, 6.6, 1.9}, {0.65, 1.98, 4.09, 6.99}},
      {"BigBird", "bigbird", {}, {7.4, 3.9, 2.7, 1.5}, {0.77, 1.49, 2.18, 2.88}},
      {"Linear Trans.", "linear-transformer", {}, {9.1, 9.3, 8.6, 7.8}, {0.37, 0.57, 0.80, 1.03}},
      {"Performer", "performer", {}, {9.5, 9.4, 8.7, 8.0}, {0.37, 0.59, 0.82, 1.06}},
  };
  return rows;
}

double complexitySlope(const std::string& complexity) {
  std::string s = complexity.substr(0, complexity.find(", "));
  for (const char* cut : {" time", " instead", " to apply"}) s = s.substr(0, s.find(cut));
  s = std::regex_replace(s, std::regex("(log|ln)(_[A-Za-z0-9]+)?\\s*(\\([^)]*\\)|N)"), "");
  double best = 0;
  std::stringstream terms(s);
  for (std::string t; std::getline(terms, t, '+');) {
    double power = 0;
    auto take = [&](const std::string& what, double p) {
      for (std::size_t at; (at = t.find(what)) != std::string::npos;) {
        power += p;
        t.erase(at, what.size());
      }
    };
    take("N²", 2);
    take("N^2", 2);
    take("N^1.5", 1.5);
    take("√N", 0.5);
    const std::regex lone("(^|[^A-Za-z_])N(?![A-Za-z_0-9])");
    power += double(std::distance(std::sregex_iterator(t.begin(), t.end(), lone), std::sregex_iterator()));
    best = std::max(best, power);
  }
  // No N at all ("O(n_s·(n_s + k)·d) per segment"): a fixed cost per segment or token, N/n_s of them.
  return best > 0 ? best : 1;
}

double logLogSlope(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int k = 0;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!(x[i] > 0) || !(y[i] > 0) || !std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    const double a = std::log(x[i]), b = std::log(y[i]);
    sx += a;
    sy += b;
    sxx += a * a;
    sxy += a * b;
    ++k;
  }
  if (k < 2) return kNaN;
  const double den = k * sxx - sx * sx;
  return den == 0 ? kNaN : (k * sxy - sx * sy) / den;
}

double largeNSlope(const std::vector<double>& x, const std::vector<double>& y, int points) {
  std::vector<std::pair<double, double>> xy;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
    if (x[i] > 0 && y[i] > 0 && std::isfinite(x[i]) && std::isfinite(y[i])) xy.emplace_back(x[i], y[i]);
  std::sort(xy.begin(), xy.end());
  if (points > 0 && xy.size() > std::size_t(points)) xy.erase(xy.begin(), xy.end() - points);
  std::vector<double> xs, ys;
  for (const auto& [a, b] : xy) {
    xs.push_back(a);
    ys.push_back(b);
  }
  return logLogSlope(xs, ys);
}

double crossoverN(const SweepResult& r, const std::string& mechanism, const std::string& backend) {
  // Ratio ρ(N) = time(mechanism) / time(exact) at each N where both ran.
  std::vector<std::pair<double, double>> ratio;
  for (Index n : r.spec.ns) {
    const SweepPoint* a = r.find(mechanism, backend, n);
    const SweepPoint* e = r.find("exact", backend, n);
    if (a && e && a->status == "ok" && e->status == "ok" && a->time_median > 0 && e->time_median > 0)
      ratio.push_back({double(n), a->time_median / e->time_median});
  }
  if (ratio.empty()) return kNaN;
  // The last N from which on the mechanism stays faster.
  std::size_t first_fast = ratio.size();
  for (std::size_t i = ratio.size(); i-- > 0;) {
    if (ratio[i].second < 1) first_fast = i;
    else break;
  }
  if (first_fast == ratio.size()) return kNaN;
  if (first_fast == 0) return -std::numeric_limits<double>::infinity();
  const auto [n0, r0] = ratio[first_fast - 1];
  const auto [n1, r1] = ratio[first_fast];
  // log ρ is linear in log N between the two points; solve log ρ = 0.
  const double t = std::log(r0) / (std::log(r0) - std::log(r1));
  return std::exp(std::log(n0) + t * (std::log(n1) - std::log(n0)));
}

// ---- serialisation -------------------------------------------------------------------------------

namespace {

nlohmann::json numberOrNull(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json statJson(const Stat& s) {
  return {{"mean", numberOrNull(s.mean)}, {"std", numberOrNull(s.std)}, {"count", s.count}};
}
}  // namespace

nlohmann::json toJson(const SweepResult& r) {
  using nlohmann::json;
  const auto& s = r.spec;
  json spec{{"mechanisms", s.mechanisms},
            {"n", s.ns},
            {"backends", s.backends},
            {"seeds", s.seeds},
            {"first_seed", s.first_seed},
            {"repeats", s.repeats},
            {"warmup", 1},
            {"d", s.d},
            {"input", generatorName(s.generator)},
            {"temperature", s.temperature},
            {"knobs", knobsToJson(s.knobs)},
            {"causal", s.causal},
            {"scale_with_n", s.scale_with_n},
            {"params", s.params},
            {"memory_budget_bytes", s.memory_budget},
            {"max_metric_n", s.max_metric_n},
            {"preset", s.preset},
            {"scaling_rules", scalingRules()}};
  json points = json::array();
  for (const auto& p : r.points) {
    points.push_back({{"mechanism", p.mechanism},
                      {"backend", p.backend},
                      {"n", p.n},
                      {"status", p.status},
                      {"message", p.message},
                      {"params", p.params},
                      {"scaled", p.scaled},
                      {"time_ms",
                       {{"median", numberOrNull(p.time_median)},
                        {"p25", numberOrNull(p.time_p25)},
                        {"p75", numberOrNull(p.time_p75)},
                        {"min", numberOrNull(p.time_min)},
                        {"max", numberOrNull(p.time_max)},
                        {"runs", p.timed_runs}}},
                      {"device_ms", numberOrNull(p.device_ms)},
                      {"peak_bytes", numberOrNull(p.peak_bytes)},
                      {"peak_source", p.peak_source},
                      {"cost_peak_bytes", numberOrNull(p.cost_peak_bytes)},
                      {"flops", numberOrNull(p.flops)},
                      {"scored_pairs", numberOrNull(p.scored_pairs)},
                      {"approximates_softmax", p.approximates},
                      {"rel_error", statJson(p.rel_error)},
                      {"row_tv", statJson(p.row_tv)},
                      {"mass_recall", statJson(p.mass_recall)},
                      {"uniform_error", statJson(p.uniform_error)},
                      {"metric_rows", p.metric_rows},
                      {"own_reference", p.own_reference},
                      {"own_rel_error", statJson(p.own_rel_error)},
                      {"stages_ms", p.stages_ms},
                      {"notes", p.notes}});
  }
  return {{"format", "attnlab-sweep"},
          {"version", 1},
          {"attnlab", ATTNLAB_VERSION},
          {"complete", r.complete},
          {"seconds", r.seconds},
          {"started", r.started},
          {"command", r.command},
          {"machine", r.machine.is_null() ? json::object() : r.machine},
          {"spec", spec},
          {"points", points}};
}

const std::vector<std::string>& sweepCsvColumns() {
  static const std::vector<std::string> columns = {
      "mechanism", "backend", "n", "status", "time_ms_median", "time_ms_p25", "time_ms_p75", "time_ms_min",
      "time_ms_max", "timed_runs", "device_ms", "peak_bytes", "peak_source", "cost_peak_bytes", "flops",
      "scored_pairs", "rel_error_mean", "rel_error_std", "row_tv_mean", "row_tv_std", "mass_recall_mean",
      "mass_recall_std", "uniform_error_mean", "metric_rows", "own_reference", "own_rel_error_mean",
      "own_rel_error_std", "seeds", "approximates_softmax", "params", "message"};
  return columns;
}

std::string toCsv(const SweepResult& r) {
  auto quoted = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  auto num = [](double v) { return std::isfinite(v) ? number(v) : std::string(); };
  std::string out;
  for (std::size_t i = 0; i < sweepCsvColumns().size(); ++i) out += (i ? "," : "") + sweepCsvColumns()[i];
  out += "\n";
  for (const auto& p : r.points) {
    std::string params;
    for (const auto& [k, v] : p.params) params += (params.empty() ? "" : ";") + k + "=" + v;
    const std::vector<std::string> cells = {
        p.mechanism, p.backend, std::to_string(p.n), p.status, num(p.time_median), num(p.time_p25), num(p.time_p75),
        num(p.time_min), num(p.time_max), std::to_string(p.timed_runs), num(p.device_ms), num(p.peak_bytes),
        p.peak_source, num(p.cost_peak_bytes), num(p.flops), num(p.scored_pairs), num(p.rel_error.mean),
        num(p.rel_error.std), num(p.row_tv.mean), num(p.row_tv.std), num(p.mass_recall.mean), num(p.mass_recall.std),
        num(p.uniform_error.mean), std::to_string(p.metric_rows), p.own_reference, num(p.own_rel_error.mean),
        num(p.own_rel_error.std), std::to_string(p.rel_error.count), p.approximates ? "true" : "false", params, p.message};
    for (std::size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + quoted(cells[i]);
    out += "\n";
  }
  return out;
}

}  // namespace attn
