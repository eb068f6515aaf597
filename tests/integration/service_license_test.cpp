// Licenses through the running service (issue 6): commands on Kafka (real
// protocol), the service's own PostgreSQL, events read back from
// seatledger.events.v1, the HTTP API, and the `seatledger license` CLI.
// Licenses are checked with the PASETO library a customer would use
// offline, against the public key only.

#include <algorithm>
#include <filesystem>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "paseto/base64url.hpp"
#include "paseto/keys.hpp"
#include "paseto/license_verifier.hpp"
#include "paseto/signed_json.hpp"
#include "paseto/trusted_keys.hpp"
#include "service_fixture.hpp"

namespace seatledger::test {
namespace {

using namespace std::chrono;
using json = nlohmann::json;

constexpr const char* plan_id = "ultimate-sm-annual";
const std::vector<std::string> plan_features{"sso", "audit_events", "epics"};

paseto::trusted_keys trust(const std::string& public_key_file) {
  paseto::trusted_keys keys;
  auto added = keys.add_pem_file(public_key_file);
  EXPECT_TRUE(added) << "cannot read " << public_key_file;
  return keys;
}

/// The k4.pid of a public key file.
std::string key_id_of(const std::string& public_key_file) {
  paseto::trusted_keys keys;
  auto added = keys.add_pem_file(public_key_file);
  return added ? *added : std::string{};
}

/// The decoded footer of a v4.public token.
json footer_of(const std::string& token) {
  auto dot = token.rfind('.');
  if (dot == std::string::npos || dot < 10)
    return nullptr;
  auto decoded = paseto::base64url_decode(token.substr(dot + 1));
  if (!decoded)
    return nullptr;
  return json::parse(*decoded, nullptr, false);
}

paseto::license_check verify_now(const paseto::trusted_keys& keys,
                                 const std::string& token) {
  return paseto::verify_license(keys, token, system_clock::now(), seconds{60});
}

class service_license : public ::testing::Test {
protected:
  void SetUp() override {
    service_ = std::make_unique<running_service>();
    // The catalog the licenses take tier and features from.
    service_->publish(catalog_topic, plan_id,
                      rate_plan_event(plan_id, "Ultimate", plan_features,
                                      "catalog-1"));
    database_probe db{service_->conninfo()};
    ASSERT_TRUE(wait_until(
      [&] {
        try {
          return db.scalar("SELECT count(*) FROM seatledger.catalog_rate_plans "
                           "WHERE rate_plan_id = '"
                           + std::string{plan_id} + "'")
                 == 1;
        } catch (const std::exception&) {
          return false;
        }
      },
      seconds{60}))
      << service_->process().stderr_tail();
  }

  void TearDown() override {
    service_.reset();
  }

  void command(const std::string& type, const std::string& id, const json& data,
               const std::string& time = rfc3339_from_now(seconds{0})) {
    service_->publish(
      subscriptions_topic, data.at("subscription_id").get<std::string>(),
      cloud_event("seatledger.subscription." + type, id, time, data));
  }

  /// The license.issued events of a subscription, waiting for `count`.
  std::vector<json> issued(const std::string& sub, std::size_t count) {
    return service_->wait_for(sub, "seatledger.license.issued", count);
  }

  std::unique_ptr<running_service> service_;
};

TEST_F(service_license, licenses_follow_create_update_issue_and_archive) {
  const std::string sub = "A-S00012345";
  const auto start = rfc3339_from_now(-hours{24 * 10});
  const auto end = rfc3339_from_now(hours{24 * 355});
  const auto create_time = rfc3339_from_now(seconds{0});
  command("create", "billing-create-1",
          create_data(sub, plan_id, 25, start, end, "gitlab.acme.example"),
          create_time);

  // create: one license with the claims of the subscription and the plan.
  auto first_event = issued(sub, 1);
  ASSERT_EQ(first_event.size(), 1u);
  const auto& data = first_event[0]["data"];
  EXPECT_EQ(first_event[0]["source"], "seatledger");
  const auto key = data.at("license_key").get<std::string>();
  const auto license_id = data.at("license_id").get<std::string>();
  EXPECT_EQ(key.rfind("v4.public.", 0), 0u) << key;
  EXPECT_EQ(data["seats"], 25);
  EXPECT_EQ(data["tier"], "Ultimate");
  EXPECT_EQ(data["plan_id"], plan_id);
  EXPECT_EQ(data["instance_domain"], "gitlab.acme.example");
  EXPECT_EQ(data["starts_at"], start);
  EXPECT_EQ(data["expires_at"], end);

  auto keys = trust(service_->public_key_file());
  auto check = verify_now(keys, key);
  ASSERT_TRUE(check.valid) << (check.reason ? paseto::to_string(*check.reason)
                                            : "?");
  const auto pid = key_id_of(service_->public_key_file());
  ASSERT_EQ(pid.rfind("k4.pid.", 0), 0u) << pid;
  EXPECT_EQ(check.key_id, pid);
  EXPECT_EQ(footer_of(key), (json{{"kid", pid}}));
  auto claims = json::parse(check.claims_json);
  EXPECT_EQ(claims["jti"], license_id);
  EXPECT_EQ(claims["subscription_id"], sub);
  EXPECT_EQ(claims["iat"], create_time);
  EXPECT_EQ(claims["nbf"], start);
  EXPECT_EQ(claims["exp"], end);
  EXPECT_EQ(claims["seats"], 25);
  EXPECT_EQ(claims["plan_id"], plan_id);
  EXPECT_EQ(claims["tier"], "Ultimate");
  EXPECT_EQ(claims["features"],
            (json{"audit_events", "epics", "sso"})); // the plan's, sorted
  EXPECT_EQ(claims["instance_domain"], "gitlab.acme.example");
  EXPECT_EQ(claims["instance_type"], "PRIMARY");
  EXPECT_EQ(claims["trial"], false);

  // Any change to any byte makes verification fail.
  static const std::string alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::size_t still_valid = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    std::vector<char> replacements{static_cast<char>(key[i] ^ 0x20),
                                   static_cast<char>(key[i] ^ 0x01)};
    // The alphabet neighbour differing in the lowest bit: the one that only
    // touches unused bits in a segment's last character.
    if (auto p = alphabet.find(key[i]); p != std::string::npos)
      replacements.push_back(alphabet[p ^ 1]);
    for (auto c : replacements) {
      if (c == key[i])
        continue;
      auto changed = key;
      changed[i] = c;
      if (verify_now(keys, changed).valid) {
        ++still_valid;
        ADD_FAILURE() << "still valid with byte " << i << " changed to '" << c
                      << "'";
      }
    }
  }
  EXPECT_EQ(still_valid, 0u);
  EXPECT_FALSE(verify_now(keys, key + "A").valid);
  EXPECT_FALSE(verify_now(keys, key.substr(0, key.size() - 1)).valid);

  // update_entitlements (seats): a new license; the old one stays valid.
  command("update_entitlements", "billing-update-1",
          {{"subscription_id", sub}, {"seats", 30}});
  auto two = issued(sub, 2);
  ASSERT_EQ(two.size(), 2u);
  const auto second_key = two[1]["data"]["license_key"].get<std::string>();
  const auto second_id = two[1]["data"]["license_id"].get<std::string>();
  EXPECT_NE(second_id, license_id);
  auto second = verify_now(keys, second_key);
  ASSERT_TRUE(second.valid);
  EXPECT_EQ(json::parse(second.claims_json)["seats"], 30);
  EXPECT_TRUE(verify_now(keys, key).valid);
  EXPECT_EQ(service_
              ->wait_for(sub, "seatledger.subscription.entitlements_"
                              "updated")
              .size(),
            1u);

  // The API lists both as valid, newest first.
  auto res = service_->get("/v1/subscriptions/" + sub + "/licenses");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  auto listed = json::parse(res->body)["licenses"];
  ASSERT_EQ(listed.size(), 2u) << res->body;
  EXPECT_EQ(listed[0]["license_id"], second_id);
  EXPECT_EQ(listed[1]["license_id"], license_id);
  for (const auto& l : listed) {
    EXPECT_EQ(l["status"], "valid");
    EXPECT_EQ(l["subscription_id"], sub);
    EXPECT_TRUE(l["revoked_at"].is_null());
  }
  EXPECT_EQ(listed[1]["license_key"], key);

  // Issuing through the API takes the real path (Kafka, the owning actor,
  // the commit) and answers 201 with the license; a read token may not.
  res = service_->post("/v1/subscriptions/" + sub + "/licenses",
                       R"({"features":["geo"]})", service_read_token);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403) << res->body;
  EXPECT_EQ(error_code_of(res), "forbidden");
  res = service_->post("/v1/subscriptions/" + sub + "/licenses",
                       R"({"features":["geo"]})");
  ASSERT_TRUE(res) << describe_answer(res);
  ASSERT_EQ(res->status, 201) << res->body;
  auto api_license = json::parse(res->body);
  const auto third_id = api_license["license_id"].get<std::string>();
  EXPECT_EQ(res->get_header_value("Location"), "/v1/licenses/" + third_id);
  EXPECT_EQ(api_license["status"], "valid");
  auto third = verify_now(keys, api_license["license_key"].get<std::string>());
  ASSERT_TRUE(third.valid);
  EXPECT_EQ(json::parse(third.claims_json)["features"],
            (json{"audit_events", "epics", "geo", "sso"}));
  EXPECT_EQ(issued(sub, 3).back()["data"]["license_id"], third_id);
  // The command it published carries the configured source (messages.md:
  // what seatledger publishes has `source` set to its source name).
  std::vector<std::string> api_command_sources;
  for (const auto& r : service_->kafka().read_all(subscriptions_topic)) {
    auto envelope = json::parse(r.value, nullptr, false);
    if (envelope.is_object()
        && envelope.value("type", "") == "seatledger.license.issue")
      api_command_sources.push_back(envelope.value("source", ""));
  }
  EXPECT_EQ(api_command_sources, std::vector<std::string>{"seatledger"});

  // One instance per subscription: the domain is locked while a license is
  // valid.
  command("update_metadata", "portal-move-1",
          {{"subscription_id", sub},
           {"instance", {{"domain", "new.acme.example"}}}});
  auto rejected = service_->wait_for(sub, "seatledger.command.rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["data"]["reason"], "instance_domain_locked");
  EXPECT_EQ(rejected[0]["data"]["command_id"], "portal-move-1");
  EXPECT_EQ(rejected[0]["data"]["command_source"], "test-billing");
  EXPECT_EQ(rejected[0]["data"]["command_type"],
            "seatledger.subscription.update_metadata");
  res = service_->get("/v1/subscriptions/" + sub);
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  EXPECT_EQ(json::parse(res->body)["instance"]["domain"],
            "gitlab.acme.example");

  // archive: every license revoked, and listed in the signed revocation
  // list.
  command("archive", "billing-archive-1",
          {{"subscription_id", sub}, {"reason", "customer left"}});
  auto archived = service_->wait_for(sub, "seatledger.subscription.archived");
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0]["data"]["licenses_revoked"], 3);
  auto revoked = service_->wait_for(sub, "seatledger.license.revoked", 3);
  std::set<std::string> revoked_ids;
  for (const auto& e : revoked)
    revoked_ids.insert(e["data"]["license_id"].get<std::string>());
  EXPECT_EQ(revoked_ids,
            (std::set<std::string>{license_id, second_id, third_id}));
  EXPECT_EQ(revoked.size(), 3u);

  res = service_->get("/v1/licenses/revocations");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  auto verified = paseto::verify_json_document(keys, res->body);
  ASSERT_TRUE(verified) << res->body;
  EXPECT_EQ(verified->key_id, pid);
  auto list = json::parse(res->body);
  std::set<std::string> listed_revoked;
  for (const auto& r : list["revoked"]) {
    EXPECT_EQ(r["subscription_id"], sub);
    EXPECT_TRUE(r["revoked_at"].is_string());
    listed_revoked.insert(r["license_id"].get<std::string>());
  }
  EXPECT_EQ(listed_revoked, revoked_ids);
  // A tampered copy fails: an entry dropped, a time changed.
  auto dropped = list;
  dropped["revoked"].erase(0);
  EXPECT_FALSE(paseto::verify_json_document(keys, dropped.dump()));
  auto changed = list;
  changed["issued_at"] = "2020-01-01T00:00:00Z";
  EXPECT_FALSE(paseto::verify_json_document(keys, changed.dump()));
  // The list as served verifies byte for byte; the same content re-dumped
  // too (the signature is over the canonical form).
  EXPECT_TRUE(paseto::verify_json_document(keys, list.dump()));

  // The licenses answer as revoked, online.
  res = service_->get("/v1/subscriptions/" + sub + "/licenses");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  // Parsed into a variable: a range-for over a member of the temporary
  // would read freed memory (ASan found it) and could check nothing.
  auto answered = json::parse(res->body);
  ASSERT_FALSE(answered["licenses"].empty()) << res->body;
  for (const auto& l : answered["licenses"]) {
    EXPECT_EQ(l["status"], "revoked") << l.dump();
    EXPECT_TRUE(l["revoked_at"].is_string());
  }
  res = service_->post("/v1/licenses/verify", json{{"license_key", key}}.dump(),
                       service_read_token);
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  EXPECT_EQ(json::parse(res->body)["valid"], false);
  EXPECT_EQ(json::parse(res->body)["reason"], "revoked");
  // Offline, the key itself still verifies: revocation is what the list is
  // for.
  EXPECT_TRUE(verify_now(keys, key).valid);
}

TEST_F(service_license, rule_breaking_commands_arrive_as_command_rejected) {
  const auto start = rfc3339_from_now(-hours{24});
  const auto end = rfc3339_from_now(hours{24 * 364});
  // No Salesforce account on a PRIMARY instance.
  auto no_account = create_data("sub-no-account", plan_id, 5, start, end,
                                "no-account.example");
  no_account["customer"] = json::object();
  command("create", "create-no-account", no_account);
  // An INTERNAL instance needs none.
  auto internal = create_data("sub-internal", plan_id, 5, start, end,
                              "internal.example");
  internal["customer"] = json::object();
  internal["instance"]["type"] = "INTERNAL";
  command("create", "create-internal", internal);
  // A plan the catalog does not know: the subscription is created, its
  // license is not.
  command("create", "create-unknown-plan",
          create_data("sub-unknown-plan", "no-such-plan", 5, start, end,
                      "unknown-plan.example"));

  auto rejected = service_->wait_for("sub-no-account",
                                     "seatledger.command.rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["data"]["reason"], "missing_salesforce_account");
  EXPECT_EQ(rejected[0]["data"]["command_id"], "create-no-account");
  EXPECT_EQ(rejected[0]["data"]["command_type"],
            "seatledger.subscription.create");
  EXPECT_EQ(rejected[0]["data"]["subscription_id"], "sub-no-account");
  auto res = service_->get("/v1/subscriptions/sub-no-account");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404) << res->body;

  EXPECT_EQ(
    service_->wait_for("sub-internal", "seatledger.license.issued").size(), 1u);

  auto not_issued = service_->wait_for("sub-unknown-plan",
                                       "seatledger.license.not_issued");
  ASSERT_EQ(not_issued.size(), 1u);
  EXPECT_EQ(not_issued[0]["data"]["reason"], "unknown_plan");
  EXPECT_EQ(not_issued[0]["data"]["command_id"], "create-unknown-plan");
  EXPECT_EQ(service_
              ->wait_for("sub-unknown-plan", "seatledger.subscription.created")
              .size(),
            1u);
  // An explicit license.issue for that plan is rejected, from Kafka ...
  service_->publish(subscriptions_topic, "sub-unknown-plan",
                    cloud_event("seatledger.license.issue", "issue-unknown-1",
                                rfc3339_from_now(seconds{0}),
                                {{"subscription_id", "sub-unknown-plan"}}));
  rejected = service_->wait_for("sub-unknown-plan",
                                "seatledger.command.rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["data"]["reason"], "unknown_plan");
  EXPECT_EQ(rejected[0]["data"]["command_type"], "seatledger.license.issue");
  // ... and through the API (409 with the rule's code).
  res = service_->post("/v1/subscriptions/sub-unknown-plan/licenses", "{}");
  ASSERT_TRUE(res) << describe_answer(res);
  EXPECT_EQ(res->status, 409) << res->body;
  EXPECT_EQ(error_code_of(res), "unknown_plan");
  // No license was ever issued for it.
  for (const auto& e : service_->events_of("sub-unknown-plan"))
    EXPECT_NE(e["type"], "seatledger.license.issued") << e.dump();
  res = service_->get("/v1/subscriptions/sub-unknown-plan/licenses");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  EXPECT_TRUE(json::parse(res->body)["licenses"].empty()) << res->body;
}

TEST_F(service_license, a_repeat_with_the_same_idempotency_key_issues_once) {
  // A POST whose answer was lost (a timeout, a dropped connection, a 503
  // while Kafka did not acknowledge) could only be repeated as a new
  // command: a second license. With an Idempotency-Key the repeat is the
  // same command and answers with the first one's license.
  const std::string sub = "A-S00077001";
  command("create", "billing-create-idem",
          create_data(sub, plan_id, 10, rfc3339_from_now(-hours{24}),
                      rfc3339_from_now(hours{24 * 300}),
                      "gitlab.idem.example"));
  ASSERT_EQ(issued(sub, 1).size(), 1u);
  const std::string path = "/v1/subscriptions/" + sub + "/licenses";
  const httplib::Headers key{{"Idempotency-Key", "order-4711/attempt"}};
  auto first = service_->post(path, R"({"features":["geo"]})",
                              service_admin_token, key);
  ASSERT_TRUE(first) << describe_answer(first);
  ASSERT_EQ(first->status, 201) << first->body;
  const auto license_id = json::parse(first->body)["license_id"];
  // The same key again, even with another body: the first result.
  for (const auto* body : {R"({"features":["geo"]})", R"({"features":[]})"}) {
    auto again = service_->post(path, body, service_admin_token, key);
    ASSERT_TRUE(again) << describe_answer(again);
    EXPECT_EQ(again->status, 201) << again->body;
    EXPECT_EQ(json::parse(again->body)["license_id"], license_id)
      << again->body;
  }
  // Another key is another command.
  auto other = service_->post(path, "{}", service_admin_token,
                              {{"Idempotency-Key", "order-4712"}});
  ASSERT_TRUE(other) << describe_answer(other);
  ASSERT_EQ(other->status, 201) << other->body;
  EXPECT_NE(json::parse(other->body)["license_id"], license_id);
  // Keys the API cannot use are refused before anything is published.
  for (const auto& bad : {std::string(256, 'k'), std::string{"two words"},
                          std::string{"caf\xc3\xa9"}}) {
    auto refused = service_->post(path, "{}", service_admin_token,
                                  {{"Idempotency-Key", bad}});
    ASSERT_TRUE(refused) << describe_answer(refused);
    EXPECT_EQ(refused->status, 400) << refused->body;
    EXPECT_EQ(error_code_of(refused), "bad_request");
  }
  // Three licenses in all: the create's and one per key.
  auto listed = service_->get(path);
  ASSERT_TRUE(listed && listed->status == 200) << describe_answer(listed);
  EXPECT_EQ(json::parse(listed->body)["licenses"].size(), 3u) << listed->body;
  EXPECT_EQ(issued(sub, 3).size(), 3u);
}

// A plan and the create that names it, read in one batch: the create must
// see the plan (domain.md: a catalog change is in effect for the next
// message processed). Nothing orders records across topics, so the create
// is published first here: read before the plan in the same poll, it got
// license.not_issued / unknown_plan (so did the README's run command when
// its sample was published before the replica had its partitions).
TEST_F(service_license,
       a_plan_read_in_the_same_batch_as_its_create_is_in_effect) {
  const std::string new_plan = "premium-sm-annual";
  const std::string sub = "sub-new-plan";
  // Published while the service is down, so the restart reads both at once.
  service_->stop();
  command("create", "create-new-plan",
          create_data(sub, new_plan, 7, rfc3339_from_now(-hours{24}),
                      rfc3339_from_now(hours{24 * 364}), "new-plan.example"));
  service_->publish(catalog_topic, new_plan,
                    rate_plan_event(new_plan, "Premium", {"epics"},
                                    "catalog-new-plan"));
  // The two topics' partitions are fetched apart: a batch that waits for
  // more records after its first gathers both (the default 3 ms did not,
  // now and then, under load), as a busy replica's batches do.
  service_->start({"--batch-linger", "2s"});
  auto licenses = issued(sub, 1);
  ASSERT_EQ(licenses.size(), 1u) << service_->log_tail();
  EXPECT_EQ(licenses[0]["data"]["tier"], "Premium");
  EXPECT_EQ(licenses[0]["data"]["plan_id"], new_plan);
  for (const auto& e : service_->events_of(sub))
    EXPECT_NE(e["type"], "seatledger.license.not_issued") << e.dump();
}

TEST_F(service_license, cli_verifies_license_keys_and_signed_documents) {
  const auto& pub = service_->public_key_file();
  // A valid license, one that expired (a term in the past), one not yet
  // valid (a term that starts next month).
  command("create", "create-valid",
          create_data("sub-valid", plan_id, 7, rfc3339_from_now(-hours{48}),
                      rfc3339_from_now(hours{24 * 300}), "valid.example"));
  command("create", "create-expired",
          create_data("sub-expired", plan_id, 7, "2020-01-01T00:00:00Z",
                      "2021-01-01T00:00:00Z", "expired.example"),
          "2020-01-01T00:00:00Z");
  command("create", "create-future",
          create_data("sub-future", plan_id, 7,
                      rfc3339_from_now(hours{24 * 30}),
                      rfc3339_from_now(hours{24 * 395}), "future.example"));
  auto key_of = [&](const std::string& sub) {
    auto e = service_->wait_for(sub, "seatledger.license.issued");
    return e.empty() ? std::string{}
                     : e[0]["data"]["license_key"].get<std::string>();
  };
  const auto valid = key_of("sub-valid");
  const auto expired = key_of("sub-expired");
  const auto future = key_of("sub-future");
  ASSERT_FALSE(valid.empty() || expired.empty() || future.empty());

  // Valid: exit 0, the claims as JSON on stdout.
  auto r = run_cli({"license", "verify", "--public-key", pub, valid});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  auto claims = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(claims.is_object()) << r.out;
  EXPECT_EQ(claims["subscription_id"], "sub-valid");
  EXPECT_EQ(claims["seats"], 7);
  EXPECT_EQ(claims["tier"], "Ultimate");

  // Claims are printed only when the signature verified: for an expired
  // or not yet valid key (they were not), never for a forged one.
  auto expect_invalid = [&](const std::vector<std::string>& args,
                            const std::string& reason) {
    SCOPED_TRACE(reason);
    auto res = run_cli(args);
    EXPECT_EQ(res.status, std::optional<int>{1}) << res.err;
    EXPECT_NE(res.err.find(reason), std::string::npos) << res.err;
    if (reason == "expired" || reason == "not_yet_valid") {
      auto claims = nlohmann::json::parse(res.out, nullptr, false);
      ASSERT_TRUE(claims.is_object()) << res.out;
      EXPECT_TRUE(claims.contains("exp")) << res.out;
    } else {
      EXPECT_EQ(res.out, "") << "claims printed for a key that did not verify";
    }
  };
  // A changed byte in the claims.
  auto tampered = valid;
  auto body = tampered.find('.', 10) == std::string::npos
                ? tampered.size() / 2
                : 10 + (tampered.find('.', 10) - 10) / 2;
  tampered[body] = tampered[body] == 'A' ? 'B' : 'A';
  expect_invalid({"license", "verify", "--public-key", pub, tampered},
                 "bad_signature");
  // Another vendor's key.
  temp_dir other_dir{"seatledger_other_keys"};
  auto other = crypto::generate_key_pair(other_dir.file("keys"));
  ASSERT_TRUE(other) << describe(other.error());
  expect_invalid({"license", "verify", "--public-key", other->public_key_file,
                  valid},
                 "unknown_key");
  // Both trusted (a key rotation): valid.
  r = run_cli({"license", "verify", "--public-key", other->public_key_file,
               "--public-key", pub, valid});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  expect_invalid({"license", "verify", "--public-key", pub, expired},
                 "expired");
  expect_invalid({"license", "verify", "--public-key", pub, future},
                 "not_yet_valid");
  expect_invalid({"license", "verify", "--public-key", pub, "v3.local.abc"},
                 "bad_format");
  expect_invalid({"license", "verify", "--public-key", pub, "not a token"},
                 "bad_format");
  // Without --public-key the key pair under --data-dir (where serve keeps
  // its own on its embedded defaults) is trusted; with none there, nothing
  // is verified: a usage error, not a verdict. Before, --public-key was
  // required, though operations.md has it optional.
  const auto data_dir = other_dir.file("data");
  std::filesystem::create_directories(data_dir + "/keys");
  r = run_cli({"license", "verify", "--data-dir", data_dir, valid});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find("--public-key"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(data_dir + "/keys/public-key.pem"), std::string::npos)
    << r.err;
  std::filesystem::copy_file(pub, data_dir + "/keys/public-key.pem");
  r = run_cli({"license", "verify", "--data-dir", data_dir, valid});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false)["subscription_id"], "sub-valid")
    << r.out;
  r = run_cli({"license", "verify", valid},
              {{"SEATLEDGER_DATA_DIR", data_dir}});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  r = run_cli({"license", "verify", "--data-dir", data_dir, expired});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  // With --public-key serve's configuration is not read: a setting it would
  // refuse does not matter.
  r = run_cli({"license", "verify", "--public-key", pub, valid},
              {{"SEATLEDGER_NO_SUCH_SETTING", "1"}});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  r = run_cli({"license", "verify", "--data-dir", data_dir, valid},
              {{"SEATLEDGER_NO_SUCH_SETTING", "1"}});
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;

  // A directory where a file belongs is a usage error naming it (reading a
  // directory threw inside libstdc++ and aborted the program).
  auto a_directory = other_dir.file("a-directory");
  std::filesystem::create_directories(a_directory);
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"license", "verify", "--public-key", a_directory, valid},
         {"license", "verify-document", "--public-key", a_directory,
          a_directory},
         {"license", "verify-document", "--public-key", pub, a_directory}}) {
    r = run_cli(args);
    EXPECT_EQ(r.status, std::optional<int>{2}) << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(a_directory), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  }

  // verify-document: the signed usage export (twelve complete months of
  // the past term) and the revocation list. The months are complete once
  // closed: the term's expiry at its end closes them.
  command("expire", "expire-expired", {{"subscription_id", "sub-expired"}},
          "2021-01-01T00:00:00Z");
  ASSERT_EQ(service_
              ->wait_for("sub-expired", "seatledger.usage.month_closed", 12)
              .size(),
            12u);
  auto res = service_->get("/v1/subscriptions/sub-expired/usage?export=1");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  auto export_doc = json::parse(res->body);
  EXPECT_EQ(export_doc["months"].size(), 12u) << res->body;
  EXPECT_TRUE(export_doc["signature"].is_string());
  auto doc_file = other_dir.file("usage-export.json");
  write_file(doc_file, res->body + "\n");
  r = run_cli({"license", "verify-document", "--public-key", pub, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  auto rest = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(rest.is_object()) << r.out;
  EXPECT_EQ(rest["subscription_id"], "sub-expired");
  EXPECT_FALSE(rest.contains("signature"));
  r = run_cli({"license", "verify-document", "--data-dir", data_dir, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  // A month's peak edited: refused.
  auto edited = export_doc;
  edited["months"][0]["peak_seats"] = 1000;
  write_file(doc_file, edited.dump());
  r = run_cli({"license", "verify-document", "--public-key", pub, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_NE(r.err.find("bad_signature"), std::string::npos) << r.err;
  // The usage report without ?export=1 is not signed; it was called
  // invalid_json.
  auto unsigned_report = service_->get("/v1/subscriptions/sub-expired/usage");
  ASSERT_TRUE(unsigned_report && unsigned_report->status == 200)
    << describe_answer(unsigned_report);
  write_file(doc_file, unsigned_report->body);
  r = run_cli({"license", "verify-document", "--public-key", pub, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("invalid document: not_signed"), std::string::npos)
    << r.err;
  // Signed by a key not trusted.
  write_file(doc_file, res->body);
  r = run_cli({"license", "verify-document", "--public-key",
               other->public_key_file, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{1}) << r.err;
  EXPECT_NE(r.err.find("unknown_key"), std::string::npos) << r.err;
  // The revocation list.
  res = service_->get("/v1/licenses/revocations");
  ASSERT_TRUE(res && res->status == 200) << describe_answer(res);
  write_file(doc_file, res->body);
  r = run_cli({"license", "verify-document", "--public-key", pub, doc_file});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
}

TEST(service_license_cli,
     keygen_writes_a_usable_pair_and_refuses_to_overwrite) {
  temp_dir tmp{"seatledger_keygen"};
  // A directory that does not exist yet: keygen creates it.
  const std::filesystem::path dir = tmp.file("keys");
  auto r = run_cli({"license", "keygen", "--out", dir.string()});
  ASSERT_EQ(r.status, std::optional<int>{0}) << r.err;
  const auto signing = (dir / "signing-key.pem").string();
  const auto pub = (dir / "public-key.pem").string();
  EXPECT_NE(r.out.find("SIGNING_KEY_FILE=" + signing + "\n"), std::string::npos)
    << r.out;
  EXPECT_NE(r.out.find("PUBLIC_KEY_FILE=" + pub + "\n"), std::string::npos)
    << r.out;
  ASSERT_TRUE(std::filesystem::exists(signing));
  ASSERT_TRUE(std::filesystem::exists(pub));
  // The private key is readable by its owner only.
  struct stat st {};
  ASSERT_EQ(::stat(signing.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  // The pair works: a license signed with the private key verifies with the
  // public key through the CLI.
  auto secret = paseto::load_secret_key_pem_file(signing);
  ASSERT_TRUE(secret);
  auto token = paseto::sign_license(
    *secret, R"({"jti":"l-1","nbf":"2020-01-01T00:00:00Z",)"
             R"("exp":"2999-01-01T00:00:00Z","seats":3})");
  ASSERT_TRUE(token);
  r = run_cli({"license", "verify", "--public-key", pub, *token});
  EXPECT_EQ(r.status, std::optional<int>{0}) << r.err;
  EXPECT_NE(r.out.find("\"jti\":\"l-1\""), std::string::npos) << r.out;
  // A second keygen into the same directory leaves the pair alone.
  auto read = [](const std::string& path) {
    std::ifstream in{path};
    return std::string{std::istreambuf_iterator<char>{in},
                       std::istreambuf_iterator<char>{}};
  };
  auto before = read(signing) + read(pub);
  r = run_cli({"license", "keygen", "--out", dir.string()});
  // Nothing done, as asked: 2 (it was 1, the status of work that failed).
  EXPECT_EQ(r.status, std::optional<int>{2}) << r.err;
  EXPECT_NE(r.err.find("overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("SIGNING_KEY_FILE="), std::string::npos) << r.out;
  EXPECT_EQ(read(signing) + read(pub), before);
}

} // namespace
} // namespace seatledger::test
