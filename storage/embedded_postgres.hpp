#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

namespace seatledger::storage {

struct embedded_postgres_options {
  /// Database created on first start (the service's).
  std::string database = "seatledger";
  /// The superuser initdb creates.
  std::string user = "seatledger";
  /// Where initdb, pg_ctl and postgres live; empty: the highest version
  /// under /usr/lib/postgresql/*/bin.
  std::string bin_dir;
  /// The OS user the server runs as when this process runs as root
  /// (PostgreSQL refuses to run as root); empty: `postgres` if it exists,
  /// else `nobody`.
  std::string os_user;
  /// How long `pg_ctl start` waits, and then how long a server that does
  /// not answer at all is waited for. A server that answers "starting up"
  /// (crash recovery) is waited for as long as that takes.
  std::chrono::seconds start_timeout{60};
  /// Asked about every 100 ms while `pg_ctl start` waits and then while
  /// a server still starting is waited for (not during initdb, about a
  /// second); true ends the wait: `start` fails and stops the server.
  std::function<bool()> interrupted;
};

/// A private PostgreSQL server for the embedded mode: initdb on first start,
/// listening only on a Unix socket in a private directory, stopped cleanly
/// by `stop()` or the destructor. A server left running by a process that
/// was killed is stopped and started again; a second live process on the
/// same data directory is refused (lock file next to it).
class embedded_postgres {
public:
  explicit embedded_postgres(embedded_postgres_options options = {});
  ~embedded_postgres();

  embedded_postgres(const embedded_postgres&) = delete;
  embedded_postgres& operator=(const embedded_postgres&) = delete;

  /// Starts the server on `data_dir` (created and initialised when needed),
  /// waits until it accepts connections and creates the database. Returns
  /// the connection string, e.g.
  /// `host=/tmp/seatledger-pg-Ab12Cd port=5432 dbname=seatledger
  /// user=seatledger`.
  caf::expected<std::string> start(const std::string& data_dir);

  /// `pg_ctl stop -m fast`, waiting until the server is down.
  caf::expected<void> stop();

  /// Asks the server to stop without waiting (`pg_ctl stop -m fast -W`);
  /// callable from any thread, also once this object is gone: for a
  /// process that may end before `stop()` has run. Does nothing unless
  /// running when asked for.
  std::function<void()> stop_requester() const;

  bool running() const;

  /// Where the service keeps its embedded cluster under its `--data-dir`.
  static std::string cluster_under(const std::string& service_data_dir);

  /// Whether `data_dir` holds an initialised cluster (`start` would not run
  /// initdb there).
  static bool has_cluster(const std::string& data_dir);

  /// The server binaries used when `bin_dir` is empty: the highest version
  /// under /usr/lib/postgresql; empty when there is none.
  static std::string default_bin_dir();

  /// The OS user the server runs as under root when `os_user` is empty.
  static std::string default_os_user();

  /// Empty unless running.
  const std::string& connection_string() const;

  /// The server log (inside the data directory).
  std::string log_file() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::storage
