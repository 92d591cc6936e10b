// The command line end to end: `attnlab run` on .npy files against a float64 reference, the JSON
// summaries, the headless default, and one clear error line for bad input with nothing half-written.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <nlohmann/json.hpp>

#include "attention/backend.h"
#include "attention/inputs.h"
#include "attention/npy.h"
#include "attention/random.h"
#include "attention/sweep.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome runAttnlab(const std::string& args, const std::string& env = "") {
  // One folder per test process: ctest runs the tests of this file in parallel.
  const fs::path dir = fs::temp_directory_path() / ("attnlab-cli-test-" + std::to_string(::getpid()));
  fs::create_directories(dir / "xdg");
  fs::permissions(dir / "xdg", fs::perms::owner_all, fs::perm_options::replace);
  const std::string out = (dir / "stdout").string(), err = (dir / "stderr").string();
  const std::string cmd = "env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=" +
                          (dir / "xdg").string() + " " + env + " " + std::string(ATTNLAB_BINARY) + " " + args + " >" + out + " 2>" + err + " </dev/null";
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    // Per test and per process: two suites running at once (two build trees) must not share it.
    dir_ = fs::temp_directory_path() /
           ("attnlab-cli-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, RunExactOnFilesMatchesAFloat64Reference) {
  Rng rng(42);
  const Matrix q = rng.gaussian(300, 48, 1.3), k = rng.gaussian(280, 48, 1.3), v = rng.gaussian(280, 24);
  npy::save(path("q.npy"), q);
  npy::save(path("k.npy"), k);
  npy::save(path("v.npy"), v);
  for (const char* causal : {"", " --causal"}) {
    const Outcome o = runAttnlab("run --mechanism exact --backend cpu --q " + path("q.npy") + " --k " + path("k.npy") +
                                 " --v " + path("v.npy") + " --out " + path("o.npy") + causal);
    ASSERT_EQ(o.code, 0) << o.err;
    const Matrix got = npy::load(path("o.npy")).value();
    DenseAttentionOptions opt;
    opt.causal = std::string(causal).size() > 0;
    const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), opt);
    ASSERT_EQ(got.rows(), 300);
    EXPECT_LT((got.cast<double>() - ref).norm() / ref.norm(), 1e-5) << causal;
  }
}

TEST_F(Cli, RunJsonSummaryAndWeights) {
  const Outcome o = runAttnlab("run --mechanism longformer --set window=16 --set globals=1 --n 200 --d 32 --input local "
                               "--backend cpu --json --weights " + path("w.npy"));
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["mechanism"], "longformer");
  EXPECT_EQ(j["backend"], "cpu");
  EXPECT_EQ(j["params"]["window"], 16);
  EXPECT_EQ(j["input"]["n"], 200);
  EXPECT_GT(j["relative_error"].get<double>(), 0);
  EXPECT_LT(j["relative_error"].get<double>(), 1);
  EXPECT_GT(j["time_ms"].get<double>(), 0);
  EXPECT_GT(j["cost"]["scored_pairs"].get<double>(), 0);
  EXPECT_GE(j["mass_recall"].get<double>(), 0);
  const Matrix w = npy::load(path("w.npy")).value();
  EXPECT_EQ(w.rows(), 200);
  EXPECT_NEAR(w.row(100).sum(), 1.0, 1e-4);
  EXPECT_EQ(w(100, 150), 0.f);  // outside window and globals
}

TEST_F(Cli, RunRenderSweepAndGuiShareOneDefaultInput) {
  const attn::InputSpec want = attn::defaultInput();
  // What run does with no input options.
  const Outcome o = runAttnlab("run --mechanism exact --backend cpu --json");
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["input"]["generator"], attn::generatorName(want.generator));
  EXPECT_EQ(j["input"]["n"], want.n);
  EXPECT_EQ(j["input"]["d"], want.d);
  EXPECT_EQ(j["input"]["dv"], want.dv);
  EXPECT_EQ(j["input"]["seed"], want.seed);
  EXPECT_EQ(j["input"]["temperature"], want.temperature);
  // What each command offers as its default (sweep's N is a range of its own; the window has no --d or --seed:
  // its panel starts from defaultInput(), which the GUI tests check).
  auto shown = [](double v) {
    std::ostringstream out;
    out << v;
    return out.str();
  };
  const std::map<std::string, std::vector<std::string>> defaults = {
      {"run", {"--input TEXT=" + attn::generatorName(want.generator), "--n INT=" + std::to_string(want.n),
               "--d INT=" + std::to_string(want.d), "--seed INT=" + std::to_string(want.seed),
               "--temperature FLOAT=" + shown(want.temperature)}},
      {"render", {"--input TEXT=" + attn::generatorName(want.generator), "--n INT=" + std::to_string(want.n),
                  "--d INT=" + std::to_string(want.d), "--seed INT=" + std::to_string(want.seed),
                  "--temperature FLOAT=" + shown(want.temperature)}},
      {"sweep", {"--input TEXT=" + attn::generatorName(want.generator), "--d INT=" + std::to_string(want.d),
                 "--temperature FLOAT=" + shown(want.temperature)}},
      {"gui", {"--input TEXT=" + attn::generatorName(want.generator), "--n INT=" + std::to_string(want.n),
               "--temperature FLOAT=" + shown(want.temperature)}}};
  for (const auto& [command, options] : defaults) {
    const Outcome help = runAttnlab(command + " --help");
    ASSERT_EQ(help.code, 0) << command << ": " << help.err;
    for (const std::string& option : options) EXPECT_NE(help.out.find(option), std::string::npos) << command << " lacks " << option;
  }
}

TEST_F(Cli, ListAndInfo) {
  const Outcome list = runAttnlab("list --json");
  ASSERT_EQ(list.code, 0) << list.err;
  const auto all = nlohmann::json::parse(list.out);
  std::vector<std::string> ids;
  for (const auto& m : all) ids.push_back(m["id"]);
  for (const char* id : {"exact", "longformer", "reformer", "linear-transformer", "nystromformer"})
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  for (const auto& m : all)
    for (const char* key : {"title", "family", "year", "paper", "complexity", "causal", "params"}) EXPECT_TRUE(m.contains(key));
  const Outcome text = runAttnlab("list");
  EXPECT_NE(text.out.find("--set window="), std::string::npos);
  // Real-valued bounds as reals (they were cut to integers: SCRAM's α read [0, 0], Sinkhorn's τ [0, 100]).
  EXPECT_TRUE(std::regex_search(text.out, std::regex(R"(--set alpha=\s+\[0\.05, 0\.95\])"))) << "SCRAM's α";
  EXPECT_TRUE(std::regex_search(text.out, std::regex(R"(--set temperature=\s+\[0\.01, 100\])"))) << "Sinkhorn's τ";
  // Every mechanism says where it is exact, or that it is a different operator; conventions reach the list.
  for (const auto& m : all) {
    ASSERT_TRUE(m.contains("relation")) << m["id"];
    const std::string relation = m["relation"];
    EXPECT_EQ(relation.rfind(m["approximates_softmax"].get<bool>() ? "approximates softmax attention; exact at: "
                                                                      : "a different operator",
                             0),
              0u)
        << m["id"] << ": " << relation;
    EXPECT_NE(text.out.find(relation), std::string::npos) << m["id"];
    for (const auto& line : m["conventions"]) EXPECT_NE(text.out.find(line.get<std::string>()), std::string::npos);
  }
  const Outcome info = runAttnlab("info --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_TRUE(j.contains("vulkan_devices"));
}

TEST_F(Cli, TheGeneratorsKnobsReachTheInputs) {
  // Two centres instead of eight: the same seed gives other inputs, and the summary says which knobs ran.
  const Outcome two = runAttnlab(
      "run --mechanism exact --n 64 --d 8 --input clustered --clusters 2 --noise 0.1 "
      "--backend cpu --json --out " +
      path("two.npy"));
  ASSERT_EQ(two.code, 0) << two.err;
  const auto j = nlohmann::json::parse(two.out);
  EXPECT_EQ(j["input"]["clusters"], 2);
  EXPECT_DOUBLE_EQ(j["input"]["noise"].get<double>(), 0.1);
  EXPECT_FALSE(j["input"].contains("period")) << "periodic's knob is not clustered's";
  const Outcome eight =
      runAttnlab("run --mechanism exact --n 64 --d 8 --input clustered --backend cpu --out " + path("eight.npy"));
  ASSERT_EQ(eight.code, 0) << eight.err;
  // Exact attention's output on the generator's inputs, computed here from the same spec.
  InputSpec spec;
  spec.n = 64;
  spec.d = spec.dv = 8;
  spec.generator = Generator::Clustered;
  spec.clusters = 2;
  spec.noise = 0.1;
  const Inputs in = generate(spec);
  const Matrix o = npy::load(path("two.npy")).value();
  MatrixD logits = (in.q.cast<double>() * in.k.cast<double>().transpose()) / std::sqrt(8.0);
  for (Index i = 0; i < 64; ++i) {
    const double top = logits.row(i).maxCoeff();
    logits.row(i) = (logits.row(i).array() - top).exp().matrix();
    logits.row(i) /= logits.row(i).sum();
  }
  const MatrixD expected = logits * in.v.cast<double>();
  EXPECT_LT((o.cast<double>() - expected).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_GT((npy::load(path("eight.npy")).value() - o).cwiseAbs().maxCoeff(), 1e-3);
  // The GUI checks them as run does, before a window opens.
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"gui --input clustered --clusters 65537", "clusters must be between 1 and 65536"},
           {"gui --temperature 0", "temperature must be a positive number"}}) {
    const Outcome bad = runAttnlab(args);
    EXPECT_NE(bad.code, 0) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << "\n" << bad.err;
  }
  // No display and no platform chosen: one clear line instead of Qt's abort.
  const Outcome headless = runAttnlab("gui", "QT_QPA_PLATFORM=");
  EXPECT_EQ(headless.code, 1);
  EXPECT_NE(headless.err.find("no display to open the window on"), std::string::npos) << headless.err;
  EXPECT_EQ(std::count(headless.err.begin(), headless.err.end(), '\n'), 1) << headless.err;
}

TEST_F(Cli, BadInputIsOneClearLineAndWritesNothing) {
  struct Case {
    std::string args, words;
  };
  npy::save(path("q.npy"), Matrix::Ones(4, 3));
  npy::save(path("k5.npy"), Matrix::Ones(4, 5));
  {
    std::ofstream bad(path("bad.npy"));
    bad << "not numpy";
  }
  const std::vector<Case> cases = {
      {"run --mechanism nope", "unknown mechanism 'nope'"},
      {"run --mechanism longformer --set windw=3", "this mechanism takes: window, dilation, heads"},
      {"run --mechanism longformer --set window", "NAME=VALUE"},
      {"run --mechanism exact --input cluster", "unknown input generator"},
      {"run --mechanism exact --n 0", "N must be between"},
      {"run --mechanism exact --backend gpu", "cpu"},
      {"run --mechanism exact --q " + path("q.npy"), "all three"},
      {"run --mechanism exact --q " + path("q.npy") + " --k " + path("k5.npy") + " --v " + path("q.npy"),
       "same number of columns"},
      {"run --mechanism exact --q " + path("bad.npy") + " --k " + path("q.npy") + " --v " + path("q.npy"),
       "not a .npy file"},
      {"run --mechanism exact --q /nonexistent.npy --k " + path("q.npy") + " --v " + path("q.npy"), "cannot open"},
      {"run --mechanism nystromformer --causal", "no causal form"},
      {"run --mechanism exact --n 9000 --weights " + path("w.npy"), "64M entries"},
      {"run --mechanism exact --frobnicate", "frobnicate"},
      {"run --mechanism exact --input clustered --clusters 0", "clusters must be between 1 and 65536"},
      {"run --mechanism exact --input clustered --clusters 65537", "clusters must be between 1 and 65536"},
      {"run --mechanism exact --input periodic --period 0", "period must be at least 1"},
  };
  for (const auto& c : cases) {
    const bool sets_backend = c.args.find("--backend") != std::string::npos;
    const Outcome o = runAttnlab(c.args + (sets_backend ? "" : " --backend cpu") + " --out " + path("o.npy"));
    EXPECT_NE(o.code, 0) << c.args;
    EXPECT_NE(o.err.find(c.words), std::string::npos) << c.args << "\n" << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << c.args << "\n" << o.err;
    EXPECT_FALSE(fs::exists(path("o.npy"))) << c.args;
    EXPECT_FALSE(fs::exists(path("w.npy"))) << c.args;
  }
  // A failing run leaves the previous output untouched.
  npy::save(path("o.npy"), Matrix::Constant(2, 2, 7.f));
  EXPECT_NE(runAttnlab("run --mechanism exact --backend cpu --n=-3 --out " + path("o.npy")).code, 0);
  EXPECT_TRUE(npy::load(path("o.npy")).value().isApproxToConstant(7.f));
}

TEST_F(Cli, MemoryBudgetIsAPositiveSizeTheMachineHasAndRefusesBeforeRunning) {
  // run, render and sweep each take --memory-budget; −5, 0, nan, inf and 1e308 were accepted and ignored.
  const std::vector<std::string> commands = {
      "run --mechanism exact --backend cpu --out " + path("o.npy"),
      "render --mechanism exact --backend cpu --out " + path("o.png"),
      "sweep --mechanisms exact --n 64 --seeds 1 --repeats 1 --out " + path("sweep"),
  };
  for (const std::string& command : commands) {
    for (const std::string& bad : {"-5", "0", "nan", "inf", "1e308"}) {
      const Outcome o = runAttnlab(command + " --memory-budget=" + bad);
      EXPECT_NE(o.code, 0) << command << " --memory-budget " << bad;
      EXPECT_NE(o.err.find("--memory-budget"), std::string::npos) << command << " " << bad << "\n" << o.err;
      EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    }
  }
  EXPECT_FALSE(fs::exists(path("o.npy")));
  EXPECT_FALSE(fs::exists(path("o.png")));
  EXPECT_FALSE(fs::exists(path("sweep") + "/results.json"));
  // A budget the run exceeds: refused with the parameter to blame, nothing written.
  const Outcome o = runAttnlab(
      "run --mechanism longformer --set window=1048576 --set heads=16 --n 4096 --backend cpu "
      "--memory-budget 0.5 --out " +
      path("o.npy"));
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("over the memory budget of 0.5 GB"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("lower window"), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(path("o.npy")));
  // A budget it fits in runs.
  EXPECT_EQ(runAttnlab("run --mechanism exact --n 64 --backend cpu --memory-budget 0.5 --out " + path("o.npy")).code,
            0);
}

TEST_F(Cli, HeadlessDefaultWritesFiguresAndAReport) {
  // Bare `attnlab` without a display renders the default figures and the report.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  const Outcome o = runAttnlab("");
  fs::current_path(cwd);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("no display"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("report.html"), std::string::npos) << o.out;
  const fs::path out = dir_ / "attnlab-output";
  for (const char* f : {"longformer.png", "reformer.png", "linear-transformer.png", "nystromformer.png", "report.html", "summary.json"}) {
    ASSERT_TRUE(fs::exists(out / f)) << f;
    EXPECT_GT(fs::file_size(out / f), 1000u) << f;
  }
  std::ifstream png(out / "longformer.png", std::ios::binary);
  std::array<char, 8> magic{};
  png.read(magic.data(), 8);
  EXPECT_EQ(std::string(magic.data() + 1, 3), "PNG");
  std::ifstream summary(out / "summary.json");
  const auto j = nlohmann::json::parse(summary);
  EXPECT_EQ(j["runs"].size(), 4u);
}

std::string slurpFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Width and height from a PNG's IHDR; false when the bytes are not a PNG.
bool pngSize(const std::string& bytes, int& w, int& h) {
  if (bytes.size() < 24 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0 || bytes.compare(12, 4, "IHDR") != 0) return false;
  auto be32 = [&](std::size_t at) {
    return int((unsigned char)bytes[at]) << 24 | int((unsigned char)bytes[at + 1]) << 16 |
           int((unsigned char)bytes[at + 2]) << 8 | int((unsigned char)bytes[at + 3]);
  };
  w = be32(16);
  h = be32(20);
  return true;
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = slurpFile(e.path());
  return files;
}

const std::string kSmallSweep = "sweep --mechanisms longformer,performer --n 64:128 --d 16 --seeds 2 --repeats 1 --input local";

TEST_F(Cli, SweepWritesDataReportAndFiguresThatParse) {
  const fs::path out = dir_ / "sweep";
  const Outcome o = runAttnlab(kSmallSweep + " --out " + out.string());
  ASSERT_EQ(o.code, 0) << o.err;
  const SweepResult r = sweepFromJson(nlohmann::json::parse(slurpFile(out / "results.json")));
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.spec.ns, (std::vector<Index>{64, 128}));
  ASSERT_EQ(r.points.size(), 6u);
  for (const auto& p : r.points) {
    EXPECT_EQ(p.status, "ok") << p.mechanism << ": " << p.message;
    EXPECT_EQ(p.rel_error.count, 2);
    EXPECT_GT(p.time_median, 0);
  }
  ASSERT_TRUE(r.machine.contains("cpu"));
  EXPECT_TRUE(r.machine.contains("build_type"));

  // CSV: the documented header, one line per point.
  std::istringstream csv(slurpFile(out / "results.csv"));
  std::string header, line;
  std::getline(csv, header);
  std::string expected;
  for (const auto& c : sweepCsvColumns()) expected += (expected.empty() ? "" : ",") + c;
  EXPECT_EQ(header, expected);
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, 6);

  // The page is self-contained: inline SVG figures, no scripts, nothing fetched.
  const std::string html = slurpFile(out / "report.html");
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_GE(std::size_t(std::count(html.begin(), html.end(), '<') ), 100u);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_NE(html.find(r.machine["cpu"].get<std::string>()), std::string::npos) << "machine metadata";
  EXPECT_NE(slurpFile(out / "report.md").find("| `performer` |"), std::string::npos);
  for (const char* curve : {"time", "speedup", "memory", "error"}) {
    const std::string svg = slurpFile(out / "figures" / (std::string("mechanisms-cpu-") + curve + ".svg"));
    EXPECT_NE(svg.find("<svg"), std::string::npos) << curve;
    EXPECT_NE(svg.find("</svg>"), std::string::npos) << curve;
    int w = 0, h = 0;
    ASSERT_TRUE(pngSize(slurpFile(out / "figures" / (std::string("mechanisms-cpu-") + curve + ".png")), w, h)) << curve;
    EXPECT_EQ(w, 1416) << curve;  // 708 pt at 144 DPI
    EXPECT_GT(h, 700) << curve;
  }

  // `attnlab report` redraws everything from results.json alone.
  fs::remove_all(out / "figures");
  fs::remove(out / "report.html");
  const std::string before = slurpFile(out / "results.json");
  const Outcome again = runAttnlab("report " + out.string());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(fs::exists(out / "report.html"));
  EXPECT_TRUE(fs::exists(out / "figures" / "mechanisms-cpu-time.svg"));
  EXPECT_EQ(nlohmann::json::parse(slurpFile(out / "results.json")), nlohmann::json::parse(before));
  const Outcome missing = runAttnlab("report " + (dir_ / "nothing-here").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("results.json"), std::string::npos) << missing.err;
}

TEST_F(Cli, InterruptedSweepLeavesAPartialReportAndAnEarlierOneUntouched) {
  // A fresh folder: the partial report goes there.
  const fs::path fresh = dir_ / "fresh";
  Outcome o = runAttnlab(kSmallSweep + " --out " + fresh.string(), "ATTNLAB_SWEEP_INTERRUPT_AFTER=2");
  EXPECT_EQ(o.code, 130) << o.err;
  SweepResult r = sweepFromJson(nlohmann::json::parse(slurpFile(fresh / "results.json")));
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.points.size(), 2u);
  EXPECT_NE(slurpFile(fresh / "report.html").find("interrupted"), std::string::npos);
  EXPECT_TRUE(fs::exists(fresh / "figures" / "mechanisms-cpu-time.svg"));

  // A folder with an earlier report: it stays byte for byte; the partial one goes beside it.
  const fs::path earlier = dir_ / "earlier";
  ASSERT_EQ(runAttnlab(kSmallSweep + " --out " + earlier.string()).code, 0);
  const auto before = snapshot(earlier);
  o = runAttnlab(kSmallSweep + " --out " + earlier.string(), "ATTNLAB_SWEEP_INTERRUPT_AFTER=3");
  EXPECT_EQ(o.code, 130) << o.err;
  std::map<std::string, std::string> after;
  fs::path partial;
  for (const auto& [name, bytes] : snapshot(earlier)) {
    if (name.rfind("interrupted-", 0) == 0) {
      partial = earlier / fs::path(name).begin()->string();
      continue;
    }
    after[name] = bytes;
  }
  EXPECT_TRUE(after == before) << "the earlier report changed";
  ASSERT_FALSE(partial.empty()) << o.err;
  r = sweepFromJson(nlohmann::json::parse(slurpFile(partial / "results.json")));
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.points.size(), 3u);

  // Interrupted before any point finished: nothing is written at all.
  const fs::path none = dir_ / "none";
  o = runAttnlab(kSmallSweep + " --out " + none.string(), "ATTNLAB_SWEEP_INTERRUPT_AFTER=0");
  EXPECT_EQ(o.code, 130) << o.err;
  EXPECT_FALSE(fs::exists(none / "results.json"));
  EXPECT_NE(o.err.find("nothing was written"), std::string::npos) << o.err;
}

TEST_F(Cli, OneSafetensorsFileGivesQKVAndABadOneOneLine) {
  Rng rng(7);
  const Matrix q = rng.gaussian(120, 16, 1.2), k = rng.gaussian(120, 16, 1.2), v = rng.gaussian(120, 8);
  auto write = [&](const std::string& file, const std::vector<std::pair<std::string, const Matrix*>>& tensors) {
    nlohmann::json header = nlohmann::json::object();
    std::string data;
    for (const auto& [name, m] : tensors) {
      const std::size_t begin = data.size();
      for (Index r = 0; r < m->rows(); ++r)
        for (Index c = 0; c < m->cols(); ++c) data.append(reinterpret_cast<const char*>(&(*m)(r, c)), 4);
      header[name] = {{"dtype", "F32"}, {"shape", {1, m->rows(), m->cols()}}, {"data_offsets", {begin, data.size()}}};
    }
    const std::string h = header.dump();
    std::ofstream out(path(file), std::ios::binary);
    const std::uint64_t size = h.size();
    out.write(reinterpret_cast<const char*>(&size), 8);
    out << h << data;
  };
  write("head.safetensors", {{"q", &q}, {"k", &k}, {"v", &v}});
  const Outcome o = runAttnlab("run --mechanism exact --backend cpu --qkv " + path("head.safetensors") + " --out " + path("o.npy"));
  ASSERT_EQ(o.code, 0) << o.err;
  const MatrixD ref = referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), {});
  const Matrix got = npy::load(path("o.npy")).value();
  EXPECT_LT((got.cast<double>() - ref).norm() / ref.norm(), 1e-5);
  EXPECT_NE(o.out.find("file head.safetensors"), std::string::npos) << o.out;

  write("qk.safetensors", {{"q", &q}, {"k", &k}});
  const Outcome bad = runAttnlab("run --mechanism exact --qkv " + path("qk.safetensors"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("needs arrays named q, k and v"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << "one line";
  const Outcome both = runAttnlab("run --mechanism exact --qkv " + path("head.safetensors") + " --q " + path("head.safetensors"));
  EXPECT_EQ(both.code, 1);
  EXPECT_NE(both.err.find("either --qkv or --q/--k/--v"), std::string::npos) << both.err;
}

TEST_F(Cli, RenderWritesEveryViewAndFormatOrOneClearError) {
  const std::string base = "render --mechanism bigbird --n 128 --input local --backend cpu --dpi 72";
  for (const char* view : {"weights", "pattern", "groups", "diff", "tokens"}) {
    const std::string file = path(std::string(view) + ".png");
    const Outcome o = runAttnlab(base + " --view " + view + " --out " + file);
    ASSERT_EQ(o.code, 0) << view << ": " << o.err;
    int w = 0, h = 0;
    ASSERT_TRUE(pngSize(slurpFile(file), w, h)) << view;
    // The tool reports the figure's size in points; at 72 DPI a point is a pixel.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(o.out, m, std::regex("([0-9]+)×([0-9]+) px"))) << o.out;
    EXPECT_EQ(w, std::stoi(m[1].str()));
    EXPECT_EQ(h, std::stoi(m[2].str()));
  }
  Outcome o = runAttnlab(base + " --view diff --colormap cividis --scale rank --out " + path("d.svg"));
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string svg = slurpFile(path("d.svg"));
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("<image"), std::string::npos) << "matrices are embedded images";
  EXPECT_NE(svg.find("<text"), std::string::npos) << "text stays text";
  o = runAttnlab(base + " --view weights --out " + path("w.pdf"));
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string pdf = slurpFile(path("w.pdf"));
  EXPECT_EQ(pdf.rfind("%PDF-", 0), 0u);
  const std::regex page("/Type\\s*/Page[^s]");
  EXPECT_EQ(std::distance(std::sregex_iterator(pdf.begin(), pdf.end(), page), std::sregex_iterator()), 1);

  // Bad requests: one line, exit 1, nothing written.
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"render --mechanism exact --n 64 --view pattern --out " + path("x.png"), "no sparsity pattern"},
           {"render --mechanism longformer --n 64 --view weights --out " + path("x.bmp"), ".png, .svg or .pdf"},
           {"render --mechanism longformer --n 64 --view nope --out " + path("x.png"), "weights|pattern"},
           {"render --mechanism longformer --n 64 --colormap jet --out " + path("x.png"), "viridis"},
           {"render --mechanism performer --n 64 --view tokens --out " + path("x.png"), "no special tokens"}}) {
    const Outcome bad = runAttnlab(args);
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << bad.err;
    EXPECT_FALSE(fs::exists(path("x.png")));
  }
}

TEST_F(Cli, RenderDrawsAnythingTheWindowCanAtAPagesWidth) {
  // Sorted by buckets, zoomed, a step in the third panel, one column wide, 9 pt type; then compare mode.
  const std::string base = "render --mechanism reformer --n 256 --input clustered --backend cpu --dpi 72";
  Outcome o = runAttnlab(base + " --order buckets --step 2 --window 64:192,0:128 --width single --font-size 9 --out " +
                         path("r.png"));
  ASSERT_EQ(o.code, 0) << o.err;
  int w = 0, h = 0;
  ASSERT_TRUE(pngSize(slurpFile(path("r.png")), w, h));
  EXPECT_EQ(w, 252) << "a single column is 3.5 in: 252 pt, a pixel each at 72 dpi";
  o = runAttnlab(base + " --width 5 --out " + path("five.png"));
  ASSERT_EQ(o.code, 0) << o.err;
  ASSERT_TRUE(pngSize(slurpFile(path("five.png")), w, h));
  EXPECT_EQ(w, 360);
  o = runAttnlab(base + " --compare performer,longformer --width slide --out " + path("c.svg"));
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string svg = slurpFile(path("c.svg"));
  for (const char* title : {"Reformer (LSH attention)", "Performer (FAVOR+)", "Longformer", "exact"})
    EXPECT_NE(svg.find(title), std::string::npos) << title << " panel";
  // Bad requests: one line naming what is accepted, exit 1, nothing written.
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {base + " --window 10:5,0:8 --out " + path("x.png"), "must lie inside"},
           {base + " --window 1-2 --out " + path("x.png"), "ROW0:ROW1,COL0:COL1"},
           {base + " --width huge --out " + path("x.png"), "single"},
           {base + " --font-size 99 --out " + path("x.png"), "5"},
           {base + " --step 99 --out " + path("x.png"), "--step takes 1 to"},
           {base + " --order nonsense --out " + path("x.png"), "--order takes position"},
           {"render --mechanism longformer --n 64 --input local --order buckets --out " + path("x.png"), "forms no buckets"},
           {base + " --compare nope --out " + path("x.png"), "nope"}}) {
    const Outcome bad = runAttnlab(args);
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << ": " << bad.err;
    EXPECT_FALSE(fs::exists(path("x.png")));
  }
}

}  // namespace
}  // namespace attn
