#include "tools/certfleetctl/inspect_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "tools/certfleetctl/inspect.h"

namespace certfleet::ctl {
namespace {

constexpr char kDescription[] =
    "Judge certificate files offline as SCOM would (PEM with several blocks and keys, DER, "
    "PKCS#12/PFX incl. RC2-40, 3DES, AES-256).\n"
    "Problem codes: EXPIRED NOT_YET_VALID EXPIRES_SOON KEY_NOT_RSA KEY_TOO_SMALL "
    "WEAK_SIGNATURE_HASH MISSING_SERVER_AUTH_EKU MISSING_CLIENT_AUTH_EKU MISSING_KEY_USAGE "
    "SUBJECT_MISMATCH NO_PRIVATE_KEY CHAIN_UNTRUSTED IS_CA.\n"
    "SUBJECT_MISMATCH is judged only with --fqdn, CHAIN_UNTRUSTED only with --ca-file. "
    "NO_PRIVATE_KEY is judged for every certificate with --require-key; without it, only for "
    "non-CA certificates of a file that holds a private key (a PFX or PEM whose key belongs to "
    "another certificate). A bare certificate file is not expected to hold its key.\n"
    "Exit status: 0 all compliant, 1 some certificate has problems, 2 some file could not be "
    "read (2 wins over 1).";

struct Flags {
  std::vector<std::string> files;
  std::string fqdn;
  std::string password_file;
  std::string ca_file;
  int warn_days = 30;
  bool require_key = false;
  std::string output = "table";
};

int Run(const Flags& flags) {
  InspectOptions options;
  options.files = flags.files;
  if (!flags.fqdn.empty()) options.fqdn = flags.fqdn;
  if (!flags.ca_file.empty()) options.ca_file = flags.ca_file;
  if (!flags.password_file.empty()) {
    auto password = ReadPasswordFile(flags.password_file);
    if (!password.ok()) {
      std::cerr << "certfleetctl inspect: --password-file: " << password.status().message() << "\n";
      return 2;
    }
    options.password = *std::move(password);
  }
  options.warn_days = flags.warn_days;
  options.require_key = flags.require_key;
  options.output =
      flags.output == "json" ? InspectOptions::Output::kJson : InspectOptions::Output::kTable;
  options.now = absl::Now();
  return RunInspect(options, std::cout, std::cerr);
}

}  // namespace

void RegisterInspectCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("inspect", "Judge certificate files offline as SCOM would");
  cmd->footer(kDescription);
  cmd->add_option("--fqdn", flags->fqdn, "The host's FQDN; enables SUBJECT_MISMATCH");
  cmd->add_option("--password-file", flags->password_file,
                  "File holding the PFX / encrypted key password (one trailing newline is "
                  "stripped; the password is never printed)");
  cmd->add_option("--ca-file", flags->ca_file,
                  "Trusted roots (PEM, DER or PFX); enables CHAIN_UNTRUSTED");
  cmd->add_option("--warn-days", flags->warn_days, "EXPIRES_SOON within this many days")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--require-key", flags->require_key,
                "Report NO_PRIVATE_KEY for every certificate without its key in the file");
  cmd->add_option("--output,-o", flags->output, "table or json (one JSON array)")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));
  cmd->add_option("files", flags->files, "Certificate files")->required();
  cmd->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace certfleet::ctl
