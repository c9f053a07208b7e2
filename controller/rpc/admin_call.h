#pragma once

// The shape of every admin-side unary call (Admin and Campaigns services): authenticate the
// operator from the verified client certificate, check the role the method needs, run the work
// on the controller's executor (never on the gRPC thread) and finish with its status.

#include <grpcpp/grpcpp.h>

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/executor/executor.h"
#include "common/model/identity.h"

namespace certfleet::controller::rpc {

// `work` receives the caller's identity. A caller without an operator credential, or with a
// role below `needed`, gets Unauthenticated / PermissionDenied (logged with `method`) and
// `work` never runs; a controller shutting down answers Unavailable.
grpc::ServerUnaryReactor* RunAdminCall(
    grpc::CallbackServerContext* context, common::Executor& executor, common::model::Role needed,
    absl::string_view method, std::function<absl::Status(const common::model::PeerIdentity&)> work);

// "operator/<role>/<name>": how audit entries name the caller.
std::string ActorOf(const common::model::PeerIdentity& who);

}  // namespace certfleet::controller::rpc
