#include "attention/array_files.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/npy.h"

namespace attn::arrays {

namespace {

using Arrays = std::map<std::string, Matrix>;
constexpr std::uint64_t kMaxBytes = std::uint64_t(4) << 30;

Expected<std::vector<std::byte>> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Expected<std::vector<std::byte>>::failure("cannot open '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) return Expected<std::vector<std::byte>>::failure("cannot read '" + path + "'");
  if (std::uint64_t(size) > kMaxBytes)
    return Expected<std::vector<std::byte>>::failure("'" + path + "' is larger than 4 GiB: save one head's Q, K, V only");
  in.seekg(0);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) return Expected<std::vector<std::byte>>::failure("cannot read '" + path + "'");
  return bytes;
}

std::uint64_t le(const std::byte* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | std::uint64_t(std::to_integer<unsigned>(p[i]));
  return v;
}

// ---- .npz: the zip's central directory, each member stored (0) or deflated (8) ----------------------

Expected<Arrays> parseNpz(const std::vector<std::byte>& zip, const std::string& path) {
  auto fail = [&](const std::string& why) { return Expected<Arrays>::failure("'" + path + "' is not a readable .npz: " + why); };
  const std::size_t n = zip.size();
  if (n < 22) return fail("too short for a zip file");
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  std::size_t eocd = std::string::npos;
  for (std::size_t i = n - 22 + 1; i-- > (n > 65557 ? n - 65557 : 0);)
    if (le(&zip[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) return fail("no zip directory (was it written by np.savez?)");
  std::uint64_t entries = le(&zip[eocd + 10], 2), dir_size = le(&zip[eocd + 12], 4), dir_offset = le(&zip[eocd + 16], 4);
  if (dir_offset == 0xFFFFFFFF || entries == 0xFFFF) {  // zip64: its locator sits just before
    if (eocd < 20 || le(&zip[eocd - 20], 4) != 0x07064b50) return fail("a zip64 directory without its locator");
    const std::uint64_t z64 = le(&zip[eocd - 12], 8);
    if (z64 + 56 > n || le(&zip[z64], 4) != 0x06064b50) return fail("a damaged zip64 directory");
    entries = le(&zip[z64 + 32], 8);
    dir_size = le(&zip[z64 + 40], 8);
    dir_offset = le(&zip[z64 + 48], 8);
  }
  if (dir_offset + dir_size > n) return fail("the directory points outside the file (truncated?)");
  Arrays out;
  std::size_t p = std::size_t(dir_offset);
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (p + 46 > n || le(&zip[p], 4) != 0x02014b50) return fail("a damaged directory entry");
    const auto method = le(&zip[p + 10], 2);
    std::uint64_t csize = le(&zip[p + 20], 4), usize = le(&zip[p + 24], 4);
    const std::size_t name_len = le(&zip[p + 28], 2), extra_len = le(&zip[p + 30], 2), comment_len = le(&zip[p + 32], 2);
    std::uint64_t local = le(&zip[p + 42], 4);
    if (p + 46 + name_len + extra_len > n) return fail("a damaged directory entry");
    const std::string name(reinterpret_cast<const char*>(&zip[p + 46]), name_len);
    // zip64 sizes and offset, in this order, for the fields that are 0xFFFFFFFF.
    for (std::size_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const auto id = le(&zip[x], 2), len = le(&zip[x + 2], 2);
      if (id == 1) {
        std::size_t q = x + 4;
        if (usize == 0xFFFFFFFF && q + 8 <= x + 4 + len) usize = le(&zip[q], 8), q += 8;
        if (csize == 0xFFFFFFFF && q + 8 <= x + 4 + len) csize = le(&zip[q], 8), q += 8;
        if (local == 0xFFFFFFFF && q + 8 <= x + 4 + len) local = le(&zip[q], 8);
      }
      x += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;
    if (local + 30 > n || le(&zip[local], 4) != 0x04034b50) return fail("member '" + name + "' has no local header");
    const std::uint64_t data = local + 30 + le(&zip[local + 26], 2) + le(&zip[local + 28], 2);
    if (data + csize > n) return fail("member '" + name + "' is cut off (truncated file?)");
    if (usize > kMaxBytes) return fail("member '" + name + "' is larger than 4 GiB");
    std::vector<std::byte> bytes;
    if (method == 0) {
      bytes.assign(zip.begin() + std::ptrdiff_t(data), zip.begin() + std::ptrdiff_t(data + csize));
    } else if (method == 8) {
      bytes.resize(std::size_t(usize));
      z_stream z{};
      if (inflateInit2(&z, -15) != Z_OK) return fail("zlib failed to start");
      z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(&zip[std::size_t(data)]));
      z.avail_in = uInt(csize);
      z.next_out = reinterpret_cast<Bytef*>(bytes.data());
      z.avail_out = uInt(usize);
      const int rc = inflate(&z, Z_FINISH);
      const auto produced = z.total_out;
      inflateEnd(&z);
      if (rc != Z_STREAM_END || produced != usize) return fail("member '" + name + "' does not inflate (damaged?)");
    } else {
      return fail("member '" + name + "' uses zip method " + std::to_string(method) + " (np.savez writes 0 or 8)");
    }
    std::string stem = name;
    if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npy") == 0) stem.resize(stem.size() - 4);
    auto m = npy::parse(bytes, path + ":" + name);
    if (!m) return Expected<Arrays>::failure(m.error());
    out[stem] = std::move(m).value();
  }
  if (out.empty()) return fail("it holds no arrays");
  return out;
}

// ---- .safetensors: u64 header size, JSON header, raw little-endian data -----------------------------

float halfToFloat(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
  std::uint32_t bits;
  if (exp == 0) {
    if (frac == 0) bits = sign;
    else {  // subnormal: normalise
      int e = -1;
      std::uint32_t f = frac;
      do {
        ++e;
        f <<= 1;
      } while ((f & 0x400) == 0);
      bits = sign | std::uint32_t(127 - 15 - e) << 23 | (f & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000 | frac << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | frac << 13;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

Expected<Arrays> parseSafetensors(const std::vector<std::byte>& file, const std::string& path) {
  auto fail = [&](const std::string& why) { return Expected<Arrays>::failure("'" + path + "' is not a readable .safetensors file: " + why); };
  if (file.size() < 8) return fail("too short");
  const std::uint64_t header = le(file.data(), 8);
  if (header > file.size() - 8 || header > (std::uint64_t(100) << 20)) return fail("its header size is " + std::to_string(header) + " bytes");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(reinterpret_cast<const char*>(file.data() + 8), reinterpret_cast<const char*>(file.data() + 8 + header));
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("its header is not JSON: ") + e.what());
  }
  if (!j.is_object()) return fail("its header is not a JSON object");
  const std::byte* data = file.data() + 8 + header;
  const std::uint64_t data_size = file.size() - 8 - header;
  Arrays out;
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") continue;
    const std::string dtype = t.value("dtype", std::string());
    const auto shape = t.value("shape", std::vector<std::int64_t>());
    const auto offsets = t.value("data_offsets", std::vector<std::uint64_t>());
    const int item = dtype == "F32" ? 4 : dtype == "F64" ? 8 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (item == 0) return fail("tensor '" + name + "' is " + dtype + "; attnlab reads F32, F64, F16 and BF16");
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size) return fail("tensor '" + name + "' has bad data offsets");
    std::vector<std::int64_t> dims;
    for (auto s : shape)
      if (s != 1) dims.push_back(s);  // leading (batch, head) dimensions of size 1 are dropped
    if (dims.size() > 2 || std::any_of(dims.begin(), dims.end(), [](auto s) { return s < 1; }))
      return fail("tensor '" + name + "' has shape " + nlohmann::json(shape).dump() + "; save one head as N×d");
    const Index rows = dims.empty() ? 1 : Index(dims[0]), cols = dims.size() < 2 ? 1 : Index(dims[1]);
    if (std::uint64_t(rows) * std::uint64_t(cols) * std::uint64_t(item) != offsets[1] - offsets[0])
      return fail("tensor '" + name + "' holds " + std::to_string(offsets[1] - offsets[0]) + " bytes, not what its shape says");
    Matrix m(rows, cols);
    const std::byte* p = data + offsets[0];
    for (Index e = 0; e < rows * cols; ++e, p += item) {
      float v;
      if (dtype == "F32") {
        std::uint32_t b = std::uint32_t(le(p, 4));
        std::memcpy(&v, &b, 4);
      } else if (dtype == "F64") {
        std::uint64_t b = le(p, 8);
        double d;
        std::memcpy(&d, &b, 8);
        v = float(d);
      } else if (dtype == "F16") {
        v = halfToFloat(std::uint16_t(le(p, 2)));
      } else {
        const std::uint32_t b = std::uint32_t(le(p, 2)) << 16;
        std::memcpy(&v, &b, 4);
      }
      m(e / cols, e % cols) = v;
    }
    out[name] = std::move(m);
  }
  if (out.empty()) return fail("it holds no tensors");
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

}  // namespace

Expected<Arrays> load(const std::string& path) {
  const std::string ext = lower(std::filesystem::path(path).extension().string());
  if (ext != ".npy" && ext != ".npz" && ext != ".safetensors")
    return Expected<Arrays>::failure("cannot tell the format of '" + path + "': attnlab reads .npy, .npz and .safetensors");
  auto bytes = readFile(path);
  if (!bytes) return Expected<Arrays>::failure(bytes.error());
  if (ext == ".npz") return parseNpz(bytes.value(), path);
  if (ext == ".safetensors") return parseSafetensors(bytes.value(), path);
  auto m = npy::parse(bytes.value(), path);
  if (!m) return Expected<Arrays>::failure(m.error());
  return Arrays{{std::filesystem::path(path).stem().string(), std::move(m).value()}};
}

Expected<Inputs> loadQkv(const std::string& path) {
  auto arrays = load(path);
  if (!arrays) return Expected<Inputs>::failure(arrays.error());
  const Arrays& all = arrays.value();
  auto pick = [&](const char* short_name, const char* long_name) -> const Matrix* {
    for (const auto& [name, m] : all)
      if (lower(name) == short_name || lower(name) == long_name) return &m;
    return nullptr;
  };
  const Matrix *q = pick("q", "query"), *k = pick("k", "key"), *v = pick("v", "value");
  if (!q || !k || !v) {
    std::string names;
    for (const auto& [name, m] : all)
      names += (names.empty() ? "" : ", ") + name + " (" + std::to_string(m.rows()) + "×" + std::to_string(m.cols()) + ")";
    return Expected<Inputs>::failure("'" + path + "' needs arrays named q, k and v (or query, key, value); it has " + names);
  }
  Inputs in;
  in.q = *q;
  in.k = *k;
  in.v = *v;
  try {
    validateInputs(in.q, in.k, in.v);
  } catch (const UserError& e) {
    return Expected<Inputs>::failure("'" + path + "': " + e.what());
  }
  in.spec.n = in.q.rows();
  in.spec.d = in.q.cols();
  in.spec.dv = in.v.cols();
  in.spec.source = "file " + std::filesystem::path(path).filename().string();
  return in;
}

}  // namespace attn::arrays
