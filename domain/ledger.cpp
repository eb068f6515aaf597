#include "domain/ledger.hpp"

#include <algorithm>

namespace seatledger::domain {

const std::string genesis_hash(64, '0');

std::string compute_entry_hash(const ledger_entry& entry) {
  std::string content;
  content.reserve(256);
  auto field = [&content](std::string_view value) {
    content += std::to_string(value.size());
    content.push_back(':');
    content.append(value.data(), value.size());
    content.push_back(';');
  };
  field("seatledger.ledger.v1");
  field(entry.subscription_id);
  field(std::to_string(entry.seq));
  field(std::to_string(entry.seats_in_use));
  field(std::to_string(entry.effective_at.micros()));
  field(entry.cause.source);
  field(entry.cause.id);
  field(entry.cause.type);
  field(entry.org_id);
  field(entry.user_id);
  field(entry.prev_hash);
  return sha256_hex(content);
}

chain_verifier::chain_verifier(std::int64_t first_seq,
                               std::string expected_prev_hash)
    : expected_seq_(first_seq), expected_prev_(std::move(expected_prev_hash)) {}

std::optional<chain_break> chain_verifier::next(const ledger_entry& entry) {
  if (broken_)
    return chain_break{entry.seq, "chain already broken"};
  auto fail = [this, &entry](std::string reason) {
    broken_ = true;
    return chain_break{entry.seq, std::move(reason)};
  };
  if (entry.seq != expected_seq_)
    return fail("expected sequence " + std::to_string(expected_seq_)
                + ", found " + std::to_string(entry.seq)
                + " (an entry was inserted or deleted)");
  if (entry.prev_hash != expected_prev_)
    return fail("prev_hash does not match the hash of entry "
                + std::to_string(entry.seq - 1));
  if (compute_entry_hash(entry) != entry.hash)
    return fail("hash does not match the entry's content (edited)");
  expected_prev_ = entry.hash;
  ++expected_seq_;
  ++verified_;
  return std::nullopt;
}

std::int64_t seats_at(const std::vector<ledger_point>& points, timestamp at) {
  // Effective times never go backwards along the sequence, so the points are
  // sorted by time as well.
  auto it = std::upper_bound(points.begin(), points.end(), at,
                             [](timestamp t, const ledger_point& p) {
                               return t < p.effective_at;
                             });
  if (it == points.begin())
    return 0;
  return std::prev(it)->seats_in_use;
}

} // namespace seatledger::domain
