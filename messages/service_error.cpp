#include "messages/service_error.hpp"

namespace seatledger {

const char* to_string(service_errc code) {
  switch (code) {
    case service_errc::fenced: return "fenced";
    case service_errc::storage_unavailable: return "storage_unavailable";
    case service_errc::storage_failure: return "storage_failure";
    case service_errc::ledger_broken: return "ledger_broken";
    case service_errc::not_found: return "not_found";
    case service_errc::bad_request: return "bad_request";
    case service_errc::conflict: return "conflict";
    case service_errc::kafka_failure: return "kafka_failure";
    case service_errc::config_invalid: return "config_invalid";
    case service_errc::timeout: return "timeout";
    case service_errc::internal: return "internal";
    case service_errc::already_applied: return "already_applied";
  }
  return "internal";
}

std::string describe(const caf::error& err) {
  if (!err)
    return "ok";
  std::string result;
  if (err.category() == service_error_category)
    result = to_string(static_cast<service_errc>(err.code()));
  else
    result = caf::to_string(err.category()) + ":" + std::to_string(err.code());
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    result += ": ";
    result += ctx.get_as<std::string>(0);
  }
  return result;
}

std::string message_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

} // namespace seatledger
