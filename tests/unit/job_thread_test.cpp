// The commit thread's mechanism: jobs run one at a time, in order, on one
// long-lived thread; results and exceptions arrive through futures.

#include <atomic>
#include <gtest/gtest.h>
#include <stdexcept>
#include <vector>

#include "actors/job_thread.hpp"

namespace seatledger::actors {
namespace {

TEST(job_thread, runs_jobs_in_order_on_one_thread) {
  job_thread<std::thread::id> worker;
  std::vector<int> ran;
  std::vector<std::future<std::thread::id>> results;
  for (int i = 0; i < 50; ++i)
    results.push_back(worker.submit([&ran, i] {
      ran.push_back(i); // no lock: jobs never overlap
      return std::this_thread::get_id();
    }));
  std::vector<std::thread::id> threads;
  for (auto& r : results)
    threads.push_back(r.get());
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i)
    expected[i] = i;
  EXPECT_EQ(ran, expected);
  for (const auto& id : threads) {
    EXPECT_EQ(id, threads.front());
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(job_thread, an_exception_arrives_through_the_future) {
  job_thread<int> worker;
  auto failed = worker.submit([]() -> int { throw std::runtime_error{"no"}; });
  EXPECT_THROW(failed.get(), std::runtime_error);
  // The thread survives it.
  EXPECT_EQ(worker.submit([] { return 7; }).get(), 7);
}

TEST(job_thread, destroying_it_finishes_the_jobs_handed_over) {
  std::atomic<int> done{0};
  {
    job_thread<int> worker;
    for (int i = 0; i < 5; ++i)
      worker.submit([&done] {
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
        return ++done;
      });
  }
  EXPECT_EQ(done.load(), 5);
}

} // namespace
} // namespace seatledger::actors
