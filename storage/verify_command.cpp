#include "storage/verify_command.hpp"

#include <ostream>

#include "messages/service_error.hpp"

namespace seatledger::storage {

int verify_command(query_store& store,
                   const std::optional<std::string>& subscription_id,
                   std::ostream& out, std::ostream& err) {
  if (subscription_id) {
    // An id nothing was ever recorded for is most likely mistyped; walking
    // its empty chain would report it intact.
    auto known = store.pool_exists(*subscription_id);
    if (!known) {
      err << "error: cannot verify the ledger: " << describe(known.error())
          << '\n';
      return 2;
    }
    if (!*known) {
      err << "error: unknown subscription '" << *subscription_id
          << "': no ledger entries and no state\n";
      return 2;
    }
  }
  auto reports = store.verify_ledger(subscription_id);
  if (!reports) {
    err << "error: cannot verify the ledger: " << describe(reports.error())
        << '\n';
    return 2;
  }
  std::size_t broken = 0;
  std::int64_t entries = 0;
  for (const auto& r : *reports) {
    entries += r.entries_verified;
    out << "subscription " << r.subscription_id << ": ";
    if (r.first_break) {
      ++broken;
      out << "BROKEN at seq " << r.first_break->seq << ": "
          << r.first_break->reason << " (" << r.entries_verified
          << " entries verified before it)\n";
    } else if (r.entries_verified == 0) {
      out << "no ledger entries\n";
    } else {
      out << r.entries_verified << " entries, chain intact\n";
    }
  }
  out << reports->size() << " subscription(s), " << entries
      << " entries verified, " << broken << " broken chain(s)\n";
  return broken == 0 ? 0 : 1;
}

} // namespace seatledger::storage
