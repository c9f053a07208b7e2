#pragma once

// Records the controller persists. Plain structs; the Store converts them to rows.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/model/certificate.h"

namespace certfleet::controller::store {

struct JoinTokenRecord {
  std::string token_hash;  // SHA-256 hex of the token secret; the token itself is never stored
  std::optional<std::string> fqdn;  // when set, only an agent with this FQDN may use it
  std::map<std::string, std::string> labels;
  absl::Time created_at;
  absl::Time expires_at;
  std::optional<absl::Time> used_at;
  std::string used_by_agent;  // agent id, once used
  std::string created_by;     // operator name
};

struct AgentRecord {
  std::string id;
  std::string fqdn;
  std::map<std::string, std::string> labels;
  std::string platform;
  std::string version;
  absl::Time enrolled_at;
  std::optional<absl::Time> last_seen;
  std::string identity_serial;  // serial of the current identity certificate
  absl::Time identity_not_after;
  // Latest binding report.
  std::string channel_serial;
  std::vector<std::string> drift;
  uint64_t inventory_generation = 0;
};

// One certificate in one store of one agent's host.
struct CertificateRecord {
  std::string agent_id;
  std::string store;  // "My", "CA", "Root"
  std::string location;
  common::model::CertificateInfo info;
  std::vector<std::string> problems;
  bool bound = false;
  std::vector<std::string> drift;

  // "<store>/<thumbprint>": the key of the row within the agent.
  std::string Key() const { return store + "/" + info.thumbprint; }
};

struct CertificateFilter {
  std::optional<std::string> agent_id;
  // Only certificates whose not_after is before this time.
  std::optional<absl::Time> not_after_before;
  // Only certificates carrying this problem or drift code.
  std::optional<std::string> code;
};

// The binding part of an inventory.
struct BindingRecord {
  std::string channel_serial;
  std::vector<std::string> drift;
};

}  // namespace certfleet::controller::store
