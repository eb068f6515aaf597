// The catalog through two running replicas: the catalog is published on
// seatledger.catalog.v1 (real Kafka protocol, librdkafka's mock cluster),
// whichever replica owns its partition commits it, and the other replica's
// HTTP API answers classifications from PostgreSQL. A change of one plan's
// custom fields published later changes that replica's next answer, without
// a restart.

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <httplib.h>
#include <set>

#include <nlohmann/json.hpp>

#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "pg_fixture.hpp"
#include "service_harness.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;
using json = nlohmann::json;
using id_set = std::set<std::string>;

const std::vector<std::string> service_topics{
  "seatledger.membership.v1", "seatledger.subscriptions.v1",
  "seatledger.catalog.v1",    "seatledger.internal.seat-deltas.v1",
  "seatledger.events.v1",     "seatledger.dlq.v1"};

constexpr const char* catalog_topic = "seatledger.catalog.v1";
constexpr const char* read_token = "catalogreadtoken0123456789abcdef";
constexpr const char* group = "seatledger-catalog-test";

std::filesystem::path fixture_path() {
  return std::filesystem::path{__FILE__}.parent_path().parent_path()
         / "fixtures" / "catalog" / "realistic.jsonl";
}

std::vector<std::string> fixture_lines() {
  std::vector<std::string> out;
  std::ifstream in{fixture_path()};
  EXPECT_TRUE(in) << "cannot read " << fixture_path();
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(line);
  return out;
}

/// The records to publish, keyed by rate plan id as every producer must.
std::vector<outgoing> keyed(const std::vector<std::string>& lines) {
  std::vector<outgoing> out;
  messages::decoder decoder;
  for (const auto& line : lines) {
    auto event = decoder.decode_catalog({line, nullptr});
    EXPECT_TRUE(event) << line;
    if (event)
      out.push_back({messages::record_key(event.value()), line});
  }
  return out;
}

/// One replica's HTTP API.
class api_client {
public:
  explicit api_client(child_process& service) {
    auto url = service.wait_for_value("HTTP", seconds{60});
    if (!url)
      throw std::runtime_error("no HTTP= line: " + service.stderr_tail());
    auto colon = url->rfind(':');
    client_ = std::make_unique<httplib::Client>(
      "127.0.0.1", std::stoi(url->substr(colon + 1)));
    client_->set_read_timeout(seconds{30});
  }

  httplib::Result get(const std::string& target, bool with_token = true) {
    httplib::Headers headers;
    if (with_token)
      headers.emplace("Authorization", std::string{"Bearer "} + read_token);
    return client_->Get(target.c_str(), headers);
  }

  /// The ids a rate-plans query answers, in the order answered.
  std::vector<std::string> plan_ids(const std::string& query) {
    auto res = get("/v1/catalog/rate-plans" + query);
    EXPECT_TRUE(res) << query;
    if (!res)
      return {};
    EXPECT_EQ(res->status, 200) << query << ": " << res->body;
    std::vector<std::string> ids;
    auto body = json::parse(res->body, nullptr, false);
    if (body.is_discarded() || !body.contains("rate_plans"))
      return ids;
    for (const auto& p : body["rate_plans"])
      ids.push_back(p.at("rate_plan_id").get<std::string>());
    return ids;
  }

  id_set plan_set(const std::string& query) {
    auto v = plan_ids(query);
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end())) << query;
    return {v.begin(), v.end()};
  }

private:
  std::unique_ptr<httplib::Client> client_;
};

class service_catalog : public ::testing::Test {
protected:
  void SetUp() override {
    db_ = std::make_unique<scratch_database>();
    auto cluster = kafka::mock_cluster::start(1, service_topics, 4);
    ASSERT_TRUE(cluster) << describe(cluster.error());
    cluster_ = std::move(*cluster);
    kafka_ = std::make_unique<kafka_io>(cluster_->bootstrap_servers());
    key_dir_ = "/tmp/" + unique_name("seatledger_keys");
    signing_key_ = test_signing_key(key_dir_);
    a_ = start("catalog-replica-a");
    b_ = start("catalog-replica-b");
    api_b_ = std::make_unique<api_client>(*b_);
    api_a_ = std::make_unique<api_client>(*a_);
  }

  void TearDown() override {
    api_a_.reset();
    api_b_.reset();
    for (auto* service : {&b_, &a_}) {
      if (!*service)
        continue;
      (*service)->signal(SIGTERM);
      EXPECT_EQ((*service)->wait(seconds{60}), 0) << (*service)->stderr_tail();
      service->reset();
    }
    kafka_.reset();
    cluster_.reset();
    db_.reset();
    std::filesystem::remove_all(key_dir_);
  }

  std::unique_ptr<child_process> start(const std::string& replica) {
    service_options options;
    options.database_url = db_->conninfo();
    options.bootstrap = cluster_->bootstrap_servers();
    options.signing_key_file = signing_key_;
    options.replica_id = replica;
    options.consumer_group = group;
    options.extra_args = {"--api-token", std::string{read_token} + ":read"};
    return start_service(options);
  }

  std::int64_t catalog_version() {
    database_probe probe{db_->conninfo()};
    return probe.scalar("SELECT version FROM seatledger.catalog_state");
  }

  /// Publishes the fixture and waits until PostgreSQL holds all of it.
  void publish_fixture() {
    kafka_->publish(catalog_topic, keyed(fixture_lines()));
    database_probe probe{db_->conninfo()};
    ASSERT_TRUE(wait_until(
      [&] {
        return probe.scalar("SELECT count(*) FROM "
                            "seatledger.catalog_rate_plans")
                 == 36
               && probe.scalar("SELECT count(*) FROM "
                               "seatledger.catalog_rate_plans WHERE removed")
                    == 1;
      },
      seconds{60}))
      << "catalog not committed\n"
      << a_->stderr_tail() << "\n"
      << b_->stderr_tail();
  }

  /// The fixture's upsert of `id`, as a new event with changed plan fields.
  std::string changed_upsert(const std::string& id, const std::string& event_id,
                             const std::function<void(json&)>& edit) {
    for (const auto& line : fixture_lines()) {
      auto event = json::parse(line);
      if (event["type"] != "seatledger.catalog.rate_plan.upserted"
          || event["data"]["rate_plan"]["id"] != id)
        continue;
      event["id"] = event_id;
      event["time"] = "2026-03-02T03:00:00Z";
      edit(event["data"]["rate_plan"]["custom_fields"]);
      return event.dump();
    }
    ADD_FAILURE() << "no plan " << id << " in the fixture";
    return {};
  }

  std::unique_ptr<scratch_database> db_;
  std::unique_ptr<kafka::mock_cluster> cluster_;
  std::unique_ptr<kafka_io> kafka_;
  std::string key_dir_;
  std::string signing_key_;
  std::unique_ptr<child_process> a_;
  std::unique_ptr<child_process> b_;
  std::unique_ptr<api_client> api_a_;
  std::unique_ptr<api_client> api_b_;
};

const std::string self_service_gitlab_com
  = "?action=initial_purchase&deployment=GitLab.com";

TEST_F(service_catalog, a_published_change_is_in_the_next_answer_of_a_replica) {
  publish_fixture();
  auto pid_b = b_->pid();
  const id_set before{"rp-ci-minutes-saas",  "rp-duo-pro-saas",
                      "rp-premium-saas-1y",  "rp-storage-saas",
                      "rp-ultimate-saas-1y", "rp-ultimate-saas-bundle"};
  EXPECT_EQ(api_b_->plan_set(self_service_gitlab_com), before);
  EXPECT_EQ(api_a_->plan_set(self_service_gitlab_com), before);
  EXPECT_EQ(api_b_->plan_set("?true_up=true"),
            (id_set{"rp-true-up-premium-sm", "rp-true-up-starter-sm",
                    "rp-true-up-ultimate-saas"}));
  EXPECT_EQ(api_b_->plan_set("?status=active&tier=Ultimate&us_pubsec=true"),
            (id_set{"rp-dedicated-gov", "rp-ultimate-sm-pubsec"}));

  // Premium SaaS stops being sold self-service.
  auto version = catalog_version();
  kafka_->publish(catalog_topic,
                  keyed({changed_upsert(
                    "rp-premium-saas-1y", "catalog-sync-20260302-0001",
                    [](json& f) { f["CDotActions__c"] = json{"renew"}; })}));
  ASSERT_TRUE(
    wait_until([&] { return catalog_version() > version; }, seconds{60}))
    << a_->stderr_tail() << "\n"
    << b_->stderr_tail();
  auto after = before;
  after.erase("rp-premium-saas-1y");
  EXPECT_EQ(api_b_->plan_set(self_service_gitlab_com), after);
  EXPECT_EQ(api_a_->plan_set(self_service_gitlab_com), after);
  EXPECT_EQ(
    api_b_->plan_set("?status=active&tier=premium&deployment=gitlab.com"),
    id_set{"rp-premium-saas-1y"});
  // The same process answered before and after.
  EXPECT_TRUE(b_->running());
  EXPECT_EQ(b_->pid(), pid_b);
}

// A batch keeps catalog upserts and removals apart; the coordinator tells
// the store each record's position so that changes of one plan apply in
// record order (the spec's per-key order), not by event time. The four
// records are in Kafka before the replica starts, on one partition, so its
// first batch holds all of them.
TEST_F(service_catalog,
       changes_of_one_plan_in_one_batch_apply_in_record_order) {
  publish_fixture();
  api_a_.reset();
  api_b_.reset();
  for (auto* service : {&b_, &a_}) {
    (*service)->signal(SIGTERM);
    ASSERT_EQ((*service)->wait(seconds{60}), 0) << (*service)->stderr_tail();
    service->reset();
  }
  // Removed, then upserted unchanged at the same instant: present.
  const std::string revived = "rp-premium-saas-1y";
  // Upserted with a change, then removed with an earlier time: removed.
  std::string retired;
  auto partition = kafka::partition_for_key(revived, 4);
  for (const auto& record : keyed(fixture_lines()))
    if (record.key != revived && record.key != "rp-ultimate-saas-2y-retired"
        && kafka::partition_for_key(record.key, 4) == partition) {
      retired = record.key;
      break;
    }
  ASSERT_FALSE(retired.empty()) << "no second plan on partition " << partition;
  auto removal = [](const std::string& id, const std::string& event_id,
                    const std::string& time) {
    return messages::encode_catalog_event(
      {{"//billing.example.com/zuora/catalog", event_id,
        "seatledger.catalog.rate_plan.removed", at(time)},
       domain::rate_plan_removed{id}});
  };
  auto unchanged = [](json&) {};
  auto revived_upsert
    = json::parse(changed_upsert(revived, "catalog-order-0002", unchanged));
  revived_upsert["time"] = "2026-03-02T04:00:00Z";
  auto version = catalog_version();
  kafka_->publish(
    catalog_topic,
    keyed({removal(revived, "catalog-order-0001", "2026-03-02T04:00:00Z"),
           revived_upsert.dump(),
           changed_upsert(retired, "catalog-order-0003",
                          [](json& f) { f["CDotActions__c"] = json{"renew"}; }),
           removal(retired, "catalog-order-0004", "2026-03-02T02:00:00Z")}));

  a_ = start("catalog-replica-a");
  database_probe probe{db_->conninfo()};
  ASSERT_TRUE(wait_until(
    [&] {
      return probe.scalar("SELECT count(*) FROM seatledger.applied_events "
                          "WHERE id LIKE 'catalog-order-%'")
             == 4;
    },
    seconds{60}))
    << a_->stderr_tail();
  EXPECT_EQ(catalog_version(), version + 1)
    << "the four records were not committed in one batch";
  EXPECT_EQ(probe.rows("SELECT rate_plan_id, removed FROM "
                       "seatledger.catalog_rate_plans WHERE rate_plan_id IN ('"
                       + revived + "', '" + retired
                       + "') ORDER BY rate_plan_id = '" + revived + "'"),
            (std::vector<std::string>{retired + "|t", revived + "|f"}));
}

// A catalog record goes where its key puts it, and its key is its plan's
// id, as on every other topic (the key and partition were not checked for
// the catalog: a record keyed by one plan changed another).
TEST_F(service_catalog, a_record_keyed_by_another_plan_is_a_dead_letter) {
  publish_fixture();
  const auto version = catalog_version();
  const auto line
    = changed_upsert("rp-premium-saas-1y", "catalog-wrong-key",
                     [](json& f) { f["CDotActions__c"] = json{"renew"}; });
  kafka_->publish(catalog_topic, {{"rp-duo-pro-saas", line}});
  std::vector<kafka::record> dlq;
  ASSERT_TRUE(wait_until(
    [&] {
      dlq = kafka_->read_all("seatledger.dlq.v1");
      return !dlq.empty();
    },
    seconds{60}))
    << a_->stderr_tail() << "\n"
    << b_->stderr_tail();
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, line);
  EXPECT_EQ(dlq[0].key, "rp-duo-pro-saas");
  auto h = header_map(dlq[0]);
  EXPECT_EQ(h["seatledger.error.code"], "key_mismatch");
  EXPECT_NE(h["seatledger.error.message"].find("rp-premium-saas-1y"),
            std::string::npos)
    << h["seatledger.error.message"];
  EXPECT_EQ(h["seatledger.source.topic"], catalog_topic);
  EXPECT_EQ(h["seatledger.source.partition"],
            std::to_string(kafka::partition_for_key("rp-duo-pro-saas", 4)));
  EXPECT_FALSE(h["seatledger.source.offset"].empty());
  // Nothing of it was applied.
  EXPECT_EQ(catalog_version(), version);
  EXPECT_EQ(api_b_->plan_set("?status=active&tier=premium&deployment=gitlab."
                             "com&action=initial_purchase"),
            id_set{"rp-premium-saas-1y"});
}

TEST_F(service_catalog, incomplete_plans_paging_and_bad_filters_over_http) {
  publish_fixture();
  auto res = api_b_->get("/v1/catalog/incomplete");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto body = json::parse(res->body);
  std::map<std::string, json> got;
  for (const auto& p : body.at("rate_plans"))
    got[p.at("rate_plan_id").get<std::string>()] = p.at("missing");
  EXPECT_EQ(got.size(), 5u) << res->body;
  EXPECT_EQ(got["rp-premium-saas-promo"], json{"CDotPlanStatus__c"});
  EXPECT_EQ(got["rp-ultimate-sm-2y"], json{"CDotActions__c"});
  EXPECT_EQ(got["rp-ci-minutes-10k"], json{"CDotPlanType__c"});
  EXPECT_EQ(got["rp-ultimate-saas-zuora-multiselect"],
            (json{"CDotAccessible__c", "CDotActions__c", "CDotPlanStatus__c"}));
  EXPECT_EQ(got["rp-duo-amazon-q-sm"],
            (json{"CDotPlanStatus__c", "CDotPlanType__c"}));

  // The shape of http.md.
  auto one = api_b_->get("/v1/catalog/rate-plans?community_type=open_source");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  auto plans = json::parse(one->body).at("rate_plans");
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].at("rate_plan_id"), "rp-oss-ultimate-saas");
  EXPECT_EQ(
    plans[0].at("product"),
    (json{{"id", "prod-community"}, {"name", "GitLab Community Programs"}}));
  EXPECT_EQ(plans[0].at("custom_fields").at("CDotCommunityType__c"),
            "open_source");
  ASSERT_EQ(plans[0].at("charges").size(), 1u);
  EXPECT_EQ(plans[0].at("charges")[0].at("charge_id"),
            "ch-oss-ultimate-saas-seat");
  EXPECT_EQ(plans[0].at("charges")[0].at("billing_period"), "annual");
  EXPECT_EQ(plans[0].at("charges")[0].at("custom_fields").at("ChargeTier__c"),
            "Ultimate");

  // Pages by id; `next_after` is null on the last page, also when that
  // page is full (http.md).
  auto page = [&](const std::string& query) {
    auto res = api_b_->get("/v1/catalog/rate-plans?true_up=true" + query);
    EXPECT_TRUE(res && res->status == 200) << query;
    return res ? json::parse(res->body, nullptr, false) : json{};
  };
  const std::vector<std::string> true_up = {"rp-true-up-premium-sm",
                                            "rp-true-up-starter-sm",
                                            "rp-true-up-ultimate-saas"};
  auto whole = page("&limit=3");
  ASSERT_EQ(whole.at("rate_plans").size(), 3u) << whole;
  EXPECT_TRUE(whole.at("next_after").is_null()) << whole;
  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0; pages < 5; ++pages) {
    auto body = page("&limit=2" + (after.empty() ? "" : "&after=" + after));
    for (const auto& p : body.at("rate_plans"))
      paged.push_back(p.at("rate_plan_id").get<std::string>());
    if (body.at("next_after").is_null())
      break;
    after = body.at("next_after").get<std::string>();
    EXPECT_EQ(after, paged.back());
  }
  EXPECT_EQ(paged, true_up);
  auto last = page("&limit=1&after=rp-true-up-starter-sm");
  ASSERT_EQ(last.at("rate_plans").size(), 1u) << last;
  EXPECT_TRUE(last.at("next_after").is_null()) << last;

  // Bad filters are 400s that name the parameter.
  for (auto [query, name] : std::vector<std::pair<std::string, std::string>>{
         {"?true_up=maybe", "true_up"},
         {"?status=retired", "status"},
         {"?tier=Gold", "tier"},
         {"?plan_id=rp-gold-saas", "plan_id"},
         {"?status=active&status=legacy", "status"}}) {
    auto bad = api_b_->get("/v1/catalog/rate-plans" + query);
    ASSERT_TRUE(bad) << query;
    EXPECT_EQ(bad->status, 400) << query << ": " << bad->body;
    auto error = json::parse(bad->body, nullptr, false);
    ASSERT_FALSE(error.is_discarded()) << bad->body;
    EXPECT_EQ(error["error"]["code"], "bad_request");
    EXPECT_NE(error["error"]["message"].get<std::string>().find(name),
              std::string::npos)
      << bad->body;
  }
  // The read scope is needed.
  auto anonymous = api_b_->get("/v1/catalog/rate-plans", false);
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

} // namespace
} // namespace seatledger::test
