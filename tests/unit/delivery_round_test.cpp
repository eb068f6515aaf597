// A relay round's delivery reports and the chunks it may mark published.

#include <gtest/gtest.h>

#include "actors/delivery_round.hpp"

namespace seatledger::actors {
namespace {

constexpr auto delivered = kafka::delivery_status::delivered;
constexpr auto failed = kafka::delivery_status::failed;
constexpr auto refused = kafka::delivery_status::refused;

TEST(delivery_round, marks_the_complete_chunks_up_to_the_first_incomplete) {
  // Chunks 7 (two events), 8 (two), 9 (one); 8's second event undelivered.
  delivery_round round{5};
  std::vector<delivery_round::report_fn> reports;
  for (std::size_t i = 0; i < 5; ++i)
    reports.push_back(round.report(i, nullptr));
  for (std::size_t i : {0u, 1u, 2u, 4u})
    reports[i](delivered, "");
  const std::vector<std::int64_t> chunk_of{7, 7, 8, 8, 9};
  // 9 was delivered, but marking it before 8 would publish its keys' later
  // events ahead of 8's when 8 goes again.
  EXPECT_EQ(round.complete_chunks(chunk_of), (std::vector<std::int64_t>{7}));
  EXPECT_EQ(round.delivered_in_a_row(), 3u);
  EXPECT_FALSE(round.failed());
  reports[3](delivered, "");
  EXPECT_EQ(round.complete_chunks(chunk_of),
            (std::vector<std::int64_t>{7, 8, 9}));
  EXPECT_EQ(round.delivered_in_a_row(), 5u);
}

TEST(delivery_round, a_failed_report_fails_the_round_and_says_why) {
  delivery_round round{2};
  std::string reason;
  auto note = [&](kafka::delivery_status, const std::string& e) { reason = e; };
  auto first = round.report(0, note);
  auto second = round.report(1, note);
  first(delivered, "");
  second(failed, "Local: Message timed out");
  EXPECT_TRUE(round.failed());
  EXPECT_EQ(reason, "Local: Message timed out");
  EXPECT_EQ(round.complete_chunks({1, 2}), (std::vector<std::int64_t>{1}));
}

TEST(delivery_round, counts_its_failed_reports_before_telling_of_each) {
  // The relay logs a round's first failure only: a broker error fails every
  // event of a request, thousands of lines otherwise.
  delivery_round round{3};
  std::vector<std::size_t> seen_when_told;
  auto note = [&](kafka::delivery_status, const std::string&) {
    seen_when_told.push_back(round.failed_reports());
  };
  round.report(0, note)(failed, "Broker: Producer attempted an old epoch");
  round.report(1, note)(refused, "Broker: Message size too large");
  round.report(2, note)(failed, "Broker: Producer attempted an old epoch");
  EXPECT_EQ(round.failed_reports(), 2u);
  EXPECT_EQ(seen_when_told, (std::vector<std::size_t>{1, 1, 2}));
}

TEST(delivery_round, an_event_kafka_refuses_is_done_with_and_not_counted) {
  // A dead letter as large as the record it copies can be too large for
  // Kafka. Waiting for it would hold back every later event for ever.
  delivery_round round{3};
  kafka::delivery_status told = delivered;
  round.report(0, nullptr)(delivered, "");
  round.report(1, [&](kafka::delivery_status s, const std::string&) {
    told = s;
  })(refused, "Broker: Message size too large");
  round.report(2, nullptr)(delivered, "");
  EXPECT_EQ(told, refused);
  EXPECT_FALSE(round.failed());
  EXPECT_EQ(round.complete_chunks({5, 5, 6}),
            (std::vector<std::int64_t>{5, 6}));
  EXPECT_EQ(round.done_in_a_row(), 3u);
  EXPECT_EQ(round.delivered_in_a_row(), 2u);
}

TEST(delivery_round, a_produce_stopped_half_way_marks_only_what_was_sent) {
  // Events past a refused produce never get a report.
  delivery_round round{3};
  round.report(0, nullptr)(delivered, "");
  round.fail();
  EXPECT_TRUE(round.failed());
  EXPECT_EQ(round.complete_chunks({4, 5, 5}), (std::vector<std::int64_t>{4}));
}

TEST(delivery_round, reports_arriving_after_the_round_gave_up_are_harmless) {
  // The relay gave up on its flush and moved on: the round is gone, its
  // reports are still in librdkafka's queue. They arrive during a later
  // round (which has state of its own) or at shutdown. Under ASan a report
  // pointing into the dead round's memory fails this test.
  std::vector<delivery_round::report_fn> late;
  {
    delivery_round gone{4};
    for (std::size_t i = 0; i < 4; ++i)
      late.push_back(gone.report(i, nullptr));
  }
  delivery_round next{1};
  auto current = next.report(0, nullptr);
  for (auto& report : late)
    report(delivered, "");
  late.back()(failed, "Local: Purged in queue");
  EXPECT_EQ(next.delivered_in_a_row(), 0u);
  EXPECT_FALSE(next.failed());
  current(delivered, "");
  EXPECT_EQ(next.complete_chunks({3}), (std::vector<std::int64_t>{3}));
}

} // namespace
} // namespace seatledger::actors
