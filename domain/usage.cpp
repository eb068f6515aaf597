#include "domain/usage.hpp"

#include <algorithm>

namespace seatledger::domain {

namespace {

// First point at or after `t` (points are sorted by time because effective
// time never goes backwards along the sequence).
std::vector<ledger_point>::const_iterator
first_at_or_after(const std::vector<ledger_point>& points, timestamp t) {
  return std::lower_bound(points.begin(), points.end(), t,
                          [](const ledger_point& p, timestamp x) {
                            return p.effective_at < x;
                          });
}

} // namespace

std::int64_t ledger_window::seats_before(timestamp t) const {
  auto it = first_at_or_after(points, t);
  if (it == points.begin())
    return carried_seats;
  return std::prev(it)->seats_in_use;
}

void ledger_window::trim_before(timestamp t) {
  exact_from = std::max(exact_from, t);
  auto it = first_at_or_after(points, t);
  if (it == points.begin())
    return;
  carried_seats = std::prev(it)->seats_in_use;
  points.erase(points.begin(), it);
}

void ledger_window::extend_back(const ledger_window& earlier) {
  if (earlier.exact_from >= exact_from)
    return;
  // The points this window folded away: before its start, and (effective
  // time never goes backwards along the sequence) before its first point.
  auto end = first_at_or_after(earlier.points, exact_from);
  if (!points.empty())
    end = std::find_if(earlier.points.begin(), end, [&](const ledger_point& p) {
      return p.seq >= points.front().seq;
    });
  points.insert(points.begin(), earlier.points.begin(), end);
  carried_seats = earlier.carried_seats;
  exact_from = earlier.exact_from;
}

timestamp month_start(timestamp term_start, int n) {
  return add_months(term_start, n - 1);
}

std::optional<std::pair<timestamp, timestamp>>
month_bounds(timestamp term_start, timestamp usage_end, int n) {
  auto start = month_start(term_start, n);
  if (start >= usage_end)
    return std::nullopt;
  auto end = std::min(month_start(term_start, n + 1), usage_end);
  return std::make_pair(start, end);
}

std::vector<std::pair<timestamp, timestamp>>
started_months(timestamp term_start, timestamp usage_end, timestamp now) {
  std::vector<std::pair<timestamp, timestamp>> months;
  for (int n = 1;; ++n) {
    auto bounds = month_bounds(term_start, usage_end, n);
    if (!bounds || bounds->first > now)
      break;
    months.push_back(*bounds);
  }
  return months;
}

usage_month month_peak(const ledger_window& window, int index, timestamp start,
                       timestamp end) {
  usage_month result;
  result.month = index;
  result.start = start;
  result.end = end;
  result.peak_seats = window.seats_before(start);
  result.peak_at = start;
  for (auto it = first_at_or_after(window.points, start);
       it != window.points.end() && it->effective_at < end; ++it) {
    if (it->seats_in_use > result.peak_seats) {
      result.peak_seats = it->seats_in_use;
      result.peak_at = it->effective_at;
      result.peak_seq = it->seq;
    }
  }
  return result;
}

std::vector<usage_month>
monthly_usage(const ledger_window& window, timestamp term_start,
              timestamp usage_end, timestamp now, int closed_months) {
  std::vector<usage_month> months;
  int n = 0;
  for (const auto& [start, end] : started_months(term_start, usage_end, now)) {
    auto month = month_peak(window, ++n, start, end);
    month.complete = n <= closed_months && end <= now;
    months.push_back(month);
  }
  return months;
}

std::vector<usage_month> complete_months(std::vector<usage_month> months) {
  months.erase(std::remove_if(months.begin(), months.end(),
                              [](const usage_month& m) { return !m.complete; }),
               months.end());
  return months;
}

} // namespace seatledger::domain
