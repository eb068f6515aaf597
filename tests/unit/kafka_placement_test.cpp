#include <gtest/gtest.h>

#include "adapters/kafka/placement.hpp"

namespace seatledger::kafka {
namespace {

const placement_topics topics{"members", "commands", "deltas"};

TEST(kafka_placement, co_partitioned_topics_place_records) {
  EXPECT_EQ(placement_problem(
              topics,
              {{"members", 3}, {"commands", 8}, {"deltas", 8}, {"catalog", 1}}),
            "");
}

TEST(kafka_placement, a_missing_topic_places_nothing) {
  EXPECT_EQ(placement_problem(topics, {{"members", 3}, {"commands", 8}}),
            "topic deltas does not exist");
  EXPECT_EQ(placement_problem(topics,
                              {{"members", 0}, {"commands", 8}, {"deltas", 8}}),
            "topic members does not exist");
  EXPECT_EQ(placement_problem(topics, {}), "topic members does not exist");
}

TEST(kafka_placement, commands_and_deltas_must_have_the_same_count) {
  // Else a subscription's commands and its seat deltas land on different
  // partition numbers, owned by different replicas.
  EXPECT_EQ(
    placement_problem(topics, {{"members", 3}, {"commands", 8}, {"deltas", 4}}),
    "co-partitioning broken: commands has 8 partitions and deltas has 4; "
    "they must have the same count");
}

TEST(kafka_placement, a_count_changed_while_running_is_named) {
  partition_count_map in_use{{"members", 3}, {"commands", 8}, {"deltas", 8}};
  EXPECT_EQ(partition_count_change(topics, in_use, in_use), "");
  auto grown = in_use;
  grown["members"] = 6;
  auto change = partition_count_change(topics, in_use, grown);
  EXPECT_EQ(change.rfind("the partition count of members changed from 3 to 6 "
                         "while running",
                         0),
            0u)
    << change;
  grown = in_use;
  grown["deltas"] = 16;
  EXPECT_NE(partition_count_change(topics, in_use, grown).find("deltas"),
            std::string::npos);
}

TEST(kafka_placement, topics_missing_from_an_answer_say_nothing) {
  partition_count_map in_use{{"members", 3}, {"commands", 8}, {"deltas", 8}};
  EXPECT_EQ(partition_count_change(topics, in_use, {{"members", 3}}), "");
  EXPECT_EQ(partition_count_change(topics, in_use, {}), "");
  // A topic the catalog stage reads is no part of placement.
  EXPECT_EQ(partition_count_change(topics, in_use, {{"catalog", 5}}), "");
}

} // namespace
} // namespace seatledger::kafka
