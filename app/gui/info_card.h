// The info card: what the selected mechanism is (title, paper, year, complexity, causal support,
// its idea in one line, and the stand-ins used for learned weights). A text browser: it wraps, scrolls
// only when it must, and opens the arXiv link in the system browser.
#pragma once
#include <QTextBrowser>

#include "attention/mechanism.h"

namespace attnlab::gui {

class InfoCard : public QTextBrowser {
  Q_OBJECT

 public:
  explicit InfoCard(QWidget* parent = nullptr);
  /// Shows `info` (the widget's own visibility is untouched).
  /// Takes the application palette again (after a theme change).
  void restyle();
  void showMechanism(const attn::Mechanism& mechanism);
};

}  // namespace attnlab::gui
