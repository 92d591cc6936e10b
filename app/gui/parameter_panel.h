// The parameter panel: one control per ParamSpec of the selected mechanism (Int → spin box,
// Real → double spin box, Choice → combo box, Flag → check box), tooltips from the specs' help,
// and a Reset button. Values are numbers as Params::resolveNumbers takes them (choices as indices).
#pragma once
#include <QWidget>
#include <map>
#include <string>
#include <vector>

#include "attention/params.h"

class QFormLayout;
class QLabel;
class QPushButton;

namespace attnlab::gui {

class ParameterPanel : public QWidget {
  Q_OBJECT

 public:
  explicit ParameterPanel(QWidget* parent = nullptr);

  /// Rebuilds the controls for `specs`, at their defaults except those in `values` (no changed() signal).
  void setSpecs(const std::vector<attn::ParamSpec>& specs, const std::map<std::string, double>& values = {});
  /// Current values by name.
  std::map<std::string, double> values() const;
  /// Sets one control (clamped by the control to its range); false when no such parameter.
  /// Emits changed() when the value changes.
  bool setValue(const std::string& name, double value);
  /// Every control back to its default (one changed() signal).
  void reset();
  /// Causal mode: the controls of parameters without effect there (ParamSpec::causal_note) are disabled, their
  /// tooltip saying why.
  void setCausal(bool causal);

 signals:
  void changed();

 private:
  struct Control {
    attn::ParamSpec spec;
    QWidget* widget = nullptr;
    QLabel* label = nullptr;
  };
  double valueOf(const Control& control) const;
  void setControl(const Control& control, double value);

  QFormLayout* form_;
  QLabel* empty_;
  QPushButton* reset_;
  std::vector<Control> controls_;
  bool quiet_ = false;  // suppresses changed() while several controls change at once
};

}  // namespace attnlab::gui
