#pragma once

// Field-by-field equality of the decoded input types, which the domain does
// not define (most of its input structs have no operator==). Used by the
// round-trip tests and the fuzzer's decode -> encode -> decode check.

#include "domain/commands.hpp"
#include "messages/types.hpp"

namespace seatledger::messages {

bool equal(const domain::membership_event& x,
           const domain::membership_event& y);

bool equal(const domain::command_event& x, const domain::command_event& y);

bool equal(const domain::catalog_event& x, const domain::catalog_event& y);

bool equal(const domain::seat_delta& x, const domain::seat_delta& y);

bool equal(const input_event& x, const input_event& y);

} // namespace seatledger::messages
