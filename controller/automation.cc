// The controller's fleet automation (issue 5): metrics, webhooks, campaigns and the policy
// scheduler, wired over the services controller.cc builds.

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/model/renewal.h"
#include "common/status/status_macros.h"
#include "controller/ca/timed_issuer.h"
#include "controller/controller.h"

namespace certfleet::controller {

void Controller::SetUpMetrics() {
  metrics_ = std::make_unique<metrics::Registry>();
  metrics::Histogram& latency = metrics_->Histogram(
      "certfleet_issuer_latency_seconds", "Time an issuer took to answer a submit or poll.",
      {"issuer"}, metrics::ExponentialBuckets(0.001, 2.5, 12));
  for (auto& [name, issuer] : issuers_) {
    auto timed = std::make_unique<ca::TimedIssuer>(
        *issuer, [&latency](const std::string& issuer_name, absl::Duration took) {
          latency.Observe({issuer_name}, absl::ToDoubleSeconds(took));
        });
    issuer = timed.get();
    timed_issuers_.push_back(std::move(timed));
  }
  renewals_total_ =
      &metrics_->Counter("certfleet_renewals_total", "Renewal jobs finished, by issuer and result.",
                         {"issuer", "result"});
}

absl::Status Controller::StartAutomation(const ControllerOptions& options) {
  config_ = options.config;
  for (const auto& w : config_.windows) windows_[w.name] = w;

  // Webhooks: the HMAC key comes from the environment, never from the file.
  std::vector<std::unique_ptr<notify::Notifier>> targets;
  for (const config::WebhookConfig& w : config_.webhooks) {
    notify::WebhookOptions o;
    o.name = w.name;
    o.url = w.url;
    o.events = w.events;
    o.timeout = w.timeout;
    o.max_attempts = w.max_attempts;
    if (!w.secret_env.empty()) {
      const char* key = std::getenv(w.secret_env.c_str());
      if (key == nullptr || *key == '\0') {
        return absl::InvalidArgumentError(absl::StrCat("webhook ", w.name,
                                                       ": environment variable ", w.secret_env,
                                                       " (secret_env) is not set"));
      }
      o.hmac_key = key;
    }
    CF_ASSIGN_OR_RETURN(std::unique_ptr<notify::WebhookNotifier> hook,
                        notify::WebhookNotifier::Create(o, notify::WebhookDeps{clock_}), "webhook ",
                        w.name);
    webhooks_.push_back(hook.get());
    targets.push_back(std::move(hook));
  }
  notifier_ = std::make_unique<notify::FanoutNotifier>(std::move(targets));

  budgets_ = std::make_unique<policy::RateBudgets>(clock_);
  for (const auto& r : config_.rate_limits) budgets_->Set(r.issuer, r.per_hour, r.burst);

  campaigns::CampaignOptions campaign_options;
  campaign_options.default_issuer = config_.default_issuer;
  campaigns_ = std::make_unique<campaigns::CampaignService>(
      campaigns::CampaignDeps{*store_, *renewals_, *commands_, *fleet_, *executor_, clock_,
                              profiles_, issuers_, windows_, audit_.get(), notifier_.get()},
      campaign_options);
  scheduler_ = std::make_unique<scheduler::PolicyScheduler>(
      scheduler::SchedulerDeps{*store_, *renewals_, *commands_, *fleet_, clock_, config_, *budgets_,
                               campaigns_.get(), audit_.get(),
                               // Without a webhook nothing is remembered as sent, so expiry
                               // notices still go out once one is configured.
                               webhooks_.empty() ? nullptr : notifier_.get()});
  campaign_service_ = std::make_unique<rpc::CampaignApiService>(*campaigns_, *executor_);
  renewals_->SetStateListener(
      [this](const store::RenewalRecord& record) { OnRenewalState(record); });

  // Metrics computed at scrape time, from the fleet and the store (on the HTTP thread).
  metrics_->CollectedGauge("certfleet_agents_connected", "Agents with an open stream.", {});
  metrics_->CollectedGauge("certfleet_agents_total", "Agents enrolled.", {});
  metrics_->CollectedGauge("certfleet_certificate_expiration_timestamp_seconds",
                           "The notAfter of each certificate in a host's personal store, in Unix "
                           "seconds.",
                           {"agent_id", "fqdn", "store", "thumbprint", "subject"});
  metrics_->CollectedGauge(
      "certfleet_certificate_ready_status",
      "1 on the condition that says whether the host's bound certificate is compliant.",
      {"agent_id", "fqdn", "thumbprint", "condition"});
  metrics_->CollectedGauge("certfleet_campaign_hosts", "Hosts of each campaign by state.",
                           {"campaign", "state"});
  metrics_->CollectedCounter("certfleet_webhook_deliveries_total",
                             "Webhook events delivered, failed attempts and dropped events.",
                             {"webhook", "result"});
  metrics_->AddCollector([this](metrics::Snapshot& snapshot) {
    snapshot.Set("certfleet_agents_connected", {}, static_cast<double>(fleet_->ConnectedCount()));
    auto agents = store_->ListAgents();
    if (!agents.ok()) return;
    snapshot.Set("certfleet_agents_total", {}, static_cast<double>(agents->size()));
    std::map<std::string, std::string> fqdn_of;
    for (const auto& a : *agents) fqdn_of[a.id] = a.fqdn;
    auto certs = store_->ListCertificates(store::CertificateFilter{});
    if (certs.ok()) {
      for (const auto& c : *certs) {
        if (c.store != "My") continue;
        const std::string& fqdn = fqdn_of[c.agent_id];
        snapshot.Set("certfleet_certificate_expiration_timestamp_seconds",
                     {c.agent_id, fqdn, c.store, c.info.thumbprint, c.info.subject},
                     static_cast<double>(absl::ToUnixSeconds(c.info.not_after)));
        if (!c.bound) continue;
        const bool ready = c.problems.empty() && c.drift.empty();
        snapshot.Set("certfleet_certificate_ready_status",
                     {c.agent_id, fqdn, c.info.thumbprint, "True"}, ready ? 1 : 0);
        snapshot.Set("certfleet_certificate_ready_status",
                     {c.agent_id, fqdn, c.info.thumbprint, "False"}, ready ? 0 : 1);
      }
    }
    auto all = store_->ListCampaigns();
    if (all.ok()) {
      for (const auto& c : *all) {
        auto view = campaigns_->Get(c.id);
        if (!view.ok()) continue;
        std::map<std::string, int> totals;
        for (const auto& t : view->targets) {
          ++totals[std::string(common::model::TargetStateName(t.state))];
        }
        for (const auto& [state, n] : totals) {
          snapshot.Set("certfleet_campaign_hosts", {c.id, state}, n);
        }
      }
    }
    for (const notify::WebhookNotifier* hook : webhooks_) {
      notify::WebhookStats stats = hook->Stats();
      snapshot.Set("certfleet_webhook_deliveries_total", {hook->name(), "delivered"},
                   static_cast<double>(stats.delivered));
      snapshot.Set("certfleet_webhook_deliveries_total", {hook->name(), "failed_attempt"},
                   static_cast<double>(stats.failed_attempts));
      snapshot.Set("certfleet_webhook_deliveries_total", {hook->name(), "dropped"},
                   static_cast<double>(stats.dropped));
    }
  });
  const std::string listen =
      options.metrics_listen.empty() ? config_.metrics_listen : options.metrics_listen;
  if (!listen.empty()) {
    CF_ASSIGN_OR_RETURN(metrics_server_, metrics::MetricsServer::Start(listen, *metrics_),
                        "metrics endpoint");
    // Like listen.addr: where the endpoint really is when the port was 0.
    const std::string bound =
        absl::StrCat(listen.substr(0, listen.rfind(':')), ":", metrics_server_->port());
    CF_RETURN_IF_ERROR(
        common::WriteFileAtomically(options.state_dir + "/metrics.addr", bound + "\n", 0644));
    common::LogInfo("metrics at http://", bound, "/metrics");
  }
  if (config_.policies.empty()) {
    common::LogInfo(
        "no renewal policies configured: renewals run only when started "
        "(certfleetctl renew, campaigns)");
  } else {
    common::LogInfo(config_.policies.size(), " renewal policies; the scheduler looks every ",
                    absl::FormatDuration(config_.policy_interval));
  }
  return absl::OkStatus();
}

void Controller::PostSchedulerPass() {
  const absl::Time now = clock_.Now();
  if (now < next_scheduler_pass_) return;
  next_scheduler_pass_ = now + config_.policy_interval;
  if (scheduler_busy_.exchange(true)) return;
  bool posted = executor_->Post([this] {
    absl::StatusOr<scheduler::PassResult> pass = scheduler_->Pass();
    if (!pass.ok()) common::LogError("scheduler: ", pass.status().ToString());
    scheduler_busy_ = false;
  });
  if (!posted) scheduler_busy_ = false;
}

void Controller::OnRenewalState(const store::RenewalRecord& record) {
  using common::model::RenewalState;
  campaigns_->OnRenewalState(record);
  if (common::model::IsTerminal(record.state)) {
    renewals_total_->Inc(
        {record.issuer, std::string(common::model::RenewalStateName(record.state))});
  }
  notify::Event e;
  e.at = clock_.Now();
  e.subject = record.fqdn;
  e.fields = {{"renewal", record.id},
              {"agent_id", record.agent_id},
              {"fqdn", record.fqdn},
              {"issuer", record.issuer},
              {"state", std::string(common::model::RenewalStateName(record.state))},
              {"created_by", record.created_by}};
  if (record.state == RenewalState::kFailed || record.state == RenewalState::kRolledBack) {
    e.type = "renewal.failed";
    e.summary =
        absl::StrCat("renewal of ", record.fqdn, " ", common::model::RenewalStateName(record.state),
                     ": ", record.failure_reason);
    e.fields["reason"] = record.failure_reason;
    notifier_->Notify(e);
  } else if (record.state == RenewalState::kPendingApproval) {
    e.type = "approval.waiting";
    e.summary =
        absl::StrCat("the renewal of ", record.fqdn, " waits for an officer: request ",
                     record.approval_request_id, " (certfleetctl requests approve|deny|fulfill)");
    e.fields["request"] = record.approval_request_id;
    notifier_->Notify(e);
  }
}

}  // namespace certfleet::controller
