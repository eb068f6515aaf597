#include <cerrno>
#include <chrono>
#include <cstring>
#include <gtest/gtest.h>
#include <iostream>
#include <signal.h>
#include <spawn.h>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <vector>

extern char** environ;

namespace {

struct runs_result {
  int failed = 0;
  /// The first failed run's end: "exit N", "signal N", "timed out" or why
  /// it could not be started or waited for.
  std::string first_failure;
};

/// How one run ended; empty when it exited with status 0.
std::string run_once(const std::string& program,
                     const std::vector<std::string>& args) {
  std::vector<std::string> texts{program};
  texts.insert(texts.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& text : texts)
    argv.push_back(text.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ)
      != 0)
    return "cannot start " + program;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  int status = 0;
  for (;;) {
    auto waited = waitpid(pid, &status, WNOHANG);
    if (waited == pid)
      break;
    if (waited < 0 && errno != EINTR)
      return std::string{"waitpid: "} + std::strerror(errno);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "timed out";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status) == 0
             ? std::string{}
             : "exit " + std::to_string(WEXITSTATUS(status));
  return "signal " + std::to_string(WTERMSIG(status));
}

/// Runs the helper `runs` times, without core files; stops at a run that
/// timed out.
runs_result run_helper(const std::vector<std::string>& args, int runs) {
  rlimit cores{};
  getrlimit(RLIMIT_CORE, &cores);
  rlimit no_cores{0, cores.rlim_max};
  setrlimit(RLIMIT_CORE, &no_cores);
  runs_result result;
  for (int i = 0; i < runs; ++i) {
    auto failure = run_once(SEATLEDGER_OPENSSL_EXIT_RACE, args);
    if (failure.empty())
      continue;
    if (++result.failed == 1)
      result.first_failure = failure;
    if (failure == "timed out")
      break;
  }
  setrlimit(RLIMIT_CORE, &cores);
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
  auto with_option = run_helper({"--keep-openssl-state"}, 1000);
  EXPECT_EQ(with_option.failed, 0) << "first: " << with_option.first_failure;
  // What the same machine does without it, for the log: whether the
  // helper still reproduces the race here (not asserted: it is timing).
  auto without = run_helper({}, 300);
  std::cout << "without the option: " << without.failed << " of 300 runs failed"
            << (without.failed > 0 ? " (first: " + without.first_failure + ")"
                                   : std::string{})
            << "\n";
}
