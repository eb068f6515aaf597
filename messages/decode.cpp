#include "messages/decode.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <simdjson.h>
#include <vector>

#include "domain/identifiers.hpp"
#include "domain/time.hpp"

namespace seatledger::messages {

namespace {

namespace dom = simdjson::dom;
namespace t = event_types;
using code = decode_error_code;

// -- where a value sits
// --------------------------------------------------------

// A field's path, e.g. `data.members[3].user_id`, as a chain of stack frames.
// Only turned into text when an error names it, so the success path never
// allocates for it.
struct path {
  const path* parent = nullptr;
  std::string_view key; // empty: the array element `index` of the parent
  std::size_t index = 0;
};

void append_path(std::string& out, const path& at) {
  if (at.parent != nullptr)
    append_path(out, *at.parent);
  if (at.key.empty()) {
    out += '[';
    out += std::to_string(at.index);
    out += ']';
  } else {
    if (!out.empty())
      out += '.';
    out += at.key;
  }
}

// An excerpt of untrusted text fit for an error message (which ends up in a
// Kafka header and in logs): printable ASCII only, and short.
std::string excerpt(std::string_view text) {
  constexpr std::size_t max_len = 64;
  std::string out;
  out += '"';
  for (std::size_t i = 0; i < text.size() && i < max_len; ++i) {
    auto c = text[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > max_len)
    out += "...";
  out += '"';
  return out;
}

class context {
public:
  bool fail(code error_code, const path& at, std::string_view what) {
    error_.code = error_code;
    error_.field.clear();
    append_path(error_.field, at);
    error_.message = error_.field;
    error_.message += ": ";
    error_.message += what;
    return false;
  }

  // For faults of the record as a whole (not JSON, not an object).
  bool fail_record(code error_code, std::string_view what) {
    error_.code = error_code;
    error_.field.clear();
    error_.message = what;
    return false;
  }

  decode_error take_error() {
    return std::move(error_);
  }

private:
  decode_error error_;
};

// -- scalar conversions
// ---------------------------------------------------------

const char* describe(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY: return "an array";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64: return "an integer";
    case dom::element_type::DOUBLE:
      return "a number with a fraction or exponent";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "something else";
}

bool wrong_type(context& c, const path& at, const char* expected,
                dom::element el) {
  std::string what = "expected ";
  what += expected;
  what += ", got ";
  what += describe(el.type());
  return c.fail(code::wrong_type, at, what);
}

bool too_long(context& c, const path& at, std::size_t max) {
  return c.fail(code::oversized, at,
                "longer than " + std::to_string(max) + " bytes");
}

bool as_string(context& c, dom::element el, const path& at,
               std::string_view& out) {
  if (el.get_string().get(out) != simdjson::SUCCESS)
    return wrong_type(c, at, "a string", el);
  return true;
}

bool as_text(context& c, dom::element el, const path& at, std::size_t max,
             std::string& out) {
  std::string_view text;
  if (!as_string(c, el, at, text))
    return false;
  if (text.size() > max)
    return too_long(c, at, max);
  out.assign(text);
  return true;
}

bool as_nonempty_text(context& c, dom::element el, const path& at,
                      std::size_t max, std::string& out) {
  if (!as_text(c, el, at, max, out))
    return false;
  if (out.empty())
    return c.fail(code::invalid_value, at, "must not be empty");
  return true;
}

// The spec's identifier rule applies in full, length included: a 129-byte id
// is an identifier out of range, not an oversized record.
bool as_identifier(context& c, dom::element el, const path& at,
                   std::string& out) {
  std::string_view text;
  if (!as_string(c, el, at, text))
    return false;
  if (!domain::is_valid_identifier(text)) {
    const char* why
      = text.empty() ? "not an identifier (empty)"
        : text.size() > domain::max_identifier_length
          ? "not an identifier (longer than 128 characters)"
          : "not an identifier (characters outside [A-Za-z0-9._:@/-])";
    return c.fail(code::invalid_identifier, at, why);
  }
  out.assign(text);
  return true;
}

bool as_bool(context& c, dom::element el, const path& at, bool& out) {
  if (el.get_bool().get(out) != simdjson::SUCCESS)
    return wrong_type(c, at, "a boolean", el);
  return true;
}

bool as_integer(context& c, dom::element el, const path& at,
                std::int64_t& out) {
  switch (el.type()) {
    case dom::element_type::INT64:
      // Cannot fail: the type was just checked.
      return el.get_int64().get(out) == simdjson::SUCCESS;
    case dom::element_type::UINT64:
      return c.fail(code::invalid_value, at, "out of range");
    default: return wrong_type(c, at, "an integer", el);
  }
}

bool as_count(context& c, dom::element el, const path& at, std::int64_t& out) {
  if (!as_integer(c, el, at, out))
    return false;
  if (out < 0)
    return c.fail(code::invalid_value, at, "must not be negative");
  return true;
}

// Instants whose UTC form has a four-digit year: anything else could not be
// written back as RFC 3339 (an offset can push `0000-01-01T00:00:00+01:00`
// into year -1).
const domain::timestamp min_wire_time
  = domain::from_civil({0, 1, 1, 0, 0, 0, 0}).value_or(domain::timestamp{});
const domain::timestamp max_wire_time
  = domain::from_civil({9999, 12, 31, 23, 59, 59, 999'999})
      .value_or(domain::timestamp{});

bool parse_time(context& c, std::string_view text, const path& at,
                domain::timestamp& out) {
  auto parsed = domain::parse_rfc3339(text);
  if (!parsed || *parsed < min_wire_time || *parsed > max_wire_time)
    return c.fail(code::invalid_timestamp, at, "not an RFC 3339 timestamp");
  out = *parsed;
  return true;
}

bool as_timestamp(context& c, dom::element el, const path& at,
                  domain::timestamp& out) {
  std::string_view text;
  return as_string(c, el, at, text) && parse_time(c, text, at, out);
}

bool as_object(context& c, dom::element el, const path& at, dom::object& out) {
  if (el.get_object().get(out) != simdjson::SUCCESS)
    return wrong_type(c, at, "an object", el);
  return true;
}

bool as_array(context& c, dom::element el, const path& at, std::size_t max,
              dom::array& out) {
  if (el.get_array().get(out) != simdjson::SUCCESS)
    return wrong_type(c, at, "an array", el);
  if (out.size() > max)
    return c.fail(code::oversized, at,
                  "more than " + std::to_string(max) + " elements");
  return true;
}

// Free-form objects stay opaque: kept as compact JSON text.
bool as_json_object_text(context& c, dom::element el, const path& at,
                         std::string& out) {
  dom::object obj;
  if (!as_object(c, el, at, obj))
    return false;
  out = simdjson::minify(el);
  return true;
}

bool as_instance_type(context& c, dom::element el, const path& at,
                      domain::instance_type& out) {
  std::string_view text;
  if (!as_string(c, el, at, text))
    return false;
  auto parsed = domain::parse_instance_type(text);
  if (!parsed)
    return c.fail(code::invalid_value, at,
                  "must be PRIMARY, SECONDARY or INTERNAL");
  out = *parsed;
  return true;
}

bool as_features(context& c, dom::element el, const path& at,
                 std::vector<std::string>& out) {
  dom::array items;
  if (!as_array(c, el, at, limits::features, items))
    return false;
  out.reserve(items.size());
  std::size_t index = 0;
  for (dom::element item : items) {
    path item_at{&at, {}, index++};
    if (!as_nonempty_text(c, item, item_at, limits::feature_name,
                          out.emplace_back()))
      return false;
  }
  return true;
}

// A charge's billing period is a name (`annual`) or a number of months (12);
// both are kept as text.
bool as_billing_period(context& c, dom::element el, const path& at,
                       std::string& out) {
  if (el.is_string())
    return as_nonempty_text(c, el, at, limits::text, out);
  if (el.is_int64() || el.is_uint64()) {
    std::int64_t months = 0;
    if (!as_integer(c, el, at, months))
      return false;
    if (months < 1)
      return c.fail(code::invalid_value, at, "must be at least 1 month");
    out = std::to_string(months);
    return true;
  }
  return wrong_type(c, at, "a string or an integer", el);
}

// -- fields of an object
// ----------------------------------------------------------

bool lookup(dom::object obj, std::string_view key, dom::element& out) {
  return obj.at_key(key).get(out) == simdjson::SUCCESS;
}

// A required field that is null is ill-typed (the converter says so); an
// optional field that is null is absent, as producers that write
// `"role": null` mean.
template<class Convert>
bool required(context& c, dom::object obj, const path* parent,
              std::string_view key, Convert&& convert) {
  path at{parent, key};
  dom::element el;
  if (!lookup(obj, key, el))
    return c.fail(code::missing_field, at, "required field is missing");
  return convert(el, at);
}

template<class Convert>
bool optional(dom::object obj, const path* parent, std::string_view key,
              Convert&& convert) {
  path at{parent, key};
  dom::element el;
  if (!lookup(obj, key, el) || el.is_null())
    return true;
  return convert(el, at);
}

bool req_id(context& c, dom::object obj, const path* parent,
            std::string_view key, std::string& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_identifier(c, el, at, out);
  });
}

bool opt_id(context& c, dom::object obj, const path* parent,
            std::string_view key, std::optional<std::string>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_identifier(c, el, at, out.emplace());
  });
}

bool req_text(context& c, dom::object obj, const path* parent,
              std::string_view key, std::size_t max, std::string& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_text(c, el, at, max, out);
  });
}

bool opt_text(context& c, dom::object obj, const path* parent,
              std::string_view key, std::size_t max,
              std::optional<std::string>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_text(c, el, at, max, out.emplace());
  });
}

bool req_nonempty_text(context& c, dom::object obj, const path* parent,
                       std::string_view key, std::size_t max,
                       std::string& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_nonempty_text(c, el, at, max, out);
  });
}

bool opt_nonempty_text(context& c, dom::object obj, const path* parent,
                       std::string_view key, std::size_t max,
                       std::optional<std::string>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_nonempty_text(c, el, at, max, out.emplace());
  });
}

bool req_bool(context& c, dom::object obj, const path* parent,
              std::string_view key, bool& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_bool(c, el, at, out);
  });
}

// Leaves `out` at its default when absent.
bool opt_bool(context& c, dom::object obj, const path* parent,
              std::string_view key, bool& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_bool(c, el, at, out);
  });
}

bool opt_bool(context& c, dom::object obj, const path* parent,
              std::string_view key, std::optional<bool>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_bool(c, el, at, out.emplace());
  });
}

bool req_count(context& c, dom::object obj, const path* parent,
               std::string_view key, std::int64_t& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_count(c, el, at, out);
  });
}

bool opt_count(context& c, dom::object obj, const path* parent,
               std::string_view key, std::optional<std::int64_t>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_count(c, el, at, out.emplace());
  });
}

bool req_time(context& c, dom::object obj, const path* parent,
              std::string_view key, domain::timestamp& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_timestamp(c, el, at, out);
  });
}

bool opt_time(context& c, dom::object obj, const path* parent,
              std::string_view key, std::optional<domain::timestamp>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_timestamp(c, el, at, out.emplace());
  });
}

bool req_term(context& c, dom::object obj, const path* parent,
              std::string_view key, domain::term& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    dom::object term;
    return as_object(c, el, at, term)
           && req_time(c, term, &at, "start", out.start)
           && req_time(c, term, &at, "end", out.end);
  });
}

bool opt_features(context& c, dom::object obj, const path* parent,
                  std::string_view key,
                  std::optional<std::vector<std::string>>& out) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    return as_features(c, el, at, out.emplace());
  });
}

bool req_json_object(context& c, dom::object obj, const path* parent,
                     std::string_view key, std::string& out) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    return as_json_object_text(c, el, at, out);
  });
}

// Calls `read(object, path)` on the object under `key`.
template<class Read>
bool req_object(context& c, dom::object obj, const path* parent,
                std::string_view key, Read&& read) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    dom::object sub;
    return as_object(c, el, at, sub) && read(sub, at);
  });
}

template<class Read>
bool opt_object(context& c, dom::object obj, const path* parent,
                std::string_view key, Read&& read) {
  return optional(obj, parent, key, [&](dom::element el, const path& at) {
    dom::object sub;
    return as_object(c, el, at, sub) && read(sub, at);
  });
}

// Calls `read(object, path)` on each element of the array under `key`, after
// `reserve(size)`.
template<class Reserve, class Read>
bool req_object_array(context& c, dom::object obj, const path* parent,
                      std::string_view key, std::size_t max, Reserve&& reserve,
                      Read&& read) {
  return required(c, obj, parent, key, [&](dom::element el, const path& at) {
    dom::array items;
    if (!as_array(c, el, at, max, items))
      return false;
    reserve(items.size());
    std::size_t index = 0;
    for (dom::element item : items) {
      path item_at{&at, {}, index++};
      dom::object sub;
      if (!as_object(c, item, item_at, sub) || !read(sub, item_at))
        return false;
    }
    return true;
  });
}

// -- data of each type
// ----------------------------------------------------------

bool read(context& c, dom::object d, const path* p, domain::member_added& x) {
  return req_id(c, d, p, "org_id", x.org_id)
         && req_id(c, d, p, "user_id", x.user_id)
         && opt_bool(c, d, p, "billable", x.billable)
         && opt_text(c, d, p, "role", limits::text, x.role);
}

bool read(context& c, dom::object d, const path* p, domain::member_updated& x) {
  return req_id(c, d, p, "org_id", x.org_id)
         && req_id(c, d, p, "user_id", x.user_id)
         && req_bool(c, d, p, "billable", x.billable)
         && opt_text(c, d, p, "role", limits::text, x.role);
}

bool read(context& c, dom::object d, const path* p, domain::member_removed& x) {
  return req_id(c, d, p, "org_id", x.org_id)
         && req_id(c, d, p, "user_id", x.user_id);
}

bool read(context& c, dom::object d, const path* p, domain::org_snapshot& x) {
  if (!req_id(c, d, p, "org_id", x.org_id)
      || !req_object_array(
        c, d, p, "members", limits::snapshot_members,
        [&](std::size_t n) { x.members.reserve(n); },
        [&](dom::object m, const path& at) {
          auto& member = x.members.emplace_back();
          return req_id(c, m, &at, "user_id", member.user_id)
                 && req_bool(c, m, &at, "billable", member.billable);
        }))
    return false;
  // A user listed twice (perhaps billable once and not once) leaves the
  // membership a guess, as a JSON member given twice does.
  std::vector<std::string_view> users;
  users.reserve(x.members.size());
  for (const auto& m : x.members)
    users.push_back(m.user_id);
  std::sort(users.begin(), users.end());
  auto twice = std::adjacent_find(users.begin(), users.end());
  if (twice != users.end())
    return c.fail(code::invalid_value, path{p, "members"},
                  "user_id '" + std::string{*twice} + "' is listed twice");
  return true;
}

bool read(context& c, dom::object d, const path* p, domain::org_linked& x) {
  return req_id(c, d, p, "org_id", x.org_id)
         && req_id(c, d, p, "subscription_id", x.subscription_id);
}

bool read(context& c, dom::object d, const path* p, domain::org_unlinked& x) {
  return req_id(c, d, p, "org_id", x.org_id)
         && req_id(c, d, p, "subscription_id", x.subscription_id);
}

// An empty id is the domain's to judge, as an absent one is: a billing
// system that writes "" for a missing Salesforce account gets
// `missing_salesforce_account` (or an INTERNAL subscription without one),
// not a dead letter; on `update_metadata` it clears the id.
bool read_external_ids(context& c, dom::object obj, const path& at,
                       std::optional<std::string>& account,
                       std::optional<std::string>& subscription) {
  return opt_text(c, obj, &at, "salesforce_account_id", limits::external_id,
                  account)
         && opt_text(c, obj, &at, "salesforce_subscription_id",
                     limits::external_id, subscription);
}

bool read(context& c, dom::object d, const path* p,
          domain::create_subscription& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && req_text(c, d, p, "display_name", limits::text, x.display_name)
         && req_object(c, d, p, "customer",
                       [&](dom::object obj, const path& at) {
                         return read_external_ids(
                           c, obj, at, x.customer.salesforce_account_id,
                           x.customer.salesforce_subscription_id);
                       })
         && req_object(
           c, d, p, "instance",
           [&](dom::object obj, const path& at) {
             return req_nonempty_text(c, obj, &at, "domain", limits::text,
                                      x.instance.domain)
                    && required(c, obj, &at, "type",
                                [&](dom::element el, const path& type_at) {
                                  return as_instance_type(c, el, type_at,
                                                          x.instance.type);
                                });
           })
         && req_id(c, d, p, "plan_id", x.plan_id)
         && req_count(c, d, p, "seats", x.seats)
         && req_term(c, d, p, "term", x.term)
         && req_bool(c, d, p, "trial", x.trial);
}

bool read(context& c, dom::object d, const path* p,
          domain::renew_subscription& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && req_term(c, d, p, "term", x.term)
         && opt_count(c, d, p, "seats", x.seats)
         && opt_id(c, d, p, "plan_id", x.plan_id);
}

bool read(context& c, dom::object d, const path* p,
          domain::update_entitlements& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && opt_count(c, d, p, "seats", x.seats)
         && opt_id(c, d, p, "plan_id", x.plan_id)
         && opt_features(c, d, p, "features", x.features);
}

bool read(context& c, dom::object d, const path* p, domain::convert_trial& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && req_id(c, d, p, "plan_id", x.plan_id)
         && req_count(c, d, p, "seats", x.seats)
         && req_term(c, d, p, "term", x.term);
}

bool read(context& c, dom::object d, const path* p,
          domain::expire_subscription& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id);
}

bool read(context& c, dom::object d, const path* p,
          domain::archive_subscription& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && req_text(c, d, p, "reason", limits::text, x.reason);
}

bool read(context& c, dom::object d, const path* p,
          domain::update_metadata& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && opt_text(c, d, p, "display_name", limits::text, x.display_name)
         && opt_object(c, d, p, "customer",
                       [&](dom::object obj, const path& at) {
                         auto& patch = x.customer.emplace();
                         return read_external_ids(
                           c, obj, at, patch.salesforce_account_id,
                           patch.salesforce_subscription_id);
                       })
         && opt_object(
           c, d, p, "instance",
           [&](dom::object obj, const path& at) {
             auto& patch = x.instance.emplace();
             return opt_nonempty_text(c, obj, &at, "domain", limits::text,
                                      patch.domain)
                    && optional(obj, &at, "type",
                                [&](dom::element el, const path& type_at) {
                                  return as_instance_type(c, el, type_at,
                                                          patch.type.emplace());
                                });
           })
         && optional(d, p, "rate_limit_overrides",
                     [&](dom::element el, const path& at) {
                       return as_json_object_text(
                         c, el, at, x.rate_limit_overrides.emplace());
                     })
         && opt_bool(c, d, p, "analytics_access", x.analytics_access);
}

bool read(context& c, dom::object d, const path* p, domain::issue_license& x) {
  return req_id(c, d, p, "subscription_id", x.subscription_id)
         && opt_features(c, d, p, "features", x.features)
         && opt_time(c, d, p, "expires_at", x.expires_at);
}

bool read(context& c, dom::object d, const path* p,
          domain::rate_plan_upserted& x) {
  return req_object(c, d, p, "product",
                    [&](dom::object obj, const path& at) {
                      // Not an identifier in the spec's sense (it names
                      // plan and charge ids only): the billing system's.
                      return req_nonempty_text(c, obj, &at, "id",
                                               limits::external_id,
                                               x.product.id)
                             && req_text(c, obj, &at, "name", limits::text,
                                         x.product.name);
                    })
         && req_object(c, d, p, "rate_plan",
                       [&](dom::object obj, const path& at) {
                         return req_id(c, obj, &at, "id", x.rate_plan.id)
                                && req_text(c, obj, &at, "name", limits::text,
                                            x.rate_plan.name)
                                && req_json_object(c, obj, &at, "custom_fields",
                                                   x.rate_plan.custom_fields);
                       })
         && req_object_array(
           c, d, p, "charges", limits::charges,
           [&](std::size_t n) { x.charges.reserve(n); },
           [&](dom::object obj, const path& at) {
             auto& charge = x.charges.emplace_back();
             return req_id(c, obj, &at, "id", charge.id)
                    && req_text(c, obj, &at, "name", limits::text, charge.name)
                    && required(c, obj, &at, "billing_period",
                                [&](dom::element el, const path& bp_at) {
                                  return as_billing_period(
                                    c, el, bp_at, charge.billing_period);
                                })
                    && req_json_object(c, obj, &at, "custom_fields",
                                       charge.custom_fields);
           });
}

bool read(context& c, dom::object d, const path* p,
          domain::rate_plan_removed& x) {
  return req_id(c, d, p, "rate_plan_id", x.rate_plan_id);
}

bool as_part(context& c, dom::element el, const path& at, std::int32_t& out) {
  std::int64_t value = 0;
  if (!as_integer(c, el, at, value))
    return false;
  if (value < 1 || value > std::numeric_limits<std::int32_t>::max())
    return c.fail(code::invalid_value, at, "must be between 1 and 2^31-1");
  out = static_cast<std::int32_t>(value);
  return true;
}

bool req_attribute(context& c, dom::object obj, const path* parent,
                   std::string_view key, std::string& out) {
  return req_nonempty_text(c, obj, parent, key, limits::event_attribute, out);
}

bool read(context& c, dom::object d, const path* p, domain::seat_delta& x) {
  auto part = [&](std::string_view key, std::int32_t& out) {
    return required(c, d, p, key, [&](dom::element el, const path& at) {
      return as_part(c, el, at, out);
    });
  };
  if (!(req_id(c, d, p, "delta_id", x.delta_id)
        && req_id(c, d, p, "subscription_id", x.subscription_id)
        && req_id(c, d, p, "org_id", x.org_id)
        && req_count(c, d, p, "org_seq", x.org_seq)
        && req_bool(c, d, p, "org_linked", x.org_linked)
        && req_object_array(
          c, d, p, "changes", limits::delta_changes,
          [&](std::size_t n) { x.changes.reserve(n); },
          [&](dom::object obj, const path& at) {
            auto& change = x.changes.emplace_back();
            return req_id(c, obj, &at, "user_id", change.user_id)
                   && req_bool(c, obj, &at, "billable", change.billable);
          })
        && req_object(c, d, p, "cause",
                      [&](dom::object obj, const path& at) {
                        return req_attribute(c, obj, &at, "source",
                                             x.cause.source)
                               && req_attribute(c, obj, &at, "id", x.cause.id)
                               && req_attribute(c, obj, &at, "type",
                                                x.cause.type)
                               && req_time(c, obj, &at, "time", x.cause.time);
                      })
        && part("part", x.part) && part("parts", x.parts)))
    return false;
  if (x.part > x.parts)
    return c.fail(code::invalid_value, path{p, "part"},
                  "greater than data.parts");
  if (x.org_seq < 1)
    return c.fail(code::invalid_value, path{p, "org_seq"},
                  "must be at least 1");
  return true;
}

template<class T, class Variant>
bool read_as(context& c, dom::object d, const path* p, Variant& out) {
  return read(c, d, p, out.template emplace<T>());
}

// -- the envelope
// -----------------------------------------------------------------

struct envelope {
  domain::event_ref ref;
  dom::object data;
};

// The `ce_` headers of a binary-mode record (the last of a repeated key).
struct binary_attributes {
  /// A `content-type` header naming a CloudEvents format: structured mode,
  /// whatever `ce_` headers come with it.
  bool structured = false;
  /// Null when the header is absent; pointing at `std::nullopt` when its
  /// value is Kafka's null.
  const std::optional<std::string>* specversion = nullptr;
  const std::optional<std::string>* id = nullptr;
  const std::optional<std::string>* source = nullptr;
  const std::optional<std::string>* type = nullptr;
  const std::optional<std::string>* time = nullptr;
};

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    auto c = text[i];
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i])
      return false;
  }
  return true;
}

// The CloudEvents Kafka binding: a CloudEvents content type means
// structured mode; otherwise `ce_specversion` means binary mode.
binary_attributes scan_headers(const header_list& headers) {
  binary_attributes result;
  for (const auto& [key, value] : headers) {
    if (key == "content-type") {
      // A null content type names no format, as an absent one.
      result.structured
        = value && starts_with_ignoring_case(*value, "application/cloudevents");
      continue;
    }
    if (key.size() < 4 || key.compare(0, 3, "ce_") != 0)
      continue;
    auto name = std::string_view{key}.substr(3);
    if (name == "specversion")
      result.specversion = &value;
    else if (name == "id")
      result.id = &value;
    else if (name == "source")
      result.source = &value;
    else if (name == "type")
      result.type = &value;
    else if (name == "time")
      result.time = &value;
  }
  return result;
}

bool check_type(context& c, std::string_view type, topic_kind topic,
                const path& at) {
  for (auto known : types_of(topic))
    if (type == known)
      return true;
  std::string what = excerpt(type);
  what += " is not a message type of the ";
  what += to_string(topic);
  what += " topic";
  return c.fail(code::unknown_type, at, what);
}

// PostgreSQL's text and jsonb cannot hold U+0000: a record carrying one
// would be refused by every commit that tried to store it, and the replica
// would retry that batch for ever. In JSON text it is the escape \u0000 (a
// raw NUL byte is not JSON either); a header can carry the byte itself.
bool contains_nul(std::string_view json) {
  if (json.find('\0') != std::string_view::npos)
    return true;
  for (auto i = json.find('\\'); i != std::string_view::npos;
       i = json.find('\\', i)) {
    if (i + 1 >= json.size())
      return false;
    if (json[i + 1] == 'u' && json.substr(i + 2, 4) == "0000")
      return true;
    i += 2; // past the escaped character, whatever it is (\\ included)
  }
  return false;
}

bool check_attribute(context& c, std::string_view value, const path& at) {
  if (value.empty())
    return c.fail(code::invalid_value, at, "must not be empty");
  if (value.find('\0') != std::string_view::npos)
    return c.fail(code::invalid_value, at, "contains U+0000");
  if (value.size() > limits::event_attribute)
    return too_long(c, at, limits::event_attribute);
  return true;
}

} // namespace

// -- decoder
// ------------------------------------------------------------------------

struct decoder::impl {
  dom::parser parser;
  context ctx;
  /// Member names of the objects being checked, outermost first.
  std::vector<std::string_view> names;

  /// No object of the record holds a member name twice (RFC 7493, I-JSON).
  /// Parsers disagree on which one counts: simdjson's lookup finds the
  /// first; Jackson, Python and JavaScript keep the last. What the producer
  /// meant cannot be known, so the record is refused rather than read
  /// differently from the topic's other consumers.
  bool unique_members(dom::element e, const path* at) {
    auto type = e.type();
    if (type == dom::element_type::ARRAY) {
      std::size_t index = 0;
      for (auto item : dom::array(e)) {
        path item_at{at, {}, index++};
        if (!unique_members(item, &item_at))
          return false;
      }
      return true;
    }
    if (type != dom::element_type::OBJECT)
      return true;
    dom::object obj(e);
    auto first = names.size();
    std::optional<std::string_view> twice;
    // Pairwise for the small objects of every message; sorted for large
    // ones, which a hostile record could make quadratic.
    constexpr std::size_t pairwise_up_to = 16;
    for (auto field : obj) {
      if (names.size() - first < pairwise_up_to)
        for (auto i = first; i < names.size() && !twice; ++i)
          if (names[i] == field.key)
            twice = field.key;
      names.push_back(field.key);
    }
    if (!twice && names.size() - first > pairwise_up_to) {
      auto begin = names.begin() + static_cast<std::ptrdiff_t>(first);
      std::sort(begin, names.end());
      if (auto it = std::adjacent_find(begin, names.end()); it != names.end())
        twice = *it;
    }
    names.resize(first);
    if (twice)
      return ctx.fail(code::malformed_json, path{at, *twice},
                      "appears more than once in its object");
    for (auto field : obj) {
      auto value_type = field.value.type();
      if (value_type != dom::element_type::OBJECT
          && value_type != dom::element_type::ARRAY)
        continue;
      path member_at{at, field.key};
      if (!unique_members(field.value, &member_at))
        return false;
    }
    return true;
  }

  /// `subject` names the text in messages: "record value", or "the body"
  /// when the HTTP API checks a request by the same rules.
  bool parse(std::string_view value, dom::element& root,
             const path* root_at = nullptr,
             std::string_view subject = "record value") {
    std::string what{subject};
    // An empty string_view may have a null data pointer, which must not
    // reach memcpy.
    if (value.empty())
      return ctx.fail_record(code::malformed_json, what += " is empty");
    auto err = parser.parse(value.data(), value.size()).get(root);
    switch (err) {
      case simdjson::SUCCESS: return unique_members(root, root_at);
      case simdjson::UTF8_ERROR:
        return ctx.fail_record(code::malformed_json,
                               what += " is not valid UTF-8");
      case simdjson::MEMALLOC:
      case simdjson::CAPACITY:
        return ctx.fail_record(code::oversized,
                               what += " is too large to parse");
      default:
        what += " is not valid JSON (";
        what += simdjson::error_message(err);
        what += ')';
        return ctx.fail_record(code::malformed_json, what);
    }
  }

  /// A required `ce_` header's text. Kafka's null value is no string, as
  /// JSON's null is none in the structured binding: `wrong_type`.
  bool header_text(const std::optional<std::string>* value, const path& at,
                   std::string_view& out) {
    if (value == nullptr)
      return ctx.fail(code::missing_field, at, "required header is missing");
    if (!*value)
      return ctx.fail(code::wrong_type, at,
                      "expected a string, got a null header value");
    out = **value;
    return true;
  }

  bool header_attribute(const std::optional<std::string>* value,
                        std::string_view name, std::string& out) {
    path at{nullptr, name};
    std::string_view text;
    if (!header_text(value, at, text))
      return false;
    if (!simdjson::validate_utf8(text.data(), text.size()))
      return ctx.fail(code::malformed_json, at, "not valid UTF-8");
    if (!check_attribute(ctx, text, at))
      return false;
    out.assign(text);
    return true;
  }

  bool read_binary(const binary_attributes& attrs, std::string_view value,
                   topic_kind topic, envelope& env) {
    path spec_at{nullptr, "ce_specversion"};
    std::string_view spec;
    if (!header_text(attrs.specversion, spec_at, spec))
      return false;
    if (spec != "1.0")
      return ctx.fail(code::unsupported_specversion, spec_at,
                      "must be \"1.0\"");
    if (!header_attribute(attrs.id, "ce_id", env.ref.id)
        || !header_attribute(attrs.source, "ce_source", env.ref.source))
      return false;
    path type_at{nullptr, "ce_type"};
    std::string_view type;
    if (!header_text(attrs.type, type_at, type)
        || !check_type(ctx, type, topic, type_at))
      return false;
    env.ref.type.assign(type);
    path time_at{nullptr, "ce_time"};
    std::string_view time;
    if (!header_text(attrs.time, time_at, time))
      return false;
    if (!parse_time(ctx, time, time_at, env.ref.time))
      return false;
    dom::element root;
    path data_at{nullptr, "data"};
    if (!parse(value, root, &data_at))
      return false;
    if (root.get_object().get(env.data) != simdjson::SUCCESS)
      return ctx.fail(code::not_cloudevents, path{nullptr, "data"},
                      "not a JSON object");
    return true;
  }

  bool read_structured(std::string_view value, topic_kind topic,
                       envelope& env) {
    dom::element root;
    if (!parse(value, root))
      return false;
    dom::object obj;
    if (root.get_object().get(obj) != simdjson::SUCCESS)
      return ctx.fail_record(code::not_cloudevents,
                             "record value is not a JSON object");
    dom::element el;
    path spec_at{nullptr, "specversion"};
    if (!lookup(obj, "specversion", el))
      return ctx.fail(code::not_cloudevents, spec_at,
                      "missing (not a CloudEvent)");
    std::string_view spec;
    if (!as_string(ctx, el, spec_at, spec))
      return false;
    if (spec != "1.0")
      return ctx.fail(code::unsupported_specversion, spec_at,
                      "must be \"1.0\"");
    if (!req_attribute(ctx, obj, nullptr, "id", env.ref.id)
        || !req_attribute(ctx, obj, nullptr, "source", env.ref.source))
      return false;
    if (!required(ctx, obj, nullptr, "type",
                  [&](dom::element type_el, const path& at) {
                    std::string_view type;
                    if (!as_string(ctx, type_el, at, type)
                        || !check_type(ctx, type, topic, at))
                      return false;
                    env.ref.type.assign(type);
                    return true;
                  }))
      return false;
    if (!req_time(ctx, obj, nullptr, "time", env.ref.time))
      return false;
    // Only their types are checked: `data` must be a JSON object whatever
    // the producer labels it, and the subject is not used.
    for (auto name : {"datacontenttype", "subject"})
      if (!optional(obj, nullptr, name, [&](dom::element el, const path& at) {
            std::string_view ignored;
            return as_string(ctx, el, at, ignored);
          }))
        return false;
    path data_at{nullptr, "data"};
    if (!lookup(obj, "data", el))
      return ctx.fail(code::missing_field, data_at,
                      "required field is missing");
    if (el.get_object().get(env.data) != simdjson::SUCCESS)
      return ctx.fail(code::not_cloudevents, data_at, "not a JSON object");
    return true;
  }

  bool read_envelope(record_view record, topic_kind topic, envelope& env) {
    if (record.value.size() > limits::record_value)
      return ctx.fail_record(code::oversized,
                             "record value is larger than 1 MiB");
    if (record.headers != nullptr) {
      auto attrs = scan_headers(*record.headers);
      if (!attrs.structured && attrs.specversion != nullptr)
        return read_binary(attrs, record.value, topic, env);
    }
    return read_structured(record.value, topic, env);
  }

  decode_result<domain::membership_event> membership(record_view record) {
    envelope env;
    if (!read_envelope(record, topic_kind::membership, env))
      return ctx.take_error();
    domain::membership_event result;
    result.ref = std::move(env.ref);
    const auto& type = result.ref.type;
    auto& change = result.change;
    path p{nullptr, "data"};
    auto& c = ctx;
    auto d = env.data;
    bool ok = false;
    if (type == t::member_added)
      ok = read_as<domain::member_added>(c, d, &p, change);
    else if (type == t::member_updated)
      ok = read_as<domain::member_updated>(c, d, &p, change);
    else if (type == t::member_removed)
      ok = read_as<domain::member_removed>(c, d, &p, change);
    else if (type == t::org_snapshot)
      ok = read_as<domain::org_snapshot>(c, d, &p, change);
    else if (type == t::org_linked)
      ok = read_as<domain::org_linked>(c, d, &p, change);
    else
      ok = read_as<domain::org_unlinked>(c, d, &p, change);
    if (!ok || !storable(record))
      return ctx.take_error();
    return result;
  }

  decode_result<domain::command_event> command(record_view record) {
    envelope env;
    if (!read_envelope(record, topic_kind::subscriptions, env))
      return ctx.take_error();
    domain::command_event result;
    result.ref = std::move(env.ref);
    const auto& type = result.ref.type;
    auto& cmd = result.command;
    path p{nullptr, "data"};
    auto& c = ctx;
    auto d = env.data;
    bool ok = false;
    if (type == t::subscription_create)
      ok = read_as<domain::create_subscription>(c, d, &p, cmd);
    else if (type == t::subscription_renew)
      ok = read_as<domain::renew_subscription>(c, d, &p, cmd);
    else if (type == t::subscription_update_entitlements)
      ok = read_as<domain::update_entitlements>(c, d, &p, cmd);
    else if (type == t::subscription_convert_trial)
      ok = read_as<domain::convert_trial>(c, d, &p, cmd);
    else if (type == t::subscription_expire)
      ok = read_as<domain::expire_subscription>(c, d, &p, cmd);
    else if (type == t::subscription_archive)
      ok = read_as<domain::archive_subscription>(c, d, &p, cmd);
    else if (type == t::subscription_update_metadata)
      ok = read_as<domain::update_metadata>(c, d, &p, cmd);
    else
      ok = read_as<domain::issue_license>(c, d, &p, cmd);
    if (!ok || !storable(record))
      return ctx.take_error();
    return result;
  }

  decode_result<domain::catalog_event> catalog(record_view record) {
    envelope env;
    if (!read_envelope(record, topic_kind::catalog, env))
      return ctx.take_error();
    domain::catalog_event result;
    result.ref = std::move(env.ref);
    path p{nullptr, "data"};
    bool ok = false;
    if (result.ref.type == t::rate_plan_upserted)
      ok = read_as<domain::rate_plan_upserted>(ctx, env.data, &p,
                                               result.change);
    else
      ok = read_as<domain::rate_plan_removed>(ctx, env.data, &p, result.change);
    if (!ok || !storable(record))
      return ctx.take_error();
    return result;
  }

  decode_result<domain::seat_delta> seat_delta(record_view record) {
    envelope env;
    if (!read_envelope(record, topic_kind::seat_deltas, env))
      return ctx.take_error();
    domain::seat_delta result;
    path p{nullptr, "data"};
    if (!read(ctx, env.data, &p, result) || !storable(record))
      return ctx.take_error();
    return result;
  }

  /// Checked once the record has decoded, so a more specific error (an
  /// identifier's alphabet, say) names its field first.
  bool storable(record_view record) {
    if (!contains_nul(record.value))
      return true;
    return ctx.fail_record(code::invalid_value,
                           "record value contains U+0000 (\\u0000), which "
                           "cannot be stored");
  }
};

namespace {

// The last line of defence: the decoder does not use exceptions for control
// flow, but allocation can fail on any input.
template<class Result, class F>
Result guarded(bool ready, F&& f) noexcept {
  if (!ready)
    return decode_error{code::invalid_value, {}, "moved-from decoder"};
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return decode_error{code::oversized, {}, "out of memory"};
  } catch (...) {
    return decode_error{code::malformed_json, {}, "internal error"};
  }
}

} // namespace

decoder::decoder() : impl_(std::make_unique<impl>()) {}

std::optional<decode_error>
decoder::check_json(std::string_view text, std::string_view subject) noexcept {
  using result = decode_result<std::monostate>;
  auto checked = guarded<result>(impl_ != nullptr, [&]() -> result {
    dom::element root;
    if (!impl_->parse(text, root, nullptr, subject))
      return impl_->ctx.take_error();
    return std::monostate{};
  });
  if (checked)
    return std::nullopt;
  return checked.error();
}

decoder::~decoder() = default;

decoder::decoder(decoder&&) noexcept = default;

decoder& decoder::operator=(decoder&&) noexcept = default;

decode_result<domain::membership_event>
decoder::decode_membership(record_view record) noexcept {
  return guarded<decode_result<domain::membership_event>>(
    impl_ != nullptr, [&] { return impl_->membership(record); });
}

decode_result<domain::command_event>
decoder::decode_command(record_view record) noexcept {
  return guarded<decode_result<domain::command_event>>(impl_ != nullptr, [&] {
    return impl_->command(record);
  });
}

decode_result<domain::catalog_event>
decoder::decode_catalog(record_view record) noexcept {
  return guarded<decode_result<domain::catalog_event>>(impl_ != nullptr, [&] {
    return impl_->catalog(record);
  });
}

decode_result<domain::seat_delta>
decoder::decode_seat_delta(record_view record) noexcept {
  return guarded<decode_result<domain::seat_delta>>(impl_ != nullptr, [&] {
    return impl_->seat_delta(record);
  });
}

decode_result<input_event> decoder::decode(topic_kind topic,
                                           record_view record) noexcept {
  using result = decode_result<input_event>;
  return guarded<result>(impl_ != nullptr, [&]() -> result {
    auto lift = [](auto&& typed) -> result {
      if (!typed)
        return std::move(typed).error();
      return input_event{std::move(typed).value()};
    };
    switch (topic) {
      case topic_kind::membership: return lift(impl_->membership(record));
      case topic_kind::subscriptions: return lift(impl_->command(record));
      case topic_kind::catalog: return lift(impl_->catalog(record));
      case topic_kind::seat_deltas: return lift(impl_->seat_delta(record));
    }
    return decode_error{code::invalid_value, {}, "unknown topic"};
  });
}

} // namespace seatledger::messages
