// Streaming MD5 and SHA-256, for verifying downloads (no crypto library dependency).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace stylize {

// The Merkle–Damgård frame both hashes share: 64-byte blocks, 0x80 padding, and the message length
// in bits at the end (big-endian for SHA-256, little-endian for MD5). Derived supplies block().
template <typename Derived, bool kBigEndianLength>
class BlockHash {
 public:
  void update(const void* data, std::size_t size);

 protected:
  void pad();  // appends padding and length; the final block has been processed afterwards
  uint8_t buf_[64];
  std::size_t used_ = 0;
  uint64_t total_ = 0;
};

class Sha256 : public BlockHash<Sha256, true> {
 public:
  Sha256();
  std::string hex();  // finishes; call once

 private:
  friend class BlockHash<Sha256, true>;
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
};

class Md5 : public BlockHash<Md5, false> {
 public:
  Md5();
  std::string hex();  // finishes; call once

 private:
  friend class BlockHash<Md5, false>;
  void block(const uint8_t* p);
  std::array<uint32_t, 4> h_;
};

// Hex digests of a whole file; throws InputError if it cannot be read.
struct FileDigests {
  std::string md5, sha256;
};
FileDigests digest_file(const std::string& path);

}  // namespace stylize
