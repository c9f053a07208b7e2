#pragma once

// Who is on the other end of a mutual-TLS connection. Identities travel as a URI SAN in the
// client certificate the controller's CA issued:
//   certfleet://agent/<agent-id>
//   certfleet://operator/<role>/<name>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace certfleet::common::model {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };

// "viewer", "operator", "admin".
absl::string_view RoleName(Role role);
std::optional<Role> RoleFromName(absl::string_view name);

struct PeerIdentity {
  enum class Kind { kAgent, kOperator };
  Kind kind = Kind::kAgent;
  std::string name;           // agent id, or operator name
  Role role = Role::kViewer;  // operators only
};

std::string AgentIdentityUri(absl::string_view agent_id);
std::string OperatorIdentityUri(Role role, absl::string_view name);

// Parses one of the URIs above; nullopt for anything else (including empty names and names
// with '/' in them).
std::optional<PeerIdentity> ParseIdentityUri(absl::string_view uri);

}  // namespace certfleet::common::model
