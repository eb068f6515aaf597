#pragma once

// Helpers shared by the unit tests: short constructors for times, events and
// an in-memory wiring of the domain rules (org stage → deltas → subscription
// stage) without any I/O.

#include <gtest/gtest.h>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "domain/org.hpp"
#include "domain/subscription.hpp"

namespace seatledger::test {

inline domain::timestamp at(const std::string& text) {
  auto t = domain::parse_rfc3339(text);
  EXPECT_TRUE(t) << "bad test time " << text;
  return t.value_or(domain::timestamp{});
}

inline domain::event_ref ref(const std::string& id, const std::string& time,
                             const std::string& type = "test") {
  return {"test", id, type, at(time)};
}

/// A catalog backed by a map.
class map_catalog : public domain::plan_catalog {
public:
  std::map<std::string, domain::plan_entitlements> plans;

  std::optional<domain::plan_entitlements>
  find_plan(const std::string& plan_id) const override {
    auto it = plans.find(plan_id);
    if (it == plans.end())
      return std::nullopt;
    return it->second;
  }
};

inline map_catalog default_catalog() {
  map_catalog catalog;
  catalog.plans["ultimate-annual"] = {"Ultimate", {"sso", "audit_events"}};
  catalog.plans["premium-annual"] = {"Premium", {"sso"}};
  catalog.plans["free"] = {"Free", {}};
  return catalog;
}

inline domain::create_subscription
create_cmd(const std::string& id, std::int64_t seats, const std::string& start,
           const std::string& end, bool trial = false,
           const std::string& plan = "ultimate-annual") {
  domain::create_subscription c;
  c.subscription_id = id;
  c.display_name = "Customer " + id;
  c.customer.salesforce_account_id = "0015000000abcde";
  c.customer.salesforce_subscription_id = "a1x5000000xyz";
  c.instance.domain = id + ".example.com";
  c.instance.type = domain::instance_type::primary;
  c.plan_id = plan;
  c.seats = seats;
  c.term = {at(start), at(end)};
  c.trial = trial;
  return c;
}

/// Routes membership events through org states and the resulting deltas
/// into subscriptions, the way the two stages do, but synchronously.
/// A subscription record but for its counts (seats in use, the ledger's
/// head, the statistics, the clock) and its terms (stored apart).
inline auto descriptive_fields(const domain::subscription_record& r) {
  return std::make_tuple(r.subscription_id, r.status, r.display_name,
                         r.customer, r.instance, r.plan_id, r.seats, r.term,
                         r.trial, r.features, r.rate_limit_overrides,
                         r.analytics_access, r.archive_reason, r.created_by);
}

class domain_harness {
public:
  map_catalog catalog = default_catalog();
  std::map<std::string, domain::org_state> orgs;
  std::map<std::string, domain::subscription> subscriptions;
  /// Every effect applied to each subscription, in order.
  std::map<std::string, std::vector<domain::subscription_effects>> effects;
  /// Every ledger entry of each subscription, in order.
  std::map<std::string, std::vector<domain::ledger_entry>> ledgers;

  void record(const std::string& id, const domain::subscription_effects& fx) {
    effects[id].push_back(fx);
    auto& l = ledgers[id];
    l.insert(l.end(), fx.entries.begin(), fx.entries.end());
  }

  domain::subscription& sub(const std::string& id) {
    auto it = subscriptions.find(id);
    if (it == subscriptions.end())
      it = subscriptions.emplace(id, domain::subscription{id}).first;
    return it->second;
  }

  domain::org_state& org(const std::string& id) {
    auto it = orgs.find(id);
    if (it == orgs.end())
      it = orgs.emplace(id, domain::org_state{id}).first;
    return it->second;
  }

  domain::org_effects
  membership(const domain::event_ref& r, domain::membership_change change,
             std::size_t max_delta_changes
             = domain::org_state::default_max_delta_changes) {
    domain::membership_event event{r, std::move(change)};
    auto out
      = org(domain::org_id_of(event.change)).apply(event, max_delta_changes);
    for (const auto& delta : out.deltas) {
      auto& s = sub(delta.subscription_id);
      auto before = descriptive_fields(s.record());
      record(delta.subscription_id, s.apply(delta));
      // The storage writes only the counts of a subscription whose records
      // in a batch were all seat deltas.
      EXPECT_TRUE(before == descriptive_fields(s.record()))
        << "a seat delta changed more than the counts of "
        << delta.subscription_id;
    }
    return out;
  }

  domain::subscription_effects command(const domain::event_ref& r,
                                       domain::subscription_command cmd) {
    domain::command_event event{r, std::move(cmd)};
    const auto& id = domain::subscription_id_of(event.command);
    auto out = sub(id).apply(event, catalog);
    record(id, out);
    return out;
  }

  /// The wall clock passing month ends of an idle subscription.
  domain::subscription_effects close_months(const std::string& id,
                                            domain::timestamp upto) {
    auto out = sub(id).close_months(upto);
    record(id, out);
    return out;
  }

  /// All ledger entries of a subscription so far.
  const std::vector<domain::ledger_entry>& ledger(const std::string& id) {
    return ledgers[id];
  }

  /// All output events of a subscription so far.
  std::vector<domain::output_event> events(const std::string& id) const {
    std::vector<domain::output_event> result;
    auto it = effects.find(id);
    if (it == effects.end())
      return result;
    for (const auto& e : it->second)
      result.insert(result.end(), e.events.begin(), e.events.end());
    return result;
  }

  template<class T>
  std::vector<T> events_of(const std::string& id) const {
    std::vector<T> result;
    for (const auto& e : events(id))
      if (auto* x = std::get_if<T>(&e.payload))
        result.push_back(*x);
    return result;
  }
};

} // namespace seatledger::test
