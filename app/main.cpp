// seatledger: one binary with subcommands, `--help` on each.

#include <algorithm>
#include <charconv>
#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>

#include "adapters/crypto/openssl_process.hpp"
#include "app/demo.hpp"
#include "app/runtime.hpp"
#include "app/sample.hpp"
#include "app/serve.hpp"
#include "app/tools.hpp"
#include "config/options.hpp"
#include "log/log.hpp"

namespace {

using namespace seatledger;

using config_flags
  = std::vector<std::pair<const config::option_spec*, CLI::Option*>>;

/// Adds serve's options to `cmd` as flags (all of them, or those named in
/// `only`); values are collected after parsing so the configuration layer
/// can apply its precedence.
config_flags add_config_flags(CLI::App& cmd,
                              const std::vector<std::string>& only = {}) {
  config_flags flags;
  for (const auto& spec : config::serve_options()) {
    if (!only.empty()
        && std::find(only.begin(), only.end(), spec.name) == only.end())
      continue;
    auto help = spec.description + " [env " + spec.env + "]";
    if (!spec.default_value.empty())
      help += " [default " + spec.default_value + "]";
    // No variable is bound (a string second argument would be taken for
    // one): the values are read from the option after parsing.
    auto* opt = cmd.add_option("--" + spec.name)->description(help);
    switch (spec.kind) {
      case config::option_kind::integer: opt->type_name("INT"); break;
      case config::option_kind::duration: opt->type_name("DURATION"); break;
      case config::option_kind::boolean: opt->type_name("BOOL"); break;
      default: opt->type_name("TEXT"); break;
    }
    // Every value is collected, also of a single-valued option given twice:
    // the configuration layer reports that in its one-line form.
    opt->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    flags.emplace_back(&spec, opt);
  }
  return flags;
}

/// Flags, environment, configuration file and defaults, resolved and
/// validated as serve does it, for the flags `cmd` was given.
std::variant<config::settings, config::config_error>
resolve_config(const config_flags& given) {
  config::flag_values flags;
  for (const auto& [spec, opt] : given)
    if (opt->count() > 0)
      flags[spec->name] = opt->results();
  return config::resolve(config::serve_options(), flags,
                         config::process_environment());
}

/// For the commands that run until stopped: a reader of stdout that goes
/// away (`seatledger serve | head -1`, a script that stops at the line it
/// wanted) must not end them. A write to the pipe then fails instead, and
/// they go on without stdout. SIGPIPE killed serve silently, undrained,
/// leaving its embedded PostgreSQL running. The tools keep SIGPIPE: `ledger
/// verify | head -1` stops as a Unix filter does.
void ignore_broken_stdout() {
  std::signal(SIGPIPE, SIG_IGN);
}

/// Refuses an empty value: an empty id or path given on purpose is a
/// mistake (an empty --subscription would mean every subscription).
std::string refuse_empty(const std::string& value) {
  return value.empty() ? "must not be empty" : "";
}

/// A whole number from `low` to `high`. CLI11's Range said "Value many not
/// in range 1 to 1024" of a word that is no number at all.
CLI::Validator whole_number_from(int low, int high) {
  return CLI::Validator(
    [low, high](std::string& text) -> std::string {
      int value = 0;
      const char* end = text.data() + text.size();
      auto [stop, problem] = std::from_chars(text.data(), end, value);
      if (problem == std::errc{} && stop == end && value >= low
          && value <= high)
        return {};
      return "'" + text + "' is not a whole number from " + std::to_string(low)
             + " to " + std::to_string(high);
    },
    "");
}

/// The line for words `serve` does not take. CLI11's own ("The following
/// arguments were not expected: x --bogus=3") lists them in reverse and
/// names no setting, so a log pipeline could not say which flag was wrong.
std::string unexpected_serve_arguments(const std::vector<std::string>& extras) {
  for (const auto& word : extras)
    if (word.size() > 1 && word[0] == '-')
      return "invalid configuration: " + word.substr(0, word.find('='))
             + ": unknown setting (seatledger serve --help lists them)";
  return "invalid configuration: unexpected argument '"
         + (extras.empty() ? std::string{} : extras.front())
         + "' (serve takes only settings)";
}

} // namespace

int main(int argc, char** argv) {
  seatledger::crypto::keep_openssl_state_until_exit();
  CLI::App app{"seatledger: the seat ledger for seat-based enterprise "
               "subscriptions"};
  app.require_subcommand(1);
  // One line, as every other refusal (CLI11 adds a second: "Run with
  // --help for more information.").
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string{e.what()} + " (see --help)\n";
  });

  auto* serve = app.add_subcommand("serve", "run the service");
  auto serve_flags = add_config_flags(*serve);

  // The commands that open the database read its settings the way serve
  // does (flags, SEATLEDGER_* variables, the configuration file), so a Job
  // given serve's configuration migrates the database serve will use.
  const std::vector<std::string> database_settings{"config", "database-url",
                                                   "data-dir"};
  auto* migrate = app.add_subcommand("migrate",
                                     "bring the PostgreSQL schema up to date");
  auto migrate_flags = add_config_flags(*migrate, database_settings);

  auto* dev_kafka = app.add_subcommand(
    "dev-kafka", "run a local Kafka-protocol cluster (librdkafka's mock "
                 "cluster) with the topics created, until stopped");
  int brokers = 1;
  int partitions = 4;
  dev_kafka
    ->add_option("--brokers", brokers,
                 "number of brokers (1-"
                   + std::to_string(config::max_mock_brokers) + ")")
    ->capture_default_str()
    ->check(whole_number_from(1, config::max_mock_brokers));
  dev_kafka
    ->add_option("--partitions", partitions,
                 "partitions per topic (1-"
                   + std::to_string(config::max_mock_partitions) + ")")
    ->capture_default_str()
    ->check(whole_number_from(1, config::max_mock_partitions));
  // The topics created are the ones serve is configured to use: with
  // renamed topics it created only the default names, and serve consumed
  // nothing ("topic not found").
  auto dev_kafka_flags = add_config_flags(
    *dev_kafka, {"config", "topic-membership", "topic-subscriptions",
                 "topic-catalog", "topic-deltas", "topic-events", "topic-dlq"});

  auto* publish = app.add_subcommand(
    "publish", "publish JSON-lines CloudEvents from FILE (or stdin) with the "
               "right keys");
  std::string topic;
  std::string file;
  std::string key_field;
  publish->add_option("--topic", topic, "topic to publish to")
    ->required()
    ->check(CLI::Validator{refuse_empty, ""});
  // An empty FILE (an unset variable in a script) read stdin: "published 0
  // records" from /dev/null, or a hang on a terminal.
  publish->add_option("file", file, "JSON-lines file; - or none: stdin")
    ->check(CLI::Validator{refuse_empty, ""});
  // Kafka is reached the way serve reaches it (flags, SEATLEDGER_*
  // variables, the configuration file): a cluster that needs SASL or TLS
  // properties in serve's environment needs them here too.
  // And the input topics' names: a line whose type no input topic carries
  // is keyed by --topic's role among them.
  const std::vector<std::string> kafka_settings{
    "config",           "kafka-bootstrap",     "kafka-property",
    "topic-membership", "topic-subscriptions", "topic-catalog",
    "topic-deltas"};
  auto publish_flags = add_config_flags(*publish, kafka_settings);
  for (auto& [spec, opt] : publish_flags)
    if (spec->name == "kafka-bootstrap")
      opt->description("Kafka bootstrap servers (required) [env " + spec->env
                       + "]");
  publish->add_option("--key-field", key_field,
                      "data field to key by, a dotted path; alternatives "
                      "comma-separated, the first present wins (default: by "
                      "the topic of each line's type: org_id, subscription_id "
                      "or rate_plan.id,rate_plan_id)");

  auto* license = app.add_subcommand("license", "license keys");
  license->require_subcommand(1);
  auto* keygen = license->add_subcommand(
    "keygen", "write a new Ed25519 key pair (signing-key.pem, "
              "public-key.pem)");
  std::string out_dir = ".";
  keygen
    ->add_option("--out", out_dir,
                 "directory for the key files (created; its parent must "
                 "exist)")
    ->capture_default_str()
    ->check(CLI::Validator{refuse_empty, ""});
  auto* verify = license->add_subcommand(
    "verify", "verify a license key offline; prints its claims; exit 0 only "
              "when valid");
  std::vector<std::string> public_keys;
  std::string key;
  verify
    ->add_option("--public-key", public_keys,
                 "trusted public key PEM file, one per --public-key "
                 "(repeatable)")
    ->allow_extra_args(false);
  verify->add_option("key", key, "the license key")->required();
  // Without --public-key the key pair serve keeps under its data directory
  // is trusted, found the way serve finds that directory.
  const std::vector<std::string> key_settings{"config", "data-dir"};
  auto verify_key_flags = add_config_flags(*verify, key_settings);
  auto* verify_doc = license->add_subcommand(
    "verify-document", "verify a signed usage export or revocation list");
  std::string document;
  verify_doc
    ->add_option("--public-key", public_keys,
                 "trusted public key PEM file, one per --public-key "
                 "(repeatable)")
    ->allow_extra_args(false);
  verify_doc->add_option("file", document, "the signed JSON document")
    ->required();
  auto verify_doc_key_flags = add_config_flags(*verify_doc, key_settings);

  auto* ledger = app.add_subcommand("ledger", "the seat ledger");
  ledger->require_subcommand(1);
  auto* ledger_verify = ledger->add_subcommand(
    "verify", "walk the hash chains and report the first broken entry");
  std::string subscription;
  ledger_verify
    ->add_option("--subscription", subscription,
                 "only this subscription (exit 2 if it has neither ledger "
                 "nor state)")
    ->check(CLI::Validator{refuse_empty, ""});
  auto verify_flags = add_config_flags(*ledger_verify, database_settings);

  auto* demo = app.add_subcommand(
    "demo", "run a scenario through the domain rules and print the results");

  auto* sample = app.add_subcommand(
    "sample", "write a realistic sample (JSON-lines CloudEvents, one file per "
              "phase) for `publish`; prints TOPIC FILE lines");
  std::string sample_dir = "./var/sample";
  auto* sample_out
    = sample
        ->add_option("--out", sample_dir,
                     "output directory (created; its parent must exist)")
        ->capture_default_str()
        ->check(CLI::Validator{refuse_empty, ""});
  // The TOPIC of each line it prints is the configured name (as publish
  // and dev-kafka read them): with renamed topics it printed the default
  // names, and a publish of its files fed topics nothing consumes.
  auto sample_flags
    = add_config_flags(*sample, {"config", "topic-membership",
                                 "topic-subscriptions", "topic-catalog"});

  // CLI11 answers an unknown command word (`seatledger bogus`, `seatledger
  // ledger bogus`) with "A subcommand is required", which does not say
  // which word it did not know.
  {
    CLI::App* level = &app;
    std::string path = "seatledger";
    for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
      auto subs = level->get_subcommands({});
      if (subs.empty())
        break;
      std::string word = argv[i];
      std::string known;
      CLI::App* next = nullptr;
      for (auto* sub : subs) {
        if (sub->get_name() == word)
          next = sub;
        known += (known.empty() ? "" : ", ") + sub->get_name();
      }
      if (!next) {
        std::cerr << "unknown command '" << word << "' (" << path
                  << " commands: " << known << "; see " << path << " --help)\n";
        return 2;
      }
      level = next;
      path += " " + word;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // `serve`'s command line is configuration: a mistake in it (an unknown
    // flag, a flag without its value) stops start-up like any invalid
    // setting, with one line and status 2. --help is no mistake.
    if (serve->parsed() && e.get_exit_code() != 0) {
      if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
        auto extras = serve->remaining();
        if (extras.empty())
          extras = app.remaining();
        app::report_start_failure(unexpected_serve_arguments(extras));
        return 2;
      }
      std::string what = e.what();
      for (auto& c : what)
        if (c == '\n' || c == '\r')
          c = ' ';
      app::report_start_failure("invalid configuration: " + what);
      return 2;
    }
    // Every other mistake on the command line is a usage error with the
    // same status as bad configuration, not CLI11's own codes (105, 106,
    // 109…), which scripts cannot tell from a program's other failures.
    auto status = app.exit(e);
    return status == 0 ? 0 : 2;
  }

  // serve's stderr is its JSON log; the tools write plain lines, and so
  // does the logger for them (librdkafka's lines, in publish and dev-kafka).
  if (!*serve)
    log::set_format(log::format::text);

  if (*serve || *migrate || *ledger_verify) {
    auto resolved = resolve_config(*serve     ? serve_flags
                                   : *migrate ? migrate_flags
                                              : verify_flags);
    if (auto* err = std::get_if<config::config_error>(&resolved)) {
      // serve's stderr is its JSON log; the tools write plain lines.
      if (*serve)
        app::report_start_failure(err->message);
      else
        std::cerr << err->message << "\n";
      return 2;
    }
    const auto& settings = std::get<config::settings>(resolved);
    if (*serve) {
      ignore_broken_stdout();
      return app::run_serve(settings);
    }
    const auto& database_url = settings.text("database-url");
    const auto& data_dir = settings.text("data-dir");
    if (*migrate)
      return app::run_migrate(database_url, data_dir);
    return app::run_ledger_verify(database_url, data_dir,
                                  subscription.empty()
                                    ? std::nullopt
                                    : std::optional<std::string>{subscription});
  }
  if (*dev_kafka) {
    auto resolved = resolve_config(dev_kafka_flags);
    if (auto* err = std::get_if<config::config_error>(&resolved)) {
      std::cerr << err->message << "\n";
      return 2;
    }
    ignore_broken_stdout();
    return app::run_dev_kafka(
      brokers, partitions,
      app::all_topics(app::topics_from(std::get<config::settings>(resolved))));
  }
  if (*publish) {
    auto resolved = resolve_config(publish_flags);
    if (auto* err = std::get_if<config::config_error>(&resolved)) {
      // publish has no embedded cluster: the validator's advice is serve's.
      auto message = err->message;
      const std::string serve_advice
        = "leave it unset for the embedded mock cluster";
      if (auto at = message.find(serve_advice); at != std::string::npos)
        message.replace(at, serve_advice.size(),
                        "publish needs the address of a Kafka cluster");
      std::cerr << message << "\n";
      return 2;
    }
    const auto& settings = std::get<config::settings>(resolved);
    kafka::client_config kafka;
    kafka.bootstrap_servers = settings.text("kafka-bootstrap");
    if (kafka.bootstrap_servers.empty()) {
      std::cerr << "invalid configuration: --kafka-bootstrap: required (the "
                   "flag, SEATLEDGER_KAFKA_BOOTSTRAP or the configuration "
                   "file)\n";
      return 2;
    }
    // Checked by resolve as serve checks them: KEY=VALUE, a property
    // librdkafka takes, not one the contract depends on.
    for (const auto& kv : settings.list("kafka-property")) {
      auto eq = kv.find('=');
      kafka.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return app::run_publish(kafka, topic, app::topics_from(settings), key_field,
                            file, settings.described("kafka-property"));
  }
  if (*keygen)
    return app::run_license_keygen(out_dir);
  if (*verify || *verify_doc) {
    // The configuration is read only for the data directory's key: with
    // --public-key nothing of serve's settings matters.
    std::string data_dir;
    if (public_keys.empty()) {
      auto resolved = resolve_config(*verify ? verify_key_flags
                                             : verify_doc_key_flags);
      if (auto* err = std::get_if<config::config_error>(&resolved)) {
        std::cerr << err->message << "\n";
        return 2;
      }
      data_dir = std::get<config::settings>(resolved).text("data-dir");
    }
    if (*verify)
      return app::run_license_verify(public_keys, data_dir, key);
    return app::run_document_verify(public_keys, data_dir, document);
  }
  if (*demo)
    return app::run_demo(std::cout);
  if (*sample) {
    auto resolved = resolve_config(sample_flags);
    if (auto* err = std::get_if<config::config_error>(&resolved)) {
      std::cerr << err->message << "\n";
      return 2;
    }
    // The default is the tool's own layout (like serve's ./var), created
    // whole; a directory the user names must have an existing parent.
    return app::run_sample(
      sample_dir, sample_out->count() == 0,
      app::topics_from(std::get<config::settings>(resolved)));
  }
  return 0;
}
