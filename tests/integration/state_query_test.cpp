// State loaded on activation and the reads of the HTTP API.

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "pg_fixture.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace {

using storage::storage_batch;

constexpr std::int64_t day = 86'400'000'000;

domain::timestamp plus(domain::timestamp t, std::int64_t micros) {
  return domain::timestamp::from_micros(t.micros() + micros);
}

domain::timestamp wall_now() {
  return domain::timestamp::from_micros(
    std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch())
      .count());
}

/// Entries at the given instants (non-decreasing), one chain.
std::vector<domain::ledger_entry>
chain_at(const std::string& sub, const std::vector<domain::timestamp>& times) {
  std::vector<domain::ledger_entry> out;
  std::string prev = domain::genesis_hash;
  std::int64_t seats = 0;
  for (std::size_t i = 0; i < times.size(); ++i) {
    // Up and down, so counts are not just the sequence number.
    seats += (i % 3 == 2) ? -1 : 1;
    auto e = chain(sub, 1, times[i], 0, static_cast<std::int64_t>(i) + 1, prev,
                   seats - 1, i % 2 == 0 ? "org-1" : "org-2")
               .front();
    prev = e.hash;
    out.push_back(e);
  }
  return out;
}

domain::ledger_window
expected_window(const std::vector<domain::ledger_entry>& entries,
                domain::timestamp from) {
  domain::ledger_window w;
  for (const auto& e : entries) {
    if (from != domain::timestamp::min() && e.effective_at < from)
      w.carried_seats = e.seats_in_use;
    else
      w.points.push_back({e.seq, e.seats_in_use, e.effective_at});
  }
  return w;
}

void expect_same_window(const domain::ledger_window& got,
                        const domain::ledger_window& want) {
  EXPECT_EQ(got.carried_seats, want.carried_seats);
  ASSERT_EQ(got.points.size(), want.points.size());
  for (std::size_t i = 0; i < got.points.size(); ++i) {
    EXPECT_EQ(got.points[i].seq, want.points[i].seq);
    EXPECT_EQ(got.points[i].seats_in_use, want.points[i].seats_in_use);
    EXPECT_EQ(got.points[i].effective_at, want.points[i].effective_at);
  }
}

void expect_same_record(const domain::subscription_record& got,
                        const domain::subscription_record& want) {
  EXPECT_EQ(got.subscription_id, want.subscription_id);
  EXPECT_EQ(got.status, want.status);
  EXPECT_EQ(got.display_name, want.display_name);
  EXPECT_EQ(got.customer, want.customer);
  EXPECT_EQ(got.instance, want.instance);
  EXPECT_EQ(got.plan_id, want.plan_id);
  EXPECT_EQ(got.seats, want.seats);
  EXPECT_EQ(got.term, want.term);
  EXPECT_EQ(got.trial, want.trial);
  EXPECT_EQ(got.features, want.features);
  EXPECT_EQ(got.rate_limit_overrides, want.rate_limit_overrides);
  EXPECT_EQ(got.analytics_access, want.analytics_access);
  EXPECT_EQ(got.archive_reason, want.archive_reason);
  EXPECT_EQ(got.clock, want.clock);
  EXPECT_EQ(got.seats_in_use, want.seats_in_use);
  EXPECT_EQ(got.ledger_seq, want.ledger_seq);
  EXPECT_EQ(got.ledger_hash, want.ledger_hash);
  EXPECT_EQ(got.max_seats_used, want.max_seats_used);
  EXPECT_EQ(got.max_seats_used_changed_at, want.max_seats_used_changed_at);
  EXPECT_EQ(got.seats_owed, want.seats_owed);
  EXPECT_EQ(got.commands_applied, want.commands_applied);
  EXPECT_EQ(got.created_by.has_value(), want.created_by.has_value());
  if (got.created_by && want.created_by) {
    EXPECT_EQ(*got.created_by, *want.created_by);
  }
  EXPECT_EQ(got.terms, want.terms);
}

storage::license_row license_of(const std::string& sub, const std::string& id,
                                domain::timestamp issued,
                                const std::string& command) {
  storage::license_row l;
  auto& g = l.grant;
  g.license_id = id;
  g.subscription_id = sub;
  g.issued_at = issued;
  g.not_before = at("2026-01-15T00:00:00Z");
  g.expires_at = at("2027-01-15T00:00:00.5Z");
  g.seats = 25;
  g.plan_id = "ultimate-annual";
  g.tier = "Ultimate";
  g.features = {"sso", "geo"};
  g.instance_domain = sub + ".example.com";
  g.instance_type = domain::instance_type::secondary;
  g.trial = false;
  g.issued_by = {"billing", command};
  l.claims_json = R"({"exp":"2027-01-15T00:00:00.5Z","jti":")" + id
                  + R"(","seats":25})";
  l.license_key = "v4.public." + id;
  l.key_id = "k4.pid.test";
  return l;
}

class state : public pg_test {
protected:
  /// Commits `entries` (one chain) in batches of `per_batch`, so each batch's
  /// append check sees a chain continued from the stored one.
  void commit_ledger(const std::vector<domain::ledger_entry>& entries,
                     std::size_t per_batch) {
    for (std::size_t from = 0; from < entries.size(); from += per_batch) {
      storage_batch b;
      auto to = std::min(entries.size(), from + per_batch);
      b.ledger.assign(entries.begin() + static_cast<std::ptrdiff_t>(from),
                      entries.begin() + static_cast<std::ptrdiff_t>(to));
      ASSERT_OK(store().commit(b));
    }
  }

  // A subscription with everything a snapshot holds.
  void commit_full_subscription() {
    rec_ = domain::subscription_record{};
    rec_.subscription_id = "sub-q";
    rec_.status = domain::subscription_status::active;
    rec_.display_name = "Acme\tCorp \\ \"Q\"";
    rec_.customer.salesforce_account_id = "0015000000abcde";
    rec_.instance = {"acme.example.com", domain::instance_type::primary};
    rec_.plan_id = "ultimate-annual";
    rec_.seats = 10;
    rec_.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
    rec_.features = {"sso", "x,y", "{z}"};
    rec_.rate_limit_overrides = R"({"api":{"rps":100},"web":5})";
    rec_.analytics_access = true;
    rec_.clock = at("2026-06-01T12:00:00.000001Z");
    rec_.terms = {{at("2025-01-15T00:00:00Z"), at("2026-01-15T00:00:00Z"),
                   at("2026-01-15T00:00:00Z"), 12},
                  {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z"),
                   at("2027-01-15T00:00:00Z"), 3}};
    rec_.created_by = domain::event_key{"billing", "create-1"};
    rec_.commands_applied = 4;
    window_start_ = domain::ledger_window_start(rec_);
    // Entries well before the window, two just before it, two exactly at
    // its start and more after it.
    std::vector<domain::timestamp> times;
    for (int i = 0; i < 6; ++i)
      times.push_back(plus(window_start_, -(60 - i) * day));
    times.push_back(plus(window_start_, -1));
    times.push_back(plus(window_start_, -1));
    times.push_back(window_start_);
    times.push_back(window_start_);
    for (int i = 1; i <= 8; ++i)
      times.push_back(plus(window_start_, i * 7 * day + i));
    entries_ = chain_at("sub-q", times);
    rec_.seats_in_use = entries_.back().seats_in_use;
    rec_.ledger_seq = entries_.back().seq;
    rec_.ledger_hash = entries_.back().hash;
    rec_.max_seats_used = 7;
    rec_.max_seats_used_changed_at = entries_[12].effective_at;
    rec_.seats_owed = 0;
    storage_batch b;
    b.consumer_group = "seatledger";
    b.subscriptions.push_back({rec_, 5, at("2026-07-15T00:00:00Z")});
    for (const auto& t : rec_.terms)
      b.terms.push_back({"sub-q", t});
    b.ledger = entries_;
    b.holders = {{"sub-q", "alice", "org-1", true},
                 {"sub-q", "alice", "org-2", true},
                 {"sub-q", "bob", "org-2", true},
                 {"sub-q", "carol", "org-1", true}};
    b.subscription_orgs = {{"sub-q", "org-1", true, 5},
                           {"sub-q", "org-2", true, 3},
                           {"sub-q", "org-3", false, 9}};
    b.licenses
      = {license_of("sub-q", "lic-1", at("2026-01-15T00:00:01Z"), "create-1"),
         license_of("sub-q", "lic-2", at("2026-03-01T00:00:00Z"), "issue-2")};
    b.licenses[1].grant.tier = std::nullopt; // a plan without a tier
    b.revocations
      = {{"lic-1", "sub-q", at("2026-03-01T00:00:00.25Z"), "superseded"}};
    ASSERT_OK(store().commit(b));
  }

  domain::subscription_record rec_;
  domain::timestamp window_start_;
  std::vector<domain::ledger_entry> entries_;
};

TEST_F(state, load_subscriptions_returns_exactly_what_was_committed) {
  commit_full_subscription();
  // A second one that never applied anything (no clock: whole ledger) and
  // one that does not exist.
  auto early = chain("sub-new", 3, at("2020-01-01T00:00:00Z"), day);
  auto rec2 = record_for("sub-new", early);
  rec2.status = domain::subscription_status::none;
  rec2.clock = domain::timestamp::min();
  rec2.customer = {};
  rec2.rate_limit_overrides = std::nullopt;
  rec2.analytics_access = false;
  rec2.archive_reason = "gone";
  rec2.features = {};
  rec2.max_seats_used_changed_at = std::nullopt;
  storage_batch b;
  b.subscriptions.push_back({rec2, 1, std::nullopt});
  b.ledger = early;
  ASSERT_OK(store().commit(b));

  auto loaded = value_or_fail(
    store().load_subscriptions({"sub-q", "sub-new", "sub-none", "sub-q"}));
  ASSERT_EQ(loaded.size(), 2u);
  const auto& q = loaded.at("sub-q");
  expect_same_record(q.record, rec_);
  std::map<std::string, std::set<std::string>> holders{
    {"alice", {"org-1", "org-2"}}, {"bob", {"org-2"}}, {"carol", {"org-1"}}};
  EXPECT_EQ(q.holders, holders);
  EXPECT_EQ(q.orgs, (std::set<std::string>{"org-1", "org-2"}));
  EXPECT_EQ(q.org_delta_seqs, (std::map<std::string, std::int64_t>{
                                {"org-1", 5}, {"org-2", 3}, {"org-3", 9}}));
  auto want = expected_window(entries_, window_start_);
  EXPECT_EQ(want.points.size(), 10u);
  EXPECT_EQ(want.carried_seats, entries_[7].seats_in_use);
  expect_same_window(q.window, want);
  ASSERT_EQ(q.licenses.size(), 2u);
  EXPECT_EQ(q.licenses[0].license_id, "lic-1");
  EXPECT_EQ(q.licenses[0].expires_at, at("2027-01-15T00:00:00.5Z"));
  EXPECT_EQ(q.licenses[0].instance_domain, "sub-q.example.com");
  EXPECT_EQ(q.licenses[0].revoked_at,
            std::optional<domain::timestamp>{at("2026-03-01T00:00:00.25Z")});
  EXPECT_EQ(q.licenses[1].license_id, "lic-2");
  EXPECT_FALSE(q.licenses[1].revoked_at);

  const auto& n = loaded.at("sub-new");
  expect_same_record(n.record, rec2);
  expect_same_window(n.window,
                     expected_window(early, domain::timestamp::min()));
  EXPECT_TRUE(n.holders.empty());
  EXPECT_TRUE(n.licenses.empty());

  // The same record through the query port, with its linked orgs but not
  // the actor's working set: a state query of a busy subscription read its
  // whole 400-day ledger window, holders and licenses.
  auto one = value_or_fail(store().subscription("sub-q"));
  ASSERT_TRUE(one);
  expect_same_record(one->record, rec_);
  EXPECT_EQ(one->orgs, q.orgs);
  EXPECT_FALSE(q.orgs.empty());
  EXPECT_FALSE(q.window.points.empty());
  EXPECT_FALSE(q.holders.empty());
  EXPECT_TRUE(one->window.points.empty());
  EXPECT_TRUE(one->holders.empty());
  EXPECT_TRUE(one->licenses.empty());
  EXPECT_FALSE(value_or_fail(store().subscription("sub-none")));
  EXPECT_TRUE(value_or_fail(store().load_subscriptions({})).empty());

  // Written again, a row goes by the UPDATE statement, not the upsert.
  rec_.commands_applied = 5;
  rec_.display_name = "Acme again";
  storage_batch again;
  again.subscriptions.push_back({rec_, 5, at("2026-07-15T00:00:00Z")});
  ASSERT_OK(store().commit(again));
  auto updated = value_or_fail(store().load_subscriptions({"sub-q"}));
  ASSERT_EQ(updated.size(), 1u);
  expect_same_record(updated.at("sub-q").record, rec_);
}

TEST_F(state, ledger_queries) {
  commit_full_subscription();
  auto page = value_or_fail(store().ledger_page("sub-q", 0, 5));
  ASSERT_EQ(page.size(), 5u);
  EXPECT_EQ(page.front(), entries_[0]);
  EXPECT_EQ(page.back(), entries_[4]);
  page = value_or_fail(store().ledger_page("sub-q", 15, 100));
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page.front().seq, 16);
  EXPECT_TRUE(value_or_fail(store().ledger_page("sub-q", 18, 10)).empty());
  EXPECT_TRUE(value_or_fail(store().ledger_page("nope", 0, 10)).empty());

  // Seats at an instant: the last entry at or before it, 0 before the first.
  auto& s = store();
  EXPECT_EQ(
    value_or_fail(s.seats_at("sub-q", plus(entries_[0].effective_at, -1))), 0);
  EXPECT_EQ(value_or_fail(s.seats_at("sub-q", entries_[0].effective_at)),
            entries_[0].seats_in_use);
  // Two entries share the window start: the later one counts.
  EXPECT_EQ(value_or_fail(s.seats_at("sub-q", window_start_)),
            entries_[9].seats_in_use);
  EXPECT_EQ(value_or_fail(s.seats_at("sub-q", plus(window_start_, -1))),
            entries_[7].seats_in_use);
  EXPECT_EQ(value_or_fail(s.seats_at("sub-q", at("2099-01-01T00:00:00Z"))),
            entries_.back().seats_in_use);
  for (const auto& e : entries_)
    EXPECT_EQ(value_or_fail(s.seats_at("sub-q", plus(e.effective_at, 1))),
              domain::seats_at(
                expected_window(entries_, domain::timestamp::min()).points,
                plus(e.effective_at, 1)));

  // Windows from any instant, with the carried count.
  for (auto from :
       {domain::timestamp::min(), entries_[3].effective_at, window_start_,
        plus(window_start_, 1), at("2099-01-01T00:00:00Z")})
    expect_same_window(value_or_fail(s.ledger_window("sub-q", from)),
                       expected_window(entries_, from));

  EXPECT_TRUE(value_or_fail(s.pool_exists("sub-q")));
  EXPECT_FALSE(value_or_fail(s.pool_exists("sub-none")));
  // A pool with ledger entries but no state row yet exists too.
  storage_batch b;
  b.ledger = chain("pool-only", 1, at("2026-01-01T00:00:00Z"), 0);
  ASSERT_OK(s.commit(b));
  EXPECT_TRUE(value_or_fail(s.pool_exists("pool-only")));
}

// The usage report reads, for each month, only the entry before its start
// and the first entry of its highest count. Over a ledger that moves up and
// down (ties at the peak, runs of one instant, entries exactly at month
// starts, a month with no entry, terms starting before, inside and after
// it), the months from those few entries equal the months from the whole
// ledger, for terms cut short and reports asked at month boundaries.
TEST_F(state, usage_from_the_entries_the_peaks_need_matches_the_whole_ledger) {
  const auto anchor = at("2026-01-31T12:00:00Z");
  std::mt19937 rng{20261206};
  std::vector<domain::timestamp> times;
  auto t = at("2026-01-10T00:00:00Z");
  for (int i = 0; i < 700; ++i) {
    if (i == 350) // nothing for 40 days: a month without an entry
      t = plus(t, 40 * day);
    else if (rng() % 4 != 0) // else the same instant again
      t = plus(t, static_cast<std::int64_t>(rng() % (6 * 3'600)) * 1'000'000);
    times.push_back(t);
  }
  // Entries exactly at the starts of months anchored at `anchor`.
  for (int n = 2; n <= 8; ++n)
    times.push_back(domain::month_start(anchor, n));
  std::sort(times.begin(), times.end());
  std::vector<domain::ledger_entry> entries;
  std::string prev = domain::genesis_hash;
  std::int64_t seats = 5;
  for (std::size_t i = 0; i < times.size(); ++i) {
    // A walk of one seat at a time that returns to earlier highs.
    seats = std::max<std::int64_t>(0, seats + (rng() % 2 == 0 ? 1 : -1));
    auto e = chain("sub-usage", 1, times[i], 0,
                   static_cast<std::int64_t>(i) + 1, prev, seats - 1)
               .front();
    prev = e.hash;
    entries.push_back(e);
  }
  ASSERT_NO_FATAL_FAILURE(commit_ledger(entries, 250));
  auto whole = expected_window(entries, domain::timestamp::min());
  int compared_months = 0;
  int carried_peaks = 0;
  for (auto term_start :
       {at("2025-12-01T00:00:00Z"), anchor, entries[200].effective_at,
        at("2026-09-01T00:00:00Z")}) {
    for (int length : {3, 12}) {
      auto usage_end = domain::add_months(term_start, length);
      std::vector<domain::timestamp> nows{at("2099-01-01T00:00:00Z"),
                                          entries[500].effective_at};
      for (int n = 1; n <= 4; ++n)
        nows.push_back(domain::month_start(term_start, n));
      for (auto now : nows) {
        SCOPED_TRACE(domain::format_rfc3339(term_start) + " +"
                     + std::to_string(length) + " months, now "
                     + domain::format_rfc3339(now));
        auto want = domain::monthly_usage(whole, term_start, usage_end, now, 2);
        auto full
          = value_or_fail(store().ledger_window("sub-usage", term_start));
        EXPECT_EQ(domain::monthly_usage(full, term_start, usage_end, now, 2),
                  want);
        auto few = value_or_fail(store().usage_window(
          "sub-usage", domain::started_months(term_start, usage_end, now)));
        EXPECT_LE(few.points.size(), 2 * want.size());
        EXPECT_EQ(domain::monthly_usage(few, term_start, usage_end, now, 2),
                  want);
        compared_months += static_cast<int>(want.size());
        for (const auto& m : want)
          carried_peaks += m.peak_seq ? 0 : 1;
      }
    }
  }
  // The cases above are there: months compared, some peaks carried in.
  EXPECT_GT(compared_months, 100);
  EXPECT_GT(carried_peaks, 0);
  // No months, no entries read; an unknown subscription has none.
  EXPECT_TRUE(
    value_or_fail(store().usage_window("sub-usage", {})).points.empty());
  EXPECT_TRUE(value_or_fail(
                store().usage_window("sub-none", {{anchor, plus(anchor, day)}}))
                .points.empty());
}

// Instants are found through a partial index of every 64th entry (the time
// marks) and a primary-key range after the mark: a chain long enough for
// many marks, with runs of equal instants that straddle them (the longest
// covers three marks), answers like the whole chain read in order.
TEST_F(state, instants_in_a_long_ledger_match_a_scan_of_the_whole_chain) {
  auto t0 = at("2026-02-01T00:00:00Z");
  std::vector<domain::timestamp> times;
  for (int i = 0; i < 400; ++i) {
    int step = i < 60 ? i : i < 260 ? 60 : i - 199; // 60..259: one instant
    times.push_back(plus(t0, std::int64_t{step} * 1'000'000));
  }
  auto entries = chain_at("sub-long", times);
  ASSERT_NO_FATAL_FAILURE(commit_ledger(entries, 150));
  auto all = expected_window(entries, domain::timestamp::min()).points;
  std::set<domain::timestamp> probes{domain::timestamp::min(),
                                     at("2099-01-01T00:00:00Z")};
  for (const auto& t : times)
    for (auto delta : {-1, 0, 1})
      probes.insert(plus(t, delta));
  for (const auto& t : probes) {
    SCOPED_TRACE(domain::format_rfc3339(t));
    EXPECT_EQ(value_or_fail(store().seats_at("sub-long", t)),
              domain::seats_at(all, t));
    expect_same_window(value_or_fail(store().ledger_window("sub-long", t)),
                       expected_window(entries, t));
  }
}

// 20,000 entries of 'sub-big', three a second from 2026-01-01 00:00:00
// (entry g at g / 3 s, g % 500 seats), written around the chain check.
void fill_long_ledger(pqxx::transaction_base& tx) {
  tx.exec(R"sql(
    INSERT INTO seatledger.seat_ledger
    SELECT 'sub-big', g, g % 500,
           timestamptz '2026-01-01 00:00:00+00' + (g / 3) * interval '1 s',
           'src',
           'id-' || g, 't', now(), 'org', 'user',
           CASE WHEN g = 1 THEN repeat('0', 64) ELSE 'not checked' END,
           'h' || g
    FROM generate_series(1, 20000) AS g)sql");
  tx.exec("ANALYZE seatledger.seat_ledger");
}

/// Shared buffers (hit or read) and rows of the plan's top node.
std::pair<long, long> pages_and_rows(pqxx::transaction_base& tx,
                                     const std::string& explained) {
  auto plan = nlohmann::json::parse(
    tx.exec1("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + explained)[0]
      .as<std::string>());
  const auto& top = plan[0]["Plan"];
  return {top["Shared Hit Blocks"].get<long>()
            + top["Shared Read Blocks"].get<long>(),
          top["Actual Rows"].get<long>()};
}

// Finding an instant reads a handful of pages however long the ledger is:
// one probe of the time marks, then at most 64 entries of the primary key.
// (Written as one join, the lookup walked the whole key backwards: 415
// buffers on this ledger.)
TEST_F(state, finding_an_instant_reads_a_handful_of_pages) {
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  fill_long_ledger(tx);
  // Repeated, so the function's plans are the generic ones a long-lived
  // connection ends up with; the first round also plans the function's
  // statements (catalog reads), so it is not counted.
  for (int round = 0; round < 7; ++round) {
    for (const char* at : {"2025-06-01 00:00:00+00", "2026-01-01 00:00:01+00",
                           "2026-01-01 01:00:00+00", "2026-01-01 05:33:20+00",
                           "2030-01-01 00:00:00+00"}) {
      for (const char* inclusive : {"true", "false"}) {
        SCOPED_TRACE(std::string{at} + " inclusive " + inclusive);
        auto pages
          = pages_and_rows(tx, std::string{"SELECT seatledger.ledger_seq_at("
                                           "'sub-big', '"}
                                 + at + "', " + inclusive + ")")
              .first;
        if (round > 0) {
          EXPECT_LE(pages, 20);
        }
      }
    }
  }
  // And the answers are the entries in effect.
  EXPECT_EQ(
    value_or_fail(store().seats_at("sub-big", at("2026-01-01T00:00:01Z"))),
    5); // seq 5 (the last at 1 s) has 5 seats
  EXPECT_EQ(
    value_or_fail(store().seats_at("sub-big", at("2025-06-01T00:00:00Z"))), 0);
}

// Activating a subscription loads the ledger entries of its usage window
// only: the pages read follow the window, not the ledger's length (16 here
// for the last 201 of 20,000 entries). The window's statements find its
// start through ledger_seq_at; reading every entry of the subscription, as
// a join on effective time would, takes 369.
TEST_F(state, activation_reads_the_window_not_the_whole_ledger) {
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  fill_long_ledger(tx);
  const char* points_sql
    = storage::detail::prepared_statement_sql("load_window_points");
  const char* carried_sql
    = storage::detail::prepared_statement_sql("load_window_carried");
  ASSERT_NE(points_sql, nullptr);
  ASSERT_NE(carried_sql, nullptr);
  tx.exec(std::string{"PREPARE window_points AS "} + points_sql);
  tx.exec(std::string{"PREPARE window_carried AS "} + carried_sql);
  // Window from 6,600 s: entries 19,800 to 20,000 (6,600 s is entry
  // 19,800's time) after the one in force before it.
  const std::string args = "('{sub-big}', '{\"2026-01-01 01:50:00+00\"}')";
  // Repeated, so the plans are the generic ones a long-lived connection
  // ends up with; the first round also plans the function's statements.
  for (int round = 0; round < 7; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto [pages, rows] = pages_and_rows(tx, "EXECUTE window_points" + args);
    EXPECT_EQ(rows, 201);
    if (round > 0) {
      EXPECT_LE(pages, 40);
    }
    auto [carried_pages, carried_rows]
      = pages_and_rows(tx, "EXECUTE window_carried" + args);
    EXPECT_EQ(carried_rows, 1);
    if (round > 0) {
      EXPECT_LE(carried_pages, 40);
    }
  }
  // A window over the whole ledger reads it all: the bound above is one
  // the statement can miss.
  auto [all_pages, all_rows] = pages_and_rows(
    tx, "EXECUTE window_points('{sub-big}', '{\"2025-01-01 00:00:00+00\"}')");
  EXPECT_EQ(all_rows, 20000);
  EXPECT_GT(all_pages, 100) << all_pages;
}

TEST_F(state, holders_are_paged_by_user) {
  commit_full_subscription();
  auto page = value_or_fail(store().holders_page("sub-q", "", 2));
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].user_id, "alice");
  EXPECT_EQ(page[0].orgs, (std::vector<std::string>{"org-1", "org-2"}));
  EXPECT_EQ(page[1].user_id, "bob");
  page = value_or_fail(store().holders_page("sub-q", "bob", 2));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].user_id, "carol");
  EXPECT_TRUE(value_or_fail(store().holders_page("sub-q", "carol", 2)).empty());
}

TEST_F(state, licenses_and_revocations) {
  commit_full_subscription();
  auto all = value_or_fail(store().licenses_of("sub-q"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].license.grant.license_id, "lic-2"); // newest first
  EXPECT_FALSE(all[0].revoked_at);
  EXPECT_EQ(all[1].license.grant.license_id, "lic-1");
  EXPECT_EQ(all[1].revocation_reason, std::optional<std::string>{"superseded"});

  auto one = value_or_fail(store().license("lic-1"));
  ASSERT_TRUE(one);
  auto want = license_of("sub-q", "lic-1", at("2026-01-15T00:00:01Z"),
                         "create-1");
  const auto& g = one->license.grant;
  EXPECT_EQ(g.license_id, want.grant.license_id);
  EXPECT_EQ(g.subscription_id, want.grant.subscription_id);
  EXPECT_EQ(g.issued_at, want.grant.issued_at);
  EXPECT_EQ(g.not_before, want.grant.not_before);
  EXPECT_EQ(g.expires_at, want.grant.expires_at);
  EXPECT_EQ(g.seats, want.grant.seats);
  EXPECT_EQ(g.plan_id, want.grant.plan_id);
  EXPECT_EQ(g.tier, want.grant.tier);
  EXPECT_EQ(g.features, want.grant.features);
  EXPECT_EQ(g.instance_domain, want.grant.instance_domain);
  EXPECT_EQ(g.instance_type, want.grant.instance_type);
  EXPECT_EQ(g.trial, want.grant.trial);
  EXPECT_EQ(g.issued_by, want.grant.issued_by);
  EXPECT_EQ(one->license.claims_json, want.claims_json);
  EXPECT_EQ(one->license.license_key, want.license_key);
  EXPECT_EQ(one->license.key_id, want.key_id);
  EXPECT_EQ(one->revoked_at,
            std::optional<domain::timestamp>{at("2026-03-01T00:00:00.25Z")});
  EXPECT_FALSE(value_or_fail(store().license("lic-none")));

  auto by = value_or_fail(store().license_issued_by({"billing", "issue-2"}));
  ASSERT_TRUE(by);
  EXPECT_EQ(by->license.grant.license_id, "lic-2");
  EXPECT_EQ(by->license.grant.tier, std::nullopt);
  EXPECT_FALSE(value_or_fail(store().license_issued_by({"billing", "x"})));

  auto revoked = value_or_fail(store().revocations());
  ASSERT_EQ(revoked.size(), 1u);
  EXPECT_EQ(revoked[0].license_id, "lic-1");
  EXPECT_EQ(revoked[0].subscription_id, "sub-q");
  EXPECT_EQ(revoked[0].revoked_at, at("2026-03-01T00:00:00.25Z"));
  EXPECT_EQ(revoked[0].reason, "superseded");

  // One license per issuing command: the same command again is refused.
  storage_batch again;
  again.licenses
    = {license_of("sub-q", "lic-3", at("2026-04-01T00:00:00Z"), "issue-2")};
  EXPECT_FALSE(store().commit(again));
}

TEST_F(state, orgs) {
  storage_batch b;
  b.orgs = {{"org-1", std::string{"sub-1"}, 2, 4}};
  b.memberships = {{"org-1", "u1", true},
                   {"org-1", "u2", false},
                   {"org-1", "u3", true},
                   {"org-members-only", "u1", true}};
  ASSERT_OK(store().commit(b));
  auto o = value_or_fail(store().org("org-1"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->org_id, "org-1");
  EXPECT_EQ(o->subscription_id, std::optional<std::string>{"sub-1"});
  EXPECT_EQ(o->members, 3);
  EXPECT_EQ(o->billable_members, 2);
  auto m = value_or_fail(store().org("org-members-only"));
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->subscription_id);
  EXPECT_EQ(m->members, 1);
  EXPECT_FALSE(value_or_fail(store().org("org-never-seen")));
  auto snaps = value_or_fail(
    store().load_orgs({"org-1", "org-members-only", "org-never-seen"}));
  ASSERT_EQ(snaps.size(), 2u);
  EXPECT_EQ(snaps["org-1"].delta_seq, 4);
  EXPECT_EQ(snaps["org-1"].members.size(), 3u);
  EXPECT_EQ(snaps["org-members-only"].org_id, "org-members-only");
}

TEST_F(state, subscriptions_due_for_month_close) {
  storage_batch b;
  auto mk = [](const std::string& id, std::int32_t partition,
               std::optional<domain::timestamp> month_end) {
    return storage::subscription_row{record_for(id, {}), partition, month_end};
  };
  b.subscriptions = {mk("due-1", 1, at("2026-02-15T00:00:00Z")),
                     mk("due-2", 2, at("2026-02-14T00:00:00Z")),
                     mk("later", 1, at("2026-03-15T00:00:00Z")),
                     mk("other-partition", 7, at("2026-02-01T00:00:00Z")),
                     mk("closed", 1, std::nullopt)};
  ASSERT_OK(store().commit(b));
  auto hour = std::int64_t{3'600'000'000};
  auto due = value_or_fail(store().subscriptions_due(
    {1, 2}, at("2026-02-15T00:00:00Z"), plus(wall_now(), hour)));
  EXPECT_EQ(due, (std::vector<std::string>{"due-2", "due-1"}));
  // Touched within the idle period: not due yet.
  due = value_or_fail(store().subscriptions_due(
    {1, 2}, at("2026-02-15T00:00:00Z"), plus(wall_now(), -hour)));
  EXPECT_TRUE(due.empty());
  EXPECT_TRUE(value_or_fail(store().subscriptions_due(
                              {}, at("2030-01-01T00:00:00Z"), wall_now()))
                .empty());
}

domain::rate_plan_upserted plan(const std::string& id, const std::string& tier,
                                const std::string& features) {
  domain::rate_plan_upserted p;
  p.product = {"prod-1", "GitLab"};
  p.rate_plan
    = {id, "Plan " + id,
       R"({"CDotAccessible__c":true,"Features__c":)" + features + "}"};
  p.charges = {{"ch-storage", "Storage", "monthly",
                R"({"CDotPlanType__c":"storage","ChargeTier__c":"Bronze"})"},
               {"ch-base", "Base", "annual",
                R"({"CDotPlanType__c":"base_product","ChargeTier__c":")" + tier
                  + R"("})"}};
  return p;
}

TEST_F(state, a_plan_without_a_tier_has_none) {
  // Its base charge's tier is null, absent, or it has no base charge: a
  // license of it says "tier": null, not an empty tier.
  auto null_tier = plan("null-tier", "", "[]");
  null_tier.charges[1].custom_fields
    = R"({"CDotPlanType__c":"base_product","ChargeTier__c":null})";
  auto absent_tier = plan("absent-tier", "", "[]");
  absent_tier.charges[1].custom_fields
    = R"({"CDotPlanType__c":"base_product"})";
  auto no_base = plan("no-base", "Premium", "[]");
  no_base.charges.pop_back();
  storage_batch b;
  b.catalog_upserts
    = {{null_tier, {"cat", "1"}},
       {absent_tier, {"cat", "2"}},
       {no_base, {"cat", "3"}},
       {plan("not-applicable", "Not Applicable", "[]"), {"cat", "4"}}};
  ASSERT_OK(store().commit(b));
  auto ent = value_or_fail(store().load_plan_entitlements());
  ASSERT_EQ(ent.size(), 4u);
  EXPECT_EQ(ent["null-tier"].tier, std::nullopt);
  EXPECT_EQ(ent["absent-tier"].tier, std::nullopt);
  EXPECT_EQ(ent["no-base"].tier, std::nullopt);
  EXPECT_EQ(ent["not-applicable"].tier, "Not Applicable");
}

TEST_F(state, catalog_versions_entitlements_and_notification) {
  auto listener = superuser();
  struct receiver : pqxx::notification_receiver {
    using notification_receiver::notification_receiver;
    std::vector<std::string> payloads;
    void operator()(const std::string& payload, int) override {
      payloads.push_back(payload);
    }
  } rx{*listener, "seatledger_catalog"};

  storage_batch b;
  b.catalog_upserts
    = {{plan("ultimate", "Ultimate", R"(["sso","geo"])"), {"cat", "1"}},
       {plan("premium", "Premium", "null"), {"cat", "2"}}};
  ASSERT_OK(store().commit(b));
  EXPECT_EQ(value_or_fail(store().catalog_version()), 1);
  auto ent = value_or_fail(store().load_plan_entitlements());
  ASSERT_EQ(ent.size(), 2u);
  EXPECT_EQ(ent["ultimate"].tier, "Ultimate");
  EXPECT_EQ(ent["ultimate"].features, (std::vector<std::string>{"sso", "geo"}));
  EXPECT_EQ(ent["premium"].tier, "Premium");
  EXPECT_TRUE(ent["premium"].features.empty());

  // The same content again changes nothing; a real change keeps the old
  // version (with its charges) in the history.
  storage_batch same;
  same.catalog_upserts
    = {{plan("ultimate", "Ultimate", R"(["sso","geo"])"), {"cat", "3"}}};
  ASSERT_OK(store().commit(same));
  EXPECT_EQ(value_or_fail(store().catalog_version()), 1);
  storage_batch changed;
  changed.catalog_upserts
    = {{plan("ultimate", "Ultimate", R"(["sso","geo","dast"])"),
        {"cat", "4", "seatledger.catalog.rate_plan.upserted",
         at("2026-01-01T00:00:00Z")}}};
  // Removed after the upsert of the same batch (later event time).
  changed.catalog_removals
    = {{"premium",
        {"cat", "5", "seatledger.catalog.rate_plan.removed",
         at("2026-01-01T00:00:01Z")}}};
  ASSERT_OK(store().commit(changed));
  EXPECT_EQ(value_or_fail(store().catalog_version()), 2);
  ent = value_or_fail(store().load_plan_entitlements());
  ASSERT_EQ(ent.size(), 1u);
  EXPECT_EQ(ent["ultimate"].features.size(), 3u);

  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  auto history = tx.exec(
    "SELECT rate_plan_id, version, custom_fields->'Features__c', "
    "jsonb_array_length(charges), removed "
    "FROM seatledger.catalog_rate_plan_versions ORDER BY 1, 2");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0][0].as<std::string>(), "premium");
  EXPECT_EQ(history[0][1].as<int>(), 1);
  EXPECT_EQ(history[1][0].as<std::string>(), "ultimate");
  EXPECT_EQ(history[1][2].as<std::string>(), R"(["sso", "geo"])");
  EXPECT_EQ(history[1][3].as<int>(), 2);
  auto current = tx.exec1(
    "SELECT version, removed FROM seatledger.catalog_rate_plans "
    "WHERE rate_plan_id = 'premium'");
  EXPECT_EQ(current[0].as<int>(), 2);
  EXPECT_TRUE(current[1].as<bool>());
  // Classification is a query over custom fields (GIN-indexed).
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM seatledger.catalog_charges "
                     "WHERE custom_fields @> '{\"CDotPlanType__c\": "
                     "\"base_product\"}'")[0]
              .as<int>(),
            2);

  // Other replicas hear of each change at commit.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rx.payloads.size() < 2 && std::chrono::steady_clock::now() < deadline)
    listener->await_notification(0, 100'000);
  EXPECT_EQ(rx.payloads, (std::vector<std::string>{"1", "2"}));
}

} // namespace
