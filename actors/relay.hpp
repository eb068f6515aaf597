#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/service_status.hpp"
#include "adapters/kafka/kafka.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::actors {

/// How the relay's PostgreSQL session is set up: named `seatledger-relay`,
/// its commits (the marks) not waiting for the WAL flush.
storage::pg_store_options relay_store_options();

/// The outbox relay: a detached actor with its own PostgreSQL connection and
/// an idempotent producer. Publishes committed outbox rows of the leases this
/// replica holds, in commit order, then marks them published. After a crash
/// the rows not yet marked are published again with the same event id.
/// Messages: `leases_atom, lease_set` (what to publish for), `wake_atom`
/// (something was committed), `drain_atom` (publish what is pending, for up
/// to 20 s while Kafka does not acknowledge, then reply `ok`).
caf::actor spawn_relay(caf::actor_system& system, std::string database_url,
                       kafka::client_config kafka,
                       std::shared_ptr<service_status> status);

} // namespace seatledger::actors
