#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace seatledger::messages {

/// Why a record could not be read as a message of its topic. The string forms
/// are the dead-letter reasons (header `seatledger.error.code`); the numeric
/// values are stable too (never reuse or reorder).
enum class decode_error_code : int {
  /// Not JSON, or not UTF-8.
  malformed_json = 1,
  /// Not a CloudEvent: the value is not an object, there is no specversion
  /// in either binding, or `data` is not an object.
  not_cloudevents = 2,
  unsupported_specversion = 3,
  /// A `type` that does not belong to the record's topic.
  unknown_type = 4,
  missing_field = 5,
  /// A field of the wrong JSON type (a string for a number, a fraction for an
  /// integer, null for a required field, ...).
  wrong_type = 6,
  invalid_identifier = 7,
  invalid_timestamp = 8,
  /// Well-typed but out of range: a negative count, an unknown enumerator,
  /// `part` > `parts`, an empty event id, ...
  invalid_value = 9,
  /// The record, a string or an array is larger than its limit.
  oversized = 10,
};

/// Every code, in numeric order (the metrics start a series for each).
inline constexpr decode_error_code all_decode_error_codes[] = {
  decode_error_code::malformed_json,
  decode_error_code::not_cloudevents,
  decode_error_code::unsupported_specversion,
  decode_error_code::unknown_type,
  decode_error_code::missing_field,
  decode_error_code::wrong_type,
  decode_error_code::invalid_identifier,
  decode_error_code::invalid_timestamp,
  decode_error_code::invalid_value,
  decode_error_code::oversized,
};

/// "malformed_json", "not_cloudevents", ...
const char* to_string(decode_error_code code) noexcept;

/// `text` as valid UTF-8: each byte that belongs to no well-formed sequence
/// is written `\xNN`. A dead letter's message can quote input (a key that
/// is not UTF-8), and its header must stay text.
std::string escape_invalid_utf8(std::string_view text);

struct decode_error {
  decode_error_code code = decode_error_code::malformed_json;
  /// Path of the offending field (`data.term.start`, `data.members[3]`,
  /// `ce_time`), empty when the record as a whole is at fault.
  std::string field;
  /// Human-readable, names the field: `data.term.start: not an RFC 3339
  /// timestamp`. Never contains more than a short excerpt of the input.
  std::string message;
};

/// A decoded value or the reason there is none.
template<class T>
class decode_result {
public:
  decode_result(T value) : data_(std::in_place_index<0>, std::move(value)) {}

  decode_result(decode_error error)
      : data_(std::in_place_index<1>, std::move(error)) {}

  explicit operator bool() const noexcept {
    return data_.index() == 0;
  }

  bool has_value() const noexcept {
    return data_.index() == 0;
  }

  T& value() & {
    return std::get<0>(data_);
  }

  const T& value() const& {
    return std::get<0>(data_);
  }

  T&& value() && {
    return std::get<0>(std::move(data_));
  }

  const decode_error& error() const& {
    return std::get<1>(data_);
  }

  decode_error&& error() && {
    return std::get<1>(std::move(data_));
  }

private:
  std::variant<T, decode_error> data_;
};

} // namespace seatledger::messages
