#pragma once

// Running the real `seatledger` binary in tests: as a child process against
// real Kafka protocol (librdkafka's mock cluster, in this process or as a
// `seatledger dev-kafka` child) and a scratch PostgreSQL database.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "adapters/kafka/kafka.hpp"

namespace seatledger::test {

/// The `seatledger` binary under test.
std::string seatledger_binary();

/// The services under test replay synthetic histories that run past today
/// (the scenarios start on 2026-01-01 and take months), so they accept
/// event times up to a century ahead of the clock (an environment
/// variable: a test's flag still beats it).
inline const std::map<std::string, std::string> synthetic_history_env{
  {"SEATLEDGER_MAX_EVENT_TIME_AHEAD", "36500d"}};

/// A child process; its stdout lines are collected, stderr goes to a file.
class child_process {
public:
  /// Where the child's stdout goes: read line by line here, or a pipe
  /// nobody reads, as when the reader of `serve | head -1` has gone.
  enum class output { read, closed_pipe };

  explicit child_process(std::vector<std::string> args,
                         std::map<std::string, std::string> env = {},
                         output stdout_to = output::read);
  ~child_process();

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The value of the first stdout line `NAME=value`, waiting for it.
  std::optional<std::string> wait_for_value(const std::string& name,
                                            std::chrono::milliseconds timeout);

  void signal(int sig);

  /// The exit status (or 128 + signal), nothing on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  bool running();

  /// The last `bytes` of its stderr.
  std::string stderr_tail(std::size_t bytes = 4000) const;

  pid_t pid() const {
    return pid_;
  }

private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_file_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::optional<int> status_;
};

/// Polls `done` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& done,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds every
                = std::chrono::milliseconds{50});

/// A group member's listener that starts every assigned partition at offset
/// 0, as a stored position would, and does nothing on revocation.
class starts_from_zero : public kafka::rebalance_listener {
public:
  std::vector<kafka::position>
  on_assigned(const std::vector<kafka::topic_partition>& partitions) override {
    std::vector<kafka::position> result;
    for (const auto& tp : partitions)
      result.push_back({tp, 0});
    return result;
  }
  void on_revoked(const std::vector<kafka::topic_partition>&, bool) override {}
};

/// A record to publish; `null_key`/`null_value` send Kafka's null instead
/// of `key`/`value` (a keyless record, a tombstone). Without `headers` it
/// carries `content-type: application/cloudevents+json`.
struct outgoing {
  std::string key;
  std::string value;
  bool null_key = false;
  bool null_value = false;
  std::optional<kafka::record_headers> headers;
};

/// A record's headers by name, the first of a repeated one, a null value
/// read as empty: for checks of the headers the service adds, which are
/// never null.
std::map<std::string, std::string> header_map(const kafka::record& r);

/// Publishes and reads records over real Kafka protocol.
class kafka_io {
public:
  /// `producer_properties` override the service producer's settings.
  explicit kafka_io(std::string bootstrap,
                    std::map<std::string, std::string> producer_properties
                    = {});

  /// Publishes and waits until Kafka has every record.
  void publish(const std::string& topic, const std::vector<outgoing>& records);

  /// Hands the records to the producer without waiting for Kafka, so a
  /// caller can offer a steady load; `flush` then waits for them all.
  void publish_async(const std::string& topic,
                     const std::vector<outgoing>& records);

  /// Waits until Kafka has everything published so far; throws if any
  /// record was not delivered.
  void flush();

  /// Every record of the topic (all partitions), from the beginning up to
  /// the high watermarks as they are now.
  std::vector<kafka::record> read_all(const std::string& topic);

  const std::string& bootstrap() const {
    return bootstrap_;
  }

private:
  std::string bootstrap_;
  std::unique_ptr<kafka::producer> producer_;
  /// Records Kafka refused since the last `flush` (delivery reports run in
  /// the producer's poll, on the caller's thread; shared with the pending
  /// callbacks, so a moved kafka_io is still counted).
  std::shared_ptr<int> failed_ = std::make_shared<int>(0);
};

/// Options of a service under test.
struct service_options {
  std::string database_url;
  std::string bootstrap;
  std::string signing_key_file;
  std::string replica_id = "test-replica";
  std::string consumer_group = "seatledger-test";
  std::vector<std::string> extra_args;
};

/// Starts `seatledger serve` without waiting for it (fork from the test's
/// main thread: the child dies with the thread that forked it).
std::unique_ptr<child_process> launch_service(const service_options& options);

/// Starts `seatledger serve` and waits until it has taken its partitions.
std::unique_ptr<child_process> start_service(const service_options& options);

/// A PostgreSQL connection string's database, read for assertions.
class database_probe {
public:
  explicit database_probe(std::string conninfo);

  std::int64_t scalar(const std::string& sql);

  /// Every row of a query as text, columns joined by '|'.
  std::vector<std::string> rows(const std::string& sql);

  /// Upstream events recorded as applied.
  std::int64_t applied_events();

  /// Whether everything published so far has been applied: `applied` upstream
  /// events are recorded, every org's last delta reached its subscription,
  /// and the outbox is empty of unpublished rows.
  bool settled(std::int64_t applied);

  /// Leases the replica holds.
  std::int64_t leases_of(const std::string& group, const std::string& owner);

private:
  std::string conninfo_;
};

/// A generated signing key pair for a test (same key in every run, so
/// license keys compare equal).
std::string test_signing_key(const std::string& dir);

} // namespace seatledger::test
