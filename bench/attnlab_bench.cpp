// attnlab-bench: times every registered mechanism and the backends' dense attention as N grows, on
// the CPU and (when a Vulkan device exists) on the GPU. Google Benchmark; compare rows as ratios.
// Before timing, it checks the Vulkan dense kernel against the float64 reference on fresh inputs and
// prints the relative error, so a timing table never comes from a wrong kernel.
//   attnlab-bench --benchmark_filter='dense/'          the primitive alone (device time on the GPU)
//   attnlab-bench --benchmark_filter='mechanism/.*/cpu'
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "render/gpu/backend_factory.h"

namespace {

// Backends live until main() releases them: the Vulkan device must go before static teardown.
std::map<std::string, std::unique_ptr<attn::Backend>>& backends() {
  static std::map<std::string, std::unique_ptr<attn::Backend>> all;
  return all;
}

attn::Backend* backendNamed(const std::string& name) {
  auto& slot = backends()[name];
  if (!slot) {
    if (name == "cpu") {
      slot = std::make_unique<attn::CpuBackend>();
    } else {
      try {
        slot = attn::gpu::makeBackend(attn::gpu::BackendChoice::Vulkan).backend;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "attnlab-bench: no Vulkan backend: %s\n", e.what());
        return nullptr;
      }
    }
  }
  return slot.get();
}

attn::Inputs inputsFor(attn::Index n, attn::Index d, attn::Generator g = attn::Generator::Clustered) {
  attn::InputSpec spec;
  spec.n = n;
  spec.d = d;
  spec.dv = d;
  spec.generator = g;
  return attn::generate(spec);
}

// The primitive: fused exact attention. On Vulkan the time is the device's (timestamps).
void denseAttention(benchmark::State& state, const std::string& backend_name, bool causal) {
  attn::Backend* backend = backendNamed(backend_name);
  if (!backend) {
    state.SkipWithError("no Vulkan device");
    return;
  }
  const attn::Inputs in = inputsFor(state.range(0), state.range(1), attn::Generator::Gaussian);
  attn::DenseAttentionOptions options;
  options.causal = causal;
  auto* gpu = dynamic_cast<attn::gpu::VulkanBackend*>(backend);
  for (auto _ : state) {
    attn::AttentionOutput out = backend->denseAttention(in.q, in.k, in.v, options);
    benchmark::DoNotOptimize(out.out.data());
    if (gpu) state.SetIterationTime(gpu->lastDeviceMs() * 1e-3);
  }
  const double n = double(state.range(0)), d = double(state.range(1));
  const double flops = (causal ? 2.0 : 4.0) * n * n * d;
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

void runMechanism(benchmark::State& state, const std::string& id, const std::string& backend_name) {
  attn::Backend* backend = backendNamed(backend_name);
  if (!backend) {
    state.SkipWithError("no Vulkan device");
    return;
  }
  const attn::Inputs in = inputsFor(state.range(0), 64);
  const auto mech = attn::requireMechanism(id);
  const attn::Params params = attn::Params::resolve(mech->params(), {});
  attn::RunOptions options;
  double flops = 0;
  for (auto _ : state) {
    attn::Result r = mech->run(in, params, *backend, options);
    benchmark::DoNotOptimize(r.output.data());
    flops = r.cost.flops;
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void checkVulkan() {
  attn::Backend* gpu = backendNamed("vulkan");
  if (!gpu) return;
  std::printf("check: %s (%s)\n", gpu->info().device.c_str(), gpu->info().driver.c_str());
  for (attn::Index n : {1000, 4096})
    for (bool causal : {false, true}) {
      const attn::Inputs in = inputsFor(n, 64, attn::Generator::Gaussian);
      attn::DenseAttentionOptions o;
      o.causal = causal;
      try {
        const attn::AttentionOutput out = gpu->denseAttention(in.q, in.k, in.v, o);
        const attn::MatrixD ref =
            attn::referenceAttention(in.q.cast<double>(), in.k.cast<double>(), in.v.cast<double>(), o);
        const double error = attn::relativeError(out.out, ref);
        std::printf("check: dense N=%lld d=64 causal=%d  rel. error vs float64 = %.2e  %s\n", (long long)n,
                    int(causal), error, error < 1e-5 ? "ok" : "FAIL");
      } catch (const std::exception& e) {
        std::printf("check: dense N=%lld d=64 causal=%d  FAIL: %s\n", (long long)n, int(causal), e.what());
      }
    }
}

void registerAll() {
  for (const std::string backend : {"cpu", "vulkan"})
    for (bool causal : {false, true}) {
      auto* b = benchmark::RegisterBenchmark(("dense/" + backend + (causal ? "/causal" : "/full")).c_str(),
                                             [backend, causal](benchmark::State& s) { denseAttention(s, backend, causal); });
      b->ArgNames({"N", "d"})->Unit(benchmark::kMillisecond);
      for (long n : {256, 1024, 4096, 16384})
        for (long d : {64, 128}) {
          if (backend == "cpu" && n > 4096) continue;  // minutes on two cores
          b->Args({n, d});
        }
      if (backend == "vulkan") b->UseManualTime();
      else b->UseRealTime();
    }
  for (const auto& m : attn::mechanisms())
    for (const std::string backend : {"cpu", "vulkan"}) {
      const std::string id = m->info().id;
      benchmark::RegisterBenchmark(("mechanism/" + id + "/" + backend).c_str(),
                                   [id, backend](benchmark::State& s) { runMechanism(s, id, backend); })
          ->ArgName("N")
          ->RangeMultiplier(4)
          ->Range(256, 4096)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  bool check = true;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-check") check = false;
    else argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (check) checkVulkan();
  registerAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  backends().clear();
  return 0;
}
