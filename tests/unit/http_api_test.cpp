// The HTTP API's pure parts: authentication, routing, query parameters and
// the JSON / CSV shapes (no server).

#include <gtest/gtest.h>
#include <limits>

#include <nlohmann/json.hpp>

#include "adapters/http/api.hpp"
#include "test_support.hpp"

using namespace seatledger;
using namespace seatledger::http;
using seatledger::test::at;
using json = nlohmann::json;

namespace {

template<class F>
std::string written(F&& f) {
  messages::json_writer out;
  f(out);
  return out.take();
}

token_table table() {
  std::string error;
  auto t = token_table::make(
    {{"r-secret", "read"}, {"a-secret", "admin"}, {"r2", "read"}}, error);
  EXPECT_TRUE(t) << error;
  return t.value_or(token_table{});
}

} // namespace

// -- authentication -----------------------------------------------------------

TEST(http_auth, constant_time_equal_compares_content_and_length) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secret "));
  EXPECT_FALSE(constant_time_equal("secret", "secre"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  // Bytes after a NUL count too.
  EXPECT_FALSE(constant_time_equal(std::string_view{"a\0b", 3},
                                   std::string_view{"a\0c", 3}));
}

TEST(http_auth, bearer_token_parsing) {
  EXPECT_EQ(bearer_token("Bearer abc"), std::optional<std::string_view>{"abc"});
  EXPECT_EQ(bearer_token("bearer abc"), std::optional<std::string_view>{"abc"});
  EXPECT_EQ(bearer_token("BEARER  abc "),
            std::optional<std::string_view>{"abc"});
  EXPECT_FALSE(bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l"));
  EXPECT_FALSE(bearer_token("Bearer"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token("Bearerabc"));
  EXPECT_FALSE(bearer_token(""));
}

TEST(http_auth, token_table_rejects_bad_configuration) {
  std::string error;
  EXPECT_FALSE(token_table::make({{"t", "write"}}, error));
  EXPECT_NE(error.find("write"), std::string::npos);
  error.clear();
  EXPECT_FALSE(token_table::make({{"", "read"}}, error));
  EXPECT_FALSE(error.empty());
  auto empty = token_table::make({}, error);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_FALSE(empty->lookup("anything"));
}

TEST(http_auth, lookup_finds_the_scope_of_exact_tokens_only) {
  auto t = table();
  EXPECT_EQ(t.lookup("r-secret"), std::optional<scope>{scope::read});
  EXPECT_EQ(t.lookup("r2"), std::optional<scope>{scope::read});
  EXPECT_EQ(t.lookup("a-secret"), std::optional<scope>{scope::admin});
  EXPECT_FALSE(t.lookup("a-secre"));
  EXPECT_FALSE(t.lookup("a-secret2"));
  EXPECT_FALSE(t.lookup(""));
  EXPECT_FALSE(t.lookup("R-SECRET"));
}

TEST(http_auth, scope_rules) {
  EXPECT_TRUE(allows(scope::read, scope::read));
  EXPECT_FALSE(allows(scope::read, scope::admin));
  EXPECT_TRUE(allows(scope::admin, scope::read));
  EXPECT_TRUE(allows(scope::admin, scope::admin));
  EXPECT_EQ(parse_scope("read"), std::optional<scope>{scope::read});
  EXPECT_EQ(parse_scope("admin"), std::optional<scope>{scope::admin});
  EXPECT_FALSE(parse_scope("Admin"));
}

TEST(http_auth, authorize_maps_failures_to_401_and_403) {
  auto t = table();
  auto missing = authorize(t, "", scope::read);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(missing->code, "unauthorized");
  auto wrong_scheme = authorize(t, "Basic r-secret", scope::read);
  ASSERT_TRUE(wrong_scheme);
  EXPECT_EQ(wrong_scheme->status, 401);
  auto wrong = authorize(t, "Bearer nope", scope::read);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->code, "unauthorized");
  auto read_on_admin = authorize(t, "Bearer r-secret", scope::admin);
  ASSERT_TRUE(read_on_admin);
  EXPECT_EQ(read_on_admin->status, 403);
  EXPECT_EQ(read_on_admin->code, "forbidden");
  // The message never repeats the token.
  EXPECT_EQ(read_on_admin->message.find("r-secret"), std::string::npos);
  EXPECT_FALSE(authorize(t, "Bearer r-secret", scope::read));
  EXPECT_FALSE(authorize(t, "Bearer a-secret", scope::read));
  EXPECT_FALSE(authorize(t, "Bearer a-secret", scope::admin));
}

TEST(http_auth, a_replica_without_tokens_says_so) {
  auto refused = authorize(token_table{}, "Bearer r-secret", scope::read);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  EXPECT_NE(refused->message.find("no API tokens are configured"),
            std::string::npos)
    << refused->message;
}

// -- routing ------------------------------------------------------------------

TEST(http_routing, routes_every_endpoint_of_the_contract) {
  struct row {
    const char* method;
    const char* target;
    route_id id;
    std::vector<std::string> params;
    bool open;
    scope required;
  };
  std::vector<row> rows{
    {"GET", "/healthz", route_id::healthz, {}, true, scope::read},
    {"GET", "/readyz", route_id::readyz, {}, true, scope::read},
    {"GET", "/metrics", route_id::metrics, {}, true, scope::read},
    {"HEAD", "/healthz", route_id::healthz, {}, true, scope::read},
    {"GET",
     "/v1/subscriptions/s-1",
     route_id::subscription,
     {"s-1"},
     false,
     scope::read},
    {"GET",
     "/v1/subscriptions/s-1/usage?format=csv",
     route_id::usage,
     {"s-1"},
     false,
     scope::read},
    {"GET",
     "/v1/subscriptions/s-1/seats?at=2026-01-01T00:00:00Z",
     route_id::seats,
     {"s-1"},
     false,
     scope::read},
    {"GET",
     "/v1/subscriptions/s-1/seats/holders",
     route_id::holders,
     {"s-1"},
     false,
     scope::read},
    {"GET",
     "/v1/subscriptions/s-1/ledger?after=3&limit=2",
     route_id::ledger,
     {"s-1"},
     false,
     scope::read},
    {"GET",
     "/v1/subscriptions/s-1/licenses",
     route_id::licenses_of,
     {"s-1"},
     false,
     scope::read},
    {"POST",
     "/v1/subscriptions/s-1/licenses",
     route_id::issue_license,
     {"s-1"},
     false,
     scope::admin},
    {"GET",
     "/v1/licenses/revocations",
     route_id::revocations,
     {},
     false,
     scope::read},
    {"POST",
     "/v1/licenses/verify",
     route_id::verify_license,
     {},
     false,
     scope::read},
    {"GET",
     "/v1/licenses/0b9e-42",
     route_id::license,
     {"0b9e-42"},
     false,
     scope::read},
    {"GET", "/v1/orgs/org%2Fa", route_id::org, {"org/a"}, false, scope::read},
    {"GET",
     "/v1/catalog/rate-plans?deployment=GitLab.com",
     route_id::catalog_rate_plans,
     {},
     false,
     scope::read},
    {"GET",
     "/v1/catalog/incomplete",
     route_id::catalog_incomplete,
     {},
     false,
     scope::read},
    // Identifiers may hold '/': percent-encoded, it stays in one segment.
    {"GET",
     "/v1/subscriptions/a%2Fb/usage",
     route_id::usage,
     {"a/b"},
     false,
     scope::read},
  };
  for (const auto& r : rows) {
    auto got = route(r.method, r.target);
    ASSERT_TRUE(got.match) << r.method << ' ' << r.target;
    EXPECT_EQ(got.match->id, r.id) << r.target;
    EXPECT_EQ(got.match->params, r.params) << r.target;
    EXPECT_EQ(got.match->open, r.open) << r.target;
    EXPECT_EQ(got.match->required, r.required) << r.target;
  }
  EXPECT_EQ(route("GET", "/v1/subscriptions/x/ledger").match->pattern,
            "/v1/subscriptions/{id}/ledger");
}

// RFC 9112 3.2.2: a server must accept a target in absolute form; it was
// a 404 for every path.
TEST(http_routing, an_absolute_form_target_routes_by_its_path) {
  for (auto target :
       {"http://localhost:8080/v1/orgs/o-1", "HTTP://127.0.0.1/v1/orgs/o-1?x=1",
        "https://[::1]:8080/v1/orgs/o-1#f"}) {
    auto got = route("GET", target);
    ASSERT_TRUE(got.match) << target;
    EXPECT_EQ(got.match->id, route_id::org) << target;
    EXPECT_EQ(got.match->params, std::vector<std::string>{"o-1"}) << target;
  }
  auto health = route("GET", "http://host/healthz");
  ASSERT_TRUE(health.match);
  EXPECT_EQ(health.match->id, route_id::healthz);
  // No path is `/`, which no route has; another scheme is no absolute form
  // this server answers; a path that merely contains "://" is a path.
  for (auto target : {"http://host", "http://host?x=1", "ftp://host/healthz",
                      "/v1/orgs/http://x/healthz", "//host/healthz"})
    EXPECT_FALSE(route("GET", target).match) << target;
}

TEST(http_routing, unknown_paths_and_wrong_methods) {
  for (auto target : {"/", "/v1", "/v1/subscriptions", "/v1/subscriptions/",
                      "/v1/subscriptions/a/b", "/healthz/", "/v2/orgs/x",
                      "/v1/subscriptions/a%2/usage", "/v1/orgs/%zz",
                      "/v1/catalog", "/v1/catalog/rate-plans/x"}) {
    auto got = route("GET", target);
    EXPECT_FALSE(got.match) << target;
    EXPECT_TRUE(got.allowed_methods.empty()) << target;
  }
  auto del = route("DELETE", "/v1/subscriptions/s-1");
  EXPECT_FALSE(del.match);
  EXPECT_EQ(del.allowed_methods, (std::vector<std::string>{"GET", "HEAD"}));
  auto put = route("PUT", "/v1/subscriptions/s-1/licenses");
  EXPECT_FALSE(put.match);
  EXPECT_EQ(put.allowed_methods,
            (std::vector<std::string>{"GET", "HEAD", "POST"}));
  // A literal segment wins: GET on the verify path is a wrong method, not a
  // lookup of license "verify"; POST on revocations likewise.
  auto get_verify = route("GET", "/v1/licenses/verify");
  EXPECT_FALSE(get_verify.match);
  EXPECT_EQ(get_verify.allowed_methods, std::vector<std::string>{"POST"});
  auto post_revocations = route("POST", "/v1/licenses/revocations");
  EXPECT_FALSE(post_revocations.match);
  EXPECT_EQ(post_revocations.allowed_methods,
            (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_FALSE(route("POST", "/healthz").match);
}

TEST(http_routing, percent_decoding) {
  EXPECT_EQ(percent_decode("a%2Fb"), std::optional<std::string>{"a/b"});
  EXPECT_EQ(percent_decode("a%2fb%40c"), std::optional<std::string>{"a/b@c"});
  EXPECT_EQ(percent_decode("plain+text"),
            std::optional<std::string>{"plain+text"});
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%2"));
  EXPECT_FALSE(percent_decode("%G0"));
}

// -- query parameters ---------------------------------------------------------

TEST(http_params, limit_defaults_to_100_and_is_bounded) {
  EXPECT_EQ(*parse_limit(std::nullopt), 100u);
  EXPECT_EQ(*parse_limit(std::string{"1"}), 1u);
  EXPECT_EQ(*parse_limit(std::string{"1000"}), 1000u);
  EXPECT_EQ(*parse_limit(std::string{"0042"}), 42u);
  for (auto bad : {"0", "1001", "-1", "-0", "", "abc", "1.5", "10 ", "+5",
                   "99999999999999999999999"}) {
    auto r = parse_limit(std::string{bad});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400) << bad;
    EXPECT_EQ(r.error().code, "bad_request") << bad;
  }
}

TEST(http_params, after_is_a_non_negative_sequence_number) {
  EXPECT_EQ(*parse_after_seq(std::nullopt), 0);
  EXPECT_EQ(*parse_after_seq(std::string{"0"}), 0);
  EXPECT_EQ(*parse_after_seq(std::string{"17"}), 17);
  EXPECT_EQ(*parse_after_seq(std::string{"9223372036854775807"}),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(*parse_after_seq(std::string{"00000000000000000000017"}), 17);
  for (auto bad : {"-1", "x", "", "1e3", "+1", "9223372036854775808",
                   "9999999999999999999", "12345678901234567890123"}) {
    auto r = parse_after_seq(std::string{bad});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400);
  }
}

TEST(http_params, rfc3339_times) {
  EXPECT_EQ(*parse_time_param("at", "2026-01-20T12:00:00Z"),
            at("2026-01-20T12:00:00Z"));
  EXPECT_EQ(*parse_time_param("at", "2026-01-20T13:00:00.5+01:00"),
            at("2026-01-20T12:00:00.5Z"));
  // Nanoseconds (RFC 3339 sets no limit on the digits) are cut to micros.
  EXPECT_EQ(*parse_time_param("at", "2026-01-20T12:00:00.123456789Z"),
            at("2026-01-20T12:00:00.123456Z"));
  // An unencoded '+' arrives as a space.
  EXPECT_EQ(*parse_time_param("at", "2026-01-20T13:00:00 01:00"),
            at("2026-01-20T12:00:00Z"));
  for (auto bad : {"", "yesterday", "2026-02-30T00:00:00Z", "2026-01-20",
                   "2026-01-20T12:00:00", "1768910400"}) {
    auto r = parse_time_param("at", bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400);
    EXPECT_NE(r.error().message.find("at"), std::string::npos);
  }
}

TEST(http_params, flags) {
  EXPECT_FALSE(*parse_flag("export", std::nullopt));
  EXPECT_TRUE(*parse_flag("export", std::string{"1"}));
  EXPECT_TRUE(*parse_flag("export", std::string{"true"}));
  EXPECT_FALSE(*parse_flag("export", std::string{"0"}));
  EXPECT_FALSE(parse_flag("export", std::string{"yes"}));
}

TEST(http_params, each_route_takes_its_own_parameters_once) {
  // A mistyped parameter (`?limt=5`, `?at=` on the usage) was ignored and the
  // answer was the one without it; a repeated one was taken first-wins.
  auto query_of = [](const char* method, const char* target) {
    auto r = route(method, target);
    EXPECT_TRUE(r.match) << target;
    return r.match ? r.match->query : std::string_view{};
  };
  auto bad = [](const query_params& params, std::string_view accepted) {
    auto e = check_query(params, accepted);
    return e ? std::to_string(e->status) + " " + e->message : std::string{};
  };
  auto ledger = query_of("GET", "/v1/subscriptions/s-1/ledger");
  EXPECT_EQ(bad({}, ledger), "");
  EXPECT_EQ(bad({{"after", "3"}, {"limit", "5"}}, ledger), "");
  EXPECT_EQ(bad({{"limt", "5"}}, ledger),
            "400 unknown parameter limt (this endpoint takes: after, limit)");
  EXPECT_EQ(bad({{"limit", "5"}, {"limit", "7"}}, ledger),
            "400 limit is given more than once");
  EXPECT_EQ(bad({{"limit", "5"}, {"limit", "5"}}, ledger),
            "400 limit is given more than once");
  // `?=5` was reported as "unknown parameter 5".
  EXPECT_EQ(bad({{"", "5"}}, ledger), "400 a query parameter has no name");
  auto holders = query_of("GET", "/v1/subscriptions/s-1/seats/holders");
  EXPECT_EQ(bad({{"after", "u-1"}}, holders), "");
  auto usage = query_of("GET", "/v1/subscriptions/s-1/usage");
  EXPECT_EQ(bad({{"format", "csv"}, {"term_start", "x"}}, usage), "");
  EXPECT_EQ(bad({{"export", "1"}}, usage), "");
  EXPECT_EQ(bad({{"at", "2026-01-01T00:00:00Z"}}, usage),
            "400 unknown parameter at (this endpoint takes: format, export, "
            "term_start)");
  auto seats = query_of("GET", "/v1/subscriptions/s-1/seats");
  EXPECT_EQ(bad({{"at", "x"}}, seats), "");
  EXPECT_EQ(bad({{"at", "x"}, {"at", "y"}}, seats),
            "400 at is given more than once");
  for (auto target : {"/v1/subscriptions/s-1", "/v1/subscriptions/s-1/licenses",
                      "/v1/licenses/l-1", "/v1/licenses/revocations",
                      "/v1/orgs/o-1", "/v1/catalog/incomplete"})
    EXPECT_EQ(bad({{"limit", "5"}}, query_of("GET", target)),
              "400 unknown parameter limit (this endpoint takes none)")
      << target;
  EXPECT_EQ(bad({{"x", "1"}},
                query_of("POST", "/v1/subscriptions/s-1/licenses")),
            "400 unknown parameter x (this endpoint takes none)");
  // The catalog's filters are parse_rate_plan_filter's (`action` repeats);
  // probes and scrapes ignore what they are given.
  for (auto target :
       {"/v1/catalog/rate-plans", "/healthz", "/readyz", "/metrics"})
    EXPECT_EQ(bad({{"action", "a"}, {"action", "b"}, {"x", "1"}},
                  query_of("GET", target)),
              "")
      << target;
}

// -- shapes -------------------------------------------------------------------

TEST(http_shapes, error_body_is_the_contract_shape) {
  auto body = json::parse(error_body("not_found", "no \"such\" thing\n"));
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body.size(), 1u);
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_EQ(body["error"]["message"], "no \"such\" thing\n");
  EXPECT_EQ(body["error"].size(), 2u);

  EXPECT_EQ(bad_request("x").status, 400);
  EXPECT_EQ(unauthorized("x").status, 401);
  EXPECT_EQ(forbidden("x").status, 403);
  EXPECT_EQ(not_found("x").status, 404);
  EXPECT_EQ(method_not_allowed("x").status, 405);
  auto c = conflict("subscription_archived", "archived");
  EXPECT_EQ(c.status, 409);
  EXPECT_EQ(c.code, "subscription_archived");
  EXPECT_EQ(not_ready("x").code, "not_ready");
  EXPECT_EQ(not_ready("x").status, 503);
  EXPECT_EQ(busy("x").code, "busy");
  EXPECT_EQ(busy("x").status, 503);
  EXPECT_EQ(internal_error("x").code, "internal");
  EXPECT_EQ(error_for_status(413).status, 413);
  EXPECT_EQ(error_for_status(400).code, "bad_request");
}

TEST(http_shapes, ledger_entry) {
  domain::ledger_entry e;
  e.subscription_id = "s";
  e.seq = 3;
  e.seats_in_use = 7;
  e.effective_at = at("2026-01-20T00:00:00.25Z");
  e.cause = {"billing", "evt-9", "seatledger.member.added",
             at("2026-01-19T00:00:00Z")};
  e.org_id = "org-a";
  e.user_id = "u1";
  e.prev_hash = domain::genesis_hash;
  e.hash = domain::compute_entry_hash(e);
  auto j = json::parse(written([&](auto& out) { write_ledger_entry(out, e); }));
  EXPECT_EQ(j["seq"], 3);
  EXPECT_EQ(j["seats_in_use"], 7);
  EXPECT_EQ(j["effective_at"], "2026-01-20T00:00:00.25Z");
  EXPECT_EQ(j["event"], (json{{"source", "billing"},
                              {"id", "evt-9"},
                              {"type", "seatledger.member.added"}}));
  EXPECT_EQ(j["org_id"], "org-a");
  EXPECT_EQ(j["user_id"], "u1");
  EXPECT_EQ(j["hash"], e.hash);
  EXPECT_EQ(j["prev_hash"], std::string(64, '0'));
  EXPECT_EQ(j.size(), 8u);
}

namespace {

std::vector<domain::usage_month> two_months() {
  domain::usage_month m1;
  m1.month = 1;
  m1.start = at("2026-01-15T00:00:00Z");
  m1.end = at("2026-02-15T00:00:00Z");
  m1.peak_seats = 15;
  m1.peak_at = at("2026-01-20T00:00:00Z");
  m1.peak_seq = 2;
  m1.complete = true;
  domain::usage_month m2;
  m2.month = 2;
  m2.start = at("2026-02-15T00:00:00Z");
  m2.end = at("2026-03-15T00:00:00Z");
  m2.peak_seats = 9;
  m2.peak_at = m2.start;
  m2.complete = false;
  return {m1, m2};
}

} // namespace

TEST(http_shapes, usage_month_names_the_peak_event) {
  auto months = two_months();
  domain::event_ref cause{"hr", "e-2", "seatledger.member.added",
                          at("2026-01-20T00:00:00Z")};
  auto j = json::parse(
    written([&](auto& out) { write_usage_month(out, months[0], cause); }));
  EXPECT_EQ(j["month"], 1);
  EXPECT_EQ(j["start"], "2026-01-15T00:00:00Z");
  EXPECT_EQ(j["end"], "2026-02-15T00:00:00Z");
  EXPECT_EQ(j["peak_seats"], 15);
  EXPECT_EQ(j["peak_at"], "2026-01-20T00:00:00Z");
  EXPECT_EQ(j["peak_seq"], 2);
  EXPECT_EQ(j["peak_event"]["id"], "e-2");
  EXPECT_EQ(j["peak_event"]["source"], "hr");
  EXPECT_EQ(j["complete"], true);
  auto carried = json::parse(written(
    [&](auto& out) { write_usage_month(out, months[1], std::nullopt); }));
  EXPECT_TRUE(carried["peak_seq"].is_null());
  EXPECT_TRUE(carried["peak_event"].is_null());
  EXPECT_EQ(carried["complete"], false);
}

TEST(http_shapes, usage_csv) {
  EXPECT_EQ(usage_csv(two_months()),
            "month,start,end,peak_seats,peak_at,peak_seq,complete\r\n"
            "1,2026-01-15T00:00:00Z,2026-02-15T00:00:00Z,15,"
            "2026-01-20T00:00:00Z,2,true\r\n"
            "2,2026-02-15T00:00:00Z,2026-03-15T00:00:00Z,9,"
            "2026-02-15T00:00:00Z,,false\r\n");
  EXPECT_EQ(usage_csv({}),
            "month,start,end,peak_seats,peak_at,peak_seq,complete\r\n");
}

TEST(http_shapes, license_status_and_shape) {
  storage::license_view v;
  v.license.grant.license_id = "lic-1";
  v.license.grant.subscription_id = "sub-1";
  v.license.grant.issued_at = at("2026-01-15T00:00:00Z");
  v.license.grant.expires_at = at("2027-01-15T00:00:00Z");
  v.license.claims_json = R"({"jti":"lic-1","seats":10})";
  v.license.license_key = "v4.public.xyz";
  EXPECT_STREQ(license_status(v, at("2026-06-01T00:00:00Z")), "valid");
  EXPECT_STREQ(license_status(v, at("2027-01-15T00:00:00Z")), "expired");
  auto j = json::parse(written(
    [&](auto& out) { write_license(out, v, at("2026-06-01T00:00:00Z")); }));
  EXPECT_EQ(j["license_id"], "lic-1");
  EXPECT_EQ(j["subscription_id"], "sub-1");
  EXPECT_EQ(j["status"], "valid");
  EXPECT_EQ(j["license_key"], "v4.public.xyz");
  EXPECT_EQ(j["claims"], (json{{"jti", "lic-1"}, {"seats", 10}}));
  EXPECT_EQ(j["issued_at"], "2026-01-15T00:00:00Z");
  EXPECT_TRUE(j["revoked_at"].is_null());
  v.revoked_at = at("2026-02-01T00:00:00Z");
  // Revoked wins over both valid and expired.
  EXPECT_STREQ(license_status(v, at("2026-06-01T00:00:00Z")), "revoked");
  EXPECT_STREQ(license_status(v, at("2028-01-01T00:00:00Z")), "revoked");
  j = json::parse(written(
    [&](auto& out) { write_license(out, v, at("2026-06-01T00:00:00Z")); }));
  EXPECT_EQ(j["status"], "revoked");
  EXPECT_EQ(j["revoked_at"], "2026-02-01T00:00:00Z");
}

TEST(http_shapes, time_point_conversion_keeps_microseconds) {
  auto t = at("2026-01-15T00:00:00.123456Z");
  auto tp = to_time_point(t);
  EXPECT_EQ(
    std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch())
      .count(),
    t.micros());
}
