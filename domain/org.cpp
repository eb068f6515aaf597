#include "domain/org.hpp"

#include <algorithm>
#include <set>

namespace seatledger::domain {

namespace {

template<class... Ts>
struct overloaded : Ts... {
  using Ts::operator()...;
};
template<class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

} // namespace

std::size_t org_state::billable_count() const {
  return static_cast<std::size_t>(
    std::count_if(members_.begin(), members_.end(),
                  [](const auto& kv) { return kv.second; }));
}

void org_state::set_member(const std::string& user_id,
                           std::optional<bool> billable,
                           std::vector<member_change>& changes,
                           std::vector<seat_contribution>& contributions) {
  auto it = members_.find(user_id);
  bool was_billable = it != members_.end() && it->second;
  auto previous = it == members_.end() ? std::nullopt
                                       : std::optional<bool>{it->second};
  if (billable) {
    if (it != members_.end() && it->second == *billable)
      return; // same state again: a no-op, not an error
    members_[user_id] = *billable;
  } else {
    if (it == members_.end())
      return; // removing an absent member is a no-op
    members_.erase(it);
  }
  changes.push_back({user_id, billable, previous});
  bool now_billable = billable.value_or(false);
  if (was_billable != now_billable)
    contributions.push_back({user_id, now_billable});
}

std::vector<seat_contribution> org_state::all_billable(bool billable) const {
  std::vector<seat_contribution> result;
  for (const auto& [user, is_billable] : members_)
    if (is_billable)
      result.push_back({user, billable});
  return result;
}

void org_state::emit(org_effects& effects, const std::string& subscription_id,
                     bool linked, std::vector<seat_contribution> contributions,
                     const event_ref& cause, std::size_t max_delta_changes,
                     bool even_if_empty) {
  if (contributions.empty() && !even_if_empty)
    return;
  // Seats leaving first, then seats arriving, each in user_id order: a
  // snapshot that swaps members passed through counts above both its
  // start and its end (an arrival sorted before a departure), and those
  // phantom counts raised max_seats_used and overage.
  std::sort(contributions.begin(), contributions.end(),
            [](const auto& x, const auto& y) {
              if (x.billable != y.billable)
                return !x.billable;
              return x.user_id < y.user_id;
            });
  max_delta_changes = std::max<std::size_t>(max_delta_changes, 1);
  auto parts = std::max<std::size_t>(
    1, (contributions.size() + max_delta_changes - 1) / max_delta_changes);
  for (std::size_t part = 0; part < parts; ++part) {
    seat_delta delta;
    delta.subscription_id = subscription_id;
    delta.org_id = org_id_;
    delta.org_seq = ++delta_seq_;
    delta.org_linked = linked;
    delta.cause = cause;
    delta.part = static_cast<std::int32_t>(part + 1);
    delta.parts = static_cast<std::int32_t>(parts);
    auto first = part * max_delta_changes;
    auto last = std::min(contributions.size(), first + max_delta_changes);
    delta.changes.assign(contributions.begin() + static_cast<long>(first),
                         contributions.begin() + static_cast<long>(last));
    // With the org's sequence: an event applied afresh after the
    // de-duplication window makes a new delta under a new id.
    delta.delta_id
      = derived_id({"seat-delta", cause.source, cause.id, subscription_id,
                    std::to_string(part + 1), std::to_string(delta.org_seq)});
    effects.deltas.push_back(std::move(delta));
  }
}

org_effects org_state::apply(const membership_event& event,
                             std::size_t max_delta_changes) {
  org_effects effects;
  std::vector<seat_contribution> contributions;
  auto emit_for_link = [&] {
    if (subscription_id_)
      emit(effects, *subscription_id_, true, std::move(contributions),
           event.ref, max_delta_changes, false);
  };
  std::visit(
    overloaded{
      [&](const member_added& x) {
        set_member(x.user_id, x.billable, effects.member_changes,
                   contributions);
        emit_for_link();
      },
      [&](const member_updated& x) {
        set_member(x.user_id, x.billable, effects.member_changes,
                   contributions);
        emit_for_link();
      },
      [&](const member_removed& x) {
        set_member(x.user_id, std::nullopt, effects.member_changes,
                   contributions);
        emit_for_link();
      },
      [&](const org_snapshot& x) {
        std::map<std::string, bool> wanted;
        for (const auto& m : x.members)
          wanted[m.user_id] = m.billable; // the decoder refuses a repeated user
        std::vector<std::string> leaving;
        for (const auto& [user, billable] : members_)
          if (wanted.count(user) == 0)
            leaving.push_back(user);
        for (const auto& user : leaving)
          set_member(user, std::nullopt, effects.member_changes, contributions);
        for (const auto& [user, billable] : wanted)
          set_member(user, billable, effects.member_changes, contributions);
        std::sort(effects.member_changes.begin(), effects.member_changes.end(),
                  [](const auto& a, const auto& b) {
                    return a.user_id < b.user_id;
                  });
        emit_for_link();
      },
      [&](const org_linked& x) {
        if (subscription_id_ == x.subscription_id)
          return; // already counts against it
        if (subscription_id_)
          emit(effects, *subscription_id_, false, all_billable(false),
               event.ref, max_delta_changes, true);
        subscription_id_ = x.subscription_id;
        effects.new_link = subscription_id_;
        // Even an org without billable members is now one of the
        // subscription's orgs.
        emit(effects, x.subscription_id, true, all_billable(true), event.ref,
             max_delta_changes, true);
      },
      [&](const org_unlinked& x) {
        if (subscription_id_ != x.subscription_id)
          return; // stale: names a subscription the org is not linked to
        emit(effects, x.subscription_id, false, all_billable(false), event.ref,
             max_delta_changes, true);
        subscription_id_.reset();
        effects.new_link = std::optional<std::string>{};
      },
    },
    event.change);
  return effects;
}

} // namespace seatledger::domain
