// Golden tests of what seatledger publishes: every output event type, the
// Subscription shape and the license claims, checked field by field after
// parsing with an independent JSON library. Also the JSON writer itself.

#include <cstdint>
#include <gtest/gtest.h>
#include <limits>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "domain/subscription.hpp"
#include "messages/encode.hpp"
#include "messages/json_writer.hpp"

using namespace seatledger;
using namespace seatledger::messages;
using json = nlohmann::json;

namespace {

domain::timestamp at(const char* text) {
  auto t = domain::parse_rfc3339(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(domain::timestamp{});
}

std::set<std::string> keys_of(const json& obj) {
  std::set<std::string> result;
  for (const auto& [key, value] : obj.items())
    result.insert(key);
  return result;
}

domain::output_event make_event(domain::output_payload payload) {
  domain::output_event ev;
  ev.id = "4f1c2b3a-9d8e-8c7b-a6f5-e4d3c2b1a098";
  ev.subscription_id = "A-S00012345";
  ev.time = at("2026-01-20T10:00:00.125Z");
  ev.payload = std::move(payload);
  return ev;
}

// Parses the event and checks the envelope; returns `data`.
json check_envelope(const domain::output_event& ev, const std::string& type) {
  auto doc = json::parse(encode_output_event(ev, "seatledger-test"));
  EXPECT_EQ(keys_of(doc), (std::set<std::string>{"specversion", "id", "source",
                                                 "type", "time", "subject",
                                                 "datacontenttype", "data"}));
  EXPECT_EQ(doc["specversion"], "1.0");
  EXPECT_EQ(doc["id"], "4f1c2b3a-9d8e-8c7b-a6f5-e4d3c2b1a098");
  EXPECT_EQ(doc["source"], "seatledger-test");
  EXPECT_EQ(doc["type"], type);
  EXPECT_EQ(doc["time"], "2026-01-20T10:00:00.125Z");
  EXPECT_EQ(doc["subject"], "A-S00012345");
  EXPECT_EQ(doc["datacontenttype"], "application/json");
  EXPECT_EQ(doc["data"]["subscription_id"], "A-S00012345");
  return doc["data"];
}

domain::subscription_record sample_record() {
  domain::subscription_record s;
  s.subscription_id = "A-S00012345";
  s.status = domain::subscription_status::active;
  s.display_name = "Acme \"Corp\"";
  s.customer.salesforce_account_id = "0014x00001AbCdEAAV";
  s.instance = {"gitlab.acme.example", domain::instance_type::secondary};
  s.plan_id = "plan-ultimate";
  s.seats = 250;
  s.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
  s.trial = false;
  s.features = {"geo", "duo_enterprise"};
  s.rate_limit_overrides = R"({"api":{"rpm":100}})";
  s.seats_in_use = 260;
  s.max_seats_used = 263;
  s.max_seats_used_changed_at = at("2026-02-01T12:00:00Z");
  s.seats_owed = 13;
  return s;
}

const std::set<std::string> subscription_keys = {"subscription_id",
                                                 "status",
                                                 "display_name",
                                                 "customer",
                                                 "instance",
                                                 "plan_id",
                                                 "seats",
                                                 "term",
                                                 "trial",
                                                 "features",
                                                 "orgs",
                                                 "seats_in_use",
                                                 "max_seats_used",
                                                 "max_seats_used_changed_at",
                                                 "seats_owed",
                                                 "metadata"};

void check_subscription(const json& d) {
  EXPECT_EQ(keys_of(d), subscription_keys);
  EXPECT_EQ(d["subscription_id"], "A-S00012345");
  EXPECT_EQ(d["status"], "active");
  EXPECT_EQ(d["display_name"], "Acme \"Corp\"");
  EXPECT_EQ(d["customer"],
            (json{{"salesforce_account_id", "0014x00001AbCdEAAV"},
                  {"salesforce_subscription_id", nullptr}}));
  EXPECT_EQ(d["instance"],
            (json{{"domain", "gitlab.acme.example"}, {"type", "SECONDARY"}}));
  EXPECT_EQ(d["plan_id"], "plan-ultimate");
  EXPECT_EQ(d["seats"], 250);
  EXPECT_EQ(d["term"], (json{{"start", "2026-01-15T00:00:00Z"},
                             {"end", "2027-01-15T00:00:00Z"}}));
  EXPECT_EQ(d["trial"], false);
  EXPECT_EQ(d["features"], (json{"geo", "duo_enterprise"}));
  EXPECT_EQ(d["orgs"], (json{"org-1", "org-2"}));
  EXPECT_EQ(d["seats_in_use"], 260);
  EXPECT_EQ(d["max_seats_used"], 263);
  EXPECT_EQ(d["max_seats_used_changed_at"], "2026-02-01T12:00:00Z");
  EXPECT_EQ(d["seats_owed"], 13);
  EXPECT_EQ(d["metadata"],
            (json{{"rate_limit_overrides", {{"api", {{"rpm", 100}}}}},
                  {"analytics_access", nullptr}}));
}

} // namespace

// -- output events
// ----------------------------------------------------------------

TEST(messages_output, seats_changed) {
  domain::seats_changed x;
  x.seats_in_use = 11;
  x.previous_seats_in_use = 10;
  x.effective_at = at("2026-01-20T09:59:59Z");
  x.ledger_seq = 42;
  x.org_id = "org-1";
  x.user_id = "user-7";
  auto d = check_envelope(make_event(x), "seatledger.seats.changed");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"seats_in_use", 11},
                     {"previous_seats_in_use", 10},
                     {"effective_at", "2026-01-20T09:59:59Z"},
                     {"ledger_seq", 42},
                     {"org_id", "org-1"},
                     {"user_id", "user-7"}}));
}

TEST(messages_output, overage_detected) {
  domain::overage_detected x;
  x.seats = 250;
  x.max_seats_used = 253;
  x.seats_owed = 3;
  x.previous_seats_owed = 2;
  x.term_start = at("2026-01-15T00:00:00Z");
  x.effective_at = at("2026-03-01T08:30:00Z");
  auto d = check_envelope(make_event(x), "seatledger.overage.detected");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"seats", 250},
                     {"max_seats_used", 253},
                     {"seats_owed", 3},
                     {"previous_seats_owed", 2},
                     {"term_start", "2026-01-15T00:00:00Z"},
                     {"effective_at", "2026-03-01T08:30:00Z"}}));
}

TEST(messages_output, license_issued) {
  domain::license_issued x;
  auto& g = x.grant;
  g.license_id = "lic-0001";
  g.subscription_id = "A-S00012345";
  g.issued_at = at("2026-01-15T00:00:05Z");
  g.not_before = at("2026-01-15T00:00:00Z");
  g.expires_at = at("2027-01-15T00:00:00Z");
  g.seats = 250;
  g.plan_id = "plan-ultimate";
  g.tier = "Ultimate";
  g.features = {"geo", "advanced_search"};
  g.instance_domain = "gitlab.acme.example";
  g.instance_type = domain::instance_type::internal;
  g.trial = true;
  x.license_key = "v4.public.eyJzdWIiOiJ4In0.sig";
  auto d = check_envelope(make_event(x), "seatledger.license.issued");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"license_id", "lic-0001"},
                     {"license_key", "v4.public.eyJzdWIiOiJ4In0.sig"},
                     {"seats", 250},
                     {"starts_at", "2026-01-15T00:00:00Z"},
                     {"expires_at", "2027-01-15T00:00:00Z"},
                     {"issued_at", "2026-01-15T00:00:05Z"},
                     {"plan_id", "plan-ultimate"},
                     {"tier", "Ultimate"},
                     {"features", {"geo", "advanced_search"}},
                     {"instance_domain", "gitlab.acme.example"},
                     {"instance_type", "INTERNAL"},
                     {"trial", true}}));
}

TEST(messages_output, license_revoked) {
  domain::license_revoked x{"lic-0001", "subscription archived",
                            at("2028-02-01T09:00:00Z")};
  auto d = check_envelope(make_event(x), "seatledger.license.revoked");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"license_id", "lic-0001"},
                     {"reason", "subscription archived"},
                     {"revoked_at", "2028-02-01T09:00:00Z"}}));
}

TEST(messages_output, license_not_issued) {
  domain::license_not_issued x{"zuora-evt-1", "unknown_plan"};
  auto d = check_envelope(make_event(x), "seatledger.license.not_issued");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"command_id", "zuora-evt-1"},
                     {"reason", "unknown_plan"}}));
}

TEST(messages_output, every_lifecycle_event_carries_the_state_after_it) {
  const std::vector<std::pair<domain::lifecycle_kind, std::string>> kinds = {
    {domain::lifecycle_kind::created, "seatledger.subscription.created"},
    {domain::lifecycle_kind::renewed, "seatledger.subscription.renewed"},
    {domain::lifecycle_kind::entitlements_updated,
     "seatledger.subscription.entitlements_updated"},
    {domain::lifecycle_kind::trial_converted,
     "seatledger.subscription.trial_converted"},
    {domain::lifecycle_kind::expired, "seatledger.subscription.expired"},
    {domain::lifecycle_kind::metadata_updated,
     "seatledger.subscription.metadata_updated"},
  };
  for (const auto& [kind, type] : kinds) {
    SCOPED_TRACE(type);
    domain::subscription_changed x;
    x.kind = kind;
    x.state = sample_record();
    x.orgs = {"org-1", "org-2"};
    check_subscription(check_envelope(make_event(x), type));
  }
}

TEST(messages_output, subscription_archived) {
  domain::subscription_archived x{"customer churned", 3};
  auto d = check_envelope(make_event(x), "seatledger.subscription.archived");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"reason", "customer churned"},
                     {"licenses_revoked", 3}}));
}

TEST(messages_output, usage_month_closed) {
  domain::month_closed x;
  x.term_start = at("2026-01-15T00:00:00Z");
  x.month_index = 1;
  x.start = at("2026-01-15T00:00:00Z");
  x.end = at("2026-02-15T00:00:00Z");
  x.peak_seats = 15;
  x.peak_at = at("2026-01-20T00:00:00Z");
  x.peak_seq = 7;
  auto d = check_envelope(make_event(x), "seatledger.usage.month_closed");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"term_start", "2026-01-15T00:00:00Z"},
                     {"month_index", 1},
                     {"start", "2026-01-15T00:00:00Z"},
                     {"end", "2026-02-15T00:00:00Z"},
                     {"peak_seats", 15},
                     {"peak_at", "2026-01-20T00:00:00Z"},
                     {"peak_seq", 7}}));
  // Carried in from before the month: no entry set the peak.
  x.month_index = 2;
  x.peak_seq.reset();
  d = check_envelope(make_event(x), "seatledger.usage.month_closed");
  ASSERT_TRUE(d.contains("peak_seq"));
  EXPECT_TRUE(d["peak_seq"].is_null());
  EXPECT_EQ(d["month_index"], 2);
}

TEST(messages_output, command_rejected) {
  domain::command_rejected x;
  x.command_id = "zuora-evt-9";
  x.command_source = "//billing.example.com/zuora";
  x.command_type = "seatledger.subscription.renew";
  x.reason = domain::rejection_code::invalid_term;
  x.message = "term must end after it starts";
  auto d = check_envelope(make_event(x), "seatledger.command.rejected");
  EXPECT_EQ(d, (json{{"subscription_id", "A-S00012345"},
                     {"command_id", "zuora-evt-9"},
                     {"command_source", "//billing.example.com/zuora"},
                     {"command_type", "seatledger.subscription.renew"},
                     {"reason", "invalid_term"},
                     {"message", "term must end after it starts"}}));
}

TEST(messages_output, record_key_is_the_subscription) {
  auto ev = make_event(domain::license_not_issued{"c", "r"});
  EXPECT_EQ(record_key(ev), "A-S00012345");
}

// -- subscription shape and claims -------------------------------------------

TEST(messages_subscription, shape_with_everything_set) {
  auto text = encode_subscription(sample_record(), {"org-1", "org-2"});
  check_subscription(json::parse(text));
  json_writer w;
  write_subscription(w, sample_record(), {"org-1", "org-2"});
  EXPECT_EQ(w.str(), text);
}

TEST(messages_subscription, absent_values_are_null) {
  domain::subscription_record s;
  s.subscription_id = "A-S1";
  s.status = domain::subscription_status::trial;
  auto d = json::parse(encode_subscription(s, {}));
  EXPECT_EQ(keys_of(d), subscription_keys);
  EXPECT_EQ(d["status"], "trial");
  EXPECT_EQ(d["customer"], (json{{"salesforce_account_id", nullptr},
                                 {"salesforce_subscription_id", nullptr}}));
  EXPECT_TRUE(d["max_seats_used_changed_at"].is_null());
  EXPECT_EQ(d["metadata"], (json{{"rate_limit_overrides", nullptr},
                                 {"analytics_access", nullptr}}));
  EXPECT_EQ(d["orgs"], json::array());
  EXPECT_EQ(d["features"], json::array());
  s.analytics_access = false;
  d = json::parse(encode_subscription(s, {}));
  EXPECT_EQ(d["metadata"]["analytics_access"], false);
}

TEST(messages_license, claims) {
  domain::license_grant g;
  g.license_id = "lic-0002";
  g.subscription_id = "A-S00012345";
  g.issued_at = at("2026-04-01T13:37:00.5Z");
  g.not_before = at("2026-01-15T00:00:00Z");
  g.expires_at = at("2026-12-31T23:59:59Z");
  g.seats = 275;
  g.plan_id = "plan-ultimate";
  g.tier = "Ultimate";
  g.features = {};
  g.instance_domain = "gitlab.acme.example";
  g.instance_type = domain::instance_type::primary;
  g.trial = false;
  g.issued_by = {"//portal", "evt-1"};
  auto d = json::parse(encode_license_claims(g));
  EXPECT_EQ(d, (json{{"jti", "lic-0002"},
                     {"subscription_id", "A-S00012345"},
                     {"iat", "2026-04-01T13:37:00.5Z"},
                     {"nbf", "2026-01-15T00:00:00Z"},
                     {"exp", "2026-12-31T23:59:59Z"},
                     {"seats", 275},
                     {"plan_id", "plan-ultimate"},
                     {"tier", "Ultimate"},
                     {"features", json::array()},
                     {"instance_domain", "gitlab.acme.example"},
                     {"instance_type", "PRIMARY"},
                     {"trial", false}}));

  // A plan without a tier: the claim is null, in the event too.
  g.tier = std::nullopt;
  EXPECT_TRUE(json::parse(encode_license_claims(g)).at("tier").is_null());
  domain::license_issued issued;
  issued.grant = g;
  issued.license_key = "v4.public.x";
  EXPECT_TRUE(check_envelope(make_event(issued), "seatledger.license.issued")
                .at("tier")
                .is_null());
}

// -- the writer
// -------------------------------------------------------------------

TEST(messages_json_writer, escapes_per_rfc_8259) {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c)
    all_controls.push_back(static_cast<char>(c));
  json_writer w;
  w.string(all_controls);
  const auto& out = w.str();
  // Every control character is escaped: none appears raw.
  for (char c : out)
    EXPECT_GE(static_cast<unsigned char>(c), 0x20u);
  EXPECT_NE(out.find("\\u0000"), std::string::npos);
  EXPECT_NE(out.find("\\u001f"), std::string::npos);
  EXPECT_NE(out.find("\\n"), std::string::npos);
  EXPECT_EQ(json::parse(out).get<std::string>(), all_controls);

  w.clear();
  w.string("quote \" backslash \\ slash / del \x7f utf8 \xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(w.str(), "\"quote \\\" backslash \\\\ slash / del \x7f utf8 "
                     "\xc3\xa9\xe2\x82\xac\"");
}

TEST(messages_json_writer, structure_and_numbers) {
  json_writer w;
  w.begin_object();
  w.integer_member("min", std::numeric_limits<std::int64_t>::min());
  w.integer_member("max", std::numeric_limits<std::int64_t>::max());
  w.integer_member("zero", 0);
  w.bool_member("t", true);
  w.bool_member("f", false);
  w.null_member("n");
  w.raw_member("raw", R"({"a":[1,2]})");
  w.key("empty_array");
  w.begin_array();
  w.end_array();
  w.key("empty_object");
  w.begin_object();
  w.end_object();
  w.key("nested");
  w.begin_array();
  w.begin_object();
  w.end_object();
  w.integer(1);
  w.begin_array();
  w.string("x");
  w.end_array();
  w.end_array();
  w.string_array_member("list", {"a", "b"});
  w.end_object();
  EXPECT_EQ(w.str(),
            R"({"min":-9223372036854775808,"max":9223372036854775807,)"
            R"("zero":0,"t":true,"f":false,"n":null,"raw":{"a":[1,2]},)"
            R"("empty_array":[],"empty_object":{},"nested":[{},1,["x"]],)"
            R"("list":["a","b"]})");
  auto text = w.take();
  EXPECT_TRUE(w.str().empty());
  EXPECT_FALSE(text.empty());
  // Reusable after take(): no stray comma.
  w.begin_array();
  w.integer(1);
  w.end_array();
  EXPECT_EQ(w.str(), "[1]");
}

TEST(messages_json_writer, keys_are_escaped_too) {
  json_writer w;
  w.begin_object();
  w.string_member("a\"b\n", "v");
  w.end_object();
  EXPECT_EQ(json::parse(w.str()), (json{{"a\"b\n", "v"}}));
}
