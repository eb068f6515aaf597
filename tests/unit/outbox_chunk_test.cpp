// The outbox chunk codec: what the commit packs, the relay unpacks exactly,
// and a damaged chunk is refused instead of being half-read.

#include <gtest/gtest.h>
#include <optional>
#include <string>

#include "storage/outbox_chunk.hpp"

using namespace seatledger::storage;

namespace {

std::vector<outbox_row> sample_rows() {
  outbox_row binary;
  binary.event_id = "e-1";
  binary.topic = "seatledger.events.v1";
  binary.key = "sub-1";
  binary.value = std::string("\0\x01{\"a\":1}\xff", 11);
  binary.headers = {{"ce_id", "e-1"}, {"dup", "1"}, {"dup", "2"}, {"", ""}};
  binary.lease_key = "subscriptions/3";
  outbox_row empty;
  empty.event_id = "e-2";
  empty.topic = "seatledger.internal.seat-deltas.v1";
  empty.lease_key = "subscriptions/3";
  return {binary, empty};
}

std::vector<const outbox_row*> pointers(const std::vector<outbox_row>& rows) {
  std::vector<const outbox_row*> result;
  for (const auto& r : rows)
    result.push_back(&r);
  return result;
}

void expect_same(const std::vector<outbox_row>& a,
                 const std::vector<outbox_row>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].event_id, b[i].event_id);
    EXPECT_EQ(a[i].topic, b[i].topic);
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(a[i].value, b[i].value);
    EXPECT_EQ(a[i].headers, b[i].headers);
    EXPECT_EQ(a[i].lease_key, b[i].lease_key);
    EXPECT_EQ(a[i].null_key, b[i].null_key) << i;
    EXPECT_EQ(a[i].null_value, b[i].null_value) << i;
  }
}

/// Dead letters of records with Kafka's null and empty keys and values, in
/// every combination.
std::vector<outbox_row> null_and_empty_rows() {
  std::vector<outbox_row> rows;
  for (int key = 0; key < 3; ++key) {
    for (int value = 0; value < 3; ++value) {
      outbox_row r;
      r.event_id = "dlq-" + std::to_string(key) + std::to_string(value);
      r.topic = "seatledger.dlq.v1";
      r.null_key = key == 0; // 0 null, 1 empty, 2 bytes
      r.key = key == 2 ? "org-1" : "";
      r.null_value = value == 0;
      r.value = value == 2 ? "{\"broken" : "";
      r.headers = {{"seatledger.error.code", "malformed_json"}};
      r.lease_key = "membership/0";
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

/// Two rows as the version before null keys and values stored them: a
/// tombstone's dead letter (its value kept as empty, key empty) and an
/// event. "SLO1" plain and "SLZ1" compressed, made by that version's
/// encode_outbox_chunk.
const std::string legacy_plain_chunk{
  "\x53\x4c\x4f\x31\x02\x00\x00\x00\x05\x00\x00\x00\x64\x6c\x71\x2d"
  "\x31\x11\x00\x00\x00\x73\x65\x61\x74\x6c\x65\x64\x67\x65\x72\x2e"
  "\x64\x6c\x71\x2e\x76\x31\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00"
  "\x00\x00\x15\x00\x00\x00\x73\x65\x61\x74\x6c\x65\x64\x67\x65\x72"
  "\x2e\x65\x72\x72\x6f\x72\x2e\x63\x6f\x64\x65\x0e\x00\x00\x00\x6d"
  "\x61\x6c\x66\x6f\x72\x6d\x65\x64\x5f\x6a\x73\x6f\x6e\x03\x00\x00"
  "\x00\x65\x2d\x32\x14\x00\x00\x00\x73\x65\x61\x74\x6c\x65\x64\x67"
  "\x65\x72\x2e\x65\x76\x65\x6e\x74\x73\x2e\x76\x31\x05\x00\x00\x00"
  "\x73\x75\x62\x2d\x31\x02\x00\x00\x00\x7b\x7d\x00\x00\x00\x00",
  143};
const std::string legacy_compressed_chunk{
  "\x53\x4c\x5a\x31\x28\xb5\x2f\xfd\x24\x8f\x35\x03\x00\xb2\x06\x16"
  "\x1c\x70\x6b\x33\x06\xc6\x09\x1b\xe9\xa1\x4e\x27\x7e\x49\xd9\xa0"
  "\x9a\x01\xf0\x23\x0f\xff\x3b\xb4\x41\xfa\x41\x6c\x0a\xff\x11\xc8"
  "\x8f\x30\x29\x1e\xec\x57\xb0\x1d\x7b\x1a\x6d\x83\x42\xd2\x1f\xd0"
  "\x2c\xe6\x48\xa4\x32\xbb\x18\x6a\x61\xfe\x80\xe6\x5a\xdc\xae\x5d"
  "\x25\xfc\xc9\xd8\xce\x51\x79\xab\x8d\x54\xf5\x2c\xca\x7e\x01\x26"
  "\x47\xe5\xaf\xfc\x08\x0f\x06\x44\x03\x00\xac\xaa\x7b\x44\x49\x7d"
  "\x17\x3c\x01\x45\xa0\xe1\x81",
  119};

std::vector<outbox_row> legacy_rows() {
  outbox_row tombstone;
  tombstone.event_id = "dlq-1";
  tombstone.topic = "seatledger.dlq.v1";
  tombstone.headers = {{"seatledger.error.code", "malformed_json"}};
  tombstone.lease_key = "membership/0";
  outbox_row event;
  event.event_id = "e-2";
  event.topic = "seatledger.events.v1";
  event.key = "sub-1";
  event.value = "{}";
  event.lease_key = "membership/0";
  return {tombstone, event};
}

/// A dead letter whose record had a header sent with Kafka's null value,
/// as the version before null header values stored it (the value kept as
/// empty), next to one sent empty: "SLO1" plain and "SLZ1" compressed, made
/// by that version's encode_outbox_chunk.
const std::string legacy_header_plain_chunk{
  "\x53\x4c\x4f\x31\x01\x00\x00\x00\x05\x00\x00\x00\x64\x6c\x71\x2d"
  "\x32\x11\x00\x00\x00\x73\x65\x61\x74\x6c\x65\x64\x67\x65\x72\x2e"
  "\x64\x6c\x71\x2e\x76\x31\x05\x00\x00\x00\x6f\x72\x67\x2d\x31\x08"
  "\x00\x00\x00\x7b\x22\x62\x72\x6f\x6b\x65\x6e\x03\x00\x00\x00\x0a"
  "\x00\x00\x00\x78\x2d\x77\x61\x73\x2d\x6e\x75\x6c\x6c\x00\x00\x00"
  "\x00\x07\x00\x00\x00\x78\x2d\x65\x6d\x70\x74\x79\x00\x00\x00\x00"
  "\x15\x00\x00\x00\x73\x65\x61\x74\x6c\x65\x64\x67\x65\x72\x2e\x65"
  "\x72\x72\x6f\x72\x2e\x63\x6f\x64\x65\x0e\x00\x00\x00\x6d\x61\x6c"
  "\x66\x6f\x72\x6d\x65\x64\x5f\x6a\x73\x6f\x6e",
  139};
const std::string legacy_header_compressed_chunk{
  "\x53\x4c\x5a\x31\x28\xb5\x2f\xfd\x24\x8b\x6d\x03\x00\x82\x87\x18"
  "\x1d\x60\x4f\x33\x06\x9c\x8c\xd1\x9a\xda\x08\x99\x7a\xdb\x88\x01"
  "\x10\x8a\x02\x80\xf4\xf3\x10\x02\xab\x28\x8e\xb9\x40\x29\x4f\xa1"
  "\x48\xa3\xa1\x5b\x85\x24\x73\x7f\x01\x9b\x3e\xd4\xea\x2e\x1e\xfe"
  "\x31\xd1\xc4\xa1\xe0\x3f\x93\xf2\x12\xc4\x2c\xe9\xf2\x13\xfe\xc0"
  "\x43\x89\xae\x03\x91\xf9\x07\x2b\x39\xab\x7f\xb3\x2a\xea\xc9\xa6"
  "\x16\x9d\x86\x19\x31\x84\x7e\x43\x22\x3d\xd9\xfe\xe6\x07\xac\x85"
  "\x82\x11\x02\x00\x52\x90\x28\x95\x30\xcd\x9a\x83\xf0\x2c",
  126};

std::vector<outbox_row> legacy_header_rows() {
  outbox_row r;
  r.event_id = "dlq-2";
  r.topic = "seatledger.dlq.v1";
  r.key = "org-1";
  r.value = "{\"broken";
  r.headers = {{"x-was-null", ""},
               {"x-empty", ""},
               {"seatledger.error.code", "malformed_json"}};
  r.lease_key = "membership/0";
  return {r};
}

} // namespace

TEST(outbox_chunk, round_trips_rows_in_order_with_binary_values) {
  auto rows = sample_rows();
  auto chunk = encode_outbox_chunk(pointers(rows));
  EXPECT_EQ(chunk.substr(0, 4), "SLZ1");
  auto back = decode_outbox_chunk(chunk, "subscriptions/3");
  ASSERT_TRUE(back);
  expect_same(*back, rows);
}

TEST(outbox_chunk, plain_chunks_of_earlier_versions_are_still_read) {
  auto rows = sample_rows();
  auto chunk = encode_outbox_chunk(pointers(rows), chunk_compression::none);
  EXPECT_EQ(chunk.substr(0, 4), "SLO1");
  auto back = decode_outbox_chunk(chunk, "subscriptions/3");
  ASSERT_TRUE(back);
  expect_same(*back, rows);
}

TEST(outbox_chunk, null_and_empty_keys_and_values_round_trip_apart) {
  auto rows = null_and_empty_rows();
  for (auto compression : {chunk_compression::none, chunk_compression::zstd}) {
    auto chunk = encode_outbox_chunk(pointers(rows), compression);
    auto back = decode_outbox_chunk(chunk, "membership/0");
    ASSERT_TRUE(back);
    expect_same(*back, rows);
    for (std::size_t n = 0; n < chunk.size(); ++n)
      EXPECT_FALSE(decode_outbox_chunk(chunk.substr(0, n), "k")) << n;
  }
}

TEST(outbox_chunk, chunks_of_the_version_before_nulls_read_as_not_null) {
  // Chunks committed before null keys and values were kept: their empty
  // ones stay empty, not null (published as they would have been).
  for (const auto* chunk : {&legacy_plain_chunk, &legacy_compressed_chunk}) {
    auto back = decode_outbox_chunk(*chunk, "membership/0");
    ASSERT_TRUE(back);
    expect_same(*back, legacy_rows());
  }
  // And rows without a null are written as that version wrote them, so it
  // still reads them (a rollback).
  auto rows = legacy_rows();
  EXPECT_EQ(encode_outbox_chunk(pointers(rows), chunk_compression::none),
            legacy_plain_chunk);
  // The same for header values: one sent null, stored before they were
  // kept, stays empty.
  for (const auto* chunk :
       {&legacy_header_plain_chunk, &legacy_header_compressed_chunk}) {
    auto back = decode_outbox_chunk(*chunk, "membership/0");
    ASSERT_TRUE(back);
    expect_same(*back, legacy_header_rows());
  }
  auto header_rows = legacy_header_rows();
  EXPECT_EQ(encode_outbox_chunk(pointers(header_rows), chunk_compression::none),
            legacy_header_plain_chunk);
}

TEST(outbox_chunk, null_and_empty_header_values_round_trip_apart) {
  // A dead letter copies its record's headers: Kafka tells a null header
  // value from an empty one, so the chunk must too.
  outbox_row r;
  r.event_id = "dlq-h";
  r.topic = "seatledger.dlq.v1";
  r.key = "org-1";
  r.value = "{\"broken";
  r.headers
    = {{"x-null", std::nullopt}, {"x-empty", ""},
       {"x-bytes", "v"},         {"", std::nullopt},
       {"x-null", "then bytes"}, {"seatledger.error.code", "malformed_json"}};
  r.lease_key = "membership/0";
  const std::vector<outbox_row> rows{r};
  for (auto compression : {chunk_compression::none, chunk_compression::zstd}) {
    auto chunk = encode_outbox_chunk(pointers(rows), compression);
    auto back = decode_outbox_chunk(chunk, "membership/0");
    ASSERT_TRUE(back);
    expect_same(*back, rows);
    ASSERT_EQ(back->size(), 1u);
    const auto& headers = back->front().headers;
    ASSERT_EQ(headers.size(), 6u);
    EXPECT_FALSE(headers[0].second.has_value());
    EXPECT_EQ(headers[1].second, std::optional<std::string>{""});
    EXPECT_FALSE(headers[3].second.has_value());
    for (std::size_t n = 0; n < chunk.size(); ++n)
      EXPECT_FALSE(decode_outbox_chunk(chunk.substr(0, n), "k")) << n;
  }
}

TEST(outbox_chunk, cloudevents_json_compresses_to_a_fraction) {
  std::vector<outbox_row> rows;
  for (int i = 0; i < 1000; ++i) {
    outbox_row r;
    r.event_id = "0195f0c2-7a1b-8c3d-9e4f-" + std::to_string(100000000000 + i);
    r.topic = "seatledger.events.v1";
    r.key = "sub-" + std::to_string(i % 17);
    r.value = R"({"specversion":"1.0","id":")" + r.event_id
              + R"(","source":"seatledger","type":"seatledger.seats.changed",)"
                R"("time":"2026-01-01T10:00:00Z","data":{"subscription_id":")"
              + r.key + R"(","seats_in_use":)" + std::to_string(i)
              + R"(,"user_id":"user-)" + std::to_string(i * 7919) + R"("}})";
    r.headers = {{"content-type", "application/cloudevents+json"}};
    rows.push_back(std::move(r));
  }
  auto plain = encode_outbox_chunk(pointers(rows), chunk_compression::none);
  auto compressed = encode_outbox_chunk(pointers(rows));
  EXPECT_LT(compressed.size() * 4, plain.size())
    << compressed.size() << " of " << plain.size();
  auto back = decode_outbox_chunk(compressed, "k");
  ASSERT_TRUE(back);
  for (auto& r : rows)
    r.lease_key = "k";
  expect_same(*back, rows);
}

TEST(outbox_chunk, an_empty_chunk_is_valid) {
  for (auto compression : {chunk_compression::none, chunk_compression::zstd}) {
    auto chunk = encode_outbox_chunk({}, compression);
    auto back = decode_outbox_chunk(chunk, "k");
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->empty());
  }
}

TEST(outbox_chunk, every_truncation_and_trailing_garbage_is_refused) {
  auto rows = sample_rows();
  for (auto compression : {chunk_compression::none, chunk_compression::zstd}) {
    auto chunk = encode_outbox_chunk(pointers(rows), compression);
    for (std::size_t n = 0; n < chunk.size(); ++n)
      EXPECT_FALSE(decode_outbox_chunk(chunk.substr(0, n), "k")) << n;
    EXPECT_FALSE(decode_outbox_chunk(chunk + "x", "k"));
    auto wrong_magic = chunk;
    wrong_magic[3] = '2';
    EXPECT_FALSE(decode_outbox_chunk(wrong_magic, "k"));
  }
}

TEST(outbox_chunk, a_damaged_compressed_chunk_is_refused) {
  auto rows = sample_rows();
  auto chunk = encode_outbox_chunk(pointers(rows));
  // Every single-byte change past the magic: the frame's structure, its
  // content size or its content checksum refuses it, so no chunk is relayed
  // with other bytes (and the sanitizer build checks nothing reads past the
  // buffer).
  for (std::size_t i = 4; i < chunk.size(); ++i) {
    auto damaged = chunk;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    EXPECT_FALSE(decode_outbox_chunk(damaged, "k")) << i;
  }
}

TEST(outbox_chunk, a_huge_declared_size_is_refused_without_allocating_it) {
  // "SLZ1", then a zstd frame header: magic, a descriptor for a single
  // segment with an 8-byte content size, and the size: 1 TiB.
  std::string chunk = "SLZ1";
  chunk += std::string("\x28\xb5\x2f\xfd\xe0", 5);
  chunk += std::string("\0\0\0\0\0\x01\0\0", 8);
  chunk += std::string(16, '\0');
  EXPECT_FALSE(decode_outbox_chunk(chunk, "k"));
}

TEST(outbox_chunk, a_huge_record_count_is_refused_without_allocating_it) {
  std::string chunk = "SLO1";
  chunk += std::string("\xff\xff\xff\xff", 4);
  EXPECT_FALSE(decode_outbox_chunk(chunk, "k"));
  // A string length past the end, too.
  auto rows = sample_rows();
  auto good = encode_outbox_chunk(pointers(rows), chunk_compression::none);
  good[8] = '\xff';
  EXPECT_FALSE(decode_outbox_chunk(good, "k"));
}

TEST(outbox_chunk, a_small_chunk_after_a_large_one_holds_only_its_own_rows) {
  // The codec keeps its buffers between chunks on a thread: what a larger
  // chunk left in them must not reach a smaller one, encoded or decoded.
  std::vector<outbox_row> large;
  for (int i = 0; i < 2000; ++i) {
    outbox_row r;
    r.event_id = "large-" + std::to_string(i);
    r.topic = "seatledger.events.v1";
    r.key = "sub-large";
    r.value = std::string(300 + i % 7, static_cast<char>('a' + i % 26));
    r.lease_key = "subscriptions/1";
    large.push_back(std::move(r));
  }
  auto small = sample_rows();
  auto large_chunk = encode_outbox_chunk(pointers(large));
  auto small_chunk = encode_outbox_chunk(pointers(small));
  auto small_plain = encode_outbox_chunk(pointers(small),
                                         chunk_compression::none);
  EXPECT_LT(small_chunk.size(), 200u);
  EXPECT_LT(small_plain.size(), 200u);
  for (int round = 0; round < 2; ++round) {
    auto large_back = decode_outbox_chunk(large_chunk, "subscriptions/1");
    ASSERT_TRUE(large_back);
    expect_same(*large_back, large);
    auto small_back = decode_outbox_chunk(small_chunk, "subscriptions/3");
    ASSERT_TRUE(small_back);
    expect_same(*small_back, small);
    auto plain_back = decode_outbox_chunk(small_plain, "subscriptions/3");
    ASSERT_TRUE(plain_back);
    expect_same(*plain_back, small);
  }
}
