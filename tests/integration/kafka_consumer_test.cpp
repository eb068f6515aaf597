// The Kafka consumer adapter against librdkafka's mock cluster: a stored
// position that retention has already removed from the log is reported as a
// gap and consumption resumes from the earliest record still there (the
// mock cluster keeps about 5 MB per partition). librdkafka refuses to seek
// a partition in that state; before the fix the partition stalled for good.
// Null keys, values and header values are told from empty ones, produced
// and consumed. A member given no partition is told so.

#include <chrono>
#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <vector>

#include "adapters/kafka/kafka.hpp"
#include "messages/service_error.hpp"
#include "service_harness.hpp"

using namespace seatledger;
using namespace std::chrono;

namespace {

constexpr const char* topic = "gap.test.v1";
constexpr int records_produced = 100;
constexpr std::size_t record_size = 100 * 1024; // 10 MB in all

/// Fills one partition with twice what the mock cluster keeps.
std::string overfilled_cluster(std::unique_ptr<kafka::mock_cluster>& holder) {
  auto cluster = kafka::mock_cluster::start(1, {topic}, 1);
  if (!cluster)
    return {};
  holder = std::move(*cluster);
  kafka::client_config cfg;
  cfg.bootstrap_servers = holder->bootstrap_servers();
  auto producer = kafka::producer::make(cfg);
  if (!producer)
    return {};
  int delivered = 0;
  std::string value(record_size, 'x');
  for (int i = 0; i < records_produced; ++i)
    if (!(*producer)->produce(
          topic, "key", value, {},
          [&](kafka::delivery_status s, const std::string&) {
            delivered += s == kafka::delivery_status::delivered;
          }))
      return {};
  if (!(*producer)->flush(30'000) || delivered != records_produced)
    return {};
  return cfg.bootstrap_servers;
}

/// Polls until the last record arrived (or 30 s passed).
void consume_to_the_end(kafka::consumer& consumer,
                        std::vector<std::int64_t>& offsets,
                        std::vector<kafka::consumer::gap>& gaps) {
  auto deadline = steady_clock::now() + seconds{30};
  while (steady_clock::now() < deadline
         && (offsets.empty() || offsets.back() < records_produced - 1)) {
    for (auto& r : consumer.poll(100, 100))
      offsets.push_back(r.offset);
    for (auto& g : consumer.take_gaps())
      gaps.push_back(g);
  }
}

void expect_resumed_after_one_gap(
  const std::vector<std::int64_t>& offsets,
  const std::vector<kafka::consumer::gap>& gaps) {
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps.front().requested, 0);
  ASSERT_FALSE(offsets.empty()) << "nothing consumed after the gap";
  EXPECT_GT(offsets.front(), 0) << "the mock cluster kept the whole log";
  // The gap says what was skipped: reading resumed at the earliest offset.
  EXPECT_EQ(gaps.front().earliest, offsets.front());
  EXPECT_EQ(offsets.back(), records_produced - 1);
  for (std::size_t i = 1; i < offsets.size(); ++i)
    ASSERT_EQ(offsets[i], offsets[i - 1] + 1) << "at " << i;
}

} // namespace

TEST(kafka_consumer, assigned_position_removed_by_retention_is_a_gap) {
  std::unique_ptr<kafka::mock_cluster> cluster;
  kafka::client_config cfg;
  cfg.bootstrap_servers = overfilled_cluster(cluster);
  ASSERT_FALSE(cfg.bootstrap_servers.empty());
  auto consumer = kafka::consumer::assign_only(cfg);
  ASSERT_TRUE(consumer) << describe(consumer.error());
  ASSERT_TRUE((*consumer)->assign({{{topic, 0}, 0}}));
  std::vector<std::int64_t> offsets;
  std::vector<kafka::consumer::gap> gaps;
  consume_to_the_end(**consumer, offsets, gaps);
  expect_resumed_after_one_gap(offsets, gaps);
}

TEST(kafka_consumer, group_member_position_removed_by_retention_is_a_gap) {
  std::unique_ptr<kafka::mock_cluster> cluster;
  kafka::client_config cfg;
  cfg.bootstrap_servers = overfilled_cluster(cluster);
  ASSERT_FALSE(cfg.bootstrap_servers.empty());
  test::starts_from_zero listener;
  auto consumer = kafka::consumer::group_member(cfg, "gap-test-group",
                                                &listener);
  ASSERT_TRUE(consumer) << describe(consumer.error());
  ASSERT_TRUE((*consumer)->subscribe({topic}));
  std::vector<std::int64_t> offsets;
  std::vector<kafka::consumer::gap> gaps;
  consume_to_the_end(**consumer, offsets, gaps);
  expect_resumed_after_one_gap(offsets, gaps);
  (*consumer)->close();
}

// Offset copies made while the group is not steady (here: before the first
// join has finished) are held, and a later call without positions commits
// them once the group is steady (offset_copies.hpp): the coordinator makes
// that call when it is idle, so a rebalance that ends after the last batch
// still leaves lag tools the right offsets.
TEST(kafka_consumer, offset_copies_held_before_the_join_are_committed_after) {
  constexpr const char* copies_topic = "copies.test.v1";
  constexpr const char* group = "copies-test-group";
  auto cluster = kafka::mock_cluster::start(1, {copies_topic}, 1);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  kafka::client_config cfg;
  cfg.bootstrap_servers = (*cluster)->bootstrap_servers();
  test::starts_from_zero listener;
  auto consumer = kafka::consumer::group_member(cfg, group, &listener);
  ASSERT_TRUE(consumer) << describe(consumer.error());
  ASSERT_TRUE((*consumer)->subscribe({copies_topic}));
  const kafka::topic_partition tp{copies_topic, 0};
  (*consumer)->commit_async({{tp, 42}});
  auto committed = [&] {
    auto offsets = kafka::committed_offsets(cfg, group, {tp}, 5'000);
    return offsets && offsets->size() == 1 ? offsets->front().next_offset : -2;
  };
  // Until the member is assigned, nothing reaches Kafka.
  auto deadline = steady_clock::now() + seconds{30};
  while (steady_clock::now() < deadline && (*consumer)->assignment().empty())
    (*consumer)->poll(10, 100);
  ASSERT_FALSE((*consumer)->assignment().empty()) << "never assigned";
  EXPECT_EQ(committed(), -1);
  // Idle polls with an empty copy, as the coordinator's.
  std::int64_t seen = -1;
  deadline = steady_clock::now() + seconds{30};
  while (steady_clock::now() < deadline && seen != 42) {
    (*consumer)->poll(10, 100);
    (*consumer)->commit_async({});
    seen = committed();
  }
  EXPECT_EQ(seen, 42);
  (*consumer)->close();
}

// A member the group gives no partition (more replicas than partitions)
// still hears that the group assigned it: an empty list. The service turns
// ready on that call, so without it such a replica would never be ready.
TEST(kafka_consumer, a_member_given_no_partition_is_told_so) {
  constexpr const char* one_partition = "empty.assignment.test.v1";
  constexpr const char* group = "empty-assignment-group";
  auto cluster = kafka::mock_cluster::start(1, {one_partition}, 1);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  kafka::client_config cfg;
  cfg.bootstrap_servers = (*cluster)->bootstrap_servers();
  struct counting : test::starts_from_zero {
    int calls = 0;
    std::size_t last_size = 0;
    std::vector<kafka::position> on_assigned(
      const std::vector<kafka::topic_partition>& partitions) override {
      ++calls;
      last_size = partitions.size();
      return starts_from_zero::on_assigned(partitions);
    }
  };
  counting first_listener;
  counting second_listener;
  auto first = kafka::consumer::group_member(cfg, group, &first_listener);
  ASSERT_TRUE(first) << describe(first.error());
  ASSERT_TRUE((*first)->subscribe({one_partition}));
  ASSERT_TRUE(test::wait_until(
    [&] {
      (*first)->poll(10, 50);
      return !(*first)->assignment().empty();
    },
    seconds{30}, milliseconds{1}))
    << "the first member never got the partition";
  auto second = kafka::consumer::group_member(cfg, group, &second_listener);
  ASSERT_TRUE(second) << describe(second.error());
  ASSERT_TRUE((*second)->subscribe({one_partition}));
  EXPECT_TRUE(test::wait_until(
    [&] {
      (*first)->poll(10, 20);
      (*second)->poll(10, 20);
      return second_listener.calls > 0;
    },
    seconds{30}, milliseconds{1}))
    << "the second member was never told its (empty) assignment";
  EXPECT_EQ(second_listener.last_size, 0u);
  EXPECT_TRUE((*second)->assignment().empty());
  EXPECT_EQ((*first)->assignment().size(), 1u);
  (*second)->close();
  (*first)->close();
}

// Kafka tells a null key or value from an empty one, and so must the
// adapter both ways: dead letters copy which it was. An empty view whose
// data() is null is still empty, not null.
TEST(kafka_consumer, null_and_empty_keys_and_values_are_told_apart) {
  auto cluster = kafka::mock_cluster::start(1, {"nulls.test.v1"}, 1);
  ASSERT_TRUE(cluster);
  kafka::client_config cfg;
  cfg.bootstrap_servers = (*cluster)->bootstrap_servers();
  auto producer = kafka::producer::make(cfg);
  ASSERT_TRUE(producer);
  using bytes = std::optional<std::string_view>;
  const std::vector<std::pair<bytes, bytes>> sent{{std::nullopt, std::nullopt},
                                                  {bytes{""}, bytes{""}},
                                                  {bytes{std::string_view{}},
                                                   bytes{std::string_view{}}},
                                                  {bytes{"k"}, std::nullopt},
                                                  {std::nullopt, bytes{"v"}}};
  int delivered = 0;
  for (const auto& [key, value] : sent)
    ASSERT_TRUE((*producer)->produce(
      "nulls.test.v1", key, value, {},
      [&](kafka::delivery_status s, const std::string&) {
        delivered += s == kafka::delivery_status::delivered;
      }));
  ASSERT_TRUE((*producer)->flush(30'000));
  ASSERT_EQ(delivered, static_cast<int>(sent.size()));
  test::kafka_io io{cfg.bootstrap_servers};
  auto got = io.read_all("nulls.test.v1");
  ASSERT_EQ(got.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const auto& [key, value] = sent[i];
    EXPECT_EQ(got[i].null_key, !key) << i;
    EXPECT_EQ(got[i].key, key.value_or("")) << i;
    EXPECT_EQ(got[i].null_value, !value) << i;
    EXPECT_EQ(got[i].value, value.value_or("")) << i;
  }
}

// The same for header values: a dead letter copies its record's headers,
// and Kafka tells a null header value from an empty one (librdkafka's null
// pointer, Java's `Header.value() == null`).
TEST(kafka_consumer, null_and_empty_header_values_are_told_apart) {
  auto cluster = kafka::mock_cluster::start(1, {"null-headers.test.v1"}, 1);
  ASSERT_TRUE(cluster);
  kafka::client_config cfg;
  cfg.bootstrap_servers = (*cluster)->bootstrap_servers();
  auto producer = kafka::producer::make(cfg);
  ASSERT_TRUE(producer);
  const kafka::record_headers sent{{"x-null", std::nullopt},
                                   {"x-empty", ""},
                                   {"x-bytes", std::string("a\0b", 3)},
                                   {"x-null", "again, with bytes"},
                                   {"", std::nullopt}};
  int delivered = 0;
  ASSERT_TRUE((*producer)->produce(
    "null-headers.test.v1", std::string_view{"k"}, std::string_view{"v"}, sent,
    [&](kafka::delivery_status s, const std::string&) {
      delivered += s == kafka::delivery_status::delivered;
    }));
  ASSERT_TRUE((*producer)->flush(30'000));
  ASSERT_EQ(delivered, 1);
  test::kafka_io io{cfg.bootstrap_servers};
  auto got = io.read_all("null-headers.test.v1");
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].headers.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[0].headers[i].first, sent[i].first) << i;
    EXPECT_EQ(got[0].headers[i].second.has_value(), sent[i].second.has_value())
      << i;
    EXPECT_EQ(got[0].headers[i].second, sent[i].second) << i;
  }
}
