// The commit thread's mechanism: jobs run one at a time, in order, on one
// long-lived thread; results and exceptions arrive through futures.

#include <atomic>
#include <gtest/gtest.h>
#include <poll.h>
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

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

// The coordinator polls this instead of blocking on the commit's future: it
// must not turn readable before the result is in the future, and must stay
// quiet once cleared.
TEST(job_thread, done_fd_turns_readable_when_a_result_is_ready) {
  job_thread<int> worker;
  ASSERT_GE(worker.done_fd(), 0);
  EXPECT_FALSE(readable(worker.done_fd(), 0));
  std::promise<void> go;
  auto gate = go.get_future().share();
  auto result = worker.submit([gate] {
    gate.wait();
    return 42;
  });
  EXPECT_FALSE(readable(worker.done_fd(), 20)); // still running
  go.set_value();
  ASSERT_TRUE(readable(worker.done_fd(), 5000));
  EXPECT_EQ(result.wait_for(std::chrono::seconds{0}),
            std::future_status::ready);
  EXPECT_EQ(result.get(), 42);
  worker.clear_done();
  EXPECT_FALSE(readable(worker.done_fd(), 0));
  // Two jobs finished before anyone looked: one clear covers both. A third,
  // held, job has started only once both signalled (a future is ready
  // before its job's signal, so waiting on theirs would race with it).
  worker.submit([] { return 1; });
  worker.submit([] { return 2; });
  std::promise<void> third_started;
  std::promise<void> release;
  auto released = release.get_future().share();
  auto third = worker.submit([&third_started, released] {
    third_started.set_value();
    released.wait();
    return 3;
  });
  third_started.get_future().wait();
  ASSERT_TRUE(readable(worker.done_fd(), 0));
  worker.clear_done();
  EXPECT_FALSE(readable(worker.done_fd(), 0));
  release.set_value();
  EXPECT_EQ(third.get(), 3);
}

} // namespace
} // namespace seatledger::actors
