// The command line end to end: `attnlab run` on .npy files against a float64 reference, the JSON
// summaries, the headless default, and one clear error line for bad input with nothing half-written.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/backend.h"
#include "attention/npy.h"
#include "attention/random.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome runAttnlab(const std::string& args) {
  // One folder per test process: ctest runs the tests of this file in parallel.
  const fs::path dir = fs::temp_directory_path() / ("attnlab-cli-test-" + std::to_string(::getpid()));
  fs::create_directories(dir / "xdg");
  fs::permissions(dir / "xdg", fs::perms::owner_all, fs::perm_options::replace);
  const std::string out = (dir / "stdout").string(), err = (dir / "stderr").string();
  const std::string cmd = "env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=" +
                          (dir / "xdg").string() + " " + std::string(ATTNLAB_BINARY) + " " + args + " >" + out + " 2>" + err + " </dev/null";
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
  const Outcome info = runAttnlab("info --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_TRUE(j.contains("vulkan_devices"));
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
      {"run --mechanism exact --q " + path("q.npy") + " --k " + path("k5.npy") + " --v " + path("q.npy"), "same number of columns"},
      {"run --mechanism exact --q " + path("bad.npy") + " --k " + path("q.npy") + " --v " + path("q.npy"), "not a .npy file"},
      {"run --mechanism exact --q /nonexistent.npy --k " + path("q.npy") + " --v " + path("q.npy"), "cannot open"},
      {"run --mechanism nystromformer --causal", "no causal form"},
      {"run --mechanism exact --n 9000 --weights " + path("w.npy"), "64M entries"},
      {"run --mechanism exact --frobnicate", "frobnicate"},
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

}  // namespace
}  // namespace attn
