#pragma once

// OpenSSL's process-wide state, for the programs that use it from several
// threads (the service: PostgreSQL's SCRAM login, the ledger's hashes,
// license signatures).

namespace seatledger::crypto {

/// Tells OpenSSL not to free its global state from an exit handler. A
/// thread that used OpenSSL and is still ending when the process exits ran
/// OpenSSL's per-thread cleanup against state already freed, and the
/// process died of SIGSEGV after an orderly shutdown: CAF 0.17 lets a
/// detached actor's thread go on ending after the actor system is gone.
/// The memory is the process's until it ends anyway. Call first in main:
/// OpenSSL's first initialisation decides.
void keep_openssl_state_until_exit();

} // namespace seatledger::crypto
