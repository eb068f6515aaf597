// Internal: the few Ed25519 operations the library needs, on OpenSSL 3's EVP
// interface. Kept out of the public headers so that users never see OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace seatledger::paseto::detail {

using ed25519_signature = std::array<std::uint8_t, 64>;

using ed25519_public = std::array<std::uint8_t, 32>;

std::optional<ed25519_public>
ed25519_public_from_seed(const std::uint8_t* seed);

std::optional<ed25519_signature> ed25519_sign(const std::uint8_t* seed,
                                              std::string_view message);

bool ed25519_verify(const std::uint8_t* public_key, std::string_view message,
                    const std::uint8_t* signature);

/// Constant-time comparison.
bool equal_bytes(const void* x, const void* y, std::size_t size);

/// Overwrites memory in a way the optimizer cannot drop.
void wipe(void* data, std::size_t size);

} // namespace seatledger::paseto::detail
