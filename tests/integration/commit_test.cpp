// Batch commits: atomicity, fencing, de-duplication, positions, outbox.

#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "domain/identifiers.hpp"
#include "pg_fixture.hpp"
#include "storage/outbox_chunk.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace {

using storage::storage_batch;

class commit : public pg_test {
protected:
  /// A realistic batch: one subscription's state, its ledger entries and
  /// holders, one outbox row per entry, the applied events and a position.
  storage_batch batch_for(const std::string& sub, int entries,
                          const storage::lease& held, std::int64_t offset) {
    storage_batch b;
    b.consumer_group = "seatledger";
    b.leases = {held};
    auto l = chain(sub, entries, at("2026-02-01T10:00:00Z"), 1'000'000);
    b.ledger = l;
    b.subscriptions.push_back({record_for(sub, l), 3, std::nullopt});
    for (const auto& e : l) {
      b.holders.push_back({sub, e.user_id, e.org_id, true});
      b.outbox.push_back(outbox_for(held.lease_key, "out-" + e.cause.id));
      b.applied_events.push_back({e.cause.source, e.cause.id});
    }
    b.positions.push_back({{"seatledger.subscriptions.v1", 3}, offset});
    return b;
  }

  storage::lease take(storage::pg_store& s, const std::string& key,
                      const std::string& owner) {
    auto leases = s.acquire_leases("seatledger", {key}, owner);
    EXPECT_TRUE(leases) << describe(leases.error());
    if (!leases || leases->size() != 1)
      return {};
    return leases->front();
  }

  void expect_empty_database() {
    for (const auto* table :
         {"subscriptions", "seat_ledger", "seat_holders", "outbox",
          "outbox_chunks", "applied_events", "consumer_positions", "orgs",
          "memberships", "subscription_terms", "subscription_orgs", "licenses",
          "license_revocations"})
      EXPECT_EQ(count(table), 0) << table;
  }
};

TEST_F(commit, writes_every_part_of_a_batch) {
  auto held = take(store(), "subscriptions/3", "replica-a");
  EXPECT_EQ(held.epoch, 1);
  ASSERT_OK(store().commit(batch_for("sub-1", 5, held, 42)));
  EXPECT_EQ(count("subscriptions"), 1);
  EXPECT_EQ(count("seat_ledger"), 5);
  EXPECT_EQ(count("seat_holders"), 5);
  EXPECT_EQ(outbox_events(), 5);
  // One chunk per commit and lease, not one row per event.
  EXPECT_EQ(count("outbox_chunks"), 1);
  EXPECT_EQ(count("applied_events"), 5);
  auto positions = value_or_fail(
    store().load_positions("seatledger", {{"seatledger.subscriptions.v1", 3},
                                          {"seatledger.subscriptions.v1", 4}}));
  ASSERT_EQ(positions.size(), 1u);
  EXPECT_EQ((positions[{"seatledger.subscriptions.v1", 3}]), 42);
  // A later batch moves the position on.
  storage_batch next;
  next.consumer_group = "seatledger";
  next.leases = {held};
  next.positions = {{{"seatledger.subscriptions.v1", 3}, 50},
                    {{"seatledger.subscriptions.v1", 3}, 57}};
  ASSERT_OK(store().commit(next));
  positions = value_or_fail(
    store().load_positions("seatledger", {{"seatledger.subscriptions.v1", 3}}));
  EXPECT_EQ((positions[{"seatledger.subscriptions.v1", 3}]), 57);
}

TEST_F(commit, batch_failing_half_way_leaves_no_trace) {
  auto held = take(store(), "subscriptions/3", "replica-a");
  auto b = batch_for("sub-1", 20, held, 100);
  b.orgs.push_back({"org-1", std::string{"sub-1"}, 3, 7});
  b.memberships.push_back({"org-1", "user-1", true});
  b.terms.push_back({"sub-1",
                     {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z"),
                      at("2027-01-15T00:00:00Z"), 0}});
  b.subscription_orgs.push_back({"sub-1", "org-1", true, 7});
  // Valid rows first, then one that violates the ledger's primary key.
  b.ledger.push_back(b.ledger[10]);
  auto r = store().commit(b);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::storage_failure))
    << describe(r.error());
  expect_empty_database();
  auto positions = value_or_fail(
    store().load_positions("seatledger", {{"seatledger.subscriptions.v1", 3}}));
  EXPECT_TRUE(positions.empty());
  // The same store goes on: the corrected batch commits.
  b.ledger.pop_back();
  ASSERT_OK(store().commit(b));
  EXPECT_EQ(count("seat_ledger"), 20);
  EXPECT_EQ(count("memberships"), 1);
}

TEST_F(commit, memberships_are_written_by_their_net_change) {
  storage_batch first;
  first.consumer_group = "seatledger";
  first.memberships = {{"org-1", "stays", true},
                       {"org-1", "demoted", true},
                       {"org-1", "leaves", true},
                       {"org-1", "returns", true}};
  ASSERT_OK(store().commit(first));
  // Rows in the order an org produces them, each with what the member was
  // before it (the batch's earlier rows included).
  storage_batch next;
  next.consumer_group = "seatledger";
  next.memberships = {{"org-1", "demoted", false, true},
                      {"org-1", "leaves", std::nullopt, true},
                      {"org-1", "returns", std::nullopt, true},
                      {"org-1", "returns", false, std::nullopt},
                      {"org-1", "visits", true, std::nullopt},
                      {"org-1", "visits", std::nullopt, true},
                      {"org-1", "joins", false, std::nullopt},
                      {"org-1", "joins", true, false}};
  ASSERT_OK(store().commit(next));
  pqxx::connection conn{conninfo()};
  pqxx::nontransaction tx{conn};
  std::map<std::string, bool> members;
  for (const auto& r : tx.exec("SELECT user_id, billable FROM "
                               "seatledger.memberships WHERE org_id = 'org-1'"))
    members[r[0].as<std::string>()] = r[1].as<bool>();
  EXPECT_EQ(members, (std::map<std::string, bool>{{"demoted", false},
                                                  {"joins", true},
                                                  {"returns", false},
                                                  {"stays", true}}));
}

TEST_F(commit, a_new_member_already_stored_fails_the_whole_batch) {
  storage_batch first;
  first.consumer_group = "seatledger";
  first.memberships = {{"org-1", "user-1", true}};
  ASSERT_OK(store().commit(first));
  // State that disagrees with what is committed: the COPY's primary key
  // refuses it, and nothing of the batch stays.
  auto held = take(store(), "subscriptions/3", "replica-a");
  auto b = batch_for("sub-1", 3, held, 10);
  b.memberships = {{"org-1", "user-2", true}, {"org-1", "user-1", false}};
  auto r = store().commit(b);
  ASSERT_FALSE(r);
  EXPECT_NE(describe(r.error()).find("duplicate"), std::string::npos)
    << describe(r.error());
  EXPECT_EQ(count("memberships"), 1);
  EXPECT_EQ(count("seat_ledger"), 0);
}

TEST_F(commit, duplicate_applied_event_fails_the_whole_batch) {
  auto held = take(store(), "subscriptions/3", "replica-a");
  ASSERT_OK(store().commit(batch_for("sub-1", 2, held, 10)));
  // The next batch repeats an applied event: the unique index refuses it,
  // after the ledger, holders and outbox rows went in.
  storage_batch b;
  b.consumer_group = "seatledger";
  b.leases = {held};
  auto more = chain("sub-2", 3, at("2026-02-02T00:00:00Z"), 1);
  b.ledger = more;
  b.subscriptions.push_back({record_for("sub-2", more), 3, std::nullopt});
  b.outbox.push_back(outbox_for("subscriptions/3", "x"));
  b.applied_events = {{"test", "fresh"}, {"test", "evt-sub-1-1"}};
  b.positions.push_back({{"seatledger.subscriptions.v1", 3}, 99});
  auto r = store().commit(b);
  ASSERT_FALSE(r);
  // Told apart from other refusals: the service applies such a batch again
  // after looking its events up.
  EXPECT_TRUE(is(r.error(), service_errc::already_applied))
    << describe(r.error());
  EXPECT_NE(describe(r.error()).find("applied before"), std::string::npos)
    << describe(r.error());
  EXPECT_EQ(count("subscriptions"), 1);
  EXPECT_EQ(count("seat_ledger"), 2);
  EXPECT_EQ(outbox_events(), 2);
  EXPECT_EQ(count("applied_events"), 2);
  auto positions = value_or_fail(
    store().load_positions("seatledger", {{"seatledger.subscriptions.v1", 3}}));
  EXPECT_EQ((positions[{"seatledger.subscriptions.v1", 3}]), 10);
}

TEST_F(commit, stale_writer_is_fenced_and_leaves_nothing) {
  storage::pg_store a{conninfo()};
  storage::pg_store b{conninfo()};
  auto lease_a = take(a, "subscriptions/3", "replica-a");
  EXPECT_EQ(lease_a.epoch, 1);
  ASSERT_OK(a.commit(batch_for("sub-a0", 1, lease_a, 1)));
  auto lease_b = take(b, "subscriptions/3", "replica-b");
  EXPECT_EQ(lease_b.epoch, 2);
  auto stale = a.commit(batch_for("sub-a", 3, lease_a, 5));
  ASSERT_FALSE(stale);
  EXPECT_TRUE(is(stale.error(), service_errc::fenced))
    << describe(stale.error());
  EXPECT_EQ(count("seat_ledger"), 1);
  EXPECT_EQ(count("subscriptions"), 1);
  ASSERT_OK(b.commit(batch_for("sub-b", 2, lease_b, 7)));
  // A never writes for the partition again, whatever it retries.
  EXPECT_FALSE(a.commit(batch_for("sub-a", 3, lease_a, 5)));
  auto positions = value_or_fail(
    b.load_positions("seatledger", {{"seatledger.subscriptions.v1", 3}}));
  EXPECT_EQ((positions[{"seatledger.subscriptions.v1", 3}]), 7);
  auto subs = value_or_fail(b.load_subscriptions({"sub-a", "sub-b"}));
  EXPECT_EQ(subs.count("sub-a"), 0u);
  EXPECT_EQ(subs.count("sub-b"), 1u);
  auto outbox = value_or_fail(b.fetch_unpublished({"subscriptions/3"}, 100));
  EXPECT_EQ(outbox.size(), 3u); // sub-a0's one and sub-b's two
}

TEST_F(commit, takeover_waits_for_a_commit_in_flight) {
  // The commit row-locks its lease: a takeover that starts meanwhile waits,
  // then increments the epoch the committed batch held.
  storage::pg_store a{conninfo()};
  auto lease_a = take(a, "subscriptions/3", "replica-a");
  auto locker = superuser();
  pqxx::work hold{*locker};
  hold.exec("SELECT * FROM seatledger.partition_leases FOR UPDATE");
  std::thread taker{[&] {
    storage::pg_store b{conninfo()};
    auto l = b.acquire_leases("seatledger", {"subscriptions/3"}, "replica-b");
    ASSERT_TRUE(l) << describe(l.error());
    EXPECT_EQ(l->front().epoch, 2);
  }};
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  hold.abort();
  taker.join();
  auto r = a.commit(batch_for("sub-a", 1, lease_a, 1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::fenced));
}

/// Replicas as deployed: one login role, granted the runtime role, shared
/// by every replica (a non-superuser: what it may see of other sessions
/// and end is its own).
class commit_as_replicas : public commit {
protected:
  void SetUp() override {
    commit::SetUp();
    role_ = unique_name("seatledger_replica");
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("CREATE ROLE " + tx.quote_name(role_)
            + " LOGIN PASSWORD 'replica-password-1' IN ROLE seatledger_app");
  }

  void TearDown() override {
    stalled_.reset();
    stalled_connection_.reset();
    commit::TearDown();
    if (role_.empty())
      return;
    pqxx::connection admin{""};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP ROLE IF EXISTS " + tx.quote_name(role_));
  }

  std::string replica_conninfo() const {
    return conninfo() + " user=" + role_ + " password=replica-password-1";
  }

  /// A replica's commit stalled after its lease check: the lease's row
  /// stays locked while the transaction is open. Its session's pid.
  int stalled_commit(const std::string& lease_key,
                     const std::string& application = "seatledger") {
    stalled_connection_ = std::make_unique<pqxx::connection>(
      replica_conninfo() + " application_name=" + application);
    stalled_ = std::make_unique<pqxx::work>(*stalled_connection_);
    stalled_->exec("SET LOCAL ROLE seatledger_app");
    stalled_->exec("UPDATE seatledger.partition_leases "
                   "SET last_commit_at = now() WHERE lease_key = "
                   + stalled_->quote(lease_key));
    return stalled_connection_->backendpid();
  }

  /// What replica-b's taking membership/2 (a 300 ms wait) came to.
  struct takeover {
    caf::expected<std::vector<storage::lease>> leases{caf::error{}};
    std::vector<storage::ended_lease_holder> ended;
    /// Still waiting after 10 s: `unblock` ran to end the wait.
    bool stuck = false;
  };

  takeover take_over(const std::function<void()>& unblock) {
    takeover result;
    storage::pg_store_options options;
    options.lease_lock_wait = std::chrono::milliseconds{300};
    options.on_lease_holder_ended = [&](const storage::ended_lease_holder& e) {
      result.ended.push_back(e);
    };
    // Declared before the future: the thread uses it until get().
    storage::pg_store taker{replica_conninfo(), options};
    auto taking = std::async(std::launch::async, [&] {
      return taker.acquire_leases("seatledger", {"membership/2"}, "replica-b");
    });
    if (taking.wait_for(std::chrono::seconds{10})
        != std::future_status::ready) {
      result.stuck = true;
      unblock();
    }
    result.leases = taking.get();
    return result;
  }

  /// A takeover that met a lock it may not end: it gave up after its wait
  /// with the lock timeout and ended no session.
  static void expect_refused_ending_nothing(const takeover& refused) {
    ASSERT_FALSE(refused.stuck) << "the takeover waited 10 s for the lock";
    ASSERT_FALSE(refused.leases);
    EXPECT_NE(describe(refused.leases.error()).find("lock timeout"),
              std::string::npos)
      << describe(refused.leases.error());
    EXPECT_TRUE(refused.ended.empty());
  }

  /// The lease's epoch once replica-b takes it again with nothing in the
  /// way.
  std::int64_t take_again() {
    storage::pg_store b{replica_conninfo()};
    return take(b, "membership/2", "replica-b").epoch;
  }

  std::string role_;
  std::unique_ptr<pqxx::connection> stalled_connection_;
  std::unique_ptr<pqxx::work> stalled_;
};

TEST_F(commit_as_replicas, a_takeover_ends_a_stalled_commit_holding_the_lease) {
  // A replica paused (or cut off) inside a commit holds its lease's row for
  // as long as it stays paused. The new owner must not wait for it: after
  // the wait it ends that session, and the stalled commit can never land.
  storage::pg_store a{replica_conninfo()};
  auto lease_a = take(a, "membership/2", "replica-a");
  ASSERT_EQ(lease_a.epoch, 1);
  const auto holder_pid = stalled_commit("membership/2");
  auto taken = take_over([&] {
    auto conn = superuser();
    pqxx::nontransaction{*conn}.exec("SELECT pg_terminate_backend("
                                     + std::to_string(holder_pid) + ")");
  });
  ASSERT_FALSE(taken.stuck) << "the takeover waited 10 s for the commit";
  ASSERT_TRUE(taken.leases) << describe(taken.leases.error());
  EXPECT_EQ(taken.leases->front().epoch, 2);
  ASSERT_EQ(taken.ended.size(), 1u);
  EXPECT_EQ(taken.ended[0].lease_keys, "membership/2");
  EXPECT_EQ(taken.ended[0].owner, "replica-a");
  EXPECT_EQ(taken.ended[0].pid, holder_pid);
  EXPECT_GE(taken.ended[0].transaction_seconds, 0.3);
  // The stalled transaction is gone with its session.
  EXPECT_ANY_THROW(stalled_->commit());
  auto r = a.commit(batch_for("sub-a", 1, lease_a, 1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::fenced));
  EXPECT_EQ(count("seat_ledger"), 0);
}

TEST_F(commit_as_replicas,
       a_takeover_ends_no_session_that_locks_only_the_table) {
  // A migration's table lock is no stalled commit: the takeover fails
  // after its wait (and is retried by its caller) and ends nothing.
  storage::pg_store a{replica_conninfo()};
  take(a, "membership/2", "replica-a");
  auto migrator = superuser();
  pqxx::work lock{*migrator};
  lock.exec("LOCK TABLE seatledger.partition_leases IN SHARE MODE");
  expect_refused_ending_nothing(take_over([&] { lock.commit(); }));
  lock.commit(); // its session is still there
  EXPECT_EQ(take_again(), 2);
}

TEST_F(commit_as_replicas, a_takeover_waits_for_a_session_not_the_services) {
  // An operator's session holding the row (psql, a maintenance script) is
  // nobody's stalled commit: it is waited for, never ended.
  storage::pg_store a{replica_conninfo()};
  take(a, "membership/2", "replica-a");
  stalled_commit("membership/2", "psql");
  expect_refused_ending_nothing(take_over([&] { stalled_->commit(); }));
  stalled_->commit(); // its session is still there
  EXPECT_EQ(take_again(), 2);
}

TEST_F(commit, several_leases_and_unknown_lease) {
  auto leases = value_or_fail(store().acquire_leases(
    "seatledger", {"membership/1", "membership/0", "membership/1"}, "me"));
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].lease_key, "membership/1");
  EXPECT_EQ(leases[1].lease_key, "membership/0");
  storage_batch b;
  b.consumer_group = "seatledger";
  b.leases = leases;
  b.orgs.push_back({"org-1", std::nullopt, 0, 0});
  ASSERT_OK(store().commit(b));
  // A lease never taken is no lease at all.
  b.leases.push_back({"membership/9", 1});
  auto r = store().commit(b);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::fenced));
  // Another consumer group has leases of its own.
  auto other = value_or_fail(
    store().acquire_leases("other-group", {"membership/0"}, "me"));
  EXPECT_EQ(other.front().epoch, 1);
}

TEST_F(commit, a_fenced_writer_learns_which_leases_it_still_holds) {
  // A batch covers several partitions; when one of them was taken over, the
  // writer must drop that one only and go on with the others.
  storage::pg_store a{conninfo()};
  storage::pg_store b{conninfo()};
  auto held = value_or_fail(a.acquire_leases(
    "seatledger", {"membership/0", "membership/1", "subscriptions/0"}, "a"));
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(value_or_fail(a.held_leases("seatledger", held)),
            (std::vector<std::string>{"membership/0", "membership/1",
                                      "subscriptions/0"}));
  take(b, "membership/1", "b");
  EXPECT_EQ(value_or_fail(a.held_leases("seatledger", held)),
            (std::vector<std::string>{"membership/0", "subscriptions/0"}));
  // The epoch is what is held: the taker's epoch is, the old one is not.
  EXPECT_EQ(value_or_fail(b.held_leases("seatledger", {{"membership/1", 1},
                                                       {"membership/1", 2}})),
            (std::vector<std::string>{"membership/1"}));
  // A lease never taken, or of another group, is not held.
  EXPECT_TRUE(
    value_or_fail(a.held_leases("seatledger", {{"membership/9", 1}})).empty());
  EXPECT_TRUE(
    value_or_fail(a.held_leases("other-group", {held.front()})).empty());
  EXPECT_TRUE(value_or_fail(a.held_leases("seatledger", {})).empty());
}

TEST_F(commit, last_row_wins_and_removals) {
  storage_batch b;
  b.consumer_group = "seatledger";
  b.orgs = {{"org-1", std::string{"sub-1"}, 1, 1},
            {"org-1", std::string{"sub-2"}, 1, 2}};
  b.memberships = {{"org-1", "u1", true},
                   {"org-1", "u2", true},
                   {"org-1", "u1", false, true},
                   {"org-1", "u3", true},
                   {"org-1", "u3", std::nullopt, true}};
  b.holders = {{"sub-2", "u1", "org-1", true},
               {"sub-2", "u2", "org-1", true},
               {"sub-2", "u2", "org-1", false},
               {"sub-2", "u2", "org-9", true}};
  ASSERT_OK(store().commit(b));
  auto orgs = value_or_fail(store().load_orgs({"org-1", "org-2"}));
  ASSERT_EQ(orgs.size(), 1u);
  EXPECT_EQ(orgs["org-1"].subscription_id, std::optional<std::string>{"sub-2"});
  EXPECT_EQ(orgs["org-1"].delta_seq, 2);
  std::map<std::string, bool> members{{"u1", false}, {"u2", true}};
  EXPECT_EQ(orgs["org-1"].members, members);
  // The member leaves and the link goes, in a later batch.
  storage_batch later;
  later.consumer_group = "seatledger";
  later.orgs = {{"org-1", std::nullopt, 1, 3}};
  later.memberships = {{"org-1", "u2", std::nullopt, true}};
  later.holders = {{"sub-2", "u1", "org-1", false}};
  ASSERT_OK(store().commit(later));
  orgs = value_or_fail(store().load_orgs({"org-1"}));
  EXPECT_EQ(orgs["org-1"].subscription_id, std::nullopt);
  EXPECT_EQ(orgs["org-1"].members,
            (std::map<std::string, bool>{{"u1", false}}));
  auto holders = value_or_fail(store().holders_page("sub-2", "", 100));
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].user_id, "u2");
  EXPECT_EQ(holders[0].orgs, std::vector<std::string>{"org-9"});
}

/// An active subscription of 10 seats, `seats_in_use` of them in use.
domain::subscription_record active_record(const std::string& id,
                                          std::int64_t seats_in_use) {
  domain::subscription_record r;
  r.subscription_id = id;
  r.status = domain::subscription_status::active;
  r.display_name = "Customer " + id;
  r.plan_id = "premium";
  r.seats = 10;
  r.term = {domain::timestamp::from_seconds(1'767'225'600),
            domain::timestamp::from_seconds(1'798'761'600)};
  r.instance = {id + ".example.com", domain::instance_type::primary};
  r.seats_in_use = seats_in_use;
  return r;
}

// State rows go by UPDATE when they are stored and by the upsert when they
// are new; both paths take a key's last row in the batch.
TEST_F(commit, state_rows_take_their_last_row_whether_stored_or_new) {
  auto record = active_record;
  storage_batch first;
  first.consumer_group = "seatledger";
  first.orgs = {{"org-old", std::string{"sub-old"}, 1, 1}};
  // With what was owed before a delta's first part, its last to come.
  first.subscription_orgs = {{"sub-old", "org-old", true, 1, 4}};
  first.subscriptions = {{record("sub-old", 1), 1, std::nullopt}};
  ASSERT_OK(store().commit(first));
  EXPECT_EQ(value_or_fail(store().load_subscriptions({"sub-old"}))
              .at("sub-old")
              .owed_before_parts,
            (std::map<std::string, std::int64_t>{{"org-old", 4}}));

  // Each table gets a stored key and a new one, each twice.
  storage_batch b;
  b.consumer_group = "seatledger";
  b.orgs = {{"org-old", std::string{"sub-old"}, 1, 2},
            {"org-new", std::string{"sub-new"}, 1, 1},
            {"org-old", std::string{"sub-new"}, 1, 3},
            {"org-new", std::nullopt, 1, 2}};
  b.subscription_orgs = {{"sub-old", "org-old", true, 2, 4},
                         {"sub-new", "org-new", false, 1},
                         {"sub-old", "org-old", false, 3},
                         {"sub-new", "org-new", true, 2, 7}};
  b.subscriptions = {{record("sub-old", 2), 1, std::nullopt},
                     {record("sub-new", 5), 1, std::nullopt},
                     {record("sub-old", 3), 1, std::nullopt},
                     {record("sub-new", 6), 1, std::nullopt}};
  ASSERT_OK(store().commit(b));

  auto orgs = value_or_fail(store().load_orgs({"org-old", "org-new"}));
  ASSERT_EQ(orgs.size(), 2u);
  EXPECT_EQ(orgs.at("org-old").subscription_id,
            std::optional<std::string>{"sub-new"});
  EXPECT_EQ(orgs.at("org-old").delta_seq, 3);
  EXPECT_EQ(orgs.at("org-new").subscription_id, std::nullopt);
  EXPECT_EQ(orgs.at("org-new").delta_seq, 2);
  auto subs = value_or_fail(store().load_subscriptions({"sub-old", "sub-new"}));
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs.at("sub-old").record.seats_in_use, 3);
  EXPECT_EQ(subs.at("sub-new").record.seats_in_use, 6);
  EXPECT_TRUE(subs.at("sub-old").orgs.empty()); // unlinked by its last row
  EXPECT_EQ(subs.at("sub-old").org_delta_seqs,
            (std::map<std::string, std::int64_t>{{"org-old", 3}}));
  EXPECT_EQ(subs.at("sub-new").orgs, std::set<std::string>{"org-new"});
  EXPECT_EQ(subs.at("sub-new").org_delta_seqs,
            (std::map<std::string, std::int64_t>{{"org-new", 2}}));
  // The last part came for one (NULL again), a first part for the other.
  EXPECT_TRUE(subs.at("sub-old").owed_before_parts.empty());
  EXPECT_EQ(subs.at("sub-new").owed_before_parts,
            (std::map<std::string, std::int64_t>{{"org-new", 7}}));
}

TEST_F(commit, a_row_of_counts_only_writes_just_the_counts_of_a_stored_row) {
  auto record = [](const std::string& id, const std::string& name,
                   std::int64_t seats_in_use) {
    auto r = active_record(id, seats_in_use);
    r.display_name = name;
    r.ledger_seq = seats_in_use;
    r.ledger_hash = std::string(64, static_cast<char>('a' + seats_in_use));
    r.max_seats_used = seats_in_use;
    r.max_seats_used_changed_at
      = domain::timestamp::from_seconds(1'767'300'000);
    r.seats_owed = seats_in_use > 10 ? seats_in_use - 10 : 0;
    r.clock = domain::timestamp::from_seconds(1'767'300'000 + seats_in_use);
    return r;
  };
  auto month_end = domain::timestamp::from_seconds(1'769'904'000);
  storage_batch first;
  first.consumer_group = "seatledger";
  first.subscriptions = {{record("sub-a", "A", 1), 1, month_end},
                         {record("sub-b", "B", 1), 1, month_end}};
  ASSERT_OK(store().commit(first));

  storage_batch b;
  b.consumer_group = "seatledger";
  // Stored, counts only: the counts move; a name the row carries is not
  // written (a seat delta never changes it).
  b.subscriptions.push_back({record("sub-a", "not written", 12), 1, {}, true});
  // Stored, a whole row then one of counts only: written whole.
  b.subscriptions.push_back({record("sub-b", "B renamed", 2), 1, {}, false});
  b.subscriptions.push_back({record("sub-b", "B renamed", 3), 1, {}, true});
  // Not stored yet, counts only: written whole.
  b.subscriptions.push_back({record("sub-c", "C", 4), 1, month_end, true});
  ASSERT_OK(store().commit(b));

  auto subs
    = value_or_fail(store().load_subscriptions({"sub-a", "sub-b", "sub-c"}));
  ASSERT_EQ(subs.size(), 3u);
  const auto& a = subs.at("sub-a").record;
  auto expected_a = record("sub-a", "A", 12);
  EXPECT_EQ(a.display_name, "A");
  EXPECT_EQ(a.seats_in_use, 12);
  EXPECT_EQ(a.ledger_seq, 12);
  EXPECT_EQ(a.ledger_hash, expected_a.ledger_hash);
  EXPECT_EQ(a.max_seats_used, 12);
  EXPECT_EQ(a.max_seats_used_changed_at, expected_a.max_seats_used_changed_at);
  EXPECT_EQ(a.seats_owed, 2);
  EXPECT_EQ(a.clock, expected_a.clock);
  EXPECT_EQ(subs.at("sub-b").record.display_name, "B renamed");
  EXPECT_EQ(subs.at("sub-b").record.seats_in_use, 3);
  EXPECT_EQ(subs.at("sub-c").record.display_name, "C");
  EXPECT_EQ(subs.at("sub-c").record.seats_in_use, 4);
  // The month-close sweeper's column moves with the counts: cleared here.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  EXPECT_TRUE(tx.exec1("SELECT next_month_end IS NULL FROM "
                       "seatledger.subscriptions WHERE subscription_id = "
                       "'sub-a'")[0]
                .as<bool>());
}

TEST_F(commit, ledger_insert_must_extend_the_chain) {
  auto l = chain("sub-1", 3, at("2026-02-01T00:00:00Z"), 10);
  storage_batch ok;
  ok.ledger = {l[0], l[1]};
  ASSERT_OK(store().commit(ok));
  // A gap (seq 3 missing) and a wrong prev_hash are refused.
  auto next = chain("sub-1", 2, at("2026-02-02T00:00:00Z"), 10, 4, l[2].hash);
  storage_batch gap;
  gap.ledger = {next[0]};
  auto r = store().commit(gap);
  ASSERT_FALSE(r);
  EXPECT_NE(describe(r.error()).find("extend its chain"), std::string::npos)
    << describe(r.error());
  auto forged = l[2];
  forged.prev_hash = std::string(64, 'f');
  forged.hash = domain::compute_entry_hash(forged);
  storage_batch wrong;
  wrong.ledger = {forged};
  EXPECT_FALSE(store().commit(wrong));
  auto bad_first = chain("sub-2", 1, at("2026-02-01T00:00:00Z"), 1, 1,
                         std::string(64, '1'));
  storage_batch bad;
  bad.ledger = bad_first;
  EXPECT_FALSE(store().commit(bad));
  storage_batch rest;
  rest.ledger = {l[2]};
  ASSERT_OK(store().commit(rest));
  EXPECT_EQ(count("seat_ledger"), 3);
}

TEST_F(commit, microsecond_timestamps_round_trip_exactly) {
  std::vector<domain::timestamp> times{
    domain::timestamp::from_micros(1'767'225'600'123'457), // 2026, odd µs
    domain::timestamp::from_micros(1),
    domain::timestamp::from_micros(-1), // 1969-12-31T23:59:59.999999Z
    domain::timestamp::from_micros(-2'208'988'800'000'001),  // 1899
    domain::timestamp::from_micros(253'402'300'799'999'999), // 9999-12-31
  };
  std::vector<domain::ledger_entry> entries;
  std::string prev = domain::genesis_hash;
  std::int64_t seq = 1;
  std::sort(times.begin(), times.end());
  for (auto t : times) {
    auto e = chain("sub-t", 1, t, 0, seq++, prev).front();
    prev = e.hash;
    entries.push_back(e);
  }
  storage_batch b;
  b.ledger = entries;
  auto rec = record_for("sub-t", entries);
  rec.max_seats_used_changed_at = times[0];
  b.subscriptions.push_back({rec, 0, times[4]});
  ASSERT_OK(store().commit(b));
  auto page = value_or_fail(store().ledger_page("sub-t", 0, 100));
  EXPECT_EQ(page, entries);
  auto snap = value_or_fail(store().subscription("sub-t"));
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->record.clock, times[4]);
  EXPECT_EQ(snap->record.max_seats_used_changed_at, times[0]);
  // And PostgreSQL holds exactly that instant.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  tx.exec("SET TIME ZONE 'UTC'");
  EXPECT_EQ(tx.exec1("SELECT effective_at::text FROM seatledger.seat_ledger "
                     "WHERE seq = 4")[0]
              .as<std::string>(),
            "2026-01-01 00:00:00.123457+00");
}

TEST_F(commit, filter_applied_and_purge) {
  storage_batch b;
  b.applied_events = {{"portal", "1"}, {"portal", "2"}, {"billing", "1"}};
  ASSERT_OK(store().commit(b));
  auto seen = value_or_fail(store().filter_applied(
    {{"portal", "2"}, {"portal", "3"}, {"billing", "1"}, {"billing", "2"}}));
  EXPECT_EQ(seen, (std::vector<bool>{true, false, true, false}));
  EXPECT_TRUE(value_or_fail(store().filter_applied({})).empty());
  // Nothing is older than an hour ago; everything is older than tomorrow.
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  auto hour = std::int64_t{3'600'000'000};
  EXPECT_EQ(value_or_fail(store().purge_applied_before(
              domain::timestamp::from_micros(now - hour))),
            0);
  EXPECT_EQ(value_or_fail(store().purge_applied_before(
              domain::timestamp::from_micros(now + 24 * hour))),
            3);
  seen = value_or_fail(store().filter_applied({{"portal", "1"}}));
  EXPECT_EQ(seen, std::vector<bool>{false});
}

TEST_F(commit, rejections_are_kept_as_long_as_applied_events) {
  storage_batch b;
  b.applied_events = {{"portal", "cmd-1"}};
  b.indexed_events = {{"rejected-1", R"({"id":"rejected-1"})"}};
  ASSERT_OK(store().commit(b));
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  auto hour = std::int64_t{3'600'000'000};
  value_or_fail(
    store().purge_applied_before(domain::timestamp::from_micros(now - hour)));
  auto kept = value_or_fail(store().outbox_event("rejected-1"));
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, R"({"id":"rejected-1"})");
  EXPECT_EQ(value_or_fail(store().purge_applied_before(
              domain::timestamp::from_micros(now + hour))),
            1);
  EXPECT_FALSE(value_or_fail(store().outbox_event("rejected-1")));
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  EXPECT_EQ(
    tx.exec1("SELECT count(*) FROM seatledger.event_index")[0].as<int>(), 0);
}

// Holder changes are flips against the committed state, so a key's changes
// in one batch alternate and only an odd count changes the table; additions
// go in without a conflict check, and one that breaks that contract fails
// the whole commit instead of being absorbed.
TEST_F(commit, seat_holders_change_by_their_net_flip) {
  storage_batch first;
  first.holders
    = {{"sub-h", "u1", "org-1", true},  {"sub-h", "u2", "org-1", true},
       {"sub-h", "u2", "org-1", false}, {"sub-h", "u3", "org-1", true},
       {"sub-h", "u3", "org-1", false}, {"sub-h", "u3", "org-1", true}};
  ASSERT_OK(store().commit(first));
  auto users = [&] {
    std::vector<std::string> out;
    for (const auto& h : value_or_fail(store().holders_page("sub-h", "", 100)))
      out.push_back(h.user_id);
    return out;
  };
  EXPECT_EQ(users(), (std::vector<std::string>{"u1", "u3"}));
  storage_batch second;
  second.holders = {{"sub-h", "u1", "org-1", false},
                    {"sub-h", "u1", "org-1", true},
                    {"sub-h", "u3", "org-1", false},
                    {"sub-h", "u4", "org-2", true}};
  ASSERT_OK(store().commit(second));
  EXPECT_EQ(users(), (std::vector<std::string>{"u1", "u4"}));
  storage_batch broken;
  broken.holders = {{"sub-h", "u9", "org-1", true},
                    {"sub-h", "u4", "org-2", true}};
  broken.consumer_group = "seatledger";
  broken.positions = {{{"seatledger.subscriptions.v1", 0}, 7}};
  EXPECT_FALSE(store().commit(broken));
  EXPECT_EQ(users(), (std::vector<std::string>{"u1", "u4"}));
  EXPECT_EQ(count("consumer_positions"), 0);
}

// Applied events are keyed by a digest the service computes; the schema's
// `applied_event_key` (which migration 4 used for the rows already there)
// must compute the same, multi-byte characters included, or events applied
// before the upgrade would be applied again.
TEST_F(commit, applied_event_keys_agree_with_the_schema_function) {
  storage_batch b;
  b.applied_events = {{"portal", "x"},
                      {"https://billing.example.com/z\u00fcrich", "\u00e9v-1"},
                      {"a", "bc"},
                      {"ab", "c"}};
  ASSERT_OK(store().commit(b));
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM seatledger.applied_events "
                     "WHERE key = seatledger.applied_event_key(source, id)")[0]
              .as<int>(),
            4);
  EXPECT_EQ(tx.exec1("SELECT seatledger.applied_event_key('portal', 'x')")[0]
              .as<std::string>(),
            domain::applied_event_key({"portal", "x"}));
  // A row written by hand with the function is found by the service.
  tx.exec("INSERT INTO seatledger.applied_events (key, source, id) VALUES "
          "(seatledger.applied_event_key('manual', 'm-1'), 'manual', 'm-1')");
  EXPECT_EQ(value_or_fail(store().filter_applied({{"manual", "m-1"}})),
            std::vector<bool>{true});
}

// De-duplication computes each event's key once; the commit stores that key
// instead of hashing again (and a key computed the same way finds it).
TEST_F(commit, applied_events_are_stored_under_the_key_they_bring) {
  storage_batch b;
  b.applied_events
    = {{"portal", "brought", domain::applied_event_key({"portal", "brought"})},
       {"portal", "computed"}};
  ASSERT_OK(store().commit(b));
  auto found = value_or_fail(store().filter_applied_keys(
    {domain::applied_event_key({"portal", "brought"}),
     domain::applied_event_key({"portal", "computed"}),
     domain::applied_event_key({"portal", "other"})}));
  EXPECT_EQ(found, (std::vector<bool>{true, true, false}));
  // The brought key is used as it is: one the store would not compute.
  storage_batch odd;
  odd.applied_events
    = {{"portal", "odd", domain::applied_event_key({"portal", "elsewhere"})}};
  ASSERT_OK(store().commit(odd));
  EXPECT_EQ(value_or_fail(store().filter_applied({{"portal", "elsewhere"}})),
            std::vector<bool>{true});
  EXPECT_EQ(value_or_fail(store().filter_applied({{"portal", "odd"}})),
            std::vector<bool>{false});
}

TEST_F(commit, outbox_is_fetched_in_commit_order_and_marked) {
  for (int batch = 0; batch < 3; ++batch) {
    storage_batch b;
    for (int i = 0; i < 4; ++i) {
      auto key = (i % 2 == 0) ? "subscriptions/1" : "subscriptions/2";
      b.outbox.push_back(outbox_for(key, "e" + std::to_string(batch * 4 + i)));
    }
    ASSERT_OK(store().commit(b));
  }
  // Three commits of two leases: six chunks of two events.
  EXPECT_EQ(count("outbox_chunks"), 6);
  EXPECT_EQ(value_or_fail(store().unpublished_count()), 12);
  auto mine = value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 4));
  ASSERT_EQ(mine.size(), 4u);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    ids.push_back(mine[i].row.event_id);
    EXPECT_EQ(mine[i].row.lease_key, "subscriptions/1");
  }
  // The events of one commit share their chunk's sequence number.
  EXPECT_EQ(mine[0].outbox_seq, mine[1].outbox_seq);
  EXPECT_LT(mine[1].outbox_seq, mine[2].outbox_seq);
  EXPECT_EQ(mine[2].outbox_seq, mine[3].outbox_seq);
  EXPECT_EQ(ids, (std::vector<std::string>{"e0", "e2", "e4", "e6"}));
  // A limit inside a chunk still returns the whole chunk.
  auto one = value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 1));
  EXPECT_EQ(one.size(), 2u);
  std::vector<std::int64_t> seqs;
  for (const auto& e : mine)
    seqs.push_back(e.outbox_seq);
  ASSERT_OK(store().mark_published(seqs));
  auto rest = value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 10));
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].row.event_id, "e8");
  EXPECT_EQ(rest[1].row.event_id, "e10");
  EXPECT_EQ(value_or_fail(store().unpublished_count()), 8);
  auto both = value_or_fail(
    store().fetch_unpublished({"subscriptions/2", "subscriptions/1"}, 100));
  EXPECT_EQ(both.size(), 8u);
  // Purge removes published chunks only.
  auto tomorrow = domain::timestamp::from_micros(
    std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch())
      .count()
    + 86'400'000'000);
  EXPECT_EQ(value_or_fail(store().purge_published_before(tomorrow)), 2);
  EXPECT_EQ(outbox_events(), 8);
}

TEST_F(commit, outbox_rows_written_before_chunks_are_relayed_first) {
  // A database upgraded from the row-per-event outbox may hold unpublished
  // rows there; they precede every chunk of their lease.
  {
    auto admin = superuser();
    pqxx::work tx{*admin};
    tx.exec("INSERT INTO seatledger.outbox (event_id, topic, key, value, "
            "headers, lease_key) VALUES ('old-1', 't', 'k', 'v1', '[]', "
            "'subscriptions/1'), ('old-2', 't', 'k', 'v2', '[]', "
            "'subscriptions/1')");
    tx.commit();
  }
  storage_batch b;
  b.outbox.push_back(outbox_for("subscriptions/1", "new-1"));
  ASSERT_OK(store().commit(b));
  EXPECT_EQ(value_or_fail(store().unpublished_count()), 3);
  auto all = value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 10));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].row.event_id, "old-1");
  EXPECT_EQ(all[0].row.value, "v1");
  EXPECT_EQ(all[1].row.event_id, "old-2");
  EXPECT_EQ(all[2].row.event_id, "new-1");
  std::vector<std::int64_t> seqs;
  for (const auto& e : all)
    seqs.push_back(e.outbox_seq);
  ASSERT_OK(store().mark_published(seqs));
  EXPECT_EQ(value_or_fail(store().unpublished_count()), 0);
  EXPECT_TRUE(
    value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 10)).empty());
}

// Chunks are stored as the service compressed them (migration 5), and a
// plain chunk an earlier version committed (lz4 by PostgreSQL) is still
// relayed, before the compressed chunks after it.
TEST_F(commit, plain_chunks_of_earlier_versions_are_relayed_beside_new_ones) {
  storage::outbox_row old_row = outbox_for("subscriptions/1", "old-1");
  auto plain = storage::encode_outbox_chunk({&old_row},
                                            storage::chunk_compression::none);
  {
    auto admin = superuser();
    pqxx::work tx{*admin};
    EXPECT_EQ(tx.exec("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                      "'seatledger.outbox_chunks'::regclass AND attname = "
                      "'records'")[0][0]
                .as<std::string>(),
              "e"); // EXTERNAL: not compressed again
    tx.exec_params("INSERT INTO seatledger.outbox_chunks (lease_key, "
                   "record_count, records) VALUES ($1, 1, $2)",
                   "subscriptions/1", pqxx::binarystring{plain});
    tx.commit();
  }
  storage_batch b;
  b.outbox.push_back(outbox_for("subscriptions/1", "new-1"));
  ASSERT_OK(store().commit(b));
  auto all = value_or_fail(store().fetch_unpublished({"subscriptions/1"}, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].row.event_id, "old-1");
  EXPECT_EQ(all[0].row.value, old_row.value);
  EXPECT_EQ(all[1].row.event_id, "new-1");
  auto admin = superuser();
  pqxx::work tx{*admin};
  EXPECT_EQ(tx.exec("SELECT count(*) FROM seatledger.outbox_chunks WHERE "
                    "substring(records FROM 1 FOR 4) = 'SLZ1'::bytea")[0][0]
              .as<int>(),
            1);
}

TEST_F(commit, outbox_value_and_headers_round_trip) {
  storage_batch b;
  auto row = outbox_for("k", "bin");
  row.value = std::string("\0\x01\t\n\\\xff{\"a\":1}", 13);
  row.headers = {{"ce_id", "x\ty\"z\\"},
                 {"dup", "1"},
                 {"dup", "2"},
                 {"utf8", "gr\xc3\xbc\xc3\x9f"}};
  b.outbox.push_back(row);
  ASSERT_OK(store().commit(b));
  auto got = value_or_fail(store().fetch_unpublished({"k"}, 1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].row.value, row.value);
  EXPECT_EQ(got[0].row.headers, row.headers);
  EXPECT_EQ(got[0].row.event_id, "bin");
  EXPECT_EQ(got[0].row.topic, row.topic);
  EXPECT_EQ(got[0].row.key, row.key);
}

TEST_F(commit, indexed_events_are_found_by_id_published_or_not) {
  storage_batch b;
  auto row = outbox_for("k", "rejected-1");
  row.value = R"({"type":"seatledger.command.rejected","data":{}})";
  b.outbox.push_back(row);
  b.outbox.push_back(outbox_for("k", "plain-1"));
  b.indexed_events.emplace_back(row.event_id, row.value);
  ASSERT_OK(store().commit(b));
  EXPECT_EQ(value_or_fail(store().outbox_event("rejected-1")),
            std::optional<std::string>{row.value});
  auto got = value_or_fail(store().fetch_unpublished({"k"}, 10));
  ASSERT_EQ(got.size(), 2u);
  ASSERT_OK(store().mark_published({got[0].outbox_seq}));
  EXPECT_EQ(value_or_fail(store().outbox_event("rejected-1")),
            std::optional<std::string>{row.value});
  // Only indexed events can be looked up.
  EXPECT_EQ(value_or_fail(store().outbox_event("plain-1")), std::nullopt);
  EXPECT_EQ(value_or_fail(store().outbox_event("nope")), std::nullopt);
  EXPECT_EQ(got[0].row.topic, row.topic);
  EXPECT_EQ(got[0].row.key, row.key);
}

TEST_F(commit, empty_batch_commits_nothing) {
  storage_batch b;
  b.leases = {{"never-taken", 1}};
  EXPECT_TRUE(b.empty());
  ASSERT_OK(store().commit(b));
}

TEST_F(commit, the_server_side_of_a_session_has_network_timeouts_too) {
  // Without them the server notices a client that vanished only after the
  // kernel's two-hour keepalive, and its transaction keeps its locks.
  auto conn = superuser();
  if (pqxx::nontransaction{*conn}
        .exec1("SELECT inet_server_addr() IS NULL")[0]
        .as<bool>())
    GTEST_SKIP() << "connected over a Unix socket, where they do not apply";
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{
         {"tcp_keepalives_idle", "10"},
         {"tcp_keepalives_interval", "5"},
         {"tcp_keepalives_count", "3"},
         {"tcp_user_timeout", "30000"}}) {
    auto setting = store().setting(name);
    ASSERT_TRUE(setting) << describe(setting.error());
    EXPECT_EQ(*setting, value) << name;
  }
  // One the operator set (here in the connection's options) is kept.
  storage::pg_store own{conninfo() + " options='-c tcp_keepalives_idle=60'"};
  auto idle = own.setting("tcp_keepalives_idle");
  ASSERT_TRUE(idle) << describe(idle.error());
  EXPECT_EQ(*idle, "60");
  auto probes = own.setting("tcp_keepalives_count");
  ASSERT_TRUE(probes) << describe(probes.error());
  EXPECT_EQ(*probes, "3");
}

TEST_F(commit, unreachable_server_is_storage_unavailable_then_recovers) {
  storage::pg_store lost{"host=/nonexistent-seatledger port=1"};
  auto r = lost.commit(batch_for("s", 1, {"k", 1}, 1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::storage_unavailable))
    << describe(r.error());
  // A connection killed under the store: the call fails as unavailable, the
  // next one reconnects (with its role and staging tables).
  ASSERT_OK(store().ping());
  {
    auto admin = superuser();
    pqxx::nontransaction tx{*admin};
    tx.exec_params("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = $1 AND pid <> pg_backend_pid()",
                   db_->name());
  }
  auto first = store().acquire_leases("seatledger", {"subscriptions/3"}, "a");
  if (!first) {
    // The call that met the broken connection reports it.
    EXPECT_TRUE(is(first.error(), service_errc::storage_unavailable))
      << describe(first.error());
    first = store().acquire_leases("seatledger", {"subscriptions/3"}, "a");
  }
  ASSERT_TRUE(first) << describe(first.error());
  auto held = first->front();
  ASSERT_EQ(held.epoch, 1);
  ASSERT_OK(store().commit(batch_for("sub-1", 2, held, 1)));
  EXPECT_EQ(count("seat_ledger"), 2);
}

} // namespace
