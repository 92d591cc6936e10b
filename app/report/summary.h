// JSON descriptions shared by `attnlab run --json`, `attnlab list --json`, `attnlab info --json` and
// the report, so every output names things the same way.
#pragma once
#include <nlohmann/json.hpp>

#include "attention/mechanism.h"
#include "attention/runner.h"

namespace attnlab::report {

nlohmann::json mechanismJson(const attn::Mechanism& m);
nlohmann::json comparisonJson(const attn::Comparison& c);
/// Text for HTML: < > & " escaped.
std::string htmlEscape(const std::string& s);
/// Versions, CPU, and the Vulkan devices with their drivers.
nlohmann::json machineJson();

}  // namespace attnlab::report
