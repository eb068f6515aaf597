// Signed JSON documents: the usage export and the revocation list.
//
// A signed document is a JSON object with two extra members, "key_id" (the
// k4.pid of the signing key) and "signature" (unpadded base64url of the
// Ed25519 signature). The signature covers the exact bytes of the "rest", the
// object without those two members, in this canonical form:
//
//   nlohmann::json's dump() with default arguments, i.e. no whitespace at
//   all, object members sorted by key (byte-wise, std::map order),
//   non-ASCII characters as raw UTF-8 rather than \u escapes, control
//   characters escaped as \n, \t, ... or \u00XX, '/' unescaped, integers as
//   plain digits and floating point numbers in their shortest round-trip
//   form (always with a '.' or exponent, e.g. 1.0).
//
// A verifier parses the document, removes "key_id" and "signature" and dumps
// the rest again. That only reproduces the signed bytes if the signer signed
// the canonical form, so sign_json_document canonicalizes before signing.
// Verifiers in other languages must produce the same bytes (sorted keys, no
// whitespace); keeping documents to strings, integers, booleans, null, arrays
// and objects avoids any doubt about number formatting.
#pragma once

#include <string>
#include <string_view>

#include "paseto/keys.hpp"
#include "paseto/result.hpp"
#include "paseto/trusted_keys.hpp"

namespace seatledger::paseto {

/// The result of verifying a signed JSON document.
struct verified_document {
  /// The canonical rest: exactly the bytes that were signed.
  std::string rest_json;
  /// The k4.pid of the key that signed it.
  std::string key_id;
};

/// Canonicalizes `rest_json` (a JSON object without "key_id" and "signature"
/// members), signs the canonical bytes and returns the canonical document
/// with "key_id" and "signature" added. Errors: `invalid_json` (not an
/// object, or already has one of the two members), `crypto_failure`.
result<std::string> sign_json_document(const secret_key& key,
                                       std::string_view rest_json);

/// Verifies a document made by `sign_json_document`. Errors: `invalid_json`
/// (not a JSON object), `not_signed` ("key_id" / "signature" missing or not
/// strings), `unknown_key` (key_id not trusted), `bad_signature`.
result<verified_document> verify_json_document(const trusted_keys& keys,
                                               std::string_view document);

} // namespace seatledger::paseto
