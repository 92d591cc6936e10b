// The registry: every mechanism, in catalog order. Each mechanism file defines one factory declared
// in mechanisms/all.h; adding a mechanism is one file and one line here.
#include <algorithm>

#include "attention/mechanism.h"
#include "attention/mechanisms/all.h"

namespace attn {

std::string familyName(Family f) {
  switch (f) {
    case Family::Reference: return "Reference";
    case Family::FixedSparse: return "F1 Fixed / structured sparse patterns";
    case Family::ContentSparse: return "F2 Content-based sparsity";
    case Family::LowRankKernel: return "F3 Low-rank and kernel (linear) attention";
    case Family::Memory: return "F4 Memory, global tokens, compression";
    case Family::Vision: return "F5 Vision / 2D context modules";
    case Family::NonPairwise: return "F6 Non-pairwise / synthesized";
  }
  return "?";
}

std::string familyShort(Family f) {
  switch (f) {
    case Family::Reference: return "ref";
    case Family::FixedSparse: return "F1";
    case Family::ContentSparse: return "F2";
    case Family::LowRankKernel: return "F3";
    case Family::Memory: return "F4";
    case Family::Vision: return "F5";
    case Family::NonPairwise: return "F6";
  }
  return "?";
}

double Cost::total_ms() const {
  double t = 0;
  for (const auto& s : stages) t += s.ms;
  return t;
}

double Cost::display_ms() const {
  double t = 0;
  for (const auto& s : stages)
    if (s.display_only) t += s.ms;
  return t;
}

const std::vector<std::shared_ptr<const Mechanism>>& mechanisms() {
  static const std::vector<std::shared_ptr<const Mechanism>> all = {
      mech::makeExact(),
      mech::makeMemoryCompressed(),    // #1
      mech::makeCbam(),                // #2
      mech::makeSetTransformer(),      // #3
      mech::makeCcnet(),               // #4
      mech::makeEfficientAttention(),  // #5
      mech::makeStarTransformer(),     // #6
      mech::makeGcnet(),               // #7
      mech::makeSparseTransformer(),   // #8
      mech::makeScram(),               // #9
      mech::makeInterlaced(),          // #10
      mech::makePermutohedral(),       // #11
      mech::makeProductKeyMemory(),    // #12
      mech::makeEmanet(),              // #13
      mech::makeBpTransformer(),       // #14
      mech::makeCompressive(),         // #15
      mech::makeAxial(),               // #16
      mech::makeReformer(),            // #17
      mech::makeSinkhorn(),            // #18
      mech::makeTransformerOnADiet(),  // #19
      mech::makeTalkConv(),            // #20
      mech::makeSac(),                 // #21
      mech::makeRouting(),             // #22
      mech::makeAutonl(),              // #23
      mech::makeLongformer(),          // #24
      mech::makeEtc(),                 // #25
      mech::makeMultiscale(),          // #26
      mech::makeSynthesizer(),         // #27
      mech::makeJukebox(),             // #28
      mech::makeInputIndependent(),    // #29
      mech::makeGmat(),                // #30
      mech::makeLinearTransformer(),   // #31
      mech::makeLinformer(),           // #32
      mech::makePerformerV1(),         // #33
      mech::makeKronecker(),           // #34
      mech::makeFastAttention(),       // #35
      mech::makeClustered(),           // #36
      mech::makeBigBird(),             // #37
      mech::makeTensorLowRank(),       // #38
      mech::makeFractal(),             // #39
      mech::makePerformer(),           // #40
      mech::makeMemformer(),           // #41
      mech::makeSmyrf(),               // #42
      mech::makeInformer(),            // #43
      mech::makeSlimPerformer(),       // #44
      mech::makeNystromformer(),       // #45
      mech::makeFastWeight(),          // #46
      mech::makeLambda(),              // #47
      mech::makeRfa(),                 // #48
  };
  return all;
}

std::vector<std::shared_ptr<const Mechanism>> mechanismsByFamily() {
  std::vector<std::shared_ptr<const Mechanism>> sorted = mechanisms();
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a->info().family < b->info().family; });
  return sorted;
}

std::shared_ptr<const Mechanism> findMechanism(const std::string& id) {
  for (const auto& m : mechanisms())
    if (m->info().id == id) return m;
  return nullptr;
}

std::shared_ptr<const Mechanism> requireMechanism(const std::string& id) {
  if (auto m = findMechanism(id)) return m;
  std::string known;
  for (const auto& m : mechanisms()) known += (known.empty() ? "" : ", ") + m->info().id;
  throw UserError("unknown mechanism '" + id + "'; registered: " + known + " (see `attnlab list`)");
}

std::string describeExactLimit(const Mechanism& m) {
  // The description does not depend on the input; a small generated one stands for any.
  InputSpec spec;
  spec.n = 64;
  spec.d = 16;
  spec.dv = 16;
  const std::optional<ExactLimit> limit = m.exactLimit(generate(spec));
  return limit ? limit->description : std::string();
}

std::string describeRelation(const Mechanism& m) {
  if (!m.info().approximates_softmax)
    return "a different operator: not an approximation of softmax attention (no setting reproduces it)";
  return "approximates softmax attention; exact at: " + describeExactLimit(m);
}

}  // namespace attn
