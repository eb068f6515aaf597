#include <gtest/gtest.h>

#include "domain/subscription.hpp"
#include "test_support.hpp"

using namespace seatledger::domain;
using seatledger::test::at;
using seatledger::test::create_cmd;
using seatledger::test::domain_harness;
using seatledger::test::ref;

namespace {

// Adds `users` as billable members of `org` and links it to `sub`.
void linked_org(domain_harness& h, const std::string& org,
                const std::string& sub, std::vector<std::string> users,
                const std::string& time = "2026-01-10T00:00:00Z") {
  static int n = 0;
  for (auto& u : users)
    h.membership(ref("m" + std::to_string(++n), time),
                 member_added{org, u, true, {}});
  h.membership(ref("m" + std::to_string(++n), time), org_linked{org, sub});
}

void add(domain_harness& h, const std::string& id, const std::string& org,
         const std::string& user, const std::string& time,
         bool billable = true) {
  h.membership(ref(id, time), member_added{org, user, billable, {}});
}

void remove(domain_harness& h, const std::string& id, const std::string& org,
            const std::string& user, const std::string& time) {
  h.membership(ref(id, time), member_removed{org, user});
}

/// Ten seats in January 2024, two from the 20th, one more user at `late`.
void filled_and_emptied_in_january_2024(domain_harness& h,
                                        const std::string& late) {
  std::vector<std::string> users;
  for (int i = 0; i < 10; ++i)
    users.push_back("u" + std::to_string(i));
  linked_org(h, "o1", "s1", users, "2024-01-10T00:00:00Z");
  for (int i = 0; i < 8; ++i)
    remove(h, "r" + std::to_string(i), "o1", "u" + std::to_string(i),
           "2024-01-20T00:00:00Z");
  add(h, "late", "o1", "u10", late);
}

} // namespace

// -- seat pool ----------------------------------------------------------------

TEST(seat_pool, a_user_in_several_linked_orgs_takes_one_seat) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"alice", "bob"});
  linked_org(h, "o2", "s1", {"alice", "carol"});
  linked_org(h, "o3", "s1", {"alice"});
  auto& s = h.sub("s1");
  EXPECT_EQ(s.record().seats_in_use, 3);
  EXPECT_EQ(s.holders().at("alice"), (std::set<std::string>{"o1", "o2", "o3"}));
  EXPECT_EQ(s.orgs(), (std::set<std::string>{"o1", "o2", "o3"}));
  EXPECT_EQ(h.ledger("s1").size(), 3u);
}

TEST(seat_pool, a_guest_elsewhere_still_takes_one_seat) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"alice"});
  h.membership(ref("g", "2026-01-11T00:00:00Z"),
               member_added{"o2", "alice", false, {"guest"}});
  h.membership(ref("l", "2026-01-11T00:00:00Z"), org_linked{"o2", "s1"});
  EXPECT_EQ(h.sub("s1").record().seats_in_use, 1);
  EXPECT_EQ(h.sub("s1").holders().at("alice"), (std::set<std::string>{"o1"}));
}

TEST(seat_pool, unlinking_keeps_users_billable_through_another_org) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"alice", "bob"});
  linked_org(h, "o2", "s1", {"alice"});
  auto before = h.ledger("s1").size();
  h.membership(ref("u", "2026-01-12T00:00:00Z"), org_unlinked{"o1", "s1"});
  EXPECT_EQ(h.sub("s1").record().seats_in_use, 1);
  auto entries = h.ledger("s1");
  ASSERT_EQ(entries.size(), before + 1); // only bob's seat went
  EXPECT_EQ(entries.back().user_id, "bob");
  EXPECT_EQ(h.sub("s1").orgs(), (std::set<std::string>{"o2"}));
}

TEST(seat_pool, linking_elsewhere_moves_seats_between_subscriptions) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"alice", "bob"});
  h.membership(ref("mv", "2026-01-12T00:00:00Z"), org_linked{"o1", "s2"});
  EXPECT_EQ(h.sub("s1").record().seats_in_use, 0);
  EXPECT_EQ(h.sub("s2").record().seats_in_use, 2);
  EXPECT_TRUE(h.sub("s1").orgs().empty());
}

TEST(seat_pool, a_link_writes_one_entry_per_new_seat_in_user_order) {
  domain_harness h;
  for (auto u : {"u3", "u1", "u2"})
    add(h, std::string("a") + u, "o1", u, "2026-01-10T00:00:00Z");
  h.membership(ref("link", "2026-01-11T00:00:00Z"), org_linked{"o1", "s1"});
  auto entries = h.ledger("s1");
  ASSERT_EQ(entries.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(entries[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(entries[i].seats_in_use, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(entries[i].user_id, "u" + std::to_string(i + 1));
    EXPECT_EQ(entries[i].cause.id, "link");
    EXPECT_EQ(entries[i].org_id, "o1");
  }
}

TEST(seat_pool, a_snapshot_never_passes_through_a_phantom_peak) {
  // A snapshot that swaps members applied its changes in user_id order
  // alone: 3 -> 2 -> 3 -> 4 -> 3 here, and the 4 that never was raised
  // max_seats_used and published an overage.
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 3, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"aa", "bb", "zz"}, "2026-01-02T00:00:00Z");
  ASSERT_EQ(h.sub("s1").record().max_seats_used, 3);
  h.membership(ref("snap", "2026-01-03T00:00:00Z"),
               org_snapshot{"o1",
                            {{"aa", true}, {"mm", true}, {"new1", true}}});
  EXPECT_EQ(h.sub("s1").record().seats_in_use, 3);
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 3);
  EXPECT_TRUE(h.events_of<overage_detected>("s1").empty());
  std::vector<std::int64_t> counts;
  for (const auto& e : h.ledger("s1"))
    counts.push_back(e.seats_in_use);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{1, 2, 3, 2, 1, 2, 3}));
}

TEST(seat_pool, ledger_is_hash_chained_and_gap_free) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"a", "b", "c"});
  remove(h, "r1", "o1", "b", "2026-01-12T00:00:00Z");
  add(h, "a2", "o1", "d", "2026-01-13T00:00:00Z");
  chain_verifier v;
  for (const auto& e : h.ledger("s1"))
    EXPECT_FALSE(v.next(e)) << e.seq;
  EXPECT_EQ(v.verified(), 5);
  EXPECT_EQ(h.sub("s1").record().ledger_hash, h.ledger("s1").back().hash);
}

TEST(seat_pool, every_entry_emits_seats_changed) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"a", "b"});
  remove(h, "r1", "o1", "a", "2026-01-12T00:00:00Z");
  auto changes = h.events_of<seats_changed>("s1");
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[2].previous_seats_in_use, 2);
  EXPECT_EQ(changes[2].seats_in_use, 1);
  EXPECT_EQ(changes[2].ledger_seq, 3);
  EXPECT_EQ(changes[2].user_id, "a");
}

TEST(seat_pool, effective_time_never_goes_backwards) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"a"}, "2026-01-10T00:00:00Z");
  add(h, "late", "o1", "b", "2026-01-05T00:00:00Z"); // arrives late
  auto entries = h.ledger("s1");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].effective_at, at("2026-01-10T00:00:00Z"));
  EXPECT_EQ(entries[1].cause.time, at("2026-01-05T00:00:00Z"));
  // Commands share the clock.
  auto fx = h.command(ref("c", "2026-01-01T00:00:00Z"),
                      create_cmd("s1", 10, "2026-01-01T00:00:00Z",
                                 "2027-01-01T00:00:00Z"));
  EXPECT_EQ(h.sub("s1").record().max_seats_used_changed_at,
            at("2026-01-10T00:00:00Z"));
}

TEST(seat_pool, a_republished_delta_never_counts_twice) {
  domain_harness h;
  org_state org{"o1"};
  auto link
    = org.apply({ref("l", "2026-01-10T00:00:00Z"), org_linked{"o1", "s1"}});
  auto add = org.apply(
    {ref("a", "2026-01-10T00:00:00Z"), member_added{"o1", "u", true, {}}});
  auto remove
    = org.apply({ref("r", "2026-01-11T00:00:00Z"), member_removed{"o1", "u"}});
  auto& s = h.sub("s1");
  for (auto* fx : {&link, &add, &remove})
    s.apply(fx->deltas.at(0));
  EXPECT_EQ(s.record().seats_in_use, 0);
  // The relay re-publishes `add` after a crash: it must not bring u back.
  auto again = s.apply(add.deltas.at(0));
  EXPECT_FALSE(again.state_changed);
  EXPECT_TRUE(again.entries.empty());
  EXPECT_EQ(s.record().seats_in_use, 0);
  EXPECT_EQ(s.org_delta_seqs().at("o1"), 3);
}

TEST(seat_pool, the_pool_exists_before_create_and_create_starts_with_it) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"a", "b", "c"});
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::none);
  EXPECT_EQ(h.ledger("s1").size(), 3u);
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 0); // no statistics yet
  h.command(ref("c", "2026-01-15T00:00:00Z"),
            create_cmd("s1", 2, "2026-01-15T00:00:00Z",
                       "2027-01-15T00:00:00Z"));
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.status, subscription_status::active);
  EXPECT_EQ(r.max_seats_used, 3);
  EXPECT_EQ(r.max_seats_used_changed_at, at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(r.seats_owed, 1);
  auto overages = h.events_of<overage_detected>("s1");
  ASSERT_EQ(overages.size(), 1u);
  EXPECT_EQ(overages[0].previous_seats_owed, 0);
  EXPECT_EQ(overages[0].seats_owed, 1);
}

// -- lifecycle ----------------------------------------------------------------

TEST(lifecycle, create_sets_state_and_issues_a_license) {
  domain_harness h;
  auto fx = h.command(ref("c1", "2026-01-15T00:00:00Z"),
                      create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                                 "2027-01-15T00:00:00Z"));
  ASSERT_FALSE(fx.rejected);
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.status, subscription_status::active);
  EXPECT_EQ(r.seats, 10);
  EXPECT_EQ(r.term.start, at("2026-01-15T00:00:00Z"));
  ASSERT_EQ(fx.grants.size(), 1u);
  const auto& g = fx.grants[0];
  EXPECT_EQ(g.tier, "Ultimate");
  EXPECT_EQ(g.features, (std::vector<std::string>{"audit_events", "sso"}));
  EXPECT_EQ(g.not_before, at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(g.expires_at, at("2027-01-15T00:00:00Z"));
  EXPECT_EQ(g.instance_domain, "s1.example.com");
  EXPECT_EQ(h.events_of<subscription_changed>("s1").size(), 1u);
  EXPECT_EQ(h.events_of<license_issued>("s1").size(), 1u);
}

TEST(lifecycle, the_same_create_twice_changes_nothing) {
  domain_harness h;
  auto cmd = create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                        "2027-01-15T00:00:00Z");
  h.command(ref("c1", "2026-01-15T00:00:00Z"), cmd);
  auto again = h.command(ref("c1", "2026-01-15T00:00:00Z"), cmd);
  EXPECT_FALSE(again.rejected);
  EXPECT_FALSE(again.state_changed);
  EXPECT_TRUE(again.events.empty());
  auto other = h.command(ref("c2", "2026-01-16T00:00:00Z"), cmd);
  ASSERT_TRUE(other.rejected);
  EXPECT_EQ(other.rejected->code, rejection_code::subscription_exists);
}

TEST(lifecycle, rejections_name_the_rule_and_change_nothing) {
  domain_harness h;
  auto fx = h.command(
    ref("r1", "2026-01-15T00:00:00Z"),
    renew_subscription{
      "s1", {at("2027-01-15T00:00:00Z"), at("2028-01-15T00:00:00Z")}, {}, {}});
  ASSERT_TRUE(fx.rejected);
  EXPECT_EQ(fx.rejected->code, rejection_code::unknown_subscription);
  ASSERT_EQ(fx.events.size(), 1u);
  auto& rej = std::get<command_rejected>(fx.events[0].payload);
  EXPECT_EQ(rej.command_id, "r1");
  EXPECT_EQ(rej.command_type, "test");
  EXPECT_EQ(rej.reason, rejection_code::unknown_subscription);
  EXPECT_FALSE(fx.state_changed);
  EXPECT_EQ(h.sub("s1").record().clock, timestamp::min());

  auto bad = create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                        "2026-01-15T00:00:00Z");
  fx = h.command(ref("c1", "2026-01-15T00:00:00Z"), bad);
  EXPECT_EQ(fx.rejected->code, rejection_code::invalid_term);

  auto no_sf = create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                          "2027-01-15T00:00:00Z");
  no_sf.customer.salesforce_account_id.reset();
  fx = h.command(ref("c2", "2026-01-15T00:00:00Z"), no_sf);
  EXPECT_EQ(fx.rejected->code, rejection_code::missing_salesforce_account);
  no_sf.instance.type = instance_type::internal;
  fx = h.command(ref("c3", "2026-01-15T00:00:00Z"), no_sf);
  EXPECT_FALSE(fx.rejected);
}

TEST(terms, an_empty_salesforce_id_is_no_id) {
  // A billing system that writes "" for a missing account: rejected like a
  // missing one (it was a dead letter), and an INTERNAL subscription keeps
  // no id rather than "".
  domain_harness h;
  auto empty = create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                          "2027-01-15T00:00:00Z");
  empty.customer.salesforce_account_id = std::string{};
  empty.customer.salesforce_subscription_id = std::string{};
  auto fx = h.command(ref("c1", "2026-01-15T00:00:00Z"), empty);
  ASSERT_TRUE(fx.rejected);
  EXPECT_EQ(fx.rejected->code, rejection_code::missing_salesforce_account);
  empty.instance.type = instance_type::internal;
  fx = h.command(ref("c2", "2026-01-15T00:00:00Z"), empty);
  EXPECT_FALSE(fx.rejected);
  EXPECT_EQ(h.sub("s1").record().customer, customer_info{});
  // On update_metadata "" clears the id; an absent one keeps it.
  update_metadata set{"s1",
                      {},
                      customer_patch{std::string{"0014x00001AbCdEAAV"},
                                     std::string{"a1B4x000003XyZqEAK"}},
                      {},
                      {},
                      {}};
  EXPECT_FALSE(h.command(ref("m1", "2026-01-16T00:00:00Z"), set).rejected);
  update_metadata clear{"s1", {}, customer_patch{{}, std::string{}},
                        {},   {}, {}};
  EXPECT_FALSE(h.command(ref("m2", "2026-01-17T00:00:00Z"), clear).rejected);
  EXPECT_EQ(h.sub("s1").record().customer.salesforce_account_id,
            "0014x00001AbCdEAAV");
  EXPECT_EQ(h.sub("s1").record().customer.salesforce_subscription_id,
            std::nullopt);
}

TEST(terms, renew_resets_statistics_and_needs_a_later_term) {
  domain_harness h;
  h.command(ref("c", "2026-01-15T00:00:00Z"),
            create_cmd("s1", 2, "2026-01-15T00:00:00Z",
                       "2027-01-15T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a", "b", "c", "d"}, "2026-02-01T00:00:00Z");
  remove(h, "r", "o1", "d", "2026-03-01T00:00:00Z");
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 4);
  EXPECT_EQ(h.sub("s1").record().seats_owed, 2);
  auto bad = h.command(
    ref("bad", "2026-12-01T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")}, {}, {}});
  EXPECT_EQ(bad.rejected->code, rejection_code::invalid_term);
  auto fx = h.command(
    ref("renew", "2027-01-10T00:00:00Z"),
    renew_subscription{
      "s1", {at("2027-01-15T00:00:00Z"), at("2028-01-15T00:00:00Z")}, 5, {}});
  ASSERT_FALSE(fx.rejected);
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.max_seats_used, 3);
  EXPECT_EQ(r.max_seats_used_changed_at, at("2027-01-10T00:00:00Z"));
  EXPECT_EQ(r.seats_owed, 0);
  EXPECT_EQ(r.seats, 5);
  EXPECT_EQ(fx.grants.size(), 1u);
  EXPECT_EQ(h.events_of<subscription_changed>("s1").back().kind,
            lifecycle_kind::renewed);
}

TEST(terms, convert_trial_resets_and_a_trial_owes_nothing) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z",
                       true));
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::trial);
  linked_org(h, "o1", "s1", {"a", "b", "c"}, "2026-01-05T00:00:00Z");
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 3);
  EXPECT_EQ(h.sub("s1").record().seats_owed, 0);
  EXPECT_TRUE(h.events_of<overage_detected>("s1").empty());
  remove(h, "r", "o1", "c", "2026-01-06T00:00:00Z");
  auto fx = h.command(
    ref("conv", "2026-01-20T00:00:00Z"),
    convert_trial{"s1",
                  "premium-annual",
                  1,
                  {at("2026-01-20T00:00:00Z"), at("2027-01-20T00:00:00Z")}});
  ASSERT_FALSE(fx.rejected);
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.status, subscription_status::active);
  EXPECT_FALSE(r.trial);
  EXPECT_EQ(r.max_seats_used, 2); // reset to the current count
  EXPECT_EQ(r.seats_owed, 1);
  EXPECT_EQ(fx.grants.at(0).tier, "Premium");
  EXPECT_EQ(h.events_of<overage_detected>("s1").size(), 1u);
  auto again = h.command(
    ref("conv2", "2026-01-21T00:00:00Z"),
    convert_trial{"s1",
                  "premium-annual",
                  1,
                  {at("2026-01-21T00:00:00Z"), at("2027-01-21T00:00:00Z")}});
  EXPECT_EQ(again.rejected->code, rejection_code::not_a_trial);
}

TEST(terms, a_free_plan_owes_nothing) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 0, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
                       false, "free"));
  linked_org(h, "o1", "s1", {"a", "b"}, "2026-01-05T00:00:00Z");
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 2);
  EXPECT_EQ(h.sub("s1").record().seats_owed, 0);
  EXPECT_TRUE(h.events_of<overage_detected>("s1").empty());
}

TEST(terms, update_entitlements_never_resets_but_recomputes_seats_owed) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a", "b", "c", "d"}, "2026-01-05T00:00:00Z");
  remove(h, "r1", "o1", "d", "2026-01-06T00:00:00Z");
  remove(h, "r2", "o1", "c", "2026-01-06T00:00:00Z");
  auto fx = h.command(ref("u1", "2026-02-01T00:00:00Z"),
                      update_entitlements{"s1", 3, {}, {}});
  ASSERT_FALSE(fx.rejected);
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.max_seats_used, 4); // not reset to the current 2
  EXPECT_EQ(r.max_seats_used_changed_at, at("2026-01-05T00:00:00Z"));
  EXPECT_EQ(r.seats_owed, 1);
  EXPECT_EQ(fx.grants.size(), 1u); // seats changed: a new license
  auto overages = h.events_of<overage_detected>("s1");
  ASSERT_EQ(overages.size(), 1u);
  EXPECT_EQ(overages[0].previous_seats_owed, 0);
  // Same values again: applied, no new license.
  fx = h.command(ref("u2", "2026-02-02T00:00:00Z"),
                 update_entitlements{"s1", 3, "ultimate-annual", {}});
  EXPECT_FALSE(fx.rejected);
  EXPECT_TRUE(fx.grants.empty());
  fx = h.command(
    ref("u3", "2026-02-03T00:00:00Z"),
    update_entitlements{"s1", {}, {}, std::vector<std::string>{"duo"}});
  ASSERT_EQ(fx.grants.size(), 1u);
  EXPECT_EQ(fx.grants[0].features,
            (std::vector<std::string>{"audit_events", "duo", "sso"}));
}

TEST(terms, each_rise_of_seats_owed_yields_one_overage_event) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a"}, "2026-01-02T00:00:00Z");
  EXPECT_TRUE(h.events_of<overage_detected>("s1").empty());
  add(h, "b", "o1", "b", "2026-01-03T00:00:00Z");     // owed 0 -> 1
  add(h, "c", "o1", "c", "2026-01-04T00:00:00Z");     // 1 -> 2
  remove(h, "rc", "o1", "c", "2026-01-05T00:00:00Z"); // stays 2
  add(h, "c2", "o1", "c", "2026-01-06T00:00:00Z");    // max stays 3: no rise
  add(h, "d", "o1", "d", "2026-01-07T00:00:00Z");     // 2 -> 3
  auto overages = h.events_of<overage_detected>("s1");
  ASSERT_EQ(overages.size(), 3u);
  EXPECT_EQ(overages[0].seats_owed, 1);
  EXPECT_EQ(overages[1].previous_seats_owed, 1);
  EXPECT_EQ(overages[1].seats_owed, 2);
  EXPECT_EQ(overages[2].seats_owed, 3);
  EXPECT_EQ(overages[2].max_seats_used, 4);
  EXPECT_EQ(overages[2].effective_at, at("2026-01-07T00:00:00Z"));
  // A link adding several users at once: one event for the record.
  linked_org(h, "o2", "s1", {"x", "y", "z"}, "2026-01-08T00:00:00Z");
  EXPECT_EQ(h.events_of<overage_detected>("s1").size(), 4u);
}

// An org linked with more members than one delta record holds reaches the
// subscription in parts; the record is still one, so is its overage
// (domain.md: once per applied record), from before the first part to
// after the last.
TEST(terms, a_link_split_in_parts_yields_one_overage_for_the_record) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 100, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  for (int i = 0; i < 2500; ++i)
    add(h, "m" + std::to_string(i), "o1", "user-" + std::to_string(10000 + i),
        "2026-01-02T00:00:00Z");
  auto fx = h.membership(ref("link", "2026-01-03T00:00:00Z"),
                         org_linked{"o1", "s1"}, 1000);
  ASSERT_EQ(fx.deltas.size(), 3u);
  auto overages = h.events_of<overage_detected>("s1");
  ASSERT_EQ(overages.size(), 1u);
  EXPECT_EQ(overages[0].previous_seats_owed, 0);
  EXPECT_EQ(overages[0].seats_owed, 2400);
  EXPECT_EQ(overages[0].max_seats_used, 2500);
  EXPECT_EQ(h.ledger("s1").size(), 2500u);
  EXPECT_TRUE(h.sub("s1").owed_before_parts().empty());
}

// Between two parts the subscription may be passivated, or the replica
// restart: what was owed before the first part is part of its state.
TEST(terms, one_overage_for_parts_applied_across_a_restore) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 10, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o0", "s1",
             {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
              "l"}); // owed 2
  for (int i = 0; i < 30; ++i)
    add(h, "n" + std::to_string(i), "o1", "user-" + std::to_string(100 + i),
        "2026-01-11T00:00:00Z");
  auto deltas
    = h.org("o1")
        .apply({ref("link", "2026-01-12T00:00:00Z"), org_linked{"o1", "s1"}},
               10)
        .deltas;
  ASSERT_EQ(deltas.size(), 3u);
  auto& live = h.sub("s1");
  auto first = live.apply(deltas[0]);
  ASSERT_EQ(live.owed_before_parts(),
            (std::map<std::string, std::int64_t>{{"o1", 2}}));
  std::map<std::string, std::set<std::string>> holders(live.holders().begin(),
                                                       live.holders().end());
  subscription restored{live.record(),           holders,       live.orgs(),
                        live.org_delta_seqs(),   live.window(), live.licenses(),
                        live.owed_before_parts()};
  std::vector<overage_detected> overages;
  for (const auto& fx :
       {first, restored.apply(deltas[1]), restored.apply(deltas[2])})
    for (const auto& e : fx.events)
      if (const auto* o = std::get_if<overage_detected>(&e.payload))
        overages.push_back(*o);
  ASSERT_EQ(overages.size(), 1u);
  EXPECT_EQ(overages[0].previous_seats_owed, 2);
  EXPECT_EQ(overages[0].seats_owed, 32);
  EXPECT_TRUE(restored.owed_before_parts().empty());
}

TEST(terms, expire_freezes_statistics_and_the_ledger_keeps_recording) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a"}, "2026-01-02T00:00:00Z");
  h.command(ref("x", "2026-06-01T00:00:00Z"), expire_subscription{"s1"});
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::expired);
  add(h, "b", "o1", "b", "2026-06-02T00:00:00Z");
  add(h, "c", "o1", "c", "2026-06-02T00:00:00Z");
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.seats_in_use, 3);
  EXPECT_EQ(r.max_seats_used, 1);
  EXPECT_EQ(r.seats_owed, 0);
  EXPECT_TRUE(h.events_of<overage_detected>("s1").empty());
  EXPECT_EQ(h.ledger("s1").size(), 3u);
  for (auto cmd : std::vector<subscription_command>{
         update_entitlements{"s1", 2, {}, {}}, expire_subscription{"s1"},
         issue_license{"s1", {}, {}},
         convert_trial{"s1",
                       "p",
                       1,
                       {at("2026-07-01T00:00:00Z"),
                        at("2027-07-01T00:00:00Z")}}}) {
    auto fx = h.command(ref("after", "2026-06-03T00:00:00Z"), cmd);
    ASSERT_TRUE(fx.rejected);
    EXPECT_EQ(fx.rejected->code, rejection_code::subscription_expired);
  }
  auto md
    = h.command(ref("md", "2026-06-03T00:00:00Z"),
                update_metadata{"s1", std::string{"New name"}, {}, {}, {}, {}});
  EXPECT_FALSE(md.rejected);
  auto renew = h.command(
    ref("rn", "2026-06-04T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-06-04T00:00:00Z"), at("2027-06-04T00:00:00Z")}, {}, {}});
  ASSERT_FALSE(renew.rejected);
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::active);
  EXPECT_EQ(h.sub("s1").record().max_seats_used, 3);
  EXPECT_EQ(h.sub("s1").record().seats_owed, 2);
}

// domain.md: "afterwards `renew` starts a new term (status `active`
// again)". An expired trial renewed stayed a trial, owing nothing for
// ever: convert_trial is rejected while it is expired.
TEST(terms, renewing_an_expired_trial_starts_a_paid_term) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                       true));
  linked_org(h, "o1", "s1", {"a", "b", "c", "d", "e", "f", "g", "h"},
             "2026-01-02T00:00:00Z");
  EXPECT_EQ(h.sub("s1").record().seats_owed, 0);
  h.command(ref("x", "2026-02-01T00:00:00Z"), expire_subscription{"s1"});
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::expired);
  auto renew = h.command(
    ref("rn", "2026-02-02T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-02-02T00:00:00Z"), at("2027-02-02T00:00:00Z")}, 5, {}});
  ASSERT_FALSE(renew.rejected);
  const auto& r = h.sub("s1").record();
  EXPECT_EQ(r.status, subscription_status::active);
  EXPECT_FALSE(r.trial);
  EXPECT_EQ(r.max_seats_used, 8);
  EXPECT_EQ(r.seats_owed, 3);
  ASSERT_EQ(renew.grants.size(), 1u);
  EXPECT_FALSE(renew.grants[0].trial);
  ASSERT_EQ(h.events_of<overage_detected>("s1").size(), 1u);

  // A trial renewed before it expired is still a trial.
  h.command(ref("c2", "2026-01-01T00:00:00Z"),
            create_cmd("s2", 1, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                       true));
  auto early = h.command(
    ref("rn2", "2026-01-20T00:00:00Z"),
    renew_subscription{
      "s2", {at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z")}, {}, {}});
  ASSERT_FALSE(early.rejected);
  EXPECT_EQ(h.sub("s2").record().status, subscription_status::trial);
  EXPECT_TRUE(h.sub("s2").record().trial);
}

TEST(terms, commands_after_archive_are_rejected) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  h.command(ref("l", "2026-01-02T00:00:00Z"), issue_license{"s1", {}, {}});
  auto fx = h.command(ref("a", "2026-02-01T00:00:00Z"),
                      archive_subscription{"s1", "customer churned"});
  ASSERT_FALSE(fx.rejected);
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::archived);
  EXPECT_EQ(fx.revocations.size(), 2u);
  auto revoked = h.events_of<license_revoked>("s1");
  ASSERT_EQ(revoked.size(), 2u);
  EXPECT_EQ(revoked[0].reason, "customer churned");
  auto archived = h.events_of<subscription_archived>("s1");
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0].licenses_revoked, 2);
  for (auto cmd : std::vector<subscription_command>{
         renew_subscription{"s1",
                            {at("2027-01-01T00:00:00Z"),
                             at("2028-01-01T00:00:00Z")},
                            {},
                            {}},
         update_metadata{"s1", std::string{"x"}, {}, {}, {}, {}},
         archive_subscription{"s1", "again"}, expire_subscription{"s1"},
         issue_license{"s1", {}, {}}}) {
    auto r = h.command(ref("late", "2026-02-02T00:00:00Z"), cmd);
    ASSERT_TRUE(r.rejected);
    EXPECT_EQ(r.rejected->code, rejection_code::subscription_archived);
  }
  // A create is refused by the rule written for it (decisions.md).
  auto again = h.command(ref("create-again", "2026-02-03T00:00:00Z"),
                         create_cmd("s1", 1, "2026-02-03T00:00:00Z",
                                    "2027-02-03T00:00:00Z"));
  ASSERT_TRUE(again.rejected);
  EXPECT_EQ(again.rejected->code, rejection_code::subscription_exists);
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::archived);
}

// -- licenses -----------------------------------------------------------------

TEST(licenses, an_unknown_plan_applies_the_command_but_issues_no_license) {
  domain_harness h;
  auto fx = h.command(ref("c", "2026-01-01T00:00:00Z"),
                      create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                                 "2027-01-01T00:00:00Z", false, "mystery"));
  EXPECT_FALSE(fx.rejected);
  EXPECT_TRUE(fx.grants.empty());
  auto not_issued = h.events_of<license_not_issued>("s1");
  ASSERT_EQ(not_issued.size(), 1u);
  EXPECT_EQ(not_issued[0].reason, "unknown_plan");
  EXPECT_EQ(not_issued[0].command_id, "c");
  auto explicit_issue = h.command(ref("l", "2026-01-02T00:00:00Z"),
                                  issue_license{"s1", {}, {}});
  ASSERT_TRUE(explicit_issue.rejected);
  EXPECT_EQ(explicit_issue.rejected->code, rejection_code::unknown_plan);
}

TEST(licenses, a_command_applied_again_issues_no_second_license) {
  // Past the de-duplication window a command read again is applied
  // afresh; its license exists already (same id), and inserting it again
  // failed every commit of the batch for ever.
  domain_harness h;
  auto created = h.command(ref("c", "2026-01-01T00:00:00Z"),
                           create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                                      "2027-01-01T00:00:00Z"));
  ASSERT_EQ(created.grants.size(), 1u);
  auto first = h.command(ref("l", "2026-01-02T00:00:00Z"),
                         issue_license{"s1", {}, {}});
  ASSERT_EQ(first.grants.size(), 1u);
  auto renewal = renew_subscription{
    "s1", {at("2027-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z")}, {}, {}};
  auto renewed = h.command(ref("r", "2026-06-01T00:00:00Z"), renewal);
  ASSERT_FALSE(renewed.rejected);
  ASSERT_EQ(renewed.grants.size(), 1u);

  auto again = h.command(ref("l", "2026-08-02T00:00:00Z"),
                         issue_license{"s1", {}, {}});
  EXPECT_FALSE(again.rejected);
  EXPECT_TRUE(again.grants.empty());
  auto renewed_again = h.command(ref("r", "2026-08-03T00:00:00Z"), renewal);
  EXPECT_FALSE(renewed_again.rejected);
  EXPECT_TRUE(renewed_again.grants.empty());
  EXPECT_EQ(h.sub("s1").licenses().size(), 3u);
  EXPECT_EQ(h.events_of<license_issued>("s1").size(), 3u);
  // A subscription restored from its stored state knows its licenses too.
  const auto& live = h.sub("s1");
  subscription restored{live.record(), {},
                        live.orgs(),   live.org_delta_seqs(),
                        live.window(), live.licenses()};
  auto fx = restored.apply(command_event{ref("l", "2026-08-04T00:00:00Z"),
                                         issue_license{"s1", {}, {}}},
                           h.catalog);
  EXPECT_FALSE(fx.rejected);
  EXPECT_TRUE(fx.grants.empty());
}

TEST(licenses, explicit_issue_respects_the_term_end) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  auto late = h.command(ref("l1", "2026-01-02T00:00:00Z"),
                        issue_license{"s1", {}, at("2027-06-01T00:00:00Z")});
  EXPECT_EQ(late.rejected->code, rejection_code::invalid_expires_at);
  auto ok = h.command(ref("l2", "2026-01-02T00:00:00Z"),
                      issue_license{"s1", std::vector<std::string>{"extra"},
                                    at("2026-06-01T00:00:00Z")});
  ASSERT_EQ(ok.grants.size(), 1u);
  EXPECT_EQ(ok.grants[0].expires_at, at("2026-06-01T00:00:00Z"));
  EXPECT_EQ(ok.grants[0].features,
            (std::vector<std::string>{"audit_events", "extra", "sso"}));
  EXPECT_NE(ok.grants[0].license_id, h.sub("s1").licenses().front().license_id);
  // Once the term has ended (without `expire`), the default expiry, the
  // term's end, is in the past too: no license born expired.
  auto after_end = h.command(ref("l3", "2027-01-02T00:00:00Z"),
                             issue_license{"s1", {}, {}});
  ASSERT_TRUE(after_end.rejected);
  EXPECT_EQ(after_end.rejected->code, rejection_code::invalid_expires_at);
  EXPECT_NE(after_end.rejected->message.find("2027-01-01T00:00:00Z"),
            std::string::npos)
    << after_end.rejected->message;
  EXPECT_TRUE(after_end.grants.empty());
}

TEST(licenses, explicit_issue_is_not_born_never_valid) {
  // After a renewal announced in advance the term starts in the future, and
  // a license's nbf is the term start: one expiring before it was issued
  // (201, "valid") and could never be valid.
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  auto renewed = h.command(
    ref("r", "2026-06-01T00:00:00Z"),
    renew_subscription{
      "s1", {at("2027-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z")}, {}, {}});
  ASSERT_FALSE(renewed.rejected);
  for (const char* expires : {"2026-09-01T00:00:00Z", "2027-01-01T00:00:00Z"}) {
    auto before_start
      = h.command(ref(std::string{"l-"} + expires, "2026-06-02T00:00:00Z"),
                  issue_license{"s1", {}, at(expires)});
    ASSERT_TRUE(before_start.rejected) << expires;
    EXPECT_EQ(before_start.rejected->code, rejection_code::invalid_expires_at);
    EXPECT_TRUE(before_start.grants.empty());
  }
  auto ok = h.command(ref("l-ok", "2026-06-02T00:00:00Z"),
                      issue_license{"s1", {}, at("2027-03-01T00:00:00Z")});
  ASSERT_FALSE(ok.rejected);
  ASSERT_EQ(ok.grants.size(), 1u);
  EXPECT_EQ(ok.grants[0].not_before, at("2027-01-01T00:00:00Z"));
}

TEST(licenses, the_instance_domain_is_locked_while_a_license_is_valid) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  update_metadata move{
    "s1", {}, {}, instance_patch{std::string{"new.example.com"}, {}}, {}, {}};
  auto fx = h.command(ref("m1", "2026-02-01T00:00:00Z"), move);
  ASSERT_TRUE(fx.rejected);
  EXPECT_EQ(fx.rejected->code, rejection_code::instance_domain_locked);
  // The same domain again is fine, and so is a change once licenses expired.
  update_metadata same{
    "s1", {}, {}, instance_patch{std::string{"s1.example.com"}, {}}, {}, {}};
  EXPECT_FALSE(h.command(ref("m2", "2026-02-01T00:00:00Z"), same).rejected);
  fx = h.command(ref("m3", "2027-02-01T00:00:00Z"), move);
  EXPECT_FALSE(fx.rejected);
  EXPECT_EQ(h.sub("s1").record().instance.domain, "new.example.com");
}

TEST(licenses, metadata_cannot_drop_the_salesforce_account) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  update_metadata clear{"s1", {}, customer_patch{std::string{}, {}},
                        {},   {}, {}};
  auto fx = h.command(ref("m", "2026-01-02T00:00:00Z"), clear);
  ASSERT_TRUE(fx.rejected);
  EXPECT_EQ(fx.rejected->code, rejection_code::missing_salesforce_account);
}

TEST(licenses, license_ids_derive_from_the_command) {
  domain_harness a;
  domain_harness b;
  auto cmd = create_cmd("s1", 1, "2026-01-01T00:00:00Z",
                        "2027-01-01T00:00:00Z");
  auto x = a.command(ref("c", "2026-01-01T00:00:00Z"), cmd);
  auto y = b.command(ref("c", "2026-01-01T00:00:00Z"), cmd);
  EXPECT_EQ(x.grants.at(0).license_id, y.grants.at(0).license_id);
  ASSERT_EQ(x.events.size(), y.events.size());
  for (size_t i = 0; i < x.events.size(); ++i)
    EXPECT_EQ(x.events[i].id, y.events[i].id);
}

// -- months -------------------------------------------------------------------

TEST(months, a_month_closes_when_the_clock_passes_its_end) {
  domain_harness h;
  h.command(ref("c", "2026-01-15T00:00:00Z"),
            create_cmd("s1", 20, "2026-01-15T00:00:00Z",
                       "2027-01-15T00:00:00Z"));
  linked_org(h, "o1", "s1", {}, "2026-01-15T00:00:00Z");
  std::vector<std::string> users;
  for (int i = 0; i < 15; ++i)
    add(h, "a" + std::to_string(i), "o1", "u" + std::to_string(10 + i),
        i < 10 ? "2026-01-16T00:00:00Z" : "2026-01-20T00:00:00Z");
  for (int i = 0; i < 6; ++i)
    remove(h, "r" + std::to_string(i), "o1", "u" + std::to_string(10 + i),
           "2026-01-25T00:00:00Z");
  EXPECT_TRUE(h.events_of<month_closed>("s1").empty());
  add(h, "feb", "o1", "late", "2026-02-15T00:00:00Z"); // exactly at the end
  auto closed = h.events_of<month_closed>("s1");
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].month_index, 1);
  EXPECT_EQ(closed[0].peak_seats, 15);
  EXPECT_EQ(closed[0].peak_at, at("2026-01-20T00:00:00Z"));
  // The sweeper closes an idle subscription's months.
  auto fx = h.sub("s1").close_months(at("2026-04-01T00:00:00Z"));
  ASSERT_EQ(fx.events.size(), 1u); // month 3 ends on April 15
  auto m2 = std::get<month_closed>(fx.events[0].payload);
  EXPECT_EQ(m2.month_index, 2);
  EXPECT_EQ(m2.peak_seats, 10);
  EXPECT_EQ(m2.peak_at, at("2026-02-15T00:00:00Z"));
  // A late record now lands after the closed month.
  EXPECT_EQ(h.sub("s1").record().clock, at("2026-03-15T00:00:00Z"));
  add(h, "old", "o1", "old", "2026-02-20T00:00:00Z");
  EXPECT_EQ(h.ledger("s1").back().effective_at, at("2026-03-15T00:00:00Z"));
}

TEST(months, create_closes_months_already_past_at_once) {
  domain_harness h;
  linked_org(h, "o1", "s1", {"a", "b"}, "2026-01-20T00:00:00Z");
  auto fx = h.command(ref("c", "2026-04-20T00:00:00Z"),
                      create_cmd("s1", 5, "2026-01-15T00:00:00Z",
                                 "2027-01-15T00:00:00Z"));
  std::vector<month_closed> closed;
  for (auto& e : fx.events)
    if (auto* m = std::get_if<month_closed>(&e.payload))
      closed.push_back(*m);
  ASSERT_EQ(closed.size(), 3u);
  EXPECT_EQ(closed[0].peak_seats, 2);
  EXPECT_EQ(closed[0].peak_at, at("2026-01-20T00:00:00Z"));
  EXPECT_EQ(closed[2].end, at("2026-04-15T00:00:00Z"));
  EXPECT_EQ(h.sub("s1").next_month_end(), at("2026-05-15T00:00:00Z"));
}

TEST(months,
     a_create_long_after_the_pools_first_entries_needs_the_earlier_ledger) {
  // The in-memory window reaches back 400 days before the clock: a create
  // of a term that started earlier closed its first months from the count
  // folded in at the window's start (peak 2, not 10). Given the ledger from
  // the term's start, as the coordinator reads it, the months are right.
  auto history = [](domain_harness& h) {
    filled_and_emptied_in_january_2024(h, "2025-03-01T00:00:00Z");
  };
  auto january = [](const subscription_effects& fx) {
    for (auto& e : fx.events)
      if (auto* m = std::get_if<month_closed>(&e.payload))
        if (m->month_index == 1)
          return *m;
    ADD_FAILURE() << "month 1 not closed";
    return month_closed{};
  };
  const auto create = create_cmd("s1", 5, "2024-01-01T00:00:00Z",
                                 "2026-01-01T00:00:00Z");

  domain_harness trimmed;
  history(trimmed);
  EXPECT_GT(trimmed.sub("s1").window().exact_from, at("2024-01-01T00:00:00Z"));
  auto wrong
    = january(trimmed.command(ref("c", "2025-03-02T00:00:00Z"), create));
  EXPECT_EQ(wrong.peak_seats, 2); // what the service published

  domain_harness h;
  history(h);
  ledger_window earlier;
  earlier.exact_from = at("2024-01-01T00:00:00Z");
  for (const auto& e : h.ledger("s1"))
    earlier.points.push_back({e.seq, e.seats_in_use, e.effective_at});
  h.sub("s1").hold_window(&earlier);
  // A record applied before the create in the same job keeps it.
  add(h, "before-create", "o1", "u11", "2025-03-01T12:00:00Z");
  auto right = january(h.command(ref("c", "2025-03-02T00:00:00Z"), create));
  EXPECT_EQ(right.peak_seats, 10);
  EXPECT_EQ(right.peak_at, at("2024-01-10T00:00:00Z"));
  EXPECT_EQ(right.peak_seq, std::optional<std::int64_t>{10});
  // Released, the window is trimmed as before.
  h.sub("s1").release_window();
  EXPECT_EQ(h.sub("s1").window().exact_from,
            ledger_window_start(h.sub("s1").record()));
}

TEST(months, a_held_window_keeps_what_a_jobs_earlier_records_would_trim) {
  // The coordinator reads the earlier ledger only when a term starts before
  // the window as the last job left it. A record applied before the create
  // in the same job moved the clock and trimmed the window past the term's
  // start: month 1 closed with peak 2. The actor holds the window for a job
  // that starts a term.
  auto history = [](domain_harness& h) {
    filled_and_emptied_in_january_2024(h, "2025-01-28T00:00:00Z");
  };
  const auto create = create_cmd("s1", 5, "2024-01-01T00:00:00Z",
                                 "2026-01-01T00:00:00Z");
  auto month_one_peak = [&](bool hold) {
    domain_harness h;
    history(h);
    // Still answers from before the term's start: nothing to read.
    EXPECT_LT(h.sub("s1").window().exact_from, at("2024-01-01T00:00:00Z"));
    if (hold)
      h.sub("s1").hold_window();
    add(h, "in-job", "o1", "u11", "2025-03-01T00:00:00Z");
    auto fx = h.command(ref("c", "2025-03-02T00:00:00Z"), create);
    h.sub("s1").release_window();
    for (auto& e : fx.events)
      if (auto* m = std::get_if<month_closed>(&e.payload))
        if (m->month_index == 1)
          return m->peak_seats;
    ADD_FAILURE() << "month 1 not closed";
    return std::int64_t{-1};
  };
  EXPECT_EQ(month_one_peak(false), 2);
  EXPECT_EQ(month_one_peak(true), 10);
}

TEST(months, expiry_cuts_the_term_and_closes_the_partial_month) {
  domain_harness h;
  h.command(ref("c", "2026-01-15T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-15T00:00:00Z",
                       "2027-01-15T00:00:00Z"));
  auto fx = h.command(ref("x", "2026-02-20T00:00:00Z"),
                      expire_subscription{"s1"});
  auto closed = h.events_of<month_closed>("s1");
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[1].start, at("2026-02-15T00:00:00Z"));
  EXPECT_EQ(closed[1].end, at("2026-02-20T00:00:00Z"));
  EXPECT_FALSE(h.sub("s1").next_month_end());
  ASSERT_FALSE(fx.term_changes.empty());
  EXPECT_EQ(fx.term_changes.back().usage_end, at("2026-02-20T00:00:00Z"));
}

TEST(months, a_renewal_in_advance_keeps_the_old_term_until_the_new_starts) {
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-01T00:00:00Z",
                       "2026-03-01T00:00:00Z"));
  h.command(
    ref("r", "2026-01-20T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-03-01T00:00:00Z"), at("2027-03-01T00:00:00Z")}, {}, {}});
  ASSERT_EQ(h.sub("s1").record().terms.size(), 2u);
  EXPECT_EQ(h.sub("s1").record().terms[0].usage_end,
            at("2026-03-01T00:00:00Z"));
  h.sub("s1").close_months(at("2026-03-15T00:00:00Z"));
  EXPECT_EQ(h.sub("s1").record().terms[0].closed_months, 2);
  EXPECT_EQ(h.sub("s1").record().terms[1].closed_months, 0);
  EXPECT_EQ(h.sub("s1").next_month_end(), at("2026-04-01T00:00:00Z"));
}

TEST(months, renewing_with_the_same_start_never_closes_a_month_twice) {
  // Found by the property test: a finished term renewed with the same start.
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-01T00:00:00Z",
                       "2026-03-01T00:00:00Z"));
  h.close_months("s1", at("2026-03-02T00:00:00Z"));
  EXPECT_EQ(h.events_of<month_closed>("s1").size(), 2u);
  h.command(
    ref("r", "2026-03-05T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-01-01T00:00:00Z"), at("2026-06-01T00:00:00Z")}, {}, {}});
  std::set<int> seen;
  for (const auto& m : h.events_of<month_closed>("s1"))
    EXPECT_TRUE(seen.insert(m.month_index).second) << m.month_index;
  EXPECT_EQ(h.sub("s1").record().terms.size(), 1u);
  EXPECT_EQ(h.sub("s1").record().terms[0].closed_months, 2);
}

TEST(months, expire_and_archive_end_a_term_still_running_after_a_renewal) {
  // A renewal announced in advance leaves the old term running until the
  // new one starts. expire and archive cut only the new term, so the old
  // one's months went on taking seats added after them and closing for a
  // year.
  for (bool archive : {false, true}) {
    SCOPED_TRACE(archive ? "archive" : "expire");
    domain_harness h;
    h.command(ref("c", "2026-06-01T00:00:00Z"),
              create_cmd("s1", 5, "2026-06-01T00:00:00Z",
                         "2027-06-01T00:00:00Z"));
    linked_org(h, "o1", "s1", {"a"}, "2026-06-02T00:00:00Z");
    h.command(ref("r", "2026-06-03T00:00:00Z"),
              renew_subscription{"s1",
                                 {at("2027-06-01T00:00:00Z"),
                                  at("2028-06-01T00:00:00Z")},
                                 {},
                                 {}});
    auto ended = archive ? h.command(ref("x", "2026-06-04T00:00:00Z"),
                                     archive_subscription{"s1", "churned"})
                         : h.command(ref("x", "2026-06-04T00:00:00Z"),
                                     expire_subscription{"s1"});
    ASSERT_FALSE(ended.rejected);
    auto closed = h.events_of<month_closed>("s1");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0].term_start, at("2026-06-01T00:00:00Z"));
    EXPECT_EQ(closed[0].end, at("2026-06-04T00:00:00Z"));
    EXPECT_EQ(closed[0].peak_seats, 1);
    EXPECT_FALSE(h.sub("s1").next_month_end());
    const auto& terms = h.sub("s1").record().terms;
    ASSERT_EQ(terms.size(), 2u);
    EXPECT_EQ(terms[0].usage_end, at("2026-06-04T00:00:00Z"));
    // The term that had not started ends with no month.
    EXPECT_EQ(terms[1].usage_end, terms[1].start);
    add(h, "late", "o1", "b", "2026-06-05T00:00:00Z");
    h.close_months("s1", at("2028-07-01T00:00:00Z"));
    EXPECT_EQ(h.events_of<month_closed>("s1").size(), 1u);
  }
}

TEST(months, a_new_term_that_would_extend_a_month_cut_short_is_rejected) {
  // Months are named by their term's start. A renewal with the start of a
  // term whose last closed month was cut short (by expire, or by the term's
  // own end) replaced that term and stretched the closed month: its peak
  // and end changed after month_closed and the signed export had them.
  domain_harness h;
  h.command(ref("c", "2026-01-01T00:00:00Z"),
            create_cmd("s1", 5, "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a"}, "2026-01-05T00:00:00Z");
  h.command(ref("x", "2026-01-10T00:00:00Z"), expire_subscription{"s1"});
  add(h, "b", "o1", "b", "2026-01-12T00:00:00Z");
  auto same_start = h.command(
    ref("r1", "2026-01-15T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")}, {}, {}});
  ASSERT_TRUE(same_start.rejected);
  EXPECT_EQ(same_start.rejected->code, rejection_code::invalid_term);
  EXPECT_NE(same_start.rejected->message.find("closed"), std::string::npos)
    << same_start.rejected->message;
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::expired);
  ASSERT_EQ(h.sub("s1").record().terms.size(), 1u);
  EXPECT_EQ(h.sub("s1").record().terms[0].usage_end,
            at("2026-01-10T00:00:00Z"));
  // Started later, the renewal applies; the closed month stays as it was.
  auto later = h.command(
    ref("r2", "2026-01-15T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")}, {}, {}});
  EXPECT_FALSE(later.rejected);
  EXPECT_EQ(h.sub("s1").record().status, subscription_status::active);
  EXPECT_EQ(h.sub("s1").record().terms[0].usage_end,
            at("2026-01-10T00:00:00Z"));

  // A trial whose 30 days ended inside its second month, converted with
  // the trial's start after that month closed.
  h.command(ref("t", "2026-03-01T00:00:00Z"),
            create_cmd("s2", 0, "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z",
                       true));
  h.close_months("s2", at("2026-04-02T00:00:00Z"));
  ASSERT_EQ(h.events_of<month_closed>("s2").size(), 1u);
  auto convert = h.command(
    ref("v", "2026-04-03T00:00:00Z"),
    convert_trial{"s2",
                  "premium-annual",
                  10,
                  {at("2026-03-01T00:00:00Z"), at("2027-03-01T00:00:00Z")}});
  ASSERT_TRUE(convert.rejected);
  EXPECT_EQ(convert.rejected->code, rejection_code::invalid_term);
  EXPECT_TRUE(h.sub("s2").record().trial);

  // The same before the sweeper closed the month: it closes as the command
  // applies, so the check counts it closed (the review found it stretched).
  h.command(ref("t3", "2026-03-01T00:00:00Z"),
            create_cmd("s3", 0, "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z",
                       true));
  auto early = h.command(
    ref("v3", "2026-03-31T00:30:00Z"),
    convert_trial{"s3",
                  "premium-annual",
                  10,
                  {at("2026-03-01T00:00:00Z"), at("2027-03-01T00:00:00Z")}});
  ASSERT_TRUE(early.rejected);
  EXPECT_EQ(early.rejected->code, rejection_code::invalid_term);
}

// -- event ids ----------------------------------------------------------------

namespace {

std::set<std::string> ids_of(const std::vector<output_event>& events) {
  std::set<std::string> ids;
  for (const auto& e : events)
    ids.insert(e.id);
  return ids;
}

} // namespace

TEST(event_ids, an_event_applied_afresh_after_the_window_causes_new_ids) {
  // Past the de-duplication window a re-sent upstream event is applied
  // afresh. Its new ledger entry went out under the first entry's event id
  // (and its delta under the first delta's), so a consumer de-duplicating
  // by id dropped it and counted one seat less than the ledger.
  domain_harness h;
  h.command(ref("c", "2026-07-01T00:00:00Z"),
            create_cmd("s1", 1, "2026-07-01T00:00:00Z",
                       "2027-07-01T00:00:00Z"));
  linked_org(h, "o1", "s1", {"a"}, "2026-07-02T00:00:00Z");
  auto first = h.membership(ref("j4", "2026-07-03T00:00:00Z"),
                            member_added{"o1", "tz", true, {}});
  h.membership(ref("j6", "2026-07-04T00:00:00Z"),
               member_added{"o1", "tz", false, {}});
  auto again = h.membership(ref("j4", "2026-07-03T00:00:00Z"),
                            member_added{"o1", "tz", true, {}});
  ASSERT_EQ(first.deltas.size(), 1u);
  ASSERT_EQ(again.deltas.size(), 1u);
  EXPECT_NE(first.deltas[0].delta_id, again.deltas[0].delta_id);
  ASSERT_EQ(h.ledger("s1").size(), 4u);
  auto events = h.events("s1");
  EXPECT_EQ(ids_of(events).size(), events.size());

  // A command: applied to the same state again (a batch retried) it makes
  // the same ids; sent again and applied to the state its first copy left,
  // new ones.
  command_event entitlements{ref("u", "2026-07-05T00:00:00Z"),
                             update_entitlements{"s1", 7, {}, {}}};
  auto before = h.sub("s1");
  auto applied = h.sub("s1").apply(entitlements, h.catalog);
  auto retried = before.apply(entitlements, h.catalog);
  ASSERT_FALSE(applied.events.empty());
  EXPECT_EQ(ids_of(retried.events), ids_of(applied.events));
  h.command(ref("u2", "2026-07-06T00:00:00Z"),
            update_entitlements{"s1", 9, {}, {}});
  auto sent_again = h.sub("s1").apply(entitlements, h.catalog);
  ASSERT_FALSE(sent_again.events.empty());
  for (const auto& id : ids_of(sent_again.events))
    EXPECT_EQ(ids_of(applied.events).count(id), 0u) << id;
}

TEST(event_ids, a_command_sent_again_never_reuses_ids_whatever_state_it_meets) {
  // The ids of a command's events took a digest of the state it met, but
  // not of what PostgreSQL does not give back byte for byte (the
  // rate_limit_overrides, reordered by JSONB). A command sent again past
  // the window that met a state differing only there published other
  // content under the first copy's ids. Now they take the count of
  // commands applied before it, which only grows.
  domain_harness h;
  auto t = "2026-03-01T00:00:00Z";
  h.command(ref("c", t), create_cmd("s1", 5, t, "2027-03-01T00:00:00Z"));
  auto overrides = [&](const char* id, const char* json) {
    update_metadata metadata;
    metadata.subscription_id = "s1";
    metadata.rate_limit_overrides = json;
    h.command(ref(id, t), metadata);
  };
  overrides("m-a", R"({"api":1})");
  auto first = h.command(ref("seven", t), update_entitlements{"s1", 7, {}, {}});
  h.command(ref("five", t), update_entitlements{"s1", 5, {}, {}});
  overrides("m-b", R"({"api":2})");
  EXPECT_EQ(h.sub("s1").record().commands_applied, 5);
  auto again = h.command(ref("seven", t), update_entitlements{"s1", 7, {}, {}});
  ASSERT_FALSE(first.events.empty());
  ASSERT_FALSE(again.events.empty());
  for (const auto& id : ids_of(again.events))
    EXPECT_EQ(ids_of(first.events).count(id), 0u) << id;
  auto events = h.events("s1");
  EXPECT_EQ(ids_of(events).size(), events.size());

  // Rejected commands change nothing, the count included.
  auto rejected = h.command(ref("bad", t),
                            renew_subscription{"s1", {at(t), at(t)}, {}, {}});
  ASSERT_TRUE(rejected.rejected);
  EXPECT_EQ(h.sub("s1").record().commands_applied, 6);
}

TEST(event_ids, do_not_depend_on_what_storage_reads_back_otherwise) {
  // The state an actor reloads from PostgreSQL has rate_limit_overrides as
  // JSONB gives it back (keys reordered); a command's ids must not depend
  // on that text, or a passivated or restarted actor would mint other ids
  // than a running one.
  std::vector<std::set<std::string>> ids;
  for (const char* overrides : {R"({"zz":1,"a":2})", R"({"a":2,"zz":1})"}) {
    domain_harness h;
    h.command(ref("c", "2026-01-01T00:00:00Z"),
              create_cmd("s1", 5, "2026-01-01T00:00:00Z",
                         "2027-01-01T00:00:00Z"));
    update_metadata metadata;
    metadata.subscription_id = "s1";
    metadata.rate_limit_overrides = overrides;
    h.command(ref("m", "2026-01-02T00:00:00Z"), metadata);
    ids.push_back(ids_of(h.command(ref("u", "2026-01-03T00:00:00Z"),
                                   update_entitlements{"s1", 7, {}, {}})
                           .events));
  }
  EXPECT_FALSE(ids[0].empty());
  EXPECT_EQ(ids[0], ids[1]);
}

TEST(event_ids, do_not_depend_on_whether_the_sweeper_came_first) {
  // The sweeper moves an idle subscription's clock to a month's end when
  // it happens to run; a replay (after a crash, a move, a passivation)
  // closes the same month as the next command applies. The command's ids
  // must be the same either way.
  std::vector<std::set<std::string>> ids;
  for (bool swept : {true, false}) {
    domain_harness h;
    h.command(ref("c", "2026-01-15T00:00:00Z"),
              create_cmd("s1", 5, "2026-01-15T00:00:00Z",
                         "2027-01-15T00:00:00Z"));
    // Fixed ids: linked_org numbers its events across calls.
    add(h, "join", "o1", "a", "2026-02-14T12:00:00Z");
    h.membership(ref("link", "2026-02-14T12:00:00Z"), org_linked{"o1", "s1"});
    if (swept)
      h.close_months("s1", at("2026-02-15T01:00:00Z"));
    auto fx = h.command(ref("u", "2026-02-15T03:00:00Z"),
                        update_entitlements{"s1", 7, {}, {}});
    std::set<std::string> command_ids;
    for (const auto& e : fx.events)
      if (!std::holds_alternative<month_closed>(e.payload))
        command_ids.insert(e.id);
    ids.push_back(command_ids);
  }
  EXPECT_FALSE(ids[0].empty());
  EXPECT_EQ(ids[0], ids[1]);
}
