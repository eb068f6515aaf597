#pragma once

// The outbox stores the events of one commit and one lease as a single row
// (a chunk): one row and three index entries per batch instead of per event,
// and one UPDATE when the relay marks them published. This is the chunk's
// binary format: "SLO1", a record count, then per record its event id,
// topic, key, value and headers, every string as a little-endian u32 length
// followed by its bytes; a null key, value or header value (Kafka's, kept
// for dead letters) has length 0xffffffff and no bytes, a length no earlier
// chunk has. What a commit writes is that, compressed: "SLZ1"
// and one zstd frame holding the plain chunk (its size in the frame header).
// The column is stored without PostgreSQL's own compression (migration 5);
// plain chunks of earlier versions are still read.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ports.hpp"

namespace seatledger::storage {

enum class chunk_compression { none, zstd };

/// Packs outbox rows (all of one lease) into a chunk, compressed unless
/// asked otherwise (tests of the plain format).
std::string
encode_outbox_chunk(const std::vector<const outbox_row*>& rows,
                    chunk_compression compression = chunk_compression::zstd);

/// Unpacks a chunk, compressed or plain; nothing if it is malformed. Each
/// row gets `lease_key`.
std::optional<std::vector<outbox_row>>
decode_outbox_chunk(std::string_view chunk, const std::string& lease_key);

} // namespace seatledger::storage
