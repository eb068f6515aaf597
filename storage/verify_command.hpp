#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "storage/ports.hpp"

namespace seatledger::storage {

/// `seatledger ledger verify [--subscription ID]`: walks the hash chains and
/// prints one line per subscription (and the first broken entry of each
/// broken one) on `out`, and why nothing was verified on `err`. Returns the
/// exit status: 0 when every chain is intact, 1 when any is broken, 2 when
/// nothing was verified: the ledger could not be read, or the subscription
/// asked for has neither ledger entries nor state.
int verify_command(query_store& store,
                   const std::optional<std::string>& subscription_id,
                   std::ostream& out, std::ostream& err);

} // namespace seatledger::storage
