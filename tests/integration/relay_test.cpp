// The outbox relay actor against a real PostgreSQL and librdkafka's mock
// cluster.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
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

  /// A one-broker cluster with the topic, one partition; it outlives the
  /// relay.
  kafka::mock_cluster& start_cluster() {
    cluster_ = value_or_fail(kafka::mock_cluster::start(1, {topic}, 1));
    return *cluster_;
  }

  /// Starts the relay against the cluster, with the operator's
  /// `properties`.
  caf::actor start_relay(std::map<std::string, std::string> properties = {}) {
    kafka::client_config kafka_config{cluster_->bootstrap_servers(),
                                      std::move(properties)};
    system_ = std::make_unique<caf::actor_system>(system_config_);
    relay_ = actors::spawn_relay(*system_, conninfo(), kafka_config, status);
    return relay_;
  }

  /// Ends the relay (the actor system waits for it) before its database.
  void TearDown() override {
    if (relay_)
      caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
    relay_ = nullptr;
    system_.reset();
    cluster_.reset();
    pg_test::TearDown();
  }

  std::shared_ptr<actors::service_status> status
    = std::make_shared<actors::service_status>();

  /// Whether the relay marked every row published within `limit`.
  bool all_published(milliseconds limit) {
    return eventually(
      [&] { return value_or_fail(store().unpublished_count()) == 0; }, limit);
  }

  /// The topic holds each of `rows` rows once, in the outbox's order.
  void expect_each_row_once_in_order(int rows) {
    test::kafka_io io{cluster_->bootstrap_servers()};
    auto records = io.read_all(topic);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i)
      EXPECT_EQ(records[i].value, R"({"n":)" + std::to_string(i) + "}") << i;
  }

private:
  std::unique_ptr<kafka::mock_cluster> cluster_;
  caf::actor_system_config system_config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor relay_;
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
  start_cluster();
  auto relay = start_relay();
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
  auto& cluster = start_cluster();
  cluster.set_brokers_down(true);
  auto relay = start_relay(
    {{"message.timeout.ms", "1000"}, {"delivery.timeout.ms", "1000"}});
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  // Longer than the relay's 5 s wait, and than the operator's timeout.
  std::this_thread::sleep_for(seconds{8});
  EXPECT_EQ(status->published_events, 0);
  cluster.set_brokers_down(false);
  ASSERT_TRUE(all_published(seconds{60}));
  EXPECT_EQ(status->published_events, rows);
  EXPECT_EQ(status->undelivered_events, 0) << "events timed out";
  expect_each_row_once_in_order(rows);
}

// An idempotent producer whose sequence a broker no longer accepts raises a
// fatal error, after which librdkafka refuses every record for ever: the
// relay retried its round every 500 ms and published nothing more until the
// process restarted. It now replaces its producer and publishes from the
// first event not marked.
TEST_F(relay_test, a_fatal_producer_error_does_not_stop_publishing) {
  constexpr int rows = 300;
  ASSERT_NO_FATAL_FAILURE(commit_outbox_rows(rows));
  start_cluster().desynchronize_next_produce();
  auto relay = start_relay();
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  EXPECT_TRUE(all_published(seconds{30}))
    << status->published_events << " published";
  EXPECT_EQ(status->producer_fatal_errors, 1);
  EXPECT_EQ(status->published_events, rows);
  // The failed request wrote nothing.
  expect_each_row_once_in_order(rows);
}

// The drain on SIGTERM publishes what is pending before the replica leaves
// the group. A round with a failed delivery ended it at once, with most of
// its 20 s left: the events waited for the partitions' next owner.
TEST_F(relay_test, a_failed_round_does_not_end_the_drain) {
  constexpr int rows = 300;
  ASSERT_NO_FATAL_FAILURE(commit_outbox_rows(rows));
  // Two: should the round the lease set wakes run before the drain (it is
  // queued behind it unless the relay takes the leases first), the drain's
  // first round fails too.
  start_cluster().deny_produce_requests(2);
  auto relay = start_relay();
  caf::anon_send(relay, atoms::leases_atom_v, messages::lease_set{{lease_key}});
  caf::scoped_actor self{relay.home_system()};
  bool drained = false;
  self->request(relay, seconds{30}, atoms::drain_atom_v)
    .receive([&](caf::ok_atom) { drained = true; },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  ASSERT_TRUE(drained);
  EXPECT_GE(status->undelivered_events, rows);
  EXPECT_EQ(status->published_events, rows);
  EXPECT_TRUE(all_published(seconds{30}));
  expect_each_row_once_in_order(rows);
}
} // namespace
