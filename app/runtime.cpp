#include "app/runtime.hpp"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include "adapters/crypto/keyring.hpp"
#include "adapters/http/server.hpp"
#include "adapters/metrics/registry.hpp"
#include "log/log.hpp"
#include "messages/service_error.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::app {

sigset_t block_termination_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

namespace {

/// `HOST:PORT` (validated by the option's `host_port` check) split in two.
/// An IPv6 host is written in brackets (`[::]:8080`), which getaddrinfo does
/// not take: they are dropped.
std::pair<std::string, std::string>
split_listen_address(const std::string& listen) {
  auto colon = listen.rfind(':');
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {host, listen.substr(colon + 1)};
}

/// Where a client on this machine reaches a server listening on `host`.
std::string url_host(const std::string& host) {
  if (host == "0.0.0.0")
    return "127.0.0.1";
  if (host == "::")
    return "[::1]";
  if (host.find(':') != std::string::npos)
    return "[" + host + "]";
  return host;
}

} // namespace

std::optional<std::string> http_listen_problem(const std::string& listen) {
  auto [host, port] = split_listen_address(listen);
  if (port == "0")
    return std::nullopt;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (auto rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
      rc != 0)
    return std::string{gai_strerror(rc)};
  std::optional<std::string> problem = "no usable address";
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0)
      continue;
    // As the HTTP server binds: a port in TIME_WAIT is not "in use".
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    bool ok = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0
              && ::listen(fd, 1) == 0;
    auto err = errno;
    ::close(fd);
    if (ok) {
      problem.reset();
      break;
    }
    problem = std::string{std::strerror(err)};
  }
  freeaddrinfo(found);
  return problem;
}

std::string on_one_line(const std::string& text) {
  std::string result;
  bool in_break = false;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      in_break = true;
      continue;
    }
    if (in_break && !result.empty())
      result += " | ";
    in_break = false;
    result.push_back(c);
  }
  return result;
}

std::string kafka_refusal(const std::string& setting, const caf::error& err) {
  return "invalid configuration: " + setting + ": "
         + on_one_line(message_of(err));
}

std::string database_refusal(const std::string& refusal) {
  return "invalid configuration: --database-url: PostgreSQL refuses the "
         "connection: "
         + on_one_line(refusal);
}

std::string http_listen_failure(const config::settings& settings,
                                const std::string& reason) {
  return "invalid configuration: " + settings.described("http-listen")
         + ": cannot listen on " + settings.text("http-listen") + ": " + reason;
}

int wait_for_termination(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

bool termination_pending(const sigset_t& signals) {
  sigset_t pending;
  sigemptyset(&pending);
  if (sigpending(&pending) != 0)
    return false;
  for (int sig : {SIGINT, SIGTERM})
    if (sigismember(&signals, sig) == 1 && sigismember(&pending, sig) == 1)
      return true;
  return false;
}

actors::topic_names topics_from(const config::settings& settings) {
  actors::topic_names t;
  t.membership = settings.text("topic-membership");
  t.subscriptions = settings.text("topic-subscriptions");
  t.catalog = settings.text("topic-catalog");
  t.deltas = settings.text("topic-deltas");
  t.events = settings.text("topic-events");
  t.dlq = settings.text("topic-dlq");
  return t;
}

std::vector<std::string> all_topics(const actors::topic_names& t) {
  return {t.membership, t.subscriptions, t.catalog, t.deltas, t.events, t.dlq};
}

kafka::client_config kafka_config_from(const config::settings& settings) {
  kafka::client_config result;
  result.bootstrap_servers = settings.text("kafka-bootstrap");
  for (const auto& kv : settings.list("kafka-property")) {
    auto eq = kv.find('=');
    result.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return result;
}

actors::pipeline_config pipeline_config_from(const config::settings& settings) {
  using namespace std::chrono;
  actors::pipeline_config cfg;
  cfg.consumer_group = settings.text("consumer-group");
  cfg.owner = settings.text("replica-id");
  if (cfg.owner.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    cfg.owner = std::string{host} + "-" + std::to_string(getpid()) + "-"
                + std::to_string(
                  duration_cast<seconds>(system_clock::now().time_since_epoch())
                    .count());
  }
  cfg.max_batch_records
    = static_cast<std::size_t>(settings.integer("batch-max-records"));
  cfg.commit_connections
    = static_cast<std::size_t>(settings.integer("commit-connections"));
  cfg.commit_split_records
    = static_cast<std::size_t>(settings.integer("commit-split-records"));
  cfg.linger = settings.duration("batch-linger");
  cfg.poll_wait = settings.duration("poll-wait");
  cfg.idle_timeout
    = duration_cast<seconds>(settings.duration("actor-idle-timeout"));
  cfg.month_close_grace
    = duration_cast<seconds>(settings.duration("month-close-grace"));
  cfg.dedup_window
    = duration_cast<microseconds>(settings.duration("dedup-window"));
  cfg.max_event_time_ahead
    = duration_cast<microseconds>(settings.duration("max-event-time-ahead"));
  return cfg;
}

namespace {

/// Publishes one record and waits for the broker's acknowledgement (the HTTP
/// API's writes travel through Kafka to the owning replica). A record that
/// was queued but not acknowledged in time is `timeout`: it stays queued and
/// may still be written.
class command_publisher {
public:
  command_publisher(std::unique_ptr<kafka::producer> producer,
                    std::shared_ptr<actors::service_status> status)
      : producer_(std::move(producer)), status_(std::move(status)) {}

  caf::expected<void> publish(const std::string& topic, const std::string& key,
                              const std::string& value) {
    std::lock_guard<std::mutex> guard{mutex_};
    // Only the command that met the fatal error fails; the next one goes
    // out through a new producer.
    if (auto fatal = producer_->replace_if_fatal()) {
      ++status_->producer_fatal_errors;
      log::error("the HTTP API's producer hit a fatal error; a new one "
                 "publishes the commands from now on",
                 {{"error", *fatal}});
    }
    // Shared with the delivery callback, which a later poll may still run
    // after this call gave up waiting.
    struct outcome {
      bool done = false;
      kafka::delivery_status status = kafka::delivery_status::failed;
      std::string error;
    };
    if (kafka_known_down())
      return make_error(service_errc::kafka_failure, "Kafka is not reachable");
    auto result = std::make_shared<outcome>();
    auto queued = producer_->produce(
      topic, key, value, {{"content-type", "application/cloudevents+json"}},
      [result](kafka::delivery_status status, const std::string& err) {
        result->done = true;
        result->status = status;
        result->error = err;
      });
    if (!queued)
      return queued.error();
    // Given up once Kafka is known to be gone: the record stays queued (and
    // may still be written), and the HTTP thread is free.
    for (int i = 0; i < 300 && !result->done && !kafka_known_down(); ++i)
      producer_->poll(100);
    if (!result->done)
      return make_error(service_errc::timeout, "Kafka did not acknowledge");
    switch (result->status) {
      case kafka::delivery_status::delivered: return caf::unit;
      case kafka::delivery_status::refused:
        return make_error(service_errc::kafka_failure, result->error);
      case kafka::delivery_status::failed: break;
    }
    // Timed out or lost in flight: the broker may have written it.
    return make_error(service_errc::timeout, result->error);
  }

private:
  /// Two of the pipeline's Kafka metadata round trips in a row (one every
  /// 5 s, each waiting 2 s; every second at start-up) got no answer: not
  /// one slow metadata answer.
  /// Commands waited their 30 s each for a Kafka that was gone, one after
  /// another (the lock), each holding an HTTP thread: enough of them left
  /// none for /healthz, and Kubernetes restarted the pod for a Kafka
  /// outage.
  bool kafka_known_down() const {
    return status_->kafka_failed_checks >= 2;
  }

  std::mutex mutex_;
  std::unique_ptr<kafka::producer> producer_;
  std::shared_ptr<actors::service_status> status_;
};

struct http_parts {
  std::unique_ptr<metrics::registry> registry;
  std::unique_ptr<command_publisher> publisher;
  std::unique_ptr<http::server> server;
  std::shared_ptr<actors::service_status> status;
};

} // namespace

caf::expected<http_handle>
start_http(const config::settings& settings, const std::string& database_url,
           const kafka::client_config& kafka,
           std::shared_ptr<const crypto::keyring> keys,
           std::shared_ptr<actors::service_status> status,
           std::shared_ptr<const actors::entity_context> context) {
  auto parts = std::make_shared<http_parts>();
  parts->status = status;
  parts->registry = std::make_unique<metrics::registry>();
  status->metrics = parts->registry.get();
  // Properties librdkafka refuses were found before anything started
  // (kafka::client_refusal in run_serve).
  auto producer = kafka::producer::make(kafka);
  if (!producer)
    return producer.error();
  parts->publisher = std::make_unique<command_publisher>(std::move(*producer),
                                                         status);
  http::server_dependencies deps;
  deps.make_store = [database_url]() -> std::unique_ptr<storage::query_store> {
    return std::make_unique<storage::pg_store>(database_url);
  };
  deps.make_catalog = [database_url] {
    return std::make_unique<storage::pg_catalog>(database_url);
  };
  deps.keys = std::move(keys);
  deps.status = status;
  deps.metrics = parts->registry.get();
  for (const auto& entry : settings.list("api-token")) {
    auto colon = entry.rfind(':');
    deps.tokens.emplace_back(entry.substr(0, colon), entry.substr(colon + 1));
  }
  auto* publisher = parts->publisher.get();
  deps.publish = [publisher](const std::string& topic, const std::string& key,
                             const std::string& value) {
    return publisher->publish(topic, key, value);
  };
  deps.commands_topic = context->topics.subscriptions;
  deps.source = context->source;
  parts->server = std::make_unique<http::server>(std::move(deps));
  auto listen = settings.text("http-listen");
  auto [host, port_text] = split_listen_address(listen);
  auto port = parts->server->start(host, std::stoi(port_text));
  if (!port)
    return make_error(service_errc::config_invalid,
                      http_listen_failure(settings, describe(port.error())));
  http_handle handle;
  handle.url = "http://" + url_host(host) + ":" + std::to_string(*port);
  handle.keep_alive = parts;
  handle.stop = [parts] {
    parts->server->stop();
    parts->status->metrics = nullptr;
  };
  return handle;
}

} // namespace seatledger::app
