// Streaming MD5 and SHA-256, for verifying downloads (no crypto library dependency).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace stylize {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  std::string hex();  // finishes; call once

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  uint8_t buf_[64];
  std::size_t used_ = 0;
  uint64_t total_ = 0;
};

class Md5 {
 public:
  Md5();
  void update(const void* data, std::size_t size);
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 4> h_;
  uint8_t buf_[64];
  std::size_t used_ = 0;
  uint64_t total_ = 0;
};

// Hex digests of a whole file; throws InputError if it cannot be read.
struct FileDigests {
  std::string md5, sha256;
};
FileDigests digest_file(const std::string& path);

}  // namespace stylize
