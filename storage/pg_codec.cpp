#include "storage/pg_codec.hpp"

#include <algorithm>
#include <cstring>
#include <libpq-fe.h>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "domain/identifiers.hpp"
#include "messages/service_error.hpp"
#include "storage/conninfo.hpp"

namespace seatledger::storage::detail {

// -- connection ---------------------------------------------------------------

namespace {

// `source = 'default'`: a value set anywhere else is the operator's.
constexpr const char* sql_server_timeouts = R"sql(
SELECT set_config(s.name, v.value, false)
FROM (VALUES ('tcp_keepalives_idle', '10'), ('tcp_keepalives_interval', '5'),
             ('tcp_keepalives_count', '3'), ('tcp_user_timeout', '30000'))
  AS v(name, value)
JOIN pg_settings AS s USING (name)
WHERE s.source = 'default'
)sql";

} // namespace

void set_server_timeouts(pqxx::connection_base& conn) {
  pqxx::nontransaction tx{conn};
  tx.exec(sql_server_timeouts);
}

pg_connection::pg_connection(const std::string& conninfo)
    : connection_base(policy_), policy_(with_network_timeouts(conninfo)) {
  init();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  inhibit_reactivation(true);
#pragma GCC diagnostic pop
  // connection_base's destructor does not close, and ours does not run
  // when the constructor throws.
  try {
    set_server_timeouts(*this);
  } catch (...) {
    close();
    throw;
  }
}

pg_connection::~pg_connection() noexcept {
  close();
}

// -- errors -------------------------------------------------------------------

namespace {

bool sqlstate_means_unavailable(const std::string& state) {
  // 08: connection exception; 57P01..03: the server is shutting down or
  // starting; 53300: too many connections.
  return state.compare(0, 2, "08") == 0 || state == "57P01" || state == "57P02"
         || state == "57P03" || state == "53300";
}

} // namespace

std::string trimmed_message(const char* text) {
  // libpq puts hints on lines of their own ("...refused\n\tIs the server
  // running...?"); an error is one line wherever it is printed.
  std::string result;
  auto space = false;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c == '\n' || *c == '\r' || *c == '\t' || *c == ' ') {
      space = !result.empty();
      continue;
    }
    if (space)
      result += ' ';
    space = false;
    result += *c;
  }
  return result;
}

uuid_octets uuid_bytes(std::string_view text) {
  uuid_octets result{};
  std::size_t size = 0;
  int high = -1;
  for (char c : text) {
    if (c == '-')
      continue;
    auto value = domain::hex_digit_value(c);
    if (value < 0 || size == result.size())
      throw std::invalid_argument{"not a uuid: " + std::string{text}};
    if (high < 0) {
      high = value;
    } else {
      result[size++] = static_cast<char>((high << 4) | value);
      high = -1;
    }
  }
  if (size != result.size() || high >= 0)
    throw std::invalid_argument{"not a uuid: " + std::string{text}};
  return result;
}

bool is_unique_violation(const pqxx::sql_error& e) {
  // libpqxx 6.4 leaves sqlstate() empty on the exceptions it types itself;
  // COPY errors carry it.
  return e.sqlstate() == "23505"
         || dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr;
}

bool connection_lost(const std::exception_ptr& ex) {
  try {
    std::rethrow_exception(ex);
  } catch (const fenced_error&) {
    return false;
  } catch (const already_applied_error&) {
    return false;
  } catch (const pqxx::broken_connection&) {
    return true;
  } catch (const pqxx::in_doubt_error&) {
    return true;
  } catch (const pqxx::sql_error& e) {
    return sqlstate_means_unavailable(e.sqlstate());
  } catch (...) {
    // Unknown state (a libpqxx usage error, an allocation failure mid-COPY):
    // a fresh connection is the only safe assumption.
    return true;
  }
}

bool connection_ok(const pg_connection& conn) {
  auto* pg = conn.raw();
  return pg != nullptr && PQstatus(pg) == CONNECTION_OK;
}

caf::error to_error(const std::exception_ptr& ex, std::string_view what,
                    bool connection_gone) {
  std::string prefix{what};
  prefix += ": ";
  if (connection_gone) {
    std::string detail = "connection lost";
    try {
      std::rethrow_exception(ex);
    } catch (const std::exception& e) {
      detail += ": " + trimmed_message(e.what());
    } catch (...) {
    }
    return make_error(service_errc::storage_unavailable, prefix + detail);
  }
  try {
    std::rethrow_exception(ex);
  } catch (const fenced_error& e) {
    return make_error(service_errc::fenced, prefix + e.what());
  } catch (const already_applied_error& e) {
    return make_error(service_errc::already_applied, prefix + e.what());
  } catch (const pqxx::broken_connection& e) {
    return make_error(service_errc::storage_unavailable,
                      prefix + trimmed_message(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    return make_error(service_errc::storage_unavailable,
                      prefix
                        + "connection lost during COMMIT, outcome unknown: "
                        + trimmed_message(e.what()));
  } catch (const pqxx::sql_error& e) {
    auto code = sqlstate_means_unavailable(e.sqlstate())
                  ? service_errc::storage_unavailable
                  : service_errc::storage_failure;
    auto msg = prefix;
    if (is_unique_violation(e))
      msg += "duplicate key (an applied event, ledger entry or license "
             "written twice): ";
    msg += trimmed_message(e.what());
    if (!e.sqlstate().empty())
      msg += " [SQLSTATE " + e.sqlstate() + "]";
    return make_error(code, std::move(msg));
  } catch (const std::exception& e) {
    return make_error(service_errc::storage_failure,
                      prefix + trimmed_message(e.what()));
  } catch (...) {
    return make_error(service_errc::storage_failure,
                      prefix + "unknown exception");
  }
}

// -- COPY ---------------------------------------------------------------------

void copy_buffer::sep() {
  if (first_)
    first_ = false;
  else
    buf_.push_back('\t');
}

void copy_buffer::escaped(std::string_view value) {
  // COPY text format: backslash, tab, newline and carriage return are the
  // only bytes that must be escaped.
  static constexpr const char* specials = "\\\t\n\r";
  auto pos = value.find_first_of(specials);
  if (pos == std::string_view::npos) {
    buf_.append(value.data(), value.size());
    return;
  }
  for (char c : value) {
    switch (c) {
      case '\\': buf_ += "\\\\"; break;
      case '\t': buf_ += "\\t"; break;
      case '\n': buf_ += "\\n"; break;
      case '\r': buf_ += "\\r"; break;
      default: buf_.push_back(c);
    }
  }
}

copy_buffer& copy_buffer::text(std::string_view value) {
  sep();
  escaped(value);
  return *this;
}

copy_buffer& copy_buffer::opt_text(const std::optional<std::string>& value) {
  if (!value)
    return null();
  return text(std::string_view{*value});
}

copy_buffer& copy_buffer::null() {
  sep();
  buf_ += "\\N";
  return *this;
}

copy_buffer& copy_buffer::integer(std::int64_t value) {
  sep();
  char tmp[24];
  auto n = std::snprintf(tmp, sizeof(tmp), "%lld",
                         static_cast<long long>(value));
  buf_.append(tmp, static_cast<std::size_t>(n));
  return *this;
}

copy_buffer& copy_buffer::boolean(bool value) {
  sep();
  buf_.push_back(value ? 't' : 'f');
  return *this;
}

copy_buffer& copy_buffer::boolean(std::optional<bool> value) {
  if (!value)
    return null();
  return boolean(*value);
}

copy_buffer& copy_buffer::time(domain::timestamp value) {
  if (value == domain::timestamp::min())
    return null();
  sep();
  buf_ += domain::format_rfc3339(value);
  return *this;
}

copy_buffer& copy_buffer::time(std::optional<domain::timestamp> value) {
  if (!value)
    return null();
  return time(*value);
}

copy_buffer& copy_buffer::bytea(std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  sep();
  // `\x…` hex input; the backslash itself is escaped for COPY.
  buf_ += "\\\\x";
  auto at = buf_.size();
  buf_.resize(at + value.size() * 2);
  for (unsigned char c : value) {
    buf_[at++] = hex[c >> 4];
    buf_[at++] = hex[c & 0x0f];
  }
  return *this;
}

copy_buffer& copy_buffer::text_array(const std::vector<std::string>& values) {
  sep();
  escaped(detail::text_array(values));
  return *this;
}

namespace {

/// One append, not one push_back per byte: every field of every binary
/// COPY row starts with a length written here. The width is a template
/// argument so that a width the format has no use for does not compile.
template<int Bytes>
void put_be(std::string& out, std::uint64_t value) {
  static_assert(Bytes == 2 || Bytes == 4 || Bytes == 8,
                "binary COPY writes 2-, 4- and 8-byte integers");
  char be[Bytes];
  for (int i = 0; i < Bytes; ++i)
    be[i] = static_cast<char>((value >> ((Bytes - 1 - i) * 8)) & 0xff);
  out.append(be, Bytes);
}

} // namespace

copy_buffer& copy_buffer::binary_header() {
  static constexpr char signature[] = "PGCOPY\n\xff\r\n";
  buf_.append(signature, sizeof(signature)); // with its final NUL byte
  put_be<4>(buf_, 0);                        // flags: no OIDs
  put_be<4>(buf_, 0);                        // no header extension
  return *this;
}

copy_buffer& copy_buffer::binary_row(std::int16_t fields) {
  put_be<2>(buf_, static_cast<std::uint16_t>(fields));
  ++rows_;
  return *this;
}

copy_buffer& copy_buffer::binary_bytes(std::string_view value) {
  put_be<4>(buf_, static_cast<std::uint32_t>(value.size()));
  buf_.append(value.data(), value.size());
  return *this;
}

copy_buffer& copy_buffer::binary_bool(bool value) {
  put_be<4>(buf_, 1);
  buf_.push_back(value ? '\1' : '\0');
  return *this;
}

copy_buffer& copy_buffer::binary_int4(std::int32_t value) {
  put_be<4>(buf_, 4);
  put_be<4>(buf_, static_cast<std::uint32_t>(value));
  return *this;
}

copy_buffer& copy_buffer::binary_int8(std::int64_t value) {
  put_be<4>(buf_, 8);
  put_be<8>(buf_, static_cast<std::uint64_t>(value));
  return *this;
}

copy_buffer& copy_buffer::binary_time(domain::timestamp value) {
  // 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix microseconds.
  constexpr std::int64_t postgres_epoch_us = 946'684'800'000'000;
  if (value == domain::timestamp::min())
    return binary_null();
  return binary_int8(value.micros() - postgres_epoch_us);
}

copy_buffer& copy_buffer::binary_null() {
  put_be<4>(buf_, 0xffffffff); // length -1
  return *this;
}

copy_buffer& copy_buffer::binary_trailer() {
  put_be<2>(buf_, 0xffff);
  return *this;
}

void copy_buffer::end_row() {
  buf_.push_back('\n');
  first_ = true;
  ++rows_;
}

namespace {

[[noreturn]] void throw_result_error(PGresult* res, const char* sql) {
  std::string msg = res ? PQresultErrorMessage(res) : "no result";
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  if (res)
    PQclear(res);
  throw pqxx::sql_error{msg, sql,
                        sqlstate.empty() ? nullptr : sqlstate.c_str()};
}

[[noreturn]] void throw_broken(PGconn* pg) {
  throw pqxx::broken_connection{trimmed_message(PQerrorMessage(pg))};
}

} // namespace

copy_stream::copy_stream(pg_connection& conn, const char* copy_sql,
                         copy_buffer& buf)
    : conn_(conn), sql_(copy_sql), buf_(buf) {
  buf_.clear();
  auto* pg = conn_.raw();
  if (pg == nullptr || PQstatus(pg) != CONNECTION_OK)
    throw pqxx::broken_connection{"connection is not open"};
  auto* res = PQexec(pg, copy_sql);
  if (res == nullptr)
    throw_broken(pg);
  if (PQresultStatus(res) != PGRES_COPY_IN)
    throw_result_error(res, copy_sql);
  PQclear(res);
  open_ = true;
}

copy_stream::~copy_stream() {
  if (!open_)
    return;
  // Unfinished (an exception on our side): end the COPY with an error so
  // the server fails the transaction and the connection is in sync again.
  auto* pg = conn_.raw();
  if (pg != nullptr && PQputCopyEnd(pg, "COPY abandoned by the client") == 1)
    while (auto* res = PQgetResult(pg))
      PQclear(res);
}

void copy_stream::send() {
  const auto& data = buf_.data();
  if (!data.empty()
      && PQputCopyData(conn_.raw(), data.data(), static_cast<int>(data.size()))
           != 1) {
    open_ = false;
    throw_broken(conn_.raw());
  }
  buf_.clear();
}

void copy_stream::finish() {
  send();
  auto* pg = conn_.raw();
  open_ = false;
  if (PQputCopyEnd(pg, nullptr) != 1)
    throw_broken(pg);
  PGresult* failed = nullptr;
  while (auto* res = PQgetResult(pg)) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && failed == nullptr)
      failed = res;
    else
      PQclear(res);
  }
  if (failed != nullptr)
    throw_result_error(failed, sql_);
  if (PQstatus(pg) != CONNECTION_OK)
    throw_broken(pg);
}

binary_query::binary_query(pg_connection& conn, const char* name,
                           const char* sql,
                           const std::vector<std::string>& params) {
  auto* pg = conn.raw();
  if (pg == nullptr || PQstatus(pg) != CONNECTION_OK)
    throw pqxx::broken_connection{"connection is not open"};
  auto& prepared = conn.binary_statements();
  if (prepared.count(name) == 0) {
    auto* res = PQprepare(pg, name, sql, static_cast<int>(params.size()),
                          nullptr);
    if (res == nullptr)
      throw_broken(pg);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
      throw_result_error(res, sql);
    PQclear(res);
    prepared.insert(name);
  }
  std::vector<const char*> values;
  for (const auto& p : params)
    values.push_back(p.c_str());
  constexpr int binary_results = 1;
  auto* res = PQexecPrepared(pg, name, static_cast<int>(values.size()),
                             values.data(), nullptr, nullptr, binary_results);
  if (res == nullptr)
    throw_broken(pg);
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    throw_result_error(res, sql);
  res_ = res;
}

binary_query::~binary_query() {
  PQclear(res_);
}

int binary_query::rows() const {
  return PQntuples(res_);
}

std::string_view binary_query::bytes(int row, int column) const {
  return {PQgetvalue(res_, row, column),
          static_cast<std::size_t>(PQgetlength(res_, row, column))};
}

std::int64_t binary_query::int8(int row, int column) const {
  auto value = bytes(row, column);
  if (value.size() != 8)
    throw std::runtime_error{"binary_query: column " + std::to_string(column)
                             + " is not a bigint"};
  std::uint64_t result = 0;
  for (unsigned char c : value)
    result = (result << 8) | c;
  return static_cast<std::int64_t>(result);
}

// -- parameters and results ---------------------------------------------------

std::string time_text(domain::timestamp t) {
  return domain::format_rfc3339(t);
}

namespace {

void append_array_element(std::string& out, std::string_view value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

} // namespace

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    append_array_element(out, values[i]);
  }
  out.push_back('}');
  return out;
}

std::string text_array(const std::vector<std::optional<std::string>>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    if (values[i])
      append_array_element(out, *values[i]);
    else
      out += "NULL";
  }
  out.push_back('}');
  return out;
}

namespace {

template<class Int>
std::string int_element(Int value) {
  return std::to_string(value);
}

template<class Int>
std::string int_element(const std::optional<Int>& value) {
  return value ? std::to_string(*value) : std::string{"NULL"};
}

template<class Int>
std::string int_array_impl(const std::vector<Int>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    out += int_element(values[i]);
  }
  out.push_back('}');
  return out;
}

} // namespace

std::string int_array(const std::vector<std::int64_t>& values) {
  return int_array_impl(values);
}

std::string int_array(const std::vector<std::int32_t>& values) {
  return int_array_impl(values);
}

std::string int_array(const std::vector<std::optional<std::int64_t>>& values) {
  return int_array_impl(values);
}

std::string time_array(const std::vector<domain::timestamp>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    if (values[i] == domain::timestamp::min())
      out += "NULL";
    else
      append_array_element(out, domain::format_rfc3339(values[i]));
  }
  out.push_back('}');
  return out;
}

std::string bool_array(const std::vector<std::optional<bool>>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    out += !values[i] ? "NULL" : *values[i] ? "t" : "f";
  }
  out.push_back('}');
  return out;
}

std::vector<std::string> parse_text_array(const pqxx::field& field) {
  std::vector<std::string> result;
  if (field.is_null())
    return result;
  pqxx::array_parser parser{field.c_str()};
  for (;;) {
    auto [junction, value] = parser.get_next();
    using pqxx::array_parser;
    if (junction == array_parser::juncture::done)
      break;
    if (junction == array_parser::juncture::string_value)
      result.push_back(std::move(value));
    else if (junction == array_parser::juncture::null_value)
      result.emplace_back();
  }
  return result;
}

domain::timestamp micros_of(const pqxx::field& field) {
  if (field.is_null())
    return domain::timestamp::min();
  return domain::timestamp::from_micros(field.as<std::int64_t>());
}

std::optional<domain::timestamp> opt_micros_of(const pqxx::field& field) {
  if (field.is_null())
    return std::nullopt;
  return domain::timestamp::from_micros(field.as<std::int64_t>());
}

std::optional<std::string> opt_text_of(const pqxx::field& field) {
  if (field.is_null())
    return std::nullopt;
  return std::string{field.c_str(), field.size()};
}

std::string compact_json(std::string_view json_text) {
  return nlohmann::json::parse(json_text).dump();
}

} // namespace seatledger::storage::detail
