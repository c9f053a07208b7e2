#include "controller/admin/admin_service.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::admin {

using common::model::PeerIdentity;
using common::model::Role;

absl::Status AdminService::Authorize(const PeerIdentity& peer, Role needed) {
  if (peer.kind != PeerIdentity::Kind::kOperator) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", peer.name, " may not use the admin API"));
  }
  if (static_cast<int>(peer.role) < static_cast<int>(needed)) {
    return absl::PermissionDeniedError(
        absl::StrCat("operator ", peer.name, " has role ", common::model::RoleName(peer.role),
                     "; this needs ", common::model::RoleName(needed), " or higher"));
  }
  return absl::OkStatus();
}

absl::StatusOr<enrollment::CreatedToken> AdminService::CreateJoinToken(
    const enrollment::CreateTokenRequest& request) {
  return enrollment_.CreateToken(request);
}

absl::StatusOr<std::vector<AgentView>> AdminService::ListAgents() {
  CF_ASSIGN_OR_RETURN(std::vector<store::AgentRecord> agents, store_.ListAgents());
  std::vector<AgentView> out;
  out.reserve(agents.size());
  for (auto& a : agents) {
    bool connected = fleet_.IsConnected(a.id);
    out.push_back(AgentView{std::move(a), connected});
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> AdminService::AgentFqdns() {
  CF_ASSIGN_OR_RETURN(std::vector<store::AgentRecord> agents, store_.ListAgents());
  std::map<std::string, std::string> out;
  for (const auto& a : agents) out[a.id] = a.fqdn;
  return out;
}

absl::StatusOr<std::vector<CertificateView>> AdminService::ListCertificates(
    const CertificateQuery& query) {
  store::CertificateFilter filter;
  if (!query.agent.empty()) {
    auto agent = store_.GetAgent(query.agent);
    if (agent.status().code() == absl::StatusCode::kNotFound) {
      agent = store_.FindAgentByFqdn(query.agent);
    }
    if (!agent.ok()) {
      if (agent.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat("no agent with id or FQDN '", query.agent, "'"));
      }
      return agent.status();
    }
    filter.agent_id = agent->id;
  }
  if (query.expiring_within) filter.not_after_before = clock_.Now() + *query.expiring_within;
  if (!query.code.empty()) {
    if (!common::model::ProblemFromName(query.code) && !common::model::DriftFromName(query.code)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", query.code, "' is not a problem or drift code"));
    }
    filter.code = query.code;
  }
  CF_ASSIGN_OR_RETURN(std::vector<store::CertificateRecord> rows, store_.ListCertificates(filter));
  CF_ASSIGN_OR_RETURN(auto fqdns, AgentFqdns());
  std::vector<CertificateView> out;
  out.reserve(rows.size());
  for (auto& r : rows) {
    std::string fqdn = fqdns[r.agent_id];
    out.push_back(CertificateView{std::move(r), std::move(fqdn)});
  }
  return out;
}

}  // namespace certfleet::controller::admin
