#include "domain/time.hpp"

#include <algorithm>
#include <array>

namespace seatledger::domain {

namespace {

constexpr std::int64_t micros_per_second = 1'000'000;
constexpr std::int64_t seconds_per_day = 86'400;

// Howard Hinnant's days_from_civil / civil_from_days: exact for the whole
// proleptic Gregorian calendar.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct ymd {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

constexpr ymd civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

constexpr bool is_leap(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

std::int64_t floor_div(std::int64_t x, std::int64_t y) {
  auto q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0)))
    --q;
  return q;
}

bool parse_digits(std::string_view text, size_t pos, size_t count, int& out) {
  if (pos + count > text.size())
    return false;
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    auto c = text[i];
    if (c < '0' || c > '9')
      return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

} // namespace

int days_in_month(int year, int month) {
  static constexpr std::array<int, 12> days{31, 28, 31, 30, 31, 30,
                                            31, 31, 30, 31, 30, 31};
  if (month == 2 && is_leap(year))
    return 29;
  return days[static_cast<size_t>(month - 1)];
}

civil_time to_civil(timestamp t) {
  auto micros = t.micros();
  auto seconds = floor_div(micros, micros_per_second);
  auto sub = micros - seconds * micros_per_second;
  auto days = floor_div(seconds, seconds_per_day);
  auto second_of_day = seconds - days * seconds_per_day;
  auto date = civil_from_days(days);
  civil_time result;
  result.year = static_cast<int>(date.year);
  result.month = static_cast<int>(date.month);
  result.day = static_cast<int>(date.day);
  result.hour = static_cast<int>(second_of_day / 3600);
  result.minute = static_cast<int>((second_of_day % 3600) / 60);
  result.second = static_cast<int>(second_of_day % 60);
  result.micros = static_cast<int>(sub);
  return result;
}

std::optional<timestamp> from_civil(const civil_time& c) {
  if (c.month < 1 || c.month > 12 || c.day < 1
      || c.day > days_in_month(c.year, c.month) || c.hour < 0 || c.hour > 23
      || c.minute < 0 || c.minute > 59 || c.second < 0 || c.second > 59
      || c.micros < 0 || c.micros >= micros_per_second)
    return std::nullopt;
  auto days = days_from_civil(c.year, static_cast<unsigned>(c.month),
                              static_cast<unsigned>(c.day));
  auto seconds = days * seconds_per_day + c.hour * 3600 + c.minute * 60
                 + c.second;
  return timestamp::from_micros(seconds * micros_per_second + c.micros);
}

timestamp first_writable_instant() {
  // 0001-01-01T00:00:00Z
  return timestamp::from_micros(-62'135'596'800'000'000);
}

timestamp last_writable_instant() {
  // 9999-12-31T23:59:59.999999Z
  return timestamp::from_micros(253'402'300'799'999'999);
}

std::optional<timestamp> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), the fraction up to 19 digits
  // whatever the offset (the limit on the whole text used to leave 14 with
  // `+HH:MM`).
  constexpr std::size_t max_fraction_digits = 19;
  civil_time c;
  if (text.size() < 20 || text.size() > 20 + max_fraction_digits + 6)
    return std::nullopt;
  if (!parse_digits(text, 0, 4, c.year) || text[4] != '-'
      || !parse_digits(text, 5, 2, c.month) || text[7] != '-'
      || !parse_digits(text, 8, 2, c.day)
      || (text[10] != 'T' && text[10] != 't')
      || !parse_digits(text, 11, 2, c.hour) || text[13] != ':'
      || !parse_digits(text, 14, 2, c.minute) || text[16] != ':'
      || !parse_digits(text, 17, 2, c.second))
    return std::nullopt;
  size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    int micros = 0;
    // RFC 3339 sets no limit on the fraction's digits (Java's and Go's
    // nanosecond times carry nine); time is kept in microseconds, so the
    // digits past the sixth are dropped, not refused.
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6)
        micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0 || digits > max_fraction_digits)
      return std::nullopt;
    for (auto i = digits; i < 6; ++i)
      micros *= 10;
    c.micros = micros;
  }
  if (pos >= text.size())
    return std::nullopt;
  std::int64_t offset_seconds = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    int hours = 0;
    int minutes = 0;
    if (!parse_digits(text, pos + 1, 2, hours) || pos + 3 >= text.size()
        || text[pos + 3] != ':' || !parse_digits(text, pos + 4, 2, minutes)
        || hours > 23 || minutes > 59)
      return std::nullopt;
    offset_seconds = (hours * 3600 + minutes * 60)
                     * (text[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size())
    return std::nullopt;
  auto local = from_civil(c);
  if (!local)
    return std::nullopt;
  auto utc = timestamp::from_micros(local->micros()
                                    - offset_seconds * micros_per_second);
  // Year 0000 is RFC 3339 but not PostgreSQL (it has no year 0; its text
  // input refuses it): an instant there in a record made every commit of
  // its batch fail, and the replica retried it for ever. Beyond 9999 the
  // instant could not be written back in four digits.
  if (utc < first_writable_instant() || utc > last_writable_instant())
    return std::nullopt;
  return utc;
}

std::string format_rfc3339(timestamp t) {
  // Instants outside what parses (sentinels such as timestamp::min(), or
  // arithmetic far past a term) saturate, so that whatever is written
  // parses again and PostgreSQL accepts it.
  t = std::clamp(t, first_writable_instant(), last_writable_instant());
  auto c = to_civil(t);
  // Digits written by hand: snprintf took 3.5 % of the service's CPU, every
  // outgoing event carrying several instants.
  char buf[32];
  char* out = buf;
  auto digits = [&out](int value, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
    out += width;
  };
  digits(c.year, 4);
  *out++ = '-';
  digits(c.month, 2);
  *out++ = '-';
  digits(c.day, 2);
  *out++ = 'T';
  digits(c.hour, 2);
  *out++ = ':';
  digits(c.minute, 2);
  *out++ = ':';
  digits(c.second, 2);
  if (c.micros != 0) {
    *out++ = '.';
    auto* fraction = out;
    digits(c.micros, 6);
    // Trailing zeros dropped: .75, not .750000.
    while (out - fraction > 1 && out[-1] == '0')
      --out;
  }
  *out++ = 'Z';
  return std::string(buf, out);
}

timestamp add_months(timestamp anchor, int months) {
  auto c = to_civil(anchor);
  auto total = static_cast<std::int64_t>(c.year) * 12 + (c.month - 1) + months;
  auto year = static_cast<int>(floor_div(total, 12));
  auto month = static_cast<int>(total - static_cast<std::int64_t>(year) * 12)
               + 1;
  auto result = c;
  result.year = year;
  result.month = month;
  if (result.day > days_in_month(year, month))
    result.day = days_in_month(year, month);
  // Always valid: every field comes from a valid instant or was clamped.
  return *from_civil(result);
}

} // namespace seatledger::domain
