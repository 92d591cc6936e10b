// A one-line label that ends in "…" when its text is wider than the room it is given (the status line's
// notices); text() stays the whole text, which the tooltip also shows.
#pragma once
#include <QLabel>
#include <QPainter>
#include <QStyle>

namespace attnlab::gui {

class ElidedLabel : public QLabel {
 public:
  using QLabel::QLabel;

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter painter(this);
    const QRect room = contentsRect();
    const QString shown = fontMetrics().elidedText(text(), Qt::ElideRight, room.width());
    style()->drawItemText(&painter, room, int(alignment() | Qt::AlignVCenter) & ~int(Qt::AlignTop), palette(),
                          isEnabled(), shown, foregroundRole());
  }
};

}  // namespace attnlab::gui
