#include <gtest/gtest.h>

#include "domain/usage.hpp"
#include "test_support.hpp"

using namespace seatledger::domain;
using seatledger::test::at;

namespace {

ledger_window window_of(std::vector<std::pair<std::string, std::int64_t>> xs) {
  ledger_window w;
  std::int64_t seq = 0;
  for (auto& [time, seats] : xs)
    w.points.push_back({++seq, seats, at(time)});
  return w;
}

/// The months as reported once every month that ended by `now` is closed
/// (as the service's sweeper does within its grace period).
std::vector<usage_month> usage_closed_by(const ledger_window& w,
                                         timestamp term_start,
                                         timestamp usage_end, timestamp now) {
  int closed = 0;
  while (true) {
    auto bounds = month_bounds(term_start, usage_end, closed + 1);
    if (!bounds || bounds->second > now)
      break;
    ++closed;
  }
  return monthly_usage(w, term_start, usage_end, now, closed);
}

} // namespace

TEST(monthly_usage, worked_example_from_the_seeds) {
  // Term starts 2026-01-15. Seats go 10 on Jan 16, 15 on Jan 20, 9 on Jan 25.
  auto w = window_of({{"2026-01-16T00:00:00Z", 10},
                      {"2026-01-20T00:00:00Z", 15},
                      {"2026-01-25T00:00:00Z", 9}});
  auto months = usage_closed_by(w, at("2026-01-15T00:00:00Z"),
                                at("2027-01-15T00:00:00Z"),
                                at("2026-03-20T00:00:00Z"));
  ASSERT_EQ(months.size(), 3u);
  EXPECT_EQ(months[0].start, at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(months[0].end, at("2026-02-15T00:00:00Z"));
  EXPECT_EQ(months[0].peak_seats, 15);
  EXPECT_EQ(months[0].peak_at, at("2026-01-20T00:00:00Z"));
  EXPECT_EQ(months[0].peak_seq, 2);
  EXPECT_TRUE(months[0].complete);
  EXPECT_EQ(months[1].start, at("2026-02-15T00:00:00Z"));
  EXPECT_EQ(months[1].end, at("2026-03-15T00:00:00Z"));
  EXPECT_EQ(months[1].peak_seats, 9);
  EXPECT_EQ(months[1].peak_at, at("2026-02-15T00:00:00Z"));
  EXPECT_FALSE(months[1].peak_seq);
  EXPECT_TRUE(months[1].complete);
  EXPECT_EQ(months[2].month, 3);
  EXPECT_FALSE(months[2].complete); // in progress on 2026-03-20
  EXPECT_EQ(months[2].peak_seats, 9);
}

TEST(monthly_usage, carries_counts_forward_across_quiet_months) {
  auto w = window_of({{"2026-01-20T00:00:00Z", 4}});
  auto months = usage_closed_by(w, at("2026-01-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"),
                                at("2026-06-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 6u); // June 1 has started
  EXPECT_EQ(months[0].peak_seats, 4);
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_EQ(months[i].peak_seats, 4) << i;
    EXPECT_EQ(months[i].peak_at, months[i].start);
    EXPECT_FALSE(months[i].peak_seq);
    EXPECT_TRUE(months[i].complete);
  }
  EXPECT_FALSE(months[5].complete);
}

TEST(monthly_usage, months_are_anchored_at_the_term_start_not_the_calendar) {
  auto w = window_of({{"2026-02-09T00:00:00Z", 7},   // month 1
                      {"2026-02-10T09:30:00Z", 12},  // month 2 starts 09:30
                      {"2026-02-11T00:00:00Z", 3}}); // month 2
  auto months = usage_closed_by(w, at("2026-01-10T09:30:00Z"),
                                at("2027-01-10T09:30:00Z"),
                                at("2026-03-10T09:30:00Z"));
  ASSERT_EQ(months.size(), 3u);
  EXPECT_EQ(months[0].end, at("2026-02-10T09:30:00Z"));
  EXPECT_EQ(months[0].peak_seats, 7);
  EXPECT_EQ(months[1].peak_seats, 12);
  EXPECT_EQ(months[1].peak_at, at("2026-02-10T09:30:00Z"));
  EXPECT_EQ(months[2].peak_seats, 3);
  EXPECT_EQ(months[2].start, at("2026-03-10T09:30:00Z"));
  EXPECT_FALSE(months[2].complete); // started exactly now, not yet ended
}

TEST(monthly_usage, term_starting_on_the_31st_clamps_each_month) {
  ledger_window w;
  auto months = usage_closed_by(w, at("2026-01-31T00:00:00Z"),
                                at("2027-01-31T00:00:00Z"),
                                at("2026-07-01T00:00:00Z"));
  std::vector<std::string> starts;
  for (auto& m : months)
    starts.push_back(format_rfc3339(m.start));
  EXPECT_EQ(starts, (std::vector<std::string>{
                      "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z",
                      "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z",
                      "2026-05-31T00:00:00Z", "2026-06-30T00:00:00Z"}));
  EXPECT_EQ(months[1].end, at("2026-03-31T00:00:00Z"));
}

TEST(monthly_usage,
     term_starting_on_29_february_through_leap_and_common_years) {
  ledger_window w;
  auto months = usage_closed_by(w, at("2028-02-29T00:00:00Z"),
                                at("2030-02-28T00:00:00Z"),
                                at("2029-04-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 14u);
  EXPECT_EQ(months[0].end, at("2028-03-29T00:00:00Z"));
  EXPECT_EQ(months[11].start, at("2029-01-29T00:00:00Z"));
  EXPECT_EQ(months[11].end, at("2029-02-28T00:00:00Z")); // common year
  EXPECT_EQ(months[12].start, at("2029-02-28T00:00:00Z"));
  EXPECT_EQ(months[12].end, at("2029-03-29T00:00:00Z")); // back on the 29th
  EXPECT_EQ(months[13].start, at("2029-03-29T00:00:00Z"));
}

TEST(monthly_usage, an_entry_exactly_at_a_boundary_belongs_to_the_new_month) {
  auto w = window_of({{"2026-01-10T00:00:00Z", 5},
                      {"2026-02-01T00:00:00Z", 20}, // month 2 starts here
                      {"2026-02-01T00:00:00Z", 6}});
  auto months = usage_closed_by(w, at("2026-01-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"),
                                at("2026-03-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 3u);
  EXPECT_EQ(months[0].peak_seats, 5); // carried in: last entry *before* start
  EXPECT_EQ(months[1].peak_seats, 20);
  EXPECT_EQ(months[1].peak_at, at("2026-02-01T00:00:00Z"));
  EXPECT_EQ(months[1].peak_seq, 2);
  EXPECT_EQ(months[2].peak_seats, 6);
  EXPECT_EQ(months[2].start, at("2026-03-01T00:00:00Z"));
}

TEST(monthly_usage, several_entries_at_one_instant_each_count) {
  auto w = window_of({{"2026-01-05T00:00:00Z", 3},
                      {"2026-01-05T00:00:00Z", 4},
                      {"2026-01-05T00:00:00Z", 3},
                      {"2026-01-06T00:00:00Z", 2}});
  auto months = usage_closed_by(w, at("2026-01-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"),
                                at("2026-01-20T00:00:00Z"));
  ASSERT_EQ(months.size(), 1u);
  EXPECT_EQ(months[0].peak_seats, 4); // the intermediate count
  EXPECT_EQ(months[0].peak_seq, 2);
  EXPECT_FALSE(months[0].complete);
}

TEST(monthly_usage, months_before_the_first_entry_have_zero_seats) {
  auto w = window_of({{"2026-03-15T00:00:00Z", 8}});
  auto months = usage_closed_by(w, at("2026-01-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"),
                                at("2026-04-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 4u);
  EXPECT_EQ(months[0].peak_seats, 0);
  EXPECT_EQ(months[0].peak_at, at("2026-01-01T00:00:00Z"));
  EXPECT_EQ(months[1].peak_seats, 0);
  EXPECT_EQ(months[2].peak_seats, 8);
  EXPECT_EQ(months[3].peak_seats, 8);
}

TEST(monthly_usage, peak_at_is_the_earliest_instant_the_peak_was_reached) {
  auto w = window_of({{"2025-12-20T00:00:00Z", 10}, // carried into month 1
                      {"2026-01-03T00:00:00Z", 9},
                      {"2026-01-04T00:00:00Z", 10},
                      {"2026-01-08T00:00:00Z", 12},
                      {"2026-01-09T00:00:00Z", 11},
                      {"2026-01-10T00:00:00Z", 12}});
  auto months = usage_closed_by(w, at("2026-01-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"),
                                at("2026-02-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 2u);
  EXPECT_EQ(months[0].peak_seats, 12);
  EXPECT_EQ(months[0].peak_at, at("2026-01-08T00:00:00Z"));
  EXPECT_EQ(months[0].peak_seq, 4);
  EXPECT_TRUE(months[0].complete); // its end is exactly now
  EXPECT_EQ(months[1].peak_seats, 12);
}

TEST(monthly_usage, months_are_cut_at_the_term_end) {
  ledger_window w;
  auto months = usage_closed_by(w, at("2026-01-15T00:00:00Z"),
                                at("2026-03-01T00:00:00Z"),
                                at("2027-01-01T00:00:00Z"));
  ASSERT_EQ(months.size(), 2u);
  EXPECT_EQ(months[1].start, at("2026-02-15T00:00:00Z"));
  EXPECT_EQ(months[1].end, at("2026-03-01T00:00:00Z"));
  EXPECT_TRUE(months[1].complete);
}

TEST(monthly_usage, nothing_before_the_term_starts) {
  ledger_window w;
  auto months = usage_closed_by(w, at("2026-05-01T00:00:00Z"),
                                at("2027-05-01T00:00:00Z"),
                                at("2026-04-30T23:59:59Z"));
  EXPECT_TRUE(months.empty());
}

TEST(monthly_usage, the_export_holds_complete_months_only) {
  auto w = window_of({{"2026-01-16T00:00:00Z", 10}});
  auto months = complete_months(usage_closed_by(w, at("2026-01-15T00:00:00Z"),
                                                at("2027-01-15T00:00:00Z"),
                                                at("2026-04-01T00:00:00Z")));
  ASSERT_EQ(months.size(), 2u);
  for (auto& m : months)
    EXPECT_TRUE(m.complete);
}

// A month whose end the wall clock passed may still change (a late record
// takes effect in it until the subscription's effective time passes its
// end), so it is not complete, nor exported, until it is closed. It was
// complete by the wall clock alone before.
TEST(monthly_usage,
     a_month_is_complete_once_closed_not_once_the_wall_clock_passed) {
  auto w = window_of({{"2026-01-16T00:00:00Z", 10}});
  const auto start = at("2026-01-15T00:00:00Z");
  const auto end = at("2027-01-15T00:00:00Z");
  const auto now = at("2026-04-01T00:00:00Z");
  auto none_closed = monthly_usage(w, start, end, now, 0);
  ASSERT_EQ(none_closed.size(), 3u);
  for (const auto& m : none_closed)
    EXPECT_FALSE(m.complete) << m.month;
  EXPECT_TRUE(complete_months(none_closed).empty());
  auto one_closed = monthly_usage(w, start, end, now, 1);
  ASSERT_EQ(one_closed.size(), 3u);
  EXPECT_TRUE(one_closed[0].complete);
  EXPECT_FALSE(one_closed[1].complete);
  EXPECT_FALSE(one_closed[2].complete);
  auto exported = complete_months(one_closed);
  ASSERT_EQ(exported.size(), 1u);
  EXPECT_EQ(exported[0].month, 1);
  EXPECT_EQ(exported[0].peak_seats, 10);
  // A record timed ahead of the wall clock (allowed up to an hour) closed
  // month 3 before its end: it is still in progress.
  auto ahead = monthly_usage(w, start, end, at("2026-04-14T23:30:00Z"), 3);
  ASSERT_EQ(ahead.size(), 3u);
  EXPECT_TRUE(ahead[1].complete);
  EXPECT_FALSE(ahead[2].complete);
}

// A renewal or expiry cuts the term; the month it cuts short is closed with
// it and reported complete.
TEST(monthly_usage, a_month_cut_short_by_a_renewal_is_complete) {
  seatledger::test::domain_harness h;
  h.command(seatledger::test::ref("c", "2026-01-15T00:00:00Z"),
            seatledger::test::create_cmd("s1", 10, "2026-01-15T00:00:00Z",
                                         "2027-01-15T00:00:00Z"));
  h.command(
    seatledger::test::ref("r", "2026-03-01T00:00:00Z"),
    renew_subscription{
      "s1", {at("2026-03-01T00:00:00Z"), at("2027-03-01T00:00:00Z")}, {}, {}});
  auto old_term = find_term(h.sub("s1").record(), at("2026-01-15T00:00:00Z"));
  ASSERT_TRUE(old_term);
  EXPECT_EQ(current_term_usage(h.sub("s1").record()).start,
            at("2026-03-01T00:00:00Z"));
  // A record without its terms (never so once created): the purchased term,
  // nothing closed.
  subscription_record bare;
  bare.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
  EXPECT_FALSE(find_term(bare, bare.term.start));
  EXPECT_EQ(current_term_usage(bare),
            (term_usage{bare.term.start, bare.term.end, bare.term.end, 0}));
  EXPECT_EQ(old_term->usage_end, at("2026-03-01T00:00:00Z"));
  EXPECT_EQ(old_term->closed_months, 2);
  auto months = monthly_usage(ledger_window{}, old_term->start,
                              old_term->usage_end, at("2026-03-02T00:00:00Z"),
                              old_term->closed_months);
  ASSERT_EQ(months.size(), 2u);
  EXPECT_TRUE(months[0].complete);
  EXPECT_TRUE(months[1].complete);
  EXPECT_EQ(months[1].end, at("2026-03-01T00:00:00Z"));
}

TEST(started_months, are_the_months_a_report_lists) {
  auto start = at("2026-01-31T12:00:00Z");
  auto end = at("2026-04-15T00:00:00Z");
  using bounds = std::pair<timestamp, timestamp>;
  // Month 3 starts exactly at `now`: it has started.
  EXPECT_EQ(started_months(start, end, at("2026-03-31T12:00:00Z")),
            (std::vector<bounds>{{start, at("2026-02-28T12:00:00Z")},
                                 {at("2026-02-28T12:00:00Z"),
                                  at("2026-03-31T12:00:00Z")},
                                 {at("2026-03-31T12:00:00Z"), end}}));
  EXPECT_EQ(started_months(start, end, at("2026-03-31T11:59:59Z")).size(), 2u);
  EXPECT_TRUE(started_months(start, end, at("2026-01-31T11:59:59Z")).empty());
  // Cut at the term's end however late it is asked.
  EXPECT_EQ(started_months(start, end, at("2099-01-01T00:00:00Z")).size(), 3u);
  EXPECT_TRUE(started_months(start, start, at("2099-01-01T00:00:00Z")).empty());
}

TEST(ledger_window, trimming_keeps_answers_from_the_cut_on) {
  auto w = window_of({{"2026-01-01T00:00:00Z", 1},
                      {"2026-01-02T00:00:00Z", 2},
                      {"2026-01-03T00:00:00Z", 3}});
  auto before = month_peak(w, 1, at("2026-01-02T12:00:00Z"),
                           at("2026-02-01T00:00:00Z"));
  w.trim_before(at("2026-01-02T12:00:00Z"));
  EXPECT_EQ(w.points.size(), 1u);
  EXPECT_EQ(w.carried_seats, 2);
  EXPECT_EQ(month_peak(w, 1, at("2026-01-02T12:00:00Z"),
                       at("2026-02-01T00:00:00Z")),
            before);
}

TEST(ledger_window, trimming_moves_where_it_answers_from) {
  auto w = window_of({{"2026-01-01T00:00:00Z", 1}});
  EXPECT_EQ(w.exact_from, timestamp::min());
  w.trim_before(at("2026-03-01T00:00:00Z"));
  EXPECT_EQ(w.exact_from, at("2026-03-01T00:00:00Z"));
  // Never back: what was folded stays folded.
  w.trim_before(at("2026-02-01T00:00:00Z"));
  EXPECT_EQ(w.exact_from, at("2026-03-01T00:00:00Z"));
}

TEST(ledger_window, the_ledger_read_from_earlier_restores_the_folded_months) {
  // 10 seats in January, 2 from the 20th, 3 a year later.
  const auto full = window_of({{"2024-01-10T00:00:00Z", 10},
                               {"2024-01-20T00:00:00Z", 2},
                               {"2025-03-01T00:00:00Z", 3}});
  const auto jan_start = at("2024-01-01T00:00:00Z");
  const auto jan_end = at("2024-02-01T00:00:00Z");
  auto w = full;
  w.trim_before(at("2024-06-01T00:00:00Z"));
  // From the trimmed window, January's peak is the carried count: wrong.
  EXPECT_EQ(month_peak(w, 1, jan_start, jan_end).peak_seats, 2);

  // The same ledger read from an earlier instant (as storage gives it:
  // every point from there on, the count before it carried).
  auto earlier = full;
  earlier.exact_from = jan_start;
  w.extend_back(earlier);
  EXPECT_EQ(w.exact_from, jan_start);
  ASSERT_EQ(w.points.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(w.points[i].seq, full.points[i].seq);
  EXPECT_EQ(month_peak(w, 1, jan_start, jan_end),
            month_peak(full, 1, jan_start, jan_end));
  EXPECT_EQ(month_peak(w, 1, jan_start, jan_end).peak_seats, 10);

  // A ledger read from no earlier than the window changes nothing.
  auto later = full;
  later.trim_before(at("2024-03-01T00:00:00Z"));
  w.trim_before(at("2024-02-01T00:00:00Z"));
  auto before = w.points.size();
  w.extend_back(later);
  EXPECT_EQ(w.points.size(), before);
  EXPECT_EQ(w.exact_from, at("2024-02-01T00:00:00Z"));
}
