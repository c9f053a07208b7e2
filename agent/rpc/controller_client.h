#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/inventory/inventory.h"
#include "certfleet/v1/agent.grpc.pb.h"

namespace certfleet::agent::rpc {

// What an agent needs to dial the controller with mutual TLS.
struct Credentials {
  std::string ca_pem;          // roots that authenticate the controller
  std::string identity_pem;    // agent identity chain, leaf first
  std::string key_pem;         // the identity's private key (a secret)
  std::string agent_id;
};

struct EnrollParams {
  std::string controller;  // HOST:PORT
  std::string token;       // a secret
  std::string fqdn;
  std::string platform;
  std::string version;
  absl::Duration timeout = absl::Seconds(30);
};

// Enrolls: authenticates the controller by the token's CA pin, generates the identity key
// here, sends a CSR with the token and returns the credentials to keep. Errors carry the
// controller's status code (Unauthenticated unknown token, FailedPrecondition used/expired,
// PermissionDenied FQDN binding); Unavailable when the controller cannot be reached.
absl::StatusOr<Credentials> Enroll(const EnrollParams& params);

struct SessionOptions {
  std::string controller;
  std::string platform;
  std::string version;
  std::string fqdn;
  // Used when the controller's Welcome sets no interval.
  absl::Duration scan_interval = absl::Seconds(60);
  // Overrides the controller's interval when true.
  bool scan_interval_fixed = false;
};

// One Connect stream: Hello, a full inventory, then deltas on each interval, until the stream
// breaks or Stop() is called.
//
// Thread-safe: Stop may be called from any thread while Run runs.
class Session {
 public:
  // `scan` produces a fresh inventory; it runs on the calling thread of Run.
  Session(const Credentials& credentials, SessionOptions options,
          std::function<absl::StatusOr<inventory::HostInventory>()> scan);

  // Runs the stream to its end. Returns the stream's final status (OK after Stop).
  // `welcomed` is set true once the controller accepted the Hello.
  absl::Status Run(bool* welcomed);
  void Stop();

 private:
  void ReadLoop(grpc::ClientReaderWriter<certfleet::v1::AgentMessage,
                                         certfleet::v1::ControllerMessage>* stream);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<certfleet::v1::AgentGateway::Stub> stub_;
  Credentials credentials_;
  SessionOptions options_;
  std::function<absl::StatusOr<inventory::HostInventory>()> scan_;

  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool resync_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration controller_interval_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace certfleet::agent::rpc
