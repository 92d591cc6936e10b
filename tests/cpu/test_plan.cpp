// Memory guards (attention/plan.h): every mechanism's plan against the heap peak it really reaches, and the
// refusals of runs that would exhaust the memory, before anything large is allocated.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "attention/heap_counter.h"
#include "attention/plan.h"
#include "attention/runner.h"
#include "attention/sweep.h"
#include "tests/cpu/test_util.h"

namespace attn::test {
namespace {

using Settings = std::map<std::string, std::string>;

/// Per mechanism: one setting per parameter that drives its memory, heavy at N = 512 (most saturate there).
const std::map<std::string, std::vector<Settings>>& heavySettings() {
  static const std::map<std::string, std::vector<Settings>> s{
      {"autonl", {{{"stride", "1"}, {"order", "quadratic"}, {"ratio", "1"}}, {{"ratio", "1"}, {"order", "linear"}}}},
      {"bigbird", {{{"block", "256"}, {"random", "16"}}, {{"form", "etc"}, {"globals", "2"}, {"block", "256"}}}},
      {"axial", {{{"width", "1"}}, {{"width", "512"}}}},
      {"bp-transformer", {{{"k", "512"}}}},
      {"cbam", {{{"kernel", "15"}, {"width", "1"}}}},
      {"ccnet", {{{"recurrence", "4"}}, {{"width", "1"}, {"recurrence", "2"}}}},
      {"fractal", {{{"depth", "10"}}}},
      {"tensor-low-rank", {{{"rank", "256"}}, {{"width", "1"}, {"rank", "64"}}}},
      {"clustered", {{{"variant", "i-clustered"}, {"topk", "1024"}, {"clusters", "1024"}}, {{"bits", "256"}}}},
      {"compressive",
       {{{"segment", "1048576"}, {"memory", "1048576"}}, {{"segment", "8"}, {"rate", "1"}, {"compressed", "1048576"}}}},
      {"emanet", {{{"bases", "256"}, {"iterations", "20"}}}},
      {"etc", {{{"segment", "1"}}, {{"radius", "1048576"}}}},
      {"fast-weight", {{{"feature_map", "favor"}, {"features", "4096"}}, {{"nu", "3"}}}},
      {"gcnet", {{{"width", "1"}}}},
      {"gmat", {{{"memory", "4096"}}, {{"window", "1048576"}}}},
      {"informer", {{{"factor", "1048576"}}}},
      {"interlaced", {{{"block_h", "1"}, {"block_w", "1"}}, {{"block_h", "4096"}, {"block_w", "4096"}}}},
      {"input-independent",
       {{{"pattern", "band"}, {"sigma", "4096"}},
        {{"pattern", "blocks"}, {"block", "1048576"}},
        {{"pattern", "stripes"}, {"stripes", "65536"}}}},
      {"kronecker", {{{"variant", "qkv"}, {"width", "1"}}, {{"width", "512"}}}},
      {"jukebox", {{{"row_length", "1"}, {"variant", "column"}}, {{"row_length", "1048576"}}}},
      {"lambda", {{{"scope", "1048576"}}}},
      {"linformer", {{{"k", "65536"}}, {{"projection", "svd-oracle"}}}},
      {"longformer", {{{"window", "1048576"}, {"heads", "8"}}, {{"globals", "4096"}}}},
      {"memformer", {{{"slots", "4096"}}, {{"segment", "1048576"}}}},
      {"memory-compressed", {{{"compression", "1"}}, {{"layer", "local"}, {"block", "1048576"}}}},
      {"multiscale", {{{"window", "65536"}}}},
      {"nystromformer", {{{"landmarks", "8192"}}}},
      {"performer", {{{"features", "8192"}}}},
      {"performer-v1", {{{"features", "8192"}}}},
      {"permutohedral", {{{"features", "8"}}}},  // (refine > 1 is planned for isolated points, far above a cluster)
      {"product-key-memory", {{{"n", "256"}, {"topk", "1048576"}}}},
      {"reformer", {{{"rounds", "8"}, {"buckets", "2"}, {"chunk", "1048576"}}}},
      {"rfa", {{{"features", "8192"}}}},
      {"routing", {{{"clusters", "1"}}}},
      {"sac", {{{"alpha", "1048576"}}, {{"edges", "random"}, {"alpha", "1048576"}}}},
      {"scram", {{{"radius", "65536"}}, {{"random_keys", "1048576"}}}},
      {"set-transformer", {{{"inducing", "4096"}}}},
      {"sinkhorn", {{{"block", "1048576"}}}},
      {"slim-performer", {{{"features", "8192"}, {"slices", "1"}}, {{"slices", "65536"}}}},
      {"smyrf", {{{"cluster_size", "1048576"}, {"hashes", "8"}}}},
      {"sparse-transformer", {{{"stride", "1048576"}}}},
      {"star-transformer", {{{"rounds", "16"}}}},
      {"synthesizer", {{{"variant", "factorized"}, {"rank", "4096"}}, {{"variant", "dense"}, {"hidden", "1024"}}}},
      {"talk-conv", {{{"left", "1048576"}, {"right", "1048576"}}}},
      {"transformer-on-a-diet",
       {{{"variant", "cascade"}, {"w0", "1048576"}, {"layers", "8"}, {"layer", "7"}},
        {{"variant", "dilated-memory"}, {"kernel", "64"}, {"layers", "8"}, {"layer", "7"}}}},
  };
  return s;
}

struct Measured {
  double peak = 0, planned = 0;
};

Measured measure(const Mechanism& m, const Inputs& in, const Settings& settings) {
  CpuBackend cpu(2);
  const Params params = Params::resolve(m.params(), settings);
  RunOptions o;
  const RunPlan plan = m.plan(RunShape::of(in), params, o);
  const std::int64_t live = heap::liveBytes();
  heap::resetPeak();
  { const Result r = m.run(in, params, cpu, o); }
  return {double(heap::peakBytes() - live), plan.bytes()};
}

std::string describe(const Settings& s) {
  std::string out;
  for (const auto& [k, v] : s) out += (out.empty() ? "" : " ") + k + "=" + v;
  return out.empty() ? "defaults" : out;
}

TEST(MemoryPlan, EveryMechanismsPlanHoldsItsHeapPeak) {
  if (!heap::available()) GTEST_SKIP() << "no counting allocator in this build (sanitizers interpose malloc)";
  for (const auto& m : mechanisms()) {
    const std::string& id = m->info().id;
    // Defaults at two N; the heavy settings at the larger (at N = 256 most of them stay within the slack).
    for (Index n : {Index(256), Index(512)}) {
      std::vector<Settings> settings{{}};
      if (auto it = heavySettings().find(id); n == 512 && it != heavySettings().end())
        settings.insert(settings.end(), it->second.begin(), it->second.end());
      const Inputs in = mechanismInputs(Generator::Clustered, n);
      for (const Settings& s : settings) {
        Measured r;
        try {
          r = measure(*m, in, s);
        } catch (const UserError& e) {  // refused by the mechanism itself: nothing allocated to compare
          std::printf("%-28s N=%-5lld %-40s refused: %s\n", id.c_str(), (long long)n, describe(s).c_str(), e.what());
          continue;
        }
        std::printf("%-28s N=%-5lld %-40s measured %9.3f MB planned %9.3f MB\n", id.c_str(), (long long)n,
                    describe(s).c_str(), r.peak * 1e-6, r.planned * 1e-6);
        EXPECT_LE(r.peak, r.planned * 1.3 + 2e6) << id << " at N = " << n << ", " << describe(s);
        EXPECT_LE(r.planned, r.peak * 4 + 4e6) << id << " at N = " << n << ", " << describe(s);
      }
    }
  }
}

// ---- the runs of issue 21 that grew until the system stopped them: refused first ----

struct Refusal {
  std::string message;
  double seconds = 0, heap_bytes = 0;
};

/// attn::compare at `n` (d = 64, clustered input) with `budget` bytes: the UserError it throws, how long it
/// took and the heap it used above the inputs'.
Refusal refuse(const std::string& id, const Settings& settings, Index n, std::int64_t budget) {
  InputSpec spec = defaultInput();
  spec.n = n;
  spec.generator = Generator::Clustered;
  Inputs in = generate(spec);
  const auto m = requireMechanism(id);
  CpuBackend cpu;
  CompareOptions o;
  o.memory_budget = budget;
  Refusal r;
  const std::int64_t live = heap::liveBytes();
  heap::resetPeak();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)compare(std::move(in), m, Params::resolve(m->params(), settings), cpu, o);
    ADD_FAILURE() << id << " at N = " << n << " ran instead of being refused";
  } catch (const UserError& e) {
    r.message = e.what();
  }
  r.seconds = millisecondsSince(t0) * 1e-3;
  r.heap_bytes = double(heap::peakBytes() - live);
  return r;
}

void expectRefusedEarly(const Refusal& r) {
  EXPECT_LT(r.seconds, 0.5) << r.message;
  if (heap::available()) {
    EXPECT_LT(r.heap_bytes, 64e6) << "allocated before refusing: " << r.message;
  }
}

TEST(MemoryGuard, LongformerWithAHugeWindowAndSixteenHeadsIsRefusedNamingTheWindow) {
  // 12 GB and growing on main; the budget is this machine's default (half its memory) unless that is huge.
  const Refusal r = refuse("longformer", {{"window", "1048576"}, {"heads", "16"}}, 16384, std::int64_t(8e9));
  expectRefusedEarly(r);
  EXPECT_NE(r.message.find("Longformer at N = 16384"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("memory budget of 8 GB"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("lower window (the sequence is covered at window = 32768) or heads"), std::string::npos)
      << r.message;
}

TEST(MemoryGuard, ReformerWithManyRoundsAndOneChunkIsRefusedNamingTheRounds) {
  const Refusal r =
      refuse("reformer", {{"rounds", "16"}, {"buckets", "2"}, {"chunk", "1048576"}}, 4096, std::int64_t(2e9));
  expectRefusedEarly(r);
  EXPECT_NE(r.message.find("Reformer (LSH attention) at N = 4096"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("lower rounds"), std::string::npos) << r.message;
}

TEST(MemoryGuard, ProductKeyMemoryWithAHugeTopKBlamesTopKNotN) {
  const Refusal r = refuse("product-key-memory", {{"n", "1024"}, {"topk", "1048576"}}, 256, std::int64_t(4e9));
  expectRefusedEarly(r);
  EXPECT_NE(r.message.find("at N = 256"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("lower topk"), std::string::npos) << r.message;
  EXPECT_EQ(r.message.find("smaller N"), std::string::npos) << r.message;
}

TEST(MemoryGuard, ALowerBudgetRefusesWhatTheDefaultRuns) {
  const auto exact = requireMechanism("exact");
  const RunShape shape{1024, 1024, 64, 64};
  const RunPlan plan = comparisonPlan(*exact, shape, Params::resolve(exact->params(), {}), RunOptions{});
  EXPECT_GT(plan.bytes(), 1e6);
  EXPECT_NO_THROW(checkMemory(*exact, shape, plan, 0));
  EXPECT_NO_THROW(checkMemory(*exact, shape, plan, std::int64_t(plan.bytes()) + 1));
  try {
    checkMemory(*exact, shape, plan, std::int64_t(plan.bytes() / 2));
    ADD_FAILURE() << "not refused below its plan";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("try a smaller N"), std::string::npos) << e.what();
  }
  // Through compare: the same run, refused at 1 MB.
  const Refusal r = refuse("exact", {}, 1024, 1'000'000);
  EXPECT_NE(r.message.find("Exact softmax attention at N = 1024"), std::string::npos) << r.message;
}

TEST(MemoryGuard, TheBudgetTakesOnlyAPositiveFiniteSizeTheMachineHas) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {-5.0, 0.0, std::nan(""), inf, -inf, 1e308}) {
    try {
      (void)memoryBudgetFromGb(bad);
      ADD_FAILURE() << bad << " GB accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("--memory-budget"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(memoryBudgetFromGb(0.5), 500'000'000);
  const double machine = double(physicalMemory()) * 1e-9;
  try {
    (void)memoryBudgetFromGb(machine * 2);
    ADD_FAILURE() << "twice the machine's memory accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("this machine's"), std::string::npos) << e.what();
  }
}

TEST(MemoryGuard, ASweepRefusesItsFirstNWhenTheBudgetIsTooSmall) {
  SweepSpec spec;
  spec.mechanisms = {"longformer"};
  spec.ns = {256};
  spec.seeds = 1;
  spec.repeats = 1;
  spec.d = 32;
  spec.params["longformer"] = {{"window", "1048576"}, {"heads", "16"}};
  spec.memory_budget = 2'000'000;  // 2 MB: exact's plan fits, Longformer's sixteen full windows do not
  CpuBackend cpu(2);
  const SweepResult r = runSweep(spec, [&](const std::string&) -> Backend& { return cpu; });
  const SweepPoint* exact = r.find("exact", "cpu", 256);
  const SweepPoint* longformer = r.find("longformer", "cpu", 256);
  ASSERT_TRUE(exact && longformer);
  EXPECT_EQ(exact->status, "ok") << exact->message;
  EXPECT_EQ(longformer->status, "skipped");
  EXPECT_NE(longformer->message.find("lower window"), std::string::npos) << longformer->message;
}

}  // namespace
}  // namespace attn::test
