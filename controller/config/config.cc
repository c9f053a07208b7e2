#include "controller/config/config.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  CF_RETURN_IF_ERROR(CheckKeys(root, "top level", {"default_issuer", "profiles", "issuers"}));
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

}  // namespace certfleet::controller::config
