#include "storage/embedded_postgres.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <libpq-fe.h>
#include <optional>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>

#include "log/log.hpp"
#include "messages/service_error.hpp"

namespace fs = std::filesystem;

namespace seatledger::storage {

namespace {

constexpr const char* socket_port = "5432";

caf::error fail(std::string message) {
  return make_error(service_errc::storage_unavailable,
                    "embedded PostgreSQL: " + std::move(message));
}

struct os_user {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct run_result {
  int status = -1; // exit status, -1 when it did not exit normally
  std::string output;
};

/// Runs a program (no shell) with a minimal environment, as `user` when
/// given, and collects its stdout and stderr. `while_running`, when given,
/// is called about every 100 ms until the program ends.
run_result run(const std::vector<std::string>& argv,
               const std::optional<os_user>& user,
               const std::function<void()>& while_running = {}) {
  run_result result;
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // PG* variables of the caller (e.g. from pg_virtualenv) must not steer
  // initdb or pg_ctl.
  static char env_path[] = "PATH=/usr/bin:/bin";
  static char env_lang[] = "LC_ALL=C";
  char* envp[] = {env_path, env_lang, nullptr};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = std::string{"pipe: "} + std::strerror(errno);
    return result;
  }
  auto pid = fork();
  if (pid < 0) {
    result.output = std::string{"fork: "} + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here on (the parent may have
    // threads).
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    // No descriptor of ours (sockets, the data directory lock) may live on
    // in the server pg_ctl starts.
    close_range(3, ~0U, 0);
    if (chdir("/") != 0)
      _exit(126);
    if (user) {
      gid_t groups[] = {user->gid};
      if (setgroups(1, groups) != 0 || setgid(user->gid) != 0
          || setuid(user->uid) != 0)
        _exit(126);
    }
    execve(args[0], args.data(), envp);
    _exit(127);
  }
  close(fds[1]);
  char chunk[4096];
  for (;;) {
    if (while_running) {
      pollfd readable{fds[0], POLLIN, 0};
      auto ready = poll(&readable, 1, 100);
      if (ready == 0 || (ready < 0 && errno == EINTR)) {
        while_running();
        continue;
      }
    }
    auto n = read(fds[0], chunk, sizeof(chunk));
    if (n > 0)
      result.output.append(chunk, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    result.status = WEXITSTATUS(status);
  return result;
}

std::string describe_run(const std::vector<std::string>& argv,
                         const run_result& r) {
  std::string out = fs::path{argv[0]}.filename().string();
  out += r.status >= 0 ? " exited with " + std::to_string(r.status)
                       : std::string{" did not exit normally"};
  auto text = r.output;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  if (!text.empty())
    out += ": " + text;
  return out;
}

std::string tail_of(const std::string& path, std::size_t lines) {
  std::ifstream in{path};
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines)
      last.pop_front();
  }
  std::string out;
  for (const auto& l : last)
    out += "\n  " + l;
  return out;
}

std::optional<std::string> find_bin_dir() {
  std::error_code ec;
  std::optional<std::string> best;
  int best_version = -1;
  for (const auto& entry : fs::directory_iterator{"/usr/lib/postgresql", ec}) {
    auto name = entry.path().filename().string();
    char* end = nullptr;
    auto version = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str())
      continue;
    auto bin = entry.path() / "bin";
    if (!fs::exists(bin / "initdb", ec) || !fs::exists(bin / "pg_ctl", ec))
      continue;
    if (version > best_version) {
      best_version = static_cast<int>(version);
      best = bin.string();
    }
  }
  return best;
}

std::optional<os_user> lookup_user(const std::string& name) {
  auto* pw = getpwnam(name.c_str());
  if (pw == nullptr)
    return std::nullopt;
  return os_user{name, pw->pw_uid, pw->pw_gid};
}

/// Gives `path` and everything below it to `user` (the server refuses a
/// data directory it does not own).
void chown_tree(const fs::path& path, const os_user& user) {
  std::error_code ec;
  if (lchown(path.c_str(), user.uid, user.gid) != 0)
    return;
  if (!fs::is_directory(path, ec))
    return;
  for (const auto& entry :
       fs::recursive_directory_iterator{path, fs::directory_options::none, ec})
    if (lchown(entry.path().c_str(), user.uid, user.gid) != 0)
      return;
}

std::string temp_root() {
  if (const auto* dir = std::getenv("TMPDIR"))
    // Unix socket paths are limited to about 100 bytes.
    if (*dir != '\0' && std::strlen(dir) < 60)
      return dir;
  return "/tmp";
}

/// Beside the data directory while its initdb has not finished.
std::string initdb_marker(const std::string& data_dir) {
  return data_dir + ".initdb-unfinished";
}

/// Makes a file's creation or removal durable. A file system that cannot
/// sync a directory (EINVAL, EBADF) is taken at its word, as PostgreSQL
/// takes it.
bool sync_parent_of(const std::string& path) {
  auto parent = fs::path{path}.parent_path().string();
  int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool synced = fsync(fd) == 0 || errno == EINVAL || errno == EBADF;
  close(fd);
  return synced;
}

} // namespace

struct embedded_postgres::impl {
  embedded_postgres_options options;
  std::string bin_dir;
  std::optional<os_user> user; // set when running as root
  std::string data_dir;
  std::string socket_dir;
  std::string conninfo;
  int lock_fd = -1;
  bool running = false;

  std::string bin(const char* name) const {
    return (fs::path{bin_dir} / name).string();
  }

  run_result pg_ctl(std::vector<std::string> args,
                    const std::function<void()>& while_running = {}) const {
    args.insert(args.begin(), {bin("pg_ctl"), "-D", data_dir});
    return run(args, user, while_running);
  }

  bool interrupted() const {
    return options.interrupted && options.interrupted();
  }

  caf::expected<void> acquire_lock() {
    auto lock_path = data_dir + ".lock";
    std::error_code ec;
    fs::create_directories(fs::path{data_dir}.parent_path(), ec);
    if (ec)
      return fail("cannot create the parent of " + data_dir + ": "
                  + ec.message());
    lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0)
      return fail("cannot open " + lock_path + ": " + std::strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      close(lock_fd);
      lock_fd = -1;
      return fail("another process uses the data directory " + data_dir + " ("
                  + lock_path + " is locked)");
    }
    return {};
  }

  void release_lock() {
    if (lock_fd >= 0) {
      close(lock_fd);
      lock_fd = -1;
    }
  }

  caf::expected<void> prepare_data_dir() {
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (ec)
      return fail("cannot create " + data_dir + ": " + ec.message());
    if (user) {
      struct stat st {};
      if (stat(data_dir.c_str(), &st) == 0 && st.st_uid != user->uid)
        chown_tree(data_dir, *user);
      // PostgreSQL needs to reach its data directory through every parent.
      auto check = run({"/usr/bin/test", "-x", data_dir, "-a", "-w", data_dir},
                       user);
      if (check.status != 0)
        return fail("the server runs as OS user '" + user->name
                    + "' (this process is root) and cannot reach " + data_dir
                    + ": give its parent directories search permission "
                      "(chmod o+x), choose a --data-dir it can reach, or "
                      "set a database URL");
    }
    chmod(data_dir.c_str(), 0700);
    return {};
  }

  /// initdb writes PG_VERSION first and the rest over seconds: a first
  /// start killed meanwhile (OOM, a pod deleted, power) left a directory
  /// that looked initialised, and every later start failed in pg_ctl
  /// until someone deleted it by hand. The marker beside the data
  /// directory exists from before initdb until it succeeded.
  caf::expected<void> initdb_if_needed() {
    auto marker = initdb_marker(data_dir);
    std::error_code ec;
    bool interrupted = fs::exists(marker, ec);
    // A server has run on it (every start writes postmaster.opts, initdb
    // never does): a marker left there, by a start killed between initdb
    // and its removal and followed by a build that does not know it, is
    // stale, and emptying the directory would lose the data.
    if (interrupted && fs::exists(fs::path{data_dir} / "postmaster.opts", ec)) {
      log::warning("a stale initdb marker beside a data directory a server "
                   "has run on; keeping the data",
                   {{"data_dir", data_dir}, {"marker", marker}});
      fs::remove(marker, ec);
      if (ec)
        return fail("cannot remove " + marker + ": " + ec.message());
      interrupted = false;
    }
    if (!interrupted && embedded_postgres::has_cluster(data_dir))
      return {};
    if (interrupted) {
      log::warning("the embedded PostgreSQL's first initdb did not finish; "
                   "initialising its data directory again",
                   {{"data_dir", data_dir}});
      // initdb takes only an empty directory; the directory itself stays
      // (owner and mode as prepared).
      for (const auto& entry : fs::directory_iterator{data_dir, ec}) {
        fs::remove_all(entry.path(), ec);
        if (ec)
          break;
      }
      if (ec)
        return fail("cannot empty " + data_dir + ": " + ec.message());
    }
    if (!std::ofstream{marker} || !sync_parent_of(marker))
      return fail("cannot write " + marker);
    std::vector<std::string> args{bin("initdb"),     "-D",
                                  data_dir,          "-U",
                                  options.user,      "--auth=trust",
                                  "--encoding=UTF8", "--no-locale"};
    auto r = run(args, user);
    if (r.status != 0)
      return fail("initdb failed: " + describe_run(args, r));
    // initdb synced what it wrote before it exited.
    fs::remove(marker, ec);
    if (ec || !sync_parent_of(marker))
      return fail("cannot remove " + marker);
    return {};
  }

  /// A server left running by a killed process would hold the data
  /// directory (and listen on a socket nobody knows): stop it first. The
  /// lock file guarantees no live process of ours owns it.
  void stop_leftover() {
    remove_stale_pid_file();
    auto status = pg_ctl({"status"});
    if (status.status != 0)
      return;
    // Line 5 of postmaster.pid: the socket directory it listens in.
    std::string leftover_socket_dir;
    {
      std::ifstream in{fs::path{data_dir} / "postmaster.pid"};
      for (int i = 0; i < 5 && std::getline(in, leftover_socket_dir); ++i) {
      }
    }
    pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"});
    auto ours = temp_root() + "/seatledger-pg-";
    if (leftover_socket_dir.compare(0, ours.size(), ours) == 0) {
      std::error_code ec;
      fs::remove_all(leftover_socket_dir, ec);
    }
  }

  /// postmaster.pid outlives a server killed with its machine or
  /// container, and after a restart its pid can belong to another process:
  /// `pg_ctl stop` would signal that process, and PostgreSQL takes the
  /// file for a live server's and refuses to start. A postmaster works in
  /// its data directory; a process working elsewhere is not this one's.
  /// When that cannot be read (the process is gone: PostgreSQL sees that
  /// itself; or not ours to inspect), the file is left alone.
  void remove_stale_pid_file() {
    auto pid_file = fs::path{data_dir} / "postmaster.pid";
    long pid = 0;
    {
      std::ifstream in{pid_file};
      if (!(in >> pid) || pid <= 0)
        return;
    }
    // The same directory, not the same path: a server in another mount
    // namespace (a container sharing the volume) sees it under another one.
    auto cwd_link = "/proc/" + std::to_string(pid) + "/cwd";
    struct stat process_dir_stat {};
    struct stat data_dir_stat {};
    if (stat(cwd_link.c_str(), &process_dir_stat) != 0
        || stat(data_dir.c_str(), &data_dir_stat) != 0
        || (process_dir_stat.st_dev == data_dir_stat.st_dev
            && process_dir_stat.st_ino == data_dir_stat.st_ino))
      return;
    std::vector<char> target(4096);
    auto n = readlink(cwd_link.c_str(), target.data(), target.size() - 1);
    std::string process_dir{target.data(),
                            static_cast<std::size_t>(std::max<ssize_t>(n, 0))};
    std::error_code ec;
    log::warning(
      "postmaster.pid names a process that is not this data "
      "directory's server (its pid was reused); removing the "
      "stale file",
      {{"data_dir", data_dir}, {"pid", pid}, {"process_dir", process_dir}});
    fs::remove(pid_file, ec);
  }

  caf::expected<void> make_socket_dir() {
    auto pattern = temp_root() + "/seatledger-pg-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr)
      return fail("cannot create a socket directory: "
                  + std::string{std::strerror(errno)});
    socket_dir = buf.data();
    if (user && chown(socket_dir.c_str(), user->uid, user->gid) != 0)
      return fail("cannot hand " + socket_dir + " to " + user->name + ": "
                  + std::strerror(errno));
    return {};
  }

  void remove_socket_dir() {
    if (socket_dir.empty())
      return;
    std::error_code ec;
    fs::remove_all(socket_dir, ec);
    socket_dir.clear();
  }

  std::string log_path() const {
    return (fs::path{data_dir} / "server.log").string();
  }

  caf::expected<void> start_server() {
    auto timeout = std::to_string(options.start_timeout.count());
    // Unix socket only, in a directory only the server's user can enter.
    auto server_options = "-c listen_addresses= -c unix_socket_directories="
                          + socket_dir + " -c unix_socket_permissions=0700 -p "
                          + socket_port;
    // pg_ctl waits up to the timeout for a server in crash recovery, with
    // this process's SIGINT and SIGTERM blocked: asked to stop meanwhile,
    // stop the server it launched, which ends its wait within 100 ms.
    bool stop_sent = false;
    auto stop_when_interrupted = [this, &stop_sent] {
      // Until the server has written postmaster.pid (milliseconds after
      // the launch) pg_ctl stop finds nothing to stop: tried again.
      if (!stop_sent && interrupted())
        stop_sent = pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"}).status
                    == 0;
    };
    auto r = pg_ctl({"start", "-w", "-t", timeout, "-l", log_path(), "-o",
                     server_options},
                    stop_when_interrupted);
    if (interrupted()) {
      if (!stop_sent && pg_ctl({"status"}).status == 0)
        pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"});
      return fail("start interrupted while the server was starting");
    }
    if (r.status == 0)
      return {};
    // pg_ctl stops waiting after -t seconds and leaves the server running:
    // crash recovery can take longer. Failing here orphaned that server,
    // and a supervisor's next start stopped it and began recovery again.
    if (pg_ctl({"status"}).status == 0) {
      log::warning(
        "the embedded PostgreSQL did not finish starting within "
        "the timeout; still waiting for it (crash recovery?)",
        {{"timeout_s", static_cast<long long>(options.start_timeout.count())},
         {"server_log", log_path()}});
      return {};
    }
    return fail("pg_ctl start failed: " + describe_run({"pg_ctl"}, r)
                + "\nserver log (" + log_path()
                + "):" + tail_of(log_path(), 20));
  }

  std::string conninfo_for(const std::string& database) const {
    return "host=" + socket_dir + " port=" + socket_port + " dbname=" + database
           + " user=" + options.user;
  }

  /// A server that answers "starting up" (PQPING_REJECT) is replaying its
  /// WAL after a crash: that takes as long as it takes, and giving up would
  /// only make the next start replay it from the beginning. The timeout
  /// is for a server that does not answer at all.
  caf::expected<void> wait_ready() {
    using clock = std::chrono::steady_clock;
    constexpr auto report_every = std::chrono::seconds{30};
    auto admin = conninfo_for("postgres");
    auto deadline = clock::now() + options.start_timeout;
    auto next_report = clock::now() + report_every;
    for (;;) {
      auto answer = PQping(admin.c_str());
      if (answer == PQPING_OK)
        return {};
      auto now = clock::now();
      if (answer != PQPING_REJECT && now > deadline)
        return fail("the server did not accept connections within "
                    + std::to_string(options.start_timeout.count())
                    + " s\nserver log (" + log_path()
                    + "):" + tail_of(log_path(), 20));
      if (interrupted())
        return fail("start interrupted while the server was starting");
      if (answer == PQPING_REJECT && now >= next_report) {
        next_report = now + report_every;
        auto last_line = tail_of(log_path(), 1);
        last_line.erase(0, last_line.find_first_not_of("\n "));
        log::info("the embedded PostgreSQL is still starting",
                  {{"server_log", log_path()}, {"last_line", last_line}});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  caf::expected<void> create_database() {
    constexpr const char* sql_database_exists
      = "SELECT 1 FROM pg_database WHERE datname = $1";
    try {
      pqxx::connection conn{conninfo_for("postgres")};
      pqxx::nontransaction tx{conn};
      if (tx.exec_params(sql_database_exists, options.database).empty())
        // CREATE DATABASE takes no parameters; the name comes from our own
        // options and is quoted as an identifier.
        tx.exec("CREATE DATABASE " + tx.quote_name(options.database));
      return {};
    } catch (const std::exception& e) {
      return fail("cannot create database " + options.database + ": "
                  + e.what());
    }
  }
};

embedded_postgres::embedded_postgres(embedded_postgres_options options)
    : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
}

embedded_postgres::~embedded_postgres() {
  if (impl_->running)
    static_cast<void>(stop());
  impl_->release_lock();
}

caf::expected<std::string>
embedded_postgres::start(const std::string& data_dir) {
  auto& d = *impl_;
  if (d.running)
    return d.conninfo;
  d.bin_dir = d.options.bin_dir.empty() ? default_bin_dir() : d.options.bin_dir;
  if (d.bin_dir.empty())
    return fail("no PostgreSQL server binaries under /usr/lib/postgresql "
                "(install postgresql or set a database URL)");
  d.user.reset();
  if (geteuid() == 0) {
    auto name = d.options.os_user.empty() ? default_os_user()
                                          : d.options.os_user;
    d.user = lookup_user(name);
    if (!d.user)
      return fail("OS user '" + name + "' to run the server as is unknown");
  }
  std::error_code ec;
  d.data_dir = fs::absolute(data_dir, ec).lexically_normal().string();
  while (d.data_dir.size() > 1 && d.data_dir.back() == '/')
    d.data_dir.pop_back();
  if (auto ok = d.acquire_lock(); !ok)
    return ok.error();
  auto abort_with = [&d](caf::error err) {
    d.remove_socket_dir();
    d.release_lock();
    return err;
  };
  if (auto ok = d.prepare_data_dir(); !ok)
    return abort_with(ok.error());
  if (auto ok = d.initdb_if_needed(); !ok)
    return abort_with(ok.error());
  d.stop_leftover();
  if (auto ok = d.make_socket_dir(); !ok)
    return abort_with(ok.error());
  if (auto ok = d.start_server(); !ok)
    return abort_with(ok.error());
  d.running = true;
  if (auto ok = d.wait_ready(); !ok) {
    static_cast<void>(stop());
    return ok.error();
  }
  if (auto ok = d.create_database(); !ok) {
    static_cast<void>(stop());
    return ok.error();
  }
  d.conninfo = d.conninfo_for(d.options.database);
  return d.conninfo;
}

caf::expected<void> embedded_postgres::stop() {
  auto& d = *impl_;
  if (!d.running)
    return {};
  auto r = d.pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"});
  d.running = false;
  d.conninfo.clear();
  d.remove_socket_dir();
  d.release_lock();
  if (r.status != 0)
    return fail("pg_ctl stop failed: " + describe_run({"pg_ctl"}, r));
  return {};
}

std::function<void()> embedded_postgres::stop_requester() const {
  const auto& d = *impl_;
  if (!d.running)
    return [] {};
  return [pg_ctl = d.bin("pg_ctl"), data_dir = d.data_dir, user = d.user] {
    run({pg_ctl, "-D", data_dir, "stop", "-m", "fast", "-W"}, user);
  };
}

std::string
embedded_postgres::cluster_under(const std::string& service_data_dir) {
  return (fs::path{service_data_dir} / "postgres").string();
}

std::string embedded_postgres::default_bin_dir() {
  return find_bin_dir().value_or(std::string{});
}

std::string embedded_postgres::default_os_user() {
  return lookup_user("postgres") ? "postgres" : "nobody";
}

bool embedded_postgres::has_cluster(const std::string& data_dir) {
  std::error_code ec;
  return fs::exists(fs::path{data_dir} / "PG_VERSION", ec)
         && !fs::exists(initdb_marker(data_dir), ec);
}

bool embedded_postgres::running() const {
  return impl_->running;
}

const std::string& embedded_postgres::connection_string() const {
  return impl_->conninfo;
}

std::string embedded_postgres::log_file() const {
  return impl_->log_path();
}

} // namespace seatledger::storage
