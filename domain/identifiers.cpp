#include "domain/identifiers.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <openssl/evp.h>
#include <stdexcept>
#include <string>

namespace seatledger::domain {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

/// SHA-256 fetched once: OpenSSL 3 looks an algorithm up by name on every
/// EVP_DigestInit_ex(EVP_sha256()) (two thirds of a short digest's time in
/// a profile of the storage benchmark), and an explicitly fetched one may
/// be shared by threads.
const EVP_MD* sha256_algorithm() {
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return algorithm;
}

struct digest_context_deleter {
  void operator()(EVP_MD_CTX* ctx) const {
    EVP_MD_CTX_free(ctx);
  }
};

/// One context per thread, initialised again for every digest: creating
/// and freeing one per digest cost an allocation each time.
EVP_MD_CTX* digest_context() {
  thread_local std::unique_ptr<EVP_MD_CTX, digest_context_deleter> ctx;
  if (!ctx) // first use, or no memory the last time: tried again
    ctx.reset(EVP_MD_CTX_new());
  return ctx.get();
}

/// Digests what `feed` passes to its argument, a function taking each
/// piece in turn. Without SHA-256 (OpenSSL without its default provider)
/// or memory for a context no digest can be right, so that throws, as any
/// step OpenSSL reports failed does.
template<class Feed>
std::array<std::uint8_t, 32> sha256_of(Feed feed) {
  const auto* algorithm = sha256_algorithm();
  auto* ctx = digest_context();
  if (algorithm == nullptr || ctx == nullptr
      || EVP_DigestInit_ex(ctx, algorithm, nullptr) != 1)
    throw std::runtime_error{"OpenSSL cannot compute SHA-256"};
  bool updated = true;
  feed([ctx, &updated](std::string_view piece) {
    updated = updated && EVP_DigestUpdate(ctx, piece.data(), piece.size()) == 1;
  });
  std::array<std::uint8_t, 32> digest{};
  unsigned int size = 0;
  if (!updated || EVP_DigestFinal_ex(ctx, digest.data(), &size) != 1
      || size != digest.size())
    throw std::runtime_error{"OpenSSL cannot compute SHA-256"};
  return digest;
}

// Fields are length-prefixed so that no two different part lists hash alike
// ("ab","c" vs "a","bc").
std::array<std::uint8_t, 32>
sha256_parts(std::initializer_list<std::string_view> parts) {
  return sha256_of([parts](auto&& update) {
    for (auto part : parts) {
      auto len = std::to_string(part.size());
      len.push_back(':');
      update(len);
      update(part);
    }
  });
}

std::string uuid_text(const std::array<std::uint8_t, 32>& digest) {
  std::string result;
  result.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      result.push_back('-');
    result.push_back(hex_digits[digest[i] >> 4]);
    result.push_back(hex_digits[digest[i] & 0x0f]);
  }
  return result;
}

} // namespace

std::string derived_id(std::initializer_list<std::string_view> parts) {
  auto digest = sha256_parts(parts);
  digest[6] = static_cast<std::uint8_t>((digest[6] & 0x0f) | 0x80); // v8
  digest[8] = static_cast<std::uint8_t>((digest[8] & 0x3f) | 0x80); // variant
  return uuid_text(digest);
}

std::string applied_event_key(const event_key& key) {
  return uuid_text(sha256_parts({key.source, key.id}));
}

std::string sha256_hex(std::string_view data) {
  auto digest = sha256_of([data](auto&& update) { update(data); });
  std::string result;
  result.reserve(64);
  for (auto byte : digest) {
    result.push_back(hex_digits[byte >> 4]);
    result.push_back(hex_digits[byte & 0x0f]);
  }
  return result;
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace seatledger::domain
