#include "paseto/base64url.hpp"

namespace seatledger::paseto {

namespace {

// Branch-free in the value, after paragonie/constant_time_encoding: the same
// code decodes PASERK secret keys, and a table lookup indexed by secret bytes
// leaks them through the cache.

char encode6(int src) {
  int diff = 0x41;
  diff += ((25 - src) >> 8) & 6;
  diff -= ((51 - src) >> 8) & 75;
  diff -= ((61 - src) >> 8) & 13;
  diff += ((62 - src) >> 8) & 49;
  return static_cast<char>(src + diff);
}

// Returns -1 for a character outside the alphabet.
int decode6(int src) {
  int ret = -1;
  ret += (((0x40 - src) & (src - 0x5b)) >> 8) & (src - 64);
  ret += (((0x60 - src) & (src - 0x7b)) >> 8) & (src - 70);
  ret += (((0x2f - src) & (src - 0x3a)) >> 8) & (src + 5);
  ret += (((0x2c - src) & (src - 0x2e)) >> 8) & 63;
  ret += (((0x5e - src) & (src - 0x60)) >> 8) & 64;
  return ret;
}

} // namespace

std::string base64url_encode(const std::uint8_t* data, std::size_t size) {
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    int b0 = data[i];
    int b1 = data[i + 1];
    int b2 = data[i + 2];
    out += encode6(b0 >> 2);
    out += encode6(((b0 << 4) | (b1 >> 4)) & 63);
    out += encode6(((b1 << 2) | (b2 >> 6)) & 63);
    out += encode6(b2 & 63);
  }
  if (auto rest = size - i; rest == 1) {
    int b0 = data[i];
    out += encode6(b0 >> 2);
    out += encode6((b0 << 4) & 63);
  } else if (rest == 2) {
    int b0 = data[i];
    int b1 = data[i + 1];
    out += encode6(b0 >> 2);
    out += encode6(((b0 << 4) | (b1 >> 4)) & 63);
    out += encode6((b1 << 2) & 63);
  }
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  return base64url_encode(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                          bytes.size());
}

result<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1)
    return errc::invalid_base64;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  int err = 0;
  auto at = [&](std::size_t pos) {
    auto value = decode6(static_cast<unsigned char>(text[pos]));
    err |= value >> 8;
    // Masking keeps the shifts below defined even for an invalid character.
    return value & 63;
  };
  std::size_t i = 0;
  for (; i + 4 <= text.size(); i += 4) {
    auto c0 = at(i);
    auto c1 = at(i + 1);
    auto c2 = at(i + 2);
    auto c3 = at(i + 3);
    out += static_cast<char>(((c0 << 2) | (c1 >> 4)) & 0xff);
    out += static_cast<char>(((c1 << 4) | (c2 >> 2)) & 0xff);
    out += static_cast<char>(((c2 << 6) | c3) & 0xff);
  }
  if (auto rest = text.size() - i; rest == 2) {
    auto c0 = at(i);
    auto c1 = at(i + 1);
    out += static_cast<char>(((c0 << 2) | (c1 >> 4)) & 0xff);
    err |= -((c1 & 0x0f) != 0);
  } else if (rest == 3) {
    auto c0 = at(i);
    auto c1 = at(i + 1);
    auto c2 = at(i + 2);
    out += static_cast<char>(((c0 << 2) | (c1 >> 4)) & 0xff);
    out += static_cast<char>(((c1 << 4) | (c2 >> 2)) & 0xff);
    err |= -((c2 & 0x03) != 0);
  }
  if (err != 0)
    return errc::invalid_base64;
  return out;
}

} // namespace seatledger::paseto
