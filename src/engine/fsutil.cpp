#include "stylize/fsutil.hpp"

#include <fcntl.h>
#include <sys/stat.h>
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
  if (has_control_characters(path)) return ansi_c_string(path);  // no plain quoting can hold them
  const bool plain = !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("_./+,:=@%-", c) != nullptr);
  });
  if (plain) return path;
  std::string out = "'";
  for (const char c : path) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void check_output_folder(const std::string& path) {
  const std::string folder = parent_folder(path);
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
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw OutputError("cannot write " + in_quotes(path) + ": it is a folder; give a file name");
  }
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

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  check_output_folder(path);
  std::string tmp = path + ".tmp-XXXXXX";
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
  if (rename(name.data(), path.c_str()) != 0) {
    int err = errno;
    unlink(name.data());
    throw OutputError("cannot write " + in_quotes(path) + ": rename failed: " + std::strerror(err));
  }
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
