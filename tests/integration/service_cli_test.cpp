// The `seatledger` tools on bad input, run as the real binary: a mistake on
// the command line is a usage error (exit 2, CLI11's message on stderr); a
// path or id that names nothing is refused with one line naming it (exit
// 2) instead of doing nothing successfully; errors go to stderr and only
// results to stdout.

#include <algorithm>
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "service_fixture.hpp"

namespace seatledger::test {
namespace {

using json = nlohmann::json;

/// Nothing listens there: a database (or broker) that cannot be reached.
constexpr const char* unreachable_database
  = "host=127.0.0.1 port=1 dbname=none connect_timeout=5";
constexpr const char* unreachable_bootstrap = "127.0.0.1:1";

class cli_ledger_verify : public pg_test {
protected:
  cli_result verify(std::vector<std::string> extra) {
    std::vector<std::string> args{"ledger", "verify", "--database-url",
                                  conninfo()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }
};

TEST_F(cli_ledger_verify, an_unknown_subscription_is_named_and_fails) {
  auto entries = chain("sub-1", 3, at("2026-02-01T00:00:00Z"), 1'000);
  storage::storage_batch b;
  b.ledger = entries;
  b.subscriptions.push_back({record_for("sub-1", entries), 0, std::nullopt});
  ASSERT_OK(store().commit(b));

  auto r = verify({"--subscription", "sub-1"});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.out.find("3 entries, chain intact"), std::string::npos) << r.out;

  // A typo: exit 2 like every "nothing was verified", never 0 ("intact") or
  // 1 (a broken chain, which monitoring treats as tampering).
  r = verify({"--subscription", "sub-l"});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("unknown subscription 'sub-l'"), std::string::npos)
    << lines[0];
  EXPECT_EQ(r.out, "");
}

TEST_F(cli_ledger_verify, an_empty_subscription_is_a_usage_error) {
  // It verified every subscription.
  auto r = verify({"--subscription", ""});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
  EXPECT_NE(r.err.find("--subscription"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "verified anyway";
}

class cli_serve_start : public pg_test {
protected:
  cli_serve_start() {
    migrate_in_setup_ = false;
  }
};

TEST_F(cli_serve_start, a_migration_failing_on_a_reachable_database_ends_it) {
  // Only an unreachable database is waited for at start. One that answers
  // but cannot be migrated (here a table in the way, as a hand-made or
  // foreign schema would leave) will not mend itself: exit 1 with one line
  // saying why, not a retry loop that looks like an outage.
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("CREATE SCHEMA seatledger");
    tx.exec("CREATE TABLE seatledger.orgs (in_the_way integer)");
  }
  temp_dir dir{"seatledger_cli_migrate"};
  auto r = run_cli({"serve", "--database-url", conninfo(), "--kafka-bootstrap",
                    unreachable_bootstrap, "--data-dir", dir.file("var"),
                    "--http-listen", "127.0.0.1:0"},
                   {}, std::chrono::seconds{60});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  for (const auto& line : lines_of(r.err))
    EXPECT_EQ(line.find("trying again"), std::string::npos) << line;
  auto errors = logged_errors(r.err, "cannot migrate the database: ");
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("\"orgs\" already exists"), std::string::npos)
    << errors[0];
}

TEST_F(cli_serve_start, ledger_verify_of_a_database_never_migrated_says_so) {
  // It printed PostgreSQL's text: a missing role, or a missing relation with
  // its "LINE 3:" on a line of its own.
  auto r = run_cli({"ledger", "verify", "--database-url", conninfo()});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("no seatledger schema: run `seatledger migrate`"),
            std::string::npos)
    << lines[0];
  EXPECT_EQ(r.out, "");
}

TEST_F(cli_serve_start, ledger_verify_names_what_keeps_it_from_reading) {
  auto migrated = storage::migrate(conninfo());
  ASSERT_TRUE(migrated) << describe(migrated.error());
  // A role that is no member of the runtime role: the check looked names up
  // as that role and printed "permission denied for schema seatledger".
  const auto role = unique_name("seatledger_reader");
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("CREATE ROLE " + tx.quote_name(role)
            + " LOGIN PASSWORD 'reader-password-1'");
  }
  auto r
    = run_cli({"ledger", "verify", "--database-url",
               conninfo() + " user=" + role + " password=reader-password-1"});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("is no member of seatledger_app"), std::string::npos)
    << lines[0];
  // A database an older binary migrated.
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("DROP ROLE " + tx.quote_name(role));
    tx.exec("DELETE FROM seatledger.schema_migrations WHERE version = "
            "(SELECT max(version) FROM seatledger.schema_migrations)");
  }
  r = run_cli({"ledger", "verify", "--database-url", conninfo()});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("lacks migration "
                          + std::to_string(storage::known_migrations().back())),
            std::string::npos)
    << lines[0];
}

TEST_F(cli_serve_start, a_database_refusing_the_client_ends_it) {
  // A wrong password was taken for an outage: "PostgreSQL not reachable at
  // start; trying again" for ever, the replica never ready. Credentials
  // only the replica's configuration can mend end start-up with one line
  // naming the setting. (A database not created yet is still waited for:
  // service_e2e.postgres_unreachable_at_start_is_waited_for.)
  struct refused {
    std::string database_url;
    std::map<std::string, std::string> env;
    std::string expected;
  };
  std::vector<refused> cases{
    {conninfo() + " password=wrong-password", {}, "28P01"},
    {conninfo(),
     {{"PGPASSWORD", ""}, {"PGPASSFILE", "/nonexistent"}},
     "no password supplied"}};
  temp_dir dir{"seatledger_cli_refused"};
  for (const auto& c : cases) {
    auto started = std::chrono::steady_clock::now();
    auto r = run_cli({"serve", "--database-url", c.database_url,
                      "--kafka-bootstrap", unreachable_bootstrap, "--data-dir",
                      dir.file("var"), "--http-listen", "127.0.0.1:0"},
                     c.env, std::chrono::seconds{60});
    EXPECT_EQ(r.status, std::optional<int>{2}) << c.expected << "\n" << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - started,
              std::chrono::seconds{30})
      << c.expected;
    auto errors = logged_errors(r.err,
                                "invalid configuration: --database-url: ");
    ASSERT_EQ(errors.size(), 1u) << r.err;
    EXPECT_NE(errors[0].find(c.expected), std::string::npos) << errors[0];
    EXPECT_EQ(r.err.find("wrong-password"), std::string::npos) << r.err;
    // migrate says so too, with exit 2: a migration Job took a wrong secret
    // for a migration that failed (exit 1).
    r = run_cli({"migrate", "--database-url", c.database_url}, c.env,
                std::chrono::seconds{60});
    EXPECT_EQ(r.status, std::optional<int>{2}) << c.expected << "\n" << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("invalid configuration: --database-url: "
                             "PostgreSQL refuses the connection: ",
                             0),
              0u)
      << lines[0];
    EXPECT_NE(lines[0].find(c.expected), std::string::npos) << lines[0];
    EXPECT_EQ(r.err.find("wrong-password"), std::string::npos) << r.err;
  }
}

TEST_F(cli_serve_start, a_signing_key_of_its_own_is_announced) {
  // Replicas without --signing-key each made a key pair silently, and a
  // license one signed failed verification on another.
  temp_dir dir{"seatledger_cli_own_key"};
  auto start = [&](const std::string& data_dir) {
    return std::make_unique<child_process>(
      std::vector<std::string>{seatledger_binary(), "serve", "--database-url",
                               conninfo(), "--kafka-bootstrap",
                               unreachable_bootstrap, "--data-dir", data_dir,
                               "--http-listen", "127.0.0.1:0"},
      std::map<std::string, std::string>{});
  };
  auto stop = [](child_process& serve) {
    serve.signal(SIGTERM);
    EXPECT_EQ(serve.wait(std::chrono::seconds{60}), std::optional<int>{0})
      << serve.stderr_tail();
  };
  const std::string created = "\"created a signing key pair";
  const std::string shared = "replicas sharing the database verify";
  auto first = start(dir.file("var"));
  ASSERT_TRUE(first->wait_for_value("HTTP", std::chrono::seconds{60}))
    << first->stderr_tail();
  EXPECT_EQ(first->wait_for_value("PUBLIC_KEY_FILE", std::chrono::seconds{1}),
            dir.file("var/keys/public-key.pem"));
  stop(*first);
  auto log = first->stderr_tail(1 << 20);
  EXPECT_NE(log.find(created), std::string::npos) << log;
  EXPECT_NE(log.find(dir.file("var/keys/signing-key.pem")), std::string::npos)
    << log;
  EXPECT_NE(log.find(shared), std::string::npos) << log;
  // The next start reuses the pair: not created again, still warned about.
  // Given the data directory relative to its working folder, it names the
  // key file absolutely: a script reading the line may not share that
  // folder (it printed the relative path).
  auto second = start(
    std::filesystem::relative(dir.file("var"), std::filesystem::current_path())
      .string());
  ASSERT_TRUE(second->wait_for_value("HTTP", std::chrono::seconds{60}))
    << second->stderr_tail();
  EXPECT_EQ(second->wait_for_value("PUBLIC_KEY_FILE", std::chrono::seconds{1}),
            dir.file("var/keys/public-key.pem"));
  stop(*second);
  log = second->stderr_tail(1 << 20);
  EXPECT_EQ(log.find(created), std::string::npos) << log;
  EXPECT_NE(log.find(shared), std::string::npos) << log;
}

namespace {

/// Sockets on local TCP `port` in TIME_WAIT (/proc/net/tcp, IPv4).
int time_wait_sockets_on(int port) {
  std::ifstream table{"/proc/net/tcp"};
  std::string line;
  std::getline(table, line); // the header
  int found = 0;
  char wanted[8];
  std::snprintf(wanted, sizeof(wanted), ":%04X", port);
  while (std::getline(table, line)) {
    std::istringstream fields{line};
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local.size() >= 5 && local.compare(local.size() - 5, 5, wanted) == 0
        && state == "06")
      ++found;
  }
  return found;
}

/// GET /healthz on a connection of its own, closed only once the server has
/// closed it: the server closes first, so the connection's TIME_WAIT is on
/// the server's port. True when the answer was a 200.
bool healthz_closed_by_the_server(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: test\r\n"
                                "Connection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0)
        == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0)
        answer.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer.rfind("HTTP/1.1 200", 0) == 0;
}

} // namespace

TEST_F(cli_serve_start, a_killed_replica_restarts_on_its_port_at_once) {
  // The connections a killed replica had served stay in TIME_WAIT for 60 s.
  // httplib's listener set SO_REUSEPORT only, so they did not carry
  // SO_REUSEADDR, and the start-up check of --http-listen failed ("Address
  // already in use", exit 2) until they expired: a pod restarted after a
  // crash was not ready within 60 s (a soak run: 67.6-68.1 s, 4 of 4).
  temp_dir dir{"seatledger_cli_restart_port"};
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  auto serve_on = [&](const std::string& listen) {
    return std::make_unique<child_process>(
      std::vector<std::string>{seatledger_binary(), "serve", "--database-url",
                               conninfo(), "--kafka-bootstrap",
                               unreachable_bootstrap, "--signing-key",
                               keys->signing_key_file, "--data-dir",
                               dir.file("var"), "--http-listen", listen},
      std::map<std::string, std::string>{});
  };
  auto first = serve_on("127.0.0.1:0");
  auto url = first->wait_for_value("HTTP", std::chrono::seconds{60});
  ASSERT_TRUE(url) << first->stderr_tail();
  auto port = std::stoi(url->substr(url->rfind(':') + 1));
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(healthz_closed_by_the_server(port)) << first->stderr_tail();
  first->signal(SIGKILL);
  ASSERT_TRUE(first->wait(std::chrono::seconds{10}));
  // The case under test: the port has connections in TIME_WAIT.
  ASSERT_GT(time_wait_sockets_on(port), 0);
  auto restarted_at = std::chrono::steady_clock::now();
  auto second = serve_on("127.0.0.1:" + std::to_string(port));
  auto again = second->wait_for_value("HTTP", std::chrono::seconds{30});
  ASSERT_TRUE(again) << second->stderr_tail();
  EXPECT_EQ(*again, *url);
  EXPECT_LT(std::chrono::steady_clock::now() - restarted_at,
            std::chrono::seconds{20});
  EXPECT_GT(time_wait_sockets_on(port), 0); // still there: 60 s had not passed
  httplib::Client client{"127.0.0.1", port};
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << second->stderr_tail();
  EXPECT_EQ(res->status, 200);
  // A second process on the port is still refused.
  auto third
    = run_cli({"serve", "--database-url", conninfo(), "--kafka-bootstrap",
               unreachable_bootstrap, "--data-dir", dir.file("var3"),
               "--http-listen", "127.0.0.1:" + std::to_string(port)},
              {}, std::chrono::seconds{60});
  EXPECT_EQ(third.status, std::optional<int>{2}) << third.err;
  EXPECT_NE(third.err.find("Address already in use"), std::string::npos)
    << third.err;
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(std::chrono::seconds{60}), std::optional<int>{0})
    << second->stderr_tail();
}

TEST_F(cli_serve_start, a_stdout_nobody_reads_does_not_end_it) {
  // `seatledger serve | head -1`, or a script that stops reading at the
  // line it wanted: the next line serve wrote killed it with SIGPIPE (exit
  // 141, no log line, no drain, its embedded PostgreSQL left running).
  temp_dir dir{"seatledger_cli_closed_stdout"};
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  child_process serve{{seatledger_binary(), "serve", "--database-url",
                       conninfo(), "--kafka-bootstrap", unreachable_bootstrap,
                       "--signing-key", keys->signing_key_file, "--data-dir",
                       dir.file("var"), "--http-listen",
                       "127.0.0.1:" + std::to_string(port)},
                      {},
                      child_process::output::closed_pipe};
  httplib::Client client{"127.0.0.1", port};
  ASSERT_TRUE(wait_until(
    [&] {
      auto res = client.Get("/healthz");
      return res && res->status == 200;
    },
    std::chrono::seconds{60}))
    << serve.stderr_tail();
  // Its HTTP= line has been written by now; a second later it still runs.
  std::this_thread::sleep_for(std::chrono::seconds{1});
  ASSERT_TRUE(serve.running()) << serve.stderr_tail();
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds{60}), std::optional<int>{0})
    << serve.stderr_tail();
}

TEST_F(cli_serve_start, an_ipv6_listen_address_is_written_in_brackets) {
  // `[::1]:PORT` kept its brackets, which getaddrinfo refuses, so an
  // IPv6-only cluster had no way to write its listen address but `:::PORT`.
  {
    int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 loopback{};
    loopback.sin6_family = AF_INET6;
    loopback.sin6_addr = in6addr_loopback;
    bool usable = probe >= 0
                  && ::bind(probe, reinterpret_cast<sockaddr*>(&loopback),
                            sizeof(loopback))
                       == 0;
    if (probe >= 0)
      ::close(probe);
    if (!usable)
      GTEST_SKIP() << "no IPv6 loopback here";
  }
  temp_dir dir{"seatledger_cli_ipv6"};
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  // A free port first: the start-up check of a fixed port is under test.
  int port = 0;
  {
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_loopback;
    socklen_t len = sizeof(any);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&any), &len), 0);
    port = ntohs(any.sin6_port);
    ::close(fd);
  }
  child_process serve{{seatledger_binary(), "serve", "--database-url",
                       conninfo(), "--kafka-bootstrap", unreachable_bootstrap,
                       "--signing-key", keys->signing_key_file, "--data-dir",
                       dir.file("var"), "--http-listen",
                       "[::1]:" + std::to_string(port)},
                      {}};
  auto url = serve.wait_for_value("HTTP", std::chrono::seconds{60});
  ASSERT_TRUE(url) << serve.stderr_tail();
  EXPECT_EQ(*url, "http://[::1]:" + std::to_string(port));
  httplib::Client client{"::1", port};
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << serve.stderr_tail();
  EXPECT_EQ(res->status, 200);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds{60}), std::optional<int>{0})
    << serve.stderr_tail();
}

TEST_F(cli_serve_start, kafka_down_at_start_is_named_not_postgresql) {
  // Until the topics' metadata was read, housekeeping did not run, so
  // PostgreSQL was never checked: /readyz and seatledger_dependency_up
  // blamed it while only Kafka was down, and the first check logged it
  // "reachable again".
  temp_dir dir{"seatledger_cli_kafka_down"};
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  child_process serve{{seatledger_binary(), "serve", "--database-url",
                       conninfo(), "--kafka-bootstrap", unreachable_bootstrap,
                       "--signing-key", keys->signing_key_file, "--data-dir",
                       dir.file("var"), "--http-listen", "127.0.0.1:0"},
                      {}};
  auto url = serve.wait_for_value("HTTP", std::chrono::seconds{60});
  ASSERT_TRUE(url) << serve.stderr_tail();
  httplib::Client client{"127.0.0.1",
                         std::stoi(url->substr(url->rfind(':') + 1))};
  std::string reason;
  std::string metrics;
  // Every answer from the first one on: the pipeline's first check of
  // PostgreSQL used to wait behind 10 s of Kafka metadata, and /readyz
  // blamed PostgreSQL meanwhile.
  std::set<std::string> reasons;
  EXPECT_TRUE(wait_until(
    [&] {
      auto ready = client.Get("/readyz");
      auto scraped = client.Get("/metrics");
      if (!ready || !scraped)
        return false;
      auto body = json::parse(ready->body, nullptr, false);
      reason = body.is_discarded() ? ready->body
                                   : body["error"]["message"].dump();
      reasons.insert(reason);
      metrics = scraped->body;
      return ready->status == 503 && reason == "\"Kafka is not reachable\"";
    },
    std::chrono::seconds{30}))
    << reason << "\n"
    << serve.stderr_tail();
  EXPECT_EQ(reasons.count("\"PostgreSQL is not reachable\""), 0u)
    << serve.stderr_tail();
  EXPECT_NE(
    metrics.find("seatledger_dependency_up{dependency=\"postgresql\"} 1"),
    std::string::npos)
    << metrics;
  EXPECT_NE(metrics.find("seatledger_dependency_up{dependency=\"kafka\"} 0"),
            std::string::npos)
    << metrics;
  EXPECT_EQ(serve.stderr_tail(1 << 20).find("reachable again"),
            std::string::npos)
    << serve.stderr_tail();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds{60}), std::optional<int>{0})
    << serve.stderr_tail();
}

TEST_F(cli_serve_start, migrate_reads_the_configuration_as_serve_does) {
  // migrate read only its flags and SEATLEDGER_DATABASE_URL: a Job given
  // serve's configuration file, or a mistyped variable, migrated a new
  // embedded database under ./var and said "applied", while the real one
  // was never touched.
  temp_dir dir{"seatledger_cli_migrate_config"};
  const auto file = dir.file("seatledger.conf");
  write_file(file, "database-url = " + conninfo() + "\n");
  auto migrated = [&] {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    return tx
      .exec1("SELECT to_regclass('seatledger.seat_ledger') IS NOT NULL")[0]
      .as<bool>();
  };
  ASSERT_FALSE(migrated());
  auto r
    = run_cli({"migrate", "--config", file, "--data-dir", dir.file("var")});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_TRUE(migrated());
  EXPECT_FALSE(std::filesystem::exists(dir.file("var/postgres")));
  // The same through SEATLEDGER_CONFIG (and nothing left to apply).
  r = run_cli({"migrate", "--data-dir", dir.file("var")},
              {{"SEATLEDGER_CONFIG", file}});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.out.find("applied 0 migration"), std::string::npos) << r.out;
  // ledger verify reads it the same way.
  r = run_cli({"ledger", "verify", "--config", file});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  // A SEATLEDGER_* name that is no setting stops it, as it stops serve.
  for (const auto& command : std::vector<std::vector<std::string>>{
         {"migrate", "--data-dir", dir.file("typo")},
         {"ledger", "verify", "--data-dir", dir.file("typo")}}) {
    r = run_cli(command, {{"SEATLEDGER_DATABSE_URL", conninfo()}});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find("SEATLEDGER_DATABSE_URL"), std::string::npos)
      << lines[0];
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("typo")));
}

class cli_migrate : public pg_test {};

TEST_F(cli_migrate, a_paused_migrator_holding_the_lock_is_ended_in_time) {
  // A migrator the operating system paused (SIGSTOP, a frozen VM or
  // container) while it held the migration lock held up every replica that
  // started, for as long as the pause lasted: pg_advisory_lock waits
  // without limit, and a stopped process keeps its connection open. Now
  // the server ends a migrator's session idle for 15 s.
  using std::chrono::seconds;
  // Holds the migrator inside its lock: it waits for this table.
  auto operator_session = superuser();
  pqxx::work table_lock{*operator_session};
  table_lock.exec(
    "LOCK TABLE seatledger.schema_migrations IN ACCESS EXCLUSIVE MODE");
  child_process paused{
    {seatledger_binary(), "migrate", "--database-url", conninfo()}};
  auto probe = superuser();
  auto lock_holder_waits_for_the_table = [&] {
    pqxx::nontransaction tx{*probe};
    return tx.exec1("SELECT count(*) FROM pg_locks AS l "
                    "JOIN pg_stat_activity AS a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND a.wait_event_type = 'Lock'")[0]
             .as<int>()
           == 1;
  };
  ASSERT_TRUE(wait_until(lock_holder_waits_for_the_table, seconds{30}))
    << paused.stderr_tail();
  paused.signal(SIGSTOP);
  // Its server session answers the query and goes idle, lock held.
  table_lock.abort();
  auto started = std::chrono::steady_clock::now();
  child_process next{
    {seatledger_binary(), "migrate", "--database-url", conninfo()}};
  auto status = next.wait(seconds{60});
  auto waited = std::chrono::steady_clock::now() - started;
  paused.signal(SIGCONT);
  EXPECT_EQ(status, std::optional<int>{0}) << next.stderr_tail();
  // It did wait for the paused one: the lock was held until its session
  // was ended.
  EXPECT_GE(waited, seconds{10});
  // Resumed, the paused migrator finds its session ended and says so
  // (a replica's start-up tries again; a migration Job is restarted).
  EXPECT_EQ(paused.wait(seconds{30}), std::optional<int>{1})
    << paused.stderr_tail();
  EXPECT_NE(paused.stderr_tail().find("migration failed"), std::string::npos)
    << paused.stderr_tail();
}

TEST(cli_usage, a_failing_embedded_postgresql_is_one_line) {
  // pg_ctl's output and the server log's lines came through as they were:
  // five lines for one fatal error.
  temp_dir dir{"seatledger_cli_embedded_fails"};
  std::filesystem::create_directories(dir.file("var/postgres"));
  write_file(dir.file("var/postgres/PG_VERSION"), "99\n");
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  auto r = run_cli({"serve", "--data-dir", dir.file("var"), "--kafka-bootstrap",
                    unreachable_bootstrap, "--signing-key",
                    keys->signing_key_file, "--http-listen", "127.0.0.1:0"},
                   {}, std::chrono::seconds{60});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  auto errors = logged_errors(r.err, "cannot start the embedded PostgreSQL: ");
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("could not start server"), std::string::npos)
    << errors[0];
}

namespace {

enum class slow_start {
  /// A standby without a primary or hot standby: pg_ctl start returns once
  /// it reports "standby", and it answers "starting up" until promoted, as
  /// a server in a long crash recovery does.
  never_ready,
  /// In archive recovery, its restore_command sleeping 20 s for each file
  /// it asks for: it reports "starting" meanwhile, so pg_ctl start keeps
  /// waiting (up to 60 s), as in the first minute of a long crash recovery.
  pg_ctl_waits,
};

/// An embedded cluster under `dir`/var that starts slowly, as `how` says.
/// Its data directory; empty (with a test failure) when migrate failed.
std::string slow_embedded_cluster(const temp_dir& dir,
                                  slow_start how = slow_start::never_ready) {
  // The server's OS user (under root) must reach its data directory.
  std::filesystem::permissions(dir.path(), std::filesystem::perms{0755});
  auto r = run_cli({"migrate", "--data-dir", dir.file("var")}, {},
                   std::chrono::seconds{120});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  if (r.status != std::optional<int>{0})
    return {};
  auto cluster = dir.file("var/postgres");
  std::ofstream conf{cluster + "/postgresql.auto.conf", std::ios::app};
  if (how == slow_start::never_ready) {
    write_file(cluster + "/standby.signal", "");
    conf << "hot_standby = off\n";
  } else {
    write_file(cluster + "/recovery.signal", "");
    conf << "restore_command = 'sleep 20; false'\n";
  }
  return cluster;
}

/// Starts `args` (the binary and --data-dir added) on `cluster`, signals
/// it 1 s after its server wrote postmaster.pid, and expects it to end
/// with `status` within `within`, saying `says`, with the server stopped.
void expect_stop_while_starting(const temp_dir& dir, const std::string& cluster,
                                const std::vector<std::string>& tool_args,
                                int sig, int status, const std::string& says,
                                std::chrono::seconds within) {
  SCOPED_TRACE(tool_args.front());
  std::vector<std::string> args{seatledger_binary()};
  args.insert(args.end(), tool_args.begin(), tool_args.end());
  args.insert(args.end(), {"--data-dir", dir.file("var")});
  child_process tool{args};
  ASSERT_TRUE(wait_until(
    [&] { return std::filesystem::exists(cluster + "/postmaster.pid"); },
    std::chrono::seconds{30}))
    << tool.stderr_tail();
  std::this_thread::sleep_for(std::chrono::seconds{1});
  ASSERT_TRUE(tool.running()) << tool.stderr_tail();
  tool.signal(sig);
  EXPECT_EQ(tool.wait(within), std::optional<int>{status})
    << tool.stderr_tail();
  EXPECT_NE(tool.stderr_tail().find(says), std::string::npos)
    << tool.stderr_tail();
  EXPECT_FALSE(std::filesystem::exists(cluster + "/postmaster.pid"))
    << "the server was left running";
}

} // namespace

// An embedded server still in crash recovery is waited for as long as it
// takes (it failed after a minute and was left running); asked to stop
// meanwhile, serve stops it and exits 0, as any stop before PostgreSQL was
// reachable.
TEST(cli_usage, sigterm_while_the_embedded_postgresql_starts_is_a_stop) {
  temp_dir dir{"seatledger_cli_embedded_recovers"};
  auto cluster = slow_embedded_cluster(dir);
  ASSERT_FALSE(cluster.empty());
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  child_process serve{{seatledger_binary(), "serve", "--data-dir",
                       dir.file("var"), "--kafka-bootstrap",
                       unreachable_bootstrap, "--signing-key",
                       keys->signing_key_file, "--http-listen", "127.0.0.1:0"}};
  ASSERT_TRUE(wait_until(
    [&] { return std::filesystem::exists(cluster + "/postmaster.pid"); },
    std::chrono::seconds{30}))
    << serve.stderr_tail();
  std::this_thread::sleep_for(std::chrono::seconds{3});
  ASSERT_TRUE(serve.running()) << serve.stderr_tail();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds{60}), std::optional<int>{0})
    << serve.stderr_tail();
  EXPECT_NE(serve.stderr_tail().find(
              "stopped before the embedded PostgreSQL was ready"),
            std::string::npos)
    << serve.stderr_tail();
  EXPECT_FALSE(std::filesystem::exists(cluster + "/postmaster.pid"))
    << "the server was left running";
}

// migrate and ledger verify asked to stop while their embedded server
// starts stop it and exit with 128 + the signal: they died at once and left
// it running, to be stopped by the next start as a leftover.
TEST(cli_usage, a_tool_stopped_while_its_embedded_postgresql_starts_stops_it) {
  temp_dir dir{"seatledger_cli_tool_stopped"};
  auto cluster = slow_embedded_cluster(dir);
  ASSERT_FALSE(cluster.empty());
  expect_stop_while_starting(dir, cluster, {"migrate"}, SIGINT, 128 + SIGINT,
                             "SIGINT: stopping the embedded",
                             std::chrono::seconds{60});
  expect_stop_while_starting(dir, cluster, {"ledger", "verify"}, SIGTERM,
                             128 + SIGTERM, "SIGTERM: stopping the embedded",
                             std::chrono::seconds{60});
}

// pg_ctl start waits up to 60 s for a server that reports "starting" (the
// first minute of a crash recovery), with SIGINT and SIGTERM blocked as
// its parent has them: a stop took effect only when that wait ended.
// Now the stop ends it within about 100 ms, and the server is stopped.
TEST(cli_usage, a_stop_during_pg_ctl_starts_wait_stops_the_server) {
  temp_dir dir{"seatledger_cli_pg_ctl_waits"};
  auto cluster = slow_embedded_cluster(dir, slow_start::pg_ctl_waits);
  ASSERT_FALSE(cluster.empty());
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  // Well inside pg_ctl's 60 s, which the old code waited out.
  expect_stop_while_starting(
    dir, cluster,
    {"serve", "--kafka-bootstrap", unreachable_bootstrap, "--signing-key",
     keys->signing_key_file, "--http-listen", "127.0.0.1:0"},
    SIGTERM, 0, "stopped before the embedded PostgreSQL was ready",
    std::chrono::seconds{15});
  expect_stop_while_starting(dir, cluster, {"migrate"}, SIGINT, 128 + SIGINT,
                             "SIGINT: stopping the embedded",
                             std::chrono::seconds{15});
}

TEST(cli_usage, ledger_verify_does_not_create_the_database_it_reads) {
  // Given a --data-dir with no embedded database (a typo), verify
  // initialised a new cluster there and failed on its missing roles.
  temp_dir dir{"seatledger_cli_verify_dir"};
  auto r = run_cli({"ledger", "verify", "--data-dir", dir.file("nothing")});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("--data-dir"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("no embedded database"), std::string::npos)
    << lines[0];
  EXPECT_FALSE(std::filesystem::exists(dir.file("nothing")));
  EXPECT_EQ(r.out, "");
}

TEST(cli_usage, an_empty_database_url_or_bootstrap_is_not_unset) {
  // Only an unset setting means the embedded server or cluster. An empty
  // one (a secret or template that rendered nothing) started a replica on
  // a private database, or ready on an in-process Kafka cluster of its own
  // that nothing publishes to.
  temp_dir dir{"seatledger_cli_empty"};
  struct empty_case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string says;
  };
  const std::vector<empty_case> cases{
    {{"migrate", "--database-url", "", "--data-dir", dir.file("var")},
     {},
     "--database-url"},
    {{"ledger", "verify", "--data-dir", dir.file("var")},
     {{"SEATLEDGER_DATABASE_URL", ""}},
     "--database-url"},
    {{"serve", "--kafka-bootstrap", "", "--database-url", unreachable_database,
      "--data-dir", dir.file("var")},
     {},
     "--kafka-bootstrap"},
    {{"serve", "--kafka-bootstrap", unreachable_bootstrap, "--data-dir",
      dir.file("var")},
     {{"SEATLEDGER_DATABASE_URL", ""}},
     "SEATLEDGER_DATABASE_URL"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.says);
    auto r = run_cli(c.args, c.env, std::chrono::seconds{30});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find(c.says), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("empty; leave it unset"), std::string::npos)
      << lines[0];
  }
  // Nothing was started under the data directory.
  EXPECT_FALSE(std::filesystem::exists(dir.file("var/postgres")));
  // publish has no embedded cluster to leave it unset for.
  auto r = run_cli({"publish", "--topic", "t", "--kafka-bootstrap", ""}, {},
                   std::chrono::seconds{30});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_EQ(r.err, "invalid configuration: --kafka-bootstrap: empty; publish "
                   "needs the address of a Kafka cluster\n");
  // An empty FILE is no file: it read stdin, and said "published 0
  // records" from /dev/null.
  r = run_cli({"publish", "--topic", "t", "--kafka-bootstrap",
               unreachable_bootstrap, ""},
              {}, std::chrono::seconds{30});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find("must not be empty"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(cli_errors, go_to_stderr_and_results_to_stdout) {
  auto r
    = run_cli({"ledger", "verify", "--database-url", unreachable_database});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("cannot verify the ledger"), std::string::npos) << r.err;
  r = run_cli({"ledger", "verify", "--subscription", "sub-1", "--database-url",
               unreachable_database});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("cannot verify the ledger"), std::string::npos) << r.err;
}

TEST(cli_usage, mistakes_on_the_command_line_exit_2_with_cli11s_message) {
  temp_dir dir{"seatledger_cli_usage"};
  struct usage_case {
    std::vector<std::string> args;
    /// Must appear on stderr.
    std::string says;
  };
  const std::vector<usage_case> cases{
    {{}, "subcommand"},
    // The word it did not know is named (CLI11 said only "A subcommand
    // is required").
    {{"no-such-command"}, "unknown command 'no-such-command'"},
    {{"no-such-command", "--help"}, "unknown command 'no-such-command'"},
    {{"ledger", "check"},
     "unknown command 'check' (seatledger ledger "
     "commands: verify"},
    {{"publish", "--kafka-bootstrap", unreachable_bootstrap, "--topic", "",
      dir.file("missing.jsonl")},
     "--topic"},
    {{"ledger"}, "subcommand"},
    {{"ledger", "verify", "--no-such-option"}, "--no-such-option"},
    {{"ledger", "verify", "--subscription"}, "--subscription"},
    {{"dev-kafka", "--brokers", "99"},
     "--brokers: '99' is not a whole number from 1 to 16"},
    {{"dev-kafka", "--partitions", "many"},
     "--partitions: 'many' is not a whole number from 1 to 1024"},
    {{"dev-kafka", "--partitions", "4x"},
     "--partitions: '4x' is not a whole number from 1 to 1024"},
    {{"publish", "--kafka-bootstrap", unreachable_bootstrap}, "--topic"},
    // Properties librdkafka takes one by one but not together: it refuses
    // to create the client (exit 1, "kafka_failure: cannot create
    // producer: …" before).
    {{"publish", "--kafka-bootstrap", unreachable_bootstrap, "--topic", "t",
      "--kafka-property", "security.protocol=SASL_SSL", "--kafka-property",
      "sasl.mechanism=PLAIN"},
     "invalid configuration: --kafka-property: librdkafka refuses to create a "
     "producer: sasl.username and sasl.password must be set"},
    {{"license", "verify"}, "key"},
    {{"license", "keygen", "--out", ""}, "--out"},
    {{"sample", "--out", ""}, "--out"},
    {{"sample", "--out", dir.file("a"), dir.file("b")}, dir.file("b")},
  };
  for (const auto& c : cases) {
    std::string name;
    for (const auto& a : c.args)
      name += a + " ";
    SCOPED_TRACE(name);
    auto r = run_cli(c.args);
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Nothing of the refused commands was done.
  EXPECT_FALSE(std::filesystem::exists(dir.file("a")));

  // Help is no mistake.
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"--help"}, {"ledger", "verify", "--help"}, {"publish", "--help"}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.status, std::optional<int>{0}) << args[0] << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
}

/// A JSON-lines file of two subscription commands.
std::string write_commands(const temp_dir& dir) {
  auto file = dir.file("commands.jsonl");
  write_file(file, cloud_event("seatledger.subscription.create", "cli-1",
                               "2026-01-01T00:00:00Z",
                               json{{"subscription_id", "sub-a"}})
                     // Blank lines are no records (they were published).
                     + "\n  \n\t\r\n\n"
                     + cloud_event("seatledger.subscription.create", "cli-2",
                                   "2026-01-01T00:00:00Z",
                                   json{{"subscription_id", "sub-b"}})
                     + "\n");
  return file;
}

TEST(cli_publish, takes_one_value_per_kafka_property_and_the_file_after_it) {
  auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  temp_dir dir{"seatledger_cli_publish"};
  auto file = write_commands(dir);
  // The FILE was taken for a second --kafka-property value.
  auto r
    = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", subscriptions_topic, "--kafka-property", "acks=all",
               "--kafka-property", "client.id=cli-test", file});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.err.find("published 2 records"), std::string::npos) << r.err;
  kafka_io io{(*cluster)->bootstrap_servers()};
  std::set<std::string> keys;
  for (const auto& record : io.read_all(subscriptions_topic))
    keys.insert(record.key);
  EXPECT_EQ(keys, (std::set<std::string>{"sub-a", "sub-b"}));
}

TEST(cli_publish, a_topic_the_cluster_lacks_is_named_not_created) {
  // A mistyped --topic exited 0: the first record created the topic, and
  // the records sat where nothing reads them.
  auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  temp_dir dir{"seatledger_cli_publish_topic"};
  auto file = dir.file("events.jsonl");
  std::ofstream{file} << R"({"specversion":"1.0","id":"e-1","source":"t",)"
                      << R"("type":"seatledger.org.member_added",)"
                      << R"("time":"2026-01-01T00:00:00Z",)"
                      << R"("data":{"org_id":"o-1","user_id":"u-1"}})"
                      << "\n";
  auto r
    = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", "seatledger.membership.v2", file});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("no topic 'seatledger.membership.v2'"),
            std::string::npos)
    << lines[0];
  kafka_io io{(*cluster)->bootstrap_servers()};
  auto after = kafka::producer::make(
    kafka::client_config{(*cluster)->bootstrap_servers(), {}});
  ASSERT_TRUE(after) << describe(after.error());
  auto topics = (*after)->partition_counts(
    {"seatledger.membership.v2", "seatledger.membership.v1"}, 10'000);
  ASSERT_TRUE(topics) << describe(topics.error());
  EXPECT_EQ(topics->count("seatledger.membership.v2"), 0u) << "created";
  EXPECT_EQ(topics->count("seatledger.membership.v1"), 1u);
  // The right topic is published to as before.
  r = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", "seatledger.membership.v1", file});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_EQ(io.read_all("seatledger.membership.v1").size(), 1u);
}

TEST(cli_publish,
     a_pretty_printed_file_is_refused_not_published_a_line_at_a_time) {
  // Each line of it went out as a record (every one a dead letter) and
  // publish exited 0. A line that is not JSON at all is still published:
  // a poison record sent on purpose (the sample does).
  auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  temp_dir dir{"seatledger_cli_publish_pretty"};
  const std::string event
    = R"({"specversion":"1.0","id":"e-1","source":"t",)"
      R"("type":"seatledger.member.added","time":"2026-01-01T00:00:00Z",)"
      R"("data":{"org_id":"o-1","user_id":"u-1"}})";
  auto pretty = dir.file("pretty.json");
  std::ofstream{pretty} << "{\n  \"specversion\": \"1.0\",\n  \"id\": "
                           "\"e-2\"\n}\n";
  auto r
    = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", membership_topic, pretty});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind(pretty + ":1: a JSON value that goes on", 0), 0u)
    << lines[0];
  EXPECT_NE(lines[0].find("0 records published before it"), std::string::npos)
    << lines[0];
  EXPECT_NE(lines[0].find("(jq -c . makes them"), std::string::npos)
    << lines[0];
  kafka_io io{(*cluster)->bootstrap_servers()};
  EXPECT_EQ(io.read_all(membership_topic).size(), 0u);
  // JSON lines and a deliberate poison line, then a pretty-printed event:
  // what came before it is published, and it is named by its line.
  auto mixed = dir.file("mixed.jsonl");
  std::ofstream{mixed} << event << "\nthis is not JSON\n\n[{\"id\": \"e-3\",\n";
  r = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", membership_topic, mixed});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_NE(r.err.find(mixed + ":4: "), std::string::npos) << r.err;
  // An array's remedy takes its elements apart (`jq -c .` would make the
  // array one record).
  EXPECT_NE(r.err.find("jq -c '.[]'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 records published before it"), std::string::npos)
    << r.err;
  EXPECT_EQ(io.read_all(membership_topic).size(), 2u);
}

TEST(cli_publish, keys_catalog_upserts_and_removals_by_their_plan_id) {
  // A removal names its plan in rate_plan_id, an upsert in rate_plan.id;
  // removals went with an empty key, which the service dead-letters
  // (key_mismatch), so the plan was never removed. A record with no key
  // field is still published, but said so.
  auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  temp_dir dir{"seatledger_cli_publish"};
  auto file = dir.file("catalog.jsonl");
  auto event = [](const std::string& id, const std::string& type,
                  const std::string& data) {
    return R"({"specversion":"1.0","id":")" + id
           + R"(","source":"t","type":"seatledger.catalog.rate_plan.)" + type
           + R"(","time":"2026-01-01T00:00:00Z","data":)" + data + "}\n";
  };
  std::ofstream{file} << event(
    "c-1", "upserted",
    R"({"product":{"id":"p-1","name":"P"},"rate_plan":{"id":)"
    R"("plan-up","name":"Up","custom_fields":{}},"charges":[]})")
                      << event("c-2", "removed",
                               R"({"rate_plan_id":"plan-gone"})")
                      << event("c-3", "removed", R"({"plan":"nameless"})");
  auto r
    = run_cli({"publish", "--kafka-bootstrap", (*cluster)->bootstrap_servers(),
               "--topic", "seatledger.catalog.v1", file});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.err.find("published 3 records"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 of them had no data.rate_plan.id,rate_plan_id"),
            std::string::npos)
    << r.err;
  kafka_io io{(*cluster)->bootstrap_servers()};
  std::multiset<std::string> keys;
  for (const auto& record : io.read_all("seatledger.catalog.v1"))
    keys.insert(record.key);
  EXPECT_EQ(keys, (std::multiset<std::string>{"plan-up", "plan-gone", ""}));
}

TEST(cli_publish, keys_each_line_by_its_type_also_on_a_renamed_topic) {
  // The key field was guessed from the topic's name ("membership",
  // "catalog", else subscription_id), and the configured names were not
  // read: on a renamed membership topic every record went with an empty
  // key, every one a dead letter (key_mismatch), and publish exited 0.
  auto names = service_topic_names();
  names.push_back("acme.members");
  auto cluster = kafka::mock_cluster::start(1, names, 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  temp_dir dir{"seatledger_cli_publish_renamed"};
  auto file = dir.file("members.jsonl");
  auto event = [](const std::string& id, const std::string& type,
                  const std::string& data) {
    return R"({"specversion":"1.0","id":")" + id + R"(","source":"t","type":")"
           + type + R"(","time":"2026-01-01T00:00:00Z","data":)" + data + "}\n";
  };
  std::ofstream{file} << event("m-1", "seatledger.member.added",
                               R"({"org_id":"o-1","user_id":"u-1"})")
                      << event("c-1", "seatledger.catalog.rate_plan.removed",
                               R"({"rate_plan_id":"plan-x"})")
                      << event("x-1", "acme.custom", R"({"org_id":"o-2"})")
                      << "not JSON\n";
  const std::string bootstrap = (*cluster)->bootstrap_servers();
  kafka_io io{bootstrap};
  auto keys_of = [&] {
    std::multiset<std::string> keys;
    for (const auto& record : io.read_all("acme.members"))
      keys.insert(record.key);
    return keys;
  };

  // Not configured as any input topic: each known type still keys its
  // line; the others are keyed by subscription_id, as output events are,
  // and counted.
  auto r = run_cli({"publish", "--kafka-bootstrap", bootstrap, "--topic",
                    "acme.members", file});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.err.find("published 4 records"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 of them had no data.subscription_id"),
            std::string::npos)
    << r.err;
  EXPECT_EQ(r.err.find("does not carry"), std::string::npos) << r.err;
  EXPECT_EQ(keys_of(), (std::multiset<std::string>{"o-1", "plan-x", "", ""}));

  // Configured as the membership topic (as serve is): a line of no known
  // type is keyed as the topic's are, and a catalog line on it is named.
  r = run_cli({"publish", "--kafka-bootstrap", bootstrap, "--topic",
               "acme.members", file},
              {{"SEATLEDGER_TOPIC_MEMBERSHIP", "acme.members"}});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.err.find("1 of them had no data.org_id"), std::string::npos)
    << r.err;
  EXPECT_NE(r.err.find("1 of them have a type the membership topic "
                       "(acme.members) does not carry"),
            std::string::npos)
    << r.err;
  EXPECT_EQ(keys_of(), (std::multiset<std::string>{
                         "o-1", "o-1", "plan-x", "plan-x", "o-2", "", "", ""}));

  // An output event goes by its subscription, as the service keys it.
  auto out = dir.file("events.jsonl");
  std::ofstream{out} << event(
    "s-1", "seatledger.seats.changed",
    R"({"subscription_id":"sub-9","seats_in_use":1})");
  r = run_cli({"publish", "--kafka-bootstrap", bootstrap, "--topic",
               "seatledger.events.v1", out});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  auto events = io.read_all("seatledger.events.v1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].key, "sub-9");
}

TEST(cli_dev_kafka, creates_the_configured_topic_names) {
  // It created the default names only: serve, configured with renamed
  // topics, found none of them and consumed nothing.
  temp_dir dir{"seatledger_cli_dev_kafka"};
  auto config = dir.file("seatledger.conf");
  std::ofstream{config} << "topic-events = acme.events\n";
  child_process kafka{{seatledger_binary(), "dev-kafka", "--partitions", "3",
                       "--topic-membership", "acme.members"},
                      {{"SEATLEDGER_CONFIG", config},
                       {"SEATLEDGER_TOPIC_DLQ", "acme.dead"}}};
  auto bootstrap = kafka.wait_for_value("KAFKA_BOOTSTRAP",
                                        std::chrono::seconds{30});
  ASSERT_TRUE(bootstrap) << kafka.stderr_tail();
  auto client = kafka::producer::make(kafka::client_config{*bootstrap, {}});
  ASSERT_TRUE(client) << describe(client.error());
  const std::vector<std::string> expected{
    "acme.members",          "seatledger.subscriptions.v1",
    "seatledger.catalog.v1", "seatledger.internal.seat-deltas.v1",
    "acme.events",           "acme.dead"};
  auto counts = (*client)->partition_counts(expected, 10'000);
  ASSERT_TRUE(counts) << describe(counts.error());
  for (const auto& name : expected)
    EXPECT_EQ(counts->count(name) ? counts->at(name) : 0, 3) << name;
  EXPECT_EQ(counts->count("seatledger.membership.v1"), 0u);
  kafka.signal(SIGTERM);
  EXPECT_EQ(kafka.wait(std::chrono::seconds{10}), std::optional<int>{0});

  // A setting it reads is checked as serve checks it.
  auto r = run_cli({"dev-kafka", "--topic-dlq", "acme.members",
                    "--topic-membership", "acme.members"});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find("each topic needs its own name"), std::string::npos)
    << r.err;
}

TEST(cli_publish, refuses_a_directory_or_a_missing_file_naming_it) {
  temp_dir dir{"seatledger_cli_publish"};
  // A directory read as an empty file: "published 0 records", exit 0.
  for (const auto& path : {dir.path(), dir.file("missing.jsonl")}) {
    SCOPED_TRACE(path);
    auto r = run_cli({"publish", "--kafka-bootstrap", unreachable_bootstrap,
                      "--topic", subscriptions_topic, path});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find(path), std::string::npos) << lines[0];
    EXPECT_EQ(r.out, "");
  }
}

TEST(cli_publish, refuses_a_kafka_property_as_serve_does) {
  // An unknown property was exit 1 after the client was made; one the
  // contract depends on (another partitioner) was taken without a word.
  temp_dir dir{"seatledger_cli_publish"};
  auto file = dir.file("empty.jsonl");
  std::ofstream{file} << "";
  for (const auto* property :
       {"bogus.prop=1", "partitioner=random", "novalue"}) {
    SCOPED_TRACE(property);
    auto r = run_cli({"publish", "--kafka-bootstrap", unreachable_bootstrap,
                      "--topic", subscriptions_topic, "--kafka-property",
                      property, file});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("invalid configuration: --kafka-property: ", 0),
              0u)
      << lines[0];
  }
}

TEST(cli_publish, reaches_kafka_as_serve_is_configured_to) {
  // publish read SEATLEDGER_KAFKA_BOOTSTRAP but neither
  // SEATLEDGER_KAFKA_PROPERTIES nor the configuration file: against a
  // cluster that needs SASL or TLS it failed where serve, given the same
  // environment, connected.
  temp_dir dir{"seatledger_cli_publish"};
  auto empty = dir.file("empty.jsonl");
  std::ofstream{empty} << "";
  auto refused
    = run_cli({"publish", "--kafka-bootstrap", unreachable_bootstrap, "--topic",
               subscriptions_topic, empty},
              {{"SEATLEDGER_KAFKA_PROPERTIES", "partitioner=random"}});
  EXPECT_EQ(refused.status, std::optional<int>{2}) << refused.err;
  auto lines = lines_of(refused.err);
  ASSERT_EQ(lines.size(), 1u) << refused.err;
  EXPECT_EQ(lines[0].rfind("invalid configuration: --kafka-property "
                           "(SEATLEDGER_KAFKA_PROPERTIES from the "
                           "environment): ",
                           0),
            0u)
    << lines[0];

  // Properties librdkafka refuses together name where they came from too
  // (the line said --kafka-property whatever set them).
  auto sasl = run_cli({"publish", "--kafka-bootstrap", unreachable_bootstrap,
                       "--topic", subscriptions_topic, empty},
                      {{"SEATLEDGER_KAFKA_PROPERTIES",
                        "security.protocol=SASL_SSL,sasl.mechanism=PLAIN"}});
  EXPECT_EQ(sasl.status, std::optional<int>{2}) << sasl.err;
  EXPECT_EQ(lines_of(sasl.err),
            std::vector<std::string>{
              "invalid configuration: --kafka-property "
              "(SEATLEDGER_KAFKA_PROPERTIES from the environment): librdkafka "
              "refuses to create a producer: sasl.username and sasl.password "
              "must be set"});

  auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
  ASSERT_TRUE(cluster) << describe(cluster.error());
  auto config = dir.file("seatledger.conf");
  std::ofstream{config} << "kafka-bootstrap = "
                        << (*cluster)->bootstrap_servers() << "\n";
  auto r
    = run_cli({"publish", "--topic", subscriptions_topic, write_commands(dir)},
              {{"SEATLEDGER_CONFIG", config}});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  kafka_io io{(*cluster)->bootstrap_servers()};
  EXPECT_EQ(io.read_all(subscriptions_topic).size(), 2u);
}

namespace {

/// A librdkafka log line as the tools write it, at whatever level.
bool is_librdkafka_line(const std::string& line) {
  for (const char* level : {"debug", "info", "warning", "error"})
    if (line.rfind(std::string{level} + ": kafka (", 0) == 0)
      return true;
  return false;
}

} // namespace

TEST(cli_publish, an_unreachable_kafka_is_named_within_seconds) {
  // It was found out only when delivery timed out, a minute later, as
  // "timed out waiting for deliveries".
  temp_dir dir{"seatledger_cli_publish"};
  auto file = dir.file("one.jsonl");
  std::ofstream{file} << R"({"specversion":"1.0","id":"e-1","source":"t",)"
                      << R"("type":"seatledger.member.removed","time":)"
                      << R"("2026-01-01T00:00:00Z","data":{"org_id":"o-1",)"
                      << R"("user_id":"u-1"}})"
                      << "\n";
  auto started = std::chrono::steady_clock::now();
  auto r = run_cli({"publish", "--kafka-bootstrap", unreachable_bootstrap,
                    "--topic", membership_topic, file},
                   {}, std::chrono::seconds{50});
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::seconds{30});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  // Every line plain: librdkafka's log lines among them were JSON objects.
  std::vector<std::string> ours;
  bool librdkafka_said_why = false;
  for (const auto& line : lines_of(r.err)) {
    EXPECT_TRUE(line.empty() || line.front() != '{') << line;
    if (is_librdkafka_line(line))
      librdkafka_said_why |= line.find("Connection refused")
                             != std::string::npos;
    else
      ours.push_back(line);
  }
  EXPECT_TRUE(librdkafka_said_why) << r.err;
  ASSERT_EQ(ours.size(), 1u) << r.err;
  EXPECT_EQ(ours[0].rfind(
              std::string{"cannot reach Kafka at "} + unreachable_bootstrap, 0),
            0u)
    << ours[0];
  EXPECT_EQ(r.out, "");
}

TEST(cli_output_dir, keygen_and_sample_refuse_a_missing_parent_naming_it) {
  temp_dir dir{"seatledger_cli_out"};
  const auto missing_parent = dir.file("no-such-dir");
  const auto target = missing_parent + "/out";
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"license", "keygen", "--out", target}, {"sample", "--out", target}}) {
    SCOPED_TRACE(args[0]);
    auto r = run_cli(args);
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find(target), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("parent"), std::string::npos) << lines[0];
    EXPECT_EQ(r.out, "");
    // The mistyped tree was not created.
    EXPECT_FALSE(std::filesystem::exists(missing_parent));
  }
  // A file where the directory belongs.
  write_file(dir.file("a-file"), "x");
  auto r = run_cli({"sample", "--out", dir.file("a-file")});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find(dir.file("a-file")), std::string::npos) << r.err;
  // A directory that takes no files: the line says why, without quotes
  // around the path (keygen said only "cannot write …", sample quoted it).
  r = run_cli({"license", "keygen", "--out", "/proc"});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_NE(r.err.find("cannot write /proc/signing-key.pem: "),
            std::string::npos)
    << r.err;
  r = run_cli({"sample", "--out", "/proc"});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_NE(r.err.find("cannot write /proc/1-catalog.jsonl\n"),
            std::string::npos)
    << r.err;
  // The last level alone is created, as before.
  r = run_cli({"sample", "--out", dir.file("sample")});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.out.find(dir.file("sample") + "/1-catalog.jsonl"),
            std::string::npos)
    << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("sample") + "/1-catalog.jsonl"));
}

TEST(cli_sample, names_the_topics_as_serve_is_configured) {
  // Its TOPIC FILE lines feed publish (as run.sh does): with renamed topics
  // it printed the default names, whose records nothing consumes.
  temp_dir dir{"seatledger_cli_sample_topics"};
  auto r = run_cli({"sample", "--out", dir.file("sample"), "--topic-membership",
                    "acme.membership"},
                   {{"SEATLEDGER_TOPIC_CATALOG", "acme.catalog"}});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  std::set<std::string> topics;
  std::istringstream lines{r.out};
  for (std::string topic, file; lines >> topic >> file;)
    topics.insert(topic);
  EXPECT_EQ(topics, (std::set<std::string>{"acme.catalog", "acme.membership",
                                           "seatledger.subscriptions.v1"}))
    << r.out;
  // An invalid name is refused as serve refuses it.
  r = run_cli({"sample", "--out", dir.file("other"), "--topic-catalog", "a b"});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find("--topic-catalog"), std::string::npos) << r.err;
}

} // namespace
} // namespace seatledger::test
