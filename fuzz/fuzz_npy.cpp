// .npy: the header alone, one array, and Q, K, V stacked; every input is a value or a message, never a
// crash, an exception, a leak or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <span>

#include "attention/array_files.h"
#include "attention/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  (void)attn::npy::parseHeader(bytes, "fuzz.npy");
  (void)attn::npy::parse(bytes, "fuzz.npy");
  (void)attn::npy::parseStacked(bytes, "fuzz.npy");
  attn::arrays::Limits limits;
  limits.max_bytes = std::uint64_t(256) << 20;
  (void)attn::arrays::parseQkv(bytes, "fuzz.npy", limits);
  return 0;
}
