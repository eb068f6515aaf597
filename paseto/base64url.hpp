// Unpadded base64url (RFC 4648 section 5), the only encoding PASETO and
// PASERK use.
#pragma once

#include "paseto/result.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace seatledger::paseto {

/// Encodes bytes as base64url without padding.
std::string base64url_encode(const std::uint8_t* data, std::size_t size);

/// Encodes bytes as base64url without padding.
std::string base64url_encode(std::string_view bytes);

/// Decodes unpadded base64url into bytes. Strict, because a token must have
/// exactly one spelling (otherwise a changed character could still verify):
/// rejects `=`, characters outside `A-Za-z0-9-_`, a length of 1 modulo 4 and
/// non-zero unused bits in the last character.
result<std::string> base64url_decode(std::string_view text);

} // namespace seatledger::paseto
