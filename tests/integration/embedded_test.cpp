// Embedded mode: a private server from the installed binaries (as an
// unprivileged OS user when the tests run as root).

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>

#include "pg_fixture.hpp"
#include "storage/embedded_postgres.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace fs = std::filesystem;

namespace {

class embedded : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern
      = (fs::temp_directory_path() / "seatledger-emb-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    // The server's OS user must be able to reach the data directory.
    chmod(root_.c_str(), 0755);
    data_dir_ = (fs::path{root_} / "var" / "postgres").string();
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static storage::storage_batch batch(const std::string& sub, int n,
                                      std::int64_t first_seq,
                                      const std::string& prev) {
    storage::storage_batch b;
    b.consumer_group = "seatledger";
    auto l = chain(sub, n, at("2026-02-01T00:00:00Z"), 1'000, first_seq, prev,
                   first_seq - 1);
    b.ledger = l;
    b.subscriptions.push_back({record_for(sub, l), 0, std::nullopt});
    b.applied_events.push_back({"test", sub + std::to_string(first_seq)});
    b.positions.push_back({{"seatledger.subscriptions.v1", 0}, first_seq + n});
    return b;
  }

  /// The OS user the server runs as: ours, or the embedded mode's choice
  /// under root.
  static std::optional<passwd> server_user() {
    if (geteuid() != 0)
      return std::nullopt;
    auto* pw = getpwnam(storage::embedded_postgres::default_os_user().c_str());
    if (pw == nullptr)
      return std::nullopt;
    return *pw;
  }

  pid_t postmaster_pid() const {
    std::ifstream in{fs::path{data_dir_} / "postmaster.pid"};
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  void initialise_cluster() {
    storage::embedded_postgres pg;
    auto conninfo = pg.start(data_dir_);
    ASSERT_TRUE(conninfo) << describe(conninfo.error());
    ASSERT_TRUE(storage::migrate(*conninfo));
    ASSERT_OK(pg.stop());
  }

  std::string root_;
  std::string data_dir_;
};

TEST_F(embedded, start_write_stop_start_and_the_data_is_still_there) {
  std::string head_hash;
  {
    storage::embedded_postgres pg;
    auto conninfo = pg.start(data_dir_);
    ASSERT_TRUE(conninfo) << describe(conninfo.error());
    EXPECT_TRUE(pg.running());
    EXPECT_NE(conninfo->find("dbname=seatledger"), std::string::npos);
    EXPECT_TRUE(fs::exists(fs::path{data_dir_} / "PG_VERSION"));
    if (geteuid() == 0) {
      struct stat st {};
      ASSERT_EQ(stat(data_dir_.c_str(), &st), 0);
      EXPECT_NE(st.st_uid, 0u) << "the server must not run as root";
    }
    auto applied = storage::migrate(*conninfo);
    ASSERT_TRUE(applied) << describe(applied.error());
    storage::pg_store store{*conninfo};
    auto b = batch("sub-e", 3, 1, domain::genesis_hash);
    head_hash = b.ledger.back().hash;
    ASSERT_OK(store.commit(b));
    store.disconnect();
    ASSERT_OK(pg.stop());
    EXPECT_FALSE(pg.running());
    // Stopped means stopped.
    storage::pg_store after_stop{*conninfo};
    EXPECT_FALSE(after_stop.ping());
  }
  storage::embedded_postgres pg;
  auto conninfo = pg.start(data_dir_);
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  auto applied = storage::migrate(*conninfo);
  ASSERT_TRUE(applied) << describe(applied.error());
  EXPECT_EQ(*applied, 0); // the schema survived too
  storage::pg_store store{*conninfo};
  auto subs = value_or_fail(store.load_subscriptions({"sub-e"}));
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs["sub-e"].record.ledger_seq, 3);
  EXPECT_EQ(subs["sub-e"].window.points.size(), 3u);
  ASSERT_OK(store.commit(batch("sub-e", 2, 4, head_hash)));
  auto reports = value_or_fail(store.verify_ledger(std::string{"sub-e"}));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].entries_verified, 5);
  EXPECT_FALSE(reports[0].first_break);
  store.disconnect();
  ASSERT_OK(pg.stop());
}

// initdb writes PG_VERSION first and the rest over seconds. A first start
// killed in between left a directory that passed for initialised, and
// every later start failed in pg_ctl until it was deleted by hand.
TEST_F(embedded, a_first_initdb_killed_half_way_is_run_again) {
  // An initdb that gets as far as PG_VERSION and is killed.
  auto fake_bin = fs::path{root_} / "killed-initdb";
  fs::create_directories(fake_bin);
  {
    std::ofstream script{fake_bin / "initdb"};
    script << "#!/bin/sh\n"
              "while [ \"$1\" != -D ]; do shift; done\n"
              "echo 15 > \"$2/PG_VERSION\"\n"
              "kill -9 $$\n";
  }
  fs::permissions(fake_bin / "initdb", fs::perms{0755});
  storage::embedded_postgres_options killed;
  killed.bin_dir = fake_bin.string();
  {
    storage::embedded_postgres pg{killed};
    auto conninfo = pg.start(data_dir_);
    ASSERT_FALSE(conninfo);
    EXPECT_NE(describe(conninfo.error()).find("initdb failed"),
              std::string::npos)
      << describe(conninfo.error());
  }
  ASSERT_TRUE(fs::exists(fs::path{data_dir_} / "PG_VERSION"));
  EXPECT_FALSE(storage::embedded_postgres::has_cluster(data_dir_));

  storage::embedded_postgres pg;
  auto conninfo = pg.start(data_dir_);
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  EXPECT_TRUE(storage::embedded_postgres::has_cluster(data_dir_));
  auto applied = storage::migrate(*conninfo);
  ASSERT_TRUE(applied) << describe(applied.error());
  EXPECT_GT(*applied, 0);
  ASSERT_OK(pg.stop());
  // And the next start finds it initialised: no initdb over the data.
  {
    storage::embedded_postgres again;
    conninfo = again.start(data_dir_);
    ASSERT_TRUE(conninfo) << describe(conninfo.error());
    EXPECT_EQ(value_or_fail(storage::migrate(*conninfo)), 0);
    ASSERT_OK(again.stop());
  }
  // A marker beside a directory a server has run on is stale (left by a
  // start killed before it removed it, then a build that ignores it): the
  // data stay.
  std::ofstream{data_dir_ + ".initdb-unfinished"};
  storage::embedded_postgres stale;
  conninfo = stale.start(data_dir_);
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  EXPECT_EQ(value_or_fail(storage::migrate(*conninfo)), 0)
    << "the schema was initialised again";
  EXPECT_FALSE(fs::exists(data_dir_ + ".initdb-unfinished"));
  ASSERT_OK(stale.stop());
}

TEST_F(embedded, recovers_after_the_process_was_killed) {
  {
    storage::embedded_postgres pg;
    auto conninfo = pg.start(data_dir_);
    ASSERT_TRUE(conninfo) << describe(conninfo.error());
    ASSERT_TRUE(storage::migrate(*conninfo));
    storage::pg_store store{*conninfo};
    ASSERT_OK(store.commit(batch("sub-k", 2, 1, domain::genesis_hash)));
  }
  // A service killed with its server: a process that starts the server and
  // dies without stopping it leaves a running postmaster behind...
  auto child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto* pg = new storage::embedded_postgres; // never destroyed
    _exit(pg->start(data_dir_) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto pid_file = fs::path{data_dir_} / "postmaster.pid";
  ASSERT_TRUE(fs::exists(pid_file));
  {
    // ...and the next start takes over anyway.
    storage::embedded_postgres pg;
    auto conninfo = pg.start(data_dir_);
    ASSERT_TRUE(conninfo) << describe(conninfo.error());
    storage::pg_store store{*conninfo};
    EXPECT_EQ(value_or_fail(store.load_subscriptions({"sub-k"})).size(), 1u);
    store.disconnect();
    // Now kill the postmaster outright: a stale postmaster.pid remains.
    std::ifstream in{pid_file};
    pid_t postmaster = 0;
    in >> postmaster;
    ASSERT_GT(postmaster, 0);
    ASSERT_EQ(kill(postmaster, SIGKILL), 0);
    for (int i = 0; i < 100 && kill(postmaster, 0) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    static_cast<void>(pg.stop()); // fails: nothing left to stop
  }
  ASSERT_TRUE(fs::exists(pid_file));
  storage::embedded_postgres pg;
  auto conninfo = pg.start(data_dir_);
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  storage::pg_store store{*conninfo};
  auto subs = value_or_fail(store.load_subscriptions({"sub-k"}));
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs["sub-k"].record.ledger_seq, 2);
  store.disconnect();
  ASSERT_OK(pg.stop());
}

// postmaster.pid outlives a server killed with its machine or container,
// and after a restart its pid can belong to another process of the
// server's user: pg_ctl stop signalled that process, then waited a minute,
// and PostgreSQL refused to start beside what it took for a live server.
TEST_F(embedded, a_stale_pid_file_naming_another_process_is_set_aside) {
  initialise_cluster();
  auto as_user = server_user();
  auto other = fork();
  ASSERT_GE(other, 0);
  if (other == 0) {
    if (as_user) {
      gid_t groups[] = {as_user->pw_gid};
      if (setgroups(1, groups) != 0 || setgid(as_user->pw_gid) != 0
          || setuid(as_user->pw_uid) != 0)
        _exit(126);
    }
    // As any process would take it (a shell's background job ignores it).
    signal(SIGINT, SIG_DFL);
    execl("/bin/sleep", "sleep", "120", static_cast<char*>(nullptr));
    _exit(127);
  }
  {
    std::ofstream pid_file{fs::path{data_dir_} / "postmaster.pid"};
    pid_file << other << "\n" << data_dir_ << "\n";
  }
  auto started_at = std::chrono::steady_clock::now();
  storage::embedded_postgres pg;
  auto conninfo = pg.start(data_dir_);
  auto took = std::chrono::steady_clock::now() - started_at;
  int status = 0;
  auto reaped = waitpid(other, &status, WNOHANG);
  EXPECT_EQ(reaped, 0) << "the other process was ended, signal "
                       << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (reaped == 0) {
    kill(other, SIGKILL);
    waitpid(other, &status, 0);
  }
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  EXPECT_LT(took, std::chrono::seconds{30});
  EXPECT_NE(postmaster_pid(), other);
  EXPECT_EQ(value_or_fail(storage::migrate(*conninfo)), 0);
  ASSERT_OK(pg.stop());
}

// pg_ctl stops waiting after its timeout and leaves the server running,
// and crash recovery can take longer than any timeout: the start failed
// and orphaned the server, and the next one stopped it and began the
// recovery again. A server that answers "starting up" is waited for until
// it is ready or the wait is interrupted.
TEST_F(embedded, a_server_still_starting_after_the_timeout_is_waited_for) {
  initialise_cluster();
  // A standby without a primary and without hot standby answers "starting
  // up" until it is promoted: a recovery as long as the test wants.
  std::ofstream{fs::path{data_dir_} / "standby.signal"};
  std::ofstream{fs::path{data_dir_} / "postgresql.auto.conf", std::ios::app}
    << "hot_standby = off\n";
  // And a pg_ctl that gives up on `start` as at its timeout.
  auto fake_bin = fs::path{root_} / "impatient-pg_ctl";
  fs::create_directories(fake_bin);
  {
    std::ofstream script{fake_bin / "pg_ctl"};
    script << "#!/bin/sh\n"
           << storage::embedded_postgres::default_bin_dir()
           << "/pg_ctl \"$@\"\n"
           << "status=$?\n"
              "if [ \"$3\" = start ]; then exit 1; fi\n"
              "exit $status\n";
  }
  fs::permissions(fake_bin / "pg_ctl", fs::perms{0755});
  storage::embedded_postgres_options impatient;
  impatient.bin_dir = fake_bin.string();
  impatient.start_timeout = std::chrono::seconds{1};
  using clock = std::chrono::steady_clock;
  {
    // Asked to stop meanwhile: the start fails and stops the server.
    auto give_up_at = clock::now() + std::chrono::seconds{3};
    auto interrupted = impatient;
    interrupted.interrupted = [&] { return clock::now() > give_up_at; };
    storage::embedded_postgres pg{interrupted};
    auto conninfo = pg.start(data_dir_);
    ASSERT_FALSE(conninfo);
    EXPECT_NE(describe(conninfo.error()).find("interrupted"), std::string::npos)
      << describe(conninfo.error());
    EXPECT_FALSE(pg.running());
    EXPECT_FALSE(fs::exists(fs::path{data_dir_} / "postmaster.pid"))
      << "the server was left running";
  }
  // Promoted after a few seconds: the start waits for it.
  std::atomic<bool> promoted{false};
  std::thread promoter{[&] {
    auto until = clock::now() + std::chrono::seconds{4};
    // A start that failed early leaves no postmaster: give up then.
    auto give_up = clock::now() + std::chrono::seconds{60};
    pid_t postmaster = 0;
    while ((clock::now() < until || (postmaster = postmaster_pid()) <= 0)
           && clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (postmaster <= 0)
      return;
    std::ofstream{fs::path{data_dir_} / "promote"};
    promoted = kill(postmaster, SIGUSR1) == 0;
  }};
  auto started_at = clock::now();
  storage::embedded_postgres pg{impatient};
  auto conninfo = pg.start(data_dir_);
  auto took = clock::now() - started_at;
  promoter.join();
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  ASSERT_TRUE(promoted);
  EXPECT_GE(took, std::chrono::seconds{3});
  EXPECT_EQ(value_or_fail(storage::migrate(*conninfo)), 0);
  ASSERT_OK(pg.stop());
}

TEST_F(embedded, a_second_process_on_the_same_data_directory_is_refused) {
  storage::embedded_postgres first;
  auto conninfo = first.start(data_dir_);
  ASSERT_TRUE(conninfo) << describe(conninfo.error());
  storage::embedded_postgres second;
  auto again = second.start(data_dir_);
  ASSERT_FALSE(again);
  EXPECT_NE(describe(again.error()).find("another process"), std::string::npos)
    << describe(again.error());
  // The first one is unharmed.
  ASSERT_TRUE(storage::migrate(*conninfo));
  storage::pg_store store{*conninfo};
  ASSERT_OK(store.ping());
  store.disconnect();
  ASSERT_OK(first.stop());
}

} // namespace
