// The command line end to end: `attnlab run` on .npy files against a float64 reference, the JSON
// summaries, the headless default, and one clear error line for bad input with nothing half-written.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>
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

// Integer options are refused, not narrowed: --seeds 4294967297 and --repeats 4294967297 used to wrap to 1
// (a long cast to int), and values beyond 64 bits were saturated to 2^63 − 1 and run.
TEST_F(Cli, IntegerOptionsBeyondTheirRangeAreRefusedNotWrapped) {
  const std::string sweep = "sweep --mechanisms longformer --n 16 --d 8 --backend cpu --out " + path("sw");
  const std::string render = "render --mechanism exact --backend cpu --n 16 --out " + path("r.png");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {sweep + " --seeds 4294967297", "--seeds: must be a whole number from 1 to 2147483647, not '4294967297'"},
      {sweep + " --repeats 4294967297", "--repeats: must be a whole number from 1 to 2147483647, not '4294967297'"},
      {sweep + " --seeds 0", "--seeds: must be a whole number from 1"},
      {sweep + " --repeats -1", "--repeats: must be a whole number from 1"},
      {sweep + " --d 18446744073709551617", "--d: must be a whole number that fits in 64 bits"},
      {render + " --step 4294967297", "--step: must be a whole number from 0 to 2147483647"},
      {render + " --pixels 18446744073709551632", "--pixels: must be a whole number that fits in 64 bits"},
      {"run --mechanism exact --backend cpu --seed 18446744073709551617", "--seed: must be a whole number from 0"},
      {"run --mechanism exact --backend cpu --seed -1", "--seed: must be a whole number from 0"},
      {"run --mechanism exact --backend cpu --n 99999999999999999999", "--n: must be a whole number that fits"},
      {"run --mechanism exact --backend cpu --d 1e3", "--d: must be a whole number that fits in 64 bits, not '1e3'"},
      {"run --mechanism exact --backend cpu --input periodic --period 18446744073709551617", "--period: must be"},
      {"run --mechanism exact --backend cpu --clusters 4294967297x", "--clusters: must be"},
      {"run --mechanism exact --backend cpu --heavy-hitters 9223372036854775808", "--heavy-hitters: must be"},
      {"demo --backend cpu --n 9223372036854775808 --out " + path("demo"), "--n: must be"},
      {"gui --n 9223372036854775808", "--n: must be"},
  };
  for (const auto& [args, words] : cases) {
    const Outcome o = runAttnlab(args);
    EXPECT_EQ(o.code, 2) << args << "\n" << o.err;
    EXPECT_NE(o.err.find(words), std::string::npos) << args << "\n" << o.err;
    EXPECT_FALSE(fs::exists(path("sw"))) << args;
    EXPECT_FALSE(fs::exists(path("r.png"))) << args;
  }
}

TEST_F(Cli, MemoryBudgetIsAPositiveSizeTheMachineHasAndRefusesBeforeRunning) {
  // run, render and sweep each take --memory-budget; −5, 0, nan, inf and 1e308 were accepted and ignored.
  const std::vector<std::string> commands = {
      "run --mechanism exact --backend cpu --out " + path("o.npy"),
      "render --mechanism exact --backend cpu --out " + path("o.png"),
      "sweep --mechanisms exact --n 64 --seeds 1 --repeats 1 --out " + path("sweep"),
  };
  for (const std::string& command : commands) {
    for (const char* bad : {"-5", "0", "nan", "inf", "1e308"}) {
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

// --- Outputs: devices and links are written through, folders are written as a set (issue 21) ---

// `attnlab run --out PATH` as a quick writer of 16 KB.
Outcome writeOutput(const std::string& out) { return runAttnlab("run -m exact --n 64 --backend cpu --out " + out); }

bool isCharDevice(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

TEST_F(Cli, OutToADeviceWritesThroughIt) {
  // As root a private node of the null device (major 1, minor 3) stands for /dev/null: a broken build
  // then replaces that node, never the system's /dev/null.
  const bool root = ::geteuid() == 0;
  const fs::path null_dev = root ? dir_ / "null" : fs::path("/dev/null");
  if (root) {
    ASSERT_EQ(::mknod(null_dev.c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0) << std::strerror(errno);
  }
  const Outcome o = writeOutput(null_dev.string());
  EXPECT_EQ(o.code, 0) << o.err;  // as a normal user: written through, not "Permission denied"
  EXPECT_EQ(o.err.find("Permission denied"), std::string::npos) << o.err;
  EXPECT_TRUE(isCharDevice(null_dev)) << null_dev << " was replaced";
  for (const auto& e : fs::directory_iterator(null_dev.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();

  // The full device (1, 7): a clear "no space" message, and it stays a device.
  const fs::path full_dev = root ? dir_ / "full" : fs::path("/dev/full");
  if (root) {
    ASSERT_EQ(::mknod(full_dev.c_str(), S_IFCHR | 0666, ::makedev(1, 7)), 0) << std::strerror(errno);
  }
  const Outcome full = writeOutput(full_dev.string());
  EXPECT_EQ(full.code, 1);
  EXPECT_NE(full.err.find("No space left"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find(full_dev.string()), std::string::npos) << full.err;
  EXPECT_TRUE(isCharDevice(full_dev)) << full_dev << " was replaced";

  // A folder is refused as one, with nothing written into it.
  const Outcome folder = writeOutput(dir_.string());
  EXPECT_EQ(folder.code, 1);
  EXPECT_NE(folder.err.find("is a folder"), std::string::npos) << folder.err;
  if (!root) GTEST_SKIP() << "not root: the check that /dev/null stays a device when root could replace it was not run";
}

TEST_F(Cli, OutThroughALinkReplacesTheTargetAndKeepsTheLink) {
  fs::create_directories(dir_ / "data");
  std::ofstream(dir_ / "data" / "real.npy") << "old";
  fs::permissions(dir_ / "data" / "real.npy", fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  fs::create_symlink("data/real.npy", dir_ / "rel.npy");                 // relative to the link's folder
  fs::create_symlink((dir_ / "rel.npy").string(), dir_ / "abs.npy");     // a link to a link
  fs::create_symlink("data/missing.npy", dir_ / "dangling.npy");         // its target does not exist yet
  for (const char* link : {"rel.npy", "abs.npy", "dangling.npy"}) {
    const Outcome o = writeOutput(path(link));
    ASSERT_EQ(o.code, 0) << link << ": " << o.err;
    EXPECT_TRUE(fs::is_symlink(dir_ / link)) << link << " was replaced by a file";
  }
  EXPECT_TRUE(npy::load((dir_ / "data" / "real.npy").string()).ok());
  EXPECT_TRUE(npy::load((dir_ / "data" / "missing.npy").string()).ok()) << "the dangling link's target was not written";
  EXPECT_EQ(fs::status(dir_ / "data" / "real.npy").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write)
      << "the replacement lost the file's permission bits";
  EXPECT_EQ(fs::read_symlink(dir_ / "rel.npy"), fs::path("data/real.npy"));
}

// The run a report folder holds, when its files all come from one run (the command line, recorded in
// results.json, report.html and report.md, names the run; results.csv and the inline figure must match
// results.json); "" when they are mixed.
std::string consistentRun(const fs::path& dir) {
  const auto j = nlohmann::json::parse(slurpFile(dir / "results.json"), nullptr, false);
  if (j.is_discarded() || !j.contains("command")) return "";
  const std::string command = j["command"].get<std::string>();
  const std::string html = slurpFile(dir / "report.html"), svg = slurpFile(dir / "figures" / "mechanisms-cpu-time.svg");
  const auto body = svg.find("<svg");
  if (html.find(command) == std::string::npos || slurpFile(dir / "report.md").find(command) == std::string::npos) return "";
  if (slurpFile(dir / "results.csv") != toCsv(sweepFromJson(j))) return "";
  if (body == std::string::npos || html.find(svg.substr(body)) == std::string::npos) return "";
  return command;
}

std::vector<std::string> stagingLeftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with(".attnlab-staging")) found.push_back(e.path().filename().string());
  return found;
}

// Starts attnlab with `args` (its output to `log`); its process id.
pid_t spawnAttnlab(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::unsetenv("DISPLAY");
    ::unsetenv("WAYLAND_DISPLAY");
    ::setenv("QT_QPA_PLATFORM", "offscreen", 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(ATTNLAB_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(ATTNLAB_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST_F(Cli, SweepKilledAtAnyMomentLeavesTheOldSetOrTheNewOne) {
  const fs::path out = dir_ / "sweep";
  // Each run differs in its command line (performer.features), which names it in every file.
  auto args = [&](int run) { return kSmallSweep + " --quiet --set performer.features=" + std::to_string(16 + run) + " --out " + out.string(); };
  ASSERT_EQ(runAttnlab(args(0)).code, 0);
  std::ofstream(out / "notes.txt") << "mine";
  fs::create_directories(out / "interrupted-20250101-000000");
  std::string current = consistentRun(out);
  ASSERT_FALSE(current.empty());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(runAttnlab(args(1)).code, 0);
  const double full_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  current = consistentRun(out);
  ASSERT_FALSE(current.empty());
  Rng rng(2126);
  int kept_old = 0, got_new = 0, in_renames = 0;
  for (int run = 2; run < 8; ++run) {  // killed from the middle of the sweep to just after it would have finished
    const pid_t pid = spawnAttnlab(words(args(run)), dir_ / "log");
    const double at_ms = full_ms * (0.4 + 0.7 * rng.uniform());
    std::this_thread::sleep_for(std::chrono::microseconds(long(at_ms * 1000)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::string now = consistentRun(out);
    if (now.empty()) {
      // Only a kill between the renames that move a complete set in (folder_set.h: a few system calls)
      // may leave the folder mixed, and then the set waits complete in a committed staging folder, which
      // the next writer into the folder moves in before anything else.
      bool committed = false;
      for (const auto& name : stagingLeftovers(out)) committed = committed || fs::exists(out / name / ".attnlab-commit");
      ASSERT_TRUE(committed) << "killed after " << at_ms << " ms: the folder mixes two runs, and no complete set waits to move in";
      ++in_renames;
      const Outcome o = runAttnlab("report " + out.string());
      ASSERT_EQ(o.code, 0) << o.err;
      now = consistentRun(out);
      ASSERT_NE(now.find("performer.features=" + std::to_string(16 + run) + " "), std::string::npos)
          << "the next run did not finish moving in the killed run's set: " << now;
    }
    (now == current ? kept_old : got_new)++;
    current = now;
    EXPECT_EQ(slurpFile(out / "notes.txt"), "mine");
    EXPECT_TRUE(fs::is_directory(out / "interrupted-20250101-000000"));
  }
  // The next run clears what the killed ones left.
  const Outcome o = runAttnlab("report " + out.string());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(stagingLeftovers(out).empty());
  EXPECT_EQ(consistentRun(out), current);
  std::printf("kills: %d kept the old set, %d found the new one complete (%d of them killed while moving it in)\n", kept_old,
              got_new, in_renames);
}

TEST_F(Cli, ASecondWriterIntoOneFolderIsRefusedWhileTheFirstRuns) {
  const fs::path out = dir_ / "sweep";
  // A sweep of a few seconds holds the folder; a report and a second sweep into it are refused.
  const pid_t first = spawnAttnlab(words("sweep --mechanisms longformer,performer,linformer --n 256:2048 --seeds 3 --repeats 3 "
                                         "--quiet --out " + out.string()),
                                   dir_ / "first.log");
  for (int i = 0; i < 200 && !fs::exists(out / ".attnlab.lock"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (const std::string& args : {"report " + out.string(), kSmallSweep + " --out " + out.string()}) {
    const Outcome o = runAttnlab(args);
    EXPECT_EQ(o.code, 1) << args;
    EXPECT_NE(o.err.find("'" + out.string() + "' is in use by another attnlab"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("process " + std::to_string(first)), std::string::npos) << "names the other process: " << o.err;
  }
  int status = 0;
  EXPECT_EQ(::waitpid(first, &status, WNOHANG), 0) << "the first sweep ended before the check: make it longer";
  ::kill(first, SIGKILL);  // the system releases its lock with it
  ::waitpid(first, &status, 0);
  const Outcome after = runAttnlab(kSmallSweep + " --out " + out.string());
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_FALSE(consistentRun(out).empty());
}

// A finished small sweep in `out`; its results.json as JSON.
nlohmann::json smallSweep(const fs::path& out) {
  const Outcome o = runAttnlab(kSmallSweep + " --quiet --out " + out.string());
  EXPECT_EQ(o.code, 0) << o.err;
  return nlohmann::json::parse(slurpFile(out / "results.json"));
}

TEST_F(Cli, WhatAKilledRunLeftIsFinishedOrRemovedByTheNext) {
  const fs::path out = dir_ / "sweep";
  smallSweep(out);
  // Killed during its renames: a complete staging folder (manifest written) with part of its entries moved.
  const fs::path committed = out / ".attnlab-staging-999999-0";
  fs::create_directories(committed / "figures");
  std::ofstream(committed / "extra.txt") << "staged";
  std::ofstream(committed / "figures" / "new.svg") << "<svg/>";
  std::ofstream(committed / ".attnlab-commit") << "figures\nextra.txt\nalready-moved.txt\n";
  // Killed while staging: no manifest, so none of it may ever appear.
  const fs::path unfinished = out / ".attnlab-staging-999998-0";
  fs::create_directories(unfinished);
  std::ofstream(unfinished / "half.txt") << "half";
  std::ofstream(unfinished / "results.json") << "{";
  // The next writer into the folder (here a report that fails on a crafted backend) finishes the first
  // and removes the second before anything else.
  nlohmann::json j = nlohmann::json::parse(slurpFile(out / "results.json"));
  j["spec"]["backends"] = {"../x"};
  std::ofstream(out / "results.json") << j.dump(1);
  const Outcome o = runAttnlab("report " + out.string());
  EXPECT_EQ(o.code, 1) << o.err;
  EXPECT_TRUE(stagingLeftovers(out).empty());
  EXPECT_EQ(slurpFile(out / "extra.txt"), "staged");
  EXPECT_EQ(slurpFile(out / "figures" / "new.svg"), "<svg/>");
  EXPECT_FALSE(fs::exists(out / "figures" / "mechanisms-cpu-time.svg")) << "the old figures folder was kept";
  EXPECT_FALSE(fs::exists(out / "half.txt"));
  EXPECT_TRUE(nlohmann::json::accept(slurpFile(out / "results.json")));
}

TEST_F(Cli, NamesFromResultsJsonNeverLeaveTheFolder) {
  const fs::path out = dir_ / "crafted";
  nlohmann::json j = smallSweep(out);
  const auto before = snapshot(out);
  // The folders the crafted path walks through exist (a crafted folder can ship them).
  fs::create_directories(out / "figures" / "mechanisms-x");
  const std::string evil = "x/../../../PWNED";
  j["spec"]["backends"] = {evil};
  for (auto& p : j["points"]) p["backend"] = evil;
  std::ofstream(out / "results.json") << j.dump(1);
  const Outcome o = runAttnlab("report " + out.string());
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("spec.backends"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find(evil), std::string::npos) << o.err;
  for (const auto& e : fs::recursive_directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find("PWNED"), std::string::npos) << "written outside the folder: " << e.path();
  auto after = snapshot(out);
  after.erase("results.json");
  auto expected = before;
  expected.erase("results.json");
  EXPECT_TRUE(after == expected) << "the refused report changed the folder";
}

TEST_F(Cli, AReportOfAHugeResultsJsonIsRefusedInSeconds) {
  const fs::path out = dir_ / "huge";
  const nlohmann::json j = smallSweep(out);
  // 1,001 backends (the same one repeated, as a crafted file may), then 1,000 mechanisms, then 1,000 N.
  auto many = [](const std::string& stem, int count) {
    nlohmann::json a = nlohmann::json::array();
    for (int i = 0; i < count; ++i) a.push_back(stem.empty() ? nlohmann::json(64 + i) : nlohmann::json(stem + std::to_string(i)));
    return a;
  };
  nlohmann::json backends = nlohmann::json::array();
  for (int i = 0; i < 1001; ++i) backends.push_back("cpu");
  for (const auto& [key, value, words_] : std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
           {"backends", backends, "1001 backends (spec.backends); a report draws at most 4"},
           {"mechanisms", many("m", 1000), "1000 mechanisms (spec.mechanisms); a report draws at most 64"},
           {"n", many("", 1000), "1000 values of N (spec.n); a report draws at most 32"}}) {
    nlohmann::json crafted = j;
    crafted["spec"][key] = value;
    std::ofstream(out / "results.json") << crafted.dump(1);
    const auto t0 = std::chrono::steady_clock::now();
    const Outcome o = runAttnlab("report " + out.string(), "timeout 60");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(o.code, 1) << key << ": " << o.err;
    EXPECT_NE(o.err.find(words_), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("split the sweep"), std::string::npos) << o.err;
    EXPECT_LT(s, 10) << key;
  }
  // A sweep asking for more N than a report draws is refused before it starts.
  std::string ns;
  for (int i = 0; i < 40; ++i) ns += (ns.empty() ? "" : ",") + std::to_string(64 + i);
  const Outcome sweep = runAttnlab("sweep --mechanisms performer --n " + ns + " --out " + (dir_ / "big").string());
  EXPECT_EQ(sweep.code, 1);
  EXPECT_NE(sweep.err.find("40 values of N"), std::string::npos) << sweep.err;
  EXPECT_FALSE(fs::exists(dir_ / "big"));
}

TEST_F(Cli, AFullDiskLeavesThePreviousReportWhole) {
  const fs::path out = dir_ / "sweep";
  smallSweep(out);
  std::ofstream(out / "notes.txt") << "mine";
  const auto before = snapshot(out);
  // A file size limit (SIGXFSZ ignored: writes fail with EFBIG, as on a full disk) at sizes that let the
  // data through and fail on a figure or on report.html.
  for (const int blocks : {4, 30, 60, 120}) {
    const std::string limit = "sh -c 'ulimit -f " + std::to_string(blocks) + "; trap \"\" XFSZ; exec \"$0\" \"$@\"'";
    for (const std::string& args : {kSmallSweep + " --quiet --out " + out.string(), "report " + out.string()}) {
      const Outcome o = runAttnlab(args, limit);
      EXPECT_EQ(o.code, 1) << blocks << " blocks: " << args << ": " << o.err;
      EXPECT_NE(o.err.find("File too large (the file size limit was reached"), std::string::npos) << o.err;
      EXPECT_TRUE(snapshot(out) == before) << blocks << " blocks: " << args << ": the previous report changed";
      EXPECT_TRUE(stagingLeftovers(out).empty());
    }
  }
}

// A photo as the input: a shipped one by name, any file Qt reads by path, the grid as --size; bad files
// and conflicting options are one line, exit 1, nothing written.
TEST_F(Cli, ImageInputTakesAShippedPhotoOrAFileOnAGrid) {
  Outcome o = runAttnlab("run --mechanism longformer --image coffee --size 48x32 --d 16 --backend cpu --json");
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["input"]["n"], 1536);
  EXPECT_EQ(j["input"]["generator"], "image");
  EXPECT_EQ(j["input"]["image"], "coffee");
  EXPECT_EQ(j["input"]["width"], 48);
  o = runAttnlab("render --mechanism exact --input image --image astronaut --size 24x24 --backend cpu --dpi 72 --out " +
                 path("a.png"));
  ASSERT_EQ(o.code, 0) << o.err;
  int w = 0, h = 0;
  EXPECT_TRUE(pngSize(slurpFile(path("a.png")), w, h));
  // A file: a copy of a shipped PNG, and a PPM written here (Qt reads any format it has a plugin for).
  fs::copy_file(std::string(ATTNLAB_SOURCE_DIR) + "/assets/images/chelsea.png", path("cat.png"));
  o = runAttnlab("run --mechanism exact --image " + path("cat.png") + " --size 12x8 --d 16 --backend cpu --json");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["input"]["image"], path("cat.png"));
  {
    std::ofstream ppm(path("grey.ppm"), std::ios::binary);
    ppm << "P6\n4 2\n255\n" << std::string(24, char(128));
  }
  o = runAttnlab("run --mechanism exact --image " + path("grey.ppm") + " --image-features filters --filters 4 --size 4x2 --d 8 --backend cpu --out " +
                 path("o.npy"));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(npy::load(path("o.npy")).value().rows(), 8);
  fs::remove(path("o.npy"));

  { std::ofstream(path("broken.jpg")) << "not a picture"; }
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"--image " + path("broken.jpg"), "cannot read '" + path("broken.jpg") + "' as an image: "},
           {"--image " + path("missing.png"), "there is no such file"},
           {"--image kitten", "the shipped images are astronaut, coffee, chelsea, rocket"},
           {"--image coffee --input local", "drop --input"},
           {"--image coffee --size 48x32 --n 1536", "either --size WxH or --n"},
           {"--size 48x32", "--size WxH gives the grid of the image input"},
           {"--image coffee --size 48by32", "--size takes the image grid as WxH"},
           {"--image coffee --image-features sift", "rgbxy"},
           {"--input image --size 0x3", "--size takes"}}) {
    const Outcome bad = runAttnlab("run --mechanism exact --backend cpu " + args + " --out " + path("o.npy"));
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << ": " << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << args << ": one line";
    EXPECT_FALSE(fs::exists(path("o.npy"))) << args;
  }
}

// A change pair: --image-b gives the second picture (the keys'), kept in the run's summary; a pair without its
// first picture, of two sizes or of an unknown name is one line, exit 1, nothing written.
TEST_F(Cli, ChangePairTakesASecondPictureOrOneClearLine) {
  const Outcome o = runAttnlab("run --mechanism fractal --image coffee --image-b coffee-changed --size 24x16 --d 16 "
                               "--backend cpu --json");
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["input"]["image"], "coffee");
  EXPECT_EQ(j["input"]["image_b"], "coffee-changed");
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"--image-b coffee-changed --size 24x16", "give the first with --image NAME|FILE"},
           {"--image coffee --image-b astronaut --size 24x16", "the change pair's pictures differ in size"},
           {"--image coffee --image-b kitten --size 24x16", "--image-b kitten: there is no shipped image or file"}}) {
    const Outcome bad = runAttnlab("run --mechanism fractal --backend cpu " + args + " --out " + path("o.npy"));
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << ": " << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << args << ": one line";
    EXPECT_FALSE(fs::exists(path("o.npy"))) << args;
  }
}

// The pixel view: a picked pixel's attention over the photo, written as a figure; a pixel outside the grid, a
// second --pixel form error and an input that is no picture are one line each, exit 1, nothing written.
TEST_F(Cli, RenderThePixelViewOfAPhotoOrOneClearLine) {
  Outcome o = runAttnlab("render --mechanism longformer --image coffee --size 24x16 --d 16 --backend cpu --dpi 72 "
                         "--view pixel --pixel 3,4 --out " + path("p.png"));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("pixel view"), std::string::npos) << o.out;
  int w = 0, h = 0;
  EXPECT_TRUE(pngSize(slurpFile(path("p.png")), w, h));
  EXPECT_GT(w, 400);
  o = runAttnlab("render --mechanism exact --image astronaut --size 16x16 --d 16 --backend cpu --view pixel --out " +
                 path("c.svg"));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("showing the centre pixel (8, 8)"), std::string::npos) << o.out;
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"--image coffee --size 24x16 --view pixel --pixel 70,3", "--pixel 70,3 lies outside the 24\xC3\x97" "16 image"},
           {"--image coffee --size 24x16 --view pixel --pixel 3", "--pixel takes X,Y"},
           {"--image coffee --size 24x16 --pixel 3,3", "add --view pixel"},
           {"--input clustered --n 64 --view pixel", "add --input image"}}) {
    const Outcome bad = runAttnlab("render --mechanism longformer --d 16 --backend cpu " + args + " --out " + path("bad.png"));
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << ": " << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << args << ": one line";
    EXPECT_FALSE(fs::exists(path("bad.png"))) << args;
  }
}

// The gates view: a gating module's maps and gates over the photo (CBAM), GCNet's one map beside exact maps at
// picked pixels; a module with nothing to draw and an input that is no picture are one line each, exit 1.
TEST_F(Cli, RenderTheGatesViewOfAPhotoOrOneClearLine) {
  Outcome o = runAttnlab("render --mechanism cbam --input image --image coffee --size 24x16 --d 16 --backend cpu "
                         "--dpi 72 --view gates --out " + path("g.png"));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("gates view of cbam"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("no N\xC3\x97N weights"), std::string::npos) << o.out;  // the note says why no matrix
  int w = 0, h = 0;
  EXPECT_TRUE(pngSize(slurpFile(path("g.png")), w, h));
  EXPECT_GT(w, 400);
  o = runAttnlab("render --mechanism gcnet --image coffee --size 24x16 --d 16 --backend cpu --view gates "
                 "--pixel '3,4;20,12' --out " + path("c.svg"));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("query independence of exact attention"), std::string::npos) << o.out;
  const std::string svg = slurpFile(path("c.svg"));
  EXPECT_NE(svg.find("exact at pixel (20, 12)"), std::string::npos);
  EXPECT_NE(svg.find("cosine distance"), std::string::npos);
  for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
           {"--mechanism longformer --image coffee --size 24x16 --view gates", "has no maps or gates"},
           {"--mechanism cbam --input clustered --n 64 --view gates", "add --input image"},
           {"--mechanism cbam --image coffee --size 24x16 --view gates --step 3", "--step takes 1 to 2"},
           {"--mechanism cbam --image coffee --size 24x16 --view gates --window 0:4,0:4", "shows the whole picture"}}) {
    const Outcome bad = runAttnlab("render --d 16 --backend cpu " + args + " --out " + path("bad.png"));
    EXPECT_EQ(bad.code, 1) << args;
    EXPECT_NE(bad.err.find(words), std::string::npos) << args << ": " << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << args << ": one line";
    EXPECT_FALSE(fs::exists(path("bad.png"))) << args;
  }
}

// The vision family (issue 22): every module runs from the CLI on a shipped photo and on a PNG of one's own, and
// draws its view of a picture: a picked pixel's map (the pairwise modules) or its gates (the gating modules).
TEST_F(Cli, EveryVisionModuleRunsOnAPhotoAndAnImportedPngAndDrawsItsView) {
  fs::copy_file(std::string(ATTNLAB_SOURCE_DIR) + "/assets/images/rocket.png", path("mine.png"));
  const std::vector<std::pair<std::string, std::string>> modules = {
      {"ccnet", "pixel"},          {"axial", "pixel"},         {"interlaced", "pixel"}, {"emanet", "pixel"},
      {"autonl", "pixel"},         {"kronecker", "pixel"},     {"fast-attention", "pixel"},
      {"permutohedral", "pixel"},  {"gcnet", "gates"},         {"cbam", "gates"},
      {"tensor-low-rank", "gates"}, {"fractal", "gates"}};
  for (const auto& [id, view] : modules) {
    Outcome o = runAttnlab("run --mechanism " + id + " --image coffee --size 16x12 --d 16 --backend cpu --json");
    ASSERT_EQ(o.code, 0) << id << ": " << o.err;
    EXPECT_EQ(nlohmann::json::parse(o.out)["input"]["image"], "coffee") << id;
    o = runAttnlab("run --mechanism " + id + " --image " + path("mine.png") + " --size 12x8 --d 16 --backend cpu --out " +
                   path("o.npy"));
    ASSERT_EQ(o.code, 0) << id << ": " << o.err;
    EXPECT_EQ(npy::load(path("o.npy")).value().rows(), 96) << id;
    fs::remove(path("o.npy"));
    o = runAttnlab("render --mechanism " + id + " --image " + path("mine.png") + " --size 12x8 --d 16 --backend cpu --dpi 72 "
                   "--view " + view + " --pixel 3,4 --out " + path(id + ".png"));
    ASSERT_EQ(o.code, 0) << id << " --view " << view << ": " << o.err;
    int w = 0, h = 0;
    EXPECT_TRUE(pngSize(slurpFile(path(id + ".png")), w, h)) << id;
    EXPECT_GT(w, 300) << id;
  }
}

}  // namespace
}  // namespace attn
