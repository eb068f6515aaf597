#include "paseto/rfc3339.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace seatledger::paseto {

namespace {

// Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian
// calendar, exact for every year this parser accepts.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  auto era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  auto doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  auto doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

civil civil_from_days(std::int64_t z) {
  z += 719468;
  auto era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  auto yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  auto y = static_cast<std::int64_t>(yoe) + era * 400;
  auto doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  auto mp = (5 * doy + 2) / 153;
  auto d = doy - (153 * mp + 2) / 5 + 1;
  auto m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool is_leap(std::int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30,
                                      31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

class reader {
public:
  explicit reader(std::string_view text) : text_(text) {
    // nop
  }

  // Reads exactly `n` digits.
  bool digits(int n, int& out) {
    out = 0;
    for (int i = 0; i < n; ++i) {
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9')
        return false;
      out = out * 10 + (text_[pos_++] - '0');
    }
    return true;
  }

  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool consume_either(char a, char b) {
    return consume(a) || consume(b);
  }

  bool peek_digit() const {
    return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9';
  }

  int next_digit() {
    return text_[pos_++] - '0';
  }

  bool at_end() const {
    return pos_ == text_.size();
  }

private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

} // namespace

result<utc_time> parse_rfc3339(std::string_view text) {
  reader in{text};
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!in.digits(4, year) || !in.consume('-') || !in.digits(2, month)
      || !in.consume('-') || !in.digits(2, day) || !in.consume_either('T', 't')
      || !in.digits(2, hour) || !in.consume(':') || !in.digits(2, minute)
      || !in.consume(':') || !in.digits(2, second))
    return errc::invalid_time;
  if (month < 1 || month > 12 || day < 1
      || static_cast<unsigned>(day) > days_in_month(year, month) || hour > 23
      || minute > 59 || second > 60)
    return errc::invalid_time;
  std::int64_t micros = 0;
  if (in.consume('.')) {
    if (!in.peek_digit())
      return errc::invalid_time;
    int scale = 100000;
    while (in.peek_digit()) {
      auto digit = in.next_digit();
      micros += digit * scale;
      scale /= 10;
    }
  }
  std::int64_t offset_seconds = 0;
  if (!in.consume_either('Z', 'z')) {
    auto sign = 0;
    if (in.consume('+'))
      sign = 1;
    else if (in.consume('-'))
      sign = -1;
    else
      return errc::invalid_time;
    int off_hour = 0;
    int off_minute = 0;
    if (!in.digits(2, off_hour) || !in.consume(':') || !in.digits(2, off_minute)
        || off_hour > 23 || off_minute > 59)
      return errc::invalid_time;
    offset_seconds = sign * (off_hour * 3600 + off_minute * 60);
  }
  if (!in.at_end())
    return errc::invalid_time;
  auto days = days_from_civil(year, static_cast<unsigned>(month),
                              static_cast<unsigned>(day));
  // Local time minus its offset is UTC.
  auto seconds = days * 86400 + hour * 3600 + minute * 60 + second
                 - offset_seconds;
  return utc_time{std::chrono::microseconds{seconds * 1000000 + micros}};
}

std::string format_rfc3339(utc_time t) {
  auto micros = t.time_since_epoch().count();
  auto seconds = micros / 1000000 - (micros % 1000000 < 0 ? 1 : 0);
  // RFC 3339 writes four-digit years only: saturate, as domain's formatter.
  const auto first = days_from_civil(0, 1, 1) * 86400;
  const auto last = days_from_civil(9999, 12, 31) * 86400 + 86399;
  seconds = std::clamp<std::int64_t>(seconds, first, last);
  auto days = seconds / 86400 - (seconds % 86400 < 0 ? 1 : 0);
  auto secs_of_day = seconds - days * 86400;
  auto date = civil_from_days(days);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02d:%02d:%02dZ",
                static_cast<long long>(date.year), date.month, date.day,
                static_cast<int>(secs_of_day / 3600),
                static_cast<int>(secs_of_day / 60 % 60),
                static_cast<int>(secs_of_day % 60));
  return buf;
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  return format_rfc3339(std::chrono::floor<std::chrono::microseconds>(t));
}

} // namespace seatledger::paseto
