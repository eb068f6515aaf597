#pragma once

// Decoding of Kafka records (CloudEvents 1.0, structured or binary binding)
// into the domain's typed inputs. Every failure is a `decode_error`; nothing
// throws and no input crashes the decoder.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "domain/commands.hpp"
#include "messages/errors.hpp"
#include "messages/types.hpp"

namespace seatledger::messages {

/// Kafka record headers in record order (a key may repeat; the last wins).
/// A value of `std::nullopt` is Kafka's null, not an empty value.
using header_list
  = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// A record as consumed: its value and, when it has any, its headers. Binary
/// mode is recognized by a `ce_specversion` header, unless a `content-type`
/// header names a CloudEvents format (`application/cloudevents…`), which
/// means structured mode (the CloudEvents Kafka binding).
struct record_view {
  std::string_view value;
  const header_list* headers = nullptr;
};

/// Limits on what one record may hold. Lengths are in bytes of UTF-8.
namespace limits {

inline constexpr std::size_t record_value = 1024 * 1024;
/// CloudEvents `id`, `source`, `type` (and a seat delta's `cause` fields).
inline constexpr std::size_t event_attribute = 256;
/// Names, reasons, domains, billing periods.
inline constexpr std::size_t text = 1024;
/// Salesforce account and subscription ids (not identifiers in the spec's
/// sense: they come from another system's alphabet).
inline constexpr std::size_t external_id = 128;
inline constexpr std::size_t feature_name = 256;
inline constexpr std::size_t snapshot_members = 200'000;
inline constexpr std::size_t features = 256;
inline constexpr std::size_t delta_changes = 10'000;
inline constexpr std::size_t charges = 1'000;

} // namespace limits

/// Reads records of the four input topics. Owns and reuses its JSON parser's
/// buffers, so one decoder per thread: not thread-safe.
class decoder {
public:
  decoder();
  ~decoder();
  decoder(decoder&&) noexcept;
  decoder& operator=(decoder&&) noexcept;
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;

  /// `seatledger.membership.v1`.
  decode_result<domain::membership_event>
  decode_membership(record_view record) noexcept;

  /// `seatledger.subscriptions.v1`.
  decode_result<domain::command_event>
  decode_command(record_view record) noexcept;

  /// `seatledger.catalog.v1`.
  decode_result<domain::catalog_event>
  decode_catalog(record_view record) noexcept;

  /// `seatledger.internal.seat-deltas.v1`. The delta's id is the one in its
  /// data; the envelope's `id`, `source` and `time` are checked but not kept.
  decode_result<domain::seat_delta>
  decode_seat_delta(record_view record) noexcept;

  /// `text` read by the rules a record's value is: UTF-8, JSON nested no
  /// deeper than the parser takes, no member twice in one object. For the
  /// HTTP API's bodies, whose own JSON library would take the last of two
  /// members and nest without bound; messages call the text `subject`.
  std::optional<decode_error> check_json(std::string_view text,
                                         std::string_view subject) noexcept;

  /// Dispatches on `topic`; the result holds the topic's alternative.
  decode_result<input_event> decode(topic_kind topic,
                                    record_view record) noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace seatledger::messages
