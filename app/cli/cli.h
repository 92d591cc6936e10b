// The attnlab command line: list | info | run | demo | gui. Every failure is one clear line on stderr
// and a non-zero exit; every file is written atomically.
#pragma once

namespace attnlab::cli {

/// Runs the command line. Bare `attnlab` opens the GUI when a display exists and otherwise renders
/// the default figures and report (the `demo` command) into ./attnlab-output.
int run(int argc, char** argv);

}  // namespace attnlab::cli
