// Property test: random event sequences over several orgs and subscriptions.
// After every step the incremental state (seat pool, ledger, term statistics,
// overage events, closed months) must equal a brute-force recount from
// scratch. Each sequence is seeded, so a failure names its seed.

#include <gtest/gtest.h>
#include <random>

#include "test_support.hpp"

using namespace seatledger::domain;
using seatledger::test::at;
using seatledger::test::create_cmd;
using seatledger::test::domain_harness;

namespace {

constexpr int sequences = 1000;
constexpr int steps_per_sequence = 120;

const std::vector<std::string> org_ids{"o1", "o2", "o3", "o4"};
const std::vector<std::string> user_ids{"u1", "u2", "u3", "u4",
                                        "u5", "u6", "u7", "u8"};
const std::vector<std::string> sub_ids{"s1", "s2", "s3"};

// The independent model: memberships and links only.
struct model {
  std::map<std::string, std::map<std::string, bool>> members;
  std::map<std::string, std::string> links;

  std::map<std::string, std::set<std::string>>
  expected_holders(const std::string& sub) const {
    std::map<std::string, std::set<std::string>> result;
    for (const auto& [org, linked] : links) {
      if (linked != sub)
        continue;
      auto it = members.find(org);
      if (it == members.end())
        continue;
      for (const auto& [user, billable] : it->second)
        if (billable)
          result[user].insert(org);
    }
    return result;
  }
};

// Where the term statistics were last reset and frozen, per subscription.
struct stats_marks {
  /// Bumped on every reset and freeze.
  int generation = 0;
  std::int64_t reset_seq = 0;
  std::int64_t reset_count = 0;
  timestamp reset_time;
  std::optional<std::int64_t> frozen_seq;
};

class property_run {
public:
  explicit property_run(std::uint64_t seed) : rng_(seed) {}

  /// What a run exercised, so a degenerate generator fails the test.
  struct coverage {
    std::size_t entries = 0;
    std::size_t overages = 0;
    std::size_t months = 0;
    std::size_t rejections = 0;
    std::size_t licenses = 0;
  };

  coverage covered() const {
    coverage c;
    for (const auto& [id, all] : h_.effects)
      for (const auto& fx : all) {
        c.entries += fx.entries.size();
        c.rejections += fx.rejected ? 1 : 0;
        c.licenses += fx.grants.size();
        for (const auto& e : fx.events) {
          c.overages += std::holds_alternative<overage_detected>(e.payload);
          c.months += std::holds_alternative<month_closed>(e.payload);
        }
      }
    return c;
  }

  void run() {
    now_ = at("2026-01-01T00:00:00Z");
    for (int step = 0; step < steps_per_sequence; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      one_step();
      check_all();
      if (::testing::Test::HasFailure())
        return;
    }
  }

private:
  int pick(int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(rng_);
  }

  template<class T>
  const T& pick(const std::vector<T>& xs) {
    return xs[static_cast<size_t>(pick(static_cast<int>(xs.size())))];
  }

  event_ref next_ref() {
    // Mostly forward in time, sometimes late (an earlier time arrives after).
    auto hours = static_cast<std::int64_t>(pick(72));
    if (pick(10) == 0)
      hours = -static_cast<std::int64_t>(pick(200));
    now_ = timestamp::from_micros(now_.micros() + hours * 3'600'000'000LL);
    return {"prop", "e" + std::to_string(++counter_), "test", now_};
  }

  void one_step() {
    auto kind = pick(100);
    if (kind < 57) {
      membership_step();
    } else if (kind < 60) {
      // The wall clock passes month ends of an idle subscription.
      auto upto
        = timestamp::from_micros(now_.micros() + pick(40) * 86'400'000'000LL);
      h_.close_months(pick(sub_ids), upto);
    } else {
      command_step();
    }
  }

  void membership_step() {
    auto r = next_ref();
    const auto& org = pick(org_ids);
    const auto& user = pick(user_ids);
    auto choice = pick(100);
    membership_change change;
    if (choice < 35) {
      bool billable = pick(4) != 0;
      change = member_added{org, user, billable, {}};
      model_.members[org][user] = billable;
    } else if (choice < 45) {
      bool billable = pick(2) == 0;
      change = member_updated{org, user, billable, {}};
      model_.members[org][user] = billable;
    } else if (choice < 65) {
      change = member_removed{org, user};
      model_.members[org].erase(user);
    } else if (choice < 72) {
      org_snapshot snap{org, {}};
      std::map<std::string, bool> wanted;
      for (const auto& u : user_ids)
        if (pick(2) == 0)
          wanted[u] = pick(3) != 0;
      for (const auto& [u, b] : wanted)
        snap.members.push_back({u, b});
      model_.members[org] = wanted;
      change = snap;
    } else if (choice < 90) {
      const auto& sub = pick(sub_ids);
      change = org_linked{org, sub};
      model_.links[org] = sub;
    } else {
      const auto& sub = pick(sub_ids);
      change = org_unlinked{org, sub};
      auto it = model_.links.find(org);
      if (it != model_.links.end() && it->second == sub)
        model_.links.erase(it);
    }
    // Small delta parts exercise the splitting too.
    auto before = snapshot_owed();
    auto count_before = effect_counts();
    h_.membership(r, change, static_cast<std::size_t>(1 + pick(4)));
    check_overage_per_record(before, count_before);
  }

  void command_step() {
    auto r = next_ref();
    const auto& sub = pick(sub_ids);
    auto& s = h_.sub(sub);
    auto term_start = s.record().term.start;
    auto days = [](int n) {
      return static_cast<std::int64_t>(n) * 86'400'000'000LL;
    };
    auto choice = pick(100);
    subscription_command cmd;
    if (choice < 25) {
      auto c = create_cmd(sub, pick(6), "2026-01-01T00:00:00Z",
                          "2027-01-01T00:00:00Z", pick(4) == 0,
                          pick(5) == 0 ? "unknown-plan" : "ultimate-annual");
      c.term.start = timestamp::from_micros(now_.micros() - days(pick(90)));
      c.term.end = timestamp::from_micros(c.term.start.micros() + days(365));
      cmd = c;
    } else if (choice < 40) {
      // A quarter renew from the current start: a term replaced by one
      // with its own start must leave its closed months as they were.
      auto start = pick(4) == 0
                     ? term_start
                     : timestamp::from_micros(term_start.micros()
                                              + days(pick(400)) - days(5));
      cmd = renew_subscription{
        sub,
        {start, timestamp::from_micros(start.micros() + days(365))},
        pick(2) == 0 ? std::optional<std::int64_t>{pick(6)} : std::nullopt,
        {}};
    } else if (choice < 60) {
      cmd = update_entitlements{sub, pick(6), {}, {}};
    } else if (choice < 70) {
      auto start = timestamp::from_micros(now_.micros() - days(pick(10)));
      cmd = convert_trial{sub,
                          "premium-annual",
                          pick(6),
                          {start,
                           timestamp::from_micros(start.micros() + days(365))}};
    } else if (choice < 80) {
      cmd = expire_subscription{sub};
    } else if (choice < 83) {
      cmd = archive_subscription{sub, "random"};
    } else if (choice < 93) {
      cmd = issue_license{sub, {}, {}};
    } else {
      cmd = update_metadata{sub, std::string{"renamed"}, {}, {}, {}, {}};
    }
    auto before = snapshot_owed();
    auto count_before = effect_counts();
    auto fx = h_.command(r, cmd);
    check_overage_per_record(before, count_before);
    if (fx.rejected || !fx.state_changed)
      return;
    auto& rec = h_.sub(sub).record();
    auto& marks = marks_[sub];
    if (std::holds_alternative<create_subscription>(cmd)
        || std::holds_alternative<renew_subscription>(cmd)
        || std::holds_alternative<convert_trial>(cmd)) {
      marks.reset_seq = rec.ledger_seq;
      marks.reset_count = rec.seats_in_use;
      marks.reset_time = rec.clock;
      marks.frozen_seq.reset();
      ++marks.generation;
    } else if (std::holds_alternative<expire_subscription>(cmd)
               || std::holds_alternative<archive_subscription>(cmd)) {
      // Every term ends: no month is left to take seats (a term renewed
      // in advance kept running after them).
      EXPECT_FALSE(h_.sub(sub).next_month_end());
      if (!marks.frozen_seq) { // archiving an expired one freezes nothing new
        marks.frozen_seq = rec.ledger_seq;
        ++marks.generation;
      }
    }
  }

  std::map<std::string, std::int64_t> snapshot_owed() {
    std::map<std::string, std::int64_t> result;
    for (const auto& id : sub_ids)
      result[id] = h_.sub(id).record().seats_owed;
    return result;
  }

  std::map<std::string, size_t> effect_counts() {
    std::map<std::string, size_t> result;
    for (const auto& id : sub_ids)
      result[id] = h_.effects[id].size();
    return result;
  }

  // Exactly one overage event for each applied record after which
  // seats_owed is higher than before it.
  void
  check_overage_per_record(const std::map<std::string, std::int64_t>& before,
                           const std::map<std::string, size_t>& counts) {
    for (const auto& id : sub_ids) {
      auto& all = h_.effects[id];
      auto owed = before.at(id);
      for (auto i = counts.at(id); i < all.size(); ++i) {
        auto& fx = all[i];
        std::vector<overage_detected> overages;
        for (auto& e : fx.events)
          if (auto* o = std::get_if<overage_detected>(&e.payload))
            overages.push_back(*o);
        // Reconstruct owed after this record from its own events: the last
        // seats_changed or lifecycle event leaves the record's state; the
        // simplest independent witness is the final state for the last one.
        if (i + 1 == all.size()) {
          auto after = h_.sub(id).record().seats_owed;
          bool live = h_.sub(id).statistics_live();
          EXPECT_EQ(overages.size(), (live && after > owed) ? 1u : 0u)
            << id << " owed " << owed << " -> " << after;
          if (!overages.empty()) {
            EXPECT_EQ(overages[0].previous_seats_owed, owed);
            EXPECT_EQ(overages[0].seats_owed, after);
          }
        } else {
          // The earlier parts of one delta split in parts: its overage
          // comes with the last.
          EXPECT_EQ(overages.size(), 0u) << id << " part " << i;
        }
      }
    }
  }

  /// How far the checks of one subscription got: each step checks only
  /// what is new, so a sequence costs linear time, not quadratic.
  struct progress {
    chain_verifier verifier;
    std::size_t entries = 0;
    std::size_t effects = 0;
    std::int64_t count = 0;
    timestamp last = timestamp::min();
    ledger_window full;
    /// Each closed month's bounds, by term start and month.
    std::map<std::pair<std::int64_t, int>, std::pair<timestamp, timestamp>>
      months;
    // Running term statistics since `reset_seq`, up to `upto_seq`.
    int generation = -1;
    std::optional<std::int64_t> frozen_seq;
    std::int64_t max = 0;
    timestamp changed_at;
    std::int64_t upto_seq = 0;
  };

  void check_all() {
    for (const auto& id : sub_ids) {
      SCOPED_TRACE("subscription " + id);
      auto& s = h_.sub(id);
      const auto& rec = s.record();
      auto& p = progress_[id];
      // Seat pool against the recount.
      auto expected = model_.expected_holders(id);
      EXPECT_EQ((std::map<std::string, std::set<std::string>>{
                  s.holders().begin(), s.holders().end()}),
                expected);
      EXPECT_EQ(rec.seats_in_use, static_cast<std::int64_t>(expected.size()));
      std::set<std::string> expected_orgs;
      for (const auto& [org, sub] : model_.links)
        if (sub == id)
          expected_orgs.insert(org);
      EXPECT_EQ(s.orgs(), expected_orgs);
      // Ledger: gap-free, chained, ±1 steps, monotone effective time, and its
      // last count is the pool's size.
      const auto& entries = h_.ledger(id);
      for (; p.entries < entries.size(); ++p.entries) {
        const auto& e = entries[p.entries];
        EXPECT_FALSE(p.verifier.next(e));
        EXPECT_EQ(std::abs(e.seats_in_use - p.count), 1);
        EXPECT_GE(e.effective_at, p.last);
        p.count = e.seats_in_use;
        p.last = e.effective_at;
        p.full.points.push_back({e.seq, e.seats_in_use, e.effective_at});
      }
      EXPECT_EQ(p.count, rec.seats_in_use);
      EXPECT_EQ(static_cast<std::int64_t>(entries.size()), rec.ledger_seq);
      // Term statistics from the ledger since the last reset.
      if (rec.status != subscription_status::none) {
        const auto& marks = marks_[id];
        if (marks.generation != p.generation) {
          p.generation = marks.generation;
          p.frozen_seq = marks.frozen_seq;
          p.max = marks.reset_count;
          p.changed_at = marks.reset_time;
          p.upto_seq = marks.reset_seq;
        }
        for (auto seq = p.upto_seq + 1;
             seq <= static_cast<std::int64_t>(entries.size())
             && (!p.frozen_seq || seq <= *p.frozen_seq);
             ++seq) {
          const auto& e = entries[static_cast<std::size_t>(seq - 1)];
          if (e.seats_in_use > p.max) {
            p.max = e.seats_in_use;
            p.changed_at = e.effective_at;
          }
          p.upto_seq = seq;
        }
        EXPECT_EQ(rec.max_seats_used, p.max);
        EXPECT_EQ(rec.max_seats_used_changed_at, p.changed_at);
        EXPECT_EQ(rec.seats_owed, seats_owed_for(p.max, rec.seats, rec.trial));
      }
      // Every month closed since the last step equals the batch computation
      // over the full ledger.
      const auto& all = h_.effects[id];
      for (; p.effects < all.size(); ++p.effects)
        for (const auto& event : all[p.effects].events) {
          const auto* m = std::get_if<month_closed>(&event.payload);
          if (!m)
            continue;
          EXPECT_TRUE(
            p.months
              .emplace(std::make_pair(m->term_start.micros(), m->month_index),
                       std::make_pair(m->start, m->end))
              .second)
            << "month closed twice";
          auto batch = month_peak(p.full, m->month_index, m->start, m->end);
          EXPECT_EQ(m->peak_seats, batch.peak_seats);
          EXPECT_EQ(m->peak_at, batch.peak_at);
          EXPECT_EQ(m->peak_seq, batch.peak_seq);
          EXPECT_EQ(m->start, month_start(m->term_start, m->month_index));
        }
      // A closed month never changes: the terms still give it the bounds
      // it closed with.
      for (const auto& t : rec.terms)
        for (int n = 1; n <= t.closed_months; ++n) {
          auto published = p.months.find({t.start.micros(), n});
          ASSERT_NE(published, p.months.end()) << "closed, never published";
          auto now = month_bounds(t.start, t.usage_end, n);
          ASSERT_TRUE(now) << "month " << n << " gone";
          EXPECT_EQ(*now, published->second) << "month " << n << " changed";
        }
      // The in-memory window answers like the full ledger from its start on.
      const auto& w = s.window();
      if (!w.points.empty()) {
        auto from = w.points.front().effective_at;
        EXPECT_EQ(w.seats_before(from), p.full.seats_before(from));
      }
      EXPECT_EQ(w.seats_before(timestamp::from_micros(INT64_MAX)),
                rec.seats_in_use);
    }
  }

  std::mt19937_64 rng_;
  domain_harness h_;
  model model_;
  std::map<std::string, stats_marks> marks_;
  std::map<std::string, progress> progress_;
  timestamp now_;
  int counter_ = 0;
};

} // namespace

TEST(domain_property, incremental_state_equals_a_recount_from_scratch) {
  property_run::coverage total;
  for (int i = 0; i < sequences; ++i) {
    auto seed = static_cast<std::uint64_t>(0x5ea71ed6e5ULL + i);
    SCOPED_TRACE("seed " + std::to_string(seed));
    property_run run{seed};
    run.run();
    if (HasFailure())
      return;
    auto c = run.covered();
    total.entries += c.entries;
    total.overages += c.overages;
    total.months += c.months;
    total.rejections += c.rejections;
    total.licenses += c.licenses;
  }
  // The sequences must actually exercise every rule they check.
  EXPECT_GT(total.entries, 10'000u);
  EXPECT_GT(total.overages, 500u);
  EXPECT_GT(total.months, 500u);
  EXPECT_GT(total.rejections, 500u);
  EXPECT_GT(total.licenses, 500u);
  std::printf("[ coverage ] %zu entries, %zu overages, %zu months closed, "
              "%zu rejections, %zu licenses\n",
              total.entries, total.overages, total.months, total.rejections,
              total.licenses);
}
