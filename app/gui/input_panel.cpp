// InputPanel: the controls of attn::InputSpec that matter for exploring, plus causal and backend.
#include "app/gui/input_panel.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>

#include "attention/array_files.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QSpinBox>
#include <algorithm>
#include <climits>

#include "app/gui/spin_boxes.h"

namespace attnlab::gui {

namespace {

struct BackendName {
  attn::gpu::BackendChoice choice;
  const char* name;
  const char* label;
};
constexpr BackendName k_backends[] = {
    {attn::gpu::BackendChoice::Auto, "auto", "auto (Vulkan, else CPU)"},
    {attn::gpu::BackendChoice::Vulkan, "vulkan", "vulkan"},
    {attn::gpu::BackendChoice::Cpu, "cpu", "cpu"},
};

}  // namespace

InputPanel::InputPanel(QWidget* parent) : QWidget(parent) {
  auto* form = new QFormLayout(this);
  form->setContentsMargins(8, 6, 8, 8);
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  form->setLabelAlignment(Qt::AlignRight | Qt::AlignVCenter);

  generator_ = new QComboBox;
  for (const attn::GeneratorInfo& g : attn::generators()) {
    generator_->addItem(QString::fromStdString(g.name), static_cast<int>(g.id));
    generator_->setItemData(generator_->count() - 1, QString::fromStdString(g.help), Qt::ToolTipRole);
  }
  generator_->setToolTip(tr("How Q, K and V are generated (seeded, deterministic)"));
  n_ = new DoublingSpinBox;
  n_->setRange(1, 16384);
  n_->setToolTip(tr("Tokens N (queries and keys). Exact attention and the error are O(N²)."));
  d_ = new DoublingSpinBox;
  d_->setRange(1, 1024);
  d_->setToolTip(tr("Head size d of Q and K (V uses the same)."));
  seed_ = new QSpinBox;
  seed_->setRange(0, INT_MAX);
  seed_->setToolTip(tr("Seed of the inputs and of the mechanism's random choices"));
  causal_ = new QCheckBox(tr("causal (query i sees keys j ≤ i)"));
  backend_ = new QComboBox;
  for (const BackendName& b : k_backends) backend_->addItem(tr(b.label), QString::fromLatin1(b.name));
  backend_->setToolTip(
      tr("Where mechanisms run. auto uses Vulkan when a device exists and says when it "
         "falls back to the CPU."));
  for (QSpinBox* box : {n_, d_, seed_}) box->setKeyboardTracking(false);

  form->addRow(tr("Generator"), generator_);
  form->addRow(tr("Tokens N"), n_);
  form->addRow(tr("Head size d"), d_);
  form->addRow(tr("Seed"), seed_);
  form->addRow(QString(), causal_);
  form->addRow(tr("Backend"), backend_);
  import_ = new QPushButton(tr("Import Q, K, V\xE2\x80\xA6"));
  import_->setToolTip(tr("Run on one head of a real model: a .npz or .safetensors file with arrays q, k, v "
                         "(or query, key, value), or a .npy"));
  clear_import_ = new QPushButton(tr("Use generator"));
  clear_import_->setToolTip(tr("Forget the imported file and generate Q, K, V again"));
  clear_import_->setVisible(false);
  file_ = new QLabel;
  file_->setWordWrap(true);
  file_->setVisible(false);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(import_);
  buttons->addWidget(clear_import_);
  form->addRow(tr("File"), buttons);
  form->addRow(QString(), file_);
  connect(import_, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Import Q, K, V"), QString(),
                                                      tr("Arrays (*.npz *.safetensors *.npy);;All files (*)"));
    if (!path.isEmpty()) importFile(path);
  });
  connect(clear_import_, &QPushButton::clicked, this, &InputPanel::clearImport);

  auto changed = [this] {
    if (!quiet_) emit inputChanged();
  };
  connect(generator_, &QComboBox::currentIndexChanged, this, changed);
  connect(n_, &QSpinBox::valueChanged, this, changed);
  connect(d_, &QSpinBox::valueChanged, this, changed);
  connect(seed_, &QSpinBox::valueChanged, this, changed);
  connect(causal_, &QCheckBox::toggled, this, changed);
  connect(backend_, &QComboBox::currentIndexChanged, this, [this] {
    if (!quiet_) emit backendChanged();
  });
  setSpec(attn::InputSpec{});
}

void InputPanel::setSpec(const attn::InputSpec& spec) {
  quiet_ = true;
  base_ = spec;
  generator_->setCurrentIndex(std::max(0, generator_->findData(static_cast<int>(spec.generator))));
  n_->setValue(static_cast<int>(std::clamp<attn::Index>(spec.n, n_->minimum(), n_->maximum())));
  d_->setValue(static_cast<int>(std::clamp<attn::Index>(spec.d, d_->minimum(), d_->maximum())));
  seed_->setValue(static_cast<int>(std::min<std::uint64_t>(spec.seed, INT_MAX)));
  quiet_ = false;
}

attn::InputSpec InputPanel::spec() const {
  attn::InputSpec spec = base_;
  spec.generator = static_cast<attn::Generator>(generator_->currentData().toInt());
  spec.n = n_->value();
  spec.d = d_->value();
  spec.dv = d_->value();
  spec.seed = static_cast<std::uint64_t>(seed_->value());
  return spec;
}

bool InputPanel::importFile(const QString& path, QString* error) {
  auto loaded = attn::arrays::loadQkv(path.toStdString());
  if (!loaded) {
    const QString message = QString::fromStdString(loaded.error());
    if (error) *error = message;
    emit importFailed(message);
    return false;
  }
  imported_ = std::make_shared<const attn::Inputs>(std::move(loaded).value());
  imported_path_ = path.toStdString();
  quiet_ = true;
  n_->setValue(int(std::min<attn::Index>(imported_->n(), n_->maximum())));
  d_->setValue(int(std::min<attn::Index>(imported_->q.cols(), d_->maximum())));
  quiet_ = false;
  for (QWidget* w : {static_cast<QWidget*>(generator_), static_cast<QWidget*>(n_), static_cast<QWidget*>(d_)})
    w->setEnabled(false);
  file_->setText(tr("%1: N = %2, M = %3, d = %4, dv = %5")
                     .arg(QFileInfo(path).fileName())
                     .arg(imported_->n())
                     .arg(imported_->m())
                     .arg(imported_->q.cols())
                     .arg(imported_->v.cols()));
  file_->setVisible(true);
  clear_import_->setVisible(true);
  emit inputChanged();
  return true;
}

void InputPanel::clearImport() {
  if (!imported_) return;
  imported_.reset();
  imported_path_.clear();
  for (QWidget* w : {static_cast<QWidget*>(generator_), static_cast<QWidget*>(n_), static_cast<QWidget*>(d_)})
    w->setEnabled(true);
  file_->setVisible(false);
  clear_import_->setVisible(false);
  setSpec(base_);
  emit inputChanged();
}

bool InputPanel::causal() const { return causal_->isChecked(); }
void InputPanel::setCausal(bool causal) { causal_->setChecked(causal); }

attn::gpu::BackendChoice InputPanel::backend() const {
  const QString name = backend_->currentData().toString();
  for (const BackendName& b : k_backends)
    if (name == QLatin1String(b.name)) return b.choice;
  return attn::gpu::BackendChoice::Auto;
}

bool InputPanel::setBackend(const std::string& name) {
  const int index = backend_->findData(QString::fromStdString(name));
  if (index < 0) return false;
  backend_->setCurrentIndex(index);
  return true;
}

}  // namespace attnlab::gui
