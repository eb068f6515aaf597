#include <algorithm>
#include <map>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "messages/service_error.hpp"
#include "storage/catalog.hpp"
#include "storage/pg_codec.hpp"

namespace seatledger::storage {

using namespace detail;

namespace {

// -- session setup ------------------------------------------------------------

constexpr const char* sql_set_role = "SELECT set_config('role', $1, false)";
constexpr const char* sql_set_application
  = "SELECT set_config('application_name', $1, false)";
// Every execution is planned for its own values: an absent plan-level
// filter folds away (`NULL IS NULL OR …`), and each containment is
// estimated from the statistics of its actual document (the GIN index for
// a rare value, a scan for a common one). A generic plan would keep the OR
// (no index) and guess every selectivity. Planning takes about a
// millisecond.
constexpr const char* sql_custom_plans
  = "SELECT set_config('plan_cache_mode', 'force_custom_plan', false)";

// -- classification -----------------------------------------------------------
//
// Completeness is stored by PostgreSQL itself (migration 2): a plan is
// classifiable when `missing_fields` is empty and no charge has
// `plan_type_ok` false.
//
// $1 page start (exclusive, '' for the first page), $2 the plan-level
// containment document (NULL when the filter sets none), $3 page size
// (NULL: all), $4 … one document per charge-level filter given, each its
// own IN list: a plan matches when any of its charges matches each. One
// statement per number of charge-level filters (0 to 3), so that every IN
// list is unconditional and PostgreSQL turns it into a semi-join driven by
// the charges' GIN index, with estimates that fit (an IN list under
// `$n IS NULL OR` would stay a filter run over every plan). The plan-level
// `$2 IS NULL OR` is folded away: each execution is planned for its values.
//
// The page's plans are then joined with their products and charges, one
// row per charge, in no particular order (ordering the joined rows would
// sort every charge document): the caller orders them. LATERAL: each plan's
// charges come from the primary key, whatever size the planner expects the
// answer to be (a hash join would read every charge of the catalog to
// answer a few dozen plans); OFFSET 0 keeps PostgreSQL from flattening the
// subquery back into a plain join.
//
// clang-format off
#define SEATLEDGER_PAGE_START                                                  \
  "SELECT p.rate_plan_id, p.name, p.product_id, pr.name, p.custom_fields, "    \
  "  p.version, c.position, c.charge_id, c.name, c.billing_period, "           \
  "  c.custom_fields "                                                         \
  "FROM ("                                                                     \
  "  SELECT p.rate_plan_id, p.name, p.product_id, p.custom_fields, "           \
  "    p.version "                                                             \
  "  FROM seatledger.catalog_rate_plans AS p "                                 \
  "  WHERE NOT p.removed AND p.missing_fields = '{}' "                         \
  "    AND p.rate_plan_id > $1 "                                               \
  "    AND ($2::jsonb IS NULL OR p.custom_fields @> $2::jsonb) "               \
  "    AND NOT EXISTS (SELECT FROM seatledger.catalog_charges AS c "           \
  "      WHERE c.rate_plan_id = p.rate_plan_id AND NOT c.plan_type_ok) "
#define SEATLEDGER_ANY_CHARGE(n)                                               \
  "    AND p.rate_plan_id IN (SELECT c.rate_plan_id "                          \
  "      FROM seatledger.catalog_charges AS c "                                \
  "      WHERE c.custom_fields @> $" #n "::jsonb) "
#define SEATLEDGER_PAGE_END                                                    \
  "  ORDER BY p.rate_plan_id LIMIT $3::bigint) AS p "                          \
  "JOIN seatledger.catalog_products AS pr ON pr.product_id = p.product_id "    \
  "LEFT JOIN LATERAL (SELECT c.position, c.charge_id, c.name, "                \
  "    c.billing_period, c.custom_fields "                                     \
  "  FROM seatledger.catalog_charges AS c "                                    \
  "  WHERE c.rate_plan_id = p.rate_plan_id OFFSET 0) AS c ON true"

#define SEATLEDGER_RATE_PLANS_0                                                \
  SEATLEDGER_PAGE_START SEATLEDGER_PAGE_END
#define SEATLEDGER_RATE_PLANS_1                                                \
  SEATLEDGER_PAGE_START SEATLEDGER_ANY_CHARGE(4) SEATLEDGER_PAGE_END
#define SEATLEDGER_RATE_PLANS_2                                                \
  SEATLEDGER_PAGE_START SEATLEDGER_ANY_CHARGE(4) SEATLEDGER_ANY_CHARGE(5)      \
  SEATLEDGER_PAGE_END
#define SEATLEDGER_RATE_PLANS_3                                                \
  SEATLEDGER_PAGE_START SEATLEDGER_ANY_CHARGE(4) SEATLEDGER_ANY_CHARGE(5)      \
  SEATLEDGER_ANY_CHARGE(6) SEATLEDGER_PAGE_END

/// By the number of charge-level filters.
constexpr const char* sql_rate_plans[] = {
  SEATLEDGER_RATE_PLANS_0, SEATLEDGER_RATE_PLANS_1, SEATLEDGER_RATE_PLANS_2,
  SEATLEDGER_RATE_PLANS_3};
constexpr const char* sql_explain_rate_plans[] = {
  "EXPLAIN (COSTS OFF) " SEATLEDGER_RATE_PLANS_0,
  "EXPLAIN (COSTS OFF) " SEATLEDGER_RATE_PLANS_1,
  "EXPLAIN (COSTS OFF) " SEATLEDGER_RATE_PLANS_2,
  "EXPLAIN (COSTS OFF) " SEATLEDGER_RATE_PLANS_3};
constexpr const char* rate_plans_statements[] = {
  "catalog_rate_plans_0", "catalog_rate_plans_1", "catalog_rate_plans_2",
  "catalog_rate_plans_3"};
// clang-format on

#undef SEATLEDGER_RATE_PLANS_3
#undef SEATLEDGER_RATE_PLANS_2
#undef SEATLEDGER_RATE_PLANS_1
#undef SEATLEDGER_RATE_PLANS_0
#undef SEATLEDGER_PAGE_END
#undef SEATLEDGER_ANY_CHARGE
#undef SEATLEDGER_PAGE_START

constexpr const char* sql_rate_plan = R"sql(
SELECT p.rate_plan_id, p.name, p.product_id, pr.name, p.custom_fields,
       p.version, c.position, c.charge_id, c.name, c.billing_period,
       c.custom_fields
FROM seatledger.catalog_rate_plans AS p
JOIN seatledger.catalog_products AS pr ON pr.product_id = p.product_id
LEFT JOIN seatledger.catalog_charges AS c ON c.rate_plan_id = p.rate_plan_id
WHERE p.rate_plan_id = $1 AND NOT p.removed
)sql";

// The candidates come from the two partial indexes of the unclassifiable
// plans and charges, so the answer costs what the incomplete plans cost,
// not what the catalog does. A plan's missing fields in a fixed order, the
// charges lacking a usable plan type by position.
constexpr const char* sql_incomplete_plans = R"sql(
WITH bad AS (
  SELECT c.rate_plan_id, array_agg(c.charge_id ORDER BY c.position)
           AS charge_ids
  FROM seatledger.catalog_charges AS c
  WHERE NOT c.plan_type_ok
  GROUP BY c.rate_plan_id),
candidates AS (
  SELECT p.rate_plan_id FROM seatledger.catalog_rate_plans AS p
  WHERE p.missing_fields <> '{}'
  UNION
  SELECT bad.rate_plan_id FROM bad)
SELECT p.rate_plan_id, p.name,
       CASE WHEN bad.charge_ids IS NULL THEN p.missing_fields
            ELSE p.missing_fields || 'CDotPlanType__c'::text END,
       bad.charge_ids
FROM candidates
JOIN seatledger.catalog_rate_plans AS p
  ON p.rate_plan_id = candidates.rate_plan_id
LEFT JOIN bad ON bad.rate_plan_id = p.rate_plan_id
WHERE NOT p.removed
ORDER BY p.rate_plan_id
)sql";

struct named_statement {
  const char* name;
  const char* sql;
};

constexpr named_statement prepared_statements[] = {
  {rate_plans_statements[0], sql_rate_plans[0]},
  {rate_plans_statements[1], sql_rate_plans[1]},
  {rate_plans_statements[2], sql_rate_plans[2]},
  {rate_plans_statements[3], sql_rate_plans[3]},
  {"catalog_rate_plan", sql_rate_plan},
  {"catalog_incomplete_plans", sql_incomplete_plans},
};

// -- parameters and rows ------------------------------------------------------

std::string text_of(const pqxx::field& f) {
  return std::string{f.c_str(), f.size()};
}

/// Rows of plan columns 0-5 and charge columns 6-10 (position first), one
/// per charge (a plan without charges: one row with NULL charge columns),
/// in any order: grouped into plans ordered by id, charges by position.
std::vector<rate_plan_view> plans_of(const pqxx::result& rows) {
  struct entry {
    rate_plan_view plan;
    std::vector<std::pair<std::int64_t, catalog_charge_view>> charges;
  };
  std::map<std::string, entry> by_id;
  for (const auto& r : rows) {
    auto [it, fresh] = by_id.try_emplace(text_of(r[0]));
    auto& e = it->second;
    if (fresh) {
      e.plan.rate_plan_id = it->first;
      e.plan.name = text_of(r[1]);
      e.plan.product_id = text_of(r[2]);
      e.plan.product_name = text_of(r[3]);
      // As PostgreSQL prints JSONB: valid JSON, keys sorted, never
      // re-parsed here (that would cost more than the query).
      e.plan.custom_fields = text_of(r[4]);
      e.plan.version = r[5].as<std::int64_t>();
    }
    if (r[6].is_null())
      continue; // a plan without charges
    catalog_charge_view c;
    c.charge_id = text_of(r[7]);
    c.name = text_of(r[8]);
    c.billing_period = text_of(r[9]);
    c.custom_fields = text_of(r[10]);
    e.charges.emplace_back(r[6].as<std::int64_t>(), std::move(c));
  }
  std::vector<rate_plan_view> out;
  out.reserve(by_id.size());
  for (auto& [id, e] : by_id) {
    std::sort(e.charges.begin(), e.charges.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto& [position, c] : e.charges)
      e.plan.charges.push_back(std::move(c));
    out.push_back(std::move(e.plan));
  }
  return out;
}

std::optional<std::string> dump_if(const nlohmann::json& doc) {
  if (doc.empty())
    return std::nullopt;
  return doc.dump();
}

std::optional<std::string>
charge_document(std::string_view field, const std::optional<std::string>& v) {
  if (!v)
    return std::nullopt;
  return nlohmann::json{{std::string{field}, *v}}.dump();
}

} // namespace

// -- filters ------------------------------------------------------------------

bool rate_plan_filter::unfiltered() const {
  return !tier && !deployment && actions.empty() && !status && !plan_type
         && !true_up && !us_pubsec && !community_type;
}

catalog_containment containment_of(const rate_plan_filter& f) {
  catalog_containment out;
  auto plan = nlohmann::json::object();
  if (!f.actions.empty())
    plan[std::string{catalog_field::actions}] = f.actions;
  if (f.status)
    plan[std::string{catalog_field::plan_status}] = *f.status;
  if (f.true_up)
    plan[std::string{catalog_field::true_up}] = *f.true_up;
  if (f.us_pubsec)
    plan[std::string{catalog_field::us_pubsec}] = *f.us_pubsec;
  if (f.community_type)
    plan[std::string{catalog_field::community_type}] = *f.community_type;
  out.plan = dump_if(plan);
  out.tier = charge_document(catalog_field::tier, f.tier);
  out.deployment = charge_document(catalog_field::deployment, f.deployment);
  out.plan_type = charge_document(catalog_field::plan_type, f.plan_type);
  return out;
}

catalog_store::~catalog_store() = default;

// -- impl ---------------------------------------------------------------------

struct pg_catalog::impl {
  std::string conninfo;
  pg_store_options options;
  std::unique_ptr<pg_connection> conn;

  pg_connection& connection() {
    if (conn && conn->is_open())
      return *conn;
    conn.reset();
    auto fresh = std::make_unique<pg_connection>(conninfo);
    {
      pqxx::nontransaction tx{*fresh};
      tx.exec_params(sql_set_application, options.application_name);
      if (options.runtime_role && !options.runtime_role->empty())
        tx.exec_params(sql_set_role, *options.runtime_role);
      tx.exec(sql_custom_plans);
    }
    for (const auto& s : prepared_statements)
      fresh->prepare(s.name, s.sql);
    conn = std::move(fresh);
    return *conn;
  }

  template<class F>
  auto run(std::string_view what, F&& f)
    -> caf::expected<std::invoke_result_t<F, pg_connection&>> {
    using result_type = std::invoke_result_t<F, pg_connection&>;
    try {
      auto& c = connection();
      if constexpr (std::is_void_v<result_type>) {
        f(c);
        return caf::expected<void>{};
      } else {
        return f(c);
      }
    } catch (...) {
      auto ex = std::current_exception();
      bool gone = conn && !connection_ok(*conn);
      if (gone || connection_lost(ex))
        conn.reset();
      return to_error(ex, what, gone);
    }
  }

  /// Runs the classification (or its EXPLAIN) with the filter's parameters.
  template<class Tx>
  static pqxx::result
  classify(Tx& tx, const rate_plan_filter& filter, bool explain) {
    auto docs = containment_of(filter);
    std::vector<std::string> charge_docs;
    for (const auto* doc : {&docs.tier, &docs.deployment, &docs.plan_type})
      if (*doc)
        charge_docs.push_back(**doc);
    std::optional<std::string> limit;
    if (filter.limit)
      limit = std::to_string(*filter.limit);
    auto n = charge_docs.size();
    auto charge_params = pqxx::prepare::make_dynamic_params(charge_docs);
    if (explain)
      return tx.exec_params(sql_explain_rate_plans[n], filter.after,
                            c_str_or_null(docs.plan), c_str_or_null(limit),
                            charge_params);
    return tx.exec_prepared(rate_plans_statements[n], filter.after,
                            c_str_or_null(docs.plan), c_str_or_null(limit),
                            charge_params);
  }
};

pg_catalog::pg_catalog(std::string conninfo, pg_store_options options)
    : impl_(std::make_unique<impl>()) {
  impl_->conninfo = std::move(conninfo);
  impl_->options = std::move(options);
}

pg_catalog::~pg_catalog() = default;

caf::expected<std::vector<rate_plan_view>>
pg_catalog::rate_plans(const rate_plan_filter& filter) {
  return impl_->run("catalog rate_plans", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    return plans_of(impl::classify(tx, filter, false));
  });
}

caf::expected<std::vector<incomplete_plan>> pg_catalog::incomplete_plans() {
  return impl_->run("catalog incomplete_plans", [&](pg_connection& c) {
    std::vector<incomplete_plan> out;
    pqxx::nontransaction tx{c};
    for (const auto& r : tx.exec_prepared("catalog_incomplete_plans")) {
      auto& p = out.emplace_back();
      p.rate_plan_id = text_of(r[0]);
      p.name = text_of(r[1]);
      p.missing = parse_text_array(r[2]);
      p.charges_missing_plan_type = parse_text_array(r[3]);
    }
    return out;
  });
}

caf::expected<std::optional<rate_plan_view>>
pg_catalog::rate_plan(const std::string& rate_plan_id) {
  return impl_->run("catalog rate_plan", [&](pg_connection& c) {
    pqxx::nontransaction tx{c};
    auto plans = plans_of(tx.exec_prepared("catalog_rate_plan", rate_plan_id));
    std::optional<rate_plan_view> out;
    if (!plans.empty())
      out = std::move(plans.front());
    return out;
  });
}

caf::expected<std::string>
pg_catalog::explain_rate_plans(const rate_plan_filter& filter) {
  return impl_->run("catalog explain_rate_plans", [&](pg_connection& c) {
    std::string out;
    pqxx::nontransaction tx{c};
    for (const auto& r : impl::classify(tx, filter, true)) {
      out += r[0].c_str();
      out += '\n';
    }
    return out;
  });
}

} // namespace seatledger::storage
