#pragma once

// The controller's optional config file (--config FILE, YAML). Everything has an embedded
// default; the file only adds to it:
//
//   default_issuer: builtin            # builtin | manual | a command issuer's name
//   profiles:                          # added to the built-in "scom" profile
//     - name: scom-4096
//       key_bits: 4096                 # 2048 | 3072 | 4096
//       signature_hash: SHA256         # SHA256 | SHA384 | SHA512
//       validity: 730d
//       extra_dns_names: [scom.corp.example]
//       template_name: SCOMAuth        # AD CS template carried in the CSR
//   issuers:
//     - name: corp-ca
//       type: command                  # the certmonger-style contract, docs/issuers.md
//       command: [/usr/local/lib/certfleet/openssl-ca-issue.sh]
//       environment: {CA_DIR: /var/lib/corp-ca}
//       timeout: 60s
//   policy_interval: 30s               # how often the scheduler looks at the fleet; >= 1s
//   retry: {initial: 5m, max: 6h}      # backoff after a failed renewal; 0 < initial <= max
//   windows:                           # maintenance windows, policy/maintenance_window.h
//     - name: weekend-nights
//       spec: "Sat,Sun 01:00-05:00 Europe/Berlin"
//       hard: true                     # true: never outside; false: preferred (default true)
//   policies:                          # first match wins; none = no automatic renewals
//     - name: gateways
//       selector: {role: gateway}      # labels that must all match; omitted = any agent
//       fqdn: "*.dmz.example"          # glob (fnmatch, case-insensitive); omitted = any
//       renew_at_fraction: 0.6667      # of the lifetime, (0, 1]; default 2/3
//       renew_before: 30d              # renew at least this long before expiry; default 30d
//       jitter: 24h                    # spread due times earlier by up to this; default 24h
//       profile: scom                  # scom (default) or a profile above
//       issuer: builtin                # default: default_issuer
//       window: weekend-nights         # optional; must name a window above
//       drift: rebind                  # rebind | report (default report)
//       enabled: true                  # default true
//   rate_limits:                       # per issuer; an issuer without one is unlimited
//     - {issuer: builtin, per_hour: 600, burst: 50}
//   notifications:
//     expiry_thresholds: [30d, 14d, 7d, 1d]   # the default; [] = no expiry notifications
//     webhooks:
//       - name: ops
//         url: http://127.0.0.1:9000/hook      # http or https
//         events: [certificate.expiring, renewal.failed]   # omitted or [] = every event
//         secret_env: CERTFLEET_WEBHOOK_SECRET # optional: variable holding the HMAC key
//         timeout: 5s                          # default 5s
//         max_attempts: 5                      # default 5
//   metrics:
//     listen: 127.0.0.1:9464           # HOST:PORT; omitted or empty = no metrics endpoint

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/profile.h"
#include "controller/policy/maintenance_window.h"
#include "controller/policy/renewal_timing.h"

namespace certfleet::controller::config {

struct CommandIssuerConfig {
  std::string name;
  std::vector<std::string> argv;
  std::map<std::string, std::string> environment;  // extra variables for the program
  absl::Duration timeout = absl::Seconds(60);
};

// A named maintenance window (windows[]).
struct WindowConfig {
  std::string name;
  policy::MaintenanceWindow window;
  bool hard = true;  // true: renew only inside; false: prefer inside
};

// A renewal policy (policies[]): which agents it covers and how their certificates renew.
struct PolicyConfig {
  std::string name;
  std::map<std::string, std::string> selector;  // labels that must all match; empty = any agent
  std::string fqdn_glob;                        // fnmatch glob, case-insensitive; empty = any
  policy::RenewalTiming timing;
  std::string profile = "scom";
  std::string issuer;         // empty = ControllerConfig::default_issuer
  std::string window;         // a WindowConfig name; empty = any time
  bool drift_rebind = false;  // drift: rebind (true) or report (false)
  bool enabled = true;
};

// A per-issuer rate limit (rate_limits[]), for policy::RateBudgets.
struct RateLimitConfig {
  std::string issuer;
  double per_hour = 0;  // > 0
  int burst = 1;        // >= 1
};

// The events a webhook can subscribe to.
inline constexpr absl::string_view kWebhookEvents[] = {
    "certificate.expiring", "drift.detected",    "renewal.failed",
    "campaign.halted",      "campaign.finished", "approval.waiting",
};

// A webhook (notifications.webhooks[]).
struct WebhookConfig {
  std::string name;
  std::string url;                  // http:// or https://
  std::vector<std::string> events;  // from kWebhookEvents; empty = every event
  std::string secret_env;           // name of the variable holding the HMAC key; empty = unsigned
  absl::Duration timeout = absl::Seconds(5);  // > 0
  int max_attempts = 5;                       // >= 1
};

struct ControllerConfig {
  std::string default_issuer = "builtin";
  std::vector<common::model::CertificateProfile> profiles;  // besides "scom"
  std::vector<CommandIssuerConfig> command_issuers;

  absl::Duration policy_interval = absl::Seconds(30);  // >= 1s
  policy::RetryPolicy retry;                           // 0 < initial <= max
  std::vector<WindowConfig> windows;                   // unique names
  std::vector<PolicyConfig> policies;                  // in file order; first match wins
  std::vector<RateLimitConfig> rate_limits;            // at most one per issuer
  // Each > 0, no duplicates, sorted longest first whatever the file's order.
  std::vector<absl::Duration> expiry_thresholds = {absl::Hours(24 * 30), absl::Hours(24 * 14),
                                                   absl::Hours(24 * 7), absl::Hours(24)};
  std::vector<WebhookConfig> webhooks;  // unique names
  std::string metrics_listen;           // HOST:PORT; empty = no metrics endpoint
};

// Parses `text` (YAML). InvalidArgument naming the field and what is wrong
// ("config: policies[1].renew_at_fraction: ..."): unknown keys, wrong types, an invalid profile
// (model::ValidateProfile), a duplicate or reserved name ("scom", "builtin", "manual"), a command
// issuer without a command; a policy_interval under 1s; a retry initial of zero or above max; a
// window without a name or spec or with a bad spec (policy::ParseMaintenanceWindow); a
// duplicate window, policy, rate limit issuer or webhook name; a policy whose window, profile or
// issuer does not exist, whose drift is neither rebind nor report, or whose timing fails
// policy::ValidateRenewalTiming; a rate limit with per_hour <= 0 or burst < 1; an expiry
// threshold that is zero or listed twice; a webhook URL that is not http(s), an unknown event,
// a secret_env that is not a variable name, a zero timeout, max_attempts < 1; a metrics listen
// address that is not HOST:PORT. Durations must be finite.
absl::StatusOr<ControllerConfig> ParseConfig(const std::string& text);
// Reads and parses `path`; errors name the path.
absl::StatusOr<ControllerConfig> LoadConfig(const std::string& path);

// True when an agent with `labels` and `fqdn` falls under `policy`: every selector label is
// present with the same value (exact, case-sensitive), and `fqdn` matches fqdn_glob
// (fnmatch without FNM_PATHNAME, so "*" also matches dots; ASCII case-insensitive). Ignores
// `enabled`. Thread-safe: a pure function.
bool PolicyMatches(const PolicyConfig& policy, const std::map<std::string, std::string>& labels,
                   absl::string_view fqdn);

// The first enabled policy of `config` that matches (PolicyMatches); nullptr when none does.
// The pointer is into `config` and lives as long as it does.
const PolicyConfig* FirstMatchingPolicy(const ControllerConfig& config,
                                        const std::map<std::string, std::string>& labels,
                                        absl::string_view fqdn);

}  // namespace certfleet::controller::config
