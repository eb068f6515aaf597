#include "actors/coordinator.hpp"

#include <algorithm>
#include <future>
#include <iterator>
#include <poll.h>
#include <set>
#include <thread>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/apply_order.hpp"
#include "actors/batch_room.hpp"
#include "actors/catalog_hold.hpp"
#include "actors/consumer_lag.hpp"
#include "actors/entity_actors.hpp"
#include "actors/job_thread.hpp"
#include "actors/pending_answers.hpp"
#include "actors/relay.hpp"
#include "domain/identifiers.hpp"
#include "log/log.hpp"
#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::actors {

namespace {

using namespace std::chrono;
using storage::position;
using storage::topic_partition;

enum class stage { membership, subscriptions, deltas, catalog, unknown };

/// The headers messages.md gives a dead letter, in the order it writes
/// them.
constexpr const char* dead_letter_headers[]
  = {"seatledger.error.code", "seatledger.error.message",
     "seatledger.source.topic", "seatledger.source.partition",
     "seatledger.source.offset"};

/// "seatledger.membership.v1[0,3] seatledger.subscriptions.v1[1]": which
/// partitions moved, for an operator following a rebalance across replicas'
/// logs (a count alone did not say).
std::string partition_ids(const std::vector<topic_partition>& partitions) {
  std::map<std::string, std::set<std::int32_t>> by_topic;
  for (const auto& tp : partitions)
    by_topic[tp.topic].insert(tp.partition);
  std::string text;
  for (const auto& [topic, ids] : by_topic) {
    if (!text.empty())
      text += ' ';
    text += topic;
    char separator = '[';
    for (auto id : ids) {
      text += separator;
      text += std::to_string(id);
      separator = ',';
    }
    text += ']';
  }
  return text;
}

// Dead-letter codes of the pipeline's own checks, beside the decoder's.
constexpr const char* key_mismatch_code = "key_mismatch";
constexpr const char* wrong_partition_code = "wrong_partition";
constexpr const char* time_in_future_code = "time_in_future";

/// How long upstream events are looked up among the applied ones before
/// they are applied, after a batch held one applied before: duplicates
/// come in bursts (a producer re-sending), and each one found only at
/// commit costs that batch again.
constexpr minutes query_applied_period{10};

domain::timestamp wall_now() {
  return domain::timestamp::from_micros(
    duration_cast<microseconds>(system_clock::now().time_since_epoch())
      .count());
}

std::int64_t unix_ms() {
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

struct entity_entry {
  caf::actor actor;
  std::string lease_key;
  steady_clock::time_point last_used;
  /// The commit lane of the entity's partition.
  std::size_t lane = 0;
  /// A subscription actor's ledger window answers from here on (as its last
  /// answer, or the load, said).
  domain::timestamp window_from = domain::timestamp::min();
};

/// A record waiting in the current batch for its subscription, with the
/// time used to interleave commands and deltas.
struct timed_item {
  domain::timestamp time;
  messages::subscription_item item;
  std::int64_t order = 0;
  std::size_t lane = 0;
};

/// The share of a batch one commit lane writes: the rows of its partitions
/// (with their positions and leases), and what is reported once they are
/// committed.
struct batch_part {
  storage::storage_batch rows;
  /// Batch position of the record behind each outbox row in `rows`.
  std::vector<std::int64_t> outbox_order;
  std::vector<double> event_times; // seconds since epoch, for latency
  std::vector<std::pair<std::string, std::string>> types; // topic, type
  /// Counted when the batch commits, so a batch read again after a failed
  /// commit does not count them twice.
  std::vector<std::pair<std::string, std::string>> rejections; // type, reason
  std::vector<std::string> dead_letter_codes;
  std::int64_t licenses_issued = 0;
  std::int64_t overages = 0;
  std::int64_t duplicates_skipped = 0;
};

struct coordinator_state;

class listener : public kafka::rebalance_listener {
public:
  coordinator_state* st = nullptr;

  std::vector<position>
  on_assigned(const std::vector<topic_partition>& partitions) override;

  void on_revoked(const std::vector<topic_partition>& partitions,
                  bool lost) override;
};

struct coordinator_state {
  static inline const char* name = "coordinator";

  caf::stateful_actor<coordinator_state>* self = nullptr;
  pipeline_config config;
  std::shared_ptr<const entity_context> context;
  std::shared_ptr<service_status> status;
  std::unique_ptr<storage::pg_store> store;
  listener rebalance;
  std::unique_ptr<kafka::consumer> main;
  std::unique_ptr<kafka::consumer> deltas;
  std::unique_ptr<messages::decoder> decoder;
  caf::actor relay;
  std::map<std::string, std::int32_t> partition_counts;
  bool placement_known = false;
  /// Inside librdkafka's rebalance callback (a commit that settles there can
  /// be fenced).
  bool in_rebalance = false;
  /// Why the partition counts changed while running, if they did: nothing
  /// is read again until the replica restarts.
  std::string placement_stopped;
  std::string last_placement_problem;
  steady_clock::time_point next_placement_log;

  // Ownership: the leases held and the partitions they cover.
  std::map<std::string, std::int64_t> leases;
  std::map<topic_partition, std::string> owned;
  /// Where an owned partition's consumer lag counts from: its position
  /// stored in PostgreSQL (as last read or committed here), or, while none
  /// is stored, the offset of the first record read from it (the log's
  /// start as the consumer found it; retention may have moved it past 0).
  /// Absent before either: no lag is reported then.
  std::map<topic_partition, std::int64_t> lag_base;
  /// Leases dropped after a fenced commit whose partitions Kafka still
  /// assigns here, with those partitions: taken back once Kafka confirms
  /// this replica's membership (`retake_dropped`), forgotten when a
  /// rebalance revokes or assigns them.
  std::map<std::string, std::vector<topic_partition>> dropped;

  // Active entity actors.
  std::unordered_map<std::string, entity_entry> orgs;
  std::unordered_map<std::string, entity_entry> subscriptions;

  // The batch in flight.
  bool in_flight = false;
  pending_answers pending;
  bool batch_failed = false;
  /// A rewind to the stored positions has not succeeded yet.
  bool rewind_pending = false;
  /// The batch being applied, one part per commit lane.
  std::vector<batch_part> parts;
  std::size_t batch_records = 0;
  std::int64_t current_order = 0;
  bool batch_has_catalog = false;
  /// The applied-event keys (domain::applied_event_key) of the upstream
  /// events this batch applies.
  std::unordered_set<std::string> batch_keys;
  steady_clock::time_point batch_started;

  /// PostgreSQL's answer for a part committed on a commit lane.
  struct commit_outcome {
    caf::expected<void> result;
    double seconds = 0;
    double finished_unix_s = 0;
  };

  /// The batch PostgreSQL commits on the commit lanes while the entity
  /// actors apply the next one, each part in its own transaction on its own
  /// connection. The next is handed over only after every part is in; if a
  /// part fails, the next batch (applied on top of it) is thrown away with
  /// it.
  struct committing_batch {
    std::vector<batch_part> parts;
    /// One per part; no future for a part with nothing to write.
    std::vector<std::future<commit_outcome>> outcomes;
    std::unordered_set<std::string> keys;
    bool has_catalog = false;
  };
  std::optional<committing_batch> committing;
  /// A connection and the thread that commits on it.
  struct commit_lane {
    std::unique_ptr<storage::pg_store> store;
    /// Declared after `store`: destroying it first finishes the commit in
    /// flight, which uses the connection.
    job_thread<commit_outcome> thread;
  };
  /// A partition commits on lane `partition % lanes.size()`, so a lease's
  /// batches commit one after the other, in order, and no two lanes write
  /// the same entity. Declared after `committing`: destroying the lanes
  /// first finishes the commits in flight, which read it.
  std::vector<std::unique_ptr<commit_lane>> lanes;
  /// Moves on whenever a failure throws away what the entity actors hold, so
  /// records gathered before it are not applied on top of reloaded state.
  std::uint64_t generation = 0;
  /// Counts the consumer group's rebalance callbacks, so a batch's linger
  /// ends at one (see gather()).
  std::uint64_t rebalances = 0;
  /// Commands read but left for the next batch (see
  /// hold_commands_read_with_catalog).
  std::vector<kafka::record> held;
  batch_room room_split;

  // Month closes waiting for the next cycle.
  std::set<std::string> due_closes;
  steady_clock::time_point next_sweep = steady_clock::now();
  steady_clock::time_point next_passivation = steady_clock::now();
  steady_clock::time_point next_purge = steady_clock::now();
  /// Offset copies are sent again every few seconds while idle
  /// (kafka::offset_copies::offer_again).
  steady_clock::time_point next_recopy = steady_clock::now();
  steady_clock::time_point next_catalog_check = steady_clock::now();
  steady_clock::time_point next_kafka_check = steady_clock::now();
  /// check_postgres logged an outage and has not seen its end yet.
  bool postgres_reported_down = false;
  /// Until then, upstream events are looked up among the applied ones
  /// before they are applied (see `cycle`).
  steady_clock::time_point query_applied_until;

  /// Where the time of the last period went, logged every 10 s.
  struct phase_times {
    double gather = 0;
    double decode = 0;
    double dedup = 0;
    double activate = 0;
    double apply = 0;
    double commit = 0;
    double commit_wait = 0;
    // The longest single commit and apply: the tail of the latency.
    double commit_max = 0;
    double apply_max = 0;
    // Periodic checks on the coordinator's thread hold every record that
    // arrives meanwhile.
    double housekeeping = 0;
    double housekeeping_max = 0;
    long cycles = 0;
    long records = 0;
    long rows = 0;
    steady_clock::time_point since = steady_clock::now();
  } times;
  steady_clock::time_point phase_started;

  static double seconds_since(steady_clock::time_point t) {
    return duration_cast<duration<double>>(steady_clock::now() - t).count();
  }

  void report_times() {
    auto elapsed = seconds_since(times.since);
    if (elapsed < 10)
      return;
    if (times.records > 0)
      log::info("pipeline", {{"seconds", elapsed},
                             {"cycles", times.cycles},
                             {"records", times.records},
                             {"rows", times.rows},
                             {"gather_s", times.gather},
                             {"decode_s", times.decode},
                             {"dedup_s", times.dedup},
                             {"activate_s", times.activate},
                             {"apply_s", times.apply},
                             {"commit_s", times.commit},
                             {"commit_wait_s", times.commit_wait},
                             {"commit_max_s", times.commit_max},
                             {"apply_max_s", times.apply_max},
                             {"housekeeping_s", times.housekeeping},
                             {"housekeeping_max_s", times.housekeeping_max},
                             {"active_orgs", static_cast<long>(orgs.size())},
                             {"active_subscriptions",
                              static_cast<long>(subscriptions.size())}});
    times = phase_times{};
  }

  bool draining = false;
  bool drained = false;
  caf::response_promise drain_promise;
  int consecutive_failures = 0;

  service_status::observer* metrics() const {
    return status->metrics.load();
  }

  stage stage_of(const std::string& topic) const {
    const auto& t = context->topics;
    if (topic == t.membership)
      return stage::membership;
    if (topic == t.subscriptions)
      return stage::subscriptions;
    if (topic == t.deltas)
      return stage::deltas;
    if (topic == t.catalog)
      return stage::catalog;
    return stage::unknown;
  }

  std::size_t lane_of(std::int32_t partition) const {
    return static_cast<std::size_t>(partition) % lanes.size();
  }

  std::string lease_of(const topic_partition& tp) const {
    switch (stage_of(tp.topic)) {
      case stage::membership: return membership_lease(tp.partition);
      case stage::subscriptions:
      case stage::deltas: return subscription_lease(tp.partition);
      case stage::catalog: return "catalog/" + std::to_string(tp.partition);
      default: return "unknown/" + tp.topic;
    }
  }

  void publish_leases() {
    messages::lease_set set;
    for (const auto& [key, epoch] : leases)
      set.lease_keys.push_back(key);
    self->send(relay, atoms::leases_atom_v, std::move(set));
    status->assigned_partitions = static_cast<std::int64_t>(owned.size());
  }

  void passivate_lease(const std::string& lease_key) {
    for (auto* registry : {&orgs, &subscriptions})
      for (auto it = registry->begin(); it != registry->end();) {
        if (it->second.lease_key == lease_key) {
          self->send_exit(it->second.actor, caf::exit_reason::user_shutdown);
          it = registry->erase(it);
        } else {
          ++it;
        }
      }
    update_active_gauges();
  }

  void passivate_all() {
    for (auto* registry : {&orgs, &subscriptions}) {
      for (auto& [id, entry] : *registry)
        self->send_exit(entry.actor, caf::exit_reason::user_shutdown);
      registry->clear();
    }
    update_active_gauges();
  }

  void update_active_gauges() {
    status->active_orgs = static_cast<std::int64_t>(orgs.size());
    status->active_subscriptions
      = static_cast<std::int64_t>(subscriptions.size());
  }

  /// Blocks (this actor is detached) until PostgreSQL answers, or draining.
  template<class F>
  auto with_retry(const char* what, F fn) -> decltype(fn()) {
    auto delay = milliseconds{200};
    for (;;) {
      auto result = fn();
      if (result) {
        status->postgres_ok = true;
        return result;
      }
      // PostgreSQL that answered with an error is reachable: a lease held
      // by an operator's session (lock timeout) did not make it so.
      if (is(result.error(), service_errc::storage_unavailable))
        status->postgres_ok = false;
      log::error("postgres call failed, retrying",
                 {{"operation", what}, {"error", describe(result.error())}});
      if (draining || status->stopping)
        return result;
      // The lag grows while PostgreSQL is away, and this loop keeps
      // housekeeping from reporting it.
      report_all_lag();
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, milliseconds{5000});
    }
  }

  // -- rebalance -------------------------------------------------------------

  std::vector<position>
  assigned(const std::vector<topic_partition>& partitions) {
    for (const auto& tp : partitions)
      dropped.erase(lease_of(tp));
    std::set<std::string> keys;
    std::vector<topic_partition> wanted = partitions;
    std::vector<topic_partition> delta_partitions;
    for (const auto& tp : partitions) {
      keys.insert(lease_of(tp));
      if (stage_of(tp.topic) == stage::subscriptions) {
        topic_partition d{context->topics.deltas, tp.partition};
        delta_partitions.push_back(d);
        wanted.push_back(d);
      }
    }
    auto acquired = with_retry("acquire leases", [&] {
      return store->acquire_leases(config.consumer_group,
                                   {keys.begin(), keys.end()}, config.owner);
    });
    if (!acquired)
      return {};
    for (const auto& l : *acquired)
      leases[l.lease_key] = l.epoch;
    drop_held(wanted);
    auto stored = with_retry("load positions", [&] {
      return store->load_positions(config.consumer_group, wanted);
    });
    if (!stored)
      return {};
    std::vector<position> main_positions;
    std::vector<position> delta_positions;
    for (const auto& tp : wanted) {
      owned[tp] = lease_of(tp);
      auto it = stored->find(tp);
      position p{tp, it == stored->end() ? -2 : it->second}; // -2: beginning
      note_stored(p);
      if (tp.topic == context->topics.deltas)
        delta_positions.push_back(p);
      else
        main_positions.push_back(p);
    }
    if (auto ok = deltas->assign(delta_positions); !ok)
      log::error("cannot assign delta partitions",
                 {{"error", describe(ok.error())}});
    // Lag tools get the stored positions from the new owner (held until the
    // group is steady): the previous owner dropped the copies it held when
    // it gave the partitions up, and no batch may follow here to send one.
    std::vector<position> copies;
    for (const auto* from : {&main_positions, &delta_positions})
      for (const auto& p : *from)
        if (p.next_offset >= 0)
          copies.push_back(p);
    main->commit_async(copies);
    log::info("partitions assigned",
              {{"partitions", static_cast<long>(partitions.size())},
               {"ids", partition_ids(partitions)},
               {"owner", config.owner}});
    publish_leases();
    status->partitions_assigned = true;
    return main_positions;
  }

  void revoked(const std::vector<topic_partition>& partitions, bool lost) {
    // What was read from these partitions is committed before they go.
    auto commit_in_flight = committing.has_value();
    settle();
    std::vector<topic_partition> delta_partitions;
    std::set<std::string> keys;
    for (const auto& tp : partitions) {
      keys.insert(lease_of(tp));
      dropped.erase(lease_of(tp));
      owned.erase(tp);
      if (stage_of(tp.topic) == stage::subscriptions) {
        topic_partition d{context->topics.deltas, tp.partition};
        owned.erase(d);
        delta_partitions.push_back(d);
      }
    }
    drop_held(partitions);
    drop_held(delta_partitions);
    for (const auto& tp : partitions)
      forget_lag(tp);
    for (const auto& tp : delta_partitions)
      forget_lag(tp);
    main->forget_offset_copies(delta_partitions);
    if (auto ok = deltas->unassign(delta_partitions); !ok)
      log::error("cannot unassign delta partitions",
                 {{"error", describe(ok.error())}});
    for (const auto& key : keys) {
      leases.erase(key);
      passivate_lease(key);
    }
    log::info("partitions revoked",
              {{"partitions", static_cast<long>(partitions.size())},
               {"ids", partition_ids(partitions)},
               {"commit_in_flight", commit_in_flight},
               {"lost", lost}});
    publish_leases();
  }

  // -- one cycle
  // ---------------------------------------------------------------

  void dead_letter(const kafka::record& r, const std::string& code,
                   const std::string& message) {
    storage::outbox_row row;
    row.event_id = domain::derived_id(
      {"dlq", r.topic, std::to_string(r.partition), std::to_string(r.offset)});
    row.topic = context->topics.dlq;
    row.key = r.key;
    row.value = r.value;
    row.null_key = r.null_key;
    row.null_value = r.null_value;
    // The record's own headers, but those named like the ones added here:
    // a record that carried `seatledger.error.code: fake` had its dead
    // letter say two codes, the forged one first.
    for (const auto& header : r.headers)
      if (std::find(std::begin(dead_letter_headers),
                    std::end(dead_letter_headers), header.first)
          == std::end(dead_letter_headers))
        row.headers.push_back(header);
    std::string values[] = {code, messages::escape_invalid_utf8(message),
                            r.topic, std::to_string(r.partition),
                            std::to_string(r.offset)};
    static_assert(std::size(values) == std::size(dead_letter_headers));
    for (size_t i = 0; i < std::size(values); ++i)
      row.headers.emplace_back(dead_letter_headers[i], std::move(values[i]));
    row.lease_key = lease_of({r.topic, r.partition});
    auto& part = parts[lane_of(r.partition)];
    part.rows.outbox.push_back(std::move(row));
    part.outbox_order.push_back(current_order);
    log::warning("record sent to the dead-letter topic",
                 {{"topic", r.topic},
                  {"partition", r.partition},
                  {"offset", static_cast<long long>(r.offset)},
                  {"code", code},
                  {"reason", message}});
    part.dead_letter_codes.push_back(code);
  }

  kafka::placement_topics placement_topics() const {
    const auto& t = context->topics;
    return {t.membership, t.subscriptions, t.deltas};
  }

  /// The partition counts the entities' placement needs, read and
  /// accepted.
  bool partition_counts_known() const {
    return placement_known;
  }

  /// Whether a metadata round trip (start-up's reads, every second until
  /// the counts are known; then the check every 5 s) got Kafka's answer.
  /// The HTTP API refuses writes after two failed ones in a row
  /// (app/runtime.cpp); counted only by the check, a Kafka away at
  /// start-up held each write for 30 s.
  void note_metadata_answer(bool answered) {
    status->kafka_checked = true;
    status->kafka_failed_checks = answered ? 0
                                           : status->kafka_failed_checks + 1;
  }

  /// Reads the topics' partition counts from Kafka's metadata; whether
  /// records can be placed with them now.
  bool read_partition_counts(int timeout_ms) {
    const auto& topics = context->topics;
    // The group member's own client: no client of its own per attempt
    // while Kafka is unreachable.
    auto counts = main->partition_counts(
      {topics.membership, topics.subscriptions, topics.catalog, topics.deltas},
      timeout_ms);
    note_metadata_answer(static_cast<bool>(counts));
    if (!counts) {
      log::error("cannot read topic metadata; consuming nothing until it "
                 "can",
                 {{"error", describe(counts.error())}});
      return false;
    }
    status->kafka_ok = true;
    auto problem = kafka::placement_problem(placement_topics(), *counts);
    if (!problem.empty()) {
      status->placement_ok = false;
      log_placement_problem(problem + "; consuming nothing until it is fixed");
      return false;
    }
    if (partition_counts != *counts)
      announce_series(*counts);
    partition_counts = *counts;
    placement_known = true;
    status->placement_ok = true;
    return true;
  }

  /// Tells the metrics every label value the pipeline can report, so each
  /// series exists (at 0) before its first sample.
  void announce_series(const std::map<std::string, std::int32_t>& counts) {
    auto* m = metrics();
    if (m == nullptr)
      return;
    const auto& topics = context->topics;
    using messages::topic_kind;
    service_status::known_series known;
    for (auto [kind, topic] : topics.inputs())
      for (auto type : messages::types_of(kind))
        known.consumed.emplace_back(*topic, type);
    for (auto type : messages::types_of(topic_kind::subscriptions))
      for (auto reason : domain::all_rejection_codes)
        known.rejected.push_back(
          {topics.subscriptions, std::string{type}, domain::to_string(reason)});
    for (auto code : messages::all_decode_error_codes)
      known.dead_letter_codes.emplace_back(messages::to_string(code));
    for (auto code :
         {key_mismatch_code, wrong_partition_code, time_in_future_code})
      known.dead_letter_codes.emplace_back(code);
    for (const auto& [topic, count] : counts)
      for (std::int32_t p = 0; p < count; ++p)
        known.partitions.emplace_back(topic, p);
    m->known(known);
  }

  /// Logs `problem` when it is new, and again every minute while it lasts
  /// (a cycle runs every second meanwhile).
  void log_placement_problem(const std::string& problem) {
    auto now = steady_clock::now();
    if (problem == last_placement_problem && now < next_placement_log)
      return;
    last_placement_problem = problem;
    next_placement_log = now + minutes{1};
    log::error(problem);
  }

  /// Whether the record sits in the partition its key hashes to (every
  /// producer must use the default partitioner), so one replica owns the
  /// entity.
  bool check_key(const kafka::record& r, const std::string& entity_id) {
    if (r.null_key || r.key != entity_id) {
      dead_letter(r, key_mismatch_code,
                  (r.null_key ? std::string{"record key is null, not"}
                              : "record key '" + r.key + "' is not")
                    + " the entity id '" + entity_id + "'");
      return false;
    }
    auto it = partition_counts.find(r.topic);
    if (it != partition_counts.end()
        && kafka::partition_for_key(r.key, it->second) != r.partition) {
      dead_letter(
        r, wrong_partition_code,
        "key '" + r.key + "' belongs to partition "
          + std::to_string(kafka::partition_for_key(r.key, it->second))
          + " (Kafka's default murmur2 partitioner)");
      return false;
    }
    return true;
  }

  /// Whether an upstream event's time is not too far ahead of this
  /// replica's clock (`latest`, microseconds since the epoch).
  bool check_time(const kafka::record& r, const domain::event_ref& ref,
                  std::int64_t latest) {
    if (ref.time.micros() <= latest)
      return true;
    dead_letter(
      r, time_in_future_code,
      "time " + domain::format_rfc3339(ref.time) + " is more than "
        + std::to_string(
          duration_cast<seconds>(config.max_event_time_ahead).count())
        + " s ahead of this replica's clock (--max-event-time-ahead)");
    return false;
  }

  std::vector<kafka::record> gather() {
    std::vector<kafka::record> records = std::move(held);
    held.clear();
    const auto held_before = records.size();
    std::vector<pollfd> fds = {{main->wake_fd(), POLLIN, 0},
                               {deltas->wake_fd(), POLLIN, 0}};
    for (const auto& lane : lanes)
      fds.push_back({lane->thread.done_fd(), POLLIN, 0});
    // Half the room to the main topics, the deltas, the rest (batch_room).
    auto take = [&] {
      auto poll_into = [&](kafka::consumer& consumer, std::size_t limit) {
        for (auto& r : consumer.poll(limit, 0))
          records.push_back(std::move(r));
      };
      auto room = [&] { return config.max_batch_records - records.size(); };
      poll_into(*main, room_split.main_first(room()));
      poll_into(*deltas, room());
      poll_into(*main, room());
    };
    take();
    if (records.empty()) {
      auto wait_ms = static_cast<int>(config.poll_wait.count());
      if (committing) {
        // Until the batch on the commit thread is in, records that arrive
        // are applied meanwhile: waiting for the commit first would put
        // their apply time on every record's path to PostgreSQL.
        while (records.empty() && !commit_finished()) {
          ::poll(fds.data(), fds.size(), wait_ms);
          for (const auto& lane : lanes)
            lane->thread.clear_done();
          take();
        }
      } else {
        ::poll(fds.data(), 2, wait_ms);
        take();
      }
      // take() polled both consumers, which serves rebalance callbacks and
      // errors even when no record came.
      if (records.empty())
        return records;
    }
    // The linger lasts its whole time unless the batch fills or the group
    // rebalances: a wake-up that brought no record (an offset-commit
    // result) used to end it early, so two topics' records meant for one
    // batch could still go in two. A rebalance ends it, so a partition
    // revoked and assigned again is not read twice into one batch.
    auto deadline = steady_clock::now() + config.linger;
    const auto rebalances_before = rebalances;
    while (records.size() < config.max_batch_records
           && rebalances == rebalances_before) {
      auto left = deadline - steady_clock::now();
      if (left <= steady_clock::duration::zero())
        break;
      auto left_ms = std::chrono::ceil<milliseconds>(left).count();
      ::poll(fds.data(), 2, static_cast<int>(left_ms));
      take();
    }
    held = hold_commands_read_with_catalog(records, held_before,
                                           context->topics.catalog,
                                           context->topics.subscriptions);
    return records;
  }

  /// Held records of partitions the consumers are about to read again
  /// from their stored positions (or no longer read) would be doubled.
  void drop_held(const std::vector<topic_partition>& partitions) {
    std::set<topic_partition> gone{partitions.begin(), partitions.end()};
    held.erase(std::remove_if(held.begin(), held.end(),
                              [&](const kafka::record& r) {
                                return gone.count({r.topic, r.partition}) > 0;
                              }),
               held.end());
  }

  bool commit_finished() const {
    if (!committing)
      return true;
    for (const auto& outcome : committing->outcomes)
      if (outcome.valid()
          && outcome.wait_for(seconds{0}) != std::future_status::ready)
        return false;
    return true;
  }

  void cycle() {
    if (in_flight)
      return;
    if (draining) {
      finish_drain();
      return;
    }
    if (!partition_counts_known() && !read_partition_counts(2000)) {
      // Entities are placed by their key's partition: no record is read
      // before the counts are known (Kafka unreachable at start, or a topic
      // not created yet).
      status->kafka_ok = false;
      // Housekeeping does not run yet, and readiness names PostgreSQL
      // first: unchecked, it blamed PostgreSQL for Kafka's outage.
      check_postgres();
      self->delayed_send(self, seconds{1}, atoms::poll_atom_v);
      return;
    }
    auto housekeeping_started = steady_clock::now();
    auto housekept = housekeeping();
    auto housekeeping_took = seconds_since(housekeeping_started);
    times.housekeeping += housekeeping_took;
    times.housekeeping_max = std::max(times.housekeeping_max,
                                      housekeeping_took);
    if (!housekept)
      return;
    if (!placement_stopped.empty()) {
      log_placement_problem(placement_stopped
                            + "; consuming nothing until restarted");
      self->delayed_send(self, seconds{1}, atoms::poll_atom_v);
      return;
    }
    report_times();
    auto gather_started = steady_clock::now();
    auto generation_before = generation;
    auto records = gather();
    times.gather += seconds_since(gather_started);
    // A commit failed in a revocation callback and rewound the consumers.
    // Drop everything gathered: what came before that rewind is read again,
    // and what came after it is behind the consumers now, so rewind once
    // more (the failure scheduled the next cycle).
    if (generation != generation_before) {
      rewind();
      return;
    }
    // A rewind that failed: these records may come from past a batch thrown
    // away. Drop them and rewind again (polling let rebalance callbacks run,
    // so a partition no longer ours is out of the way).
    if (rewind_pending) {
      rewind();
      if (rewind_pending)
        self->delayed_send(self, seconds{1}, atoms::poll_atom_v);
      else
        self->send(self, atoms::poll_atom_v);
      return;
    }
    status->consuming = true;
    status->last_cycle_unix_ms = unix_ms();
    for (const auto& g : main->take_gaps())
      report_gap(g);
    for (const auto& g : deltas->take_gaps())
      report_gap(g);
    if (records.empty() && due_closes.empty()) {
      if (!settle())
        return;
      // Offset copies held during a rebalance go once it is over, even
      // when no batch follows it.
      main->commit_async({});
      recopy_when_due();
      self->send(self, atoms::poll_atom_v);
      return;
    }
    start_batch(std::move(records));
  }

  void report_gap(const kafka::consumer::gap& g) {
    ++status->position_gaps;
    log::error("stored position no longer in Kafka: resuming from the "
               "earliest record still there",
               {{"topic", g.tp.topic},
                {"partition", g.tp.partition},
                {"stored_offset", static_cast<long long>(g.requested)},
                {"earliest_offset", static_cast<long long>(g.earliest)},
                {"skipped_records", static_cast<long long>(
                                      g.earliest >= 0 ? std::max<std::int64_t>(
                                        0, g.earliest - g.requested)
                                                      : -1)}});
    if (auto* m = metrics())
      m->gap(g.tp.topic, g.tp.partition);
  }

  void start_batch(std::vector<kafka::record> records) {
    ++times.cycles;
    times.records += static_cast<long>(records.size());
    batch_records = records.size();
    auto decode_started = steady_clock::now();
    parts.assign(lanes.size(), batch_part{});
    for (auto& part : parts)
      part.rows.consumer_group = config.consumer_group;
    batch_has_catalog = false;
    batch_failed = false;
    batch_started = steady_clock::now();
    std::map<topic_partition, std::int64_t> next_offsets;
    std::vector<std::set<std::string>> batch_leases(lanes.size());
    // Decoded upstream events, before de-duplication.
    struct pending {
      stage kind;
      domain::event_key key;
      std::variant<domain::membership_event, domain::command_event,
                   domain::catalog_event>
        event;
      std::string topic;
      std::string type;
      std::int64_t order = 0;
      std::size_t lane = 0;
    };
    std::vector<pending> upstream;
    std::map<std::string, std::vector<timed_item>> delta_items;
    std::int64_t record_index = -1;
    const auto latest_time = wall_now().micros()
                             + config.max_event_time_ahead.count();
    for (auto& r : records) {
      current_order = ++record_index;
      topic_partition tp{r.topic, r.partition};
      auto owner = owned.find(tp);
      if (owner == owned.end())
        continue; // revoked while gathering: the next owner reads it
      auto [next, first_of_partition] = next_offsets.try_emplace(tp);
      next->second = r.offset + 1;
      if (first_of_partition) // once a partition a batch, not per record
        lag_base.emplace(tp, r.offset); // a stored position stays
      auto lane = lane_of(r.partition);
      batch_leases[lane].insert(owner->second);
      const auto record_stage = stage_of(r.topic);
      // The decoder sees bytes only, and would call a tombstone empty.
      if (r.null_value && record_stage != stage::unknown) {
        dead_letter(
          r, messages::to_string(messages::decode_error_code::malformed_json),
          "record value is null (a tombstone)");
        continue;
      }
      messages::record_view view{r.value, &r.headers};
      switch (record_stage) {
        case stage::membership: {
          auto decoded = decoder->decode_membership(view);
          if (!decoded) {
            dead_letter(r, to_string(decoded.error().code),
                        decoded.error().message);
            break;
          }
          auto& event = decoded.value();
          if (!check_key(r, domain::org_id_of(event.change))
              || !check_time(r, event.ref, latest_time))
            break;
          // Read before `event` is moved into the list (a braced list is
          // evaluated left to right).
          auto type = event.ref.type;
          upstream.push_back({stage::membership, domain::key_of(event.ref),
                              std::move(event), r.topic, std::move(type),
                              record_index, lane});
          break;
        }
        case stage::subscriptions: {
          auto decoded = decoder->decode_command(view);
          if (!decoded) {
            dead_letter(r, to_string(decoded.error().code),
                        decoded.error().message);
            break;
          }
          auto& event = decoded.value();
          if (!check_key(r, domain::subscription_id_of(event.command))
              || !check_time(r, event.ref, latest_time))
            break;
          // Read before `event` is moved into the list (a braced list is
          // evaluated left to right).
          auto type = event.ref.type;
          upstream.push_back({stage::subscriptions, domain::key_of(event.ref),
                              std::move(event), r.topic, std::move(type),
                              record_index, lane});
          break;
        }
        case stage::deltas: {
          auto decoded = decoder->decode_seat_delta(view);
          if (!decoded) {
            dead_letter(r, to_string(decoded.error().code),
                        decoded.error().message);
            break;
          }
          auto& delta = decoded.value();
          if (!check_key(r, delta.subscription_id))
            break;
          parts[lane].types.emplace_back(r.topic,
                                         "seatledger.internal.seat_delta");
          auto time = delta.cause.time;
          auto id = delta.subscription_id;
          delta_items[id].push_back(
            {time, std::move(delta), record_index, lane});
          break;
        }
        case stage::catalog: {
          auto decoded = decoder->decode_catalog(view);
          if (!decoded) {
            dead_letter(r, to_string(decoded.error().code),
                        decoded.error().message);
            break;
          }
          auto& event = decoded.value();
          // Per-key order holds only for records where the key puts them.
          if (!check_key(r, messages::record_key(event))
              || !check_time(r, event.ref, latest_time))
            break;
          // Read before `event` is moved into the list (a braced list is
          // evaluated left to right).
          auto type = event.ref.type;
          upstream.push_back({stage::catalog, domain::key_of(event.ref),
                              std::move(event), r.topic, std::move(type),
                              record_index, lane});
          break;
        }
        case stage::unknown: break;
      }
    }
    for (const auto& [tp, next] : next_offsets)
      parts[lane_of(tp.partition)].rows.positions.push_back({tp, next});
    times.decode += seconds_since(decode_started);
    auto dedup_started = steady_clock::now();
    // De-duplicate upstream events within the batch and against the batch
    // committing; against what was applied before, the unique key of
    // applied events does it at commit: a batch it refuses is applied again
    // from the stored positions, and for `query_applied_period` after that
    // every batch asks first (one round trip). Asking every time cost
    // PostgreSQL an eighth of its CPU per event for the rare duplicate.
    // Events are told apart by their applied-event key, as PostgreSQL's
    // unique index does: a hash set of one string each instead of an
    // ordered set of (source, id) pairs.
    std::vector<std::string> applied_keys;
    applied_keys.reserve(upstream.size());
    for (const auto& p : upstream)
      applied_keys.push_back(domain::applied_event_key(p.key));
    std::vector<bool> seen(applied_keys.size(), false);
    if (!applied_keys.empty() && steady_clock::now() < query_applied_until) {
      auto applied = store->filter_applied_keys(applied_keys);
      if (!applied) {
        fail_batch(applied.error());
        return;
      }
      seen = std::move(*applied);
    }
    // The batch on the commit thread is not visible to that query yet.
    if (committing)
      for (size_t i = 0; i < applied_keys.size(); ++i)
        if (!seen[i] && committing->keys.count(applied_keys[i]) > 0)
          seen[i] = true;
    times.dedup += seconds_since(dedup_started);
    std::unordered_set<std::string> in_batch;
    in_batch.reserve(upstream.size());
    std::map<std::string, messages::org_job> org_jobs;
    std::map<std::string, std::vector<timed_item>> command_items;
    for (size_t i = 0; i < upstream.size(); ++i) {
      auto& p = upstream[i];
      if (seen[i] || !in_batch.insert(applied_keys[i]).second) {
        ++parts[p.lane].duplicates_skipped;
        continue;
      }
      auto& part = parts[p.lane];
      part.rows.applied_events.push_back({std::move(p.key.source),
                                          std::move(p.key.id),
                                          std::move(applied_keys[i])});
      part.types.emplace_back(p.topic, p.type);
      std::visit(
        [&](auto& event) {
          using T = std::decay_t<decltype(event)>;
          part.event_times.push_back(
            static_cast<double>(event.ref.time.micros()) / 1e6);
          if constexpr (std::is_same_v<T, domain::membership_event>) {
            auto& job = org_jobs[domain::org_id_of(event.change)];
            job.events.push_back(std::move(event));
            job.order.push_back(p.order);
          } else if constexpr (std::is_same_v<T, domain::command_event>) {
            auto id = domain::subscription_id_of(event.command);
            auto time = event.ref.time;
            command_items[id].push_back(
              {time, std::move(event), p.order, p.lane});
          } else {
            batch_has_catalog = true;
            if (auto* up
                = std::get_if<domain::rate_plan_upserted>(&event.change))
              part.rows.catalog_upserts.push_back(
                {std::move(*up), event.ref, p.order});
            else
              part.rows.catalog_removals.push_back(
                {std::get<domain::rate_plan_removed>(event.change).rate_plan_id,
                 event.ref, p.order});
          }
        },
        p.event);
    }
    batch_keys = std::move(in_batch);
    // A license takes tier and features from the catalog as it is now: a
    // change another replica committed must be in effect for this record,
    // whether or not its NOTIFY arrived yet (one cheap query per batch that
    // carries commands). A catalog change still committing lands first.
    if (!command_items.empty()) {
      if (committing && committing->has_catalog && !settle())
        return;
      refresh_catalog();
    }
    // Interleave each subscription's commands and deltas by event time,
    // keeping each topic's own order; its events are published in that
    // order (apply_order.hpp).
    std::map<std::string, messages::subscription_job> sub_jobs;
    std::set<std::string> sub_ids;
    for (const auto& [id, items] : command_items)
      sub_ids.insert(id);
    for (const auto& [id, items] : delta_items)
      sub_ids.insert(id);
    for (const auto& id : sub_ids) {
      auto& job = sub_jobs[id];
      auto sequence = in_apply_order(command_items[id], delta_items[id]);
      for (size_t k = 0; k < sequence.items.size(); ++k) {
        auto& next = *sequence.items[k];
        if (sequence.is_delta[k])
          parts[next.lane].event_times.push_back(
            static_cast<double>(next.time.micros()) / 1e6);
        job.items.push_back(std::move(next.item));
      }
      job.order = std::move(sequence.labels);
    }
    // Months the sweeper found due.
    auto now = wall_now();
    for (const auto& id : due_closes) {
      auto p = kafka::partition_for_key(
        id, partition_counts[context->topics.subscriptions]);
      auto lease = subscription_lease(p);
      if (leases.count(lease) == 0)
        continue;
      batch_leases[lane_of(p)].insert(lease);
      auto& job = sub_jobs[id];
      job.items.emplace_back(messages::close_months_request{now});
      job.order.push_back(record_index + 1);
    }
    due_closes.clear();
    for (size_t lane = 0; lane < lanes.size(); ++lane)
      for (const auto& key : batch_leases[lane]) {
        auto it = leases.find(key);
        if (it != leases.end())
          parts[lane].rows.leases.push_back({key, it->second});
      }
    auto activate_started = steady_clock::now();
    if (!activate(org_jobs, sub_jobs) || !attach_earlier_ledgers(sub_jobs))
      return;
    times.activate += seconds_since(activate_started);
    phase_started = steady_clock::now();
    dispatch(std::move(org_jobs), std::move(sub_jobs));
  }

  /// Loads and spawns the entities this batch needs (one query per kind).
  bool
  activate(const std::map<std::string, messages::org_job>& org_jobs,
           const std::map<std::string, messages::subscription_job>& sub_jobs) {
    std::vector<std::string> missing_orgs;
    for (const auto& [id, job] : org_jobs)
      if (orgs.count(id) == 0)
        missing_orgs.push_back(id);
    std::vector<std::string> missing_subs;
    for (const auto& [id, job] : sub_jobs)
      if (subscriptions.count(id) == 0)
        missing_subs.push_back(id);
    auto now = steady_clock::now();
    if (!missing_orgs.empty()) {
      auto loaded = store->load_orgs(missing_orgs);
      if (!loaded) {
        fail_batch(loaded.error());
        return false;
      }
      auto p_count = partition_counts[context->topics.membership];
      for (const auto& id : missing_orgs) {
        auto it = loaded->find(id);
        storage::org_snapshot snap;
        if (it != loaded->end())
          snap = std::move(it->second);
        else
          snap.org_id = id;
        auto p = kafka::partition_for_key(id, p_count);
        orgs[id]
          = {spawn_org_actor(self->system(), std::move(snap), p, context),
             membership_lease(p), now, lane_of(p)};
      }
    }
    if (!missing_subs.empty()) {
      auto loaded = store->load_subscriptions(missing_subs);
      if (!loaded) {
        fail_batch(loaded.error());
        return false;
      }
      auto p_count = partition_counts[context->topics.subscriptions];
      for (const auto& id : missing_subs) {
        auto it = loaded->find(id);
        std::optional<storage::subscription_snapshot> snap;
        if (it != loaded->end())
          snap = std::move(it->second);
        auto window_from = snap ? snap->window.exact_from
                                : domain::timestamp::min();
        auto p = kafka::partition_for_key(id, p_count);
        subscriptions[id]
          = {spawn_subscription_actor(self->system(), std::move(snap), id, p,
                                      context),
             subscription_lease(p), now, lane_of(p), window_from};
      }
    }
    update_active_gauges();
    return true;
  }

  /// Hands a job whose command starts a term before its actor's ledger
  /// window the ledger from that start: the term's months already past
  /// close at once, and their peaks came from a window that had folded
  /// those entries away (a `create` arriving over 400 days after its
  /// pool's first entries, a renewal or conversion dated that far back).
  bool attach_earlier_ledgers(
    std::map<std::string, messages::subscription_job>& sub_jobs) {
    std::vector<std::pair<std::string, domain::timestamp>> wanted;
    for (auto& [id, job] : sub_jobs) {
      std::optional<domain::timestamp> from;
      for (const auto& item : job.items)
        if (auto* command = std::get_if<domain::command_event>(&item))
          if (auto start = domain::ledger_needed_from(command->command))
            from = from ? std::min(*from, *start) : *start;
      job.starts_a_term = from.has_value();
      auto entry = subscriptions.find(id);
      if (from && entry != subscriptions.end()
          && *from < entry->second.window_from)
        wanted.emplace_back(id, *from);
    }
    if (wanted.empty())
      return true;
    // The entries before a window are committed, but for those of the batch
    // still committing.
    if (!settle())
      return false;
    for (const auto& [id, from] : wanted) {
      auto earlier = store->ledger_window(id, from);
      if (!earlier) {
        fail_batch(earlier.error());
        return false;
      }
      log::info(
        "ledger read from before a subscription's window",
        {{"subscription_id", id},
         {"from", domain::format_rfc3339(from)},
         {"window_from", domain::format_rfc3339(subscriptions[id].window_from)},
         {"entries", static_cast<long>(earlier->points.size())}});
      sub_jobs[id].earlier_ledger = std::move(*earlier);
    }
    return true;
  }

  void dispatch(std::map<std::string, messages::org_job> org_jobs,
                std::map<std::string, messages::subscription_job> sub_jobs) {
    in_flight = true;
    auto seq = pending.start(org_jobs.size() + sub_jobs.size());
    if (org_jobs.empty() && sub_jobs.empty()) {
      commit_batch();
      return;
    }
    auto now = steady_clock::now();
    // An entity's rows go to the part of its partition's commit lane.
    auto on_result = [this, seq](std::size_t lane) {
      return [this, seq, lane](messages::entity_result& result) {
        if (!pending.is_current(seq))
          return; // given up on (deadline or failure)
        merge(result, parts[lane]);
        if (pending.answered())
          commit_batch();
      };
    };
    auto on_error = [this, seq](caf::error& err) {
      if (!pending.is_current(seq))
        return;
      log::error("entity actor failed", {{"error", describe(err)}});
      batch_failed = true;
      if (pending.answered())
        commit_batch();
    };
    // One deadline for the whole dispatch instead of a timeout per request:
    // a request's timeout is work for CAF's clock thread (a lock and a
    // wake-up) for each of some 250 requests a cycle. A dead actor still
    // answers at once (with an error); the deadline is for one that never
    // answers.
    for (auto& [id, job] : org_jobs) {
      auto& entry = orgs[id];
      entry.last_used = now;
      self
        ->request(entry.actor, caf::infinite, atoms::apply_atom_v,
                  std::move(job))
        .then(on_result(entry.lane), on_error);
    }
    for (auto& [id, job] : sub_jobs) {
      auto& entry = subscriptions[id];
      entry.last_used = now;
      auto merge_result = on_result(entry.lane);
      self
        ->request(entry.actor, caf::infinite, atoms::apply_atom_v,
                  std::move(job))
        .then(
          [this, seq, id = id,
           merge_result](messages::entity_result& result) mutable {
            // An answer given up on may come from an actor passivated since.
            if (!pending.is_current(seq))
              return;
            if (auto it = subscriptions.find(id);
                it != subscriptions.end() && result.window_from)
              it->second.window_from = *result.window_from;
            merge_result(result);
          },
          on_error);
    }
    self->delayed_send(self, config.entity_timeout, atoms::deadline_atom_v,
                       seq);
  }

  /// The entity actors of dispatch `seq` had `entity_timeout` to answer.
  void dispatch_deadline(std::uint64_t seq) {
    auto missing = pending.expire(seq);
    if (missing == 0)
      return;
    log::error("entity actors did not answer in time",
               {{"unanswered", static_cast<long>(missing)}});
    batch_failed = true;
    commit_batch();
  }

  template<class T>
  static void append(std::vector<T>& to, std::vector<T>& from) {
    if (to.empty()) {
      to = std::move(from);
      return;
    }
    to.insert(to.end(), std::make_move_iterator(from.begin()),
              std::make_move_iterator(from.end()));
  }

  static void append_rows(storage::storage_batch& to,
                          storage::storage_batch& from) {
    append(to.leases, from.leases);
    append(to.positions, from.positions);
    append(to.applied_events, from.applied_events);
    append(to.orgs, from.orgs);
    append(to.memberships, from.memberships);
    append(to.subscriptions, from.subscriptions);
    append(to.terms, from.terms);
    append(to.subscription_orgs, from.subscription_orgs);
    append(to.holders, from.holders);
    append(to.ledger, from.ledger);
    append(to.licenses, from.licenses);
    append(to.revocations, from.revocations);
    append(to.catalog_upserts, from.catalog_upserts);
    append(to.catalog_removals, from.catalog_removals);
    append(to.outbox, from.outbox);
    append(to.indexed_events, from.indexed_events);
  }

  /// Puts every part's rows into the first: one transaction on one lane.
  /// (Records of one partition are all in one part, so each lease's rows
  /// keep their order.)
  void join_parts() {
    auto& to = parts.front();
    for (size_t i = 1; i < parts.size(); ++i) {
      auto& from = parts[i];
      append_rows(to.rows, from.rows);
      append(to.outbox_order, from.outbox_order);
      append(to.event_times, from.event_times);
      append(to.types, from.types);
      append(to.rejections, from.rejections);
      append(to.dead_letter_codes, from.dead_letter_codes);
      to.licenses_issued += from.licenses_issued;
      to.overages += from.overages;
      to.duplicates_skipped += from.duplicates_skipped;
    }
    parts.resize(1);
  }

  void merge(messages::entity_result& result, batch_part& part) {
    append_rows(part.rows, result.rows);
    append(part.outbox_order, result.outbox_order);
    part.licenses_issued += result.licenses_issued;
    part.overages += result.overages;
    append(part.rejections, result.rejections);
  }

  void commit_batch() {
    auto applying = seconds_since(phase_started);
    times.apply += applying;
    times.apply_max = std::max(times.apply_max, applying);
    if (batch_failed) {
      fail_batch(make_error(service_errc::internal,
                            "an entity actor failed or did not answer"));
      return;
    }
    // A small batch commits in one transaction: a commit's fixed cost (round
    // trips, a WAL flush) outweighs what a second connection saves on it.
    if (batch_records < config.commit_split_records)
      join_parts();
    // Outbox rows in the order of the records that caused them (not the
    // order the actors answered in), so a re-run publishes the same order.
    for (auto& part : parts) {
      auto& outbox = part.rows.outbox;
      const auto& order = part.outbox_order;
      if (order.size() != outbox.size() || outbox.size() < 2)
        continue;
      std::vector<size_t> index(outbox.size());
      for (size_t i = 0; i < index.size(); ++i)
        index[i] = i;
      std::stable_sort(index.begin(), index.end(),
                       [&order](size_t x, size_t y) {
                         return order[x] < order[y];
                       });
      std::vector<storage::outbox_row> sorted;
      sorted.reserve(index.size());
      for (auto i : index)
        sorted.push_back(std::move(outbox[i]));
      outbox = std::move(sorted);
    }
    // Batches commit in the order they were applied: the previous one first.
    // If it failed, this one was applied on top of it and is gone with it.
    if (!settle())
      return;
    hand_to_commit_thread();
    in_flight = false;
    self->send(self, atoms::poll_atom_v);
  }

  /// Starts committing the batch's parts on their lanes, so the entity
  /// actors apply the next batch while PostgreSQL writes this one.
  void hand_to_commit_thread() {
    auto& c = committing.emplace();
    c.parts = std::move(parts);
    parts.clear();
    c.keys = std::move(batch_keys);
    c.has_catalog = batch_has_catalog;
    c.outcomes.resize(c.parts.size());
    for (size_t i = 0; i < c.parts.size(); ++i) {
      const auto* rows = &c.parts[i].rows;
      if (rows->empty())
        continue;
      auto* db = lanes[i]->store.get();
      auto wake_relay = rows->outbox.empty() ? caf::actor{} : relay;
      c.outcomes[i] = lanes[i]->thread.submit([db, rows, wake_relay] {
        commit_outcome out;
        auto started = steady_clock::now();
        out.result = db->commit(*rows);
        out.seconds = seconds_since(started);
        out.finished_unix_s = static_cast<double>(unix_ms()) / 1000.0;
        if (out.result && wake_relay)
          caf::anon_send(wake_relay, atoms::wake_atom_v);
        return out;
      });
    }
  }

  /// Waits for every part of the batch on the commit lanes and finishes it.
  /// False when a part failed: the parts that committed stay committed
  /// (their partitions are disjoint from the failed part's), everything
  /// applied since was thrown away, the consumers were rewound to the
  /// stored positions and the next cycle is scheduled.
  bool settle() {
    if (!committing)
      return true;
    auto wait_started = steady_clock::now();
    for (auto& outcome : committing->outcomes)
      if (outcome.valid())
        outcome.wait();
    times.commit_wait += seconds_since(wait_started);
    auto done = std::move(*committing);
    committing.reset();
    std::optional<caf::error> failure;
    failed_commit failed;
    for (size_t i = 0; i < done.parts.size(); ++i) {
      if (!done.outcomes[i].valid())
        continue;
      auto out = done.outcomes[i].get();
      const auto& part = done.parts[i];
      times.commit += out.seconds;
      times.commit_max = std::max(times.commit_max, out.seconds);
      times.rows += static_cast<long>(part.rows.row_count());
      if (out.result) {
        committed(part, out);
        ++failed.parts_committed;
        continue;
      }
      const auto& err = out.result.error();
      // A refused duplicate must turn the lookups on whatever else failed,
      // or the batch would be refused again and again.
      if (is(err, service_errc::already_applied))
        query_applied_until = steady_clock::now() + query_applied_period;
      // Fencing decides which leases are dropped: it goes first.
      if (!failure || is(err, service_errc::fenced))
        failure = err;
      failed.add(part.rows);
    }
    if (failure) {
      handle_failure(*failure, failed, in_flight);
      return false;
    }
    // Only a batch committed whole ends a run of failures: a lane that keeps
    // failing beside one that commits must still back off further each time.
    consecutive_failures = 0;
    if (done.has_catalog)
      refresh_catalog();
    return true;
  }

  void committed(const batch_part& done, const commit_outcome& out) {
    const auto& b = done.rows;
    status->postgres_ok = true;
    ++status->batches_committed;
    status->records_committed
      += static_cast<std::int64_t>(b.applied_events.size());
    status->licenses_issued += done.licenses_issued;
    status->overages_detected += done.overages;
    status->duplicates_skipped += done.duplicates_skipped;
    if (auto* m = metrics()) {
      m->batch(b.row_count(), out.seconds);
      for (auto t : done.event_times)
        m->latency(std::max(0.0, out.finished_unix_s - t));
      for (const auto& [topic, type] : done.types)
        m->consumed(topic, type);
      for (const auto& [type, reason] : done.rejections)
        m->rejected(context->topics.subscriptions, type, reason);
      for (const auto& code : done.dead_letter_codes)
        m->dead_letter(code);
    }
    for (const auto& p : b.positions) {
      note_stored(p);
      report_lag(p.tp);
    }
    main->commit_async(b.positions);
  }

  /// The batch being applied cannot be committed.
  void fail_batch(const caf::error& err) {
    // The batch before it may still land; if not, its failure covers both.
    if (!settle())
      return;
    failed_commit failed;
    for (const auto& part : parts)
      failed.add(part.rows);
    handle_failure(err, failed, false);
  }

  /// What of a batch was not committed.
  struct failed_commit {
    std::vector<storage::lease> leases;
    std::size_t partitions = 0;
    /// Parts of the batch on other lanes that did commit.
    std::size_t parts_committed = 0;

    void add(const storage::storage_batch& rows) {
      leases.insert(leases.end(), rows.leases.begin(), rows.leases.end());
      partitions += rows.positions.size();
    }
  };

  /// A batch, or some of its parts, was not committed; `next_discarded`: a
  /// batch applied on top of it meanwhile is thrown away with it.
  void handle_failure(const caf::error& err, const failed_commit& failed,
                      bool next_discarded) {
    // Not a failure of PostgreSQL: de-duplication at work (see `cycle`).
    bool already_applied = is(err, service_errc::already_applied);
    ++generation;
    if (!already_applied) {
      ++status->commit_failures;
      ++consecutive_failures;
    }
    in_flight = false;
    auto retry_in
      = milliseconds{std::min(5000, 100 << std::min(consecutive_failures, 6))};
    pending.abandon();
    // Entity state ran ahead of what is committed: throw it away.
    passivate_all();
    if (is(err, service_errc::fenced)) {
      ++status->fenced_commits;
      drop_taken_over(failed.leases, err);
    } else if (already_applied) {
      ++status->batches_already_applied;
      query_applied_until = steady_clock::now() + query_applied_period;
      log::info(
        "an upstream event in the batch was applied before; applying "
        "the batch again, with de-duplication queries for a while",
        {{"error", describe(err)},
         {"minutes", static_cast<long>(
                       duration_cast<minutes>(query_applied_period).count())},
         {"next_batch_discarded", next_discarded}});
    } else {
      status->postgres_ok = !is(err, service_errc::storage_unavailable);
      log::error(
        "batch not committed; re-reading from the stored positions",
        {{"error", describe(err)},
         {"partitions", static_cast<long>(failed.partitions)},
         {"parts_committed", static_cast<long>(failed.parts_committed)},
         {"next_batch_discarded", next_discarded},
         {"retry_in_ms", static_cast<long>(retry_in.count())}});
    }
    // Records read after the failed batch's were applied on the state just
    // thrown away (on every partition still owned): read them again.
    rewind();
    if (already_applied) {
      self->send(self, atoms::poll_atom_v);
      return;
    }
    self->delayed_send(self, retry_in, atoms::poll_atom_v);
  }

  /// A commit was fenced: drops the leases of `batch_leases` another owner
  /// took, with their partitions, unless this replica takes them back
  /// (`take_back`). The others are still this replica's (a batch covers
  /// every partition it read from); dropping them too would leave their
  /// records unread until the next rebalance. When PostgreSQL cannot say
  /// which were taken, none is dropped: the next commit is fenced again and
  /// asks again.
  void drop_taken_over(const std::vector<storage::lease>& batch_leases,
                       const caf::error& err) {
    auto held = store->held_leases(config.consumer_group, batch_leases);
    if (!held) {
      log::error("fenced, and cannot read which leases were taken over",
                 {{"error", describe(err)},
                  {"read_error", describe(held.error())}});
      return;
    }
    std::set<std::string> still_held(held->begin(), held->end());
    std::vector<storage::lease> taken;
    for (const auto& l : batch_leases)
      if (still_held.count(l.lease_key) == 0)
        taken.push_back(l);
    auto taken_back = take_back(taken);
    std::string lost_leases;
    std::string lost_partitions;
    std::vector<topic_partition> fenced;
    for (const auto& l : taken) {
      if (taken_back.count(l.lease_key) != 0)
        continue;
      leases.erase(l.lease_key);
      lost_leases += (lost_leases.empty() ? "" : ",") + l.lease_key;
      auto& of_lease = dropped[l.lease_key];
      for (auto it = owned.begin(); it != owned.end();) {
        if (it->second != l.lease_key) {
          ++it;
          continue;
        }
        lost_partitions += (lost_partitions.empty() ? "" : ",")
                           + it->first.topic + "/"
                           + std::to_string(it->first.partition);
        fenced.push_back(it->first);
        of_lease.push_back(it->first);
        forget_lag(it->first);
        it = owned.erase(it);
      }
    }
    if (!fenced.empty())
      log::error("fenced: another replica owns these partitions now; "
                 "dropping them",
                 {{"error", describe(err)},
                  {"leases", lost_leases},
                  {"partitions", lost_partitions},
                  {"leases_kept", static_cast<long>(still_held.size())}});
    // A copy of a fenced partition, sent later, could move the new
    // owner's copy back.
    main->forget_offset_copies(fenced);
    publish_leases();
  }

  /// Of the leases `taken` from this replica, takes back those whose
  /// partitions Kafka still assigns to it, and returns their keys. Kafka
  /// hands a partition to another member only after this one gave it up or
  /// was removed from the group, so a writer that took the lease while
  /// Kafka still assigns the partition here was no owner: a replica whose
  /// lease acquisition outlasted its group membership. Left alone, it would
  /// hold the partition unread until the next rebalance. Kafka confirms
  /// first that this consumer is still a member of the group's current
  /// generation (a commit of the stored positions); without that answer
  /// nothing is taken back, as this replica may be the one removed. Nothing
  /// is taken back inside a rebalance callback either.
  std::set<std::string> take_back(const std::vector<storage::lease>& taken) {
    std::map<std::string, std::vector<topic_partition>> partitions;
    for (const auto& l : taken)
      for (const auto& [tp, key] : owned)
        if (key == l.lease_key)
          partitions[l.lease_key].push_back(tp);
    return take_back_partitions(partitions);
  }

  std::set<topic_partition> kafka_assignment() {
    auto assignment = main->assignment();
    return {assignment.begin(), assignment.end()};
  }

  /// A lease's partitions are Kafka's to assign here: it assigns every one
  /// the main consumer reads (the delta partitions follow the command
  /// partitions and are assigned by the service itself).
  bool assigned_in(const std::vector<topic_partition>& of_lease,
                   const std::set<topic_partition>& in_kafka) const {
    bool any = false;
    for (const auto& tp : of_lease) {
      if (stage_of(tp.topic) == stage::deltas)
        continue;
      if (in_kafka.count(tp) == 0)
        return false;
      any = true;
    }
    return any;
  }

  /// Takes back the leases of `partitions` (lease key → its partitions)
  /// whose partitions Kafka assigns here, once Kafka confirms this
  /// replica's membership; returns the keys taken.
  std::set<std::string> take_back_partitions(
    const std::map<std::string, std::vector<topic_partition>>& partitions) {
    std::set<std::string> result;
    // Inside a rebalance Kafka refuses commits anyway, and waiting here for
    // its answer would hold the rebalance up; the rebalance settles who owns
    // what.
    if (partitions.empty() || in_rebalance)
      return result;
    auto in_kafka = kafka_assignment();
    std::vector<std::string> keys;
    std::vector<topic_partition> assigned_here;
    for (const auto& [key, of_lease] : partitions) {
      if (!assigned_in(of_lease, in_kafka))
        continue;
      keys.push_back(key);
      for (const auto& tp : of_lease)
        if (stage_of(tp.topic) != stage::deltas)
          assigned_here.push_back(tp);
    }
    if (keys.empty())
      return result;
    auto stored = store->load_positions(config.consumer_group, assigned_here);
    if (!stored) {
      log::error("cannot read the positions to take leases back with",
                 {{"error", describe(stored.error())}});
      return result;
    }
    // A partition nothing was committed for yet is read from its start:
    // offset 0 is its copy (a lag tool's until the first batch). Without
    // one, a lease whose partitions had no stored position was never taken
    // back, and its partitions never read again.
    std::vector<position> proof;
    for (const auto& tp : assigned_here) {
      auto found = stored->find(tp);
      proof.push_back({tp, found == stored->end() ? 0 : found->second});
    }
    if (auto confirmed = main->confirm_membership(proof, 10000); !confirmed) {
      log::warning("Kafka did not confirm this replica's group membership; "
                   "not taking the leases back",
                   {{"error", describe(confirmed.error())}});
      return result;
    }
    auto acquired = store->acquire_leases(config.consumer_group, keys,
                                          config.owner);
    if (!acquired) {
      log::error("cannot take the leases back",
                 {{"error", describe(acquired.error())}});
      return result;
    }
    std::string names;
    for (const auto& l : *acquired) {
      leases[l.lease_key] = l.epoch;
      result.insert(l.lease_key);
      names += (names.empty() ? "" : ",") + l.lease_key;
    }
    status->leases_taken_back += static_cast<std::int64_t>(acquired->size());
    log::warning("fenced by a writer outside the consumer group; Kafka still "
                 "assigns the partitions here, so took the leases back",
                 {{"leases", names}, {"owner", config.owner}});
    return result;
  }

  /// Leases dropped after a fenced commit while Kafka kept their partitions
  /// here (it did not confirm the membership then, e.g. during a
  /// rebalance): with the cooperative assignor a rebalance need not move
  /// them, and nothing else would read them again. Every 5 s they are
  /// forgotten once Kafka no longer assigns them, or taken back and read
  /// from their stored positions once Kafka confirms the membership.
  void retake_dropped() {
    if (dropped.empty() || in_rebalance)
      return;
    auto in_kafka = kafka_assignment();
    for (auto it = dropped.begin(); it != dropped.end();)
      it = assigned_in(it->second, in_kafka) ? std::next(it)
                                             : dropped.erase(it);
    auto taken = take_back_partitions(dropped);
    if (taken.empty())
      return;
    std::vector<topic_partition> tps;
    for (const auto& key : taken) {
      for (const auto& tp : dropped[key]) {
        owned[tp] = key;
        tps.push_back(tp);
      }
      dropped.erase(key);
    }
    drop_held(tps);
    // Until they are back at their stored positions, nothing read is kept
    // (the next cycle rewinds every owned partition again).
    if (!seek_to_stored(tps))
      rewind_pending = true;
    publish_leases();
  }

  /// Every 5 s while idle, the last offset copies go to Kafka again.
  void recopy_when_due() {
    auto now = steady_clock::now();
    if (now < next_recopy)
      return;
    next_recopy = now + seconds{5};
    main->commit_again();
  }

  /// Moves every owned partition back to its stored position.
  void rewind() {
    // Until the consumers are back at the stored positions, what they read
    // is dropped: a record read past a thrown-away batch would be committed
    // over.
    rewind_pending = true;
    held.clear();
    std::vector<topic_partition> tps;
    for (const auto& [tp, lease] : owned)
      tps.push_back(tp);
    if (tps.empty()) {
      rewind_pending = false;
      return;
    }
    rewind_pending = !seek_to_stored(tps);
  }

  /// With no position stored (a rewind to the log's start), the first
  /// record read stays the base: the consumer goes back to it.
  void note_stored(const position& p) {
    if (p.next_offset >= 0)
      lag_base[p.tp] = p.next_offset;
  }

  /// Consumer lag: the high watermark of the partition's last fetch minus
  /// its lag base. Not reported before both are known, nor from a
  /// watermark below the base (stale: consumer_lag).
  void report_lag(const topic_partition& tp) {
    auto* m = metrics();
    auto base = lag_base.find(tp);
    if (m == nullptr || owned.count(tp) == 0 || base == lag_base.end())
      return;
    const auto& consumer = tp.topic == context->topics.deltas ? deltas : main;
    auto lag = consumer_lag(consumer->high_watermark(tp), base->second);
    if (!lag)
      return;
    m->lag(tp.topic, tp.partition, *lag);
  }

  void report_all_lag() {
    for (const auto& [tp, lease] : owned)
      report_lag(tp);
  }

  /// A partition given up: summed across replicas, its series would count
  /// twice.
  void forget_lag(const topic_partition& tp) {
    lag_base.erase(tp);
    if (auto* m = metrics())
      m->lag_gone(tp.topic, tp.partition);
  }

  /// Moves the consumers of `tps` to their stored positions; false when a
  /// seek failed (or the positions could not be read).
  bool seek_to_stored(const std::vector<topic_partition>& tps) {
    auto stored = with_retry("load positions", [&] {
      return store->load_positions(config.consumer_group, tps);
    });
    if (!stored)
      return false;
    std::vector<position> main_positions;
    std::vector<position> delta_positions;
    for (const auto& tp : tps) {
      auto it = stored->find(tp);
      position p{tp, it == stored->end() ? -2 : it->second};
      note_stored(p);
      (tp.topic == context->topics.deltas ? delta_positions : main_positions)
        .push_back(p);
    }
    auto main_ok = main->seek(main_positions);
    if (!main_ok)
      log::error("seek failed; reading nothing until it succeeds",
                 {{"error", describe(main_ok.error())}});
    auto deltas_ok = deltas->seek(delta_positions);
    if (!deltas_ok)
      log::error("seek failed; reading nothing until it succeeds",
                 {{"error", describe(deltas_ok.error())}});
    return main_ok && deltas_ok;
  }

  void refresh_catalog() {
    auto version = store->catalog_version();
    if (!version)
      return;
    auto* cache = context->catalog.get();
    if (*version == cache->version())
      return;
    auto plans = store->load_plan_entitlements();
    if (!plans) {
      log::error("cannot load the catalog",
                 {{"error", describe(plans.error())}});
      return;
    }
    cache->replace(std::move(*plans), *version);
    log::info("catalog loaded",
              {{"version", static_cast<long long>(*version)}});
  }

  // -- housekeeping
  // ------------------------------------------------------------

  /// Readiness follows Kafka: a poll that returns nothing does not tell an
  /// idle topic from brokers that are gone, so a metadata round trip does.
  /// The same answer says whether a topic's partition count changed.
  void check_kafka() {
    const auto& t = context->topics;
    auto counts
      = main->partition_counts({t.membership, t.subscriptions, t.deltas}, 2000);
    bool reachable = static_cast<bool>(counts);
    note_metadata_answer(reachable);
    if (reachable != status->kafka_ok.load()) {
      status->kafka_ok = reachable;
      if (reachable)
        log::info("Kafka is reachable again");
      else
        log::error("Kafka is not reachable; not ready until it is",
                   {{"error", describe(counts.error())}});
    }
    if (!counts || !placement_stopped.empty())
      return;
    placement_stopped = kafka::partition_count_change(
      placement_topics(), partition_counts, *counts);
    if (!placement_stopped.empty())
      status->placement_ok = false;
  }

  /// Readiness follows PostgreSQL as well: an idle replica makes no other
  /// call that would notice it gone (its commits and lease loads do).
  void check_postgres() {
    auto answered = store->ping();
    bool reachable = static_cast<bool>(answered);
    // "Again" only after an outage this check reported, not at the first
    // check after start (the status starts as not reachable).
    if (!reachable && !postgres_reported_down) {
      log::error("PostgreSQL is not reachable; not ready until it is",
                 {{"error", describe(answered.error())}});
      postgres_reported_down = true;
    } else if (reachable && postgres_reported_down) {
      log::info("PostgreSQL is reachable again");
      postgres_reported_down = false;
    }
    status->postgres_ok = reachable;
    status->postgres_checked = true;
  }

  /// False when a commit failed on the way (the next cycle is scheduled).
  bool housekeeping() {
    auto now = steady_clock::now();
    if (now >= next_kafka_check) {
      check_kafka();
      check_postgres();
      retake_dropped();
      // Also while no batch commits (a commit refused and retried; while
      // PostgreSQL is away, with_retry reports): that is when the lag grows.
      report_all_lag();
      next_kafka_check = now + seconds{5};
    }
    if (now < next_catalog_check && now < next_passivation && now < next_sweep
        && now < next_purge)
      return true;
    // These read what is committed and passivate idle actors: the batch on
    // the commit thread lands first.
    if (!settle())
      return false;
    if (now >= next_catalog_check) {
      // LISTEN/NOTIFY is the fast path; this catches anything missed.
      refresh_catalog();
      next_catalog_check = now + seconds{5};
    }
    if (now >= next_passivation) {
      auto cutoff = now - config.idle_timeout;
      for (auto* registry : {&orgs, &subscriptions})
        for (auto it = registry->begin(); it != registry->end();) {
          if (it->second.last_used < cutoff) {
            self->send_exit(it->second.actor, caf::exit_reason::user_shutdown);
            it = registry->erase(it);
          } else {
            ++it;
          }
        }
      update_active_gauges();
      next_passivation = now + seconds{5};
    }
    if (now >= next_sweep) {
      sweep_months();
      next_sweep = now
                   + std::min<steady_clock::duration>(
                     config.month_close_grace / 4, seconds{60});
    }
    if (now >= next_purge) {
      auto cutoff = wall_now().micros()
                    - duration_cast<microseconds>(config.dedup_window).count();
      if (auto purged
          = store->purge_applied_before(domain::timestamp::from_micros(cutoff));
          purged && *purged > 0)
        log::info("forgot applied events past the de-duplication window",
                  {{"events", static_cast<long long>(*purged)}});
      next_purge = now + minutes{10};
    }
    return true;
  }

  void sweep_months() {
    std::vector<std::int32_t> partitions;
    for (const auto& [tp, lease] : owned)
      if (tp.topic == context->topics.subscriptions)
        partitions.push_back(tp.partition);
    if (partitions.empty())
      return;
    auto half_grace = duration_cast<microseconds>(config.month_close_grace) / 2;
    auto cutoff = domain::timestamp::from_micros(wall_now().micros()
                                                 - half_grace.count());
    auto due = store->subscriptions_due(partitions, cutoff, cutoff);
    if (!due)
      return;
    for (auto& id : *due)
      due_closes.insert(std::move(id));
  }

  // -- shutdown
  // ----------------------------------------------------------------

  void finish_drain() {
    if (drained)
      return;
    if (!settle())
      return; // the scheduled cycle drains again from the stored positions
    drained = true;
    status->consuming = false;
    // Published while the leases are still held: leaving the group revokes
    // every partition, and the relay publishes for held leases only (it
    // used to be asked after that, and drained nothing).
    log::info("draining: publishing pending events");
    self->request(relay, seconds{30}, atoms::drain_atom_v)
      .then([this](caf::ok_atom) { leave_group(); },
            [this](caf::error& err) {
              log::error("relay did not drain", {{"error", describe(err)}});
              leave_group();
            });
  }

  void leave_group() {
    log::info("draining: leaving the consumer group");
    main->close(); // runs the revocation callbacks
    passivate_all();
    stop();
  }

  void stop() {
    // A normal exit does not travel along links: stop the relay explicitly.
    self->send_exit(relay, caf::exit_reason::user_shutdown);
    drain_promise.deliver(caf::ok_atom_v);
    self->quit();
  }
};

std::vector<position>
listener::on_assigned(const std::vector<topic_partition>& partitions) {
  ++st->rebalances;
  st->in_rebalance = true;
  auto positions = st->assigned(partitions);
  st->in_rebalance = false;
  return positions;
}

void listener::on_revoked(const std::vector<topic_partition>& partitions,
                          bool lost) {
  ++st->rebalances;
  st->in_rebalance = true;
  st->revoked(partitions, lost);
  st->in_rebalance = false;
}

caf::behavior coordinator(caf::stateful_actor<coordinator_state>* self,
                          pipeline_config config,
                          std::shared_ptr<const entity_context> context,
                          std::shared_ptr<service_status> status) {
  auto& st = self->state;
  st.self = self;
  st.config = std::move(config);
  st.context = std::move(context);
  st.status = std::move(status);
  st.rebalance.st = &st;
  storage::pg_store_options store_options;
  store_options.on_lease_holder_ended
    = [](const storage::ended_lease_holder& ended) {
        log::warning("ended a stalled session holding leases being taken over",
                     {{"leases", ended.lease_keys},
                      {"previous_owner", ended.owner},
                      {"pid", static_cast<long long>(ended.pid)},
                      {"transaction_seconds", ended.transaction_seconds}});
      };
  st.store = std::make_unique<storage::pg_store>(st.config.database_url,
                                                 std::move(store_options));
  for (std::size_t i = 0;
       i < std::max<std::size_t>(1, st.config.commit_connections); ++i) {
    auto lane = std::make_unique<coordinator_state::commit_lane>();
    lane->store = std::make_unique<storage::pg_store>(st.config.database_url);
    st.lanes.push_back(std::move(lane));
  }
  st.parts.resize(st.lanes.size());
  st.decoder = std::make_unique<messages::decoder>();
  const auto& topics = st.context->topics;
  auto main = kafka::consumer::group_member(
    st.config.kafka, st.config.consumer_group, &st.rebalance);
  auto deltas = kafka::consumer::assign_only(st.config.kafka);
  if (!main || !deltas) {
    log::error("cannot create the Kafka consumers",
               {{"error", describe(!main ? main.error() : deltas.error())}});
    self->quit(make_error(service_errc::kafka_failure, "consumers"));
    return {};
  }
  st.main = std::move(*main);
  st.deltas = std::move(*deltas);
  if (auto ok = st.main->subscribe(
        {topics.membership, topics.subscriptions, topics.catalog});
      !ok) {
    log::error("cannot subscribe", {{"error", describe(ok.error())}});
    self->quit(ok.error());
    return {};
  }
  // Before the metadata wait, which takes its whole 10 s when Kafka is down.
  st.check_postgres();
  st.read_partition_counts(10000);
  st.relay = spawn_relay(self->system(), st.config.database_url,
                         st.config.kafka, st.status);
  self->link_to(st.relay);
  st.refresh_catalog();
  self->send(self, atoms::poll_atom_v);
  return {
    [self](atoms::poll_atom) { self->state.cycle(); },
    [self](atoms::deadline_atom, std::uint64_t seq) {
      self->state.dispatch_deadline(seq);
    },
    [self](atoms::drain_atom) {
      auto& st = self->state;
      st.draining = true;
      st.drain_promise = self->make_response_promise();
      if (!st.in_flight)
        st.finish_drain();
      return st.drain_promise;
    },
  };
}

} // namespace

caf::actor spawn_pipeline(caf::actor_system& system, pipeline_config config,
                          std::shared_ptr<const entity_context> context,
                          std::shared_ptr<service_status> status) {
  return system.spawn<caf::detached>(coordinator, std::move(config),
                                     std::move(context), std::move(status));
}

} // namespace seatledger::actors
