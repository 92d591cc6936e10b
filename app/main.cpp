// attnlab: the GUI when started bare (with a display), CLI subcommands otherwise.
#include "app/cli/cli.h"

int main(int argc, char** argv) { return attnlab::cli::run(argc, argv); }
