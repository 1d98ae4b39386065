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
void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes);
bool exists(const std::string& path);

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out, err;
};
// Runs argv[0] with the arguments, capturing stdout and stderr (environment: current + `env`).
RunResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// Starts argv[0] in the background with stderr going to `stderr_path` (for tests that signal it);
// returns its pid, or -1 if it could not start.
int spawn_background(const std::vector<std::string>& argv, const std::string& stderr_path);
// Waits for it; the exit code, or 128 + signal.
int wait_exit_code(int pid);

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
