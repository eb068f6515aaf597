#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace seatledger::actors {

/// What the pipeline reports about itself, read by `/readyz` and `/metrics`
/// from other threads. Counters only grow; gauges are overwritten.
struct service_status {
  // Readiness.
  std::atomic<bool> kafka_ok{false};
  /// Kafka's metadata was asked for at least once: until then `kafka_ok`
  /// says nothing about it.
  std::atomic<bool> kafka_checked{false};
  /// Kafka metadata round trips in a row that got no answer (every second
  /// at start-up until the topics are known, then one every 5 s).
  std::atomic<std::int64_t> kafka_failed_checks{0};
  /// The topics' partition counts allow placing records (adapters/kafka/
  /// placement.hpp).
  std::atomic<bool> placement_ok{true};
  std::atomic<bool> postgres_ok{false};
  /// PostgreSQL was tried at least once (start-up's migration or the
  /// pipeline): until then `postgres_ok` says nothing about it.
  std::atomic<bool> postgres_checked{false};
  std::atomic<bool> consuming{false};
  /// The consumer group has given this replica its partitions (possibly
  /// none: more replicas than partitions) at least once. Until then its
  /// consumer loop runs but reads nothing, and records published meanwhile
  /// wait for the group to settle.
  std::atomic<bool> partitions_assigned{false};
  std::atomic<std::int64_t> last_cycle_unix_ms{0};
  std::atomic<std::int64_t> assigned_partitions{0};
  /// Set when the process was asked to stop: calls that retry until
  /// PostgreSQL answers give up, so a replica can stop while it is down.
  std::atomic<bool> stopping{false};

  // Throughput.
  std::atomic<std::int64_t> batches_committed{0};
  std::atomic<std::int64_t> records_committed{0};
  std::atomic<std::int64_t> commit_failures{0};
  std::atomic<std::int64_t> fenced_commits{0};
  /// Leases taken back from a writer outside the consumer group.
  std::atomic<std::int64_t> leases_taken_back{0};
  std::atomic<std::int64_t> duplicates_skipped{0};
  /// Batches refused at commit because they held an upstream event applied
  /// before, and applied again.
  std::atomic<std::int64_t> batches_already_applied{0};
  std::atomic<std::int64_t> licenses_issued{0};
  std::atomic<std::int64_t> overages_detected{0};
  std::atomic<std::int64_t> published_events{0};
  /// Events Kafka refused outright (too large for it): logged, not published.
  std::atomic<std::int64_t> refused_events{0};
  /// Delivery reports of outbox events that failed for another reason (sent
  /// again from their chunk in a later round).
  std::atomic<std::int64_t> undelivered_events{0};
  /// Fatal errors of the relay's or the HTTP API's producer, each replaced
  /// by a new one (`kafka::producer::replace_if_fatal`).
  std::atomic<std::int64_t> producer_fatal_errors{0};
  std::atomic<std::int64_t> outbox_depth{0};
  std::atomic<std::int64_t> active_orgs{0};
  std::atomic<std::int64_t> active_subscriptions{0};
  std::atomic<std::int64_t> position_gaps{0};

  /// Label values the pipeline can report, known before any record is:
  /// their series are shown at 0 from the start (see `observer::known`).
  struct known_series {
    /// (topic, CloudEvents type) of what can be consumed.
    std::vector<std::pair<std::string, std::string>> consumed;
    /// (topic, command type, reason) of what can be rejected.
    std::vector<std::array<std::string, 3>> rejected;
    std::vector<std::string> dead_letter_codes;
    /// (topic, partition) of every partition the service consumes.
    std::vector<std::pair<std::string, std::int32_t>> partitions;
  };

  /// Observers the metrics adapter installs; called on the coordinator's
  /// thread, so they must be cheap and thread-safe.
  struct observer {
    virtual ~observer() = default;
    /// Prometheus takes a counter's first sample as its start, so a series
    /// that appears at 1 shows no increase: an alert on the first dead
    /// letter or position gap would not fire, and dashboards said "no data"
    /// where the count was 0.
    virtual void known(const known_series& series) {
      (void)series;
    }
    virtual void consumed(const std::string& topic, const std::string& type) {
      (void)topic;
      (void)type;
    }
    virtual void rejected(const std::string& topic, const std::string& type,
                          const std::string& reason) {
      (void)topic;
      (void)type;
      (void)reason;
    }
    virtual void dead_letter(const std::string& code) {
      (void)code;
    }
    virtual void batch(std::size_t rows, double commit_seconds) {
      (void)rows;
      (void)commit_seconds;
    }
    virtual void latency(double event_to_commit_seconds) {
      (void)event_to_commit_seconds;
    }
    virtual void lag(const std::string& topic, std::int32_t partition,
                     std::int64_t lag) {
      (void)topic;
      (void)partition;
      (void)lag;
    }
    /// The replica gave the partition up: its lag is another replica's to
    /// report now.
    virtual void lag_gone(const std::string& topic, std::int32_t partition) {
      (void)topic;
      (void)partition;
    }
    virtual void gap(const std::string& topic, std::int32_t partition) {
      (void)topic;
      (void)partition;
    }
  };

  std::atomic<observer*> metrics{nullptr};

  /// Ready: PostgreSQL and Kafka reachable, the consumer loop running and the
  /// group's first assignment received.
  bool ready(std::string& reason) const {
    if (!postgres_checked) {
      reason = "starting: PostgreSQL not tried yet";
      return false;
    }
    if (!postgres_ok) {
      reason = "PostgreSQL is not reachable";
      return false;
    }
    if (!kafka_checked) {
      reason = "starting: Kafka not tried yet";
      return false;
    }
    if (!kafka_ok) {
      reason = "Kafka is not reachable";
      return false;
    }
    if (!placement_ok) {
      reason = "the topics' partition counts do not allow placing records "
               "(see the log)";
      return false;
    }
    if (!consuming) {
      reason = "not consuming";
      return false;
    }
    if (!partitions_assigned) {
      reason = "waiting for the consumer group to assign partitions";
      return false;
    }
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    auto age = now - last_cycle_unix_ms.load();
    if (age > 30'000) {
      reason = "the consumer loop has not run for " + std::to_string(age / 1000)
               + " s";
      return false;
    }
    return true;
  }
};

} // namespace seatledger::actors
