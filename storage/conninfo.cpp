#include "storage/conninfo.hpp"

#include <cstdlib>
#include <cstring>
#include <libpq-fe.h>
#include <map>

namespace seatledger::storage {

namespace {

std::string quoted(const char* value) {
  std::string out = "'";
  for (const char* c = value; *c; ++c) {
    if (*c == '\'' || *c == '\\')
      out.push_back('\\');
    out.push_back(*c);
  }
  out.push_back('\'');
  return out;
}

} // namespace

std::string with_network_timeouts(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return conninfo;
  }
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
  auto add = [&result](const char* key, const char* value) {
    if (!result.empty())
      result.push_back(' ');
    result += key;
    result.push_back('=');
    result += quoted(value);
  };
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr)
      continue;
    add(o->keyword, o->val);
    defaults.erase(o->keyword);
  }
  PQconninfoFree(options);
  for (const auto& [key, value] : defaults)
    add(key.c_str(), value.c_str());
  return result;
}

std::string without_password(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return conninfo;
  }
  bool has_password = false;
  std::string result;
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr)
      continue;
    bool secret = std::strcmp(o->keyword, "password") == 0;
    has_password = has_password || secret;
    if (!result.empty())
      result.push_back(' ');
    result += o->keyword;
    result.push_back('=');
    result += secret ? std::string{"'********'"} : quoted(o->val);
  }
  PQconninfoFree(options);
  return has_password ? result : conninfo;
}

} // namespace seatledger::storage
