// BLAKE2b (RFC 7693), unkeyed, with a variable output length.
//
// PASERK's k4.pid needs a 33-byte BLAKE2b. OpenSSL 3.0's EVP BLAKE2b512 has a
// fixed 64-byte output, and truncating it gives a different value: BLAKE2b
// mixes the output length into its initial state. Hence this small copy.
#pragma once

#include "paseto/result.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace seatledger::paseto {

/// Incremental unkeyed BLAKE2b.
class blake2b_state {
public:
  static constexpr std::size_t block_size = 128;
  static constexpr std::size_t max_output_size = 64;

  /// Fails with `errc::invalid_argument` unless 1 <= output_size <= 64.
  static result<blake2b_state> make(std::size_t output_size);

  void update(const std::uint8_t* data, std::size_t size);

  void update(std::string_view bytes);

  /// Returns the digest (`output_size` bytes). The state is spent afterwards.
  std::string finish();

private:
  explicit blake2b_state(std::size_t output_size);

  void compress(bool last);

  std::array<std::uint64_t, 8> h_;
  std::uint64_t t0_ = 0;
  std::uint64_t t1_ = 0;
  std::array<std::uint8_t, block_size> buf_{};
  std::size_t buf_len_ = 0;
  std::size_t output_size_;
};

/// One-shot unkeyed BLAKE2b of `data` with an `output_size`-byte digest
/// (1 to 64 bytes, else `errc::invalid_argument`).
result<std::string> blake2b(std::string_view data, std::size_t output_size);

} // namespace seatledger::paseto
