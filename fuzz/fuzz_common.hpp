// What the fuzz targets share: a file with given bytes (for readers that take a path), and the
// one rule they all follow — an input is refused with stylize's own error (or, for JSON, the JSON
// library's), never anything else; any other exception escapes and libFuzzer reports it.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace stylize::fuzz {

// An in-memory file holding `bytes`, named by a /proc path that open() accepts; closed on scope exit.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) : fd_(memfd_create("stylize-fuzz", 0)) {
    for (size_t at = 0; fd_ >= 0 && at < size;) {
      const ssize_t n = write(fd_, data + at, size - at);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() {
    if (fd_ >= 0) close(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace stylize::fuzz
