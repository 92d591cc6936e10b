// The rules that keep every mechanism honest, one parameterised test per mechanism id (DESIGN.md, "Rules
// that keep it honest"; issue 19):
//  - approximation vs different operator: a mechanism is an approximation of softmax attention exactly
//    when it names a setting (Mechanism::exactLimit) at which it reproduces softmax attention of its
//    reference inputs, and it does so there;
//  - conventions are one line each, so they fit an info card, `attnlab list` and a figure footer.
#include <gtest/gtest.h>

#include "attention/mechanism.h"
#include "attention/runner.h"
#include "test_util.h"

namespace attn::test {
namespace {

std::vector<std::string> allIds() {
  std::vector<std::string> ids;
  for (const auto& m : mechanisms()) ids.push_back(m->info().id);
  return ids;
}

std::string testName(const testing::TestParamInfo<std::string>& p) {
  std::string s = p.param;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

class Truth : public testing::TestWithParam<std::string> {};

// Clustered tokens (block structure, peaked rows: an easy input is no test) with N not a power of two.
Inputs ruleInputs() {
  InputSpec s;
  s.generator = Generator::Clustered;
  s.n = 96;
  s.d = 16;
  s.dv = 8;
  s.seed = 3;
  return generate(s);
}

TEST_P(Truth, ApproximationRule) {
  const auto m = requireMechanism(GetParam());
  const Inputs in = ruleInputs();
  const std::optional<ExactLimit> limit = m->exactLimit(in);
  if (!m->info().approximates_softmax) {
    EXPECT_FALSE(limit.has_value()) << GetParam() << " is labelled a different operator, yet names an exact limit: "
                                    << (limit ? limit->description : "");
    return;
  }
  ASSERT_TRUE(limit.has_value()) << GetParam()
                                 << " is labelled an approximation of softmax attention but names no setting "
                                    "at which it is exact (Mechanism::exactLimit)";
  EXPECT_FALSE(limit->description.empty()) << GetParam();
  std::map<std::string, std::string> raw(limit->settings.begin(), limit->settings.end());
  const Params params = Params::resolve(m->params(), raw);
  EXPECT_TRUE(params.notes().empty()) << GetParam() << ": the exact limit's settings were clamped: "
                                      << (params.notes().empty() ? "" : params.notes().front());
  // An estimator's limit is checked on smaller logits (ExactLimit::input_scale): same tokens, scaled q and k.
  Inputs checked = in;
  checked.q *= static_cast<float>(limit->input_scale);
  checked.k *= static_cast<float>(limit->input_scale);
  CpuBackend cpu(2);
  RunOptions o;
  o.seed = 5;
  const Result r = m->run(checked, params, cpu, o);
  const auto own = m->ownReference(checked, params);
  const Inputs ref = own ? own->inputs : m->referenceInputs(checked, params);
  DenseAttentionOptions ro;
  ro.mask_self = ref.mask_self;
  ro.causal = m->referenceIsCausal(false);  // an RNN (fast weights) is causal whatever the switch says
  const double e = relativeError(r.output, refAttention(ref.q, ref.k, ref.v, ro));
  EXPECT_LE(e, limit->tolerance) << GetParam() << " at its exact limit (" << limit->description << ")";
}

TEST_P(Truth, ConventionsAreOneLineEach) {
  const auto& info = requireMechanism(GetParam())->info();
  for (const std::string& line : info.conventions) {
    EXPECT_FALSE(line.empty()) << GetParam();
    EXPECT_EQ(line.find('\n'), std::string::npos) << GetParam() << ": " << line;
    EXPECT_LE(line.size(), 200u) << GetParam() << ": a convention note is one line: " << line;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryMechanism, Truth, testing::ValuesIn(allIds()), testName);

}  // namespace
}  // namespace attn::test
