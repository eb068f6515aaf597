// Connection strings get network timeouts where they set none.

#include <cstdlib>
#include <gtest/gtest.h>

#include "storage/conninfo.hpp"

namespace seatledger::storage {
namespace {

bool has(const std::string& conninfo, const std::string& pair) {
  return (" " + conninfo + " ").find(" " + pair + " ") != std::string::npos;
}

TEST(conninfo, a_uri_gets_keepalives_and_timeouts_and_keeps_its_own) {
  unsetenv("PGCONNECT_TIMEOUT");
  auto c = with_network_timeouts(
    "postgresql://app@db.example:6543/ledger?sslmode=require");
  EXPECT_TRUE(has(c, "host='db.example'")) << c;
  EXPECT_TRUE(has(c, "port='6543'")) << c;
  EXPECT_TRUE(has(c, "dbname='ledger'")) << c;
  EXPECT_TRUE(has(c, "user='app'")) << c;
  EXPECT_TRUE(has(c, "sslmode='require'")) << c;
  EXPECT_TRUE(has(c, "connect_timeout='10'")) << c;
  EXPECT_TRUE(has(c, "keepalives='1'")) << c;
  EXPECT_TRUE(has(c, "keepalives_idle='10'")) << c;
  EXPECT_TRUE(has(c, "keepalives_interval='5'")) << c;
  EXPECT_TRUE(has(c, "keepalives_count='3'")) << c;
  EXPECT_TRUE(has(c, "tcp_user_timeout='30000'")) << c;
}

TEST(conninfo, settings_given_win_over_the_defaults) {
  unsetenv("PGCONNECT_TIMEOUT");
  auto c = with_network_timeouts(
    "host=/run/postgresql keepalives_idle=60 connect_timeout=2 "
    "password='it\\'s \\\\ odd'");
  EXPECT_TRUE(has(c, "keepalives_idle='60'")) << c;
  EXPECT_FALSE(has(c, "keepalives_idle='10'")) << c;
  EXPECT_TRUE(has(c, "connect_timeout='2'")) << c;
  EXPECT_TRUE(has(c, "host='/run/postgresql'")) << c;
  // Quotes and backslashes survive the round trip.
  EXPECT_TRUE(has(c, "password='it\\'s \\\\ odd'")) << c;
}

TEST(conninfo, the_environment_connect_timeout_is_left_to_libpq) {
  setenv("PGCONNECT_TIMEOUT", "3", 1);
  auto c = with_network_timeouts("dbname=ledger");
  unsetenv("PGCONNECT_TIMEOUT");
  EXPECT_EQ(c.find("connect_timeout"), std::string::npos) << c;
  EXPECT_TRUE(has(c, "keepalives='1'")) << c;
}

TEST(conninfo, an_empty_string_still_falls_back_to_the_environment) {
  // Only timeouts are added: host, database and user still come from PG*.
  unsetenv("PGCONNECT_TIMEOUT");
  auto c = with_network_timeouts("");
  EXPECT_EQ(c.find("host="), std::string::npos) << c;
  EXPECT_EQ(c.find("dbname="), std::string::npos) << c;
  EXPECT_TRUE(has(c, "tcp_user_timeout='30000'")) << c;
}

TEST(conninfo, what_libpq_cannot_parse_comes_back_unchanged) {
  EXPECT_EQ(with_network_timeouts("host=a nonsense"), "host=a nonsense");
  EXPECT_EQ(with_network_timeouts("postgresql://[broken"),
            "postgresql://[broken");
}

TEST(conninfo, a_printed_connection_string_hides_its_password) {
  // serve prints DATABASE_URL= on stdout, which becomes the pod's log.
  for (const auto* given :
       {"postgresql://app:s3cret-pw@db:5432/ledger",
        "postgresql://app@db/ledger?password=s3cret-pw",
        "host=db user=app password='s3cret-pw' dbname=ledger"}) {
    auto printed = without_password(given);
    EXPECT_EQ(printed.find("s3cret-pw"), std::string::npos) << printed;
    EXPECT_TRUE(has(printed, "password='********'")) << printed;
    EXPECT_TRUE(has(printed, "host='db'")) << printed;
    EXPECT_TRUE(has(printed, "user='app'")) << printed;
  }
  // Without a password it is printed as given (the embedded server's
  // socket URL, a URL relying on ~/.pgpass).
  for (const auto* given : {"postgresql://app@db/ledger",
                            "host=/tmp/seatledger-pg port=5433 dbname=x"})
    EXPECT_EQ(without_password(given), given);
}

TEST(conninfo, the_sqlstate_is_read_from_a_verbose_message) {
  EXPECT_EQ(sqlstate_in("connection to server at \"localhost\" (127.0.0.1), "
                        "port 5433 failed: FATAL:  28P01: password "
                        "authentication failed for user \"app\"\n"
                        "LOCATION:  auth_failed, auth.c:326\n"),
            "28P01");
  // A translated severity, the code as it is.
  EXPECT_EQ(sqlstate_in("… échoué : FATAL:  3D000: la base n'existe pas"),
            "3D000");
  // The server starting up: a code, which the caller does not treat as
  // lasting.
  EXPECT_EQ(sqlstate_in("failed: FATAL:  57P03: the database system is "
                        "starting up"),
            "57P03");
  // Refusals of the client itself carry none.
  EXPECT_EQ(sqlstate_in("connection to server at \"db\" failed: "
                        "fe_sendauth: no password supplied"),
            "");
  EXPECT_EQ(sqlstate_in("could not connect: Connection refused"), "");
  EXPECT_EQ(sqlstate_in("ERROR:  short"), "");
  EXPECT_EQ(sqlstate_in(""), "");
}

} // namespace
} // namespace seatledger::storage
