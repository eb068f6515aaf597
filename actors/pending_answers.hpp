#pragma once

// The entity actors' answers a dispatch of the coordinator waits for. Each
// dispatch is numbered, so an answer or a deadline of an earlier one (given
// up on after a deadline or a failed commit) is told apart from the
// current one's.

#include <cstddef>
#include <cstdint>

namespace seatledger::actors {

class pending_answers {
public:
  /// A dispatch of `count` jobs begins; returns its number.
  std::uint64_t start(std::size_t count) {
    awaiting_ = count;
    return ++current_;
  }

  /// Whether answers of dispatch `seq` still count.
  bool is_current(std::uint64_t seq) const {
    return seq == current_ && awaiting_ > 0;
  }

  /// An answer of the current dispatch arrived (check is_current first);
  /// true when it was the last one awaited.
  bool answered() {
    return awaiting_ > 0 && --awaiting_ == 0;
  }

  /// Dispatch `seq`'s deadline passed: how many of its answers are missing
  /// (0 when it is not the current one or is complete). Answers that arrive
  /// later no longer count.
  std::size_t expire(std::uint64_t seq) {
    if (!is_current(seq))
      return 0;
    auto missing = awaiting_;
    abandon();
    return missing;
  }

  /// Gives the current dispatch up: its answers on their way no longer
  /// count.
  void abandon() {
    awaiting_ = 0;
    ++current_;
  }

private:
  std::uint64_t current_ = 0;
  std::size_t awaiting_ = 0;
};

} // namespace seatledger::actors
