#include "config/options.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "messages/decode.hpp"

extern char** environ;

namespace seatledger::config {

namespace {

using std::optional;
using std::string;

optional<string> positive_integer(const string& value) {
  if (value.empty() || value.size() > 12)
    return "not a positive integer: '" + value + "'";
  for (auto c : value)
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return "not a positive integer: '" + value + "'";
  if (std::stoll(value) <= 0)
    return "not a positive integer: '" + value + "'";
  return std::nullopt;
}

optional<string> positive_duration(const string& value) {
  auto d = parse_duration(value);
  if (d && d->count() > 0)
    return std::nullopt;
  // Says what is wrong with a value that has its unit: "not a duration
  // with its unit" of `0s` or `1.5s` sent people looking for the unit.
  if (d)
    return "must be longer than zero: '" + value + "'";
  auto digits = value.find_first_not_of("0123456789");
  auto unit = digits == string::npos ? string{} : value.substr(digits);
  bool known_unit = unit == "ms" || unit == "s" || unit == "m" || unit == "h"
                    || unit == "d";
  if (digits > 0 && digits != string::npos && known_unit)
    return "too long (at most a century, in at most twelve digits): '" + value
           + "'";
  if (digits > 0 && digits != string::npos && value[digits] == '.')
    return "a whole number with its unit, such as 1500ms for 1.5s: '" + value
           + "'";
  return "not a duration with its unit, such as 250ms, 5s, 10m, 1h or "
         "7d: '"
         + value + "'";
}

optional<string> non_empty(const string& value) {
  if (value.find_first_not_of(" \t\r\n") == string::npos)
    return string{"must not be empty or blank"};
  return std::nullopt;
}

// The coordinator's thread waits this long for records, and its checks
// (readiness, lag, month close, passivation) and a SIGTERM's drain wait
// with it; past 24.8 days it would not fit poll(2)'s milliseconds at all.
optional<string> pipeline_wait(const string& value) {
  if (auto bad = positive_duration(value))
    return bad;
  if (*parse_duration(value) > std::chrono::seconds{10})
    return "at most 10s (the pipeline's checks and a shutdown wait for it): '"
           + value + "'";
  return std::nullopt;
}

// The service puts its source on its own seat deltas, which its decoder
// takes only up to the CloudEvents attribute limit: a longer one would
// dead-letter every delta it sends itself.
optional<string> cloudevents_source(const string& value) {
  if (auto empty = non_empty(value))
    return empty;
  if (value.size() > messages::limits::event_attribute)
    return "longer than " + std::to_string(messages::limits::event_attribute)
           + " bytes (the CloudEvents attribute limit)";
  return std::nullopt;
}

// An option whose absence means a default the service makes up (a key pair
// of its own, no configuration file, a generated name): an empty value is
// most likely a template or secret that rendered nothing, and a replica
// must not quietly sign with a throwaway key.
std::function<optional<string>(const string&)>
set_or_unset(const char* unset_means) {
  return [unset_means](const string& value) -> optional<string> {
    if (value.find_first_not_of(" \t\r\n") == string::npos)
      return "empty; leave it unset for " + string{unset_means};
    return std::nullopt;
  };
}

// A data directory may not exist yet (it is created), but a file in its
// place would fail later, as "cannot create the signing key" or "cannot
// start the embedded PostgreSQL" with exit status 1.
optional<string> directory_or_absent(const string& value) {
  if (auto empty = non_empty(value))
    return empty;
  std::error_code ec;
  auto status = std::filesystem::status(value, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_directory(status))
    return "'" + value + "' is not a directory";
  return std::nullopt;
}

bool is_port(const string& text) {
  return !text.empty() && text.size() <= 5
         && text.find_first_not_of("0123456789") == string::npos
         && std::stoll(text) >= 1 && std::stoll(text) <= 65535;
}

string lowercase(string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return text;
}

/// An int as libpq's parse_int_param reads it: strtol (leading blanks, a
/// sign), then nothing but blanks.
optional<long> libpq_integer(const string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(begin, &end, 10);
  if (end == begin || errno != 0 || n != static_cast<int>(n))
    return std::nullopt;
  while (*end != '\0' && std::isspace(static_cast<unsigned char>(*end)))
    ++end;
  if (*end != '\0')
    return std::nullopt;
  return n;
}

std::size_t comma_separated_count(const string& list) {
  return static_cast<std::size_t>(std::count(list.begin(), list.end(), ','))
         + 1;
}

/// libpq matches hosts, host addresses and ports by position, also only
/// when it connects ("could not match 2 port numbers to 3 hosts").
optional<string> connection_lists_problem(const std::map<string, string>& set) {
  auto given = [&](const char* key) -> const string* {
    auto it = set.find(key);
    return it == set.end() || it->second.empty() ? nullptr : &it->second;
  };
  std::size_t hosts = 1;
  if (auto* hostaddr = given("hostaddr")) {
    hosts = comma_separated_count(*hostaddr);
    if (auto* host = given("host");
        host && comma_separated_count(*host) != hosts)
      return "connection options host and hostaddr: "
             + std::to_string(comma_separated_count(*host)) + " host names for "
             + std::to_string(hosts) + " addresses";
  } else if (auto* host = given("host")) {
    hosts = comma_separated_count(*host);
  }
  if (auto* port = given("port")) {
    auto ports = comma_separated_count(*port);
    if (ports != 1 && ports != hosts)
      return "connection option port: " + std::to_string(ports) + " ports for "
             + std::to_string(hosts)
             + " hosts (one port for all, or one per host)";
  }
  return std::nullopt;
}

// libpq checks these values only when it connects, and its refusal looked
// like an unreachable server: start-up retried for ever. Values of the
// options checked here are no secrets, so they are named.
optional<string> connection_option_problem(const string& key,
                                           const string& value) {
  static const std::map<string, std::set<string>> choices{
    {"sslmode",
     {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
    {"gssencmode", {"disable", "prefer", "require"}},
    {"channel_binding", {"disable", "prefer", "require"}},
    {"target_session_attrs",
     {"any", "read-write", "read-only", "primary", "standby",
      "prefer-standby"}},
  };
  static const std::set<string> integers{"connect_timeout", "keepalives",
                                         "tcp_user_timeout"};
  // Negative, these fail setsockopt at every connection attempt.
  static const std::set<string> counts{"keepalives_idle", "keepalives_interval",
                                       "keepalives_count"};
  auto refused = [&](const string& expected) {
    return "connection option " + key + "='" + value + "': " + expected;
  };
  if (auto c = choices.find(key); c != choices.end()) {
    if (c->second.count(value) == 0) {
      string expected = "not one of";
      for (const auto& choice : c->second)
        expected += " " + choice;
      return refused(expected);
    }
  } else if (integers.count(key) != 0) {
    if (!libpq_integer(value))
      return refused("not a whole number");
  } else if (counts.count(key) != 0) {
    auto n = libpq_integer(value);
    if (!n || *n < 0)
      return refused("not a whole number from 0");
  } else if (key == "port") {
    // One port per host, comma-separated; empty is the default port.
    std::size_t begin = 0;
    while (begin <= value.size()) {
      auto end = std::min(value.find(',', begin), value.size());
      auto port = value.substr(begin, end - begin);
      auto n = libpq_integer(port);
      if (!port.empty() && (!n || *n < 1 || *n > 65535))
        return refused("not a port (1-65535)");
      begin = end + 1;
    }
  }
  return std::nullopt;
}

// Parsed as libpq will parse it, so a string it cannot read stops start-up
// as a configuration error. libpq's reason is not repeated: it quotes the
// string, which may hold a password.
optional<string> connection_string(const string& value) {
  // Only an unset option means the embedded server (defaults skip the
  // validator); an empty value is most likely a template or secret that
  // rendered nothing, and a replica must not quietly run on its own
  // private database.
  if (value.empty())
    return string{"empty; leave it unset for the embedded server"};
  char* error = nullptr;
  auto* options = PQconninfoParse(value.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return string{"not a PostgreSQL connection string (a postgresql:// URI "
                  "or key=value pairs)"};
  }
  optional<string> problem;
  std::map<string, string> set;
  for (auto* o = options; o->keyword != nullptr && !problem; ++o)
    if (o->val != nullptr) {
      problem = connection_option_problem(o->keyword, o->val);
      set[o->keyword] = o->val;
    }
  PQconninfoFree(options);
  if (!problem)
    problem = connection_lists_problem(set);
  return problem;
}

// Empty means nothing in a cluster: refused like the database URL, so that
// a replica never quietly consumes an in-process cluster of its own.
// Otherwise librdkafka's form: `[PROTOCOL://]HOST[:PORT]`, comma-separated;
// an IPv6 address in brackets. librdkafka takes a bad entry without a word
// at start and only logs, for ever, that it cannot resolve it.
optional<string> bootstrap_servers(const string& value) {
  if (value.empty())
    return string{"empty; leave it unset for the embedded mock cluster"};
  std::size_t begin = 0;
  while (begin <= value.size()) {
    auto end = std::min(value.find(',', begin), value.size());
    auto entry = value.substr(begin, end - begin);
    auto first = entry.find_first_not_of(' ');
    auto last = entry.find_last_not_of(' ');
    auto server = first == string::npos ? string{}
                                        : entry.substr(first, last - first + 1);
    auto bad = "not HOST[:PORT] (comma-separated): '" + server + "'";
    if (auto scheme = server.find("://"); scheme != string::npos) {
      // librdkafka knows these four; another name left the replica
      // unready for ever ("unsupported protocol" in its log only).
      auto protocol = lowercase(server.substr(0, scheme));
      if (protocol != "plaintext" && protocol != "ssl"
          && protocol != "sasl_plaintext" && protocol != "sasl_ssl")
        return bad + " (protocol plaintext, ssl, sasl_plaintext or sasl_ssl)";
      server = server.substr(scheme + 3);
    }
    string host = server;
    string port;
    if (!server.empty() && server[0] == '[') {
      auto close = server.find(']');
      if (close == string::npos
          || (close + 1 < server.size() && server[close + 1] != ':'))
        return bad;
      host = server.substr(1, close - 1);
      in6_addr address{};
      // A link-local address may carry its zone (`fe80::1%eth0`).
      if (::inet_pton(AF_INET6, host.substr(0, host.find('%')).c_str(),
                      &address)
          != 1)
        return bad + " (brackets hold an IPv6 address)";
      if (close + 1 < server.size()) {
        port = server.substr(close + 2);
        if (!is_port(port))
          return bad;
      }
    } else if (auto colon = server.find(':'); colon != string::npos) {
      if (server.find(':', colon + 1) != string::npos)
        return bad + " (an IPv6 address goes in brackets)";
      host = server.substr(0, colon);
      port = server.substr(colon + 1);
      if (!is_port(port))
        return bad;
    }
    if (host.empty() || host.find_first_of(" /") != string::npos)
      return bad;
    begin = end + 1;
  }
  return std::nullopt;
}

optional<string> host_port(const string& value) {
  auto colon = value.rfind(':');
  if (colon == string::npos || colon == 0)
    return "not HOST:PORT: '" + value + "'";
  auto port = value.substr(colon + 1);
  // Port 0 asks for any free port (the HTTP= line tells which).
  if (port != "0" && !is_port(port))
    return "not HOST:PORT: '" + value + "'";
  return std::nullopt;
}

// Never echoes any part of the value: whatever stands left or right of a
// colon may be (part of) a secret.
optional<string> api_token(const string& value) {
  auto colon = value.rfind(':');
  if (colon == string::npos || colon == 0)
    return string{"not TOKEN:SCOPE"};
  auto scope = value.substr(colon + 1);
  if (scope != "read" && scope != "admin")
    return string{"not TOKEN:SCOPE with scope read or admin"};
  if (colon < 16)
    return string{"token shorter than 16 characters"};
  // A bearer token (RFC 6750 token68). This also catches a comma-separated
  // list written where one token belongs (a configuration file line), which
  // would otherwise be taken as one odd token.
  for (std::size_t i = 0; i < colon; ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_' && c != '~'
        && c != '+' && c != '/' && c != '=')
      return string{"token may contain only letters, digits and - . _ ~ + / ="};
  }
  return std::nullopt;
}

/// One scope per token: a token listed as read and as admin was taken as
/// admin without a word. (The token itself is not echoed.)
optional<string> token_with_two_scopes(const std::vector<string>& entries) {
  std::map<string, string> scopes;
  for (const auto& entry : entries) {
    auto colon = entry.rfind(':');
    auto [listed, fresh] = scopes.emplace(entry.substr(0, colon),
                                          entry.substr(colon + 1));
    if (!fresh && listed->second != entry.substr(colon + 1))
      return string{"a token is listed with two scopes (read and admin)"};
  }
  return std::nullopt;
}

/// Why a librdkafka property is the service's to set, if it is: what the
/// contract or crash safety depends on. Passing it through (operator
/// properties win over the service's) broke them without a word.
/// The service's own value may be repeated (hardened configurations list
/// `acks=all`); any other is refused. A `topic.` prefix sets the same
/// property for every topic, so it is looked through.
optional<string> reserved_kafka_property(const string& key,
                                         const string& value) {
  struct reservation {
    std::vector<string> allowed; // the service's own value first
    const char* why;
  };
  static const std::map<string, reservation> reserved{
    {"bootstrap.servers", {{}, "use --kafka-bootstrap"}},
    {"metadata.broker.list", {{}, "use --kafka-bootstrap"}},
    {"group.id", {{}, "use --consumer-group"}},
    {"partitioner",
     {{"murmur2_random"},
      "co-partitioning needs murmur2_random (messages.md)"}},
    {"partitioner_cb", {{}, "co-partitioning needs murmur2 (messages.md)"}},
    {"enable.idempotence", {{"true"}, "events are published idempotently"}},
    {"acks", {{"all", "-1"}, "events are published with acks=all"}},
    {"request.required.acks",
     {{"all", "-1"}, "events are published with acks=all"}},
    {"enable.auto.commit",
     {{"false"}, "positions are committed with each batch"}},
    {"enable.auto.offset.store",
     {{"false"}, "positions are committed with each batch"}},
    {"auto.offset.reset",
     {{"error"}, "a position Kafka no longer has is counted as a gap"}},
    {"partition.assignment.strategy",
     {{"cooperative-sticky"},
      "revocation is handled for the cooperative-sticky assignor"}},
    {"group.protocol.type", {{}, "the group protocol is the service's"}},
    {"transactional.id", {{}, "the service does not use transactions"}},
    {"isolation.level",
     {{"read_committed"}, "the service reads committed records"}},
  };
  auto name = key.rfind("topic.", 0) == 0 ? key.substr(6) : key;
  auto it = reserved.find(name);
  if (it == reserved.end())
    return std::nullopt;
  const auto& allowed = it->second.allowed;
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end())
    return std::nullopt;
  string why = it->second.why;
  if (!allowed.empty())
    why += " (only " + allowed.front() + " is accepted)";
  return why;
}

optional<string> kafka_property(const string& value) {
  auto eq = value.find('=');
  if (eq == string::npos)
    return "not KEY=VALUE: '" + value + "'";
  // Values may be secrets (sasl.password): not echoed.
  if (eq == 0)
    return string{"not KEY=VALUE: the key is empty"};
  auto key = value.substr(0, eq);
  if (auto why = reserved_kafka_property(key, value.substr(eq + 1)))
    return "librdkafka property " + key + " is not configurable: " + *why;
  // Checked as librdkafka will check it, before anything starts (it used
  // to fail with exit status 1 once the embedded servers were up).
  auto setting = value.substr(eq + 1);
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf{
    rd_kafka_conf_new(), &rd_kafka_conf_destroy};
  char reason[512] = {0};
  if (rd_kafka_conf_set(conf.get(), key.c_str(), setting.c_str(), reason,
                        sizeof(reason))
      == RD_KAFKA_CONF_OK)
    return std::nullopt;
  string why = reason;
  if (!setting.empty() && why.find(setting) != string::npos)
    why = "librdkafka refuses its value";
  return "librdkafka property " + key + ": " + why;
}

optional<string> log_level(const string& value) {
  if (value == "debug" || value == "info" || value == "warning"
      || value == "error")
    return std::nullopt;
  return "not one of debug, info, warning, error: '" + value + "'";
}

optional<string> topic_name(const string& value) {
  if (value.empty() || value.size() > 249)
    return "not a Kafka topic name: '" + value + "'";
  for (auto c : value)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_'
        && c != '-')
      return "not a Kafka topic name: '" + value + "'";
  return std::nullopt;
}

/// A positive integer no larger than `limit`.
optional<string> count_up_to(const string& value, long long limit) {
  if (auto err = positive_integer(value))
    return err;
  if (std::stoll(value) > limit)
    return "at most " + std::to_string(limit) + ": '" + value + "'";
  return std::nullopt;
}

optional<string> small_count(const string& value) {
  return count_up_to(value, max_mock_partitions);
}

/// Commit connections: one per lane, each a thread and a PostgreSQL
/// backend; more than the cores gain nothing (docs/benchmarks.md).
optional<string> connection_count(const string& value) {
  return count_up_to(value, 16);
}

optional<string> broker_count(const string& value) {
  return count_up_to(value, max_mock_brokers);
}

string trim(const string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == string::npos)
    return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// `\,` is a comma inside an item: librdkafka values such as `debug=cgrp,topic`
// or `sasl.oauthbearer.extensions=a=1,b=2` hold commas. Any other backslash
// stays as it is.
std::vector<string> split_commas(const string& value) {
  std::vector<string> result;
  string item;
  auto take = [&] {
    if (auto t = trim(item); !t.empty())
      result.push_back(t);
    item.clear();
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == ',') {
      item.push_back(',');
      ++i;
    } else if (value[i] == ',') {
      take();
    } else {
      item.push_back(value[i]);
    }
  }
  take();
  return result;
}

/// `where` is the `file:line` of a value from the configuration file.
string describe_origin(const option_spec& spec, const string& origin,
                       const string& where = {}) {
  if (origin == "env")
    return "--" + spec.name + " (" + spec.env + " from the environment)";
  if (origin == "file")
    return "--" + spec.name + " ("
           + (where.empty() ? string{"in the configuration file"} : where)
           + ")";
  return "--" + spec.name;
}

} // namespace

optional<std::chrono::milliseconds> parse_duration(const string& text) {
  if (text.empty())
    return std::nullopt;
  size_t digits = 0;
  while (digits < text.size()
         && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0 || digits > 12)
    return std::nullopt;
  auto n = std::stoll(text.substr(0, digits));
  auto unit = text.substr(digits);
  std::int64_t unit_ms = 0;
  // A bare number has no unit: `--dedup-window 604800` meant as seconds
  // was about 10 minutes of milliseconds.
  if (unit == "ms")
    unit_ms = 1;
  else if (unit == "s")
    unit_ms = 1000;
  else if (unit == "m")
    unit_ms = 60 * 1000;
  else if (unit == "h")
    unit_ms = 3600 * 1000;
  else if (unit == "d")
    unit_ms = 24 * 3600 * 1000;
  else
    return std::nullopt;
  // Twelve digits of days would overflow (and wrap to a short window);
  // nothing here is meant to last a century.
  constexpr std::int64_t century_ms = std::int64_t{100} * 366 * 24 * 3600
                                      * 1000;
  if (n > century_ms / unit_ms)
    return std::nullopt;
  return std::chrono::milliseconds{n * unit_ms};
}

optional<string>
bootstrap_protocol_problem(const string& bootstrap,
                           const std::vector<string>& kafka_properties) {
  // The last one wins, as librdkafka applies them in order.
  string security = "plaintext";
  for (const auto& property : kafka_properties)
    if (property.rfind("security.protocol=", 0) == 0)
      security = lowercase(property.substr(property.find('=') + 1));
  std::size_t begin = 0;
  while (begin <= bootstrap.size()) {
    auto end = std::min(bootstrap.find(',', begin), bootstrap.size());
    auto entry = trim(bootstrap.substr(begin, end - begin));
    if (auto scheme = entry.find("://"); scheme != string::npos) {
      auto protocol = lowercase(entry.substr(0, scheme));
      if (protocol != security)
        return "'" + entry + "' names protocol " + protocol
               + ", but security.protocol is " + security
               + " (librdkafka uses no broker then; set --kafka-property "
                 "security.protocol="
               + protocol + ")";
    }
    begin = end + 1;
  }
  return std::nullopt;
}

const std::vector<option_spec>& serve_options() {
  using k = option_kind;
  static const std::vector<option_spec> specs{
    {"config", "SEATLEDGER_CONFIG", "configuration file (name = value lines)",
     k::text, "", set_or_unset("no configuration file")},
    {"kafka-bootstrap", "SEATLEDGER_KAFKA_BOOTSTRAP",
     "Kafka bootstrap servers; unset: an embedded mock cluster", k::text, "",
     bootstrap_servers},
    {"kafka-property", "SEATLEDGER_KAFKA_PROPERTIES",
     "librdkafka client property KEY=VALUE, passed through (security "
     "protocol, SASL, TLS …); repeatable, comma-separated in the variable "
     "(\\, for a comma in a value)",
     k::list, "", kafka_property},
    {"database-url", "SEATLEDGER_DATABASE_URL",
     "PostgreSQL connection string (libpq URI or key=value); unset: an "
     "embedded server under --data-dir",
     k::text, "", connection_string},
    {"http-listen", "SEATLEDGER_HTTP_LISTEN", "HTTP address HOST:PORT", k::text,
     "0.0.0.0:8080", host_port},
    {"api-token", "SEATLEDGER_API_TOKENS",
     "API token TOKEN:SCOPE (scope read or admin; TOKEN at least 16 of "
     "A-Z a-z 0-9 - . _ ~ + / =); repeatable, comma-separated in the "
     "variable",
     k::list, "", api_token, true, token_with_two_scopes},
    {"signing-key", "SEATLEDGER_SIGNING_KEY_FILE",
     "PEM file of the Ed25519 signing key; unset: a key pair under "
     "--data-dir/keys, created on first start",
     k::text, "", set_or_unset("a key pair under --data-dir/keys")},
    {"trusted-key", "SEATLEDGER_TRUSTED_KEY_FILES",
     "PEM file of a public key trusted for verification besides the signing "
     "key's own; repeatable, comma-separated in the variable",
     k::list, "", non_empty},
    {"consumer-group", "SEATLEDGER_CONSUMER_GROUP", "Kafka consumer group",
     k::text, "seatledger", non_empty},
    {"source", "SEATLEDGER_SOURCE",
     "CloudEvents source of the events seatledger publishes", k::text,
     "seatledger", cloudevents_source},
    {"topic-membership", "SEATLEDGER_TOPIC_MEMBERSHIP", "membership topic",
     k::text, "seatledger.membership.v1", topic_name},
    {"topic-subscriptions", "SEATLEDGER_TOPIC_SUBSCRIPTIONS",
     "subscription command topic", k::text, "seatledger.subscriptions.v1",
     topic_name},
    {"topic-catalog", "SEATLEDGER_TOPIC_CATALOG", "catalog topic", k::text,
     "seatledger.catalog.v1", topic_name},
    {"topic-deltas", "SEATLEDGER_TOPIC_DELTAS",
     "internal seat-delta topic (same partition count as the command topic)",
     k::text, "seatledger.internal.seat-deltas.v1", topic_name},
    {"topic-events", "SEATLEDGER_TOPIC_EVENTS", "output event topic", k::text,
     "seatledger.events.v1", topic_name},
    {"topic-dlq", "SEATLEDGER_TOPIC_DLQ", "dead-letter topic", k::text,
     "seatledger.dlq.v1", topic_name},
    {"batch-max-records", "SEATLEDGER_BATCH_MAX_RECORDS",
     "largest number of records in one group commit", k::integer, "5000",
     positive_integer},
    {"commit-connections", "SEATLEDGER_COMMIT_CONNECTIONS",
     "PostgreSQL connections a batch commits on at once, each for its own "
     "share of the partitions",
     k::integer, "2", connection_count},
    {"commit-split-records", "SEATLEDGER_COMMIT_SPLIT_RECORDS",
     "a batch of fewer records commits in one transaction on one connection "
     "(a commit's fixed cost outweighs what a second saves)",
     k::integer, "1000", positive_integer},
    {"batch-linger", "SEATLEDGER_BATCH_LINGER",
     "how long a batch keeps gathering records after its first", k::duration,
     "3ms", pipeline_wait},
    {"poll-wait", "SEATLEDGER_POLL_WAIT",
     "how long to wait for the first record of a batch", k::duration, "50ms",
     pipeline_wait},
    {"actor-idle-timeout", "SEATLEDGER_ACTOR_IDLE_TIMEOUT",
     "org and subscription actors idle this long are passivated", k::duration,
     "5m", positive_duration},
    {"month-close-grace", "SEATLEDGER_MONTH_CLOSE_GRACE",
     "usage.month_closed is published within this time after a month ends",
     k::duration, "1h", positive_duration},
    {"max-event-time-ahead", "SEATLEDGER_MAX_EVENT_TIME_AHEAD",
     "an upstream event whose time is further ahead of this replica's clock "
     "is a dead letter (time_in_future)",
     k::duration, "1h", positive_duration},
    {"dedup-window", "SEATLEDGER_DEDUP_WINDOW",
     "how long (source, id) of applied upstream events is remembered",
     k::duration, "7d", positive_duration},
    {"data-dir", "SEATLEDGER_DATA_DIR",
     "where embedded defaults keep their data (PostgreSQL, keys)", k::text,
     "./var", directory_or_absent},
    {"embedded-partitions", "SEATLEDGER_EMBEDDED_PARTITIONS",
     "partitions per topic of the embedded Kafka cluster", k::integer, "4",
     small_count},
    {"embedded-brokers", "SEATLEDGER_EMBEDDED_BROKERS",
     "brokers of the embedded Kafka cluster (as dev-kafka's --brokers)",
     k::integer, "1", broker_count},
    {"log-level", "SEATLEDGER_LOG_LEVEL", "debug, info, warning or error",
     k::text, "info", log_level},
    {"replica-id", "SEATLEDGER_REPLICA_ID",
     "this replica's name in lease records; unset: host name and pid", k::text,
     "", set_or_unset("host name and pid")},
  };
  return specs;
}

const string& settings::text(const string& name) const {
  static const string empty;
  auto it = values.find(name);
  if (it == values.end() || it->second.empty())
    return empty;
  return it->second.front();
}

std::int64_t settings::integer(const string& name) const {
  const auto& v = text(name);
  return v.empty() ? 0 : std::stoll(v);
}

std::chrono::milliseconds settings::duration(const string& name) const {
  return parse_duration(text(name)).value_or(std::chrono::milliseconds{0});
}

bool settings::boolean(const string& name) const {
  const auto& v = text(name);
  return v == "true" || v == "1" || v == "yes";
}

const std::vector<string>& settings::list(const string& name) const {
  static const std::vector<string> empty;
  auto it = values.find(name);
  return it == values.end() ? empty : it->second;
}

const string& settings::origin(const string& name) const {
  static const string none = "default";
  auto it = origins.find(name);
  return it == origins.end() ? none : it->second;
}

string settings::described(const string& name) const {
  for (const auto& spec : serve_options())
    if (spec.name == name) {
      auto line = file_lines.find(name);
      return describe_origin(
        spec, origin(name), line == file_lines.end() ? string{} : line->second);
    }
  return "--" + name;
}

std::map<string, string> process_environment() {
  std::map<string, string> result;
  for (auto** e = environ; e && *e; ++e) {
    string entry{*e};
    auto eq = entry.find('=');
    if (eq != string::npos)
      result[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return result;
}

namespace {

/// Kubernetes gives every pod variables for each Service of its namespace
/// (`<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT…`, `<NAME>_PORT…`); a Service
/// called `seatledger` must not make start-up fail on them.
bool is_kubernetes_service_link(const string& key) {
  auto starts = [&](const char* prefix) { return key.rfind(prefix, 0) == 0; };
  return key == "SEATLEDGER_SERVICE_HOST" || starts("SEATLEDGER_SERVICE_PORT")
         || key == "SEATLEDGER_PORT" || starts("SEATLEDGER_PORT_");
}

} // namespace

std::variant<settings, config_error>
resolve(const std::vector<option_spec>& specs, const flag_values& flags,
        const std::map<string, string>& environment) {
  settings result;
  auto fail = [](string message) {
    return config_error{"invalid configuration: " + std::move(message)};
  };
  std::map<string, const option_spec*> by_name;
  std::map<string, const option_spec*> by_env;
  for (const auto& spec : specs) {
    by_name[spec.name] = &spec;
    by_env[spec.env] = &spec;
  }
  // Every SEATLEDGER_* variable must be an option: a typo must not be
  // silently ignored.
  for (const auto& [key, value] : environment)
    if (key.rfind("SEATLEDGER_", 0) == 0 && by_env.count(key) == 0
        && !is_kubernetes_service_link(key))
      return fail(key + " (environment): unknown setting");
  for (const auto& [name, values] : flags)
    if (by_name.count(name) == 0)
      return fail("--" + name + ": unknown setting");
  // The configuration file: from the flag, else the environment.
  std::map<string, std::vector<string>> file_values;
  // `file:line` of each value in file_values.
  std::map<string, std::vector<string>> file_lines;
  string file;
  // Where the file was named, for the line that says it cannot be read.
  string file_setting = "--config";
  if (auto it = flags.find("config"); it != flags.end() && !it->second.empty())
    file = it->second.back();
  else if (auto env = environment.find("SEATLEDGER_CONFIG");
           env != environment.end()) {
    file = env->second;
    file_setting = "SEATLEDGER_CONFIG (environment)";
  }
  if (!file.empty()) {
    std::ifstream in{file};
    // A directory opens, and reading it only sets badbit: it would count
    // as an empty file.
    if (!in || std::filesystem::is_directory(file))
      return fail(file_setting + ": cannot read '" + file + "'");
    string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      // Editors on Windows start a UTF-8 file with a byte-order mark, which
      // made the first setting's name unknown.
      if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0)
        line.erase(0, 3);
      auto t = trim(line);
      if (t.empty() || t[0] == '#')
        continue;
      auto eq = t.find('=');
      if (eq == string::npos)
        return fail(file + ":" + std::to_string(number)
                    + ": not a 'name = value' line");
      auto key = trim(t.substr(0, eq));
      auto value = trim(t.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (by_name.count(key) == 0 || key == "config")
        return fail(file + ":" + std::to_string(number) + ": unknown setting '"
                    + key + "'");
      file_values[key].push_back(value);
      file_lines[key].push_back(file + ":" + std::to_string(number));
    }
    if (in.bad())
      return fail(file_setting + ": cannot read '" + file + "'");
  }
  for (const auto& spec : specs) {
    std::vector<string> values;
    string origin;
    if (auto it = flags.find(spec.name); it != flags.end()) {
      values = it->second;
      origin = "flag";
    } else if (auto env = environment.find(spec.env);
               env != environment.end()) {
      values = spec.kind == option_kind::list
                 ? split_commas(env->second)
                 : std::vector<string>{env->second};
      origin = "env";
      // As an empty single value is refused: most likely a template or
      // secret that rendered nothing (no API tokens: every request 401).
      if (values.empty())
        return fail(describe_origin(spec, origin)
                    + ": set but lists nothing; leave it unset for none");
    } else if (auto f = file_values.find(spec.name); f != file_values.end()) {
      values = f->second;
      origin = "file";
    } else {
      if (!spec.default_value.empty())
        values.push_back(spec.default_value);
      origin = "default";
    }
    auto where = [&](std::size_t i) {
      if (origin != "file")
        return string{};
      const auto& lines = file_lines[spec.name];
      return i < lines.size() ? lines[i] : string{};
    };
    if (spec.kind != option_kind::list && values.size() > 1)
      return fail(describe_origin(spec, origin, where(1))
                  + ": given more than once");
    // Validators never echo a secret option's value (see api_token).
    if (spec.validate)
      for (std::size_t i = 0; i < values.size(); ++i)
        if (auto err = spec.validate(values[i]))
          return fail(describe_origin(spec, origin, where(i)) + ": " + *err);
    if (spec.validate_together)
      if (auto err = spec.validate_together(values))
        return fail(describe_origin(spec, origin) + ": " + *err);
    result.values[spec.name] = std::move(values);
    result.origins[spec.name] = origin;
    if (origin == "file" && !where(0).empty())
      result.file_lines[spec.name] = where(0);
  }
  if (auto b = result.values.find("kafka-bootstrap");
      b != result.values.end() && !b->second.empty())
    if (auto problem = bootstrap_protocol_problem(
          b->second.front(), result.values["kafka-property"]))
      return fail(describe_origin(*by_name["kafka-bootstrap"],
                                  result.origins["kafka-bootstrap"])
                  + ": " + *problem);
  // Each topic has one role: an output topic that is also an input would
  // feed the service its own events or dead letters back, and two inputs
  // on one topic would read every record twice over.
  std::map<string, const option_spec*> topic_roles;
  for (const auto& spec : specs) {
    const auto& values = result.values[spec.name];
    if (spec.name.rfind("topic-", 0) != 0 || values.empty())
      continue;
    auto [taken, fresh] = topic_roles.emplace(values.front(), &spec);
    if (!fresh)
      return fail(describe_origin(spec, result.origins[spec.name]) + ": '"
                  + values.front() + "' is the --" + taken->second->name
                  + " topic already; each topic needs its own name");
  }
  return result;
}

} // namespace seatledger::config
