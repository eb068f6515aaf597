#include "domain/commands.hpp"

namespace seatledger::domain {

const std::string& org_id_of(const membership_change& change) {
  return std::visit(
    [](const auto& x) -> const std::string& { return x.org_id; }, change);
}

const std::string& subscription_id_of(const subscription_command& command) {
  return std::visit(
    [](const auto& x) -> const std::string& { return x.subscription_id; },
    command);
}

const char* to_string(instance_type type) {
  switch (type) {
    case instance_type::primary: return "PRIMARY";
    case instance_type::secondary: return "SECONDARY";
    case instance_type::internal: return "INTERNAL";
  }
  return "PRIMARY";
}

std::optional<instance_type> parse_instance_type(std::string_view text) {
  if (text == "PRIMARY")
    return instance_type::primary;
  if (text == "SECONDARY")
    return instance_type::secondary;
  if (text == "INTERNAL")
    return instance_type::internal;
  return std::nullopt;
}

} // namespace seatledger::domain
