#include "app/io/image_file.h"

#include <QImage>
#include <QImageReader>
#include <QString>
#include <algorithm>
#include <filesystem>

namespace attnlab::io {

attn::Expected<attn::Picture> readImageFile(const std::string& path, attn::Index max_pixels) {
  using E = attn::Expected<attn::Picture>;
  const auto cannot = [&](const std::string& why) { return E::failure("cannot read '" + path + "' as an image: " + why); };
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return cannot("there is no such file");
  if (!std::filesystem::is_regular_file(status)) return cannot("it is not a regular file");
  QImageReader reader(QString::fromStdString(path));
  reader.setAutoTransform(true);  // a photo's EXIF orientation, as viewers show it
  // Qt refuses to allocate more than this for one image (MiB): 4 bytes per pixel of the cap, at least 1.
  reader.setAllocationLimit(int(std::max<attn::Index>(1, (max_pixels * 4) >> 20)));
  const QSize size = reader.size();  // from the header, nothing decoded yet
  if (!reader.canRead()) return cannot(reader.errorString().toStdString());
  if (size.isValid() && attn::Index(size.width()) * attn::Index(size.height()) > max_pixels)
    return E::failure(attn::imageTooLarge(path, size.width(), size.height(), max_pixels));
  QImage image;
  if (!reader.read(&image) || image.isNull()) return cannot(reader.errorString().toStdString());
  if (attn::Index(image.width()) * attn::Index(image.height()) > max_pixels)
    return E::failure(attn::imageTooLarge(path, image.width(), image.height(), max_pixels));
  const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
  attn::Picture pic;
  pic.height = rgb.height();
  pic.width = rgb.width();
  pic.name = path;
  pic.rgb.resize(std::size_t(3 * pic.height * pic.width));
  for (attn::Index y = 0; y < pic.height; ++y) {
    const uchar* line = rgb.constScanLine(int(y));
    for (attn::Index k = 0; k < 3 * pic.width; ++k) pic.rgb[std::size_t(3 * y * pic.width + k)] = float(line[k]) / 255.0f;
  }
  return pic;
}

}  // namespace attnlab::io
