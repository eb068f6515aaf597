#pragma once

// The HTTP API's pure parts: routing, authentication, query parameters and
// the JSON and CSV shapes of http.md. No I/O and no httplib here, so the unit
// tests exercise them without a server.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "domain/ledger.hpp"
#include "domain/time.hpp"
#include "domain/usage.hpp"
#include "messages/json_writer.hpp"
#include "storage/catalog.hpp"
#include "storage/ports.hpp"

namespace seatledger::http {

// -- errors -------------------------------------------------------------------

/// An answer that is not a success: the HTTP status and the
/// `{"error": {"code", "message"}}` body's fields.
struct api_error {
  int status = 500;
  std::string code;
  std::string message;
};

api_error bad_request(std::string message);
api_error unauthorized(std::string message);
api_error forbidden(std::string message);
api_error not_found(std::string message);
api_error method_not_allowed(std::string message);
/// A broken rule: `code` is the rejection's own reason code.
api_error conflict(std::string code, std::string message);
api_error not_ready(std::string message);
/// 503: the replica is ready but every database connection is lent.
api_error busy(std::string message);
api_error internal_error(std::string message);

/// `{"error":{"code":…,"message":…}}`.
std::string error_body(std::string_view code, std::string_view message);

/// The standard body for a status httplib answers on its own (a malformed
/// request line, a payload too large, …).
api_error error_for_status(int status);

/// A value or the error that answers the request instead.
template<class T>
class api_result {
public:
  api_result(T value) : data_(std::in_place_index<0>, std::move(value)) {}

  api_result(api_error error)
      : data_(std::in_place_index<1>, std::move(error)) {}

  explicit operator bool() const {
    return data_.index() == 0;
  }

  T& value() {
    return std::get<0>(data_);
  }

  const T& value() const {
    return std::get<0>(data_);
  }

  T& operator*() {
    return value();
  }

  const T& operator*() const {
    return value();
  }

  T* operator->() {
    return &value();
  }

  const api_error& error() const {
    return std::get<1>(data_);
  }

private:
  std::variant<T, api_error> data_;
};

// -- authentication -----------------------------------------------------------

/// `read`: GET requests (and verifying a license); `admin`: everything.
enum class scope { read, admin };

const char* to_string(scope s);

std::optional<scope> parse_scope(std::string_view text);

/// Whether a token with `granted` may call a route that needs `required`.
constexpr bool allows(scope granted, scope required) {
  return granted == scope::admin || required == scope::read;
}

/// Equality that takes the same time whatever the inputs: both sides are
/// hashed with SHA-256 first and the digests compared with CRYPTO_memcmp, so
/// neither the position of the first difference nor the lengths leak.
bool constant_time_equal(std::string_view x, std::string_view y);

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive, as RFC 7235 says); nothing for another scheme or an
/// empty token.
std::optional<std::string_view> bearer_token(std::string_view authorization);

/// The configured tokens. Only SHA-256 digests are kept, and a lookup
/// compares against every one of them, so the time taken says nothing about
/// which token (if any) matched.
class token_table {
public:
  token_table() = default;

  /// Fails (with the reason in `error`) on an empty token or a scope other
  /// than `read` or `admin`.
  static std::optional<token_table>
  make(const std::vector<std::pair<std::string, std::string>>& tokens,
       std::string& error);

  /// The scope of the presented token, if it is one of the configured ones.
  std::optional<scope> lookup(std::string_view token) const;

  std::size_t size() const {
    return entries_.size();
  }

private:
  struct entry {
    std::array<unsigned char, 32> digest;
    http::scope scope;
  };
  std::vector<entry> entries_;
};

/// The error for a request to a route that needs `required`: nothing when
/// `authorization` (the header's value, empty if absent) grants it,
/// `unauthorized` for a missing or unknown token, `forbidden` for a token
/// without the scope.
std::optional<api_error> authorize(const token_table& tokens,
                                   std::string_view authorization,
                                   scope required);

// -- routing ------------------------------------------------------------------

enum class route_id {
  healthz,
  readyz,
  metrics,
  subscription,
  usage,
  seats,
  holders,
  ledger,
  licenses_of,
  issue_license,
  license,
  revocations,
  verify_license,
  org,
  catalog_rate_plans,
  catalog_incomplete,
};

struct route_match {
  route_id id = route_id::healthz;
  /// The pattern, e.g. "/v1/subscriptions/{id}/usage" (for logs and metric
  /// labels: never the concrete path, which names entities).
  std::string_view pattern;
  /// Values of the `{…}` segments, percent-decoded, in order.
  std::vector<std::string> params;
  /// No token needed (`/healthz`, `/readyz`, `/metrics`).
  bool open = false;
  http::scope required = scope::read;
  /// The query parameters the route takes, space-separated, for
  /// `check_query`; "*" when its handler checks them itself (or, for the
  /// probes and `/metrics`, ignores them).
  std::string_view query;
};

/// What a request's method and path select: a route, or the methods the path
/// allows (empty: no such path).
struct routing {
  std::optional<route_match> match;
  std::vector<std::string> allowed_methods;
};

/// Routes by the raw request target (its query string is ignored; an
/// absolute-form target routes by its path). Each
/// segment is percent-decoded on its own, so an id containing `/` (allowed
/// in identifiers) is addressed as `%2F`. A literal segment wins over a
/// parameter: `/v1/licenses/revocations` is never license "revocations".
/// `HEAD` routes like `GET`.
routing route(std::string_view method, std::string_view target);

/// Percent-decoding of one path segment; nothing on a malformed escape.
std::optional<std::string> percent_decode(std::string_view text);

// -- query parameters ---------------------------------------------------------

inline constexpr std::size_t default_page_limit = 100;
inline constexpr std::size_t max_page_limit = 1000;

/// `limit`: absent → 100; otherwise an integer in 1..1000.
api_result<std::size_t> parse_limit(const std::optional<std::string>& text);

/// The ledger's `after`: absent → 0; otherwise a non-negative integer.
api_result<std::int64_t>
parse_after_seq(const std::optional<std::string>& text);

/// An RFC 3339 parameter. A `+` of a numeric offset that arrived as a space
/// (an unencoded `+` in a query string means a space) is taken as `+`.
api_result<domain::timestamp> parse_time_param(std::string_view name,
                                               std::string_view text);

/// A flag like `export=1`: `1`/`true` or `0`/`false`.
api_result<bool> parse_flag(std::string_view name,
                            const std::optional<std::string>& text);

/// Query parameters in request order (a name may repeat).
using query_params = std::vector<std::pair<std::string, std::string>>;

/// A 400 naming the first parameter `accepted` (route_match::query; a name
/// ending in `*` may repeat) does not list, or the first one given twice;
/// nothing when all are fine. A
/// mistyped filter or page parameter used to be ignored, answering as if
/// it had not been given.
std::optional<api_error> check_query(const query_params& params,
                                     std::string_view accepted);

/// The filters of `GET /v1/catalog/rate-plans`: `tier`, `deployment`,
/// `plan_type` (charge level), `action`, `status`, `community_type`,
/// `true_up`, `us_pubsec` (plan level), and paging by `after` (a rate plan
/// id, exclusive) and `limit` (1..1000; absent: every plan). Values must be
/// ones domain.md lists, matched without regard to case and passed on as
/// spelled there; booleans are `true`/`false`/`1`/`0`. `action` may repeat
/// (every one must be included); any other name given twice, an unknown
/// name or an unlisted value is a 400 naming the parameter.
api_result<storage::rate_plan_filter>
parse_rate_plan_filter(const query_params& params);

// -- shapes -------------------------------------------------------------------

/// `{source, id, type}` of an event.
void write_event_ref(messages::json_writer& out, const domain::event_ref& ref);

/// A ledger entry: `seq, seats_in_use, effective_at, event, org_id, user_id,
/// hash, prev_hash`.
void write_ledger_entry(messages::json_writer& out,
                        const domain::ledger_entry& entry);

/// A month of the usage report; `peak_event` names the ledger entry
/// `peak_seq`'s causing event (null when the peak was carried in).
void write_usage_month(messages::json_writer& out,
                       const domain::usage_month& month,
                       const std::optional<domain::event_ref>& peak_event);

/// The usage report as CSV: the header
/// `month,start,end,peak_seats,peak_at,peak_seq,complete` and one row per
/// month (an empty `peak_seq` when carried in), CRLF line ends (RFC 4180).
std::string usage_csv(const std::vector<domain::usage_month>& months);

/// `valid`, `expired` (at or after `expires_at`) or `revoked`.
const char* license_status(const storage::license_view& license,
                           domain::timestamp now);

/// A license: `license_id, subscription_id, status, license_key, claims,
/// issued_at, revoked_at`.
void write_license(messages::json_writer& out,
                   const storage::license_view& license, domain::timestamp now);

/// A rate plan: `rate_plan_id, name, product {id, name}, custom_fields,
/// charges [{charge_id, name, billing_period, custom_fields}]`.
void write_rate_plan(messages::json_writer& out,
                     const storage::rate_plan_view& plan);

/// An incomplete plan: `rate_plan_id, missing` (field names), plus `name`
/// and `charges`: `[{charge_id, missing}]` for each charge without a usable
/// `CDotPlanType__c`.
void write_incomplete_plan(messages::json_writer& out,
                           const storage::incomplete_plan& plan);

/// An instant as a system clock time point (the PASETO verifier works in
/// `std::chrono`).
std::chrono::system_clock::time_point to_time_point(domain::timestamp t);

} // namespace seatledger::http
