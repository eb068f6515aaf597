#include "app/sample.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/tools.hpp"
#include "domain/commands.hpp"
#include "messages/encode.hpp"

namespace seatledger::app {

namespace {

using namespace domain;

constexpr std::int64_t day = 86'400'000'000LL;
constexpr std::int64_t hour = 3'600'000'000LL;

class builder {
public:
  explicit builder(timestamp now) {
    // Midnight UTC, so the sample's terms start at a day boundary.
    midnight_ = timestamp::from_micros(now.micros() - now.micros() % day);
  }

  timestamp days_ago(int days, int hours = 0) const {
    return timestamp::from_micros(midnight_.micros() - days * day
                                  + hours * hour);
  }

  event_ref ref(const char* type, timestamp t) {
    return {"seatledger-sample", "sample-" + std::to_string(++counter_), type,
            t};
  }

  std::string member(timestamp t, const std::string& org,
                     const std::string& user, bool billable = true) {
    return messages::encode_membership_event(
      {ref("seatledger.member.added", t),
       member_added{org, user, billable, {}}});
  }

  std::string leave(timestamp t, const std::string& org,
                    const std::string& user) {
    return messages::encode_membership_event(
      {ref("seatledger.member.removed", t), member_removed{org, user}});
  }

  std::string link(timestamp t, const std::string& org,
                   const std::string& sub) {
    return messages::encode_membership_event(
      {ref("seatledger.org.linked", t), org_linked{org, sub}});
  }

  std::string command(const char* type, timestamp t, subscription_command cmd) {
    return messages::encode_command_event({ref(type, t), std::move(cmd)});
  }

  std::string plan(timestamp t, const std::string& product,
                   const std::string& id, const std::string& name,
                   const std::string& plan_fields,
                   std::vector<catalog_charge> charges) {
    rate_plan_upserted up;
    up.product = {product, product};
    up.rate_plan = {id, name, plan_fields};
    up.charges = std::move(charges);
    return messages::encode_catalog_event(
      {ref("seatledger.catalog.rate_plan.upserted", t), std::move(up)});
  }

private:
  timestamp midnight_;
  int counter_ = 0;
};

catalog_charge charge(const std::string& id, const std::string& type,
                      const std::string& tier, const std::string& deployment) {
  return {id, id, "annual",
          R"({"CDotPlanType__c":")" + type + R"(","ChargeTier__c":")" + tier
            + R"(","ChargeDeployment__c":")" + deployment + R"("})"};
}

create_subscription create(const std::string& id, const std::string& name,
                           const std::string& plan, std::int64_t seats, term t,
                           bool trial, const std::string& domain) {
  create_subscription c;
  c.subscription_id = id;
  c.display_name = name;
  c.customer = {"0015000000" + id.substr(0, 4), "A-S" + id.substr(0, 4)};
  c.instance = {domain, instance_type::primary};
  c.plan_id = plan;
  c.seats = seats;
  c.term = t;
  c.trial = trial;
  return c;
}

} // namespace

std::vector<sample_phase> make_sample(timestamp now,
                                      const actors::topic_names& topics) {
  builder b{now};
  std::vector<sample_phase> phases;
  const auto& membership = topics.membership;
  const auto& subscriptions = topics.subscriptions;
  const auto& catalog = topics.catalog;

  // 1. The catalog, classified by custom fields only.
  auto t0 = b.days_ago(200);
  phases.push_back(
    {"1-catalog.jsonl",
     catalog,
     {b.plan(
        t0, "ultimate", "ultimate-sm-annual", "Ultimate Self-Managed",
        R"({"CDotAccessible__c":true,"CDotActions__c":["initial_purchase","renew"],"CDotPlanStatus__c":"active","CDotIsTrueUp__c":false,"CDotIsUsPubSec__c":false,"CDotCommunityType__c":"not_applicable","Features__c":["sso","audit_events","epics"]})",
        {charge("ultimate-sm-seat", "base_product", "Ultimate",
                "Self-Managed")}),
      b.plan(
        t0, "premium", "premium-saas-annual", "Premium GitLab.com",
        R"({"CDotAccessible__c":true,"CDotActions__c":["initial_purchase","additional_purchase","renew"],"CDotPlanStatus__c":"active","CDotIsTrueUp__c":false,"CDotIsUsPubSec__c":false,"CDotCommunityType__c":"not_applicable","Features__c":["sso"]})",
        {charge("premium-saas-seat", "base_product", "Premium", "GitLab.com")}),
      b.plan(
        t0, "ultimate", "ultimate-trial", "Ultimate Trial",
        R"({"CDotAccessible__c":true,"CDotActions__c":[],"CDotPlanStatus__c":"active","CDotIsTrueUp__c":false,"CDotIsUsPubSec__c":false,"CDotCommunityType__c":"not_applicable","Features__c":["sso","epics"]})",
        {charge("ultimate-trial-seat", "base_product", "Ultimate",
                "GitLab.com")}),
      b.plan(
        t0, "addons", "ci-minutes-1000", "1,000 CI minutes",
        R"({"CDotAccessible__c":true,"CDotActions__c":["additional_purchase"],"CDotPlanStatus__c":"active","CDotIsTrueUp__c":false,"CDotIsUsPubSec__c":false,"CDotCommunityType__c":"not_applicable"})",
        {charge("ci-minutes-pack", "ci_minutes", "Not Applicable",
                "GitLab.com")}),
      b.plan(
        t0, "ultimate", "ultimate-true-up", "Ultimate True-Up",
        R"({"CDotAccessible__c":false,"CDotActions__c":[],"CDotPlanStatus__c":"active","CDotIsTrueUp__c":true,"CDotIsUsPubSec__c":false,"CDotCommunityType__c":"not_applicable"})",
        {charge("ultimate-true-up-seat", "base_product", "Ultimate",
                "Self-Managed")})}});

  // 2. Subscriptions: an enterprise (three orgs, 6 seats bought), a
  // GitLab.com customer whose term ends and renews, a trial.
  auto acme_term = term{b.days_ago(120), b.days_ago(120 - 365)};
  auto globex_term = term{b.days_ago(400), b.days_ago(35)};
  auto trial_term = term{b.days_ago(60), b.days_ago(30)};
  phases.push_back(
    {"2-subscriptions.jsonl",
     subscriptions,
     {b.command("seatledger.subscription.create", b.days_ago(400),
                create("globex", "Globex Corporation", "premium-saas-annual", 4,
                       globex_term, false, "globex.example")),
      b.command("seatledger.subscription.create", b.days_ago(120),
                create("acme-enterprise", "ACME Corporation",
                       "ultimate-sm-annual", 6, acme_term, false,
                       "gitlab.acme.example")),
      b.command("seatledger.subscription.create", b.days_ago(60),
                create("initech-trial", "Initech (trial)", "ultimate-trial", 0,
                       trial_term, true, "initech.example"))}});

  // 3. Memberships: who joins and leaves which org, over four months.
  std::vector<std::string> m;
  m.push_back(b.link(b.days_ago(401), "globex-eng", "globex"));
  for (auto u : {"hank", "ivy", "jack"})
    m.push_back(b.member(b.days_ago(399), "globex-eng", u));
  for (const auto& org : {"acme-platform", "acme-mobile", "acme-data"})
    m.push_back(b.link(b.days_ago(121), org, "acme-enterprise"));
  // Shared users: alice is in all three orgs, bob in two; dave is a guest.
  for (auto u : {"alice", "bob", "carol"})
    m.push_back(b.member(b.days_ago(119), "acme-platform", u));
  for (auto u : {"alice", "erin"})
    m.push_back(b.member(b.days_ago(118), "acme-mobile", u));
  m.push_back(b.member(b.days_ago(118), "acme-data", "alice"));
  m.push_back(b.member(b.days_ago(118), "acme-data", "bob"));
  m.push_back(b.member(b.days_ago(118), "acme-data", "dave", false));
  m.push_back(b.member(b.days_ago(90), "acme-mobile", "frank"));
  m.push_back(b.member(b.days_ago(75), "acme-data", "grace"));
  m.push_back(b.member(b.days_ago(74), "acme-platform", "heidi")); // 7 > 6
  m.push_back(b.leave(b.days_ago(60), "acme-platform", "bob")); // still in data
  m.push_back(b.leave(b.days_ago(45), "acme-mobile", "frank"));
  m.push_back(b.member(b.days_ago(20), "acme-mobile", "ivan"));
  m.push_back(b.member(b.days_ago(10), "acme-mobile", "judy")); // 8 > 6
  m.push_back(b.link(b.days_ago(59), "initech-dev", "initech-trial"));
  for (auto u : {"mallory", "niaj", "olivia"})
    m.push_back(b.member(b.days_ago(58), "initech-dev", u));
  m.push_back(b.member(b.days_ago(100), "globex-eng", "kim"));
  m.push_back(b.leave(b.days_ago(50), "globex-eng", "ivy"));
  m.push_back(b.member(b.days_ago(5), "globex-eng", "liam"));
  // A record that is not a CloudEvent, and one with an id out of range:
  // both go to the dead-letter topic.
  m.push_back("this is not JSON");
  m.push_back(
    R"({"specversion":"1.0","id":"bad-1","source":"seatledger-sample","type":"seatledger.member.added","time":"2026-01-01T00:00:00Z","data":{"org_id":"acme platform","user_id":"x"}})");
  phases.push_back({"3-membership.jsonl", membership, m});

  // 4. Later commands: Globex renews (its old term ended 35 days ago), ACME
  // buys more seats, the trial is archived; and one command that breaks a
  // rule (a new domain while a license is valid) is rejected.
  renew_subscription renew{
    "globex", {b.days_ago(35), b.days_ago(35 - 365)}, 5, {}};
  update_metadata move{"acme-enterprise",
                       {},
                       {},
                       instance_patch{std::string{"new.acme.example"}, {}},
                       {},
                       {}};
  phases.push_back(
    {"4-subscriptions.jsonl",
     subscriptions,
     {b.command("seatledger.subscription.renew", b.days_ago(34), renew),
      b.command("seatledger.subscription.update_entitlements", b.days_ago(9),
                update_entitlements{"acme-enterprise", 8, {}, {}}),
      b.command("seatledger.subscription.update_metadata", b.days_ago(8), move),
      b.command("seatledger.subscription.archive", b.days_ago(29),
                archive_subscription{"initech-trial", "trial ended"})}});
  return phases;
}

int run_sample(const std::string& out_dir, bool create_parents,
               const actors::topic_names& topics) {
  namespace fs = std::filesystem;
  if (!make_output_dir(out_dir, create_parents))
    return 2;
  auto now = timestamp::from_micros(
    std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch())
      .count());
  for (const auto& phase : make_sample(now, topics)) {
    auto path = fs::path{out_dir} / phase.name;
    std::ofstream out{path};
    for (const auto& line : phase.lines)
      out << line << "\n";
    if (!out) {
      std::cerr << "cannot write " << path.string() << "\n";
      return 1;
    }
    std::cout << phase.topic << " " << path.string() << "\n";
  }
  return 0;
}

} // namespace seatledger::app
