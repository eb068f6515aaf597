#include "paseto/signed_json.hpp"

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

} // namespace

result<std::string> sign_json_document(const secret_key& key,
                                       std::string_view rest_json) {
  return no_throw([&]() -> result<std::string> {
    auto rest = json::parse(rest_json, nullptr, false);
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
    auto doc = json::parse(document, nullptr, false);
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
