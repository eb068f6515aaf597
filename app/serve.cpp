#include "app/serve.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <signal.h>
#include <thread>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/coordinator.hpp"
#include "adapters/crypto/keyring.hpp"
#include "adapters/kafka/kafka.hpp"
#include "app/allocator.hpp"
#include "app/runtime.hpp"
#include "log/log.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"
#include "storage/conninfo.hpp"
#include "storage/embedded_postgres.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::app {

namespace {

/// Prints a machine-readable `NAME=value` line on stdout at once.
void announce(const std::string& name, const std::string& value) {
  std::cout << name << "=" << value << std::endl;
}

std::string describe_on_one_line(const caf::error& err) {
  return on_one_line(describe(err));
}

enum class migration { done, failed, misconfigured, stopped };

/// Brings the schema up to date. While PostgreSQL cannot be reached (a
/// database restarting with the pods, a network policy not in place yet)
/// it waits and tries again, like Kafka at start, instead of exiting into a
/// crash loop whose back-off outlasts the outage. A server that refuses
/// this client's credentials (storage::lasting_refusal) and any other
/// failure end start-up. A termination signal ends the wait.
migration migrate_when_reachable(const std::string& database_url,
                                 const sigset_t& signals, int& signal,
                                 actors::service_status& status) {
  auto delay = std::chrono::seconds{1};
  for (long attempt = 1;; ++attempt) {
    auto migrated = storage::migrate(database_url);
    // /readyz names PostgreSQL only once it was tried, and no longer once
    // it answered, from here on rather than from the pipeline's first
    // check.
    status.postgres_ok
      = migrated || !is(migrated.error(), service_errc::storage_unavailable);
    status.postgres_checked = true;
    if (migrated)
      return migration::done;
    if (!is(migrated.error(), service_errc::storage_unavailable)) {
      report_start_failure(std::string{"cannot migrate the database: "}
                           + describe_on_one_line(migrated.error()));
      return migration::failed;
    }
    // Short: a server dropping packets delays the next attempt by as much.
    if (auto refusal = storage::lasting_refusal(database_url,
                                                std::chrono::seconds{5})) {
      report_start_failure(database_refusal(*refusal));
      return migration::misconfigured;
    }
    log::error("PostgreSQL not reachable at start; trying again",
               {{"error", describe(migrated.error())},
                {"attempt", attempt},
                {"retry_in_s", static_cast<long>(delay.count())}});
    timespec wait{static_cast<time_t>(delay.count()), 0};
    auto received = sigtimedwait(&signals, nullptr, &wait);
    if (received > 0) {
      signal = received;
      return migration::stopped;
    }
    delay = std::min(delay * 2, std::chrono::seconds{5});
  }
}

} // namespace

/// How long the process may take to end after the drain: with the drain's
/// 60 s, inside the Deployment's 90 s grace period.
constexpr std::chrono::seconds stop_grace{10};

void report_start_failure(const std::string& line) {
  // A log line like every other of serve's stderr, so a log pipeline keeps
  // the one that says why a pod does not start.
  const std::string prefix = "invalid configuration: -";
  if (line.rfind(prefix, 0) == 0) {
    auto setting = line.substr(prefix.size() - 1);
    setting = setting.substr(0, setting.find_first_of(": "));
    log::error(line, {{"setting", setting}});
  } else {
    log::error(line);
  }
}

int run_serve(const config::settings& settings) {
  log::log_termination();
  log::log_fatal_signals();
  auto signals = block_termination_signals();
  if (log::level lvl; log::parse_level(settings.text("log-level"), lvl))
    log::set_level(lvl);
  auto data_dir = settings.text("data-dir");
  if (auto problem = http_listen_problem(settings.text("http-listen"))) {
    report_start_failure(http_listen_failure(settings, *problem));
    return 2;
  }
  // Keys first, before anything starts: a configured key file that cannot
  // be read is a configuration error (one line naming it, exit 2). The
  // signing key is the configured one or a pair created under the data dir.
  if (auto unreadable
      = crypto::keyring::check_trusted_keys(settings.list("trusted-key"))) {
    report_start_failure("invalid configuration: "
                         + settings.described("trusted-key") + ": "
                         + message_of(unreadable));
    return 2;
  }
  auto signing_key = settings.text("signing-key");
  std::string public_key_file;
  if (signing_key.empty()) {
    auto key_dir = crypto::embedded_key_dir(data_dir);
    auto files = crypto::ensure_key_pair(key_dir);
    if (!files) {
      report_start_failure(
        std::string{"cannot create the signing key under --data-dir ("}
        + key_dir + "): " + describe_on_one_line(files.error()));
      return 1;
    }
    signing_key = files->signing_key_file;
    public_key_file = files->public_key_file;
    // A key of its own per replica: a license signed by one fails
    // verification on the others unless they trust its public key.
    if (files->created)
      log::info("created a signing key pair (set --signing-key for "
                "replicas that share a database: each would make its own)",
                {{"signing_key_file", signing_key},
                 {"public_key_file", public_key_file}});
    if (!settings.text("database-url").empty())
      log::warning("no --signing-key: this replica signs with the key under "
                   "its --data-dir; replicas sharing the database verify "
                   "each other's licenses only with one shared "
                   "--signing-key or each other's --trusted-key",
                   {{"signing_key_file", signing_key}});
  }
  if (auto own = crypto::keyring::load(signing_key, {}); !own) {
    if (public_key_file.empty()) {
      report_start_failure("invalid configuration: "
                           + settings.described("signing-key") + ": "
                           + message_of(own.error()));
      return 2;
    }
    report_start_failure(std::string{"cannot read the signing key: "}
                         + message_of(own.error()));
    return 1;
  }
  auto keys = crypto::keyring::load(signing_key, settings.list("trusted-key"));
  if (!keys) {
    report_start_failure("invalid configuration: "
                         + settings.described("trusted-key") + ": "
                         + message_of(keys.error()));
    return 2;
  }
  // Properties librdkafka takes one by one may still not go together (SASL
  // without sasl.username): it refuses to create a client. Found here,
  // before anything starts, like every other invalid setting.
  if (auto refused = kafka::client_refusal(kafka_config_from(settings));
      refused && is(refused, service_errc::config_invalid)) {
    report_start_failure(
      kafka_refusal(settings.described("kafka-property"), refused));
    return 2;
  }
  // PostgreSQL: the configured server, or a private one under the data dir.
  storage::embedded_postgres_options embedded_options;
  // A crash recovery is waited for as long as it takes, unless told to
  // stop.
  embedded_options.interrupted = [&signals] {
    return termination_pending(signals);
  };
  storage::embedded_postgres embedded{embedded_options};
  auto database_url = settings.text("database-url");
  if (database_url.empty()) {
    auto started
      = embedded.start(storage::embedded_postgres::cluster_under(data_dir));
    if (!started && termination_pending(signals)) {
      // Asked to stop while the server was still starting: a stop, not a
      // failure (start() stopped the server).
      log::info("stopped before the embedded PostgreSQL was ready");
      return 0;
    }
    if (!started) {
      report_start_failure(std::string{"cannot start the embedded PostgreSQL: "}
                           + describe_on_one_line(started.error()));
      return 1;
    }
    database_url = *started;
  }
  // stdout becomes the pod's log: the password stays out of it.
  announce("DATABASE_URL", storage::without_password(database_url));
  // Kafka: the configured cluster, or the mock cluster in this process.
  auto topics = topics_from(settings);
  std::unique_ptr<kafka::mock_cluster> mock;
  kafka::client_config kafka_config = kafka_config_from(settings);
  if (kafka_config.bootstrap_servers.empty()) {
    auto cluster = kafka::mock_cluster::start(
      static_cast<int>(settings.integer("embedded-brokers")),
      all_topics(topics),
      static_cast<int>(settings.integer("embedded-partitions")));
    if (!cluster) {
      report_start_failure(
        std::string{"cannot start the embedded Kafka cluster: "}
        + describe(cluster.error()));
      return 1;
    }
    mock = std::move(*cluster);
    kafka_config.bootstrap_servers = mock->bootstrap_servers();
  }
  announce("KAFKA_BOOTSTRAP", kafka_config.bootstrap_servers);
  // Absolute: a script reading the line may not share serve's folder.
  if (!public_key_file.empty())
    announce(
      "PUBLIC_KEY_FILE",
      std::filesystem::absolute(public_key_file).lexically_normal().string());
  // The actor system and the pipeline.
  caf::actor_system_config cfg;
  // Idle scheduler workers go straight from a short spin to a condition
  // variable (woken when work is enqueued) instead of CAF's default 25 ms of
  // 50 us sleeps: on these machines those sleeps were 15 % of the service's
  // CPU, every batch leaving the workers idle while it commits.
  cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
  // The HTTP parts (the metrics registry the coordinator reports to among
  // them) go after the actor system, which waits for every actor: the
  // coordinator may still be reporting while the main thread unwinds.
  std::shared_ptr<void> http_parts;
  caf::actor_system system{cfg};
  auto context = std::make_shared<actors::entity_context>();
  context->source = settings.text("source");
  context->topics = topics;
  context->key_id = (*keys)->key_id();
  context->sign_license = [keys = *keys](const std::string& claims) {
    return keys->sign_license(claims);
  };
  auto status = std::make_shared<actors::service_status>();
  auto pipeline_cfg = pipeline_config_from(settings);
  pipeline_cfg.database_url = database_url;
  pipeline_cfg.kafka = kafka_config;
  if (mock) {
    // A fresh in-process cluster has none of the records earlier runs
    // consumed: its partitions start at offset 0, so positions stored under
    // the usual group name would point past their end. Each embedded run is
    // its own consumer group; PostgreSQL keeps all state across runs.
    pipeline_cfg.consumer_group
      += "-embedded-"
         + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  }
  auto http = start_http(settings, database_url, kafka_config, *keys, status,
                         context);
  if (!http) {
    // The listen address taken meanwhile names its setting (start_http).
    if (is(http.error(), service_errc::config_invalid)) {
      report_start_failure(on_one_line(message_of(http.error())));
      return 2;
    }
    report_start_failure(describe_on_one_line(http.error()));
    return 1;
  }
  http_parts = http->keep_alive;
  announce("HTTP", http->url);
  // The schema, once PostgreSQL answers; meanwhile /healthz answers and
  // /readyz says why the replica is not ready.
  int early_signal = 0;
  switch (
    migrate_when_reachable(database_url, signals, early_signal, *status)) {
    case migration::done: break;
    case migration::failed: http->stop(); return 1;
    case migration::misconfigured: http->stop(); return 2;
    case migration::stopped:
      log::info("stopped before PostgreSQL was reachable",
                {{"signal", early_signal}});
      http->stop();
      return 0;
  }
  auto pipeline = actors::spawn_pipeline(system, pipeline_cfg, context, status);
  log_allocator_settings();
  log::info("seatledger serving",
            {{"consumer_group", pipeline_cfg.consumer_group},
             {"replica", pipeline_cfg.owner},
             {"kafka", kafka_config.bootstrap_servers}});
  auto sig = wait_for_termination(signals);
  log::info("stopping", {{"signal", sig}});
  status->stopping = true;
  {
    caf::scoped_actor self{system};
    self->request(pipeline, std::chrono::seconds{60}, atoms::drain_atom_v)
      .receive([](caf::ok_atom) {},
               [](caf::error& err) {
                 log::error("drain did not finish", {{"error", describe(err)}});
               });
  }
  // What is left may block: the HTTP server waits for its handlers (one
  // in a PostgreSQL query on a cut network waits some 30 s), and
  // destroying the actor system waits for every actor, one blocked in
  // librdkafka too (leaving the group while the brokers accept no bytes: a
  // paused or partitioned Kafka) for as long as Kafka is away. What is
  // committed is in PostgreSQL, and the partitions' next owner publishes
  // what is pending, so the process may end without them, as a crash
  // would. Counted from here, after the drain: it used to start after the
  // HTTP server had stopped, which could take the end past the grace.
  // The embedded server is stopped after the HTTP server (its handlers
  // read PostgreSQL); ended before that, the process asks it to stop.
  std::thread{[stop_embedded = embedded.stop_requester()] {
    std::this_thread::sleep_for(stop_grace);
    log::error("the HTTP server or the Kafka clients did not stop in time "
               "after draining; exiting without them",
               {{"waited_s", static_cast<long>(stop_grace.count())}});
    stop_embedded();
    std::_Exit(0);
  }}.detach();
  http->stop();
  if (embedded.running())
    embedded.stop();
  log::info("stopped");
  return 0;
}

} // namespace seatledger::app
