#pragma once

// One long-lived thread that runs jobs one at a time, in the order they are
// handed over, each answered through a future. Blocking work (a PostgreSQL
// commit) runs there instead of on a thread made for each job: the thread
// exists from start-up, so handing a job over cannot fail mid-stream.
// An event loop can poll `done_fd()` to learn when a job has finished
// instead of blocking on its future.

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace seatledger::actors {

template<class Result>
class job_thread {
public:
  job_thread()
      : done_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        thread_([this] { run(); }) {}

  /// Runs the jobs handed over so far, then ends the thread.
  ~job_thread() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (done_fd_ >= 0)
      ::close(done_fd_);
  }

  job_thread(const job_thread&) = delete;
  job_thread& operator=(const job_thread&) = delete;

  /// The job's result, or the exception it threw, arrives in the future.
  std::future<Result> submit(std::function<Result()> job) {
    std::packaged_task<Result()> task{std::move(job)};
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock{mutex_};
      jobs_.push_back(std::move(task));
    }
    wake_.notify_one();
    return result;
  }

  /// Readable (POLLIN) once a job has finished, its result already in its
  /// future, until `clear_done`. -1 if the kernel gave no eventfd.
  int done_fd() const {
    return done_fd_;
  }

  /// Makes `done_fd` unreadable until the next job finishes. Check the
  /// futures after calling it, not before, or a job that finished in
  /// between goes unnoticed.
  void clear_done() {
    eventfd_t ignored = 0;
    if (done_fd_ >= 0)
      ::eventfd_read(done_fd_, &ignored);
  }

private:
  void run() {
    for (;;) {
      std::packaged_task<Result()> task;
      {
        std::unique_lock<std::mutex> lock{mutex_};
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty())
          return;
        task = std::move(jobs_.front());
        jobs_.pop_front();
      }
      task();
      if (done_fd_ >= 0)
        ::eventfd_write(done_fd_, 1);
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Result()>> jobs_;
  bool stopping_ = false;
  int done_fd_;
  // Last: it starts running once the members above exist.
  std::thread thread_;
};

} // namespace seatledger::actors
