#pragma once

// Connection strings as the service connects with them.

#include <string>

namespace seatledger::storage {

/// `conninfo` (a libpq URI or key=value string) as a key=value string with
/// network timeouts added where it sets none: connect_timeout 10 s; TCP
/// keepalives after 10 s idle, every 5 s, 3 probes; tcp_user_timeout 30 s.
/// Without them a connection to a server that vanished without closing it
/// (a network cut, a dead node) blocks a commit for the kernel's TCP timeout
/// (about 15 minutes), and with it the replica's shutdown. A string libpq
/// cannot parse comes back unchanged (connecting reports why).
std::string with_network_timeouts(const std::string& conninfo);

/// `conninfo` for printing: unchanged without a password; with one, as a
/// key=value string whose password reads `********`. A string libpq cannot
/// parse comes back unchanged (the configuration check refuses it first).
std::string without_password(const std::string& conninfo);

} // namespace seatledger::storage
