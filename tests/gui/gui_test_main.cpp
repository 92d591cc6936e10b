// GUI test main: one QApplication (xcb on Xvfb) for every test, the app's theme, and a Qt message
// handler that turns every warning or critical message into a test failure (validation-layer reports
// arrive as Qt warnings too).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <QApplication>
#include <QByteArray>
#include <QStandardPaths>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "app/gui/gui.h"
#include "tests/gui/gui_test_util.h"

namespace attnlab::gui::test {

namespace {
std::mutex g_mutex;
std::vector<std::string> g_messages;
QtMessageHandler g_previous = nullptr;

void handler(QtMsgType type, const QMessageLogContext& context, const QString& message) {
  if (type == QtWarningMsg || type == QtCriticalMsg || type == QtFatalMsg) {
    const std::string text =
        std::string(context.category ? context.category : "default") + ": " + message.toStdString();
    std::lock_guard<std::mutex> lock(g_mutex);
    g_messages.push_back(text);
  }
  if (g_previous) g_previous(type, context, message);
}
}  // namespace

std::vector<std::string> takeQtMessages() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::string> out;
  out.swap(g_messages);
  return out;
}

}  // namespace attnlab::gui::test

int main(int argc, char** argv) {
  // Qt insists on a private runtime directory; make the one the test environment names.
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR")) {
    ::mkdir(runtime, 0700);
    ::chmod(runtime, 0700);
  }
  attnlab::gui::test::g_previous = qInstallMessageHandler(attnlab::gui::test::handler);
  QApplication app(argc, argv);
  // Settings, recent sessions and the autosave go to a test location, never the user's own.
  QStandardPaths::setTestModeEnabled(true);
  QApplication::setOrganizationName(QStringLiteral("attnlab-tests"));
  QApplication::setApplicationName(QStringLiteral("attnlab-tests"));
  attnlab::gui::applyTheme();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
