#include "controller/config/config.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/files/file_util.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "yaml-cpp/yaml.h"

namespace certfleet::controller::config {
namespace {

absl::Status Bad(absl::string_view where, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", where, ": ", why));
}

absl::Status CheckKeys(const YAML::Node& node, absl::string_view where,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) return Bad(where, "must be a mapping");
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) return Bad(where, absl::StrCat("unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Scalar(const YAML::Node& node, absl::string_view where) {
  if (!node.IsScalar()) return Bad(where, "must be a single value");
  return node.as<std::string>();
}

absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node,
                                                    absl::string_view where) {
  if (!node.IsSequence()) return Bad(where, "must be a list");
  std::vector<std::string> out;
  for (const auto& item : node) {
    CF_ASSIGN_OR_RETURN(std::string s, Scalar(item, where));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<bool> Bool(const YAML::Node& node, absl::string_view where) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return Bad(where, "must be true or false");
  }
  return value;
}

absl::StatusOr<double> Double(const YAML::Node& node, absl::string_view where) {
  CF_ASSIGN_OR_RETURN(std::string text, Scalar(node, where));
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return Bad(where, absl::StrCat("'", text, "' is not a number"));
  }
  return value;
}

absl::StatusOr<int> Int(const YAML::Node& node, absl::string_view where) {
  CF_ASSIGN_OR_RETURN(std::string text, Scalar(node, where));
  int value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return Bad(where, absl::StrCat("'", text, "' is not a whole number"));
  }
  return value;
}

// A finite duration (common::ParseHumanDuration: "90s", "1h30m", "30d").
absl::StatusOr<absl::Duration> FiniteDuration(const YAML::Node& node, const std::string& where) {
  CF_ASSIGN_OR_RETURN(std::string text, Scalar(node, where));
  CF_ASSIGN_OR_RETURN(absl::Duration d, common::ParseHumanDuration(text), "config: ", where);
  if (d == absl::InfiniteDuration()) return Bad(where, "must be finite");
  return d;
}

absl::Status CheckList(const YAML::Node& node, absl::string_view where) {
  if (!node.IsSequence()) return Bad(where, "must be a list");
  return absl::OkStatus();
}

// A required, non-empty `name`.
absl::StatusOr<std::string> Name(const YAML::Node& node, const std::string& where) {
  if (!node["name"]) return Bad(where, "needs a name");
  CF_ASSIGN_OR_RETURN(std::string name, Scalar(node["name"], where + ".name"));
  if (name.empty()) return Bad(where + ".name", "is empty");
  return name;
}

bool IsEnvironmentVariableName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// "HOST:PORT" or "[IPV6]:PORT", port 0..65535.
bool IsListenAddress(absl::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view host = address.substr(0, colon);
  absl::string_view port = address.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
  } else if (absl::StrContains(host, ':') || absl::StrContains(host, ']')) {
    return false;  // an IPv6 address needs brackets
  }
  int number = 0;
  return !port.empty() && port.size() <= 5 &&
         std::all_of(port.begin(), port.end(),
                     [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) &&
         absl::SimpleAtoi(port, &number) && number <= 65535;
}

bool IsHttpUrl(absl::string_view url) {
  std::string lower = absl::AsciiStrToLower(url);
  absl::string_view rest = lower;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return false;
  }
  if (rest.empty() || rest.front() == '/') return false;
  return std::none_of(url.begin(), url.end(),
                      [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); });
}

absl::Status ParseSchedulingTop(const YAML::Node& root, ControllerConfig& config) {
  if (root["policy_interval"]) {
    CF_ASSIGN_OR_RETURN(config.policy_interval,
                        FiniteDuration(root["policy_interval"], "policy_interval"));
    if (config.policy_interval < absl::Seconds(1)) {
      return Bad("policy_interval", "must be at least 1s");
    }
  }
  if (root["retry"]) {
    const YAML::Node& node = root["retry"];
    CF_RETURN_IF_ERROR(CheckKeys(node, "retry", {"initial", "max"}));
    if (node["initial"]) {
      CF_ASSIGN_OR_RETURN(config.retry.initial, FiniteDuration(node["initial"], "retry.initial"));
    }
    if (node["max"]) {
      CF_ASSIGN_OR_RETURN(config.retry.max, FiniteDuration(node["max"], "retry.max"));
    }
    if (config.retry.initial <= absl::ZeroDuration()) {
      return Bad("retry.initial", "must be more than zero");
    }
    if (config.retry.max < config.retry.initial) {
      return Bad("retry.max", absl::StrCat(absl::FormatDuration(config.retry.max),
                                           " is shorter than retry.initial ",
                                           absl::FormatDuration(config.retry.initial)));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseWindows(const YAML::Node& root, ControllerConfig& config) {
  if (!root["windows"]) return absl::OkStatus();
  CF_RETURN_IF_ERROR(CheckList(root["windows"], "windows"));
  std::set<std::string> names;
  int i = 0;
  for (const auto& node : root["windows"]) {
    std::string where = absl::StrCat("windows[", i++, "]");
    CF_RETURN_IF_ERROR(CheckKeys(node, where, {"name", "spec", "hard"}));
    WindowConfig w;
    CF_ASSIGN_OR_RETURN(w.name, Name(node, where));
    if (!node["spec"]) return Bad(where, "needs a spec");
    CF_ASSIGN_OR_RETURN(std::string spec, Scalar(node["spec"], where + ".spec"));
    CF_ASSIGN_OR_RETURN(w.window, policy::ParseMaintenanceWindow(spec), "config: ", where, ".spec");
    if (node["hard"]) {
      CF_ASSIGN_OR_RETURN(w.hard, Bool(node["hard"], where + ".hard"));
    }
    if (!names.insert(w.name).second) {
      return Bad(where + ".name", absl::StrCat("window '", w.name, "' is defined twice"));
    }
    config.windows.push_back(std::move(w));
  }
  return absl::OkStatus();
}

absl::Status ParsePolicies(const YAML::Node& root, const std::set<std::string>& profiles,
                           const std::set<std::string>& issuers, ControllerConfig& config) {
  if (!root["policies"]) return absl::OkStatus();
  CF_RETURN_IF_ERROR(CheckList(root["policies"], "policies"));
  std::set<std::string> windows;
  for (const WindowConfig& w : config.windows) windows.insert(w.name);
  std::set<std::string> names;
  int i = 0;
  for (const auto& node : root["policies"]) {
    std::string where = absl::StrCat("policies[", i++, "]");
    CF_RETURN_IF_ERROR(CheckKeys(node, where,
                                 {"name", "selector", "fqdn", "renew_at_fraction", "renew_before",
                                  "jitter", "profile", "issuer", "window", "drift", "enabled"}));
    PolicyConfig p;
    CF_ASSIGN_OR_RETURN(p.name, Name(node, where));
    if (node["selector"] && !node["selector"].IsNull()) {
      if (!node["selector"].IsMap()) return Bad(where + ".selector", "must be a mapping");
      for (const auto& kv : node["selector"]) {
        std::string key = kv.first.as<std::string>();
        CF_ASSIGN_OR_RETURN(p.selector[key], Scalar(kv.second, where + ".selector." + key));
      }
    }
    if (node["fqdn"]) {
      CF_ASSIGN_OR_RETURN(p.fqdn_glob, Scalar(node["fqdn"], where + ".fqdn"));
    }
    if (node["renew_at_fraction"]) {
      std::string field = where + ".renew_at_fraction";
      CF_ASSIGN_OR_RETURN(p.timing.lifetime_fraction, Double(node["renew_at_fraction"], field));
      if (!(p.timing.lifetime_fraction > 0 && p.timing.lifetime_fraction <= 1)) {
        return Bad(field, absl::StrCat(p.timing.lifetime_fraction, " is not in (0, 1]"));
      }
    }
    if (node["renew_before"]) {
      CF_ASSIGN_OR_RETURN(p.timing.lead_time,
                          FiniteDuration(node["renew_before"], where + ".renew_before"));
    }
    if (node["jitter"]) {
      CF_ASSIGN_OR_RETURN(p.timing.jitter, FiniteDuration(node["jitter"], where + ".jitter"));
    }
    CF_RETURN_IF_ERROR(policy::ValidateRenewalTiming(p.timing), "config: ", where);
    if (node["profile"]) {
      CF_ASSIGN_OR_RETURN(p.profile, Scalar(node["profile"], where + ".profile"));
      if (!profiles.count(p.profile)) {
        return Bad(where + ".profile", absl::StrCat("no profile '", p.profile, "'"));
      }
    }
    if (node["issuer"]) {
      CF_ASSIGN_OR_RETURN(p.issuer, Scalar(node["issuer"], where + ".issuer"));
      if (!issuers.count(p.issuer)) {
        return Bad(where + ".issuer", absl::StrCat("no issuer '", p.issuer, "'"));
      }
    }
    if (node["window"]) {
      CF_ASSIGN_OR_RETURN(p.window, Scalar(node["window"], where + ".window"));
      if (!windows.count(p.window)) {
        return Bad(where + ".window", absl::StrCat("no window '", p.window, "'"));
      }
    }
    if (node["drift"]) {
      CF_ASSIGN_OR_RETURN(std::string drift, Scalar(node["drift"], where + ".drift"));
      if (drift != "rebind" && drift != "report") {
        return Bad(where + ".drift", absl::StrCat("'", drift, "' is neither rebind nor report"));
      }
      p.drift_rebind = drift == "rebind";
    }
    if (node["enabled"]) {
      CF_ASSIGN_OR_RETURN(p.enabled, Bool(node["enabled"], where + ".enabled"));
    }
    if (!names.insert(p.name).second) {
      return Bad(where + ".name", absl::StrCat("policy '", p.name, "' is defined twice"));
    }
    config.policies.push_back(std::move(p));
  }
  return absl::OkStatus();
}

absl::Status ParseRateLimits(const YAML::Node& root, const std::set<std::string>& issuers,
                             ControllerConfig& config) {
  if (!root["rate_limits"]) return absl::OkStatus();
  CF_RETURN_IF_ERROR(CheckList(root["rate_limits"], "rate_limits"));
  std::set<std::string> seen;
  int i = 0;
  for (const auto& node : root["rate_limits"]) {
    std::string where = absl::StrCat("rate_limits[", i++, "]");
    CF_RETURN_IF_ERROR(CheckKeys(node, where, {"issuer", "per_hour", "burst"}));
    RateLimitConfig r;
    if (!node["issuer"]) return Bad(where, "needs an issuer");
    CF_ASSIGN_OR_RETURN(r.issuer, Scalar(node["issuer"], where + ".issuer"));
    if (!issuers.count(r.issuer)) {
      return Bad(where + ".issuer", absl::StrCat("no issuer '", r.issuer, "'"));
    }
    if (!seen.insert(r.issuer).second) {
      return Bad(where + ".issuer", absl::StrCat("issuer '", r.issuer, "' has two rate limits"));
    }
    if (!node["per_hour"]) return Bad(where, "needs per_hour");
    CF_ASSIGN_OR_RETURN(r.per_hour, Double(node["per_hour"], where + ".per_hour"));
    if (!(r.per_hour > 0)) return Bad(where + ".per_hour", "must be more than zero");
    if (!node["burst"]) return Bad(where, "needs a burst");
    CF_ASSIGN_OR_RETURN(r.burst, Int(node["burst"], where + ".burst"));
    if (r.burst < 1) return Bad(where + ".burst", "must be at least 1");
    config.rate_limits.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status ParseNotifications(const YAML::Node& root, ControllerConfig& config) {
  if (!root["notifications"]) return absl::OkStatus();
  const YAML::Node& notifications = root["notifications"];
  CF_RETURN_IF_ERROR(CheckKeys(notifications, "notifications", {"expiry_thresholds", "webhooks"}));
  if (notifications["expiry_thresholds"]) {
    const YAML::Node& list = notifications["expiry_thresholds"];
    CF_RETURN_IF_ERROR(CheckList(list, "notifications.expiry_thresholds"));
    config.expiry_thresholds.clear();
    int i = 0;
    for (const auto& node : list) {
      std::string where = absl::StrCat("notifications.expiry_thresholds[", i++, "]");
      CF_ASSIGN_OR_RETURN(absl::Duration d, FiniteDuration(node, where));
      if (d <= absl::ZeroDuration()) return Bad(where, "must be more than zero");
      if (std::find(config.expiry_thresholds.begin(), config.expiry_thresholds.end(), d) !=
          config.expiry_thresholds.end()) {
        return Bad(where, absl::StrCat(absl::FormatDuration(d), " is listed twice"));
      }
      config.expiry_thresholds.push_back(d);
    }
    std::sort(config.expiry_thresholds.begin(), config.expiry_thresholds.end(),
              std::greater<absl::Duration>());
  }
  if (notifications["webhooks"]) {
    CF_RETURN_IF_ERROR(CheckList(notifications["webhooks"], "notifications.webhooks"));
    std::set<std::string> names;
    int i = 0;
    for (const auto& node : notifications["webhooks"]) {
      std::string where = absl::StrCat("notifications.webhooks[", i++, "]");
      CF_RETURN_IF_ERROR(CheckKeys(
          node, where, {"name", "url", "events", "secret_env", "timeout", "max_attempts"}));
      WebhookConfig w;
      CF_ASSIGN_OR_RETURN(w.name, Name(node, where));
      if (!names.insert(w.name).second) {
        return Bad(where + ".name", absl::StrCat("webhook '", w.name, "' is defined twice"));
      }
      if (!node["url"]) return Bad(where, "needs a url");
      CF_ASSIGN_OR_RETURN(w.url, Scalar(node["url"], where + ".url"));
      if (!IsHttpUrl(w.url)) {
        return Bad(where + ".url", absl::StrCat("'", w.url, "' is not an http:// or https:// URL"));
      }
      if (node["events"] && !node["events"].IsNull()) {
        CF_ASSIGN_OR_RETURN(w.events, StringList(node["events"], where + ".events"));
        for (const std::string& event : w.events) {
          if (std::find(std::begin(kWebhookEvents), std::end(kWebhookEvents), event) ==
              std::end(kWebhookEvents)) {
            return Bad(where + ".events", absl::StrCat("unknown event '", event, "'"));
          }
        }
      }
      if (node["secret_env"]) {
        CF_ASSIGN_OR_RETURN(w.secret_env, Scalar(node["secret_env"], where + ".secret_env"));
        if (!IsEnvironmentVariableName(w.secret_env)) {
          return Bad(where + ".secret_env",
                     absl::StrCat("'", w.secret_env,
                                  "' is not the name of an environment variable (the secret "
                                  "itself never goes in the file)"));
        }
      }
      if (node["timeout"]) {
        CF_ASSIGN_OR_RETURN(w.timeout, FiniteDuration(node["timeout"], where + ".timeout"));
        if (w.timeout <= absl::ZeroDuration()) {
          return Bad(where + ".timeout", "must be more than zero");
        }
      }
      if (node["max_attempts"]) {
        CF_ASSIGN_OR_RETURN(w.max_attempts, Int(node["max_attempts"], where + ".max_attempts"));
        if (w.max_attempts < 1) return Bad(where + ".max_attempts", "must be at least 1");
      }
      config.webhooks.push_back(std::move(w));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMetrics(const YAML::Node& root, ControllerConfig& config) {
  if (!root["metrics"] || root["metrics"].IsNull()) return absl::OkStatus();
  CF_RETURN_IF_ERROR(CheckKeys(root["metrics"], "metrics", {"listen"}));
  if (root["metrics"]["listen"] && !root["metrics"]["listen"].IsNull()) {
    CF_ASSIGN_OR_RETURN(config.metrics_listen, Scalar(root["metrics"]["listen"], "metrics.listen"));
    if (!config.metrics_listen.empty() && !IsListenAddress(config.metrics_listen)) {
      return Bad("metrics.listen", absl::StrCat("'", config.metrics_listen, "' is not HOST:PORT"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<common::model::CertificateProfile> ParseProfile(const YAML::Node& node,
                                                               const std::string& where) {
  CF_RETURN_IF_ERROR(CheckKeys(
      node, where,
      {"name", "key_bits", "signature_hash", "validity", "extra_dns_names", "template_name"}));
  common::model::CertificateProfile p = common::model::ScomProfile();
  if (!node["name"]) return Bad(where, "needs a name");
  CF_ASSIGN_OR_RETURN(p.name, Scalar(node["name"], where + ".name"));
  if (node["key_bits"]) {
    CF_ASSIGN_OR_RETURN(std::string bits, Scalar(node["key_bits"], where + ".key_bits"));
    if (!absl::SimpleAtoi(bits, &p.key_bits)) return Bad(where + ".key_bits", "not a number");
  }
  if (node["signature_hash"]) {
    CF_ASSIGN_OR_RETURN(p.signature_hash,
                        Scalar(node["signature_hash"], where + ".signature_hash"));
  }
  if (node["validity"]) {
    CF_ASSIGN_OR_RETURN(std::string v, Scalar(node["validity"], where + ".validity"));
    CF_ASSIGN_OR_RETURN(p.validity, common::ParseHumanDuration(v), "config: ", where, ".validity");
  }
  if (node["extra_dns_names"]) {
    CF_ASSIGN_OR_RETURN(p.extra_dns_names,
                        StringList(node["extra_dns_names"], where + ".extra_dns_names"));
  }
  if (node["template_name"]) {
    CF_ASSIGN_OR_RETURN(p.template_name, Scalar(node["template_name"], where + ".template_name"));
  }
  CF_RETURN_IF_ERROR(common::model::ValidateProfile(p), "config: ", where);
  return p;
}

absl::StatusOr<ControllerConfig> ParseNode(const YAML::Node& root) {
  ControllerConfig config;
  if (root.IsNull()) return config;
  CF_RETURN_IF_ERROR(CheckKeys(root, "top level",
                               {"default_issuer", "profiles", "issuers", "policy_interval", "retry",
                                "windows", "policies", "rate_limits", "notifications", "metrics"}));
  std::set<std::string> names = {"scom"};
  if (root["profiles"]) {
    if (!root["profiles"].IsSequence()) return Bad("profiles", "must be a list");
    int i = 0;
    for (const auto& node : root["profiles"]) {
      CF_ASSIGN_OR_RETURN(auto p, ParseProfile(node, absl::StrCat("profiles[", i++, "]")));
      if (!names.insert(p.name).second) {
        return Bad("profiles", absl::StrCat("profile '", p.name, "' is defined twice or reserved"));
      }
      config.profiles.push_back(std::move(p));
    }
  }
  std::set<std::string> issuers = {"builtin", "manual"};
  if (root["issuers"]) {
    if (!root["issuers"].IsSequence()) return Bad("issuers", "must be a list");
    int i = 0;
    for (const auto& node : root["issuers"]) {
      std::string where = absl::StrCat("issuers[", i++, "]");
      CF_RETURN_IF_ERROR(
          CheckKeys(node, where, {"name", "type", "command", "environment", "timeout"}));
      CommandIssuerConfig c;
      if (!node["name"]) return Bad(where, "needs a name");
      CF_ASSIGN_OR_RETURN(c.name, Scalar(node["name"], where + ".name"));
      std::string type = "command";
      if (node["type"]) {
        CF_ASSIGN_OR_RETURN(type, Scalar(node["type"], where + ".type"));
      }
      if (type != "command") return Bad(where + ".type", "only 'command' can be configured");
      if (!node["command"]) return Bad(where, "needs a command (a list: program and arguments)");
      CF_ASSIGN_OR_RETURN(c.argv, StringList(node["command"], where + ".command"));
      if (c.argv.empty() || c.argv[0].empty()) return Bad(where + ".command", "is empty");
      if (node["environment"]) {
        if (!node["environment"].IsMap()) return Bad(where + ".environment", "must be a mapping");
        for (const auto& kv : node["environment"]) {
          CF_ASSIGN_OR_RETURN(std::string value, Scalar(kv.second, where + ".environment"));
          c.environment[kv.first.as<std::string>()] = value;
        }
      }
      if (node["timeout"]) {
        CF_ASSIGN_OR_RETURN(std::string t, Scalar(node["timeout"], where + ".timeout"));
        CF_ASSIGN_OR_RETURN(c.timeout, common::ParseHumanDuration(t), "config: ", where,
                            ".timeout");
      }
      if (!issuers.insert(c.name).second) {
        return Bad("issuers", absl::StrCat("issuer '", c.name, "' is defined twice or reserved"));
      }
      config.command_issuers.push_back(std::move(c));
    }
  }
  if (root["default_issuer"]) {
    CF_ASSIGN_OR_RETURN(config.default_issuer, Scalar(root["default_issuer"], "default_issuer"));
    if (!issuers.count(config.default_issuer)) {
      return Bad("default_issuer", absl::StrCat("no issuer '", config.default_issuer, "'"));
    }
  }
  CF_RETURN_IF_ERROR(ParseSchedulingTop(root, config));
  CF_RETURN_IF_ERROR(ParseWindows(root, config));
  CF_RETURN_IF_ERROR(ParsePolicies(root, names, issuers, config));
  CF_RETURN_IF_ERROR(ParseRateLimits(root, issuers, config));
  CF_RETURN_IF_ERROR(ParseNotifications(root, config));
  CF_RETURN_IF_ERROR(ParseMetrics(root, config));
  return config;
}

}  // namespace

absl::StatusOr<ControllerConfig> ParseConfig(const std::string& text) {
  // yaml-cpp reports errors by exception; this is the one place they are caught.
  try {
    return ParseNode(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: not valid YAML: ", e.what()));
  }
}

absl::StatusOr<ControllerConfig> LoadConfig(const std::string& path) {
  CF_ASSIGN_OR_RETURN(std::string text, common::ReadFileToString(path));
  auto config = ParseConfig(text);
  if (!config.ok()) return common::Annotate(config.status(), path);
  return config;
}

bool PolicyMatches(const PolicyConfig& policy, const std::map<std::string, std::string>& labels,
                   absl::string_view fqdn) {
  for (const auto& [key, value] : policy.selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  if (policy.fqdn_glob.empty()) return true;
  std::string glob = absl::AsciiStrToLower(policy.fqdn_glob);
  std::string name = absl::AsciiStrToLower(fqdn);
  return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
}

const PolicyConfig* FirstMatchingPolicy(const ControllerConfig& config,
                                        const std::map<std::string, std::string>& labels,
                                        absl::string_view fqdn) {
  for (const PolicyConfig& policy : config.policies) {
    if (policy.enabled && PolicyMatches(policy, labels, fqdn)) return &policy;
  }
  return nullptr;
}

}  // namespace certfleet::controller::config
