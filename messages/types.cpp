#include "messages/types.hpp"

#include <variant>

namespace seatledger::messages {

const char* to_string(topic_kind kind) noexcept {
  switch (kind) {
    case topic_kind::membership: return "membership";
    case topic_kind::subscriptions: return "subscriptions";
    case topic_kind::catalog: return "catalog";
    case topic_kind::seat_deltas: return "seat_deltas";
  }
  return "unknown";
}

namespace {

namespace t = event_types;

// One overload per alternative, so reordering a variant cannot mismatch
// names.
std::string_view name(const domain::member_added&) {
  return t::member_added;
}
std::string_view name(const domain::member_updated&) {
  return t::member_updated;
}
std::string_view name(const domain::member_removed&) {
  return t::member_removed;
}
std::string_view name(const domain::org_snapshot&) {
  return t::org_snapshot;
}
std::string_view name(const domain::org_linked&) {
  return t::org_linked;
}
std::string_view name(const domain::org_unlinked&) {
  return t::org_unlinked;
}
std::string_view name(const domain::create_subscription&) {
  return t::subscription_create;
}
std::string_view name(const domain::renew_subscription&) {
  return t::subscription_renew;
}
std::string_view name(const domain::update_entitlements&) {
  return t::subscription_update_entitlements;
}
std::string_view name(const domain::convert_trial&) {
  return t::subscription_convert_trial;
}
std::string_view name(const domain::expire_subscription&) {
  return t::subscription_expire;
}
std::string_view name(const domain::archive_subscription&) {
  return t::subscription_archive;
}
std::string_view name(const domain::update_metadata&) {
  return t::subscription_update_metadata;
}
std::string_view name(const domain::issue_license&) {
  return t::license_issue;
}
std::string_view name(const domain::rate_plan_upserted&) {
  return t::rate_plan_upserted;
}
std::string_view name(const domain::rate_plan_removed&) {
  return t::rate_plan_removed;
}

struct namer {
  template<class T>
  std::string_view operator()(const T& x) const {
    return name(x);
  }
};

} // namespace

std::string_view type_of(const domain::membership_change& change) noexcept {
  return std::visit(namer{}, change);
}

std::string_view type_of(const domain::subscription_command& command) noexcept {
  return std::visit(namer{}, command);
}

std::string_view type_of(const domain::catalog_change& change) noexcept {
  return std::visit(namer{}, change);
}

namespace {

constexpr std::string_view membership_types[]
  = {t::member_added, t::member_updated, t::member_removed,
     t::org_snapshot, t::org_linked,     t::org_unlinked};
constexpr std::string_view subscription_types[]
  = {t::subscription_create,
     t::subscription_renew,
     t::subscription_update_entitlements,
     t::subscription_convert_trial,
     t::subscription_expire,
     t::subscription_archive,
     t::subscription_update_metadata,
     t::license_issue};
constexpr std::string_view catalog_types[] = {t::rate_plan_upserted,
                                              t::rate_plan_removed};
constexpr std::string_view seat_delta_types[] = {t::seat_delta};

template<std::size_t N>
type_list list_of(const std::string_view (&types)[N]) noexcept {
  return {types, N};
}

} // namespace

type_list types_of(topic_kind kind) noexcept {
  switch (kind) {
    case topic_kind::membership: return list_of(membership_types);
    case topic_kind::subscriptions: return list_of(subscription_types);
    case topic_kind::catalog: return list_of(catalog_types);
    case topic_kind::seat_deltas: return list_of(seat_delta_types);
  }
  return {};
}

std::optional<topic_kind> topic_of(std::string_view type) noexcept {
  for (auto kind : {topic_kind::membership, topic_kind::subscriptions,
                    topic_kind::catalog, topic_kind::seat_deltas})
    for (auto x : types_of(kind))
      if (type == x)
        return kind;
  return std::nullopt;
}

} // namespace seatledger::messages
