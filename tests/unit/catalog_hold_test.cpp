// Commands read with a catalog change wait for the next batch, so that the
// change is in effect for them whatever order the poll returned.

#include <gtest/gtest.h>

#include "actors/catalog_hold.hpp"

namespace seatledger::actors {
namespace {

const std::string catalog = "catalog";
const std::string commands = "commands";
const std::string membership = "membership";

kafka::record rec(const std::string& topic, std::int32_t partition,
                  std::int64_t offset) {
  kafka::record r;
  r.topic = topic;
  r.partition = partition;
  r.offset = offset;
  return r;
}

std::vector<std::string> names(const std::vector<kafka::record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records)
    out.push_back(r.topic + "/" + std::to_string(r.partition) + "@"
                  + std::to_string(r.offset));
  return out;
}

using list = std::vector<std::string>;

TEST(catalog_hold, commands_read_before_or_after_a_catalog_record_wait) {
  // The create read before the plan it names, in the same poll: the case
  // that got license.not_issued.
  std::vector<kafka::record> records{rec(commands, 0, 7), rec(membership, 1, 3),
                                     rec(catalog, 2, 0), rec(commands, 0, 8),
                                     rec(commands, 3, 1)};
  auto held = hold_commands_read_with_catalog(records, 0, catalog, commands);
  EXPECT_EQ(names(records), (list{"membership/1@3", "catalog/2@0"}));
  EXPECT_EQ(names(held),
            (list{"commands/0@7", "commands/0@8", "commands/3@1"}));
}

TEST(catalog_hold, without_a_catalog_record_nothing_waits) {
  std::vector<kafka::record> records{rec(commands, 0, 7),
                                     rec(membership, 1, 3)};
  auto held = hold_commands_read_with_catalog(records, 0, catalog, commands);
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(names(records), (list{"commands/0@7", "membership/1@3"}));
}

TEST(catalog_hold, commands_held_once_go_with_the_next_catalog_change) {
  // The first two were held by the previous batch; another catalog change
  // arrives with them. They go now (a stream of catalog changes must not
  // hold them for ever); the commands read since wait, after them.
  std::vector<kafka::record> records{rec(commands, 0, 7), rec(commands, 0, 8),
                                     rec(catalog, 2, 1), rec(commands, 0, 9)};
  auto held = hold_commands_read_with_catalog(records, 2, catalog, commands);
  EXPECT_EQ(names(records),
            (list{"commands/0@7", "commands/0@8", "catalog/2@1"}));
  EXPECT_EQ(names(held), (list{"commands/0@9"}));
}

} // namespace
} // namespace seatledger::actors
