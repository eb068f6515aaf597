#include "adapters/http/api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <new>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "domain/identifiers.hpp"

namespace seatledger::http {

// -- errors -------------------------------------------------------------------

api_error bad_request(std::string message) {
  return {400, "bad_request", std::move(message)};
}

api_error unauthorized(std::string message) {
  return {401, "unauthorized", std::move(message)};
}

api_error forbidden(std::string message) {
  return {403, "forbidden", std::move(message)};
}

api_error not_found(std::string message) {
  return {404, "not_found", std::move(message)};
}

api_error method_not_allowed(std::string message) {
  return {405, "method_not_allowed", std::move(message)};
}

api_error conflict(std::string code, std::string message) {
  return {409, std::move(code), std::move(message)};
}

api_error not_ready(std::string message) {
  return {503, "not_ready", std::move(message)};
}

api_error busy(std::string message) {
  return {503, "busy", std::move(message)};
}

api_error internal_error(std::string message) {
  return {500, "internal", std::move(message)};
}

std::string error_body(std::string_view code, std::string_view message) {
  messages::json_writer out;
  out.begin_object();
  out.key("error");
  out.begin_object();
  out.string_member("code", code);
  out.string_member("message", message);
  out.end_object();
  out.end_object();
  return out.take();
}

api_error error_for_status(int status) {
  switch (status) {
    case 400: return bad_request("malformed request");
    case 401: return unauthorized("missing or invalid bearer token");
    case 403: return forbidden("the token lacks the scope");
    case 404: return not_found("no such resource");
    case 405: return method_not_allowed("method not allowed");
    case 408: return {408, "timeout", "the request was not received in time"};
    case 413:
      return {413, "payload_too_large", "the request body is too large"};
    case 414: return {414, "uri_too_long", "the request target is too long"};
    case 416: return {416, "bad_range", "range not satisfiable"};
    case 503: return not_ready("not ready");
    default: break;
  }
  if (status >= 400 && status < 500)
    return {status, "bad_request", "the request cannot be answered"};
  return {status, "internal", "internal error"};
}

// -- authentication -----------------------------------------------------------

namespace {

using digest = std::array<unsigned char, 32>;

digest sha256(std::string_view data) {
  digest out{};
  unsigned int size = 0;
  // Only fails when OpenSSL cannot allocate. Carrying on with a zero digest
  // would make every token equal to every other, so fail the request.
  if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(),
                 nullptr)
        != 1
      || size != out.size())
    throw std::bad_alloc{};
  return out;
}

bool iequals(std::string_view x, std::string_view y) {
  return x.size() == y.size()
         && std::equal(x.begin(), x.end(), y.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a))
                     == std::tolower(static_cast<unsigned char>(b));
            });
}

} // namespace

const char* to_string(scope s) {
  return s == scope::admin ? "admin" : "read";
}

std::optional<scope> parse_scope(std::string_view text) {
  if (text == "read")
    return scope::read;
  if (text == "admin")
    return scope::admin;
  return std::nullopt;
}

bool constant_time_equal(std::string_view x, std::string_view y) {
  auto dx = sha256(x);
  auto dy = sha256(y);
  return CRYPTO_memcmp(dx.data(), dy.data(), dx.size()) == 0;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size()
      || !iequals(authorization.substr(0, scheme.size()), scheme)
      || authorization[scheme.size()] != ' ')
    return std::nullopt;
  auto token = authorization.substr(scheme.size() + 1);
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
    token.remove_suffix(1);
  if (token.empty())
    return std::nullopt;
  return token;
}

std::optional<token_table> token_table::make(
  const std::vector<std::pair<std::string, std::string>>& tokens,
  std::string& error) {
  token_table result;
  for (const auto& [token, scope_name] : tokens) {
    auto s = parse_scope(scope_name);
    if (!s) {
      error = "unknown API token scope '" + scope_name
              + "' (expected read or admin)";
      return std::nullopt;
    }
    if (token.empty()) {
      error = "empty API token";
      return std::nullopt;
    }
    result.entries_.push_back({sha256(token), *s});
  }
  return result;
}

std::optional<scope> token_table::lookup(std::string_view token) const {
  auto presented = sha256(token);
  // Every entry is compared, and the winner chosen without a branch on the
  // comparison, so the time does not depend on which entry matched.
  int found = 0;
  int is_admin = 0;
  for (const auto& e : entries_) {
    int equal
      = CRYPTO_memcmp(presented.data(), e.digest.data(), presented.size()) == 0;
    found |= equal;
    is_admin |= equal & (e.scope == scope::admin ? 1 : 0);
  }
  if (!found)
    return std::nullopt;
  return is_admin ? scope::admin : scope::read;
}

std::optional<api_error> authorize(const token_table& tokens,
                                   std::string_view authorization,
                                   scope required) {
  if (authorization.empty())
    return unauthorized("missing bearer token");
  auto token = bearer_token(authorization);
  if (!token)
    return unauthorized("expected 'Authorization: Bearer <token>'");
  // With no token configured nothing can pass; saying only "invalid token"
  // sent operators checking the token they sent rather than the replica.
  if (tokens.size() == 0)
    return unauthorized("no API tokens are configured on this replica "
                        "(--api-token, SEATLEDGER_API_TOKENS)");
  auto granted = tokens.lookup(*token);
  if (!granted)
    return unauthorized("invalid token");
  if (!allows(*granted, required))
    return forbidden(std::string{"this needs the "} + to_string(required)
                     + " scope; the token has " + to_string(*granted));
  return std::nullopt;
}

// -- routing ------------------------------------------------------------------

namespace {

struct route_spec {
  std::string_view method;
  std::string_view pattern;
  route_id id;
  bool open;
  scope required;
  /// The query parameters it takes, space-separated (route_match::query).
  std::string_view query = "";
};

/// Query parameters left to the route's handler (`route_match::query`).
constexpr std::string_view own_query_check = "*";

// Patterns are split into segments; `{…}` is a parameter.
constexpr route_spec route_table[] = {
  // Probes and scrapes take nothing that could be mistyped, and their
  // callers' configurations are not ours to break.
  {"GET", "/healthz", route_id::healthz, true, scope::read, own_query_check},
  {"GET", "/readyz", route_id::readyz, true, scope::read, own_query_check},
  {"GET", "/metrics", route_id::metrics, true, scope::read, own_query_check},
  {"GET", "/v1/subscriptions/{id}", route_id::subscription, false, scope::read},
  {"GET", "/v1/subscriptions/{id}/usage", route_id::usage, false, scope::read,
   "format export term_start"},
  {"GET", "/v1/subscriptions/{id}/seats", route_id::seats, false, scope::read,
   "at"},
  {"GET", "/v1/subscriptions/{id}/seats/holders", route_id::holders, false,
   scope::read, "after limit"},
  {"GET", "/v1/subscriptions/{id}/ledger", route_id::ledger, false, scope::read,
   "after limit"},
  {"GET", "/v1/subscriptions/{id}/licenses", route_id::licenses_of, false,
   scope::read},
  {"POST", "/v1/subscriptions/{id}/licenses", route_id::issue_license, false,
   scope::admin},
  {"GET", "/v1/licenses/revocations", route_id::revocations, false,
   scope::read},
  // Verifying answers a question, it changes nothing: the read scope does.
  {"POST", "/v1/licenses/verify", route_id::verify_license, false, scope::read},
  {"GET", "/v1/licenses/{license_id}", route_id::license, false, scope::read},
  {"GET", "/v1/orgs/{org_id}", route_id::org, false, scope::read},
  {"GET", "/v1/catalog/rate-plans", route_id::catalog_rate_plans, false,
   scope::read, own_query_check}, // parse_rate_plan_filter
  {"GET", "/v1/catalog/incomplete", route_id::catalog_incomplete, false,
   scope::read},
};

/// The path of a request target: the target itself in origin form
/// (`/v1/orgs/x`), the part after the authority in absolute form
/// (`http://host:8080/v1/orgs/x`), which RFC 9112 (3.2.2) says a server
/// must accept although clients send it to proxies; an absolute form with
/// no path names `/`.
std::string_view target_path(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  auto scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos
      || !(iequals(target.substr(0, scheme_end), "http")
           || iequals(target.substr(0, scheme_end), "https")))
    return target;
  auto after_scheme = target.substr(scheme_end + 3);
  auto slash = after_scheme.find('/');
  if (slash == std::string_view::npos)
    return "/";
  return after_scheme.substr(slash);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/')
    return segments;
  path.remove_prefix(1);
  for (;;) {
    auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos)
      break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

} // namespace

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size())
      return std::nullopt;
    auto hi = domain::hex_digit_value(text[i + 1]);
    auto lo = domain::hex_digit_value(text[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

routing route(std::string_view method, std::string_view target) {
  routing result;
  auto raw = split_path(target_path(target));
  std::vector<std::string> segments;
  for (auto s : raw) {
    auto decoded = percent_decode(s);
    if (!decoded)
      return result; // not a path any route has
    segments.push_back(std::move(*decoded));
  }
  if (method == "HEAD")
    method = "GET";
  // Literal segments outrank parameters: keep only the most specific
  // patterns that match the path, then pick by method among them.
  int best = -1;
  std::vector<const route_spec*> candidates;
  for (const auto& spec : route_table) {
    auto pattern = split_path(spec.pattern);
    if (pattern.size() != segments.size())
      continue;
    int literals = 0;
    bool matches = true;
    for (std::size_t i = 0; i < pattern.size() && matches; ++i) {
      if (is_param(pattern[i]))
        matches = !segments[i].empty();
      else if (pattern[i] == segments[i])
        ++literals;
      else
        matches = false;
    }
    if (!matches || literals < best)
      continue;
    if (literals > best) {
      best = literals;
      candidates.clear();
    }
    candidates.push_back(&spec);
  }
  for (const auto* spec : candidates) {
    if (spec->method != method)
      continue;
    route_match m;
    m.id = spec->id;
    m.pattern = spec->pattern;
    m.open = spec->open;
    m.required = spec->required;
    m.query = spec->query;
    auto pattern = split_path(spec->pattern);
    for (std::size_t i = 0; i < pattern.size(); ++i)
      if (is_param(pattern[i]))
        m.params.push_back(segments[i]);
    result.match = std::move(m);
    return result;
  }
  // HEAD is answered wherever GET is, so the 405's Allow names it too.
  auto allow = [&](std::string m) {
    if (std::find(result.allowed_methods.begin(), result.allowed_methods.end(),
                  m)
        == result.allowed_methods.end())
      result.allowed_methods.push_back(std::move(m));
  };
  for (const auto* spec : candidates) {
    allow(std::string{spec->method});
    if (spec->method == "GET")
      allow("HEAD");
  }
  return result;
}

// -- query parameters ---------------------------------------------------------

namespace {

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

} // namespace

api_result<std::size_t> parse_limit(const std::optional<std::string>& text) {
  if (!text)
    return default_page_limit;
  const auto& t = *text;
  auto message = "limit must be an integer from 1 to "
                 + std::to_string(max_page_limit);
  std::string_view digits = t;
  if (!digits.empty() && digits.front() == '-')
    digits.remove_prefix(1);
  if (!all_digits(digits))
    return bad_request(message);
  if (t.front() == '-' || digits.size() > 4)
    return bad_request(message);
  auto value = std::stoul(std::string{digits});
  if (value < 1 || value > max_page_limit)
    return bad_request(message);
  return static_cast<std::size_t>(value);
}

api_result<std::int64_t>
parse_after_seq(const std::optional<std::string>& text) {
  if (!text)
    return std::int64_t{0};
  // Every int64 is a seq a client may hold (a page's next_after echoes it),
  // so the bound is the type's, checked by from_chars rather than a digit
  // count.
  std::int64_t seq = 0;
  const char* end = text->data() + text->size();
  auto parsed = std::from_chars(text->data(), end, seq);
  if (!all_digits(*text) || parsed.ec != std::errc{} || parsed.ptr != end)
    return bad_request("after must be a non-negative integer (a ledger seq)");
  return seq;
}

api_result<domain::timestamp> parse_time_param(std::string_view name,
                                               std::string_view text) {
  std::string fixed{text};
  std::replace(fixed.begin(), fixed.end(), ' ', '+');
  if (auto t = domain::parse_rfc3339(fixed))
    return *t;
  return bad_request(std::string{name}
                     + " must be an RFC 3339 time, e.g. 2026-01-15T00:00:00Z");
}

api_result<bool> parse_flag(std::string_view name,
                            const std::optional<std::string>& text) {
  if (!text)
    return false;
  if (*text == "1" || *text == "true")
    return true;
  if (*text == "0" || *text == "false")
    return false;
  return bad_request(std::string{name} + " must be 1, 0, true or false");
}

namespace {

bool iequals_ascii(std::string_view x, std::string_view y) {
  return x.size() == y.size()
         && std::equal(x.begin(), x.end(), y.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a))
                     == std::tolower(static_cast<unsigned char>(b));
            });
}

template<std::size_t N>
std::string listing(const std::array<std::string_view, N>& values) {
  std::string out;
  for (auto v : values) {
    if (!out.empty())
      out += ", ";
    out += v;
  }
  return out;
}

/// The listed value `text` names (case aside), spelled as listed.
template<std::size_t N>
api_result<std::string>
listed_value(std::string_view name, std::string_view text,
             const std::array<std::string_view, N>& values) {
  for (auto v : values)
    if (iequals_ascii(v, text))
      return std::string{v};
  return bad_request(std::string{name} + " must be one of: " + listing(values));
}

/// What `GET /v1/catalog/rate-plans` takes (check_query's form).
constexpr std::string_view rate_plan_query
  = "tier deployment action* status plan_type true_up us_pubsec "
    "community_type after limit";

} // namespace

std::optional<api_error> check_query(const query_params& params,
                                     std::string_view accepted) {
  if (accepted == own_query_check)
    return std::nullopt;
  std::vector<std::string_view> names;
  std::vector<std::string_view> repeatable;
  for (auto rest = accepted; !rest.empty();) {
    auto space = rest.find(' ');
    auto name = rest.substr(0, space);
    if (name.back() == '*') {
      name.remove_suffix(1);
      repeatable.push_back(name);
    }
    names.push_back(name);
    rest = space == std::string_view::npos ? std::string_view{}
                                           : rest.substr(space + 1);
  }
  auto listed = [](const std::vector<std::string_view>& list,
                   std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : params) {
    (void)value;
    if (name.empty())
      return bad_request("a query parameter has no name");
    if (!listed(names, name)) {
      std::string takes;
      for (auto n : names)
        takes += (takes.empty() ? "" : ", ") + std::string{n};
      return bad_request("unknown parameter " + name
                         + (takes.empty()
                              ? " (this endpoint takes none)"
                              : " (this endpoint takes: " + takes + ")"));
    }
    if (listed(repeatable, name))
      continue;
    if (listed(seen, name))
      return bad_request(name + " is given more than once");
    seen.push_back(name);
  }
  return std::nullopt;
}

api_result<storage::rate_plan_filter>
parse_rate_plan_filter(const query_params& params) {
  if (auto bad = check_query(params, rate_plan_query))
    return *bad;
  storage::rate_plan_filter f;
  for (const auto& [name, value] : params) {
    // Each value into its member; a bad one answers for the whole request.
    auto set = [&](std::optional<std::string>& member, const auto& values) {
      auto v = listed_value(name, value, values);
      if (v)
        member = std::move(*v);
      return v ? std::optional<api_error>{} : v.error();
    };
    auto flag = [&](std::optional<bool>& member) {
      auto v = parse_flag(name, value);
      if (v)
        member = *v;
      return v ? std::optional<api_error>{} : v.error();
    };
    std::optional<api_error> bad;
    if (name == "tier") {
      bad = set(f.tier, storage::catalog_tiers);
    } else if (name == "deployment") {
      bad = set(f.deployment, storage::catalog_deployments);
    } else if (name == "status") {
      bad = set(f.status, storage::catalog_plan_statuses);
    } else if (name == "plan_type") {
      bad = set(f.plan_type, storage::catalog_plan_types);
    } else if (name == "community_type") {
      bad = set(f.community_type, storage::catalog_community_types);
    } else if (name == "action") {
      std::optional<std::string> action;
      bad = set(action, storage::catalog_actions);
      if (action
          && std::find(f.actions.begin(), f.actions.end(), *action)
               == f.actions.end())
        f.actions.push_back(std::move(*action));
    } else if (name == "true_up") {
      bad = flag(f.true_up);
    } else if (name == "us_pubsec") {
      bad = flag(f.us_pubsec);
    } else if (name == "after") {
      if (!domain::is_valid_identifier(value))
        return bad_request("after must be a rate plan id");
      f.after = value;
    } else if (name == "limit") {
      auto limit = parse_limit(value);
      if (!limit)
        return limit.error();
      f.limit = *limit;
    }
    if (bad)
      return *bad;
  }
  return f;
}

// -- shapes -------------------------------------------------------------------

namespace {

void time_member(messages::json_writer& out, std::string_view name,
                 domain::timestamp t) {
  out.string_member(name, domain::format_rfc3339(t));
}

} // namespace

void write_event_ref(messages::json_writer& out, const domain::event_ref& ref) {
  out.begin_object();
  out.string_member("source", ref.source);
  out.string_member("id", ref.id);
  out.string_member("type", ref.type);
  out.end_object();
}

void write_ledger_entry(messages::json_writer& out,
                        const domain::ledger_entry& entry) {
  out.begin_object();
  out.integer_member("seq", entry.seq);
  out.integer_member("seats_in_use", entry.seats_in_use);
  time_member(out, "effective_at", entry.effective_at);
  out.key("event");
  write_event_ref(out, entry.cause);
  out.string_member("org_id", entry.org_id);
  out.string_member("user_id", entry.user_id);
  out.string_member("hash", entry.hash);
  out.string_member("prev_hash", entry.prev_hash);
  out.end_object();
}

void write_usage_month(messages::json_writer& out,
                       const domain::usage_month& month,
                       const std::optional<domain::event_ref>& peak_event) {
  out.begin_object();
  out.integer_member("month", month.month);
  time_member(out, "start", month.start);
  time_member(out, "end", month.end);
  out.integer_member("peak_seats", month.peak_seats);
  time_member(out, "peak_at", month.peak_at);
  if (month.peak_seq)
    out.integer_member("peak_seq", *month.peak_seq);
  else
    out.null_member("peak_seq");
  out.key("peak_event");
  if (peak_event)
    write_event_ref(out, *peak_event);
  else
    out.null();
  out.bool_member("complete", month.complete);
  out.end_object();
}

std::string usage_csv(const std::vector<domain::usage_month>& months) {
  // Every field is a number, a boolean or an RFC 3339 time: nothing to quote.
  std::string out = "month,start,end,peak_seats,peak_at,peak_seq,complete\r\n";
  for (const auto& m : months) {
    out += std::to_string(m.month);
    out += ',';
    out += domain::format_rfc3339(m.start);
    out += ',';
    out += domain::format_rfc3339(m.end);
    out += ',';
    out += std::to_string(m.peak_seats);
    out += ',';
    out += domain::format_rfc3339(m.peak_at);
    out += ',';
    if (m.peak_seq)
      out += std::to_string(*m.peak_seq);
    out += ',';
    out += m.complete ? "true" : "false";
    out += "\r\n";
  }
  return out;
}

const char* license_status(const storage::license_view& license,
                           domain::timestamp now) {
  if (license.revoked_at)
    return "revoked";
  if (now >= license.license.grant.expires_at)
    return "expired";
  return "valid";
}

void write_license(messages::json_writer& out,
                   const storage::license_view& license,
                   domain::timestamp now) {
  const auto& grant = license.license.grant;
  out.begin_object();
  out.string_member("license_id", grant.license_id);
  out.string_member("subscription_id", grant.subscription_id);
  out.string_member("status", license_status(license, now));
  out.string_member("license_key", license.license.license_key);
  // The signed claims, as stored beside the token (jsonb: the same members
  // and values as the token's payload, in PostgreSQL's key order; the
  // token itself is the byte-exact form).
  if (license.license.claims_json.empty())
    out.null_member("claims");
  else
    out.raw_member("claims", license.license.claims_json);
  time_member(out, "issued_at", grant.issued_at);
  if (license.revoked_at)
    time_member(out, "revoked_at", *license.revoked_at);
  else
    out.null_member("revoked_at");
  out.end_object();
}

void write_rate_plan(messages::json_writer& out,
                     const storage::rate_plan_view& plan) {
  out.begin_object();
  out.string_member("rate_plan_id", plan.rate_plan_id);
  out.string_member("name", plan.name);
  out.key("product");
  out.begin_object();
  out.string_member("id", plan.product_id);
  out.string_member("name", plan.product_name);
  out.end_object();
  // The JSON as stored (JSONB: keys sorted, duplicate keys gone).
  out.raw_member("custom_fields", plan.custom_fields);
  out.key("charges");
  out.begin_array();
  for (const auto& c : plan.charges) {
    out.begin_object();
    out.string_member("charge_id", c.charge_id);
    out.string_member("name", c.name);
    out.string_member("billing_period", c.billing_period);
    out.raw_member("custom_fields", c.custom_fields);
    out.end_object();
  }
  out.end_array();
  out.end_object();
}

void write_incomplete_plan(messages::json_writer& out,
                           const storage::incomplete_plan& plan) {
  out.begin_object();
  out.string_member("rate_plan_id", plan.rate_plan_id);
  out.string_member("name", plan.name);
  out.string_array_member("missing", plan.missing);
  // The charges behind a missing CDotPlanType__c, in the plan's own shape.
  out.key("charges");
  out.begin_array();
  for (const auto& id : plan.charges_missing_plan_type) {
    out.begin_object();
    out.string_member("charge_id", id);
    out.string_array_member("missing",
                            {std::string{storage::catalog_field::plan_type}});
    out.end_object();
  }
  out.end_array();
  out.end_object();
}

std::chrono::system_clock::time_point to_time_point(domain::timestamp t) {
  return std::chrono::system_clock::time_point{
    std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::microseconds{t.micros()})};
}

} // namespace seatledger::http
