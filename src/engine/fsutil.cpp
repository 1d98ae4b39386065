#include "stylize/fsutil.hpp"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "stylize/error.hpp"

namespace stylize {
namespace {

std::string parent_folder(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string shell_word(const std::string& path) {
  // No plain quoting holds a control character, and it holds a quote only as '\'', which reads
  // worse than the $'...' in_quotes writes for the same name in the same message.
  if (has_control_characters(path) || path.find('\'') != std::string::npos) return ansi_c_string(path);
  const bool plain = !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("_./+,:=@%-", c) != nullptr);
  });
  if (plain) return path;
  return "'" + path + "'";
}

namespace {

// N when `p` is this process's own descriptor N by a path (/dev/fd/N, /proc/self/fd/N,
// /proc/PID/fd/N); -1 otherwise. Those are links the kernel makes up: their text is not a path
// ("pipe:[123]"), so they are recognised by name before any link is read.
int own_descriptor(const std::string& p) {
  for (const std::string& prefix : {std::string("/dev/fd/"), std::string("/proc/self/fd/"),
                                    "/proc/" + std::to_string(getpid()) + "/fd/"}) {
    if (p.rfind(prefix, 0) != 0) continue;
    const std::string digits = p.substr(prefix.size());
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoi(digits);
  }
  return -1;
}

// Where a write to `path` lands: `path` with its chain of symbolic links followed (a relative link
// read from its own folder), or one of this process's descriptors ("-" is standard output).
struct WriteTarget {
  std::string path;
  int fd = -1;
};

WriteTarget resolve_write_target(const std::string& path) {
  if (path == "-") return {path, STDOUT_FILENO};
  std::string p = path;
  for (int hop = 0; hop <= 40; ++hop) {  // 40: Linux's own limit on links followed in one lookup
    if (const int fd = own_descriptor(p); fd >= 0) return {p, fd};
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return {p, -1};
    std::vector<char> link(PATH_MAX);
    const ssize_t n = readlink(p.c_str(), link.data(), link.size());
    if (n <= 0 || static_cast<std::size_t>(n) >= link.size()) return {p, -1};
    const std::string to(link.data(), static_cast<std::size_t>(n));
    p = to[0] == '/' ? to : parent_folder(p) + "/" + to;
  }
  throw OutputError("cannot write " + in_quotes(path) + ": too many levels of symbolic links; give the file's own path");
}

// A descriptor, or an existing path that is neither a regular file nor a folder (a device, a FIFO).
bool is_stream(const WriteTarget& t) {
  struct stat st {};
  return t.fd >= 0 || (stat(t.path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode));
}

// Writes all of `bytes` to `fd`. A reader that went away (a closed pipe) is EPIPE here, not the
// SIGPIPE that would end the process unannounced: the signal is blocked on this thread while
// writing and a pending one consumed.
void write_stream(const std::string& path, int fd, const std::string& bytes) {
  sigset_t pipe_only, before;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
  int err = 0;
  for (std::size_t done = 0; done < bytes.size() && err == 0;) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno != EINTR) err = errno;
    if (n > 0) done += static_cast<std::size_t>(n);
  }
  if (err == EPIPE) {
    const timespec now{0, 0};
    sigtimedwait(&pipe_only, nullptr, &now);
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (err != 0) {
    throw OutputError("cannot write " + in_quotes(path) + ": " + std::strerror(err) +
                      (err == EPIPE ? " (its reader closed it before the end)" : ""));
  }
}

void check_folder_of(const std::string& path, const std::string& target) {
  const std::string folder = parent_folder(target);
  struct stat st {};
  if (stat(folder.c_str(), &st) != 0) {
    throw OutputError("cannot write " + in_quotes(path) + ": folder " + in_quotes(folder) +
                      " does not exist; create it first (mkdir -p " + as_literal(shell_word(folder)) + ")");
  }
  if (!S_ISDIR(st.st_mode)) {
    throw OutputError("cannot write " + in_quotes(path) + ": " + in_quotes(folder) + " is not a folder");
  }
  if (access(folder.c_str(), W_OK | X_OK) != 0) {
    throw OutputError("cannot write " + in_quotes(path) + ": folder " + in_quotes(folder) +
                      " is not writable (" + std::strerror(errno) + "); pick another output path");
  }
  if (stat(target.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw OutputError("cannot write " + in_quotes(path) + ": it is a folder; give a file name");
  }
}

}  // namespace

void check_output_folder(const std::string& path) {
  const WriteTarget t = resolve_write_target(path);
  if (!is_stream(t)) check_folder_of(path, t.path);
}

namespace {

// An existing file's device and inode ("" when there is no such file).
std::string inode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "";
  return "inode " + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// What makes a file itself: its device and inode where it exists, else its resolved absolute path.
std::string file_identity(const std::string& path) {
  if (std::string inode = inode_of(path); !inode.empty()) return inode;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return "path " + (ec ? path : p.string());
}

}  // namespace

bool same_file(const std::string& a, const std::string& b) { return file_identity(a) == file_identity(b); }

void check_outputs_spare_inputs(const NamedPaths& outputs, const NamedPaths& inputs, const std::string& fix) {
  std::map<std::string, const std::string*> read, written;  // identity -> what
  for (const auto& [what, path] : inputs) {  // one that is not there cannot be lost: its reader says it is missing
    if (std::string inode = path.empty() ? "" : inode_of(path); !inode.empty()) read.emplace(inode, &what);
  }
  for (const auto& [what, path] : outputs) {
    if (path.empty()) continue;
    const std::string id = file_identity(path);
    if (auto it = read.find(id); it != read.end()) {
      throw OutputError(what + " " + in_quotes(path) + " is " + *it->second + ": writing it would destroy that file; " +
                        (fix.empty() ? "give " + what + " another path" : fix));
    }
    if (auto [it, fresh] = written.emplace(id, &what); !fresh) {
      throw OutputError(what + " " + in_quotes(path) + " is also " + *it->second + "; give each its own file");
    }
  }
}

StagedFile::StagedFile(const std::string& path, const void* data, std::size_t size) : path_(path) {
  const WriteTarget t = resolve_write_target(path);
  target_ = t.path;
  if (is_stream(t)) {
    stream_fd_ = t.fd;
    held_.assign(static_cast<const char*>(data), size);
    return;
  }
  check_folder_of(path, target_);
  std::string tmp = target_ + ".tmp-XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) {
    throw OutputError("cannot write " + in_quotes(path) + ": " + std::strerror(errno));
  }
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    unlink(name.data());
    const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
    throw OutputError("cannot write " + in_quotes(path) + ": " + what + ": " + std::strerror(err) +
                      (full ? " (nothing was left there); free space, or raise the quota or file-size limit, and run again" : ""));
  };
  const char* p = static_cast<const char*>(data);
  std::size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // mkstemp creates 0600; give the file the permissions a plain open() would have.
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  if (fsync(fd) != 0) fail("fsync failed");
  if (close(fd) != 0) {
    int err = errno;
    unlink(name.data());
    throw OutputError("cannot write " + in_quotes(path) + ": " + std::strerror(err));
  }
  temp_ = name.data();
}

StagedFile::~StagedFile() {
  if (!temp_.empty()) unlink(temp_.c_str());
}

void StagedFile::commit() {
  if (temp_.empty()) {  // a stream (a file's commit() is done once: temp_ is then empty and held_ too)
    int fd = stream_fd_;
    if (fd < 0 && !held_.empty()) {
      fd = open(target_.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) throw OutputError("cannot write " + in_quotes(path_) + ": " + std::strerror(errno));
    } else if (fd >= 0 && fcntl(fd, F_GETFD) == -1) {
      throw OutputError("cannot write " + in_quotes(path_) + ": descriptor " + std::to_string(fd) + " is not open");
    }
    const std::string bytes = std::move(held_);
    held_.clear();
    try {
      write_stream(path_, fd, bytes);
    } catch (...) {
      if (fd != stream_fd_) close(fd);
      throw;
    }
    if (fd != stream_fd_) close(fd);
    return;
  }
  if (rename(temp_.c_str(), target_.c_str()) != 0) {
    throw OutputError("cannot write " + in_quotes(path_) + ": rename failed: " + std::strerror(errno));
  }
  temp_.clear();
}

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  StagedFile(path, data, size).commit();
}

bool read_file(const std::string& path, std::vector<std::uint8_t>& out, std::string& why) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    why = errno == ENOENT ? "no such file" : std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    why = "it is a folder, not a file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  out.resize(static_cast<std::size_t>(st.st_size));
  if (!out.empty() && !in.read(reinterpret_cast<char*>(out.data()), st.st_size)) {
    why = "read failed";
    return false;
  }
  return true;
}

std::string file_extension(const std::string& path) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::string numbered_path(const std::string& path, long number) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
    return path + "_" + std::to_string(number);
  }
  return path.substr(0, dot) + "_" + std::to_string(number) + path.substr(dot);
}

}  // namespace stylize
