#include "app/allocator.hpp"

#include "log/log.hpp"

#ifdef SEATLEDGER_WITH_JEMALLOC
#  include <jemalloc/jemalloc.h>

// jemalloc reads this before the first allocation. By default it returns
// pages unused for 10 s to the kernel and then, at once, gives them up for
// good (muzzy_decay_ms 0), so a page reused afterwards faults in zeroed
// again; on this VM a fault costs about 7 us. With 30 s for both steps the
// service took 20,000 minor faults instead of 33,000 in 5 s of the
// end-to-end benchmark's throughput phase (about 2 % of its CPU) for about
// 20 MiB more resident memory (docs/benchmarks.md, eleventh session).
// MALLOC_CONF still overrides it.
extern "C" {
// NOLINTNEXTLINE: the name is jemalloc's.
const char* malloc_conf = "dirty_decay_ms:30000,muzzy_decay_ms:30000";
}
#endif

namespace seatledger::app {

void log_allocator_settings() {
#ifdef SEATLEDGER_WITH_JEMALLOC
  ssize_t dirty = 0;
  ssize_t muzzy = 0;
  std::size_t size = sizeof(ssize_t);
  if (mallctl("opt.dirty_decay_ms", &dirty, &size, nullptr, 0) == 0
      && mallctl("opt.muzzy_decay_ms", &muzzy, &size, nullptr, 0) == 0) {
    log::info("allocator", {{"allocator", "jemalloc"},
                            {"dirty_decay_ms", static_cast<long>(dirty)},
                            {"muzzy_decay_ms", static_cast<long>(muzzy)}});
    return;
  }
#endif
  log::info("allocator", {{"allocator", "system"}});
}

} // namespace seatledger::app
