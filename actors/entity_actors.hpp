#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "actors/entity_context.hpp"
#include "storage/ports.hpp"

namespace seatledger::actors {

/// One org: applies its membership events in order; replies with the rows
/// to commit (membership changes, the org row, seat deltas in the outbox).
caf::actor spawn_org_actor(caf::actor_system& system,
                           storage::org_snapshot snapshot,
                           std::int32_t partition,
                           std::shared_ptr<const entity_context> context);

/// One subscription: applies deltas, commands and month closes in order;
/// replies with the rows to commit (state, ledger, holders, licenses, the
/// events in the outbox).
caf::actor
spawn_subscription_actor(caf::actor_system& system,
                         std::optional<storage::subscription_snapshot> snapshot,
                         std::string subscription_id, std::int32_t partition,
                         std::shared_ptr<const entity_context> context);

} // namespace seatledger::actors
