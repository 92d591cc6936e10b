// What `attnlab sweep` and `attnlab report` write into a folder: results.json and results.csv (the
// data), figures/ (time, memory, error and speed-up vs N per family, SVG and PNG), report.html (one
// self-contained page: figures inline as SVG, tables, machine and parameters, no network) and report.md
// (a Markdown summary). The folder is written as a set (folder_set.h): the previous report stays whole
// until every new file is complete; files attnlab did not write are left alone.
#pragma once
#include <string>

#include "attention/sweep.h"

namespace attnlab::report {

/// What one report draws at most (each backend × family × curve is two figures); larger results are
/// refused before any work, by `sweep` when it starts and by `report`.
constexpr std::size_t k_report_max_backends = 4, k_report_max_mechanisms = 64, k_report_max_ns = 32;
/// UserError naming the key of results.json and the limit when `spec` (or `points` points) exceeds them.
void checkReportBounds(const attn::SweepSpec& spec, std::size_t points);
/// The data, the figures, report.html and report.md, as one set; UserError (the previous report
/// untouched) when a name of `r` cannot be a file name, a bound is exceeded, or anything fails.
void writeSweepReport(const std::string& dir, const attn::SweepResult& r);
/// Reads DIR/results.json; UserError naming what is wrong.
attn::SweepResult readSweep(const std::string& dir);

/// The mechanisms of a sweep grouped for figures: by catalog family, one group when there are few.
std::vector<std::pair<std::string, std::vector<std::string>>> sweepGroups(const attn::SweepResult& r);

}  // namespace attnlab::report
