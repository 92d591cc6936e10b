// LogPanel: a read-only, bounded, timestamped log with Save and Clear.
#include "app/gui/log_panel.h"

#include <QDateTime>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSaveFile>
#include <QVBoxLayout>

namespace attnlab::gui {

LogPanel::LogPanel(QWidget* parent) : QWidget(parent) {
  text_ = new QPlainTextEdit;
  text_->setReadOnly(true);
  text_->setMaximumBlockCount(k_max_lines);
  text_->setLineWrapMode(QPlainTextEdit::NoWrap);
  QFont mono(QStringLiteral("monospace"));
  mono.setStyleHint(QFont::Monospace);
  text_->setFont(mono);
  auto* save = new QPushButton(tr("Save log\xE2\x80\xA6"));
  auto* clear_button = new QPushButton(tr("Clear"));
  connect(save, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save the log"), QStringLiteral("attnlab-log.txt"),
                                                      tr("Text (*.txt)"));
    QString message;
    if (!path.isEmpty() && !saveTo(path, &message)) add(Level::Error, message);
  });
  connect(clear_button, &QPushButton::clicked, this, &LogPanel::clear);
  auto* buttons = new QHBoxLayout;
  buttons->addStretch();
  buttons->addWidget(save);
  buttons->addWidget(clear_button);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(text_);
  layout->addLayout(buttons);
}

void LogPanel::add(Level level, const QString& message) {
  static const char* const k_tags[] = {"info  ", "notice", "ERROR "};
  QString one_line = message;
  one_line.replace(QLatin1Char('\n'), QStringLiteral(" / "));
  const QString line = QStringLiteral("%1  %2  %3")
                           .arg(QDateTime::currentDateTime().toString(QStringLiteral("HH:mm:ss")),
                                QLatin1String(k_tags[static_cast<int>(level)]), one_line);
  lines_ << line;
  while (lines_.size() > k_max_lines) lines_.removeFirst();
  if (level == Level::Error) {
    ++errors_;
    text_->appendHtml(QStringLiteral("<span style=\"color:#ff6b6b\">%1</span>").arg(line.toHtmlEscaped()));
    emit errorLogged(message);
  } else {
    text_->appendPlainText(line);
  }
}

bool LogPanel::saveTo(const QString& path, QString* error) const {
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly | QIODevice::Text)) {
    if (error) *error = tr("cannot write %1: %2").arg(path, file.errorString());
    return false;
  }
  file.write((lines_.join(QLatin1Char('\n')) + QLatin1Char('\n')).toUtf8());
  if (!file.commit()) {
    if (error) *error = tr("cannot write %1: %2").arg(path, file.errorString());
    return false;
  }
  return true;
}

void LogPanel::clear() {
  lines_.clear();
  errors_ = 0;
  text_->clear();
}

}  // namespace attnlab::gui
