// The lag a replica reports for a partition it holds.

#include <gtest/gtest.h>

#include "actors/consumer_lag.hpp"

namespace seatledger::actors {
namespace {

TEST(consumer_lag, is_the_watermark_minus_the_stored_position) {
  EXPECT_EQ(consumer_lag(1'500, 1'200), 300);
  EXPECT_EQ(consumer_lag(1'200, 1'200), 0);
}

TEST(consumer_lag, is_unknown_while_librdkafka_has_no_watermark) {
  EXPECT_FALSE(consumer_lag(-1, 0).has_value());
  EXPECT_FALSE(consumer_lag(-1001, 40).has_value());
}

// A replica gets back a partition another replica advanced meanwhile: the
// watermark librdkafka cached from its last fetch before giving it up is
// below the position stored since. Reported as lag, it read 0 until the
// next fetch, while the partition may have been far behind.
TEST(consumer_lag, a_watermark_below_the_stored_position_is_stale_not_zero) {
  EXPECT_FALSE(consumer_lag(800, 1'200).has_value());
  EXPECT_FALSE(consumer_lag(0, 1).has_value());
}

} // namespace
} // namespace seatledger::actors
