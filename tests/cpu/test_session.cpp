// The window's session files parsed without Qt (attention/session.h): values out of range are clamped and
// each clamp is said; strings and the file are capped; wrong types are messages naming the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "attention/session.h"

namespace attn {
namespace {

nlohmann::json saved() {
  std::ifstream in(std::string(ATTNLAB_SOURCE_DIR) + "/fuzz/corpus/session/session.json");
  return nlohmann::json::parse(in);
}

const std::vector<ParamSpec> kSpecs = {{"window", "window", "", ParamKind::Int, 1, 4096, 64},
                                       {"kernel", "kernel", "", ParamKind::Choice, 0, 2, 0, false, {"a", "b", "c"}}};
const session::ParamLookup kLookup = [](const std::string& id) -> const std::vector<ParamSpec>* {
  return id == "m" ? &kSpecs : nullptr;
};

bool said(const session::Session& s, const std::string& words) {
  for (const auto& n : s.notes)
    if (n.find(words) != std::string::npos) return true;
  return false;
}

TEST(Session, AWellFormedSessionReadsBackWithoutNotes) {
  const auto s = session::parse(saved(), defaultInput(), kLookup);
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s.value().notes.empty());
  EXPECT_EQ(s.value().mechanism, "m");
  EXPECT_EQ(s.value().input.n, 256);
  EXPECT_EQ(s.value().input.generator, Generator::Clustered);
  EXPECT_EQ(s.value().params.at("window"), 64);
  ASSERT_TRUE(s.value().view);
  EXPECT_EQ(s.value().view->scale, "log");
  EXPECT_EQ(s.value().imported, "/tmp/x.npz");
}

// N = 1e18, temperature 0 and seed −1 used to be clamped silently (seed −1 wrapped to 2^64 − 1 first).
TEST(Session, OutOfRangeValuesAreClampedAndSaid) {
  nlohmann::json j = saved();
  j["input"]["n"] = 1e18;
  j["input"]["d"] = 0;
  j["input"]["temperature"] = 0;
  j["input"]["seed"] = -1;
  j["input"]["clusters"] = 1000000;
  j["input"]["noise"] = -1;
  j["input"]["length_scale"] = 1e9;
  j["input"]["period"] = 0;
  j["input"]["heavy_hitters"] = 18446744073709551615ULL;
  j["input"]["position_weight"] = 1e300;
  j["params"]["window"] = 1e9;
  j["params"]["kernel"] = 7;
  j["compare_params"]["m"]["window"] = -3;
  j["view"]["zoom"] = {0.9, 1.4, 0, 0.5};
  const auto s = session::parse(j, defaultInput(), kLookup);
  ASSERT_TRUE(s) << s.error();
  const session::Session& v = s.value();
  EXPECT_EQ(v.input.n, session::kMaxN);
  EXPECT_EQ(v.input.d, 1);
  EXPECT_EQ(v.input.seed, 0u);
  EXPECT_EQ(v.input.temperature, session::kMinTemperature);
  EXPECT_EQ(v.input.heavy_hitters, session::kMaxHeavyHitters);
  EXPECT_EQ(v.params.at("window"), 4096);
  EXPECT_EQ(v.params.at("kernel"), 2);
  EXPECT_EQ(v.compare_params.at("m").at("window"), 1);
  EXPECT_TRUE(said(v, "input n 1e+18 was set to 16384")) << ::testing::PrintToString(v.notes);
  EXPECT_TRUE(said(v, "input temperature 0 was set to 0.01"));
  EXPECT_TRUE(said(v, "input seed -1 was set to 0"));
  EXPECT_TRUE(said(v, "input d 0 was set to 1"));
  for (const char* key : {"clusters", "noise", "length_scale", "period", "heavy_hitters", "position_weight"})
    EXPECT_TRUE(said(v, std::string("input ") + key + " ")) << key;
  EXPECT_TRUE(said(v, "parameter window 1e+09 was set to 4096 (its range is 1 to 4096)"));
  EXPECT_TRUE(said(v, "parameter kernel 7 was set to 2"));
  EXPECT_TRUE(said(v, "parameter m.window -3 was set to 1"));
  EXPECT_TRUE(said(v, "zoom window"));
  EXPECT_EQ(v.notes.size(), 14u) << ::testing::PrintToString(v.notes);
}

TEST(Session, WrongTypesAreMessagesNamingTheKey) {
  const std::vector<std::pair<nlohmann::json::json_pointer, nlohmann::json>> cases = {
      {nlohmann::json::json_pointer("/input/n"), "256"},
      {nlohmann::json::json_pointer("/input/n"), 1.5},
      {nlohmann::json::json_pointer("/input/seed"), nullptr},
      {nlohmann::json::json_pointer("/input/temperature"), "hot"},
      {nlohmann::json::json_pointer("/input/generator"), "nope"},
      {nlohmann::json::json_pointer("/causal"), "yes"},
      {nlohmann::json::json_pointer("/backend"), 1}};
  for (const auto& [at, value] : cases) {
    nlohmann::json j = saved();
    j[at] = value;
    const auto s = session::parse(j, defaultInput(), kLookup);
    ASSERT_FALSE(s) << at.to_string();
    const std::string key = at.to_string().substr(1);
    std::string dotted = key;
    std::replace(dotted.begin(), dotted.end(), '/', '.');
    EXPECT_NE(s.error().find(dotted), std::string::npos) << s.error();
  }
}

// A 50 MB mechanism name took 90 s and 2 GB: the file is capped before it is parsed, and every string in it.
TEST(Session, TheFileAndItsStringsAreCapped) {
  nlohmann::json j = saved();
  j["mechanism"] = std::string(session::kMaxString + 1, 'x');
  const auto s = session::parse(j);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("mechanism is 4097 bytes long; at most 4096"), std::string::npos) << s.error();
  j = saved();
  j["view"]["colormap"] = std::string(5000, 'c');
  EXPECT_FALSE(session::parse(j));
  j = saved();
  j["mechanism"] = std::string(8 << 20, 'x');
  const std::string text = j.dump();
  const std::string path = (std::filesystem::temp_directory_path() / ("attnlab-session-" + std::to_string(::getpid()) + ".json")).string();
  std::ofstream(path) << text;
  const auto start = std::chrono::steady_clock::now();
  const auto big = session::parseText(text);
  const auto file = session::readFile(path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::filesystem::remove(path);
  EXPECT_LT(seconds, 0.5);  // refused by its size, unparsed (a 50 MB name took 90 s)
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().find("at most 1 MiB"), std::string::npos) << big.error();
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().find("at most 1 MiB"), std::string::npos) << file.error();
}

}  // namespace
}  // namespace attn
