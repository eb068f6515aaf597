#include "paseto/signed_json.hpp"

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "paseto/paserk.hpp"
#include "paseto/paseto.hpp"

namespace seatledger::paseto {

namespace {

using json = nlohmann::json;

constexpr const char* key_id_field = "key_id";
constexpr const char* signature_field = "signature";

// nlohmann throws on invalid UTF-8 in dump() and on allocation failure;
// neither may leave this library as an exception.
template<class F>
auto no_throw(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return errc::invalid_json;
  }
}

/// Parsed, or discarded when the text is not JSON or an object in it names
/// a key twice: nlohmann keeps the last of two, so a member spliced in
/// before the signed one would verify while a reader keeping the first
/// (some streaming parsers do) read the spliced one.
json parse_without_duplicate_keys(std::string_view text) {
  std::vector<std::set<std::string>> objects;
  bool duplicate = false;
  auto doc = json::parse(
    text,
    [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start)
        objects.emplace_back();
      else if (event == json::parse_event_t::object_end)
        objects.pop_back();
      else if (event == json::parse_event_t::key && !objects.empty()
               && !objects.back().insert(parsed.get<std::string>()).second)
        duplicate = true;
      return true;
    },
    false);
  return duplicate ? json(json::value_t::discarded) : doc;
}

} // namespace

result<std::string> sign_json_document(const secret_key& key,
                                       std::string_view rest_json) {
  return no_throw([&]() -> result<std::string> {
    auto rest = parse_without_duplicate_keys(rest_json);
    if (!rest.is_object() || rest.contains(key_id_field)
        || rest.contains(signature_field))
      return errc::invalid_json;
    auto canonical = rest.dump();
    auto signature = sign_detached(key, canonical);
    if (signature.empty())
      return errc::crypto_failure;
    rest[key_id_field] = paserk_pid(key.public_part());
    rest[signature_field] = std::move(signature);
    return rest.dump();
  });
}

result<verified_document> verify_json_document(const trusted_keys& keys,
                                               std::string_view document) {
  return no_throw([&]() -> result<verified_document> {
    auto doc = parse_without_duplicate_keys(document);
    if (!doc.is_object())
      return errc::invalid_json;
    auto key_id = doc.find(key_id_field);
    auto signature = doc.find(signature_field);
    if (key_id == doc.end() || !key_id->is_string() || signature == doc.end()
        || !signature->is_string())
      return errc::not_signed;
    verified_document out;
    out.key_id = key_id->get<std::string>();
    auto sig = signature->get<std::string>();
    doc.erase(key_id_field);
    doc.erase(signature_field);
    out.rest_json = doc.dump();
    auto* key = keys.find(out.key_id);
    if (key == nullptr)
      return errc::unknown_key;
    if (!verify_detached(*key, out.rest_json, sig))
      return errc::bad_signature;
    return out;
  });
}

} // namespace seatledger::paseto
