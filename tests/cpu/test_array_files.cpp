// Q, K, V from .npz (stored and deflated, as np.savez / np.savez_compressed write them) and
// .safetensors (F32, F64, F16, BF16): the values arrive exactly, names are matched, and every damaged or
// unsuitable file is a message that names the file and what to change.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

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
  const std::uint64_t dir_offset = out.size();
  out.insert(out.end(), dir.begin(), dir.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 2), put(out, 0, 2), put(out, members.size(), 2), put(out, members.size(), 2);
  put(out, dir.size(), 4), put(out, dir_offset, 4), put(out, 0, 2);
  return out;
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
  expectError(arrays::loadQkv(write("ints.safetensors", safetensorsOf({{"q", "I64", {2, 2}, std::vector<std::byte>(32)}}))),
              "attnlab reads F32, F64, F16 and BF16");
  expectError(arrays::loadQkv(write("short.safetensors", safetensorsOf({{"q", "F32", {4, 4}, std::vector<std::byte>(8)}}))),
              "not what its shape says");
  expectError(arrays::loadQkv(write("3d.safetensors", safetensorsOf({{"q", "F32", {2, 3, 4}, std::vector<std::byte>(96)}}))),
              "save one head as N×d");
  expectError(arrays::loadQkv(write("a.txt", {})), "reads .npy, .npz and .safetensors");
  expectError(arrays::loadQkv((dir_ / "missing.npz").string()), "cannot open");
  // Mismatched shapes and non-finite values come from the inputs' own validation, with the file named.
  Matrix bad = q_;
  bad(3, 2) = std::numeric_limits<float>::quiet_NaN();
  expectError(arrays::loadQkv(write("nan.npz", zipOf({{"q.npy", npy::serialize(bad)}, {"k.npy", npy::serialize(k_)},
                                                       {"v.npy", npy::serialize(v_)}}, false))),
              "nan.npz");
}

}  // namespace
}  // namespace attn
