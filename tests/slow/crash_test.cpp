// Crash safety: the service stopped abruptly mid-stream and restarted ends
// with the same ledger, state and published events as an uninterrupted run
// of the same input — nothing lost, nothing doubled.

#include <filesystem>
#include <gtest/gtest.h>
#include <random>
#include <set>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "pg_fixture.hpp"
#include "scenario.hpp"
#include "service_harness.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;

const std::vector<std::string> service_topics{
  "seatledger.membership.v1", "seatledger.subscriptions.v1",
  "seatledger.catalog.v1",    "seatledger.internal.seat-deltas.v1",
  "seatledger.events.v1",     "seatledger.dlq.v1"};

/// Everything a run leaves behind that must not depend on crashes.
struct outcome {
  std::vector<std::string> ledger;
  std::vector<std::string> state;
  std::vector<std::string> memberships;
  std::vector<std::string> holders;
  std::vector<std::string> licenses;
  /// Published events per key, de-duplicated by id (first copy), as
  /// "id type data".
  std::map<std::string, std::vector<std::string>> events;
  /// Dead letters by source record (first copy), with code and value.
  std::vector<std::string> dead_letters;
  std::size_t duplicate_events = 0;
  std::size_t duplicate_dead_letters = 0;
};

outcome collect(const std::string& conninfo, kafka_io& kafka) {
  database_probe db{conninfo};
  outcome o;
  o.ledger = db.rows("SELECT subscription_id, seq, seats_in_use, effective_at, "
                     "cause_source, cause_id, org_id, user_id, prev_hash, hash "
                     "FROM seatledger.seat_ledger ORDER BY 1, 2");
  o.state = db.rows(
    "SELECT subscription_id, status, plan_id, seats, term_start, term_end, "
    "trial, seats_in_use, ledger_seq, ledger_hash, max_seats_used, "
    "max_seats_used_changed_at, seats_owed, clock, instance_domain "
    "FROM seatledger.subscriptions ORDER BY 1");
  o.memberships = db.rows("SELECT org_id, user_id, billable FROM "
                          "seatledger.memberships ORDER BY 1, 2");
  o.holders = db.rows("SELECT subscription_id, user_id, org_id FROM "
                      "seatledger.seat_holders ORDER BY 1, 2, 3");
  o.licenses = db.rows("SELECT license_id, subscription_id, license_key FROM "
                       "seatledger.licenses ORDER BY 1");
  std::set<std::string> ids;
  for (const auto& r : kafka.read_all("seatledger.events.v1")) {
    auto event = nlohmann::json::parse(r.value);
    auto id = event.at("id").get<std::string>();
    if (!ids.insert(id).second) {
      ++o.duplicate_events;
      continue;
    }
    o.events[r.key].push_back(id + " " + event.at("type").get<std::string>()
                              + " " + event.at("data").dump());
  }
  // A dead letter's identity is where it came from (at-least-once: a copy
  // re-published after a crash names the same source record).
  std::set<std::string> seen;
  for (const auto& r : kafka.read_all("seatledger.dlq.v1")) {
    std::map<std::string, std::string> h(r.headers.begin(), r.headers.end());
    auto identity = h["seatledger.source.topic"] + "/"
                    + h["seatledger.source.partition"] + "/"
                    + h["seatledger.source.offset"];
    if (!seen.insert(identity).second) {
      ++o.duplicate_dead_letters;
      continue;
    }
    o.dead_letters.push_back(identity + " " + h["seatledger.error.code"] + " "
                             + r.value);
  }
  std::sort(o.dead_letters.begin(), o.dead_letters.end());
  return o;
}

/// Where two lists first differ (a full dump of thousands of rows hides it).
std::string first_difference(const std::vector<std::string>& a,
                             const std::vector<std::string>& b) {
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    auto x = i < a.size() ? a[i] : "(none)";
    auto y = i < b.size() ? b[i] : "(none)";
    if (x != y)
      return "sizes " + std::to_string(a.size()) + " vs "
             + std::to_string(b.size()) + "; first difference at "
             + std::to_string(i) + ":\n  " + x + "\n  " + y;
  }
  return "same";
}

#define EXPECT_SAME_ROWS(a, b) EXPECT_TRUE((a) == (b)) << first_difference(a, b)

void expect_same(const outcome& a, const outcome& b) {
  EXPECT_SAME_ROWS(a.ledger, b.ledger);
  EXPECT_SAME_ROWS(a.state, b.state);
  EXPECT_SAME_ROWS(a.memberships, b.memberships);
  EXPECT_SAME_ROWS(a.holders, b.holders);
  EXPECT_SAME_ROWS(a.licenses, b.licenses);
  std::set<std::string> keys;
  for (const auto& [key, events] : a.events)
    keys.insert(key);
  for (const auto& [key, events] : b.events)
    keys.insert(key);
  for (const auto& key : keys) {
    static const std::vector<std::string> none;
    auto ia = a.events.find(key);
    auto ib = b.events.find(key);
    const auto& ea = ia == a.events.end() ? none : ia->second;
    const auto& eb = ib == b.events.end() ? none : ib->second;
    EXPECT_SAME_ROWS(ea, eb) << " (events of key " << key << ")";
  }
  EXPECT_SAME_ROWS(a.dead_letters, b.dead_letters);
}

/// How to interrupt a run: during which phases, how.
struct interruptions {
  std::set<std::size_t> phases;
  int per_phase = 0;
  int sig = SIGKILL;
  std::uint64_t seed = 1;
};

/// One run of the scenario against its own Kafka and database.
class run {
public:
  run(const std::string& bootstrap, const std::string& signing_key)
      : kafka_(bootstrap), signing_key_(signing_key) {}

  outcome execute(const scenario& s, const interruptions& plan) {
    service_options options;
    options.database_url = db_.conninfo();
    options.bootstrap = kafka_.bootstrap();
    options.signing_key_file = signing_key_;
    // Every batch commits on both commit connections, one transaction
    // each, so a crash can fall between them.
    options.extra_args = {"--commit-split-records", "1"};
    auto service = start_service(options);
    database_probe probe{db_.conninfo()};
    std::mt19937_64 rng{plan.seed};
    std::int64_t applied = 0;
    for (std::size_t i = 0; i < s.phases.size(); ++i) {
      const auto& phase = s.phases[i];
      kafka_.publish(phase.topic, phase.records);
      applied += phase.upstream;
      if (plan.phases.count(i) > 0) {
        for (int k = 0; k < plan.per_phase; ++k) {
          std::this_thread::sleep_for(
            milliseconds{10 + std::uniform_int_distribution<int>(0, 150)(rng)});
          // Mid-stream: records, deltas or events still on their way.
          interrupted_mid_stream_ += !probe.settled(applied);
          service->signal(plan.sig);
          auto status = service->wait(seconds{60});
          EXPECT_TRUE(status) << "did not stop";
          if (status && plan.sig == SIGTERM) {
            EXPECT_EQ(*status, 0) << service->stderr_tail();
          }
          service = start_service(options);
        }
      }
      auto settled = wait_until([&] { return probe.settled(applied); },
                                seconds{180});
      EXPECT_TRUE(settled) << "phase " << i << ": " << service->stderr_tail();
      if (!settled)
        return {};
    }
    service->signal(SIGTERM);
    EXPECT_EQ(service->wait(seconds{60}), 0) << service->stderr_tail();
    return collect(db_.conninfo(), kafka_);
  }

  int interrupted_mid_stream() const {
    return interrupted_mid_stream_;
  }

private:
  scratch_database db_;
  kafka_io kafka_;
  std::string signing_key_;
  int interrupted_mid_stream_ = 0;
};

class crash : public ::testing::Test {
protected:
  void SetUp() override {
    key_dir_ = "/tmp/" + unique_name("seatledger_crash_keys");
    signing_key_ = test_signing_key(key_dir_);
  }

  void TearDown() override {
    std::filesystem::remove_all(key_dir_);
  }

  std::string key_dir_;
  std::string signing_key_;
};

scenario crash_scenario() {
  scenario_options options;
  options.membership_events_per_phase = 2500;
  options.users = 150;
  return make_scenario(options);
}

TEST_F(crash, stopped_abruptly_mid_stream_it_ends_like_an_uninterrupted_run) {
  auto s = crash_scenario();
  outcome reference;
  {
    auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
    ASSERT_TRUE(cluster);
    run r{(*cluster)->bootstrap_servers(), signing_key_};
    reference = r.execute(s, {});
  }
  ASSERT_FALSE(reference.ledger.empty());
  // Killed (SIGKILL) during both membership phases, and stopped (SIGTERM)
  // in the middle of one too.
  auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
  ASSERT_TRUE(cluster);
  run killed{(*cluster)->bootstrap_servers(), signing_key_};
  auto got = killed.execute(s, {{2, 4}, 2, SIGKILL, 11});
  EXPECT_GT(killed.interrupted_mid_stream(), 0)
    << "no kill landed while records were in flight";
  expect_same(reference, got);
  auto cluster2 = kafka::mock_cluster::start(1, service_topics, 4);
  ASSERT_TRUE(cluster2);
  run stopped{(*cluster2)->bootstrap_servers(), signing_key_};
  expect_same(reference, stopped.execute(s, {{2}, 1, SIGTERM, 5}));
}

TEST_F(crash, sigkill_against_a_dev_kafka_process_loses_and_doubles_nothing) {
  auto s = crash_scenario();
  auto dev_kafka = [] {
    auto child = std::make_unique<child_process>(std::vector<std::string>{
      seatledger_binary(), "dev-kafka", "--partitions", "4"});
    auto bootstrap = child->wait_for_value("KAFKA_BOOTSTRAP", seconds{30});
    if (!bootstrap)
      throw std::runtime_error("dev-kafka did not start: "
                               + child->stderr_tail());
    return std::make_pair(std::move(child), *bootstrap);
  };
  outcome reference;
  {
    auto [kafka, bootstrap] = dev_kafka();
    run r{bootstrap, signing_key_};
    reference = r.execute(s, {});
  }
  ASSERT_FALSE(reference.ledger.empty());
  auto [kafka, bootstrap] = dev_kafka();
  run killed{bootstrap, signing_key_};
  auto got = killed.execute(s, {{2, 4}, 3, SIGKILL, 99});
  EXPECT_GT(killed.interrupted_mid_stream(), 0)
    << "no kill landed while records were in flight";
  expect_same(reference, got);
}

} // namespace
} // namespace seatledger::test
