// MechanismBrowser: a filterable tree of the registry, one top-level item per family.
#include "app/gui/mechanism_browser.h"

#include <QHeaderView>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <map>

#include "attention/mechanism.h"

namespace attnlab::gui {

namespace {
constexpr int k_id_role = Qt::UserRole;          // mechanism id (leaf items only)
constexpr int k_search_role = Qt::UserRole + 1;  // lower-case text the filter matches
}  // namespace

MechanismBrowser::MechanismBrowser(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(6, 6, 6, 6);
  layout->setSpacing(6);
  filter_ = new QLineEdit;
  filter_->setPlaceholderText(tr("Filter: name, paper, idea…"));
  filter_->setClearButtonEnabled(true);
  filter_->setObjectName(QStringLiteral("mechanism_filter"));
  no_match_ = new QLabel;
  no_match_->setObjectName(QStringLiteral("mechanism_no_match"));
  no_match_->setWordWrap(true);
  no_match_->setVisible(false);
  tree_ = new QTreeWidget;
  tree_->setObjectName(QStringLiteral("mechanism_tree"));
  tree_->setColumnCount(2);
  tree_->setHeaderHidden(true);
  tree_->setRootIsDecorated(true);
  tree_->setUniformRowHeights(true);
  tree_->header()->setStretchLastSection(false);
  tree_->header()->setSectionResizeMode(0, QHeaderView::Stretch);
  tree_->header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
  layout->addWidget(filter_);
  layout->addWidget(no_match_);
  layout->addWidget(tree_, 1);

  // Families in enum order, mechanisms in catalog order within each (as the Compare menu lists them).
  std::map<attn::Family, QTreeWidgetItem*> families;
  for (const auto& mechanism : attn::mechanismsByFamily()) {
    const attn::MechanismInfo& info = mechanism->info();
    QTreeWidgetItem*& family = families[info.family];
    if (!family) {
      family = new QTreeWidgetItem({QString::fromStdString(attn::familyName(info.family))});
      family->setFlags(Qt::ItemIsEnabled);
      QFont bold = family->font(0);
      bold.setBold(true);
      family->setFont(0, bold);
      family->setFirstColumnSpanned(false);
    }
    auto* item = new QTreeWidgetItem(
        family, {QString::fromStdString(info.title), info.year > 0 ? QString::number(info.year) : QString()});
    item->setData(0, k_id_role, QString::fromStdString(info.id));
    item->setData(0, k_search_role,
                  QString::fromStdString(info.id + " " + info.title + " " + info.paper + " " + info.idea + " " +
                                         info.arxiv + " " + attn::familyName(info.family))
                      .toLower());
    item->setToolTip(0, QString::fromStdString(info.idea));
    item->setForeground(1, palette().color(QPalette::PlaceholderText));
  }
  for (auto& [family, item] : families) {
    tree_->addTopLevelItem(item);
    item->setFirstColumnSpanned(true);
    item->setExpanded(true);
  }

  connect(filter_, &QLineEdit::textChanged, this, &MechanismBrowser::applyFilter);
  // Enter in the filter opens the first match; Down moves into the list.
  connect(filter_, &QLineEdit::returnPressed, this, [this] {
    if (QTreeWidgetItem* item = firstMatch()) tree_->setCurrentItem(item);
  });
  filter_->installEventFilter(this);
  connect(tree_, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* current) {
    if (!current) return;
    const QString id = current->data(0, k_id_role).toString();
    if (!id.isEmpty()) emit mechanismSelected(id);
  });
}

void MechanismBrowser::applyFilter(const QString& text) {
  const QStringList words = text.toLower().split(QLatin1Char(' '), Qt::SkipEmptyParts);
  const bool filtering = !words.isEmpty();
  if (filtering && !filtering_) {  // a filter starts: remember what the user had collapsed
    collapsed_.clear();
    for (int f = 0; f < tree_->topLevelItemCount(); ++f)
      if (!tree_->topLevelItem(f)->isExpanded()) collapsed_.push_back(tree_->topLevelItem(f));
  }
  int matches = 0;
  for (int f = 0; f < tree_->topLevelItemCount(); ++f) {
    QTreeWidgetItem* family = tree_->topLevelItem(f);
    int shown = 0;
    for (int c = 0; c < family->childCount(); ++c) {
      QTreeWidgetItem* item = family->child(c);
      const QString haystack = item->data(0, k_search_role).toString();
      bool match = true;
      for (const QString& w : words) match = match && haystack.contains(w);
      item->setHidden(!match);
      shown += match ? 1 : 0;
    }
    family->setHidden(shown == 0);
    matches += shown;
    // A match inside a collapsed family is shown; the family folds again when the filter is cleared.
    if (filtering && shown > 0) family->setExpanded(true);
    if (!filtering && filtering_ && collapsed_.contains(family)) family->setExpanded(false);
  }
  if (!filtering) collapsed_.clear();
  filtering_ = filtering;
  no_match_->setText(tr("No mechanism matches \u201C%1\u201D: the filter looks in ids, titles, papers, ideas and "
                        "families.")
                         .arg(text.trimmed()));
  no_match_->setVisible(filtering && matches == 0);
}

QTreeWidgetItem* MechanismBrowser::firstMatch() const {
  // The best of the visible matches for the whole filter text: the mechanism whose id it is ("performer" is
  // FAVOR+, not Performer-v1 listed before it), then one whose title or id starts with it, then any (in the
  // tree's order).
  const QString text = filter_->text().trimmed().toLower();
  auto rank = [&text](const QTreeWidgetItem* item) {
    const QString id = item->data(0, k_id_role).toString().toLower();
    if (id == text) return 0;
    if (item->text(0).toLower().startsWith(text) || id.startsWith(text)) return 1;
    return 2;
  };
  QTreeWidgetItem* best = nullptr;
  int best_rank = 3;
  for (int f = 0; f < tree_->topLevelItemCount(); ++f) {
    const QTreeWidgetItem* family = tree_->topLevelItem(f);
    if (family->isHidden()) continue;
    for (int c = 0; c < family->childCount(); ++c) {
      QTreeWidgetItem* item = family->child(c);
      if (item->isHidden()) continue;
      if (const int r = rank(item); r < best_rank) {
        best = item;
        best_rank = r;
      }
    }
  }
  return best;
}

void MechanismBrowser::focusFilter() {
  filter_->setFocus(Qt::ShortcutFocusReason);
  filter_->selectAll();
}

bool MechanismBrowser::eventFilter(QObject* watched, QEvent* event) {
  if (watched == filter_ && event->type() == QEvent::KeyPress &&
      static_cast<QKeyEvent*>(event)->key() == Qt::Key_Down) {
    // Into the list at the current mechanism when it is a match, else at the first match.
    QTreeWidgetItem* current = tree_->currentItem();
    QTreeWidgetItem* item = current && !current->isHidden() ? current : firstMatch();
    if (item) {
      tree_->setFocus(Qt::TabFocusReason);
      if (item != current) tree_->setCurrentItem(item);
    }
    return true;
  }
  return QWidget::eventFilter(watched, event);
}

QTreeWidgetItem* MechanismBrowser::itemFor(const QString& id) const {
  for (int f = 0; f < tree_->topLevelItemCount(); ++f) {
    QTreeWidgetItem* family = tree_->topLevelItem(f);
    for (int c = 0; c < family->childCount(); ++c)
      if (family->child(c)->data(0, k_id_role).toString() == id) return family->child(c);
  }
  return nullptr;
}

bool MechanismBrowser::select(const QString& id) {
  QTreeWidgetItem* item = itemFor(id);
  if (!item) return false;
  if (item->isHidden()) filter_->clear();
  tree_->setCurrentItem(item);
  tree_->scrollToItem(item);
  return true;
}

QString MechanismBrowser::selectedId() const {
  const QTreeWidgetItem* item = tree_->currentItem();
  return item ? item->data(0, k_id_role).toString() : QString();
}

}  // namespace attnlab::gui
