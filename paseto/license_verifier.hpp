// Offline license keys: PASETO v4.public tokens whose footer names the
// signing key, {"kid":"k4.pid.…"}, and whose claims carry RFC 3339 `nbf` and
// `exp` times. Verifiable with the public key alone, no network.
#pragma once

#include "paseto/keys.hpp"
#include "paseto/result.hpp"
#include "paseto/trusted_keys.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace seatledger::paseto {

/// Why a license key is not valid.
enum class license_reason {
  /// Not a v4.public token, bad encoding, footer not the expected JSON,
  /// claims not a JSON object, `exp` / `nbf` missing or not RFC 3339.
  bad_format,
  /// No `kid` in the footer (or no footer), or the kid is not trusted.
  unknown_key,
  /// The signature does not verify with the key the kid names.
  bad_signature,
  /// `exp` lies in the past by more than the allowed clock skew.
  expired,
  /// `nbf` lies in the future by more than the allowed clock skew.
  not_yet_valid,
};

/// Exactly the enumerator's name, e.g. "not_yet_valid": these strings are
/// part of the HTTP API and of the CLI's output.
std::string_view to_string(license_reason x) noexcept;

/// The outcome of `verify_license`.
struct license_check {
  bool valid = false;
  /// Empty if and only if `valid`.
  std::optional<license_reason> reason;
  /// The signed claims exactly as signed, once the signature has verified
  /// and they parsed as a JSON object (so also for `expired` and
  /// `not_yet_valid`); empty otherwise, since unverified claims are not to
  /// be shown as if they meant anything.
  std::string claims_json;
  /// The k4.pid of the key that verified the signature; empty when no
  /// signature was verified.
  std::string key_id;
};

/// Verifies a license key, in this order: the header must be exactly
/// `v4.public.`, the token must decode, the footer must be a JSON object
/// whose "kid" is a trusted k4.pid, the signature must verify (before any
/// claim is looked at), the claims must be a JSON object with RFC 3339
/// string claims `exp` and `nbf`, and `now` must lie in [nbf - clock_skew,
/// exp + clock_skew). The implicit assertion is empty.
license_check
verify_license(const trusted_keys& keys, std::string_view token,
               std::chrono::system_clock::time_point now,
               std::chrono::seconds clock_skew = std::chrono::seconds{0});

/// Signs `claims_json` as a license key with the footer
/// {"kid":"<k4.pid of the key's public key>"} and an empty implicit
/// assertion. The claims are signed byte for byte as given, but must be a
/// JSON object with RFC 3339 `exp` and `nbf` strings so that no license is
/// issued that `verify_license` would reject as malformed. Errors:
/// `invalid_json`, `invalid_time`, `crypto_failure`.
result<std::string> sign_license(const secret_key& key,
                                 std::string_view claims_json);

} // namespace seatledger::paseto
