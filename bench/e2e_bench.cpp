// End-to-end benchmark of `seatledger serve`: a producer fills the topics
// with a realistic membership stream (many orgs, a few large enterprise
// subscriptions), the service consumes it, and this program prints
//   - sustained events/s from the first record to the last commit (both
//     stages: org stage, internal deltas, subscription stage),
//   - p50/p99 latency from event production to its commit at a fixed offered
//     load (10,000 events/s by default), for the whole phase and for each 5 s
//     of it beside the CPU each component used meanwhile,
//   - the service's peak resident memory,
//   - the same stream through a one-event-per-transaction baseline,
//   - for scale, rows/s of a bare single-stage consume→COPY loop on the
//     same Kafka and PostgreSQL (what the issue states its target against).
// Kafka (a `seatledger dev-kafka` process), PostgreSQL (from the PG*
// environment) and the service share this machine. Run:
//   pg_virtualenv -t -o fsync=on -v 15 build/release/bench/seatledger_e2e_bench
//
// librdkafka's mock cluster keeps about 5 MB per partition and drops older
// records, so the producer never runs more than a window ahead of what the
// service has consumed.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <signal.h>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>

#include "adapters/crypto/keyring.hpp"
#include "adapters/kafka/kafka.hpp"
#include "domain/commands.hpp"
#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/service_error.hpp"
#include "service_harness.hpp"
#include "storage/pg_codec.hpp"
#include "storage/pg_store.hpp"

using namespace std::chrono;
using namespace seatledger;

namespace {

struct options {
  int partitions = 8;
  int orgs = 3000;
  int large_subscriptions = 3;
  int orgs_per_large = 40;
  int users = 60'000;
  long events = 300'000;
  int rate = 10'000;
  int latency_seconds = 20;
  long baseline_events = 5'000;
  /// Records the producer may run ahead of the org stage, per partition.
  long window_per_partition = 6'000;
  /// Internal deltas the subscription stage may lag behind on one partition
  /// (the mock cluster keeps about 5 MB, some 8,000 deltas, per partition
  /// and drops older records: a lag beyond that would lose deltas).
  long max_delta_backlog = 3'000;
  /// Run a CHECKPOINT before the latency phase (0: do not).
  bool checkpoint = true;
  /// linger.ms of the latency phase's producer (librdkafka's default).
  int linger_ms = 5;
  /// Records for the bare consume→COPY loop, per pass (0: skip it). The
  /// mock cluster must still hold them all: ~400 B each, ~5 MB/partition.
  long bare_events = 80'000;
  /// After the throughput phase, print which tables and indexes its WAL
  /// went to (pg_walinspect; takes a few seconds; 0: do not).
  bool wal_breakdown = false;
  /// Extra arguments of `seatledger serve` (`--service-arg X`, repeatable).
  std::vector<std::string> service_args;
};

double now_s() {
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch())
    .count();
}

domain::timestamp wall() {
  return domain::timestamp::from_micros(
    duration_cast<microseconds>(system_clock::now().time_since_epoch())
      .count());
}

/// The stream: orgs, their subscriptions, and membership events.
class stream {
public:
  explicit stream(const options& o) : o_(o), rng_(12345) {
    for (int i = 0; i < o.orgs; ++i) {
      auto org = "org-" + std::to_string(i);
      std::string sub;
      if (i < o.large_subscriptions * o.orgs_per_large)
        sub = "enterprise-" + std::to_string(i / o.orgs_per_large);
      else
        sub = "team-" + std::to_string(i / 2); // two orgs per small one
      orgs_.push_back({org, sub});
      subs_.insert(sub);
    }
  }

  std::vector<test::outgoing> setup_commands() {
    std::vector<test::outgoing> out;
    for (const auto& sub : subs_) {
      domain::create_subscription c;
      c.subscription_id = sub;
      c.display_name = sub;
      c.customer = {"0015000000" + sub, std::nullopt};
      c.instance = {sub + ".example.com", domain::instance_type::primary};
      c.plan_id = "plan";
      c.seats = sub.rfind("enterprise", 0) == 0 ? 5000 : 10;
      c.term = {*domain::parse_rfc3339("2026-01-01T00:00:00Z"),
                *domain::parse_rfc3339("2027-01-01T00:00:00Z")};
      out.push_back(encode({ref("seatledger.subscription.create"), c}));
    }
    return out;
  }

  std::vector<test::outgoing> setup_links() {
    std::vector<test::outgoing> out;
    for (const auto& [org, sub] : orgs_)
      out.push_back(
        encode_m({ref("seatledger.org.linked"), domain::org_linked{org, sub}}));
    return out;
  }

  /// The next membership event; `id` names it for latency measurement.
  test::outgoing next(std::string& id) {
    // Enterprise orgs are busier (they are large).
    auto pick = std::uniform_int_distribution<int>(0, 99)(rng_);
    int org_index;
    if (pick < 50)
      org_index = std::uniform_int_distribution<int>(
        0, o_.large_subscriptions * o_.orgs_per_large - 1)(rng_);
    else
      org_index = std::uniform_int_distribution<int>(0, o_.orgs - 1)(rng_);
    const auto& org = orgs_[static_cast<size_t>(org_index)].first;
    auto user = "user-"
                + std::to_string(
                  std::uniform_int_distribution<int>(0, o_.users - 1)(rng_));
    auto r = ref("seatledger.member.added");
    id = r.id;
    if (std::uniform_int_distribution<int>(0, 99)(rng_) < 70)
      return encode_m({r, domain::member_added{org, user, true, {}}});
    r.type = "seatledger.member.removed";
    return encode_m({r, domain::member_removed{org, user}});
  }

  std::size_t subscriptions() const {
    return subs_.size();
  }

private:
  domain::event_ref ref(const char* type) {
    return {"bench", "b-" + std::to_string(++counter_), type, wall()};
  }

  static test::outgoing encode(const domain::command_event& e) {
    return {domain::subscription_id_of(e.command),
            messages::encode_command_event(e)};
  }

  static test::outgoing encode_m(const domain::membership_event& e) {
    return {domain::org_id_of(e.change), messages::encode_membership_event(e)};
  }

  const options& o_;
  std::mt19937_64 rng_;
  std::vector<std::pair<std::string, std::string>> orgs_;
  std::set<std::string> subs_;
  long counter_ = 0;
};

long peak_rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

/// CPU seconds (user + system) a process has used, all its threads; 0 if
/// it is gone.
double cpu_seconds(const std::string& stat_path) {
  std::ifstream in{stat_path};
  std::string line;
  if (!std::getline(in, line))
    return 0;
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime 14, stime 15.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream fields{line.substr(close + 2)};
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)
    if (i >= 14)
      ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// Where the machine's CPU goes, per component, between two samples.
struct cpu_sample {
  double service = 0;
  double postgres = 0; // every process named postgres (one cluster here)
  double kafka = 0;    // the dev-kafka process
  double program = 0;  // this program: producers, pollers, probes
  steady_clock::time_point at;

  static cpu_sample take(pid_t service_pid, pid_t kafka_pid) {
    cpu_sample s;
    s.at = steady_clock::now();
    s.service = cpu_seconds("/proc/" + std::to_string(service_pid) + "/stat");
    s.kafka = cpu_seconds("/proc/" + std::to_string(kafka_pid) + "/stat");
    s.program = cpu_seconds("/proc/self/stat");
    for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
      auto name = entry.path().filename().string();
      if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
            return c >= '0' && c <= '9';
          }))
        continue;
      std::ifstream comm{entry.path() / "comm"};
      std::string command;
      if (std::getline(comm, command) && command == "postgres")
        s.postgres += cpu_seconds((entry.path() / "stat").string());
    }
    return s;
  }
};

/// CPU milliseconds per 1,000 events of each component between two samples
/// (a backend that exited in between is not counted).
void print_cpu(const char* phase, const cpu_sample& a, const cpu_sample& b,
               long events) {
  auto seconds = duration_cast<duration<double>>(b.at - a.at).count();
  auto per = [&](double x, double y) {
    return (y - x) * 1e3 / static_cast<double>(events) * 1e3;
  };
  auto total = (b.service - a.service) + (b.postgres - a.postgres)
               + (b.kafka - a.kafka) + (b.program - a.program);
  std::printf("cpu, %s: per 1,000 membership events service %.0f ms, "
              "PostgreSQL %.0f ms, Kafka (dev-kafka) %.0f ms, this program "
              "%.0f ms; %.2f of the cores busy\n",
              phase, per(a.service, b.service), per(a.postgres, b.postgres),
              per(a.kafka, b.kafka), per(a.program, b.program),
              total / seconds);
}

/// PostgreSQL's WAL counters (pg_stat_wal, the whole cluster).
struct wal_sample {
  double records = 0;
  double full_page_images = 0;
  double bytes = 0;
  double syncs = 0;
  std::string lsn;

  static wal_sample take(pqxx::connection& c) {
    pqxx::nontransaction tx{c};
    auto r = tx.exec1("SELECT wal_records, wal_fpi, wal_bytes, wal_sync, "
                      "pg_current_wal_lsn()::text FROM pg_stat_wal");
    return {r[0].as<double>(), r[1].as<double>(), r[2].as<double>(),
            r[3].as<double>(), r[4].as<std::string>()};
  }
};

/// The relations (or record kinds without one, such as commits) the WAL
/// between two samples went to, largest first.
void print_wal_breakdown(pqxx::connection& c, const wal_sample& a,
                         const wal_sample& b, long events) {
  pqxx::nontransaction tx{c};
  tx.exec("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
  auto rows = tx.exec_params(R"(
    SELECT coalesce(pg_filenode_relation(0,
             substring(block_ref FROM 'rel \d+/\d+/(\d+)')::oid)::text,
             resource_manager || ' ' || record_type) AS target,
           count(*), sum(record_length)
    FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
    GROUP BY 1 ORDER BY 3 DESC LIMIT 14)",
                             a.lsn, b.lsn);
  std::printf("wal by relation, per 1,000 membership events:");
  for (const auto& row : rows)
    std::printf(" %s %.0f KiB (%.0f records);", row[0].c_str(),
                row[2].as<double>() * 1e3 / static_cast<double>(events)
                  / 1024.0,
                row[1].as<double>() * 1e3 / static_cast<double>(events));
  std::printf("\n");
}

/// WAL written per 1,000 events between two samples: full-page images are
/// what a checkpoint costs the writes after it.
void print_wal(const char* phase, const wal_sample& a, const wal_sample& b,
               long events) {
  auto per = [&](double x, double y) {
    return (y - x) * 1e3 / static_cast<double>(events);
  };
  std::printf("wal, %s: per 1,000 membership events %.0f KiB in %.0f "
              "records, %.0f of them full-page images (%.0f KiB), %.1f "
              "fsyncs\n",
              phase, per(a.bytes, b.bytes) / 1024.0, per(a.records, b.records),
              per(a.full_page_images, b.full_page_images),
              per(a.full_page_images, b.full_page_images) * 8.0,
              per(a.syncs, b.syncs));
}

std::int64_t scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx{c};
  auto f = tx.exec1(sql)[0];
  return f.is_null() ? 0 : f.as<std::int64_t>();
}

/// How many membership records the org stage has consumed (all partitions).
std::int64_t consumed(pqxx::connection& c, const std::string& group,
                      const std::string& topic) {
  pqxx::nontransaction tx{c};
  auto r = tx.exec_params1(
    "SELECT coalesce(sum(next_offset), 0) FROM seatledger.consumer_positions "
    "WHERE consumer_group = $1 AND topic = $2",
    group, topic);
  return r[0].as<std::int64_t>();
}

/// The largest lag of the subscription stage behind the internal deltas
/// topic, over its partitions (-1 when the watermarks cannot be read).
long delta_backlog(pqxx::connection& c, kafka::watermark_reader& watermarks,
                   const std::string& group) {
  const std::string topic = "seatledger.internal.seat-deltas.v1";
  auto ends = watermarks.high_watermarks(topic, 5'000);
  if (!ends)
    return -1;
  std::vector<std::int64_t> stored(ends->size(), 0);
  pqxx::nontransaction tx{c};
  for (const auto& row : tx.exec_params(
         "SELECT partition, next_offset FROM seatledger.consumer_positions "
         "WHERE consumer_group = $1 AND topic = $2",
         group, topic)) {
    auto p = static_cast<std::size_t>(row[0].as<int>());
    if (p < stored.size())
      stored[p] = row[1].as<std::int64_t>();
  }
  long worst = 0;
  for (std::size_t p = 0; p < ends->size(); ++p)
    worst = std::max<long>(worst, static_cast<long>((*ends)[p] - stored[p]));
  return worst;
}

/// `delta_backlog`, asked at most once per interval through one Kafka
/// client: each answer asks every partition, CPU the service needs while it
/// is measured.
class backlog_monitor {
public:
  backlog_monitor(pqxx::connection& db, const kafka::client_config& kafka_cfg,
                  std::string group, milliseconds interval)
      : db_(db), group_(std::move(group)), interval_(interval) {
    auto reader = kafka::watermark_reader::connect(kafka_cfg);
    if (!reader)
      throw std::runtime_error("watermarks: " + describe(reader.error()));
    watermarks_ = std::move(*reader);
  }

  long current() {
    auto now = steady_clock::now();
    if (now >= next_) {
      last_ = delta_backlog(db_, *watermarks_, group_);
      next_ = now + interval_;
    }
    return last_;
  }

private:
  pqxx::connection& db_;
  std::unique_ptr<kafka::watermark_reader> watermarks_;
  std::string group_;
  milliseconds interval_;
  steady_clock::time_point next_{};
  long last_ = 0;
};

/// Waits until the service has committed and published everything, or
/// fails the benchmark: figures from an unsettled run would be wrong.
/// `consumed_first`, when given, is checked first: the full check counts
/// hundreds of thousands of rows and would take CPU from the service.
void settle_or_fail(test::database_probe& probe, std::int64_t applied,
                    seconds limit, const char* phase,
                    const std::function<bool()>& consumed_first = {}) {
  if (!test::wait_until(
        [&] {
          return (!consumed_first || consumed_first())
                 && probe.settled(applied);
        },
        limit, milliseconds{20}))
    throw std::runtime_error(std::string{phase}
                             + ": the service did not "
                               "settle within "
                             + std::to_string(limit.count()) + " s");
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<size_t>(p * static_cast<double>(xs.size() - 1));
  return xs[i];
}

/// An event of the latency phase: where it went and when (seconds since the
/// epoch) it was handed to the producer.
struct sent_record {
  int partition;
  std::int64_t offset;
  double at;
};

/// A committed position of a partition and when the poller first saw it.
using offset_step = std::pair<std::int64_t, double>;

constexpr seconds latency_slice{5};

/// Milliseconds from handing the event over to the first committed position
/// past it, if one was seen.
std::optional<double>
latency_of(const sent_record& r,
           const std::vector<std::vector<offset_step>>& steps) {
  const auto& st = steps[static_cast<size_t>(r.partition)];
  auto it = std::find_if(st.begin(), st.end(), [&](const offset_step& step) {
    return step.first > r.offset;
  });
  if (it == st.end())
    return std::nullopt;
  return (it->second - r.at) * 1000.0;
}

/// The latency phase in slices between consecutive CPU samples (every
/// `latency_slice` while offering, and one when offering ended), each event
/// in the slice it was handed to the producer in, beside the cores each
/// component kept busy in that slice. `latencies[i]` belongs to `sent[i]`.
void print_latency_slices(const std::vector<sent_record>& sent,
                          const std::vector<std::optional<double>>& latencies,
                          double start_s, steady_clock::time_point start,
                          const std::vector<cpu_sample>& slice_cpu) {
  if (slice_cpu.size() < 2)
    return;
  auto offset_s = [&](const cpu_sample& c) {
    return std::max(0.0, duration_cast<duration<double>>(c.at - start).count());
  };
  std::vector<std::vector<double>> by_slice(slice_cpu.size() - 1);
  for (size_t i = 0; i < sent.size(); ++i) {
    if (!latencies[i])
      continue;
    auto at = sent[i].at - start_s;
    size_t slice = 0;
    while (slice + 1 < by_slice.size() && offset_s(slice_cpu[slice + 1]) <= at)
      ++slice;
    by_slice[slice].push_back(*latencies[i]);
  }
  std::printf("latency by %.0f s slice of the phase (p50 / p99; cores busy: "
              "service, PostgreSQL, Kafka (dev-kafka)):\n",
              duration_cast<duration<double>>(latency_slice).count());
  for (size_t i = 0; i < by_slice.size(); ++i) {
    const auto& a = slice_cpu[i];
    const auto& b = slice_cpu[i + 1];
    auto seconds = duration_cast<duration<double>>(b.at - a.at).count();
    std::printf("  %4.1f-%.1f s: %.1f / %.1f ms; %.2f, %.2f, %.2f\n",
                offset_s(a), offset_s(b), percentile(by_slice[i], 0.5),
                percentile(by_slice[i], 0.99),
                (b.service - a.service) / seconds,
                (b.postgres - a.postgres) / seconds,
                (b.kafka - a.kafka) / seconds);
  }
}

// -- the one-event-per-transaction baseline
// ------------------------------------

/// What a naive service does for every event: one SERIALIZABLE transaction
/// that records the event, changes the membership, recounts the
/// subscription's distinct billable users and appends the absolute count.
double run_baseline(const std::string& conninfo, const std::string& bootstrap,
                    const std::string& topic, long events,
                    const std::map<std::string, std::string>& org_sub) {
  pqxx::connection c{conninfo};
  {
    pqxx::work tx{c};
    tx.exec(R"(
      CREATE SCHEMA baseline;
      CREATE TABLE baseline.applied (source text, id text, PRIMARY KEY (source, id));
      CREATE TABLE baseline.orgs (org_id text PRIMARY KEY, subscription_id text);
      CREATE INDEX ON baseline.orgs (subscription_id);
      CREATE TABLE baseline.memberships (org_id text, user_id text, billable bool,
        PRIMARY KEY (org_id, user_id));
      CREATE TABLE baseline.ledger (subscription_id text, seq bigserial,
        seats_in_use bigint, event_id text, PRIMARY KEY (subscription_id, seq));
      CREATE TABLE baseline.outbox (id bigserial PRIMARY KEY, value text);
      CREATE TABLE baseline.positions (tp text PRIMARY KEY, next_offset bigint);
    )");
    for (const auto& [org, sub] : org_sub)
      tx.exec_params("INSERT INTO baseline.orgs VALUES ($1, $2)", org, sub);
    tx.commit();
  }
  c.prepare("applied", "INSERT INTO baseline.applied VALUES ($1, $2)");
  c.prepare("add",
            "INSERT INTO baseline.memberships VALUES ($1, $2, true) "
            "ON CONFLICT (org_id, user_id) DO UPDATE SET billable = true");
  c.prepare(
    "remove",
    "DELETE FROM baseline.memberships WHERE org_id = $1 AND user_id = $2");
  c.prepare("count",
            "SELECT count(DISTINCT m.user_id) FROM baseline.memberships m "
            "JOIN baseline.orgs o USING (org_id) "
            "WHERE o.subscription_id = $1 AND m.billable");
  c.prepare("ledger", "INSERT INTO baseline.ledger (subscription_id, "
                      "seats_in_use, event_id) VALUES ($1, $2, $3)");
  c.prepare("outbox", "INSERT INTO baseline.outbox (value) VALUES ($1)");
  c.prepare("position", "INSERT INTO baseline.positions VALUES ($1, $2) "
                        "ON CONFLICT (tp) DO UPDATE SET next_offset = $2");
  kafka::client_config cfg;
  cfg.bootstrap_servers = bootstrap;
  auto ends = kafka::high_watermarks(cfg, topic, 10'000);
  auto consumer = kafka::consumer::assign_only(cfg);
  std::vector<storage::position> starts;
  for (size_t p = 0; p < ends->size(); ++p)
    starts.push_back({{topic, static_cast<std::int32_t>(p)}, -2});
  (*consumer)->assign(starts);
  messages::decoder decoder;
  long done = 0;
  auto started = steady_clock::now();
  while (done < events) {
    // The first fetch from the log's start can take seconds on a mock
    // cluster that has just served the service (one run waited over 1 s and
    // measured nothing); the stream has `events` records, so an empty poll
    // this long means it ended early.
    auto batch = (*consumer)->poll(1, 30'000);
    if (batch.empty())
      break;
    for (auto& r : batch) {
      messages::record_view view{r.value, &r.headers};
      auto e = decoder.decode_membership(view);
      if (!e)
        continue;
      const auto& ev = e.value();
      auto org = domain::org_id_of(ev.change);
      auto sub = org_sub.at(org);
      for (;;) {
        try {
          pqxx::work tx{c};
          tx.exec("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
          tx.exec_prepared("applied", ev.ref.source, ev.ref.id);
          if (auto* a = std::get_if<domain::member_added>(&ev.change))
            tx.exec_prepared("add", org, a->user_id);
          else if (auto* m = std::get_if<domain::member_removed>(&ev.change))
            tx.exec_prepared("remove", org, m->user_id);
          auto count = tx.exec_prepared1("count", sub)[0].as<std::int64_t>();
          tx.exec_prepared("ledger", sub, count, ev.ref.id);
          tx.exec_prepared("outbox", r.value);
          tx.exec_prepared("position",
                           r.topic + "/" + std::to_string(r.partition),
                           r.offset + 1);
          tx.commit();
          break;
        } catch (const pqxx::serialization_failure&) {
          continue; // the naive way: retry
        }
      }
      ++done;
    }
  }
  if (done < events)
    throw std::runtime_error("baseline: only " + std::to_string(done) + " of "
                             + std::to_string(events)
                             + " membership records arrived");
  auto secs
    = duration_cast<duration<double>>(steady_clock::now() - started).count();
  return static_cast<double>(done) / secs;
}

// -- the machine's ceiling for the simplest loop ---------------------------

/// The loop the issue measures its target against ("a bare single-stage
/// consume→COPY loop"), on this machine and this Kafka: one thread polls
/// up to 5,000 membership records, decodes them, COPYs one row per event
/// and commits it with the partitions' positions, one batch after another.
/// No actors, no second stage, no outbox, no overlap of commit and consume.
/// Returns rows/s from the first poll to the last commit, or 0 when fewer
/// than `events` records arrived.
double run_bare_loop(const std::string& conninfo, const std::string& bootstrap,
                     const std::string& topic,
                     const std::vector<std::int64_t>& starts, long events,
                     bool unique_event_ids) {
  storage::detail::pg_connection c{conninfo};
  {
    pqxx::work tx{c};
    tx.exec("DROP SCHEMA IF EXISTS bare CASCADE");
    tx.exec("CREATE SCHEMA bare");
    tx.exec(unique_event_ids
              ? "CREATE TABLE bare.events (source text, id text, org_id "
                "text, user_id text, added int4, PRIMARY KEY (id, source))"
              : "CREATE TABLE bare.events (source text, id text, org_id "
                "text, user_id text, added int4)");
    tx.exec("CREATE TABLE bare.positions (partition int PRIMARY KEY, "
            "next_offset bigint)");
    tx.commit();
  }
  c.prepare("position", "INSERT INTO bare.positions VALUES ($1, $2) ON "
                        "CONFLICT (partition) DO UPDATE SET next_offset = $2");
  static const char* const copy_events
    = "COPY bare.events FROM STDIN (FORMAT binary)";
  kafka::client_config cfg;
  cfg.bootstrap_servers = bootstrap;
  auto consumer = kafka::consumer::assign_only(cfg);
  if (!consumer)
    throw std::runtime_error("bare loop: no consumer");
  std::vector<storage::position> from;
  for (size_t p = 0; p < starts.size(); ++p)
    from.push_back({{topic, static_cast<std::int32_t>(p)}, starts[p]});
  (*consumer)->assign(from);
  messages::decoder decoder;
  storage::detail::copy_buffer buf;
  long done = 0;
  auto started = steady_clock::now();
  while (done < events) {
    auto batch = (*consumer)->poll(5'000, 2'000);
    if (batch.empty())
      return 0;
    std::map<std::int32_t, std::int64_t> next;
    pqxx::work tx{c};
    {
      buf.clear();
      storage::detail::copy_stream out{c, copy_events, buf};
      buf.binary_header();
      for (const auto& r : batch) {
        next[r.partition] = r.offset + 1;
        messages::record_view view{r.value, &r.headers};
        auto e = decoder.decode_membership(view);
        if (!e)
          continue;
        const auto& ev = e.value();
        const auto* added = std::get_if<domain::member_added>(&ev.change);
        const auto* removed = std::get_if<domain::member_removed>(&ev.change);
        buf.binary_row(5).binary_bytes(ev.ref.source).binary_bytes(ev.ref.id);
        buf.binary_bytes(domain::org_id_of(ev.change));
        buf.binary_bytes(added     ? added->user_id
                         : removed ? removed->user_id
                                   : "");
        buf.binary_int4(added ? 1 : 0);
        out.row_done();
      }
      buf.binary_trailer();
      out.finish();
    }
    for (const auto& [partition, offset] : next)
      tx.exec_prepared("position", partition, offset);
    tx.commit();
    done += static_cast<long>(batch.size());
  }
  auto secs
    = duration_cast<duration<double>>(steady_clock::now() - started).count();
  return static_cast<double>(done) / secs;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    // Passed to `seatledger serve` as is (to compare its settings).
    if (flag == "--service-arg") {
      o.service_args.push_back(argv[i + 1]);
      continue;
    }
    long value = std::stol(argv[i + 1]);
    if (flag == "--events")
      o.events = value;
    else if (flag == "--rate")
      o.rate = static_cast<int>(value);
    else if (flag == "--latency-seconds")
      o.latency_seconds = static_cast<int>(value);
    else if (flag == "--partitions")
      o.partitions = static_cast<int>(value);
    else if (flag == "--baseline-events")
      o.baseline_events = value;
    else if (flag == "--linger-ms")
      o.linger_ms = static_cast<int>(value);
    else if (flag == "--checkpoint")
      o.checkpoint = value != 0;
    else if (flag == "--bare-events")
      o.bare_events = value;
    else if (flag == "--wal-breakdown")
      o.wal_breakdown = value != 0;
    else if (flag == "--max-delta-backlog")
      o.max_delta_backlog = value;
  }
  try {
    // A fresh database in the cluster the PG* variables name.
    auto name = "seatledger_e2e_bench_" + std::to_string(getpid());
    {
      pqxx::connection admin{""};
      pqxx::nontransaction tx{admin};
      tx.exec("CREATE DATABASE " + tx.quote_name(name));
      std::printf("PostgreSQL %s, fsync = %s\n",
                  tx.exec1("SHOW server_version")[0].c_str(),
                  tx.exec1("SHOW fsync")[0].c_str());
    }
    auto conninfo = "dbname=" + name;
    auto migrated = storage::migrate(conninfo);
    if (!migrated) {
      std::fprintf(stderr, "migrate: %s\n", describe(migrated.error()).c_str());
      return 1;
    }
    test::child_process kafka_process{{test::seatledger_binary(), "dev-kafka",
                                       "--partitions",
                                       std::to_string(o.partitions)}};
    auto bootstrap = kafka_process.wait_for_value("KAFKA_BOOTSTRAP",
                                                  seconds{30});
    if (!bootstrap) {
      std::fprintf(stderr, "dev-kafka did not start\n");
      return 1;
    }
    auto key_dir = "/tmp/seatledger-bench-keys-" + std::to_string(getpid());
    auto signing_key = test::test_signing_key(key_dir);
    std::printf("Kafka %s (dev-kafka process, %d partitions), %d orgs, %d "
                "large enterprise subscriptions of %d orgs\n",
                bootstrap->c_str(), o.partitions, o.orgs, o.large_subscriptions,
                o.orgs_per_large);
    std::fflush(stdout);
    test::kafka_io kafka{*bootstrap};
    stream s{o};
    test::service_options svc;
    svc.database_url = conninfo;
    svc.bootstrap = *bootstrap;
    svc.signing_key_file = signing_key;
    svc.extra_args = {"--log-level", "info"};
    svc.extra_args.insert(svc.extra_args.end(), o.service_args.begin(),
                          o.service_args.end());
    auto service = test::start_service(svc);
    pqxx::connection db{conninfo};
    // Setup: subscriptions and links.
    kafka.publish("seatledger.subscriptions.v1", s.setup_commands());
    // The latency phase's producer, connected (producer id, metadata) by
    // publishing the links, so its first records do not wait for that.
    test::kafka_io steady{*bootstrap,
                          {{"linger.ms", std::to_string(o.linger_ms)}}};
    steady.publish("seatledger.membership.v1", s.setup_links());
    test::database_probe probe{conninfo};
    auto applied = static_cast<std::int64_t>(s.subscriptions())
                   + static_cast<std::int64_t>(o.orgs);
    settle_or_fail(probe, applied, seconds{300}, "setup");
    std::printf("setup: %zu subscriptions, %d orgs linked\n", s.subscriptions(),
                o.orgs);
    std::fflush(stdout);

    // -- sustained throughput ------------------------------------------------
    const std::string membership = "seatledger.membership.v1";
    kafka::client_config kafka_cfg;
    kafka_cfg.bootstrap_servers = *bootstrap;
    backlog_monitor throughput_backlog{db, kafka_cfg, svc.consumer_group,
                                       milliseconds{200}};
    auto base = consumed(db, svc.consumer_group, membership);
    auto window = o.window_per_partition * o.partitions;
    std::map<std::string, double> produced_at;
    long produced = 0;
    double first = 0;
    auto cpu_before = cpu_sample::take(service->pid(), kafka_process.pid());
    auto wal_before = wal_sample::take(db);
    auto producer_started = steady_clock::now();
    // Why the producer waited: the window (the org stage behind) or the
    // delta backlog guard (the subscription stage behind).
    double held_by_window_s = 0;
    double held_by_backlog_s = 0;
    // Both at once: neither stage alone would have let the producer go on.
    double held_by_both_s = 0;
    while (produced < o.events) {
      auto done = consumed(db, svc.consumer_group, membership) - base;
      auto room = std::min<long>(window - (produced - done),
                                 o.events - produced);
      bool window_full = room < std::min<long>(1000, o.events - produced);
      // Asked even when the window is full, to tell a wait for both apart
      // (the monitor reads the backlog at most every 200 ms).
      bool backlog_over = throughput_backlog.current() > o.max_delta_backlog;
      if (window_full || backlog_over) {
        auto waited_from = steady_clock::now();
        std::this_thread::sleep_for(milliseconds{5});
        auto waited
          = duration_cast<duration<double>>(steady_clock::now() - waited_from)
              .count();
        if (window_full && backlog_over)
          held_by_both_s += waited;
        else if (window_full)
          held_by_window_s += waited;
        else
          held_by_backlog_s += waited;
        continue;
      }
      std::vector<test::outgoing> chunk;
      chunk.reserve(static_cast<size_t>(room));
      std::string id;
      for (long i = 0; i < room; ++i)
        chunk.push_back(s.next(id));
      if (first == 0)
        first = now_s();
      kafka.publish(membership, chunk);
      produced += room;
    }
    auto expect = applied + o.events;
    settle_or_fail(probe, expect, seconds{1200}, "throughput", [&] {
      return consumed(db, svc.consumer_group, membership) - base >= o.events;
    });
    auto last = now_s();
    auto elapsed = last - first;
    auto cpu_after = cpu_sample::take(service->pid(), kafka_process.pid());
    auto wal_after = wal_sample::take(db);
    auto ledger = scalar(db, "SELECT count(*) FROM seatledger.seat_ledger");
    std::printf(
      "throughput: %ld membership events in %.2f s = %.0f events/s "
      "sustained (first record to last commit, both stages); "
      "%lld ledger entries; producer wall %.1f s\n",
      o.events, elapsed, static_cast<double>(o.events) / elapsed,
      static_cast<long long>(ledger),
      duration_cast<duration<double>>(steady_clock::now() - producer_started)
        .count());
    std::printf("producer held back: %.2f s by the window (%ld records ahead "
                "of the org stage), %.2f s by the delta backlog guard (%ld "
                "deltas on a partition), %.2f s by both\n",
                held_by_window_s, window, held_by_backlog_s,
                o.max_delta_backlog, held_by_both_s);
    print_cpu("throughput phase", cpu_before, cpu_after, o.events);
    print_wal("throughput phase", wal_before, wal_after, o.events);
    if (o.wal_breakdown)
      print_wal_breakdown(db, wal_before, wal_after, o.events);
    std::fflush(stdout);

    // -- latency at a fixed offered load --------------------------------------
    // Measured on a server in its steady state. Until its first checkpoint
    // a fresh cluster creates each 16 MB WAL segment file when it first
    // writes to it (zero-filled and fsynced inside the commit that crosses
    // into it: 15-55 ms here, once every 1.5 s at this load, and those
    // commits made the p99); after one it reuses the files it no longer
    // needs, as every server that has run for a few minutes does.
    if (o.checkpoint) {
      pqxx::nontransaction tx{db};
      tx.exec("CHECKPOINT");
      std::printf("latency: CHECKPOINT before the phase (WAL segment files "
                  "are reused, not created; --checkpoint 0 to skip)\n");
    }
    // A record is committed in the transaction that moves its partition's
    // stored position past it; a poller watching the positions sees when.
    // Records of one partition get consecutive offsets from its current end
    // (this program is the only producer), so each sent record's offset is
    // known without asking the broker.
    kafka::client_config kcfg;
    kcfg.bootstrap_servers = *bootstrap;
    auto ends = kafka::high_watermarks(kcfg, membership, 10'000);
    if (!ends)
      throw std::runtime_error("no watermarks");
    std::vector<std::int64_t> next_offset = *ends;
    std::vector<sent_record> sent;
    std::atomic<bool> polling{true};
    std::vector<std::vector<offset_step>> steps(
      static_cast<size_t>(o.partitions));
    std::thread poller{[&] {
      pqxx::connection pc{conninfo};
      pc.prepare("positions",
                 "SELECT partition, next_offset FROM "
                 "seatledger.consumer_positions WHERE consumer_group = $1 "
                 "AND topic = $2");
      while (polling) {
        pqxx::nontransaction tx{pc};
        auto rows = tx.exec_prepared("positions", svc.consumer_group,
                                     membership);
        auto t = now_s();
        for (const auto& row : rows) {
          auto p = static_cast<size_t>(row[0].as<int>());
          auto off = row[1].as<std::int64_t>();
          if (p < steps.size()
              && (steps[p].empty() || steps[p].back().first != off))
            steps[p].emplace_back(off, t);
        }
        // Every 2 ms: a commit is seen at most that much late (the figures
        // err on the high side), and the poller's queries take little of
        // the CPU the service shares with it.
        std::this_thread::sleep_for(milliseconds{2});
      }
    }};
    auto latency_cpu_before = cpu_sample::take(service->pid(),
                                               kafka_process.pid());
    auto latency_wal_before = wal_sample::take(db);
    auto period = duration<double>(1.0 / o.rate);
    auto start = steady_clock::now();
    auto start_s = now_s();
    long total = static_cast<long>(o.rate) * o.latency_seconds;
    // CPU of each component per slice of the phase: the latency is not
    // steady along the phase, and these say which component it follows.
    std::vector<cpu_sample> slice_cpu{latency_cpu_before};
    long i = 0;
    backlog_monitor latency_backlog{db, kafka_cfg, svc.consumer_group,
                                    seconds{1}};
    while (i < total) {
      if (auto backlog = latency_backlog.current();
          backlog > o.max_delta_backlog) {
        // Offering more would make the mock cluster drop deltas.
        std::printf("latency: stopped offering after %ld events: the "
                    "subscription stage lags %ld deltas behind on a "
                    "partition (this load is above what it sustains here)\n",
                    i, backlog);
        total = i;
        break;
      }
      auto due = static_cast<long>(
        duration_cast<duration<double>>(steady_clock::now() - start) / period);
      std::vector<test::outgoing> chunk;
      std::vector<int> parts;
      for (; i < std::min(due, total); ++i) {
        std::string id;
        chunk.push_back(s.next(id));
        parts.push_back(
          kafka::partition_for_key(chunk.back().key, o.partitions));
      }
      if (!chunk.empty()) {
        // Handed to the producer without waiting for Kafka's answer, so the
        // load is a steady stream: waiting for every chunk's acks (some 40
        // ms each here) made it bursts of ~440 records instead, each timed
        // from the start of its burst.
        auto t = now_s();
        for (auto p : parts)
          sent.push_back({p, next_offset[static_cast<size_t>(p)]++, t});
        steady.publish_async(membership, chunk);
      }
      if (steady_clock::now() - slice_cpu.back().at >= latency_slice)
        slice_cpu.push_back(
          cpu_sample::take(service->pid(), kafka_process.pid()));
      std::this_thread::sleep_for(microseconds{500});
    }
    // The last slice ends with the offering; one under a second long joins
    // the slice before it.
    auto offered = cpu_sample::take(service->pid(), kafka_process.pid());
    if (slice_cpu.size() > 1 && offered.at - slice_cpu.back().at < seconds{1})
      slice_cpu.back() = offered;
    else
      slice_cpu.push_back(offered);
    steady.flush();
    expect += total;
    settle_or_fail(probe, expect, seconds{600}, "latency", [&] {
      return consumed(db, svc.consumer_group, membership) - base
             >= o.events + total;
    });
    auto latency_cpu_after = cpu_sample::take(service->pid(),
                                              kafka_process.pid());
    auto latency_wal_after = wal_sample::take(db);
    polling = false;
    poller.join();
    std::vector<std::optional<double>> latency_of_sent;
    latency_of_sent.reserve(sent.size());
    std::vector<double> latencies;
    for (const auto& r : sent) {
      latency_of_sent.push_back(latency_of(r, steps));
      if (latency_of_sent.back())
        latencies.push_back(*latency_of_sent.back());
    }
    std::printf("latency at %d events/s offered for %d s as a steady stream "
                "(producer linger.ms %d; from handing an event to the "
                "producer to its commit, observed through the committed "
                "positions): p50 %.1f ms, p99 %.1f ms, max %.1f ms (%zu of "
                "%ld events)\n",
                o.rate, o.latency_seconds, o.linger_ms,
                percentile(latencies, 0.5), percentile(latencies, 0.99),
                percentile(latencies, 1.0), latencies.size(), total);
    print_cpu("latency phase", latency_cpu_before, latency_cpu_after, total);
    print_wal("latency phase", latency_wal_before, latency_wal_after, total);
    print_latency_slices(sent, latency_of_sent, start_s, start, slice_cpu);
    auto rss = peak_rss_kib(service->pid());
    std::printf("service peak resident memory: %.1f MiB\n",
                static_cast<double>(rss) / 1024.0);
    std::fflush(stdout);
    // Where the service's time went (its own periodic "pipeline" and
    // "relay" lines).
    {
      std::istringstream log{service->stderr_tail(1 << 20)};
      std::string line;
      while (std::getline(log, line))
        if (line.find("\"message\":\"pipeline\"") != std::string::npos
            || line.find("\"message\":\"relay\"") != std::string::npos)
          std::printf("  service: %s\n", line.c_str());
    }
    service->signal(SIGTERM);
    service->wait(seconds{60});

    // -- baseline
    // ---------------------------------------------------------------
    std::map<std::string, std::string> org_sub;
    {
      pqxx::nontransaction tx{db};
      for (const auto& row :
           tx.exec("SELECT org_id, subscription_id FROM seatledger.orgs"))
        org_sub[row[0].c_str()] = row[1].is_null() ? "" : row[1].c_str();
    }
    if (o.baseline_events > 0) {
      auto baseline = run_baseline(conninfo, *bootstrap, membership,
                                   o.baseline_events, org_sub);
      std::printf("baseline (one SERIALIZABLE transaction per event, recount "
                  "and append): %.0f events/s over %ld events\n",
                  baseline, o.baseline_events);
      std::printf("ratio: %.1fx the baseline\n",
                  (static_cast<double>(o.events) / elapsed) / baseline);
    } else {
      std::printf("baseline: skipped (--baseline-events 0), no ratio\n");
    }

    // -- the bare loop, for scale ---------------------------------------------
    if (o.bare_events > 0) {
      auto starts = kafka::high_watermarks(kcfg, membership, 10'000);
      if (!starts)
        throw std::runtime_error("no watermarks");
      std::vector<test::outgoing> records;
      std::string id;
      for (long n = 0; n < o.bare_events; ++n)
        records.push_back(s.next(id));
      kafka.publish(membership, records);
      for (bool unique : {false, true}) {
        std::vector<double> passes;
        for (int pass = 0; pass < 3; ++pass)
          passes.push_back(run_bare_loop(conninfo, *bootstrap, membership,
                                         *starts, o.bare_events, unique));
        std::printf("bare loop (one thread: poll 5,000, decode, binary COPY "
                    "one row per event, commit with positions; %s): %.0f "
                    "rows/s median of %.0f / %.0f / %.0f over %ld events\n",
                    unique ? "unique (id, source) index" : "no index",
                    percentile(passes, 0.5), passes[0], passes[1], passes[2],
                    o.bare_events);
      }
    }
    std::filesystem::remove_all(key_dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "benchmark failed: %s\n", e.what());
    return 1;
  }
}
