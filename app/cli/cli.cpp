#include "app/cli/cli.h"

#include <CLI/CLI.hpp>
#include <QGuiApplication>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <iostream>
#include <map>

#include "app/cli/demo.h"
#include "app/cli/summary.h"
#include "app/gui/gui.h"
#include "attention/npy.h"
#include "attention/runner.h"
#include "render/gpu/backend_factory.h"

namespace attnlab::cli {

std::string describeInputsText(const attn::Comparison& c);

namespace {

using nlohmann::json;

bool haveDisplay() {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  return (x && *x) || (w && *w);
}

int fail(const std::string& message) {
  std::fprintf(stderr, "attnlab: error: %s\n", message.c_str());
  return 1;
}

std::string padRight(std::string s, size_t width) {
  // Pads by displayed characters (UTF-8 continuation bytes do not count).
  size_t shown = 0;
  for (unsigned char ch : s) shown += (ch & 0xC0) != 0x80;
  if (shown < width) s.append(width - shown, ' ');
  return s;
}

struct RunArgs {
  std::string mechanism;
  std::vector<std::string> sets;
  long n = 256, d = 64, seed = 1;
  double temperature = 1.0;
  std::string input = "clustered";
  std::string q, k, v;
  std::string backend = "auto";
  bool causal = false;
  std::string out, weights;
  bool json = false;
};

std::map<std::string, std::string> parseSets(const std::vector<std::string>& sets) {
  std::map<std::string, std::string> raw;
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw attn::UserError("--set takes NAME=VALUE (for example --set window=128), not '" + s + "'");
    raw[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return raw;
}

attn::Inputs loadInputs(const RunArgs& a) {
  const int files = int(!a.q.empty()) + int(!a.k.empty()) + int(!a.v.empty());
  if (files == 0) {
    attn::InputSpec spec;
    spec.n = a.n;
    spec.d = a.d;
    spec.dv = a.d;
    spec.seed = static_cast<std::uint64_t>(a.seed);
    spec.generator = attn::parseGenerator(a.input);
    spec.temperature = a.temperature;
    return attn::generate(spec);
  }
  if (files != 3) throw attn::UserError("give all three of --q, --k and --v (or none, to generate inputs)");
  attn::Inputs in;
  in.q = attn::npy::load(a.q).value();
  in.k = attn::npy::load(a.k).value();
  in.v = attn::npy::load(a.v).value();
  attn::validateInputs(in.q, in.k, in.v);
  in.spec.n = in.q.rows();
  in.spec.d = in.q.cols();
  in.spec.dv = in.v.cols();
  in.spec.seed = static_cast<std::uint64_t>(a.seed);
  in.spec.source = "files " + a.q + ", " + a.k + ", " + a.v;
  return in;
}

int commandRun(const RunArgs& a) {
  const auto mechanism = attn::requireMechanism(a.mechanism);
  const attn::Params params = attn::Params::resolve(mechanism->params(), parseSets(a.sets));
  attn::Inputs inputs = loadInputs(a);
  constexpr attn::Index kMaxWeightEntries = attn::Index(1) << 26;
  if (!a.weights.empty() && inputs.n() * inputs.m() > kMaxWeightEntries)
    throw attn::UserError("--weights writes the dense " + std::to_string(inputs.n()) + "×" +
                          std::to_string(inputs.m()) + " matrix, more than 64M entries; use N ≤ 8192");
  auto selection = attn::gpu::makeBackend(attn::gpu::parseBackendChoice(a.backend));
  if (!selection.notice.empty()) std::fprintf(stderr, "attnlab: %s\n", selection.notice.c_str());
  attn::CompareOptions options;
  options.run.causal = a.causal;
  options.run.seed = static_cast<std::uint64_t>(a.seed);
  const attn::Comparison c = attn::compare(std::move(inputs), mechanism, params, *selection.backend, options);
  // Nothing is written until everything was computed; each file is written atomically.
  attn::Matrix dense_weights;
  if (!a.weights.empty()) dense_weights = c.approx.explanation.weights.dense(kMaxWeightEntries);
  if (!a.out.empty()) attn::npy::save(a.out, c.approx.output);
  if (!a.weights.empty()) attn::npy::save(a.weights, dense_weights);

  if (a.json) {
    std::cout << comparisonJson(c).dump(2) << "\n";
    return 0;
  }
  const auto& info = mechanism->info();
  std::printf("%s on %s (%s backend)\n", info.title.c_str(), describeInputsText(c).c_str(), c.backend_name.c_str());
  std::printf("  time        %.3f ms   (exact: %.3f ms)\n", c.approx_ms, c.exact_ms);
  std::printf("  error       %s\n", attn::describeError(c).c_str());
  if (c.row_tv >= 0) std::printf("  row TV      %.4g\n", c.row_tv);
  std::printf("  cost        %.4g scored pairs, %.4g FLOPs, %.4g MB peak\n", c.approx.cost.scored_pairs,
              c.approx.cost.flops, double(c.approx.cost.peak_bytes) / 1e6);
  for (const auto& n : params.notes()) std::printf("  note        %s\n", n.c_str());
  for (const auto& n : c.approx.explanation.notes) std::printf("  note        %s\n", n.c_str());
  if (!a.out.empty()) std::printf("  wrote       %s (%lld×%lld output)\n", a.out.c_str(), (long long)c.approx.output.rows(), (long long)c.approx.output.cols());
  if (!a.weights.empty()) std::printf("  wrote       %s (implied weights)\n", a.weights.c_str());
  return 0;
}

int commandList(bool as_json) {
  if (as_json) {
    json all = json::array();
    for (const auto& m : attn::mechanisms()) all.push_back(mechanismJson(*m));
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  // Columns as wide as their widest entry (displayed characters) plus two spaces.
  auto shown = [](const std::string& t) {
    size_t n = 0;
    for (unsigned char ch : t) n += (ch & 0xC0) != 0x80;
    return n;
  };
  size_t w_id = 2, w_title = 5, w_complexity = 10;
  for (const auto& m : attn::mechanisms()) {
    w_id = std::max(w_id, shown(m->info().id));
    w_title = std::max(w_title, shown(m->info().title));
    w_complexity = std::max(w_complexity, shown(m->info().complexity));
  }
  std::printf("%s%s%s%s%s%s\n", padRight("id", w_id + 2).c_str(), padRight("title", w_title + 2).c_str(),
              padRight("family", 8).c_str(), padRight("year", 6).c_str(), padRight("complexity", w_complexity + 2).c_str(),
              "causal");
  for (const auto& m : attn::mechanisms()) {
    const auto& i = m->info();
    std::printf("%s%s%s%s%s%s\n", padRight(i.id, w_id + 2).c_str(), padRight(i.title, w_title + 2).c_str(),
                padRight(attn::familyShort(i.family), 8).c_str(), padRight(std::to_string(i.year), 6).c_str(),
                padRight(i.complexity, w_complexity + 2).c_str(), i.causal == attn::CausalSupport::No ? "no" : "yes");
    std::printf("    %s\n    %s (arXiv %s)\n", i.idea.c_str(), i.paper.c_str(), i.arxiv.c_str());
    for (const auto& p : m->params()) {
      std::string range = p.kind == attn::ParamKind::Choice ? "" : "[" + std::to_string((long long)p.min) + ", " + std::to_string((long long)p.max) + "]";
      if (p.kind == attn::ParamKind::Choice) {
        for (const auto& c : p.choices) range += (range.empty() ? "" : "|") + c;
      }
      if (p.kind == attn::ParamKind::Flag) range = "true|false";
      std::printf("      --set %s  %s  %s\n", padRight(p.name + "=", 18).c_str(), padRight(range, 20).c_str(), p.help.c_str());
    }
  }
  return 0;
}

int commandInfo(bool as_json) {
  const json m = machineJson();
  if (as_json) {
    std::cout << m.dump(2) << "\n";
    return 0;
  }
  std::printf("attnlab %s\n", m["attnlab"].get<std::string>().c_str());
  std::printf("  CPU       %s (%u hardware threads)\n", m["cpu"].get<std::string>().c_str(), m["hardware_threads"].get<unsigned>());
  std::printf("  Eigen     %s   Qt %s   %s\n", m["eigen"].get<std::string>().c_str(), m["qt"].get<std::string>().c_str(),
              m["compiler"].get<std::string>().c_str());
  if (m["vulkan_devices"].empty()) std::printf("  Vulkan    none: %s\n", m.value("vulkan_reason", std::string("no device")).c_str());
  for (const auto& d : m["vulkan_devices"])
    std::printf("  Vulkan %u  %s (%s), driver %s, API %s%s\n", d["index"].get<unsigned>(), d["name"].get<std::string>().c_str(),
                d["type"].get<std::string>().c_str(), d["driver"].get<std::string>().c_str(),
                d["api_version"].get<std::string>().c_str(),
                d["usable"].get<bool>() ? "" : ("  (unusable: " + d["unusable_reason"].get<std::string>() + ")").c_str());
  return 0;
}

// Qt wants a private runtime folder and warns without one; give it one rather than print noise.
void ensureRuntimeDir() {
  const char* dir = std::getenv("XDG_RUNTIME_DIR");
  if (dir && *dir) return;
  char tmpl[] = "/tmp/attnlab-runtime-XXXXXX";
  if (const char* made = ::mkdtemp(tmpl)) ::setenv("XDG_RUNTIME_DIR", made, 1);
}

int commandDemo(const DemoOptions& options) {
  ensureRuntimeDir();
  if (!haveDisplay()) qputenv("QT_QPA_PLATFORM", "offscreen");
  int argc = 1;
  char name[] = "attnlab";
  char* argv[] = {name, nullptr};
  QGuiApplication app(argc, argv);
  std::string report;
  const int figures = writeDemo(options, &report);
  std::printf("attnlab: wrote %d figures and a report to %s\n", figures, report.c_str());
  return 0;
}

}  // namespace



int run(int argc, char** argv) {
  CLI::App app{"attnlab — see what efficient attention does to the N×N attention matrix.\n"
               "Bare `attnlab` opens the GUI (or, without a display, writes the default figures and report)."};
  app.set_version_flag("--version", std::string("attnlab ") + ATTNLAB_VERSION);
  app.require_subcommand(0, 1);

  bool list_json = false, info_json = false;
  auto* list = app.add_subcommand("list", "Every mechanism: id, title, family, year, paper, complexity, causal, params");
  list->add_flag("--json", list_json, "Machine-readable output");
  auto* info = app.add_subcommand("info", "Versions, CPU, Vulkan devices and drivers");
  info->add_flag("--json", info_json, "Machine-readable output");

  RunArgs ra;
  auto* run = app.add_subcommand("run", "Run one mechanism beside exact attention");
  run->add_option("--mechanism,-m", ra.mechanism, "Mechanism id (see `attnlab list`)")->required();
  run->add_option("--set", ra.sets, "Parameter NAME=VALUE (repeatable)")->allow_extra_args(false);
  run->add_option("--n", ra.n, "Tokens N (generated inputs)")->capture_default_str();
  run->add_option("--d", ra.d, "Head size d (generated inputs)")->capture_default_str();
  run->add_option("--seed", ra.seed, "Seed of inputs, rotations, features")->capture_default_str();
  run->add_option("--input", ra.input, "Generator: " + attn::generatorNames("|"))->capture_default_str();
  run->add_option("--temperature", ra.temperature, "Logit temperature τ of generated inputs (Q is scaled by 1/τ)")
      ->capture_default_str();
  run->add_option("--q", ra.q, "Queries from a .npy file (N×d)");
  run->add_option("--k", ra.k, "Keys from a .npy file (M×d)");
  run->add_option("--v", ra.v, "Values from a .npy file (M×dv)");
  run->add_option("--backend", ra.backend, "cpu|vulkan|auto")->capture_default_str();
  run->add_flag("--causal", ra.causal, "Causal attention (key j ≤ query i)");
  run->add_option("--out", ra.out, "Write the output O (N×dv) to a .npy file");
  run->add_option("--weights", ra.weights, "Write the implied N×M weights to a .npy file");
  run->add_flag("--json", ra.json, "Print a JSON summary");

  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Render the default figures and a small HTML report into a folder");
  demo_cmd->add_option("--out", demo.out_dir, "Folder")->capture_default_str();
  demo_cmd->add_option("--backend", demo.backend, "cpu|vulkan|auto")->capture_default_str();
  demo_cmd->add_option("--n", demo.n, "Tokens N")->capture_default_str();

  gui::GuiOptions gui_options;
  long gui_n = 256;
  std::string gui_input = "local";  // the default mechanism, Longformer, is at its best on banded attention
  auto* gui_cmd = app.add_subcommand("gui", "Open the GUI (what bare `attnlab` does when a display exists)");
  gui_cmd->add_option("--mechanism,-m", gui_options.mechanism, "Mechanism to show first")->capture_default_str();
  gui_cmd->add_option("--n", gui_n, "Tokens N")->capture_default_str();
  gui_cmd->add_option("--backend", gui_options.backend, "cpu|vulkan|auto")->capture_default_str();
  gui_cmd->add_option("--input", gui_input, "Generator: " + attn::generatorNames("|"))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "attnlab: error: %s (see attnlab --help)\n", e.what());
    return 2;
  }

  try {
    if (*list) return commandList(list_json);
    if (*info) return commandInfo(info_json);
    if (*run) return commandRun(ra);
    if (*demo_cmd) return commandDemo(demo);
    if (*gui_cmd || haveDisplay()) {
      ensureRuntimeDir();
      gui_options.input.n = gui_n;
      gui_options.input.generator = attn::parseGenerator(gui_input);
      return gui::runGui(argc, argv, gui_options);
    }
    std::printf("attnlab: no display found, so rendering the default figures instead of opening the GUI\n");
    return commandDemo(demo);
  } catch (const attn::UserError& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory; try a smaller N");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
}

std::string describeInputsText(const attn::Comparison& c) {
  const auto& s = c.inputs.spec;
  std::string text = "N=" + std::to_string(c.inputs.n()) + ", d=" + std::to_string(c.inputs.q.cols()) + ", ";
  text += s.source.empty() ? attn::generatorName(s.generator) + " input, seed " + std::to_string(s.seed) : s.source;
  return text;
}

}  // namespace attnlab::cli
