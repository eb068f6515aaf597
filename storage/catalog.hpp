#pragma once

// The plan catalog as the service and the HTTP API query it: classification
// of rate plans as queries over their custom fields (domain.md, Catalog),
// never over lists of plan ids, and the plans too incomplete to classify.
// Answered from PostgreSQL's synced copy on every call, so a catalog change
// committed by any replica is in the very next answer of every replica.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "storage/pg_store.hpp"

namespace seatledger::storage {

// -- the fields and the values the contract lists
// ------------------------------

namespace catalog_field {

inline constexpr std::string_view accessible = "CDotAccessible__c";
inline constexpr std::string_view actions = "CDotActions__c";
inline constexpr std::string_view plan_status = "CDotPlanStatus__c";
inline constexpr std::string_view true_up = "CDotIsTrueUp__c";
inline constexpr std::string_view us_pubsec = "CDotIsUsPubSec__c";
inline constexpr std::string_view community_type = "CDotCommunityType__c";
inline constexpr std::string_view plan_type = "CDotPlanType__c";
inline constexpr std::string_view tier = "ChargeTier__c";
inline constexpr std::string_view deployment = "ChargeDeployment__c";

} // namespace catalog_field

inline constexpr std::array<std::string_view, 3> catalog_actions{
  "initial_purchase", "additional_purchase", "renew"};

inline constexpr std::array<std::string_view, 4> catalog_plan_statuses{
  "active", "deprecated", "legacy", "not_applicable"};

inline constexpr std::array<std::string_view, 4> catalog_community_types{
  "education", "open_source", "startup", "not_applicable"};

inline constexpr std::array<std::string_view, 11> catalog_plan_types{
  "ci_minutes",        "storage",
  "duo_pro",           "duo_enterprise",
  "duo_amazon_q",      "agile_planning",
  "product_analytics", "professional_services",
  "ecosystem",         "base_product",
  "not_applicable"};

inline constexpr std::array<std::string_view, 6> catalog_tiers{
  "Ultimate", "Premium", "Bronze", "Legacy", "Starter", "Not Applicable"};

inline constexpr std::array<std::string_view, 4> catalog_deployments{
  "Self-Managed", "Dedicated", "GitLab.com", "Not Applicable"};

// -- queries and answers
// --------------------------------------------------------

/// A classification: every member given must hold (AND). Plan-level members
/// test the rate plan's custom fields; the charge-level ones (`tier`,
/// `deployment`, `plan_type`) each hold when any charge of the plan has the
/// value (each on its own: the charges need not be the same one). Values are
/// compared exactly as stored; the caller validates them.
struct rate_plan_filter {
  std::optional<std::string> tier;       // ChargeTier__c of any charge
  std::optional<std::string> deployment; // ChargeDeployment__c of any charge
  std::vector<std::string> actions;      // CDotActions__c includes them all
  std::optional<std::string> status;     // CDotPlanStatus__c
  std::optional<std::string> plan_type;  // CDotPlanType__c of any charge
  std::optional<bool> true_up;           // CDotIsTrueUp__c
  std::optional<bool> us_pubsec;         // CDotIsUsPubSec__c
  std::optional<std::string> community_type; // CDotCommunityType__c
  /// Paging: only plans whose id sorts after this one (byte order).
  std::string after;
  /// At most this many plans; empty: all.
  std::optional<std::size_t> limit;

  /// Whether no classification member is set (paging aside).
  bool unfiltered() const;
};

/// The JSONB containment documents (`custom_fields @> doc`) a filter asks
/// for, as compact JSON; empty where the filter sets nothing. Pure, so the
/// translation is tested without a server.
struct catalog_containment {
  /// Every plan-level member in one document.
  std::optional<std::string> plan;
  /// One document per charge-level member: each may match another charge.
  std::optional<std::string> tier;
  std::optional<std::string> deployment;
  std::optional<std::string> plan_type;
};

catalog_containment containment_of(const rate_plan_filter& filter);

struct catalog_charge_view {
  std::string charge_id;
  std::string name;
  std::string billing_period;
  std::string custom_fields; // JSON object (as PostgreSQL prints JSONB)
};

/// A rate plan as synced now (its latest version).
struct rate_plan_view {
  std::string rate_plan_id;
  std::string name;
  std::string product_id;
  std::string product_name;
  std::string custom_fields; // JSON object (as PostgreSQL prints JSONB)
  std::int64_t version = 0;
  std::vector<catalog_charge_view> charges; // in catalog order
};

/// A plan that classification cannot use, and why.
struct incomplete_plan {
  std::string rate_plan_id;
  std::string name;
  /// Needed fields absent, null, of the wrong type or with a value the
  /// contract does not list, in the order `CDotAccessible__c`,
  /// `CDotActions__c`, `CDotPlanStatus__c`, `CDotPlanType__c` (the last when
  /// any charge lacks it).
  std::vector<std::string> missing;
  /// The charges without a usable `CDotPlanType__c`, in catalog order.
  std::vector<std::string> charges_missing_plan_type;
};

/// The fields completeness needs, in the order `incomplete_plan::missing`
/// names them.
inline constexpr std::array<std::string_view, 4> catalog_needed_fields{
  catalog_field::accessible, catalog_field::actions, catalog_field::plan_status,
  catalog_field::plan_type};

// -- the port -----------------------------------------------------------------

/// Catalog reads. Removed plans are never answered; incomplete plans only by
/// `incomplete_plans` and `rate_plan`.
class catalog_store {
public:
  virtual ~catalog_store();

  /// The complete plans the filter selects, ordered by rate_plan_id.
  virtual caf::expected<std::vector<rate_plan_view>>
  rate_plans(const rate_plan_filter& filter) = 0;

  /// Every plan (not removed) missing something classification needs,
  /// ordered by rate_plan_id.
  virtual caf::expected<std::vector<incomplete_plan>> incomplete_plans() = 0;

  /// One plan, complete or not; nothing when unknown or removed.
  virtual caf::expected<std::optional<rate_plan_view>>
  rate_plan(const std::string& rate_plan_id) = 0;
};

/// The PostgreSQL implementation: its own connection (connected lazily,
/// re-connected after a failure, like `pg_store`), running as the runtime
/// role. Not thread-safe: one per thread.
class pg_catalog : public catalog_store {
public:
  explicit pg_catalog(std::string conninfo, pg_store_options options = {});
  ~pg_catalog() override;

  pg_catalog(const pg_catalog&) = delete;
  pg_catalog& operator=(const pg_catalog&) = delete;

  caf::expected<std::vector<rate_plan_view>>
  rate_plans(const rate_plan_filter& filter) override;

  caf::expected<std::vector<incomplete_plan>> incomplete_plans() override;

  caf::expected<std::optional<rate_plan_view>>
  rate_plan(const std::string& rate_plan_id) override;

  /// PostgreSQL's plan for `rate_plans(filter)` (EXPLAIN, one line per plan
  /// node), planned for these values as the query itself is: for tests and
  /// the benchmark.
  caf::expected<std::string> explain_rate_plans(const rate_plan_filter& filter);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::storage
