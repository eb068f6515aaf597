// A subscription's commands and seat deltas are applied by event time, and
// its events are published in the order they were applied.

#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "actors/apply_order.hpp"

namespace seatledger::actors {
namespace {

struct item {
  int time = 0;
  std::int64_t order = 0;
  std::string name;
};

std::vector<std::string> names(const apply_sequence<item>& sequence) {
  std::vector<std::string> out;
  for (const auto* i : sequence.items)
    out.push_back(i->name);
  return out;
}

TEST(apply_order, a_delta_older_than_a_command_read_before_it_goes_first) {
  // The renewal was read first (label 0), the delta after it (label 1),
  // but the delta happened first: its seats.changed must be published
  // before subscription.renewed, not after it.
  std::vector<item> commands{{5, 0, "renew"}};
  std::vector<item> deltas{{1, 1, "delta"}};
  auto sequence = in_apply_order(commands, deltas);
  EXPECT_EQ(names(sequence), (std::vector<std::string>{"delta", "renew"}));
  EXPECT_EQ(sequence.is_delta, (std::vector<bool>{true, false}));
  EXPECT_EQ(sequence.labels, (std::vector<std::int64_t>{0, 1}));
}

TEST(apply_order, each_topic_keeps_its_order_and_ties_go_to_the_command) {
  // A command's time may run backwards within its topic (the producer's
  // clock); the topic's order still holds.
  std::vector<item> commands{{3, 2, "c1"}, {9, 4, "c2"}, {4, 7, "c3"}};
  std::vector<item> deltas{{3, 10, "d1"}, {5, 11, "d2"}, {20, 12, "d3"}};
  auto sequence = in_apply_order(commands, deltas);
  EXPECT_EQ(names(sequence),
            (std::vector<std::string>{"c1", "d1", "d2", "c2", "c3", "d3"}));
  EXPECT_EQ(sequence.is_delta,
            (std::vector<bool>{false, true, true, false, false, true}));
  // The share's own labels, ascending in apply order: the outbox sort then
  // keeps the apply order, and other entities' events sort among them by
  // record order as before.
  EXPECT_EQ(sequence.labels, (std::vector<std::int64_t>{2, 4, 7, 10, 11, 12}));
}

TEST(apply_order, one_topic_alone_is_taken_as_read) {
  std::vector<item> none;
  std::vector<item> deltas{{8, 3, "d1"}, {2, 5, "d2"}};
  auto sequence = in_apply_order(none, deltas);
  EXPECT_EQ(names(sequence), (std::vector<std::string>{"d1", "d2"}));
  EXPECT_EQ(sequence.labels, (std::vector<std::int64_t>{3, 5}));
  std::vector<item> commands{{8, 1, "c1"}, {2, 6, "c2"}};
  sequence = in_apply_order(commands, none);
  EXPECT_EQ(names(sequence), (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(sequence.labels, (std::vector<std::int64_t>{1, 6}));
}

} // namespace
} // namespace seatledger::actors
