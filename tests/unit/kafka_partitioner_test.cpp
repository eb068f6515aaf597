// The partitioner every producer of a keyed topic must share with
// seatledger: the Java client's default (murmur2 of the key, positive,
// modulo the partition count).

#include <gtest/gtest.h>

#include "adapters/kafka/kafka.hpp"

namespace seatledger::kafka {
namespace {

TEST(kafka_partitioner, matches_the_java_clients_default_partitioner) {
  // Utils.murmur2 of "1", "12", "123", "1234", "12345" is -1993445489,
  // 126087238, -267702483, -1614185708, -1188365604 (Kafka's own values);
  // toPositive keeps the low 31 bits.
  struct expected {
    const char* key;
    std::int32_t of_8, of_12, of_5;
  };
  for (const auto& e : {expected{"1", 7, 3, 4}, expected{"12", 6, 10, 3},
                        expected{"123", 5, 5, 0}, expected{"1234", 4, 0, 0},
                        expected{"12345", 4, 8, 4}}) {
    EXPECT_EQ(partition_for_key(e.key, 8), e.of_8) << e.key;
    EXPECT_EQ(partition_for_key(e.key, 12), e.of_12) << e.key;
    EXPECT_EQ(partition_for_key(e.key, 5), e.of_5) << e.key;
  }
}

TEST(kafka_partitioner, no_partition_when_the_count_is_unknown) {
  // A count not read yet (Kafka unreachable at start) used to divide by zero.
  EXPECT_EQ(partition_for_key("org-1", 0), -1);
  EXPECT_EQ(partition_for_key("org-1", -3), -1);
  EXPECT_EQ(partition_for_key("org-1", 1), 0);
}

} // namespace
} // namespace seatledger::kafka
