#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "certfleet/v1/admin.grpc.pb.h"

namespace certfleet::ctl {

// How certfleetctl reaches a controller's admin API.
struct Connection {
  std::string controller;   // --controller / CERTFLEET_CONTROLLER
  std::string credentials;  // --credentials / CERTFLEET_CREDENTIALS: ca.pem client.pem client.key
  std::string output = "table";
};

// Adds --controller, --credentials and (when `output`) --output to `cmd`, bound to `conn`.
void AddConnectionOptions(CLI::App* cmd, Connection* conn, bool output);

// A stub over mutual TLS. InvalidArgument naming what is missing (no controller, unreadable
// credential files).
absl::StatusOr<std::unique_ptr<certfleet::v1::Admin::Stub>> Dial(const Connection& c);

// The mutual-TLS channel Dial uses, for the other services (Campaigns). Errors as Dial.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialChannel(const Connection& c);

// A per-call deadline of 15 s.
void SetDeadline(grpc::ClientContext* ctx);

// Prints a clear message for a failed call (unreachable, refused credentials, denied, ...) to
// stderr and returns exit status 1.
int ReportRpcError(const Connection& c, const grpc::Status& s);
// Prints `s` to stderr and returns exit status 1.
int ReportError(const absl::Status& s);

}  // namespace certfleet::ctl
