// Helpers shared by the test binaries: temporary folders, synthetic weights files, running the CLI.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace stylize {
class Stylizer;
}

namespace stylize::test {

// A fresh folder under $TMPDIR, removed with its contents when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> list() const;  // file names, sorted

 private:
  std::string path_;
};

// A Stylizer on the synthetic VGG19 (seed 1), caffe, max pooling, fp32 on the CPU, cut after
// `last_index`; made once per index and process.
const Stylizer& synthetic_stylizer(int last_index);

// A synthetic VGG19 safetensors file (seed 1, caffe metadata) made once per test process.
const std::string& synthetic_weights_file();
// The same network's first 8 convolutions only (conv1_1 … conv3_4), like the real shallow file.
const std::string& synthetic_prefix_weights_file();

std::vector<std::uint8_t> read_bytes(const std::string& path);
std::string read_text(const std::string& path);  // a whole file (a process's log); "" when missing
size_t count_of(const std::string& text, const std::string& what);  // occurrences, overlapping ones too
void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes);
bool exists(const std::string& path);

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out, err;
};
// Runs argv[0] with the arguments, capturing stdout and stderr (environment: current + `env`).
RunResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// Starts argv[0] in the background with stderr going to `stderr_path` (for tests that signal it);
// returns its pid, or -1 if it could not start. It is killed when the test process ends (where
// /usr/bin/setpriv exists: util-linux, on every Debian).
int spawn_background(const std::vector<std::string>& argv, const std::string& stderr_path);
// Waits for it; the exit code, or 128 + signal.
int wait_exit_code(int pid);
// Polls the file at `path` (a background process's log) every 50 ms for up to `seconds` until
// `pattern` matches; its first group, or "" when it never did.
std::string wait_for_log(const std::string& path, const std::string& pattern, double seconds);
// The port a `stylize serve` logging to `log` listens on; 0 when it never said within 20 s.
int wait_for_listening(const std::string& log);
// How many operations that read a tensor back to the host `run` makes on this thread (on CUDA each
// is a wait for the GPU): LibTorch's record-function hooks, counting _local_scalar_dense (item()),
// is_nonzero, nonzero and equal.
int host_reads_during(const std::function<void()>& run);
// A TCP port on 127.0.0.1 free a moment ago (for a server that cannot take port 0).
int free_loopback_port();

// What `f` throws as E, as its message; kNoError when it throws nothing (other exceptions escape).
inline const std::string kNoError = "(no error of the expected class)";
template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return kNoError;
}

// Relative difference |a - b| / max(|b|, tiny).
double rel_diff(double a, double b);

}  // namespace stylize::test
