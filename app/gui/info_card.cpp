// InfoCard: MechanismInfo as rich text.
#include "app/gui/info_card.h"

#include <QApplication>

namespace attnlab::gui {

namespace {

QString escaped(const std::string& s) { return QString::fromStdString(s).toHtmlEscaped(); }

QString causalText(attn::CausalSupport causal) {
  switch (causal) {
    case attn::CausalSupport::No:
      return QObject::tr("no (bidirectional only)");
    case attn::CausalSupport::Yes:
      return QObject::tr("yes");
    case attn::CausalSupport::Native:
      return QObject::tr("yes, causal by construction");
  }
  return {};
}

}  // namespace

InfoCard::InfoCard(QWidget* parent) : QTextBrowser(parent) {
  setOpenExternalLinks(true);
  setFrameShape(QFrame::NoFrame);
  setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  restyle();
  document()->setDocumentMargin(8);
}

void InfoCard::restyle() {
  // Blend into the dock instead of looking like an input field.
  QPalette p = QApplication::palette();
  p.setColor(QPalette::Base, p.color(QPalette::Window));
  setPalette(p);
}

void InfoCard::showMechanism(const attn::Mechanism& mechanism) {
  const attn::MechanismInfo& info = mechanism.info();
  const std::string exact_limit = attn::describeExactLimit(mechanism);
  QString paper = escaped(info.paper) + QStringLiteral("<br>");
  if (!info.arxiv.empty())
    paper += QStringLiteral("<a href=\"https://arxiv.org/abs/%1\">arXiv:%1</a>").arg(escaped(info.arxiv));
  if (info.year > 0)
    paper += (info.arxiv.empty() ? QString() : QStringLiteral(" &middot; ")) + QString::number(info.year);
  // Two columns: what it is (left), the facts (right); the dock is wide and short.
  auto fact = [](const QString& name, const QString& value) {
    return QStringLiteral(
               "<tr><td style='color:#9aa0ab; padding-right:10px' valign='top'>%1</td>"
               "<td valign='top'>%2</td></tr>")
        .arg(name, value);
  };
  QString facts = fact(tr("family"), escaped(attn::familyName(info.family))) +
                  fact(tr("complexity"), escaped(info.complexity.empty() ? "\xE2\x80\x94" : info.complexity)) +
                  fact(tr("causal"), causalText(info.causal));
  if (!info.stand_ins.empty()) facts += fact(tr("stand-ins"), escaped(info.stand_ins));
  facts += fact(info.approximates_softmax ? tr("exact at") : tr("error"),
                info.approximates_softmax ? escaped(exact_limit)
                                          : tr("N/A: a different operator, not an approximation of softmax attention"));
  for (const std::string& line : info.conventions) facts += fact(tr("departs"), escaped(line));
  setHtml(QStringLiteral("<table width='100%' cellspacing='0' cellpadding='0'><tr>"
                         "<td width='48%' valign='top' style='padding-right:18px'>"
                         "<div style='font-size:12pt; font-weight:600'>%1</div>"
                         "<div style='color:#9aa0ab'>%2</div>"
                         "<p style='margin-top:6px'>%3</p></td>"
                         "<td valign='top'><table cellspacing='0' cellpadding='1'>%4</table></td>"
                         "</tr></table>")
              .arg(escaped(info.title), paper, escaped(info.idea), facts));
}

}  // namespace attnlab::gui
