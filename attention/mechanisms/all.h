// Factories of the registered mechanisms (one per file in this folder), called by registry.cpp.
#pragma once
#include <memory>

#include "attention/mechanism.h"

namespace attn::mech {
std::shared_ptr<const Mechanism> makeExact();
std::shared_ptr<const Mechanism> makeReformer();
std::shared_ptr<const Mechanism> makeLongformer();
std::shared_ptr<const Mechanism> makeLinearTransformer();
std::shared_ptr<const Mechanism> makeNystromformer();
std::shared_ptr<const Mechanism> makeSparseTransformer();
std::shared_ptr<const Mechanism> makeTransformerOnADiet();
std::shared_ptr<const Mechanism> makeJukebox();
std::shared_ptr<const Mechanism> makeBigBird();
std::shared_ptr<const Mechanism> makeBpTransformer();
std::shared_ptr<const Mechanism> makeEtc();
std::shared_ptr<const Mechanism> makeMultiscale();
std::shared_ptr<const Mechanism> makeMemoryCompressed();
std::shared_ptr<const Mechanism> makeSetTransformer();
std::shared_ptr<const Mechanism> makeCompressive();
std::shared_ptr<const Mechanism> makeGmat();
std::shared_ptr<const Mechanism> makeStarTransformer();
std::shared_ptr<const Mechanism> makeMemformer();
std::shared_ptr<const Mechanism> makeRouting();
std::shared_ptr<const Mechanism> makeClustered();
std::shared_ptr<const Mechanism> makeInformer();
std::shared_ptr<const Mechanism> makeSac();
std::shared_ptr<const Mechanism> makeScram();
std::shared_ptr<const Mechanism> makeProductKeyMemory();
std::shared_ptr<const Mechanism> makeSinkhorn();
std::shared_ptr<const Mechanism> makeSmyrf();
std::shared_ptr<const Mechanism> makeEfficientAttention();
std::shared_ptr<const Mechanism> makeLinformer();
std::shared_ptr<const Mechanism> makePerformerV1();
std::shared_ptr<const Mechanism> makePerformer();
std::shared_ptr<const Mechanism> makeSlimPerformer();
std::shared_ptr<const Mechanism> makeFastWeight();
std::shared_ptr<const Mechanism> makeRfa();
std::shared_ptr<const Mechanism> makeTalkConv();
std::shared_ptr<const Mechanism> makeSynthesizer();
std::shared_ptr<const Mechanism> makeInputIndependent();
std::shared_ptr<const Mechanism> makeLambda();
std::shared_ptr<const Mechanism> makeCcnet();
std::shared_ptr<const Mechanism> makeAxial();
std::shared_ptr<const Mechanism> makePermutohedral();
std::shared_ptr<const Mechanism> makeInterlaced();
std::shared_ptr<const Mechanism> makeKronecker();
std::shared_ptr<const Mechanism> makeFastAttention();
std::shared_ptr<const Mechanism> makeEmanet();
std::shared_ptr<const Mechanism> makeAutonl();
std::shared_ptr<const Mechanism> makeTensorLowRank();
std::shared_ptr<const Mechanism> makeFractal();
std::shared_ptr<const Mechanism> makeCbam();
std::shared_ptr<const Mechanism> makeGcnet();
}  // namespace attn::mech
