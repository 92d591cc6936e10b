// results.json read back (attnlab report): a value of the wrong type is a message naming its key by its
// path in the file and what it should be, never "internal error: [json.exception.type_error.302] …".
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/sweep.h"

namespace attn {
namespace {

nlohmann::json wellFormed() {
  std::ifstream in(std::string(ATTNLAB_SOURCE_DIR) + "/fuzz/corpus/results/results.json");
  return nlohmann::json::parse(in);
}

TEST(ResultsJson, WrongTypesNameTheKeyAndWhatItShouldBe) {
  const nlohmann::json good = wellFormed();
  ASSERT_NO_THROW(sweepFromJson(good));
  ASSERT_GE(good["points"].size(), 2u);
  struct Case {
    nlohmann::json::json_pointer at;
    nlohmann::json value;
    std::string words;
  };
  using P = nlohmann::json::json_pointer;
  const std::vector<Case> cases = {
      {P("/points/1/time_ms/median"), "fast", "points[1].time_ms.median should be a number, not the string \"fast\""},
      {P("/points/0/n"), 64.5, "points[0].n should be a whole number, not the number 64.5"},
      {P("/points/1/notes"), {1, 2}, "points[1].notes[0] should be a string, not the number 1"},
      {P("/points/0/approximates_softmax"), "yes", "points[0].approximates_softmax should be true or false"},
      {P("/points/0/rel_error"), 3, "points[0].rel_error should be an object {mean, std, count}, not the number 3"},
      {P("/points/0/rel_error/count"), "7", "points[0].rel_error.count should be a whole number"},
      {P("/points/0/params"), {{"window", 4}}, "points[0].params.window should be a string, not the number 4"},
      {P("/points/0/stages_ms"), {{"exact", "x"}}, "points[0].stages_ms.exact should be a number"},
      {P("/points/0/time_ms"), {1, 2}, "points[0].time_ms should be an object, not a list"},
      {P("/points/1"), "p", "points[1] should be an object, not the string \"p\""},
      {P("/points"), {{"a", 1}}, "points should be a list, not an object"},
      {P("/version"), "1", "version should be a whole number"},
      {P("/command"), 5, "command should be a string, not the number 5"},
      {P("/spec/seeds"), 4294967297LL, "spec.seeds should be a whole number from -2147483648 to 2147483647, not the number 4294967297"},
      {P("/spec/first_seed"), -1, "spec.first_seed should be a whole number ≥ 0, not the number -1"},
      {P("/spec/n"), {256, "512"}, "spec.n[1] should be a whole number, not the string \"512\""},
      {P("/spec/knobs/clusters"), 1e300, "spec.knobs.clusters should be a whole number, not the number 1e+300"},
      {P("/spec/params"), {{"performer", {{"features", 64}}}}, "spec.params.performer.features should be a string"},
      {P("/spec/input"), 3, "spec.input should be a string, not the number 3"},
      {P("/spec/input"), "nope", "spec.input: unknown input generator"},
      {P("/spec"), nullptr, "spec should be an object, not null"},
      {P("/machine"), "m", "machine should be an object, not the string \"m\""},
  };
  for (const Case& c : cases) {
    nlohmann::json j = good;
    j[c.at] = c.value;
    try {
      (void)sweepFromJson(j);
      ADD_FAILURE() << c.at.to_string() << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("results.json: " + c.words), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.at.to_string() << ": not a UserError: " << e.what();
    }
  }
  nlohmann::json missing = good;
  missing["points"][2].erase("status");
  try {
    (void)sweepFromJson(missing);
    ADD_FAILURE() << "a point without status was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("points[2].status is missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attn
