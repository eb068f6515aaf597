// Every way a record can be bad gets its decode_error code, naming the field.
// Most cases are generated from the fixtures: each field deleted, nulled or
// given a value of the wrong JSON type.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "domain/errors.hpp"
#include "domain/time.hpp"
#include "messages/decode.hpp"
#include "messages/types.hpp"

using namespace seatledger::messages;
using json = nlohmann::json;

namespace {

namespace fs = std::filesystem;

struct fixture {
  std::string name;
  std::string type;
  std::string text;
  json doc;
  topic_kind topic;
};

std::vector<fixture> load_fixtures() {
  std::vector<fixture> result;
  for (const auto& entry : fs::directory_iterator{SEATLEDGER_FIXTURES_DIR}) {
    if (entry.path().extension() != ".json")
      continue;
    std::ifstream in{entry.path(), std::ios::binary};
    std::ostringstream text;
    text << in.rdbuf();
    fixture f;
    f.name = entry.path().filename().string();
    f.text = text.str();
    f.doc = json::parse(f.text);
    f.type = f.doc.at("type").get<std::string>();
    f.topic = topic_of(f.type).value_or(topic_kind::membership);
    result.push_back(std::move(f));
  }
  std::sort(result.begin(), result.end(),
            [](const fixture& x, const fixture& y) { return x.name < y.name; });
  return result;
}

const fixture& find_fixture(std::string_view type) {
  static const auto all = load_fixtures();
  for (const auto& f : all)
    if (f.type == type)
      return f;
  throw std::runtime_error("no fixture for " + std::string{type});
}

// The data fields each type requires, per messages.md, nested ones included
// (array elements as [0]). Every other field of the fixtures is optional.
const std::map<std::string, std::set<std::string>> required_fields = {
  {"seatledger.member.added", {"data.org_id", "data.user_id"}},
  {"seatledger.member.updated",
   {"data.org_id", "data.user_id", "data.billable"}},
  {"seatledger.member.removed", {"data.org_id", "data.user_id"}},
  {"seatledger.org.snapshot",
   {"data.org_id", "data.members", "data.members[0].user_id",
    "data.members[0].billable"}},
  {"seatledger.org.linked", {"data.org_id", "data.subscription_id"}},
  {"seatledger.org.unlinked", {"data.org_id", "data.subscription_id"}},
  {"seatledger.subscription.create",
   {"data.subscription_id", "data.display_name", "data.customer",
    "data.instance", "data.instance.domain", "data.instance.type",
    "data.plan_id", "data.seats", "data.term", "data.term.start",
    "data.term.end", "data.trial"}},
  {"seatledger.subscription.renew",
   {"data.subscription_id", "data.term", "data.term.start", "data.term.end"}},
  {"seatledger.subscription.update_entitlements", {"data.subscription_id"}},
  {"seatledger.subscription.convert_trial",
   {"data.subscription_id", "data.plan_id", "data.seats", "data.term",
    "data.term.start", "data.term.end"}},
  {"seatledger.subscription.expire", {"data.subscription_id"}},
  {"seatledger.subscription.archive", {"data.subscription_id", "data.reason"}},
  {"seatledger.subscription.update_metadata", {"data.subscription_id"}},
  {"seatledger.license.issue", {"data.subscription_id"}},
  {"seatledger.catalog.rate_plan.upserted",
   {"data.product", "data.product.id", "data.product.name", "data.rate_plan",
    "data.rate_plan.id", "data.rate_plan.name", "data.rate_plan.custom_fields",
    "data.charges", "data.charges[0].id", "data.charges[0].name",
    "data.charges[0].billing_period", "data.charges[0].custom_fields"}},
  {"seatledger.catalog.rate_plan.removed", {"data.rate_plan_id"}},
  {"seatledger.internal.seat_delta",
   {"data.delta_id", "data.subscription_id", "data.org_id", "data.org_seq",
    "data.org_linked", "data.changes", "data.changes[0].user_id",
    "data.changes[0].billable", "data.cause", "data.cause.source",
    "data.cause.id", "data.cause.type", "data.cause.time", "data.part",
    "data.parts"}},
};

// Free-form objects: nothing inside them is checked.
bool opaque(const std::string& key) {
  return key == "custom_fields" || key == "rate_limit_overrides";
}

struct field {
  std::string path;       // data.term.start
  json::json_pointer ptr; // /data/term/start
  bool array_element = false;
};

void walk(const json& node, const std::string& path,
          const json::json_pointer& ptr, std::vector<field>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      field f{path + "." + key, ptr / key, false};
      out.push_back(f);
      if (!opaque(key))
        walk(value, f.path, f.ptr, out);
    }
  } else if (node.is_array() && !node.empty()) {
    field f{path + "[0]", ptr / 0, true};
    out.push_back(f);
    walk(node[0], f.path, f.ptr, out);
  }
}

std::vector<field> data_fields(const fixture& f) {
  std::vector<field> result;
  walk(f.doc.at("data"), "data", json::json_pointer{"/data"}, result);
  return result;
}

void erase_at(json& doc, const field& f) {
  auto& parent = doc.at(f.ptr.parent_pointer());
  if (f.array_element)
    parent.erase(0);
  else
    parent.erase(f.ptr.back());
}

decode_result<input_event> decode_doc(const fixture& f, const json& doc) {
  decoder dec;
  return dec.decode(f.topic, {doc.dump()});
}

// The error has the code, names the field, and its message starts with it.
::testing::AssertionResult fails_with(const decode_result<input_event>& result,
                                      decode_error_code code,
                                      const std::string& field) {
  if (result)
    return ::testing::AssertionFailure()
           << "decoded, expected " << to_string(code) << " at " << field;
  const auto& err = result.error();
  if (err.code != code || err.field != field
      || err.message.rfind(field + ": ", 0) != 0)
    return ::testing::AssertionFailure()
           << "expected " << to_string(code) << " at " << field << ", got "
           << to_string(err.code) << " at '" << err.field
           << "': " << err.message;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult fails_with(const decode_result<input_event>& result,
                                      decode_error_code code) {
  if (result)
    return ::testing::AssertionFailure()
           << "decoded, expected " << to_string(code);
  if (result.error().code != code)
    return ::testing::AssertionFailure()
           << "expected " << to_string(code) << ", got "
           << to_string(result.error().code) << ": " << result.error().message;
  if (result.error().message.empty())
    return ::testing::AssertionFailure() << "empty message";
  return ::testing::AssertionSuccess();
}

std::string ok_or_message(const decode_result<input_event>& result) {
  return result ? "" : result.error().message;
}

using code = decode_error_code;

} // namespace

// -- codes
// ------------------------------------------------------------------------

TEST(messages_errors, codes_have_stable_numbers_and_names) {
  const std::vector<std::pair<code, const char*>> expected = {
    {code::malformed_json, "malformed_json"},
    {code::not_cloudevents, "not_cloudevents"},
    {code::unsupported_specversion, "unsupported_specversion"},
    {code::unknown_type, "unknown_type"},
    {code::missing_field, "missing_field"},
    {code::wrong_type, "wrong_type"},
    {code::invalid_identifier, "invalid_identifier"},
    {code::invalid_timestamp, "invalid_timestamp"},
    {code::invalid_value, "invalid_value"},
    {code::oversized, "oversized"},
  };
  int number = 1;
  for (const auto& [c, name] : expected) {
    EXPECT_EQ(static_cast<int>(c), number++);
    EXPECT_STREQ(to_string(c), name);
  }
}

TEST(messages_errors, required_fields_list_matches_the_fixtures) {
  // Guards the generated tests below: every path named as required exists.
  for (const auto& [type, paths] : required_fields) {
    const auto& f = find_fixture(type);
    std::set<std::string> present;
    for (const auto& x : data_fields(f))
      present.insert(x.path);
    for (const auto& p : paths)
      EXPECT_EQ(present.count(p), 1u) << type << ": " << p;
  }
  EXPECT_EQ(required_fields.size(), 17u);
}

// -- generated from the fixtures
// ---------------------------------------------------

TEST(messages_errors, each_required_field_removed_is_missing_field) {
  int required_checked = 0;
  int optional_checked = 0;
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    for (const auto& x : data_fields(f)) {
      auto doc = f.doc;
      erase_at(doc, x);
      auto result = decode_doc(f, doc);
      if (required.count(x.path) != 0) {
        EXPECT_TRUE(fails_with(result, code::missing_field, x.path)) << type;
        ++required_checked;
      } else {
        EXPECT_TRUE(result)
          << type << " without " << x.path << ": " << ok_or_message(result);
        ++optional_checked;
      }
    }
  }
  EXPECT_GT(required_checked, 60);
  EXPECT_GT(optional_checked, 20);
}

TEST(messages_errors, each_required_field_null_is_wrong_type) {
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    for (const auto& x : data_fields(f)) {
      auto doc = f.doc;
      doc[x.ptr] = nullptr;
      auto result = decode_doc(f, doc);
      if (required.count(x.path) != 0 || x.array_element)
        EXPECT_TRUE(fails_with(result, code::wrong_type, x.path)) << type;
      else
        EXPECT_TRUE(result)
          << type << " with null " << x.path << ": " << ok_or_message(result);
    }
  }
}

TEST(messages_errors, each_field_of_the_wrong_json_type_is_wrong_type) {
  int checked = 0;
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    for (const auto& x : data_fields(f)) {
      const auto& original = f.doc.at(x.ptr);
      std::vector<json> wrong;
      bool billing_period = x.path.size() >= 14
                            && x.path.substr(x.path.size() - 14)
                                 == "billing_period";
      if (original.is_string() && billing_period)
        wrong = {true, 5.5, json::object(), json::array()};
      else if (original.is_string())
        wrong = {42, true, 1.5, json::object(), json::array({"x"})};
      else if (original.is_boolean())
        wrong = {"true", 1, json::object(), json::array()};
      else if (original.is_number_integer())
        wrong = {"5", 5.5, 1e3, true, json::array({5})};
      else if (original.is_object())
        wrong = {"{}", 1, true, json::array()};
      else if (original.is_array())
        wrong = {"[]", 1, false, json::object()};
      else
        continue; // null inside a free-form object: not reached
      for (const auto& value : wrong) {
        auto doc = f.doc;
        doc[x.ptr] = value;
        EXPECT_TRUE(fails_with(decode_doc(f, doc), code::wrong_type, x.path))
          << type << " with " << value.dump();
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(messages_errors, bad_identifiers_are_invalid_identifier) {
  const std::set<std::string> id_keys = {"org_id",          "user_id",
                                         "subscription_id", "plan_id",
                                         "delta_id",        "rate_plan_id"};
  const std::set<std::string> id_paths = {"data.rate_plan.id",
                                          "data.charges[0].id"};
  const std::vector<std::string> bad = {
    "",
    std::string(129, 'a'),
    "has space",
    "us\xc3\xa9r", // é
    "emoji\xf0\x9f\x98\x80",
    "tab\there",
    "semi;colon",
    std::string("nul\0byte", 8),
  };
  int checked = 0;
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    for (const auto& x : data_fields(f)) {
      auto key = x.ptr.back();
      if (id_keys.count(key) == 0 && id_paths.count(x.path) == 0)
        continue;
      for (const auto& value : bad) {
        auto doc = f.doc;
        doc[x.ptr] = value;
        EXPECT_TRUE(
          fails_with(decode_doc(f, doc), code::invalid_identifier, x.path))
          << type << " with " << json(value).dump();
        ++checked;
      }
      // The edges of the rule are accepted.
      for (const auto& value : {std::string(128, 'z'), std::string("a"),
                                std::string("A-z_0.9:x@y/z")}) {
        auto doc = f.doc;
        doc[x.ptr] = value;
        auto result = decode_doc(f, doc);
        EXPECT_TRUE(result) << type << " " << x.path << " = " << value << ": "
                            << ok_or_message(result);
      }
    }
  }
  EXPECT_GT(checked, 150);
}

TEST(messages_errors, bad_times_are_invalid_timestamp) {
  const std::vector<std::string> bad = {
    "",
    "yesterday",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-15 00:00:00Z",
    "2026-01-15T00:00:00",
    "2026-01-15",
    "2026-01-15T00:00:00.1234567",
    "2026-01-15T25:00:00Z",
    // Outside four-digit years once in UTC: could not be written back.
    "0000-01-01T00:00:00+01:00",
    // Year 0000, which PostgreSQL refuses.
    "0000-06-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01",
    "9999-12-31T23:59:59-01:00",
  };
  int checked = 0;
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    std::vector<std::pair<std::string, json::json_pointer>> times
      = {{"time", json::json_pointer{"/time"}}};
    for (const auto& x : data_fields(f)) {
      auto key = x.ptr.back();
      if (key == "start" || key == "end" || key == "expires_at"
          || x.path == "data.cause.time")
        times.emplace_back(x.path, x.ptr);
    }
    for (const auto& [path, ptr] : times)
      for (const auto& value : bad) {
        auto doc = f.doc;
        doc[ptr] = value;
        EXPECT_TRUE(
          fails_with(decode_doc(f, doc), code::invalid_timestamp, path))
          << type << " with " << value;
        ++checked;
      }
  }
  EXPECT_GT(checked, 17 * 11 + 60);
}

// RFC 3339 allows any number of fraction digits; a nanosecond time (Java's
// Instant, Go's RFC3339Nano) decodes, cut to microseconds.
TEST(messages_errors, nanosecond_times_decode_to_microseconds) {
  int checked = 0;
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    std::vector<json::json_pointer> times = {json::json_pointer{"/time"}};
    for (const auto& x : data_fields(f)) {
      auto key = x.ptr.back();
      if (key == "start" || key == "end" || key == "expires_at"
          || x.path == "data.cause.time")
        times.push_back(x.ptr);
    }
    for (const auto& ptr : times) {
      auto doc = f.doc;
      auto original = doc[ptr].get<std::string>();
      ASSERT_EQ(original.back(), 'Z') << type;
      // Nine digits after the whole seconds, wherever the fixture's were.
      doc[ptr] = original.substr(0, 19) + ".123456789Z";
      auto result = decode_doc(f, doc);
      EXPECT_TRUE(result) << type << " " << ptr.to_string() << ": "
                          << (result ? "" : result.error().message);
      ++checked;
    }
  }
  EXPECT_GE(checked, 25); // every envelope and data time of the fixtures
  const auto& f = find_fixture("seatledger.member.added");
  auto doc = f.doc;
  doc["time"] = "2026-01-15T00:00:00.123456789Z";
  auto result = decode_doc(f, doc);
  ASSERT_TRUE(result);
  EXPECT_EQ(
    std::get<seatledger::domain::membership_event>(result.value()).ref.time,
    *seatledger::domain::parse_rfc3339("2026-01-15T00:00:00.123456Z"));
}

TEST(messages_errors, every_fixture_on_another_topic_is_unknown_type) {
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    for (auto topic : {topic_kind::membership, topic_kind::subscriptions,
                       topic_kind::catalog, topic_kind::seat_deltas}) {
      if (topic == f.topic)
        continue;
      decoder dec;
      auto result = dec.decode(topic, {f.text});
      EXPECT_TRUE(fails_with(result, code::unknown_type, "type")) << type;
      if (!result) {
        EXPECT_NE(result.error().message.find(type), std::string::npos)
          << result.error().message;
      }
    }
  }
}

// -- the envelope
// -------------------------------------------------------------------

TEST(messages_errors, envelope_attributes) {
  const auto& f = find_fixture(event_types::member_removed);
  auto with = [&](std::function<void(json&)> edit) {
    auto doc = f.doc;
    edit(doc);
    return decode_doc(f, doc);
  };
  for (auto attr : {"id", "source", "type", "time", "data"})
    EXPECT_TRUE(fails_with(with([&](json& d) { d.erase(attr); }),
                           code::missing_field, attr));
  EXPECT_TRUE(with([](json& d) { d.erase("datacontenttype"); }));
  EXPECT_TRUE(fails_with(with([](json& d) { d.erase("specversion"); }),
                         code::not_cloudevents, "specversion"));
  for (auto version : {"0.3", "1", "1.0.0", "2.0", ""})
    EXPECT_TRUE(fails_with(with([&](json& d) { d["specversion"] = version; }),
                           code::unsupported_specversion, "specversion"));
  EXPECT_TRUE(fails_with(with([](json& d) { d["specversion"] = 1.0; }),
                         code::wrong_type, "specversion"));
  // The subject is not used, but an integer one was taken as well-formed.
  for (auto attr :
       {"id", "source", "type", "time", "datacontenttype", "subject"}) {
    EXPECT_TRUE(
      fails_with(with([&](json& d) { d[attr] = 42; }), code::wrong_type, attr));
  }
  EXPECT_TRUE(with([](json& d) { d["subject"] = "o-1"; }));
  EXPECT_TRUE(with([](json& d) { d["subject"] = nullptr; }));
  for (auto attr : {"id", "source"}) {
    EXPECT_TRUE(fails_with(with([&](json& d) { d[attr] = ""; }),
                           code::invalid_value, attr));
    EXPECT_TRUE(
      fails_with(with([&](json& d) { d[attr] = std::string(257, 'x'); }),
                 code::oversized, attr));
    EXPECT_TRUE(with([&](json& d) { d[attr] = std::string(256, 'x'); }));
  }
  for (auto data : {json("text"), json::array(), json(42), json(nullptr)})
    EXPECT_TRUE(fails_with(with([&](json& d) { d["data"] = data; }),
                           code::not_cloudevents, "data"));
  EXPECT_TRUE(
    fails_with(with([](json& d) { d["type"] = "seatledger.member.exploded"; }),
               code::unknown_type, "type"));
  // Types are exact: no case folding, no prefix matching.
  EXPECT_TRUE(
    fails_with(with([](json& d) { d["type"] = "SEATLEDGER.MEMBER.REMOVED"; }),
               code::unknown_type, "type"));
  EXPECT_TRUE(
    fails_with(with([](json& d) { d["type"] = "seatledger.member.removed2"; }),
               code::unknown_type, "type"));
}

TEST(messages_errors, not_json_and_not_cloudevents) {
  decoder dec;
  auto decode = [&](std::string_view value) {
    return dec.decode(topic_kind::membership, {value});
  };
  for (std::string_view value :
       {"", " ", "{", "{\"specversion\":", "nul", "{'a':1}", "[1,2",
        "{\"a\":1}{", "\xff\xfe\xfd", "{\"specversion\":\"1.0\",}"})
    EXPECT_TRUE(fails_with(decode(value), code::malformed_json))
      << ::testing::PrintToString(std::string{value});
  // Valid JSON but invalid UTF-8 inside a string.
  EXPECT_TRUE(
    fails_with(decode("{\"specversion\":\"1.0\xc3\"}"), code::malformed_json));
  for (std::string_view value :
       {"[]", "42", "\"1.0\"", "null", "true", "{}", "{\"data\":{}}"}) {
    auto result = decode(value);
    EXPECT_TRUE(fails_with(result, code::not_cloudevents)) << value;
  }
}

TEST(messages_errors, a_member_given_twice_is_malformed) {
  // Parsers disagree on which of the two counts (simdjson's lookup finds
  // the first; Jackson, Python and JavaScript keep the last), so the
  // producer's intent is unknown: refused, never read one way.
  struct twice_case {
    std::string_view type;
    std::string after; // the duplicate goes right after this text
    std::string member;
    std::string field;
  };
  const std::vector<twice_case> cases = {
    {event_types::subscription_create, "{", R"("id":"other",)", "id"},
    {event_types::subscription_create, R"("data":{)", R"("seats":1000,)",
     "data.seats"},
    {event_types::subscription_create, R"("customer":{)",
     R"("salesforce_account_id":"0015000000zzzzz",)",
     "data.customer.salesforce_account_id"},
    {event_types::rate_plan_upserted, R"("charges":[{)", R"("id":"dup",)",
     "data.charges[0].id"},
  };
  for (const auto& c : cases) {
    const auto& f = find_fixture(c.type);
    auto text = f.doc.dump();
    auto at = text.find(c.after);
    ASSERT_NE(at, std::string::npos) << c.after << " in " << text;
    auto once = text;
    text.insert(at + c.after.size(), c.member);
    decoder dec;
    EXPECT_TRUE(
      fails_with(dec.decode(f.topic, {text}), code::malformed_json, c.field))
      << text;
    EXPECT_TRUE(dec.decode(f.topic, {once})) << once;
  }
  // Binary mode: the value is the data.
  const auto& f = find_fixture(event_types::org_linked);
  header_list headers;
  for (auto attr : {"specversion", "id", "source", "type", "time"})
    headers.emplace_back(std::string{"ce_"} + attr,
                         f.doc.at(attr).get<std::string>());
  auto value = f.doc.at("data").dump();
  value.insert(1, R"("org_id":"org-other",)");
  decoder dec;
  EXPECT_TRUE(fails_with(dec.decode(topic_kind::membership, {value, &headers}),
                         code::malformed_json, "data.org_id"))
    << value;
}

TEST(messages_errors, a_text_is_checked_by_the_rules_of_a_record) {
  // The HTTP API's bodies: its JSON library takes the last of two members
  // and any depth, so it asks the decoder first.
  decoder dec;
  EXPECT_FALSE(
    dec.check_json(R"({"features":["a"],"n":{"m":[1,{}]}})", "the body"));
  EXPECT_FALSE(dec.check_json("[1, 2]", "the body"))
    << "a JSON text of another type is the caller's to refuse";
  auto twice = dec.check_json(R"({"n":{"m":1,"m":2}})", "the body");
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->code, code::malformed_json);
  EXPECT_EQ(twice->field, "n.m");
  EXPECT_EQ(twice->message, "n.m: appears more than once in its object");
  auto deep = dec.check_json(std::string(5000, '[') + std::string(5000, ']'),
                             "the body");
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->code, code::malformed_json);
  EXPECT_EQ(deep->message.rfind("the body is not valid JSON (", 0), 0u)
    << deep->message;
  auto not_utf8 = dec.check_json("{\"a\":\"\xff\"}", "the body");
  ASSERT_TRUE(not_utf8);
  EXPECT_EQ(not_utf8->message, "the body is not valid UTF-8");
  auto empty = dec.check_json("", "the body");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->message, "the body is empty");
  // A record's wording is unchanged.
  auto record = dec.decode(topic_kind::membership, {"{"});
  ASSERT_FALSE(record);
  EXPECT_EQ(record.error().message.rfind("record value is not valid JSON", 0),
            0u)
    << record.error().message;
}

TEST(messages_errors, truncated_fixtures_are_malformed) {
  for (const auto& [type, required] : required_fields) {
    const auto& f = find_fixture(type);
    decoder dec;
    // Every cut that leaves the outer object unterminated.
    auto last_brace = f.text.rfind('}');
    for (std::size_t n = 0; n < last_brace; n += 7) {
      auto result = dec.decode(f.topic,
                               {std::string_view{f.text}.substr(0, n)});
      EXPECT_TRUE(fails_with(result, code::malformed_json))
        << type << " cut at " << n;
    }
  }
}

TEST(messages_errors, random_bytes_never_decode) {
  std::mt19937 rng{20260115};
  decoder dec;
  for (int i = 0; i < 2000; ++i) {
    std::string value(rng() % 200, '\0');
    for (auto& c : value)
      c = static_cast<char>(rng());
    auto topic = static_cast<topic_kind>(rng() % 4);
    auto result = dec.decode(topic, {value});
    ASSERT_FALSE(result);
    auto c = result.error().code;
    EXPECT_TRUE(c == code::malformed_json || c == code::not_cloudevents)
      << to_string(c) << ": " << result.error().message;
  }
}

TEST(messages_errors, record_larger_than_one_mebibyte_is_oversized) {
  const auto& f = find_fixture(event_types::member_removed);
  auto compact = f.doc.dump();
  ASSERT_EQ(compact.back(), '}');
  auto padded = [&](std::size_t size) {
    auto text = compact;
    text.insert(text.size() - 1, size - compact.size(), ' ');
    return text;
  };
  decoder dec;
  auto exactly = padded(limits::record_value);
  ASSERT_EQ(exactly.size(), 1024u * 1024u);
  EXPECT_TRUE(dec.decode_membership({exactly}));
  auto over = dec.decode(f.topic, {padded(limits::record_value + 1)});
  EXPECT_TRUE(fails_with(over, code::oversized));
  // A snapshot big enough to matter hits the record limit first.
  auto snapshot = find_fixture(event_types::org_snapshot).doc;
  auto& members = snapshot["data"]["members"];
  for (int i = 0; i < 40'000; ++i)
    members.push_back(
      {{"user_id", "u" + std::to_string(i)}, {"billable", true}});
  EXPECT_TRUE(fails_with(dec.decode(topic_kind::membership, {snapshot.dump()}),
                         code::oversized));
}

TEST(messages_errors, long_strings_and_arrays_are_oversized) {
  struct text_case {
    std::string_view type;
    std::string ptr;
    std::size_t max;
    std::string field;
  };
  const std::vector<text_case> texts = {
    {event_types::subscription_create, "/data/display_name", 1024,
     "data.display_name"},
    {event_types::subscription_create, "/data/instance/domain", 1024,
     "data.instance.domain"},
    {event_types::subscription_create, "/data/customer/salesforce_account_id",
     128, "data.customer.salesforce_account_id"},
    {event_types::subscription_update_metadata,
     "/data/customer/salesforce_subscription_id", 128,
     "data.customer.salesforce_subscription_id"},
    {event_types::subscription_update_metadata, "/data/display_name", 1024,
     "data.display_name"},
    {event_types::subscription_archive, "/data/reason", 1024, "data.reason"},
    {event_types::member_added, "/data/role", 1024, "data.role"},
    {event_types::member_updated, "/data/role", 1024, "data.role"},
    {event_types::rate_plan_upserted, "/data/product/name", 1024,
     "data.product.name"},
    {event_types::rate_plan_upserted, "/data/product/id", 128,
     "data.product.id"},
    {event_types::rate_plan_upserted, "/data/rate_plan/name", 1024,
     "data.rate_plan.name"},
    {event_types::rate_plan_upserted, "/data/charges/0/name", 1024,
     "data.charges[0].name"},
    {event_types::rate_plan_upserted, "/data/charges/0/billing_period", 1024,
     "data.charges[0].billing_period"},
    {event_types::subscription_update_entitlements, "/data/features/0", 256,
     "data.features[0]"},
    {event_types::license_issue, "/data/features/0", 256, "data.features[0]"},
    {event_types::seat_delta, "/data/cause/source", 256, "data.cause.source"},
    {event_types::seat_delta, "/data/cause/id", 256, "data.cause.id"},
    {event_types::seat_delta, "/data/cause/type", 256, "data.cause.type"},
  };
  for (const auto& c : texts) {
    const auto& f = find_fixture(c.type);
    json::json_pointer ptr{c.ptr};
    auto doc = f.doc;
    doc[ptr] = std::string(c.max, 'a');
    EXPECT_TRUE(decode_doc(f, doc)) << c.ptr;
    doc[ptr] = std::string(c.max + 1, 'a');
    EXPECT_TRUE(fails_with(decode_doc(f, doc), code::oversized, c.field));
  }

  struct array_case {
    std::string_view type;
    std::string key;
    std::size_t max;
    json element;
  };
  const std::vector<array_case> arrays = {
    {event_types::subscription_update_entitlements, "features", 256, json("f")},
    {event_types::license_issue, "features", 256, json("f")},
    {event_types::rate_plan_upserted, "charges", 1000,
     json{{"id", "c"},
          {"name", "n"},
          {"billing_period", "annual"},
          {"custom_fields", json::object()}}},
    {event_types::seat_delta, "changes", 10'000,
     json{{"user_id", "u"}, {"billable", true}}},
  };
  for (const auto& c : arrays) {
    const auto& f = find_fixture(c.type);
    auto doc = f.doc;
    doc["data"][c.key] = json::array();
    for (std::size_t i = 0; i < c.max; ++i)
      doc["data"][c.key].push_back(c.element);
    EXPECT_TRUE(decode_doc(f, doc)) << c.key;
    doc["data"][c.key].push_back(c.element);
    EXPECT_TRUE(
      fails_with(decode_doc(f, doc), code::oversized, "data." + c.key));
  }
}

TEST(messages_errors, out_of_range_values_are_invalid_value) {
  struct value_case {
    std::string_view type;
    std::string ptr;
    json value;
    std::string field;
  };
  const json too_big = json::parse("9223372036854775808"); // 2^63
  const std::vector<value_case> cases = {
    {event_types::subscription_create, "/data/seats", -1, "data.seats"},
    {event_types::subscription_create, "/data/seats", too_big, "data.seats"},
    {event_types::subscription_renew, "/data/seats", -5, "data.seats"},
    {event_types::subscription_update_entitlements, "/data/seats", -1,
     "data.seats"},
    {event_types::subscription_convert_trial, "/data/seats", -1, "data.seats"},
    {event_types::subscription_create, "/data/instance/type", "TERTIARY",
     "data.instance.type"},
    {event_types::subscription_create, "/data/instance/type", "primary",
     "data.instance.type"},
    {event_types::subscription_update_metadata, "/data/instance/type", "",
     "data.instance.type"},
    {event_types::subscription_create, "/data/instance/domain", "",
     "data.instance.domain"},
    {event_types::rate_plan_upserted, "/data/product/id", "",
     "data.product.id"},
    {event_types::subscription_update_entitlements, "/data/features/1", "",
     "data.features[1]"},
    {event_types::rate_plan_upserted, "/data/charges/1/billing_period", 0,
     "data.charges[1].billing_period"},
    {event_types::rate_plan_upserted, "/data/charges/1/billing_period", -12,
     "data.charges[1].billing_period"},
    {event_types::rate_plan_upserted, "/data/charges/0/billing_period", "",
     "data.charges[0].billing_period"},
    {event_types::seat_delta, "/data/part", 0, "data.part"},
    {event_types::seat_delta, "/data/part", 2, "data.part"}, // > parts
    {event_types::seat_delta, "/data/parts", 0, "data.parts"},
    {event_types::seat_delta, "/data/parts", 2147483648LL, "data.parts"},
    {event_types::seat_delta, "/data/cause/id", "", "data.cause.id"},
    // A snapshot listing one user twice (here: billable, then not).
    {event_types::org_snapshot, "/data/members/3/user_id", "user-3145728",
     "data.members"},
  };
  for (const auto& c : cases) {
    const auto& f = find_fixture(c.type);
    auto doc = f.doc;
    doc[json::json_pointer{c.ptr}] = c.value;
    EXPECT_TRUE(fails_with(decode_doc(f, doc), code::invalid_value, c.field))
      << c.type << " " << c.ptr << " = " << c.value.dump();
  }
  // A product id is the billing system's text, not an identifier of the
  // spec's alphabet.
  auto upsert = find_fixture(event_types::rate_plan_upserted).doc;
  upsert["data"]["product"]["id"] = "Zuora product #8a28 (EU)";
  EXPECT_TRUE(
    decode_doc(find_fixture(event_types::rate_plan_upserted), upsert));
  // An empty Salesforce id is the domain's to judge (a rejection, or an
  // INTERNAL subscription without one), not a dead letter.
  for (const char* field :
       {"salesforce_account_id", "salesforce_subscription_id"}) {
    auto doc = find_fixture(event_types::subscription_create).doc;
    doc["data"]["customer"][field] = "";
    auto decoded = decode_doc(find_fixture(event_types::subscription_create),
                              doc);
    ASSERT_TRUE(decoded) << field;
  }
  // Sanity of the edges: a free plan, the largest part.
  auto create = find_fixture(event_types::subscription_create).doc;
  create["data"]["seats"] = 0;
  EXPECT_TRUE(
    decode_doc(find_fixture(event_types::subscription_create), create));
  auto delta = find_fixture(event_types::seat_delta).doc;
  delta["data"]["part"] = 2147483647;
  delta["data"]["parts"] = 2147483647;
  EXPECT_TRUE(decode_doc(find_fixture(event_types::seat_delta), delta));
}

TEST(messages_errors, u0000_anywhere_is_invalid_value) {
  // PostgreSQL's text and jsonb cannot hold U+0000: a record carrying one
  // was refused by every commit that tried to store it, and the replica
  // retried that batch for ever instead of dead-lettering the record.
  struct nul_case {
    std::string_view type;
    std::string ptr;
  };
  const std::string nul{"a\0b", 3};
  for (const auto& c :
       {nul_case{event_types::member_added, "/id"},
        nul_case{event_types::member_added, "/source"},
        nul_case{event_types::member_added, "/data/role"},
        nul_case{event_types::subscription_update_metadata,
                 "/data/display_name"},
        nul_case{event_types::subscription_update_metadata,
                 "/data/rate_limit_overrides/git_http/note"},
        nul_case{event_types::subscription_archive, "/data/reason"},
        nul_case{event_types::rate_plan_upserted,
                 "/data/rate_plan/custom_fields/Note__c"}}) {
    const auto& f = find_fixture(c.type);
    auto doc = f.doc;
    doc[json::json_pointer{c.ptr}] = nul; // dumped as the escape \u0000
    ASSERT_NE(doc.dump().find("\\u0000"), std::string::npos);
    EXPECT_TRUE(fails_with(decode_doc(f, doc), code::invalid_value))
      << c.type << " " << c.ptr;
  }
  // An escaped backslash followed by "u0000" is six characters of text.
  const auto& f = find_fixture(event_types::subscription_archive);
  auto doc = f.doc;
  doc["data"]["reason"] = "C:\\u0000 is not a NUL";
  ASSERT_NE(doc.dump().find("\\\\u0000"), std::string::npos);
  auto decoded = decode_doc(f, doc);
  ASSERT_TRUE(decoded) << decoded.error().message;
  // A NUL byte in a binary-mode attribute.
  const auto& linked = find_fixture(event_types::org_linked);
  header_list headers;
  for (auto attr : {"specversion", "id", "source", "type", "time"})
    headers.emplace_back(std::string{"ce_"} + attr,
                         linked.doc.at(attr).get<std::string>());
  headers[1].second = nul;
  decoder dec;
  auto value = linked.doc.at("data").dump();
  EXPECT_TRUE(fails_with(dec.decode(topic_kind::membership, {value, &headers}),
                         code::invalid_value, "ce_id"));
}

// -- binary mode
// ----------------------------------------------------------------------

namespace {

/// The `ce_` headers carrying a structured fixture's attributes.
header_list binary_headers_of(const json& doc) {
  header_list headers;
  for (auto attr : {"specversion", "id", "source", "type", "time"})
    headers.emplace_back(std::string{"ce_"} + attr,
                         doc.at(attr).get<std::string>());
  return headers;
}

} // namespace

TEST(messages_errors, binary_mode_headers) {
  const auto& f = find_fixture(event_types::org_linked);
  auto value = f.doc.at("data").dump();
  auto base = [&] { return binary_headers_of(f.doc); };
  auto decode = [&](const header_list& headers, std::string_view v) {
    decoder dec;
    return dec.decode(topic_kind::membership, {v, &headers});
  };
  auto without = [&](std::string_view name) {
    auto headers = base();
    headers.erase(
      std::remove_if(headers.begin(), headers.end(),
                     [&](const auto& h) { return h.first == name; }),
      headers.end());
    return headers;
  };
  auto with = [&](std::string_view name, std::string v) {
    auto headers = base();
    for (auto& h : headers)
      if (h.first == name)
        h.second = v;
    return headers;
  };
  ASSERT_TRUE(decode(base(), value));
  for (auto name : {"ce_id", "ce_source", "ce_type", "ce_time"})
    EXPECT_TRUE(
      fails_with(decode(without(name), value), code::missing_field, name));
  EXPECT_TRUE(fails_with(decode(with("ce_specversion", "0.3"), value),
                         code::unsupported_specversion, "ce_specversion"));
  EXPECT_TRUE(fails_with(decode(with("ce_time", "2026-01-15"), value),
                         code::invalid_timestamp, "ce_time"));
  EXPECT_TRUE(
    fails_with(decode(with("ce_type", "seatledger.subscription.create"), value),
               code::unknown_type, "ce_type"));
  EXPECT_TRUE(
    fails_with(decode(with("ce_id", ""), value), code::invalid_value, "ce_id"));
  EXPECT_TRUE(
    fails_with(decode(with("ce_source", std::string(257, 's')), value),
               code::oversized, "ce_source"));
  EXPECT_TRUE(fails_with(decode(with("ce_id", "bad\xff"), value),
                         code::malformed_json, "ce_id"));
  EXPECT_TRUE(fails_with(decode(base(), "[1]"), code::not_cloudevents, "data"));
  EXPECT_TRUE(fails_with(decode(base(), ""), code::malformed_json));
  EXPECT_TRUE(fails_with(decode(base(), "{\"org_id\":"), code::malformed_json));
  // The value is the data: its fields are named as data's.
  EXPECT_TRUE(fails_with(decode(base(), R"({"org_id":"o"})"),
                         code::missing_field, "data.subscription_id"));
  // Other headers may repeat.
  auto traced = base();
  traced.emplace_back("x-trace", "a");
  traced.emplace_back("x-trace", "b");
  EXPECT_TRUE(decode(traced, value)) << ok_or_message(decode(traced, value));
}

// Kafka's null header value is no string, as JSON's null is none for a
// required attribute in the structured binding.
TEST(messages_errors, binary_mode_null_header_values_are_wrong_type) {
  const auto& f = find_fixture(event_types::org_linked);
  auto value = f.doc.at("data").dump();
  auto base = [&] { return binary_headers_of(f.doc); };
  auto decode = [&](const header_list& headers) {
    decoder dec;
    return dec.decode(topic_kind::membership, {value, &headers});
  };
  for (auto name :
       {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"}) {
    auto headers = base();
    for (auto& h : headers)
      if (h.first == name)
        h.second = std::nullopt;
    auto result = decode(headers);
    ASSERT_TRUE(fails_with(result, code::wrong_type, name));
    EXPECT_EQ(result.error().message,
              std::string{name}
                + ": expected a string, got a null header value");
  }
  // The last of a repeated header counts, null or not.
  auto null_last = base();
  null_last.emplace_back("ce_id", std::nullopt);
  EXPECT_TRUE(fails_with(decode(null_last), code::wrong_type, "ce_id"));
  auto null_first = base();
  null_first.insert(null_first.begin(), {"ce_id", std::nullopt});
  EXPECT_TRUE(decode(null_first)) << ok_or_message(decode(null_first));
  // A null content type names no format: the ce_ headers make it binary.
  auto untyped = base();
  untyped.emplace_back("content-type", "application/cloudevents+json");
  untyped.emplace_back("content-type", std::nullopt);
  EXPECT_TRUE(decode(untyped)) << ok_or_message(decode(untyped));
  // Other headers are not the decoder's, null or not.
  auto other = base();
  other.emplace_back("x-trace", std::nullopt);
  EXPECT_TRUE(decode(other)) << ok_or_message(decode(other));
}

TEST(messages_errors, errors_do_not_leak_into_the_next_record) {
  const auto& f = find_fixture(event_types::subscription_create);
  decoder dec;
  auto doc = f.doc;
  doc["data"]["seats"] = -1;
  auto bad = dec.decode_command({doc.dump()});
  ASSERT_FALSE(bad);
  auto good = dec.decode_command({f.text});
  ASSERT_TRUE(good) << good.error().message;
  auto bad_again = dec.decode_command({doc.dump()});
  ASSERT_FALSE(bad_again);
  EXPECT_EQ(bad_again.error().message, bad.error().message);
  EXPECT_EQ(bad.error().message, "data.seats: must not be negative");
}

TEST(messages_errors, messages_quote_only_a_sanitized_excerpt) {
  const auto& f = find_fixture(event_types::member_added);
  auto doc = f.doc;
  doc["type"] = std::string(500, 'x') + "\n\x01";
  auto result = decode_doc(f, doc);
  ASSERT_FALSE(result);
  EXPECT_LT(result.error().message.size(), 200u);
  for (char c : result.error().message)
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
}

TEST(escape_invalid_utf8, keeps_utf8_and_escapes_every_other_byte) {
  using seatledger::messages::escape_invalid_utf8;
  EXPECT_EQ(escape_invalid_utf8("key 'org-1'"), "key 'org-1'");
  EXPECT_EQ(escape_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  // A dead letter's message quoted a key that is not UTF-8 as it was, so
  // its header was not text.
  EXPECT_EQ(escape_invalid_utf8("key '\xff\xfe'"), "key '\\xff\\xfe'");
  EXPECT_EQ(escape_invalid_utf8("\xc3"), "\\xc3");          // cut short
  EXPECT_EQ(escape_invalid_utf8("\xc0\xaf"), "\\xc0\\xaf"); // overlong
  EXPECT_EQ(escape_invalid_utf8("\xed\xa0\x80"),
            "\\xed\\xa0\\x80"); // surrogate
  EXPECT_EQ(escape_invalid_utf8("\xf4\x90\x80\x80"),
            "\\xf4\\x90\\x80\\x80"); // above U+10FFFF
  EXPECT_EQ(escape_invalid_utf8(std::string_view{"a\0b", 3}),
            std::string("a\0b", 3));
}

TEST(error_codes, the_lists_the_metrics_start_at_zero_hold_every_code) {
  // A code added to an enum but not to its list would have no series
  // before its first sample (an alert on it would not fire the first time).
  std::set<int> listed;
  for (auto c : all_decode_error_codes)
    listed.insert(static_cast<int>(c));
  for (int i = -2; i < 64; ++i)
    EXPECT_EQ(listed.count(i) == 1,
              std::string{to_string(static_cast<decode_error_code>(i))}
                != "unknown")
      << i;
  std::set<int> reasons;
  for (auto c : seatledger::domain::all_rejection_codes)
    reasons.insert(static_cast<int>(c));
  for (int i = -2; i < 64; ++i)
    EXPECT_EQ(reasons.count(i) == 1,
              std::string{seatledger::domain::to_string(
                static_cast<seatledger::domain::rejection_code>(i))}
                != "unknown")
      << i;
}

TEST(event_types, every_type_belongs_to_one_topic) {
  std::map<std::string_view, int> topics_of;
  for (auto kind : {topic_kind::membership, topic_kind::subscriptions,
                    topic_kind::catalog, topic_kind::seat_deltas})
    for (auto type : types_of(kind)) {
      ++topics_of[type];
      EXPECT_EQ(topic_of(type), kind) << type;
    }
  namespace t = event_types;
  // Every constant of event_types, written out: a type missing from its
  // topic's list would be dead-lettered as unknown_type.
  for (auto type :
       {t::member_added, t::member_updated, t::member_removed, t::org_snapshot,
        t::org_linked, t::org_unlinked, t::subscription_create,
        t::subscription_renew, t::subscription_update_entitlements,
        t::subscription_convert_trial, t::subscription_expire,
        t::subscription_archive, t::subscription_update_metadata,
        t::license_issue, t::rate_plan_upserted, t::rate_plan_removed,
        t::seat_delta})
    EXPECT_EQ(topics_of.count(type), 1u) << type;
  EXPECT_EQ(topics_of.size(), 17u);
  for (const auto& [type, count] : topics_of)
    EXPECT_EQ(count, 1) << type;
  EXPECT_EQ(topic_of("seatledger.member.renamed"), std::nullopt);
}
