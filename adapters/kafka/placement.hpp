#pragma once

// Whether records can be placed with the topics' partition counts. An org
// is owned by whoever holds its key's membership partition, a subscription
// by whoever holds its key's command partition, and the seat deltas for it
// must land on the same partition number of the internal topic (murmur2 of
// the key modulo the count). Two replicas would otherwise write for one
// entity, which no lease fences.

#include <cstdint>
#include <map>
#include <string>

namespace seatledger::kafka {

struct placement_topics {
  std::string membership;
  std::string subscriptions;
  std::string deltas;
};

using partition_count_map = std::map<std::string, std::int32_t>;

/// Why records cannot be placed with these partition counts (a topic
/// missing, the command and delta topics not co-partitioned), or an empty
/// string when they can.
std::string placement_problem(const placement_topics& topics,
                              const partition_count_map& counts);

/// Why the counts `now` cannot replace the ones `in_use` while running, or
/// an empty string. A count that changed moves keys to other partitions,
/// and with them to other replicas, while records for the same keys still
/// wait on the old ones. Topics absent from `now` (a metadata answer
/// without them) say nothing.
std::string partition_count_change(const placement_topics& topics,
                                   const partition_count_map& in_use,
                                   const partition_count_map& now);

} // namespace seatledger::kafka
