#include "adapters/crypto/keyring.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

#include "messages/service_error.hpp"
#include "paseto/keys.hpp"
#include "paseto/license_verifier.hpp"
#include "paseto/paserk.hpp"
#include "paseto/signed_json.hpp"
#include "paseto/trusted_keys.hpp"

namespace seatledger::crypto {

namespace fs = std::filesystem;

struct keyring::impl {
  explicit impl(paseto::secret_key key) : signing(std::move(key)) {}

  paseto::secret_key signing;
  std::string key_id;
  paseto::trusted_keys trusted;
};

keyring::keyring(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

keyring::~keyring() = default;

key_files key_files_in(const std::string& dir) {
  return {(fs::path{dir} / "signing-key.pem").string(),
          (fs::path{dir} / "public-key.pem").string()};
}

std::string embedded_key_dir(const std::string& data_dir) {
  return (fs::path{data_dir} / "keys").string();
}

namespace {

/// Right after the failed write, while errno still says why (`keygen
/// --out /proc` said only "cannot write /proc/signing-key.pem").
caf::error cannot_write(const std::string& file) {
  int why = errno;
  return make_error(service_errc::internal,
                    "cannot write " + file
                      + (why != 0 ? std::string{": "} + std::strerror(why)
                                  : std::string{}));
}

} // namespace

caf::expected<key_files> generate_key_pair(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(service_errc::config_invalid,
                      "cannot create " + dir + ": " + ec.message());
  auto files = key_files_in(dir);
  if (fs::exists(files.signing_key_file) || fs::exists(files.public_key_file))
    return make_error(service_errc::conflict,
                      "refusing to overwrite " + files.signing_key_file + " or "
                        + files.public_key_file);
  auto key = paseto::secret_key::generate();
  if (!key)
    return make_error(service_errc::internal, "key generation failed");
  if (auto ok = paseto::save_pem_file(*key, files.signing_key_file); !ok)
    return cannot_write(files.signing_key_file);
  if (auto ok = paseto::save_pem_file(key->public_part(),
                                      files.public_key_file);
      !ok)
    return cannot_write(files.public_key_file);
  files.created = true;
  return files;
}

caf::expected<key_files> ensure_key_pair(const std::string& dir) {
  auto files = key_files_in(dir);
  if (fs::exists(files.signing_key_file)) {
    if (!fs::exists(files.public_key_file)) {
      auto key = paseto::load_secret_key_pem_file(files.signing_key_file);
      if (!key)
        return make_error(service_errc::config_invalid,
                          "cannot read " + files.signing_key_file);
      if (auto ok = paseto::save_pem_file(key->public_part(),
                                          files.public_key_file);
          !ok)
        return cannot_write(files.public_key_file);
    }
    return files;
  }
  return generate_key_pair(dir);
}

namespace {

caf::error unreadable_trusted_key(const std::string& file) {
  return make_error(service_errc::config_invalid,
                    "trusted key " + file
                      + ": not a readable Ed25519 public key PEM");
}

} // namespace

caf::error
keyring::check_trusted_keys(const std::vector<std::string>& trusted_key_files) {
  paseto::trusted_keys keys;
  for (const auto& file : trusted_key_files)
    if (!keys.add_pem_file(file))
      return unreadable_trusted_key(file);
  return caf::none;
}

caf::expected<std::shared_ptr<const keyring>>
keyring::load(const std::string& signing_key_file,
              const std::vector<std::string>& trusted_key_files) {
  auto key = paseto::load_secret_key_pem_file(signing_key_file);
  if (!key)
    return make_error(service_errc::config_invalid,
                      "signing key " + signing_key_file
                        + ": not a readable Ed25519 private key PEM ("
                        + std::string{paseto::to_string(key.error())} + ")");
  auto state = std::make_unique<impl>(*key);
  state->key_id = state->trusted.add(key->public_part());
  for (const auto& file : trusted_key_files) {
    auto added = state->trusted.add_pem_file(file);
    if (!added)
      return unreadable_trusted_key(file);
  }
  return std::shared_ptr<const keyring>(new keyring(std::move(state)));
}

caf::expected<std::string>
keyring::sign_license(const std::string& claims_json) const {
  auto token = paseto::sign_license(impl_->signing, claims_json);
  if (!token)
    return make_error(service_errc::internal,
                      std::string{"cannot sign license: "}
                        + std::string{paseto::to_string(token.error())});
  return std::move(*token);
}

caf::expected<std::string>
keyring::sign_document(const std::string& rest_json) const {
  auto doc = paseto::sign_json_document(impl_->signing, rest_json);
  if (!doc)
    return make_error(service_errc::internal,
                      std::string{"cannot sign document: "}
                        + std::string{paseto::to_string(doc.error())});
  return std::move(*doc);
}

const std::string& keyring::key_id() const {
  return impl_->key_id;
}

const paseto::trusted_keys& keyring::trusted() const {
  return impl_->trusted;
}

} // namespace seatledger::crypto
