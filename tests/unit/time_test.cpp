#include <gtest/gtest.h>

#include "domain/time.hpp"

using namespace seatledger::domain;

namespace {

timestamp at(const char* text) {
  auto t = parse_rfc3339(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(timestamp{});
}

} // namespace

TEST(time, parses_and_formats_utc) {
  auto t = at("2026-01-15T00:00:00Z");
  EXPECT_EQ(t.micros(), 1768435200LL * 1'000'000);
  EXPECT_EQ(format_rfc3339(t), "2026-01-15T00:00:00Z");
}

TEST(time, applies_offsets) {
  EXPECT_EQ(at("2026-01-15T01:30:00+01:30"), at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(at("2026-01-14T19:00:00-05:00"), at("2026-01-15T00:00:00Z"));
  EXPECT_EQ(at("2026-01-15t00:00:00z"), at("2026-01-15T00:00:00Z"));
}

TEST(time, keeps_microseconds_and_trims_zeros) {
  auto t = at("2026-01-15T00:00:00.25Z");
  EXPECT_EQ(t.micros() % 1'000'000, 250'000);
  EXPECT_EQ(format_rfc3339(t), "2026-01-15T00:00:00.25Z");
  EXPECT_EQ(format_rfc3339(at("2026-01-15T00:00:00.000001Z")),
            "2026-01-15T00:00:00.000001Z");
  auto base = at("2026-01-15T08:09:05Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(base.micros() + 120'000)),
            "2026-01-15T08:09:05.12Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(base.micros() + 999'999)),
            "2026-01-15T08:09:05.999999Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(base.micros() + 10)),
            "2026-01-15T08:09:05.00001Z");
  EXPECT_EQ(format_rfc3339(at("0042-07-09T01:02:03.5Z")),
            "0042-07-09T01:02:03.5Z");
}

TEST(time, drops_fraction_digits_past_microseconds) {
  // Java's Instant and Go's RFC3339Nano write nanoseconds.
  EXPECT_EQ(at("2026-01-15T00:00:00.123456789Z"),
            at("2026-01-15T00:00:00.123456Z"));
  EXPECT_EQ(at("2026-01-15T00:00:00.9999999+01:00"),
            at("2026-01-14T23:00:00.999999Z"));
  EXPECT_EQ(format_rfc3339(at("2026-01-15T00:00:00.1000000000001Z")),
            "2026-01-15T00:00:00.1Z");
  // Up to 19 digits with an offset too: the length limit counted the
  // offset, and 15 digits before `+00:00` were refused.
  EXPECT_EQ(at("2026-01-01T00:00:00.123456789012345+00:00"),
            at("2026-01-01T00:00:00.123456Z"));
  EXPECT_EQ(at("2026-01-01T00:00:00.1234567890123456789-01:30"),
            at("2026-01-01T01:30:00.123456Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00.12345678901234567890Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00.12345678901234567890+00:00"));
}

TEST(time, rejects_malformed_input) {
  for (auto text :
       {"", "2026-01-15", "2026-01-15T00:00:00", "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-01-15T24:00:00Z", "2026-01-15T00:60:00Z",
        "2026-01-15 00:00:00Z", "2026-01-15T00:00:00.Z",
        "2026-01-15T00:00:00.123456789x", "2026-01-15T00:00:00+0100",
        "2026-01-15T00:00:00Zjunk", "20x6-01-15T00:00:00Z",
        "2026-01-15T00:00:00+24:00"})
    EXPECT_FALSE(parse_rfc3339(text)) << text;
}

TEST(time, handles_instants_before_the_epoch) {
  auto t = at("1969-12-31T23:59:59.5Z");
  EXPECT_EQ(t.micros(), -500'000);
  EXPECT_EQ(format_rfc3339(t), "1969-12-31T23:59:59.5Z");
}

TEST(time, leap_days) {
  EXPECT_TRUE(parse_rfc3339("2028-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2027-02-29T00:00:00Z"));
  EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2100-02-29T00:00:00Z"));
}

TEST(add_months, clamps_to_the_end_of_shorter_months_from_the_anchor) {
  auto anchor = at("2026-01-31T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 1)), "2026-02-28T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 2)), "2026-03-31T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 3)), "2026-04-30T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 4)), "2026-05-31T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 13)), "2027-02-28T10:20:30Z");
  EXPECT_EQ(format_rfc3339(add_months(at("2028-01-31T00:00:00Z"), 1)),
            "2028-02-29T00:00:00Z");
}

TEST(add_months, twenty_ninth_of_february_through_leap_and_common_years) {
  auto anchor = at("2028-02-29T00:00:00Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 1)), "2028-03-29T00:00:00Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 12)), "2029-02-28T00:00:00Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 13)), "2029-03-29T00:00:00Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, 48)), "2032-02-29T00:00:00Z");
}

TEST(add_months, negative_and_zero_offsets) {
  auto anchor = at("2026-03-31T00:00:00Z");
  EXPECT_EQ(add_months(anchor, 0), anchor);
  EXPECT_EQ(format_rfc3339(add_months(anchor, -1)), "2026-02-28T00:00:00Z");
  EXPECT_EQ(format_rfc3339(add_months(anchor, -15)), "2024-12-31T00:00:00Z");
}

TEST(time, year_zero_and_past_9999_are_refused) {
  // PostgreSQL has no year 0: such an instant in a record failed every
  // commit of its batch, and the replica retried it for ever.
  for (auto text : {"0000-01-01T00:00:00Z", "0000-12-31T23:59:59.999999Z",
                    "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
                    "9999-12-31T23:00:00-05:00"})
    EXPECT_FALSE(parse_rfc3339(text)) << text;
  EXPECT_EQ(parse_rfc3339("0001-01-01T00:00:00Z"), first_writable_instant());
  EXPECT_EQ(parse_rfc3339("0001-01-01T00:59:00+00:59"),
            first_writable_instant());
  EXPECT_EQ(parse_rfc3339("9999-12-31T23:59:59.999999Z"),
            last_writable_instant());
}

TEST(time, instants_outside_four_digit_years_saturate) {
  EXPECT_EQ(format_rfc3339(timestamp::min()), "0001-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(INT64_MAX)),
            "9999-12-31T23:59:59.999999Z");
  auto last = at("9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_rfc3339(last), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(last.micros() + 1)),
            "9999-12-31T23:59:59.999999Z");
  auto first = at("0001-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(timestamp::from_micros(first.micros() - 1)),
            "0001-01-01T00:00:00Z");
  // Whatever is formatted parses again.
  for (auto t : {timestamp::min(), timestamp::from_micros(INT64_MAX)})
    EXPECT_TRUE(parse_rfc3339(format_rfc3339(t))) << t.micros();
}
