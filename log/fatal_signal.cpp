// The line a crashing process leaves: which signal, at which address, and
// the frames that led there. Without it a crash was an exit status (139)
// and whatever librdkafka had logged last; a failure seen once in CI could
// not be traced. Async-signal-safe where it matters: the line is built in
// a static buffer, its time computed by arithmetic, and it is written with
// one write(2) of at most PIPE_BUF bytes (a pipe does not interleave it
// with other threads' lines). backtrace() and dladdr() are not on POSIX's
// list: backtrace's one allocation (loading libgcc_s) happens at
// installation, and an alarm bounds the handler in case dladdr waits on a
// lock the crashed thread held.
//
// Not covered: a stack overflow (no alternate signal stack), and a fault
// in a thread that blocks the signal (librdkafka's threads block every
// signal; the kernel then applies the default action at once). A handler
// stuck past the alarm ends the process by SIGALRM (status 142, no core,
// no line).

#include <atomic>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <execinfo.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log/log.hpp"

namespace seatledger::log {

namespace {

constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

/// Seconds the handler may take before SIGALRM's default action ends the
/// process.
constexpr unsigned handler_deadline_s = 5;

constexpr int max_frames = 48;

/// A mangled C++ name can run to kilobytes; the start names the function.
constexpr std::size_t max_symbol_chars = 160;
constexpr std::size_t max_module_chars = 255;

/// A JSON line of at most PIPE_BUF bytes, built in place. Text past the
/// limit is dropped, but the room for the line's end is always kept.
class line_buffer {
public:
  /// Room kept for `],"truncated":true}` and the newline.
  static constexpr std::size_t tail_room = 24;
  static constexpr std::size_t capacity = PIPE_BUF;

  void text(const char* s) {
    while (*s != '\0')
      put(*s++);
  }

  /// A JSON string's content, at most `max_chars` of it: quotes,
  /// backslashes, control characters and bytes outside ASCII (JSON is
  /// UTF-8) become '?'. A module's path is argv[0] for the executable,
  /// which the caller chose.
  void escaped(const char* s, std::size_t max_chars) {
    for (std::size_t n = 0; *s != '\0' && n < max_chars; ++s, ++n) {
      auto c = static_cast<unsigned char>(*s);
      put(c == '"' || c == '\\' || c < 0x20 || c >= 0x7f ? '?' : *s);
    }
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

  std::size_t size() const {
    return size_;
  }

  /// Whether the text since `mark` fits; if not, it is taken back.
  bool keep_since(std::size_t mark) {
    if (!overflowed_)
      return true;
    size_ = mark;
    overflowed_ = false;
    return false;
  }

  void truncate_to(std::size_t size) {
    if (size < size_)
      size_ = size;
    overflowed_ = false;
  }

  /// Ends the line (the tail room is there for it) and writes it.
  void finish_and_write(const char* end) {
    for (; *end != '\0'; ++end)
      if (size_ < capacity)
        data_[size_++] = *end;
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
    if (size_ + tail_room < capacity)
      data_[size_++] = c;
    else
      overflowed_ = true;
  }

  char data_[capacity];
  std::size_t size_ = 0;
  bool overflowed_ = false;
};

line_buffer buffer;

/// The thread writing the line (its kernel id), 0 before any.
std::atomic<long> handling_thread{0};
std::atomic<int> first_signal{0};
/// Where the frames written whole so far end (0 before the line has its
/// start): a fault inside the handler writes the line up to there.
std::atomic<std::size_t> frames_end{0};

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

/// `2026-12-07T05:04:29.123456Z`, as every other line's time, without
/// gmtime_r (it may lock and load the time zone). Days to civil date:
/// Howard Hinnant's algorithm, for the proleptic Gregorian calendar.
void append_time(line_buffer& out) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  long long seconds = now.tv_sec;
  long long days = seconds / 86400;
  long long of_day = seconds % 86400;
  days += 719468;
  long long era = days / 146097;
  long long day_of_era = days - era * 146097;
  long long year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524
                           - day_of_era / 146096)
                          / 365;
  long long day_of_year
    = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  long long shifted_month = (5 * day_of_year + 2) / 153;
  long long day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  long long month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  long long year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  out.decimal(static_cast<unsigned long>(year), 4);
  out.text("-");
  out.decimal(static_cast<unsigned long>(month), 2);
  out.text("-");
  out.decimal(static_cast<unsigned long>(day), 2);
  out.text("T");
  out.decimal(static_cast<unsigned long>(of_day / 3600), 2);
  out.text(":");
  out.decimal(static_cast<unsigned long>(of_day / 60 % 60), 2);
  out.text(":");
  out.decimal(static_cast<unsigned long>(of_day % 60), 2);
  out.text(".");
  out.decimal(static_cast<unsigned long>(now.tv_nsec / 1000), 6);
  out.text("Z");
}

/// Each frame as `module+0xoffset`, with the dynamic symbol containing it
/// when there is one. All frames: the first are the handler's own and the
/// kernel's signal trampoline (`__restore_rt`); the one after it faulted.
/// False when frames were left out for want of room.
bool append_frames(line_buffer& out) {
  void* frames[max_frames];
  // What this thread stored above is there if backtrace or dladdr faults
  // and the handler runs again.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  int count = ::backtrace(frames, max_frames);
  for (int i = 0; i < count; ++i) {
    auto mark = out.size();
    if (i > 0)
      out.text(",");
    out.text("\"");
    auto address = reinterpret_cast<std::uintptr_t>(frames[i]);
    Dl_info info{};
    if (::dladdr(frames[i], &info) == 0 || info.dli_fname == nullptr) {
      out.hex(address);
    } else {
      out.escaped(base_name(info.dli_fname), max_module_chars);
      out.text("+");
      out.hex(address - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
      if (info.dli_sname != nullptr) {
        out.text(" ");
        out.escaped(info.dli_sname, max_symbol_chars);
        out.text("+");
        out.hex(address - reinterpret_cast<std::uintptr_t>(info.dli_saddr));
      }
    }
    out.text("\"");
    if (!out.keep_since(mark))
      return false;
    frames_end.store(out.size(), std::memory_order_relaxed);
  }
  return true;
}

/// Ends the process as the signal would have: its exit status, a core
/// dump where enabled.
[[noreturn]] void die_of(int sig) {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(sig, &default_action, nullptr);
  ::raise(sig);
  // A signal whose default is to be ignored never gets here; all of ours
  // end the process.
  ::_exit(128 + sig);
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  long self = ::syscall(SYS_gettid);
  long expected = 0;
  if (!handling_thread.compare_exchange_strong(expected, self)) {
    if (expected == self) {
      // A fault while the line was being built: the frames written whole
      // so far, then the first signal's end.
      int first = first_signal.load(std::memory_order_relaxed);
      auto end = frames_end.load(std::memory_order_relaxed);
      if (end == 0) {
        buffer.truncate_to(0);
        buffer.text("{\"time\":\"");
        append_time(buffer);
        buffer.text("\",\"level\":\"error\",\"message\":\"fatal signal\","
                    "\"signal\":");
        buffer.decimal(static_cast<unsigned long>(first));
        buffer.finish_and_write("}\n");
        die_of(first);
      }
      buffer.truncate_to(end);
      buffer.finish_and_write("],\"truncated\":true}\n");
      die_of(first);
    }
    // Another thread is writing the line and ends the process.
    for (;;)
      ::pause();
  }
  first_signal.store(sig, std::memory_order_relaxed);
  ::alarm(handler_deadline_s);
  buffer.text("{\"time\":\"");
  append_time(buffer);
  buffer.text("\",\"level\":\"error\",\"message\":\"fatal signal\","
              "\"signal\":");
  buffer.decimal(static_cast<unsigned long>(sig));
  buffer.text(",\"name\":\"");
  buffer.text(signal_name(sig));
  buffer.text("\"");
  if (info->si_code > 0 && sig != SIGABRT) {
    // A fault: where.
    buffer.text(",\"address\":\"");
    buffer.hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
    buffer.text("\"");
  } else if (info->si_code <= 0) {
    // Sent (kill, raise, abort): by whom.
    buffer.text(",\"sender_pid\":");
    buffer.decimal(static_cast<unsigned long>(info->si_pid));
  }
  buffer.text(",\"frames\":[");
  frames_end.store(buffer.size(), std::memory_order_relaxed);
  bool complete = append_frames(buffer);
  buffer.finish_and_write(complete ? "]}\n" : "],\"truncated\":true}\n");
  die_of(sig);
}

} // namespace

// AddressSanitizer's own report of a fault is symbolized and says what the
// address was; this handler would replace it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool under_address_sanitizer = true;
#else
constexpr bool under_address_sanitizer = false;
#endif

void log_fatal_signals() {
  if (under_address_sanitizer)
    return;
  // The first call loads libgcc_s, which allocates: not in the handler.
  void* warm[1];
  ::backtrace(warm, 1);
  struct sigaction action {};
  action.sa_sigaction = on_fatal_signal;
  // Not reset on entry, not blocked while it runs: a second thread's fault
  // waits for the first one's line; a fault inside the handler re-enters
  // it and ends the process with what was written.
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int sig : fatal_signals)
    ::sigaction(sig, &action, nullptr);
}

} // namespace seatledger::log
