// The input panel: which Q, K, V to run on (generator, N, d, seed), causal masking, and where to
// run (backend cpu / vulkan / auto).
#pragma once
#include <QWidget>
#include <string>

#include "attention/inputs.h"
#include "render/gpu/backend_factory.h"

class QCheckBox;
class QComboBox;
class QSpinBox;

namespace attnlab::gui {

class InputPanel : public QWidget {
  Q_OBJECT

 public:
  explicit InputPanel(QWidget* parent = nullptr);

  /// Shows `spec` (no signal). Fields the panel has no control for are kept as they are.
  void setSpec(const attn::InputSpec& spec);
  /// The spec as the controls say (other fields as last set).
  attn::InputSpec spec() const;
  bool causal() const;
  void setCausal(bool causal);
  attn::gpu::BackendChoice backend() const;
  /// "cpu", "vulkan" or "auto"; false (and nothing changed) for anything else.
  bool setBackend(const std::string& name);

 signals:
  /// Generator, N, d, seed or causal changed.
  void inputChanged();
  /// The backend choice changed.
  void backendChanged();

 private:
  attn::InputSpec base_;
  QComboBox* generator_;
  QSpinBox* n_;
  QSpinBox* d_;
  QSpinBox* seed_;
  QCheckBox* causal_;
  QComboBox* backend_;
  bool quiet_ = false;
};

}  // namespace attnlab::gui
