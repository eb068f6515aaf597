#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <caf/expected.hpp>

#include "domain/subscription.hpp"
#include "messages/types.hpp"

namespace seatledger::actors {

/// Topic names (configurable; these are the defaults).
struct topic_names {
  std::string membership = "seatledger.membership.v1";
  std::string subscriptions = "seatledger.subscriptions.v1";
  std::string catalog = "seatledger.catalog.v1";
  std::string deltas = "seatledger.internal.seat-deltas.v1";
  std::string events = "seatledger.events.v1";
  std::string dlq = "seatledger.dlq.v1";

  /// The input topics, each with its role.
  std::array<std::pair<messages::topic_kind, const std::string*>, 4>
  inputs() const {
    using messages::topic_kind;
    return {{{topic_kind::membership, &membership},
             {topic_kind::subscriptions, &subscriptions},
             {topic_kind::catalog, &catalog},
             {topic_kind::seat_deltas, &deltas}}};
  }
};

/// The catalog's plan entitlements, shared by every subscription actor and
/// swapped as a whole when the catalog changes (so a reader never sees half
/// of an update).
class catalog_cache : public domain::plan_catalog {
public:
  using plans = std::map<std::string, domain::plan_entitlements>;

  std::optional<domain::plan_entitlements>
  find_plan(const std::string& plan_id) const override;

  void replace(plans snapshot, std::int64_t version);

  std::int64_t version() const;

private:
  mutable std::mutex mutex_;
  std::shared_ptr<const plans> plans_ = std::make_shared<plans>();
  std::int64_t version_ = 0;
};

/// What every entity actor shares (read-only after start).
struct entity_context {
  /// CloudEvents `source` of everything published.
  std::string source = "seatledger";
  topic_names topics;
  std::shared_ptr<catalog_cache> catalog = std::make_shared<catalog_cache>();
  /// Signs license claims; gives the token.
  std::function<caf::expected<std::string>(const std::string& claims)>
    sign_license;
  /// k4.pid of the signing key.
  std::string key_id;
  std::size_t max_delta_changes = 2000;
};

std::string membership_lease(std::int32_t partition);
std::string subscription_lease(std::int32_t partition);

} // namespace seatledger::actors
