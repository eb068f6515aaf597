#pragma once

#include "config/options.hpp"

namespace seatledger::app {

/// `seatledger serve`: runs the service until SIGTERM or SIGINT, then stops
/// taking records, commits what it holds, publishes pending events, leaves
/// the group and returns 0.
int run_serve(const config::settings& settings);

} // namespace seatledger::app
