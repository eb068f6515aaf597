#include "adapters/http/server.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <httplib.h>
#include <mutex>
#include <openssl/rand.h>
#include <optional>
#include <string_view>
#include <strings.h>
#include <thread>
#include <variant>

#include <nlohmann/json.hpp>

#include "adapters/http/api.hpp"
#include "adapters/metrics/registry.hpp"
#include "domain/identifiers.hpp"
#include "domain/usage.hpp"
#include "log/log.hpp"
#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/json_writer.hpp"
#include "messages/service_error.hpp"
#include "paseto/license_verifier.hpp"

namespace seatledger::http {

using std::chrono::steady_clock;

domain::timestamp wall_clock() {
  using namespace std::chrono;
  return domain::timestamp::from_micros(
    duration_cast<microseconds>(system_clock::now().time_since_epoch())
      .count());
}

namespace {

constexpr const char* json_type = "application/json";

/// The answer to one request, built by a handler and copied to httplib's
/// response at the edge.
struct answer {
  int status = 200;
  std::string content_type = json_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

answer json_answer(int status, std::string body) {
  answer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

answer error_answer(const api_error& e) {
  auto a = json_answer(e.status, error_body(e.code, e.message));
  if (e.status == 401)
    a.headers.emplace_back("WWW-Authenticate", "Bearer");
  return a;
}

/// Storage failures: unreachable PostgreSQL is a 503 (the replica cannot
/// answer now, another may), anything else a 500 whose details stay in the
/// log (they may name tables or constraints).
api_error storage_error(const caf::error& err, std::string_view what) {
  if (is(err, service_errc::storage_unavailable)) {
    log::warning("PostgreSQL unavailable for an HTTP request",
                 {{"operation", what}, {"error", describe(err)}});
    return not_ready("PostgreSQL is not reachable");
  }
  log::error("storage failure in an HTTP request",
             {{"operation", what}, {"error", describe(err)}});
  return internal_error("storage failure (see the service log)");
}

std::optional<std::string> query_param(const httplib::Request& req,
                                       const char* name) {
  if (!req.has_param(name))
    return std::nullopt;
  return req.get_param_value(name);
}

/// The parameters of the request target's query string alone: httplib adds
/// a form-encoded body's fields to `params` too, and a JSON body sent with
/// curl's default form content type would read as one odd parameter.
query_params url_query(const httplib::Request& req) {
  // Every pair as sent: httplib's parse_query_text drops a pair repeated
  // with the same value, which check_query refuses like any repeat.
  query_params result;
  auto mark = req.target.find('?');
  if (mark == std::string::npos)
    return result;
  auto query = req.target.substr(mark + 1);
  query = query.substr(0, query.find('#'));
  for (std::size_t start = 0; start <= query.size();) {
    auto end = std::min(query.find('&', start), query.size());
    auto pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty())
      continue;
    auto equals = pair.find('=');
    result.emplace_back(
      httplib::detail::decode_url(pair.substr(0, equals), true),
      equals == std::string::npos
        ? std::string{}
        : httplib::detail::decode_url(pair.substr(equals + 1), true));
  }
  return result;
}

/// The methods httplib 0.11 reads a body for (given its length).
bool method_takes_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH"
         || method == "DELETE";
}

/// Whether httplib 0.11 would read this request's body until the client
/// closes the connection: a method it expects a body with, and no length.
bool httplib_reads_body_to_close(const httplib::Request& req) {
  return method_takes_body(req.method) && !req.has_header("Content-Length")
         && !req.has_header("Transfer-Encoding");
}

struct framing_refusal {
  int status = 400;
  std::string code = "bad_request";
  std::string message;
};

/// Why the request's body framing cannot be trusted (RFC 9112 6.3): a
/// Content-Length that is not a number, several that differ, or one beside
/// Transfer-Encoding (httplib 0.11 took the first length, or a body of none
/// for `abc`); a transfer coding other than chunked (httplib read such a
/// body until the client closed: 501, RFC 9112 6.1); a body on GET, HEAD
/// or OPTIONS, or a chunked one on DELETE, which httplib does not read, so
/// its bytes were parsed as the next request on the connection.
std::optional<framing_refusal> framing_problem(const httplib::Request& req) {
  auto refuse = [](std::string message) {
    return framing_refusal{400, "bad_request", std::move(message)};
  };
  if (req.has_header("Transfer-Encoding")) {
    if (req.get_header_value_count("Transfer-Encoding") != 1)
      return refuse("Transfer-Encoding given more than once");
    auto coding = req.get_header_value("Transfer-Encoding");
    if (strcasecmp(coding.c_str(), "chunked") != 0)
      return framing_refusal{501, "not_implemented",
                             "transfer coding '" + coding
                               + "' is not supported (only chunked)"};
    if (req.has_header("Content-Length"))
      return refuse("Content-Length and Transfer-Encoding together");
    // httplib 0.11 reads a chunked body on POST, PUT and PATCH only; on a
    // DELETE it would be read as the next request.
    if (req.method != "POST" && req.method != "PUT" && req.method != "PATCH")
      return refuse(req.method + " takes no chunked body");
    return std::nullopt;
  }
  auto lengths = req.get_header_value_count("Content-Length");
  if (lengths == 0)
    return std::nullopt;
  auto first = req.get_header_value("Content-Length", 0);
  for (std::size_t i = 0; i < lengths; ++i) {
    auto value = req.get_header_value("Content-Length", i);
    if (value.empty() || value.size() > 18
        || value.find_first_not_of("0123456789") != std::string::npos)
      return refuse("Content-Length is not a number");
    if (value != first)
      return refuse("Content-Length given with different values");
  }
  if (!method_takes_body(req.method)
      && first.find_first_not_of('0') != std::string::npos)
    return refuse(req.method + " takes no body");
  return std::nullopt;
}

/// An Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): here 1
/// to 255 visible ASCII characters.
bool is_idempotency_key(const std::string& key) {
  if (key.empty() || key.size() > 255)
    return false;
  for (char c : key)
    if (c < '!' || c > '~')
      return false;
  return true;
}

/// A random (version 4) UUID for the commands the API publishes: their ids
/// must be fresh, unlike the service's derived ids.
std::string random_uuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                "%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

void write_term(messages::json_writer& out, const domain::term_usage& term) {
  out.key("term");
  out.begin_object();
  out.string_member("start", domain::format_rfc3339(term.start));
  out.string_member("end", domain::format_rfc3339(term.end));
  out.end_object();
}

/// Every database connection of a pool stayed lent for the whole wait.
struct pool_busy {
  std::size_t connections;
};

/// The stores of the server (pg_store for queries, pg_catalog for the
/// catalog), lent to one request at a time; at most `max_stores` exist so
/// that many connections do not become as many PostgreSQL backends.
template<class Store>
class basic_store_pool {
public:
  using factory = std::function<std::unique_ptr<Store>()>;

  basic_store_pool(factory make, std::size_t max_stores,
                   std::chrono::milliseconds wait)
      : make_(std::move(make)), max_(std::max<std::size_t>(max_stores, 1)),
        wait_(wait) {}

  class lease {
  public:
    lease(basic_store_pool& pool, std::unique_ptr<Store> store)
        : pool_(&pool), store_(std::move(store)) {}

    lease(lease&& other) noexcept = default;

    ~lease() {
      if (store_)
        pool_->give_back(std::move(store_));
    }

    Store* operator->() const {
      return store_.get();
    }

  private:
    basic_store_pool* pool_;
    std::unique_ptr<Store> store_;
  };

  /// A store, or `pool_busy` once all `max_stores` stayed lent for `wait`.
  lease take() {
    return take_until(steady_clock::now() + wait_);
  }

  /// A store, or `pool_busy` once all `max_stores` stayed lent until
  /// `deadline` (at most `wait` from now).
  lease take_until(steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> guard{mutex_};
    deadline = std::min(deadline, steady_clock::now() + wait_);
    while (idle_.empty() && made_ >= max_) {
      if (returned_.wait_until(guard, deadline) == std::cv_status::timeout
          && idle_.empty() && made_ >= max_)
        throw pool_busy{max_};
    }
    if (!idle_.empty()) {
      auto store = std::move(idle_.back());
      idle_.pop_back();
      return {*this, std::move(store)};
    }
    ++made_;
    guard.unlock();
    // Connecting happens lazily inside the store, outside the lock.
    std::unique_ptr<Store> store;
    try {
      store = make_();
    } catch (...) {
      forget_one();
      throw;
    }
    if (!store) {
      forget_one();
      throw std::runtime_error("the store factory returned no store");
    }
    return {*this, std::move(store)};
  }

  void clear() {
    std::lock_guard<std::mutex> guard{mutex_};
    made_ -= std::min(made_, idle_.size());
    idle_.clear();
  }

private:
  void give_back(std::unique_ptr<Store> store) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      idle_.push_back(std::move(store));
    }
    returned_.notify_one();
  }

  void forget_one() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      --made_;
    }
    returned_.notify_one();
  }

  factory make_;
  std::size_t max_;
  std::chrono::milliseconds wait_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Store>> idle_;
  std::size_t made_ = 0;
};

using store_pool = basic_store_pool<storage::query_store>;
using catalog_pool = basic_store_pool<storage::catalog_store>;

bool is_blank(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
}

/// A body as the JSON object a command's data is, read by the decoder's
/// rules first: nlohmann would take the last of two members named alike
/// (a Kafka record with them is a dead letter) and nest without bound.
/// Otherwise the 400's message.
std::variant<nlohmann::json, std::string>
json_object_body(messages::decoder& decoder, const std::string& body) {
  if (auto problem = decoder.check_json(body, "the body"))
    return std::move(problem->message);
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    return std::string{"the body must be a JSON object"};
  return parsed;
}

} // namespace

struct server::impl {
  explicit impl(server_dependencies d)
      : deps(std::move(d)),
        stores(deps.make_store, deps.max_stores, deps.store_wait),
        catalogs(deps.make_catalog, deps.max_stores, deps.store_wait) {}

  server_dependencies deps;
  token_table tokens;
  store_pool stores;
  catalog_pool catalogs;
  std::unique_ptr<httplib::Server> http;
  std::thread listener;
  std::atomic<int> bound_port{0};

  // Waiting writes sleep on this so that `stop` wakes them at once.
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopping = false;

  domain::timestamp now() const {
    return deps.clock ? deps.clock() : wall_clock();
  }

  bool sleep_or_stop(steady_clock::time_point until) {
    std::unique_lock<std::mutex> guard{stop_mutex};
    return !stop_cv.wait_until(guard, until, [this] { return stopping; });
  }

  // -- edge -------------------------------------------------------------------

  void dispatch(const httplib::Request& req, httplib::Response& res) {
    auto started = steady_clock::now();
    std::string_view pattern = "unmatched";
    answer a;
    try {
      auto r = route(req.method, req.target);
      if (r.match) {
        pattern = r.match->pattern;
        a = handle(req, *r.match);
      } else if (!r.allowed_methods.empty()) {
        std::string allow;
        for (const auto& m : r.allowed_methods)
          allow += (allow.empty() ? "" : ", ") + m;
        a = error_answer(method_not_allowed(req.method
                                            + " is not allowed here"
                                              " (allowed: "
                                            + allow + ")"));
        a.headers.emplace_back("Allow", allow);
      } else {
        a = error_answer(not_found("no such resource"));
      }
    } catch (const pool_busy& full) {
      log::warning("HTTP request found every database connection busy",
                   {{"route", pattern}, {"connections", full.connections}});
      a = error_answer(
        busy("all " + std::to_string(full.connections)
             + " database connections of this replica are busy; retry"));
      a.headers.emplace_back("Retry-After", "1");
    } catch (const std::exception& e) {
      log::error("HTTP handler failed", {{"method", req.method},
                                         {"route", pattern},
                                         {"error", e.what()}});
      a = error_answer(internal_error("internal error"));
    } catch (...) {
      log::error("HTTP handler failed",
                 {{"method", req.method}, {"route", pattern}});
      a = error_answer(internal_error("internal error"));
    }
    res.status = a.status;
    for (const auto& [name, value] : a.headers)
      res.set_header(name.c_str(), value);
    res.set_content(std::move(a.body), a.content_type.c_str());
    record(req, pattern, a.status, started);
  }

  /// Counts and logs one answer. The path only (httplib keeps the query
  /// string apart), never headers: tokens travel in Authorization.
  void record(const httplib::Request& req, std::string_view pattern, int status,
              steady_clock::time_point started) {
    auto seconds
      = std::chrono::duration<double>(steady_clock::now() - started).count();
    if (deps.metrics)
      deps.metrics->http_request(pattern, status, seconds);
    log::debug("http request", {{"method", req.method},
                                {"path", req.path},
                                {"route", pattern},
                                {"status", status},
                                {"duration_ms", seconds * 1000.0}});
  }

  /// Counts and logs an answer given before dispatch (a body too large or
  /// framed wrongly, a request httplib could not parse), under the route
  /// the request would have taken. `started` is when the refusal began:
  /// httplib does not say when the request arrived.
  void record_refusal(const httplib::Request& req, int status,
                      steady_clock::time_point started) {
    std::string_view pattern = "unmatched";
    if (!req.method.empty()) {
      auto r = route(req.method, req.target);
      if (r.match)
        pattern = r.match->pattern;
    }
    record(req, pattern, status, started);
  }

  answer handle(const httplib::Request& req, const route_match& m) {
    if (!m.open) {
      auto header = req.get_header_value("Authorization");
      if (auto denied = authorize(tokens, header, m.required))
        return error_answer(*denied);
    }
    if (auto bad = check_query(url_query(req), m.query))
      return error_answer(*bad);
    switch (m.id) {
      case route_id::healthz: return json_answer(200, R"({"status":"ok"})");
      case route_id::readyz: return readyz();
      case route_id::metrics: return metrics_text();
      case route_id::subscription: return subscription(m.params[0]);
      case route_id::usage: return usage(req, m.params[0]);
      case route_id::seats: return seats(req, m.params[0]);
      case route_id::holders: return holders(req, m.params[0]);
      case route_id::ledger: return ledger(req, m.params[0]);
      case route_id::licenses_of: return licenses_of(m.params[0]);
      case route_id::issue_license: return issue_license(req, m.params[0]);
      case route_id::license: return license(m.params[0]);
      case route_id::revocations: return revocations();
      case route_id::verify_license: return verify_license(req);
      case route_id::org: return org(m.params[0]);
      case route_id::catalog_rate_plans: return catalog_rate_plans(req);
      case route_id::catalog_incomplete: return catalog_incomplete();
    }
    return error_answer(not_found("no such resource"));
  }

  // -- operations -------------------------------------------------------------

  answer readyz() {
    std::string reason = "no pipeline status";
    if (deps.status && deps.status->ready(reason))
      return json_answer(200, R"({"status":"ready"})");
    return error_answer(not_ready(reason));
  }

  answer metrics_text() {
    if (!deps.metrics)
      return error_answer(not_found("metrics are not enabled"));
    static const actors::service_status no_status;
    answer a;
    a.content_type = metrics::exposition_content_type;
    a.body = deps.metrics->render(deps.status ? *deps.status : no_status);
    return a;
  }

  // -- subscriptions ----------------------------------------------------------

  /// The created subscription, or the answer that replaces it (404 before
  /// its `create`, even though the pool may exist).
  api_result<storage::subscription_snapshot>
  created_subscription(store_pool::lease& store, const std::string& id) {
    if (!domain::is_valid_identifier(id))
      return not_found("unknown subscription");
    auto snap = store->subscription(id);
    if (!snap)
      return storage_error(snap.error(), "subscription");
    if (!*snap || (*snap)->record.status == domain::subscription_status::none)
      return not_found("unknown subscription " + id);
    return std::move(**snap);
  }

  /// 404 unless the subscription's pool (or the subscription) exists.
  std::optional<api_error> require_pool(store_pool::lease& store,
                                        const std::string& id) {
    if (!domain::is_valid_identifier(id))
      return not_found("unknown subscription");
    auto exists = store->pool_exists(id);
    if (!exists)
      return storage_error(exists.error(), "pool_exists");
    if (!*exists)
      return not_found("unknown subscription " + id);
    return std::nullopt;
  }

  answer subscription(const std::string& id) {
    auto store = stores.take();
    auto snap = created_subscription(store, id);
    if (!snap)
      return error_answer(snap.error());
    std::vector<std::string> orgs(snap->orgs.begin(), snap->orgs.end());
    messages::json_writer out;
    messages::write_subscription(out, snap->record, orgs);
    return json_answer(200, out.take());
  }

  answer usage(const httplib::Request& req, const std::string& id) {
    auto format = query_param(req, "format").value_or("json");
    if (format != "json" && format != "csv")
      return error_answer(bad_request("format must be json or csv"));
    auto exporting = parse_flag("export", query_param(req, "export"));
    if (!exporting)
      return error_answer(exporting.error());
    if (*exporting && format == "csv")
      return error_answer(
        bad_request("the signed export is JSON; drop format=csv"));
    std::optional<domain::timestamp> term_start;
    if (auto text = query_param(req, "term_start")) {
      auto t = parse_time_param("term_start", *text);
      if (!t)
        return error_answer(t.error());
      term_start = *t;
    }
    auto store = stores.take();
    auto snap = created_subscription(store, id);
    if (!snap)
      return error_answer(snap.error());
    const auto& record = snap->record;
    auto term = term_start ? domain::find_term(record, *term_start)
                           : domain::current_term_usage(record);
    if (!term)
      return error_answer(not_found("no term of " + id + " starts at "
                                    + domain::format_rfc3339(*term_start)));
    auto now_ = now();
    // The entries the months' peaks depend on, not the term's whole ledger
    // (155,000 entries took 0.6-0.8 s to read).
    auto window = store->usage_window(
      id, domain::started_months(term->start, term->usage_end, now_));
    if (!window)
      return error_answer(storage_error(window.error(), "usage_window"));
    auto months = domain::monthly_usage(*window, term->start, term->usage_end,
                                        now_, term->closed_months);
    if (*exporting)
      months = domain::complete_months(std::move(months));
    if (format == "csv") {
      answer a;
      a.content_type = "text/csv; charset=utf-8";
      a.body = usage_csv(months);
      return a;
    }
    // Name the event behind each month's peak (http.md: "the report names
    // the ledger entry and event that caused it").
    std::vector<std::optional<domain::event_ref>> peak_events;
    for (const auto& m : months) {
      std::optional<domain::event_ref> cause;
      if (m.peak_seq) {
        auto page = store->ledger_page(id, *m.peak_seq - 1, 1);
        if (!page)
          return error_answer(storage_error(page.error(), "ledger_page"));
        if (!page->empty() && page->front().seq == *m.peak_seq)
          cause = page->front().cause;
      }
      peak_events.push_back(std::move(cause));
    }
    messages::json_writer out;
    out.begin_object();
    out.string_member("subscription_id", id);
    write_term(out, *term);
    out.key("months");
    out.begin_array();
    for (std::size_t i = 0; i < months.size(); ++i)
      write_usage_month(out, months[i], peak_events[i]);
    out.end_array();
    if (!*exporting) {
      out.end_object();
      return json_answer(200, out.take());
    }
    out.string_member("exported_at", domain::format_rfc3339(now_));
    out.end_object();
    auto signed_doc = deps.keys->sign_document(out.take());
    if (!signed_doc) {
      log::error("cannot sign the usage export",
                 {{"subscription_id", id},
                  {"error", describe(signed_doc.error())}});
      return error_answer(internal_error("cannot sign the export"));
    }
    return json_answer(200, std::move(*signed_doc));
  }

  answer seats(const httplib::Request& req, const std::string& id) {
    auto text = query_param(req, "at");
    if (!text)
      return error_answer(bad_request("at is required (an RFC 3339 time)"));
    auto at = parse_time_param("at", *text);
    if (!at)
      return error_answer(at.error());
    auto store = stores.take();
    if (auto missing = require_pool(store, id))
      return error_answer(*missing);
    auto count = store->seats_at(id, *at);
    if (!count)
      return error_answer(storage_error(count.error(), "seats_at"));
    messages::json_writer out;
    out.begin_object();
    out.string_member("subscription_id", id);
    out.string_member("at", domain::format_rfc3339(*at));
    out.integer_member("seats_in_use", *count);
    out.end_object();
    return json_answer(200, out.take());
  }

  answer holders(const httplib::Request& req, const std::string& id) {
    auto limit = parse_limit(query_param(req, "limit"));
    if (!limit)
      return error_answer(limit.error());
    auto after_param = query_param(req, "after");
    // A user id, as next_after gave it; anything else (bytes that are not
    // UTF-8 among them, which PostgreSQL refused with a 500) names no page.
    // `after=` with nothing is a 400, as it is for the ledger's seq.
    if (after_param && !domain::is_valid_identifier(*after_param))
      return error_answer(bad_request("after must be a user id (a page's "
                                      "next_after)"));
    auto after = after_param.value_or("");
    auto store = stores.take();
    if (auto missing = require_pool(store, id))
      return error_answer(*missing);
    // One more than asked tells whether another page follows.
    auto page = store->holders_page(id, after, *limit + 1);
    if (!page)
      return error_answer(storage_error(page.error(), "holders_page"));
    bool more = page->size() > *limit;
    if (more)
      page->resize(*limit);
    messages::json_writer out;
    out.begin_object();
    out.key("holders");
    out.begin_array();
    for (const auto& h : *page) {
      out.begin_object();
      out.string_member("user_id", h.user_id);
      out.string_array_member("orgs", h.orgs);
      out.end_object();
    }
    out.end_array();
    if (more)
      out.string_member("next_after", page->back().user_id);
    else
      out.null_member("next_after");
    out.end_object();
    return json_answer(200, out.take());
  }

  answer ledger(const httplib::Request& req, const std::string& id) {
    auto limit = parse_limit(query_param(req, "limit"));
    if (!limit)
      return error_answer(limit.error());
    auto after = parse_after_seq(query_param(req, "after"));
    if (!after)
      return error_answer(after.error());
    auto store = stores.take();
    if (auto missing = require_pool(store, id))
      return error_answer(*missing);
    auto page = store->ledger_page(id, *after, *limit + 1);
    if (!page)
      return error_answer(storage_error(page.error(), "ledger_page"));
    bool more = page->size() > *limit;
    if (more)
      page->resize(*limit);
    messages::json_writer out;
    out.begin_object();
    out.key("entries");
    out.begin_array();
    for (const auto& e : *page)
      write_ledger_entry(out, e);
    out.end_array();
    if (more)
      out.integer_member("next_after", page->back().seq);
    else
      out.null_member("next_after");
    out.end_object();
    return json_answer(200, out.take());
  }

  // -- licenses ---------------------------------------------------------------

  answer license_answer(int status, const storage::license_view& view) {
    messages::json_writer out;
    write_license(out, view, now());
    return json_answer(status, out.take());
  }

  answer licenses_of(const std::string& id) {
    if (!domain::is_valid_identifier(id))
      return error_answer(not_found("unknown subscription"));
    auto store = stores.take();
    auto list = store->licenses_of(id);
    if (!list)
      return error_answer(storage_error(list.error(), "licenses_of"));
    // Before its create a subscription is 404; http.md lets only its
    // pool (ledger, seats, holders) answer then.
    if (list->empty())
      if (auto snap = created_subscription(store, id); !snap)
        return error_answer(snap.error());
    auto now_ = now();
    messages::json_writer out;
    out.begin_object();
    out.key("licenses");
    out.begin_array();
    for (const auto& l : *list) // newest first, as stored
      write_license(out, l, now_);
    out.end_array();
    out.end_object();
    return json_answer(200, out.take());
  }

  answer license(const std::string& license_id) {
    // License ids are identifiers (derived uuids); bytes that are not UTF-8
    // made PostgreSQL refuse the query, a 500.
    if (!domain::is_valid_identifier(license_id))
      return error_answer(not_found("unknown license"));
    auto store = stores.take();
    auto found = store->license(license_id);
    if (!found)
      return error_answer(storage_error(found.error(), "license"));
    if (!*found)
      return error_answer(not_found("unknown license " + license_id));
    return license_answer(200, **found);
  }

  answer revocations() {
    auto store = stores.take();
    auto list = store->revocations();
    if (!list)
      return error_answer(storage_error(list.error(), "revocations"));
    messages::json_writer out;
    out.begin_object();
    out.string_member("issued_at", domain::format_rfc3339(now()));
    out.key("revoked");
    out.begin_array();
    for (const auto& r : *list) {
      out.begin_object();
      out.string_member("license_id", r.license_id);
      out.string_member("subscription_id", r.subscription_id);
      out.string_member("revoked_at", domain::format_rfc3339(r.revoked_at));
      out.end_object();
    }
    out.end_array();
    out.end_object();
    auto signed_doc = deps.keys->sign_document(out.take());
    if (!signed_doc) {
      log::error("cannot sign the revocation list",
                 {{"error", describe(signed_doc.error())}});
      return error_answer(internal_error("cannot sign the revocation list"));
    }
    return json_answer(200, std::move(*signed_doc));
  }

  answer verify_license(const httplib::Request& req) {
    messages::decoder decoder;
    auto parsed = json_object_body(decoder, req.body);
    if (auto* problem = std::get_if<std::string>(&parsed))
      return error_answer(bad_request(std::move(*problem)));
    auto& body = std::get<nlohmann::json>(parsed);
    auto it = body.find("license_key");
    if (it == body.end() || !it->is_string())
      return error_answer(bad_request("license_key (a string) is required"));
    const auto& key = it->get_ref<const std::string&>();
    // No clock skew: this server's clock is the one that also says a
    // license is `expired` on GET; a skew allowance is for offline
    // verifiers' clocks.
    auto check = paseto::verify_license(deps.keys->trusted(), key,
                                        to_time_point(now()));
    std::optional<std::string> reason;
    if (check.reason)
      reason = std::string{paseto::to_string(*check.reason)};
    // Once the signature holds, PostgreSQL knows what an offline check
    // cannot: whether the license was revoked since.
    if (!check.claims_json.empty()) {
      auto claims = nlohmann::json::parse(check.claims_json, nullptr, false);
      if (claims.is_object() && claims.contains("jti")
          && claims["jti"].is_string()) {
        auto store = stores.take();
        auto found = store->license(claims["jti"].get<std::string>());
        if (!found)
          return error_answer(storage_error(found.error(), "license"));
        if (*found && (*found)->revoked_at) {
          check.valid = false;
          reason = "revoked";
        }
      }
    }
    messages::json_writer out;
    out.begin_object();
    out.bool_member("valid", check.valid);
    if (reason)
      out.string_member("reason", *reason);
    else
      out.null_member("reason");
    if (check.claims_json.empty())
      out.null_member("claims");
    else
      out.raw_member("claims", check.claims_json);
    out.end_object();
    return json_answer(200, out.take());
  }

  answer issue_license(const httplib::Request& req, const std::string& id) {
    if (!domain::is_valid_identifier(id))
      return error_answer(not_found("unknown subscription"));
    // The body is the command's data without the subscription id; an empty
    // body asks for a license with the defaults.
    // One decoder checks the body and, below, the command made of it.
    messages::decoder decoder;
    std::variant<nlohmann::json, std::string> parsed = nlohmann::json::object();
    if (!is_blank(req.body))
      parsed = json_object_body(decoder, req.body);
    if (auto* problem = std::get_if<std::string>(&parsed))
      return error_answer(bad_request(std::move(*problem)));
    auto& data = std::get<nlohmann::json>(parsed);
    if (auto it = data.find("subscription_id");
        it != data.end() && *it != nlohmann::json(id))
      return error_answer(
        bad_request("subscription_id in the body differs from the path"));
    data["subscription_id"] = id;
    // With an Idempotency-Key a repeat publishes the same command, which the
    // owning actor applies once, and finds the first one's result.
    auto command_id = random_uuid();
    if (req.has_header("Idempotency-Key")) {
      auto key = req.get_header_value("Idempotency-Key");
      if (req.get_header_value_count("Idempotency-Key") != 1
          || !is_idempotency_key(key))
        return error_answer(
          bad_request("Idempotency-Key must be given once, 1 to 255 visible "
                      "ASCII characters"));
      command_id = domain::derived_id({"idempotency-key", id, key});
    }
    auto now_ = now();
    nlohmann::json envelope = {
      {"specversion", "1.0"},
      {"id", command_id},
      {"source", deps.source},
      {"type", "seatledger.license.issue"},
      {"time", domain::format_rfc3339(now_)},
      {"data", std::move(data)},
    };
    // The actor's decoder has the last word on what a valid command is: run
    // it here, so a bad body is a 400 now rather than a dead letter and a
    // timeout, and publish the decoded command re-encoded (unknown members
    // dropped).
    auto text = envelope.dump();
    auto decoded = decoder.decode_command({text, nullptr});
    if (!decoded)
      return error_answer(bad_request(decoded.error().message));
    auto value = messages::encode_command_event(decoded.value());
    if (!deps.publish)
      return error_answer(not_ready("this replica cannot publish commands"));
    {
      auto store = stores.take();
      // Saves a round trip through Kafka for the common mistake; the actor
      // still decides everything else.
      auto snap = created_subscription(store, id);
      if (!snap)
        return error_answer(snap.error());
    }
    if (req.has_header("Idempotency-Key")) {
      // A repeat of a command already applied answers from PostgreSQL, even
      // after its (source, id) left the de-duplication window. Versions
      // before the twentieth session published under `<source>-http`: a
      // request first made to one of them is found under that source too,
      // or its repeat would issue a second license.
      for (const auto& source : {deps.source, legacy_source()}) {
        bool rejections_supported = true;
        if (auto a = look_for_result(
              id, command_id, domain::event_key{source, command_id},
              rejection_id_of(source, id, command_id), rejections_supported,
              steady_clock::now() + deps.write_poll_interval))
          return std::move(*a);
      }
    }
    auto published = deps.publish(deps.commands_topic, id, value);
    if (!published) {
      log::error("cannot publish a license.issue command",
                 {{"subscription_id", id},
                  {"command_id", command_id},
                  {"error", describe(published.error())}});
      if (is(published.error(), service_errc::timeout))
        return error_answer(
          not_ready("command " + command_id
                    + " was sent but Kafka did not acknowledge it in time; it "
                      "may still be applied"
                    + how_to_learn_the_result(req)));
      return error_answer(not_ready("cannot publish the command to Kafka"));
    }
    log::info("license.issue command published",
              {{"subscription_id", id}, {"command_id", command_id}});
    return await_license(id, command_id, how_to_learn_the_result(req));
  }

  /// For an answer that leaves the command's outcome open.
  static std::string how_to_learn_the_result(const httplib::Request& req) {
    return req.has_header("Idempotency-Key")
             ? " (repeat the request with the same Idempotency-Key to learn "
               "its result)"
             : " (look for a license issued by it; a request with an "
               "Idempotency-Key can be repeated safely)";
  }

  /// The id of the `command.rejected` event the actor commits for the
  /// command (published under `source`) when it breaks a rule.
  static std::string rejection_id_of(const std::string& source,
                                     const std::string& id,
                                     const std::string& command_id) {
    return domain::derived_id({"rejected", source, command_id, id});
  }

  /// The source commands were published under before the twentieth
  /// session.
  std::string legacy_source() const {
    return deps.source + "-http";
  }

  /// Polls PostgreSQL until the command's result is committed: the license
  /// it issued, or the rejection event the actor committed instead. A
  /// connection is borrowed for each look only, so that waiting writes do
  /// not hold the pool; a look that finds the pool busy counts as a
  /// transient error (the command is published: answering `busy` would
  /// invite a retry that issues a second license).
  answer await_license(const std::string& id, const std::string& command_id,
                       const std::string& if_open) {
    auto deadline = steady_clock::now() + deps.write_timeout;
    domain::event_key command{deps.source, command_id};
    auto rejection_id = rejection_id_of(deps.source, id, command_id);
    bool rejections_supported = true;
    for (;;) {
      // A look waits for a connection no longer than until the next one
      // would start (a full pool held it the pool's whole wait, past the
      // request's deadline and past a shutdown).
      auto next = std::min(deadline,
                           steady_clock::now() + deps.write_poll_interval);
      if (auto a = look_for_result(id, command_id, command, rejection_id,
                                   rejections_supported, next))
        return std::move(*a);
      // Transient storage errors are retried until the deadline: the
      // command is in Kafka and will be applied regardless.
      if (!sleep_or_stop(next))
        return error_answer(not_ready("shutting down; command " + command_id
                                      + " was published and may still be "
                                        "applied"));
      if (steady_clock::now() >= deadline) {
        log::warning("license.issue result not committed in time",
                     {{"subscription_id", id}, {"command_id", command_id}});
        return error_answer(not_ready(
          "command " + command_id
          + " was published but its result was not committed in time; it "
            "may still be applied"
          + if_open));
      }
    }
  }

  /// One look at PostgreSQL for the command's result; nothing while it is
  /// not committed or the look failed.
  std::optional<answer>
  look_for_result(const std::string& id, const std::string& command_id,
                  const domain::event_key& command,
                  const std::string& rejection_id, bool& rejections_supported,
                  steady_clock::time_point wait_until) {
    try {
      auto store = stores.take_until(wait_until);
      auto issued = store->license_issued_by(command);
      if (issued && *issued) {
        log::info("license issued through the API",
                  {{"subscription_id", id},
                   {"command_id", command_id},
                   {"license_id", (*issued)->license.grant.license_id}});
        auto a = license_answer(201, **issued);
        a.headers.emplace_back(
          "Location", "/v1/licenses/" + (*issued)->license.grant.license_id);
        return a;
      }
      if (rejections_supported) {
        auto event = store->outbox_event(rejection_id);
        if (event && *event) {
          if (auto a = rejection_answer(**event, id, command_id))
            return a;
        } else if (!event && is(event.error(), service_errc::internal)) {
          // A store without the lookup: only the license can end the wait.
          rejections_supported = false;
        }
      }
    } catch (const pool_busy&) {
      // Looked again at the next poll.
    }
    return std::nullopt;
  }

  std::optional<answer> rejection_answer(const std::string& event_json,
                                         const std::string& id,
                                         const std::string& command_id) {
    auto event = nlohmann::json::parse(event_json, nullptr, false);
    if (event.is_discarded() || !event.is_object() || !event.contains("data")
        || !event["data"].is_object())
      return std::nullopt;
    const auto& data = event["data"];
    auto reason = data.value("reason", std::string{"rejected"});
    auto message = data.value("message", std::string{"command rejected"});
    log::info("license.issue command rejected", {{"subscription_id", id},
                                                 {"command_id", command_id},
                                                 {"reason", reason}});
    if (reason == "unknown_subscription")
      return error_answer(not_found(message));
    return error_answer(conflict(reason, message));
  }

  // -- orgs -------------------------------------------------------------------

  answer org(const std::string& org_id) {
    if (!domain::is_valid_identifier(org_id))
      return error_answer(not_found("unknown org"));
    auto store = stores.take();
    auto found = store->org(org_id);
    if (!found)
      return error_answer(storage_error(found.error(), "org"));
    if (!*found)
      return error_answer(not_found("unknown org " + org_id));
    const auto& o = **found;
    messages::json_writer out;
    out.begin_object();
    out.string_member("org_id", o.org_id);
    if (o.subscription_id)
      out.string_member("subscription_id", *o.subscription_id);
    else
      out.null_member("subscription_id");
    out.integer_member("members", o.members);
    out.integer_member("billable_members", o.billable_members);
    out.end_object();
    return json_answer(200, out.take());
  }

  // -- catalog ----------------------------------------------------------------

  answer catalog_rate_plans(const httplib::Request& req) {
    if (!deps.make_catalog)
      return error_answer(not_found("catalog queries are not enabled"));
    // Parsed into a multimap (sorted by name): the order of repeated values
    // is kept, which is all the filter needs.
    auto filter = parse_rate_plan_filter(url_query(req));
    if (!filter)
      return error_answer(filter.error());
    // One more than asked tells whether another page follows.
    auto limit = filter->limit;
    if (limit)
      filter->limit = *limit + 1;
    auto catalog = catalogs.take();
    auto plans = catalog->rate_plans(*filter);
    if (!plans)
      return error_answer(storage_error(plans.error(), "catalog rate_plans"));
    bool more = limit && plans->size() > *limit;
    if (more)
      plans->resize(*limit);
    messages::json_writer out;
    out.begin_object();
    out.key("rate_plans");
    out.begin_array();
    for (const auto& p : *plans)
      write_rate_plan(out, p);
    out.end_array();
    // Without `limit` the answer is everything.
    if (more)
      out.string_member("next_after", plans->back().rate_plan_id);
    else
      out.null_member("next_after");
    out.end_object();
    return json_answer(200, out.take());
  }

  answer catalog_incomplete() {
    if (!deps.make_catalog)
      return error_answer(not_found("catalog queries are not enabled"));
    auto catalog = catalogs.take();
    auto plans = catalog->incomplete_plans();
    if (!plans)
      return error_answer(
        storage_error(plans.error(), "catalog incomplete_plans"));
    messages::json_writer out;
    out.begin_object();
    out.key("rate_plans");
    out.begin_array();
    for (const auto& p : *plans)
      write_incomplete_plan(out, p);
    out.end_array();
    out.end_object();
    return json_answer(200, out.take());
  }
};

server::server(server_dependencies deps)
    : impl_(std::make_unique<impl>(std::move(deps))) {}

server::~server() {
  stop();
}

caf::expected<int> server::start(const std::string& host, int port) {
  auto& d = *impl_;
  if (d.http)
    return make_error(service_errc::internal, "the HTTP server runs already");
  if (!d.deps.make_store || !d.deps.keys)
    return make_error(service_errc::config_invalid,
                      "the HTTP server needs a store factory and a keyring");
  std::string problem;
  auto tokens = token_table::make(d.deps.tokens, problem);
  if (!tokens)
    return make_error(service_errc::config_invalid, problem);
  d.tokens = std::move(*tokens);
  if (d.tokens.size() == 0)
    log::warning("no API tokens configured: every /v1 request answers 401");
  {
    std::lock_guard<std::mutex> guard{d.stop_mutex};
    d.stopping = false;
  }
  auto http = std::make_unique<httplib::Server>();
  auto threads = std::max<std::size_t>(d.deps.threads, 1);
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // SO_REUSEADDR, not httplib's SO_REUSEPORT: the connections a killed
  // replica leaves in TIME_WAIT then carry the flag, so a restart binds at
  // once (with SO_REUSEPORT alone the start-up check of --http-listen,
  // which binds as a second listener would, failed for 60 s), and a
  // second process on the same port is still refused.
  http->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http->set_payload_max_length(d.deps.max_body_bytes);
  http->set_read_timeout(std::chrono::seconds{10});
  http->set_write_timeout(std::chrono::seconds{10});
  // Every method and path goes to one dispatcher, which tells 404 from 405
  // and answers every error as JSON.
  auto handler = [&d](const httplib::Request& req, httplib::Response& res) {
    d.dispatch(req, res);
  };
  // httplib 0.11 limits a body by its Content-Length only: a chunked body,
  // or a compressed one once inflated, was read whole whatever its size
  // (before the token was looked at), a form-encoded one over 8 KiB was
  // refused, and a multipart one was a 500. Bodies are read here, inflated,
  // up to the limit. The rest of a body over it is read and dropped, as
  // httplib skips one whose Content-Length is over it, so that the next
  // request on the connection is read from its start: httplib 0.11 keeps a
  // connection open whatever the answer says (up to `discard_limit`).
  auto reading_handler = [&d](const httplib::Request& req,
                              httplib::Response& res,
                              const httplib::ContentReader& read) {
    auto started = steady_clock::now();
    constexpr std::size_t discard_limit = 16 * 1024 * 1024;
    std::string body;
    std::size_t received = 0;
    auto receive = [&](const char* data, std::size_t size) {
      received += size;
      if (received > d.deps.max_body_bytes) {
        body.clear();
        return received <= discard_limit;
      }
      body.append(data, size);
      return true;
    };
    bool complete
      = req.is_multipart_form_data()
          ? read([](const httplib::MultipartFormData&) { return true; },
                 receive)
          : read(receive);
    auto refuse = [&](api_error e) {
      res.status = e.status;
      if (!complete)
        // Where the body ends is unknown: a client or proxy in between
        // should not send more on this connection.
        res.set_header("Connection", "close");
      res.set_content(error_body(e.code, e.message), json_type);
      d.record_refusal(req, e.status, started);
    };
    // httplib answers 413 itself for a Content-Length over the limit.
    if (received > d.deps.max_body_bytes || res.status == 413)
      return refuse({413, "payload_too_large",
                     "the request body is larger than "
                       + std::to_string(d.deps.max_body_bytes) + " bytes"});
    if (!complete)
      return refuse(error_for_status(400));
    if (req.is_multipart_form_data())
      return refuse(bad_request("the body must be JSON, not "
                                "multipart/form-data"));
    httplib::Request with_body = req;
    with_body.body = std::move(body);
    d.dispatch(with_body, res);
  };
  http->Get(".*", handler);
  http->Post(".*", reading_handler);
  http->Put(".*", reading_handler);
  http->Patch(".*", reading_handler);
  http->Delete(".*", reading_handler);
  http->Options(".*", handler);
  // A request without Content-Length or chunked encoding has no body (RFC
  // 9112 6.3), but httplib 0.11 reads a POST, PUT, PATCH or DELETE until the
  // client closes: `curl -X POST` waited for the 10 s read timeout and got
  // 400. Such a request is answered at once, with its empty body.
  http->set_pre_routing_handler(
    [&d](const httplib::Request& req, httplib::Response& res) {
      if (auto problem = framing_problem(req)) {
        // The body's end is unknown, or httplib would not read the body
        // (GET, HEAD, OPTIONS; chunked on DELETE). `Connection: close` asks
        // the client and any proxy between to send nothing more on this
        // connection; httplib 0.11 keeps it open whatever the answer says,
        // so bytes that still come are read as the next request.
        res.status = problem->status;
        res.set_header("Connection", "close");
        res.set_content(error_body(problem->code,
                                   "malformed request: " + problem->message),
                        json_type);
        d.record_refusal(req, problem->status, steady_clock::now());
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!httplib_reads_body_to_close(req))
        return httplib::Server::HandlerResponse::Unhandled;
      d.dispatch(req, res);
      return httplib::Server::HandlerResponse::Handled;
    });
  // Statuses httplib sets on its own (malformed request, body too large)
  // get the same JSON error shape, and are counted; answers with a body
  // are left alone (the dispatcher and the refusals above count theirs).
  http->set_error_handler(httplib::Server::HandlerWithResponse{
    [&d](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty())
        return httplib::Server::HandlerResponse::Unhandled;
      auto e = error_for_status(res.status);
      res.set_content(error_body(e.code, e.message), json_type);
      d.record_refusal(req, res.status, steady_clock::now());
      return httplib::Server::HandlerResponse::Handled;
    }});
  http->set_exception_handler([&d](const httplib::Request& req,
                                   httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(error_body("internal", "internal error"), json_type);
    d.record_refusal(req, 500, steady_clock::now());
  });
  int bound = -1;
  if (port == 0)
    bound = http->bind_to_any_port(host);
  else if (http->bind_to_port(host, port))
    bound = port;
  if (bound <= 0)
    return make_error(service_errc::internal,
                      "cannot listen on " + host + ":" + std::to_string(port));
  d.http = std::move(http);
  d.listener = std::thread([&d] { d.http->listen_after_bind(); });
  // httplib's stop() only takes effect once the accept loop runs; wait for
  // it so that a stop() right after start() cannot be lost.
  auto limit = steady_clock::now() + std::chrono::seconds{5};
  while (!d.http->is_running() && steady_clock::now() < limit)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  d.bound_port = bound;
  log::info("HTTP API listening", {{"host", host}, {"port", bound}});
  return bound;
}

void server::stop() {
  auto& d = *impl_;
  if (!d.http)
    return;
  {
    std::lock_guard<std::mutex> guard{d.stop_mutex};
    d.stopping = true;
  }
  d.stop_cv.notify_all();
  d.http->stop();
  if (d.listener.joinable())
    d.listener.join();
  d.http.reset();
  d.stores.clear();
  d.catalogs.clear();
  d.bound_port = 0;
}

int server::port() const {
  return impl_->bound_port;
}

} // namespace seatledger::http
