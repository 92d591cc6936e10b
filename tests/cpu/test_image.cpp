// Pictures for the image input: the PNG decoder against pixels it did not compute (a pattern written by
// tests/data/png/make_pngs.py and Pillow's decoding of a shipped photo), malformed files as one-line
// messages, the fit to a grid against an independent area average, the features against their definition,
// and photos as an input to generate(), sessions and results.json.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>

#include "attention/heap_counter.h"
#include "attention/image.h"
#include "attention/inputs.h"
#include "attention/inputs_json.h"
#include "attention/mechanism.h"
#include "attention/npy.h"
#include "attention/random.h"
#include "attention/session.h"
#include "attention/sweep.h"
#include "test_util.h"

namespace attn {
namespace {

std::vector<std::uint8_t> readBytes(const std::string& relative) {
  std::ifstream in(std::string(ATTNLAB_SOURCE_DIR) + "/" + relative, std::ios::binary);
  EXPECT_TRUE(in) << relative;
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

Expected<Picture> decodeFile(const std::string& name, Index max_pixels = kMaxImagePixels) {
  const auto bytes = readBytes("tests/data/png/" + name);
  return decodePng(bytes, max_pixels, name);
}

/// make_pngs.py's pattern: sample (y, x, c) = (31·y + 17·x + 101·c + 7) mod 2^depth.
std::uint32_t pattern(Index y, Index x, int c, int depth) {
  return std::uint32_t((31 * y + 17 * x + 101 * c + 7) % (Index(1) << depth));
}

TEST(Png, DecodesEveryColourTypeBitDepthAndInterlace) {
  struct Case {
    const char* file;
    Index w, h;
    int depth;
    bool grey;
  };
  for (const Case& c : {Case{"gray1_13x7.png", 13, 7, 1, true}, Case{"gray8_9x6.png", 9, 6, 8, true},
                        Case{"gray16_5x4.png", 5, 4, 16, true}, Case{"grayalpha8_6x5.png", 6, 5, 8, true},
                        Case{"rgb8_11x7.png", 11, 7, 8, false}, Case{"rgb16_4x3.png", 4, 3, 16, false},
                        Case{"rgba8_7x6.png", 7, 6, 8, false}, Case{"rgb8_adam7_19x11.png", 19, 11, 8, false},
                        Case{"gray4_adam7_3x2.png", 3, 2, 4, true}}) {
    const auto pic = decodeFile(c.file);
    ASSERT_TRUE(pic) << c.file << ": " << pic.error();
    ASSERT_EQ(pic.value().width, c.w) << c.file;
    ASSERT_EQ(pic.value().height, c.h) << c.file;
    const double top = double((std::uint64_t(1) << c.depth) - 1);
    int wrong = 0;
    for (Index y = 0; y < c.h; ++y)
      for (Index x = 0; x < c.w; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const double want = double(pattern(y, x, c.grey ? 0 : ch, c.depth)) / top;
          wrong += std::abs(double(pic.value().at(y, x, ch)) - want) > 1e-6;
        }
    EXPECT_EQ(wrong, 0) << c.file;
  }
  // Palette entry k = (16k, 255 − 16k, 7k); the indices follow the pattern at 4 bits.
  const auto pal = decodeFile("palette4_10x5.png");
  ASSERT_TRUE(pal) << pal.error();
  for (Index y = 0; y < 5; ++y)
    for (Index x = 0; x < 10; ++x) {
      const double k = pattern(y, x, 0, 4);
      EXPECT_NEAR(pal.value().at(y, x, 0), 16 * k / 255, 1e-6);
      EXPECT_NEAR(pal.value().at(y, x, 1), (255 - 16 * k) / 255, 1e-6);
      EXPECT_NEAR(pal.value().at(y, x, 2), 7 * k / 255, 1e-6);
    }
}

TEST(Png, AShippedPhotoDecodesAsPillowDecodesIt) {
  const Matrix want = npy::load(std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/png/astronaut_crop.npy").value();
  ASSERT_EQ(want.rows(), 64);
  const auto shipped = shippedPicture("astronaut");
  ASSERT_TRUE(shipped);
  ASSERT_EQ(shipped->width, 256);
  ASSERT_EQ(shipped->height, 256);
  for (Index k = 0; k < 64; ++k)
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(shipped->at(96 + k / 8, 120 + k % 8, c) * 255.0, want(k, c), 1e-3) << k << " " << c;
  // The compiled-in bytes are those of assets/images/astronaut.png.
  const auto from_file = decodePng(readBytes("assets/images/astronaut.png"), kMaxImagePixels, "astronaut.png");
  ASSERT_TRUE(from_file) << from_file.error();
  EXPECT_EQ(from_file.value().rgb, shipped->rgb);
  // Every shipped name decodes, once: the same pixels are shared.
  for (const ShippedImage& s : shippedImages()) {
    const auto p = shippedPicture(s.name);
    ASSERT_TRUE(p) << s.name;
    EXPECT_EQ(p, shippedPicture(s.name));
    EXPECT_GT(p->width * p->height, 10000) << s.name;
  }
  EXPECT_FALSE(shippedPicture("no-such-photo"));
}

TEST(Png, MalformedFilesAreOneLineMessages) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"bad_truncated.png", "truncated"},
      {"bad_crc.png", "CRC of its IHDR chunk is wrong"},
      {"bad_huge.png", "bad_huge.png is 100000×100000 pixels; attnlab reads images up to 64 Mpixel"},
      {"bad_filter.png", "unknown filter type"},
      {"bad_short_data.png", "ends early"},
      {"bad_long_data.png", "inflates to more than its 11×7 pixels"},
      {"bad_palette_index.png", "palette entry"},
      {"bad_depth.png", "bit depth 4 is not valid"},
      {"bad_signature.png", "is not a PNG file"},
      {"bad_no_idat.png", "no image data"},
      {"bad_critical_chunk.png", "(ABCD)"}};
  for (const auto& [file, words] : cases) {
    const auto pic = decodeFile(file);
    ASSERT_FALSE(pic) << file;
    EXPECT_NE(pic.error().find(words), std::string::npos) << file << ": " << pic.error();
    EXPECT_EQ(pic.error().find('\n'), std::string::npos) << file;
    EXPECT_EQ(pic.error().rfind(file, 0), 0u) << "names the file: " << pic.error();
  }
}

TEST(Png, AHugeSizeIsRefusedBeforeAnythingOfItsSizeIsAllocated) {
  const auto bytes = readBytes("tests/data/png/bad_huge.png");
  if (heap::available()) heap::resetPeak();
  const std::int64_t before = heap::available() ? heap::liveBytes() : 0;
  const auto pic = decodePng(bytes, kMaxImagePixels, "huge.png");
  ASSERT_FALSE(pic);
  if (heap::available()) {
    EXPECT_LT(heap::peakBytes() - before, 1 << 16);
  }
  // A smaller cap refuses a small file too, with the number of pixels.
  const auto capped = decodeFile("rgb8_11x7.png", 50);
  ASSERT_FALSE(capped);
  EXPECT_NE(capped.error().find("11×7 pixels; attnlab reads images up to 50 pixels"), std::string::npos) << capped.error();
}

TEST(Png, EveryTruncationAndByteFlipIsAPictureOrAMessage) {
  const auto bytes = readBytes("tests/data/png/rgb8_adam7_19x11.png");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const auto pic = decodePng(std::span<const std::uint8_t>(bytes.data(), n), kMaxImagePixels, "cut.png");
    EXPECT_FALSE(pic) << n;
  }
  int decoded = 0;
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    auto flipped = bytes;
    flipped[k] ^= 0x10;
    decoded += bool(decodePng(flipped, kMaxImagePixels, "flipped.png"));
  }
  EXPECT_EQ(decoded, 0) << "every byte lies under the signature, a length or a CRC";
}

Picture randomPicture(Index h, Index w, std::uint64_t seed) {
  Rng rng(seed);
  Picture p;
  p.height = h;
  p.width = w;
  p.rgb.resize(std::size_t(3 * h * w));
  for (float& v : p.rgb) v = float(rng.uniform());
  return p;
}

TEST(FitToGrid, WholeBlocksAreTheirMeansAfterACentredCrop) {
  // 6 wide, 4 high → 2×2: the centred 4×4 window (columns 1..4), each cell the mean of a 2×2 block.
  const Picture p = randomPicture(4, 6, 3);
  const Picture out = fitToGrid(p, 2, 2);
  ASSERT_EQ(out.height, 2);
  ASSERT_EQ(out.width, 2);
  for (Index y = 0; y < 2; ++y)
    for (Index x = 0; x < 2; ++x)
      for (int c = 0; c < 3; ++c) {
        double sum = 0;
        for (Index dy = 0; dy < 2; ++dy)
          for (Index dx = 0; dx < 2; ++dx) sum += p.at(2 * y + dy, 1 + 2 * x + dx, c);
        EXPECT_NEAR(out.at(y, x, c), sum / 4, 1e-6);
      }
  // The same grid as the picture: the picture itself.
  const Picture same = fitToGrid(p, 4, 6);
  for (std::size_t k = 0; k < p.rgb.size(); ++k) EXPECT_NEAR(same.rgb[k], p.rgb[k], 1e-6);
}

TEST(FitToGrid, FractionalCellsMatchASupersampledAverage) {
  const Picture p = randomPicture(23, 37, 5);
  for (const auto& [h, w] : {std::pair<Index, Index>{5, 9}, {7, 4}, {40, 50}, {1, 1}, {23, 3}}) {
    const Picture out = fitToGrid(p, h, w);
    // Independently: the crop window, then S×S sample points per cell, each the source pixel under it.
    const double ph = 23, pw = 37;
    const double crop_w = std::min(pw, ph * double(w) / double(h)), crop_h = std::min(ph, pw * double(h) / double(w));
    const double x0 = (pw - crop_w) / 2, y0 = (ph - crop_h) / 2;
    constexpr int S = 96;
    double worst = 0;
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          double sum = 0;
          for (int sy = 0; sy < S; ++sy)
            for (int sx = 0; sx < S; ++sx) {
              const double fy = y0 + (double(y) + (sy + 0.5) / S) * crop_h / double(h);
              const double fx = x0 + (double(x) + (sx + 0.5) / S) * crop_w / double(w);
              sum += p.at(Index(fy), Index(fx), c);
            }
          worst = std::max(worst, std::abs(sum / (S * S) - double(out.at(y, x, c))));
        }
    EXPECT_LT(worst, 0.02) << h << "×" << w;
  }
}

TEST(FitToGrid, TheGridNearestAPhotosShapeDividesN) {
  EXPECT_EQ(gridWidthFor(1536, 171, 256), 48);  // coffee at N = 1536: 48×32
  EXPECT_EQ(gridWidthFor(256, 256, 256), 16);
  EXPECT_EQ(gridWidthFor(97, 10, 20), 97);      // a prime N: a strip, as wide as it can be
  EXPECT_EQ(gridWidthFor(96, 300, 100), 6);     // portrait 1:3 → 6 wide, 16 high (nearest 1:3 of 96)
}

TEST(ImageFeatures, RgbXyIsCentredColourAndScaledPosition) {
  const Index h = 3, w = 5;
  MatrixD rgb(h * w, 3);
  Rng rng(2);
  for (Index i = 0; i < rgb.rows(); ++i)
    for (int c = 0; c < 3; ++c) rgb(i, c) = rng.uniform();
  const MatrixD e = imageFeatures(rgb, h, w, ImageFeatures::RgbXy, 2.5, 16, 1);
  ASSERT_EQ(e.cols(), 5);
  for (Index y = 0; y < h; ++y)
    for (Index x = 0; x < w; ++x) {
      const Index i = y * w + x;
      for (int c = 0; c < 3; ++c) EXPECT_DOUBLE_EQ(e(i, c), rgb(i, c) - 0.5);
      EXPECT_NEAR(e(i, 3), 2.5 * (double(x) - 2.0) / 5.0, 1e-12);
      EXPECT_NEAR(e(i, 4), 2.5 * (double(y) - 1.0) / 5.0, 1e-12);
    }
}

TEST(ImageFeatures, TheFilterBankIsFixedZeroMeanUnitNormFilters) {
  const Index h = 7, w = 7, filters = 12;
  const double gain = std::sqrt(3.0 / double(filters));
  // An impulse in channel c at the centre pixel: the response at a neighbour is one weight of each filter.
  MatrixD weights(filters, 27);
  for (int c = 0; c < 3; ++c) {
    MatrixD rgb = MatrixD::Constant(h * w, 3, 0.5);
    rgb(3 * w + 3, c) = 1.5;
    const MatrixD e = imageFeatures(rgb, h, w, ImageFeatures::FilterBank, 0, filters, 42);
    ASSERT_EQ(e.cols(), filters + 2);
    for (Index dy = 0; dy < 3; ++dy)
      for (Index dx = 0; dx < 3; ++dx) {
        const Index at = (3 - dy + 1) * w + (3 - dx + 1);  // the pixel whose (dy, dx) tap sees the centre
        for (Index f = 0; f < filters; ++f) weights(f, 9 * c + 3 * dy + dx) = e(at, f) / gain;
      }
    // Far from the impulse every response is 0; a grey picture gives 0 everywhere (zero-mean filters).
    for (Index f = 0; f < filters; ++f) EXPECT_NEAR(e(0, f), 0, 1e-12);
  }
  for (Index f = 0; f < filters; ++f) {
    EXPECT_NEAR(weights.row(f).sum(), 0, 1e-9) << f;
    EXPECT_NEAR(weights.row(f).norm(), 1, 1e-9) << f;
  }
  const MatrixD grey = MatrixD::Constant(h * w, 3, 0.3);
  EXPECT_LT(imageFeatures(grey, h, w, ImageFeatures::FilterBank, 0, filters, 42).leftCols(filters).cwiseAbs().maxCoeff(), 1e-12);
  // Fixed by the seed: another seed, other filters.
  MatrixD rgb = MatrixD::Constant(h * w, 3, 0.5);
  rgb(3 * w + 3, 0) = 1.5;
  const MatrixD a = imageFeatures(rgb, h, w, ImageFeatures::FilterBank, 0, filters, 42);
  EXPECT_EQ(a, imageFeatures(rgb, h, w, ImageFeatures::FilterBank, 0, filters, 42));
  EXPECT_GT((a - imageFeatures(rgb, h, w, ImageFeatures::FilterBank, 0, filters, 43)).cwiseAbs().maxCoeff(), 1e-3);
}

InputSpec photoSpec(const std::string& name, Index w, Index h) {
  InputSpec s;
  s.generator = Generator::Image;
  s.image = name;
  s.n = w * h;
  s.width = w;
  s.d = 16;
  s.dv = 8;
  return s;
}

TEST(ImageInput, APhotoIsFittedToTheGridAndItsPixelsAttendToLikePixels) {
  const InputSpec spec = photoSpec("coffee", 48, 32);
  const Inputs in = generate(spec);
  ASSERT_EQ(in.n(), 1536);
  EXPECT_EQ(in.grid_width, 48);
  ASSERT_TRUE(in.picture);
  EXPECT_EQ(in.picture->height, 32);
  EXPECT_EQ(in.picture->width, 48);
  EXPECT_TRUE(in.cluster.empty()) << "a photo has no regions";
  const Picture want = fitToGrid(*shippedPicture("coffee"), 32, 48);
  EXPECT_EQ(in.picture->rgb, want.rgb);
  // The same spec gives the same inputs; width 0 picks the grid nearest the photo (48 for 1536 tokens).
  EXPECT_EQ(generate(spec).q, in.q);
  InputSpec chosen = spec;
  chosen.width = 0;
  EXPECT_EQ(generate(chosen).grid_width, 48);
  EXPECT_EQ(generate(chosen).q, in.q);
  // Logits fall with colour distance: a pixel's best key (besides itself) is a neighbour of similar colour.
  const Index i = 16 * 48 + 10;
  Eigen::RowVectorXf s = in.q.row(i) * in.k.transpose();
  s(i) = -INFINITY;
  Index best = 0;
  s.maxCoeff(&best);
  EXPECT_LE(std::abs(best / 48 - 16) + std::abs(best % 48 - 10), 4) << best;
  // The filter bank gives other inputs of the same shape.
  InputSpec filters = spec;
  filters.features = ImageFeatures::FilterBank;
  filters.filters = 8;
  const Inputs f = generate(filters);
  EXPECT_EQ(f.q.rows(), 1536);
  EXPECT_NE(f.q, in.q);
}

// Every mechanism takes a photo as its input (a small grid: the window's and the CLI's 48×32 run by hand).
TEST(ImageInput, EveryMechanismRunsOnAPhoto) {
  const Inputs in = generate(photoSpec("coffee", 24, 16));
  for (const auto& m : mechanisms()) {
    SCOPED_TRACE(m->info().id);
    const Result r = test::runMechanism(m->info().id, in);
    ASSERT_EQ(r.output.rows(), in.n());
    EXPECT_TRUE(r.output.allFinite());
  }
}

TEST(ImageInput, ADecodedPictureIsUsedAndBadSpecsAreMessages) {
  InputSpec spec = photoSpec("/some/file.png", 8, 6);
  try {
    generate(spec);
    ADD_FAILURE() << "an unread file generated";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("astronaut, coffee"), std::string::npos) << e.what();
  }
  spec.picture = std::make_shared<const Picture>(randomPicture(12, 16, 4));
  const Inputs in = generate(spec);
  EXPECT_EQ(in.picture->rgb, fitToGrid(*spec.picture, 6, 8).rgb);
  InputSpec bad = photoSpec("coffee", 7, 7);
  bad.n = 50;
  EXPECT_THROW(generate(bad), UserError);  // W = 7 does not divide 50
  bad = photoSpec("coffee", 8, 8);
  bad.features = ImageFeatures::FilterBank;
  bad.filters = 0;
  EXPECT_THROW(generate(bad), UserError);
  EXPECT_EQ(describeKnobs(photoSpec("coffee", 48, 32)), "photo coffee on W = 48");
  EXPECT_EQ(describeKnobs(InputSpec{}), "");
  EXPECT_THROW(parseImageFeatures("sift"), UserError);
}

TEST(ImageInput, SessionsAndResultsKeepTheImage) {
  InputSpec spec = photoSpec("chelsea", 32, 24);
  spec.features = ImageFeatures::FilterBank;
  spec.filters = 24;
  nlohmann::json j = {{"format", "attnlab-session"}, {"version", 1}, {"mechanism", "exact"}, {"params", nlohmann::json::object()}};
  j["input"] = knobsToJson(spec);
  j["input"]["generator"] = "image";
  j["input"]["n"] = spec.n;
  j["input"]["d"] = spec.d;
  j["input"]["seed"] = 1;
  const auto s = session::parse(j);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s.value().input.image, "chelsea");
  EXPECT_EQ(s.value().input.width, 32);
  EXPECT_EQ(s.value().input.features, ImageFeatures::FilterBank);
  EXPECT_EQ(s.value().input.filters, 24);
  EXPECT_TRUE(s.value().notes.empty()) << ::testing::PrintToString(s.value().notes);
  // A width that does not divide N is dropped and said; the filters are clamped; a bad name is a message.
  j["input"]["width"] = 5;
  j["input"]["filters"] = 100000;
  const auto clamped = session::parse(j);
  ASSERT_TRUE(clamped) << clamped.error();
  EXPECT_EQ(clamped.value().input.width, 0);
  EXPECT_EQ(clamped.value().input.filters, kMaxImageFilters);
  EXPECT_EQ(clamped.value().notes.size(), 2u) << ::testing::PrintToString(clamped.value().notes);
  j["input"]["image_features"] = "sift";
  EXPECT_FALSE(session::parse(j));
  j["input"]["image_features"] = 3;
  EXPECT_FALSE(session::parse(j));
  j["input"]["image_features"] = "rgbxy";
  j["input"]["image"] = std::string(5000, 'x');
  EXPECT_FALSE(session::parse(j));

  SweepResult r;
  r.spec.generator = Generator::Image;
  copyKnobs(spec, r.spec.knobs);
  r.spec.knobs.width = 32;
  nlohmann::json results = nlohmann::json::parse(toJson(r).dump());
  const SweepResult back = sweepFromJson(results);
  EXPECT_EQ(back.spec.knobs.image, "chelsea");
  EXPECT_EQ(back.spec.knobs.width, 32);
  EXPECT_EQ(back.spec.knobs.features, ImageFeatures::FilterBank);
  EXPECT_EQ(back.spec.knobs.filters, 24);
  results["spec"]["knobs"]["image_features"] = "sift";
  EXPECT_THROW(sweepFromJson(results), UserError);
  results["spec"]["knobs"]["image_features"] = "rgbxy";
  results["spec"]["knobs"]["filters"] = 0;
  EXPECT_THROW(sweepFromJson(results), UserError);
}

}  // namespace
}  // namespace attn
