#pragma once

#include <string>
#include <vector>

#include "actors/entity_context.hpp"
#include "domain/time.hpp"

namespace seatledger::app {

/// One phase of the sample: records for one topic, published together.
struct sample_phase {
  std::string name; // file name, e.g. "1-catalog.jsonl"
  std::string topic;
  std::vector<std::string> lines;
};

/// A realistic sample around `now`: a catalog; an enterprise subscription
/// spanning three orgs with shared users that runs into overage; a renewal;
/// a trial that is archived; a few malformed records for the dead-letter
/// topic. Times are relative to `now` so the usage report shows complete
/// months and the one in progress. Each phase names its topic as `topics`
/// do.
std::vector<sample_phase> make_sample(domain::timestamp now,
                                      const actors::topic_names& topics = {});

/// `seatledger sample --out DIR`: writes the phases as JSON-lines files.
/// DIR is created if missing; its missing parents only when
/// `create_parents`. Prints TOPIC FILE lines, the topics named as serve's
/// configuration names them.
int run_sample(const std::string& out_dir, bool create_parents,
               const actors::topic_names& topics);

} // namespace seatledger::app
