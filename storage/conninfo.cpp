#include "storage/conninfo.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <libpq-fe.h>
#include <map>
#include <memory>
#include <optional>
#include <poll.h>
#include <utility>
#include <vector>

namespace seatledger::storage {

namespace {

std::string quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

/// The settings `conninfo` sets, in libpq's order; nothing when libpq
/// cannot parse it.
std::optional<std::vector<std::pair<std::string, std::string>>>
settings_of(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> result;
  for (auto* o = options; o->keyword != nullptr; ++o)
    if (o->val != nullptr)
      result.emplace_back(o->keyword, o->val);
  PQconninfoFree(options);
  return result;
}

/// `key='value'` pairs separated by blanks.
void append_setting(std::string& out, const std::string& key,
                    const std::string& quoted_value) {
  if (!out.empty())
    out.push_back(' ');
  out += key;
  out.push_back('=');
  out += quoted_value;
}

} // namespace

std::string with_network_timeouts(const std::string& conninfo) {
  auto given = settings_of(conninfo);
  if (!given)
    return conninfo;
  std::map<std::string, std::string> defaults{{"keepalives", "1"},
                                              {"keepalives_idle", "10"},
                                              {"keepalives_interval", "5"},
                                              {"keepalives_count", "3"},
                                              {"tcp_user_timeout", "30000"}};
  // libpq reads PGCONNECT_TIMEOUT for an unset connect_timeout: an
  // operator's environment wins over this default.
  if (std::getenv("PGCONNECT_TIMEOUT") == nullptr)
    defaults.emplace("connect_timeout", "10");
  std::string result;
  for (const auto& [key, value] : *given) {
    append_setting(result, key, quoted(value));
    defaults.erase(key);
  }
  for (const auto& [key, value] : defaults)
    append_setting(result, key, quoted(value));
  return result;
}

std::string without_password(const std::string& conninfo) {
  auto given = settings_of(conninfo);
  if (!given)
    return conninfo;
  bool has_password = false;
  std::string result;
  for (const auto& [key, value] : *given) {
    bool secret = key == "password";
    has_password = has_password || secret;
    append_setting(result, key, secret ? "'********'" : quoted(value));
  }
  return has_password ? result : conninfo;
}

std::string sqlstate_in(const std::string& verbose_message) {
  // Verbose messages read "<severity>:  <SQLSTATE>: <text>"; the severity
  // may be translated, the five-character code is not.
  for (auto at = verbose_message.find(":  "); at != std::string::npos;
       at = verbose_message.find(":  ", at + 1)) {
    auto code = at + 3;
    if (code + 7 > verbose_message.size())
      break;
    bool well_formed = verbose_message.compare(code + 5, 2, ": ") == 0;
    for (std::size_t i = code; well_formed && i < code + 5; ++i) {
      auto c = static_cast<unsigned char>(verbose_message[i]);
      well_formed = std::isdigit(c) || std::isupper(c);
    }
    if (well_formed)
      return verbose_message.substr(code, 5);
  }
  return {};
}

std::optional<std::string> lasting_refusal(const std::string& conninfo,
                                           std::chrono::milliseconds timeout) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn{
    PQconnectStart(with_network_timeouts(conninfo).c_str()), &PQfinish};
  if (conn == nullptr || PQstatus(conn.get()) == CONNECTION_BAD)
    return std::nullopt; // out of memory or an unparsable string
  // With the SQLSTATE in the message, the refusal's kind does not depend on
  // the server's lc_messages.
  PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto polling = PGRES_POLLING_WRITING;
  while (polling != PGRES_POLLING_OK && polling != PGRES_POLLING_FAILED) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    pollfd socket{
      PQsocket(conn.get()),
      static_cast<short>(polling == PGRES_POLLING_READING ? POLLIN : POLLOUT),
      0};
    if (::poll(&socket, 1, static_cast<int>(left.count())) < 0
        && errno != EINTR)
      return std::nullopt;
    polling = PQconnectPoll(conn.get());
  }
  if (polling == PGRES_POLLING_OK)
    return std::nullopt;
  std::string message = PQerrorMessage(conn.get());
  auto code = sqlstate_in(message);
  if (PQconnectionNeedsPassword(conn.get()) == 0 && code != "28P01")
    return std::nullopt;
  // Without the verbose form's source location of the server.
  std::string text;
  std::size_t start = 0;
  while (start < message.size()) {
    auto end = std::min(message.find('\n', start), message.size());
    auto line = message.substr(start, end - start + 1);
    start = end + 1;
    if (line.rfind("LOCATION:", 0) != 0)
      text += line;
  }
  return text;
}

} // namespace seatledger::storage
