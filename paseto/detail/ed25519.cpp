#include "paseto/detail/ed25519.hpp"

#include <memory>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace seatledger::paseto::detail {

namespace {

struct pkey_deleter {
  void operator()(EVP_PKEY* ptr) const noexcept {
    EVP_PKEY_free(ptr);
  }
};

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* ptr) const noexcept {
    EVP_MD_CTX_free(ptr);
  }
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;

// Failures are reported as values; leaving them on OpenSSL's thread-local
// error queue would confuse unrelated code (e.g. TLS) that inspects it later.
template<class T>
T failed(T value) {
  ERR_clear_error();
  return value;
}

pkey_ptr private_pkey(const std::uint8_t* seed) {
  return pkey_ptr{
    EVP_PKEY_new_raw_private_key_ex(nullptr, "ED25519", nullptr, seed, 32)};
}

} // namespace

std::optional<ed25519_public>
ed25519_public_from_seed(const std::uint8_t* seed) {
  auto pkey = private_pkey(seed);
  if (!pkey)
    return failed(std::nullopt);
  ed25519_public out;
  auto len = out.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), out.data(), &len) != 1
      || len != out.size())
    return failed(std::nullopt);
  return out;
}

std::optional<ed25519_signature> ed25519_sign(const std::uint8_t* seed,
                                              std::string_view message) {
  auto pkey = private_pkey(seed);
  md_ctx_ptr ctx{EVP_MD_CTX_new()};
  if (!pkey || !ctx)
    return failed(std::nullopt);
  // Ed25519 hashes internally (PureEdDSA): no digest, one-shot only.
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr,
                            pkey.get(), nullptr)
      != 1)
    return failed(std::nullopt);
  ed25519_signature sig;
  auto len = sig.size();
  if (EVP_DigestSign(ctx.get(), sig.data(), &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size())
        != 1
      || len != sig.size())
    return failed(std::nullopt);
  return sig;
}

bool ed25519_verify(const std::uint8_t* public_key, std::string_view message,
                    const std::uint8_t* signature) {
  pkey_ptr pkey{EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr,
                                               public_key, 32)};
  md_ctx_ptr ctx{EVP_MD_CTX_new()};
  if (!pkey || !ctx)
    return failed(false);
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr,
                              pkey.get(), nullptr)
      != 1)
    return failed(false);
  if (EVP_DigestVerify(ctx.get(), signature, 64,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size())
      != 1)
    return failed(false);
  return true;
}

bool equal_bytes(const void* x, const void* y, std::size_t size) {
  return CRYPTO_memcmp(x, y, size) == 0;
}

void wipe(void* data, std::size_t size) {
  OPENSSL_cleanse(data, size);
}

} // namespace seatledger::paseto::detail
