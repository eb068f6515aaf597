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
