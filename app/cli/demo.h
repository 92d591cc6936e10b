// The built-in default without a display: a few comparisons rendered to PNG figures, a small
// self-contained HTML report and a JSON summary in one folder.
#pragma once
#include <string>

namespace attnlab::cli {

struct DemoOptions {
  std::string out_dir = "attnlab-output";
  std::string backend = "auto";
  long n = 512;
};

/// Writes the figures and the report; returns the number of figures. UserError on failure.
int writeDemo(const DemoOptions& options, std::string* report_path);

}  // namespace attnlab::cli
