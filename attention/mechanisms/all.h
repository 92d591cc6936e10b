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
}  // namespace attn::mech
