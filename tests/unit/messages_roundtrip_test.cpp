// Every fixture decodes, re-encodes to the same JSON (semantically), and
// decodes again to an equal value; both Kafka bindings give the same result.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/equality.hpp"

using namespace seatledger;
using namespace seatledger::messages;
using json = nlohmann::json;

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct fixture {
  std::string name;
  std::string text;
  json doc;
  topic_kind topic;
};

std::vector<fixture> load_fixtures() {
  std::vector<fixture> result;
  for (const auto& entry : fs::directory_iterator{SEATLEDGER_FIXTURES_DIR}) {
    if (entry.path().extension() != ".json")
      continue;
    fixture f;
    f.name = entry.path().filename().string();
    f.text = slurp(entry.path());
    f.doc = json::parse(f.text);
    auto topic = topic_of(f.doc.at("type").get<std::string>());
    if (!topic)
      ADD_FAILURE() << f.name << ": type of no topic";
    f.topic = topic.value_or(topic_kind::membership);
    result.push_back(std::move(f));
  }
  std::sort(result.begin(), result.end(),
            [](const fixture& x, const fixture& y) { return x.name < y.name; });
  return result;
}

const fixture& find_fixture(const std::vector<fixture>& all,
                            std::string_view type) {
  for (const auto& f : all)
    if (f.doc.at("type") == type)
      return f;
  throw std::runtime_error("no fixture for " + std::string{type});
}

header_list binary_headers(const json& doc) {
  header_list headers;
  headers.emplace_back("content-type", "application/json");
  for (auto attr : {"specversion", "id", "source", "type", "time"})
    headers.emplace_back(std::string{"ce_"} + attr,
                         doc.at(attr).get<std::string>());
  return headers;
}

const std::vector<std::string_view> all_input_types = {
  event_types::member_added,
  event_types::member_updated,
  event_types::member_removed,
  event_types::org_snapshot,
  event_types::org_linked,
  event_types::org_unlinked,
  event_types::subscription_create,
  event_types::subscription_renew,
  event_types::subscription_update_entitlements,
  event_types::subscription_convert_trial,
  event_types::subscription_expire,
  event_types::subscription_archive,
  event_types::subscription_update_metadata,
  event_types::license_issue,
  event_types::rate_plan_upserted,
  event_types::rate_plan_removed,
  event_types::seat_delta,
};

domain::timestamp at(const char* text) {
  auto t = domain::parse_rfc3339(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(domain::timestamp{});
}

} // namespace

TEST(messages_fixtures, one_per_input_type_named_after_it) {
  auto fixtures = load_fixtures();
  std::set<std::string> types;
  for (const auto& f : fixtures) {
    auto type = f.doc.at("type").get<std::string>();
    EXPECT_EQ(f.name, type + ".json");
    types.insert(type);
  }
  EXPECT_EQ(fixtures.size(), all_input_types.size());
  for (auto type : all_input_types)
    EXPECT_EQ(types.count(std::string{type}), 1u) << type;
}

TEST(messages_roundtrip, decode_encode_decode_every_fixture) {
  decoder dec;
  for (const auto& f : load_fixtures()) {
    SCOPED_TRACE(f.name);
    auto first = dec.decode(f.topic, {f.text});
    ASSERT_TRUE(first) << first.error().message;
    auto source = f.doc.at("source").get<std::string>();
    auto encoded = encode_input_event(first.value(), source);
    auto second = dec.decode(f.topic, {encoded});
    ASSERT_TRUE(second) << second.error().message << "\n" << encoded;
    EXPECT_TRUE(equal(first.value(), second.value())) << encoded;
    // Same JSON as the fixture, up to formatting and key order: nothing is
    // lost, renamed or added.
    EXPECT_EQ(json::parse(encoded), f.doc)
      << "encoded:  " << json::parse(encoded).dump(2)
      << "\nfixture: " << f.doc.dump(2);
    // Encoding is deterministic.
    EXPECT_EQ(encode_input_event(second.value(), source), encoded);
  }
}

TEST(messages_roundtrip, typed_decoders_agree_with_dispatch) {
  decoder dec;
  for (const auto& f : load_fixtures()) {
    SCOPED_TRACE(f.name);
    auto any = dec.decode(f.topic, {f.text});
    ASSERT_TRUE(any);
    switch (f.topic) {
      case topic_kind::membership: {
        auto typed = dec.decode_membership({f.text});
        ASSERT_TRUE(typed);
        EXPECT_TRUE(equal(input_event{typed.value()}, any.value()));
        break;
      }
      case topic_kind::subscriptions: {
        auto typed = dec.decode_command({f.text});
        ASSERT_TRUE(typed);
        EXPECT_TRUE(equal(input_event{typed.value()}, any.value()));
        break;
      }
      case topic_kind::catalog: {
        auto typed = dec.decode_catalog({f.text});
        ASSERT_TRUE(typed);
        EXPECT_TRUE(equal(input_event{typed.value()}, any.value()));
        break;
      }
      case topic_kind::seat_deltas: {
        auto typed = dec.decode_seat_delta({f.text});
        ASSERT_TRUE(typed);
        EXPECT_TRUE(equal(input_event{typed.value()}, any.value()));
        break;
      }
    }
  }
}

TEST(messages_roundtrip, binary_mode_equals_structured_mode_on_every_topic) {
  decoder dec;
  std::set<topic_kind> topics;
  for (const auto& f : load_fixtures()) {
    SCOPED_TRACE(f.name);
    auto structured = dec.decode(f.topic, {f.text});
    ASSERT_TRUE(structured) << structured.error().message;
    auto headers = binary_headers(f.doc);
    // Key order kept: free-form objects are compared as text.
    auto value = nlohmann::ordered_json::parse(f.text).at("data").dump();
    auto binary = dec.decode(f.topic, {value, &headers});
    ASSERT_TRUE(binary) << binary.error().message;
    EXPECT_TRUE(equal(structured.value(), binary.value()));
    topics.insert(f.topic);
  }
  EXPECT_EQ(topics.size(), 4u);
}

TEST(messages_binary, headers_without_specversion_mean_structured_mode) {
  auto f = find_fixture(load_fixtures(), event_types::member_added);
  header_list headers{{"content-type", "application/cloudevents+json"},
                      {"ce_id", "ignored"}};
  decoder dec;
  auto result = dec.decode_membership({f.text, &headers});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result.value().ref.id, f.doc.at("id"));
}

// The content type decides first (the CloudEvents Kafka binding): a
// structured record that also carries a stray `ce_specversion` is still
// structured; any other content type leaves binary mode to the headers.
TEST(messages_binary, a_cloudevents_content_type_means_structured_mode) {
  auto f = find_fixture(load_fixtures(), event_types::member_added);
  decoder dec;
  for (const auto* content_type :
       {"application/cloudevents+json", "Application/CloudEvents+JSON",
        "application/cloudevents+json; charset=utf-8"}) {
    header_list headers{{"ce_specversion", "1.0"},
                        {"content-type", content_type}};
    auto result = dec.decode_membership({f.text, &headers});
    ASSERT_TRUE(result) << content_type << ": " << result.error().message;
    EXPECT_EQ(result.value().ref.id, f.doc.at("id"));
  }
  auto headers = binary_headers(f.doc);
  headers.emplace_back("content-type", "application/json");
  auto value = f.doc.at("data").dump();
  auto binary = dec.decode_membership({value, &headers});
  ASSERT_TRUE(binary) << binary.error().message;
  EXPECT_EQ(binary.value().ref.id, f.doc.at("id"));
}

TEST(messages_binary, last_of_repeated_headers_wins) {
  auto f = find_fixture(load_fixtures(), event_types::org_linked);
  auto headers = binary_headers(f.doc);
  headers.emplace_back("ce_id", "second-id");
  auto value = f.doc.at("data").dump();
  decoder dec;
  auto result = dec.decode_membership({value, &headers});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result.value().ref.id, "second-id");
}

TEST(messages_binary, subject_and_extension_headers_are_ignored) {
  auto f = find_fixture(load_fixtures(), event_types::subscription_expire);
  auto headers = binary_headers(f.doc);
  headers.emplace_back("ce_subject", "\xff not even UTF-8");
  headers.emplace_back("ce_traceparent", "00-abc-def-01");
  auto value = f.doc.at("data").dump();
  decoder dec;
  auto result = dec.decode_command({value, &headers});
  ASSERT_TRUE(result) << result.error().message;
}

// -- decoded values
// -------------------------------------------------------------

TEST(messages_decode, create_subscription_values) {
  auto f = find_fixture(load_fixtures(), event_types::subscription_create);
  decoder dec;
  auto result = dec.decode_command({f.text});
  ASSERT_TRUE(result) << result.error().message;
  const auto& ev = result.value();
  EXPECT_EQ(ev.ref.source, "//billing.example.com/zuora");
  EXPECT_EQ(ev.ref.id, "zuora-evt-8a28b3c1-0001");
  EXPECT_EQ(ev.ref.type, "seatledger.subscription.create");
  EXPECT_EQ(ev.ref.time, at("2026-01-15T00:00:00Z"));
  const auto* x = std::get_if<domain::create_subscription>(&ev.command);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->subscription_id, "A-S00012345");
  EXPECT_EQ(x->display_name, "Acme Corp \u2014 Self-Managed Ultimate");
  EXPECT_EQ(x->customer.salesforce_account_id, "0014x00001AbCdEAAV");
  EXPECT_EQ(x->customer.salesforce_subscription_id, "a1B4x000003XyZqEAK");
  EXPECT_EQ(x->instance.domain, "gitlab.acme.example");
  EXPECT_EQ(x->instance.type, domain::instance_type::primary);
  EXPECT_EQ(x->plan_id, "2c92a0ff76f0d5250176f2f8c86f305a");
  EXPECT_EQ(x->seats, 250);
  EXPECT_EQ(x->term.start, at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(x->term.end, at("2027-01-15T00:00:00Z"));
  EXPECT_FALSE(x->trial);
  EXPECT_EQ(record_key(ev), "A-S00012345");
}

TEST(messages_decode, membership_values_and_keys) {
  auto all = load_fixtures();
  decoder dec;
  auto added = dec.decode_membership(
    {find_fixture(all, event_types::member_added).text});
  ASSERT_TRUE(added);
  const auto& a = std::get<domain::member_added>(added.value().change);
  EXPECT_EQ(a.org_id, "org-4815162342");
  EXPECT_EQ(a.user_id, "user-1048576");
  EXPECT_TRUE(a.billable);
  EXPECT_EQ(a.role, "developer");
  EXPECT_EQ(added.value().ref.time, at("2026-01-16T09:14:03.218Z"));
  EXPECT_EQ(record_key(added.value()), "org-4815162342");

  auto updated = dec.decode_membership(
    {find_fixture(all, event_types::member_updated).text});
  ASSERT_TRUE(updated);
  EXPECT_FALSE(
    std::get<domain::member_updated>(updated.value().change).billable);

  auto snapshot = dec.decode_membership(
    {find_fixture(all, event_types::org_snapshot).text});
  ASSERT_TRUE(snapshot);
  const auto& s = std::get<domain::org_snapshot>(snapshot.value().change);
  ASSERT_EQ(s.members.size(), 4u);
  EXPECT_EQ(s.members[1].user_id, "user-3145728");
  EXPECT_TRUE(s.members[1].billable);
  EXPECT_EQ(s.members[3].user_id, "bot.ci-runner@org-4815162342");
  EXPECT_FALSE(s.members[3].billable);
}

TEST(messages_decode, catalog_values_and_key) {
  auto all = load_fixtures();
  decoder dec;
  auto upserted = dec.decode_catalog(
    {find_fixture(all, event_types::rate_plan_upserted).text});
  ASSERT_TRUE(upserted) << upserted.error().message;
  const auto& u = std::get<domain::rate_plan_upserted>(upserted.value().change);
  EXPECT_EQ(u.product.id, "2c92a0ff5a840412015aa3cde86f2ba6");
  EXPECT_EQ(u.product.name, "GitLab Ultimate - Self-Managed");
  EXPECT_EQ(u.rate_plan.name, "Ultimate - 1 Year");
  ASSERT_EQ(u.charges.size(), 2u);
  EXPECT_EQ(u.charges[0].billing_period, "annual");
  EXPECT_EQ(u.charges[1].billing_period, "12");
  // Compact JSON text, order and values kept.
  EXPECT_EQ(u.charges[1].custom_fields,
            R"({"CDotPlanType__c":"ci_minutes","ChargeTier__c":null,)"
            R"("ChargeDeployment__c":"Not Applicable","BillingPeriod":12})");
  EXPECT_EQ(json::parse(u.rate_plan.custom_fields),
            find_fixture(all, event_types::rate_plan_upserted)
              .doc["data"]["rate_plan"]["custom_fields"]);
  EXPECT_EQ(record_key(upserted.value()), "2c92a0ff76f0d5250176f2f8c86f305a");

  auto removed = dec.decode_catalog(
    {find_fixture(all, event_types::rate_plan_removed).text});
  ASSERT_TRUE(removed);
  EXPECT_EQ(record_key(removed.value()), "2c92a0ff5c2b1a0e015c2c4b3f4d1e22");
}

TEST(messages_decode, seat_delta_values_and_key) {
  auto f = find_fixture(load_fixtures(), event_types::seat_delta);
  decoder dec;
  auto result = dec.decode_seat_delta({f.text});
  ASSERT_TRUE(result) << result.error().message;
  const auto& d = result.value();
  EXPECT_EQ(d.delta_id, "6c1d8e2a-47b3-8f90-a1c2-d3e4f5a6b7c8");
  EXPECT_EQ(d.subscription_id, "A-S00012345");
  EXPECT_EQ(d.org_id, "org-4815162342");
  EXPECT_TRUE(d.org_linked);
  EXPECT_EQ(d.org_seq, 17);
  ASSERT_EQ(d.changes.size(), 3u);
  EXPECT_EQ(d.changes[2], (domain::seat_contribution{"user-3145728", false}));
  EXPECT_EQ(d.cause.source, "//customers.example.com/portal");
  EXPECT_EQ(d.cause.id, "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d");
  EXPECT_EQ(d.cause.type, "seatledger.org.linked");
  EXPECT_EQ(d.cause.time, at("2026-01-15T08:00:00Z"));
  EXPECT_EQ(d.part, 1);
  EXPECT_EQ(d.parts, 1);
  EXPECT_EQ(record_key(d), "A-S00012345");
}

TEST(messages_decode, update_metadata_keeps_overrides_as_compact_json) {
  auto f = find_fixture(load_fixtures(),
                        event_types::subscription_update_metadata);
  decoder dec;
  auto result = dec.decode_command({f.text});
  ASSERT_TRUE(result);
  const auto& x = std::get<domain::update_metadata>(result.value().command);
  EXPECT_EQ(x.rate_limit_overrides,
            R"({"api_requests_per_minute":12000,)"
            R"("git_http":{"burst":500,"enabled":true}})");
  EXPECT_EQ(x.analytics_access, true);
  ASSERT_TRUE(x.instance);
  EXPECT_EQ(x.instance->type, domain::instance_type::primary);
  ASSERT_TRUE(x.customer);
  EXPECT_EQ(x.customer->salesforce_subscription_id, "a1B4x000003XyZrEAK");
}

// -- leniency the contract asks for
// ---------------------------------------------

namespace {

std::string with_data(const fixture& f, const json& patch) {
  auto doc = f.doc;
  for (const auto& [key, value] : patch.items())
    doc["data"][key] = value;
  return doc.dump();
}

} // namespace

TEST(messages_decode, billable_defaults_to_true_on_member_added) {
  auto f = find_fixture(load_fixtures(), event_types::member_added);
  decoder dec;
  auto doc = f.doc;
  doc["data"]["billable"] = false;
  auto explicit_false = dec.decode_membership({doc.dump()});
  ASSERT_TRUE(explicit_false);
  EXPECT_FALSE(
    std::get<domain::member_added>(explicit_false.value().change).billable);
  doc["data"].erase("billable");
  doc["data"].erase("role");
  auto result = dec.decode_membership({doc.dump()});
  ASSERT_TRUE(result) << result.error().message;
  const auto& x = std::get<domain::member_added>(result.value().change);
  EXPECT_TRUE(x.billable);
  EXPECT_FALSE(x.role);
}

TEST(messages_decode, null_optional_fields_are_absent) {
  auto all = load_fixtures();
  decoder dec;
  auto renew = find_fixture(all, event_types::subscription_renew);
  auto result = dec.decode_command(
    {with_data(renew, {{"seats", nullptr}, {"plan_id", nullptr}})});
  ASSERT_TRUE(result) << result.error().message;
  const auto& x = std::get<domain::renew_subscription>(result.value().command);
  EXPECT_FALSE(x.seats);
  EXPECT_FALSE(x.plan_id);
}

TEST(messages_decode, unknown_fields_and_a_string_subject_are_ignored) {
  auto f = find_fixture(load_fixtures(), event_types::subscription_archive);
  auto doc = f.doc;
  doc["subject"] = "A-S00012345";
  doc["traceparent"]
    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  doc["data"]["future_field"] = {{"nested", {1, 2, 3}}};
  decoder dec;
  auto plain = dec.decode_command({f.text});
  auto extended = dec.decode_command({doc.dump()});
  ASSERT_TRUE(plain);
  ASSERT_TRUE(extended) << extended.error().message;
  EXPECT_TRUE(equal(plain.value(), extended.value()));
  // A subject of another JSON type breaks the CloudEvents envelope (it is
  // a string): a dead letter, like any ill-typed attribute.
  doc["subject"] = json::array({1});
  EXPECT_FALSE(dec.decode_command({doc.dump()}));
}

TEST(messages_decode, times_with_offsets_become_utc) {
  auto f = find_fixture(load_fixtures(), event_types::subscription_renew);
  auto doc = f.doc;
  doc["time"] = "2027-01-10T17:20:00+01:00";
  doc["data"]["term"]["start"] = "2027-01-14T19:00:00-05:00";
  decoder dec;
  auto result = dec.decode_command({doc.dump()});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result.value().ref.time, at("2027-01-10T16:20:00Z"));
  EXPECT_EQ(
    std::get<domain::renew_subscription>(result.value().command).term.start,
    at("2027-01-15T00:00:00Z"));
  // And are written back in UTC.
  auto encoded = json::parse(encode_command_event(result.value()));
  EXPECT_EQ(encoded["time"], "2027-01-10T16:20:00Z");
  EXPECT_EQ(encoded["data"]["term"]["start"], "2027-01-15T00:00:00Z");
}

TEST(messages_decode, billing_period_in_months_is_kept_as_text) {
  auto f = find_fixture(load_fixtures(), event_types::rate_plan_upserted);
  auto doc = f.doc;
  doc["data"]["charges"][0]["billing_period"] = 24;
  decoder dec;
  auto result = dec.decode_catalog({doc.dump()});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(std::get<domain::rate_plan_upserted>(result.value().change)
              .charges[0]
              .billing_period,
            "24");
}

TEST(messages_decode, strings_with_escapes_survive_the_round_trip) {
  auto f = find_fixture(load_fixtures(), event_types::subscription_archive);
  auto doc = f.doc;
  // Every control character but U+0000 (refused: messages_errors.u0000_*).
  std::string reason = "line\nbreak \"quoted\" \\ tab\t \\u0000 as text";
  reason += " \x01 \x1f \xc3\xa9 \xf0\x9f\x98\x80";
  doc["data"]["reason"] = reason;
  decoder dec;
  auto result = dec.decode_command({doc.dump()});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(
    std::get<domain::archive_subscription>(result.value().command).reason,
    reason);
  auto again = dec.decode_command({encode_command_event(result.value())});
  ASSERT_TRUE(again);
  EXPECT_TRUE(equal(result.value(), again.value()));
}

TEST(messages_decode, seat_delta_with_no_changes_is_valid) {
  // An org with no billable members can be linked: its delta is empty.
  auto f = find_fixture(load_fixtures(), event_types::seat_delta);
  auto doc = f.doc;
  doc["data"]["changes"] = json::array();
  decoder dec;
  auto result = dec.decode_seat_delta({doc.dump()});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(result.value().changes.empty());
}

TEST(messages_decode, one_decoder_serves_many_records) {
  auto all = load_fixtures();
  decoder dec;
  for (int round = 0; round < 3; ++round)
    for (const auto& f : all) {
      EXPECT_FALSE(dec.decode(f.topic, {"{"}));
      auto result = dec.decode(f.topic, {f.text});
      EXPECT_TRUE(result) << f.name;
    }
  decoder moved = std::move(dec);
  EXPECT_TRUE(moved.decode(all[0].topic, {all[0].text}));
}

TEST(messages_encode, seat_delta_envelope_names_the_delta_and_its_cause) {
  auto f = find_fixture(load_fixtures(), event_types::seat_delta);
  decoder dec;
  auto delta = dec.decode_seat_delta({f.text});
  ASSERT_TRUE(delta);
  auto copy = delta.value();
  copy.cause.time = at("2026-05-05T05:05:05.5Z");
  auto doc = json::parse(encode_seat_delta(copy, "seatledger-eu"));
  EXPECT_EQ(doc["id"], copy.delta_id);
  EXPECT_EQ(doc["source"], "seatledger-eu");
  EXPECT_EQ(doc["type"], "seatledger.internal.seat_delta");
  EXPECT_EQ(doc["time"], "2026-05-05T05:05:05.5Z");
  EXPECT_EQ(doc["data"]["cause"]["time"], "2026-05-05T05:05:05.5Z");
}
