#pragma once

// The one CAF type-ID block of the project: every type and atom actors
// exchange. (CAF 0.17.6 carries the 0.18 transition API; with
// CAF_ENABLE_TYPE_ID_CHECKS every message type must appear here.)

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/type_id.hpp>

#include "messages/actor_messages.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(seatledger, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(seatledger, (seatledger::messages::org_job))
  CAF_ADD_TYPE_ID(seatledger, (seatledger::messages::subscription_job))
  CAF_ADD_TYPE_ID(seatledger, (seatledger::messages::entity_result))
  CAF_ADD_TYPE_ID(seatledger, (seatledger::messages::lease_set))

  // Atoms are at most 10 characters.
  CAF_ADD_ATOM(seatledger, seatledger::atoms, apply_atom, "apply")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, poll_atom, "poll")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, wake_atom, "wake")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, sweep_atom, "sweep")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, relay_atom, "relay")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, leases_atom, "leases")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, drain_atom, "drain")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, status_atom, "status")
  CAF_ADD_ATOM(seatledger, seatledger::atoms, deadline_atom, "deadline")

CAF_END_TYPE_ID_BLOCK(seatledger)

// Never serialized: records cross processes through Kafka, not CAF.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(seatledger::messages::org_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(seatledger::messages::subscription_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(seatledger::messages::entity_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(seatledger::messages::lease_set)
