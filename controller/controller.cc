#include "controller/controller.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "controller/ca/command/command_issuer.h"
#include "controller/store/sqlite/sqlite_store.h"

namespace certfleet::controller {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(absl::string_view address) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not HOST:PORT (e.g. 127.0.0.1:7443 or [::1]:7443)"));
  };
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad();
  absl::string_view host = address.substr(0, colon);
  int port = 0;
  absl::string_view port_text = address.substr(colon + 1);
  // Digits only: SimpleAtoi also takes "+7443" and "7443 ", and gRPC cannot bind the latter
  // (Start would then blame the port with Unavailable instead of this InvalidArgument).
  for (char ch : port_text) {
    if (ch < '0' || ch > '9') return bad();
  }
  if (port_text.size() > 5 || !absl::SimpleAtoi(port_text, &port) || port > 65535) return bad();
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return bad();
  }
  return std::make_pair(std::string(host), port);
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Start(const ControllerOptions& options,
                                                              common::Clock& clock) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("--state-dir is required");
  CF_ASSIGN_OR_RETURN(auto host_port, SplitHostPort(options.listen));
  CF_RETURN_IF_ERROR(common::MakeDirectories(options.state_dir, 0700), "state directory");

  auto c = std::unique_ptr<Controller>(new Controller(clock));
  ca::ControllerPkiOptions pki_options;
  pki_options.state_dir = options.state_dir;
  pki_options.server_names = options.server_names;
  pki_options.agent_identity_lifetime = options.agent_identity_lifetime;
  if (host_port.first != "0.0.0.0" && host_port.first != "::") {
    pki_options.server_names.push_back(host_port.first);
  }
  CF_ASSIGN_OR_RETURN(c->pki_, ca::ControllerPki::LoadOrCreate(pki_options, clock),
                      "controller PKI in ", options.state_dir);
  store::SqliteStore::Options store_options;
  store_options.path = options.state_dir + "/controller.db";
  CF_ASSIGN_OR_RETURN(c->store_, store::SqliteStore::Open(store_options));
  CF_ASSIGN_OR_RETURN(c->audit_, audit::AuditLog::Open(options.state_dir, *c->store_, clock));
  c->executor_ = std::make_unique<common::Executor>(options.worker_threads);
  c->fleet_ = std::make_unique<fleet::Fleet>(*c->store_, clock);
  c->commands_ = std::make_unique<commands::CommandService>(*c->store_, *c->fleet_, clock);

  // Issuers and profiles: the embedded ones, then the config file's.
  c->builtin_issuer_ =
      std::make_unique<ca::BuiltinIssuer>(ca::BuiltinIssuerDeps{*c->pki_, *c->store_, clock});
  ca::ManualIssuerOptions manual_options;
  manual_options.poll_interval = options.renewal_poll_interval;
  c->manual_issuer_ = std::make_unique<ca::ManualIssuer>(
      ca::ManualIssuerDeps{*c->store_, *c->builtin_issuer_, clock}, manual_options);
  c->approvals_ = std::make_unique<ca::ApprovalQueue>(ca::ApprovalQueueDeps{*c->store_, clock});
  c->issuers_[c->builtin_issuer_->Name()] = c->builtin_issuer_.get();
  c->issuers_[c->manual_issuer_->Name()] = c->manual_issuer_.get();
  CF_RETURN_IF_ERROR(c->AddCommandIssuers(options.config));
  c->profiles_["scom"] = common::model::ScomProfile();
  for (const auto& p : options.config.profiles) c->profiles_[p.name] = p;
  c->SetUpMetrics();
  renewal::RenewalOptions renewal_options;
  renewal_options.default_issuer = options.config.default_issuer;
  renewal_options.poll_interval = options.renewal_poll_interval;
  c->renewals_ = std::make_unique<renewal::RenewalService>(
      renewal::RenewalDeps{*c->store_, *c->commands_, *c->executor_, clock, c->issuers_,
                           c->profiles_},
      renewal_options);
  renewal::RenewalService* renewals = c->renewals_.get();
  c->commands_->SetFinalListener(
      [renewals](const store::CommandRecord& record) { renewals->OnCommandFinal(record); });
  CF_RETURN_IF_ERROR(c->StartAutomation(options));
  c->enrollment_ = std::make_unique<enrollment::EnrollmentService>(*c->store_, *c->pki_, clock);
  c->admin_ = std::make_unique<admin::AdminService>(*c->store_, *c->fleet_, *c->enrollment_, clock);
  rpc::AgentGatewayOptions gw_options;
  gw_options.scan_interval = options.scan_interval;
  c->gateway_service_ = std::make_unique<rpc::AgentGatewayService>(
      rpc::AgentGatewayDeps{*c->enrollment_, *c->fleet_, *c->commands_, *c->executor_}, gw_options);
  c->admin_service_ = std::make_unique<rpc::AdminApiService>(
      *c->admin_, *c->commands_, *c->renewals_, *c->approvals_, *c->executor_, *c->audit_);

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = c->pki_->RootPem();
  ssl.pem_key_cert_pairs.push_back({c->pki_->ServerKeyPem(), c->pki_->ServerChainPem()});

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::SslServerCredentials(ssl), &c->port_);
  builder.RegisterService(c->gateway_service_.get());
  builder.RegisterService(c->admin_service_.get());
  builder.RegisterService(c->campaign_service_.get());
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  // gRPC sets SO_REUSEPORT by default: a second controller would then share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  c->server_ = builder.BuildAndStart();
  if (!c->server_ || c->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or not local?)"));
  }
  std::string bound = host_port.first.find(':') != std::string::npos
                          ? absl::StrCat("[", host_port.first, "]:", c->port_)
                          : absl::StrCat(host_port.first, ":", c->port_);
  CF_RETURN_IF_ERROR(
      common::WriteFileAtomically(options.state_dir + "/listen.addr", bound + "\n", 0644));
  common::LogInfo("controller listening on ", bound, " (state in ", options.state_dir, ")");
  Controller* self = c.get();
  c->sweeper_ = std::thread([self] {
    while (true) {
      {
        absl::MutexLock lock(&self->shutdown_mu_);
        auto stopping = [self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->shutdown_mu_) {
          return self->shut_down_;
        };
        if (self->shutdown_mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Seconds(1))) {
          return;
        }
      }
      self->executor_->Post([self] {
        if (auto n = self->commands_->ExpireDue(); !n.ok()) {
          common::LogError("expiring commands: ", n.status().ToString());
        }
        // Resumes jobs a restart interrupted, polls pending issuers.
        self->renewals_->Tick();
        // Follows campaigns: starts hosts, applies gates, soak and deadlines.
        self->campaigns_->Tick();
      });
      self->PostSchedulerPass();
    }
  });
  return c;
}

absl::Status Controller::AddCommandIssuers(const config::ControllerConfig& config) {
  for (const auto& c : config.command_issuers) {
    ca::CommandIssuerOptions options;
    options.name = c.name;
    options.argv = c.argv;
    options.environment = c.environment;
    options.timeout = c.timeout;
    CF_ASSIGN_OR_RETURN(std::unique_ptr<ca::CommandIssuer> issuer,
                        ca::CommandIssuer::Create(options, ca::CommandIssuerDeps{clock_}),
                        "issuer ", c.name);
    issuers_[issuer->Name()] = issuer.get();
    command_issuers_.push_back(std::move(issuer));
  }
  return absl::OkStatus();
}

Controller::~Controller() { Shutdown(); }

void Controller::Wait() {
  if (server_) server_->Wait();
}

void Controller::Shutdown() {
  {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_) {
    common::LogInfo("controller shutting down");
    // Agent streams never end on their own; close them so Shutdown need not wait them out.
    if (fleet_) fleet_->CloseAll();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (sweeper_.joinable()) sweeper_.join();
  if (executor_) executor_->Shutdown();
}

}  // namespace certfleet::controller
