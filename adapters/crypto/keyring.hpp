#pragma once

// The service's keys: one Ed25519 signing key (a PEM file, loaded once and
// never logged) and any number of trusted public keys, so the signing key can
// rotate without invalidating licenses already issued.

#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace seatledger::paseto {
class trusted_keys;
} // namespace seatledger::paseto

namespace seatledger::crypto {

struct key_files {
  std::string signing_key_file;
  std::string public_key_file;
  /// The pair was written by this call (not found already there).
  bool created = false;
};

/// The key pair files in `dir`: `signing-key.pem` and `public-key.pem`.
key_files key_files_in(const std::string& dir);

/// The directory of the key pair serve creates under its data directory
/// when no signing key is configured.
std::string embedded_key_dir(const std::string& data_dir);

/// Writes a new key pair as `dir/signing-key.pem` (mode 0600) and
/// `dir/public-key.pem`. Refuses to overwrite existing files.
caf::expected<key_files> generate_key_pair(const std::string& dir);

/// The key pair under `dir`, generated on first use (embedded defaults).
caf::expected<key_files> ensure_key_pair(const std::string& dir);

class keyring {
public:
  ~keyring();

  static caf::expected<std::shared_ptr<const keyring>>
  load(const std::string& signing_key_file,
       const std::vector<std::string>& trusted_key_files);

  /// Why one of the files is not a readable Ed25519 public key PEM; no
  /// error when all are. Lets a refused configuration create nothing.
  static caf::error
  check_trusted_keys(const std::vector<std::string>& trusted_key_files);

  /// A PASETO v4.public token over the claims, footer naming the key.
  caf::expected<std::string> sign_license(const std::string& claims_json) const;

  /// `{…rest, "key_id", "signature"}` over the canonical bytes of the rest.
  caf::expected<std::string> sign_document(const std::string& rest_json) const;

  /// The PASERK k4.pid of the signing key.
  const std::string& key_id() const;

  /// The signing key's public key plus every trusted key.
  const paseto::trusted_keys& trusted() const;

  struct impl;

private:
  explicit keyring(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::crypto
