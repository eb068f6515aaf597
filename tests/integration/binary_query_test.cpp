// binary_query on a real PostgreSQL: values arrive as their bytes, the
// statement is prepared once per connection, and errors leave the
// connection usable.

#include <cstdint>
#include <limits>
#include <string>

#include "pg_fixture.hpp"
#include "storage/pg_codec.hpp"

namespace seatledger::test {
namespace {

using storage::detail::binary_query;
using storage::detail::pg_connection;

class binary_query_test : public pg_test {
protected:
  binary_query_test() {
    migrate_in_setup_ = false;
  }
};

TEST_F(binary_query_test, bytea_text_and_bigint_values_arrive_as_they_are) {
  pg_connection c{conninfo()};
  std::string every_byte;
  for (int b = 0; b < 256; ++b)
    every_byte += static_cast<char>(b);
  // Every byte value, built by the server.
  constexpr auto sql
    = "SELECT (SELECT string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea "
      "ORDER BY g) FROM generate_series(0, 255) AS g), $1::text, $2::bigint, "
      "NULL::bytea";
  for (auto number : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{1} << 40,
                      std::numeric_limits<std::int64_t>::min(),
                      std::numeric_limits<std::int64_t>::max()}) {
    binary_query q{
      c, "binary_test_values", sql, {"grüße", std::to_string(number)}};
    ASSERT_EQ(q.rows(), 1);
    EXPECT_EQ(q.bytes(0, 0), every_byte);
    EXPECT_EQ(q.bytes(0, 1), "grüße");
    EXPECT_EQ(q.int8(0, 2), number);
    EXPECT_EQ(q.bytes(0, 3), "");
  }
  // A column that is not a bigint is refused, not misread.
  binary_query q{c, "binary_test_values", sql, {"x", "7"}};
  EXPECT_THROW(q.int8(0, 1), std::runtime_error);
}

TEST_F(binary_query_test, is_prepared_once_per_connection) {
  pg_connection c{conninfo()};
  for (int i = 0; i < 3; ++i) {
    binary_query q{c,
                   "binary_test_rows",
                   "SELECT g::bigint FROM generate_series(1, $1::integer) g",
                   {std::to_string(i)}};
    EXPECT_EQ(q.rows(), i);
  }
  EXPECT_EQ(c.binary_statements(), (std::set<std::string>{"binary_test_rows"}));
  pqxx::nontransaction tx{c};
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_prepared_statements "
                     "WHERE name = 'binary_test_rows'")[0]
              .as<int>(),
            1);
}

TEST_F(binary_query_test, a_failing_query_throws_and_the_connection_goes_on) {
  pg_connection c{conninfo()};
  try {
    binary_query q{c, "binary_test_failing", "SELECT 1 / $1::integer", {"0"}};
    FAIL() << "division by zero answered";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "22012");
  }
  // A statement that does not parse is never recorded as prepared.
  EXPECT_THROW((binary_query{c, "binary_test_bad", "SELEKT $1", {"1"}}),
               pqxx::sql_error);
  EXPECT_EQ(c.binary_statements().count("binary_test_bad"), 0u);
  binary_query q{c, "binary_test_failing", "SELECT 1 / $1::integer", {"1"}};
  ASSERT_EQ(q.rows(), 1);
  EXPECT_EQ(q.bytes(0, 0).size(), 4u); // an integer, in binary
  EXPECT_TRUE(storage::detail::connection_ok(c));
}

} // namespace
} // namespace seatledger::test
