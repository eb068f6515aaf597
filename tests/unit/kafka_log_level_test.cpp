// Which level librdkafka's log lines are written at.

#include <gtest/gtest.h>

#include "adapters/kafka/kafka.hpp"

namespace seatledger::kafka {
namespace {

TEST(kafka_log_level, follows_the_syslog_level) {
  EXPECT_EQ(log_level_of(3, "FAIL", "connection refused"), log::level::error);
  EXPECT_EQ(log_level_of(4, "CONFWARN", "ignored"), log::level::warning);
  EXPECT_EQ(log_level_of(7, "BROKER", "up"), log::level::debug);
}

TEST(kafka_log_level, offset_commits_refused_by_a_rebalance_are_debug) {
  // As librdkafka 2.0.2 words it, once for every batch while a group
  // rebalances.
  EXPECT_EQ(log_level_of(4, "COMMITFAIL",
                         "[thrd:main]: Offset commit (manual) failed for 1/1 "
                         "partition(s) in join-state steady: Broker: Group "
                         "rebalance in progress: seatledger.membership.v1[1]"
                         "@353(Broker: Group rebalance in progress)"),
            log::level::debug);
  EXPECT_EQ(log_level_of(4, "COMMITFAIL",
                         "[thrd:main]: Offset commit (manual) failed for 2/2 "
                         "partition(s) in join-state wait-metadata: Broker: "
                         "Specified group generation id is not valid: "
                         "seatledger.membership.v1[0]@25(Broker: Specified "
                         "group generation id is not valid)"),
            log::level::debug);
  EXPECT_EQ(log_level_of(4, "COMMITFAIL",
                         "Offset commit (manual) failed for 1/1 partition(s): "
                         "Broker: Unknown member"),
            log::level::debug);
}

TEST(kafka_log_level, other_offset_commit_failures_stay_warnings) {
  EXPECT_EQ(log_level_of(4, "COMMITFAIL",
                         "[thrd:main]: Offset commit (manual) failed for 1/1 "
                         "partition(s): Broker: Group authorization failed"),
            log::level::warning);
  EXPECT_EQ(log_level_of(4, "OTHER", "rebalance in progress"),
            log::level::warning);
}

} // namespace
} // namespace seatledger::kafka
