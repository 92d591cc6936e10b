// The Log dock: what the window did and what went wrong, one timestamped line each (runs with their
// times and errors, notices, imports, exports, sessions, curves), so an error that the status line
// showed for a moment can still be read — and copied into a bug report — later. Nothing here is modal.
#pragma once
#include <QString>
#include <QStringList>
#include <QWidget>

class QPlainTextEdit;

namespace attnlab::gui {

class LogPanel : public QWidget {
  Q_OBJECT

 public:
  enum class Level { Info, Notice, Error };

  explicit LogPanel(QWidget* parent = nullptr);

  /// Appends "hh:mm:ss  [level]  message" (one line; newlines in the message are joined with " / ").
  void add(Level level, const QString& message);
  void info(const QString& message) { add(Level::Info, message); }
  void notice(const QString& message) { add(Level::Notice, message); }
  void error(const QString& message) { add(Level::Error, message); }

  /// The lines so far (oldest first; at most k_max_lines are kept).
  QStringList lines() const { return lines_; }
  int errorCount() const { return errors_; }
  /// Writes the log as plain text; false with a message when the file cannot be written.
  bool saveTo(const QString& path, QString* error = nullptr) const;
  void clear();

  static constexpr int k_max_lines = 5000;

 signals:
  /// An error was logged (the window may raise the dock).
  void errorLogged(const QString& message);

 private:
  QPlainTextEdit* text_ = nullptr;
  QStringList lines_;
  int errors_ = 0;
};

}  // namespace attnlab::gui
