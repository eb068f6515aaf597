#include "adapters/crypto/openssl_process.hpp"

#include <openssl/crypto.h>

namespace seatledger::crypto {

void keep_openssl_state_until_exit() {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
}

} // namespace seatledger::crypto
