#pragma once

// The PostgreSQL implementation of the storage ports (libpqxx 6.4 behind a
// pimpl: no libpqxx type in this header).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "storage/ports.hpp"

namespace seatledger::storage {

/// The role the service runs as: SELECT and INSERT only on the append-only
/// tables (ledger, licenses, revocations, catalog history). Created by
/// `migrate` and granted to the migrating user.
inline constexpr const char* runtime_role_name = "seatledger_app";

/// A session ended because its open transaction held the row of a lease
/// being taken (see `pg_store::acquire_leases`).
struct ended_lease_holder {
  /// The leases whose rows it held, comma-separated.
  std::string lease_keys;
  /// Their owner as the rows read then (the previous owner).
  std::string owner;
  std::int64_t pid = 0;
  /// How long its transaction had been open.
  double transaction_seconds = 0;
};

struct pg_store_options {
  /// `SET ROLE` to this role right after connecting, so the service writes
  /// with the runtime role's rights even when it logs in as the schema owner
  /// (or a superuser). Empty: keep the login role.
  std::optional<std::string> runtime_role = std::string{runtime_role_name};
  /// `application_name` of the session (shows in pg_stat_activity).
  std::string application_name = "seatledger";
  /// Commits on this session do not wait for their WAL to reach the disk
  /// (`synchronous_commit = off`). Only for writes a server crash may lose
  /// without harm: it loses the last few hundred milliseconds of them, whole
  /// transactions, never one whose later WAL survived.
  bool commits_may_be_lost_in_a_crash = false;
  /// How long taking a lease waits for a transaction that holds its row
  /// before it ends that transaction's session.
  std::chrono::milliseconds lease_lock_wait{5000};
  /// Told of each session ended so (on the calling thread).
  std::function<void(const ended_lease_holder&)> on_lease_holder_ended;
};

/// One connection to PostgreSQL implementing every storage port. Not
/// thread-safe: one per actor or thread. Connects lazily on the first call;
/// after a broken connection the call fails with `storage_unavailable` and
/// the next call connects again. Every method catches what libpqxx throws and
/// returns it as a `caf::error` (`fenced`, `storage_unavailable` or
/// `storage_failure`).
class pg_store : public batch_store,
                 public partition_store,
                 public state_store,
                 public outbox_store,
                 public query_store {
public:
  /// `conninfo`: a libpq URI or key=value string; empty fields fall back to
  /// the PG* environment variables, as libpq does.
  explicit pg_store(std::string conninfo, pg_store_options options = {});
  ~pg_store() override;

  pg_store(const pg_store&) = delete;
  pg_store& operator=(const pg_store&) = delete;

  /// Connects now if not connected and checks the server answers.
  caf::expected<void> ping();

  /// The value of a server setting in this session (`current_setting`).
  caf::expected<std::string> setting(const std::string& name);

  /// Drops the connection (the next call connects again).
  void disconnect();

  // -- batch_store ------------------------------------------------------------

  caf::expected<void> commit(const storage_batch& batch) override;

  // -- partition_store --------------------------------------------------------

  caf::expected<std::vector<lease>>
  acquire_leases(const std::string& consumer_group,
                 const std::vector<std::string>& lease_keys,
                 const std::string& owner) override;

  caf::expected<std::vector<std::string>>
  held_leases(const std::string& consumer_group,
              const std::vector<lease>& leases) override;

  caf::expected<std::map<topic_partition, std::int64_t>>
  load_positions(const std::string& consumer_group,
                 const std::vector<topic_partition>& partitions) override;

  caf::expected<std::vector<bool>>
  filter_applied_keys(const std::vector<std::string>& applied_keys) override;

  caf::expected<std::int64_t>
  purge_applied_before(domain::timestamp cutoff) override;

  // -- state_store ------------------------------------------------------------

  caf::expected<std::map<std::string, org_snapshot>>
  load_orgs(const std::vector<std::string>& org_ids) override;

  caf::expected<std::map<std::string, subscription_snapshot>>
  load_subscriptions(const std::vector<std::string>& subscription_ids) override;

  caf::expected<std::vector<std::string>>
  subscriptions_due(const std::vector<std::int32_t>& partitions,
                    domain::timestamp month_end_before,
                    domain::timestamp idle_since) override;

  caf::expected<std::map<std::string, domain::plan_entitlements>>
  load_plan_entitlements() override;

  /// The catalog version (incremented by every commit that changed the
  /// catalog; also sent as the payload of `NOTIFY seatledger_catalog`).
  caf::expected<std::int64_t> catalog_version();

  // -- outbox_store -----------------------------------------------------------

  caf::expected<std::vector<pending_event>>
  fetch_unpublished(const std::vector<std::string>& lease_keys,
                    std::size_t limit) override;

  caf::expected<void>
  mark_published(const std::vector<std::int64_t>& outbox_seqs) override;

  caf::expected<std::int64_t> unpublished_count() override;

  /// Deletes outbox rows published before `cutoff`; returns how many.
  caf::expected<std::int64_t> purge_published_before(domain::timestamp cutoff);

  // -- query_store ------------------------------------------------------------

  caf::expected<std::optional<subscription_snapshot>>
  subscription(const std::string& subscription_id) override;

  caf::expected<std::vector<domain::ledger_entry>>
  ledger_page(const std::string& subscription_id, std::int64_t after,
              std::size_t limit) override;

  caf::expected<std::int64_t> seats_at(const std::string& subscription_id,
                                       domain::timestamp at) override;

  caf::expected<bool> pool_exists(const std::string& subscription_id) override;

  caf::expected<std::vector<holder_view>>
  holders_page(const std::string& subscription_id, const std::string& after,
               std::size_t limit) override;

  caf::expected<domain::ledger_window>
  ledger_window(const std::string& subscription_id,
                domain::timestamp from) override;
  caf::expected<domain::ledger_window> usage_window(
    const std::string& subscription_id,
    const std::vector<std::pair<domain::timestamp, domain::timestamp>>& months)
    override;

  caf::expected<std::vector<license_view>>
  licenses_of(const std::string& subscription_id) override;

  caf::expected<std::optional<license_view>>
  license(const std::string& license_id) override;

  caf::expected<std::optional<license_view>>
  license_issued_by(const domain::event_key& command) override;

  caf::expected<std::vector<revocation_row>> revocations() override;

  caf::expected<std::optional<org_view>>
  org(const std::string& org_id) override;

  caf::expected<std::vector<chain_report>>
  verify_ledger(const std::optional<std::string>& subscription_id) override;

  caf::expected<std::optional<std::string>>
  outbox_event(const std::string& event_id) override;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Brings the schema up to date: creates schema `seatledger` and the runtime
/// role if missing, then applies every compiled-in migration not yet recorded
/// in `seatledger.schema_migrations`, each in its own transaction, under a
/// session advisory lock (replicas starting at once apply each migration
/// exactly once). Returns how many migrations this call applied.
caf::expected<int> migrate(const std::string& conninfo);

/// Whether the database named by `conninfo` can serve reads: migrated, with
/// the runtime role there, its grants, and the connecting role a member.
/// For commands that read without migrating (`ledger verify`), which
/// otherwise failed on a missing relation or role with PostgreSQL's text.
caf::error check_schema(const std::string& conninfo);

/// The versions of the compiled-in migrations, in order.
std::vector<int> known_migrations();

namespace detail {

/// The SQL of the store's prepared statement `name` (nullptr if there is
/// none), for tests that ask PostgreSQL how it runs what the store runs.
const char* prepared_statement_sql(std::string_view name);

} // namespace detail

} // namespace seatledger::storage
