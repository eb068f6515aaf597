#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/entity_context.hpp"
#include "actors/service_status.hpp"
#include "adapters/kafka/kafka.hpp"

namespace seatledger::actors {

struct pipeline_config {
  std::string consumer_group = "seatledger";
  /// This replica's name in lease rows (host, pid, start time).
  std::string owner;
  std::string database_url;
  kafka::client_config kafka;
  /// Largest number of records in one group commit.
  std::size_t max_batch_records = 5000;
  /// PostgreSQL connections a batch commits on at once, each in its own
  /// transaction for its own share of the partitions (partition number
  /// modulo this count).
  std::size_t commit_connections = 2;
  /// A batch of fewer records commits in one transaction on one connection.
  std::size_t commit_split_records = 1000;
  /// How long to wait for the first record of a batch.
  std::chrono::milliseconds poll_wait{50};
  /// How long to keep gathering after the first record (bounded by size).
  std::chrono::milliseconds linger{3};
  /// Entity actors idle this long are passivated.
  std::chrono::seconds idle_timeout{300};
  /// `usage.month_closed` is published within this time after a month ends.
  std::chrono::seconds month_close_grace{3600};
  /// An upstream event stamped later than this ahead of the wall clock is
  /// a dead letter: applied, it would move its entity's clock (and every
  /// later entry of a ledger) to that time for good.
  std::chrono::microseconds max_event_time_ahead{std::chrono::hours{1}};
  /// How long `(source, id)` of applied upstream events is remembered.
  std::chrono::microseconds dedup_window{std::chrono::hours{24 * 7}};
  /// How long an entity actor may take for one job.
  std::chrono::seconds entity_timeout{60};
};

/// Spawns the pipeline: the coordinator (a detached actor that owns the Kafka
/// consumers and a PostgreSQL connection) and the outbox relay (a detached
/// actor with its own connection and the producer). Returns the coordinator;
/// send it `drain_atom` to stop taking records, commit what it holds, publish
/// pending events and leave the group (it replies when done).
caf::actor spawn_pipeline(caf::actor_system& system, pipeline_config config,
                          std::shared_ptr<const entity_context> context,
                          std::shared_ptr<service_status> status);

} // namespace seatledger::actors
