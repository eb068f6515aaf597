#include "messages/json_writer.hpp"

#include <array>
#include <charconv>

namespace seatledger::messages {

namespace {

// 0: copy as is; 1: needs an escape. Only `"`, `\` and C0 controls do
// (RFC 8259, section 7); bytes >= 0x80 are UTF-8 and pass through.
constexpr std::array<std::uint8_t, 256> make_escape_table() {
  std::array<std::uint8_t, 256> table{};
  for (int c = 0; c < 0x20; ++c)
    table[static_cast<std::size_t>(c)] = 1;
  table['"'] = 1;
  table['\\'] = 1;
  return table;
}

constexpr auto needs_escape = make_escape_table();

constexpr char hex_digits[] = "0123456789abcdef";

} // namespace

void json_writer::append_quoted(std::string& out, std::string_view text) {
  out.push_back('"');
  const char* run = text.data();
  const char* end = text.data() + text.size();
  for (const char* p = run; p != end; ++p) {
    auto c = static_cast<unsigned char>(*p);
    if (!needs_escape[c])
      continue;
    out.append(run, static_cast<std::size_t>(p - run));
    run = p + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        char buf[6]
          = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 0x0f]};
        out.append(buf, sizeof(buf));
      }
    }
  }
  out.append(run, static_cast<std::size_t>(end - run));
  out.push_back('"');
}

void json_writer::integer(std::int64_t value) {
  separate();
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec; // 24 bytes always hold an int64
  out_.append(buf, static_cast<std::size_t>(ptr - buf));
  need_comma_ = true;
}

void json_writer::string_array_member(std::string_view name,
                                      const std::vector<std::string>& items) {
  key(name);
  begin_array();
  for (const auto& item : items)
    string(item);
  end_array();
}

} // namespace seatledger::messages
