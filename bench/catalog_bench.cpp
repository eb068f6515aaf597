// Catalog benchmark: loads 10,000 generated rate plans (2-3 charges each,
// the catalog of tests/support/catalog_generator.hpp, which the integration
// tests EXPLAIN) through the service's commit path, ANALYZEs, and times each
// classification of the catalog issue as the HTTP API runs it
// (`pg_catalog::rate_plans`, one connection, warm): median and p99 over 200
// runs, the plans answered, and the index scans of its plan.
//
//   pg_virtualenv -v 15 build/release/bench/seatledger_catalog_bench
//   (options: --plans N, default 10,000; --keep)
//
// Connects through the PG* environment variables, works in a scratch
// database of its own and drops it at the end (`--keep`: leaves it, and
// prints its name, for a look with psql). A program, not a test: it
// prints figures and exits 0 unless something failed.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>

#include "messages/service_error.hpp"
#include "storage/catalog.hpp"
#include "storage/pg_store.hpp"
#include "tests/support/catalog_generator.hpp"

using namespace seatledger;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int runs = 200;

double ms_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - start)
    .count();
}

storage::rate_plan_filter
filter(const std::function<void(storage::rate_plan_filter&)>& set) {
  storage::rate_plan_filter f;
  set(f);
  return f;
}

struct query {
  const char* name;
  storage::rate_plan_filter filter;
};

std::vector<query> queries() {
  return {
    {"all GitLab.com plans",
     filter([](auto& f) { f.deployment = "GitLab.com"; })},
    {"self-service GitLab.com plans", filter([](auto& f) {
       f.deployment = "GitLab.com";
       f.actions = {"initial_purchase"};
     })},
    {"true-up plans", filter([](auto& f) { f.true_up = true; })},
    {"active Ultimate plans", filter([](auto& f) {
       f.tier = "Ultimate";
       f.status = "active";
     })},
    {"US public-sector plans", filter([](auto& f) { f.us_pubsec = true; })},
    {"education plans",
     filter([](auto& f) { f.community_type = "education"; })},
    {"Duo Pro add-ons", filter([](auto& f) { f.plan_type = "duo_pro"; })},
    {"every complete plan (no filter)", {}},
  };
}

template<class T>
T value_or_die(caf::expected<T> x, const char* what) {
  if (!x) {
    std::cerr << what << ": " << describe(x.error()) << "\n";
    std::exit(1);
  }
  return std::move(*x);
}

void print_timing(const char* name, std::vector<double> samples,
                  std::size_t answered) {
  std::sort(samples.begin(), samples.end());
  auto median = samples[samples.size() / 2];
  auto p99 = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  std::printf("%-34s %6zu plans   median %7.2f ms   p99 %7.2f ms\n", name,
              answered, median, p99);
}

/// The index scans of an EXPLAIN, one per line, or the top node when none.
std::string index_lines(const std::string& plan) {
  std::string out;
  std::size_t start = 0;
  while (start < plan.size()) {
    auto end = plan.find('\n', start);
    auto line = plan.substr(start, end - start);
    if (line.find("Index Scan") != std::string::npos
        || line.find("Seq Scan on catalog") != std::string::npos)
      out += "      " + line.substr(line.find_first_not_of(" ->")) + "\n";
    start = end == std::string::npos ? plan.size() : end + 1;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  int plans = 10'000;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--plans" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      plans = std::atoi(argv[++i]);
    } else if (arg == "--keep") {
      keep = true;
    } else {
      std::cerr << "usage: seatledger_catalog_bench [--plans N] [--keep]\n";
      return 2;
    }
  }
  auto name = "seatledger_catalog_bench_" + std::to_string(getpid());
  std::string conninfo = "dbname=" + name;
  try {
    {
      pqxx::connection admin{""};
      pqxx::nontransaction tx{admin};
      tx.exec("CREATE DATABASE " + tx.quote_name(name));
    }
    value_or_die(storage::migrate(conninfo), "migrate");
    storage::pg_store store{conninfo};
    test::catalog_generator gen;
    auto rows = gen.plans(plans);
    std::size_t charges = 0;
    for (const auto& r : rows)
      charges += r.plan.charges.size();
    auto load_start = clock_type::now();
    for (std::size_t i = 0; i < rows.size(); i += 1000) {
      storage::storage_batch b;
      auto end = std::min(rows.size(), i + 1000);
      b.catalog_upserts.assign(rows.begin() + static_cast<long>(i),
                               rows.begin() + static_cast<long>(end));
      if (auto ok = store.commit(b); !ok) {
        std::cerr << "commit: " << describe(ok.error()) << "\n";
        return 1;
      }
    }
    auto load_ms = ms_since(load_start);
    {
      pqxx::connection conn{conninfo};
      pqxx::nontransaction tx{conn};
      tx.exec("ANALYZE seatledger.catalog_rate_plans");
      tx.exec("ANALYZE seatledger.catalog_charges");
    }
    std::printf("catalog: %d rate plans, %zu charges, loaded through "
                "pg_store::commit in %.0f ms (batches of 1,000)\n\n",
                plans, charges, load_ms);

    storage::pg_catalog catalog{conninfo};
    // Connect and prepare outside the timings.
    value_or_die(catalog.rate_plans(filter([](auto& f) { f.limit = 1; })),
                 "warm-up");
    for (const auto& q : queries()) {
      std::vector<double> samples;
      std::size_t answered = 0;
      for (int i = 0; i < runs; ++i) {
        auto start = clock_type::now();
        answered = value_or_die(catalog.rate_plans(q.filter), q.name).size();
        samples.push_back(ms_since(start));
      }
      print_timing(q.name, std::move(samples), answered);
      auto plan = value_or_die(catalog.explain_rate_plans(q.filter), "explain");
      std::printf("%s", index_lines(plan).c_str());
    }
    std::vector<double> samples;
    std::size_t answered = 0;
    for (int i = 0; i < runs; ++i) {
      auto start = clock_type::now();
      answered = value_or_die(catalog.incomplete_plans(), "incomplete").size();
      samples.push_back(ms_since(start));
    }
    print_timing("incomplete plans", std::move(samples), answered);
  } catch (const std::exception& e) {
    std::cerr << "catalog bench failed: " << e.what() << "\n";
    return 1;
  }
  if (keep) {
    std::printf("\nkept database %s\n", name.c_str());
    return 0;
  }
  try {
    pqxx::connection admin{""};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::cerr << "cannot drop " << name << ": " << e.what() << "\n";
  }
  return 0;
}
