// Configuration of the real binary (issue 5): every invalid configuration
// stops `seatledger serve` at once with exit status 2 and one line on stderr
// naming the setting, before anything is started; `serve --help` documents
// every option; and flag > SEATLEDGER_* > file holds end to end, seen in
// the CloudEvents `source` of the events the service publishes.

#include <filesystem>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "config/options.hpp"
#include "service_fixture.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;
using json = nlohmann::json;

/// A loopback port held by a listening socket for the test's lifetime.
class taken_port {
public:
  taken_port() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0
        && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
        && ::listen(fd_, 1) == 0
        && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port_ = ntohs(addr.sin_port);
  }
  ~taken_port() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int port() const {
    return port_;
  }

private:
  int fd_;
  int port_ = 0;
};

TEST(service_config, invalid_configuration_stops_start_up_with_one_line) {
  taken_port busy;
  ASSERT_NE(busy.port(), 0);
  const auto busy_address = "127.0.0.1:" + std::to_string(busy.port());
  temp_dir dir{"seatledger_config_it"};
  auto keys = crypto::generate_key_pair(dir.file("keys"));
  ASSERT_TRUE(keys) << describe(keys.error());
  const auto unknown_key_file = dir.file("unknown-key.conf");
  write_file(unknown_key_file,
             "# seatledger\nsource = ok\nno-such-option = 1\n");
  const auto bad_value_file = dir.file("bad-value.conf");
  write_file(bad_value_file, "source = ok\nbatch-max-records = abc\n");
  const auto garbage_key = dir.file("garbage.pem");
  write_file(garbage_key, "-----BEGIN PRIVATE KEY-----\nnope\n");

  struct bad_case {
    std::string name;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    /// Each must appear in the one line.
    std::vector<std::string> says;
    /// None may appear (secrets).
    std::vector<std::string> never = {};
  };
  const std::vector<bad_case> cases{
    {"a flag's value",
     {"--batch-max-records", "abc"},
     {},
     {"--batch-max-records", "'abc'"}},
    {"a variable's value",
     {},
     {{"SEATLEDGER_HTTP_LISTEN", "nonsense"}},
     {"--http-listen", "SEATLEDGER_HTTP_LISTEN", "'nonsense'"}},
    {"an unknown key in the file",
     {"--config", unknown_key_file},
     {},
     {unknown_key_file + ":3", "no-such-option"}},
    {"a file value named by the variable",
     {},
     {{"SEATLEDGER_CONFIG", bad_value_file}},
     {"--batch-max-records", bad_value_file + ":2", "'abc'"}},
    {"a short token",
     {"--api-token", "short:admin"},
     {},
     {"--api-token"},
     {"short:"}},
    {"a token without scope",
     {"--api-token", "Xy7qZXy7qZXy7qZXy7qZ:superuser"},
     {},
     {"--api-token"},
     {"Xy7qZ", "superuser"}},
    {"tokens from the environment",
     {},
     {{"SEATLEDGER_API_TOKENS", "Xy7qZXy7qZXy7qZXy7qZ:admin,Ab:read"}},
     {"--api-token", "SEATLEDGER_API_TOKENS"},
     {"Xy7qZ", "Ab:"}},
    {"a Kafka property",
     {"--kafka-property", "novalue"},
     {},
     {"--kafka-property", "novalue"}},
    {"a Kafka property librdkafka does not know",
     {"--kafka-property", "bogus.prop=1"},
     {},
     {"--kafka-property", "bogus.prop"}},
    {"a single-valued flag given twice",
     {"--source", "a", "--source", "b"},
     {},
     {"--source", "given more than once"}},
    {"an HTTP address already in use (checked before anything starts)",
     {"--http-listen", busy_address},
     {},
     {"--http-listen", busy_address}},
    {"an unknown flag", {"--no-such-flag", "1"}, {}, {"--no-such-flag"}},
    {"a flag without its value",
     {"--batch-max-records"},
     {},
     {"--batch-max-records"}},
    {"an unknown variable",
     {},
     {{"SEATLEDGER_SOURCES", "x"}},
     {"SEATLEDGER_SOURCES", "unknown"}},
    {"a missing configuration file",
     {"--config", dir.file("none.conf")},
     {},
     {"--config", dir.file("none.conf")}},
    {"a duration",
     {},
     {{"SEATLEDGER_BATCH_LINGER", "5x"}},
     {"--batch-linger", "SEATLEDGER_BATCH_LINGER"}},
    {"a missing signing key",
     {"--signing-key", dir.file("missing.pem")},
     {},
     {"--signing-key", dir.file("missing.pem")}},
    {"an unreadable signing key",
     {"--signing-key", garbage_key},
     {},
     {"--signing-key", garbage_key}},
    {"a directory as the signing key",
     {"--signing-key", dir.path()},
     {},
     {"--signing-key", dir.path()}},
    {"a directory as the trusted key",
     {"--signing-key", keys->signing_key_file, "--trusted-key", dir.path()},
     {},
     {"--trusted-key", dir.path()}},
    {"a directory as the configuration file",
     {"--config", dir.path()},
     {},
     {"--config", dir.path()}},
    {"a missing trusted key",
     {"--signing-key", keys->signing_key_file, "--trusted-key",
      dir.file("missing-public.pem")},
     {},
     {"--trusted-key", dir.file("missing-public.pem")}},
    // Each property is one librdkafka takes, but not together: it refuses
    // to create the client, which was exit 1 without a `setting`.
    {"SASL without its credentials",
     {"--signing-key", keys->signing_key_file, "--kafka-property",
      "security.protocol=SASL_SSL", "--kafka-property", "sasl.mechanism=PLAIN"},
     {},
     {"--kafka-property: librdkafka refuses to create a producer: "
      "sasl.username and sasl.password must be set"}},
    // Refused by the consumers only (the group member's session timeout):
    // serve stayed up, never ready, "Kafka not tried yet" for good.
    {"a consumer property librdkafka refuses",
     {"--signing-key", keys->signing_key_file, "--kafka-property",
      "max.poll.interval.ms=5000"},
     {},
     {"--kafka-property: librdkafka refuses to create a consumer: ",
      "max.poll.interval.ms"}},
    // Read after the variables were checked: the line named the flag
    // alone, which an operator who set the variable looked for in vain.
    {"a missing trusted key from the environment",
     {"--signing-key", keys->signing_key_file},
     {{"SEATLEDGER_TRUSTED_KEY_FILES", dir.file("missing-public.pem")}},
     {"--trusted-key (SEATLEDGER_TRUSTED_KEY_FILES from the environment): ",
      dir.file("missing-public.pem")}},
    {"a missing signing key from the environment",
     {},
     {{"SEATLEDGER_SIGNING_KEY_FILE", dir.file("missing.pem")}},
     {"--signing-key (SEATLEDGER_SIGNING_KEY_FILE from the environment): ",
      dir.file("missing.pem")}},
    // Without --signing-key a key pair was created under --data-dir
    // before the trusted keys were read.
    {"a missing trusted key, no signing key",
     {"--trusted-key", dir.file("missing-public.pem")},
     {},
     {"--trusted-key", dir.file("missing-public.pem")}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    // Whatever the bad setting, nothing may be started: a database and a
    // cluster that do not exist would fail differently (and slowly), and a
    // private data directory catches anything written.
    std::vector<std::string> args{"serve",
                                  "--database-url",
                                  "host=127.0.0.1 port=1 dbname=none "
                                  "connect_timeout=5",
                                  "--kafka-bootstrap",
                                  "127.0.0.1:1",
                                  "--data-dir",
                                  dir.file("var")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto started = steady_clock::now();
    auto r = run_cli(args, c.env, seconds{30});
    auto took = steady_clock::now() - started;
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
    // One JSON log line, as the rest of serve's stderr.
    auto message = log_message(lines[0]);
    EXPECT_EQ(message.rfind("invalid configuration: ", 0), 0u) << lines[0];
    for (const auto& part : c.says)
      EXPECT_NE(message.find(part), std::string::npos)
        << "'" << part << "' not in: " << lines[0];
    for (const auto& part : c.never)
      EXPECT_EQ(lines[0].find(part), std::string::npos)
        << "'" << part << "' echoed: " << lines[0];
    EXPECT_EQ(r.out, "") << "something was started";
    EXPECT_LT(took, seconds{10});
    EXPECT_FALSE(std::filesystem::exists(dir.file("var")));
  }
  // An unknown flag is named in the `setting` field, as a bad value is; a
  // word that is no flag is quoted. CLI11's own line named no setting and
  // listed the words in reverse order.
  struct unexpected_case {
    std::vector<std::string> args;
    std::string message;
    std::string setting;
  };
  const std::vector<unexpected_case> unexpected{
    {{"--no-such-flag", "1"},
     "invalid configuration: --no-such-flag: unknown setting",
     "--no-such-flag"},
    {{"--no-such-flag=1", "stray"},
     "invalid configuration: --no-such-flag: unknown setting",
     "--no-such-flag"},
    {{"-q"}, "invalid configuration: -q: unknown setting", "-q"},
    {{"stray"}, "invalid configuration: unexpected argument 'stray'", ""},
  };
  for (const auto& c : unexpected) {
    SCOPED_TRACE(c.args.front());
    std::vector<std::string> args{"serve", "--data-dir", dir.file("var")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = run_cli(args, {}, seconds{30});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
    EXPECT_EQ(log_message(lines[0]).rfind(c.message, 0), 0u) << lines[0];
    EXPECT_EQ(lines[0].find("\"setting\":"),
              c.setting.empty()
                ? std::string::npos
                : lines[0].find("\"setting\":\"" + c.setting + "\""))
      << lines[0];
    EXPECT_FALSE(std::filesystem::exists(dir.file("var")));
  }
  // A file where the data directory goes failed only when the key pair or
  // the embedded server was made there, with exit status 1.
  const auto file_not_dir = dir.file("var-is-a-file");
  write_file(file_not_dir, "");
  for (const auto& embedded_part :
       std::vector<std::string>{"--signing-key", "--database-url"}) {
    SCOPED_TRACE("a file as --data-dir, without " + embedded_part);
    std::vector<std::string> args{"serve", "--kafka-bootstrap", "127.0.0.1:1",
                                  "--data-dir", file_not_dir};
    if (embedded_part == "--signing-key")
      args.insert(args.end(), {"--database-url", "host=127.0.0.1 port=1"});
    else
      args.insert(args.end(), {"--signing-key", keys->signing_key_file});
    auto r = run_cli(args, {}, seconds{30});
    EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
    EXPECT_EQ(log_message(lines[0]), "invalid configuration: --data-dir: '"
                                       + file_not_dir + "' is not a directory");
    EXPECT_NE(lines[0].find("\"setting\":\"--data-dir\""), std::string::npos)
      << lines[0];
  }
}

TEST(service_config, serve_help_lists_every_option) {
  auto r = run_cli({"serve", "--help"});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  for (const auto& spec : config::serve_options()) {
    EXPECT_NE(r.out.find("--" + spec.name), std::string::npos)
      << spec.name << " missing from:\n"
      << r.out;
    EXPECT_NE(r.out.find(spec.env), std::string::npos)
      << spec.env << " missing from:\n"
      << r.out;
  }
}

TEST(service_config, flag_beats_environment_beats_file_end_to_end) {
  temp_dir dir{"seatledger_config_it"};
  const auto file = dir.file("seatledger.conf");
  write_file(file, "# the file\nsource = from-file\n");
  // The source the published events carry, for a subscription created
  // while the service runs with that configuration.
  auto published_source = [](running_service& s, const std::string& sub) {
    s.publish(subscriptions_topic, sub,
              cloud_event("seatledger.subscription.create", "create-" + sub,
                          rfc3339_from_now(seconds{0}),
                          create_data(sub, "some-plan", 3,
                                      rfc3339_from_now(-hours{24}),
                                      rfc3339_from_now(hours{24 * 300}),
                                      sub + ".example")));
    auto created = s.wait_for(sub, "seatledger.subscription.created");
    if (created.empty())
      return std::string{"<nothing published>"};
    // Every event for it carries the same source.
    for (const auto& e : s.events_of(sub))
      EXPECT_EQ(e["source"], created[0]["source"]) << e.dump();
    return created[0]["source"].get<std::string>();
  };
  running_service service{{"--config", file, "--source", "from-flag"},
                          {{"SEATLEDGER_SOURCE", "from-env"}}};
  EXPECT_EQ(published_source(service, "sub-flag"), "from-flag");
  service.start({"--config", file}, {{"SEATLEDGER_SOURCE", "from-env"}});
  EXPECT_EQ(published_source(service, "sub-env"), "from-env");
  service.start({}, {{"SEATLEDGER_CONFIG", file}});
  EXPECT_EQ(published_source(service, "sub-file"), "from-file");
}

// The de-duplication window is kept as configured: it was cut to whole
// hours (and raised to one), so a 90-minute window forgot events after 60.
TEST(service_config, the_dedup_window_is_kept_as_configured) {
  running_service service;
  database_probe probe{service.conninfo()};
  auto applied_ago = [&](const std::string& id, int minutes) {
    return probe.scalar(
      "WITH added AS (INSERT INTO seatledger.applied_events "
      "(source, id, key, applied_at) VALUES ('window-test', '"
      + id + "', seatledger.applied_event_key('window-test', '" + id
      + "'), now() - interval '" + std::to_string(minutes)
      + " minutes') RETURNING 1) SELECT count(*) FROM added");
  };
  ASSERT_EQ(applied_ago("seventy-minutes", 70), 1);
  ASSERT_EQ(applied_ago("hundred-minutes", 100), 1);
  auto remembered = [&](const std::string& id) {
    return probe.scalar("SELECT count(*) FROM seatledger.applied_events "
                        "WHERE source = 'window-test' AND id = '"
                        + id + "'");
  };
  // A replica forgets what is past the window as it starts; both rows go in
  // one statement.
  service.start({"--dedup-window", "90m"});
  ASSERT_TRUE(
    wait_until([&] { return remembered("hundred-minutes") == 0; }, seconds{30}))
    << service.log_tail();
  EXPECT_EQ(remembered("seventy-minutes"), 1);
}

/// The service's `allocator` log line, parsed; null if it logged none.
json allocator_line(const std::string& log) {
  for (const auto& line : lines_of(log)) {
    auto parsed = json::parse(line, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()
        && parsed.value("message", "") == "allocator")
      return parsed;
  }
  return nullptr;
}

TEST(service_config,
     allocator_keeps_freed_pages_unless_malloc_conf_says_otherwise) {
  running_service service;
  auto built_in = allocator_line(service.log_tail());
  ASSERT_TRUE(built_in.is_object()) << service.log_tail();
#ifdef SEATLEDGER_SANITIZED_BINARY
  EXPECT_EQ(built_in.value("allocator", ""), "system") << built_in.dump();
#else
  EXPECT_EQ(built_in.value("allocator", ""), "jemalloc") << built_in.dump();
  EXPECT_EQ(built_in.value("dirty_decay_ms", 0), 30000) << built_in.dump();
  EXPECT_EQ(built_in.value("muzzy_decay_ms", 0), 30000) << built_in.dump();
  // An operator's MALLOC_CONF wins over the built-in settings.
  service.start({}, {{"MALLOC_CONF", "dirty_decay_ms:5000"}});
  auto overridden = allocator_line(service.log_tail());
  ASSERT_TRUE(overridden.is_object()) << service.log_tail();
  EXPECT_EQ(overridden.value("dirty_decay_ms", 0), 5000) << overridden.dump();
  EXPECT_EQ(overridden.value("muzzy_decay_ms", 0), 30000) << overridden.dump();
#endif
}

} // namespace
} // namespace seatledger::test
