// The schema: versioned, forward-only migrations compiled into the binary,
// and `migrate`, which applies them.
//
// Rules for new migrations: append one (never edit an applied one); it runs
// in its own transaction; grant the runtime role what it needs on every new
// table (append-only tables: SELECT and INSERT only). Versions recorded in
// the database but unknown to this binary (a newer replica migrated first
// during a rollout) are left alone.

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "messages/service_error.hpp"
#include "storage/conninfo.hpp"
#include "storage/pg_codec.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::storage {

namespace {

struct migration {
  int version;
  const char* name;
  const char* sql;
};

// -- 1: the initial schema ----------------------------------------------------
//
// Schema `seatledger`. Times are timestamptz (microseconds, exact: the
// service writes RFC 3339 text and reads `seatledger.epoch_us(t)`).
// Identifiers and hashes are `text COLLATE "C"`: byte order, which makes
// index comparisons cheap and sorts like std::string (paging by user_id,
// the actors' maps) whatever the database's locale.
//
// orgs                 one row per org the org stage has seen: the linked
//                      subscription, its partition, the `org_seq` of the
//                      last seat delta it emitted.
// memberships          (org_id, user_id) -> billable; a member who left has
//                      no row.
// subscriptions        one row per seat pool / subscription: lifecycle
//                      fields, term, `metadata` JSONB (rate_limit_overrides,
//                      analytics_access), effective `clock` (NULL = nothing
//                      applied yet), statistics, ledger head (seq, hash),
//                      `next_month_end` for the month-close sweeper and
//                      `last_applied_at` (wall clock of the last commit that
//                      touched it).
// subscription_terms   every term with its usage end and closed months.
// subscription_orgs    every org that ever sent the subscription a delta:
//                      linked now or not, last `org_seq` applied.
// seat_holders         (subscription, user, org): the orgs that make a user
//                      billable for the subscription.
// seat_ledger          append-only, hash-chained, gap-free per subscription.
//                      The runtime role may only SELECT and INSERT; a
//                      statement trigger refuses entries that leave a gap
//                      or do not follow the last entry's hash.
// licenses             immutable content (SELECT/INSERT only); one license
//                      per issuing command (unique (issued_by_source,
//                      issued_by_id)).
// license_revocations  revocations, recorded separately, append-only.
// catalog_products, catalog_rate_plans, catalog_charges
//                      the synced catalog; `custom_fields` JSONB with GIN
//                      indexes; removed plans are kept (removed = true).
// catalog_rate_plan_versions
//                      every superseded version of a rate plan with its
//                      charges (append-only), so what a license was issued
//                      against can be found later.
// catalog_state        one row: the catalog version, sent with
//                      NOTIFY seatledger_catalog on every change.
// partition_leases     (consumer_group, lease_key) -> epoch, owner. Taking a
//                      lease increments the epoch; a commit names it.
// consumer_positions   (consumer_group, topic, partition) -> next offset.
// outbox               events to publish with their final CloudEvents id
//                      (indexed), in commit order per lease (`outbox_seq`,
//                      no sequence cache so a new owner's rows sort after
//                      the old's).
// applied_events       (source, id) of applied upstream events, for
//                      de-duplication (the unique index); BRIN on
//                      applied_at for the purge.
constexpr const char* migration_0001_initial = R"sql(
DO $roles$
BEGIN
  -- Roles are cluster-wide: migrators of two databases of one cluster may
  -- race here, so a concurrent creation is not an error.
  -- A migrating role without CREATEROLE got only "permission denied to
  -- create role"; the exception says what an administrator can do instead.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'seatledger_app') THEN
    BEGIN
      CREATE ROLE seatledger_app NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN
        NULL;
      WHEN insufficient_privilege THEN
        RAISE insufficient_privilege USING MESSAGE = format(
          'role %I may not create the role seatledger_app, which the '
          'service''s sessions run as: give %I CREATEROLE, or as an '
          'administrator run CREATE ROLE seatledger_app NOLOGIN; GRANT '
          'seatledger_app TO %I', current_user, current_user, current_user);
    END;
  END IF;
  IF NOT pg_has_role(current_user, 'seatledger_app', 'MEMBER') THEN
    BEGIN
      GRANT seatledger_app TO CURRENT_USER;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN
        NULL;
      WHEN insufficient_privilege THEN
        RAISE insufficient_privilege USING MESSAGE = format(
          'role %I is no member of seatledger_app, which the service''s '
          'sessions run as, and may not grant it: give %I CREATEROLE, or '
          'as an administrator run GRANT seatledger_app TO %I',
          current_user, current_user, current_user);
    END;
  END IF;
  BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO seatledger_app',
                   current_database());
  EXCEPTION WHEN insufficient_privilege THEN
    NULL; -- PUBLIC keeps TEMPORARY by default
  END;
END
$roles$;

CREATE FUNCTION seatledger.epoch_us(t timestamptz) RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;

CREATE TABLE seatledger.orgs (
  org_id          text COLLATE "C" PRIMARY KEY,
  subscription_id text COLLATE "C",
  partition       integer NOT NULL,
  delta_seq       bigint NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

CREATE TABLE seatledger.memberships (
  org_id   text COLLATE "C" NOT NULL,
  user_id  text COLLATE "C" NOT NULL,
  billable boolean NOT NULL,
  PRIMARY KEY (org_id, user_id)
);

CREATE TABLE seatledger.subscriptions (
  subscription_id           text COLLATE "C" PRIMARY KEY,
  partition                 integer NOT NULL,
  status                    text NOT NULL CHECK (status IN
                              ('none', 'trial', 'active', 'expired',
                               'archived')),
  display_name              text NOT NULL,
  sf_account_id             text,
  sf_subscription_id        text,
  instance_domain           text NOT NULL,
  instance_type             text NOT NULL,
  plan_id                   text COLLATE "C" NOT NULL,
  seats                     bigint NOT NULL,
  term_start                timestamptz NOT NULL,
  term_end                  timestamptz NOT NULL,
  trial                     boolean NOT NULL,
  features                  text[] NOT NULL,
  metadata                  jsonb NOT NULL,
  archive_reason            text,
  clock                     timestamptz,
  seats_in_use              bigint NOT NULL,
  ledger_seq                bigint NOT NULL,
  ledger_hash               text COLLATE "C" NOT NULL,
  max_seats_used            bigint NOT NULL,
  max_seats_used_changed_at timestamptz,
  seats_owed                bigint NOT NULL,
  created_by_source         text COLLATE "C",
  created_by_id             text COLLATE "C",
  next_month_end            timestamptz,
  last_applied_at           timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70); -- room for HOT updates: rewritten every batch
CREATE INDEX subscriptions_month_end ON seatledger.subscriptions
  (partition, next_month_end) WHERE next_month_end IS NOT NULL;

CREATE TABLE seatledger.subscription_terms (
  subscription_id text COLLATE "C" NOT NULL,
  start           timestamptz NOT NULL,
  "end"           timestamptz NOT NULL,
  usage_end       timestamptz NOT NULL,
  closed_months   integer NOT NULL,
  PRIMARY KEY (subscription_id, start)
);

CREATE TABLE seatledger.subscription_orgs (
  subscription_id text COLLATE "C" NOT NULL,
  org_id          text COLLATE "C" NOT NULL,
  linked          boolean NOT NULL,
  last_delta_seq  bigint NOT NULL,
  PRIMARY KEY (subscription_id, org_id)
);

CREATE TABLE seatledger.seat_holders (
  subscription_id text COLLATE "C" NOT NULL,
  user_id         text COLLATE "C" NOT NULL,
  org_id          text COLLATE "C" NOT NULL,
  PRIMARY KEY (subscription_id, user_id, org_id)
);

CREATE TABLE seatledger.seat_ledger (
  subscription_id text COLLATE "C" NOT NULL,
  seq             bigint NOT NULL CHECK (seq > 0),
  seats_in_use    bigint NOT NULL CHECK (seats_in_use >= 0),
  effective_at    timestamptz NOT NULL,
  cause_source    text COLLATE "C" NOT NULL,
  cause_id        text COLLATE "C" NOT NULL,
  cause_type      text NOT NULL,
  cause_time      timestamptz NOT NULL,
  org_id          text COLLATE "C" NOT NULL,
  user_id         text COLLATE "C" NOT NULL,
  prev_hash       text COLLATE "C" NOT NULL,
  hash            text COLLATE "C" NOT NULL,
  PRIMARY KEY (subscription_id, seq)
);
-- Seats at an instant and ledger windows by time (effective_at does not
-- decrease along seq).
CREATE INDEX seat_ledger_by_time ON seatledger.seat_ledger
  (subscription_id, effective_at, seq);

-- The sequence stays gap-free whoever writes: the entries a statement
-- inserts (COPY included) must be consecutive per subscription, and the
-- first of them must follow the subscription's last entry and name its
-- hash (the genesis hash for seq 1). Checked once per statement with one
-- aggregate and one primary-key probe per subscription. (The hash links
-- between the new entries themselves are the verifier's job.) EXECUTE, so
-- the check is planned for the size of each statement's new rows: a plan
-- cached from a one-row insert would join 10,000 rows quadratically.
CREATE FUNCTION seatledger.seat_ledger_check_append() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  bad record;
BEGIN
  EXECUTE $sql$
    SELECT f.subscription_id, f.first_seq
    FROM (SELECT subscription_id, min(seq) AS first_seq,
                 max(seq) AS last_seq, count(*) AS entries
          FROM new_entries GROUP BY subscription_id) f
    JOIN new_entries e
      ON e.subscription_id = f.subscription_id AND e.seq = f.first_seq
    WHERE f.entries <> f.last_seq - f.first_seq + 1
       OR CASE WHEN f.first_seq = 1 THEN e.prev_hash <> repeat('0', 64)
               ELSE (SELECT p.hash FROM seatledger.seat_ledger AS p
                     WHERE p.subscription_id = f.subscription_id
                       AND p.seq = f.first_seq - 1)
                    IS DISTINCT FROM e.prev_hash
          END
    LIMIT 1
  $sql$ INTO bad;
  IF bad.subscription_id IS NOT NULL THEN
    RAISE EXCEPTION 'seat ledger entries of subscription % from seq % do not '
                    'extend its chain (gap or wrong prev_hash)',
                    bad.subscription_id, bad.first_seq
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER seat_ledger_append AFTER INSERT ON seatledger.seat_ledger
  REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION seatledger.seat_ledger_check_append();

CREATE TABLE seatledger.licenses (
  license_id       text COLLATE "C" PRIMARY KEY,
  subscription_id  text COLLATE "C" NOT NULL,
  issued_at        timestamptz NOT NULL,
  not_before       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  seats            bigint NOT NULL,
  plan_id          text COLLATE "C" NOT NULL,
  tier             text NOT NULL,
  features         text[] NOT NULL,
  instance_domain  text NOT NULL,
  instance_type    text NOT NULL,
  trial            boolean NOT NULL,
  issued_by_source text COLLATE "C" NOT NULL,
  issued_by_id     text COLLATE "C" NOT NULL,
  claims           jsonb NOT NULL,
  license_key      text NOT NULL,
  key_id           text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX licenses_issued_by ON seatledger.licenses
  (issued_by_source, issued_by_id);
CREATE INDEX licenses_by_subscription ON seatledger.licenses
  (subscription_id, issued_at);

CREATE TABLE seatledger.license_revocations (
  license_id      text COLLATE "C" PRIMARY KEY REFERENCES seatledger.licenses,
  subscription_id text COLLATE "C" NOT NULL,
  revoked_at      timestamptz NOT NULL,
  reason          text NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seatledger.catalog_products (
  product_id text COLLATE "C" PRIMARY KEY,
  name       text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seatledger.catalog_rate_plans (
  rate_plan_id      text COLLATE "C" PRIMARY KEY,
  product_id        text COLLATE "C" NOT NULL
                      REFERENCES seatledger.catalog_products,
  name              text NOT NULL,
  custom_fields     jsonb NOT NULL,
  removed           boolean NOT NULL DEFAULT false,
  version           integer NOT NULL,
  changed_by_source text COLLATE "C",
  changed_by_id     text COLLATE "C",
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalog_rate_plans_fields ON seatledger.catalog_rate_plans
  USING gin (custom_fields);

CREATE TABLE seatledger.catalog_charges (
  rate_plan_id   text COLLATE "C" NOT NULL
                   REFERENCES seatledger.catalog_rate_plans,
  position       integer NOT NULL,
  charge_id      text COLLATE "C" NOT NULL,
  name           text NOT NULL,
  billing_period text NOT NULL,
  custom_fields  jsonb NOT NULL,
  PRIMARY KEY (rate_plan_id, position)
);
CREATE INDEX catalog_charges_fields ON seatledger.catalog_charges
  USING gin (custom_fields);

CREATE TABLE seatledger.catalog_rate_plan_versions (
  rate_plan_id      text COLLATE "C" NOT NULL,
  version           integer NOT NULL,
  product_id        text COLLATE "C" NOT NULL,
  product_name      text,
  name              text NOT NULL,
  custom_fields     jsonb NOT NULL,
  charges           jsonb NOT NULL,
  removed           boolean NOT NULL,
  changed_by_source text COLLATE "C",
  changed_by_id     text COLLATE "C",
  valid_from        timestamptz NOT NULL,
  superseded_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rate_plan_id, version)
);

CREATE TABLE seatledger.catalog_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL
);
INSERT INTO seatledger.catalog_state (version) VALUES (0);

-- Applies catalog changes in order (a JSON array of
-- {"op":"upsert","product":{id,name},"rate_plan":{id,name,custom_fields},
--  "charges":[{id,name,billing_period,custom_fields}],"cause":{source,id}}
-- and {"op":"remove","rate_plan_id":…,"cause":{…}}) in one round trip.
-- A plan that really changes gets a new version and its previous version,
-- charges included, goes to catalog_rate_plan_versions; an identical
-- re-sync changes nothing. Returns the new catalog version, NULL when
-- nothing changed; announces it with NOTIFY (delivered at commit).
CREATE FUNCTION seatledger.apply_catalog_changes(changes jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  c jsonb;
  plan_id text COLLATE "C";
  cur seatledger.catalog_rate_plans%ROWTYPE;
  cur_charges jsonb;
  new_charges jsonb;
  product_name text;
  changed boolean := false;
  new_version bigint;
BEGIN
  FOR c IN SELECT value FROM jsonb_array_elements(changes) LOOP
    plan_id := coalesce(c->'rate_plan'->>'id', c->>'rate_plan_id');
    SELECT * INTO cur FROM seatledger.catalog_rate_plans
      WHERE rate_plan_id = plan_id FOR UPDATE;
    IF FOUND THEN
      SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', ch.charge_id, 'name', ch.name,
               'billing_period', ch.billing_period,
               'custom_fields', ch.custom_fields) ORDER BY ch.position),
             '[]'::jsonb)
        INTO cur_charges
        FROM seatledger.catalog_charges ch WHERE ch.rate_plan_id = plan_id;
    END IF;
    IF c->>'op' = 'upsert' THEN
      SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', e->>'id', 'name', e->>'name',
               'billing_period', e->>'billing_period',
               'custom_fields', e->'custom_fields') ORDER BY o),
             '[]'::jsonb)
        INTO new_charges
        FROM jsonb_array_elements(c->'charges') WITH ORDINALITY AS t(e, o);
      INSERT INTO seatledger.catalog_products AS p (product_id, name)
        VALUES (c->'product'->>'id', c->'product'->>'name')
        ON CONFLICT (product_id) DO UPDATE
          SET name = EXCLUDED.name, updated_at = now()
          WHERE p.name IS DISTINCT FROM EXCLUDED.name;
      IF cur.rate_plan_id IS NOT NULL THEN
        IF NOT cur.removed
           AND cur.product_id = c->'product'->>'id'
           AND cur.name = c->'rate_plan'->>'name'
           AND cur.custom_fields = c->'rate_plan'->'custom_fields'
           AND cur_charges = new_charges THEN
          CONTINUE;
        END IF;
        SELECT name INTO product_name FROM seatledger.catalog_products
          WHERE product_id = cur.product_id;
        INSERT INTO seatledger.catalog_rate_plan_versions
          (rate_plan_id, version, product_id, product_name, name,
           custom_fields, charges, removed, changed_by_source, changed_by_id,
           valid_from)
          VALUES (cur.rate_plan_id, cur.version, cur.product_id, product_name,
                  cur.name, cur.custom_fields, cur_charges, cur.removed,
                  cur.changed_by_source, cur.changed_by_id, cur.updated_at);
        DELETE FROM seatledger.catalog_charges WHERE rate_plan_id = plan_id;
        UPDATE seatledger.catalog_rate_plans
          SET product_id = c->'product'->>'id',
              name = c->'rate_plan'->>'name',
              custom_fields = c->'rate_plan'->'custom_fields',
              removed = false, version = cur.version + 1,
              changed_by_source = c->'cause'->>'source',
              changed_by_id = c->'cause'->>'id', updated_at = now()
          WHERE rate_plan_id = plan_id;
      ELSE
        INSERT INTO seatledger.catalog_rate_plans
          (rate_plan_id, product_id, name, custom_fields, version,
           changed_by_source, changed_by_id)
          VALUES (plan_id, c->'product'->>'id', c->'rate_plan'->>'name',
                  c->'rate_plan'->'custom_fields', 1,
                  c->'cause'->>'source', c->'cause'->>'id');
      END IF;
      INSERT INTO seatledger.catalog_charges
        (rate_plan_id, position, charge_id, name, billing_period,
         custom_fields)
        SELECT plan_id, o, e->>'id', e->>'name', e->>'billing_period',
               e->'custom_fields'
        FROM jsonb_array_elements(new_charges) WITH ORDINALITY AS t(e, o);
      changed := true;
    ELSIF c->>'op' = 'remove' THEN
      IF cur.rate_plan_id IS NOT NULL AND NOT cur.removed THEN
        SELECT name INTO product_name FROM seatledger.catalog_products
          WHERE product_id = cur.product_id;
        INSERT INTO seatledger.catalog_rate_plan_versions
          (rate_plan_id, version, product_id, product_name, name,
           custom_fields, charges, removed, changed_by_source, changed_by_id,
           valid_from)
          VALUES (cur.rate_plan_id, cur.version, cur.product_id, product_name,
                  cur.name, cur.custom_fields, cur_charges, cur.removed,
                  cur.changed_by_source, cur.changed_by_id, cur.updated_at);
        UPDATE seatledger.catalog_rate_plans
          SET removed = true, version = cur.version + 1,
              changed_by_source = c->'cause'->>'source',
              changed_by_id = c->'cause'->>'id', updated_at = now()
          WHERE rate_plan_id = plan_id;
        changed := true;
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown catalog change %', c->>'op';
    END IF;
  END LOOP;
  IF NOT changed THEN
    RETURN NULL;
  END IF;
  UPDATE seatledger.catalog_state SET version = version + 1
    RETURNING version INTO new_version;
  PERFORM pg_notify('seatledger_catalog', new_version::text);
  RETURN new_version;
END
$$;

CREATE TABLE seatledger.partition_leases (
  consumer_group text COLLATE "C" NOT NULL,
  lease_key      text COLLATE "C" NOT NULL,
  epoch          bigint NOT NULL,
  owner          text COLLATE "C" NOT NULL,
  acquired_at    timestamptz NOT NULL DEFAULT now(),
  last_commit_at timestamptz,
  PRIMARY KEY (consumer_group, lease_key)
) WITH (fillfactor = 50);

CREATE TABLE seatledger.consumer_positions (
  consumer_group text COLLATE "C" NOT NULL,
  topic          text COLLATE "C" NOT NULL,
  partition      integer NOT NULL,
  next_offset    bigint NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
) WITH (fillfactor = 50);

CREATE TABLE seatledger.outbox (
  outbox_seq   bigserial PRIMARY KEY,
  event_id     text COLLATE "C" NOT NULL,
  topic        text COLLATE "C" NOT NULL,
  key          text COLLATE "C" NOT NULL,
  value        bytea NOT NULL,
  headers      jsonb NOT NULL DEFAULT '[]',
  lease_key    text COLLATE "C" NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON seatledger.outbox (lease_key, outbox_seq)
  WHERE published_at IS NULL;
-- The HTTP API looks events up by id (e.g. why a command was rejected).
CREATE INDEX outbox_event_id ON seatledger.outbox (event_id);

-- The key starts with the id: sources are few and long (URLs), so
-- comparisons that start with the source would walk the same prefix first.
CREATE TABLE seatledger.applied_events (
  source     text COLLATE "C" NOT NULL,
  id         text COLLATE "C" NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, source)
);
CREATE INDEX applied_events_age ON seatledger.applied_events
  USING brin (applied_at);

-- The runtime role: append-only where the spec says so, enforced here.
GRANT USAGE ON SCHEMA seatledger TO seatledger_app;
GRANT SELECT ON seatledger.schema_migrations TO seatledger_app;
GRANT SELECT, INSERT ON
  seatledger.seat_ledger,
  seatledger.licenses,
  seatledger.license_revocations,
  seatledger.catalog_rate_plan_versions
  TO seatledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
  seatledger.orgs,
  seatledger.memberships,
  seatledger.subscriptions,
  seatledger.subscription_terms,
  seatledger.subscription_orgs,
  seatledger.seat_holders,
  seatledger.catalog_products,
  seatledger.catalog_rate_plans,
  seatledger.catalog_charges,
  seatledger.partition_leases,
  seatledger.consumer_positions,
  seatledger.outbox,
  seatledger.applied_events
  TO seatledger_app;
GRANT SELECT, UPDATE ON seatledger.catalog_state TO seatledger_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA seatledger TO seatledger_app;
)sql";

// -- 2: catalog classification ------------------------------------------------
//
// Containment indexes. Classification asks `custom_fields @>
// '{"CDotIsTrueUp__c": true}'` and the like. The GIN indexes of migration 1
// (default jsonb_ops) index keys and values apart, so such a document looks
// up the key (in every row) and the value `true` (in most rows:
// CDotAccessible__c) and rechecks nearly the whole table; PostgreSQL rightly
// prefers a sequential scan. jsonb_path_ops indexes each value with its
// path, so the same lookup finds exactly the rows that hold it. Migration
// 1's indexes stay (they serve key existence, `?`); catalog writes are rare.
// No fast update for any of them: with it, new entries wait in a pending
// list that every search must read in full (and that the planner rightly
// counts against the index) until a vacuum merges it; a catalog sync of
// thousands of plans would leave queries scanning tables until then.
//
// Completeness, computed by PostgreSQL whoever writes a row (stored
// generated columns): `missing_fields` lists the plan-level fields
// classification needs that are absent, null, of the wrong type or not a
// value domain.md lists (in a fixed order); `plan_type_ok` says whether a
// charge's CDotPlanType__c is usable. Stored, so classification reads a
// column the planner has statistics for instead of re-deriving it per row,
// and the incomplete plans are found through small partial indexes. The
// value lists are the ones of storage/catalog.hpp (a test checks that they
// agree); a new listed value is a new migration.
constexpr const char* migration_0002_catalog_classification = R"sql(
CREATE INDEX catalog_rate_plans_fields_path ON seatledger.catalog_rate_plans
  USING gin (custom_fields jsonb_path_ops) WITH (fastupdate = off);
CREATE INDEX catalog_charges_fields_path ON seatledger.catalog_charges
  USING gin (custom_fields jsonb_path_ops) WITH (fastupdate = off);
ALTER INDEX seatledger.catalog_rate_plans_fields SET (fastupdate = off);
ALTER INDEX seatledger.catalog_charges_fields SET (fastupdate = off);

ALTER TABLE seatledger.catalog_rate_plans ADD COLUMN missing_fields text[]
  GENERATED ALWAYS AS (array_remove(ARRAY[
    CASE WHEN coalesce(
           jsonb_typeof(custom_fields->'CDotAccessible__c') = 'boolean',
           false)
         THEN NULL ELSE 'CDotAccessible__c' END,
    CASE WHEN coalesce(
           jsonb_typeof(custom_fields->'CDotActions__c') = 'array'
           AND custom_fields->'CDotActions__c'
               <@ '["initial_purchase", "additional_purchase", "renew"]',
           false)
         THEN NULL ELSE 'CDotActions__c' END,
    CASE WHEN coalesce(
           jsonb_typeof(custom_fields->'CDotPlanStatus__c') = 'string'
           AND custom_fields->'CDotPlanStatus__c'
               <@ '["active", "deprecated", "legacy", "not_applicable"]',
           false)
         THEN NULL ELSE 'CDotPlanStatus__c' END]::text[], NULL)) STORED;
CREATE INDEX catalog_rate_plans_unclassifiable
  ON seatledger.catalog_rate_plans (rate_plan_id)
  WHERE missing_fields <> '{}';

-- `x <@ list` holds for a string that is an element of the list (and for an
-- array of them: hence the type test first).
ALTER TABLE seatledger.catalog_charges ADD COLUMN plan_type_ok boolean
  GENERATED ALWAYS AS (coalesce(
    jsonb_typeof(custom_fields->'CDotPlanType__c') = 'string'
    AND custom_fields->'CDotPlanType__c' <@ '["ci_minutes", "storage",
      "duo_pro", "duo_enterprise", "duo_amazon_q", "agile_planning",
      "product_analytics", "professional_services", "ecosystem",
      "base_product", "not_applicable"]',
    false)) STORED;
CREATE INDEX catalog_charges_unclassifiable
  ON seatledger.catalog_charges (rate_plan_id)
  WHERE NOT plan_type_ok;
)sql";

// Migration 3: the outbox in chunks. One row per commit and lease holds all
// of its events (storage/outbox_chunk.hpp), so a batch of 10,000 events
// writes one row and three index entries instead of 10,000 rows and 30,000
// entries, and the relay marks it published with one UPDATE. The events the
// API looks up by id (why a command was rejected) are indexed separately.
// Rows left in the old table are still published.
constexpr const char* migration_0003_outbox_chunks = R"sql(
CREATE TABLE seatledger.outbox_chunks (
  chunk_seq    bigserial PRIMARY KEY,
  lease_key    text COLLATE "C" NOT NULL,
  record_count integer NOT NULL CHECK (record_count > 0),
  -- lz4: a tenth of pglz's cost for the megabytes of JSON a commit writes.
  records      bytea COMPRESSION lz4 NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_chunks_unpublished
  ON seatledger.outbox_chunks (lease_key, chunk_seq)
  WHERE published_at IS NULL;

CREATE TABLE seatledger.event_index (
  event_id   text COLLATE "C" PRIMARY KEY,
  value      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE
  ON seatledger.outbox_chunks, seatledger.event_index TO seatledger_app;
GRANT USAGE ON SEQUENCE seatledger.outbox_chunks_chunk_seq_seq
  TO seatledger_app;
)sql";

// Migration 4: fewer index entries per event on the write path.
//
// The ledger's time index (every entry, a second B-tree besides the
// primary key) is replaced by a partial index of every 64th entry, a
// "time mark": effective times do not decrease along seq, so the last entry
// at or before an instant lies within 64 entries after the last mark at or
// before it, and `ledger_seq_at` finds it with one probe of the marks and a
// primary-key range of at most 64 entries. The write path keeps one index
// entry per row instead of two.
//
// Applied events are keyed by a 16-byte digest of (source, id) (uuid)
// instead of the two strings: the unique index compares 16 bytes instead of
// walking long shared prefixes. The service computes the key
// (domain::applied_event_key); `applied_event_key` computes the same for
// the rows that were there before and for anyone querying by hand.
constexpr const char* migration_0004_lean_indexes = R"sql(
CREATE FUNCTION seatledger.applied_event_key(source text, id text)
RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT encode(substring(sha256(
    convert_to(octet_length(convert_to(source, 'UTF8'))::text || ':', 'UTF8')
    || convert_to(source, 'UTF8')
    || convert_to(octet_length(convert_to(id, 'UTF8'))::text || ':', 'UTF8')
    || convert_to(id, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
$$;

ALTER TABLE seatledger.applied_events ADD COLUMN key uuid;
UPDATE seatledger.applied_events
  SET key = seatledger.applied_event_key(source, id);
ALTER TABLE seatledger.applied_events
  ALTER COLUMN key SET NOT NULL,
  DROP CONSTRAINT applied_events_pkey,
  ADD PRIMARY KEY (key);

DROP INDEX seatledger.seat_ledger_by_time;
CREATE INDEX seat_ledger_time_marks ON seatledger.seat_ledger
  (subscription_id, effective_at, seq) WHERE seq % 64 = 1;

-- The seq of the last entry of `sub` in effect at `t` (effective_at <= t,
-- or < t when not inclusive); NULL when there is none. Two statements, so
-- the primary-key range is bounded by the mark found: written as one join,
-- the planner walked the whole key backwards instead (415 buffers instead
-- of 6 on a 20,000-entry ledger, 70-140 ms on 1,000,000). The mark query
-- spells the index predicate exactly, or the index is not used.
CREATE FUNCTION seatledger.ledger_seq_at(sub text, t timestamptz,
                                         inclusive boolean)
RETURNS bigint LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  mark bigint;
BEGIN
  SELECT m.seq INTO mark FROM seatledger.seat_ledger AS m
  WHERE m.subscription_id = sub AND m.seq % 64 = 1
    AND m.effective_at <= t AND (inclusive OR m.effective_at < t)
  ORDER BY m.effective_at DESC, m.seq DESC LIMIT 1;
  IF mark IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN (SELECT l.seq FROM seatledger.seat_ledger AS l
          WHERE l.subscription_id = sub AND l.seq >= mark
            AND l.seq < mark + 64
            AND l.effective_at <= t AND (inclusive OR l.effective_at < t)
          ORDER BY l.seq DESC LIMIT 1);
END
$$;
)sql";

// Migration 5: outbox chunks arrive compressed (zstd, by the service:
// storage/outbox_chunk.hpp), about half the bytes of PostgreSQL's lz4, so
// PostgreSQL stores them as they are instead of compressing them again.
// Chunks already there stay lz4-compressed and read as before.
constexpr const char* migration_0005_outbox_external = R"sql(
ALTER TABLE seatledger.outbox_chunks ALTER COLUMN records SET STORAGE EXTERNAL;
)sql";

// Migration 6: a delta split in parts is one applied record, with one
// overage at most (domain/subscription.hpp); what was owed before its first
// part is kept, per subscription and org, until its last part is applied,
// so a restart between parts changes nothing.
constexpr const char* migration_0006_owed_before_parts = R"sql(
ALTER TABLE seatledger.subscription_orgs ADD COLUMN owed_before_parts bigint;
)sql";

// Migration 7: a license of a plan without a tier (no `base_product`
// charge, or its `ChargeTier__c` null or absent) says `"tier": null`
// instead of an empty string. Licenses already issued keep the empty text
// their signed claims carry; content is never rewritten.
constexpr const char* migration_0007_license_tier_optional = R"sql(
ALTER TABLE seatledger.licenses ALTER COLUMN tier DROP NOT NULL;
)sql";

// Migration 8: how many commands each subscription has applied; a
// command's event ids include it (domain::subscription_record).
constexpr const char* migration_0008_commands_applied = R"sql(
ALTER TABLE seatledger.subscriptions
  ADD COLUMN commands_applied bigint NOT NULL DEFAULT 0
  CHECK (commands_applied >= 0);
)sql";

const std::vector<migration>& migrations() {
  static const std::vector<migration> all{
    {1, "initial schema", migration_0001_initial},
    {2, "catalog classification", migration_0002_catalog_classification},
    {3, "outbox chunks", migration_0003_outbox_chunks},
    {4, "lean indexes", migration_0004_lean_indexes},
    {5, "outbox compressed by the service", migration_0005_outbox_external},
    {6, "owed before a delta's parts", migration_0006_owed_before_parts},
    {7, "license tier optional", migration_0007_license_tier_optional},
    {8, "commands applied per subscription", migration_0008_commands_applied},
  };
  return all;
}

// Session-level advisory lock serialising migrators of one database
// (advisory locks are per database). Arbitrary but fixed: "seatledg".
constexpr const char* sql_lock = "SELECT pg_advisory_lock(7311142489435399271)";
constexpr const char* sql_unlock
  = "SELECT pg_advisory_unlock(7311142489435399271)";

// How long the server lets a migrator's session sit idle, in or out of a
// transaction, before it ends the session (and with it the lock). A
// migrator runs its statements back to back; one idle this long was
// paused (SIGSTOP, a frozen VM or container) and held up every replica
// that started, for as long as the pause lasted. A migrator waiting for
// the lock, or running a long statement, is active, never idle.
constexpr int migrator_idle_limit_ms = 15000;

// An operator's stricter limit stays. (CASE: only these two settings'
// values are numbers, and AND's operands may be evaluated in any order.)
// idle_session_timeout is PostgreSQL 14's: before it, a migrator paused
// between statements keeps the lock.
constexpr const char* sql_migrator_idle_limits = R"sql(
SELECT set_config(name, $1::text, false)
FROM pg_settings
WHERE CASE WHEN name IN ('idle_session_timeout',
                         'idle_in_transaction_session_timeout')
        THEN setting::bigint = 0 OR setting::bigint > $1::bigint
        ELSE false END
)sql";

constexpr const char* sql_bootstrap = R"sql(
CREATE SCHEMA IF NOT EXISTS seatledger;
CREATE TABLE IF NOT EXISTS seatledger.schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
)sql";

constexpr const char* sql_applied_versions
  = "SELECT version FROM seatledger.schema_migrations ORDER BY version";

// Roles are the cluster's, grants the database's: a database restored onto
// another server without its roles (or its grants) has every migration
// recorded, so nothing re-creates them, and the service then failed each
// connection as if PostgreSQL were unreachable. Membership is checked
// because the service's sessions switch to the role.
// Objects are found through the catalogs, by oid: a name is looked up as
// the connecting role, which may not use the schema (only the runtime role
// is granted it), and the lookup's "permission denied" hid the reason.
constexpr const char* sql_runtime_role_state = R"sql(
SELECT current_user,
       r.oid IS NOT NULL,
       CASE WHEN r.oid IS NOT NULL
         THEN pg_has_role(current_user, r.oid, 'MEMBER') END,
       CASE WHEN r.oid IS NOT NULL
         THEN n.oid IS NOT NULL AND t.oid IS NOT NULL
              AND has_schema_privilege(r.oid, n.oid, 'USAGE')
              AND has_table_privilege(r.oid, t.oid, 'INSERT') END
FROM (VALUES (1)) AS one (x)
LEFT JOIN pg_roles AS r ON r.rolname = 'seatledger_app'
LEFT JOIN pg_namespace AS n ON n.nspname = 'seatledger'
LEFT JOIN pg_class AS t
  ON t.relnamespace = n.oid AND t.relname = 'seat_ledger'
)sql";

/// What keeps the service's sessions from running as the runtime role in a
/// migrated database, if anything. `who` names the connecting role's part.
std::optional<std::string> runtime_role_problem(pqxx::connection_base& conn,
                                                const std::string& who) {
  pqxx::nontransaction tx{conn};
  auto role = tx.exec1(sql_runtime_role_state);
  auto connecting = role[0].as<std::string>();
  if (!role[1].as<bool>())
    return std::string{
      "the runtime role seatledger_app does not exist (a database restored "
      "without its cluster's roles?): as an administrator run CREATE ROLE "
      "seatledger_app NOLOGIN and restore the database's grants (pg_dump's "
      "ACLs), or migrate a new database"};
  if (!role[2].as<bool>())
    return "the " + who
           + " role is no member of seatledger_app, which the service's "
             "sessions run as: as an administrator run GRANT seatledger_app "
             "TO "
           + tx.quote_name(connecting);
  if (!role[3].as<bool>())
    return std::string{
      "the runtime role seatledger_app lacks its privileges on schema "
      "seatledger (a database restored without its grants?): restore them "
      "(pg_dump's ACLs), or migrate a new database"};
  return std::nullopt;
}

constexpr const char* sql_migrated = R"sql(
SELECT EXISTS (
  SELECT FROM pg_class AS c
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
  WHERE n.nspname = 'seatledger' AND c.relname = 'schema_migrations')
)sql";

// For the rest of the transaction only; the connection keeps its role.
constexpr const char* sql_as_runtime_role = "SET LOCAL ROLE seatledger_app";

constexpr const char* sql_record_migration
  = "INSERT INTO seatledger.schema_migrations (version, name) VALUES ($1, $2)";

} // namespace

caf::error check_schema(const std::string& conninfo) {
  std::string step = "connect";
  try {
    pqxx::connection conn{with_network_timeouts(conninfo)};
    step = "check the schema";
    {
      pqxx::nontransaction tx{conn};
      if (!tx.exec1(sql_migrated)[0].as<bool>())
        return make_error(service_errc::storage_failure,
                          "the database has no seatledger schema: run "
                          "`seatledger migrate` first (or check the "
                          "database the connection names)");
    }
    if (auto problem = runtime_role_problem(conn, "connecting"))
      return make_error(service_errc::storage_failure, *problem);
    // As the runtime role, which may read the migrations table: a database
    // an older binary migrated lacks what this one reads.
    pqxx::work tx{conn};
    tx.exec(sql_as_runtime_role);
    std::vector<int> applied;
    for (const auto& row : tx.exec(sql_applied_versions))
      applied.push_back(row[0].as<int>());
    for (const auto& m : migrations())
      if (std::find(applied.begin(), applied.end(), m.version) == applied.end())
        return make_error(service_errc::storage_failure,
                          "the database lacks migration "
                            + std::to_string(m.version) + " (" + m.name
                            + "): run `seatledger migrate` first");
    return caf::none;
  } catch (...) {
    return detail::to_error(std::current_exception(), step);
  }
}

std::vector<int> known_migrations() {
  std::vector<int> result;
  for (const auto& m : migrations())
    result.push_back(m.version);
  return result;
}

caf::expected<int> migrate(const std::string& conninfo) {
  std::string step = "migrate: connect";
  try {
    // Network timeouts on the server's side too (a migrator whose node
    // dies holding the lock holds up every replica that starts), and no
    // silent reconnection: the lock is the session's.
    detail::pg_connection conn{conninfo};
    {
      step = "migrate: set the idle limits";
      pqxx::nontransaction limits{conn};
      limits.exec_params(sql_migrator_idle_limits, migrator_idle_limit_ms);
    }
    {
      pqxx::nontransaction lock{conn};
      step = "migrate: take the advisory lock";
      lock.exec(sql_lock);
    }
    // The session lock goes with the connection if anything below fails.
    {
      step = "migrate: create schema seatledger";
      pqxx::work tx{conn};
      tx.exec(sql_bootstrap);
      tx.commit();
    }
    std::vector<int> applied;
    {
      pqxx::nontransaction tx{conn};
      for (const auto& row : tx.exec(sql_applied_versions))
        applied.push_back(row[0].as<int>());
    }
    conn.prepare("record_migration", sql_record_migration);
    int count = 0;
    for (const auto& m : migrations()) {
      if (std::find(applied.begin(), applied.end(), m.version) != applied.end())
        continue;
      step = "migrate: migration " + std::to_string(m.version) + " (" + m.name
             + ")";
      pqxx::work tx{conn};
      tx.exec(m.sql);
      tx.exec_prepared("record_migration", m.version, std::string{m.name});
      tx.commit();
      ++count;
    }
    step = "migrate: check the runtime role";
    if (auto problem = runtime_role_problem(conn, "migrating"))
      return make_error(service_errc::storage_failure, "migrate: " + *problem);
    {
      pqxx::nontransaction unlock{conn};
      unlock.exec(sql_unlock);
    }
    return count;
  } catch (...) {
    return detail::to_error(std::current_exception(), step);
  }
}

} // namespace seatledger::storage
