#pragma once

#include <string>
#include <utility>
#include <variant>

namespace seatledger::domain {

/// Why a well-formed command was not applied. The string forms are the
/// stable `reason` codes of `seatledger.command.rejected`; the numeric values
/// are stable too (never reuse or reorder).
enum class rejection_code : int {
  unknown_subscription = 1,
  subscription_exists = 2,
  subscription_expired = 3,
  subscription_archived = 4,
  invalid_term = 5,
  instance_domain_locked = 6,
  missing_salesforce_account = 7,
  unknown_plan = 8,
  not_a_trial = 9,
  invalid_expires_at = 10,
};

/// Every code, in numeric order (the metrics start a series for each).
inline constexpr rejection_code all_rejection_codes[] = {
  rejection_code::unknown_subscription,
  rejection_code::subscription_exists,
  rejection_code::subscription_expired,
  rejection_code::subscription_archived,
  rejection_code::invalid_term,
  rejection_code::instance_domain_locked,
  rejection_code::missing_salesforce_account,
  rejection_code::unknown_plan,
  rejection_code::not_a_trial,
  rejection_code::invalid_expires_at,
};

const char* to_string(rejection_code code);

struct rejection {
  rejection_code code;
  std::string message;
};

/// The domain's small result type: a value or a rejection. (The domain has no
/// CAF; actors turn rejections into `command.rejected` events.)
template<class T>
class result {
public:
  result(T value) : data_(std::move(value)) {}

  result(rejection error) : data_(std::move(error)) {}

  explicit operator bool() const {
    return std::holds_alternative<T>(data_);
  }

  T& value() {
    return std::get<T>(data_);
  }

  const T& value() const {
    return std::get<T>(data_);
  }

  const rejection& error() const {
    return std::get<rejection>(data_);
  }

private:
  std::variant<T, rejection> data_;
};

} // namespace seatledger::domain
