// Q, K, V from .npz (stored and deflated, as np.savez / np.savez_compressed write them) and
// .safetensors (F32, F64, F16, BF16): the values arrive exactly, names are matched, and every damaged or
// unsuitable file is a message that names the file and what to change.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/array_files.h"
#include "attention/npy.h"
#include "attention/random.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

void put(std::vector<std::byte>& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xFF));
}

// The central directory and its end record after the members.
std::vector<std::byte> endZip(std::vector<std::byte> out, const std::vector<std::byte>& dir, std::size_t count) {
  const std::uint64_t dir_offset = out.size();
  out.insert(out.end(), dir.begin(), dir.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 2), put(out, 0, 2), put(out, count, 2), put(out, count, 2);
  put(out, dir.size(), 4), put(out, dir_offset, 4), put(out, 0, 2);
  return out;
}

// A zip as Python's zipfile writes it (no data descriptors), members stored or raw-deflated.
std::vector<std::byte> zipOf(const std::vector<std::pair<std::string, std::vector<std::byte>>>& members, bool deflated) {
  std::vector<std::byte> out, dir;
  for (const auto& [name, data] : members) {
    std::vector<std::byte> body = data;
    if (deflated) {
      body.assign(compressBound(uLong(data.size())) + 64, std::byte(0));
      z_stream z{};
      deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(data.data()));
      z.avail_in = uInt(data.size());
      z.next_out = reinterpret_cast<Bytef*>(body.data());
      z.avail_out = uInt(body.size());
      EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
      body.resize(z.total_out);
      deflateEnd(&z);
    }
    const auto crc = crc32(0, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size()));
    const std::uint64_t offset = out.size();
    put(out, 0x04034b50, 4);
    put(out, 20, 2), put(out, 0, 2), put(out, deflated ? 8 : 0, 2), put(out, 0, 4);
    put(out, crc, 4), put(out, body.size(), 4), put(out, data.size(), 4);
    put(out, name.size(), 2), put(out, 0, 2);
    for (char c : name) out.push_back(std::byte(c));
    out.insert(out.end(), body.begin(), body.end());
    put(dir, 0x02014b50, 4);
    put(dir, 20, 2), put(dir, 20, 2), put(dir, 0, 2), put(dir, deflated ? 8 : 0, 2), put(dir, 0, 4);
    put(dir, crc, 4), put(dir, body.size(), 4), put(dir, data.size(), 4);
    put(dir, name.size(), 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 4);
    put(dir, offset, 4);
    for (char c : name) dir.push_back(std::byte(c));
  }
  return endZip(out, dir, members.size());
}

std::vector<std::byte> safetensorsOf(const std::vector<std::tuple<std::string, std::string, std::vector<std::int64_t>, std::vector<std::byte>>>& tensors) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::vector<std::byte> data;
  for (const auto& [name, dtype, shape, bytes] : tensors) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data.insert(data.end(), bytes.begin(), bytes.end());
  }
  const std::string h = header.dump();
  std::vector<std::byte> out;
  put(out, h.size(), 8);
  for (char c : h) out.push_back(std::byte(c));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <class T, class F>
std::vector<std::byte> encode(const Matrix& m, F convert) {
  std::vector<std::byte> out;
  for (Index r = 0; r < m.rows(); ++r)
    for (Index c = 0; c < m.cols(); ++c) {
      const T v = convert(m(r, c));
      const auto* p = reinterpret_cast<const std::byte*>(&v);
      out.insert(out.end(), p, p + sizeof(T));
    }
  return out;
}

// IEEE half of a float that is exactly representable (the test's values are).
std::uint16_t toHalf(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  const std::uint32_t sign = (b >> 16) & 0x8000;
  const int exp = int((b >> 23) & 0xFF) - 127 + 15;
  if ((b & 0x7FFFFFFF) == 0) return std::uint16_t(sign);
  return std::uint16_t(sign | std::uint32_t(exp) << 10 | ((b >> 13) & 0x3FF));
}

// A zip of members already compressed (method 8) whose directory declares `usize` each, as a crafted file can.
std::vector<std::byte> zipDeclared(const std::vector<std::tuple<std::string, std::vector<std::byte>, std::uint64_t>>& members) {
  std::vector<std::byte> out, dir;
  for (const auto& [name, body, usize] : members) {
    const std::uint64_t offset = out.size();
    put(out, 0x04034b50, 4);
    put(out, 20, 2), put(out, 0, 2), put(out, 8, 2), put(out, 0, 4);
    put(out, 0, 4), put(out, body.size(), 4), put(out, usize, 4);
    put(out, name.size(), 2), put(out, 0, 2);
    for (char c : name) out.push_back(std::byte(c));
    out.insert(out.end(), body.begin(), body.end());
    put(dir, 0x02014b50, 4);
    put(dir, 20, 2), put(dir, 20, 2), put(dir, 0, 2), put(dir, 8, 2), put(dir, 0, 4);
    put(dir, 0, 4), put(dir, body.size(), 4), put(dir, usize, 4);
    put(dir, name.size(), 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 4);
    put(dir, offset, 4);
    for (char c : name) dir.push_back(std::byte(c));
  }
  return endZip(out, dir, members.size());
}

// Raw deflate of `head` followed by `zeros` zero bytes, built without compressing them all: one 1 MiB block
// of zeros after a full flush refers to nothing before it, so it is repeated (about 1 KB per MiB).
std::vector<std::byte> deflateZeros(const std::vector<std::byte>& head, std::uint64_t zeros) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<std::byte> out;
  const auto run = [&](const std::byte* in, std::size_t n, int flush) {
    std::vector<std::byte> chunk(deflateBound(&z, uLong(n)) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in));
    z.avail_in = uInt(n);
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = uInt(chunk.size());
    deflate(&z, flush);
    chunk.resize(chunk.size() - z.avail_out);
    return chunk;
  };
  const auto first = run(head.data(), head.size(), Z_FULL_FLUSH);
  out.insert(out.end(), first.begin(), first.end());
  const std::vector<std::byte> mib(std::size_t(1) << 20);
  const auto block = run(mib.data(), mib.size(), Z_FULL_FLUSH);
  for (std::uint64_t i = 0; i < zeros >> 20; ++i) out.insert(out.end(), block.begin(), block.end());
  const auto rest = run(mib.data(), std::size_t(zeros & (mib.size() - 1)), Z_FINISH);
  out.insert(out.end(), rest.begin(), rest.end());
  deflateEnd(&z);
  return out;
}

// The .npy header of a float32 rows×cols array (its data left out).
std::vector<std::byte> npyHeader(Index rows, Index cols) {
  auto bytes = npy::serialize(Matrix(1, 1));
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                           std::to_string(cols) + "), }";
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<std::byte> out(bytes.begin(), bytes.begin() + 8);
  put(out, header.size(), 2);
  for (char c : header) out.push_back(std::byte(c));
  return out;
}

class ArrayFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnlab-arrays-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    Rng rng(9);
    q_ = rng.gaussian(40, 8);
    k_ = rng.gaussian(40, 8);
    v_ = rng.gaussian(40, 4);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<std::byte>& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return p;
  }
  fs::path dir_;
  Matrix q_, k_, v_;
};

TEST_F(ArrayFiles, NpzStoredAndDeflatedGiveTheExactArrays) {
  for (bool deflate : {false, true}) {
    const auto zip = zipOf({{"q.npy", npy::serialize(q_)}, {"k.npy", npy::serialize(k_)}, {"v.npy", npy::serialize(v_)},
                            {"extra.npy", npy::serialize(Matrix::Ones(2, 2))}},
                           deflate);
    const auto in = arrays::loadQkv(write(deflate ? "c.npz" : "s.npz", zip));
    ASSERT_TRUE(in) << in.error();
    EXPECT_TRUE(in.value().q == q_);
    EXPECT_TRUE(in.value().k == k_);
    EXPECT_TRUE(in.value().v == v_);
    EXPECT_EQ(in.value().spec.n, 40);
    EXPECT_EQ(in.value().spec.dv, 4);
    EXPECT_NE(in.value().spec.source.find(deflate ? "c.npz" : "s.npz"), std::string::npos);
  }
}

TEST_F(ArrayFiles, SafetensorsInEveryFloatTypeAndWithLeadingOnes) {
  // Values on a 1/8 grid in [-4, 4]: exact in F16 and BF16 too.
  auto grid = [](Matrix m) { return Matrix((m.array() * 8).round().cwiseMax(-32).cwiseMin(32) / 8); };
  const Matrix q = grid(q_), k = grid(k_), v = grid(v_);
  const auto f32 = [](float x) { return x; };
  const auto f64 = [](float x) { return double(x); };
  const auto f16 = [](float x) { return toHalf(x); };
  const auto bf16 = [](float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, 4);
    return std::uint16_t(b >> 16);
  };
  const std::vector<std::pair<std::string, std::function<std::vector<std::byte>(const Matrix&)>>> types = {
      {"F32", [&](const Matrix& m) { return encode<float>(m, f32); }},
      {"F64", [&](const Matrix& m) { return encode<double>(m, f64); }},
      {"F16", [&](const Matrix& m) { return encode<std::uint16_t>(m, f16); }},
      {"BF16", [&](const Matrix& m) { return encode<std::uint16_t>(m, bf16); }}};
  for (const auto& [dtype, enc] : types) {
    const auto file = safetensorsOf({{"query", dtype, {1, 1, 40, 8}, enc(q)}, {"key", dtype, {40, 8}, enc(k)},
                                     {"Value", dtype, {1, 40, 4}, enc(v)}});
    const auto in = arrays::loadQkv(write("t-" + dtype + ".safetensors", file));
    ASSERT_TRUE(in) << dtype << ": " << in.error();
    EXPECT_TRUE(in.value().q == q) << dtype;
    EXPECT_TRUE(in.value().k == k) << dtype;
    EXPECT_TRUE(in.value().v == v) << dtype;
  }
}

TEST_F(ArrayFiles, DamagedOrUnsuitableFilesSayWhatIsWrong) {
  auto expectError = [](const Expected<Inputs>& r, const std::string& words) {
    ASSERT_FALSE(r) << "accepted";
    EXPECT_NE(r.error().find(words), std::string::npos) << r.error();
  };
  const auto zip = zipOf({{"q.npy", npy::serialize(q_)}, {"k.npy", npy::serialize(k_)}}, false);
  expectError(arrays::loadQkv(write("two.npz", zip)), "needs arrays named q, k and v");
  expectError(arrays::loadQkv(write("two.npz", zip)), "k (40×8)");
  auto cut = zipOf({{"q.npy", npy::serialize(q_)}, {"k.npy", npy::serialize(k_)}, {"v.npy", npy::serialize(v_)}}, true);
  cut.resize(cut.size() / 2);
  expectError(arrays::loadQkv(write("cut.npz", cut)), "not a readable .npz");
  expectError(arrays::loadQkv(write("x.npz", std::vector<std::byte>(100, std::byte(7)))), "no zip directory");
  // A good k and v beside a q that cannot be used: the message is about q.
  const auto f32 = [](float x) { return x; };
  auto withKv = [&](std::tuple<std::string, std::string, std::vector<std::int64_t>, std::vector<std::byte>> q) {
    return safetensorsOf(
        {q, {"k", "F32", {40, 8}, encode<float>(k_, f32)}, {"v", "F32", {40, 4}, encode<float>(v_, f32)}});
  };
  expectError(arrays::loadQkv(write("ints.safetensors", withKv({"q", "I64", {2, 2}, std::vector<std::byte>(32)}))),
              "attnlab reads F32, F64, F16 and BF16");
  expectError(arrays::loadQkv(write("short.safetensors", withKv({"q", "F32", {4, 4}, std::vector<std::byte>(8)}))),
              "holds 8 bytes, but its shape [4,4] of F32 needs 64");
  expectError(arrays::loadQkv(write("3d.safetensors", withKv({"q", "F32", {2, 3, 4}, std::vector<std::byte>(96)}))),
              "save one head as N×d");
  // Only q, k and v are read: another tensor of a type attnlab does not read is no obstacle.
  {
    const auto file = safetensorsOf({{"q", "F32", {40, 8}, encode<float>(q_, f32)},
                                     {"attention_mask", "I64", {1, 40}, std::vector<std::byte>(320)},
                                     {"hidden_states", "F32", {1, 12, 40, 8}, std::vector<std::byte>(12 * 40 * 8 * 4)},
                                     {"k", "F32", {40, 8}, encode<float>(k_, f32)},
                                     {"v", "F32", {40, 4}, encode<float>(v_, f32)}});
    const auto in = arrays::loadQkv(write("checkpoint.safetensors", file));
    ASSERT_TRUE(in) << in.error();
    EXPECT_TRUE(in.value().q == q_);
    EXPECT_TRUE(in.value().v == v_);
  }
  // Many arrays, none of them q, k, v: the message lists a dozen and counts the rest.
  {
    std::vector<std::tuple<std::string, std::string, std::vector<std::int64_t>, std::vector<std::byte>>> many;
    for (int i = 0; i < 30; ++i)
      many.push_back({"layer" + std::to_string(100 + i), "F32", {2, 2}, std::vector<std::byte>(16)});
    const auto r = arrays::loadQkv(write("many.safetensors", safetensorsOf(many)));
    expectError(r, "and 18 more");
    EXPECT_EQ(r.error().find("layer129"), std::string::npos) << r.error();
  }
  expectError(arrays::loadQkv(write("a.txt", {})), "reads .npy, .npz and .safetensors");
  expectError(arrays::loadQkv((dir_ / "missing.npz").string()), "cannot open");
  // Mismatched shapes and non-finite values come from the inputs' own validation, with the file named.
  Matrix bad = q_;
  bad(3, 2) = std::numeric_limits<float>::quiet_NaN();
  expectError(arrays::loadQkv(write("nan.npz", zipOf({{"q.npy", npy::serialize(bad)}, {"k.npy", npy::serialize(k_)},
                                                       {"v.npy", npy::serialize(v_)}}, false))),
              "nan.npz");
}

// Files made by a fuzzer and by hand to break the readers (tests/data/bad_arrays): offsets and sizes
// near 2^64 that wrap a sum, zip64 fields running past their area, a 114-byte file claiming a 4 GiB
// member, JSON of the wrong types, shapes whose byte count wraps. Each is a message, never a crash, an
// exception or a huge allocation (the CPU tests run under ASan and UBSan in CI).
TEST_F(ArrayFiles, FilesMadeToBreakTheReadersGiveMessages) {
  const fs::path folder = fs::path(ATTNLAB_SOURCE_DIR) / "tests" / "data" / "bad_arrays";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string path = entry.path().string();
    ++files;
    Expected<Inputs> qkv = Expected<Inputs>::failure("not run");
    ASSERT_NO_THROW(qkv = arrays::loadQkv(path)) << path;
    EXPECT_FALSE(qkv) << path;
    if (!qkv) {
      EXPECT_NE(qkv.error().find(entry.path().filename().string()), std::string::npos) << qkv.error();
    }
    Expected<std::map<std::string, Matrix>> all = Expected<std::map<std::string, Matrix>>::failure("not run");
    ASSERT_NO_THROW(all = arrays::load(path)) << path;  // (a 0-row array is an array: loadQkv refuses it)
  }
  EXPECT_GE(files, 20);
}

TEST_F(ArrayFiles, TwoMembersSharingOneDataBlockAreRefused) {
  // The same deflated member listed again under another name: a small file that would inflate many times.
  std::vector<std::byte> zip = zipOf({{"q.npy", npy::serialize(q_)}}, true);
  const std::size_t eocd = zip.size() - 22;
  const std::size_t dir_at = std::size_t(zip[eocd + 16]) | std::size_t(zip[eocd + 17]) << 8 |
                             std::size_t(zip[eocd + 18]) << 16 | std::size_t(zip[eocd + 19]) << 24;
  std::vector<std::byte> entry(zip.begin() + std::ptrdiff_t(dir_at), zip.begin() + std::ptrdiff_t(eocd));
  entry[46] = std::byte('k');  // "k.npy"
  std::vector<std::byte> end(zip.begin() + std::ptrdiff_t(eocd), zip.end());
  zip.resize(eocd);
  zip.insert(zip.end(), entry.begin(), entry.end());
  end[8] = end[10] = std::byte(2);                              // two entries
  end[12] = std::byte(std::to_integer<unsigned>(end[12]) * 2);  // the directory is twice as long (< 256 here)
  zip.insert(zip.end(), end.begin(), end.end());
  const auto r = arrays::load(write("shared.npz", zip));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("share the data"), std::string::npos) << r.error();
}

// The issue's file: three 4M×64 float32 zero arrays (1 GiB each), deflated to about 3 MB. Declared sizes and
// shapes are held to the limits of generated inputs and the memory budget before anything is inflated.
TEST_F(ArrayFiles, HugeDeclaredArraysAreRefusedBeforeInflating) {
  for (const Index rows : {kMaxInputTokens + 1, kMaxInputTokens}) {
    const auto head = npyHeader(rows, 64);
    const std::uint64_t data = std::uint64_t(rows) * 64 * 4;
    const auto body = deflateZeros(head, data);
    const auto zip = zipDeclared({{"q.npy", body, head.size() + data}, {"k.npy", body, head.size() + data},
                                  {"v.npy", body, head.size() + data}});
    EXPECT_LT(zip.size(), std::size_t(4) << 20);
    const std::string path = write("huge.npz", zip);
    arrays::Limits limits;
    limits.max_bytes = std::uint64_t(1) << 30;  // a machine with 2 GiB: the budget, not the token limit, refuses
    const auto start = std::chrono::steady_clock::now();
    const auto r = arrays::loadQkv(path, limits);
    const auto all = arrays::load(path, limits);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_FALSE(r);
    ASSERT_FALSE(all);
    EXPECT_LT(seconds, 1.0) << "refused only after " << seconds << " s";
    if (rows > kMaxInputTokens) {
      EXPECT_NE(r.error().find("huge.npz:q.npy' is 4194305×64: 4194305 tokens, more than the 4194304"), std::string::npos)
          << r.error();
    } else {
      EXPECT_NE(r.error().find("arrays q, k, v need 4294967424 bytes (4 GiB) of memory to be read (3 GiB as float32"),
                std::string::npos) << r.error();
      EXPECT_NE(r.error().find("memory budget of 1073741824 bytes (1 GiB)"), std::string::npos) << r.error();
    }
  }
}

// A member that inflates to more than its directory declares (or less, or whose .npy header's shape needs
// another size) is refused; the inflater never writes past the declared size.
TEST_F(ArrayFiles, MembersWhoseDataDisagreesWithTheirDeclaredSizeAreRefused) {
  const auto q = npy::serialize(q_), k = npy::serialize(k_), v = npy::serialize(v_);
  const auto deflated = [](const std::vector<std::byte>& data) { return deflateZeros(data, 0); };
  auto longer = q;
  longer.resize(q.size() + 100000, std::byte(0));
  for (const auto& [body, usize, expected] :
       std::vector<std::tuple<std::vector<std::byte>, std::uint64_t, std::string>>{
           {deflated(longer), q.size(), "inflates to more than the " + std::to_string(q.size()) + " bytes"},
           {deflated(longer), q.size() + 4, "needs " + std::to_string(q.size())},
           {deflateZeros(npyHeader(40, 9), 40 * 8 * 4), std::uint64_t(npyHeader(40, 9).size()) + 40 * 9 * 4,
            "fewer than the"}}) {
    const auto zip = zipDeclared({{"q.npy", body, usize}, {"k.npy", deflated(k), k.size()}, {"v.npy", deflated(v), v.size()}});
    const auto r = arrays::loadQkv(write("lying.npz", zip));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("member 'q.npy'"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find(expected), std::string::npos) << r.error();
  }
  // The same from memory, and with the honest sizes the arrays arrive.
  const auto zip = zipDeclared({{"q.npy", deflated(q), q.size()}, {"k.npy", deflated(k), k.size()}, {"v.npy", deflated(v), v.size()}});
  const auto ok = arrays::parseQkv(zip, "honest.npz");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_TRUE(ok.value().k == k_);
}

// Two tensors reading the same bytes (K read from Q's data) and a key given twice are refused, naming them.
TEST_F(ArrayFiles, SafetensorsWithOverlappingOffsetsOrADuplicateKeyAreRefused) {
  const auto f32 = [](const Matrix& m) { return encode<float>(m, [](float x) { return x; }); };
  const auto qb = f32(q_), vb = f32(v_);
  const auto file = [&](const std::string& header, const std::vector<std::byte>& data) {
    std::vector<std::byte> out;
    put(out, header.size(), 8);
    for (char c : header) out.push_back(std::byte(c));
    out.insert(out.end(), data.begin(), data.end());
    return out;
  };
  std::vector<std::byte> data = qb;
  data.insert(data.end(), vb.begin(), vb.end());
  const std::string q = R"("q":{"dtype":"F32","shape":[40,8],"data_offsets":[0,1280]})";
  const std::string v = R"("v":{"dtype":"F32","shape":[40,4],"data_offsets":[1280,1920]})";
  const auto overlap = arrays::loadQkv(write(
      "overlap.safetensors", file("{" + q + R"(,"k":{"dtype":"F32","shape":[40,8],"data_offsets":[0,1280]},)" + v + "}", data)));
  ASSERT_FALSE(overlap);
  EXPECT_NE(overlap.error().find("overlap.safetensors"), std::string::npos) << overlap.error();
  EXPECT_NE(overlap.error().find("tensors 'k' and 'q' share bytes 0–1280"), std::string::npos) << overlap.error();
  // Partly overlapping: K begins inside V.
  data.insert(data.end(), qb.begin(), qb.end());
  const auto partly = arrays::parse(
      file("{" + q + R"(,"k":{"dtype":"F32","shape":[40,8],"data_offsets":[1600,2880]},)" + v + "}", data), "partly.safetensors");
  ASSERT_FALSE(partly);
  EXPECT_NE(partly.error().find("tensors 'v' and 'k' share bytes 1600–1920"), std::string::npos) << partly.error();
  const auto twice = arrays::loadQkv(write(
      "twice.safetensors", file("{" + q + R"(,"k":{"dtype":"F32","shape":[40,8],"data_offsets":[1920,3200]},)" + v + "," + q + "}", data)));
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().find("twice.safetensors"), std::string::npos) << twice.error();
  EXPECT_NE(twice.error().find("the key \"q\" more than once"), std::string::npos) << twice.error();
  // A tensor nobody reads whose size is not what its dtype and shape say: the file is damaged.
  const auto mask = arrays::loadQkv(write(
      "mask.safetensors", file("{" + q + R"(,"k":{"dtype":"F32","shape":[40,8],"data_offsets":[1920,3200]},)" + v +
                               R"(,"mask":{"dtype":"I64","shape":[40],"data_offsets":[3200,3200]}})", data)));
  ASSERT_FALSE(mask);
  EXPECT_NE(mask.error().find("tensor 'mask' holds 0 bytes, but its shape [40] of I64 needs 320"), std::string::npos)
      << mask.error();
}

TEST_F(ArrayFiles, NpyStackedOrSideBySide) {
  // One (3, N, d) array: np.save("qkv.npy", np.stack([q, k, v])) (d of V equal to d of Q here).
  const Matrix v = Rng(4).gaussian(40, 8);
  std::vector<std::byte> stacked = npy::serialize(q_);
  {
    // The header of a (3, 40, 8) float32 array, padded as numpy pads it, then the three blocks in C order.
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 40, 8), }";
    while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
    dict += '\n';
    stacked.clear();
    for (int c : {0x93, int('N'), int('U'), int('M'), int('P'), int('Y'), 1, 0}) stacked.push_back(std::byte(c));
    stacked.push_back(std::byte(dict.size() & 0xFF));
    stacked.push_back(std::byte(dict.size() >> 8));
    for (char c : dict) stacked.push_back(std::byte(c));
    for (const Matrix* m : {static_cast<const Matrix*>(&q_), static_cast<const Matrix*>(&k_), &v})
      for (Index r = 0; r < 40; ++r)
        for (Index c = 0; c < 8; ++c) {
          const float x = (*m)(r, c);
          const auto* b = reinterpret_cast<const std::byte*>(&x);
          stacked.insert(stacked.end(), b, b + 4);
        }
  }
  const auto in = arrays::loadQkv(write("qkv.npy", stacked));
  ASSERT_TRUE(in) << in.error();
  EXPECT_TRUE(in.value().q == q_);
  EXPECT_TRUE(in.value().k == k_);
  EXPECT_TRUE(in.value().v == v);
  // One 2-D array under another name: the message says how to save Q, K, V.
  const auto one = arrays::loadQkv(write("head.npy", npy::serialize(q_)));
  ASSERT_FALSE(one);
  EXPECT_NE(one.error().find("np.stack([q, k, v])"), std::string::npos) << one.error();
  // q.npy, k.npy, v.npy side by side: any of them opens the three.
  fs::create_directories(dir_ / "head");
  npy::save((dir_ / "head" / "q.npy").string(), q_);
  npy::save((dir_ / "head" / "k.npy").string(), k_);
  const auto missing = arrays::loadQkv((dir_ / "head" / "k.npy").string());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("v.npy is missing"), std::string::npos) << missing.error();
  npy::save((dir_ / "head" / "v.npy").string(), v_);
  const auto three = arrays::loadQkv((dir_ / "head" / "k.npy").string());
  ASSERT_TRUE(three) << three.error();
  EXPECT_TRUE(three.value().q == q_);
  EXPECT_TRUE(three.value().k == k_);
  EXPECT_TRUE(three.value().v == v_);
  // A folder given as a file: a message that says so (it used to be "out of memory").
  const auto folder = npy::load((dir_ / "head").string());
  ASSERT_FALSE(folder);
  EXPECT_NE(folder.error().find("is a folder"), std::string::npos) << folder.error();
}

}  // namespace
}  // namespace attn
