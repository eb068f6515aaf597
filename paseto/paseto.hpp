// PASETO v4.public (Ed25519) tokens and detached Ed25519 signatures.
//
// Spec: https://github.com/paseto-standard/paseto-spec, docs/01-Protocol-
// Versions/Version4.md. Only v4.public is implemented; every other version
// and purpose is rejected.
#pragma once

#include "paseto/base64url.hpp"
#include "paseto/keys.hpp"
#include "paseto/result.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace seatledger::paseto {

/// The header of every token this library makes or accepts.
inline constexpr std::string_view v4_public_header = "v4.public.";

/// Pre-authentication encoding: LE64(count) || for each piece LE64(length) ||
/// piece, where LE64 clears the most significant bit.
std::string pae(const std::vector<std::string_view>& pieces);

/// What a verified token carries.
struct verified_token {
  std::string payload;
  /// Empty when the token has no footer.
  std::string footer;
};

/// Signs `payload` into a `v4.public.` token: the signature covers
/// PAE(header, payload, footer, implicit_assertion). The footer is appended
/// only when not empty. Returns an empty string only if libcrypto fails
/// internally; a token is never empty otherwise.
std::string sign_v4_public(const secret_key& key, std::string_view payload,
                           std::string_view footer = {},
                           std::string_view implicit_assertion = {});

/// Verifies a `v4.public.` token and returns its payload and footer.
/// Errors: `invalid_header` (anything but exactly `v4.public.`),
/// `invalid_token` (wrong number of parts, an empty footer part, a body too
/// short to hold a signature), `invalid_base64`, `bad_signature`.
result<verified_token>
verify_v4_public(const public_key& key, std::string_view token,
                 std::string_view implicit_assertion = {});

/// The decoded footer of a structurally valid `v4.public.` token, without
/// verifying anything: only for choosing the key to verify with. Checks what
/// `verify_v4_public` checks before the signature, with the same errors.
result<std::string> unverified_footer(std::string_view token);

/// Ed25519 signature over `bytes`, base64url-encoded (86 characters). Returns
/// an empty string only if libcrypto fails internally.
std::string sign_detached(const secret_key& key, std::string_view bytes);

/// Checks a signature made by `sign_detached`. The signature must be strict
/// base64url of exactly 64 bytes.
bool verify_detached(const public_key& key, std::string_view bytes,
                     std::string_view signature_b64url);

} // namespace seatledger::paseto
