// InputPanel: the controls of attn::InputSpec, plus causal and backend.
#include "app/gui/input_panel.h"

#include "app/io/image_file.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <algorithm>
#include <climits>

#include "app/gui/spin_boxes.h"
#include "app/io/image_file.h"
#include "attention/array_files.h"
#include "attention/session.h"

namespace attnlab::gui {

namespace {
constexpr int k_max_generated_n = int(attn::session::kMaxN);  ///< the largest N the generator offers (an imported file may be larger)
constexpr int k_max_generated_d = int(attn::session::kMaxD);  // a session's values are clamped to these

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

/// Whether generator `g` reads `knob` (every generator reads the temperature).
bool uses(attn::Generator g, const char* knob) {
  const std::vector<std::string> knobs = attn::generatorKnobs(g);
  return std::string(knob) == "temperature" || std::find(knobs.begin(), knobs.end(), knob) != knobs.end();
}

QDoubleSpinBox* realBox(double lo, double hi, int decimals, const QString& tip) {
  auto* box = new QDoubleSpinBox;
  box->setRange(lo, hi);
  box->setDecimals(decimals);
  box->setStepType(QAbstractSpinBox::AdaptiveDecimalStepType);  // steps of a tenth of the value's decade
  box->setToolTip(tip);
  return box;
}

}  // namespace

InputPanel::InputPanel(QWidget* parent) : QWidget(parent) {
  auto* form = form_ = new QFormLayout(this);
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
  n_->setRange(1, k_max_generated_n);
  n_->setToolTip(tr("Tokens N (queries and keys). Exact attention and the error are O(N²)."));
  d_ = new DoublingSpinBox;
  d_->setRange(1, k_max_generated_d);
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
  temperature_ = realBox(0.01, 100, 3,
                         tr("Temperature τ: Q is scaled by 1/τ, so a small τ gives peaky rows, a large one flat rows"));
  clusters_ = new DoublingSpinBox;
  clusters_->setRange(1, 4096);
  clusters_->setToolTip(tr("Number of cluster centres the tokens are drawn around"));
  noise_ = realBox(0, 10, 2,
                   tr("Noise around the structure, relative: around the centres (clustered), the "
                      "sinusoids (periodic), the copies (copy), the texture of the picture (image)"));
  length_scale_ = realBox(0.1, 65536, 1, tr("Correlation length of the random walk in tokens: the width of the band"));
  period_ = new DoublingSpinBox;
  period_->setRange(1, 16384);
  period_->setToolTip(tr("Period P in tokens: the stripes repeat every P tokens"));
  heavy_hitters_ = new QSpinBox;
  heavy_hitters_->setRange(0, 4096);
  heavy_hitters_->setToolTip(
      tr("Keys with a large norm along the queries' common direction: the columns every row attends to"));
  position_weight_ = realBox(0, 100, 2,
                             tr("λ, the weight of a pixel's position (x, y) beside its colour: 0 attends by "
                                "colour alone, a large λ to the neighbourhood alone"));
  knobs_ = {{temperature_, "temperature"},        {clusters_, "clusters"}, {noise_, "noise"},
            {length_scale_, "length_scale"},      {period_, "period"},     {heavy_hitters_, "heavy_hitters"},
            {position_weight_, "position_weight"}};
  for (const auto& [box, knob] : knobs_) box->setObjectName(QStringLiteral("input_") + QLatin1String(knob));
  generator_->setObjectName(QStringLiteral("input_generator"));
  n_->setObjectName(QStringLiteral("input_n"));
  for (QSpinBox* box : {n_, d_, seed_, clusters_, period_, heavy_hitters_}) box->setKeyboardTracking(false);
  for (QDoubleSpinBox* box : {temperature_, noise_, length_scale_, position_weight_}) box->setKeyboardTracking(false);

  // The image input's picture: the synthetic shapes, a shipped photo, or a file opened here or by
  // File → Open image (an entry of its own once opened).
  picture_ = new QComboBox;
  picture_->setObjectName(QStringLiteral("input_picture"));
  picture_->addItem(tr("shapes (synthetic)"), QString());
  picture_->setItemData(0, tr("A gradient with five shapes, drawn here: each pixel knows its shape"), Qt::ToolTipRole);
  for (const attn::ShippedImage& im : attn::shippedImages()) {
    picture_->addItem(QString::fromStdString(im.name), QString::fromStdString(im.name));
    picture_->setItemData(picture_->count() - 1, QString::fromStdString(im.title + " — " + im.licence),
                          Qt::ToolTipRole);
  }
  picture_->setToolTip(tr("The picture whose pixels are the tokens, fitted to the grid (centre-cropped to its "
                          "shape, then averaged down)"));
  open_image_ = new QPushButton(tr("Open…"));
  open_image_->setToolTip(tr("Run on a picture of your own: any PNG or JPEG, fitted to the grid"));
  picture_row_ = new QWidget;
  auto* picture_line = new QHBoxLayout(picture_row_);
  picture_line->setContentsMargins(0, 0, 0, 0);
  picture_line->addWidget(picture_, 1);
  picture_line->addWidget(open_image_);
  features_ = new QComboBox;
  features_->setObjectName(QStringLiteral("input_features"));
  features_->addItem(tr("colour + position"), static_cast<int>(attn::ImageFeatures::RgbXy));
  features_->addItem(tr("filter bank + position"), static_cast<int>(attn::ImageFeatures::FilterBank));
  features_->setToolTip(tr("How a pixel becomes Q and K: its colour [R, G, B] or a fixed random 3×" "3 filter "
                           "bank's responses, beside λ·(x, y)"));
  connect(open_image_, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open image"), QString(),
                                                      tr("Images (*.png *.jpg *.jpeg *.bmp *.gif);;All files (*)"));
    if (!path.isEmpty()) openImage(path);
  });

  form->addRow(tr("Generator"), generator_);
  form->addRow(tr("Picture"), picture_row_);
  form->addRow(tr("Features"), features_);
  form->addRow(tr("Temperature τ"), temperature_);
  form->addRow(tr("Clusters"), clusters_);
  form->addRow(tr("Noise"), noise_);
  form->addRow(tr("Length scale"), length_scale_);
  form->addRow(tr("Period P"), period_);
  form->addRow(tr("Heavy hitters"), heavy_hitters_);
  form->addRow(tr("Position weight λ"), position_weight_);
  form->addRow(tr("Tokens N"), n_);
  form->addRow(tr("Head size d"), d_);
  form->addRow(tr("Seed"), seed_);
  form->addRow(QString(), causal_);
  form->addRow(tr("Backend"), backend_);
  import_ = new QPushButton(tr("Import Q, K, V\xE2\x80\xA6"));
  import_->setToolTip(
      tr("Run on one head of a real model: a .npz or .safetensors file with arrays q, k, v "
         "(or query, key, value; other arrays are not read), a .npy of Q, K, V stacked as "
         "(3, N, d), or one of q.npy, k.npy, v.npy side by side"));
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
  connect(generator_, &QComboBox::currentIndexChanged, this, [this, changed] {
    showKnobs();
    changed();
  });
  for (QSpinBox* box : {clusters_, period_, heavy_hitters_}) connect(box, &QSpinBox::valueChanged, this, changed);
  for (QDoubleSpinBox* box : {temperature_, noise_, length_scale_, position_weight_})
    connect(box, &QDoubleSpinBox::valueChanged, this, changed);
  connect(picture_, &QComboBox::currentIndexChanged, this, changed);
  connect(features_, &QComboBox::currentIndexChanged, this, changed);
  connect(n_, &QSpinBox::valueChanged, this, changed);
  connect(d_, &QSpinBox::valueChanged, this, changed);
  connect(seed_, &QSpinBox::valueChanged, this, changed);
  connect(causal_, &QCheckBox::toggled, this, changed);
  connect(backend_, &QComboBox::currentIndexChanged, this, [this] {
    if (!quiet_) emit backendChanged();
  });
  setSpec(attn::defaultInput());
}

void InputPanel::setSpec(const attn::InputSpec& spec) {
  quiet_ = true;
  base_ = spec;
  generator_->setCurrentIndex(std::max(0, generator_->findData(static_cast<int>(spec.generator))));
  // A larger N than the controls offer (`attnlab gui --n 65536`) widens them: they show what runs.
  if (spec.n > n_->maximum()) n_->setMaximum(int(std::min<attn::Index>(spec.n, INT_MAX)));
  n_->setValue(static_cast<int>(std::clamp<attn::Index>(spec.n, n_->minimum(), n_->maximum())));
  d_->setValue(static_cast<int>(std::clamp<attn::Index>(spec.d, d_->minimum(), d_->maximum())));
  seed_->setValue(static_cast<int>(std::min<std::uint64_t>(spec.seed, INT_MAX)));
  temperature_->setValue(spec.temperature);
  clusters_->setValue(
      static_cast<int>(std::clamp<attn::Index>(spec.clusters, clusters_->minimum(), clusters_->maximum())));
  noise_->setValue(spec.noise);
  length_scale_->setValue(spec.length_scale);
  period_->setValue(static_cast<int>(std::clamp<attn::Index>(spec.period, period_->minimum(), period_->maximum())));
  heavy_hitters_->setValue(static_cast<int>(
      std::clamp<attn::Index>(spec.heavy_hitters, heavy_hitters_->minimum(), heavy_hitters_->maximum())));
  position_weight_->setValue(spec.position_weight);
  showPicture(spec);
  features_->setCurrentIndex(std::max(0, features_->findData(static_cast<int>(spec.features))));
  showKnobs();
  quiet_ = false;
}

void InputPanel::showPicture(const attn::InputSpec& spec) {
  int at = picture_->findData(QString::fromStdString(spec.image));
  if (at < 0 && spec.picture) {  // a file (from a session, `gui --image FILE` or Open image): its own entry
    opened_ = spec.picture;
    const int file_entry = 1 + int(attn::shippedImages().size());
    if (picture_->count() > file_entry) picture_->removeItem(file_entry);
    picture_->addItem(QFileInfo(QString::fromStdString(spec.image)).fileName(), QString::fromStdString(spec.image));
    picture_->setItemData(file_entry, QString::fromStdString(spec.image), Qt::ToolTipRole);
    at = file_entry;
  }
  picture_->setCurrentIndex(std::max(0, at));
}

bool InputPanel::openImage(const QString& path, QString* error) {
  auto read = attnlab::io::readImageFile(path.toStdString());
  if (!read) {
    const QString message = QString::fromStdString(read.error());
    if (error) *error = message;
    emit importFailed(message);
    return false;
  }
  if (imported_) clearImport();
  attn::InputSpec s = spec();
  s.generator = attn::Generator::Image;
  s.image = path.toStdString();
  s.picture = std::make_shared<const attn::Picture>(std::move(read).value());
  s.width = 0;  // the grid nearest the new picture's shape
  setSpec(s);
  emit inputChanged();
  return true;
}

void InputPanel::showKnobs() {
  const auto g = static_cast<attn::Generator>(generator_->currentData().toInt());
  for (const auto& [box, knob] : knobs_) {
    form_->setRowVisible(box, uses(g, knob));
    box->setEnabled(!imported_);
  }
  const bool image = g == attn::Generator::Image && !imported_;
  form_->setRowVisible(picture_row_, image);
  form_->setRowVisible(features_, image);
}

attn::InputSpec InputPanel::spec() const {
  attn::InputSpec spec = base_;
  spec.generator = static_cast<attn::Generator>(generator_->currentData().toInt());
  spec.n = n_->value();
  spec.d = d_->value();
  spec.dv = d_->value();
  spec.seed = static_cast<std::uint64_t>(seed_->value());
  spec.temperature = temperature_->value();
  spec.clusters = clusters_->value();
  spec.noise = noise_->value();
  spec.length_scale = length_scale_->value();
  spec.period = period_->value();
  spec.heavy_hitters = heavy_hitters_->value();
  spec.position_weight = position_weight_->value();
  if (spec.generator == attn::Generator::Image) {
    const std::string chosen = picture_->currentData().toString().toStdString();
    if (chosen != spec.image) spec.width = 0;  // another picture takes the grid nearest its own shape
    spec.image = chosen;
    spec.picture = attn::shippedPicture(chosen) || chosen.empty() ? nullptr : opened_;
    spec.features = static_cast<attn::ImageFeatures>(features_->currentData().toInt());
  }
  // An image grid's width (from a session) goes with its N: another N picks its own grid.
  if (spec.width > 0 && spec.n % spec.width != 0) spec.width = 0;
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
  if (!imported_) base_ = spec();  // what "Use generator" goes back to: the input as the user left it
  imported_ = std::make_shared<const attn::Inputs>(std::move(loaded).value());
  imported_path_ = path.toStdString();
  quiet_ = true;
  // The (disabled) boxes show the file's sizes, also past what the generator offers.
  n_->setMaximum(int(std::clamp<attn::Index>(imported_->n(), k_max_generated_n, INT_MAX)));
  d_->setMaximum(int(std::clamp<attn::Index>(imported_->q.cols(), k_max_generated_d, INT_MAX)));
  n_->setValue(int(std::min<attn::Index>(imported_->n(), n_->maximum())));
  d_->setValue(int(std::min<attn::Index>(imported_->q.cols(), d_->maximum())));
  quiet_ = false;
  for (QWidget* w : {static_cast<QWidget*>(generator_), static_cast<QWidget*>(n_), static_cast<QWidget*>(d_)})
    w->setEnabled(false);
  showKnobs();
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
  showKnobs();
  file_->setVisible(false);
  clear_import_->setVisible(false);
  attn::InputSpec back = base_;
  back.seed = static_cast<std::uint64_t>(seed_->value());  // the seed stays editable while a file is shown
  n_->setMaximum(k_max_generated_n);
  d_->setMaximum(k_max_generated_d);
  setSpec(back);
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
