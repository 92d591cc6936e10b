// The mechanism browser: every registered mechanism, grouped by family (exact attention under
// "Reference"), with a filter that matches ids, titles, papers and ideas.
#pragma once
#include <QWidget>

class QLabel;
class QLineEdit;
class QTreeWidget;
class QTreeWidgetItem;

namespace attnlab::gui {

class MechanismBrowser : public QWidget {
  Q_OBJECT

 public:
  explicit MechanismBrowser(QWidget* parent = nullptr);

  /// Selects the mechanism with this id (clearing a filter that hides it); false if unknown.
  bool select(const QString& id);
  /// Id of the selected mechanism, or an empty string.
  QString selectedId() const;
  /// Puts the keyboard in the filter with its text selected (Edit → Find mechanism).
  void focusFilter();

 protected:
  /// Down in the filter moves into the list of matches.
  bool eventFilter(QObject* watched, QEvent* event) override;

 signals:
  void mechanismSelected(const QString& id);

 private:
  void applyFilter(const QString& text);
  QTreeWidgetItem* itemFor(const QString& id) const;
  /// The best match the filter leaves visible (exact id, then title or id prefix, then tree order), or null.
  QTreeWidgetItem* firstMatch() const;

  QLineEdit* filter_;
  QLabel* no_match_;
  QTreeWidget* tree_;
  /// Families the user had collapsed when the filter started: expanded while it shows their matches,
  /// collapsed again when it is cleared.
  QList<QTreeWidgetItem*> collapsed_;
  bool filtering_ = false;
};

}  // namespace attnlab::gui
