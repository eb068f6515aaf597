#pragma once

// The typed inputs of the domain: what `messages/` decodes from Kafka
// records. Plain data, no behaviour.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "domain/identifiers.hpp"
#include "domain/time.hpp"

namespace seatledger::domain {

// -- seatledger.membership.v1 (key: org_id) ----------------------------------

struct member_added {
  std::string org_id;
  std::string user_id;
  bool billable = true;
  std::optional<std::string> role;
};

struct member_updated {
  std::string org_id;
  std::string user_id;
  bool billable = true;
  std::optional<std::string> role;
};

struct member_removed {
  std::string org_id;
  std::string user_id;
};

struct snapshot_member {
  std::string user_id;
  bool billable = true;
};

struct org_snapshot {
  std::string org_id;
  std::vector<snapshot_member> members;
};

struct org_linked {
  std::string org_id;
  std::string subscription_id;
};

struct org_unlinked {
  std::string org_id;
  std::string subscription_id;
};

using membership_change
  = std::variant<member_added, member_updated, member_removed, org_snapshot,
                 org_linked, org_unlinked>;

struct membership_event {
  event_ref ref;
  membership_change change;
};

const std::string& org_id_of(const membership_change& change);

// -- seatledger.subscriptions.v1 (key: subscription_id) ----------------------

struct term {
  timestamp start;
  timestamp end;

  friend bool operator==(const term& x, const term& y) {
    return x.start == y.start && x.end == y.end;
  }
};

enum class instance_type { primary, secondary, internal };

const char* to_string(instance_type type); // "PRIMARY", …

std::optional<instance_type> parse_instance_type(std::string_view text);

/// Both fields may be absent on the wire; an absent Salesforce account id is
/// what the Salesforce rule checks.
struct customer_info {
  std::optional<std::string> salesforce_account_id;
  std::optional<std::string> salesforce_subscription_id;

  friend bool operator==(const customer_info& x, const customer_info& y) {
    return x.salesforce_account_id == y.salesforce_account_id
           && x.salesforce_subscription_id == y.salesforce_subscription_id;
  }
};

struct instance_info {
  std::string domain;
  instance_type type = instance_type::primary;

  friend bool operator==(const instance_info& x, const instance_info& y) {
    return x.domain == y.domain && x.type == y.type;
  }
};

struct create_subscription {
  std::string subscription_id;
  std::string display_name;
  customer_info customer;
  instance_info instance;
  std::string plan_id;
  std::int64_t seats = 0;
  domain::term term;
  bool trial = false;
};

struct renew_subscription {
  std::string subscription_id;
  domain::term term;
  std::optional<std::int64_t> seats;
  std::optional<std::string> plan_id;
};

struct update_entitlements {
  std::string subscription_id;
  std::optional<std::int64_t> seats;
  std::optional<std::string> plan_id;
  std::optional<std::vector<std::string>> features;
};

struct convert_trial {
  std::string subscription_id;
  std::string plan_id;
  std::int64_t seats = 0;
  domain::term term;
};

struct expire_subscription {
  std::string subscription_id;
};

struct archive_subscription {
  std::string subscription_id;
  std::string reason;
};

/// `customer` and `instance` replace only the sub-fields present.
struct customer_patch {
  std::optional<std::string> salesforce_account_id;
  std::optional<std::string> salesforce_subscription_id;
};

struct instance_patch {
  std::optional<std::string> domain;
  std::optional<instance_type> type;
};

struct update_metadata {
  std::string subscription_id;
  std::optional<std::string> display_name;
  std::optional<customer_patch> customer;
  std::optional<instance_patch> instance;
  /// Compact JSON text of an object; kept opaque by the domain.
  std::optional<std::string> rate_limit_overrides;
  std::optional<bool> analytics_access;
};

struct issue_license {
  std::string subscription_id;
  std::optional<std::vector<std::string>> features;
  std::optional<timestamp> expires_at;
};

using subscription_command
  = std::variant<create_subscription, renew_subscription, update_entitlements,
                 convert_trial, expire_subscription, archive_subscription,
                 update_metadata, issue_license>;

struct command_event {
  event_ref ref;
  subscription_command command;
};

const std::string& subscription_id_of(const subscription_command& command);

// -- seatledger.internal.seat-deltas.v1 (key: subscription_id) ---------------

/// Whether `user_id` is billable through the org, as seen by the org stage
/// after the causing event. An absolute statement, not an increment, so
/// applying it twice changes nothing the second time.
struct seat_contribution {
  std::string user_id;
  bool billable = false;

  friend bool operator==(const seat_contribution& x,
                         const seat_contribution& y) {
    return x.user_id == y.user_id && x.billable == y.billable;
  }
};

/// What one membership event changes for one subscription. Large changes
/// (a big org linked) are split into parts so a record stays small; every
/// part carries the upstream event that caused it.
///
/// `org_seq` numbers every delta record an org emits (1, 2, …); the
/// subscription remembers the last one it applied per org, so a delta the
/// outbox relay re-publishes after a crash is recognised exactly, at any age.
struct seat_delta {
  std::string delta_id;
  std::string subscription_id;
  std::string org_id;
  std::int64_t org_seq = 0;
  bool org_linked = false;
  /// Not billable first, then billable, each sorted by user_id.
  std::vector<seat_contribution> changes;
  event_ref cause;
  std::int32_t part = 1;
  std::int32_t parts = 1;
};

// -- seatledger.catalog.v1 (key: rate plan id) -------------------------------

struct catalog_product {
  std::string id;
  std::string name;
};

struct catalog_charge {
  std::string id;
  std::string name;
  std::string billing_period;
  std::string custom_fields; // compact JSON object
};

struct catalog_rate_plan {
  std::string id;
  std::string name;
  std::string custom_fields; // compact JSON object
};

struct rate_plan_upserted {
  catalog_product product;
  catalog_rate_plan rate_plan;
  std::vector<catalog_charge> charges;
};

struct rate_plan_removed {
  std::string rate_plan_id;
};

using catalog_change = std::variant<rate_plan_upserted, rate_plan_removed>;

struct catalog_event {
  event_ref ref;
  catalog_change change;
};

} // namespace seatledger::domain
