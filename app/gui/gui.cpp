// runGui() and the application theme.
#include "app/gui/gui.h"

#include <QApplication>
#include <QIcon>
#include <QMessageBox>
#include <QPainter>
#include <QPalette>
#include <QProxyStyle>
#include <QStyle>
#include <QStyleFactory>
#include <QStyleOption>
#include <exception>

#include "app/gui/main_window.h"

namespace attnlab::gui {

namespace {

/// Fusion, with check boxes (and checkable list items) outlined in the dim text colour on a dark palette:
/// Fusion outlines them in the window colour darkened, which on dark greys left an unticked box invisible.
class ThemeStyle : public QProxyStyle {
 public:
  ThemeStyle() : QProxyStyle(QStyleFactory::create(QStringLiteral("Fusion"))) {}
  void drawPrimitive(PrimitiveElement element, const QStyleOption* option, QPainter* painter,
                     const QWidget* widget) const override {
    QProxyStyle::drawPrimitive(element, option, painter, widget);
    if (element != PE_IndicatorCheckBox || option->palette.color(QPalette::Window).lightness() >= 128) return;
    painter->save();
    painter->setRenderHint(QPainter::Antialiasing, false);
    painter->setBrush(Qt::NoBrush);
    painter->setPen(option->palette.color(QPalette::Disabled, QPalette::Text));  // the dim text colour
    painter->drawRect(option->rect.adjusted(0, 0, -1, -1));
    painter->restore();
  }
};

}  // namespace

void applyTheme(bool light) {
  QApplication::setStyle(new ThemeStyle);  // the application owns it
  if (light) {  // Fusion's own light palette; the viewport turns light too (scene::Scene::light)
    QApplication::setPalette(QApplication::style()->standardPalette());
    return;
  }
  // Dark greys around the viewport's own background (24, 27, 33), so the heatmaps are the brightest
  // thing on screen.
  QPalette p;
  const QColor window(38, 41, 48), base(28, 31, 37), text(222, 225, 230), dim(135, 140, 152);
  p.setColor(QPalette::Window, window);
  p.setColor(QPalette::WindowText, text);
  p.setColor(QPalette::Base, base);
  p.setColor(QPalette::AlternateBase, QColor(45, 48, 56));
  p.setColor(QPalette::ToolTipBase, QColor(50, 54, 62));
  p.setColor(QPalette::ToolTipText, text);
  p.setColor(QPalette::PlaceholderText, dim);
  p.setColor(QPalette::Text, text);
  p.setColor(QPalette::Button, QColor(50, 54, 62));
  p.setColor(QPalette::ButtonText, text);
  p.setColor(QPalette::BrightText, QColor(255, 107, 107));
  p.setColor(QPalette::Light, QColor(70, 74, 84));
  p.setColor(QPalette::Midlight, QColor(58, 62, 71));
  p.setColor(QPalette::Mid, QColor(34, 37, 43));
  p.setColor(QPalette::Dark, QColor(22, 24, 29));
  p.setColor(QPalette::Shadow, QColor(10, 11, 14));
  p.setColor(QPalette::Highlight, QColor(58, 110, 190));
  p.setColor(QPalette::HighlightedText, Qt::white);
  p.setColor(QPalette::Link, QColor(110, 165, 245));
  for (QPalette::ColorRole role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
    p.setColor(QPalette::Disabled, role, dim);
  QApplication::setPalette(p);
}

void applyDesktopIdentity() {
  QGuiApplication::setDesktopFileName(QStringLiteral("attnlab"));
  QIcon compiled_in;
  for (int size : {48, 128, 256})
    compiled_in.addFile(QStringLiteral(":/icons/attnlab-%1.png").arg(size), QSize(size, size));
  QApplication::setWindowIcon(QIcon::fromTheme(QStringLiteral("attnlab"), compiled_in));
}

int runGui(int& argc, char** argv, const GuiOptions& options) {
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("attnlab"));
  QApplication::setOrganizationName(QStringLiteral("attnlab"));
  QApplication::setApplicationVersion(QStringLiteral(ATTNLAB_VERSION));
  applyDesktopIdentity();
  applyTheme();
  try {
    MainWindow window(options);
    window.show();
    return QApplication::exec();
  } catch (...) {
    // Nothing should get here (runs report their errors in the window); if something does, say what.
    QMessageBox::critical(nullptr, QStringLiteral("attnlab"), QString::fromStdString(attn::failureMessage()));
    return 1;
  }
}

}  // namespace attnlab::gui
