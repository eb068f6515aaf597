#pragma once

// The CloudEvents `type` of every message and the topic each belongs to.

#include <cstddef>
#include <optional>
#include <string_view>
#include <variant>

#include "domain/commands.hpp"

namespace seatledger::messages {

/// The input topics, by role (their names are configurable).
enum class topic_kind : int {
  membership = 0,
  subscriptions = 1,
  catalog = 2,
  seat_deltas = 3,
};

/// "membership", "subscriptions", "catalog", "seat_deltas".
const char* to_string(topic_kind kind) noexcept;

namespace event_types {

// seatledger.membership.v1
inline constexpr std::string_view member_added = "seatledger.member.added";
inline constexpr std::string_view member_updated = "seatledger.member.updated";
inline constexpr std::string_view member_removed = "seatledger.member.removed";
inline constexpr std::string_view org_snapshot = "seatledger.org.snapshot";
inline constexpr std::string_view org_linked = "seatledger.org.linked";
inline constexpr std::string_view org_unlinked = "seatledger.org.unlinked";

// seatledger.subscriptions.v1
inline constexpr std::string_view subscription_create
  = "seatledger.subscription.create";
inline constexpr std::string_view subscription_renew
  = "seatledger.subscription.renew";
inline constexpr std::string_view subscription_update_entitlements
  = "seatledger.subscription.update_entitlements";
inline constexpr std::string_view subscription_convert_trial
  = "seatledger.subscription.convert_trial";
inline constexpr std::string_view subscription_expire
  = "seatledger.subscription.expire";
inline constexpr std::string_view subscription_archive
  = "seatledger.subscription.archive";
inline constexpr std::string_view subscription_update_metadata
  = "seatledger.subscription.update_metadata";
inline constexpr std::string_view license_issue = "seatledger.license.issue";

// seatledger.catalog.v1
inline constexpr std::string_view rate_plan_upserted
  = "seatledger.catalog.rate_plan.upserted";
inline constexpr std::string_view rate_plan_removed
  = "seatledger.catalog.rate_plan.removed";

// seatledger.internal.seat-deltas.v1
inline constexpr std::string_view seat_delta = "seatledger.internal.seat_delta";

} // namespace event_types

/// Any input message, by topic.
using input_event
  = std::variant<domain::membership_event, domain::command_event,
                 domain::catalog_event, domain::seat_delta>;

/// The CloudEvents type of an input message.
std::string_view type_of(const domain::membership_change& change) noexcept;
std::string_view type_of(const domain::subscription_command& command) noexcept;
std::string_view type_of(const domain::catalog_change& change) noexcept;

/// A view of a constant list of types.
struct type_list {
  const std::string_view* first = nullptr;
  std::size_t size = 0;

  const std::string_view* begin() const noexcept {
    return first;
  }

  const std::string_view* end() const noexcept {
    return first + size;
  }
};

/// Every type the messages of a topic may carry.
type_list types_of(topic_kind kind) noexcept;

/// The topic whose messages may carry `type`, if any.
std::optional<topic_kind> topic_of(std::string_view type) noexcept;

} // namespace seatledger::messages
