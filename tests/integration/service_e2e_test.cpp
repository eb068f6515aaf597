// The running service end to end: the real binary, real Kafka protocol
// (librdkafka's mock cluster in this process), real PostgreSQL. A scenario
// is published phase by phase; PostgreSQL's ledger and state and the events
// on seatledger.events.v1 (read with a real consumer) must equal what the
// domain rules give when the same records are replayed in this process.

#include <algorithm>
#include <filesystem>
#include <gtest/gtest.h>
#include <httplib.h>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "domain/commands.hpp"
#include "domain/org.hpp"
#include "domain/subscription.hpp"
#include "domain/time.hpp"
#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "pg_fixture.hpp"
#include "scenario.hpp"
#include "service_harness.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;

/// The service's /metrics text ("" when it does not answer).
std::string metrics_of(child_process& service) {
  auto url = service.wait_for_value("HTTP", seconds{5});
  if (!url)
    return {};
  httplib::Client http{"127.0.0.1",
                       std::stoi(url->substr(url->rfind(':') + 1))};
  auto metrics = http.Get("/metrics");
  return metrics && metrics->status == 200 ? metrics->body : std::string{};
}

const std::vector<std::string> service_topics{
  "seatledger.membership.v1", "seatledger.subscriptions.v1",
  "seatledger.catalog.v1",    "seatledger.internal.seat-deltas.v1",
  "seatledger.events.v1",     "seatledger.dlq.v1"};

/// Replays records through the domain rules, as the service applies them.
class replay {
public:
  void apply(const std::string& topic, const std::string& value) {
    messages::record_view view{value, nullptr};
    if (topic == "seatledger.catalog.v1") {
      auto e = decoder_.decode_catalog(view);
      if (!e || !seen_.insert(key_of(e.value().ref)).second)
        return;
      if (auto* up
          = std::get_if<domain::rate_plan_upserted>(&e.value().change)) {
        // The test catalog: tier from the base_product charge, features
        // from Features__c (always ["sso"] here).
        auto tier = up->charges.at(0).custom_fields;
        auto pos = tier.find("ChargeTier__c\":\"");
        tier = tier.substr(pos + 16);
        tier = tier.substr(0, tier.find('"'));
        catalog_.plans[up->rate_plan.id] = {tier, {"sso"}};
      }
    } else if (topic == "seatledger.membership.v1") {
      auto e = decoder_.decode_membership(view);
      if (!e || !seen_.insert(key_of(e.value().ref)).second)
        return;
      const auto& org_id = domain::org_id_of(e.value().change);
      auto& org = orgs_.try_emplace(org_id, org_id).first->second;
      for (const auto& delta : org.apply(e.value()).deltas)
        record(delta.subscription_id, sub(delta.subscription_id).apply(delta));
    } else {
      auto e = decoder_.decode_command(view);
      if (!e || !seen_.insert(key_of(e.value().ref)).second)
        return;
      auto id = domain::subscription_id_of(e.value().command);
      record(id, sub(id).apply(e.value(), catalog_));
    }
  }

  domain::subscription& sub(const std::string& id) {
    return subs_.try_emplace(id, id).first->second;
  }

  std::vector<domain::ledger_entry> ledger(const std::string& id) {
    return ledger_[id];
  }

  /// (event id, type) of every output event, per subscription, in order.
  std::vector<std::pair<std::string, std::string>>
  events(const std::string& id) {
    return events_[id];
  }

private:
  struct catalog : domain::plan_catalog {
    std::map<std::string, domain::plan_entitlements> plans;
    std::optional<domain::plan_entitlements>
    find_plan(const std::string& id) const override {
      auto it = plans.find(id);
      if (it == plans.end())
        return std::nullopt;
      return it->second;
    }
  };

  void record(const std::string& id, const domain::subscription_effects& fx) {
    auto& l = ledger_[id];
    l.insert(l.end(), fx.entries.begin(), fx.entries.end());
    for (const auto& e : fx.events)
      events_[id].emplace_back(e.id, domain::output_type(e.payload));
  }

  messages::decoder decoder_;
  catalog catalog_;
  std::set<domain::event_key> seen_;
  std::map<std::string, domain::org_state> orgs_;
  std::map<std::string, domain::subscription> subs_;
  std::map<std::string, std::vector<domain::ledger_entry>> ledger_;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>>
    events_;
};

std::string ledger_row(const domain::ledger_entry& e) {
  return e.subscription_id + "|" + std::to_string(e.seq) + "|"
         + std::to_string(e.seats_in_use) + "|"
         + domain::format_rfc3339(e.effective_at) + "|" + e.cause.id + "|"
         + e.org_id + "|" + e.user_id + "|" + e.hash;
}

class service_e2e : public ::testing::Test {
protected:
  void SetUp() override {
    db_ = std::make_unique<scratch_database>();
    auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
    ASSERT_TRUE(cluster) << describe(cluster.error());
    cluster_ = std::move(*cluster);
    kafka_ = std::make_unique<kafka_io>(cluster_->bootstrap_servers());
    key_dir_ = "/tmp/" + unique_name("seatledger_keys");
    signing_key_ = test_signing_key(key_dir_);
    options_.database_url = db_->conninfo();
    options_.bootstrap = cluster_->bootstrap_servers();
    options_.signing_key_file = signing_key_;
    // Every batch commits on both commit connections, one transaction each
    // (by default only batches of 1,000 records or more do), so a part can
    // fail while the other commits.
    options_.extra_args = {"--commit-split-records", "1"};
    service_ = start_service(options_);
  }

  void TearDown() override {
    if (service_) {
      service_->signal(SIGTERM);
      auto status = service_->wait(seconds{60});
      EXPECT_EQ(status, 0) << service_->stderr_tail();
    }
    service_.reset();
    kafka_.reset();
    cluster_.reset();
    db_.reset();
    std::filesystem::remove_all(key_dir_);
  }

  /// Publishes each phase and waits until the service applied it.
  void run(const scenario& s, std::int64_t applied_before = 0) {
    database_probe probe{db_->conninfo()};
    auto applied = applied_before;
    for (const auto& phase : s.phases) {
      kafka_->publish(phase.topic, phase.records);
      applied += phase.upstream;
      ASSERT_TRUE(
        wait_until([&] { return probe.settled(applied); }, seconds{120}))
        << "phase on " << phase.topic
        << " not applied; applied events: " << probe.applied_events() << " of "
        << applied << "\n"
        << service_->stderr_tail();
    }
  }

  /// PostgreSQL's ledger, state and licenses, the published events, the
  /// dead letters and the hash chains are what the rules give for `s`.
  void expect_as_the_rules_say(const scenario& s);

  /// Runs a scenario of `membership_events_per_phase` membership events a
  /// phase and no poison records.
  scenario run_without_poison(int membership_events_per_phase) {
    scenario_options options;
    options.membership_events_per_phase = membership_events_per_phase;
    options.poison_per_phase = 0;
    auto s = make_scenario(options);
    run(s);
    return s;
  }

  /// Stops the service after a scenario, publishes `backlog` member.added
  /// records for linked orgs and restarts it with batches of at most
  /// `batch_max_records`: the seat deltas those records cause must move
  /// seats before most of the backlog is committed.
  void expect_deltas_read_during_a_membership_backlog(int backlog,
                                                      int batch_max_records) {
    ASSERT_NO_FATAL_FAILURE(run_without_poison(50));
    database_probe db{db_->conninfo()};
    auto linked = db.rows("SELECT org_id FROM seatledger.orgs "
                          "WHERE subscription_id IS NOT NULL ORDER BY 1");
    ASSERT_FALSE(linked.empty());
    service_->signal(SIGTERM);
    ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
    std::vector<outgoing> records;
    records.reserve(static_cast<std::size_t>(backlog));
    for (int i = 0; i < backlog; ++i) {
      const auto& org = linked[static_cast<std::size_t>(i) % linked.size()];
      domain::membership_event e{
        {"backlog", "added-" + std::to_string(i), "seatledger.member.added",
         *domain::parse_rfc3339("2026-06-01T00:00:00Z")},
        domain::member_added{org, "backlog-user-" + std::to_string(i), true,
                             std::nullopt}};
      records.push_back({org, messages::encode_membership_event(e)});
    }
    kafka_->publish(membership_topic, records);
    auto restarted = options_;
    restarted.extra_args.insert(restarted.extra_args.end(),
                                {"--batch-max-records",
                                 std::to_string(batch_max_records)});
    service_ = start_service(restarted);
    ASSERT_TRUE(wait_until(
      [&] {
        return db.scalar("SELECT count(*) FROM seatledger.seat_ledger "
                         "WHERE cause_source = 'backlog'")
               == backlog;
      },
      seconds{180}))
      << service_->stderr_tail();
    // How much of the backlog was committed before the first seat it
    // moved: all of it before, about a third with batches of 50 now (the
    // relay's first rounds and the delta consumer's first fetch take that
    // long).
    auto committed_first = db.scalar(
      "SELECT count(*) FROM seatledger.applied_events WHERE source = "
      "'backlog' AND xmin::text::bigint < (SELECT min(xmin::text::bigint) "
      "FROM seatledger.seat_ledger WHERE cause_source = 'backlog')");
    EXPECT_LT(committed_first, backlog * 3 / 4)
      << "the seat deltas waited for the membership backlog\n"
      << service_->stderr_tail(1 << 16);
  }

  /// Runs the PL/pgSQL statements `body` in every commit that records
  /// upstream events (a statement trigger on applied_events).
  /// The membership records of a scenario without poison records.
  static std::vector<outgoing> membership_records() {
    scenario_options options;
    options.poison_per_phase = 0;
    for (auto& phase : make_scenario(options).phases)
      if (phase.topic == membership_topic)
        return std::move(phase.records);
    return {};
  }

  static constexpr const char* membership_topic = "seatledger.membership.v1";

  void on_each_commit_of_upstream_events(const std::string& body) {
    pqxx::connection admin{db_->conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE FUNCTION public.on_commit() RETURNS trigger "
            "LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN\n"
            + body + "\nRETURN NULL; END $$");
    tx.exec("CREATE TRIGGER on_commit BEFORE INSERT ON "
            "seatledger.applied_events FOR EACH STATEMENT "
            "EXECUTE FUNCTION public.on_commit()");
  }

  std::unique_ptr<scratch_database> db_;
  std::unique_ptr<kafka::mock_cluster> cluster_;
  std::unique_ptr<kafka_io> kafka_;
  std::string key_dir_;
  std::string signing_key_;
  service_options options_;
  std::unique_ptr<child_process> service_;
};

void service_e2e::expect_as_the_rules_say(const scenario& s) {
  replay expected;
  for (const auto& phase : s.phases)
    for (const auto& r : phase.records)
      expected.apply(phase.topic, r.value);
  database_probe db{db_->conninfo()};
  // The ledger, entry by entry (hashes included).
  std::size_t entries = 0;
  for (const auto& id : s.subscription_ids) {
    std::vector<std::string> want;
    for (const auto& e : expected.ledger(id))
      want.push_back(ledger_row(e));
    entries += want.size();
    auto got = db.rows(
      "SELECT subscription_id, seq, seats_in_use, "
      "to_char(effective_at AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), cause_id, org_id, user_id, hash "
      "FROM seatledger.seat_ledger WHERE subscription_id = '"
      + id + "' ORDER BY seq");
    EXPECT_EQ(got, want) << id;
    // The state.
    const auto& r = expected.sub(id).record();
    auto state = db.rows(
      "SELECT status, seats, seats_in_use, max_seats_used, seats_owed, "
      "ledger_seq, ledger_hash FROM seatledger.subscriptions "
      "WHERE subscription_id = '"
      + id + "'");
    ASSERT_EQ(state.size(), 1u) << id;
    EXPECT_EQ(state[0], std::string{to_string(r.status)} + "|"
                          + std::to_string(r.seats) + "|"
                          + std::to_string(r.seats_in_use) + "|"
                          + std::to_string(r.max_seats_used) + "|"
                          + std::to_string(r.seats_owed) + "|"
                          + std::to_string(r.ledger_seq) + "|" + r.ledger_hash)
      << id;
  }
  EXPECT_GT(entries, 100u) << "the scenario should move many seats";
  // The events on seatledger.events.v1, per subscription, in order.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> got;
  std::set<std::string> ids;
  for (const auto& r : kafka_->read_all("seatledger.events.v1")) {
    auto event = nlohmann::json::parse(r.value);
    auto id = event.at("id").get<std::string>();
    if (!ids.insert(id).second)
      continue; // at-least-once: a copy
    got[r.key].emplace_back(id, event.at("type").get<std::string>());
    EXPECT_EQ(event.at("specversion"), "1.0");
    EXPECT_EQ(event.at("source"), "seatledger");
    EXPECT_EQ(event.at("data").at("subscription_id"), r.key);
  }
  std::size_t total = 0;
  for (const auto& id : s.subscription_ids) {
    EXPECT_EQ(got[id], expected.events(id)) << id;
    total += got[id].size();
  }
  // The rejected command for an unknown subscription is published too.
  EXPECT_EQ(got["sub-missing"], expected.events("sub-missing"));
  EXPECT_GT(total, entries);
  // Licenses were signed and stored for every license.issued event.
  std::int64_t issued = 0;
  for (const auto& id : s.subscription_ids)
    for (const auto& [eid, type] : expected.events(id))
      issued += type == "seatledger.license.issued";
  EXPECT_EQ(db.scalar("SELECT count(*) FROM seatledger.licenses "
                      "WHERE license_key LIKE 'v4.public.%'"),
            issued);
  // Poison went to the dead-letter topic, byte for byte, with its reasons.
  auto dlq = kafka_->read_all("seatledger.dlq.v1");
  EXPECT_EQ(static_cast<std::int64_t>(dlq.size()), s.poison);
  for (const auto& r : dlq) {
    EXPECT_EQ(r.value, "{\"specversion\":\"1.0\",\"broken");
    auto h = header_map(r);
    EXPECT_EQ(h["seatledger.error.code"], "malformed_json");
    EXPECT_FALSE(h["seatledger.error.message"].empty());
    EXPECT_EQ(h["seatledger.source.topic"], "seatledger.membership.v1");
    EXPECT_FALSE(h["seatledger.source.partition"].empty());
    EXPECT_FALSE(h["seatledger.source.offset"].empty());
  }
  // The hash chains verify with the service's own command.
  child_process verify{{seatledger_binary(), "ledger", "verify",
                        "--database-url", db_->conninfo()}};
  EXPECT_EQ(verify.wait(seconds{60}), 0) << verify.stderr_tail();
}

TEST_F(service_e2e, a_scenario_is_committed_and_published_as_the_rules_say) {
  auto s = make_scenario({});
  run(s);
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e, copies_side_by_side_count_once) {
  // A producer's retry can put an event's copy right behind it, in the same
  // batch. The service must tell them apart before applying (by the
  // applied-event key): PostgreSQL's unique key would refuse that batch
  // every time it is applied again, and the partition would never move on.
  scenario_options options;
  options.poison_per_phase = 0;
  auto s = make_scenario(options);
  for (auto& phase : s.phases) {
    std::vector<outgoing> doubled;
    for (const auto& r : phase.records) {
      doubled.push_back(r);
      doubled.push_back(r);
    }
    phase.records = std::move(doubled);
  }
  run(s);
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e, a_copy_behind_a_committing_batch_counts_once) {
  // The service applies the next batch while one commits. An event's copy
  // that arrives then is not among the applied events PostgreSQL shows
  // yet, so the service must find it among the keys of the batch still
  // committing. Otherwise the next batch is applied with it, refused on the
  // unique key and applied again (and the log says so).
  on_each_commit_of_upstream_events("PERFORM pg_sleep(2);");
  auto records = membership_records();
  ASSERT_FALSE(records.empty());
  const std::vector<outgoing> event{records.front()};
  database_probe db{db_->conninfo()};
  kafka_->publish(membership_topic, event);
  ASSERT_TRUE(wait_until(
    [&] {
      return db.scalar("SELECT count(*) FROM pg_stat_activity "
                       "WHERE wait_event = 'PgSleep'")
             > 0;
    },
    seconds{60}))
    << "the event's commit never started\n"
    << service_->stderr_tail();
  kafka_->publish(membership_topic, event);
  // Both records are behind the stored position, the event applied once.
  ASSERT_TRUE(wait_until(
    [&] {
      return db.scalar("SELECT coalesce(sum(next_offset), 0) FROM "
                       "seatledger.consumer_positions WHERE topic = "
                       "'seatledger.membership.v1'")
             == 2;
    },
    seconds{60}))
    << service_->stderr_tail();
  EXPECT_EQ(db.applied_events(), 1);
  auto log = service_->stderr_tail(1 << 22);
  EXPECT_EQ(log.find("was applied before"), std::string::npos)
    << "the copy was applied and refused at commit:\n"
    << log;
}

TEST_F(service_e2e, consumer_lag_is_reported_while_no_batch_commits) {
  // The lag gauge was set only when a batch committed: while PostgreSQL
  // refused every commit, records waited and every series read 0 (or did
  // not exist), just when an operator's alert needed it.
  on_each_commit_of_upstream_events("RAISE EXCEPTION 'refused by the test';");
  auto records = membership_records();
  ASSERT_GE(records.size(), 20u);
  const std::vector<outgoing> waiting(records.begin(), records.begin() + 20);
  kafka_->publish(membership_topic, waiting);
  auto membership_lag = [&] {
    std::istringstream lines{metrics_of(*service_)};
    std::int64_t sum = 0;
    static const std::regex lag_line{
      R"re(seatledger_consumer_lag_records\{partition="\d+",topic="seatledger\.membership\.v1"\} (\d+))re"};
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_match(line, m, lag_line))
        sum += std::stoll(m[1]);
    }
    return sum;
  };
  ASSERT_TRUE(wait_until([&] { return membership_lag() == 20; }, seconds{30}))
    << "lag " << membership_lag() << " with 20 records waiting\n"
    << metrics_of(*service_);
  {
    pqxx::connection admin{db_->conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP TRIGGER on_commit ON seatledger.applied_events");
  }
  EXPECT_TRUE(wait_until([&] { return membership_lag() == 0; }, seconds{60}))
    << "lag " << membership_lag() << " after the records committed\n"
    << service_->stderr_tail();
}

TEST_F(service_e2e, an_org_row_is_written_again_only_when_it_changes) {
  ASSERT_NO_FATAL_FAILURE(run_without_poison(100));
  database_probe db{db_->conninfo()};
  auto member = db.rows(
    "SELECT m.org_id, m.user_id FROM seatledger.memberships m JOIN "
    "seatledger.orgs o USING (org_id) WHERE m.billable AND "
    "o.subscription_id IS NOT NULL ORDER BY 1, 2 LIMIT 1");
  ASSERT_EQ(member.size(), 1u) << "no billable member of a linked org";
  auto org = member[0].substr(0, member[0].find('|'));
  auto user = member[0].substr(member[0].find('|') + 1);
  auto org_row = [&] {
    return db.rows("SELECT xmin, delta_seq FROM seatledger.orgs WHERE "
                   "org_id = '"
                   + org + "'");
  };
  auto applied = db.applied_events();
  auto publish = [&](const std::string& id, const std::string& who) {
    domain::membership_event e{{"test", id, "seatledger.member.added",
                                *domain::parse_rfc3339("2026-06-01T00:00:00Z")},
                               domain::member_added{org, who, true,
                                                    std::nullopt}};
    kafka_->publish("seatledger.membership.v1",
                    {{org, messages::encode_membership_event(e)}});
    ++applied;
    return wait_until([&] { return db.settled(applied); }, seconds{60});
  };
  // A member added again changes nothing: the row stays the version it was.
  auto before = org_row();
  ASSERT_TRUE(publish("again-1", user)) << service_->stderr_tail();
  EXPECT_EQ(org_row(), before);
  // A new billable member sends a delta: the row moves on.
  ASSERT_TRUE(publish("new-1", "user-new")) << service_->stderr_tail();
  auto after = org_row();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after, before);
  auto seq = [](const std::string& row) {
    return std::stoll(row.substr(row.find('|') + 1));
  };
  EXPECT_EQ(seq(after[0]), seq(before.at(0)) + 1);
}

TEST_F(service_e2e, commits_refused_mid_stream_lose_and_double_nothing) {
  // PostgreSQL refuses every third batch that records upstream events. The
  // service applies the next batch while one commits, so a refusal must
  // throw away the batch applied on top of the refused one as well, and
  // both must be read again from the stored positions.
  {
    pqxx::connection admin{db_->conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE SEQUENCE public.commit_attempts");
  }
  on_each_commit_of_upstream_events(R"sql(
  IF nextval('public.commit_attempts') % 3 = 0 THEN
    RAISE EXCEPTION 'refused by the test';
  END IF;
)sql");
  // Small batches: the records of one phase make many, so one is applied
  // while the one before commits.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  auto options = options_;
  options.extra_args.insert(options.extra_args.end(),
                            {"--batch-max-records", "40"});
  service_ = start_service(options);
  auto s = make_scenario({});
  run(s);
  database_probe db{db_->conninfo()};
  EXPECT_GE(db.scalar("SELECT last_value FROM public.commit_attempts"), 30)
    << "too few commits to have refused some";
  auto log = service_->stderr_tail(1 << 22);
  EXPECT_NE(log.find("\"next_batch_discarded\":true"), std::string::npos)
    << "no refused commit had a batch applied on top of it";
  // A batch's parts commit on two connections: the one refused is read
  // again, the one committed is not applied twice.
  EXPECT_NE(log.find("\"parts_committed\":1"), std::string::npos)
    << "no batch was refused on one connection and committed on the other";
  expect_as_the_rules_say(s);
  // Dead letters are counted when their batch commits: a refused batch
  // read again counted its dead letters twice.
  auto metrics = metrics_of(*service_);
  EXPECT_NE(metrics.find("seatledger_dead_letters_total{code=\"malformed_"
                         "json\"} "
                         + std::to_string(s.poison) + "\n"),
            std::string::npos)
    << s.poison << " poison records\n"
    << metrics;
}

// A batch took the main topics' records first and gave the seat deltas
// only the room left: while membership had a backlog of a batch or more,
// no delta was read, so seat counts stood still until the backlog was gone.
TEST_F(service_e2e, seat_deltas_are_read_while_membership_has_a_backlog) {
  expect_deltas_read_during_a_membership_backlog(12'000, 50);
}

// A room of one gave its place to the main topics every time
// (3,000 of 3,000 committed before the first seat moved; about 170 now).
TEST_F(service_e2e, seat_deltas_are_read_in_batches_of_one_record) {
  expect_deltas_read_during_a_membership_backlog(3'000, 1);
}

// Licenses and overages were counted when an actor answered, and skipped
// duplicates when a batch was built: a batch refused at commit and applied
// again counted them twice.
TEST_F(service_e2e, counters_count_what_committed_once) {
  {
    pqxx::connection admin{db_->conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE SEQUENCE public.license_commits");
    tx.exec("CREATE FUNCTION public.refuse_first_license() RETURNS trigger "
            "LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN\n"
            "IF nextval('public.license_commits') = 1 THEN\n"
            "  RAISE EXCEPTION 'refused by the test';\n"
            "END IF;\nRETURN NULL; END $$");
    tx.exec("CREATE TRIGGER refuse_first_license AFTER INSERT ON "
            "seatledger.licenses FOR EACH STATEMENT EXECUTE FUNCTION "
            "public.refuse_first_license()");
  }
  auto s = make_scenario({});
  run(s);
  database_probe db{db_->conninfo()};
  ASSERT_GE(db.scalar("SELECT last_value FROM public.license_commits"), 2)
    << "no batch with a license was refused";
  auto licenses = db.scalar("SELECT count(*) FROM seatledger.licenses");
  ASSERT_GT(licenses, 0);
  auto metrics = metrics_of(*service_);
  EXPECT_NE(metrics.find("seatledger_licenses_issued_total "
                         + std::to_string(licenses) + "\n"),
            std::string::npos)
    << licenses << " licenses stored\n"
    << metrics;
  auto overages_published = [&] {
    std::set<std::string> ids;
    for (const auto& r : kafka_->read_all("seatledger.events.v1")) {
      auto event = nlohmann::json::parse(r.value);
      if (event.at("type") == "seatledger.overage.detected")
        ids.insert(event.at("id").get<std::string>());
    }
    return ids.size();
  };
  std::size_t overages = 0;
  EXPECT_TRUE(wait_until(
    [&] {
      overages = overages_published();
      return metrics_of(*service_).find("seatledger_overages_detected_total "
                                        + std::to_string(overages) + "\n")
             != std::string::npos;
    },
    seconds{30}))
    << overages << " overage.detected published\n"
    << metrics_of(*service_);
}

TEST_F(service_e2e, a_connection_that_keeps_failing_backs_off_further) {
  // For 5 s PostgreSQL refuses every part of a batch that moves an
  // odd partition (the second commit connection), while the parts of the
  // even partitions commit. Each refusal must wait longer than the one
  // before: the parts that did commit do not end the run of failures.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  {
    pqxx::connection admin{db_->conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE TABLE public.refuse_odd_until (until timestamptz)");
    tx.exec("INSERT INTO public.refuse_odd_until VALUES ('-infinity')");
    tx.exec("CREATE FUNCTION public.refuse_odd() RETURNS trigger "
            "LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN\n"
            "IF NEW.partition % 2 = 1 AND now() < (SELECT until FROM "
            "public.refuse_odd_until) THEN\n"
            "  RAISE EXCEPTION 'odd partition refused by the test';\n"
            "END IF;\n"
            "RETURN NEW; END $$");
    tx.exec("CREATE TRIGGER refuse_odd BEFORE INSERT ON "
            "seatledger.consumer_positions FOR EACH ROW "
            "EXECUTE FUNCTION public.refuse_odd()");
  }
  service_ = start_service(options_);
  // The refusals start with the first membership phase and last 5 s (at
  // 200, 400, 800 and 1,600 ms apart, five of them). Its records trickle in
  // over 5 s or more, so the even partitions have new records for every
  // retry: their parts commit meanwhile.
  scenario_options more;
  more.membership_events_per_phase = 10000;
  auto s = make_scenario(more);
  database_probe probe{db_->conninfo()};
  std::int64_t applied = 0;
  bool refused = false;
  for (const auto& phase : s.phases) {
    applied += phase.upstream;
    if (refused || phase.topic != "seatledger.membership.v1") {
      kafka_->publish(phase.topic, phase.records);
    } else {
      refused = true;
      pqxx::connection admin{db_->conninfo()};
      pqxx::nontransaction tx{admin};
      tx.exec("UPDATE public.refuse_odd_until "
              "SET until = now() + interval '5 seconds'");
      constexpr std::size_t slice = 100;
      for (std::size_t at = 0; at < phase.records.size(); at += slice) {
        auto end = std::min(phase.records.size(), at + slice);
        kafka_->publish(phase.topic, {phase.records.begin() + at,
                                      phase.records.begin() + end});
        std::this_thread::sleep_for(milliseconds{50});
      }
    }
    ASSERT_TRUE(
      wait_until([&] { return probe.settled(applied); }, seconds{120}))
      << "phase on " << phase.topic << " not applied\n"
      << service_->stderr_tail();
  }
  auto log = service_->stderr_tail(1 << 22);
  // Each refusal beside a committed part logs its delay; the first is
  // 200 ms, so a longer one means the count was not reset by the commit.
  std::vector<long> delays;
  for (std::size_t at = 0;
       (at = log.find("\"parts_committed\":1,", at)) != std::string::npos;
       ++at) {
    auto key = log.find("\"retry_in_ms\":", at);
    ASSERT_NE(key, std::string::npos) << "a refusal without its delay";
    delays.push_back(std::stol(log.substr(key + 14)));
  }
  ASSERT_GE(delays.size(), 3u) << "too few parts refused beside a commit: "
                               << ::testing::PrintToString(delays) << "\n"
                               << log;
  EXPECT_GE(*std::max_element(delays.begin(), delays.end()), 800)
    << "the delay did not grow over three refusals beside commits: "
    << ::testing::PrintToString(delays);
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e, a_replica_joining_and_leaving_mid_stream_changes_nothing) {
  // Scaling out and in while records flow: a second replica joins the
  // consumer group during the first membership phase and is stopped during
  // the second. Each handover finishes and commits what is in flight (the
  // first replica applies a batch while the one before commits) before the
  // partitions move, so the end state is the rules'.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  // Every commit of upstream events takes 50 ms longer, so records pile up
  // while they trickle in, and a commit is in flight whenever the consumer
  // polls, which is when the revocation callback runs.
  on_each_commit_of_upstream_events("  PERFORM pg_sleep(0.05);");
  auto first = options_;
  // A group of their own: the mock cluster keeps the session timeout a
  // group started with.
  first.consumer_group = "seatledger-scaling";
  first.replica_id = "scaling-1";
  // Small batches; a short session so the mock cluster's rebalance rounds
  // (session timeout minus one second each) end while records still flow.
  // The time from a member's last heartbeat through such a round must stay
  // under the session. With a heartbeat every 500 ms, under the sanitizer
  // and a second test beside it, the first replica's assignment was lost
  // once (all its partitions revoked as "lost" as the second one joined);
  // a heartbeat every 100 ms leaves that wait 0.4 s more.
  first.extra_args.insert(first.extra_args.end(),
                          {"--batch-max-records", "40", "--kafka-property",
                           "session.timeout.ms=3000", "--kafka-property",
                           "heartbeat.interval.ms=100"});
  service_ = start_service(first);
  auto second = first;
  second.replica_id = "scaling-2";
  scenario_options options;
  options.membership_events_per_phase = 10000;
  auto s = make_scenario(options);
  database_probe probe{db_->conninfo()};
  std::unique_ptr<child_process> joined;
  std::int64_t applied = 0;
  int membership_phases = 0;
  bool joined_mid_stream = false;
  bool left_mid_stream = false;
  // While the second replica holds partitions, the first reports consumer
  // lag only for those it kept: a series left from before it gave one up
  // was summed with the new owner's into the group's lag.
  auto lag_reported_for_own_partitions_only = [&] {
    auto given_up = probe.rows(
      "SELECT lease_key FROM seatledger.partition_leases WHERE consumer_group "
      "= '"
      + second.consumer_group + "' AND owner = '" + second.replica_id + "'");
    ASSERT_FALSE(given_up.empty());
    auto metrics = metrics_of(*service_);
    std::istringstream lines{metrics};
    int reported = 0;
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      static const std::regex lag_line{
        R"re(seatledger_consumer_lag_records\{partition="(\d+)",topic="([^"]+)"\} .*)re"};
      if (!std::regex_match(line, m, lag_line))
        continue;
      ++reported;
      std::string stage = m[2] == "seatledger.membership.v1" ? "membership/"
                          : m[2] == "seatledger.catalog.v1"  ? "catalog/"
                                                             : "subscriptions/";
      auto lease = stage + m[1].str();
      EXPECT_EQ(std::count(given_up.begin(), given_up.end(), lease), 0)
        << line << " is reported by the replica that gave " << lease << " up";
    }
    EXPECT_GT(reported, 0) << metrics;
  };
  for (const auto& phase : s.phases) {
    applied += phase.upstream;
    if (phase.topic != "seatledger.membership.v1") {
      kafka_->publish(phase.topic, phase.records);
    } else if (++membership_phases == 1) {
      // Records trickle in, a few hundred ahead of what is applied, until
      // the second replica holds its leases: the first replica stays busy
      // however long the start and the rebalance rounds take.
      joined = launch_service(second);
      auto holds_leases = [&] {
        return probe.leases_of(second.consumer_group, second.replica_id) > 0;
      };
      auto applied_in_phase = [&] {
        return probe.applied_events() - (applied - phase.upstream);
      };
      constexpr std::size_t slice = 100;
      constexpr std::int64_t ahead = 400;
      std::size_t published = 0;
      while (published < phase.records.size() && !holds_leases()) {
        if (static_cast<std::int64_t>(published)
            >= applied_in_phase() + ahead) {
          std::this_thread::sleep_for(milliseconds{20});
          continue;
        }
        auto n = std::min(slice, phase.records.size() - published);
        kafka_->publish(phase.topic, {phase.records.begin() + published,
                                      phase.records.begin() + published + n});
        published += n;
      }
      joined_mid_stream = published < phase.records.size();
      kafka_->publish(phase.topic,
                      {phase.records.begin() + published, phase.records.end()});
      ASSERT_TRUE(wait_until(holds_leases, seconds{60}))
        << joined->stderr_tail();
    } else {
      kafka_->publish(phase.topic, phase.records);
      ASSERT_TRUE(wait_until(
        [&] { return probe.applied_events() > applied - phase.upstream / 2; },
        seconds{120}));
      left_mid_stream = !probe.settled(applied);
      joined->signal(SIGTERM);
      EXPECT_EQ(joined->wait(seconds{60}), 0) << joined->stderr_tail();
      EXPECT_TRUE(wait_until(
        [&] {
          return probe.leases_of(second.consumer_group, second.replica_id) == 0;
        },
        seconds{60}))
        << "the first replica did not take the partitions back";
    }
    ASSERT_TRUE(
      wait_until([&] { return probe.settled(applied); }, seconds{180}))
      << "not applied; applied events: " << probe.applied_events() << " of "
      << applied << "\n"
      << service_->stderr_tail()
      << (joined ? "\nsecond replica:\n" + joined->stderr_tail() : "");
    if (membership_phases == 1 && phase.topic == "seatledger.membership.v1")
      lag_reported_for_own_partitions_only();
  }
  ASSERT_EQ(membership_phases, 2);
  EXPECT_TRUE(joined_mid_stream) << "the second replica joined too late";
  EXPECT_TRUE(left_mid_stream) << "the second replica left too late";
  EXPECT_EQ(probe.leases_of(first.consumer_group, first.replica_id),
            probe.scalar("SELECT count(*) FROM seatledger.partition_leases "
                         "WHERE consumer_group = '"
                         + first.consumer_group + "'"));
  // Lag tools read the copy of the positions in Kafka: the copies held
  // during the hand-overs went out once the group was steady again.
  auto stored = probe.rows("SELECT topic || '|' || partition || '|' || "
                           "next_offset FROM seatledger.consumer_positions "
                           "WHERE consumer_group = '"
                           + first.consumer_group + "' ORDER BY 1");
  std::vector<storage::topic_partition> partitions;
  for (const auto& row : stored) {
    auto bar = row.find('|');
    partitions.push_back(
      {row.substr(0, bar),
       std::stoi(row.substr(bar + 1, row.rfind('|') - bar - 1))});
  }
  ASSERT_FALSE(stored.empty());
  std::vector<std::string> copied;
  EXPECT_TRUE(wait_until(
    [&] {
      auto offsets = kafka::committed_offsets(
        {options_.bootstrap, {}}, first.consumer_group, partitions, 5000);
      copied.clear();
      for (const auto& p :
           offsets ? *offsets : std::vector<storage::position>{})
        copied.push_back(p.tp.topic + "|" + std::to_string(p.tp.partition) + "|"
                         + std::to_string(p.next_offset));
      return copied == stored;
    },
    seconds{30}))
    << "Kafka has " << ::testing::PrintToString(copied) << ", PostgreSQL "
    << ::testing::PrintToString(stored);
  // The first replica gave partitions up while a commit was in flight; it
  // finished that commit first. No commit ran into the other's lease, and
  // none failed on state left over from before a handover (the unique
  // indexes would refuse it and the rewind repair it, hiding the bug from
  // the comparison below).
  auto first_log = service_->stderr_tail(1 << 22);
  EXPECT_NE(first_log.find("\"commit_in_flight\":true"), std::string::npos)
    << "no revocation came while a commit was in flight";
  for (const auto& log : {first_log, joined->stderr_tail(1 << 22)}) {
    EXPECT_EQ(log.find("fenced:"), std::string::npos) << log;
    // Each hand-over moves only the partitions that change owner: no
    // offset copy met the group's generation change (offset_copies.hpp).
    EXPECT_EQ(log.find("\"lost\":true"), std::string::npos) << log;
    EXPECT_EQ(log.find("batch not committed"), std::string::npos) << log;
    // Kafka refusing the offset copies while the group rebalances is
    // expected; it is not a warning for every batch.
    EXPECT_EQ(log.find("\"level\":\"warning\",\"message\":\"kafka\","
                       "\"facility\":\"COMMITFAIL\""),
              std::string::npos)
      << log;
  }
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e,
       a_restarted_replica_corrects_stale_offset_copies_when_idle) {
  // The offset copies in Kafka are for lag tools and may fall behind
  // PostgreSQL (a crash between a commit and its copy, another member's
  // commit). A replica copies the stored positions of the partitions it is
  // assigned; the copies are held while the group rebalances and go out
  // from the coordinator's idle cycle once it is steady, so lag tools are
  // right again without waiting for the next record.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  const std::string membership = "seatledger.membership.v1";
  auto replica = options_;
  replica.consumer_group = "seatledger-stale-copies";
  service_ = start_service(replica);
  // The scenario up to its first membership phase, applied to the end:
  // deltas published and applied, so no record is left for the restart.
  auto s = make_scenario({});
  auto first_membership = std::find_if(s.phases.begin(), s.phases.end(),
                                       [&](const auto& phase) {
                                         return phase.topic == membership;
                                       });
  ASSERT_NE(first_membership, s.phases.end());
  s.phases.erase(std::next(first_membership), s.phases.end());
  run(s);
  kafka::client_config cfg{options_.bootstrap, {}};
  auto high = kafka::high_watermarks(cfg, membership, 5000);
  ASSERT_TRUE(high) << describe(high.error());
  database_probe probe{db_->conninfo()};
  auto membership_stored = [&] {
    std::vector<std::int64_t> result;
    for (std::size_t p = 0; p < high->size(); ++p)
      result.push_back(
        probe.scalar("SELECT coalesce(max(next_offset), -1) FROM "
                     "seatledger.consumer_positions WHERE consumer_group = '"
                     + replica.consumer_group + "' AND topic = '" + membership
                     + "' AND partition = " + std::to_string(p)));
    return result;
  };
  ASSERT_TRUE(
    wait_until([&] { return membership_stored() == *high; }, seconds{60}))
    << ::testing::PrintToString(membership_stored()) << " of "
    << ::testing::PrintToString(*high) << "\n"
    << service_->stderr_tail();
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  // Every stored position, of the command and internal delta topics too
  // (their copies go through the group member as well).
  auto stored_rows
    = probe.rows("SELECT topic || '|' || partition || '|' || next_offset FROM "
                 "seatledger.consumer_positions WHERE consumer_group = '"
                 + replica.consumer_group + "' ORDER BY topic, partition");
  std::vector<kafka::topic_partition> tps;
  std::vector<std::int64_t> stored;
  for (const auto& row : stored_rows) {
    auto bar = row.find('|');
    auto last_bar = row.rfind('|');
    tps.push_back(
      {row.substr(0, bar), std::stoi(row.substr(bar + 1, last_bar - bar - 1))});
    stored.push_back(std::stoll(row.substr(last_bar + 1)));
  }
  ASSERT_TRUE(std::any_of(tps.begin(), tps.end(),
                          [](const auto& tp) {
                            return tp.topic
                                   == "seatledger.internal.seat-deltas.v1";
                          }))
    << "no delta position stored: " << ::testing::PrintToString(stored_rows);
  auto copied = [&] {
    std::vector<std::int64_t> result;
    auto offsets = kafka::committed_offsets(cfg, replica.consumer_group, tps,
                                            5000);
    for (const auto& p : offsets ? *offsets : std::vector<kafka::position>{})
      result.push_back(p.next_offset);
    return result;
  };
  // Another member of the group moves every copy back to offset 0.
  {
    starts_from_zero listener;
    auto other = kafka::consumer::group_member(cfg, replica.consumer_group,
                                               &listener);
    ASSERT_TRUE(other) << describe(other.error());
    ASSERT_TRUE((*other)->subscribe({membership}));
    std::vector<kafka::position> zeros;
    for (const auto& tp : tps)
      zeros.push_back({tp, 0});
    std::vector<std::int64_t> all_zero(tps.size(), 0);
    auto deadline = steady_clock::now() + seconds{60};
    while (steady_clock::now() < deadline && copied() != all_zero) {
      (*other)->poll(10, 100);
      if (!(*other)->assignment().empty())
        (*other)->commit_async(zeros);
    }
    ASSERT_EQ(copied(), all_zero);
    (*other)->close();
  }
  // No record follows: only the restarted replica's idle cycle can send the
  // copies it made on assignment.
  service_ = start_service(replica);
  std::vector<std::int64_t> now_copied;
  EXPECT_TRUE(wait_until(
    [&] {
      now_copied = copied();
      return now_copied == stored;
    },
    seconds{60}))
    << "Kafka has " << ::testing::PrintToString(now_copied) << ", PostgreSQL "
    << ::testing::PrintToString(stored) << " for "
    << ::testing::PrintToString(stored_rows);
  EXPECT_EQ(membership_stored(), *high) << "a record was applied again";
}

/// While the replica is paused, a writer outside the consumer group takes
/// its lease of membership partition 0 in PostgreSQL, as a replica does
/// whose lease acquisition outlasted its group membership. Records for
/// partitions 0 and `other` are published meanwhile. With `other` 1 the
/// replica's next batch commits them on two connections (partition mod 2)
/// and only partition 0's transaction is refused; with `other` 2 one
/// transaction covers both and is refused whole.
class service_lease_taken : public service_e2e {
protected:
  static constexpr int per_partition = 20;
  const std::string topic = "seatledger.membership.v1";
  std::unique_ptr<database_probe> db;
  int other = 1;
  std::int64_t before0 = 0;
  std::int64_t before_other = 0;
  std::int64_t applied = 0;
  std::int64_t taken_epoch = 0;

  /// `while_paused` runs after the lease is taken, before the replica
  /// resumes.
  template<class F>
  void take_lease_while_paused(F while_paused) {
    auto s = make_scenario({});
    run(s);
    db = std::make_unique<database_probe>(db_->conninfo());
    before0 = stored(0);
    before_other = stored(other);
    applied = db->applied_events();
    std::vector<outgoing> records;
    for (int i = 0; i < per_partition; ++i)
      for (int p : {0, other}) {
        domain::membership_event e{
          {"fence-test", "fence-" + std::to_string(p) + "-" + std::to_string(i),
           "seatledger.member.added",
           *domain::parse_rfc3339("2027-06-01T00:00:00Z")},
          domain::member_added{org_on(p), "fence-user-" + std::to_string(i),
                               true, std::nullopt}};
        records.push_back({org_on(p), messages::encode_membership_event(e)});
      }
    service_->signal(SIGSTOP);
    kafka_->publish(topic, records);
    taken_epoch
      = db->scalar("UPDATE seatledger.partition_leases "
                   "SET epoch = epoch + 1, owner = 'another-replica' "
                   "WHERE consumer_group = '"
                   + options_.consumer_group
                   + "' AND lease_key = 'membership/0' RETURNING epoch");
    while_paused();
    service_->signal(SIGCONT);
  }

  std::int64_t stored(int partition) {
    // 0 while none is stored.
    return db->scalar("SELECT (SELECT next_offset FROM "
                      "seatledger.consumer_positions WHERE consumer_group = '"
                      + options_.consumer_group + "' AND topic = '" + topic
                      + "' AND partition = " + std::to_string(partition) + ")");
  }

  /// The scenario's first org of sub-N, on membership partition N.
  static std::string org_on(int partition) {
    for (int n = 0;; ++n) {
      auto org = "org-" + std::to_string(partition) + "-" + std::to_string(n);
      if (kafka::partition_for_key(org, 4) == partition)
        return org;
    }
  }

  std::int64_t members_of(int partition) {
    return db->scalar("SELECT count(*) FROM seatledger.memberships "
                      "WHERE user_id LIKE 'fence-user-%' AND org_id = '"
                      + org_on(partition) + "'");
  }

  std::int64_t ledger_entries_of(int partition) {
    return db->scalar("SELECT count(*) FROM seatledger.seat_ledger "
                      "WHERE cause_id LIKE 'fence-"
                      + std::to_string(partition) + "-%'");
  }

  /// Kafka's copies of partitions 0 and `other`'s positions, once they are
  /// `expected` (or what they are after 20 s).
  std::map<int, std::int64_t>
  offset_copies_once(const std::map<int, std::int64_t>& expected) {
    std::map<int, std::int64_t> copied;
    wait_until(
      [&] {
        auto copies = kafka::committed_offsets({options_.bootstrap, {}},
                                               options_.consumer_group,
                                               {{topic, 0}, {topic, other}},
                                               5000);
        if (!copies)
          return false;
        copied.clear();
        for (const auto& p : *copies)
          copied[p.tp.partition] = p.next_offset;
        return copied == expected;
      },
      seconds{20});
    return copied;
  }

  /// The first log line whose message starts with `message`.
  std::string log_line(const std::string& message) {
    auto log = service_->stderr_tail(1 << 22);
    auto at = log.find("\"message\":\"" + message);
    if (at == std::string::npos)
      return {};
    return log.substr(at, log.find('\n', at) - at);
  }
};

TEST_F(service_lease_taken, by_a_writer_outside_the_group_it_is_taken_back) {
  // Kafka still assigns partition 0 here, so the taker was no owner: the
  // replica takes the lease back and applies both partitions' records,
  // each once. Before, it dropped partition 0 and left it unread until the
  // next rebalance.
  take_lease_while_paused([] {});
  ASSERT_TRUE(wait_until(
    [&] {
      return stored(0) == before0 + per_partition
             && stored(other) == before_other + per_partition;
    },
    seconds{60}))
    << "positions " << stored(0) << ", " << stored(other) << "; expected "
    << before0 + per_partition << ", " << before_other + per_partition << "\n"
    << service_->stderr_tail(1 << 16);
  EXPECT_EQ(db->applied_events(), applied + 2 * per_partition);
  EXPECT_EQ(members_of(0), per_partition);
  EXPECT_EQ(members_of(other), per_partition);
  EXPECT_EQ(ledger_entries_of(0), per_partition);
  EXPECT_EQ(ledger_entries_of(other), per_partition);
  EXPECT_EQ(db->scalar("SELECT epoch FROM seatledger.partition_leases "
                       "WHERE consumer_group = '"
                       + options_.consumer_group
                       + "' AND lease_key = 'membership/0' "
                         "AND owner <> 'another-replica'"),
            taken_epoch + 1);
  auto copied = offset_copies_once(
    {{0, before0 + per_partition}, {other, before_other + per_partition}});
  EXPECT_EQ(copied[0], before0 + per_partition);
  EXPECT_EQ(copied[other], before_other + per_partition);
  auto line = log_line("fenced by a writer outside the consumer group");
  EXPECT_NE(line.find("\"leases\":\"membership/0\""), std::string::npos)
    << service_->stderr_tail(1 << 16);
  EXPECT_EQ(log_line("fenced: another replica"), "") << "nothing was dropped";
}

TEST_F(service_lease_taken, one_whose_partition_never_committed_is_taken_back) {
  // Kafka's confirmation of the membership is a commit of the lease's
  // stored positions; a partition nothing was committed for had none, so
  // the lease was dropped and never taken back, and the partition stayed
  // unread (the warning every 5 s) until a restart.
  db = std::make_unique<database_probe>(db_->conninfo());
  ASSERT_EQ(stored(0), 0) << "partition 0 has a stored position already";
  std::vector<outgoing> records;
  for (int i = 0; i < per_partition; ++i) {
    domain::membership_event e{
      {"fence-test", "fresh-" + std::to_string(i), "seatledger.member.added",
       *domain::parse_rfc3339("2027-06-01T00:00:00Z")},
      domain::member_added{org_on(0), "fence-user-" + std::to_string(i), true,
                           std::nullopt}};
    records.push_back({org_on(0), messages::encode_membership_event(e)});
  }
  service_->signal(SIGSTOP);
  kafka_->publish(topic, records);
  db->scalar("UPDATE seatledger.partition_leases "
             "SET epoch = epoch + 1, owner = 'another-replica' "
             "WHERE consumer_group = '"
             + options_.consumer_group
             + "' AND lease_key = 'membership/0' RETURNING epoch");
  service_->signal(SIGCONT);
  EXPECT_TRUE(
    wait_until([&] { return stored(0) == per_partition; }, seconds{60}))
    << "position " << stored(0) << "\n"
    << service_->stderr_tail(1 << 16);
  EXPECT_EQ(members_of(0), per_partition);
  EXPECT_NE(log_line("fenced by a writer outside the consumer group"), "")
    << service_->stderr_tail(1 << 16);
}

TEST_F(service_lease_taken,
       when_kafka_does_not_confirm_it_is_dropped_until_kafka_does) {
  // Kafka refuses the replica's commit, as it does while the group
  // rebalances or once the replica is no longer a member of its current
  // generation: then the taker may be the rightful owner, so the replica
  // drops partition 0 and applies partition 2's records again. (Partition 2
  // commits on partition 0's connection: one refused transaction covers
  // both leases.) Kafka still assigns partition 0 here, and a cooperative
  // rebalance need not move it: it used to stay unread for good. Once Kafka
  // confirms the membership, the replica takes the lease back and reads
  // partition 0 from its stored position, each record once.
  other = 2;
  take_lease_while_paused([&] { cluster_->refuse_offset_commits(2); });
  ASSERT_TRUE(wait_until(
    [&] {
      return stored(0) == before0 + per_partition
             && stored(other) == before_other + per_partition;
    },
    seconds{60}))
    << "positions " << stored(0) << ", " << stored(other) << "; expected "
    << before0 + per_partition << ", " << before_other + per_partition << "\n"
    << service_->stderr_tail(1 << 16);
  EXPECT_EQ(db->applied_events(), applied + 2 * per_partition);
  EXPECT_EQ(members_of(0), per_partition);
  EXPECT_EQ(members_of(other), per_partition);
  EXPECT_EQ(ledger_entries_of(0), per_partition);
  EXPECT_EQ(ledger_entries_of(other), per_partition);
  auto copied = offset_copies_once(
    {{0, before0 + per_partition}, {other, before_other + per_partition}});
  EXPECT_EQ(copied[0], before0 + per_partition);
  EXPECT_EQ(copied[other], before_other + per_partition);
  // First refused and dropped, then taken back: in that order.
  auto log = service_->stderr_tail(1 << 22);
  auto refused = log.find("\"message\":\"Kafka did not confirm");
  auto dropped = log.find("\"message\":\"fenced: another replica");
  auto taken_back
    = log.find("\"message\":\"fenced by a writer outside the consumer group");
  ASSERT_NE(refused, std::string::npos) << service_->stderr_tail(1 << 16);
  ASSERT_NE(dropped, std::string::npos) << service_->stderr_tail(1 << 16);
  ASSERT_NE(taken_back, std::string::npos) << service_->stderr_tail(1 << 16);
  EXPECT_LT(refused, dropped);
  EXPECT_LT(dropped, taken_back);
  // The refused commit covered both partitions; only the one taken over
  // was dropped.
  auto line = log_line("fenced: another replica");
  EXPECT_NE(line.find("\"leases\":\"membership/0\""), std::string::npos)
    << line;
  EXPECT_NE(line.find("\"partitions\":\"" + topic + "/0\""), std::string::npos)
    << line;
  EXPECT_EQ(line.find("\"leases_kept\":0"), std::string::npos)
    << "the refused batch held no other lease: " << line;
  EXPECT_NE(log_line("fenced by a writer outside the consumer group")
              .find("\"leases\":\"membership/0\""),
            std::string::npos);
  EXPECT_GT(db->scalar("SELECT epoch FROM seatledger.partition_leases "
                       "WHERE consumer_group = '"
                       + options_.consumer_group
                       + "' AND lease_key = 'membership/0' "
                         "AND owner <> 'another-replica'"),
            taken_epoch);
}

TEST_F(service_e2e, commands_and_deltas_not_co_partitioned_are_not_read) {
  // A subscription's commands and its seat deltas must land on the same
  // partition number, owned by one replica. With other counts the service
  // used to log an error and go on, two replicas writing for one
  // subscription; now it reads nothing until the counts agree.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  const std::string deltas = "seatledger.internal.seat-deltas.three";
  ASSERT_TRUE(cluster_->create_topic(deltas, 3));
  auto options = options_;
  options.extra_args = {"--topic-deltas", deltas};
  service_ = launch_service(options);
  ASSERT_TRUE(service_->wait_for_value("HTTP", seconds{60}))
    << service_->stderr_tail();
  database_probe db{db_->conninfo()};
  auto applied = db.applied_events();
  auto s = make_scenario({});
  kafka_->publish(s.phases.front().topic, s.phases.front().records);
  const std::string expected
    = "co-partitioning broken: seatledger.subscriptions.v1 has 4 partitions "
      "and "
      + deltas + " has 3; they must have the same count";
  EXPECT_TRUE(wait_until(
    [&] { return service_->stderr_tail().find(expected) != std::string::npos; },
    seconds{30}))
    << service_->stderr_tail(1 << 12);
  std::this_thread::sleep_for(seconds{5});
  EXPECT_EQ(db.applied_events(), applied) << "records were read";
  EXPECT_TRUE(service_->running());
}

TEST_F(service_e2e, kafka_unreachable_at_start_is_waited_for) {
  // Entities are placed by their key's partition, so the service needs the
  // topics' partition counts before it reads a record. It read them once at
  // start, and when Kafka did not answer within 10 s the first record
  // divided by a partition count of zero and ended the process.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  cluster_->set_brokers_down(true);
  service_ = launch_service(options_);
  // Longer than the metadata read at start waits.
  std::this_thread::sleep_for(seconds{12});
  ASSERT_TRUE(service_->running()) << service_->stderr_tail();
  cluster_->set_brokers_down(false);
  auto s = make_scenario({});
  run(s);
  EXPECT_TRUE(service_->running()) << service_->stderr_tail();
  auto log = service_->stderr_tail(1 << 22);
  EXPECT_NE(log.find("consuming nothing until it can"), std::string::npos)
    << log;
  expect_as_the_rules_say(s);
}

// With Kafka away when the replica starts, a license request waited its
// 30 s for an acknowledgement, each behind the last: the failed metadata
// reads of the start were not counted, only the checks that begin once the
// topics are known. Now it is answered 503 at once there too.
TEST_F(service_e2e,
       license_requests_with_kafka_away_at_start_are_answered_at_once) {
  auto s = make_scenario({});
  run(s);
  ASSERT_FALSE(s.subscription_ids.empty());
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  cluster_->set_brokers_down(true);
  constexpr const char* admin_token = "e2e-admin-token-0123456789";
  auto options = options_;
  options.extra_args.insert(options.extra_args.end(),
                            {"--api-token",
                             std::string{admin_token} + ":admin"});
  service_ = launch_service(options);
  auto url = service_->wait_for_value("HTTP", seconds{60});
  ASSERT_TRUE(url) << service_->stderr_tail();
  // The first read waits 10 s, the next ones 2 s a second apart.
  std::this_thread::sleep_for(seconds{16});
  httplib::Client http{"127.0.0.1",
                       std::stoi(url->substr(url->rfind(':') + 1))};
  http.set_read_timeout(seconds{60});
  auto asked = steady_clock::now();
  auto res = http.Post(
    ("/v1/subscriptions/" + s.subscription_ids.front() + "/licenses").c_str(),
    {{"Authorization", std::string{"Bearer "} + admin_token}}, "{}",
    "application/json");
  auto took = duration_cast<seconds>(steady_clock::now() - asked);
  cluster_->set_brokers_down(false);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_LT(took.count(), 5) << "seconds";
}

TEST_F(service_e2e, postgres_unreachable_at_start_is_waited_for) {
  // The database is not there yet when the replica starts (here: it does
  // not exist; the same for a server still starting). The replica exited
  // at once with status 1, so a database outage became a crash loop whose
  // back-off outlasts it. Now it keeps trying, answers /healthz and says
  // on /readyz why it is not ready, and starts once the database is there.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  const auto name = db_->name();
  auto admin_exec = [](const std::string& sql) {
    pqxx::connection admin{"dbname=postgres"};
    pqxx::nontransaction tx{admin};
    tx.exec(sql);
  };
  admin_exec("DROP DATABASE \"" + name + "\" WITH (FORCE)");
  service_ = launch_service(options_);
  auto url = service_->wait_for_value("HTTP", seconds{60});
  ASSERT_TRUE(url) << service_->stderr_tail();
  auto colon = url->rfind(':');
  httplib::Client http{"127.0.0.1", std::stoi(url->substr(colon + 1))};
  ASSERT_TRUE(wait_until(
    [&] {
      return service_->stderr_tail().find(
               "PostgreSQL not reachable at start; trying again")
             != std::string::npos;
    },
    seconds{30}))
    << service_->stderr_tail();
  // Longer than the first few retries.
  std::this_thread::sleep_for(seconds{4});
  ASSERT_TRUE(service_->running()) << service_->stderr_tail();
  auto health = http.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("PostgreSQL"), std::string::npos) << ready->body;
  // Every attempt's line is one line (libpq's hint was on a second).
  std::istringstream log{service_->stderr_tail()};
  for (std::string line; std::getline(log, line);) {
    if (!line.empty()) {
      EXPECT_EQ(line.front(), '{') << line;
    }
  }
  admin_exec("CREATE DATABASE \"" + name + "\"");
  database_probe probe{db_->conninfo()};
  ASSERT_TRUE(wait_until(
    [&] {
      try {
        return probe.leases_of(options_.consumer_group, options_.replica_id)
               > 0;
      } catch (const std::exception&) {
        return false;
      }
    },
    seconds{60}))
    << service_->stderr_tail();
  auto s = make_scenario({});
  run(s);
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e, ready_only_once_the_group_assigned_partitions) {
  // /readyz said 200 as soon as the consumer loop ran, before the consumer
  // group had assigned the replica anything, so "ready" did not mean
  // "consuming its partitions" (http.md). The README's run command waits
  // for it before publishing its sample.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  options_.consumer_group = "seatledger-test-ready";
  service_ = launch_service(options_);
  auto url = service_->wait_for_value("HTTP", seconds{60});
  ASSERT_TRUE(url) << service_->stderr_tail();
  auto colon = url->rfind(':');
  httplib::Client http{"127.0.0.1", std::stoi(url->substr(colon + 1))};
  std::string last_answer;
  ASSERT_TRUE(wait_until(
    [&] {
      auto res = http.Get("/readyz");
      if (res)
        last_answer = res->body;
      return res && res->status == 200;
    },
    seconds{60}, milliseconds{5}))
    << last_answer << "\n"
    << service_->stderr_tail();
  database_probe probe{db_->conninfo()};
  EXPECT_GT(probe.leases_of(options_.consumer_group, options_.replica_id), 0)
    << "ready before the group assigned it partitions";
  // Which partitions, not only how many: an operator follows a rebalance
  // across the replicas' logs by them (the line gave a count alone).
  auto log = service_->stderr_tail();
  auto assigned = log.find("\"message\":\"partitions assigned\"");
  ASSERT_NE(assigned, std::string::npos) << log;
  auto line = log.substr(assigned, log.find('\n', assigned) - assigned);
  for (const auto* ids :
       {"seatledger.membership.v1[0,1,2,3]",
        "seatledger.subscriptions.v1[0,1,2,3]", "seatledger.catalog.v1[0"})
    EXPECT_NE(line.find(ids), std::string::npos) << ids << " not in " << line;
}

TEST_F(service_e2e, sigterm_publishes_every_pending_event_before_it_exits) {
  // Events committed but not yet published when SIGTERM comes go out
  // before the replica leaves the group. The relay publishes for the leases
  // it holds only, and was asked to drain after leaving the group had
  // given them all up: it drained nothing beyond the round already under
  // way. Forty thousand pending events in ten chunks take several rounds.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  storage::pg_store store{db_->conninfo()};
  auto leases = store.acquire_leases(options_.consumer_group,
                                     {"subscriptions/0"}, "earlier-replica");
  ASSERT_TRUE(leases) << describe(leases.error());
  constexpr int chunks = 10;
  constexpr int per_chunk = 4'000;
  for (int c = 0; c < chunks; ++c) {
    storage::storage_batch batch;
    batch.consumer_group = options_.consumer_group;
    batch.leases = *leases;
    for (int i = 0; i < per_chunk; ++i) {
      auto n = std::to_string(c * per_chunk + i);
      batch.outbox.push_back({"pending-" + n,
                              "seatledger.events.v1",
                              "sub-pending",
                              R"({"n":)" + n + "}",
                              {},
                              "subscriptions/0"});
    }
    auto committed = store.commit(batch);
    ASSERT_TRUE(committed) << describe(committed.error());
  }
  // The lease rows still name this replica from its first run: wait until
  // it has taken subscriptions/0 back, then stop it at once.
  service_ = launch_service(options_);
  database_probe db{db_->conninfo()};
  ASSERT_TRUE(wait_until(
    [&] {
      return db.scalar("SELECT count(*) FROM seatledger.partition_leases "
                       "WHERE lease_key = 'subscriptions/0' AND owner = '"
                       + options_.replica_id + "'")
             == 1;
    },
    seconds{60}))
    << service_->stderr_tail();
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{90}), 0) << service_->stderr_tail();
  auto left = store.unpublished_count();
  ASSERT_TRUE(left) << describe(left.error());
  EXPECT_EQ(*left, 0) << service_->stderr_tail();
  std::set<std::string> published;
  for (const auto& r : kafka_->read_all("seatledger.events.v1"))
    if (r.key == "sub-pending")
      published.insert(r.value);
  EXPECT_EQ(published.size(), static_cast<std::size_t>(chunks * per_chunk));
  service_.reset();
}

TEST_F(service_e2e, a_dead_letter_too_large_for_kafka_holds_nothing_back) {
  // A dead letter is a byte-for-byte copy of its record plus headers, so it
  // can be larger than Kafka takes. The relay used to stop its round at a
  // record the producer refused and start over from it, for ever: no event
  // after it, of any lease, was published again. It is logged and counted
  // instead, and the events after it go out.
  kafka_io large{cluster_->bootstrap_servers(),
                 {{"message.max.bytes", "10000000"}}};
  large.publish("seatledger.membership.v1",
                {{"org-large", std::string(4'300'000, 'x')}});
  auto s = make_scenario({});
  run(s); // each phase waits for the outbox to be empty
  auto log = service_->stderr_tail(1 << 22);
  EXPECT_NE(log.find("event refused by Kafka; it is not published"),
            std::string::npos)
    << log;
  // The refused one is not on the dead-letter topic; the scenario's are.
  expect_as_the_rules_say(s);
}

TEST_F(service_e2e, sigterm_stops_it_while_postgres_is_gone) {
  // The database disappears; a record makes a batch fail, and the service
  // keeps retrying to read its stored positions. A stop request must still
  // end the process.
  {
    pqxx::connection admin{"dbname=postgres"};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP DATABASE " + tx.quote_name(db_->name()) + " WITH (FORCE)");
  }
  auto s = make_scenario({});
  kafka_->publish(s.phases.front().topic, s.phases.front().records);
  ASSERT_TRUE(wait_until(
    [&] {
      return service_->stderr_tail(1 << 20).find("postgres call failed")
             != std::string::npos;
    },
    seconds{60}))
    << service_->stderr_tail();
  auto asked = steady_clock::now();
  service_->signal(SIGTERM);
  auto status = service_->wait(seconds{90});
  ASSERT_TRUE(status) << "still running 90 s after SIGTERM\n"
                      << service_->stderr_tail();
  EXPECT_LT(steady_clock::now() - asked, seconds{60});
  service_.reset();
}

TEST_F(service_e2e, the_same_events_published_twice_change_nothing) {
  scenario_options options;
  options.membership_events_per_phase = 300;
  auto s = make_scenario(options);
  run(s);
  database_probe db{db_->conninfo()};
  auto snapshot = [&] {
    auto rows = db.rows("SELECT subscription_id, seq, hash FROM "
                        "seatledger.seat_ledger ORDER BY 1, 2");
    auto state = db.rows("SELECT subscription_id, status, seats_in_use, "
                         "max_seats_used, seats_owed, ledger_hash FROM "
                         "seatledger.subscriptions ORDER BY 1");
    rows.insert(rows.end(), state.begin(), state.end());
    auto licenses = db.rows("SELECT license_id FROM seatledger.licenses "
                            "ORDER BY 1");
    rows.insert(rows.end(), licenses.begin(), licenses.end());
    return rows;
  };
  auto before = snapshot();
  auto events_before = kafka_->read_all("seatledger.events.v1").size();
  auto applied = db.applied_events();
  // Everything again: a producer re-sending its whole history.
  for (const auto& phase : s.phases)
    kafka_->publish(phase.topic, phase.records);
  auto offsets_done = [&] {
    // Every record consumed: positions reached the ends of the input topics.
    return db.scalar("SELECT coalesce(sum(next_offset), 0) FROM "
                     "seatledger.consumer_positions WHERE topic IN "
                     "('seatledger.membership.v1', "
                     "'seatledger.subscriptions.v1', 'seatledger.catalog.v1')")
           == 2 * static_cast<std::int64_t>([&] {
                std::size_t n = 0;
                for (const auto& p : s.phases)
                  n += p.records.size();
                return n;
              }());
  };
  ASSERT_TRUE(wait_until(offsets_done, seconds{120}))
    << service_->stderr_tail();
  ASSERT_TRUE(wait_until([&] { return db.settled(applied); }, seconds{60}));
  EXPECT_EQ(db.applied_events(), applied);
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(kafka_->read_all("seatledger.events.v1").size(), events_before);
  // The first copy found only at commit (no lookup before applying) sent
  // its batch back, told apart from a failing commit; the batches after it
  // looked their events up, so it happened once.
  auto log = service_->stderr_tail(1 << 22);
  const std::string refused = "was applied before; applying the batch again";
  std::size_t refusals = 0;
  for (auto at = log.find(refused); at != std::string::npos;
       at = log.find(refused, at + refused.size()))
    ++refusals;
  EXPECT_EQ(refusals, 1u) << log;
  EXPECT_EQ(log.find("batch not committed"), std::string::npos) << log;
}

TEST_F(service_e2e,
       a_subscriptions_events_go_out_in_the_order_it_applied_them) {
  // A subscription's commands and seat deltas come from two topics; in one
  // batch they are applied interleaved by event time, and messages.md
  // promises its events in that order. Before bd20d60 they went out in
  // record order: a renewal read before an older delta in the same batch
  // was published before that delta's seats.changed. Here each of several
  // subscriptions gets a renewal at 10:00:05 and deltas at 10:00:01-02 and
  // 10:00:09 at once, read in one batch. Each published event must show the
  // seat count left by the seats.changed before it.
  const int subscriptions = 8;
  // Batches gather for up to a second, so records of both topics that
  // arrive together are read in one.
  service_->signal(SIGTERM);
  ASSERT_EQ(service_->wait(seconds{60}), 0) << service_->stderr_tail();
  auto lingering = options_;
  lingering.extra_args.insert(lingering.extra_args.end(),
                              {"--batch-linger", "1s"});
  service_ = start_service(lingering);
  auto time = [](const char* clock) {
    return *domain::parse_rfc3339(std::string{"2026-03-01T"} + clock + "Z");
  };
  auto ref = [&](const std::string& id, const char* type, const char* clock) {
    return domain::event_ref{"order-test", id, type, time(clock)};
  };
  auto sub_id = [](int i) { return "sub-order-" + std::to_string(i); };
  std::vector<outgoing> creates;
  for (int i = 0; i < subscriptions; ++i) {
    domain::create_subscription create;
    create.subscription_id = sub_id(i);
    create.display_name = "Order test";
    create.customer = {"0015000000ORDER", std::nullopt};
    create.instance = {"order.example.com", domain::instance_type::primary};
    create.plan_id = "plan-order";
    create.seats = 10;
    create.term = {time("10:00:00"),
                   *domain::parse_rfc3339("2027-03-01T10:00:00Z")};
    creates.push_back(
      {sub_id(i), messages::encode_command_event(
                    {ref("create-" + sub_id(i),
                         "seatledger.subscription.create", "10:00:00"),
                     create})});
  }
  kafka_->publish("seatledger.subscriptions.v1", creates);
  database_probe db{db_->conninfo()};
  ASSERT_TRUE(
    wait_until([&] { return db.settled(subscriptions); }, seconds{60}))
    << service_->stderr_tail();

  std::vector<outgoing> renewals;
  std::vector<outgoing> deltas;
  for (int i = 0; i < subscriptions; ++i) {
    const auto sub = sub_id(i);
    domain::renew_subscription renew;
    renew.subscription_id = sub;
    renew.term = {time("10:00:05"),
                  *domain::parse_rfc3339("2028-03-01T10:00:05Z")};
    renewals.push_back(
      {sub, messages::encode_command_event(
              {ref("renew-" + sub, "seatledger.subscription.renew", "10:00:05"),
               renew})});
    // The org stage's deltas for a link and two members, made by the same
    // rules and put on the internal topic directly.
    const auto org_id = "org-" + sub;
    domain::org_state org{org_id};
    auto add_deltas = [&](domain::membership_event event) {
      for (const auto& delta : org.apply(event).deltas)
        deltas.push_back(
          {sub, messages::encode_seat_delta(delta, "seatledger")});
    };
    add_deltas({ref("link-" + sub, "seatledger.org.linked", "10:00:01"),
                domain::org_linked{org_id, sub}});
    add_deltas({ref("u1-" + sub, "seatledger.member.added", "10:00:02"),
                domain::member_added{org_id, "u1", true, std::nullopt}});
    add_deltas({ref("u2-" + sub, "seatledger.member.added", "10:00:09"),
                domain::member_added{org_id, "u2", true, std::nullopt}});
  }
  kafka_->publish_async("seatledger.subscriptions.v1", renewals);
  kafka_->publish_async("seatledger.internal.seat-deltas.v1", deltas);
  kafka_->flush();
  ASSERT_TRUE(wait_until(
    [&] {
      return db.settled(2 * subscriptions)
             && db.scalar("SELECT count(*) FROM seatledger.subscriptions "
                          "WHERE seats_in_use = 2")
                  == subscriptions;
    },
    seconds{60}))
    << service_->stderr_tail();

  std::map<std::string, std::vector<std::string>> types;
  std::map<std::string, std::int64_t> seats;
  std::set<std::string> ids;
  for (const auto& r : kafka_->read_all("seatledger.events.v1")) {
    auto event = nlohmann::json::parse(r.value);
    if (!ids.insert(event.at("id").get<std::string>()).second)
      continue; // at-least-once: a copy
    auto type = event.at("type").get<std::string>();
    types[r.key].push_back(type);
    const auto& data = event.at("data");
    if (type == "seatledger.seats.changed") {
      EXPECT_EQ(data.at("previous_seats_in_use").get<std::int64_t>(),
                seats[r.key])
        << "published after an event it was applied before: " << r.value;
      seats[r.key] = data.at("seats_in_use").get<std::int64_t>();
    } else if (data.contains("seats_in_use")) {
      EXPECT_EQ(data.at("seats_in_use").get<std::int64_t>(), seats[r.key])
        << "published among the wrong seats.changed: " << r.value;
    }
  }
  // Where the renewal and its deltas were applied in one batch, by time,
  // it comes between the two members' seats.changed.
  int interleaved = 0;
  for (int i = 0; i < subscriptions; ++i) {
    const auto& of = types[sub_id(i)];
    EXPECT_EQ(seats[sub_id(i)], 2) << sub_id(i);
    EXPECT_EQ(std::count(of.begin(), of.end(), "seatledger.seats.changed"), 2)
      << sub_id(i) << ": " << ::testing::PrintToString(of);
    auto renewed = std::find(of.begin(), of.end(),
                             "seatledger.subscription.renewed");
    ASSERT_NE(renewed, of.end()) << ::testing::PrintToString(of);
    interleaved += std::count(of.begin(), renewed, "seatledger.seats.changed")
                   == 1;
  }
  // Otherwise this run did not read a renewal and its deltas in one batch,
  // the case the test is for.
  EXPECT_GT(interleaved, 0) << "no renewal was applied between its deltas";
}

} // namespace
} // namespace seatledger::test
