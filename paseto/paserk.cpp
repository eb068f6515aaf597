#include "paseto/paserk.hpp"

#include "paseto/base64url.hpp"
#include "paseto/blake2b.hpp"
#include "paseto/detail/ed25519.hpp"

namespace seatledger::paseto {

namespace {

constexpr std::size_t pid_hash_size = 33;

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

} // namespace

std::string paserk_public(const public_key& key) {
  std::string out{paserk_public_prefix};
  out += base64url_encode(key.bytes().data(), key.bytes().size());
  return out;
}

std::string paserk_secret(const secret_key& key) {
  std::string out{paserk_secret_prefix};
  out += base64url_encode(key.bytes().data(), key.bytes().size());
  return out;
}

std::string paserk_pid(const public_key& key) {
  std::string input{paserk_pid_prefix};
  input += paserk_public(key);
  std::string out{paserk_pid_prefix};
  // Cannot fail: 33 is a valid BLAKE2b output length.
  out += base64url_encode(*blake2b(input, pid_hash_size));
  return out;
}

result<public_key> parse_paserk_public(std::string_view paserk) {
  if (!starts_with(paserk, paserk_public_prefix))
    return errc::invalid_paserk;
  auto raw = base64url_decode(paserk.substr(paserk_public_prefix.size()));
  if (!raw || raw->size() != public_key::size)
    return errc::invalid_paserk;
  return public_key::from_bytes(*raw);
}

result<secret_key> parse_paserk_secret(std::string_view paserk) {
  if (!starts_with(paserk, paserk_secret_prefix))
    return errc::invalid_paserk;
  auto raw = base64url_decode(paserk.substr(paserk_secret_prefix.size()));
  if (!raw)
    return errc::invalid_paserk;
  auto out = raw->size() == secret_key::size
               ? secret_key::from_bytes(*raw)
               : result<secret_key>{errc::invalid_paserk};
  detail::wipe(raw->data(), raw->size());
  return out;
}

bool is_paserk_pid(std::string_view text) {
  if (!starts_with(text, paserk_pid_prefix))
    return false;
  auto raw = base64url_decode(text.substr(paserk_pid_prefix.size()));
  return raw && raw->size() == pid_hash_size;
}

} // namespace seatledger::paseto
