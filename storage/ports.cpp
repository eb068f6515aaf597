#include "storage/ports.hpp"

#include "domain/identifiers.hpp"

namespace seatledger::storage {

batch_store::~batch_store() = default;
partition_store::~partition_store() = default;
state_store::~state_store() = default;
outbox_store::~outbox_store() = default;
query_store::~query_store() = default;

caf::expected<std::vector<bool>>
partition_store::filter_applied(const std::vector<domain::event_key>& keys) {
  std::vector<std::string> applied_keys;
  applied_keys.reserve(keys.size());
  for (const auto& k : keys)
    applied_keys.push_back(domain::applied_event_key(k));
  return filter_applied_keys(applied_keys);
}

std::size_t storage_batch::row_count() const {
  // Leases are preconditions of the commit, not rows it writes.
  return positions.size() + applied_events.size() + orgs.size()
         + memberships.size() + subscriptions.size() + terms.size()
         + subscription_orgs.size() + holders.size() + ledger.size()
         + licenses.size() + revocations.size() + catalog_upserts.size()
         + catalog_removals.size() + outbox.size() + indexed_events.size();
}

} // namespace seatledger::storage
