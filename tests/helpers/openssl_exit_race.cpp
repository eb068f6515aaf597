// One exit racing a thread that used OpenSSL and is still ending, as the
// service's detached actor threads may be when its main returns. With
// `--keep-openssl-state`, the program first does what the service's main
// does (crypto::keep_openssl_state_until_exit). Exits 0 unless the race
// crashes it.

#include <atomic>
#include <cstring>
#include <openssl/rand.h>
#include <thread>

#include "adapters/crypto/openssl_process.hpp"

namespace {

std::atomic<bool> exiting{false};

} // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--keep-openssl-state") == 0)
    seatledger::crypto::keep_openssl_state_until_exit();
  std::thread{[] {
    // Per-thread OpenSSL state, freed when the thread ends.
    unsigned char bytes[16];
    RAND_bytes(bytes, sizeof(bytes));
    while (!exiting.load())
      std::this_thread::yield();
  }}.detach();
  // The thread has started; let it end while the process exits.
  for (volatile int i = 0; i < 100000; i = i + 1) {
  }
  exiting = true;
  return 0;
}
