#include "storage/outbox_chunk.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <zstd.h>

namespace seatledger::storage {

namespace {

constexpr std::string_view magic = "SLO1";
constexpr std::string_view compressed_magic = "SLZ1";

/// The length that stands for Kafka's null key, value or header value (see
/// put_nullable).
constexpr std::uint32_t null_length = 0xffffffff;

/// zstd's fastest level: about twice lz4's ratio on CloudEvents JSON (the
/// TOAST and WAL bytes a commit writes), at a similar speed.
constexpr int compression_level = 1;

/// A decompressed chunk larger than this is refused as damaged: a commit's
/// chunk holds one batch's events of one lease (a few MiB).
constexpr unsigned long long max_plain_size = 1ull << 30;

struct cctx_deleter {
  void operator()(ZSTD_CCtx* ctx) const {
    ZSTD_freeCCtx(ctx);
  }
};

struct dctx_deleter {
  void operator()(ZSTD_DCtx* ctx) const {
    ZSTD_freeDCtx(ctx);
  }
};

/// Contexts are reused per thread: creating one allocates its tables. Each
/// frame carries a checksum of its content, so a damaged chunk is refused,
/// not relayed with other bytes.
ZSTD_CCtx* compression_context() {
  thread_local std::unique_ptr<ZSTD_CCtx, cctx_deleter> ctx{[] {
    auto* c = ZSTD_createCCtx();
    if (c != nullptr
        && (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel,
                                                compression_level))
            || ZSTD_isError(
              ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)))) {
      ZSTD_freeCCtx(c);
      return static_cast<ZSTD_CCtx*>(nullptr);
    }
    return c;
  }()};
  return ctx.get();
}

ZSTD_DCtx* decompression_context() {
  thread_local std::unique_ptr<ZSTD_DCtx, dctx_deleter> ctx{ZSTD_createDCtx()};
  return ctx.get();
}

void put_u32(std::string& out, std::uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s.data(), s.size());
}

/// A key, value or header value that may be Kafka's null: `null_length`
/// then, as Kafka's own records write null as length -1. No chunk of an
/// earlier version has that length (a chunk is a bytea, at most 1 GiB), so
/// their keys, values and header values read as not null, and a chunk
/// without nulls is byte for byte what earlier versions wrote and read: no
/// format version to bump.
void put_nullable(std::string& out, std::string_view s, bool null) {
  if (null)
    put_u32(out, null_length);
  else
    put_str(out, s);
}

class reader {
public:
  explicit reader(std::string_view in) : in_(in) {}

  bool u32(std::uint32_t& x) {
    if (in_.size() - pos_ < 4)
      return false;
    x = 0;
    for (int i = 0; i < 4; ++i)
      x |= static_cast<std::uint32_t>(static_cast<unsigned char>(in_[pos_ + i]))
           << (8 * i);
    pos_ += 4;
    return true;
  }

  bool str(std::string& s) {
    std::uint32_t n = 0;
    return u32(n) && bytes(n, s);
  }

  /// A key, value or header value written by put_nullable.
  bool nullable_str(std::string& s, bool& null) {
    std::uint32_t n = 0;
    if (!u32(n))
      return false;
    null = n == null_length;
    return null || bytes(n, s);
  }

  bool done() const {
    return pos_ == in_.size();
  }

  bool skip(std::string_view prefix) {
    if (in_.substr(pos_, prefix.size()) != prefix)
      return false;
    pos_ += prefix.size();
    return true;
  }

private:
  bool bytes(std::uint32_t n, std::string& s) {
    if (in_.size() - pos_ < n)
      return false;
    s.assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

} // namespace

namespace {

/// Writes the plain chunk into `out` (cleared first; its capacity is kept).
void encode_plain(const std::vector<const outbox_row*>& rows,
                  std::string& out) {
  std::size_t size = 8;
  for (const auto* r : rows)
    size += 20 + r->event_id.size() + r->topic.size() + r->key.size()
            + r->value.size() + 64 * r->headers.size();
  out.clear();
  out.reserve(size);
  out.append(magic.data(), magic.size());
  put_u32(out, static_cast<std::uint32_t>(rows.size()));
  for (const auto* r : rows) {
    put_str(out, r->event_id);
    put_str(out, r->topic);
    put_nullable(out, r->key, r->null_key);
    put_nullable(out, r->value, r->null_value);
    put_u32(out, static_cast<std::uint32_t>(r->headers.size()));
    for (const auto& [name, value] : r->headers) {
      put_str(out, name);
      put_nullable(out, value ? std::string_view{*value} : std::string_view{},
                   !value);
    }
  }
}

/// Buffers kept per thread between chunks: a commit's chunk is a few MiB,
/// and fresh buffers of that size cost page faults and zero-filling every
/// time (2-3 % of the service's CPU in the end-to-end benchmark). One far
/// larger than usual is not kept.
struct chunk_buffers {
  static constexpr std::size_t keep_at_most = std::size_t{64} << 20;
  std::string plain;
  std::string compressed;

  void trim() {
    if (plain.capacity() > keep_at_most)
      std::string{}.swap(plain);
    if (compressed.capacity() > keep_at_most)
      std::string{}.swap(compressed);
  }
};

chunk_buffers& thread_chunk_buffers() {
  thread_local chunk_buffers buffers;
  return buffers;
}

std::optional<std::vector<outbox_row>>
decode_plain(std::string_view chunk, const std::string& lease_key) {
  reader in{chunk};
  std::uint32_t count = 0;
  if (!in.skip(magic) || !in.u32(count))
    return std::nullopt;
  std::vector<outbox_row> rows;
  // A record takes at least 20 bytes: a corrupt count cannot allocate more.
  rows.reserve(std::min<std::size_t>(count, chunk.size() / 20));
  for (std::uint32_t i = 0; i < count; ++i) {
    outbox_row r;
    std::uint32_t headers = 0;
    if (!in.str(r.event_id) || !in.str(r.topic)
        || !in.nullable_str(r.key, r.null_key)
        || !in.nullable_str(r.value, r.null_value) || !in.u32(headers))
      return std::nullopt;
    for (std::uint32_t h = 0; h < headers; ++h) {
      std::string name;
      std::string value;
      bool null = false;
      if (!in.str(name) || !in.nullable_str(value, null))
        return std::nullopt;
      if (null)
        r.headers.emplace_back(std::move(name), std::nullopt);
      else
        r.headers.emplace_back(std::move(name), std::move(value));
    }
    r.lease_key = lease_key;
    rows.push_back(std::move(r));
  }
  if (!in.done())
    return std::nullopt;
  return rows;
}

} // namespace

std::string encode_outbox_chunk(const std::vector<const outbox_row*>& rows,
                                chunk_compression compression) {
  auto& buffers = thread_chunk_buffers();
  encode_plain(rows, buffers.plain);
  const auto& plain = buffers.plain;
  auto* ctx = compression_context();
  std::string out;
  // Without a context (no memory for it) the plain chunk is still a valid
  // chunk.
  if (compression == chunk_compression::none || ctx == nullptr) {
    out = plain;
  } else {
    // Only growth is zero-filled; the scratch keeps its size between chunks.
    auto bound = ZSTD_compressBound(plain.size());
    if (buffers.compressed.size() < bound)
      buffers.compressed.resize(bound);
    auto size = ZSTD_compress2(ctx, buffers.compressed.data(),
                               buffers.compressed.size(), plain.data(),
                               plain.size());
    // Cannot fail with a buffer of ZSTD_compressBound.
    if (ZSTD_isError(size)) {
      out = plain;
    } else {
      out.reserve(compressed_magic.size() + size);
      out.append(compressed_magic.data(), compressed_magic.size());
      out.append(buffers.compressed.data(), size);
    }
  }
  buffers.trim();
  return out;
}

std::optional<std::vector<outbox_row>>
decode_outbox_chunk(std::string_view chunk, const std::string& lease_key) {
  if (chunk.substr(0, compressed_magic.size()) != compressed_magic)
    // Chunks committed before compression (migration 5) are plain.
    return decode_plain(chunk, lease_key);
  auto frame = chunk.substr(compressed_magic.size());
  auto plain_size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (plain_size == ZSTD_CONTENTSIZE_UNKNOWN
      || plain_size == ZSTD_CONTENTSIZE_ERROR || plain_size > max_plain_size)
    return std::nullopt;
  const auto expected = static_cast<std::size_t>(plain_size);
  auto& buffers = thread_chunk_buffers();
  // Only growth is zero-filled; the buffer keeps its size between chunks.
  if (buffers.plain.size() < expected)
    buffers.plain.resize(expected);
  auto* ctx = decompression_context();
  auto size = ctx != nullptr
                ? ZSTD_decompressDCtx(ctx, buffers.plain.data(), expected,
                                      frame.data(), frame.size())
                : ZSTD_decompress(buffers.plain.data(), expected, frame.data(),
                                  frame.size());
  std::optional<std::vector<outbox_row>> rows;
  if (!ZSTD_isError(size) && size == expected)
    rows = decode_plain({buffers.plain.data(), expected}, lease_key);
  buffers.trim();
  return rows;
}

} // namespace seatledger::storage
