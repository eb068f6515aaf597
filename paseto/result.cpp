#include "paseto/result.hpp"

namespace seatledger::paseto {

std::string_view to_string(errc x) noexcept {
  switch (x) {
    case errc::invalid_base64: return "invalid_base64";
    case errc::invalid_header: return "invalid_header";
    case errc::invalid_token: return "invalid_token";
    case errc::invalid_key: return "invalid_key";
    case errc::invalid_paserk: return "invalid_paserk";
    case errc::invalid_pem: return "invalid_pem";
    case errc::invalid_json: return "invalid_json";
    case errc::invalid_time: return "invalid_time";
    case errc::bad_signature: return "bad_signature";
    case errc::unknown_key: return "unknown_key";
    case errc::io_error: return "io_error";
    case errc::invalid_argument: return "invalid_argument";
    case errc::crypto_failure: return "crypto_failure";
    case errc::file_too_large: return "file_too_large";
    case errc::not_signed: return "not_signed";
  }
  return "unknown";
}

} // namespace seatledger::paseto
