#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace seatledger::messages {

/// A minimal streaming JSON writer for the hot path: compact output, commas
/// placed automatically, strings escaped per RFC 8259. It does not check that
/// calls nest properly; callers write well-formed sequences. Strings must be
/// UTF-8 (everything the decoder produces is).
///
/// Value functions have distinct names (`string`, `integer`, `boolean`)
/// rather than overloads: a string literal would otherwise bind to `bool`.
class json_writer {
public:
  json_writer() = default;

  explicit json_writer(std::size_t reserve) {
    out_.reserve(reserve);
  }

  void begin_object() {
    separate();
    out_.push_back('{');
    need_comma_ = false;
  }

  void end_object() {
    out_.push_back('}');
    need_comma_ = true;
  }

  void begin_array() {
    separate();
    out_.push_back('[');
    need_comma_ = false;
  }

  void end_array() {
    out_.push_back(']');
    need_comma_ = true;
  }

  /// The next value is this member's.
  void key(std::string_view name) {
    separate();
    append_quoted(out_, name);
    out_.push_back(':');
    need_comma_ = false;
  }

  void string(std::string_view text) {
    separate();
    append_quoted(out_, text);
    need_comma_ = true;
  }

  void integer(std::int64_t value);

  void boolean(bool value) {
    separate();
    out_.append(value ? "true" : "false");
    need_comma_ = true;
  }

  void null() {
    separate();
    out_.append("null");
    need_comma_ = true;
  }

  /// A pre-encoded JSON value, copied verbatim (the caller vouches for it).
  void raw(std::string_view json) {
    separate();
    out_.append(json);
    need_comma_ = true;
  }

  // -- members ----------------------------------------------------------------

  void string_member(std::string_view name, std::string_view text) {
    key(name);
    string(text);
  }

  void integer_member(std::string_view name, std::int64_t value) {
    key(name);
    integer(value);
  }

  void bool_member(std::string_view name, bool value) {
    key(name);
    boolean(value);
  }

  void null_member(std::string_view name) {
    key(name);
    null();
  }

  void raw_member(std::string_view name, std::string_view json) {
    key(name);
    raw(json);
  }

  void string_array_member(std::string_view name,
                           const std::vector<std::string>& items);

  // -- output -----------------------------------------------------------------

  const std::string& str() const noexcept {
    return out_;
  }

  /// Moves the text out and leaves the writer empty, ready for reuse.
  std::string take() {
    std::string result = std::move(out_);
    clear();
    return result;
  }

  void clear() noexcept {
    out_.clear();
    need_comma_ = false;
  }

  /// Appends `text` as a JSON string literal, quotes included.
  static void append_quoted(std::string& out, std::string_view text);

private:
  void separate() {
    if (need_comma_)
      out_.push_back(',');
  }

  std::string out_;
  bool need_comma_ = false;
};

} // namespace seatledger::messages
