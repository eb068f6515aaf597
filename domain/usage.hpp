#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "domain/ledger.hpp"
#include "domain/time.hpp"

namespace seatledger::domain {

/// A stretch of one subscription's ledger: `points` in sequence order and the
/// seat count in force before the first of them.
struct ledger_window {
  std::int64_t carried_seats = 0;
  std::vector<ledger_point> points;
  /// The earliest instant the window answers for: the points before it were
  /// folded into `carried_seats` (trimmed, or never loaded), so a month
  /// that starts earlier cannot be computed from this window.
  timestamp exact_from = timestamp::min();

  /// Count of the last point strictly before `t` (the window's carried count
  /// when there is none).
  std::int64_t seats_before(timestamp t) const;

  /// Drops points before `t`, folding them into the carried count, so the
  /// window keeps answering for every instant from `t` on.
  void trim_before(timestamp t);

  /// Puts `earlier`, the same ledger read from an earlier instant on, in
  /// front of this window: it then answers from `earlier.exact_from` on.
  /// Nothing changes when `earlier` starts no earlier than this window.
  void extend_back(const ledger_window& earlier);
};

/// One subscription-anchored month of a term.
struct usage_month {
  int month = 0; // 1, 2, …
  timestamp start;
  timestamp end;
  std::int64_t peak_seats = 0;
  timestamp peak_at;
  std::optional<std::int64_t> peak_seq; // nothing when carried in
  bool complete = false;

  friend bool operator==(const usage_month& x, const usage_month& y) {
    return x.month == y.month && x.start == y.start && x.end == y.end
           && x.peak_seats == y.peak_seats && x.peak_at == y.peak_at
           && x.peak_seq == y.peak_seq && x.complete == y.complete;
  }
};

/// Start of month `n` (1-based) of a term anchored at `term_start`.
timestamp month_start(timestamp term_start, int n);

/// Bounds of month `n`, cut at `usage_end`; nothing when it starts at or
/// after `usage_end`.
std::optional<std::pair<timestamp, timestamp>>
month_bounds(timestamp term_start, timestamp usage_end, int n);

/// Bounds of every month of the term `[term_start, usage_end)` that has
/// started by `now`, in order: the months a usage report lists.
std::vector<std::pair<timestamp, timestamp>>
started_months(timestamp term_start, timestamp usage_end, timestamp now);

/// Peak of the month `[start, end)`: the highest count at any instant in it,
/// including the count carried in; `peak_at` is the earliest instant it was
/// reached (the start when carried in). Entries sharing an instant each count.
/// The storage query `sql_usage_window` (storage/pg_store.cpp) relies on
/// this rule (the first entry of the highest count wins ties): change both.
usage_month month_peak(const ledger_window& window, int index, timestamp start,
                       timestamp end);

/// Every month of the term `[term_start, usage_end)` that has started by
/// `now`; the month in progress is included and marked incomplete. A month is
/// complete once it is closed, its end passed by the subscription's effective
/// time (the first `closed_months` of the term), and its end has passed on
/// the wall clock too: a late record can still take effect in a month whose
/// end only the wall clock has passed, never in a closed one, so a complete
/// month never changes (domain.md); an event time up to the allowed hour
/// ahead can close a month still in progress.
std::vector<usage_month>
monthly_usage(const ledger_window& window, timestamp term_start,
              timestamp usage_end, timestamp now, int closed_months);

/// The reconciliation export holds complete months only.
std::vector<usage_month> complete_months(std::vector<usage_month> months);

} // namespace seatledger::domain
