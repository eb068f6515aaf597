#pragma once

// The service's Prometheus metrics. The pipeline reports events through the
// `service_status::observer` interface (called on its own thread, so every
// method is thread-safe and cheap); the gauges and counters the pipeline
// already keeps in `service_status` are read when the text is rendered.
// prometheus-cpp stays behind a pimpl: no prometheus header leaks from here.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "actors/service_status.hpp"

namespace seatledger::metrics {

/// The `Content-Type` of `registry::render`'s text.
inline constexpr const char* exposition_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric is named `seatledger_…`; no label names an entity (no org,
/// user, subscription or license ids), so the series count stays bounded.
class registry final : public actors::service_status::observer {
public:
  registry();
  ~registry() override;

  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // -- service_status::observer -----------------------------------------------

  void known(const actors::service_status::known_series& series) override;

  void consumed(const std::string& topic, const std::string& type) override;

  void rejected(const std::string& topic, const std::string& type,
                const std::string& reason) override;

  void dead_letter(const std::string& code) override;

  void batch(std::size_t rows, double commit_seconds) override;

  void latency(double event_to_commit_seconds) override;

  void lag(const std::string& topic, std::int32_t partition,
           std::int64_t lag) override;

  void lag_gone(const std::string& topic, std::int32_t partition) override;

  void gap(const std::string& topic, std::int32_t partition) override;

  // -- HTTP adapter -----------------------------------------------------------

  /// One answered request; `route` is the route's pattern (e.g.
  /// "/v1/subscriptions/{id}"), never the concrete path.
  void http_request(std::string_view route, int status, double seconds);

  // -- exposition -------------------------------------------------------------

  /// The Prometheus text exposition (format 0.0.4) of every metric, with the
  /// values kept in `status` (outbox depth, active actors, assigned
  /// partitions, readiness and the pipeline's counters) read now.
  std::string render(const actors::service_status& status) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::metrics
