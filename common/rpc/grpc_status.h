#pragma once

// absl::Status <-> grpc::Status. The canonical codes are the same numbers on both sides, so an
// error crosses the wire with its code and message unchanged.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace certfleet::common::rpc {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace certfleet::common::rpc
