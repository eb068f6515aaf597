// The catalog's pure parts: the filters of GET /v1/catalog/rate-plans, the
// JSONB containment documents they become, and the answer shapes.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "adapters/http/api.hpp"
#include "storage/catalog.hpp"

using namespace seatledger;
using namespace seatledger::http;
using json = nlohmann::json;

namespace {

storage::rate_plan_filter parsed(const query_params& params) {
  auto f = parse_rate_plan_filter(params);
  EXPECT_TRUE(f) << (f ? "" : f.error().message);
  return f ? *f : storage::rate_plan_filter{};
}

/// The 400 a query gets; its message names the offending parameter.
void expect_rejected(const query_params& params, const std::string& name) {
  auto f = parse_rate_plan_filter(params);
  ASSERT_FALSE(f) << "accepted: " << (params.empty() ? "" : params[0].first);
  EXPECT_EQ(f.error().status, 400);
  EXPECT_EQ(f.error().code, "bad_request");
  EXPECT_NE(f.error().message.find(name), std::string::npos)
    << f.error().message;
}

json doc(const std::optional<std::string>& text) {
  return text ? json::parse(*text) : json{};
}

} // namespace

TEST(catalog_filter, no_parameters_is_every_plan) {
  auto f = parsed({});
  EXPECT_TRUE(f.unfiltered());
  EXPECT_EQ(f.after, "");
  EXPECT_FALSE(f.limit);
  auto c = storage::containment_of(f);
  EXPECT_FALSE(c.plan);
  EXPECT_FALSE(c.tier);
  EXPECT_FALSE(c.deployment);
  EXPECT_FALSE(c.plan_type);
}

TEST(catalog_filter, every_filter_of_http_md_is_read) {
  auto f = parsed({{"tier", "Ultimate"},
                   {"deployment", "GitLab.com"},
                   {"action", "initial_purchase"},
                   {"status", "active"},
                   {"plan_type", "base_product"},
                   {"true_up", "false"},
                   {"us_pubsec", "1"},
                   {"community_type", "open_source"},
                   {"after", "2c92a0ff5c2b1a0e"},
                   {"limit", "50"}});
  EXPECT_FALSE(f.unfiltered());
  EXPECT_EQ(f.tier, "Ultimate");
  EXPECT_EQ(f.deployment, "GitLab.com");
  EXPECT_EQ(f.actions, std::vector<std::string>{"initial_purchase"});
  EXPECT_EQ(f.status, "active");
  EXPECT_EQ(f.plan_type, "base_product");
  EXPECT_EQ(f.true_up, false);
  EXPECT_EQ(f.us_pubsec, true);
  EXPECT_EQ(f.community_type, "open_source");
  EXPECT_EQ(f.after, "2c92a0ff5c2b1a0e");
  EXPECT_EQ(f.limit, 50u);
}

TEST(catalog_filter, values_match_without_case_and_come_out_as_listed) {
  auto f = parsed({{"tier", "ultimate"},
                   {"deployment", "gitlab.com"},
                   {"status", "ACTIVE"},
                   {"plan_type", "CI_Minutes"},
                   {"community_type", "Education"}});
  EXPECT_EQ(f.tier, "Ultimate");
  EXPECT_EQ(f.deployment, "GitLab.com");
  EXPECT_EQ(f.status, "active");
  EXPECT_EQ(f.plan_type, "ci_minutes");
  EXPECT_EQ(f.community_type, "education");
  EXPECT_EQ(parsed({{"deployment", "self-managed"}}).deployment,
            "Self-Managed");
  EXPECT_EQ(parsed({{"tier", "not applicable"}}).tier, "Not Applicable");
}

TEST(catalog_filter, action_may_repeat_and_all_must_be_included) {
  auto f = parsed(
    {{"action", "renew"}, {"action", "initial_purchase"}, {"action", "renew"}});
  EXPECT_EQ(f.actions, (std::vector<std::string>{"renew", "initial_purchase"}));
  EXPECT_EQ(doc(storage::containment_of(f).plan),
            json::parse(R"({"CDotActions__c":["renew","initial_purchase"]})"));
}

TEST(catalog_filter, bad_values_are_400_naming_the_parameter) {
  expect_rejected({{"true_up", "maybe"}}, "true_up");
  expect_rejected({{"us_pubsec", ""}}, "us_pubsec");
  expect_rejected({{"status", "retired"}}, "status");
  expect_rejected({{"status", ""}}, "status");
  expect_rejected({{"tier", "Gold"}}, "tier");
  expect_rejected({{"deployment", "SaaS"}}, "deployment");
  expect_rejected({{"plan_type", "base"}}, "plan_type");
  expect_rejected({{"community_type", "nonprofit"}}, "community_type");
  expect_rejected({{"action", "cancel"}}, "action");
  expect_rejected({{"limit", "0"}}, "limit");
  expect_rejected({{"limit", "1001"}}, "limit");
  expect_rejected({{"after", "bad id with spaces"}}, "after");
  // The message lists what is allowed.
  auto f = parse_rate_plan_filter({{"status", "retired"}});
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("not_applicable"), std::string::npos);
}

TEST(catalog_filter, unknown_and_repeated_parameters_are_400) {
  expect_rejected({{"plan_id", "x"}}, "plan_id");
  expect_rejected({{"Tier", "Ultimate"}}, "Tier");
  expect_rejected({{"status", "active"}, {"status", "legacy"}}, "status");
  expect_rejected({{"tier", "Ultimate"}, {"tier", "Premium"}}, "tier");
  expect_rejected({{"true_up", "1"}, {"true_up", "1"}}, "true_up");
}

TEST(catalog_filter, plan_level_members_share_one_containment_document) {
  storage::rate_plan_filter f;
  f.actions = {"initial_purchase"};
  f.status = "active";
  f.true_up = true;
  f.us_pubsec = false;
  f.community_type = "education";
  auto c = storage::containment_of(f);
  EXPECT_EQ(doc(c.plan), json::parse(R"({
    "CDotActions__c": ["initial_purchase"],
    "CDotPlanStatus__c": "active",
    "CDotIsTrueUp__c": true,
    "CDotIsUsPubSec__c": false,
    "CDotCommunityType__c": "education"})"));
  EXPECT_FALSE(c.tier);
  EXPECT_FALSE(c.deployment);
  EXPECT_FALSE(c.plan_type);
}

TEST(catalog_filter, each_charge_level_member_is_its_own_document) {
  storage::rate_plan_filter f;
  f.tier = "Premium";
  f.deployment = "Self-Managed";
  f.plan_type = "storage";
  auto c = storage::containment_of(f);
  EXPECT_FALSE(c.plan);
  EXPECT_EQ(doc(c.tier), json::parse(R"({"ChargeTier__c":"Premium"})"));
  EXPECT_EQ(doc(c.deployment),
            json::parse(R"({"ChargeDeployment__c":"Self-Managed"})"));
  EXPECT_EQ(doc(c.plan_type), json::parse(R"({"CDotPlanType__c":"storage"})"));
}

TEST(catalog_filter, values_are_json_escaped_in_documents) {
  // Callers validate, but the document is JSON whatever the value.
  storage::rate_plan_filter f;
  f.status = R"(a"b\c)";
  EXPECT_EQ(doc(storage::containment_of(f).plan)["CDotPlanStatus__c"],
            R"(a"b\c)");
}

TEST(catalog_shapes, a_rate_plan_has_the_shape_of_http_md) {
  storage::rate_plan_view p;
  p.rate_plan_id = "rp-1";
  p.name = "Ultimate - 1 Year";
  p.product_id = "prod-1";
  p.product_name = "GitLab Ultimate - SaaS";
  p.custom_fields = R"({"CDotPlanStatus__c":"active"})";
  p.charges.push_back({"ch-1", "Seat", "annual", R"({"ChargeTier__c":null})"});
  messages::json_writer out;
  write_rate_plan(out, p);
  EXPECT_EQ(json::parse(out.take()), json::parse(R"({
    "rate_plan_id": "rp-1", "name": "Ultimate - 1 Year",
    "product": {"id": "prod-1", "name": "GitLab Ultimate - SaaS"},
    "custom_fields": {"CDotPlanStatus__c": "active"},
    "charges": [{"charge_id": "ch-1", "name": "Seat",
                 "billing_period": "annual",
                 "custom_fields": {"ChargeTier__c": null}}]})"));
}

TEST(catalog_shapes, an_incomplete_plan_names_its_missing_fields) {
  storage::incomplete_plan p;
  p.rate_plan_id = "rp-2";
  p.name = "Storage";
  p.missing = {"CDotPlanStatus__c", "CDotPlanType__c"};
  p.charges_missing_plan_type = {"ch-9"};
  messages::json_writer out;
  write_incomplete_plan(out, p);
  EXPECT_EQ(json::parse(out.take()), json::parse(R"({
    "rate_plan_id": "rp-2", "name": "Storage",
    "missing": ["CDotPlanStatus__c", "CDotPlanType__c"],
    "charges": [{"charge_id": "ch-9", "missing": ["CDotPlanType__c"]}]})"));
}
