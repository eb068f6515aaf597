#pragma once

// One relay round's delivery reports. The relay hands a round's events to
// the producer, waits until every report is in (across calls while Kafka
// is away), and marks published the chunks whose events were all
// delivered, in order. A relay stopped while a round waits leaves reports
// due that librdkafka runs as it is destroyed, so each report owns a share
// of the round's state instead of pointing into the relay's stack.
// Reports run in the producer's poll or flush, on the relay's thread. An
// event Kafka refuses outright (too large for it) is done with: it is
// logged and counted, and the events after it go on.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/kafka/delivery_status.hpp"

namespace seatledger::actors {

class delivery_round {
public:
  using report_fn
    = std::function<void(kafka::delivery_status, const std::string& error)>;

  explicit delivery_round(std::size_t events)
      : state_(std::make_shared<state>()) {
    state_->outcome.assign(events, pending);
  }

  /// The delivery report of event `i`; `on_problem` is told of it, with
  /// librdkafka's reason, when the event was not delivered.
  report_fn report(std::size_t i, report_fn on_problem) const {
    return [s = state_, i, on_problem = std::move(on_problem)](
             kafka::delivery_status status, const std::string& error) {
      switch (status) {
        case kafka::delivery_status::delivered:
          s->outcome[i] = delivered;
          break;
        case kafka::delivery_status::refused:
          // Done with: sending it again fails the same way, and waiting for
          // it would hold back every later event.
          s->outcome[i] = refused;
          break;
        case kafka::delivery_status::failed:
          s->failed = true;
          ++s->failed_reports;
          break;
      }
      if (status != kafka::delivery_status::delivered && on_problem)
        on_problem(status, error);
    };
  }

  /// Something failed outside the reports (the producer refused to queue).
  void fail() {
    state_->failed = true;
  }

  bool failed() const {
    return state_->failed;
  }

  /// Reports that said an event was not delivered (and may be next time).
  std::size_t failed_reports() const {
    return state_->failed_reports;
  }

  /// Events done with (delivered or refused) in a row from the first.
  std::size_t done_in_a_row() const {
    std::size_t n = 0;
    while (n < state_->outcome.size() && state_->outcome[n] != pending)
      ++n;
    return n;
  }

  /// Of those, the ones delivered.
  std::size_t delivered_in_a_row() const {
    auto done = done_in_a_row();
    std::size_t n = 0;
    for (std::size_t i = 0; i < done; ++i)
      n += state_->outcome[i] == delivered;
    return n;
  }

  /// The chunks to mark published: `chunk_of[i]` is event i's chunk (events
  /// of a chunk are adjacent); the chunks whose events were all done with,
  /// up to the first that was not, so per-key order holds when the rest is
  /// published again.
  std::vector<std::int64_t>
  complete_chunks(const std::vector<std::int64_t>& chunk_of) const {
    std::vector<std::int64_t> result;
    const auto& outcome = state_->outcome;
    for (std::size_t i = 0; i < chunk_of.size();) {
      auto chunk = chunk_of[i];
      bool complete = true;
      std::size_t end = i;
      for (; end < chunk_of.size() && chunk_of[end] == chunk; ++end)
        complete = complete && end < outcome.size() && outcome[end] != pending;
      if (!complete)
        break;
      result.push_back(chunk);
      i = end;
    }
    return result;
  }

private:
  enum outcome_kind : char { pending, delivered, refused };
  struct state {
    std::vector<outcome_kind> outcome;
    bool failed = false;
    std::size_t failed_reports = 0;
  };
  std::shared_ptr<state> state_;
};

} // namespace seatledger::actors
