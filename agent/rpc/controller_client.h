#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/inventory/inventory.h"
#include "certfleet/v1/agent.grpc.pb.h"
#include "common/model/command.h"

namespace certfleet::agent::rpc {

// What an agent needs to dial the controller with mutual TLS.
struct Credentials {
  std::string ca_pem;        // roots that authenticate the controller
  std::string identity_pem;  // agent identity chain, leaf first
  std::string key_pem;       // the identity's private key (a secret)
  std::string agent_id;
};

struct EnrollParams {
  std::string controller;  // HOST:PORT
  std::string token;       // a secret
  std::string fqdn;
  std::string platform;
  std::string version;
  // Re-enrollment of an agent whose identity expired: its id (from the state directory); the
  // token must be a re-enrollment token bound to it. Empty: enroll a new agent.
  std::string agent_id;
  absl::Duration timeout = absl::Seconds(30);
};

// Enrolls: authenticates the controller by the token's CA pin, generates the identity key
// here, sends a CSR (CN = fqdn) with the token and returns the credentials to keep. Errors carry
// the controller's status code (Unauthenticated unknown token, FailedPrecondition used/expired,
// PermissionDenied FQDN or agent binding); Unavailable when the controller cannot be reached;
// DataLoss when the answer is incomplete or (re-enrollment) names another agent.
absl::StatusOr<Credentials> Enroll(const EnrollParams& params);

struct RenewParams {
  std::string controller;  // HOST:PORT
  std::string fqdn;        // the agent's registered FQDN: the CSR's CN
  absl::Duration timeout = absl::Seconds(15);
};

// Renews the identity of `current` over mutual TLS with it: generates a new key here, sends a
// CSR and returns the new credentials (same agent id and CA; the new chain and key). Errors carry
// the controller's status code (PermissionDenied: the controller refuses this agent or the CSR);
// Unavailable when the controller cannot be reached, or refuses the handshake (the identity
// expired); DataLoss when the answer is incomplete or is not for the new key.
absl::StatusOr<Credentials> RenewIdentity(const Credentials& current, const RenewParams& params);

// Work the agent does on a Session's thread while the stream is up, between inventory scans
// (renewing its identity, pruning its journal). Implementations need not be thread-safe: a
// Session calls them from the thread running Session::Run only.
class SessionTask {
 public:
  virtual ~SessionTask() = default;
  // How long until RunDue has work to do; zero or less: now.
  virtual absl::Duration TimeUntilDue() = 0;
  // Does the work that is due (it may block for a while; the stream keeps being served by its
  // reader thread). True asks the session to end the stream, e.g. because a renewed identity
  // must be used from now on; Session::Run then returns OK.
  virtual bool RunDue() = 0;
};

// What a Session does with commands; the agent implements it over its CommandWorker and
// CommandRunner. Thread-safe.
class CommandHandler {
 public:
  using Reporter =
      std::function<void(const std::string& id, const common::model::CommandOutcome* outcome)>;
  virtual ~CommandHandler() = default;
  virtual void Submit(common::model::Command command) = 0;
  virtual void Cancel(absl::string_view id) = 0;
  // The controller stored the outcome of `id`.
  virtual void Acknowledged(absl::string_view id) = 0;
  // Finished outcomes the controller has not acknowledged, oldest first.
  virtual std::vector<std::pair<std::string, common::model::CommandOutcome>> Unreported() = 0;
  // Where progress goes while a stream is up (`outcome` null = started); empty to detach.
  virtual void SetReporter(Reporter reporter) = 0;
};

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
  // `commands` may be null: the session then refuses commands (FailedPrecondition outcome).
  // `task` may be null; when set it must outlive the session and runs on Run's thread.
  Session(const Credentials& credentials, SessionOptions options,
          std::function<absl::StatusOr<inventory::HostInventory>()> scan, CommandHandler* commands,
          SessionTask* task = nullptr);

  // Runs the stream to its end. Returns the stream's final status (OK after Stop, and when the
  // task asked to end the stream). `welcomed` is set true once the controller accepted the
  // Hello.
  absl::Status Run(bool* welcomed);
  void Stop();

 private:
  using Stream =
      grpc::ClientReaderWriter<certfleet::v1::AgentMessage, certfleet::v1::ControllerMessage>;
  void ReadLoop(Stream* stream);
  // Serializes writes from the scan loop, the reader and the command worker.
  bool Write(Stream* stream, const certfleet::v1::AgentMessage& message);
  void SendUnreported(Stream* stream);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<certfleet::v1::AgentGateway::Stub> stub_;
  Credentials credentials_;
  SessionOptions options_;
  std::function<absl::StatusOr<inventory::HostInventory>()> scan_;
  CommandHandler* commands_;
  SessionTask* task_;
  absl::Mutex write_mu_;

  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool resync_ ABSL_GUARDED_BY(mu_) = false;
  bool scan_now_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration controller_interval_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace certfleet::agent::rpc
