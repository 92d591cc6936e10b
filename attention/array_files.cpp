#include "attention/array_files.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/npy.h"

namespace attn::arrays {

namespace {

using Arrays = std::map<std::string, Matrix>;
using Bytes = std::vector<std::byte>;
constexpr std::uint64_t kMaxBytes = std::uint64_t(4) << 30;  // one array, and all the arrays read together
constexpr std::uint64_t kMaxDirectory = std::uint64_t(64) << 20;
constexpr std::size_t kListed = 12;  // names listed in a message before "and N more"

std::uint64_t le(const std::byte* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | std::uint64_t(std::to_integer<unsigned>(p[i]));
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

/// A regular file read in ranges: only the arrays that are needed are read, and every offset and size
/// a file claims is checked against its real size (by subtraction: no sum can wrap).
class File {
 public:
  static Expected<File> open(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec) return Expected<File>::failure("cannot open '" + path + "': " + ec.message());
    if (std::filesystem::is_directory(status))
      return Expected<File>::failure("'" + path + "' is a folder: name the file inside it");
    if (!std::filesystem::is_regular_file(status))
      return Expected<File>::failure("'" + path + "' is not a regular file");
    File f;
    f.path_ = path;
    f.in_ = std::make_shared<std::ifstream>(path, std::ios::binary);
    if (!*f.in_) return Expected<File>::failure("cannot open '" + path + "': " + std::strerror(errno));
    f.in_->seekg(0, std::ios::end);
    const auto size = f.in_->tellg();
    if (size < 0) return Expected<File>::failure("cannot read '" + path + "'");
    f.size_ = std::uint64_t(size);
    return f;
  }
  std::uint64_t size() const { return size_; }
  /// True when [offset, offset + count) lies inside the file.
  bool holds(std::uint64_t offset, std::uint64_t count) const { return offset <= size_ && count <= size_ - offset; }
  /// `count` bytes at `offset`; empty (with `ok` false) when outside the file or unreadable.
  bool read(std::uint64_t offset, std::uint64_t count, Bytes& out) const {
    if (!holds(offset, count) || count > kMaxBytes) return false;
    out.resize(static_cast<std::size_t>(count));
    in_->clear();
    in_->seekg(std::streamoff(offset));
    return count == 0 || bool(in_->read(reinterpret_cast<char*>(out.data()), std::streamsize(count)));
  }

 private:
  std::string path_;
  std::shared_ptr<std::ifstream> in_;
  std::uint64_t size_ = 0;
};

/// One array of a file: its name, what the file says of its shape (for messages; may be empty), and how
/// to read it (only called for the arrays that are wanted).
struct Entry {
  std::string name;
  std::string shape;
  std::function<Expected<Matrix>()> read;
};

Expected<Matrix> guardedRead(const std::function<Expected<Matrix>()>& read, const std::string& what) {
  try {
    return read();
  } catch (const UserError& e) {
    return Expected<Matrix>::failure(what + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return Expected<Matrix>::failure(what + ": not enough memory to read it");
  }
}

// ---- .npz: the zip's central directory, each member stored (0) or deflated (8) ----------------------

Expected<std::vector<Entry>> npzEntries(const File& file, const std::string& path) {
  using E = Expected<std::vector<Entry>>;
  const auto why = [path](const std::string& what) { return "'" + path + "' is not a readable .npz: " + what; };
  auto fail = [&](const std::string& what) { return E::failure(why(what)); };
  const std::uint64_t n = file.size();
  if (n < 22) return fail("too short for a zip file");
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  const std::uint64_t tail_at = n > 65557 ? n - 65557 : 0;
  Bytes tail;
  if (!file.read(tail_at, n - tail_at, tail)) return fail("cannot read its end");
  std::size_t eocd = std::string::npos;
  for (std::size_t i = tail.size() - 22 + 1; i-- > 0;)
    if (le(&tail[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) return fail("no zip directory (was it written by np.savez?)");
  std::uint64_t entries = le(&tail[eocd + 10], 2), dir_size = le(&tail[eocd + 12], 4),
                dir_offset = le(&tail[eocd + 16], 4);
  if (dir_offset == 0xFFFFFFFF || entries == 0xFFFF) {  // zip64: its locator sits just before
    const std::uint64_t eocd_at = tail_at + eocd;
    Bytes locator, z64;
    if (eocd_at < 20 || !file.read(eocd_at - 20, 20, locator) || le(&locator[0], 4) != 0x07064b50)
      return fail("a zip64 directory without its locator");
    const std::uint64_t z64_at = le(&locator[8], 8);
    if (!file.read(z64_at, 56, z64) || le(&z64[0], 4) != 0x06064b50) return fail("a damaged zip64 directory");
    entries = le(&z64[32], 8);
    dir_size = le(&z64[40], 8);
    dir_offset = le(&z64[48], 8);
  }
  if (!file.holds(dir_offset, dir_size)) return fail("the directory points outside the file (truncated?)");
  if (dir_size > kMaxDirectory) return fail("its directory is over 64 MiB");
  if (entries > dir_size / 46) return fail("its directory lists more members than it has room for");
  Bytes dir;
  if (!file.read(dir_offset, dir_size, dir)) return fail("cannot read its directory");
  std::vector<Entry> out;
  std::set<std::uint64_t> locals;
  std::size_t p = 0;
  const std::size_t end = dir.size();
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (end - p < 46 || le(&dir[p], 4) != 0x02014b50) return fail("a damaged directory entry");
    const auto method = le(&dir[p + 10], 2);
    std::uint64_t csize = le(&dir[p + 20], 4), usize = le(&dir[p + 24], 4);
    const std::size_t name_len = le(&dir[p + 28], 2), extra_len = le(&dir[p + 30], 2),
                      comment_len = le(&dir[p + 32], 2);
    std::uint64_t local = le(&dir[p + 42], 4);
    if (end - p - 46 < name_len + extra_len + comment_len) return fail("a damaged directory entry");
    const std::string name(reinterpret_cast<const char*>(&dir[p + 46]), name_len);
    // zip64 sizes and offset, in this order, for the fields that are 0xFFFFFFFF.
    const std::size_t extra_end = p + 46 + name_len + extra_len;
    for (std::size_t x = p + 46 + name_len; extra_end - x >= 4;) {
      const std::size_t id = le(&dir[x], 2), len = le(&dir[x + 2], 2);
      if (len > extra_end - x - 4) return fail("member '" + name + "' has a damaged extra field");
      if (id == 1) {
        std::size_t q = x + 4;
        const std::size_t q_end = q + len;
        if (usize == 0xFFFFFFFF && q_end - q >= 8) usize = le(&dir[q], 8), q += 8;
        if (csize == 0xFFFFFFFF && q_end - q >= 8) csize = le(&dir[q], 8), q += 8;
        if (local == 0xFFFFFFFF && q_end - q >= 8) local = le(&dir[q], 8);
      }
      x += 4 + len;
    }
    p = extra_end + comment_len;
    if (!locals.insert(local).second) return fail("two members share the data of member '" + name + "'");
    if (method != 0 && method != 8)
      return fail("member '" + name + "' uses zip method " + std::to_string(method) + " (np.savez writes 0 or 8)");
    std::string stem = name;
    if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npy") == 0) stem.resize(stem.size() - 4);
    const std::string what = path + ":" + name;
    out.push_back({stem, "", [&file, why, name, what, method, csize, usize, local]() -> Expected<Matrix> {
                     const auto broken = [&](const std::string& w) { return Expected<Matrix>::failure(why(w)); };
                     Bytes header;
                     if (!file.read(local, 30, header) || le(&header[0], 4) != 0x04034b50)
                       return broken("member '" + name + "' has no local header");
                     const std::uint64_t data = local + 30 + le(&header[26], 2) + le(&header[28], 2);  // ≤ n + 2^17
                     if (!file.holds(data, csize)) return broken("member '" + name + "' is cut off (truncated file?)");
                     if (csize >= kMaxBytes || usize >= kMaxBytes)
                       return broken("member '" + name + "' is 4 GiB or more");
                     Bytes raw, bytes;
                     if (!file.read(data, csize, raw)) return broken("cannot read member '" + name + "'");
                     if (method == 0) return npy::parse(raw, what);
                     // Deflate expands at most ~1032:1: a size beyond that is a lie, not a reason to allocate.
                     if (usize > csize * 1032 + 1024) return broken("member '" + name + "' claims an impossible size");
                     bytes.resize(static_cast<std::size_t>(usize));
                     z_stream z{};
                     if (inflateInit2(&z, -15) != Z_OK) return broken("zlib failed to start");
                     z.next_in = reinterpret_cast<Bytef*>(raw.data());
                     z.avail_in = uInt(csize);
                     z.next_out = reinterpret_cast<Bytef*>(bytes.data());
                     z.avail_out = uInt(usize);
                     const int rc = inflate(&z, Z_FINISH);
                     const auto produced = z.total_out;
                     inflateEnd(&z);
                     if (rc != Z_STREAM_END || produced != usize)
                       return broken("member '" + name + "' does not inflate (damaged?)");
                     return npy::parse(bytes, what);
                   }});
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

Expected<std::vector<Entry>> safetensorsEntries(const File& file, const std::string& path) {
  using E = Expected<std::vector<Entry>>;
  const auto why = [path](const std::string& what) {
    return "'" + path + "' is not a readable .safetensors file: " + what;
  };
  auto fail = [&](const std::string& what) { return E::failure(why(what)); };
  Bytes size_bytes;
  if (!file.read(0, 8, size_bytes)) return fail("too short");
  const std::uint64_t header = le(size_bytes.data(), 8);
  if (!file.holds(8, header) || header > (std::uint64_t(100) << 20))
    return fail("its header size is " + std::to_string(header) + " bytes");
  Bytes text;
  if (!file.read(8, header, text)) return fail("cannot read its header");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(reinterpret_cast<const char*>(text.data()),
                              reinterpret_cast<const char*>(text.data() + text.size()));
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("its header is not JSON: ") + e.what());
  }
  if (!j.is_object()) return fail("its header is not a JSON object");
  const std::uint64_t data_at = 8 + header, data_size = file.size() - data_at;
  std::vector<Entry> out;
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") continue;
    // Every field is checked for its JSON type: a number where a list belongs is a message, not a throw.
    const auto bad = [&](const std::string& w) { return fail("tensor '" + name + "' " + w); };
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array())
      return bad("lacks its dtype, shape or data_offsets");
    const std::string dtype = t["dtype"].get<std::string>();
    std::vector<std::int64_t> shape;
    for (const auto& s : t["shape"]) {
      if (!s.is_number_integer() || s.get<std::int64_t>() < 0) return bad("has a shape that is not a list of sizes");
      shape.push_back(s.get<std::int64_t>());
    }
    std::vector<std::uint64_t> offsets;
    for (const auto& o : t["data_offsets"]) {
      if (!o.is_number_unsigned()) return bad("has bad data offsets");
      offsets.push_back(o.get<std::uint64_t>());
    }
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size) return bad("has bad data offsets");
    std::vector<std::int64_t> dims;
    for (auto s : shape)
      if (s != 1) dims.push_back(s);  // leading (batch, head) dimensions of size 1 are dropped
    std::string shape_text;
    for (auto s : dims) shape_text += (shape_text.empty() ? "" : "×") + std::to_string(s);
    if (dims.empty())
      shape_text = "1×1";
    else if (dims.size() == 1)
      shape_text += "×1";
    out.push_back(
        {name, shape_text + ", " + dtype,
         [&file, why, name, dtype, shape, dims, offsets, data_at]() -> Expected<Matrix> {
           const auto unusable = [&](const std::string& w) {
             return Expected<Matrix>::failure(why("tensor '" + name + "' " + w));
           };
           const int item = dtype == "F32" ? 4 : dtype == "F64" ? 8 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
           if (item == 0) return unusable("is " + dtype + "; attnlab reads F32, F64, F16 and BF16");
           if (dims.size() > 2 || std::any_of(dims.begin(), dims.end(), [](auto s) { return s < 1; }))
             return unusable("has shape " + nlohmann::json(shape).dump() + "; save one head as N×d");
           const Index rows = dims.empty() ? 1 : Index(dims[0]), cols = dims.size() < 2 ? 1 : Index(dims[1]);
           const Index bytes =
               checkedMul(checkedMul(rows, cols, "its shape", Index(kMaxBytes)), item, "its size", Index(kMaxBytes));
           if (std::uint64_t(bytes) != offsets[1] - offsets[0])
             return unusable("holds " + std::to_string(offsets[1] - offsets[0]) + " bytes, not what its shape says");
           Bytes raw;
           if (!file.read(data_at + offsets[0], std::uint64_t(bytes), raw)) return unusable("cannot be read");
           Matrix m(rows, cols);
           const std::byte* p = raw.data();
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
           return m;
         }});
  }
  if (out.empty()) return fail("it holds no tensors");
  return out;
}

/// The arrays of an .npz or .safetensors file, not yet read.
Expected<std::vector<Entry>> entries(const File& file, const std::string& path, const std::string& ext) {
  if (ext == ".npz") return npzEntries(file, path);
  return safetensorsEntries(file, path);
}

std::string extensionOf(const std::string& path) { return lower(std::filesystem::path(path).extension().string()); }

/// "a (40×8), b, … and 3 more": the names (with their shapes where known) for messages.
std::string listNames(const std::vector<Entry>& all) {
  std::string names;
  for (std::size_t i = 0; i < all.size() && i < kListed; ++i)
    names += (names.empty() ? "" : ", ") + all[i].name + (all[i].shape.empty() ? "" : " (" + all[i].shape + ")");
  if (all.size() > kListed) names += " and " + std::to_string(all.size() - kListed) + " more";
  return names;
}

const char* const kShortNames[3] = {"q", "k", "v"};
const char* const kLongNames[3] = {"query", "key", "value"};

/// Which of q, k, v (0, 1, 2) a name is, or −1.
int roleOf(const std::string& name) {
  const std::string l = lower(name);
  for (int r = 0; r < 3; ++r)
    if (l == kShortNames[r] || l == kLongNames[r]) return r;
  return -1;
}

Expected<Inputs> finish(Matrix q, Matrix k, Matrix v, const std::string& path) {
  Inputs in;
  in.q = std::move(q);
  in.k = std::move(k);
  in.v = std::move(v);
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

// ---- .npy: one array, so Q, K, V stacked as (3, N, d), or q.npy, k.npy, v.npy side by side -----------

Expected<Inputs> loadQkvNpy(const std::string& path) {
  auto bytes = npy::readFile(path, kMaxBytes);
  if (!bytes) return Expected<Inputs>::failure(bytes.error());
  const int role = roleOf(std::filesystem::path(path).stem().string());
  if (role < 0) {
    auto stacked = npy::parseStacked(bytes.value(), path);
    if (!stacked) {
      const std::string why = stacked.error();
      return Expected<Inputs>::failure(
          why +
          ". A .npy holds one array: save Q, K, V stacked (np.save(\"qkv.npy\", np.stack([q, k, v]))), or as "
          "q.npy, k.npy and v.npy in one folder, or all three in one .npz (np.savez(\"head.npz\", q=q, k=k, v=v))");
    }
    auto [q, k, v] = std::move(stacked).value();
    return finish(std::move(q), std::move(k), std::move(v), path);
  }
  // q.npy (or key.npy, …): its two partners of the same naming in the same folder.
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  const bool long_names = lower(std::filesystem::path(path).stem().string()).size() > 1;
  std::array<Matrix, 3> m;
  for (int r = 0; r < 3; ++r) {
    std::string found;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(folder.empty() ? "." : folder, ec))
      if (lower(f.path().extension().string()) == ".npy" &&
          lower(f.path().stem().string()) == (long_names ? kLongNames[r] : kShortNames[r]))
        found = f.path().string();
    if (r == role) found = path;
    if (found.empty())
      return Expected<Inputs>::failure(
          "'" + path + "' is one of three arrays: " + (long_names ? kLongNames[r] : kShortNames[r]) +
          ".npy is missing beside it (save q.npy, k.npy and v.npy in one folder, or all three in one .npz)");
    auto a = r == role ? npy::parse(bytes.value(), path) : npy::load(found);
    if (!a) return Expected<Inputs>::failure(a.error());
    m[size_t(r)] = std::move(a).value();
  }
  return finish(std::move(m[0]), std::move(m[1]), std::move(m[2]), path);
}

}  // namespace

Expected<Arrays> load(const std::string& path) {
  const std::string ext = extensionOf(path);
  if (ext != ".npy" && ext != ".npz" && ext != ".safetensors")
    return Expected<Arrays>::failure("cannot tell the format of '" + path +
                                     "': attnlab reads .npy, .npz and .safetensors");
  if (ext == ".npy") {
    auto m = npy::load(path);
    if (!m) return Expected<Arrays>::failure(m.error());
    return Arrays{{std::filesystem::path(path).stem().string(), std::move(m).value()}};
  }
  auto file = File::open(path);
  if (!file) return Expected<Arrays>::failure(file.error());
  auto all = entries(file.value(), path, ext);
  if (!all) return Expected<Arrays>::failure(all.error());
  Arrays out;
  std::uint64_t total = 0;
  for (const Entry& e : all.value()) {
    auto m = guardedRead(e.read, path + ":" + e.name);
    if (!m) return Expected<Arrays>::failure(m.error());
    total += std::uint64_t(m.value().size()) * sizeof(float);
    if (total > kMaxBytes)
      return Expected<Arrays>::failure("'" + path + "' holds more than 4 GiB of arrays: save one head's Q, K, V only");
    out[e.name] = std::move(m).value();
  }
  return out;
}

Expected<Inputs> loadQkv(const std::string& path) {
  const std::string ext = extensionOf(path);
  if (ext != ".npy" && ext != ".npz" && ext != ".safetensors")
    return Expected<Inputs>::failure("cannot tell the format of '" + path +
                                     "': attnlab reads .npy, .npz and .safetensors");
  if (ext == ".npy") return loadQkvNpy(path);
  auto file = File::open(path);
  if (!file) return Expected<Inputs>::failure(file.error());
  auto listed = entries(file.value(), path, ext);
  if (!listed) return Expected<Inputs>::failure(listed.error());
  const std::vector<Entry>& all = listed.value();
  // Only q, k and v are read: a checkpoint's other tensors (masks, other layers, integer ids) stay unread.
  std::array<const Entry*, 3> pick{};
  for (const Entry& e : all)
    if (const int r = roleOf(e.name); r >= 0 && !pick[size_t(r)]) pick[size_t(r)] = &e;
  if (!pick[0] || !pick[1] || !pick[2]) {
    // Name the shapes of a small npz's members too (its directory does not hold them).
    std::vector<Entry> shown(all.begin(), all.begin() + std::ptrdiff_t(std::min(all.size(), kListed)));
    for (Entry& e : shown)
      if (e.shape.empty())
        if (auto m = guardedRead(e.read, path + ":" + e.name); m)
          e.shape = std::to_string(m.value().rows()) + "×" + std::to_string(m.value().cols());
    if (all.size() > kListed) shown.insert(shown.end(), all.begin() + std::ptrdiff_t(kListed), all.end());
    return Expected<Inputs>::failure("'" + path + "' needs arrays named q, k and v (or query, key, value); it has " +
                                     listNames(shown));
  }
  std::array<Matrix, 3> m;
  for (int r = 0; r < 3; ++r) {
    auto a = guardedRead(pick[size_t(r)]->read, path + ":" + pick[size_t(r)]->name);
    if (!a) return Expected<Inputs>::failure(a.error());
    m[size_t(r)] = std::move(a).value();
  }
  return finish(std::move(m[0]), std::move(m[1]), std::move(m[2]), path);
}

}  // namespace attn::arrays
