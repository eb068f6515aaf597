#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "domain/time.hpp"

namespace seatledger::domain {

/// Identifiers (org, user, subscription, plan and charge ids) are non-empty
/// strings of at most 128 characters from `[A-Za-z0-9._:@/-]`.
constexpr std::size_t max_identifier_length = 128;

constexpr bool is_identifier_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
         || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
         || c == '@' || c == '/' || c == '-';
}

constexpr bool is_valid_identifier(std::string_view text) {
  if (text.empty() || text.size() > max_identifier_length)
    return false;
  for (auto c : text)
    if (!is_identifier_char(c))
      return false;
  return true;
}

/// Identifies an upstream event: `(source, id)` is unique per event; `type`
/// and `time` travel with it because the ledger names its causing event.
struct event_ref {
  std::string source;
  std::string id;
  std::string type;
  timestamp time;

  friend bool operator==(const event_ref& x, const event_ref& y) {
    return x.source == y.source && x.id == y.id && x.type == y.type
           && x.time == y.time;
  }
};

/// The de-duplication key of an upstream event.
struct event_key {
  std::string source;
  std::string id;

  friend bool operator==(const event_key& x, const event_key& y) {
    return x.source == y.source && x.id == y.id;
  }
  friend bool operator<(const event_key& x, const event_key& y) {
    return x.source < y.source || (x.source == y.source && x.id < y.id);
  }
};

inline event_key key_of(const event_ref& ref) {
  return {ref.source, ref.id};
}

/// A UUID-shaped identifier derived from SHA-256 of the given parts (RFC 4122
/// version-8 layout). Every id the service mints — output event ids, license
/// ids, internal delta ids — is derived from what caused it, so a re-run after
/// a crash mints the same ids and downstream de-duplication by id works.
std::string derived_id(std::initializer_list<std::string_view> parts);

/// The key storage de-duplicates an upstream event by: the first 16 bytes
/// of SHA-256 over its length-prefixed source and id, as a UUID string
/// ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", no version bits). A fixed-size key
/// indexes at a fraction of the cost of the two strings; at 128 bits, two
/// different events colliding is not a practical concern.
/// (`seatledger.applied_event_key` in the schema computes the same.)
std::string applied_event_key(const event_key& key);

/// Lowercase hex SHA-256.
std::string sha256_hex(std::string_view data);

/// The value of a hex digit (either case), or -1 for any other character.
int hex_digit_value(char c);

} // namespace seatledger::domain
