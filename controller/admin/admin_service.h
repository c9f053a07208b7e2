#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/identity.h"
#include "common/time/clock.h"
#include "controller/enrollment/enrollment_service.h"
#include "controller/fleet/fleet.h"
#include "controller/store/store.h"

namespace certfleet::controller::admin {

struct AgentView {
  store::AgentRecord agent;
  bool connected = false;
};

struct CertificateQuery {
  std::string agent;  // agent id or FQDN; empty = all
  std::optional<absl::Duration> expiring_within;
  std::string code;  // problem or drift code; empty = any
};

struct CertificateView {
  store::CertificateRecord certificate;
  std::string fqdn;
};

// The domain behind the admin API. Authorization (Authorize) is checked here so that every
// transport applies the same rules.
//
// Thread-safe. Methods block on the store: call them from an executor.
class AdminService {
 public:
  AdminService(store::Store& store, fleet::Fleet& fleet, enrollment::EnrollmentService& enrollment,
               common::Clock& clock)
      : store_(store), fleet_(fleet), enrollment_(enrollment), clock_(clock) {}

  // OK when `peer` is an operator with at least `needed`; PermissionDenied otherwise (agents
  // never reach the admin API).
  static absl::Status Authorize(const common::model::PeerIdentity& peer,
                                common::model::Role needed);

  absl::StatusOr<enrollment::CreatedToken> CreateJoinToken(
      const enrollment::CreateTokenRequest& request);
  absl::StatusOr<std::vector<AgentView>> ListAgents();
  // agent id -> FQDN of every agent.
  absl::StatusOr<std::map<std::string, std::string>> AgentFqdns();
  // NotFound when `query.agent` names no agent; InvalidArgument for an unknown code.
  absl::StatusOr<std::vector<CertificateView>> ListCertificates(const CertificateQuery& query);

 private:
  store::Store& store_;
  fleet::Fleet& fleet_;
  enrollment::EnrollmentService& enrollment_;
  common::Clock& clock_;
};

}  // namespace certfleet::controller::admin
