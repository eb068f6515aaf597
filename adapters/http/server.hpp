#pragma once

// The HTTP API of http.md on cpp-httplib (behind a pimpl: no httplib type
// here). Every query is answered from PostgreSQL, so any replica answers any
// query; the one write (issuing a license) is published as a command to the
// subscriptions topic, so the subscription's owning actor applies it exactly
// like a Kafka command, and the answer waits until its result is committed.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "actors/service_status.hpp"
#include "adapters/crypto/keyring.hpp"
#include "domain/time.hpp"
#include "storage/catalog.hpp"
#include "storage/ports.hpp"

namespace seatledger::metrics {
class registry;
} // namespace seatledger::metrics

namespace seatledger::http {

struct server_dependencies {
  /// Makes a connection to PostgreSQL for one request at a time (a
  /// `pg_store` is not thread-safe): the server keeps a pool of them and
  /// lends one to each request; at most `max_stores` exist.
  std::function<std::unique_ptr<storage::query_store>()> make_store;

  /// Like `make_store`, for the catalog queries (`/v1/catalog/…`); empty:
  /// those routes answer 404.
  std::function<std::unique_ptr<storage::catalog_store>()> make_catalog;

  /// Signs the usage export and the revocation list; verifies licenses.
  std::shared_ptr<const crypto::keyring> keys;

  /// Readiness for `/readyz`, values for `/metrics`.
  std::shared_ptr<actors::service_status> status;

  /// `/metrics` text and per-route request counts; may be null (then
  /// `/metrics` answers 404).
  metrics::registry* metrics = nullptr;

  /// `(token, scope)` pairs; scope `read` or `admin`.
  std::vector<std::pair<std::string, std::string>> tokens;

  /// Publishes one record to Kafka (the value is a structured-mode
  /// CloudEvent, content type application/cloudevents+json), partitioned by
  /// key with the default (murmur2) partitioner like every producer.
  std::function<caf::expected<void>(
    const std::string& topic, const std::string& key, const std::string& value)>
    publish;

  std::string commands_topic = "seatledger.subscriptions.v1";

  /// The CloudEvents `source` of the commands the API publishes: the
  /// configured source name, as messages.md says of all it publishes.
  std::string source = "seatledger";

  /// "Now" (license status, verification, usage completeness, command
  /// times); empty: the wall clock.
  std::function<domain::timestamp()> clock;

  /// How long a write waits for its result to be committed.
  std::chrono::milliseconds write_timeout{30'000};

  /// How often a waiting write looks for its result in PostgreSQL.
  std::chrono::milliseconds write_poll_interval{20};

  /// Connection threads. httplib holds one for as long as a connection is
  /// open, idle keep-alive and half-sent requests included, so there are
  /// many more of them than database connections: a few stalled clients
  /// must not leave `/healthz` unanswered.
  std::size_t threads = 64;

  /// Database connections per pool (queries; catalog). A request that finds
  /// all of them lent waits up to `store_wait`, then answers 503 `busy`.
  std::size_t max_stores = 8;
  std::chrono::milliseconds store_wait{5'000};

  /// Largest request body accepted (413 above).
  std::size_t max_body_bytes = 64 * 1024;
};

/// The wall clock as a `domain::timestamp` (microseconds).
domain::timestamp wall_clock();

class server {
public:
  explicit server(server_dependencies deps);

  /// Stops the server if it runs.
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds `host:port` (port 0: an ephemeral port) and serves on background
  /// threads. Returns the bound port. Fails with `config_invalid` on a bad
  /// token configuration or missing dependency, and with `internal` when the
  /// address cannot be bound.
  caf::expected<int> start(const std::string& host, int port);

  /// Stops accepting, wakes waiting writes (they answer 503) and joins the
  /// threads. Idempotent.
  void stop();

  /// The bound port, 0 when not running.
  int port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::http
