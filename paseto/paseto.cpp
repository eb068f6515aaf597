#include "paseto/paseto.hpp"

#include "paseto/detail/ed25519.hpp"

#include <cstdint>

namespace seatledger::paseto {

namespace {

constexpr std::size_t signature_size = 64;

void append_le64(std::string& out, std::uint64_t n) {
  // The spec clears the top bit so that languages without unsigned 64-bit
  // integers produce the same encoding.
  n &= ~(std::uint64_t{1} << 63);
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>(n & 0xff);
    n >>= 8;
  }
}

struct token_parts {
  std::string message;
  std::string signature;
  std::string footer;
};

result<token_parts> split_v4_public(std::string_view token) {
  if (token.substr(0, v4_public_header.size()) != v4_public_header)
    return errc::invalid_header;
  auto rest = token.substr(v4_public_header.size());
  std::string_view body = rest;
  std::string_view footer;
  auto has_footer = false;
  if (auto dot = rest.find('.'); dot != std::string_view::npos) {
    body = rest.substr(0, dot);
    footer = rest.substr(dot + 1);
    has_footer = true;
    // Signing omits an empty footer, so a trailing '.' would be a second
    // spelling of the same token.
    if (footer.empty() || footer.find('.') != std::string_view::npos)
      return errc::invalid_token;
  }
  auto decoded = base64url_decode(body);
  if (!decoded)
    return decoded.error();
  if (decoded->size() < signature_size)
    return errc::invalid_token;
  token_parts out;
  auto message_size = decoded->size() - signature_size;
  out.signature = decoded->substr(message_size);
  decoded->resize(message_size);
  out.message = std::move(*decoded);
  if (has_footer) {
    auto decoded_footer = base64url_decode(footer);
    if (!decoded_footer)
      return decoded_footer.error();
    out.footer = std::move(*decoded_footer);
  }
  return out;
}

} // namespace

std::string pae(const std::vector<std::string_view>& pieces) {
  std::string out;
  auto total = std::size_t{8};
  for (auto piece : pieces)
    total += 8 + piece.size();
  out.reserve(total);
  append_le64(out, pieces.size());
  for (auto piece : pieces) {
    append_le64(out, piece.size());
    out.append(piece);
  }
  return out;
}

std::string sign_v4_public(const secret_key& key, std::string_view payload,
                           std::string_view footer,
                           std::string_view implicit_assertion) {
  auto m2 = pae({v4_public_header, payload, footer, implicit_assertion});
  auto sig = detail::ed25519_sign(key.seed(), m2);
  if (!sig)
    return {};
  std::string body;
  body.reserve(payload.size() + sig->size());
  body.append(payload);
  body.append(reinterpret_cast<const char*>(sig->data()), sig->size());
  std::string token{v4_public_header};
  token += base64url_encode(body);
  if (!footer.empty()) {
    token += '.';
    token += base64url_encode(footer);
  }
  return token;
}

result<verified_token> verify_v4_public(const public_key& key,
                                        std::string_view token,
                                        std::string_view implicit_assertion) {
  auto parts = split_v4_public(token);
  if (!parts)
    return parts.error();
  auto m2 = pae(
    {v4_public_header, parts->message, parts->footer, implicit_assertion});
  if (!detail::ed25519_verify(
        key.bytes().data(), m2,
        reinterpret_cast<const std::uint8_t*>(parts->signature.data())))
    return errc::bad_signature;
  return verified_token{std::move(parts->message), std::move(parts->footer)};
}

result<std::string> unverified_footer(std::string_view token) {
  auto parts = split_v4_public(token);
  if (!parts)
    return parts.error();
  return std::move(parts->footer);
}

std::string sign_detached(const secret_key& key, std::string_view bytes) {
  auto sig = detail::ed25519_sign(key.seed(), bytes);
  if (!sig)
    return {};
  return base64url_encode(sig->data(), sig->size());
}

bool verify_detached(const public_key& key, std::string_view bytes,
                     std::string_view signature_b64url) {
  auto sig = base64url_decode(signature_b64url);
  if (!sig || sig->size() != signature_size)
    return false;
  return detail::ed25519_verify(
    key.bytes().data(), bytes,
    reinterpret_cast<const std::uint8_t*>(sig->data()));
}

} // namespace seatledger::paseto
