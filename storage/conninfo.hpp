#pragma once

// Connection strings as the service connects with them.

#include <chrono>
#include <optional>
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

/// Why the server at `conninfo` refuses this client's credentials, when it
/// does: no password given where one is needed, or a wrong one (SQLSTATE
/// 28P01). Only the client's configuration mends these. For a server that
/// cannot be reached, is starting up, has no free connection slot, or
/// lacks something an operator may still create there (the database, the
/// role, a `pg_hba.conf` entry, a grant), and for a connection that
/// succeeds, it answers nothing. One connection attempt, at most `timeout`
/// long; the answer is libpq's message without the server's source
/// location (it may span lines).
std::optional<std::string>
lasting_refusal(const std::string& conninfo,
                std::chrono::milliseconds timeout = std::chrono::seconds{10});

/// The SQLSTATE in a libpq message written with `PQERRORS_VERBOSE`
/// (`FATAL:  28P01: password …`); empty when it has none.
std::string sqlstate_in(const std::string& verbose_message);

} // namespace seatledger::storage
