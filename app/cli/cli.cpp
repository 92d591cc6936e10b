#include "app/cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <QGuiApplication>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <limits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "app/cli/demo.h"
#include "app/figures/views.h"
#include "app/gui/gui.h"
#include "app/io/image_file.h"
#include "app/report/folder_set.h"
#include "app/report/summary.h"
#include "app/report/sweep_report.h"
#include "attention/array_files.h"
#include "attention/npy.h"
#include "attention/plan.h"
#include "attention/runner.h"
#include "render/gpu/backend_factory.h"

namespace attnlab::cli {

using namespace attnlab::report;  // JSON descriptions, the machine, sweep reports


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

// The defaults of run, render and gui: attn::defaultInput().
const attn::InputSpec k_default_input = attn::defaultInput();

struct RunArgs {
  std::string mechanism;
  std::vector<std::string> sets;
  long n = long(k_default_input.n), d = long(k_default_input.d), seed = long(k_default_input.seed);
  double temperature = k_default_input.temperature;
  attn::InputSpec knobs = k_default_input;  // the generator's other knobs (--clusters, --noise, …)
  std::string input = attn::generatorName(k_default_input.generator);
  std::string q, k, v, qkv;
  std::string backend = "auto";
  bool causal = false;
  std::optional<double> budget_gb;  // --memory-budget; none: half the RAM
  std::string out, weights;
  bool json = false;
  std::string image, size, image_features = "rgbxy";  // --image NAME|FILE, --size WxH, --image-features
  std::string image_b;                                 // --image-b NAME|FILE: the change pair's second picture
  long filters = long(k_default_input.filters);
  const CLI::Option* input_option = nullptr;  // to tell a given --input or --n from its default
  const CLI::Option* n_option = nullptr;
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

/// "48x32" (or 48×32) as W and H; UserError otherwise.
std::pair<attn::Index, attn::Index> parseSize(const std::string& text) {
  std::string t = text;
  if (const auto times = t.find("×"); times != std::string::npos) t.replace(times, 2, "x");
  long long w = 0, h = 0;
  char tail = 0;
  if (std::sscanf(t.c_str(), "%lldx%lld%c", &w, &h, &tail) != 2 || w < 1 || h < 1 || w > attn::kMaxInputTokens ||
      h > attn::kMaxInputTokens || w * h > attn::kMaxInputTokens)
    throw attn::UserError("--size takes the image grid as WxH, two whole numbers ≥ 1 with W·H ≤ " +
                          std::to_string(attn::kMaxInputTokens) + " tokens (for example --size 48x32), not '" + text + "'");
  return {w, h};
}

/// The pixels of `name` given to `option` (--image, --image-b) when it is a file (read here, its size checked
/// against the memory budget first); null for a shipped photo's name.
std::shared_ptr<const attn::Picture> readPictureOption(const char* option, const std::string& name,
                                                       const attn::arrays::Limits& limits) {
  if (attn::shippedPicture(name)) return nullptr;
  std::error_code ec;
  const bool file = std::filesystem::exists(name, ec) || name.find('/') != std::string::npos ||
                    name.find('.') != std::string::npos;
  if (!file)
    throw attn::UserError(std::string(option) + " " + name + ": there is no shipped image or file of that name; the shipped images are " +
                          attn::shippedImageNames());
  // 3 floats a pixel: a picture larger than the budget allows is refused before it is decoded.
  const attn::Index budget_pixels = attn::Index(limits.max_bytes / 12);
  return std::make_shared<const attn::Picture>(
      attnlab::io::readImageFile(name, std::min(attn::kMaxImagePixels, std::max<attn::Index>(1, budget_pixels))).value());
}

/// --image, --image-b, --size, --image-features and --filters applied to a generated input's spec: a shipped
/// photo by name, any image file Qt reads by path.
void applyImageOptions(const RunArgs& a, attn::InputSpec& spec, const attn::arrays::Limits& limits) {
  const bool input_given = a.input_option && a.input_option->count() > 0;
  if (!a.image.empty()) {
    if (input_given && spec.generator != attn::Generator::Image)
      throw attn::UserError("--image gives the image input, but --input " + a.input + " asks for another: drop --input");
    spec.generator = attn::Generator::Image;
    spec.image = a.image;
    spec.picture = readPictureOption("--image", a.image, limits);
  }
  if (!a.image_b.empty()) {
    if (a.image.empty())
      throw attn::UserError("--image-b " + a.image_b + " is the second picture of a change pair: give the first with "
                            "--image NAME|FILE (for example --image coffee --image-b coffee-changed)");
    spec.image_b = a.image_b;
    spec.picture_b = readPictureOption("--image-b", a.image_b, limits);
  }
  spec.features = attn::parseImageFeatures(a.image_features);
  spec.filters = a.filters;
  if (!a.size.empty()) {
    if (spec.generator != attn::Generator::Image)
      throw attn::UserError("--size WxH gives the grid of the image input: add --image NAME or --input image (use --n for --input " +
                            a.input + ")");
    if (a.n_option && a.n_option->count() > 0)
      throw attn::UserError("give either --size WxH or --n (--size sets N = W·H)");
    const auto [w, h] = parseSize(a.size);
    spec.n = w * h;
    spec.width = w;
  }
}

attn::Inputs loadInputs(const RunArgs& a) {
  if (a.seed < 0) throw attn::UserError("--seed must be ≥ 0, not " + std::to_string(a.seed));
  // Files are checked against the budget (--memory-budget, else min(half the RAM, 4 GiB)) before they are read.
  attn::arrays::Limits limits;
  if (a.budget_gb) limits.max_bytes = std::uint64_t(attn::memoryBudgetFromGb(*a.budget_gb));
  const auto one = [&](const std::string& path) -> attn::Matrix {
    auto arrays = attn::arrays::load(path, limits).value();
    if (arrays.size() != 1) throw attn::UserError(path + ": expected one array, found " + std::to_string(arrays.size()));
    return std::move(arrays.begin()->second);
  };
  const int files = int(!a.q.empty()) + int(!a.k.empty()) + int(!a.v.empty());
  if (!a.qkv.empty()) {
    if (files) throw attn::UserError("give either --qkv or --q/--k/--v, not both");
    attn::Inputs in = attn::arrays::loadQkv(a.qkv, limits).value();
    in.spec.seed = static_cast<std::uint64_t>(a.seed);
    return in;
  }
  if (files == 0) {
    attn::InputSpec spec;
    spec.n = a.n;
    spec.d = a.d;
    spec.dv = a.d;
    spec.seed = static_cast<std::uint64_t>(a.seed);
    spec.generator = attn::parseGenerator(a.input);
    spec.temperature = a.temperature;
    attn::copyKnobs(a.knobs, spec);
    applyImageOptions(a, spec, limits);
    return attn::generate(spec);
  }
  if (files != 3) throw attn::UserError("give all three of --q, --k and --v (or none, to generate inputs)");
  attn::Inputs in;
  in.q = one(a.q);
  in.k = one(a.k);
  in.v = one(a.v);
  attn::validateInputs(in.q, in.k, in.v);
  in.spec.n = in.q.rows();
  in.spec.d = in.q.cols();
  in.spec.dv = in.v.cols();
  in.spec.seed = static_cast<std::uint64_t>(a.seed);
  in.spec.source = "files " + a.q + ", " + a.k + ", " + a.v;
  return in;
}

std::atomic<bool> g_interrupted{false};

extern "C" void onInterrupt(int) {
  if (g_interrupted.exchange(true)) {  // a second Ctrl-C: stop at once
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

std::string duration(double s) {
  if (!std::isfinite(s)) return "--:--";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

// Runs longer than this say how long they will take before they start, and show how far they are.
constexpr double k_long_run_seconds = 10;

// A comparison that may be long (exact attention always runs first, O(N²)): says its predicted time before it
// starts, shows progress on stderr, and lets Ctrl-C stop it cleanly (attn::Cancelled: exit 130, nothing written).
class WatchedRun {
 public:
  WatchedRun(const attn::Inputs& in, const attn::Mechanism& mechanism, const attn::Params& params,
             attn::Backend& backend, attn::CompareOptions& options) {
    g_interrupted = false;
    previous_ = std::signal(SIGINT, onInterrupt);
    options.run.cancel = &g_interrupted;
    const double seconds = attn::predictCompareSeconds(in, mechanism, params, options.run, backend,
                                                       options.with_reference);
    if (!(seconds >= k_long_run_seconds)) return;
    std::fprintf(stderr,
                 "attnlab: this run will take about %s (exact attention over N = %lld tokens, then %s and the "
                 "float64 reference; predicted from this machine's speed); Ctrl-C stops it\n",
                 duration(seconds).c_str(), (long long)in.n(), mechanism.info().id.c_str());
    tty_ = ::isatty(2) != 0;
    start_ = std::chrono::steady_clock::now();
    progress_ = [this](const std::string& stage, double fraction) { show(stage, fraction); };
    options.run.progress = &progress_;
  }
  ~WatchedRun() {
    std::signal(SIGINT, previous_);
    if (tty_ && shown_) std::fprintf(stderr, "\r\033[K");
  }
  WatchedRun(const WatchedRun&) = delete;
  WatchedRun& operator=(const WatchedRun&) = delete;

 private:
  void show(const std::string& stage, double fraction) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int percent = int(std::clamp(fraction, 0.0, 1.0) * 100);
    if (tty_) {
      std::fprintf(stderr, "\r\033[K  %s %3d%%  elapsed %s", stage.c_str(), percent, duration(elapsed).c_str());
    } else {  // a log: a line when a stage starts and at every quarter
      if (stage == stage_ && percent / 25 == quarter_) return;
      std::fprintf(stderr, "attnlab: %s %d%% (elapsed %s)\n", stage.c_str(), percent, duration(elapsed).c_str());
    }
    std::fflush(stderr);
    stage_ = stage;
    quarter_ = percent / 25;
    shown_ = true;
  }
  void (*previous_)(int) = SIG_DFL;
  attn::ProgressFn progress_;
  std::chrono::steady_clock::time_point start_;
  std::string stage_;
  int quarter_ = -1;
  bool tty_ = false, shown_ = false;
};

// The comparison RunArgs ask for (mechanism, parameters, inputs, backend); `check` sees the inputs
// before anything runs.
attn::Comparison compareFromArgs(const RunArgs& a, const std::function<void(const attn::Inputs&)>& check = {}) {
  const std::int64_t budget = a.budget_gb ? attn::memoryBudgetFromGb(*a.budget_gb) : 0;
  const auto mechanism = attn::requireMechanism(a.mechanism);
  const attn::Params params = attn::Params::resolve(mechanism->params(), parseSets(a.sets));
  attn::Inputs inputs = loadInputs(a);
  if (check) check(inputs);
  auto selection = attn::gpu::makeBackend(attn::gpu::parseBackendChoice(a.backend));
  if (!selection.notice.empty()) std::fprintf(stderr, "attnlab: %s\n", selection.notice.c_str());
  attn::CompareOptions options;
  options.run.causal = a.causal;
  options.run.seed = static_cast<std::uint64_t>(a.seed);
  options.memory_budget = budget;
  const WatchedRun watched(inputs, *mechanism, params, *selection.backend, options);
  attn::Comparison c = attn::compare(std::move(inputs), mechanism, params, *selection.backend, options);
  // The times a user can trust, the same way the window measures them: the median of a few runs, each warm.
  attn::applyTiming(c, attn::measureTimes(c, *selection.backend, options.run));
  return c;
}

int commandRun(const RunArgs& a) {
  constexpr attn::Index k_max_weight_entries = attn::Index(1) << 26;
  const attn::Comparison c = compareFromArgs(a, [&](const attn::Inputs& inputs) {
    if (!a.weights.empty() && inputs.n() * inputs.m() > k_max_weight_entries)
      throw attn::UserError("--weights writes the dense " + std::to_string(inputs.n()) + "×" +
                            std::to_string(inputs.m()) + " matrix, more than 64M entries; use N ≤ 8192");
  });
  const auto mechanism = c.mechanism;
  const attn::Params& params = c.params;
  // Nothing is written until everything was computed; each file is written atomically.
  attn::Matrix dense_weights;
  if (!a.weights.empty()) dense_weights = c.approx.explanation.weights.dense(k_max_weight_entries);
  if (!a.out.empty()) attn::npy::save(a.out, c.approx.output);
  if (!a.weights.empty()) attn::npy::save(a.weights, dense_weights);

  if (a.json) {
    std::cout << comparisonJson(c).dump(2) << "\n";
    return 0;
  }
  const auto& info = mechanism->info();
  std::printf("%s on %s (%s backend)\n", info.title.c_str(), attn::describeInputs(c.inputs.spec, c.inputs.n(), c.inputs.q.cols(), c.causal).c_str(), c.backend_name.c_str());
  std::printf("  time        %.3f ms   (exact: %.3f ms; %s)\n", c.attentionMs(), c.exact_ms, attn::describeTiming(c).c_str());
  if (c.approx.cost.display_ms() > 0)
    std::printf("  view only   %.3f ms   (built only to be seen; not in the time above)\n", c.approx.cost.display_ms());
  const std::vector<std::string> metrics = attn::describeMetrics(c);
  for (size_t k = 0; k < metrics.size(); ++k) std::printf("  %s%s\n", k == 0 ? "error       " : "            ", metrics[k].c_str());
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
    std::printf("    %s\n", attn::describeRelation(*m).c_str());
    for (const auto& line : i.conventions) std::printf("    %s\n", line.c_str());
    for (const auto& p : m->params()) {
      std::string range = p.kind == attn::ParamKind::Choice ? "" : "[" + attn::formatBound(p, p.min) + ", " + attn::formatBound(p, p.max) + "]";
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

// Integer options are checked on their text before CLI11 converts it, so no value is narrowed: one beyond the
// variable's type (strtoll saturates at 2^63 − 1) or beyond the int it is cast to (4294967297 seeds would wrap
// to 1) is refused, naming the option and its range.
CLI::Validator wholeNumber(long long lo = std::numeric_limits<long long>::min(),
                           long long hi = std::numeric_limits<long long>::max()) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        long long v = 0;
        const char* end = text.data() + text.size();
        const auto [stop, ec] = std::from_chars(text.data(), end, v);
        const bool full = lo == std::numeric_limits<long long>::min() && hi == std::numeric_limits<long long>::max();
        const std::string range = full ? "a whole number that fits in 64 bits"
                                       : "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
        if (ec != std::errc() || stop != end || v < lo || v > hi) return "must be " + range + ", not '" + text + "'";
        return {};
      },
      "");
}

// The generators' knobs beyond the temperature (each generator reads some: attn::generatorKnobs).
void addKnobOptions(CLI::App* cmd, attn::InputSpec& k) {
  cmd->add_option("--clusters", k.clusters, "clustered input: number of centres")->check(wholeNumber())->capture_default_str();
  cmd->add_option("--noise", k.noise, "clustered, periodic, copy, image input: relative noise around the structure")
      ->capture_default_str();
  cmd->add_option("--length-scale", k.length_scale, "local input: correlation length in tokens (the band's width)")
      ->capture_default_str();
  cmd->add_option("--period", k.period, "periodic input: the period in tokens")->check(wholeNumber())->capture_default_str();
  cmd->add_option("--heavy-hitters", k.heavy_hitters, "peaked input: keys every query attends to")
      ->check(wholeNumber())
      ->capture_default_str();
  cmd->add_option("--position-weight", k.position_weight,
                  "image input: λ, the weight of a pixel's position beside its colour")
      ->capture_default_str();
}

// The options of one run (mechanism, parameters, inputs, backend), shared by `run` and `render`.
void addRunOptions(CLI::App* cmd, RunArgs& a) {
  cmd->add_option("--mechanism,-m", a.mechanism, "Mechanism id (see `attnlab list`)")->required();
  cmd->add_option("--set", a.sets, "Parameter NAME=VALUE (repeatable)")->allow_extra_args(false);
  a.n_option = cmd->add_option("--n", a.n, "Tokens N (generated inputs)")->check(wholeNumber())->capture_default_str();
  cmd->add_option("--d", a.d, "Head size d (generated inputs)")->check(wholeNumber())->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of inputs, rotations, features (≥ 0)")
      ->check(wholeNumber(0))
      ->capture_default_str();
  a.input_option = cmd->add_option("--input", a.input, "Generator: " + attn::generatorNames("|"))->capture_default_str();
  cmd->add_option("--temperature", a.temperature, "Logit temperature τ of generated inputs (Q is scaled by 1/τ)")
      ->capture_default_str();
  addKnobOptions(cmd, a.knobs);
  cmd->add_option("--image", a.image,
                  "A photo for the image input (implies --input image): a shipped one (" + attn::shippedImageNames() +
                      ") or any PNG/JPEG file");
  cmd->add_option("--size", a.size, "The image input's grid WxH (sets N = W·H; instead of --n), e.g. 48x32");
  cmd->add_option("--image-b", a.image_b,
                  "The second picture of a co-registered change pair (with --image): the keys come from it, the "
                  "queries and values from --image; shipped: coffee-changed (with coffee)");
  cmd->add_option("--image-features", a.image_features,
                  "image input: rgbxy (colour and position) or filters (a fixed random 3×3 filter bank and position)")
      ->capture_default_str();
  cmd->add_option("--filters", a.filters, "image input with --image-features filters: the number of filters")
      ->check(wholeNumber(1, attn::kMaxImageFilters))
      ->capture_default_str();
  cmd->add_option("--q", a.q, "Queries from a .npy file (N×d)");
  cmd->add_option("--k", a.k, "Keys from a .npy file (M×d)");
  cmd->add_option("--v", a.v, "Values from a .npy file (M×dv)");
  cmd->add_option("--qkv", a.qkv,
                  "Q, K and V from one .npz or .safetensors file (arrays q, k, v or query, key, value), or a .npy "
                  "of Q, K, V stacked as (3, N, d)");
  cmd->add_option("--backend", a.backend, "cpu|vulkan|auto")->capture_default_str();
  cmd->add_flag("--causal", a.causal, "Causal attention (key j ≤ query i)");
  cmd->add_option("--memory-budget", a.budget_gb,
                  "GB the run may allocate, predicted from N and the parameters before it starts (default: half "
                  "the RAM)");
}

// Figures are drawn with QPainter (fonts need a QGuiApplication); headless on the offscreen platform.
std::unique_ptr<QGuiApplication> headlessApp() {
  ensureRuntimeDir();
  if (!haveDisplay()) qputenv("QT_QPA_PLATFORM", "offscreen");
  static int argc = 1;
  static char name[] = "attnlab";
  static char* argv[] = {name, nullptr};
  return std::make_unique<QGuiApplication>(argc, argv);
}

struct RenderArgs {
  std::string view = "weights", out, colormap = "viridis", scale = "log", pooling = "max";
  std::string order = "position", window, compare, width = "double", font_size;
  double dpi = 144, floor = 1e-4;
  long pixels = 0;  // 0: the whole matrix, up to scene::k_max_figure_pixels
  int step = 0;     // 1-based; 0: none
  bool times = true;
  std::string pixel;  // --pixel X,Y[;X,Y…] (the pixel view)
};

/// "ROW0:ROW1,COL0:COL1" in token indices (end exclusive) as the view model's window (fractions).
scene::ViewWindow parseWindow(const std::string& text, attn::Index n, attn::Index m) {
  long r0 = 0, r1 = 0, c0 = 0, c1 = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%ld:%ld,%ld:%ld%c", &r0, &r1, &c0, &c1, &tail) != 4)
    throw attn::UserError("--window takes ROW0:ROW1,COL0:COL1 (token indices, end exclusive), not '" + text + "'");
  if (r0 < 0 || c0 < 0 || r1 <= r0 || c1 <= c0 || r1 > n || c1 > m)
    throw attn::UserError("--window " + text + " must lie inside the " + std::to_string(n) + "×" + std::to_string(m) +
                          " matrix, each range non-empty");
  return {double(r0) / double(n), double(r1) / double(n), double(c0) / double(m), double(c1) / double(m)};
}

int commandRender(const RunArgs& a, const RenderArgs& r) {
  const auto view = fig::parseView(r.view);
  if (!view) throw attn::UserError("--view takes weights|pattern|groups|diff|tokens|step|pixel|gates, not '" + r.view + "'");
  const bool pixel_view = *view == fig::View::Pixel || *view == fig::View::Gates;
  const std::string over = "--view " + r.view;  // the pixel and gates views: maps over the picture
  if (!r.pixel.empty() && !pixel_view) throw attn::UserError("--pixel picks a pixel of --view pixel or gates; add --view pixel");
  if (pixel_view && !r.window.empty()) throw attn::UserError("--window zooms a matrix view: " + over + " shows the whole picture");
  if (pixel_view && !r.compare.empty()) throw attn::UserError(over + " shows one mechanism; leave out --compare");
  const auto colormap = scene::parseColormap(r.colormap);
  if (!colormap) throw attn::UserError("--colormap takes viridis|magma|cividis|diverging, not '" + r.colormap + "'");
  const auto scale = scene::parseScaleMode(r.scale);
  if (!scale) throw attn::UserError("--scale takes linear|log|rank, not '" + r.scale + "'");
  if (r.pooling != "max" && r.pooling != "mean") throw attn::UserError("--pooling takes max|mean, not '" + r.pooling + "'");
  if (r.pixels != 0 && (r.pixels < 16 || r.pixels > 4096)) throw attn::UserError("--pixels must lie between 16 and 4096");
  if (!(r.floor > 0 && r.floor < 1)) throw attn::UserError("--floor must lie between 0 and 1 (exclusive)");
  if (r.step < 0) throw attn::UserError("--step counts from 1");
  std::string ext = std::filesystem::path(r.out).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (ext != ".png" && ext != ".svg" && ext != ".pdf")
    throw attn::UserError("--out must name a .png, .svg or .pdf file, not '" + r.out + "'");
  const fig::FigureStyle style = fig::makeStyle(r.width, r.font_size);  // bad values fail before any work
  const std::int64_t budget = a.budget_gb ? attn::memoryBudgetFromGb(*a.budget_gb) : 0;
  std::vector<std::shared_ptr<const attn::Mechanism>> others;
  {
    std::stringstream in(r.compare);
    for (std::string id; std::getline(in, id, ',');)
      if (!id.empty()) others.push_back(attn::requireMechanism(id));
    if (others.size() > 3) throw attn::UserError("--compare takes at most 3 mechanisms beside --mechanism");
  }
  const auto mechanism = attn::requireMechanism(a.mechanism);
  const attn::Params params = attn::Params::resolve(mechanism->params(), parseSets(a.sets));
  attn::Inputs inputs = loadInputs(a);
  std::vector<attn::Index> picked;
  if (pixel_view) {  // before the run: the input must be a picture, and the pixels inside it
    if (!inputs.picture || inputs.grid_width <= 0)
      throw attn::UserError(over + " needs a picture: add --input image (and --image NAME|FILE); this input is " +
                            attn::generatorName(inputs.spec.generator));
    if (!r.pixel.empty()) picked = scene::parsePixels(r.pixel, inputs.n() / inputs.grid_width, inputs.grid_width);
  }
  auto selection = attn::gpu::makeBackend(attn::gpu::parseBackendChoice(a.backend));
  if (!selection.notice.empty()) std::fprintf(stderr, "attnlab: %s\n", selection.notice.c_str());
  attn::CompareOptions options;
  options.run.causal = a.causal;
  options.run.seed = static_cast<std::uint64_t>(a.seed);
  options.memory_budget = budget;
  scene::Subject subject;
  const WatchedRun watched(inputs, *mechanism, params, *selection.backend, options);
  subject.main = std::make_shared<const attn::Comparison>(
      attn::compare(std::move(inputs), mechanism, params, *selection.backend, options));
  std::vector<attn::CompanionSpec> specs;
  for (const auto& other : others) specs.push_back({other, attn::Params::resolve(other->params(), {})});
  subject.others = attn::compareCompanions(subject.main, specs, *selection.backend, options);
  subject.notes = subject.main->params.notes();
  const attn::BackendInfo backend = selection.backend->info();
  subject.backend_label = backend.name + (backend.device.empty() ? "" : " \xC2\xB7 " + backend.device);
  const attn::Comparison& c = *subject.main;

  scene::ViewRequest request;
  request.colormap = *colormap;
  request.scale = *scale;
  request.floor = float(r.floor);
  request.pooling = r.pooling == "mean" ? attn::Pooling::Mean : attn::Pooling::Max;
  request.pixels = r.pixels > 0 ? r.pixels : std::min(std::max(c.inputs.n(), c.inputs.m()), scene::k_max_figure_pixels);
  request.order = scene::resolveOrder(c, r.order);
  request.step = r.step - 1;
  request.times = r.times;
  request.minimap = false;
  if (!r.window.empty()) request.window = parseWindow(r.window, c.inputs.n(), c.inputs.m());
  request.pixels_picked = picked;
  if (pixel_view && r.step > 0) request.third = scene::Third::Step;
  request = fig::requestFor(c, r.step > 0 && *view == fig::View::Weights ? fig::View::Step : *view, request);
  auto app = headlessApp();
  const fig::SceneFigure figure = fig::sceneFigure(subject, request, style);
  fig::saveFigure(figure, r.out, r.dpi);
  const QSizeF size = figure.size();
  const std::string shown = r.step > 0 && *view == fig::View::Weights ? "step " + std::to_string(r.step) : r.view;
  std::printf("attnlab: wrote %s (%s view of %s, %.0f×%.0f pt%s)\n", r.out.c_str(), shown.c_str(), a.mechanism.c_str(),
              size.width(), size.height(),
              ext == ".png" ? (", " + std::to_string(int(std::ceil(size.width() * r.dpi / 72))) + "×" +
                               std::to_string(int(std::ceil(size.height() * r.dpi / 72))) + " px").c_str()
                            : "");
  for (const std::string& note : figure.scene().notes) std::printf("  note  %s\n", note.c_str());
  return 0;
}

struct SweepArgs {
  // The input as run's (attn::defaultInput()) but for N, a range of its own.
  std::string mechanisms = "all", n = "256:4096", backend = "cpu",
              input = attn::generatorName(k_default_input.generator), out, preset;
  std::vector<std::string> sets;
  long d = long(k_default_input.d), repeats = 3, seeds = 3;
  double temperature = k_default_input.temperature;
  std::optional<double> budget_gb;  // none: half the RAM
  attn::InputSpec knobs = k_default_input;
  bool causal = false, fixed_params = false, quiet = false;
};

int commandSweep(const SweepArgs& a, const std::string& command_line) {
  attn::SweepSpec spec;
  if (!a.preset.empty()) {
    if (a.preset != "lra") throw attn::UserError("--preset takes lra (the Long Range Arena efficiency table), not '" + a.preset + "'");
    spec = attn::lraPreset();
  } else {
    if (a.mechanisms == "all") {
      for (const auto& m : attn::mechanisms()) spec.mechanisms.push_back(m->info().id);
    } else {
      std::stringstream in(a.mechanisms);
      for (std::string id; std::getline(in, id, ',');)
        if (!id.empty()) spec.mechanisms.push_back(attn::requireMechanism(id)->info().id);
    }
    spec.ns = attn::parseTokenCounts(a.n);
    spec.seeds = int(a.seeds);
    spec.repeats = int(a.repeats);
  }
  if (a.out.empty()) throw attn::UserError("--out DIR is required: the folder for results.csv, results.json and report.html");
  spec.d = a.d;
  spec.generator = attn::parseGenerator(a.input);
  spec.temperature = a.temperature;
  spec.knobs = a.knobs;
  spec.causal = a.causal;
  spec.scale_with_n = !a.fixed_params;
  spec.memory_budget = a.budget_gb ? attn::memoryBudgetFromGb(*a.budget_gb) : 0;
  for (const auto& set : a.sets) {  // ID.NAME=VALUE
    const auto dot = set.find('.'), eq = set.find('=');
    if (dot == std::string::npos || eq == std::string::npos || dot > eq)
      throw attn::UserError("sweep --set takes ID.NAME=VALUE (for example --set performer.features=64), not '" + set + "'");
    spec.params[set.substr(0, dot)][set.substr(dot + 1, eq - dot - 1)] = set.substr(eq + 1);
  }
  if (spec.d < 1 || spec.d > 1024) throw attn::UserError("--d must lie between 1 and 1024");

  // Backends by name, made once; "auto" becomes whatever makeBackend picks.
  std::map<std::string, std::unique_ptr<attn::Backend>> backends;
  {
    auto selection = attn::gpu::makeBackend(attn::gpu::parseBackendChoice(a.backend));
    if (!selection.notice.empty()) std::fprintf(stderr, "attnlab: %s\n", selection.notice.c_str());
    const std::string name = selection.backend->info().name;
    if (a.backend == "vulkan" && name != "vulkan") throw attn::UserError("no usable Vulkan device: use --backend cpu");
    spec.backends = {name};
    backends[name] = std::move(selection.backend);
  }
  auto factory = [&](const std::string& name) -> attn::Backend& { return *backends.at(name); };

  checkReportBounds(spec, 0);  // what the report cannot draw is refused now, not after an hour
  FolderLock lock(a.out);      // a second sweep or report into this folder is refused while this one runs
  auto app = headlessApp();  // before the sweep: a missing font or platform fails now, not after an hour
  const bool tty = ::isatty(2) && !a.quiet;
  g_interrupted = false;
  std::signal(SIGINT, onInterrupt);
  std::fprintf(stderr, "attnlab: sweeping %zu mechanism(s) × %zu N × %d seed(s) on %s; Ctrl-C stops and keeps what finished\n",
               spec.mechanisms.size() + 1, spec.ns.size(), spec.seeds, spec.backends.front().c_str());
  // Test hook: a real SIGINT once this many points have finished (exercises the Ctrl-C path).
  const char* interrupt_env = std::getenv("ATTNLAB_SWEEP_INTERRUPT_AFTER");
  const int interrupt_after = interrupt_env && *interrupt_env ? std::atoi(interrupt_env) : -1;
  auto progress = [&](const attn::SweepProgress& p, const attn::SweepPoint* finished) {
    if (interrupt_after >= 0 && p.points_done >= interrupt_after && !g_interrupted) std::raise(SIGINT);
    if (tty) {
      const int width = 28;
      const double frac = p.work_total > 0 ? std::min(1.0, p.work_done / p.work_total) : 0;
      const int filled = int(frac * width);
      std::fprintf(stderr, "\r\033[K[%s%s] %3d%%  %d/%d points  %s  elapsed %s  ETA %s", std::string(std::size_t(filled), '#').c_str(),
                   std::string(std::size_t(width - filled), '.').c_str(), int(frac * 100), p.points_done, p.points_total,
                   p.current.c_str(), duration(p.elapsed_s).c_str(), duration(p.etaSeconds()).c_str());
      std::fflush(stderr);
    } else if (finished && !a.quiet) {
      std::fprintf(stderr, "attnlab: [%d/%d] %s N=%lld %s: %s%s  (ETA %s)\n", p.points_done, p.points_total,
                   finished->mechanism.c_str(), (long long)finished->n, finished->backend.c_str(),
                   finished->status == "ok" ? (QString::number(finished->time_median, 'g', 4).toStdString() + " ms").c_str()
                                            : finished->status.c_str(),
                   finished->message.empty() ? "" : (" — " + finished->message).c_str(), duration(p.etaSeconds()).c_str());
    }
  };
  attn::SweepResult result = attn::runSweep(spec, factory, progress, &g_interrupted);
  std::signal(SIGINT, SIG_DFL);
  if (tty) std::fprintf(stderr, "\n");
  result.machine = machineJson();
  if (result.points.empty()) {
    lock.removeIfUnused();
    std::fprintf(stderr, "attnlab: interrupted before any point finished; nothing was written to %s\n", a.out.c_str());
    return 130;
  }
  // An interrupted sweep never replaces an earlier complete report: its partial result goes beside it.
  std::string dir = a.out;
  if (!result.complete && std::filesystem::exists(std::filesystem::path(a.out) / "results.json")) {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::gmtime(&now));
    dir = (std::filesystem::path(a.out) / (std::string("interrupted-") + stamp)).string();
  }
  result.command = command_line;
  writeSweepReport(dir, result);
  const std::string report = (std::filesystem::absolute(dir) / "report.html").string();
  if (!result.complete) {
    std::fprintf(stderr, "attnlab: interrupted: %zu point(s) finished; wrote a partial report to %s%s\n", result.points.size(),
                 report.c_str(), dir != a.out ? " (the earlier report in the folder is untouched)" : "");
    return 130;
  }
  std::printf("attnlab: %zu points in %.0f s; wrote %s\n", result.points.size(), result.seconds, report.c_str());
  return 0;
}

int commandReport(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) readSweep(dir);  // its message: no folder of a sweep there
  FolderLock lock(dir);  // no sweep writes there meanwhile; what a killed one left is finished or removed first
  const attn::SweepResult r = readSweep(dir);
  auto app = headlessApp();
  writeSweepReport(dir, r);
  std::printf("attnlab: redrew %s from results.json (%zu points)\n",
              (std::filesystem::absolute(dir) / "report.html").string().c_str(), r.points.size());
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
  addRunOptions(run, ra);
  run->add_option("--out", ra.out, "Write the output O (N×dv) to a .npy file");
  run->add_option("--weights", ra.weights, "Write the implied N×M weights to a .npy file");
  run->add_flag("--json", ra.json, "Print a JSON summary");

  RunArgs render_args;
  RenderArgs rv;
  auto* render = app.add_subcommand("render", "Draw one figure of a mechanism, headless: PNG, SVG or PDF");
  addRunOptions(render, render_args);
  render->add_option("--view", rv.view,
                     "weights|pattern|groups|diff|tokens|step: the third panel (weights: none); pixel: one pixel's "
                     "attention over the picture (--input image); gates: a gating module's maps over the picture and "
                     "its gates as bars (--input image)")
      ->capture_default_str();
  render->add_option("--pixel", rv.pixel,
                     "--view pixel: the query pixel X,Y (column, row from 0; up to 4 as X,Y;X,Y); default the centre. "
                     "--view gates: the pixels whose exact maps stand beside a module's one map (GCNet; up to 3)");
  render->add_option("--out", rv.out, "Figure file: .png, .svg or .pdf")->required();
  render->add_option("--dpi", rv.dpi, "PNG resolution (the figure's size is fixed in points)")->capture_default_str();
  render->add_option("--colormap", rv.colormap, "viridis|magma|cividis|diverging")->capture_default_str();
  render->add_option("--scale", rv.scale, "Colour scale of weights: linear|log|rank")->capture_default_str();
  render->add_option("--floor", rv.floor, "Log scale: the bottom of the colour bar (as the window's Floor)")
      ->capture_default_str();
  render->add_option("--pooling", rv.pooling, "Each pixel shows the max or the mean of the entries it covers")->capture_default_str();
  render->add_option("--pixels", rv.pixels,
                     "Matrix resolution of each panel (pooled); default the whole matrix up to 2048 a side")
      ->check(wholeNumber());
  render->add_option("--order", rv.order,
                     "Token order: position, buckets, clusters (the mechanism's groupings) or a grouping's name")
      ->capture_default_str();
  render->add_option("--step", rv.step, "Show step K (1-based) of the mechanism in the third panel")
      ->check(wholeNumber(0, std::numeric_limits<int>::max()));
  render->add_option("--window", rv.window, "Zoom: ROW0:ROW1,COL0:COL1 in token indices (end exclusive)");
  render->add_option("--compare", rv.compare, "Compare mode: ID,ID,... (at most 3) beside --mechanism, on one scale");
  render->add_option("--width", rv.width, "Page width: single (3.5 in), double (7 in), slide (10 in) or inches")
      ->capture_default_str();
  render->add_option("--font-size", rv.font_size, "Body text in points (5-36); default 8, 14 on slides");
  render->add_flag("!--no-times", rv.times, "Leave run times out (reproducible figures)");

  SweepArgs sa;
  auto* sweep = app.add_subcommand("sweep", "Time, memory and error of mechanisms as N grows: results.csv, results.json, "
                                            "report.html and figures in a folder");
  sweep->add_option("--mechanisms", sa.mechanisms, "Ids, comma-separated, or all (exact is always included)")->capture_default_str();
  sweep->add_option("--n", sa.n, "A:B (every power of two from A to B) or a list 256,384,512")->capture_default_str();
  sweep->add_option("--d", sa.d, "Head size d")->check(wholeNumber())->capture_default_str();
  sweep->add_option("--backend", sa.backend, "cpu|vulkan|auto")->capture_default_str();
  sweep->add_option("--repeats", sa.repeats, "Timed runs per seed, after one warm-up")
      ->check(wholeNumber(1, std::numeric_limits<int>::max()))
      ->capture_default_str();
  sweep->add_option("--seeds", sa.seeds, "Input/rotation/feature draws; errors are mean ± std over them")
      ->check(wholeNumber(1, std::numeric_limits<int>::max()))
      ->capture_default_str();
  sweep->add_option("--input", sa.input, "Generator: " + attn::generatorNames("|"))->capture_default_str();
  sweep->add_option("--temperature", sa.temperature, "Logit temperature τ of the inputs")->capture_default_str();
  addKnobOptions(sweep, sa.knobs);
  sweep->add_flag("--causal", sa.causal, "Causal attention");
  sweep->add_option("--set", sa.sets, "Fixed parameter ID.NAME=VALUE (repeatable), e.g. performer.features=64")->allow_extra_args(false);
  sweep->add_flag("--fixed-params", sa.fixed_params, "Do not scale parameters with N (stride, clusters, buckets keep their value at the smallest N)");
  sweep->add_option(
      "--memory-budget", sa.budget_gb,
      "GB; points predicted above it, from N and the parameters or from the points measured at smaller N, "
      "are skipped (default: half the RAM)");
  sweep->add_option("--preset", sa.preset, "lra: the Long Range Arena efficiency table (its models at 1K–4K)");
  sweep->add_option("--out", sa.out, "Folder for the results and the report")->required();
  sweep->add_flag("--quiet", sa.quiet, "No progress output");

  std::string report_dir;
  auto* report = app.add_subcommand("report", "Redraw the figures and report.html of a sweep folder from its results.json");
  report->add_option("DIR", report_dir, "The folder `attnlab sweep --out` wrote")->required();

  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Render the default figures and a small HTML report into a folder");
  demo_cmd->add_option("--out", demo.out_dir, "Folder")->capture_default_str();
  demo_cmd->add_option("--backend", demo.backend, "cpu|vulkan|auto")->capture_default_str();
  demo_cmd->add_option("--n", demo.n, "Tokens N")->check(wholeNumber())->capture_default_str();

  gui::GuiOptions gui_options;
  long gui_n = long(gui_options.input.n);  // GuiOptions::input is attn::defaultInput()
  std::string gui_input = attn::generatorName(gui_options.input.generator);
  auto* gui_cmd = app.add_subcommand("gui", "Open the GUI (what bare `attnlab` does when a display exists)");
  gui_cmd->add_option("--mechanism,-m", gui_options.mechanism, "Mechanism to show first")->capture_default_str();
  gui_cmd->add_option("--n", gui_n, "Tokens N")->check(wholeNumber())->capture_default_str();
  gui_cmd->add_option("--backend", gui_options.backend, "cpu|vulkan|auto")->capture_default_str();
  gui_cmd->add_option("--session", gui_options.session, "Open this session file (saved with File → Save session)");
  RunArgs gui_image;  // --image and --size, applied as run applies them
  gui_image.input_option = gui_cmd->add_option("--input", gui_input, "Generator: " + attn::generatorNames("|"))
                               ->capture_default_str();
  gui_image.n_option = gui_cmd->get_option("--n");
  gui_cmd->add_option("--image", gui_image.image,
                      "A photo for the image input (implies --input image): a shipped one (" + attn::shippedImageNames() +
                          ") or an image file");
  gui_cmd->add_option("--image-b", gui_image.image_b, "The second picture of a change pair (with --image): the keys' picture");
  gui_cmd->add_option("--size", gui_image.size, "The image input's grid WxH (sets N = W·H; instead of --n), e.g. 48x32");
  std::string gui_view = "matrix";
  gui_cmd->add_option("--view", gui_view, "matrix|pixel|gates: the weight matrices, or (image input) a pixel's attention "
                      "or a gating module's maps over the picture")
      ->capture_default_str();
  gui_cmd->add_option("--temperature", gui_options.input.temperature, "Logit temperature τ of the input")
      ->capture_default_str();
  addKnobOptions(gui_cmd, gui_options.input);

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
    if (*render) return commandRender(render_args, rv);
    if (*sweep) {
      std::string line = "attnlab";
      for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
      return commandSweep(sa, line);
    }
    if (*report) return commandReport(report_dir);
    if (*gui_cmd || haveDisplay()) {
      // Without a display Qt would abort with its own message; a platform chosen by hand (offscreen,
      // vnc) is the user's call.
      const char* platform = std::getenv("QT_QPA_PLATFORM");
      if (!haveDisplay() && !(platform && *platform))
        throw attn::UserError(
            "there is no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): "
            "run it under xvfb-run, or make figures and reports with attnlab render, sweep or demo");
      ensureRuntimeDir();
      gui_options.input.n = gui_n;
      gui_options.input.generator = attn::parseGenerator(gui_input);
      gui_image.input = gui_input;
      gui_image.image_features = attn::imageFeaturesName(gui_options.input.features);
      gui_image.filters = long(gui_options.input.filters);
      applyImageOptions(gui_image, gui_options.input, attn::arrays::Limits{});
      if (gui_view != "matrix" && gui_view != "pixel" && gui_view != "gates")
        throw attn::UserError("gui --view takes matrix|pixel|gates, not '" + gui_view + "'");
      gui_options.pixel_view = gui_view == "pixel";
      gui_options.gates_view = gui_view == "gates";
      attn::checkSpec(gui_options.input);  // as run does: a message now, not a value clamped by a spin box
      // Without options the window comes back as it was closed (the autosaved session).
      std::size_t given = 0;
      for (const CLI::Option* option : gui_cmd->get_options()) given += option->count();
      gui_options.restore_session = given == 0;
      return gui::runGui(argc, argv, gui_options);
    }
    std::printf("attnlab: no display found, so rendering the default figures instead of opening the GUI\n");
    return commandDemo(demo);
  } catch (const attn::Cancelled&) {  // Ctrl-C during run or render (a sweep keeps what finished)
    std::fprintf(stderr, "\nattnlab: interrupted (Ctrl-C): the run stopped and nothing was written\n");
    return 130;
  } catch (...) {  // the one error policy of every boundary (attn::failureMessage)
    return fail(attn::failureMessage());
  }
}


}  // namespace attnlab::cli
