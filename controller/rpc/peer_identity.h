#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "common/model/identity.h"

namespace certfleet::controller::rpc {

// The verified identity of the caller, read from the client certificate gRPC verified against
// the controller's root. Unauthenticated when the caller presented no certificate or one that
// carries no certfleet identity.
absl::StatusOr<common::model::PeerIdentity> PeerIdentityOf(const grpc::ServerContextBase& context);

}  // namespace certfleet::controller::rpc
