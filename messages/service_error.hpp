#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace seatledger {

/// Errors actors and adapters carry as `caf::error`. Numeric values are
/// stable (logged, counted and matched on); never reuse or reorder them.
enum class service_errc : std::uint8_t {
  /// A commit named a lease epoch that has moved on: another replica owns
  /// the partition now. Nothing of the batch was written.
  fenced = 1,
  /// PostgreSQL could not be reached; retry later.
  storage_unavailable = 2,
  /// PostgreSQL refused a statement (constraint, type, permission).
  storage_failure = 3,
  /// The ledger's hash chain is broken.
  ledger_broken = 4,
  not_found = 5,
  bad_request = 6,
  conflict = 7,
  kafka_failure = 8,
  config_invalid = 9,
  timeout = 10,
  internal = 11,
  /// A batch held an upstream event that was applied before: its unique
  /// key refused the batch and nothing of it was written. Apply the batch
  /// again with de-duplication queries.
  already_applied = 12,
};

const char* to_string(service_errc code);

/// The CAF error category of `service_errc` (an atom, at most 10 chars).
constexpr caf::atom_value service_error_category = caf::atom("seatledger");

inline caf::error make_error(service_errc code) {
  return {static_cast<std::uint8_t>(code), service_error_category};
}

inline caf::error make_error(service_errc code, std::string message) {
  return {static_cast<std::uint8_t>(code), service_error_category,
          caf::make_message(std::move(message))};
}

/// The error's own message (its context string) without the code's name;
/// `describe(err)` when it has none.
std::string message_of(const caf::error& err);

/// Whether `err` is `code` of this project's category.
inline bool is(const caf::error& err, service_errc code) {
  return err.category() == service_error_category
         && err.code() == static_cast<std::uint8_t>(code);
}

/// "fenced: <message>" for logs and HTTP answers.
std::string describe(const caf::error& err);

} // namespace seatledger
