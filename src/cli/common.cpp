#include "common.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <new>
#include <thread>

#include <pthread.h>
#include <signal.h>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"

namespace stylize::cli {

namespace fs = std::filesystem;

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("stylize");
  logger->set_pattern("%^%l%$: %v");
  logger->set_level(verbosity < 0 ? spdlog::level::warn : verbosity > 0 ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int parse_or_exit(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    // CLI11's "Could not convert: --steps = abc" in the words of the other flag errors.
    const std::string prefix = "Could not convert: ";
    if (const size_t eq = what.find(" = "); what.rfind(prefix, 0) == 0 && eq != std::string::npos) {
      what = what.substr(prefix.size(), eq - prefix.size()) + ": must be a number, got " + in_quotes(what.substr(eq + 3));
    }
    // The help that lists the flag: the subcommand's own ('stylize weights synth --help').
    std::string help = app.get_name();
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      help += " " + sub->get_name();
    }
    std::fprintf(stderr, "error: %s; see '%s --help'\n", what.c_str(), help.c_str());
    return static_cast<int>(ExitCode::usage);
  }
}

int run_guarded(const std::function<int()>& body, const std::string& oom_fix) {
  auto fail = [](const std::string& message, ExitCode code) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return static_cast<int>(code);
  };
  try {
    return body();
  } catch (...) {
    const ErrorReport r = error_report(std::current_exception(), FieldWords::flag);
    // The engine's own resource errors say what to change; a bare allocation failure gets the CLI's advice.
    const bool bare = r.code == ExitCode::resources && r.message.rfind("out of memory", 0) == 0;
    return fail(bare ? r.message + "; " + oom_fix : r.message, r.code);
  }
}

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_armed{false};  // install_interrupt_handler() was called: a signal becomes the flag

// The one decision for SIGINT/SIGTERM: the first one, once armed, is the flag the work polls; one
// before that (loading) or a second one (the user insists) ends the process by the signal's default
// action. Nothing is half-written either way: every writer renames a complete temporary file.
// Async-signal-safe: atomics, signal(), pthread_sigmask() and raise() only.
void take_signal(int sig) {
  if (g_armed.load() && !g_interrupted.exchange(true)) return;
  std::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  std::raise(sig);
}

extern "C" void on_signal(int sig) { take_signal(sig); }

sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void start_signal_watcher() {
  // Why a thread: a handler runs on whichever thread the kernel picks, in the middle of whatever it
  // is doing. Run on a thread inside oneDNN's convolutions, it corrupted the heap now and then
  // (about 1 Ctrl-C in 20 at 48 px; glibc aborted with "corrupted size vs. prev_size"). Blocked
  // here, before LibTorch starts its threads, the signals reach no thread that computes; the
  // watcher takes them with sigwait, outside any signal context.
  const sigset_t set = interrupt_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Threads started before main (a BLAS library's own) still take them: they get the same decision.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) == 0) take_signal(sig);
    }
  }).detach();
}

void install_interrupt_handler() { g_armed.store(true); }

bool interrupt_requested() { return g_interrupted.load(); }
void reset_interrupt() { g_interrupted.store(false); }
void request_interrupt() { g_interrupted.store(true); }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

ProgressDisplay::ProgressDisplay(int print_every, bool quiet, std::string label)
    : print_every_(print_every), quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), label_(std::move(label)) {}

bool ProgressDisplay::due(int iteration, int total) const {
  if (quiet_) return false;
  if (tty_) {
    return iteration == total || !drawn_ ||
           std::chrono::steady_clock::now() - last_draw_ >= std::chrono::milliseconds(100);
  }
  return print_every_ > 0 && (iteration % print_every_ == 0 || iteration == total || iteration == 1);
}

void ProgressDisplay::update(int iteration, int total, double loss, double seconds) {
  if (!due(iteration, total)) return;
  const double rate = seconds > 0 ? iteration / seconds : 0;
  const double eta = rate > 0 ? (total - iteration) / rate : -1;
  if (tty_) {
    last_draw_ = std::chrono::steady_clock::now();
    const int width = 24;
    const int filled = total > 0 ? std::min(width, iteration * width / total) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::fprintf(stderr, "\r\x1b[K%s%3d%% [%s] %d/%d  loss %.4g  %.2f it/s  ETA %s", label_.c_str(),
                 total > 0 ? iteration * 100 / total : 100, bar.c_str(), iteration, total, loss, rate,
                 format_duration(eta).c_str());
    std::fflush(stderr);
    drawn_ = true;
  } else {
    spdlog::info("{}iteration {}/{}  loss {:.6g}  {:.2f} it/s  ETA {}", label_, iteration, total, loss, rate,
                 format_duration(eta));
  }
}

void ProgressDisplay::update_transfer(uint64_t done, uint64_t total, double seconds) {
  if (quiet_ || !tty_ || total == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (done != total && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1;
  const int width = 24;
  const int filled = static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * width);
  std::string bar(static_cast<size_t>(std::min(filled, width)), '#');
  bar.append(static_cast<size_t>(width - std::min(filled, width)), '.');
  std::fprintf(stderr, "\r\x1b[K%s%3d%% [%s] %.1f/%.1f MB  %.1f MB/s  ETA %s", label_.c_str(),
               static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)), bar.c_str(), done / 1e6,
               total / 1e6, rate / 1e6, format_duration(eta).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressDisplay::finish() {
  if (tty_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

double peak_rss_mib() {
  // VmHWM is this program's own high-water mark. getrusage's ru_maxrss is not: Linux carries it over
  // exec, so a stylize started from a large process (a Python script, a service) reported the
  // parent's size as its own peak.
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    // "VmHWM:    123456 kB"; strtod (not stod) so that an odd line falls through instead of throwing
    if (line.rfind("VmHWM:", 0) == 0) {
      const double kib = std::strtod(line.c_str() + 6, nullptr);
      if (kib > 0) return kib / 1024.0;
    }
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

namespace {
const char* kImageExtensions[] = {"jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"};
}  // namespace

bool has_image_extension(const fs::path& p) {
  const std::string ext = file_extension(p.string());
  return std::find(std::begin(kImageExtensions), std::end(kImageExtensions), ext) != std::end(kImageExtensions);
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, bool recursive) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      auto add = [&](const fs::directory_entry& e) {
        if (e.is_regular_file() && has_image_extension(e.path())) found.push_back(e.path().string());
      };
      if (recursive) {
        for (const auto& e : fs::recursive_directory_iterator(in)) add(e);
      } else {
        for (const auto& e : fs::directory_iterator(in)) add(e);
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) spdlog::warn("folder '{}' holds no images", in);
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(in);  // a missing file becomes a failed job with its own message
    }
  }
  return out;
}

namespace {

// Whether `inner` is `folder` or lies below it, both resolved to absolute paths without links.
bool within(const std::string& inner, const std::string& folder) {
  std::error_code ec;
  const fs::path f = fs::weakly_canonical(fs::absolute(folder, ec), ec);
  if (ec) return false;
  for (fs::path p = fs::weakly_canonical(fs::absolute(inner, ec), ec); !ec && !p.empty(); p = p.parent_path()) {
    if (p == f) return true;
    if (p == p.parent_path()) break;
  }
  return false;
}

}  // namespace

void check_ext_writable(const std::string& ext) {
  if (!is_writable_image_extension(ext)) {
    throw OutputError("--ext " + in_quotes(ext) + " is not a format this build writes; use png, jpg, webp, tif or bmp");
  }
}

void check_out_dir_exists(const std::string& out_dir) {
  std::error_code ec;
  if (fs::is_directory(out_dir, ec)) return;
  if (fs::exists(out_dir, ec)) {
    throw OutputError("--out-dir " + in_quotes(out_dir) + " is a file, not a folder; give a folder for the outputs");
  }
  throw OutputError("output folder " + in_quotes(out_dir) + " does not exist; create it first (mkdir -p " +
                    as_literal(shell_word(out_dir)) + ")");
}

void check_out_dir_outside_inputs(const std::string& out_dir, const std::vector<std::string>& inputs, bool recursive,
                                  const std::string& what, const std::string& fix) {
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!fs::is_directory(input, ec)) continue;
    const bool same = same_file(out_dir, input);
    if (same || (recursive && within(out_dir, input))) {
      throw OutputError(what + " " + in_quotes(out_dir) + " is " + (same ? "" : "inside ") + "the folder " +
                        in_quotes(input) + " the images are read from: the next run would take this run's outputs "
                        "as inputs; " + fix);
    }
  }
}

}  // namespace stylize::cli
