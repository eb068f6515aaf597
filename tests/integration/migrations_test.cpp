#include <thread>

#include "pg_fixture.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace {

class migrations : public pg_test {
protected:
  migrations() {
    migrate_in_setup_ = false;
  }

  /// The migrations table's versions; none when it does not exist.
  std::vector<int> recorded_versions_or_none() {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    if (tx.exec1("SELECT to_regclass('seatledger.schema_migrations')")[0]
          .is_null())
      return {};
    return recorded_versions();
  }

  std::vector<int> recorded_versions() {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    std::vector<int> result;
    for (const auto& r : tx.exec("SELECT version FROM "
                                 "seatledger.schema_migrations ORDER BY 1"))
      result.push_back(r[0].as<int>());
    return result;
  }
};

TEST_F(migrations, apply_to_an_empty_database_then_rerun_is_a_no_op) {
  auto known = storage::known_migrations();
  ASSERT_FALSE(known.empty());
  auto first = storage::migrate(conninfo());
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(*first, static_cast<int>(known.size()));
  EXPECT_EQ(recorded_versions(), known);
  auto again = storage::migrate(conninfo());
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(recorded_versions(), known);
  // Every table of the schema is there, owned by the migrating user.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  auto tables
    = tx.exec1("SELECT count(*) FROM pg_tables WHERE schemaname = 'seatledger' "
               "AND tableowner = current_user")[0]
        .as<int>();
  // 18 of version 1, outbox_chunks and event_index, schema_migrations.
  EXPECT_EQ(tables, 21);
  EXPECT_TRUE(tx.exec1("SELECT EXISTS (SELECT FROM pg_roles "
                       "WHERE rolname = 'seatledger_app')")[0]
                .as<bool>());
  // The GIN indexes on custom_fields exist.
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_indexes WHERE schemaname = "
                     "'seatledger' AND indexdef LIKE '%USING gin "
                     "(custom_fields)%'")[0]
              .as<int>(),
            2);
}

TEST_F(migrations, concurrent_migrators_apply_each_migration_once) {
  constexpr int migrators = 4;
  std::vector<caf::expected<int>> results(migrators, caf::expected<int>{0});
  std::vector<std::thread> threads;
  for (int i = 0; i < migrators; ++i)
    threads.emplace_back([&, i] { results[i] = storage::migrate(conninfo()); });
  for (auto& t : threads)
    t.join();
  int total = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r) << describe(r.error());
    total += *r;
  }
  EXPECT_EQ(total, static_cast<int>(storage::known_migrations().size()));
  EXPECT_EQ(recorded_versions(), storage::known_migrations());
}

TEST_F(migrations, two_databases_of_one_cluster_migrate_at_once) {
  // The runtime role is cluster-wide: migrators of two databases must not
  // trip over each other creating or granting it.
  scratch_database other;
  caf::expected<int> a{0};
  caf::expected<int> b{0};
  std::thread ta{[&] { a = storage::migrate(conninfo()); }};
  std::thread tb{[&] { b = storage::migrate(other.conninfo()); }};
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << describe(a.error());
  ASSERT_TRUE(b) << describe(b.error());
  EXPECT_EQ(*a, static_cast<int>(storage::known_migrations().size()));
  EXPECT_EQ(*b, static_cast<int>(storage::known_migrations().size()));
}

TEST_F(migrations, a_role_that_may_not_grant_the_runtime_role_is_told_how) {
  // deploy/README asked for "a database and a login role"; such a role
  // without CREATEROLE failed with "permission denied to grant role" and
  // no word of what to do.
  const auto role = unique_name("seatledger_owner");
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    // The runtime role is cluster-wide: another test may have created it.
    tx.exec("DO $$ BEGIN CREATE ROLE seatledger_app NOLOGIN; EXCEPTION WHEN "
            "duplicate_object OR unique_violation THEN NULL; END $$");
    tx.exec("CREATE ROLE " + tx.quote_name(role)
            + " LOGIN PASSWORD 'owner-password-1'");
    tx.exec("ALTER DATABASE " + tx.quote_name(db_->name()) + " OWNER TO "
            + tx.quote_name(role));
  }
  const auto as_owner = conninfo() + " user=" + role
                        + " password=owner-password-1";
  auto refused = storage::migrate(as_owner);
  ASSERT_FALSE(refused);
  auto text = describe(refused.error());
  EXPECT_NE(text.find("is no member of seatledger_app"), std::string::npos)
    << text;
  EXPECT_NE(text.find("GRANT seatledger_app TO " + role), std::string::npos)
    << text;
  EXPECT_TRUE(recorded_versions_or_none().empty());
  // Done as the message says, the same role migrates.
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("GRANT seatledger_app TO " + tx.quote_name(role));
  }
  auto applied = storage::migrate(as_owner);
  ASSERT_TRUE(applied) << describe(applied.error());
  EXPECT_EQ(*applied, static_cast<int>(storage::known_migrations().size()));
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("REASSIGN OWNED BY " + tx.quote_name(role) + " TO CURRENT_USER");
    tx.exec("DROP OWNED BY " + tx.quote_name(role));
  }
  // The database is dropped at the end; the role is this cluster's.
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  tx.exec("DROP ROLE " + tx.quote_name(role));
}

TEST_F(migrations, a_database_without_the_runtime_roles_grants_is_refused) {
  // A database restored without its grants had every migration recorded:
  // migrate said "applied 0" and serve failed each connection as if
  // PostgreSQL were unreachable.
  auto first = storage::migrate(conninfo());
  ASSERT_TRUE(first) << describe(first.error());
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("REVOKE ALL ON ALL TABLES IN SCHEMA seatledger FROM "
            "seatledger_app");
    tx.exec("REVOKE ALL ON SCHEMA seatledger FROM seatledger_app");
  }
  auto refused = storage::migrate(conninfo());
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), service_errc::storage_failure))
    << describe(refused.error());
  auto text = describe(refused.error());
  EXPECT_NE(text.find("seatledger_app lacks its privileges"), std::string::npos)
    << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
}

TEST_F(migrations, unreachable_server_is_storage_unavailable) {
  auto r = storage::migrate("host=/nonexistent-seatledger port=1");
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::storage_unavailable))
    << describe(r.error());
}

} // namespace
