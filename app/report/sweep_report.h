// What `attnlab sweep` and `attnlab report` write into a folder: results.json and results.csv (the
// data), figures/ (time, memory, error and speed-up vs N per family, SVG and PNG), report.html (one
// self-contained page: figures inline as SVG, tables, machine and parameters, no network) and report.md
// (a Markdown summary). Every file goes to a temporary name and is renamed into place.
#pragma once
#include <string>

#include "attention/sweep.h"

namespace attnlab::report {

/// results.json and results.csv only (after each finished point of a running sweep).
void writeSweepData(const std::string& dir, const attn::SweepResult& r);
/// The data, the figures, report.html and report.md.
void writeSweepReport(const std::string& dir, const attn::SweepResult& r);
/// Reads DIR/results.json; UserError naming what is wrong.
attn::SweepResult readSweep(const std::string& dir);

/// The mechanisms of a sweep grouped for figures: by catalog family, one group when there are few.
std::vector<std::pair<std::string, std::vector<std::string>>> sweepGroups(const attn::SweepResult& r);

}  // namespace attnlab::report
