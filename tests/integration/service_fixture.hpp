#pragma once

// A running `seatledger serve` for tests that talk to it the way its users
// do: commands on Kafka (real protocol, librdkafka's mock cluster in this
// process), events read back from seatledger.events.v1, the HTTP API with
// bearer tokens, and the `seatledger` CLI. PostgreSQL is a scratch database
// of the pg_virtualenv server; the signing key pair is generated into a
// temporary directory. Everything is removed again at the end.

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <httplib.h>
#include <memory>
#include <optional>
#include <set>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/crypto/keyring.hpp"
#include "domain/time.hpp"
#include "messages/service_error.hpp"
#include "pg_fixture.hpp"
#include "service_harness.hpp"

extern char** environ;

namespace seatledger::test {

inline const std::vector<std::string>& service_topic_names() {
  static const std::vector<std::string> topics{
    "seatledger.membership.v1", "seatledger.subscriptions.v1",
    "seatledger.catalog.v1",    "seatledger.internal.seat-deltas.v1",
    "seatledger.events.v1",     "seatledger.dlq.v1"};
  return topics;
}

constexpr const char* membership_topic = "seatledger.membership.v1";
constexpr const char* subscriptions_topic = "seatledger.subscriptions.v1";
constexpr const char* catalog_topic = "seatledger.catalog.v1";
constexpr const char* events_topic = "seatledger.events.v1";

constexpr const char* service_admin_token = "svc-admin-token-0123456789";
constexpr const char* service_read_token = "svc-read-token-0123456789";

/// Now plus `offset`, as RFC 3339 UTC (whole seconds).
inline std::string rfc3339_from_now(std::chrono::seconds offset) {
  using namespace std::chrono;
  auto s = duration_cast<seconds>(system_clock::now().time_since_epoch())
           + offset;
  return domain::format_rfc3339(
    domain::timestamp::from_micros(duration_cast<microseconds>(s).count()));
}

/// A structured-mode CloudEvent.
inline std::string cloud_event(const std::string& type, const std::string& id,
                               const std::string& time,
                               const nlohmann::json& data,
                               const std::string& source = "test-billing") {
  return nlohmann::json{{"specversion", "1.0"}, {"id", id},
                        {"source", source},     {"type", type},
                        {"time", time},         {"data", data}}
    .dump();
}

/// A catalog rate plan as the billing system publishes it: tier and
/// deployment on the base_product charge, features on the plan.
inline std::string rate_plan_event(const std::string& plan_id,
                                   const std::string& tier,
                                   const std::vector<std::string>& features,
                                   const std::string& event_id) {
  nlohmann::json data = {
    {"product", {{"id", "prod-" + plan_id}, {"name", "GitLab " + tier}}},
    {"rate_plan",
     {{"id", plan_id},
      {"name", tier + " - 1 Year"},
      {"custom_fields",
       {{"CDotAccessible__c", true},
        {"CDotActions__c",
         {"initial_purchase", "additional_purchase", "renew"}},
        {"CDotPlanStatus__c", "active"},
        {"CDotIsTrueUp__c", false},
        {"CDotIsUsPubSec__c", false},
        {"CDotCommunityType__c", "not_applicable"},
        {"Features__c", features}}}}},
    {"charges",
     {{{"id", plan_id + "-seat"},
       {"name", tier + " - 1 Year - Seat"},
       {"billing_period", "annual"},
       {"custom_fields",
        {{"CDotPlanType__c", "base_product"},
         {"ChargeTier__c", tier},
         {"ChargeDeployment__c", "Self-Managed"},
         {"BillingPeriod", "annual"}}}},
      {{"id", plan_id + "-minutes"},
       {"name", "Compute minutes"},
       {"billing_period", "12"},
       {"custom_fields",
        {{"CDotPlanType__c", "ci_minutes"},
         {"ChargeTier__c", nullptr},
         {"ChargeDeployment__c", "Not Applicable"}}}}}},
  };
  return cloud_event("seatledger.catalog.rate_plan.upserted", event_id,
                     rfc3339_from_now(std::chrono::hours{-24 * 30}), data,
                     "test-catalog");
}

/// `create` data for a PRIMARY instance with a Salesforce account.
inline nlohmann::json
create_data(const std::string& subscription_id, const std::string& plan_id,
            std::int64_t seats, const std::string& start,
            const std::string& end, const std::string& domain) {
  return {{"subscription_id", subscription_id},
          {"display_name", "Customer " + subscription_id},
          {"customer",
           {{"salesforce_account_id", "0014x00001AbCdEAAV"},
            {"salesforce_subscription_id", "a1B4x000003XyZqEAK"}}},
          {"instance", {{"domain", domain}, {"type", "PRIMARY"}}},
          {"plan_id", plan_id},
          {"seats", seats},
          {"term", {{"start", start}, {"end", end}}},
          {"trial", false}};
}

/// The lines of a program's output (a last line without '\n' included).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  for (auto c : text) {
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line.push_back(c);
    }
  }
  if (!line.empty())
    lines.push_back(line);
  return lines;
}

/// The message of one JSON log line ("" when the line is not one).
inline std::string log_message(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("message") || !j["message"].is_string())
    return {};
  return j["message"].get<std::string>();
}

/// serve's stderr is its log, one JSON object a line (a line that is not
/// one fails the test): the messages of the lines at level error that
/// start with `prefix`.
inline std::vector<std::string> logged_errors(const std::string& err,
                                              const std::string& prefix) {
  std::vector<std::string> messages;
  for (const auto& line : lines_of(err)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) {
      ADD_FAILURE() << "not a JSON log line: " << line;
      continue;
    }
    auto message = j.value("message", "");
    if (j.value("level", "") == "error" && message.rfind(prefix, 0) == 0)
      messages.push_back(message);
  }
  return messages;
}

/// A temporary directory, removed with everything in it at the end.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "seatledger_test")
      : path_(std::filesystem::temp_directory_path() / unique_name(prefix)) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name) const {
    return (path_ / name).string();
  }
  std::string path() const {
    return path_.string();
  }

private:
  std::filesystem::path path_;
};

/// The running service and what talks to it.
class running_service {
public:
  /// `env`: variables for the child (SEATLEDGER_* of the test's own
  /// environment are never passed on).
  explicit running_service(std::vector<std::string> extra_args = {},
                           std::map<std::string, std::string> env = {}) {
    db_ = std::make_unique<scratch_database>();
    auto cluster = kafka::mock_cluster::start(1, service_topic_names(), 4);
    if (!cluster)
      throw std::runtime_error("no mock cluster: " + describe(cluster.error()));
    cluster_ = std::move(*cluster);
    kafka_ = std::make_unique<kafka_io>(cluster_->bootstrap_servers());
    key_dir_ = (std::filesystem::temp_directory_path()
                / unique_name("seatledger_svc_keys"))
                 .string();
    auto files = crypto::generate_key_pair(key_dir_);
    if (!files)
      throw std::runtime_error("no key pair: " + describe(files.error()));
    signing_key_ = files->signing_key_file;
    public_key_ = files->public_key_file;
    try {
      start(std::move(extra_args), std::move(env));
    } catch (...) {
      child_.reset(); // killed, if it runs
      std::error_code ec;
      std::filesystem::remove_all(key_dir_, ec);
      throw;
    }
  }

  running_service(const running_service&) = delete;
  running_service& operator=(const running_service&) = delete;

  ~running_service() {
    stop();
    kafka_.reset();
    cluster_.reset();
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(key_dir_, ec);
  }

  /// Starts the service (again) on the same database, cluster and keys,
  /// as replica `replica-N`, and waits until it owns partitions and is
  /// ready.
  void start(std::vector<std::string> extra_args = {},
             std::map<std::string, std::string> env = {}) {
    stop();
    replica_ = "replica-" + std::to_string(++starts_);
    std::vector<std::string> args{
      seatledger_binary(), "serve",
      "--database-url",    db_->conninfo(),
      "--kafka-bootstrap", cluster_->bootstrap_servers(),
      "--signing-key",     signing_key_,
      "--replica-id",      replica_,
      "--consumer-group",  group(),
      "--http-listen",     "127.0.0.1:0",
      "--poll-wait",       "20ms",
      "--api-token",       std::string{service_admin_token} + ":admin",
      "--api-token",       std::string{service_read_token} + ":read"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    env.insert(synthetic_history_env.begin(), synthetic_history_env.end());
    child_ = std::make_unique<child_process>(args, std::move(env));
    auto url = child_->wait_for_value("HTTP", std::chrono::seconds{90});
    if (!url)
      throw std::runtime_error("service did not start: "
                               + child_->stderr_tail());
    url_ = *url;
    auto colon = url_.rfind(':');
    client_ = std::make_unique<httplib::Client>(
      "127.0.0.1", std::stoi(url_.substr(colon + 1)));
    client_->set_read_timeout(std::chrono::seconds{60});
    client_->set_connection_timeout(std::chrono::seconds{10});
    database_probe probe{db_->conninfo()};
    if (!wait_until(
          [&] {
            if (probe.leases_of(group(), replica_) == 0)
              return false;
            auto res = client_->Get("/readyz");
            return res && res->status == 200;
          },
          std::chrono::seconds{90}, std::chrono::milliseconds{100}))
      throw std::runtime_error("service not ready: " + child_->stderr_tail());
  }

  /// The consumer group of the current run: a fresh one per start (a
  /// restart does not wait for the group to settle after the previous
  /// member left; the positions in PostgreSQL belong to the group, so the
  /// new run reads the topics from their start and skips what was applied).
  std::string group() const {
    return "seatledger-svc-test-" + std::to_string(starts_);
  }

  /// SIGTERM; the service must drain and exit 0.
  void stop() {
    if (!child_)
      return;
    client_.reset();
    child_->signal(SIGTERM);
    auto status = child_->wait(std::chrono::seconds{60});
    EXPECT_EQ(status, std::optional<int>{0}) << child_->stderr_tail();
    child_.reset();
  }

  /// What the running service has logged (its stderr), up to `bytes`.
  std::string log_tail(std::size_t bytes = 1 << 20) const {
    return child_ ? child_->stderr_tail(bytes) : std::string{};
  }

  httplib::Result get(const std::string& path,
                      const char* token = service_read_token) {
    return client_->Get(path.c_str(), auth(token));
  }

  httplib::Result post(const std::string& path, const std::string& body,
                       const char* token = service_admin_token,
                       const httplib::Headers& extra_headers = {}) {
    auto headers = auth(token);
    headers.insert(extra_headers.begin(), extra_headers.end());
    return client_->Post(path.c_str(), headers, body, "application/json");
  }

  httplib::Result del(const std::string& path,
                      const char* token = service_admin_token) {
    return client_->Delete(path.c_str(), auth(token));
  }

  void publish(const std::string& topic, const std::string& key,
               const std::string& value) {
    kafka_->publish(topic, {{key, value}});
  }

  /// Every event on seatledger.events.v1 so far, parsed, copies (same id)
  /// dropped, in per-key order.
  std::vector<nlohmann::json> events() {
    std::vector<nlohmann::json> result;
    std::set<std::string> ids;
    for (const auto& r : kafka_->read_all(events_topic)) {
      auto e = nlohmann::json::parse(r.value);
      e["_key"] = r.key;
      if (ids.insert(e.at("id").get<std::string>()).second)
        result.push_back(std::move(e));
    }
    return result;
  }

  /// The events of one subscription.
  std::vector<nlohmann::json> events_of(const std::string& subscription_id) {
    std::vector<nlohmann::json> result;
    for (auto& e : events())
      if (e["_key"] == subscription_id)
        result.push_back(std::move(e));
    return result;
  }

  /// Waits until the subscription's events include `count` of `type`;
  /// returns those of that type.
  std::vector<nlohmann::json> wait_for(const std::string& subscription_id,
                                       const std::string& type,
                                       std::size_t count = 1) {
    std::vector<nlohmann::json> found;
    wait_until(
      [&] {
        found.clear();
        for (auto& e : events_of(subscription_id))
          if (e["type"] == type)
            found.push_back(std::move(e));
        return found.size() >= count;
      },
      std::chrono::seconds{60}, std::chrono::milliseconds{100});
    EXPECT_GE(found.size(), count) << "waiting for " << count << " " << type
                                   << " of " << subscription_id << "\n"
                                   << child_->stderr_tail();
    return found;
  }

  kafka::mock_cluster& cluster() {
    return *cluster_;
  }

  const std::string& url() const {
    return url_;
  }
  const std::string& public_key_file() const {
    return public_key_;
  }
  const std::string& signing_key_file() const {
    return signing_key_;
  }
  const std::string& key_dir() const {
    return key_dir_;
  }
  std::string conninfo() const {
    return db_->conninfo();
  }
  kafka_io& kafka() {
    return *kafka_;
  }
  std::string bootstrap() const {
    return cluster_->bootstrap_servers();
  }
  child_process& process() {
    return *child_;
  }

  static httplib::Headers auth(const char* token) {
    if (!token)
      return {};
    return {{"Authorization", std::string{"Bearer "} + token}};
  }

private:
  std::unique_ptr<scratch_database> db_;
  std::unique_ptr<kafka::mock_cluster> cluster_;
  std::unique_ptr<kafka_io> kafka_;
  std::string key_dir_;
  std::string signing_key_;
  std::string public_key_;
  std::string replica_;
  int starts_ = 0;
  std::unique_ptr<child_process> child_;
  std::string url_;
  std::unique_ptr<httplib::Client> client_;
};

/// What a finished command printed.
struct cli_result {
  /// Exit status, 128 + signal, or nothing when it did not end in time.
  std::optional<int> status;
  std::string out;
  std::string err;
};

/// Runs `seatledger ARGS…` to its end (stdin empty; SEATLEDGER_* variables
/// of the test's environment not passed on, `env` added).
inline cli_result
run_cli(std::vector<std::string> args,
        const std::map<std::string, std::string>& env = {},
        std::chrono::milliseconds timeout = std::chrono::seconds{60}) {
  auto dir = std::filesystem::temp_directory_path()
             / unique_name("seatledger_cli");
  std::filesystem::create_directories(dir);
  auto out_file = (dir / "stdout").string();
  auto err_file = (dir / "stderr").string();
  args.insert(args.begin(), seatledger_binary());
  std::vector<std::string> env_strings;
  for (auto** e = environ; e && *e; ++e) {
    std::string entry{*e};
    auto name = entry.substr(0, entry.find('='));
    if (env.count(name) == 0 && name.rfind("SEATLEDGER_", 0) != 0)
      env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  auto out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  auto err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  auto in_fd = ::open("/dev/null", O_RDONLY);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  ::close(in_fd);
  cli_result r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      r.status = WIFEXITED(status) ? WEXITSTATUS(status)
                                   : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  auto slurp = [](const std::string& path) {
    std::ifstream in{path};
    return std::string{std::istreambuf_iterator<char>{in},
                       std::istreambuf_iterator<char>{}};
  };
  r.out = slurp(out_file);
  r.err = slurp(err_file);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

/// Writes `text` to `path`.
inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
}

/// `{"error": {"code": …}}` of an answer.
inline std::string error_code_of(const httplib::Result& res) {
  if (!res)
    return "<no answer>";
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (body.is_discarded() || !body.contains("error"))
    return "<not an error body: " + res->body + ">";
  return body["error"].value("code", "<no code>");
}

/// "<status> <body>" for failure messages.
inline std::string describe_answer(const httplib::Result& res) {
  if (!res)
    return "no answer: " + httplib::to_string(res.error());
  return std::to_string(res->status) + " " + res->body;
}

} // namespace seatledger::test
