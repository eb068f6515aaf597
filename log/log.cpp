#include "log/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <mutex>

#include "log/utf8.hpp"

namespace seatledger::log {

namespace {

std::atomic<int> min_level{static_cast<int>(level::info)};
std::atomic<int> line_format{static_cast<int>(format::json)};
std::mutex output_mutex;

void append_escaped(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto ch = text[i];
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0x0f]);
        } else if (c < 0x80) {
          out.push_back(ch);
        } else if (auto length = utf8_sequence_length(text, i)) {
          out.append(text.substr(i, length));
          i += length - 1;
        } else {
          // JSON text is UTF-8: a byte that is not (a record key quoted in
          // a dead letter's reason) made the whole line unreadable to a
          // strict parser. Written as the dead-letter headers write it.
          out += "\\\\x";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0x0f]);
        }
    }
  }
  out.push_back('"');
}

std::string now_rfc3339() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto micros = duration_cast<microseconds>(now.time_since_epoch()).count()
                % 1'000'000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                utc.tm_min, utc.tm_sec, static_cast<long long>(micros));
  return buf;
}

} // namespace

const char* to_string(level lvl) {
  switch (lvl) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warning: return "warning";
    case level::error: return "error";
  }
  return "info";
}

bool parse_level(std::string_view text, level& out) {
  for (auto lvl : {level::debug, level::info, level::warning, level::error})
    if (text == to_string(lvl)) {
      out = lvl;
      return true;
    }
  return false;
}

void set_format(format f) {
  line_format = static_cast<int>(f);
}

void set_level(level lvl) {
  min_level = static_cast<int>(lvl);
}

level current_level() {
  return static_cast<level>(min_level.load());
}

namespace {

/// `text` on one line: a line break or other control character becomes a
/// space. Bytes are written as they are (a terminal shows what it can).
void append_plain(std::string& out, std::string_view text) {
  for (auto ch : text)
    out.push_back(static_cast<unsigned char>(ch) < 0x20 || ch == '\x7f' ? ' '
                                                                        : ch);
}

std::string text_line(level lvl, std::string_view message,
                      std::initializer_list<field> fields) {
  std::string line = to_string(lvl);
  line += ": ";
  append_plain(line, message);
  const char* separator = " (";
  for (const auto& f : fields) {
    line += separator;
    separator = ", ";
    append_plain(line, f.key);
    line.push_back('=');
    append_plain(line, f.text);
  }
  if (fields.size() > 0)
    line.push_back(')');
  line.push_back('\n');
  return line;
}

} // namespace

void write(level lvl, std::string_view message,
           std::initializer_list<field> fields) {
  if (line_format.load() == static_cast<int>(format::text)) {
    auto line = text_line(lvl, message, fields);
    std::lock_guard<std::mutex> guard{output_mutex};
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  std::string line;
  line.reserve(128);
  line += "{\"time\":\"";
  line += now_rfc3339();
  line += "\",\"level\":\"";
  line += to_string(lvl);
  line += "\",\"message\":";
  append_escaped(line, message);
  for (const auto& f : fields) {
    line.push_back(',');
    append_escaped(line, f.key);
    line.push_back(':');
    if (f.number)
      line += f.text;
    else
      append_escaped(line, f.text);
  }
  line += "}\n";
  std::lock_guard<std::mutex> guard{output_mutex};
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void log_termination() {
  std::set_terminate([] {
    try {
      if (auto current = std::current_exception()) {
        std::string what;
        try {
          std::rethrow_exception(current);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
          what = "an exception of a type not derived from std::exception";
        }
        write(level::error, "terminating: an exception nobody handled",
              {{"error", what}});
      } else {
        write(level::error, "terminating: std::terminate was called without "
                            "an exception (a joinable thread destroyed, a "
                            "noexcept function left by one)");
      }
    } catch (...) {
      // Out of memory (a bad_alloc may be why we are here): a fixed line.
      static constexpr char line[]
        = "{\"level\":\"error\",\"message\":\"terminating: an exception "
          "nobody handled\"}\n";
      std::fwrite(line, 1, sizeof(line) - 1, stderr);
    }
    std::abort();
  });
}

} // namespace seatledger::log
