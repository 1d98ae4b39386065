// What every subcommand shares: logging, the error-to-exit-code boundary, Ctrl-C, progress display.
#pragma once

#include <CLI/CLI.hpp>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "stylize/error.hpp"

namespace stylize::cli {

// -q: warnings and errors only; default: info; -v: debug. Logs go to stderr; stdout stays for data.
void init_logging(int verbosity);

// Parses argv into `app`. Returns -1 when parsing succeeded and the command should run, otherwise
// the exit code to return (0 after --help/--version, 2 for a usage error, printed as one line).
int parse_or_exit(CLI::App& app, int argc, char** argv);

// Runs `body`, turning every exception into one "error: ..." line on stderr and its exit code.
// What lowers a stylisation's memory: the end of a bare allocation failure's line by default.
inline const char* const kStylizeMemoryFix = "try a smaller --size, a smaller --lbfgs-history or --optimizer adam";

// `oom_fix` ends the line of a bare allocation failure (the engine's own estimates say their fix).
int run_guarded(const std::function<int()>& body, const std::string& oom_fix = kStylizeMemoryFix);

// Called first in main(), before any other thread starts: blocks SIGINT/SIGTERM in every thread
// started after it and takes them on a watcher thread. Until install_interrupt_handler() they end the
// process as by default (exit 128 + signal).
void start_signal_watcher();
// From here on SIGINT/SIGTERM set a flag that the work polls; a second Ctrl-C kills the process at once.
void install_interrupt_handler();
bool interrupt_requested();
void reset_interrupt();
void request_interrupt();  // as if a signal had arrived (for shutdown paths that are not signals)

// The whole life of a command whose options carry EngineFlags as `.engine`: parse, set up logging,
// run with every exception turned into one error line and its exit code.
template <typename Options, typename Setup, typename Run>
int command_main(const std::string& name, int argc, char** argv, Setup setup, Run run) {
  CLI::App app(name, name);
  // A flag given twice keeps its last value, in every subcommand alike (CLI11's default refuses it
  // as "At Most 1 required but received 2"; the engine flags already took the last).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", std::string("stylize ") + STYLIZE_VERSION);  // every subcommand answers it
  Options o;
  setup(app, o);
  const int parsed = parse_or_exit(app, argc, argv);
  if (parsed >= 0) return parsed;
  init_logging(o.engine.quiet > 0 ? -1 : o.engine.verbose);
  // What lowers memory differs by command: apply has no optimiser, train has its crops.
  const std::string oom_fix = name == "stylize apply"   ? "try a smaller --size"
                              : name == "stylize train" ? "try a smaller --crop-size, --batch-size or --width"
                                                        : kStylizeMemoryFix;
  return run_guarded([&] { return run(o); }, oom_fix);
}

// A progress bar on a terminal, plain log lines every `print_every` iterations otherwise.
class ProgressDisplay {
 public:
  ProgressDisplay(int print_every, bool quiet, std::string label = "");
  // Whether update() would show this iteration: the bar at most every 100 ms, log lines at the
  // first, every print_every-th and the last. The engine reads the loss back only then.
  bool due(int iteration, int total) const;
  void update(int iteration, int total, double loss, double seconds);
  // The same bar for a download: bytes, MB/s and ETA (terminal only).
  void update_transfer(uint64_t done, uint64_t total, double seconds);
  void finish();  // ends the bar's line

 private:
  int print_every_;
  bool quiet_, tty_;
  std::string label_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

// "1:02:03" / "04:05".
std::string format_duration(double seconds);

// Peak resident memory of this process so far, in MiB.
double peak_rss_mib();

// Whether a file name ends in an image extension this build reads (jpg jpeg png webp tif tiff bmp).
bool has_image_extension(const std::filesystem::path& p);

// For --ext: ".PNG" and "JPG" mean png and jpg, as -o's extension does (case-insensitive, a leading
// dot allowed). A CLI11 transform: it rewrites the value before the option's checks run.
inline CLI::Validator extension_word() {
  return CLI::Validator(
      [](std::string& s) {
        if (!s.empty() && s[0] == '.') s.erase(0, 1);
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return std::string();
      },
      "");
}

// CLI::Range in the engine flags' words, for the flags CLI11 converts itself. A value that is not a
// number ("abc", nan, inf), not whole where the flag is an integer, or outside [lo, hi] gets
// "--threads: must be a whole number from 0 to 1024, got '1.5'" (CLI::Range lets nan through, since
// every comparison with it is false, and called 1.5 and 1e3 out of range). A whole number written
// as 1e3 or 0x40 is accepted, as the engine flags accept it (rewritten as digits for CLI11: so it
// is given with ->transform(), as ->check() keeps the text as typed).
template <typename T>
CLI::Validator number_in(T lo, T hi) {
  constexpr bool whole = std::is_integral_v<T>;
  std::ostringstream range, desc;
  range << lo << " to " << hi;
  desc << (whole ? "INT" : "FLOAT") << " in [" << lo << " - " << hi << "]";
  auto check = [whole_range = range.str(), lo, hi](std::string& s) -> std::string {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    const bool ok = !s.empty() && end == s.c_str() + s.size() && std::isfinite(v) && (!whole || v == std::floor(v)) &&
                    v >= static_cast<double>(lo) && v <= static_cast<double>(hi);
    if (!ok) return std::string("must be ") + (whole ? "a whole number" : "a number") + " from " + whole_range + ", got " + in_quotes(s);
    if (whole) s = std::to_string(static_cast<long long>(v));
    return std::string();
  };
  return CLI::Validator(check, desc.str());
}

// Refuses an empty value ("--init ''"), which CLI11 passes on as a value: "must be <what>, got ''".
inline CLI::Validator not_empty(const std::string& what) {
  return CLI::Validator([what](std::string& v) { return v.empty() ? "must be " + what + ", got ''" : std::string(); }, "");
}

// A seed: digits only, 0 .. 2^64 - 1 (CLI11 alone would read -1 as 2^64 - 1, and the main command's
// --seed refuses it).
inline CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        errno = 0;
        const bool digits = !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
        if (digits) std::strtoull(s.c_str(), nullptr, 10);
        if (!digits || errno == ERANGE) return "must be a whole number from 0 to 18446744073709551615, got " + in_quotes(s);
        return std::string();
      },
      "");  // no description: CLI11 shows the type (UINT) already
}

// Throws OutputError (exit 5, as -o's unknown extension) unless this build writes `ext` (after
// extension_word()): --ext of apply and batch.
void check_ext_writable(const std::string& ext);

// Throws OutputError unless --out-dir `out_dir` is an existing folder: a file there is named as one,
// a missing folder with the mkdir -p that makes it (apply and batch).
void check_out_dir_exists(const std::string& out_dir);

// Throws OutputError when `out_dir` is one of the folders among `inputs` (or, `recursive`, inside
// one): the next run would take this run's outputs as inputs. `what` names `out_dir` in the message
// ("--out-dir"; "the folder of -o"), and `fix` ends it ("give another --out-dir").
void check_out_dir_outside_inputs(const std::string& out_dir, const std::vector<std::string>& inputs, bool recursive,
                                  const std::string& what = "--out-dir", const std::string& fix = "give another --out-dir");

// Files as given; folders expanded to their images, sorted (recursively when `recursive`). A folder
// without images is a warning; a missing file stays in the list (its reader reports it).
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, bool recursive);

}  // namespace stylize::cli
