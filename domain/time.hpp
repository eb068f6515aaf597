#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace seatledger::domain {

/// An instant in UTC with microsecond resolution (PostgreSQL's `timestamptz`
/// resolution), so every time the service stores round-trips exactly.
class timestamp {
public:
  constexpr timestamp() = default;

  static constexpr timestamp from_micros(std::int64_t micros) {
    timestamp result;
    result.micros_ = micros;
    return result;
  }

  static constexpr timestamp from_seconds(std::int64_t seconds) {
    return from_micros(seconds * 1'000'000);
  }

  /// The earliest representable instant: the effective clock before anything
  /// was applied.
  static constexpr timestamp min() {
    return from_micros(INT64_MIN);
  }

  constexpr std::int64_t micros() const {
    return micros_;
  }

  friend constexpr bool operator==(timestamp x, timestamp y) {
    return x.micros_ == y.micros_;
  }
  friend constexpr bool operator!=(timestamp x, timestamp y) {
    return x.micros_ != y.micros_;
  }
  friend constexpr bool operator<(timestamp x, timestamp y) {
    return x.micros_ < y.micros_;
  }
  friend constexpr bool operator<=(timestamp x, timestamp y) {
    return x.micros_ <= y.micros_;
  }
  friend constexpr bool operator>(timestamp x, timestamp y) {
    return x.micros_ > y.micros_;
  }
  friend constexpr bool operator>=(timestamp x, timestamp y) {
    return x.micros_ >= y.micros_;
  }

private:
  std::int64_t micros_ = 0;
};

constexpr timestamp later_of(timestamp x, timestamp y) {
  return x < y ? y : x;
}

/// A proleptic Gregorian calendar date-time in UTC.
struct civil_time {
  int year = 1970;
  int month = 1; // 1..12
  int day = 1;   // 1..31
  int hour = 0;
  int minute = 0;
  int second = 0;
  int micros = 0;
};

civil_time to_civil(timestamp t);

/// Returns nothing when a field is out of range (e.g. 30 February).
std::optional<timestamp> from_civil(const civil_time& c);

int days_in_month(int year, int month);

/// Parses RFC 3339 (`2026-01-15T00:00:00Z`, `…T01:00:00.5+01:00`). Lowercase
/// `t`/`z` are accepted as RFC 3339 allows. Time is kept in microseconds:
/// fraction digits past the sixth are dropped (truncated, never rounded up
/// into the next second), as producers writing nanoseconds are common.
/// Instants before `first_writable_instant()` or after
/// `last_writable_instant()` (in UTC) are refused.
std::optional<timestamp> parse_rfc3339(std::string_view text);

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: the instants
/// that are four-digit years in UTC and that PostgreSQL reads.
timestamp first_writable_instant();
timestamp last_writable_instant();

/// Formats in UTC with `Z`; a fraction only when the instant has one, with
/// trailing zeros removed (`2026-01-15T00:00:00Z`, `…:00.25Z`). Instants
/// before year 0 or after year 9999 saturate to the first or last instant
/// RFC 3339 can write.
std::string format_rfc3339(timestamp t);

/// `anchor` plus `months` calendar months, keeping the time of day and the
/// anchor's day of month, clamped to the last day of a shorter month.
/// Always computed from the anchor, so month n never drifts.
timestamp add_months(timestamp anchor, int months);

} // namespace seatledger::domain
