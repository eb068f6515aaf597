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

std::string escape_invalid_utf8(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  auto byte = [&](std::size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = byte(i);
    std::size_t length = c < 0x80                   ? 1
                         : (c >= 0xc2 && c <= 0xdf) ? 2
                         : (c >= 0xe0 && c <= 0xef) ? 3
                         : (c >= 0xf0 && c <= 0xf4) ? 4
                                                    : 0;
    bool ok = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; ok && k < length; ++k)
      ok = (byte(i + k) & 0xc0) == 0x80;
    // Overlong forms, surrogates and code points above U+10FFFF.
    if (ok && length >= 3) {
      auto next = byte(i + 1);
      if (c == 0xe0)
        ok = next >= 0xa0;
      else if (c == 0xed)
        ok = next < 0xa0;
      else if (c == 0xf0)
        ok = next >= 0x90;
      else if (c == 0xf4)
        ok = next < 0x90;
    }
    if (ok) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0x0f];
      ++i;
    }
  }
  return out;
}

} // namespace seatledger::messages
