#include "domain/identifiers.hpp"

#include <array>
#include <cstdint>
#include <openssl/evp.h>

namespace seatledger::domain {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

// Fields are length-prefixed so that no two different part lists hash alike
// ("ab","c" vs "a","bc").
std::array<std::uint8_t, 32>
sha256_parts(std::initializer_list<std::string_view> parts) {
  std::array<std::uint8_t, 32> digest{};
  auto* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (auto part : parts) {
    auto len = std::to_string(part.size());
    len.push_back(':');
    EVP_DigestUpdate(ctx, len.data(), len.size());
    EVP_DigestUpdate(ctx, part.data(), part.size());
  }
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx, digest.data(), &size);
  EVP_MD_CTX_free(ctx);
  return digest;
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
  std::array<std::uint8_t, 32> digest{};
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(),
             nullptr);
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
