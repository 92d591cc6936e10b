// Spin boxes shared by the panels.
#pragma once
#include <QSpinBox>
#include <algorithm>
#include <cmath>

namespace attnlab::gui {

/// Integer spin box whose arrows double and halve the value: the natural steps for sizes such as
/// N, d, window widths and bucket counts (log-scale parameters). Typing any value still works.
class DoublingSpinBox : public QSpinBox {
 public:
  using QSpinBox::QSpinBox;
  void stepBy(int steps) override {
    double v = value();
    for (int s = 0; s < std::abs(steps); ++s) v = steps > 0 ? std::max(v + 1, v * 2) : std::floor(v / 2);
    setValue(static_cast<int>(std::clamp<double>(v, minimum(), maximum())));
  }
};

}  // namespace attnlab::gui
