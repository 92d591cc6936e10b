// ParameterPanel: controls generated from ParamSpec.
#include "app/gui/parameter_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>
#include <climits>
#include <cmath>

#include "app/gui/spin_boxes.h"

namespace attnlab::gui {

namespace {

int toInt(double v) { return static_cast<int>(std::clamp<double>(std::round(v), INT_MIN, INT_MAX)); }

/// Enough decimals to show the smallest value of the range with 3 significant digits.
int decimalsFor(const attn::ParamSpec& spec) {
  const double smallest = std::max(1e-12, std::min(std::fabs(spec.min) > 0 ? std::fabs(spec.min) : 1.0,
                                                   std::fabs(spec.def) > 0 ? std::fabs(spec.def) : 1.0));
  return std::clamp(static_cast<int>(std::ceil(-std::log10(smallest))) + 3, 2, 10);
}

}  // namespace

ParameterPanel::ParameterPanel(QWidget* parent) : QWidget(parent) {
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(8, 6, 8, 8);
  form_ = new QFormLayout;
  form_->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  form_->setLabelAlignment(Qt::AlignRight | Qt::AlignVCenter);
  empty_ = new QLabel(tr("This mechanism has no parameters."));
  empty_->setEnabled(false);
  reset_ = new QPushButton(tr("Reset to defaults"));
  reset_->setObjectName(QStringLiteral("reset_parameters"));
  reset_->setToolTip(tr("Put every parameter of this mechanism back to its default"));
  outer->addLayout(form_);
  outer->addWidget(empty_);
  outer->addWidget(reset_, 0, Qt::AlignRight);
  connect(reset_, &QPushButton::clicked, this, &ParameterPanel::reset);
}

void ParameterPanel::setSpecs(const std::vector<attn::ParamSpec>& specs, const std::map<std::string, double>& values) {
  while (form_->rowCount() > 0) form_->removeRow(0);
  controls_.clear();
  quiet_ = true;
  for (const attn::ParamSpec& spec : specs) {
    QWidget* widget = nullptr;
    switch (spec.kind) {
      case attn::ParamKind::Int: {
        QSpinBox* box = spec.log_scale ? new DoublingSpinBox : new QSpinBox;
        box->setRange(toInt(spec.min), toInt(spec.max));
        box->setKeyboardTracking(false);  // run on Enter or focus loss, not per keystroke
        connect(box, &QSpinBox::valueChanged, this, [this] {
          if (!quiet_) emit changed();
        });
        widget = box;
        break;
      }
      case attn::ParamKind::Real: {
        auto* box = new QDoubleSpinBox;
        box->setDecimals(decimalsFor(spec));
        box->setRange(spec.min, spec.max);
        box->setKeyboardTracking(false);
        if (spec.log_scale)
          box->setStepType(QAbstractSpinBox::AdaptiveDecimalStepType);  // steps scale with the value
        else
          box->setSingleStep((spec.max - spec.min) / 100);
        connect(box, &QDoubleSpinBox::valueChanged, this, [this] {
          if (!quiet_) emit changed();
        });
        widget = box;
        break;
      }
      case attn::ParamKind::Choice: {
        auto* box = new QComboBox;
        for (const std::string& c : spec.choices) box->addItem(QString::fromStdString(c));
        connect(box, &QComboBox::currentIndexChanged, this, [this] {
          if (!quiet_) emit changed();
        });
        widget = box;
        break;
      }
      case attn::ParamKind::Flag: {
        auto* box = new QCheckBox;
        connect(box, &QCheckBox::toggled, this, [this] {
          if (!quiet_) emit changed();
        });
        widget = box;
        break;
      }
    }
    const QString help = QString::fromStdString(spec.help);
    widget->setToolTip(help);
    widget->setObjectName(QString::fromStdString(spec.name));
    auto* label = new QLabel(QString::fromStdString(spec.label.empty() ? spec.name : spec.label));
    label->setToolTip(help);
    label->setBuddy(widget);
    form_->addRow(label, widget);
    controls_.push_back({spec, widget, label});
    const auto given = values.find(spec.name);
    setControl(controls_.back(), given != values.end() ? given->second : spec.def);
  }
  quiet_ = false;
  empty_->setVisible(controls_.empty());
  reset_->setVisible(!controls_.empty());
}

double ParameterPanel::valueOf(const Control& control) const {
  switch (control.spec.kind) {
    case attn::ParamKind::Int:
      return static_cast<QSpinBox*>(control.widget)->value();
    case attn::ParamKind::Real:
      return static_cast<QDoubleSpinBox*>(control.widget)->value();
    case attn::ParamKind::Choice:
      return static_cast<QComboBox*>(control.widget)->currentIndex();
    case attn::ParamKind::Flag:
      return static_cast<QCheckBox*>(control.widget)->isChecked() ? 1 : 0;
  }
  return 0;
}

void ParameterPanel::setControl(const Control& control, double value) {
  switch (control.spec.kind) {
    case attn::ParamKind::Int:
      static_cast<QSpinBox*>(control.widget)->setValue(toInt(value));
      break;
    case attn::ParamKind::Real:
      static_cast<QDoubleSpinBox*>(control.widget)->setValue(value);
      break;
    case attn::ParamKind::Choice: {  // an index out of range (a hand-edited session) picks the nearest choice
      auto* box = static_cast<QComboBox*>(control.widget);
      box->setCurrentIndex(std::clamp(toInt(value), 0, box->count() - 1));
      break;
    }
    case attn::ParamKind::Flag:
      static_cast<QCheckBox*>(control.widget)->setChecked(value != 0);
      break;
  }
}

std::map<std::string, double> ParameterPanel::values() const {
  std::map<std::string, double> out;
  for (const Control& c : controls_) out[c.spec.name] = valueOf(c);
  return out;
}

bool ParameterPanel::setValue(const std::string& name, double value) {
  for (const Control& c : controls_) {
    if (c.spec.name != name) continue;
    setControl(c, value);  // the control's own signal reports the change
    return true;
  }
  return false;
}

void ParameterPanel::reset() {
  bool any = false;
  quiet_ = true;
  for (const Control& c : controls_) {
    any = any || valueOf(c) != c.spec.def;
    setControl(c, c.spec.def);
  }
  quiet_ = false;
  if (any) emit changed();
}

void ParameterPanel::setCausal(bool causal) {
  for (const Control& c : controls_) {
    if (c.spec.causal_note.empty()) continue;
    const QString help = causal ? tr("Off in causal mode: %1").arg(QString::fromStdString(c.spec.causal_note))
                                : QString::fromStdString(c.spec.help);
    c.widget->setEnabled(!causal);
    c.widget->setToolTip(help);
    if (c.label) {
      c.label->setEnabled(!causal);
      c.label->setToolTip(help);
    }
  }
}

}  // namespace attnlab::gui
