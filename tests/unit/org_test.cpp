#include <algorithm>
#include <gtest/gtest.h>

#include "domain/org.hpp"
#include "test_support.hpp"

using namespace seatledger::domain;
using seatledger::test::ref;

namespace {

org_effects apply(org_state& org, const std::string& id,
                  membership_change change, std::size_t max = 2000) {
  return org.apply({ref(id, "2026-01-01T00:00:00Z"), std::move(change)}, max);
}

std::vector<seat_contribution> all_changes(const org_effects& fx,
                                           const std::string& sub) {
  std::vector<seat_contribution> out;
  for (const auto& d : fx.deltas)
    if (d.subscription_id == sub)
      out.insert(out.end(), d.changes.begin(), d.changes.end());
  return out;
}

} // namespace

TEST(org, members_of_an_unlinked_org_produce_no_deltas) {
  org_state org{"o1"};
  auto fx = apply(org, "e1", member_added{"o1", "u1", true, {}});
  EXPECT_TRUE(fx.deltas.empty());
  ASSERT_EQ(fx.member_changes.size(), 1u);
  EXPECT_EQ(fx.member_changes[0].billable, true);
  EXPECT_EQ(org.billable_count(), 1u);
}

TEST(org, linking_contributes_every_billable_member_in_user_order) {
  org_state org{"o1"};
  apply(org, "e1", member_added{"o1", "u2", true, {}});
  apply(org, "e2", member_added{"o1", "u1", true, {}});
  apply(org, "e3", member_added{"o1", "guest", false, {}});
  auto fx = apply(org, "e4", org_linked{"o1", "s1"});
  ASSERT_EQ(fx.deltas.size(), 1u);
  EXPECT_TRUE(fx.deltas[0].org_linked);
  EXPECT_EQ(fx.deltas[0].changes,
            (std::vector<seat_contribution>{{"u1", true}, {"u2", true}}));
  ASSERT_TRUE(fx.new_link);
  EXPECT_EQ(**fx.new_link, "s1");
}

TEST(org, linking_an_empty_org_still_tells_the_subscription) {
  org_state org{"o1"};
  auto fx = apply(org, "e1", org_linked{"o1", "s1"});
  ASSERT_EQ(fx.deltas.size(), 1u);
  EXPECT_TRUE(fx.deltas[0].changes.empty());
  EXPECT_TRUE(fx.deltas[0].org_linked);
}

TEST(org, linking_elsewhere_moves_the_members) {
  org_state org{"o1"};
  apply(org, "e1", member_added{"o1", "u1", true, {}});
  apply(org, "e2", org_linked{"o1", "s1"});
  auto fx = apply(org, "e3", org_linked{"o1", "s2"});
  ASSERT_EQ(fx.deltas.size(), 2u);
  EXPECT_EQ(fx.deltas[0].subscription_id, "s1");
  EXPECT_FALSE(fx.deltas[0].org_linked);
  EXPECT_EQ(all_changes(fx, "s1"),
            (std::vector<seat_contribution>{{"u1", false}}));
  EXPECT_EQ(fx.deltas[1].subscription_id, "s2");
  EXPECT_EQ(all_changes(fx, "s2"),
            (std::vector<seat_contribution>{{"u1", true}}));
  EXPECT_NE(fx.deltas[0].delta_id, fx.deltas[1].delta_id);
}

TEST(org, linking_to_the_same_subscription_again_is_a_no_op) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  EXPECT_TRUE(apply(org, "e2", org_linked{"o1", "s1"}).empty());
}

TEST(org, a_stale_unlink_is_a_no_op) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  EXPECT_TRUE(apply(org, "e2", org_unlinked{"o1", "s9"}).empty());
  auto fx = apply(org, "e3", org_unlinked{"o1", "s1"});
  ASSERT_EQ(fx.deltas.size(), 1u);
  EXPECT_FALSE(fx.deltas[0].org_linked);
  EXPECT_FALSE(org.subscription_id());
}

TEST(org, adding_a_present_member_with_the_same_billability_is_a_no_op) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  apply(org, "e2", member_added{"o1", "u1", true, {}});
  EXPECT_TRUE(apply(org, "e3", member_added{"o1", "u1", true, {}}).empty());
  EXPECT_TRUE(apply(org, "e4", member_removed{"o1", "nobody"}).empty());
}

TEST(org, upserts_set_billability_as_stated) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  apply(org, "e2", member_added{"o1", "u1", true, {}});
  auto fx = apply(org, "e3", member_added{"o1", "u1", false, {}});
  EXPECT_EQ(all_changes(fx, "s1"),
            (std::vector<seat_contribution>{{"u1", false}}));
  fx = apply(org, "e4", member_updated{"o1", "u2", true, {}});
  EXPECT_EQ(all_changes(fx, "s1"),
            (std::vector<seat_contribution>{{"u2", true}}));
  // Guest to guest: membership changes, seats do not.
  fx = apply(org, "e5", member_updated{"o1", "u3", false, {"guest"}});
  EXPECT_TRUE(fx.deltas.empty());
  EXPECT_EQ(fx.member_changes.size(), 1u);
}

TEST(org, member_changes_say_what_the_member_was_before) {
  org_state org{"o1"};
  apply(org, "e1", member_added{"o1", "stays", true, {}});
  apply(org, "e2", member_added{"o1", "leaves", false, {}});
  auto fx = apply(org, "e3",
                  org_snapshot{"o1", {{"stays", false}, {"joins", true}}});
  ASSERT_EQ(fx.member_changes.size(), 3u);
  const auto& joins = fx.member_changes[0];
  EXPECT_EQ(joins.user_id, "joins");
  EXPECT_EQ(joins.billable, true);
  EXPECT_EQ(joins.previous, std::nullopt);
  const auto& leaves = fx.member_changes[1];
  EXPECT_EQ(leaves.user_id, "leaves");
  EXPECT_EQ(leaves.billable, std::nullopt);
  EXPECT_EQ(leaves.previous, false);
  const auto& stays = fx.member_changes[2];
  EXPECT_EQ(stays.user_id, "stays");
  EXPECT_EQ(stays.billable, false);
  EXPECT_EQ(stays.previous, true);
}

TEST(org, removing_a_billable_member_takes_the_seat) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  apply(org, "e2", member_added{"o1", "u1", true, {}});
  auto fx = apply(org, "e3", member_removed{"o1", "u1"});
  EXPECT_EQ(all_changes(fx, "s1"),
            (std::vector<seat_contribution>{{"u1", false}}));
  EXPECT_TRUE(org.members().empty());
}

TEST(org, snapshot_applies_the_difference) {
  org_state org{"o1"};
  apply(org, "e1", org_linked{"o1", "s1"});
  apply(org, "e2", member_added{"o1", "keep", true, {}});
  apply(org, "e3", member_added{"o1", "leave", true, {}});
  apply(org, "e4", member_added{"o1", "demote", true, {}});
  auto fx = apply(
    org, "e5",
    org_snapshot{
      "o1",
      {{"keep", true}, {"demote", false}, {"join", true}, {"guest", false}}});
  EXPECT_EQ(all_changes(fx, "s1"),
            (std::vector<seat_contribution>{
              {"demote", false}, {"leave", false}, {"join", true}}));
  EXPECT_EQ(fx.member_changes.size(), 4u); // demote, guest, join, leave
  EXPECT_EQ(org.members().size(), 4u);
  EXPECT_EQ(org.billable_count(), 2u);
  // The same snapshot again changes nothing.
  EXPECT_TRUE(
    apply(
      org, "e6",
      org_snapshot{
        "o1",
        {{"keep", true}, {"demote", false}, {"join", true}, {"guest", false}}})
      .empty());
}

TEST(org, large_changes_are_split_into_parts) {
  org_state org{"o1"};
  std::vector<snapshot_member> members;
  for (int i = 0; i < 25; ++i)
    members.push_back({"u" + std::to_string(100 + i), true});
  apply(org, "e1", org_snapshot{"o1", members});
  auto fx = apply(org, "e2", org_linked{"o1", "s1"}, 10);
  ASSERT_EQ(fx.deltas.size(), 3u);
  EXPECT_EQ(fx.deltas[0].changes.size(), 10u);
  EXPECT_EQ(fx.deltas[2].changes.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fx.deltas[i].part, i + 1);
    EXPECT_EQ(fx.deltas[i].parts, 3);
  }
  EXPECT_LT(fx.deltas[0].changes.back().user_id,
            fx.deltas[1].changes.front().user_id);
  EXPECT_NE(fx.deltas[0].delta_id, fx.deltas[1].delta_id);
}

TEST(org, what_it_emits_is_in_user_order_however_its_members_are_held) {
  // Members are held in a hash map: deltas and member changes must not
  // follow its order, or a re-run would emit other deltas.
  org_state org{"o1"};
  std::vector<std::string> users;
  for (int i = 0; i < 300; ++i)
    users.push_back("user-" + std::to_string((i * 7919) % 1000));
  for (const auto& u : users)
    apply(org, "add-" + u, member_added{"o1", u, true, {}});
  auto sorted = users;
  std::sort(sorted.begin(), sorted.end());
  auto in_order = [](const std::vector<seat_contribution>& changes) {
    return std::is_sorted(changes.begin(), changes.end(),
                          [](const auto& a, const auto& b) {
                            return a.user_id < b.user_id;
                          });
  };
  auto linked = all_changes(apply(org, "link", org_linked{"o1", "s1"}), "s1");
  ASSERT_EQ(linked.size(), users.size());
  EXPECT_TRUE(in_order(linked));
  // A snapshot that keeps every third user: the others leave in user order.
  std::vector<snapshot_member> kept;
  for (std::size_t i = 0; i < sorted.size(); i += 3)
    kept.push_back({sorted[i], true});
  auto fx = apply(org, "snapshot", org_snapshot{"o1", kept});
  EXPECT_EQ(fx.member_changes.size(), sorted.size() - kept.size());
  EXPECT_TRUE(std::is_sorted(fx.member_changes.begin(), fx.member_changes.end(),
                             [](const auto& a, const auto& b) {
                               return a.user_id < b.user_id;
                             }));
  auto left = all_changes(fx, "s1");
  EXPECT_EQ(left.size(), sorted.size() - kept.size());
  EXPECT_TRUE(in_order(left));
  auto unlinked = all_changes(apply(org, "unlink", org_unlinked{"o1", "s1"}),
                              "s1");
  EXPECT_EQ(unlinked.size(), kept.size());
  EXPECT_TRUE(in_order(unlinked));
}
