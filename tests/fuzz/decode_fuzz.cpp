// libFuzzer target: no input crashes the decoder, every error is well formed,
// and whatever decodes survives encode -> decode unchanged.
//
// Input layout:
//   byte 0: bits 0-1 pick the topic, bit 2 says "with headers";
//   with headers: `key=value` lines up to the first empty line ("\n\n"),
//     a line without `=` being a header with Kafka's null value, then the
//     record value (binary mode when a `ce_specversion` is among them);
//   otherwise: the rest is the record value.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/equality.hpp"

using namespace seatledger;
using namespace seatledger::messages;

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "decode_fuzz: %s\n%.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void parse_headers(std::string_view block, header_list& out) {
  constexpr std::size_t max_headers = 16;
  while (!block.empty() && out.size() < max_headers) {
    auto eol = block.find('\n');
    auto line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{}
                                          : block.substr(eol + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      out.emplace_back(std::string{line}, std::nullopt);
    else
      out.emplace_back(std::string{line.substr(0, eq)},
                       std::string{line.substr(eq + 1)});
  }
}

void check_error(const decode_error& err) {
  auto code = static_cast<int>(err.code);
  if (code < 1 || code > 10)
    fail("error code out of range", err.message);
  if (err.message.empty())
    fail("empty error message", to_string(err.code));
  if (!err.field.empty() && err.message.compare(0, err.field.size(), err.field))
    fail("error message does not start with its field", err.message);
}

// The value as the service would re-publish it, decoded again by a fresh
// decoder: must give back an equal value and the same bytes once more.
template<class Event, class Decode>
void check_round_trip(const Event& event, Decode&& decode) {
  auto encoded = encode_input_event(input_event{event}, "seatledger");
  decoder fresh;
  auto again = decode(fresh, record_view{encoded, nullptr});
  if (!again)
    fail("re-encoded record does not decode",
         again.error().message + "\n" + encoded);
  if (!equal(input_event{event}, input_event{again.value()}))
    fail("round trip changed the value", encoded);
  auto encoded_again = encode_input_event(input_event{again.value()},
                                          "seatledger");
  if (encoded_again != encoded)
    fail("encoding is not stable", encoded + "\n" + encoded_again);
}

template<class Result, class Decode>
void check(const Result& result, Decode&& decode) {
  if (result)
    check_round_trip(result.value(), decode);
  else
    check_error(result.error());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0)
    return 0;
  // Reused across inputs, as in the service: state must not leak.
  static decoder dec;
  auto topic = static_cast<topic_kind>(data[0] & 3);
  bool with_headers = (data[0] & 4) != 0;
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  header_list headers;
  std::string_view value = rest;
  if (with_headers) {
    auto sep = rest.find("\n\n");
    parse_headers(rest.substr(0, sep), headers);
    value = sep == std::string_view::npos ? std::string_view{}
                                          : rest.substr(sep + 2);
  }
  record_view record{value, with_headers ? &headers : nullptr};

  auto any = dec.decode(topic, record);
  check(any, [topic](decoder& d, record_view r) { return d.decode(topic, r); });

  auto membership = dec.decode_membership(record);
  check(membership,
        [](decoder& d, record_view r) { return d.decode_membership(r); });
  auto command = dec.decode_command(record);
  check(command, [](decoder& d, record_view r) { return d.decode_command(r); });
  auto catalog = dec.decode_catalog(record);
  check(catalog, [](decoder& d, record_view r) { return d.decode_catalog(r); });
  auto delta = dec.decode_seat_delta(record);
  check(delta,
        [](decoder& d, record_view r) { return d.decode_seat_delta(r); });

  // Dispatch and the typed decoder of the same topic agree.
  bool typed_ok = topic == topic_kind::membership      ? bool(membership)
                  : topic == topic_kind::subscriptions ? bool(command)
                  : topic == topic_kind::catalog       ? bool(catalog)
                                                       : bool(delta);
  if (bool(any) != typed_ok)
    fail("dispatch and typed decoder disagree", value);
  return 0;
}
