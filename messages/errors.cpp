#include "messages/errors.hpp"

#include "log/utf8.hpp"

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

std::string escape_invalid_utf8(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (auto length = log::utf8_sequence_length(text, i)) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      auto c = static_cast<unsigned char>(text[i]);
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0x0f];
      ++i;
    }
  }
  return out;
}

} // namespace seatledger::messages
