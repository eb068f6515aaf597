#include "paseto/keys.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <memory>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paseto/detail/ed25519.hpp"

namespace seatledger::paseto {

namespace {

struct pkey_deleter {
  void operator()(EVP_PKEY* ptr) const noexcept {
    EVP_PKEY_free(ptr);
  }
};

struct bio_deleter {
  void operator()(BIO* ptr) const noexcept {
    BIO_free(ptr);
  }
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

// Without a callback, OpenSSL asks for the passphrase of an encrypted key on
// the terminal, which would hang a service. Refusing makes it a parse error.
int refuse_passphrase(char*, int, int, void*) {
  return -1;
}

bio_ptr memory_bio(std::string_view text) {
  if (text.size() > static_cast<std::size_t>(INT_MAX))
    return nullptr;
  return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  auto len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr)
    return {};
  return std::string(data, static_cast<std::size_t>(len));
}

bool is_ed25519(EVP_PKEY* pkey) {
  return EVP_PKEY_is_a(pkey, "ED25519") == 1;
}

result<void> write_file(const std::string& path, const std::string& text,
                        mode_t mode) {
  if (text.empty())
    return errc::crypto_failure;
  // open() with the mode, rather than an ofstream, so that a secret key file
  // is never readable by others, not even for an instant.
  auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                   mode);
  if (fd < 0)
    return errc::io_error;
  // An existing file keeps its old mode through O_CREAT.
  auto ok = ::fchmod(fd, mode) == 0;
  const char* pos = text.data();
  auto left = text.size();
  while (ok && left > 0) {
    auto n = ::write(fd, pos, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    pos += n;
    left -= static_cast<std::size_t>(n);
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok)
    return errc::io_error;
  return {};
}

} // namespace

result<std::string> read_text_file(const std::string& path,
                                   std::size_t max_bytes) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return errc::io_error;
  // A directory opens; reading it fails, and libstdc++'s filebuf throws
  // then rather than setting badbit.
  try {
    std::string text;
    char chunk[16 * 1024];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
      text.append(chunk, static_cast<std::size_t>(in.gcount()));
      if (text.size() > max_bytes)
        return errc::file_too_large;
    }
    if (in.bad())
      return errc::io_error;
    return text;
  } catch (const std::ios_base::failure&) {
    return errc::io_error;
  }
}

// -- public_key ---------------------------------------------------------------

result<public_key> public_key::from_bytes(const std::uint8_t* data,
                                          std::size_t size) {
  if (size != public_key::size || data == nullptr)
    return errc::invalid_key;
  public_key out;
  std::memcpy(out.bytes_.data(), data, size);
  return out;
}

result<public_key> public_key::from_bytes(std::string_view bytes) {
  return from_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                    bytes.size());
}

// -- secret_key ---------------------------------------------------------------

result<secret_key> secret_key::generate() {
  std::array<std::uint8_t, seed_size> seed;
  if (RAND_priv_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    ERR_clear_error();
    return errc::crypto_failure;
  }
  auto out = from_seed(seed.data(), seed.size());
  detail::wipe(seed.data(), seed.size());
  return out;
}

result<secret_key> secret_key::from_seed(const std::uint8_t* data,
                                         std::size_t size) {
  if (size != seed_size || data == nullptr)
    return errc::invalid_key;
  auto pub = detail::ed25519_public_from_seed(data);
  if (!pub)
    return errc::crypto_failure;
  secret_key out;
  std::memcpy(out.bytes_.data(), data, seed_size);
  std::memcpy(out.bytes_.data() + seed_size, pub->data(), pub->size());
  return out;
}

result<secret_key> secret_key::from_seed(std::string_view bytes) {
  return from_seed(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                   bytes.size());
}

result<secret_key> secret_key::from_bytes(const std::uint8_t* data,
                                          std::size_t size) {
  if (size != secret_key::size || data == nullptr)
    return errc::invalid_key;
  auto out = from_seed(data, seed_size);
  if (!out)
    return out.error();
  if (!detail::equal_bytes(out->bytes_.data() + seed_size, data + seed_size,
                           size - seed_size))
    return errc::invalid_key;
  return out;
}

result<secret_key> secret_key::from_bytes(std::string_view bytes) {
  return from_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                    bytes.size());
}

secret_key::~secret_key() {
  detail::wipe(bytes_.data(), bytes_.size());
}

public_key secret_key::public_part() const {
  // Cannot fail: the length is right by construction.
  return *public_key::from_bytes(bytes_.data() + seed_size, public_key::size);
}

// -- PEM ----------------------------------------------------------------------

result<secret_key> secret_key_from_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  if (!bio)
    return errc::invalid_pem;
  pkey_ptr pkey{PEM_read_bio_PrivateKey_ex(
    bio.get(), nullptr, refuse_passphrase, nullptr, nullptr, nullptr)};
  if (!pkey || !is_ed25519(pkey.get())) {
    ERR_clear_error();
    return errc::invalid_pem;
  }
  std::array<std::uint8_t, secret_key::seed_size> seed;
  auto len = seed.size();
  if (EVP_PKEY_get_raw_private_key(pkey.get(), seed.data(), &len) != 1
      || len != seed.size()) {
    ERR_clear_error();
    return errc::invalid_pem;
  }
  auto out = secret_key::from_seed(seed.data(), seed.size());
  detail::wipe(seed.data(), seed.size());
  return out;
}

result<public_key> public_key_from_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  if (!bio)
    return errc::invalid_pem;
  pkey_ptr pkey{PEM_read_bio_PUBKEY_ex(bio.get(), nullptr, refuse_passphrase,
                                       nullptr, nullptr, nullptr)};
  if (!pkey || !is_ed25519(pkey.get())) {
    ERR_clear_error();
    return errc::invalid_pem;
  }
  std::array<std::uint8_t, public_key::size> raw;
  auto len = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), raw.data(), &len) != 1
      || len != raw.size()) {
    ERR_clear_error();
    return errc::invalid_pem;
  }
  return public_key::from_bytes(raw.data(), raw.size());
}

result<secret_key> load_secret_key_pem_file(const std::string& path) {
  auto text = read_text_file(path, max_key_file_bytes);
  if (!text)
    return text.error();
  auto out = secret_key_from_pem(*text);
  detail::wipe(text->data(), text->size());
  return out;
}

result<public_key> load_public_key_pem_file(const std::string& path) {
  auto text = read_text_file(path, max_key_file_bytes);
  if (!text)
    return text.error();
  return public_key_from_pem(*text);
}

std::string to_pem(const secret_key& key) {
  pkey_ptr pkey{EVP_PKEY_new_raw_private_key_ex(
    nullptr, "ED25519", nullptr, key.seed(), secret_key::seed_size)};
  // A secure-memory BIO wipes the PEM copy of the key when it is freed.
  bio_ptr bio{BIO_new(BIO_s_secmem())};
  if (!pkey || !bio
      || PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0,
                                  nullptr, nullptr)
           != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_contents(bio.get());
}

std::string to_pem(const public_key& key) {
  pkey_ptr pkey{EVP_PKEY_new_raw_public_key_ex(
    nullptr, "ED25519", nullptr, key.bytes().data(), public_key::size)};
  bio_ptr bio{BIO_new(BIO_s_mem())};
  if (!pkey || !bio || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_contents(bio.get());
}

result<void> save_pem_file(const secret_key& key, const std::string& path) {
  auto text = to_pem(key);
  auto out = write_file(path, text, 0600);
  detail::wipe(text.data(), text.size());
  return out;
}

result<void> save_pem_file(const public_key& key, const std::string& path) {
  return write_file(path, to_pem(key), 0644);
}

} // namespace seatledger::paseto
