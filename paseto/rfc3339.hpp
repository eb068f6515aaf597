// RFC 3339 timestamps, the format of PASETO's registered time claims.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "paseto/result.hpp"

namespace seatledger::paseto {

/// A UTC instant with microsecond resolution. Microseconds rather than the
/// system clock's nanoseconds: a signed 64-bit nanosecond count ends in 2262,
/// and a license may well say "9999-12-31T23:59:59Z".
using utc_time = std::chrono::time_point<std::chrono::system_clock,
                                         std::chrono::microseconds>;

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)` (`T` and `Z` in
/// either case). Digits of the fraction beyond microseconds are dropped.
/// Second 60 (a leap second) is accepted and counts as the next second's
/// start. Fails with `errc::invalid_time`.
result<utc_time> parse_rfc3339(std::string_view text);

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, rounding down to the second. Instants
/// before year 0 or after year 9999 saturate to the first or last second
/// RFC 3339 can write.
std::string format_rfc3339(utc_time t);

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, rounding down to the second.
std::string format_rfc3339(std::chrono::system_clock::time_point t);

} // namespace seatledger::paseto
