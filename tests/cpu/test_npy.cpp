// .npy reading and writing, including the malformed-file classes once found in cnpy and libnpy.
#include <cstring>
#include <filesystem>

#include "attention/npy.h"
#include "test_util.h"

namespace attn {
namespace {

std::vector<std::byte> makeNpy(const std::string& dict, std::size_t data_bytes, int version = 1) {
  std::vector<std::byte> out;
  const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  for (auto c : magic) out.push_back(std::byte(c));
  out.push_back(std::byte(version));
  out.push_back(std::byte(0));
  std::string header = dict + "\n";
  if (version == 1) {
    out.push_back(std::byte(header.size() & 0xff));
    out.push_back(std::byte(header.size() >> 8));
  } else {
    for (int b = 0; b < 4; ++b) out.push_back(std::byte((header.size() >> (8 * b)) & 0xff));
  }
  for (char c : header) out.push_back(std::byte(c));
  out.resize(out.size() + data_bytes, std::byte(0));
  return out;
}

TEST(Npy, RoundTrip) {
  Rng rng(1);
  const Matrix m = rng.gaussian(13, 7);
  const auto bytes = npy::serialize(m);
  EXPECT_EQ((bytes.size() - 13 * 7 * 4) % 64, 0u);  // header padded to 64 bytes
  const auto back = npy::parse(bytes);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_TRUE(back.value() == m);
  const std::string path = (std::filesystem::temp_directory_path() / "attnlab_roundtrip.npy").string();
  npy::save(path, m);
  EXPECT_TRUE(npy::load(path).value() == m);
  std::filesystem::remove(path);
}

TEST(Npy, Float64FortranOrderBigEndianAndLeadingOnes) {
  // 2×3 float64 Fortran order: column-major data 1..6 → [[1,3,5],[2,4,6]].
  auto bytes = makeNpy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 0);
  for (double v : {1., 2., 3., 4., 5., 6.}) {
    std::byte b[8];
    std::memcpy(b, &v, 8);
    bytes.insert(bytes.end(), b, b + 8);
  }
  const Matrix m = npy::parse(bytes).value();
  EXPECT_EQ(m(0, 1), 3.f);
  EXPECT_EQ(m(1, 2), 6.f);
  auto be = makeNpy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 2), }", 0);
  for (float v : {1.5f, -2.f}) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bits = __builtin_bswap32(bits);
    std::byte b[4];
    std::memcpy(b, &bits, 4);
    be.insert(be.end(), b, b + 4);
  }
  const Matrix n = npy::parse(be).value();
  EXPECT_EQ(n.rows(), 1);
  EXPECT_EQ(n(0, 1), -2.f);
  // 1-D arrays become one column; version 2 headers work.
  EXPECT_EQ(npy::parse(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 20, 2)).value().rows(), 5);
}

TEST(Npy, MalformedFilesGiveActionableErrors) {
  auto expectError = [](const std::vector<std::byte>& bytes, const std::string& words) {
    const auto r = npy::parse(bytes, "q.npy");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(words), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("q.npy"), std::string::npos) << r.error();
  };
  expectError({}, "not a .npy file");
  expectError(makeNpy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", 16), "astype");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 15), "truncated");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 17), "extra bytes");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 16), "too large");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 32), "2-D");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False }", 0), "required");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", 4), "fortran_order");
  expectError(makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4), "not closed");
  // Header length beyond the 1 MiB cap (version 2 allows 4 GiB).
  auto huge = makeNpy("{}", 0, 2);
  huge[8] = std::byte(0xff);
  huge[9] = std::byte(0xff);
  huge[10] = std::byte(0xff);
  huge[11] = std::byte(0x7f);
  expectError(huge, "1 MiB");
  auto cut = npy::serialize(Matrix::Ones(2, 2));
  cut.resize(20);
  expectError(cut, "truncated");
  EXPECT_FALSE(npy::load("/nonexistent/q.npy").ok());
}

TEST(Npy, SaveIsAtomicAndReportsFailures) {
  EXPECT_THROW(npy::save("/nonexistent-dir/out.npy", Matrix::Ones(1, 1)), UserError);
  const std::string path = (std::filesystem::temp_directory_path() / "attnlab_atomic.npy").string();
  npy::save(path, Matrix::Ones(2, 2));
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    EXPECT_EQ(e.path().filename().string().find("attnlab_atomic.npy.tmp"), std::string::npos);
  std::filesystem::remove(path);
}

// A NUL (or another control byte) inside the descr or a key used to cut the message short at that byte (it
// reached C strings); it is shown escaped, so the message is whole.
TEST(Npy, ControlBytesInTheHeaderAreShownEscapedInMessages) {
  const auto descr = makeNpy(std::string("{'descr': '<i4\0AB', 'fortran_order': False, 'shape': (2, 2), }", 62), 16);
  const auto r = npy::parse(descr, "nul.npy");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("dtype '<i4\\x00AB'; attnlab reads float32"), std::string::npos) << r.error();
  EXPECT_EQ(r.error().find('\0'), std::string::npos);
  const auto key = makeNpy(std::string("{'de\0\x1b[31m': '<f4', }", 21), 0);
  const auto k = npy::parse(key, "key.npy");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().find("unknown key 'de\\x00\\x1b[31m'"), std::string::npos) << k.error();
}

}  // namespace
}  // namespace attn
