#pragma once

// UTF-8 well-formedness, shared by the logger (every log line is JSON) and
// the dead-letter headers (messages/errors.hpp). It lives with the logger,
// the lowest layer, which every other folder may include; header-only, so
// including it links nothing.

#include <cstddef>
#include <string_view>

namespace seatledger::log {

/// The length (1 to 4) of the well-formed UTF-8 sequence that starts at
/// `text[i]`, or 0 when the byte there starts none: a stray continuation
/// byte, a sequence cut short, an overlong form, a surrogate or a code point
/// above U+10FFFF.
inline std::size_t utf8_sequence_length(std::string_view text,
                                        std::size_t i) noexcept {
  auto byte = [&](std::size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  auto c = byte(i);
  std::size_t length = c < 0x80                   ? 1
                       : (c >= 0xc2 && c <= 0xdf) ? 2
                       : (c >= 0xe0 && c <= 0xef) ? 3
                       : (c >= 0xf0 && c <= 0xf4) ? 4
                                                  : 0;
  if (length == 0 || i + length > text.size())
    return 0;
  for (std::size_t k = 1; k < length; ++k)
    if ((byte(i + k) & 0xc0) != 0x80)
      return 0;
  if (length >= 3) {
    auto next = byte(i + 1);
    bool ok = c == 0xe0   ? next >= 0xa0
              : c == 0xed ? next < 0xa0
              : c == 0xf0 ? next >= 0x90
              : c == 0xf4 ? next < 0x90
                          : true;
    if (!ok)
      return 0;
  }
  return length;
}

} // namespace seatledger::log
