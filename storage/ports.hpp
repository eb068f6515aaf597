#pragma once

// The storage ports: what actors and adapters ask of PostgreSQL. Plain data
// in, `caf::expected` out; the libpqxx implementation lives behind them
// (storage/pg_store.hpp) and no SQL or libpqxx type leaks through.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "domain/commands.hpp"
#include "domain/ledger.hpp"
#include "domain/subscription.hpp"
#include "domain/usage.hpp"
#include "messages/service_error.hpp"

namespace seatledger::storage {

// -- consumer positions and leases --------------------------------------------

struct topic_partition {
  std::string topic;
  std::int32_t partition = 0;

  friend bool operator<(const topic_partition& x, const topic_partition& y) {
    return x.topic < y.topic
           || (x.topic == y.topic && x.partition < y.partition);
  }
  friend bool operator==(const topic_partition& x, const topic_partition& y) {
    return x.topic == y.topic && x.partition == y.partition;
  }
};

/// The offset of the next record to consume.
struct position {
  topic_partition tp;
  std::int64_t next_offset = 0;
};

/// A lease on a unit of ownership (e.g. "membership/3": partition 3 of the
/// org stage; "subscriptions/3": partition 3 of the subscription stage, which
/// covers partition 3 of both the command and the internal delta topic).
/// Taking a lease increments its epoch; a commit names the epochs it holds.
struct lease {
  std::string lease_key;
  std::int64_t epoch = 0;

  friend bool operator==(const lease& x, const lease& y) {
    return x.lease_key == y.lease_key && x.epoch == y.epoch;
  }
};

// -- rows one batch writes ----------------------------------------------------

struct applied_event {
  std::string source;
  std::string id;
  /// domain::applied_event_key(source, id), when the caller has it already
  /// (de-duplication computed it); the store computes it when empty.
  std::string key;
};

struct org_row {
  std::string org_id;
  std::optional<std::string> subscription_id;
  std::int32_t partition = 0;
  std::int64_t delta_seq = 0;
};

/// A membership as it changes; `billable` empty means the member left.
/// `previous` is what the member was before this change (empty: not a
/// member), from the org's state loaded from what is committed plus the
/// batch's earlier rows; the store writes new members without a conflict
/// check on the strength of it.
struct membership_row {
  std::string org_id;
  std::string user_id;
  std::optional<bool> billable;
  std::optional<bool> previous;
};

struct subscription_row {
  domain::subscription_record record;
  std::int32_t partition = 0;
  /// End of the earliest month still open (for the month-close sweeper).
  std::optional<domain::timestamp> next_month_end;
  /// Only the counts moved (seats in use, the ledger's head, the
  /// statistics, the clock, the next month end), as seat deltas move them:
  /// a stored row gets just those columns. A row not stored yet, or another
  /// row of the same subscription in the batch without this, is written
  /// whole.
  bool counts_only = false;
};

struct term_row {
  std::string subscription_id;
  domain::term_usage term;
};

/// An org as one subscription sees it: linked or not, and the `org_seq` of
/// the last delta applied from it.
struct subscription_org_row {
  std::string subscription_id;
  std::string org_id;
  bool linked = false;
  std::int64_t last_delta_seq = 0;
  /// Seats owed before the first part of a delta from this org whose last
  /// part is still to come.
  std::optional<std::int64_t> owed_before_parts;
};

/// A seat holder that appeared (`added`) or went. Only real flips: an
/// addition of a holder the committed state (plus the batch's earlier rows)
/// does not have, a removal of one it has; the store writes additions
/// without a conflict check.
struct holder_row {
  std::string subscription_id;
  std::string user_id;
  std::string org_id;
  bool added = false;
};

struct license_row {
  domain::license_grant grant;
  std::string claims_json;
  std::string license_key;
  std::string key_id;
};

struct revocation_row {
  std::string license_id;
  std::string subscription_id;
  domain::timestamp revoked_at;
  std::string reason;
};

// Catalog changes carry their record's position in the batch: changes of
// one rate plan apply in record order (per-key order), whatever their times.
struct catalog_upsert_row {
  domain::rate_plan_upserted plan;
  domain::event_ref cause;
  std::int64_t record_order = 0;
};

struct catalog_removal_row {
  std::string rate_plan_id;
  domain::event_ref cause;
  std::int64_t record_order = 0;
};

/// Kafka record headers in record order. A value of `std::nullopt` is
/// Kafka's null, which Kafka and its clients tell from an empty value: a
/// dead letter copies which it was.
using record_headers
  = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// An event to publish, committed with the state that caused it. Its
/// `event_id` is final: a re-publication carries the same id.
struct outbox_row {
  std::string event_id;
  std::string topic;
  std::string key;
  std::string value;
  record_headers headers;
  /// The lease whose owner publishes it (per-key order follows ownership).
  std::string lease_key;
  /// Kafka's null key or value, as opposed to an empty one (`key` or
  /// `value` is then empty): a dead letter copies its record's byte for
  /// byte, null included. Flags rather than optionals, so the many rows
  /// that are never null are built and read as before.
  bool null_key = false;
  bool null_value = false;
};

/// Everything one group commit writes, in one transaction or not at all.
/// Rows for the same key may repeat (several records touched it); the last
/// one wins (holders: see holder_row). Ledger entries and outbox rows are
/// appended in order.
struct storage_batch {
  std::string consumer_group;
  std::vector<lease> leases;
  std::vector<position> positions;
  std::vector<applied_event> applied_events;
  std::vector<org_row> orgs;
  std::vector<membership_row> memberships;
  std::vector<subscription_row> subscriptions;
  std::vector<term_row> terms;
  std::vector<subscription_org_row> subscription_orgs;
  std::vector<holder_row> holders;
  std::vector<domain::ledger_entry> ledger;
  std::vector<license_row> licenses;
  std::vector<revocation_row> revocations;
  std::vector<catalog_upsert_row> catalog_upserts;
  std::vector<catalog_removal_row> catalog_removals;
  std::vector<outbox_row> outbox;
  /// Events the API may look up by id later (`query_store::outbox_event`):
  /// (event id, value). Only what needs it (rejections), not every event.
  std::vector<std::pair<std::string, std::string>> indexed_events;

  std::size_t row_count() const;
  bool empty() const {
    return row_count() == 0;
  }
};

// -- state loaded when an entity actor activates ------------------------------

struct org_snapshot {
  std::string org_id;
  std::optional<std::string> subscription_id;
  std::map<std::string, bool> members;
  std::int64_t delta_seq = 0;
  /// The org's row is stored (an org first seen in this batch has none).
  bool stored = false;
};

struct subscription_snapshot {
  domain::subscription_record record; // includes its terms
  std::map<std::string, std::set<std::string>> holders;
  std::set<std::string> orgs; // linked now
  std::map<std::string, std::int64_t> org_delta_seqs;
  domain::ledger_window window; // from ledger_window_start(record) on
  std::vector<domain::license_record> licenses;
  std::map<std::string, std::int64_t> owed_before_parts;
};

// -- published events ---------------------------------------------------------

struct pending_event {
  std::int64_t outbox_seq = 0;
  outbox_row row;
};

// -- reads for the HTTP API ---------------------------------------------------

struct license_view {
  license_row license;
  std::optional<domain::timestamp> revoked_at;
  std::optional<std::string> revocation_reason;
};

struct org_view {
  std::string org_id;
  std::optional<std::string> subscription_id;
  std::int64_t members = 0;
  std::int64_t billable_members = 0;
};

struct holder_view {
  std::string user_id;
  std::vector<std::string> orgs;
};

struct chain_report {
  std::string subscription_id;
  std::int64_t entries_verified = 0;
  std::optional<domain::chain_break> first_break;
};

// -- ports --------------------------------------------------------------------

/// Commits batches atomically with the positions and leases they cover.
class batch_store {
public:
  virtual ~batch_store();

  /// Writes the whole batch in one transaction. Fails with
  /// `service_errc::fenced` (writing nothing) when any lease's epoch has moved
  /// on, `storage_unavailable` when PostgreSQL cannot be reached, and
  /// `storage_failure` otherwise.
  virtual caf::expected<void> commit(const storage_batch& batch) = 0;
};

/// Leases, positions and de-duplication.
class partition_store {
public:
  virtual ~partition_store();

  /// Takes the leases: increments each epoch (creating it at 1) and records
  /// the owner. Every writer holding an older epoch is fenced from now on.
  /// A transaction of another session that holds a lease's row for longer
  /// than the implementation's wait (a commit of a paused previous owner)
  /// is ended rather than waited for.
  virtual caf::expected<std::vector<lease>>
  acquire_leases(const std::string& consumer_group,
                 const std::vector<std::string>& lease_keys,
                 const std::string& owner)
    = 0;

  /// Which of these leases are still held at their epochs (nobody took them
  /// over since): the keys, in the order given.
  virtual caf::expected<std::vector<std::string>>
  held_leases(const std::string& consumer_group,
              const std::vector<lease>& leases)
    = 0;

  /// Stored positions; partitions never committed are absent.
  virtual caf::expected<std::map<topic_partition, std::int64_t>>
  load_positions(const std::string& consumer_group,
                 const std::vector<topic_partition>& partitions)
    = 0;

  /// For each applied-event key (domain::applied_event_key), whether an
  /// event with it was applied already.
  virtual caf::expected<std::vector<bool>>
  filter_applied_keys(const std::vector<std::string>& applied_keys) = 0;

  /// For each event, whether it was applied already.
  caf::expected<std::vector<bool>>
  filter_applied(const std::vector<domain::event_key>& keys);

  /// Forgets applied events older than the de-duplication window, and the
  /// events indexed by id (rejections) as old; returns how many applied
  /// events it forgot.
  virtual caf::expected<std::int64_t>
  purge_applied_before(domain::timestamp cutoff) = 0;
};

/// State of entity actors on activation.
class state_store {
public:
  virtual ~state_store();

  virtual caf::expected<std::map<std::string, org_snapshot>>
  load_orgs(const std::vector<std::string>& org_ids) = 0;

  virtual caf::expected<std::map<std::string, subscription_snapshot>>
  load_subscriptions(const std::vector<std::string>& subscription_ids) = 0;

  /// Subscriptions of these partitions with a month that ended at or before
  /// `month_end_before` and no record applied since `idle_since`.
  virtual caf::expected<std::vector<std::string>>
  subscriptions_due(const std::vector<std::int32_t>& partitions,
                    domain::timestamp month_end_before,
                    domain::timestamp idle_since)
    = 0;

  /// Entitlements of every plan in the catalog, for licenses at issue time.
  virtual caf::expected<std::map<std::string, domain::plan_entitlements>>
  load_plan_entitlements() = 0;
};

/// The outbox relay's side. Events are stored in chunks (one per commit and
/// lease); every event of a chunk has the chunk's `outbox_seq`, and a chunk
/// is marked published as a whole.
class outbox_store {
public:
  virtual ~outbox_store();

  /// Unpublished events of these leases, in commit order: whole chunks, at
  /// least one, about `limit` events.
  virtual caf::expected<std::vector<pending_event>>
  fetch_unpublished(const std::vector<std::string>& lease_keys,
                    std::size_t limit)
    = 0;

  virtual caf::expected<void>
  mark_published(const std::vector<std::int64_t>& outbox_seqs) = 0;

  virtual caf::expected<std::int64_t> unpublished_count() = 0;
};

/// Reads for the HTTP API and the command line. Every replica answers every
/// query from here.
class query_store {
public:
  virtual ~query_store();

  /// The record with its terms and linked orgs; `holders`, `licenses` and
  /// `window` stay empty (see `holders_page`, `licenses_of`,
  /// `ledger_window`).
  virtual caf::expected<std::optional<subscription_snapshot>>
  subscription(const std::string& subscription_id) = 0;

  /// Entries with seq > `after`, in order, at most `limit`.
  virtual caf::expected<std::vector<domain::ledger_entry>>
  ledger_page(const std::string& subscription_id, std::int64_t after,
              std::size_t limit)
    = 0;

  /// The count of the last entry at or before `at` (0 before the first).
  virtual caf::expected<std::int64_t>
  seats_at(const std::string& subscription_id, domain::timestamp at) = 0;

  /// Whether the subscription's pool exists (any ledger entry or state row).
  virtual caf::expected<bool> pool_exists(const std::string& subscription_id)
    = 0;

  /// Holders with user_id > `after`, ordered by user_id, at most `limit`.
  virtual caf::expected<std::vector<holder_view>>
  holders_page(const std::string& subscription_id, const std::string& after,
               std::size_t limit)
    = 0;

  /// The ledger from `from` on, with the count carried in before it.
  virtual caf::expected<domain::ledger_window>
  ledger_window(const std::string& subscription_id, domain::timestamp from) = 0;

  /// The few entries the peaks of `months` (each `[start, end)`, in order)
  /// depend on: for each month the last entry before its start and the
  /// first entry of its highest count. `domain::monthly_usage` gives the
  /// same months from this as from the whole `ledger_window`, without the
  /// term's entries leaving PostgreSQL.
  virtual caf::expected<domain::ledger_window> usage_window(
    const std::string& subscription_id,
    const std::vector<std::pair<domain::timestamp, domain::timestamp>>& months)
    = 0;

  virtual caf::expected<std::vector<license_view>>
  licenses_of(const std::string& subscription_id) = 0;

  virtual caf::expected<std::optional<license_view>>
  license(const std::string& license_id) = 0;

  /// The license a command issued, if it did.
  virtual caf::expected<std::optional<license_view>>
  license_issued_by(const domain::event_key& command) = 0;

  virtual caf::expected<std::vector<revocation_row>> revocations() = 0;

  virtual caf::expected<std::optional<org_view>> org(const std::string& org_id)
    = 0;

  /// Walks hash chains (one subscription, or all) and reports where each
  /// first breaks.
  virtual caf::expected<std::vector<chain_report>>
  verify_ledger(const std::optional<std::string>& subscription_id) = 0;

  /// The value (CloudEvent JSON) of an indexed event (a rejection, kept as
  /// long as the de-duplication window) or of one still in the old outbox
  /// table, by its id. (How the HTTP API learns why a command it published
  /// was rejected.)
  virtual caf::expected<std::optional<std::string>>
  outbox_event(const std::string& event_id) {
    (void)event_id;
    return make_error(service_errc::internal, "outbox_event not supported");
  }
};

} // namespace seatledger::storage
