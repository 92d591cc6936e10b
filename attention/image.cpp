#include "attention/image.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>

#include "attention/random.h"

namespace attn {

namespace embedded {
/// The bytes of assets/images/NAME.png compiled in (cmake/embed_files.cmake), or an empty span.
std::span<const std::uint8_t> imageFile(std::string_view name);
}  // namespace embedded

namespace {

constexpr std::array<std::uint8_t, 8> kSignature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr std::uint32_t kMaxChunk = 0x7FFFFFFFu;  // the PNG specification's limit

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

struct Header {
  std::uint32_t width = 0, height = 0;
  int depth = 0, colour = 0, interlace = 0;
  int channels() const { return colour == 0 || colour == 3 ? 1 : colour == 2 ? 3 : colour == 4 ? 2 : 4; }
  int bitsPerPixel() const { return depth * channels(); }
  /// Bytes of one scanline of `w` pixels (without its filter byte).
  std::uint64_t rowBytes(std::uint64_t w) const { return (w * std::uint64_t(bitsPerPixel()) + 7) / 8; }
};

bool validDepth(int colour, int depth) {
  switch (colour) {
    case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2: case 4: case 6: return depth == 8 || depth == 16;
    default: return false;
  }
}

struct Pass {
  std::uint32_t x0, y0, dx, dy;
};
constexpr std::array<Pass, 7> kAdam7 = {{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4},
                                         {1, 0, 2, 2}, {0, 1, 1, 2}}};

std::uint32_t passSize(std::uint32_t full, std::uint32_t start, std::uint32_t step) {
  return full > start ? (full - start + step - 1) / step : 0;
}

/// A chunk's type as text, or "?" when it is not four letters (a damaged file).
std::string shownTag(const std::string& tag) {
  return std::all_of(tag.begin(), tag.end(), [](char ch) { return std::isalpha((unsigned char)ch) != 0; }) ? tag : "?";
}

std::uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return std::uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/// Reverses the scanline filters of one (sub)image in place; false on an unknown filter type.
bool unfilter(std::uint8_t* data, std::uint64_t rows, std::uint64_t row_bytes, std::uint64_t bpp) {
  const std::uint64_t stride = row_bytes + 1;
  for (std::uint64_t y = 0; y < rows; ++y) {
    std::uint8_t* row = data + y * stride;
    const std::uint8_t* up = y > 0 ? data + (y - 1) * stride + 1 : nullptr;
    const std::uint8_t type = row[0];
    std::uint8_t* px = row + 1;
    for (std::uint64_t i = 0; i < row_bytes; ++i) {
      const int a = i >= bpp ? px[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
      switch (type) {
        case 0: break;
        case 1: px[i] = std::uint8_t(px[i] + a); break;
        case 2: px[i] = std::uint8_t(px[i] + b); break;
        case 3: px[i] = std::uint8_t(px[i] + (a + b) / 2); break;
        case 4: px[i] = std::uint8_t(px[i] + paeth(a, b, c)); break;
        default: return false;
      }
    }
  }
  return true;
}

/// Sample k (0-based, of `depth` bits) of a scanline.
std::uint32_t sample(const std::uint8_t* row, std::uint64_t k, int depth) {
  if (depth == 8) return row[k];
  if (depth == 16) return (std::uint32_t(row[2 * k]) << 8) | row[2 * k + 1];
  const std::uint64_t bit = k * std::uint64_t(depth);
  const int shift = 8 - depth - int(bit % 8);
  return (row[bit / 8] >> shift) & ((1u << depth) - 1);
}

}  // namespace

std::string imageTooLarge(const std::string& name, Index width, Index height, Index max_pixels) {
  const bool mega = max_pixels >= (Index(1) << 20) && max_pixels % (Index(1) << 20) == 0;
  return name + " is " + std::to_string(width) + "×" + std::to_string(height) + " pixels; attnlab reads images up to " +
         (mega ? std::to_string(max_pixels >> 20) + " Mpixel" : std::to_string(max_pixels) + " pixels");
}

Expected<Picture> decodePng(std::span<const std::uint8_t> bytes, Index max_pixels, const std::string& name) {
  using E = Expected<Picture>;
  auto fail = [&](const std::string& what) { return E::failure(name + " is not a readable PNG file: " + what); };
  if (bytes.size() < kSignature.size() || !std::equal(kSignature.begin(), kSignature.end(), bytes.begin()))
    return E::failure(name + " is not a PNG file (it does not start with the PNG signature)");
  Header h;
  bool have_header = false, have_end = false;
  std::vector<std::array<std::uint8_t, 3>> palette;
  std::vector<std::pair<const std::uint8_t*, std::uint32_t>> idat;  // pieces of the compressed stream
  std::size_t pos = kSignature.size();
  while (!have_end) {
    if (bytes.size() - pos < 12) return fail("it ends in the middle of a chunk (the file is truncated)");
    const std::uint32_t length = be32(&bytes[pos]);
    const std::uint8_t* type = &bytes[pos + 4];
    const std::string tag(reinterpret_cast<const char*>(type), 4);
    if (length > kMaxChunk || length > bytes.size() - pos - 12)
      return fail("chunk " + std::to_string(pos) + " claims " + std::to_string(length) + " bytes, more than the file holds (truncated?)");
    const std::uint8_t* data = type + 4;
    const std::uint32_t crc = be32(data + length);
    if (std::uint32_t(crc32(crc32(0, nullptr, 0), type, length + 4)) != crc)
      return fail("the CRC of its " + shownTag(tag) +
                  " chunk is wrong (the file is damaged)");
    pos += std::size_t(length) + 12;
    if (!have_header && tag != "IHDR") return fail("its first chunk is not IHDR");
    if (tag == "IHDR") {
      if (have_header) return fail("it has two IHDR chunks");
      if (length != 13) return fail("its IHDR chunk is " + std::to_string(length) + " bytes, not 13");
      h.width = be32(data);
      h.height = be32(data + 4);
      h.depth = data[8];
      h.colour = data[9];
      h.interlace = data[12];
      if (h.width == 0 || h.height == 0 || h.width > kMaxChunk || h.height > kMaxChunk)
        return fail("its size " + std::to_string(h.width) + "×" + std::to_string(h.height) + " is not a valid PNG size");
      if (!validDepth(h.colour, h.depth))
        return fail("colour type " + std::to_string(h.colour) + " with bit depth " + std::to_string(h.depth) + " is not valid PNG");
      if (data[10] != 0 || data[11] != 0 || h.interlace > 1)
        return fail("unknown compression, filter or interlace method");
      // The size is refused here, before anything of the size of the picture is allocated or inflated.
      if (Index(h.width) * Index(h.height) > max_pixels)  // both < 2^31: no overflow
        return E::failure(imageTooLarge(name, Index(h.width), Index(h.height), max_pixels));
      have_header = true;
    } else if (tag == "PLTE") {
      if (length % 3 != 0 || length == 0 || length > 768) return fail("its palette is " + std::to_string(length) + " bytes, not 3 per entry (1 to 256 entries)");
      palette.resize(length / 3);
      for (std::size_t k = 0; k < palette.size(); ++k) palette[k] = {data[3 * k], data[3 * k + 1], data[3 * k + 2]};
    } else if (tag == "IDAT") {
      idat.emplace_back(data, length);
    } else if (tag == "IEND") {
      have_end = true;
    } else if (!(type[0] & 0x20)) {  // an unknown critical chunk: the picture cannot be read without it
      return fail("it needs a chunk attnlab does not know (" + shownTag(tag) + ")");
    }
  }
  if (idat.empty()) return fail("it has no image data (IDAT)");
  if (h.colour == 3 && palette.empty()) return fail("it is a palette image without a palette (PLTE)");

  // The scanlines of every pass with their filter bytes: exactly this many bytes must inflate.
  const bool adam7 = h.interlace == 1;
  std::uint64_t expected = 0;
  for (int p = 0; p < (adam7 ? 7 : 1); ++p) {
    const std::uint64_t pw = adam7 ? passSize(h.width, kAdam7[p].x0, kAdam7[p].dx) : h.width;
    const std::uint64_t ph = adam7 ? passSize(h.height, kAdam7[p].y0, kAdam7[p].dy) : h.height;
    if (pw && ph) expected += ph * (h.rowBytes(pw) + 1);
  }
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(expected));
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return fail("zlib could not start");
  z.next_out = raw.data();
  z.avail_out = 0;
  std::uint64_t out_left = expected;
  int status = Z_OK;
  std::uint8_t spare = 0;  // room to notice data past the expected end
  for (std::size_t k = 0; k < idat.size() && status != Z_STREAM_END; ++k) {
    z.next_in = const_cast<Bytef*>(idat[k].first);
    z.avail_in = idat[k].second;
    while (z.avail_in > 0 && status != Z_STREAM_END) {
      if (z.avail_out == 0) {
        if (out_left == 0) {
          z.next_out = &spare;
          z.avail_out = 1;
        } else {
          const auto chunk = std::uint32_t(std::min<std::uint64_t>(out_left, 1u << 30));
          z.avail_out = chunk;
          out_left -= chunk;
        }
      }
      status = inflate(&z, Z_NO_FLUSH);
      if (z.next_out == &spare + 1) {
        inflateEnd(&z);
        return fail("its image data inflates to more than its " + std::to_string(h.width) + "×" + std::to_string(h.height) + " pixels");
      }
      if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
        const std::string why = z.msg ? z.msg : "corrupt data";
        inflateEnd(&z);
        return fail("its compressed image data is damaged (" + why + ")");
      }
      if (status == Z_BUF_ERROR && z.avail_out > 0) break;  // needs more input: the next IDAT
    }
  }
  const std::uint64_t produced = z.total_out;
  inflateEnd(&z);
  if (produced < expected)
    return fail("its image data ends early (" + std::to_string(produced) + " of " + std::to_string(expected) + " bytes; truncated?)");

  Picture pic;
  pic.height = Index(h.height);
  pic.width = Index(h.width);
  pic.rgb.assign(std::size_t(3) * std::size_t(pic.height) * std::size_t(pic.width), 0.0f);
  const float scale = 1.0f / float((1u << h.depth) - 1);
  const std::uint64_t bpp = std::max<std::uint64_t>(1, std::uint64_t(h.bitsPerPixel()) / 8);
  std::uint64_t offset = 0;
  for (int p = 0; p < (adam7 ? 7 : 1); ++p) {
    const Pass pass = adam7 ? kAdam7[p] : Pass{0, 0, 1, 1};
    const std::uint64_t pw = passSize(h.width, pass.x0, pass.dx), ph = passSize(h.height, pass.y0, pass.dy);
    if (!pw || !ph) continue;
    const std::uint64_t row_bytes = h.rowBytes(pw);
    std::uint8_t* data = raw.data() + offset;
    if (!unfilter(data, ph, row_bytes, bpp)) return fail("a scanline has an unknown filter type");
    for (std::uint64_t y = 0; y < ph; ++y) {
      const std::uint8_t* row = data + y * (row_bytes + 1) + 1;
      const std::uint64_t py = pass.y0 + y * pass.dy;
      for (std::uint64_t x = 0; x < pw; ++x) {
        float* out = &pic.rgb[std::size_t(3 * (py * h.width + pass.x0 + x * pass.dx))];
        const std::uint64_t s = x * std::uint64_t(h.channels());
        if (h.colour == 3) {
          const std::uint32_t index = sample(row, x, h.depth);
          if (index >= palette.size())
            return fail("a pixel uses palette entry " + std::to_string(index) + " of " + std::to_string(palette.size()));
          for (int c = 0; c < 3; ++c) out[c] = float(palette[index][std::size_t(c)]) / 255.0f;
        } else if (h.colour == 0 || h.colour == 4) {
          out[0] = out[1] = out[2] = float(sample(row, s, h.depth)) * scale;
        } else {
          for (int c = 0; c < 3; ++c) out[c] = float(sample(row, s + std::uint64_t(c), h.depth)) * scale;
        }
      }
    }
    offset += ph * (row_bytes + 1);
  }
  return pic;
}

namespace {

/// For each of `out` cells along one axis: the source pixels it covers and their weights (summing to 1),
/// over the centred window [start, start + length) of the source.
struct Tap {
  Index source;
  double weight;
};
std::vector<std::vector<Tap>> axisWeights(Index source_size, double start, double length, Index out) {
  std::vector<std::vector<Tap>> taps(static_cast<std::size_t>(out));
  const double step = length / double(out);
  for (Index o = 0; o < out; ++o) {
    const double a = start + double(o) * step, b = start + double(o + 1) * step;
    const Index first = std::clamp<Index>(Index(std::floor(a)), 0, source_size - 1);
    const Index last = std::clamp<Index>(Index(std::ceil(b)) - 1, first, source_size - 1);
    double total = 0;
    for (Index k = first; k <= last; ++k) {
      const double covered = std::min(b, double(k + 1)) - std::max(a, double(k));
      if (covered > 0) taps[std::size_t(o)].push_back({k, covered}), total += covered;
    }
    if (taps[std::size_t(o)].empty()) taps[std::size_t(o)].push_back({first, 1.0}), total = 1;
    for (Tap& t : taps[std::size_t(o)]) t.weight /= total;
  }
  return taps;
}

}  // namespace

Picture fitToGrid(const Picture& picture, Index h, Index w) {
  if (h < 1 || w < 1 || picture.height < 1 || picture.width < 1)
    throw UserError("a picture is fitted to a grid of at least 1×1 pixels");
  // The largest centred window of the grid's aspect w/h: the wider dimension is cropped.
  const double ph = double(picture.height), pw = double(picture.width);
  double crop_h = ph, crop_w = pw;
  if (pw * double(h) > ph * double(w)) crop_w = ph * double(w) / double(h);
  else crop_h = pw * double(h) / double(w);
  const auto rows = axisWeights(picture.height, (ph - crop_h) / 2, crop_h, h);
  const auto cols = axisWeights(picture.width, (pw - crop_w) / 2, crop_w, w);
  // Rows first (source rows → h rows, every source column), then columns.
  std::vector<double> tall(std::size_t(h * picture.width * 3), 0.0);
  for (Index y = 0; y < h; ++y)
    for (const Tap& t : rows[std::size_t(y)])
      for (Index x = 0; x < picture.width; ++x)
        for (int c = 0; c < 3; ++c) tall[std::size_t(3 * (y * picture.width + x) + c)] += t.weight * double(picture.at(t.source, x, c));
  Picture out;
  out.height = h;
  out.width = w;
  out.name = picture.name;
  out.rgb.assign(std::size_t(h * w * 3), 0.0f);
  for (Index y = 0; y < h; ++y)
    for (Index x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        double sum = 0;
        for (const Tap& t : cols[std::size_t(x)]) sum += t.weight * tall[std::size_t(3 * (y * picture.width + t.source) + c)];
        out.rgb[std::size_t(3 * (y * w + x) + c)] = float(sum);
      }
  return out;
}

Index gridWidthFor(Index n, Index picture_height, Index picture_width) {
  const double target = std::log(double(picture_width) / double(picture_height));
  Index best = 1;
  double best_gap = INFINITY;
  for (Index w = 1; w <= n; ++w) {
    if (n % w) continue;
    const double gap = std::abs(std::log(double(w) / double(n / w)) - target);
    if (gap < best_gap - 1e-12) best = w, best_gap = gap;
  }
  return best;
}

const std::vector<ShippedImage>& shippedImages() {
  static const std::vector<ShippedImage> all = {
      {"astronaut", "the astronaut Eileen Collins (NASA, 256×256)", "public domain (NASA)"},
      {"coffee", "a cup of coffee on a saucer (256×171)", "CC0, Rachel Michetti"},
      {"chelsea", "Chelsea the cat (256×170)", "CC0, Stéfan van der Walt"},
      {"rocket", "the launch of DSCOVR on a Falcon 9 (SpaceX, 256×171)", "public domain (SpaceX)"},
      {"coffee-changed", "coffee with one rectangle replaced (an edited copy, for change detection)",
       "CC0, an edited copy of coffee"},
      {"coffee-changed-mask", "the changed rectangle of coffee-changed (white inside, black elsewhere)",
       "CC0, made for attnlab"},
  };
  return all;
}

std::string shippedImageNames() {
  std::string out;
  for (const ShippedImage& s : shippedImages()) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

std::shared_ptr<const Picture> shippedPicture(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Picture>> decoded;
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = decoded.find(name); it != decoded.end()) return it->second;
  const bool known = std::any_of(shippedImages().begin(), shippedImages().end(),
                                 [&](const ShippedImage& s) { return s.name == name; });
  const std::span<const std::uint8_t> bytes = known ? embedded::imageFile(name) : std::span<const std::uint8_t>();
  if (bytes.empty()) return nullptr;
  Picture pic = decodePng(bytes, kMaxImagePixels, name + ".png").value();  // compiled in: decodes or it is a bug
  pic.name = name;
  auto shared = std::make_shared<const Picture>(std::move(pic));
  decoded[name] = shared;
  return shared;
}

const char* imageFeaturesName(ImageFeatures f) { return f == ImageFeatures::FilterBank ? "filters" : "rgbxy"; }

ImageFeatures parseImageFeatures(const std::string& name) {
  if (name == "rgbxy") return ImageFeatures::RgbXy;
  if (name == "filters") return ImageFeatures::FilterBank;
  throw UserError("image features are rgbxy (colour and position) or filters (a random filter bank), not '" + name + "'");
}

MatrixD imageFeatures(const MatrixD& rgb, Index h, Index w, ImageFeatures kind, double lambda, Index filters,
                      std::uint64_t seed, const MatrixD* noise) {
  const Index n = h * w, side = std::max(h, w);
  if (rgb.rows() != n || rgb.cols() != 3) throw UserError("image features need N × 3 colours on the H×W grid");
  MatrixD centred(n, 3);
  for (Index i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) centred(i, c) = noise ? rgb(i, c) - 0.5 + (*noise)(i, c) : rgb(i, c) - 0.5;
  const Index colour_cols = kind == ImageFeatures::RgbXy ? 3 : filters;
  MatrixD e(n, colour_cols + 2);
  if (kind == ImageFeatures::RgbXy) {
    e.leftCols(3) = centred;
  } else {
    // F filters of 3×3 pixels × 3 channels, each zero-mean and of unit norm.
    Rng rng(seed, 11);
    MatrixD bank(filters, 27);
    for (Index f = 0; f < filters; ++f) {
      for (Index k = 0; k < 27; ++k) bank(f, k) = rng.normal();
      bank.row(f).array() -= bank.row(f).mean();
      bank.row(f) /= bank.row(f).norm();
    }
    const double gain = std::sqrt(3.0 / double(filters));
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x) {
        Eigen::Matrix<double, 27, 1> patch;
        for (Index dy = 0; dy < 3; ++dy)
          for (Index dx = 0; dx < 3; ++dx) {
            const Index sy = std::clamp<Index>(y + dy - 1, 0, h - 1), sx = std::clamp<Index>(x + dx - 1, 0, w - 1);
            for (int c = 0; c < 3; ++c) patch(9 * c + 3 * dy + dx) = centred(sy * w + sx, c);
          }
        e.row(y * w + x).head(filters) = gain * (bank * patch).transpose();
      }
  }
  for (Index i = 0; i < n; ++i) {
    const Index y = i / w, x = i % w;
    e(i, colour_cols) = lambda * (double(x) - 0.5 * double(w - 1)) / double(side);
    e(i, colour_cols + 1) = lambda * (double(y) - 0.5 * double(h - 1)) / double(side);
  }
  return e;
}

}  // namespace attn
