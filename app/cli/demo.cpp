#include "app/cli/demo.h"

#include <QBuffer>
#include <QByteArray>
#include <QSaveFile>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "app/figures/views.h"
#include "app/report/folder_set.h"
#include "app/report/summary.h"
#include "attention/npy.h"
#include "render/gpu/backend_factory.h"

namespace attnlab::cli {

using namespace attnlab::report;  // JSON descriptions, the machine, sweep reports

namespace {

struct DemoCase {
  std::string mechanism;
  attn::Generator input;
  std::map<std::string, std::string> params;
  std::string why;  // one sentence for the report
  double temperature = 1.0;
  fig::View view = fig::View::Weights;
};

const std::vector<DemoCase>& demoCases() {
  static const std::vector<DemoCase> cases = {
      {"longformer", attn::Generator::Local, {{"window", "48"}, {"globals", "2"}},
       "A smooth sequence gives a banded attention matrix: the window sees most of its mass; the two global "
       "tokens add full rows and columns."},
      {"reformer", attn::Generator::Clustered, {{"buckets", "8"}, {"rounds", "4"}, {"chunk", "64"}},
       "Clustered tokens at temperature 0.25: LSH puts similar tokens in one bucket, so most of each cluster's "
       "block survives; four hash rounds catch what one round misses. The reference is shared-QK attention "
       "without self, Reformer's own full-attention counterpart.",
       0.25, fig::View::Groups},
      {"linear-transformer", attn::Generator::Clustered, {},
       "elu+1 features give a smooth, low-contrast kernel: the clusters fade, and the error does not vanish."},
      {"nystromformer", attn::Generator::Local, {{"landmarks", "64"}},
       "64 segment-mean landmarks rebuild the matrix as F·Ã⁺·B: the band is smeared over the segments."},
  };
  return cases;
}

std::string fmt(double v, const char* f = "%.4g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

int writeDemo(const DemoOptions& options, std::string* report_path) {
  namespace fs = std::filesystem;
  FolderSet set(options.out_dir);  // the figures and the report move in together (folder_set.h)
  auto selection = attn::gpu::makeBackend(attn::gpu::parseBackendChoice(options.backend));
  if (!selection.notice.empty()) std::fprintf(stderr, "attnlab: %s\n", selection.notice.c_str());

  nlohmann::json summary{{"machine", machineJson()}, {"runs", nlohmann::json::array()}};
  std::string rows, figures;
  int count = 0;
  for (const auto& demo : demoCases()) {
    attn::InputSpec spec;
    spec.n = options.n;
    spec.generator = demo.input;
    spec.temperature = demo.temperature;
    const auto mechanism = attn::requireMechanism(demo.mechanism);
    const attn::Params params = attn::Params::resolve(mechanism->params(), demo.params);
    const attn::Comparison c = attn::compare(attn::generate(spec), mechanism, params, *selection.backend, {});
    scene::Subject subject;
    subject.main = std::make_shared<const attn::Comparison>(c);
    subject.backend_label = c.backend_name;
    scene::ViewRequest request;
    request.pixels = std::min<attn::Index>(c.inputs.n(), 512);
    request.minimap = false;
    const QByteArray png =
        fig::pngBytes(fig::sceneFigure(subject, fig::requestFor(c, demo.view, request), fig::makeStyle("double")), 110);
    const std::string file = demo.mechanism + ".png";
    fig::saveBytes(set.path(file), png);
    ++count;
    auto j = comparisonJson(c);
    j["figure"] = file;
    summary["runs"].push_back(j);
    const auto& info = mechanism->info();
    rows += "<tr><td><b>" + htmlEscape(info.title) + "</b><br><code>" + info.id + "</code></td><td>" +
            htmlEscape(attn::generatorName(demo.input)) + "</td><td>" + htmlEscape(attn::describeHeadlineShort(c)) +
            "</td><td>" + fmt(c.relative_error) + " (uniform " + fmt(c.uniform_error) + ")</td><td>" +
            (c.mass_recall >= 0 ? fmt(c.mass_recall, "%.3f") : "—") + "</td><td>" + fmt(c.attentionMs(), "%.2f") +
            "</td><td>" + fmt(c.exact_ms, "%.2f") + "</td><td>" + fmt(c.approx.cost.scored_pairs) + "</td><td>" +
            fmt(c.approx.cost.flops) + "</td></tr>\n";
    figures += "<figure><img alt=\"" + htmlEscape(info.title) + "\" src=\"data:image/png;base64," +
               png.toBase64().toStdString() + "\"><figcaption>" + htmlEscape(demo.why) + "</figcaption></figure>\n";
  }

  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  const auto& machine = summary["machine"];
  const std::string html =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>attnlab — default report</title><style>"
      "body{font-family:DejaVu Sans,sans-serif;max-width:1320px;margin:2em auto;color:#1e1e22}"
      "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px 10px;text-align:right}"
      "td:first-child,th:first-child,td:nth-child(2){text-align:left}img{max-width:100%}figure{margin:2em 0}"
      "figcaption{color:#555}</style></head><body>\n<h1>attnlab — efficient attention beside exact attention</h1>\n"
      "<p>Generated " + std::string(stamp) + " with attnlab " + ATTNLAB_VERSION + " on the " + selection.backend->info().name +
      " backend (" + htmlEscape(selection.backend->info().device) + "), N = " + std::to_string(options.n) +
      ", d = 64. Weights are shown on a log scale; each pixel is the maximum of the entries it covers.</p>\n"
      "<table><tr><th>mechanism</th><th>input</th><th>headline</th><th>e_out</th><th>mass recall</th><th>time ms</th>"
      "<th>exact ms</th><th>scored pairs</th><th>FLOPs</th></tr>\n" + rows + "</table>\n" + figures +
      "<p>Machine: " + htmlEscape(machine["cpu"].get<std::string>()) + "; Qt " + machine["qt"].get<std::string>() +
      "; Eigen " + machine["eigen"].get<std::string>() + ". Reproduce with <code>attnlab demo --n " +
      std::to_string(options.n) + "</code>.</p></body></html>\n";
  const std::string report = (fs::path(options.out_dir) / "report.html").string();
  attn::writeFileAtomically(set.path("report.html"), html);
  attn::writeFileAtomically(set.path("summary.json"), summary.dump(2) + "\n");
  set.commit();
  if (report_path) *report_path = fs::absolute(report).string();
  return count;
}

}  // namespace attnlab::cli
