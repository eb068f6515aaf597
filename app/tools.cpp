#include "app/tools.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "actors/entity_context.hpp"
#include "adapters/crypto/keyring.hpp"
#include "app/runtime.hpp"
#include "messages/service_error.hpp"
#include "messages/types.hpp"
#include "paseto/keys.hpp"
#include "paseto/license_verifier.hpp"
#include "paseto/signed_json.hpp"
#include "paseto/trusted_keys.hpp"
#include "storage/conninfo.hpp"
#include "storage/embedded_postgres.hpp"
#include "storage/pg_store.hpp"
#include "storage/verify_command.hpp"

namespace seatledger::app {

namespace {

/// The database migrate and ledger verify work on: the configured one, or
/// the embedded server, which SIGINT or SIGTERM then stops before the tool
/// ends (status 128 + the signal's number). The tool used to die at once
/// and leave its server running until the next start stopped it as a
/// leftover. A signal during the start ends it within about 100 ms, as in
/// serve (during initdb, about a second, once initdb returns). One that
/// comes after the work is done leaves the tool's own status.
class database {
public:
  database() : embedded_{interruptible()} {}

  ~database() {
    if (watcher_.joinable()) {
      {
        std::lock_guard<std::mutex> guard{mutex_};
        done_ = true;
      }
      watcher_.join();
    }
  }

  database(const database&) = delete;
  database& operator=(const database&) = delete;

  caf::expected<void> open(const std::string& database_url,
                           const std::string& data_dir) {
    url = database_url;
    if (!url.empty())
      return caf::unit;
    signals_ = block_termination_signals();
    watcher_ = std::thread([this] { watch(); });
    std::unique_lock<std::mutex> starting{mutex_};
    auto started
      = embedded_.start(storage::embedded_postgres::cluster_under(data_dir));
    if (auto sig = signal_.load())
      stop_and_exit(sig);
    if (!started)
      return started.error();
    url = *started;
    return caf::unit;
  }

  std::string url;

private:
  /// The start's waits (pg_ctl's, then for a recovering server) end on a
  /// signal taken.
  storage::embedded_postgres_options interruptible() {
    storage::embedded_postgres_options options;
    options.interrupted = [this] { return signal_.load() != 0; };
    return options;
  }

  void watch() {
    for (;;) {
      timespec wait{0, 50'000'000};
      int sig = sigtimedwait(&signals_, nullptr, &wait);
      if (sig <= 0) {
        if (done_)
          return;
        continue;
      }
      signal_ = sig;
      // `open` holds the lock while the server starts, and stops it itself
      // once it is up; the destructor while the tool ends, which stops it.
      std::lock_guard<std::mutex> guard{mutex_};
      if (done_)
        return;
      stop_and_exit(sig);
    }
  }

  /// With `mutex_` held, so that only one thread does it.
  [[noreturn]] void stop_and_exit(int sig) {
    std::cerr << (sig == SIGINT ? "SIGINT" : "SIGTERM")
              << ": stopping the embedded PostgreSQL server\n";
    if (embedded_.running())
      if (auto stopped = embedded_.stop(); !stopped)
        std::cerr << describe(stopped.error()) << "\n";
    std::_Exit(128 + sig);
  }

  storage::embedded_postgres embedded_;
  sigset_t signals_{};
  std::thread watcher_;
  std::mutex mutex_;
  std::atomic<bool> done_{false};
  std::atomic<int> signal_{0};
};

/// The string at a dotted path ("rate_plan.id") under the event's data.
std::optional<std::string> lookup_path(const nlohmann::json& data,
                                       std::string path) {
  const auto* node = &data;
  while (!path.empty()) {
    auto dot = path.find('.');
    auto part = path.substr(0, dot);
    if (!node->is_object() || !node->contains(part))
      return std::nullopt;
    node = &(*node)[part];
    path = dot == std::string::npos ? "" : path.substr(dot + 1);
  }
  if (!node->is_string())
    return std::nullopt;
  return node->get<std::string>();
}

/// A record's key: the string at the first of `key_fields` (dotted paths
/// under `data`, comma-separated) that the event has; nothing when none.
std::optional<std::string> lookup_key(const nlohmann::json& event,
                                      const std::string& key_fields) {
  if (!event.is_object() || !event.contains("data")
      || !event["data"].is_object())
    return std::nullopt;
  // Alternatives, the first present wins: a catalog upsert names its plan
  // in rate_plan.id, a removal in rate_plan_id.
  std::size_t start = 0;
  for (;;) {
    auto comma = key_fields.find(',', start);
    auto found = lookup_path(event["data"],
                             key_fields.substr(start, comma - start));
    if (found || comma == std::string::npos)
      return found;
    start = comma + 1;
  }
}

/// Whether `line` fails to parse only because it ends before its JSON
/// value does: the first line of a pretty-printed document ("{", "[",
/// "{\"id\": \"e-1\","), never a record of its own. (A string cannot go on
/// over a line break in JSON, so an unterminated one is not counted.)
bool value_goes_on_past_its_line(const std::string& line) {
  try {
    [[maybe_unused]] auto parsed = nlohmann::json::parse(line);
    return false;
  } catch (const nlohmann::json::parse_error& e) {
    return e.byte > line.size()
           && std::string_view{e.what()}.find("unexpected end of input")
                != std::string_view::npos;
  }
}

/// The data fields the records of an input topic are keyed by (messages.md);
/// alternatives comma-separated, the first present wins: a catalog upsert
/// names its plan in rate_plan.id, a removal in rate_plan_id.
const char* key_fields_of(messages::topic_kind role) {
  switch (role) {
    case messages::topic_kind::membership: return "org_id";
    case messages::topic_kind::catalog: return "rate_plan.id,rate_plan_id";
    case messages::topic_kind::subscriptions:
    case messages::topic_kind::seat_deltas: break;
  }
  return "subscription_id";
}

/// Which input topic `topic` is among the configured names, if any.
std::optional<messages::topic_kind>
input_role_of(const actors::topic_names& topics, const std::string& topic) {
  for (auto [role, name] : topics.inputs())
    if (*name == topic)
      return role;
  return std::nullopt;
}

/// The input topic whose records may carry the event's `type`, if any.
std::optional<messages::topic_kind> role_of_type(const nlohmann::json& event) {
  if (!event.is_object())
    return std::nullopt;
  auto type = event.find("type");
  if (type == event.end() || !type->is_string())
    return std::nullopt;
  return messages::topic_of(type->get_ref<const std::string&>());
}

} // namespace

int run_dev_kafka(int brokers, int partitions,
                  const std::vector<std::string>& topics) {
  auto signals = block_termination_signals();
  auto cluster = kafka::mock_cluster::start(brokers, topics, partitions);
  if (!cluster) {
    std::cerr << "cannot start the mock cluster: " << describe(cluster.error())
              << "\n";
    return 1;
  }
  std::cout << "KAFKA_BOOTSTRAP=" << (*cluster)->bootstrap_servers()
            << std::endl;
  wait_for_termination(signals);
  return 0;
}

constexpr int publish_connect_timeout_ms = 10'000;

int run_publish(const kafka::client_config& kafka, const std::string& topic,
                const actors::topic_names& topics, const std::string& key_field,
                const std::string& file,
                const std::string& properties_setting) {
  std::ifstream file_in;
  std::istream* in = &std::cin;
  if (!file.empty() && file != "-") {
    // A directory opens as a stream that reads as empty, which would end
    // in "published 0 records" and exit 0; a pipe or device is fine.
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
      std::cerr << "cannot read " << file << ": is a directory\n";
      return 2;
    }
    file_in.open(file);
    if (!file_in) {
      std::cerr << "cannot read " << file << ": " << std::strerror(errno)
                << "\n";
      return 2;
    }
    in = &file_in;
  }
  // Before the producer: its destructor flushes, and the delivery callbacks
  // it runs then count into these.
  long published = 0;
  long failed = 0;
  auto producer = kafka::producer::make(kafka);
  if (!producer) {
    if (is(producer.error(), service_errc::config_invalid)) {
      std::cerr << kafka_refusal(properties_setting, producer.error()) << "\n";
      return 2;
    }
    std::cerr << describe(producer.error()) << "\n";
    return 1;
  }
  // A mistyped or unreachable bootstrap address was found out only when the
  // records' delivery timed out, a minute later, as "timed out waiting".
  auto existing = (*producer)->partition_counts({topic},
                                                publish_connect_timeout_ms);
  if (!existing) {
    std::cerr << "cannot reach Kafka at " << kafka.bootstrap_servers
              << " (no broker answered within "
              << publish_connect_timeout_ms / 1000
              << " s): " << describe(existing.error()) << "\n";
    return 1;
  }
  // A mistyped topic was created by the first record (the mock cluster and
  // brokers with auto.create.topics.enable do that), and the records went
  // where nothing reads them.
  if (existing->count(topic) == 0) {
    std::cerr << "invalid configuration: --topic: no topic '" << topic
              << "' at " << kafka.bootstrap_servers
              << " (create it first; dev-kafka creates the service's)\n";
    return 2;
  }
  const auto topic_role = input_role_of(topics, topic);
  // By the key fields looked for.
  std::map<std::string, long> unkeyed;
  // Of another input topic's type than --topic's: the service
  // dead-letters them (unknown_type).
  long misplaced = 0;
  long line_number = 0;
  std::string line;
  while (std::getline(*in, line)) {
    ++line_number;
    // A blank line (a trailing newline, an editor's indentation) is no
    // record: it was published and dead-lettered as malformed JSON.
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    auto event = nlohmann::json::parse(line, nullptr, false);
    // A pretty-printed file was published a line at a time: every line a
    // dead letter, exit 0. A line that is not JSON at all is still
    // published (a poison record sent on purpose).
    if (event.is_discarded() && value_goes_on_past_its_line(line)) {
      (*producer)->flush(60'000);
      // An array's events are its elements: `jq -c .` would make it one
      // line, published as one record.
      auto array = line[line.find_first_not_of(" \t\r")] == '[';
      std::cerr << (in == &std::cin ? std::string{"stdin"} : file) << ":"
                << line_number
                << ": a JSON value that goes on over the next lines; publish "
                   "reads JSON lines, one event a line ("
                << (array ? "jq -c '.[]'" : "jq -c .")
                << " makes them from this file); stopped there, " << published
                << " records published before it";
      if (failed > 0)
        std::cerr << " (" << failed << " not delivered)";
      std::cerr << "\n";
      return 1;
    }
    // A line's own type decides its key: the topic's name said it only by
    // containing "membership" or "catalog", so a renamed topic's records
    // went with an empty key, every one a dead letter (key_mismatch).
    auto line_role = event.is_discarded() ? std::nullopt : role_of_type(event);
    if (line_role && topic_role && *line_role != *topic_role)
      ++misplaced;
    // Output events (seatledger.events.v1) and commands are keyed by their
    // subscription, so that is what is left.
    std::string fields = key_field;
    if (fields.empty()) {
      auto role = line_role ? line_role : topic_role;
      fields = role ? key_fields_of(*role) : "subscription_id";
    }
    auto key = event.is_discarded() ? std::nullopt : lookup_key(event, fields);
    // Published all the same (a poison record is worth sending on purpose),
    // but never silently: the service dead-letters a record whose key is
    // not its entity's id.
    if (!key)
      ++unkeyed[fields];
    auto ok = (*producer)->produce(
      topic, key.value_or(""), line,
      {{"content-type", "application/cloudevents+json"}},
      [&](kafka::delivery_status status, const std::string& error) {
        if (status == kafka::delivery_status::delivered) {
          ++published;
        } else {
          ++failed;
          std::cerr << "not delivered: " << error << "\n";
        }
      });
    if (!ok) {
      std::cerr << describe(ok.error()) << "\n";
      return 1;
    }
    (*producer)->poll(0);
  }
  if (!(*producer)->flush(60'000)) {
    std::cerr << "timed out waiting for deliveries: " << published
              << " records delivered to " << topic << ", " << failed
              << " not delivered, the rest unknown\n";
    return 1;
  }
  std::cerr << "published " << published << " records to " << topic << "\n";
  for (const auto& [fields, count] : unkeyed)
    std::cerr << count << " of them had no data." << fields
              << " (not JSON, or the field missing or not a string) and "
                 "went with an empty key\n";
  if (misplaced > 0)
    std::cerr << misplaced << " of them have a type the "
              << messages::to_string(*topic_role) << " topic (" << topic
              << ") does not carry; the service dead-letters them "
                 "(unknown_type)\n";
  if (in->bad()) {
    // What was read is published; the rest is not, which must not pass.
    std::cerr << "cannot read " << (in == &std::cin ? "stdin" : file)
              << " to its end\n";
    return 1;
  }
  return failed == 0 ? 0 : 1;
}

int run_migrate(const std::string& database_url, const std::string& data_dir) {
  database db;
  if (auto ok = db.open(database_url, data_dir); !ok) {
    std::cerr << describe(ok.error()) << "\n";
    return 1;
  }
  auto applied = storage::migrate(db.url);
  if (!applied) {
    // Credentials only the configuration mends, as serve tells them: a
    // migration Job must not take a wrong secret for an outage (exit 1).
    if (is(applied.error(), service_errc::storage_unavailable))
      if (auto refusal = storage::lasting_refusal(db.url,
                                                  std::chrono::seconds{5})) {
        std::cerr << database_refusal(*refusal) << "\n";
        return 2;
      }
    std::cerr << "migration failed: " << describe(applied.error()) << "\n";
    return 1;
  }
  std::cout << "applied " << *applied << " migration(s)\n";
  return 0;
}

int run_ledger_verify(const std::string& database_url,
                      const std::string& data_dir,
                      const std::optional<std::string>& subscription_id) {
  database db;
  // Only serve and migrate create the embedded server: given a mistyped
  // --data-dir, verify initialised a new, empty cluster there and failed on
  // it.
  if (database_url.empty()
      && !storage::embedded_postgres::has_cluster(
        storage::embedded_postgres::cluster_under(data_dir))) {
    std::cerr << "invalid configuration: --data-dir: no embedded database in "
              << storage::embedded_postgres::cluster_under(data_dir)
              << " (give the --data-dir serve runs with, or --database-url)\n";
    return 2;
  }
  if (auto ok = db.open(database_url, data_dir); !ok) {
    std::cerr << describe(ok.error()) << "\n";
    return 2;
  }
  if (auto problem = storage::check_schema(db.url)) {
    std::cerr << "error: cannot verify the ledger: " << describe(problem)
              << "\n";
    return 2;
  }
  storage::pg_store store{db.url};
  return storage::verify_command(store, subscription_id, std::cout, std::cerr);
}

bool make_output_dir(const std::string& dir, bool create_parents) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    return true;
  if (fs::exists(dir, ec)) {
    std::cerr << "cannot write to " << dir << ": not a directory\n";
    return false;
  }
  // Only the last level is created unless asked: a mistyped parent would
  // otherwise quietly become a new tree the user does not look in.
  if (create_parents)
    fs::create_directories(dir, ec);
  else
    fs::create_directory(dir, ec);
  if (!ec)
    return true;
  std::cerr << "cannot create " << dir << ": ";
  auto parent = fs::path{dir};
  if (!parent.has_filename())
    parent = parent.parent_path();
  parent = parent.parent_path();
  // ENOENT also where the parent exists but takes no directories (/proc).
  std::error_code parent_ec;
  if (ec == std::errc::no_such_file_or_directory
      && !fs::exists(parent.empty() ? fs::path{"."} : parent, parent_ec)) {
    std::cerr << "its parent directory " << parent.string()
              << " does not exist\n";
  } else {
    std::cerr << ec.message() << "\n";
  }
  return false;
}

int run_license_keygen(const std::string& out_dir) {
  if (!make_output_dir(out_dir, false))
    return 2;
  auto files = crypto::generate_key_pair(out_dir);
  if (!files) {
    std::cerr << describe(files.error()) << "\n";
    // A pair there already is left alone: nothing done, as asked.
    return is(files.error(), service_errc::conflict) ? 2 : 1;
  }
  std::cout << "SIGNING_KEY_FILE=" << files->signing_key_file << "\n"
            << "PUBLIC_KEY_FILE=" << files->public_key_file << std::endl;
  return 0;
}

namespace {

bool load_trusted(std::vector<std::string> files, const std::string& data_dir,
                  paseto::trusted_keys& keys) {
  if (files.empty()) {
    // The key serve signs with when it runs on its embedded defaults.
    auto embedded = crypto::key_files_in(crypto::embedded_key_dir(data_dir))
                      .public_key_file;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(embedded, ec)) {
      std::cerr << "no --public-key given, and no key pair under --data-dir ("
                << embedded << " not found)\n";
      return false;
    }
    files.push_back(std::move(embedded));
  }
  for (const auto& f : files)
    if (!keys.add_pem_file(f)) {
      std::cerr << "public key " << f
                << ": not a readable Ed25519 public key PEM\n";
      return false;
    }
  return true;
}

} // namespace

int run_license_verify(const std::vector<std::string>& public_keys,
                       const std::string& data_dir, const std::string& key) {
  paseto::trusted_keys keys;
  if (!load_trusted(public_keys, data_dir, keys))
    return 2;
  auto check = paseto::verify_license(
    keys, key, std::chrono::system_clock::now(), std::chrono::seconds{60});
  // Claims whose signature verified are printed also when the key is
  // expired or not yet valid (who it was for, until when), as the HTTP
  // verify answer has them; the exit status is the verdict. Claims that
  // did not verify are never shown.
  if (!check.claims_json.empty())
    std::cout << check.claims_json << std::endl;
  if (!check.valid) {
    std::cerr << "invalid license: "
              << (check.reason ? paseto::to_string(*check.reason)
                               : std::string_view{"bad_format"})
              << "\n";
    return 1;
  }
  return 0;
}

int run_document_verify(const std::vector<std::string>& public_keys,
                        const std::string& data_dir, const std::string& file) {
  paseto::trusted_keys keys;
  if (!load_trusted(public_keys, data_dir, keys))
    return 2;
  // A signed document is a usage export or a revocation list: megabytes
  // at most. A limit keeps a wrong file (a disk image, /dev/zero) from
  // ending in std::bad_alloc.
  constexpr std::size_t max_document_bytes = std::size_t{256} << 20;
  auto read = paseto::read_text_file(file, max_document_bytes);
  if (!read) {
    if (read.error() == paseto::errc::file_too_large)
      std::cerr << "cannot read " << file << ": larger than 256 MiB, which "
                << "no signed document of seatledger is\n";
    else
      std::cerr << "cannot read " << file << "\n";
    return 2;
  }
  auto text = std::move(*read);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  auto verified = paseto::verify_json_document(keys, text);
  if (!verified) {
    std::cerr << "invalid document: " << paseto::to_string(verified.error());
    if (verified.error() == paseto::errc::not_signed)
      std::cerr << " (no key_id and signature strings: only a usage export "
                   "(?export=1) and the revocation list are signed)";
    std::cerr << "\n";
    return 1;
  }
  std::cout << verified->rest_json << std::endl;
  return 0;
}

} // namespace seatledger::app
