#pragma once

// The offset copies a group member commits to Kafka for lag tools, held
// back while the group rebalances.
//
// librdkafka 2.0.2 (Debian 12) gives up a member's whole assignment when an
// offset commit meets the group's generation change (confluentinc/librdkafka
// #4059, fixed upstream by PR #4908): a commit sent after the member's
// JoinGroup request still carries the old generation, the coordinator
// answers it after the join with ILLEGAL_GENERATION, and librdkafka treats
// the assignment as lost. A replica that copies its positions after every
// batch is almost always committing when a replica joins or leaves, so each
// cooperative hand-over of a few partitions became a lost assignment of all
// of them. librdkafka announces each change of the group's join state in its
// `cgrp` debug context, on its own thread, before it sends the JoinGroup
// request; commits wait from the moment the state leaves "steady" (or a
// rebalance callback runs) until it is "steady" again.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "storage/ports.hpp"

namespace seatledger::kafka {

/// The join state a librdkafka log line says the group entered
/// (facility CGRPJOINSTATE: `… changed join state steady -> init …`).
std::optional<std::string_view> join_state_entered(std::string_view facility,
                                                   std::string_view message);

/// Safe to call from librdkafka's threads and the polling thread at once.
class offset_copies {
public:
  /// The group entered `state`.
  void on_join_state(std::string_view state);

  /// A rebalance callback runs: hold copies until the state is "steady"
  /// again after it.
  void on_rebalance();

  /// These partitions left this member (or its writes for them were
  /// fenced); their held and remembered copies go (committing them later
  /// could move the new owner's copy back).
  void forget(const std::vector<storage::topic_partition>& partitions);

  /// Takes the positions of a batch; returns what to commit now: every held
  /// position (the latest per partition) while the group is steady, else
  /// none.
  std::vector<storage::position>
  offer(const std::vector<storage::position>& positions);

  /// The last copy of every partition not forgotten, to commit again:
  /// librdkafka drops an asynchronous commit it cannot make (around a
  /// rebalance) without telling, and with no batch after it nothing else
  /// would correct that partition's copy. None while the group rebalances
  /// (what is held then goes with the next offer()).
  std::vector<storage::position> offer_again() const;

  std::size_t held() const;

private:
  mutable std::mutex mutex_;
  /// Not before the first join has finished.
  bool steady_ = false;
  std::map<storage::topic_partition, std::int64_t> held_;
  /// The latest copy offered per partition, committed or held.
  std::map<storage::topic_partition, std::int64_t> last_;
};

} // namespace seatledger::kafka
