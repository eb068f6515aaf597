#pragma once

// Encoding as structured-mode CloudEvents (JSON): the output events, the
// license claims, and every input type (for round-trip tests, the `publish`
// tool and benchmark generators).

#include "domain/commands.hpp"
#include "domain/subscription.hpp"
#include "messages/json_writer.hpp"
#include "messages/types.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace seatledger::messages {

// -- output -------------------------------------------------------------------

/// A `seatledger.events.v1` record value: `id`, `time` and `subject`
/// (the subscription id) from the event, `source` as configured.
std::string encode_output_event(const domain::output_event& event,
                                std::string_view source);

/// The HTTP "Subscription" shape, also the data of the lifecycle events.
void write_subscription(json_writer& out,
                        const domain::subscription_record& state,
                        const std::vector<std::string>& orgs);

std::string encode_subscription(const domain::subscription_record& state,
                                const std::vector<std::string>& orgs);

/// The claims a license token signs: `jti`, `subscription_id`, `iat`,
/// `nbf`, `exp` (RFC 3339), `seats`, `plan_id`, `tier`, `features`,
/// `instance_domain`, `instance_type`, `trial`.
std::string encode_license_claims(const domain::license_grant& grant);

// -- input --------------------------------------------------------------------
//
// The `type` comes from the variant alternative (the ref's `type` is not
// consulted); `source`, `id` and `time` from the event's ref. Free-form JSON
// fields (`custom_fields`, `rate_limit_overrides`) are written verbatim and
// must hold a JSON object, as the decoder produces them.

std::string encode_membership_event(const domain::membership_event& event);

std::string encode_command_event(const domain::command_event& event);

std::string encode_catalog_event(const domain::catalog_event& event);

/// Envelope `id` is the delta id, `time` the cause's time.
std::string encode_seat_delta(const domain::seat_delta& delta,
                              std::string_view source);

/// Any input; `source` is used for seat deltas only (the others carry one).
std::string encode_input_event(const input_event& event,
                               std::string_view source);

// -- record keys
// ----------------------------------------------------------------

/// `org_id`.
const std::string& record_key(const domain::membership_event& event);

/// `subscription_id`.
const std::string& record_key(const domain::command_event& event);

/// The rate plan id.
const std::string& record_key(const domain::catalog_event& event);

/// `subscription_id` (co-partitioned with the subscriptions topic).
const std::string& record_key(const domain::seat_delta& delta);

/// `subscription_id`.
const std::string& record_key(const domain::output_event& event);

const std::string& record_key(const input_event& event);

} // namespace seatledger::messages
