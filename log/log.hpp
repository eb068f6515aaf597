#pragma once

// The project's logger: one JSON object per line on stderr with level, time,
// message and the ids involved (serve's log; the command-line tools write
// the same lines as plain text, set_format). (CAF_LOG_* is compiled out of
// Debian's CAF.) Secrets and license keys are never passed here.

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace seatledger::log {

enum class level { debug = 0, info = 1, warning = 2, error = 3 };

const char* to_string(level lvl);

/// Parses "debug", "info", "warning", "error".
bool parse_level(std::string_view text, level& out);

void set_level(level lvl);
level current_level();

/// `json` (the default): one JSON object per line, as serve's log is read
/// by a log pipeline. `text`: `level: message (key=value, …)` on one line,
/// for the command-line tools, whose other lines on stderr are plain (their
/// only log lines are librdkafka's).
enum class format { json, text };
void set_format(format f);

/// A field of a log line. Numbers are written as JSON numbers.
struct field {
  field(std::string_view k, std::string_view v) : key(k), text(v) {}
  field(std::string_view k, const std::string& v) : key(k), text(v) {}
  field(std::string_view k, const char* v) : key(k), text(v) {}
  field(std::string_view k, long long v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, long v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, int v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, unsigned long v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, unsigned v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, double v)
      : key(k), text(std::to_string(v)), number(true) {}
  field(std::string_view k, bool v)
      : key(k), text(v ? "true" : "false"), number(true) {}

  std::string_view key;
  std::string text;
  bool number = false;
};

void write(level lvl, std::string_view message,
           std::initializer_list<field> fields = {});

/// Makes std::terminate write one JSON line at level `error` (with the
/// exception's `what()` when an exception caused it) before it aborts: its
/// default message is a plain line among JSON ones, which a log pipeline
/// parsing them drops, and it is the line that says why the process died.
void log_termination();

/// Makes a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) write one JSON
/// line at level `error` first: the signal, the faulting address and the
/// stack as `module+0xoffset` frames (what `addr2line -e module` reads;
/// frames after the faulting one are return addresses, so ask for offset
/// - 1), then end the process as the signal would have (its exit status, a
/// core dump where enabled). Not for a fault in a thread that blocks the
/// signal (librdkafka's threads), nor a stack overflow; a no-op under
/// AddressSanitizer, whose own report is better.
void log_fatal_signals();

inline void debug(std::string_view message,
                  std::initializer_list<field> fields = {}) {
  if (current_level() <= level::debug)
    write(level::debug, message, fields);
}

inline void info(std::string_view message,
                 std::initializer_list<field> fields = {}) {
  if (current_level() <= level::info)
    write(level::info, message, fields);
}

inline void warning(std::string_view message,
                    std::initializer_list<field> fields = {}) {
  if (current_level() <= level::warning)
    write(level::warning, message, fields);
}

inline void error(std::string_view message,
                  std::initializer_list<field> fields = {}) {
  write(level::error, message, fields);
}

} // namespace seatledger::log
