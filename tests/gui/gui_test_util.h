// Helpers shared by the GUI tests.
#pragma once
#include <QImage>
#include <set>
#include <string>
#include <vector>

namespace attnlab::gui::test {

/// Every Qt warning, critical or fatal message since the last call (and forgets them).
std::vector<std::string> takeQtMessages();

/// Number of distinct RGB colours in `image`.
inline int distinctColours(const QImage& image) {
  const QImage rgb = image.convertToFormat(QImage::Format_RGB32);
  std::set<QRgb> colours;
  for (int y = 0; y < rgb.height(); ++y) {
    const auto* line = reinterpret_cast<const QRgb*>(rgb.constScanLine(y));
    for (int x = 0; x < rgb.width(); ++x) colours.insert(line[x] & 0xFFFFFFu);
  }
  return static_cast<int>(colours.size());
}

/// Share of pixels (0..1) that differ between two images of the same size.
inline double differingShare(const QImage& a, const QImage& b) {
  const QImage x = a.convertToFormat(QImage::Format_RGB32), y = b.convertToFormat(QImage::Format_RGB32);
  if (x.size() != y.size() || x.isNull()) return 1.0;
  long long differ = 0;
  for (int row = 0; row < x.height(); ++row) {
    const auto* p = reinterpret_cast<const QRgb*>(x.constScanLine(row));
    const auto* q = reinterpret_cast<const QRgb*>(y.constScanLine(row));
    for (int col = 0; col < x.width(); ++col) differ += (p[col] & 0xFFFFFFu) != (q[col] & 0xFFFFFFu);
  }
  return static_cast<double>(differ) / (static_cast<double>(x.width()) * x.height());
}

}  // namespace attnlab::gui::test
