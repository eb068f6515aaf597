// Configuration: flags > SEATLEDGER_* environment > configuration file >
// defaults, for every kind of option; where each value came from; and every
// invalid or unknown setting stopping start-up with one line that names it
// (never echoing an API token).

#include <atomic>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <string>
#include <unistd.h>
#include <variant>
#include <vector>

#include "config/options.hpp"

using namespace seatledger::config;
using namespace std::chrono_literals;

namespace {

using env_map = std::map<std::string, std::string>;

/// A configuration file in a private temporary directory, removed at the end.
class config_file {
public:
  explicit config_file(const std::string& text) {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path()
           / ("seatledger_config_test_" + std::to_string(getpid()) + "_"
              + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "seatledger.conf").string();
    std::ofstream out{path_};
    out << text;
  }

  ~config_file() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& path() const {
    return path_;
  }

private:
  std::filesystem::path dir_;
  std::string path_;
};

std::variant<settings, config_error> run(const flag_values& flags,
                                         const env_map& env = {}) {
  return resolve(serve_options(), flags, env);
}

settings ok(const flag_values& flags, const env_map& env = {}) {
  auto r = run(flags, env);
  if (auto* err = std::get_if<config_error>(&r)) {
    ADD_FAILURE() << "unexpected error: " << err->message;
    return {};
  }
  return std::get<settings>(r);
}

std::string error_of(const std::vector<option_spec>& specs,
                     const flag_values& flags, const env_map& env = {}) {
  auto r = resolve(specs, flags, env);
  if (!std::holds_alternative<config_error>(r)) {
    ADD_FAILURE() << "configuration accepted, an error was expected";
    return {};
  }
  auto message = std::get<config_error>(r).message;
  EXPECT_EQ(message.find('\n'), std::string::npos)
    << "not one line: " << message;
  EXPECT_EQ(message.rfind("invalid configuration: ", 0), 0u) << message;
  return message;
}

std::string error_of(const flag_values& flags, const env_map& env = {}) {
  return error_of(serve_options(), flags, env);
}

const option_spec& spec_of(const std::string& name) {
  for (const auto& s : serve_options())
    if (s.name == name)
      return s;
  throw std::runtime_error("no option " + name);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

constexpr const char* token_a = "aaaaaaaaaaaaaaaaaaaa-token-A";
constexpr const char* token_b = "bbbbbbbbbbbbbbbbbbbb-token-B";
constexpr const char* token_c = "cccccccccccccccccccc-token-C";

} // namespace

TEST(config, contract_names_and_defaults_of_operations_md) {
  const std::map<std::string, std::string> contract{
    {"kafka-bootstrap", "SEATLEDGER_KAFKA_BOOTSTRAP"},
    {"database-url", "SEATLEDGER_DATABASE_URL"},
    {"http-listen", "SEATLEDGER_HTTP_LISTEN"},
    {"api-token", "SEATLEDGER_API_TOKENS"},
    {"signing-key", "SEATLEDGER_SIGNING_KEY_FILE"},
    {"trusted-key", "SEATLEDGER_TRUSTED_KEY_FILES"},
    {"consumer-group", "SEATLEDGER_CONSUMER_GROUP"},
    {"config", "SEATLEDGER_CONFIG"},
  };
  for (const auto& [name, env] : contract)
    EXPECT_EQ(spec_of(name).env, env) << name;
  EXPECT_EQ(spec_of("api-token").kind, option_kind::list);
  EXPECT_EQ(spec_of("trusted-key").kind, option_kind::list);
  EXPECT_TRUE(spec_of("api-token").secret);
  std::set<std::string> names;
  std::set<std::string> envs;
  for (const auto& s : serve_options()) {
    EXPECT_TRUE(names.insert(s.name).second) << "declared twice: " << s.name;
    EXPECT_TRUE(envs.insert(s.env).second) << "declared twice: " << s.env;
    EXPECT_EQ(s.env.rfind("SEATLEDGER_", 0), 0u) << s.env;
    EXPECT_FALSE(s.description.empty()) << s.name;
    // Every default passes its own validator.
    if (s.validate && !s.default_value.empty()) {
      EXPECT_FALSE(s.validate(s.default_value)) << s.name;
    }
  }
  auto defaults = ok({});
  EXPECT_EQ(defaults.text("http-listen"), "0.0.0.0:8080");
  EXPECT_EQ(defaults.text("consumer-group"), "seatledger");
  EXPECT_EQ(defaults.text("source"), "seatledger");
  EXPECT_EQ(defaults.text("kafka-bootstrap"), "");
  EXPECT_EQ(defaults.text("database-url"), "");
  EXPECT_EQ(defaults.text("topic-events"), "seatledger.events.v1");
  EXPECT_EQ(defaults.integer("batch-max-records"), 5000);
  EXPECT_EQ(defaults.integer("commit-connections"), 2);
  EXPECT_EQ(defaults.integer("commit-split-records"), 1000);
  EXPECT_EQ(defaults.duration("batch-linger"), 3ms);
  EXPECT_EQ(defaults.duration("dedup-window"), std::chrono::hours{24 * 7});
  EXPECT_EQ(defaults.duration("month-close-grace"), std::chrono::hours{1});
  EXPECT_EQ(defaults.duration("max-event-time-ahead"), std::chrono::hours{1});
  EXPECT_TRUE(defaults.list("api-token").empty());
  for (const auto& s : serve_options())
    EXPECT_EQ(defaults.origin(s.name), "default") << s.name;
}

TEST(config, flag_beats_environment_beats_file_beats_default_per_kind) {
  struct option_case {
    std::string name;
    std::string file_value, env_value, flag_value, default_value;
  };
  const std::vector<option_case> cases{
    {"source", "from-file", "from-env", "from-flag", "seatledger"}, // text
    {"batch-max-records", "11", "22", "33", "5000"},                // integer
    {"actor-idle-timeout", "1s", "2m", "3h", "5m"},                 // duration
    {"http-listen", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3",
     "0.0.0.0:8080"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    config_file file{"# a comment\n\n" + c.name + " = " + c.file_value + "\n"};
    const auto& env_name = spec_of(c.name).env;
    env_map env{{env_name, c.env_value}};
    env_map env_with_file{{env_name, c.env_value},
                          {"SEATLEDGER_CONFIG", file.path()}};
    flag_values with_config{{"config", {file.path()}}};
    flag_values all = with_config;
    all[c.name] = {c.flag_value};

    auto s = ok(all, env);
    EXPECT_EQ(s.text(c.name), c.flag_value);
    EXPECT_EQ(s.origin(c.name), "flag");
    EXPECT_EQ(s.described(c.name), "--" + c.name);
    s = ok(with_config, env);
    EXPECT_EQ(s.text(c.name), c.env_value);
    EXPECT_EQ(s.origin(c.name), "env");
    // Start-up's later checks (key files, the listen address) name the
    // variable too: "--trusted-key: …" left an operator who set
    // SEATLEDGER_TRUSTED_KEY_FILES looking for a flag.
    EXPECT_EQ(s.described(c.name),
              "--" + c.name + " (" + env_name + " from the environment)");
    s = ok({}, env_with_file); // the file named by SEATLEDGER_CONFIG
    EXPECT_EQ(s.text(c.name), c.env_value);
    s = ok(with_config);
    EXPECT_EQ(s.text(c.name), c.file_value);
    EXPECT_EQ(s.origin(c.name), "file");
    EXPECT_EQ(s.described(c.name), "--" + c.name + " (" + file.path() + ":3)");
    s = ok({}, {{"SEATLEDGER_CONFIG", file.path()}});
    EXPECT_EQ(s.text(c.name), c.file_value);
    EXPECT_EQ(s.origin(c.name), "file");
    s = ok({});
    EXPECT_EQ(s.text(c.name), c.default_value);
    EXPECT_EQ(s.origin(c.name), "default");
  }
  // The typed accessors read what won.
  config_file file{"batch-max-records = 11\nbatch-linger = 10m\n"};
  auto s = ok({{"config", {file.path()}}, {"batch-max-records", {"33"}}},
              {{"SEATLEDGER_BATCH_LINGER", "250ms"}});
  EXPECT_EQ(s.integer("batch-max-records"), 33);
  EXPECT_EQ(s.duration("batch-linger"), 250ms);
}

TEST(config, boolean_options_follow_the_same_precedence) {
  // No serve option is boolean today; the kind is checked on its own spec.
  const std::vector<option_spec> specs{
    {"config", "SEATLEDGER_CONFIG", "file", option_kind::text, "", nullptr},
    {"feature", "SEATLEDGER_FEATURE", "a switch", option_kind::boolean, "false",
     nullptr},
  };
  auto get = [&](const flag_values& f, const env_map& e) {
    auto r = resolve(specs, f, e);
    EXPECT_TRUE(std::holds_alternative<settings>(r));
    return std::get<settings>(r);
  };
  EXPECT_FALSE(get({}, {}).boolean("feature"));
  for (const auto* yes : {"true", "1", "yes"})
    EXPECT_TRUE(get({{"feature", {yes}}}, {}).boolean("feature")) << yes;
  config_file file{"feature = true\n"};
  flag_values with_file{{"config", {file.path()}}};
  EXPECT_TRUE(get(with_file, {}).boolean("feature"));
  EXPECT_EQ(get(with_file, {}).origin("feature"), "file");
  EXPECT_FALSE(
    get(with_file, {{"SEATLEDGER_FEATURE", "false"}}).boolean("feature"));
  auto both = with_file;
  both["feature"] = {"1"};
  auto s = get(both, {{"SEATLEDGER_FEATURE", "false"}});
  EXPECT_TRUE(s.boolean("feature"));
  EXPECT_EQ(s.origin("feature"), "flag");
}

TEST(config, list_options_repeat_as_flags_and_split_commas_in_the_environment) {
  const std::string a = std::string{token_a} + ":admin";
  const std::string b = std::string{token_b} + ":read";
  const std::string c = std::string{token_c} + ":read";
  // Flags: repeated.
  auto s = ok({{"api-token", {a, b}}});
  EXPECT_EQ(s.list("api-token"), (std::vector<std::string>{a, b}));
  EXPECT_EQ(s.origin("api-token"), "flag");
  // The variable: comma-separated, blanks trimmed, empty items dropped.
  s = ok({}, {{"SEATLEDGER_API_TOKENS", " " + a + " ,," + b + ","}});
  EXPECT_EQ(s.list("api-token"), (std::vector<std::string>{a, b}));
  EXPECT_EQ(s.origin("api-token"), "env");
  s = ok({}, {{"SEATLEDGER_TRUSTED_KEY_FILES", "/k/one.pem,/k/two.pem"},
              {"SEATLEDGER_KAFKA_PROPERTIES",
               "security.protocol=SASL_SSL,sasl.mechanism=PLAIN"}});
  EXPECT_EQ(s.list("trusted-key"),
            (std::vector<std::string>{"/k/one.pem", "/k/two.pem"}));
  EXPECT_EQ(s.list("kafka-property"),
            (std::vector<std::string>{"security.protocol=SASL_SSL",
                                      "sasl.mechanism=PLAIN"}));
  // A comma inside a value is written \, in the variable (the file and the
  // flag take it as it is): `debug=cgrp,topic` could not be set there.
  s = ok({}, {{"SEATLEDGER_KAFKA_PROPERTIES",
               R"(debug=cgrp\,topic,client.id=a\b)"}});
  EXPECT_EQ(s.list("kafka-property"),
            (std::vector<std::string>{"debug=cgrp,topic", R"(client.id=a\b)"}));
  // The file: one value per line, the line repeated.
  config_file file{"api-token = " + a + "\napi-token = " + b
                   + "\ntrusted-key = /k/file.pem\n"};
  flag_values with_file{{"config", {file.path()}}};
  s = ok(with_file);
  EXPECT_EQ(s.list("api-token"), (std::vector<std::string>{a, b}));
  EXPECT_EQ(s.origin("api-token"), "file");
  EXPECT_EQ(s.list("trusted-key"), (std::vector<std::string>{"/k/file.pem"}));
  // A token with two scopes was taken as admin without a word; the same
  // entry twice is harmless.
  auto msg = error_of({{"api-token", {a, std::string{token_a} + ":read"}}});
  EXPECT_EQ(msg, "invalid configuration: --api-token: a token is listed with "
                 "two scopes (read and admin)");
  EXPECT_FALSE(contains(msg, token_a)) << msg;
  EXPECT_TRUE(
    contains(error_of({}, {{"SEATLEDGER_API_TOKENS",
                            b + "," + std::string{token_b} + ":admin"}}),
             "SEATLEDGER_API_TOKENS"));
  EXPECT_EQ(ok({{"api-token", {a, a}}}).list("api-token").size(), 2u);
  // A higher source replaces the whole list; lists are never merged.
  s = ok(with_file, {{"SEATLEDGER_API_TOKENS", c}});
  EXPECT_EQ(s.list("api-token"), (std::vector<std::string>{c}));
  auto with_flag = with_file;
  with_flag["api-token"] = {b};
  s = ok(with_flag, {{"SEATLEDGER_API_TOKENS", c}});
  EXPECT_EQ(s.list("api-token"), (std::vector<std::string>{b}));
  EXPECT_EQ(s.list("trusted-key"), (std::vector<std::string>{"/k/file.pem"}));
  EXPECT_EQ(s.origin("trusted-key"), "file");
  // Unset: empty.
  EXPECT_TRUE(ok({}).list("kafka-property").empty());
}

TEST(config, file_syntax_comments_blanks_and_quotes) {
  config_file file{"# seatledger\n"
                   "   \n"
                   "  source   =   \"quoted source\"  \n"
                   "\tconsumer-group=group-1\r\n"
                   "database-url = host=db port=5432 dbname=x\n"};
  auto s = ok({{"config", {file.path()}}});
  EXPECT_EQ(s.text("source"), "quoted source");
  EXPECT_EQ(s.text("consumer-group"), "group-1");
  // Only the first '=' separates: values may contain '='.
  EXPECT_EQ(s.text("database-url"), "host=db port=5432 dbname=x");
  // A UTF-8 byte-order mark before the first line is not part of its name.
  config_file with_bom{"\xEF\xBB\xBFsource = after-a-bom\n"};
  EXPECT_EQ(ok({{"config", {with_bom.path()}}}).text("source"), "after-a-bom");
  // --config beats SEATLEDGER_CONFIG for choosing the file.
  config_file other{"source = other\n"};
  s = ok({{"config", {file.path()}}}, {{"SEATLEDGER_CONFIG", other.path()}});
  EXPECT_EQ(s.text("source"), "quoted source");
  EXPECT_EQ(s.origin("config"), "flag");
}

TEST(config, a_file_that_cannot_be_read_names_where_it_was_given) {
  config_file file{"source = s\n"};
  auto missing = file.path() + ".missing";
  auto directory = std::filesystem::path{file.path()}.parent_path().string();
  EXPECT_EQ(error_of({{"config", {missing}}}),
            "invalid configuration: --config: cannot read '" + missing + "'");
  EXPECT_EQ(error_of({}, {{"SEATLEDGER_CONFIG", missing}}),
            "invalid configuration: SEATLEDGER_CONFIG (environment): cannot "
            "read '"
              + missing + "'");
  EXPECT_EQ(error_of({}, {{"SEATLEDGER_CONFIG", directory}}),
            "invalid configuration: SEATLEDGER_CONFIG (environment): cannot "
            "read '"
              + directory + "'");
}

TEST(config, every_invalid_value_names_its_setting_in_one_line) {
  // A bad value for every option that has a validator; a new validated
  // option without an entry here fails the test.
  const std::map<std::string, std::string> bad{
    {"kafka-property", "novalue"},
    {"kafka-bootstrap", ""},
    {"database-url", "garbage"},
    {"http-listen", "nonsense"},
    {"api-token", "tiny:admin"},
    {"trusted-key", ""},
    {"consumer-group", ""},
    {"source", ""},
    {"topic-membership", "bad topic!"},
    {"topic-subscriptions", "bad/topic"},
    {"topic-catalog", ""},
    {"topic-deltas", "x y"},
    {"topic-events", "événements"},
    {"topic-dlq", std::string(250, 'd')},
    {"batch-max-records", "abc"},
    {"commit-connections", "17"},
    {"commit-split-records", "-5"},
    {"batch-linger", "5x"},
    {"poll-wait", "0ms"},
    {"actor-idle-timeout", "-1s"},
    {"month-close-grace", "1 h"},
    {"dedup-window", "7days"},
    {"max-event-time-ahead", "0s"},
    {"data-dir", ""},
    {"config", ""},
    {"signing-key", ""},
    {"replica-id", ""},
    {"embedded-partitions", "0"},
    {"embedded-brokers", "17"}, // dev-kafka's limit (1024 was accepted)
    {"log-level", "verbose"},
  };
  int checked = 0;
  for (const auto& spec : serve_options()) {
    if (!spec.validate)
      continue;
    SCOPED_TRACE(spec.name);
    auto it = bad.find(spec.name);
    ASSERT_NE(it, bad.end()) << "no invalid value to try for " << spec.name;
    const auto& value = it->second;
    ++checked;
    // As a flag: "invalid configuration: --name: …".
    auto msg = error_of({{spec.name, {value}}});
    EXPECT_EQ(msg.rfind("invalid configuration: --" + spec.name + ": ", 0), 0u)
      << msg;
    // From the environment: the variable is named too.
    msg = error_of({}, {{spec.env, value}});
    EXPECT_TRUE(contains(msg, "--" + spec.name + " (" + spec.env
                                + " from the environment): "))
      << msg;
    // From the file: file:line. (The file cannot name another file.)
    if (spec.name == "config")
      continue;
    config_file file{"# line 1\n" + spec.name + " = " + value + "\n"};
    msg = error_of({{"config", {file.path()}}});
    EXPECT_TRUE(contains(msg, "--" + spec.name + " (" + file.path() + ":2): "))
      << msg;
  }
  EXPECT_GE(checked, 20);
  // The reasons themselves.
  EXPECT_TRUE(contains(error_of({{"batch-max-records", {"abc"}}}),
                       "not a positive integer: 'abc'"));
  EXPECT_TRUE(contains(error_of({{"batch-max-records", {"0"}}}),
                       "not a positive integer"));
  EXPECT_TRUE(contains(error_of({{"http-listen", {"nonsense"}}}),
                       "not HOST:PORT: 'nonsense'"));
  EXPECT_TRUE(
    contains(error_of({{"http-listen", {"host:70000"}}}), "not HOST:PORT"));
  EXPECT_TRUE(contains(error_of({{"kafka-property", {"novalue"}}}),
                       "not KEY=VALUE: 'novalue'"));
  // As librdkafka reads them: an unknown property, a value it refuses
  // (not echoed: values may be secrets); a password is any text.
  auto unknown = error_of({{"kafka-property", {"bogus.prop=1"}}});
  EXPECT_TRUE(contains(unknown, "--kafka-property")) << unknown;
  EXPECT_TRUE(contains(unknown, "bogus.prop")) << unknown;
  auto refused
    = error_of({{"kafka-property", {"security.protocol=carrier_pigeon"}}});
  EXPECT_TRUE(contains(refused, "security.protocol")) << refused;
  EXPECT_FALSE(contains(refused, "carrier_pigeon")) << refused;
  EXPECT_EQ(ok({{"kafka-property",
                 {"sasl.password=s3cret", "security.protocol=SASL_SSL"}}})
              .list("kafka-property")
              .size(),
            2u);
  EXPECT_TRUE(contains(error_of({{"batch-linger", {"5x"}}}), "not a duration"));
  EXPECT_TRUE(
    contains(error_of({{"embedded-partitions", {"2000"}}}), "at most 1024"));
  EXPECT_TRUE(
    contains(error_of({{"commit-connections", {"17"}}}), "at most 16: '17'"));
  EXPECT_TRUE(contains(error_of({{"commit-connections", {"0"}}}),
                       "not a positive integer"));
  EXPECT_TRUE(contains(error_of({{"log-level", {"verbose"}}}), "'verbose'"));
  // A connection string libpq cannot parse, without echoing it (it may
  // hold a password); URIs, key=value pairs and unset are fine.
  auto bad_url
    = error_of({{"database-url", {"host=db password=s3cret-pw dbname"}}});
  EXPECT_TRUE(contains(bad_url, "not a PostgreSQL connection string"))
    << bad_url;
  EXPECT_FALSE(contains(bad_url, "s3cret-pw")) << bad_url;
  EXPECT_TRUE(
    contains(error_of({{"database-url", {"postgresql://db/x?nope=1"}}}),
             "--database-url"));
  for (const auto* url : {"postgresql://app:pw@db:5432/seatledger",
                          "host=db dbname=seatledger sslmode=require"})
    EXPECT_EQ(ok({{"database-url", {url}}}).text("database-url"), url);
  // Only unset means embedded: an empty value (a secret or template that
  // rendered nothing) would have run a replica on a private database or
  // an in-process Kafka cluster of its own, ready and consuming nothing.
  EXPECT_EQ(ok({}).text("database-url"), "");
  EXPECT_EQ(ok({}).text("kafka-bootstrap"), "");
  // Likewise an empty signing key (a throwaway key pair under ./var signed
  // licenses), configuration file (built-in defaults) or replica id.
  for (const auto* name : {"database-url", "kafka-bootstrap", "signing-key",
                           "config", "replica-id"}) {
    auto empty = error_of({{name, {""}}});
    EXPECT_TRUE(contains(empty, "empty; leave it unset")) << empty;
  }
  auto empty_env = error_of({}, {{"SEATLEDGER_KAFKA_BOOTSTRAP", ""}});
  EXPECT_TRUE(contains(empty_env, "SEATLEDGER_KAFKA_BOOTSTRAP")) << empty_env;
  for (const auto* variable :
       {"SEATLEDGER_SIGNING_KEY_FILE", "SEATLEDGER_CONFIG"}) {
    auto msg = error_of({}, {{variable, ""}});
    EXPECT_TRUE(contains(msg, variable)) << msg;
    EXPECT_TRUE(contains(msg, "empty; leave it unset")) << msg;
  }
  // Blank is empty where a value is required.
  for (const auto* name : {"consumer-group", "source"}) {
    auto blank = error_of({{name, {"  "}}});
    EXPECT_TRUE(contains(blank, "must not be empty or blank")) << blank;
  }
  // The service's own seat deltas carry --source, and its decoder takes
  // at most 256 bytes: a longer one dead-lettered every delta.
  EXPECT_EQ(ok({{"source", {std::string(256, 's')}}}).text("source").size(),
            256u);
  auto long_source = error_of({{"source", {std::string(257, 's')}}});
  EXPECT_TRUE(contains(long_source, "--source: longer than 256 bytes"))
    << long_source;
  // The coordinator's thread waits these out (a century was accepted, and
  // poll(2) never returned past 24.8 days).
  EXPECT_EQ(ok({{"poll-wait", {"10s"}}}).text("poll-wait"), "10s");
  for (const auto* name : {"poll-wait", "batch-linger"})
    for (const auto* value : {"11s", "30d"}) {
      auto long_wait = error_of({{name, {value}}});
      EXPECT_TRUE(
        contains(long_wait, std::string{"--"} + name + ": at most 10s"))
        << long_wait;
    }
  // A list variable set to nothing but separators or blanks rendered
  // nothing, as an empty single value does (no API tokens: every request
  // answered 401, with a warning only).
  for (const auto* value : {"", ", ,", " "}) {
    auto nothing = error_of({}, {{"SEATLEDGER_API_TOKENS", value}});
    EXPECT_TRUE(contains(nothing, "--api-token (SEATLEDGER_API_TOKENS from "
                                  "the environment): set but lists nothing"))
      << nothing;
  }
  // HOST:PORT with port 0 (any free port) is fine.
  EXPECT_EQ(ok({{"http-listen", {"127.0.0.1:0"}}}).text("http-listen"),
            "127.0.0.1:0");
}

// libpq checks these values only when it connects, so start-up took them
// for an unreachable server and retried for ever.
TEST(config, connection_option_values_libpq_checks_late_are_checked_at_start) {
  for (const auto* bad :
       {"host=db sslmode=bogus", "postgresql://db/x?sslmode=verify-all",
        "host=db port=abc", "host=a,b port=5432,abc", "host=db port=70000",
        "host=db connect_timeout=abc", "host=db keepalives_idle=-1",
        "host=db target_session_attrs=writable", "host=db gssencmode=yes",
        "host=db channel_binding=on"}) {
    auto msg = error_of({{"database-url", {bad}}});
    EXPECT_EQ(msg.rfind("invalid configuration: --database-url: connection "
                        "option ",
                        0),
              0u)
      << bad << ": " << msg;
  }
  EXPECT_TRUE(contains(error_of({{"database-url", {"host=db sslmode=bogus"}}}),
                       "sslmode='bogus': not one of"));
  // libpq's own reading of numbers (strtol: blanks, a sign) and lists.
  for (const auto* bad : {"host=db keepalives_count=-3", "host=a,b,c port=1,2",
                          "host=a,b hostaddr=10.0.0.1", "host=db port=' 0'"})
    EXPECT_TRUE(contains(error_of({{"database-url", {bad}}}),
                         "--database-url: connection option"))
      << bad;
  for (const auto* good :
       {"host=a,b port=5432,5433 sslmode=verify-full connect_timeout=10",
        "host=a,b port=,5433 target_session_attrs=read-write",
        "postgresql://u:p@db:5432/x?sslmode=prefer&keepalives=1",
        "host=/var/run/postgresql dbname=x gssencmode=disable",
        "host=a,b port='5432, 5433'", "host=db connect_timeout=-1",
        "host=db keepalives=+1 connect_timeout='10 '", "host=db port=000001",
        "host=a,b,c port=5432", "hostaddr=10.0.0.1,10.0.0.2 host=a,b",
        "postgresql://h1:5432,h2:5433/db", "postgresql://h1,h2:5433/db"})
    EXPECT_EQ(ok({{"database-url", {good}}}).text("database-url"), good);
}

TEST(config, kafka_properties_the_contract_depends_on_are_refused) {
  // Operator properties win over the service's, so these broke
  // co-partitioning, crash safety or the gap counter without a word.
  for (const auto* reserved :
       {"partitioner=random", "group.id=other", "enable.auto.commit=true",
        "auto.offset.reset=latest", "enable.idempotence=false", "acks=1",
        "partition.assignment.strategy=range", "bootstrap.servers=h:1",
        // the same property for every topic
        "topic.partitioner=random", "topic.acks=0",
        "topic.auto.offset.reset=earliest"}) {
    auto msg = error_of({{"kafka-property", {reserved}}});
    EXPECT_TRUE(contains(msg, "--kafka-property: librdkafka property ")) << msg;
    EXPECT_TRUE(contains(msg, "is not configurable")) << msg;
  }
  EXPECT_TRUE(contains(error_of({{"kafka-property", {"group.id=x"}}}),
                       "use --consumer-group"));
  // The service's own value may be repeated, as hardened configurations do.
  EXPECT_TRUE(contains(error_of({{"kafka-property", {"acks=1"}}}),
                       "(only all is accepted)"));
  for (const auto* passed :
       {"security.protocol=SASL_SSL", "linger.ms=5", "session.timeout.ms=3000",
        "ssl.ca.location=/etc/ca.pem", "acks=all", "acks=-1",
        "enable.idempotence=true", "partitioner=murmur2_random",
        "topic.partitioner=murmur2_random", "isolation.level=read_committed",
        "partition.assignment.strategy=cooperative-sticky"})
    EXPECT_EQ(ok({{"kafka-property", {passed}}}).list("kafka-property").size(),
              1u);
}

TEST(config, kafka_bootstrap_is_a_list_of_host_and_port) {
  // librdkafka took a malformed entry without a word and logged, for ever,
  // that it could not resolve it: a replica that never got ready.
  for (const auto* good :
       {"broker-1:9092", "broker-1", "b1:9092,b2:9093", "b1:9092, b2:9093",
        "plaintext://h:1", "PLAINTEXT://h:1,h2:2", "[::1]:9092", "[fe80::1]",
        "[fe80::1%lo]:9092", "10.0.0.7:1"})
    EXPECT_EQ(ok({{"kafka-bootstrap", {good}}}).text("kafka-bootstrap"), good);
  // A protocol is the client's security.protocol (librdkafka's names, any
  // case); another one left the replica with no broker, never ready.
  for (auto [bootstrap, security] :
       std::vector<std::pair<const char*, const char*>>{
         {"SASL_SSL://kafka.example.com:9094", "SASL_SSL"},
         {"ssl://h:9093", "ssl"},
         {"sasl_plaintext://h", "SASL_PLAINTEXT"}}) {
    auto property = std::string{"security.protocol="} + security;
    EXPECT_EQ(
      ok({{"kafka-bootstrap", {bootstrap}}, {"kafka-property", {property}}})
        .text("kafka-bootstrap"),
      bootstrap);
    auto msg = error_of({{"kafka-bootstrap", {bootstrap}}});
    EXPECT_TRUE(contains(msg, "--kafka-bootstrap: ")) << msg;
    EXPECT_TRUE(contains(msg, "but security.protocol is plaintext")) << msg;
  }
  auto mismatch
    = error_of({{"kafka-bootstrap", {"SSL://h:9093"}},
                {"kafka-property", {"security.protocol=sasl_ssl"}}});
  EXPECT_TRUE(contains(mismatch, "names protocol ssl, but security.protocol "
                                 "is sasl_ssl"))
    << mismatch;
  EXPECT_FALSE(bootstrap_protocol_problem("h:1,plaintext://h2:2", {}));
  EXPECT_TRUE(bootstrap_protocol_problem("h:1,ssl://h2:2", {}));
  for (const auto* bad :
       {"host:notaport", "host:", ":9092", "host:0", "host:65536", "b1:9092,",
        "b1:9092,,b2:9092", "::1:9092", "[::1", "[::1]9092", "a b:9092",
        // librdkafka knows four protocols; brackets hold an IPv6 address
        "bogus://h:9092", "http://h:9092", "[zz]:1", "[10.0.0.1]:9092"}) {
    auto msg = error_of({{"kafka-bootstrap", {bad}}});
    EXPECT_TRUE(contains(msg, "--kafka-bootstrap")) << bad << ": " << msg;
    EXPECT_TRUE(contains(msg, "not HOST[:PORT]")) << bad << ": " << msg;
  }
}

TEST(config, unknown_settings_are_errors) {
  // A SEATLEDGER_* variable that is no option (a typo) ...
  auto msg = error_of({}, {{"SEATLEDGER_SOURCES", "x"}});
  EXPECT_TRUE(contains(msg, "SEATLEDGER_SOURCES")) << msg;
  EXPECT_TRUE(contains(msg, "unknown setting")) << msg;
  // ... while other variables are none of its business.
  EXPECT_EQ(ok({}, {{"PATH", "/bin"}, {"SEATLEDGERX", "1"}}).text("source"),
            "seatledger");
  // Nor are the variables Kubernetes sets for a Service named seatledger.
  EXPECT_EQ(ok({}, {{"SEATLEDGER_SERVICE_HOST", "10.0.0.7"},
                    {"SEATLEDGER_SERVICE_PORT", "8080"},
                    {"SEATLEDGER_SERVICE_PORT_HTTP", "8080"},
                    {"SEATLEDGER_PORT", "tcp://10.0.0.7:8080"},
                    {"SEATLEDGER_PORT_8080_TCP", "tcp://10.0.0.7:8080"},
                    {"SEATLEDGER_PORT_8080_TCP_ADDR", "10.0.0.7"}})
              .text("source"),
            "seatledger");
  // A look-alike that is no service link is still a typo.
  EXPECT_TRUE(
    contains(error_of({}, {{"SEATLEDGER_PORTS", "1"}}), "SEATLEDGER_PORTS"));
  // A flag that is no option.
  msg = error_of({{"no-such-flag", {"1"}}});
  EXPECT_TRUE(contains(msg, "--no-such-flag: unknown setting")) << msg;
  // A file key that is no option, with file and line.
  config_file file{"# comment\nsource = x\n\nno-such-option = 1\n"};
  msg = error_of({{"config", {file.path()}}});
  EXPECT_TRUE(contains(msg, file.path() + ":4")) << msg;
  EXPECT_TRUE(contains(msg, "unknown setting 'no-such-option'")) << msg;
  // `config` inside a file is not a setting there.
  config_file nested{"config = /etc/other.conf\n"};
  msg = error_of({{"config", {nested.path()}}});
  EXPECT_TRUE(contains(msg, nested.path() + ":1")) << msg;
  // A line that is not `name = value`.
  config_file garbage{"source = x\njust some words\n"};
  msg = error_of({{"config", {garbage.path()}}});
  EXPECT_TRUE(contains(msg, garbage.path() + ":2: not a 'name = value' line"))
    << msg;
  // A file that cannot be read, from the flag or the variable.
  msg = error_of({{"config", {"/nonexistent/seatledger.conf"}}});
  EXPECT_TRUE(contains(msg, "--config")) << msg;
  EXPECT_TRUE(contains(msg, "/nonexistent/seatledger.conf")) << msg;
  msg = error_of({}, {{"SEATLEDGER_CONFIG", "/nonexistent/other.conf"}});
  EXPECT_TRUE(contains(msg, "/nonexistent/other.conf")) << msg;
}

TEST(config, a_single_valued_option_given_twice_is_an_error) {
  auto msg = error_of({{"source", {"a", "b"}}});
  EXPECT_EQ(msg, "invalid configuration: --source: given more than once");
  config_file file{"source = a\n# between\nsource = b\n"};
  msg = error_of({{"config", {file.path()}}});
  EXPECT_TRUE(contains(msg, "--source (" + file.path() + ":3)")) << msg;
  EXPECT_TRUE(contains(msg, "given more than once")) << msg;
  // A flag given twice wins over the file given twice: only what is used
  // counts, and the flag is used.
  EXPECT_EQ(ok({{"config", {file.path()}}, {"source", {"c"}}}).text("source"),
            "c");
  // Lists may repeat.
  EXPECT_EQ(
    ok({{"trusted-key", {"/a.pem", "/b.pem"}}}).list("trusted-key").size(), 2u);
}

TEST(config, each_topic_needs_its_own_name) {
  // The output topic set to an input topic started, and the service would
  // have read its own events back as input.
  auto msg = error_of({{"topic-events", {"seatledger.membership.v1"}}});
  EXPECT_EQ(msg, "invalid configuration: --topic-events: "
                 "'seatledger.membership.v1' is the --topic-membership topic "
                 "already; each topic needs its own name");
  msg = error_of({}, {{"SEATLEDGER_TOPIC_DLQ", "shared"},
                      {"SEATLEDGER_TOPIC_CATALOG", "shared"}});
  EXPECT_TRUE(contains(msg, "SEATLEDGER_TOPIC_DLQ")) << msg;
  EXPECT_TRUE(contains(msg, "the --topic-catalog topic already")) << msg;
  EXPECT_EQ(ok({{"topic-events", {"events.v2"}}}).text("topic-events"),
            "events.v2");
}

TEST(config, api_tokens_never_appear_in_errors) {
  const std::string secret = "Sup3rS3cretT0kenValue";
  const std::vector<std::string> bad_entries{
    secret + ":reed",                       // bad scope
    secret,                                 // no scope
    secret + ":",                           // empty scope
    ":" + secret,                           // empty token, secret as scope
    "Sup3r:admin",                          // too short
    secret + ":admin," + secret + "x:read", // a list where one token belongs
    "Sup3r S3cret T0ken Value:admin",       // not a bearer token
    "Sup3r:S3cretT0kenValue12",             // a colon inside, no scope
  };
  for (const auto& entry : bad_entries) {
    SCOPED_TRACE(entry);
    auto check = [&](const std::string& msg) {
      EXPECT_FALSE(contains(msg, "Sup3r")) << msg;
      EXPECT_FALSE(contains(msg, "S3cret")) << msg;
      EXPECT_FALSE(contains(msg, "T0ken")) << msg;
      EXPECT_TRUE(contains(msg, "--api-token")) << msg;
    };
    check(error_of({{"api-token", {entry}}}));
    config_file file{"api-token = " + entry + "\n"};
    check(error_of({{"config", {file.path()}}}));
    // The variable splits at commas: each piece is checked on its own.
    if (entry.find(',') == std::string::npos)
      check(error_of({}, {{"SEATLEDGER_API_TOKENS", entry}}));
  }
  // A valid token next to an invalid one: neither is echoed.
  auto msg = error_of({}, {{"SEATLEDGER_API_TOKENS",
                            std::string{token_a} + ":admin,short:read"}});
  EXPECT_FALSE(contains(msg, token_a)) << msg;
  EXPECT_FALSE(contains(msg, "short:")) << msg;
  EXPECT_TRUE(contains(msg, "SEATLEDGER_API_TOKENS")) << msg;
  // Tokens of 16 characters and more, of bearer-token characters, are fine.
  auto s = ok(
    {{"api-token", {"0123456789abcdef:read", "A-._~+/=bcdefghijklm:admin"}}});
  EXPECT_EQ(s.list("api-token").size(), 2u);
}

TEST(config, durations_parse) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("10m"), std::chrono::minutes{10});
  EXPECT_EQ(parse_duration("1h"), std::chrono::hours{1});
  EXPECT_EQ(parse_duration("7d"), std::chrono::hours{7 * 24});
  EXPECT_EQ(parse_duration("0s"), 0ms); // parses; the options refuse 0
  EXPECT_EQ(parse_duration("36500d"), std::chrono::hours{36500 * 24});
  // A bare number has no unit: it was taken as milliseconds, so
  // `--dedup-window 604800` meant as seconds was about 10 minutes.
  for (const auto* bad :
       {"100", "604800", "0", "5x", "", "-1s", "s", "1.5s", " 5s", "5s ", "5 s",
        "5sec", "1h30m", "ms", "9999999999999s",
        // would overflow milliseconds and wrap around
        "213503982335d", "36601d"})
    EXPECT_FALSE(parse_duration(bad)) << "'" << bad << "'";
  // A duration option refuses zero and garbage, naming the setting.
  EXPECT_TRUE(contains(error_of({{"poll-wait", {"0s"}}}), "--poll-wait"));
  EXPECT_TRUE(contains(error_of({{"poll-wait", {"-1s"}}}), "--poll-wait"));
  auto bare = error_of({{"dedup-window", {"604800"}}});
  EXPECT_TRUE(contains(bare, "--dedup-window: not a duration with its unit"))
    << bare;
  // A value with its unit is told what else is wrong with it (an audit
  // was told "not a duration with its unit" of each of these).
  auto zero = error_of({{"month-close-grace", {"0s"}}});
  EXPECT_TRUE(contains(zero, "--month-close-grace: must be longer than zero: "
                             "'0s'"))
    << zero;
  auto fraction = error_of({{"batch-linger", {"1.5s"}}});
  EXPECT_TRUE(contains(fraction, "--batch-linger: a whole number with its "
                                 "unit, such as 1500ms for 1.5s: '1.5s'"))
    << fraction;
  auto long_ago = error_of({{"dedup-window", {"100000d"}}});
  EXPECT_TRUE(contains(long_ago,
                       "--dedup-window: too long (at most a century, in at "
                       "most twelve digits): '100000d'"))
    << long_ago;
  auto twelve_digits = error_of({{"dedup-window", {"9999999999999s"}}});
  EXPECT_TRUE(contains(twelve_digits, "too long")) << twelve_digits;
  EXPECT_EQ(
    ok({{"actor-idle-timeout", {"90s"}}}).duration("actor-idle-timeout"), 90s);
}
