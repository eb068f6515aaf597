#include "paseto/license_verifier.hpp"

#include "paseto/paserk.hpp"
#include "paseto/paseto.hpp"
#include "paseto/rfc3339.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace seatledger::paseto {

namespace {

using json = nlohmann::json;

// The footer is parsed before anything is authenticated, so whatever an
// attacker puts there must stay cheap to look at. Ours is about 60 bytes.
constexpr std::size_t max_footer_size = 1024;

license_check fail(license_reason reason) {
  license_check out;
  out.reason = reason;
  return out;
}

// Returns nullopt for a missing or malformed time claim.
std::optional<utc_time> time_claim(const json& claims, const char* name) {
  auto i = claims.find(name);
  if (i == claims.end() || !i->is_string())
    return std::nullopt;
  auto t = parse_rfc3339(i->get_ref<const std::string&>());
  if (!t)
    return std::nullopt;
  return *t;
}

license_check verify_license_impl(const trusted_keys& keys,
                                  std::string_view token,
                                  std::chrono::system_clock::time_point now,
                                  std::chrono::seconds clock_skew) {
  auto footer = unverified_footer(token);
  if (!footer)
    return fail(license_reason::bad_format);
  if (footer->empty())
    return fail(license_reason::unknown_key);
  if (footer->size() > max_footer_size)
    return fail(license_reason::bad_format);
  auto footer_json = json::parse(*footer, nullptr, false);
  if (!footer_json.is_object())
    return fail(license_reason::bad_format);
  auto kid = footer_json.find("kid");
  if (kid == footer_json.end())
    return fail(license_reason::unknown_key);
  if (!kid->is_string())
    return fail(license_reason::bad_format);
  const auto& key_id = kid->get_ref<const std::string&>();
  auto* key = keys.find(key_id);
  if (key == nullptr)
    return fail(license_reason::unknown_key);
  auto verified = verify_v4_public(*key, token);
  if (!verified)
    return fail(verified.error() == errc::bad_signature
                  ? license_reason::bad_signature
                  : license_reason::bad_format);
  // Authenticated from here on.
  auto claims = json::parse(verified->payload, nullptr, false);
  if (!claims.is_object())
    return fail(license_reason::bad_format);
  auto out = fail(license_reason::bad_format);
  out.claims_json = std::move(verified->payload);
  out.key_id = key_id;
  auto exp = time_claim(claims, "exp");
  auto nbf = time_claim(claims, "nbf");
  if (!exp || !nbf)
    return out;
  // Compare in utc_time's microseconds: converting a far-future claim to
  // the system clock's nanoseconds would overflow.
  auto t = std::chrono::floor<std::chrono::microseconds>(now);
  // A negative skew would make licenses expire early; treat it as none.
  clock_skew = std::max(clock_skew, std::chrono::seconds{0});
  if (t >= *exp + clock_skew) {
    out.reason = license_reason::expired;
    return out;
  }
  if (t < *nbf - clock_skew) {
    out.reason = license_reason::not_yet_valid;
    return out;
  }
  out.valid = true;
  out.reason.reset();
  return out;
}

} // namespace

std::string_view to_string(license_reason x) noexcept {
  switch (x) {
    case license_reason::bad_format: return "bad_format";
    case license_reason::unknown_key: return "unknown_key";
    case license_reason::bad_signature: return "bad_signature";
    case license_reason::expired: return "expired";
    case license_reason::not_yet_valid: return "not_yet_valid";
  }
  return "unknown";
}

license_check verify_license(const trusted_keys& keys, std::string_view token,
                             std::chrono::system_clock::time_point now,
                             std::chrono::seconds clock_skew) {
  try {
    return verify_license_impl(keys, token, now, clock_skew);
  } catch (...) {
    // Only allocation failures can get here; a license that cannot be
    // checked is not valid.
    return fail(license_reason::bad_format);
  }
}

result<std::string> sign_license(const secret_key& key,
                                 std::string_view claims_json) {
  try {
    auto claims = json::parse(claims_json, nullptr, false);
    if (!claims.is_object())
      return errc::invalid_json;
    if (!time_claim(claims, "exp") || !time_claim(claims, "nbf"))
      return errc::invalid_time;
    std::string footer = R"({"kid":")";
    footer += paserk_pid(key.public_part());
    footer += R"("})";
    auto token = sign_v4_public(key, claims_json, footer, {});
    if (token.empty())
      return errc::crypto_failure;
    return token;
  } catch (...) {
    return errc::crypto_failure;
  }
}

} // namespace seatledger::paseto
