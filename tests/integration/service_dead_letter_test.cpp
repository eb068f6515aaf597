// A dead letter is its record byte for byte (messages.md), and Kafka tells
// a null key, value or header value (a tombstone, a keyless record) from an
// empty one, as its Java client does (null vs ""). Records are published
// with a real producer, the real service dead-letters them through its
// outbox in PostgreSQL and its relay, and the dead-letter topic is read
// back with a real consumer.

#include <gtest/gtest.h>
#include <map>
#include <optional>
#include <string>

#include "service_fixture.hpp"

namespace seatledger::test {
namespace {

constexpr const char* dlq_topic = "seatledger.dlq.v1";

std::string member_added(const std::string& id, const std::string& org) {
  return cloud_event("seatledger.member.added", id,
                     rfc3339_from_now(std::chrono::hours{-1}),
                     {{"org_id", org}, {"user_id", "user-1"}}, "test-portal");
}

std::map<std::string, std::string> headers_of(const kafka::record& r) {
  return header_map(r);
}

/// The dead-letter topic once it holds `count` records (all it holds
/// then), or what it held after a minute, the service's log in the
/// failure message.
std::vector<kafka::record> dead_letters(running_service& s, std::size_t count) {
  std::vector<kafka::record> dlq;
  EXPECT_TRUE(wait_until(
    [&] {
      dlq = s.kafka().read_all(dlq_topic);
      return dlq.size() >= count;
    },
    std::chrono::seconds{60}))
    << s.log_tail();
  return dlq;
}

TEST(service_dead_letter, null_and_empty_keys_and_values_are_copied_as_sent) {
  running_service s;
  const std::string broken = R"({"specversion":"1.0","broken)";
  const auto keyless_event = member_added("null-key-event", "org-keyless");
  const auto empty_key_event = member_added("empty-key-event", "org-empty");
  // Records that cannot be read on the membership topic. The null-keyed ones
  // go to a random partition (the Java client's partitioner does the same);
  // each is told apart below by what it holds.
  s.kafka().publish(membership_topic, {{"org-tombstone", "", false, true},
                                       {"org-empty-value", "", false, false},
                                       {"", broken, true, false},
                                       {"", "", true, true},
                                       {"", empty_key_event, false, false},
                                       {"", keyless_event, true, false}});
  auto dlq = dead_letters(s, 6);
  ASSERT_EQ(dlq.size(), 6u);
  // By value where it has one, else by key (whatever the null-ness).
  std::map<std::string, kafka::record> found;
  for (auto& r : dlq) {
    auto name = !r.value.empty()             ? r.value
                : r.key == "org-tombstone"   ? "tombstone"
                : r.key == "org-empty-value" ? "empty value"
                                             : "null key and value";
    EXPECT_TRUE(found.emplace(name, std::move(r)).second) << name;
  }
  ASSERT_EQ(found.size(), 6u);

  const auto& tombstone = found.at("tombstone");
  EXPECT_TRUE(tombstone.null_value);
  EXPECT_FALSE(tombstone.null_key);
  EXPECT_EQ(tombstone.key, "org-tombstone");
  EXPECT_EQ(headers_of(tombstone)["seatledger.error.code"], "malformed_json");
  EXPECT_EQ(headers_of(tombstone)["seatledger.error.message"],
            "record value is null (a tombstone)");
  EXPECT_EQ(headers_of(tombstone)["seatledger.source.topic"], membership_topic);

  const auto& empty_value = found.at("empty value");
  EXPECT_FALSE(empty_value.null_value);
  EXPECT_EQ(empty_value.value, "");
  EXPECT_FALSE(empty_value.null_key);
  EXPECT_EQ(headers_of(empty_value)["seatledger.error.code"], "malformed_json");
  EXPECT_EQ(headers_of(empty_value)["seatledger.error.message"],
            "record value is empty");

  const auto& null_key = found.at(broken);
  EXPECT_TRUE(null_key.null_key);
  EXPECT_EQ(null_key.key, "");
  EXPECT_FALSE(null_key.null_value);
  EXPECT_EQ(headers_of(null_key)["seatledger.error.code"], "malformed_json");

  const auto& both = found.at("null key and value");
  EXPECT_TRUE(both.null_key);
  EXPECT_TRUE(both.null_value);
  EXPECT_EQ(headers_of(both)["seatledger.error.message"],
            "record value is null (a tombstone)");

  // Readable events, but not keyed by their org: an empty key and a null
  // one.
  const auto& empty_key = found.at(empty_key_event);
  EXPECT_FALSE(empty_key.null_key);
  EXPECT_EQ(empty_key.key, "");
  EXPECT_FALSE(empty_key.null_value);
  EXPECT_EQ(headers_of(empty_key)["seatledger.error.code"], "key_mismatch");
  EXPECT_EQ(headers_of(empty_key)["seatledger.error.message"],
            "record key '' is not the entity id 'org-empty'");

  const auto& keyless = found.at(keyless_event);
  EXPECT_TRUE(keyless.null_key);
  EXPECT_FALSE(keyless.null_value);
  EXPECT_EQ(headers_of(keyless)["seatledger.error.code"], "key_mismatch");
  EXPECT_EQ(headers_of(keyless)["seatledger.error.message"],
            "record key is null, not the entity id 'org-keyless'");
  for (const auto& [name, r] : found)
    EXPECT_EQ(headers_of(r)["seatledger.source.topic"], membership_topic)
      << name;
}

TEST(service_dead_letter, null_and_empty_header_values_are_copied_as_sent) {
  running_service s;
  // Not JSON, with headers of every kind; its copy carries them in order,
  // then the spec's.
  const kafka::record_headers sent{{"content-type",
                                    "application/cloudevents+json"},
                                   {"x-null", std::nullopt},
                                   {"x-empty", ""},
                                   {"x-bytes", "b"},
                                   {"x-null", "again, with bytes"}};
  // Binary mode with a null ce_id: wrong_type, not an empty id.
  const kafka::record_headers binary{{"ce_specversion", "1.0"},
                                     {"ce_id", std::nullopt},
                                     {"ce_source", "test-portal"},
                                     {"ce_type", "seatledger.member.added"},
                                     {"ce_time",
                                      rfc3339_from_now(std::chrono::hours{-1})},
                                     {"content-type", "application/json"}};
  s.kafka().publish(
    membership_topic,
    {{"org-headers", R"({"specversion":"1.0","broken)", false, false, sent},
     {"org-binary", R"({"org_id":"org-binary","user_id":"user-1"})", false,
      false, binary}});
  auto dlq = dead_letters(s, 2);
  ASSERT_EQ(dlq.size(), 2u);
  std::map<std::string, kafka::record> found;
  for (auto& r : dlq)
    found.emplace(r.key, std::move(r));
  ASSERT_EQ(found.count("org-headers"), 1u);
  ASSERT_EQ(found.count("org-binary"), 1u);

  const auto& copied = found.at("org-headers").headers;
  ASSERT_GT(copied.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(copied[i].first, sent[i].first) << i;
    EXPECT_EQ(copied[i].second.has_value(), sent[i].second.has_value()) << i;
    EXPECT_EQ(copied[i].second, sent[i].second) << i;
  }
  EXPECT_EQ(headers_of(found.at("org-headers"))["seatledger.error.code"],
            "malformed_json");

  const auto& binary_copy = found.at("org-binary");
  ASSERT_GT(binary_copy.headers.size(), binary.size());
  for (std::size_t i = 0; i < binary.size(); ++i)
    EXPECT_EQ(binary_copy.headers[i], binary[i]) << i;
  EXPECT_FALSE(binary_copy.headers[1].second.has_value());
  auto h = headers_of(binary_copy);
  EXPECT_EQ(h["seatledger.error.code"], "wrong_type");
  EXPECT_EQ(h["seatledger.error.message"],
            "ce_id: expected a string, got a null header value");
}

TEST(service_dead_letter, headers_named_like_its_own_are_not_copied) {
  // A record carrying `seatledger.error.code: fake` had a dead letter with
  // two codes, the forged one first; a key that is not UTF-8 was quoted in
  // the message header as it was.
  running_service s;
  const kafka::record_headers sent{{"seatledger.error.code", "fake"},
                                   {"x-trace", "t-1"},
                                   {"seatledger.source.offset", "0"}};
  s.kafka().publish(
    membership_topic,
    {{"org-forged", "not json", false, false, sent},
     {"\xff\xfe", member_added("e-utf8", "org-1"), false, false, {}}});
  auto dlq = dead_letters(s, 2);
  ASSERT_EQ(dlq.size(), 2u);
  for (const auto& r : dlq) {
    std::map<std::string, int> names;
    for (const auto& [name, value] : r.headers)
      ++names[name];
    for (const auto* own :
         {"seatledger.error.code", "seatledger.error.message",
          "seatledger.source.topic", "seatledger.source.partition",
          "seatledger.source.offset"})
      EXPECT_EQ(names[own], 1) << own;
  }
  const auto& forged = dlq[0].key == "org-forged" ? dlq[0] : dlq[1];
  const auto& bad_key = dlq[0].key == "org-forged" ? dlq[1] : dlq[0];
  auto h = headers_of(forged);
  EXPECT_EQ(h["seatledger.error.code"], "malformed_json");
  EXPECT_EQ(h["x-trace"], "t-1");
  for (const auto& r : s.kafka().read_all(membership_topic)) {
    if (r.key == "org-forged") {
      EXPECT_EQ(h["seatledger.source.offset"], std::to_string(r.offset));
    }
  }
  auto k = headers_of(bad_key);
  EXPECT_EQ(k["seatledger.error.code"], "key_mismatch");
  EXPECT_EQ(k["seatledger.error.message"].find('\xff'), std::string::npos)
    << k["seatledger.error.message"];
  EXPECT_NE(k["seatledger.error.message"].find("\\xff"), std::string::npos)
    << k["seatledger.error.message"];
}

} // namespace
} // namespace seatledger::test
