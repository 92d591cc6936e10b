// The N-sweep engine: parsing, the §0 scaling rules, determinism, errors that agree with a direct
// comparison, cancellation that keeps finished points, the memory budget, the counting allocator,
// slopes and crossovers, and JSON/CSV that read back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "attention/heap_counter.h"
#include "attention/runner.h"
#include "attention/sweep.h"

namespace attn {
namespace {

SweepSpec smallSpec() {
  SweepSpec s;
  s.mechanisms = {"longformer", "performer"};
  s.ns = {64, 128};
  s.seeds = 2;
  s.repeats = 1;
  s.d = 16;
  s.generator = Generator::Local;
  return s;
}

BackendFactory cpuFactory(CpuBackend& cpu) {
  return [&cpu](const std::string&) -> Backend& { return cpu; };
}

TEST(Sweep, TokenCountsParseRangesAndLists) {
  EXPECT_EQ(parseTokenCounts("256:4096"), (std::vector<Index>{256, 512, 1024, 2048, 4096}));
  EXPECT_EQ(parseTokenCounts("300:1100"), (std::vector<Index>{512, 1024}));
  EXPECT_EQ(parseTokenCounts("512,256,384,256"), (std::vector<Index>{256, 384, 512}));
  EXPECT_THROW(parseTokenCounts("4096:256"), UserError);
  EXPECT_THROW(parseTokenCounts("abc"), UserError);
  EXPECT_THROW(parseTokenCounts("1,2x"), UserError);
  EXPECT_THROW(parseTokenCounts("600:700"), UserError);  // no power of two in between
  EXPECT_THROW(parseTokenCounts(""), UserError);
}

TEST(Sweep, ParametersScaleWithNWhereThePaperDoes) {
  SweepSpec s;
  s.ns = {1024, 4096};
  std::vector<std::string> scaled;
  EXPECT_EQ(sweepParams(s, "sparse-transformer", 1024, &scaled).at("stride"), "32");
  EXPECT_EQ(scaled, std::vector<std::string>{"stride"});
  EXPECT_EQ(sweepParams(s, "sparse-transformer", 4096).at("stride"), "64");
  EXPECT_EQ(sweepParams(s, "routing", 4096).at("clusters"), "64");
  EXPECT_EQ(sweepParams(s, "jukebox", 1000).at("row_length"), "32");  // ⌈√1000⌉
  EXPECT_EQ(sweepParams(s, "reformer", 1024).at("buckets"), "32");     // N / chunk 32
  EXPECT_EQ(sweepParams(s, "reformer", 4096).at("buckets"), "128");
  // Parameters without a rule keep their defaults at every N.
  EXPECT_EQ(sweepParams(s, "performer", 1024).at("features"), sweepParams(s, "performer", 4096).at("features"));
  // Teaching extras are off in sweeps unless set.
  EXPECT_EQ(sweepParams(s, "linformer", 1024).at("spectrum"), "false");
  EXPECT_EQ(sweepParams(s, "synthesizer", 1024).at("init"), "fixed-random");
  // Linformer's default F is fitted to exact attention (an oracle, O(N²)): sweeps time a fixed projection.
  EXPECT_EQ(sweepParams(s, "linformer", 1024).at("projection"), "pooling");
  // Held at the smallest N when scaling is off; a fixed value wins over the rule.
  s.scale_with_n = false;
  EXPECT_EQ(sweepParams(s, "sparse-transformer", 4096).at("stride"), "32");
  s.scale_with_n = true;
  s.params["reformer"]["buckets"] = "8";
  EXPECT_EQ(sweepParams(s, "reformer", 4096).at("buckets"), "8");
  s.params["reformer"]["chunk"] = "64";
  s.params["reformer"].erase("buckets");
  EXPECT_EQ(sweepParams(s, "reformer", 4096).at("buckets"), "64");
}

TEST(Sweep, ResultsAreDeterministicForASeedAndMatchADirectComparison) {
  CpuBackend cpu;
  const SweepSpec spec = smallSpec();
  const SweepResult a = runSweep(spec, cpuFactory(cpu));
  const SweepResult b = runSweep(spec, cpuFactory(cpu));
  ASSERT_TRUE(a.complete);
  ASSERT_EQ(a.points.size(), 6u);  // exact + 2 mechanisms, × 2 N
  ASSERT_EQ(b.points.size(), a.points.size());
  for (std::size_t i = 0; i < a.points.size(); ++i) {
    const auto &p = a.points[i], &q = b.points[i];
    EXPECT_EQ(p.status, "ok") << p.mechanism << " " << p.message;
    EXPECT_EQ(p.mechanism, q.mechanism);
    EXPECT_EQ(p.rel_error.mean, q.rel_error.mean) << p.mechanism << " N=" << p.n;  // identical, not close
    EXPECT_EQ(p.rel_error.std, q.rel_error.std);
    EXPECT_EQ(p.row_tv.mean, q.row_tv.mean);
    EXPECT_EQ(p.flops, q.flops);
    EXPECT_EQ(p.scored_pairs, q.scored_pairs);
    EXPECT_EQ(p.timed_runs, spec.seeds * spec.repeats);
    EXPECT_GT(p.time_median, 0);
    EXPECT_LE(p.time_min, p.time_p25);
    EXPECT_LE(p.time_p25, p.time_median);
    EXPECT_LE(p.time_median, p.time_p75);
    EXPECT_LE(p.time_p75, p.time_max);
    EXPECT_EQ(p.rel_error.count, spec.seeds);
  }
  // The sweep's error for each seed is what compare() gives on the same inputs.
  for (const char* id : {"longformer", "performer"}) {
    std::vector<double> errors;
    for (int s = 0; s < spec.seeds; ++s) {
      InputSpec in;
      in.n = 128;
      in.d = in.dv = spec.d;
      in.seed = spec.first_seed + std::uint64_t(s);
      in.generator = spec.generator;
      CompareOptions o;
      o.run.seed = in.seed;
      const auto m = requireMechanism(id);
      errors.push_back(compare(generate(in), m, Params::resolve(m->params(), sweepParams(spec, id, 128)), cpu, o).relative_error);
    }
    const SweepPoint* p = a.find(id, "cpu", 128);
    ASSERT_NE(p, nullptr);
    EXPECT_NEAR(p->rel_error.mean, (errors[0] + errors[1]) / 2, 1e-12) << id;
    EXPECT_NEAR(p->rel_error.std, std::fabs(errors[0] - errors[1]) / std::sqrt(2.0), 1e-12) << id;
    EXPECT_GT(p->rel_error.mean, 1e-4) << id << ": an approximation, not exact";
  }
  const SweepPoint* e = a.find("exact", "cpu", 64);
  ASSERT_NE(e, nullptr);
  EXPECT_LT(e->rel_error.mean, 1e-5);
  EXPECT_NEAR(e->row_tv.mean, 0, 1e-6);
  // Mass recall exists for the sparse pattern only.
  const SweepPoint* lf = a.find("longformer", "cpu", 64);
  EXPECT_GT(lf->mass_recall.mean, 0.3);
  EXPECT_LE(lf->mass_recall.mean, 1.0);
  EXPECT_EQ(lf->mass_recall.count, spec.seeds);
  EXPECT_EQ(a.find("performer", "cpu", 64)->mass_recall.count, 0);
}

TEST(Sweep, CancelKeepsEveryFinishedPoint) {
  CpuBackend cpu;
  std::atomic<bool> cancel{false};
  int finished = 0;
  const SweepResult r = runSweep(
      smallSpec(), cpuFactory(cpu),
      [&](const SweepProgress& p, const SweepPoint* done) {
        EXPECT_LE(p.work_done, p.work_total * (1 + 1e-9));
        if (done && ++finished == 3) cancel = true;
      },
      &cancel);
  EXPECT_FALSE(r.complete);
  ASSERT_EQ(r.points.size(), 3u);
  for (const auto& p : r.points) {
    EXPECT_EQ(p.status, "ok");
    EXPECT_EQ(p.n, 64);
    EXPECT_TRUE(std::isfinite(p.rel_error.mean));
  }
}

TEST(Sweep, TheGeneratorsKnobsShapeEveryPointsInputs) {
  // A narrow band (length scale 2) makes a sliding window of 16 nearly exact; a wide one (64) does not.
  CpuBackend cpu;
  SweepSpec spec = smallSpec();
  spec.mechanisms = {"longformer"};
  spec.params["longformer"] = {{"window", "16"}, {"globals", "0"}};
  spec.ns = {128};
  spec.seeds = 1;
  spec.temperature = 0.5;
  spec.knobs.length_scale = 2;
  const double narrow = runSweep(spec, cpuFactory(cpu)).find("longformer", "cpu", 128)->rel_error.mean;
  spec.knobs.length_scale = 64;
  const double wide = runSweep(spec, cpuFactory(cpu)).find("longformer", "cpu", 128)->rel_error.mean;
  EXPECT_LT(narrow, 0.5 * wide) << narrow << " vs " << wide;
}

TEST(Sweep, ACancelAfterTheLastPointLeavesTheSweepComplete) {
  CpuBackend cpu;
  std::atomic<bool> cancel{false};
  std::size_t total = 0;
  const SweepResult r = runSweep(
      smallSpec(), cpuFactory(cpu),
      [&](const SweepProgress& p, const SweepPoint* done) {
        total = std::size_t(p.points_total);
        if (done && p.points_done == p.points_total) cancel = true;  // Cancel pressed as the last point lands
      },
      &cancel);
  EXPECT_TRUE(cancel);
  EXPECT_GE(total, 4u);
  EXPECT_EQ(r.points.size(), total);
  EXPECT_TRUE(r.complete);
}

TEST(Sweep, PointsOverTheMemoryBudgetAreSkippedAndMarked) {
  CpuBackend cpu;
  SweepSpec s = smallSpec();
  s.mechanisms = {};
  s.ns = {64, 4096};
  s.seeds = 1;
  s.memory_budget = 4'000'000;  // exact at N=64 needs tens of KB; ×64² predicted at N=4096 is far over
  const SweepResult r = runSweep(s, cpuFactory(cpu));
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_EQ(r.points[0].status, "ok");
  if (!heap::available()) GTEST_SKIP() << "no counting allocator in this build (sanitizers): the budget rests on it";
  EXPECT_EQ(r.points[1].status, "skipped");
  EXPECT_NE(r.points[1].message.find("memory budget"), std::string::npos) << r.points[1].message;
  EXPECT_TRUE(r.complete);
}

TEST(Sweep, TheCountingAllocatorSeesEigenAndOperatorNew) {
  if (!heap::available()) GTEST_SKIP() << "no counting allocator in this build (sanitizers interpose malloc)";
  const auto live = heap::liveBytes();
  heap::resetPeak();
  {
    Matrix m = Matrix::Zero(1000, 1000);  // 4 MB through Eigen's aligned malloc
    std::vector<double> v(500000, 1.0);   // 4 MB through operator new
    EXPECT_GE(heap::liveBytes() - live, 8'000'000);
  }
  EXPECT_GE(heap::peakBytes() - live, 8'000'000);
  EXPECT_LT(heap::liveBytes() - live, 100'000);
}

TEST(Sweep, MeasuredPeakGrowsWithN) {
  if (!heap::available()) GTEST_SKIP() << "no counting allocator in this build";
  CpuBackend cpu;
  SweepSpec s = smallSpec();
  s.mechanisms = {"linformer"};
  s.ns = {256, 4096};
  s.seeds = 1;
  const SweepResult r = runSweep(s, cpuFactory(cpu));
  for (const char* id : {"exact", "linformer"}) {
    const SweepPoint *a = r.find(id, "cpu", 256), *b = r.find(id, "cpu", 4096);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->peak_source, "heap");
    EXPECT_GT(a->peak_bytes, 256.0 * 16 * 4) << id << ": at least the output";
    EXPECT_GT(b->peak_bytes, 3 * a->peak_bytes) << id;  // 16× the tokens; fixed overheads blunt small N
  }
}

TEST(Sweep, ComplexitySlopeReadsTheLeadingPowerOfN) {
  EXPECT_EQ(complexitySlope("O(N²·d)"), 2);
  EXPECT_EQ(complexitySlope("O(N·(N/c)·d) compressed, O(N·b·d) local"), 2);
  EXPECT_EQ(complexitySlope("O(N·√N·d)"), 1.5);
  EXPECT_EQ(complexitySlope("O(N^1.5·d)"), 1.5);
  EXPECT_EQ(complexitySlope("O(n_h·N·log N + n_h·N·m·d)"), 1);
  EXPECT_EQ(complexitySlope("O(N·k·log(N/k)·d)"), 1);
  EXPECT_EQ(complexitySlope("O(N·ln N·d)"), 1);
  EXPECT_EQ(complexitySlope("O(N·w·d) banded, O(N²·d) dense"), 1);
  EXPECT_EQ(complexitySlope("O(N·m·d) time, O((N/C)·(m + d) + m·d) memory"), 1);
  EXPECT_EQ(complexitySlope("O(N·(n + k²)·d) instead of O(N·n²·d)"), 1);
  EXPECT_EQ(complexitySlope("O(N²·d) to apply, no QKᵀ"), 2);
  EXPECT_EQ(complexitySlope("O((g² + N·(w + g + r))·d)"), 1);
  EXPECT_EQ(complexitySlope("O(n_s·(n_s + k)·d) per segment"), 1);
  // Every registered mechanism's string reads as 1, 1.5 or 2.
  for (const auto& m : mechanisms()) {
    const double s = complexitySlope(m->info().complexity);
    EXPECT_TRUE(s == 1 || s == 1.5 || s == 2) << m->info().id << ": " << m->info().complexity << " → " << s;
  }
}

TEST(Sweep, SlopesAndCrossoverFromKnownCurves) {
  EXPECT_NEAR(logLogSlope({256, 512, 1024}, {1, 4, 16}), 2.0, 1e-12);
  EXPECT_NEAR(logLogSlope({256, 512, 1024}, {3, 6, 12}), 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(logLogSlope({256}, {1})));
  // A fixed cost of 1e6 below N = 1024, then N²: the large-N slope is the N² part's, 2, while a fit over
  // every point is pulled down by the flat start (and the order of the points does not matter).
  const std::vector<double> ns = {8192, 64, 128, 256, 512, 1024, 2048, 4096};
  std::vector<double> ms;
  for (double n : ns) ms.push_back(std::max(1e6, n * n));
  EXPECT_NEAR(largeNSlope(ns, ms), 2.0, 1e-12);
  EXPECT_LT(logLogSlope(ns, ms), 1.5);
  EXPECT_NEAR(largeNSlope({256, 512}, {1, 4}), 2.0, 1e-12);  // fewer points than asked: all of them
  EXPECT_NEAR(largeNSlope({256, 512, 1024, 2048}, {1, 2, 16, 128}, 2), 3.0, 1e-12);
  EXPECT_TRUE(std::isnan(largeNSlope({256, 512}, {1, 0})));  // y = 0 is left out: one point
  SweepResult r;
  r.spec.ns = {256, 512, 1024, 2048};
  const double exact_ms[] = {1, 4, 16, 64};
  const double fast_ms[] = {2, 6, 8, 16};  // ratio 2, 1.5, 0.5, 0.25
  const double slow_ms[] = {2, 8, 32, 128};
  const double early_ms[] = {0.5, 1, 2, 4};
  for (int k = 0; k < 4; ++k)
    for (auto [id, t] : {std::pair{"exact", exact_ms[k]}, {"fast", fast_ms[k]}, {"slow", slow_ms[k]}, {"early", early_ms[k]}}) {
      SweepPoint p;
      p.mechanism = id;
      p.backend = "cpu";
      p.n = r.spec.ns[std::size_t(k)];
      p.time_median = t;
      r.points.push_back(p);
    }
  // Between N = 512 (ratio 1.5) and 1024 (0.5), log-linear: N = 512·2^(ln 1.5 / (ln 1.5 − ln 0.5)).
  EXPECT_NEAR(crossoverN(r, "fast", "cpu"), 512 * std::pow(2.0, std::log(1.5) / (std::log(1.5) - std::log(0.5))), 1e-9);
  EXPECT_TRUE(std::isnan(crossoverN(r, "slow", "cpu")));
  EXPECT_EQ(crossoverN(r, "early", "cpu"), -std::numeric_limits<double>::infinity());
}

TEST(Sweep, JsonAndCsvReadBack) {
  CpuBackend cpu;
  SweepSpec spec = smallSpec();
  spec.params["performer"]["features"] = "32";
  spec.knobs.length_scale = 4;  // the local generator's knob
  SweepResult r = runSweep(spec, cpuFactory(cpu));
  r.machine = {{"cpu", "test"}};
  const nlohmann::json j = toJson(r);
  const SweepResult back = sweepFromJson(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.complete, r.complete);
  EXPECT_EQ(back.spec.knobs, r.spec.knobs);
  EXPECT_EQ(back.spec.knobs.length_scale, 4);
  {  // results written before the knobs were kept read back with the defaults
    nlohmann::json older = j;
    older["spec"].erase("knobs");
    EXPECT_EQ(sweepFromJson(older).spec.knobs, InputSpec{});
  }
  EXPECT_EQ(back.spec.mechanisms, r.spec.mechanisms);
  EXPECT_EQ(back.spec.ns, r.spec.ns);
  EXPECT_EQ(back.spec.params, r.spec.params);
  ASSERT_EQ(back.points.size(), r.points.size());
  for (std::size_t i = 0; i < r.points.size(); ++i) {
    EXPECT_EQ(back.points[i].mechanism, r.points[i].mechanism);
    EXPECT_EQ(back.points[i].params, r.points[i].params);
    EXPECT_EQ(back.points[i].rel_error.mean, r.points[i].rel_error.mean);
    EXPECT_EQ(back.points[i].time_median, r.points[i].time_median);
    EXPECT_EQ(back.points[i].peak_bytes, r.points[i].peak_bytes);
  }
  EXPECT_EQ(r.find("performer", "cpu", 64)->params.at("features"), "32");
  EXPECT_THROW(sweepFromJson(nlohmann::json{{"format", "other"}}), UserError);
  nlohmann::json broken = j;
  broken["spec"].erase("n");
  EXPECT_THROW(sweepFromJson(broken), UserError);

  // CSV: the header is sweepCsvColumns(); every row has as many fields (quotes respected).
  const std::string csv = toCsv(r);
  std::istringstream in(csv);
  std::string line;
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (c == '"') {
        if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
          cells.back() += '"';
          ++i;
        } else {
          quoted = !quoted;
        }
      } else if (c == ',' && !quoted) {
        cells.emplace_back();
      } else {
        cells.back() += c;
      }
    }
    rows.push_back(cells);
  }
  ASSERT_EQ(rows.size(), r.points.size() + 1);
  EXPECT_EQ(rows[0], sweepCsvColumns());
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), sweepCsvColumns().size()) << csv;
    EXPECT_EQ(rows[i][0], r.points[i - 1].mechanism);
    EXPECT_NEAR(std::stod(rows[i][16]), r.points[i - 1].rel_error.mean, 1e-11 * r.points[i - 1].rel_error.mean);  // 12 digits
  }
}

TEST(Sweep, LraPresetHasThePublishedModels) {
  const SweepSpec s = lraPreset();
  EXPECT_EQ(s.ns, (std::vector<Index>{1024, 2048, 3072, 4096}));
  EXPECT_EQ(s.preset, "lra");
  const auto& rows = lraPublished();
  ASSERT_EQ(rows.size(), 9u);
  EXPECT_EQ(rows.front().mechanism, "exact");
  for (const auto& row : rows) {
    EXPECT_NE(findMechanism(row.mechanism), nullptr) << row.mechanism;
    if (row.mechanism != "exact") {
      EXPECT_NE(std::find(s.mechanisms.begin(), s.mechanisms.end(), row.mechanism), s.mechanisms.end());
    }
  }
  EXPECT_EQ(s.params.at("longformer").at("globals"), "0");
}

TEST(Sweep, BadSpecsFailBeforeAnythingRuns) {
  CpuBackend cpu;
  SweepSpec s = smallSpec();
  s.mechanisms = {"nope"};
  EXPECT_THROW(runSweep(s, cpuFactory(cpu)), UserError);
  s = smallSpec();
  s.params["performer"]["no_such_param"] = "1";
  EXPECT_THROW(runSweep(s, cpuFactory(cpu)), UserError);
  s = smallSpec();
  s.ns = {};
  EXPECT_THROW(runSweep(s, cpuFactory(cpu)), UserError);
}

TEST(Compare, ReusesExactAndItsReferenceOnlyWhenTheyAreTheSameComputation) {
  CpuBackend cpu;
  InputSpec in;
  in.n = 96;
  in.d = in.dv = 16;
  in.seed = 5;
  const auto performer = requireMechanism("performer");
  CompareOptions o;
  o.run.seed = in.seed;
  auto params = [&](double features) { return Params::resolveNumbers(performer->params(), {{"features", features}}); };
  const auto first = std::make_shared<const Comparison>(compare(generate(in), performer, params(32), cpu, o));
  EXPECT_FALSE(first->reused_reference);
  // A parameter change on the same inputs: exact and the float64 reference are taken over, and the error
  // is what a fresh comparison gives.
  CompareOptions reuse = o;
  reuse.reuse = first;
  const Comparison again = compare(generate(in), performer, params(64), cpu, reuse);
  const Comparison fresh = compare(generate(in), performer, params(64), cpu, o);
  EXPECT_TRUE(again.reused_reference);
  EXPECT_EQ(again.relative_error, fresh.relative_error);
  EXPECT_TRUE(again.reference == fresh.reference);
  EXPECT_TRUE(again.exact.output == fresh.exact.output);
  // Other inputs or another causal setting: computed anew. Reformer's headline is against the same standard
  // exact attention (reused); its own target, shared-QK attention, is its second figure.
  InputSpec other = in;
  other.seed = 6;
  EXPECT_FALSE(compare(generate(other), performer, params(64), cpu, reuse).reused_reference);
  CompareOptions causal = reuse;
  causal.run.causal = true;
  EXPECT_FALSE(compare(generate(in), performer, params(64), cpu, causal).reused_reference);
  const auto reformer = requireMechanism("reformer");
  const Comparison shared_qk = compare(generate(in), reformer, Params::resolve(reformer->params(), {}), cpu, reuse);
  EXPECT_TRUE(shared_qk.reused_reference);
  EXPECT_EQ(shared_qk.reference_label, first->reference_label);
  ASSERT_TRUE(shared_qk.own.has_value());
  EXPECT_NE(shared_qk.own->label, first->reference_label);
  // The reference and the weight metrics deferred (the GUI draws first): the same numbers once added.
  CompareOptions later = o;
  later.with_reference = false;
  later.with_weight_metrics = false;
  Comparison deferred = compare(generate(in), performer, params(64), cpu, later);
  EXPECT_TRUE(std::isnan(deferred.relative_error));
  EXPECT_EQ(deferred.reference.size(), 0);
  EXPECT_NE(describeError(deferred).find("computing"), std::string::npos);
  addReference(deferred);
  addWeightMetrics(deferred);
  EXPECT_EQ(deferred.relative_error, fresh.relative_error);
  EXPECT_EQ(deferred.row_tv, fresh.row_tv);
}

}  // namespace
}  // namespace attn
