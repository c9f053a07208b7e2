#pragma once

#include "certfleet/v1/admin.grpc.pb.h"
#include "common/executor/executor.h"
#include "controller/admin/admin_service.h"

namespace certfleet::controller::rpc {

// The admin API over the gRPC callback API: authenticate the operator, check the role, convert,
// run the domain call on the executor, convert back. Thread-safe.
class AdminApiService final : public certfleet::v1::Admin::CallbackService {
 public:
  AdminApiService(admin::AdminService& service, common::Executor& executor)
      : service_(service), executor_(executor) {}

  grpc::ServerUnaryReactor* CreateJoinToken(
      grpc::CallbackServerContext* context, const certfleet::v1::CreateJoinTokenRequest* request,
      certfleet::v1::CreateJoinTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const certfleet::v1::ListAgentsRequest* request,
                                       certfleet::v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* ListCertificates(
      grpc::CallbackServerContext* context, const certfleet::v1::ListCertificatesRequest* request,
      certfleet::v1::ListCertificatesResponse* response) override;

 private:
  admin::AdminService& service_;
  common::Executor& executor_;
};

}  // namespace certfleet::controller::rpc
