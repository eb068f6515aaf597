#include "app/demo.hpp"

#include <iomanip>
#include <map>

#include "domain/org.hpp"
#include "domain/subscription.hpp"
#include "domain/usage.hpp"
#include "messages/encode.hpp"

namespace seatledger::app {

namespace {

using namespace domain;

timestamp at(const char* text) {
  return *parse_rfc3339(text);
}

class demo_catalog : public plan_catalog {
public:
  std::optional<plan_entitlements>
  find_plan(const std::string& plan_id) const override {
    if (plan_id == "ultimate-annual")
      return plan_entitlements{"Ultimate", {"audit_events", "sso"}};
    return std::nullopt;
  }
};

class scenario {
public:
  explicit scenario(std::ostream& out) : out_(out) {}

  void member(const char* time, const std::string& org, const std::string& user,
              bool billable = true) {
    membership({next_ref("seatledger.member.added", time),
                member_added{org, user, billable, {}}});
  }

  void leave(const char* time, const std::string& org,
             const std::string& user) {
    membership(
      {next_ref("seatledger.member.removed", time), member_removed{org, user}});
  }

  void link(const char* time, const std::string& org) {
    membership({next_ref("seatledger.org.linked", time),
                org_linked{org, subscription_id}});
  }

  void command(const char* type, const char* time, subscription_command cmd) {
    auto fx = sub_.apply({next_ref(type, time), std::move(cmd)}, catalog_);
    record(fx);
  }

  void print_summary() {
    // What the service's sweeper does for a quiet subscription: close the
    // months that ended by now (only closed months are complete).
    record(sub_.close_months(asked_at));
    out_ << "\n== subscription state\n"
         << messages::encode_subscription(sub_.record(), {sub_.orgs().begin(),
                                                          sub_.orgs().end()})
         << "\n\n== monthly usage of the current term (asked on "
         << format_rfc3339(asked_at) << ")\n";
    ledger_window full;
    for (const auto& e : ledger_)
      full.points.push_back({e.seq, e.seats_in_use, e.effective_at});
    auto usage = current_term_usage(sub_.record());
    auto months = monthly_usage(full, usage.start, usage.usage_end, asked_at,
                                usage.closed_months);
    out_ << "month  start                 end                   peak  peak_at"
            "               complete\n";
    for (const auto& m : months)
      out_ << std::setw(5) << m.month << "  " << std::left << std::setw(22)
           << format_rfc3339(m.start) << std::setw(22) << format_rfc3339(m.end)
           << std::right << std::setw(4) << m.peak_seats << "  " << std::left
           << std::setw(22) << format_rfc3339(m.peak_at) << std::right
           << (m.complete ? "yes" : "no (in progress)") << "\n";
    chain_verifier verifier;
    for (const auto& e : ledger_)
      if (verifier.next(e))
        out_ << "ledger chain broken!\n";
    out_ << "\nledger: " << ledger_.size() << " entries, hash chain verified ("
         << verifier.verified() << " entries)\n";
  }

  const std::string subscription_id = "acme-enterprise";
  timestamp asked_at = at("2026-04-20T00:00:00Z");

private:
  event_ref next_ref(const char* type, const char* time) {
    return {"demo", "evt-" + std::to_string(++counter_), type, at(time)};
  }

  void membership(const membership_event& event) {
    auto& org = orgs_
                  .try_emplace(org_id_of(event.change), org_id_of(event.change))
                  .first->second;
    for (const auto& delta : org.apply(event).deltas)
      if (delta.subscription_id == subscription_id)
        record(sub_.apply(delta));
  }

  void record(const subscription_effects& fx) {
    ledger_.insert(ledger_.end(), fx.entries.begin(), fx.entries.end());
    for (const auto& e : fx.events) {
      if (std::holds_alternative<seats_changed>(e.payload)) {
        const auto& x = std::get<seats_changed>(e.payload);
        out_ << format_rfc3339(e.time) << "  seats " << std::setw(2)
             << x.previous_seats_in_use << " -> " << std::setw(2)
             << x.seats_in_use << "  (" << x.user_id << " via " << x.org_id
             << ", ledger #" << x.ledger_seq << ")\n";
        continue;
      }
      out_ << format_rfc3339(e.time) << "  " << output_type(e.payload);
      if (auto* o = std::get_if<overage_detected>(&e.payload))
        out_ << "  seats_owed " << o->previous_seats_owed << " -> "
             << o->seats_owed << " (max " << o->max_seats_used << " of "
             << o->seats << " purchased)";
      if (auto* l = std::get_if<license_issued>(&e.payload))
        out_ << "  " << l->grant.license_id << " ("
             << l->grant.tier.value_or("no tier") << ", " << l->grant.seats
             << " seats, until " << format_rfc3339(l->grant.expires_at) << ")";
      if (auto* m = std::get_if<month_closed>(&e.payload))
        out_ << "  month " << m->month_index << " peak " << m->peak_seats;
      if (auto* r = std::get_if<command_rejected>(&e.payload))
        out_ << "  " << to_string(r->reason) << ": " << r->message;
      out_ << "\n";
    }
  }

  std::ostream& out_;
  demo_catalog catalog_;
  std::map<std::string, org_state> orgs_;
  subscription sub_{subscription_id};
  std::vector<ledger_entry> ledger_;
  int counter_ = 0;
};

} // namespace

int run_demo(std::ostream& out) {
  out << "seatledger demo: one enterprise subscription spanning three orgs "
         "with shared users\n(domain rules only; `seatledger serve` runs "
         "the service)\n\n";
  scenario s{out};
  // Members join before the subscription exists: the pool records already.
  s.member("2026-01-10T09:00:00Z", "acme-platform", "alice");
  s.member("2026-01-10T09:00:00Z", "acme-platform", "bob");
  s.member("2026-01-10T09:00:00Z", "acme-mobile", "alice"); // shared user
  s.member("2026-01-10T09:00:00Z", "acme-mobile", "carol");
  s.member("2026-01-10T09:00:00Z", "acme-data", "dave", false); // a guest
  s.member("2026-01-10T09:00:00Z", "acme-data", "bob");         // shared
  s.link("2026-01-12T10:00:00Z", "acme-platform");
  s.link("2026-01-12T10:00:00Z", "acme-mobile");
  s.link("2026-01-12T10:00:00Z", "acme-data");
  create_subscription create;
  create.subscription_id = s.subscription_id;
  create.display_name = "ACME Corp";
  create.customer = {std::string{"0015000000ACME"}, std::string{"A-S0001"}};
  create.instance = {"gitlab.acme.example", instance_type::primary};
  create.plan_id = "ultimate-annual";
  create.seats = 4;
  create.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
  s.command("seatledger.subscription.create", "2026-01-15T00:00:00Z", create);
  s.member("2026-01-20T08:00:00Z", "acme-data", "erin");
  s.member("2026-01-21T08:00:00Z", "acme-mobile", "frank"); // overage
  s.leave("2026-01-25T08:00:00Z", "acme-platform", "bob");  // still in data
  s.leave("2026-01-26T08:00:00Z", "acme-mobile", "frank");
  s.member("2026-02-20T08:00:00Z", "acme-platform", "grace");
  s.command("seatledger.subscription.update_entitlements",
            "2026-03-01T00:00:00Z",
            update_entitlements{s.subscription_id, 6, {}, {}});
  s.command("seatledger.subscription.update_metadata", "2026-03-02T00:00:00Z",
            update_metadata{s.subscription_id,
                            {},
                            {},
                            instance_patch{std::string{"other.example"}, {}},
                            {},
                            {}});
  s.print_summary();
  return 0;
}

} // namespace seatledger::app
