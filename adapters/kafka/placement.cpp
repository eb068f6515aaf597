#include "adapters/kafka/placement.hpp"

namespace seatledger::kafka {

namespace {

std::int32_t count_of(const partition_count_map& counts,
                      const std::string& topic) {
  auto it = counts.find(topic);
  return it == counts.end() ? 0 : it->second;
}

} // namespace

std::string placement_problem(const placement_topics& topics,
                              const partition_count_map& counts) {
  for (const auto* topic :
       {&topics.membership, &topics.subscriptions, &topics.deltas})
    if (count_of(counts, *topic) <= 0)
      return "topic " + *topic + " does not exist";
  auto commands = count_of(counts, topics.subscriptions);
  auto deltas = count_of(counts, topics.deltas);
  if (commands != deltas)
    return "co-partitioning broken: " + topics.subscriptions + " has "
           + std::to_string(commands) + " partitions and " + topics.deltas
           + " has " + std::to_string(deltas)
           + "; they must have the same count";
  return {};
}

std::string partition_count_change(const placement_topics& topics,
                                   const partition_count_map& in_use,
                                   const partition_count_map& now) {
  for (const auto* topic :
       {&topics.membership, &topics.subscriptions, &topics.deltas}) {
    auto before = count_of(in_use, *topic);
    auto after = count_of(now, *topic);
    if (after > 0 && after != before)
      return "the partition count of " + *topic + " changed from "
             + std::to_string(before) + " to " + std::to_string(after)
             + " while running: keys moved to other partitions while records "
               "for them still wait on the old ones; stop the producers, let "
               "every replica catch up, then restart them all";
  }
  return {};
}

} // namespace seatledger::kafka
