#pragma once

// One relay round's delivery reports. The relay hands a round's events to
// the producer, flushes, and marks published the chunks whose events were
// all delivered, in order. A round that gives up on its flush returns while
// reports are still due (librdkafka retries for message.timeout.ms); they
// arrive during a later round or at shutdown, so each report owns a share
// of the round's state instead of pointing into the relay's stack.
// Reports run in the producer's poll or flush, on the relay's thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace seatledger::actors {

class delivery_round {
public:
  using report_fn = std::function<void(bool ok, const std::string& error)>;

  explicit delivery_round(std::size_t events)
      : state_(std::make_shared<state>()) {
    state_->delivered.assign(events, 0);
  }

  /// The delivery report of event `i`; `on_failure` sees librdkafka's reason.
  report_fn report(std::size_t i,
                   std::function<void(const std::string&)> on_failure) const {
    return [s = state_, i, on_failure = std::move(on_failure)](
             bool ok, const std::string& error) {
      if (ok) {
        s->delivered[i] = 1;
        return;
      }
      s->failed = true;
      if (on_failure)
        on_failure(error);
    };
  }

  /// Something failed outside the reports (produce refused, flush timed out).
  void fail() {
    state_->failed = true;
  }

  bool failed() const {
    return state_->failed;
  }

  /// Events delivered in a row from the first.
  std::size_t delivered_in_a_row() const {
    std::size_t n = 0;
    while (n < state_->delivered.size() && state_->delivered[n])
      ++n;
    return n;
  }

  /// The chunks to mark published: `chunk_of[i]` is event i's chunk (events
  /// of a chunk are adjacent); the chunks whose events were all delivered,
  /// up to the first that was not, so per-key order holds when the rest is
  /// published again.
  std::vector<std::int64_t>
  complete_chunks(const std::vector<std::int64_t>& chunk_of) const {
    std::vector<std::int64_t> result;
    const auto& delivered = state_->delivered;
    for (std::size_t i = 0; i < chunk_of.size();) {
      auto chunk = chunk_of[i];
      bool complete = true;
      std::size_t end = i;
      for (; end < chunk_of.size() && chunk_of[end] == chunk; ++end)
        complete = complete && end < delivered.size() && delivered[end];
      if (!complete)
        break;
      result.push_back(chunk);
      i = end;
    }
    return result;
  }

private:
  struct state {
    std::vector<char> delivered;
    bool failed = false;
  };
  std::shared_ptr<state> state_;
};

} // namespace seatledger::actors
