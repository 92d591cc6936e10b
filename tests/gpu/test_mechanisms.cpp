// Every registered mechanism runs on the Vulkan backend and agrees with the CPU backend: outputs and
// implied-weight tiles, full and causal (where the mechanism supports it), on every input generator
// and on awkward sizes. A new mechanism in the registry is covered without touching this file.
#include <sstream>

#include "attention/mechanism.h"
#include "gpu_test_util.h"

namespace attn::test {
namespace {

// Mechanisms are chains of the primitives (each checked to ≈ 1e-5 in test_primitives.cpp); their
// outputs are O(1) combinations of value rows. Agreement within 2e-4·(1 + max|out|) leaves room for
// the rounding of several stages while any mechanism that runs differently (a wrong primitive, a
// different hash bucket, a lost row) shows as O(0.1) differences.
constexpr double kOutTol = 2e-4;
constexpr double kTileTol = 2e-4;

struct Setting {
  Generator generator;
  Index n, d, dv;
  bool causal;
};

using Mechanisms = GpuTest;

TEST_F(Mechanisms, EveryRegisteredMechanismAgreesBetweenBackends) {
  CpuBackend cpu(2);
  const std::vector<Setting> settings = {
      {Generator::Clustered, 256, 64, 64, false}, {Generator::Local, 200, 32, 16, true},
      {Generator::Gaussian, 77, 16, 40, false},   {Generator::Periodic, 130, 128, 32, true},
      {Generator::Peaked, 1, 32, 8, false},       {Generator::Copy, 65, 64, 64, false},
      {Generator::Image, 384, 32, 16, false}};  // 24×16: the 2D mechanisms on a non-square grid
  int runs = 0;
  for (const auto& mechanism : mechanisms()) {
    const MechanismInfo& info = mechanism->info();
    for (const Setting& s : settings) {
      if (s.causal && info.causal == CausalSupport::No) continue;
      InputSpec spec;
      spec.generator = s.generator;
      spec.n = s.n, spec.d = s.d, spec.dv = s.dv, spec.seed = 7;
      const Inputs in = generate(spec);
      RunOptions o;
      o.causal = s.causal;
      o.seed = 3;
      std::ostringstream what;
      what << info.id << " N=" << s.n << " d=" << s.d << " dv=" << s.dv << " causal=" << s.causal
           << " generator=" << int(s.generator);
      Params params;
      Result on_cpu, on_gpu;
      try {
        params = Params::resolve(mechanism->params(), {});
        on_cpu = mechanism->run(in, params, cpu, o);
      } catch (const UserError& e) {  // a setting this mechanism refuses (the same on both backends)
        EXPECT_THROW(mechanism->run(in, params, gpu(), o), UserError) << what.str() << ": " << e.what();
        continue;
      }
      on_gpu = mechanism->run(in, params, gpu(), o);
      ++runs;
      ASSERT_EQ(on_gpu.output.rows(), on_cpu.output.rows()) << what.str();
      ASSERT_EQ(on_gpu.output.cols(), on_cpu.output.cols()) << what.str();
      const double scale = 1 + on_cpu.output.cwiseAbs().maxCoeff();
      EXPECT_TRUE(matchesReference(on_gpu.output, on_cpu.output.cast<double>(), {kOutTol * scale, 0})) << what.str();

      // The implied weights of the GPU run, tiled on the GPU, against those of the CPU run on the CPU.
      const ImpliedWeights& wg = on_gpu.explanation.weights;
      const ImpliedWeights& wc = on_cpu.explanation.weights;
      ASSERT_EQ(bool(wg), bool(wc)) << what.str();
      if (!wc) continue;
      const TileSize px{std::min<Index>(wc.rows(), 48), std::min<Index>(wc.cols(), 48)};
      for (Pooling pooling : {Pooling::Max, Pooling::Mean}) {
        const Matrix tg = wg.tile({0, wg.rows()}, {0, wg.cols()}, px, pooling, &gpu());
        const Matrix tc = wc.tile({0, wc.rows()}, {0, wc.cols()}, px, pooling);
        const double tile_scale = 1 + tc.cwiseAbs().maxCoeff();
        EXPECT_TRUE(matchesReference(tg, tc.cast<double>(), {kTileTol * tile_scale, 0}))
            << what.str() << " tile, pooling " << int(pooling);
      }
    }
  }
  EXPECT_GE(runs, int(mechanisms().size()));
  std::printf("[ mechanisms ] %zu mechanisms, %d runs on both backends\n", mechanisms().size(), runs);
}

// The gating modules (tensor low-rank, FracTAL) on a photo and on the change pair (keys from a second picture),
// with d = dv (FracTAL's identity stand-in) and d ≠ dv (its projection, a backend matmul): outputs and the maps
// they show (factors and the steps' factors) agree between the backends.
TEST_F(Mechanisms, GatingModulesAgreeOnAPhotoAndTheChangePair) {
  CpuBackend cpu(2);
  for (const char* id : {"tensor-low-rank", "fractal"})
    for (Index dv : {Index(16), Index(8)}) {
      InputSpec spec;
      spec.generator = Generator::Image;
      spec.image = "coffee";
      spec.image_b = "coffee-changed";
      spec.n = 48 * 32, spec.width = 48, spec.d = 16, spec.dv = dv, spec.seed = 7;
      const Inputs in = generate(spec);
      const auto m = requireMechanism(id);
      const Params params = Params::resolve(m->params(), {});
      RunOptions o;
      o.seed = 3;
      const Result on_cpu = m->run(in, params, cpu, o), on_gpu = m->run(in, params, gpu(), o);
      const std::string what = std::string(id) + " dv=" + std::to_string(dv);
      const double scale = 1 + on_cpu.output.cwiseAbs().maxCoeff();
      EXPECT_TRUE(matchesReference(on_gpu.output, on_cpu.output.cast<double>(), {kOutTol * scale, 0})) << what;
      std::vector<std::pair<const NamedMatrix*, const NamedMatrix*>> maps;
      ASSERT_EQ(on_gpu.explanation.factors.size(), on_cpu.explanation.factors.size()) << what;
      for (size_t f = 0; f < on_cpu.explanation.factors.size(); ++f)
        maps.push_back({&on_gpu.explanation.factors[f], &on_cpu.explanation.factors[f]});
      ASSERT_EQ(on_gpu.explanation.steps.size(), on_cpu.explanation.steps.size()) << what;
      for (size_t s = 0; s < on_cpu.explanation.steps.size(); ++s)
        for (size_t f = 0; f < on_cpu.explanation.steps[s].view->factors.size(); ++f)
          maps.push_back({&on_gpu.explanation.steps[s].view->factors[f], &on_cpu.explanation.steps[s].view->factors[f]});
      for (const auto& [g, c] : maps)
        EXPECT_TRUE(matchesReference(g->value, c->value.cast<double>(), {kOutTol, 0})) << what << " " << c->name;
    }
}

}  // namespace
}  // namespace attn::test
