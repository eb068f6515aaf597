#pragma once

#include <ostream>

namespace seatledger::app {

/// Runs a small scenario through the domain rules (no I/O) and prints the
/// ledger, the events, the subscription's state and its monthly usage.
int run_demo(std::ostream& out);

} // namespace seatledger::app
