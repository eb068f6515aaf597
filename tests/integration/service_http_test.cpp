// The HTTP API of http.md through the running service (issue 5): every
// endpoint but the catalog's answers its happy path and its error statuses
// once, with the data the service itself committed from Kafka. The adapter
// tests (http_api_test.cpp) cover the details of each answer; this checks
// the wiring: tokens from the command line, PostgreSQL, the signing key,
// readiness, metrics, and the write path through Kafka.

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <gtest/gtest.h>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "paseto/license_verifier.hpp"
#include "paseto/signed_json.hpp"
#include "paseto/trusted_keys.hpp"
#include "service_fixture.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;
using json = nlohmann::json;

constexpr const char* sub = "sub-http";
constexpr const char* org = "org-http";
constexpr const char* plan = "premium-saas-annual";

std::string membership(const std::string& type, const std::string& id,
                       const json& data, const std::string& time) {
  return cloud_event("seatledger." + type, id, time, data, "test-portal");
}

class service_http : public ::testing::Test {
protected:
  void SetUp() override {
    service_ = std::make_unique<running_service>();
    service_->publish(catalog_topic, plan,
                      rate_plan_event(plan, "Premium", {"sso"}, "plan-1"));
    database_probe db{service_->conninfo()};
    ASSERT_TRUE(wait_until(
      [&] {
        return db.scalar("SELECT count(*) FROM seatledger.catalog_rate_plans")
               == 1;
      },
      seconds{60}));
    // A subscription whose first month is over, an org linked to it with
    // two billable members and a guest.
    term_start_ = rfc3339_from_now(-hours{24 * 40});
    service_->publish(subscriptions_topic, sub,
                      cloud_event("seatledger.subscription.create",
                                  "create-http",
                                  rfc3339_from_now(-hours{24 * 40}),
                                  create_data(sub, plan, 1, term_start_,
                                              rfc3339_from_now(hours{24 * 325}),
                                              "http.example")));
    auto t = rfc3339_from_now(-minutes{10});
    service_->publish(membership_topic, org,
                      membership("org.linked", "link-1",
                                 {{"org_id", org}, {"subscription_id", sub}},
                                 t));
    for (const auto* user : {"alice", "bob"})
      service_->publish(
        membership_topic, org,
        membership("member.added", std::string{"add-"} + user,
                   {{"org_id", org}, {"user_id", user}, {"billable", true}},
                   t));
    service_->publish(
      membership_topic, org,
      membership("member.added", "add-carol",
                 {{"org_id", org}, {"user_id", "carol"}, {"billable", false}},
                 t));
    service_->wait_for(sub, "seatledger.seats.changed", 2);
    auto issued = service_->wait_for(sub, "seatledger.license.issued");
    ASSERT_FALSE(issued.empty());
    license_id_ = issued[0]["data"]["license_id"].get<std::string>();
    license_key_ = issued[0]["data"]["license_key"].get<std::string>();
    ASSERT_TRUE(wait_until([&] { return db.settled(5); }, seconds{60}));
  }

  void TearDown() override {
    service_.reset();
  }

  /// /readyz answers 503 with `reason` once `begin` started an outage
  /// (liveness stays 200), and 200 again after `end` (which runs however
  /// the checks went).
  void expect_not_ready_during(const std::function<void()>& begin,
                               const std::function<void()>& end,
                               const std::string& reason) {
    auto& s = *service_;
    expect(s.get("/readyz", nullptr), 200);
    begin();
    struct ended {
      const std::function<void()>& end;
      bool done = false;
      void operator()() {
        if (!done)
          end();
        done = true;
      }
      ~ended() {
        (*this)();
      }
    } outage_over{end};
    auto res = s.get("/readyz", nullptr);
    auto readyz_turns = [&](int status, seconds within) {
      EXPECT_TRUE(wait_until(
        [&] {
          res = s.get("/readyz", nullptr);
          return res && res->status == status;
        },
        within, milliseconds{200}))
        << describe_answer(res);
    };
    readyz_turns(503, seconds{30});
    if (res && res->status == 503) {
      EXPECT_EQ(body_of(res)["error"]["message"], reason) << res->body;
    }
    expect(s.get("/healthz", nullptr), 200);
    outage_over();
    readyz_turns(200, seconds{60});
  }

  /// Expects `status` (and the error code for an error).
  void expect(const httplib::Result& res, int status,
              const std::string& code = {}) {
    ASSERT_TRUE(res) << describe_answer(res);
    EXPECT_EQ(res->status, status) << res->body;
    if (!code.empty()) {
      EXPECT_EQ(error_code_of(res), code) << res->body;
    }
    if (status >= 400) {
      auto body = json::parse(res->body, nullptr, false);
      EXPECT_TRUE(body.is_object() && body["error"]["message"].is_string())
        << res->body;
    }
  }

  json body_of(const httplib::Result& res) {
    return res ? json::parse(res->body, nullptr, false) : json{};
  }

  std::unique_ptr<running_service> service_;
  std::string term_start_;
  std::string license_id_;
  std::string license_key_;
};

TEST_F(service_http, every_endpoint_answers_its_happy_path_and_errors) {
  auto& s = *service_;
  const std::string base = std::string{"/v1/subscriptions/"} + sub;

  // Open endpoints.
  expect(s.get("/healthz", nullptr), 200);
  expect(s.get("/readyz", nullptr), 200);

  // Authentication: no token, a wrong one, a read token on the admin
  // endpoint.
  auto res = s.get(base, nullptr);
  expect(res, 401, "unauthorized");
  EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer");
  expect(s.get(base, "not-a-configured-token-at-all"), 401, "unauthorized");
  expect(s.post(base + "/licenses", "{}", service_read_token), 403,
         "forbidden");
  expect(s.post(base + "/licenses", "{}", nullptr), 401, "unauthorized");

  // The subscription.
  res = s.get(base);
  expect(res, 200);
  auto state = body_of(res);
  EXPECT_EQ(state["status"], "active");
  EXPECT_EQ(state["seats"], 1);
  EXPECT_EQ(state["seats_in_use"], 2);
  EXPECT_EQ(state["max_seats_used"], 2);
  EXPECT_EQ(state["seats_owed"], 1);
  EXPECT_EQ(state["orgs"], (json{org}));
  EXPECT_EQ(state["plan_id"], plan);
  // The admin token reads too.
  expect(s.get(base, service_admin_token), 200);
  expect(s.get("/v1/subscriptions/no-such-sub"), 404, "not_found");

  // Usage: JSON, CSV, the signed export; bad parameters.
  res = s.get(base + "/usage");
  expect(res, 200);
  auto usage = body_of(res);
  ASSERT_GE(usage["months"].size(), 2u) << res->body;
  EXPECT_EQ(usage["months"][0]["complete"], true);
  EXPECT_EQ(usage["months"][1]["peak_seats"], 2);
  res = s.get(base + "/usage?format=csv");
  expect(res, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/csv", 0), 0u);
  EXPECT_EQ(res->body.rfind("month,start,end,peak_seats", 0), 0u) << res->body;
  res = s.get(base + "/usage?export=1");
  expect(res, 200);
  paseto::trusted_keys keys;
  ASSERT_TRUE(keys.add_pem_file(s.public_key_file()));
  EXPECT_TRUE(paseto::verify_json_document(keys, res->body)) << res->body;
  EXPECT_EQ(body_of(res)["months"].size(), 1u) << "complete months only";
  res = s.get(base + "/usage?term_start=" + term_start_);
  expect(res, 200);
  expect(s.get(base + "/usage?term_start=yesterday"), 400, "bad_request");
  expect(s.get(base + "/usage?term_start=2001-01-01T00:00:00Z"), 404,
         "not_found");
  expect(s.get(base + "/usage?format=xml"), 400, "bad_request");
  expect(s.get("/v1/subscriptions/no-such-sub/usage"), 404, "not_found");

  // Seats at an instant.
  res = s.get(base + "/seats?at=" + rfc3339_from_now(seconds{0}));
  expect(res, 200);
  EXPECT_EQ(body_of(res)["seats_in_use"], 2);
  res = s.get(base + "/seats?at=" + rfc3339_from_now(-hours{1}));
  expect(res, 200);
  EXPECT_EQ(body_of(res)["seats_in_use"], 0);
  expect(s.get(base + "/seats?at=2026-13-45T99:00:00Z"), 400, "bad_request");
  expect(s.get(base + "/seats?at=now"), 400, "bad_request");
  expect(s.get(base + "/seats"), 400, "bad_request");
  expect(s.get("/v1/subscriptions/no-such-sub/seats?at=2026-01-01T00:00:00Z"),
         404, "not_found");

  // Seat holders, paged.
  res = s.get(base + "/seats/holders?limit=1");
  expect(res, 200);
  auto holders = body_of(res);
  ASSERT_EQ(holders["holders"].size(), 1u) << res->body;
  EXPECT_EQ(holders["holders"][0]["user_id"], "alice");
  EXPECT_EQ(holders["holders"][0]["orgs"], (json{org}));
  EXPECT_EQ(holders["next_after"], "alice");
  res = s.get(base + "/seats/holders?after=alice");
  expect(res, 200);
  EXPECT_EQ(body_of(res)["holders"].size(), 1u);
  EXPECT_TRUE(body_of(res)["next_after"].is_null());
  expect(s.get(base + "/seats/holders?limit=0"), 400, "bad_request");
  expect(s.get(base + "/seats/holders?limit=1001"), 400, "bad_request");
  expect(s.get("/v1/subscriptions/no-such-sub/seats/holders"), 404,
         "not_found");

  // The ledger, paged.
  res = s.get(base + "/ledger?limit=1");
  expect(res, 200);
  auto page = body_of(res);
  ASSERT_EQ(page["entries"].size(), 1u) << res->body;
  EXPECT_EQ(page["entries"][0]["seq"], 1);
  EXPECT_EQ(page["entries"][0]["prev_hash"], std::string(64, '0'));
  EXPECT_EQ(page["next_after"], 1);
  res = s.get(base + "/ledger?after=1&limit=1000");
  expect(res, 200);
  EXPECT_EQ(body_of(res)["entries"].size(), 1u);
  EXPECT_EQ(body_of(res)["entries"][0]["prev_hash"],
            page["entries"][0]["hash"]);
  expect(s.get(base + "/ledger?limit=abc"), 400, "bad_request");
  expect(s.get(base + "/ledger?limit=-1"), 400, "bad_request");
  expect(s.get(base + "/ledger?after=x"), 400, "bad_request");
  expect(s.get("/v1/subscriptions/no-such-sub/ledger"), 404, "not_found");

  // Licenses of the subscription, one license, issuing one.
  res = s.get(base + "/licenses");
  expect(res, 200);
  ASSERT_EQ(body_of(res)["licenses"].size(), 1u) << res->body;
  EXPECT_EQ(body_of(res)["licenses"][0]["license_id"], license_id_);
  expect(s.get("/v1/subscriptions/no-such-sub/licenses"), 404, "not_found");
  res = s.get("/v1/licenses/" + license_id_);
  expect(res, 200);
  EXPECT_EQ(body_of(res)["license_key"], license_key_);
  EXPECT_EQ(body_of(res)["status"], "valid");
  expect(s.get("/v1/licenses/no-such-license"), 404, "not_found");
  res = s.post(base + "/licenses", "{}");
  expect(res, 201);
  EXPECT_EQ(body_of(res)["subscription_id"], sub);
  expect(s.post(base + "/licenses", "[1,2]"), 400, "bad_request");
  expect(s.post(base + "/licenses", R"({"features":"sso"})"), 400,
         "bad_request");
  expect(s.post("/v1/subscriptions/no-such-sub/licenses", "{}"), 404,
         "not_found");

  // Verification online (read scope), revocations.
  res = s.post("/v1/licenses/verify",
               json{{"license_key", license_key_}}.dump(), service_read_token);
  expect(res, 200);
  EXPECT_EQ(body_of(res)["valid"], true);
  EXPECT_TRUE(body_of(res)["reason"].is_null());
  EXPECT_EQ(body_of(res)["claims"]["jti"], license_id_);
  res = s.post("/v1/licenses/verify",
               json{{"license_key", "v4.public.x"}}.dump(), service_read_token);
  expect(res, 200);
  EXPECT_EQ(body_of(res)["valid"], false);
  EXPECT_EQ(body_of(res)["reason"], "bad_format");
  expect(s.post("/v1/licenses/verify", "not json", service_read_token), 400,
         "bad_request");
  expect(s.post("/v1/licenses/verify", "{}", nullptr), 401, "unauthorized");
  res = s.get("/v1/licenses/revocations");
  expect(res, 200);
  EXPECT_TRUE(paseto::verify_json_document(keys, res->body)) << res->body;
  EXPECT_TRUE(body_of(res)["revoked"].empty());

  // Orgs.
  res = s.get(std::string{"/v1/orgs/"} + org);
  expect(res, 200);
  EXPECT_EQ(body_of(res)["subscription_id"], sub);
  EXPECT_EQ(body_of(res)["members"], 3);
  EXPECT_EQ(body_of(res)["billable_members"], 2);
  expect(s.get("/v1/orgs/no-such-org"), 404, "not_found");

  // Methods and paths that do not exist.
  res = s.del(base);
  expect(res, 405, "method_not_allowed");
  EXPECT_NE(res->get_header_value("Allow").find("GET"), std::string::npos);
  expect(s.get("/v1/licenses/verify"), 405, "method_not_allowed");
  expect(s.post(base, "{}"), 405, "method_not_allowed");
  expect(s.get("/v1/no-such-thing"), 404, "not_found");
}

// An upstream event stamped far in the future would move the subscription's
// clock there for good (every later ledger entry at that time, every month
// of the term closed at once); it is a dead letter instead.
TEST_F(service_http, an_event_far_in_the_future_is_a_dead_letter) {
  auto& s = *service_;
  // The tests' services allow a century (synthetic histories); this one
  // the default hour.
  s.start({"--max-event-time-ahead", "1h"});
  s.publish(membership_topic, org,
            membership("member.added", "add-from-the-future",
                       {{"org_id", org}, {"user_id", "dave"}},
                       "2999-01-01T00:00:00Z"));
  s.publish(membership_topic, org,
            membership("member.added", "add-two-hours-ahead",
                       {{"org_id", org}, {"user_id", "frank"}},
                       rfc3339_from_now(hours{2})));
  // Within the allowed hour ahead: applied.
  s.publish(membership_topic, org,
            membership("member.added", "add-erin",
                       {{"org_id", org}, {"user_id", "erin"}},
                       rfc3339_from_now(minutes{30})));
  s.wait_for(sub, "seatledger.seats.changed", 3);
  std::vector<kafka::record> dlq;
  ASSERT_TRUE(wait_until(
    [&] {
      dlq = s.kafka().read_all("seatledger.dlq.v1");
      return dlq.size() >= 2;
    },
    seconds{60}))
    << s.log_tail();
  ASSERT_EQ(dlq.size(), 2u);
  for (const auto& r : dlq) {
    auto h = header_map(r);
    EXPECT_EQ(h["seatledger.error.code"], "time_in_future");
    EXPECT_NE(h["seatledger.error.message"].find("--max-event-time-ahead"),
              std::string::npos)
      << h["seatledger.error.message"];
  }
  auto first = header_map(dlq[0]);
  EXPECT_NE(first["seatledger.error.message"].find("2999-01-01T00:00:00Z"),
            std::string::npos)
    << first["seatledger.error.message"];
  auto holders = body_of(
    s.get(std::string{"/v1/subscriptions/"} + sub + "/seats/holders"));
  std::set<std::string> users;
  for (const auto& holder : holders["holders"])
    users.insert(holder["user_id"].get<std::string>());
  EXPECT_EQ(users, (std::set<std::string>{"alice", "bob", "erin"})) << holders;
  auto ledger
    = body_of(s.get(std::string{"/v1/subscriptions/"} + sub + "/ledger"));
  ASSERT_EQ(ledger["entries"].size(), 3u) << ledger;
  for (const auto& entry : ledger["entries"])
    EXPECT_LT(entry["effective_at"].get<std::string>(), "2027") << entry;
}

TEST_F(service_http, a_month_ending_while_the_replica_runs_is_closed_once) {
  // The sweeper's path: no record arrives after the month's end, so only
  // the replica's clock can close it. The term ends a few seconds from now,
  // which cuts its second month there (domain.md), whatever today's date.
  auto& s = *service_;
  s.start({"--month-close-grace", "2s", "--actor-idle-timeout", "1s"});
  const std::string swept = "sub-sweep";
  auto term_end_at = system_clock::now() + seconds{8};
  auto term_end = rfc3339_from_now(seconds{8});
  s.publish(subscriptions_topic, swept,
            cloud_event("seatledger.subscription.create", "create-sweep",
                        rfc3339_from_now(-seconds{1}),
                        create_data(swept, plan, 5,
                                    rfc3339_from_now(-hours{24 * 40}), term_end,
                                    "sweep.example")));
  s.publish(membership_topic, "org-sweep",
            membership("org.linked", "link-sweep",
                       {{"org_id", "org-sweep"}, {"subscription_id", swept}},
                       rfc3339_from_now(seconds{0})));
  s.publish(membership_topic, "org-sweep",
            membership("member.added", "add-dave",
                       {{"org_id", "org-sweep"}, {"user_id", "dave"}},
                       rfc3339_from_now(seconds{0})));
  s.wait_for(swept, "seatledger.seats.changed");
  // Month 1 was over when the subscription was created: closed at once.
  auto closed = s.wait_for(swept, "seatledger.usage.month_closed");
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0]["data"]["month_index"], 1) << closed[0];
  EXPECT_LT(system_clock::now(), term_end_at)
    << "the test was too slow to see month 2 open";

  closed = s.wait_for(swept, "seatledger.usage.month_closed", 2);
  EXPECT_GE(system_clock::now(), term_end_at) << "closed before its end";
  ASSERT_EQ(closed.size(), 2u);
  const auto& month2 = closed[1]["data"];
  EXPECT_EQ(month2["month_index"], 2) << closed[1];
  EXPECT_EQ(month2["end"], term_end) << closed[1];
  EXPECT_EQ(month2["peak_seats"], 1) << closed[1];
  // A term whose end passed without `expire` keeps its status.
  auto state = body_of(s.get("/v1/subscriptions/" + swept));
  EXPECT_EQ(state["status"], "active") << state;
  auto usage = body_of(s.get("/v1/subscriptions/" + swept + "/usage"));
  ASSERT_EQ(usage["months"].size(), 2u) << usage;
  EXPECT_EQ(usage["months"][1]["complete"], true) << usage;

  // Idle actors are passivated (1 s here), and a record for a passivated
  // subscription continues from its stored state.
  auto active = [&] {
    auto metrics = s.get("/metrics", nullptr);
    std::istringstream lines{metrics ? metrics->body : std::string{}};
    long total = 0;
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("seatledger_active_actors{", 0) == 0)
        total += std::stol(line.substr(line.rfind(' ') + 1));
    return total;
  };
  EXPECT_TRUE(wait_until([&] { return active() == 0; }, seconds{30}))
    << active() << " actors still active\n"
    << s.log_tail();
  s.publish(membership_topic, org,
            membership("member.added", "add-erin-after-rest",
                       {{"org_id", org}, {"user_id", "erin"}},
                       rfc3339_from_now(seconds{0})));
  auto changed = s.wait_for(sub, "seatledger.seats.changed", 3);
  ASSERT_EQ(changed.size(), 3u);
  EXPECT_EQ(changed[2]["data"]["seats_in_use"], 3) << changed[2];
  auto ledger
    = body_of(s.get(std::string{"/v1/subscriptions/"} + sub + "/ledger"));
  ASSERT_EQ(ledger["entries"].size(), 3u) << ledger;
  EXPECT_EQ(ledger["entries"][2]["seq"], 3) << ledger;
  EXPECT_EQ(ledger["entries"][2]["prev_hash"], ledger["entries"][1]["hash"]);

  // Nothing is closed twice, by this run or the next.
  std::this_thread::sleep_for(seconds{3});
  s.start({"--month-close-grace", "2s"});
  std::this_thread::sleep_for(seconds{3});
  std::vector<json> all_closes;
  for (auto& e : s.events_of(swept))
    if (e["type"] == "seatledger.usage.month_closed")
      all_closes.push_back(e);
  EXPECT_EQ(all_closes.size(), 2u) << ::testing::PrintToString(all_closes);
}

TEST_F(service_http,
       a_license_command_read_again_past_the_window_stalls_nothing) {
  // Past the de-duplication window a command read again is applied afresh.
  // A license-issuing one issued the same license id again, which every
  // commit of its batch refused: the partition stopped for good.
  auto& s = *service_;
  s.start({"--dedup-window", "2s"});
  auto issue = cloud_event("seatledger.license.issue", "issue-twice",
                           rfc3339_from_now(-seconds{5}),
                           {{"subscription_id", sub}});
  s.publish(subscriptions_topic, sub, issue);
  ASSERT_EQ(s.wait_for(sub, "seatledger.license.issued", 2).size(), 2u);
  // Forgotten: the window passes, and a start purges what is past it
  // before it takes its partitions. The start's fresh consumer group reads
  // the topics again from their start, so the command is applied afresh
  // then; it is sent once more below as well.
  std::this_thread::sleep_for(seconds{3});
  s.start({"--dedup-window", "2s"});
  ASSERT_NE(s.log_tail().find("forgot applied events past the "
                              "de-duplication window"),
            std::string::npos)
    << s.log_tail();
  s.publish(subscriptions_topic, sub, issue);
  s.publish(subscriptions_topic, sub,
            cloud_event("seatledger.subscription.update_metadata",
                        "metadata-after-reissue", rfc3339_from_now(seconds{0}),
                        {{"subscription_id", sub},
                         {"display_name", "After the re-issue"}}));
  EXPECT_FALSE(
    s.wait_for(sub, "seatledger.subscription.metadata_updated").empty())
    << s.log_tail();
  auto licenses = body_of(
    s.get(std::string{"/v1/subscriptions/"} + sub + "/licenses"))["licenses"];
  EXPECT_EQ(licenses.size(), 2u) << licenses;
  std::size_t issued = 0;
  for (const auto& e : s.events_of(sub))
    issued += e["type"] == "seatledger.license.issued" ? 1 : 0;
  EXPECT_EQ(issued, 2u);
  EXPECT_EQ(s.log_tail().find("batch not committed"), std::string::npos)
    << s.log_tail();
}

TEST_F(service_http, readyz_follows_postgres_while_idle) {
  // An idle replica made no call to PostgreSQL, so /readyz stayed 200
  // while the database refused every connection.
  auto& s = *service_;
  std::string database;
  {
    pqxx::connection own{s.conninfo()};
    pqxx::nontransaction tx{own};
    database = tx.exec1("SELECT current_database()")[0].as<std::string>();
  }
  pqxx::connection admin{"dbname=postgres"};
  auto allow = [&](bool on) {
    pqxx::nontransaction tx{admin};
    tx.exec("ALTER DATABASE " + tx.quote_name(database)
            + (on ? " ALLOW_CONNECTIONS true" : " ALLOW_CONNECTIONS false"));
    if (!on)
      tx.exec_params("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = $1 AND pid <> pg_backend_pid()",
                     database);
  };
  expect_not_ready_during([&] { allow(false); }, [&] { allow(true); },
                          "PostgreSQL is not reachable");
  // And the replica still works: a command is applied.
  s.publish(subscriptions_topic, sub,
            cloud_event("seatledger.subscription.update_metadata",
                        "metadata-after-outage", rfc3339_from_now(seconds{0}),
                        {{"subscription_id", sub},
                         {"display_name", "After the outage"}}));
  EXPECT_FALSE(
    s.wait_for(sub, "seatledger.subscription.metadata_updated").empty())
    << s.log_tail();
}

TEST_F(service_http, readyz_follows_kafka) {
  // Liveness never depends on Kafka; readiness does. A poll that returns
  // nothing looked the same whether the topics were idle or the brokers
  // gone, so /readyz stayed 200 through a Kafka outage.
  auto& s = *service_;
  expect_not_ready_during([&] { s.cluster().set_brokers_down(true); },
                          [&] { s.cluster().set_brokers_down(false); },
                          "Kafka is not reachable");
}

// While Kafka was away a license request waited its 30 s for an
// acknowledgement, and the next one waited behind it (one producer, one
// lock), each holding an HTTP thread: enough of them left none for
// /healthz, and Kubernetes restarted the pod for a Kafka outage. Once the
// replica has seen Kafka gone (two checks in a row), a request is answered
// 503 at once.
TEST_F(service_http, license_requests_in_a_kafka_outage_are_answered_at_once) {
  auto& s = *service_;
  const std::string path = std::string{"/v1/subscriptions/"} + sub
                           + "/licenses";
  const auto port = std::stoi(s.url().substr(s.url().rfind(':') + 1));
  struct brokers_back {
    kafka::mock_cluster& cluster;
    ~brokers_back() {
      cluster.set_brokers_down(false);
    }
  } back{s.cluster()};
  s.cluster().set_brokers_down(true);
  ASSERT_TRUE(wait_until(
    [&] {
      auto res = s.get("/readyz", nullptr);
      return res && res->status == 503;
    },
    seconds{30}, milliseconds{200}));
  // Writes are refused from the second failed check in a row (5 s later,
  // each waiting 2 s): one slow metadata answer does not refuse them.
  std::this_thread::sleep_for(seconds{8});
  constexpr int clients = 4;
  std::vector<int> statuses(clients, 0);
  std::vector<seconds> took(clients);
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      httplib::Client client{"127.0.0.1", port};
      client.set_read_timeout(seconds{150});
      auto started = steady_clock::now();
      auto res = client.Post(path.c_str(),
                             running_service::auth(service_admin_token), "{}",
                             "application/json");
      took[i] = duration_cast<seconds>(steady_clock::now() - started);
      statuses[i] = res ? res->status : -1;
    });
  auto healthz = s.get("/healthz", nullptr);
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < clients; ++i) {
    EXPECT_EQ(statuses[i], 503) << "request " << i;
    EXPECT_LT(took[i].count(), 5) << "request " << i << ", seconds";
  }
  expect(healthz, 200);
}

// After an idempotent producer's fatal error librdkafka refuses every
// record: every later license request answered 503 (the HTTP API's
// producer) or no event went out again (the relay's) until a restart.
// Whichever of the two meets it, it is replaced by a new one.
TEST_F(service_http, a_fatal_producer_error_fails_one_request_at_most) {
  auto& s = *service_;
  const std::string base = std::string{"/v1/subscriptions/"} + sub;
  s.cluster().desynchronize_next_produce();
  auto first = s.post(base + "/licenses", "{}");
  ASSERT_TRUE(first) << describe_answer(first);
  std::size_t issued = 1; // in SetUp
  if (first->status == 201)
    ++issued; // the relay met the error
  else
    expect(first, 503, "not_ready");
  auto second = s.post(base + "/licenses", "{}");
  expect(second, 201);
  ++issued;
  EXPECT_EQ(s.wait_for(sub, "seatledger.license.issued", issued).size(),
            issued);
  auto metrics = s.get("/metrics", nullptr);
  ASSERT_TRUE(metrics) << describe_answer(metrics);
  EXPECT_NE(metrics->body.find("seatledger_producer_fatal_errors_total 1\n"),
            std::string::npos)
    << metrics->body;
}

TEST_F(service_http, readyz_and_metrics_after_traffic) {
  auto& s = *service_;
  auto res = s.get("/readyz", nullptr);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(body_of(res)["status"], "ready");
  // Before any bad record: the series an alert watches exist at 0 (they
  // appeared at their first sample, so Prometheus saw no increase).
  res = s.get("/metrics", nullptr);
  ASSERT_TRUE(res);
  for (const auto* series :
       {"seatledger_dead_letters_total{code=\"malformed_json\"} 0",
        "seatledger_dead_letters_total{code=\"key_mismatch\"} 0",
        "seatledger_records_rejected_total{reason=\"unknown_subscription\","
        "topic=\"seatledger.subscriptions.v1\",type=\"seatledger."
        "subscription.expire\"} 0",
        "seatledger_records_consumed_total{topic=\"seatledger.catalog.v1\","
        "type=\"seatledger.catalog.rate_plan.removed\"} 0",
        "seatledger_position_gaps_total{partition=\"0\",topic=\"seatledger."
        "membership.v1\"} 0"})
    EXPECT_NE(res->body.find(std::string{series} + "\n"), std::string::npos)
      << series << "\n"
      << res->body;
  // Some HTTP traffic too, so its families have samples, and a record
  // that is not a CloudEvent (a dead letter).
  s.get(std::string{"/v1/subscriptions/"} + sub);
  s.get("/v1/subscriptions/no-such-sub");
  s.publish(membership_topic, org, "this is not JSON");
  // And a command that breaks a rule (a rejection).
  const std::string unknown = "sub-never-created";
  s.publish(subscriptions_topic, unknown,
            cloud_event("seatledger.subscription.expire", "expire-" + unknown,
                        rfc3339_from_now(seconds{0}),
                        {{"subscription_id", unknown}}));
  ASSERT_TRUE(wait_until(
    [&] {
      res = s.get("/metrics", nullptr);
      return res && res->status == 200
             && res->body.find(
                  "seatledger_dead_letters_total{code=\"malformed_json\"} 1")
                  != std::string::npos
             && res->body.find("seatledger_records_rejected_total{reason="
                               "\"unknown_subscription\",topic=\"seatledger."
                               "subscriptions.v1\",type=\"seatledger."
                               "subscription.expire\"} 1")
                  != std::string::npos;
    },
    seconds{60}, milliseconds{100}))
    << describe_answer(res);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  const auto& text = res->body;
  // Records consumed, by topic: the catalog, the command and the six
  // membership records.
  double consumed = 0;
  std::set<std::string> families;
  std::istringstream lines{text};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0)
      families.insert(line.substr(7, line.find(' ', 7) - 7));
    if (line.rfind("seatledger_records_consumed_total", 0) == 0) {
      consumed += std::stod(line.substr(line.rfind(' ') + 1));
      // By topic and CloudEvents type.
      EXPECT_EQ(line.find("type=\"\""), std::string::npos) << line;
    }
  }
  EXPECT_GE(consumed, 6.0) << text;
  EXPECT_NE(text.find("seatledger_records_consumed_total{topic=\"seatledger."
                      "membership.v1\",type=\"seatledger.member.added\"} 3"),
            std::string::npos)
    << text;
  EXPECT_NE(
    text.find("seatledger_dead_letters_total{code=\"malformed_json\"} 1"),
    std::string::npos)
    << text;
  // Rejections by topic, the command's CloudEvents type and reason.
  EXPECT_NE(text.find("seatledger_records_rejected_total{reason=\"unknown_"
                      "subscription\",topic=\"seatledger.subscriptions.v1\","
                      "type=\"seatledger.subscription.expire\"} 1"),
            std::string::npos)
    << text;
  for (const auto* family :
       {"seatledger_records_consumed_total", "seatledger_dead_letters_total",
        "seatledger_commit_duration_seconds", "seatledger_outbox_depth",
        "seatledger_active_actors", "seatledger_consumer_lag_records",
        "seatledger_http_requests_total",
        "seatledger_event_to_commit_latency_seconds"})
    EXPECT_EQ(families.count(family), 1u) << family << "\n" << text;

  // promtool accepts the exposition.
  temp_dir dir{"seatledger_metrics"};
  auto metrics_file = dir.file("metrics.txt");
  auto out_file = dir.file("promtool.out");
  write_file(metrics_file, text);
  auto rc = std::system(("/usr/bin/promtool check metrics < " + metrics_file
                         + " > " + out_file + " 2>&1")
                          .c_str());
  std::ifstream out{out_file};
  std::string promtool_says{std::istreambuf_iterator<char>{out},
                            std::istreambuf_iterator<char>{}};
  EXPECT_EQ(rc, 0) << promtool_says;
}

TEST(service_months, a_create_long_after_its_pools_first_entries_sees_them) {
  // A subscription's actor keeps its ledger from 400 days before its clock
  // (and its earliest open month): a create whose term started earlier
  // closed its first months from the count folded in at that point, so
  // usage.month_closed said 2 seats where the ledger (and the usage report
  // read from PostgreSQL) says 10. Once with the actor still active, once
  // loaded from PostgreSQL after a restart.
  running_service s;
  auto history = [&](const std::string& sub_id, const std::string& org_id) {
    s.publish(membership_topic, org_id,
              membership("org.linked", "link-" + sub_id,
                         {{"org_id", org_id}, {"subscription_id", sub_id}},
                         "2024-01-10T00:00:00Z"));
    for (int i = 0; i < 10; ++i)
      s.publish(
        membership_topic, org_id,
        membership("member.added", "add-" + sub_id + "-" + std::to_string(i),
                   {{"org_id", org_id}, {"user_id", "u" + std::to_string(i)}},
                   "2024-01-10T00:00:00Z"));
    for (int i = 0; i < 8; ++i)
      s.publish(
        membership_topic, org_id,
        membership("member.removed",
                   "remove-" + sub_id + "-" + std::to_string(i),
                   {{"org_id", org_id}, {"user_id", "u" + std::to_string(i)}},
                   "2024-01-20T00:00:00Z"));
    s.publish(membership_topic, org_id,
              membership("member.added", "add-" + sub_id + "-late",
                         {{"org_id", org_id}, {"user_id", "late"}},
                         "2025-03-01T00:00:00Z"));
    s.wait_for(sub_id, "seatledger.seats.changed", 19);
  };
  auto create_and_check = [&](const std::string& sub_id) {
    s.publish(subscriptions_topic, sub_id,
              cloud_event("seatledger.subscription.create", "create-" + sub_id,
                          "2025-03-02T00:00:00Z",
                          create_data(sub_id, plan, 5, "2024-01-01T00:00:00Z",
                                      "2026-01-01T00:00:00Z",
                                      sub_id + ".example")));
    // Months 1 to 14 ended before the create's time: closed at once.
    auto closed = s.wait_for(sub_id, "seatledger.usage.month_closed", 14);
    ASSERT_GE(closed.size(), 14u);
    const auto& january = closed[0]["data"];
    EXPECT_EQ(january["month_index"], 1) << closed[0];
    EXPECT_EQ(january["peak_seats"], 10) << closed[0];
    EXPECT_EQ(january["peak_at"], "2024-01-10T00:00:00Z") << closed[0];
    EXPECT_EQ(january["peak_seq"], 10) << closed[0];
    EXPECT_EQ(closed[1]["data"]["peak_seats"], 2) << closed[1];
    // The report, read from PostgreSQL, agrees.
    auto res = s.get("/v1/subscriptions/" + sub_id + "/usage");
    ASSERT_TRUE(res && res->status == 200);
    auto usage = json::parse(res->body);
    ASSERT_GE(usage["months"].size(), 14u) << usage;
    for (std::size_t i = 0; i < 14; ++i)
      EXPECT_EQ(usage["months"][i]["peak_seats"],
                closed[i]["data"]["peak_seats"])
        << "month " << i + 1 << ": " << usage["months"][i];
  };
  history("sub-early-a", "org-early-a");
  history("sub-early-b", "org-early-b");
  create_and_check("sub-early-a");
  // Its actor is loaded from PostgreSQL now, from 400 days before its clock.
  s.start();
  create_and_check("sub-early-b");
  EXPECT_NE(s.log_tail().find("ledger read from before a subscription's "
                              "window"),
            std::string::npos);
}

} // namespace
} // namespace seatledger::test
