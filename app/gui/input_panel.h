// The input panel: which Q, K, V to run on (generator and its knobs, N, d, seed), causal masking, and
// where to run (backend cpu / vulkan / auto).
#pragma once
#include <QWidget>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/inputs.h"
#include "render/gpu/backend_factory.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QPushButton;
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
  /// Runs on Q, K, V from a .npz, .safetensors or .npy file from now on (the generator controls are
  /// off). On failure nothing changes, `error` gets the reason, and importFailed is emitted.
  bool importFile(const QString& path, QString* error = nullptr);
  /// Back to the generator.
  void clearImport();
  /// The image input on the picture in the file at `path` (PNG, JPEG, … read through Qt, its size checked
  /// before its pixels are read): it joins the Picture choices and is selected, and the generator becomes
  /// `image`. On failure nothing changes, `error` gets the reason, and importFailed is emitted.
  bool openImage(const QString& path, QString* error = nullptr);
  /// The imported inputs, or null when the generator is used.
  std::shared_ptr<const attn::Inputs> imported() const { return imported_; }
  /// The imported file's path ("" when the generator is used).
  std::string importedPath() const { return imported_path_; }

 signals:
  /// An import failed: the message says which file and what is wrong.
  void importFailed(const QString& message);
  /// Generator, a knob of it, N, d, seed or causal changed.
  void inputChanged();
  /// The backend choice changed.
  void backendChanged();

 private:
  /// Shows the knobs the current generator uses (all of them off while a file is shown).
  void showKnobs();
  /// Selects the Picture entry of `spec` (the shapes, a shipped photo, or an opened file, added when new).
  void showPicture(const attn::InputSpec& spec);

  attn::InputSpec base_;
  QFormLayout* form_;
  QComboBox* generator_;
  // The generators' knobs (attn::InputSpec): τ for all, the others for the generators that read them.
  QDoubleSpinBox* temperature_;
  QSpinBox* clusters_;
  QDoubleSpinBox* noise_;
  QDoubleSpinBox* length_scale_;
  QSpinBox* period_;
  QSpinBox* heavy_hitters_;
  QDoubleSpinBox* position_weight_;
  std::vector<std::pair<QWidget*, const char*>> knobs_;  // each with the InputSpec field it sets
  QSpinBox* n_;
  QSpinBox* d_;
  QSpinBox* seed_;
  QCheckBox* causal_;
  QComboBox* backend_;
  // The image input: which picture (the synthetic shapes, a shipped photo, an opened file) and its features.
  QComboBox* picture_;
  QPushButton* open_image_;
  QComboBox* features_;
  QWidget* picture_row_;
  std::shared_ptr<const attn::Picture> opened_;  ///< the opened file's pixels (its entry's data is the path)
  QPushButton* import_;
  QPushButton* clear_import_;
  QLabel* file_;
  std::shared_ptr<const attn::Inputs> imported_;
  std::string imported_path_;
  bool quiet_ = false;
};

}  // namespace attnlab::gui
