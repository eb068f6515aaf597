#pragma once

namespace seatledger::kafka {

/// How a produced record's delivery ended.
enum class delivery_status {
  delivered,
  /// Not delivered (timed out, broker unreachable, ...); sending it again
  /// may succeed.
  failed,
  /// Never deliverable as it is: larger than the client or the broker takes,
  /// or invalid for the broker. Sending it again fails the same way.
  refused,
};

} // namespace seatledger::kafka
