// .npy format: magic "\x93NUMPY", version (1.0: u16 header length; 2.0/3.0: u32), an ASCII Python
// dict {'descr': '<f4', 'fortran_order': False, 'shape': (N, d), } padded to 64 bytes, then data.
#include "attention/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace attn {

namespace {

std::string parentOf(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string systemReason(int err) {
  std::string reason = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) reason += " (the disk or your quota is full: free some space or write elsewhere)";
  if (err == EFBIG) reason += " (the file size limit was reached: see ulimit -f, or write elsewhere)";
  return reason;
}

// The file a write to `path` lands in: `path` itself, or what its symbolic links lead to (a relative
// link is relative to the folder holding it; a dangling link leads to the path it names).
std::string followLinks(const std::string& path) {
  std::string cur = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(cur.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
    std::vector<char> buf(std::size_t(st.st_size > 0 ? st.st_size : 255) + 1);
    const ssize_t len = ::readlink(cur.c_str(), buf.data(), buf.size());
    if (len < 0) throw UserError("cannot write '" + path + "': cannot read the link '" + cur + "': " + std::strerror(errno));
    if (std::size_t(len) >= buf.size()) continue;  // it changed under us: read it again
    const std::string target(buf.data(), std::size_t(len));
    cur = target.starts_with('/') ? target : (std::filesystem::path(parentOf(cur)) / target).string();
  }
  throw UserError("cannot write '" + path + "': too many levels of symbolic links (a loop?)");
}

// 0, or the errno of the write that failed (a write that makes no progress counts as a full disk).
int writeAll(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : ENOSPC;
    done += std::size_t(n);
  }
  return 0;
}

// Devices, pipes and the like get the bytes as they are: renaming a file over them would replace them.
void writeThrough(const std::string& path, const std::string& target, const struct stat& st,
                  std::span<const std::byte> bytes) {
  if (S_ISDIR(st.st_mode))
    throw UserError("cannot write '" + path + "': it is a folder; give a file name inside it");
  if (S_ISSOCK(st.st_mode))
    throw UserError("cannot write '" + path + "': it is a socket; give a file name, a device or a pipe");
  const int fd = ::open(target.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw UserError("cannot write '" + path + "': " + systemReason(errno));
  int err = writeAll(fd, bytes);
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  if (err) throw UserError("cannot write '" + path + "': " + systemReason(err));
}

std::atomic<unsigned> g_temp_counter{0};

}  // namespace

void writeFileAtomically(const std::string& path, std::span<const std::byte> bytes) {
  if (path.empty()) throw UserError("cannot write a file with an empty name: give a path");
  const std::string target = followLinks(path);
  struct stat st {};
  const bool exists = ::lstat(target.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) return writeThrough(path, target, st, bytes);

  // A new file beside the target (same folder, so the rename stays on one file system), then a rename.
  const std::string dir = parentOf(target);
  const std::string tmp = (std::filesystem::path(dir) / ("." + std::filesystem::path(target).filename().string() + ".tmp-" +
                                                         std::to_string(::getpid()) + "-" + std::to_string(g_temp_counter++)))
                              .string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    struct stat dst {};
    if (::stat(dir.c_str(), &dst) != 0)
      throw UserError("cannot write '" + path + "': the folder '" + dir + "' does not exist (" + std::strerror(errno) + ")");
    if (!S_ISDIR(dst.st_mode)) throw UserError("cannot write '" + path + "': '" + dir + "' is not a folder");
    throw UserError("cannot write '" + path + "': cannot create a file in the folder '" + dir + "' (" + systemReason(err) +
                    "); attnlab writes a new file beside the old one and renames it into place, so the folder must be writable");
  }
  if (exists) {  // the replacement keeps the permission bits (and, for root, the owner) of what it replaces;
                 // best effort: a file system without permissions (FAT) still gets the bytes
    [[maybe_unused]] const int chmod_rc = ::fchmod(fd, st.st_mode & 07777);
    [[maybe_unused]] const int chown_rc = ::geteuid() == 0 ? ::fchown(fd, st.st_uid, st.st_gid) : 0;
  }
  int err = writeAll(fd, bytes);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    throw UserError("cannot write '" + path + "': " + systemReason(err) + "; nothing was changed");
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int rerr = errno;
    ::unlink(tmp.c_str());
    throw UserError("cannot write '" + path + "': " + systemReason(rerr) + "; nothing was changed");
  }
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {  // the rename itself, durable
    ::fsync(dfd);
    ::close(dfd);
  }
}

void writeFileAtomically(const std::string& path, const std::string& text) {
  writeFileAtomically(path, std::as_bytes(std::span(text.data(), text.size())));
}

namespace npy {

namespace {

struct Header {
  char endian = '<';
  char kind = 'f';
  int item = 4;
  bool fortran = false;
  std::vector<Index> shape;
};

/// Bytes from a file as a message shows them: printable ASCII as is, anything else (a NUL, a control
/// character, bytes of another encoding) as \xNN, so nothing truncates or garbles the message.
std::string shown(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += char(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void skipSpace(const std::string& s, size_t& p) {
  while (p < s.size() && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n')) ++p;
}

std::optional<std::string> quoted(const std::string& s, size_t& p) {
  skipSpace(s, p);
  if (p >= s.size() || (s[p] != '\'' && s[p] != '"')) return std::nullopt;
  const char q = s[p++];
  const size_t end = s.find(q, p);
  if (end == std::string::npos) return std::nullopt;
  std::string out = s.substr(p, end - p);
  p = end + 1;
  return out;
}

Expected<Header> parseDict(const std::string& text, const std::string& what) {
  auto fail = [&](const std::string& why) {
    return Expected<Header>::failure(what + ": malformed .npy header (" + why + ")");
  };
  Header h;
  bool have_descr = false, have_order = false, have_shape = false;
  size_t p = 0;
  skipSpace(text, p);
  if (p >= text.size() || text[p] != '{') return fail("it does not start with '{'");
  ++p;
  while (true) {
    skipSpace(text, p);
    if (p < text.size() && text[p] == '}') break;
    auto key = quoted(text, p);
    if (!key) return fail("expected a quoted key");
    skipSpace(text, p);
    if (p >= text.size() || text[p] != ':') return fail("expected ':' after '" + shown(*key) + "'");
    ++p;
    skipSpace(text, p);
    if (*key == "descr") {
      auto d = quoted(text, p);
      if (!d) return fail("descr must be a quoted string");
      if (d->size() < 3) return fail("descr '" + shown(*d) + "' is not a dtype such as '<f4'");
      h.endian = (*d)[0];
      h.kind = (*d)[1];
      const std::string size = d->substr(2);
      h.item = size.size() == 1 && std::isdigit(static_cast<unsigned char>(size[0])) ? size[0] - '0' : 0;
      if (h.kind != 'f' || (h.item != 4 && h.item != 8) || (h.endian != '<' && h.endian != '>' && h.endian != '='))
        return Expected<Header>::failure(what + ": the array has dtype '" + shown(*d) +
                                         "'; attnlab reads float32 or float64 arrays — convert with "
                                         "arr.astype(numpy.float32)");
      have_descr = true;
    } else if (*key == "fortran_order") {
      if (text.compare(p, 4, "True") == 0) h.fortran = true, p += 4;
      else if (text.compare(p, 5, "False") == 0) h.fortran = false, p += 5;
      else return fail("fortran_order must be True or False");
      have_order = true;
    } else if (*key == "shape") {
      if (have_shape) return fail("shape is given twice");
      if (p >= text.size() || text[p] != '(') return fail("shape must be a tuple");
      ++p;
      while (true) {
        skipSpace(text, p);
        if (p < text.size() && text[p] == ')') {
          ++p;
          break;
        }
        size_t digits = p;
        while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
        if (digits == p || digits - p > 18) return fail("shape entries must be non-negative integers");
        h.shape.push_back(std::stoll(text.substr(p, digits - p)));
        p = digits;
        skipSpace(text, p);
        if (p < text.size() && text[p] == ',') ++p;
        if (h.shape.size() > 32) return fail("too many dimensions");
      }
      have_shape = true;
    } else {
      return fail("unknown key '" + shown(*key) + "'");
    }
    skipSpace(text, p);
    if (p < text.size() && text[p] == ',') ++p;
    if (p >= text.size()) return fail("the dict is not closed");
  }
  if (!have_descr || !have_order || !have_shape) return fail("descr, fortran_order and shape are all required");
  return h;
}

template <class T>
T readScalar(const std::byte* p, bool swap) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, p, sizeof(T));
  if (swap) {
    if constexpr (sizeof(T) == 4) bits = __builtin_bswap32(static_cast<std::uint32_t>(bits));
    else bits = __builtin_bswap64(bits);
  }
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace

namespace {

/// The header and where the data starts, the data's size checked against the shape.
struct Layout {
  Header header;
  std::vector<Index> shape;  ///< leading dimensions of size 1 dropped, down to `keep` dimensions
  size_t data_at = 0;
};

/// The header (from a prefix of the file that holds it) and the data's size it declares, checked for
/// overflow but not yet against the bytes that follow.
Expected<Layout> parseHeaderLayout(std::span<const std::byte> bytes, const std::string& what, std::size_t keep,
                                   Index& data_bytes) {
  using E = Expected<Layout>;
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0)
    return E::failure(what + ": not a .npy file (the magic bytes \\x93NUMPY are missing)");
  const auto major = static_cast<unsigned>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = size_t(bytes[8]) | (size_t(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return E::failure(what + ": truncated .npy header");
    header_len = size_t(bytes[8]) | (size_t(bytes[9]) << 8) | (size_t(bytes[10]) << 16) | (size_t(bytes[11]) << 24);
    offset = 12;
  } else {
    return E::failure(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > kMaxHeaderBytes)
    return E::failure(what + ": the .npy header claims " + std::to_string(header_len) +
                      " bytes, more than the 1 MiB limit; the file is damaged");
  if (header_len > bytes.size() - offset) return E::failure(what + ": truncated .npy header");
  std::string text(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  auto header = parseDict(text, what);
  if (!header) return E::failure(header.error());
  Layout layout{header.value(), header.value().shape, offset + header_len};
  // Leading dimensions of size 1 are dropped ((1, N, d) from a model dump is N×d).
  while (layout.shape.size() > keep && layout.shape.front() == 1) layout.shape.erase(layout.shape.begin());
  Index count = 1;
  try {
    for (Index dim : layout.shape) count = checkedMul(count, dim, "shape", Index(1) << 40);
    count = checkedMul(count, layout.header.item, "data size", Index(1) << 40);
  } catch (const UserError& e) {
    return E::failure(what + ": " + e.what());
  }
  data_bytes = count;
  return layout;
}

Expected<Layout> parseLayout(std::span<const std::byte> bytes, const std::string& what, std::size_t keep) {
  using E = Expected<Layout>;
  Index count = 0;
  auto layout = parseHeaderLayout(bytes, what, keep, count);
  if (!layout) return layout;
  const size_t available = bytes.size() - layout.value().data_at;
  if (size_t(count) != available) {
    std::string dims;
    for (auto d : layout.value().shape) dims += (dims.empty() ? "" : "×") + std::to_string(d);
    return E::failure(what + ": the header promises " + std::to_string(count) + " bytes of data for a " + dims +
                      " array, but the file holds " + std::to_string(available) +
                      (size_t(count) > available ? " (truncated)" : " (extra bytes)"));
  }
  return layout;
}

std::string shapeText(const std::vector<Index>& shape) {
  std::string dims;
  for (auto s : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(s);
  return "(" + dims + ")";
}

}  // namespace

Expected<Declared> parseHeader(std::span<const std::byte> prefix, const std::string& what) {
  Index data_bytes = 0;
  auto layout = parseHeaderLayout(prefix, what, 3, data_bytes);
  if (!layout) return Expected<Declared>::failure(layout.error());
  return Declared{layout.value().shape, layout.value().header.item, layout.value().data_at, std::uint64_t(data_bytes)};
}

Expected<Matrix> parse(std::span<const std::byte> bytes, const std::string& what) {
  using E = Expected<Matrix>;
  auto layout = parseLayout(bytes, what, 2);
  if (!layout) return E::failure(layout.error());
  const Layout& l = layout.value();
  const Header& h = l.header;
  if (l.shape.empty() || l.shape.size() > 2)
    return E::failure(what + ": expected a 2-D array (tokens × features), got shape " + shapeText(h.shape));
  const Index rows = l.shape[0], cols = l.shape.size() == 2 ? l.shape[1] : 1;
  const bool little = std::endian::native == std::endian::little;
  const bool swap = (h.endian == '<' && !little) || (h.endian == '>' && little);
  Matrix m(rows, cols);
  const std::byte* data = bytes.data() + l.data_at;
  for (Index e = 0; e < rows * cols; ++e) {
    const Index r = h.fortran ? e % rows : e / cols;
    const Index c = h.fortran ? e / rows : e % cols;
    const std::byte* p = data + e * h.item;
    m(r, c) = h.item == 4 ? readScalar<float>(p, swap) : static_cast<float>(readScalar<double>(p, swap));
  }
  return m;
}

Expected<std::array<Matrix, 3>> parseStacked(std::span<const std::byte> bytes, const std::string& what) {
  using E = Expected<std::array<Matrix, 3>>;
  auto layout = parseLayout(bytes, what, 3);
  if (!layout) return E::failure(layout.error());
  const Layout& l = layout.value();
  const Header& h = l.header;
  if (l.shape.size() != 3 || l.shape[0] != 3)
    return E::failure(what + ": expected Q, K, V stacked as one (3, N, d) array, got shape " + shapeText(h.shape));
  const Index rows = l.shape[1], cols = l.shape[2];
  const bool little = std::endian::native == std::endian::little;
  const bool swap = (h.endian == '<' && !little) || (h.endian == '>' && little);
  std::array<Matrix, 3> out{Matrix(rows, cols), Matrix(rows, cols), Matrix(rows, cols)};
  const std::byte* data = bytes.data() + l.data_at;
  for (Index e = 0; e < 3 * rows * cols; ++e) {
    // C order: (s, r, c) with c fastest; Fortran order: s fastest, then r, then c.
    const Index s = h.fortran ? e % 3 : e / (rows * cols);
    const Index r = h.fortran ? (e / 3) % rows : (e / cols) % rows;
    const Index c = h.fortran ? e / (3 * rows) : e % cols;
    const std::byte* p = data + e * h.item;
    out[size_t(s)](r, c) = h.item == 4 ? readScalar<float>(p, swap) : static_cast<float>(readScalar<double>(p, swap));
  }
  return out;
}

Expected<std::vector<std::byte>> readFile(const std::string& path, std::uint64_t limit) {
  using E = Expected<std::vector<std::byte>>;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) return E::failure("cannot open '" + path + "': " + ec.message());
  if (std::filesystem::is_directory(status)) return E::failure("'" + path + "' is a folder: name the file inside it");
  if (!std::filesystem::is_regular_file(status)) return E::failure("'" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return E::failure("cannot open '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) return E::failure("cannot read '" + path + "'");
  if (std::uint64_t(size) > limit)
    return E::failure("'" + path + "' is larger than " + std::to_string(limit >> 20) +
                      " MiB: save one head's Q, K, V only");
  in.seekg(0);
  std::vector<std::byte> bytes(static_cast<size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) return E::failure("cannot read '" + path + "'");
  return bytes;
}

Expected<Matrix> load(const std::string& path) {
  auto bytes = readFile(path);
  if (!bytes) return Expected<Matrix>::failure(bytes.error());
  return parse(bytes.value(), path);
}

std::vector<std::byte> serialize(const Matrix& m) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (" << m.rows() << ", " << m.cols() << "), }";
  std::string header = dict.str();
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<std::byte> out;
  out.reserve(10 + header.size() + size_t(m.size()) * 4);
  const unsigned char prefix[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  for (auto c : prefix) out.push_back(std::byte(c));
  out.push_back(std::byte(header.size() & 0xff));
  out.push_back(std::byte((header.size() >> 8) & 0xff));
  for (char c : header) out.push_back(std::byte(c));
  for (Index r = 0; r < m.rows(); ++r)
    for (Index c = 0; c < m.cols(); ++c) {
      std::uint32_t bits = 0;
      const float v = m(r, c);
      std::memcpy(&bits, &v, 4);
      if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
      for (int b = 0; b < 4; ++b) out.push_back(std::byte((bits >> (8 * b)) & 0xff));
    }
  return out;
}

void save(const std::string& path, const Matrix& m) { writeFileAtomically(path, serialize(m)); }

}  // namespace npy
}  // namespace attn
