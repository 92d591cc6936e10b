// Image comparison with tolerances, for golden-image tests (figures offscreen, the GUI viewport on Xvfb):
// the mean absolute channel difference, and the share of pixels off by more than `far` in a channel —
// antialiasing and font hinting move a few pixels a little; a wrong picture moves many a lot.
#pragma once
#include <QImage>
#include <algorithm>
#include <cstdlib>

namespace attnlab::test {

struct Difference {
  double mean = 0, far_share = 0;
};

inline Difference compareImages(const QImage& a, const QImage& b, int far = 40) {
  Difference d;
  const QImage x = a.convertToFormat(QImage::Format_RGB32), y = b.convertToFormat(QImage::Format_RGB32);
  double sum = 0;
  long long far_count = 0;
  for (int r = 0; r < x.height(); ++r) {
    const auto* p = reinterpret_cast<const QRgb*>(x.constScanLine(r));
    const auto* q = reinterpret_cast<const QRgb*>(y.constScanLine(r));
    for (int c = 0; c < x.width(); ++c) {
      const int dr = std::abs(qRed(p[c]) - qRed(q[c])), dg = std::abs(qGreen(p[c]) - qGreen(q[c])),
                db = std::abs(qBlue(p[c]) - qBlue(q[c]));
      sum += dr + dg + db;
      far_count += std::max({dr, dg, db}) > far;
    }
  }
  const double pixels = double(x.width()) * double(x.height());
  d.mean = sum / (3 * pixels);
  d.far_share = double(far_count) / pixels;
  return d;
}

}  // namespace attnlab::test
