#pragma once

// What actors send each other. Local-only: records cross process boundaries
// through Kafka, never through CAF, so these are plain structs.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "domain/commands.hpp"
#include "domain/usage.hpp"
#include "storage/ports.hpp"

namespace seatledger::messages {

/// Membership events for one org, in per-key order. `order` gives each
/// event's position in the batch, so the outbox rows it causes are committed
/// in record order whatever order the actors answer in.
struct org_job {
  std::vector<domain::membership_event> events;
  std::vector<std::int64_t> order;
};

/// The sweeper's request: close the months that ended by `upto`.
struct close_months_request {
  domain::timestamp upto;
};

using subscription_item
  = std::variant<domain::seat_delta, domain::command_event,
                 close_months_request>;

/// Deltas, commands and month closes for one subscription, in order, with
/// each item's position in the batch.
struct subscription_job {
  std::vector<subscription_item> items;
  std::vector<std::int64_t> order;
  /// A command of the job starts a term (create, renew, convert_trial):
  /// the actor keeps its ledger window for the job.
  bool starts_a_term = false;
  /// The subscription's ledger from before its actor's window, when a
  /// command of the job starts a term there (its past months close at once).
  std::optional<domain::ledger_window> earlier_ledger;
};

/// What an entity actor hands back: the rows to commit, ready to write, and
/// counts for metrics.
struct entity_result {
  storage::storage_batch rows;
  /// The batch position of the item behind each outbox row.
  std::vector<std::int64_t> outbox_order;
  std::int64_t applied = 0;
  std::int64_t rejected = 0;
  std::int64_t licenses_issued = 0;
  std::int64_t overages = 0;
  /// Commands rejected: their CloudEvents type and reason code (for
  /// metrics, counted once the batch commits).
  std::vector<std::pair<std::string, std::string>> rejections;
  /// A subscription actor's ledger window after the job answers from here
  /// on (`ledger_window::exact_from`).
  std::optional<domain::timestamp> window_from;
};

/// Lease keys a relay publishes for.
struct lease_set {
  std::vector<std::string> lease_keys;
};

} // namespace seatledger::messages
