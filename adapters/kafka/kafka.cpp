#include "adapters/kafka/kafka.hpp"

#include <cstring>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <mutex>
#include <optional>
#include <poll.h>
#include <unistd.h>

#include "adapters/kafka/offset_copies.hpp"
#include "log/log.hpp"
#include "messages/service_error.hpp"

namespace seatledger::kafka {

namespace {

caf::error kafka_error(const std::string& what) {
  return make_error(service_errc::kafka_failure, what);
}

struct conf_deleter {
  void operator()(rd_kafka_conf_t* conf) const {
    rd_kafka_conf_destroy(conf);
  }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

/// rd_kafka_new for every client: it takes `conf` only when it creates the
/// client, so `conf` is released then and frees it otherwise (passing it
/// released leaked it at every refusal). When librdkafka refused the
/// configuration (the properties passed through, e.g. SASL without
/// sasl.username) that is invalid configuration; anything else (no thread,
/// no memory) is not.
caf::expected<rd_kafka_t*> new_client(rd_kafka_type_t type, conf_ptr& conf,
                                      const char* kind) {
  char errstr[512];
  auto* rk = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    auto what = std::string{"librdkafka refuses to create a "} + kind + ": "
                + errstr;
    if (rd_kafka_last_error() == RD_KAFKA_RESP_ERR__INVALID_ARG)
      return make_error(service_errc::config_invalid, std::move(what));
    return kafka_error(what);
  }
  conf.release();
  return rk;
}

struct list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;

caf::expected<conf_ptr>
make_conf(const client_config& config,
          const std::map<std::string, std::string>& defaults) {
  conf_ptr conf{rd_kafka_conf_new()};
  char errstr[512];
  auto set = [&](const std::string& key,
                 const std::string& value) -> caf::expected<void> {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr))
        != RD_KAFKA_CONF_OK)
      return make_error(service_errc::config_invalid,
                        "kafka property " + key + ": " + errstr);
    return caf::unit;
  };
  for (const auto& [key, value] : defaults)
    if (auto ok = set(key, value); !ok)
      return ok.error();
  // Operator-supplied properties win over the defaults (security protocol,
  // SASL, TLS, timeouts …).
  for (const auto& [key, value] : config.properties)
    if (auto ok = set(key, value); !ok)
      return ok.error();
  if (!config.bootstrap_servers.empty())
    if (auto ok = set("bootstrap.servers", config.bootstrap_servers); !ok)
      return ok.error();
  return conf;
}

list_ptr to_list(const std::vector<topic_partition>& tps) {
  list_ptr list{
    rd_kafka_topic_partition_list_new(static_cast<int>(tps.size()))};
  for (const auto& tp : tps)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(),
                                      tp.partition);
  return list;
}

list_ptr to_list(const std::vector<position>& positions) {
  list_ptr list{
    rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()))};
  for (const auto& p : positions)
    rd_kafka_topic_partition_list_add(list.get(), p.tp.topic.c_str(),
                                      p.tp.partition)
      ->offset
      = p.next_offset;
  return list;
}

std::vector<topic_partition>
from_list(const rd_kafka_topic_partition_list_t* list) {
  std::vector<topic_partition> result;
  for (int i = 0; i < list->cnt; ++i)
    result.push_back({list->elems[i].topic, list->elems[i].partition});
  return result;
}

void log_callback(const rd_kafka_t*, int level, const char* fac,
                  const char* buf) {
  auto lvl = log_level_of(level, fac, buf);
  if (lvl >= log::current_level())
    log::write(lvl, "kafka", {{"facility", fac}, {"detail", buf}});
}

struct client_deleter {
  void operator()(rd_kafka_t* rk) const noexcept {
    rd_kafka_destroy(rk);
  }
};
using client_ptr = std::unique_ptr<rd_kafka_t, client_deleter>;

/// A client for questions (metadata, watermarks, committed offsets).
caf::expected<client_ptr>
question_client(const client_config& config, rd_kafka_type_t type,
                const std::map<std::string, std::string>& defaults) {
  auto conf = make_conf(config, defaults);
  if (!conf)
    return conf.error();
  rd_kafka_conf_set_log_cb(conf->get(), log_callback);
  auto rk = new_client(type, *conf, "client");
  if (!rk)
    return rk.error();
  return client_ptr{*rk};
}

/// Partition counts of the named topics that exist, from `rk`'s metadata.
caf::expected<std::map<std::string, std::int32_t>>
partition_counts_of(rd_kafka_t* rk, const std::vector<std::string>& topics,
                    int timeout_ms, bool all_topics = true) {
  const rd_kafka_metadata_t* md = nullptr;
  if (auto err = rd_kafka_metadata(rk, all_topics ? 1 : 0, nullptr, &md,
                                   timeout_ms)) {
    if (md)
      rd_kafka_metadata_destroy(md);
    return kafka_error(std::string{"metadata: "} + rd_kafka_err2str(err));
  }
  std::map<std::string, std::int32_t> result;
  for (int i = 0; i < md->topic_cnt; ++i)
    for (const auto& t : topics)
      if (t == md->topics[i].topic && !md->topics[i].err)
        result[t] = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  return result;
}

} // namespace

log::level log_level_of(int syslog_level, std::string_view facility,
                        std::string_view message) {
  if (syslog_level <= 3)
    return log::level::error;
  if (syslog_level > 4)
    return log::level::debug;
  if (facility == "COMMITFAIL") {
    // What the group coordinator answers while members join or leave.
    for (std::string_view membership_change :
         {"Group rebalance in progress", "generation id is not valid",
          "Unknown member"})
      if (message.find(membership_change) != std::string_view::npos)
        return log::level::debug;
  }
  return log::level::warning;
}

rebalance_listener::~rebalance_listener() = default;

// -- consumer -----------------------------------------------------------------

struct consumer::impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  int pipe_fds[2] = {-1, -1};
  rebalance_listener* listener = nullptr;
  bool group = false;
  bool closed = false;
  std::vector<gap> gaps;
  /// Group members only.
  std::optional<offset_copies> copies;
  /// Handles that make topics known to this client (partition_counts).
  std::map<std::string, rd_kafka_topic_t*> known_topics;

  ~impl() {
    if (rk) {
      if (group && !closed)
        rd_kafka_consumer_close(rk);
      if (queue)
        rd_kafka_queue_destroy(queue);
      for (auto& [name, handle] : known_topics)
        rd_kafka_topic_destroy(handle);
      rd_kafka_destroy(rk);
    }
    for (auto fd : pipe_fds)
      if (fd >= 0)
        ::close(fd);
  }

  static void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* partitions,
                        void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    self->copies->on_rebalance();
    bool cooperative
      = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      auto tps = from_list(partitions);
      std::vector<position> starts;
      if (self->listener)
        starts = self->listener->on_assigned(tps);
      for (int i = 0; i < partitions->cnt; ++i) {
        auto& elem = partitions->elems[i];
        elem.offset = RD_KAFKA_OFFSET_BEGINNING;
        for (const auto& p : starts)
          if (p.tp.topic == elem.topic && p.tp.partition == elem.partition)
            elem.offset = p.next_offset;
      }
      if (cooperative) {
        if (auto* e = rd_kafka_incremental_assign(rk, partitions)) {
          log::error("kafka incremental assign failed",
                     {{"error", rd_kafka_error_string(e)}});
          rd_kafka_error_destroy(e);
        }
      } else {
        rd_kafka_assign(rk, partitions);
      }
      return;
    }
    // Revoked, or lost (the session timed out, or a request met a stale
    // generation): either way nothing more may be written for them.
    // The listener first commits what is in flight (its offset copy is held:
    // the group is rebalancing); then the copies of these partitions go.
    auto revoked = from_list(partitions);
    if (self->listener)
      self->listener->on_revoked(revoked, rd_kafka_assignment_lost(rk) != 0);
    self->copies->forget(revoked);
    if (cooperative) {
      if (auto* e = rd_kafka_incremental_unassign(rk, partitions)) {
        log::error("kafka incremental unassign failed",
                   {{"error", rd_kafka_error_string(e)}});
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
    (void)err;
  }

  caf::expected<void> setup_wakeup() {
    if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0)
      return kafka_error("pipe2 failed");
    queue = rd_kafka_queue_get_consumer(rk);
    if (!queue)
      queue = rd_kafka_queue_get_main(rk);
    static const char wake = 'w';
    rd_kafka_queue_io_event_enable(queue, pipe_fds[1], &wake, 1);
    return caf::unit;
  }

  void drain_wake_pipe() {
    char buf[64];
    while (::read(pipe_fds[0], buf, sizeof(buf)) > 0) {
    }
  }
};

consumer::consumer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

consumer::~consumer() = default;

namespace {

/// A group member's librdkafka log: join state changes reach its offset
/// copies at once (this runs on librdkafka's threads).
void group_log_callback(const rd_kafka_t* rk, int level, const char* fac,
                        const char* buf) {
  if (auto state = join_state_entered(fac, buf))
    if (auto* member = static_cast<consumer::impl*>(rd_kafka_opaque(rk));
        member && member->copies)
      member->copies->on_join_state(*state);
  log_callback(rk, level, fac, buf);
}

} // namespace

caf::expected<std::unique_ptr<consumer>>
consumer::group_member(const client_config& config, const std::string& group_id,
                       rebalance_listener* listener) {
  auto conf = make_conf(
    config, {{"group.id", group_id},
             {"partition.assignment.strategy", "cooperative-sticky"},
             {"enable.auto.commit", "false"},
             {"enable.auto.offset.store", "false"},
             // A stored position Kafka no longer has is an
             // incident we report, never a silent reset.
             {"auto.offset.reset", "error"},
             {"session.timeout.ms", "10000"},
             {"heartbeat.interval.ms", "1000"},
             {"fetch.wait.max.ms", "10"},
             {"fetch.error.backoff.ms", "20"},
             // The join state changes, to hold offset copies while the
             // group rebalances (offset_copies.hpp); the other lines of
             // this context are dropped below log level debug. librdkafka
             // adds an operator's `debug` contexts to this one.
             {"debug", "cgrp"}});
  if (!conf)
    return conf.error();
  auto state = std::make_unique<impl>();
  state->listener = listener;
  state->group = true;
  state->copies.emplace();
  rd_kafka_conf_set_opaque(conf->get(), state.get());
  rd_kafka_conf_set_rebalance_cb(conf->get(), &impl::rebalance);
  rd_kafka_conf_set_log_cb(conf->get(), group_log_callback);
  auto rk = new_client(RD_KAFKA_CONSUMER, *conf, "consumer");
  if (!rk)
    return rk.error();
  state->rk = *rk;
  rd_kafka_poll_set_consumer(state->rk);
  if (auto ok = state->setup_wakeup(); !ok)
    return ok.error();
  return std::unique_ptr<consumer>(new consumer(std::move(state)));
}

caf::expected<std::unique_ptr<consumer>>
consumer::assign_only(const client_config& config) {
  auto conf = make_conf(config, {{"enable.auto.commit", "false"},
                                 {"enable.auto.offset.store", "false"},
                                 {"auto.offset.reset", "error"},
                                 {"fetch.wait.max.ms", "10"},
                                 {"fetch.error.backoff.ms", "20"},
                                 {"group.id", "seatledger-assign-only"}});
  if (!conf)
    return conf.error();
  auto state = std::make_unique<impl>();
  rd_kafka_conf_set_log_cb(conf->get(), log_callback);
  auto rk = new_client(RD_KAFKA_CONSUMER, *conf, "consumer");
  if (!rk)
    return rk.error();
  state->rk = *rk;
  rd_kafka_poll_set_consumer(state->rk);
  if (auto ok = state->setup_wakeup(); !ok)
    return ok.error();
  return std::unique_ptr<consumer>(new consumer(std::move(state)));
}

caf::expected<void>
consumer::subscribe(const std::vector<std::string>& topics) {
  list_ptr list{
    rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()))};
  for (const auto& t : topics)
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(),
                                      RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(impl_->rk, list.get()))
    return kafka_error(std::string{"subscribe: "} + rd_kafka_err2str(err));
  return caf::unit;
}

caf::expected<void> consumer::assign(const std::vector<position>& positions) {
  if (positions.empty())
    return caf::unit;
  auto list = to_list(positions);
  for (int i = 0; i < list->cnt; ++i)
    if (list->elems[i].offset < 0)
      list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  if (auto* e = rd_kafka_incremental_assign(impl_->rk, list.get())) {
    std::string what = rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return kafka_error("assign: " + what);
  }
  return caf::unit;
}

caf::expected<void>
consumer::unassign(const std::vector<topic_partition>& partitions) {
  if (partitions.empty())
    return caf::unit;
  auto list = to_list(partitions);
  if (auto* e = rd_kafka_incremental_unassign(impl_->rk, list.get())) {
    std::string what = rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return kafka_error("unassign: " + what);
  }
  return caf::unit;
}

caf::expected<void> consumer::seek(const std::vector<position>& positions) {
  if (positions.empty())
    return caf::unit;
  auto list = to_list(positions);
  for (int i = 0; i < list->cnt; ++i)
    if (list->elems[i].offset < 0)
      list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  if (auto* e = rd_kafka_seek_partitions(impl_->rk, list.get(), 5000)) {
    std::string what = rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return kafka_error("seek: " + what);
  }
  for (int i = 0; i < list->cnt; ++i)
    if (list->elems[i].err)
      return kafka_error(std::string{"seek "} + list->elems[i].topic + ": "
                         + rd_kafka_err2str(list->elems[i].err));
  return caf::unit;
}

std::vector<record> consumer::poll(std::size_t max, int timeout_ms) {
  std::vector<record> result;
  impl_->drain_wake_pipe();
  auto wait = timeout_ms;
  while (result.size() < max) {
    auto* msg = rd_kafka_consumer_poll(impl_->rk, wait);
    wait = 0;
    if (!msg)
      break;
    if (msg->err) {
      if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET
          || msg->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        topic_partition tp{msg->rkt ? rd_kafka_topic_name(msg->rkt) : "",
                           msg->partition};
        // Where reading resumes, so the log can say what was skipped (one
        // round trip, only when retention has overtaken a position).
        std::int64_t low = -1;
        std::int64_t high = -1;
        if (rd_kafka_query_watermark_offsets(impl_->rk, tp.topic.c_str(),
                                             tp.partition, &low, &high, 2000)
            != RD_KAFKA_RESP_ERR_NO_ERROR)
          low = -1;
        impl_->gaps.push_back({tp, msg->offset, low});
        // Resume from the earliest record still there. librdkafka refuses
        // to seek a partition in this state ("Erroneous state"), so it is
        // assigned afresh.
        auto resumed = unassign({tp});
        if (resumed)
          resumed = assign({{tp, RD_KAFKA_OFFSET_BEGINNING}});
        if (!resumed)
          log::error("cannot resume a partition after a gap",
                     {{"topic", tp.topic},
                      {"partition", tp.partition},
                      {"error", to_string(resumed.error())}});
      } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::warning("kafka consumer error",
                     {{"error", rd_kafka_message_errstr(msg)}});
      }
      rd_kafka_message_destroy(msg);
      continue;
    }
    record r;
    r.topic = rd_kafka_topic_name(msg->rkt);
    r.partition = msg->partition;
    r.offset = msg->offset;
    if (msg->key)
      r.key.assign(static_cast<const char*>(msg->key), msg->key_len);
    else
      r.null_key = true;
    if (msg->payload)
      r.value.assign(static_cast<const char*>(msg->payload), msg->len);
    else
      r.null_value = true;
    rd_kafka_timestamp_type_t ts_type;
    auto ts = rd_kafka_message_timestamp(msg, &ts_type);
    r.timestamp_ms = ts > 0 ? ts : 0;
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR
        && headers) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(headers, i, &name, &value, &size)
           == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        if (value)
          r.headers.emplace_back(
            name, std::string(static_cast<const char*>(value), size));
        else
          r.headers.emplace_back(name, std::nullopt);
      }
    }
    result.push_back(std::move(r));
    rd_kafka_message_destroy(msg);
  }
  return result;
}

int consumer::wake_fd() const {
  return impl_->pipe_fds[0];
}

void consumer::commit_async(const std::vector<position>& positions) {
  if (!impl_->group)
    return;
  auto now = impl_->copies->offer(positions);
  if (now.empty())
    return;
  auto list = to_list(now);
  rd_kafka_commit(impl_->rk, list.get(), 1);
}

void consumer::commit_again() {
  if (!impl_->group)
    return;
  auto again = impl_->copies->offer_again();
  if (again.empty())
    return;
  auto list = to_list(again);
  rd_kafka_commit(impl_->rk, list.get(), 1);
}

void consumer::forget_offset_copies(
  const std::vector<topic_partition>& partitions) {
  if (impl_->copies)
    impl_->copies->forget(partitions);
}

caf::expected<void>
consumer::confirm_membership(const std::vector<position>& positions,
                             int timeout_ms) {
  if (!impl_->group)
    return kafka_error("not a group member");
  if (positions.empty())
    return kafka_error("no offsets to commit");
  auto list = to_list(positions);
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue{
    rd_kafka_queue_new(impl_->rk), rd_kafka_queue_destroy};
  // A queue of our own, so that the answer can be waited for with a timeout
  // (rd_kafka_commit waits without one while no coordinator is known).
  if (auto err = rd_kafka_commit_queue(impl_->rk, list.get(), queue.get(),
                                       nullptr, nullptr))
    return kafka_error(std::string{"commit: "} + rd_kafka_err2str(err));
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> event{
    rd_kafka_queue_poll(queue.get(), timeout_ms), rd_kafka_event_destroy};
  if (!event)
    return kafka_error("commit: no answer within " + std::to_string(timeout_ms)
                       + " ms");
  if (rd_kafka_event_type(event.get()) != RD_KAFKA_EVENT_OFFSET_COMMIT)
    return kafka_error(std::string{"commit: unexpected answer "}
                       + rd_kafka_event_name(event.get()));
  if (auto err = rd_kafka_event_error(event.get()))
    return kafka_error(std::string{"commit: "} + rd_kafka_err2str(err));
  if (const auto* committed = rd_kafka_event_topic_partition_list(event.get()))
    for (int i = 0; i < committed->cnt; ++i)
      if (auto err = committed->elems[i].err)
        return kafka_error(std::string{"commit of "} + committed->elems[i].topic
                           + "/" + std::to_string(committed->elems[i].partition)
                           + ": " + rd_kafka_err2str(err));
  return {};
}

void consumer::close() {
  if (impl_->group && !impl_->closed) {
    rd_kafka_consumer_close(impl_->rk);
    impl_->closed = true;
  }
}

std::vector<consumer::gap> consumer::take_gaps() {
  std::vector<gap> result;
  result.swap(impl_->gaps);
  return result;
}

std::int64_t consumer::high_watermark(const topic_partition& tp) const {
  std::int64_t low = -1;
  std::int64_t high = -1;
  if (rd_kafka_get_watermark_offsets(impl_->rk, tp.topic.c_str(), tp.partition,
                                     &low, &high)
      != RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return high;
}

std::vector<topic_partition> consumer::assignment() const {
  rd_kafka_topic_partition_list_t* list = nullptr;
  std::vector<topic_partition> result;
  if (rd_kafka_assignment(impl_->rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR
      && list) {
    result = from_list(list);
    rd_kafka_topic_partition_list_destroy(list);
  }
  return result;
}

caf::expected<partition_count_map>
consumer::partition_counts(const std::vector<std::string>& topics,
                           int timeout_ms) {
  // A topic with a handle is known to this client, so one request for the
  // known topics answers for all of them, not for the whole cluster.
  for (const auto& topic : topics)
    if (impl_->known_topics.count(topic) == 0)
      if (auto* handle = rd_kafka_topic_new(impl_->rk, topic.c_str(), nullptr))
        impl_->known_topics.emplace(topic, handle);
  return partition_counts_of(impl_->rk, topics, timeout_ms, false);
}

// -- producer -----------------------------------------------------------------

// Errors that say the record itself can never be written as it is.
static delivery_status delivery_status_of(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return delivery_status::delivered;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD: return delivery_status::refused;
    default: return delivery_status::failed;
  }
}

struct producer::impl {
  rd_kafka_t* rk = nullptr;
  /// What `rk` was made from, for the client that replaces it after a
  /// fatal error.
  conf_ptr recipe;

  using callback = std::function<void(delivery_status, const std::string&)>;

  ~impl() {
    if (rk) {
      rd_kafka_flush(rk, 5000);
      rd_kafka_destroy(rk);
    }
  }

  static void delivered(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
    auto* done = static_cast<callback*>(msg->_private);
    if (!done)
      return;
    (*done)(delivery_status_of(msg->err),
            msg->err ? rd_kafka_err2str(msg->err) : "");
    delete done;
  }
};

producer::producer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

producer::~producer() = default;

caf::expected<std::unique_ptr<producer>>
producer::make(const client_config& config,
               const std::map<std::string, std::string>& overrides) {
  auto effective = config;
  for (const auto& [key, value] : overrides)
    effective.properties[key] = value;
  auto conf = make_conf(effective,
                        {{"enable.idempotence", "true"},
                         {"acks", "all"},
                         {"partitioner", "murmur2_random"},
                         {"linger.ms", "2"},
                         {"batch.num.messages", "10000"},
                         {"queue.buffering.max.messages", "1000000"},
                         {"message.timeout.ms", "300000"},
                         // Above Kafka's default 1 MiB record limit
                         // (librdkafka's own is below it): the
                         // broker decides what fits, and a dead
                         // letter is as large as the record it copies.
                         {"message.max.bytes", "4194304"}});
  if (!conf)
    return conf.error();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &impl::delivered);
  rd_kafka_conf_set_log_cb(conf->get(), log_callback);
  auto state = std::make_unique<impl>();
  state->recipe.reset(rd_kafka_conf_dup(conf->get()));
  auto rk = new_client(RD_KAFKA_PRODUCER, *conf, "producer");
  if (!rk)
    return rk.error();
  state->rk = *rk;
  return std::unique_ptr<producer>(new producer(std::move(state)));
}

std::optional<std::string> producer::replace_if_fatal() {
  char reason[512];
  auto err = rd_kafka_fatal_error(impl_->rk, reason, sizeof(reason));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  auto what = std::string{rd_kafka_err2name(err)} + ": " + reason;
  conf_ptr conf{rd_kafka_conf_dup(impl_->recipe.get())};
  auto rk = new_client(RD_KAFKA_PRODUCER, conf, "producer");
  if (!rk) {
    log::error("cannot replace a producer after its fatal error",
               {{"fatal_error", what}, {"error", describe(rk.error())}});
    return std::nullopt;
  }
  // rd_kafka_destroy runs no delivery report: what the old client still
  // holds is purged and reported (as failed) first, so no report's
  // callback is left behind.
  rd_kafka_purge(impl_->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(impl_->rk, 0);
  rd_kafka_destroy(impl_->rk);
  impl_->rk = *rk;
  return what;
}

caf::expected<void> producer::produce(
  const std::string& topic, std::optional<std::string_view> key,
  std::optional<std::string_view> value, const record_headers& headers,
  std::function<void(delivery_status, const std::string&)> done) {
  // librdkafka writes a null pointer as Kafka's null (length -1) and any
  // other pointer, even with length 0, as bytes; an empty view's data() may
  // be either, so the pointer is chosen here.
  static constexpr char no_bytes[] = "";
  auto bytes_of = [](const std::optional<std::string_view>& x) {
    return x ? const_cast<char*>(x->data() ? x->data() : no_bytes) : nullptr;
  };
  auto* key_bytes = bytes_of(key);
  auto* value_bytes = bytes_of(value);
  auto key_size = key ? key->size() : 0;
  auto value_size = value ? value->size() : 0;
  auto* hdrs = rd_kafka_headers_new(headers.size());
  // A std::string's data() is never null, so only a null value is written
  // as Kafka's null.
  for (const auto& [name, v] : headers)
    rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()),
                        v ? v->data() : nullptr,
                        v ? static_cast<ssize_t>(v->size()) : 0);
  auto* cb = new impl::callback(std::move(done));
  for (;;) {
    auto err = rd_kafka_producev(impl_->rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                                 RD_KAFKA_V_KEY(key_bytes, key_size),
                                 RD_KAFKA_V_VALUE(value_bytes, value_size),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_OPAQUE(cb), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      return caf::unit; // the headers now belong to librdkafka
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(impl_->rk, 50);
      continue;
    }
    rd_kafka_headers_destroy(hdrs);
    std::unique_ptr<impl::callback> report{cb};
    if (delivery_status_of(err) == delivery_status::refused) {
      if (*report)
        (*report)(delivery_status::refused,
                  std::string{"produce to "} + topic + ": "
                    + rd_kafka_err2str(err) + " (" + std::to_string(value_size)
                    + " bytes)");
      return caf::unit;
    }
    return kafka_error(std::string{"produce to "} + topic + ": "
                       + rd_kafka_err2str(err));
  }
}

int producer::poll(int timeout_ms) {
  return rd_kafka_poll(impl_->rk, timeout_ms);
}

bool producer::flush(int timeout_ms) {
  return rd_kafka_flush(impl_->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int producer::in_flight() const {
  return rd_kafka_outq_len(impl_->rk);
}

caf::expected<std::map<std::string, std::int32_t>>
producer::partition_counts(const std::vector<std::string>& topics,
                           int timeout_ms) {
  return partition_counts_of(impl_->rk, topics, timeout_ms, true);
}

// -- mock cluster -------------------------------------------------------------

struct mock_cluster::impl {
  rd_kafka_t* host = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int brokers = 0;

  ~impl() {
    if (cluster)
      rd_kafka_mock_cluster_destroy(cluster);
    if (host)
      rd_kafka_destroy(host);
  }
};

mock_cluster::mock_cluster(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

mock_cluster::~mock_cluster() = default;

caf::expected<std::unique_ptr<mock_cluster>>
mock_cluster::start(int brokers, const std::vector<std::string>& topics,
                    int partitions) {
  auto state = std::make_unique<impl>();
  conf_ptr conf{rd_kafka_conf_new()};
  rd_kafka_conf_set_log_cb(conf.get(), log_callback);
  // The mock cluster needs a client instance to run its broker threads.
  auto host = new_client(RD_KAFKA_PRODUCER, conf, "mock cluster host");
  if (!host)
    return host.error();
  state->host = *host;
  state->cluster = rd_kafka_mock_cluster_new(state->host, brokers);
  if (!state->cluster)
    return kafka_error("cannot create the mock cluster");
  state->brokers = brokers;
  auto replication = std::min(brokers, 3);
  for (const auto& topic : topics)
    if (auto err = rd_kafka_mock_topic_create(state->cluster, topic.c_str(),
                                              partitions, replication))
      return kafka_error("cannot create topic " + topic + ": "
                         + rd_kafka_err2str(err));
  return std::unique_ptr<mock_cluster>(new mock_cluster(std::move(state)));
}

std::string mock_cluster::bootstrap_servers() const {
  return rd_kafka_mock_cluster_bootstraps(impl_->cluster);
}

void mock_cluster::set_brokers_down(bool down) {
  // The mock numbers its brokers from 1.
  for (int id = 1; id <= impl_->brokers; ++id)
    if (down)
      rd_kafka_mock_broker_set_down(impl_->cluster, id);
    else
      rd_kafka_mock_broker_set_up(impl_->cluster, id);
}

caf::expected<void> mock_cluster::create_topic(const std::string& topic,
                                               int partitions) {
  if (auto err = rd_kafka_mock_topic_create(
        impl_->cluster, topic.c_str(), partitions, std::min(impl_->brokers, 3)))
    return kafka_error("cannot create topic " + topic + ": "
                       + rd_kafka_err2str(err));
  return {};
}

namespace {

constexpr std::int16_t produce_api = 0;       // Kafka's Produce
constexpr std::int16_t offset_commit_api = 8; // Kafka's OffsetCommit

/// The next `count` requests of `api`, from any client, fail with `error`.
void fail_requests(rd_kafka_mock_cluster_t* cluster, std::int16_t api,
                   rd_kafka_resp_err_t error, int count) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), error);
  rd_kafka_mock_push_request_errors_array(cluster, api, errors.size(),
                                          errors.data());
}

} // namespace

void mock_cluster::refuse_offset_commits(int count) {
  fail_requests(impl_->cluster, offset_commit_api,
                RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, count);
}

void mock_cluster::desynchronize_next_produce() {
  fail_requests(impl_->cluster, produce_api,
                RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 1);
}

void mock_cluster::deny_produce_requests(int count) {
  fail_requests(impl_->cluster, produce_api,
                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, count);
}

// -- partitioning and metadata ------------------------------------------------

std::int32_t partition_for_key(std::string_view key, std::int32_t partitions) {
  // No partitions known: not a partition (a division by zero would end the
  // process).
  if (partitions <= 0)
    return -1;
  // Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  auto length = static_cast<std::int32_t>(key.size());
  const std::uint32_t seed = 0x9747b28c;
  const std::uint32_t m = 0x5bd1e995;
  const int r = 24;
  std::uint32_t h = seed ^ static_cast<std::uint32_t>(length);
  auto length4 = length / 4;
  for (std::int32_t i = 0; i < length4; ++i) {
    auto i4 = i * 4;
    std::uint32_t k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16)
                      | (static_cast<std::uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  auto tail = length4 * 4;
  switch (length % 4) {
    case 3:
      h ^= static_cast<std::uint32_t>(data[tail + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<std::uint32_t>(data[tail + 1]) << 8;
      [[fallthrough]];
    case 1: h ^= data[tail]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  auto positive = static_cast<std::int32_t>(h & 0x7fffffff);
  return positive % partitions;
}

} // namespace seatledger::kafka

namespace seatledger::kafka {

struct watermark_reader::impl {
  client_ptr rk;
  std::map<std::string, std::int32_t> partition_counts;
};

watermark_reader::watermark_reader(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

watermark_reader::~watermark_reader() = default;

caf::expected<std::unique_ptr<watermark_reader>>
watermark_reader::connect(const client_config& config) {
  auto client = question_client(config, RD_KAFKA_CONSUMER,
                                {{"group.id", "seatledger-watermarks"}});
  if (!client)
    return client.error();
  auto state = std::make_unique<impl>();
  state->rk = std::move(*client);
  return std::unique_ptr<watermark_reader>(
    new watermark_reader(std::move(state)));
}

caf::expected<std::vector<std::int64_t>>
watermark_reader::high_watermarks(const std::string& topic, int timeout_ms) {
  auto& counts = impl_->partition_counts;
  auto known = counts.find(topic);
  if (known == counts.end()) {
    auto found = partition_counts_of(impl_->rk.get(), {topic}, timeout_ms);
    if (!found)
      return found.error();
    if (found->empty())
      return kafka_error("unknown topic " + topic);
    known = counts.emplace(topic, found->begin()->second).first;
  }
  std::vector<std::int64_t> result;
  for (std::int32_t p = 0; p < known->second; ++p) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (auto err = rd_kafka_query_watermark_offsets(
          impl_->rk.get(), topic.c_str(), p, &low, &high, timeout_ms))
      return kafka_error(std::string{"watermarks: "} + rd_kafka_err2str(err));
    result.push_back(high);
  }
  return result;
}

caf::expected<std::vector<std::int64_t>>
high_watermarks(const client_config& config, const std::string& topic,
                int timeout_ms) {
  auto reader = watermark_reader::connect(config);
  if (!reader)
    return reader.error();
  return (*reader)->high_watermarks(topic, timeout_ms);
}

caf::expected<std::vector<position>>
committed_offsets(const client_config& config, const std::string& group_id,
                  const std::vector<topic_partition>& partitions,
                  int timeout_ms) {
  // A client that never subscribes only reads the group's offsets.
  auto client = question_client(config, RD_KAFKA_CONSUMER,
                                {{"group.id", group_id}});
  if (!client)
    return client.error();
  auto list = to_list(partitions);
  if (auto err = rd_kafka_committed(client->get(), list.get(), timeout_ms))
    return kafka_error(std::string{"committed offsets: "}
                       + rd_kafka_err2str(err));
  std::vector<position> result;
  for (int i = 0; i < list->cnt; ++i)
    result.push_back({{list->elems[i].topic, list->elems[i].partition},
                      list->elems[i].offset < 0 ? -1 : list->elems[i].offset});
  return result;
}

caf::error client_refusal(const client_config& config) {
  // No broker: librdkafka checks its configuration when it creates a
  // client, not when it connects.
  auto offline = config;
  offline.bootstrap_servers.clear();
  // Quiet: a consumer property warned about by the producer (CONFWARN) would
  // be a second line beside the one start-up stops with; the clients serve
  // creates afterwards still say it.
  offline.properties["log_level"] = "0";
  if (auto p = producer::make(offline); !p)
    return p.error();
  if (auto c = consumer::group_member(offline, "seatledger-config-check",
                                      nullptr);
      !c)
    return c.error();
  if (auto c = consumer::assign_only(offline); !c)
    return c.error();
  return {};
}

} // namespace seatledger::kafka
