#include <csignal>
#include <cstdint>
#include <gtest/gtest.h>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>

#include <nlohmann/json.hpp>

#include "log/log.hpp"

namespace {

using seatledger::log::level;

/// The one line `write` puts on stderr, parsed as JSON (throws when it is
/// not: nlohmann's parser refuses text that is not UTF-8).
nlohmann::json logged(std::string_view message,
                      std::initializer_list<seatledger::log::field> fields) {
  testing::internal::CaptureStderr();
  seatledger::log::write(level::warning, message, fields);
  auto text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;
  return nlohmann::json::parse(text);
}

} // namespace

TEST(log, a_line_is_json_whatever_bytes_a_field_quotes) {
  // A dead letter's reason quotes the record's key, which may be any bytes:
  // they reached the line as they were, and a JSON parser refused it.
  auto line = logged("record key '\xff\xfe' is not the entity id",
                     {{"reason", "key '\xc3' cut short"},
                      {"topic", "caf\xc3\xa9 \xe2\x82\xac"},
                      {"partition", 3}});
  EXPECT_EQ(line.at("level"), "warning");
  EXPECT_EQ(line.at("message"), "record key '\\xff\\xfe' is not the entity id");
  EXPECT_EQ(line.at("reason"), "key '\\xc3' cut short");
  EXPECT_EQ(line.at("topic"), "caf\xc3\xa9 \xe2\x82\xac"); // UTF-8 stays
  EXPECT_EQ(line.at("partition"), 3);
}

TEST(log, control_characters_quotes_and_backslashes_are_escaped) {
  auto line = logged("a \"quoted\" \\ path\nand a\ttab\x01", {});
  EXPECT_EQ(line.at("message"), "a \"quoted\" \\ path\nand a\ttab\x01");
}

TEST(log_DeathTest, an_exception_nobody_handles_ends_in_a_json_line) {
  // The runtime's own "terminate called after throwing …" was a plain line
  // among serve's JSON ones.
  EXPECT_DEATH(
    {
      seatledger::log::log_termination();
      std::thread{[] { throw std::runtime_error("boom \"quoted\""); }}.join();
    },
    "\\{\"time\":\"[^\"]+\",\"level\":\"error\",\"message\":"
    "\"terminating: an exception nobody handled\",\"error\":\"boom "
    "\\\\\"quoted\\\\\"\"\\}\n");
}

namespace {

[[noreturn]] __attribute__((noinline)) void write_through_a_bad_pointer() {
  // No core file from the death test's child.
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  seatledger::log::log_fatal_signals();
  // Through a variable: a constant address is a compile-time warning.
  volatile std::uintptr_t address = 16;
  *reinterpret_cast<volatile int*>(address) = 1;
  std::abort(); // not reached: the store faults
}

} // namespace

TEST(log_DeathTest, a_crash_ends_in_a_json_line_with_its_stack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reports faults itself; the handler is "
                  "not installed";
#endif
  // A crash was an exit status (139) and whatever had been logged before
  // it: a service that crashed once in CI while stopping left nothing to
  // trace it by. The process still dies of the signal (exit status, core).
  EXPECT_EXIT(write_through_a_bad_pointer(), testing::KilledBySignal(SIGSEGV),
              "\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z\","
              "\"level\":\"error\",\"message\":\"fatal signal\","
              "\"signal\":11,\"name\":\"SIGSEGV\",\"address\":\"0x10\","
              "\"frames\":\\[[^\n]*\"seatledger_unit_tests\\+0x[0-9a-f]+\""
              "[^\n]*\\]\\}\n");
}

TEST(log, the_text_format_writes_one_plain_line_per_call) {
  // The tools' stderr is plain lines; librdkafka's log lines among them
  // were JSON objects.
  seatledger::log::set_format(seatledger::log::format::text);
  testing::internal::CaptureStderr();
  seatledger::log::write(level::error, "kafka",
                         {{"facility", "FAIL"},
                          {"detail", "broker down\nretrying"},
                          {"attempt", 3}});
  seatledger::log::write(level::warning, "no fields");
  auto text = testing::internal::GetCapturedStderr();
  seatledger::log::set_format(seatledger::log::format::json);
  EXPECT_EQ(text, "error: kafka (facility=FAIL, detail=broker down retrying, "
                  "attempt=3)\nwarning: no fields\n");
  // And back: the next line is JSON again.
  auto line = logged("json again", {});
  EXPECT_EQ(line.at("message"), "json again");
}
