#include "storage/conninfo.hpp"

#include <cstdlib>
#include <libpq-fe.h>
#include <map>
#include <optional>
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

} // namespace seatledger::storage
