// PASERK serializations of v4 keys: k4.public, k4.secret and the key id
// k4.pid (https://github.com/paseto-standard/paserk).
#pragma once

#include "paseto/keys.hpp"
#include "paseto/result.hpp"

#include <string>
#include <string_view>

namespace seatledger::paseto {

inline constexpr std::string_view paserk_public_prefix = "k4.public.";

inline constexpr std::string_view paserk_secret_prefix = "k4.secret.";

inline constexpr std::string_view paserk_pid_prefix = "k4.pid.";

/// "k4.public." + base64url(32-byte public key).
std::string paserk_public(const public_key& key);

/// "k4.secret." + base64url(seed || public key).
std::string paserk_secret(const secret_key& key);

/// The key id: "k4.pid." + base64url(BLAKE2b-264("k4.pid." +
/// paserk_public(key))), 51 characters.
std::string paserk_pid(const public_key& key);

/// Parses a k4.public PASERK. Another version or type, bad base64url or a
/// decoded length other than 32 fail with `errc::invalid_paserk`.
result<public_key> parse_paserk_public(std::string_view paserk);

/// Parses a k4.secret PASERK. Another version or type, bad base64url or a
/// decoded length other than 64 fail with `errc::invalid_paserk`; a public
/// half that does not belong to the seed fails with `errc::invalid_key`.
result<secret_key> parse_paserk_secret(std::string_view paserk);

/// Whether `text` is well-formed as a k4.pid: the prefix and 33 bytes of
/// strict base64url.
bool is_paserk_pid(std::string_view text);

} // namespace seatledger::paseto
