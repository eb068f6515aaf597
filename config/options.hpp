#pragma once

// Configuration: every option is declared once (name, environment variable,
// description, default, validation). Values come from command-line flags,
// then `SEATLEDGER_*` environment variables, then the configuration file,
// then the defaults. Anything invalid or unknown stops start-up with one line
// naming the setting.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace seatledger::config {

/// Limits of the mock Kafka cluster, for `embedded-brokers` and
/// `embedded-partitions` and for dev-kafka's `--brokers` and
/// `--partitions` alike.
constexpr int max_mock_brokers = 16;
constexpr int max_mock_partitions = 1024;

enum class option_kind { text, integer, duration, boolean, list };

struct option_spec {
  /// The flag without dashes, also the key in the configuration file.
  std::string name;
  /// The environment variable (`SEATLEDGER_…`).
  std::string env;
  std::string description;
  option_kind kind = option_kind::text;
  std::string default_value;
  /// For `list` options: the flag repeats, the variable is comma-separated.
  /// Returns an error message for an invalid value.
  std::function<std::optional<std::string>(const std::string&)> validate;
  /// Hidden from secrets-aware output (tokens).
  bool secret = false;
  /// For `list` options: an error message for values that are each valid
  /// but not together.
  std::function<std::optional<std::string>(const std::vector<std::string>&)>
    validate_together;
};

/// The options of `seatledger serve`.
const std::vector<option_spec>& serve_options();

/// A `PROTOCOL://` in a `--kafka-bootstrap` entry must be the client's
/// `security.protocol` (plaintext unless a `--kafka-property` sets it):
/// librdkafka drops such a broker otherwise, and the replica never gets
/// ready. Nothing when they agree.
std::optional<std::string>
bootstrap_protocol_problem(const std::string& bootstrap,
                           const std::vector<std::string>& kafka_properties);

/// Resolved values.
class settings {
public:
  const std::string& text(const std::string& name) const;
  std::int64_t integer(const std::string& name) const;
  std::chrono::milliseconds duration(const std::string& name) const;
  bool boolean(const std::string& name) const;
  const std::vector<std::string>& list(const std::string& name) const;
  /// Where a value came from: "flag", "env", "file" or "default".
  const std::string& origin(const std::string& name) const;
  /// The setting as start-up errors name it: "--trusted-key", or
  /// "--trusted-key (SEATLEDGER_TRUSTED_KEY_FILES from the environment)"
  /// when its value came from there ("--trusted-key (/etc/seatledger.conf:3)"
  /// from the configuration file).
  std::string described(const std::string& name) const;

  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, std::string> origins;
  /// "path:line" of the (first) value of a setting read from the
  /// configuration file.
  std::map<std::string, std::string> file_lines;
};

/// Values given on the command line: option name -> values (several for a
/// repeated list flag).
using flag_values = std::map<std::string, std::vector<std::string>>;

struct config_error {
  /// One line naming the setting, e.g.
  /// "invalid configuration: --batch-max-records (SEATLEDGER_BATCH_MAX_RECORDS
  /// from the environment): not a positive integer: 'abc'", or for a value
  /// from the configuration file "… --batch-max-records
  /// (/etc/seatledger.conf:3): …". A secret's value is never part of it.
  std::string message;
};

/// Merges flags, the environment (every `SEATLEDGER_*` variable must be a
/// known option), the configuration file (from --config or SEATLEDGER_CONFIG;
/// `name = value` lines, `#` comments) and the defaults, validating each.
std::variant<settings, config_error>
resolve(const std::vector<option_spec>& specs, const flag_values& flags,
        const std::map<std::string, std::string>& environment);

/// The process environment as a map.
std::map<std::string, std::string> process_environment();

/// "250ms", "5s", "10m", "1h", "7d" (a bare number is milliseconds), at
/// most 36,600 days.
std::optional<std::chrono::milliseconds>
parse_duration(const std::string& text);

} // namespace seatledger::config
