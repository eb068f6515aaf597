#pragma once

// Wiring shared by the subcommands: configuration into component configs,
// signals, the HTTP server.

#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/coordinator.hpp"
#include "actors/entity_context.hpp"
#include "actors/service_status.hpp"
#include "adapters/kafka/kafka.hpp"
#include "config/options.hpp"

namespace seatledger::crypto {
class keyring;
} // namespace seatledger::crypto

namespace seatledger::app {

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts
/// later, so `wait_for_termination` receives them.
sigset_t block_termination_signals();

/// Waits for SIGINT or SIGTERM; returns the signal number.
int wait_for_termination(const sigset_t& signals);

/// Whether SIGINT or SIGTERM arrived (blocked, so pending) without taking
/// it: for a wait before the service runs that must end when asked to.
bool termination_pending(const sigset_t& signals);

actors::topic_names topics_from(const config::settings& settings);

std::vector<std::string> all_topics(const actors::topic_names& topics);

kafka::client_config kafka_config_from(const config::settings& settings);

actors::pipeline_config pipeline_config_from(const config::settings& settings);

/// Why the HTTP address `HOST:PORT` cannot be listened on (in use, no such
/// address, not permitted), or nothing when it can. Checked before anything
/// starts, so a taken port fails start-up at once rather than after the
/// database and Kafka came up; port 0 always can.
std::optional<std::string> http_listen_problem(const std::string& listen);

/// `text` on one line, its line breaks written ` | `: a fatal start-up
/// error is one line on stderr, and pg_ctl's or libpq's messages span
/// several.
std::string on_one_line(const std::string& text);

/// The one line serve and the tools stop with when librdkafka refuses to
/// create a client (`err`): the passed-through properties, named by
/// `setting` ("--kafka-property", or with where the value came from), are
/// at fault.
std::string kafka_refusal(const std::string& setting, const caf::error& err);

/// The one line serve and `migrate` stop with when PostgreSQL refuses the
/// configured credentials (storage::lasting_refusal's `refusal`).
std::string database_refusal(const std::string& refusal);

/// The one line start-up stops with when `--http-listen` cannot be
/// listened on.
std::string http_listen_failure(const config::settings& settings,
                                const std::string& reason);

/// The running HTTP server (and what it keeps alive).
struct http_handle {
  std::string url;
  std::function<void()> stop;
  std::shared_ptr<void> keep_alive;
};

caf::expected<http_handle>
start_http(const config::settings& settings, const std::string& database_url,
           const kafka::client_config& kafka,
           std::shared_ptr<const crypto::keyring> keys,
           std::shared_ptr<actors::service_status> status,
           std::shared_ptr<const actors::entity_context> context);

} // namespace seatledger::app
