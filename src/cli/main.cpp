// Dispatches `stylize SUBCOMMAND ...` to its own parser; anything else is the main command.
// Separate parsers keep each --help focused and let CONTENT be any file name but a subcommand's.
#include <csignal>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "stylize/error.hpp"
#include "stylize/stylizer.hpp"

namespace {

// OpenBLAS chooses its kernels while it loads, before main, and only OPENBLAS_CORETYPE can change
// that choice. When it fell back to generic kernels on a CPU that has better ones (see
// better_openblas_core), a command that computes restarts itself once with the variable set: the
// Gram products are then ~4x faster (512 px iteration 1.99 → 1.33 s on such a machine). Help, version
// and the weights tools do no matrix products worth a restart; a user's own OPENBLAS_CORETYPE wins.
void restart_with_better_blas_kernels(int argc, char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  // apply: convolutions only (oneDNN), and its whole run is shorter than the restart is worth.
  if (argc >= 2 && (std::strcmp(argv[1], "weights") == 0 || std::strcmp(argv[1], "apply") == 0)) return;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--version") == 0) {
      return;
    }
  }
  const std::string core = stylize::better_openblas_core(stylize::openblas_core(), stylize::cpu_vector_features());
  if (core.empty()) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  execv("/proc/self/exe", argv);
  // Not restarted (no /proc?): run on with the generic kernels, slower but correct.
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f, a quota) reached while writing an output would kill the process
  // by SIGXFSZ, leaving a temporary file behind; ignored, the write fails with EFBIG and the writer
  // reports it (exit 5) and removes what it wrote, as for a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  restart_with_better_blas_kernels(argc, argv);
  stylize::cli::start_signal_watcher();
  if (argc >= 2) {
    const std::string first = argv[1];
    if (first == "weights") return stylize::cli::weights_main(argc - 1, argv + 1);
    if (first == "batch") return stylize::cli::batch_main(argc - 1, argv + 1);
    if (first == "serve") return stylize::cli::serve_main(argc - 1, argv + 1);
    if (first == "worker") return stylize::cli::worker_main(argc - 1, argv + 1);
    if (first == "train") return stylize::cli::train_main(argc - 1, argv + 1);
    if (first == "apply") return stylize::cli::apply_main(argc - 1, argv + 1);
    // A bare word that names no file ('serv', 'bogus') is a mistyped subcommand far more often than
    // a photo without an extension: said so, instead of CLI11's "images: At least 2 required".
    struct stat st {};
    if (!first.empty() && first[0] != '-' && first.find_first_of("./") == std::string::npos &&
        stat(first.c_str(), &st) != 0) {
      std::fprintf(stderr, "error: %s is no subcommand (batch, serve, worker, weights, train, apply) and no file; see "
                           "'stylize --help'\n", stylize::in_quotes(first).c_str());
      return static_cast<int>(stylize::ExitCode::usage);
    }
  }
  return stylize::cli::stylize_main(argc, argv);
}
