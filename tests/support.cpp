#include "support.hpp"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>
#include <thread>

#include "stylize/safetensors.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"

extern char** environ;

namespace stylize::test {

const Stylizer& synthetic_stylizer(int last_index) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<Stylizer>> made;
  std::lock_guard<std::mutex> lock(mu);
  auto& s = made[last_index];
  if (!s) {
    Vgg19Weights w;
    w.params = synthetic_vgg19(1);
    s = std::make_unique<Stylizer>(w, Preprocessing::caffe, Pooling::max, last_index, at::Device(at::kCPU));
  }
  return *s;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/stylize-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> TempDir::list() const {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// Seed 1's synthetic weights for the layers up to `last_index`, written once into `dir`.
std::string write_synthetic(const TempDir& dir, const std::string& name, int last_index) {
  const std::string p = dir / name;
  const auto params = synthetic_vgg19(1);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& n : vgg19_parameter_names(last_index)) tensors.emplace_back(n, params.at(n));
  write_safetensors(p, tensors, {{"preprocessing", "caffe"}, {"source", "synthetic seed 1"}});
  return p;
}

}  // namespace

const std::string& synthetic_weights_file() {
  static TempDir dir;
  static const std::string path = write_synthetic(dir, "vgg19-synthetic.safetensors", 36);
  return path;
}

const std::string& synthetic_prefix_weights_file() {
  static TempDir dir;
  static const std::string path = write_synthetic(dir, "vgg19-conv1-3-synthetic.safetensors", 16);
  return path;
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

RunResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  TempDir io;
  const std::string out_path = io / "stdout", err_path = io / "stderr";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (const auto& e : env) {
    const auto key = e.substr(0, e.find('=') + 1);
    env_strings.erase(std::remove_if(env_strings.begin(), env_strings.end(),
                                     [&](const std::string& s) { return s.rfind(key, 0) == 0; }),
                      env_strings.end());
    env_strings.push_back(e);
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data()) != 0) {
    throw std::runtime_error("cannot start " + argv[0]);
  }
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    const auto b = read_bytes(p);
    return std::string(b.begin(), b.end());
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

int spawn_background(const std::vector<std::string>& argv, const std::string& stderr_path) {
  // Through util-linux's setpriv (it execs the program: the pid stays the program's): the kernel
  // kills the program when this test process ends, however it ends. An orphaned `stylize serve`
  // keeps ctest's output pipe open, and ctest then waits for it until its timeout (803 s once).
  static const char* const kSetpriv = "/usr/bin/setpriv";
  std::vector<std::string> line;
  if (access(kSetpriv, X_OK) == 0) line = {kSetpriv, "--pdeathsig", "KILL", "--"};
  line.insert(line.end(), argv.begin(), argv.end());
  std::vector<char*> args;
  for (const auto& a : line) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int wait_exit_code(int pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  const auto b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string wait_for_log(const std::string& path, const std::string& pattern, double seconds) {
  const std::regex re(pattern);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  do {
    const std::string text = read_text(path);
    std::smatch m;
    if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < until);
  return "";
}

int wait_for_listening(const std::string& log) {
  const std::string port = wait_for_log(log, "listening on http://127\\.0\\.0\\.1:([0-9]+)", 20);
  return port.empty() ? 0 : std::stoi(port);
}

namespace {

std::atomic<int> host_reads{0};

std::unique_ptr<at::ObserverContext> count_host_reads(const at::RecordFunction& fn) {
  const char* name = fn.name();
  for (const char* read : {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero", "aten::equal"}) {
    if (std::strcmp(name, read) == 0) ++host_reads;
  }
  return nullptr;
}

}  // namespace

int host_reads_during(const std::function<void()>& run) {
  host_reads = 0;
  const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count_host_reads));
  run();
  at::removeCallback(handle);
  return host_reads.load();
}

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

double rel_diff(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

}  // namespace stylize::test
