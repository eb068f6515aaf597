#include "paseto/blake2b.hpp"

#include <algorithm>
#include <cstring>

namespace seatledger::paseto {

namespace {

constexpr std::array<std::uint64_t, 8> iv = {
  0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
  0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
  0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

constexpr std::uint8_t sigma[12][16] = {
  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
  {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
  {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
  {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
  {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
  {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
  {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
  {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
  {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
  {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
  {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

constexpr std::uint64_t rotr(std::uint64_t x, int n) {
  return (x >> n) | (x << (64 - n));
}

std::uint64_t load64_le(const std::uint8_t* p) {
  std::uint64_t x = 0;
  for (int i = 7; i >= 0; --i)
    x = (x << 8) | p[i];
  return x;
}

void mix(std::uint64_t* v, int a, int b, int c, int d, std::uint64_t x,
         std::uint64_t y) {
  v[a] = v[a] + v[b] + x;
  v[d] = rotr(v[d] ^ v[a], 32);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 24);
  v[a] = v[a] + v[b] + y;
  v[d] = rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 63);
}

} // namespace

result<blake2b_state> blake2b_state::make(std::size_t output_size) {
  if (output_size == 0 || output_size > max_output_size)
    return errc::invalid_argument;
  return blake2b_state{output_size};
}

blake2b_state::blake2b_state(std::size_t output_size)
    : h_(iv), output_size_(output_size) {
  // Parameter block word 0: digest length, key length 0, fanout 1, depth 1.
  h_[0] ^= 0x01010000ULL ^ static_cast<std::uint64_t>(output_size);
}

void blake2b_state::update(const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    // A full buffer is compressed only once more input arrives, because the
    // final block must be compressed with the last-block flag set.
    if (buf_len_ == block_size) {
      t0_ += block_size;
      if (t0_ < block_size)
        ++t1_;
      compress(false);
      buf_len_ = 0;
    }
    auto n = std::min(size, block_size - buf_len_);
    std::memcpy(buf_.data() + buf_len_, data, n);
    buf_len_ += n;
    data += n;
    size -= n;
  }
}

void blake2b_state::update(std::string_view bytes) {
  update(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::string blake2b_state::finish() {
  t0_ += buf_len_;
  if (t0_ < buf_len_)
    ++t1_;
  std::memset(buf_.data() + buf_len_, 0, block_size - buf_len_);
  compress(true);
  std::string out(output_size_, '\0');
  for (std::size_t i = 0; i < output_size_; ++i)
    out[i] = static_cast<char>((h_[i / 8] >> (8 * (i % 8))) & 0xff);
  return out;
}

void blake2b_state::compress(bool last) {
  std::uint64_t v[16];
  std::uint64_t m[16];
  for (int i = 0; i < 8; ++i) {
    v[i] = h_[i];
    v[i + 8] = iv[i];
  }
  v[12] ^= t0_;
  v[13] ^= t1_;
  if (last)
    v[14] = ~v[14];
  for (int i = 0; i < 16; ++i)
    m[i] = load64_le(buf_.data() + 8 * i);
  for (const auto& s : sigma) {
    mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (int i = 0; i < 8; ++i)
    h_[i] ^= v[i] ^ v[i + 8];
}

result<std::string> blake2b(std::string_view data, std::size_t output_size) {
  auto state = blake2b_state::make(output_size);
  if (!state)
    return state.error();
  state->update(data);
  return state->finish();
}

} // namespace seatledger::paseto
