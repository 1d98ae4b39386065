#include "stylize/weights_tools/checksum.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <stdexcept>
#include <vector>

#include "stylize/error.hpp"

namespace stylize {

struct Digest::Context {
  EVP_MD_CTX* md = nullptr;
  ~Context() { EVP_MD_CTX_free(md); }
};

Digest::Digest(Kind kind) : ctx_(std::make_unique<Context>()) {
  ctx_->md = EVP_MD_CTX_new();
  const EVP_MD* type = kind == Kind::md5 ? EVP_md5() : EVP_sha256();
  if (!ctx_->md || !type || EVP_DigestInit_ex(ctx_->md, type, nullptr) != 1) {
    throw std::runtime_error(std::string("libcrypto cannot start a ") + (kind == Kind::md5 ? "MD5" : "SHA-256") +
                             " digest (a FIPS-only OpenSSL configuration?)");
  }
}

Digest::~Digest() = default;
Digest::Digest(Digest&&) noexcept = default;
Digest& Digest::operator=(Digest&&) noexcept = default;

void Digest::update(const void* data, std::size_t size) {
  if (size > 0) EVP_DigestUpdate(ctx_->md, data, size);
}

std::string Digest::hex() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &n);
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s.push_back(digits[out[i] >> 4]);
    s.push_back(digits[out[i] & 15]);
  }
  return s;
}

FileDigests digest_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + in_quotes(path) + " to check its checksum");
  Md5 md5;
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    md5.update(buf.data(), n);
    sha.update(buf.data(), n);
  }
  return {md5.hex(), sha.hex()};
}

}  // namespace stylize
