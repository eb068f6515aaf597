#pragma once

// A generated stream for service tests: phases that each touch one input
// topic, waited on one after the other, so two runs of the same scenario
// apply records to every entity in the same order and their results can be
// compared exactly (the internal delta topic and the command topic are
// consumed independently; within a phase only one of them feeds a
// subscription).

#include <cstdint>
#include <string>
#include <vector>

#include "service_harness.hpp"

namespace seatledger::test {

struct scenario_options {
  int subscriptions = 4;
  int orgs_per_subscription = 3;
  int users = 60;
  int membership_events_per_phase = 600;
  int partitions = 4;
  std::uint64_t seed = 7;
  /// Malformed records mixed into the membership phases.
  int poison_per_phase = 3;
};

struct scenario_phase {
  std::string topic;
  std::vector<outgoing> records;
  /// Upstream events in it that decode (so are recorded as applied, once).
  std::int64_t upstream = 0;
  /// Records that must go to the dead-letter topic.
  std::int64_t poison = 0;
};

struct scenario {
  std::vector<scenario_phase> phases;
  std::vector<std::string> subscription_ids;
  std::int64_t upstream = 0;
  std::int64_t poison = 0;
};

scenario make_scenario(const scenario_options& options);

} // namespace seatledger::test
