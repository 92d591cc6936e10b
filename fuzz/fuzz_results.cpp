// A sweep's results.json (attnlab report): anything that is not an attnlab sweep result is a UserError
// naming the key; any other exception escapes and libFuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "attention/sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    (void)attn::sweepFromJson(j);
  } catch (const attn::UserError&) {
  }
  return 0;
}
