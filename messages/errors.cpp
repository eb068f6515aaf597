#include "messages/errors.hpp"

namespace seatledger::messages {

const char* to_string(decode_error_code code) noexcept {
  switch (code) {
    case decode_error_code::malformed_json: return "malformed_json";
    case decode_error_code::not_cloudevents: return "not_cloudevents";
    case decode_error_code::unsupported_specversion:
      return "unsupported_specversion";
    case decode_error_code::unknown_type: return "unknown_type";
    case decode_error_code::missing_field: return "missing_field";
    case decode_error_code::wrong_type: return "wrong_type";
    case decode_error_code::invalid_identifier: return "invalid_identifier";
    case decode_error_code::invalid_timestamp: return "invalid_timestamp";
    case decode_error_code::invalid_value: return "invalid_value";
    case decode_error_code::oversized: return "oversized";
  }
  return "unknown";
}

} // namespace seatledger::messages
