#include "actors/relay.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/delivery_round.hpp"
#include "log/log.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::actors {

namespace {

using namespace std::chrono;

constexpr std::size_t fetch_limit = 5000;

/// How long a round's first wait for its delivery reports lasts, and each
/// later one while Kafka is away (the timer's turn: housekeeping runs in
/// between).
constexpr int first_wait_ms = 5000;
constexpr int later_wait_ms = 1000;

/// How long a drain waits for Kafka: the coordinator asks for 30 s.
constexpr seconds drain_budget{20};
constexpr milliseconds drain_retry_pause{200};

/// `publish_round`'s answer while Kafka has not acknowledged its round.
constexpr long still_waiting = -2;
/// What `publish_round` returns when deliveries of the round failed (the
/// chunks not done with go again).
constexpr long undelivered = -3;

/// The relay's producer never gives up on an event: one that timed out in
/// librdkafka's queue while later ones were delivered left a gap, filled
/// by the next round after them (librdkafka: "enable.gapless.guarantee
/// does not apply to timed-out messages"). Set over the operator's
/// properties, `delivery.timeout.ms` (its alias, set first) included.
const std::map<std::string, std::string> relay_producer_overrides{
  {"message.timeout.ms", "0"}};

/// A row's key or value as the producer takes it: Kafka's null where the
/// row has one (a dead letter of a tombstone or a keyless record).
std::optional<std::string_view> bytes_or_null(const std::string& bytes,
                                              bool null) {
  if (null)
    return std::nullopt;
  return bytes;
}

struct relay_state {
  static inline const char* name = "relay";

  std::unique_ptr<storage::pg_store> store;
  std::unique_ptr<kafka::producer> producer;
  std::shared_ptr<service_status> status;
  std::vector<std::string> lease_keys;
  /// After a failed round, no round before this (the timer retries then).
  steady_clock::time_point retry_after = steady_clock::now();
  steady_clock::time_point next_depth_check = steady_clock::now();
  steady_clock::time_point next_purge = steady_clock::now();

  /// Where the relay's time went in the last period, logged every 10 s
  /// beside the coordinator's `pipeline` line. A committed event waits for
  /// the round in progress, then for its own.
  struct round_times {
    double fetch = 0;
    double publish = 0; // producing and waiting for every delivery report
    double mark = 0;
    double round_max = 0;
    long rounds = 0;
    long events = 0;
    steady_clock::time_point since = steady_clock::now();
  } times;

  static double seconds_between(steady_clock::time_point from,
                                steady_clock::time_point to) {
    return duration_cast<duration<double>>(to - from).count();
  }

  void report_times() {
    auto elapsed = seconds_between(times.since, steady_clock::now());
    if (elapsed < 10)
      return;
    if (times.events > 0)
      log::info("relay", {{"seconds", elapsed},
                          {"rounds", times.rounds},
                          {"events", times.events},
                          {"fetch_s", times.fetch},
                          {"publish_s", times.publish},
                          {"mark_s", times.mark},
                          {"round_max_s", times.round_max}});
    times = round_times{};
  }

  /// A round whose events the producer holds until every report is in.
  /// While Kafka is away the round waits across the timer's calls, a second
  /// at a time, so the relay still takes its messages (leases, drain) and
  /// does its housekeeping meanwhile.
  struct open_round {
    // Shared with the reports (see delivery_round).
    std::shared_ptr<const std::vector<storage::pending_event>> rows;
    delivery_round reports;
    steady_clock::time_point started;
    steady_clock::time_point fetched_at;
    bool waiting_logged = false;
  };
  std::optional<open_round> open;

  /// Publishes one round; returns how many rows were published, -1 when
  /// the outbox could not be read or marked, `undelivered` when deliveries
  /// failed (both retried later from the first chunk not marked), or
  /// `still_waiting` while Kafka has not answered for all of them.
  long publish_round() {
    if (!open && !start_round())
      return -1;
    if (!open)
      return 0;
    // A round that gave up waiting was sent again while librdkafka still
    // held it: copies went out behind the originals, and one that timed
    // out among them left a gap the copies filled after later events, so a
    // seat delta arrived after a newer one and was dropped as old.
    if (!producer->flush(open->waiting_logged ? later_wait_ms
                                              : first_wait_ms)) {
      if (!open->waiting_logged)
        log::warning(
          "relay waiting for Kafka to acknowledge a round",
          {{"events", static_cast<long>(open->rows->size())},
           {"unacknowledged", static_cast<long>(producer->in_flight())}});
      open->waiting_logged = true;
      return still_waiting;
    }
    return finish_round();
  }

  /// Fetches and produces a round; false when the outbox cannot be read.
  bool start_round() {
    if (lease_keys.empty())
      return true;
    if (auto fatal = producer->replace_if_fatal()) {
      ++status->producer_fatal_errors;
      log::error("the relay's producer hit a fatal error; a new one "
                 "publishes again from the first event not marked",
                 {{"error", *fatal}});
    }
    auto started = steady_clock::now();
    auto fetched = store->fetch_unpublished(lease_keys, fetch_limit);
    if (!fetched) {
      log::error("relay cannot read the outbox",
                 {{"error", describe(fetched.error())}});
      return false;
    }
    if (fetched->empty())
      return true;
    auto rows = std::make_shared<const std::vector<storage::pending_event>>(
      std::move(*fetched));
    open.emplace(open_round{rows, delivery_round{rows->size()}, started,
                            steady_clock::now()});
    for (size_t i = 0; i < rows->size(); ++i) {
      const auto& pending = (*rows)[i];
      auto ok = producer->produce(
        pending.row.topic, bytes_or_null(pending.row.key, pending.row.null_key),
        bytes_or_null(pending.row.value, pending.row.null_value),
        pending.row.headers,
        open->reports.report(
          i, [counters = status, rows, i, round = open->reports](
               kafka::delivery_status outcome, const std::string& error) {
            const auto& row = (*rows)[i].row;
            if (outcome == kafka::delivery_status::refused) {
              ++counters->refused_events;
              log::error("event refused by Kafka; it is not published",
                         {{"event_id", row.event_id},
                          {"topic", row.topic},
                          {"bytes", static_cast<long>(row.value.size())},
                          {"error", error}});
            } else {
              // A broker error fails a whole request: one line a round, not
              // one per event (finish_round counts the rest).
              ++counters->undelivered_events;
              if (round.failed_reports() == 1)
                log::error("event not delivered; its chunk goes again",
                           {{"event_id", row.event_id},
                            {"topic", row.topic},
                            {"error", error}});
            }
          }));
      if (!ok) {
        log::error("cannot produce", {{"error", describe(ok.error())}});
        open->reports.fail();
        break;
      }
    }
    return true;
  }

  /// Marks the chunks of the open round that are done with, in order.
  long finish_round() {
    auto round = std::move(*open);
    open.reset();
    auto delivered_at = steady_clock::now();
    std::vector<std::int64_t> chunk_of;
    chunk_of.reserve(round.rows->size());
    for (const auto& pending : *round.rows)
      chunk_of.push_back(pending.outbox_seq);
    auto prefix = round.reports.complete_chunks(chunk_of);
    auto published = round.reports.delivered_in_a_row();
    if (round.waiting_logged)
      log::info(
        "relay round acknowledged by Kafka",
        {{"events", static_cast<long>(round.rows->size())},
         {"waited_s", seconds_between(round.fetched_at, delivered_at)}});
    if (!prefix.empty()) {
      if (auto ok = store->mark_published(prefix); !ok) {
        log::error("cannot mark events published",
                   {{"error", describe(ok.error())}});
        return -1;
      }
      status->published_events += static_cast<std::int64_t>(published);
    }
    auto marked_at = steady_clock::now();
    times.fetch += seconds_between(round.started, round.fetched_at);
    times.publish += seconds_between(round.fetched_at, delivered_at);
    times.mark += seconds_between(delivered_at, marked_at);
    times.round_max = std::max(times.round_max,
                               seconds_between(round.started, marked_at));
    ++times.rounds;
    times.events += static_cast<long>(round.rows->size());
    if (auto failures = round.reports.failed_reports(); failures > 1)
      log::error("events of a round not delivered",
                 {{"events", static_cast<long>(failures)}});
    if (round.reports.failed())
      return undelivered;
    return static_cast<long>(round.rows->size());
  }

  void housekeeping() {
    report_times();
    auto now = steady_clock::now();
    if (now >= next_depth_check) {
      if (auto depth = store->unpublished_count())
        status->outbox_depth = *depth;
      next_depth_check = now + seconds{2};
    }
    if (now >= next_purge) {
      auto cutoff = domain::timestamp::from_micros(
        duration_cast<microseconds>(system_clock::now().time_since_epoch())
          .count()
        - duration_cast<microseconds>(hours{24}).count());
      store->purge_published_before(cutoff);
      next_purge = now + minutes{10};
    }
  }
};

caf::behavior relay(caf::stateful_actor<relay_state>* self,
                    std::string database_url, kafka::client_config kafka,
                    std::shared_ptr<service_status> status) {
  auto& st = self->state;
  st.status = std::move(status);
  st.store = std::make_unique<storage::pg_store>(database_url,
                                                 relay_store_options());
  auto producer = kafka::producer::make(kafka, relay_producer_overrides);
  if (!producer) {
    log::error("cannot create the producer",
               {{"error", describe(producer.error())}});
    self->quit(producer.error());
    return {};
  }
  st.producer = std::move(*producer);
  // A round now, another at once while a round fills its limit (more is
  // waiting), none during a failed round's back-off. While a round waits
  // for Kafka only the timer waits on: a wake per commit, each waiting its
  // second, would pile up in the mailbox ahead of leases and the drain.
  auto round = [self](bool from_timer) {
    auto& st = self->state;
    if (steady_clock::now() < st.retry_after)
      return;
    if (st.open && st.open->waiting_logged && !from_timer)
      return;
    auto n = st.publish_round();
    if (n == still_waiting)
      return;
    if (n < 0)
      st.retry_after = steady_clock::now() + milliseconds{500};
    else if (n >= static_cast<long>(fetch_limit))
      self->send(self, atoms::wake_atom_v);
  };
  // The timer is always armed, whatever wakes the relay in between: the
  // housekeeping (outbox depth, purge of published rows) must not depend on
  // whether commits keep waking it.
  self->delayed_send(self, milliseconds{100}, atoms::relay_atom_v);
  return {
    [self](atoms::leases_atom, messages::lease_set& set) {
      self->state.lease_keys = std::move(set.lease_keys);
      self->send(self, atoms::wake_atom_v);
    },
    [round](atoms::wake_atom) { round(false); },
    [self, round](atoms::relay_atom) {
      self->delayed_send(self, milliseconds{200}, atoms::relay_atom_v);
      self->state.housekeeping();
      round(true);
    },
    [self](atoms::drain_atom) {
      // Rounds until nothing is pending or the budget is spent; a round
      // Kafka has not acknowledged by then stays unmarked and is published
      // again by the next owner. A round whose deliveries failed is tried
      // again after a pause: it ended the drain, and its events waited for
      // the next owner. PostgreSQL failing ends it (the next owner reads
      // the outbox once PostgreSQL is back).
      auto& st = self->state;
      auto until = steady_clock::now() + drain_budget;
      while (steady_clock::now() < until) {
        auto n = st.publish_round();
        if (n == undelivered)
          std::this_thread::sleep_for(drain_retry_pause);
        else if (n != still_waiting && n <= 0)
          break;
      }
      return caf::ok_atom_v;
    },
  };
}

} // namespace

storage::pg_store_options relay_store_options() {
  storage::pg_store_options options;
  // A mark lost in a crash of PostgreSQL publishes its chunk again with the
  // same event ids, as a crash between publishing and marking always could;
  // so a round does not wait for the mark's WAL flush before the next.
  options.application_name = "seatledger-relay";
  options.commits_may_be_lost_in_a_crash = true;
  return options;
}

caf::actor spawn_relay(caf::actor_system& system, std::string database_url,
                       kafka::client_config kafka,
                       std::shared_ptr<service_status> status) {
  return system.spawn<caf::detached>(relay, std::move(database_url),
                                     std::move(kafka), std::move(status));
}

} // namespace seatledger::actors
