// Property: any valid input value encodes to a record that decodes to an
// equal value (arbitrary Unicode text, every identifier character, any
// four-digit-year instant with microseconds, every alternative).

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <set>
#include <string>

#include "messages/decode.hpp"
#include "messages/encode.hpp"
#include "messages/equality.hpp"
#include "messages/json_writer.hpp"

using namespace seatledger;
using namespace seatledger::messages;

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Any Unicode scalar values, weighted towards ASCII and controls.
std::string gen_text(int max_chars, bool nonempty = false) {
  auto n = *rc::gen::inRange(nonempty ? 1 : 0, max_chars + 1);
  std::string out;
  for (int i = 0; i < n; ++i) {
    auto cp = *rc::gen::weightedOneOf<std::uint32_t>(
      {{6, rc::gen::inRange<std::uint32_t>(0x20, 0x7f)},
       // Control characters but U+0000, which the decoder refuses (nothing
       // that stores text can hold it: messages_errors.u0000_*).
       {2, rc::gen::inRange<std::uint32_t>(1, 0x20)},
       {1, rc::gen::inRange<std::uint32_t>(0x80, 0xd800)},
       {1, rc::gen::inRange<std::uint32_t>(0xe000, 0x110000)}});
    append_utf8(out, cp);
  }
  return out;
}

std::string gen_id() {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                   "qrstuvwxyz0123456789._:@/-";
  auto n = *rc::gen::inRange(1, 129);
  return *rc::gen::container<std::string>(static_cast<std::size_t>(n),
                                          rc::gen::elementOf(chars));
}

domain::timestamp gen_time() {
  // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z
  return domain::timestamp::from_micros(*rc::gen::inRange<std::int64_t>(
    domain::first_writable_instant().micros(),
    domain::last_writable_instant().micros() + 1));
}

domain::event_ref gen_ref(std::string_view type) {
  return {gen_text(40, true), gen_text(40, true), std::string{type},
          gen_time()};
}

std::optional<std::string> maybe_text(int max) {
  if (*rc::gen::arbitrary<bool>())
    return gen_text(max);
  return std::nullopt;
}

std::vector<std::string> gen_features() {
  auto n = *rc::gen::inRange(0, 6);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back(gen_text(20, true));
  return out;
}

std::int64_t gen_count() {
  return *rc::gen::inRange<std::int64_t>(0, INT64_MAX);
}

domain::instance_type gen_instance_type() {
  return *rc::gen::element(domain::instance_type::primary,
                           domain::instance_type::secondary,
                           domain::instance_type::internal);
}

// A JSON object as the decoder keeps it (compact, in simdjson's style).
std::string gen_json_object() {
  json_writer w;
  w.begin_object();
  auto n = *rc::gen::inRange(0, 4);
  // Member names are unique: a name given twice is refused (I-JSON).
  std::set<std::string> names;
  for (int i = 0; i < n; ++i) {
    auto name = gen_text(10);
    if (!names.insert(name).second)
      continue;
    w.key(name);
    switch (*rc::gen::inRange(0, 4)) {
      case 0: w.string(gen_text(10)); break;
      case 1: w.integer(*rc::gen::arbitrary<std::int64_t>()); break;
      case 2: w.boolean(*rc::gen::arbitrary<bool>()); break;
      default: w.null();
    }
  }
  w.end_object();
  return w.take();
}

domain::term gen_term() {
  return {gen_time(), gen_time()};
}

template<class T>
std::optional<T> maybe(T value) {
  if (*rc::gen::arbitrary<bool>())
    return value;
  return std::nullopt;
}

} // namespace

RC_GTEST_PROP(messages_property, membership_events_round_trip, ()) {
  domain::membership_event ev;
  switch (*rc::gen::inRange(0, 6)) {
    case 0:
      ev.change = domain::member_added{
        gen_id(), gen_id(), *rc::gen::arbitrary<bool>(), maybe_text(30)};
      break;
    case 1:
      ev.change = domain::member_updated{
        gen_id(), gen_id(), *rc::gen::arbitrary<bool>(), maybe_text(30)};
      break;
    case 2: ev.change = domain::member_removed{gen_id(), gen_id()}; break;
    case 3: {
      domain::org_snapshot s{gen_id(), {}};
      auto n = *rc::gen::inRange(0, 20);
      for (int i = 0; i < n; ++i)
        s.members.push_back({gen_id(), *rc::gen::arbitrary<bool>()});
      ev.change = s;
      break;
    }
    case 4: ev.change = domain::org_linked{gen_id(), gen_id()}; break;
    default: ev.change = domain::org_unlinked{gen_id(), gen_id()};
  }
  ev.ref = gen_ref(type_of(ev.change));
  decoder dec;
  auto text = encode_membership_event(ev);
  auto back = dec.decode_membership({text});
  RC_ASSERT(back.has_value());
  RC_ASSERT(equal(back.value(), ev));
}

RC_GTEST_PROP(messages_property, commands_round_trip, ()) {
  domain::command_event ev;
  switch (*rc::gen::inRange(0, 8)) {
    case 0: {
      domain::create_subscription x;
      x.subscription_id = gen_id();
      x.display_name = gen_text(50);
      x.customer.salesforce_account_id = maybe(gen_text(18, true));
      x.customer.salesforce_subscription_id = maybe(gen_text(18, true));
      x.instance = {gen_text(30, true), gen_instance_type()};
      x.plan_id = gen_id();
      x.seats = gen_count();
      x.term = gen_term();
      x.trial = *rc::gen::arbitrary<bool>();
      ev.command = x;
      break;
    }
    case 1:
      ev.command = domain::renew_subscription{
        gen_id(), gen_term(), maybe(gen_count()), maybe(gen_id())};
      break;
    case 2:
      ev.command = domain::update_entitlements{
        gen_id(), maybe(gen_count()), maybe(gen_id()), maybe(gen_features())};
      break;
    case 3:
      ev.command = domain::convert_trial{gen_id(), gen_id(), gen_count(),
                                         gen_term()};
      break;
    case 4: ev.command = domain::expire_subscription{gen_id()}; break;
    case 5:
      ev.command = domain::archive_subscription{gen_id(), gen_text(60)};
      break;
    case 6: {
      domain::update_metadata x;
      x.subscription_id = gen_id();
      x.display_name = maybe_text(40);
      if (*rc::gen::arbitrary<bool>())
        x.customer = domain::customer_patch{maybe(gen_text(18, true)),
                                            maybe(gen_text(18, true))};
      if (*rc::gen::arbitrary<bool>())
        x.instance = domain::instance_patch{maybe(gen_text(30, true)),
                                            maybe(gen_instance_type())};
      x.rate_limit_overrides = maybe(gen_json_object());
      x.analytics_access = maybe(*rc::gen::arbitrary<bool>());
      ev.command = x;
      break;
    }
    default:
      ev.command = domain::issue_license{gen_id(), maybe(gen_features()),
                                         maybe(gen_time())};
  }
  ev.ref = gen_ref(type_of(ev.command));
  decoder dec;
  auto text = encode_command_event(ev);
  auto back = dec.decode_command({text});
  RC_ASSERT(back.has_value());
  RC_ASSERT(equal(back.value(), ev));
}

RC_GTEST_PROP(messages_property, catalog_events_round_trip, ()) {
  domain::catalog_event ev;
  if (*rc::gen::arbitrary<bool>()) {
    domain::rate_plan_upserted x;
    x.product = {gen_id(), gen_text(30)};
    x.rate_plan = {gen_id(), gen_text(30), gen_json_object()};
    auto n = *rc::gen::inRange(0, 5);
    for (int i = 0; i < n; ++i)
      x.charges.push_back(
        {gen_id(), gen_text(30), gen_text(12, true), gen_json_object()});
    ev.change = x;
  } else {
    ev.change = domain::rate_plan_removed{gen_id()};
  }
  ev.ref = gen_ref(type_of(ev.change));
  decoder dec;
  auto back = dec.decode_catalog({encode_catalog_event(ev)});
  RC_ASSERT(back.has_value());
  RC_ASSERT(equal(back.value(), ev));
}

RC_GTEST_PROP(messages_property, seat_deltas_round_trip, ()) {
  domain::seat_delta d;
  d.delta_id = gen_id();
  d.subscription_id = gen_id();
  d.org_id = gen_id();
  d.org_linked = *rc::gen::arbitrary<bool>();
  d.org_seq = *rc::gen::inRange<std::int64_t>(1, 1'000'000'000);
  auto n = *rc::gen::inRange(0, 20);
  for (int i = 0; i < n; ++i)
    d.changes.push_back({gen_id(), *rc::gen::arbitrary<bool>()});
  d.cause = gen_ref("seatledger.member.added");
  d.cause.type = gen_text(30, true);
  d.parts = *rc::gen::inRange<std::int32_t>(1, INT32_MAX);
  d.part = *rc::gen::inRange<std::int32_t>(1, d.parts + 1);
  decoder dec;
  auto back = dec.decode_seat_delta({encode_seat_delta(d, gen_text(20, true))});
  RC_ASSERT(back.has_value());
  RC_ASSERT(equal(back.value(), d));
}
