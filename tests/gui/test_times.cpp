// The times the window shows are the times `attnlab run` measures for the same settings (issue 20, item 5):
// exact attention and a mechanism at N = 2048 in the window, and through attn::compare as commandRun calls it.
#include <gtest/gtest.h>

#include <QTest>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "app/gui/main_window.h"
#include "attention/runner.h"
#include "render/gpu/backend_factory.h"
#include "render/scene/build.h"
#include "render/view/heatmap_window.h"
#include "tests/gui/gui_test_util.h"

namespace attnlab::gui::test {
namespace {

constexpr int k_timeout_ms = 120000;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

struct Times {
  double exact_ms = 0, mechanism_ms = 0;
};

/// What `attnlab run -m MECHANISM --n N --backend cpu` prints as "time … (exact: …)": commandRun's
/// compareFromArgs (inputs generated, a fresh backend, attn::compare with the run's causal setting and
/// seed, then attn::measureTimes), `repeats` times, the median of each.
Times cliTimes(const std::string& id, const attn::InputSpec& spec, int repeats) {
  std::vector<double> exact, mechanism;
  const auto m = attn::requireMechanism(id);
  for (int r = 0; r < repeats; ++r) {
    auto selection = attn::gpu::makeBackend(attn::gpu::BackendChoice::Cpu);
    attn::CompareOptions options;
    options.run.seed = spec.seed;
    attn::Comparison c =
        attn::compare(attn::generate(spec), m, attn::Params::resolve(m->params(), {}), *selection.backend, options);
    attn::applyTiming(c, attn::measureTimes(c, *selection.backend, options.run));
    exact.push_back(c.exact_ms);
    mechanism.push_back(c.attentionMs());
  }
  return {median(exact), median(mechanism)};
}

/// The times a freshly opened window shows for `id` on `spec` once it is idle: read from the viewport's
/// captions (what a person reads) and checked against the comparison they come from.
Times windowTimes(const std::string& id, const attn::InputSpec& spec) {
  GuiOptions o;
  o.mechanism = id;
  o.backend = "cpu";
  o.input = spec;
  MainWindow window(o);
  window.resize(1400, 900);
  window.show();
  EXPECT_TRUE(QTest::qWaitForWindowExposed(&window));
  EXPECT_TRUE(window.waitForIdle(k_timeout_ms));
  const auto outcome = window.lastOutcome();
  if (!outcome || !outcome->ok || !outcome->comparison || !window.viewport()) {
    ADD_FAILURE() << "no result in the window";
    return {};
  }
  const attn::Comparison& c = *outcome->comparison;
  // The shown captions carry exactly these numbers.
  std::string captions;
  for (const scene::Panel& p : window.viewport()->scene().panels)
    for (const std::string& caption : p.captions) captions += caption + "\n";
  EXPECT_NE(captions.find(scene::formatMs(c.exact_ms)), std::string::npos) << captions;
  EXPECT_NE(captions.find(scene::formatMs(c.attentionMs())), std::string::npos) << captions;
  // Runs this short are measured again once the picture is drawn: the median of a few, as attnlab run does.
  EXPECT_GE(c.exact_runs, 3);
  EXPECT_GE(c.approx_runs, 3);
  return {c.exact_ms, c.attentionMs()};
}

bool within(double shown, double cli, double tolerance) { return std::abs(shown - cli) <= tolerance * cli; }

TEST(WindowTimes, AgreeWithAttnlabRunOnTheSameInputWithin20Percent) {
  attn::InputSpec spec;
  spec.n = 2048;
  spec.d = 64;
  spec.dv = 64;
  spec.seed = 1;
  // Linformer (≈ 40 ms here) rather than a 3 ms mechanism: on two cores shared with other jobs a short
  // parallel run waits a whole scheduler slice whenever one of its threads is preempted (Longformer at N = 2048
  // takes 3 ms or 11 ms from one second to the next, in attnlab run as in the window). Still, each attempt brackets the window with two `attnlab run` measurements (each the median of
  // three) and the window's times must agree within 20 % with one of them; up to five attempts. The window
  // measured as it used to (one run, while the viewport draws) is 2–4× off and fails.
  std::string report;
  bool agree = false;
  for (int attempt = 0; attempt < 5 && !agree; ++attempt) {
    const Times before = cliTimes("linformer", spec, 3);
    const Times shown = windowTimes("linformer", spec);
    const Times after = cliTimes("linformer", spec, 3);
    char line[240];
    std::snprintf(line, sizeof line,
                  "attempt %d: window exact %.2f ms, linformer %.2f ms; attnlab run before %.2f, %.2f ms, after %.2f, "
                  "%.2f ms\n",
                  attempt + 1, shown.exact_ms, shown.mechanism_ms, before.exact_ms, before.mechanism_ms, after.exact_ms,
                  after.mechanism_ms);
    report += line;
    agree = (within(shown.exact_ms, before.exact_ms, 0.2) || within(shown.exact_ms, after.exact_ms, 0.2)) &&
            (within(shown.mechanism_ms, before.mechanism_ms, 0.2) || within(shown.mechanism_ms, after.mechanism_ms, 0.2));
  }
  std::printf("%s", report.c_str());
  EXPECT_TRUE(agree) << report;
  for (const std::string& message : takeQtMessages()) ADD_FAILURE() << "Qt warning: " << message;
}

}  // namespace
}  // namespace attnlab::gui::test
