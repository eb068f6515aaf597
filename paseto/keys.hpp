// Ed25519 key material for PASETO v4.public.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "paseto/result.hpp"

namespace seatledger::paseto {

/// An Ed25519 public key: 32 raw bytes.
class public_key {
public:
  static constexpr std::size_t size = 32;

  /// Fails with `errc::invalid_key` unless `size` is 32. Any 32 bytes are
  /// accepted (PASERK serializes them as they are); a key that is not a valid
  /// curve point simply never verifies anything.
  static result<public_key> from_bytes(const std::uint8_t* data,
                                       std::size_t size);

  static result<public_key> from_bytes(std::string_view bytes);

  const std::array<std::uint8_t, size>& bytes() const noexcept {
    return bytes_;
  }

  friend bool operator==(const public_key& x, const public_key& y) noexcept {
    return x.bytes_ == y.bytes_;
  }

  friend bool operator!=(const public_key& x, const public_key& y) noexcept {
    return !(x == y);
  }

private:
  public_key() = default;

  std::array<std::uint8_t, size> bytes_{};
};

/// An Ed25519 secret key as PASERK k4.secret stores it: the 32-byte seed
/// followed by the 32-byte public key. Always consistent: every way to make
/// one checks (or derives) the public half, since a mismatched half would
/// sign tokens that no verifier accepts.
class secret_key {
public:
  static constexpr std::size_t size = 64;
  static constexpr std::size_t seed_size = 32;

  /// A new key from OpenSSL's RNG.
  static result<secret_key> generate();

  /// The key for a 32-byte seed (`errc::invalid_key` otherwise).
  static result<secret_key> from_seed(const std::uint8_t* data,
                                      std::size_t size);

  static result<secret_key> from_seed(std::string_view bytes);

  /// A key from seed||public key (64 bytes). Fails with `errc::invalid_key`
  /// on another length or when the public half does not belong to the seed.
  static result<secret_key> from_bytes(const std::uint8_t* data,
                                       std::size_t size);

  static result<secret_key> from_bytes(std::string_view bytes);

  secret_key(const secret_key&) = default;

  secret_key& operator=(const secret_key&) = default;

  /// Wipes the key material.
  ~secret_key();

  /// Seed||public key.
  const std::array<std::uint8_t, size>& bytes() const noexcept {
    return bytes_;
  }

  const std::uint8_t* seed() const noexcept {
    return bytes_.data();
  }

  public_key public_part() const;

private:
  secret_key() = default;

  std::array<std::uint8_t, size> bytes_{};
};

/// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) holding an
/// Ed25519 key. Encrypted keys are rejected rather than prompted for.
result<secret_key> secret_key_from_pem(std::string_view pem);

/// Parses a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) holding an
/// Ed25519 key.
result<public_key> public_key_from_pem(std::string_view pem);

/// A file's whole content; `io_error` when it cannot be read (missing,
/// unreadable, or a directory), `file_too_large` when it holds more than
/// `max_bytes` (read no further: `/dev/zero` or a huge file given by
/// mistake would exhaust memory).
result<std::string> read_text_file(const std::string& path,
                                   std::size_t max_bytes);

/// What a key file is read up to: an Ed25519 PEM is about 120 bytes, with
/// room for comments and a certificate chain pasted beside it.
constexpr std::size_t max_key_file_bytes = 64 * 1024;

/// Reads a file and parses it like `secret_key_from_pem`.
result<secret_key> load_secret_key_pem_file(const std::string& path);

/// Reads a file and parses it like `public_key_from_pem`.
result<public_key> load_public_key_pem_file(const std::string& path);

/// The key as PKCS#8 PEM, ending in a newline; empty only if libcrypto fails
/// internally.
std::string to_pem(const secret_key& key);

/// The key as SubjectPublicKeyInfo PEM, ending in a newline; empty only if
/// libcrypto fails internally.
std::string to_pem(const public_key& key);

/// Writes `to_pem(key)` to `path`, readable by the owner only (mode 0600).
result<void> save_pem_file(const secret_key& key, const std::string& path);

/// Writes `to_pem(key)` to `path` (mode 0644).
result<void> save_pem_file(const public_key& key, const std::string& path);

} // namespace seatledger::paseto
