#pragma once

// The order in which a subscription's actor applies its share of a batch,
// and the outbox labels that publish its events in that order.
//
// A batch's outbox rows are sorted by label, so that a re-run of the same
// batch publishes the same sequence whatever order the actors answered in.
// A label is its record's place in the batch. A subscription's commands and
// seat deltas come from two consumers, so record order is not the order they
// are applied in (by event time): a delta of 10:00:01 read after a renewal
// of 10:00:05 is applied first, but its `seats.changed` was published after
// `subscription.renewed`. messages.md promises consumers per-subscription
// order, so each subscription's items take its own labels in ascending
// order, in the order they are applied.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace seatledger::actors {

/// One item of a subscription's share: `Timed` has `time` (ordered) and
/// `order` (its record's label).
template<class Timed>
struct apply_sequence {
  /// The items in the order the actor applies them.
  std::vector<Timed*> items;
  /// Per item: it is a seat delta, not a command.
  std::vector<bool> is_delta;
  /// Per item: its outbox label (the share's labels, ascending).
  std::vector<std::int64_t> labels;
};

/// Interleaves one subscription's commands and deltas by event time, each
/// topic's own order kept; at equal times the command goes first.
template<class Timed>
apply_sequence<Timed>
in_apply_order(std::vector<Timed>& commands, std::vector<Timed>& deltas) {
  apply_sequence<Timed> sequence;
  const auto total = commands.size() + deltas.size();
  sequence.items.reserve(total);
  sequence.is_delta.reserve(total);
  sequence.labels.reserve(total);
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < commands.size() || j < deltas.size()) {
    bool take_delta = i == commands.size()
                      || (j < deltas.size()
                          && deltas[j].time < commands[i].time);
    auto* next = take_delta ? &deltas[j++] : &commands[i++];
    sequence.items.push_back(next);
    sequence.is_delta.push_back(take_delta);
    sequence.labels.push_back(next->order);
  }
  std::sort(sequence.labels.begin(), sequence.labels.end());
  return sequence;
}

} // namespace seatledger::actors
