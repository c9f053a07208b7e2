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

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/profile.h"

namespace certfleet::controller::config {

struct CommandIssuerConfig {
  std::string name;
  std::vector<std::string> argv;
  std::map<std::string, std::string> environment;  // extra variables for the program
  absl::Duration timeout = absl::Seconds(60);
};

struct ControllerConfig {
  std::string default_issuer = "builtin";
  std::vector<common::model::CertificateProfile> profiles;  // besides "scom"
  std::vector<CommandIssuerConfig> command_issuers;
};

// Parses `text` (YAML). InvalidArgument naming the field and what is wrong: unknown keys,
// wrong types, an invalid profile (model::ValidateProfile), a duplicate or reserved name
// ("scom", "builtin", "manual"), a command issuer without a command.
absl::StatusOr<ControllerConfig> ParseConfig(const std::string& text);
// Reads and parses `path`; errors name the path.
absl::StatusOr<ControllerConfig> LoadConfig(const std::string& path);

}  // namespace certfleet::controller::config
