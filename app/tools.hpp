#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "adapters/kafka/kafka.hpp"

namespace seatledger::actors {
struct topic_names;
} // namespace seatledger::actors

namespace seatledger::app {

/// `seatledger dev-kafka`: the mock cluster as its own process, until
/// SIGTERM/SIGINT.
int run_dev_kafka(int brokers, int partitions,
                  const std::vector<std::string>& topics);

/// `seatledger publish --topic T [FILE]`: JSON-lines CloudEvents, each keyed
/// by `key_field` when one is given, else by the entity id its `type`'s
/// topic is keyed by (for a type of no input topic: `topic`'s, when it is
/// one of the configured input `topics`). Lines that are not valid
/// CloudEvents are published as they are, without a key (so dead-letter
/// handling can be exercised). `properties_setting` names where the Kafka
/// properties came from, for the line that says librdkafka refuses them.
int run_publish(const kafka::client_config& kafka, const std::string& topic,
                const actors::topic_names& topics, const std::string& key_field,
                const std::string& file, const std::string& properties_setting);

/// `seatledger migrate`.
int run_migrate(const std::string& database_url, const std::string& data_dir);

/// `seatledger ledger verify [--subscription ID]`.
int run_ledger_verify(const std::string& database_url,
                      const std::string& data_dir,
                      const std::optional<std::string>& subscription_id);

/// Makes `dir` ready to take a command's output files: an existing
/// directory, or created (with its missing parents only when
/// `create_parents`). Otherwise says why on stderr, naming `dir`, and
/// returns false.
bool make_output_dir(const std::string& dir, bool create_parents);

/// `seatledger license keygen [--out DIR]`: DIR is created if missing, its
/// parent is not.
int run_license_keygen(const std::string& out_dir);

/// `seatledger license verify [--public-key F]… KEY`. Without a public key
/// it trusts the key pair serve keeps under `data_dir` (embedded mode).
int run_license_verify(const std::vector<std::string>& public_keys,
                       const std::string& data_dir, const std::string& key);

/// `seatledger license verify-document [--public-key F]… FILE`: a signed
/// usage export or revocation list; keys as for run_license_verify.
int run_document_verify(const std::vector<std::string>& public_keys,
                        const std::string& data_dir, const std::string& file);

} // namespace seatledger::app
