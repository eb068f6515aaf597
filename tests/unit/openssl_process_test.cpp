#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

extern char** environ;

namespace {

struct runs_result {
  int failed = 0;
  /// The first failed run's wait status, as "exit N" or "signal N".
  std::string first_failure;
};

/// Runs the helper `runs` times; a run that takes over 10 s is killed and
/// counts as failed.
runs_result run_helper(const char* flag, int runs) {
  runs_result result;
  std::string program = SEATLEDGER_OPENSSL_EXIT_RACE;
  std::string flag_text = flag;
  for (int i = 0; i < runs; ++i) {
    char* argv[] = {program.data(), flag_text.data(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv, environ)
        != 0) {
      result.failed = runs;
      result.first_failure = "cannot start " + program;
      return result;
    }
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
      continue;
    if (++result.failed == 1)
      result.first_failure
        = WIFSIGNALED(status)
            ? "signal " + std::to_string(WTERMSIG(status))
            : "exit " + std::to_string(WEXITSTATUS(status));
  }
  return result;
}

} // namespace

TEST(openssl_process, an_exit_beside_a_thread_still_ending_does_not_crash) {
  // The service ended with SIGSEGV after logging "stopped", once in CI:
  // OpenSSL's exit handler freed its state while a detached actor thread
  // that had used OpenSSL was still ending and ran its per-thread cleanup.
  // The helper reproduces that; without the option it crashed in 26 of
  // 2,000 runs here, so 1,000 runs with it and none failing show the fix.
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the race depends on timing that AddressSanitizer's exit "
                  "(its leak check) changes";
#endif
  auto with_option = run_helper("--keep-openssl-state", 1000);
  EXPECT_EQ(with_option.failed, 0) << "first: " << with_option.first_failure;
  // What the same machine does without it, for the log: whether the
  // helper still reproduces the race here (not asserted: it is timing).
  auto without = run_helper("--exit-as-openssl-would", 300);
  std::cout << "without the option: " << without.failed
            << " of 300 runs failed"
            << (without.failed > 0 ? " (first: " + without.first_failure + ")"
                                   : std::string{})
            << "\n";
}
