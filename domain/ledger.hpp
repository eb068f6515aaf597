#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/identifiers.hpp"
#include "domain/time.hpp"

namespace seatledger::domain {

/// The `prev_hash` of a subscription's first entry.
extern const std::string genesis_hash; // 64 zeros

/// One row of the append-only seat ledger: the absolute seat count after one
/// user's seat status changed.
struct ledger_entry {
  std::string subscription_id;
  std::int64_t seq = 0; // 1, 2, … per subscription, no gaps
  std::int64_t seats_in_use = 0;
  timestamp effective_at;
  event_ref cause;
  std::string org_id;
  std::string user_id;
  std::string prev_hash;
  std::string hash;

  friend bool operator==(const ledger_entry& x, const ledger_entry& y) {
    return x.subscription_id == y.subscription_id && x.seq == y.seq
           && x.seats_in_use == y.seats_in_use
           && x.effective_at == y.effective_at && x.cause == y.cause
           && x.org_id == y.org_id && x.user_id == y.user_id
           && x.prev_hash == y.prev_hash && x.hash == y.hash;
  }
};

/// SHA-256 over the entry's content and `prev_hash` (its own `hash` field is
/// ignored). Every field is length-prefixed, so no edit of one field can be
/// compensated by another.
std::string compute_entry_hash(const ledger_entry& entry);

/// Where a chain first breaks.
struct chain_break {
  std::int64_t seq = 0;
  std::string reason;
};

/// Walks one subscription's entries in sequence order (starting at seq
/// `first_seq`, whose predecessor hash is `expected_prev_hash`) and returns
/// the first entry that is out of sequence, whose `prev_hash` does not name
/// its predecessor, or whose `hash` does not match its content.
class chain_verifier {
public:
  explicit chain_verifier(std::int64_t first_seq = 1,
                          std::string expected_prev_hash = genesis_hash);

  /// Returns the break, if this entry breaks the chain. After a break the
  /// verifier stays broken.
  std::optional<chain_break> next(const ledger_entry& entry);

  std::int64_t verified() const {
    return verified_;
  }

private:
  std::int64_t expected_seq_;
  std::string expected_prev_;
  std::int64_t verified_ = 0;
  bool broken_ = false;
};

/// Compact view of an entry: what monthly usage needs.
struct ledger_point {
  std::int64_t seq = 0;
  std::int64_t seats_in_use = 0;
  timestamp effective_at;
};

/// Seat count at an instant: the count of the last entry at or before it,
/// 0 before the first. `points` must be in sequence order.
std::int64_t seats_at(const std::vector<ledger_point>& points, timestamp at);

} // namespace seatledger::domain
