#include "messages/equality.hpp"

#include <tuple>

namespace seatledger::messages {

namespace {

// Each struct as a tuple of references to all its fields; a field added to a
// domain struct must be added here (the round-trip tests would not notice).
auto fields(const domain::member_added& x) {
  return std::tie(x.org_id, x.user_id, x.billable, x.role);
}

auto fields(const domain::member_updated& x) {
  return std::tie(x.org_id, x.user_id, x.billable, x.role);
}

auto fields(const domain::member_removed& x) {
  return std::tie(x.org_id, x.user_id);
}

bool same(const domain::snapshot_member& x, const domain::snapshot_member& y) {
  return x.user_id == y.user_id && x.billable == y.billable;
}

bool same(const domain::org_snapshot& x, const domain::org_snapshot& y) {
  if (x.org_id != y.org_id || x.members.size() != y.members.size())
    return false;
  for (std::size_t i = 0; i < x.members.size(); ++i)
    if (!same(x.members[i], y.members[i]))
      return false;
  return true;
}

auto fields(const domain::org_linked& x) {
  return std::tie(x.org_id, x.subscription_id);
}

auto fields(const domain::org_unlinked& x) {
  return std::tie(x.org_id, x.subscription_id);
}

auto fields(const domain::create_subscription& x) {
  return std::tie(x.subscription_id, x.display_name, x.customer, x.instance,
                  x.plan_id, x.seats, x.term, x.trial);
}

auto fields(const domain::renew_subscription& x) {
  return std::tie(x.subscription_id, x.term, x.seats, x.plan_id);
}

auto fields(const domain::update_entitlements& x) {
  return std::tie(x.subscription_id, x.seats, x.plan_id, x.features);
}

auto fields(const domain::convert_trial& x) {
  return std::tie(x.subscription_id, x.plan_id, x.seats, x.term);
}

auto fields(const domain::expire_subscription& x) {
  return std::tie(x.subscription_id);
}

auto fields(const domain::archive_subscription& x) {
  return std::tie(x.subscription_id, x.reason);
}

bool same(const domain::customer_patch& x, const domain::customer_patch& y) {
  return x.salesforce_account_id == y.salesforce_account_id
         && x.salesforce_subscription_id == y.salesforce_subscription_id;
}

bool same(const domain::instance_patch& x, const domain::instance_patch& y) {
  return x.domain == y.domain && x.type == y.type;
}

template<class T>
bool same_optional(const std::optional<T>& x, const std::optional<T>& y) {
  if (x.has_value() != y.has_value())
    return false;
  return !x || same(*x, *y);
}

bool same(const domain::update_metadata& x, const domain::update_metadata& y) {
  return x.subscription_id == y.subscription_id
         && x.display_name == y.display_name
         && same_optional(x.customer, y.customer)
         && same_optional(x.instance, y.instance)
         && x.rate_limit_overrides == y.rate_limit_overrides
         && x.analytics_access == y.analytics_access;
}

auto fields(const domain::issue_license& x) {
  return std::tie(x.subscription_id, x.features, x.expires_at);
}

auto fields(const domain::catalog_charge& x) {
  return std::tie(x.id, x.name, x.billing_period, x.custom_fields);
}

bool same(const domain::rate_plan_upserted& x,
          const domain::rate_plan_upserted& y) {
  if (x.product.id != y.product.id || x.product.name != y.product.name
      || x.rate_plan.id != y.rate_plan.id
      || x.rate_plan.name != y.rate_plan.name
      || x.rate_plan.custom_fields != y.rate_plan.custom_fields
      || x.charges.size() != y.charges.size())
    return false;
  for (std::size_t i = 0; i < x.charges.size(); ++i)
    if (fields(x.charges[i]) != fields(y.charges[i]))
      return false;
  return true;
}

auto fields(const domain::rate_plan_removed& x) {
  return std::tie(x.rate_plan_id);
}

// Prefers a hand-written `same` and falls back to comparing `fields`.
template<class T>
auto same_impl(const T& x, const T& y, int) -> decltype(same(x, y)) {
  return same(x, y);
}

template<class T>
bool same_impl(const T& x, const T& y, long) {
  return fields(x) == fields(y);
}

template<class Variant>
bool same_variant(const Variant& x, const Variant& y) {
  if (x.index() != y.index())
    return false;
  return std::visit(
    [&y](const auto& lhs) {
      using type = std::decay_t<decltype(lhs)>;
      return same_impl(lhs, std::get<type>(y), 0);
    },
    x);
}

} // namespace

bool equal(const domain::membership_event& x,
           const domain::membership_event& y) {
  return x.ref == y.ref && same_variant(x.change, y.change);
}

bool equal(const domain::command_event& x, const domain::command_event& y) {
  return x.ref == y.ref && same_variant(x.command, y.command);
}

bool equal(const domain::catalog_event& x, const domain::catalog_event& y) {
  return x.ref == y.ref && same_variant(x.change, y.change);
}

bool equal(const domain::seat_delta& x, const domain::seat_delta& y) {
  return x.delta_id == y.delta_id && x.subscription_id == y.subscription_id
         && x.org_id == y.org_id && x.org_seq == y.org_seq
         && x.org_linked == y.org_linked && x.changes == y.changes && x.cause == y.cause && x.part == y.part
         && x.parts == y.parts;
}

bool equal(const input_event& x, const input_event& y) {
  if (x.index() != y.index())
    return false;
  return std::visit(
    [&y](const auto& lhs) {
      using type = std::decay_t<decltype(lhs)>;
      return equal(lhs, std::get<type>(y));
    },
    x);
}

} // namespace seatledger::messages
