#pragma once

// Integration tests get PostgreSQL from the environment (libpq PG*
// variables, set by pg_virtualenv). Each test runs in a fresh database of
// its own, dropped at the end. No server reachable: the test fails.

#include <atomic>
#include <chrono>
#include <gtest/gtest.h>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>

#include "domain/ledger.hpp"
#include "domain/subscription.hpp"
#include "messages/service_error.hpp"
#include "storage/pg_store.hpp"

namespace seatledger::test {

inline domain::timestamp at(const std::string& text) {
  auto t = domain::parse_rfc3339(text);
  EXPECT_TRUE(t) << "bad test time " << text;
  return t.value_or(domain::timestamp{});
}

inline std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return prefix + "_" + std::to_string(getpid()) + "_"
         + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
}

/// Creates and drops one database per test.
class scratch_database {
public:
  scratch_database() : name_(unique_name("seatledger_it")) {
    pqxx::connection admin{""};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE DATABASE " + tx.quote_name(name_));
  }

  ~scratch_database() {
    try {
      pqxx::connection admin{""};
      pqxx::nontransaction tx{admin};
      tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_)
              + " WITH (FORCE)");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot drop " << name_ << ": " << e.what();
    }
  }

  const std::string& name() const {
    return name_;
  }

  /// Key=value connection string; everything else from PG* variables.
  std::string conninfo() const {
    return "dbname=" + name_;
  }

private:
  std::string name_;
};

/// A fresh, migrated database per test and a store running as the runtime
/// role, as the service does.
class pg_test : public ::testing::Test {
protected:
  void SetUp() override {
    try {
      db_ = std::make_unique<scratch_database>();
    } catch (const std::exception& e) {
      FAIL() << "no PostgreSQL reachable through the PG* environment "
                "variables (run under pg_virtualenv): "
             << e.what();
    }
    if (migrate_in_setup_) {
      auto applied = storage::migrate(conninfo());
      ASSERT_TRUE(applied) << describe(applied.error());
      store_ = std::make_unique<storage::pg_store>(conninfo());
    }
  }

  void TearDown() override {
    store_.reset();
    db_.reset();
  }

  std::string conninfo() const {
    return db_->conninfo();
  }

  storage::pg_store& store() {
    return *store_;
  }

  /// A raw connection as the login (superuser) role, for checks and for
  /// tampering the service could never do.
  std::unique_ptr<pqxx::connection> superuser() {
    return std::make_unique<pqxx::connection>(conninfo());
  }

  std::int64_t count(const std::string& table) {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    return tx.exec1("SELECT count(*) FROM seatledger." + table)[0]
      .as<std::int64_t>();
  }

  /// Events in the outbox, whether stored as rows or inside chunks.
  std::int64_t outbox_events() {
    auto conn = superuser();
    pqxx::nontransaction tx{*conn};
    return tx
      .exec1("SELECT (SELECT count(*) FROM seatledger.outbox) + (SELECT "
             "coalesce(sum(record_count), 0) FROM seatledger.outbox_chunks)")[0]
      .as<std::int64_t>();
  }

  bool migrate_in_setup_ = true;
  std::unique_ptr<scratch_database> db_;
  std::unique_ptr<storage::pg_store> store_;
};

// -- builders -----------------------------------------------------------------

/// Appends `n` entries to a subscription's chain, one user each, at
/// `first` + i * `step`; returns them. `seq` and `hash` continue from
/// `prev`.
inline std::vector<domain::ledger_entry>
chain(const std::string& subscription_id, int n, domain::timestamp first,
      std::int64_t step_micros, std::int64_t first_seq = 1,
      std::string prev_hash = domain::genesis_hash,
      std::int64_t seats_before = 0, const std::string& org_id = "org-1") {
  std::vector<domain::ledger_entry> out;
  for (int i = 0; i < n; ++i) {
    domain::ledger_entry e;
    e.subscription_id = subscription_id;
    e.seq = first_seq + i;
    e.seats_in_use = seats_before + i + 1;
    e.effective_at
      = domain::timestamp::from_micros(first.micros() + i * step_micros);
    e.cause = {"test", "evt-" + subscription_id + "-" + std::to_string(e.seq),
               "seatledger.member.added",
               domain::timestamp::from_micros(e.effective_at.micros() - 7)};
    e.org_id = org_id;
    e.user_id = "user-" + std::to_string(e.seq);
    e.prev_hash = prev_hash;
    e.hash = domain::compute_entry_hash(e);
    prev_hash = e.hash;
    out.push_back(e);
  }
  return out;
}

inline domain::subscription_record
record_for(const std::string& id, const std::vector<domain::ledger_entry>& l) {
  domain::subscription_record r;
  r.subscription_id = id;
  r.status = domain::subscription_status::active;
  r.display_name = "Customer " + id;
  r.customer.salesforce_account_id = "0015000000abcde";
  r.instance = {id + ".example.com", domain::instance_type::primary};
  r.plan_id = "ultimate-annual";
  r.seats = 10;
  r.term = {at("2026-01-15T00:00:00Z"), at("2027-01-15T00:00:00Z")};
  r.features = {"sso", "audit \"events\""};
  if (!l.empty()) {
    r.clock = l.back().effective_at;
    r.seats_in_use = l.back().seats_in_use;
    r.ledger_seq = l.back().seq;
    r.ledger_hash = l.back().hash;
    r.max_seats_used = l.back().seats_in_use;
    r.max_seats_used_changed_at = l.back().effective_at;
  }
  return r;
}

inline storage::outbox_row outbox_for(const std::string& lease_key,
                                      const std::string& id) {
  storage::outbox_row o;
  o.event_id = id;
  o.topic = "seatledger.events.v1";
  o.key = "sub-" + id;
  o.value = R"({"specversion":"1.0","id":")" + id + R"("})";
  o.headers = {{"content-type", "application/cloudevents+json"}};
  o.lease_key = lease_key;
  return o;
}

#define ASSERT_OK(expr)                                                  \
  do {                                                                   \
    auto assert_ok_result = (expr);                                      \
    ASSERT_TRUE(assert_ok_result) << describe(assert_ok_result.error()); \
  } while (false)

template<class T>
T value_or_fail(caf::expected<T> x) {
  EXPECT_TRUE(x) << describe(x.error());
  if (!x)
    return T{};
  return std::move(*x);
}

} // namespace seatledger::test
