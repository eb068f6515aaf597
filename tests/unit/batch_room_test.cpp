// A batch's room is shared between the main topics and the seat deltas, so
// that neither stands still while the other has a backlog.

#include <gtest/gtest.h>

#include "actors/batch_room.hpp"

namespace seatledger::actors {
namespace {

struct places {
  std::size_t main = 0;
  std::size_t deltas = 0;
};

/// Batches gathered as the coordinator does (main topics first, their
/// share; the deltas what is left; the main topics the rest) while both
/// sides always have more records than the room.
places share_of_batches(std::size_t room, int batches) {
  batch_room split;
  places taken;
  for (int i = 0; i < batches; ++i) {
    auto left = room;
    auto main = split.main_first(left);
    left -= main;
    taken.deltas += left; // the deltas fill what is left
    taken.main += main;
  }
  return taken;
}

TEST(batch_room, an_even_room_is_halved) {
  batch_room split;
  EXPECT_EQ(split.main_first(50), 25u);
  EXPECT_EQ(split.main_first(50), 25u);
  EXPECT_EQ(split.main_first(0), 0u);
}

TEST(batch_room, the_odd_place_goes_to_each_side_in_turn) {
  batch_room split;
  EXPECT_EQ(split.main_first(51), 26u);
  EXPECT_EQ(split.main_first(51), 25u);
  EXPECT_EQ(split.main_first(51), 26u);
}

// With `--batch-max-records 1` the main topics took the one place of every
// batch: a membership backlog left the deltas no batch at all.
TEST(batch_room, a_room_of_one_serves_both_sides) {
  auto taken = share_of_batches(1, 100);
  EXPECT_EQ(taken.main, 50u);
  EXPECT_EQ(taken.deltas, 50u);
  taken = share_of_batches(5'000, 10);
  EXPECT_EQ(taken.main, 25'000u);
  EXPECT_EQ(taken.deltas, 25'000u);
}

} // namespace
} // namespace seatledger::actors
