#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "domain/commands.hpp"
#include "domain/errors.hpp"
#include "domain/ledger.hpp"
#include "domain/usage.hpp"

namespace seatledger::domain {

enum class subscription_status {
  none, // the seat pool exists, `create` has not arrived
  trial,
  active,
  expired,
  archived,
};

const char* to_string(subscription_status status);

std::optional<subscription_status>
parse_subscription_status(std::string_view text);

// -- catalog view -------------------------------------------------------------

/// What a license takes from the catalog entry of its plan.
struct plan_entitlements {
  /// `ChargeTier__c` of the plan's `base_product` charge; none when the plan
  /// has no such charge or the field is null or absent.
  std::optional<std::string> tier;
  std::vector<std::string> features;
};

/// The catalog as the subscription rules see it (implemented over the synced
/// catalog tables; a map in tests).
class plan_catalog {
public:
  virtual ~plan_catalog();
  virtual std::optional<plan_entitlements>
  find_plan(const std::string& plan_id) const = 0;
};

// -- licenses -----------------------------------------------------------------

/// What a license says: the claims the signer turns into a PASETO token.
struct license_grant {
  std::string license_id;
  std::string subscription_id;
  timestamp issued_at;
  timestamp not_before;
  timestamp expires_at;
  std::int64_t seats = 0;
  std::string plan_id;
  std::optional<std::string> tier;
  std::vector<std::string> features;
  std::string instance_domain;
  domain::instance_type instance_type = instance_type::primary;
  bool trial = false;
  /// `(source, id)` of the command that issued it.
  event_key issued_by;
};

/// What the rules need to remember of an issued license.
struct license_record {
  std::string license_id;
  timestamp expires_at;
  std::string instance_domain;
  std::optional<timestamp> revoked_at;
};

// -- terms --------------------------------------------------------------------

/// A term as monthly usage sees it: months are anchored at `start` and cut at
/// `usage_end` (the purchased end, or earlier when a renewal, expiry or
/// archival ended the term early).
struct term_usage {
  timestamp start;
  timestamp end;
  timestamp usage_end;
  int closed_months = 0;

  friend bool operator==(const term_usage& x, const term_usage& y) {
    return x.start == y.start && x.end == y.end && x.usage_end == y.usage_end
           && x.closed_months == y.closed_months;
  }
};

// -- state --------------------------------------------------------------------

/// The subscription's own fields (one row in storage).
struct subscription_record {
  std::string subscription_id;
  subscription_status status = subscription_status::none;
  std::string display_name;
  customer_info customer;
  instance_info instance;
  std::string plan_id;
  std::int64_t seats = 0;
  domain::term term;
  bool trial = false;
  std::vector<std::string> features;               // add-ons beyond the plan's
  std::optional<std::string> rate_limit_overrides; // JSON object text
  std::optional<bool> analytics_access;
  std::optional<std::string> archive_reason;
  /// The effective clock: never goes backwards.
  timestamp clock = timestamp::min();
  std::int64_t seats_in_use = 0;
  std::int64_t ledger_seq = 0;
  std::string ledger_hash = genesis_hash;
  std::int64_t max_seats_used = 0;
  std::optional<timestamp> max_seats_used_changed_at;
  std::int64_t seats_owed = 0;
  /// The `create` that made it, so the same event again is a no-op rather
  /// than `subscription_exists`.
  std::optional<event_key> created_by;
  /// Commands applied so far. A command's event ids include the count it
  /// meets: sent again past the de-duplication window, it is applied afresh
  /// and meets a higher count, so its events never reuse the ids of its
  /// first application; applied again to the same state (a batch retried,
  /// a crash, a moved partition) it meets the same count and makes the same
  /// ids.
  std::int64_t commands_applied = 0;
  /// Every term this subscription had, in the order they started, with how
  /// many of their months have closed (so a term renewed with the same start
  /// never closes a month twice).
  std::vector<term_usage> terms;
};

// -- output events ------------------------------------------------------------

struct seats_changed {
  std::int64_t seats_in_use = 0;
  std::int64_t previous_seats_in_use = 0;
  timestamp effective_at;
  std::int64_t ledger_seq = 0;
  std::string org_id;
  std::string user_id;
};

struct overage_detected {
  std::int64_t seats = 0;
  std::int64_t max_seats_used = 0;
  std::int64_t seats_owed = 0;
  std::int64_t previous_seats_owed = 0;
  timestamp term_start;
  timestamp effective_at;
};

struct license_issued {
  license_grant grant;
  /// The signed key; filled in by the signer after the rules decided.
  std::string license_key;
};

struct license_revoked {
  std::string license_id;
  std::string reason;
  timestamp revoked_at;
};

struct license_not_issued {
  std::string command_id;
  std::string reason;
};

enum class lifecycle_kind {
  created,
  renewed,
  entitlements_updated,
  trial_converted,
  expired,
  metadata_updated,
};

/// The event type suffix: "created", "renewed", …
const char* to_string(lifecycle_kind kind);

struct subscription_changed {
  lifecycle_kind kind = lifecycle_kind::created;
  subscription_record state;
  std::vector<std::string> orgs;
};

struct subscription_archived {
  std::string reason;
  std::int64_t licenses_revoked = 0;
};

struct month_closed {
  timestamp term_start;
  int month_index = 0;
  timestamp start;
  timestamp end;
  std::int64_t peak_seats = 0;
  timestamp peak_at;
  std::optional<std::int64_t> peak_seq;
};

struct command_rejected {
  std::string command_id;
  std::string command_source;
  std::string command_type;
  rejection_code reason = rejection_code::unknown_subscription;
  std::string message;
};

using output_payload
  = std::variant<seats_changed, overage_detected, license_issued,
                 license_revoked, license_not_issued, subscription_changed,
                 subscription_archived, month_closed, command_rejected>;

/// An event for `seatledger.events.v1`. Its `id` is fixed here, derived from
/// what caused it, so a re-publication after a crash carries the same id.
struct output_event {
  std::string id;
  std::string subscription_id;
  timestamp time;
  output_payload payload;
};

/// The CloudEvents `type` of an output event, e.g. "seatledger.seats.changed".
std::string output_type(const output_payload& payload);

// -- effects ------------------------------------------------------------------

/// One org's contribution to one seat holder, as it changes.
struct holder_change {
  std::string user_id;
  std::string org_id;
  bool added = false;
};

/// Everything one applied record changed, for storage and publication. All
/// of it commits in one transaction with the consumer position.
struct subscription_effects {
  std::vector<ledger_entry> entries;
  std::vector<holder_change> holder_changes;
  /// Org ids linked (true) or unlinked (false).
  std::vector<std::pair<std::string, bool>> org_changes;
  /// The org whose delta was applied and its `org_seq`.
  std::optional<std::pair<std::string, std::int64_t>> org_delta_seq;
  std::vector<output_event> events;
  std::vector<license_grant> grants;
  /// License ids revoked, with the time.
  std::vector<std::pair<std::string, timestamp>> revocations;
  /// Terms created or changed (upserted by start).
  std::vector<term_usage> term_changes;
  bool state_changed = false;
  std::optional<rejection> rejected;
};

/// One subscription: its seat pool (distinct billable users across linked
/// orgs), append-only hash-chained ledger, lifecycle, term statistics and
/// licenses. Applies seat deltas and commands one at a time, in order.
class subscription {
public:
  /// How far back the in-memory ledger window reaches at least, so a term
  /// that starts in the past can still compute its months.
  static constexpr std::int64_t lookback_days = 400;

  explicit subscription(std::string subscription_id);

  /// Restores a subscription from storage.
  subscription(subscription_record record,
               std::map<std::string, std::set<std::string>> holders,
               std::set<std::string> orgs,
               std::map<std::string, std::int64_t> org_delta_seqs,
               ledger_window window, std::vector<license_record> licenses,
               std::map<std::string, std::int64_t> owed_before_parts = {});

  /// Applies one delta from the org stage. A delta whose `org_seq` is not
  /// newer than the last one applied for its org is a re-publication and
  /// changes nothing. The parts of a delta split in several are one applied
  /// record: `overage.detected` comes with the last part, if at all.
  subscription_effects apply(const seat_delta& delta);

  /// Applies one command; a rule it breaks gives `rejected` and a
  /// `command.rejected` event, and changes nothing else.
  subscription_effects apply(const command_event& command,
                             const plan_catalog& catalog);

  /// Closes every month of an open term that ended at or before `upto`
  /// (called when the wall clock passes a month end without any record
  /// arriving). Advances the clock to the last closed month's end.
  subscription_effects close_months(timestamp upto);

  /// The end of the earliest month still open, if any.
  std::optional<timestamp> next_month_end() const;

  /// Keeps the window from where it answers now until `release_window`,
  /// after putting `earlier` (this subscription's ledger read from an
  /// earlier instant) in front of it, if given: a command that starts a
  /// term in the past closes that term's months from the window, and the
  /// records applied before it in the same job would trim it meanwhile.
  void hold_window(const ledger_window* earlier = nullptr);

  /// Lets the window be trimmed to `ledger_window_start` again.
  void release_window();

  const subscription_record& record() const {
    return record_;
  }

  /// user -> the linked orgs through which the user holds a seat. Hashed for
  /// the lookup each delta's change makes (see org_state::member_map);
  /// nothing depends on its order.
  using holder_map = std::unordered_map<std::string, std::set<std::string>>;

  const holder_map& holders() const {
    return holders_;
  }

  const std::set<std::string>& orgs() const {
    return orgs_;
  }

  /// Last `org_seq` applied, per org that ever sent a delta.
  const std::map<std::string, std::int64_t>& org_delta_seqs() const {
    return org_delta_seqs_;
  }

  /// Seats owed before the first part of a delta split in parts whose last
  /// part has not arrived yet, per org (see `apply`).
  const std::map<std::string, std::int64_t>& owed_before_parts() const {
    return owed_before_parts_;
  }

  const ledger_window& window() const {
    return window_;
  }

  const std::vector<license_record>& licenses() const {
    return licenses_;
  }

  /// Whether statistics currently move (a paid or trial term that has not
  /// expired or been archived).
  bool statistics_live() const;

private:
  struct application;

  void begin(application& app, const event_ref& cause, std::string ordinal);
  void finish(application& app);
  void advance_months(application& app, timestamp upto);
  void trim_window();
  friend timestamp ledger_window_start(const subscription_record& record);
  void set_contribution(application& app, const std::string& org_id,
                        const seat_contribution& change);
  void reset_statistics(timestamp at);
  void recompute_owed();
  void start_term(application& app, const term& new_term);
  void end_terms_in_force(application& app, timestamp at);
  void grant_license(application& app, const plan_catalog& catalog,
                     const event_ref& cause,
                     const std::optional<std::vector<std::string>>& features,
                     std::optional<timestamp> expires_at, bool explicit_issue);
  std::optional<rejection> check_lifecycle(const subscription_command& cmd,
                                           timestamp effective) const;
  void push_event(application& app, output_payload payload);
  subscription_effects reject(const command_event& command, rejection error);

  subscription_record record_;
  holder_map holders_;
  std::set<std::string> orgs_;
  std::map<std::string, std::int64_t> org_delta_seqs_;
  std::map<std::string, std::int64_t> owed_before_parts_;
  ledger_window window_;
  /// Where `hold_window` keeps the window from, until released.
  std::optional<timestamp> window_floor_;
  std::vector<license_record> licenses_;
};

/// The earliest instant whose ledger entries `command` may need: the start
/// of the term it starts (`create`, `renew`, `convert_trial`), whose months
/// already past close at once; nothing for the others.
std::optional<timestamp>
ledger_needed_from(const subscription_command& command);

/// Where the in-memory ledger window of a subscription must begin: the start
/// of its earliest month not yet closed, and at least `lookback_days` before
/// its clock. Storage loads the ledger from here on when an actor activates.
timestamp ledger_window_start(const subscription_record& record);

/// The usage record of the subscription's term that starts at `start`, if it
/// has one.
std::optional<term_usage> find_term(const subscription_record& record,
                                    timestamp start);

/// The usage record of the current term. Every created subscription has it
/// among its terms; failing that, the purchased term with no month closed.
term_usage current_term_usage(const subscription_record& record);

/// Seats owed for a term: 0 for a trial or a free (0-seat) term.
std::int64_t seats_owed_for(std::int64_t max_seats_used, std::int64_t seats,
                            bool trial);

} // namespace seatledger::domain
