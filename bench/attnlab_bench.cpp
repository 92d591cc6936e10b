// attnlab-bench: times every Backend primitive and every registered mechanism as N grows (powers of
// two), on the CPU and (when a Vulkan device exists) on the GPU. Google Benchmark: each row is the
// median of 3 repetitions (GPU primitives: device time from timestamps; mechanisms: wall time); it
// prints a table and writes JSON (attnlab-bench.json unless --benchmark_out names another file).
// Compare rows as ratios. Before timing, it checks the Vulkan dense kernel against the float64
// reference on fresh inputs and prints the relative error, so a table never comes from a wrong kernel.
//   attnlab-bench --benchmark_filter='dense/'          exact attention alone
//   attnlab-bench --benchmark_filter='primitive/sparse' one primitive, both backends
//   attnlab-bench --benchmark_filter='mechanism/.*/cpu'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <vector>
#include <memory>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/multiply.h"
#include "attention/random.h"
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
void denseAttention(benchmark::State& state, const std::string& backend_name, bool causal, bool fp16 = false) {
  attn::Backend* backend = backendNamed(backend_name);
  if (!backend) {
    state.SkipWithError("no Vulkan device");
    return;
  }
  const attn::Inputs in = inputsFor(state.range(0), state.range(1), attn::Generator::Gaussian);
  attn::DenseAttentionOptions options;
  options.causal = causal;
  options.allow_fp16 = fp16;
  auto* gpu = dynamic_cast<attn::gpu::VulkanBackend*>(backend);
  for (auto _ : state) {
    attn::AttentionOutput out = backend->denseAttention(in.q, in.k, in.v, options);
    benchmark::DoNotOptimize(out.out.data());
    if (gpu && fp16 && gpu->lastDensePath() != "fp16-coopmat") {
      state.SkipWithError(gpu->coopNotice().empty() ? "no cooperative-matrix (tensor-core) path on this device"
                                                    : gpu->coopNotice().c_str());
      return;
    }
    if (gpu) state.SetIterationTime(gpu->lastDeviceMs() * 1e-3);
  }
  const double n = double(state.range(0)), d = double(state.range(1));
  const double flops = (causal ? 2.0 : 4.0) * n * n * d;
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

// The other primitives, at the sizes mechanisms use them (d = 64, m = 256 random features, a band
// of 256 keys plus 16 global tokens for sparse attention, 64 buckets / centroids, a 512×512 tile).
void primitive(benchmark::State& state, const std::string& backend_name, const std::string& what) {
  attn::Backend* backend = backendNamed(backend_name);
  if (!backend) {
    state.SkipWithError("no Vulkan device");
    return;
  }
  const attn::Index n = state.range(0), d = 64;
  const attn::Inputs in = inputsFor(n, d, attn::Generator::Gaussian);
  attn::Rng rng(5);
  const attn::Matrix omega = rng.gaussian(256, d);
  const attn::FeatureMapOptions favor{attn::FeatureMap::PositiveRandom, &omega, 0.35f, attn::FeatureShift::PerRow};
  const attn::Matrix phi_q = attn::CpuBackend().featureMap(in.q, favor), phi_k = attn::CpuBackend().featureMap(in.k, favor);
  const attn::Matrix rotations = rng.gaussian(d, 32), centroids = rng.gaussian(64, d);
  attn::Pattern band;
  band.rows = band.cols = n;
  band.components = {"window", "global"};
  band.row_ptr.push_back(0);
  for (attn::Index i = 0; i < n; ++i) {
    for (attn::Index j = 0; j < n; ++j)
      if (j < 16 || (j >= i - 128 && j < i + 128)) band.col.push_back(std::int32_t(j)), band.component.push_back(j < 16);
    band.row_ptr.push_back(attn::Index(band.col.size()));
  }
  attn::WeightKernel kernel;
  kernel.a = std::make_shared<const attn::Matrix>(in.q);
  kernel.b = std::make_shared<const attn::Matrix>(in.k);
  kernel.scale = 0.125f;
  kernel.row_term = attn::Vector::Constant(n, -std::log(float(n)));
  auto* gpu = dynamic_cast<attn::gpu::VulkanBackend*>(backend);
  double flops = 0;
  for (auto _ : state) {
    if (what == "sparse") {
      benchmark::DoNotOptimize(backend->sparseAttention(in.q, in.k, in.v, band, 0, nullptr).out.data());
      flops = 4.0 * double(band.nnz()) * double(d);
    } else if (what == "favor") {
      benchmark::DoNotOptimize(backend->featureMap(in.q, favor).data());
      flops = 2.0 * double(n) * 256 * double(d);
    } else if (what == "linear" || what == "linear-causal") {
      benchmark::DoNotOptimize(backend->linearAttention(phi_q, phi_k, in.v, what == "linear-causal").data());
      flops = 4.0 * double(n) * 256 * double(d);
    } else if (what == "hash") {
      benchmark::DoNotOptimize(backend->hashRotations(in.k, rotations).data());
      flops = 2.0 * double(n) * 32 * double(d);
    } else if (what == "centroid") {
      benchmark::DoNotOptimize(backend->nearestCentroid(in.k, centroids).data());
      flops = 2.0 * double(n) * 64 * double(d);
    } else if (what == "matmul") {
      benchmark::DoNotOptimize(backend->matmul(in.q, in.k, true).data());
      flops = 2.0 * double(n) * double(n) * double(d);
    } else if (what == "tile") {
      const attn::TileSize px{std::min<attn::Index>(n, 512), std::min<attn::Index>(n, 512)};
      benchmark::DoNotOptimize(backend->weightTile(kernel, {0, n}, {0, n}, px, attn::Pooling::Max).data());
      flops = 2.0 * double(n) * double(n) * double(d);
    }
    if (gpu) state.SetIterationTime(gpu->lastDeviceMs() * 1e-3);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// What the viewport asks for on a zoom or pan step (the GUI's pan/zoom target, measurable without Qt):
// the block now on screen of the exact softmax weights (N×N, the factored form the GUI pools on the
// backend), max-pooled to a 768×768 panel. zoom 1: the whole matrix; zoom 8: an N/8 × N/8 block in the
// middle. A sharp frame after each step needs this within a frame's time (33 ms for 30 fps); the step
// itself is drawn at once by stretching the textures already there.
void viewportRepool(benchmark::State& state, const std::string& backend_name) {
  attn::Backend* backend = backendNamed(backend_name);
  if (!backend) {
    state.SkipWithError("no Vulkan device");
    return;
  }
  const attn::Index n = state.range(0), zoom = state.range(1), d = 64;
  const attn::Inputs in = inputsFor(n, d);
  attn::WeightKernel kernel;
  kernel.a = std::make_shared<const attn::Matrix>(in.q);
  kernel.b = std::make_shared<const attn::Matrix>(in.k);
  kernel.scale = 0.125f;
  kernel.row_term = attn::Vector::Constant(n, -std::log(float(n)));
  const attn::Index span = n / zoom, begin = (n - span) / 2;
  const attn::Range window{begin, begin + span};
  const attn::TileSize px{std::min<attn::Index>(span, 768), std::min<attn::Index>(span, 768)};
  auto* gpu = dynamic_cast<attn::gpu::VulkanBackend*>(backend);
  for (auto _ : state) {
    benchmark::DoNotOptimize(backend->weightTile(kernel, window, window, px, attn::Pooling::Max).data());
    if (gpu) state.SetIterationTime(gpu->lastDeviceMs() * 1e-3);
  }
  state.counters["frames/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}

// One weight tile's product, a·bᵀ (256 rows of a rank-k factor against 2048 columns), on one core with
// each instruction set: pictures of factored mechanisms (Performer's, Linformer's) are made of these.
void multiplyTransposed(benchmark::State& state, attn::Isa isa) {
  if (isa == attn::Isa::Avx512 && !attn::avx512Available()) {
    state.SkipWithError("no AVX-512 on this CPU");
    return;
  }
  const attn::Index m = 256, n = 2048, k = state.range(0);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  attn::Matrix a(m, k), b(n, k);
  for (attn::Index i = 0; i < a.size(); ++i) a.data()[i] = normal(rng);
  for (attn::Index i = 0; i < b.size(); ++i) b.data()[i] = normal(rng);
  for (auto _ : state) benchmark::DoNotOptimize(attn::multiplyTransposed(a, b, isa).data());
  state.counters["GMAC/s"] = benchmark::Counter(double(m * n * k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
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
  options.explain = false;  // the mechanism's own cost, as sweeps time it: no display-only views
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
  auto* vulkan = dynamic_cast<attn::gpu::VulkanBackend*>(gpu);
  bool no_fp16 = false;
  for (bool fp16 : {false, true})
    for (attn::Index n : {1000, 4096})
      for (bool causal : {false, true}) {
        if (fp16 && no_fp16) continue;
        const attn::Inputs in = inputsFor(n, 64, attn::Generator::Gaussian);
        attn::DenseAttentionOptions o;
        o.causal = causal;
        o.allow_fp16 = fp16;
        try {
          const attn::AttentionOutput out = gpu->denseAttention(in.q, in.k, in.v, o);
          const std::string path = vulkan ? vulkan->lastDensePath() : "?";
          if (fp16 && path != "fp16-coopmat") {
            std::printf("check: dense fp16: not available here (%s)\n",
                        vulkan && !vulkan->coopNotice().empty() ? vulkan->coopNotice().c_str() : "no cooperative matrices");
            no_fp16 = true;
            continue;
          }
          const attn::MatrixD ref =
              attn::referenceAttention(in.q.cast<double>(), in.k.cast<double>(), in.v.cast<double>(), o);
          const double error = attn::relativeError(out.out, ref);
          const double bound = fp16 ? 2e-3 : 1e-5;
          std::printf("check: dense %s N=%lld d=64 causal=%d  rel. error vs float64 = %.2e  %s\n", path.c_str(),
                      (long long)n, int(causal), error, error < bound ? "ok" : "FAIL");
        } catch (const std::exception& e) {
          std::printf("check: dense N=%lld d=64 causal=%d  FAIL: %s\n", (long long)n, int(causal), e.what());
        }
      }
}

void registerAll() {
  for (const std::string variant : {"cpu", "vulkan", "vulkan-fp16"})
    for (bool causal : {false, true}) {
      const std::string backend = variant == "cpu" ? "cpu" : "vulkan";
      const bool fp16 = variant == "vulkan-fp16";
      auto* b = benchmark::RegisterBenchmark(("dense/" + variant + (causal ? "/causal" : "/full")).c_str(),
                                             [backend, causal, fp16](benchmark::State& s) {
                                               denseAttention(s, backend, causal, fp16);
                                             });
      b->ArgNames({"N", "d"})->Unit(benchmark::kMillisecond);
      for (long n : {256, 1024, 2048, 4096, 8192, 16384})
        for (long d : {64, 128}) {
          if (backend == "cpu" && n > 4096) continue;  // minutes on two cores
          b->Args({n, d});
        }
      if (backend == "vulkan") b->UseManualTime();
      else b->UseRealTime();
      b->Repetitions(3)->ReportAggregatesOnly(true);
    }
  for (const std::string what : {"sparse", "favor", "linear", "linear-causal", "hash", "centroid", "matmul", "tile"})
    for (const std::string backend : {"cpu", "vulkan"}) {
      auto* b = benchmark::RegisterBenchmark(("primitive/" + what + "/" + backend).c_str(),
                                             [backend, what](benchmark::State& s) { primitive(s, backend, what); });
      b->ArgName("N")->RangeMultiplier(2)->Range(256, 8192)->Unit(benchmark::kMillisecond);
      b->Repetitions(3)->ReportAggregatesOnly(true);
      if (backend == "vulkan") b->UseManualTime();
      else b->UseRealTime();
    }
  for (const std::string backend : {"cpu", "vulkan"}) {
    auto* b = benchmark::RegisterBenchmark(("viewport/repool/" + backend).c_str(),
                                           [backend](benchmark::State& s) { viewportRepool(s, backend); });
    b->ArgNames({"N", "zoom"})->Unit(benchmark::kMillisecond);
    for (long n : {2048, 16384})
      for (long zoom : {1, 8}) b->Args({n, zoom});
    b->Repetitions(3)->ReportAggregatesOnly(true);
    if (backend == "vulkan") b->UseManualTime();
    else b->UseRealTime();
  }
  for (const auto& [isa, name] : {std::pair{attn::Isa::Avx2, "avx2"}, std::pair{attn::Isa::Avx512, "avx512"}})
    benchmark::RegisterBenchmark((std::string("kernel/multiply-transposed/") + name).c_str(),
                                 [isa = isa](benchmark::State& s) { multiplyTransposed(s, isa); })
        ->ArgName("k")
        ->Arg(64)
        ->Arg(1024)
        ->Unit(benchmark::kMillisecond)
        ->Repetitions(3)
        ->ReportAggregatesOnly(true)
        ->UseRealTime();
  for (const auto& m : attn::mechanisms())
    for (const std::string backend : {"cpu", "vulkan"}) {
      const std::string id = m->info().id;
      benchmark::RegisterBenchmark(("mechanism/" + id + "/" + backend).c_str(),
                                   [id, backend](benchmark::State& s) { runMechanism(s, id, backend); })
          ->ArgName("N")
          ->RangeMultiplier(2)
          ->Range(256, 4096)
          ->Unit(benchmark::kMillisecond)
          ->Repetitions(3)
          ->ReportAggregatesOnly(true)
          ->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  bool check = true, has_out = false;
  std::vector<char*> args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-check") {
      check = false;
      continue;
    }
    if (a.rfind("--benchmark_out=", 0) == 0) has_out = true;
    args.push_back(argv[i]);
  }
  std::string out_arg = "--benchmark_out=attnlab-bench.json", format_arg = "--benchmark_out_format=json";
  if (!has_out) {
    args.push_back(out_arg.data());
    args.push_back(format_arg.data());
  }
  int count = int(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  if (check) checkVulkan();
  registerAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  backends().clear();
  return 0;
}
