#pragma once

#include "absl/time/time.h"
#include "certfleet/v1/agent.grpc.pb.h"
#include "common/executor/executor.h"
#include "controller/commands/command_service.h"
#include "controller/enrollment/enrollment_service.h"
#include "controller/fleet/fleet.h"

namespace certfleet::controller::rpc {

struct AgentGatewayDeps {
  enrollment::EnrollmentService& enrollment;
  fleet::Fleet& fleet;
  commands::CommandService& commands;
  common::Executor& executor;
};

struct AgentGatewayOptions {
  // Sent in Welcome; zero lets each agent keep its own interval.
  absl::Duration scan_interval = absl::ZeroDuration();
};

// The agent gateway over the gRPC callback API. Every blocking step (store writes, signing)
// runs on `deps.executor`; reactions only move messages. Thread-safe.
class AgentGatewayService final : public certfleet::v1::AgentGateway::CallbackService {
 public:
  AgentGatewayService(AgentGatewayDeps deps, AgentGatewayOptions options)
      : deps_(deps), options_(options) {}

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const certfleet::v1::EnrollRequest* request,
                                   certfleet::v1::EnrollResponse* response) override;

  grpc::ServerBidiReactor<certfleet::v1::AgentMessage, certfleet::v1::ControllerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Authenticated by the caller's agent identity (PermissionDenied for an operator); signs a
  // new identity for the same agent on the executor (EnrollmentService::RenewIdentity).
  grpc::ServerUnaryReactor* RenewIdentity(grpc::CallbackServerContext* context,
                                          const certfleet::v1::RenewIdentityRequest* request,
                                          certfleet::v1::RenewIdentityResponse* response) override;

 private:
  AgentGatewayDeps deps_;
  AgentGatewayOptions options_;
};

}  // namespace certfleet::controller::rpc
