// Streaming MD5 and SHA-256 through OpenSSL's EVP digests (libcrypto, the library libcurl here is
// built on: audited and fuzzed, where a hand-written hash would be ours alone). MD5 is only for
// matching the checksums that Keras publishes for its weight files; SHA-256 for everything else.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace stylize {

class Digest {
 public:
  enum class Kind { md5, sha256 };
  explicit Digest(Kind kind);  // throws std::runtime_error when libcrypto has no such digest
  ~Digest();
  Digest(Digest&&) noexcept;
  Digest& operator=(Digest&&) noexcept;
  void update(const void* data, std::size_t size);
  std::string hex();  // lower-case hex of the digest; finishes it: call once

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

struct Md5 : Digest {
  Md5() : Digest(Kind::md5) {}
};
struct Sha256 : Digest {
  Sha256() : Digest(Kind::sha256) {}
};

// Hex digests of a whole file, read once; throws InputError if it cannot be read.
struct FileDigests {
  std::string md5, sha256;
};
FileDigests digest_file(const std::string& path);

}  // namespace stylize
