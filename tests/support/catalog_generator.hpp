#pragma once

// A large, realistic generated catalog (shared by the catalog tests and the
// catalog benchmark, so the benchmark times exactly what the tests EXPLAIN),
// and a reference classifier written independently of the SQL, to check
// the queries' answers against.
//
// The shape is that of a billing catalog that has grown for a decade to
// 10,000 plans: most are negotiated deals of the past (legacy or
// deprecated, nearly all Self-Managed) kept for existing subscriptions,
// many are services or add-ons, and only a few hundred are active list
// plans; GitLab.com customers buy list plans, so GitLab.com plans are a few
// percent. Every classification of the catalog issue is therefore
// selective, as it is on a real catalog of that size. Rows carry the other
// custom fields real catalogs have (Salesforce ids, tax codes, revenue
// rules, descriptions), so they are about as wide as real ones.
// Deterministic: the same seed gives the same catalog.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/catalog.hpp"
#include "storage/ports.hpp"

namespace seatledger::test {

class catalog_generator {
public:
  explicit catalog_generator(std::uint32_t seed = 20260301) : rng_(seed) {}

  /// `count` upserts of plans `<prefix>00000`, `<prefix>00001`, …, caused
  /// by events one millisecond apart from `first_time`.
  std::vector<storage::catalog_upsert_row>
  plans(int count, const std::string& prefix = "rp-gen-",
        domain::timestamp first_time
        = domain::timestamp::from_micros(1'772'334'000'000'000)) {
    std::vector<storage::catalog_upsert_row> out;
    out.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      char id[32];
      std::snprintf(id, sizeof(id), "%05d", i);
      auto& row = out.emplace_back();
      row.plan = plan(prefix + id);
      row.cause
        = {"//billing.example.com/zuora/catalog", "gen-" + prefix + id,
           "seatledger.catalog.rate_plan.upserted",
           domain::timestamp::from_micros(first_time.micros() + i * 1000)};
    }
    return out;
  }

private:
  using json = nlohmann::json;

  /// 0..999.
  int permille() {
    return std::uniform_int_distribution<int>{0, 999}(rng_);
  }

  bool chance(int percent) {
    return permille() < percent * 10;
  }

  template<class T>
  const T& pick(const std::vector<T>& values) {
    return values[std::uniform_int_distribution<std::size_t>{0, values.size()
                                                                  - 1}(rng_)];
  }

  /// Self-Managed, GitLab.com or Dedicated by the given percentages (the
  /// rest Dedicated).
  std::string deployment(int self_managed, int gitlab_com) {
    auto p = permille();
    if (p < self_managed * 10)
      return "Self-Managed";
    if (p < (self_managed + gitlab_com) * 10)
      return "GitLab.com";
    return "Dedicated";
  }

  std::string status(int active, int deprecated) {
    auto p = permille();
    if (p < active * 10)
      return "active";
    if (p < (active + deprecated) * 10)
      return "deprecated";
    return "legacy";
  }

  json plan_fields(const std::string& status, json actions, bool true_up,
                   bool pubsec, const std::string& community,
                   const std::string& family, bool accessible = true) {
    return {{"CDotAccessible__c", accessible},
            {"CDotActions__c", std::move(actions)},
            {"CDotPlanStatus__c", status},
            {"CDotIsTrueUp__c", true_up},
            {"CDotIsUsPubSec__c", pubsec},
            {"CDotCommunityType__c", community},
            {"ProductFamily__c", family},
            {"SalesforceProductId__c", "01t5f00000" + std::to_string(sku_++)},
            {"TaxCode__c",
             pick(std::vector<std::string>{"SW054000", "SW052000"})},
            {"RevenueRecognitionRule__c", "Recognize daily over time"},
            {"Description__c", "Rate plan of the " + family
                                 + " family, kept in sync from the billing "
                                   "system's product catalog; see the "
                                   "handbook for its terms"}};
  }

  domain::catalog_charge
  charge(const std::string& plan_id, int n, const std::string& name,
         const std::string& type, json tier, json deployment) {
    domain::catalog_charge c;
    c.id = plan_id + "-c" + std::to_string(n);
    c.name = name;
    c.billing_period = pick(
      std::vector<std::string>{"annual", "12", "monthly", "two_year", "36"});
    json f = {{"CDotPlanType__c", type},
              {"ChargeTier__c", std::move(tier)},
              {"ChargeDeployment__c", std::move(deployment)},
              {"BillingPeriod", c.billing_period},
              {"ChargeModel__c", "Per Unit Pricing"},
              {"ProductCode__c", "SKU-" + std::to_string(sku_++)},
              {"RevenueRecognitionRule__c", "Recognize daily over time"},
              {"Description__c", name + ", billed per unit and term"}};
    c.custom_fields = f.dump();
    return c;
  }

  /// Support is not tied to a deployment.
  domain::catalog_charge support(const std::string& plan_id, int n) {
    return charge(plan_id, n, "Priority Support", "not_applicable",
                  "Not Applicable", "Not Applicable");
  }

  domain::rate_plan_upserted plan(const std::string& id) {
    domain::rate_plan_upserted p;
    p.rate_plan.id = id;
    json fields;
    auto none = json::array();
    auto self_service = json{"initial_purchase", "additional_purchase",
                             "renew"};
    auto kind = permille();
    if (kind < 560) { // negotiated deals of the past, nearly all on premises
      auto tier = pick(std::vector<std::string>{"Premium", "Ultimate",
                                                "Starter", "Bronze", "Legacy"});
      auto dep = deployment(90, 0);
      auto st = status(0, 40);
      p.product = {"prod-deals", "GitLab Negotiated Plans"};
      p.rate_plan.name = tier + " " + dep + " - Negotiated";
      fields = plan_fields(
        st, st == "deprecated" && chance(50) ? json{"renew"} : none, false,
        false, "not_applicable", "Negotiated");
      p.charges.push_back(
        charge(id, 1, tier + " - Seat", "base_product", tier, dep));
      p.charges.push_back(support(id, 2));
      if (chance(50))
        p.charges.push_back(charge(id, 3, "Onboarding", "professional_services",
                                   nullptr, nullptr));
    } else if (kind < 710) { // services and ecosystem
      p.product = {"prod-services", "Professional Services"};
      p.rate_plan.name = "Services Engagement";
      fields = plan_fields("not_applicable", none, false, false,
                           "not_applicable", "Services", false);
      p.charges.push_back(charge(id, 1, "Consulting Day",
                                 "professional_services", nullptr, nullptr));
      p.charges.push_back(charge(id, 2, "Training Seat",
                                 "professional_services", "Not Applicable",
                                 "Not Applicable"));
      if (chance(50))
        p.charges.push_back(charge(id, 3, "Partner Discount", "ecosystem",
                                   "Not Applicable", "Not Applicable"));
    } else if (kind < 800) { // add-ons
      auto type = pick(std::vector<std::string>{
        "ci_minutes", "storage", "duo_pro", "duo_enterprise", "duo_amazon_q",
        "agile_planning", "product_analytics"});
      auto dep = deployment(75, 10);
      auto st = status(10, 35);
      p.product = {"prod-addons", "GitLab Add-ons"};
      p.rate_plan.name = type + " add-on - " + dep;
      fields = plan_fields(st,
                           st == "active" && chance(50)
                             ? json{"initial_purchase", "additional_purchase"}
                             : none,
                           false, false, "not_applicable", "Add-on");
      p.charges.push_back(
        charge(id, 1, type + " - Unit", type,
               chance(50) ? json(nullptr) : json("Not Applicable"), dep));
      p.charges.push_back(support(id, 2));
    } else if (kind < 880) { // Dedicated deals
      auto st = status(5, 30);
      p.product = {"prod-dedicated", "GitLab Dedicated"};
      p.rate_plan.name = "Dedicated - Negotiated";
      fields = plan_fields(st, chance(50) ? json{"renew"} : none, false, false,
                           "not_applicable", "Dedicated");
      p.charges.push_back(charge(id, 1, "Dedicated - Seat", "base_product",
                                 "Ultimate", "Dedicated"));
      p.charges.push_back(charge(id, 2, "Dedicated Infrastructure",
                                 "not_applicable", "Not Applicable",
                                 "Dedicated"));
      p.charges.push_back(support(id, 3));
    } else if (kind < 940) { // Self-Managed list plans
      auto tier = chance(50) ? "Ultimate" : "Premium";
      auto st = status(15, 85);
      p.product = {"prod-self-managed", "GitLab Self-Managed"};
      p.rate_plan.name = std::string{tier} + " Self-Managed";
      fields = plan_fields(st,
                           st != "active" ? json{"renew"}
                           : chance(30)   ? self_service
                                          : json{"renew"},
                           false, false, "not_applicable", "Self-Managed");
      p.charges.push_back(charge(id, 1, std::string{tier} + " - Seat",
                                 "base_product", tier, "Self-Managed"));
      p.charges.push_back(support(id, 2));
    } else if (kind < 965) { // GitLab.com plans
      auto st = status(40, 30);
      auto tier = st == "legacy"
                    ? pick(std::vector<std::string>{"Bronze", "Legacy"})
                  : chance(50) ? std::string{"Ultimate"}
                               : std::string{"Premium"};
      p.product = {"prod-saas", "GitLab SaaS"};
      p.rate_plan.name = tier + " SaaS";
      fields = plan_fields(st,
                           st != "active" ? none
                           : chance(60)   ? self_service
                                          : json{"renew"},
                           false, false, "not_applicable", "SaaS");
      p.charges.push_back(
        charge(id, 1, tier + " - Seat", "base_product", tier, "GitLab.com"));
      p.charges.push_back(support(id, 2));
      if (chance(30))
        p.charges.push_back(
          charge(id, 3, "Storage", "storage", nullptr, "GitLab.com"));
    } else if (kind < 975) { // true-ups
      auto tier
        = pick(std::vector<std::string>{"Ultimate", "Premium", "Starter"});
      auto dep = deployment(70, 20);
      p.product = {"prod-true-up", "True-Up"};
      p.rate_plan.name = tier + " " + dep + " - True-Up";
      fields = plan_fields(status(30, 0), none, true, false, "not_applicable",
                           "True-Up");
      p.charges.push_back(
        charge(id, 1, tier + " - True-Up Seat", "base_product", tier, dep));
      p.charges.push_back(support(id, 2));
    } else if (kind < 985) { // US public sector
      auto tier = chance(50) ? "Ultimate" : "Premium";
      auto dep = deployment(60, 0);
      p.product = {"prod-pubsec", "GitLab US Public Sector"};
      p.rate_plan.name = std::string{tier} + " " + dep + " - US PubSec";
      fields = plan_fields(status(50, 50), none, false, true, "not_applicable",
                           "Public Sector");
      p.charges.push_back(charge(id, 1, std::string{tier} + " - Seat",
                                 "base_product", tier, dep));
      p.charges.push_back(support(id, 2));
    } else if (kind < 993) { // community programs
      auto community
        = pick(std::vector<std::string>{"education", "open_source", "startup"});
      auto dep = deployment(50, 50);
      p.product = {"prod-community", "GitLab Community Programs"};
      p.rate_plan.name = community + " Ultimate " + dep;
      fields = plan_fields("active", chance(50) ? json{"renew"} : none, false,
                           false, community, "Community");
      p.charges.push_back(
        charge(id, 1, "Ultimate - Seat", "base_product", "Ultimate", dep));
      p.charges.push_back(support(id, 2));
    } else { // incomplete: a field missing or ill-typed
      auto dep = deployment(50, 50);
      p.product = {"prod-self-managed", "GitLab Self-Managed"};
      p.rate_plan.name = "Ultimate " + dep + " - Unclassified";
      fields = plan_fields("active", self_service, false, false,
                           "not_applicable", "Self-Managed");
      p.charges.push_back(
        charge(id, 1, "Ultimate - Seat", "base_product", "Ultimate", dep));
      auto defect = permille() % 4;
      if (defect == 0) {
        fields.erase("CDotPlanStatus__c");
      } else if (defect == 1) {
        fields.erase("CDotActions__c");
      } else if (defect == 2) {
        fields["CDotAccessible__c"] = "yes";
      } else {
        auto bad = charge(id, 2, "Storage", "storage", nullptr, dep);
        auto f = json::parse(bad.custom_fields);
        f.erase("CDotPlanType__c");
        bad.custom_fields = f.dump();
        p.charges.push_back(bad);
      }
    }
    p.rate_plan.custom_fields = fields.dump();
    return p;
  }

  std::mt19937 rng_;
  int sku_ = 100000;
};

// -- the reference classifier
// --------------------------------------------------

/// Whether a plan has every field classification needs, usable.
inline bool reference_complete(const domain::rate_plan_upserted& p) {
  using nlohmann::json;
  auto listed = [](const json& v, const auto& values) {
    return v.is_string()
           && std::find(values.begin(), values.end(), v.get<std::string>())
                != values.end();
  };
  auto f = json::parse(p.rate_plan.custom_fields);
  if (!f.contains("CDotAccessible__c") || !f["CDotAccessible__c"].is_boolean())
    return false;
  if (!f.contains("CDotActions__c") || !f["CDotActions__c"].is_array())
    return false;
  for (const auto& a : f["CDotActions__c"])
    if (!listed(a, storage::catalog_actions))
      return false;
  if (!f.contains("CDotPlanStatus__c")
      || !listed(f["CDotPlanStatus__c"], storage::catalog_plan_statuses))
    return false;
  for (const auto& c : p.charges) {
    auto cf = json::parse(c.custom_fields);
    if (!cf.contains("CDotPlanType__c")
        || !listed(cf["CDotPlanType__c"], storage::catalog_plan_types))
      return false;
  }
  return true;
}

/// Whether a complete plan answers the filter (paging aside).
inline bool reference_matches(const domain::rate_plan_upserted& p,
                              const storage::rate_plan_filter& filter) {
  using nlohmann::json;
  if (!reference_complete(p))
    return false;
  auto f = json::parse(p.rate_plan.custom_fields);
  auto equals = [](const json& doc, const char* key, const json& value) {
    return doc.contains(key) && doc[key] == value;
  };
  for (const auto& a : filter.actions) {
    const auto& actions = f["CDotActions__c"];
    if (std::find(actions.begin(), actions.end(), json(a)) == actions.end())
      return false;
  }
  if (filter.status && !equals(f, "CDotPlanStatus__c", *filter.status))
    return false;
  if (filter.true_up && !equals(f, "CDotIsTrueUp__c", *filter.true_up))
    return false;
  if (filter.us_pubsec && !equals(f, "CDotIsUsPubSec__c", *filter.us_pubsec))
    return false;
  if (filter.community_type
      && !equals(f, "CDotCommunityType__c", *filter.community_type))
    return false;
  auto any_charge = [&](const char* key, const std::optional<std::string>& v) {
    if (!v)
      return true;
    return std::any_of(p.charges.begin(), p.charges.end(), [&](const auto& c) {
      return equals(json::parse(c.custom_fields), key, *v);
    });
  };
  return any_charge("ChargeTier__c", filter.tier)
         && any_charge("ChargeDeployment__c", filter.deployment)
         && any_charge("CDotPlanType__c", filter.plan_type);
}

} // namespace seatledger::test
