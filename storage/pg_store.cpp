#include "storage/pg_store.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "messages/service_error.hpp"
#include "storage/outbox_chunk.hpp"
#include "storage/pg_codec.hpp"

namespace seatledger::storage {

using namespace detail;

namespace {

using read_snapshot = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

// -- session setup ------------------------------------------------------------

// set_config instead of SET: the role name is a parameter, never spliced
// into SQL text.
constexpr const char* sql_set_role = "SELECT set_config('role', $1, false)";
constexpr const char* sql_set_application
  = "SELECT set_config('application_name', $1, false)";
constexpr const char* sql_commit_without_flush
  = "SELECT set_config('synchronous_commit', 'off', false)";
constexpr const char* sql_setting = "SELECT current_setting($1)";

// -- commit -------------------------------------------------------------------

// Row-locks each held lease (a concurrent takeover waits for this commit,
// or this commit sees the new epoch and matches nothing).
constexpr const char* sql_check_leases = R"sql(
UPDATE seatledger.partition_leases AS l SET last_commit_at = now()
FROM unnest($2::text[], $3::bigint[]) AS h(lease_key, epoch)
WHERE l.consumer_group = $1 AND l.lease_key = h.lease_key
  AND l.epoch = h.epoch
RETURNING l.lease_key
)sql";

// The upsert (last-wins) tables take their rows as one array per column,
// unnested in one multi-row statement; DISTINCT ON keeps the last row per
// key (WITH ORDINALITY numbers the rows in batch order). No temp staging
// tables: PostgreSQL truncates ON COMMIT DELETE ROWS tables at every
// commit, which cost about 20 ms of commit latency per batch here (ext4
// writing out the truncated temp files with the WAL flush).

// Once running, nearly every state row a batch writes exists already. So
// the store first updates rows (a plain UPDATE, last row per key chosen by
// the client) and inserts, by the upsert, only the keys the UPDATE did not
// return: the upsert's speculative insertion, tuple lock (a WAL record of
// its own) and DISTINCT ON sort cost 11.6 ms for 3,000 existing orgs where
// the UPDATE costs 7.3.
constexpr const char* sql_update_orgs = R"sql(
UPDATE seatledger.orgs AS t SET
  subscription_id = x.subscription_id, partition = x.partition,
  delta_seq = x.delta_seq, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[])
  AS x(org_id, subscription_id, partition, delta_seq)
WHERE t.org_id = x.org_id
RETURNING t.org_id
)sql";

constexpr const char* sql_update_subscription_orgs = R"sql(
UPDATE seatledger.subscription_orgs AS t SET
  linked = x.linked, last_delta_seq = x.last_delta_seq,
  owed_before_parts = x.owed_before_parts
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::bigint[])
  AS x(subscription_id, org_id, linked, last_delta_seq, owed_before_parts)
WHERE t.subscription_id = x.subscription_id AND t.org_id = x.org_id
RETURNING t.subscription_id, t.org_id
)sql";

constexpr const char* sql_update_subscriptions = R"sql(
UPDATE seatledger.subscriptions AS t SET
  partition = x.partition, status = x.status,
  display_name = x.display_name, sf_account_id = x.sf_account_id,
  sf_subscription_id = x.sf_subscription_id,
  instance_domain = x.instance_domain, instance_type = x.instance_type,
  plan_id = x.plan_id, seats = x.seats, term_start = x.term_start,
  term_end = x.term_end, trial = x.trial, features = x.features::text[],
  metadata = x.metadata::jsonb, archive_reason = x.archive_reason,
  clock = x.clock, seats_in_use = x.seats_in_use,
  ledger_seq = x.ledger_seq, ledger_hash = x.ledger_hash,
  max_seats_used = x.max_seats_used,
  max_seats_used_changed_at = x.max_seats_used_changed_at,
  seats_owed = x.seats_owed, created_by_source = x.created_by_source,
  created_by_id = x.created_by_id, next_month_end = x.next_month_end,
  commands_applied = x.commands_applied,
  last_applied_at = now(), updated_at = now()
FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[],
            $11::timestamptz[], $12::timestamptz[], $13::boolean[],
            $14::text[], $15::text[], $16::text[], $17::timestamptz[],
            $18::bigint[], $19::bigint[], $20::text[], $21::bigint[],
            $22::timestamptz[], $23::bigint[], $24::text[], $25::text[],
            $26::timestamptz[], $27::bigint[])
  AS x(subscription_id, partition, status, display_name, sf_account_id,
    sf_subscription_id, instance_domain, instance_type, plan_id, seats,
    term_start, term_end, trial, features, metadata, archive_reason, clock,
    seats_in_use, ledger_seq, ledger_hash, max_seats_used,
    max_seats_used_changed_at, seats_owed, created_by_source,
    created_by_id, next_month_end, commands_applied)
WHERE t.subscription_id = x.subscription_id
RETURNING t.subscription_id
)sql";

// What a seat delta moves; the descriptive columns (metadata above all, a
// JSON document parsed per row) stay as they are.
constexpr const char* sql_update_subscription_counts = R"sql(
UPDATE seatledger.subscriptions AS t SET
  clock = x.clock, seats_in_use = x.seats_in_use,
  ledger_seq = x.ledger_seq, ledger_hash = x.ledger_hash,
  max_seats_used = x.max_seats_used,
  max_seats_used_changed_at = x.max_seats_used_changed_at,
  seats_owed = x.seats_owed, next_month_end = x.next_month_end,
  last_applied_at = now(), updated_at = now()
FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[],
            $5::text[], $6::bigint[], $7::timestamptz[], $8::bigint[],
            $9::timestamptz[])
  AS x(subscription_id, clock, seats_in_use, ledger_seq, ledger_hash,
    max_seats_used, max_seats_used_changed_at, seats_owed, next_month_end)
WHERE t.subscription_id = x.subscription_id
RETURNING t.subscription_id
)sql";

constexpr const char* sql_merge_orgs = R"sql(
INSERT INTO seatledger.orgs AS t
  (org_id, subscription_id, partition, delta_seq, updated_at)
SELECT DISTINCT ON (x.org_id COLLATE "C") x.org_id, x.subscription_id,
       x.partition, x.delta_seq, now()
FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[])
  WITH ORDINALITY AS x(org_id, subscription_id, partition, delta_seq, ord)
ORDER BY x.org_id COLLATE "C", x.ord DESC
ON CONFLICT (org_id) DO UPDATE SET
  subscription_id = EXCLUDED.subscription_id,
  partition = EXCLUDED.partition, delta_seq = EXCLUDED.delta_seq,
  updated_at = EXCLUDED.updated_at
)sql";

// Memberships change by their net change per member (see commit): new
// members by COPY, changed billability by UPDATE, members who left by
// DELETE. No upsert: its speculative insertion cost two heap records and a
// second index descent per new member.
constexpr const char* copy_memberships
  = "COPY seatledger.memberships (org_id, user_id, billable) "
    "FROM STDIN (FORMAT binary)";

constexpr const char* sql_update_memberships = R"sql(
UPDATE seatledger.memberships AS m SET billable = x.billable
FROM unnest($1::text[], $2::text[], $3::boolean[]) AS x(org_id, user_id,
                                                        billable)
WHERE m.org_id = x.org_id AND m.user_id = x.user_id
)sql";

constexpr const char* sql_delete_memberships = R"sql(
DELETE FROM seatledger.memberships AS m
USING unnest($1::text[], $2::text[]) AS x(org_id, user_id)
WHERE m.org_id = x.org_id AND m.user_id = x.user_id
)sql";

constexpr const char* sql_merge_subscriptions = R"sql(
INSERT INTO seatledger.subscriptions AS t (subscription_id, partition,
  status, display_name, sf_account_id, sf_subscription_id, instance_domain,
  instance_type, plan_id, seats, term_start, term_end, trial, features,
  metadata, archive_reason, clock, seats_in_use, ledger_seq, ledger_hash,
  max_seats_used, max_seats_used_changed_at, seats_owed, created_by_source,
  created_by_id, next_month_end, commands_applied, last_applied_at,
  updated_at)
SELECT DISTINCT ON (x.subscription_id COLLATE "C") x.subscription_id,
  x.partition, x.status, x.display_name, x.sf_account_id,
  x.sf_subscription_id, x.instance_domain, x.instance_type, x.plan_id,
  x.seats, x.term_start, x.term_end, x.trial, x.features::text[],
  x.metadata::jsonb, x.archive_reason, x.clock, x.seats_in_use,
  x.ledger_seq, x.ledger_hash, x.max_seats_used,
  x.max_seats_used_changed_at, x.seats_owed, x.created_by_source,
  x.created_by_id, x.next_month_end, x.commands_applied, now(), now()
FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[],
            $11::timestamptz[], $12::timestamptz[], $13::boolean[],
            $14::text[], $15::text[], $16::text[], $17::timestamptz[],
            $18::bigint[], $19::bigint[], $20::text[], $21::bigint[],
            $22::timestamptz[], $23::bigint[], $24::text[], $25::text[],
            $26::timestamptz[], $27::bigint[])
  WITH ORDINALITY AS x(subscription_id, partition, status, display_name,
    sf_account_id, sf_subscription_id, instance_domain, instance_type,
    plan_id, seats, term_start, term_end, trial, features, metadata,
    archive_reason, clock, seats_in_use, ledger_seq, ledger_hash,
    max_seats_used, max_seats_used_changed_at, seats_owed,
    created_by_source, created_by_id, next_month_end, commands_applied,
    ord)
ORDER BY x.subscription_id COLLATE "C", x.ord DESC
ON CONFLICT (subscription_id) DO UPDATE SET
  partition = EXCLUDED.partition, status = EXCLUDED.status,
  display_name = EXCLUDED.display_name,
  sf_account_id = EXCLUDED.sf_account_id,
  sf_subscription_id = EXCLUDED.sf_subscription_id,
  instance_domain = EXCLUDED.instance_domain,
  instance_type = EXCLUDED.instance_type, plan_id = EXCLUDED.plan_id,
  seats = EXCLUDED.seats, term_start = EXCLUDED.term_start,
  term_end = EXCLUDED.term_end, trial = EXCLUDED.trial,
  features = EXCLUDED.features, metadata = EXCLUDED.metadata,
  archive_reason = EXCLUDED.archive_reason, clock = EXCLUDED.clock,
  seats_in_use = EXCLUDED.seats_in_use, ledger_seq = EXCLUDED.ledger_seq,
  ledger_hash = EXCLUDED.ledger_hash,
  max_seats_used = EXCLUDED.max_seats_used,
  max_seats_used_changed_at = EXCLUDED.max_seats_used_changed_at,
  seats_owed = EXCLUDED.seats_owed,
  created_by_source = EXCLUDED.created_by_source,
  created_by_id = EXCLUDED.created_by_id,
  next_month_end = EXCLUDED.next_month_end,
  commands_applied = EXCLUDED.commands_applied,
  last_applied_at = EXCLUDED.last_applied_at,
  updated_at = EXCLUDED.updated_at
)sql";

constexpr const char* sql_merge_terms = R"sql(
INSERT INTO seatledger.subscription_terms AS t
  (subscription_id, start, "end", usage_end, closed_months)
SELECT DISTINCT ON (x.subscription_id COLLATE "C", x.start)
       x.subscription_id, x.start, x."end", x.usage_end, x.closed_months
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],
            $4::timestamptz[], $5::integer[])
  WITH ORDINALITY AS x(subscription_id, start, "end", usage_end,
                       closed_months, ord)
ORDER BY x.subscription_id COLLATE "C", x.start, x.ord DESC
ON CONFLICT (subscription_id, start) DO UPDATE SET
  "end" = EXCLUDED."end", usage_end = EXCLUDED.usage_end,
  closed_months = EXCLUDED.closed_months
)sql";

constexpr const char* sql_merge_subscription_orgs = R"sql(
INSERT INTO seatledger.subscription_orgs AS t
  (subscription_id, org_id, linked, last_delta_seq, owed_before_parts)
SELECT DISTINCT ON (x.subscription_id COLLATE "C", x.org_id COLLATE "C")
       x.subscription_id, x.org_id, x.linked, x.last_delta_seq,
       x.owed_before_parts
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::bigint[])
  WITH ORDINALITY
  AS x(subscription_id, org_id, linked, last_delta_seq, owed_before_parts, ord)
ORDER BY x.subscription_id COLLATE "C", x.org_id COLLATE "C", x.ord DESC
ON CONFLICT (subscription_id, org_id) DO UPDATE SET
  linked = EXCLUDED.linked, last_delta_seq = EXCLUDED.last_delta_seq,
  owed_before_parts = EXCLUDED.owed_before_parts
)sql";

// Seat holders change by their net change per key (see commit): additions
// are new rows, by COPY; removals are rows that exist.
constexpr const char* copy_holders
  = "COPY seatledger.seat_holders (subscription_id, user_id, org_id) "
    "FROM STDIN (FORMAT binary)";

constexpr const char* sql_delete_holders = R"sql(
DELETE FROM seatledger.seat_holders AS h
USING unnest($1::text[], $2::text[], $3::text[])
  AS x(subscription_id, user_id, org_id)
WHERE h.subscription_id = x.subscription_id AND h.user_id = x.user_id
  AND h.org_id = x.org_id
)sql";

// Binary: ten thousand entries a commit, whose times and integers the
// server would otherwise parse from text.
constexpr const char* copy_ledger = R"sql(
COPY seatledger.seat_ledger (subscription_id, seq, seats_in_use,
  effective_at, cause_source, cause_id, cause_type, cause_time, org_id,
  user_id, prev_hash, hash) FROM STDIN (FORMAT binary)
)sql";

constexpr const char* copy_licenses = R"sql(
COPY seatledger.licenses (license_id, subscription_id, issued_at, not_before,
  expires_at, seats, plan_id, tier, features, instance_domain, instance_type,
  trial, issued_by_source, issued_by_id, claims, license_key, key_id)
FROM STDIN
)sql";

constexpr const char* copy_revocations
  = "COPY seatledger.license_revocations (license_id, subscription_id, "
    "revoked_at, reason) FROM STDIN";

// Binary: a chunk is megabytes of bytea, which text format would send
// and parse as hex.
constexpr const char* copy_outbox_chunks
  = "COPY seatledger.outbox_chunks (lease_key, record_count, records) "
    "FROM STDIN (FORMAT binary)";

constexpr const char* copy_applied_events
  = "COPY seatledger.applied_events (key, source, id) FROM STDIN "
    "(FORMAT binary)";

constexpr const char* sql_apply_catalog
  = "SELECT seatledger.apply_catalog_changes($1::jsonb)";

constexpr const char* sql_upsert_positions = R"sql(
INSERT INTO seatledger.consumer_positions AS p
  (consumer_group, topic, partition, next_offset)
SELECT $1, x.topic, x.partition, x.next_offset
FROM unnest($2::text[], $3::integer[], $4::bigint[])
  AS x(topic, partition, next_offset)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET
  next_offset = EXCLUDED.next_offset, updated_at = now()
)sql";

// -- partitions ---------------------------------------------------------------

constexpr const char* sql_acquire_leases = R"sql(
INSERT INTO seatledger.partition_leases AS l
  (consumer_group, lease_key, epoch, owner, acquired_at)
SELECT $1, k.lease_key, 1, $3, now()
FROM unnest($2::text[]) WITH ORDINALITY AS k(lease_key, ord)
ORDER BY k.ord
ON CONFLICT (consumer_group, lease_key) DO UPDATE SET
  epoch = l.epoch + 1, owner = EXCLUDED.owner, acquired_at = now()
RETURNING l.lease_key, l.epoch
)sql";

constexpr const char* sqlstate_lock_not_available = "55P03";

// Taking a lease waits at most this long for a transaction holding its
// row: one that holds it longer is a previous owner's commit that will
// not end by itself (see acquire_leases).
constexpr const char* sql_lease_lock_wait
  = "SELECT set_config('lock_timeout', $1, true)";

// The open transactions holding the rows of these leases: while a
// transaction that updated or locked a row is open, the row version others
// see carries its id in `xmax`. Only one transaction at a time locks a
// lease row (plain UPDATEs; no foreign key points at the table, nothing
// takes FOR SHARE), so `xmax` is never a multixact id, which could equal an
// unrelated transaction's id.
constexpr const char* sql_lease_lockers = R"sql(
SELECT l.lease_key, l.owner, l.xmax::text
FROM seatledger.partition_leases AS l
WHERE l.consumer_group = $1 AND l.lease_key = ANY($2::text[])
  AND l.xmax::text <> '0'
)sql";

// Run with the login role's rights (ROLE NONE): the sessions to end logged
// in as that role, and only a member of a session's role may end it and
// read when its transaction started (pg_terminate_backend raises an error
// for any other, so those are left out first). Only the service's own
// sessions (by application_name) whose transaction is at least as old as
// the wait are ended: an operator's session holding a row is waited for.
constexpr const char* sql_as_login_role = "SET LOCAL ROLE NONE";
constexpr const char* sql_end_transactions = R"sql(
SELECT a.pid, a.backend_xid::text,
       extract(epoch FROM now() - a.xact_start)::float8,
       pg_terminate_backend(a.pid)
FROM pg_stat_activity AS a
WHERE a.backend_xid::text = ANY($1::text[]) AND a.application_name = $2
  AND pg_has_role(a.usesysid, 'USAGE')
  AND a.xact_start <= now() - $3::interval
  AND a.pid <> pg_backend_pid()
)sql";

constexpr const char* sql_held_leases = R"sql(
SELECT l.lease_key, l.epoch
FROM unnest($2::text[], $3::bigint[]) AS h(lease_key, epoch)
JOIN seatledger.partition_leases AS l
  ON l.consumer_group = $1 AND l.lease_key = h.lease_key
 AND l.epoch = h.epoch
)sql";

constexpr const char* sql_load_positions = R"sql(
SELECT p.topic, p.partition, p.next_offset
FROM unnest($2::text[], $3::integer[]) AS x(topic, partition)
JOIN seatledger.consumer_positions AS p
  ON p.consumer_group = $1 AND p.topic = x.topic
 AND p.partition = x.partition
)sql";

constexpr const char* sql_filter_applied = R"sql(
SELECT x.ord
FROM unnest($1::uuid[]) WITH ORDINALITY AS x(key, ord)
JOIN seatledger.applied_events AS a ON a.key = x.key
)sql";

constexpr const char* sql_purge_applied
  = "DELETE FROM seatledger.applied_events WHERE applied_at < $1";

// A rejection stays findable by id as long as its command is remembered as
// applied: a command sent again within the window is skipped as a duplicate
// and its sender can still read why it was refused.
constexpr const char* sql_purge_indexed_events
  = "DELETE FROM seatledger.event_index WHERE created_at < $1";

// -- state --------------------------------------------------------------------

constexpr const char* sql_load_orgs
  = "SELECT org_id, subscription_id, delta_seq FROM seatledger.orgs "
    "WHERE org_id = ANY($1::text[])";

constexpr const char* sql_load_memberships
  = "SELECT org_id, user_id, billable FROM seatledger.memberships "
    "WHERE org_id = ANY($1::text[])";

constexpr const char* sql_load_subscriptions = R"sql(
SELECT subscription_id, status, display_name, sf_account_id,
  sf_subscription_id, instance_domain, instance_type, plan_id, seats,
  seatledger.epoch_us(term_start), seatledger.epoch_us(term_end), trial,
  features, (metadata->'rate_limit_overrides')::text,
  (metadata->>'analytics_access')::boolean, archive_reason,
  seatledger.epoch_us(clock), seats_in_use, ledger_seq, ledger_hash,
  max_seats_used, seatledger.epoch_us(max_seats_used_changed_at), seats_owed,
  created_by_source, created_by_id, commands_applied
FROM seatledger.subscriptions WHERE subscription_id = ANY($1::text[])
)sql";

constexpr const char* sql_load_terms = R"sql(
SELECT subscription_id, seatledger.epoch_us(start), seatledger.epoch_us("end"),
  seatledger.epoch_us(usage_end), closed_months
FROM seatledger.subscription_terms WHERE subscription_id = ANY($1::text[])
ORDER BY subscription_id, start
)sql";

constexpr const char* sql_load_holders
  = "SELECT subscription_id, user_id, org_id FROM seatledger.seat_holders "
    "WHERE subscription_id = ANY($1::text[])";

constexpr const char* sql_load_subscription_orgs
  = "SELECT subscription_id, org_id, linked, last_delta_seq, "
    "owed_before_parts FROM seatledger.subscription_orgs "
    "WHERE subscription_id = ANY($1::text[])";

constexpr const char* sql_load_license_records = R"sql(
SELECT l.subscription_id, l.license_id, seatledger.epoch_us(l.expires_at),
  l.instance_domain, seatledger.epoch_us(r.revoked_at)
FROM seatledger.licenses AS l
LEFT JOIN seatledger.license_revocations AS r USING (license_id)
WHERE l.subscription_id = ANY($1::text[])
ORDER BY l.subscription_id, l.issued_at, l.license_id
)sql";

// Entries at or after each window start (NULL: the whole ledger): those
// after the last entry before it (effective times do not decrease along
// seq, so this is a suffix of the chain).
constexpr const char* sql_load_window_points = R"sql(
SELECT l.subscription_id, l.seq, l.seats_in_use,
  seatledger.epoch_us(l.effective_at)
FROM unnest($1::text[], $2::timestamptz[]) AS w(subscription_id, start)
JOIN seatledger.seat_ledger AS l
  ON l.subscription_id = w.subscription_id
 AND l.seq > coalesce(
       seatledger.ledger_seq_at(w.subscription_id, w.start, false), 0)
ORDER BY l.subscription_id, l.seq
)sql";

// The count in force before each window start.
constexpr const char* sql_load_window_carried = R"sql(
SELECT w.subscription_id,
  (SELECT l.seats_in_use FROM seatledger.seat_ledger AS l
   WHERE l.subscription_id = w.subscription_id
     AND l.seq = seatledger.ledger_seq_at(w.subscription_id, w.start, false))
FROM unnest($1::text[], $2::timestamptz[]) AS w(subscription_id, start)
WHERE w.start IS NOT NULL
)sql";

constexpr const char* sql_subscriptions_due = R"sql(
SELECT subscription_id FROM seatledger.subscriptions
WHERE partition = ANY($1::integer[]) AND next_month_end <= $2
  AND last_applied_at <= $3
ORDER BY next_month_end, subscription_id
)sql";

constexpr const char* sql_plan_entitlements = R"sql(
SELECT p.rate_plan_id,
  (SELECT c.custom_fields->>'ChargeTier__c'
   FROM seatledger.catalog_charges AS c
   WHERE c.rate_plan_id = p.rate_plan_id
     AND c.custom_fields->>'CDotPlanType__c' = 'base_product'
   ORDER BY c.position LIMIT 1),
  CASE WHEN jsonb_typeof(p.custom_fields->'Features__c') = 'array'
       THEN (p.custom_fields->'Features__c')::text ELSE '[]' END
FROM seatledger.catalog_rate_plans AS p
WHERE NOT p.removed
)sql";

constexpr const char* sql_catalog_version
  = "SELECT version FROM seatledger.catalog_state";

// -- outbox -------------------------------------------------------------------

// Rows of the pre-chunk outbox table (migration 1) are still published
// first; their seq goes out negated so the two kinds never collide.
constexpr const char* sql_fetch_unpublished = R"sql(
SELECT outbox_seq, event_id, topic, key, value, headers::text, lease_key
FROM seatledger.outbox
WHERE published_at IS NULL AND lease_key = ANY($1::text[])
ORDER BY outbox_seq LIMIT $2
)sql";

// Whole chunks, in order: the first, then more while the events before each
// are fewer than $3, so chunks past the caller's limit are not sent. Run as
// a binary_query (chunks arrive as raw bytes), one round trip with its
// parameters, not as a named prepared statement.
constexpr const char* sql_fetch_chunks = R"sql(
SELECT chunk_seq, lease_key, records
FROM (
  SELECT chunk_seq, lease_key, records,
    sum(record_count) OVER (ORDER BY chunk_seq) - record_count AS before
  FROM seatledger.outbox_chunks
  WHERE published_at IS NULL AND lease_key = ANY($1::text[])
  ORDER BY chunk_seq LIMIT $2
) AS c
WHERE before < $3
ORDER BY chunk_seq
)sql";

constexpr const char* sql_mark_published = R"sql(
UPDATE seatledger.outbox SET published_at = now()
WHERE outbox_seq = ANY($1::bigint[]) AND published_at IS NULL
)sql";

constexpr const char* sql_mark_chunks_published = R"sql(
UPDATE seatledger.outbox_chunks SET published_at = now()
WHERE chunk_seq = ANY($1::bigint[]) AND published_at IS NULL
)sql";

constexpr const char* sql_unpublished_count = R"sql(
SELECT (SELECT count(*) FROM seatledger.outbox WHERE published_at IS NULL)
     + (SELECT coalesce(sum(record_count), 0)
        FROM seatledger.outbox_chunks WHERE published_at IS NULL)
)sql";

constexpr const char* sql_purge_published
  = "DELETE FROM seatledger.outbox WHERE published_at < $1";

constexpr const char* sql_purge_published_chunks
  = "DELETE FROM seatledger.outbox_chunks WHERE published_at < $1";

constexpr const char* sql_outbox_event = R"sql(
SELECT convert_to(value, 'UTF8') FROM seatledger.event_index
WHERE event_id = $1
UNION ALL
(SELECT value FROM seatledger.outbox WHERE event_id = $1
 ORDER BY outbox_seq LIMIT 1)
LIMIT 1
)sql";

constexpr const char* sql_index_events = R"sql(
INSERT INTO seatledger.event_index (event_id, value)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (event_id) DO NOTHING
)sql";

// -- queries ------------------------------------------------------------------

constexpr const char* sql_ledger_page = R"sql(
SELECT subscription_id, seq, seats_in_use, seatledger.epoch_us(effective_at),
  cause_source, cause_id, cause_type, seatledger.epoch_us(cause_time),
  org_id, user_id, prev_hash, hash
FROM seatledger.seat_ledger
WHERE subscription_id = $1 AND seq > $2
ORDER BY seq LIMIT $3
)sql";

constexpr const char* sql_seats_at = R"sql(
SELECT seats_in_use FROM seatledger.seat_ledger
WHERE subscription_id = $1 AND seq = seatledger.ledger_seq_at($1, $2, true)
)sql";

constexpr const char* sql_pool_exists = R"sql(
SELECT EXISTS (SELECT FROM seatledger.subscriptions
               WHERE subscription_id = $1)
    OR EXISTS (SELECT FROM seatledger.seat_ledger WHERE subscription_id = $1)
)sql";

constexpr const char* sql_holders_page = R"sql(
WITH users AS (
  SELECT DISTINCT user_id FROM seatledger.seat_holders
  WHERE subscription_id = $1 AND user_id > $2
  ORDER BY user_id LIMIT $3)
SELECT h.user_id, h.org_id
FROM seatledger.seat_holders AS h JOIN users USING (user_id)
WHERE h.subscription_id = $1
ORDER BY h.user_id, h.org_id
)sql";

constexpr const char* sql_window_points = R"sql(
SELECT seq, seats_in_use, seatledger.epoch_us(effective_at)
FROM seatledger.seat_ledger
WHERE subscription_id = $1
  AND seq > coalesce(seatledger.ledger_seq_at($1, $2::timestamptz, false), 0)
ORDER BY seq
)sql";

// For each month, the last entry before its start (its carried-in count)
// and the first entry of its highest count (by seq, which is by time:
// effective times do not decrease along seq). The month's entries are the
// seq range between the two ledger_seq_at probes, so each month costs two
// probes (MATERIALIZED, so they run once per month however often the
// lateral subqueries refer to them) and one scan of its own entries inside
// PostgreSQL.
constexpr const char* sql_usage_window = R"sql(
WITH months AS MATERIALIZED (
  SELECT seatledger.ledger_seq_at($1, m.start, false) AS before_seq,
         seatledger.ledger_seq_at($1, m.stop, false) AS last_seq
  FROM unnest($2::timestamptz[], $3::timestamptz[]) AS m(start, stop))
SELECT DISTINCT p.seq, p.seats_in_use, seatledger.epoch_us(p.effective_at)
FROM months
CROSS JOIN LATERAL (
  (SELECT l.seq, l.seats_in_use, l.effective_at
   FROM seatledger.seat_ledger AS l
   WHERE l.subscription_id = $1 AND l.seq = months.before_seq)
  UNION ALL
  (SELECT l.seq, l.seats_in_use, l.effective_at
   FROM seatledger.seat_ledger AS l
   WHERE l.subscription_id = $1
     AND l.seq > coalesce(months.before_seq, 0) AND l.seq <= months.last_seq
   ORDER BY l.seats_in_use DESC, l.seq
   LIMIT 1)) AS p
ORDER BY p.seq
)sql";

constexpr const char* sql_window_carried = R"sql(
SELECT seats_in_use FROM seatledger.seat_ledger
WHERE subscription_id = $1 AND seq = seatledger.ledger_seq_at($1, $2, false)
)sql";

#define SEATLEDGER_LICENSE_COLUMNS                                         \
  "l.license_id, l.subscription_id, seatledger.epoch_us(l.issued_at), "    \
  "seatledger.epoch_us(l.not_before), seatledger.epoch_us(l.expires_at), " \
  "l.seats, l.plan_id, l.tier, l.features, l.instance_domain, "            \
  "l.instance_type, l.trial, l.issued_by_source, l.issued_by_id, "         \
  "l.claims::text, l.license_key, l.key_id, "                              \
  "seatledger.epoch_us(r.revoked_at), r.reason "                           \
  "FROM seatledger.licenses AS l "                                         \
  "LEFT JOIN seatledger.license_revocations AS r USING (license_id) "

constexpr const char* sql_licenses_of
  = "SELECT " SEATLEDGER_LICENSE_COLUMNS "WHERE l.subscription_id = $1 "
    "ORDER BY l.issued_at DESC, l.license_id DESC";

constexpr const char* sql_license = "SELECT " SEATLEDGER_LICENSE_COLUMNS
                                    "WHERE l.license_id = $1";

constexpr const char* sql_license_issued_by
  = "SELECT " SEATLEDGER_LICENSE_COLUMNS
    "WHERE l.issued_by_source = $1 AND l.issued_by_id = $2";

#undef SEATLEDGER_LICENSE_COLUMNS

constexpr const char* sql_revocations = R"sql(
SELECT license_id, subscription_id, seatledger.epoch_us(revoked_at), reason
FROM seatledger.license_revocations ORDER BY revoked_at, license_id
)sql";

constexpr const char* sql_org = R"sql(
SELECT (SELECT subscription_id FROM seatledger.orgs WHERE org_id = $1),
  (SELECT count(*) FROM seatledger.memberships WHERE org_id = $1),
  (SELECT count(*) FROM seatledger.memberships
   WHERE org_id = $1 AND billable),
  EXISTS (SELECT FROM seatledger.orgs WHERE org_id = $1)
  OR EXISTS (SELECT FROM seatledger.memberships WHERE org_id = $1)
)sql";

// Distinct subscriptions of the ledger by skipping along the primary key
// (a plain DISTINCT would read every entry).
constexpr const char* sql_ledger_subscriptions = R"sql(
WITH RECURSIVE s(subscription_id) AS (
  (SELECT subscription_id FROM seatledger.seat_ledger
   ORDER BY subscription_id LIMIT 1)
  UNION ALL
  SELECT (SELECT l.subscription_id FROM seatledger.seat_ledger AS l
          WHERE l.subscription_id > s.subscription_id
          ORDER BY l.subscription_id LIMIT 1)
  FROM s WHERE s.subscription_id IS NOT NULL)
SELECT subscription_id FROM s WHERE subscription_id IS NOT NULL
UNION
SELECT subscription_id FROM seatledger.subscriptions WHERE ledger_seq > 0
ORDER BY 1
)sql";

constexpr const char* sql_ledger_head
  = "SELECT ledger_seq, ledger_hash FROM seatledger.subscriptions "
    "WHERE subscription_id = $1";

struct named_statement {
  const char* name;
  const char* sql;
};

constexpr named_statement prepared_statements[] = {
  {"check_leases", sql_check_leases},
  {"merge_orgs", sql_merge_orgs},
  {"update_memberships", sql_update_memberships},
  {"delete_memberships", sql_delete_memberships},
  {"update_orgs", sql_update_orgs},
  {"update_subscription_orgs", sql_update_subscription_orgs},
  {"update_subscriptions", sql_update_subscriptions},
  {"update_subscription_counts", sql_update_subscription_counts},
  {"merge_subscriptions", sql_merge_subscriptions},
  {"merge_terms", sql_merge_terms},
  {"merge_subscription_orgs", sql_merge_subscription_orgs},
  {"delete_holders", sql_delete_holders},
  {"apply_catalog", sql_apply_catalog},
  {"upsert_positions", sql_upsert_positions},
  {"acquire_leases", sql_acquire_leases},
  {"lease_lock_wait", sql_lease_lock_wait},
  {"lease_lockers", sql_lease_lockers},
  {"end_transactions", sql_end_transactions},
  {"held_leases", sql_held_leases},
  {"load_positions", sql_load_positions},
  {"filter_applied", sql_filter_applied},
  {"purge_applied", sql_purge_applied},
  {"purge_indexed_events", sql_purge_indexed_events},
  {"load_orgs", sql_load_orgs},
  {"load_memberships", sql_load_memberships},
  {"load_subscriptions", sql_load_subscriptions},
  {"load_terms", sql_load_terms},
  {"load_holders", sql_load_holders},
  {"load_subscription_orgs", sql_load_subscription_orgs},
  {"load_license_records", sql_load_license_records},
  {"load_window_points", sql_load_window_points},
  {"load_window_carried", sql_load_window_carried},
  {"subscriptions_due", sql_subscriptions_due},
  {"plan_entitlements", sql_plan_entitlements},
  {"catalog_version", sql_catalog_version},
  {"fetch_unpublished", sql_fetch_unpublished},
  {"mark_published", sql_mark_published},
  {"mark_chunks_published", sql_mark_chunks_published},
  {"unpublished_count", sql_unpublished_count},
  {"purge_published", sql_purge_published},
  {"purge_published_chunks", sql_purge_published_chunks},
  {"outbox_event", sql_outbox_event},
  {"index_events", sql_index_events},
  {"ledger_page", sql_ledger_page},
  {"seats_at", sql_seats_at},
  {"pool_exists", sql_pool_exists},
  {"holders_page", sql_holders_page},
  {"window_points", sql_window_points},
  {"window_carried", sql_window_carried},
  {"usage_window", sql_usage_window},
  {"licenses_of", sql_licenses_of},
  {"license", sql_license},
  {"license_issued_by", sql_license_issued_by},
  {"revocations", sql_revocations},
  {"org", sql_org},
  {"ledger_subscriptions", sql_ledger_subscriptions},
  {"ledger_head", sql_ledger_head},
};

/// Entries per round trip when verifying a chain.
constexpr std::int64_t verify_page_size = 10'000;

// -- encoding helpers ---------------------------------------------------------

record_headers parse_headers(std::string_view json_text) {
  record_headers result;
  auto doc = nlohmann::json::parse(json_text);
  for (const auto& pair : doc)
    if (pair.is_array() && pair.size() == 2)
      result.emplace_back(pair[0].get<std::string>(),
                          pair[1].get<std::string>());
  return result;
}

std::string metadata_json(const domain::subscription_record& r) {
  std::string out = "{";
  if (r.rate_limit_overrides) {
    out += "\"rate_limit_overrides\":";
    out += *r.rate_limit_overrides;
  }
  if (r.analytics_access) {
    if (out.size() > 1)
      out.push_back(',');
    out += "\"analytics_access\":";
    out += *r.analytics_access ? "true" : "false";
  }
  out.push_back('}');
  return out;
}

nlohmann::json json_object_or_empty(const std::string& text) {
  if (text.empty())
    return nlohmann::json::object();
  return nlohmann::json::parse(text);
}

/// The catalog changes of a batch in application order: record order. The
/// batch keeps upserts and removals apart, so their relative order is rebuilt
/// from `record_order` (ties, as in batches built by hand: upserts first).
std::string catalog_changes_json(const storage_batch& b) {
  struct item {
    std::int64_t record_order;
    int kind;
    std::size_t index;
  };
  std::vector<item> order;
  for (std::size_t i = 0; i < b.catalog_upserts.size(); ++i)
    order.push_back({b.catalog_upserts[i].record_order, 0, i});
  for (std::size_t i = 0; i < b.catalog_removals.size(); ++i)
    order.push_back({b.catalog_removals[i].record_order, 1, i});
  std::stable_sort(
    order.begin(), order.end(), [](const item& x, const item& y) {
      return x.record_order < y.record_order
             || (x.record_order == y.record_order && x.kind < y.kind);
    });
  auto changes = nlohmann::json::array();
  for (const auto& it : order) {
    if (it.kind == 0) {
      const auto& row = b.catalog_upserts[it.index];
      const auto& p = row.plan;
      auto charges = nlohmann::json::array();
      for (const auto& c : p.charges)
        charges.push_back(
          {{"id", c.id},
           {"name", c.name},
           {"billing_period", c.billing_period},
           {"custom_fields", json_object_or_empty(c.custom_fields)}});
      changes.push_back(
        {{"op", "upsert"},
         {"product", {{"id", p.product.id}, {"name", p.product.name}}},
         {"rate_plan",
          {{"id", p.rate_plan.id},
           {"name", p.rate_plan.name},
           {"custom_fields", json_object_or_empty(p.rate_plan.custom_fields)}}},
         {"charges", std::move(charges)},
         {"cause", {{"source", row.cause.source}, {"id", row.cause.id}}}});
    } else {
      const auto& row = b.catalog_removals[it.index];
      changes.push_back(
        {{"op", "remove"},
         {"rate_plan_id", row.rate_plan_id},
         {"cause", {{"source", row.cause.source}, {"id", row.cause.id}}}});
    }
  }
  return changes.dump();
}

// -- decoding helpers ---------------------------------------------------------

std::string text_of(const pqxx::field& f) {
  return std::string{f.c_str(), f.size()};
}

/// Two identifiers as one key (identifiers hold no NUL).
std::string pair_key(std::string_view a, std::string_view b) {
  std::string key;
  key.reserve(a.size() + 1 + b.size());
  key.append(a).push_back('\0');
  key.append(b);
  return key;
}

/// The last row per key, in key order, as the upserts' DISTINCT ON would
/// choose it.
template<class Row, class KeyOf>
std::vector<const Row*>
last_per_key(const std::vector<Row>& rows, KeyOf key_of) {
  std::map<std::string, const Row*> last;
  for (const auto& row : rows)
    last[key_of(row)] = &row;
  std::vector<const Row*> chosen;
  chosen.reserve(last.size());
  for (const auto& [key, row] : last)
    chosen.push_back(row);
  return chosen;
}

/// Runs `statement` on `rows` by `run(statement, rows)` and returns the rows
/// whose keys it did not return (`key_of` names a row's key, `returned_key`
/// the key of a row the statement returned), in their order.
template<class Row, class KeyOf, class ReturnedKey, class Run>
std::vector<const Row*> not_returned(const std::vector<const Row*>& rows,
                                     KeyOf key_of, ReturnedKey returned_key,
                                     const char* statement, Run run) {
  auto returned = run(statement, rows);
  if (returned.size() == rows.size())
    return {};
  std::set<std::string> done;
  for (const auto& r : returned)
    done.insert(returned_key(r));
  std::vector<const Row*> rest;
  for (const auto* row : rows)
    if (done.count(key_of(*row)) == 0)
      rest.push_back(row);
  return rest;
}

/// Writes state rows by `update` and then, for the keys it did not return,
/// by `upsert` (see sql_update_orgs): one row per key, in key order.
template<class Row, class KeyOf, class ReturnedKey, class Run>
void update_then_upsert(const std::vector<const Row*>& chosen, KeyOf key_of,
                        ReturnedKey returned_key, const char* update,
                        const char* upsert, Run run) {
  if (chosen.empty())
    return;
  auto missing = not_returned(chosen, key_of, returned_key, update, run);
  if (!missing.empty())
    run(upsert, missing);
}

domain::ledger_entry entry_of(const pqxx::row& r) {
  domain::ledger_entry e;
  e.subscription_id = text_of(r[0]);
  e.seq = r[1].as<std::int64_t>();
  e.seats_in_use = r[2].as<std::int64_t>();
  e.effective_at = micros_of(r[3]);
  e.cause.source = text_of(r[4]);
  e.cause.id = text_of(r[5]);
  e.cause.type = text_of(r[6]);
  e.cause.time = micros_of(r[7]);
  e.org_id = text_of(r[8]);
  e.user_id = text_of(r[9]);
  e.prev_hash = text_of(r[10]);
  e.hash = text_of(r[11]);
  return e;
}

domain::instance_type instance_type_of(const pqxx::field& f) {
  auto parsed = domain::parse_instance_type(f.c_str());
  if (!parsed)
    throw std::runtime_error{"unknown instance type in the database: "
                             + text_of(f)};
  return *parsed;
}

license_view license_view_of(const pqxx::row& r) {
  license_view v;
  auto& g = v.license.grant;
  g.license_id = text_of(r[0]);
  g.subscription_id = text_of(r[1]);
  g.issued_at = micros_of(r[2]);
  g.not_before = micros_of(r[3]);
  g.expires_at = micros_of(r[4]);
  g.seats = r[5].as<std::int64_t>();
  g.plan_id = text_of(r[6]);
  g.tier = opt_text_of(r[7]);
  g.features = parse_text_array(r[8]);
  g.instance_domain = text_of(r[9]);
  g.instance_type = instance_type_of(r[10]);
  g.trial = r[11].as<bool>();
  g.issued_by = {text_of(r[12]), text_of(r[13])};
  v.license.claims_json = compact_json(r[14].c_str());
  v.license.license_key = text_of(r[15]);
  v.license.key_id = text_of(r[16]);
  v.revoked_at = opt_micros_of(r[17]);
  v.revocation_reason = opt_text_of(r[18]);
  return v;
}

std::vector<std::string> unique_sorted(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  return xs;
}

/// What of a subscription is read: all an actor works with, or what a query
/// shows (the record with its terms and linked orgs).
enum class subscription_part { actor_state, record_and_orgs };

std::map<std::string, subscription_snapshot>
load_subscriptions_in(pqxx::transaction_base& tx,
                      const std::vector<std::string>& ids,
                      subscription_part part = subscription_part::actor_state) {
  std::map<std::string, subscription_snapshot> result;
  if (ids.empty())
    return result;
  auto id_array = text_array(unique_sorted(ids));
  for (const auto& r : tx.exec_prepared("load_subscriptions", id_array)) {
    domain::subscription_record rec;
    rec.subscription_id = text_of(r[0]);
    auto status = domain::parse_subscription_status(r[1].c_str());
    if (!status)
      throw std::runtime_error{"unknown subscription status in the database: "
                               + text_of(r[1])};
    rec.status = *status;
    rec.display_name = text_of(r[2]);
    rec.customer.salesforce_account_id = opt_text_of(r[3]);
    rec.customer.salesforce_subscription_id = opt_text_of(r[4]);
    rec.instance.domain = text_of(r[5]);
    rec.instance.type = instance_type_of(r[6]);
    rec.plan_id = text_of(r[7]);
    rec.seats = r[8].as<std::int64_t>();
    rec.term.start = micros_of(r[9]);
    rec.term.end = micros_of(r[10]);
    rec.trial = r[11].as<bool>();
    rec.features = parse_text_array(r[12]);
    if (!r[13].is_null())
      rec.rate_limit_overrides = compact_json(r[13].c_str());
    if (!r[14].is_null())
      rec.analytics_access = r[14].as<bool>();
    rec.archive_reason = opt_text_of(r[15]);
    rec.clock = micros_of(r[16]); // NULL: never applied (timestamp::min)
    rec.seats_in_use = r[17].as<std::int64_t>();
    rec.ledger_seq = r[18].as<std::int64_t>();
    rec.ledger_hash = text_of(r[19]);
    rec.max_seats_used = r[20].as<std::int64_t>();
    rec.max_seats_used_changed_at = opt_micros_of(r[21]);
    rec.seats_owed = r[22].as<std::int64_t>();
    if (!r[23].is_null() && !r[24].is_null())
      rec.created_by = domain::event_key{text_of(r[23]), text_of(r[24])};
    rec.commands_applied = r[25].as<std::int64_t>();
    auto id = rec.subscription_id;
    result[id].record = std::move(rec);
  }
  if (result.empty())
    return result;
  std::vector<std::string> found;
  for (const auto& kv : result)
    found.push_back(kv.first);
  auto found_array = text_array(found);
  for (const auto& r : tx.exec_prepared("load_terms", found_array)) {
    domain::term_usage t;
    t.start = micros_of(r[1]);
    t.end = micros_of(r[2]);
    t.usage_end = micros_of(r[3]);
    t.closed_months = r[4].as<int>();
    result[text_of(r[0])].record.terms.push_back(t);
  }
  if (part == subscription_part::actor_state)
    for (const auto& r : tx.exec_prepared("load_holders", found_array))
      result[text_of(r[0])].holders[text_of(r[1])].insert(text_of(r[2]));
  for (const auto& r :
       tx.exec_prepared("load_subscription_orgs", found_array)) {
    auto& snap = result[text_of(r[0])];
    auto org_id = text_of(r[1]);
    if (r[2].as<bool>())
      snap.orgs.insert(org_id);
    snap.org_delta_seqs[org_id] = r[3].as<std::int64_t>();
    if (!r[4].is_null())
      snap.owed_before_parts[org_id] = r[4].as<std::int64_t>();
  }
  // The seat holders, licenses and ledger window are the actor's working
  // set. A query needs none of them, and the window is up to 400 days of
  // ledger: a state query of a busy subscription read 155,000 entries
  // twice (0.3-0.5 s) and left the HTTP thread's memory 100 MB larger.
  if (part == subscription_part::record_and_orgs)
    return result;
  for (const auto& r : tx.exec_prepared("load_license_records", found_array)) {
    domain::license_record lic;
    lic.license_id = text_of(r[1]);
    lic.expires_at = micros_of(r[2]);
    lic.instance_domain = text_of(r[3]);
    lic.revoked_at = opt_micros_of(r[4]);
    result[text_of(r[0])].licenses.push_back(std::move(lic));
  }
  // The window starts depend on the records (terms included).
  std::vector<domain::timestamp> starts;
  for (const auto& id : found) {
    auto& snap = result[id];
    starts.push_back(domain::ledger_window_start(snap.record));
    snap.window.exact_from = starts.back();
  }
  auto start_array = time_array(starts);
  for (const auto& r :
       tx.exec_prepared("load_window_points", found_array, start_array)) {
    domain::ledger_point p;
    p.seq = r[1].as<std::int64_t>();
    p.seats_in_use = r[2].as<std::int64_t>();
    p.effective_at = micros_of(r[3]);
    result[text_of(r[0])].window.points.push_back(p);
  }
  for (const auto& r :
       tx.exec_prepared("load_window_carried", found_array, start_array))
    if (!r[1].is_null())
      result[text_of(r[0])].window.carried_seats = r[1].as<std::int64_t>();
  return result;
}

} // namespace

// -- impl ---------------------------------------------------------------------

struct pg_store::impl {
  std::string conninfo;
  pg_store_options options;
  std::unique_ptr<pg_connection> conn;
  copy_buffer buf; // reused across commits (keeps its capacity)

  pg_connection& connection() {
    if (conn && conn->is_open())
      return *conn;
    conn.reset();
    auto fresh = std::make_unique<pg_connection>(conninfo);
    {
      pqxx::nontransaction tx{*fresh};
      tx.exec_params(sql_set_application, options.application_name);
      if (options.runtime_role && !options.runtime_role->empty())
        tx.exec_params(sql_set_role, *options.runtime_role);
      if (options.commits_may_be_lost_in_a_crash)
        tx.exec(sql_commit_without_flush);
    }
    for (const auto& s : prepared_statements)
      fresh->prepare(s.name, s.sql);
    conn = std::move(fresh);
    return *conn;
  }

  template<class F>
  auto run(std::string_view what, F&& f)
    -> caf::expected<std::invoke_result_t<F, pg_connection&>> {
    using result_type = std::invoke_result_t<F, pg_connection&>;
    try {
      auto& c = connection();
      if constexpr (std::is_void_v<result_type>) {
        f(c);
        return caf::expected<void>{};
      } else {
        return f(c);
      }
    } catch (...) {
      auto ex = std::current_exception();
      bool gone = conn && !connection_ok(*conn);
      if (gone || connection_lost(ex))
        conn.reset();
      return to_error(ex, what, gone);
    }
  }

  void commit(pg_connection& c, const storage_batch& b);

  /// `lease_lock_wait` as PostgreSQL reads a duration; at least 1 ms (0
  /// would turn lock_timeout off and wait for ever).
  std::string lock_wait() const {
    return std::to_string(std::max<std::int64_t>(
             1, static_cast<std::int64_t>(options.lease_lock_wait.count())))
           + "ms";
  }

  /// Ends the sessions whose open transactions hold the rows of `keys`;
  /// how many it ended.
  std::size_t end_lease_holders(pg_connection& c,
                                const std::string& consumer_group,
                                const std::vector<std::string>& keys) {
    std::map<std::string, std::pair<std::string, std::string>> lockers;
    std::vector<std::string> xids;
    {
      pqxx::nontransaction tx{c};
      for (const auto& r : tx.exec_prepared("lease_lockers", consumer_group,
                                            text_array(keys))) {
        auto xid = text_of(r[2]);
        auto& [leases, owner] = lockers[xid];
        leases += (leases.empty() ? "" : ", ") + text_of(r[0]);
        owner = r[1].is_null() ? "" : text_of(r[1]);
        xids.push_back(xid);
      }
    }
    if (xids.empty())
      return 0;
    std::size_t ended = 0;
    pqxx::work tx{c};
    tx.exec(sql_as_login_role);
    for (const auto& r :
         tx.exec_prepared("end_transactions", text_array(xids),
                          options.application_name, lock_wait())) {
      if (!r[3].as<bool>())
        continue;
      ++ended;
      if (options.on_lease_holder_ended) {
        const auto& [leases, owner] = lockers[text_of(r[1])];
        options.on_lease_holder_ended(
          {leases, owner, r[0].as<std::int64_t>(), r[2].as<double>()});
      }
    }
    tx.commit();
    return ended;
  }

  pqxx::result
  write_subscriptions(pqxx::work& tx, const char* statement,
                      const std::vector<const subscription_row*>& rows);
  void write_memberships(pg_connection& c, pqxx::work& tx,
                         const std::vector<membership_row>& rows);
  void write_subscription_rows(pqxx::work& tx,
                               const std::vector<subscription_row>& rows);
  pqxx::result
  write_subscription_counts(pqxx::work& tx, const char* statement,
                            const std::vector<const subscription_row*>& rows);
};

void pg_store::impl::write_memberships(
  pg_connection& c, pqxx::work& tx, const std::vector<membership_row>& rows) {
  // Each row says what the member was before it, from state loaded from
  // what is committed, so a member's net change in the batch runs from its
  // first row's `previous` to its last row's `billable`. New members
  // therefore need no conflict check. Should that contract break, the COPY
  // fails on the primary key and the batch is retried from reloaded state.
  using member_key = std::pair<std::string_view, std::string_view>;
  using before_after = std::pair<std::optional<bool>, std::optional<bool>>;
  std::map<member_key, before_after> net;
  for (const auto& m : rows) {
    auto [it, fresh] = net.try_emplace(member_key{m.org_id, m.user_id},
                                       m.previous, m.billable);
    if (!fresh)
      it->second.second = m.billable;
  }
  std::vector<std::string> gone_orgs, gone_users, changed_orgs, changed_users;
  std::vector<std::optional<bool>> changed_billable;
  bool additions = false;
  for (const auto& [key, change] : net) {
    const auto& [before, after] = change;
    if (before == after)
      continue;
    if (!after) {
      gone_orgs.emplace_back(key.first);
      gone_users.emplace_back(key.second);
    } else if (!before) {
      additions = true;
    } else {
      changed_orgs.emplace_back(key.first);
      changed_users.emplace_back(key.second);
      changed_billable.push_back(after);
    }
  }
  if (!gone_orgs.empty())
    tx.exec_prepared("delete_memberships", text_array(gone_orgs),
                     text_array(gone_users));
  if (!changed_orgs.empty())
    tx.exec_prepared("update_memberships", text_array(changed_orgs),
                     text_array(changed_users), bool_array(changed_billable));
  if (!additions)
    return;
  copy_stream out{c, copy_memberships, buf};
  buf.binary_header();
  for (const auto& [key, change] : net) {
    const auto& [before, after] = change;
    if (before || !after)
      continue;
    buf.binary_row(3).binary_bytes(key.first).binary_bytes(key.second);
    buf.binary_bool(*after);
    out.row_done();
  }
  buf.binary_trailer();
  out.finish();
}

namespace {

/// The columns of subscription rows a seat delta moves, one array element
/// per row.
struct count_columns {
  std::vector<std::string> hashes;
  std::vector<std::int64_t> in_use, ledger_seqs, max_used, owed;
  std::vector<domain::timestamp> clocks, max_changed, month_ends;

  void add(const subscription_row& row) {
    const auto& r = row.record;
    clocks.push_back(r.clock); // min: NULL
    in_use.push_back(r.seats_in_use);
    ledger_seqs.push_back(r.ledger_seq);
    hashes.push_back(r.ledger_hash);
    max_used.push_back(r.max_seats_used);
    max_changed.push_back(
      r.max_seats_used_changed_at.value_or(domain::timestamp::min()));
    owed.push_back(r.seats_owed);
    month_ends.push_back(row.next_month_end.value_or(domain::timestamp::min()));
  }
};

} // namespace

pqxx::result pg_store::impl::write_subscriptions(
  pqxx::work& tx, const char* statement,
  const std::vector<const subscription_row*>& rows) {
  std::vector<std::string> ids, statuses, names, domains, types, plans,
    features, metadata;
  std::vector<std::optional<std::string>> sf_accounts, sf_subscriptions,
    archive_reasons, created_sources, created_ids;
  std::vector<std::int32_t> partitions;
  std::vector<std::int64_t> seats, commands_applied;
  std::vector<domain::timestamp> starts, ends;
  std::vector<std::optional<bool>> trials;
  count_columns counts;
  for (const auto* row : rows) {
    const auto& r = row->record;
    ids.push_back(r.subscription_id);
    partitions.push_back(row->partition);
    statuses.push_back(domain::to_string(r.status));
    names.push_back(r.display_name);
    sf_accounts.push_back(r.customer.salesforce_account_id);
    sf_subscriptions.push_back(r.customer.salesforce_subscription_id);
    domains.push_back(r.instance.domain);
    types.push_back(domain::to_string(r.instance.type));
    plans.push_back(r.plan_id);
    seats.push_back(r.seats);
    starts.push_back(r.term.start);
    ends.push_back(r.term.end);
    trials.push_back(r.trial);
    features.push_back(text_array(r.features));
    metadata.push_back(metadata_json(r));
    archive_reasons.push_back(r.archive_reason);
    counts.add(*row);
    created_sources.push_back(
      r.created_by ? std::optional<std::string>{r.created_by->source}
                   : std::nullopt);
    created_ids.push_back(r.created_by
                            ? std::optional<std::string>{r.created_by->id}
                            : std::nullopt);
    commands_applied.push_back(r.commands_applied);
  }
  return tx.exec_prepared(
    statement, text_array(ids), int_array(partitions), text_array(statuses),
    text_array(names), text_array(sf_accounts), text_array(sf_subscriptions),
    text_array(domains), text_array(types), text_array(plans), int_array(seats),
    time_array(starts), time_array(ends), bool_array(trials),
    text_array(features), text_array(metadata), text_array(archive_reasons),
    time_array(counts.clocks), int_array(counts.in_use),
    int_array(counts.ledger_seqs), text_array(counts.hashes),
    int_array(counts.max_used), time_array(counts.max_changed),
    int_array(counts.owed), text_array(created_sources),
    text_array(created_ids), time_array(counts.month_ends),
    int_array(commands_applied));
}

void pg_store::impl::write_subscription_rows(
  pqxx::work& tx, const std::vector<subscription_row>& rows) {
  auto key = [](const subscription_row& r) { return r.record.subscription_id; };
  auto returned_id = [](const pqxx::row& r) { return text_of(r[0]); };
  auto whole_rows = [&](const char* statement, const auto& chosen) {
    return write_subscriptions(tx, statement, chosen);
  };
  // Counts only if every row of the subscription in the batch is.
  std::set<std::string_view> written_whole;
  for (const auto& r : rows)
    if (!r.counts_only)
      written_whole.insert(r.record.subscription_id);
  std::vector<const subscription_row*> counts;
  std::vector<const subscription_row*> whole;
  for (const auto* r : last_per_key(rows, key))
    (r->counts_only && written_whole.count(r->record.subscription_id) == 0
       ? counts
       : whole)
      .push_back(r);
  if (!counts.empty()) {
    auto not_stored
      = not_returned(counts, key, returned_id, "update_subscription_counts",
                     [&](const char* statement, const auto& chosen) {
                       return write_subscription_counts(tx, statement, chosen);
                     });
    if (!not_stored.empty()) {
      whole.insert(whole.end(), not_stored.begin(), not_stored.end());
      std::sort(whole.begin(), whole.end(), [](const auto* x, const auto* y) {
        return x->record.subscription_id < y->record.subscription_id;
      });
    }
  }
  update_then_upsert(whole, key, returned_id, "update_subscriptions",
                     "merge_subscriptions", whole_rows);
}

pqxx::result pg_store::impl::write_subscription_counts(
  pqxx::work& tx, const char* statement,
  const std::vector<const subscription_row*>& rows) {
  std::vector<std::string> ids;
  count_columns counts;
  for (const auto* row : rows) {
    ids.push_back(row->record.subscription_id);
    counts.add(*row);
  }
  return tx.exec_prepared(statement, text_array(ids), time_array(counts.clocks),
                          int_array(counts.in_use),
                          int_array(counts.ledger_seqs),
                          text_array(counts.hashes), int_array(counts.max_used),
                          time_array(counts.max_changed),
                          int_array(counts.owed),
                          time_array(counts.month_ends));
}

void pg_store::impl::commit(pg_connection& c, const storage_batch& b) {
  pqxx::work tx{c};
  if (!b.leases.empty()) {
    std::vector<std::pair<std::string, std::int64_t>> held;
    for (const auto& l : b.leases)
      held.emplace_back(l.lease_key, l.epoch);
    std::sort(held.begin(), held.end());
    held.erase(std::unique(held.begin(), held.end()), held.end());
    std::vector<std::string> keys;
    std::vector<std::int64_t> epochs;
    for (auto& [key, epoch] : held) {
      keys.push_back(key);
      epochs.push_back(epoch);
    }
    auto res = tx.exec_prepared("check_leases", b.consumer_group,
                                text_array(keys), int_array(epochs));
    if (res.size() != held.size()) {
      std::set<std::string> ok;
      for (const auto& r : res)
        ok.insert(text_of(r[0]));
      std::string lost;
      for (const auto& [key, epoch] : held)
        if (ok.count(key) == 0)
          lost += (lost.empty() ? "" : ", ") + key + " (epoch "
                  + std::to_string(epoch) + ")";
      throw fenced_error{"lease taken over by another owner: " + lost};
    }
  }
  auto returned_id = [](const pqxx::row& r) { return text_of(r[0]); };
  auto org_key = [](const org_row& o) { return o.org_id; };
  if (!b.orgs.empty())
    update_then_upsert(
      last_per_key(b.orgs, org_key), org_key, returned_id, "update_orgs",
      "merge_orgs", [&](const char* statement, const auto& rows) {
        std::vector<std::string> ids;
        std::vector<std::optional<std::string>> subs;
        std::vector<std::int32_t> partitions;
        std::vector<std::int64_t> seqs;
        for (const auto* o : rows) {
          ids.push_back(o->org_id);
          subs.push_back(o->subscription_id);
          partitions.push_back(o->partition);
          seqs.push_back(o->delta_seq);
        }
        return tx.exec_prepared(statement, text_array(ids), text_array(subs),
                                int_array(partitions), int_array(seqs));
      });
  if (!b.memberships.empty())
    write_memberships(c, tx, b.memberships);
  if (!b.subscriptions.empty())
    write_subscription_rows(tx, b.subscriptions);
  if (!b.terms.empty()) {
    std::vector<std::string> ids;
    std::vector<domain::timestamp> starts;
    std::vector<domain::timestamp> ends;
    std::vector<domain::timestamp> usage_ends;
    std::vector<std::int32_t> closed;
    for (const auto& t : b.terms) {
      ids.push_back(t.subscription_id);
      starts.push_back(t.term.start);
      ends.push_back(t.term.end);
      usage_ends.push_back(t.term.usage_end);
      closed.push_back(t.term.closed_months);
    }
    tx.exec_prepared("merge_terms", text_array(ids), time_array(starts),
                     time_array(ends), time_array(usage_ends),
                     int_array(closed));
  }
  auto subscription_org_key = [](const subscription_org_row& o) {
    return pair_key(o.subscription_id, o.org_id);
  };
  if (!b.subscription_orgs.empty())
    update_then_upsert(
      last_per_key(b.subscription_orgs, subscription_org_key),
      subscription_org_key,
      [](const pqxx::row& r) { return pair_key(text_of(r[0]), text_of(r[1])); },
      "update_subscription_orgs", "merge_subscription_orgs",
      [&](const char* statement, const auto& rows) {
        std::vector<std::string> subs;
        std::vector<std::string> orgs;
        std::vector<std::optional<bool>> linked;
        std::vector<std::int64_t> seqs;
        std::vector<std::optional<std::int64_t>> owed;
        for (const auto* o : rows) {
          subs.push_back(o->subscription_id);
          orgs.push_back(o->org_id);
          linked.push_back(o->linked);
          seqs.push_back(o->last_delta_seq);
          owed.push_back(o->owed_before_parts);
        }
        return tx.exec_prepared(statement, text_array(subs), text_array(orgs),
                                bool_array(linked), int_array(seqs),
                                int_array(owed));
      });
  if (!b.holders.empty()) {
    // The subscription actor reports a holder change only when it flips the
    // holder, against state loaded from what is committed, so one key's
    // changes in a batch alternate, starting from what the table holds: an
    // odd count is a real change (the last one), an even count is none.
    // Additions therefore need no conflict check. Should that contract
    // break, the COPY fails on the primary key and the batch is retried
    // from reloaded state, which restores it.
    using holder_key
      = std::tuple<std::string_view, std::string_view, std::string_view>;
    // Sorted by key, batch order kept within a key (a vector sorted once,
    // not a tree node per change), then one net change per key.
    std::vector<std::pair<holder_key, bool>> changes; // (key, added)
    changes.reserve(b.holders.size());
    for (const auto& h : b.holders)
      changes.push_back({{h.subscription_id, h.user_id, h.org_id}, h.added});
    std::stable_sort(changes.begin(), changes.end(),
                     [](const auto& x, const auto& y) {
                       return x.first < y.first;
                     });
    struct net_change {
      holder_key key;
      bool odd = false; // an odd count of changes: the last one is real
      bool added = false;
    };
    std::vector<net_change> net;
    for (const auto& [key, added] : changes) {
      if (net.empty() || net.back().key != key)
        net.push_back({key});
      net.back().odd = !net.back().odd;
      net.back().added = added;
    }
    std::vector<std::string> subs;
    std::vector<std::string> users;
    std::vector<std::string> orgs;
    bool additions = false;
    for (const auto& n : net) {
      if (!n.odd)
        continue;
      if (n.added) {
        additions = true;
        continue;
      }
      subs.emplace_back(std::get<0>(n.key));
      users.emplace_back(std::get<1>(n.key));
      orgs.emplace_back(std::get<2>(n.key));
    }
    if (!subs.empty())
      tx.exec_prepared("delete_holders", text_array(subs), text_array(users),
                       text_array(orgs));
    if (additions) {
      copy_stream out{c, copy_holders, buf};
      buf.binary_header();
      for (const auto& n : net) {
        if (!n.odd || !n.added)
          continue;
        buf.binary_row(3).binary_bytes(std::get<0>(n.key));
        buf.binary_bytes(std::get<1>(n.key)).binary_bytes(std::get<2>(n.key));
        out.row_done();
      }
      buf.binary_trailer();
      out.finish();
    }
  }
  if (!b.ledger.empty()) {
    // In key order: a batch interleaves subscriptions, and each primary-key
    // insert then lands next to the one before it.
    std::vector<const domain::ledger_entry*> sorted;
    sorted.reserve(b.ledger.size());
    for (const auto& e : b.ledger)
      sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const auto* x, const auto* y) {
      return std::tie(x->subscription_id, x->seq)
             < std::tie(y->subscription_id, y->seq);
    });
    copy_stream out{c, copy_ledger, buf};
    buf.binary_header();
    for (const auto* entry : sorted) {
      const auto& e = *entry;
      buf.binary_row(12).binary_bytes(e.subscription_id);
      buf.binary_int8(e.seq).binary_int8(e.seats_in_use);
      buf.binary_time(e.effective_at).binary_bytes(e.cause.source);
      buf.binary_bytes(e.cause.id).binary_bytes(e.cause.type);
      buf.binary_time(e.cause.time).binary_bytes(e.org_id);
      buf.binary_bytes(e.user_id).binary_bytes(e.prev_hash);
      buf.binary_bytes(e.hash);
      out.row_done();
    }
    buf.binary_trailer();
    out.finish();
  }
  if (!b.licenses.empty()) {
    copy_stream out{c, copy_licenses, buf};
    for (const auto& l : b.licenses) {
      const auto& g = l.grant;
      buf.text(g.license_id).text(g.subscription_id).time(g.issued_at);
      buf.time(g.not_before).time(g.expires_at).integer(g.seats);
      buf.text(g.plan_id).opt_text(g.tier).text_array(g.features);
      buf.text(g.instance_domain).text(domain::to_string(g.instance_type));
      buf.boolean(g.trial).text(g.issued_by.source).text(g.issued_by.id);
      buf.text(l.claims_json).text(l.license_key).text(l.key_id).end_row();
      out.row_done();
    }
    out.finish();
  }
  if (!b.revocations.empty()) {
    copy_stream out{c, copy_revocations, buf};
    for (const auto& r : b.revocations) {
      buf.text(r.license_id).text(r.subscription_id).time(r.revoked_at);
      buf.text(r.reason).end_row();
      out.row_done();
    }
    out.finish();
  }
  if (!b.catalog_upserts.empty() || !b.catalog_removals.empty())
    tx.exec_prepared("apply_catalog", catalog_changes_json(b));
  if (!b.outbox.empty()) {
    // One chunk per lease, events in batch order within it.
    std::vector<std::string> leases;
    std::map<std::string, std::vector<const outbox_row*>> by_lease;
    for (const auto& o : b.outbox) {
      auto& rows = by_lease[o.lease_key];
      if (rows.empty())
        leases.push_back(o.lease_key);
      rows.push_back(&o);
    }
    copy_stream out{c, copy_outbox_chunks, buf};
    buf.binary_header();
    for (const auto& lease : leases) {
      const auto& rows = by_lease[lease];
      buf.binary_row(3).binary_bytes(lease);
      buf.binary_int4(static_cast<std::int32_t>(rows.size()));
      buf.binary_bytes(encode_outbox_chunk(rows));
      out.row_done();
    }
    buf.binary_trailer();
    out.finish();
  }
  if (!b.indexed_events.empty()) {
    std::vector<std::string> ids;
    std::vector<std::string> values;
    for (const auto& [id, value] : b.indexed_events) {
      ids.push_back(id);
      values.push_back(value);
    }
    tx.exec_prepared("index_events", text_array(ids), text_array(values));
  }
  if (!b.applied_events.empty()) {
    // The unique key is what makes an upstream event apply once: the
    // service queries it before applying only after it refused a batch
    // (actors::coordinator), so a refusal here is told apart.
    // In key order, so consecutive inserts descend to neighbouring leaves
    // of the (random) key's index, and in binary: no uuid text to parse.
    std::vector<std::pair<uuid_octets, const applied_event*>> sorted;
    sorted.reserve(b.applied_events.size());
    for (const auto& a : b.applied_events) {
      // The key de-duplication computed, read where it is: a conditional
      // expression of it and a computed string copied it for every event.
      if (!a.key.empty()) {
        sorted.emplace_back(uuid_bytes(a.key), &a);
        continue;
      }
      sorted.emplace_back(
        uuid_bytes(domain::applied_event_key({a.source, a.id})), &a);
    }
    // Byte order, as PostgreSQL orders a uuid (char may be signed).
    std::sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) {
      return std::memcmp(x.first.data(), y.first.data(), x.first.size()) < 0;
    });
    try {
      copy_stream out{c, copy_applied_events, buf};
      buf.binary_header();
      for (const auto& [key, a] : sorted) {
        buf.binary_row(3).binary_bytes({key.data(), key.size()});
        buf.binary_bytes(a->source).binary_bytes(a->id);
        out.row_done();
      }
      buf.binary_trailer();
      out.finish();
    } catch (const pqxx::sql_error& e) {
      if (!is_unique_violation(e))
        throw;
      throw already_applied_error{
        "an upstream event in the batch was applied before: "
        + trimmed_message(e.what())};
    }
  }
  if (!b.positions.empty()) {
    // Last wins per partition (ON CONFLICT cannot touch a row twice).
    std::map<topic_partition, std::int64_t> last;
    for (const auto& p : b.positions)
      last[p.tp] = p.next_offset;
    std::vector<std::string> topics;
    std::vector<std::int32_t> partitions;
    std::vector<std::int64_t> offsets;
    for (const auto& [tp, offset] : last) {
      topics.push_back(tp.topic);
      partitions.push_back(tp.partition);
      offsets.push_back(offset);
    }
    tx.exec_prepared("upsert_positions", b.consumer_group, text_array(topics),
                     int_array(partitions), int_array(offsets));
  }
  tx.commit();
}

const char* detail::prepared_statement_sql(std::string_view name) {
  for (const auto& s : prepared_statements)
    if (name == s.name)
      return s.sql;
  return nullptr;
}

// -- pg_store -----------------------------------------------------------------

pg_store::pg_store(std::string conninfo, pg_store_options options)
    : impl_(std::make_unique<impl>()) {
  impl_->conninfo = std::move(conninfo);
  impl_->options = std::move(options);
}

pg_store::~pg_store() = default;

caf::expected<void> pg_store::ping() {
  return impl_->run("ping", [](pg_connection& c) {
    pqxx::nontransaction tx{c};
    tx.exec("SELECT 1");
  });
}

caf::expected<std::string> pg_store::setting(const std::string& name) {
  return impl_->run("setting", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    return text_of(tx.exec_params1(sql_setting, name)[0]);
  });
}

void pg_store::disconnect() {
  impl_->conn.reset();
}

caf::expected<void> pg_store::commit(const storage_batch& batch) {
  if (batch.empty())
    return {};
  return impl_->run("commit", [this, &batch](pg_connection& c) {
    impl_->commit(c, batch);
  });
}

caf::expected<std::vector<lease>>
pg_store::acquire_leases(const std::string& consumer_group,
                         const std::vector<std::string>& lease_keys,
                         const std::string& owner) {
  return impl_->run("acquire_leases", [&](pg_connection& c) {
    std::vector<lease> result;
    if (lease_keys.empty())
      return result;
    // Sorted, so concurrent acquisitions lock rows in one order.
    auto keys = unique_sorted(lease_keys);
    std::map<std::string, std::int64_t> epochs;
    // A commit of the previous owner holds a lease's row until it ends;
    // Kafka gives the partition here only after that owner gave it up or
    // its session expired, so a commit still open after the wait is a
    // paused or cut-off replica's, which may never end by itself (its
    // connection stays up while the process is stopped; a vanished client
    // the server notices only after its keepalive, some 30 s for the
    // service's sessions, set_server_timeouts, and two hours for a
    // session that did not set it). Its session is ended: its transaction
    // rolls back, and it can write nothing for the lease afterwards (the
    // epoch moved on).
    for (int attempt = 1;; ++attempt) {
      try {
        pqxx::work tx{c};
        tx.exec_prepared("lease_lock_wait", impl_->lock_wait());
        for (const auto& r : tx.exec_prepared("acquire_leases", consumer_group,
                                              text_array(keys), owner))
          epochs[text_of(r[0])] = r[1].as<std::int64_t>();
        tx.commit();
        break;
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != sqlstate_lock_not_available || attempt == 3
            || impl_->end_lease_holders(c, consumer_group, keys) == 0)
          throw;
      }
    }
    std::set<std::string> seen;
    for (const auto& key : lease_keys)
      if (seen.insert(key).second)
        result.push_back(lease{key, epochs.at(key)});
    return result;
  });
}

caf::expected<std::vector<std::string>>
pg_store::held_leases(const std::string& consumer_group,
                      const std::vector<lease>& leases) {
  return impl_->run("held_leases", [&](pg_connection& c) {
    std::vector<std::string> result;
    if (leases.empty())
      return result;
    std::vector<std::string> keys;
    std::vector<std::int64_t> epochs;
    for (const auto& l : leases) {
      keys.push_back(l.lease_key);
      epochs.push_back(l.epoch);
    }
    std::set<std::pair<std::string, std::int64_t>> held;
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("held_leases", consumer_group,
                                          text_array(keys), int_array(epochs)))
      held.emplace(text_of(r[0]), r[1].as<std::int64_t>());
    for (const auto& l : leases)
      if (held.count({l.lease_key, l.epoch}) != 0)
        result.push_back(l.lease_key);
    return result;
  });
}

caf::expected<std::map<topic_partition, std::int64_t>>
pg_store::load_positions(const std::string& consumer_group,
                         const std::vector<topic_partition>& partitions) {
  return impl_->run("load_positions", [&](pg_connection& c) {
    std::map<topic_partition, std::int64_t> result;
    if (partitions.empty())
      return result;
    std::vector<std::string> topics;
    std::vector<std::int32_t> numbers;
    for (const auto& tp : partitions) {
      topics.push_back(tp.topic);
      numbers.push_back(tp.partition);
    }
    pqxx::nontransaction tx{c};
    for (const auto& r :
         tx.exec_prepared("load_positions", consumer_group, text_array(topics),
                          int_array(numbers)))
      result[topic_partition{text_of(r[0]), r[1].as<std::int32_t>()}]
        = r[2].as<std::int64_t>();
    return result;
  });
}

caf::expected<std::vector<bool>>
pg_store::filter_applied_keys(const std::vector<std::string>& applied_keys) {
  return impl_->run("filter_applied", [&](pg_connection& c) {
    std::vector<bool> result(applied_keys.size(), false);
    if (applied_keys.empty())
      return result;
    pqxx::nontransaction tx{c};
    for (const auto& r :
         tx.exec_prepared("filter_applied", text_array(applied_keys)))
      result.at(r[0].as<std::size_t>() - 1) = true;
    return result;
  });
}

caf::expected<std::int64_t>
pg_store::purge_applied_before(domain::timestamp cutoff) {
  return impl_->run("purge_applied_before", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("purge_applied", time_text(cutoff));
    tx.exec_prepared("purge_indexed_events", time_text(cutoff));
    return static_cast<std::int64_t>(res.affected_rows());
  });
}

caf::expected<std::map<std::string, org_snapshot>>
pg_store::load_orgs(const std::vector<std::string>& org_ids) {
  return impl_->run("load_orgs", [&](pg_connection& c) {
    std::map<std::string, org_snapshot> result;
    if (org_ids.empty())
      return result;
    auto ids = text_array(unique_sorted(org_ids));
    read_snapshot tx{c};
    for (const auto& r : tx.exec_prepared("load_orgs", ids)) {
      auto& snap = result[text_of(r[0])];
      snap.org_id = text_of(r[0]);
      snap.subscription_id = opt_text_of(r[1]);
      snap.delta_seq = r[2].as<std::int64_t>();
      snap.stored = true;
    }
    for (const auto& r : tx.exec_prepared("load_memberships", ids)) {
      auto& snap = result[text_of(r[0])];
      snap.org_id = text_of(r[0]);
      snap.members[text_of(r[1])] = r[2].as<bool>();
    }
    tx.commit();
    return result;
  });
}

caf::expected<std::map<std::string, subscription_snapshot>>
pg_store::load_subscriptions(const std::vector<std::string>& subscription_ids) {
  return impl_->run("load_subscriptions", [&](pg_connection& c) {
    if (subscription_ids.empty())
      return std::map<std::string, subscription_snapshot>{};
    read_snapshot tx{c};
    auto result = load_subscriptions_in(tx, subscription_ids);
    tx.commit();
    return result;
  });
}

caf::expected<std::vector<std::string>>
pg_store::subscriptions_due(const std::vector<std::int32_t>& partitions,
                            domain::timestamp month_end_before,
                            domain::timestamp idle_since) {
  return impl_->run("subscriptions_due", [&](pg_connection& c) {
    std::vector<std::string> result;
    if (partitions.empty())
      return result;
    pqxx::nontransaction tx{c};
    for (const auto& r :
         tx.exec_prepared("subscriptions_due", int_array(partitions),
                          time_text(month_end_before), time_text(idle_since)))
      result.push_back(text_of(r[0]));
    return result;
  });
}

caf::expected<std::map<std::string, domain::plan_entitlements>>
pg_store::load_plan_entitlements() {
  return impl_->run("load_plan_entitlements", [&](pg_connection& c) {
    std::map<std::string, domain::plan_entitlements> result;
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("plan_entitlements")) {
      domain::plan_entitlements e;
      e.tier = opt_text_of(r[1]);
      for (const auto& f : nlohmann::json::parse(r[2].c_str()))
        if (f.is_string())
          e.features.push_back(f.get<std::string>());
      result.emplace(text_of(r[0]), std::move(e));
    }
    return result;
  });
}

caf::expected<std::int64_t> pg_store::catalog_version() {
  return impl_->run("catalog_version", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    return tx.exec_prepared1("catalog_version")[0].as<std::int64_t>();
  });
}

caf::expected<std::vector<pending_event>>
pg_store::fetch_unpublished(const std::vector<std::string>& lease_keys,
                            std::size_t limit) {
  return impl_->run("fetch_unpublished", [&](pg_connection& c) {
    std::vector<pending_event> result;
    if (lease_keys.empty() || limit == 0)
      return result;
    auto keys = text_array(unique_sorted(lease_keys));
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("fetch_unpublished", keys,
                                          static_cast<std::int64_t>(limit))) {
      pending_event ev;
      ev.outbox_seq = -r[0].as<std::int64_t>();
      ev.row.event_id = text_of(r[1]);
      ev.row.topic = text_of(r[2]);
      ev.row.key = text_of(r[3]);
      ev.row.value = pqxx::binarystring{r[4]}.str();
      ev.row.headers = parse_headers(r[5].c_str());
      ev.row.lease_key = text_of(r[6]);
      result.push_back(std::move(ev));
    }
    if (result.size() >= limit)
      return result;
    constexpr const char* max_chunks = "64";
    auto room = std::to_string(limit - result.size());
    binary_query chunks{
      c, "binary_fetch_chunks", sql_fetch_chunks, {keys, max_chunks, room}};
    for (int i = 0; i < chunks.rows(); ++i) {
      auto seq = chunks.int8(i, 0);
      std::string lease{chunks.bytes(i, 1)};
      auto rows = decode_outbox_chunk(chunks.bytes(i, 2), lease);
      if (!rows)
        throw std::runtime_error("outbox chunk " + std::to_string(seq)
                                 + " is malformed");
      for (auto& row : *rows)
        result.push_back({seq, std::move(row)});
    }
    return result;
  });
}

caf::expected<void>
pg_store::mark_published(const std::vector<std::int64_t>& outbox_seqs) {
  if (outbox_seqs.empty())
    return {};
  std::vector<std::int64_t> rows;
  std::vector<std::int64_t> chunks;
  for (auto seq : outbox_seqs)
    (seq < 0 ? rows : chunks).push_back(seq < 0 ? -seq : seq);
  return impl_->run("mark_published", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    if (!rows.empty())
      tx.exec_prepared("mark_published", int_array(rows));
    if (!chunks.empty())
      tx.exec_prepared("mark_chunks_published", int_array(chunks));
  });
}

caf::expected<std::int64_t> pg_store::unpublished_count() {
  return impl_->run("unpublished_count", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    return tx.exec_prepared1("unpublished_count")[0].as<std::int64_t>();
  });
}

caf::expected<std::int64_t>
pg_store::purge_published_before(domain::timestamp cutoff) {
  return impl_->run("purge_published_before", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("purge_published", time_text(cutoff));
    auto chunks = tx.exec_prepared("purge_published_chunks", time_text(cutoff));
    return static_cast<std::int64_t>(res.affected_rows()
                                     + chunks.affected_rows());
  });
}

caf::expected<std::optional<subscription_snapshot>>
pg_store::subscription(const std::string& subscription_id) {
  return impl_->run("subscription", [&](pg_connection& c) {
    read_snapshot tx{c};
    auto loaded = load_subscriptions_in(tx, {subscription_id},
                                        subscription_part::record_and_orgs);
    tx.commit();
    std::optional<subscription_snapshot> result;
    auto it = loaded.find(subscription_id);
    if (it != loaded.end())
      result = std::move(it->second);
    return result;
  });
}

caf::expected<std::vector<domain::ledger_entry>>
pg_store::ledger_page(const std::string& subscription_id, std::int64_t after,
                      std::size_t limit) {
  return impl_->run("ledger_page", [&](pg_connection& c) {
    std::vector<domain::ledger_entry> result;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("ledger_page", subscription_id, after,
                                static_cast<std::int64_t>(limit));
    result.reserve(res.size());
    for (const auto& r : res)
      result.push_back(entry_of(r));
    return result;
  });
}

caf::expected<std::int64_t>
pg_store::seats_at(const std::string& subscription_id, domain::timestamp at) {
  return impl_->run("seats_at", [&](pg_connection& c) -> std::int64_t {
    if (at == domain::timestamp::min())
      return 0;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("seats_at", subscription_id, time_text(at));
    return res.empty() ? 0 : res[0][0].as<std::int64_t>();
  });
}

caf::expected<bool> pg_store::pool_exists(const std::string& subscription_id) {
  return impl_->run("pool_exists", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    return tx.exec_prepared1("pool_exists", subscription_id)[0].as<bool>();
  });
}

caf::expected<std::vector<holder_view>>
pg_store::holders_page(const std::string& subscription_id,
                       const std::string& after, std::size_t limit) {
  return impl_->run("holders_page", [&](pg_connection& c) {
    std::vector<holder_view> result;
    pqxx::nontransaction tx{c};
    for (const auto& r :
         tx.exec_prepared("holders_page", subscription_id, after,
                          static_cast<std::int64_t>(limit))) {
      auto user = text_of(r[0]);
      if (result.empty() || result.back().user_id != user)
        result.push_back(holder_view{user, {}});
      result.back().orgs.push_back(text_of(r[1]));
    }
    return result;
  });
}

caf::expected<domain::ledger_window>
pg_store::ledger_window(const std::string& subscription_id,
                        domain::timestamp from) {
  return impl_->run("ledger_window", [&](pg_connection& c) {
    domain::ledger_window result;
    result.exact_from = from;
    bool bounded = from != domain::timestamp::min();
    read_snapshot tx{c};
    auto res = bounded
                 ? tx.exec_prepared("window_points", subscription_id,
                                    time_text(from))
                 : tx.exec_prepared("window_points", subscription_id, nullptr);
    result.points.reserve(res.size());
    for (const auto& r : res)
      result.points.push_back(domain::ledger_point{
        r[0].as<std::int64_t>(), r[1].as<std::int64_t>(), micros_of(r[2])});
    if (bounded) {
      auto carried = tx.exec_prepared("window_carried", subscription_id,
                                      time_text(from));
      if (!carried.empty())
        result.carried_seats = carried[0][0].as<std::int64_t>();
    }
    tx.commit();
    return result;
  });
}

caf::expected<domain::ledger_window> pg_store::usage_window(
  const std::string& subscription_id,
  const std::vector<std::pair<domain::timestamp, domain::timestamp>>& months) {
  return impl_->run("usage_window", [&](pg_connection& c) {
    std::vector<domain::timestamp> starts;
    std::vector<domain::timestamp> ends;
    for (const auto& [start, end] : months) {
      starts.push_back(start);
      ends.push_back(end);
    }
    // No carried count: the last entry before the first month is a point.
    domain::ledger_window result;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("usage_window", subscription_id,
                                time_array(starts), time_array(ends));
    result.points.reserve(res.size());
    for (const auto& r : res)
      result.points.push_back(domain::ledger_point{
        r[0].as<std::int64_t>(), r[1].as<std::int64_t>(), micros_of(r[2])});
    return result;
  });
}

caf::expected<std::vector<license_view>>
pg_store::licenses_of(const std::string& subscription_id) {
  return impl_->run("licenses_of", [&](pg_connection& c) {
    std::vector<license_view> result;
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("licenses_of", subscription_id))
      result.push_back(license_view_of(r));
    return result;
  });
}

caf::expected<std::optional<license_view>>
pg_store::license(const std::string& license_id) {
  return impl_->run("license", [&](pg_connection& c) {
    std::optional<license_view> result;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("license", license_id);
    if (!res.empty())
      result = license_view_of(res[0]);
    return result;
  });
}

caf::expected<std::optional<license_view>>
pg_store::license_issued_by(const domain::event_key& command) {
  return impl_->run("license_issued_by", [&](pg_connection& c) {
    std::optional<license_view> result;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("license_issued_by", command.source,
                                command.id);
    if (!res.empty())
      result = license_view_of(res[0]);
    return result;
  });
}

caf::expected<std::vector<revocation_row>> pg_store::revocations() {
  return impl_->run("revocations", [&](pg_connection& c) {
    std::vector<revocation_row> result;
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("revocations"))
      result.push_back(revocation_row{text_of(r[0]), text_of(r[1]),
                                      micros_of(r[2]), text_of(r[3])});
    return result;
  });
}

caf::expected<std::optional<org_view>>
pg_store::org(const std::string& org_id) {
  return impl_->run("org", [&](pg_connection& c) {
    std::optional<org_view> result;
    pqxx::nontransaction tx{c};
    auto r = tx.exec_prepared1("org", org_id);
    if (r[3].as<bool>())
      result = org_view{org_id, opt_text_of(r[0]), r[1].as<std::int64_t>(),
                        r[2].as<std::int64_t>()};
    return result;
  });
}

caf::expected<std::optional<std::string>>
pg_store::outbox_event(const std::string& event_id) {
  return impl_->run("outbox_event", [&](pg_connection& c) {
    std::optional<std::string> result;
    pqxx::nontransaction tx{c};
    auto res = tx.exec_prepared("outbox_event", event_id);
    if (!res.empty())
      result = pqxx::binarystring{res[0][0]}.str();
    return result;
  });
}

caf::expected<std::vector<chain_report>>
pg_store::verify_ledger(const std::optional<std::string>& subscription_id) {
  return impl_->run("verify_ledger", [&](pg_connection& c) {
    std::vector<std::string> ids;
    if (subscription_id) {
      ids.push_back(*subscription_id);
    } else {
      pqxx::nontransaction tx{c};
      for (const auto& r : tx.exec_prepared("ledger_subscriptions"))
        ids.push_back(text_of(r[0]));
    }
    std::vector<chain_report> reports;
    for (const auto& id : ids) {
      chain_report report;
      report.subscription_id = id;
      // One snapshot per chain, so the head recorded in `subscriptions`
      // matches the entries read page by page.
      read_snapshot tx{c};
      domain::chain_verifier verifier;
      std::int64_t last_seq = 0;
      std::string last_hash = domain::genesis_hash;
      for (;;) {
        auto res = tx.exec_prepared("ledger_page", id, last_seq,
                                    verify_page_size);
        for (const auto& r : res) {
          auto entry = entry_of(r);
          if (auto broken = verifier.next(entry)) {
            report.first_break = std::move(broken);
            break;
          }
          last_seq = entry.seq;
          last_hash = entry.hash;
        }
        if (report.first_break
            || res.size() < static_cast<std::size_t>(verify_page_size))
          break;
      }
      report.entries_verified = verifier.verified();
      if (!report.first_break) {
        // Walking the chain cannot see entries cut off its end; the head
        // the subscription recorded with them can.
        auto head = tx.exec_prepared("ledger_head", id);
        if (!head.empty()) {
          auto head_seq = head[0][0].as<std::int64_t>();
          auto head_hash = text_of(head[0][1]);
          if (head_seq > last_seq)
            report.first_break = domain::chain_break{
              last_seq + 1, "entries missing at the end of the chain: the "
                            "subscription's head is seq "
                              + std::to_string(head_seq)};
          else if (head_seq < last_seq)
            report.first_break = domain::chain_break{
              head_seq + 1, "entry beyond the subscription's recorded head "
                            "(seq "
                              + std::to_string(head_seq) + ")"};
          else if (head_hash != last_hash)
            report.first_break = domain::chain_break{
              last_seq, "hash differs from the subscription's recorded head"};
        }
      }
      tx.commit();
      reports.push_back(std::move(report));
    }
    return reports;
  });
}

} // namespace seatledger::storage
