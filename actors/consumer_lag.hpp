#pragma once

// The consumer lag a replica reports for a partition it holds.

#include <cstdint>
#include <optional>

namespace seatledger::actors {

/// Records behind: `high_watermark` (librdkafka's, from the partition's last
/// fetch; negative when unknown) minus `stored` (the position PostgreSQL
/// holds, or while none is stored the offset of the first record read).
/// Unknown when the watermark is unknown or below `stored`: the log never
/// ends before a position read from it, so such a watermark is left over
/// from an earlier time this replica held the partition (another replica
/// advanced it meanwhile). A report between getting the partition back and
/// its first fetch read 0 from it.
inline std::optional<std::int64_t> consumer_lag(std::int64_t high_watermark,
                                                std::int64_t stored) {
  if (high_watermark < 0 || high_watermark < stored)
    return std::nullopt;
  return high_watermark - stored;
}

} // namespace seatledger::actors
