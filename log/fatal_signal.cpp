// The line a crashing process leaves: which signal, at which address, and
// the frames that led there. Without it a crash was an exit status (139)
// and whatever librdkafka had logged last; a failure seen once in CI could
// not be traced. Only async-signal-safe calls where it matters: the line
// is built in a static buffer and written with write(2). backtrace() and
// dladdr() are not on POSIX's list; backtrace's one allocation (loading
// libgcc_s) happens at installation, and an alarm bounds the handler in
// case dladdr waits on a lock the crashed thread held. A stack overflow
// is not covered (no alternate signal stack): it ends as before.

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>

#include "log/log.hpp"

namespace seatledger::log {

namespace {

constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

/// Seconds the handler may take before SIGALRM's default action ends the
/// process.
constexpr unsigned handler_deadline_s = 5;

constexpr int max_frames = 48;

/// Appends to a fixed buffer; what does not fit is dropped.
class line_buffer {
public:
  void text(const char* s) {
    while (*s != '\0')
      put(*s++);
  }

  /// A JSON string's content: quotes, backslashes and control characters
  /// (none expected in a module or symbol name) become '?'.
  void quoted(const char* s) {
    put('"');
    for (; *s != '\0'; ++s)
      put(*s == '"' || *s == '\\' || static_cast<unsigned char>(*s) < 0x20
            ? '?'
            : *s);
    put('"');
  }

  void decimal(unsigned long value, int min_digits = 1) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0 || n < min_digits);
    while (n > 0)
      put(digits[--n]);
  }

  void hex(std::uintptr_t value) {
    static constexpr char digit[] = "0123456789abcdef";
    char digits[2 * sizeof(value)];
    int n = 0;
    do {
      digits[n++] = digit[value & 0xf];
      value >>= 4;
    } while (value != 0);
    text("0x");
    while (n > 0)
      put(digits[--n]);
  }

  void flush() {
    std::size_t done = 0;
    while (done < size_) {
      auto n = ::write(STDERR_FILENO, data_ + done, size_ - done);
      if (n <= 0)
        return;
      done += static_cast<std::size_t>(n);
    }
  }

private:
  void put(char c) {
    // One byte kept for the closing newline.
    if (size_ + 1 < sizeof(data_))
      data_[size_++] = c;
  }

  char data_[8192];
  std::size_t size_ = 0;
};

line_buffer buffer;
std::atomic<bool> handling{false};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
  }
  return "?";
}

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

/// `2026-12-07T05:04:29.123456Z`, as every other line's time.
void append_time(line_buffer& out) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  out.decimal(static_cast<unsigned long>(utc.tm_year + 1900), 4);
  out.text("-");
  out.decimal(static_cast<unsigned long>(utc.tm_mon + 1), 2);
  out.text("-");
  out.decimal(static_cast<unsigned long>(utc.tm_mday), 2);
  out.text("T");
  out.decimal(static_cast<unsigned long>(utc.tm_hour), 2);
  out.text(":");
  out.decimal(static_cast<unsigned long>(utc.tm_min), 2);
  out.text(":");
  out.decimal(static_cast<unsigned long>(utc.tm_sec), 2);
  out.text(".");
  out.decimal(static_cast<unsigned long>(now.tv_nsec / 1000), 6);
  out.text("Z");
}

/// Each frame as `module+0xoffset` (the offset `addr2line -e module`
/// reads), with the nearest exported symbol when there is one.
void append_frames(line_buffer& out) {
  void* frames[max_frames];
  int count = ::backtrace(frames, max_frames);
  out.text(",\"frames\":[");
  // All of them: the first are the handler's own and the kernel's signal
  // trampoline (how many depends on inlining); the crash is the one after
  // the trampoline (`__restore_rt`).
  for (int i = 0; i < count; ++i) {
    if (i > 0)
      out.text(",");
    auto address = reinterpret_cast<std::uintptr_t>(frames[i]);
    Dl_info info{};
    if (::dladdr(frames[i], &info) == 0 || info.dli_fname == nullptr) {
      out.text("\"");
      out.hex(address);
      out.text("\"");
      continue;
    }
    out.text("\"");
    // Quoted as a whole below: the parts carry no quote of their own.
    out.text(base_name(info.dli_fname));
    out.text("+");
    out.hex(address - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
    if (info.dli_sname != nullptr) {
      out.text(" ");
      char name[512];
      std::size_t n = 0;
      for (const char* s = info.dli_sname; *s != '\0' && n + 1 < sizeof(name);
           ++s)
        name[n++] = *s == '"' || *s == '\\' ? '?' : *s;
      name[n] = '\0';
      out.text(name);
      out.text("+");
      out.hex(address - reinterpret_cast<std::uintptr_t>(info.dli_saddr));
    }
    out.text("\"");
  }
  out.text("]");
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  if (handling.exchange(true)) {
    // A second thread crashing meanwhile: the first one's line is enough.
    ::pause();
  }
  ::alarm(handler_deadline_s);
  buffer.text("{\"time\":\"");
  append_time(buffer);
  buffer.text("\",\"level\":\"error\",\"message\":\"fatal signal\","
              "\"signal\":");
  buffer.decimal(static_cast<unsigned long>(sig));
  buffer.text(",\"name\":");
  buffer.quoted(signal_name(sig));
  if (sig != SIGABRT) {
    buffer.text(",\"address\":\"");
    buffer.hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
    buffer.text("\"");
  }
  append_frames(buffer);
  buffer.text("}\n");
  buffer.flush();
  // Ends the process the way the signal would have (the exit status, a
  // core dump): the handler was installed with SA_RESETHAND.
  ::raise(sig);
}

} // namespace

void log_fatal_signals() {
  // The first call loads libgcc_s, which allocates: not in the handler.
  void* warm[1];
  ::backtrace(warm, 1);
  struct sigaction action {};
  action.sa_sigaction = on_fatal_signal;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int sig : fatal_signals)
    ::sigaction(sig, &action, nullptr);
}

} // namespace seatledger::log
