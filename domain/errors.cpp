#include "domain/errors.hpp"

namespace seatledger::domain {

const char* to_string(rejection_code code) {
  switch (code) {
    case rejection_code::unknown_subscription: return "unknown_subscription";
    case rejection_code::subscription_exists: return "subscription_exists";
    case rejection_code::subscription_expired: return "subscription_expired";
    case rejection_code::subscription_archived: return "subscription_archived";
    case rejection_code::invalid_term: return "invalid_term";
    case rejection_code::instance_domain_locked:
      return "instance_domain_locked";
    case rejection_code::missing_salesforce_account:
      return "missing_salesforce_account";
    case rejection_code::unknown_plan: return "unknown_plan";
    case rejection_code::not_a_trial: return "not_a_trial";
    case rejection_code::invalid_expires_at: return "invalid_expires_at";
  }
  return "unknown";
}

} // namespace seatledger::domain
