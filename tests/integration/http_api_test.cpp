// The HTTP API end to end: a real server on an ephemeral port, a fresh
// migrated PostgreSQL database filled the way the pipeline fills it (the
// domain rules apply membership events and commands; their effects are
// committed through pg_store), real signed licenses, and httplib's client.

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <httplib.h>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/service_status.hpp"
#include "adapters/crypto/keyring.hpp"
#include "adapters/http/api.hpp"
#include "adapters/http/server.hpp"
#include "adapters/metrics/registry.hpp"
#include "domain/identifiers.hpp"
#include "domain/org.hpp"
#include "domain/subscription.hpp"
#include "domain/usage.hpp"
#include "log/log.hpp"
#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "paseto/license_verifier.hpp"
#include "paseto/signed_json.hpp"
#include "pg_fixture.hpp"

using namespace seatledger;
using namespace seatledger::test;
using json = nlohmann::json;

namespace {

constexpr const char* read_token = "read-token-0123456789";
constexpr const char* admin_token = "admin-token-9876543210";
constexpr const char* commands_topic = "seatledger.subscriptions.v1";

/// The catalog the rules see.
class map_catalog : public domain::plan_catalog {
public:
  std::optional<domain::plan_entitlements>
  find_plan(const std::string& plan_id) const override {
    if (plan_id == "ultimate-annual")
      return domain::plan_entitlements{"Ultimate", {"sso", "audit_events"}};
    return std::nullopt;
  }
};

/// What the org and subscription actors do, without CAF or Kafka: apply an
/// event with the domain rules and commit its effects (rows built as
/// actors/entity_actors.cpp builds them) in one batch.
class pipeline_sim {
public:
  pipeline_sim(std::string conninfo,
               std::shared_ptr<const crypto::keyring> keys)
      : store_(std::move(conninfo)), keys_(std::move(keys)) {}

  caf::expected<void> membership(const domain::membership_event& event) {
    std::lock_guard<std::mutex> guard{mutex_};
    const auto& org_id = domain::org_id_of(event.change);
    auto& org = orgs_[org_id];
    if (!org)
      org = std::make_unique<domain::org_state>(org_id);
    auto fx = org->apply(event);
    storage::storage_batch b;
    for (const auto& c : fx.member_changes)
      b.memberships.push_back({org_id, c.user_id, c.billable, c.previous});
    b.orgs.push_back({org_id, org->subscription_id(), 0, org->delta_seq()});
    // The deltas go straight to their subscription (the internal topic's
    // round trip adds nothing the API can see).
    for (const auto& delta : fx.deltas) {
      auto& sub = subscription(delta.subscription_id);
      auto sfx = sub.apply(delta);
      collect(b, sub, sfx);
    }
    return store_.commit(b);
  }

  caf::expected<void> command(const domain::command_event& event) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto& sub = subscription(domain::subscription_id_of(event.command));
    auto fx = sub.apply(event, catalog_);
    storage::storage_batch b;
    collect(b, sub, fx);
    return store_.commit(b);
  }

  /// What the sweeper does: close the months of `id` that ended by `upto`.
  caf::expected<void> close_months(const std::string& id,
                                   domain::timestamp upto) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto& sub = subscription(id);
    auto fx = sub.close_months(upto);
    storage::storage_batch b;
    collect(b, sub, fx);
    return store_.commit(b);
  }

  domain::subscription_record record(const std::string& id) {
    std::lock_guard<std::mutex> guard{mutex_};
    return subscription(id).record();
  }

  std::vector<std::string> orgs_of(const std::string& id) {
    std::lock_guard<std::mutex> guard{mutex_};
    const auto& orgs = subscription(id).orgs();
    return {orgs.begin(), orgs.end()};
  }

private:
  domain::subscription& subscription(const std::string& id) {
    auto& sub = subs_[id];
    if (!sub)
      sub = std::make_unique<domain::subscription>(id);
    return *sub;
  }

  void collect(storage::storage_batch& b, domain::subscription& sub,
               domain::subscription_effects& fx) {
    const auto& id = sub.record().subscription_id;
    for (auto& e : fx.entries)
      b.ledger.push_back(e);
    for (auto& h : fx.holder_changes)
      b.holders.push_back({id, h.user_id, h.org_id, h.added});
    std::set<std::string> touched;
    for (const auto& [org, linked] : fx.org_changes)
      touched.insert(org);
    if (fx.org_delta_seq)
      touched.insert(fx.org_delta_seq->first);
    for (const auto& org : touched) {
      auto it = sub.org_delta_seqs().find(org);
      b.subscription_orgs.push_back(
        {id, org, sub.orgs().count(org) > 0,
         it == sub.org_delta_seqs().end() ? 0 : it->second});
    }
    for (const auto& t : fx.term_changes)
      b.terms.push_back({id, t});
    std::map<std::string, std::string> keys;
    for (const auto& grant : fx.grants) {
      auto claims = messages::encode_license_claims(grant);
      auto token = keys_->sign_license(claims);
      EXPECT_TRUE(token) << describe(token.error());
      if (!token)
        continue;
      keys[grant.license_id] = *token;
      b.licenses.push_back({grant, claims, *token, keys_->key_id()});
    }
    for (const auto& [license_id, when] : fx.revocations)
      b.revocations.push_back(
        {license_id, id, when, sub.record().archive_reason.value_or("")});
    for (auto& event : fx.events) {
      if (auto* issued = std::get_if<domain::license_issued>(&event.payload))
        issued->license_key = keys[issued->grant.license_id];
      auto value = messages::encode_output_event(event, "seatledger");
      // As the subscription actor does: the API finds rejections by id.
      if (std::holds_alternative<domain::command_rejected>(event.payload))
        b.indexed_events.emplace_back(event.id, value);
      b.outbox.push_back({event.id,
                          "seatledger.events.v1",
                          id,
                          std::move(value),
                          {{"content-type", "application/cloudevents+json"}},
                          "subscriptions/0"});
    }
    b.subscriptions.push_back({sub.record(), 0, sub.next_month_end()});
  }

  std::mutex mutex_;
  storage::pg_store store_;
  std::shared_ptr<const crypto::keyring> keys_;
  map_catalog catalog_;
  std::map<std::string, std::unique_ptr<domain::org_state>> orgs_;
  std::map<std::string, std::unique_ptr<domain::subscription>> subs_;
};

domain::event_ref ref(const std::string& source, const std::string& id,
                      std::string_view type, const std::string& time) {
  return {source, id, std::string{type}, at(time)};
}

std::string two(int i) {
  return (i < 10 ? "0" : "") + std::to_string(i);
}

json parse(const httplib::Result& res) {
  if (!res)
    return json{};
  auto j = json::parse(res->body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << res->body;
  return j;
}

std::string describe_result(const httplib::Result& res) {
  if (!res)
    return "no response: " + httplib::to_string(res.error());
  return std::to_string(res->status) + " " + res->body;
}

// Both macros evaluate their first argument once (it is often the request).
#define EXPECT_STATUS(expr, code)                            \
  do {                                                       \
    auto&& status_res = (expr);                              \
    ASSERT_TRUE(status_res) << describe_result(status_res);  \
    EXPECT_EQ(status_res->status, code) << status_res->body; \
  } while (false)

/// The error shape of http.md with the given status and code.
#define EXPECT_API_ERROR(expr, status_code, error_code)                       \
  do {                                                                        \
    auto&& api_res = (expr);                                                  \
    EXPECT_STATUS(api_res, status_code);                                      \
    auto api_body = parse(api_res);                                           \
    EXPECT_EQ(api_body["error"]["code"], error_code) << api_res->body;        \
    EXPECT_TRUE(api_body["error"]["message"].is_string()) << api_res->body;   \
    EXPECT_EQ(api_body.size(), 1u) << api_res->body;                          \
    EXPECT_EQ(api_res->get_header_value("Content-Type"), "application/json"); \
  } while (false)

class http_api : public pg_test {
protected:
  void SetUp() override {
    pg_test::SetUp();
    if (HasFatalFailure())
      return;
    char dir[] = "/tmp/seatledger-http-keys-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    key_dir_ = dir;
    auto files = crypto::generate_key_pair(key_dir_ + "/keys");
    ASSERT_TRUE(files) << describe(files.error());
    auto keys = crypto::keyring::load(files->signing_key_file, {});
    ASSERT_TRUE(keys) << describe(keys.error());
    keys_ = *keys;
    sim_ = std::make_unique<pipeline_sim>(conninfo(), keys_);
    build_state();
    if (HasFatalFailure())
      return;
    status_ = std::make_shared<actors::service_status>();
    start(dependencies());
  }

  void TearDown() override {
    server_.reset();
    for (auto& t : actor_threads_)
      t.join();
    sim_.reset();
    pg_test::TearDown();
    if (!key_dir_.empty())
      std::filesystem::remove_all(key_dir_);
  }

  // -- state ------------------------------------------------------------------

  void membership(const domain::event_ref& r, domain::membership_change c) {
    ASSERT_OK(sim_->membership({r, std::move(c)}));
  }

  void command(const domain::event_ref& r, domain::subscription_command c) {
    ASSERT_OK(sim_->command({r, std::move(c)}));
  }

  static domain::create_subscription create(const std::string& id,
                                            std::int64_t seats) {
    domain::create_subscription c;
    c.subscription_id = id;
    c.display_name = "Customer " + id;
    c.customer.salesforce_account_id = "0015000000abcde";
    c.customer.salesforce_subscription_id = "a1x5000000xyz";
    c.instance = {id + ".example.com", domain::instance_type::primary};
    c.plan_id = "ultimate-annual";
    c.seats = seats;
    c.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
    return c;
  }

  // The worked example of domain.md: term from 2026-01-15, seats go 10 on
  // Jan 16, 15 on Jan 20, 9 on Jan 25 (then 10 on Jan 26 through a second
  // org); plus an archived subscription, a pool without `create` and an org
  // linked to nothing.
  void build_state() {
    using namespace messages::event_types;
    for (int i = 1; i <= 10; ++i)
      membership(ref("hr", "add-u" + two(i), member_added,
                     "2026-01-10T00:00:00Z"),
                 domain::member_added{"org-a", "u" + two(i), true, {}});
    command(ref("billing", "create-1", subscription_create,
                "2026-01-15T00:00:00Z"),
            create("sub-1", 10));
    membership(ref("hr", "link-a", org_linked, "2026-01-16T00:00:00Z"),
               domain::org_linked{"org-a", "sub-1"});
    for (int i = 11; i <= 15; ++i)
      membership(ref("hr", "add-u" + two(i), member_added,
                     "2026-01-20T00:00:00Z"),
                 domain::member_added{"org-a", "u" + two(i), true, {}});
    for (int i = 1; i <= 6; ++i)
      membership(ref("hr", "remove-u" + two(i), member_removed,
                     "2026-01-25T00:00:00Z"),
                 domain::member_removed{"org-a", "u" + two(i)});
    membership(ref("hr", "b-add-u10", member_added, "2026-01-26T00:00:00Z"),
               domain::member_added{"org-b", "u10", true, {}});
    membership(ref("hr", "b-add-u20", member_added, "2026-01-26T00:00:00Z"),
               domain::member_added{"org-b", "u20", true, {}});
    membership(ref("hr", "b-add-bot", member_added, "2026-01-26T00:00:00Z"),
               domain::member_added{"org-b", "bot", false, {}});
    membership(ref("hr", "link-b", org_linked, "2026-01-26T00:00:00Z"),
               domain::org_linked{"org-b", "sub-1"});

    command(ref("billing", "create-2", subscription_create,
                "2026-01-15T00:00:00Z"),
            create("sub-2", 5));
    command(ref("billing", "archive-2", subscription_archive,
                "2026-02-01T00:00:00Z"),
            domain::archive_subscription{"sub-2", "churned"});

    membership(ref("hr", "e-add", member_added, "2026-01-05T00:00:00Z"),
               domain::member_added{"org-e", "u40", true, {}});
    membership(ref("hr", "e-link", org_linked, "2026-01-06T00:00:00Z"),
               domain::org_linked{"org-e", "sub-early"});

    membership(ref("hr", "c-add", member_added, "2026-01-05T00:00:00Z"),
               domain::member_added{"org-c", "u50", true, {}});
  }

  // -- server -----------------------------------------------------------------

  http::server_dependencies dependencies() {
    http::server_dependencies d;
    auto info = conninfo();
    d.make_store = [info] { return std::make_unique<storage::pg_store>(info); };
    d.keys = keys_;
    d.status = status_;
    d.metrics = &metrics_;
    d.tokens = {{read_token, "read"}, {admin_token, "admin"}};
    d.commands_topic = commands_topic;
    d.clock = [this] { return domain::timestamp::from_micros(now_.load()); };
    // The owning actor, simulated: decode the record as the pipeline would,
    // apply it a little later on another thread and commit the result.
    d.publish = [this](const std::string& topic, const std::string& key,
                       const std::string& value) -> caf::expected<void> {
      std::lock_guard<std::mutex> guard{published_mutex_};
      published_.push_back({topic, key, value});
      messages::decoder decoder;
      auto decoded = decoder.decode_command({value, nullptr});
      EXPECT_TRUE(decoded) << value;
      if (!decoded || !actor_running_)
        return {};
      actor_threads_.emplace_back([this, cmd = std::move(decoded).value()] {
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
        auto ok = sim_->command(cmd);
        EXPECT_TRUE(ok) << describe(ok.error());
      });
      return {};
    };
    d.write_timeout = std::chrono::milliseconds{5000};
    return d;
  }

  void start(http::server_dependencies d) {
    server_.reset();
    server_ = std::make_unique<http::server>(std::move(d));
    auto port = server_->start("127.0.0.1", 0);
    ASSERT_TRUE(port) << describe(port.error());
    ASSERT_GT(*port, 0);
    EXPECT_EQ(server_->port(), *port);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", *port);
    client_->set_read_timeout(std::chrono::seconds{20});
  }

  static httplib::Headers auth(const char* token) {
    if (!token)
      return {};
    return {{"Authorization", std::string{"Bearer "} + token}};
  }

  httplib::Result get(const std::string& path, const char* token = read_token) {
    return client_->Get(path.c_str(), auth(token));
  }

  httplib::Result post(const std::string& path, const std::string& body,
                       const char* token = admin_token) {
    return client_->Post(path.c_str(), auth(token), body, "application/json");
  }

  httplib::Result post_with_key(const std::string& path,
                                const std::string& body,
                                const std::string& idempotency_key) {
    auto headers = auth(admin_token);
    headers.emplace("Idempotency-Key", idempotency_key);
    return client_->Post(path.c_str(), headers, body, "application/json");
  }

  void set_now(const std::string& t) {
    now_ = at(t).micros();
  }

  struct published_record {
    std::string topic;
    std::string key;
    std::string value;
  };

  std::vector<published_record> published() {
    std::lock_guard<std::mutex> guard{published_mutex_};
    return published_;
  }

  std::string key_dir_;
  std::shared_ptr<const crypto::keyring> keys_;
  std::unique_ptr<pipeline_sim> sim_;
  std::shared_ptr<actors::service_status> status_;
  metrics::registry metrics_;
  std::atomic<std::int64_t> now_{at("2026-04-01T00:00:00Z").micros()};
  std::unique_ptr<http::server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::mutex published_mutex_;
  std::vector<published_record> published_;
  std::vector<std::thread> actor_threads_;
  bool actor_running_ = true;
};

std::int64_t unix_ms_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace

// -- open endpoints -----------------------------------------------------------

TEST_F(http_api, healthz_is_open_and_does_not_depend_on_readiness) {
  auto res = get("/healthz", nullptr);
  EXPECT_STATUS(res, 200);
  EXPECT_EQ(parse(res), (json{{"status", "ok"}}));
}

TEST_F(http_api, readyz_follows_the_pipeline) {
  auto res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"],
            "starting: PostgreSQL not tried yet");
  status_->postgres_checked = true;
  res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"], "PostgreSQL is not reachable");
  status_->postgres_ok = true;
  res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"], "starting: Kafka not tried yet");
  status_->kafka_checked = true;
  res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"], "Kafka is not reachable");
  status_->kafka_ok = true;
  status_->consuming = true;
  status_->last_cycle_unix_ms = unix_ms_now();
  res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"],
            "waiting for the consumer group to assign partitions");
  status_->partitions_assigned = true;
  res = get("/readyz", nullptr);
  EXPECT_STATUS(res, 200);
  EXPECT_EQ(parse(res), (json{{"status", "ready"}}));
  status_->placement_ok = false;
  res = get("/readyz", nullptr);
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"],
            "the topics' partition counts do not allow placing records (see "
            "the log)");
  status_->placement_ok = true;
  status_->consuming = false;
  EXPECT_API_ERROR(get("/readyz", nullptr), 503, "not_ready");
}

TEST_F(http_api, metrics_are_open_prometheus_text) {
  status_->outbox_depth = 12;
  status_->active_subscriptions = 2;
  EXPECT_STATUS(get("/v1/subscriptions/sub-1"), 200);
  auto res = get("/metrics", nullptr);
  EXPECT_STATUS(res, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(res->body.find("\nseatledger_outbox_depth 12\n"), std::string::npos)
    << res->body;
  EXPECT_NE(
    res->body.find("seatledger_active_actors{kind=\"subscription\"} 2\n"),
    std::string::npos);
  EXPECT_NE(res->body.find("seatledger_http_requests_total{code=\"200\","
                           "route=\"/v1/subscriptions/{id}\"} 1\n"),
            std::string::npos)
    << res->body;
  // The concrete path (an entity id) never becomes a label.
  EXPECT_EQ(res->body.find("sub-1"), std::string::npos);
}

// -- authentication -----------------------------------------------------------

TEST_F(http_api, missing_wrong_and_insufficient_tokens) {
  auto none = get("/v1/subscriptions/sub-1", nullptr);
  EXPECT_API_ERROR(none, 401, "unauthorized");
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  auto wrong = get("/v1/subscriptions/sub-1", "not-a-token");
  EXPECT_API_ERROR(wrong, 401, "unauthorized");
  EXPECT_EQ(wrong->get_header_value("WWW-Authenticate"), "Bearer");
  // A prefix of a real token is no token.
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1", "read-token"), 401,
                   "unauthorized");
  auto basic = client_->Get("/v1/subscriptions/sub-1",
                            {{"Authorization", "Basic cmVhZDpyZWFk"}});
  EXPECT_API_ERROR(basic, 401, "unauthorized");
  // A read token cannot write; without a token even that is a 401.
  EXPECT_API_ERROR(post("/v1/subscriptions/sub-1/licenses", "{}", read_token),
                   403, "forbidden");
  EXPECT_API_ERROR(post("/v1/subscriptions/sub-1/licenses", "{}", nullptr), 401,
                   "unauthorized");
  EXPECT_TRUE(published().empty());
  EXPECT_STATUS(get("/v1/subscriptions/sub-1", read_token), 200);
  EXPECT_STATUS(get("/v1/subscriptions/sub-1", admin_token), 200);
}

TEST_F(http_api, unknown_paths_are_404_and_wrong_methods_405) {
  EXPECT_API_ERROR(get("/v1/nothing"), 404, "not_found");
  EXPECT_API_ERROR(get("/"), 404, "not_found");
  // No catalog store among these dependencies: the catalog routes are off.
  EXPECT_API_ERROR(get("/v1/catalog/rate-plans"), 404, "not_found");
  EXPECT_API_ERROR(get("/v1/catalog/incomplete"), 404, "not_found");
  auto del = client_->Delete("/v1/subscriptions/sub-1", auth(admin_token));
  EXPECT_API_ERROR(del, 405, "method_not_allowed");
  EXPECT_EQ(del->get_header_value("Allow"), "GET, HEAD");
  auto get_verify = get("/v1/licenses/verify");
  EXPECT_API_ERROR(get_verify, 405, "method_not_allowed");
  EXPECT_EQ(get_verify->get_header_value("Allow"), "POST");
  auto put = client_->Put("/v1/subscriptions/sub-1/licenses", auth(admin_token),
                          "{}", "application/json");
  EXPECT_API_ERROR(put, 405, "method_not_allowed");
  EXPECT_EQ(put->get_header_value("Allow"), "GET, HEAD, POST");
  EXPECT_API_ERROR(post("/healthz", "{}"), 405, "method_not_allowed");
}

// -- subscriptions ------------------------------------------------------------

TEST_F(http_api, subscription_state) {
  auto res = get("/v1/subscriptions/sub-1");
  EXPECT_STATUS(res, 200);
  auto body = parse(res);
  // Exactly the Subscription shape the messages encoder writes.
  EXPECT_EQ(body, json::parse(messages::encode_subscription(
                    sim_->record("sub-1"), sim_->orgs_of("sub-1"))));
  EXPECT_EQ(body["subscription_id"], "sub-1");
  EXPECT_EQ(body["status"], "active");
  EXPECT_EQ(body["seats"], 10);
  EXPECT_EQ(body["seats_in_use"], 10);
  EXPECT_EQ(body["max_seats_used"], 15);
  EXPECT_EQ(body["max_seats_used_changed_at"], "2026-01-20T00:00:00Z");
  EXPECT_EQ(body["seats_owed"], 5);
  EXPECT_EQ(body["orgs"], (json{"org-a", "org-b"}));
  EXPECT_EQ(body["term"], (json{{"start", "2026-01-15T00:00:00Z"},
                                {"end", "2027-01-15T00:00:00Z"}}));
  EXPECT_TRUE(body["metadata"].is_object());
  EXPECT_EQ(parse(get("/v1/subscriptions/sub-2"))["status"], "archived");

  EXPECT_API_ERROR(get("/v1/subscriptions/sub-none"), 404, "not_found");
  EXPECT_API_ERROR(get("/v1/subscriptions/bad%20id"), 404, "not_found");
  // Before its create a subscription is 404, though its pool answers.
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-early"), 404, "not_found");
  EXPECT_STATUS(get("/v1/subscriptions/sub-early/ledger"), 200);
  EXPECT_STATUS(get("/v1/subscriptions/sub-early/seats/holders"), 200);
  auto seats = get("/v1/subscriptions/sub-early/seats?at=2026-02-01T00:00:00Z");
  EXPECT_STATUS(seats, 200);
  EXPECT_EQ(parse(seats)["seats_in_use"], 1);
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-early/usage"), 404, "not_found");
}

TEST_F(http_api, ledger_pages_follow_the_hash_chain) {
  auto all = get("/v1/subscriptions/sub-1/ledger");
  EXPECT_STATUS(all, 200);
  auto body = parse(all);
  ASSERT_EQ(body["entries"].size(), 22u) << all->body;
  EXPECT_TRUE(body["next_after"].is_null());

  // Walk it in pages of 5 and check the chain link by link.
  std::vector<json> walked;
  std::string path = "/v1/subscriptions/sub-1/ledger?limit=5";
  for (int pages = 0; pages < 10; ++pages) {
    auto res = get(path);
    EXPECT_STATUS(res, 200);
    auto page = parse(res);
    EXPECT_LE(page["entries"].size(), 5u);
    for (auto& e : page["entries"])
      walked.push_back(e);
    if (page["next_after"].is_null())
      break;
    EXPECT_EQ(page["next_after"], walked.back()["seq"]);
    path = "/v1/subscriptions/sub-1/ledger?limit=5&after="
           + std::to_string(page["next_after"].get<std::int64_t>());
  }
  ASSERT_EQ(walked.size(), 22u);
  std::string prev = domain::genesis_hash;
  std::int64_t seq = 0;
  for (const auto& e : walked) {
    EXPECT_EQ(e["seq"], ++seq);
    EXPECT_EQ(e["prev_hash"], prev);
    // Each hash covers the cause's time too, which the API does not show:
    // the content is checked against the stored entries below.
    prev = e["hash"];
    EXPECT_EQ(prev.size(), 64u);
  }
  EXPECT_EQ(walked[14]["seats_in_use"], 15);
  EXPECT_EQ(walked[14]["event"], (json{{"source", "hr"},
                                       {"id", "add-u15"},
                                       {"type", "seatledger.member.added"}}));
  EXPECT_EQ(walked[14]["user_id"], "u15");
  EXPECT_EQ(walked[21]["org_id"], "org-b");
  EXPECT_EQ(walked[21]["user_id"], "u20");
  // Hashes as stored, hence as the chain verifier sees them.
  auto stored = value_or_fail(store().ledger_page("sub-1", 0, 100));
  ASSERT_EQ(stored.size(), 22u);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(walked[i]["hash"], stored[i].hash);
    EXPECT_EQ(stored[i].hash, domain::compute_entry_hash(stored[i]));
  }

  auto last = get("/v1/subscriptions/sub-1/ledger?after=20&limit=2");
  EXPECT_STATUS(last, 200);
  EXPECT_EQ(parse(last)["entries"].size(), 2u);
  EXPECT_TRUE(parse(last)["next_after"].is_null());
  auto exact = get("/v1/subscriptions/sub-1/ledger?after=19&limit=2");
  EXPECT_EQ(parse(exact)["next_after"], 21);

  // A mistyped or repeated parameter answered as if it had not been given
  // (or first-wins).
  for (auto bad : {"limit=0", "limit=1001", "limit=-1", "limit=x", "after=-1",
                   "after=abc", "after=", "limt=5", "after=1&after=2", "at=x"})
    EXPECT_API_ERROR(get(std::string{"/v1/subscriptions/sub-1/ledger?"} + bad),
                     400, "bad_request");
  EXPECT_STATUS(get("/v1/subscriptions/sub-1/ledger?limit=1000"), 200);
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-none/ledger"), 404, "not_found");
}

TEST_F(http_api, holders_are_paged_with_their_orgs) {
  auto first = get("/v1/subscriptions/sub-1/seats/holders?limit=2");
  EXPECT_STATUS(first, 200);
  auto page = parse(first);
  ASSERT_EQ(page["holders"].size(), 2u);
  EXPECT_EQ(page["holders"][0],
            (json{{"user_id", "u07"}, {"orgs", {"org-a"}}}));
  EXPECT_EQ(page["next_after"], "u08");
  std::vector<json> all;
  for (auto& h : page["holders"])
    all.push_back(h);
  auto after = page["next_after"].get<std::string>();
  while (true) {
    auto res
      = get("/v1/subscriptions/sub-1/seats/holders?limit=2&after=" + after);
    EXPECT_STATUS(res, 200);
    auto p = parse(res);
    for (auto& h : p["holders"])
      all.push_back(h);
    if (p["next_after"].is_null())
      break;
    after = p["next_after"];
  }
  ASSERT_EQ(all.size(), 10u); // u07..u15 and u20: the seat count
  EXPECT_EQ(all[3], (json{{"user_id", "u10"}, {"orgs", {"org-a", "org-b"}}}));
  EXPECT_EQ(all.back(), (json{{"user_id", "u20"}, {"orgs", {"org-b"}}}));
  auto whole = parse(get("/v1/subscriptions/sub-1/seats/holders"));
  EXPECT_EQ(whole["holders"].size(), 10u);
  EXPECT_TRUE(whole["next_after"].is_null());
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/seats/holders?limit=0"), 400,
                   "bad_request");
  // Not a user id: bytes that are not UTF-8 were a 500 from PostgreSQL;
  // an empty one read as no after at all (the ledger's empty after is 400).
  for (auto bad : {"%FF", "%00", "a%20b", ""})
    EXPECT_API_ERROR(
      get(std::string{"/v1/subscriptions/sub-1/seats/holders?after="} + bad),
      400, "bad_request");
  EXPECT_API_ERROR(get("/v1/licenses/%FF"), 404, "not_found");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-none/seats/holders"), 404,
                   "not_found");
}

TEST_F(http_api, seats_at_an_instant) {
  auto seats_at = [&](const std::string& query) {
    auto res = get("/v1/subscriptions/sub-1/seats?" + query);
    EXPECT_TRUE(res && res->status == 200) << describe_result(res);
    return parse(res);
  };
  auto body = seats_at("at=2026-01-20T12:00:00Z");
  EXPECT_EQ(body, (json{{"subscription_id", "sub-1"},
                        {"at", "2026-01-20T12:00:00Z"},
                        {"seats_in_use", 15}}));
  EXPECT_EQ(seats_at("at=2026-01-15T00:00:00Z")["seats_in_use"], 0);
  EXPECT_EQ(seats_at("at=2026-01-16T00:00:00Z")["seats_in_use"], 10);
  EXPECT_EQ(seats_at("at=2026-01-25T00:00:00Z")["seats_in_use"], 9);
  EXPECT_EQ(seats_at("at=2026-03-01T00:00:00Z")["seats_in_use"], 10);
  // An offset, percent-encoded, is converted to UTC.
  auto offset = seats_at("at=2026-01-20T01:00:00%2B02:00");
  EXPECT_EQ(offset["at"], "2026-01-19T23:00:00Z");
  EXPECT_EQ(offset["seats_in_use"], 10);
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/seats"), 400, "bad_request");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/seats?at=yesterday"), 400,
                   "bad_request");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/seats?at=2026-02-30T00:00:00Z"),
                   400, "bad_request");
  // Year 0000, which PostgreSQL refuses (it was a 500), also once in UTC.
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/seats?at=0000-01-01T00:00:00Z"),
                   400, "bad_request");
  EXPECT_API_ERROR(
    get("/v1/subscriptions/sub-1/seats?at=0001-01-01T00:00:00%2B00:01"), 400,
    "bad_request");
  EXPECT_EQ(seats_at("at=0001-01-01T00:00:00Z")["seats_in_use"], 0);
  EXPECT_API_ERROR(
    get("/v1/subscriptions/sub-none/seats?at=2026-02-01T00:00:00Z"), 404,
    "not_found");
}

TEST_F(http_api, usage_report_json_csv_and_signed_export) {
  // No record of sub-1 came after Jan 26: the ends of months 1 and 2 passed
  // on the wall clock (now is Apr 1), but a late record may still take
  // effect in them, so they are not complete until closed.
  auto open = parse(get("/v1/subscriptions/sub-1/usage"));
  ASSERT_EQ(open["months"].size(), 3u) << open;
  for (const auto& month : open["months"])
    EXPECT_EQ(month["complete"], false) << month;
  EXPECT_EQ(parse(get("/v1/subscriptions/sub-1/usage?export=1"))["months"],
            json::array());
  // The sweeper closes them.
  ASSERT_OK(sim_->close_months("sub-1", at("2026-03-20T00:00:00Z")));
  auto res = get("/v1/subscriptions/sub-1/usage");
  EXPECT_STATUS(res, 200);
  auto body = parse(res);
  EXPECT_EQ(body["subscription_id"], "sub-1");
  EXPECT_EQ(body["term"], (json{{"start", "2026-01-15T00:00:00Z"},
                                {"end", "2027-01-15T00:00:00Z"}}));
  auto& months = body["months"];
  ASSERT_EQ(months.size(), 3u) << res->body;
  EXPECT_EQ(months[0]["month"], 1);
  EXPECT_EQ(months[0]["start"], "2026-01-15T00:00:00Z");
  EXPECT_EQ(months[0]["end"], "2026-02-15T00:00:00Z");
  EXPECT_EQ(months[0]["peak_seats"], 15);
  EXPECT_EQ(months[0]["peak_at"], "2026-01-20T00:00:00Z");
  EXPECT_EQ(months[0]["peak_seq"], 15);
  EXPECT_EQ(months[0]["peak_event"],
            (json{{"source", "hr"},
                  {"id", "add-u15"},
                  {"type", "seatledger.member.added"}}));
  EXPECT_EQ(months[0]["complete"], true);
  EXPECT_EQ(months[1]["peak_seats"], 10);
  EXPECT_EQ(months[1]["peak_at"], "2026-02-15T00:00:00Z");
  EXPECT_TRUE(months[1]["peak_seq"].is_null());
  EXPECT_TRUE(months[1]["peak_event"].is_null());
  EXPECT_EQ(months[1]["complete"], true);
  EXPECT_EQ(months[2]["start"], "2026-03-15T00:00:00Z");
  EXPECT_EQ(months[2]["complete"], false);

  // The same months as the domain computes from the stored ledger.
  auto window
    = value_or_fail(store().ledger_window("sub-1", at("2026-01-15T00:00:00Z")));
  auto want = domain::monthly_usage(window, at("2026-01-15T00:00:00Z"),
                                    at("2027-01-15T00:00:00Z"),
                                    at("2026-04-01T00:00:00Z"), 2);
  ASSERT_EQ(want.size(), months.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(months[i]["peak_seats"], want[i].peak_seats);
    EXPECT_EQ(months[i]["end"], domain::format_rfc3339(want[i].end));
  }

  auto csv = get("/v1/subscriptions/sub-1/usage?format=csv");
  EXPECT_STATUS(csv, 200);
  EXPECT_EQ(csv->get_header_value("Content-Type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv->body,
            "month,start,end,peak_seats,peak_at,peak_seq,complete\r\n"
            "1,2026-01-15T00:00:00Z,2026-02-15T00:00:00Z,15,"
            "2026-01-20T00:00:00Z,15,true\r\n"
            "2,2026-02-15T00:00:00Z,2026-03-15T00:00:00Z,10,"
            "2026-02-15T00:00:00Z,,true\r\n"
            "3,2026-03-15T00:00:00Z,2026-04-15T00:00:00Z,10,"
            "2026-03-15T00:00:00Z,,false\r\n");

  auto exported = get("/v1/subscriptions/sub-1/usage?export=1");
  EXPECT_STATUS(exported, 200);
  auto verified = paseto::verify_json_document(keys_->trusted(),
                                               exported->body);
  ASSERT_TRUE(verified) << exported->body;
  EXPECT_EQ(verified.value().key_id, keys_->key_id());
  auto doc = parse(exported);
  EXPECT_EQ(doc["key_id"], keys_->key_id());
  EXPECT_EQ(doc["subscription_id"], "sub-1");
  EXPECT_EQ(doc["exported_at"], "2026-04-01T00:00:00Z");
  EXPECT_EQ(doc["term"]["start"], "2026-01-15T00:00:00Z");
  ASSERT_EQ(doc["months"].size(), 2u); // complete months only
  EXPECT_EQ(doc["months"][0], months[0]);
  EXPECT_EQ(doc["months"][1], months[1]);
  // An edited export no longer verifies.
  auto edited = exported->body;
  auto pos = edited.find("\"peak_seats\":15");
  ASSERT_NE(pos, std::string::npos);
  edited.replace(pos, 15, "\"peak_seats\":11");
  EXPECT_FALSE(paseto::verify_json_document(keys_->trusted(), edited));

  EXPECT_STATUS(get("/v1/subscriptions/sub-1/usage?term_start=2026-01-15T00:"
                    "00:00Z"),
                200);
  EXPECT_API_ERROR(
    get("/v1/subscriptions/sub-1/usage?term_start=2025-01-15T00:00:00Z"), 404,
    "not_found");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/usage?term_start=last"), 400,
                   "bad_request");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/usage?format=xml"), 400,
                   "bad_request");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/usage?export=maybe"), 400,
                   "bad_request");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-none/usage"), 404, "not_found");
}

// -- licenses -----------------------------------------------------------------

TEST_F(http_api, licenses_with_status_key_and_claims) {
  auto res = get("/v1/subscriptions/sub-1/licenses");
  EXPECT_STATUS(res, 200);
  auto list = parse(res)["licenses"];
  ASSERT_EQ(list.size(), 1u) << res->body;
  auto lic = list[0];
  EXPECT_EQ(lic["subscription_id"], "sub-1");
  EXPECT_EQ(lic["status"], "valid");
  EXPECT_TRUE(lic["revoked_at"].is_null());
  EXPECT_EQ(lic["issued_at"], "2026-01-15T00:00:00Z");
  EXPECT_EQ(lic["claims"]["jti"], lic["license_id"]);
  EXPECT_EQ(lic["claims"]["seats"], 10);
  EXPECT_EQ(lic["claims"]["tier"], "Ultimate");
  // The key is the real signed token and carries those claims.
  auto check = paseto::verify_license(
    keys_->trusted(), lic["license_key"].get<std::string>(),
    http::to_time_point(at("2026-04-01T00:00:00Z")));
  EXPECT_TRUE(check.valid);
  EXPECT_EQ(json::parse(check.claims_json), lic["claims"]);

  auto one = get("/v1/licenses/" + lic["license_id"].get<std::string>());
  EXPECT_STATUS(one, 200);
  EXPECT_EQ(parse(one), lic);

  auto archived = parse(get("/v1/subscriptions/sub-2/licenses"))["licenses"];
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0]["status"], "revoked");
  EXPECT_EQ(archived[0]["revoked_at"], "2026-02-01T00:00:00Z");

  // Past its end the same license reads as expired.
  set_now("2027-02-01T00:00:00Z");
  EXPECT_EQ(parse(get("/v1/licenses/"
                      + lic["license_id"].get<std::string>()))["status"],
            "expired");

  EXPECT_API_ERROR(get("/v1/licenses/00000000-0000-0000-0000-000000000000"),
                   404, "not_found");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-none/licenses"), 404,
                   "not_found");
  // Before its create a subscription's licenses are 404 like the
  // subscription (http.md lets only the pool answer then); they answered
  // 200 with an empty list.
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-early/licenses"), 404,
                   "not_found");
}

TEST_F(http_api, revocation_list_is_signed) {
  auto res = get("/v1/licenses/revocations");
  EXPECT_STATUS(res, 200);
  auto verified = paseto::verify_json_document(keys_->trusted(), res->body);
  ASSERT_TRUE(verified) << res->body;
  auto doc = parse(res);
  EXPECT_EQ(doc["issued_at"], "2026-04-01T00:00:00Z");
  auto sub2 = parse(get("/v1/subscriptions/sub-2/licenses"))["licenses"][0];
  ASSERT_EQ(doc["revoked"].size(), 1u);
  EXPECT_EQ(doc["revoked"][0], (json{{"license_id", sub2["license_id"]},
                                     {"subscription_id", "sub-2"},
                                     {"revoked_at", "2026-02-01T00:00:00Z"}}));
  EXPECT_EQ(doc["key_id"], keys_->key_id());
  EXPECT_TRUE(doc["signature"].is_string());
}

TEST_F(http_api, verify_license_online) {
  auto sub1 = parse(get("/v1/subscriptions/sub-1/licenses"))["licenses"][0];
  auto sub2 = parse(get("/v1/subscriptions/sub-2/licenses"))["licenses"][0];
  auto verify = [&](const json& body, const char* token = read_token) {
    return post("/v1/licenses/verify", body.dump(), token);
  };
  auto ok = verify({{"license_key", sub1["license_key"]}});
  EXPECT_STATUS(ok, 200);
  auto answer = parse(ok);
  EXPECT_EQ(answer["valid"], true);
  // The JSON body sent with curl's default form content type: httplib reads
  // it as a form field, which the query check took for an unknown query
  // parameter (a 400 naming the whole body).
  auto as_form
    = client_->Post("/v1/licenses/verify", auth(read_token),
                    json{{"license_key", sub1["license_key"]}}.dump(),
                    "application/x-www-form-urlencoded");
  EXPECT_STATUS(as_form, 200);
  EXPECT_EQ(parse(as_form)["valid"], true);
  EXPECT_TRUE(answer["reason"].is_null());
  EXPECT_EQ(answer["claims"], sub1["claims"]);

  // Signature fine, but PostgreSQL knows it was revoked.
  auto revoked = parse(verify({{"license_key", sub2["license_key"]}}));
  EXPECT_EQ(revoked["valid"], false);
  EXPECT_EQ(revoked["reason"], "revoked");
  EXPECT_EQ(revoked["claims"]["jti"], sub2["license_id"]);

  auto garbage = parse(verify({{"license_key", "v3.local.nope"}}));
  EXPECT_EQ(garbage["valid"], false);
  EXPECT_EQ(garbage["reason"], "bad_format");
  EXPECT_TRUE(garbage["claims"].is_null());

  auto key = sub1["license_key"].get<std::string>();
  auto dot = key.find('.', 10);
  ASSERT_NE(dot, std::string::npos);
  key[dot - 3] = key[dot - 3] == 'A' ? 'B' : 'A'; // inside the signature
  auto tampered = parse(verify({{"license_key", key}}));
  EXPECT_EQ(tampered["valid"], false);
  EXPECT_TRUE(tampered["reason"] == "bad_signature"
              || tampered["reason"] == "bad_format")
    << tampered;
  EXPECT_TRUE(tampered["claims"].is_null());

  // The server's clock decides both answers: verify allowed 60 s of clock
  // skew and said valid while GET said expired.
  auto exp = domain::parse_rfc3339(sub1["claims"]["exp"].get<std::string>());
  ASSERT_TRUE(exp);
  set_now(domain::format_rfc3339(
    domain::timestamp::from_micros(exp->micros() + 30'000'000)));
  auto just_expired = parse(verify({{"license_key", sub1["license_key"]}}));
  EXPECT_EQ(just_expired["valid"], false) << just_expired;
  EXPECT_EQ(just_expired["reason"], "expired");
  auto license_path = "/v1/licenses/" + sub1["license_id"].get<std::string>();
  EXPECT_EQ(parse(get(license_path))["status"], "expired");

  set_now("2027-02-01T00:00:00Z");
  auto expired = parse(verify({{"license_key", sub1["license_key"]}}));
  EXPECT_EQ(expired["valid"], false);
  EXPECT_EQ(expired["reason"], "expired");

  EXPECT_API_ERROR(post("/v1/licenses/verify", "not json", read_token), 400,
                   "bad_request");
  EXPECT_API_ERROR(post("/v1/licenses/verify", "[]", read_token), 400,
                   "bad_request");
  EXPECT_API_ERROR(verify({{"license_key", 5}}), 400, "bad_request");
  EXPECT_API_ERROR(verify(json::object()), 400, "bad_request");
  EXPECT_API_ERROR(verify({{"license_key", "x"}}, nullptr), 401,
                   "unauthorized");
}

TEST_F(http_api, orgs) {
  auto a = get("/v1/orgs/org-a");
  EXPECT_STATUS(a, 200);
  EXPECT_EQ(parse(a), (json{{"org_id", "org-a"},
                            {"subscription_id", "sub-1"},
                            {"members", 9},
                            {"billable_members", 9}}));
  auto b = parse(get("/v1/orgs/org-b"));
  EXPECT_EQ(b["members"], 3);
  EXPECT_EQ(b["billable_members"], 2);
  auto c = parse(get("/v1/orgs/org-c"));
  EXPECT_TRUE(c["subscription_id"].is_null());
  EXPECT_EQ(c["members"], 1);
  EXPECT_API_ERROR(get("/v1/orgs/org-never-seen"), 404, "not_found");
}

// -- issuing a license --------------------------------------------------------

TEST_F(http_api, issue_license_waits_for_the_owning_actor) {
  auto started = std::chrono::steady_clock::now();
  auto res = post("/v1/subscriptions/sub-1/licenses",
                  R"({"features":["extra_feature"]})");
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_STATUS(res, 201);
  // The simulated actor commits 100 ms after the publication: the answer
  // came once the result was in PostgreSQL.
  EXPECT_GE(waited, std::chrono::milliseconds{100});
  auto lic = parse(res);
  EXPECT_EQ(lic["subscription_id"], "sub-1");
  EXPECT_EQ(lic["status"], "valid");
  EXPECT_EQ(res->get_header_value("Location"),
            "/v1/licenses/" + lic["license_id"].get<std::string>());
  auto features = lic["claims"]["features"];
  EXPECT_NE(std::find(features.begin(), features.end(), "extra_feature"),
            features.end())
    << lic;
  EXPECT_TRUE(paseto::verify_license(
                keys_->trusted(), lic["license_key"].get<std::string>(),
                http::to_time_point(at("2026-04-01T00:00:00Z")))
                .valid);

  // What went to Kafka: a license.issue command keyed by the subscription.
  auto records = published();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].topic, commands_topic);
  EXPECT_EQ(records[0].key, "sub-1");
  auto envelope = json::parse(records[0].value);
  EXPECT_EQ(envelope["specversion"], "1.0");
  EXPECT_EQ(envelope["type"], "seatledger.license.issue");
  EXPECT_EQ(envelope["source"], "seatledger");
  EXPECT_EQ(envelope["time"], "2026-04-01T00:00:00Z");
  EXPECT_EQ(envelope["id"].get<std::string>().size(), 36u);
  EXPECT_EQ(envelope["data"]["subscription_id"], "sub-1");
  EXPECT_EQ(envelope["data"]["features"], (json{"extra_feature"}));
  // The license names that command as its cause.
  auto by = value_or_fail(store().license_issued_by(
    {"seatledger", envelope["id"].get<std::string>()}));
  ASSERT_TRUE(by);
  EXPECT_EQ(by->license.grant.license_id, lic["license_id"]);

  // Newest first.
  auto list = parse(get("/v1/subscriptions/sub-1/licenses"))["licenses"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["license_id"], lic["license_id"]);

  // An empty body asks for a license with the defaults.
  auto plain = post("/v1/subscriptions/sub-1/licenses", "");
  EXPECT_STATUS(plain, 201);
  EXPECT_EQ(published().size(), 2u);
}

TEST_F(http_api, issue_license_rejected_by_the_rules) {
  if (!store().outbox_event("probe")
      && is(store().outbox_event("probe").error(), service_errc::internal))
    GTEST_SKIP() << "pg_store::outbox_event is not implemented yet: the API "
                    "cannot see rejections (it answers 503 after the write "
                    "timeout instead, see issue_license_times_out)";
  // Archived: the actor rejects the command; the API reads the rejection
  // event it committed.
  auto archived = post("/v1/subscriptions/sub-2/licenses", "{}");
  EXPECT_API_ERROR(archived, 409, "subscription_archived");
  auto late = post("/v1/subscriptions/sub-1/licenses",
                   R"({"expires_at":"2030-01-01T00:00:00Z"})");
  EXPECT_API_ERROR(late, 409, "invalid_expires_at");
  EXPECT_EQ(published().size(), 2u);
}

TEST_F(http_api, issue_license_times_out_when_nothing_is_committed) {
  actor_running_ = false; // published, but no actor applies it
  auto d = dependencies();
  d.write_timeout = std::chrono::milliseconds{300};
  start(d);
  auto started = std::chrono::steady_clock::now();
  auto res = post("/v1/subscriptions/sub-1/licenses", "{}");
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_GE(waited, std::chrono::milliseconds{300});
  EXPECT_LT(waited, std::chrono::milliseconds{5000});
  auto records = published();
  ASSERT_EQ(records.size(), 1u);
  // The message names the command so that the caller can find its result.
  auto id = json::parse(records[0].value)["id"].get<std::string>();
  EXPECT_NE(parse(res)["error"]["message"].get<std::string>().find(id),
            std::string::npos);
}

TEST_F(http_api, issue_license_validates_before_publishing) {
  auto path = std::string{"/v1/subscriptions/sub-1/licenses"};
  for (auto bad : {"not json", "[]", "42", R"({"features":"sso"})",
                   R"({"features":[1]})", R"({"expires_at":"tomorrow"})",
                   R"({"expires_at":5})", R"({"subscription_id":"sub-2"})"})
    EXPECT_API_ERROR(post(path, bad), 400, "bad_request");
  // Read by the decoder's rules, as the command's record will be: a member
  // given twice (nlohmann kept the last) and nesting without bound (its
  // message spoke of a "record value").
  auto twice = post(path, R"({"features":["geo"],"features":[]})");
  EXPECT_API_ERROR(twice, 400, "bad_request");
  EXPECT_EQ(parse(twice)["error"]["message"],
            "features: appears more than once in its object");
  auto deep = post(path, R"({"metadata":)" + std::string(3000, '[')
                           + std::string(3000, ']') + "}");
  EXPECT_API_ERROR(deep, 400, "bad_request");
  EXPECT_EQ(parse(deep)["error"]["message"].get<std::string>().rfind(
              "the body is not valid JSON (", 0),
            0u)
    << parse(deep)["error"]["message"];
  auto verify_twice = post("/v1/licenses/verify",
                           R"({"license_key":"a","license_key":"b"})");
  EXPECT_API_ERROR(verify_twice, 400, "bad_request");
  EXPECT_EQ(parse(verify_twice)["error"]["message"],
            "license_key: appears more than once in its object");
  EXPECT_API_ERROR(post("/v1/subscriptions/sub-none/licenses", "{}"), 404,
                   "not_found");
  // Before create: 404 at once, without a round trip.
  EXPECT_API_ERROR(post("/v1/subscriptions/sub-early/licenses", "{}"), 404,
                   "not_found");
  EXPECT_TRUE(published().empty());
  // Publishing fails: 503, nothing waited for.
  auto d = dependencies();
  d.publish = [](const std::string&, const std::string&,
                 const std::string&) -> caf::expected<void> {
    return make_error(service_errc::kafka_failure, "broker down");
  };
  start(d);
  auto res = post(path, "{}");
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_EQ(parse(res)["error"]["message"],
            "cannot publish the command to Kafka");
  // Queued but not acknowledged in time: the record may still be written
  // (a paused broker wrote it later, and the license was issued after a 503
  // that said it was not published).
  d.publish = [](const std::string&, const std::string&,
                 const std::string&) -> caf::expected<void> {
    return make_error(service_errc::timeout, "Kafka did not acknowledge");
  };
  start(d);
  res = post(path, "{}");
  EXPECT_API_ERROR(res, 503, "not_ready");
  auto message = parse(res)["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("may still be applied"), std::string::npos) << message;
  EXPECT_NE(message.find("a request with an Idempotency-Key can be repeated"),
            std::string::npos)
    << message;
  res = post_with_key(path, "{}", "order-1");
  EXPECT_API_ERROR(res, 503, "not_ready");
  message = parse(res)["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("repeat the request with the same Idempotency-Key"),
            std::string::npos)
    << message;
}

TEST_F(http_api, a_key_first_used_before_the_source_changed_is_found) {
  // Until the twentieth session the API published its commands under
  // `<source>-http`; the same Idempotency-Key sent again after an upgrade
  // (or to an upgraded replica during a rolling one) would not have found
  // the license that command issued, and would have issued a second one.
  const std::string key = "order-before-upgrade";
  command(ref("seatledger-http",
              domain::derived_id({"idempotency-key", "sub-1", key}),
              messages::event_types::license_issue, "2026-03-01T00:00:00Z"),
          domain::issue_license{"sub-1", {}, {}});
  auto licenses = parse(get("/v1/subscriptions/sub-1/licenses"))["licenses"];
  ASSERT_EQ(licenses.size(), 2u) << licenses;
  auto before = published().size();
  auto res = post_with_key("/v1/subscriptions/sub-1/licenses", "{}", key);
  EXPECT_STATUS(res, 201);
  EXPECT_EQ(parse(res)["license_id"], licenses[0]["license_id"]);
  EXPECT_EQ(published().size(), before) << "a second command was published";
}

TEST_F(http_api, a_parameter_repeated_with_the_same_value_is_refused) {
  // httplib drops a pair repeated verbatim, so `?limit=5&limit=5` passed
  // the check that refuses `?limit=5&limit=7`.
  for (const auto* target :
       {"/v1/subscriptions/sub-1/ledger?limit=5&limit=5",
        "/v1/subscriptions/sub-1/usage?format=csv&format=csv",
        "/v1/subscriptions/sub-1/ledger?limit=5&limit=7"}) {
    auto res = get(target);
    EXPECT_API_ERROR(res, 400, "bad_request");
    EXPECT_EQ(parse(res)["error"]["message"],
              std::string{target}.find("usage") == std::string::npos
                ? "limit is given more than once"
                : "format is given more than once")
      << target;
  }
  // Empty pairs are nothing; a name is decoded before it is compared.
  EXPECT_STATUS(get("/v1/subscriptions/sub-1/ledger?&limit=5&"), 200);
  EXPECT_STATUS(get("/v1/subscriptions/sub-1/ledger?%6cimit=5"), 200);
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/ledger?=5"), 400,
                   "bad_request");
}

// -- failures and logs --------------------------------------------------------

TEST_F(http_api, unreachable_postgresql_is_503) {
  auto d = dependencies();
  d.make_store = [] {
    return std::make_unique<storage::pg_store>(
      "host=/nonexistent-seatledger-socket-dir port=1 connect_timeout=2");
  };
  start(d);
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1"), 503, "not_ready");
  EXPECT_API_ERROR(get("/v1/subscriptions/sub-1/ledger"), 503, "not_ready");
  // Liveness does not depend on it.
  EXPECT_STATUS(get("/healthz", nullptr), 200);
}

namespace {

/// A TCP connection to the server on loopback, for requests httplib's client
/// would not send as they are; -1 when it cannot connect.
int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address)
      != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Reads one answer from `fd`: its headers and as many body bytes as its
/// Content-Length, or what arrived before the socket's timeout or end.
std::string read_answer(int fd) {
  std::string answer;
  char chunk[4096];
  for (;;) {
    auto n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0)
      break;
    answer.append(chunk, static_cast<std::size_t>(n));
    auto end_of_headers = answer.find("\r\n\r\n");
    auto length_at = answer.find("Content-Length: ");
    if (end_of_headers != std::string::npos && length_at != std::string::npos
        && answer.size()
             >= end_of_headers + 4 + std::stoul(answer.substr(length_at + 16)))
      break;
  }
  return answer;
}

/// Sends each request as it is on one connection, each after the answer
/// to the one before (httplib 0.11 drops requests sent ahead), and returns
/// the answers, waiting at most `wait` for each.
std::vector<std::string> exchange_in_turn(int port,
                                          std::vector<std::string> requests,
                                          std::chrono::milliseconds wait) {
  std::vector<std::string> answers;
  int fd = connect_loopback(port);
  if (fd < 0)
    return answers;
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(wait.count() / 1000);
  timeout.tv_usec = static_cast<suseconds_t>(wait.count() % 1000 * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  for (const auto& request : requests) {
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL)
        != static_cast<ssize_t>(request.size()))
      break;
    answers.push_back(read_answer(fd));
  }
  ::close(fd);
  return answers;
}

/// Sends `request` as it is and returns what arrives within `wait` (until
/// the answer's headers and as many body bytes as its Content-Length).
std::string exchange_raw(int port, std::string_view request,
                         std::chrono::milliseconds wait) {
  auto answers = exchange_in_turn(port, {std::string{request}}, wait);
  return answers.empty() ? std::string{} : answers.front();
}

} // namespace

TEST_F(http_api, a_request_without_a_length_has_an_empty_body) {
  // No Content-Length and no chunked encoding means no body: answered at
  // once. httplib read such a POST until the client closed, so curl -X POST
  // waited 10 s for a 400 "malformed request".
  auto request = [](const std::string& method, const std::string& path) {
    return method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n"
           + "Authorization: Bearer " + admin_token + "\r\n\r\n";
  };
  auto answer_of = [&](const std::string& method, const std::string& path) {
    auto started = std::chrono::steady_clock::now();
    auto answer = exchange_raw(server_->port(), request(method, path),
                               std::chrono::milliseconds{3000});
    EXPECT_LT(std::chrono::steady_clock::now() - started,
              std::chrono::seconds{2})
      << method << " " << path;
    return answer;
  };
  auto post_to_get_only = answer_of("POST", "/v1/subscriptions/sub-1");
  EXPECT_EQ(post_to_get_only.rfind("HTTP/1.1 405", 0), 0u) << post_to_get_only;
  EXPECT_NE(post_to_get_only.find("\"method_not_allowed\""), std::string::npos);
  auto delete_answer = answer_of("DELETE", "/v1/subscriptions/sub-1");
  EXPECT_EQ(delete_answer.rfind("HTTP/1.1 405", 0), 0u) << delete_answer;
  // A route that takes a body says what is wrong with the empty one.
  auto empty_verify = answer_of("POST", "/v1/licenses/verify");
  EXPECT_EQ(empty_verify.rfind("HTTP/1.1 400", 0), 0u) << empty_verify;
  EXPECT_EQ(empty_verify.find("malformed request"), std::string::npos)
    << empty_verify;
}

TEST_F(http_api, an_absolute_form_target_is_answered_like_its_path) {
  // RFC 9112 3.2.2: a server must accept the absolute form; every such
  // request was a 404.
  auto answer = exchange_raw(
    server_->port(),
    "GET http://localhost:" + std::to_string(server_->port())
      + "/v1/orgs/org-a HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
        "Bearer "
      + std::string{read_token} + "\r\n\r\n",
    std::chrono::milliseconds{3000});
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find(R"("org_id":"org-a")"), std::string::npos) << answer;
}

TEST_F(http_api, a_body_of_unknown_length_is_refused) {
  // httplib took the first of two different lengths, and `abc` as no body
  // (RFC 9112 6.3: an invalid length is an unrecoverable error, a 400).
  auto verify_with = [&](const std::string& framing) {
    auto body = std::string{R"({"license_key":"x"})"};
    return exchange_raw(server_->port(),
                        "POST /v1/licenses/verify HTTP/1.1\r\nHost: "
                        "localhost\r\nAuthorization: Bearer "
                          + std::string{read_token} + "\r\n" + framing + "\r\n"
                          + body,
                        std::chrono::milliseconds{3000});
  };
  const auto length
    = std::to_string(std::string{R"({"license_key":"x"})"}.size());
  for (const auto& [framing, says] :
       std::vector<std::pair<std::string, std::string>>{
         {"Content-Length: 2\r\nContent-Length: " + length + "\r\n",
          "different values"},
         {"Content-Length: abc\r\n", "not a number"},
         {"Content-Length: -1\r\n", "not a number"},
         {"Content-Length: " + length + "\r\nTransfer-Encoding: chunked\r\n",
          "Transfer-Encoding"}}) {
    auto answer = verify_with(framing);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << framing << answer;
    EXPECT_NE(answer.find("\"bad_request\""), std::string::npos) << answer;
    EXPECT_NE(answer.find(says), std::string::npos) << answer;
  }
  // The same length twice is one length.
  auto answer = verify_with("Content-Length: " + length
                            + "\r\nContent-Length: " + length + "\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
}

// httplib 0.11 limits a body by its Content-Length only: a chunked body
// and a compressed one once inflated were read whole, whatever their size,
// before the token was looked at (a client without one could fill the
// replica's memory); a transfer coding it does not know was read until the
// client closed; a body on GET was not read at all, and its bytes were
// taken for the next request; a form-encoded body over 8 KiB got 413.
TEST_F(http_api, bodies_are_limited_however_they_are_framed) {
  const std::string token = "Authorization: Bearer " + std::string{read_token}
                            + "\r\n";
  const std::string get_org
    = "GET /v1/orgs/org-a HTTP/1.1\r\nHost: localhost\r\n" + token + "\r\n";
  auto post_request = [](const std::string& headers, const std::string& body) {
    return "POST /v1/licenses/verify HTTP/1.1\r\nHost: localhost\r\n" + headers
           + "\r\n" + body;
  };
  // The answer to a POST, and to a GET sent after it on the same
  // connection: the connection still reads requests from their start.
  auto post_then_get = [&](const std::string& headers,
                           const std::string& body) {
    auto answers = exchange_in_turn(server_->port(),
                                    {post_request(headers, body), get_org},
                                    std::chrono::milliseconds{5000});
    answers.resize(2);
    return answers;
  };
  auto post = [&](const std::string& headers, const std::string& body) {
    return exchange_raw(server_->port(), post_request(headers, body),
                        std::chrono::milliseconds{5000});
  };
  auto chunked = [](const std::string& body) {
    std::ostringstream out;
    for (std::size_t at = 0; at < body.size(); at += 4096) {
      auto part = body.substr(at, 4096);
      out << std::hex << part.size() << "\r\n" << part << "\r\n";
    }
    out << "0\r\n\r\n";
    return out.str();
  };
  // Over the limit, chunked, without a token: refused for its size (it was
  // read whole, then answered 401), and the rest of it dropped.
  auto answers = post_then_get("Transfer-Encoding: chunked\r\n",
                               chunked(std::string(70 * 1024, ' ')));
  EXPECT_EQ(answers[0].rfind("HTTP/1.1 413", 0), 0u)
    << answers[0].substr(0, 300);
  EXPECT_NE(answers[0].find("\"payload_too_large\""), std::string::npos)
    << answers[0];
  EXPECT_EQ(answers[1].rfind("HTTP/1.1 200", 0), 0u) << answers[1];
  // Within it, chunked is read as any body.
  auto verify_body = std::string{R"({"license_key":"x"})"};
  auto answer = post(token + "Transfer-Encoding: chunked\r\n",
                     chunked(verify_body));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"valid\":false"), std::string::npos) << answer;
  // A gzip body of 1 KiB that inflates to 1 MiB.
  std::string gzipped;
  {
    auto* pipe = popen("head -c 1048576 /dev/zero | tr '\\0' ' ' | gzip -9 -c",
                       "r");
    ASSERT_NE(pipe, nullptr);
    char buffer[4096];
    for (std::size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;)
      gzipped.append(buffer, n);
    ASSERT_EQ(pclose(pipe), 0);
    ASSERT_LT(gzipped.size(), 8'192u);
  }
  answers = post_then_get("Content-Encoding: gzip\r\nContent-Length: "
                            + std::to_string(gzipped.size()) + "\r\n",
                          gzipped);
  EXPECT_EQ(answers[0].rfind("HTTP/1.1 413", 0), 0u) << answers[0];
  EXPECT_EQ(answers[1].rfind("HTTP/1.1 200", 0), 0u) << answers[1];
  // A transfer coding other than chunked; chunked twice.
  answer = post(token + "Transfer-Encoding: gzip\r\n", verify_body);
  EXPECT_EQ(answer.rfind("HTTP/1.1 501", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"not_implemented\""), std::string::npos) << answer;
  answer = post(token
                  + "Transfer-Encoding: chunked\r\nTransfer-Encoding: "
                    "chunked\r\n",
                chunked(verify_body));
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("more than once"), std::string::npos) << answer;
  // A form-encoded body (curl -d's default type) of 9 KiB is read as JSON.
  auto long_key = std::string{R"({"license_key":")"}
                  + std::string(9 * 1024, 'k') + "\"}";
  answer = post(token
                  + "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: "
                  + std::to_string(long_key.size()) + "\r\n",
                long_key);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  // A multipart body (curl -F) was a 500.
  std::string multipart = "--XX\r\nContent-Disposition: form-data; "
                          "name=\"license_key\"\r\n\r\nx\r\n--XX--\r\n";
  answers = post_then_get(
    token + "Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: "
      + std::to_string(multipart.size()) + "\r\n",
    multipart);
  EXPECT_EQ(answers[0].rfind("HTTP/1.1 400", 0), 0u) << answers[0];
  EXPECT_NE(answers[0].find("multipart"), std::string::npos) << answers[0];
  EXPECT_EQ(answers[1].rfind("HTTP/1.1 200", 0), 0u) << answers[1];
  // A body httplib would not read (on GET; chunked on DELETE) is refused:
  // its bytes were read as the next request.
  auto get_with = [&](const std::string& framing, const std::string& body) {
    return exchange_raw(server_->port(),
                        "GET /v1/orgs/org-a HTTP/1.1\r\nHost: localhost\r\n"
                          + token + framing + "\r\n" + body,
                        std::chrono::milliseconds{3000});
  };
  answer = get_with("Content-Length: 2\r\n", "{}");
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("takes no body"), std::string::npos) << answer;
  answer = get_with("Content-Length: 0\r\n", "");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  answer = exchange_raw(server_->port(),
                        "DELETE /v1/orgs/org-a HTTP/1.1\r\nHost: localhost\r\n"
                          + token + "Transfer-Encoding: chunked\r\n\r\n"
                          + chunked(verify_body),
                        std::chrono::milliseconds{3000});
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("takes no chunked body"), std::string::npos) << answer;
  // A request line httplib cannot parse.
  answer = exchange_raw(server_->port(), "NOT HTTP\r\n\r\n",
                        std::chrono::milliseconds{3000});
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  // Each refusal is counted, under the route the request would have taken:
  // none was, as none reached the dispatcher.
  auto metrics = get("/metrics", nullptr);
  EXPECT_STATUS(metrics, 200);
  for (const auto* line : {
         "seatledger_http_requests_total{code=\"413\","
         "route=\"/v1/licenses/verify\"} 2\n",
         "seatledger_http_requests_total{code=\"501\","
         "route=\"/v1/licenses/verify\"} 1\n",
         "seatledger_http_requests_total{code=\"400\","
         "route=\"/v1/licenses/verify\"} 2\n",
         "seatledger_http_requests_total{code=\"400\","
         "route=\"/v1/orgs/{org_id}\"} 1\n",
         "seatledger_http_requests_total{code=\"400\",route=\"unmatched\"} 2\n",
       })
    EXPECT_NE(metrics->body.find(line), std::string::npos)
      << line << metrics->body;
}

TEST_F(http_api, stalled_connections_leave_the_api_answering) {
  // Connections that send nothing, or half a request, each hold one of
  // httplib's connection threads until the read timeout (10 s): with as
  // many of them as the old pool had threads, nothing was answered.
  std::vector<int> stalled;
  for (int i = 0; i < 24; ++i) {
    int fd = connect_loopback(server_->port());
    ASSERT_GE(fd, 0);
    if (i % 2 == 1) {
      std::string_view partial = "GET /v1/subscriptions/sub-1 HTTP/1.1\r\nHo";
      ASSERT_EQ(::send(fd, partial.data(), partial.size(), 0),
                static_cast<ssize_t>(partial.size()));
    }
    stalled.push_back(fd);
  }
  // Let the listener accept them all and hand them to threads.
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  httplib::Client quick{"127.0.0.1", server_->port()};
  quick.set_connection_timeout(std::chrono::seconds{2});
  quick.set_read_timeout(std::chrono::seconds{2});
  auto started = std::chrono::steady_clock::now();
  EXPECT_STATUS(quick.Get("/healthz"), 200);
  EXPECT_STATUS(quick.Get("/v1/subscriptions/sub-1", auth(read_token)), 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::seconds{2});
  for (int fd : stalled)
    ::close(fd);
}

TEST_F(http_api, database_connections_are_bounded_and_a_full_pool_is_busy) {
  std::atomic<int> made{0};
  std::mutex gate_mutex;
  std::condition_variable gate_cv;
  bool gate_open = true;
  auto d = dependencies();
  auto info = conninfo();
  d.max_stores = 2;
  d.store_wait = std::chrono::milliseconds{300};
  d.make_store = [&, info] {
    ++made;
    std::unique_lock<std::mutex> guard{gate_mutex};
    gate_cv.wait(guard, [&] { return gate_open; });
    return std::make_unique<storage::pg_store>(info);
  };
  start(d);
  // Many concurrent readers share the two connections (each waits its turn
  // well inside store_wait).
  std::vector<std::thread> readers;
  std::atomic<int> answered{0};
  for (int i = 0; i < 12; ++i)
    readers.emplace_back([&] {
      httplib::Client c{"127.0.0.1", server_->port()};
      c.set_read_timeout(std::chrono::seconds{20});
      for (int n = 0; n < 5; ++n) {
        auto res = c.Get("/v1/subscriptions/sub-1/ledger?limit=3",
                         auth(read_token));
        if (res && res->status == 200)
          ++answered;
      }
    });
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(answered.load(), 60);
  EXPECT_LE(made.load(), 2);
  EXPECT_GE(made.load(), 1);

  // Both connections lent (the factory is held while connecting a third
  // would be needed): the next request waits store_wait, then is 503 busy.
  start(d);
  made = 0;
  {
    std::lock_guard<std::mutex> guard{gate_mutex};
    gate_open = false;
  }
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i)
    holders.emplace_back([&] {
      httplib::Client c{"127.0.0.1", server_->port()};
      c.set_read_timeout(std::chrono::seconds{20});
      EXPECT_STATUS(c.Get("/v1/subscriptions/sub-1", auth(read_token)), 200);
    });
  auto limit = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  while (made.load() < 2 && std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  ASSERT_EQ(made.load(), 2);
  auto res = get("/v1/subscriptions/sub-1");
  EXPECT_API_ERROR(res, 503, "busy");
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  // Liveness needs no database connection.
  EXPECT_STATUS(get("/healthz", nullptr), 200);
  {
    std::lock_guard<std::mutex> guard{gate_mutex};
    gate_open = true;
  }
  gate_cv.notify_all();
  for (auto& t : holders)
    t.join();
  EXPECT_STATUS(get("/v1/subscriptions/sub-1"), 200);
  EXPECT_EQ(made.load(), 2);
}

// A waiting license request borrows a connection for each look at its
// result. With every connection held by queries that do not end, a look
// waited the pool's whole store_wait (here 3 s) before giving up, so the
// request answered far past its own deadline (300 ms).
TEST_F(http_api, issue_license_answers_at_its_deadline_while_the_pool_is_held) {
  actor_running_ = false; // published, but no actor applies it
  auto d = dependencies();
  d.max_stores = 1;
  d.store_wait = std::chrono::milliseconds{3000};
  d.write_timeout = std::chrono::milliseconds{300};
  pqxx::connection locker{conninfo()};
  pqxx::work lock_tx{locker};
  std::thread holder;
  std::chrono::steady_clock::time_point published_at;
  auto port = std::make_shared<int>(0);
  auto publish = d.publish;
  d.publish = [&, publish, port](const std::string& topic,
                                 const std::string& key,
                                 const std::string& value) {
    auto ok = publish(topic, key, value);
    // The pool's only connection, taken by a read that waits for a lock.
    lock_tx.exec0("LOCK TABLE seatledger.subscriptions IN ACCESS EXCLUSIVE "
                  "MODE");
    holder = std::thread([port] {
      httplib::Client c{"127.0.0.1", *port};
      c.set_read_timeout(std::chrono::seconds{30});
      EXPECT_STATUS(c.Get("/v1/subscriptions/sub-1", auth(read_token)), 200);
    });
    pqxx::connection probe{conninfo()};
    auto limit = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    auto waiting = 0;
    while (waiting == 0 && std::chrono::steady_clock::now() < limit) {
      pqxx::nontransaction tx{probe};
      // This test's database only: under `ctest -j` other tests' sessions
      // wait for locks in the same cluster.
      waiting = tx.exec1("SELECT count(*) FROM pg_stat_activity "
                         "WHERE wait_event_type = 'Lock' "
                         "AND datname = current_database()")[0]
                  .as<int>();
      if (waiting == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    EXPECT_EQ(waiting, 1) << "the holder's read never waited for the lock";
    published_at = std::chrono::steady_clock::now();
    return ok;
  };
  start(d);
  *port = server_->port();
  auto res = post("/v1/subscriptions/sub-1/licenses", "{}");
  auto answered_at = std::chrono::steady_clock::now();
  EXPECT_API_ERROR(res, 503, "not_ready");
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(
              answered_at - published_at)
              .count(),
            1500);
  lock_tx.abort();
  if (holder.joinable())
    holder.join();
}

TEST_F(http_api, access_log_is_json_lines_without_secrets) {
  auto sub1 = parse(get("/v1/subscriptions/sub-1/licenses"))["licenses"][0];
  auto license_key = sub1["license_key"].get<std::string>();
  auto level = log::current_level();
  log::set_level(log::level::debug);
  testing::internal::CaptureStderr();
  EXPECT_STATUS(get("/v1/subscriptions/sub-1/ledger?limit=2"), 200);
  EXPECT_STATUS(post("/v1/licenses/verify",
                     json{{"license_key", license_key}}.dump(), read_token),
                200);
  EXPECT_STATUS(post("/v1/subscriptions/sub-1/licenses", "{}"), 201);
  EXPECT_STATUS(get("/v1/subscriptions/sub-1", "wrong-secret-token"), 401);
  auto logged = testing::internal::GetCapturedStderr();
  log::set_level(level);
  EXPECT_EQ(logged.find(read_token), std::string::npos) << logged;
  EXPECT_EQ(logged.find(admin_token), std::string::npos) << logged;
  EXPECT_EQ(logged.find("wrong-secret-token"), std::string::npos) << logged;
  EXPECT_EQ(logged.find(license_key), std::string::npos) << logged;
  EXPECT_EQ(logged.find("v4.public."), std::string::npos) << logged;
  int requests = 0;
  std::istringstream lines{logged};
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line;
    if (j.value("message", "") == "http request") {
      ++requests;
      EXPECT_TRUE(j.contains("status")) << line;
      EXPECT_TRUE(j.contains("duration_ms")) << line;
      EXPECT_EQ(j["path"].get<std::string>().find('?'), std::string::npos);
    }
  }
  EXPECT_EQ(requests, 4) << logged;
}
