#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "domain/commands.hpp"

namespace seatledger::domain {

/// A membership row as it changes: `billable` empty means the member left.
struct member_change {
  std::string user_id;
  std::optional<bool> billable;
  /// Billability before this change; empty when the user was not a member.
  /// Storage writes new members without a conflict check on the strength
  /// of it.
  std::optional<bool> previous;
};

/// Everything one membership event changes, for storage and for the
/// subscription stage.
struct org_effects {
  std::vector<member_change> member_changes; // sorted by user_id
  /// Set when the link changed: the subscription the org now counts against,
  /// or an empty optional when it was unlinked.
  std::optional<std::optional<std::string>> new_link;
  std::vector<seat_delta> deltas;

  bool empty() const {
    return member_changes.empty() && !new_link && deltas.empty();
  }
};

/// One organization: its members and the subscription it is linked to. The
/// org stage owns it; it emits seat deltas for the linked subscription.
class org_state {
public:
  /// Largest number of contributions in one delta record; larger changes are
  /// split into parts (a Kafka record stays well below its size limit).
  static constexpr std::size_t default_max_delta_changes = 2000;

  explicit org_state(std::string org_id) : org_id_(std::move(org_id)) {}

  /// user_id -> billable. Hashed: an event looks up one member of what can
  /// be thousands, and a tree's string comparisons along the path (a cache
  /// miss each) were the org stage's largest cost in small batches. Nothing
  /// depends on its order: what is emitted from it is sorted first.
  using member_map = std::unordered_map<std::string, bool>;

  org_state(std::string org_id, std::optional<std::string> subscription_id,
            const std::map<std::string, bool>& members, std::int64_t delta_seq)
      : org_id_(std::move(org_id)),
        subscription_id_(std::move(subscription_id)),
        members_(members.begin(), members.end()), delta_seq_(delta_seq) {}

  /// Applies one membership event (its org must be this org).
  org_effects apply(const membership_event& event,
                    std::size_t max_delta_changes = default_max_delta_changes);

  const std::string& org_id() const {
    return org_id_;
  }

  const std::optional<std::string>& subscription_id() const {
    return subscription_id_;
  }

  const member_map& members() const {
    return members_;
  }

  std::size_t billable_count() const;

  /// The `org_seq` of the last delta emitted.
  std::int64_t delta_seq() const {
    return delta_seq_;
  }

private:
  void set_member(const std::string& user_id, std::optional<bool> billable,
                  std::vector<member_change>& changes,
                  std::vector<seat_contribution>& contributions);

  std::vector<seat_contribution> all_billable(bool billable) const;

  void emit(org_effects& effects, const std::string& subscription_id,
            bool linked, std::vector<seat_contribution> contributions,
            const event_ref& cause, std::size_t max_delta_changes,
            bool even_if_empty);

  std::string org_id_;
  std::optional<std::string> subscription_id_;
  member_map members_;
  std::int64_t delta_seq_ = 0;
};

} // namespace seatledger::domain
