// PASETO v4.public, PASERK, base64url, PAE, BLAKE2b, PEM and signed JSON
// documents. The official vectors live in tests/data/paseto (ISC license,
// Paragon Initiative Enterprises).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "domain/identifiers.hpp"
#include "paseto/base64url.hpp"
#include "paseto/blake2b.hpp"
#include "paseto/keys.hpp"
#include "paseto/paserk.hpp"
#include "paseto/paseto.hpp"
#include "paseto/signed_json.hpp"
#include "paseto/trusted_keys.hpp"

using namespace seatledger::paseto;
using json = nlohmann::json;

namespace {

std::string from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    auto value = seatledger::domain::hex_digit_value(c);
    if (value < 0) {
      ADD_FAILURE() << "bad hex digit " << c;
      return 0;
    }
    return value;
  };
  EXPECT_EQ(hex.size() % 2, 0u);
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

json load_vectors(const std::string& name) {
  std::ifstream in{std::string{SEATLEDGER_TEST_DATA_DIR} + "/paseto/" + name};
  EXPECT_TRUE(in.good()) << "cannot open " << name;
  auto doc = json::parse(in, nullptr, false);
  EXPECT_TRUE(doc.is_object()) << name << " is not JSON";
  EXPECT_TRUE(doc.contains("tests"));
  return doc;
}

std::string str(const json& x) {
  return x.is_string() ? x.get<std::string>() : std::string{};
}

secret_key make_key() {
  auto key = secret_key::generate();
  EXPECT_TRUE(key.has_value());
  return *key;
}

// A scratch folder, removed again at the end of the test.
class temp_dir {
public:
  temp_dir() {
    std::string tmpl
      = (std::filesystem::temp_directory_path() / "paseto_test_XXXXXX")
          .string();
    auto* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  std::string file(const std::string& name) const {
    return (path_ / name).string();
  }

private:
  std::filesystem::path path_;
};

} // namespace

// -- base64url ----------------------------------------------------------------

TEST(paseto_base64url, rfc4648_vectors_without_padding) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  for (auto text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto decoded = base64url_decode(base64url_encode(text));
    ASSERT_TRUE(decoded.has_value()) << text;
    EXPECT_EQ(*decoded, text);
  }
}

TEST(paseto_base64url, uses_the_url_safe_alphabet) {
  EXPECT_EQ(base64url_encode(from_hex("fbff")), "-_8");
  EXPECT_EQ(base64url_encode(from_hex("fbefbe")), "----");
  EXPECT_EQ(base64url_encode(from_hex("ffffff")), "____");
  auto decoded = base64url_decode("-_8");
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(to_hex(*decoded), "fbff");
}

TEST(paseto_base64url, round_trips_every_byte_value_and_length) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); ++n) {
    auto input = all.substr(all.size() - n);
    auto encoded = base64url_encode(input);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << n;
    EXPECT_EQ(*decoded, input);
  }
}

TEST(paseto_base64url, rejects_padding_bad_characters_and_lengths) {
  EXPECT_EQ(base64url_decode("Zg==").error(), errc::invalid_base64);
  EXPECT_EQ(base64url_decode("Zm8=").error(), errc::invalid_base64);
  EXPECT_FALSE(base64url_decode("Zm9v+g"));
  EXPECT_FALSE(base64url_decode("Zm9v/g"));
  EXPECT_FALSE(base64url_decode("Zm9 v"));
  EXPECT_FALSE(base64url_decode("Zm9v\n"));
  EXPECT_FALSE(base64url_decode(std::string{"Zm\0v", 4}));
  EXPECT_FALSE(base64url_decode("Z"));
  EXPECT_FALSE(base64url_decode("Zm9vY"));
  EXPECT_FALSE(base64url_decode("Zm9v\xc3\xa9"));
}

TEST(paseto_base64url, rejects_non_canonical_trailing_bits) {
  // "Zg" is the only spelling of "f"; "Zh".."Zv" decode to "f" in lax
  // decoders but leave unused bits set.
  EXPECT_TRUE(base64url_decode("Zg"));
  EXPECT_FALSE(base64url_decode("Zh"));
  EXPECT_FALSE(base64url_decode("Zv"));
  EXPECT_TRUE(base64url_decode("Zm8"));
  EXPECT_FALSE(base64url_decode("Zm9"));
  EXPECT_FALSE(base64url_decode("Zm-"));
}

// -- PAE ----------------------------------------------------------------------

TEST(paseto_pae, matches_the_spec_examples) {
  EXPECT_EQ(to_hex(pae({})), "0000000000000000");
  EXPECT_EQ(to_hex(pae({""})), "01000000000000000000000000000000");
  EXPECT_EQ(to_hex(pae({"test"})), "0100000000000000040000000000000074657374");
  EXPECT_EQ(to_hex(pae({"", ""})),
            "020000000000000000000000000000000000000000000000");
}

TEST(paseto_pae, distinguishes_piece_boundaries) {
  EXPECT_NE(pae({"ab", "c"}), pae({"a", "bc"}));
  EXPECT_NE(pae({"abc"}), pae({"abc", ""}));
}

// -- BLAKE2b ------------------------------------------------------------------

TEST(paseto_blake2b, rfc7693_abc_vector) {
  auto digest = blake2b("abc", 64);
  ASSERT_TRUE(digest.has_value());
  EXPECT_EQ(to_hex(*digest),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
            "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
}

TEST(paseto_blake2b, known_answers_for_other_lengths) {
  // Reference values from Python's hashlib.blake2b(data, digest_size=n).
  EXPECT_EQ(to_hex(*blake2b("", 64)),
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
            "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce");
  EXPECT_EQ(to_hex(*blake2b("abc", 32)),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  EXPECT_EQ(to_hex(*blake2b("", 1)), "2e");
  EXPECT_EQ(
    to_hex(*blake2b("abc", 33)),
    "f7bb660ec10c1b537a53ff432791f8a34c09e9ecfca84288bba1ee39afec290d63");
}

TEST(paseto_blake2b, shorter_output_is_not_a_truncation) {
  auto full = blake2b("abc", 64);
  auto short_digest = blake2b("abc", 33);
  ASSERT_TRUE(full && short_digest);
  EXPECT_NE(full->substr(0, 33), *short_digest);
}

TEST(paseto_blake2b, block_boundaries) {
  struct kat {
    std::size_t size;
    const char* digest33;
    const char* digest20;
  };
  // data[i] = i % 251; values from Python's hashlib.
  const kat kats[] = {
    {127, "6027a7c69930e882679428d214fecafb33119fc6c47536eaed05fee272432de36e",
     "535975c8d8c5dd9ed14a9204757b06783dd7b1fb"},
    {128, "87fb2f807b2fa36f7bebb7349e07ff7c2e2837f029edb93216e3b61470922e7b03",
     "e6992372ab022447b34f6d6032fbab707a11adef"},
    {129, "3586bda6d7d2c9420f3c618bb67d33e8d352923d219c9cf020ec9e70e51cb58afc",
     "a7bf25f1599102ab631e3052e8303a2c097d1a7e"},
    {255, "4b3c1c2ca12e1a5d2e084fd250f8b9ac5e823fb0a4cabae16712c45aef92075276",
     "788371d770b5f64dbb065859da7e3352f6d20ea3"},
    {256, "bec035a37b3b2926e33083220399185e37fab5901e089310a10a0866afd409f349",
     "cd885d4187d2a1bee1e536edd1a23a87f993980c"},
    {257, "a59937222c3118f982d75ea4ac17914bc5236ee83f7ed04ff2b4c8386918fda507",
     "b194724f980678f0b3e381e0bb10dfedb4da9e81"},
    {1000, "bb97bd77631e1414047fd8c99fd938498410cef63cfa1890351c35a67c5a48403b",
     "fc9a2426db78846a07219bc181a52bae9a62eacc"},
  };
  for (const auto& k : kats) {
    std::string data;
    for (std::size_t i = 0; i < k.size; ++i)
      data += static_cast<char>(i % 251);
    EXPECT_EQ(to_hex(*blake2b(data, 33)), k.digest33) << k.size;
    EXPECT_EQ(to_hex(*blake2b(data, 20)), k.digest20) << k.size;
    // Incremental hashing in odd chunk sizes gives the same digest.
    for (std::size_t chunk : {1u, 7u, 128u, 129u}) {
      auto state = blake2b_state::make(33);
      ASSERT_TRUE(state.has_value());
      for (std::size_t pos = 0; pos < data.size(); pos += chunk)
        state->update(std::string_view{data}.substr(pos, chunk));
      EXPECT_EQ(to_hex(state->finish()), k.digest33)
        << k.size << " in chunks of " << chunk;
    }
  }
}

TEST(paseto_blake2b, rejects_invalid_output_sizes) {
  EXPECT_EQ(blake2b("abc", 0).error(), errc::invalid_argument);
  EXPECT_EQ(blake2b("abc", 65).error(), errc::invalid_argument);
  EXPECT_TRUE(blake2b("abc", 1));
  EXPECT_TRUE(blake2b("abc", 64));
}

// -- PASETO v4 vectors --------------------------------------------------------

TEST(paseto_v4_vectors, every_sign_case_signs_and_verifies) {
  auto doc = load_vectors("v4.json");
  auto count = 0;
  for (const auto& t : doc["tests"]) {
    auto name = str(t["name"]);
    if (name.rfind("4-S-", 0) != 0)
      continue;
    ++count;
    SCOPED_TRACE(name);
    ASSERT_FALSE(t["expect-fail"].get<bool>());
    auto sk = secret_key::from_bytes(from_hex(str(t["secret-key"])));
    ASSERT_TRUE(sk.has_value());
    auto from_seed = secret_key::from_seed(from_hex(str(t["secret-key-seed"])));
    ASSERT_TRUE(from_seed.has_value());
    EXPECT_EQ(from_seed->bytes(), sk->bytes());
    auto pk = public_key::from_bytes(from_hex(str(t["public-key"])));
    ASSERT_TRUE(pk.has_value());
    EXPECT_EQ(sk->public_part(), *pk);
    auto payload = str(t["payload"]);
    auto footer = str(t["footer"]);
    auto implicit = str(t["implicit-assertion"]);
    auto token = str(t["token"]);
    EXPECT_EQ(sign_v4_public(*sk, payload, footer, implicit), token);
    auto verified = verify_v4_public(*pk, token, implicit);
    ASSERT_TRUE(verified.has_value()) << to_string(verified.error());
    EXPECT_EQ(verified->payload, payload);
    EXPECT_EQ(verified->footer, footer);
    // The implicit assertion is bound to the signature.
    EXPECT_EQ(verify_v4_public(*pk, token, implicit + "x").error(),
              errc::bad_signature);
    // The PEM forms in the vectors name the same keys.
    auto sk_pem = secret_key_from_pem(str(t["secret-key-pem"]));
    ASSERT_TRUE(sk_pem.has_value());
    EXPECT_EQ(sk_pem->bytes(), sk->bytes());
    auto pk_pem = public_key_from_pem(str(t["public-key-pem"]));
    ASSERT_TRUE(pk_pem.has_value());
    EXPECT_EQ(*pk_pem, *pk);
    EXPECT_EQ(to_pem(*sk), str(t["secret-key-pem"]) + "\n");
    EXPECT_EQ(to_pem(*pk), str(t["public-key-pem"]) + "\n");
  }
  EXPECT_EQ(count, 3);
}

TEST(paseto_v4_vectors, every_failure_case_fails_v4_public_verification) {
  auto doc = load_vectors("v4.json");
  // The v4.public key of the S cases: 4-F-2 is a v4.public token that must
  // not verify with it either.
  auto pk = public_key::from_bytes(from_hex(
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2"));
  ASSERT_TRUE(pk.has_value());
  auto count = 0;
  for (const auto& t : doc["tests"]) {
    auto name = str(t["name"]);
    if (name.rfind("4-F-", 0) != 0)
      continue;
    ++count;
    SCOPED_TRACE(name);
    EXPECT_TRUE(t["expect-fail"].get<bool>());
    auto key = pk;
    if (t.contains("public-key"))
      key = public_key::from_bytes(from_hex(str(t["public-key"])));
    ASSERT_TRUE(key.has_value());
    auto verified = verify_v4_public(*key, str(t["token"]),
                                     str(t["implicit-assertion"]));
    EXPECT_FALSE(verified.has_value());
  }
  EXPECT_EQ(count, 5);
}

// -- PASERK vectors -----------------------------------------------------------

TEST(paseto_paserk_vectors, k4_pid) {
  auto doc = load_vectors("k4.pid.json");
  auto count = 0;
  for (const auto& t : doc["tests"]) {
    ++count;
    SCOPED_TRACE(str(t["name"]));
    auto key = public_key::from_bytes(from_hex(str(t["key"])));
    if (t["expect-fail"].get<bool>()) {
      EXPECT_FALSE(key.has_value());
      continue;
    }
    ASSERT_TRUE(key.has_value());
    auto pid = paserk_pid(*key);
    EXPECT_EQ(pid, str(t["paserk"]));
    EXPECT_EQ(pid.size(), 51u);
    EXPECT_TRUE(is_paserk_pid(pid));
  }
  EXPECT_EQ(count, 5);
}

TEST(paseto_paserk_vectors, k4_public_both_directions) {
  auto doc = load_vectors("k4.public.json");
  auto count = 0;
  for (const auto& t : doc["tests"]) {
    ++count;
    SCOPED_TRACE(str(t["name"]));
    auto raw = from_hex(str(t["key"]));
    auto key = public_key::from_bytes(raw);
    if (t["expect-fail"].get<bool>()) {
      EXPECT_FALSE(key.has_value());
      // Nor may the wrong-length key sneak in through a PASERK string.
      EXPECT_FALSE(parse_paserk_public("k4.public." + base64url_encode(raw)));
      continue;
    }
    ASSERT_TRUE(key.has_value());
    auto paserk = str(t["paserk"]);
    EXPECT_EQ(paserk_public(*key), paserk);
    auto parsed = parse_paserk_public(paserk);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, *key);
  }
  EXPECT_EQ(count, 4);
}

TEST(paseto_paserk_vectors, k4_secret_both_directions) {
  auto doc = load_vectors("k4.secret.json");
  auto count = 0;
  for (const auto& t : doc["tests"]) {
    ++count;
    SCOPED_TRACE(str(t["name"]));
    auto raw = from_hex(str(t["key"]));
    auto key = secret_key::from_bytes(raw);
    if (t["expect-fail"].get<bool>()) {
      EXPECT_FALSE(key.has_value());
      EXPECT_FALSE(parse_paserk_secret("k4.secret." + base64url_encode(raw)));
      continue;
    }
    ASSERT_TRUE(key.has_value());
    auto paserk = str(t["paserk"]);
    EXPECT_EQ(paserk_secret(*key), paserk);
    auto parsed = parse_paserk_secret(paserk);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->bytes(), key->bytes());
    auto from_seed = secret_key::from_seed(from_hex(str(t["secret-key-seed"])));
    ASSERT_TRUE(from_seed.has_value());
    EXPECT_EQ(from_seed->bytes(), key->bytes());
    EXPECT_EQ(to_hex(std::string_view{reinterpret_cast<const char*>(
                                        key->public_part().bytes().data()),
                                      public_key::size}),
              str(t["public-key"]));
  }
  EXPECT_EQ(count, 5);
}

TEST(paseto_paserk, rejects_wrong_version_type_and_length) {
  auto key = make_key();
  auto pub = paserk_public(key.public_part());
  auto sec = paserk_secret(key);
  ASSERT_TRUE(parse_paserk_public(pub));
  ASSERT_TRUE(parse_paserk_secret(sec));
  auto body_pub = pub.substr(10);
  auto body_sec = sec.substr(10);
  EXPECT_EQ(parse_paserk_public("k3.public." + body_pub).error(),
            errc::invalid_paserk);
  EXPECT_FALSE(parse_paserk_public("k2.public." + body_pub));
  EXPECT_FALSE(parse_paserk_public("k4.secret." + body_pub));
  EXPECT_FALSE(parse_paserk_public("k4.local." + body_pub));
  EXPECT_FALSE(parse_paserk_public("K4.public." + body_pub));
  EXPECT_FALSE(parse_paserk_public(body_pub));
  EXPECT_FALSE(parse_paserk_public(pub + "AA"));
  EXPECT_FALSE(parse_paserk_public(pub.substr(0, pub.size() - 2)));
  EXPECT_FALSE(parse_paserk_public(pub + "="));
  EXPECT_FALSE(parse_paserk_secret("k3.secret." + body_sec));
  EXPECT_FALSE(parse_paserk_secret("k4.public." + body_sec));
  EXPECT_FALSE(parse_paserk_secret(pub));
  EXPECT_FALSE(parse_paserk_secret(sec.substr(0, sec.size() - 3)));
  EXPECT_FALSE(parse_paserk_public(sec));
  EXPECT_FALSE(is_paserk_pid(pub));
  EXPECT_FALSE(is_paserk_pid("k4.pid.AAAA"));
  EXPECT_FALSE(
    is_paserk_pid("k3.pid." + paserk_pid(key.public_part()).substr(7)));
}

TEST(paseto_paserk, k4_secret_with_a_foreign_public_half_is_rejected) {
  auto a = make_key();
  auto b = make_key();
  std::string mixed(reinterpret_cast<const char*>(a.bytes().data()), 32);
  mixed.append(reinterpret_cast<const char*>(b.bytes().data()) + 32, 32);
  EXPECT_EQ(secret_key::from_bytes(mixed).error(), errc::invalid_key);
  EXPECT_EQ(parse_paserk_secret("k4.secret." + base64url_encode(mixed)).error(),
            errc::invalid_key);
}

// -- tokens -------------------------------------------------------------------

TEST(paseto_v4_public, sign_verify_round_trip) {
  auto key = make_key();
  auto token = sign_v4_public(key, R"({"a":1})", R"({"kid":"x"})", "ctx");
  ASSERT_EQ(token.rfind("v4.public.", 0), 0u);
  auto verified = verify_v4_public(key.public_part(), token, "ctx");
  ASSERT_TRUE(verified.has_value());
  EXPECT_EQ(verified->payload, R"({"a":1})");
  EXPECT_EQ(verified->footer, R"({"kid":"x"})");
  EXPECT_EQ(verify_v4_public(key.public_part(), token).error(),
            errc::bad_signature);
  auto footer = unverified_footer(token);
  ASSERT_TRUE(footer.has_value());
  EXPECT_EQ(*footer, R"({"kid":"x"})");
  // Without a footer there is no trailing '.'.
  auto bare = sign_v4_public(key, "payload");
  EXPECT_EQ(bare.find('.', 10), std::string::npos);
  auto bare_verified = verify_v4_public(key.public_part(), bare);
  ASSERT_TRUE(bare_verified.has_value());
  EXPECT_EQ(bare_verified->payload, "payload");
  EXPECT_EQ(bare_verified->footer, "");
  // An empty payload is allowed.
  auto empty = sign_v4_public(key, "");
  EXPECT_TRUE(verify_v4_public(key.public_part(), empty));
}

TEST(paseto_v4_public, wrong_key_fails) {
  auto key = make_key();
  auto other = make_key();
  auto token = sign_v4_public(key, "hello");
  EXPECT_EQ(verify_v4_public(other.public_part(), token).error(),
            errc::bad_signature);
}

TEST(paseto_v4_public, strict_header_and_structure) {
  auto key = make_key();
  auto pk = key.public_part();
  auto token = sign_v4_public(key, "hello", "foot");
  auto rest = token.substr(10);
  for (auto header : {"v4.local.", "v3.public.", "v2.public.", "v1.public.",
                      "V4.public.", "v4.Public.", "v4.public", "v4public.",
                      "v4.secret.", ".public.", "v4..", ""}) {
    EXPECT_EQ(verify_v4_public(pk, header + rest).error(), errc::invalid_header)
      << header;
  }
  EXPECT_EQ(verify_v4_public(pk, " " + token).error(), errc::invalid_header);
  EXPECT_FALSE(verify_v4_public(pk, token + "."));
  EXPECT_FALSE(verify_v4_public(pk, token + ".Zm9v"));
  EXPECT_FALSE(verify_v4_public(pk, token + " "));
  // A trailing '.' with an empty footer is a second spelling: rejected.
  auto bare = sign_v4_public(key, "hello");
  ASSERT_TRUE(verify_v4_public(pk, bare));
  EXPECT_EQ(verify_v4_public(pk, bare + ".").error(), errc::invalid_token);
  // Too short to hold a signature.
  EXPECT_EQ(verify_v4_public(pk, "v4.public.").error(), errc::invalid_token);
  EXPECT_EQ(
    verify_v4_public(pk, "v4.public." + base64url_encode(std::string(63, 'x')))
      .error(),
    errc::invalid_token);
  // A padded body.
  EXPECT_FALSE(verify_v4_public(pk, bare + "=="));
}

TEST(paseto_v4_public, every_changed_character_fails) {
  static constexpr std::string_view alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto key = make_key();
  auto pk = key.public_part();
  for (auto footer : {"", R"({"kid":"k4.pid.test"})"}) {
    auto token = sign_v4_public(key, R"({"seats":10})", footer);
    ASSERT_TRUE(verify_v4_public(pk, token));
    for (std::size_t i = 0; i < token.size(); ++i) {
      // Every other base64url character (which also covers the unused low
      // bits of a segment's last character) and some outside the alphabet.
      std::string replacements{alphabet};
      replacements += ".=+/* \n";
      replacements += '\0';
      replacements += '\xff';
      for (char replacement : replacements) {
        if (replacement == token[i])
          continue;
        auto changed = token;
        changed[i] = replacement;
        EXPECT_FALSE(verify_v4_public(pk, changed))
          << "position " << i << " -> " << replacement;
      }
    }
    // Truncation and extension fail too.
    for (std::size_t n = 0; n < token.size(); ++n)
      EXPECT_FALSE(verify_v4_public(pk, token.substr(0, n))) << n;
    for (char extra : alphabet)
      EXPECT_FALSE(verify_v4_public(pk, token + extra)) << extra;
  }
}

// -- detached signatures and signed JSON
// ---------------------------------------

TEST(paseto_detached, sign_and_verify) {
  auto key = make_key();
  auto sig = sign_detached(key, "some bytes");
  EXPECT_EQ(sig.size(), 86u);
  EXPECT_TRUE(verify_detached(key.public_part(), "some bytes", sig));
  EXPECT_FALSE(verify_detached(key.public_part(), "some bytes!", sig));
  EXPECT_FALSE(verify_detached(make_key().public_part(), "some bytes", sig));
  EXPECT_FALSE(verify_detached(key.public_part(), "some bytes", sig + "A"));
  EXPECT_FALSE(verify_detached(key.public_part(), "some bytes", sig + "=="));
  EXPECT_FALSE(verify_detached(key.public_part(), "some bytes", ""));
  auto flipped = sig;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_detached(key.public_part(), "some bytes", flipped));
}

TEST(paseto_signed_json, round_trip) {
  auto key = make_key();
  trusted_keys keys;
  auto pid = keys.add(key.public_part());
  // Not canonical on purpose: whitespace and unsorted keys.
  auto doc = sign_json_document(
    key, R"({ "months": [ {"peak": 15, "month": 1} ], "issued_at": "x" })");
  ASSERT_TRUE(doc.has_value()) << to_string(doc.error());
  auto parsed = json::parse(*doc);
  EXPECT_EQ(parsed["key_id"], pid);
  EXPECT_EQ(parsed["months"][0]["peak"], 15);
  auto verified = verify_json_document(keys, *doc);
  ASSERT_TRUE(verified.has_value()) << to_string(verified.error());
  EXPECT_EQ(verified->key_id, pid);
  EXPECT_EQ(verified->rest_json,
            R"({"issued_at":"x","months":[{"month":1,"peak":15}]})");
  // The signature covers the exact canonical bytes of the rest.
  EXPECT_TRUE(verify_detached(key.public_part(), verified->rest_json,
                              parsed["signature"].get<std::string>()));
  // Re-formatting the document does not matter: it is parsed again.
  EXPECT_TRUE(verify_json_document(keys, parsed.dump(2)));
}

TEST(paseto_signed_json, tampering_is_detected) {
  auto key = make_key();
  trusted_keys keys;
  keys.add(key.public_part());
  auto doc = sign_json_document(key, R"({"peak":15,"month":1})");
  ASSERT_TRUE(doc.has_value());
  auto original = json::parse(*doc);
  {
    auto changed = original;
    changed["peak"] = 14;
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::bad_signature);
  }
  {
    auto changed = original;
    changed["extra"] = true;
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::bad_signature);
  }
  {
    auto changed = original;
    changed.erase("month");
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::bad_signature);
  }
  {
    auto changed = original;
    auto sig = changed["signature"].get<std::string>();
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    changed["signature"] = sig;
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::bad_signature);
  }
  {
    auto changed = original;
    // An unsigned document was called invalid_json, which sent users
    // looking for a syntax error.
    changed.erase("signature");
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::not_signed);
  }
  {
    auto changed = original;
    changed["key_id"] = 7;
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::not_signed);
  }
  {
    auto changed = original;
    changed["key_id"] = paserk_pid(make_key().public_part());
    EXPECT_EQ(verify_json_document(keys, changed.dump()).error(),
              errc::unknown_key);
  }
  EXPECT_EQ(verify_json_document(trusted_keys{}, *doc).error(),
            errc::unknown_key);
  EXPECT_EQ(verify_json_document(keys, "[1,2]").error(), errc::invalid_json);
  EXPECT_EQ(verify_json_document(keys, "{").error(), errc::invalid_json);
  EXPECT_EQ(verify_json_document(keys, "").error(), errc::invalid_json);
  // A member spliced in before the signed one of the same name: nlohmann
  // keeps the last, the one signed, so it verified, while a reader keeping
  // the first read the spliced one. At any depth.
  auto spliced = [](std::string text, const std::string& after,
                    const std::string& member) {
    auto at = text.find(after);
    EXPECT_NE(at, std::string::npos) << text;
    return at == std::string::npos ? text
                                   : text.insert(at + after.size(), member);
  };
  EXPECT_EQ(
    verify_json_document(keys, spliced(*doc, "{", R"("peak":99,)")).error(),
    errc::invalid_json);
  auto nested = sign_json_document(key,
                                   R"({"months":[{"month":1,"peak":15}]})");
  ASSERT_TRUE(nested.has_value());
  ASSERT_TRUE(verify_json_document(keys, *nested));
  EXPECT_EQ(
    verify_json_document(keys, spliced(*nested, "[{", R"("peak":99,)")).error(),
    errc::invalid_json);
  // Every single changed character of the compact document text fails:
  // there is no insignificant byte in it.
  for (std::size_t i = 0; i < doc->size(); ++i) {
    auto changed = *doc;
    changed[i] = static_cast<char>(changed[i] ^ 1);
    auto verified = verify_json_document(keys, changed);
    EXPECT_FALSE(verified.has_value()) << "position " << i << ": " << changed;
  }
}

TEST(paseto_signed_json, rejects_bad_input_to_sign) {
  auto key = make_key();
  EXPECT_EQ(sign_json_document(key, "[1]").error(), errc::invalid_json);
  EXPECT_EQ(sign_json_document(key, "{").error(), errc::invalid_json);
  EXPECT_EQ(sign_json_document(key, R"({"signature":"x"})").error(),
            errc::invalid_json);
  EXPECT_EQ(sign_json_document(key, R"({"key_id":"x"})").error(),
            errc::invalid_json);
  EXPECT_EQ(sign_json_document(key, R"({"peak":1,"peak":2})").error(),
            errc::invalid_json);
  EXPECT_TRUE(sign_json_document(key, "{}"));
}

// -- keys and PEM -------------------------------------------------------------

TEST(paseto_keys, generated_keys_differ_and_are_consistent) {
  auto a = make_key();
  auto b = make_key();
  EXPECT_NE(a.bytes(), b.bytes());
  auto again = secret_key::from_seed(a.seed(), secret_key::seed_size);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->bytes(), a.bytes());
  EXPECT_TRUE(secret_key::from_bytes(a.bytes().data(), a.bytes().size()));
}

TEST(paseto_keys, wrong_lengths_are_rejected) {
  EXPECT_EQ(public_key::from_bytes(std::string(31, 'x')).error(),
            errc::invalid_key);
  EXPECT_FALSE(public_key::from_bytes(std::string(33, 'x')));
  EXPECT_FALSE(secret_key::from_seed(std::string(31, 'x')));
  EXPECT_FALSE(secret_key::from_seed(std::string(64, 'x')));
  EXPECT_FALSE(secret_key::from_bytes(std::string(32, 'x')));
  EXPECT_FALSE(secret_key::from_bytes(std::string(65, 'x')));
}

TEST(paseto_pem, string_round_trip) {
  auto key = make_key();
  auto sk_pem = to_pem(key);
  auto pk_pem = to_pem(key.public_part());
  EXPECT_EQ(sk_pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(pk_pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
  auto sk = secret_key_from_pem(sk_pem);
  ASSERT_TRUE(sk.has_value());
  EXPECT_EQ(sk->bytes(), key.bytes());
  auto pk = public_key_from_pem(pk_pem);
  ASSERT_TRUE(pk.has_value());
  EXPECT_EQ(*pk, key.public_part());
  // One kind is not the other.
  EXPECT_EQ(secret_key_from_pem(pk_pem).error(), errc::invalid_pem);
  EXPECT_EQ(public_key_from_pem(sk_pem).error(), errc::invalid_pem);
  EXPECT_FALSE(secret_key_from_pem(""));
  EXPECT_FALSE(public_key_from_pem("garbage"));
}

TEST(paseto_pem, rejects_other_key_types_and_encrypted_keys) {
  // Made with `openssl genpkey`: valid keys, just not Ed25519 ones.
  const char* ec_private
    = "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6lAIlmXXFAusL+l3\n"
      "CYCYlW+9gBHabHTSlxddUcXQKLyhRANCAARBNE4+ExqNGEpnBbfJYU5klN190v3B\n"
      "OQjZdOTi6ytMiP6ngrY/4zIhwhaY6zvMM4r43YrrEcJPQMQlYvger1gx\n"
      "-----END PRIVATE KEY-----\n";
  const char* ec_public
    = "-----BEGIN PUBLIC KEY-----\n"
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTROPhMajRhKZwW3yWFOZJTdfdL9\n"
      "wTkI2XTk4usrTIj+p4K2P+MyIcIWmOs7zDOK+N2K6xHCT0DEJWL4Hq9YMQ==\n"
      "-----END PUBLIC KEY-----\n";
  // X25519 keys are 32 bytes too, but for key agreement, not signatures.
  const char* x25519_public
    = "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VuAyEATX9Bpr0spHqzz3E4MEnFjNE9EvFQGynfrgshnanYrBw=\n"
      "-----END PUBLIC KEY-----\n";
  // An Ed25519 key encrypted with the passphrase "secret": refused, and
  // without asking for the passphrase on the terminal.
  const char* encrypted
    = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
      "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgmSC5w7UQuAwICCAAw\n"
      "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEELwMcXLKAUiBmLYFPBVcz5oEQNgV\n"
      "8WYKV8WUh1A4/WmaZ37SzOIYpJq03k5NfnHBG4ZAm8n7j0tKpMbL3IcVGJBi4pGi\n"
      "jXFnSy+hRJIlmPMgaJc=\n"
      "-----END ENCRYPTED PRIVATE KEY-----\n";
  EXPECT_EQ(secret_key_from_pem(ec_private).error(), errc::invalid_pem);
  EXPECT_EQ(public_key_from_pem(ec_public).error(), errc::invalid_pem);
  EXPECT_EQ(public_key_from_pem(x25519_public).error(), errc::invalid_pem);
  EXPECT_EQ(secret_key_from_pem(encrypted).error(), errc::invalid_pem);
}

TEST(paseto_pem, file_round_trip) {
  temp_dir dir;
  auto key = make_key();
  auto sk_file = dir.file("signing-key.pem");
  auto pk_file = dir.file("public-key.pem");
  ASSERT_TRUE(save_pem_file(key, sk_file));
  ASSERT_TRUE(save_pem_file(key.public_part(), pk_file));
  struct stat st {};
  ASSERT_EQ(::stat(sk_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto sk = load_secret_key_pem_file(sk_file);
  ASSERT_TRUE(sk.has_value());
  EXPECT_EQ(sk->bytes(), key.bytes());
  auto pk = load_public_key_pem_file(pk_file);
  ASSERT_TRUE(pk.has_value());
  EXPECT_EQ(*pk, key.public_part());
  EXPECT_EQ(load_secret_key_pem_file(dir.file("missing.pem")).error(),
            errc::io_error);
  EXPECT_EQ(load_public_key_pem_file(dir.file("missing.pem")).error(),
            errc::io_error);
  EXPECT_EQ(save_pem_file(key, dir.file("no/such/dir/key.pem")).error(),
            errc::io_error);
  // /dev/zero (or a huge file) given as a key ended in std::bad_alloc; it
  // is read up to the limit only.
  EXPECT_EQ(load_secret_key_pem_file("/dev/zero").error(),
            errc::file_too_large);
  EXPECT_EQ(load_public_key_pem_file("/dev/zero").error(),
            errc::file_too_large);
  {
    std::ofstream big{dir.file("big.pem")};
    big << std::string(max_key_file_bytes + 1, '#');
  }
  EXPECT_EQ(load_public_key_pem_file(dir.file("big.pem")).error(),
            errc::file_too_large);
  EXPECT_EQ(read_text_file(pk_file, 10).error(), errc::file_too_large);
  EXPECT_EQ(read_text_file(pk_file, 1000).value(),
            read_text_file(pk_file, max_key_file_bytes).value());
  trusted_keys keys;
  auto pid = keys.add_pem_file(pk_file);
  ASSERT_TRUE(pid.has_value());
  EXPECT_EQ(*pid, paserk_pid(key.public_part()));
  EXPECT_FALSE(keys.add_pem_file(dir.file("missing.pem")));
}

TEST(paseto_pem, vector_key_loads_from_file) {
  temp_dir dir;
  auto path = dir.file("key.pem");
  {
    std::ofstream out{path};
    out << "-----BEGIN PRIVATE KEY-----\n"
           "MC4CAQAwBQYDK2VwBCIEILTL+0PfTOIQcn2VPkpxMwf6Gbt9n4UEFDjZ4RuUKjd0\n"
           "-----END PRIVATE KEY-----\n";
  }
  auto sk = load_secret_key_pem_file(path);
  ASSERT_TRUE(sk.has_value());
  EXPECT_EQ(
    to_hex(std::string_view{
      reinterpret_cast<const char*>(sk->public_part().bytes().data()), 32}),
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2");
}

TEST(paseto_errors, to_string_names_every_error) {
  EXPECT_EQ(to_string(errc::invalid_base64), "invalid_base64");
  EXPECT_EQ(to_string(errc::invalid_header), "invalid_header");
  EXPECT_EQ(to_string(errc::bad_signature), "bad_signature");
  EXPECT_EQ(to_string(errc::unknown_key), "unknown_key");
  EXPECT_EQ(to_string(errc::crypto_failure), "crypto_failure");
  EXPECT_EQ(to_string(errc::invalid_argument), "invalid_argument");
}
