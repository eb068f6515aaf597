// The COPY encodings the store writes: text format escapes exactly what
// COPY treats as special, and binary format (the outbox chunks) follows the
// PostgreSQL file layout byte for byte, with values passed through as they
// are.

#include <gtest/gtest.h>
#include <stdexcept>

#include "storage/pg_codec.hpp"

using seatledger::storage::detail::copy_buffer;
using seatledger::storage::detail::uuid_bytes;

TEST(copy_buffer, text_format_escapes_copy_specials_and_marks_nulls) {
  copy_buffer buf;
  buf.text("a\tb\nc\\d\re").null().integer(-42).end_row();
  EXPECT_EQ(buf.data(), "a\\tb\\nc\\\\d\\re\t\\N\t-42\n");
  EXPECT_EQ(buf.rows(), 1u);
}

TEST(copy_buffer, binary_format_follows_the_postgresql_file_layout) {
  copy_buffer buf;
  std::string value("\0\t\n\\\xff", 5);
  buf.binary_header();
  buf.binary_row(3).binary_bytes("k").binary_int4(258).binary_bytes(value);
  buf.binary_trailer();
  std::string expected("PGCOPY\n\xff\r\n\0", 11);
  expected += std::string("\0\0\0\0", 4);  // flags
  expected += std::string("\0\0\0\0", 4);  // header extension length
  expected += std::string("\0\3", 2);      // three fields
  expected += std::string("\0\0\0\1k", 5); // text "k"
  expected += std::string("\0\0\0\4", 4);  // int4 length
  expected += std::string("\0\0\1\2", 4);  // 258, big-endian
  expected += std::string("\0\0\0\5", 4);  // bytea length
  expected += value;                       // unescaped
  expected += std::string("\xff\xff", 2);  // trailer: -1
  EXPECT_EQ(buf.data(), expected);
  EXPECT_EQ(buf.rows(), 1u);
}

TEST(copy_buffer, binary_integers_times_and_nulls_use_postgresql_encodings) {
  using seatledger::domain::timestamp;
  copy_buffer buf;
  buf.binary_row(6).binary_int8(-2).binary_bool(true).binary_bool(false);
  // One second after 2000-01-01T00:00:00Z, PostgreSQL's epoch.
  buf.binary_time(timestamp::from_seconds(946'684'801));
  buf.binary_time(timestamp::min()).binary_null();
  std::string expected("\0\6", 2);
  expected += std::string("\0\0\0\x08", 4);                       // int8
  expected += std::string("\xff\xff\xff\xff\xff\xff\xff\xfe", 8); // -2
  expected += std::string("\0\0\0\1\1", 5);                       // true
  expected += std::string("\0\0\0\1\0", 5);                       // false
  expected += std::string("\0\0\0\x08", 4);
  expected += std::string("\0\0\0\0\0\x0f\x42\x40", 8); // 1,000,000 us
  expected += std::string("\xff\xff\xff\xff", 4);       // NULL
  expected += std::string("\xff\xff\xff\xff", 4);       // NULL
  EXPECT_EQ(buf.data(), expected);
  EXPECT_EQ(buf.rows(), 1u);
}

TEST(copy_buffer, uuid_bytes_reads_the_text_form_and_refuses_anything_else) {
  auto bytes = uuid_bytes("00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(std::string(bytes.data(), bytes.size()),
            std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
                        "\xcc\xdd\xee\xff",
                        16));
  EXPECT_EQ(uuid_bytes("00112233445566778899AABBCCDDEEFF"),
            uuid_bytes("00112233-4455-6677-8899-aabbccddeeff"));
  EXPECT_THROW(uuid_bytes(""), std::invalid_argument);
  EXPECT_THROW(uuid_bytes("00112233-4455-6677-8899-aabbccddeef"),
               std::invalid_argument); // 31 digits
  EXPECT_THROW(uuid_bytes("00112233-4455-6677-8899-aabbccddeeff0"),
               std::invalid_argument); // 33 digits
  EXPECT_THROW(uuid_bytes("00112233-4455-6677-8899-aabbccddeefg"),
               std::invalid_argument);
}

// libpq's messages carry hints on lines of their own; printed as they came,
// `migrate` and `serve` wrote a two-line error where one line is promised.
TEST(pg_error_text, is_one_line) {
  using seatledger::storage::detail::trimmed_message;
  EXPECT_EQ(trimmed_message("connection to server at \"127.0.0.1\", port 1 "
                            "failed: Connection refused\n\tIs the server "
                            "running on that host and accepting TCP/IP "
                            "connections?\n"),
            "connection to server at \"127.0.0.1\", port 1 failed: Connection "
            "refused Is the server running on that host and accepting TCP/IP "
            "connections?");
  EXPECT_EQ(trimmed_message("  ERROR:  relation \"x\" does not exist\r\n"),
            "ERROR: relation \"x\" does not exist");
  EXPECT_EQ(trimmed_message("\n \t"), "");
}
