// The mechanism browser: every registered mechanism, grouped by family (exact attention under
// "Reference"), with a filter that matches ids, titles, papers and ideas.
#pragma once
#include <QWidget>

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

 signals:
  void mechanismSelected(const QString& id);

 private:
  void applyFilter(const QString& text);
  QTreeWidgetItem* itemFor(const QString& id) const;

  QLineEdit* filter_;
  QTreeWidget* tree_;
};

}  // namespace attnlab::gui
