// InputPanel: the controls of attn::InputSpec that matter for exploring, plus causal and backend.
#include "app/gui/input_panel.h"

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
