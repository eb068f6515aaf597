#pragma once

#include <string>

#include "config/options.hpp"

namespace seatledger::app {

/// `seatledger serve`: runs the service until SIGTERM or SIGINT, then stops
/// taking records, commits what it holds, publishes pending events, leaves
/// the group and returns 0.
int run_serve(const config::settings& settings);

/// Why serve stops at start: one JSON log line on stderr carrying `line` as
/// its message (and the setting, for invalid configuration).
void report_start_failure(const std::string& line);

} // namespace seatledger::app
