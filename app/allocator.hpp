#pragma once

// The service's allocator settings, logged at start-up so a deployment can
// see which ones are in effect (MALLOC_CONF overrides the built-in ones).

namespace seatledger::app {

/// Logs the allocator in use and, for jemalloc, how long freed pages stay
/// with the process before they are given back to the kernel.
void log_allocator_settings();

} // namespace seatledger::app
