// Dispatches `stylize SUBCOMMAND ...` to its own parser; anything else is the main command.
// Separate parsers keep each --help focused and let CONTENT be any file name but a subcommand's.
#include <cstring>
#include <string>

#include "commands.hpp"

int main(int argc, char** argv) {
  if (argc >= 2) {
    const std::string first = argv[1];
    if (first == "weights") return stylize::cli::weights_main(argc - 1, argv + 1);
    if (first == "batch") return stylize::cli::batch_main(argc - 1, argv + 1);
    if (first == "serve") return stylize::cli::serve_main(argc - 1, argv + 1);
  }
  return stylize::cli::stylize_main(argc, argv);
}
