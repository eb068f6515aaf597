// Error reporting for the paseto library. Nothing in the public API throws:
// a license check runs on customer instances where an escaping exception
// would take the whole service down, so every failure is a value.
#pragma once

#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace seatledger::paseto {

/// Why an operation of this library failed.
enum class errc {
  /// Not canonical unpadded base64url.
  invalid_base64,
  /// A token's header is not exactly the one expected (e.g. `v4.public.`).
  invalid_header,
  /// A token's structure or length is wrong.
  invalid_token,
  /// Key material of the wrong length, type or inconsistent halves.
  invalid_key,
  /// A PASERK string of the wrong version, type or length.
  invalid_paserk,
  /// PEM text that does not hold an Ed25519 key of the expected kind.
  invalid_pem,
  /// JSON that does not parse or does not have the required shape.
  invalid_json,
  /// A time that is not RFC 3339 or is out of range.
  invalid_time,
  /// The signature does not verify.
  bad_signature,
  /// No trusted key matches the key id.
  unknown_key,
  /// A file could not be read or written.
  io_error,
  /// An argument outside its documented range.
  invalid_argument,
  /// libcrypto failed internally (allocation, RNG not seeded).
  crypto_failure,
  /// A file larger than what is read for its purpose (a key file of
  /// megabytes, `/dev/zero`).
  file_too_large,
  /// A JSON document without the `key_id` and `signature` strings a signed
  /// document carries (an unsigned usage report, say).
  not_signed,
};

/// The enumerator's name, e.g. "bad_signature".
std::string_view to_string(errc x) noexcept;

/// Either a value or the reason why there is none.
template<class T>
class [[nodiscard]] result {
public:
  using value_type = T;

  result(T value) : data_(std::in_place_index<0>, std::move(value)) {
    // nop
  }

  result(errc err) : data_(std::in_place_index<1>, err) {
    // nop
  }

  bool has_value() const noexcept {
    return data_.index() == 0;
  }

  explicit operator bool() const noexcept {
    return has_value();
  }

  // Calling value() on an error is a programming bug, not an input error,
  // so std::get's std::bad_variant_access is the loudest honest answer.

  /// Precondition: `has_value()`.
  T& value() & {
    return std::get<0>(data_);
  }

  /// Precondition: `has_value()`.
  const T& value() const& {
    return std::get<0>(data_);
  }

  /// Precondition: `has_value()`.
  T&& value() && {
    return std::get<0>(std::move(data_));
  }

  T& operator*() & {
    return value();
  }

  const T& operator*() const& {
    return value();
  }

  T* operator->() {
    return &value();
  }

  const T* operator->() const {
    return &value();
  }

  /// The reason for the failure; `errc{}` if there was none.
  errc error() const noexcept {
    auto* err = std::get_if<1>(&data_);
    return err != nullptr ? *err : errc{};
  }

private:
  std::variant<T, errc> data_;
};

/// Success without a value, or the reason for the failure.
template<>
class [[nodiscard]] result<void> {
public:
  using value_type = void;

  result() = default;

  result(errc err) : failed_(true), err_(err) {
    // nop
  }

  bool has_value() const noexcept {
    return !failed_;
  }

  explicit operator bool() const noexcept {
    return has_value();
  }

  /// The reason for the failure; `errc{}` if there was none.
  errc error() const noexcept {
    return err_;
  }

private:
  bool failed_ = false;
  errc err_ = errc{};
};

} // namespace seatledger::paseto
