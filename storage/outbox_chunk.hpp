#pragma once

// The outbox stores the events of one commit and one lease as a single row
// (a chunk): one row and three index entries per batch instead of per event,
// and one UPDATE when the relay marks them published. This is the chunk's
// binary format: "SLO1", a record count, then per record its event id,
// topic, key, value and headers, every string as a little-endian u32 length
// followed by its bytes.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ports.hpp"

namespace seatledger::storage {

/// Packs outbox rows (all of one lease) into a chunk.
std::string encode_outbox_chunk(const std::vector<const outbox_row*>& rows);

/// Unpacks a chunk; nothing if it is malformed. Each row gets `lease_key`.
std::optional<std::vector<outbox_row>>
decode_outbox_chunk(std::string_view chunk, const std::string& lease_key);

} // namespace seatledger::storage
