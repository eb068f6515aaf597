// Crash safety: the service stopped abruptly mid-stream and restarted, or
// one of two replicas killed (or paused inside a commit) mid-stream and
// taken over by the other, ends with the same ledger, state and published
// events as an uninterrupted run of the same input — nothing lost, nothing
// doubled.

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iostream>
#include <random>
#include <set>
#include <signal.h>
#include <sstream>

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
  /// Event ids published more than once with different keys or values
  /// (a copy re-published after a crash must be the same event).
  std::vector<std::string> conflicting_events;
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
  std::map<std::string, std::string> published;
  for (const auto& r : kafka.read_all("seatledger.events.v1")) {
    auto event = nlohmann::json::parse(r.value);
    auto id = event.at("id").get<std::string>();
    auto [first, inserted] = published.emplace(id, r.key + " " + r.value);
    if (!inserted) {
      ++o.duplicate_events;
      if (first->second != r.key + " " + r.value)
        o.conflicting_events.push_back(first->second + "\n  vs " + r.key + " "
                                       + r.value);
      continue;
    }
    o.events[r.key].push_back(id + " " + event.at("type").get<std::string>()
                              + " " + event.at("data").dump());
  }
  // A dead letter's identity is where it came from (at-least-once: a copy
  // re-published after a crash names the same source record).
  std::set<std::string> seen;
  for (const auto& r : kafka.read_all("seatledger.dlq.v1")) {
    auto h = header_map(r);
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
  // A copy published again after a crash is the same event, byte for byte.
  EXPECT_TRUE(a.conflicting_events.empty())
    << ::testing::PrintToString(a.conflicting_events);
  EXPECT_TRUE(b.conflicting_events.empty())
    << ::testing::PrintToString(b.conflicting_events);
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

  /// The same scenario run by one replica that nothing interrupts, on a
  /// mock cluster of its own: what every interrupted run must end as.
  outcome uninterrupted(const scenario& s) {
    auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
    if (!cluster) {
      ADD_FAILURE() << "no mock cluster";
      return {};
    }
    run r{(*cluster)->bootstrap_servers(), signing_key_};
    return r.execute(s, {});
  }

  std::string key_dir_;
  std::string signing_key_;
};

/// Kafka gives a killed or paused replica's partitions to the other only
/// once its session times out (10 s by default); a short session keeps the
/// run short. Each group is its run's own, on its own mock cluster, which
/// keeps the session timeout a group started with.
const std::vector<std::string> short_session{"--kafka-property",
                                             "session.timeout.ms=3000",
                                             "--kafka-property",
                                             "heartbeat.interval.ms=500"};

scenario crash_scenario() {
  scenario_options options;
  options.membership_events_per_phase = 2500;
  options.users = 150;
  return make_scenario(options);
}

TEST_F(crash, stopped_abruptly_mid_stream_it_ends_like_an_uninterrupted_run) {
  auto s = crash_scenario();
  auto reference = uninterrupted(s);
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

/// Two replicas of one consumer group share the stream; one of them is
/// killed (SIGKILL) mid-stream while it holds partitions and is applying
/// their records, and is not restarted: the other must take its partitions
/// over once Kafka's session for it times out, and finish the stream. Or it
/// is paused (SIGSTOP) in the middle of a commit, holding its leases' rows
/// locked: the other must take over all the same and finish the phase
/// while it stays paused; resumed, the paused one must write nothing of
/// what it held, and the two share the rest of the stream.
class takeover_run {
public:
  takeover_run(const std::string& bootstrap, const std::string& signing_key)
      : kafka_(bootstrap), signing_key_(signing_key) {}

  /// What the run saw around the kill, for the test to judge.
  struct observations {
    std::string victim;
    std::string survivor;
    /// The victim's membership leases, read right after it died (nobody
    /// can take them before its session times out).
    std::vector<std::string> victim_membership_leases;
    bool killed_mid_stream = false;
    /// The records of the kill phase on the victim's membership
    /// partitions, and the sum of their stored positions before the phase,
    /// when it died and at the end (the survivor applied what was left).
    std::int64_t victim_share = 0;
    std::int64_t victim_positions_before = 0;
    std::int64_t victim_positions_at_kill = 0;
    std::int64_t victim_positions_at_end = 0;
    /// Events and deltas the victim committed and had not published.
    std::int64_t pending_at_kill = 0;
    std::optional<milliseconds> takeover;
    std::int64_t leases = 0;
    std::int64_t survivor_leases = 0;
    std::string survivor_log;
    /// Paused runs: the victim was stopped inside a commit that held its
    /// leases' rows, and its log after it resumed.
    bool paused_holding_leases = false;
    std::string victim_log;
  };

  /// Kills `prefer` (0: the first replica, which started alone and handed
  /// part of its partitions over; 1: the one that joined and took them)
  /// during phase `kill_phase`, unless it reads no membership partition,
  /// then the other. `sig` SIGSTOP pauses it instead until the survivor has
  /// finished that phase.
  outcome execute(const scenario& s, std::size_t kill_phase, int prefer,
                  const std::vector<std::string>& session_args,
                  int sig = SIGKILL) {
    service_options base;
    base.database_url = db_.conninfo();
    base.bootstrap = kafka_.bootstrap();
    base.signing_key_file = signing_key_;
    base.consumer_group = "seatledger-takeover";
    // Both commit connections in every batch, as in the restart runs, and
    // small batches, so the victim commits many times per phase and dies
    // between two of them with records read and not yet committed.
    base.extra_args = {"--commit-split-records", "1", "--batch-max-records",
                       "40"};
    base.extra_args.insert(base.extra_args.end(), session_args.begin(),
                           session_args.end());
    auto first = base;
    first.replica_id = "replica-a";
    auto second = base;
    second.replica_id = "replica-b";
    database_probe probe{db_.conninfo()};
    auto group = "'" + base.consumer_group + "'";
    auto leases_of = [&](const std::string& owner) {
      return probe.leases_of(base.consumer_group, owner);
    };
    std::map<std::string, std::unique_ptr<child_process>> replicas;
    replicas[first.replica_id] = start_service(first);
    replicas[second.replica_id] = start_service(second);
    // The first replica took every partition alone; it hands some over to
    // the second (cooperative rebalance) and keeps the others.
    if (!wait_until(
          [&] {
            return leases_of(first.replica_id) > 0
                   && leases_of(second.replica_id) > 0;
          },
          seconds{60})) {
      ADD_FAILURE() << "the two replicas did not share the partitions\n"
                    << replicas[first.replica_id]->stderr_tail();
      return {};
    }
    auto membership_leases_of = [&](const std::string& owner) {
      return probe.rows("SELECT lease_key FROM seatledger.partition_leases "
                        "WHERE consumer_group = "
                        + group + " AND owner = '" + owner
                        + "' AND lease_key LIKE 'membership/%' ORDER BY 1");
    };
    auto positions_sql = [&](const std::vector<std::string>& leases) {
      std::string partitions = "-1";
      for (const auto& lease : leases)
        partitions += "," + lease.substr(lease.find('/') + 1);
      return "SELECT coalesce(sum(next_offset), 0) FROM "
             "seatledger.consumer_positions WHERE consumer_group = "
             + group
             + " AND topic = 'seatledger.membership.v1' AND partition IN ("
             + partitions + ")";
    };
    auto positions_of = [&](const std::vector<std::string>& leases) {
      return probe.scalar(positions_sql(leases));
    };
    // One connection for the wait on the victim: a new one per look takes
    // about as long as the victim takes to commit a batch.
    pqxx::connection watch{db_.conninfo()};
    std::vector<std::string> victim_partitions;
    std::int64_t applied = 0;
    for (std::size_t i = 0; i < s.phases.size(); ++i) {
      const auto& phase = s.phases[i];
      if (i == kill_phase) {
        std::string names[] = {first.replica_id, second.replica_id};
        seen_.victim = names[prefer];
        seen_.survivor = names[1 - prefer];
        if (membership_leases_of(seen_.victim).empty())
          std::swap(seen_.victim, seen_.survivor);
        victim_partitions = membership_leases_of(seen_.victim);
      }
      auto before = positions_of(victim_partitions);
      applied += phase.upstream;
      if (i == kill_phase) {
        // Every commit of upstream events takes 100 ms longer until the
        // kill, so the victim works through its share in some 30 commits
        // and the kill lands in the middle of it even when this process is
        // descheduled for a second (a busy CI machine), most likely while
        // one of its commits is open.
        pqxx::nontransaction tx{watch};
        tx.exec("CREATE FUNCTION public.slow_commit() RETURNS trigger "
                "LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN "
                "PERFORM pg_sleep(0.1); RETURN NULL; END $$");
        tx.exec("CREATE TRIGGER slow_commit BEFORE INSERT ON "
                "seatledger.applied_events FOR EACH STATEMENT "
                "EXECUTE FUNCTION public.slow_commit()");
      }
      kafka_.publish(phase.topic, phase.records);
      if (i == kill_phase) {
        // Killed a quarter of the way through its share of the phase:
        // events and deltas of what it committed are still being
        // published, the next batches are being read, applied and
        // committed, and the rest of its share is left for the survivor.
        std::set<std::int32_t> mine;
        for (const auto& lease : victim_partitions)
          mine.insert(std::stoi(lease.substr(lease.find('/') + 1)));
        seen_.victim_share = std::count_if(
          phase.records.begin(), phase.records.end(), [&](const outgoing& r) {
            return mine.count(kafka::partition_for_key(r.key, 4)) > 0;
          });
        auto committed = [&] {
          pqxx::nontransaction tx{watch};
          return tx.exec1(positions_sql(victim_partitions))[0]
            .as<std::int64_t>();
        };
        if (!wait_until(
              [&] { return committed() >= before + seen_.victim_share / 4; },
              seconds{60}, milliseconds{1})) {
          ADD_FAILURE() << "the victim applied nothing of phase " << i << "\n"
                        << replicas[seen_.victim]->stderr_tail();
          return {};
        }
        auto& victim = replicas[seen_.victim];
        if (sig == SIGSTOP) {
          // Stopped again until it is caught inside a commit: its open
          // transaction holds the rows of the leases it checked.
          auto holding_sql
            = "SELECT count(*) FROM seatledger.partition_leases l JOIN "
              "pg_stat_activity a ON a.backend_xid = l.xmax WHERE "
              "l.consumer_group = "
              + group + " AND l.owner = '" + seen_.victim + "'";
          for (int attempt = 0; attempt < 200; ++attempt) {
            victim->signal(SIGSTOP);
            std::this_thread::sleep_for(milliseconds{30});
            pqxx::nontransaction tx{watch};
            if (tx.exec1(holding_sql)[0].as<std::int64_t>() > 0) {
              seen_.paused_holding_leases = true;
              break;
            }
            victim->signal(SIGCONT);
            std::this_thread::sleep_for(milliseconds{5 + attempt % 20});
          }
        } else {
          victim->signal(SIGKILL);
          EXPECT_EQ(victim->wait(seconds{10}), 128 + SIGKILL);
        }
        auto killed_at = steady_clock::now();
        // The paused victim's open commit holds a lock on the table until
        // the survivor ends it: the trigger goes after the takeover then.
        auto drop_trigger = [&] {
          pqxx::nontransaction{watch}.exec(
            "DROP TRIGGER slow_commit ON seatledger.applied_events");
        };
        if (sig != SIGSTOP)
          drop_trigger();
        seen_.killed_mid_stream = !probe.settled(applied);
        seen_.victim_membership_leases = membership_leases_of(seen_.victim);
        seen_.victim_positions_at_kill = positions_of(victim_partitions);
        seen_.victim_positions_before = before;
        seen_.pending_at_kill = probe.scalar(
          "SELECT (SELECT count(*) FROM seatledger.outbox o JOIN "
          "seatledger.partition_leases l USING (lease_key) WHERE "
          "o.published_at IS NULL AND l.consumer_group = "
          + group + " AND l.owner = '" + seen_.victim
          + "') + (SELECT coalesce(sum(record_count), 0) FROM "
            "seatledger.outbox_chunks o JOIN seatledger.partition_leases l "
            "USING (lease_key) WHERE o.published_at IS NULL AND "
            "l.consumer_group = "
          + group + " AND l.owner = '" + seen_.victim + "')");
        auto& survivor = replicas[seen_.survivor];
        auto all = [&] {
          return leases_of(seen_.survivor)
                 == probe.scalar(
                   "SELECT count(*) FROM seatledger.partition_leases WHERE "
                   "consumer_group = "
                   + group);
        };
        if (wait_until(all, seconds{120}, milliseconds{20}))
          seen_.takeover
            = duration_cast<milliseconds>(steady_clock::now() - killed_at);
        else
          ADD_FAILURE() << "the survivor did not take the partitions over\n"
                        << survivor->stderr_tail();
        if (sig == SIGSTOP) {
          if (!seen_.takeover) {
            victim->signal(SIGCONT);
            keep_logs(replicas);
            return {};
          }
          drop_trigger();
        }
      }
      auto settled = wait_until([&] { return probe.settled(applied); },
                                seconds{180});
      if (!settled) {
        ADD_FAILURE() << "phase " << i << " not applied; applied events: "
                      << probe.applied_events() << " of " << applied;
        if (sig == SIGSTOP && i == kill_phase)
          replicas[seen_.victim]->signal(SIGCONT);
        keep_logs(replicas);
        return {};
      }
      // The survivor finished the phase alone; the paused victim comes
      // back for the rest of the stream.
      if (sig == SIGSTOP && i == kill_phase)
        replicas[seen_.victim]->signal(SIGCONT);
    }
    seen_.victim_positions_at_end = positions_of(victim_partitions);
    seen_.leases = probe.scalar(
      "SELECT count(*) FROM seatledger.partition_leases WHERE consumer_group "
      "= "
      + group);
    seen_.survivor_leases = leases_of(seen_.survivor);
    auto& survivor = replicas[seen_.survivor];
    survivor->signal(SIGTERM);
    if (sig == SIGSTOP) {
      auto& victim = replicas[seen_.victim];
      victim->signal(SIGTERM);
      EXPECT_EQ(victim->wait(seconds{60}), 0) << victim->stderr_tail();
      seen_.victim_log = victim->stderr_tail(1 << 24);
    }
    EXPECT_EQ(survivor->wait(seconds{60}), 0) << survivor->stderr_tail();
    seen_.survivor_log = survivor->stderr_tail(1 << 24);
    if (::testing::Test::HasFailure())
      keep_logs(replicas);
    return collect(db_.conninfo(), kafka_);
  }

  const observations& seen() const {
    return seen_;
  }

private:
  /// A failed run's logs outlive its child processes (which delete them).
  static void
  keep_logs(const std::map<std::string, std::unique_ptr<child_process>>& all) {
    for (const auto& [name, child] : all) {
      auto path = "/tmp/" + unique_name("seatledger-takeover-" + name) + ".log";
      std::ofstream{path} << child->stderr_tail(std::size_t{1} << 30);
      std::cerr << name << "'s log: " << path << "\n";
    }
  }

  scratch_database db_;
  kafka_io kafka_;
  std::string signing_key_;
  observations seen_;
};

TEST_F(crash, one_of_two_replicas_killed_mid_stream_the_other_takes_over) {
  auto s = crash_scenario();
  auto reference = uninterrupted(s);
  ASSERT_FALSE(reference.ledger.empty());
  // The first replica killed in the first membership phase (the survivor
  // finishes that phase, the commands and the second membership phase
  // alone), then, in a run of its own, the one that joined it, in the
  // second membership phase.
  for (auto [phase, prefer] : {std::pair<std::size_t, int>{2, 0}, {4, 1}}) {
    SCOPED_TRACE("killed during phase " + std::to_string(phase));
    auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
    ASSERT_TRUE(cluster);
    takeover_run killed{(*cluster)->bootstrap_servers(), signing_key_};
    auto got = killed.execute(s, phase, prefer, short_session);
    ASSERT_FALSE(got.ledger.empty());
    const auto& seen = killed.seen();
    EXPECT_FALSE(seen.victim_membership_leases.empty())
      << seen.victim << " held no membership partition when it was killed";
    EXPECT_TRUE(seen.killed_mid_stream)
      << "the kill landed after everything was applied";
    EXPECT_GT(seen.victim_positions_at_end, seen.victim_positions_at_kill)
      << "nothing was left on the killed replica's partitions";
    ASSERT_TRUE(seen.takeover);
    std::cout << "phase " << phase << ": " << seen.victim << " killed holding "
              << ::testing::PrintToString(seen.victim_membership_leases)
              << " having committed "
              << seen.victim_positions_at_kill - seen.victim_positions_before
              << " of its " << seen.victim_share
              << " records of the phase, with " << seen.pending_at_kill
              << " events and deltas unpublished; " << seen.survivor
              << " held every lease " << seen.takeover->count()
              << " ms later\n";
    // Three leased stages (membership, commands with their deltas,
    // catalog) of four partitions each, all the survivor's.
    EXPECT_EQ(seen.leases, 12);
    EXPECT_EQ(seen.survivor_leases, seen.leases);
    // Nobody else wrote: the survivor's commits were never fenced nor
    // failed (the re-read that repairs a failed commit would hide a bug
    // from the comparison below).
    for (const auto* trace : {"fenced", "batch not committed"})
      EXPECT_EQ(seen.survivor_log.find(trace), std::string::npos)
        << trace << " in the survivor's log";
    expect_same(reference, got); // conflicting event copies included
  }
}

TEST_F(crash, a_replica_paused_inside_a_commit_is_taken_over_and_fenced) {
  // A replica paused (SIGSTOP: a frozen node, a long stall) while one of
  // its commits is open keeps its leases' rows locked; its connection
  // stays up (the kernel answers for a stopped process). Kafka gives its
  // partitions to the other once its session times out; that one must not
  // wait for the paused commit to end, which it never does by itself.
  auto s = crash_scenario();
  auto reference = uninterrupted(s);
  ASSERT_FALSE(reference.ledger.empty());
  auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
  ASSERT_TRUE(cluster);
  takeover_run paused{(*cluster)->bootstrap_servers(), signing_key_};
  auto got = paused.execute(s, 2, 0, short_session, SIGSTOP);
  ASSERT_FALSE(got.ledger.empty());
  const auto& seen = paused.seen();
  ASSERT_TRUE(seen.paused_holding_leases)
    << "the pause never landed inside a commit";
  ASSERT_TRUE(seen.takeover);
  std::cout << seen.victim << " paused inside a commit holding "
            << ::testing::PrintToString(seen.victim_membership_leases) << "; "
            << seen.survivor << " held every lease " << seen.takeover->count()
            << " ms later\n";
  EXPECT_FALSE(seen.victim_membership_leases.empty())
    << seen.victim << " held no membership partition when it was paused";
  EXPECT_GT(seen.victim_positions_at_end, seen.victim_positions_at_kill)
    << "nothing was left on the paused replica's partitions";
  EXPECT_EQ(seen.leases, 12);
  // The survivor took over by the rules: none of its commits was fenced or
  // failed.
  for (const auto* trace : {"fenced", "batch not committed"})
    EXPECT_EQ(seen.survivor_log.find(trace), std::string::npos)
      << trace << " in the survivor's log";
  EXPECT_NE(seen.survivor_log.find("ended a stalled session holding leases"),
            std::string::npos)
    << "the survivor did not say whose session it ended";
  // Its commit met the end of its session once it resumed.
  bool ended_commit = false;
  std::istringstream lines{seen.victim_log};
  for (std::string line; std::getline(lines, line);)
    ended_commit
      = ended_commit
        || (line.find("batch not committed") != std::string::npos
            && line.find("commit: connection lost") != std::string::npos);
  EXPECT_TRUE(ended_commit)
    << "the paused commit did not fail on its ended connection";
  // What the paused commit held was written once, by the survivor.
  expect_same(reference, got);
}

} // namespace
} // namespace seatledger::test
