// The subscription actor itself, in an actor system of its own: what it
// hands the coordinator to commit when a command grants a license. No
// server is involved; the signer is the context's function, replaced here
// by one that gives a fixed token or fails.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/entity_actors.hpp"
#include "messages/actor_messages.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"
#include "test_support.hpp"

using namespace seatledger;
using namespace seatledger::test;

namespace {

constexpr auto signed_token = "v4.public.token-of-the-test-signer";

std::shared_ptr<actors::entity_context> context_with_signer(
  std::function<caf::expected<std::string>(const std::string&)> signer) {
  auto context = std::make_shared<actors::entity_context>();
  context->catalog->replace(default_catalog().plans, 1);
  context->sign_license = std::move(signer);
  context->key_id = "k4.pid.test";
  return context;
}

/// A create command: the subscription's first license is granted with it.
messages::subscription_job create_job() {
  messages::subscription_job job;
  job.items.emplace_back(domain::command_event{
    ref("create-1", "2026-01-01T00:00:00Z", "subscription.create"),
    create_cmd("s1", 10, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")});
  job.order.push_back(0);
  return job;
}

/// Sends `job` to a new subscription actor; gives its answer.
caf::expected<messages::entity_result>
apply_in_new_actor(std::shared_ptr<const actors::entity_context> context,
                   messages::subscription_job job) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto actor = actors::spawn_subscription_actor(system, std::nullopt, "s1", 0,
                                                std::move(context));
  caf::scoped_actor self{system};
  caf::expected<messages::entity_result> answer{caf::error{}};
  self->request(actor, caf::infinite, atoms::apply_atom_v, std::move(job))
    .receive(
      [&](messages::entity_result& result) { answer = std::move(result); },
      [&](caf::error& err) { answer = std::move(err); });
  self->send_exit(actor, caf::exit_reason::user_shutdown);
  return answer;
}

std::vector<std::string> outbox_values(const messages::entity_result& result) {
  std::vector<std::string> values;
  for (const auto& row : result.rows.outbox)
    values.push_back(row.value);
  return values;
}

TEST(subscription_actor,
     a_granted_license_is_stored_and_published_with_its_key) {
  auto answer
    = apply_in_new_actor(context_with_signer([](const std::string& claims) {
                           EXPECT_NE(claims.find("\"s1\""), std::string::npos);
                           return caf::expected<std::string>{signed_token};
                         }),
                         create_job());
  ASSERT_TRUE(answer) << describe(answer.error());
  ASSERT_EQ(answer->rows.licenses.size(), 1u);
  EXPECT_EQ(answer->rows.licenses[0].license_key, signed_token);
  EXPECT_EQ(answer->rows.licenses[0].key_id, "k4.pid.test");
  EXPECT_EQ(answer->licenses_issued, 1);
  auto issued = 0;
  for (const auto& value : outbox_values(*answer))
    if (value.find("license.issued") != std::string::npos) {
      ++issued;
      EXPECT_NE(value.find(signed_token), std::string::npos) << value;
    }
  EXPECT_EQ(issued, 1);
}

// Before the fix the actor logged the failure and went on: the batch
// committed the subscription without its license, and license.issued went
// out with an empty key.
TEST(subscription_actor, a_license_that_cannot_be_signed_fails_the_whole_job) {
  auto signs = 0;
  auto answer = apply_in_new_actor(context_with_signer([&](const std::string&) {
                                     ++signs;
                                     return caf::expected<std::string>{
                                       make_error(service_errc::internal,
                                                  "signer broken")};
                                   }),
                                   create_job());
  EXPECT_EQ(signs, 1);
  ASSERT_FALSE(answer) << "the actor answered with "
                       << answer->rows.outbox.size() << " outbox rows and "
                       << answer->rows.licenses.size() << " licenses";
  EXPECT_TRUE(is(answer.error(), service_errc::internal))
    << describe(answer.error());
  EXPECT_NE(describe(answer.error()).find("signer broken"), std::string::npos)
    << describe(answer.error());
}

TEST(subscription_actor, without_a_signer_the_job_fails_too) {
  auto answer = apply_in_new_actor(context_with_signer(nullptr), create_job());
  ASSERT_FALSE(answer) << "the actor answered with "
                       << answer->rows.licenses.size() << " licenses";
  EXPECT_NE(describe(answer.error()).find("no license signing key"),
            std::string::npos)
    << describe(answer.error());
}

} // namespace
