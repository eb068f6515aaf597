// Append-only enforced by PostgreSQL, and the ledger verification.

#include <sstream>

#include "pg_fixture.hpp"
#include "storage/verify_command.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace {

using storage::storage_batch;

class append_only : public pg_test {
protected:
  void SetUp() override {
    pg_test::SetUp();
    if (HasFatalFailure())
      return;
    storage_batch b;
    entries_ = chain("sub-1", 5, at("2026-02-01T00:00:00Z"), 1'000);
    b.ledger = entries_;
    b.subscriptions.push_back({record_for("sub-1", entries_), 0, std::nullopt});
    storage::license_row lic;
    lic.grant.license_id = "lic-1";
    lic.grant.subscription_id = "sub-1";
    lic.grant.issued_by = {"billing", "create-1"};
    lic.claims_json = "{}";
    b.licenses = {lic};
    b.revocations = {{"lic-1", "sub-1", at("2026-03-01T00:00:00Z"), "x"}};
    ASSERT_OK(store().commit(b));
  }

  /// A connection that acts as the service does: the runtime role.
  std::unique_ptr<pqxx::connection> runtime() {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("SET ROLE seatledger_app");
    return conn;
  }

  /// Runs `sql` as the runtime role; returns the SQLSTATE ("" on success).
  std::string attempt(const std::string& sql) {
    auto conn = runtime();
    try {
      pqxx::work tx{*conn};
      tx.exec(sql);
      tx.commit();
      return "";
    } catch (const pqxx::insufficient_privilege&) {
      // libpqxx 6.4 types the error but leaves sqlstate() empty.
      return "42501";
    } catch (const pqxx::sql_error& e) {
      return e.sqlstate().empty() ? std::string{"other: "} + e.what()
                                  : e.sqlstate();
    }
  }

  std::vector<domain::ledger_entry> entries_;
};

TEST_F(append_only, runtime_role_cannot_update_or_delete_ledger_or_licenses) {
  constexpr auto denied = "42501"; // insufficient_privilege
  EXPECT_EQ(attempt("UPDATE seatledger.seat_ledger SET seats_in_use = 0"),
            denied);
  EXPECT_EQ(attempt("DELETE FROM seatledger.seat_ledger WHERE seq = 5"),
            denied);
  EXPECT_EQ(attempt("TRUNCATE seatledger.seat_ledger"), denied);
  EXPECT_EQ(attempt("UPDATE seatledger.licenses SET seats = 1000"), denied);
  EXPECT_EQ(attempt("DELETE FROM seatledger.licenses"), denied);
  EXPECT_EQ(attempt("UPDATE seatledger.license_revocations SET reason = 'y'"),
            denied);
  EXPECT_EQ(attempt("DELETE FROM seatledger.license_revocations"), denied);
  EXPECT_EQ(attempt("DELETE FROM seatledger.catalog_rate_plan_versions"),
            denied);
  // Reading and appending are what it is for.
  auto next = chain("sub-1", 1, at("2026-02-02T00:00:00Z"), 0, 6,
                    entries_.back().hash, entries_.back().seats_in_use);
  const auto& e = next.front();
  auto conn = runtime();
  {
    pqxx::work tx{*conn};
    tx.exec_params(
      "INSERT INTO seatledger.seat_ledger (subscription_id, seq, seats_in_use, "
      "effective_at, cause_source, cause_id, cause_type, cause_time, org_id, "
      "user_id, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
      "$10, $11, $12)",
      e.subscription_id, e.seq, e.seats_in_use,
      domain::format_rfc3339(e.effective_at), e.cause.source, e.cause.id,
      e.cause.type, domain::format_rfc3339(e.cause.time), e.org_id, e.user_id,
      e.prev_hash, e.hash);
    EXPECT_EQ(
      tx.exec1("SELECT count(*) FROM seatledger.seat_ledger")[0].as<int>(), 6);
    tx.commit();
  }
  EXPECT_EQ(count("seat_ledger"), 6);
  EXPECT_EQ(count("licenses"), 1);
  EXPECT_EQ(attempt("UPDATE seatledger.subscriptions SET seats = 11"), "");
}

TEST_F(append_only, store_writes_as_the_runtime_role) {
  // The store logs in as a superuser but writes with the runtime role's
  // rights: a trigger records who inserted.
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec(R"sql(
      CREATE TABLE public.writers (who text);
      GRANT INSERT ON public.writers TO PUBLIC;
      CREATE FUNCTION public.record_writer() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.writers VALUES (current_user);
        RETURN NULL;
      END $$;
      CREATE TRIGGER record_writer AFTER INSERT ON seatledger.applied_events
        FOR EACH STATEMENT EXECUTE FUNCTION public.record_writer();
    )sql");
  }
  storage_batch b;
  b.applied_events = {{"portal", "1"}};
  ASSERT_OK(store().commit(b));
  storage::pg_store_options as_login;
  as_login.runtime_role = std::nullopt;
  storage::pg_store login_store{conninfo(), as_login};
  b.applied_events = {{"portal", "2"}};
  ASSERT_OK(login_store.commit(b));
  auto conn = superuser();
  pqxx::nontransaction tx{*conn};
  auto login = tx.exec1("SELECT current_user")[0].as<std::string>();
  auto writers = tx.exec("SELECT who FROM public.writers");
  ASSERT_EQ(writers.size(), 2u);
  EXPECT_EQ(writers[0][0].as<std::string>(), "seatledger_app");
  EXPECT_EQ(writers[1][0].as<std::string>(), login);
  // A runtime role that does not exist is a clear failure, not a silent
  // fallback to the login role.
  storage::pg_store_options bogus;
  bogus.runtime_role = "no_such_role_seatledger";
  storage::pg_store wrong{conninfo(), bogus};
  auto r = wrong.ping();
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), service_errc::storage_failure))
    << describe(r.error());
}

class verify : public append_only {};

TEST_F(verify, intact_chains_pass) {
  auto reports = value_or_fail(store().verify_ledger(std::nullopt));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].subscription_id, "sub-1");
  EXPECT_EQ(reports[0].entries_verified, 5);
  EXPECT_FALSE(reports[0].first_break);
  std::ostringstream out, err;
  EXPECT_EQ(storage::verify_command(store(), std::nullopt, out, err), 0)
    << out.str();
  EXPECT_NE(out.str().find("5 entries, chain intact"), std::string::npos);
}

TEST_F(verify, finds_an_entry_edited_in_the_database) {
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("UPDATE seatledger.seat_ledger SET seats_in_use = 1 "
            "WHERE subscription_id = 'sub-1' AND seq = 3");
  }
  auto reports = value_or_fail(store().verify_ledger(std::string{"sub-1"}));
  ASSERT_EQ(reports.size(), 1u);
  ASSERT_TRUE(reports[0].first_break);
  EXPECT_EQ(reports[0].first_break->seq, 3);
  EXPECT_EQ(reports[0].entries_verified, 2);
  std::ostringstream out, err;
  EXPECT_EQ(storage::verify_command(store(), std::string{"sub-1"}, out, err),
            1);
  EXPECT_NE(out.str().find("BROKEN at seq 3"), std::string::npos) << out.str();
}

TEST_F(verify, an_unknown_subscription_is_named_on_stderr_and_fails) {
  // Its empty chain read as intact: a mistyped id passed with exit 0.
  std::ostringstream out, err;
  EXPECT_EQ(storage::verify_command(store(), std::string{"sub-x"}, out, err),
            2);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), "error: unknown subscription 'sub-x': no ledger "
                       "entries and no state\n");
}

TEST_F(verify, a_subscription_with_state_and_no_ledger_is_known) {
  storage_batch b;
  b.subscriptions.push_back({record_for("sub-new", {}), 0, std::nullopt});
  ASSERT_OK(store().commit(b));
  std::ostringstream out, err;
  EXPECT_EQ(storage::verify_command(store(), std::string{"sub-new"}, out, err),
            0)
    << err.str();
  EXPECT_NE(out.str().find("sub-new: no ledger entries"), std::string::npos)
    << out.str();
  EXPECT_EQ(err.str(), "");
}

TEST_F(verify, finds_a_deleted_entry) {
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("DELETE FROM seatledger.seat_ledger WHERE seq = 2");
  }
  auto reports = value_or_fail(store().verify_ledger(std::nullopt));
  ASSERT_EQ(reports.size(), 1u);
  ASSERT_TRUE(reports[0].first_break);
  EXPECT_EQ(reports[0].first_break->seq, 3);
  EXPECT_NE(reports[0].first_break->reason.find("expected sequence 2"),
            std::string::npos)
    << reports[0].first_break->reason;
}

TEST_F(verify, finds_entries_cut_off_the_end) {
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("DELETE FROM seatledger.seat_ledger WHERE seq >= 4");
  }
  auto reports = value_or_fail(store().verify_ledger(std::nullopt));
  ASSERT_EQ(reports.size(), 1u);
  ASSERT_TRUE(reports[0].first_break);
  EXPECT_EQ(reports[0].first_break->seq, 4);
  EXPECT_EQ(reports[0].entries_verified, 3);
}

TEST_F(verify, walks_long_chains_page_by_page_and_every_subscription) {
  // More entries than one verification page, in two subscriptions, one of
  // them broken far down the chain.
  storage_batch b;
  auto big = chain("sub-big", 25'000, at("2026-01-01T00:00:00Z"), 1);
  auto other = chain("sub-other", 10, at("2026-01-01T00:00:00Z"), 1);
  b.ledger = big;
  b.ledger.insert(b.ledger.end(), other.begin(), other.end());
  ASSERT_OK(store().commit(b));
  {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    tx.exec("UPDATE seatledger.seat_ledger SET user_id = 'mallory' "
            "WHERE subscription_id = 'sub-big' AND seq = 21234");
  }
  auto reports = value_or_fail(store().verify_ledger(std::nullopt));
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].subscription_id, "sub-1");
  EXPECT_FALSE(reports[0].first_break);
  EXPECT_EQ(reports[1].subscription_id, "sub-big");
  ASSERT_TRUE(reports[1].first_break);
  EXPECT_EQ(reports[1].first_break->seq, 21234);
  EXPECT_EQ(reports[1].entries_verified, 21233);
  EXPECT_FALSE(reports[2].first_break);
  EXPECT_EQ(reports[2].entries_verified, 10);
  std::ostringstream out, err;
  EXPECT_EQ(storage::verify_command(store(), std::nullopt, out, err), 1);
  EXPECT_NE(out.str().find("1 broken chain(s)"), std::string::npos)
    << out.str();
}

} // namespace
