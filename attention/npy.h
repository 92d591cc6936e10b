// NumPy .npy read/write for float32/float64 2-D (and 1-D) arrays. Parses from memory; the header is
// capped at 1 MiB; shape products are checked; every failure is a message a person can act on.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "attention/types.h"

namespace attn::npy {

constexpr std::size_t kMaxHeaderBytes = 1 << 20;

/// What a .npy header declares: the shape (leading dimensions of size 1 dropped down to three), the item
/// size (4 or 8), where the data starts and its size in bytes (overflow-checked, < 2^40).
struct Declared {
  std::vector<Index> shape;
  int item = 4;
  std::size_t data_at = 0;
  std::uint64_t data_bytes = 0;
};
/// The header of a .npy from the first bytes of the file (at least 12 + the header's length, or the whole
/// file when shorter): what a reader checks against its limits before it reads or inflates the data.
Expected<Declared> parseHeader(std::span<const std::byte> prefix, const std::string& what = "array");
/// Parses .npy bytes into a float matrix (1-D arrays become one column; float64 and little/big
/// endian are converted; Fortran order is transposed). `what` names the source in messages.
Expected<Matrix> parse(std::span<const std::byte> bytes, const std::string& what = "array");
/// Q, K and V stacked as one (3, N, d) array (np.save("qkv.npy", np.stack([q, k, v])); leading
/// dimensions of size 1 dropped): the three N×d matrices.
Expected<std::array<Matrix, 3>> parseStacked(std::span<const std::byte> bytes, const std::string& what = "array");
/// A regular file's bytes, at most `limit` of them (a folder, a device or a larger file is a failure
/// that says so).
Expected<std::vector<std::byte>> readFile(const std::string& path, std::uint64_t limit = std::uint64_t(4) << 30);
/// Reads a file (UserError-free: the message says what is wrong and with which file).
Expected<Matrix> load(const std::string& path);
/// Serialises as little-endian float32, C order, version 1.0.
std::vector<std::byte> serialize(const Matrix& m);
/// Writes atomically (temporary file + rename); UserError on failure, leaving any previous file intact.
void save(const std::string& path, const Matrix& m);

}  // namespace attn::npy

namespace attn {
/// Writes `bytes` to `path` through a temporary file in the target's folder and a rename, so no reader
/// ever sees half a file and a failure leaves the previous file whole. A symbolic link is followed and
/// its target replaced (the link stays; a dangling link's target is created); the replacement keeps
/// the permission bits of the file it replaces. A device or pipe (/dev/null, /dev/stdout, a FIFO) is
/// written through, never replaced; a folder or a socket is refused. UserError with the path and the
/// system's reason (a full disk says so) on failure.
void writeFileAtomically(const std::string& path, std::span<const std::byte> bytes);
void writeFileAtomically(const std::string& path, const std::string& text);
}  // namespace attn
