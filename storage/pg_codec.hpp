#pragma once

// Private to storage/: the libpqxx connection with access to its libpq
// handle (for COPY), text encoders for COPY rows and array parameters, and
// the mapping of libpqxx exceptions to `caf::error`. Never include this from
// a public header.

#include <array>
#include <cstdint>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <pqxx/pqxx>

#include "domain/time.hpp"

namespace seatledger::storage::detail {

// -- connection ---------------------------------------------------------------

/// Remembers the libpq handle libpqxx opens, so COPY data can go straight to
/// `PQputCopyData` in large chunks instead of one call per row.
class handle_policy : public pqxx::connect_direct {
public:
  explicit handle_policy(const std::string& opts) : connect_direct(opts) {}

  handle do_startconnect(handle orig) override {
    handle_ = connect_direct::do_startconnect(orig);
    return handle_;
  }

  handle do_completeconnect(handle orig) override {
    handle_ = connect_direct::do_completeconnect(orig);
    return handle_;
  }

  handle do_dropconnect(handle orig) noexcept override {
    handle_ = connect_direct::do_dropconnect(orig);
    return handle_;
  }

  handle do_disconnect(handle orig) noexcept override {
    handle_ = connect_direct::do_disconnect(orig);
    return handle_;
  }

  handle raw() const noexcept {
    return handle_;
  }

private:
  handle handle_ = nullptr;
};

/// Sets the server's side of the network timeouts (conninfo.hpp) for this
/// session, each one nobody else set (server configuration, ALTER ROLE or
/// DATABASE … SET, the client's `options`): TCP keepalives after 10 s idle,
/// every 5 s, 3 probes, and tcp_user_timeout 30 s. Without them the server
/// notices a client that vanished (its node died, a network cut) only after
/// the kernel's default keepalive, two hours, and the session's transaction
/// keeps its locks that long (a lease row, the migration lock). Set after
/// connecting, not in the startup packet, which connection poolers refuse
/// (PgBouncer: unsupported startup parameter). No effect over a Unix
/// socket; a paused client is not noticed (its kernel still answers).
void set_server_timeouts(pqxx::connection_base& conn);

/// A `pqxx::connection` that exposes its libpq handle and never reconnects
/// behind our back (a silent reconnect would lose `SET ROLE` and the temp
/// staging tables).
class pg_connection : public pqxx::connection_base {
public:
  /// Connects with network timeouts on both sides (`with_network_timeouts`,
  /// `set_server_timeouts`).
  explicit pg_connection(const std::string& conninfo);
  ~pg_connection() noexcept;

  pqxx::internal::pq::PGconn* raw() const noexcept {
    return policy_.raw();
  }

  /// Names of the statements binary_query has prepared on this connection
  /// (beside pqxx's own, which use other names).
  std::set<std::string>& binary_statements() noexcept {
    return binary_statements_;
  }

private:
  // Initialised before connection_base uses it: connection_base only keeps
  // the reference until init().
  handle_policy policy_;
  std::set<std::string> binary_statements_;
};

// -- errors -------------------------------------------------------------------

/// Thrown inside a commit when a lease's epoch moved on.
struct fenced_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Thrown inside a commit when the unique key of applied upstream events
/// refused one of the batch's.
struct already_applied_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An error message on one line: runs of line breaks, tabs and spaces
/// become one space, none at either end.
std::string trimmed_message(const char* text);

/// The 16 bytes of a `uuid` in its text form (hex digits, dashes
/// anywhere), as binary COPY sends a `uuid`; throws std::invalid_argument
/// unless it holds exactly 32 hex digits. An array, not a string: 16
/// bytes are one past std::string's inline capacity, and a commit reads
/// one key per upstream event.
using uuid_octets = std::array<char, 16>;
uuid_octets uuid_bytes(std::string_view text);

/// Whether a unique key refused a row.
bool is_unique_violation(const pqxx::sql_error& e);

/// Whether the connection must be dropped after this exception.
bool connection_lost(const std::exception_ptr& ex);

/// Whether libpq still considers the connection usable.
bool connection_ok(const pg_connection& conn);

/// Maps the exception to `fenced`, `already_applied`, `storage_unavailable`
/// or `storage_failure`; `what` names the operation. `connection_gone`: the
/// connection broke whatever the exception says (storage_unavailable).
caf::error to_error(const std::exception_ptr& ex, std::string_view what,
                    bool connection_gone = false);

// -- COPY ---------------------------------------------------------------------

/// Rows in COPY text format (tab-separated, `\N` for NULL), appended to a
/// buffer that `copy_stream` hands to libpq in 64 KiB chunks. The `binary_*`
/// calls write `COPY … (FORMAT binary)` instead, for tables whose values are
/// large bytea: no hex encoding on either side (one buffer holds one format).
class copy_buffer {
public:
  copy_buffer& text(std::string_view value);
  copy_buffer& opt_text(const std::optional<std::string>& value);
  copy_buffer& null();
  copy_buffer& integer(std::int64_t value);
  copy_buffer& boolean(bool value);
  copy_buffer& boolean(std::optional<bool> value);
  /// NULL for `timestamp::min()`.
  copy_buffer& time(domain::timestamp value);
  copy_buffer& time(std::optional<domain::timestamp> value);
  copy_buffer& bytea(std::string_view value);
  copy_buffer& text_array(const std::vector<std::string>& values);
  void end_row();

  /// Binary format: the file header, once before the first row.
  copy_buffer& binary_header();
  /// Binary format: a row of `fields` values follows.
  copy_buffer& binary_row(std::int16_t fields);
  /// Binary format: a text or bytea value, its bytes as they are.
  copy_buffer& binary_bytes(std::string_view value);
  /// Binary format: a boolean value.
  copy_buffer& binary_bool(bool value);
  /// Binary format: an integer (int4) value.
  copy_buffer& binary_int4(std::int32_t value);
  /// Binary format: an integer (int8) value.
  copy_buffer& binary_int8(std::int64_t value);
  /// Binary format: a `timestamptz` (NULL for `timestamp::min()`), sent as
  /// PostgreSQL's microseconds since 2000-01-01: no text to parse.
  copy_buffer& binary_time(domain::timestamp value);
  /// Binary format: NULL.
  copy_buffer& binary_null();
  /// Binary format: the trailer, once after the last row.
  copy_buffer& binary_trailer();

  const std::string& data() const {
    return buf_;
  }
  std::size_t rows() const {
    return rows_;
  }
  bool empty() const {
    return rows_ == 0;
  }
  void clear() {
    buf_.clear();
    rows_ = 0;
    first_ = true;
  }

private:
  void sep();
  void escaped(std::string_view value);

  std::string buf_;
  std::size_t rows_ = 0;
  bool first_ = true;
};

/// One `COPY … FROM STDIN` in progress on `conn` (inside an open
/// transaction). Rows are encoded into `buf` and handed to libpq whenever a
/// chunk has accumulated, so the server parses and inserts them while the
/// next ones are encoded. `finish()` ends the COPY and throws
/// `pqxx::sql_error` (with the SQLSTATE) when the server refused it,
/// `pqxx::broken_connection` when the connection failed; a stream destroyed
/// unfinished aborts the COPY (the transaction fails, the connection stays
/// usable).
class copy_stream {
public:
  copy_stream(pg_connection& conn, const char* copy_sql, copy_buffer& buf);
  ~copy_stream();

  copy_stream(const copy_stream&) = delete;
  copy_stream& operator=(const copy_stream&) = delete;

  /// Call after each row: sends the buffer once it holds a chunk.
  void row_done() {
    if (buf_.data().size() >= chunk_size)
      send();
  }

  void finish();

private:
  static constexpr std::size_t chunk_size = 64 * 1024;

  void send();

  pg_connection& conn_;
  const char* sql_;
  copy_buffer& buf_;
  bool open_ = false;
};

/// A query answered in binary format, so `bytea` values arrive as their
/// bytes: the outbox relay reads megabytes of chunks, which text format
/// would hex-encode on the server and decode here. The statement is fixed
/// SQL (no value is ever spliced in), prepared as `name` on first use and
/// executed by name after; parameters are sent in text form. Throws like
/// `copy_stream::finish()`.
class binary_query {
public:
  binary_query(pg_connection& conn, const char* name, const char* sql,
               const std::vector<std::string>& params);
  ~binary_query();

  binary_query(const binary_query&) = delete;
  binary_query& operator=(const binary_query&) = delete;

  int rows() const;
  /// A text or bytea value as it is (empty for NULL).
  std::string_view bytes(int row, int column) const;
  /// A bigint value.
  std::int64_t int8(int row, int column) const;

private:
  pqxx::internal::pq::PGresult* res_ = nullptr;
};

// -- parameters and results ---------------------------------------------------

/// RFC 3339 (exact to the microsecond; PostgreSQL parses it as timestamptz).
std::string time_text(domain::timestamp t);

/// Array literals for `$n::text[]`, `$n::bigint[]`, ... parameters.
std::string text_array(const std::vector<std::string>& values);
std::string text_array(const std::vector<std::optional<std::string>>& values);
std::string int_array(const std::vector<std::int64_t>& values);
std::string int_array(const std::vector<std::int32_t>& values);
/// Empty optionals are NULL elements.
std::string int_array(const std::vector<std::optional<std::int64_t>>& values);
/// NULL elements for `timestamp::min()`.
std::string time_array(const std::vector<domain::timestamp>& values);
std::string bool_array(const std::vector<std::optional<bool>>& values);

/// Parses a one-dimensional text[] value.
std::vector<std::string> parse_text_array(const pqxx::field& field);

domain::timestamp micros_of(const pqxx::field& field);
std::optional<domain::timestamp> opt_micros_of(const pqxx::field& field);
std::optional<std::string> opt_text_of(const pqxx::field& field);

/// A JSON document as compact text (JSONB output has spaces after `:` and
/// `,`).
std::string compact_json(std::string_view json_text);

/// `nullptr` for an empty optional (libpqxx sends it as NULL).
inline const char* c_str_or_null(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

} // namespace seatledger::storage::detail
