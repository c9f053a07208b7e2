#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/executor/executor.h"
#include "common/time/clock.h"
#include "controller/admin/admin_service.h"
#include "controller/ca/controller_pki.h"
#include "controller/commands/command_service.h"
#include "controller/enrollment/enrollment_service.h"
#include "controller/fleet/fleet.h"
#include "controller/rpc/admin_api.h"
#include "controller/rpc/agent_gateway.h"
#include "controller/store/store.h"

namespace certfleet::controller {

struct ControllerOptions {
  std::string state_dir;
  // HOST:PORT; port 0 picks a free port (see Controller::port and DIR/listen.addr).
  std::string listen = "127.0.0.1:7443";
  std::vector<std::string> server_names;
  absl::Duration scan_interval = absl::ZeroDuration();
  int worker_threads = 4;
};

// The controller process: PKI, store, services and the gRPC server (TLS 1.2+, client
// certificates requested and verified against the controller's root; each RPC checks the
// identity it needs).
//
// Thread-safe: Shutdown may be called from any thread, once Start returned.
class Controller {
 public:
  // Creates the state directory content on first use, opens the store and starts serving.
  // Errors: InvalidArgument for a bad listen address, Unavailable when the port cannot be bound,
  // DataLoss for a corrupt state directory.
  static absl::StatusOr<std::unique_ptr<Controller>> Start(const ControllerOptions& options,
                                                           common::Clock& clock);
  ~Controller();

  // The bound port.
  int port() const { return port_; }
  // Blocks until Shutdown.
  void Wait();
  // Stops accepting calls, closes streams (agents reconnect elsewhere or later) and finishes
  // queued work. Idempotent.
  void Shutdown();

 private:
  Controller() = default;

  std::unique_ptr<ca::ControllerPki> pki_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<common::Executor> executor_;
  std::unique_ptr<fleet::Fleet> fleet_;
  std::unique_ptr<commands::CommandService> commands_;
  std::unique_ptr<enrollment::EnrollmentService> enrollment_;
  std::unique_ptr<admin::AdminService> admin_;
  std::unique_ptr<rpc::AgentGatewayService> gateway_service_;
  std::unique_ptr<rpc::AdminApiService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  // Expires commands past their deadline, once a second.
  std::thread sweeper_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

// Splits "HOST:PORT" / "[V6]:PORT". InvalidArgument naming the text otherwise.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(absl::string_view address);

}  // namespace certfleet::controller
