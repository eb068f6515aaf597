#pragma once

// Which commands of a gathered batch wait for the next batch. A catalog
// change is in effect for the next message processed (domain.md), but a
// batch's commands see the catalog as it was before the batch. So when a
// batch carries catalog records, the commands read with them wait for the
// next batch, which starts once the change is committed. Nothing orders
// records across topics: a plan published just before the `create` that
// names it is often read after it in the same poll. Commands held once are
// never held again, so a stream of catalog changes cannot hold them back
// for ever. All of a partition's new commands go together, so each
// partition keeps its order.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "adapters/kafka/kafka.hpp"

namespace seatledger::actors {

/// Moves the commands (records of `commands_topic`) at or after
/// `held_before` out of `records` when `records` holds a record of
/// `catalog_topic`; returns them in their order. The first `held_before`
/// records were held once already.
inline std::vector<kafka::record>
hold_commands_read_with_catalog(std::vector<kafka::record>& records,
                                std::size_t held_before,
                                const std::string& catalog_topic,
                                const std::string& commands_topic) {
  std::vector<kafka::record> held;
  auto has_catalog = std::any_of(records.begin(), records.end(),
                                 [&](const kafka::record& r) {
                                   return r.topic == catalog_topic;
                                 });
  if (!has_catalog)
    return held;
  std::vector<kafka::record> kept;
  kept.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (i >= held_before && records[i].topic == commands_topic)
      held.push_back(std::move(records[i]));
    else
      kept.push_back(std::move(records[i]));
  }
  records = std::move(kept);
  return held;
}

} // namespace seatledger::actors
