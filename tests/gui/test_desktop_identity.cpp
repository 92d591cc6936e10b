// The running window is the installed attnlab to a desktop: its desktop-entry name is the entry's file
// name, and its icon is there at the sizes installed into the icon theme.
#include <gtest/gtest.h>

#include <QApplication>
#include <QFile>
#include <QIcon>
#include <QTextStream>

#include "app/gui/gui.h"

namespace attnlab::gui::test {
namespace {

QString entryValue(const QString& key) {
  QFile file(QStringLiteral(ATTNLAB_ASSETS_DIR "/attnlab.desktop"));
  if (!file.open(QIODevice::ReadOnly | QIODevice::Text)) return {};
  QTextStream in(&file);
  while (!in.atEnd()) {
    const QString line = in.readLine();
    if (line.startsWith(key + QLatin1Char('='))) return line.mid(key.size() + 1);
  }
  return {};
}

TEST(DesktopIdentity, WindowNamesItsDesktopEntryAndCarriesTheIcon) {
  const QString desktop_file_name = QGuiApplication::desktopFileName();
  const QIcon window_icon = QApplication::windowIcon();
  applyDesktopIdentity();
  // The Wayland app id is the entry's file name without .desktop.
  const QString entry = QStringLiteral(ATTNLAB_ASSETS_DIR "/") + QGuiApplication::desktopFileName() + ".desktop";
  EXPECT_TRUE(QFile::exists(entry)) << entry.toStdString();
  EXPECT_EQ(entryValue(QStringLiteral("Icon")).toStdString(), "attnlab");
  const QIcon icon = QApplication::windowIcon();
  ASSERT_FALSE(icon.isNull());
  for (int size : {48, 128, 256}) EXPECT_EQ(icon.pixmap(QSize(size, size)).size(), QSize(size, size)) << size;
  QGuiApplication::setDesktopFileName(desktop_file_name);
  QApplication::setWindowIcon(window_icon);
}

}  // namespace
}  // namespace attnlab::gui::test
