// The plan catalog against real PostgreSQL: a realistic catalog fixture is
// loaded through the commit path the service uses, and every classification
// of the catalog issue is asserted with its exact set of plans; incomplete
// plans are reported with what they miss and never classified; a change is
// in the next answer; and on a catalog of 10,000 generated plans the
// containment queries are answered through the GIN indexes and agree with a
// reference classifier.

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "catalog_generator.hpp"
#include "messages/decode.hpp"
#include "pg_fixture.hpp"
#include "storage/catalog.hpp"

namespace seatledger::test {
namespace {

using json = nlohmann::json;
using id_set = std::set<std::string>;
using storage::rate_plan_filter;

std::filesystem::path fixture_path() {
  return std::filesystem::path{__FILE__}.parent_path().parent_path()
         / "fixtures" / "catalog" / "realistic.jsonl";
}

/// The fixture's events, decoded as the coordinator decodes them.
std::vector<domain::catalog_event> fixture_events() {
  std::vector<domain::catalog_event> out;
  std::ifstream in{fixture_path()};
  EXPECT_TRUE(in) << "cannot read " << fixture_path();
  messages::decoder decoder;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty())
      continue;
    auto event = decoder.decode_catalog({line, nullptr});
    EXPECT_TRUE(event) << event.error().message << ": " << line;
    if (event)
      out.push_back(std::move(event.value()));
  }
  return out;
}

storage::storage_batch batch_of(const std::vector<domain::catalog_event>& es) {
  storage::storage_batch b;
  std::int64_t order = 0;
  for (const auto& e : es) {
    if (auto* up = std::get_if<domain::rate_plan_upserted>(&e.change))
      b.catalog_upserts.push_back({*up, e.ref, order++});
    else
      b.catalog_removals.push_back(
        {std::get<domain::rate_plan_removed>(e.change).rate_plan_id, e.ref,
         order++});
  }
  return b;
}

/// A filter set by `set` (C++17 has no designated initializers).
rate_plan_filter filter(const std::function<void(rate_plan_filter&)>& set) {
  rate_plan_filter f;
  set(f);
  return f;
}

/// The fixture's upsert of one plan.
domain::rate_plan_upserted fixture_plan(const std::string& id) {
  for (auto& e : fixture_events())
    if (auto* up = std::get_if<domain::rate_plan_upserted>(&e.change))
      if (up->rate_plan.id == id)
        return *up;
  ADD_FAILURE() << "no plan " << id << " in the fixture";
  return {};
}

// The fixture's plans by what they are (see realistic.jsonl).
const id_set incomplete_ids{"rp-premium-saas-promo", "rp-ultimate-sm-2y",
                            "rp-ci-minutes-10k",
                            "rp-ultimate-saas-zuora-multiselect",
                            "rp-duo-amazon-q-sm"};

const id_set complete_ids{"rp-agile-planning-sm",
                          "rp-bronze-saas",
                          "rp-ci-minutes-saas",
                          "rp-dedicated-gov",
                          "rp-dedicated-ultimate-1y",
                          "rp-duo-enterprise-sm",
                          "rp-duo-pro-saas",
                          "rp-duo-pro-sm",
                          "rp-edu-ultimate-saas",
                          "rp-edu-ultimate-sm",
                          "rp-gold-saas",
                          "rp-implementation-services",
                          "rp-oss-ultimate-saas",
                          "rp-premium-saas-1y",
                          "rp-premium-sm-1y",
                          "rp-premium-sm-duo",
                          "rp-premium-sm-monthly",
                          "rp-premium-sm-pubsec",
                          "rp-silver-saas",
                          "rp-starter-sm",
                          "rp-startup-ultimate-saas",
                          "rp-storage-saas",
                          "rp-true-up-premium-sm",
                          "rp-true-up-starter-sm",
                          "rp-true-up-ultimate-saas",
                          "rp-ultimate-saas-1y",
                          "rp-ultimate-saas-3y",
                          "rp-ultimate-saas-bundle",
                          "rp-ultimate-sm-1y",
                          "rp-ultimate-sm-pubsec"};

const id_set gitlab_com_ids{"rp-bronze-saas",
                            "rp-ci-minutes-saas",
                            "rp-duo-pro-saas",
                            "rp-edu-ultimate-saas",
                            "rp-gold-saas",
                            "rp-oss-ultimate-saas",
                            "rp-premium-saas-1y",
                            "rp-silver-saas",
                            "rp-startup-ultimate-saas",
                            "rp-storage-saas",
                            "rp-true-up-ultimate-saas",
                            "rp-ultimate-saas-1y",
                            "rp-ultimate-saas-3y",
                            "rp-ultimate-saas-bundle"};

class catalog : public pg_test {
protected:
  void SetUp() override {
    pg_test::SetUp();
    if (HasFatalFailure())
      return;
    catalog_ = std::make_unique<storage::pg_catalog>(conninfo());
  }

  void TearDown() override {
    catalog_.reset();
    pg_test::TearDown();
  }

  void load_fixture() {
    auto events = fixture_events();
    ASSERT_EQ(events.size(), 37u);
    ASSERT_OK(store().commit(batch_of(events)));
  }

  std::vector<storage::rate_plan_view> plans(const rate_plan_filter& f) {
    auto got = catalog_->rate_plans(f);
    EXPECT_TRUE(got) << describe(got.error());
    return got ? std::move(*got) : std::vector<storage::rate_plan_view>{};
  }

  /// The ids of the answer, checking it is ordered by id.
  std::vector<std::string> ordered_ids(const rate_plan_filter& f) {
    std::vector<std::string> ids;
    for (const auto& p : plans(f))
      ids.push_back(p.rate_plan_id);
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    return ids;
  }

  id_set ids(const rate_plan_filter& f) {
    auto v = ordered_ids(f);
    id_set s(v.begin(), v.end());
    EXPECT_EQ(s.size(), v.size()) << "a plan answered twice";
    return s;
  }

  std::map<std::string, storage::incomplete_plan> incomplete() {
    auto got = catalog_->incomplete_plans();
    EXPECT_TRUE(got) << describe(got.error());
    std::map<std::string, storage::incomplete_plan> out;
    if (got)
      for (auto& p : *got)
        out.emplace(p.rate_plan_id, std::move(p));
    return out;
  }

  /// Re-publishes a fixture plan with its plan-level custom fields as in the
  /// fixture, changed by `edit`.
  void change_fields(const std::string& id, const std::string& event_id,
                     const std::function<void(json&)>& edit) {
    auto plan = fixture_plan(id);
    auto fields = json::parse(plan.rate_plan.custom_fields);
    edit(fields);
    plan.rate_plan.custom_fields = fields.dump();
    storage::storage_batch b;
    b.catalog_upserts.push_back(
      {plan,
       {"//billing.example.com/zuora/catalog", event_id,
        "seatledger.catalog.rate_plan.upserted", at("2026-03-02T03:00:00Z")}});
    ASSERT_OK(store().commit(b));
  }

  std::unique_ptr<storage::pg_catalog> catalog_;
};

// -- the classifications of the issue -----------------------------------------

TEST_F(catalog, unfiltered_is_every_complete_plan_in_id_order) {
  load_fixture();
  EXPECT_EQ(ids({}), complete_ids);
}

TEST_F(catalog, a_plan_is_answered_with_product_custom_fields_and_charges) {
  load_fixture();
  rate_plan_filter f;
  f.plan_type = "storage";
  f.tier = "Ultimate";
  auto got = plans(f);
  ASSERT_EQ(got.size(), 1u);
  const auto& p = got[0];
  auto source = fixture_plan("rp-ultimate-saas-bundle");
  EXPECT_EQ(p.rate_plan_id, "rp-ultimate-saas-bundle");
  EXPECT_EQ(p.name, "Ultimate SaaS with Storage and Compute Minutes");
  EXPECT_EQ(p.product_id, "prod-ultimate-saas");
  EXPECT_EQ(p.product_name, "GitLab Ultimate - SaaS");
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(json::parse(p.custom_fields),
            json::parse(source.rate_plan.custom_fields));
  ASSERT_EQ(p.charges.size(), 3u); // in catalog order
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.charges[i].charge_id, source.charges[i].id);
    EXPECT_EQ(p.charges[i].name, source.charges[i].name);
    EXPECT_EQ(p.charges[i].billing_period, source.charges[i].billing_period);
    EXPECT_EQ(json::parse(p.charges[i].custom_fields),
              json::parse(source.charges[i].custom_fields));
  }
  // Explicit nulls are kept as values.
  EXPECT_TRUE(
    json::parse(p.charges[1].custom_fields)["ChargeTier__c"].is_null());
}

TEST_F(catalog, all_gitlab_com_plans) {
  load_fixture();
  rate_plan_filter f;
  f.deployment = "GitLab.com";
  EXPECT_EQ(ids(f), gitlab_com_ids);
}

TEST_F(catalog, self_service_gitlab_com_plans) {
  load_fixture();
  // domain.md: actions include initial_purchase and a charge's deployment
  // is GitLab.com.
  rate_plan_filter f;
  f.actions = {"initial_purchase"};
  f.deployment = "GitLab.com";
  EXPECT_EQ(ids(f), (id_set{"rp-ci-minutes-saas", "rp-duo-pro-saas",
                            "rp-premium-saas-1y", "rp-storage-saas",
                            "rp-ultimate-saas-1y", "rp-ultimate-saas-bundle"}));
}

TEST_F(catalog, true_up_plans) {
  load_fixture();
  rate_plan_filter f;
  f.true_up = true;
  EXPECT_EQ(ids(f), (id_set{"rp-true-up-premium-sm", "rp-true-up-starter-sm",
                            "rp-true-up-ultimate-saas"}));
  // false is a value too: every complete plan that says false.
  f.true_up = false;
  auto not_true_up = complete_ids;
  for (const auto& id : ids(filter([](auto& x) { x.true_up = true; })))
    not_true_up.erase(id);
  EXPECT_EQ(ids(f), not_true_up);
}

TEST_F(catalog, active_ultimate_plans) {
  load_fixture();
  rate_plan_filter f;
  f.status = "active";
  f.tier = "Ultimate";
  EXPECT_EQ(ids(f), (id_set{"rp-dedicated-gov", "rp-dedicated-ultimate-1y",
                            "rp-edu-ultimate-saas", "rp-edu-ultimate-sm",
                            "rp-oss-ultimate-saas", "rp-startup-ultimate-saas",
                            "rp-true-up-ultimate-saas", "rp-ultimate-saas-1y",
                            "rp-ultimate-saas-3y", "rp-ultimate-saas-bundle",
                            "rp-ultimate-sm-1y", "rp-ultimate-sm-pubsec"}));
}

TEST_F(catalog, us_public_sector_plans) {
  load_fixture();
  rate_plan_filter f;
  f.us_pubsec = true;
  EXPECT_EQ(ids(f), (id_set{"rp-dedicated-gov", "rp-premium-sm-pubsec",
                            "rp-ultimate-sm-pubsec"}));
}

TEST_F(catalog, community_plans) {
  load_fixture();
  rate_plan_filter f;
  f.community_type = "education";
  EXPECT_EQ(ids(f), (id_set{"rp-edu-ultimate-saas", "rp-edu-ultimate-sm"}));
  f.community_type = "open_source";
  EXPECT_EQ(ids(f), id_set{"rp-oss-ultimate-saas"});
  f.community_type = "startup";
  EXPECT_EQ(ids(f), id_set{"rp-startup-ultimate-saas"});
}

TEST_F(catalog, plans_by_status_including_deprecated_and_legacy) {
  load_fixture();
  rate_plan_filter f;
  f.status = "legacy";
  EXPECT_EQ(ids(f), (id_set{"rp-bronze-saas", "rp-gold-saas", "rp-starter-sm",
                            "rp-true-up-starter-sm"}));
  f.status = "deprecated";
  EXPECT_EQ(ids(f), (id_set{"rp-premium-sm-monthly", "rp-premium-sm-pubsec",
                            "rp-silver-saas"}));
  // Null tier and deployment are values, not gaps: the services plan is
  // complete and classified.
  f.status = "not_applicable";
  EXPECT_EQ(ids(f), id_set{"rp-implementation-services"});
  f = {};
  f.plan_type = "professional_services";
  EXPECT_EQ(ids(f), id_set{"rp-implementation-services"});
}

TEST_F(catalog, add_on_plans_by_charge_plan_type) {
  load_fixture();
  rate_plan_filter f;
  f.plan_type = "ci_minutes";
  EXPECT_EQ(ids(f), (id_set{"rp-ci-minutes-saas", "rp-ultimate-saas-bundle"}));
  f.plan_type = "duo_pro";
  EXPECT_EQ(ids(f),
            (id_set{"rp-duo-pro-saas", "rp-duo-pro-sm", "rp-premium-sm-duo"}));
  f.plan_type = "duo_enterprise";
  EXPECT_EQ(ids(f), id_set{"rp-duo-enterprise-sm"});
  f.plan_type = "agile_planning";
  EXPECT_EQ(ids(f), id_set{"rp-agile-planning-sm"});
  f.plan_type = "product_analytics";
  EXPECT_EQ(ids(f), id_set{});
}

TEST_F(catalog, filters_combine_with_and) {
  load_fixture();
  rate_plan_filter f;
  f.status = "active";
  f.deployment = "Self-Managed";
  f.plan_type = "base_product";
  f.actions = {"initial_purchase", "renew"};
  EXPECT_EQ(ids(f), (id_set{"rp-premium-sm-1y", "rp-premium-sm-duo",
                            "rp-ultimate-sm-1y"}));
  f.tier = "Premium";
  EXPECT_EQ(ids(f), (id_set{"rp-premium-sm-1y", "rp-premium-sm-duo"}));
  f.us_pubsec = true;
  EXPECT_EQ(ids(f), id_set{});
}

TEST_F(catalog, each_charge_level_filter_may_match_another_charge) {
  load_fixture();
  // Premium comes from the base charge, duo_pro from the add-on charge of
  // the same plan: the plan has both.
  rate_plan_filter f;
  f.tier = "Premium";
  f.plan_type = "duo_pro";
  EXPECT_EQ(ids(f), id_set{"rp-premium-sm-duo"});
  // The bundle's compute minutes are not tied to a deployment; its other
  // charges are on GitLab.com.
  f = {};
  f.deployment = "Not Applicable";
  EXPECT_EQ(ids(f), id_set{"rp-ultimate-saas-bundle"});
  f.deployment = "GitLab.com";
  f.plan_type = "ci_minutes";
  EXPECT_EQ(ids(f), (id_set{"rp-ci-minutes-saas", "rp-ultimate-saas-bundle"}));
  // A filter matching no charge of the plan excludes it.
  f.tier = "Premium";
  EXPECT_EQ(ids(f), id_set{});
}

TEST_F(catalog, removed_plans_disappear_and_keep_their_history) {
  load_fixture();
  const std::string removed = "rp-ultimate-saas-2y-retired";
  for (const auto& f :
       {rate_plan_filter{}, filter([](auto& x) { x.status = "active"; }),
        filter([](auto& x) { x.deployment = "GitLab.com"; })})
    EXPECT_EQ(ids(f).count(removed), 0u);
  EXPECT_EQ(incomplete().count(removed), 0u);
  auto one = catalog_->rate_plan(removed);
  ASSERT_TRUE(one) << describe(one.error());
  EXPECT_FALSE(*one);
  // What a license was issued against can still be found.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  auto row = tx.exec1(
    "SELECT count(*) FROM seatledger.catalog_rate_plan_versions"
    " WHERE rate_plan_id = 'rp-ultimate-saas-2y-retired'");
  EXPECT_EQ(row[0].as<int>(), 1);
}

TEST_F(catalog, changes_of_one_plan_apply_in_record_order_not_time_order) {
  load_fixture();
  const std::string id = "rp-premium-sm-duo";
  auto exists = [&] {
    auto p = catalog_->rate_plan(id);
    EXPECT_TRUE(p) << describe(p.error());
    return p && *p;
  };
  ASSERT_TRUE(exists());
  // One batch: an upsert and a removal of the plan, each with its record
  // position and event time.
  auto commit = [&](std::int64_t upsert_order, const char* upsert_time,
                    std::int64_t removal_order, const char* removal_time) {
    const std::string source = "//billing.example.com/zuora/catalog";
    storage::storage_batch b;
    b.catalog_upserts.push_back(
      {fixture_plan(id),
       {source, "upsert-" + std::to_string(upsert_order),
        "seatledger.catalog.rate_plan.upserted", at(upsert_time)},
       upsert_order});
    b.catalog_removals.push_back(
      {id,
       {source, "removal-" + std::to_string(removal_order),
        "seatledger.catalog.rate_plan.removed", at(removal_time)},
       removal_order});
    return store().commit(b);
  };
  // Removed, then upserted with the same time: it exists.
  ASSERT_OK(commit(2, "2026-03-03T00:00:00Z", 1, "2026-03-03T00:00:00Z"));
  EXPECT_TRUE(exists());
  // Upserted, then removed by a record with an earlier time: it is gone.
  ASSERT_OK(commit(3, "2026-03-05T00:00:00Z", 4, "2026-03-04T00:00:00Z"));
  EXPECT_FALSE(exists());
}

TEST_F(catalog, one_plan_by_id_complete_or_not) {
  load_fixture();
  auto p = catalog_->rate_plan("rp-premium-sm-duo");
  ASSERT_TRUE(p) << describe(p.error());
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->charges.size(), 2u);
  auto incomplete_one = catalog_->rate_plan("rp-ultimate-sm-2y");
  ASSERT_TRUE(incomplete_one);
  EXPECT_TRUE(*incomplete_one);
  auto unknown = catalog_->rate_plan("rp-nothing");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
}

TEST_F(catalog, pages_by_id) {
  load_fixture();
  std::vector<std::string> all = ordered_ids({});
  std::vector<std::string> paged;
  rate_plan_filter f;
  f.limit = 7;
  for (int guard = 0; guard < 10; ++guard) {
    auto page = ordered_ids(f);
    EXPECT_LE(page.size(), 7u);
    paged.insert(paged.end(), page.begin(), page.end());
    if (page.size() < 7)
      break;
    f.after = page.back();
  }
  EXPECT_EQ(paged, all);
}

// -- incomplete plans ---------------------------------------------------------

TEST_F(catalog, incomplete_plans_are_reported_with_what_they_miss) {
  load_fixture();
  auto got = incomplete();
  id_set got_ids;
  for (const auto& [id, _] : got)
    got_ids.insert(id);
  ASSERT_EQ(got_ids, incomplete_ids);
  using names = std::vector<std::string>;
  // A key that is absent.
  EXPECT_EQ(got["rp-premium-saas-promo"].missing, names{"CDotPlanStatus__c"});
  EXPECT_EQ(got["rp-premium-saas-promo"].name, "Premium SaaS - Promotional");
  EXPECT_EQ(got["rp-ultimate-sm-2y"].missing, names{"CDotActions__c"});
  // A charge without its plan type, named.
  EXPECT_EQ(got["rp-ci-minutes-10k"].missing, names{"CDotPlanType__c"});
  EXPECT_EQ(got["rp-ci-minutes-10k"].charges_missing_plan_type,
            names{"ch-ci-minutes-10k-overage"});
  // Wrong types ("true" as a string, a Zuora multiselect string instead of
  // an array) and an explicit null where the field allows none.
  EXPECT_EQ(
    got["rp-ultimate-saas-zuora-multiselect"].missing,
    (names{"CDotAccessible__c", "CDotActions__c", "CDotPlanStatus__c"}));
  EXPECT_TRUE(got["rp-ultimate-saas-zuora-multiselect"]
                .charges_missing_plan_type.empty());
  // Values the contract does not list.
  EXPECT_EQ(got["rp-duo-amazon-q-sm"].missing,
            (names{"CDotPlanStatus__c", "CDotPlanType__c"}));
  EXPECT_EQ(got["rp-duo-amazon-q-sm"].charges_missing_plan_type,
            names{"ch-duo-amazon-q-sm-seat"});
}

TEST_F(catalog, incomplete_plans_never_appear_in_filtered_answers) {
  load_fixture();
  // Their own fields would match these filters: containment alone finds
  // them, the answers do not.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  EXPECT_EQ(tx.exec1("SELECT count(DISTINCT rate_plan_id) FROM "
                     "seatledger.catalog_charges WHERE custom_fields @> "
                     "'{\"ChargeDeployment__c\": \"GitLab.com\"}' AND "
                     "rate_plan_id IN ('rp-premium-saas-promo', "
                     "'rp-ci-minutes-10k', "
                     "'rp-ultimate-saas-zuora-multiselect')")[0]
              .as<int>(),
            3);
  std::vector<rate_plan_filter> filters{
    {},
    filter([](auto& x) { x.deployment = "GitLab.com"; }),
    filter([](auto& x) { x.deployment = "Self-Managed"; }),
    filter([](auto& x) { x.tier = "Ultimate"; }),
    filter([](auto& x) { x.tier = "Premium"; }),
    filter([](auto& x) { x.actions = {"initial_purchase"}; }),
    filter([](auto& x) { x.status = "active"; }),
    filter([](auto& x) { x.plan_type = "ci_minutes"; }),
    filter([](auto& x) { x.plan_type = "base_product"; }),
    filter([](auto& x) { x.true_up = false; }),
    filter([](auto& x) { x.community_type = "not_applicable"; }),
    filter([](auto& x) {
      x.deployment = "GitLab.com";
      x.actions = {"initial_purchase"};
    })};
  for (const auto& f : filters) {
    auto got = ids(f);
    for (const auto& id : incomplete_ids)
      EXPECT_EQ(got.count(id), 0u) << id;
  }
}

TEST_F(catalog, the_schema_accepts_exactly_the_listed_values) {
  // The stored completeness checks (migration 2) and the lists the HTTP API
  // validates filters with (storage/catalog.hpp) must agree.
  auto plan = [](const std::string& id, json fields, json charge_fields) {
    storage::catalog_upsert_row row;
    row.plan.product = {"prod-x", "X"};
    row.plan.rate_plan = {id, id, fields.dump()};
    row.plan.charges.push_back(
      {id + "-c", "charge", "annual", charge_fields.dump()});
    row.cause = {"test", "evt-" + id, "seatledger.catalog.rate_plan.upserted",
                 at("2026-03-01T00:00:00Z")};
    return row;
  };
  auto fields = [](json actions, json status) {
    return json{{"CDotAccessible__c", true},
                {"CDotActions__c", std::move(actions)},
                {"CDotPlanStatus__c", std::move(status)}};
  };
  const json base = {{"CDotPlanType__c", "base_product"}};
  storage::storage_batch b;
  id_set listed;
  for (auto a : storage::catalog_actions)
    b.catalog_upserts.push_back(plan(
      "a-" + std::string{a}, fields(json{std::string{a}}, "active"), base));
  auto every_action = json::array();
  for (auto a : storage::catalog_actions)
    every_action.push_back(std::string{a});
  b.catalog_upserts.push_back(
    plan("a-all", fields(every_action, "active"), base));
  for (auto st : storage::catalog_plan_statuses)
    b.catalog_upserts.push_back(plan(
      "s-" + std::string{st}, fields(json::array(), std::string{st}), base));
  for (auto t : storage::catalog_plan_types)
    b.catalog_upserts.push_back(plan("t-" + std::string{t},
                                     fields(json::array(), "active"),
                                     {{"CDotPlanType__c", std::string{t}}}));
  for (const auto& row : b.catalog_upserts)
    listed.insert(row.plan.rate_plan.id);
  // Near misses.
  b.catalog_upserts.push_back(
    plan("x-action", fields(json{"cancel"}, "active"), base));
  b.catalog_upserts.push_back(
    plan("x-nested", fields(json{json{"renew"}}, "active"), base));
  b.catalog_upserts.push_back(
    plan("x-status", fields(json::array(), "Active"), base));
  b.catalog_upserts.push_back(
    plan("x-status-array", fields(json::array(), json{"active"}), base));
  b.catalog_upserts.push_back(plan("x-type", fields(json::array(), "active"),
                                   {{"CDotPlanType__c", "Base_Product"}}));
  ASSERT_OK(store().commit(b));
  EXPECT_EQ(ids({}), listed);
  auto got = incomplete();
  using names = std::vector<std::string>;
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(got["x-action"].missing, names{"CDotActions__c"});
  EXPECT_EQ(got["x-nested"].missing, names{"CDotActions__c"});
  EXPECT_EQ(got["x-status"].missing, names{"CDotPlanStatus__c"});
  EXPECT_EQ(got["x-status-array"].missing, names{"CDotPlanStatus__c"});
  EXPECT_EQ(got["x-type"].missing, names{"CDotPlanType__c"});
}

// -- changes ------------------------------------------------------------------

TEST_F(catalog, a_change_of_custom_fields_changes_the_next_answer) {
  load_fixture();
  rate_plan_filter self_service;
  self_service.actions = {"initial_purchase"};
  self_service.deployment = "GitLab.com";
  ASSERT_EQ(ids(self_service).count("rp-premium-saas-1y"), 1u);

  // Premium SaaS is no longer sold self-service.
  change_fields("rp-premium-saas-1y", "chg-1",
                [](json& f) { f["CDotActions__c"] = json{"renew"}; });
  EXPECT_EQ(ids(self_service).count("rp-premium-saas-1y"), 0u);
  rate_plan_filter active;
  active.status = "active";
  EXPECT_EQ(ids(active).count("rp-premium-saas-1y"), 1u);
  auto changed = catalog_->rate_plan("rp-premium-saas-1y");
  ASSERT_TRUE(changed);
  ASSERT_TRUE(*changed);
  EXPECT_EQ((*changed)->version, 2);

  // The promotional plan gets its status: complete now, and classified.
  ASSERT_EQ(incomplete().count("rp-premium-saas-promo"), 1u);
  change_fields("rp-premium-saas-promo", "chg-2",
                [](json& f) { f["CDotPlanStatus__c"] = "active"; });
  EXPECT_EQ(incomplete().count("rp-premium-saas-promo"), 0u);
  EXPECT_EQ(ids(self_service).count("rp-premium-saas-promo"), 1u);

  // Another field removed makes it incomplete again.
  change_fields("rp-premium-saas-promo", "chg-3", [](json& f) {
    f["CDotPlanStatus__c"] = "active";
    f.erase("CDotAccessible__c");
  });
  EXPECT_EQ(incomplete()["rp-premium-saas-promo"].missing,
            std::vector<std::string>{"CDotAccessible__c"});
  EXPECT_EQ(ids(self_service).count("rp-premium-saas-promo"), 0u);
}

// -- 10,000 plans -------------------------------------------------------------

class catalog_at_scale : public catalog {
protected:
  void load_generated(int count) {
    catalog_generator gen;
    generated_ = gen.plans(count);
    for (std::size_t i = 0; i < generated_.size(); i += 1000) {
      storage::storage_batch b;
      auto end = std::min(generated_.size(), i + 1000);
      b.catalog_upserts.assign(generated_.begin() + i,
                               generated_.begin() + end);
      ASSERT_OK(store().commit(b));
    }
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("ANALYZE seatledger.catalog_rate_plans");
    tx.exec("ANALYZE seatledger.catalog_charges");
  }

  id_set reference(const rate_plan_filter& f) {
    id_set out;
    for (const auto& row : generated_)
      if (reference_matches(row.plan, f))
        out.insert(row.plan.rate_plan.id);
    return out;
  }

  std::string explain(const rate_plan_filter& f) {
    auto plan = catalog_->explain_rate_plans(f);
    EXPECT_TRUE(plan) << describe(plan.error());
    return plan ? *plan : std::string{};
  }

  std::vector<storage::catalog_upsert_row> generated_;
};

struct classification {
  const char* name;
  rate_plan_filter filter;
  bool plan_index;   // the plan-level document goes through its GIN index
  bool charge_index; // a charge-level one through the charges' GIN index
};

std::vector<classification> classifications() {
  return {
    {"all GitLab.com plans",
     filter([](auto& x) { x.deployment = "GitLab.com"; }), false, true},
    {"self-service GitLab.com plans", filter([](auto& x) {
       x.deployment = "GitLab.com";
       x.actions = {"initial_purchase"};
     }),
     true, true},
    {"true-up plans", filter([](auto& x) { x.true_up = true; }), true, false},
    {"active Ultimate plans", filter([](auto& x) {
       x.tier = "Ultimate";
       x.status = "active";
     }),
     true, false},
    {"US public-sector plans", filter([](auto& x) { x.us_pubsec = true; }),
     true, false},
    {"education plans", filter([](auto& x) { x.community_type = "education"; }),
     true, false},
    {"Duo Pro add-ons", filter([](auto& x) { x.plan_type = "duo_pro"; }), false,
     true},
  };
}

TEST_F(catalog_at_scale, classifications_agree_with_a_reference_classifier) {
  load_generated(10'000);
  std::size_t total_incomplete = 0;
  for (const auto& row : generated_)
    total_incomplete += reference_complete(row.plan) ? 0 : 1;
  auto reported = incomplete();
  EXPECT_EQ(reported.size(), total_incomplete);
  EXPECT_GT(total_incomplete, 0u);
  auto all = classifications();
  all.push_back({"everything", {}, false, false});
  all.push_back({"renewable Ultimate on Dedicated", filter([](auto& x) {
                   x.tier = "Ultimate";
                   x.deployment = "Dedicated";
                   x.actions = {"renew"};
                 }),
                 false, false});
  all.push_back({"Premium Self-Managed base products", filter([](auto& x) {
                   x.tier = "Premium";
                   x.deployment = "Self-Managed";
                   x.plan_type = "base_product";
                 }),
                 false, false});
  all.push_back({"legacy plans", filter([](auto& x) { x.status = "legacy"; }),
                 false, false});
  for (const auto& c : all) {
    auto expected = reference(c.filter);
    EXPECT_EQ(ids(c.filter), expected) << c.name;
    EXPECT_FALSE(expected.empty()) << c.name;
  }
}

TEST_F(catalog_at_scale, containment_queries_use_the_gin_indexes) {
  load_generated(10'000);
  for (const auto& c : classifications()) {
    auto plan = explain(c.filter);
    if (c.plan_index) {
      EXPECT_NE(
        plan.find("Bitmap Index Scan on catalog_rate_plans_fields_path"),
        std::string::npos)
        << c.name << ":\n"
        << plan;
    }
    if (c.charge_index) {
      EXPECT_NE(plan.find("Bitmap Index Scan on catalog_charges_fields_path"),
                std::string::npos)
        << c.name << ":\n"
        << plan;
    }
  }
}

} // namespace
} // namespace seatledger::test
