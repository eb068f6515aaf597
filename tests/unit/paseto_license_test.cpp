// Offline license keys: verify_license / sign_license, trusted key sets and
// key rotation, and the RFC 3339 parser behind the time claims.
#include <chrono>
#include <gtest/gtest.h>
#include <string>

#include <nlohmann/json.hpp>

#include "paseto/base64url.hpp"
#include "paseto/license_verifier.hpp"
#include "paseto/paserk.hpp"
#include "paseto/paseto.hpp"
#include "paseto/rfc3339.hpp"
#include "paseto/trusted_keys.hpp"

using namespace seatledger::paseto;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using sys_time = std::chrono::system_clock::time_point;

sys_time at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return std::chrono::time_point_cast<sys_time::duration>(*t);
}

secret_key make_key() {
  auto key = secret_key::generate();
  EXPECT_TRUE(key.has_value());
  return *key;
}

std::string claims(std::string_view nbf = "2024-01-15T00:00:00Z",
                   std::string_view exp = "2025-01-15T00:00:00Z") {
  json c;
  c["jti"] = "lic-1";
  c["subscription_id"] = "sub-1";
  c["iat"] = "2024-01-10T12:00:00Z";
  c["nbf"] = nbf;
  c["exp"] = exp;
  c["seats"] = 50;
  c["features"] = json::array({"sso", "audit"});
  c["trial"] = false;
  return c.dump();
}

std::string license(const secret_key& key, const std::string& body) {
  auto token = sign_license(key, body);
  EXPECT_TRUE(token.has_value());
  return token ? *token : std::string{};
}

// Signs a token with an arbitrary footer, for the cases sign_license refuses
// to produce.
std::string token_with_footer(const secret_key& key, std::string_view footer,
                              const std::string& body = claims()) {
  return sign_v4_public(key, body, footer);
}

std::string kid_footer(const secret_key& key) {
  return R"({"kid":")" + paserk_pid(key.public_part()) + R"("})";
}

sys_time mid_term() {
  return at("2024-06-01T00:00:00Z");
}

} // namespace

// -- RFC 3339 -----------------------------------------------------------------

TEST(paseto_rfc3339, parses_utc_and_offsets) {
  auto epoch = parse_rfc3339("1970-01-01T00:00:00Z");
  ASSERT_TRUE(epoch.has_value());
  EXPECT_EQ(epoch->time_since_epoch().count(), 0);
  auto t = parse_rfc3339("2022-01-01T00:00:00+00:00");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(
    std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch())
      .count(),
    1640995200);
  // The same instant written three ways.
  auto a = parse_rfc3339("2024-03-01T12:30:00Z");
  auto b = parse_rfc3339("2024-03-01T14:00:00+01:30");
  auto c = parse_rfc3339("2024-03-01t07:30:00-05:00");
  auto d = parse_rfc3339("2024-03-01T12:30:00z");
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  EXPECT_EQ(*a, *d);
  EXPECT_TRUE(parse_rfc3339("2024-03-01T12:30:00-00:00"));
}

TEST(paseto_rfc3339, formats_four_digit_years_only) {
  using std::chrono::hours;
  auto last = parse_rfc3339("9999-12-31T23:59:59Z");
  auto first = parse_rfc3339("0000-01-01T00:00:00Z");
  ASSERT_TRUE(last && first);
  EXPECT_EQ(format_rfc3339(*last), "9999-12-31T23:59:59Z");
  EXPECT_EQ(format_rfc3339(*first), "0000-01-01T00:00:00Z");
  // A year later or earlier would need five digits or a sign.
  EXPECT_EQ(format_rfc3339(*last + hours{24 * 366}), "9999-12-31T23:59:59Z");
  EXPECT_EQ(format_rfc3339(*first - hours{24 * 366}), "0000-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2024-03-01T12:30:00.75Z")),
            "2024-03-01T12:30:00Z");
}

TEST(paseto_rfc3339, fractional_seconds) {
  auto whole = parse_rfc3339("2024-03-01T12:30:00Z");
  auto frac = parse_rfc3339("2024-03-01T12:30:00.25Z");
  auto long_frac = parse_rfc3339("2024-03-01T12:30:00.123456789Z");
  ASSERT_TRUE(whole && frac && long_frac);
  EXPECT_EQ(*frac - *whole, 250000us);
  EXPECT_EQ(*long_frac - *whole, 123456us);
  EXPECT_FALSE(parse_rfc3339("2024-03-01T12:30:00.Z"));
}

TEST(paseto_rfc3339, calendar_rules) {
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2023-02-29T00:00:00Z"));
  EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("1900-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-04-31T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-00-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-01-00T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-01-01T24:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-01-01T00:60:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-01-01T00:00:61Z"));
  auto leap = parse_rfc3339("2016-12-31T23:59:60Z");
  auto next = parse_rfc3339("2017-01-01T00:00:00Z");
  ASSERT_TRUE(leap && next);
  EXPECT_EQ(*leap, *next);
}

TEST(paseto_rfc3339, rejects_malformed_text) {
  for (auto text :
       {"", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z",
        "2024-01-01T00:00Z", "24-01-01T00:00:00Z", "2024-1-01T00:00:00Z",
        "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00+01",
        "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00+01:60",
        "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00Z ",
        " 2024-01-01T00:00:00Z", "2024-01-01T00:00:00UTC", "+2024-01-01T00:00Z",
        "2024-01-01T00:00:00,5Z", "1704067200"}) {
    EXPECT_EQ(parse_rfc3339(text).error(), errc::invalid_time) << text;
  }
}

TEST(paseto_rfc3339, far_future_does_not_overflow) {
  auto end = parse_rfc3339("9999-12-31T23:59:59Z");
  ASSERT_TRUE(end.has_value());
  EXPECT_GT(*end, *parse_rfc3339("2262-04-12T00:00:00Z"));
  EXPECT_EQ(format_rfc3339(*end), "9999-12-31T23:59:59Z");
  auto start = parse_rfc3339("0000-01-01T00:00:00Z");
  ASSERT_TRUE(start.has_value());
  EXPECT_EQ(format_rfc3339(*start), "0000-01-01T00:00:00Z");
}

TEST(paseto_rfc3339, format_round_trip) {
  for (auto text : {"1970-01-01T00:00:00Z", "2024-02-29T23:59:59Z",
                    "1969-12-31T23:59:59Z", "2038-01-19T03:14:08Z"}) {
    auto t = parse_rfc3339(text);
    ASSERT_TRUE(t.has_value()) << text;
    EXPECT_EQ(format_rfc3339(*t), text);
  }
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2024-03-01T14:00:00.9+01:30")),
            "2024-03-01T12:30:00Z");
  EXPECT_EQ(format_rfc3339(at("2024-03-01T12:30:00Z")), "2024-03-01T12:30:00Z");
}

// -- trusted keys -------------------------------------------------------------

TEST(paseto_trusted_keys, add_and_find_by_pid) {
  auto a = make_key();
  auto b = make_key();
  trusted_keys keys;
  EXPECT_TRUE(keys.empty());
  auto pid_a = keys.add(a.public_part());
  EXPECT_EQ(pid_a, paserk_pid(a.public_part()));
  EXPECT_EQ(keys.add(a.public_part()), pid_a);
  EXPECT_EQ(keys.size(), 1u);
  ASSERT_NE(keys.find(pid_a), nullptr);
  EXPECT_EQ(*keys.find(pid_a), a.public_part());
  EXPECT_EQ(keys.find(paserk_pid(b.public_part())), nullptr);
  EXPECT_EQ(keys.find(""), nullptr);
  auto pid_b = keys.add_pem(to_pem(b.public_part()));
  ASSERT_TRUE(pid_b.has_value());
  EXPECT_TRUE(keys.contains(*pid_b));
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys.key_ids().size(), 2u);
  EXPECT_EQ(keys.add_pem("not a pem").error(), errc::invalid_pem);
}

// -- verify_license -----------------------------------------------------------

TEST(paseto_license, valid_license_round_trip) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto body = claims();
  auto token = license(key, body);
  ASSERT_EQ(token.rfind("v4.public.", 0), 0u);
  auto footer = unverified_footer(token);
  ASSERT_TRUE(footer.has_value());
  EXPECT_EQ(*footer, kid_footer(key));
  auto check = verify_license(keys, token, mid_term(), 60s);
  EXPECT_TRUE(check.valid);
  EXPECT_FALSE(check.reason.has_value());
  EXPECT_EQ(check.claims_json, body);
  EXPECT_EQ(check.key_id, paserk_pid(key.public_part()));
  // Any PASETO library can check it: it is a plain v4.public token.
  auto verified = verify_v4_public(key.public_part(), token);
  ASSERT_TRUE(verified.has_value());
  EXPECT_EQ(verified->payload, body);
}

TEST(paseto_license, reason_strings) {
  EXPECT_EQ(to_string(license_reason::bad_format), "bad_format");
  EXPECT_EQ(to_string(license_reason::unknown_key), "unknown_key");
  EXPECT_EQ(to_string(license_reason::bad_signature), "bad_signature");
  EXPECT_EQ(to_string(license_reason::expired), "expired");
  EXPECT_EQ(to_string(license_reason::not_yet_valid), "not_yet_valid");
}

TEST(paseto_license, untrusted_key_is_unknown_key) {
  auto key = make_key();
  auto stranger = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto check = verify_license(keys, license(stranger, claims()), mid_term(),
                              0s);
  EXPECT_FALSE(check.valid);
  EXPECT_EQ(check.reason, license_reason::unknown_key);
  EXPECT_TRUE(check.claims_json.empty());
  EXPECT_EQ(verify_license(trusted_keys{}, license(key, claims()), mid_term(),
                           0s)
              .reason,
            license_reason::unknown_key);
}

TEST(paseto_license, footer_rules) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto reason = [&](const std::string& token) {
    auto check = verify_license(keys, token, mid_term(), 0s);
    EXPECT_FALSE(check.valid);
    return check.reason;
  };
  // Baseline: the expected footer works through the same helper.
  EXPECT_TRUE(verify_license(keys, token_with_footer(key, kid_footer(key)),
                             mid_term(), 0s)
                .valid);
  EXPECT_EQ(reason(token_with_footer(key, "")), license_reason::unknown_key);
  EXPECT_EQ(reason(token_with_footer(key, "{}")), license_reason::unknown_key);
  EXPECT_EQ(reason(token_with_footer(key, R"({"wpk":"x"})")),
            license_reason::unknown_key);
  EXPECT_EQ(reason(token_with_footer(key, R"({"kid":"k4.pid.nope"})")),
            license_reason::unknown_key);
  EXPECT_EQ(reason(token_with_footer(key, "not json")),
            license_reason::bad_format);
  EXPECT_EQ(reason(token_with_footer(key, R"(["kid"])")),
            license_reason::bad_format);
  EXPECT_EQ(reason(token_with_footer(key, R"({"kid":42})")),
            license_reason::bad_format);
  EXPECT_EQ(reason(token_with_footer(key, "{\"kid\":\"" + std::string(2000, 'a')
                                            + "\"}")),
            license_reason::bad_format);
}

TEST(paseto_license, signature_is_checked_before_claims) {
  auto key = make_key();
  auto other = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  // Claims that are not even JSON, under the right kid but signed by another
  // key: the signature fails first.
  auto forged = sign_v4_public(other, "not json", kid_footer(key));
  auto check = verify_license(keys, forged, mid_term(), 0s);
  EXPECT_EQ(check.reason, license_reason::bad_signature);
  EXPECT_TRUE(check.claims_json.empty());
  // Expired claims under a forged signature: still bad_signature.
  auto forged_expired = sign_v4_public(
    other, claims("2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
    kid_footer(key));
  EXPECT_EQ(verify_license(keys, forged_expired, mid_term(), 0s).reason,
            license_reason::bad_signature);
  // A signed token with an implicit assertion is not a license.
  auto with_assertion = sign_v4_public(key, claims(), kid_footer(key), "x");
  EXPECT_EQ(verify_license(keys, with_assertion, mid_term(), 0s).reason,
            license_reason::bad_signature);
}

TEST(paseto_license, claims_must_be_an_object_with_times) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto reason = [&](const std::string& body) {
    auto check = verify_license(
      keys, sign_v4_public(key, body, kid_footer(key)), mid_term(), 0s);
    EXPECT_FALSE(check.valid) << body;
    return check.reason;
  };
  EXPECT_EQ(reason("not json"), license_reason::bad_format);
  EXPECT_EQ(reason("[1,2]"), license_reason::bad_format);
  EXPECT_EQ(reason(R"({"exp":"2025-01-01T00:00:00Z"})"),
            license_reason::bad_format);
  EXPECT_EQ(reason(R"({"nbf":"2024-01-01T00:00:00Z"})"),
            license_reason::bad_format);
  EXPECT_EQ(reason(R"({"nbf":"2024-01-01T00:00:00Z","exp":1735689600})"),
            license_reason::bad_format);
  EXPECT_EQ(reason(R"({"nbf":null,"exp":"2025-01-01T00:00:00Z"})"),
            license_reason::bad_format);
  EXPECT_EQ(reason(R"({"nbf":"2024-01-01","exp":"2025-01-01T00:00:00Z"})"),
            license_reason::bad_format);
  // sign_license refuses to issue such licenses in the first place.
  EXPECT_EQ(sign_license(key, "[1]").error(), errc::invalid_json);
  EXPECT_EQ(sign_license(key, "{").error(), errc::invalid_json);
  EXPECT_EQ(sign_license(key, R"({"exp":"2025-01-01T00:00:00Z"})").error(),
            errc::invalid_time);
  EXPECT_EQ(
    sign_license(key, R"({"nbf":"x","exp":"2025-01-01T00:00:00Z"})").error(),
    errc::invalid_time);
}

TEST(paseto_license, expired_and_not_yet_valid) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto token = license(key, claims());
  auto check_at = [&](std::string_view now, std::chrono::seconds skew) {
    return verify_license(keys, token, at(now), skew);
  };
  auto expired = check_at("2025-02-01T00:00:00Z", 0s);
  EXPECT_FALSE(expired.valid);
  EXPECT_EQ(expired.reason, license_reason::expired);
  // The claims are authentic, so they are reported even when expired.
  EXPECT_EQ(expired.claims_json, claims());
  auto early = check_at("2023-12-01T00:00:00Z", 0s);
  EXPECT_FALSE(early.valid);
  EXPECT_EQ(early.reason, license_reason::not_yet_valid);
  EXPECT_EQ(early.claims_json, claims());
  // Boundaries: valid from nbf inclusive to exp exclusive ...
  EXPECT_TRUE(check_at("2024-01-15T00:00:00Z", 0s).valid);
  EXPECT_EQ(check_at("2024-01-14T23:59:59Z", 0s).reason,
            license_reason::not_yet_valid);
  EXPECT_TRUE(check_at("2025-01-14T23:59:59Z", 0s).valid);
  EXPECT_EQ(check_at("2025-01-15T00:00:00Z", 0s).reason,
            license_reason::expired);
  // ... widened by the clock skew on both ends.
  EXPECT_TRUE(check_at("2024-01-14T23:59:00Z", 60s).valid);
  EXPECT_EQ(check_at("2024-01-14T23:58:59Z", 60s).reason,
            license_reason::not_yet_valid);
  EXPECT_TRUE(check_at("2025-01-15T00:00:59Z", 60s).valid);
  EXPECT_EQ(check_at("2025-01-15T00:01:00Z", 60s).reason,
            license_reason::expired);
}

TEST(paseto_license, far_future_expiry) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto token = license(key,
                       claims("2024-01-01T00:00:00Z", "9999-12-31T23:59:59Z"));
  EXPECT_TRUE(verify_license(keys, token, mid_term(), 300s).valid);
}

TEST(paseto_license, other_versions_and_purposes_are_bad_format) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto token = license(key, claims());
  auto rest = token.substr(std::string_view{"v4.public."}.size());
  for (auto header : {"v4.local.", "v3.public.", "v2.public.", "v3.local.",
                      "v4.secret.", "V4.PUBLIC.", ""}) {
    auto check = verify_license(keys, header + rest, mid_term(), 0s);
    EXPECT_FALSE(check.valid) << header;
    EXPECT_EQ(check.reason, license_reason::bad_format) << header;
  }
  EXPECT_EQ(verify_license(keys, "", mid_term(), 0s).reason,
            license_reason::bad_format);
  EXPECT_EQ(verify_license(keys, "v4.public.", mid_term(), 0s).reason,
            license_reason::bad_format);
  EXPECT_EQ(verify_license(keys, token + ".", mid_term(), 0s).reason,
            license_reason::bad_format);
  EXPECT_EQ(verify_license(keys, "v4.public.####", mid_term(), 0s).reason,
            license_reason::bad_format);
}

TEST(paseto_license, every_changed_character_fails) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto token = license(key, claims());
  ASSERT_TRUE(verify_license(keys, token, mid_term(), 0s).valid);
  for (std::size_t i = 0; i < token.size(); ++i) {
    for (char replacement :
         {token[i] == 'A' ? 'B' : 'A', token[i] == '_' ? '-' : '_', '.', '='}) {
      if (replacement == token[i])
        continue;
      auto changed = token;
      changed[i] = replacement;
      auto check = verify_license(keys, changed, mid_term(), 0s);
      EXPECT_FALSE(check.valid) << "position " << i << " -> " << replacement;
      EXPECT_TRUE(check.reason.has_value());
    }
    auto changed = token;
    changed[i] = static_cast<char>(changed[i] ^ 1);
    EXPECT_FALSE(verify_license(keys, changed, mid_term(), 0s).valid)
      << "position " << i;
  }
}

TEST(paseto_license, key_rotation) {
  auto old_key = make_key();
  auto new_key = make_key();
  auto old_token = license(old_key, claims());
  auto new_token = license(new_key, claims());
  trusted_keys both;
  both.add(old_key.public_part());
  both.add(new_key.public_part());
  EXPECT_TRUE(verify_license(both, old_token, mid_term(), 0s).valid);
  EXPECT_TRUE(verify_license(both, new_token, mid_term(), 0s).valid);
  EXPECT_EQ(verify_license(both, old_token, mid_term(), 0s).key_id,
            paserk_pid(old_key.public_part()));
  EXPECT_EQ(verify_license(both, new_token, mid_term(), 0s).key_id,
            paserk_pid(new_key.public_part()));
  trusted_keys old_only;
  old_only.add(old_key.public_part());
  EXPECT_TRUE(verify_license(old_only, old_token, mid_term(), 0s).valid);
  auto check = verify_license(old_only, new_token, mid_term(), 0s);
  EXPECT_FALSE(check.valid);
  EXPECT_EQ(check.reason, license_reason::unknown_key);
  // A token naming the old key but signed by the new one is a forgery.
  auto swapped = sign_v4_public(new_key, claims(), kid_footer(old_key));
  EXPECT_EQ(verify_license(both, swapped, mid_term(), 0s).reason,
            license_reason::bad_signature);
}
