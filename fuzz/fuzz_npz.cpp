// .npz from memory: every array and Q, K, V, under a 256 MiB budget (a crafted size must be refused from
// the headers, before anything is allocated or inflated).
#include <cstddef>
#include <cstdint>
#include <span>

#include "attention/array_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  attn::arrays::Limits limits;
  limits.max_bytes = std::uint64_t(256) << 20;
  (void)attn::arrays::parse(bytes, "fuzz.npz", limits);
  (void)attn::arrays::parseQkv(bytes, "fuzz.npz", limits);
  return 0;
}
