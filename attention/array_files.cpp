#include "attention/array_files.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
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
constexpr std::size_t kListed = 12;
constexpr std::uint64_t kSaturated = std::uint64_t(1) << 40;  // an element count that is surely too large  // names listed in a message before "and N more"

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
  /// Bytes already in memory (they must outlive the File), read as a file named `path` would be.
  static File memory(std::span<const std::byte> bytes, const std::string& path) {
    File f;
    f.path_ = path;
    f.memory_ = bytes;
    f.size_ = bytes.size();
    return f;
  }
  std::uint64_t size() const { return size_; }
  /// True when [offset, offset + count) lies inside the file.
  bool holds(std::uint64_t offset, std::uint64_t count) const { return offset <= size_ && count <= size_ - offset; }
  /// `count` bytes at `offset`; empty (with `ok` false) when outside the file or unreadable.
  bool read(std::uint64_t offset, std::uint64_t count, Bytes& out) const {
    if (!holds(offset, count) || count > kMaxBytes) return false;
    out.resize(static_cast<std::size_t>(count));
    if (!in_) {
      if (count > 0) std::memcpy(out.data(), memory_.data() + offset, static_cast<std::size_t>(count));
      return true;
    }
    in_->clear();
    in_->seekg(std::streamoff(offset));
    return count == 0 || bool(in_->read(reinterpret_cast<char*>(out.data()), std::streamsize(count)));
  }

 private:
  std::string path_;
  std::shared_ptr<std::ifstream> in_;  // null: the bytes are in memory_
  std::span<const std::byte> memory_;
  std::uint64_t size_ = 0;
};

/// What an array of a file takes in memory, known from its headers before any data is read or inflated:
/// the floats it becomes and the bytes held only while it is read (its data as stored or inflated).
struct Footprint {
  std::uint64_t elements = 0;
  std::uint64_t transient = 0;
  std::string shape;  ///< "40×8" as its header declares it
};

/// One array of a file: its name, what the file says of its shape (for messages; may be empty), what it
/// declares (checked against the limits, nothing inflated) and how to read it (only called for the arrays
/// that are wanted, after their footprints were checked together against the budget).
struct Entry {
  std::string name;
  std::string shape;
  std::function<Expected<Footprint>()> declare;
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

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g GiB", double(bytes) / double(std::uint64_t(1) << 30));
  return buf;
}

/// An array's declared shape (leading dimensions of size 1 dropped; a stacked (3, N, d) counts as three
/// N×d matrices) held to the limits of generated inputs: the number of its elements, or why it is refused.
Expected<std::uint64_t> withinLimits(const std::vector<Index>& shape, const Limits& limits) {
  using E = Expected<std::uint64_t>;
  std::string text;
  for (auto s : shape) text += (text.empty() ? "" : "×") + std::to_string(s);
  const Index tokens = shape.empty() ? 1 : shape.size() == 1 ? shape[0] : shape[shape.size() - 2];
  const Index head = shape.size() < 2 ? 1 : shape.back();
  if (tokens > limits.max_tokens)
    return E::failure("is " + text + ": " + std::to_string(tokens) + " tokens, more than the " +
                      std::to_string(limits.max_tokens) + " attnlab takes (the limit of generated inputs too); save fewer tokens");
  if (head > limits.max_dim)
    return E::failure("is " + text + ": a head size of " + std::to_string(head) + ", more than the " +
                      std::to_string(limits.max_dim) + " attnlab takes; save one head (N×d)");
  if (tokens * head > kMaxInputElements)  // both within their limits: no overflow
    return E::failure("is " + text + ": " + std::to_string(tokens * head) + " elements in one matrix, more than the " +
                      std::to_string(kMaxInputElements) + " attnlab takes; save fewer tokens");
  std::uint64_t elements = 1;  // saturating at 2^40: the budget refuses that
  for (auto s : shape)
    elements = s == 0 ? 0 : elements > kSaturated / std::uint64_t(s) ? kSaturated : elements * std::uint64_t(s);
  return elements;
}

/// The wanted arrays' footprints, checked one by one against the limits and together against the memory
/// budget (all their floats, and the largest buffer one of them needs while it is read), before any is read.
Expected<bool> checkFootprints(const std::vector<const Entry*>& wanted, const std::string& path, const Limits& limits) {
  std::uint64_t floats = 0, transient = 0;
  std::string names;
  for (const Entry* e : wanted) {
    auto f = e->declare();
    if (!f) return Expected<bool>::failure(f.error());
    floats += f.value().elements * sizeof(float);
    transient = std::max(transient, f.value().transient);
    names += (names.empty() ? "" : ", ") + e->name;
  }
  if (floats > limits.max_bytes || transient > limits.max_bytes - floats)  // (each term < 2^43: no sum wraps)
    return Expected<bool>::failure("'" + path + "': " + (wanted.size() == 1 ? "array " : "arrays ") + names + " need " +
                                   std::to_string(floats + transient) + " bytes (" + gib(floats + transient) +
                                   ") of memory to be read (" + gib(floats) +
                                   " as float32, the rest while read), more than the memory budget of " +
                                   std::to_string(limits.max_bytes) + " bytes (" + gib(limits.max_bytes) +
                                   ") for imported arrays; save fewer tokens or one head only");
  return true;
}

/// Bytes of a member, inflated from raw deflate data one bounded piece at a time (never beyond what the
/// caller asks for, whatever the stream holds).
class Inflater {
 public:
  explicit Inflater(const Bytes& raw) : started_(inflateInit2(&z_, -15) == Z_OK) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(raw.data()));
    z_.avail_in = uInt(raw.size());
  }
  ~Inflater() {
    if (started_) inflateEnd(&z_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  bool started() const { return started_; }
  /// Fills out[0, count): Z_OK when filled (more may follow), Z_STREAM_END at the stream's end, an error
  /// (Z_BUF_ERROR: the input ran out) otherwise. `produced` says how many bytes were written.
  int fill(std::byte* out, std::size_t count, std::size_t& produced) {
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = uInt(count);
    int rc = Z_OK;
    while (z_.avail_out > 0 && rc == Z_OK) rc = inflate(&z_, Z_NO_FLUSH);
    produced = count - z_.avail_out;
    return rc;
  }

 private:
  z_stream z_{};
  bool started_ = false;
};

// ---- .npz: the zip's central directory, each member stored (0) or deflated (8) ----------------------

struct Member {
  std::string name, what;  ///< its name in the zip; "file.npz:name.npy" for messages
  std::uint64_t method, csize, usize, local;
};

std::uint64_t elementsOf(const npy::Declared& d) {
  std::uint64_t e = 1;
  for (auto s : d.shape) e *= std::uint64_t(s);  // < 2^40 (npy::parseHeader checked)
  return e;
}

/// A member of an .npz: its .npy header first (inflating at most the header's 1 MiB), checked against the
/// sizes the zip declares and against the limits, then (unless `header_only`, which receives the header)
/// its data, inflated into exactly the declared size: a stream that holds more or less is refused.
Expected<Matrix> readMember(const File& file, const Member& m, const Limits& limits,
                            const std::function<std::string(const std::string&)>& why, npy::Declared* header_only) {
  const auto broken = [&](const std::string& w) { return Expected<Matrix>::failure(why("member '" + m.name + "' " + w)); };
  Bytes local;
  if (!file.read(m.local, 30, local) || le(&local[0], 4) != 0x04034b50) return broken("has no local header");
  const std::uint64_t local_csize = le(&local[18], 4), local_usize = le(&local[22], 4);
  // The local header may leave its sizes 0 (a data descriptor follows) or 0xFFFFFFFF (zip64); others must agree.
  if ((local_usize != 0 && local_usize != 0xFFFFFFFF && local_usize != m.usize) ||
      (local_csize != 0 && local_csize != 0xFFFFFFFF && local_csize != m.csize))
    return broken("has sizes in its local header (" + std::to_string(local_usize) + " bytes) that differ from the zip directory's (" +
                  std::to_string(m.usize) + " bytes): the file is damaged or crafted");
  const std::uint64_t data = m.local + 30 + le(&local[26], 2) + le(&local[28], 2);  // ≤ n + 2^17
  if (!file.holds(data, m.csize)) return broken("is cut off (truncated file?)");
  if (m.csize >= kMaxBytes || m.usize >= kMaxBytes) return broken("is 4 GiB or more");
  if (m.method == 0 && m.csize != m.usize) return broken("is stored with two different sizes");
  // Deflate expands at most ~1032:1: a size beyond that is a lie, not a reason to allocate.
  if (m.method == 8 && m.usize > m.csize * 1032 + 1024) return broken("claims an impossible size");
  const std::size_t prefix_size = std::size_t(std::min<std::uint64_t>(m.usize, 12 + npy::kMaxHeaderBytes));
  // Inflating the header needs little of the stream (stored blocks at worst: about as much as it yields).
  const std::uint64_t wanted = !header_only   ? m.csize
                               : m.method == 8 ? std::min<std::uint64_t>(m.csize, 2 * prefix_size + 1024)
                                               : prefix_size;
  Bytes raw;
  if (!file.read(data, wanted, raw)) return broken("cannot be read");
  Inflater inflater(raw);
  if (m.method == 8 && !inflater.started()) return broken("cannot be inflated: zlib failed to start");
  Bytes prefix;
  std::size_t produced = 0;
  int rc = Z_STREAM_END;
  if (m.method == 0) {
    prefix.assign(raw.begin(), raw.begin() + std::ptrdiff_t(prefix_size));
    produced = prefix_size;
  } else {
    prefix.resize(prefix_size);
    rc = inflater.fill(prefix.data(), prefix_size, produced);
    if (rc != Z_OK && rc != Z_STREAM_END) return broken("does not inflate (damaged?)");
    if (produced < prefix_size)
      return broken("inflates to " + std::to_string(produced) + " bytes, fewer than the " + std::to_string(m.usize) +
                    " the zip directory declares (damaged?)");
  }
  auto declared = npy::parseHeader(prefix, m.what);
  if (!declared) return Expected<Matrix>::failure(declared.error());
  const npy::Declared& d = declared.value();
  if (d.data_bytes != m.usize - d.data_at)  // data_at ≤ prefix_size ≤ usize
    return broken("declares " + std::to_string(m.usize) + " bytes in the zip directory, but its .npy header (shape " +
                  nlohmann::json(d.shape).dump() + ") needs " + std::to_string(d.data_at + d.data_bytes) +
                  ": the file is damaged or crafted");
  if (auto within = withinLimits(d.shape, limits); !within)
    return Expected<Matrix>::failure("'" + m.what + "' " + within.error());
  if (header_only) {
    *header_only = d;
    return Matrix();
  }
  if (m.method == 0) return npy::parse(raw, m.what);
  Bytes bytes(static_cast<std::size_t>(m.usize));
  std::copy(prefix.begin(), prefix.end(), bytes.begin());
  if (bytes.size() > prefix.size()) {
    const std::size_t rest = bytes.size() - prefix.size();
    if (rc != Z_OK)
      return broken("inflates to " + std::to_string(prefix.size()) + " bytes, fewer than the " + std::to_string(m.usize) +
                    " the zip directory declares (damaged?)");
    rc = inflater.fill(bytes.data() + prefix.size(), rest, produced);
    if (rc != Z_OK && rc != Z_STREAM_END) return broken("does not inflate (damaged?)");
    if (produced < rest)
      return broken("inflates to " + std::to_string(prefix.size() + produced) + " bytes, fewer than the " +
                    std::to_string(m.usize) + " the zip directory declares (damaged?)");
  }
  if (rc == Z_OK) {  // filled: the stream must end here
    std::byte extra{};
    rc = inflater.fill(&extra, 1, produced);
    if (produced > 0)
      return broken("inflates to more than the " + std::to_string(m.usize) +
                    " bytes the zip directory declares: the file is damaged or crafted");
    if (rc != Z_STREAM_END) return broken("does not inflate (damaged?)");
  }
  return npy::parse(bytes, m.what);
}

Expected<std::vector<Entry>> npzEntries(const File& file, const std::string& path, const Limits& limits) {
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
    const Member m{name, path + ":" + name, method, csize, usize, local};
    out.push_back({stem, "",
                   [&file, why, m, limits]() -> Expected<Footprint> {
                     npy::Declared declared;
                     auto header = readMember(file, m, limits, why, &declared);
                     if (!header) return Expected<Footprint>::failure(header.error());
                     std::string shape;
                     for (auto s : declared.shape) shape += (shape.empty() ? "" : "×") + std::to_string(s);
                     return Footprint{elementsOf(declared), m.method == 8 ? m.usize : 0, shape};
                   },
                   [&file, why, m, limits]() { return readMember(file, m, limits, why, nullptr); }});
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

/// Bytes per element of every dtype the format defines (0: not one of them).
int itemSize(const std::string& dtype) {
  static const std::map<std::string, int> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8}, {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

/// Where a tensor's bytes lie in the data, for the overlap check.
struct Span {
  std::uint64_t begin, end;
  std::string name;
};

Expected<std::vector<Entry>> safetensorsEntries(const File& file, const std::string& path, const Limits& limits) {
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
  // A key given twice would silently keep one of its values (which one differs between readers): refused.
  std::vector<std::set<std::string>> objects;  // the keys of each object being parsed
  std::string duplicate;
  const auto seeKeys = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) objects.emplace_back();
    else if (event == Event::object_end && !objects.empty()) objects.pop_back();
    else if (event == Event::key && !objects.empty() && duplicate.empty() &&
             !objects.back().insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    j = nlohmann::json::parse(reinterpret_cast<const char*>(text.data()),
                              reinterpret_cast<const char*>(text.data() + text.size()), seeKeys);
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("its header is not JSON: ") + e.what());
  }
  if (!duplicate.empty())
    return fail("its header gives the key " +
                nlohmann::json(duplicate).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                " more than once (which of its values counts is ambiguous): the file is damaged or crafted");
  if (!j.is_object()) return fail("its header is not a JSON object");
  const std::uint64_t data_at = 8 + header, data_size = file.size() - data_at;
  std::vector<Entry> out;
  std::vector<Span> spans;
  for (const auto& member : j.items()) {
    const std::string name = member.key();  // (a copy: clang 14 cannot capture a structured binding)
    const nlohmann::json& t = member.value();
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
    if (offsets.size() != 2) return bad("has data_offsets that are not [begin, end]");
    if (offsets[0] > offsets[1])
      return bad("has data_offsets [" + std::to_string(offsets[0]) + ", " + std::to_string(offsets[1]) +
                 "] that end before they begin");
    if (offsets[1] > data_size)
      return bad("has data_offsets [" + std::to_string(offsets[0]) + ", " + std::to_string(offsets[1]) +
                 "] past the end of the data (" + std::to_string(data_size) + " bytes; truncated file?)");
    // Its size must be what its dtype and shape say, for every tensor (an unread one too: the file is damaged).
    if (const int element = itemSize(dtype); element > 0) {
      std::uint64_t bytes = std::uint64_t(element);
      for (auto s : shape)
        bytes = s == 0 ? 0 : bytes > kSaturated / std::uint64_t(s) ? kSaturated : bytes * std::uint64_t(s);
      if (bytes != offsets[1] - offsets[0])
        return bad("holds " + std::to_string(offsets[1] - offsets[0]) + " bytes, but its shape " +
                   nlohmann::json(shape).dump() + " of " + dtype + " needs " +
                   (bytes == kSaturated ? "far more" : std::to_string(bytes)));
    }
    if (offsets[1] > offsets[0]) spans.push_back({offsets[0], offsets[1], name});
    std::vector<std::int64_t> dims;
    for (auto s : shape)
      if (s != 1) dims.push_back(s);  // leading (batch, head) dimensions of size 1 are dropped
    std::string shape_text;
    for (auto s : dims) shape_text += (shape_text.empty() ? "" : "×") + std::to_string(s);
    if (dims.empty())
      shape_text = "1×1";
    else if (dims.size() == 1)
      shape_text += "×1";
    const auto declared = [why, name, dims, offsets, limits]() -> Expected<Footprint> {
      auto elements = withinLimits(dims, limits);
      if (!elements) return Expected<Footprint>::failure(why("tensor '" + name + "' " + elements.error()));
      return Footprint{elements.value(), offsets[1] - offsets[0], {}};
    };
    out.push_back(
        {name, shape_text + ", " + dtype, declared,
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
  // Two tensors reading the same bytes (K read from Q's data) is a known bug class of the format: refused.
  std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      return fail("tensors '" + spans[i - 1].name + "' and '" + spans[i].name + "' share bytes " +
                  std::to_string(spans[i].begin) + "–" + std::to_string(std::min(spans[i].end, spans[i - 1].end)) +
                  " of the data (their data_offsets overlap): the file is damaged or crafted");
  if (out.empty()) return fail("it holds no tensors");
  return out;
}

/// The arrays of an .npz or .safetensors file, not yet read.
Expected<std::vector<Entry>> entries(const File& file, const std::string& path, const std::string& ext,
                                     const Limits& limits) {
  if (ext == ".npz") return npzEntries(file, path, limits);
  return safetensorsEntries(file, path, limits);
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

/// A .npy file as an Entry: its header read alone (at most 1 MiB) for its footprint, then the whole file.
Entry npyEntry(const std::string& path, const Limits& limits) {
  const auto declare = [path, limits]() -> Expected<Footprint> {
    using E = Expected<Footprint>;
    auto file = File::open(path);
    if (!file) return E::failure(file.error());
    Bytes prefix;
    if (!file.value().read(0, std::min<std::uint64_t>(file.value().size(), 12 + npy::kMaxHeaderBytes), prefix))
      return E::failure("cannot read '" + path + "'");
    auto d = npy::parseHeader(prefix, path);
    if (!d) return E::failure(d.error());
    auto elements = withinLimits(d.value().shape, limits);
    if (!elements) return E::failure("'" + path + "' " + elements.error());
    return Footprint{elements.value(), file.value().size(), {}};
  };
  return {std::filesystem::path(path).stem().string(), "", declare, [path]() { return npy::load(path); }};
}

Expected<Inputs> loadQkvNpy(const std::string& path, const Limits& limits) {
  const int role = roleOf(std::filesystem::path(path).stem().string());
  if (role < 0) {
    const Entry stacked_file = npyEntry(path, limits);
    if (auto fits = checkFootprints({&stacked_file}, path, limits); !fits) return Expected<Inputs>::failure(fits.error());
    auto bytes = npy::readFile(path, kMaxBytes);
    if (!bytes) return Expected<Inputs>::failure(bytes.error());
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
  std::vector<Entry> files;
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
    files.push_back(npyEntry(found, limits));
  }
  if (auto fits = checkFootprints({&files[0], &files[1], &files[2]}, path, limits); !fits)
    return Expected<Inputs>::failure(fits.error());
  std::array<Matrix, 3> m;
  for (int r = 0; r < 3; ++r) {
    auto a = files[size_t(r)].read();
    if (!a) return Expected<Inputs>::failure(a.error());
    m[size_t(r)] = std::move(a).value();
  }
  return finish(std::move(m[0]), std::move(m[1]), std::move(m[2]), path);
}

Expected<Arrays> readAll(const std::vector<Entry>& all, const std::string& path, const Limits& limits) {
  std::vector<const Entry*> wanted;
  for (const Entry& e : all) wanted.push_back(&e);
  if (auto fits = checkFootprints(wanted, path, limits); !fits) return Expected<Arrays>::failure(fits.error());
  Arrays out;
  for (const Entry& e : all) {
    auto m = guardedRead(e.read, path + ":" + e.name);
    if (!m) return Expected<Arrays>::failure(m.error());
    out[e.name] = std::move(m).value();
  }
  return out;
}

Expected<Inputs> pickQkv(const std::vector<Entry>& all, const std::string& path, const Limits& limits) {
  // Only q, k and v are read: a checkpoint's other tensors (masks, other layers, integer ids) stay unread.
  std::array<const Entry*, 3> pick{};
  for (const Entry& e : all)
    if (const int r = roleOf(e.name); r >= 0 && !pick[size_t(r)]) pick[size_t(r)] = &e;
  if (!pick[0] || !pick[1] || !pick[2]) {
    // Name the shapes of a small npz's members too (from their .npy headers: nothing is inflated beyond them).
    std::vector<Entry> shown(all.begin(), all.begin() + std::ptrdiff_t(std::min(all.size(), kListed)));
    for (Entry& e : shown)
      if (e.shape.empty())
        if (auto f = e.declare(); f) e.shape = f.value().shape;
    if (all.size() > kListed) shown.insert(shown.end(), all.begin() + std::ptrdiff_t(kListed), all.end());
    return Expected<Inputs>::failure("'" + path + "' needs arrays named q, k and v (or query, key, value); it has " +
                                     listNames(shown));
  }
  if (auto fits = checkFootprints({pick[0], pick[1], pick[2]}, path, limits); !fits)
    return Expected<Inputs>::failure(fits.error());
  std::array<Matrix, 3> m;
  for (int r = 0; r < 3; ++r) {
    auto a = guardedRead(pick[size_t(r)]->read, path + ":" + pick[size_t(r)]->name);
    if (!a) return Expected<Inputs>::failure(a.error());
    m[size_t(r)] = std::move(a).value();
  }
  return finish(std::move(m[0]), std::move(m[1]), std::move(m[2]), path);
}

/// A .npy already in memory held to the limits and the budget by its header, before it is converted.
Expected<bool> npyInMemoryFits(std::span<const std::byte> bytes, const std::string& name, const Limits& limits) {
  const Entry entry{std::filesystem::path(name).stem().string(), "",
                    [&]() -> Expected<Footprint> {
                      auto d = npy::parseHeader(bytes, name);
                      if (!d) return Expected<Footprint>::failure(d.error());
                      auto elements = withinLimits(d.value().shape, limits);
                      if (!elements) return Expected<Footprint>::failure("'" + name + "' " + elements.error());
                      return Footprint{elements.value(), 0, {}};
                    },
                    {}};
  return checkFootprints({&entry}, name, limits);
}

/// The extension of a file attnlab reads, or a failure saying which it reads.
Expected<std::string> formatOf(const std::string& path) {
  const std::string ext = extensionOf(path);
  if (ext != ".npy" && ext != ".npz" && ext != ".safetensors")
    return Expected<std::string>::failure("cannot tell the format of '" + path +
                                          "': attnlab reads .npy, .npz and .safetensors");
  return ext;
}

}  // namespace

std::uint64_t defaultMemoryBudget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const std::uint64_t half = pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) / 2 : kMaxBytes;
  return std::min(half, kMaxBytes);
}

Expected<Arrays> load(const std::string& path, const Limits& limits) {
  auto ext = formatOf(path);
  if (!ext) return Expected<Arrays>::failure(ext.error());
  if (ext.value() == ".npy") return readAll({npyEntry(path, limits)}, path, limits);
  auto file = File::open(path);
  if (!file) return Expected<Arrays>::failure(file.error());
  auto all = entries(file.value(), path, ext.value(), limits);
  if (!all) return Expected<Arrays>::failure(all.error());
  return readAll(all.value(), path, limits);
}

Expected<Inputs> loadQkv(const std::string& path, const Limits& limits) {
  auto ext = formatOf(path);
  if (!ext) return Expected<Inputs>::failure(ext.error());
  if (ext.value() == ".npy") return loadQkvNpy(path, limits);
  auto file = File::open(path);
  if (!file) return Expected<Inputs>::failure(file.error());
  auto all = entries(file.value(), path, ext.value(), limits);
  if (!all) return Expected<Inputs>::failure(all.error());
  return pickQkv(all.value(), path, limits);
}

Expected<Arrays> parse(std::span<const std::byte> bytes, const std::string& name, const Limits& limits) {
  auto ext = formatOf(name);
  if (!ext) return Expected<Arrays>::failure(ext.error());
  if (ext.value() == ".npy") {
    if (auto fits = npyInMemoryFits(bytes, name, limits); !fits) return Expected<Arrays>::failure(fits.error());
    auto m = npy::parse(bytes, name);
    if (!m) return Expected<Arrays>::failure(m.error());
    return Arrays{{std::filesystem::path(name).stem().string(), std::move(m).value()}};
  }
  const File file = File::memory(bytes, name);
  auto all = entries(file, name, ext.value(), limits);
  if (!all) return Expected<Arrays>::failure(all.error());
  return readAll(all.value(), name, limits);
}

Expected<Inputs> parseQkv(std::span<const std::byte> bytes, const std::string& name, const Limits& limits) {
  auto ext = formatOf(name);
  if (!ext) return Expected<Inputs>::failure(ext.error());
  if (ext.value() == ".npy") {
    if (auto fits = npyInMemoryFits(bytes, name, limits); !fits) return Expected<Inputs>::failure(fits.error());
    auto stacked = npy::parseStacked(bytes, name);
    if (!stacked) return Expected<Inputs>::failure(stacked.error());
    auto [q, k, v] = std::move(stacked).value();
    return finish(std::move(q), std::move(k), std::move(v), name);
  }
  const File file = File::memory(bytes, name);
  auto all = entries(file, name, ext.value(), limits);
  if (!all) return Expected<Inputs>::failure(all.error());
  return pickQkv(all.value(), name, limits);
}

}  // namespace attn::arrays
