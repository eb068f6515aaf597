#include "actors/entity_actors.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "domain/org.hpp"
#include "log/log.hpp"
#include "messages/encode.hpp"
#include "messages/service_error.hpp"
#include "messages/type_ids.hpp"

namespace seatledger::actors {

namespace {

using messages::entity_result;

const storage::record_headers cloudevents_headers{
  {"content-type", "application/cloudevents+json"}};

// -- org actor ----------------------------------------------------------------

struct org_actor_state {
  std::unique_ptr<domain::org_state> org;
  /// Its row is stored or in a batch committing before the next one (a
  /// batch that fails passivates every actor, so this is read again).
  bool row_stored = false;
  std::int32_t partition = 0;
  std::string lease_key;
  std::shared_ptr<const entity_context> context;
  static inline const char* name = "org";
};

entity_result apply_org_job(org_actor_state& st, messages::org_job& job) {
  entity_result result;
  auto& rows = result.rows;
  const auto& ctx = *st.context;
  auto link_before = st.org->subscription_id();
  auto delta_seq_before = st.org->delta_seq();
  for (size_t i = 0; i < job.events.size(); ++i) {
    const auto& event = job.events[i];
    auto fx = st.org->apply(event, ctx.max_delta_changes);
    auto order = i < job.order.size() ? job.order[i] : 0;
    ++result.applied;
    for (auto& change : fx.member_changes)
      rows.memberships.push_back({st.org->org_id(), std::move(change.user_id),
                                  change.billable, change.previous});
    for (const auto& delta : fx.deltas) {
      rows.outbox.push_back({delta.delta_id, ctx.topics.deltas,
                             delta.subscription_id,
                             messages::encode_seat_delta(delta, ctx.source),
                             cloudevents_headers, st.lease_key});
      result.outbox_order.push_back(order);
    }
  }
  // The org row exists from the first event on (an org never seen is 404),
  // and is written again only when its link or last delta moved: many
  // membership events change neither (a member added again, a guest, any
  // change in an org not linked).
  if (!st.row_stored || st.org->subscription_id() != link_before
      || st.org->delta_seq() != delta_seq_before)
    rows.orgs.push_back({st.org->org_id(), st.org->subscription_id(),
                         st.partition, st.org->delta_seq()});
  st.row_stored = true;
  return result;
}

caf::behavior org_actor(caf::stateful_actor<org_actor_state>* self,
                        storage::org_snapshot snapshot, std::int32_t partition,
                        std::shared_ptr<const entity_context> context) {
  auto& st = self->state;
  st.org = std::make_unique<domain::org_state>(
    snapshot.org_id, std::move(snapshot.subscription_id),
    std::move(snapshot.members), snapshot.delta_seq);
  st.row_stored = snapshot.stored;
  st.partition = partition;
  st.lease_key = membership_lease(partition);
  st.context = std::move(context);
  return {
    [self](atoms::apply_atom, messages::org_job& job) -> entity_result {
      return apply_org_job(self->state, job);
    },
  };
}

// -- subscription actor -------------------------------------------------------

struct subscription_actor_state {
  std::unique_ptr<domain::subscription> sub;
  std::int32_t partition = 0;
  std::string lease_key;
  std::shared_ptr<const entity_context> context;
  static inline const char* name = "subscription";
};

/// Adds one item's effects to `result`. Fails when a granted license cannot
/// be signed: its license.issued would go out without a key while the
/// license is not stored, so the batch must not commit (the coordinator
/// throws the actor's state away and applies the records again later).
caf::error collect(subscription_actor_state& st,
                   domain::subscription_effects& fx, std::int64_t order,
                   entity_result& result, bool& state_changed) {
  auto& rows = result.rows;
  const auto& ctx = *st.context;
  const auto& sub = *st.sub;
  const auto& id = sub.record().subscription_id;
  state_changed = state_changed || fx.state_changed;
  if (fx.rejected) {
    ++result.rejected;
    std::string command_type;
    for (const auto& e : fx.events)
      if (const auto* r = std::get_if<domain::command_rejected>(&e.payload))
        command_type = r->command_type;
    result.rejections.emplace_back(std::move(command_type),
                                   to_string(fx.rejected->code));
  }
  for (auto& entry : fx.entries)
    rows.ledger.push_back(std::move(entry));
  for (auto& h : fx.holder_changes)
    rows.holders.push_back(
      {id, std::move(h.user_id), std::move(h.org_id), h.added});
  // One row per org this record touched: linked now or not, and the last
  // delta applied from it.
  std::set<std::string> touched;
  for (const auto& [org, linked] : fx.org_changes)
    touched.insert(org);
  if (fx.org_delta_seq)
    touched.insert(fx.org_delta_seq->first);
  for (const auto& org : touched) {
    auto seq_it = sub.org_delta_seqs().find(org);
    auto owed_it = sub.owed_before_parts().find(org);
    rows.subscription_orgs.push_back(
      {id, org, sub.orgs().count(org) > 0,
       seq_it == sub.org_delta_seqs().end() ? 0 : seq_it->second,
       owed_it == sub.owed_before_parts().end()
         ? std::nullopt
         : std::optional<std::int64_t>{owed_it->second}});
  }
  for (const auto& t : fx.term_changes)
    rows.terms.push_back({id, t});
  // Sign every granted license, then put its key into the event.
  std::map<std::string, std::string> keys;
  for (const auto& grant : fx.grants) {
    auto claims = messages::encode_license_claims(grant);
    auto token = ctx.sign_license
                   ? ctx.sign_license(claims)
                   : caf::expected<std::string>{make_error(
                     service_errc::internal, "no license signing key")};
    if (!token) {
      log::error("cannot sign a license; the batch is not committed",
                 {{"subscription_id", id},
                  {"license_id", grant.license_id},
                  {"error", describe(token.error())}});
      return std::move(token.error());
    }
    keys[grant.license_id] = *token;
    rows.licenses.push_back({grant, std::move(claims), *token, ctx.key_id});
    ++result.licenses_issued;
  }
  std::string archive_reason = sub.record().archive_reason.value_or("");
  for (const auto& [license_id, at] : fx.revocations)
    rows.revocations.push_back({license_id, id, at, archive_reason});
  for (auto& event : fx.events) {
    if (auto* issued = std::get_if<domain::license_issued>(&event.payload)) {
      auto it = keys.find(issued->grant.license_id);
      if (it != keys.end())
        issued->license_key = it->second;
    }
    if (std::holds_alternative<domain::overage_detected>(event.payload))
      ++result.overages;
    auto value = messages::encode_output_event(event, ctx.source);
    // The HTTP API looks up why a command it published was rejected.
    if (std::holds_alternative<domain::command_rejected>(event.payload))
      rows.indexed_events.emplace_back(event.id, value);
    rows.outbox.push_back({event.id, ctx.topics.events, id, std::move(value),
                           cloudevents_headers, st.lease_key});
    result.outbox_order.push_back(order);
  }
  return {};
}

caf::expected<entity_result>
apply_subscription_job(subscription_actor_state& st,
                       messages::subscription_job& job) {
  entity_result result;
  bool state_changed = false;
  // Seat deltas move only the counts of the record (a domain unit test
  // holds them to it), so a job of deltas alone writes just those.
  bool deltas_only = true;
  auto& sub = *st.sub;
  // The coordinator compared the terms this job starts with the window as
  // the last job left it; the records before such a command in this job
  // must not trim it further.
  if (job.starts_a_term)
    sub.hold_window(job.earlier_ledger ? &*job.earlier_ledger : nullptr);
  for (size_t i = 0; i < job.items.size(); ++i) {
    auto& item = job.items[i];
    auto order = i < job.order.size() ? job.order[i] : 0;
    domain::subscription_effects fx;
    if (auto* delta = std::get_if<domain::seat_delta>(&item)) {
      fx = sub.apply(*delta);
    } else if (auto* command = std::get_if<domain::command_event>(&item)) {
      deltas_only = false;
      fx = sub.apply(*command, *st.context->catalog);
    } else {
      deltas_only = false;
      fx
        = sub.close_months(std::get<messages::close_months_request>(item).upto);
    }
    ++result.applied;
    if (auto err = collect(st, fx, order, result, state_changed)) {
      sub.release_window();
      return err;
    }
  }
  sub.release_window();
  // The coordinator tracks where the window starts, to hand a later job
  // the ledger before it when that job needs it.
  result.window_from = sub.window().exact_from;
  if (state_changed)
    result.rows.subscriptions.push_back(
      {sub.record(), st.partition, sub.next_month_end(), deltas_only});
  return result;
}

caf::behavior
subscription_actor(caf::stateful_actor<subscription_actor_state>* self,
                   std::optional<storage::subscription_snapshot> snapshot,
                   std::string subscription_id, std::int32_t partition,
                   std::shared_ptr<const entity_context> context) {
  auto& st = self->state;
  if (snapshot)
    st.sub = std::make_unique<domain::subscription>(
      std::move(snapshot->record), std::move(snapshot->holders),
      std::move(snapshot->orgs), std::move(snapshot->org_delta_seqs),
      std::move(snapshot->window), std::move(snapshot->licenses),
      std::move(snapshot->owed_before_parts));
  else
    st.sub = std::make_unique<domain::subscription>(std::move(subscription_id));
  st.partition = partition;
  st.lease_key = subscription_lease(partition);
  st.context = std::move(context);
  return {
    [self](atoms::apply_atom,
           messages::subscription_job& job) -> caf::result<entity_result> {
      auto result = apply_subscription_job(self->state, job);
      if (!result)
        return std::move(result.error());
      return std::move(*result);
    },
  };
}

} // namespace

caf::actor spawn_org_actor(caf::actor_system& system,
                           storage::org_snapshot snapshot,
                           std::int32_t partition,
                           std::shared_ptr<const entity_context> context) {
  return system.spawn(org_actor, std::move(snapshot), partition,
                      std::move(context));
}

caf::actor
spawn_subscription_actor(caf::actor_system& system,
                         std::optional<storage::subscription_snapshot> snapshot,
                         std::string subscription_id, std::int32_t partition,
                         std::shared_ptr<const entity_context> context) {
  return system.spawn(subscription_actor, std::move(snapshot),
                      std::move(subscription_id), partition,
                      std::move(context));
}

// -- context ------------------------------------------------------------------

std::optional<domain::plan_entitlements>
catalog_cache::find_plan(const std::string& plan_id) const {
  std::shared_ptr<const plans> current;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    current = plans_;
  }
  auto it = current->find(plan_id);
  if (it == current->end())
    return std::nullopt;
  return it->second;
}

void catalog_cache::replace(plans snapshot, std::int64_t version) {
  auto next = std::make_shared<const plans>(std::move(snapshot));
  std::lock_guard<std::mutex> guard{mutex_};
  plans_ = std::move(next);
  version_ = version;
}

std::int64_t catalog_cache::version() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return version_;
}

std::string membership_lease(std::int32_t partition) {
  return "membership/" + std::to_string(partition);
}

std::string subscription_lease(std::int32_t partition) {
  return "subscriptions/" + std::to_string(partition);
}

} // namespace seatledger::actors
