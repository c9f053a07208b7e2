#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/executor/executor.h"
#include "common/time/clock.h"
#include "controller/admin/admin_service.h"
#include "controller/audit/audit_log.h"
#include "controller/ca/builtin/builtin_issuer.h"
#include "controller/ca/controller_pki.h"
#include "controller/ca/manual/approval_queue.h"
#include "controller/ca/manual/manual_issuer.h"
#include "controller/campaigns/campaign_service.h"
#include "controller/commands/command_service.h"
#include "controller/config/config.h"
#include "controller/enrollment/enrollment_service.h"
#include "controller/fleet/fleet.h"
#include "controller/metrics/metrics_server.h"
#include "controller/metrics/registry.h"
#include "controller/notify/fanout_notifier.h"
#include "controller/notify/webhook_notifier.h"
#include "controller/policy/rate_budget.h"
#include "controller/renewal/renewal_service.h"
#include "controller/rpc/admin_api.h"
#include "controller/rpc/agent_gateway.h"
#include "controller/rpc/campaign_api.h"
#include "controller/scheduler/policy_scheduler.h"
#include "controller/store/store.h"

namespace certfleet::controller {

struct ControllerOptions {
  std::string state_dir;
  // HOST:PORT; port 0 picks a free port (see Controller::port and DIR/listen.addr).
  std::string listen = "127.0.0.1:7443";
  std::vector<std::string> server_names;
  absl::Duration scan_interval = absl::ZeroDuration();
  int worker_threads = 4;
  // Profiles and issuers beyond the embedded defaults (--config).
  config::ControllerConfig config;
  // How often pending issuers are asked again.
  absl::Duration renewal_poll_interval = absl::Seconds(2);
  // Validity of the agent identities the controller signs (enrollment and renewal); agents
  // renew at about half of it.
  absl::Duration agent_identity_lifetime = absl::Hours(24 * 30);
  // HOST:PORT of the Prometheus endpoint (GET /metrics, plain HTTP); overrides the config
  // file's metrics.listen. Empty and none in the config: no endpoint.
  std::string metrics_listen;
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
  explicit Controller(common::Clock& clock) : clock_(clock) {}
  // Creates the command issuers `config` names.
  absl::Status AddCommandIssuers(const config::ControllerConfig& config);

  // automation.cc: the metric registry, with every issuer wrapped to time its answers. Call
  // after the issuers exist and before the services that use them.
  void SetUpMetrics();
  // automation.cc: notifications, campaigns, the policy scheduler, the metrics endpoint. Call
  // after the renewal service exists and before the gRPC server is built.
  absl::Status StartAutomation(const ControllerOptions& options);
  // automation.cc: one scheduler pass on the executor, unless one is still running.
  void PostSchedulerPass();
  // automation.cc: renewal job state changes -> campaigns, metrics, notifications.
  void OnRenewalState(const store::RenewalRecord& record);

  common::Clock& clock_;
  std::unique_ptr<ca::ControllerPki> pki_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<common::Executor> executor_;
  std::unique_ptr<fleet::Fleet> fleet_;
  std::unique_ptr<commands::CommandService> commands_;
  std::unique_ptr<ca::BuiltinIssuer> builtin_issuer_;
  std::unique_ptr<ca::ManualIssuer> manual_issuer_;
  std::vector<std::unique_ptr<ca::Issuer>> command_issuers_;
  std::unique_ptr<ca::ApprovalQueue> approvals_;
  std::map<std::string, ca::Issuer*> issuers_;
  std::map<std::string, common::model::CertificateProfile> profiles_;
  std::unique_ptr<renewal::RenewalService> renewals_;
  std::unique_ptr<enrollment::EnrollmentService> enrollment_;
  std::unique_ptr<admin::AdminService> admin_;
  std::unique_ptr<rpc::AgentGatewayService> gateway_service_;
  std::unique_ptr<rpc::AdminApiService> admin_service_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<metrics::Registry> metrics_;
  metrics::Counter* renewals_total_ = nullptr;  // in metrics_
  std::vector<std::unique_ptr<ca::Issuer>> timed_issuers_;
  config::ControllerConfig config_;
  std::map<std::string, config::WindowConfig> windows_;
  std::vector<notify::WebhookNotifier*> webhooks_;  // owned by notifier_
  std::unique_ptr<notify::FanoutNotifier> notifier_;
  std::unique_ptr<policy::RateBudgets> budgets_;
  std::unique_ptr<campaigns::CampaignService> campaigns_;
  std::unique_ptr<scheduler::PolicyScheduler> scheduler_;
  std::unique_ptr<rpc::CampaignApiService> campaign_service_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::atomic<bool> scheduler_busy_{false};
  absl::Time next_scheduler_pass_ = absl::InfinitePast();  // sweeper thread only
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
