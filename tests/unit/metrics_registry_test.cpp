// The Prometheus exposition: names, types and labels, values from the
// observer and from service_status, and `promtool check metrics` on it.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "adapters/metrics/registry.hpp"

using namespace seatledger;

namespace {

constexpr const char* promtool = "/usr/bin/promtool";

struct promtool_result {
  int exit_code = -1;
  std::string output;
};

/// Runs `promtool check metrics` on the text (it reads stdin).
promtool_result check_metrics(const std::string& text) {
  char path[] = "/tmp/seatledger-metrics-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  {
    std::ofstream out{path, std::ios::binary};
    out << text;
  }
  close(fd);
  promtool_result result;
  auto command = std::string{promtool} + " check metrics < " + path + " 2>&1";
  if (auto* pipe = popen(command.c_str(), "r")) {
    char buf[512];
    while (auto n = fread(buf, 1, sizeof(buf), pipe))
      result.output.append(buf, n);
    auto status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  unlink(path);
  return result;
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in{text};
  for (std::string l; std::getline(in, l);)
    if (l == line)
      return true;
  return false;
}

/// Every label name used by a sample line.
std::set<std::string> label_names(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in{text};
  for (std::string l; std::getline(in, l);) {
    if (l.empty() || l[0] == '#')
      continue;
    auto open = l.find('{');
    if (open == std::string::npos)
      continue;
    auto pos = open + 1;
    while (pos < l.size() && l[pos] != '}') {
      auto eq = l.find('=', pos);
      names.insert(l.substr(pos, eq - pos));
      // Skip the quoted value (with escapes).
      auto i = eq + 2;
      while (i < l.size() && l[i] != '"')
        i += l[i] == '\\' ? 2 : 1;
      pos = i + 1;
      if (pos < l.size() && l[pos] == ',')
        ++pos;
    }
  }
  return names;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

void feed(metrics::registry& r) {
  r.consumed("seatledger.membership.v1", "seatledger.member.added");
  r.consumed("seatledger.membership.v1", "seatledger.member.added");
  r.consumed("seatledger.subscriptions.v1", "seatledger.subscription.create");
  r.rejected("seatledger.subscriptions.v1", "command", "unknown_plan");
  r.dead_letter("malformed_json");
  r.dead_letter("malformed_json");
  r.dead_letter("unknown_type");
  r.batch(120, 0.004);
  r.batch(3, 0.2);
  r.latency(0.05);
  r.latency(7200);
  r.lag("seatledger.membership.v1", 0, 42);
  r.lag("seatledger.membership.v1", 0, 40); // a gauge: the last value counts
  r.lag("seatledger.membership.v1", 1, 0);
  r.gap("seatledger.subscriptions.v1", 3);
  r.http_request("/v1/subscriptions/{id}", 200, 0.003);
  r.http_request("/v1/subscriptions/{id}", 404, 0.001);
}

} // namespace

TEST(metrics_registry, promtool_is_installed) {
  // The promtool tests below need it; the test command installs Debian's
  // `prometheus` package.
  ASSERT_EQ(access(promtool, X_OK), 0) << promtool << " is missing";
}

TEST(metrics_registry, renders_every_metric_with_its_value) {
  metrics::registry r;
  feed(r);
  actors::service_status status;
  status.outbox_depth = 7;
  status.active_orgs = 3;
  status.active_subscriptions = 5;
  status.assigned_partitions = 4;
  status.kafka_ok = true;
  status.kafka_checked = true;
  status.postgres_ok = false;
  status.postgres_checked = true;
  status.batches_committed = 11;
  status.records_committed = 1200;
  status.licenses_issued = 2;
  status.position_gaps = 1;
  status.published_events = 99;
  status.refused_events = 1;
  status.undelivered_events = 4;
  status.producer_fatal_errors = 5;
  status.leases_taken_back = 2;
  status.batches_already_applied = 3;
  auto text = r.render(status);

  for (const auto* line : {
         "# TYPE seatledger_records_consumed_total counter",
         "seatledger_records_consumed_total{topic=\"seatledger.membership.v1\","
         "type=\"seatledger.member.added\"} 2",
         "seatledger_records_consumed_total{topic=\"seatledger.subscriptions."
         "v1\",type=\"seatledger.subscription.create\"} 1",
         "# TYPE seatledger_records_rejected_total counter",
         "seatledger_records_rejected_total{reason=\"unknown_plan\",topic="
         "\"seatledger.subscriptions.v1\",type=\"command\"} 1",
         "seatledger_dead_letters_total{code=\"malformed_json\"} 2",
         "seatledger_dead_letters_total{code=\"unknown_type\"} 1",
         "# TYPE seatledger_commit_batch_rows histogram",
         "seatledger_commit_batch_rows_count 2",
         "seatledger_commit_batch_rows_sum 123",
         "seatledger_commit_batch_rows_bucket{le=\"5\"} 1",
         "# TYPE seatledger_commit_duration_seconds histogram",
         "seatledger_commit_duration_seconds_count 2",
         "seatledger_commit_duration_seconds_bucket{le=\"0.005\"} 1",
         "seatledger_commit_duration_seconds_bucket{le=\"+Inf\"} 2",
         "# TYPE seatledger_event_to_commit_latency_seconds histogram",
         "seatledger_event_to_commit_latency_seconds_count 2",
         "seatledger_event_to_commit_latency_seconds_bucket{le=\"3600\"} 1",
         "# TYPE seatledger_consumer_lag_records gauge",
         "seatledger_consumer_lag_records{partition=\"0\",topic=\"seatledger."
         "membership.v1\"} 40",
         "seatledger_consumer_lag_records{partition=\"1\",topic=\"seatledger."
         "membership.v1\"} 0",
         "# TYPE seatledger_position_gaps_total counter",
         "seatledger_position_gaps_total{partition=\"3\",topic=\"seatledger."
         "subscriptions.v1\"} 1",
         "seatledger_http_requests_total{code=\"404\",route=\"/v1/"
         "subscriptions/{id}\"} 1",
         "seatledger_http_request_duration_seconds_count{route=\"/v1/"
         "subscriptions/{id}\"} 2",
         "# TYPE seatledger_outbox_depth gauge",
         "seatledger_outbox_depth 7",
         "# TYPE seatledger_active_actors gauge",
         "seatledger_active_actors{kind=\"org\"} 3",
         "seatledger_active_actors{kind=\"subscription\"} 5",
         "seatledger_assigned_partitions 4",
         "seatledger_dependency_up{dependency=\"kafka\"} 1",
         "seatledger_dependency_up{dependency=\"postgresql\"} 0",
         "seatledger_ready 0",
         "# TYPE seatledger_batches_committed_total counter",
         "seatledger_batches_committed_total 11",
         "seatledger_records_committed_total 1200",
         "# TYPE seatledger_licenses_issued_total counter",
         "seatledger_licenses_issued_total 2",
         "seatledger_events_published_total 99",
         "seatledger_events_refused_total 1",
         "seatledger_events_undelivered_total 4",
         "seatledger_producer_fatal_errors_total 5",
         "# TYPE seatledger_leases_taken_back_total counter",
         "seatledger_leases_taken_back_total 2",
         "# TYPE seatledger_batches_already_applied_total counter",
         "seatledger_batches_already_applied_total 3",
       })
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;

  // Every name carries the prefix; every counter ends in _total.
  std::istringstream in{text};
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("# TYPE ", 0) == 0) {
      std::istringstream words{l.substr(7)};
      std::string name, type;
      words >> name >> type;
      EXPECT_EQ(name.rfind("seatledger_", 0), 0u) << name;
      if (type == "counter") {
        EXPECT_GE(name.size(), 6u);
        EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
      }
      if (type == "histogram") {
        EXPECT_TRUE(name.find("_seconds") != std::string::npos
                    || name.find("_rows") != std::string::npos)
          << name << " has no unit";
      }
    }
  }
  // No label names an entity.
  std::set<std::string> allowed{"topic",      "type",      "reason",
                                "code",       "partition", "kind",
                                "dependency", "route",     "le"};
  for (const auto& name : label_names(text))
    EXPECT_TRUE(allowed.count(name)) << "unexpected label " << name;
}

TEST(metrics_registry, readiness_follows_service_status) {
  metrics::registry r;
  actors::service_status status;
  status.kafka_ok = true;
  status.postgres_ok = true;
  status.consuming = true;
  status.last_cycle_unix_ms = now_ms();
  EXPECT_TRUE(has_line(r.render(status), "seatledger_ready 0"))
    << "ready before the group assigned partitions";
  status.partitions_assigned = true;
  EXPECT_TRUE(has_line(r.render(status), "seatledger_ready 0"))
    << "ready before PostgreSQL and Kafka were tried";
  status.postgres_checked = true;
  EXPECT_TRUE(has_line(r.render(status), "seatledger_ready 0"))
    << "ready before Kafka was tried";
  status.kafka_checked = true;
  EXPECT_TRUE(has_line(r.render(status), "seatledger_ready 1"));
  status.consuming = false;
  EXPECT_TRUE(has_line(r.render(status), "seatledger_ready 0"));
}

TEST(metrics_registry, a_dependency_not_tried_yet_has_no_up_sample) {
  // It was 0, "down", for the first seconds of every start.
  metrics::registry r;
  actors::service_status status;
  auto text = r.render(status);
  EXPECT_EQ(text.find("seatledger_dependency_up{"), std::string::npos) << text;
  status.postgres_checked = true;
  status.postgres_ok = true;
  text = r.render(status);
  EXPECT_TRUE(
    has_line(text, "seatledger_dependency_up{dependency=\"postgresql\"} 1"))
    << text;
  EXPECT_EQ(text.find("seatledger_dependency_up{dependency=\"kafka\"}"),
            std::string::npos)
    << text;
  status.kafka_checked = true;
  EXPECT_TRUE(has_line(r.render(status),
                       "seatledger_dependency_up{dependency=\"kafka\"} 0"));
}

TEST(metrics_registry, lag_of_a_partition_given_up_is_not_reported) {
  // Another replica reports it now; a stale series would be summed with
  // that replica's into the group's lag for good.
  metrics::registry r;
  actors::service_status status;
  r.lag("seatledger.membership.v1", 0, 42);
  r.lag("seatledger.membership.v1", 1, 7);
  r.lag_gone("seatledger.membership.v1", 0);
  r.lag_gone("seatledger.membership.v1", 5); // never reported: nothing
  auto text = r.render(status);
  EXPECT_FALSE(has_line(text, "seatledger_consumer_lag_records{partition=\"0\","
                              "topic=\"seatledger.membership.v1\"} 42"))
    << text;
  EXPECT_TRUE(has_line(text, "seatledger_consumer_lag_records{partition=\"1\","
                             "topic=\"seatledger.membership.v1\"} 7"))
    << text;
  // Taken back later, it is reported again.
  r.lag("seatledger.membership.v1", 0, 3);
  EXPECT_TRUE(has_line(r.render(status),
                       "seatledger_consumer_lag_records{partition=\"0\","
                       "topic=\"seatledger.membership.v1\"} 3"));
}

TEST(metrics_registry, known_series_start_at_zero_and_keep_their_counts) {
  // A counter that appears at 1 shows Prometheus no increase, so an alert
  // on the first dead letter or position gap never fired.
  metrics::registry r;
  actors::service_status status;
  r.dead_letter("malformed_json");
  actors::service_status::known_series known;
  known.consumed = {{"seatledger.membership.v1", "seatledger.member.added"}};
  known.rejected = {{"seatledger.subscriptions.v1",
                     "seatledger.subscription.renew", "invalid_term"}};
  known.dead_letter_codes = {"malformed_json", "key_mismatch"};
  known.partitions = {{"seatledger.membership.v1", 2}};
  r.known(known);
  r.known(known); // again (partition counts changed): no sample counts twice
  auto text = r.render(status);
  EXPECT_TRUE(has_line(text, "seatledger_records_consumed_total{topic="
                             "\"seatledger.membership.v1\",type="
                             "\"seatledger.member.added\"} 0"))
    << text;
  EXPECT_TRUE(has_line(text, "seatledger_records_rejected_total{reason="
                             "\"invalid_term\",topic="
                             "\"seatledger.subscriptions.v1\",type="
                             "\"seatledger.subscription.renew\"} 0"))
    << text;
  EXPECT_TRUE(
    has_line(text, "seatledger_dead_letters_total{code=\"key_mismatch\"} 0"))
    << text;
  EXPECT_TRUE(
    has_line(text, "seatledger_dead_letters_total{code=\"malformed_json\"} 1"))
    << text;
  EXPECT_TRUE(has_line(text, "seatledger_position_gaps_total{partition=\"2\","
                             "topic=\"seatledger.membership.v1\"} 0"))
    << text;
}

TEST(metrics_registry, promtool_check_metrics_passes) {
  ASSERT_EQ(access(promtool, X_OK), 0) << promtool << " is missing";
  metrics::registry r;
  actors::service_status status;
  // Fresh: families without samples yet.
  auto fresh = check_metrics(r.render(status));
  EXPECT_EQ(fresh.exit_code, 0) << fresh.output;
  EXPECT_EQ(fresh.output, "") << "promtool lint findings";
  feed(r);
  // Label values that need escaping.
  r.consumed("odd\"topic\\name", "type\nwith newline");
  status.outbox_depth = 3;
  auto text = r.render(status);
  auto fed = check_metrics(text);
  EXPECT_EQ(fed.exit_code, 0) << fed.output << "\n" << text;
  EXPECT_EQ(fed.output, "") << "promtool lint findings\n" << text;
}

TEST(metrics_registry, promtool_rejects_a_broken_exposition) {
  // Guards the check above: promtool must actually be judging the text.
  ASSERT_EQ(access(promtool, X_OK), 0) << promtool << " is missing";
  auto bad = check_metrics("# TYPE seatledger_x counter\nseatledger_x{ 1\n");
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  auto lint = check_metrics("# HELP seatledger_things Things.\n"
                            "# TYPE seatledger_things counter\n"
                            "seatledger_things 1\n");
  EXPECT_NE(lint.exit_code, 0) << "a counter without _total should fail lint";
}

TEST(metrics_registry, observer_calls_are_thread_safe) {
  metrics::registry r;
  constexpr int threads = 4;
  constexpr int per_thread = 5000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&r, t] {
      for (int i = 0; i < per_thread; ++i) {
        r.consumed("topic", i % 2 ? "a" : "b");
        r.dead_letter("code-" + std::to_string(t));
        r.batch(1, 0.001);
        r.lag("topic", t, i);
      }
    });
  // Rendering while the pipeline reports must be safe too.
  actors::service_status status;
  for (int i = 0; i < 20; ++i)
    EXPECT_FALSE(r.render(status).empty());
  for (auto& th : pool)
    th.join();
  auto text = r.render(status);
  EXPECT_TRUE(has_line(text,
                       "seatledger_records_consumed_total{topic=\"topic\","
                       "type=\"a\"} 10000"))
    << text;
  EXPECT_TRUE(has_line(text,
                       "seatledger_records_consumed_total{topic=\"topic\","
                       "type=\"b\"} 10000"));
  EXPECT_TRUE(has_line(text, "seatledger_dead_letters_total{code=\"code-2\"} "
                             "5000"));
  EXPECT_TRUE(has_line(text, "seatledger_commit_batch_rows_count 20000"));
}
