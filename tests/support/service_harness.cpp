#include "service_harness.hpp"

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include "adapters/crypto/keyring.hpp"
#include "messages/service_error.hpp"

extern char** environ;

namespace seatledger::test {

using namespace std::chrono;

std::string seatledger_binary() {
  // A copy elsewhere, for a long loop beside a rebuild of the tree.
  if (const char* copy = std::getenv("SEATLEDGER_TEST_BINARY"); copy && *copy)
    return copy;
  return SEATLEDGER_BINARY;
}

child_process::child_process(std::vector<std::string> args,
                             std::map<std::string, std::string> env,
                             output stdout_to) {
  static int counter = 0;
  stderr_file_ = "/tmp/seatledger-test-" + std::to_string(getpid()) + "-"
                 + std::to_string(++counter) + ".stderr";
  int out[2];
  if (pipe(out) != 0)
    throw std::runtime_error("pipe failed");
  // Build argv and envp before forking (no allocation after fork).
  std::vector<std::string> env_strings;
  for (auto** e = environ; e && *e; ++e) {
    std::string entry{*e};
    auto name = entry.substr(0, entry.find('='));
    // A test's child never inherits the developer's seatledger settings.
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
  auto err_fd = ::open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                       0644);
  auto parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // A test process that dies without its destructors (a crash, or SIGPIPE
    // when its output is piped into `head`) takes its children with it, so
    // no orphaned service keeps running into later tests and benchmarks.
    // (The signal follows the forking thread: tests fork from their main
    // thread.)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(out[1], STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    close(out[0]);
    close(out[1]);
    close(err_fd);
    // The child must get SIGTERM/SIGINT even if the test blocked them.
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    // Nor does it inherit an ignored SIGPIPE from the test runner (a test
    // that SIGPIPE must not end the child could not fail otherwise).
    ::signal(SIGPIPE, SIG_DFL);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  close(err_fd);
  if (stdout_to == output::closed_pipe) {
    close(out[0]);
    return;
  }
  stdout_fd_ = out[0];
  reader_ = std::thread{[this] {
    std::string pending;
    char buf[4096];
    for (;;) {
      auto n = ::read(stdout_fd_, buf, sizeof(buf));
      if (n <= 0)
        break;
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::lock_guard<std::mutex> guard{mutex_};
        lines_.push_back(pending.substr(0, nl));
        pending.erase(0, nl + 1);
      }
    }
  }};
}

child_process::~child_process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(seconds{10});
  }
  if (reader_.joinable())
    reader_.join();
  if (stdout_fd_ >= 0)
    ::close(stdout_fd_);
  ::unlink(stderr_file_.c_str());
}

std::optional<std::string>
child_process::wait_for_value(const std::string& name,
                              std::chrono::milliseconds timeout) {
  std::optional<std::string> result;
  wait_until(
    [&] {
      {
        std::lock_guard<std::mutex> guard{mutex_};
        for (const auto& line : lines_)
          if (line.rfind(name + "=", 0) == 0) {
            result = line.substr(name.size() + 1);
            return true;
          }
      }
      return !running(); // it exited: the line will never come
    },
    timeout);
  return result;
}

void child_process::signal(int sig) {
  if (pid_ > 0)
    ::kill(pid_, sig);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (status_)
    return status_;
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    auto r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                  : 128 + WTERMSIG(status);
      return status_;
    }
    if (steady_clock::now() > deadline)
      return std::nullopt;
    std::this_thread::sleep_for(milliseconds{20});
  }
}

bool child_process::running() {
  if (status_)
    return false;
  return !wait(milliseconds{0});
}

std::string child_process::stderr_tail(std::size_t bytes) const {
  std::ifstream in{stderr_file_};
  std::string text{std::istreambuf_iterator<char>{in},
                   std::istreambuf_iterator<char>{}};
  if (text.size() > bytes)
    text = text.substr(text.size() - bytes);
  return text;
}

bool wait_until(const std::function<bool()>& done,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds every) {
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    if (done())
      return true;
    if (steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(every);
  }
}

std::map<std::string, std::string> header_map(const kafka::record& r) {
  std::map<std::string, std::string> result;
  for (const auto& [name, value] : r.headers)
    result.emplace(name, value.value_or(""));
  return result;
}

kafka_io::kafka_io(std::string bootstrap,
                   std::map<std::string, std::string> producer_properties)
    : bootstrap_(std::move(bootstrap)) {
  kafka::client_config cfg;
  cfg.bootstrap_servers = bootstrap_;
  cfg.properties = std::move(producer_properties);
  auto p = kafka::producer::make(cfg);
  if (!p)
    throw std::runtime_error("cannot create producer: " + describe(p.error()));
  producer_ = std::move(*p);
}

void kafka_io::publish(const std::string& topic,
                       const std::vector<outgoing>& records) {
  publish_async(topic, records);
  flush();
}

void kafka_io::publish_async(const std::string& topic,
                             const std::vector<outgoing>& records) {
  for (const auto& r : records) {
    using bytes = std::optional<std::string_view>;
    static const kafka::record_headers structured{
      {"content-type", "application/cloudevents+json"}};
    auto ok = producer_->produce(
      topic, r.null_key ? bytes{} : bytes{r.key},
      r.null_value ? bytes{} : bytes{r.value},
      r.headers ? *r.headers : structured,
      [failed = failed_](kafka::delivery_status status, const std::string&) {
        if (status != kafka::delivery_status::delivered)
          ++*failed;
      });
    if (!ok)
      throw std::runtime_error("produce failed: " + describe(ok.error()));
    producer_->poll(0);
  }
}

void kafka_io::flush() {
  auto delivered = producer_->flush(60'000);
  auto failed = *failed_;
  *failed_ = 0;
  if (!delivered || failed > 0)
    throw std::runtime_error("records not delivered to Kafka ("
                             + std::to_string(failed) + " refused)");
}

std::vector<kafka::record> kafka_io::read_all(const std::string& topic) {
  kafka::client_config cfg;
  cfg.bootstrap_servers = bootstrap_;
  auto ends = kafka::high_watermarks(cfg, topic, 10'000);
  if (!ends)
    throw std::runtime_error("no watermarks for " + topic + ": "
                             + describe(ends.error()));
  auto consumer = kafka::consumer::assign_only(cfg);
  if (!consumer)
    throw std::runtime_error("cannot create consumer");
  std::vector<storage::position> starts;
  for (size_t p = 0; p < ends->size(); ++p)
    starts.push_back({{topic, static_cast<std::int32_t>(p)}, -2});
  (*consumer)->assign(starts);
  std::vector<kafka::record> result;
  std::vector<std::int64_t> next(ends->size(), 0);
  auto complete = [&] {
    for (size_t p = 0; p < ends->size(); ++p)
      if (next[p] < (*ends)[p])
        return false;
    return true;
  };
  wait_until(
    [&] {
      for (auto& r : (*consumer)->poll(10'000, 100)) {
        next[static_cast<size_t>(r.partition)] = r.offset + 1;
        result.push_back(std::move(r));
      }
      return complete();
    },
    seconds{60}, milliseconds{1});
  if (!complete())
    throw std::runtime_error("could not read all of " + topic);
  return result;
}

std::unique_ptr<child_process> launch_service(const service_options& options) {
  std::vector<std::string> args{seatledger_binary(), "serve",
                                "--database-url",    options.database_url,
                                "--kafka-bootstrap", options.bootstrap,
                                "--signing-key",     options.signing_key_file,
                                "--replica-id",      options.replica_id,
                                "--consumer-group",  options.consumer_group,
                                "--http-listen",     "127.0.0.1:0",
                                "--poll-wait",       "20ms"};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  return std::make_unique<child_process>(args, synthetic_history_env);
}

std::unique_ptr<child_process> start_service(const service_options& options) {
  auto child = launch_service(options);
  if (!child->wait_for_value("HTTP", seconds{60}))
    throw std::runtime_error("service did not start: " + child->stderr_tail());
  database_probe db{options.database_url};
  if (!wait_until(
        [&] {
          return db.leases_of(options.consumer_group, options.replica_id) > 0;
        },
        seconds{60}))
    throw std::runtime_error("service took no partitions: "
                             + child->stderr_tail());
  return child;
}

database_probe::database_probe(std::string conninfo)
    : conninfo_(std::move(conninfo)) {}

std::int64_t database_probe::scalar(const std::string& sql) {
  pqxx::connection conn{conninfo_};
  pqxx::nontransaction tx{conn};
  auto row = tx.exec1(sql);
  return row[0].is_null() ? 0 : row[0].as<std::int64_t>();
}

std::vector<std::string> database_probe::rows(const std::string& sql) {
  pqxx::connection conn{conninfo_};
  pqxx::nontransaction tx{conn};
  std::vector<std::string> result;
  for (const auto& row : tx.exec(sql)) {
    std::string line;
    for (const auto& field : row) {
      if (!line.empty())
        line += "|";
      line += field.is_null() ? "<null>" : field.c_str();
    }
    result.push_back(std::move(line));
  }
  return result;
}

std::int64_t database_probe::applied_events() {
  return scalar("SELECT count(*) FROM seatledger.applied_events");
}

bool database_probe::settled(std::int64_t applied) {
  try {
    if (applied_events() < applied)
      return false;
    if (scalar("SELECT count(*) FROM seatledger.orgs o WHERE o.delta_seq > 0 "
               "AND NOT EXISTS (SELECT 1 FROM seatledger.subscription_orgs s "
               "WHERE s.org_id = o.org_id AND s.last_delta_seq = o.delta_seq)")
        > 0)
      return false;
    return scalar("SELECT (SELECT count(*) FROM seatledger.outbox "
                  "WHERE published_at IS NULL) + (SELECT count(*) FROM "
                  "seatledger.outbox_chunks WHERE published_at IS NULL)")
           == 0;
  } catch (const std::exception&) {
    return false; // not migrated yet
  }
}

std::int64_t database_probe::leases_of(const std::string& group,
                                       const std::string& owner) {
  try {
    pqxx::connection conn{conninfo_};
    pqxx::nontransaction tx{conn};
    auto row
      = tx.exec_params1("SELECT count(*) FROM seatledger.partition_leases "
                        "WHERE consumer_group = $1 AND owner = $2",
                        group, owner);
    return row[0].as<std::int64_t>();
  } catch (const std::exception&) {
    return 0;
  }
}

std::string test_signing_key(const std::string& dir) {
  auto files = crypto::ensure_key_pair(dir);
  if (!files)
    throw std::runtime_error("cannot create a key pair: "
                             + describe(files.error()));
  return files->signing_key_file;
}

} // namespace seatledger::test
