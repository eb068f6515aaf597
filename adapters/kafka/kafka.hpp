#pragma once

// Kafka through librdkafka: an idempotent producer, a group consumer with
// the cooperative-sticky assignor, an assign-only consumer for co-partitioned
// topics, and librdkafka's mock cluster for running on one machine. No
// librdkafka type leaks out of this header.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "adapters/kafka/delivery_status.hpp"
#include "adapters/kafka/placement.hpp"
#include "log/log.hpp"
#include "storage/ports.hpp"

namespace seatledger::kafka {

using storage::position;
using storage::record_headers;
using storage::topic_partition;

/// librdkafka client properties, passed through as given (security protocol,
/// SASL, TLS, timeouts …) plus the bootstrap servers.
struct client_config {
  std::string bootstrap_servers;
  std::map<std::string, std::string> properties;
};

/// The level a librdkafka log line is written at (`syslog_level` as librdkafka
/// passes it: 0-3 errors, 4 warnings, the rest informational). An offset
/// commit refused because the group is rebalancing (or its generation or
/// member id went stale in one) is expected and harmless
/// (the copy in Kafka is only for lag tools; PostgreSQL holds the positions
/// and the next batch sends a fresh copy), so it is debug rather than a
/// warning for every batch of the rebalance.
log::level log_level_of(int syslog_level, std::string_view facility,
                        std::string_view message);

struct record {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  record_headers headers;
  /// Broker or producer timestamp, milliseconds since the epoch (0 if none).
  std::int64_t timestamp_ms = 0;
  /// Kafka tells a null key or value (a tombstone) from an empty one, and
  /// so do its other clients (Java's null vs ""): a dead letter must copy
  /// which it was. `key` or `value` is then empty.
  bool null_key = false;
  bool null_value = false;
};

/// What the group consumer tells its owner when partitions move. Called on
/// the polling thread, inside `poll`.
class rebalance_listener {
public:
  virtual ~rebalance_listener();

  /// Partitions assigned to this member; returns where to start each one
  /// (partitions absent from the answer start at the earliest offset).
  virtual std::vector<position>
  on_assigned(const std::vector<topic_partition>& partitions) = 0;

  /// Partitions taken away. When this returns, nothing more may be written
  /// for them. `lost`: librdkafka found the assignment gone (session timed
  /// out, or a request met a stale generation) rather than handing the
  /// partitions over in a rebalance, so another member may own them already.
  virtual void
  on_revoked(const std::vector<topic_partition>& partitions, bool lost)
    = 0;
};

/// A consumer: either a member of a consumer group (subscribe) or
/// assign-only (assign/unassign).
class consumer {
public:
  ~consumer();

  /// A group member using the cooperative-sticky assignor. Offsets are never
  /// auto-committed: positions live in PostgreSQL.
  static caf::expected<std::unique_ptr<consumer>>
  group_member(const client_config& config, const std::string& group_id,
               rebalance_listener* listener);

  /// Not a group member: partitions are assigned explicitly.
  static caf::expected<std::unique_ptr<consumer>>
  assign_only(const client_config& config);

  caf::expected<void> subscribe(const std::vector<std::string>& topics);

  /// Adds partitions at the given offsets (assign-only consumers).
  caf::expected<void> assign(const std::vector<position>& positions);

  /// Removes partitions (assign-only consumers).
  caf::expected<void> unassign(const std::vector<topic_partition>& partitions);

  /// Moves already assigned partitions to the given offsets (after a failed
  /// commit, back to the stored positions).
  caf::expected<void> seek(const std::vector<position>& positions);

  /// Up to `max` records; waits at most `timeout_ms` for the first.
  std::vector<record> poll(std::size_t max, int timeout_ms);

  /// A file descriptor that becomes readable when records or events are
  /// waiting, so one thread can wait on several consumers.
  int wake_fd() const;

  /// Commits offsets to Kafka (asynchronously) for lag tools; the
  /// authoritative positions are in PostgreSQL. While the group rebalances
  /// they are held and committed with the first call after it (an empty
  /// call commits what is held; offset_copies.hpp).
  void commit_async(const std::vector<position>& positions);

  /// Commits the last copy of every partition again (none while the group
  /// rebalances): librdkafka drops a refused asynchronous commit silently.
  void commit_again();

  /// Drops held and remembered copies of partitions this member no longer
  /// writes (the delta partitions of revoked command partitions, fenced
  /// partitions; the group's own revoked partitions are dropped in the
  /// rebalance callback).
  void forget_offset_copies(const std::vector<topic_partition>& partitions);

  /// Commits these offsets and waits for the answer, at most `timeout_ms`.
  /// Kafka takes a commit only from a member of the group's current
  /// generation, so success proves this consumer still is one: what decides
  /// who owns a partition when a PostgreSQL lease says otherwise.
  caf::expected<void> confirm_membership(const std::vector<position>& positions,
                                         int timeout_ms);

  /// Leaves the group (revocation callbacks run) and closes.
  void close();

  /// Records skipped because the stored position was no longer available.
  struct gap {
    topic_partition tp;
    std::int64_t requested = 0;
    /// The earliest offset Kafka still has, where reading resumes (-1 when
    /// the brokers did not say): the records in between are lost.
    std::int64_t earliest = -1;
  };

  /// Offset-out-of-range incidents seen since the last call.
  std::vector<gap> take_gaps();

  /// High watermark of a partition, from the last fetch (-1 if unknown).
  std::int64_t high_watermark(const topic_partition& tp) const;

  std::vector<topic_partition> assignment() const;

  /// The partition counts of `topics` in one metadata round trip (for the
  /// topics this client knows, not the whole cluster), waiting at most
  /// `timeout_ms`; an error when no broker answered. Topics the answer
  /// lacks are absent.
  caf::expected<partition_count_map>
  partition_counts(const std::vector<std::string>& topics, int timeout_ms);

  struct impl;

private:
  explicit consumer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// An idempotent producer (`enable.idempotence=true`, `acks=all`) with the
/// Java client's default partitioner, so keys land where other producers
/// put them.
class producer {
public:
  ~producer();

  /// `overrides` are set over the operator's properties: settings the
  /// caller's correctness depends on.
  static caf::expected<std::unique_ptr<producer>>
  make(const client_config& config,
       const std::map<std::string, std::string>& overrides = {});

  /// Queues a record; `done(status, error)` runs from `poll`/`flush` when the
  /// broker acknowledged it or it finally failed. A record the client
  /// refuses outright (larger than message.max.bytes) is reported through
  /// `done` as refused before this returns, not as an error here: errors
  /// here are the producer's own state. A key, value or header value of
  /// `std::nullopt` is Kafka's null, not an empty one.
  caf::expected<void>
  produce(const std::string& topic, std::optional<std::string_view> key,
          std::optional<std::string_view> value, const record_headers& headers,
          std::function<void(delivery_status, const std::string& error)> done);

  /// Serves delivery reports.
  int poll(int timeout_ms);

  /// Waits until everything queued was delivered or `timeout_ms` passed;
  /// false on timeout.
  bool flush(int timeout_ms);

  /// Records still waiting for a delivery report.
  int in_flight() const;

  /// After librdkafka raised a fatal error (the idempotent producer lost
  /// its sequence with a broker), the client refuses every record for
  /// ever: this replaces it with a new one made from the same
  /// configuration, and returns the fatal error. Nothing while the client
  /// is healthy, or when no new client could be made (logged; the next
  /// call tries again). Records the old client held are reported failed.
  std::optional<std::string> replace_if_fatal();

  /// One metadata round trip over every topic (so none is auto-created):
  /// the partition counts of those of `topics` the cluster has, or an error
  /// when no broker answered within `timeout_ms`. Producing to brokers that
  /// are not there only fails when the records' delivery times out
  /// (minutes), and producing to a topic that is not there may create it.
  caf::expected<std::map<std::string, std::int32_t>>
  partition_counts(const std::vector<std::string>& topics, int timeout_ms);

  struct impl;

private:
  explicit producer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// librdkafka's mock cluster: real Kafka protocol over loopback, in this
/// process, with the topics created.
class mock_cluster {
public:
  ~mock_cluster();

  static caf::expected<std::unique_ptr<mock_cluster>>
  start(int brokers, const std::vector<std::string>& topics, int partitions);

  /// "127.0.0.1:port,…"
  std::string bootstrap_servers() const;

  /// Takes every broker down (connections closed, new ones refused) or
  /// brings them back, keeping the log: a Kafka outage for tests.
  void set_brokers_down(bool down);

  /// Creates one more topic.
  caf::expected<void> create_topic(const std::string& topic, int partitions);

  /// The next `count` OffsetCommit requests, from any client, fail with
  /// GROUP_AUTHORIZATION_FAILED: Kafka refusing this member's commits.
  void refuse_offset_commits(int count);

  /// The next Produce request, from any client, fails with
  /// OUT_OF_ORDER_SEQUENCE_NUMBER: an idempotent producer that gets it
  /// raises a fatal error.
  void desynchronize_next_produce();

  /// The next `count` Produce requests, from any client, fail with
  /// TOPIC_AUTHORIZATION_FAILED: their records' deliveries fail, and the
  /// producer goes on.
  void deny_produce_requests(int count);

  struct impl;

private:
  explicit mock_cluster(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Why librdkafka refuses to create the service's clients (producer, group
/// member, assign-only consumer) with `config`'s properties, which it takes
/// one by one but not together (SASL without sasl.username,
/// max.poll.interval.ms below session.timeout.ms): a `config_invalid`
/// error; nothing when it creates them. Connects to no broker.
caf::error client_refusal(const client_config& config);

/// Kafka's default partitioner: murmur2 of the key, positive, modulo the
/// partition count (what `partitioner=murmur2_random` does for keyed
/// records); -1 when `partitions` is not positive.
std::int32_t partition_for_key(std::string_view key, std::int32_t partitions);

/// Asks the brokers for high watermarks through one long-lived client:
/// a client per question costs threads, connections and a metadata request,
/// CPU a program watching lag several times a second takes from the service.
class watermark_reader {
public:
  static caf::expected<std::unique_ptr<watermark_reader>>
  connect(const client_config& config);

  ~watermark_reader();

  /// The high watermark (next offset) of every partition of a topic.
  caf::expected<std::vector<std::int64_t>>
  high_watermarks(const std::string& topic, int timeout_ms);

  struct impl;

private:
  explicit watermark_reader(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The high watermark (next offset) of every partition of a topic, asked of
/// the brokers by a client of its own for this one question.
caf::expected<std::vector<std::int64_t>>
high_watermarks(const client_config& config, const std::string& topic,
                int timeout_ms);

/// The offsets a consumer group has committed to Kafka (what lag tools
/// read), in the order asked; -1 for a partition without one.
caf::expected<std::vector<position>>
committed_offsets(const client_config& config, const std::string& group_id,
                  const std::vector<topic_partition>& partitions,
                  int timeout_ms);

} // namespace seatledger::kafka
