#pragma once

#include "storage/ports.hpp"

#include <iosfwd>
#include <optional>
#include <string>

namespace seatledger::storage {

/// `seatledger ledger verify [--subscription ID]`: walks the hash chains and
/// prints one line per subscription (and the first broken entry of each
/// broken one). Returns the exit status: 0 when every chain is intact, 1
/// when any is broken, 2 when the ledger could not be read.
int verify_command(query_store& store,
                   const std::optional<std::string>& subscription_id,
                   std::ostream& out);

} // namespace seatledger::storage
