#include "messages/encode.hpp"

#include "domain/errors.hpp"
#include "domain/time.hpp"

namespace seatledger::messages {

namespace {

namespace t = event_types;
using domain::timestamp;

// Typical events fit without growing the buffer.
constexpr std::size_t initial_capacity = 512;

void time_member(json_writer& w, std::string_view key, timestamp at) {
  w.string_member(key, domain::format_rfc3339(at));
}

void optional_string_member(json_writer& w, std::string_view key,
                            const std::optional<std::string>& value) {
  if (value)
    w.string_member(key, *value);
  else
    w.null_member(key);
}

// Free-form objects are stored as JSON text; an empty text (a value built by
// hand, never a decoded one) would make the output invalid.
void json_object_member(json_writer& w, std::string_view key,
                        const std::string& json) {
  w.raw_member(key, json.empty() ? std::string_view{"{}"} : json);
}

void begin_envelope(json_writer& w, std::string_view id,
                    std::string_view source, std::string_view type,
                    timestamp time) {
  w.begin_object();
  w.string_member("specversion", "1.0");
  w.string_member("id", id);
  w.string_member("source", source);
  w.string_member("type", type);
  time_member(w, "time", time);
}

void begin_data(json_writer& w) {
  w.string_member("datacontenttype", "application/json");
  w.key("data");
  w.begin_object();
}

void end_envelope(json_writer& w) {
  w.end_object(); // data
  w.end_object();
}

void write_term(json_writer& w, const domain::term& term) {
  w.key("term");
  w.begin_object();
  time_member(w, "start", term.start);
  time_member(w, "end", term.end);
  w.end_object();
}

// -- output payloads
// ------------------------------------------------------------

void write(json_writer& w, const domain::seats_changed& x) {
  w.integer_member("seats_in_use", x.seats_in_use);
  w.integer_member("previous_seats_in_use", x.previous_seats_in_use);
  time_member(w, "effective_at", x.effective_at);
  w.integer_member("ledger_seq", x.ledger_seq);
  w.string_member("org_id", x.org_id);
  w.string_member("user_id", x.user_id);
}

void write(json_writer& w, const domain::overage_detected& x) {
  w.integer_member("seats", x.seats);
  w.integer_member("max_seats_used", x.max_seats_used);
  w.integer_member("seats_owed", x.seats_owed);
  w.integer_member("previous_seats_owed", x.previous_seats_owed);
  time_member(w, "term_start", x.term_start);
  time_member(w, "effective_at", x.effective_at);
}

void write(json_writer& w, const domain::license_issued& x) {
  const auto& g = x.grant;
  w.string_member("license_id", g.license_id);
  w.string_member("license_key", x.license_key);
  w.integer_member("seats", g.seats);
  time_member(w, "starts_at", g.not_before);
  time_member(w, "expires_at", g.expires_at);
  time_member(w, "issued_at", g.issued_at);
  w.string_member("plan_id", g.plan_id);
  optional_string_member(w, "tier", g.tier);
  w.string_array_member("features", g.features);
  w.string_member("instance_domain", g.instance_domain);
  w.string_member("instance_type", domain::to_string(g.instance_type));
  w.bool_member("trial", g.trial);
}

void write(json_writer& w, const domain::license_revoked& x) {
  w.string_member("license_id", x.license_id);
  w.string_member("reason", x.reason);
  time_member(w, "revoked_at", x.revoked_at);
}

void write(json_writer& w, const domain::license_not_issued& x) {
  w.string_member("command_id", x.command_id);
  w.string_member("reason", x.reason);
}

// The Subscription shape after its `subscription_id`, without braces: the
// lifecycle events put it in `data`, whose `subscription_id` is the event's.
void write_subscription_body(json_writer& w,
                             const domain::subscription_record& s,
                             const std::vector<std::string>& orgs) {
  w.string_member("status", domain::to_string(s.status));
  w.string_member("display_name", s.display_name);
  w.key("customer");
  w.begin_object();
  optional_string_member(w, "salesforce_account_id",
                         s.customer.salesforce_account_id);
  optional_string_member(w, "salesforce_subscription_id",
                         s.customer.salesforce_subscription_id);
  w.end_object();
  w.key("instance");
  w.begin_object();
  w.string_member("domain", s.instance.domain);
  w.string_member("type", domain::to_string(s.instance.type));
  w.end_object();
  w.string_member("plan_id", s.plan_id);
  w.integer_member("seats", s.seats);
  write_term(w, s.term);
  w.bool_member("trial", s.trial);
  w.string_array_member("features", s.features);
  w.string_array_member("orgs", orgs);
  w.integer_member("seats_in_use", s.seats_in_use);
  w.integer_member("max_seats_used", s.max_seats_used);
  if (s.max_seats_used_changed_at)
    time_member(w, "max_seats_used_changed_at", *s.max_seats_used_changed_at);
  else
    w.null_member("max_seats_used_changed_at");
  w.integer_member("seats_owed", s.seats_owed);
  w.key("metadata");
  w.begin_object();
  if (s.rate_limit_overrides && !s.rate_limit_overrides->empty())
    w.raw_member("rate_limit_overrides", *s.rate_limit_overrides);
  else
    w.null_member("rate_limit_overrides");
  if (s.analytics_access)
    w.bool_member("analytics_access", *s.analytics_access);
  else
    w.null_member("analytics_access");
  w.end_object();
}

void write(json_writer& w, const domain::subscription_changed& x) {
  write_subscription_body(w, x.state, x.orgs);
}

void write(json_writer& w, const domain::subscription_archived& x) {
  w.string_member("reason", x.reason);
  w.integer_member("licenses_revoked", x.licenses_revoked);
}

void write(json_writer& w, const domain::month_closed& x) {
  time_member(w, "term_start", x.term_start);
  w.integer_member("month_index", x.month_index);
  time_member(w, "start", x.start);
  time_member(w, "end", x.end);
  w.integer_member("peak_seats", x.peak_seats);
  time_member(w, "peak_at", x.peak_at);
  if (x.peak_seq)
    w.integer_member("peak_seq", *x.peak_seq);
  else
    w.null_member("peak_seq");
}

void write(json_writer& w, const domain::command_rejected& x) {
  w.string_member("command_id", x.command_id);
  w.string_member("command_source", x.command_source);
  w.string_member("command_type", x.command_type);
  w.string_member("reason", domain::to_string(x.reason));
  w.string_member("message", x.message);
}

// -- input data
// ----------------------------------------------------------------

void write(json_writer& w, const domain::member_added& x) {
  w.string_member("org_id", x.org_id);
  w.string_member("user_id", x.user_id);
  w.bool_member("billable", x.billable);
  if (x.role)
    w.string_member("role", *x.role);
}

void write(json_writer& w, const domain::member_updated& x) {
  w.string_member("org_id", x.org_id);
  w.string_member("user_id", x.user_id);
  w.bool_member("billable", x.billable);
  if (x.role)
    w.string_member("role", *x.role);
}

void write(json_writer& w, const domain::member_removed& x) {
  w.string_member("org_id", x.org_id);
  w.string_member("user_id", x.user_id);
}

void write(json_writer& w, const domain::org_snapshot& x) {
  w.string_member("org_id", x.org_id);
  w.key("members");
  w.begin_array();
  for (const auto& m : x.members) {
    w.begin_object();
    w.string_member("user_id", m.user_id);
    w.bool_member("billable", m.billable);
    w.end_object();
  }
  w.end_array();
}

void write(json_writer& w, const domain::org_linked& x) {
  w.string_member("org_id", x.org_id);
  w.string_member("subscription_id", x.subscription_id);
}

void write(json_writer& w, const domain::org_unlinked& x) {
  w.string_member("org_id", x.org_id);
  w.string_member("subscription_id", x.subscription_id);
}

void write_external_ids(json_writer& w, const std::optional<std::string>& acc,
                        const std::optional<std::string>& sub) {
  w.begin_object();
  if (acc)
    w.string_member("salesforce_account_id", *acc);
  if (sub)
    w.string_member("salesforce_subscription_id", *sub);
  w.end_object();
}

void write(json_writer& w, const domain::create_subscription& x) {
  w.string_member("subscription_id", x.subscription_id);
  w.string_member("display_name", x.display_name);
  w.key("customer");
  write_external_ids(w, x.customer.salesforce_account_id,
                     x.customer.salesforce_subscription_id);
  w.key("instance");
  w.begin_object();
  w.string_member("domain", x.instance.domain);
  w.string_member("type", domain::to_string(x.instance.type));
  w.end_object();
  w.string_member("plan_id", x.plan_id);
  w.integer_member("seats", x.seats);
  write_term(w, x.term);
  w.bool_member("trial", x.trial);
}

void write(json_writer& w, const domain::renew_subscription& x) {
  w.string_member("subscription_id", x.subscription_id);
  write_term(w, x.term);
  if (x.seats)
    w.integer_member("seats", *x.seats);
  if (x.plan_id)
    w.string_member("plan_id", *x.plan_id);
}

void write(json_writer& w, const domain::update_entitlements& x) {
  w.string_member("subscription_id", x.subscription_id);
  if (x.seats)
    w.integer_member("seats", *x.seats);
  if (x.plan_id)
    w.string_member("plan_id", *x.plan_id);
  if (x.features)
    w.string_array_member("features", *x.features);
}

void write(json_writer& w, const domain::convert_trial& x) {
  w.string_member("subscription_id", x.subscription_id);
  w.string_member("plan_id", x.plan_id);
  w.integer_member("seats", x.seats);
  write_term(w, x.term);
}

void write(json_writer& w, const domain::expire_subscription& x) {
  w.string_member("subscription_id", x.subscription_id);
}

void write(json_writer& w, const domain::archive_subscription& x) {
  w.string_member("subscription_id", x.subscription_id);
  w.string_member("reason", x.reason);
}

void write(json_writer& w, const domain::update_metadata& x) {
  w.string_member("subscription_id", x.subscription_id);
  if (x.display_name)
    w.string_member("display_name", *x.display_name);
  if (x.customer) {
    w.key("customer");
    write_external_ids(w, x.customer->salesforce_account_id,
                       x.customer->salesforce_subscription_id);
  }
  if (x.instance) {
    w.key("instance");
    w.begin_object();
    if (x.instance->domain)
      w.string_member("domain", *x.instance->domain);
    if (x.instance->type)
      w.string_member("type", domain::to_string(*x.instance->type));
    w.end_object();
  }
  if (x.rate_limit_overrides)
    json_object_member(w, "rate_limit_overrides", *x.rate_limit_overrides);
  if (x.analytics_access)
    w.bool_member("analytics_access", *x.analytics_access);
}

void write(json_writer& w, const domain::issue_license& x) {
  w.string_member("subscription_id", x.subscription_id);
  if (x.features)
    w.string_array_member("features", *x.features);
  if (x.expires_at)
    time_member(w, "expires_at", *x.expires_at);
}

void write(json_writer& w, const domain::rate_plan_upserted& x) {
  w.key("product");
  w.begin_object();
  w.string_member("id", x.product.id);
  w.string_member("name", x.product.name);
  w.end_object();
  w.key("rate_plan");
  w.begin_object();
  w.string_member("id", x.rate_plan.id);
  w.string_member("name", x.rate_plan.name);
  json_object_member(w, "custom_fields", x.rate_plan.custom_fields);
  w.end_object();
  w.key("charges");
  w.begin_array();
  for (const auto& charge : x.charges) {
    w.begin_object();
    w.string_member("id", charge.id);
    w.string_member("name", charge.name);
    w.string_member("billing_period", charge.billing_period);
    json_object_member(w, "custom_fields", charge.custom_fields);
    w.end_object();
  }
  w.end_array();
}

void write(json_writer& w, const domain::rate_plan_removed& x) {
  w.string_member("rate_plan_id", x.rate_plan_id);
}

void write(json_writer& w, const domain::seat_delta& x) {
  w.string_member("delta_id", x.delta_id);
  w.string_member("subscription_id", x.subscription_id);
  w.string_member("org_id", x.org_id);
  w.integer_member("org_seq", x.org_seq);
  w.bool_member("org_linked", x.org_linked);
  w.key("changes");
  w.begin_array();
  for (const auto& change : x.changes) {
    w.begin_object();
    w.string_member("user_id", change.user_id);
    w.bool_member("billable", change.billable);
    w.end_object();
  }
  w.end_array();
  w.key("cause");
  w.begin_object();
  w.string_member("source", x.cause.source);
  w.string_member("id", x.cause.id);
  w.string_member("type", x.cause.type);
  time_member(w, "time", x.cause.time);
  w.end_object();
  w.integer_member("part", x.part);
  w.integer_member("parts", x.parts);
}

template<class Variant>
std::string encode_input(const domain::event_ref& ref, std::string_view type,
                         const Variant& payload) {
  json_writer w{initial_capacity};
  begin_envelope(w, ref.id, ref.source, type, ref.time);
  begin_data(w);
  std::visit([&w](const auto& x) { write(w, x); }, payload);
  end_envelope(w);
  return w.take();
}

} // namespace

// -- output -------------------------------------------------------------------

std::string encode_output_event(const domain::output_event& event,
                                std::string_view source) {
  json_writer w{initial_capacity};
  begin_envelope(w, event.id, source, domain::output_type(event.payload),
                 event.time);
  w.string_member("subject", event.subscription_id);
  begin_data(w);
  w.string_member("subscription_id", event.subscription_id);
  std::visit([&w](const auto& x) { write(w, x); }, event.payload);
  end_envelope(w);
  return w.take();
}

void write_subscription(json_writer& out,
                        const domain::subscription_record& state,
                        const std::vector<std::string>& orgs) {
  out.begin_object();
  out.string_member("subscription_id", state.subscription_id);
  write_subscription_body(out, state, orgs);
  out.end_object();
}

std::string encode_subscription(const domain::subscription_record& state,
                                const std::vector<std::string>& orgs) {
  json_writer w{initial_capacity};
  write_subscription(w, state, orgs);
  return w.take();
}

std::string encode_license_claims(const domain::license_grant& grant) {
  json_writer w{initial_capacity};
  w.begin_object();
  w.string_member("jti", grant.license_id);
  w.string_member("subscription_id", grant.subscription_id);
  time_member(w, "iat", grant.issued_at);
  time_member(w, "nbf", grant.not_before);
  time_member(w, "exp", grant.expires_at);
  w.integer_member("seats", grant.seats);
  w.string_member("plan_id", grant.plan_id);
  optional_string_member(w, "tier", grant.tier);
  w.string_array_member("features", grant.features);
  w.string_member("instance_domain", grant.instance_domain);
  w.string_member("instance_type", domain::to_string(grant.instance_type));
  w.bool_member("trial", grant.trial);
  w.end_object();
  return w.take();
}

// -- input --------------------------------------------------------------------

std::string encode_membership_event(const domain::membership_event& event) {
  return encode_input(event.ref, type_of(event.change), event.change);
}

std::string encode_command_event(const domain::command_event& event) {
  return encode_input(event.ref, type_of(event.command), event.command);
}

std::string encode_catalog_event(const domain::catalog_event& event) {
  return encode_input(event.ref, type_of(event.change), event.change);
}

std::string encode_seat_delta(const domain::seat_delta& delta,
                              std::string_view source) {
  json_writer w{initial_capacity + delta.changes.size() * 48};
  begin_envelope(w, delta.delta_id, source, t::seat_delta, delta.cause.time);
  begin_data(w);
  write(w, delta);
  end_envelope(w);
  return w.take();
}

std::string encode_input_event(const input_event& event,
                               std::string_view source) {
  struct visitor {
    std::string_view source;
    std::string operator()(const domain::membership_event& x) const {
      return encode_membership_event(x);
    }
    std::string operator()(const domain::command_event& x) const {
      return encode_command_event(x);
    }
    std::string operator()(const domain::catalog_event& x) const {
      return encode_catalog_event(x);
    }
    std::string operator()(const domain::seat_delta& x) const {
      return encode_seat_delta(x, source);
    }
  };
  return std::visit(visitor{source}, event);
}

// -- record keys
// ----------------------------------------------------------------

const std::string& record_key(const domain::membership_event& event) {
  return domain::org_id_of(event.change);
}

const std::string& record_key(const domain::command_event& event) {
  return domain::subscription_id_of(event.command);
}

const std::string& record_key(const domain::catalog_event& event) {
  if (auto* upserted = std::get_if<domain::rate_plan_upserted>(&event.change))
    return upserted->rate_plan.id;
  return std::get<domain::rate_plan_removed>(event.change).rate_plan_id;
}

const std::string& record_key(const domain::seat_delta& delta) {
  return delta.subscription_id;
}

const std::string& record_key(const domain::output_event& event) {
  return event.subscription_id;
}

const std::string& record_key(const input_event& event) {
  return std::visit(
    [](const auto& x) -> const std::string& { return record_key(x); }, event);
}

} // namespace seatledger::messages
