#pragma once

// How a batch's room for records is shared between the main topics and
// the seat deltas. The main topics may fill half of it first, the deltas
// what is left, the main topics the rest: given all of it first, a backlog
// on the main topics left no room for a delta, and seat counts stood still
// until the backlog was gone. The odd place of an odd room goes to each
// side in turn: always to the main topics, a room of one
// (`--batch-max-records 1`) starved the deltas the same way.

#include <cstddef>

namespace seatledger::actors {

class batch_room {
public:
  /// How many of `room` places the main topics may take before the deltas
  /// are read.
  std::size_t main_first(std::size_t room) {
    auto share = (room + (odd_place_to_main_ ? 1 : 0)) / 2;
    odd_place_to_main_ = !odd_place_to_main_;
    return share;
  }

private:
  bool odd_place_to_main_ = true;
};

} // namespace seatledger::actors
