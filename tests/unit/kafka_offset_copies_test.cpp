// Offset copies wait while the consumer group rebalances.

#include <gtest/gtest.h>

#include "adapters/kafka/offset_copies.hpp"

namespace seatledger::kafka {
namespace {

using storage::position;
using storage::topic_partition;

const topic_partition membership_0{"seatledger.membership.v1", 0};
const topic_partition membership_1{"seatledger.membership.v1", 1};
const topic_partition deltas_1{"seatledger.internal.seat-deltas.v1", 1};

std::map<topic_partition, std::int64_t>
as_map(const std::vector<position>& positions) {
  std::map<topic_partition, std::int64_t> result;
  for (const auto& p : positions)
    EXPECT_TRUE(result.emplace(p.tp, p.next_offset).second)
      << "partition offered twice";
  return result;
}

TEST(kafka_offset_copies, reads_the_state_a_join_state_line_enters) {
  // As librdkafka 2.0.2 words it in its cgrp debug context.
  EXPECT_EQ(join_state_entered("CGRPJOINSTATE",
                               "[thrd:main]: Group \"seatledger-scaling\" "
                               "changed join state steady -> init (state up)"),
            std::optional<std::string_view>{"init"});
  EXPECT_EQ(join_state_entered("CGRPJOINSTATE",
                               "[thrd:main]: Group \"g\" changed join state "
                               "wait-incr-unassign-to-complete -> steady "
                               "(state up)"),
            std::optional<std::string_view>{"steady"});
  EXPECT_EQ(join_state_entered("CGRPJOINSTATE",
                               "Group \"g\" changed join state init -> "
                               "wait-join"),
            std::optional<std::string_view>{"wait-join"});
  EXPECT_FALSE(join_state_entered("CGRPSTATE", "Group \"g\" changed state "
                                               "wait-coord -> up"));
  EXPECT_FALSE(join_state_entered("CGRPJOINSTATE", "something else"));
  EXPECT_FALSE(join_state_entered("CGRPJOINSTATE", "changed join state x -> "));
}

TEST(kafka_offset_copies, pass_straight_through_while_the_group_is_steady) {
  offset_copies copies;
  copies.on_join_state("steady");
  EXPECT_EQ(as_map(copies.offer({{membership_0, 10}, {deltas_1, 4}})),
            (std::map<topic_partition, std::int64_t>{{membership_0, 10},
                                                     {deltas_1, 4}}));
  EXPECT_EQ(copies.held(), 0u);
}

TEST(kafka_offset_copies, wait_from_the_first_state_change_until_steady) {
  offset_copies copies;
  // Before the first join finished.
  EXPECT_TRUE(copies.offer({{membership_0, 5}}).empty());
  copies.on_join_state("steady");
  EXPECT_EQ(as_map(copies.offer({})),
            (std::map<topic_partition, std::int64_t>{{membership_0, 5}}));
  // A member joins: the heartbeat learns of it and librdkafka rejoins.
  copies.on_join_state("init");
  EXPECT_TRUE(copies.offer({{membership_0, 10}}).empty());
  copies.on_join_state("wait-join");
  EXPECT_TRUE(copies.offer({{membership_0, 20}, {membership_1, 7}}).empty());
  EXPECT_EQ(copies.held(), 2u);
  copies.on_join_state("steady");
  // The latest position of each partition, once.
  EXPECT_EQ(as_map(copies.offer({{membership_1, 9}})),
            (std::map<topic_partition, std::int64_t>{{membership_0, 20},
                                                     {membership_1, 9}}));
  EXPECT_TRUE(copies.offer({}).empty());
}

TEST(kafka_offset_copies, a_rebalance_callback_holds_them_until_steady_again) {
  offset_copies copies;
  copies.on_join_state("steady");
  // The revocation callback commits what is in flight; its copy waits.
  copies.on_rebalance();
  EXPECT_TRUE(copies.offer({{membership_0, 30}, {membership_1, 12}}).empty());
  // Revoked partitions are not copied later: the new owner copies them.
  copies.forget({membership_0});
  copies.on_join_state("steady");
  EXPECT_EQ(as_map(copies.offer({})),
            (std::map<topic_partition, std::int64_t>{{membership_1, 12}}));
}

TEST(kafka_offset_copies, the_last_copies_go_again_while_the_group_is_steady) {
  offset_copies copies;
  copies.on_join_state("steady");
  copies.offer({{membership_0, 10}, {deltas_1, 4}});
  copies.offer({{membership_0, 12}});
  // librdkafka may have dropped either commit: the latest go again, and
  // again on the next call.
  auto latest = std::map<topic_partition, std::int64_t>{{membership_0, 12},
                                                        {deltas_1, 4}};
  EXPECT_EQ(as_map(copies.offer_again()), latest);
  EXPECT_EQ(as_map(copies.offer_again()), latest);
  EXPECT_EQ(copies.held(), 0u);
}

TEST(kafka_offset_copies, none_go_again_while_the_group_rebalances) {
  offset_copies copies;
  copies.on_join_state("steady");
  copies.offer({{membership_0, 10}});
  copies.on_join_state("wait-join");
  EXPECT_TRUE(copies.offer_again().empty());
  copies.offer({{membership_1, 3}});
  copies.on_join_state("steady");
  EXPECT_EQ(as_map(copies.offer_again()),
            (std::map<topic_partition, std::int64_t>{{membership_0, 10},
                                                     {membership_1, 3}}));
}

TEST(kafka_offset_copies, forgotten_partitions_never_go_again) {
  offset_copies copies;
  copies.on_join_state("steady");
  copies.offer({{membership_0, 10}, {membership_1, 5}, {deltas_1, 4}});
  // Revoked, or fenced: another replica copies these partitions now.
  copies.forget({membership_1, deltas_1});
  EXPECT_EQ(as_map(copies.offer_again()),
            (std::map<topic_partition, std::int64_t>{{membership_0, 10}}));
  // Held copies of a forgotten partition do not go either.
  copies.on_rebalance();
  copies.offer({{membership_1, 8}});
  copies.forget({membership_1});
  copies.on_join_state("steady");
  EXPECT_TRUE(copies.offer({}).empty());
  EXPECT_EQ(as_map(copies.offer_again()),
            (std::map<topic_partition, std::int64_t>{{membership_0, 10}}));
}

} // namespace
} // namespace seatledger::kafka
