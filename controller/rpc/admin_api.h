#pragma once

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "certfleet/v1/admin.grpc.pb.h"
#include "common/executor/executor.h"
#include "common/model/identity.h"
#include "controller/admin/admin_service.h"
#include "controller/audit/audit_log.h"
#include "controller/ca/manual/approval_queue.h"
#include "controller/commands/command_service.h"
#include "controller/renewal/renewal_service.h"

namespace certfleet::controller::rpc {

// The admin API over the gRPC callback API: authenticate the operator, check the role, convert,
// run the domain call on the executor, convert back. Every mutating call that succeeded is
// recorded in `audit` with actor "operator/<role>/<name>" (never with a secret: no token, no
// import data or password). Thread-safe.
class AdminApiService final : public certfleet::v1::Admin::CallbackService {
 public:
  AdminApiService(admin::AdminService& service, commands::CommandService& commands,
                  renewal::RenewalService& renewals, ca::ApprovalQueue& approvals,
                  common::Executor& executor, audit::AuditLog& audit)
      : service_(service),
        commands_(commands),
        renewals_(renewals),
        approvals_(approvals),
        executor_(executor),
        audit_(audit) {}

  grpc::ServerUnaryReactor* CreateJoinToken(
      grpc::CallbackServerContext* context, const certfleet::v1::CreateJoinTokenRequest* request,
      certfleet::v1::CreateJoinTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const certfleet::v1::ListAgentsRequest* request,
                                       certfleet::v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* ListCertificates(
      grpc::CallbackServerContext* context, const certfleet::v1::ListCertificatesRequest* request,
      certfleet::v1::ListCertificatesResponse* response) override;
  grpc::ServerUnaryReactor* CreateCommand(grpc::CallbackServerContext* context,
                                          const certfleet::v1::CreateCommandRequest* request,
                                          certfleet::v1::CommandInfo* response) override;
  grpc::ServerUnaryReactor* GetCommand(grpc::CallbackServerContext* context,
                                       const certfleet::v1::GetCommandRequest* request,
                                       certfleet::v1::CommandInfo* response) override;
  grpc::ServerUnaryReactor* ListCommands(grpc::CallbackServerContext* context,
                                         const certfleet::v1::ListCommandsRequest* request,
                                         certfleet::v1::ListCommandsResponse* response) override;
  grpc::ServerUnaryReactor* CancelCommand(grpc::CallbackServerContext* context,
                                          const certfleet::v1::CancelCommandRequest* request,
                                          certfleet::v1::CommandInfo* response) override;
  grpc::ServerUnaryReactor* StartRenewal(grpc::CallbackServerContext* context,
                                         const certfleet::v1::StartRenewalRequest* request,
                                         certfleet::v1::RenewalInfo* response) override;
  grpc::ServerUnaryReactor* GetRenewal(grpc::CallbackServerContext* context,
                                       const certfleet::v1::GetRenewalRequest* request,
                                       certfleet::v1::RenewalInfo* response) override;
  grpc::ServerUnaryReactor* ListRenewals(grpc::CallbackServerContext* context,
                                         const certfleet::v1::ListRenewalsRequest* request,
                                         certfleet::v1::ListRenewalsResponse* response) override;
  grpc::ServerUnaryReactor* ListApprovalRequests(
      grpc::CallbackServerContext* context,
      const certfleet::v1::ListApprovalRequestsRequest* request,
      certfleet::v1::ListApprovalRequestsResponse* response) override;
  grpc::ServerUnaryReactor* GetApprovalRequest(
      grpc::CallbackServerContext* context, const certfleet::v1::GetApprovalRequestRequest* request,
      certfleet::v1::ApprovalRequestInfo* response) override;
  grpc::ServerUnaryReactor* DecideApprovalRequest(
      grpc::CallbackServerContext* context,
      const certfleet::v1::DecideApprovalRequestRequest* request,
      certfleet::v1::ApprovalRequestInfo* response) override;
  grpc::ServerUnaryReactor* FulfillApprovalRequest(
      grpc::CallbackServerContext* context,
      const certfleet::v1::FulfillApprovalRequestRequest* request,
      certfleet::v1::ApprovalRequestInfo* response) override;
  // Audit log: viewer to list, admin to verify.
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const certfleet::v1::ListAuditRequest* request,
                                      certfleet::v1::ListAuditResponse* response) override;
  grpc::ServerUnaryReactor* VerifyAudit(grpc::CallbackServerContext* context,
                                        const certfleet::v1::VerifyAuditRequest* request,
                                        certfleet::v1::VerifyAuditResponse* response) override;

 private:
  // Fills `out` from `record`, with the agent's FQDN.
  absl::Status Describe(const store::CommandRecord& record, certfleet::v1::CommandInfo* out);
  // Records a change `who` made, after it succeeded. Never fails the call: a failed append is
  // logged as an error, because the change already happened and the caller must learn that.
  void Audit(const common::model::PeerIdentity& who, absl::string_view action,
             absl::string_view target, const std::map<std::string, std::string>& details);

  admin::AdminService& service_;
  commands::CommandService& commands_;
  renewal::RenewalService& renewals_;
  ca::ApprovalQueue& approvals_;
  common::Executor& executor_;
  audit::AuditLog& audit_;
};

}  // namespace certfleet::controller::rpc
