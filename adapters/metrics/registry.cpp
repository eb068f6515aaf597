#include "adapters/metrics/registry.hpp"

#include <initializer_list>
#include <mutex>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace seatledger::metrics {

namespace {

/// The series of one labelled family, cached by their label values so the
/// pipeline's per-record calls skip prometheus-cpp's label-map hashing and
/// allocation after the first call for a combination. Only `remove` frees a
/// series; a family whose series are removed is set and removed from one
/// thread (the coordinator's), so a reference `get` returned is not freed
/// while in use.
template<class T>
class series_cache {
public:
  series_cache(prometheus::Family<T>& family,
               std::vector<std::string> label_names)
      : family_(family), label_names_(std::move(label_names)) {}

  template<class... Args>
  T& get(std::initializer_list<std::string_view> values, Args&&... args) {
    auto key = key_of(values);
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = cache_.find(key);
    if (it != cache_.end())
      return *it->second;
    prometheus::Labels labels;
    auto name = label_names_.begin();
    for (auto v : values)
      labels.emplace(*name++, std::string{v});
    auto& series = family_.Add(labels, std::forward<Args>(args)...);
    cache_.emplace(std::move(key), &series);
    return series;
  }

  /// Drops the series from the exposition (nothing when it does not exist).
  void remove(std::initializer_list<std::string_view> values) {
    auto key = key_of(values);
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = cache_.find(key);
    if (it == cache_.end())
      return;
    family_.Remove(it->second);
    cache_.erase(it);
  }

private:
  static std::string key_of(std::initializer_list<std::string_view> values) {
    std::string key;
    for (auto v : values) {
      key.append(v);
      key.push_back('\0'); // label values cannot be confused across positions
    }
    return key;
  }

  prometheus::Family<T>& family_;
  std::vector<std::string> label_names_;
  std::mutex mutex_;
  std::unordered_map<std::string, T*> cache_;
};

prometheus::Histogram::BucketBoundaries duration_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

prometheus::Histogram::BucketBoundaries latency_buckets() {
  // Event time to commit: milliseconds when keeping up, minutes to hours in
  // a backfill or after an outage.
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
          5,     10,   30,    60,   120, 300,  900, 3600, 21600};
}

prometheus::Histogram::BucketBoundaries row_buckets() {
  return {1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000};
}

prometheus::ClientMetric
gauge_sample(double value,
             std::vector<std::pair<const char*, std::string>> labels = {}) {
  prometheus::ClientMetric m;
  for (auto& [name, v] : labels)
    m.label.push_back({name, std::move(v)});
  m.gauge.value = value;
  return m;
}

prometheus::MetricFamily gauge_family(std::string name, std::string help) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  return f;
}

prometheus::MetricFamily counter_family(std::string name, std::string help,
                                        std::int64_t value) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Counter;
  prometheus::ClientMetric m;
  m.counter.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
  return f;
}

} // namespace

struct registry::impl {
  prometheus::Registry reg;

  series_cache<prometheus::Counter> consumed{
    prometheus::BuildCounter()
      .Name("seatledger_records_consumed_total")
      .Help("Records applied and committed, by topic and CloudEvents type.")
      .Register(reg),
    {"topic", "type"}};

  series_cache<prometheus::Counter> rejected{
    prometheus::BuildCounter()
      .Name("seatledger_records_rejected_total")
      .Help("Well-formed commands that broke a rule, by topic, type and "
            "rejection reason.")
      .Register(reg),
    {"topic", "type", "reason"}};

  series_cache<prometheus::Counter> dead_letters{
    prometheus::BuildCounter()
      .Name("seatledger_dead_letters_total")
      .Help("Records sent to the dead-letter topic, by decode error code.")
      .Register(reg),
    {"code"}};

  prometheus::Histogram& batch_rows
    = prometheus::BuildHistogram()
        .Name("seatledger_commit_batch_rows")
        .Help("Rows written by one committed batch.")
        .Register(reg)
        .Add({}, row_buckets());

  prometheus::Histogram& commit_duration
    = prometheus::BuildHistogram()
        .Name("seatledger_commit_duration_seconds")
        .Help("Time to commit one batch to PostgreSQL.")
        .Register(reg)
        .Add({}, duration_buckets());

  prometheus::Histogram& event_latency
    = prometheus::BuildHistogram()
        .Name("seatledger_event_to_commit_latency_seconds")
        .Help("From a record's event time to the commit of its effects.")
        .Register(reg)
        .Add({}, latency_buckets());

  series_cache<prometheus::Gauge> lag{
    prometheus::BuildGauge()
      .Name("seatledger_consumer_lag_records")
      .Help("Records not yet consumed, by topic and partition.")
      .Register(reg),
    {"topic", "partition"}};

  series_cache<prometheus::Counter> gaps{
    prometheus::BuildCounter()
      .Name("seatledger_position_gaps_total")
      .Help("Stored positions Kafka no longer had (records removed by "
            "retention before they were consumed), by topic and partition.")
      .Register(reg),
    {"topic", "partition"}};

  series_cache<prometheus::Counter> http_requests{
    prometheus::BuildCounter()
      .Name("seatledger_http_requests_total")
      .Help("HTTP requests answered, by route pattern and status code.")
      .Register(reg),
    {"route", "code"}};

  series_cache<prometheus::Histogram> http_duration{
    prometheus::BuildHistogram()
      .Name("seatledger_http_request_duration_seconds")
      .Help("Time to answer an HTTP request, by route pattern.")
      .Register(reg),
    {"route"}};

  prometheus::TextSerializer serializer;
};

registry::registry() : impl_(std::make_unique<impl>()) {}

registry::~registry() = default;

void registry::known(const actors::service_status::known_series& series) {
  // Created, not incremented: a series that exists already keeps its count.
  for (const auto& [topic, type] : series.consumed)
    impl_->consumed.get({topic, type});
  for (const auto& [topic, type, reason] : series.rejected)
    impl_->rejected.get({topic, type, reason});
  for (const auto& code : series.dead_letter_codes)
    impl_->dead_letters.get({code});
  for (const auto& [topic, partition] : series.partitions)
    impl_->gaps.get({topic, std::to_string(partition)});
}

void registry::consumed(const std::string& topic, const std::string& type) {
  impl_->consumed.get({topic, type}).Increment();
}

void registry::rejected(const std::string& topic, const std::string& type,
                        const std::string& reason) {
  impl_->rejected.get({topic, type, reason}).Increment();
}

void registry::dead_letter(const std::string& code) {
  impl_->dead_letters.get({code}).Increment();
}

void registry::batch(std::size_t rows, double commit_seconds) {
  impl_->batch_rows.Observe(static_cast<double>(rows));
  impl_->commit_duration.Observe(commit_seconds);
}

void registry::latency(double event_to_commit_seconds) {
  impl_->event_latency.Observe(event_to_commit_seconds);
}

void registry::lag(const std::string& topic, std::int32_t partition,
                   std::int64_t lag) {
  impl_->lag.get({topic, std::to_string(partition)})
    .Set(static_cast<double>(lag));
}

void registry::lag_gone(const std::string& topic, std::int32_t partition) {
  impl_->lag.remove({topic, std::to_string(partition)});
}

void registry::gap(const std::string& topic, std::int32_t partition) {
  impl_->gaps.get({topic, std::to_string(partition)}).Increment();
}

void registry::http_request(std::string_view route, int status,
                            double seconds) {
  impl_->http_requests.get({route, std::to_string(status)}).Increment();
  impl_->http_duration.get({route}, duration_buckets()).Observe(seconds);
}

std::string registry::render(const actors::service_status& status) const {
  auto families = impl_->reg.Collect();
  // What the pipeline keeps in `service_status` is read here rather than
  // mirrored into prometheus-cpp objects: one source of truth, no delta
  // bookkeeping between two counters.
  auto outbox = gauge_family("seatledger_outbox_depth",
                             "Committed events not yet published to Kafka.");
  outbox.metric.push_back(
    gauge_sample(static_cast<double>(status.outbox_depth.load())));
  families.push_back(std::move(outbox));

  auto actors = gauge_family("seatledger_active_actors",
                             "Entity actors in memory, by kind.");
  actors.metric.push_back(gauge_sample(
    static_cast<double>(status.active_orgs.load()), {{"kind", "org"}}));
  actors.metric.push_back(
    gauge_sample(static_cast<double>(status.active_subscriptions.load()),
                 {{"kind", "subscription"}}));
  families.push_back(std::move(actors));

  auto partitions = gauge_family("seatledger_assigned_partitions",
                                 "Partitions this replica consumes.");
  partitions.metric.push_back(
    gauge_sample(static_cast<double>(status.assigned_partitions.load())));
  families.push_back(std::move(partitions));

  // No sample before the first attempt: 0 would say "down" for the first
  // seconds of every start, where /readyz says "not tried yet".
  auto up = gauge_family("seatledger_dependency_up",
                         "Whether a dependency was reachable at the last "
                         "attempt (1) or not (0); absent before the first.");
  if (status.kafka_checked.load())
    up.metric.push_back(
      gauge_sample(status.kafka_ok.load() ? 1 : 0, {{"dependency", "kafka"}}));
  if (status.postgres_checked.load())
    up.metric.push_back(gauge_sample(status.postgres_ok.load() ? 1 : 0,
                                     {{"dependency", "postgresql"}}));
  families.push_back(std::move(up));

  std::string reason;
  auto ready = gauge_family("seatledger_ready",
                            "Whether the replica is ready (as /readyz).");
  ready.metric.push_back(gauge_sample(status.ready(reason) ? 1 : 0));
  families.push_back(std::move(ready));

  families.push_back(
    counter_family("seatledger_batches_committed_total",
                   "Batch transactions committed to PostgreSQL (one "
                   "per commit connection a batch writes "
                   "on).",
                   status.batches_committed.load()));
  families.push_back(counter_family("seatledger_records_committed_total",
                                    "Records whose effects were committed.",
                                    status.records_committed.load()));
  families.push_back(counter_family("seatledger_commit_failures_total",
                                    "Batch commits that failed.",
                                    status.commit_failures.load()));
  families.push_back(
    counter_family("seatledger_fenced_commits_total",
                   "Batch commits refused because another replica took "
                   "over the partition.",
                   status.fenced_commits.load()));
  families.push_back(
    counter_family("seatledger_leases_taken_back_total",
                   "Partition leases taken back from a writer that took "
                   "them without owning the partitions in Kafka.",
                   status.leases_taken_back.load()));
  families.push_back(
    counter_family("seatledger_duplicates_skipped_total",
                   "Records skipped as already applied (same source and id).",
                   status.duplicates_skipped.load()));
  families.push_back(
    counter_family("seatledger_batches_already_applied_total",
                   "Batches refused at commit because they held an upstream "
                   "event applied before, and applied again after looking "
                   "their events up.",
                   status.batches_already_applied.load()));
  families.push_back(counter_family("seatledger_licenses_issued_total",
                                    "License keys issued and committed.",
                                    status.licenses_issued.load()));
  families.push_back(counter_family("seatledger_overages_detected_total",
                                    "overage.detected events committed.",
                                    status.overages_detected.load()));
  families.push_back(counter_family("seatledger_events_published_total",
                                    "Outbox events published to Kafka.",
                                    status.published_events.load()));
  families.push_back(counter_family(
    "seatledger_events_refused_total",
    "Outbox events Kafka refused outright (too large for it): logged, not "
    "published.",
    status.refused_events.load()));
  families.push_back(counter_family(
    "seatledger_events_undelivered_total",
    "Delivery reports of outbox events that failed otherwise (a Kafka error "
    "that is not the event's own): the events go again from their chunk.",
    status.undelivered_events.load()));
  families.push_back(counter_family(
    "seatledger_producer_fatal_errors_total",
    "Fatal errors of a Kafka producer of the service (the relay's or the "
    "HTTP API's); each producer was replaced by a new one.",
    status.producer_fatal_errors.load()));
  return impl_->serializer.Serialize(families);
}

} // namespace seatledger::metrics
