// The outbox chunk codec: what the commit packs, the relay unpacks exactly,
// and a damaged chunk is refused instead of being half-read.

#include <gtest/gtest.h>

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
  }
}

} // namespace

TEST(outbox_chunk, round_trips_rows_in_order_with_binary_values) {
  auto rows = sample_rows();
  auto chunk = encode_outbox_chunk(pointers(rows));
  EXPECT_EQ(chunk.substr(0, 4), "SLO1");
  auto back = decode_outbox_chunk(chunk, "subscriptions/3");
  ASSERT_TRUE(back);
  expect_same(*back, rows);
}

TEST(outbox_chunk, an_empty_chunk_is_valid) {
  auto chunk = encode_outbox_chunk({});
  auto back = decode_outbox_chunk(chunk, "k");
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->empty());
}

TEST(outbox_chunk, every_truncation_and_trailing_garbage_is_refused) {
  auto rows = sample_rows();
  auto chunk = encode_outbox_chunk(pointers(rows));
  for (std::size_t n = 0; n < chunk.size(); ++n)
    EXPECT_FALSE(decode_outbox_chunk(chunk.substr(0, n), "k")) << n;
  EXPECT_FALSE(decode_outbox_chunk(chunk + "x", "k"));
  auto wrong_magic = chunk;
  wrong_magic[3] = '2';
  EXPECT_FALSE(decode_outbox_chunk(wrong_magic, "k"));
}

TEST(outbox_chunk, a_huge_record_count_is_refused_without_allocating_it) {
  std::string chunk = "SLO1";
  chunk += std::string("\xff\xff\xff\xff", 4);
  EXPECT_FALSE(decode_outbox_chunk(chunk, "k"));
  // A string length past the end, too.
  auto rows = sample_rows();
  auto good = encode_outbox_chunk(pointers(rows));
  good[8] = '\xff';
  EXPECT_FALSE(decode_outbox_chunk(good, "k"));
}
