#include <atomic>
#include <gtest/gtest.h>
#include <string>
#include <thread>
#include <vector>

#include "domain/ledger.hpp"
#include "test_support.hpp"

using namespace seatledger::domain;
using seatledger::test::at;

namespace {

std::vector<ledger_entry> chain(int n) {
  std::vector<ledger_entry> entries;
  std::string prev = genesis_hash;
  for (int i = 1; i <= n; ++i) {
    ledger_entry e;
    e.subscription_id = "sub-1";
    e.seq = i;
    e.seats_in_use = i;
    e.effective_at = at("2026-01-01T00:00:00Z");
    e.cause = {"billing", "evt-" + std::to_string(i), "seatledger.member.added",
               e.effective_at};
    e.org_id = "org-1";
    e.user_id = "user-" + std::to_string(i);
    e.prev_hash = prev;
    e.hash = compute_entry_hash(e);
    prev = e.hash;
    entries.push_back(e);
  }
  return entries;
}

std::optional<chain_break> verify(const std::vector<ledger_entry>& entries) {
  chain_verifier v;
  for (const auto& e : entries)
    if (auto b = v.next(e))
      return b;
  return std::nullopt;
}

} // namespace

TEST(ledger, genesis_hash_is_64_zeros) {
  EXPECT_EQ(genesis_hash, std::string(64, '0'));
}

TEST(ledger, hash_is_lowercase_hex_sha256) {
  auto e = chain(1)[0];
  ASSERT_EQ(e.hash.size(), 64u);
  for (auto c : e.hash)
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ledger, an_intact_chain_verifies) {
  EXPECT_FALSE(verify(chain(20)));
}

TEST(ledger, every_field_edit_breaks_the_chain_at_that_entry) {
  using mutation = void (*)(ledger_entry&);
  std::vector<mutation> edits{
    [](ledger_entry& e) { e.seats_in_use += 1; },
    [](ledger_entry& e) {
      e.effective_at = timestamp::from_micros(e.effective_at.micros() + 1);
    },
    [](ledger_entry& e) { e.user_id += "x"; },
    [](ledger_entry& e) { e.org_id = "org-2"; },
    [](ledger_entry& e) { e.cause.id += "x"; },
    [](ledger_entry& e) { e.cause.source = "other"; },
    [](ledger_entry& e) { e.cause.type = "other"; },
    [](ledger_entry& e) { e.subscription_id = "sub-2"; },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    auto entries = chain(10);
    edits[i](entries[4]);
    auto b = verify(entries);
    ASSERT_TRUE(b) << "edit " << i;
    EXPECT_EQ(b->seq, 5) << "edit " << i;
  }
}

TEST(ledger, a_recomputed_hash_still_breaks_the_next_link) {
  auto entries = chain(10);
  entries[4].seats_in_use = 99;
  entries[4].hash = compute_entry_hash(entries[4]);
  auto b = verify(entries);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->seq, 6);
}

TEST(ledger, deleted_and_inserted_entries_break_the_sequence) {
  auto entries = chain(10);
  entries.erase(entries.begin() + 3);
  auto b = verify(entries);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->seq, 5);
  entries = chain(10);
  auto extra = entries[2];
  entries.insert(entries.begin() + 3, extra);
  b = verify(entries);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->seq, 3);
}

TEST(ledger, verification_can_start_mid_chain) {
  auto entries = chain(10);
  chain_verifier v(6, entries[4].hash);
  for (size_t i = 5; i < entries.size(); ++i)
    EXPECT_FALSE(v.next(entries[i]));
  EXPECT_EQ(v.verified(), 5);
}

TEST(ledger, seats_at_an_instant_is_the_last_entry_at_or_before_it) {
  std::vector<ledger_point> points{{1, 1, at("2026-01-01T00:00:00Z")},
                                   {2, 2, at("2026-01-02T00:00:00Z")},
                                   {3, 1, at("2026-01-02T00:00:00Z")},
                                   {4, 5, at("2026-01-05T00:00:00Z")}};
  EXPECT_EQ(seats_at(points, at("2025-12-31T00:00:00Z")), 0);
  EXPECT_EQ(seats_at(points, at("2026-01-01T00:00:00Z")), 1);
  EXPECT_EQ(seats_at(points, at("2026-01-02T00:00:00Z")), 1);
  EXPECT_EQ(seats_at(points, at("2026-01-04T23:59:59Z")), 1);
  EXPECT_EQ(seats_at(points, at("2030-01-01T00:00:00Z")), 5);
}

TEST(sha256, threads_digesting_at_once_get_the_digests_one_thread_gets) {
  // Each thread reuses its own digest context; the algorithm is fetched
  // once and shared. The threads digest first and start together, so in a
  // process of its own (ctest runs each test so) they race that fetch.
  std::vector<std::string> inputs;
  for (int i = 0; i < 400; ++i)
    inputs.push_back("input-" + std::to_string(i) + std::string(i % 97, 'x'));
  std::vector<std::vector<std::string>> together(4);
  std::atomic<int> waiting{static_cast<int>(together.size())};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < together.size(); ++t)
    threads.emplace_back([&inputs, &waiting, &out = together[t]] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0)
        std::this_thread::yield();
      for (int round = 0; round < 5; ++round) {
        out.clear();
        for (const auto& in : inputs)
          out.push_back(sha256_hex(in) + applied_event_key({"src", in}));
      }
    });
  for (auto& t : threads)
    t.join();
  std::vector<std::string> alone;
  for (const auto& in : inputs)
    alone.push_back(sha256_hex(in) + applied_event_key({"src", in}));
  for (const auto& out : together)
    EXPECT_EQ(out, alone);
  EXPECT_NE(alone[0], alone[1]);
}

TEST(derived_id, is_uuid_shaped_stable_and_distinct) {
  auto a = derived_id({"x", "ab", "c"});
  auto b = derived_id({"x", "a", "bc"});
  EXPECT_NE(a, b);
  EXPECT_EQ(a, derived_id({"x", "ab", "c"}));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '8'); // version nibble
}

TEST(applied_event_key, is_the_leading_half_of_a_length_prefixed_sha256) {
  // sha256("6:portal1:x"), first 16 bytes (computed independently).
  EXPECT_EQ(applied_event_key({"portal", "x"}),
            "c86e4cf3-7d90-7283-fed3-23a197d92e6c");
  // Where the source ends matters.
  EXPECT_NE(applied_event_key({"a", "bc"}), applied_event_key({"ab", "c"}));
}
