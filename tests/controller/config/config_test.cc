#include "controller/config/config.h"

#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace certfleet::controller::config {
namespace {

TEST(LoadConfig, TheShippedExampleIsValid) {
  auto config = LoadConfig(CERTFLEET_SOURCE_DIR "/deploy/config/controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->policies.size(), 2u);
  EXPECT_EQ(config->windows.size(), 2u);
  EXPECT_EQ(config->webhooks.size(), 1u);
  EXPECT_EQ(config->metrics_listen, "127.0.0.1:9464");
}

TEST(ParseConfig, AnEmptyFileKeepsTheEmbeddedDefaults) {
  auto c = ParseConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_issuer, "builtin");
  EXPECT_TRUE(c->profiles.empty());
  EXPECT_TRUE(c->command_issuers.empty());
}

TEST(ParseConfig, ReadsProfilesAndCommandIssuers) {
  auto c = ParseConfig(R"(
default_issuer: corp-ca
profiles:
  - name: scom-4096
    key_bits: 4096
    validity: 730d
    extra_dns_names: [scom.corp.example]
    template_name: SCOMAuth
issuers:
  - name: corp-ca
    type: command
    command: [/usr/local/bin/issue.sh, /var/lib/ca]
    timeout: 30s
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_issuer, "corp-ca");
  ASSERT_EQ(c->profiles.size(), 1u);
  EXPECT_EQ(c->profiles[0].name, "scom-4096");
  EXPECT_EQ(c->profiles[0].key_bits, 4096);
  EXPECT_EQ(c->profiles[0].validity, absl::Hours(24 * 730));
  EXPECT_EQ(c->profiles[0].extra_dns_names, std::vector<std::string>{"scom.corp.example"});
  EXPECT_EQ(c->profiles[0].template_name, "SCOMAuth");
  // Unset fields keep the scom profile's values.
  EXPECT_EQ(c->profiles[0].signature_hash, "SHA256");
  ASSERT_EQ(c->command_issuers.size(), 1u);
  EXPECT_EQ(c->command_issuers[0].argv,
            (std::vector<std::string>{"/usr/local/bin/issue.sh", "/var/lib/ca"}));
  EXPECT_EQ(c->command_issuers[0].timeout, absl::Seconds(30));
}

void ExpectInvalid(const std::string& yaml, absl::string_view mentions) {
  auto c = ParseConfig(yaml);
  ASSERT_FALSE(c.ok()) << yaml;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(c.status().message(), mentions)) << c.status();
}

TEST(ParseConfig, RejectsBadInputNamingTheField) {
  ExpectInvalid("profiles: [{name: x, key_bits: 1024}]", "key_bits");
  ExpectInvalid("profiles: [{name: x, colour: red}]", "colour");
  ExpectInvalid("profiles: [{name: scom}]", "scom");
  ExpectInvalid("profiles: [{key_bits: 2048}]", "needs a name");
  ExpectInvalid("profiles: [{name: x, validity: soon}]", "validity");
  ExpectInvalid("issuers: [{name: builtin, command: [x]}]", "builtin");
  ExpectInvalid("issuers: [{name: y}]", "command");
  ExpectInvalid("issuers: [{name: y, type: acme, command: [x]}]", "type");
  ExpectInvalid("default_issuer: nowhere", "nowhere");
  ExpectInvalid("surprise: 1", "surprise");
  ExpectInvalid("profiles: [unclosed", "YAML");
}

TEST(ParseConfig, AnEmptyFileHasTheSchedulingDefaults) {
  auto c = ParseConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->policy_interval, absl::Seconds(30));
  EXPECT_EQ(c->retry.initial, absl::Minutes(5));
  EXPECT_EQ(c->retry.max, absl::Hours(6));
  EXPECT_TRUE(c->windows.empty());
  EXPECT_TRUE(c->policies.empty());
  EXPECT_TRUE(c->rate_limits.empty());
  EXPECT_EQ(c->expiry_thresholds,
            (std::vector<absl::Duration>{absl::Hours(24 * 30), absl::Hours(24 * 14),
                                         absl::Hours(24 * 7), absl::Hours(24)}));
  EXPECT_TRUE(c->webhooks.empty());
  EXPECT_EQ(c->metrics_listen, "");
}

constexpr char kSchedulingConfig[] = R"(
profiles:
  - name: scom-4096
    key_bits: 4096
issuers:
  - name: corp-ca
    command: [/usr/local/bin/issue.sh]
policy_interval: 10s
retry: {initial: 1m, max: 2h}
windows:
  - name: weekend-nights
    spec: "Sat,Sun 01:00-05:00 Europe/Berlin"
    hard: true
  - name: weekday-evenings
    spec: "Mon-Fri 18:00-22:00"
    hard: false
policies:
  - name: gateways
    selector: {role: gateway, site: dmz}
    fqdn: "*.dmz.example"
    renew_at_fraction: 0.5
    renew_before: 14d
    jitter: 6h
    profile: scom-4096
    issuer: corp-ca
    window: weekend-nights
    drift: rebind
    enabled: false
  - name: everyone
rate_limits:
  - {issuer: builtin, per_hour: 600, burst: 50}
  - {issuer: corp-ca, per_hour: 2.5, burst: 1}
notifications:
  expiry_thresholds: [7d, 30d, 12h]
  webhooks:
    - name: ops
      url: http://127.0.0.1:9000/hook
      events: [certificate.expiring, renewal.failed]
      secret_env: CERTFLEET_WEBHOOK_SECRET
      timeout: 3s
      max_attempts: 7
    - name: audit
      url: HTTPS://audit.example/certfleet
metrics:
  listen: 127.0.0.1:9464
)";

TEST(ParseConfig, ReadsEverySchedulingSection) {
  auto c = ParseConfig(kSchedulingConfig);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->policy_interval, absl::Seconds(10));
  EXPECT_EQ(c->retry.initial, absl::Minutes(1));
  EXPECT_EQ(c->retry.max, absl::Hours(2));

  ASSERT_EQ(c->windows.size(), 2u);
  EXPECT_EQ(c->windows[0].name, "weekend-nights");
  EXPECT_EQ(c->windows[0].window.zone_name, "Europe/Berlin");
  EXPECT_EQ(c->windows[0].window.start_minute, 60);
  EXPECT_TRUE(c->windows[0].hard);
  EXPECT_EQ(c->windows[1].window.days.size(), 5u);
  EXPECT_FALSE(c->windows[1].hard);

  ASSERT_EQ(c->policies.size(), 2u);
  const PolicyConfig& g = c->policies[0];
  EXPECT_EQ(g.name, "gateways");
  EXPECT_EQ(g.selector, (std::map<std::string, std::string>{{"role", "gateway"}, {"site", "dmz"}}));
  EXPECT_EQ(g.fqdn_glob, "*.dmz.example");
  EXPECT_EQ(g.timing.lifetime_fraction, 0.5);
  EXPECT_EQ(g.timing.lead_time, absl::Hours(24 * 14));
  EXPECT_EQ(g.timing.jitter, absl::Hours(6));
  EXPECT_EQ(g.profile, "scom-4096");
  EXPECT_EQ(g.issuer, "corp-ca");
  EXPECT_EQ(g.window, "weekend-nights");
  EXPECT_TRUE(g.drift_rebind);
  EXPECT_FALSE(g.enabled);

  ASSERT_EQ(c->rate_limits.size(), 2u);
  EXPECT_EQ(c->rate_limits[0].issuer, "builtin");
  EXPECT_EQ(c->rate_limits[0].per_hour, 600);
  EXPECT_EQ(c->rate_limits[0].burst, 50);
  EXPECT_EQ(c->rate_limits[1].issuer, "corp-ca");
  EXPECT_EQ(c->rate_limits[1].per_hour, 2.5);
  EXPECT_EQ(c->rate_limits[1].burst, 1);

  // Sorted longest first.
  EXPECT_EQ(c->expiry_thresholds, (std::vector<absl::Duration>{
                                      absl::Hours(24 * 30), absl::Hours(24 * 7), absl::Hours(12)}));
  ASSERT_EQ(c->webhooks.size(), 2u);
  EXPECT_EQ(c->webhooks[0].name, "ops");
  EXPECT_EQ(c->webhooks[0].url, "http://127.0.0.1:9000/hook");
  EXPECT_EQ(c->webhooks[0].events,
            (std::vector<std::string>{"certificate.expiring", "renewal.failed"}));
  EXPECT_EQ(c->webhooks[0].secret_env, "CERTFLEET_WEBHOOK_SECRET");
  EXPECT_EQ(c->webhooks[0].timeout, absl::Seconds(3));
  EXPECT_EQ(c->webhooks[0].max_attempts, 7);
  EXPECT_TRUE(c->webhooks[1].events.empty());
  EXPECT_EQ(c->webhooks[1].secret_env, "");
  EXPECT_EQ(c->webhooks[1].timeout, absl::Seconds(5));
  EXPECT_EQ(c->webhooks[1].max_attempts, 5);
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
}

TEST(ParseConfig, AnUnsetPolicyFieldTakesItsDefault) {
  auto c = ParseConfig("policies: [{name: everyone}]");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->policies.size(), 1u);
  const PolicyConfig& p = c->policies[0];
  EXPECT_TRUE(p.selector.empty());
  EXPECT_EQ(p.fqdn_glob, "");
  EXPECT_DOUBLE_EQ(p.timing.lifetime_fraction, 2.0 / 3.0);
  EXPECT_EQ(p.timing.lead_time, absl::Hours(24 * 30));
  EXPECT_EQ(p.timing.jitter, absl::Hours(24));
  EXPECT_EQ(p.profile, "scom");
  EXPECT_EQ(p.issuer, "");
  EXPECT_EQ(p.window, "");
  EXPECT_FALSE(p.drift_rebind);
  EXPECT_TRUE(p.enabled);
}

TEST(ParseConfig, AcceptsAnEmptyThresholdListAndAnEmptyMetricsAddress) {
  auto c = ParseConfig(
      "notifications: {expiry_thresholds: []}\nmetrics: {listen: ''}\n"
      "policies: [{name: p, issuer: manual, drift: report, selector: {}}]");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->expiry_thresholds.empty());
  EXPECT_EQ(c->metrics_listen, "");
  EXPECT_EQ(c->policies[0].issuer, "manual");
}

TEST(ParseConfig, AcceptsAnIpv6MetricsAddress) {
  auto c = ParseConfig("metrics: {listen: '[::1]:9464'}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_listen, "[::1]:9464");
}

TEST(ParseConfig, RejectsBadSchedulingSectionsNamingTheField) {
  // policy_interval and retry
  ExpectInvalid("policy_interval: 500ms", "policy_interval: must be at least 1s");
  ExpectInvalid("policy_interval: soon", "policy_interval");
  ExpectInvalid("policy_interval: inf", "policy_interval: must be finite");
  ExpectInvalid("retry: {initial: 0s}", "retry.initial: must be more than zero");
  ExpectInvalid("retry: {initial: 1h, max: 1m}", "retry.max");
  ExpectInvalid("retry: {max: 1m}", "retry.max");
  ExpectInvalid("retry: {initial: 1m, backoff: 2}", "unknown key 'backoff'");
  ExpectInvalid("retry: 5m", "retry: must be a mapping");
  // windows
  ExpectInvalid("windows: {name: w}", "windows: must be a list");
  ExpectInvalid("windows: [{spec: always}]", "windows[0]: needs a name");
  ExpectInvalid("windows: [{name: w}]", "windows[0]: needs a spec");
  ExpectInvalid("windows: [{name: w, spec: 'Mon 01:00-02:00 Europe/Brlin'}]",
                "windows[0].spec: unknown time zone 'Europe/Brlin'");
  ExpectInvalid("windows: [{name: w, spec: 'Mon 25:00-02:00'}]",
                "windows[0].spec: bad start time '25:00'");
  ExpectInvalid("windows: [{name: w, spec: always, hard: maybe}]", "windows[0].hard");
  ExpectInvalid("windows: [{name: w, spec: always}, {name: w, spec: always}]",
                "windows[1].name: window 'w' is defined twice");
  ExpectInvalid("windows: [{name: w, spec: always, soft: true}]", "unknown key 'soft'");
  // policies
  ExpectInvalid("policies: [{fqdn: x}]", "policies[0]: needs a name");
  ExpectInvalid("policies: [{name: ''}]", "policies[0].name: is empty");
  ExpectInvalid("policies: [{name: p, window: nowhere}]",
                "policies[0].window: no window 'nowhere'");
  ExpectInvalid("policies: [{name: p, profile: big}]", "policies[0].profile: no profile 'big'");
  ExpectInvalid("policies: [{name: p, issuer: acme}]", "policies[0].issuer: no issuer 'acme'");
  ExpectInvalid("policies: [{name: a}, {name: b, renew_at_fraction: 1.5}]",
                "policies[1].renew_at_fraction: 1.5 is not in (0, 1]");
  ExpectInvalid("policies: [{name: p, renew_at_fraction: 0}]", "policies[0].renew_at_fraction");
  ExpectInvalid("policies: [{name: p, renew_at_fraction: two-thirds}]",
                "policies[0].renew_at_fraction: 'two-thirds' is not a number");
  ExpectInvalid("policies: [{name: p, renew_at_fraction: .nan}]", "policies[0].renew_at_fraction");
  ExpectInvalid("policies: [{name: p, renew_before: -1d}]", "policies[0].renew_before");
  ExpectInvalid("policies: [{name: p, jitter: inf}]", "policies[0].jitter: must be finite");
  ExpectInvalid("policies: [{name: p, drift: fix}]",
                "policies[0].drift: 'fix' is neither rebind nor report");
  ExpectInvalid("policies: [{name: p, enabled: perhaps}]", "policies[0].enabled");
  ExpectInvalid("policies: [{name: p, selector: [role]}]",
                "policies[0].selector: must be a mapping");
  ExpectInvalid("policies: [{name: p, selector: {role: [a, b]}}]", "policies[0].selector.role");
  ExpectInvalid("policies: [{name: p}, {name: p}]",
                "policies[1].name: policy 'p' is defined twice");
  ExpectInvalid("policies: [{name: p, colour: red}]", "unknown key 'colour'");
  // rate_limits
  ExpectInvalid("rate_limits: [{per_hour: 1, burst: 1}]", "rate_limits[0]: needs an issuer");
  ExpectInvalid("rate_limits: [{issuer: acme, per_hour: 1, burst: 1}]",
                "rate_limits[0].issuer: no issuer 'acme'");
  ExpectInvalid("rate_limits: [{issuer: builtin, burst: 1}]", "rate_limits[0]: needs per_hour");
  ExpectInvalid("rate_limits: [{issuer: builtin, per_hour: 0, burst: 1}]",
                "rate_limits[0].per_hour: must be more than zero");
  ExpectInvalid("rate_limits: [{issuer: builtin, per_hour: -5, burst: 1}]",
                "rate_limits[0].per_hour");
  ExpectInvalid("rate_limits: [{issuer: builtin, per_hour: 1}]", "rate_limits[0]: needs a burst");
  ExpectInvalid("rate_limits: [{issuer: builtin, per_hour: 1, burst: 0}]",
                "rate_limits[0].burst: must be at least 1");
  ExpectInvalid("rate_limits: [{issuer: builtin, per_hour: 1, burst: 1.5}]",
                "rate_limits[0].burst: '1.5' is not a whole number");
  ExpectInvalid(
      "rate_limits: [{issuer: builtin, per_hour: 1, burst: 1}, "
      "{issuer: builtin, per_hour: 2, burst: 2}]",
      "rate_limits[1].issuer: issuer 'builtin' has two rate limits");
  // notifications
  ExpectInvalid("notifications: {expiry_thresholds: [30d, 0s]}",
                "notifications.expiry_thresholds[1]: must be more than zero");
  ExpectInvalid("notifications: {expiry_thresholds: [7d, 168h]}",
                "notifications.expiry_thresholds[1]: 168h is listed twice");
  ExpectInvalid("notifications: {expiry_thresholds: [soon]}", "notifications.expiry_thresholds[0]");
  ExpectInvalid("notifications: {expiry_thresholds: 30d}",
                "notifications.expiry_thresholds: must be a list");
  ExpectInvalid("notifications: {email: [ops@example]}", "unknown key 'email'");
  ExpectInvalid("notifications: {webhooks: [{url: 'http://x/'}]}",
                "notifications.webhooks[0]: needs a name");
  ExpectInvalid("notifications: {webhooks: [{name: ops}]}",
                "notifications.webhooks[0]: needs a url");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'ftp://x/'}]}",
                "notifications.webhooks[0].url: 'ftp://x/' is not an http:// or https:// URL");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'http://'}]}",
                "notifications.webhooks[0].url");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'example.com/hook'}]}",
                "notifications.webhooks[0].url");
  ExpectInvalid(
      "notifications: {webhooks: [{name: ops, url: 'http://x/', events: [certificate.exploded]}]}",
      "notifications.webhooks[0].events: unknown event 'certificate.exploded'");
  ExpectInvalid(
      "notifications: {webhooks: [{name: ops, url: 'http://x/', secret_env: 'hunter2 now'}]}",
      "notifications.webhooks[0].secret_env");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'http://x/', timeout: 0s}]}",
                "notifications.webhooks[0].timeout: must be more than zero");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'http://x/', max_attempts: 0}]}",
                "notifications.webhooks[0].max_attempts: must be at least 1");
  ExpectInvalid("notifications: {webhooks: [{name: ops, url: 'http://x/', secret: abc}]}",
                "unknown key 'secret'");
  ExpectInvalid(
      "notifications: {webhooks: [{name: ops, url: 'http://x/'}, {name: ops, url: 'http://y/'}]}",
      "notifications.webhooks[1].name: webhook 'ops' is defined twice");
  // metrics
  ExpectInvalid("metrics: {listen: localhost}", "metrics.listen: 'localhost' is not HOST:PORT");
  ExpectInvalid("metrics: {listen: '127.0.0.1:99999'}", "metrics.listen");
  ExpectInvalid("metrics: {listen: ':9464'}", "metrics.listen");
  ExpectInvalid("metrics: {listen: '::1:9464'}", "metrics.listen");
  ExpectInvalid("metrics: {port: 9464}", "unknown key 'port'");
}

TEST(ParseConfig, AcceptsEveryKnownWebhookEvent) {
  std::string events;
  for (absl::string_view e : kWebhookEvents) events += std::string(e) + ", ";
  auto c = ParseConfig("notifications: {webhooks: [{name: all, url: 'https://h/', events: [" +
                       events.substr(0, events.size() - 2) + "]}]}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->webhooks[0].events.size(), std::size(kWebhookEvents));
}

PolicyConfig Policy(std::map<std::string, std::string> selector, std::string glob) {
  PolicyConfig p;
  p.selector = std::move(selector);
  p.fqdn_glob = std::move(glob);
  return p;
}

TEST(PolicyMatches, NeedsEverySelectorLabelWithTheSameValue) {
  PolicyConfig p = Policy({{"role", "gateway"}, {"site", "dmz"}}, "");
  EXPECT_TRUE(PolicyMatches(p, {{"role", "gateway"}, {"site", "dmz"}, {"os", "2022"}}, "h"));
  EXPECT_FALSE(PolicyMatches(p, {{"role", "gateway"}}, "h"));
  EXPECT_FALSE(PolicyMatches(p, {{"role", "Gateway"}, {"site", "dmz"}}, "h"));
}

TEST(PolicyMatches, AnEmptySelectorAndGlobMatchAnyAgent) {
  EXPECT_TRUE(PolicyMatches(Policy({}, ""), {}, "anything.example"));
}

TEST(PolicyMatches, MatchesTheFqdnGlobIgnoringCase) {
  PolicyConfig p = Policy({}, "*.DMZ.example");
  EXPECT_TRUE(PolicyMatches(p, {}, "gw1.dmz.EXAMPLE"));
  EXPECT_TRUE(PolicyMatches(p, {}, "a.b.dmz.example"));  // "*" matches dots too
  EXPECT_FALSE(PolicyMatches(p, {}, "dmz.example"));
  EXPECT_FALSE(PolicyMatches(p, {}, "gw1.dmz.example.org"));
  EXPECT_TRUE(PolicyMatches(Policy({}, "ms[0-9].corp.example"), {}, "MS3.corp.example"));
}

TEST(FirstMatchingPolicy, ReturnsTheFirstEnabledMatchInFileOrder) {
  auto c = ParseConfig(R"(
policies:
  - {name: off, selector: {role: gateway}, enabled: false}
  - {name: gateways, selector: {role: gateway}}
  - {name: dmz, fqdn: "*.dmz.example"}
  - {name: rest}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const PolicyConfig* p = FirstMatchingPolicy(*c, {{"role", "gateway"}}, "gw.dmz.example");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "gateways");
  p = FirstMatchingPolicy(*c, {{"role", "server"}}, "ms.dmz.example");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "dmz");
  p = FirstMatchingPolicy(*c, {}, "ms.corp.example");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "rest");
}

TEST(FirstMatchingPolicy, IsNullWhenNothingMatches) {
  auto c = ParseConfig("policies: [{name: gw, selector: {role: gateway}}, {name: x, enabled: no}]");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(FirstMatchingPolicy(*c, {{"role", "server"}}, "ms.example"), nullptr);
  EXPECT_EQ(FirstMatchingPolicy(ControllerConfig{}, {}, "ms.example"), nullptr);
}

}  // namespace
}  // namespace certfleet::controller::config
