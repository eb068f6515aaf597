// The coordinator's count of entity answers per dispatch.

#include <gtest/gtest.h>

#include "actors/pending_answers.hpp"

namespace seatledger::actors {
namespace {

TEST(pending_answers, the_last_answer_completes_the_dispatch) {
  pending_answers pending;
  auto seq = pending.start(3);
  EXPECT_TRUE(pending.is_current(seq));
  EXPECT_FALSE(pending.answered());
  EXPECT_FALSE(pending.answered());
  EXPECT_TRUE(pending.answered());
  // Complete: its deadline finds nothing missing.
  EXPECT_FALSE(pending.is_current(seq));
  EXPECT_EQ(pending.expire(seq), 0u);
}

TEST(pending_answers, a_deadline_gives_up_and_late_answers_do_not_count) {
  pending_answers pending;
  auto first = pending.start(2);
  EXPECT_FALSE(pending.answered());
  EXPECT_EQ(pending.expire(first), 1u);
  EXPECT_FALSE(pending.is_current(first));
  // The next dispatch is not completed by the first one's late answer, and
  // the first one's deadline, fired again, does not touch it.
  auto second = pending.start(1);
  EXPECT_NE(second, first);
  EXPECT_FALSE(pending.is_current(first));
  EXPECT_EQ(pending.expire(first), 0u);
  EXPECT_TRUE(pending.is_current(second));
  EXPECT_TRUE(pending.answered());
}

TEST(pending_answers, a_stale_deadline_leaves_the_current_dispatch_alone) {
  pending_answers pending;
  auto first = pending.start(1);
  EXPECT_TRUE(pending.answered());
  auto second = pending.start(2);
  EXPECT_EQ(pending.expire(first), 0u);
  EXPECT_TRUE(pending.is_current(second));
  EXPECT_FALSE(pending.answered());
  EXPECT_TRUE(pending.answered());
}

TEST(pending_answers, abandoning_ignores_answers_on_their_way) {
  pending_answers pending;
  auto seq = pending.start(2);
  pending.abandon();
  EXPECT_FALSE(pending.is_current(seq));
  EXPECT_EQ(pending.expire(seq), 0u);
  EXPECT_FALSE(pending.answered());
}

} // namespace
} // namespace seatledger::actors
