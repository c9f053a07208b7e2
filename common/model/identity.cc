#include "common/model/identity.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace certfleet::common::model {
namespace {
constexpr absl::string_view kAgentPrefix = "certfleet://agent/";
constexpr absl::string_view kOperatorPrefix = "certfleet://operator/";

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@';
    if (!ok) return false;
  }
  return true;
}
}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::optional<Role> RoleFromName(absl::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::string AgentIdentityUri(absl::string_view agent_id) {
  return absl::StrCat(kAgentPrefix, agent_id);
}

std::string OperatorIdentityUri(Role role, absl::string_view name) {
  return absl::StrCat(kOperatorPrefix, RoleName(role), "/", name);
}

std::optional<PeerIdentity> ParseIdentityUri(absl::string_view uri) {
  PeerIdentity id;
  if (absl::ConsumePrefix(&uri, kAgentPrefix)) {
    if (!ValidName(uri)) return std::nullopt;
    id.kind = PeerIdentity::Kind::kAgent;
    id.name = std::string(uri);
    return id;
  }
  if (absl::ConsumePrefix(&uri, kOperatorPrefix)) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(uri, absl::MaxSplits('/', 1));
    auto role = RoleFromName(parts.first);
    if (!role || !ValidName(parts.second)) return std::nullopt;
    id.kind = PeerIdentity::Kind::kOperator;
    id.role = *role;
    id.name = std::string(parts.second);
    return id;
  }
  return std::nullopt;
}

}  // namespace certfleet::common::model
