#include "scenario.hpp"

#include <map>
#include <random>
#include <set>

#include "domain/commands.hpp"
#include "messages/encode.hpp"

namespace seatledger::test {

namespace {

using namespace domain;

class generator {
public:
  explicit generator(const scenario_options& o) : o_(o), rng_(o.seed) {
    clock_ = *parse_rfc3339("2026-01-01T00:00:00Z");
  }

  event_ref next(const char* type) {
    // Forward in time, 5..120 minutes apart: several months in all.
    clock_ = timestamp::from_micros(clock_.micros()
                                    + (5 + pick(116)) * 60'000'000LL);
    return {"scenario", "ev-" + std::to_string(++counter_), type, clock_};
  }

  int pick(int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(rng_);
  }

  timestamp now() const {
    return clock_;
  }

  const scenario_options& o_;
  std::mt19937_64 rng_;
  timestamp clock_;
  int counter_ = 0;
};

outgoing membership(generator& g, const char* type, membership_change c) {
  membership_event e{g.next(type), std::move(c)};
  return {org_id_of(e.change), messages::encode_membership_event(e)};
}

outgoing command(generator& g, const char* type, subscription_command c) {
  command_event e{g.next(type), std::move(c)};
  return {subscription_id_of(e.command), messages::encode_command_event(e)};
}

} // namespace

scenario make_scenario(const scenario_options& o) {
  generator g{o};
  scenario s;
  // Orgs of one subscription share a membership partition, so the deltas
  // they send it are committed, and so published, in record order.
  std::map<std::string, std::vector<std::string>> orgs_of;
  std::vector<std::string> all_orgs;
  for (int i = 0; i < o.subscriptions; ++i) {
    auto sub = "sub-" + std::to_string(i);
    s.subscription_ids.push_back(sub);
    auto target = i % o.partitions;
    for (int n = 0;
         static_cast<int>(orgs_of[sub].size()) < o.orgs_per_subscription; ++n) {
      auto org = "org-" + std::to_string(i) + "-" + std::to_string(n);
      if (kafka::partition_for_key(org, o.partitions) == target) {
        orgs_of[sub].push_back(org);
        all_orgs.push_back(org);
      }
    }
  }
  auto user = [&] { return "user-" + std::to_string(g.pick(o.users)); };

  // 1. Catalog.
  scenario_phase catalog{"seatledger.catalog.v1", {}, 0, 0};
  for (auto [id, tier] : {std::pair{"plan-ultimate", "Ultimate"},
                          std::pair{"plan-premium", "Premium"},
                          std::pair{"plan-trial", "Ultimate"}}) {
    rate_plan_upserted up;
    up.product = {"product", "Product"};
    up.rate_plan = {
      id, id,
      R"({"CDotAccessible__c":true,"CDotActions__c":["initial_purchase"],"CDotPlanStatus__c":"active","Features__c":["sso"]})"};
    up.charges.push_back(
      {std::string{id} + "-seat", "seat", "annual",
       std::string{R"({"CDotPlanType__c":"base_product","ChargeTier__c":")"}
         + tier + R"(","ChargeDeployment__c":"Self-Managed"})"});
    catalog_event e{g.next("seatledger.catalog.rate_plan.upserted"),
                    std::move(up)};
    catalog.records.push_back({id, messages::encode_catalog_event(e)});
    ++catalog.upstream;
  }
  s.phases.push_back(std::move(catalog));

  // 2. Creates (one trial), a command for an unknown subscription, and one
  // event delivered twice.
  scenario_phase creates{"seatledger.subscriptions.v1", {}, 0, 0};
  for (int i = 0; i < o.subscriptions; ++i) {
    create_subscription c;
    c.subscription_id = s.subscription_ids[i];
    c.display_name = "Customer " + std::to_string(i);
    c.customer = {"0015000000X" + std::to_string(i), std::nullopt};
    c.instance = {"sub" + std::to_string(i) + ".example.com",
                  instance_type::primary};
    c.plan_id = i == 0 ? "plan-trial"
                       : (i % 2 ? "plan-ultimate" : "plan-premium");
    c.trial = i == 0;
    c.seats = 3 + i;
    c.term = {g.now(), timestamp::from_micros(g.now().micros()
                                              + 365LL * 86'400'000'000LL)};
    creates.records.push_back(
      command(g, "seatledger.subscription.create", std::move(c)));
    ++creates.upstream;
  }
  creates.records.push_back(creates.records.back()); // a producer retry
  creates.records.push_back(command(g, "seatledger.subscription.expire",
                                    expire_subscription{"sub-missing"}));
  ++creates.upstream;
  s.phases.push_back(std::move(creates));

  auto membership_phase = [&](bool with_links) {
    scenario_phase phase{"seatledger.membership.v1", {}, 0, 0};
    if (with_links)
      for (const auto& [sub, orgs] : orgs_of)
        for (const auto& org : orgs) {
          phase.records.push_back(
            membership(g, "seatledger.org.linked", org_linked{org, sub}));
          ++phase.upstream;
        }
    for (int k = 0; k < o.membership_events_per_phase; ++k) {
      const auto& org = all_orgs[static_cast<size_t>(
        g.pick(static_cast<int>(all_orgs.size())))];
      auto choice = g.pick(100);
      if (choice < 55)
        phase.records.push_back(
          membership(g, "seatledger.member.added",
                     member_added{org, user(), g.pick(6) != 0, std::nullopt}));
      else if (choice < 65)
        phase.records.push_back(membership(
          g, "seatledger.member.updated",
          member_updated{org, user(), g.pick(2) == 0, std::string{"guest"}}));
      else if (choice < 97)
        phase.records.push_back(membership(g, "seatledger.member.removed",
                                           member_removed{org, user()}));
      else {
        org_snapshot snap{org, {}};
        std::set<std::string> seen;
        for (int m = 0; m < 15; ++m) {
          auto u = user();
          if (seen.insert(u).second)
            snap.members.push_back({u, g.pick(5) != 0});
        }
        phase.records.push_back(
          membership(g, "seatledger.org.snapshot", std::move(snap)));
      }
      ++phase.upstream;
      if (o.poison_per_phase > 0
          && k % (o.membership_events_per_phase / o.poison_per_phase + 1)
               == 3) {
        phase.records.push_back({org, "{\"specversion\":\"1.0\",\"broken"});
        ++phase.poison;
      }
    }
    return phase;
  };
  s.phases.push_back(membership_phase(true));

  // 4. Mid-term commands: a renewal, more seats, an explicit license, a
  // domain change that the license locks (rejected), the trial converted.
  scenario_phase commands{"seatledger.subscriptions.v1", {}, 0, 0};
  auto later = [&](int days) {
    return timestamp::from_micros(g.now().micros() + days * 86'400'000'000LL);
  };
  commands.records.push_back(
    command(g, "seatledger.subscription.convert_trial",
            convert_trial{"sub-0", "plan-ultimate", 2, {g.now(), later(365)}}));
  if (o.subscriptions > 1)
    commands.records.push_back(
      command(g, "seatledger.subscription.update_entitlements",
              update_entitlements{"sub-1", 1, std::nullopt, std::nullopt}));
  if (o.subscriptions > 2)
    commands.records.push_back(
      command(g, "seatledger.license.issue",
              issue_license{"sub-2", std::nullopt, std::nullopt}));
  if (o.subscriptions > 3)
    commands.records.push_back(command(
      g, "seatledger.subscription.update_metadata",
      update_metadata{"sub-3", std::nullopt, std::nullopt,
                      instance_patch{std::string{"moved.example.com"}, {}},
                      std::nullopt, std::nullopt}));
  commands.upstream = static_cast<std::int64_t>(commands.records.size());
  s.phases.push_back(std::move(commands));

  s.phases.push_back(membership_phase(false));

  // 6. The end of some terms: a renewal, an archive, an expiry.
  scenario_phase endings{"seatledger.subscriptions.v1", {}, 0, 0};
  if (o.subscriptions > 1)
    endings.records.push_back(command(g, "seatledger.subscription.archive",
                                      archive_subscription{"sub-1", "churn"}));
  if (o.subscriptions > 2)
    endings.records.push_back(command(g, "seatledger.subscription.expire",
                                      expire_subscription{"sub-2"}));
  if (o.subscriptions > 3)
    endings.records.push_back(
      command(g, "seatledger.subscription.renew",
              renew_subscription{"sub-3", {g.now(), later(400)}, 9, {}}));
  endings.upstream = static_cast<std::int64_t>(endings.records.size());
  s.phases.push_back(std::move(endings));

  for (const auto& p : s.phases) {
    s.upstream += p.upstream;
    s.poison += p.poison;
  }
  return s;
}

} // namespace seatledger::test
