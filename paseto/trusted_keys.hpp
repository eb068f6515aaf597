// The set of public keys a verifier accepts, by PASERK key id.
#pragma once

#include "paseto/keys.hpp"
#include "paseto/result.hpp"

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace seatledger::paseto {

/// Public keys indexed by their k4.pid. Holding several keys at once is what
/// makes key rotation possible: tokens signed by the old key keep verifying
/// while new ones are signed by the new key.
class trusted_keys {
public:
  /// Trusts `key` and returns its k4.pid. Adding a key twice is harmless.
  std::string add(const public_key& key);

  /// Parses a public key PEM and trusts it; returns its k4.pid.
  result<std::string> add_pem(std::string_view pem);

  /// Reads a public key PEM file and trusts it; returns its k4.pid.
  result<std::string> add_pem_file(const std::string& path);

  /// The key whose k4.pid is `pid`, or null. The pointer stays valid until
  /// the set is changed.
  const public_key* find(std::string_view pid) const;

  bool contains(std::string_view pid) const {
    return find(pid) != nullptr;
  }

  std::size_t size() const noexcept {
    return keys_.size();
  }

  bool empty() const noexcept {
    return keys_.empty();
  }

  /// All trusted key ids, sorted.
  std::vector<std::string> key_ids() const;

private:
  std::map<std::string, public_key, std::less<>> keys_;
};

} // namespace seatledger::paseto
