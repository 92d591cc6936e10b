// PNG: any bytes decode to a picture or a message, never a crash, an exception, a leak or undefined
// behaviour; a picture larger than the cap is refused before its pixels are allocated. The fitted grid
// of what decodes is computed too. Each input is decoded as it is and again with every chunk's CRC made
// right, so mutations reach the header checks, inflating and the scanline filters instead of stopping at
// a CRC mismatch.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "attention/image.h"

namespace {

void decode(std::span<const std::uint8_t> bytes) {
  // 4 Mpixel: the decoded floats (48 MiB) and the inflated scanlines stay well inside -rss_limit_mb.
  const auto picture = attn::decodePng(bytes, attn::Index(1) << 22, "fuzz.png");
  if (picture) (void)attn::fitToGrid(picture.value(), 7, 5);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  decode(std::span<const std::uint8_t>(data, size));
  std::vector<std::uint8_t> fixed(data, data + size);
  for (std::size_t pos = 8; size >= 12 && pos <= size - 12;) {
    const std::uint32_t length = (std::uint32_t(fixed[pos]) << 24) | (std::uint32_t(fixed[pos + 1]) << 16) |
                                 (std::uint32_t(fixed[pos + 2]) << 8) | fixed[pos + 3];
    if (length > size - pos - 12) break;
    const auto crc = std::uint32_t(crc32(crc32(0, nullptr, 0), &fixed[pos + 4], length + 4));
    for (int k = 0; k < 4; ++k) fixed[pos + 8 + length + std::size_t(k)] = std::uint8_t(crc >> (24 - 8 * k));
    pos += std::size_t(length) + 12;
  }
  decode(fixed);
  return 0;
}
