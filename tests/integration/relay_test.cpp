// The outbox relay actor against a real PostgreSQL and librdkafka's mock
// cluster.

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/relay.hpp"
#include "actors/service_status.hpp"
#include "adapters/kafka/kafka.hpp"
#include "messages/actor_messages.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"
#include "pg_fixture.hpp"
#include "service_harness.hpp"

using namespace seatledger;
using namespace seatledger::test;
using namespace std::chrono;

namespace {

constexpr auto topic = "relay.test.v1";
constexpr auto lease_key = "subscriptions/0";

/// Waits up to `limit` for `done()`.
template<class Predicate>
bool eventually(Predicate done, milliseconds limit) {
  auto until = steady_clock::now() + limit;
  while (!done()) {
    if (steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(milliseconds{20});
  }
  return true;
}

class relay_test : public pg_test {
protected:
  /// Rows `{"n":i}` for seven keys, committed under the lease.
  void commit_outbox_rows(int rows) {
    auto leases = value_or_fail(
      store().acquire_leases("seatledger", {lease_key}, "replica-a"));
    ASSERT_EQ(leases.size(), 1u);
    storage::storage_batch batch;
    batch.consumer_group = "seatledger";
    batch.leases = leases;
    for (int i = 0; i < rows; ++i)
      batch.outbox.push_back({"event-" + std::to_string(i),
                              topic,
                              "key-" + std::to_string(i % 7),
                              R"({"n":)" + std::to_string(i) + "}",
                              {},
                              lease_key});
    ASSERT_OK(store().commit(batch));
  }

  /// Whether the relay marked every row published within `limit`.
  bool all_published(milliseconds limit) {
    return eventually(
      [&] { return value_or_fail(store().unpublished_count()) == 0; }, limit);
  }

  /// The topic (one partition) holds each of `rows` rows once, in the
  /// outbox's order.
  void expect_each_row_once_in_order(const std::string& bootstrap, int rows) {
    test::kafka_io io{bootstrap};
    auto records = io.read_all(topic);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i)
      EXPECT_EQ(records[i].value, R"({"n":)" + std::to_string(i) + "}") << i;
  }
};

TEST_F(relay_test, its_marks_do_not_wait_for_the_wal_flush) {
  // A mark lost in a crash of PostgreSQL only publishes its chunk again,
  // with the same ids; the service's other sessions keep waiting.
  storage::pg_store relay_store{conninfo(), actors::relay_store_options()};
  auto relay_setting = relay_store.setting("synchronous_commit");
  ASSERT_TRUE(relay_setting) << describe(relay_setting.error());
  EXPECT_EQ(*relay_setting, "off");
  auto name = relay_store.setting("application_name");
  ASSERT_TRUE(name) << describe(name.error());
  EXPECT_EQ(*name, "seatledger-relay");
  auto service_setting = store().setting("synchronous_commit");
  ASSERT_TRUE(service_setting) << describe(service_setting.error());
  EXPECT_EQ(*service_setting, "on");
}

// A round publishes at most 5,000 rows and a full one is followed by
// another at once. The relay used to stop its timer in that case, and with
// it the housekeeping: the outbox depth it reports stayed at what it was
// before the burst, and published rows were never purged again.
TEST_F(relay_test, housekeeping_goes_on_after_a_full_round) {
  constexpr int rows = 6'000;
  ASSERT_NO_FATAL_FAILURE(commit_outbox_rows(rows));
  auto cluster = value_or_fail(kafka::mock_cluster::start(1, {topic}, 1));
  kafka::client_config kafka_config;
  kafka_config.bootstrap_servers = cluster->bootstrap_servers();
  auto status = std::make_shared<actors::service_status>();
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto relay = actors::spawn_relay(system, conninfo(), kafka_config, status);
  // Its first housekeeping sees the rows waiting; it holds no lease yet.
  ASSERT_TRUE(
    eventually([&] { return status->outbox_depth == rows; }, seconds{10}))
    << status->outbox_depth;
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  ASSERT_TRUE(all_published(seconds{60}));
  EXPECT_EQ(status->published_events, rows);
  // The depth is checked every 2 s.
  EXPECT_TRUE(
    eventually([&] { return status->outbox_depth == 0; }, seconds{10}))
    << "the relay reports " << status->outbox_depth << " rows waiting";
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
}

// Kafka away for longer than the relay waits at a time: its round used to
// give up after a minute and send the same events again while librdkafka
// still held the first ones (copies behind them), and its producer gave
// events up after message.timeout.ms, leaving gaps in a partition that the
// next round filled after later events. Now the round waits until Kafka
// has answered for every event, and the producer never times one out,
// whatever the operator set.
TEST_F(relay_test, an_outage_longer_than_its_wait_publishes_each_event_once) {
  constexpr int rows = 300;
  ASSERT_NO_FATAL_FAILURE(commit_outbox_rows(rows));
  auto cluster = value_or_fail(kafka::mock_cluster::start(1, {topic}, 1));
  cluster->set_brokers_down(true);
  kafka::client_config kafka_config;
  kafka_config.bootstrap_servers = cluster->bootstrap_servers();
  kafka_config.properties["message.timeout.ms"] = "1000";
  kafka_config.properties["delivery.timeout.ms"] = "1000";
  auto status = std::make_shared<actors::service_status>();
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto relay = actors::spawn_relay(system, conninfo(), kafka_config, status);
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  // Longer than the relay's 5 s wait, and than the operator's timeout.
  std::this_thread::sleep_for(seconds{8});
  EXPECT_EQ(status->published_events, 0);
  cluster->set_brokers_down(false);
  ASSERT_TRUE(all_published(seconds{60}));
  EXPECT_EQ(status->published_events, rows);
  EXPECT_EQ(status->undelivered_events, 0) << "events timed out";
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
  expect_each_row_once_in_order(cluster->bootstrap_servers(), rows);
}

// An idempotent producer whose sequence a broker no longer accepts raises a
// fatal error, after which librdkafka refuses every record for ever: the
// relay retried its round every 500 ms and published nothing more until the
// process restarted. It now replaces its producer and publishes from the
// first event not marked.
TEST_F(relay_test, a_fatal_producer_error_does_not_stop_publishing) {
  constexpr int rows = 300;
  ASSERT_NO_FATAL_FAILURE(commit_outbox_rows(rows));
  auto cluster = value_or_fail(kafka::mock_cluster::start(1, {topic}, 1));
  cluster->desynchronize_next_produce();
  kafka::client_config kafka_config;
  kafka_config.bootstrap_servers = cluster->bootstrap_servers();
  auto status = std::make_shared<actors::service_status>();
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto relay = actors::spawn_relay(system, conninfo(), kafka_config, status);
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  EXPECT_TRUE(all_published(seconds{30}))
    << status->published_events << " published";
  EXPECT_EQ(status->producer_fatal_errors, 1);
  EXPECT_EQ(status->published_events, rows);
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
  // The failed request wrote nothing.
  expect_each_row_once_in_order(cluster->bootstrap_servers(), rows);
}

} // namespace
