#include "domain/subscription.hpp"

#include <algorithm>
#include <iterator>

namespace seatledger::domain {

namespace {

template<class... Ts>
struct overloaded : Ts... {
  using Ts::operator()...;
};
template<class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

constexpr std::int64_t micros_per_day = 86'400'000'000;

bool term_invalid(const term& t) {
  return t.end <= t.start;
}

bool has_salesforce_account(const customer_info& customer) {
  return customer.salesforce_account_id
         && !customer.salesforce_account_id->empty();
}

/// An id not given keeps `field`; an empty one is no id, kept as absent
/// rather than "".
void apply_external_id(std::optional<std::string>& field,
                       const std::optional<std::string>& given) {
  if (!given)
    return;
  if (given->empty())
    field.reset();
  else
    field = given;
}

std::vector<std::string> sorted_union(std::vector<std::string> xs,
                                      const std::vector<std::string>& ys) {
  xs.insert(xs.end(), ys.begin(), ys.end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  return xs;
}

bool has_open_months(const term_usage& t) {
  return month_bounds(t.start, t.usage_end, t.closed_months + 1).has_value();
}

// End of the last closed month of a term (its start when none closed).
timestamp closed_until(const term_usage& t) {
  if (t.closed_months == 0)
    return t.start;
  return std::min(month_start(t.start, t.closed_months + 1), t.usage_end);
}

// Why `new_term`, applied at `effective`, would change a month that has
// closed by then, if it would: it replaces the term with its start (months
// are named by their term's start), and that term's last closed month was
// cut short (by expire, archive or its own end) before a new end that lies
// beyond the cut. Months that end by `effective` close before the command
// applies, so they count as closed although the sweeper has not seen them.
std::optional<std::string>
closed_month_changed_by(const std::vector<term_usage>& terms,
                        const term& new_term, timestamp effective) {
  for (auto t : terms) {
    if (t.start != new_term.start)
      continue;
    for (;;) {
      auto bounds = month_bounds(t.start, t.usage_end, t.closed_months + 1);
      if (!bounds || bounds->second > effective)
        break;
      ++t.closed_months;
    }
    if (t.closed_months == 0)
      continue;
    auto cut = closed_until(t);
    if (cut < month_start(t.start, t.closed_months + 1) && new_term.end > cut)
      return "month " + std::to_string(t.closed_months)
             + " of the term starting " + format_rfc3339(t.start)
             + " closed at " + format_rfc3339(cut)
             + " and a closed month never changes; a new term with that "
               "start would extend it: start the new term later";
  }
  return std::nullopt;
}

} // namespace

// -- enums --------------------------------------------------------------------

const char* to_string(subscription_status status) {
  switch (status) {
    case subscription_status::none: return "none";
    case subscription_status::trial: return "trial";
    case subscription_status::active: return "active";
    case subscription_status::expired: return "expired";
    case subscription_status::archived: return "archived";
  }
  return "none";
}

std::optional<subscription_status>
parse_subscription_status(std::string_view text) {
  for (auto s : {subscription_status::none, subscription_status::trial,
                 subscription_status::active, subscription_status::expired,
                 subscription_status::archived})
    if (text == to_string(s))
      return s;
  return std::nullopt;
}

const char* to_string(lifecycle_kind kind) {
  switch (kind) {
    case lifecycle_kind::created: return "created";
    case lifecycle_kind::renewed: return "renewed";
    case lifecycle_kind::entitlements_updated: return "entitlements_updated";
    case lifecycle_kind::trial_converted: return "trial_converted";
    case lifecycle_kind::expired: return "expired";
    case lifecycle_kind::metadata_updated: return "metadata_updated";
  }
  return "created";
}

std::string output_type(const output_payload& payload) {
  return std::visit(overloaded{
                      [](const seats_changed&) -> std::string {
                        return "seatledger.seats.changed";
                      },
                      [](const overage_detected&) -> std::string {
                        return "seatledger.overage.detected";
                      },
                      [](const license_issued&) -> std::string {
                        return "seatledger.license.issued";
                      },
                      [](const license_revoked&) -> std::string {
                        return "seatledger.license.revoked";
                      },
                      [](const license_not_issued&) -> std::string {
                        return "seatledger.license.not_issued";
                      },
                      [](const subscription_changed& x) -> std::string {
                        return std::string{"seatledger.subscription."}
                               + to_string(x.kind);
                      },
                      [](const subscription_archived&) -> std::string {
                        return "seatledger.subscription.archived";
                      },
                      [](const month_closed&) -> std::string {
                        return "seatledger.usage.month_closed";
                      },
                      [](const command_rejected&) -> std::string {
                        return "seatledger.command.rejected";
                      },
                    },
                    payload);
}

plan_catalog::~plan_catalog() = default;

std::int64_t seats_owed_for(std::int64_t max_seats_used, std::int64_t seats,
                            bool trial) {
  if (trial || seats == 0)
    return 0;
  return std::max<std::int64_t>(0, max_seats_used - seats);
}

// -- subscription -------------------------------------------------------------

struct subscription::application {
  subscription_effects effects;
  event_ref cause;
  std::string ordinal_prefix;
  int next_ordinal = 0;
  timestamp t;
  std::int64_t owed_before = 0;
  /// A part of a delta split in several, not the last: its record's
  /// overage, if any, is published with the last part.
  bool overage_deferred = false;
};

subscription::subscription(std::string subscription_id) {
  record_.subscription_id = std::move(subscription_id);
}

subscription::subscription(
  subscription_record record,
  std::map<std::string, std::set<std::string>> holders,
  std::set<std::string> orgs,
  std::map<std::string, std::int64_t> org_delta_seqs, ledger_window window,
  std::vector<license_record> licenses,
  std::map<std::string, std::int64_t> owed_before_parts)
    : record_(std::move(record)),
      holders_(std::make_move_iterator(holders.begin()),
               std::make_move_iterator(holders.end())),
      orgs_(std::move(orgs)), org_delta_seqs_(std::move(org_delta_seqs)),
      owed_before_parts_(std::move(owed_before_parts)),
      window_(std::move(window)), licenses_(std::move(licenses)) {}

bool subscription::statistics_live() const {
  return record_.status == subscription_status::trial
         || record_.status == subscription_status::active;
}

std::optional<timestamp> subscription::next_month_end() const {
  std::optional<timestamp> result;
  for (const auto& t : record_.terms) {
    auto bounds = month_bounds(t.start, t.usage_end, t.closed_months + 1);
    if (bounds && (!result || bounds->second < *result))
      result = bounds->second;
  }
  return result;
}

void subscription::push_event(application& app, output_payload payload) {
  output_event event;
  event.id = derived_id({"event", app.cause.source, app.cause.id,
                         record_.subscription_id, app.ordinal_prefix,
                         std::to_string(app.next_ordinal++)});
  event.subscription_id = record_.subscription_id;
  event.time = app.t;
  event.payload = std::move(payload);
  app.effects.events.push_back(std::move(event));
}

void subscription::begin(application& app, const event_ref& cause,
                         std::string ordinal) {
  app.cause = cause;
  app.ordinal_prefix = std::move(ordinal);
  app.t = later_of(cause.time, record_.clock);
  // Months that ended by now close before the record applies: an entry
  // exactly at a month's start belongs to that month.
  advance_months(app, app.t);
  record_.clock = app.t;
  app.owed_before = record_.seats_owed;
  app.effects.state_changed = true;
}

void subscription::finish(application& app) {
  if (!app.overage_deferred && statistics_live()
      && record_.seats_owed > app.owed_before) {
    overage_detected overage;
    overage.seats = record_.seats;
    overage.max_seats_used = record_.max_seats_used;
    overage.seats_owed = record_.seats_owed;
    overage.previous_seats_owed = app.owed_before;
    overage.term_start = record_.term.start;
    overage.effective_at = app.t;
    push_event(app, overage);
  }
  // A term that started in the past closes its past months at once.
  advance_months(app, app.t);
  trim_window();
  // Keep the last version of each changed term.
  auto& changes = app.effects.term_changes;
  std::vector<term_usage> last;
  for (auto it = changes.rbegin(); it != changes.rend(); ++it)
    if (std::none_of(last.begin(), last.end(),
                     [&](const term_usage& x) { return x.start == it->start; }))
      last.push_back(*it);
  std::reverse(last.begin(), last.end());
  changes = std::move(last);
}

void subscription::advance_months(application& app, timestamp upto) {
  for (auto& t : record_.terms) {
    bool changed = false;
    for (;;) {
      auto n = t.closed_months + 1;
      auto bounds = month_bounds(t.start, t.usage_end, n);
      if (!bounds || bounds->second > upto)
        break;
      auto usage = month_peak(window_, n, bounds->first, bounds->second);
      month_closed closed;
      closed.term_start = t.start;
      closed.month_index = n;
      closed.start = bounds->first;
      closed.end = bounds->second;
      closed.peak_seats = usage.peak_seats;
      closed.peak_at = usage.peak_at;
      closed.peak_seq = usage.peak_seq;
      output_event event;
      event.id
        = derived_id({"month-closed", record_.subscription_id,
                      std::to_string(t.start.micros()), std::to_string(n)});
      event.subscription_id = record_.subscription_id;
      event.time = bounds->second;
      event.payload = closed;
      app.effects.events.push_back(std::move(event));
      t.closed_months = n;
      changed = true;
    }
    if (changed)
      app.effects.term_changes.push_back(t);
  }
}

std::optional<term_usage> find_term(const subscription_record& record,
                                    timestamp start) {
  for (const auto& t : record.terms)
    if (t.start == start)
      return t;
  return std::nullopt;
}

term_usage current_term_usage(const subscription_record& record) {
  return find_term(record, record.term.start)
    .value_or(
      term_usage{record.term.start, record.term.end, record.term.end, 0});
}

timestamp ledger_window_start(const subscription_record& record) {
  if (record.clock == timestamp::min())
    return timestamp::min();
  auto cutoff = timestamp::from_micros(
    record.clock.micros() - subscription::lookback_days * micros_per_day);
  for (const auto& t : record.terms)
    if (has_open_months(t))
      cutoff = std::min(cutoff, month_start(t.start, t.closed_months + 1));
  return cutoff;
}

void subscription::trim_window() {
  if (record_.clock == timestamp::min())
    return;
  auto from = ledger_window_start(record_);
  if (window_floor_)
    from = std::min(from, *window_floor_);
  window_.trim_before(from);
}

void subscription::hold_window(const ledger_window* earlier) {
  if (earlier)
    window_.extend_back(*earlier);
  window_floor_ = window_.exact_from;
}

void subscription::release_window() {
  if (!window_floor_)
    return;
  window_floor_.reset();
  trim_window();
}

std::optional<timestamp>
ledger_needed_from(const subscription_command& command) {
  if (auto* x = std::get_if<create_subscription>(&command))
    return x->term.start;
  if (auto* x = std::get_if<renew_subscription>(&command))
    return x->term.start;
  if (auto* x = std::get_if<convert_trial>(&command))
    return x->term.start;
  return std::nullopt;
}

void subscription::set_contribution(application& app, const std::string& org_id,
                                    const seat_contribution& change) {
  auto it = holders_.find(change.user_id);
  bool held_before = it != holders_.end();
  if (change.billable) {
    if (held_before && it->second.count(org_id) > 0)
      return;
    holders_[change.user_id].insert(org_id);
  } else {
    if (!held_before || it->second.erase(org_id) == 0)
      return;
    if (it->second.empty())
      holders_.erase(it);
  }
  app.effects.holder_changes.push_back(
    {change.user_id, org_id, change.billable});
  bool held_after = holders_.count(change.user_id) > 0;
  if (held_before == held_after)
    return; // still held through another linked org (or still not held)
  auto previous = record_.seats_in_use;
  record_.seats_in_use += held_after ? 1 : -1;
  ledger_entry entry;
  entry.subscription_id = record_.subscription_id;
  entry.seq = ++record_.ledger_seq;
  entry.seats_in_use = record_.seats_in_use;
  entry.effective_at = app.t;
  entry.cause = app.cause;
  entry.org_id = org_id;
  entry.user_id = change.user_id;
  entry.prev_hash = record_.ledger_hash;
  entry.hash = compute_entry_hash(entry);
  record_.ledger_hash = entry.hash;
  window_.points.push_back({entry.seq, entry.seats_in_use, entry.effective_at});
  if (statistics_live() && record_.seats_in_use > record_.max_seats_used) {
    record_.max_seats_used = record_.seats_in_use;
    record_.max_seats_used_changed_at = app.t;
    recompute_owed();
  }
  seats_changed changed;
  changed.seats_in_use = entry.seats_in_use;
  changed.previous_seats_in_use = previous;
  changed.effective_at = app.t;
  changed.ledger_seq = entry.seq;
  changed.org_id = org_id;
  changed.user_id = change.user_id;
  app.effects.entries.push_back(std::move(entry));
  push_event(app, std::move(changed));
}

void subscription::reset_statistics(timestamp at) {
  record_.max_seats_used = record_.seats_in_use;
  record_.max_seats_used_changed_at = at;
  recompute_owed();
}

void subscription::recompute_owed() {
  record_.seats_owed = seats_owed_for(record_.max_seats_used, record_.seats,
                                      record_.trial);
}

void subscription::start_term(application& app, const term& new_term) {
  bool replaced = false;
  for (auto& t : record_.terms) {
    if (t.start == new_term.start) {
      t.end = new_term.end;
      t.usage_end = std::max(new_term.end, closed_until(t));
      replaced = true;
    } else if (has_open_months(t)) {
      // The new term supersedes the old one from its start on.
      t.usage_end = std::min(t.usage_end,
                             later_of(new_term.start, closed_until(t)));
    } else {
      continue;
    }
    app.effects.term_changes.push_back(t);
  }
  if (!replaced) {
    term_usage t{new_term.start, new_term.end, new_term.end, 0};
    record_.terms.push_back(t);
    app.effects.term_changes.push_back(t);
  }
  record_.term = new_term;
}

void subscription::end_terms_in_force(application& app, timestamp at) {
  // Not only the current term: after a renewal announced in advance the old
  // term still runs until the new one starts, and its months went on taking
  // seats after an archive. A term that has not started yet ends with no
  // month at all.
  for (auto& t : record_.terms) {
    if (!has_open_months(t))
      continue;
    t.usage_end = std::min(t.usage_end, later_of(at, closed_until(t)));
    app.effects.term_changes.push_back(t);
  }
}

void subscription::grant_license(
  application& app, const plan_catalog& catalog, const event_ref& cause,
  const std::optional<std::vector<std::string>>& features,
  std::optional<timestamp> expires_at, bool explicit_issue) {
  auto plan = catalog.find_plan(record_.plan_id);
  if (!plan) {
    // An explicit `license.issue` for such a plan was rejected before.
    if (!explicit_issue)
      push_event(app, license_not_issued{cause.id, "unknown_plan"});
    return;
  }
  license_grant grant;
  grant.license_id
    = derived_id({"license", cause.source, cause.id, record_.subscription_id});
  // The command was applied before and its (source, id) has left the
  // de-duplication window since: applied afresh, it would issue the same
  // license again, which exists, immutable. Its license stands; a second
  // insert would fail every commit of the batch for ever.
  if (std::any_of(licenses_.begin(), licenses_.end(),
                  [&](const license_record& l) {
                    return l.license_id == grant.license_id;
                  }))
    return;
  grant.subscription_id = record_.subscription_id;
  grant.issued_at = app.t;
  grant.not_before = record_.term.start;
  grant.expires_at = expires_at.value_or(record_.term.end);
  grant.seats = record_.seats;
  grant.plan_id = record_.plan_id;
  grant.tier = plan->tier;
  grant.features = sorted_union(plan->features,
                                features.value_or(record_.features));
  grant.instance_domain = record_.instance.domain;
  grant.instance_type = record_.instance.type;
  grant.trial = record_.trial;
  grant.issued_by = key_of(cause);
  licenses_.push_back(
    {grant.license_id, grant.expires_at, grant.instance_domain, std::nullopt});
  app.effects.grants.push_back(grant);
  push_event(app, license_issued{std::move(grant), {}});
}

subscription_effects subscription::reject(const command_event& command,
                                          rejection error) {
  subscription_effects effects;
  command_rejected rejected;
  rejected.command_id = command.ref.id;
  rejected.command_source = command.ref.source;
  rejected.command_type = command.ref.type;
  rejected.reason = error.code;
  rejected.message = error.message;
  output_event event;
  event.id = derived_id(
    {"rejected", command.ref.source, command.ref.id, record_.subscription_id});
  event.subscription_id = record_.subscription_id;
  event.time = later_of(command.ref.time, record_.clock);
  event.payload = std::move(rejected);
  effects.events.push_back(std::move(event));
  effects.rejected = std::move(error);
  return effects;
}

std::optional<rejection>
subscription::check_lifecycle(const subscription_command& cmd,
                              timestamp effective) const {
  const auto& id = record_.subscription_id;
  auto status = record_.status;
  if (std::holds_alternative<create_subscription>(cmd)) {
    const auto& x = std::get<create_subscription>(cmd);
    if (status != subscription_status::none)
      return rejection{rejection_code::subscription_exists,
                       "subscription " + id + " already exists"};
    if (term_invalid(x.term))
      return rejection{rejection_code::invalid_term,
                       "term.end must be after term.start"};
    if (!has_salesforce_account(x.customer)
        && x.instance.type != instance_type::internal)
      return rejection{rejection_code::missing_salesforce_account,
                       "customer.salesforce_account_id is required unless "
                       "instance.type is INTERNAL"};
    return std::nullopt;
  }
  if (status == subscription_status::none)
    return rejection{rejection_code::unknown_subscription,
                     "subscription " + id + " does not exist"};
  if (status == subscription_status::archived)
    return rejection{rejection_code::subscription_archived,
                     "subscription " + id + " is archived"};
  bool expired = status == subscription_status::expired;
  auto expired_rejection = [&] {
    return rejection{rejection_code::subscription_expired,
                     "subscription " + id
                       + " has expired; only renew, "
                         "update_metadata and archive apply"};
  };
  return std::visit(
    overloaded{
      [&](const create_subscription&) -> std::optional<rejection> {
        return std::nullopt; // handled above
      },
      [&](const renew_subscription& x) -> std::optional<rejection> {
        if (term_invalid(x.term) || x.term.start < record_.term.start)
          return rejection{rejection_code::invalid_term,
                           "a renewal's term must start no earlier than the "
                           "current term and end after it starts"};
        if (auto why = closed_month_changed_by(record_.terms, x.term,
                                               effective))
          return rejection{rejection_code::invalid_term, std::move(*why)};
        return std::nullopt;
      },
      [&](const update_entitlements&) -> std::optional<rejection> {
        if (expired)
          return expired_rejection();
        return std::nullopt;
      },
      [&](const convert_trial& x) -> std::optional<rejection> {
        if (expired)
          return expired_rejection();
        if (!record_.trial)
          return rejection{rejection_code::not_a_trial,
                           "subscription " + id + " is not a trial"};
        if (term_invalid(x.term))
          return rejection{rejection_code::invalid_term,
                           "term.end must be after term.start"};
        if (auto why = closed_month_changed_by(record_.terms, x.term,
                                               effective))
          return rejection{rejection_code::invalid_term, std::move(*why)};
        return std::nullopt;
      },
      [&](const expire_subscription&) -> std::optional<rejection> {
        if (expired)
          return expired_rejection();
        return std::nullopt;
      },
      [&](const archive_subscription&) -> std::optional<rejection> {
        return std::nullopt;
      },
      [&](const update_metadata& x) -> std::optional<rejection> {
        if (x.instance && x.instance->domain
            && *x.instance->domain != record_.instance.domain) {
          auto locked = std::any_of(
            licenses_.begin(), licenses_.end(), [&](const license_record& l) {
              return !l.revoked_at && l.expires_at > effective;
            });
          if (locked)
            return rejection{rejection_code::instance_domain_locked,
                             "instance.domain cannot change while the "
                             "subscription has a valid license for "
                               + record_.instance.domain};
        }
        auto customer = record_.customer;
        if (x.customer && x.customer->salesforce_account_id)
          customer.salesforce_account_id = x.customer->salesforce_account_id;
        auto type = record_.instance.type;
        if (x.instance && x.instance->type)
          type = *x.instance->type;
        if (!has_salesforce_account(customer)
            && type != instance_type::internal)
          return rejection{rejection_code::missing_salesforce_account,
                           "customer.salesforce_account_id is required unless "
                           "instance.type is INTERNAL"};
        return std::nullopt;
      },
      [&](const issue_license& x) -> std::optional<rejection> {
        if (expired)
          return expired_rejection();
        // Not before the term's start either: the license's nbf is the
        // start, so one expiring before it would never be valid (a term
        // renewed in advance starts in the future).
        if (x.expires_at
            && (*x.expires_at > record_.term.end || *x.expires_at <= effective
                || *x.expires_at <= record_.term.start))
          return rejection{rejection_code::invalid_expires_at,
                           "expires_at must be in the future, after the term "
                           "start and not after the term end"};
        // The default, the term's end, would be as useless as an explicit
        // one in the past (a term can end without `expire`).
        if (!x.expires_at && record_.term.end <= effective)
          return rejection{rejection_code::invalid_expires_at,
                           "the term ended at "
                             + format_rfc3339(record_.term.end)
                             + ": a license would be expired when issued"};
        return std::nullopt;
      },
    },
    cmd);
}

subscription_effects subscription::apply(const seat_delta& delta) {
  auto& last = org_delta_seqs_[delta.org_id];
  if (delta.org_seq <= last)
    return {}; // re-published: applied before
  last = delta.org_seq;
  application app;
  // The org's delta sequence, not the upstream event alone: an event
  // applied afresh after the de-duplication window makes a new delta, whose
  // events must not reuse the first one's ids.
  begin(app, delta.cause,
        "delta:" + delta.org_id + ":" + std::to_string(delta.org_seq));
  if (delta.org_linked) {
    if (orgs_.insert(delta.org_id).second)
      app.effects.org_changes.emplace_back(delta.org_id, true);
  } else if (orgs_.erase(delta.org_id) > 0) {
    app.effects.org_changes.emplace_back(delta.org_id, false);
  }
  for (const auto& change : delta.changes)
    set_contribution(app, delta.org_id, change);
  app.effects.org_delta_seq.emplace(delta.org_id, delta.org_seq);
  // The parts of one delta are one applied record: one overage at most,
  // from what was owed before the first part to what is owed after the
  // last (they arrive in order; another org's deltas or a command may come
  // between them, hence per org and, across a new term, the lower owed).
  if (delta.part == 1)
    owed_before_parts_.erase(delta.org_id);
  auto base = owed_before_parts_.find(delta.org_id);
  if (delta.part < delta.parts) {
    if (base == owed_before_parts_.end())
      owed_before_parts_.emplace(delta.org_id, app.owed_before);
    app.overage_deferred = true;
  } else if (base != owed_before_parts_.end()) {
    app.owed_before = std::min(app.owed_before, base->second);
    owed_before_parts_.erase(base);
  }
  finish(app);
  return std::move(app.effects);
}

subscription_effects subscription::apply(const command_event& command,
                                         const plan_catalog& catalog) {
  const auto& cmd = command.command;
  if (std::holds_alternative<create_subscription>(cmd) && record_.created_by
      && *record_.created_by == key_of(command.ref))
    return {}; // the same create again changes nothing
  auto effective = later_of(command.ref.time, record_.clock);
  if (auto error = check_lifecycle(cmd, effective))
    return reject(command, std::move(*error));
  if (auto* x = std::get_if<issue_license>(&cmd);
      x && !catalog.find_plan(record_.plan_id))
    return reject(command,
                  {rejection_code::unknown_plan,
                   "plan " + record_.plan_id + " is not in the catalog"});
  application app;
  begin(app, command.ref, "command");
  app.ordinal_prefix = "command:" + std::to_string(record_.commands_applied++);
  auto lifecycle_event = [&](lifecycle_kind kind) {
    subscription_changed changed;
    changed.kind = kind;
    changed.state = record_;
    changed.orgs.assign(orgs_.begin(), orgs_.end());
    push_event(app, std::move(changed));
  };
  std::visit(
    overloaded{
      [&](const create_subscription& x) {
        record_.display_name = x.display_name;
        apply_external_id(record_.customer.salesforce_account_id,
                          x.customer.salesforce_account_id);
        apply_external_id(record_.customer.salesforce_subscription_id,
                          x.customer.salesforce_subscription_id);
        record_.instance = x.instance;
        record_.plan_id = x.plan_id;
        record_.seats = x.seats;
        record_.trial = x.trial;
        record_.status = x.trial ? subscription_status::trial
                                 : subscription_status::active;
        record_.created_by = key_of(command.ref);
        start_term(app, x.term);
        reset_statistics(app.t);
        lifecycle_event(lifecycle_kind::created);
        grant_license(app, catalog, command.ref, std::nullopt, std::nullopt,
                      false);
      },
      [&](const renew_subscription& x) {
        if (x.seats)
          record_.seats = *x.seats;
        if (x.plan_id)
          record_.plan_id = *x.plan_id;
        // domain.md: after `expire`, `renew` starts a new term with status
        // `active` again, a paid term, also when the term that expired was
        // a trial (which convert_trial cannot reach once expired). A trial
        // renewed before it expired stays a trial.
        if (record_.status == subscription_status::expired)
          record_.trial = false;
        record_.status = record_.trial ? subscription_status::trial
                                       : subscription_status::active;
        start_term(app, x.term);
        reset_statistics(app.t);
        lifecycle_event(lifecycle_kind::renewed);
        grant_license(app, catalog, command.ref, std::nullopt, std::nullopt,
                      false);
      },
      [&](const update_entitlements& x) {
        bool changed = false;
        if (x.seats && *x.seats != record_.seats) {
          record_.seats = *x.seats;
          changed = true;
        }
        if (x.plan_id && *x.plan_id != record_.plan_id) {
          record_.plan_id = *x.plan_id;
          changed = true;
        }
        if (x.features) {
          auto features = sorted_union(*x.features, {});
          if (features != record_.features) {
            record_.features = std::move(features);
            changed = true;
          }
        }
        // Never a reset: only seats_owed follows the new purchased seats.
        recompute_owed();
        lifecycle_event(lifecycle_kind::entitlements_updated);
        if (changed)
          grant_license(app, catalog, command.ref, std::nullopt, std::nullopt,
                        false);
      },
      [&](const convert_trial& x) {
        record_.trial = false;
        record_.plan_id = x.plan_id;
        record_.seats = x.seats;
        record_.status = subscription_status::active;
        start_term(app, x.term);
        reset_statistics(app.t);
        lifecycle_event(lifecycle_kind::trial_converted);
        grant_license(app, catalog, command.ref, std::nullopt, std::nullopt,
                      false);
      },
      [&](const expire_subscription&) {
        record_.status = subscription_status::expired;
        end_terms_in_force(app, app.t);
        lifecycle_event(lifecycle_kind::expired);
      },
      [&](const archive_subscription& x) {
        record_.status = subscription_status::archived;
        record_.archive_reason = x.reason;
        end_terms_in_force(app, app.t);
        std::int64_t revoked = 0;
        for (auto& license : licenses_) {
          if (license.revoked_at)
            continue;
          license.revoked_at = app.t;
          app.effects.revocations.emplace_back(license.license_id, app.t);
          push_event(app, license_revoked{license.license_id, x.reason, app.t});
          ++revoked;
        }
        push_event(app, subscription_archived{x.reason, revoked});
      },
      [&](const update_metadata& x) {
        if (x.display_name)
          record_.display_name = *x.display_name;
        if (x.customer) {
          apply_external_id(record_.customer.salesforce_account_id,
                            x.customer->salesforce_account_id);
          apply_external_id(record_.customer.salesforce_subscription_id,
                            x.customer->salesforce_subscription_id);
        }
        if (x.instance) {
          if (x.instance->domain)
            record_.instance.domain = *x.instance->domain;
          if (x.instance->type)
            record_.instance.type = *x.instance->type;
        }
        if (x.rate_limit_overrides)
          record_.rate_limit_overrides = x.rate_limit_overrides;
        if (x.analytics_access)
          record_.analytics_access = x.analytics_access;
        lifecycle_event(lifecycle_kind::metadata_updated);
      },
      [&](const issue_license& x) {
        grant_license(app, catalog, command.ref, x.features, x.expires_at,
                      true);
      },
    },
    cmd);
  finish(app);
  return std::move(app.effects);
}

subscription_effects subscription::close_months(timestamp upto) {
  application app;
  app.cause.source = "seatledger";
  app.cause.id = "month-close";
  app.t = record_.clock;
  advance_months(app, upto);
  if (app.effects.events.empty())
    return {};
  // A closed month never changes again: later records take effect after it.
  for (const auto& event : app.effects.events)
    record_.clock = later_of(record_.clock, event.time);
  trim_window();
  app.effects.state_changed = true;
  return std::move(app.effects);
}

} // namespace seatledger::domain
